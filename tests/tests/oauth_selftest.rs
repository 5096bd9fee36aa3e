//! Checks of the test OAuth/OIDC server (`harness::oauth`), over HTTP with the
//! harness's raw client, and of its tokens with an independent verifier
//! (ring, fed only with the key material the JWKS publishes).

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use base64::Engine as _;
use harness::http::{self, Request, Response};
use harness::oauth::{
    self, b64url_decode, jwk_bytes, jws_claims, jws_header, now_secs, verify_jws as verify, verify_jws_as as verify_as,
    Client, ClientAuth, Fault, IntrospectionRequest, SigningKey, TokenFormat, TokenSpec, INTROSPECT_PATH, REVOKE_PATH,
};
use harness::OAuthServer;
use serde_json::{json, Value};

fn send(idp: &OAuthServer, req: Request) -> Response {
    http::send(idp.addr(), &req).unwrap_or_else(|e| panic!("{} {} to the OAuth server: {e}", req.method, req.path))
}

fn get(idp: &OAuthServer, path: &str) -> Response {
    send(idp, Request::get(path))
}

fn token_request(body: &str) -> Request {
    Request::post("/token", body).header("Content-Type", "application/x-www-form-urlencoded")
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

const JWT: &str = "application/jwt";
const INTROSPECTION_JWT: &str = "application/token-introspection+jwt";

/// An introspection request for `token` from the default client
/// (client_secret_basic), with `Accept: accept` unless `None`.
fn introspect_request(token: &str, accept: Option<&str>) -> Request {
    let req = Request::post("/introspect", format!("token={token}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Authorization", &basic("demo", "demo-secret"));
    match accept {
        Some(accept) => req.header("Accept", accept),
        None => req,
    }
}

fn introspect(idp: &OAuthServer, token: &str, accept: Option<&str>) -> Response {
    send(idp, introspect_request(token, accept))
}

/// An opaque access token from `POST /token` (the server must issue opaque
/// tokens).
fn issue_opaque(idp: &OAuthServer) -> String {
    let resp = send(
        idp,
        token_request("grant_type=client_credentials").header("Authorization", &basic("demo", "demo-secret")),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["access_token"].as_str().expect("access_token").to_owned()
}

/// The seconds of `Cache-Control: max-age=<seconds>`.
fn max_age(resp: &Response) -> u64 {
    let value = resp
        .header("cache-control")
        .unwrap_or_else(|| panic!("no Cache-Control; status {}", resp.status));
    value
        .strip_prefix("max-age=")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("Cache-Control {value:?} is not max-age=<seconds>"))
}

/// The JWKS that verifies what [`Fault::WrongSignature`] signs: `rsa-3`'s
/// public key under the kid `rsa-1`.
fn wrong_key_jwks() -> Value {
    let mut jwk = oauth::fixture_jwk("rsa-3");
    jwk["kid"] = json!("rsa-1");
    json!({"keys": [jwk]})
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("JWKS without a keys array: {jwks}"))
        .iter()
        .map(|k| k["kid"].as_str().expect("kid string").to_owned())
        .collect()
}

#[test]
fn discovery_document_points_at_the_endpoints() {
    let idp = OAuthServer::start();
    let issuer = format!("http://{}", idp.addr());
    assert_eq!(idp.issuer(), issuer);
    let resp = get(&idp, "/.well-known/openid-configuration");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type").as_deref(), Some("application/json"));
    let doc = resp.json();
    assert_eq!(doc["issuer"], issuer);
    assert_eq!(doc["jwks_uri"], format!("{issuer}/jwks"));
    assert_eq!(doc["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(doc["introspection_endpoint"], format!("{issuer}/introspect"));
    assert_eq!(doc["revocation_endpoint"], format!("{issuer}/revoke"));
    assert_eq!(doc["registration_endpoint"], format!("{issuer}/register"));

    idp.set_issuer("https://idp.example");
    let doc = get(&idp, "/.well-known/openid-configuration").json();
    assert_eq!(doc["issuer"], "https://idp.example");
    assert_eq!(doc["jwks_uri"], "https://idp.example/jwks");
    assert_eq!(idp.jwks_uri(), "https://idp.example/jwks");
    assert_eq!(jws_claims(&idp.token(json!({})))["iss"], "https://idp.example");

    assert_eq!(get(&idp, "/nope").status, 404);
    assert_eq!(send(&idp, Request::post("/jwks", "")).status, 405);
    assert_eq!(get(&idp, "/token").status, 405);
}

#[test]
fn jwks_lists_published_keys_only() {
    let idp = OAuthServer::start();
    assert_eq!(idp.default_kid(), "rsa-1");
    assert_eq!(idp.published(), ["rsa-1", "ec-1", "ec384-1", "ed-1"]);
    let resp = get(&idp, "/jwks");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("cache-control").as_deref(), Some("max-age=300"));
    let jwks = resp.json();
    assert_eq!(kids(&jwks), ["rsa-1", "ec-1", "ec384-1", "ed-1"]);
    assert_eq!(jwks, idp.jwks_json());

    let by_kid = |kid: &str| {
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["kid"] == kid)
            .cloned()
    };
    let rsa = by_kid("rsa-1").expect("rsa-1");
    assert_eq!(
        (&rsa["kty"], &rsa["alg"], &rsa["use"], &rsa["e"]),
        (&json!("RSA"), &json!("RS256"), &json!("sig"), &json!("AQAB"))
    );
    assert_eq!(
        jwk_bytes(&rsa, "n").len(),
        256,
        "2048-bit modulus without a leading zero"
    );
    let ec = by_kid("ec-1").expect("ec-1");
    assert_eq!(
        (&ec["kty"], &ec["crv"], &ec["alg"], &ec["use"]),
        (&json!("EC"), &json!("P-256"), &json!("ES256"), &json!("sig"))
    );
    assert_eq!((jwk_bytes(&ec, "x").len(), jwk_bytes(&ec, "y").len()), (32, 32));
    let ec384 = by_kid("ec384-1").expect("ec384-1");
    assert_eq!((&ec384["crv"], &ec384["alg"]), (&json!("P-384"), &json!("ES384")));
    assert_eq!((jwk_bytes(&ec384, "x").len(), jwk_bytes(&ec384, "y").len()), (48, 48));
    let ed = by_kid("ed-1").expect("ed-1");
    assert_eq!(
        (&ed["kty"], &ed["crv"], &ed["alg"], &ed["use"]),
        (&json!("OKP"), &json!("Ed25519"), &json!("EdDSA"), &json!("sig"))
    );
    assert_eq!(jwk_bytes(&ed, "x").len(), 32);
    assert!(ed.get("y").is_none());

    // Rotation: rsa-2 in, ec-1 out.
    idp.publish("rsa-2");
    idp.publish("rsa-2");
    idp.retire("ec-1");
    let jwks = get(&idp, "/jwks").json();
    assert_eq!(kids(&jwks), ["rsa-1", "ec384-1", "ed-1", "rsa-2"]);
    assert_eq!(idp.published(), kids(&jwks));
    // A retired key still signs; its token does not verify against the JWKS.
    let token = idp.mint(TokenSpec::new("ES256", "ec-1").claims(idp.claims(json!({}))));
    assert_eq!(verify(&jwks, &token), Err("kid ec-1 not in the JWKS".to_owned()));
    assert_eq!(verify(&idp.jwks_for(&["ec-1"]), &token), Ok(()));
    assert_eq!(kids(&oauth::jwks_for(&["ed-2", "rsa-3"])), ["ed-2", "rsa-3"]);
    assert_eq!(oauth::fixture_kids().len(), 8);
}

#[test]
fn every_fixture_key_has_a_matching_public_key_pem() {
    let idp = OAuthServer::start();
    for kid in oauth::fixture_kids() {
        let pem = idp.public_key_pem(kid);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{kid}: {pem}");
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_else(|e| panic!("{kid}: PEM body is not base64: {e}"));
        let jwk = oauth::fixture_jwk(kid);
        // The SPKI DER ends with the public key: RSAPublicKey(n, e), the
        // uncompressed EC point, or the raw Ed25519 key.
        let tail = match jwk["kty"].as_str() {
            Some("RSA") => jwk_bytes(&jwk, "n"),
            Some("EC") => [vec![4], jwk_bytes(&jwk, "x"), jwk_bytes(&jwk, "y")].concat(),
            _ => jwk_bytes(&jwk, "x"),
        };
        assert!(
            der.windows(tail.len()).any(|w| w == tail),
            "{kid}: the SPKI PEM does not hold the JWK's key"
        );
    }
}

#[test]
fn token_endpoint_client_credentials() {
    let idp = OAuthServer::start();
    let jwks = idp.jwks_json();

    // client_secret_basic, all allowed scopes by default.
    let resp = send(
        &idp,
        token_request("grant_type=client_credentials").header("Authorization", &basic("demo", "demo-secret")),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("cache-control").as_deref(), Some("no-store"));
    let body = resp.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "orders:read orders:write");
    let token = body["access_token"].as_str().expect("access_token");
    assert_eq!(verify(&jwks, token), Ok(()));
    let header = jws_header(token);
    assert_eq!((&header["alg"], &header["kid"]), (&json!("RS256"), &json!("rsa-1")));
    let claims = jws_claims(token);
    assert_eq!(claims["iss"], idp.issuer());
    assert_eq!(claims["sub"], "demo");
    assert_eq!(claims["client_id"], "demo");
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["scope"], "orders:read orders:write");
    let iat = claims["iat"].as_u64().expect("iat");
    assert_eq!(claims["exp"].as_u64(), Some(iat + 300));
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    // client_secret_post, with a scope subset (percent-encoded).
    let resp = send(
        &idp,
        token_request("grant_type=client_credentials&client_id=demo&client_secret=demo-secret&scope=orders%3Aread"),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["scope"], "orders:read");
    let token = resp.json()["access_token"].as_str().expect("access_token").to_owned();
    assert_eq!(jws_claims(&token)["scope"], "orders:read");
    assert_ne!(jws_claims(&token)["jti"], claims["jti"]);

    // Wrong secret, unknown client, no credentials: 401 invalid_client.
    for req in [
        token_request("grant_type=client_credentials").header("Authorization", &basic("demo", "wrong")),
        token_request("grant_type=client_credentials&client_id=demo&client_secret=wrong"),
        token_request("grant_type=client_credentials&client_id=nobody&client_secret=demo-secret"),
        token_request("grant_type=client_credentials"),
        token_request("grant_type=client_credentials").header("Authorization", "Bearer x"),
    ] {
        let resp = send(&idp, req);
        assert_eq!(resp.status, 401, "{}", resp.text());
        assert_eq!(resp.json()["error"], "invalid_client");
        assert!(resp.header("www-authenticate").is_some_and(|v| v.starts_with("Basic")));
    }

    let error = |req: Request| {
        let resp = send(&idp, req.header("Authorization", &basic("demo", "demo-secret")));
        (
            resp.status,
            resp.json()["error"].as_str().unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(
        error(token_request("grant_type=client_credentials&scope=orders:read%20admin")),
        (400, "invalid_scope".to_owned())
    );
    assert_eq!(
        error(token_request("grant_type=password")),
        (400, "unsupported_grant_type".to_owned())
    );
    assert_eq!(
        error(token_request("grant_type=refresh_token&refresh_token=x")),
        (400, "invalid_grant".to_owned())
    );
    assert_eq!(
        error(token_request("scope=orders:read")),
        (400, "invalid_request".to_owned())
    );
    assert_eq!(
        error(token_request(
            "grant_type=client_credentials&grant_type=client_credentials"
        )),
        (400, "invalid_request".to_owned())
    );
    assert_eq!(
        error(token_request(
            "grant_type=client_credentials&client_id=demo&client_secret=demo-secret"
        )),
        (400, "invalid_request".to_owned()),
        "two authentication methods at once"
    );

    // Configurable clients, audience and lifetime; tokens follow the default key.
    idp.add_client(Client::new("svc", "s3cret", "a b"));
    idp.set_audience("orders-api");
    idp.set_token_ttl(60);
    idp.publish("rsa-2");
    idp.set_default_kid("rsa-2");
    let resp = send(
        &idp,
        token_request("grant_type=client_credentials&scope=b").header("Authorization", &basic("svc", "s3cret")),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["expires_in"], 60);
    let token = resp.json()["access_token"].as_str().expect("access_token").to_owned();
    assert_eq!(jws_header(&token)["kid"], "rsa-2");
    assert_eq!(verify(&idp.jwks_json(), &token), Ok(()));
    let claims = jws_claims(&token);
    assert_eq!(
        (&claims["sub"], &claims["aud"], &claims["scope"]),
        (&json!("svc"), &json!("orders-api"), &json!("b"))
    );

    // Introspection of what was issued.
    let introspect = |token: &str| {
        let resp = send(
            &idp,
            Request::post("/introspect", format!("token={token}"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("Authorization", &basic("demo", "demo-secret")),
        );
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json()
    };
    let active = introspect(&token);
    assert_eq!(
        (&active["active"], &active["sub"], &active["scope"]),
        (&json!(true), &json!("svc"), &json!("b"))
    );
    assert_eq!(introspect("not-a-token"), json!({"active": false}));
    idp.revoke(&token);
    assert_eq!(introspect(&token), json!({"active": false}));
    assert_eq!(introspect(&idp.token(json!({})))["active"], true);
}

fn register(idp: &OAuthServer, metadata: &str) -> Response {
    send(
        idp,
        Request::post("/register", metadata).header("Content-Type", "application/json"),
    )
}

#[test]
fn dynamic_registration_creates_a_client_credentials_client() {
    let idp = OAuthServer::start();
    let resp = register(
        &idp,
        r#"{"scope": "orders:read", "grant_types": ["client_credentials"]}"#,
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    assert_eq!(resp.header("cache-control").as_deref(), Some("no-store"));
    let client = resp.json();
    assert_eq!(client["scope"], "orders:read");
    assert_eq!(client["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(client["client_secret_expires_at"], 0);
    let (id, secret) = (
        client["client_id"].as_str().expect("id"),
        client["client_secret"].as_str().expect("secret"),
    );
    let other = register(&idp, "{}").json();
    assert_ne!(
        other["client_id"], client["client_id"],
        "every registration is a new client"
    );
    assert_eq!(
        other["scope"], "orders:read orders:write",
        "no scope asked: the default client's"
    );

    let token = |scope: &str| {
        send(
            &idp,
            token_request(&format!("grant_type=client_credentials&scope={scope}"))
                .header("Authorization", &basic(id, secret)),
        )
    };
    let granted = token("orders:read");
    assert_eq!(granted.status, 200, "{}", granted.text());
    assert_eq!(
        jws_claims(granted.json()["access_token"].as_str().expect("token"))["client_id"],
        id
    );
    assert_eq!(
        token("orders:write").json()["error"],
        "invalid_scope",
        "only what it registered for"
    );
    let wrong_secret = send(
        &idp,
        token_request("grant_type=client_credentials").header("Authorization", &basic(id, "guess")),
    );
    assert_eq!(wrong_secret.status, 401);

    for bad in [
        "[]",
        "not json",
        r#"{"scope": 7}"#,
        r#"{"grant_types": ["authorization_code"]}"#,
        r#"{"token_endpoint_auth_method": "none"}"#,
    ] {
        let resp = register(&idp, bad);
        assert_eq!(resp.status, 400, "{bad}: {}", resp.text());
        assert_eq!(resp.json()["error"], "invalid_client_metadata", "{bad}");
    }
    assert_eq!(get(&idp, "/register").status, 405);
}

#[test]
fn minted_tokens_verify_against_the_jwks() {
    let idp = OAuthServer::start();
    idp.publish("ec-2");
    idp.publish("ed-2");
    let jwks = get(&idp, "/jwks").json();
    let claims = idp.claims(json!({"scope": "orders:read"}));
    // Every algorithm, and the second P-256 and Ed25519 keys too.
    for (alg, kid) in oauth::ASYMMETRIC_ALGS
        .into_iter()
        .chain([("ES256", "ec-2"), ("EdDSA", "ed-2")])
    {
        let token = idp.mint(TokenSpec::new(alg, kid).claims(claims.clone()));
        assert_eq!(verify(&jwks, &token), Ok(()), "{alg} with {kid}");
        let header = jws_header(&token);
        assert_eq!(header, json!({"alg": alg, "kid": kid, "typ": "JWT"}));
        assert_eq!(jws_claims(&token), claims);
        // A changed payload no longer verifies.
        let [h, _, s]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().expect("3 parts");
        let forged = format!("{h}.{}.{s}", oauth::b64url_encode(b"{\"sub\":\"mallory\"}"));
        assert!(
            verify(&jwks, &forged).is_err(),
            "{alg} with {kid} accepted a forged payload"
        );
    }

    // token(): RS256 with the default key and the default claims, overridable.
    let token = idp.token(json!({"sub": "bob", "aud": null, "extra": [1, 2]}));
    assert_eq!(verify(&jwks, &token), Ok(()));
    let claims = jws_claims(&token);
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["iss"], idp.issuer());
    assert!(claims.get("aud").is_none(), "null removes a default claim: {claims}");
    assert_eq!(claims["extra"], json!([1, 2]));
    assert_eq!(claims["exp"].as_u64(), claims["iat"].as_u64().map(|i| i + 300));
    assert_eq!(idp.default_claims()["sub"], "alice");
    assert!(idp.bearer(json!({})).starts_with("Bearer ey"));

    // The alg string is written verbatim: "rs256" still carries a valid RS256 signature.
    let token = idp.mint(TokenSpec::new("rs256", "rsa-1").claims(json!({})));
    assert_eq!(jws_header(&token)["alg"], "rs256");
    assert!(verify(&jwks, &token).is_err(), "the checker knows no alg \"rs256\"");
    assert_eq!(verify_as(&jwks, &token, "RS256"), Ok(()));

    // alg/signature mismatch: RS256 header, PS256 signature.
    let mixed = idp.mint(TokenSpec::new("RS256", "rsa-1").signing_key(SigningKey::FixtureAs {
        kid: "rsa-1".into(),
        alg: "PS256".into(),
    }));
    assert!(verify(&jwks, &mixed).is_err());

    // alg none with an empty signature, HMAC with the RSA public key as secret, raw bytes.
    let none = idp.mint(TokenSpec::new("none", "rsa-1").signing_key(SigningKey::None));
    assert!(none.ends_with('.'), "{none}");
    let pem = idp.public_key_pem("rsa-1");
    let hs = idp.mint(
        TokenSpec::new("HS256", "rsa-1")
            .claims(json!({"sub": "mallory"}))
            .signing_key(SigningKey::Hmac(pem.clone().into_bytes())),
    );
    let (input, sig) = hs.rsplit_once('.').expect("dot");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, pem.as_bytes());
    assert!(ring::hmac::verify(&key, input.as_bytes(), &b64url_decode(sig)).is_ok());
    let raw = idp.mint(TokenSpec::new("RS256", "nope").signing_key(SigningKey::Raw(vec![1, 2, 3])));
    assert!(raw.ends_with(".AQID"), "{raw}");
    assert_eq!(jws_header(&raw)["kid"], "nope");

    // Exact header and payload bytes, e.g. duplicate members; extra header members.
    let mut spec = TokenSpec::new("RS256", "rsa-1");
    spec.raw_header = Some(br#"{"alg":"none","alg":"RS256","kid":"rsa-1"}"#.to_vec());
    spec.raw_payload = Some(br#"{"sub":"a","sub":"b"}"#.to_vec());
    let dup = idp.mint(spec);
    let [h, p, _] = oauth::jws_parts(&dup);
    assert_eq!(h, br#"{"alg":"none","alg":"RS256","kid":"rsa-1"}"#);
    assert_eq!(p, br#"{"sub":"a","sub":"b"}"#);
    let crit = idp.mint(
        TokenSpec::new("RS256", "rsa-1")
            .header("crit", json!(["exp"]))
            .header("typ", Value::Null)
            .kid(None),
    );
    assert_eq!(jws_header(&crit), json!({"alg": "RS256", "crit": ["exp"]}));
}

#[test]
fn faults_are_observable_over_http() {
    let idp = OAuthServer::start();
    for path in ["/jwks", "/.well-known/openid-configuration"] {
        // Down: the connection closes without a response.
        idp.set_fault(Fault::Down);
        let err = http::send(idp.addr(), &Request::get(path)).expect_err("Down must not answer");
        assert!(
            err.to_string().contains("no complete response head in 0 bytes")
                || err.kind() == std::io::ErrorKind::ConnectionReset,
            "{path}: {err}"
        );

        // Slow: answers after the delay.
        idp.set_fault(Fault::Slow(Duration::from_millis(600)));
        let started = Instant::now();
        let resp = get(&idp, path);
        assert_eq!(resp.status, 200);
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "{path}: {:?}",
            started.elapsed()
        );

        idp.set_fault(Fault::Status(500));
        assert_eq!(get(&idp, path).status, 500);
        idp.set_fault(Fault::Status(404));
        assert_eq!(get(&idp, path).status, 404);

        idp.set_fault(Fault::MalformedJwks);
        let resp = get(&idp, path);
        assert_eq!(resp.status, 200);
        assert!(
            serde_json::from_slice::<Value>(&resp.body).is_err(),
            "{path}: {}",
            resp.text()
        );
    }
    // The token endpoint is not affected by set_fault.
    idp.set_fault(Fault::Down);
    let resp = send(
        &idp,
        token_request("grant_type=client_credentials").header("Authorization", &basic("demo", "demo-secret")),
    );
    assert_eq!(resp.status, 200);

    idp.set_fault(Fault::HugeJwks);
    let resp = get(&idp, "/jwks");
    assert_eq!(resp.status, 200);
    assert!(resp.body.len() > 2 * 1024 * 1024, "{} bytes", resp.body.len());
    let jwks = resp.json();
    let all = kids(&jwks);
    assert!(all.len() > 1000, "{} keys", all.len());
    assert_eq!(all[..4], ["rsa-1", "ec-1", "ec384-1", "ed-1"]);
    assert_eq!(verify(&jwks, &idp.token(json!({}))), Ok(()));
    let resp = get(&idp, "/.well-known/openid-configuration");
    assert!(resp.body.len() > 2 * 1024 * 1024);
    assert_eq!(resp.json()["jwks_uri"], idp.jwks_uri());

    idp.set_fault(Fault::EmptyKeys);
    assert_eq!(get(&idp, "/jwks").json(), json!({"keys": []}));
    assert_eq!(
        get(&idp, "/.well-known/openid-configuration").json()["issuer"],
        idp.issuer()
    );

    // Per-path faults; set_fault(None) clears everything.
    idp.set_fault(Fault::None);
    idp.set_fault_at("/token", Fault::Status(503));
    idp.set_fault_at("/jwks", Fault::Status(502));
    assert_eq!(send(&idp, token_request("grant_type=client_credentials")).status, 503);
    assert_eq!(get(&idp, "/jwks").status, 502);
    assert_eq!(get(&idp, "/.well-known/openid-configuration").status, 200);
    idp.set_fault(Fault::None);
    assert_eq!(get(&idp, "/jwks").status, 200);
    assert_eq!(get(&idp, "/jwks").json(), idp.jwks_json());
}

#[test]
fn requests_are_counted_per_path() {
    let idp = OAuthServer::start();
    assert_eq!(idp.calls("/jwks"), 0);
    get(&idp, "/jwks");
    get(&idp, "/jwks?x=1");
    get(&idp, "/.well-known/openid-configuration");
    send(&idp, token_request("grant_type=client_credentials"));
    get(&idp, "/elsewhere");
    idp.set_fault(Fault::Down);
    let _ = http::send(idp.addr(), &Request::get("/jwks"));
    assert_eq!(idp.calls("/jwks"), 3, "faulted requests count too");
    assert_eq!(idp.calls("/.well-known/openid-configuration"), 1);
    assert_eq!(idp.calls("/token"), 1);
    assert_eq!(idp.calls("/elsewhere"), 1);
    assert_eq!(idp.calls("/introspect"), 0);
    assert_eq!(idp.total_calls(), 6);
    // In-process minting makes no request.
    idp.token(json!({}));
    assert_eq!(idp.total_calls(), 6);
    idp.reset_calls();
    assert_eq!(idp.calls("/jwks"), 0);
}

#[test]
fn binds_a_given_address() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe bind");
    let addr = probe.local_addr().expect("probe addr");
    drop(probe);
    let idp = OAuthServer::bind(addr);
    assert_eq!(idp.addr(), addr);
    assert_eq!(idp.url("/jwks"), format!("http://{addr}/jwks"));
    assert_eq!(get(&idp, "/jwks").status, 200);
}

#[test]
fn opaque_tokens_introspect_in_every_format() {
    let idp = OAuthServer::start();
    let jwks = idp.jwks_json();
    idp.set_token_format(TokenFormat::Opaque);
    let resp = send(
        &idp,
        token_request("grant_type=client_credentials&scope=orders:read")
            .header("Authorization", &basic("demo", "demo-secret")),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let body = resp.json();
    assert_eq!(
        (&body["token_type"], &body["expires_in"]),
        (&json!("Bearer"), &json!(300))
    );
    let opaque = body["access_token"].as_str().expect("access_token").to_owned();
    assert_eq!(opaque.len(), 43, "32 bytes, base64url without padding: {opaque}");
    assert_eq!(b64url_decode(&opaque).len(), 32);
    assert_ne!(issue_opaque(&idp), opaque, "every opaque token is new");

    // The phantom JWT: signed like a JWT access token, with the same claims.
    let phantom = idp.phantom_jwt(&opaque).expect("phantom JWT of an issued opaque token");
    assert_eq!(verify(&jwks, &phantom), Ok(()));
    assert_eq!(
        jws_header(&phantom),
        json!({"alg": "RS256", "kid": "rsa-1", "typ": "JWT"})
    );
    let claims = jws_claims(&phantom);
    assert_eq!(
        (
            &claims["iss"],
            &claims["sub"],
            &claims["client_id"],
            &claims["aud"],
            &claims["scope"]
        ),
        (
            &json!(idp.issuer()),
            &json!("demo"),
            &json!("demo"),
            &json!("api"),
            &json!("orders:read")
        )
    );

    // JSON (RFC 7662), without Accept, with Accept: application/json, or an
    // Accept that names no known type.
    let mut json_answer = Value::Null;
    for accept in [None, Some("application/json"), Some("text/html, */*;q=0.8")] {
        let resp = introspect(&idp, &opaque, accept);
        assert_eq!(resp.status, 200, "{accept:?}: {}", resp.text());
        assert_eq!(
            resp.header("content-type").as_deref(),
            Some("application/json"),
            "{accept:?}"
        );
        json_answer = resp.json();
        assert_eq!(json_answer["active"], true);
        assert_eq!(json_answer["token_type"], "Bearer");
        assert_eq!(json_answer["jwt"], phantom.as_str());
        assert_eq!(
            (&json_answer["sub"], &json_answer["scope"]),
            (&claims["sub"], &claims["scope"])
        );
        assert_eq!(json_answer["exp"], claims["exp"]);
    }

    // application/jwt (the phantom-token convention): the JWT is the body.
    for accept in [JWT, "text/plain, Application/JWT;q=0.5, application/json"] {
        let resp = introspect(&idp, &opaque, Some(accept));
        assert_eq!(resp.status, 200, "{accept}: {}", resp.text());
        assert_eq!(resp.header("content-type").as_deref(), Some(JWT), "{accept}");
        assert_eq!(resp.text(), phantom, "{accept}");
    }
    // The first recognised type wins.
    let resp = introspect(&idp, &opaque, Some("application/json, application/jwt"));
    assert_eq!(resp.header("content-type").as_deref(), Some("application/json"));

    // RFC 9701: a JWS signed with the default key, for the calling client.
    let resp = introspect(&idp, &opaque, Some(INTROSPECTION_JWT));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type").as_deref(), Some(INTROSPECTION_JWT));
    let jws = resp.text();
    assert_eq!(verify(&jwks, &jws), Ok(()));
    assert_eq!(
        jws_header(&jws),
        json!({"alg": "RS256", "kid": "rsa-1", "typ": "token-introspection+jwt"})
    );
    let signed = jws_claims(&jws);
    assert_eq!((&signed["iss"], &signed["aud"]), (&json!(idp.issuer()), &json!("demo")));
    let iat = signed["iat"].as_u64().expect("iat");
    assert!(iat.abs_diff(now_secs()) <= 5, "iat {iat}");
    assert_eq!(signed["token_introspection"], json_answer);
    let inner = signed["token_introspection"]["jwt"].as_str().expect("jwt member");
    assert_eq!(verify(&jwks, inner), Ok(()));

    // The audience is whichever client asked (here by client_secret_post);
    // another default key signs with its own algorithm.
    idp.add_client(Client::new("gateway", "gw-secret", ""));
    idp.set_default_kid("ec-1");
    let resp = send(
        &idp,
        Request::post(
            "/introspect",
            format!("token={opaque}&client_id=gateway&client_secret=gw-secret"),
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", INTROSPECTION_JWT),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let jws = resp.text();
    assert_eq!(verify(&jwks, &jws), Ok(()));
    assert_eq!(
        (&jws_header(&jws)["alg"], &jws_header(&jws)["kid"]),
        (&json!("ES256"), &json!("ec-1"))
    );
    assert_eq!(jws_claims(&jws)["aud"], "gateway");
    idp.set_default_kid("rsa-1");

    // opaque_token(): the default claims with overrides, behind an opaque token.
    let custom = idp.opaque_token(json!({"sub": "bob", "scope": "orders:write", "aud": null}));
    let custom_jwt = idp.phantom_jwt(&custom).expect("phantom JWT");
    assert_eq!(verify(&jwks, &custom_jwt), Ok(()));
    let custom_claims = jws_claims(&custom_jwt);
    assert_eq!(
        (&custom_claims["sub"], &custom_claims["scope"]),
        (&json!("bob"), &json!("orders:write"))
    );
    assert!(custom_claims.get("aud").is_none(), "{custom_claims}");
    assert_eq!(
        custom_claims["exp"].as_u64(),
        custom_claims["iat"].as_u64().map(|i| i + 300)
    );
    assert_eq!(introspect(&idp, &custom, Some(JWT)).text(), custom_jwt);
    let answer = introspect(&idp, &custom, None).json();
    assert_eq!((&answer["active"], &answer["sub"]), (&json!(true), &json!("bob")));
    // The phantom JWT is not an access token of its own.
    assert_eq!(introspect(&idp, &custom_jwt, None).json(), json!({"active": false}));

    // A JWT access token is its own JWT.
    idp.set_token_format(TokenFormat::Jwt);
    let resp = send(
        &idp,
        token_request("grant_type=client_credentials").header("Authorization", &basic("demo", "demo-secret")),
    );
    let jwt = resp.json()["access_token"].as_str().expect("access_token").to_owned();
    assert_eq!(verify(&jwks, &jwt), Ok(()), "Jwt format issues JWTs again: {jwt}");
    assert_eq!(idp.phantom_jwt(&jwt), None, "not an opaque token");
    assert_eq!(idp.phantom_jwt("unknown"), None);
    let resp = introspect(&idp, &jwt, Some(JWT));
    assert_eq!((resp.status, resp.text()), (200, jwt.clone()));
    assert_eq!(introspect(&idp, &jwt, None).json()["jwt"], jwt.as_str());
    let signed = jws_claims(&introspect(&idp, &jwt, Some(INTROSPECTION_JWT)).text());
    assert_eq!(signed["token_introspection"]["jwt"], jwt.as_str());
    let token = idp.token(json!({}));
    assert_eq!(introspect(&idp, &token, Some(JWT)).text(), token);
}

#[test]
fn inactive_tokens_in_every_format() {
    let idp = OAuthServer::start();
    let jwks = idp.jwks_json();
    let expired = idp.opaque_token(json!({"exp": now_secs() - 10}));
    assert!(
        idp.phantom_jwt(&expired).is_some(),
        "an expired token keeps its phantom JWT"
    );
    let revoked = idp.opaque_token(json!({}));
    idp.revoke(&revoked);
    let expired_jwt = idp.token(json!({"exp": now_secs() - 10}));
    for token in ["unknown", expired.as_str(), revoked.as_str(), expired_jwt.as_str()] {
        let resp = introspect(&idp, token, None);
        assert_eq!(resp.status, 200, "{token}");
        assert_eq!(resp.json(), json!({"active": false}), "{token}");
        assert!(!resp.has_header("cache-control"), "{token}: {:?}", resp.headers);

        let resp = introspect(&idp, token, Some(JWT));
        assert_eq!(resp.status, 204, "{token}: {}", resp.text());
        assert!(resp.body.is_empty());
        assert!(!resp.has_header("cache-control"), "{token}: {:?}", resp.headers);
        assert!(!resp.has_header("content-type"), "{token}: {:?}", resp.headers);

        let resp = introspect(&idp, token, Some(INTROSPECTION_JWT));
        assert_eq!(resp.status, 200, "{token}");
        assert_eq!(resp.header("content-type").as_deref(), Some(INTROSPECTION_JWT));
        assert!(!resp.has_header("cache-control"), "{token}: {:?}", resp.headers);
        let jws = resp.text();
        assert_eq!(verify(&jwks, &jws), Ok(()));
        assert_eq!(jws_header(&jws)["typ"], "token-introspection+jwt");
        let claims = jws_claims(&jws);
        assert_eq!((&claims["iss"], &claims["aud"]), (&json!(idp.issuer()), &json!("demo")));
        assert_eq!(claims["token_introspection"], json!({"active": false}));
    }

    // The 204 really has nothing after its head.
    let mut stream = std::net::TcpStream::connect(idp.addr()).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    stream
        .write_all(&introspect_request("unknown", Some(JWT)).to_bytes())
        .expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read until the server closes");
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 204"), "{raw}");
    assert_eq!(
        raw.find("\r\n\r\n"),
        Some(raw.len() - 4),
        "bytes after the head: {raw:?}"
    );
}

#[test]
fn introspection_cache_control() {
    let idp = OAuthServer::start();
    let opaque = idp.opaque_token(json!({}));
    // Default: max-age is the token's remaining lifetime, in every format.
    for accept in [None, Some(JWT), Some(INTROSPECTION_JWT)] {
        let resp = introspect(&idp, &opaque, accept);
        assert_eq!(resp.status, 200);
        let age = max_age(&resp);
        assert!((295..=300).contains(&age), "{accept:?}: max-age={age}");
    }
    let short = idp.opaque_token(json!({"exp": now_secs() + 42}));
    assert!((37..=42).contains(&max_age(&introspect(&idp, &short, Some(JWT)))));
    idp.set_token_ttl(60);
    let token = idp.token(json!({}));
    assert!((55..=60).contains(&max_age(&introspect(&idp, &token, None))));
    // No exp: active for ever, no max-age.
    let forever = idp.opaque_token(json!({"exp": null}));
    let resp = introspect(&idp, &forever, Some(JWT));
    assert_eq!(resp.status, 200);
    assert!(!resp.has_header("cache-control"), "{:?}", resp.headers);

    // An override goes on every answer, active or not.
    idp.set_introspection_cache_control(Some("no-store"));
    for token in [opaque.as_str(), "unknown"] {
        for accept in [None, Some(JWT), Some(INTROSPECTION_JWT)] {
            let resp = introspect(&idp, token, accept);
            assert_eq!(
                resp.header_all("cache-control"),
                ["no-store"],
                "{token} {accept:?}: status {}",
                resp.status
            );
        }
    }
    idp.set_introspection_cache_control(Some("max-age=5, must-revalidate"));
    assert_eq!(
        introspect(&idp, &opaque, Some(JWT)).header("cache-control").as_deref(),
        Some("max-age=5, must-revalidate")
    );
    idp.set_introspection_cache_control(None);
    assert!((290..=300).contains(&max_age(&introspect(&idp, &opaque, Some(JWT)))));
    assert!(!introspect(&idp, "unknown", Some(JWT)).has_header("cache-control"));
}

#[test]
fn revocation_endpoint_and_revoke() {
    let idp = OAuthServer::start();
    let revoke_request =
        |body: String| Request::post("/revoke", body).header("Content-Type", "application/x-www-form-urlencoded");
    assert_eq!(REVOKE_PATH, "/revoke");

    // client_secret_basic, an opaque token.
    let opaque = idp.opaque_token(json!({}));
    assert_eq!(introspect(&idp, &opaque, Some(JWT)).status, 200);
    let resp = send(
        &idp,
        revoke_request(format!("token={opaque}&token_type_hint=access_token"))
            .header("Authorization", &basic("demo", "demo-secret")),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.body.is_empty(), "{}", resp.text());
    assert_eq!(introspect(&idp, &opaque, Some(JWT)).status, 204);
    assert_eq!(introspect(&idp, &opaque, None).json(), json!({"active": false}));
    assert_eq!(idp.phantom_jwt(&opaque), None);

    // client_secret_post, a JWT.
    let jwt = idp.token(json!({}));
    let resp = send(
        &idp,
        revoke_request(format!("token={jwt}&client_id=demo&client_secret=demo-secret")),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(introspect(&idp, &jwt, None).json(), json!({"active": false}));

    // An unknown token is fine (RFC 7009 section 2.2); the rest is not.
    let resp = send(
        &idp,
        revoke_request("token=never-issued".into()).header("Authorization", &basic("demo", "demo-secret")),
    );
    assert_eq!(resp.status, 200);
    let other = idp.opaque_token(json!({}));
    let resp = send(
        &idp,
        revoke_request(format!("token={other}")).header("Authorization", &basic("demo", "wrong")),
    );
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["error"], "invalid_client");
    let resp = send(
        &idp,
        revoke_request(String::new()).header("Authorization", &basic("demo", "demo-secret")),
    );
    assert_eq!(
        (resp.status, resp.json()["error"].clone()),
        (400, json!("invalid_request"))
    );
    assert_eq!(get(&idp, "/revoke").status, 405);
    assert_eq!(introspect(&idp, &other, None).json()["active"], true, "still active");

    // revoke() works on opaque tokens too.
    idp.revoke(&other);
    assert_eq!(introspect(&idp, &other, Some(JWT)).status, 204);
    assert_eq!(idp.phantom_jwt(&other), None);
    assert_eq!(idp.calls(REVOKE_PATH), 6);
}

#[test]
fn introspection_requests_are_recorded() {
    let idp = OAuthServer::start();
    assert!(idp.introspection_requests().is_empty());
    let opaque = idp.opaque_token(json!({}));
    send(
        &idp,
        Request::post("/introspect", format!("token={opaque}&token_type_hint=access_token"))
            .header("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
            .header("Authorization", &basic("demo", "demo-secret"))
            .header("Accept", JWT),
    );
    idp.add_client(Client::new("gateway", "gw-secret", ""));
    send(
        &idp,
        Request::post("/introspect", "token=abc&client_id=gateway&client_secret=gw-secret")
            .header("Accept", "text/plain")
            .header("Accept", INTROSPECTION_JWT),
    );
    // Refused authentication: counted, not recorded.
    let resp = send(
        &idp,
        Request::post("/introspect", "token=abc&client_id=gateway&client_secret=wrong")
            .header("Content-Type", "application/x-www-form-urlencoded"),
    );
    assert_eq!(resp.status, 401);
    // A missing token is recorded, then refused.
    let resp = send(
        &idp,
        Request::post("/introspect", "token_type_hint=refresh_token")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Authorization", &basic("demo", "demo-secret")),
    );
    assert_eq!(
        (resp.status, resp.json()["error"].clone()),
        (400, json!("invalid_request"))
    );

    assert_eq!(idp.calls(INTROSPECT_PATH), 4);
    assert_eq!(
        idp.introspection_requests(),
        [
            IntrospectionRequest {
                client_id: "demo".into(),
                auth_method: ClientAuth::Basic,
                token: opaque.clone(),
                token_type_hint: Some("access_token".into()),
                accept: Some(JWT.into()),
                content_type: Some("application/x-www-form-urlencoded; charset=utf-8".into()),
            },
            IntrospectionRequest {
                client_id: "gateway".into(),
                auth_method: ClientAuth::Post,
                token: "abc".into(),
                token_type_hint: None,
                accept: Some(format!("text/plain, {INTROSPECTION_JWT}")),
                content_type: None,
            },
            IntrospectionRequest {
                client_id: "demo".into(),
                auth_method: ClientAuth::Basic,
                token: String::new(),
                token_type_hint: Some("refresh_token".into()),
                accept: None,
                content_type: Some("application/x-www-form-urlencoded".into()),
            },
        ]
    );
    idp.clear_introspection_requests();
    assert!(idp.introspection_requests().is_empty());
    introspect(&idp, &opaque, None);
    assert_eq!(idp.introspection_requests().len(), 1);
}

#[test]
fn introspection_faults() {
    let idp = OAuthServer::start();
    let jwks = idp.jwks_json();
    let opaque = idp.opaque_token(json!({}));
    let phantom = idp.phantom_jwt(&opaque).expect("phantom JWT");

    idp.set_fault_at(
        INTROSPECT_PATH,
        Fault::Unavailable {
            retry_after: Some("120".into()),
        },
    );
    let resp = introspect(&idp, &opaque, Some(JWT));
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("retry-after").as_deref(), Some("120"));
    assert_eq!(resp.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(resp.json()["error"], "temporarily_unavailable");
    idp.set_fault_at(INTROSPECT_PATH, Fault::Unavailable { retry_after: None });
    let resp = introspect(&idp, &opaque, None);
    assert_eq!(resp.status, 503);
    assert!(!resp.has_header("retry-after"));

    idp.set_fault_at(INTROSPECT_PATH, Fault::Html);
    let resp = introspect(&idp, &opaque, Some(JWT));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type").as_deref(), Some("text/html"));
    assert_eq!(resp.text(), "<html><body>Service temporarily unavailable</body></html>");

    idp.set_fault_at(INTROSPECT_PATH, Fault::HugeBody);
    for (accept, content_type) in [
        (Some(JWT), JWT),
        (Some(INTROSPECTION_JWT), INTROSPECTION_JWT),
        (None, "application/json"),
    ] {
        let resp = introspect(&idp, &opaque, accept);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type").as_deref(), Some(content_type));
        assert!(
            resp.body.len() >= 2 * 1024 * 1024,
            "{accept:?}: {} bytes",
            resp.body.len()
        );
        if accept.is_none() {
            assert_eq!(resp.json()["active"], true);
        }
    }

    // WrongSignature: same headers and payloads, signatures by rsa-3.
    idp.set_fault_at(INTROSPECT_PATH, Fault::WrongSignature);
    let wrong_key = wrong_key_jwks();
    let check_wrong = |jwt: &str, what: &str| {
        assert!(verify(&jwks, jwt).is_err(), "{what} verifies with the JWKS");
        assert_eq!(verify(&wrong_key, jwt), Ok(()), "{what} is not signed by rsa-3");
        assert_eq!(jws_header(jwt)["kid"], "rsa-1", "{what}");
    };
    let resp = introspect(&idp, &opaque, Some(JWT));
    assert_eq!((resp.status, resp.header("content-type")), (200, Some(JWT.to_owned())));
    let body = resp.text();
    check_wrong(&body, "the application/jwt body");
    assert_eq!(jws_header(&body), jws_header(&phantom));
    assert_eq!(jws_claims(&body), jws_claims(&phantom));
    let answer = introspect(&idp, &opaque, None).json();
    assert_eq!(answer["active"], true);
    check_wrong(answer["jwt"].as_str().expect("jwt"), "the JSON jwt member");
    let resp = introspect(&idp, &opaque, Some(INTROSPECTION_JWT));
    let jws = resp.text();
    check_wrong(&jws, "the RFC 9701 answer");
    assert_eq!(jws_header(&jws)["typ"], "token-introspection+jwt");
    let inner = jws_claims(&jws)["token_introspection"]["jwt"]
        .as_str()
        .expect("inner jwt")
        .to_owned();
    check_wrong(&inner, "the jwt in token_introspection");
    assert_eq!(introspect(&idp, "unknown", Some(JWT)).status, 204);
    // Other paths are not affected; nor is the phantom JWT kept by the server.
    assert_eq!(idp.phantom_jwt(&opaque).as_deref(), Some(phantom.as_str()));
    assert_eq!(get(&idp, "/jwks").json(), jwks);

    // The older faults work on the introspection path too.
    idp.set_fault_at(INTROSPECT_PATH, Fault::Down);
    assert!(http::send(idp.addr(), &introspect_request(&opaque, Some(JWT))).is_err());
    idp.set_fault_at(INTROSPECT_PATH, Fault::Status(500));
    assert_eq!(introspect(&idp, &opaque, Some(JWT)).status, 500);
    idp.set_fault_at(INTROSPECT_PATH, Fault::MalformedJwks);
    let resp = introspect(&idp, &opaque, None);
    assert!(serde_json::from_slice::<Value>(&resp.body).is_err(), "{}", resp.text());
    idp.set_fault_at(INTROSPECT_PATH, Fault::Slow(Duration::from_millis(300)));
    let started = Instant::now();
    let resp = introspect(&idp, &opaque, Some(JWT));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!((resp.status, resp.text()), (200, phantom.clone()));

    // Faulted requests are counted but not recorded (Slow and WrongSignature
    // answered normally, so they were).
    let recorded = idp.introspection_requests().len();
    assert_eq!(recorded, 5, "{:?}", idp.introspection_requests());
    assert_eq!(idp.calls(INTROSPECT_PATH), 14);

    // The new faults apply to other paths as well.
    idp.set_fault(Fault::Unavailable {
        retry_after: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
    });
    let resp = get(&idp, "/jwks");
    assert_eq!(resp.status, 503);
    assert_eq!(
        resp.header("retry-after").as_deref(),
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    );
    assert_eq!(
        introspect(&idp, &opaque, Some(JWT)).text(),
        phantom,
        "set_fault cleared the path fault"
    );
    idp.set_fault(Fault::Html);
    assert_eq!(
        get(&idp, "/.well-known/openid-configuration")
            .header("content-type")
            .as_deref(),
        Some("text/html")
    );
    idp.set_fault(Fault::None);
    assert_eq!(get(&idp, "/jwks").status, 200);
}

#[test]
#[should_panic(expected = "Retry-After")]
fn unavailable_fault_needs_a_valid_retry_after() {
    let idp = OAuthServer::start();
    idp.set_fault_at(
        INTROSPECT_PATH,
        Fault::Unavailable {
            retry_after: Some("1\r\nX-Injected: yes".into()),
        },
    );
}
