//! Compact-JWS tokens made to order: [`TokenSpec`] describes the header, the
//! payload and how the signature bytes are produced, and [`mint`] writes
//! exactly that, however wrong it is.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::keys;

/// How the signature part of a minted token is produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningKey {
    /// The fixture key with this kid (`tests/fixtures/keys/<kid>.pk8.der`).
    /// RSA keys sign with the algorithm the header `alg` names when it is one
    /// of RS256/384/512 or PS256/384/512 (matched case-insensitively, so
    /// `"rs256"` produces a valid RS256 signature), else RS256; P-256 keys
    /// sign ES256, P-384 keys ES384 and Ed25519 keys EdDSA, whatever `alg`
    /// says.
    Fixture(String),
    /// The fixture key `kid`, signing with algorithm `alg` whatever the
    /// header says (e.g. a PS256 signature under an `RS256` header).
    FixtureAs {
        /// The fixture key.
        kid: String,
        /// The algorithm actually used, chosen as for [`SigningKey::Fixture`].
        alg: String,
    },
    /// HMAC with this secret; the hash is SHA-384 or SHA-512 when the header
    /// `alg` ends in `384` or `512`, else SHA-256. (The classic confusion
    /// attack: `Hmac(server.public_key_pem("rsa-1").into_bytes())`.)
    Hmac(Vec<u8>),
    /// An empty signature part (`header.payload.`).
    None,
    /// Exactly these signature bytes (base64url-encoded into the token).
    Raw(Vec<u8>),
}

/// Everything that goes into a minted token. Nothing is validated: the
/// header and payload are serialised as given.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSpec {
    /// Written into the header verbatim: `"RS256"`, `"none"`, `"HS256"`,
    /// `"rs256"`...
    pub alg: String,
    /// The header `kid`, if any (it may name a key that does not exist).
    pub kid: Option<String>,
    /// What produces the signature bytes.
    pub signing_key: SigningKey,
    /// More header members (`typ`, `crit`, `jku`...), written after `alg`
    /// and `kid`; an `alg` or `kid` here replaces the one above.
    pub header_extra: Map<String, Value>,
    /// The payload, serialised as given (it need not be an object).
    pub claims: Value,
    /// Exact header bytes (before base64url), overriding `alg`, `kid` and
    /// `header_extra`: for duplicate members, bad JSON, odd whitespace.
    pub raw_header: Option<Vec<u8>>,
    /// Exact payload bytes (before base64url), overriding `claims`.
    pub raw_payload: Option<Vec<u8>>,
}

impl TokenSpec {
    /// Header `{"alg": alg, "kid": kid, "typ": "JWT"}`, signed by the fixture
    /// key `kid`, with an empty claims object (fill it with
    /// [`TokenSpec::claims`], e.g. from
    /// [`OAuthServer::claims`](super::OAuthServer::claims)).
    pub fn new(alg: &str, kid: &str) -> TokenSpec {
        let mut header_extra = Map::new();
        header_extra.insert("typ".into(), Value::from("JWT"));
        TokenSpec {
            alg: alg.to_owned(),
            kid: Some(kid.to_owned()),
            signing_key: SigningKey::Fixture(kid.to_owned()),
            header_extra,
            claims: Value::Object(Map::new()),
            raw_header: None,
            raw_payload: None,
        }
    }

    /// Replaces the payload.
    pub fn claims(mut self, claims: Value) -> TokenSpec {
        self.claims = claims;
        self
    }

    /// Replaces the header `kid` (`None` drops it), keeping the signing key.
    pub fn kid(mut self, kid: Option<&str>) -> TokenSpec {
        self.kid = kid.map(str::to_owned);
        self
    }

    /// Replaces the signing key.
    pub fn signing_key(mut self, key: SigningKey) -> TokenSpec {
        self.signing_key = key;
        self
    }

    /// Sets the `raw_header` field: exact header bytes, for duplicate members,
    /// bad JSON, odd whitespace.
    pub fn raw_header(mut self, raw: &[u8]) -> TokenSpec {
        self.raw_header = Some(raw.to_vec());
        self
    }

    /// Sets the `raw_payload` field: exact payload bytes.
    pub fn raw_payload(mut self, raw: &[u8]) -> TokenSpec {
        self.raw_payload = Some(raw.to_vec());
        self
    }

    /// Sets (or, with `Value::Null`, removes) one extra header member.
    pub fn header(mut self, name: &str, value: Value) -> TokenSpec {
        if value.is_null() {
            self.header_extra.remove(name);
        } else {
            self.header_extra.insert(name.to_owned(), value);
        }
        self
    }

    /// The header JSON object this spec writes (ignoring `raw_header`).
    pub fn header_json(&self) -> Value {
        let mut header = Map::new();
        header.insert("alg".into(), Value::from(self.alg.as_str()));
        if let Some(kid) = &self.kid {
            header.insert("kid".into(), Value::from(kid.as_str()));
        }
        for (k, v) in &self.header_extra {
            header.insert(k.clone(), v.clone());
        }
        Value::Object(header)
    }
}

/// Base64url without padding (RFC 7515 section 2).
pub fn b64url_encode(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Decodes unpadded base64url.
///
/// # Panics
/// If `s` is not valid unpadded base64url; the message quotes it.
pub fn b64url_decode(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(s)
        .unwrap_or_else(|e| panic!("not unpadded base64url ({e}): {s:?}"))
}

/// The three parts of a compact JWS, each base64url-decoded.
///
/// # Panics
/// If `token` does not have exactly three dot-separated base64url parts.
pub fn jws_parts(token: &str) -> [Vec<u8>; 3] {
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        panic!("not a compact JWS (expected 3 dot-separated parts): {token:?}");
    };
    [b64url_decode(h), b64url_decode(p), b64url_decode(s)]
}

/// The decoded header of a compact JWS, as JSON.
///
/// # Panics
/// If the token is malformed or the header is not JSON.
pub fn jws_header(token: &str) -> Value {
    let [h, _, _] = jws_parts(token);
    serde_json::from_slice(&h).unwrap_or_else(|e| panic!("JWS header is not JSON ({e}): {token:?}"))
}

/// The decoded payload of a compact JWS, as JSON.
///
/// # Panics
/// If the token is malformed or the payload is not JSON.
pub fn jws_claims(token: &str) -> Value {
    let [_, p, _] = jws_parts(token);
    serde_json::from_slice(&p).unwrap_or_else(|e| panic!("JWS payload is not JSON ({e}): {token:?}"))
}

/// Writes the compact JWS `spec` describes.
///
/// # Panics
/// If the spec names a fixture key that does not exist.
pub fn mint(spec: &TokenSpec) -> String {
    let header = match &spec.raw_header {
        Some(raw) => raw.clone(),
        None => spec.header_json().to_string().into_bytes(),
    };
    let payload = match &spec.raw_payload {
        Some(raw) => raw.clone(),
        None => spec.claims.to_string().into_bytes(),
    };
    let signing_input = format!("{}.{}", b64url_encode(&header), b64url_encode(&payload));
    let signature = match &spec.signing_key {
        SigningKey::Fixture(kid) => keys::get(kid).sign(&spec.alg, signing_input.as_bytes()),
        SigningKey::FixtureAs { kid, alg } => keys::get(kid).sign(alg, signing_input.as_bytes()),
        SigningKey::Hmac(secret) => {
            let algorithm = if spec.alg.ends_with("384") {
                ring::hmac::HMAC_SHA384
            } else if spec.alg.ends_with("512") {
                ring::hmac::HMAC_SHA512
            } else {
                ring::hmac::HMAC_SHA256
            };
            let key = ring::hmac::Key::new(algorithm, secret);
            ring::hmac::sign(&key, signing_input.as_bytes()).as_ref().to_vec()
        }
        SigningKey::None => Vec::new(),
        SigningKey::Raw(bytes) => bytes.clone(),
    };
    format!("{signing_input}.{}", b64url_encode(&signature))
}
