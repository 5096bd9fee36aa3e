//! The core, driven the way the adapter drives it: config errors, every answer of the OAuth
//! server in each mode, the shared cache and its lifetimes, single-flight per worker, and remote
//! keys refetched for an unknown `kid`.

use base64::Engine;
use ed25519_dalek::Signer;
use serde_json::{json, Value};
use shared::testkit::{with, Configured, FakeHost};
use shared::{Action, CallOutcome, FilterRoot, HeaderEdit, Headers, HttpCall, HttpFilter, Step};
use wasm_bindgen_test::wasm_bindgen_test;

use crate::{Exchange, PhantomToken, CLAIMS_STATE, OUTCOME_STATE};

// Test data -------------------------------------------------------------------------------------

/// The testkit's "now", 2026-01-01T00:00:00Z, in seconds.
const NOW: u64 = 1_767_225_600;
const ISS: &str = "https://idp.example";
const OPAQUE: &str = "nZ3kq0b4hX0V_opaque-token~1";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn ed_key(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

fn jwk(seed: u8, kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(ed_key(seed).verifying_key().as_bytes()), "kid": kid})
}

fn signed(seed: u8, header: Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = ed_key(seed).sign(input.as_bytes()).to_bytes();
    format!("{input}.{}", b64(&signature))
}

/// A JWT the filter accepts: key 1, issuer [`ISS`], audience `api`, `exp` 10 minutes on.
fn jwt(claims: Value) -> String {
    signed(
        1,
        json!({"alg": "EdDSA", "kid": "k1", "typ": "at+jwt"}),
        &with(access_claims(), claims),
    )
}

fn access_claims() -> Value {
    json!({"iss": ISS, "aud": "api", "sub": "alice", "scope": "orders:read", "iat": NOW - 5, "exp": NOW + 600})
}

fn config(response: Value) -> Value {
    json!({
        "realm": "api",
        "introspection": {
            "cluster": "idp", "path": "/introspect", "authority": "idp.example",
            "client_id": "gateway", "client_secret": "gateway-secret", "response": response,
        },
        "jwt": {"issuer": ISS, "audiences": ["api"], "jwks": {"type": "inline", "jwks": {"keys": [jwk(1, "k1")]}}},
    })
}

fn jwt_mode() -> Value {
    config(json!({"type": "jwt"}))
}

fn configured(config: &Value) -> Configured<PhantomToken> {
    Configured::new(&config.to_string()).unwrap_or_else(|e| panic!("config rejected: {e}"))
}

fn config_error(config: &Value) -> String {
    match Configured::<PhantomToken>::new(&config.to_string()) {
        Ok(_) => panic!("config accepted: {config}"),
        Err(e) => e.to_string(),
    }
}

// Requests, answers and steps -------------------------------------------------------------------

fn request(pairs: &[(&str, &str)]) -> Headers {
    let mut headers = Headers::from_pairs([(":method", "GET"), (":path", "/orders")]);
    for (name, value) in pairs {
        headers.push(name, value.as_bytes());
    }
    headers
}

fn bearer(token: &str) -> Headers {
    request(&[("authorization", &format!("Bearer {token}"))])
}

pub(crate) fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> CallOutcome {
    let mut h = Headers::from_pairs([(":status", status.to_string())]);
    for (n, v) in headers {
        h.push(n, v.as_bytes());
    }
    CallOutcome::Response {
        status,
        headers: h,
        body: body.as_bytes().to_vec(),
    }
}

fn ok(body: &str) -> CallOutcome {
    answer(200, &[], body)
}

struct Gateway {
    config: Configured<PhantomToken>,
    host: FakeHost,
}

impl Gateway {
    fn new(config: &Value) -> Self {
        Self {
            config: configured(config),
            host: FakeHost::default(),
        }
    }

    /// A second worker: its own root, the same shared data and clock.
    fn worker(&self, config: &Value) -> Configured<PhantomToken> {
        configured(config)
    }

    fn start(&self, headers: &Headers) -> (Exchange, Step) {
        let mut exchange = self.config.filter();
        let step = exchange.on_request_headers(headers, &self.host.ctx());
        (exchange, step)
    }

    /// A request whose introspection is answered with `outcome`: the step after the answer.
    fn exchange(&self, token: &str, outcome: CallOutcome) -> Step {
        let (mut exchange, step) = self.start(&bearer(token));
        assert_eq!(step.action, Action::Pause, "introspects");
        assert_eq!(step.calls.len(), 1);
        exchange.on_call_response(outcome, &self.host.ctx())
    }

    fn names(&self, step: &Step) -> Vec<String> {
        self.config.counter_names(&step.counters)
    }
}

fn status(step: &Step) -> Option<u16> {
    step.local_reply().map(|r| r.status)
}

fn authorization(step: &Step) -> Option<String> {
    step.header_edits.iter().find_map(|e| match e {
        HeaderEdit::Set(n, v) if n.as_str() == "authorization" => Some(String::from_utf8(v.clone()).unwrap()),
        _ => None,
    })
}

fn state<'a>(step: &'a Step, key: &str) -> Option<&'a [u8]> {
    step.state_writes
        .iter()
        .find(|w| w.key == key)
        .map(|w| w.value.as_slice())
}

fn body(step: &Step) -> Value {
    serde_json::from_slice(&step.local_reply().expect("a reply").body).unwrap()
}

fn form(call: &HttpCall) -> String {
    String::from_utf8(call.body.clone().unwrap()).unwrap()
}

// Config ----------------------------------------------------------------------------------------

#[wasm_bindgen_test(unsupported = test)]
fn config_errors_name_the_field() {
    let cases = [
        (json!({"introspection": null}), "introspection:"),
        (with(jwt_mode(), json!({"extra": 1})), "extra:"),
        (config(json!({"type": "xml"})), "introspection.response.type:"),
        (
            config(json!({"type": "signed", "upstream": {"type": "response_header", "header": "Authorization"}})),
            "introspection.response.upstream.header:",
        ),
        (
            config(json!({"type": "signed", "upstream": {"type": "jwt_field", "field": ""}})),
            "introspection.response.upstream.field:",
        ),
        (
            with(
                jwt_mode(),
                json!({"jwt": {"issuer": ISS, "jwks": {"type": "inline", "jwks": {"keys": []}}}}),
            ),
            "jwt.jwks.jwks:",
        ),
        (
            with(
                jwt_mode(),
                json!({"jwt": {"issuer": ISS, "algorithms": ["none"], "jwks": {"type": "inline", "jwks": {"keys": [jwk(1, "k1")]}}}}),
            ),
            "jwt.algorithms[0]:",
        ),
        (with(jwt_mode(), json!({"cache": {"max_ttl": 5}})), "cache.max_ttl:"),
    ];
    for (config, path) in cases {
        let error = config_error(&config);
        assert!(error.starts_with(path), "{error} should start with {path}");
    }
    let mut no_path = jwt_mode();
    no_path["introspection"]["path"] = json!("introspect");
    assert!(config_error(&no_path).starts_with("introspection.path:"));
}

#[wasm_bindgen_test(unsupported = test)]
fn jwt_values_out_of_bounds_are_refused() {
    let jwt = |changes: Value| {
        let mut config = jwt_mode();
        config["jwt"] = with(config["jwt"].clone(), changes);
        config
    };
    let cases = [
        (jwt(json!({"issuer": ""})), "jwt.issuer: must not be empty"),
        (jwt(json!({"audiences": [""]})), "jwt.audiences[0]: must not be empty"),
        (
            jwt(json!({"clock_skew_secs": 1_000_000_000_000_u64})),
            "jwt.clock_skew_secs: must be at most 300",
        ),
        (
            jwt(json!({"jwks": {"type": "oidc", "cluster": "idp", "refresh_secs": 0}})),
            "jwt.jwks.refresh_secs: must be between 1 and 86400",
        ),
        (
            jwt(json!({"jwks": {"type": "oidc", "cluster": "idp", "max_stale_secs": 0}})),
            "jwt.jwks.max_stale_secs: must be more than refresh_secs (300) and at most 604800",
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(config_error(&config), expected, "{config}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn empty_introspection_values_and_a_token_limit_below_128_are_refused() {
    let signed = |changes: Value| {
        config(with(
            json!({"type": "signed", "upstream": {"type": "jwt_field", "field": "access_token"}}),
            changes,
        ))
    };
    let mut hint = jwt_mode();
    hint["introspection"]["token_type_hint"] = json!("");
    let cases = [
        (
            with(jwt_mode(), json!({"max_token_bytes": 0})),
            "max_token_bytes: must be at least 128",
        ),
        (hint, "introspection.token_type_hint: must not be empty"),
        (
            signed(json!({"issuer": ""})),
            "introspection.response.issuer: must not be empty",
        ),
        (
            signed(json!({"audience": ""})),
            "introspection.response.audience: must not be empty",
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(config_error(&config), expected, "{config}");
    }
    configured(&signed(json!({"issuer": ISS, "audience": "gateway"})));
}

/// The header that carries a signed answer upstream never rewrites the request line, the
/// upstream's authority or the framing.
#[wasm_bindgen_test(unsupported = test)]
fn a_response_header_that_must_never_be_set_is_refused() {
    let header =
        |name: &str| config(json!({"type": "signed", "upstream": {"type": "response_header", "header": name}}));
    let cases = [
        (
            ":path",
            "introspection.response.upstream.header: \":path\" is a pseudo-header; a filter may not set it",
        ),
        (
            "host",
            "introspection.response.upstream.header: \"host\" names the upstream authority; a filter may not set it",
        ),
        (
            "Content-Length",
            "introspection.response.upstream.header: \"content-length\" is a hop-by-hop or framing header; a filter may not set it",
        ),
        (
            "upgrade",
            "introspection.response.upstream.header: \"upgrade\" is a hop-by-hop or framing header; a filter may not set it",
        ),
        (
            "authorization",
            "introspection.response.upstream.header: a token-introspection response never goes upstream as the access token",
        ),
    ];
    for (name, expected) in cases {
        assert_eq!(config_error(&header(name)), expected, "{name}");
    }
}

// Requests before any call ----------------------------------------------------------------------

#[wasm_bindgen_test(unsupported = test)]
fn requests_without_a_usable_token_never_reach_the_oauth_server() {
    let gw = Gateway::new(&jwt_mode());
    let cases = [
        (request(&[]), 401, "missing_token"),
        (
            request(&[("authorization", "Basic dXNlcjpwYXNz")]),
            401,
            "missing_token",
        ),
        (
            request(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]),
            400,
            "ambiguous_token",
        ),
        (
            request(&[("authorization", "Bearer a,Bearer b")]),
            400,
            "ambiguous_token",
        ),
        (bearer("tok%20en"), 401, "malformed_token"),
        (bearer("tok\"en"), 401, "malformed_token"),
        (bearer("="), 401, "malformed_token"),
        (bearer(&"a".repeat(4097)), 401, "malformed_token"),
    ];
    for (headers, code, reason) in cases {
        let (_, step) = gw.start(&headers);
        assert!(step.calls.is_empty(), "{reason}");
        assert_eq!(status(&step), Some(code), "{reason}");
        assert_eq!(gw.names(&step), vec![format!("denied_{reason}")]);
        assert_eq!(state(&step, OUTCOME_STATE), Some(reason.as_bytes()));
    }
    let (_, missing) = gw.start(&request(&[]));
    let reply = missing.local_reply().unwrap();
    assert_eq!(reply.header("www-authenticate"), Some("Bearer realm=\"api\""));
    let (_, malformed) = gw.start(&bearer("tok\"en"));
    assert_eq!(
        malformed.local_reply().unwrap().header("www-authenticate"),
        Some("Bearer realm=\"api\", error=\"invalid_token\"")
    );
    // Padding is part of the b64token syntax.
    let (_, padded) = gw.start(&bearer("abc+/=="));
    assert_eq!(padded.action, Action::Pause);
}

#[wasm_bindgen_test(unsupported = test)]
fn token_optional_routes_pass_without_a_token_but_still_exchange_one() {
    let gw = Gateway::new(&with(jwt_mode(), json!({"token_optional": [{"prefix": "/public/"}]})));
    let public = Headers::from_pairs([(":method", "GET"), (":path", "/public/status")]);
    let (_, step) = gw.start(&public);
    assert_eq!(step.action, Action::Continue);
    assert_eq!(gw.names(&step), vec!["unauthenticated_allowed"]);
    let mut with_token = public.clone();
    with_token.push("authorization", &b"Bearer abc"[..]);
    assert_eq!(gw.start(&with_token).1.action, Action::Pause);
    assert_eq!(
        status(&gw.start(&request(&[])).1),
        Some(401),
        "elsewhere a token is required"
    );
    let bad = with(jwt_mode(), json!({"token_optional": [{"prefix": "public"}]}));
    assert!(config_error(&bad).starts_with("token_optional[0].prefix:"));
}

/// Without a token the path decides, so it must be one the routes read as the upstream will:
/// `/public/../admin` is `/admin` upstream.
#[wasm_bindgen_test(unsupported = test)]
fn without_a_token_a_path_not_in_normal_form_is_refused() {
    let gw = Gateway::new(&with(jwt_mode(), json!({"token_optional": [{"prefix": "/public/"}]})));
    for path in ["/public/../admin", "/public/%2E%2E/admin", "/public//admin"] {
        let (_, step) = gw.start(&Headers::from_pairs([(":method", "GET"), (":path", path)]));
        assert_eq!(status(&step), Some(400), "{path}");
        assert_eq!(body(&step)["error"], "invalid_request");
        assert_eq!(gw.names(&step), vec!["denied_path_refused"]);
        assert_eq!(state(&step, OUTCOME_STATE), Some(&b"path_refused"[..]));
    }
    // With a token, the path decides nothing here: the token is exchanged.
    let mut with_token = Headers::from_pairs([(":method", "GET"), (":path", "/public/../admin")]);
    with_token.push("authorization", &b"Bearer abc"[..]);
    assert_eq!(gw.start(&with_token).1.action, Action::Pause);
}

/// Without a token, a path the upstream could read as another route is refused: one whose
/// escaped reserved characters, decoded, leave the open routes (`/docs%3Aprivate` is open as
/// written, `/docs:private` is not), and one with a path-override header.
#[wasm_bindgen_test(unsupported = test)]
fn without_a_token_a_path_the_upstream_could_read_otherwise_is_refused() {
    let gw = Gateway::new(&with(jwt_mode(), json!({"token_optional": [{"regex": "/docs[^:]*"}]})));
    let get = |path: &str| Headers::from_pairs([(":method", "GET"), (":path", path)]);
    assert_eq!(gw.start(&get("/docs/a")).1.action, Action::Continue);
    assert_eq!(status(&gw.start(&get("/docs:private")).1), Some(401));
    let mut overridden = get("/docs/a");
    overridden.push("X-Original-URL", &b"/admin"[..]);
    for refused in [get("/docs%3Aprivate"), overridden] {
        let (_, step) = gw.start(&refused);
        assert_eq!(status(&step), Some(400), "{refused:?}");
        assert_eq!(gw.names(&step), vec!["denied_path_refused"], "{refused:?}");
    }
    // An escape that leaves the request open either way is a path like any other.
    assert_eq!(gw.start(&get("/docs/a%40b")).1.action, Action::Continue);
}

/// A route open without a token for `GET` only: a `GET` that asks the upstream to run a `DELETE`
/// (a header, or a `_method` parameter) is refused, not let through as a read.
#[wasm_bindgen_test(unsupported = test)]
fn without_a_token_a_method_override_does_not_open_a_route_for_other_methods() {
    let reads_only = json!({"token_optional": [{"prefix": "/orders", "methods": ["GET"]}]});
    let gw = Gateway::new(&with(jwt_mode(), reads_only.clone()));
    let get = |path: &str| Headers::from_pairs([(":method", "GET"), (":path", path)]);
    assert_eq!(gw.start(&get("/orders/1")).1.action, Action::Continue);
    let delete = Headers::from_pairs([(":method", "DELETE"), (":path", "/orders/1")]);
    assert_eq!(status(&gw.start(&delete).1), Some(401));
    let mut with_header = get("/orders/1");
    with_header.push("x-http-method-override", &b"DELETE"[..]);
    for overriding in [with_header, get("/orders/1?_method=DELETE")] {
        let (_, step) = gw.start(&overriding);
        assert_eq!(status(&step), Some(400), "{overriding:?}");
        assert_eq!(body(&step)["error"], "invalid_request");
        assert_eq!(gw.names(&step), vec!["denied_method_override_refused"]);
        assert_eq!(state(&step, OUTCOME_STATE), Some(&b"method_override_refused"[..]));
    }
    // With a token the method decides nothing here: the token is exchanged.
    let mut with_token = get("/orders/1?_method=DELETE");
    with_token.push("authorization", &b"Bearer abc"[..]);
    assert_eq!(gw.start(&with_token).1.action, Action::Pause);
    // Routes that do not read methods have nothing an override could get past.
    let any_method = Gateway::new(&with(jwt_mode(), json!({"token_optional": [{"prefix": "/orders"}]})));
    assert_eq!(
        any_method.start(&get("/orders/1?_method=DELETE")).1.action,
        Action::Continue
    );
    // `ignore`: for upstreams that never read overrides, the request's own method decides.
    let mut ignoring = reads_only;
    ignoring["method_override_headers"] = json!("ignore");
    let gw = Gateway::new(&with(jwt_mode(), ignoring));
    assert_eq!(gw.start(&get("/orders/1?_method=DELETE")).1.action, Action::Continue);
}

#[wasm_bindgen_test(unsupported = test)]
fn cors_preflights_pass_without_a_token() {
    let gw = Gateway::new(&jwt_mode());
    let preflight = Headers::from_pairs([
        (":method", "OPTIONS"),
        (":path", "/orders"),
        ("origin", "https://app.example"),
        ("access-control-request-method", "POST"),
    ]);
    let (_, step) = gw.start(&preflight);
    assert_eq!(step.action, Action::Continue);
    assert_eq!(gw.names(&step), vec!["unauthenticated_allowed"]);
    // One that asks the upstream to run another method is no browser's: it needs a token.
    for (name, value) in [
        ("x-http-method-override", "DELETE"),
        (":path", "/orders?_method=DELETE"),
    ] {
        let mut overriding = preflight.clone();
        overriding.apply(&[HeaderEdit::Set(shared::HeaderName::trusted(name), value.into())]);
        let (_, step) = gw.start(&overriding);
        assert_eq!(step.local_reply().map(|r| r.status), Some(401), "{name}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn jwt_shaped_tokens_pass_through_only_when_configured() {
    let token = jwt(json!({}));
    let off = Gateway::new(&jwt_mode());
    assert_eq!(off.start(&bearer(&token)).1.action, Action::Pause, "introspected");
    let on = Gateway::new(&with(jwt_mode(), json!({"pass_through_jwts": true})));
    let (_, step) = on.start(&bearer(&token));
    assert_eq!(step.action, Action::Continue);
    assert!(step.header_edits.is_empty(), "untouched");
    assert_eq!(on.names(&step), vec!["jwt_passed_through"]);
    // An opaque token is still exchanged.
    assert_eq!(on.start(&bearer(OPAQUE)).1.action, Action::Pause);
}

/// RFC 9701 section 8.1: a signed introspection response is never an access token, also when a
/// client sends one itself; nor are a security event token or a logout token, which the issuer
/// signs with the same keys. The check is the one the filter makes on JWTs it forwards.
#[wasm_bindgen_test(unsupported = test)]
fn a_passed_through_jwt_typed_as_an_introspection_response_is_refused() {
    let gw = Gateway::new(&with(jwt_mode(), json!({"pass_through_jwts": true})));
    for typ in [
        "token-introspection+jwt",
        "Token-Introspection+JWT",
        "application/token-introspection+jwt",
        "APPLICATION/token-introspection+jwt",
        "secevent+jwt",
        "logout+jwt",
    ] {
        let response = signed_response(1, typ, json!({"token_introspection": introspection(&jwt(json!({})))}));
        let (_, step) = gw.start(&bearer(&response));
        assert!(step.calls.is_empty(), "{typ}");
        assert_eq!(status(&step), Some(401), "{typ}");
        assert_eq!(body(&step)["error"], "invalid_token", "{typ}");
        assert_eq!(
            step.local_reply().unwrap().header("www-authenticate"),
            Some("Bearer realm=\"api\", error=\"invalid_token\""),
        );
        assert_eq!(gw.names(&step), vec!["denied_not_access_token"], "{typ}");
        assert_eq!(state(&step, OUTCOME_STATE), Some(&b"not_access_token"[..]), "{typ}");
    }
    // Other types pass as they did.
    for typ in ["at+jwt", "JWT", "token-introspection+jwt+x"] {
        let token = signed(1, json!({"alg": "EdDSA", "typ": typ}), &access_claims());
        let (_, step) = gw.start(&bearer(&token));
        assert_eq!(step.action, Action::Continue, "{typ}");
        assert_eq!(gw.names(&step), vec!["jwt_passed_through"], "{typ}");
    }
}

// The exchange ----------------------------------------------------------------------------------

#[wasm_bindgen_test(unsupported = test)]
fn an_opaque_token_is_exchanged_for_the_verified_jwt() {
    let gw = Gateway::new(&jwt_mode());
    let (mut exchange, step) = gw.start(&bearer(OPAQUE));
    let call = &step.calls[0];
    assert_eq!(call.cluster, "idp");
    // `~`, `-` and `_` are unreserved: the token goes into the form as it is.
    assert_eq!(form(call), format!("token={OPAQUE}"));
    assert_eq!(gw.names(&step), vec!["cache_miss"]);
    let token = jwt(json!({}));
    let step = exchange.on_call_response(ok(&token), &gw.host.ctx());
    assert_eq!(step.action, Action::Continue);
    // Set: every client copy of Authorization goes, then the one value is added.
    assert_eq!(authorization(&step), Some(format!("Bearer {token}")));
    let claims: Value = serde_json::from_slice(state(&step, CLAIMS_STATE).unwrap()).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["scope"], "orders:read");
    assert_eq!(state(&step, OUTCOME_STATE), Some(&b"allowed"[..]));
    assert_eq!(gw.names(&step), vec!["allowed", "introspection_active"]);
}

#[wasm_bindgen_test(unsupported = test)]
fn json_mode_reads_the_configured_field() {
    let gw = Gateway::new(&config(json!({"type": "json", "field": "phantom"})));
    let token = jwt(json!({}));
    let step = gw.exchange(OPAQUE, ok(&json!({"active": true, "phantom": token}).to_string()));
    assert_eq!(authorization(&step), Some(format!("Bearer {token}")));
    let step = gw.exchange("other", ok(r#"{"active": false}"#));
    assert_eq!(status(&step), Some(401));
    assert_eq!(body(&step)["error"], "invalid_token");
    let step = gw.exchange("third", ok(&json!({"active": true, "jwt": token}).to_string()));
    assert_eq!(status(&step), Some(502), "the JWT is not in the configured field");
}

#[wasm_bindgen_test(unsupported = test)]
fn an_answer_with_a_repeated_member_is_refused_whatever_came_last() {
    let gw = Gateway::new(&config(json!({"type": "json", "field": "jwt"})));
    let token = jwt(json!({}));
    for (n, answer) in [
        format!(r#"{{"active": false, "active": true, "jwt": "{token}"}}"#),
        format!(r#"{{"active": true, "jwt": "{token}", "jwt": "{token}"}}"#),
    ]
    .iter()
    .enumerate()
    {
        let step = gw.exchange(&format!("token-{n}"), ok(answer));
        assert_eq!(status(&step), Some(502), "{answer}");
        assert_eq!(authorization(&step), None);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn every_unusable_answer_fails_closed() {
    let good = jwt(json!({}));
    let cases: Vec<(CallOutcome, u16, &str)> = vec![
        (CallOutcome::Failed, 503, "unreachable"),
        (answer(503, &[("retry-after", "7")], ""), 503, "unavailable"),
        (answer(500, &[], &good), 502, "status"),
        (answer(401, &[], r#"{"error": "invalid_client"}"#), 502, "status"),
        (answer(404, &[], ""), 502, "status"),
        (
            ok("<html><body>Service temporarily unavailable</body></html>"),
            502,
            "malformed",
        ),
        (ok(&"a".repeat(70_000)), 502, "oversized"),
        (ok(&jwt(json!({"iss": "https://evil.example"}))), 502, "invalid_jwt"),
        (ok(&jwt(json!({"aud": 5}))), 502, "invalid_jwt"),
        (ok(&jwt(json!({"exp": NOW - 120}))), 502, "invalid_jwt"),
        (ok(&jwt(json!({"exp": null}))), 502, "invalid_jwt"),
        (
            ok(&signed(2, json!({"alg": "EdDSA", "kid": "k1"}), &access_claims())),
            502,
            "invalid_jwt",
        ),
        (
            ok(&signed(
                1,
                json!({"alg": "EdDSA", "kid": "k1", "typ": "token-introspection+jwt"}),
                &access_claims(),
            )),
            502,
            "invalid_jwt",
        ),
        (
            ok(&signed(
                1,
                json!({"alg": "EdDSA", "kid": "k1", "typ": "logout+jwt"}),
                &access_claims(),
            )),
            502,
            "invalid_jwt",
        ),
        (
            ok(&signed(1, json!({"alg": "EdDSA", "kid": "other"}), &access_claims())),
            502,
            "invalid_jwt",
        ),
    ];
    for (outcome, code, kind) in cases {
        let gw = Gateway::new(&jwt_mode());
        let step = gw.exchange(OPAQUE, outcome);
        assert_eq!(status(&step), Some(code), "{kind}");
        let reason = if code == 503 {
            "idp_unavailable"
        } else {
            "idp_bad_answer"
        };
        assert_eq!(
            gw.names(&step),
            vec![format!("denied_{reason}"), format!("introspection_error_{kind}")],
            "{kind}"
        );
        let reply = step.local_reply().unwrap();
        assert!(
            !String::from_utf8_lossy(&reply.body).contains("html")
                && !String::from_utf8_lossy(&reply.body).contains(OPAQUE),
            "never echoes the token or the IdP's body"
        );
        assert!(step.header_edits.iter().all(|e| !matches!(e, HeaderEdit::Set(..))));
    }
    let gw = Gateway::new(&jwt_mode());
    let step = gw.exchange(OPAQUE, answer(503, &[("retry-after", "7")], ""));
    assert_eq!(step.local_reply().unwrap().header("retry-after"), Some("7"));
}

/// An overloaded OAuth server's 503 with a big error page is an outage, as any 503 is: the
/// client gets 503 and the server's `Retry-After`, not a 502 for the page's size.
#[wasm_bindgen_test(unsupported = test)]
fn a_503_with_a_body_over_max_response_bytes_is_still_503_with_retry_after() {
    let gw = Gateway::new(&jwt_mode());
    let page = "<html>overloaded</html>".repeat(4096);
    let step = gw.exchange(OPAQUE, answer(503, &[("retry-after", "7")], &page));
    assert_eq!(status(&step), Some(503));
    assert_eq!(step.local_reply().unwrap().header("retry-after"), Some("7"));
    assert_eq!(
        gw.names(&step),
        vec!["denied_idp_unavailable", "introspection_error_unavailable"]
    );
    let step = gw.exchange("another", answer(504, &[], &page));
    assert_eq!(status(&step), Some(503), "Envoy's 504 for a timeout");
}

// The cache -------------------------------------------------------------------------------------

#[wasm_bindgen_test(unsupported = test)]
fn answers_are_shared_by_every_worker_and_keyed_by_the_token_hash() {
    let gw = Gateway::new(&jwt_mode());
    let token = jwt(json!({}));
    gw.exchange(OPAQUE, answer(200, &[("cache-control", "max-age=60")], &token));
    let worker2 = gw.worker(&jwt_mode());
    let step = worker2.filter().on_request_headers(&bearer(OPAQUE), &gw.host.ctx());
    assert_eq!(step.action, Action::Continue);
    assert!(step.calls.is_empty());
    assert_eq!(authorization(&step), Some(format!("Bearer {token}")));
    assert_eq!(worker2.counter_names(&step.counters), vec!["cache_hit", "allowed"]);
    assert!(state(&step, CLAIMS_STATE).is_some());
    // Another token is not.
    assert_eq!(gw.start(&bearer("another")).1.action, Action::Pause);
}

#[wasm_bindgen_test(unsupported = test)]
fn cache_lifetime_is_the_least_of_exp_max_age_and_the_cap() {
    // (exp from now, Cache-Control, still cached at, gone at), in seconds; margin 5 s, cap 300 s.
    let cases: [(u64, Option<&str>, Option<u64>, u64); 6] = [
        (600, None, Some(299), 300),
        (600, Some("max-age=30"), Some(29), 30),
        (20, None, Some(14), 15),
        (20, Some("max-age=60"), Some(14), 15),
        (3, None, None, 0),
        (600, Some("no-store"), None, 0),
    ];
    for (exp, cache_control, alive, gone) in cases {
        let mut gw = Gateway::new(&jwt_mode());
        let headers: Vec<(&str, &str)> = cache_control.map(|v| ("cache-control", v)).into_iter().collect();
        let step = gw.exchange(OPAQUE, answer(200, &headers, &jwt(json!({"exp": NOW + exp}))));
        assert_eq!(step.action, Action::Continue);
        let start = gw.host.now_ms;
        if let Some(alive) = alive {
            gw.host.now_ms = start + alive * 1000;
            assert!(
                gw.start(&bearer(OPAQUE)).1.calls.is_empty(),
                "{exp} {cache_control:?} at {alive}"
            );
        }
        gw.host.now_ms = start + gone * 1000;
        let (_, step) = gw.start(&bearer(OPAQUE));
        assert_eq!(step.calls.len(), 1, "{exp} {cache_control:?} gone at {gone}");
    }
}

/// A config that takes over a gone config's cache reads each of its slots once: their number is
/// bounded.
#[wasm_bindgen_test(unsupported = test)]
fn cache_slots_are_bounded() {
    let error = config_error(&with(jwt_mode(), json!({"cache": {"max_entries": 1_048_577}})));
    assert_eq!(error, "cache.max_entries: must be at most 1048576");
    configured(&with(jwt_mode(), json!({"cache": {"max_entries": 1_048_576}})));
}

/// `max_ttl_secs` is the longest any answer is reused: an inactive answer kept longer would keep
/// a token refused past it, so a config that says so is refused, and the default keeps within it.
#[wasm_bindgen_test(unsupported = test)]
fn inactive_answers_are_never_kept_longer_than_max_ttl_secs() {
    let error = config_error(&with(
        jwt_mode(),
        json!({"cache": {"max_ttl_secs": 30, "inactive_ttl_secs": 31}}),
    ));
    assert_eq!(
        error,
        "cache.inactive_ttl_secs: must not exceed cache.max_ttl_secs (30)"
    );
    configured(&with(
        jwt_mode(),
        json!({"cache": {"max_ttl_secs": 30, "inactive_ttl_secs": 30}}),
    ));
    // The default (10 s) shrinks to a smaller max_ttl_secs.
    let mut gw = Gateway::new(&with(jwt_mode(), json!({"cache": {"max_ttl_secs": 3}})));
    assert_eq!(status(&gw.exchange(OPAQUE, answer(204, &[], ""))), Some(401));
    gw.host.now_ms += 2_000;
    assert!(gw.start(&bearer(OPAQUE)).1.calls.is_empty(), "cached at 2 s");
    gw.host.now_ms += 1_000;
    assert_eq!(gw.start(&bearer(OPAQUE)).1.calls.len(), 1, "asked again at 3 s");
}

#[wasm_bindgen_test(unsupported = test)]
fn inactive_answers_are_cached_briefly() {
    let mut gw = Gateway::new(&with(jwt_mode(), json!({"cache": {"inactive_ttl_secs": 10}})));
    let step = gw.exchange(OPAQUE, answer(204, &[], ""));
    assert_eq!(status(&step), Some(401));
    assert_eq!(gw.names(&step), vec!["denied_inactive_token", "introspection_inactive"]);
    let (_, step) = gw.start(&bearer(OPAQUE));
    assert_eq!(status(&step), Some(401));
    assert_eq!(gw.names(&step), vec!["cache_negative_hit", "denied_inactive_token"]);
    gw.host.now_ms += 10_000;
    assert_eq!(gw.start(&bearer(OPAQUE)).1.calls.len(), 1);
}

// Single-flight ---------------------------------------------------------------------------------

#[wasm_bindgen_test(unsupported = test)]
fn concurrent_requests_with_one_token_wait_on_one_call() {
    let gw = Gateway::new(&jwt_mode());
    let (mut leader, step) = gw.start(&bearer(OPAQUE));
    assert_eq!(step.calls.len(), 1);
    let signal = step
        .notify_if_abandoned
        .first()
        .cloned()
        .expect("waiters are woken if the leader goes");
    let mut followers: Vec<Exchange> = (0..3)
        .map(|_| {
            let (follower, step) = gw.start(&bearer(OPAQUE));
            assert_eq!(step.action, Action::Wait(signal.clone()));
            assert!(step.calls.is_empty());
            assert_eq!(gw.names(&step), vec!["cache_miss", "coalesced_waits"]);
            follower
        })
        .collect();
    // Another token is its own flight.
    assert_eq!(gw.start(&bearer("another")).1.calls.len(), 1);
    let token = jwt(json!({}));
    let step = leader.on_call_response(answer(200, &[("cache-control", "no-store")], &token), &gw.host.ctx());
    assert_eq!(step.notify, vec![signal.clone()]);
    for follower in &mut followers {
        let step = follower.on_wake(&signal, &gw.host.ctx());
        assert_eq!(step.action, Action::Continue);
        assert!(step.calls.is_empty());
        assert_eq!(
            authorization(&step),
            Some(format!("Bearer {token}")),
            "even when not cacheable"
        );
    }
    // The flight is over: the next request (not cached: no-store) asks again.
    assert_eq!(gw.start(&bearer(OPAQUE)).1.calls.len(), 1);
}

#[wasm_bindgen_test(unsupported = test)]
fn waiters_share_the_leaders_failure() {
    let gw = Gateway::new(&jwt_mode());
    let (mut leader, _) = gw.start(&bearer(OPAQUE));
    let (mut follower, waiting) = gw.start(&bearer(OPAQUE));
    let Action::Wait(signal) = waiting.action else {
        panic!("not waiting")
    };
    let step = leader.on_call_response(answer(503, &[("retry-after", "3")], ""), &gw.host.ctx());
    assert_eq!(status(&step), Some(503));
    let step = follower.on_wake(&signal, &gw.host.ctx());
    assert_eq!(status(&step), Some(503));
    assert_eq!(step.local_reply().unwrap().header("retry-after"), Some("3"));
    assert!(step.calls.is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn when_the_leader_goes_away_a_waiter_asks_instead() {
    let gw = Gateway::new(&jwt_mode());
    let (leader, _) = gw.start(&bearer(OPAQUE));
    let (mut first, step) = gw.start(&bearer(OPAQUE));
    let Action::Wait(signal) = step.action else {
        panic!("not waiting")
    };
    let (mut second, _) = gw.start(&bearer(OPAQUE));
    drop(leader);
    let step = first.on_wake(&signal, &gw.host.ctx());
    assert_eq!(step.calls.len(), 1, "the first woken leads now");
    assert_eq!(
        second.on_wake(&signal, &gw.host.ctx()).action,
        Action::Wait(signal.clone())
    );
    let token = jwt(json!({}));
    let step = first.on_call_response(ok(&token), &gw.host.ctx());
    assert_eq!(step.notify, vec![signal.clone()]);
    assert_eq!(
        authorization(&second.on_wake(&signal, &gw.host.ctx())),
        Some(format!("Bearer {token}"))
    );
}

// RFC 9701 signed responses ---------------------------------------------------------------------

fn signed_response(seed: u8, typ: &str, claims: Value) -> String {
    let base = json!({"iss": ISS, "aud": "gateway", "iat": NOW - 1});
    signed(
        seed,
        json!({"alg": "EdDSA", "kid": "k1", "typ": typ}),
        &with(base, claims),
    )
}

/// The configs of the `json`, signed `jwt_field` and signed `response_header` answer formats.
fn introspection_modes() -> [Value; 3] {
    [
        config(json!({"type": "json", "field": "jwt"})),
        config(json!({"type": "signed", "upstream": {"type": "jwt_field", "field": "jwt"}})),
        config(json!({
            "type": "signed", "upstream": {"type": "response_header", "header": "x-token-introspection"},
        })),
    ]
}

/// An RFC 9701 answer (signed with key 1) carrying `token_introspection`.
fn signed_answer(token_introspection: Value) -> CallOutcome {
    ok(&signed_response(
        1,
        "token-introspection+jwt",
        json!({ "token_introspection": token_introspection }),
    ))
}

fn introspection(token: &str) -> Value {
    json!({"active": true, "sub": "alice", "aud": "api", "scope": "orders:read", "exp": NOW + 600, "jwt": token})
}

#[wasm_bindgen_test(unsupported = test)]
fn signed_responses_are_verified_before_their_jwt_is_forwarded() {
    let gw = Gateway::new(&config(
        json!({"type": "signed", "upstream": {"type": "jwt_field", "field": "jwt"}}),
    ));
    let (_, step) = gw.start(&bearer(OPAQUE));
    let accept = step.calls[0]
        .headers
        .iter()
        .find(|(n, _)| n.as_str() == "accept")
        .unwrap();
    assert_eq!(accept.1, b"application/token-introspection+jwt");
    let token = jwt(json!({}));
    let good = json!({"token_introspection": introspection(&token)});
    let step = gw.exchange(OPAQUE, ok(&signed_response(1, "token-introspection+jwt", good.clone())));
    assert_eq!(authorization(&step), Some(format!("Bearer {token}")));

    let cases = [
        ("wrong typ", signed_response(1, "JWT", good.clone())),
        ("wrong key", signed_response(2, "token-introspection+jwt", good.clone())),
        (
            "wrong audience",
            signed_response(
                1,
                "token-introspection+jwt",
                with(good.clone(), json!({"aud": "someone-else"})),
            ),
        ),
        (
            "wrong issuer",
            signed_response(
                1,
                "token-introspection+jwt",
                with(good.clone(), json!({"iss": "https://evil.example"})),
            ),
        ),
        ("no iat", {
            let mut no_iat = good.clone();
            no_iat["iat"] = Value::Null;
            signed_response(1, "token-introspection+jwt", no_iat)
        }),
        ("no claim", signed_response(1, "token-introspection+jwt", json!({}))),
        (
            "a bad inner JWT",
            signed_response(
                1,
                "token-introspection+jwt",
                json!({"token_introspection": introspection(&jwt(json!({"iss": "x"})))}),
            ),
        ),
    ];
    for (name, response) in cases {
        let gw = Gateway::new(&config(
            json!({"type": "signed", "upstream": {"type": "jwt_field", "field": "jwt"}}),
        ));
        assert_eq!(status(&gw.exchange(OPAQUE, ok(&response))), Some(502), "{name}");
    }
    let inactive = signed_response(
        1,
        "token-introspection+jwt",
        json!({"token_introspection": {"active": false}}),
    );
    assert_eq!(status(&gw.exchange("other", ok(&inactive))), Some(401));
}

#[wasm_bindgen_test(unsupported = test)]
fn request_trailers_lose_the_headers_this_filter_sets() {
    let host = FakeHost::default();
    let trailers = Headers::from_pairs([
        ("Authorization", "Bearer forged"),
        ("x-token-introspection", "forged"),
        ("grpc-timeout", "1S"),
    ]);
    let bearer = configured(&jwt_mode());
    let step = bearer.filter().on_request_trailers(&trailers, &host.ctx());
    assert_eq!(step.action, Action::Continue);
    assert_eq!(step.removed_headers(), ["authorization"]);

    let own_header = configured(&config(json!({
        "type": "signed", "audience": "gw-audience",
        "upstream": {"type": "response_header", "header": "x-token-introspection"},
    })));
    let step = own_header.filter().on_request_trailers(&trailers, &host.ctx());
    assert_eq!(step.removed_headers(), ["authorization", "x-token-introspection"]);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_signed_response_can_go_upstream_in_its_own_header_never_as_the_access_token() {
    let config = config(json!({
        "type": "signed", "audience": "gw-audience",
        "upstream": {"type": "response_header", "header": "x-token-introspection"},
    }));
    let gw = Gateway::new(&config);
    let response = signed_response(
        1,
        "token-introspection+jwt",
        json!({"aud": "gw-audience", "token_introspection": introspection("unused")}),
    );
    let (mut exchange, step) = gw.start(&request(&[
        ("authorization", &format!("Bearer {OPAQUE}")),
        ("x-token-introspection", "forged"),
    ]));
    assert_eq!(
        step.removed_headers(),
        vec!["x-token-introspection"],
        "a client's copy goes at once"
    );
    let step = exchange.on_call_response(ok(&response), &gw.host.ctx());
    assert_eq!(step.action, Action::Continue);
    assert!(step.removed_headers().contains(&"authorization".to_owned()));
    assert_eq!(authorization(&step), None);
    assert!(step.header_edits.contains(&HeaderEdit::Set(
        shared::HeaderName::trusted("x-token-introspection"),
        response.into_bytes()
    )));
    let claims: Value = serde_json::from_slice(state(&step, CLAIMS_STATE).unwrap()).unwrap();
    assert_eq!(claims["scope"], "orders:read");
}

// Remote keys -----------------------------------------------------------------------------------

fn remote_config() -> Value {
    let mut config = jwt_mode();
    config["jwt"]["jwks"] = json!({"type": "remote", "cluster": "idp", "path": "/jwks"});
    config
}

fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

#[wasm_bindgen_test(unsupported = test)]
fn keys_load_in_the_background_and_an_unknown_kid_refetches_them() {
    let mut gw = Gateway::new(&remote_config());
    assert!(gw.config.root.tick_period().is_some());
    // No keys yet: the request fetches them; without them, an outage, not a bad answer.
    let (mut exchange, _) = gw.start(&bearer(OPAQUE));
    let step = exchange.on_call_response(ok(&jwt(json!({}))), &gw.host.ctx());
    assert_eq!(step.action, Action::Pause);
    assert_eq!(gw.names(&step), vec!["missing_keys_refetch"]);
    let step = exchange.on_call_response(CallOutcome::Failed, &gw.host.ctx());
    assert_eq!(status(&step), Some(503));
    // Requests fetch at most every 10 s: until then, 503 at once.
    assert_eq!(status(&gw.exchange("t1", ok(&jwt(json!({}))))), Some(503));
    gw.host.now_ms += 10_000;
    let tick = gw.config.root.on_tick(&gw.host.ctx());
    let (tag, call) = tick.calls[0].clone();
    assert_eq!(call.cluster, "idp");
    let loaded = gw
        .config
        .root
        .on_call_response(tag, ok(&jwks(&[jwk(1, "k1")])), &gw.host.ctx());
    assert_eq!(gw.config.counter_names(&loaded.counters), vec!["jwks_fetch_ok"]);
    assert_eq!(gw.exchange("t2", ok(&jwt(json!({})))).action, Action::Continue);

    // The root fetches the keys from its start; a request that finds none meanwhile waits.
    let fresh = Gateway::new(&remote_config());
    let (tag, _) = fresh.config.root.on_start(&fresh.host.ctx()).calls[0].clone();
    assert!(
        fresh.config.root.on_tick(&fresh.host.ctx()).calls.is_empty(),
        "in flight"
    );
    let (mut waiting, _) = fresh.start(&bearer(OPAQUE));
    let step = waiting.on_call_response(ok(&jwt(json!({}))), &fresh.host.ctx());
    let Action::Wait(signal) = step.action else {
        panic!("{step:?}")
    };
    let loaded = fresh
        .config
        .root
        .on_call_response(tag, ok(&jwks(&[jwk(1, "k1")])), &fresh.host.ctx());
    assert_eq!(loaded.notify, vec![signal.clone()]);
    assert_eq!(waiting.on_wake(&signal, &fresh.host.ctx()).action, Action::Continue);

    // The IdP rotated to k2: the request refetches and goes on.
    let rotated = signed(2, json!({"alg": "EdDSA", "kid": "k2"}), &access_claims());
    let (mut exchange, _) = gw.start(&bearer("t3"));
    let step = exchange.on_call_response(ok(&rotated), &gw.host.ctx());
    assert_eq!(step.action, Action::Pause);
    assert_eq!(gw.names(&step), vec!["kid_refetch"]);
    assert_eq!(step.notify_if_abandoned.len(), 2, "the flight's and the keys' waiters");
    let step = exchange.on_call_response(ok(&jwks(&[jwk(1, "k1"), jwk(2, "k2")])), &gw.host.ctx());
    assert_eq!(authorization(&step), Some(format!("Bearer {rotated}")));
    // A kid nobody has: no second refetch within 10 s, a bad answer.
    let unknown = signed(3, json!({"alg": "EdDSA", "kid": "k3"}), &access_claims());
    assert_eq!(status(&gw.exchange("t4", ok(&unknown))), Some(502));
}

/// A request waiting on another's key fetch, whose client then hangs up, fetches the keys itself
/// rather than failing: the fetch it waited on never ended.
#[wasm_bindgen_test(unsupported = test)]
fn a_request_waiting_on_a_key_fetch_whose_client_hung_up_fetches_itself() {
    let gw = Gateway::new(&remote_config());
    let (mut leader, _) = gw.start(&bearer("t1"));
    let step = leader.on_call_response(ok(&jwt(json!({}))), &gw.host.ctx());
    assert_eq!(gw.names(&step), vec!["missing_keys_refetch"]);
    let (mut follower, _) = gw.start(&bearer("t2"));
    let Action::Wait(signal) = follower.on_call_response(ok(&jwt(json!({}))), &gw.host.ctx()).action else {
        panic!("not waiting on the fetch in flight")
    };
    drop(leader);
    let step = follower.on_wake(&signal, &gw.host.ctx());
    assert_eq!(step.action, Action::Pause, "{step:?}");
    assert_eq!(gw.names(&step), vec!["missing_keys_refetch"]);
    let step = follower.on_call_response(ok(&jwks(&[jwk(1, "k1")])), &gw.host.ctx());
    assert_eq!(step.action, Action::Continue);
    assert!(step.notify.contains(&signal), "the keys' waiters wake");
}

/// Plugins in one VM (the bundle's, or two listeners with one `vm_id`) share shared data: a
/// plugin never serves what another config verified, even with the same OAuth server and client.
#[wasm_bindgen_test(unsupported = test)]
fn the_cache_is_never_shared_with_a_config_that_verifies_differently() {
    let gw = Gateway::new(&jwt_mode()); // audiences ["api"]
    let token = jwt(json!({})); // aud "api"
    assert_eq!(gw.exchange(OPAQUE, ok(&token)).action, Action::Continue);

    let mut admin = jwt_mode();
    admin["jwt"]["audiences"] = json!(["admin"]);
    let alone = Gateway::new(&admin);
    assert_eq!(
        status(&alone.exchange(OPAQUE, ok(&token))),
        Some(401),
        "the wrong audience"
    );
    let admin_plugin = gw.worker(&admin);
    let step = admin_plugin
        .filter()
        .on_request_headers(&bearer(OPAQUE), &gw.host.ctx());
    assert_eq!(step.action, Action::Pause, "asks its own question");
    assert_eq!(authorization(&step), None);

    // The same config on another worker does share: one question for both.
    let same = gw.worker(&jwt_mode());
    let step = same.filter().on_request_headers(&bearer(OPAQUE), &gw.host.ctx());
    assert_eq!(authorization(&step), Some(format!("Bearer {token}")));
}

/// RFC 9701 section 8.1 across plugins: a `response_header` plugin's cached signed response never
/// becomes a `jwt_field` plugin's bearer token.
#[wasm_bindgen_test(unsupported = test)]
fn a_signed_response_never_becomes_another_plugins_bearer_token() {
    let header_mode = config(json!({
        "type": "signed", "upstream": {"type": "response_header", "header": "x-token-introspection"},
    }));
    let field_mode = config(json!({"type": "signed", "upstream": {"type": "jwt_field", "field": "jwt"}}));
    let gw = Gateway::new(&header_mode);
    let token = jwt(json!({}));
    let response = signed_response(
        1,
        "token-introspection+jwt",
        json!({"token_introspection": introspection(&token)}),
    );
    assert_eq!(gw.exchange(OPAQUE, ok(&response)).action, Action::Continue);
    let other = gw.worker(&field_mode);
    let step = other.filter().on_request_headers(&bearer(OPAQUE), &gw.host.ctx());
    assert_eq!(step.action, Action::Pause);
    assert_eq!(authorization(&step), None);
}

/// A leader that waits for keys another request is fetching has no call of its own: if its
/// client goes away, the requests waiting on its flight must still be woken to ask again.
#[wasm_bindgen_test(unsupported = test)]
fn followers_are_woken_when_a_leader_waiting_for_keys_goes_away() {
    let gw = Gateway::new(&remote_config());
    let tick = gw.config.root.on_tick(&gw.host.ctx());
    let (tag, _) = tick.calls[0].clone();
    gw.config
        .root
        .on_call_response(tag, ok(&jwks(&[jwk(1, "k1")])), &gw.host.ctx());
    let rotated = signed(2, json!({"alg": "EdDSA", "kid": "k2"}), &access_claims());
    // Another request's answer names the new key first: it refetches the keys.
    let (mut refetching, _) = gw.start(&bearer("another-token"));
    assert_eq!(
        refetching.on_call_response(ok(&rotated), &gw.host.ctx()).action,
        Action::Pause
    );
    let (mut leader, _) = gw.start(&bearer(OPAQUE));
    let (_follower, waiting) = gw.start(&bearer(OPAQUE));
    let Action::Wait(flight_signal) = waiting.action else {
        panic!("the follower does not wait: {:?}", waiting.action)
    };
    let step = leader.on_call_response(ok(&rotated), &gw.host.ctx());
    assert!(
        matches!(step.action, Action::Wait(ref s) if *s != flight_signal),
        "waits for the keys"
    );
    assert_eq!(step.notify_if_abandoned, vec![flight_signal.clone()]);
    drop(leader);
    // Woken by the adapter, the follower finds no flight and asks itself.
    let mut follower = _follower;
    let step = follower.on_wake(&flight_signal, &gw.host.ctx());
    assert_eq!(step.action, Action::Pause);
    assert_eq!(step.calls.len(), 1, "a new introspection");
}

/// A fractional NumericDate `exp` in the signed response's `token_introspection` (RFC 7519
/// allows fractions) still bounds how long the answer is served, and so does the response's own
/// `exp` when it is earlier.
#[wasm_bindgen_test(unsupported = test)]
fn a_signed_answer_is_cached_until_the_earlier_exp() {
    let config = config(json!({
        "type": "signed", "upstream": {"type": "response_header", "header": "x-token-introspection"},
    }));
    for (token_exp, response_exp) in [(json!(NOW as f64 + 10.5), None), (json!(NOW + 600), Some(NOW + 10))] {
        let mut gw = Gateway::new(&config);
        let mut claims = introspection("unused");
        claims["exp"] = token_exp.clone();
        let mut payload = json!({"token_introspection": claims});
        if let Some(exp) = response_exp {
            payload["exp"] = json!(exp);
        }
        let response = signed_response(1, "token-introspection+jwt", payload);
        assert_eq!(gw.exchange(OPAQUE, ok(&response)).action, Action::Continue);
        let hit = gw.start(&bearer(OPAQUE)).1;
        assert!(
            gw.names(&hit).contains(&"cache_hit".to_owned()),
            "{token_exp}: {:?}",
            gw.names(&hit)
        );
        gw.host.now_ms += 60_000;
        let step = gw.start(&bearer(OPAQUE)).1;
        assert_eq!(
            step.action,
            Action::Pause,
            "{token_exp}: served after exp: {:?}",
            gw.names(&step)
        );
    }
}

/// An `exp` in `token_introspection` that is not a NumericDate makes the answer malformed.
#[wasm_bindgen_test(unsupported = test)]
fn a_signed_answer_with_a_bad_exp_is_refused() {
    let config = config(json!({
        "type": "signed", "upstream": {"type": "response_header", "header": "x-token-introspection"},
    }));
    let gw = Gateway::new(&config);
    let mut claims = introspection("unused");
    claims["exp"] = json!("tomorrow");
    let response = signed_response(1, "token-introspection+jwt", json!({"token_introspection": claims}));
    assert_eq!(status(&gw.exchange(OPAQUE, ok(&response))), Some(502));
}

/// RFC 7662 section 2.2: the opaque token's own `exp` and `nbf` hold whatever `active` says, and
/// the JWT is served from the cache only while the token is still valid.
#[wasm_bindgen_test(unsupported = test)]
fn the_opaque_tokens_own_lifetime_bounds_its_jwt() {
    let json_mode = config(json!({"type": "json", "field": "jwt"}));
    let answer = |life: Value| ok(&with(json!({"active": true, "jwt": jwt(json!({}))}), life).to_string());
    let mut gw = Gateway::new(&json_mode);
    for (token, life, why) in [
        ("t1", json!({"exp": NOW - 3600}), "expired an hour ago"),
        ("t2", json!({"nbf": NOW + 7200}), "valid only in two hours"),
    ] {
        let step = gw.exchange(token, answer(life));
        assert_eq!(status(&step), Some(401), "{why}");
        assert_eq!(body(&step)["error"], "invalid_token", "{why}");
    }
    assert_eq!(
        status(&gw.exchange("bad", answer(json!({"exp": "soon"})))),
        Some(502),
        "an exp that is not a NumericDate"
    );
    // The token expires in 30 s, its JWT in 600 s: after the token, the cache has nothing.
    let step = gw.exchange(OPAQUE, answer(json!({"exp": NOW + 30})));
    assert_eq!(step.action, Action::Continue);
    let start = gw.host.now_ms;
    gw.host.now_ms = start + 20_000;
    assert!(gw.start(&bearer(OPAQUE)).1.calls.is_empty(), "still cached at 20 s");
    gw.host.now_ms = start + 200_000;
    assert_eq!(
        gw.start(&bearer(OPAQUE)).1.calls.len(),
        1,
        "asked again after the token's exp"
    );
}

/// A signed answer that goes upstream in its own header is the token's introspection: its `exp`,
/// `nbf` and `aud` (`jwt.audiences`) are checked as a forwarded JWT's would be.
#[wasm_bindgen_test(unsupported = test)]
fn a_signed_answer_in_its_own_header_holds_the_token_to_its_lifetime_and_audience() {
    let gw = Gateway::new(&config(json!({
        "type": "signed", "audience": "gw-audience",
        "upstream": {"type": "response_header", "header": "x-token-introspection"},
    })));
    let answer = |token_introspection: Value| {
        let token_introspection = with(
            json!({"active": true, "sub": "alice", "aud": "api", "exp": NOW + 600}),
            token_introspection,
        );
        let claims = json!({"aud": "gw-audience", "token_introspection": token_introspection});
        ok(&signed_response(1, "token-introspection+jwt", claims))
    };
    let cases = [
        (json!({"exp": NOW - 3600}), Some(401)),
        (json!({"nbf": NOW + 7200}), Some(401)),
        (json!({"aud": "some-other-api"}), Some(401)),
        (json!({"aud": ["x", "api"], "exp": NOW + 60}), None),
    ];
    for (i, (token_introspection, expected)) in cases.into_iter().enumerate() {
        let step = gw.exchange(&format!("token{i}"), answer(token_introspection.clone()));
        assert_eq!(status(&step), expected, "{token_introspection}");
    }
}

/// A signed answer that goes upstream in its own header stands for the access token: without an
/// `exp` in `token_introspection` it would be served for all of `max_ttl_secs` whatever the
/// token's own life (refused as a forwarded JWT without `exp` is), and one whose `token_type`
/// says it is no access token (a refresh token) is refused as inactive.
#[wasm_bindgen_test(unsupported = test)]
fn a_signed_answer_in_its_own_header_needs_an_exp_and_an_access_token() {
    let config = config(json!({
        "type": "signed", "upstream": {"type": "response_header", "header": "x-token-introspection"},
    }));
    let answer = |changes: Value| {
        let token_introspection = with(introspection("unused"), changes);
        ok(&signed_response(
            1,
            "token-introspection+jwt",
            json!({ "token_introspection": token_introspection }),
        ))
    };
    let gw = Gateway::new(&config);
    let step = gw.exchange(OPAQUE, answer(json!({"exp": null})));
    assert_eq!(status(&step), Some(502));
    assert_eq!(
        gw.names(&step),
        vec!["denied_idp_bad_answer", "introspection_error_invalid_jwt"]
    );
    assert_eq!(gw.start(&bearer(OPAQUE)).1.calls.len(), 1, "never cached");

    for token_type in [
        "refresh_token",
        "Refresh",
        "id_token",
        "urn:ietf:params:oauth:token-type:refresh_token",
    ] {
        let gw = Gateway::new(&config);
        let step = gw.exchange(OPAQUE, answer(json!({ "token_type": token_type })));
        assert_eq!(status(&step), Some(401), "{token_type}");
        assert_eq!(body(&step)["error"], "invalid_token", "{token_type}");
        assert_eq!(
            gw.names(&step),
            vec!["denied_inactive_token", "introspection_inactive"],
            "{token_type}"
        );
    }
    for token_type in [
        json!(null),
        json!("Bearer"),
        json!("bearer"),
        json!("access_token"),
        json!("urn:ietf:params:oauth:token-type:access_token"),
    ] {
        let gw = Gateway::new(&config);
        let step = gw.exchange(OPAQUE, answer(json!({ "token_type": token_type })));
        assert_eq!(step.action, Action::Continue, "{token_type}");
        assert_eq!(gw.names(&step), vec!["allowed", "introspection_active"], "{token_type}");
    }
    let gw = Gateway::new(&config);
    let step = gw.exchange(OPAQUE, answer(json!({"token_type": 1})));
    assert_eq!(status(&step), Some(502), "a token_type that is not a string");
}

/// The same `token_type` rule holds for every RFC 7662 object: a refresh token's JWT is not
/// forwarded either.
#[wasm_bindgen_test(unsupported = test)]
fn an_answer_for_a_refresh_token_is_inactive_in_every_format() {
    let token = jwt(json!({}));
    let json_mode = config(json!({"type": "json", "field": "jwt"}));
    let gw = Gateway::new(&json_mode);
    let step = gw.exchange(
        OPAQUE,
        ok(&json!({"active": true, "token_type": "refresh_token", "jwt": token}).to_string()),
    );
    assert_eq!(status(&step), Some(401));
    assert_eq!(state(&step, OUTCOME_STATE), Some(&b"inactive_token"[..]));
    let jwt_field = config(json!({"type": "signed", "upstream": {"type": "jwt_field", "field": "jwt"}}));
    let gw = Gateway::new(&jwt_field);
    let response = signed_response(
        1,
        "token-introspection+jwt",
        json!({"token_introspection": with(introspection(&token), json!({"token_type": "refresh_token"}))}),
    );
    let step = gw.exchange(OPAQUE, ok(&response));
    assert_eq!(status(&step), Some(401));
    assert_eq!(state(&step, OUTCOME_STATE), Some(&b"inactive_token"[..]));
}

/// A browser's preflight carries no credentials: one that does is no preflight, and its token
/// is exchanged, never passed on.
#[wasm_bindgen_test(unsupported = test)]
fn a_preflight_with_a_token_is_checked_like_any_request() {
    let gw = Gateway::new(&jwt_mode());
    let preflight = Headers::from_pairs([
        (":method", "OPTIONS".to_owned()),
        (":path", "/orders".to_owned()),
        ("origin", "https://app.example".to_owned()),
        ("access-control-request-method", "POST".to_owned()),
        ("authorization", format!("Bearer {OPAQUE}")),
    ]);
    let (_, step) = gw.start(&preflight);
    assert_eq!(step.action, Action::Pause, "introspects");
    assert_eq!(step.calls.len(), 1);
}

/// `Bearer<TAB>token` is a bearer credential this filter cannot read: refused, not taken for no
/// credential (a lenient upstream could read a token out of it).
#[wasm_bindgen_test(unsupported = test)]
fn an_unreadable_bearer_credential_is_refused_even_where_none_is_needed() {
    let gw = Gateway::new(&with(jwt_mode(), json!({"token_optional": [{"prefix": "/public/"}]})));
    for value in [format!("Bearer\t{OPAQUE}"), format!("Basic x, Bearer {OPAQUE}")] {
        let public = Headers::from_pairs([
            (":method", "GET"),
            (":path", "/public/status"),
            ("authorization", &value),
        ]);
        let (_, step) = gw.start(&public);
        assert!(matches!(status(&step), Some(400 | 401)), "{value:?}");
        assert!(step.calls.is_empty(), "{value:?}");
    }
    let basic = Headers::from_pairs([
        (":method", "GET"),
        (":path", "/public/status"),
        ("authorization", "Basic dXNlcjpwdw=="),
    ]);
    assert_eq!(
        gw.start(&basic).1.action,
        Action::Continue,
        "another scheme is not ours"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_request_without_a_path_is_a_malformed_request_not_a_bad_token() {
    let gw = Gateway::new(&jwt_mode());
    let (_, step) = gw.start(&Headers::from_pairs([(":method", "GET")]));
    assert_eq!(status(&step), Some(400));
    assert_eq!(gw.names(&step), vec!["denied_malformed_request"]);
    assert_eq!(state(&step, OUTCOME_STATE), Some(&b"malformed_request"[..]));
}

/// RFC 9449 section 7.2: a token bound to a key (a `cnf` in the JWT or the introspection answer
/// other than one client certificate's thumbprint, or `token_type: DPoP`) is good only with a
/// proof of that key, which this filter cannot check: in every answer format it is refused, never
/// forwarded as a bearer token.
#[wasm_bindgen_test(unsupported = test)]
fn a_token_bound_to_a_key_is_refused_in_every_answer_format() {
    let jkt = json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
    let jwt_mode = jwt_mode();
    let plain = jwt(json!({}));
    // Not a thumbprint: its base64url has non-zero trailing bits.
    let bound_jwt = jwt(json!({ "cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"} }));
    let [json_mode, jwt_field, response_header] = introspection_modes();
    let cases: Vec<(&str, &Value, CallOutcome)> = vec![
        ("jwt: cnf in the JWT", &jwt_mode, ok(&bound_jwt)),
        (
            "json: token_type DPoP",
            &json_mode,
            ok(&json!({"active": true, "token_type": "DPoP", "jwt": plain}).to_string()),
        ),
        (
            "json: token_type dpop",
            &json_mode,
            ok(&json!({"active": true, "token_type": "dpop", "jwt": plain}).to_string()),
        ),
        (
            "json: cnf in the answer",
            &json_mode,
            ok(&json!({"active": true, "cnf": jkt, "jwt": plain}).to_string()),
        ),
        (
            "json: cnf in the JWT",
            &json_mode,
            ok(&json!({"active": true, "token_type": "Bearer", "jwt": bound_jwt}).to_string()),
        ),
        (
            "jwt_field: token_type DPoP",
            &jwt_field,
            signed_answer(with(introspection(&plain), json!({"token_type": "DPoP"}))),
        ),
        (
            "jwt_field: cnf in the JWT",
            &jwt_field,
            signed_answer(introspection(&bound_jwt)),
        ),
        (
            "response_header: token_type DPoP",
            &response_header,
            signed_answer(with(introspection("unused"), json!({"token_type": "DPoP"}))),
        ),
        (
            "response_header: cnf",
            &response_header,
            signed_answer(with(introspection("unused"), json!({ "cnf": jkt }))),
        ),
    ];
    for (name, config, outcome) in cases {
        let gw = Gateway::new(config);
        let step = gw.exchange(OPAQUE, outcome);
        assert_eq!(status(&step), Some(401), "{name}");
        assert_eq!(body(&step)["error"], "invalid_token", "{name}");
        assert_eq!(
            body(&step)["error_description"],
            "the access token is bound to a key this gateway cannot check",
            "{name}"
        );
        assert_eq!(
            step.local_reply().unwrap().header("www-authenticate"),
            Some("Bearer realm=\"api\", error=\"invalid_token\""),
            "{name}"
        );
        assert!(
            step.header_edits.iter().all(|e| !matches!(e, HeaderEdit::Set(..))),
            "{name}"
        );
        assert_eq!(
            gw.names(&step),
            vec!["denied_sender_constrained", "introspection_active"],
            "{name}"
        );
        assert_eq!(state(&step, OUTCOME_STATE), Some(&b"sender_constrained"[..]), "{name}");
        assert_eq!(state(&step, CLAIMS_STATE), None, "{name}");
        // The answer is reused as an inactive one is, and refused the same way.
        let (_, again) = gw.start(&bearer(OPAQUE));
        assert!(again.calls.is_empty(), "{name}");
        assert_eq!(status(&again), Some(401), "{name}");
        assert_eq!(
            gw.names(&again),
            vec!["cache_negative_hit", "denied_sender_constrained"],
            "{name}"
        );
    }
    // `token_type: Bearer` is a bearer token.
    let gw = Gateway::new(&json_mode);
    let step = gw.exchange(
        OPAQUE,
        ok(&json!({"active": true, "token_type": "Bearer", "jwt": plain}).to_string()),
    );
    assert_eq!(authorization(&step), Some(format!("Bearer {plain}")));
}

/// The downstream connection presented a client certificate with this SHA-256 (`None`: none).
fn present_certificate(host: &mut FakeHost, sha256: Option<[u8; 32]>) {
    let path = vec!["connection".to_owned(), "sha256_peer_certificate_digest".to_owned()];
    match sha256 {
        Some(digest) => {
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            host.properties.properties.insert(path, hex.into_bytes());
        }
        None => {
            host.properties.properties.remove(&path);
        }
    }
}

/// RFC 8705 section 3: a token bound to a client certificate, by the answer or by its JWT, goes
/// upstream from a connection that presented that certificate, and from no other, whether the
/// answer is fresh or cached; one bound to two different certificates from none.
#[wasm_bindgen_test(unsupported = test)]
fn a_certificate_bound_token_goes_upstream_only_from_its_certificates_connection() {
    let (thumbprint, other) = ([0xc5; 32], [0xc6; 32]);
    let cnf = |t: &[u8; 32]| json!({ "x5t#S256": b64(t) });
    let plain = jwt(json!({}));
    let bound_jwt = jwt(json!({ "cnf": cnf(&thumbprint) }));
    let [json_mode, jwt_field, response_header] = introspection_modes();
    let cases: Vec<(&str, Value, CallOutcome)> = vec![
        ("jwt: cnf in the JWT", jwt_mode(), ok(&bound_jwt)),
        (
            "json: cnf in the answer",
            json_mode.clone(),
            ok(&json!({"active": true, "cnf": cnf(&thumbprint), "jwt": plain}).to_string()),
        ),
        (
            "json: the same cnf in both",
            json_mode.clone(),
            ok(&json!({"active": true, "cnf": cnf(&thumbprint), "jwt": bound_jwt}).to_string()),
        ),
        (
            "jwt_field: cnf in the answer",
            jwt_field,
            signed_answer(with(introspection(&plain), json!({ "cnf": cnf(&thumbprint) }))),
        ),
        (
            "response_header: cnf",
            response_header,
            signed_answer(with(introspection("unused"), json!({ "cnf": cnf(&thumbprint) }))),
        ),
    ];
    for (name, config, outcome) in cases {
        let mut gw = Gateway::new(&config);
        present_certificate(&mut gw.host, Some(thumbprint));
        let step = gw.exchange(OPAQUE, outcome);
        assert_eq!(status(&step), None, "{name}: {:?}", step.local_reply());
        assert_eq!(state(&step, OUTCOME_STATE), Some(&b"allowed"[..]), "{name}");
        let (_, again) = gw.start(&bearer(OPAQUE));
        assert_eq!(gw.names(&again), vec!["cache_hit", "allowed"], "{name}");
        for presented in [Some(other), None] {
            present_certificate(&mut gw.host, presented);
            let (_, refused) = gw.start(&bearer(OPAQUE));
            assert!(refused.calls.is_empty(), "{name}");
            assert_eq!(status(&refused), Some(401), "{name}");
            assert_eq!(
                body(&refused)["error_description"],
                "the access token is bound to a client certificate this connection did not present",
                "{name}"
            );
            assert_eq!(
                gw.names(&refused),
                vec!["cache_hit", "denied_certificate_mismatch"],
                "{name}"
            );
            assert_eq!(state(&refused, CLAIMS_STATE), None, "{name}");
        }
    }
    // Fresh from the IdP, on a connection without the certificate: refused too.
    let gw = Gateway::new(&jwt_mode());
    let step = gw.exchange(OPAQUE, ok(&bound_jwt));
    assert_eq!(
        gw.names(&step),
        vec!["denied_certificate_mismatch", "introspection_active"]
    );
    // Bound to two certificates: no connection presents both.
    let mut gw = Gateway::new(&json_mode);
    present_certificate(&mut gw.host, Some(thumbprint));
    let answer = json!({"active": true, "cnf": cnf(&other), "jwt": bound_jwt}).to_string();
    let step = gw.exchange(OPAQUE, ok(&answer));
    assert_eq!(
        gw.names(&step),
        vec!["denied_sender_constrained", "introspection_active"]
    );
}

/// Behind a front proxy that terminates mutual TLS, the holder's certificate is the one the
/// proxy forwards in `x-forwarded-client-cert`, read only from the proxy's own connection; a
/// request that waited for the introspection is checked against its own header.
#[wasm_bindgen_test(unsupported = test)]
fn a_certificate_bound_token_behind_a_trusted_proxy_is_checked_against_the_forwarded_hash() {
    let (thumbprint, other, proxy) = ([0xc5; 32], [0xc6; 32], [0x77; 32]);
    let hex = |bytes: &[u8; 32]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let config = with(
        jwt_mode(),
        json!({"client_certificate": {"type": "forwarded", "proxy_certificates": [hex(&proxy)]}}),
    );
    let bound_jwt = jwt(json!({ "cnf": {"x5t#S256": b64(&thumbprint)} }));
    let forwarding = |certificate: &[u8; 32]| {
        request(&[
            ("authorization", &format!("Bearer {OPAQUE}")),
            (
                "x-forwarded-client-cert",
                &format!("By=spiffe://gw;Hash={}", hex(certificate)),
            ),
        ])
    };
    let mut gw = Gateway::new(&config);
    present_certificate(&mut gw.host, Some(proxy));
    let (mut exchange, step) = gw.start(&forwarding(&thumbprint));
    assert_eq!(step.action, Action::Pause, "introspects");
    let step = exchange.on_call_response(ok(&bound_jwt), &gw.host.ctx());
    assert_eq!(status(&step), None, "{:?}", step.local_reply());
    let (_, again) = gw.start(&forwarding(&thumbprint));
    assert_eq!(gw.names(&again), vec!["cache_hit", "allowed"]);
    for (presented, headers, what) in [
        (Some(proxy), forwarding(&other), "another forwarded certificate"),
        (Some(proxy), bearer(OPAQUE), "no forwarded certificate"),
        (Some(thumbprint), forwarding(&thumbprint), "not from the proxy"),
        (None, forwarding(&thumbprint), "no TLS at all"),
    ] {
        present_certificate(&mut gw.host, presented);
        let (_, refused) = gw.start(&headers);
        assert_eq!(
            gw.names(&refused),
            vec!["cache_hit", "denied_certificate_mismatch"],
            "{what}"
        );
    }
}

/// A cached answer holds only for the keys that verified it: once a refresh finds the IdP's keys
/// changed (the signing key removed after a compromise), the token is asked about again rather
/// than its JWT sent upstream for up to `cache.max_ttl_secs`; with the keys unchanged, it is a hit.
#[wasm_bindgen_test(unsupported = test)]
fn a_cached_answer_is_asked_again_once_the_keys_that_verified_it_change() {
    let mut config = remote_config();
    config["jwt"]["jwks"]["refresh_secs"] = json!(30);
    let mut gw = Gateway::new(&config);
    let refresh = |gw: &mut Gateway, set: &str| {
        let tick = gw.config.root.on_tick(&gw.host.ctx());
        let (tag, _) = tick.calls[0].clone();
        let step = gw.config.root.on_call_response(tag, ok(set), &gw.host.ctx());
        assert_eq!(gw.config.counter_names(&step.counters), vec!["jwks_fetch_ok"]);
    };
    let (tag, _) = gw.config.root.on_start(&gw.host.ctx()).calls[0].clone();
    gw.config
        .root
        .on_call_response(tag, ok(&jwks(&[jwk(1, "k1")])), &gw.host.ctx());
    let token = jwt(json!({}));
    assert_eq!(
        authorization(&gw.exchange(OPAQUE, ok(&token))),
        Some(format!("Bearer {token}"))
    );

    gw.host.now_ms += 31_000;
    refresh(&mut gw, &jwks(&[jwk(1, "k1")]));
    let (_, step) = gw.start(&bearer(OPAQUE));
    assert_eq!(gw.names(&step), vec!["cache_hit", "allowed"], "the same keys");

    gw.host.now_ms += 31_000;
    refresh(&mut gw, &jwks(&[jwk(2, "k2")]));
    let (_, step) = gw.start(&bearer(OPAQUE));
    assert_eq!(step.action, Action::Pause, "{:?}", gw.names(&step));
    assert_eq!(gw.names(&step), vec!["cache_miss"]);
    assert_eq!(step.calls.len(), 1, "introspected again");
}

/// Three requests with one uncached token, the first of which goes away before its answer: three
/// cache misses and two coalesced waits, though the two that waited were woken to look up again
/// and one of them waited twice.
#[wasm_bindgen_test(unsupported = test)]
fn a_request_woken_to_look_up_again_is_counted_once() {
    let gw = Gateway::new(&jwt_mode());
    let mut names: Vec<String> = Vec::new();
    let (leader, step) = gw.start(&bearer(OPAQUE));
    names.extend(gw.names(&step));
    let (mut first, step) = gw.start(&bearer(OPAQUE));
    names.extend(gw.names(&step));
    let Action::Wait(signal) = step.action else {
        panic!("not waiting: {:?}", step.action)
    };
    let (mut second, step) = gw.start(&bearer(OPAQUE));
    names.extend(gw.names(&step));
    drop(leader);
    let step = first.on_wake(&signal, &gw.host.ctx());
    assert_eq!(step.calls.len(), 1, "the first woken leads now");
    names.extend(gw.names(&step));
    let step = second.on_wake(&signal, &gw.host.ctx());
    assert!(matches!(step.action, Action::Wait(_)), "the second waits again");
    names.extend(gw.names(&step));
    names.extend(gw.names(&first.on_call_response(ok(&jwt(json!({}))), &gw.host.ctx())));
    names.extend(gw.names(&second.on_wake(&signal, &gw.host.ctx())));
    let count = |name: &str| names.iter().filter(|n| *n == name).count();
    assert_eq!(count("allowed"), 2, "{names:?}");
    assert_eq!((count("cache_miss"), count("coalesced_waits")), (3, 2), "{names:?}");
}

/// A request without a bearer token that passes (a `token_optional` route, a preflight) does not
/// take a credential of another scheme to the upstream: `DPoP <opaque>` would put an opaque token
/// in the header the upstream reads as the gateway's.
#[wasm_bindgen_test(unsupported = test)]
fn a_request_passed_without_a_bearer_token_takes_no_other_credential_upstream() {
    let gw = Gateway::new(&with(jwt_mode(), json!({"token_optional": [{"prefix": "/public/"}]})));
    for (method, path, extra) in [
        ("GET", "/public/status", None),
        ("OPTIONS", "/orders", Some(("access-control-request-method", "POST"))),
    ] {
        for credential in ["DPoP opaque-token", "Basic Z3Vlc3Q6Z3Vlc3Q="] {
            let mut headers =
                Headers::from_pairs([(":method", method), (":path", path), ("origin", "https://app.example")]);
            if let Some((name, value)) = extra {
                headers.push(name, value.as_bytes());
            }
            headers.push("authorization", credential.as_bytes());
            let (_, step) = gw.start(&headers);
            assert_eq!(step.action, Action::Continue, "{path} {credential}");
            assert_eq!(gw.names(&step), vec!["unauthenticated_allowed"]);
            let mut forwarded = headers.clone();
            forwarded.apply(&step.header_edits);
            assert_eq!(forwarded.get("authorization"), None, "{path} {credential}");
        }
    }
}

// Other schemes, client copies, refusals the client can act on ---------------------------------

/// README, `token_optional`: "a credential of another scheme (`Authorization: DPoP …`, `Basic …`)
/// is not checked here and is removed". A DPoP-bound access token (RFC 9449) is most often a JWT:
/// a DPoP client calling a public route with it must pass, its credential removed, as it does
/// with an opaque DPoP token. The request never takes the credential upstream, so refusing it
/// protects nothing.
#[wasm_bindgen_test(unsupported = test)]
fn a_dpop_jwt_on_a_token_optional_route_is_removed_not_refused() {
    let gw = Gateway::new(&with(jwt_mode(), json!({"token_optional": [{"prefix": "/public/"}]})));
    let dpop_jwt = jwt(json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}));
    for credential in ["DPoP opaque-token".to_owned(), format!("DPoP {dpop_jwt}")] {
        let mut headers = Headers::from_pairs([(":method", "GET"), (":path", "/public/status")]);
        headers.push("authorization", credential.as_bytes());
        let (_, step) = gw.start(&headers);
        assert_eq!(
            step.action,
            Action::Continue,
            "{credential}: {:?} {:?}",
            status(&step),
            gw.names(&step)
        );
        assert_eq!(gw.names(&step), vec!["unauthenticated_allowed"], "{credential}");
        let mut forwarded = headers.clone();
        forwarded.apply(&step.header_edits);
        assert_eq!(forwarded.get("authorization"), None, "{credential}");
    }
}

/// RFC 6750 section 3.1: a request that authenticates with a method the resource server does not
/// support gets a challenge without an error code. `DPoP <opaque>` and `Basic …` get that
/// (`missing_token`); `DPoP <JWT>` must too, not `error="invalid_token"` (which tells a DPoP
/// client its token is bad, and counts it as `malformed_token`).
#[wasm_bindgen_test(unsupported = test)]
fn a_dpop_jwt_on_a_protected_route_is_no_bearer_token() {
    let gw = Gateway::new(&jwt_mode());
    let dpop_jwt = jwt(json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}));
    for credential in ["DPoP opaque-token".to_owned(), format!("DPoP {dpop_jwt}")] {
        let (_, step) = gw.start(&request(&[("authorization", &credential)]));
        assert!(step.calls.is_empty(), "{credential}");
        assert_eq!(status(&step), Some(401), "{credential}");
        assert_eq!(
            step.local_reply().unwrap().header("www-authenticate"),
            Some("Bearer realm=\"api\""),
            "{credential}"
        );
        assert_eq!(gw.names(&step), vec!["denied_missing_token"], "{credential}");
    }
}

/// README (Answer formats): "A client's copy of that header is always removed." Upstreams that
/// read headers through CGI names (Rack, PHP, WSGI) read `x_token_introspection` as
/// `x-token-introspection`; the filter removes that spelling from trailers and jwt-auth removes it
/// for its own output headers, but in the request headers only the exact name goes.
#[wasm_bindgen_test(unsupported = test)]
fn a_clients_underscore_copy_of_the_response_header_is_removed() {
    let gw = Gateway::new(&config(json!({
        "type": "signed", "audience": "gw-audience",
        "upstream": {"type": "response_header", "header": "x-token-introspection"},
    })));
    let mut headers = bearer(OPAQUE);
    headers.push("x_token_introspection", &b"forged"[..]);
    headers.push("X_Token-Introspection", &b"forged"[..]);
    let (_, step) = gw.start(&headers);
    assert_eq!(step.action, Action::Pause);
    let mut forwarded = headers.clone();
    forwarded.apply(&step.header_edits);
    let left: Vec<&str> = forwarded
        .iter()
        .filter(|(name, _)| name.replace('_', "-") == "x-token-introspection")
        .map(|(name, _)| name)
        .collect();
    assert!(left.is_empty(), "client copies left in the headers: {left:?}");
    // Trailers already lose them.
    let trailers = Headers::from_pairs([("x_token_introspection", "forged")]);
    let step = gw.config.filter().on_request_trailers(&trailers, &gw.host.ctx());
    assert_eq!(step.removed_headers(), ["x_token_introspection"]);
}

/// RFC 6585 section 4: an OAuth server that answers 429 is telling its client to come back
/// later: a dependency that is temporarily unavailable (README, Errors clients see: 503
/// `temporarily_unavailable`, `Retry-After` when known), not one that "answered nonsense" (502,
/// which carries no `Retry-After`, so every client retries at once against an IdP that is
/// already shedding load). DESIGN.md section 4: 503 with `Retry-After` where it helps.
#[wasm_bindgen_test(unsupported = test)]
fn an_oauth_server_that_answers_429_is_an_outage_with_its_retry_after() {
    let gw = Gateway::new(&jwt_mode());
    let step = gw.exchange(OPAQUE, answer(429, &[("retry-after", "7")], ""));
    assert_eq!(status(&step), Some(503), "{:?}", gw.names(&step));
    assert_eq!(body(&step)["error"], "temporarily_unavailable");
    assert_eq!(step.local_reply().unwrap().header("retry-after"), Some("7"));
}

/// An active token issued for another API: the OAuth server vouches for it, and its JWT names
/// another audience. That is a token this resource must refuse as `invalid_token` (RFC 6750
/// section 3.1 "invalid for other reasons"; RFC 9068 section 4, RFC 7662 section 4: a token
/// for another audience is rejected as invalid), not a broken OAuth server: 502 tells the client
/// to retry the same token, hides the bad token from the client's refresh logic, and pages
/// whoever watches `denied_idp_bad_answer` for a client's mistake.
#[wasm_bindgen_test(unsupported = test)]
fn a_token_for_another_audience_is_an_invalid_token_not_a_bad_gateway() {
    for mode in [jwt_mode(), config(json!({"type": "json", "field": "jwt"}))] {
        let gw = Gateway::new(&mode);
        let other_api = jwt(json!({"aud": "billing-api"}));
        let body_text = if mode["introspection"]["response"]["type"] == "json" {
            json!({"active": true, "jwt": other_api}).to_string()
        } else {
            other_api
        };
        let step = gw.exchange(OPAQUE, ok(&body_text));
        assert_eq!(
            status(&step),
            Some(401),
            "{}: {:?}",
            mode["introspection"]["response"],
            gw.names(&step)
        );
        assert_eq!(body(&step)["error"], "invalid_token");
        assert_eq!(
            step.local_reply().unwrap().header("www-authenticate"),
            Some("Bearer realm=\"api\", error=\"invalid_token\"")
        );
    }
}
