//! JSON Web Keys (RFC 7517, RFC 7518 section 6, RFC 8037): parsed once, with everything a
//! signature check needs computed up front.

use serde_json::{Map, Value};
use shared::json::Node;
use shared::Secret;

use crate::alg::Alg;
use crate::b64::b64url_decode;
use crate::ecdsa::PublicKey as EcKey;
use crate::ed25519;
use crate::error::JwksError;
use crate::rsassa::RsaPublicKey;

/// The largest JWKS document accepted, in bytes (256 KiB: a JWKS of 64 RSA-8192 keys is ~100 KiB).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The most entries a JWKS `keys` array may have (more is refused as a whole). Every key a token
/// without `kid` could match is tried, so this also bounds the work one token can cause.
pub const MAX_JWKS_KEYS: usize = 64;
/// RSA moduli smaller than this are refused (NIST SP 800-131A; RFC 7518 section 3.3).
pub const MIN_RSA_BITS: usize = 2048;
/// RSA moduli larger than this are refused (the cost of a check grows with the size).
pub const MAX_RSA_BITS: usize = 8192;

/// The kind of key, which fixes the algorithms it can check ([`Alg::key_kind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
    Hmac,
}

/// One verification key.
#[derive(Clone, Debug)]
pub struct Jwk {
    kid: Option<String>,
    alg: Option<Alg>,
    pub(crate) material: Material,
}

/// The parsed key. RSA and EC keys also keep their DER SubjectPublicKeyInfo for the host.
#[derive(Clone, Debug)]
pub(crate) enum Material {
    Rsa { key: RsaPublicKey, spki: Vec<u8> },
    P256 { key: EcKey, spki: Vec<u8> },
    P384 { key: EcKey, spki: Vec<u8> },
    Ed25519(ed25519::PublicKey),
    Hmac(Secret),
}

/// The members of a JWK that carry its private part (RFC 7518 sections 6.2.2, 6.3.2; RFC 8037).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

impl Jwk {
    /// An HMAC key for `alg` (HS256/384/512) from a configured secret. RFC 7518 section 3.2: the
    /// secret must be at least as long as the hash output (32, 48, 64 bytes).
    pub fn hmac(secret: Secret, alg: Alg, kid: Option<String>) -> Result<Jwk, JwksError> {
        let min_len = match alg {
            Alg::HS256 => 32,
            Alg::HS384 => 48,
            Alg::HS512 => 64,
            _ => return Err(JwksError::NotHmacAlg),
        };
        if secret.expose().len() < min_len {
            return Err(JwksError::HmacSecretTooShort);
        }
        Ok(Jwk {
            kid,
            alg: Some(alg),
            material: Material::Hmac(secret),
        })
    }

    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The JWK's `alg`: if set, the key checks only that algorithm.
    pub fn alg(&self) -> Option<Alg> {
        self.alg
    }

    pub fn kind(&self) -> KeyKind {
        match self.material {
            Material::Rsa { .. } => KeyKind::Rsa,
            Material::P256 { .. } => KeyKind::EcP256,
            Material::P384 { .. } => KeyKind::EcP384,
            Material::Ed25519(_) => KeyKind::Ed25519,
            Material::Hmac(_) => KeyKind::Hmac,
        }
    }

    /// Whether this key may check a token signed with `alg`: the kind fits, and the key's own
    /// `alg`, if any, is that one.
    pub fn usable_for(&self, alg: Alg) -> bool {
        alg.key_kind() == self.kind() && self.alg.is_none_or(|own| own == alg)
    }

    /// The DER SubjectPublicKeyInfo (RSA and EC keys), as the host's signature check wants it.
    pub fn spki_der(&self) -> Option<&[u8]> {
        match &self.material {
            Material::Rsa { spki, .. } | Material::P256 { spki, .. } | Material::P384 { spki, .. } => Some(spki),
            Material::Ed25519(_) | Material::Hmac(_) => None,
        }
    }

    /// The RSA modulus size in bits.
    pub fn rsa_bits(&self) -> Option<usize> {
        match &self.material {
            Material::Rsa { key, .. } => Some(key.bits()),
            _ => None,
        }
    }

    /// Parses one member of a JWKS `keys` array. `Err` says why it is not used.
    fn from_json(value: &Value) -> Result<Jwk, &'static str> {
        let obj = value.as_object().ok_or("key is not an object")?;
        let kty = obj
            .get("kty")
            .and_then(Value::as_str)
            .ok_or("kty missing or not a string")?;
        if kty == "oct" {
            return Err("oct key ignored: HMAC secrets come only from the configuration");
        }
        match obj.get("use") {
            None => {}
            Some(Value::String(usage)) if usage == "sig" => {}
            Some(Value::String(_)) => return Err("use is not sig"),
            Some(_) => return Err("use is not a string"),
        }
        // A published key with its private part has been disclosed: anyone can sign with it
        // (RFC 7517 section 9.2), so it proves nothing.
        if PRIVATE_MEMBERS.iter().any(|member| obj.contains_key(*member)) {
            return Err("private key material published: the key is compromised");
        }
        if let Some(ops) = obj.get("key_ops") {
            let ops = ops.as_array().ok_or("key_ops is not an array")?;
            if !ops.iter().all(Value::is_string) {
                return Err("key_ops has a non-string member");
            }
            if !ops.iter().any(|op| op.as_str() == Some("verify")) {
                return Err("key_ops lacks verify");
            }
        }
        let kid = match obj.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err("kid is not a string"),
        };
        let alg = match obj.get("alg") {
            None => None,
            Some(Value::String(name)) => Some(Alg::parse(name).ok_or("alg is not a supported JWS algorithm")?),
            Some(_) => return Err("alg is not a string"),
        };
        let material = match kty {
            "RSA" => rsa_key(obj)?,
            "EC" => ec_key(obj)?,
            "OKP" => okp_key(obj)?,
            _ => return Err("unsupported kty"),
        };
        let jwk = Jwk { kid, alg, material };
        if let Some(alg) = alg {
            if alg.key_kind() != jwk.kind() {
                return Err("alg does not fit kty/crv");
            }
        }
        Ok(jwk)
    }
}

/// A member that must be a strict-base64url string.
fn b64_member(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, &'static str> {
    let text = obj
        .get(name)
        .and_then(Value::as_str)
        .ok_or("key member missing or not a string")?;
    b64url_decode(text.as_bytes()).map_err(|_| "key member is not base64url")
}

fn rsa_key(obj: &Map<String, Value>) -> Result<Material, &'static str> {
    let n = b64_member(obj, "n")?;
    let e = b64_member(obj, "e")?;
    // Leading zero bytes do not count.
    let n = n
        .get(n.iter().position(|&b| b != 0).unwrap_or(n.len())..)
        .unwrap_or_default();
    let e = e
        .get(e.iter().position(|&b| b != 0).unwrap_or(e.len())..)
        .unwrap_or_default();
    let bits = n.first().map_or(0, |&top| 8 * n.len() - top.leading_zeros() as usize);
    if bits < MIN_RSA_BITS {
        return Err("RSA modulus smaller than 2048 bits");
    }
    if bits > MAX_RSA_BITS {
        return Err("RSA modulus larger than 8192 bits");
    }
    let odd = |x: &[u8]| x.last().is_some_and(|low| low & 1 == 1);
    if !odd(n) || !odd(e) || (e.len() < 2 && e.first().is_none_or(|&e| e < 3)) {
        return Err("RSA modulus or exponent is not valid");
    }
    // Also refuses an exponent above 2^33 - 1.
    let key = RsaPublicKey::new(n, e).ok_or("RSA key is not valid")?;
    let spki = key.to_spki_der();
    Ok(Material::Rsa { key, spki })
}

/// DER SubjectPublicKeyInfo prefixes (RFC 5480): SEQUENCE { SEQUENCE { id-ecPublicKey, curve },
/// BIT STRING (0 unused bits) }, followed by the uncompressed SEC1 point `04 || x || y`.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const P384_SPKI_PREFIX: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
    0x22, 0x03, 0x62, 0x00,
];

fn ec_key(obj: &Map<String, Value>) -> Result<Material, &'static str> {
    let crv = obj
        .get("crv")
        .and_then(Value::as_str)
        .ok_or("crv missing or not a string")?;
    let size = match crv {
        "P-256" => 32,
        "P-384" => 48,
        _ => return Err("unsupported EC curve"),
    };
    let x = b64_member(obj, "x")?;
    let y = b64_member(obj, "y")?;
    if x.len() != size || y.len() != size {
        return Err("EC coordinate of the wrong length");
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let with_prefix = |prefix: &[u8]| [prefix, &point].concat();
    // Both check that the coordinates are below p and the point is on the curve (the identity
    // has no affine coordinates).
    if size == 32 {
        let key = EcKey::p256(&point).ok_or("EC point not on the curve")?;
        Ok(Material::P256 {
            key,
            spki: with_prefix(&P256_SPKI_PREFIX),
        })
    } else {
        let key = EcKey::p384(&point).ok_or("EC point not on the curve")?;
        Ok(Material::P384 {
            key,
            spki: with_prefix(&P384_SPKI_PREFIX),
        })
    }
}

fn okp_key(obj: &Map<String, Value>) -> Result<Material, &'static str> {
    if obj.get("crv").and_then(Value::as_str) != Some("Ed25519") {
        return Err("unsupported OKP curve");
    }
    let x: [u8; 32] = b64_member(obj, "x")?
        .try_into()
        .map_err(|_| "Ed25519 key of the wrong length")?;
    Ok(Material::Ed25519(ed25519::PublicKey::from_bytes(&x)?))
}

/// A set of verification keys.
#[derive(Clone, Debug, Default)]
pub struct Jwks {
    keys: Vec<Jwk>,
    skipped: Vec<&'static str>,
}

impl Jwks {
    /// Parses a JWKS document `{"keys": [...]}`. A key that is malformed (a member named twice
    /// included), unsupported, not for signatures (`use` other than `sig`, `key_ops` without
    /// `verify`) or symmetric (`oct`) is skipped and counted in [`Jwks::skipped`]; the others are
    /// kept. A document that is too large, not a JSON object, has no `keys` array (or two) or
    /// too many keys is an error.
    pub fn parse(json: &[u8]) -> Result<Jwks, JwksError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let Node::Object(members, _) = shared::json::parse(json).map_err(|_| JwksError::NotJson)? else {
            return Err(JwksError::NotObject);
        };
        let mut keys = None;
        for (name, value) in members {
            if name == "keys" && keys.replace(value).is_some() {
                return Err(JwksError::NotJson);
            }
        }
        let Some(Node::Array(entries, _)) = keys else {
            return Err(JwksError::MissingKeys);
        };
        if entries.len() > MAX_JWKS_KEYS {
            return Err(JwksError::TooManyKeys);
        }
        let mut jwks = Jwks::default();
        for entry in entries {
            match entry.into_strict_value() {
                Ok(entry) => jwks.add(&entry),
                Err(shared::json::Duplicate) => jwks.skipped.push("a member named twice"),
            }
        }
        Ok(jwks)
    }

    fn add(&mut self, entry: &Value) {
        match Jwk::from_json(entry) {
            Ok(jwk) => self.keys.push(jwk),
            Err(why) => self.skipped.push(why),
        }
    }

    /// [`Jwks::parse`] for a document already read, e.g. from config.
    pub fn from_value(doc: &Value) -> Result<Jwks, JwksError> {
        Jwks::from_document(doc.as_object().ok_or(JwksError::NotObject)?)
    }

    fn from_document(doc: &Map<String, Value>) -> Result<Jwks, JwksError> {
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::MissingKeys)?;
        if entries.len() > MAX_JWKS_KEYS {
            return Err(JwksError::TooManyKeys);
        }
        let mut jwks = Jwks::default();
        for entry in entries {
            jwks.add(entry);
        }
        Ok(jwks)
    }

    /// A set of one HMAC key (see [`Jwk::hmac`]).
    pub fn from_hmac_secret(secret: Secret, alg: Alg, kid: Option<String>) -> Result<Jwks, JwksError> {
        Ok(Jwks::from_keys(vec![Jwk::hmac(secret, alg, kid)?]))
    }

    pub fn from_keys(keys: Vec<Jwk>) -> Jwks {
        Jwks {
            keys,
            skipped: Vec::new(),
        }
    }

    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many entries of the document were not kept.
    pub fn skipped(&self) -> usize {
        self.skipped.len()
    }

    /// Why each skipped entry was not kept, in document order (fixed strings, for logs).
    pub fn skip_reasons(&self) -> &[&'static str] {
        &self.skipped
    }

    /// The keys that may check a token with this `alg` and `kid`: their kind fits the alg, their
    /// own `alg` (if set) is this one, and, when the token names a `kid`, their `kid` equals it (a
    /// published key without `kid` then does not match). A token without `kid` gets every fitting
    /// key. An HMAC secret (only ever from config, one per provider) has no `kid` and checks a
    /// token whatever `kid` it names: many HS* issuers set one.
    pub fn candidates<'s, 'k>(&'s self, kid: Option<&'k str>, alg: Alg) -> impl Iterator<Item = &'s Jwk> + use<'s, 'k> {
        self.keys.iter().filter(move |key| {
            let any_kid = key.kid().is_none() && matches!(key.material, Material::Hmac(_));
            key.usable_for(alg) && (any_kid || kid.is_none_or(|kid| key.kid() == Some(kid)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::*;
    use rsa::pkcs8::EncodePublicKey;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn jwks(keys: Value) -> Jwks {
        Jwks::parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn parses_every_supported_kind() {
        let set = jwks(json!([rsa_jwk(), p256_jwk(), p384_jwk(), ed25519_jwk()]));
        assert_eq!(set.skipped(), 0, "{:?}", set.skip_reasons());
        let kinds: Vec<KeyKind> = set.keys().iter().map(Jwk::kind).collect();
        assert_eq!(
            kinds,
            [KeyKind::Rsa, KeyKind::EcP256, KeyKind::EcP384, KeyKind::Ed25519]
        );
        assert_eq!(set.keys()[0].rsa_bits(), Some(2048));
        assert!(set.keys()[3].spki_der().is_none());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn spki_der_matches_the_standard_encoders() {
        let set = jwks(json!([rsa_jwk(), p256_jwk(), p384_jwk()]));
        let rsa = rsa_private().to_public_key().to_public_key_der().unwrap();
        assert_eq!(set.keys()[0].spki_der().unwrap(), rsa.as_bytes());
        let p256 = p256::PublicKey::from(p256_signing().verifying_key())
            .to_public_key_der()
            .unwrap();
        assert_eq!(set.keys()[1].spki_der().unwrap(), p256.as_bytes());
        let p384 = p384::PublicKey::from(p384_signing().verifying_key())
            .to_public_key_der()
            .unwrap();
        assert_eq!(set.keys()[2].spki_der().unwrap(), p384.as_bytes());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn skips_and_counts_bad_keys_but_keeps_the_rest() {
        let mut bad_point = p256_jwk();
        let y = b64url_decode(bad_point["y"].as_str().unwrap().as_bytes()).unwrap();
        let mut y2 = y.clone();
        y2[31] ^= 1;
        bad_point["y"] = json!(b64(&y2));
        let mut small_rsa = rsa_jwk();
        let n = b64url_decode(small_rsa["n"].as_str().unwrap().as_bytes()).unwrap();
        small_rsa["n"] = json!(b64(&n[..128])); // 1024 bits
        let mut short_rsa = rsa_jwk();
        let mut n2047 = n.clone();
        n2047[0] &= 0x7f; // under 2048 bits
        short_rsa["n"] = json!(b64(&n2047));
        let mut huge_rsa = rsa_jwk();
        let mut n8200 = vec![0xff; 1025];
        n8200[1024] = 0xfb;
        huge_rsa["n"] = json!(b64(&n8200));
        let mut short_x = p256_jwk();
        short_x["x"] = json!(b64(&[1; 31]));
        let mut padded = rsa_jwk();
        padded["e"] = json!("AQAB=");
        let mut even_e = rsa_jwk();
        even_e["e"] = json!(b64(&[1, 0, 0]));
        let mut ed_wrong_len = ed25519_jwk();
        ed_wrong_len["x"] = json!(b64(&[9; 33]));
        let mut ed_weak = ed25519_jwk();
        ed_weak["x"] = json!(b64(&[0; 32])); // small-order point
        let mut sig_with_enc = rsa_jwk();
        sig_with_enc["use"] = json!("enc");
        let mut ops_sign_only = p256_jwk();
        ops_sign_only["key_ops"] = json!(["sign"]);
        let mut kid_number = ed25519_jwk();
        kid_number["kid"] = json!(7);
        let mut unknown_alg = rsa_jwk();
        unknown_alg["alg"] = json!("RSA-OAEP");
        let mut wrong_alg = rsa_jwk();
        wrong_alg["alg"] = json!("ES256");
        let mut p384_as_es256 = p384_jwk();
        p384_as_es256["alg"] = json!("ES256");
        let mut hs_on_rsa = rsa_jwk();
        hs_on_rsa["alg"] = json!("HS256");
        let bad = [
            bad_point,
            small_rsa,
            short_rsa,
            huge_rsa,
            short_x,
            padded,
            even_e,
            ed_wrong_len,
            ed_weak,
            sig_with_enc,
            ops_sign_only,
            kid_number,
            unknown_alg,
            wrong_alg,
            p384_as_es256,
            hs_on_rsa,
            json!({"kty": "oct", "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}),
            json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
            json!({"kty": "OKP", "crv": "Ed448", "x": "AA"}),
            json!({"kty": "RSA", "e": "AQAB"}),
            json!({"n": "AQAB"}),
            json!("RSA"),
            json!(null),
        ];
        let count = bad.len();
        let mut all = vec![rsa_jwk()];
        all.extend(bad);
        all.push(ed25519_jwk());
        let set = jwks(Value::Array(all));
        assert_eq!(set.len(), 2, "{:?}", set.keys());
        assert_eq!(set.skipped(), count);
        assert_eq!(set.skip_reasons()[0], "EC point not on the curve");
        assert_eq!(set.skip_reasons()[1], "RSA modulus smaller than 2048 bits");
        assert_eq!(set.skip_reasons()[2], "RSA modulus smaller than 2048 bits");
        assert_eq!(set.skip_reasons()[3], "RSA modulus larger than 8192 bits");
        assert_eq!(set.skip_reasons()[9], "use is not sig");
        assert_eq!(set.skip_reasons()[10], "key_ops lacks verify");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rsa_modulus_and_exponent_limits() {
        let parse = |n: &[u8], e: &[u8]| Jwk::from_json(&json!({"kty": "RSA", "n": b64(n), "e": b64(e)}));
        let n = unb64(RSA_N);
        let invalid = Err("RSA modulus or exponent is not valid");
        for e in [&[][..], &[0], &[1], &[2], &[0, 1], &[1, 0, 0], &[0, 0, 2]] {
            assert_eq!(parse(&n, e).map(|k| k.kind()), invalid, "{e:?}");
        }
        // Up to 2^33 - 1, as the `rsa` crate allowed.
        for e in [&[3][..], &[0, 0, 3], &[1, 0, 1], &[1, 0xff, 0xff, 0xff, 0xff]] {
            assert_eq!(parse(&n, e).unwrap().rsa_bits(), Some(2048), "{e:?}");
        }
        for e in [&[2, 0, 0, 0, 1][..], &[1, 0, 0, 0, 0, 0, 0, 0, 1]] {
            assert_eq!(parse(&n, e).map(|k| k.kind()), Err("RSA key is not valid"), "{e:?}");
        }
        let mut even = n.clone();
        even[255] &= 0xfe;
        assert_eq!(parse(&even, &[1, 0, 1]).map(|k| k.kind()), invalid);
        // Leading zero bytes of n do not count, and are not in the SPKI.
        let padded = parse(&[&[0, 0][..], &n].concat(), &[0, 1, 0, 1]).unwrap();
        assert_eq!(padded.rsa_bits(), Some(2048));
        assert_eq!(padded.spki_der(), parse(&n, &[1, 0, 1]).unwrap().spki_der());
        // 8192 bits is the most; 2048 the least.
        let mut n8192 = vec![0xff; 1024];
        assert_eq!(parse(&n8192, &[1, 0, 1]).unwrap().rsa_bits(), Some(8192));
        n8192.insert(0, 1);
        assert_eq!(
            parse(&n8192, &[1, 0, 1]).map(|k| k.kind()),
            Err("RSA modulus larger than 8192 bits")
        );
        let mut n2048 = vec![0xff; 256];
        n2048[0] = 0x80;
        assert!(parse(&n2048, &[3]).is_ok());
        assert_eq!(
            parse(&n2048[1..], &[3]).map(|k| k.kind()),
            Err("RSA modulus smaller than 2048 bits")
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn use_sig_and_key_ops_verify_are_kept() {
        let mut key = rsa_jwk();
        key["use"] = json!("sig");
        key["key_ops"] = json!(["sign", "verify"]);
        key["x5c"] = json!(["ignored"]);
        let set = jwks(json!([key]));
        assert_eq!((set.len(), set.skipped()), (1, 0));
    }

    /// A JWK Set served to verifiers is public (RFC 7517 section 9.2: private keys "MUST be
    /// protected from disclosure"). A key that comes with its private part (`d`; RSA's `p`, `q`,
    /// `dp`, `dq`, `qi`, `oth`) has been disclosed to everyone who can read the set, so anyone can
    /// sign tokens with it: it must not verify them (as panva/jose refuses a private key for
    /// verification).
    #[wasm_bindgen_test(unsupported = test)]
    fn a_published_key_with_its_private_part_is_not_used() {
        use rsa::traits::PrivateKeyParts;
        let rsa = rsa_private();
        let mut rsa_d = rsa_jwk();
        rsa_d["d"] = json!(b64(&rsa.d().to_bytes_be()));
        let mut rsa_crt = rsa_jwk();
        rsa_crt["p"] = json!(b64(&rsa.primes()[0].to_bytes_be()));
        rsa_crt["q"] = json!(b64(&rsa.primes()[1].to_bytes_be()));
        let mut p256_d = p256_jwk();
        p256_d["d"] = json!(b64(&p256_signing().to_bytes()));
        let mut ed25519_d = ed25519_jwk();
        ed25519_d["d"] = json!(b64(&ed25519_signing().to_bytes()));
        for (what, key) in [
            ("RSA with d", rsa_d),
            ("RSA with p and q", rsa_crt),
            ("P-256 with d", p256_d),
            ("Ed25519 with d", ed25519_d),
        ] {
            let set = jwks(json!([key]));
            assert_eq!(
                (set.len(), set.skipped()),
                (0, 1),
                "{what}: a disclosed key verifies tokens"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn whole_document_errors() {
        assert_eq!(Jwks::parse(b"not json").unwrap_err(), JwksError::NotJson);
        assert_eq!(Jwks::parse(b"[]").unwrap_err(), JwksError::NotObject);
        assert_eq!(Jwks::parse(b"{}").unwrap_err(), JwksError::MissingKeys);
        assert_eq!(Jwks::parse(br#"{"keys": {}}"#).unwrap_err(), JwksError::MissingKeys);
        assert_eq!(
            Jwks::parse(br#"{"keys": [], "keys": []}"#).unwrap_err(),
            JwksError::NotJson
        );
        let many = json!({ "keys": vec![ed25519_jwk(); MAX_JWKS_KEYS + 1] }).to_string();
        assert_eq!(Jwks::parse(many.as_bytes()).unwrap_err(), JwksError::TooManyKeys);
        let max = json!({ "keys": vec![ed25519_jwk(); MAX_JWKS_KEYS] }).to_string();
        assert_eq!(Jwks::parse(max.as_bytes()).unwrap().len(), MAX_JWKS_KEYS);
        let big = format!("{{\"keys\": [], \"pad\": \"{}\"}}", "a".repeat(MAX_JWKS_BYTES));
        assert_eq!(Jwks::parse(big.as_bytes()).unwrap_err(), JwksError::TooLarge);
        let empty = Jwks::parse(br#"{"keys": []}"#).unwrap();
        assert!(empty.is_empty());
        assert_eq!(JwksError::TooManyKeys.reason(), "too_many_keys");
    }

    /// A key that names a member twice is one malformed key: skipped, and the others kept. Were
    /// the whole document refused, the last good keys (a key the IdP just removed with them)
    /// would be trusted on for as long as the IdP serves it.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_key_that_names_a_member_twice_is_skipped_alone() {
        let ed25519 = ed25519_jwk().to_string();
        let twice = ed25519.replacen('{', r#"{"use": "sig", "use": "enc", "#, 1);
        let document = format!(r#"{{"keys": [{twice}, {ed25519}], "note": {{"a": 1, "a": 2}}}}"#);
        let set = Jwks::parse(document.as_bytes()).unwrap();
        assert_eq!((set.len(), set.skip_reasons()), (1, &["a member named twice"][..]));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn candidates_by_kid_and_alg() {
        let mut rsa_a = rsa_jwk();
        rsa_a["kid"] = json!("a");
        let mut rsa_b_ps = rsa_jwk();
        rsa_b_ps["kid"] = json!("b");
        rsa_b_ps["alg"] = json!("PS256");
        let rsa_nokid = rsa_jwk();
        let mut ec = p256_jwk();
        ec["kid"] = json!("a");
        let mut ec384 = p384_jwk();
        ec384["kid"] = json!("c");
        let mut ed = ed25519_jwk();
        ed["kid"] = json!("d");
        let set = jwks(json!([rsa_a, rsa_b_ps, rsa_nokid, ec, ec384, ed]));
        let kids = |kid: Option<&str>, alg: Alg| -> Vec<Option<String>> {
            set.candidates(kid, alg).map(|k| k.kid().map(str::to_owned)).collect()
        };
        let s = |x: &str| Some(x.to_owned());
        // No kid: every fitting key; the PS256-only key is not a RS256 candidate.
        assert_eq!(kids(None, Alg::RS256), [s("a"), None]);
        assert_eq!(kids(None, Alg::PS256), [s("a"), s("b"), None]);
        assert_eq!(kids(None, Alg::ES256), [s("a")]);
        assert_eq!(kids(None, Alg::ES384), [s("c")]);
        assert_eq!(kids(None, Alg::EdDSA), [s("d")]);
        assert!(kids(None, Alg::HS256).is_empty());
        // kid: only that key, and only if it fits the alg.
        assert_eq!(kids(Some("a"), Alg::RS512), [s("a")]);
        assert_eq!(kids(Some("a"), Alg::ES256), [s("a")]);
        assert!(kids(Some("b"), Alg::RS256).is_empty());
        assert_eq!(kids(Some("b"), Alg::PS256), [s("b")]);
        assert!(kids(Some("c"), Alg::ES256).is_empty());
        assert!(kids(Some("zzz"), Alg::RS256).is_empty());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn hmac_keys_come_only_from_secrets() {
        let secret = Secret::new(vec![7u8; 32]);
        let set = Jwks::from_hmac_secret(secret.clone(), Alg::HS256, Some("h".into())).unwrap();
        assert_eq!(set.keys()[0].kind(), KeyKind::Hmac);
        assert_eq!(set.candidates(Some("h"), Alg::HS256).count(), 1);
        assert_eq!(set.candidates(None, Alg::HS384).count(), 0);
        assert_eq!(set.keys()[0].spki_der(), None);
        assert!(!format!("{set:?}").contains("[7, 7"), "{set:?}");
        assert_eq!(
            Jwk::hmac(secret.clone(), Alg::HS384, None).unwrap_err(),
            JwksError::HmacSecretTooShort
        );
        assert_eq!(Jwk::hmac(secret, Alg::RS256, None).unwrap_err(), JwksError::NotHmacAlg);
        assert!(Jwk::hmac(Secret::new(vec![1u8; 64]), Alg::HS512, None).is_ok());
    }
}
