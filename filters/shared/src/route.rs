//! Which requests a rule applies to: path (exact, prefix or regex) and methods.
//!
//! Paths are matched without query or fragment, on the path as the proxy forwards it (run Envoy
//! with `normalize_path` and `merge_slashes`, as the shipped configs do).

use regex_lite::Regex;
use serde::Deserialize;

use crate::config::{ConfigError, FieldPath};
use crate::headers::Headers;

/// A route match as written in config. Exactly one of `exact`, `prefix`, `regex`; no path at all
/// matches every path.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct RouteMatchConfig {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    /// Matched against the whole path (anchored).
    pub regex: Option<String>,
    /// Methods, exact and case-sensitive; empty or absent: every method.
    #[serde(default)]
    pub methods: Vec<String>,
}

#[derive(Debug)]
enum PathMatch {
    Any,
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

/// A compiled route match.
#[derive(Debug)]
pub struct RouteMatch {
    path: PathMatch,
    methods: Vec<String>,
}

impl RouteMatch {
    pub fn compile(config: &RouteMatchConfig, at: &FieldPath) -> Result<Self, ConfigError> {
        let path = match (&config.exact, &config.prefix, &config.regex) {
            (None, None, None) => PathMatch::Any,
            (Some(exact), None, None) => PathMatch::Exact(checked_path(exact, &at.field("exact"))?),
            (None, Some(prefix), None) => PathMatch::Prefix(checked_path(prefix, &at.field("prefix"))?),
            (None, None, Some(regex)) => PathMatch::Regex(
                Regex::new(&format!("^(?:{regex})$"))
                    .map_err(|e| at.field("regex").error(format!("invalid regex: {e}")))?,
            ),
            _ => return Err(at.error("give at most one of exact, prefix, regex")),
        };
        for (i, method) in config.methods.iter().enumerate() {
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_') {
                return Err(at
                    .field("methods")
                    .index(i)
                    .error(format!("{method:?} is not an HTTP method")));
            }
        }
        Ok(Self {
            path,
            methods: config.methods.clone(),
        })
    }

    /// Matches every request.
    pub fn any() -> Self {
        Self {
            path: PathMatch::Any,
            methods: Vec::new(),
        }
    }

    pub fn matches(&self, request: &RequestLine<'_>) -> bool {
        let method_ok = self.methods.is_empty() || self.methods.iter().any(|m| m == request.method);
        method_ok
            && match &self.path {
                PathMatch::Any => true,
                PathMatch::Exact(exact) => request.path == exact,
                PathMatch::Prefix(prefix) => request.path.starts_with(prefix.as_str()),
                PathMatch::Regex(regex) => regex.is_match(request.path),
            }
    }
}

fn checked_path(path: &str, at: &FieldPath) -> Result<String, ConfigError> {
    if !path.starts_with('/') {
        return Err(at.error(format!("{path:?} must start with '/'")));
    }
    if path.contains(['?', '#']) {
        return Err(at.error("a path match never sees the query or fragment: remove '?'/'#'"));
    }
    Ok(path.to_owned())
}

/// Method and path (query and fragment cut off) of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The query string without `?`, if any.
    pub query: Option<&'a str>,
}

impl<'a> RequestLine<'a> {
    /// `None` if `:method` or `:path` is missing or not UTF-8 (the host never sends such a request).
    pub fn of(headers: &'a Headers) -> Option<Self> {
        let method = headers.method()?;
        let full = std::str::from_utf8(headers.path()?).ok()?;
        let without_fragment = full.split_once('#').map_or(full, |(p, _)| p);
        let (path, query) = match without_fragment.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (without_fragment, None),
        };
        Some(Self { method, path, query })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn compile(json: &str) -> Result<RouteMatch, ConfigError> {
        let config: RouteMatchConfig = crate::config::parse(json.as_bytes())?;
        RouteMatch::compile(&config, &FieldPath::root().field("match"))
    }

    fn line<'a>(method: &'a str, path: &'a str) -> RequestLine<'a> {
        RequestLine {
            method,
            path,
            query: None,
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn path_forms_and_methods() {
        let exact = compile(r#"{"exact": "/orders"}"#).unwrap();
        assert!(exact.matches(&line("GET", "/orders")));
        assert!(!exact.matches(&line("GET", "/orders/1")));
        let prefix = compile(r#"{"prefix": "/orders/", "methods": ["POST"]}"#).unwrap();
        assert!(prefix.matches(&line("POST", "/orders/1")));
        assert!(!prefix.matches(&line("GET", "/orders/1")));
        assert!(!prefix.matches(&line("post", "/orders/1")));
        let regex = compile(r#"{"regex": "/orders/[0-9]+"}"#).unwrap();
        assert!(regex.matches(&line("GET", "/orders/42")));
        assert!(!regex.matches(&line("GET", "/orders/42/items")));
        assert!(compile("{}").unwrap().matches(&line("DELETE", "/anything")));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn request_lines_drop_query_and_fragment() {
        let h = Headers::from_pairs([(":method", "GET"), (":path", "/a/b?x=1#frag")]);
        assert_eq!(
            RequestLine::of(&h),
            Some(RequestLine {
                method: "GET",
                path: "/a/b",
                query: Some("x=1")
            })
        );
        let h = Headers::from_pairs([(":method", "GET"), (":path", "/a#f?x")]);
        assert_eq!(RequestLine::of(&h).map(|l| l.path), Some("/a"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn bad_matches_are_refused_with_paths() {
        let err = |json: &str| compile(json).unwrap_err().to_string();
        assert!(err(r#"{"exact": "/a", "prefix": "/b"}"#).starts_with("match: give at most one"));
        assert!(err(r#"{"prefix": "orders"}"#).starts_with("match.prefix: "));
        assert!(err(r#"{"exact": "/a?b=1"}"#).starts_with("match.exact: "));
        assert!(err(r#"{"regex": "("}"#).starts_with("match.regex: invalid regex"));
        assert!(err(r#"{"methods": ["GET", "get"]}"#).starts_with("match.methods[1]: "));
    }
}
