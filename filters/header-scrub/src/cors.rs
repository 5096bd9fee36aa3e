//! CORS: which cross-origin requests may read responses, and the answer to preflights.

use shared::config::FromConfig;

use shared::headers::split_list;
use shared::ip;
use shared::{ConfigError, FieldPath, HeaderName, Headers};

/// Browsers read `*` in the allowed methods and headers as "any" (without credentials); this
/// filter allows what the lists name, so a `*` would refuse every preflight it seems to allow.
const WILDCARD: &str = "\"*\" is not a wildcard here: list what preflights may ask for";

#[derive(Debug, FromConfig)]
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

/// The CORS-safelisted methods (Fetch standard).
const SAFELISTED_METHODS: [&str; 3] = ["GET", "HEAD", "POST"];

impl Cors {
    pub fn compile(config: &CorsConfig, path: &FieldPath) -> Result<Self, ConfigError> {
        if config.allow_any_origin && config.allow_credentials {
            return Err(path
                .field("allow_any_origin")
                .error("cannot be combined with allow_credentials: list the origins that may send credentials"));
        }
        if config.allow_any_origin && !config.allowed_origins.is_empty() {
            return Err(path
                .field("allowed_origins")
                .error("allow_any_origin answers every origin: list origins or allow any, not both"));
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
            if method == "*" {
                return Err(path.field("allowed_methods").index(i).error(WILDCARD));
            }
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
        if let Some(i) = config.allowed_headers.iter().position(|name| name.as_str() == "*") {
            return Err(path.field("allowed_headers").index(i).error(WILDCARD));
        }
        // Without credentials `*` exposes every header; with them, browsers read a header named `*`.
        let exposed_wildcard = config.exposed_headers.iter().position(|name| name.as_str() == "*");
        if let Some(i) = exposed_wildcard.filter(|_| config.allow_credentials) {
            return Err(path
                .field("exposed_headers")
                .index(i)
                .error("\"*\" exposes nothing to requests with credentials: list the headers to expose"));
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
        // Browsers take a CORS-safelisted method whatever the answer lists (Fetch, CORS-preflight
        // fetch): a `GET` preflighted for its headers is judged by those.
        let method_ok = request.get("access-control-request-method").is_some_and(|m| {
            SAFELISTED_METHODS.iter().any(|safe| safe.as_bytes() == m)
                || self.methods.iter().any(|allowed| allowed.as_bytes() == m)
        });
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

/// Validates a configured origin and returns it as browsers send it in `Origin` (the WHATWG URL
/// serialization): lowercase, without the scheme's default port, and an IPv6 host in its
/// canonical form. `https://App.example:443` or `http://[2001:DB8:0::7]` would otherwise never
/// match a request.
fn parse_origin(origin: &str) -> Result<String, String> {
    match origin {
        "*" => return Err("\"*\" is not an origin: set allow_any_origin instead".into()),
        "null" => return Err("the \"null\" origin is refused: sandboxed and file pages all share it".into()),
        _ => {}
    }
    let not_origin = || format!("{origin:?} is not an origin (expected scheme://host[:port] with no path)");
    // Bytewise: a `&str` pattern links core's two-way substring search, 2.4 KB of the module.
    let separator = origin.as_bytes().windows(3).position(|w| w == b"://");
    let (scheme, rest) = separator
        .and_then(|i| Some((origin.get(..i)?, origin.get(i + 3..)?)))
        .ok_or_else(not_origin)?;
    let scheme_ok = !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let (host, port) = match rest.rsplit_once(':') {
        // In `[::1]:8080` the port follows the bracket; in `[::1]` there is none.
        Some((host, port)) if !rest.starts_with('[') || host.ends_with(']') => (host, Some(port)),
        _ => (rest, None),
    };
    let port = match port {
        Some(port) if port.bytes().all(|b| b.is_ascii_digit()) => Some(port.parse::<u16>().map_err(|_| not_origin())?),
        Some(_) => return Err(not_origin()),
        None => None,
    };
    let host = match host.strip_prefix('[') {
        // An IPv6 literal: an address in brackets, nothing else.
        Some(literal) => {
            let address = literal
                .strip_suffix(']')
                .and_then(ip::parse_ipv6)
                .ok_or_else(not_origin)?;
            let mut host = String::from("[");
            ip::write_ipv6_groups(&mut host, address);
            host.push(']');
            host
        }
        None => {
            let name_ok = !host.is_empty()
                // Browsers take `_` in host names (WHATWG URL) and send it in `Origin`.
                && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
                && !host.starts_with('.')
                && !host.as_bytes().windows(2).any(|w| w == b"..");
            if !name_ok {
                return Err(not_origin());
            }
            // A host whose last label is a number is an IPv4 address to a browser, which reads
            // `0x7f.1` or `192.0.2.07` (octal) too, and sends it in dotted decimal.
            if ends_in_a_number(host) && ip::parse_ipv4(host).is_none() {
                return Err(format!(
                    "{origin:?}: write an IPv4 host as four decimal numbers without leading zeros, as browsers send it"
                ));
            }
            host.to_ascii_lowercase()
        }
    };
    if !scheme_ok {
        return Err(not_origin());
    }
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "ftp" => Some(21),
        _ => None,
    };
    Ok(match port.filter(|&port| Some(port) != default_port) {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// The WHATWG URL host parser's test for an IPv4 host: the last label (before one trailing dot)
/// is decimal digits, or `0x` and hex digits.
fn ends_in_a_number(host: &str) -> bool {
    let mut labels = host.rsplit('.');
    let last = match labels.next() {
        Some("") => labels.next().unwrap_or_default(),
        last => last.unwrap_or_default(),
    };
    let hex = last.strip_prefix("0x").or_else(|| last.strip_prefix("0X"));
    !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit()) || hex.is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit())))
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

    #[wasm_bindgen_test(unsupported = test)]
    fn origins_are_kept_as_browsers_send_them() {
        for (configured, sent) in [
            ("https://app.example:443", "https://app.example"),
            ("http://app.example:80", "http://app.example"),
            ("http://app.example:0080", "http://app.example"),
            ("http://app.example:443", "http://app.example:443"),
            ("https://app.example:8443", "https://app.example:8443"),
            ("wss://app.example:443", "wss://app.example"),
            ("HTTP://[2001:DB8:0::7]:80", "http://[2001:db8::7]"),
            ("https://[2001:db8:0:0:1:0:0:1]", "https://[2001:db8::1:0:0:1]"),
            ("http://[::ffff:192.0.2.7]:8080", "http://[::ffff:c000:207]:8080"),
            ("http://192.0.2.7:3000", "http://192.0.2.7:3000"),
            ("custom://app.example:443", "custom://app.example:443"),
        ] {
            assert_eq!(parse_origin(configured).as_deref(), Ok(sent), "{configured}");
        }
        for refused in [
            "http://192.0.2.07",
            "http://0x7f.1",
            "http://1.2.3",
            "http://256.0.0.1",
            "http://[1::2::3]",
        ] {
            assert!(parse_origin(refused).is_err(), "{refused}");
        }
        assert!(
            parse_origin("http://app.example.2fa").is_ok(),
            "a last label that is not a number"
        );
        assert!(
            parse_origin("http://192.0.2.7.").is_err(),
            "a trailing dot: still an address"
        );
        assert!(parse_origin("http://0x.example").is_ok());
    }
}
