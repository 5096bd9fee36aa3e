//! Claim rules (RFC 7519 section 4.1, RFC 9068 `typ`).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::JwtError;
use crate::jwt::Jwt;

/// What the claims of a verified token must satisfy.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClaimRules {
    /// `iss` must equal this exactly (when set).
    pub issuer: Option<String>,
    /// When non-empty, `aud` (a string or an array of strings) must name at least one of these.
    pub audiences: Vec<String>,
    /// Tolerance for clock differences on `exp`, `nbf` and `iat`, in seconds.
    pub clock_skew_secs: u64,
    /// When set, `exp - iat` (or `exp - now` without `iat`) may not exceed this, and `exp` is
    /// required.
    pub max_lifetime_secs: Option<u64>,
    /// Claims that must be present and not `null`.
    pub required_claims: Vec<String>,
    /// Whether a token without `exp` is refused.
    pub require_exp: bool,
    /// When set, the header's `typ` must be one of these, compared case-insensitively and with an
    /// optional `application/` prefix ignored (RFC 7515 section 4.1.9): `at+jwt` matches
    /// `application/at+jwt` (RFC 9068).
    pub allowed_typ: Option<Vec<String>>,
}

impl Default for ClaimRules {
    fn default() -> Self {
        Self {
            issuer: None,
            audiences: Vec::new(),
            clock_skew_secs: 60,
            max_lifetime_secs: None,
            required_claims: Vec::new(),
            require_exp: false,
            allowed_typ: None,
        }
    }
}

/// An `aud` claim (a string or an array of strings; anything else is a bad claim type) that names
/// one of `wanted`, when `wanted` is not empty.
pub fn check_audience(aud: Option<&Value>, wanted: &[String]) -> Result<(), JwtError> {
    let audiences = match aud {
        None => None,
        Some(Value::String(aud)) => Some(vec![aud.as_str()]),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|item| item.as_str().ok_or(JwtError::BadClaimType("aud")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(JwtError::BadClaimType("aud")),
    };
    if wanted.is_empty() {
        return Ok(());
    }
    let audiences = audiences.ok_or_else(|| JwtError::MissingClaim("aud".to_owned()))?;
    if audiences.iter().any(|aud| wanted.iter().any(|w| w == aud)) {
        Ok(())
    } else {
        Err(JwtError::WrongAudience)
    }
}

/// How a token is bound to whoever presents it (RFC 7800's `cnf`), as its claims, or its
/// RFC 7662 introspection object, say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Binding {
    /// No `cnf` and no DPoP token type: a bearer token.
    #[default]
    Bearer,
    /// Bound to the client certificate with this SHA-256 thumbprint (RFC 8705 section 3.1): a `cnf`
    /// of exactly `{"x5t#S256": "<base64url of 32 bytes>"}`. Good only on a connection that
    /// presented that certificate.
    Certificate([u8; 32]),
    /// Bound in a way this gateway checks no proof of: a DPoP key (a `token_type` of `DPoP` in any
    /// letter case, RFC 9449 section 7.2, or `cnf.jkt`), any other or any further `cnf` member, a
    /// malformed `x5t#S256`, a `cnf` that is not an object.
    Unchecked,
}

impl Binding {
    pub fn of(claims: &Map<String, Value>) -> Binding {
        let dpop = claims
            .get("token_type")
            .and_then(Value::as_str)
            .is_some_and(|token_type| token_type.eq_ignore_ascii_case("dpop"));
        match (claims.get("cnf"), dpop) {
            (_, true) => Binding::Unchecked,
            (None, false) => Binding::Bearer,
            (Some(cnf), false) => certificate_thumbprint(cnf).map_or(Binding::Unchecked, Binding::Certificate),
        }
    }

    /// Whether a request may use the token on a connection whose client certificate has the
    /// SHA-256 `presented` (`None`: no certificate, or no TLS). A token bound to a certificate
    /// needs that certificate (RFC 8705 section 3); one bound to a key the gateway checks no proof
    /// of is refused, or whoever copied it could use it (RFC 9449 section 7.2).
    pub fn check(&self, presented: Option<&[u8; 32]>) -> Result<(), JwtError> {
        match self {
            Binding::Bearer => Ok(()),
            Binding::Certificate(bound) if presented == Some(bound) => Ok(()),
            Binding::Certificate(_) => Err(JwtError::CertificateMismatch),
            Binding::Unchecked => Err(JwtError::SenderConstrained),
        }
    }

    /// [`Binding::check`] against the client certificate the request presented, which
    /// `presented` reads only for a token bound to one (a bearer token costs no host call).
    pub fn check_holder(&self, presented: impl FnOnce() -> Option<[u8; 32]>) -> Result<(), JwtError> {
        match self {
            Binding::Bearer => Ok(()),
            bound => bound.check(presented().as_ref()),
        }
    }

    /// The thumbprint of the certificate the token is bound to, if it is.
    pub fn certificate(&self) -> Option<[u8; 32]> {
        match self {
            Binding::Certificate(thumbprint) => Some(*thumbprint),
            Binding::Bearer | Binding::Unchecked => None,
        }
    }

    /// The binding of a token that two documents describe (an RFC 7662 answer and the JWT it
    /// carries): the holder must satisfy both, and two different certificates no one can.
    pub fn and(self, other: Binding) -> Binding {
        match (self, other) {
            (Binding::Bearer, other) | (other, Binding::Bearer) => other,
            (Binding::Certificate(a), Binding::Certificate(b)) if a == b => self,
            _ => Binding::Unchecked,
        }
    }
}

/// The thumbprint of a `cnf` that binds to a client certificate and to nothing else.
fn certificate_thumbprint(cnf: &Value) -> Option<[u8; 32]> {
    let cnf = cnf.as_object()?;
    if cnf.len() != 1 {
        return None;
    }
    let encoded = cnf.get("x5t#S256")?.as_str()?;
    crate::b64::b64url_decode(encoded.as_bytes()).ok()?.try_into().ok()
}

/// Whether a token is bound to its holder in any way (see [`Binding`]).
pub fn sender_constrained(claims: &Map<String, Value>) -> bool {
    Binding::of(claims) != Binding::Bearer
}

impl Jwt {
    /// How the token is bound to its holder: see [`Binding`].
    pub fn binding(&self) -> Binding {
        Binding::of(self.claims())
    }

    /// Whether the token is bound to its holder in any way: see [`Binding`].
    pub fn is_sender_constrained(&self) -> bool {
        sender_constrained(self.claims())
    }

    /// Checks the claims against `rules` at `now_ms` (milliseconds since the Unix epoch: a
    /// NumericDate may have a fraction, and `exp` at `T.25` has passed at `T.9`). Call it
    /// after the signature check: it trusts the claims to be the issuer's.
    ///
    /// `exp`, `nbf` and `iat` must be non-negative JSON numbers (fractions allowed) if present.
    /// Expired when `now >= exp + skew`; not yet valid when `now + skew < nbf`; issued in the
    /// future when `iat > now + skew`.
    pub fn validate_claims(&self, rules: &ClaimRules, now_ms: u64) -> Result<(), JwtError> {
        match &rules.allowed_typ {
            Some(allowed) => {
                let typ = self.typ().map(normalize_typ).ok_or(JwtError::WrongTyp)?;
                if !allowed.iter().any(|candidate| normalize_typ(candidate) == typ) {
                    return Err(JwtError::WrongTyp);
                }
            }
            None if self.is_another_kind_of_jwt() => return Err(JwtError::WrongTyp),
            None => {}
        }

        let exp = self.numeric_date("exp")?;
        let nbf = self.numeric_date("nbf")?;
        let iat = self.numeric_date("iat")?;
        let now = now_ms as f64 / 1000.0;
        let skew = rules.clock_skew_secs as f64;
        match exp {
            Some(exp) if now >= exp + skew => return Err(JwtError::Expired),
            None if rules.require_exp || rules.max_lifetime_secs.is_some() => {
                return Err(JwtError::MissingClaim("exp".to_owned()))
            }
            _ => {}
        }
        if nbf.is_some_and(|nbf| now + skew < nbf) {
            return Err(JwtError::NotYetValid);
        }
        if iat.is_some_and(|iat| iat > now + skew) {
            return Err(JwtError::IssuedInFuture);
        }
        if let (Some(max), Some(exp)) = (rules.max_lifetime_secs, exp) {
            if exp - iat.unwrap_or(now) > max as f64 {
                return Err(JwtError::LifetimeTooLong);
            }
        }

        if let Some(issuer) = &rules.issuer {
            match self.claim("iss") {
                None => return Err(JwtError::MissingClaim("iss".to_owned())),
                Some(Value::String(iss)) if iss == issuer => {}
                Some(Value::String(_)) => return Err(JwtError::WrongIssuer),
                Some(_) => return Err(JwtError::BadClaimType("iss")),
            }
        }

        check_audience(self.claim("aud"), &rules.audiences)?;

        for name in &rules.required_claims {
            if self.claim(name).is_none_or(Value::is_null) {
                return Err(JwtError::MissingClaim(name.clone()));
            }
        }
        Ok(())
    }

    /// A NumericDate claim: absent, or a finite non-negative number (fractions allowed).
    fn numeric_date(&self, name: &'static str) -> Result<Option<f64>, JwtError> {
        match self.claim(name) {
            None => Ok(None),
            Some(Value::Number(number)) => match number.as_f64() {
                Some(value) if value.is_finite() && value >= 0.0 => Ok(Some(value)),
                _ => Err(JwtError::BadClaimType(name)),
            },
            Some(_) => Err(JwtError::BadClaimType(name)),
        }
    }
}

/// `typ` values of JWTs that an issuer may sign with its token keys but that are never access
/// tokens (RFC 8725 section 3.11): token-introspection responses (RFC 9701 section 8.1), security
/// event tokens (RFC 8417), OpenID Connect back-channel logout tokens, OpenID Federation entity
/// statements and SD-JWT credentials and key-binding JWTs.
const NOT_ACCESS_TOKEN_TYPES: [&str; 7] = [
    "token-introspection+jwt",
    "secevent+jwt",
    "logout+jwt",
    // An OpenID Federation entity statement, published for anyone to fetch.
    "entity-statement+jwt",
    // The parts of an SD-JWT credential a wallet holds and presents.
    "dc+sd-jwt",
    "vc+sd-jwt",
    "kb+jwt",
];

impl Jwt {
    /// Whether the header's `typ` is `media_type`, compared as [`ClaimRules::allowed_typ`] does.
    pub fn typ_is(&self, media_type: &str) -> bool {
        self.typ()
            .is_some_and(|typ| normalize_typ(typ) == normalize_typ(media_type))
    }

    /// Whether the header's `typ` says the token is another kind of JWT than an access token,
    /// with or without media-type parameters (`secevent+jwt; v=1`), whatever a rule allows when
    /// it lists no `typ`.
    pub fn is_another_kind_of_jwt(&self) -> bool {
        let Some(typ) = self.typ() else {
            return false;
        };
        let media_type = normalize_typ(typ.split(';').next().unwrap_or(typ).trim());
        NOT_ACCESS_TOKEN_TYPES
            .iter()
            .any(|other| normalize_typ(other) == media_type)
    }
}

/// `typ` for comparison: lowercase, without an `application/` prefix.
fn normalize_typ(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    match lower.strip_prefix("application/") {
        Some(rest) => rest.to_owned(),
        None => lower,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::*;
    use crate::Alg;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn jwt(claims: Value) -> Jwt {
        Jwt::decode(token(Alg::HS256, &claims).as_bytes(), 16 * 1024).unwrap()
    }

    fn with_typ(typ: Option<&str>) -> Jwt {
        let header = match typ {
            Some(typ) => json!({"alg": "HS256", "typ": typ}),
            None => json!({"alg": "HS256"}),
        };
        Jwt::decode(raw_token(Alg::HS256, &header.to_string(), "{}").as_bytes(), 16 * 1024).unwrap()
    }

    fn check(claims: Value, rules: &ClaimRules) -> Result<(), JwtError> {
        jwt(claims).validate_claims(rules, NOW * 1000)
    }

    fn rules() -> ClaimRules {
        ClaimRules::default()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn defaults() {
        let rules = rules();
        assert_eq!(rules.clock_skew_secs, 60);
        assert!(!rules.require_exp);
        assert_eq!(check(json!({}), &rules), Ok(()));
        let parsed: ClaimRules = serde_json::from_str(r#"{"issuer": "i", "audiences": ["a"]}"#).unwrap();
        assert_eq!(parsed.clock_skew_secs, 60);
        assert_eq!(parsed.issuer.as_deref(), Some("i"));
        assert!(serde_json::from_str::<ClaimRules>(r#"{"isuer": "i"}"#).is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn expiry_with_skew_boundaries() {
        let r = rules();
        assert_eq!(check(json!({"exp": NOW + 1}), &r), Ok(()));
        assert_eq!(check(json!({"exp": NOW}), &r), Ok(()), "within the skew");
        assert_eq!(
            check(json!({"exp": NOW - 59}), &r),
            Ok(()),
            "one second before the edge"
        );
        assert_eq!(
            check(json!({"exp": NOW - 60}), &r),
            Err(JwtError::Expired),
            "exactly at the edge"
        );
        assert_eq!(check(json!({"exp": NOW - 61}), &r), Err(JwtError::Expired));
        let strict = ClaimRules {
            clock_skew_secs: 0,
            ..rules()
        };
        assert_eq!(check(json!({"exp": NOW + 1}), &strict), Ok(()));
        assert_eq!(check(json!({"exp": NOW}), &strict), Err(JwtError::Expired));
        assert_eq!(check(json!({"exp": 0}), &strict), Err(JwtError::Expired));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn fractional_numeric_dates() {
        let strict = ClaimRules {
            clock_skew_secs: 0,
            ..rules()
        };
        assert_eq!(check(json!({"exp": NOW as f64 + 0.5}), &strict), Ok(()));
        assert_eq!(check(json!({"exp": NOW as f64 - 0.5}), &strict), Err(JwtError::Expired));
        assert_eq!(
            check(json!({"nbf": NOW as f64 + 0.5}), &strict),
            Err(JwtError::NotYetValid)
        );
        assert_eq!(
            check(json!({"nbf": NOW as f64 - 0.5, "iat": NOW as f64 - 0.5}), &strict),
            Ok(())
        );
        assert_eq!(check(json!({"exp": 1e300}), &strict), Ok(()));
        assert_eq!(jwt(json!({"exp": NOW as f64 + 0.999})).exp(), Some(NOW));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn numeric_dates_must_be_non_negative_numbers() {
        for name in ["exp", "nbf", "iat"] {
            for bad in [
                json!("1767225600"),
                json!(true),
                json!(null),
                json!(-1),
                json!(-0.5),
                json!([1]),
                json!({}),
            ] {
                assert_eq!(
                    check(json!({ name: bad }), &rules()),
                    Err(JwtError::BadClaimType(name)),
                    "{name}: {bad}"
                );
            }
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn not_before_with_skew_boundaries() {
        let r = rules();
        assert_eq!(check(json!({"nbf": NOW}), &r), Ok(()));
        assert_eq!(check(json!({"nbf": NOW + 60}), &r), Ok(()), "exactly at the edge");
        assert_eq!(check(json!({"nbf": NOW + 61}), &r), Err(JwtError::NotYetValid));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn issued_in_the_future() {
        let r = rules();
        assert_eq!(check(json!({"iat": NOW - 1000}), &r), Ok(()));
        assert_eq!(check(json!({"iat": NOW + 60}), &r), Ok(()), "exactly at the edge");
        assert_eq!(check(json!({"iat": NOW + 61}), &r), Err(JwtError::IssuedInFuture));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn required_exp_and_max_lifetime() {
        let need_exp = ClaimRules {
            require_exp: true,
            ..rules()
        };
        assert_eq!(check(json!({}), &need_exp), Err(JwtError::MissingClaim("exp".into())));
        assert_eq!(check(json!({"exp": NOW + 10}), &need_exp), Ok(()));

        let max = ClaimRules {
            max_lifetime_secs: Some(3600),
            ..rules()
        };
        assert_eq!(check(json!({"iat": NOW, "exp": NOW + 3600}), &max), Ok(()));
        assert_eq!(
            check(json!({"iat": NOW, "exp": NOW + 3601}), &max),
            Err(JwtError::LifetimeTooLong)
        );
        assert_eq!(
            check(json!({"iat": NOW - 3000, "exp": NOW + 601}), &max),
            Err(JwtError::LifetimeTooLong)
        );
        // Without iat the remaining lifetime counts.
        assert_eq!(check(json!({"exp": NOW + 3600}), &max), Ok(()));
        assert_eq!(check(json!({"exp": NOW + 3601}), &max), Err(JwtError::LifetimeTooLong));
        // A bounded lifetime needs an exp.
        assert_eq!(
            check(json!({"iat": NOW}), &max),
            Err(JwtError::MissingClaim("exp".into()))
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn issuer_is_compared_exactly() {
        let r = ClaimRules {
            issuer: Some("https://issuer.example".into()),
            ..rules()
        };
        assert_eq!(check(json!({"iss": "https://issuer.example"}), &r), Ok(()));
        for wrong in [
            "https://issuer.example/",
            "https://ISSUER.example",
            "https://evil.example",
            "",
        ] {
            assert_eq!(check(json!({"iss": wrong}), &r), Err(JwtError::WrongIssuer), "{wrong}");
        }
        assert_eq!(check(json!({}), &r), Err(JwtError::MissingClaim("iss".into())));
        assert_eq!(
            check(json!({"iss": ["https://issuer.example"]}), &r),
            Err(JwtError::BadClaimType("iss"))
        );
        // No issuer configured: anything goes.
        assert_eq!(check(json!({"iss": 5}), &rules()), Ok(()));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn audiences() {
        let r = ClaimRules {
            audiences: vec!["api".into(), "other".into()],
            ..rules()
        };
        assert_eq!(check(json!({"aud": "api"}), &r), Ok(()));
        assert_eq!(check(json!({"aud": ["x", "other"]}), &r), Ok(()));
        assert_eq!(check(json!({"aud": "API"}), &r), Err(JwtError::WrongAudience));
        assert_eq!(check(json!({"aud": ["x", "y"]}), &r), Err(JwtError::WrongAudience));
        assert_eq!(check(json!({"aud": []}), &r), Err(JwtError::WrongAudience));
        assert_eq!(check(json!({}), &r), Err(JwtError::MissingClaim("aud".into())));
        for bad in [
            json!(5),
            json!({"api": true}),
            json!(["api", 5]),
            json!(null),
            json!(true),
        ] {
            assert_eq!(
                check(json!({ "aud": bad }), &r),
                Err(JwtError::BadClaimType("aud")),
                "{bad}"
            );
            // The type is checked even when no audience is configured.
            assert_eq!(
                check(json!({ "aud": bad }), &rules()),
                Err(JwtError::BadClaimType("aud")),
                "{bad}"
            );
        }
        assert_eq!(check(json!({"aud": ["anything"]}), &rules()), Ok(()));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn required_claims() {
        let r = ClaimRules {
            required_claims: vec!["sub".into(), "tenant".into()],
            ..rules()
        };
        assert_eq!(check(json!({"sub": "a", "tenant": {"id": 1}}), &r), Ok(()));
        assert_eq!(
            check(json!({"sub": "a"}), &r),
            Err(JwtError::MissingClaim("tenant".into()))
        );
        assert_eq!(
            check(json!({"sub": null, "tenant": 1}), &r),
            Err(JwtError::MissingClaim("sub".into()))
        );
        assert_eq!(check(json!({"sub": "", "tenant": false}), &r), Ok(()));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_cnf_claim_or_a_dpop_token_type_makes_a_token_sender_constrained() {
        for bound in [
            json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
            json!({"cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}),
            json!({"cnf": {}}),
            json!({"cnf": null}),
            json!({"token_type": "DPoP"}),
            json!({"token_type": "dpop"}),
            json!({"token_type": "DPOP", "cnf": {"jkt": "x"}}),
        ] {
            assert!(sender_constrained(bound.as_object().unwrap()), "{bound}");
            assert!(jwt(bound.clone()).is_sender_constrained(), "{bound}");
        }
        for bearer in [
            json!({}),
            json!({"token_type": "Bearer"}),
            json!({"token_type": "DPoP-ish"}),
            json!({"token_type": 3}),
            json!({"confirmation": {"jkt": "x"}}),
            json!({"act": {"cnf": {"jkt": "x"}}}),
        ] {
            assert!(!sender_constrained(bearer.as_object().unwrap()), "{bearer}");
            assert!(!jwt(bearer.clone()).is_sender_constrained(), "{bearer}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn only_a_cnf_of_exactly_one_well_formed_certificate_thumbprint_binds_to_a_certificate() {
        let thumbprint = [0xfb; 32];
        let encoded = crate::b64::b64url_encode(&thumbprint);
        assert!(encoded.contains('-') && encoded.contains('_'), "{encoded}");
        let of = |claims: Value| Binding::of(claims.as_object().unwrap());
        assert_eq!(
            of(json!({"cnf": {"x5t#S256": encoded}})),
            Binding::Certificate(thumbprint)
        );
        assert_eq!(
            jwt(json!({"cnf": {"x5t#S256": encoded}})).binding(),
            Binding::Certificate(thumbprint)
        );
        assert_eq!(of(json!({"sub": "a"})), Binding::Bearer);
        for unchecked in [
            json!({"cnf": {"x5t#S256": encoded, "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
            json!({"cnf": {"x5t#S256": encoded}, "token_type": "DPoP"}),
            json!({"cnf": {"x5t#S256": format!("{encoded}=")}}),
            json!({"cnf": {"x5t#S256": crate::b64::b64url_encode(&[0xfb; 31])}}),
            json!({"cnf": {"x5t#S256": crate::b64::b64url_encode(&[0xfb; 48])}}),
            json!({"cnf": {"x5t#S256": encoded.replace('-', "+")}}),
            json!({"cnf": {"x5t#S256": [encoded]}}),
            json!({"cnf": {"X5T#S256": encoded}}),
            json!({"cnf": [{"x5t#S256": encoded}]}),
            json!({"cnf": encoded}),
        ] {
            assert_eq!(of(unchecked.clone()), Binding::Unchecked, "{unchecked}");
        }
    }

    /// A connection whose client certificate has this SHA-256 (`None`: none); it counts its reads.
    #[wasm_bindgen_test(unsupported = test)]
    fn the_certificate_is_read_only_for_a_bound_token() {
        let reads = std::cell::Cell::new(0);
        let presenting = |certificate: Option<[u8; 32]>| {
            let reads = &reads;
            move || {
                reads.set(reads.get() + 1);
                certificate
            }
        };
        assert_eq!(Binding::Bearer.check_holder(presenting(Some([1; 32]))), Ok(()));
        assert_eq!(reads.get(), 0, "a bearer token costs no host call");
        assert_eq!(
            Binding::Certificate([1; 32]).check_holder(presenting(Some([1; 32]))),
            Ok(())
        );
        assert_eq!(
            Binding::Certificate([2; 32]).check_holder(presenting(Some([1; 32]))),
            Err(JwtError::CertificateMismatch)
        );
        assert_eq!(
            Binding::Certificate([1; 32]).check_holder(presenting(None)),
            Err(JwtError::CertificateMismatch)
        );
        assert_eq!(reads.get(), 3);
        assert_eq!(Binding::Certificate([1; 32]).certificate(), Some([1; 32]));
        assert_eq!(Binding::Bearer.certificate(), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn two_bindings_of_one_token_hold_together() {
        let (one, two) = (Binding::Certificate([1; 32]), Binding::Certificate([2; 32]));
        assert_eq!(Binding::Bearer.and(Binding::Bearer), Binding::Bearer);
        assert_eq!(Binding::Bearer.and(one), one);
        assert_eq!(one.and(Binding::Bearer), one);
        assert_eq!(one.and(one), one);
        assert_eq!(one.and(two), Binding::Unchecked);
        assert_eq!(one.and(Binding::Unchecked), Binding::Unchecked);
        assert_eq!(Binding::Unchecked.and(Binding::Bearer), Binding::Unchecked);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_certificate_bound_token_needs_its_certificate_and_an_unchecked_binding_is_refused() {
        let bound = Binding::Certificate([1; 32]);
        assert_eq!(bound.check(Some(&[1; 32])), Ok(()));
        assert_eq!(bound.check(Some(&[2; 32])), Err(JwtError::CertificateMismatch));
        assert_eq!(bound.check(None), Err(JwtError::CertificateMismatch));
        assert_eq!(Binding::Bearer.check(None), Ok(()));
        assert_eq!(Binding::Bearer.check(Some(&[2; 32])), Ok(()));
        assert_eq!(
            Binding::Unchecked.check(Some(&[1; 32])),
            Err(JwtError::SenderConstrained)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn typ_is_case_insensitive_and_ignores_the_application_prefix() {
        let at_jwt = ClaimRules {
            allowed_typ: Some(vec!["at+jwt".into()]),
            ..rules()
        };
        for ok in ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"] {
            assert_eq!(with_typ(Some(ok)).validate_claims(&at_jwt, NOW * 1000), Ok(()), "{ok}");
        }
        for bad in [
            Some("JWT"),
            Some("jwt"),
            Some("at+jwt "),
            Some("application/jwt"),
            Some(""),
            None,
        ] {
            assert_eq!(
                with_typ(bad).validate_claims(&at_jwt, NOW * 1000),
                Err(JwtError::WrongTyp),
                "{bad:?}"
            );
        }
        let prefixed = ClaimRules {
            allowed_typ: Some(vec!["application/at+JWT".into(), "JWT".into()]),
            ..rules()
        };
        assert_eq!(with_typ(Some("at+jwt")).validate_claims(&prefixed, NOW * 1000), Ok(()));
        assert_eq!(with_typ(Some("jwt")).validate_claims(&prefixed, NOW * 1000), Ok(()));
        // Not configured: any typ, or none.
        assert_eq!(with_typ(Some("weird")).validate_claims(&rules(), NOW * 1000), Ok(()));
        assert_eq!(with_typ(None).validate_claims(&rules(), NOW * 1000), Ok(()));
    }

    /// RFC 8725 section 3.11: JWTs of other kinds that an issuer signs with the same keys are no
    /// access tokens, also where no `typ` is configured; a rule that lists one takes it.
    #[wasm_bindgen_test(unsupported = test)]
    fn other_kinds_of_jwt_are_refused_unless_a_rule_lists_their_typ() {
        for other in [
            "token-introspection+jwt",
            "application/token-introspection+jwt",
            "SECEVENT+JWT",
            "secevent+jwt; v=1",
            "logout+jwt",
            "entity-statement+jwt",
            "dc+sd-jwt",
            "application/vc+sd-jwt",
            "kb+jwt",
        ] {
            assert_eq!(
                with_typ(Some(other)).validate_claims(&rules(), NOW * 1000),
                Err(JwtError::WrongTyp),
                "{other}"
            );
            let listed = ClaimRules {
                allowed_typ: Some(vec![other.to_owned()]),
                ..rules()
            };
            assert_eq!(
                with_typ(Some(other)).validate_claims(&listed, NOW * 1000),
                Ok(()),
                "{other}"
            );
        }
        for access_token in ["at+jwt", "JWT", "application/jwt", "logout"] {
            assert_eq!(
                with_typ(Some(access_token)).validate_claims(&rules(), NOW * 1000),
                Ok(()),
                "{access_token}"
            );
        }
    }
}
