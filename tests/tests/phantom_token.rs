//! phantom-token through a real Envoy, against the test OAuth server: opaque tokens in, verified
//! JWTs out, in each introspection answer format; caching, coalescing, lifetimes and every fault.

use std::time::Duration;

use harness::config::static_cluster;
use harness::oauth::{
    jws_header, now_secs, verify_jws, Client, ClientAuth, Fault, Gate, TokenFormat, TokenSpec, INTROSPECT_PATH,
    TOKEN_PATH,
};
use harness::tls::Client as TlsClient;
use harness::{merge_json, Gateway, OAuthServer, Request, Response};
use serde_json::{json, Value};

const CLIENT_ID: &str = "gateway";
const CLIENT_SECRET: &str = "gateway secret&=";

fn counter(gw: &Gateway, name: &str) -> u64 {
    gw.envoy.counter(&format!("wasmcustom.apisec.phantom_token.{name}"))
}

/// An OAuth server that knows this gateway as a client.
fn oauth() -> OAuthServer {
    let oauth = OAuthServer::start();
    oauth.add_client(Client::new(CLIENT_ID, CLIENT_SECRET, ""));
    oauth
}

fn config(oauth: &OAuthServer, response: Value, extra: Value) -> Value {
    let mut config = json!({
        "realm": "api",
        "introspection": {
            "cluster": "oauth", "path": INTROSPECT_PATH, "authority": "idp.test",
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "timeout_ms": 1000,
            "response": response,
        },
        "jwt": {
            "issuer": oauth.issuer(), "audiences": ["api"],
            "jwks": {"type": "remote", "cluster": "oauth", "path": "/jwks", "timeout_ms": 1000},
        },
    });
    merge_json(&mut config, extra);
    config
}

fn jwt_mode() -> Value {
    json!({"type": "jwt"})
}

/// A gateway running phantom-token with `config` on `workers` workers, the IdP's keys loaded.
fn gateway_with(oauth: &OAuthServer, config: Value, workers: u32) -> Gateway {
    let addr = oauth.addr();
    let gw = Gateway::start_with(|c| {
        c.filter("phantom_token", config)
            .extra_cluster(static_cluster("oauth", addr))
            .concurrency(workers)
    });
    gw.wait_until("the IdP's keys", || counter(&gw, "jwks_fetch_ok") >= 1);
    gw
}

fn gateway(oauth: &OAuthServer, response: Value) -> Gateway {
    gateway_with(oauth, config(oauth, response, json!({})), 1)
}

/// One `introspection.response` of each answer format.
fn answer_formats() -> [Value; 4] {
    [
        jwt_mode(),
        json!({"type": "json", "field": "jwt"}),
        json!({"type": "signed", "upstream": {"type": "jwt_field", "field": "jwt"}}),
        json!({"type": "signed", "upstream": {"type": "response_header", "header": "x-token-introspection"}}),
    ]
}

fn bearer(token: &str) -> Request {
    Request::get("/orders").header("Authorization", &format!("Bearer {token}"))
}

/// The upstream got exactly `Authorization: Bearer <jwt>`, the JWT verifies with the IdP's JWKS,
/// and the opaque token is nowhere.
fn assert_upstream_got_jwt(gw: &Gateway, oauth: &OAuthServer, opaque: &str, jwt: &str) {
    let seen = gw.echo.last_request();
    assert_eq!(seen.header_all("authorization"), vec![format!("Bearer {jwt}")]);
    verify_jws(&oauth.jwks_json(), jwt).unwrap_or_else(|e| panic!("the forwarded JWT does not verify: {e}"));
    assert!(
        seen.headers
            .iter()
            .all(|(_, v)| !String::from_utf8_lossy(v).contains(opaque)),
        "the opaque token reached the upstream"
    );
}

fn assert_denied(response: &Response, status: u16, error: &str, token: &str) {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(response.json()["error"], error, "{}", response.text());
    let text = response.text();
    assert!(!text.contains(token), "the reply echoes the token: {text}");
    assert!(
        !text.to_lowercase().contains("html"),
        "the reply echoes the IdP's body: {text}"
    );
}

#[test]
fn each_answer_format_turns_an_opaque_token_into_a_verified_jwt() {
    let oauth = oauth();
    let modes = [
        ("application/jwt", jwt_mode()),
        ("application/json", json!({"type": "json", "field": "jwt"})),
        (
            "application/token-introspection+jwt",
            json!({"type": "signed", "upstream": {"type": "jwt_field", "field": "jwt"}}),
        ),
    ];
    for (accept, response) in modes {
        let gw = gateway(&oauth, response);
        let opaque = oauth.opaque_token(json!({"scope": "orders:read"}));
        let response = gw.send(bearer(&opaque));
        assert_eq!(response.status, 200, "{accept}: {}", response.text());
        let jwt = oauth.phantom_jwt(&opaque).expect("a phantom JWT");
        assert_upstream_got_jwt(&gw, &oauth, &opaque, &jwt);
        let asked = oauth.introspection_requests().pop().expect("an introspection request");
        assert_eq!(asked.token, opaque);
        assert_eq!(asked.client_id, CLIENT_ID);
        assert_eq!(asked.auth_method, ClientAuth::Basic);
        assert_eq!(asked.accept.as_deref(), Some(accept));
        assert_eq!(asked.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
        assert_eq!(counter(&gw, "introspection_active"), 1, "{accept}");
    }
}

#[test]
fn a_token_from_the_token_endpoint_works_with_client_secret_post() {
    let oauth = oauth();
    oauth.set_token_format(TokenFormat::Opaque);
    let extra = json!({"introspection": {"client_auth": "client_secret_post", "token_type_hint": "access_token"}});
    let gw = gateway_with(&oauth, config(&oauth, jwt_mode(), extra), 1);
    let issued = harness::http::send(
        oauth.addr(),
        &Request::post(
            TOKEN_PATH,
            "grant_type=client_credentials&client_id=demo&client_secret=demo-secret",
        )
        .header("Content-Type", "application/x-www-form-urlencoded"),
    )
    .expect("the token endpoint");
    let opaque = issued.json()["access_token"].as_str().expect("access_token").to_owned();
    assert_eq!(opaque.matches('.').count(), 0, "opaque: {opaque}");
    assert_eq!(gw.send(bearer(&opaque)).status, 200);
    assert_upstream_got_jwt(&gw, &oauth, &opaque, &oauth.phantom_jwt(&opaque).expect("phantom JWT"));
    let asked = oauth.introspection_requests().pop().expect("an introspection request");
    assert_eq!(asked.auth_method, ClientAuth::Post);
    assert_eq!(asked.token_type_hint.as_deref(), Some("access_token"));
}

#[test]
fn a_signed_response_can_go_upstream_in_its_own_header() {
    let oauth = oauth();
    let response =
        json!({"type": "signed", "upstream": {"type": "response_header", "header": "x-token-introspection"}});
    let gw = gateway(&oauth, response);
    let opaque = oauth.opaque_token(json!({"scope": "orders:read"}));
    let response = gw.send(bearer(&opaque).header("X-Token-Introspection", "forged"));
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = gw.echo.last_request();
    assert!(seen.header_all("authorization").is_empty(), "never as the access token");
    let forwarded = seen.header_all("x-token-introspection");
    assert_eq!(forwarded.len(), 1, "the client's copy is gone");
    verify_jws(&oauth.jwks_json(), &forwarded[0]).expect("the signed response verifies");
    assert_eq!(jws_header(&forwarded[0])["typ"], "token-introspection+jwt");
}

#[test]
fn requests_without_a_usable_token_get_rfc_6750_answers() {
    let oauth = oauth();
    let gw = gateway(&oauth, jwt_mode());
    let missing = gw.get("/orders");
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.header("www-authenticate").as_deref(),
        Some(r#"Bearer realm="api""#)
    );
    let two = gw.send(bearer("one").header("Authorization", "Bearer two"));
    assert_eq!(two.status, 400, "{}", two.text());
    assert_eq!(two.json()["error"], "invalid_request");
    assert_eq!(
        two.header("www-authenticate").as_deref(),
        Some(r#"Bearer realm="api", error="invalid_request""#)
    );
    let unknown = gw.send(bearer("not-a-token-anyone-issued"));
    assert_denied(&unknown, 401, "invalid_token", "not-a-token-anyone-issued");
    assert_eq!(
        unknown.header("www-authenticate").as_deref(),
        Some(r#"Bearer realm="api", error="invalid_token""#)
    );
    assert_eq!(
        oauth.calls(INTROSPECT_PATH),
        1,
        "only the well-formed token was introspected"
    );
    assert_eq!(gw.echo.request_count(), 0);
}

/// Without Envoy's path normalisation, `/public/../orders` matches a token-optional prefix as
/// written and is `/orders` to the upstream: without a token, such a path is refused.
#[test]
fn without_envoy_normalisation_a_token_optional_prefix_opens_no_other_path() {
    let oauth = oauth();
    let config = config(&oauth, jwt_mode(), json!({"token_optional": [{"prefix": "/public/"}]}));
    let addr = oauth.addr();
    let gw = Gateway::start_with(|c| {
        c.filter("phantom_token", config)
            .extra_cluster(static_cluster("oauth", addr))
            .without_path_normalisation()
    });
    let tricks = [
        "/public/../orders",
        "/public/%2e%2e/orders",
        "/public/..%2forders",
        "/public//../orders",
    ];
    for path in tricks {
        let response = gw.get(path);
        assert_eq!(response.status, 400, "{path}: {}", response.text());
        assert_eq!(response.json()["error"], "invalid_request");
    }
    assert_eq!(counter(&gw, "denied_path_refused"), tricks.len() as u64);
    assert_eq!(gw.echo.request_count(), 0);
    assert_eq!(gw.get("/public/status").status, 200);
}

/// A route open without a token is open without credentials: one of another scheme
/// (`Authorization: DPoP <opaque token>`) is not checked here, so it does not reach the upstream,
/// which reads that header as the gateway's.
#[test]
fn a_token_optional_route_takes_no_unchecked_credential_upstream() {
    let oauth = oauth();
    let config = config(&oauth, jwt_mode(), json!({"token_optional": [{"prefix": "/public/"}]}));
    let gw = gateway_with(&oauth, config, 1);
    for credential in ["DPoP opaque-token", "Basic Z3Vlc3Q6Z3Vlc3Q="] {
        let response = gw.send(Request::get("/public/status").header("authorization", credential));
        assert_eq!(response.status, 200, "{credential}: {}", response.text());
        assert_eq!(
            gw.echo.last_request().header_all("authorization"),
            Vec::<String>::new(),
            "{credential} reached the upstream"
        );
    }
    assert_eq!(counter(&gw, "unauthenticated_allowed"), 2);
}

/// Reads are open without a token, writes are not: a `GET` that asks the upstream to run a
/// `DELETE` (a header, or Symfony's and Laravel's `_method` parameter) is refused, not let through
/// as a read.
#[test]
fn without_a_token_a_method_override_does_not_turn_an_open_read_into_a_write() {
    let oauth = oauth();
    let config = config(
        &oauth,
        jwt_mode(),
        json!({"token_optional": [{"prefix": "/orders", "methods": ["GET"]}]}),
    );
    let addr = oauth.addr();
    let gw = Gateway::start_with(|c| {
        c.filter("phantom_token", config)
            .extra_cluster(static_cluster("oauth", addr))
    });
    assert_eq!(gw.get("/orders/7").status, 200, "a plain read is open");
    let before = gw.echo.request_count();
    for request in [
        Request::get("/orders/7").header("X-HTTP-Method-Override", "DELETE"),
        Request::get("/orders/7?_method=DELETE"),
    ] {
        let response = gw.send(request);
        assert_eq!(response.status, 400, "{}", response.text());
        assert_eq!(response.json()["error"], "invalid_request");
    }
    assert_eq!(gw.echo.request_count(), before, "an override reached the upstream");
    assert_eq!(counter(&gw, "denied_method_override_refused"), 2);
}

#[test]
fn one_token_is_introspected_once_then_served_from_the_cache() {
    let oauth = oauth();
    let gw = gateway(&oauth, jwt_mode());
    let opaque = oauth.opaque_token(json!({}));
    for _ in 0..20 {
        assert_eq!(gw.send(bearer(&opaque)).status, 200);
    }
    assert_eq!(oauth.calls(INTROSPECT_PATH), 1);
    assert_eq!(counter(&gw, "cache_hit"), 19);
    assert_eq!(gw.echo.request_count(), 20);
    let jwt = oauth.phantom_jwt(&opaque).expect("phantom JWT");
    assert_upstream_got_jwt(&gw, &oauth, &opaque, &jwt);
}

/// Envoy takes traffic before the first key fetch answers: the first answers wait for the keys
/// that verify them rather than failing.
#[test]
fn a_request_before_the_first_keys_waits_for_them() {
    let oauth = oauth();
    let keys = Gate::new();
    oauth.set_fault_at("/jwks", Fault::Hold(keys.clone()));
    let mut config = config(&oauth, jwt_mode(), json!({}));
    config["jwt"]["jwks"]["timeout_ms"] = json!(5000);
    let addr = oauth.addr();
    let gw = Gateway::start_with(|c| {
        c.filter("phantom_token", config)
            .extra_cluster(static_cluster("oauth", addr))
    });
    assert_eq!(counter(&gw, "jwks_fetch_ok"), 0, "the first fetch is held");
    let opaque = oauth.opaque_token(json!({}));
    let response = gw.send_then_open(bearer(&opaque), &keys);
    assert_eq!(response.status, 200, "{}", response.text());
    let jwt = oauth.phantom_jwt(&opaque).expect("phantom JWT");
    assert_upstream_got_jwt(&gw, &oauth, &opaque, &jwt);
}

#[test]
fn concurrent_first_requests_wait_on_one_call_per_worker() {
    let oauth = oauth();
    let workers = 2;
    // Long enough for every request to arrive while the answer is held.
    let patient = json!({"introspection": {"timeout_ms": 10_000}});
    let gw = gateway_with(&oauth, config(&oauth, jwt_mode(), patient), workers);
    // The answer is held until every request has arrived.
    let answer = Gate::new();
    oauth.set_fault_at(INTROSPECT_PATH, Fault::Hold(answer.clone()));
    let opaque = oauth.opaque_token(json!({}));
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let sent: Vec<_> = (0..32).map(|_| s.spawn(|| gw.send(bearer(&opaque)).status)).collect();
        gw.wait_until("every request to arrive", || gw.requests_in_flight() == 32);
        answer.open();
        sent.into_iter().map(|h| h.join().expect("request thread")).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let calls = oauth.calls(INTROSPECT_PATH);
    assert!((1..=workers as usize).contains(&calls), "{calls} introspection calls");
    // Every other request waited on a call in flight.
    assert_eq!(counter(&gw, "coalesced_waits"), 32 - calls as u64);
    assert_eq!(counter(&gw, "cache_hit"), 0);
}

#[test]
fn a_request_waiting_on_a_client_that_left_asks_itself_and_gets_its_answer() {
    let oauth = oauth();
    let patient = json!({"introspection": {"timeout_ms": 10_000}});
    let gw = gateway_with(&oauth, config(&oauth, jwt_mode(), patient), 1);
    let answers = Gate::new();
    oauth.set_fault_at(INTROSPECT_PATH, Fault::Hold(answers.clone()));
    let opaque = oauth.opaque_token(json!({}));

    // The first request leads: its introspection call is at the OAuth server, unanswered.
    let mut leader = std::net::TcpStream::connect(gw.envoy.listener()).expect("connect");
    let request = format!("GET /orders HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {opaque}\r\n\r\n");
    std::io::Write::write_all(&mut leader, request.as_bytes()).expect("send");
    gw.wait_until("the leader's introspection call", || oauth.calls(INTROSPECT_PATH) == 1);

    std::thread::scope(|s| {
        // The second waits on the leader's call, and the leader's client goes away meanwhile.
        let waiter = s.spawn(|| gw.send(bearer(&opaque)));
        gw.wait_until("the second request to wait", || counter(&gw, "coalesced_waits") == 1);
        drop(leader);
        // Woken without an answer, it makes its own call; the answer comes back to it, not to the
        // stream that left.
        gw.wait_until("the second request's own call", || oauth.calls(INTROSPECT_PATH) == 2);
        answers.open();
        let answer = waiter.join().expect("waiter");
        assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    });
    assert_eq!(oauth.calls(INTROSPECT_PATH), 2);
}

/// A cached answer holds only while the keys that verified it are unchanged: once the IdP retires
/// the key that signed the JWT, the token is introspected again rather than that JWT going
/// upstream from the cache (this server answers with the JWT it signed at issuance, now
/// unverifiable: 502).
#[test]
fn a_cached_jwt_signed_by_a_retired_key_does_not_go_upstream() {
    let oauth = oauth();
    let extra = json!({"jwt": {"jwks": {"refresh_secs": 1}}});
    let gw = gateway_with(&oauth, config(&oauth, jwt_mode(), extra), 1);
    let opaque = oauth.opaque_token(json!({}));
    assert_eq!(gw.send(bearer(&opaque)).status, 200);
    assert_eq!(gw.send(bearer(&opaque)).status, 200);
    assert_eq!(counter(&gw, "cache_hit"), 1);

    let signer = oauth.default_kid();
    oauth.publish("rsa-2");
    oauth.set_default_kid("rsa-2");
    oauth.retire(&signer);
    // One fetch at a time: the second fetch to complete from now started after the key was retired.
    let fetches = counter(&gw, "jwks_fetch_ok");
    gw.wait_until("two key refreshes", || counter(&gw, "jwks_fetch_ok") >= fetches + 2);
    let after = gw.send(bearer(&opaque));
    assert_eq!(after.status, 502, "{}", after.text());
    assert_eq!(oauth.calls(INTROSPECT_PATH), 2, "asked again");
    assert_eq!(counter(&gw, "cache_hit"), 1);
    assert_eq!(gw.echo.request_count(), 2);

    let fresh = oauth.opaque_token(json!({}));
    assert_eq!(gw.send(bearer(&fresh)).status, 200, "a JWT the current key signed");
}

#[test]
fn the_cache_never_outlives_the_jwt() {
    let oauth = oauth();
    let extra = json!({"cache": {"exp_margin_secs": 0}, "jwt": {"clock_skew_secs": 0}});
    let gw = gateway_with(&oauth, config(&oauth, jwt_mode(), extra), 1);
    let exp = now_secs() + 2;
    let opaque = oauth.opaque_token(json!({"exp": exp}));
    assert_eq!(gw.send(bearer(&opaque)).status, 200);
    assert_eq!(gw.send(bearer(&opaque)).status, 200);
    assert_eq!(oauth.calls(INTROSPECT_PATH), 1, "cached while the JWT lives");
    // Let the JWT expire: the behaviour under test is about time passing.
    while now_secs() <= exp {
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = gw.send(bearer(&opaque));
    assert_denied(&after, 401, "invalid_token", &opaque);
    assert_eq!(
        oauth.calls(INTROSPECT_PATH),
        2,
        "asked again, never served from the cache"
    );
}

#[test]
fn inactive_and_revoked_tokens_are_refused() {
    let oauth = oauth();
    let gw = gateway_with(
        &oauth,
        config(&oauth, jwt_mode(), json!({"cache": {"inactive_ttl_secs": 60}})),
        1,
    );
    let unknown = "made-up-token";
    assert_denied(&gw.send(bearer(unknown)), 401, "invalid_token", unknown);
    assert_denied(&gw.send(bearer(unknown)), 401, "invalid_token", unknown);
    assert_eq!(oauth.calls(INTROSPECT_PATH), 1, "the inactive answer is cached");
    assert_eq!(counter(&gw, "cache_negative_hit"), 1);

    // The IdP forbids reuse: a revocation takes effect at once.
    oauth.set_introspection_cache_control(Some("no-store"));
    let opaque = oauth.opaque_token(json!({}));
    assert_eq!(gw.send(bearer(&opaque)).status, 200);
    oauth.revoke(&opaque);
    assert_denied(&gw.send(bearer(&opaque)), 401, "invalid_token", &opaque);
    assert_eq!(gw.echo.request_count(), 1);
}

/// RFC 7662 section 4: an active token issued for another API is the client's mistake, not the
/// OAuth server's: 401 `invalid_token` (counted as `wrong_audience`), its answer reused as an
/// inactive one is, in every answer format.
#[test]
fn a_token_issued_for_another_api_is_an_invalid_token() {
    let oauth = oauth();
    for mode in answer_formats() {
        let gw = gateway_with(
            &oauth,
            config(&oauth, mode.clone(), json!({"cache": {"inactive_ttl_secs": 60}})),
            1,
        );
        let calls = oauth.calls(INTROSPECT_PATH);
        let billing = oauth.opaque_token(json!({"aud": "billing"}));
        for attempt in ["introspected", "from the cache"] {
            let response = gw.send(bearer(&billing));
            assert_denied(&response, 401, "invalid_token", &billing);
            assert_eq!(
                response.header("www-authenticate").as_deref(),
                Some("Bearer realm=\"api\", error=\"invalid_token\""),
                "{mode}: {attempt}"
            );
        }
        assert_eq!(oauth.calls(INTROSPECT_PATH) - calls, 1, "{mode}: the refusal is cached");
        assert_eq!(counter(&gw, "denied_wrong_audience"), 2, "{mode}");
        assert_eq!(counter(&gw, "denied_idp_bad_answer"), 0, "{mode}");
        assert_eq!(gw.echo.request_count(), 0, "{mode}");
    }
}

/// RFC 8705: with Envoy terminating TLS and asking for client certificates, an opaque token bound
/// to one (`cnf.x5t#S256` in the JWT and the RFC 7662 object) is exchanged for its JWT on a
/// connection that presented that certificate, and refused on any other, fresh or cached, in
/// every answer format.
#[test]
fn a_certificate_bound_token_is_exchanged_only_with_its_client_certificate() {
    let oauth = oauth();
    for mode in answer_formats() {
        let addr = oauth.addr();
        let config = config(&oauth, mode.clone(), json!({}));
        let gw = Gateway::start_with(|c| {
            c.filter("phantom_token", config)
                .extra_cluster(static_cluster("oauth", addr))
                .with_tls()
        });
        gw.wait_until("the IdP's keys", || counter(&gw, "jwks_fetch_ok") >= 1);
        let opaque = oauth.opaque_token(json!({"cnf": {"x5t#S256": TlsClient::One.thumbprint()}}));
        for attempt in ["introspected", "from the cache"] {
            let response = gw.send_tls(bearer(&opaque), Some(TlsClient::One));
            assert_eq!(response.status, 200, "{mode} {attempt}: {}", response.text());
        }
        assert_eq!(counter(&gw, "cache_hit"), 1, "{mode}");
        for client in [Some(TlsClient::Two), None] {
            let response = gw.send_tls(bearer(&opaque), client);
            assert_denied(&response, 401, "invalid_token", &opaque);
            assert_eq!(
                response.json()["error_description"],
                "the access token is bound to a client certificate this connection did not present",
                "{mode} {client:?}"
            );
        }
        assert_eq!(counter(&gw, "denied_certificate_mismatch"), 2, "{mode}");
        assert_eq!(
            gw.echo.request_count(),
            2,
            "{mode}: a copied token reached the upstream"
        );
        assert_eq!(oauth.calls(INTROSPECT_PATH), 1, "{mode}");
        oauth.reset_calls();
    }
}

/// Behind a front proxy that terminates mutual TLS and forwards the client certificate's hash in
/// `x-forwarded-client-cert`: the hash counts only on the connection of a proxy the config
/// names. Here client one plays the proxy.
#[test]
fn a_certificate_bound_token_behind_a_trusted_proxy_is_exchanged_with_the_forwarded_certificate() {
    let oauth = oauth();
    let addr = oauth.addr();
    let mode = answer_formats()[0].clone();
    let forwarded = json!({"client_certificate": {"type": "forwarded",
                                                  "proxy_certificates": [TlsClient::One.sha256_hex()]}});
    let config = config(&oauth, mode, forwarded);
    let gw = Gateway::start_with(|c| {
        c.filter("phantom_token", config)
            .extra_cluster(static_cluster("oauth", addr))
            .with_tls()
            .hcm("forward_client_cert_details", json!("FORWARD_ONLY"))
    });
    gw.wait_until("the IdP's keys", || counter(&gw, "jwks_fetch_ok") >= 1);
    let opaque = oauth.opaque_token(json!({"cnf": {"x5t#S256": TlsClient::Two.thumbprint()}}));
    let forwarding = |certificate: TlsClient| {
        bearer(&opaque).header(
            "X-Forwarded-Client-Cert",
            &format!("By=spiffe://front;Hash={}", certificate.sha256_hex()),
        )
    };
    for attempt in ["introspected", "from the cache"] {
        let response = gw.send_tls(forwarding(TlsClient::Two), Some(TlsClient::One));
        assert_eq!(response.status, 200, "{attempt}: {}", response.text());
    }
    for (request, connection, what) in [
        (
            forwarding(TlsClient::One),
            Some(TlsClient::One),
            "another forwarded certificate",
        ),
        (bearer(&opaque), Some(TlsClient::One), "no forwarded certificate"),
        (
            forwarding(TlsClient::Two),
            Some(TlsClient::Two),
            "the client itself, not the proxy",
        ),
    ] {
        let response = gw.send_tls(request, connection);
        assert_eq!(response.status, 401, "{what}");
        assert_denied(&response, 401, "invalid_token", &opaque);
    }
    assert_eq!(counter(&gw, "denied_certificate_mismatch"), 3);
    assert_eq!(gw.echo.request_count(), 2, "a copied token reached the upstream");
    assert_eq!(oauth.calls(INTROSPECT_PATH), 1);
}

/// RFC 9449 section 7.2: a token bound to a key this gateway cannot check is refused in every
/// answer format, never forwarded as a bearer token.
#[test]
fn a_token_bound_to_a_key_is_refused() {
    let oauth = oauth();
    for response in answer_formats() {
        let gw = gateway(&oauth, response.clone());
        // A `cnf` in the JWT and the RFC 7662 object, or `token_type: DPoP` in the object.
        let bound = [
            oauth.opaque_token(json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}})),
            oauth.opaque_token(json!({"token_type": "DPoP"})),
        ];
        for opaque in &bound {
            let response = gw.send(bearer(opaque));
            assert_denied(&response, 401, "invalid_token", opaque);
            assert_eq!(
                response.json()["error_description"],
                "the access token is bound to a key this gateway cannot check"
            );
            assert_eq!(
                response.header("www-authenticate").as_deref(),
                Some(r#"Bearer realm="api", error="invalid_token""#)
            );
        }
        assert_eq!(
            counter(&gw, "denied_sender_constrained"),
            bound.len() as u64,
            "{response}"
        );
        assert_eq!(gw.echo.request_count(), 0, "{response}");
    }
}

#[test]
fn every_fault_of_the_oauth_server_fails_closed() {
    let oauth = oauth();
    let gw = gateway(&oauth, jwt_mode());
    let cases = [
        (Fault::Down, 503),
        (Fault::Slow(Duration::from_millis(1500)), 503),
        (Fault::Status(500), 502),
        (Fault::Status(401), 502),
        // RFC 6585 section 4: the server asks to come back later, as with 503.
        (Fault::Status(429), 503),
        (
            Fault::Unavailable {
                retry_after: Some("7".into()),
            },
            503,
        ),
        // An outage whatever the size of the error page.
        (
            Fault::HugeUnavailable {
                retry_after: Some("7".into()),
            },
            503,
        ),
        (Fault::Html, 502),
        (Fault::HugeBody, 502),
        (Fault::WrongSignature, 502),
    ];
    let faults = cases.len();
    for (fault, status) in cases {
        oauth.set_fault_at(INTROSPECT_PATH, fault.clone());
        let opaque = oauth.opaque_token(json!({}));
        let response = gw.send(bearer(&opaque));
        let error = if status == 503 {
            "temporarily_unavailable"
        } else {
            "bad_gateway"
        };
        assert_eq!(response.status, status, "{fault:?}: {}", response.text());
        assert_denied(&response, status, error, &opaque);
        if let Fault::Unavailable { .. } | Fault::HugeUnavailable { .. } = fault {
            assert_eq!(response.header("retry-after").as_deref(), Some("7"), "{fault:?}");
        }
        // Recovery: the same token works once the IdP does (failures are never cached).
        oauth.set_fault(Fault::None);
        assert_eq!(gw.send(bearer(&opaque)).status, 200, "after {fault:?}");
    }
    assert_eq!(gw.echo.request_count(), faults);
    for kind in [
        "unreachable",
        "status",
        "unavailable",
        "malformed",
        "oversized",
        "invalid_jwt",
    ] {
        assert!(counter(&gw, &format!("introspection_error_{kind}")) >= 1, "{kind}");
    }
}

#[test]
fn internal_jwts_pass_through_to_jwt_auth_when_allowed() {
    let oauth = oauth();
    let addr = oauth.addr();
    let phantom = config(&oauth, jwt_mode(), json!({"pass_through_jwts": true}));
    let jwt_auth = json!({"providers": {"idp": {
        "issuer": oauth.issuer(), "audiences": ["api"],
        "jwks": {"type": "remote", "cluster": "oauth", "path": "/jwks"},
        "claims_to_headers": [{"claim": "sub", "header": "x-user-id"}],
    }}});
    let gw = Gateway::start_with(|c| {
        c.filter("phantom_token", phantom)
            .filter("jwt_auth", jwt_auth)
            .extra_cluster(static_cluster("oauth", addr))
    });
    gw.wait_until("both filters' keys", || {
        counter(&gw, "jwks_fetch_ok") >= 1 && gw.envoy.counter("wasmcustom.apisec.jwt_auth.jwks_fetch_ok") >= 1
    });
    // An opaque token: exchanged, then verified again by jwt-auth.
    let opaque = oauth.opaque_token(json!({"sub": "bob"}));
    let response = gw.send(bearer(&opaque).header("x-user-id", "mallory"));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(gw.echo.last_request().header_all("x-user-id"), vec!["bob"]);
    // A JWT from an internal client: not introspected, jwt-auth verifies it.
    let internal = oauth.token(json!({"sub": "batch-job"}));
    assert_eq!(gw.send(bearer(&internal)).status, 200);
    assert_eq!(gw.echo.last_request().header_all("x-user-id"), vec!["batch-job"]);
    assert_eq!(oauth.calls(INTROSPECT_PATH), 1);
    assert_eq!(counter(&gw, "jwt_passed_through"), 1);
    // A forged JWT passes phantom-token but not jwt-auth.
    let forged = format!("{}x", &internal[..internal.len() - 1]);
    assert_eq!(gw.send(bearer(&forged)).status, 401);
    // A signed introspection response is never an access token (RFC 9701 section 8.1), though
    // jwt-auth, which checks no `typ` here, would take this one.
    let response = oauth.mint(
        TokenSpec::new("RS256", &oauth.default_kid())
            .claims(oauth.claims(json!({"sub": "batch-job"})))
            .header("typ", json!("application/token-introspection+jwt")),
    );
    let (passed, introspected) = (counter(&gw, "jwt_passed_through"), oauth.calls(INTROSPECT_PATH));
    assert_denied(&gw.send(bearer(&response)), 401, "invalid_token", &response);
    assert_eq!(counter(&gw, "denied_not_access_token"), 1);
    assert_eq!(counter(&gw, "jwt_passed_through"), passed, "not passed through");
    assert_eq!(oauth.calls(INTROSPECT_PATH), introspected, "nor introspected");
}

#[test]
fn a_bad_config_is_refused_with_the_field_path() {
    let oauth = oauth();
    let mut bad = config(&oauth, jwt_mode(), json!({}));
    bad["introspection"]["path"] = json!("introspect");
    let log = Gateway::start_refused(|c| c.filter("phantom_token", bad));
    assert!(
        log.contains("phantom_token: invalid configuration: introspection.path: must start with '/'"),
        "{log}"
    );
    // No answer is reused longer than max_ttl_secs, inactive ones included.
    let bad = config(
        &oauth,
        jwt_mode(),
        json!({"cache": {"max_ttl_secs": 60, "inactive_ttl_secs": 120}}),
    );
    let log = Gateway::start_refused(|c| c.filter("phantom_token", bad));
    assert!(
        log.contains(
            "phantom_token: invalid configuration: cache.inactive_ttl_secs: must not exceed cache.max_ttl_secs (60)"
        ),
        "{log}"
    );
}
