//! The adversarial suite: JWTs presented to jwt-auth.

use super::*;

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
            Some(&insufficient_scope("orders:read")),
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
