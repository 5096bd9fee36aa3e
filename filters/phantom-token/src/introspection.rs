//! The introspection request (RFC 7662 section 2.1) and what its answer says, before any JWT in
//! it is verified.

use std::time::Duration;

use base64::Engine;
use shared::{CallOutcome, ConfigError, FieldPath, HeaderName, Headers, HttpCall, Secret};

use crate::config::{ClientAuth, IntrospectionConfig, ResponseConfig};

/// Larger answers are never read whole by the host adapter either.
const MAX_RESPONSE_BYTES: usize = 512 * 1024;
/// A `Retry-After` from the OAuth server is passed on, capped at this.
const MAX_RETRY_AFTER_SECS: u64 = 300;

const JWT_MEDIA: &str = "application/jwt";
const JSON_MEDIA: &str = "application/json";
pub const SIGNED_MEDIA: &str = "application/token-introspection+jwt";

/// Which of the three answer formats the OAuth server speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Jwt,
    Json { field: String },
    Signed,
}

pub struct Introspector {
    cluster: String,
    path: String,
    authority: String,
    client_id: String,
    client_secret: Secret,
    client_auth: ClientAuth,
    token_type_hint: Option<String>,
    timeout: Duration,
    max_response_bytes: usize,
    pub mode: Mode,
}

/// How long the OAuth server lets an answer be reused (`Cache-Control`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Freshness {
    /// `no-store`, `no-cache`, or an unusable `max-age`: never reuse.
    pub forbidden: bool,
    pub max_age_secs: Option<u64>,
}

/// The opaque token's own validity, from its RFC 7662 object (`exp`, `nbf`, seconds since the
/// epoch, and whether it is a bearer token at all); in `jwt` mode the OAuth server sends none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifetime {
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    /// Whether the token is bound to its holder, and how (`cnf`, `token_type` `DPoP`).
    pub binding: jose::Binding,
}

impl Lifetime {
    fn of(object: &serde_json::Value) -> Result<Self, Failure> {
        let date = |name| match object.get(name) {
            None => Ok(None),
            Some(value) => jose::numeric_date_secs(value).map(Some).ok_or(Failure::Malformed),
        };
        Ok(Self {
            exp: date("exp")?,
            nbf: date("nbf")?,
            binding: object.as_object().map_or(jose::Binding::Bearer, jose::Binding::of),
        })
    }

    /// Whether the token has expired, or is not valid yet, at `now_secs`, allowing `skew_secs`
    /// (as a JWT's `exp` and `nbf` are read).
    pub fn is_over(&self, now_secs: u64, skew_secs: u64) -> bool {
        self.exp.is_some_and(|exp| now_secs >= exp.saturating_add(skew_secs))
            || self.nbf.is_some_and(|nbf| now_secs.saturating_add(skew_secs) < nbf)
    }
}

/// What a usable answer says.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Inactive(Freshness),
    /// A JWT to verify and forward (modes `jwt` and `json`), and the opaque token's lifetime.
    Token(String, Lifetime, Freshness),
    /// An RFC 9701 response, to verify before reading (mode `signed`).
    Signed(String, Freshness),
}

/// Why an answer is unusable. Each kind has a counter `introspection_error_<kind>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The OAuth server said 503 or 429.
    Unavailable {
        retry_after_secs: Option<u64>,
    },
    /// Timeout (or a 504), refused or reset connection: no answer from the OAuth server.
    Unreachable,
    /// Any other status than the mode's success statuses.
    Status(u16),
    /// Not the format the mode expects.
    Malformed,
    Oversized,
    /// A JWT in the answer did not verify.
    InvalidJwt,
    /// No keys to verify the answer with.
    KeysUnavailable,
}

impl Failure {
    pub const KINDS: &'static [&'static str] = &[
        "unavailable",
        "unreachable",
        "status",
        "malformed",
        "oversized",
        "invalid_jwt",
        "keys_unavailable",
    ];

    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Unavailable { .. } => "unavailable",
            Failure::Unreachable => "unreachable",
            Failure::Status(_) => "status",
            Failure::Malformed => "malformed",
            Failure::Oversized => "oversized",
            Failure::InvalidJwt => "invalid_jwt",
            Failure::KeysUnavailable => "keys_unavailable",
        }
    }
}

impl Introspector {
    pub fn compile(config: &IntrospectionConfig, at: &FieldPath) -> Result<Self, ConfigError> {
        let nonempty = |value: &str, field: &str| shared::config::nonempty(value, &at.field(field));
        shared::config::call_path(&config.path, &at.field("path"))?;
        shared::config::call_authority(&config.authority, &at.field("authority"))?;
        let timeout = shared::config::call_timeout(config.timeout_ms, &at.field("timeout_ms"))?;
        if config.max_response_bytes == 0 || config.max_response_bytes > MAX_RESPONSE_BYTES {
            return Err(at
                .field("max_response_bytes")
                .error(format!("must be between 1 and {MAX_RESPONSE_BYTES}")));
        }
        let mode = match &config.response {
            ResponseConfig::Jwt {} => Mode::Jwt,
            ResponseConfig::Json { field } if field.is_empty() => {
                return Err(at.field("response").field("field").error("must not be empty"))
            }
            ResponseConfig::Json { field } => Mode::Json { field: field.clone() },
            ResponseConfig::Signed { .. } => Mode::Signed,
        };
        Ok(Self {
            cluster: nonempty(&config.cluster, "cluster")?,
            path: config.path.clone(),
            authority: config.authority.clone(),
            client_id: nonempty(&config.client_id, "client_id")?,
            client_secret: Secret::new(config.client_secret.as_bytes()),
            client_auth: config.client_auth,
            token_type_hint: config
                .token_type_hint
                .as_deref()
                .map(|hint| nonempty(hint, "token_type_hint"))
                .transpose()?,
            timeout,
            max_response_bytes: config.max_response_bytes,
            mode,
        })
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `POST` with a form body; the client authenticates as configured.
    pub fn request(&self, token: &[u8]) -> HttpCall {
        let mut form = format!("token={}", form_encode(token));
        if let Some(hint) = &self.token_type_hint {
            form.push_str(&format!("&token_type_hint={}", form_encode(hint.as_bytes())));
        }
        let accept = match self.mode {
            Mode::Jwt => JWT_MEDIA,
            Mode::Json { .. } => JSON_MEDIA,
            Mode::Signed => SIGNED_MEDIA,
        };
        let mut headers = vec![
            (HeaderName::trusted(":method"), b"POST".to_vec()),
            (HeaderName::trusted(":path"), self.path.as_bytes().to_vec()),
            (HeaderName::trusted(":authority"), self.authority.as_bytes().to_vec()),
            (
                HeaderName::trusted("content-type"),
                b"application/x-www-form-urlencoded".to_vec(),
            ),
            (HeaderName::trusted("accept"), accept.as_bytes().to_vec()),
        ];
        let id = form_encode(self.client_id.as_bytes());
        let secret = form_encode(self.client_secret.expose());
        match self.client_auth {
            ClientAuth::ClientSecretBasic => {
                let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
                headers.push((
                    HeaderName::trusted("authorization"),
                    format!("Basic {credentials}").into_bytes(),
                ));
            }
            ClientAuth::ClientSecretPost => form.push_str(&format!("&client_id={id}&client_secret={secret}")),
        }
        HttpCall {
            cluster: self.cluster.clone(),
            headers,
            body: Some(form.into_bytes()),
            timeout: self.timeout,
        }
    }

    /// What the answer says, or why it is unusable.
    pub fn read(&self, outcome: CallOutcome) -> Result<Reply, Failure> {
        let CallOutcome::Response { status, headers, body } = outcome else {
            return Err(Failure::Unreachable);
        };
        // The status first: an outage is an outage whatever its body (an error page can be big),
        // and only a success's body is read.
        match (status, &self.mode) {
            (200, _) | (204, Mode::Jwt) => {}
            // RFC 6585 section 4: 429 asks its client to come back later, as 503 does.
            (429 | 503, _) => {
                return Err(Failure::Unavailable {
                    retry_after_secs: retry_after(&headers),
                })
            }
            // Envoy answers a call that timed out with its own 504.
            (504, _) => return Err(Failure::Unreachable),
            (status, _) => return Err(Failure::Status(status)),
        }
        if body.len() > self.max_response_bytes {
            return Err(Failure::Oversized);
        }
        let freshness = freshness(&headers);
        if status == 204 {
            return Ok(Reply::Inactive(freshness));
        }
        match &self.mode {
            Mode::Jwt => compact_jws(&body).map(|jwt| Reply::Token(jwt, Lifetime::default(), freshness)),
            Mode::Signed => compact_jws(&body).map(|jwt| Reply::Signed(jwt, freshness)),
            Mode::Json { field } => {
                // Strict: `{"active": false, "active": true}` must not read as whichever came last.
                let answer = jose::parse_object(&body).map_err(|_| Failure::Malformed)?;
                match read_introspection(&serde_json::Value::Object(answer), field)? {
                    Some((jwt, lifetime)) => Ok(Reply::Token(jwt, lifetime, freshness)),
                    None => Ok(Reply::Inactive(freshness)),
                }
            }
        }
    }
}

/// An RFC 7662 object: `None` when inactive, else the JWT in `field` and the token's lifetime.
pub fn read_introspection(answer: &serde_json::Value, field: &str) -> Result<Option<(String, Lifetime)>, Failure> {
    match read_active(answer)? {
        None => Ok(None),
        Some(lifetime) => answer
            .get(field)
            .and_then(|v| v.as_str())
            .ok_or(Failure::Malformed)
            .and_then(|jwt| compact_jws(jwt.as_bytes()))
            .map(|jwt| Some((jwt, lifetime))),
    }
}

/// An RFC 7662 object's `active`: `None` when inactive, else the token's lifetime. An active
/// token whose `token_type` says it is no access token (a refresh token) is inactive for this
/// filter.
pub fn read_active(answer: &serde_json::Value) -> Result<Option<Lifetime>, Failure> {
    match answer.get("active") {
        Some(serde_json::Value::Bool(false)) => Ok(None),
        Some(serde_json::Value::Bool(true)) => match answer.get("token_type") {
            None => Lifetime::of(answer).map(Some),
            Some(serde_json::Value::String(token_type)) if is_access_token_type(token_type) => {
                Lifetime::of(answer).map(Some)
            }
            Some(serde_json::Value::String(_)) => Ok(None),
            Some(_) => Err(Failure::Malformed),
        },
        _ => Err(Failure::Malformed),
    }
}

/// RFC 7662 section 2.2 `token_type` values that name an access token: the RFC 6749 section 7.1
/// types `Bearer` and `DPoP` (RFC 9449 section 7.1; a bound token is refused for that later), the
/// RFC 7009 `token_type_hint` spelling some servers answer with, and the RFC 8693 section 3 URI.
/// Anything else (`refresh_token`, `Refresh`, `id_token`, ...) is not a token this filter
/// forwards. Compared case-insensitively (RFC 6749 section 5.1).
fn is_access_token_type(token_type: &str) -> bool {
    [
        "Bearer",
        "DPoP",
        "access_token",
        "urn:ietf:params:oauth:token-type:access_token",
    ]
    .iter()
    .any(|known| token_type.eq_ignore_ascii_case(known))
}

/// The body as a compact JWS (three base64url segments), surrounding whitespace ignored.
fn compact_jws(body: &[u8]) -> Result<String, Failure> {
    let text = std::str::from_utf8(body).map_err(|_| Failure::Malformed)?.trim();
    let segments: Vec<&str> = text.split('.').collect();
    let base64url = |s: &&str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if segments.len() == 3 && segments.iter().all(base64url) {
        Ok(text.to_owned())
    } else {
        Err(Failure::Malformed)
    }
}

/// `application/x-www-form-urlencoded`: unreserved bytes as they are, everything else `%XX`.
fn form_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `Cache-Control` directives that matter here (RFC 9111 section 5.2.2), over every
/// `Cache-Control` header of the answer.
fn freshness(headers: &Headers) -> Freshness {
    let mut freshness = Freshness::default();
    for directive in headers.get_all("cache-control").flat_map(shared::headers::split_list) {
        let directive = String::from_utf8_lossy(directive).to_ascii_lowercase();
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name.trim().to_owned(), Some(value.trim().trim_matches('"').to_owned())),
            None => (directive.trim().to_owned(), None),
        };
        match (name.as_str(), value) {
            ("no-store" | "no-cache", _) => freshness.forbidden = true,
            ("max-age", Some(value)) => match value.parse::<u64>() {
                Ok(secs) => {
                    freshness.max_age_secs = Some(freshness.max_age_secs.map_or(secs, |known| known.min(secs)));
                }
                Err(_) => freshness.forbidden = true,
            },
            ("max-age", None) => freshness.forbidden = true,
            _ => {}
        }
    }
    freshness
}

/// `Retry-After` in delta-seconds (an HTTP-date is not passed on), capped.
fn retry_after(headers: &Headers) -> Option<u64> {
    let value = headers.get_str("retry-after")?.trim();
    value.parse::<u64>().ok().map(|secs| secs.min(MAX_RETRY_AFTER_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::answer;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    const JWT: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2ln";

    fn introspector(response: serde_json::Value, auth: &str) -> Introspector {
        let config: IntrospectionConfig = shared::config::parse(
            json!({
                "cluster": "idp", "path": "/introspect", "authority": "idp.example",
                "client_id": "gate way", "client_secret": "s3cr:t&=", "client_auth": auth,
                "token_type_hint": "access_token", "response": response,
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        Introspector::compile(&config, &FieldPath::root()).unwrap()
    }

    fn header<'a>(call: &'a HttpCall, name: &str) -> Option<&'a str> {
        call.headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| std::str::from_utf8(v).unwrap())
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_request_is_a_form_post_with_client_secret_basic() {
        let call = introspector(json!({"type": "jwt"}), "client_secret_basic").request(b"a+b/c=");
        assert_eq!(header(&call, ":method"), Some("POST"));
        assert_eq!(header(&call, ":path"), Some("/introspect"));
        assert_eq!(header(&call, ":authority"), Some("idp.example"));
        assert_eq!(header(&call, "accept"), Some("application/jwt"));
        assert_eq!(header(&call, "content-type"), Some("application/x-www-form-urlencoded"));
        // RFC 6749 section 2.3.1: id and secret are form-encoded before base64.
        let basic = base64::engine::general_purpose::STANDARD.encode("gate%20way:s3cr%3At%26%3D");
        assert_eq!(header(&call, "authorization"), Some(format!("Basic {basic}").as_str()));
        assert_eq!(
            call.body.as_deref(),
            Some(&b"token=a%2Bb%2Fc%3D&token_type_hint=access_token"[..])
        );
        assert_eq!(call.cluster, "idp");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn client_secret_post_puts_the_credentials_in_the_form() {
        let call = introspector(json!({"type": "json", "field": "jwt"}), "client_secret_post").request(b"tok");
        assert_eq!(header(&call, "authorization"), None);
        assert_eq!(header(&call, "accept"), Some("application/json"));
        assert_eq!(
            call.body.as_deref(),
            Some(&b"token=tok&token_type_hint=access_token&client_id=gate%20way&client_secret=s3cr%3At%26%3D"[..])
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn jwt_mode_answers() {
        let i = introspector(json!({"type": "jwt"}), "client_secret_basic");
        let fresh = |max_age| Freshness {
            forbidden: false,
            max_age_secs: max_age,
        };
        assert_eq!(
            i.read(answer(200, &[("cache-control", "public, max-age=60")], JWT)),
            Ok(Reply::Token(JWT.into(), Lifetime::default(), fresh(Some(60))))
        );
        assert_eq!(i.read(answer(204, &[], "")), Ok(Reply::Inactive(fresh(None))));
        assert_eq!(i.read(answer(200, &[], "<html>")), Err(Failure::Malformed));
        assert_eq!(i.read(answer(200, &[], "a.b")), Err(Failure::Malformed));
        assert_eq!(i.read(answer(200, &[], "a.b.c+")), Err(Failure::Malformed));
        assert_eq!(
            i.read(answer(503, &[("retry-after", "7")], "")),
            Err(Failure::Unavailable {
                retry_after_secs: Some(7)
            })
        );
        assert_eq!(
            i.read(answer(503, &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")], "")),
            Err(Failure::Unavailable { retry_after_secs: None })
        );
        assert_eq!(
            i.read(answer(503, &[("retry-after", "86400")], "")),
            Err(Failure::Unavailable {
                retry_after_secs: Some(300)
            })
        );
        for status in [500, 502, 401, 400, 404, 301, 201] {
            assert_eq!(i.read(answer(status, &[], JWT)), Err(Failure::Status(status)));
        }
        assert_eq!(i.read(CallOutcome::Failed), Err(Failure::Unreachable));
        assert_eq!(
            i.read(answer(504, &[], "upstream request timeout")),
            Err(Failure::Unreachable)
        );
        let huge = "a".repeat(64 * 1024 + 1);
        assert_eq!(i.read(answer(200, &[], &huge)), Err(Failure::Oversized));
        assert_eq!(i.read(answer(204, &[], &huge)), Err(Failure::Oversized));
    }

    /// The status is judged before the body's size: an overloaded OAuth server's big error page
    /// is still an outage (503, its `Retry-After` passed on), not a bad answer.
    #[wasm_bindgen_test(unsupported = test)]
    fn an_oversized_error_answer_is_judged_by_its_status() {
        let huge = "<html>".repeat(64 * 1024);
        for response in [
            json!({"type": "jwt"}),
            json!({"type": "json", "field": "jwt"}),
            json!({"type": "signed", "upstream": {"type": "jwt_field", "field": "jwt"}}),
        ] {
            let i = introspector(response.clone(), "client_secret_basic");
            assert_eq!(
                i.read(answer(503, &[("retry-after", "7")], &huge)),
                Err(Failure::Unavailable {
                    retry_after_secs: Some(7)
                }),
                "{response}"
            );
            assert_eq!(i.read(answer(504, &[], &huge)), Err(Failure::Unreachable), "{response}");
            assert_eq!(i.read(answer(500, &[], &huge)), Err(Failure::Status(500)), "{response}");
            assert_eq!(i.read(answer(200, &[], &huge)), Err(Failure::Oversized), "{response}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn json_mode_answers() {
        let i = introspector(json!({"type": "json", "field": "jwt"}), "client_secret_basic");
        let read = |body: serde_json::Value| i.read(answer(200, &[], &body.to_string()));
        assert_eq!(
            read(json!({"active": true, "jwt": JWT})),
            Ok(Reply::Token(JWT.into(), Lifetime::default(), Freshness::default()))
        );
        assert_eq!(
            read(json!({"active": false})),
            Ok(Reply::Inactive(Freshness::default()))
        );
        assert_eq!(read(json!({"active": true})), Err(Failure::Malformed), "no JWT");
        assert_eq!(read(json!({"active": true, "jwt": 3})), Err(Failure::Malformed));
        assert_eq!(read(json!({"active": true, "jwt": "opaque"})), Err(Failure::Malformed));
        assert_eq!(read(json!({"active": "true", "jwt": JWT})), Err(Failure::Malformed));
        assert_eq!(read(json!({"jwt": JWT})), Err(Failure::Malformed));
        for access in [
            "Bearer",
            "BEARER",
            "DPoP",
            "access_token",
            "urn:ietf:params:oauth:token-type:access_token",
        ] {
            assert!(
                matches!(
                    read(json!({"active": true, "token_type": access, "jwt": JWT})),
                    Ok(Reply::Token(..))
                ),
                "{access}"
            );
        }
        for other in ["refresh_token", "Refresh", "id_token", "N_A", ""] {
            assert_eq!(
                read(json!({"active": true, "token_type": other, "jwt": JWT})),
                Ok(Reply::Inactive(Freshness::default())),
                "{other}"
            );
        }
        assert_eq!(
            read(json!({"active": true, "token_type": ["Bearer"], "jwt": JWT})),
            Err(Failure::Malformed)
        );
        assert_eq!(i.read(answer(204, &[], "")), Err(Failure::Status(204)));
        assert_eq!(i.read(answer(200, &[], "{")), Err(Failure::Malformed));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn cache_control_is_read_over_every_header() {
        let f = |values: &[&str]| {
            let mut h = Headers::new();
            for v in values {
                h.push("cache-control", v.as_bytes());
            }
            freshness(&h)
        };
        assert_eq!(f(&[]), Freshness::default());
        assert_eq!(f(&["max-age=30"]).max_age_secs, Some(30));
        assert_eq!(f(&["max-age=30", "max-age=10"]).max_age_secs, Some(10));
        assert_eq!(f(&["Max-Age=\"20\", private"]).max_age_secs, Some(20));
        assert!(f(&["no-store"]).forbidden);
        assert!(f(&["max-age=60, no-cache"]).forbidden);
        assert!(f(&["max-age=-1"]).forbidden);
        assert!(f(&["max-age"]).forbidden);
        assert!(!f(&["public, must-revalidate"]).forbidden);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn bad_configs_name_the_field() {
        let compile = |patch: serde_json::Value| {
            let mut config = json!({
                "cluster": "idp", "path": "/introspect", "authority": "idp.example",
                "client_id": "gw", "client_secret": "s", "response": {"type": "jwt"},
            });
            for (k, v) in patch.as_object().unwrap() {
                config[k] = v.clone();
            }
            let config: IntrospectionConfig = shared::config::parse(config.to_string().as_bytes()).unwrap();
            Introspector::compile(&config, &FieldPath::root().field("introspection"))
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(compile(json!({})), None);
        assert!(compile(json!({"path": "introspect"}))
            .unwrap()
            .starts_with("introspection.path:"));
        assert!(compile(json!({"cluster": ""}))
            .unwrap()
            .starts_with("introspection.cluster:"));
        for authority in ["", "idp example", "user@idp.example", "idp.example/introspect"] {
            assert!(compile(json!({ "authority": authority }))
                .unwrap()
                .starts_with("introspection.authority:"));
        }
        assert!(compile(json!({"timeout_ms": 0}))
            .unwrap()
            .starts_with("introspection.timeout_ms:"));
        assert_eq!(
            compile(json!({"timeout_ms": 60_001})),
            Some("introspection.timeout_ms: must be between 1 and 60000".to_owned())
        );
        assert!(compile(json!({"max_response_bytes": 1 << 20}))
            .unwrap()
            .starts_with("introspection.max_response_bytes:"));
        assert!(compile(json!({"response": {"type": "json", "field": ""}}))
            .unwrap()
            .starts_with("introspection.response.field:"));
    }
}
