//! Why a token or a key set was refused. Errors never carry token bytes: a detail is a fixed
//! string, or a claim name from the configuration.

use std::fmt;

/// Why a token was refused; [`JwtError::reason`] names it for metrics and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwtError {
    /// Longer than the configured maximum: not even split.
    TooLong,
    /// Not a well-formed compact JWS (segments, base64url, JSON shape, header member types).
    Malformed(&'static str),
    /// The header's `alg` is not one this library implements (this includes `none`).
    UnsupportedAlg,
    /// The `alg` is known but not allowed for this provider.
    AlgNotAllowed,
    /// The header has `crit`: this library implements no extension, so it must refuse.
    CritUnsupported,
    /// A member name appears twice in the header or the payload.
    DuplicateMember,
    /// No configured key fits the token's `alg` (and `kid`).
    KeyNotFound,
    /// The key given to [`crate::Jwt::verify`] cannot check this `alg` (e.g. an RSA key for HS256).
    KeyMismatch,
    /// The signature has the wrong length or an out-of-range value; nothing was computed.
    BadSignatureEncoding(&'static str),
    /// The signature does not verify.
    BadSignature,
    /// `exp` (plus the clock skew) has passed.
    Expired,
    /// `nbf` (minus the clock skew) is still ahead.
    NotYetValid,
    /// `iat` is further in the future than the clock skew allows.
    IssuedInFuture,
    /// `iss` differs from the configured issuer.
    WrongIssuer,
    /// `aud` names none of the configured audiences.
    WrongAudience,
    /// `exp - iat` (or `exp - now`) exceeds the configured maximum lifetime.
    LifetimeTooLong,
    /// A required claim is absent (or `null`); the name comes from the configuration.
    MissingClaim(String),
    /// The header's `typ` is absent or not one of the allowed types.
    WrongTyp,
    /// A registered claim has the wrong JSON type (e.g. `exp` as a string): the claim's name.
    BadClaimType(&'static str),
    /// The token is bound to a key (`cnf`, or `token_type` `DPoP`): not a bearer token. See
    /// [`crate::sender_constrained`].
    SenderConstrained,
    /// The token is bound to a client certificate (RFC 8705) that the connection did not present.
    CertificateMismatch,
}

impl JwtError {
    /// A stable snake_case name, for metric names and log fields.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::TooLong => "too_long",
            JwtError::Malformed(_) => "malformed",
            JwtError::UnsupportedAlg => "unsupported_alg",
            JwtError::AlgNotAllowed => "alg_not_allowed",
            JwtError::CritUnsupported => "crit_unsupported",
            JwtError::DuplicateMember => "duplicate_member",
            JwtError::KeyNotFound => "key_not_found",
            JwtError::KeyMismatch => "key_mismatch",
            JwtError::BadSignatureEncoding(_) => "bad_signature_encoding",
            JwtError::BadSignature => "bad_signature",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::IssuedInFuture => "issued_in_future",
            JwtError::WrongIssuer => "wrong_issuer",
            JwtError::WrongAudience => "wrong_audience",
            JwtError::LifetimeTooLong => "lifetime_too_long",
            JwtError::MissingClaim(_) => "missing_claim",
            JwtError::WrongTyp => "wrong_typ",
            JwtError::BadClaimType(_) => "bad_claim_type",
            JwtError::SenderConstrained => "sender_constrained",
            JwtError::CertificateMismatch => "certificate_mismatch",
        }
    }

    /// The `error_description` a client is given for this refusal: a token bound to its holder is
    /// told apart (the client can do something about it), every other is just invalid.
    pub fn description(&self) -> &'static str {
        match self {
            JwtError::SenderConstrained => "the access token is bound to a key this gateway cannot check",
            JwtError::CertificateMismatch => {
                "the access token is bound to a client certificate this connection did not present"
            }
            _ => "the access token is invalid",
        }
    }

    /// Every reason, for registering metrics up front.
    pub const REASONS: &'static [&'static str] = &[
        "too_long",
        "malformed",
        "unsupported_alg",
        "alg_not_allowed",
        "crit_unsupported",
        "duplicate_member",
        "key_not_found",
        "key_mismatch",
        "bad_signature_encoding",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "issued_in_future",
        "wrong_issuer",
        "wrong_audience",
        "lifetime_too_long",
        "missing_claim",
        "wrong_typ",
        "bad_claim_type",
        "sender_constrained",
        "certificate_mismatch",
    ];
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::TooLong => f.write_str("token too long"),
            JwtError::Malformed(detail) => write!(f, "malformed token: {detail}"),
            JwtError::UnsupportedAlg => f.write_str("unsupported alg"),
            JwtError::AlgNotAllowed => f.write_str("alg not allowed"),
            JwtError::CritUnsupported => f.write_str("crit header present: no extension is supported"),
            JwtError::DuplicateMember => f.write_str("duplicate JSON member name"),
            JwtError::KeyNotFound => f.write_str("no key for this alg and kid"),
            JwtError::KeyMismatch => f.write_str("key type does not fit the alg"),
            JwtError::BadSignatureEncoding(detail) => write!(f, "bad signature encoding: {detail}"),
            JwtError::BadSignature => f.write_str("signature does not verify"),
            JwtError::Expired => f.write_str("token expired"),
            JwtError::NotYetValid => f.write_str("token not yet valid"),
            JwtError::IssuedInFuture => f.write_str("token issued in the future"),
            JwtError::WrongIssuer => f.write_str("wrong issuer"),
            JwtError::WrongAudience => f.write_str("wrong audience"),
            JwtError::LifetimeTooLong => f.write_str("token lifetime too long"),
            JwtError::MissingClaim(name) => write!(f, "missing required claim `{name}`"),
            JwtError::WrongTyp => f.write_str("wrong typ"),
            JwtError::BadClaimType(name) => write!(f, "claim `{name}` has the wrong type"),
            JwtError::SenderConstrained => f.write_str("token bound to a key (cnf or DPoP): not a bearer token"),
            JwtError::CertificateMismatch => {
                f.write_str("token bound to a client certificate (cnf x5t#S256) the connection did not present")
            }
        }
    }
}

impl std::error::Error for JwtError {}

/// Why a whole key set was refused (single bad keys are skipped instead, see
/// [`crate::Jwks::skipped`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwksError {
    /// Larger than [`crate::MAX_JWKS_BYTES`].
    TooLarge,
    /// Not JSON (or a member name repeats in one object: parsers would disagree on it).
    NotJson,
    /// JSON, but not an object.
    NotObject,
    /// No `keys` array.
    MissingKeys,
    /// More than [`crate::MAX_JWKS_KEYS`] entries in `keys`.
    TooManyKeys,
    /// An HMAC key was asked for with an algorithm that is not HS*.
    NotHmacAlg,
    /// An HMAC secret shorter than the hash output (RFC 7518 section 3.2 forbids it).
    HmacSecretTooShort,
}

impl JwksError {
    /// A stable snake_case name, for metric names and log fields.
    pub fn reason(&self) -> &'static str {
        match self {
            JwksError::TooLarge => "too_large",
            JwksError::NotJson => "not_json",
            JwksError::NotObject => "not_object",
            JwksError::MissingKeys => "missing_keys",
            JwksError::TooManyKeys => "too_many_keys",
            JwksError::NotHmacAlg => "not_hmac_alg",
            JwksError::HmacSecretTooShort => "hmac_secret_too_short",
        }
    }
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksError::TooLarge => write!(f, "JWKS larger than {} bytes", crate::MAX_JWKS_BYTES),
            JwksError::NotJson => f.write_str("JWKS is not valid JSON (or repeats a member name)"),
            JwksError::NotObject => f.write_str("JWKS is not a JSON object"),
            JwksError::MissingKeys => f.write_str("JWKS has no `keys` array"),
            JwksError::TooManyKeys => write!(f, "JWKS has more than {} keys", crate::MAX_JWKS_KEYS),
            JwksError::NotHmacAlg => f.write_str("an HMAC secret needs an HS256, HS384 or HS512 alg"),
            JwksError::HmacSecretTooShort => f.write_str("HMAC secret shorter than the hash output"),
        }
    }
}

impl std::error::Error for JwksError {}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn reasons_are_unique_snake_case_and_listed() {
        let all = [
            JwtError::TooLong,
            JwtError::Malformed("x"),
            JwtError::UnsupportedAlg,
            JwtError::AlgNotAllowed,
            JwtError::CritUnsupported,
            JwtError::DuplicateMember,
            JwtError::KeyNotFound,
            JwtError::KeyMismatch,
            JwtError::BadSignatureEncoding("x"),
            JwtError::BadSignature,
            JwtError::Expired,
            JwtError::NotYetValid,
            JwtError::IssuedInFuture,
            JwtError::WrongIssuer,
            JwtError::WrongAudience,
            JwtError::LifetimeTooLong,
            JwtError::MissingClaim("sub".into()),
            JwtError::WrongTyp,
            JwtError::BadClaimType("exp"),
            JwtError::SenderConstrained,
            JwtError::CertificateMismatch,
        ];
        let reasons: Vec<&str> = all.iter().map(JwtError::reason).collect();
        assert_eq!(reasons, JwtError::REASONS);
        for reason in reasons {
            assert!(reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{reason}");
        }
        assert_eq!(JwtError::Expired.reason(), "expired");
        assert_eq!(JwtError::BadSignature.reason(), "bad_signature");
        assert_eq!(
            JwtError::MissingClaim("sub".into()).to_string(),
            "missing required claim `sub`"
        );
    }
}
