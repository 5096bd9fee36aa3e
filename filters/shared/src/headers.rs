//! Byte-safe, case-insensitive HTTP header types.
//!
//! Header values are raw bytes: a client can send any obs-text byte, and a filter that assumed
//! UTF-8 would either panic or be bypassed. Names are normalised to lowercase once, when they
//! enter (the host already delivers lowercase names; config and tests may not).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{ConfigError, FieldPath};

/// A validated, lowercase header name (an RFC 9110 token, or an HTTP/2 pseudo-header).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(extend("pattern" = "^:?[-!#$%&'*+.^_`|~0-9A-Za-z]+$"))
)]
pub struct HeaderName(String);

impl HeaderName {
    /// Validates `name` as a token and lowercases it.
    pub fn new(name: &str) -> Result<Self, String> {
        let token = name.strip_prefix(':').unwrap_or(name);
        if token.is_empty() {
            return Err("header name is empty".into());
        }
        if let Some(bad) = token.bytes().find(|b| !is_token_byte(*b)) {
            return Err(format!(
                "header name {name:?} contains {:?}, which is not allowed in a header name",
                char::from(bad)
            ));
        }
        Ok(Self(name.to_ascii_lowercase()))
    }

    /// For names that are valid already: spelled by the code, or read from the host.
    /// Lowercases; does not validate.
    pub fn trusted(name: &str) -> Self {
        Self(name.to_ascii_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Refuses a header that a filter may not set from its config (a claim copied upstream, a
    /// response header let through): a pseudo-header (the request line or the status, not a
    /// header), `host` (where the upstream request goes), and the hop-by-hop and framing headers
    /// (RFC 9110 section 7.6.1, RFC 9112), which belong to the connection and the message's
    /// length, not to its content. A filter that has more names it must not set checks those
    /// itself.
    pub fn check_settable(&self, at: &FieldPath) -> Result<(), ConfigError> {
        let name = self.as_str();
        let why = if name.starts_with(':') {
            "is a pseudo-header"
        } else if name == "host" {
            "names the upstream authority"
        } else if CONNECTION_HEADERS.contains(&name) {
            "is a hop-by-hop or framing header"
        } else {
            return Ok(());
        };
        Err(at.error(format!("{name:?} {why}; a filter may not set it")))
    }
}

/// Headers of the connection or the message framing, never set from a filter's config.
const CONNECTION_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
];

/// An RFC 9110 `tchar`: a byte of a header name, a method or an auth scheme.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl fmt::Debug for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        HeaderName::new(&raw).map_err(serde::de::Error::custom)
    }
}

impl crate::config::FromConfig for HeaderName {
    fn from_config(at: crate::config::At<'_, '_>) -> Result<Self, crate::config::Error> {
        HeaderName::new(at.str("a string")?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for HeaderName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// The headers of one request or response as the host holds them: in order, duplicates kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, Vec<u8>)>,
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds from host pairs; names are lowercased.
    pub fn from_pairs<N: AsRef<str>, V: Into<Vec<u8>>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        Self {
            entries: pairs
                .into_iter()
                .map(|(n, v)| (n.as_ref().to_ascii_lowercase(), v.into()))
                .collect(),
        }
    }

    /// Takes the host's pairs as they are, lowercasing names in place: no copy of each name.
    pub fn from_owned(mut entries: Vec<(String, Vec<u8>)>) -> Self {
        for (name, _) in &mut entries {
            name.make_ascii_lowercase();
        }
        Self { entries }
    }

    pub fn push(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.entries.push((name.to_ascii_lowercase(), value.into()));
    }

    /// Whether the request asks the upstream to run another method than its own: a
    /// method-override header ([`METHOD_OVERRIDE_HEADERS`], in any spelling [`is_method_override`]
    /// knows) or a [`METHOD_OVERRIDE_PARAMETER`] in its query.
    pub fn has_method_override(&self) -> bool {
        self.entries.iter().any(|(name, _)| is_method_override(name)) || self.query_overrides_method()
    }

    /// Whether the request asks the upstream to serve another path than its own: a path-override
    /// header ([`PATH_OVERRIDE_HEADERS`], in any letter case and with `_` for `-`).
    pub fn has_path_override(&self) -> bool {
        self.entries
            .iter()
            .any(|(name, _)| is_one_of(&PATH_OVERRIDE_HEADERS, name))
    }

    fn query_overrides_method(&self) -> bool {
        let query = self
            .get_str(":path")
            .and_then(|path| path.split('#').next()?.split_once('?'))
            .map(|(_, query)| query);
        query.is_some_and(|query| {
            query
                .split(['&', ';'])
                .any(|pair| is_method_override_parameter(pair.split_once('=').map_or(pair, |(name, _)| name)))
        })
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `name`, if it is valid UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// Distinct names, in first-seen order.
    pub fn names(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for (name, _) in &self.entries {
            if !seen.contains(&name.as_str()) {
                seen.push(name);
            }
        }
        seen
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The request method (`:method`).
    pub fn method(&self) -> Option<&str> {
        self.get_str(":method")
    }

    /// The request path (`:path`), query included.
    pub fn path(&self) -> Option<&[u8]> {
        self.get(":path")
    }

    /// A CORS preflight: an `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    pub fn is_cors_preflight(&self) -> bool {
        self.method() == Some("OPTIONS") && self.contains("origin") && self.contains("access-control-request-method")
    }

    /// A CORS preflight an authenticating filter may let through without a token: one that asks
    /// for no other method than its own `OPTIONS`, as a browser's never does (an upstream that
    /// honoured the override would run that method unchecked).
    pub fn is_plain_cors_preflight(&self) -> bool {
        self.is_cors_preflight() && !self.has_method_override()
    }

    /// The response status (`:status`).
    pub fn status(&self) -> Option<u16> {
        self.get_str(":status").and_then(|s| s.parse().ok())
    }

    /// Applies edits the way the adapter asks the host to, so fakes and tests see the same result.
    pub fn apply(&mut self, edits: &[crate::HeaderEdit]) {
        for edit in edits {
            match edit {
                crate::HeaderEdit::Remove(name) => self.remove(name.as_str()),
                crate::HeaderEdit::Set(name, value) => {
                    self.remove(name.as_str());
                    self.push(name.as_str(), value.clone());
                }
                crate::HeaderEdit::Add(name, value) => self.push(name.as_str(), value.clone()),
            }
        }
    }

    fn remove(&mut self, name: &str) {
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

/// Headers that ask the upstream to run another method than the request line's
/// (`POST` with `X-HTTP-Method-Override: DELETE`): Rails (Rack::MethodOverride), Express's
/// `method-override`, Spring's and many Java frameworks' filters honour them, so a rule judged on
/// the request's own method would miss the method the upstream runs.
pub const METHOD_OVERRIDE_HEADERS: [&str; 3] = ["x-http-method-override", "x-http-method", "x-method-override"];

/// Whether `name` is one of [`METHOD_OVERRIDE_HEADERS`], in any letter case and with `_` for `-`
/// (Rack and CGI read `X_HTTP_Method_Override` as the same header).
pub fn is_method_override(name: &str) -> bool {
    is_one_of(&METHOD_OVERRIDE_HEADERS, name)
}

/// Headers that ask the upstream to serve another path than the request line's
/// (`GET /public/x` with `X-Original-URL: /admin`): Zend Framework 1, Symfony before 2.8.44
/// (CVE-2018-14773) and applications behind IIS URL Rewrite route by them, so a rule judged on the
/// request's own path would miss the path the upstream serves. No client has a reason to send one.
pub const PATH_OVERRIDE_HEADERS: [&str; 2] = ["x-original-url", "x-rewrite-url"];

/// Whether `name` is one of `names` (lowercase, with `-`), in any letter case and with `_` for `-`.
pub(crate) fn is_one_of(names: &[&str], name: &str) -> bool {
    let fold = |b: u8| if b == b'_' { b'-' } else { b.to_ascii_lowercase() };
    names
        .iter()
        .any(|o| o.len() == name.len() && o.bytes().zip(name.bytes()).all(|(o, n)| o == fold(n)))
}

/// The query parameter Symfony, Laravel and Spring's `HiddenHttpMethodFilter` run the method of
/// instead of the request's (`POST /orders/1?_method=DELETE`).
pub const METHOD_OVERRIDE_PARAMETER: &str = "_method";

/// Whether a query parameter's raw name reads as [`METHOD_OVERRIDE_PARAMETER`] to some upstream
/// (see [`crate::query::reads_as`]: `%5Fmethod`, `_METHOD`, `.method`, and what PHP makes
/// `_method` of, `+_method` or `_method%00x`).
fn is_method_override_parameter(raw: &str) -> bool {
    crate::query::reads_as(raw, METHOD_OVERRIDE_PARAMETER)
}

/// Splits a comma-separated header value (`a, b,c`) into trimmed, non-empty items.
pub fn split_list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(|item| item.trim_ascii())
        .filter(|item| !item.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeaderEdit;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn names_are_validated_and_lowercased() {
        assert_eq!(
            HeaderName::new("X-User-Id").map(|n| n.to_string()),
            Ok("x-user-id".into())
        );
        assert_eq!(
            HeaderName::new(":authority").map(|n| n.to_string()),
            Ok(":authority".into())
        );
        assert!(HeaderName::new("").is_err());
        assert!(HeaderName::new("bad name").is_err());
        assert!(HeaderName::new("bad:name").is_err());
        assert!(HeaderName::new("x\u{e9}").is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_filter_may_not_set_pseudo_host_or_connection_headers() {
        let at = FieldPath::root().field("claims_to_headers").index(0).field("header");
        let check = |name: &str| {
            HeaderName::new(name)
                .unwrap()
                .check_settable(&at)
                .map_err(|e| e.to_string())
        };
        for fine in [
            "x-user-id",
            "x-jwt-payload",
            "authorization",
            "cache-control",
            "x-host",
            "tea",
        ] {
            assert_eq!(check(fine), Ok(()), "{fine}");
        }
        assert_eq!(
            check(":path").unwrap_err(),
            "claims_to_headers[0].header: \":path\" is a pseudo-header; a filter may not set it"
        );
        assert_eq!(
            check(":Status").unwrap_err(),
            "claims_to_headers[0].header: \":status\" is a pseudo-header; a filter may not set it"
        );
        assert_eq!(
            check("Host").unwrap_err(),
            "claims_to_headers[0].header: \"host\" names the upstream authority; a filter may not set it"
        );
        for name in CONNECTION_HEADERS.iter().map(|name| name.to_ascii_uppercase()) {
            let name = name.as_str();
            assert_eq!(
                check(name).unwrap_err(),
                format!(
                    "claims_to_headers[0].header: {:?} is a hop-by-hop or framing header; a filter may not set it",
                    name.to_ascii_lowercase()
                )
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn lookups_are_case_insensitive_and_keep_duplicates() {
        let h = Headers::from_pairs([("X-A", &b"1"[..]), ("x-a", b"\xff"), ("b", b"2")]);
        assert_eq!(h.get("x-a"), Some(&b"1"[..]));
        assert_eq!(h.count("X-A"), 2);
        assert_eq!(h.get_all("x-a").collect::<Vec<_>>(), vec![&b"1"[..], b"\xff"]);
        assert_eq!(h.names(), vec!["x-a", "b"]);
        assert_eq!(h.get_str("b"), Some("2"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn non_utf8_values_are_kept_as_bytes() {
        let h = Headers::from_pairs([("x", &b"\xc3\x28"[..])]);
        assert_eq!(h.get("x"), Some(&b"\xc3\x28"[..]));
        assert_eq!(h.get_str("x"), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn edits_remove_every_duplicate_and_set_replaces() {
        let mut h = Headers::from_pairs([("a", "1"), ("A", "2"), ("b", "3")]);
        h.apply(&[
            HeaderEdit::Remove(HeaderName::trusted("a")),
            HeaderEdit::Set(HeaderName::trusted("b"), b"4".to_vec()),
            HeaderEdit::Add(HeaderName::trusted("c"), b"5".to_vec()),
        ]);
        assert_eq!(h, Headers::from_pairs([("b", "4"), ("c", "5")]));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_host_pairs_are_taken_as_they_are_with_names_lowercased() {
        let pairs = vec![("X-A".to_owned(), b"1".to_vec()), ("x-a".to_owned(), b"\xff".to_vec())];
        assert_eq!(
            Headers::from_owned(pairs),
            Headers::from_pairs([("x-a", &b"1"[..]), ("x-a", b"\xff")])
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_method_parameter_in_the_query_overrides_the_method_as_upstreams_read_it() {
        let overrides = |path: &str| Headers::from_pairs([(":method", "POST"), (":path", path)]).has_method_override();
        for path in [
            "/orders/1?_method=DELETE",
            "/orders/1?a=1&_method=PUT",
            "/orders/1?a=1;_method=PUT",
            "/orders/1?_METHOD=DELETE",
            "/orders/1?%5Fmethod=DELETE",
            "/orders/1?%5fMethod=DELETE",
            "/orders/1?.method=DELETE",
            "/orders/1?+method=DELETE",
            "/orders/1?%20method=DELETE",
            "/orders/1?_method",
            // PHP drops leading spaces and ends a name at a NUL; `_method[]` is an array of it.
            "/orders/1?+_method=DELETE",
            "/orders/1?%20_method=DELETE",
            "/orders/1?_method%00x=DELETE",
            "/orders/1?_method[]=DELETE",
        ] {
            assert!(overrides(path), "{path}");
        }
        for path in [
            "/orders/1",
            "/orders/1?",
            "/orders/1?method=DELETE",
            "/orders/1?x_method=DELETE",
            "/orders/1?a=_method",
            "/orders/1#?_method=DELETE",
            "/_method?a=1",
            "/orders/1?%5Gmethod=DELETE",
        ] {
            assert!(!overrides(path), "{path}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_preflight_asking_for_another_method_is_not_plain() {
        let preflight = |extra: (&'static str, &'static str)| {
            Headers::from_pairs([
                (":method", "OPTIONS"),
                (":path", "/orders/1"),
                ("origin", "https://app.example"),
                ("access-control-request-method", "DELETE"),
                extra,
            ])
        };
        assert!(preflight(("accept", "*/*")).is_plain_cors_preflight());
        assert!(!preflight(("x-http-method-override", "DELETE")).is_plain_cors_preflight());
        assert!(preflight(("x-http-method-override", "DELETE")).is_cors_preflight());
        let mut with_parameter = preflight(("accept", "*/*"));
        with_parameter.apply(&[crate::HeaderEdit::Set(
            HeaderName::trusted(":path"),
            b"/orders/1?_method=DELETE".to_vec(),
        )]);
        assert!(!with_parameter.is_plain_cors_preflight());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn method_override_headers_are_known_in_any_case_and_with_underscores() {
        for name in [
            "x-http-method-override",
            "X-HTTP-Method-Override",
            "x_http_method_override",
            "x-http-method",
            "X-Method-Override",
        ] {
            assert!(is_method_override(name), "{name}");
        }
        for name in [
            "x-http-method-overrid",
            "x-http-methods",
            "method-override",
            "x-method",
            "",
        ] {
            assert!(!is_method_override(name), "{name}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn list_values_split_on_commas() {
        let items: Vec<&[u8]> = split_list(b" a, b ,,c").collect();
        assert_eq!(items, vec![&b"a"[..], b"b", b"c"]);
    }
}
