//! One trusted issuer: its keys, its claim rules, where its tokens come from, what it outputs.

use std::rc::Rc;

use jose::{Binding, ClaimRules, IssuerKeys, IssuerKeysSpec, Jwks, Jwt, Rejection};
use shared::route::RequestLine;
use shared::{ConfigError, Ctx, FieldPath, HeaderName, Headers};

use crate::config::ProviderConfig;
use shared::source::{Found, Source};

pub struct Provider {
    pub name: String,
    pub issuer: String,
    rules: ClaimRules,
    pub sources: Vec<Source>,
    forward: bool,
    claim_headers: Vec<(String, HeaderName)>,
    separator: String,
    payload_header: Option<HeaderName>,
    pub keys: IssuerKeys,
}

/// What a verified token gives the request: header edits and the claims for filter state.
#[derive(Debug, Default)]
pub struct Verified {
    pub headers: Vec<(HeaderName, Vec<u8>)>,
    pub claims_json: Vec<u8>,
    /// The host's native crypto checked the signature (otherwise the wasm implementation did).
    pub by_host: bool,
    /// Bearer, or bound to a client certificate: checked on every request, cached or not.
    pub binding: Binding,
}

impl Provider {
    pub fn compile(name: &str, config: &ProviderConfig, at: &FieldPath) -> Result<Self, ConfigError> {
        let issuer_rules = ClaimRules::for_issuer(&config.issuer, &config.audiences, config.clock_skew_secs, at)?;
        let keys = IssuerKeys::compile(IssuerKeysSpec {
            issuer: &config.issuer,
            jwks: &config.jwks,
            algorithms: config.algorithms.as_deref(),
            store_prefix: jose::store_prefix("jwt_auth", name, &config.issuer),
            at,
        })?;
        if config.from.is_empty() {
            return Err(at.field("from").error("give at least one token source"));
        }
        let sources: Vec<Source> = config
            .from
            .iter()
            .enumerate()
            .map(|(i, s)| Source::compile(s, &at.field("from").index(i)))
            .collect::<Result<_, _>>()?;
        let required_claims = config
            .required_claims
            .iter()
            .enumerate()
            .map(|(i, name)| shared::config::nonempty(name, &at.field("required_claims").index(i)))
            .collect::<Result<_, _>>()?;
        let token_headers: Vec<&HeaderName> = sources
            .iter()
            .filter_map(|source| match source {
                Source::Header { name, .. } => Some(name),
                _ => None,
            })
            .collect();
        let mut set: Vec<&HeaderName> = Vec::new();
        let outputs = config.claims_to_headers.iter().enumerate().map(|(i, c)| {
            let at = at.field("claims_to_headers").index(i);
            (Some((&c.claim, at.field("claim"))), &c.header, at.field("header"))
        });
        let payload = config
            .payload_header
            .iter()
            .map(|h| (None, h, at.field("payload_header")));
        for (claim, header, header_at) in outputs.chain(payload) {
            if let Some((claim, claim_at)) = claim {
                shared::config::nonempty(claim, &claim_at)?;
            }
            output_header(header, &header_at)?;
            if token_headers.contains(&header) {
                return Err(header_at.error(format!("{header:?} is where this provider reads tokens from")));
            }
            if set.contains(&header) {
                return Err(header_at.error(format!("{header:?} is set for another claim already")));
            }
            set.push(header);
        }
        let separator = &config.array_separator;
        if separator.is_empty() || separator.chars().any(|c| c.is_control()) {
            return Err(at
                .field("array_separator")
                .error("give at least one character, and no control characters"));
        }
        Ok(Self {
            name: name.to_owned(),
            issuer: config.issuer.clone(),
            rules: ClaimRules {
                max_lifetime_secs: config.max_lifetime_secs,
                required_claims,
                allowed_typ: allowed_typ(config.typ.as_deref(), &at.field("typ"))?,
                ..issuer_rules
            },
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

    /// The token this provider would check. Tokens in more than one of its sources are
    /// ambiguous (RFC 6750 section 2: one method per request): checking one would let the other
    /// reach the upstream unchecked.
    pub fn find_token<'a>(&self, headers: &'a Headers, line: &RequestLine<'a>) -> Found<'a> {
        let mut found = Found::None;
        for source in &self.sources {
            match (source.find(headers, line), &found) {
                (Found::None, _) => {}
                // It keeps `Authorization` of other schemes: a JWT there would reach the upstream.
                (Found::Malformed | Found::OtherScheme, _) => return Found::Malformed,
                (Found::Ambiguous, _) | (Found::Token(_), Found::Token(_)) => return Found::Ambiguous,
                (token, _) => found = token,
            }
        }
        found
    }

    /// Whether its tokens go on to the upstream (`forward`).
    pub fn forwards(&self) -> bool {
        self.forward
    }

    /// The keys and their version, if there are any.
    pub fn current_keys(&self, ctx: &Ctx) -> Option<(Rc<Jwks>, u64)> {
        self.keys.current(ctx)
    }

    /// Checks a token completely: structure, algorithm, signature, claims. A token bound to a key
    /// in a way this filter checks no proof of (a DPoP key) is refused, or it would take a copied
    /// token for its holder's (RFC 9449 section 7.2); one bound to a client certificate passes
    /// here, and its certificate is checked on each request.
    pub fn verify(&self, jwt: &Jwt, keys: &Jwks, ctx: &Ctx) -> Result<Verified, Rejection> {
        let by_host = self.keys.verify(jwt, keys, &self.rules, ctx)?;
        let binding = jwt.binding();
        if binding == Binding::Unchecked {
            return Err(Rejection::Invalid(jose::JwtError::SenderConstrained));
        }
        Ok(Verified {
            by_host,
            binding,
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
        Verified {
            headers,
            claims_json: jwt.payload_json().to_vec(),
            by_host: false,
            binding: Binding::Bearer,
        }
    }
}

/// The accepted `typ` values: absent means any; an empty list would refuse every token.
fn allowed_typ(typ: Option<&[String]>, at: &FieldPath) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(typ) = typ else {
        return Ok(None);
    };
    if typ.is_empty() {
        return Err(at.error("list at least one value, or leave `typ` out to accept any"));
    }
    typ.iter()
        .enumerate()
        .map(|(i, value)| {
            if value.trim() != value {
                return Err(at.index(i).error("must not begin or end with white space"));
            }
            shared::config::nonempty(value, &at.index(i))
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// A header the provider sets for the upstream: one a filter may set at all, and never
/// `authorization`, which carries the credential itself (and is where tokens are read from by
/// default): a claim in it would stand in for a token the upstream checks.
fn output_header(header: &HeaderName, at: &FieldPath) -> Result<(), ConfigError> {
    header.check_settable(at)?;
    if header.as_str() == "authorization" {
        return Err(at.error("\"authorization\" carries the credential; verified claims never go upstream in it"));
    }
    Ok(())
}

/// The cache key of a token: its SHA-256, never the token itself.
pub fn token_key(token: &[u8]) -> [u8; 32] {
    shared::Secret::sha256_of(token)
}

/// A claim as a header value: strings, integers and booleans as text, arrays of those joined.
/// Not turned into headers, since the upstream would read them as another value:
/// - objects, nulls, and numbers that are not integers within 64 bits (text rounded through a
///   float: two distinct large ids would read the same);
/// - strings that begin or end with white space (`" admin"`: HTTP parsers and list readers trim
///   it, and the upstream would see `admin`);
/// - arrays with an element that contains the separator or any of its visible characters (the
///   upstream could not tell `["user admin"]` from `["user", "admin"]`);
/// - anything with a control character (C0, DEL, C1, tab included) or a Unicode line or paragraph
///   separator.
fn header_value(value: &serde_json::Value, separator: &str) -> Option<Vec<u8>> {
    use serde_json::Value;
    let scalar = |v: &Value| match v {
        Value::String(s) if s.starts_with(is_space_to_some_reader) || s.ends_with(is_space_to_some_reader) => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_f64() => None,
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let text = match value {
        Value::Array(items) => {
            let items = items.iter().map(scalar).collect::<Option<Vec<_>>>()?;
            // With `", "`, `["a,b", "c"]` is `a,b, c`: three items to a reader that splits at the
            // comma and trims, as HTTP list parsers do.
            // With `" "`, `["x\u{a0}admin"]` is two items to a reader that splits at any Unicode
            // space, as Python's `str.split()` and JavaScript's `/\s/` do.
            // A separator with a visible character is what a reader splits at (AD's `Domain Users`
            // joined with `", "` stays one item).
            let splits_at_space = separator.chars().all(is_space_to_some_reader);
            let splits = |item: &String| {
                item.contains(separator)
                    || separator.chars().any(|c| !c.is_whitespace() && item.contains(c))
                    || (splits_at_space && item.chars().any(is_space_to_some_reader))
            };
            if items.iter().any(splits) {
                return None;
            }
            items.join(separator)
        }
        other => scalar(other)?,
    };
    if text
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return None;
    }
    Some(text.into_bytes())
}

/// Unicode's white space, and what JavaScript's `\s` adds to it (U+FEFF) or older Unicode counted
/// (U+180E).
fn is_space_to_some_reader(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{feff}' | '\u{180e}')
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

    #[wasm_bindgen_test(unsupported = test)]
    fn values_an_upstream_would_read_as_another_set_no_header() {
        let v = |json: &str| header_value(&serde_json::from_str(json).unwrap(), ",");
        for trimmed in [r#"" admin""#, r#""admin ""#, r#""\u00a0admin""#, r#""admin\ufeff""#] {
            assert_eq!(v(trimmed), None, "{trimmed}");
        }
        assert_eq!(v(r#"["staff", " admin"]"#), None);
        assert_eq!(v(r#""an admin""#), Some(b"an admin".to_vec()), "inner spaces are kept");
        // Rounded through a float, distinct ids would read the same.
        assert_eq!(v("36893488147419103232"), None);
        assert_eq!(v("1e2"), None);
        assert_eq!(v("1.5"), None);
        assert_eq!(v("-42"), Some(b"-42".to_vec()));
        assert_eq!(v("18446744073709551615"), Some(b"18446744073709551615".to_vec()));
    }

    /// An element holding the separator would read as two elements upstream.
    #[wasm_bindgen_test(unsupported = test)]
    fn array_elements_holding_the_separator_set_no_header() {
        let v = |json: &str, separator: &str| header_value(&serde_json::from_str(json).unwrap(), separator);
        assert_eq!(v(r#"["user admin", "x"]"#, " "), None);
        assert_eq!(v(r#"["user", "admin", "x"]"#, " "), Some(b"user admin x".to_vec()));
        assert_eq!(v(r#"["a,b"]"#, ","), None);
        assert_eq!(
            v(r#"["a,b", "c"]"#, ", "),
            None,
            "a reader that trims splits at the comma"
        );
        assert_eq!(v(r#"["a b", "c"]"#, ", "), Some(b"a b, c".to_vec()));
        assert_eq!(v(r#"["a;b", "c"]"#, " ; "), None);
        assert_eq!(v(r#"["1.5", 2]"#, "."), None);
        assert_eq!(v(r#"[1.5, 2]"#, "."), None, "a number's text counts too");
        assert_eq!(v("[]", ","), Some(Vec::new()));
        // An empty separator joins nothing unambiguously.
        assert_eq!(v(r#"["ab"]"#, ""), None);
        // Spaces beyond ASCII split too, to Python's `str.split()` and JavaScript's `/\s+/`.
        for space in [
            "\u{a0}", "\u{2003}", "\u{3000}", "\u{1680}", "\u{202f}", "\u{feff}", "\u{180e}",
        ] {
            let claim = serde_json::json!([format!("x{space}admin"), "y"]);
            assert_eq!(header_value(&claim, " "), None, "{space:?}");
            assert_eq!(header_value(&claim, "  "), None, "{space:?} with two spaces");
            assert_eq!(
                header_value(&claim, ","),
                Some(format!("x{space}admin,y").into_bytes()),
                "{space:?} with a separator that is no space"
            );
        }
        // A string is not an array: its commas are the issuer's.
        assert_eq!(v(r#""a,b""#, ","), Some(b"a,b".to_vec()));
    }

    /// Control characters beyond ASCII (C1, NEL) and U+2028/U+2029 never reach a header; other
    /// non-ASCII text does.
    #[wasm_bindgen_test(unsupported = test)]
    fn control_characters_beyond_ascii_set_no_header() {
        let v = |value: serde_json::Value| header_value(&value, ",");
        for bad in [
            "a\u{85}b",
            "a\u{80}",
            "\u{9f}",
            "a\u{2028}b",
            "a\u{2029}b",
            "a\tb",
            "a\u{7f}",
            "a\0",
        ] {
            assert_eq!(v(serde_json::json!(bad)), None, "{bad:?}");
            assert_eq!(v(serde_json::json!(["ok", bad])), None, "{bad:?} in an array");
        }
        assert_eq!(v(serde_json::json!("José")), Some("José".as_bytes().to_vec()));
        assert_eq!(
            v(serde_json::json!(["Zoë", "東京"])),
            Some("Zoë,東京".as_bytes().to_vec())
        );
    }
}
