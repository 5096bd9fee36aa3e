//! scope-gate through a real Envoy, behind jwt-auth: scopes come from filter state only.

use harness::config::static_cluster;
use harness::{Gateway, GatewayConfig, OAuthServer, Request, Response};
use serde_json::{json, Value};

fn jwt_auth(oauth: &OAuthServer) -> Value {
    json!({
        "providers": {"idp": {
            "issuer": oauth.issuer(),
            "audiences": ["api"],
            "jwks": {"type": "inline", "jwks": oauth.jwks_json()},
        }},
        "rules": [
            {"match": {"prefix": "/public/"}, "requires": {"type": "none"}},
            {"match": {"prefix": "/"}, "requires": {"type": "provider", "name": "idp"}},
        ],
    })
}

fn scope_gate() -> Value {
    json!({
        "rules": [
            {"id": "public", "match": {"prefix": "/public/"}, "requires": {"type": "public"}},
            {"id": "admin", "match": {"prefix": "/admin"}, "requires": {"type": "any_of", "scopes": ["admin"]}},
            {"id": "orders_read", "match": {"prefix": "/orders", "methods": ["GET"]},
             "requires": {"type": "any_of", "scopes": ["orders:read", "orders:write"]}},
            {"id": "orders_write", "match": {"prefix": "/orders", "methods": ["POST"]},
             "content_types": ["application/json"], "requires": {"type": "all_of", "scopes": ["orders:write"]}},
        ],
    })
}

fn chain(oauth: &OAuthServer, hcm: impl FnOnce(GatewayConfig) -> GatewayConfig) -> Gateway {
    chain_with(oauth, jwt_auth(oauth), hcm)
}

fn chain_with(oauth: &OAuthServer, config: Value, hcm: impl FnOnce(GatewayConfig) -> GatewayConfig) -> Gateway {
    let addr = oauth.addr();
    Gateway::start_with(|c| {
        hcm(c
            .filter("jwt_auth", config)
            .filter("scope_gate", scope_gate())
            .extra_cluster(static_cluster("oauth", addr)))
    })
}

/// jwt-auth and scope-gate with these scope-gate rules.
fn chain_gated(oauth: &OAuthServer, rules: Value, hcm: impl FnOnce(GatewayConfig) -> GatewayConfig) -> Gateway {
    let addr = oauth.addr();
    let auth = jwt_auth(oauth);
    Gateway::start_with(|c| {
        hcm(c
            .filter("jwt_auth", auth)
            .filter("scope_gate", json!({"unmatched": "allow", "rules": rules}))
            .extra_cluster(static_cluster("oauth", addr)))
    })
}

/// header-scrub with its defaults in front of jwt-auth and scope-gate with these rules.
fn scrubbed_chain_gated(oauth: &OAuthServer, rules: Value) -> Gateway {
    let addr = oauth.addr();
    let auth = jwt_auth(oauth);
    Gateway::start_with(|c| {
        c.filter("header_scrub", json!({}))
            .filter("jwt_auth", auth)
            .filter("scope_gate", json!({"rules": rules}))
            .extra_cluster(static_cluster("oauth", addr))
    })
}

fn with_token(request: Request, token: &str) -> Request {
    request.header("Authorization", &format!("Bearer {token}"))
}

#[test]
fn scopes_decide_per_route_method_and_content_type() {
    let oauth = OAuthServer::start();
    let gw = chain(&oauth, |c| c);
    let reader = oauth.token(json!({"scope": "orders:read"}));
    let writer = oauth.token(json!({"scp": ["orders:write"]}));

    assert_eq!(gw.send(with_token(Request::get("/orders/1"), &reader)).status, 200);
    assert_eq!(gw.send(with_token(Request::get("/orders/1"), &writer)).status, 200);
    let post = || Request::post("/orders", "{}").header("Content-Type", "application/json");
    let refused = gw.send(with_token(post(), &reader));
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.header("www-authenticate").as_deref(),
        Some(r#"Bearer realm="api", error="insufficient_scope", scope="orders:write""#)
    );
    assert_eq!(refused.json()["error"], "insufficient_scope");
    assert_eq!(gw.send(with_token(post(), &writer)).status, 200);
    let text = with_token(
        Request::post("/orders", "x").header("Content-Type", "text/plain"),
        &writer,
    );
    assert_eq!(gw.send(text).status, 415);
    assert_eq!(
        gw.send(with_token(Request::get("/unlisted"), &writer)).status,
        403,
        "default deny"
    );
    assert_eq!(gw.get("/public/status").status, 200);

    assert_eq!(
        gw.envoy.stat("wasmcustom.apisec.scope_gate.denied_orders_write"),
        Some(1)
    );
    assert_eq!(
        gw.envoy.stat("wasmcustom.apisec.scope_gate.content_type_refused"),
        Some(1)
    );
    assert_eq!(gw.envoy.stat("wasmcustom.apisec.scope_gate.unmatched_denied"), Some(1));
}

#[test]
fn without_verified_claims_it_is_401_and_forged_claims_gain_nothing() {
    let oauth = OAuthServer::start();
    // scope-gate alone: nothing verifies tokens, so nothing is ever authorised.
    let gw = Gateway::start_with(|c| c.filter("scope_gate", scope_gate()));
    let admin = oauth.token(json!({"scope": "admin orders:read orders:write"}));
    let attempts = [
        with_token(Request::get("/orders"), &admin),
        Request::get("/orders").header("x-claims", r#"{"scope":"orders:read"}"#),
        Request::get("/orders").header("apisec.claims", r#"{"scope":"orders:read"}"#),
        Request::get("/orders").header("x-filter-state-apisec.claims", r#"{"scope":"orders:read"}"#),
        Request::get("/orders").header("x-envoy-filter-state", "apisec.claims=orders:read"),
    ];
    for request in attempts {
        let response = gw.send(request);
        assert_eq!(response.status, 401, "{}", response.text());
        assert_eq!(
            response.header("www-authenticate").as_deref(),
            Some(r#"Bearer realm="api""#)
        );
    }
    assert_eq!(gw.echo.request_count(), 0);
}

const BYPASSES: &[&str] = &[
    "/public/../admin",
    "/public/%2e%2e/admin",
    "/public/%2E%2E/admin",
    "/public/..%2fadmin",
    "/public/..%2Fadmin",
    "/public%2f..%2fadmin",
    "/public/..%5cadmin",
    "/public/..\\admin",
    "/public/./../admin",
    "//admin",
    "/public//../admin",
    "/admin;/public/",
    "/public/..;/admin",
    "/ADMIN",
    "/Admin/users",
    "/admin%2f",
    "/%61dmin",
    "/adm%69n/users",
    "/%61%64%6d%69%6e",
    "/public/%2e%2e%2fadmin",
    "/admin#/public/",
    "/admin?/public/",
];

/// Every trick against `/admin`, by a client whose token lacks `admin`: the upstream never sees
/// a request under `/admin`, whatever Envoy's path settings.
fn assert_no_bypass(gw: &Gateway, token: &str) {
    for path in BYPASSES {
        let before = gw.echo.requests().len();
        let response: Response = gw.send(with_token(Request::get(path), token));
        let reached = gw
            .echo
            .requests()
            .into_iter()
            .skip(before)
            .map(|r| r.path)
            .collect::<Vec<_>>();
        // `/public//../admin` legitimately becomes `/public/admin` (dot segments go before slashes
        // merge): public, and not under `/admin`. An upstream may decode escapes (`/%61dmin` is
        // `/admin` to most), so neither may a path that decodes to it.
        assert!(
            reached
                .iter()
                .all(|p| !percent_decoded(p).to_ascii_lowercase().starts_with("/admin")),
            "{path}: the upstream saw {reached:?} (status {})",
            response.status
        );
    }
}

/// Every `%XX` decoded, as a lenient upstream reads a path.
fn percent_decoded(path: &str) -> String {
    let mut bytes = Vec::new();
    let mut rest = path.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let escaped = (b == b'%')
            .then(|| tail.get(..2))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                bytes.push(byte);
                rest = tail.get(2..).unwrap_or_default();
            }
            None => {
                bytes.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn path_tricks_do_not_reach_a_protected_prefix_with_envoy_normalisation() {
    let oauth = OAuthServer::start();
    let gw = chain(&oauth, |c| c);
    assert_no_bypass(&gw, &oauth.token(json!({"scope": "orders:read"})));
}

#[test]
fn path_tricks_do_not_reach_a_protected_prefix_without_envoy_normalisation() {
    let oauth = OAuthServer::start();
    let token = oauth.token(json!({"scope": "orders:read"}));
    // jwt-auth's rules read no path: scope-gate itself refuses what Envoy passed on unnormalised.
    let mut every_path = jwt_auth(&oauth);
    every_path["rules"] = json!([]);
    let gw = chain_with(&oauth, every_path, GatewayConfig::without_path_normalisation);
    assert_no_bypass(&gw, &token);
    assert!(gw.envoy.counter("wasmcustom.apisec.scope_gate.path_refused") >= 5);
    assert_eq!(gw.envoy.counter("wasmcustom.apisec.jwt_auth.denied_path_refused"), 0);
    // With its public prefix, jwt-auth reads paths too, and refuses them first.
    let gw = chain(&oauth, GatewayConfig::without_path_normalisation);
    assert_no_bypass(&gw, &token);
    assert!(gw.envoy.counter("wasmcustom.apisec.jwt_auth.denied_path_refused") >= 5);
}

/// Rails, Express without `strict` and Spring before 6 serve `/admin/` as `/admin`: the trailing
/// slash must not take a request past the rule for `/admin` to the catch-all.
#[test]
fn a_trailing_slash_does_not_get_past_an_exact_rule() {
    let oauth = OAuthServer::start();
    let gw = chain_gated(
        &oauth,
        json!([
            {"id": "admin", "match": {"exact": "/admin"}, "requires": {"type": "any_of", "scopes": ["admin"]}},
            {"id": "read", "match": {"prefix": "/"}, "requires": {"type": "any_of", "scopes": ["read"]}},
        ]),
        |c| c,
    );
    let reader = oauth.token(json!({"scope": "read"}));
    for path in ["/admin", "/admin/", "/admin/?x=1"] {
        let response = gw.send(with_token(Request::get(path), &reader));
        assert_eq!(response.status, 403, "{path}: {}", response.text());
    }
    assert_eq!(gw.send(with_token(Request::get("/admin/x"), &reader)).status, 200);
    assert_eq!(gw.envoy.counter("wasmcustom.apisec.scope_gate.denied_admin"), 3);
    assert!(gw.echo.requests().iter().all(|r| r.path == "/admin/x"));
}

/// Many upstreams read `delete` as `DELETE`: a lowercase method must be held to the DELETE rule,
/// not pass as unmatched. Envoy passes such methods on with `allow_custom_methods`.
#[test]
fn a_lowercase_method_is_held_to_the_rule_for_its_uppercase_form() {
    let oauth = OAuthServer::start();
    let gw = chain_gated(
        &oauth,
        json!([
            {"id": "delete", "match": {"prefix": "/orders/", "methods": ["DELETE"]},
             "requires": {"type": "any_of", "scopes": ["admin"]}},
        ]),
        |c| c.hcm("http_protocol_options", json!({"allow_custom_methods": true})),
    );
    let writer = oauth.token(json!({"scope": "orders:write"}));
    for method in ["DELETE", "delete", "Delete"] {
        let response = gw.send(with_token(Request::new(method, "/orders/1"), &writer));
        assert_eq!(response.status, 403, "{method}: {}", response.text());
    }
    assert_eq!(gw.envoy.counter("wasmcustom.apisec.scope_gate.denied_delete"), 3);
    assert_eq!(gw.envoy.counter("wasmcustom.apisec.scope_gate.public_allowed"), 0);
    assert_eq!(gw.echo.request_count(), 0);
    let admin = oauth.token(json!({"scope": "admin"}));
    assert_eq!(
        gw.send(with_token(Request::new("delete", "/orders/1"), &admin)).status,
        200
    );
}

/// A `write` token's `POST` with `X-HTTP-Method-Override: DELETE` is a DELETE to Rails and many
/// other stacks, and one with `?_method=DELETE` (or `?+_method=DELETE`, which PHP reads as
/// `_method`) to Symfony and Laravel: scope-gate refuses them. header-scrub in front removes the
/// header first; the query it leaves alone.
#[test]
fn method_override_headers_do_not_get_past_a_method_rule() {
    let oauth = OAuthServer::start();
    let rules = json!([
        {"id": "delete", "match": {"prefix": "/orders/", "methods": ["DELETE"]},
         "requires": {"type": "any_of", "scopes": ["admin"]}},
        {"id": "write", "match": {"prefix": "/orders/", "methods": ["POST"]},
         "requires": {"type": "any_of", "scopes": ["orders:write"]}},
    ]);
    let writer = oauth.token(json!({"scope": "orders:write"}));
    let overridden = || {
        with_token(
            Request::post("/orders/1", "{}").header("X-HTTP-Method-Override", "DELETE"),
            &writer,
        )
    };
    let in_query = |path: &str| with_token(Request::post(path, "{}"), &writer);
    let parameters = ["/orders/1?_method=DELETE", "/orders/1?+_method=DELETE"];
    let gw = chain_gated(&oauth, rules.clone(), |c| c);
    for request in [overridden()].into_iter().chain(parameters.map(in_query)) {
        let refused = gw.send(request);
        assert_eq!(refused.status, 400, "{}", refused.text());
        assert_eq!(refused.json()["error"], "invalid_request");
    }
    assert_eq!(gw.echo.request_count(), 0);
    assert_eq!(
        gw.envoy.counter("wasmcustom.apisec.scope_gate.method_override_refused"),
        3
    );
    assert_eq!(
        gw.send(with_token(Request::post("/orders/1", "{}"), &writer)).status,
        200
    );

    let gw = scrubbed_chain_gated(&oauth, rules);
    assert_eq!(gw.send(overridden()).status, 200);
    assert!(!gw.echo.last_request().has_header("x-http-method-override"));
    for path in parameters {
        assert_eq!(gw.send(in_query(path)).status, 400, "{path}");
    }
    assert_eq!(
        gw.envoy.counter("wasmcustom.apisec.scope_gate.method_override_refused"),
        2
    );
}

/// Envoy (with the normalisation of every shipped config) forwards `%3A` as it is; an upstream
/// that decodes the path before routing it (Go's `ServeMux`, Spring) runs
/// `/v1/orders/42%3Acancel` as the cancel. A path whose decoded reading is another rule's is
/// refused, and so is a path-override header; header-scrub in front removes the header instead.
#[test]
fn escaped_reserved_characters_and_path_overrides_do_not_skip_a_rule() {
    let oauth = OAuthServer::start();
    let rules = json!([
        {"id": "cancel", "match": {"regex": "/v1/orders/[0-9]+:cancel"},
         "requires": {"type": "any_of", "scopes": ["orders:admin"]}},
        {"id": "rest", "match": {"prefix": "/"}, "requires": {"type": "any_of", "scopes": ["orders:read"]}},
    ]);
    let gw = chain_gated(&oauth, rules.clone(), |c| c);
    let reader = oauth.token(json!({"scope": "orders:read"}));
    let post = |path: &str| with_token(Request::post(path, "{}"), &reader);
    assert_eq!(gw.send(post("/v1/orders/42:cancel")).status, 403);
    let overridden = || post("/v1/orders/42").header("X-Original-URL", "/v1/orders/42:cancel");
    for request in [
        post("/v1/orders/42%3Acancel"),
        post("/v1/orders/42%3acancel"),
        overridden(),
    ] {
        let refused = gw.send(request);
        assert_eq!(refused.status, 400, "{}", refused.text());
        assert_eq!(refused.json()["error"], "invalid_request");
    }
    assert_eq!(gw.echo.request_count(), 0);
    // jwt-auth's rules read paths too: it refuses the override before scope-gate sees it.
    assert_eq!(gw.envoy.counter("wasmcustom.apisec.jwt_auth.denied_path_refused"), 1);
    assert_eq!(gw.envoy.counter("wasmcustom.apisec.scope_gate.path_refused"), 2);
    assert_eq!(gw.send(post("/users/alice%40example.com")).status, 200);
    assert_eq!(gw.echo.last_request().path, "/users/alice%40example.com");

    let gw = scrubbed_chain_gated(&oauth, rules);
    assert_eq!(gw.send(overridden()).status, 200);
    assert!(!gw.echo.last_request().has_header("x-original-url"));
}

/// A rule written with an escaped space, as the README shows, holds requests for that path; and
/// `/admin%3F`, which Envoy forwards as it is and an upstream that decodes and then splits off
/// the query serves as `/admin`, does not get past the rule for `/admin`.
#[test]
fn rules_with_escapes_hold_and_escaped_delimiters_do_not_skip_one() {
    let oauth = OAuthServer::start();
    let rules = json!([
        {"id": "report", "match": {"exact": "/files/my%20report"},
         "requires": {"type": "any_of", "scopes": ["files:read"]}},
        {"id": "admin", "match": {"exact": "/admin"}, "requires": {"type": "any_of", "scopes": ["admin"]}},
    ]);
    let gw = chain_gated(&oauth, rules, |c| c);
    let reader = oauth.token(json!({"scope": "files:read"}));
    let report = gw.send(with_token(Request::get("/files/my%20report"), &reader));
    assert_eq!(report.status, 200, "{}", report.text());
    assert_eq!(gw.send(with_token(Request::get("/admin"), &reader)).status, 403);
    let sneaky = gw.send(with_token(Request::get("/admin%3F"), &reader));
    assert_eq!(sneaky.status, 400, "{}", sneaky.text());
    assert_eq!(gw.echo.request_count(), 1);
}

/// jwt-auth lets a browser's CORS preflight through (it carries no credentials), for an upstream
/// that answers CORS itself; scope-gate behind it lets it through too, instead of asking it for the
/// token it can never carry. A preflight that asks for another method by an override header is
/// no preflight: it is refused for its missing token.
#[test]
fn a_cors_preflight_jwt_auth_lets_through_reaches_the_upstream() {
    let oauth = OAuthServer::start();
    let rules = json!([
        {"id": "orders", "match": {"prefix": "/orders"}, "requires": {"type": "any_of", "scopes": ["orders:read"]}},
    ]);
    let gw = chain_gated(&oauth, rules, |c| c);
    let preflight = || {
        Request::new("OPTIONS", "/orders/1")
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", "DELETE")
            .header("Access-Control-Request-Headers", "authorization")
    };
    let response = gw.send(preflight());
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(gw.echo.request_count(), 1);
    assert_eq!(gw.envoy.counter("wasmcustom.apisec.scope_gate.preflight_allowed"), 1);

    let overridden = gw.send(preflight().header("X-HTTP-Method-Override", "DELETE"));
    assert_eq!(overridden.status, 401, "{}", overridden.text());
    assert_eq!(gw.echo.request_count(), 1);
}
