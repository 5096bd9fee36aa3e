//! One trusted issuer: its keys, its claim rules, where its tokens come from, what it outputs.

use std::cell::Cell;
use std::rc::Rc;

use base64::Engine;
use jose::{Alg, ClaimRules, Jwks, Jwt, JwtError};
use shared::route::RequestLine;
use shared::{ConfigError, Ctx, FieldPath, HashAlg, HeaderEdit, HeaderName, Headers, HostCrypto};

use crate::config::{JwksConfig, ProviderConfig};
use crate::keys::{authority_of, path_of, KeySource, RemoteKeys, RemoteSpec};
use crate::source::{Found, Source};

pub struct Provider {
    pub name: String,
    pub issuer: String,
    rules: ClaimRules,
    algorithms: Vec<Alg>,
    pub sources: Vec<Source>,
    forward: bool,
    claim_headers: Vec<(String, HeaderName)>,
    separator: String,
    payload_header: Option<HeaderName>,
    pub keys: KeySource,
}

/// What a verified token gives the request: header edits and the claims for filter state.
#[derive(Debug, Default)]
pub struct Verified {
    pub headers: Vec<(HeaderName, Vec<u8>)>,
    pub claims_json: Vec<u8>,
    /// The host's native crypto checked the signature (otherwise the wasm implementation did).
    pub by_host: bool,
}

/// Remembers whether the host answered a signature check.
struct Recorder<'a> {
    host: &'a dyn HostCrypto,
    answered: Cell<bool>,
}

impl HostCrypto for Recorder<'_> {
    fn verify(&self, hash: HashAlg, spki_der: &[u8], signature: &[u8], message: &[u8]) -> Option<bool> {
        let answer = self.host.verify(hash, spki_der, signature, message);
        self.answered.set(self.answered.get() || answer.is_some());
        answer
    }
}

/// Why a provider did not accept a request's token.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    Invalid(JwtError),
    /// No key with the token's `kid`, and the keys are remote: a refetch might find it.
    UnknownKid,
    /// Keys were never obtained.
    KeysUnavailable,
}

impl Provider {
    pub fn compile(name: &str, config: &ProviderConfig, at: &FieldPath) -> Result<Self, ConfigError> {
        let issuer_authority = authority_of(&config.issuer);
        let algorithms = match &config.algorithms {
            None => Alg::DEFAULT_ALLOWED.to_vec(),
            Some(names) => names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    Alg::parse(n).ok_or_else(|| {
                        at.field("algorithms")
                            .index(i)
                            .error(format!("{n:?} is not a supported algorithm"))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        if algorithms.is_empty() {
            return Err(at.field("algorithms").error("allow at least one algorithm"));
        }
        let keys_at = at.field("jwks");
        let hmac_algs = algorithms.iter().filter(|a| a.is_symmetric()).count();
        let keys = match &config.jwks {
            JwksConfig::Hmac { secret_base64url } => {
                if hmac_algs != algorithms.len() {
                    return Err(at
                        .field("algorithms")
                        .error("an hmac secret verifies only HS256/HS384/HS512: list only those"));
                }
                let secret_at = keys_at.field("secret_base64url");
                let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(secret_base64url.trim_end_matches('='))
                    .map_err(|_| secret_at.error("not base64url"))?;
                let keys = algorithms
                    .iter()
                    .map(|alg| jose::Jwk::hmac(shared::Secret::new(secret.clone()), *alg, None))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| secret_at.error(e.to_string()))?;
                KeySource::Static(Rc::new(Jwks::from_keys(keys)))
            }
            _ if hmac_algs > 0 => {
                return Err(at
                    .field("algorithms")
                    .error("HS256/HS384/HS512 need `jwks: {\"type\": \"hmac\"}`: public keys are never HMAC secrets"));
            }
            JwksConfig::Inline { jwks } => {
                let jwks =
                    Jwks::parse(jwks.to_string().as_bytes()).map_err(|e| keys_at.field("jwks").error(e.to_string()))?;
                if jwks.is_empty() {
                    return Err(keys_at.field("jwks").error("no usable key"));
                }
                KeySource::Static(Rc::new(jwks))
            }
            JwksConfig::Remote {
                cluster,
                path,
                authority,
                refresh_secs,
                timeout_ms,
            } => {
                if !path.starts_with('/') {
                    return Err(keys_at.field("path").error("must start with '/'"));
                }
                KeySource::Remote(Box::new(RemoteKeys::new(RemoteSpec {
                    cluster: nonempty(cluster, &keys_at.field("cluster"))?,
                    authority: authority_for(authority, &issuer_authority, &keys_at)?,
                    jwks_path: Some(path.clone()),
                    discovery_path: None,
                    refresh_secs: *refresh_secs,
                    timeout_ms: *timeout_ms,
                    store_id: store_id(name, &config.issuer),
                })))
            }
            JwksConfig::Oidc {
                cluster,
                authority,
                refresh_secs,
                timeout_ms,
            } => {
                let base = path_of(&config.issuer)
                    .ok_or_else(|| at.field("issuer").error("OIDC discovery needs an http(s) issuer URL"))?;
                KeySource::Remote(Box::new(RemoteKeys::new(RemoteSpec {
                    cluster: nonempty(cluster, &keys_at.field("cluster"))?,
                    authority: authority_for(authority, &issuer_authority, &keys_at)?,
                    jwks_path: None,
                    discovery_path: Some(format!(
                        "{}/.well-known/openid-configuration",
                        base.trim_end_matches('/')
                    )),
                    refresh_secs: *refresh_secs,
                    timeout_ms: *timeout_ms,
                    store_id: store_id(name, &config.issuer),
                })))
            }
        };
        if config.from.is_empty() {
            return Err(at.field("from").error("give at least one token source"));
        }
        let sources = config
            .from
            .iter()
            .enumerate()
            .map(|(i, s)| Source::compile(s, &at.field("from").index(i)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: name.to_owned(),
            issuer: config.issuer.clone(),
            rules: ClaimRules {
                issuer: Some(config.issuer.clone()),
                audiences: config.audiences.clone(),
                clock_skew_secs: config.clock_skew_secs,
                max_lifetime_secs: config.max_lifetime_secs,
                required_claims: config.required_claims.clone(),
                require_exp: true,
                allowed_typ: config.typ.clone(),
            },
            algorithms,
            sources,
            forward: config.forward,
            claim_headers: config
                .claims_to_headers
                .iter()
                .map(|c| (c.claim.clone(), c.header.clone()))
                .collect(),
            separator: config.array_separator.clone(),
            payload_header: config.payload_header.clone(),
            keys,
        })
    }

    /// Every header this provider sets: a client's copies are removed from every request.
    pub fn output_headers(&self) -> impl Iterator<Item = &HeaderName> {
        self.claim_headers
            .iter()
            .map(|(_, h)| h)
            .chain(self.payload_header.iter())
    }

    /// The token this provider would check, from its first source that has one.
    pub fn find_token<'a>(&self, headers: &'a Headers, line: &RequestLine<'a>) -> Found<'a> {
        for source in &self.sources {
            match source.find(headers, line) {
                Found::None => continue,
                found => return found,
            }
        }
        Found::None
    }

    /// Edits that remove the token, if the provider does not forward it.
    pub fn strip_token(&self, headers: &Headers, line: &RequestLine<'_>) -> Vec<HeaderEdit> {
        if self.forward {
            return Vec::new();
        }
        self.sources.iter().flat_map(|s| s.strip(headers, line)).collect()
    }

    /// The keys and their version, if there are any.
    pub fn current_keys(&self, ctx: &Ctx) -> Option<(Rc<Jwks>, u64)> {
        match &self.keys {
            KeySource::Static(jwks) => Some((Rc::clone(jwks), 0)),
            KeySource::Remote(remote) => remote.current(ctx.store),
        }
    }

    /// Checks a token completely: structure, algorithm, signature, claims.
    pub fn verify(&self, jwt: &Jwt, keys: &Jwks, ctx: &Ctx) -> Result<Verified, Rejection> {
        if !self.algorithms.contains(&jwt.alg()) {
            return Err(Rejection::Invalid(JwtError::AlgNotAllowed));
        }
        let mut candidates = keys.candidates(jwt.kid(), jwt.alg()).peekable();
        if candidates.peek().is_none() {
            return Err(match self.keys {
                KeySource::Remote(_) => Rejection::UnknownKid,
                KeySource::Static(_) => Rejection::Invalid(JwtError::KeyNotFound),
            });
        }
        let crypto = Recorder {
            host: ctx.crypto,
            answered: Cell::new(false),
        };
        let mut last = JwtError::BadSignature;
        if !candidates.any(|key| jwt.verify(key, &crypto).map_err(|e| last = e).is_ok()) {
            return Err(Rejection::Invalid(last));
        }
        jwt.validate_claims(&self.rules, ctx.now_secs())
            .map_err(Rejection::Invalid)?;
        Ok(Verified {
            by_host: crypto.answered.get(),
            ..self.outputs(jwt)
        })
    }

    fn outputs(&self, jwt: &Jwt) -> Verified {
        let claims = jwt.claims();
        let mut headers = Vec::new();
        for (claim, header) in &self.claim_headers {
            if let Some(value) = claims.get(claim).and_then(|v| header_value(v, &self.separator)) {
                headers.push((header.clone(), value));
            }
        }
        if let Some(header) = &self.payload_header {
            headers.push((header.clone(), jwt.payload_b64().as_bytes().to_vec()));
        }
        let claims_json = serde_json::to_vec(claims).unwrap_or_default();
        Verified {
            headers,
            claims_json,
            by_host: false,
        }
    }
}

/// The cache key of a token: its SHA-256, never the token itself.
pub fn token_key(token: &[u8]) -> [u8; 32] {
    shared::Secret::new(token).sha256()
}

/// A claim as a header value: strings, numbers and booleans as text, arrays of those joined.
/// Objects, nulls and anything with control characters are not turned into headers.
fn header_value(value: &serde_json::Value, separator: &str) -> Option<Vec<u8>> {
    use serde_json::Value;
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let text = match value {
        Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>()?.join(separator),
        other => scalar(other)?,
    };
    if text.bytes().any(|b| b < b' ' && b != b'\t' || b == 0x7f) {
        return None;
    }
    Some(text.into_bytes())
}

fn nonempty(value: &str, at: &FieldPath) -> Result<String, ConfigError> {
    if value.is_empty() {
        Err(at.error("must not be empty"))
    } else {
        Ok(value.to_owned())
    }
}

fn authority_for(configured: &Option<String>, issuer: &Option<String>, at: &FieldPath) -> Result<String, ConfigError> {
    configured.clone().or_else(|| issuer.clone()).ok_or_else(|| {
        at.field("authority")
            .error("the issuer is not a URL: give the authority to fetch keys from")
    })
}

fn store_id(provider: &str, issuer: &str) -> String {
    let digest = shared::Secret::new(format!("{provider}\n{issuer}")).fingerprint();
    format!("{provider}.{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn claims_become_header_values() {
        let v = |json: &str| header_value(&serde_json::from_str(json).unwrap(), ",");
        assert_eq!(v(r#""alice""#), Some(b"alice".to_vec()));
        assert_eq!(v("42"), Some(b"42".to_vec()));
        assert_eq!(v("true"), Some(b"true".to_vec()));
        assert_eq!(v(r#"["a", "b", 3]"#), Some(b"a,b,3".to_vec()));
        assert_eq!(v(r#"{"a": 1}"#), None);
        assert_eq!(v("null"), None);
        assert_eq!(v(r#"["a", {"b": 1}]"#), None);
        assert_eq!(v(r#""evil\r\nx-admin: 1""#), None);
    }
}
