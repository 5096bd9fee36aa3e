//! Compact JWS parsing (RFC 7515 section 7.1) and the accessors the filters use.

use std::fmt;

use serde_json::{Map, Value};

use crate::alg::Alg;
use crate::b64::b64url_decode;
use crate::error::JwtError;
use crate::json::{self, ObjectError};
use crate::jwk::{Jwk, Jwks};
use crate::verify::verify_signature;
use shared::HostCrypto;

/// A decoded (not yet verified) compact JWS whose payload is a JSON object.
#[derive(Clone)]
pub struct Jwt {
    alg: Alg,
    kid: Option<String>,
    typ: Option<String>,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    /// The payload's JSON text, decoded: what `claims` were read from.
    payload: Vec<u8>,
    /// `header.payload`, as received.
    signing_input: String,
    /// Where the payload segment starts in `signing_input`.
    payload_start: usize,
    signature: Vec<u8>,
}

impl Jwt {
    /// Decodes a compact JWS of at most `max_len` bytes. Checks the shape only: call
    /// [`Jwt::verify`] (or [`Jwt::verify_jwks`]) and [`Jwt::validate_claims`] before trusting it.
    pub fn decode(token: &[u8], max_len: usize) -> Result<Jwt, JwtError> {
        if token.len() > max_len {
            return Err(JwtError::TooLong);
        }
        let mut segments = token.split(|&b| b == b'.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return Err(JwtError::Malformed("not three segments"));
        };
        if header_b64.is_empty() || payload_b64.is_empty() || signature_b64.is_empty() {
            return Err(JwtError::Malformed("empty segment"));
        }

        let header = b64url_decode(header_b64).map_err(|_| JwtError::Malformed("header is not base64url"))?;
        let header = json::parse_object(&header).map_err(|e| object_error(e, "header is not a JSON object"))?;
        let alg = match header.get("alg") {
            Some(Value::String(name)) => Alg::parse(name).ok_or(JwtError::UnsupportedAlg)?,
            Some(_) => return Err(JwtError::Malformed("alg is not a string")),
            None => return Err(JwtError::Malformed("alg missing")),
        };
        if header.contains_key("crit") {
            return Err(JwtError::CritUnsupported);
        }
        let kid = optional_string(&header, "kid")?;
        let typ = optional_string(&header, "typ")?;

        let payload = b64url_decode(payload_b64).map_err(|_| JwtError::Malformed("payload is not base64url"))?;
        let claims = json::parse_object(&payload).map_err(|e| object_error(e, "payload is not a JSON object"))?;
        let signature = b64url_decode(signature_b64).map_err(|_| JwtError::Malformed("signature is not base64url"))?;

        // Both segments are base64url (ASCII), so this cannot fail; no unwrap all the same.
        let header_text = std::str::from_utf8(header_b64).map_err(|_| JwtError::Malformed("not ASCII"))?;
        let payload_text = std::str::from_utf8(payload_b64).map_err(|_| JwtError::Malformed("not ASCII"))?;
        let signing_input = format!("{header_text}.{payload_text}");
        Ok(Jwt {
            alg,
            kid,
            typ,
            header,
            claims,
            payload,
            payload_start: header_text.len() + 1,
            signing_input,
            signature,
        })
    }

    /// Checks the signature with one key (see [`crate::Jwks::candidates`] to find keys). RS* and
    /// ES* ask `crypto` (the host's native check) first and fall back to pure Rust when it cannot
    /// answer; PS*, EdDSA and HS* are always checked here.
    pub fn verify(&self, key: &Jwk, crypto: &dyn HostCrypto) -> Result<(), JwtError> {
        verify_signature(self.alg, key, self.signing_input.as_bytes(), &self.signature, crypto)
    }

    /// Checks the signature with the keys of `jwks` that fit the token's `alg` and `kid`, and
    /// returns the key that verified. No fitting key: [`JwtError::KeyNotFound`]. The caller must
    /// have checked [`Jwt::alg`] against the provider's allowed algorithms.
    pub fn verify_jwks<'a>(&self, jwks: &'a Jwks, crypto: &dyn HostCrypto) -> Result<&'a Jwk, JwtError> {
        let mut failure = None;
        for key in jwks.candidates(self.kid(), self.alg) {
            match self.verify(key, crypto) {
                Ok(()) => return Ok(key),
                // A plain mismatch says more than an encoding problem with one key of many.
                Err(e) if failure.is_none() || e == JwtError::BadSignature => failure = Some(e),
                Err(_) => {}
            }
        }
        Err(failure.unwrap_or(JwtError::KeyNotFound))
    }

    /// [`JwtError::AlgNotAllowed`] unless the token's `alg` is in `allowed` (e.g. a provider's
    /// configured list, by default [`Alg::DEFAULT_ALLOWED`]). Check it before looking for keys.
    pub fn check_alg(&self, allowed: &[Alg]) -> Result<(), JwtError> {
        if allowed.contains(&self.alg) {
            Ok(())
        } else {
            Err(JwtError::AlgNotAllowed)
        }
    }

    pub fn alg(&self) -> Alg {
        self.alg
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }

    /// The whole protected header.
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    /// The payload's members.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The payload's JSON text, as the issuer wrote it: the claims' own words, to hand on. One
    /// object with no repeated member name, as [`Jwt::decode`] checked.
    pub fn payload_json(&self) -> &[u8] {
        &self.payload
    }

    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    /// `header.payload` as received: what the signature covers.
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    /// The payload segment as received (base64url), e.g. to forward it.
    pub fn payload_b64(&self) -> &str {
        self.signing_input.get(self.payload_start..).unwrap_or_default()
    }

    /// The decoded signature.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// `exp` in whole seconds (rounded down), if it is a non-negative number.
    pub fn exp(&self) -> Option<u64> {
        self.numeric("exp")
    }

    /// `iat` in whole seconds (rounded down), if it is a non-negative number.
    pub fn iat(&self) -> Option<u64> {
        self.numeric("iat")
    }

    /// `iss`, if it is a string.
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }

    /// `sub`, if it is a string.
    pub fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }

    /// The scopes in the first of `claim_names` that is present (e.g. `["scope", "scp"]`): a
    /// space-separated string (RFC 8693 `scope`) or an array of strings (non-strings skipped).
    /// Empty if none is present.
    pub fn scopes(&self, claim_names: &[&str]) -> Vec<String> {
        let Some(value) = claim_names.iter().find_map(|name| self.claims.get(*name)) else {
            return Vec::new();
        };
        match value {
            Value::String(text) => text.split_ascii_whitespace().map(str::to_owned).collect(),
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .filter(|scope| !scope.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn numeric(&self, name: &str) -> Option<u64> {
        numeric_date_secs(self.claims.get(name)?)
    }
}

/// A NumericDate (RFC 7519: seconds, fractions allowed) in whole seconds, rounded down; `None`
/// unless it is a finite non-negative number.
pub fn numeric_date_secs(value: &Value) -> Option<u64> {
    let value = value.as_f64()?;
    // `as` saturates; the range check keeps NaN and negatives out.
    (value.is_finite() && value >= 0.0).then(|| value.floor() as u64)
}

/// Never shows the token: only the header fields and the claim names.
impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("typ", &self.typ)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn object_error(error: ObjectError, not_object: &'static str) -> JwtError {
    match error {
        ObjectError::Duplicate => JwtError::DuplicateMember,
        ObjectError::NotJson | ObjectError::NotObject => JwtError::Malformed(not_object),
    }
}

fn optional_string(header: &Map<String, Value>, name: &'static str) -> Result<Option<String>, JwtError> {
    match header.get(name) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(JwtError::Malformed(match name {
            "kid" => "kid is not a string",
            _ => "typ is not a string",
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::*;
    use serde_json::json;
    use shared::NoHostCrypto;
    use wasm_bindgen_test::wasm_bindgen_test;

    const MAX: usize = 16 * 1024;

    fn decode(token: &str) -> Result<Jwt, JwtError> {
        Jwt::decode(token.as_bytes(), MAX)
    }

    /// A token with this header and payload text and a dummy (non-empty) signature.
    fn unsigned(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", b64(header.as_bytes()), b64(payload.as_bytes()))
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn decodes_the_rfc_7515_examples() {
        let jwt = decode(RFC7515_A1_TOKEN).unwrap();
        assert_eq!(jwt.alg(), Alg::HS256);
        assert_eq!(jwt.typ(), Some("JWT"));
        assert_eq!(jwt.kid(), None);
        assert_eq!(jwt.issuer(), Some("joe"));
        assert_eq!(jwt.exp(), Some(1_300_819_380));
        assert_eq!(jwt.claim("http://example.com/is_root"), Some(&json!(true)));
        let segments: Vec<&str> = RFC7515_A1_TOKEN.split('.').collect();
        assert_eq!(jwt.payload_b64(), segments[1]);
        assert_eq!(
            jwt.signing_input(),
            format!("{}.{}", segments[0], segments[1]).as_bytes()
        );
        assert_eq!(jwt.signature(), unb64(segments[2]));
        assert_eq!(jwt.header()["alg"], "HS256");

        assert_eq!(jwt.check_alg(Alg::DEFAULT_ALLOWED), Err(JwtError::AlgNotAllowed));
        assert_eq!(jwt.check_alg(&[Alg::HS256]), Ok(()));
        assert_eq!(
            decode(RFC7515_A2_TOKEN).unwrap().check_alg(Alg::DEFAULT_ALLOWED),
            Ok(())
        );
        assert_eq!(decode(RFC7515_A2_TOKEN).unwrap().alg(), Alg::RS256);
        assert_eq!(decode(RFC7515_A3_TOKEN).unwrap().alg(), Alg::ES256);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_rfc_7515_examples_verify() {
        let hmac = Jwks::from_hmac_secret(hmac_secret(), Alg::HS256, None).unwrap();
        let a1 = decode(RFC7515_A1_TOKEN).unwrap();
        a1.verify(&hmac.keys()[0], &NoHostCrypto).unwrap();
        assert!(a1.verify_jwks(&hmac, &NoHostCrypto).is_ok());

        let rsa = Jwks::parse(json!({"keys": [rsa_jwk()]}).to_string().as_bytes()).unwrap();
        decode(RFC7515_A2_TOKEN)
            .unwrap()
            .verify(&rsa.keys()[0], &NoHostCrypto)
            .unwrap();

        let ec = Jwks::parse(json!({"keys": [p256_jwk()]}).to_string().as_bytes()).unwrap();
        decode(RFC7515_A3_TOKEN)
            .unwrap()
            .verify(&ec.keys()[0], &NoHostCrypto)
            .unwrap();
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn none_and_misspelled_algs_are_unsupported() {
        for alg in [
            "none",
            "None",
            "NONE",
            "nOnE",
            "rs256",
            "Rs256",
            "hs256",
            "ES512",
            "RSA-OAEP",
            "",
            "RS256\u{0}",
        ] {
            let token = unsigned(&json!({"alg": alg}).to_string(), "{}");
            assert_eq!(decode(&token).unwrap_err(), JwtError::UnsupportedAlg, "{alg:?}");
        }
        // The classic unsecured form has an empty signature segment.
        let unsecured = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(b"{}"));
        assert_eq!(decode(&unsecured).unwrap_err(), JwtError::Malformed("empty segment"));
        for header in [r#"{"alg": 256}"#, r#"{"alg": null}"#, r#"{"alg": ["RS256"]}"#] {
            assert_eq!(
                decode(&unsigned(header, "{}")).unwrap_err(),
                JwtError::Malformed("alg is not a string")
            );
        }
        assert_eq!(
            decode(&unsigned(r#"{"typ": "JWT"}"#, "{}")).unwrap_err(),
            JwtError::Malformed("alg missing")
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn any_crit_is_refused() {
        for crit in [json!(["exp"]), json!([]), json!(["b64"]), json!("x"), json!(null)] {
            let token = unsigned(&json!({"alg": "RS256", "crit": crit, "b64": false}).to_string(), "{}");
            assert_eq!(decode(&token).unwrap_err(), JwtError::CritUnsupported, "{crit}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn duplicate_members_are_refused() {
        let cases = [
            (r#"{"alg":"RS256","alg":"HS256"}"#, "{}"),
            (r#"{"alg":"RS256","kid":"a","kid":"b"}"#, "{}"),
            (r#"{"alg":"RS256"}"#, r#"{"sub":"alice","sub":"admin"}"#),
            (r#"{"alg":"RS256"}"#, r#"{"exp":1,"nbf":0,"exp":9999999999}"#),
            (r#"{"alg":"RS256"}"#, r#"{"realm":{"roles":["a"],"roles":["admin"]}}"#),
        ];
        for (header, payload) in cases {
            assert_eq!(
                decode(&unsigned(header, payload)).unwrap_err(),
                JwtError::DuplicateMember,
                "{header} {payload}"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn segments_must_be_three_and_non_empty() {
        let good = token(Alg::HS256, &json!({"sub": "a"}));
        assert!(decode(&good).is_ok());
        let [h, p, s]: [&str; 3] = good.split('.').collect::<Vec<_>>().try_into().unwrap();
        for (bad, detail) in [
            (format!("{h}.{p}"), "not three segments"),
            (format!("{h}.{p}.{s}.{s}"), "not three segments"),
            (format!("{h}.{p}.{s}.{s}.{s}"), "not three segments"),
            (format!("{h}{p}{s}"), "not three segments"),
            (String::new(), "not three segments"),
            (format!(".{p}.{s}"), "empty segment"),
            (format!("{h}..{s}"), "empty segment"),
            (format!("{h}.{p}."), "empty segment"),
            ("..".to_owned(), "empty segment"),
        ] {
            assert_eq!(decode(&bad).unwrap_err(), JwtError::Malformed(detail), "{bad}");
        }
    }

    /// `text` with its last character's unused low bits set (or, with no unused bits, a `=`).
    fn noncanonical(text: &str) -> String {
        let unused_bits = match text.len() % 4 {
            2 => 4,
            3 => 2,
            _ => return format!("{text}="),
        };
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = alphabet.find(text.chars().last().unwrap()).unwrap();
        let changed = alphabet.as_bytes()[last | ((1 << unused_bits) - 1)] as char;
        format!("{}{changed}", &text[..text.len() - 1])
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn every_segment_must_be_strict_base64url() {
        let good = token(Alg::HS256, &json!({"sub": "a"}));
        let segments: Vec<String> = good.split('.').map(str::to_owned).collect();
        let details = [
            "header is not base64url",
            "payload is not base64url",
            "signature is not base64url",
        ];
        for (i, detail) in details.into_iter().enumerate() {
            let original = &segments[i];
            for mutated in [
                format!("{original}=="),
                format!("{original}="),
                format!("+{}", &original[1..]),
                format!("/{}", &original[1..]),
                format!(" {original}"),
                format!("{original}\n"),
                format!("{}\t{}", &original[..4], &original[4..]),
                // A length no base64 has (4k + 1).
                format!(
                    "{original}{}",
                    "A".repeat(match (5 - original.len() % 4) % 4 {
                        0 => 4,
                        n => n,
                    })
                ),
                // Non-canonical trailing bits: the last character's unused bits set.
                noncanonical(original),
            ] {
                let mut parts = segments.clone();
                parts[i] = mutated;
                let bad = parts.join(".");
                assert_eq!(decode(&bad).unwrap_err(), JwtError::Malformed(detail), "{bad:?}");
            }
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn header_and_payload_must_be_json_objects() {
        let header_err = JwtError::Malformed("header is not a JSON object");
        let payload_err = JwtError::Malformed("payload is not a JSON object");
        assert_eq!(decode(&unsigned("[]", "{}")).unwrap_err(), header_err);
        assert_eq!(decode(&unsigned("not json", "{}")).unwrap_err(), header_err);
        assert_eq!(decode(&unsigned(r#"{"alg":"RS256"} x"#, "{}")).unwrap_err(), header_err);
        for payload in [
            "\"x\"",
            "[1]",
            "1",
            "null",
            "Example of Ed25519 signing",
            "{",
            "\u{feff}{}",
        ] {
            assert_eq!(
                decode(&unsigned(r#"{"alg":"RS256"}"#, payload)).unwrap_err(),
                payload_err,
                "{payload}"
            );
        }
        let kid = unsigned(r#"{"alg":"RS256","kid":7}"#, "{}");
        assert_eq!(decode(&kid).unwrap_err(), JwtError::Malformed("kid is not a string"));
        let typ = unsigned(r#"{"alg":"RS256","typ":{}}"#, "{}");
        assert_eq!(decode(&typ).unwrap_err(), JwtError::Malformed("typ is not a string"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn length_limit() {
        let good = token(Alg::HS256, &json!({"sub": "a"}));
        assert!(Jwt::decode(good.as_bytes(), good.len()).is_ok());
        assert_eq!(
            Jwt::decode(good.as_bytes(), good.len() - 1).unwrap_err(),
            JwtError::TooLong
        );
        assert_eq!(
            Jwt::decode(good.as_bytes(), good.len() - 1).unwrap_err().reason(),
            "too_long"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn embedded_keys_in_the_header_are_ignored() {
        // An attacker's own Ed25519 key in `jwk`: the token parses, but only configured keys count.
        let attacker = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let header = json!({
            "alg": "EdDSA",
            "jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64(attacker.verifying_key().as_bytes())},
            "jku": "https://attacker.example/jwks", "x5u": "https://attacker.example/x5u",
            "x5c": ["MIIB"], "x5t": "abc"
        });
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(br#"{"sub":"admin"}"#));
        let signature = ed25519_dalek::Signer::sign(&attacker, input.as_bytes()).to_bytes();
        let jwt = decode(&format!("{input}.{}", b64(&signature))).unwrap();
        assert_eq!(
            jwt.verify_jwks(&all_keys(), &NoHostCrypto).unwrap_err(),
            JwtError::BadSignature
        );
        let configured = Jwks::from_keys(vec![]);
        assert_eq!(
            jwt.verify_jwks(&configured, &NoHostCrypto).unwrap_err(),
            JwtError::KeyNotFound
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn accessors() {
        let jwt = decode(&raw_token(
            Alg::ES256,
            r#"{"alg":"ES256","kid":"k1","typ":"at+jwt"}"#,
            r#"{"exp":1767225600.9,"iat":-5,"sub":"alice","scope":"read  write\tadmin","scp":["x"]}"#,
        ))
        .unwrap();
        assert_eq!(jwt.kid(), Some("k1"));
        assert_eq!(jwt.typ(), Some("at+jwt"));
        assert_eq!(jwt.exp(), Some(1_767_225_600));
        assert_eq!(jwt.iat(), None);
        assert_eq!(jwt.subject(), Some("alice"));
        assert_eq!(jwt.scopes(&["scope", "scp"]), ["read", "write", "admin"]);
        assert_eq!(jwt.scopes(&["scp", "scope"]), ["x"]);
        assert_eq!(jwt.scopes(&["missing"]), Vec::<String>::new());
        let arr = decode(&token(Alg::HS256, &json!({"scp": ["a", 1, "", "b c"], "exp": "1"}))).unwrap();
        assert_eq!(arr.scopes(&["scope", "scp"]), ["a", "b c"]);
        assert_eq!(arr.exp(), None);
        assert_eq!(arr.claims().len(), 2);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn debug_never_shows_the_token() {
        let token = token(Alg::HS256, &json!({"sub": "very-secret-subject"}));
        let jwt = decode(&token).unwrap();
        let shown = format!("{jwt:?}");
        assert!(shown.contains("HS256") && shown.contains("\"sub\""), "{shown}");
        assert!(!shown.contains("very-secret-subject"), "{shown}");
        assert!(!shown.contains(jwt.payload_b64()), "{shown}");
    }
}
