//! The OAuth server's introspection answers, as phantom-token reads and verifies them: the
//! `application/jwt` body, the RFC 7662 JSON object, and the RFC 9701 signed response (with the
//! JWT taken from it, or the response itself sent upstream), against fixed keys.
//!
//! Input: a head, an empty line, the body. The head's first line is `<mode> <status>` (mode
//! `jwt`, `json`, `signed-field` or `signed-header`; status a number, or `failed` for no
//! answer at all), the other lines are the answer's headers (`name: value`). For example:
//!
//! ```text
//! json 200
//! cache-control: max-age=60
//!
//! {"active": true, "jwt": "eyJ..."}
//! ```
//!
//! Invariants, besides "never panics":
//! - the request is decided once the answer is in: allowed, or refused with 401, 502 or 503;
//! - only a 200 answer lets a request through, and what goes upstream is a JWT from the
//!   configured issuer that verifies with its keys (an access token in `Authorization`, never a
//!   token-introspection response; in `signed-header` mode the signed response in its header,
//!   with `Authorization` removed), with the claims published as a JSON object.

#![no_main]

use apisec_fuzz::{fixed_keys, ISSUER, JWKS, MAX_TOKEN_BYTES};
use jose::{Jwks, Jwt};
use libfuzzer_sys::fuzz_target;
use phantom_token::{PhantomToken, CLAIMS_STATE};
use serde_json::{json, Value};
use shared::testkit::{Configured, FakeHost};
use shared::{Action, CallOutcome, HeaderEdit, Headers, HttpFilter, NoHostCrypto, Step};

const MODES: [&str; 4] = ["jwt", "json", "signed-field", "signed-header"];
const RESPONSE_HEADER: &str = "x-introspection";
const SIGNED_TYP: &str = "token-introspection+jwt";

fn config(mode: &str) -> String {
    let response = match mode {
        "jwt" => json!({"type": "jwt"}),
        "json" => json!({"type": "json", "field": "jwt"}),
        "signed-field" => json!({"type": "signed", "upstream": {"type": "jwt_field", "field": "jwt"}}),
        _ => json!({"type": "signed", "upstream": {"type": "response_header", "header": RESPONSE_HEADER}}),
    };
    let jwks: Value = serde_json::from_str(JWKS).expect("data/jwks.json is JSON");
    json!({
        "realm": "api",
        "introspection": {
            "cluster": "idp", "path": "/introspect", "authority": "idp.example",
            "client_id": "gateway", "client_secret": "gateway-secret", "response": response,
        },
        "jwt": {"issuer": ISSUER, "audiences": ["api"], "jwks": {"type": "inline", "jwks": jwks}},
    })
    .to_string()
}

thread_local! {
    static ROOTS: Vec<Configured<PhantomToken>> = MODES
        .iter()
        .map(|mode| Configured::new(&config(mode)).unwrap_or_else(|e| panic!("{mode}: {e}")))
        .collect();
    static KEYS: Jwks = fixed_keys();
}

/// Mode index and the answer, or `None` for a head this format does not describe.
fn parse(data: &[u8]) -> Option<(usize, CallOutcome)> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (data.get(..at)?, data.get(at + 2..)?),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let first = std::str::from_utf8(lines.next()?).ok()?;
    let (mode, status) = first.split_once(' ')?;
    let mode = MODES.iter().position(|m| *m == mode)?;
    if status == "failed" {
        return Some((mode, CallOutcome::Failed));
    }
    let status: u16 = status.parse().ok()?;
    let mut headers = Headers::from_pairs([(":status", status.to_string())]);
    for line in lines {
        let colon = line.iter().position(|b| *b == b':')?;
        let name = std::str::from_utf8(line.get(..colon)?).ok()?.trim();
        let value = line.get(colon + 1..)?.trim_ascii();
        headers.push(name, value);
    }
    Some((
        mode,
        CallOutcome::Response {
            status,
            headers,
            body: body.to_vec(),
        },
    ))
}

fn set_header<'a>(step: &'a Step, name: &str) -> Option<&'a [u8]> {
    step.header_edits.iter().find_map(|edit| match edit {
        HeaderEdit::Set(n, value) if n.as_str() == name => Some(value.as_slice()),
        _ => None,
    })
}

/// A JWT that went upstream: from the configured issuer, signed by one of its keys.
fn verified(token: &[u8], keys: &Jwks) -> Jwt {
    let jwt = Jwt::decode(token, MAX_TOKEN_BYTES).expect("what goes upstream is a JWT");
    assert!(
        jwt.verify_jwks(keys, &NoHostCrypto).is_ok(),
        "what goes upstream verifies"
    );
    assert_eq!(jwt.issuer(), Some(ISSUER));
    jwt
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, outcome)) = parse(data) else {
        return;
    };
    let status = match &outcome {
        CallOutcome::Response { status, .. } => Some(*status),
        CallOutcome::Failed => None,
    };
    ROOTS.with(|roots| {
        let Some(root) = roots.get(mode) else {
            return;
        };
        let host = FakeHost::default();
        let mut exchange = root.filter();
        let request = Headers::from_pairs([
            (":method", "GET"),
            (":path", "/orders"),
            ("authorization", "Bearer nZ3kq0b4hX0V_opaque-token~1"),
        ]);
        let asked = exchange.on_request_headers(&request, &host.ctx());
        assert_eq!(asked.action, Action::Pause, "an uncached token is introspected");
        assert_eq!(asked.calls.len(), 1);

        let step = exchange.on_call_response(outcome, &host.ctx());
        match &step.action {
            Action::Reply(reply) => assert!([401, 502, 503].contains(&reply.status), "refused with {}", reply.status),
            Action::Continue => {
                assert_eq!(status, Some(200), "only a 200 answer lets a request through");
                let claims = step
                    .state_writes
                    .iter()
                    .find(|w| w.key == CLAIMS_STATE)
                    .expect("the claims are published");
                let claims: Value = serde_json::from_slice(&claims.value).expect("the claims are JSON");
                assert!(claims.is_object());
                KEYS.with(|keys| {
                    if MODES.get(mode) == Some(&"signed-header") {
                        assert!(step.removed_headers().iter().any(|n| n == "authorization"));
                        let response = set_header(&step, RESPONSE_HEADER).expect("the response goes upstream");
                        assert!(verified(response, keys).typ_is(SIGNED_TYP));
                    } else {
                        let bearer = set_header(&step, "authorization").expect("a bearer token goes upstream");
                        let token = bearer.strip_prefix(b"Bearer ").expect("as a bearer token");
                        assert!(!verified(token, keys).typ_is(SIGNED_TYP));
                    }
                });
            }
            other => panic!("undecided after the answer: {other:?}"),
        }
    });
});
