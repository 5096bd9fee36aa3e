//! CORS: which cross-origin requests may read responses, and the answer to preflights.

use serde::Deserialize;

use shared::headers::split_list;
use shared::{ConfigError, FieldPath, HeaderName, Headers};

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins, e.g. `https://app.example.com` (scheme, host, optional port; no path).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Answer every origin with `*`. Refused together with `allow_credentials`.
    #[serde(default)]
    pub allow_any_origin: bool,
    #[serde(default = "default_methods")]
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<HeaderName>,
    #[serde(default)]
    pub exposed_headers: Vec<HeaderName>,
    pub max_age_secs: Option<u32>,
    #[serde(default)]
    pub allow_credentials: bool,
}

fn default_methods() -> Vec<String> {
    ["GET", "HEAD", "POST"].map(String::from).to_vec()
}

/// A compiled CORS policy.
#[derive(Debug)]
pub struct Cors {
    origins: Vec<String>,
    any_origin: bool,
    methods: Vec<String>,
    headers: Vec<HeaderName>,
    allow_methods_value: String,
    allow_headers_value: String,
    expose_headers_value: String,
    max_age: Option<u32>,
    credentials: bool,
}

/// What the request phase decided about CORS, for the response phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No `Origin`: not a CORS request.
    NotCors,
    /// An allowed origin: the response carries CORS headers for it.
    Allowed { origin: String },
    /// An origin not on the list: the response carries no CORS headers.
    Refused,
}

impl Cors {
    pub fn compile(config: &CorsConfig, path: &FieldPath) -> Result<Self, ConfigError> {
        if config.allow_any_origin && config.allow_credentials {
            return Err(path
                .field("allow_any_origin")
                .error("cannot be combined with allow_credentials: list the origins that may send credentials"));
        }
        if !config.allow_any_origin && config.allowed_origins.is_empty() {
            return Err(path
                .field("allowed_origins")
                .error("list at least one origin, or set allow_any_origin"));
        }
        let mut origins = Vec::new();
        for (i, origin) in config.allowed_origins.iter().enumerate() {
            origins.push(parse_origin(origin).map_err(|e| path.field("allowed_origins").index(i).error(e))?);
        }
        for (i, method) in config.allowed_methods.iter().enumerate() {
            if HeaderName::new(method).is_err() || method.starts_with(':') {
                return Err(path
                    .field("allowed_methods")
                    .index(i)
                    .error(format!("{method:?} is not an HTTP method")));
            }
            // Methods are case-sensitive, and browsers send the standard ones in uppercase
            // whatever the page wrote (Fetch, "normalize a method"): `get` would never match.
            if method.bytes().any(|b| b.is_ascii_lowercase()) {
                return Err(path.field("allowed_methods").index(i).error(format!(
                    "{method:?}: write methods in uppercase ({:?}), as browsers send them in preflights",
                    method.to_ascii_uppercase()
                )));
            }
        }
        let join = |names: &[HeaderName]| names.iter().map(HeaderName::as_str).collect::<Vec<_>>().join(", ");
        Ok(Self {
            origins,
            any_origin: config.allow_any_origin,
            methods: config.allowed_methods.clone(),
            headers: config.allowed_headers.clone(),
            allow_methods_value: config.allowed_methods.join(", "),
            allow_headers_value: join(&config.allowed_headers),
            expose_headers_value: join(&config.exposed_headers),
            max_age: config.max_age_secs,
            credentials: config.allow_credentials,
        })
    }

    /// Judges the request's `Origin`.
    pub fn verdict(&self, request: &Headers) -> Verdict {
        let Some(origin) = request.get("origin") else {
            return Verdict::NotCors;
        };
        match std::str::from_utf8(origin) {
            Ok(origin) if self.any_origin || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) => {
                Verdict::Allowed {
                    origin: origin.to_owned(),
                }
            }
            _ => Verdict::Refused,
        }
    }

    /// Whether the preflight's method and headers are all allowed.
    pub fn preflight_allowed(&self, request: &Headers) -> bool {
        let method_ok = request
            .get("access-control-request-method")
            .is_some_and(|m| self.methods.iter().any(|allowed| allowed.as_bytes() == m));
        let headers_ok = request
            .get_all("access-control-request-headers")
            .flat_map(split_list)
            .all(|wanted| {
                self.headers
                    .iter()
                    .any(|allowed| allowed.as_str().as_bytes().eq_ignore_ascii_case(wanted))
            });
        method_ok && headers_ok
    }

    /// Headers for the answer to an allowed preflight.
    pub fn preflight_headers(&self, origin: &str) -> Vec<(HeaderName, String)> {
        let mut headers = self.origin_headers(origin);
        headers.push((
            HeaderName::trusted("access-control-allow-methods"),
            self.allow_methods_value.clone(),
        ));
        if !self.allow_headers_value.is_empty() {
            headers.push((
                HeaderName::trusted("access-control-allow-headers"),
                self.allow_headers_value.clone(),
            ));
        }
        if let Some(max_age) = self.max_age {
            headers.push((HeaderName::trusted("access-control-max-age"), max_age.to_string()));
        }
        headers
    }

    /// Headers for the response to an allowed actual (non-preflight) request.
    /// Whether the allowed origin is named in the answer (rather than `*`).
    pub fn reflects_origin(&self) -> bool {
        !self.any_origin
    }

    pub fn response_headers(&self, origin: &str) -> Vec<(HeaderName, String)> {
        let mut headers = self.origin_headers(origin);
        if !self.expose_headers_value.is_empty() {
            headers.push((
                HeaderName::trusted("access-control-expose-headers"),
                self.expose_headers_value.clone(),
            ));
        }
        headers
    }

    fn origin_headers(&self, origin: &str) -> Vec<(HeaderName, String)> {
        let allow_origin = if self.any_origin {
            "*".to_owned()
        } else {
            origin.to_owned()
        };
        let mut headers = vec![(HeaderName::trusted("access-control-allow-origin"), allow_origin)];
        if self.credentials {
            headers.push((
                HeaderName::trusted("access-control-allow-credentials"),
                "true".to_owned(),
            ));
        }
        headers
    }
}

/// Validates a configured origin and returns it lowercased.
fn parse_origin(origin: &str) -> Result<String, String> {
    match origin {
        "*" => return Err("\"*\" is not an origin: set allow_any_origin instead".into()),
        "null" => return Err("the \"null\" origin is refused: sandboxed and file pages all share it".into()),
        _ => {}
    }
    let not_origin = || format!("{origin:?} is not an origin (expected scheme://host[:port] with no path)");
    let (scheme, rest) = origin.split_once("://").ok_or_else(not_origin)?;
    let scheme_ok = !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let (host, port) = match rest.rsplit_once(':') {
        // In `[::1]:8080` the port follows the bracket; in `[::1]` there is none.
        Some((host, port)) if !rest.starts_with('[') || host.ends_with(']') => (host, Some(port)),
        _ => (rest, None),
    };
    let host_ok = match host.strip_prefix('[') {
        // An IPv6 literal: an address in brackets, nothing else. Its characters only: a full
        // parse would cost the module 3 KB of std's address parser for a config check.
        Some(literal) => literal.strip_suffix(']').is_some_and(|address| {
            address.contains(':') && address.bytes().all(|b| b.is_ascii_hexdigit() || b":.".contains(&b))
        }),
        None => {
            !host.is_empty()
                && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
                && !host.starts_with('.')
                && !host.contains("..")
        }
    };
    let port_ok = port.is_none_or(|p| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok());
    if scheme_ok && host_ok && port_ok {
        Ok(origin.to_ascii_lowercase())
    } else {
        Err(not_origin())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn origins_are_validated() {
        for good in [
            "https://app.example.com",
            "http://localhost:3000",
            "https://APP.example.com",
            "http://[::1]:8080",
            "http://[::1]",
            "https://[2001:db8::7]:443",
            "http://192.0.2.7:65535",
        ] {
            assert!(parse_origin(good).is_ok(), "{good}");
        }
        for bad in [
            "*",
            "null",
            "app.example.com",
            "https://app.example.com/",
            "https://a.example/path",
            "https://",
            "https://a:port",
            "https://a b",
            "https://[::1",
            "https://::1]",
            "https://[::1]x",
            "https://[not-an-address]",
            "https://[]",
            "https://a]:80",
            "https://a:b:80",
            "https://a..example",
            "https://a.example:65536",
            "https://a.example:",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_origin("HTTPS://A.example").unwrap(), "https://a.example");
    }
}
