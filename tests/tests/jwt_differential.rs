//! Differential test: the same tokens through Envoy's native `envoy.filters.http.jwt_authn` and
//! through our `jwt_auth` wasm filter, configured alike (same issuer, audience, keys, clock skew,
//! `exp` required, token forwarded). Every case must get the same answer from both (200 or 401),
//! except the deviations listed in [`DEVIATIONS`], and every listed deviation must still deviate.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use harness::oauth::{
    b64url_decode, b64url_encode, fixture_jwk, jwks_without_rsa_alg, now_secs, SigningKey, TokenSpec, ASYMMETRIC_ALGS,
};
use harness::{Envoy, Gateway, OAuthServer, Request, Response};
use serde_json::{json, Value};

/// Where our filter and native `jwt_authn` knowingly disagree: case name -> why. Every entry was
/// observed against Envoy 1.40; the test fails when one stops deviating.
const DEVIATIONS: &[(&str, &str)] = &[
    (
        "iat beyond skew (now+600)",
        "we refuse an iat more than clock_skew_secs in the future; jwt_authn does not check iat",
    ),
    (
        "exp beyond u64 (1e20)",
        "RFC 7519 NumericDate is any JSON number: we accept a finite non-negative exp; jwt_authn needs it to fit a uint64",
    ),
    (
        "wrong aud string",
        "both reject: jwt_authn answers 403 (Audiences in Jwt are not allowed), we 401 invalid_token (RFC 6750 3.1)",
    ),
    (
        "aud array without api",
        "both reject: jwt_authn answers 403 (Audiences in Jwt are not allowed), we 401 invalid_token (RFC 6750 3.1)",
    ),
    (
        "missing aud",
        "both reject: jwt_authn answers 403 (Audiences in Jwt are not allowed), we 401 invalid_token (RFC 6750 3.1)",
    ),
    (
        "kid names the kid-less key (rsa-3)",
        "jwt_authn lets a JWK without kid verify a token with any kid; we match a token's kid only to a key with that kid",
    ),
    (
        "four segments, empty last",
        "jwt_authn skips empty dot-separated parts ('h.p.s.' verifies); we require exactly three (RFC 7515 7.1)",
    ),
    (
        "leading dot (.h.p.s)",
        "jwt_authn skips empty dot-separated parts ('.h.p.s' verifies); we require exactly three (RFC 7515 7.1)",
    ),
    (
        "double dot (h..p.s)",
        "jwt_authn skips empty dot-separated parts ('h..p.s' verifies); we require exactly three (RFC 7515 7.1)",
    ),
    (
        "padding '==' on the signature (standard padding)",
        "jwt_authn's base64url decoder accepts '=' padding; JWS base64url has none (RFC 7515 2) and we reject it",
    ),
    (
        "lowercase bearer scheme",
        "auth schemes are case-insensitive (RFC 7235 2.1), we accept 'bearer'; jwt_authn's 'Bearer ' prefix match is not",
    ),
    (
        "two Authorization headers (same valid token)",
        "both reject: we answer 400 invalid_request (ambiguous credentials), jwt_authn 401 on the comma-folded value",
    ),
    (
        "crit [exp]",
        "RFC 7515 4.1.11: an unknown crit extension must be rejected, and we do; jwt_authn ignores crit",
    ),
];

/// The request path; every case is a `GET` of it.
const PATH: &str = "/orders";
/// Prefix of our filter's per-reason denial counters.
const DENIED_PREFIX: &str = "wasmcustom.apisec.jwt_auth.denied_";

/// What both implementations must do with a case, whatever the other does: the security floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// 200 from both.
    Accept,
    /// 401 from both (or at least: never 200).
    Reject,
    /// Either; the case probes behaviour that is a matter of choice.
    Any,
}

struct Case {
    name: String,
    /// `Authorization` header values, in order (none: no header).
    authorization: Vec<String>,
    want: Want,
}

struct Row {
    name: String,
    want: Want,
    native: Response,
    ours: Response,
    ours_reason: String,
}

impl Row {
    fn agrees(&self) -> bool {
        self.native.status == self.ours.status && matches!(self.native.status, 200 | 401)
    }

    /// Statuses that break the case's [`Want`].
    fn floor_violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (who, status) in [("native", self.native.status), ("ours", self.ours.status)] {
            let ok = match self.want {
                Want::Accept => status == 200,
                Want::Reject => status != 200 && status < 500,
                Want::Any => true,
            };
            if !ok {
                out.push(format!(
                    "{}: {who} answered {status}, wanted {:?}",
                    self.name, self.want
                ));
            }
        }
        out
    }
}

struct Cases {
    list: Vec<Case>,
}

impl Cases {
    fn token(&mut self, name: &str, want: Want, token: &str) {
        self.header(name, want, &format!("Bearer {token}"));
    }

    fn header(&mut self, name: &str, want: Want, value: &str) {
        self.headers(name, want, vec![value.to_owned()]);
    }

    fn headers(&mut self, name: &str, want: Want, authorization: Vec<String>) {
        assert!(
            !self.list.iter().any(|c| c.name == name),
            "duplicate case name {name:?}"
        );
        self.list.push(Case {
            name: name.to_owned(),
            authorization,
            want,
        });
    }
}

/// The JWKS both sides verify with: `rsa-1` (no `alg`, so every RS*/PS* algorithm may use it),
/// `ec-1`, `ec384-1`, `ed-1`, and `rsa-3` published *without* a `kid`.
fn shared_jwks() -> Value {
    let mut jwks = jwks_without_rsa_alg(&["rsa-1", "ec-1", "ec384-1", "ed-1", "rsa-3"]);
    for key in jwks["keys"].as_array_mut().expect("keys") {
        let key = key.as_object_mut().expect("a JWK object");
        if key.get("kid") == Some(&json!("rsa-3")) {
            key.remove("kid");
        }
    }
    jwks
}

/// Gateway A: native `jwt_authn`, one provider required for every path.
fn native_gateway(oauth: &OAuthServer, jwks: &Value) -> Gateway {
    let filter = json!({
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {
                "idp": {
                    "issuer": oauth.issuer(),
                    "audiences": ["api"],
                    "local_jwks": {"inline_string": jwks.to_string()},
                    "forward": true,
                    "clock_skew_seconds": 60,
                    // Our filter always requires `exp`.
                    "require_expiration": true,
                }
            },
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "idp"}}],
        }
    });
    Gateway::start_with(|c| c.native_filter(filter))
}

/// Gateway B: our `jwt_auth`, the same provider.
fn wasm_gateway(oauth: &OAuthServer, jwks: &Value) -> Gateway {
    let config = json!({
        "providers": {
            "idp": {
                "issuer": oauth.issuer(),
                "audiences": ["api"],
                "jwks": {"type": "inline", "jwks": jwks},
                "forward": true,
                "clock_skew_secs": 60,
            }
        },
        "rules": [{"match": {"prefix": "/"}, "requires": {"type": "provider", "name": "idp"}}],
    });
    Gateway::start_with(|c| c.filter("jwt_auth", config))
}

fn spec(alg: &str, kid: &str, claims: Value) -> TokenSpec {
    TokenSpec::new(alg, kid).claims(claims)
}

/// The three dot-separated parts of a compact token, still encoded.
fn split(token: &str) -> (String, String, String) {
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        panic!("not three parts: {token}");
    };
    ((*h).to_owned(), (*p).to_owned(), (*s).to_owned())
}

fn build_cases(oauth: &OAuthServer) -> Cases {
    let mut cases = Cases { list: Vec::new() };
    let now = now_secs();
    let iss = oauth.issuer();
    let claims = |extra: Value| oauth.claims(extra);
    let good = claims(json!({}));
    let valid = oauth.mint(spec("RS256", "rsa-1", good.clone()));
    let (h, p, s) = split(&valid);

    // Every asymmetric algorithm both sides support.
    for (alg, kid) in ASYMMETRIC_ALGS {
        let token = oauth.mint(spec(alg, kid, good.clone()));
        cases.token(&format!("valid {alg}"), Want::Accept, &token);
    }

    // Time.
    let timed = |name: &str, want: Want, extra: Value, cases: &mut Cases| {
        cases.token(name, want, &oauth.mint(spec("RS256", "rsa-1", claims(extra))));
    };
    timed(
        "expired (exp now-120)",
        Want::Reject,
        json!({"iat": now - 600, "exp": now - 120}),
        &mut cases,
    );
    timed(
        "expired within skew (exp now-30)",
        Want::Accept,
        json!({"iat": now - 600, "exp": now - 30}),
        &mut cases,
    );
    timed(
        "nbf beyond skew (now+600)",
        Want::Reject,
        json!({"nbf": now + 600}),
        &mut cases,
    );
    timed(
        "nbf within skew (now+30)",
        Want::Accept,
        json!({"nbf": now + 30}),
        &mut cases,
    );
    timed(
        "iat beyond skew (now+600)",
        Want::Any,
        json!({"iat": now + 600}),
        &mut cases,
    );
    timed(
        "iat within skew (now+30)",
        Want::Accept,
        json!({"iat": now + 30}),
        &mut cases,
    );
    timed("missing exp", Want::Reject, json!({"exp": null}), &mut cases);
    timed(
        "exp as a string",
        Want::Reject,
        json!({"exp": (now + 300).to_string()}),
        &mut cases,
    );
    timed(
        "fractional exp (now+300.5)",
        Want::Any,
        json!({"exp": now as f64 + 300.5}),
        &mut cases,
    );
    timed(
        "fractional exp, expired (now-120.5)",
        Want::Reject,
        json!({"exp": now as f64 - 120.5}),
        &mut cases,
    );
    timed(
        "exp written as a float (now+300.0)",
        Want::Any,
        json!({"exp": (now + 300) as f64}),
        &mut cases,
    );
    timed("exp beyond u64 (1e20)", Want::Any, json!({"exp": 1e20}), &mut cases);
    timed("exp beyond i64 (1e19)", Want::Any, json!({"exp": 1e19}), &mut cases);
    timed("negative exp", Want::Reject, json!({"exp": -1}), &mut cases);
    timed(
        "nbf as a string",
        Want::Any,
        json!({"nbf": now.to_string()}),
        &mut cases,
    );

    // Issuer and audience.
    timed(
        "wrong iss",
        Want::Reject,
        json!({"iss": "https://evil.example"}),
        &mut cases,
    );
    timed("missing iss", Want::Reject, json!({"iss": null}), &mut cases);
    timed(
        "iss with a trailing slash",
        Want::Reject,
        json!({"iss": format!("{iss}/")}),
        &mut cases,
    );
    timed("wrong aud string", Want::Reject, json!({"aud": "other"}), &mut cases);
    timed(
        "aud array containing api",
        Want::Accept,
        json!({"aud": ["other", "api"]}),
        &mut cases,
    );
    timed(
        "aud array without api",
        Want::Reject,
        json!({"aud": ["x", "y"]}),
        &mut cases,
    );
    timed("missing aud", Want::Reject, json!({"aud": null}), &mut cases);

    // Algorithm attacks.
    let none = |alg: &str| oauth.mint(spec(alg, "rsa-1", good.clone()).signing_key(SigningKey::None));
    cases.token("alg none", Want::Reject, &none("none"));
    cases.token("alg None", Want::Reject, &none("None"));
    let rsa_pem = oauth.public_key_pem("rsa-1").into_bytes();
    cases.token(
        "HS256 with the RSA public key PEM as secret",
        Want::Reject,
        &oauth.mint(spec("HS256", "rsa-1", good.clone()).signing_key(SigningKey::Hmac(rsa_pem))),
    );
    cases.token(
        "RS256 header, PS256 signature",
        Want::Reject,
        &oauth.mint(spec("RS256", "rsa-1", good.clone()).signing_key(SigningKey::FixtureAs {
            kid: "rsa-1".into(),
            alg: "PS256".into(),
        })),
    );
    cases.token(
        "ES256 header, kid of the P-384 key",
        Want::Reject,
        &oauth.mint(spec("ES256", "ec384-1", good.clone())),
    );
    cases.token(
        "alg in lowercase (rs256)",
        Want::Reject,
        &oauth.mint(spec("rs256", "rsa-1", good.clone())),
    );

    // Key selection.
    cases.token(
        "unknown kid",
        Want::Reject,
        &oauth.mint(spec("RS256", "rsa-1", good.clone()).kid(Some("nope"))),
    );
    cases.token(
        "no kid (keys have kids)",
        Want::Any,
        &oauth.mint(spec("RS256", "rsa-1", good.clone()).kid(None)),
    );
    cases.token(
        "kid of a key not published (rsa-2)",
        Want::Reject,
        &oauth.mint(spec("RS256", "rsa-2", good.clone())),
    );
    cases.token(
        "kid rsa-1, signed by rsa-2",
        Want::Reject,
        &oauth.mint(spec("RS256", "rsa-1", good.clone()).signing_key(SigningKey::Fixture("rsa-2".into()))),
    );
    cases.token(
        "kid names the kid-less key (rsa-3)",
        Want::Any,
        &oauth.mint(spec("RS256", "rsa-3", good.clone())),
    );
    cases.token(
        "no kid, signed by the kid-less key",
        Want::Any,
        &oauth.mint(spec("RS256", "rsa-3", good.clone()).kid(None)),
    );

    // Signature and encoding.
    let (_, tampered_payload, _) = split(&oauth.mint(spec("RS256", "rsa-1", claims(json!({"sub": "admin"})))));
    cases.token("tampered payload", Want::Reject, &format!("{h}.{tampered_payload}.{s}"));
    let mut sig = b64url_decode(&s);
    sig[10] ^= 0x01;
    cases.token(
        "tampered signature",
        Want::Reject,
        &format!("{h}.{p}.{}", b64url_encode(&sig)),
    );
    let sig = b64url_decode(&s);
    cases.token(
        "RS256 signature one byte short",
        Want::Reject,
        &format!("{h}.{p}.{}", b64url_encode(&sig[..sig.len() - 1])),
    );
    let mut long = sig.clone();
    long.push(0);
    cases.token(
        "RS256 signature one byte long",
        Want::Reject,
        &format!("{h}.{p}.{}", b64url_encode(&long)),
    );
    let es = oauth.mint(spec("ES256", "ec-1", good.clone()));
    let (eh, ep, es_sig) = split(&es);
    let es_sig = b64url_decode(&es_sig);
    cases.token(
        "ES256 signature of 63 bytes",
        Want::Reject,
        &format!("{eh}.{ep}.{}", b64url_encode(&es_sig[..63])),
    );
    cases.token("two segments", Want::Reject, &format!("{h}.{p}"));
    cases.token("four segments", Want::Reject, &format!("{valid}.{s}"));
    cases.token("four segments, empty last", Want::Any, &format!("{valid}."));
    cases.token("leading dot (.h.p.s)", Want::Any, &format!(".{valid}"));
    cases.token("double dot (h..p.s)", Want::Any, &format!("{h}..{p}.{s}"));
    cases.token("padding '=' on the payload", Want::Reject, &format!("{h}.{p}=.{s}"));
    let pad = "=".repeat((4 - s.len() % 4) % 4);
    assert!(!pad.is_empty(), "a 256-byte signature needs padding");
    cases.token(
        "padding '==' on the signature (standard padding)",
        Want::Any,
        &format!("{h}.{p}.{s}{pad}"),
    );
    assert!(
        s.contains(['-', '_']),
        "the RS256 signature has neither '-' nor '_' (odds ~1e-5): {s}"
    );
    cases.token(
        "'+' and '/' in the signature (standard alphabet)",
        Want::Any,
        &format!("{h}.{p}.{}", s.replace('-', "+").replace('_', "/")),
    );
    cases.token("empty segments (..)", Want::Reject, "..");
    cases.token("empty header", Want::Reject, &format!(".{p}.{s}"));
    cases.token("empty payload", Want::Reject, &format!("{h}..{s}"));
    cases.token("empty signature", Want::Reject, &format!("{h}.{p}."));
    cases.token(
        "header not JSON",
        Want::Reject,
        &oauth.mint(spec("RS256", "rsa-1", good.clone()).raw_header(b"not json")),
    );
    cases.token(
        "payload is a JSON array",
        Want::Reject,
        &oauth.mint(spec("RS256", "rsa-1", json!([good.clone()]))),
    );

    // Whitespace and the scheme.
    cases.header(
        "whitespace: two spaces after Bearer",
        Want::Any,
        &format!("Bearer  {valid}"),
    );
    cases.header("whitespace: tab after Bearer", Want::Any, &format!("Bearer\t{valid}"));
    cases.header(
        "whitespace: space inside the token",
        Want::Reject,
        &format!("Bearer {h}. {p}.{s}"),
    );
    cases.header("whitespace: trailing space", Want::Accept, &format!("Bearer {valid} "));
    cases.token(
        "whitespace: newlines in the header JSON",
        Want::Any,
        &oauth.mint(
            spec("RS256", "rsa-1", good.clone()).raw_header(b"{\n  \"alg\": \"RS256\",\n  \"kid\": \"rsa-1\"\n}\n"),
        ),
    );
    cases.header("lowercase bearer scheme", Want::Any, &format!("bearer {valid}"));
    cases.header("no scheme", Want::Reject, &valid);
    cases.headers("no Authorization header", Want::Reject, Vec::new());
    cases.headers(
        "two Authorization headers (same valid token)",
        Want::Any,
        vec![format!("Bearer {valid}"), format!("Bearer {valid}")],
    );

    // Header members.
    let with_header = |name: &str, value: Value| oauth.mint(spec("RS256", "rsa-1", good.clone()).header(name, value));
    cases.token("crit [exp]", Want::Any, &with_header("crit", json!(["exp"])));
    cases.token(
        "jku header (validly signed)",
        Want::Accept,
        &with_header("jku", json!("https://evil.example/jwks")),
    );
    cases.token(
        "jwk header (validly signed)",
        Want::Accept,
        &with_header("jwk", fixture_jwk("rsa-2")),
    );
    cases.token(
        "x5u header (validly signed)",
        Want::Accept,
        &with_header("x5u", json!("https://evil.example/cert.pem")),
    );
    cases.token(
        "jwk header, signed by the embedded key",
        Want::Reject,
        &oauth.mint(
            spec("RS256", "rsa-2", good.clone())
                .header("jwk", fixture_jwk("rsa-2"))
                .kid(None),
        ),
    );
    cases.token("typ at+jwt", Want::Accept, &with_header("typ", json!("at+jwt")));
    cases.token("typ foo", Want::Accept, &with_header("typ", json!("foo")));

    // Duplicate members.
    let exp = now + 300;
    let dup_sub = format!(r#"{{"iss":"{iss}","aud":"api","sub":"alice","sub":"admin","iat":{now},"exp":{exp}}}"#);
    cases.token(
        "duplicate claim (sub twice)",
        Want::Any,
        &oauth.mint(spec("RS256", "rsa-1", Value::Null).raw_payload(dup_sub.as_bytes())),
    );
    let dup_exp = format!(
        r#"{{"iss":"{iss}","aud":"api","sub":"alice","iat":{now},"exp":{},"exp":{exp}}}"#,
        now - 600
    );
    cases.token(
        "duplicate claim (exp expired, then valid)",
        Want::Any,
        &oauth.mint(spec("RS256", "rsa-1", Value::Null).raw_payload(dup_exp.as_bytes())),
    );
    cases.token(
        "duplicate header member (kid unknown, then rsa-1)",
        Want::Any,
        &oauth.mint(spec("RS256", "rsa-1", good.clone()).raw_header(br#"{"alg":"RS256","kid":"nope","kid":"rsa-1"}"#)),
    );

    // Size.
    cases.token(
        "huge claims (~6 KB)",
        Want::Accept,
        &oauth.mint(spec("RS256", "rsa-1", claims(json!({"pad": "x".repeat(6000)})))),
    );

    cases
}

/// Our filter's per-reason denial counters.
fn denied_counters(envoy: &Envoy) -> BTreeMap<String, u64> {
    envoy
        .stats()
        .lines()
        .filter_map(|line| line.strip_prefix(DENIED_PREFIX))
        .filter_map(|rest| {
            let (name, value) = rest.split_once(": ")?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

fn request(case: &Case) -> Request {
    case.authorization
        .iter()
        .fold(Request::get(PATH), |req, value| req.header("Authorization", value))
}

fn short(text: &str, max: usize) -> String {
    let one_line = text.replace(['\r', '\n'], " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        format!("{}...", one_line.chars().take(max).collect::<String>())
    }
}

fn table(rows: &[Row]) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  native  ours  verdict    ours reason             native body | native www-authenticate | ours www-authenticate",
        "case"
    );
    for row in rows {
        let listed = DEVIATIONS.iter().any(|(n, _)| *n == row.name);
        let verdict = match (row.agrees(), listed) {
            (true, false) => "same",
            (false, true) => "DEVIATION",
            (false, false) => "MISMATCH",
            (true, true) => "STALE-DEV",
        };
        let native_detail = if row.native.status == 200 {
            "-".to_owned()
        } else {
            format!(
                "{} | {}",
                short(&row.native.text(), 50),
                row.native.header("www-authenticate").unwrap_or_default()
            )
        };
        let ours_challenge = if row.ours.status == 200 {
            "-".to_owned()
        } else {
            row.ours.header("www-authenticate").unwrap_or_default()
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:>6}  {:>4}  {:<9}  {:<22}  {native_detail} | {ours_challenge}",
            row.name, row.native.status, row.ours.status, verdict, row.ours_reason
        );
    }
    out
}

#[test]
fn native_jwt_authn_and_jwt_auth_accept_and_reject_the_same_tokens() {
    let oauth = OAuthServer::start();
    let jwks = shared_jwks();
    let native = native_gateway(&oauth, &jwks);
    let ours = wasm_gateway(&oauth, &jwks);
    let cases = build_cases(&oauth);
    assert!(cases.list.len() >= 40, "only {} cases", cases.list.len());

    let mut rows = Vec::new();
    for case in &cases.list {
        let native_response = native.send(request(case));
        let before = denied_counters(&ours.envoy);
        let ours_response = ours.send(request(case));
        let after = denied_counters(&ours.envoy);
        let ours_reason = after
            .iter()
            .filter(|(name, value)| before.get(*name).copied().unwrap_or(0) < **value)
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(",");
        rows.push(Row {
            name: case.name.clone(),
            want: case.want,
            native: native_response,
            ours: ours_response,
            ours_reason,
        });
    }
    let table = table(&rows);
    println!("{table}");

    let mut problems: Vec<String> = Vec::new();
    // A 200 must be the upstream's answer, with the token forwarded (`forward: true` on both).
    for (who, gateway, accepted) in [
        (
            "native",
            &native,
            rows.iter().filter(|r| r.native.status == 200).count(),
        ),
        ("ours", &ours, rows.iter().filter(|r| r.ours.status == 200).count()),
    ] {
        if gateway.echo.request_count() != accepted {
            problems.push(format!(
                "{who}: {accepted} case(s) answered 200 but the upstream saw {} request(s)",
                gateway.echo.request_count()
            ));
        }
        if accepted > 0 && !gateway.echo.last_request().has_header("authorization") {
            problems.push(format!("{who}: the token was not forwarded to the upstream"));
        }
    }
    for (name, _) in DEVIATIONS {
        if !rows.iter().any(|r| r.name == *name) {
            problems.push(format!("DEVIATIONS lists {name:?}, which is not a case"));
        }
    }
    for row in &rows {
        problems.extend(row.floor_violations());
        let listed = DEVIATIONS.iter().find(|(n, _)| *n == row.name);
        match (row.agrees(), listed) {
            (false, None) => problems.push(format!(
                "{}: native {} vs ours {}, not a listed deviation",
                row.name, row.native.status, row.ours.status
            )),
            (true, Some((_, reason))) => problems.push(format!(
                "{}: listed as a deviation ({reason}) but both answered {}",
                row.name, row.native.status
            )),
            _ => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n\n{table}",
        problems.len(),
        problems.join("\n  ")
    );
}
