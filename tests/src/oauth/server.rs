//! The HTTP side of the OAuth server: routing, faults, and the token,
//! introspection and revocation endpoints.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::server::HandlerResponse;

use super::keys::{self, key_type, random_bytes};
use super::token::{b64url_encode, jws_header, mint, SigningKey, TokenSpec};
use super::{
    default_client, discovery_document, lock, now_secs, Client, ClientAuth, Fault, IntrospectionRequest, Shared,
    DISCOVERY_PATH, HTML_FAULT_BODY, HUGE_BODY_BYTES, INTROSPECT_PATH, JWKS_PATH, REGISTER_PATH, REVOKE_PATH,
    TOKEN_PATH, WRONG_SIGNATURE_KID,
};

/// Size the [`Fault::HugeJwks`] bodies reach (at least).
const HUGE_BYTES: usize = 4 * 1024 * 1024;

/// A request body larger than this is refused.
const MAX_FORM_BYTES: usize = 64 * 1024;

type Resp = HandlerResponse;

/// Decoded form parameters, in order.
type Form = Vec<(String, String)>;

/// The media type of a phantom-token introspection answer: the JWT itself.
const JWT_MEDIA_TYPE: &str = "application/jwt";

/// The media type of an RFC 9701 introspection answer.
const INTROSPECTION_JWT_MEDIA_TYPE: &str = "application/token-introspection+jwt";

/// The `typ` header of an RFC 9701 introspection answer.
const INTROSPECTION_JWT_TYP: &str = "token-introspection+jwt";

/// The representation of an introspection answer, chosen by `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnswerFormat {
    /// RFC 7662 JSON.
    Json,
    /// `application/jwt`: the (phantom) JWT, or `204` when inactive.
    Jwt,
    /// `application/token-introspection+jwt` (RFC 9701).
    SignedJson,
}

impl AnswerFormat {
    /// The first media type of the `Accept` header(s) that names one of the
    /// formats (parameters such as `q` are ignored); JSON when none does.
    fn from_accept(headers: &HeaderMap) -> AnswerFormat {
        for value in headers.get_all(ACCEPT) {
            for range in String::from_utf8_lossy(value.as_bytes()).split(',') {
                let media = range.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
                match media.as_str() {
                    JWT_MEDIA_TYPE => return AnswerFormat::Jwt,
                    INTROSPECTION_JWT_MEDIA_TYPE => return AnswerFormat::SignedJson,
                    "application/json" => return AnswerFormat::Json,
                    _ => {}
                }
            }
        }
        AnswerFormat::Json
    }

    fn media_type(self) -> &'static str {
        match self {
            AnswerFormat::Json => "application/json",
            AnswerFormat::Jwt => JWT_MEDIA_TYPE,
            AnswerFormat::SignedJson => INTROSPECTION_JWT_MEDIA_TYPE,
        }
    }
}

/// The service error that makes hyper drop the connection without writing a
/// response: how [`Fault::Down`] is served.
#[derive(Debug)]
pub(super) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected fault: connection dropped")
    }
}

impl std::error::Error for DropConnection {}

fn response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut resp = hyper::Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn json_response(status: StatusCode, body: &Value) -> Resp {
    response(status, "application/json", body.to_string())
}

/// A response without a body or a `Content-Type`.
fn empty_response(status: StatusCode) -> Resp {
    let mut resp = hyper::Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

fn with_header(mut resp: Resp, name: HeaderName, value: &'static str) -> Resp {
    resp.headers_mut().insert(name, HeaderValue::from_static(value));
    resp
}

/// Sets header `name` to `value`; the caller has checked `value` (an
/// invalid one is skipped).
fn with_dynamic_header(mut resp: Resp, name: HeaderName, value: &str) -> Resp {
    if let Ok(value) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, value);
    }
    resp
}

/// Every value of header `name`, joined with `", "`; `None` if absent.
fn header_string(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// An RFC 6749 section 5.2 error answer (`no-store`; `invalid_client` is a
/// 401 with a Basic challenge).
fn oauth_error(error: &str, description: &str) -> Resp {
    let status = if error == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut resp = json_response(status, &json!({"error": error, "error_description": description}));
    let headers = resp.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"oauth-test\""));
    }
    resp
}

fn method_not_allowed(allow: &'static str) -> Resp {
    with_header(
        json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": "method_not_allowed", "allow": allow}),
        ),
        ALLOW,
        allow,
    )
}

/// Answers one request (the [`BackgroundServer`](crate::server::BackgroundServer)
/// handler of [`OAuthServer`](super::OAuthServer)).
pub(super) async fn handle(req: hyper::Request<Incoming>, state: Shared) -> Result<Resp, DropConnection> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let fault = {
        let mut st = lock(&state);
        *st.calls.entry(path.clone()).or_default() += 1;
        st.fault_for(&path)
    };
    // Read the whole request first, so that a dropped connection is not
    // mistaken for a refusal to read the body.
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(DropConnection),
    };
    match fault {
        Fault::None => {}
        Fault::Down => return Err(DropConnection),
        Fault::Slow(delay) => tokio::time::sleep(delay).await,
        Fault::Hold(ref gate) => gate.passed().await,
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(json_response(
                status,
                &json!({"error": "injected_fault", "status": code}),
            ));
        }
        Fault::MalformedJwks => {
            return Ok(response(
                StatusCode::OK,
                "application/json",
                r#"{"keys": [{"kty": "RSA", "kid": "rsa-1", "n": "#,
            ))
        }
        Fault::HugeJwks if path == DISCOVERY_PATH => {
            let issuer = lock(&state).issuer();
            let mut doc = discovery_document(&issuer);
            doc["x_padding"] = Value::from("a".repeat(HUGE_BYTES));
            return Ok(json_response(StatusCode::OK, &doc));
        }
        Fault::HugeJwks => {
            let real = lock(&state).jwks();
            return Ok(with_header(
                response(StatusCode::OK, "application/json", huge_jwks(&real)),
                CACHE_CONTROL,
                "max-age=300",
            ));
        }
        Fault::EmptyKeys if path == DISCOVERY_PATH => {}
        Fault::EmptyKeys => {
            return Ok(with_header(
                json_response(StatusCode::OK, &json!({"keys": []})),
                CACHE_CONTROL,
                "max-age=300",
            ))
        }
        Fault::Unavailable { retry_after } => {
            let resp = json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "temporarily_unavailable", "error_description": "injected fault"}),
            );
            return Ok(match retry_after {
                Some(value) => with_dynamic_header(resp, RETRY_AFTER, &value),
                None => resp,
            });
        }
        Fault::HugeUnavailable { retry_after } => {
            let page = HTML_FAULT_BODY.repeat(HUGE_BODY_BYTES / HTML_FAULT_BODY.len() + 1);
            let resp = response(StatusCode::SERVICE_UNAVAILABLE, "text/html", page);
            return Ok(match retry_after {
                Some(value) => with_dynamic_header(resp, RETRY_AFTER, &value),
                None => resp,
            });
        }
        Fault::Html => return Ok(response(StatusCode::OK, "text/html", HTML_FAULT_BODY)),
        Fault::HugeBody => return Ok(huge_body(AnswerFormat::from_accept(&parts.headers))),
        Fault::WrongSignature => {}
    }
    let wrong_signature = fault == Fault::WrongSignature;
    let get = parts.method == Method::GET || parts.method == Method::HEAD;
    let resp = match path.as_str() {
        DISCOVERY_PATH if get => {
            let issuer = lock(&state).issuer();
            with_header(
                json_response(StatusCode::OK, &discovery_document(&issuer)),
                CACHE_CONTROL,
                "max-age=300",
            )
        }
        JWKS_PATH if get => {
            let jwks = lock(&state).jwks();
            with_header(
                response(StatusCode::OK, "application/json", jwks.to_string()),
                CACHE_CONTROL,
                "max-age=300",
            )
        }
        DISCOVERY_PATH | JWKS_PATH => method_not_allowed("GET, HEAD"),
        TOKEN_PATH | INTROSPECT_PATH | REVOKE_PATH | REGISTER_PATH if parts.method != Method::POST => {
            method_not_allowed("POST")
        }
        REGISTER_PATH => register_endpoint(&body, &state),
        TOKEN_PATH => token_endpoint(&parts.headers, &body, &state),
        INTROSPECT_PATH => introspect_endpoint(&parts.headers, &body, &state, wrong_signature),
        REVOKE_PATH => revoke_endpoint(&parts.headers, &body, &state),
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not_found", "path": path})),
    };
    Ok(resp)
}

/// `{"keys": [<published keys>, <filler keys>...]}` of at least
/// [`HUGE_BYTES`].
fn huge_jwks(real: &Value) -> Vec<u8> {
    static FILLER: OnceLock<String> = OnceLock::new();
    let filler = FILLER.get_or_init(|| {
        let mut out = String::with_capacity(HUGE_BYTES + 1024);
        // A deterministic xorshift stream for the fake moduli.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut i = 0;
        while out.len() < HUGE_BYTES {
            let mut n = [0u8; 256];
            for b in n.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x.to_le_bytes()[0];
            }
            n[0] |= 0x80;
            if i > 0 {
                out.push(',');
            }
            let key = json!({
                "kty": "RSA", "kid": format!("filler-{i:05}"), "use": "sig", "alg": "RS256",
                "n": b64url_encode(&n), "e": "AQAB",
            });
            out.push_str(&key.to_string());
            i += 1;
        }
        out
    });
    let mut body = String::with_capacity(filler.len() + 16 * 1024);
    body.push_str("{\"keys\":[");
    for key in real["keys"].as_array().into_iter().flatten() {
        body.push_str(&key.to_string());
        body.push(',');
    }
    body.push_str(filler);
    body.push_str("]}");
    body.into_bytes()
}

/// The [`Fault::HugeBody`] answer in `format`'s media type.
fn huge_body(format: AnswerFormat) -> Resp {
    let body = match format {
        AnswerFormat::Json => json!({"active": true, "x_padding": "a".repeat(HUGE_BODY_BYTES)})
            .to_string()
            .into_bytes(),
        AnswerFormat::Jwt | AnswerFormat::SignedJson => vec![b'a'; HUGE_BODY_BYTES],
    };
    response(StatusCode::OK, format.media_type(), body)
}

/// Decodes `application/x-www-form-urlencoded` (`+` is a space); `None` on a
/// bad percent escape or a parameter given twice (RFC 6749 section 3.2).
fn parse_form(body: &[u8]) -> Option<Form> {
    let mut out: Form = Vec::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (pair.get(..i)?, pair.get(i + 1..)?),
            None => (pair, &b""[..]),
        };
        let (name, value) = (form_decode(name)?, form_decode(value)?);
        if out.iter().any(|(n, _)| *n == name) {
            return None;
        }
        out.push((name, value));
    }
    Some(out)
}

fn form_decode(s: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn param<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// A request that passed client authentication.
struct Authenticated {
    /// Its form parameters.
    form: Form,
    /// The client.
    client_id: String,
    /// How the client authenticated.
    method: ClientAuth,
}

/// Checks the request framing and client authentication shared by the
/// token, introspection and revocation endpoints.
fn authenticate(headers: &HeaderMap, body: &[u8], state: &Shared) -> Result<Authenticated, Box<Resp>> {
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        let ct = String::from_utf8_lossy(ct.as_bytes()).to_ascii_lowercase();
        if ct.split(';').next().map(str::trim) != Some("application/x-www-form-urlencoded") {
            return Err(Box::new(oauth_error(
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            )));
        }
    }
    if body.len() > MAX_FORM_BYTES {
        return Err(Box::new(oauth_error("invalid_request", "request body too large")));
    }
    let Some(form) = parse_form(body) else {
        return Err(Box::new(oauth_error(
            "invalid_request",
            "malformed form body or repeated parameter",
        )));
    };
    let basic = match headers.get(AUTHORIZATION) {
        None => None,
        Some(value) => {
            let Some(creds) = parse_basic(value.as_bytes()) else {
                return Err(Box::new(oauth_error(
                    "invalid_client",
                    "unsupported or malformed Authorization header",
                )));
            };
            Some(creds)
        }
    };
    let form_secret = param(&form, "client_secret");
    let (id, secret, method) = match (basic, form_secret) {
        (Some(_), Some(_)) => {
            return Err(Box::new(oauth_error(
                "invalid_request",
                "more than one client authentication method",
            )))
        }
        (Some((id, secret)), None) => (id, secret, ClientAuth::Basic),
        (None, Some(secret)) => match param(&form, "client_id") {
            Some(id) => (id.to_owned(), secret.to_owned(), ClientAuth::Post),
            None => {
                return Err(Box::new(oauth_error(
                    "invalid_client",
                    "client_secret without client_id",
                )))
            }
        },
        (None, None) => {
            return Err(Box::new(oauth_error(
                "invalid_client",
                "client authentication required",
            )))
        }
    };
    let known = lock(state).clients.iter().any(|c| c.id == id && c.secret == secret);
    if !known {
        return Err(Box::new(oauth_error(
            "invalid_client",
            "unknown client or wrong client secret",
        )));
    }
    Ok(Authenticated {
        form,
        client_id: id,
        method,
    })
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 section
/// 2.3.1).
fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, creds) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(creds.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let id = form_decode(decoded.get(..colon)?)?;
    let secret = form_decode(decoded.get(colon + 1..)?)?;
    Some((id, secret))
}

fn token_endpoint(headers: &HeaderMap, body: &[u8], state: &Shared) -> Resp {
    let Authenticated { form, client_id, .. } = match authenticate(headers, body, state) {
        Ok(ok) => ok,
        Err(resp) => return *resp,
    };
    match param(&form, "grant_type") {
        Some("client_credentials") => {}
        None => return oauth_error("invalid_request", "missing grant_type"),
        // This server never issues codes or refresh tokens, so any presented
        // one is invalid.
        Some("authorization_code" | "refresh_token") => {
            return oauth_error("invalid_grant", "unknown authorization code or refresh token")
        }
        Some(_) => return oauth_error("unsupported_grant_type", "only client_credentials is supported"),
    }
    let mut st = lock(state);
    let allowed = st
        .clients
        .iter()
        .find(|c| c.id == client_id)
        .map(|c| c.scopes.clone())
        .unwrap_or_default();
    let requested: Vec<String> = param(&form, "scope")
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(bad) = requested.iter().find(|s| !allowed.contains(s)) {
        return oauth_error(
            "invalid_scope",
            &format!("scope {bad:?} is not allowed for this client"),
        );
    }
    let granted = if requested.is_empty() { allowed } else { requested }.join(" ");
    let iat = now_secs();
    let ttl = st.ttl;
    let mut jti = [0u8; 16];
    random_bytes(&mut jti);
    let claims = json!({
        "iss": st.issuer(),
        "sub": client_id,
        "client_id": client_id,
        "aud": st.audience,
        "scope": granted,
        "iat": iat,
        "exp": iat + ttl,
        "jti": b64url_encode(&jti),
    });
    let format = st.token_format;
    let token = st.sign_and_record(claims, format);
    drop(st);
    let resp = json_response(
        StatusCode::OK,
        &json!({"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": granted}),
    );
    with_header(with_header(resp, CACHE_CONTROL, "no-store"), PRAGMA, "no-cache")
}

/// Introspection (see the [module documentation](super) for the three
/// answer formats and their `Cache-Control`); the request is recorded once
/// the client is authenticated.
fn introspect_endpoint(headers: &HeaderMap, body: &[u8], state: &Shared, wrong_signature: bool) -> Resp {
    let Authenticated {
        form,
        client_id,
        method,
    } = match authenticate(headers, body, state) {
        Ok(ok) => ok,
        Err(resp) => return *resp,
    };
    let format = AnswerFormat::from_accept(headers);
    let mut st = lock(state);
    st.introspections.push(IntrospectionRequest {
        client_id: client_id.clone(),
        auth_method: method,
        token: param(&form, "token").unwrap_or_default().to_owned(),
        token_type_hint: param(&form, "token_type_hint").map(str::to_owned),
        accept: header_string(headers, ACCEPT),
        content_type: header_string(headers, CONTENT_TYPE),
    });
    let Some(token) = param(&form, "token") else {
        return oauth_error("invalid_request", "missing token");
    };
    let active = st.active(token).cloned();
    let issuer = st.issuer();
    let signing_kid = st.default_kid.clone();
    let cache_control = match (&st.introspection_cache_control, &active) {
        (Some(value), _) => Some(value.clone()),
        (None, Some(issued)) => issued
            .claims
            .get("exp")
            .and_then(Value::as_u64)
            .map(|exp| format!("max-age={}", exp.saturating_sub(now_secs()))),
        (None, None) => None,
    };
    drop(st);

    let jwt = active.as_ref().map(|issued| {
        if wrong_signature {
            with_wrong_signature(&issued.jwt)
        } else {
            issued.jwt.clone()
        }
    });
    let answer = match (&active, &jwt) {
        (Some(issued), Some(jwt)) => {
            let mut members = match &issued.claims {
                Value::Object(claims) => claims.clone(),
                _ => Map::new(),
            };
            members.insert("active".into(), Value::Bool(true));
            // A token issued with a `token_type` claim (e.g. `DPoP`) introspects with it.
            members.entry("token_type").or_insert_with(|| Value::from("Bearer"));
            members.insert("jwt".into(), Value::from(jwt.as_str()));
            Value::Object(members)
        }
        _ => json!({"active": false}),
    };
    let resp = match (format, jwt) {
        (AnswerFormat::Jwt, Some(jwt)) => response(StatusCode::OK, JWT_MEDIA_TYPE, jwt),
        (AnswerFormat::Jwt, None) => empty_response(StatusCode::NO_CONTENT),
        (AnswerFormat::SignedJson, _) => {
            let alg = key_type(&signing_kid).default_alg();
            let claims = json!({
                "iss": issuer,
                "aud": client_id,
                "iat": now_secs(),
                "token_introspection": answer,
            });
            let mut spec = TokenSpec::new(alg, &signing_kid)
                .claims(claims)
                .header("typ", Value::from(INTROSPECTION_JWT_TYP));
            if wrong_signature {
                spec = spec.signing_key(SigningKey::FixtureAs {
                    kid: wrong_signature_kid(&signing_kid).to_owned(),
                    alg: alg.to_owned(),
                });
            }
            response(StatusCode::OK, INTROSPECTION_JWT_MEDIA_TYPE, mint(&spec))
        }
        (AnswerFormat::Json, _) => json_response(StatusCode::OK, &answer),
    };
    match cache_control {
        Some(value) => with_dynamic_header(resp, CACHE_CONTROL, &value),
        None => resp,
    }
}

/// The key that makes a signature the key `kid` should have made fail:
/// [`WRONG_SIGNATURE_KID`], or `rsa-2` should `kid` be that very key.
fn wrong_signature_kid(kid: &str) -> &'static str {
    if kid == WRONG_SIGNATURE_KID {
        "rsa-2"
    } else {
        WRONG_SIGNATURE_KID
    }
}

/// `jwt` with the same header and payload, re-signed by the wrong key
/// ([`Fault::WrongSignature`]).
fn with_wrong_signature(jwt: &str) -> String {
    let header = jws_header(jwt);
    let alg = header["alg"].as_str().unwrap_or("RS256");
    let kid = header["kid"].as_str().unwrap_or_default();
    let (signing_input, _) = jwt.rsplit_once('.').unwrap_or((jwt, ""));
    let signature = keys::get(wrong_signature_kid(kid)).sign(alg, signing_input.as_bytes());
    format!("{signing_input}.{}", b64url_encode(&signature))
}

/// RFC 7009 revocation: `200` with an empty body whether or not the token
/// was known (the server does not check which client it was issued to).
fn revoke_endpoint(headers: &HeaderMap, body: &[u8], state: &Shared) -> Resp {
    let Authenticated { form, .. } = match authenticate(headers, body, state) {
        Ok(ok) => ok,
        Err(resp) => return *resp,
    };
    let Some(token) = param(&form, "token") else {
        return oauth_error("invalid_request", "missing token");
    };
    lock(state).issued.remove(token);
    empty_response(StatusCode::OK)
}

/// RFC 7591 dynamic client registration, open to anyone: the metadata may ask for `scope`
/// (space-separated; all of the default client's scopes when absent), `grant_types` (only
/// `client_credentials`) and `token_endpoint_auth_method` (`client_secret_basic` or
/// `client_secret_post`; either is accepted on `/token` anyway). Errors per RFC 7591 section 3.2.2.
fn register_endpoint(body: &[u8], state: &Shared) -> Resp {
    let metadata: Value = match serde_json::from_slice(body) {
        Ok(value @ Value::Object(_)) => value,
        _ => return oauth_error("invalid_client_metadata", "the body must be a JSON object"),
    };
    let scope = match metadata.get("scope") {
        None => default_client().scopes.join(" "),
        Some(Value::String(scope)) => scope.clone(),
        Some(_) => return oauth_error("invalid_client_metadata", "scope must be a string"),
    };
    let grant_types_ok = match metadata.get("grant_types") {
        None => true,
        Some(Value::Array(grants)) => grants.iter().all(|g| g == "client_credentials"),
        Some(_) => false,
    };
    if !grant_types_ok {
        return oauth_error(
            "invalid_client_metadata",
            "only the client_credentials grant is supported",
        );
    }
    let auth_method = match metadata.get("token_endpoint_auth_method") {
        None => "client_secret_basic",
        Some(method) if method == "client_secret_basic" => "client_secret_basic",
        Some(method) if method == "client_secret_post" => "client_secret_post",
        Some(_) => {
            return oauth_error(
                "invalid_client_metadata",
                "token_endpoint_auth_method must be client_secret_basic or client_secret_post",
            )
        }
    };
    let mut id = [0u8; 12];
    let mut secret = [0u8; 24];
    random_bytes(&mut id);
    random_bytes(&mut secret);
    let client = Client::new(
        &format!("client-{}", b64url_encode(&id)),
        &b64url_encode(&secret),
        &scope,
    );
    let answer = json!({
        "client_id": client.id,
        "client_secret": client.secret,
        "client_id_issued_at": now_secs(),
        "client_secret_expires_at": 0,
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": auth_method,
        "scope": client.scopes.join(" "),
    });
    lock(state).clients.push(client);
    with_header(json_response(StatusCode::CREATED, &answer), CACHE_CONTROL, "no-store")
}
