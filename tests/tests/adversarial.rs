//! The adversarial suite: hostile tokens, hostile IdP answers, hostile headers, path tricks and
//! rate-limit dodges against the whole filter chain, configured as `envoy/gateway.yaml` ships it.
//!
//! One test per family, each running ONE Envoy and a table of cases. Every case says what the
//! client must get (status and `WWW-Authenticate`, exactly) and whether the request may reach the
//! upstream; the echo upstream records every request it sees, so "not reached" is observed, not
//! inferred from the status. The invariant: no unauthenticated or unauthorised request ever
//! reaches the upstream. A family runs all its cases and then fails once, listing every case
//! that did not hold, and checks that no wasm VM crashed or was reloaded, that every 5xx the HCM
//! counted is one a case expected, and that a valid request still gets through.
//!
//! Expected answers follow RFC 6750 / 7519 / 8725 and the filters' documented behaviour (README:
//! "Errors clients see" and each filter's section): 401 `invalid_token` for a bad token, 400
//! `invalid_request` for ambiguous credentials, 403 `insufficient_scope`, 502 for an IdP answer
//! that is nonsense, 503 for an IdP that cannot be reached.
//!
//! The families and where their gateway differs from the shipped one (each difference is what
//! the family needs to observe something, and is said where it is made):
//!
//! | family | chain | differences |
//! |---|---|---|
//! | `jwt_family` | header-scrub, jwt-auth, scope-gate, rate-limit | jwt-auth accepts `typ` `JWT` and `at+jwt` only |
//! | `introspection_family_*` | the whole chain | introspection via an IdP front, timeout 1 s; JWT or JSON answers |
//! | `headers_family` | the whole chain | none |
//! | `scope_family` | as `jwt_family` | an `/admin` rule, a catch-all rule for reads, case-insensitive paths |
//! | `rate_limit_family` | as `jwt_family` | 5 requests an hour per client, `max_keys` 64, two workers |
//!
//! Outside the rate-limit family the local limit is raised so that the suite's own traffic does
//! not trip it.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::config::{grpc_cluster, static_cluster};
use harness::examples::{embedded_configs, localize, Environment};
use harness::http::{self, DEFAULT_HOST};
use harness::oauth::{
    b64url_decode, b64url_encode, fixture_jwk, now_secs, Client, Fault, SigningKey, TokenSpec, INTROSPECT_PATH,
    JWKS_PATH,
};
use harness::{merge_json, Gateway, GatewayConfig, OAuthServer, RateLimitService, RecordedRequest, Request, Response};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Expected challenges (the realm of every shipped config is "api")

const BARE: &str = r#"Bearer realm="api""#;
const INVALID_TOKEN: &str = r#"Bearer realm="api", error="invalid_token""#;
const INVALID_REQUEST: &str = r#"Bearer realm="api", error="invalid_request""#;

fn insufficient_scope(scope: &str) -> String {
    format!(r#"Bearer realm="api", error="insufficient_scope", scope="{scope}""#)
}

/// The gateway's client credentials at the IdP, as `envoy/gateway.yaml` has them.
const GATEWAY_CLIENT_ID: &str = "gateway";
const GATEWAY_CLIENT_SECRET: &str = "gateway-secret";

// ---------------------------------------------------------------------------------------------
// Cases and the runner

/// An extra assertion on the client's response and on what the upstream received (empty when
/// it received nothing).
type Check<'a> = Box<dyn Fn(&Response, &[RecordedRequest]) -> Result<(), String> + 'a>;

/// One adversarial request and everything the client and the upstream must see.
struct Case<'a> {
    name: String,
    request: Request,
    /// The client's source address (a loopback address of the test's choosing), if not 127.0.0.1.
    from: Option<IpAddr>,
    status: u16,
    /// The exact `WWW-Authenticate` value; `None`: the response must have none.
    challenge: Option<String>,
    reaches_upstream: bool,
    /// Runs right before the request (e.g. makes the IdP misbehave).
    setup: Option<Box<dyn Fn() + 'a>>,
    /// Every one must hold.
    checks: Vec<Check<'a>>,
}

impl<'a> Case<'a> {
    fn new(name: impl Into<String>, request: Request, status: u16, challenge: Option<&str>, reaches: bool) -> Self {
        Case {
            name: name.into(),
            request,
            from: None,
            status,
            challenge: challenge.map(str::to_owned),
            reaches_upstream: reaches,
            setup: None,
            checks: Vec::new(),
        }
    }

    /// Reaches the upstream with a 200.
    fn allowed(name: impl Into<String>, request: Request) -> Self {
        Self::new(name, request, 200, None, true)
    }

    /// Refused before the upstream.
    fn refused(name: impl Into<String>, request: Request, status: u16, challenge: Option<&str>) -> Self {
        Self::new(name, request, status, challenge, false)
    }

    fn from(mut self, source: IpAddr) -> Self {
        self.from = Some(source);
        self
    }

    fn setup(mut self, setup: impl Fn() + 'a) -> Self {
        self.setup = Some(Box::new(setup));
        self
    }

    /// Adds an assertion on the response and on what the upstream received.
    fn check(mut self, check: impl Fn(&Response, &[RecordedRequest]) -> Result<(), String> + 'a) -> Self {
        self.checks.push(Box::new(check));
        self
    }

    /// The upstream saw header `name` with exactly `values` (all copies, any case).
    fn upstream_header(self, name: &'static str, values: &[&str]) -> Self {
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        self.check(move |_, seen| {
            let got = seen.first().map(|r| r.header_all(name)).unwrap_or_default();
            if got == values {
                Ok(())
            } else {
                Err(format!("upstream {name}: {got:?}, expected {values:?}"))
            }
        })
    }
}

/// Runs a family's cases against one gateway and collects every mismatch.
struct Family<'g> {
    name: &'static str,
    gw: &'g Gateway,
    cases: usize,
    failures: Vec<String>,
    /// The 5xx answers the cases expected: the only ones the HCM may have counted.
    expected_5xx: u64,
    /// VMs Envoy had created when the family started: a crashed VM that is replaced shows here.
    vms_created: u64,
    started: Instant,
}

impl<'g> Family<'g> {
    fn new(name: &'static str, gw: &'g Gateway) -> Self {
        Family {
            name,
            gw,
            cases: 0,
            failures: Vec::new(),
            expected_5xx: 0,
            vms_created: gw.envoy.counter(VMS_CREATED),
            started: Instant::now(),
        }
    }

    fn run(&mut self, cases: Vec<Case<'_>>) {
        for case in cases {
            self.run_one(case);
        }
    }

    fn run_one(&mut self, case: Case<'_>) {
        self.cases += 1;
        if case.status >= 500 {
            self.expected_5xx += 1;
        }
        if let Some(setup) = &case.setup {
            setup();
        }
        let before = self.gw.echo.request_count();
        let addr = self.gw.envoy.listener();
        let result = match case.from {
            Some(source) => http::send_from(source, addr, &case.request),
            None => http::send(addr, &case.request),
        };
        let reached: Vec<RecordedRequest> = self.gw.echo.requests().into_iter().skip(before).collect();
        let mut problems = Vec::new();
        match result {
            Ok(response) => {
                if response.status != case.status {
                    problems.push(format!("status {}, expected {}", response.status, case.status));
                }
                let challenge = response.header_all("www-authenticate");
                let expected: Vec<String> = case.challenge.iter().cloned().collect();
                if challenge != expected {
                    problems.push(format!("WWW-Authenticate {challenge:?}, expected {expected:?}"));
                }
                if let Some(leak) = echoed_secret(&case.request, &response) {
                    problems.push(leak);
                }
                problems.extend(case.checks.iter().filter_map(|check| check(&response, &reached).err()));
            }
            Err(e) => problems.push(format!("no response: {e}")),
        }
        match (case.reaches_upstream, reached.len()) {
            (true, 1) | (false, 0) => {}
            (true, n) => problems.push(format!("expected to reach the upstream once, reached it {n} times")),
            (false, n) => problems.push(format!(
                "REACHED THE UPSTREAM ({n}x): {:?}",
                reached
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.path))
                    .collect::<Vec<_>>()
            )),
        }
        if !problems.is_empty() {
            self.failures
                .push(format!("{}/{}: {}", self.name, case.name, problems.join("; ")));
        }
    }

    /// Fails once, listing every case that did not hold, after checking that no VM crashed, that
    /// every 5xx was expected, and that `valid` still gets a 200 from the upstream.
    fn finish(mut self, valid: Request) {
        let before = self.gw.echo.request_count();
        match http::send(self.gw.envoy.listener(), &valid) {
            Ok(r) if r.status == 200 && self.gw.echo.request_count() == before + 1 => {}
            Ok(r) => self.failures.push(format!(
                "{}: after the cases a valid request got {} {}",
                self.name,
                r.status,
                r.text()
            )),
            Err(e) => self
                .failures
                .push(format!("{}: after the cases a valid request failed: {e}", self.name)),
        }
        self.failures.extend(vm_failures(self.gw, self.vms_created));
        let counted_5xx = self.gw.envoy.counter("http.gateway.downstream_rq_5xx");
        if counted_5xx != self.expected_5xx {
            self.failures.push(format!(
                "{}: the HCM counted {counted_5xx} 5xx answers, the cases expected {}",
                self.name, self.expected_5xx
            ));
        }
        println!(
            "adversarial {}: {} cases in {:.1?}",
            self.name,
            self.cases,
            self.started.elapsed()
        );
        assert!(
            self.failures.is_empty(),
            "the {} family ({} cases) has {} failures:\n  {}",
            self.name,
            self.cases,
            self.failures.len(),
            self.failures.join("\n  ")
        );
    }
}

/// A refusal must never echo the credentials it refused.
fn echoed_secret(request: &Request, response: &Response) -> Option<String> {
    if response.status < 400 {
        return None;
    }
    let body = response.text();
    request
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"authorization"))
        .map(|(_, value)| {
            String::from_utf8_lossy(value)
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .any(|token| token.len() >= 16 && body.contains(&token))
        .then(|| "the refusal body echoes the token".to_owned())
}

/// VMs created so far (a VM that fails and is replaced adds one).
const VMS_CREATED: &str = "wasm.envoy.wasm.runtime.v8.created";

/// The wasm VMs never crashed, failed or were reloaded: Envoy's per-plugin reload counters are
/// zero, no VM was created since the family started, and the log has no VM failure.
fn vm_failures(gw: &Gateway, vms_created: u64) -> Vec<String> {
    let stats = gw.envoy.stats();
    let mut failures = Vec::new();
    let mut plugins = Vec::new();
    for line in stats.lines() {
        let Some((name, value)) = line.split_once(": ") else {
            continue;
        };
        let Some(plugin) = name.strip_prefix("wasm.").and_then(|n| n.strip_suffix(".vm_reload")) else {
            if name.starts_with("wasm.") && name.contains(".vm_reload") && value.trim() != "0" {
                failures.push(format!("wasm counter {name} = {}", value.trim()));
            }
            continue;
        };
        plugins.push(plugin.to_owned());
        if value.trim() != "0" {
            failures.push(format!("wasm counter {name} = {}", value.trim()));
        }
    }
    plugins.sort();
    let mut expected: Vec<String> = gw_plugins(gw);
    expected.sort();
    if plugins != expected {
        failures.push(format!(
            "wasm reload counters for {plugins:?}, expected one per plugin {expected:?}"
        ));
    }
    let created = gw.envoy.counter(VMS_CREATED);
    if created != vms_created {
        failures.push(format!(
            "{VMS_CREATED}: {vms_created} before the cases, {created} after"
        ));
    }
    let log = gw.envoy.log();
    for line in log.lines() {
        // What Envoy logs when a VM traps (a Rust panic is an `unreachable` trap after the
        // panic message): "Function: proxy_on_... failed: Uncaught RuntimeError: unreachable".
        let vm_failure = line.contains("panicked at")
            || line.contains("Uncaught")
            || line.contains("RuntimeError")
            || (line.contains("Function: proxy_") && line.contains("failed"))
            || line.contains("[critical][wasm]");
        if vm_failure {
            failures.push(format!("Envoy log: {line}"));
        }
    }
    failures
}

/// The wasm plugins in the gateway's bootstrap.
fn gw_plugins(gw: &Gateway) -> Vec<String> {
    let text = std::fs::read_to_string(gw.envoy.config_path()).unwrap_or_default();
    let bootstrap: Value = serde_json::from_str(&text).unwrap_or_default();
    let mut names = Vec::new();
    if let Some(filters) = bootstrap
        .pointer("/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters")
        .and_then(Value::as_array)
    {
        for filter in filters {
            if let Some(name) = filter.pointer("/typed_config/config/name").and_then(Value::as_str) {
                names.push(name.to_owned());
            }
        }
    }
    names
}

// ---------------------------------------------------------------------------------------------
// The chain, as envoy/gateway.yaml ships it

/// The wasm filters of `envoy/gateway.yaml` in chain order, each with its config pointed at
/// `oauth`.
fn shipped_filters(oauth: &OAuthServer) -> Vec<(String, Value)> {
    let path = harness::paths::workspace_root().join("envoy").join("gateway.yaml");
    let env = Environment::oauth(oauth);
    embedded_configs(&path, |text| serde_yaml_ng::from_str::<Value>(text))
        .into_iter()
        .map(|c| (c.root_id, localize(c.config, &env)))
        .collect()
}

/// The servers behind one family's gateway.
struct Backends {
    oauth: OAuthServer,
    rls: RateLimitService,
}

impl Backends {
    fn start() -> Backends {
        let oauth = OAuthServer::start();
        oauth.add_client(Client::new(GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET, ""));
        Backends {
            oauth,
            rls: RateLimitService::start(),
        }
    }
}

/// Which filters run, in the order of `envoy/gateway.yaml`, and how their configs differ from it.
struct Chain {
    filters: Vec<String>,
    configs: BTreeMap<String, Value>,
    concurrency: u32,
    extra_clusters: Vec<Value>,
}

impl Chain {
    /// The whole shipped chain: header-scrub, phantom-token, jwt-auth, scope-gate, rate-limit.
    fn shipped(backends: &Backends) -> Chain {
        let shipped = shipped_filters(&backends.oauth);
        let filters: Vec<String> = shipped.iter().map(|(name, _)| name.clone()).collect();
        assert_eq!(
            filters,
            ["header_scrub", "phantom_token", "jwt_auth", "scope_gate", "rate_limit"],
            "envoy/gateway.yaml runs another chain than this suite expects"
        );
        let mut chain = Chain {
            filters,
            configs: shipped.into_iter().collect(),
            concurrency: 1,
            extra_clusters: vec![
                static_cluster("oauth", backends.oauth.addr()),
                grpc_cluster("ratelimit", backends.rls.grpc_addr()),
            ],
        };
        // The suite's own traffic must not trip the shipped 5-a-minute limit, except in the
        // rate-limit family, which sets its own.
        chain.set_local_limit(100_000, "minute");
        chain
    }

    /// The shipped chain with clients presenting JWTs to jwt-auth directly (no phantom-token).
    fn jwt(backends: &Backends) -> Chain {
        let mut chain = Self::shipped(backends);
        chain.filters.retain(|f| f != "phantom_token");
        chain
    }

    fn merge(&mut self, filter: &str, extra: Value) {
        let config = self
            .configs
            .get_mut(filter)
            .unwrap_or_else(|| panic!("no {filter} config"));
        merge_json(config, extra);
    }

    fn set_local_limit(&mut self, requests: u64, per: &str) {
        let config = self.configs.get_mut("rate_limit").expect("rate_limit config");
        for limit in config["limits"].as_array_mut().expect("limits").iter_mut() {
            if limit["enforce"]["type"] == "local" {
                limit["enforce"]["requests"] = json!(requests);
                limit["enforce"]["per"] = json!(per);
            }
        }
    }

    fn start(self) -> Gateway {
        let Chain {
            configs,
            filters,
            concurrency,
            extra_clusters,
        } = self;
        let gw = Gateway::start_with(|c: GatewayConfig| {
            let mut c = c
                .concurrency(concurrency)
                .hcm("server_header_transformation", json!("PASS_THROUGH"));
            for cluster in extra_clusters {
                c = c.extra_cluster(cluster);
            }
            for filter in &filters {
                c = c.filter(filter, configs[filter].clone());
            }
            c
        });
        for filter in filters
            .iter()
            .filter(|f| ["phantom_token", "jwt_auth"].contains(&f.as_str()))
        {
            gw.wait_until(&format!("{filter} to fetch the IdP's keys"), || {
                gw.envoy.counter(&format!("wasmcustom.apisec.{filter}.jwks_fetch_ok")) >= 1
            });
        }
        gw
    }
}

fn bearer(path: &str, token: &str) -> Request {
    Request::get(path).header("Authorization", &format!("Bearer {token}"))
}

// ---------------------------------------------------------------------------------------------
// Token crafting

/// Mints tokens for one IdP: valid by default (scope `orders:read`), bent as each case needs.
struct Mint<'a> {
    oauth: &'a OAuthServer,
}

impl Mint<'_> {
    /// Default claims plus `scope: orders:read`, with `extra` merged over them (`null` removes).
    fn claims(&self, extra: Value) -> Value {
        let mut claims = self.oauth.claims(json!({"scope": "orders:read"}));
        if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            for (k, v) in extra {
                if v.is_null() {
                    claims.remove(&k);
                } else {
                    claims.insert(k, v);
                }
            }
        }
        claims
    }

    fn spec(&self, alg: &str, kid: &str, extra: Value) -> TokenSpec {
        TokenSpec::new(alg, kid).claims(self.claims(extra))
    }

    fn token(&self, spec: TokenSpec) -> String {
        self.oauth.mint(spec)
    }

    /// A valid RS256 token (trusted key `rsa-1`) with `extra` claims.
    fn valid(&self, extra: Value) -> String {
        self.token(self.spec("RS256", "rsa-1", extra))
    }

    /// An RS256 token signed by `rsa-1` over exactly these payload bytes.
    fn raw_payload(&self, payload: &[u8]) -> String {
        self.token(TokenSpec::new("RS256", "rsa-1").raw_payload(payload))
    }

    /// The default claims as JSON text without the closing brace, for hand-written payloads.
    fn payload_prefix(&self) -> String {
        self.payload_prefix_with(json!({}))
    }

    /// [`Mint::payload_prefix`] of the claims with `extra` merged.
    fn payload_prefix_with(&self, extra: Value) -> String {
        let text = self.claims(extra).to_string();
        text.trim_end_matches('}').to_owned()
    }
}

/// Splits a compact JWS into its three segments.
fn segments(token: &str) -> (String, String, String) {
    let mut parts = token.splitn(3, '.');
    let mut next = || parts.next().unwrap_or_default().to_owned();
    (next(), next(), next())
}

/// The order of P-256 (n), big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

fn concat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = a.to_vec();
    out.extend_from_slice(b);
    out
}

/// An ECDSA `r || s` signature re-encoded as ASN.1 DER (what JWS forbids).
fn der_signature(raw: &[u8]) -> Vec<u8> {
    let (r, s) = raw.split_at(raw.len() / 2);
    let integer = |v: &[u8]| {
        let trimmed: Vec<u8> = v.iter().copied().skip_while(|b| *b == 0).collect();
        let mut body = if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
            vec![0]
        } else {
            Vec::new()
        };
        body.extend_from_slice(&trimmed);
        let mut out = vec![0x02, body.len() as u8];
        out.extend(body);
        out
    };
    let mut seq = integer(r);
    seq.extend(integer(s));
    let mut out = vec![0x30, seq.len() as u8];
    out.extend(seq);
    out
}

/// The base64url alphabet.
const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `segment` with one of the unused low bits of its last character set: a non-canonical
/// spelling that lenient decoders read as the same bytes.
fn non_canonical(segment: &str) -> String {
    let mut bytes = segment.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        let index = B64URL.iter().position(|c| c == last).unwrap_or(0);
        *last = B64URL[index ^ 1];
    }
    String::from_utf8(bytes).unwrap_or_default()
}

/// `depth` nested arrays, as JSON text.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

// ---------------------------------------------------------------------------------------------
// Family 1: JWTs presented to jwt-auth

fn jwt_cases<'a>(oauth: &'a OAuthServer) -> Vec<Case<'a>> {
    let m = Mint { oauth };
    let now = now_secs();
    let bad = |name: &str, token: String| Case::refused(name, bearer("/orders", &token), 401, Some(INVALID_TOKEN));
    let good = |name: &str, token: String| {
        Case::allowed(name, bearer("/orders", &token)).upstream_header("x-user-id", &["alice"])
    };
    let signed_none = |alg: &str| m.token(m.spec(alg, "rsa-1", json!({})).signing_key(SigningKey::None));
    let rsa_pem = oauth.public_key_pem("rsa-1");
    let rsa_der = {
        let body: String = rsa_pem.lines().filter(|l| !l.starts_with("-----")).collect();
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .expect("the fixture PEM is base64")
    };
    let valid = m.valid(json!({}));
    let (h, p, s) = segments(&valid);
    let es256 = m.token(m.spec("ES256", "ec-1", json!({})));
    let (eh, ep, es) = segments(&es256);
    let es_raw = b64url_decode(&es);
    let es_with = |sig: Vec<u8>| format!("{eh}.{ep}.{}", b64url_encode(&sig));
    // A token whose segments use '-' or '_', to respell in the standard alphabet.
    let std_alphabet = (0..50)
        .map(|i| m.valid(json!({"jti": format!("std-{i}")})))
        .find(|t| t.contains('-') || t.contains('_'))
        .expect("a token with '-' or '_'")
        .replace('-', "+")
        .replace('_', "/");
    let prefix = m.payload_prefix();

    vec![
        // Controls: what must work does.
        good("control: valid RS256", valid.clone()),
        good("control: valid ES256", es256.clone()),
        good("control: valid EdDSA", m.token(m.spec("EdDSA", "ed-1", json!({})))),
        good("control: valid ES384", m.token(m.spec("ES384", "ec384-1", json!({})))),
        Case::allowed(
            "control: lowercase bearer scheme (RFC 7235: case-insensitive)",
            Request::get("/orders").header("Authorization", &format!("bearer {valid}")),
        ),
        // alg tricks
        bad("alg none, no signature", signed_none("none")),
        bad("alg None", signed_none("None")),
        bad("alg NONE", signed_none("NONE")),
        bad("alg nOnE", signed_none("nOnE")),
        bad(
            "alg none keeping a valid RS256 signature",
            format!(
                "{}.{p}.{s}",
                b64url_encode(
                    json!({"alg": "none", "kid": "rsa-1", "typ": "JWT"})
                        .to_string()
                        .as_bytes()
                )
            ),
        ),
        bad("alg empty string", m.token(m.spec("", "rsa-1", json!({})))),
        bad(
            "alg missing",
            m.token(
                m.spec("RS256", "rsa-1", json!({}))
                    .raw_header(br#"{"kid":"rsa-1","typ":"JWT"}"#),
            ),
        ),
        bad(
            "alg as a number",
            m.token(m.spec("RS256", "rsa-1", json!({})).header("alg", json!(256))),
        ),
        bad(
            "alg rs256 lowercase (algorithms are case-sensitive)",
            m.token(m.spec("rs256", "rsa-1", json!({}))),
        ),
        bad(
            "HS256 with the RSA public key PEM as the secret",
            m.token(
                m.spec("HS256", "rsa-1", json!({}))
                    .signing_key(SigningKey::Hmac(rsa_pem.clone().into_bytes())),
            ),
        ),
        bad(
            "HS512 with the RSA public key PEM as the secret",
            m.token(
                m.spec("HS512", "rsa-1", json!({}))
                    .signing_key(SigningKey::Hmac(rsa_pem.clone().into_bytes())),
            ),
        ),
        bad(
            "HS256 with the RSA public key DER as the secret",
            m.token(
                m.spec("HS256", "rsa-1", json!({}))
                    .signing_key(SigningKey::Hmac(rsa_der)),
            ),
        ),
        bad(
            "HS256 without kid, PEM secret",
            m.token(
                m.spec("HS256", "rsa-1", json!({}))
                    .kid(None)
                    .signing_key(SigningKey::Hmac(rsa_pem.into_bytes())),
            ),
        ),
        bad(
            "kty mismatch: ES256 naming the RSA key",
            m.token(
                m.spec("ES256", "rsa-1", json!({}))
                    .signing_key(SigningKey::Fixture("ec-1".into())),
            ),
        ),
        bad(
            "kty mismatch: RS256 naming the EC key",
            m.token(
                m.spec("RS256", "ec-1", json!({}))
                    .signing_key(SigningKey::Fixture("rsa-1".into())),
            ),
        ),
        bad(
            "kty mismatch: EdDSA naming the RSA key",
            m.token(
                m.spec("EdDSA", "rsa-1", json!({}))
                    .signing_key(SigningKey::Fixture("ed-1".into())),
            ),
        ),
        bad(
            "crv mismatch: ES384 naming the P-256 key",
            m.token(
                m.spec("ES384", "ec-1", json!({}))
                    .signing_key(SigningKey::Fixture("ec384-1".into())),
            ),
        ),
        bad(
            "alg mismatch: PS256 with a key published for RS256",
            m.token(m.spec("PS256", "rsa-1", json!({}))),
        ),
        // Keys the token brings itself
        bad(
            "jwk header with the attacker's key",
            m.token(
                m.spec("RS256", "rsa-2", json!({}))
                    .kid(None)
                    .header("jwk", fixture_jwk("rsa-2")),
            ),
        ),
        bad(
            "jwk header with the attacker's key under a trusted kid",
            m.token(
                m.spec("RS256", "rsa-1", json!({}))
                    .header("jwk", fixture_jwk("rsa-2"))
                    .signing_key(SigningKey::Fixture("rsa-2".into())),
            ),
        ),
        bad(
            "jku to the attacker's JWKS",
            m.token(
                m.spec("RS256", "rsa-2", json!({}))
                    .header("jku", json!("http://evil.example/jwks")),
            ),
        ),
        bad(
            "jku to the IdP's own JWKS, signed by an unpublished key",
            m.token(
                m.spec("RS256", "rsa-2", json!({}))
                    .header("jku", json!(oauth.url(JWKS_PATH))),
            ),
        ),
        bad(
            "x5u to the attacker's certificate",
            m.token(
                m.spec("RS256", "rsa-2", json!({}))
                    .header("x5u", json!("http://evil.example/cert.pem")),
            ),
        ),
        bad(
            "x5c with the attacker's certificate",
            m.token(
                m.spec("RS256", "rsa-2", json!({}))
                    .kid(None)
                    .header("x5c", json!(["MIIBszCCAVmgAwIBAgIUQ2VydGlmaWNhdGUgb2YgbWFsbG9yeQ=="])),
            ),
        ),
        // kid content
        bad(
            "kid path traversal to /dev/null, HS256 with an empty secret",
            m.token(
                m.spec("HS256", "../../../../../../dev/null", json!({}))
                    .signing_key(SigningKey::Hmac(Vec::new())),
            ),
        ),
        bad(
            "kid path traversal naming a trusted key file",
            m.token(
                m.spec("RS256", "../keys/rsa-1", json!({}))
                    .signing_key(SigningKey::Fixture("rsa-2".into())),
            ),
        ),
        bad(
            "kid SQL injection",
            m.token(
                m.spec("RS256", "x' UNION SELECT 'rsa-1' --", json!({}))
                    .signing_key(SigningKey::Fixture("rsa-2".into())),
            ),
        ),
        bad(
            "kid trusted plus a NUL",
            m.token(
                m.spec("RS256", "rsa-1\u{0}", json!({}))
                    .signing_key(SigningKey::Fixture("rsa-2".into())),
            ),
        ),
        bad(
            "kid as an object",
            m.token(
                m.spec("RS256", "rsa-1", json!({}))
                    .kid(None)
                    .header("kid", json!({"$ne": null})),
            ),
        ),
        bad(
            "no kid, signed by an unpublished key",
            m.token(m.spec("RS256", "rsa-2", json!({})).kid(None)),
        ),
        bad(
            "kid of 2000 characters",
            m.token(m.spec("RS256", "rsa-1", json!({})).kid(Some(&"k".repeat(2000)))),
        ),
        // The header's key hints are never used, so they cannot make a trusted signature worse.
        good(
            "jku and x5u are ignored: a trusted key still verifies",
            m.token(
                m.spec("RS256", "rsa-1", json!({}))
                    .header("jku", json!("http://evil.example/jwks"))
                    .header("x5u", json!("http://evil.example/cert.pem")),
            ),
        ),
        bad(
            "nested JWT (cty JWT): the payload is a token, not claims",
            m.token(
                m.spec("RS256", "rsa-1", json!({}))
                    .header("cty", json!("JWT"))
                    .raw_payload(valid.as_bytes()),
            ),
        ),
        bad("the Bearer scheme twice", format!("Bearer {valid}")),
        // crit
        bad(
            "crit naming a registered claim",
            m.token(m.spec("RS256", "rsa-1", json!({})).header("crit", json!(["exp"]))),
        ),
        bad(
            "crit b64=false (RFC 7797)",
            m.token(
                m.spec("RS256", "rsa-1", json!({}))
                    .header("crit", json!(["b64"]))
                    .header("b64", json!(false)),
            ),
        ),
        bad(
            "crit empty array",
            m.token(m.spec("RS256", "rsa-1", json!({})).header("crit", json!([]))),
        ),
        // ECDSA signature values (CVE-2022-21449 and range checks)
        bad("ES256 signature of zeros (CVE-2022-21449)", es_with(vec![0; 64])),
        bad(
            "ES256 r = s = n (the group order)",
            es_with(concat(&P256_ORDER, &P256_ORDER)),
        ),
        bad("ES256 r = 0, s valid", es_with(concat(&[0; 32], &es_raw[32..]))),
        bad("ES256 r and s all ones (above n)", es_with(vec![0xff; 64])),
        bad("ES256 signature in DER form", es_with(der_signature(&es_raw))),
        bad("ES256 signature one byte short", es_with(es_raw[..63].to_vec())),
        bad("ES384 signature of zeros", {
            let (h384, p384, _) = segments(&m.token(m.spec("ES384", "ec384-1", json!({}))));
            format!("{h384}.{p384}.{}", b64url_encode(&[0; 96]))
        }),
        // base64url spelling
        bad("padding on the signature", format!("{h}.{p}.{s}==")),
        bad("padding on the header", format!("{h}=.{p}.{s}")),
        bad("standard alphabet (+ and /)", std_alphabet),
        bad("space inside the token", format!("{h}.{p} .{s}")),
        bad("tab inside the token", format!("{h}.{p}\t.{s}")),
        bad("invalid base64 characters", format!("{h}.{p}.{}!*", &s[..s.len() - 2])),
        bad(
            "non-canonical trailing bits in the signature",
            format!("{h}.{p}.{}", non_canonical(&s)),
        ),
        // segments
        bad("one segment", h.clone()),
        bad("two segments", format!("{h}.{p}")),
        bad("four segments", format!("{valid}.{s}")),
        bad("five segments (JWE-shaped)", format!("{h}.{p}.{s}.{s}.{s}")),
        bad("empty header segment", format!(".{p}.{s}")),
        bad("empty payload segment", format!("{h}..{s}")),
        bad("empty signature segment", format!("{h}.{p}.")),
        bad("only dots", "..".to_owned()),
        bad("trailing dot", format!("{valid}.")),
        // JSON
        bad(
            "duplicate alg in the header (none then RS256)",
            m.token(
                m.spec("RS256", "rsa-1", json!({}))
                    .raw_header(br#"{"alg":"none","alg":"RS256","kid":"rsa-1","typ":"JWT"}"#),
            ),
        ),
        bad(
            "duplicate sub in the payload",
            m.raw_payload(format!(r#"{prefix},"sub":"admin"}}"#).as_bytes()),
        ),
        bad(
            "duplicate exp in the payload (expired then valid)",
            m.raw_payload(format!(r#"{prefix},"exp":1}}"#).as_bytes()),
        ),
        bad(
            "duplicate key deep inside a claim",
            m.raw_payload(format!(r#"{prefix},"ctx":{{"a":{{"role":"user","role":"admin"}}}}}}"#).as_bytes()),
        ),
        bad(
            "payload nested 5000 deep",
            m.raw_payload(format!(r#"{prefix},"x":{}}}"#, nested(5000)).as_bytes()),
        ),
        bad(
            "header nested 3000 deep",
            m.token(
                m.spec("RS256", "rsa-1", json!({}))
                    .raw_header(format!(r#"{{"alg":"RS256","kid":"rsa-1","x":{}}}"#, nested(3000)).as_bytes()),
            ),
        ),
        bad(
            "header is not JSON",
            m.token(m.spec("RS256", "rsa-1", json!({})).raw_header(b"{alg:RS256")),
        ),
        bad(
            "header is a JSON array",
            m.token(m.spec("RS256", "rsa-1", json!({})).raw_header(br#"["RS256"]"#)),
        ),
        bad("payload is a JSON string", m.raw_payload(br#""alice""#)),
        bad(
            "payload with trailing garbage",
            m.raw_payload(format!(r#"{prefix}}}xyz"#).as_bytes()),
        ),
        bad(
            "payload not UTF-8",
            m.raw_payload(&[prefix.as_bytes(), b",\"x\":\"\xff\xfe\"}"].concat()),
        ),
        // size
        bad(
            "huge token (over max_token_bytes)",
            m.valid(json!({"pad": "a".repeat(20_000)})),
        ),
        good(
            "huge claim under max_token_bytes",
            m.valid(json!({"pad": "a".repeat(9_000)})),
        ),
        bad("huge token of garbage (40 KB)", "A".repeat(40_000)),
        // claim types
        bad(
            "exp as a numeric string",
            m.valid(json!({"exp": (now + 300).to_string()})),
        ),
        bad("exp as a boolean", m.valid(json!({"exp": true}))),
        bad("exp as an array", m.valid(json!({"exp": [now + 300]}))),
        bad("exp null", m.valid(json!({"exp": null}))),
        bad("exp missing", m.raw_payload(br#"{"sub":"alice","aud":"api"}"#)),
        bad("exp negative", m.valid(json!({"exp": -1}))),
        bad(
            "exp 1e400 (out of range)",
            m.raw_payload(format!(r#"{},"exp":1e400}}"#, m.payload_prefix_with(json!({"exp": null}))).as_bytes()),
        ),
        good(
            "exp fractional (RFC 7519 NumericDate)",
            m.valid(json!({"exp": now as f64 + 300.5})),
        ),
        good("exp 1e20 (RFC 7519: any JSON number)", m.valid(json!({"exp": 1e20}))),
        good(
            "nbf 30 s ahead, within the clock skew",
            m.valid(json!({"nbf": now + 30})),
        ),
        bad(
            "exp fractional in the past",
            m.valid(json!({"exp": now as f64 - 120.5, "iat": now - 600})),
        ),
        bad(
            "expired beyond the skew",
            m.valid(json!({"exp": now - 120, "iat": now - 600})),
        ),
        bad("nbf as a string", m.valid(json!({"nbf": now.to_string()}))),
        bad("nbf in the future", m.valid(json!({"nbf": now + 600}))),
        bad(
            "nbf fractional in the future",
            m.valid(json!({"nbf": now as f64 + 600.5})),
        ),
        bad(
            "iat in the future",
            m.valid(json!({"iat": now + 600, "exp": now + 900})),
        ),
        bad("iat as a string", m.valid(json!({"iat": now.to_string()}))),
        bad("aud as a number", m.valid(json!({"aud": 1}))),
        bad("aud as an object", m.valid(json!({"aud": {"api": true}}))),
        bad("aud array with a number", m.valid(json!({"aud": ["api", 1]}))),
        bad("aud missing", m.valid(json!({"aud": null}))),
        bad("aud in another case", m.valid(json!({"aud": "API"}))),
        good("aud array containing api", m.valid(json!({"aud": ["other", "api"]}))),
        // issuer
        bad(
            "another issuer signed with a trusted key",
            m.valid(json!({"iss": "https://evil.example"})),
        ),
        bad(
            "issuer with a trailing slash",
            m.valid(json!({"iss": format!("{}/", oauth.issuer())})),
        ),
        bad(
            "issuer in upper case",
            m.valid(json!({"iss": oauth.issuer().to_uppercase()})),
        ),
        bad("issuer as an array", m.valid(json!({"iss": [oauth.issuer()]}))),
        bad("issuer missing", m.valid(json!({"iss": null}))),
        // typ (the family's provider accepts JWT and at+jwt)
        bad(
            "typ token-introspection+jwt",
            m.token(
                m.spec("RS256", "rsa-1", json!({}))
                    .header("typ", json!("token-introspection+jwt")),
            ),
        ),
        bad(
            "typ id_token-ish (JWS)",
            m.token(m.spec("RS256", "rsa-1", json!({})).header("typ", json!("JWS"))),
        ),
        bad(
            "typ missing",
            m.token(m.spec("RS256", "rsa-1", json!({})).header("typ", Value::Null)),
        ),
        bad(
            "typ as a number",
            m.token(m.spec("RS256", "rsa-1", json!({})).header("typ", json!(1))),
        ),
        good(
            "typ application/at+jwt (RFC 9068)",
            m.token(
                m.spec("RS256", "rsa-1", json!({}))
                    .header("typ", json!("application/at+jwt")),
            ),
        ),
        // claims the chain turns into headers
        Case::allowed(
            "sub as an object never becomes a header",
            bearer("/orders", &m.valid(json!({"sub": {"admin": true}}))),
        )
        .upstream_header("x-user-id", &[]),
        Case::allowed(
            "sub with CR LF never becomes a header",
            bearer("/orders", &m.valid(json!({"sub": "alice\r\nx-admin: true"}))),
        )
        .upstream_header("x-user-id", &[])
        .upstream_header("x-admin", &[]),
        // scope
        Case::refused(
            "valid token without the route's scope",
            bearer("/orders", &m.valid(json!({"scope": "profile"}))),
            403,
            Some(&insufficient_scope("orders:read orders:write")),
        ),
    ]
}

#[test]
fn jwt_family() {
    let backends = Backends::start();
    let mut chain = Chain::jwt(&backends);
    chain.merge("jwt_auth", json!({"providers": {"demo": {"typ": ["JWT", "at+jwt"]}}}));
    let gw = chain.start();
    let mut family = Family::new("jwt", &gw);
    family.run(jwt_cases(&backends.oauth));
    let valid = Mint { oauth: &backends.oauth }.valid(json!({}));
    family.finish(bearer("/orders", &valid));
}

// ---------------------------------------------------------------------------------------------
// An IdP front: relays introspection to the test OAuth server, or answers what a case needs

/// How the front answers the next introspection requests.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    /// Relay to the test OAuth server (which answers with whatever fault it has).
    Relay,
    /// These exact bytes, then close the connection.
    Raw(Vec<u8>),
    /// Read the request, then reset the connection (TCP RST).
    Reset,
}

/// `HTTP/1.1 <status>` with a content type and a body, framed by `Content-Length`.
fn http_answer(status: u16, content_type: &str, body: &[u8]) -> Answer {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    Answer::Raw(out)
}

/// A loopback HTTP/1.1 server in front of the OAuth server's introspection endpoint. Stops on
/// drop.
struct IdpFront {
    addr: SocketAddr,
    answer: Arc<Mutex<Answer>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl IdpFront {
    fn start(oauth: SocketAddr) -> IdpFront {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the IdP front");
        let addr = listener.local_addr().expect("the IdP front's address");
        let answer = Arc::new(Mutex::new(Answer::Relay));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (answer, stop) = (Arc::clone(&answer), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let answer = answer.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    std::thread::spawn(move || serve(stream, oauth, answer));
                }
            })
        };
        IdpFront {
            addr,
            answer,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap_or_else(|e| e.into_inner()) = answer;
    }
}

impl Drop for IdpFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut stream: TcpStream, oauth: SocketAddr, answer: Answer) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(request) = read_request(&mut stream) else {
        return;
    };
    match answer {
        Answer::Relay => {
            // The OAuth server closing without an answer (Fault::Down) is passed on the same way.
            if let Ok(response) = http::send(oauth, &request) {
                let _ = stream.write_all(&response_bytes(&response));
            }
        }
        Answer::Raw(bytes) => {
            let _ = stream.write_all(&bytes);
        }
        Answer::Reset => {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Reads one HTTP/1.1 request (Content-Length or chunked body) as a [`Request`] to relay.
fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut buf).ok().filter(|n| *n > 0)?;
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next()?.split(' ');
    let (method, path) = (start.next()?.to_owned(), start.next()?.to_owned());
    let mut request = Request::new(&method, &path);
    let (mut length, mut chunked) = (0usize, false);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let (name, value) = (name.trim(), value.trim());
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().ok()?,
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" | "keep-alive" => {}
            _ => request = request.header(name, value),
        }
    }
    let mut body = raw.split_off(head_end + 4);
    loop {
        let done = if chunked {
            body.ends_with(b"0\r\n\r\n")
        } else {
            body.len() >= length
        };
        if done {
            break;
        }
        let n = stream.read(&mut buf).ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&buf[..n]);
    }
    request.body = if chunked {
        http::decode_chunked(&body).ok()?
    } else {
        body
    };
    Some(request)
}

fn response_bytes(response: &Response) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} X\r\n", response.status).into_bytes();
    for (name, value) in &response.headers {
        if ["content-length", "transfer-encoding", "connection"].contains(&name.as_str()) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\nConnection: close\r\n\r\n", response.body.len()).as_bytes());
    out.extend_from_slice(&response.body);
    out
}

// ---------------------------------------------------------------------------------------------
// Family 2: what the IdP answers phantom-token

/// The introspection answer formats the family runs against.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    /// `application/jwt`, as `envoy/gateway.yaml` ships it.
    Jwt,
    /// RFC 7662 JSON with the JWT in `jwt`.
    Json,
}

/// A gateway whose phantom-token asks the IdP through `front`, in `format`.
fn introspection_gateway(backends: &Backends, front: &IdpFront, format: Format) -> Gateway {
    let mut chain = Chain::shipped(backends);
    chain.extra_clusters.push(static_cluster("idp", front.addr));
    chain.merge(
        "phantom_token",
        json!({"introspection": {"cluster": "idp", "timeout_ms": INTROSPECTION_TIMEOUT_MS}}),
    );
    if format == Format::Json {
        chain.merge(
            "phantom_token",
            json!({"introspection": {"response": {"type": "json", "field": "jwt"}}}),
        );
    }
    chain.start()
}

/// phantom-token's introspection timeout in this family (the shipped 2000 ms, shortened so
/// that the slow-IdP case is quick).
const INTROSPECTION_TIMEOUT_MS: u64 = 1000;

fn introspection_cases<'a>(oauth: &'a OAuthServer, front: &'a IdpFront, format: Format) -> Vec<Case<'a>> {
    let m = Mint { oauth };
    let now = now_secs();
    // Each case presents a fresh opaque token: answers are cached by token.
    let opaque = || oauth.opaque_token(json!({"scope": "orders:read"}));
    let idp = move |answer: Answer, fault: Fault| {
        move || {
            front.set(answer.clone());
            oauth.set_fault_at(INTROSPECT_PATH, fault.clone());
        }
    };
    let case = |name: &str, answer: Answer, fault: Fault, status: u16, challenge: Option<&str>| {
        Case::new(name, bearer("/orders", &opaque()), status, challenge, status == 200).setup(idp(answer, fault))
    };
    let answered = |name: &str, answer: Answer, status: u16, challenge: Option<&str>| {
        case(name, answer, Fault::None, status, challenge)
    };
    let faulty = |name: &str, fault: Fault, status: u16| case(name, Answer::Relay, fault, status, None);
    let jwt_body = |token: String| match format {
        Format::Jwt => http_answer(200, "application/jwt", token.as_bytes()),
        Format::Json => http_answer(
            200,
            "application/json",
            json!({"active": true, "scope": "orders:read", "jwt": token})
                .to_string()
                .as_bytes(),
        ),
    };
    let json_body = |body: Value| http_answer(200, "application/json", body.to_string().as_bytes());

    let mut cases = vec![
        {
            let token = opaque();
            let jwt = oauth.phantom_jwt(&token).expect("a phantom JWT");
            Case::allowed("control: an active token", bearer("/orders", &token))
                .setup(idp(Answer::Relay, Fault::None))
                .upstream_header("authorization", &[&format!("Bearer {jwt}")])
                .upstream_header("x-user-id", &["alice"])
        },
        Case::refused(
            "an unknown token (inactive)",
            bearer("/orders", "made-up-opaque-token-0123456789"),
            401,
            Some(INVALID_TOKEN),
        )
        .setup(idp(Answer::Relay, Fault::None)),
        faulty("IdP answers HTML", Fault::Html, 502),
        answered(
            "IdP answers an empty 200",
            http_answer(200, "application/jwt", b""),
            502,
            None,
        ),
        answered(
            "IdP answers 200 with no Content-Type and no body",
            Answer::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()),
            502,
            None,
        ),
        answered(
            "IdP answers garbage bytes",
            http_answer(200, "application/jwt", b"\xff\xfe\x00garbage"),
            502,
            None,
        ),
        faulty(
            "IdP answers a JWT whose signature is not its key's",
            Fault::WrongSignature,
            502,
        ),
        answered(
            "IdP answers a JWT signed by an unknown key",
            jwt_body(m.token(m.spec("RS256", "rsa-3", json!({})))),
            502,
            None,
        ),
        answered(
            "IdP answers an alg none JWT",
            jwt_body(m.token(m.spec("none", "rsa-1", json!({})).signing_key(SigningKey::None))),
            502,
            None,
        ),
        answered(
            "IdP answers a JWT of another issuer",
            jwt_body(m.valid(json!({"iss": "https://evil.example"}))),
            502,
            None,
        ),
        answered(
            "IdP answers an expired JWT",
            jwt_body(m.valid(json!({"iat": now - 900, "exp": now - 600}))),
            502,
            None,
        ),
        answered(
            "IdP answers a JWT for another audience",
            jwt_body(m.valid(json!({"aud": "other-api"}))),
            502,
            None,
        ),
        answered(
            "IdP answers a token-introspection+jwt as the access token",
            jwt_body(
                m.token(
                    m.spec("RS256", "rsa-1", json!({}))
                        .header("typ", json!("token-introspection+jwt")),
                ),
            ),
            502,
            None,
        ),
        faulty("IdP answers a huge body", Fault::HugeBody, 502),
        faulty("IdP answers 401", Fault::Status(401), 502),
        faulty("IdP answers 403", Fault::Status(403), 502),
        faulty("IdP answers 404", Fault::Status(404), 502),
        faulty("IdP answers 500", Fault::Status(500), 502),
        answered(
            "IdP answers a redirect",
            Answer::Raw(b"HTTP/1.1 302 Found\r\nLocation: http://evil.example/\r\nContent-Length: 0\r\n\r\n".to_vec()),
            502,
            None,
        ),
        faulty("IdP answers 503", Fault::Status(503), 503),
        faulty(
            "IdP answers 503 with Retry-After",
            Fault::Unavailable {
                retry_after: Some("7".into()),
            },
            503,
        )
        .check(|response, _| match response.header("retry-after").as_deref() {
            Some("7") => Ok(()),
            other => Err(format!("Retry-After {other:?}, expected 7")),
        }),
        faulty(
            "IdP answers slower than the timeout",
            Fault::Slow(Duration::from_millis(INTROSPECTION_TIMEOUT_MS + 500)),
            503,
        ),
        faulty("IdP closes the connection without an answer", Fault::Down, 503),
        case("IdP resets the connection", Answer::Reset, Fault::None, 503, None),
        answered(
            "IdP answer truncated (Content-Length larger than the body)",
            Answer::Raw(
                [
                    &b"HTTP/1.1 200 OK\r\nContent-Type: application/jwt\r\nContent-Length: 500\r\n"[..],
                    b"\r\neyJhbGciOi",
                ]
                .concat(),
            ),
            503,
            None,
        ),
    ];
    match format {
        Format::Jwt => cases.extend([answered(
            "IdP answers a valid JWT followed by garbage",
            http_answer(
                200,
                "application/jwt",
                format!("{} trailing", m.valid(json!({}))).as_bytes(),
            ),
            502,
            None,
        )]),
        Format::Json => {
            let jwt = m.valid(json!({}));
            cases.extend([
                answered(
                    "active \"true\" as a string",
                    json_body(json!({"active": "true", "jwt": jwt})),
                    502,
                    None,
                ),
                answered("active 1", json_body(json!({"active": 1, "jwt": jwt})), 502, None),
                answered("active null", json_body(json!({"active": null, "jwt": jwt})), 502, None),
                answered("active missing", json_body(json!({"jwt": jwt})), 502, None),
                answered(
                    "active false with a JWT",
                    json_body(json!({"active": false, "jwt": jwt})),
                    401,
                    Some(INVALID_TOKEN),
                ),
                answered(
                    "active true without a JWT",
                    json_body(json!({"active": true})),
                    502,
                    None,
                ),
                answered(
                    "active true with a number for the JWT",
                    json_body(json!({"active": true, "jwt": 42})),
                    502,
                    None,
                ),
                // RFC 8259 leaves duplicate names to the parser: an answer that says both is not
                // an answer (jwt-auth refuses duplicate members in tokens for the same reason).
                answered(
                    "duplicate active (false, then true)",
                    http_answer(
                        200,
                        "application/json",
                        format!(r#"{{"active":false,"active":true,"jwt":"{jwt}"}}"#).as_bytes(),
                    ),
                    502,
                    None,
                ),
                answered(
                    "a JSON array",
                    json_body(json!([{"active": true, "jwt": jwt}])),
                    502,
                    None,
                ),
                answered(
                    "JSON nested 10000 deep",
                    http_answer(
                        200,
                        "application/json",
                        format!(r#"{{"active":true,"x":{}}}"#, nested(10_000)).as_bytes(),
                    ),
                    502,
                    None,
                ),
            ]);
        }
    }
    cases
}

/// The introspection family in one answer format: the OAuth server's own faults (relayed by the
/// front) and the answers only a hand-written reply can give.
fn introspection_family(name: &'static str, format: Format) {
    let backends = Backends::start();
    let front = IdpFront::start(backends.oauth.addr());
    let gw = introspection_gateway(&backends, &front, format);
    let mut family = Family::new(name, &gw);
    family.run(introspection_cases(&backends.oauth, &front, format));
    front.set(Answer::Relay);
    backends.oauth.set_fault(Fault::None);
    let token = backends.oauth.opaque_token(json!({"scope": "orders:read"}));
    family.finish(bearer("/orders", &token));
}

#[test]
fn introspection_family_jwt_answers() {
    introspection_family("introspection/jwt", Format::Jwt);
}

#[test]
fn introspection_family_json_answers() {
    introspection_family("introspection/json", Format::Json);
}

// ---------------------------------------------------------------------------------------------
// Family 3: hostile headers against the whole shipped chain (opaque tokens)

fn header_cases<'a>(oauth: &'a OAuthServer, introspections: &'a std::cell::Cell<usize>) -> Vec<Case<'a>> {
    let opaque = || oauth.opaque_token(json!({"scope": "orders:read"}));
    let auth = |path: &str, value: &str| Request::get(path).header("Authorization", value);
    let with_token = |request: Request| request.header("Authorization", &format!("Bearer {}", opaque()));
    let no_identity = |case: Case<'a>| {
        case.upstream_header("x-user-id", &[])
            .upstream_header("x-user-scope", &[])
            .upstream_header("x-jwt-payload", &[])
    };
    let count_introspections = move || introspections.set(oauth.introspection_requests().len());
    let not_introspected = move |_: &Response, _: &[RecordedRequest]| {
        let now = oauth.introspection_requests().len();
        if now == introspections.get() {
            Ok(())
        } else {
            Err(format!("the IdP was asked {} times", now - introspections.get()))
        }
    };
    let (token, other) = (opaque(), opaque());
    let jwt = oauth.phantom_jwt(&token).expect("a phantom JWT");
    let payload = segments(&jwt).1;
    let many_headers = (0..150).fold(Request::get("/public/x"), |r, i| r.header(&format!("x-h{i}"), "v"));
    let big_headers = (0..70).fold(Request::get("/public/x"), |r, i| {
        r.header(&format!("x-big{i}"), &"b".repeat(1000))
    });

    vec![
        Case::allowed("control: a valid opaque token", bearer("/orders", &token))
            .upstream_header("authorization", &[&format!("Bearer {jwt}")])
            .upstream_header("x-user-id", &["alice"]),
        // duplicate credentials
        Case::refused(
            "two Authorization headers, the same token",
            bearer("/orders", &token).header("Authorization", &format!("Bearer {token}")),
            400,
            Some(INVALID_REQUEST),
        ),
        Case::refused(
            "two Authorization headers, valid then forged",
            bearer("/orders", &token).header("Authorization", "Bearer forged-token-0123456789"),
            400,
            Some(INVALID_REQUEST),
        ),
        Case::refused(
            "two Authorization headers, forged then valid",
            bearer("/orders", "forged-token-0123456789").header("Authorization", &format!("Bearer {token}")),
            400,
            Some(INVALID_REQUEST),
        ),
        Case::refused(
            "authorization and AUTHORIZATION",
            Request::get("/orders")
                .header("authorization", &format!("Bearer {token}"))
                .header("AUTHORIZATION", &format!("Bearer {other}")),
            400,
            Some(INVALID_REQUEST),
        ),
        Case::refused(
            "two Authorization headers on a token-optional route",
            bearer("/public/x", &token).header("Authorization", &format!("Bearer {other}")),
            400,
            Some(INVALID_REQUEST),
        ),
        Case::refused(
            "two bearer tokens comma-joined in one header",
            auth("/orders", &format!("Bearer {token}, Bearer {other}")),
            400,
            Some(INVALID_REQUEST),
        ),
        // identity headers a client must never control
        Case::allowed(
            "spoofed identity headers in mixed case, with a valid token",
            with_token(Request::get("/orders"))
                .header("x-user-id", "admin")
                .header("X-User-Id", "root")
                .header("X-USER-ID", "mallory")
                .header("x-User-Scope", "admin orders:write")
                .header("X-JWT-Payload", "eyJzdWIiOiJhZG1pbiJ9"),
        )
        .upstream_header("x-user-id", &["alice"])
        .upstream_header("x-user-scope", &["orders:read"]),
        Case::allowed(
            "spoofed x-jwt-payload with a valid token",
            bearer("/orders", &token).header("X-Jwt-Payload", "eyJzdWIiOiJhZG1pbiJ9"),
        )
        .upstream_header("x-jwt-payload", &[&payload]),
        no_identity(Case::allowed(
            "spoofed identity headers on a public route",
            Request::get("/public/x")
                .header("X-User-Id", "admin")
                .header("x-user-scope", "admin")
                .header("x-jwt-payload", "eyJzdWIiOiJhZG1pbiJ9"),
        )),
        Case::refused(
            "underscore variant x_user_id",
            Request::get("/public/x").header("x_user_id", "admin"),
            400,
            None,
        ),
        Case::refused(
            "underscore variant X_User_Scope with a valid token",
            with_token(Request::get("/orders")).header("X_User_Scope", "admin"),
            400,
            None,
        ),
        Case::allowed(
            "internal header prefix",
            Request::get("/public/x").header("X-Internal-Role", "admin"),
        )
        .upstream_header("x-internal-role", &[]),
        Case::allowed(
            "non-UTF-8 x-user-id with a valid token",
            with_token(Request::get("/orders")).header_bytes(b"x-user-id", b"\xff\xfeadmin"),
        )
        .upstream_header("x-user-id", &["alice"]),
        no_identity(Case::allowed(
            "non-UTF-8 identity headers on a public route",
            Request::get("/public/x")
                .header_bytes(b"X-User-Id", b"adm\xe9n")
                .header_bytes(b"x-jwt-payload", b"\x80\x81"),
        )),
        // bytes in header values
        Case::refused(
            "control byte in a header value",
            Request::get("/public/x").header_bytes(b"X-Note", b"a\x01b"),
            400,
            None,
        ),
        Case::refused(
            "NUL in the Authorization value",
            Request::get("/orders").header_bytes(b"Authorization", format!("Bearer {token}\0x").as_bytes()),
            400,
            None,
        ),
        Case::refused(
            "non-UTF-8 bearer token",
            Request::get("/orders").header_bytes(b"Authorization", b"Bearer \xff\xfe\xfd\xfc-token-0123456789"),
            401,
            Some(INVALID_TOKEN),
        ),
        // Envoy replaces an obs-fold with a space (RFC 9112 5.2 allows that instead of a 400):
        // the folded value is an ordinary credential, checked like any other.
        Case::allowed(
            "obs-fold continuation in Authorization, valid token",
            Request::get("/orders").header_bytes(b"Authorization", format!("Bearer\r\n {token}").as_bytes()),
        )
        .upstream_header("authorization", &[&format!("Bearer {jwt}")]),
        Case::refused(
            "obs-fold continuation in Authorization, forged token",
            Request::get("/orders").header_bytes(b"Authorization", b"Bearer\r\n forged-token-0123456789"),
            401,
            Some(INVALID_TOKEN),
        ),
        Case::refused(
            "space before the colon of a header name",
            Request::get("/public/x").header_bytes(b"X-User-Id ", b"admin"),
            400,
            None,
        ),
        // sizes
        Case::refused(
            "bearer token over max_token_bytes, never sent to the IdP",
            bearer("/orders", &"a".repeat(10_000)),
            401,
            Some(INVALID_TOKEN),
        )
        .setup(count_introspections)
        .check(not_introspected),
        Case::refused(
            "oversized Authorization (100 KB)",
            bearer("/orders", &"a".repeat(100_000)),
            431,
            None,
        ),
        Case::refused("headers over 60 KB in total", big_headers, 431, None),
        Case::refused("150 headers", many_headers, 431, None),
        // credentials in the wrong place or shape
        Case::refused("no token", Request::get("/orders"), 401, Some(BARE)),
        Case::refused(
            "the Bearer scheme without a token",
            auth("/orders", "Bearer"),
            401,
            Some(BARE),
        ),
        Case::refused(
            "Basic credentials",
            auth("/orders", "Basic YWxpY2U6c2VjcmV0"),
            401,
            Some(BARE),
        ),
        // RFC 6750 2.1: "Bearer" 1*SP b64token; with a tab it is no bearer credential at all.
        Case::refused(
            "a tab between scheme and token",
            auth("/orders", &format!("Bearer\t{token}")),
            401,
            Some(BARE),
        ),
        Case::refused(
            "the token in Proxy-Authorization",
            Request::get("/orders").header("Proxy-Authorization", &format!("Bearer {token}")),
            401,
            Some(BARE),
        ),
        Case::refused(
            "the token in the query string",
            Request::get(&format!("/orders?access_token={token}")),
            401,
            Some(BARE),
        ),
        Case::refused(
            "the token in X-Access-Token",
            Request::get("/orders").header("X-Access-Token", &token),
            401,
            Some(BARE),
        ),
        Case::refused(
            "a validly signed JWT the IdP never issued (JWTs are introspected too)",
            bearer("/orders", &Mint { oauth }.valid(json!({"sub": "admin"}))),
            401,
            Some(INVALID_TOKEN),
        ),
        // CORS: a preflight is answered by the gateway; anything else that looks like one is not
        // a way around the token.
        Case::refused(
            "a CORS preflight from an allowed origin is answered by the gateway",
            Request::options("/orders")
                .header("Origin", "http://localhost:3000")
                .header("Access-Control-Request-Method", "DELETE"),
            204,
            None,
        ),
        Case::refused(
            "a CORS preflight from another origin",
            Request::options("/orders")
                .header("Origin", "https://evil.example")
                .header("Access-Control-Request-Method", "GET"),
            403,
            None,
        ),
        Case::refused(
            "OPTIONS with an Origin but no Access-Control-Request-Method needs a token",
            Request::options("/orders").header("Origin", "http://localhost:3000"),
            401,
            Some(BARE),
        ),
        Case::refused(
            "GET with preflight headers needs a token",
            Request::get("/orders")
                .header("Origin", "http://localhost:3000")
                .header("Access-Control-Request-Method", "GET"),
            401,
            Some(BARE),
        ),
        // framing
        // Envoy joins two Host headers into one comma-separated value (RFC 9112 3.2 says 400);
        // whatever the host, a request without credentials stays out.
        Case::refused(
            "two Host headers without a token",
            Request::get("/orders")
                .header("Host", DEFAULT_HOST)
                .header("Host", "admin.internal"),
            401,
            Some(BARE),
        ),
        Case::refused(
            "Content-Length and Transfer-Encoding together (smuggling)",
            Request::post("/public/x", "0\r\n\r\nGET /orders HTTP/1.1\r\nHost: x\r\n\r\n")
                .header("Content-Length", "5")
                .header("Transfer-Encoding", "chunked"),
            400,
            None,
        ),
    ]
}

#[test]
fn headers_family() {
    let backends = Backends::start();
    let gw = Chain::shipped(&backends).start();
    let introspections = std::cell::Cell::new(0);
    let mut family = Family::new("headers", &gw);
    family.run(header_cases(&backends.oauth, &introspections));
    let token = backends.oauth.opaque_token(json!({"scope": "orders:read"}));
    family.finish(bearer("/orders", &token));
}

// ---------------------------------------------------------------------------------------------
// Family 4: path and scope tricks against scope-gate

/// `%XX` decoded (repeatedly, so double encoding too), overlong UTF-8 for `.` and `/` read as
/// them, lowercased, backslashes read as slashes: the most generous reading an upstream might
/// give a path.
fn generous_reading(path: &str) -> String {
    let mut text = path.to_ascii_lowercase().replace("%c0%ae", ".").replace("%c0%af", "/");
    for _ in 0..3 {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'%', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (byte, _) => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        text = String::from_utf8_lossy(&out).into_owned();
    }
    text.to_ascii_lowercase().replace('\\', "/")
}

/// Whether an upstream reading `path` generously could serve `/admin` from it.
fn reaches_admin(path: &str) -> bool {
    let path = generous_reading(path);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment.split(';').next().unwrap_or_default() {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    segments.first() == Some(&"admin")
}

/// Path tricks against `/admin`, by a token without the `admin` scope, and what the gateway
/// does with each: refused (status), or passed on to a path that is not `/admin`.
const ADMIN_TRICKS: &[(&str, u16)] = &[
    ("/admin", 403),
    ("/admin/users", 403),
    ("/public/../admin", 403),
    ("/public/./../admin", 403),
    ("/public/%2e%2e/admin", 403),
    ("/public/%2E%2E/admin", 403),
    ("/public/.%2e/admin", 403),
    ("/%61dmin", 403),
    ("/ad%6Din/users", 403),
    ("/ADMIN", 403),
    ("/Admin/users", 403),
    ("//admin", 403),
    ("///admin//users", 403),
    ("/./admin", 403),
    ("/admin/.", 403),
    ("/admin?/public/", 403),
    ("/admin?x=/public/../orders", 403),
    // Envoy redirects escaped slashes to the unescaped path, which the client must ask again.
    ("/admin%2f", 307),
    ("/public%2f..%2fadmin", 307),
    ("/public/..%2fadmin", 307),
    ("/public/..%5cadmin", 307),
    ("/public/%2e%2e%2fadmin", 307),
    ("/%2fadmin", 307),
    ("/public/..\\admin", 403),
    ("/admin;/public/", 400),
    // Envoy's normalisation reads `..;` as `..`: this is /admin by the time the filters run.
    ("/public/..;/admin", 403),
    ("/admin%00/public", 400),
    ("/admin%252f", 400),
    ("/admin#/public/", 400),
    // Overlong UTF-8 for '.': dot segments to a decoder that accepts it (CWE-176).
    ("/public/%c0%ae%c0%ae/admin", 400),
    ("/admin\u{0}", 400),
];

fn scope_cases(oauth: &OAuthServer) -> Vec<Case<'_>> {
    let m = Mint { oauth };
    let reader = m.valid(json!({}));
    let admin = m.valid(json!({"scope": "admin orders:read"}));
    let as_reader = |path: &str| bearer(path, &reader);
    let not_admin = |_: &Response, seen: &[RecordedRequest]| match seen.iter().find(|r| reaches_admin(&r.path)) {
        Some(r) => Err(format!("the upstream was asked for {:?}, an /admin path", r.path)),
        None => Ok(()),
    };
    let admin_denied = insufficient_scope("admin");
    let mut cases = vec![
        Case::allowed("control: an admin token on /admin", bearer("/admin/users", &admin)),
        Case::allowed("control: a reader on /orders", as_reader("/orders/1")),
        Case::allowed("control: public without a token", Request::get("/public/status")),
    ];
    for (path, status) in ADMIN_TRICKS {
        let challenge = (*status == 403).then_some(admin_denied.as_str());
        cases.push(Case::refused(format!("reader on {path:?}"), as_reader(path), *status, challenge).check(not_admin));
    }
    cases.extend([
        // Dot segments and slashes that legitimately land elsewhere are passed on, normalised.
        Case::allowed("/admin/../public/x lands on /public/x", as_reader("/admin/../public/x"))
            .check(not_admin)
            .check(|_, seen| match seen.first().map(|r| r.path.as_str()) {
                Some("/public/x") => Ok(()),
                other => Err(format!("upstream path {other:?}, expected /public/x")),
            }),
        Case::allowed(
            "/public//../admin lands on /public/admin",
            as_reader("/public//../admin"),
        )
        .check(not_admin),
        Case::refused(
            "no token on /public/../admin",
            Request::get("/public/../admin"),
            401,
            Some(BARE),
        ),
        Case::refused(
            "no token on /public/%c0%ae%c0%ae/admin (overlong UTF-8 dots)",
            Request::get("/public/%c0%ae%c0%ae/admin"),
            400,
            None,
        )
        .check(not_admin),
        Case::refused(
            "no token on /PUBLIC/status",
            Request::get("/PUBLIC/status"),
            401,
            Some(BARE),
        ),
        Case::refused(
            "absolute-form request target to /admin",
            bearer("http://gateway.test/admin", &reader),
            403,
            Some(&admin_denied),
        )
        .check(not_admin),
        Case::refused(
            "absolute-form request target naming another host",
            bearer("http://admin.internal/public/../admin", &reader),
            403,
            Some(&admin_denied),
        )
        .check(not_admin),
        Case::refused(
            "no token on /public%2f..%2forders",
            Request::get("/public%2f..%2forders"),
            307,
            None,
        ),
        // methods
        Case::refused(
            "HEAD /admin",
            Request::new("HEAD", "/admin").header("Authorization", &format!("Bearer {reader}")),
            403,
            Some(&admin_denied),
        ),
        Case::refused(
            "POST /orders without orders:write",
            Request::post("/orders", "{}")
                .header("Content-Type", "application/json")
                .header("Authorization", &format!("Bearer {reader}")),
            403,
            Some(&insufficient_scope("orders:write")),
        ),
        // Methods are case-sensitive (RFC 9110 9.1); Envoy's codec refuses a lowercase one.
        Case::refused(
            "lowercase post /orders without orders:write",
            Request::new("post", "/orders")
                .header("Content-Type", "application/json")
                .header("Authorization", &format!("Bearer {reader}")),
            400,
            None,
        ),
        // scope claims
        Case::refused(
            "scope orders:readx",
            bearer("/orders", &m.valid(json!({"scope": "orders:readx"}))),
            403,
            Some(&insufficient_scope("orders:read orders:write")),
        ),
        Case::refused(
            "scope ORDERS:READ",
            bearer("/orders", &m.valid(json!({"scope": "ORDERS:READ"}))),
            403,
            Some(&insufficient_scope("orders:read orders:write")),
        ),
        Case::refused(
            "scope admin as a prefix (adminx)",
            bearer("/admin", &m.valid(json!({"scope": "adminx"}))),
            403,
            Some(&admin_denied),
        ),
        Case::refused(
            "scope admin in an unread claim",
            bearer("/admin", &m.valid(json!({"scopes": "admin"}))),
            403,
            Some(&admin_denied),
        ),
        Case::refused(
            "scope admin tab-separated",
            bearer("/admin", &m.valid(json!({"scope": "orders:read\tadmin"}))),
            403,
            Some(&admin_denied),
        ),
        Case::refused(
            "scope array element with a space",
            bearer("/admin", &m.valid(json!({"scope": ["orders:read admin"]}))),
            403,
            Some(&admin_denied),
        ),
        Case::refused(
            "scope as an object",
            bearer("/admin", &m.valid(json!({"scope": {"admin": true}}))),
            403,
            Some(&admin_denied),
        ),
        Case::allowed(
            "scp array with admin",
            bearer("/admin", &m.valid(json!({"scope": null, "scp": ["admin"]}))),
        ),
    ]);
    cases
}

#[test]
fn scope_family() {
    let backends = Backends::start();
    let mut chain = Chain::jwt(&backends);
    // The shipped rules, plus an /admin rule, and a catch-all for reads so that a path that
    // slips past the /admin rule would be visible at the upstream instead of denied as unmatched.
    // Paths match case-insensitively, as they must for upstreams that treat /Admin as /admin.
    let rules = chain.configs["scope_gate"]["rules"].clone();
    let mut rules: Vec<Value> = rules.as_array().cloned().expect("rules");
    rules.insert(
        1,
        json!({"id": "admin", "match": {"prefix": "/admin"}, "requires": {"type": "any_of", "scopes": ["admin"]}}),
    );
    rules.push(
        json!({"id": "reads", "match": {"prefix": "/", "methods": ["GET", "HEAD"]},
                      "requires": {"type": "any_of", "scopes": ["orders:read"]}}),
    );
    chain.merge("scope_gate", json!({"rules": rules, "case_insensitive_paths": true}));
    let gw = chain.start();
    let mut family = Family::new("scope", &gw);
    family.run(scope_cases(&backends.oauth));
    let reader = Mint { oauth: &backends.oauth }.valid(json!({}));
    family.finish(bearer("/orders", &reader));
}

// ---------------------------------------------------------------------------------------------
// Family 5: dodging the rate limit, and flooding it with keys

/// A loopback address of this family's own: `127.<a>.<b>.<c>`.
fn loopback(a: u8, i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, a, (i / 250) as u8, (i % 250 + 1) as u8))
}

fn rate_limited<'a>(name: &str, request: Request) -> Case<'a> {
    Case::refused(name, request, 429, None).check(|response, _| match response.header("retry-after") {
        Some(secs) if secs.parse::<u64>().is_ok_and(|s| s > 0) => Ok(()),
        other => Err(format!("Retry-After {other:?}")),
    })
}

/// The per-client limit of this family: the shipped 5, per hour instead of per minute, so that
/// no token comes back while the suite runs.
const PER_CLIENT: usize = 5;

/// A limit that tracks only this many descriptors, far fewer than the flood brings.
const MAX_KEYS: u32 = 64;

fn dodge_cases(oauth: &OAuthServer) -> Vec<Case<'_>> {
    let m = Mint { oauth };
    let client_a = m.valid(json!({"client_id": "client-a"}));
    let a = || bearer("/orders", &client_a);
    let address = loopback(9, 0);
    let public = || Request::get("/public/status");
    let mut cases: Vec<Case<'_>> = (1..=PER_CLIENT)
        .map(|n| Case::allowed(format!("client-a request {n}"), a()))
        .collect();
    cases.extend([
        rate_limited("client-a over its limit", a()),
        rate_limited(
            "client-a with X-Forwarded-For",
            a().header("X-Forwarded-For", "203.0.113.7"),
        ),
        rate_limited("client-a with X-Real-IP", a().header("X-Real-IP", "203.0.113.7")),
        rate_limited("client-a with Forwarded", a().header("Forwarded", "for=203.0.113.7")),
        rate_limited(
            "client-a with X-Envoy-External-Address",
            a().header("X-Envoy-External-Address", "203.0.113.7"),
        ),
        // Envoy refuses header names with underscores outright (headers_with_underscores_action).
        Case::refused(
            "client-a with a client_id header",
            a().header("client_id", "client-b"),
            400,
            None,
        ),
        rate_limited("client-a with a Client-Id header", a().header("Client-Id", "client-b")),
        rate_limited("client-a with X-Client-Id", a().header("X-Client-Id", "client-b")),
        rate_limited("client-a with a spoofed x-user-id", a().header("X-User-Id", "bob")),
        rate_limited("client-a from another address", a()).from(loopback(9, 100)),
        rate_limited(
            "another token of client-a",
            bearer(
                "/orders",
                &m.valid(json!({"client_id": "client-a", "sub": "bob", "jti": "other"})),
            ),
        ),
    ]);
    cases.extend((1..=PER_CLIENT).map(|n| Case::allowed(format!("anonymous request {n}"), public()).from(address)));
    cases.extend([
        rate_limited("anonymous over its limit", public()).from(address),
        rate_limited(
            "anonymous with X-Forwarded-For",
            public().header("X-Forwarded-For", "203.0.113.8"),
        )
        .from(address),
        rate_limited("anonymous with X-Real-IP", public().header("X-Real-IP", "203.0.113.8")).from(address),
        rate_limited(
            "anonymous with X-Envoy-External-Address",
            public().header("X-Envoy-External-Address", "203.0.113.8"),
        )
        .from(address),
        rate_limited("anonymous on another path", Request::get("/public/other?x=1")).from(address),
        rate_limited(
            "a token without client_id falls back to the address",
            bearer("/orders", &m.valid(json!({}))),
        )
        .from(address),
        Case::refused(
            "a forged client_id is refused before it counts",
            bearer("/orders", "forged.jwt.token"),
            401,
            Some(INVALID_TOKEN),
        )
        .from(address),
        Case::allowed("control: another address", public()).from(loopback(9, 1)),
        // An early client that used one token: the bucket that has the most left.
        Case::allowed("an early client's first request", public())
            .from(loopback(9, 3))
            .check(remaining(PER_CLIENT - 1)),
    ]);
    cases
}

/// Envoy's resident set size, in KiB.
fn rss_kib(gw: &Gateway) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.envoy.pid())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `count` requests, each from its own loopback address `127.<a>.x.y` to its own path, eight
/// at a time; returns the answers that were not a 200 from the upstream.
fn flood(gw: &Gateway, a: u8, count: u32) -> Vec<String> {
    const THREADS: u32 = 8;
    let addr = gw.envoy.listener();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                scope.spawn(move || {
                    let mut bad = Vec::new();
                    for i in (t..count).step_by(THREADS as usize) {
                        let source = loopback(a, i);
                        let request = Request::get(&format!("/public/flood/{i}"));
                        match http::send_from(source, addr, &request) {
                            Ok(r) if r.status == 200 => {}
                            Ok(r) => bad.push(format!("{source}: {} {}", r.status, r.text())),
                            Err(e) => bad.push(format!("{source}: {e}")),
                        }
                    }
                    bad
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a flood thread"))
            .collect()
    })
}

#[test]
fn rate_limit_family() {
    let backends = Backends::start();
    let mut chain = Chain::jwt(&backends);
    chain.set_local_limit(PER_CLIENT as u64, "hour");
    chain.merge("rate_limit", json!({"max_keys": MAX_KEYS}));
    chain.concurrency = 2;
    let gw = chain.start();
    let mut family = Family::new("rate_limit", &gw);
    family.run(dodge_cases(&backends.oauth));

    // Very many distinct keys: each client address is a new descriptor of the per-client limit
    // (and, with its path, of the service limit). The limit tracks MAX_KEYS of them; a new one
    // takes the slot of the bucket with the most tokens left, so exhausted clients stay limited.
    let warm_up = flood(&gw, 10, 1_000);
    let rss_before = rss_kib(&gw);
    let flooded = Instant::now();
    let errors = flood(&gw, 11, 6_000);
    let flood_time = flooded.elapsed();
    let rss_after = rss_kib(&gw);
    println!(
        "adversarial rate_limit: 6000 distinct keys in {flood_time:.1?}, Envoy RSS {} -> {} KiB",
        rss_before, rss_after
    );
    for (what, errors) in [("warm-up", warm_up), ("flood", errors)] {
        if !errors.is_empty() {
            family.failures.push(format!(
                "rate_limit/{what}: {} requests were not answered 200, e.g. {:?}",
                errors.len(),
                errors.iter().take(3).collect::<Vec<_>>()
            ));
        }
    }
    if rss_before == 0 || rss_after > rss_before + RSS_GROWTH_KIB {
        family.failures.push(format!(
            "rate_limit/flood: Envoy's RSS grew from {rss_before} to {rss_after} KiB \
             (at most {RSS_GROWTH_KIB} KiB allowed)"
        ));
    }
    let store_errors = gw.envoy.counter("wasmcustom.apisec.rate_limit.local_store_error");
    if store_errors != 0 {
        family
            .failures
            .push(format!("rate_limit/flood: {store_errors} shared-data update failures"));
    }
    // After the flood, the exhausted clients are still limited: a flood of keys does not evict
    // them. The early client's bucket, with the most tokens left, was the one to go: it starts
    // afresh, as a limit that tracks a bounded number of keys must.
    let m = Mint { oauth: &backends.oauth };
    family.run(vec![
        rate_limited(
            "client-a still limited after the flood",
            bearer("/orders", &m.valid(json!({"client_id": "client-a"}))),
        ),
        rate_limited(
            "the anonymous address still limited after the flood",
            Request::get("/public/status"),
        )
        .from(loopback(9, 0)),
        Case::allowed(
            "the early client was evicted: a full bucket again",
            Request::get("/public/status"),
        )
        .from(loopback(9, 3))
        .check(remaining(PER_CLIENT - 1)),
        Case::allowed("control: a new client after the flood", Request::get("/public/status")).from(loopback(9, 2)),
    ]);
    let valid = m.valid(json!({"client_id": "client-final"}));
    family.finish(bearer("/orders", &valid));
}

/// How much Envoy's RSS may grow while 6000 new keys arrive: connections and allocator slack
/// (a few hundred KiB are typical), but nothing like state per key (1.4 KB a key would exceed it;
/// the buckets exist before traffic).
const RSS_GROWTH_KIB: u64 = 8 * 1024;

/// The `per_client` tokens the `RateLimit` header (IETF style, as shipped) says are left.
fn remaining<'a>(expected: usize) -> impl Fn(&Response, &[RecordedRequest]) -> Result<(), String> + 'a {
    move |response, _| {
        let header = response.header("ratelimit").unwrap_or_default();
        let left = header
            .split(',')
            .find_map(|item| item.trim().strip_prefix("\"per_client\";r="))
            .and_then(|rest| rest.split(';').next())
            .and_then(|n| n.parse::<usize>().ok());
        if left == Some(expected) {
            Ok(())
        } else {
            Err(format!(
                "RateLimit {header:?}: expected {expected} per_client tokens left"
            ))
        }
    }
}
