//! jwt-auth through a real Envoy, with keys served by the test OAuth server.

use harness::config::static_cluster;
use harness::oauth::{
    b64url_decode, b64url_encode, jwks_without_rsa_alg, now_secs, Fault, Gate, SigningKey, TokenSpec, ASYMMETRIC_ALGS,
};
use harness::tls::Client;
use harness::{merge_json, Gateway, OAuthServer, Request, Response};
use serde_json::{json, Value};

/// A provider that fetches the OAuth server's JWKS through cluster `oauth`.
fn remote_provider(oauth: &OAuthServer) -> Value {
    json!({
        "issuer": oauth.issuer(),
        "audiences": ["api"],
        "jwks": {"type": "remote", "cluster": "oauth", "path": "/jwks", "refresh_secs": 300, "timeout_ms": 1000},
        "claims_to_headers": [{"claim": "sub", "header": "x-user-id"}, {"claim": "scope", "header": "x-user-scope"}],
        "payload_header": "x-jwt-payload",
    })
}

fn gateway_with(oauth: &OAuthServer, config: Value, concurrency: u32) -> Gateway {
    let addr = oauth.addr();
    Gateway::start_with(|c| {
        c.filter("jwt_auth", config)
            .extra_cluster(static_cluster("oauth", addr))
            .concurrency(concurrency)
    })
}

/// A gateway with `provider` as its only provider `idp` and no rules, its keys loaded.
fn gateway_for(oauth: &OAuthServer, provider: Value) -> Gateway {
    let gw = gateway_with(oauth, json!({"providers": {"idp": provider}}), 1);
    wait_for_keys(&gw, 1);
    gw
}

/// A gateway with one remote provider `idp`, its keys loaded.
fn gateway(oauth: &OAuthServer, extra: Value) -> Gateway {
    let mut config = json!({"providers": {"idp": remote_provider(oauth)}});
    merge_json(&mut config, extra);
    let gw = gateway_with(oauth, config, 1);
    wait_for_keys(&gw, 1);
    gw
}

/// Readiness: until `n` successful key fetches are counted (bounded wait, not a sleep).
fn wait_for_keys(gw: &Gateway, n: u64) {
    gw.wait_until("the keys to load", || {
        gw.envoy.counter("wasmcustom.apisec.jwt_auth.jwks_fetch_ok") >= n
    });
}

fn bearer(token: &str) -> Request {
    Request::get("/orders").header("Authorization", &format!("Bearer {token}"))
}

fn assert_invalid_token(response: &Response, token: &str) {
    assert_eq!(response.status, 401, "{}", response.text());
    assert_eq!(
        response.header("www-authenticate").as_deref(),
        Some(r#"Bearer realm="api", error="invalid_token""#)
    );
    assert_eq!(response.json()["error"], "invalid_token");
    assert!(!response.text().contains(token), "the body echoes the token");
}

fn spec(alg: &str, kid: &str, claims: Value) -> TokenSpec {
    let mut spec = TokenSpec::new(alg, kid);
    spec.claims = claims;
    spec
}

fn claims(oauth: &OAuthServer, extra: Value) -> Value {
    let now = now_secs();
    let mut claims = json!({"iss": oauth.issuer(), "aud": "api", "sub": "alice", "iat": now, "exp": now + 300});
    merge_json(&mut claims, extra);
    claims
}

#[test]
fn a_valid_token_reaches_the_upstream_with_its_claims() {
    let oauth = OAuthServer::start();
    let gw = gateway(&oauth, json!({}));
    let token = oauth.token(json!({"sub": "alice", "scope": "orders:read orders:write"}));
    let response = gw.send(
        bearer(&token)
            .header("x-user-id", "mallory")
            .header("X-User-Scope", "admin"),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = gw.echo.last_request();
    assert_eq!(seen.header_all("x-user-id"), vec!["alice"]);
    assert_eq!(seen.header_all("x-user-scope"), vec!["orders:read orders:write"]);
    assert_eq!(seen.header("x-jwt-payload").as_deref(), token.split('.').nth(1));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {token}")),
        "forwarded by default"
    );
    assert_eq!(gw.envoy.stat("wasmcustom.apisec.jwt_auth.allowed"), Some(1));
}

/// Groups joined by a space reach the upstream as one header, unless an element would read as two
/// to a reader that splits at any Unicode space (Python's `str.split()`, JavaScript's `/\s+/`):
/// a group a user could name `x\u{a0}admin` must not become `admin` upstream.
#[test]
fn array_claims_joined_by_a_space_refuse_elements_holding_any_space() {
    let oauth = OAuthServer::start();
    let mut provider = remote_provider(&oauth);
    provider["claims_to_headers"] =
        json!([{"claim": "groups", "header": "x-user-groups"}, {"claim": "sub", "header": "x-user-id"}]);
    provider["array_separator"] = json!(" ");
    let gw = gateway_for(&oauth, provider);

    let plain = oauth.token(json!({"groups": ["staff", "billing"]}));
    assert_eq!(gw.send(bearer(&plain)).status, 200);
    assert_eq!(
        gw.echo.last_request().header_all("x-user-groups"),
        vec!["staff billing"]
    );

    for spaced in ["x\u{a0}admin", "x\u{3000}admin", "x\u{feff}admin"] {
        let token = oauth.token(json!({"groups": ["staff", spaced]}));
        let response = gw.send(bearer(&token).header("x-user-groups", "admin"));
        assert_eq!(response.status, 200, "{spaced:?}: {}", response.text());
        let seen = gw.echo.last_request();
        assert!(seen.header_all("x-user-groups").is_empty(), "{spaced:?}: {seen:?}");
        assert_eq!(seen.header_all("x-user-id"), vec!["alice"]);
    }
}

#[test]
fn every_asymmetric_algorithm_verifies() {
    let oauth = OAuthServer::start();
    // Inline keys, the RSA one without `alg` so that it may verify every RSA algorithm.
    let jwks = jwks_without_rsa_alg(&["rsa-1", "ec-1", "ec384-1", "ed-1"]);
    let mut provider = remote_provider(&oauth);
    provider["jwks"] = json!({"type": "inline", "jwks": jwks});
    let gw = gateway_with(&oauth, json!({"providers": {"idp": provider}}), 1);
    for (alg, kid) in ASYMMETRIC_ALGS {
        let token = oauth.mint(spec(alg, kid, claims(&oauth, json!({}))));
        let response = gw.send(bearer(&token));
        assert_eq!(response.status, 200, "{alg}: {}", response.text());
    }
    // Envoy checks RS* and ES* natively (BoringSSL); PS* and EdDSA are checked in wasm.
    assert_eq!(gw.envoy.stat("wasmcustom.apisec.jwt_auth.verified_by_host"), Some(5));
    assert_eq!(gw.envoy.stat("wasmcustom.apisec.jwt_auth.verified_in_wasm"), Some(4));
}

#[test]
fn no_token_gets_a_bare_challenge() {
    let oauth = OAuthServer::start();
    let gw = gateway(&oauth, json!({}));
    for request in [
        Request::get("/orders"),
        Request::get("/orders").header("Authorization", "Basic dXNlcjpwYXNz"),
    ] {
        let response = gw.send(request);
        assert_eq!(response.status, 401);
        assert_eq!(
            response.header("www-authenticate").as_deref(),
            Some(r#"Bearer realm="api""#)
        );
        assert_eq!(response.json()["error"], "unauthorized");
    }
    assert_eq!(gw.echo.request_count(), 0);
}

#[test]
fn two_authorization_headers_are_a_bad_request() {
    let oauth = OAuthServer::start();
    let gw = gateway(&oauth, json!({}));
    let token = oauth.token(json!({}));
    let forged = oauth.mint(spec("RS256", "rsa-2", claims(&oauth, json!({"sub": "admin"}))));
    // Envoy folds repeated Authorization headers into one comma-joined value: refused all the same.
    for (first, second) in [(&token, &token), (&token, &forged), (&forged, &token)] {
        let response = gw.send(bearer(first).header("authorization", &format!("Bearer {second}")));
        assert_eq!(response.status, 400);
        assert_eq!(
            response.header("www-authenticate").as_deref(),
            Some(r#"Bearer realm="api", error="invalid_request""#)
        );
    }
    assert_eq!(gw.echo.request_count(), 0);
}

#[test]
fn forged_and_broken_tokens_are_refused() {
    let oauth = OAuthServer::start();
    let gw = gateway(&oauth, json!({}));
    let good = claims(&oauth, json!({}));
    let now = good["iat"].as_u64().unwrap();
    let mut cases: Vec<(&str, String)> = Vec::new();
    let mut none = spec("none", "rsa-1", good.clone());
    none.signing_key = SigningKey::None;
    cases.push(("alg none", oauth.mint(none)));
    let mut none_upper = spec("NONE", "rsa-1", good.clone());
    none_upper.signing_key = SigningKey::None;
    cases.push(("alg NONE", oauth.mint(none_upper)));
    let rsa_public = oauth.public_key_pem("rsa-1").into_bytes();
    let mut confused = spec("HS256", "rsa-1", good.clone());
    confused.signing_key = SigningKey::Hmac(rsa_public);
    cases.push(("RSA public key as HMAC secret", oauth.mint(confused)));
    let mut crit = spec("RS256", "rsa-1", good.clone());
    crit.header_extra.insert("crit".into(), json!(["exp"]));
    cases.push(("unknown crit", oauth.mint(crit)));
    let mut unknown_kid = spec("RS256", "rsa-2", good.clone());
    unknown_kid.kid = Some("rsa-2".into());
    cases.push(("key not published", oauth.mint(unknown_kid)));
    // RFC 8725 section 3.11: JWTs the issuer signs that are never access tokens.
    for typ in ["token-introspection+jwt", "secevent+jwt", "logout+jwt"] {
        let mut other_kind = spec("RS256", "rsa-1", good.clone());
        other_kind.header_extra.insert("typ".into(), json!(typ));
        cases.push((typ, oauth.mint(other_kind)));
    }
    cases.push((
        "expired",
        oauth.mint(spec(
            "RS256",
            "rsa-1",
            claims(&oauth, json!({"iat": now - 600, "exp": now - 120})),
        )),
    ));
    cases.push((
        "not yet valid",
        oauth.mint(spec("RS256", "rsa-1", claims(&oauth, json!({"nbf": now + 600})))),
    ));
    cases.push((
        "wrong issuer",
        oauth.mint(spec(
            "RS256",
            "rsa-1",
            claims(&oauth, json!({"iss": "https://evil.example"})),
        )),
    ));
    cases.push((
        "wrong audience",
        oauth.mint(spec("RS256", "rsa-1", claims(&oauth, json!({"aud": "other"})))),
    ));
    cases.push((
        "wrong audience array",
        oauth.mint(spec("RS256", "rsa-1", claims(&oauth, json!({"aud": ["x", "y"]})))),
    ));
    cases.push((
        "exp as a string",
        oauth.mint(spec(
            "RS256",
            "rsa-1",
            claims(&oauth, json!({"exp": (now + 300).to_string()})),
        )),
    ));
    cases.push((
        "no exp",
        oauth.mint(spec("RS256", "rsa-1", claims(&oauth, json!({"exp": null})))),
    ));
    // RFC 9449 section 7.2, RFC 8705 section 3: bound to a key nobody here checks.
    cases.push((
        "bound to a DPoP key",
        oauth.token(json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}})),
    ));
    let valid = oauth.token(json!({}));
    let parts: Vec<&str> = valid.split('.').collect();
    cases.push(("two segments", format!("{}.{}", parts[0], parts[1])));
    cases.push(("four segments", format!("{valid}.x")));
    cases.push(("padding", format!("{}.{}=.{}", parts[0], parts[1], parts[2])));
    cases.push((
        "tampered payload",
        format!(
            "{}.{}.{}",
            parts[0],
            &claims_b64(&oauth, json!({"sub": "admin"})),
            parts[2]
        ),
    ));
    cases.push(("oversized", format!("{}.{}.{}", parts[0], "A".repeat(20_000), parts[2])));
    for (what, token) in cases {
        let response = gw.send(bearer(&token));
        assert_eq!(response.status, 401, "{what}: {}", response.text());
        assert_invalid_token(&response, &token);
    }
    assert_eq!(gw.echo.request_count(), 0);
}

fn claims_b64(oauth: &OAuthServer, extra: Value) -> String {
    b64url_encode(claims(oauth, extra).to_string().as_bytes())
}

#[test]
fn rules_choose_per_route_and_method() {
    let oauth = OAuthServer::start();
    let gw = gateway(
        &oauth,
        json!({"rules": [
            {"match": {"prefix": "/public/"}, "requires": {"type": "none"}},
            {"match": {"prefix": "/catalog", "methods": ["GET"]}, "requires": {"type": "allow_missing", "providers": ["idp"]}},
            {"match": {"prefix": "/"}, "requires": {"type": "provider", "name": "idp"}},
        ]}),
    );
    let token = oauth.token(json!({}));
    assert_eq!(gw.get("/public/health").status, 200);
    // Even on an open route, a client cannot inject the headers the filter sets.
    gw.send(Request::get("/public/x").header("x-user-id", "admin"));
    assert!(!gw.echo.last_request().has_header("x-user-id"));
    assert_eq!(gw.get("/catalog").status, 200, "no token is fine");
    assert_eq!(
        gw.send(Request::get("/catalog").header("Authorization", "Bearer a.b.c"))
            .status,
        401,
        "a bad one is not"
    );
    // Nor one behind a no-break space, which Python's `str.split()` reads as a separator: not
    // in the bearer form, it is refused, never taken for no token.
    for value in ["Bearer\u{a0}a.b.c", "\u{a0}Bearer a.b.c"] {
        let response = gw.send(Request::get("/catalog").header("Authorization", value));
        assert_eq!(response.status, 401, "{value:?}: {}", response.text());
    }
    assert_eq!(
        gw.send(Request::post("/catalog", "{}")).status,
        401,
        "POST is not covered by allow_missing"
    );
    assert_eq!(gw.send(bearer(&token)).status, 200);
}

/// Without Envoy's path normalisation `/public/../orders` matches the public prefix as written
/// and is `/orders` to the upstream: the filter refuses such paths itself.
#[test]
fn without_envoy_normalisation_a_public_prefix_opens_no_other_path() {
    let oauth = OAuthServer::start();
    let config = json!({
        "providers": {"idp": remote_provider(&oauth)},
        "rules": [
            {"match": {"prefix": "/public/"}, "requires": {"type": "none"}},
            {"match": {"prefix": "/"}, "requires": {"type": "provider", "name": "idp"}},
        ],
    });
    let addr = oauth.addr();
    let gw = Gateway::start_with(|c| {
        c.filter("jwt_auth", config)
            .extra_cluster(static_cluster("oauth", addr))
            .without_path_normalisation()
    });
    wait_for_keys(&gw, 1);
    let tricks = [
        "/public/../orders",
        "/public/%2e%2e/orders",
        "/public/..%2forders",
        "/public/./../orders",
        "/public/..;/orders",
        "/public//../orders",
    ];
    for path in tricks {
        let before = gw.echo.requests().len();
        let response = gw.get(path);
        assert_eq!(response.status, 400, "{path}: {}", response.text());
        assert_eq!(gw.echo.requests().len(), before, "{path} reached the upstream");
    }
    assert_eq!(
        gw.envoy.counter("wasmcustom.apisec.jwt_auth.denied_path_refused"),
        tricks.len() as u64
    );
    assert_eq!(gw.get("/public/health").status, 200);
}

/// Reads are public, writes need a token: a `GET` carrying `X-HTTP-Method-Override: DELETE` (a
/// `DELETE` to many frameworks) is refused rather than judged as a read.
#[test]
fn a_method_override_header_does_not_turn_a_public_read_into_an_unchecked_write() {
    let oauth = OAuthServer::start();
    let config = json!({
        "providers": {"idp": remote_provider(&oauth)},
        "rules": [
            {"match": {"prefix": "/orders", "methods": ["GET"]}, "requires": {"type": "none"}},
            {"match": {"prefix": "/"}, "requires": {"type": "provider", "name": "idp"}},
        ],
    });
    let addr = oauth.addr();
    let gw = Gateway::start_with(|c| {
        c.filter("jwt_auth", config)
            .extra_cluster(static_cluster("oauth", addr))
    });
    wait_for_keys(&gw, 1);
    assert_eq!(gw.get("/orders/7").status, 200, "a plain read is public");
    let before = gw.echo.requests().len();
    let response = gw.send(Request::get("/orders/7").header("X-HTTP-Method-Override", "DELETE"));
    assert_eq!(response.status, 400, "{}", response.text());
    assert_eq!(gw.echo.requests().len(), before, "the override reached the upstream");
    assert_eq!(
        gw.envoy
            .counter("wasmcustom.apisec.jwt_auth.denied_method_override_refused"),
        1
    );
}

/// RFC 8705: with Envoy terminating TLS and asking for client certificates, a token bound to one
/// (`cnf.x5t#S256`) reaches the upstream from a connection that presented that certificate, and
/// from no other, whether its verdict is cached or not.
#[test]
fn a_certificate_bound_token_passes_only_with_its_client_certificate() {
    let oauth = OAuthServer::start();
    let config = json!({"providers": {"idp": remote_provider(&oauth)}});
    let addr = oauth.addr();
    let gw = Gateway::start_with(|c| {
        c.filter("jwt_auth", config)
            .extra_cluster(static_cluster("oauth", addr))
            .with_tls()
    });
    wait_for_keys(&gw, 1);
    let token = oauth.token(json!({"sub": "alice", "cnf": {"x5t#S256": Client::One.thumbprint()}}));
    for attempt in ["verified", "from the cache"] {
        let response = gw.send_tls(bearer(&token), Some(Client::One));
        assert_eq!(response.status, 200, "{attempt}: {}", response.text());
        assert_eq!(gw.echo.last_request().header_all("x-user-id"), vec!["alice"]);
    }
    assert_eq!(gw.envoy.counter("wasmcustom.apisec.jwt_auth.cache_hit"), 1);
    let reached = gw.echo.requests().len();
    for client in [Some(Client::Two), None] {
        let response = gw.send_tls(bearer(&token), client);
        assert_invalid_token(&response, &token);
        assert_eq!(
            response.json()["error_description"],
            "the access token is bound to a client certificate this connection did not present",
            "{client:?}"
        );
    }
    assert_eq!(gw.echo.requests().len(), reached, "a copied token reached the upstream");
    assert_eq!(
        gw.envoy
            .counter("wasmcustom.apisec.jwt_auth.denied_certificate_mismatch"),
        2
    );
    // A bearer token needs no certificate; one bound to a DPoP key is refused with any.
    assert_eq!(gw.send_tls(bearer(&oauth.token(json!({}))), None).status, 200);
    let dpop_bound = oauth.token(json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}));
    assert_invalid_token(&gw.send_tls(bearer(&dpop_bound), Some(Client::One)), &dpop_bound);
    assert_eq!(
        gw.envoy.counter("wasmcustom.apisec.jwt_auth.denied_sender_constrained"),
        1
    );
}

/// Behind a front proxy that terminates mutual TLS and forwards the client certificate's hash in
/// `x-forwarded-client-cert` (Envoy keeps the header from an mTLS connection with
/// `forward_client_cert_details: FORWARD_ONLY`): the hash counts only on the connection of a
/// proxy whose certificate the config names. Here client one plays the proxy.
#[test]
fn a_certificate_bound_token_behind_a_trusted_proxy_passes_with_the_forwarded_certificate() {
    let oauth = OAuthServer::start();
    let config = json!({"providers": {"idp": remote_provider(&oauth)},
                        "client_certificate": {"type": "forwarded",
                                               "proxy_certificates": [Client::One.sha256_hex()]}});
    let addr = oauth.addr();
    let gw = Gateway::start_with(|c| {
        c.filter("jwt_auth", config)
            .extra_cluster(static_cluster("oauth", addr))
            .with_tls()
            .hcm("forward_client_cert_details", json!("FORWARD_ONLY"))
    });
    wait_for_keys(&gw, 1);
    let token = oauth.token(json!({"sub": "alice", "cnf": {"x5t#S256": Client::Two.thumbprint()}}));
    let forwarding = |certificate: Client| {
        bearer(&token).header(
            "X-Forwarded-Client-Cert",
            &format!(
                "By=spiffe://front;Hash={};Subject=\"CN=client,O=Example\"",
                certificate.sha256_hex()
            ),
        )
    };
    for attempt in ["verified", "from the cache"] {
        let response = gw.send_tls(forwarding(Client::Two), Some(Client::One));
        assert_eq!(response.status, 200, "{attempt}: {}", response.text());
    }
    let reached = gw.echo.requests().len();
    for (request, connection, what) in [
        (
            forwarding(Client::One),
            Some(Client::One),
            "another forwarded certificate",
        ),
        (bearer(&token), Some(Client::One), "no forwarded certificate"),
        (
            forwarding(Client::Two),
            Some(Client::Two),
            "the client itself, not the proxy",
        ),
        (forwarding(Client::Two), None, "no client certificate"),
    ] {
        let response = gw.send_tls(request, connection);
        assert_eq!(response.status, 401, "{what}");
        assert_invalid_token(&response, &token);
    }
    assert_eq!(gw.echo.requests().len(), reached, "a copied token reached the upstream");
    assert_eq!(
        gw.envoy
            .counter("wasmcustom.apisec.jwt_auth.denied_certificate_mismatch"),
        4
    );
}

#[test]
fn tokens_from_query_and_cookie_can_be_stripped() {
    let oauth = OAuthServer::start();
    let mut provider = remote_provider(&oauth);
    provider["from"] = json!([{"type": "query", "name": "access_token"}, {"type": "cookie", "name": "at"}]);
    provider["forward"] = json!(false);
    let gw = gateway_for(&oauth, provider);
    let token = oauth.token(json!({}));
    assert_eq!(
        gw.send(Request::get(&format!("/orders?a=1&access_token={token}")))
            .status,
        200
    );
    assert_eq!(gw.echo.last_request().path, "/orders?a=1");
    assert_eq!(
        gw.send(Request::get("/orders").header("Cookie", &format!("theme=dark; at={token}")))
            .status,
        200
    );
    assert_eq!(gw.echo.last_request().header("cookie").as_deref(), Some("theme=dark"));
    // ASP.NET Core reads cookie names in any letter case: `AT` is the token to it, so it is taken
    // out too, and next to `at` it is a second token.
    assert_eq!(
        gw.send(Request::get("/orders").header("Cookie", &format!("theme=dark; AT={token}")))
            .status,
        200
    );
    assert_eq!(gw.echo.last_request().header("cookie").as_deref(), Some("theme=dark"));
    let forged = gw.send(Request::get("/orders").header("Cookie", &format!("AT=forged; at={token}")));
    assert_eq!(forged.status, 400, "{}", forged.text());
    assert_eq!(gw.echo.request_count(), 3);
    assert_eq!(
        gw.send(bearer(&token)).status,
        401,
        "the header is not a configured source"
    );
}

#[test]
fn oidc_discovery_finds_the_keys() {
    let oauth = OAuthServer::start();
    let mut provider = remote_provider(&oauth);
    provider["jwks"] = json!({"type": "oidc", "cluster": "oauth"});
    let gw = gateway_for(&oauth, provider);
    assert_eq!(gw.send(bearer(&oauth.token(json!({})))).status, 200);
    assert_eq!(oauth.calls("/.well-known/openid-configuration"), 1);
}

#[test]
fn a_rotated_in_key_is_accepted_without_restart() {
    // The periodic refresh is minutes away: only the unknown kid can make the filter see the new key.
    let oauth = OAuthServer::start();
    let gw = gateway_for(&oauth, remote_provider(&oauth));
    oauth.publish("rsa-2");
    let rotated = oauth.mint(spec("RS256", "rsa-2", claims(&oauth, json!({}))));
    assert_eq!(
        gw.send(bearer(&rotated)).status,
        200,
        "the unknown kid triggers a refetch"
    );
    assert_eq!(gw.envoy.counter("wasmcustom.apisec.jwt_auth.kid_refetch"), 1);
    assert_eq!(oauth.calls("/jwks"), 2, "the start-up fetch and the refetch");
}

#[test]
fn a_removed_key_is_refused_after_the_next_refresh() {
    let oauth = OAuthServer::start();
    let mut provider = remote_provider(&oauth);
    provider["jwks"]["refresh_secs"] = json!(1);
    let gw = gateway_for(&oauth, provider);
    oauth.publish("rsa-2");
    let old = oauth.token(json!({}));
    assert_eq!(gw.send(bearer(&old)).status, 200);

    oauth.retire("rsa-1");
    // One fetch at a time: the second fetch to complete from now started after the key was retired.
    let fetches = gw.envoy.counter("wasmcustom.apisec.jwt_auth.jwks_fetch_ok");
    wait_for_keys(&gw, fetches + 2);
    assert_invalid_token(&gw.send(bearer(&old)), &old);
}

/// Verified tokens are kept per key version: a refresh that finds the same keys keeps them.
#[test]
fn a_refresh_that_finds_the_same_keys_keeps_verified_tokens() {
    let oauth = OAuthServer::start();
    let mut provider = remote_provider(&oauth);
    provider["jwks"]["refresh_secs"] = json!(1);
    let gw = gateway_for(&oauth, provider);
    let token = oauth.token(json!({}));
    assert_eq!(gw.send(bearer(&token)).status, 200);
    let hits = || gw.envoy.counter("wasmcustom.apisec.jwt_auth.cache_hit");
    let misses = gw.envoy.counter("wasmcustom.apisec.jwt_auth.cache_miss");

    let fetches = gw.envoy.counter("wasmcustom.apisec.jwt_auth.jwks_fetch_ok");
    wait_for_keys(&gw, fetches + 2);
    let before = hits();
    assert_eq!(gw.send(bearer(&token)).status, 200);
    assert_eq!(
        hits(),
        before + 1,
        "the token was verified again after an unchanged refresh"
    );
    assert_eq!(gw.envoy.counter("wasmcustom.apisec.jwt_auth.cache_miss"), misses);
}

#[test]
fn keys_unavailable_at_start_is_503_then_recovers() {
    let oauth = OAuthServer::start();
    oauth.set_fault(Fault::Status(500));
    let gw = gateway_with(&oauth, json!({"providers": {"idp": remote_provider(&oauth)}}), 1);
    gw.wait_until("a failed fetch", || {
        gw.envoy.counter("wasmcustom.apisec.jwt_auth.jwks_fetch_failed") >= 1
    });
    let token = oauth.token(json!({}));
    let response = gw.send(bearer(&token));
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(response.header("retry-after").as_deref(), Some("2"));
    assert!(
        !response.has_header("www-authenticate"),
        "an outage is not an authentication failure"
    );
    assert_eq!(gw.echo.request_count(), 0);

    oauth.set_fault(Fault::None);
    wait_for_keys(&gw, 1);
    assert_eq!(gw.send(bearer(&token)).status, 200);
}

/// A token naming a published key with an `alg` that key is not for is a bad token: it asks the
/// IdP for nothing, and an IdP outage does not turn its 401 into a 503.
#[test]
fn a_published_kid_with_an_alg_its_key_is_not_for_is_401_during_an_idp_outage() {
    let oauth = OAuthServer::start();
    let gw = gateway(&oauth, json!({}));
    oauth.set_fault(Fault::Down);
    let mut mismatched = spec("ES256", "rsa-1", claims(&oauth, json!({})));
    mismatched.signing_key = SigningKey::Raw(vec![1; 64]);
    let token = oauth.mint(mismatched);
    let response = gw.send(bearer(&token));
    assert_invalid_token(&response, &token);
    assert_eq!(gw.envoy.counter("wasmcustom.apisec.jwt_auth.kid_refetch"), 0);
    assert_eq!(gw.envoy.stat("wasmcustom.apisec.jwt_auth.denied_key_mismatch"), Some(1));
}

/// Envoy takes traffic as soon as its listener is up, which is before the first key fetch has
/// answered (and at every config push that names a new key source): a request that finds no
/// keys yet waits for that fetch rather than failing.
#[test]
fn a_request_before_the_first_keys_waits_for_them() {
    let oauth = OAuthServer::start();
    let keys = Gate::new();
    oauth.set_fault_at("/jwks", Fault::Hold(keys.clone()));
    let mut provider = remote_provider(&oauth);
    provider["jwks"]["timeout_ms"] = json!(5000);
    let gw = gateway_with(&oauth, json!({"providers": {"idp": provider}}), 1);
    assert_eq!(
        gw.envoy.counter("wasmcustom.apisec.jwt_auth.jwks_fetch_ok"),
        0,
        "the first fetch is held"
    );
    let token = oauth.token(json!({}));
    let response = gw.send_then_open(bearer(&token), &keys);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(gw.echo.request_count(), 1);
}

/// After failed fetches the periodic retry backs off for seconds; a request does not wait that
/// out: it fetches the keys itself, and gets them as soon as the IdP answers again.
#[test]
fn the_first_request_after_an_idp_outage_fetches_the_keys_itself() {
    let oauth = OAuthServer::start();
    oauth.set_fault(Fault::Down);
    let gw = gateway_with(&oauth, json!({"providers": {"idp": remote_provider(&oauth)}}), 1);
    gw.wait_until("a failed fetch", || {
        gw.envoy.counter("wasmcustom.apisec.jwt_auth.jwks_fetch_failed") >= 1
    });
    oauth.set_fault(Fault::None);
    let token = oauth.token(json!({}));
    let response = gw.send(bearer(&token));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(gw.envoy.counter("wasmcustom.apisec.jwt_auth.jwks_fetch_ok"), 1);
}

#[test]
fn oidc_discovery_keys_are_fetched_by_the_first_request_too() {
    let oauth = OAuthServer::start();
    let discovery = Gate::new();
    oauth.set_fault_at("/.well-known/openid-configuration", Fault::Hold(discovery.clone()));
    let mut provider = remote_provider(&oauth);
    provider["jwks"] = json!({"type": "oidc", "cluster": "oauth", "timeout_ms": 5000});
    let gw = gateway_with(&oauth, json!({"providers": {"idp": provider}}), 1);
    assert_eq!(gw.envoy.counter("wasmcustom.apisec.jwt_auth.jwks_fetch_ok"), 0);
    let response = gw.send_then_open(bearer(&oauth.token(json!({}))), &discovery);
    assert_eq!(response.status, 200, "{}", response.text());
}

#[test]
fn a_flapping_idp_keeps_the_last_good_keys() {
    let oauth = OAuthServer::start();
    let mut provider = remote_provider(&oauth);
    provider["jwks"]["refresh_secs"] = json!(1);
    let gw = gateway_for(&oauth, provider);
    let token = oauth.token(json!({}));
    for (round, fault) in [Fault::Status(500), Fault::MalformedJwks, Fault::Down]
        .into_iter()
        .enumerate()
    {
        oauth.set_fault(fault);
        let round = round as u64 + 1;
        gw.wait_until("a failed refresh", || {
            gw.envoy.counter("wasmcustom.apisec.jwt_auth.jwks_fetch_failed") >= round
        });
        let fresh = oauth.token(json!({"sub": format!("round-{round}")}));
        assert_eq!(gw.send(bearer(&fresh)).status, 200, "round {round}");
    }
    assert_eq!(gw.send(bearer(&token)).status, 200);
}

/// While the IdP cannot be asked, its last keys are used for `max_stale_secs` after the fetch
/// that got them, not without bound (a key it removed meanwhile would be trusted on): then tokens
/// get 503, cached ones too, until a fetch succeeds again.
#[test]
fn keys_that_cannot_be_refreshed_are_not_used_past_max_stale() {
    let oauth = OAuthServer::start();
    let mut provider = remote_provider(&oauth);
    provider["jwks"]["refresh_secs"] = json!(1);
    provider["jwks"]["max_stale_secs"] = json!(3);
    let gw = gateway_for(&oauth, provider);
    let token = oauth.token(json!({}));
    assert_eq!(gw.send(bearer(&token)).status, 200);
    oauth.set_fault(Fault::Down);
    gw.wait_until("the keys to go stale", || gw.send(bearer(&token)).status == 503);
    let response = gw.send(bearer(&token));
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(response.header("retry-after").as_deref(), Some("2"));
    assert_eq!(
        gw.envoy.stat("wasmcustom.apisec.jwt_auth.denied_keys_unavailable"),
        Some(2)
    );
    oauth.set_fault(Fault::None);
    gw.wait_until("the keys to come back", || gw.send(bearer(&token)).status == 200);
}

/// `{"keys": []}` is no failure but the IdP withdrawing its keys: the key it removed is trusted
/// no longer (401, not the last keys kept), and its return is taken as soon as it is published.
#[test]
fn an_idp_that_withdraws_every_key_is_believed() {
    let oauth = OAuthServer::start();
    let mut provider = remote_provider(&oauth);
    provider["jwks"]["refresh_secs"] = json!(1);
    let gw = gateway_for(&oauth, provider);
    assert_eq!(gw.send(bearer(&oauth.token(json!({})))).status, 200);
    oauth.set_fault(Fault::EmptyKeys);
    // A refresh already under way may still bring the old set, and a worker takes a new set on
    // its next tick: the key is refused within the wait, or it was kept.
    let after = oauth.token(json!({"sub": "after"}));
    let mut response = gw.send(bearer(&after));
    gw.wait_until("the withdrawn key refused", || {
        if response.status != 401 {
            response = gw.send(bearer(&after));
        }
        response.status == 401
    });
    assert!(
        response
            .header("www-authenticate")
            .unwrap_or_default()
            .contains("invalid_token"),
        "{:?}",
        response.header("www-authenticate")
    );
    assert_eq!(gw.envoy.counter("wasmcustom.apisec.jwt_auth.jwks_fetch_failed"), 0);
    oauth.set_fault(Fault::None);
    gw.wait_until("the keys published again", || {
        gw.send(bearer(&oauth.token(json!({"sub": "back"})))).status == 200
    });
}

#[test]
fn keys_are_fetched_once_for_all_workers_and_tokens_cached() {
    let oauth = OAuthServer::start();
    let gw = gateway_with(&oauth, json!({"providers": {"idp": remote_provider(&oauth)}}), 2);
    wait_for_keys(&gw, 1);
    let token = oauth.token(json!({}));
    for _ in 0..20 {
        assert_eq!(gw.send(bearer(&token)).status, 200);
    }
    assert_eq!(
        oauth.calls("/jwks"),
        1,
        "one worker fetches, the other reads shared data"
    );
    assert!(gw.envoy.counter("wasmcustom.apisec.jwt_auth.cache_hit") >= 18);
}

/// The HMAC secret of the `partner` provider of [`partner_provider`].
const PARTNER_SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0NQ";

/// A provider for partner tokens (HS256 with [`PARTNER_SECRET`], in `x-partner-token`), which sets
/// `sub` as `claim_header`.
fn partner_provider(claim_header: &str) -> Value {
    json!({
        "issuer": "https://partner.example",
        "jwks": {"type": "hmac", "secret_base64url": PARTNER_SECRET},
        "algorithms": ["HS256"],
        "from": [{"type": "header", "name": "x-partner-token"}],
        "claims_to_headers": [{"claim": "sub", "header": claim_header}],
    })
}

/// A token with these claims over the defaults, signed HS256 with [`PARTNER_SECRET`].
fn partner_signed(oauth: &OAuthServer, claims_json: Value) -> String {
    let mut spec = spec("HS256", "rsa-1", claims(oauth, claims_json));
    spec.kid = None;
    spec.signing_key = SigningKey::Hmac(b64url_decode(PARTNER_SECRET));
    oauth.mint(spec)
}

#[test]
fn several_providers_any_of_and_all_of() {
    let oauth = OAuthServer::start();
    let config = json!({
        "providers": {"idp": remote_provider(&oauth), "partner": partner_provider("x-user-id")},
        "rules": [
            {"match": {"prefix": "/both"}, "requires": {"type": "all_of", "providers": ["idp", "partner"]}},
            {"match": {"prefix": "/"}, "requires": {"type": "any_of", "providers": ["idp", "partner"]}},
        ],
    });
    let gw = gateway_with(&oauth, config, 1);
    wait_for_keys(&gw, 1);
    let partner_token = partner_signed(&oauth, json!({"iss": "https://partner.example", "sub": "partner-user"}));
    let idp_token = oauth.token(json!({"sub": "idp-user"}));
    assert_eq!(
        gw.send(Request::get("/x").header("x-partner-token", &partner_token))
            .status,
        200
    );
    assert_eq!(gw.send(bearer(&idp_token)).status, 200);
    assert_eq!(
        gw.send(Request::get("/both").header("x-partner-token", &partner_token))
            .status,
        401
    );
    let both = Request::get("/both")
        .header("x-partner-token", &partner_token)
        .header("Authorization", &format!("Bearer {idp_token}"));
    assert_eq!(gw.send(both).status, 200);

    // Under any_of, a forged second token fails the request: it would reach the upstream unchecked.
    let forged = oauth.mint({
        let mut s = spec(
            "HS256",
            "rsa-1",
            claims(&oauth, json!({"iss": "https://partner.example"})),
        );
        s.kid = None;
        s.signing_key = SigningKey::Hmac(b"not the partner's secret, 32 bytes".to_vec());
        s
    });
    let before = gw.echo.request_count();
    let with_forged = Request::get("/x")
        .header("x-partner-token", &forged)
        .header("Authorization", &format!("Bearer {idp_token}"));
    assert_invalid_token(&gw.send(with_forged), &forged);
    assert_eq!(gw.echo.request_count(), before, "the forged token reached the upstream");
    let two_valid = Request::get("/x")
        .header("x-partner-token", &partner_token)
        .header("Authorization", &format!("Bearer {idp_token}"));
    assert_eq!(gw.send(two_valid).status, 200);
    // Both providers map `sub` to x-user-id: the upstream sees the identity of the token whose
    // claims are handed on (idp's, the rule's first provider), whatever the order of the headers.
    let upstream = gw.echo.last_request();
    assert_eq!(upstream.header("x-user-id").as_deref(), Some("idp-user"));
}

#[test]
fn a_bad_config_is_refused_at_load_with_the_field_path() {
    let log = Gateway::start_refused(|c| {
        c.filter(
            "jwt_auth",
            json!({"providers": {"idp": {"issuer": "https://idp.example", "jwks": {"type": "remote", "cluster": "oauth", "path": "jwks"}}}}),
        )
    });
    assert!(
        log.contains("jwt_auth: invalid configuration: providers.idp.jwks.path: must start with '/'"),
        "{log}"
    );
}

/// A claim value the upstream's HTTP parser would trim (a field value has no white space at
/// either end, RFC 9110 section 5.5, and list readers trim each item) sets no header: a user who
/// gets the IdP to issue `sub: " admin "` or a group `" admin"` is not `admin` upstream, even
/// when sending that header itself.
#[test]
fn claim_values_with_white_space_at_either_end_set_no_header() {
    let oauth = OAuthServer::start();
    let mut provider = remote_provider(&oauth);
    provider["claims_to_headers"] =
        json!([{"claim": "sub", "header": "x-user-id"}, {"claim": "groups", "header": "x-user-groups"}]);
    let gw = gateway_for(&oauth, provider);
    let token = oauth.token(json!({"sub": " admin ", "groups": ["staff", "\u{a0}admin"]}));
    let response = gw.send(
        bearer(&token)
            .header("X-User-Id", "admin")
            .header("X-User-Groups", "admin"),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = gw.echo.last_request();
    assert_eq!(seen.header_all("x-user-id"), Vec::<String>::new());
    assert_eq!(seen.header_all("x-user-groups"), Vec::<String>::new());
}

/// A token in the source of a provider the matched rule does not name is never checked, so it
/// never reaches the upstream: a forged `Authorization` next to a valid partner token on the
/// partner's route is removed, and so is idp's own token (`forward: false`) on idp's route.
#[test]
fn a_token_the_rule_does_not_check_never_reaches_the_upstream() {
    let oauth = OAuthServer::start();
    let mut idp = remote_provider(&oauth);
    idp["forward"] = json!(false);
    let config = json!({
        "providers": {"idp": idp, "partner": partner_provider("x-partner-id")},
        "rules": [
            {"match": {"prefix": "/partner/"}, "requires": {"type": "provider", "name": "partner"}},
            {"match": {"prefix": "/"}, "requires": {"type": "provider", "name": "idp"}},
        ],
    });
    let gw = gateway_with(&oauth, config, 1);
    wait_for_keys(&gw, 1);
    let partner_token = partner_signed(&oauth, json!({"iss": "https://partner.example", "sub": "partner-user"}));
    // idp's issuer, signed with the partner's secret: a key the IdP never had.
    let forged = partner_signed(&oauth, json!({"sub": "admin"}));

    let idp_token = oauth.token(json!({"sub": "idp-user"}));
    assert_eq!(gw.send(bearer(&idp_token)).status, 200);
    assert!(!gw.echo.last_request().has_header("authorization"));

    let response = gw.send(
        Request::get("/partner/orders")
            .header("x-partner-token", &partner_token)
            .header("Authorization", &format!("Bearer {forged}")),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = gw.echo.last_request();
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("x-partner-id").as_deref(), Some("partner-user"));
}
