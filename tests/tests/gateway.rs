//! The gateway suite: the shipped `envoy/gateway.yaml`, the whole filter chain, tested from the
//! outside as a client sees it. One suite serves both harnesses:
//!
//! - natively (`make e2e`): with none of `GATEWAY_URL`, `GATEWAY_ADMIN_URL`, `OAUTH_URL` set, it
//!   starts the demo topology itself (what `make run` starts: the services and a real Envoy on
//!   127.0.0.1:8080-8084 and 9901);
//! - against the docker-compose stack (`make e2e-compose`), or any running demo gateway: with all
//!   three set to `http://host:port`.
//!
//! It uses only what a client can reach: the gateway, Envoy's admin interface, and the OAuth
//! server's token and registration endpoints. Each case registers its own OAuth client (RFC 7591)
//! and calls from its own loopback address, so that the gateway's rate limits (per client, per
//! address) start fresh for each case and for each run against a long-running stack.
//!
//! A plain `main` (`harness = false`): the stack is started once and stopped at the end, which a
//! `#[test]` per case could not guarantee. `cargo test -p e2e --test gateway -- <substring>` runs
//! the cases whose names contain it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use harness::demo::{Demo, Endpoints};
use harness::http::{self, Request, Response};
use serde_json::{json, Value};

type Case = (&'static str, fn(&Stack));

const CASES: &[Case] = &[
    (
        "opaque_tokens_reach_the_upstream_as_verified_jwts",
        opaque_tokens_reach_the_upstream_as_verified_jwts,
    ),
    (
        "missing_and_unknown_tokens_are_challenged",
        missing_and_unknown_tokens_are_challenged,
    ),
    (
        "scopes_decide_what_each_method_may_do",
        scopes_decide_what_each_method_may_do,
    ),
    (
        "path_tricks_do_not_reach_protected_routes",
        path_tricks_do_not_reach_protected_routes,
    ),
    (
        "spoofed_identity_headers_never_reach_the_upstream",
        spoofed_identity_headers_never_reach_the_upstream,
    ),
    (
        "responses_carry_security_headers_and_no_server_details",
        responses_carry_security_headers_and_no_server_details,
    ),
    (
        "cors_preflights_are_answered_by_the_gateway",
        cors_preflights_are_answered_by_the_gateway,
    ),
    (
        "each_client_gets_five_requests_a_minute",
        each_client_gets_five_requests_a_minute,
    ),
    (
        "clients_without_a_token_are_limited_by_address",
        clients_without_a_token_are_limited_by_address,
    ),
    ("the_filters_count_their_decisions", the_filters_count_their_decisions),
];

const READY_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let (endpoints, _demo) = match Endpoints::from_env() {
        Some(Ok(endpoints)) => {
            println!("gateway suite: against the running gateway at {endpoints:?}");
            (endpoints, None)
        }
        Some(Err(e)) => {
            eprintln!("gateway suite: {e}");
            return ExitCode::FAILURE;
        }
        None => {
            println!("gateway suite: starting the demo gateway (envoy/gateway.yaml) on 127.0.0.1");
            match Demo::start() {
                Ok(demo) => (Endpoints::local(), Some(demo)),
                Err(log) => {
                    eprintln!("gateway suite: the demo gateway did not start: {log}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let stack = Stack { endpoints };
    if let Err(e) = stack.wait_until_ready() {
        eprintln!("gateway suite: {e}");
        return ExitCode::FAILURE;
    }
    let selected: Vec<&Case> = CASES
        .iter()
        .filter(|(name, _)| filter.as_deref().is_none_or(|f| name.contains(f)))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, case) in selected.iter().copied() {
        let outcome = catch_unwind(AssertUnwindSafe(|| case(&stack)));
        println!("test {name} ... {}", if outcome.is_ok() { "ok" } else { "FAILED" });
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("failed: {failed:?}");
        ExitCode::FAILURE
    }
}

/// The gateway under test, reached only through its endpoints.
struct Stack {
    endpoints: Endpoints,
}

/// A caller: its own loopback address, and its own OAuth client once it asks for a token.
struct Caller<'a> {
    stack: &'a Stack,
    address: IpAddr,
}

impl Stack {
    /// Polls until Envoy is ready (admin `/ready`; the compose stack may still be starting) and
    /// the filters that verify JWTs have fetched the OAuth server's keys: until then they answer
    /// 503, as documented.
    fn wait_until_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let keys = [
            "wasmcustom.apisec.phantom_token.jwks_fetch_ok",
            "wasmcustom.apisec.jwt_auth.jwks_fetch_ok",
        ];
        loop {
            let ready = match http::send(self.endpoints.admin, &Request::get("/ready")) {
                Ok(resp) if resp.status == 200 => Ok(keys.iter().all(|k| self.counter(k) >= 1)),
                Ok(resp) => Err(format!("/ready: {} {}", resp.status, resp.text())),
                Err(e) => Err(format!("/ready: {e}")),
            };
            match ready {
                Ok(true) => return Ok(()),
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                Ok(false) => return Err(format!("the filters have no keys after {READY_TIMEOUT:?}: {keys:?}")),
                Err(e) => {
                    return Err(format!(
                        "Envoy admin {} not ready after {READY_TIMEOUT:?}: {e}",
                        self.endpoints.admin
                    ))
                }
            }
        }
    }

    /// A caller from a loopback address of its own (127.x.y.z, random).
    fn caller(&self) -> Caller<'_> {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u8(0);
        let [a, b, c, ..] = hasher.finish().to_le_bytes();
        Caller {
            stack: self,
            address: IpAddr::V4(Ipv4Addr::new(127, a.max(1), b, c.clamp(1, 254))),
        }
    }

    fn oauth(&self, req: Request) -> Response {
        http::send(self.endpoints.oauth, &req).unwrap_or_else(|e| panic!("OAuth server {}: {e}", self.endpoints.oauth))
    }

    /// A new OAuth client (RFC 7591 registration) allowed `scope`; returns its id and secret.
    fn register(&self, scope: &str) -> (String, String) {
        let body = json!({"scope": scope, "grant_types": ["client_credentials"]}).to_string();
        let resp = self.oauth(Request::post("/register", body).header("Content-Type", "application/json"));
        assert_eq!(resp.status, 201, "registration failed: {}", resp.text());
        let answer = resp.json();
        let field = |name: &str| {
            answer[name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} in {answer}"))
                .to_owned()
        };
        (field("client_id"), field("client_secret"))
    }

    /// A token for a new client that holds exactly `scope`, and the client's id.
    fn token(&self, scope: &str) -> (String, String) {
        let (id, secret) = self.register(scope);
        let basic = base64_basic(&id, &secret);
        let form = format!("grant_type=client_credentials&scope={}", scope.replace(' ', "+"));
        let resp = self.oauth(
            Request::post("/token", form)
                .header("Authorization", &basic)
                .header("Content-Type", "application/x-www-form-urlencoded"),
        );
        assert_eq!(resp.status, 200, "token request failed: {}", resp.text());
        let token = resp.json()["access_token"].as_str().expect("access_token").to_owned();
        (token, id)
    }

    fn admin_stats(&self) -> String {
        let resp = http::send(self.endpoints.admin, &Request::get("/stats")).expect("admin /stats");
        assert_eq!(resp.status, 200);
        resp.text()
    }

    /// Counter `name` from admin `/stats`, 0 when Envoy does not have it yet.
    fn counter(&self, name: &str) -> u64 {
        self.stat(name).unwrap_or(0)
    }

    /// Stat `name` from admin `/stats`, `None` when Envoy does not have it.
    fn stat(&self, name: &str) -> Option<u64> {
        self.admin_stats()
            .lines()
            .filter_map(|line| line.split_once(": "))
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.trim().parse().ok())
    }
}

impl Caller<'_> {
    fn send(&self, req: Request) -> Response {
        let gateway: SocketAddr = self.stack.endpoints.gateway;
        http::send_from(self.address, gateway, &req)
            .unwrap_or_else(|e| panic!("{} {} from {} to {gateway}: {e}", req.method, req.path, self.address))
    }

    fn get(&self, path: &str, token: Option<&str>) -> Response {
        let req = Request::get(path);
        self.send(match token {
            Some(token) => req.header("Authorization", &format!("Bearer {token}")),
            None => req,
        })
    }
}

fn base64_basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// The request the echo upstream saw, from its answer; fails when the answer is not the echo's.
fn upstream_saw(resp: &Response) -> Value {
    assert_eq!(
        resp.status,
        200,
        "expected the upstream's answer, got: {} {}",
        resp.status,
        resp.text()
    );
    let seen = resp.json();
    assert!(seen["headers"].is_array(), "not the echo upstream's answer: {seen}");
    seen
}

/// Every value of header `name` in the echo's record.
fn seen_headers(seen: &Value, name: &str) -> Vec<String> {
    seen["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|pair| pair[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .filter_map(|pair| pair[1].as_str().map(str::to_owned))
        .collect()
}

fn assert_refused_before_the_upstream(resp: &Response) {
    let body = resp.text();
    assert!(
        !body.contains("\"headers\""),
        "the upstream answered a refused request ({}): {body}",
        resp.status
    );
}

// --- cases -------------------------------------------------------------------------------------

fn opaque_tokens_reach_the_upstream_as_verified_jwts(stack: &Stack) {
    let (token, client_id) = stack.token("orders:read");
    assert_eq!(
        token.matches('.').count(),
        0,
        "the OAuth server should hand out opaque tokens: {token}"
    );
    let seen = upstream_saw(&stack.caller().get("/orders", Some(&token)));
    let authorization = seen_headers(&seen, "authorization");
    assert_eq!(authorization.len(), 1, "{authorization:?}");
    let jwt = authorization[0]
        .strip_prefix("Bearer ")
        .expect("a bearer token upstream");
    assert_eq!(jwt.split('.').count(), 3, "upstream got no JWT: {jwt}");
    assert!(!jwt.contains(&token), "the opaque token leaked upstream");
    assert_eq!(seen_headers(&seen, "x-user-id"), [client_id]);
    assert_eq!(seen_headers(&seen, "x-user-scope"), ["orders:read"]);
    let payload: Value = serde_json::from_slice(&b64url(jwt.split('.').nth(1).expect("payload"))).expect("claims");
    assert_eq!(payload["scope"], "orders:read");
    assert_eq!(payload["aud"], "api");
}

fn b64url(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

fn missing_and_unknown_tokens_are_challenged(stack: &Stack) {
    let caller = stack.caller();
    let missing = caller.get("/orders", None);
    assert_eq!(missing.status, 401);
    assert!(
        !missing.bearer_challenge("api").contains("error="),
        "no token: no error code (RFC 6750 3.1)"
    );
    assert_refused_before_the_upstream(&missing);

    let unknown = caller.get("/orders", Some("made-up-token"));
    assert_eq!(unknown.status, 401);
    assert!(unknown.bearer_challenge("api").contains("error=\"invalid_token\""));
    assert_refused_before_the_upstream(&unknown);

    let (token, _) = stack.token("orders:read");
    let basic_scheme = caller.send(Request::get("/orders").header("Authorization", &format!("Basic {token}")));
    assert_eq!(
        basic_scheme.status, 401,
        "a token under another scheme is not a bearer token"
    );
    assert_refused_before_the_upstream(&basic_scheme);
}

fn scopes_decide_what_each_method_may_do(stack: &Stack) {
    let caller = stack.caller();
    let json_post = |token: &str, content_type: &str| {
        caller.send(
            Request::post("/orders", "{}")
                .header("Authorization", &format!("Bearer {token}"))
                .header("Content-Type", content_type),
        )
    };
    let (reader, _) = stack.token("orders:read");
    let (writer, _) = stack.token("orders:write");

    upstream_saw(&caller.get("/orders", Some(&reader)));
    let refused = json_post(&reader, "application/json");
    assert_eq!(refused.status, 403);
    assert!(refused.bearer_challenge("api").contains("error=\"insufficient_scope\""));
    assert_refused_before_the_upstream(&refused);

    let seen = upstream_saw(&json_post(&writer, "application/json"));
    assert_eq!(seen["method"], "POST");
    let wrong_type = json_post(&writer, "text/plain");
    assert_eq!(wrong_type.status, 415);
    assert_refused_before_the_upstream(&wrong_type);

    let unlisted = caller.send(Request::new("DELETE", "/orders").header("Authorization", &format!("Bearer {writer}")));
    assert_eq!(
        unlisted.status, 403,
        "a method no rule allows is denied (unmatched: deny)"
    );
    assert_refused_before_the_upstream(&unlisted);
}

fn path_tricks_do_not_reach_protected_routes(stack: &Stack) {
    let caller = stack.caller();
    for path in [
        "/public/../orders",
        "/public/%2e%2e/orders",
        "/PUBLIC/status",
        "/public/%2E%2E/orders",
    ] {
        let resp = caller.get(path, None);
        assert!(
            matches!(resp.status, 400 | 401 | 403),
            "{path} without a token: {} {}",
            resp.status,
            resp.text()
        );
        assert_refused_before_the_upstream(&resp);
    }
    // An escaped slash is never passed on as is: the client is redirected to the unescaped path.
    let escaped = caller.get("/orders%2f..%2fpublic", None);
    assert_eq!(escaped.status, 307, "{}", escaped.text());
    assert_eq!(escaped.header("location").as_deref(), Some("/public"));
    assert_refused_before_the_upstream(&escaped);
    // Slashes are merged before routing: still the public route.
    let seen = upstream_saw(&caller.get("//public//status", None));
    assert_eq!(seen["path"], "/public/status");
}

fn spoofed_identity_headers_never_reach_the_upstream(stack: &Stack) {
    let caller = stack.caller();
    let spoofed = |req: Request| {
        req.header("x-user-id", "admin")
            .header("X-User-Id", "root")
            .header("x-user-scope", "orders:write admin")
            .header("x-jwt-payload", "eyJzdWIiOiJhZG1pbiJ9")
            .header("x-internal-role", "admin")
            .header("X-Forwarded-For", "10.0.0.1")
    };
    let seen = upstream_saw(&caller.send(spoofed(Request::get("/public/status"))));
    for name in ["x-user-id", "x-user-scope", "x-jwt-payload", "x-internal-role"] {
        assert!(
            seen_headers(&seen, name).is_empty(),
            "{name} reached the upstream: {seen}"
        );
    }
    // Envoy appends the connection's address: the last hop is the one the gateway vouches for.
    let forwarded_for = seen_headers(&seen, "x-forwarded-for");
    assert_eq!(forwarded_for.len(), 1, "{forwarded_for:?}");
    assert_eq!(
        forwarded_for[0].rsplit(',').next().map(str::trim),
        Some(caller.address.to_string().as_str()),
        "the client address comes from the connection"
    );

    let (token, client_id) = stack.token("orders:read");
    let authenticated = spoofed(Request::get("/orders")).header("Authorization", &format!("Bearer {token}"));
    let seen = upstream_saw(&caller.send(authenticated));
    assert_eq!(
        seen_headers(&seen, "x-user-id"),
        [client_id],
        "only the verified identity"
    );
    assert_eq!(seen_headers(&seen, "x-user-scope"), ["orders:read"]);

    let underscored = caller.send(Request::get("/public/status").header("x_user_id", "admin"));
    assert_eq!(underscored.status, 400, "headers with underscores are refused");
    assert_refused_before_the_upstream(&underscored);
}

fn responses_carry_security_headers_and_no_server_details(stack: &Stack) {
    let resp = stack.caller().get("/public/status", None);
    upstream_saw(&resp);
    for (name, value) in harness::API_SECURITY_HEADERS {
        assert_eq!(resp.header(name).as_deref(), Some(value), "{name}");
    }
    assert!(!resp.has_header("server"), "server header: {:?}", resp.header("server"));
    assert!(!resp.has_header("x-envoy-upstream-service-time"));
    let refused = stack.caller().get("/orders", None);
    assert_eq!(
        refused.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "refusals too"
    );
}

fn cors_preflights_are_answered_by_the_gateway(stack: &Stack) {
    let caller = stack.caller();
    let preflight = |origin: &str| {
        caller.send(
            Request::options("/orders")
                .header("Origin", origin)
                .header("Access-Control-Request-Method", "DELETE"),
        )
    };
    let allowed = preflight("http://localhost:3000");
    assert_eq!(allowed.status, 204);
    assert_eq!(
        allowed.header("access-control-allow-origin").as_deref(),
        Some("http://localhost:3000")
    );
    assert_refused_before_the_upstream(&allowed);
    let denied = preflight("https://evil.example");
    assert_eq!(denied.status, 403);
    assert!(!denied.has_header("access-control-allow-origin"));
    assert_refused_before_the_upstream(&denied);
}

fn each_client_gets_five_requests_a_minute(stack: &Stack) {
    let caller = stack.caller();
    let (token, _) = stack.token("orders:read");
    for n in 1..=5 {
        let resp = caller.get("/orders", Some(&token));
        upstream_saw(&resp);
        let policy = resp.header("ratelimit-policy").unwrap_or_default();
        assert!(
            policy.contains("\"per_client\";q=5;w=60"),
            "request {n}: RateLimit-Policy {policy:?}"
        );
    }
    let refused = caller.get("/orders", Some(&token));
    assert_eq!(refused.status, 429, "{}", refused.text());
    let retry_after: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
    assert_refused_before_the_upstream(&refused);
    // Another client, from the same address, is counted apart.
    let (other, _) = stack.token("orders:read");
    upstream_saw(&caller.get("/orders", Some(&other)));
}

fn clients_without_a_token_are_limited_by_address(stack: &Stack) {
    let caller = stack.caller();
    for _ in 1..=5 {
        upstream_saw(&caller.get("/public/status", None));
    }
    let refused = caller.get("/public/status", None);
    assert_eq!(refused.status, 429);
    assert_refused_before_the_upstream(&refused);
    upstream_saw(&stack.caller().get("/public/status", None));
}

fn the_filters_count_their_decisions(stack: &Stack) {
    let before = |name: &str| stack.counter(name);
    let denied = "wasmcustom.apisec.phantom_token.denied_inactive_token";
    let allowed = "wasmcustom.apisec.scope_gate.allowed";
    let (denied_before, allowed_before) = (before(denied), before(allowed));
    let caller = stack.caller();
    assert_eq!(caller.get("/orders", Some("made-up-token")).status, 401);
    let (token, _) = stack.token("orders:read");
    upstream_saw(&caller.get("/orders", Some(&token)));
    assert_eq!(stack.counter(denied), denied_before + 1, "{denied}");
    assert_eq!(stack.counter(allowed), allowed_before + 1, "{allowed}");
    let stats = stack.admin_stats();
    for filter in ["header_scrub", "phantom_token", "jwt_auth", "scope_gate", "rate_limit"] {
        assert!(
            stats.contains(&format!("wasmcustom.apisec.{filter}.")),
            "no counters of {filter} in /stats"
        );
        let reload_failures = format!("wasm.{filter}.vm_reload_failure");
        assert_eq!(stack.stat(&reload_failures), Some(0), "{reload_failures}");
    }
}
