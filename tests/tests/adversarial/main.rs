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

mod headers;
mod introspection;
mod jwt;
mod rate_limit;
mod scope;

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
            vms_created: gw.envoy.counter(harness::envoy::VMS_CREATED),
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
        self.failures
            .extend(self.gw.envoy.vm_failures(&gw_plugins(self.gw), self.vms_created));
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
        let (id, secret) = harness::demo::GATEWAY_CLIENT;
        oauth.add_client(Client::new(id, secret, ""));
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
