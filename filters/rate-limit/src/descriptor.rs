//! Limits as compiled from config, and the descriptor each one builds from a request.

use std::cell::OnceCell;

use serde_json::Value;

use shared::route::{RequestLine, RouteMatch};
use shared::{ConfigError, Counter, Ctx, FieldPath, HeaderName, Headers, MetricRegistry};

use crate::address::Grouping;
use crate::bucket::Rate;
use crate::config::{EnforceConfig, EntryConfig, LimitConfig, SourceConfig};

/// A descriptor: `(key, value)` entries, in config order.
pub type Descriptor = Vec<(String, String)>;

/// The `path` value of every path not in normal form ([`shared::route::path_refusal`]); no path
/// in normal form reads so (those start with `/`).
pub const UNTRUSTED_PATH: &str = "(not in normal form)";

/// The `header` value of every request that carries the header more than once: an upstream reads
/// one of them (Go's `Header.Get` and Envoy's own `request_headers` action the first, some the
/// last), so each number of copies of one value would otherwise be a bucket of its own.
pub const SEVERAL_VALUES: &str = "(several values)";

/// The `method` value of every request with a method-override header: the upstream may run
/// another method than the request's, and each value it could name would be a bucket of its own.
pub const OVERRIDDEN_METHOD: &str = "(method overridden)";

#[derive(Debug)]
pub struct Limit {
    pub name: String,
    pub routes: Vec<RouteMatch>,
    entries: Vec<Entry>,
    pub cost: u32,
    pub enforce: Enforce,
    pub over_limit: Counter,
}

#[derive(Debug)]
pub enum Enforce {
    Local(Rate),
    Service,
}

#[derive(Debug)]
struct Entry {
    key: String,
    source: Source,
    fallback: Option<Source>,
}

#[derive(Debug)]
enum Source {
    Claim(String),
    Header(HeaderName),
    ClientAddress(Grouping),
    Path,
    Method,
    Route,
    Constant(String),
}

impl Limit {
    /// `case_insensitive_paths`: the routes compare paths without letter case (the requests' lines
    /// must then be [`RequestLine::case_folded`] too).
    pub fn compile(
        config: &LimitConfig,
        at: &FieldPath,
        metrics: &mut MetricRegistry,
        case_insensitive_paths: bool,
    ) -> Result<Self, ConfigError> {
        let name = &config.name;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(at
                .field("name")
                .error(format!("{name:?}: use lowercase letters, digits and '_'")));
        }
        if config.descriptor.is_empty() {
            return Err(at.field("descriptor").error("give at least one entry"));
        }
        if config.cost == 0 {
            return Err(at.field("cost").error("must be at least 1"));
        }
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, route)| {
                let at = at.field("routes").index(i);
                if case_insensitive_paths {
                    RouteMatch::compile_case_insensitive(route, &at)
                } else {
                    RouteMatch::compile(route, &at)
                }
            })
            .collect::<Result<_, _>>()?;
        let entries = config
            .descriptor
            .iter()
            .enumerate()
            .map(|(i, entry)| Entry::compile(entry, &at.field("descriptor").index(i)))
            .collect::<Result<_, _>>()?;
        let enforce = match &config.enforce {
            EnforceConfig::Local { requests, per, burst } => {
                let at = at.field("enforce");
                if *requests == 0 {
                    return Err(at.field("requests").error("must be at least 1"));
                }
                let burst = burst.unwrap_or(*requests);
                if burst < config.cost {
                    return Err(at.field("burst").error(format!(
                        "{burst} is less than the cost {}: no request could pass",
                        config.cost
                    )));
                }
                Enforce::Local(Rate {
                    requests: *requests,
                    per: *per,
                    burst,
                })
            }
            EnforceConfig::Service {} => Enforce::Service,
        };
        Ok(Self {
            name: name.clone(),
            routes,
            entries,
            cost: config.cost,
            enforce,
            over_limit: metrics.counter(&format!("over_limit_{name}")),
        })
    }

    /// A path the routes cannot be trusted with ([`shared::route::path_refusal`]) could be any
    /// route to the upstream, and a request with a method-override header any method: each counts
    /// against every route it could be.
    pub fn applies_to(&self, line: &RequestLine<'_>, doubt: Doubt) -> bool {
        self.routes.is_empty()
            || self
                .routes
                .iter()
                .any(|route| (doubt.path || route.fits_path(line)) && (doubt.method || route.fits_method(line.method)))
    }

    /// Every value is fixed: the limit has one key whatever the request.
    pub fn is_global(&self) -> bool {
        self.entries
            .iter()
            .all(|entry| matches!(entry.source, Source::Constant(_)))
    }

    /// The claims its entries read, fallbacks included.
    pub fn claims_read(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .flat_map(|entry| std::iter::once(&entry.source).chain(&entry.fallback))
            .filter_map(|source| match source {
                Source::Claim(name) => Some(name.as_str()),
                _ => None,
            })
    }

    /// The descriptor for this request, and for each entry whether its value came from its
    /// fallback; `None` if an entry has no value (the limit does not apply, as with Envoy's
    /// rate-limit actions).
    pub fn descriptor(&self, request: &RequestFacts<'_>) -> Option<(Descriptor, Vec<bool>)> {
        let mut descriptor = Vec::with_capacity(self.entries.len());
        let mut from_fallback = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            let (value, fallback) = match request.value(&entry.source) {
                Some(value) => (value, false),
                None => (entry.fallback.as_ref().and_then(|f| request.value(f))?, true),
            };
            descriptor.push((entry.key.clone(), value));
            from_fallback.push(fallback);
        }
        Some((descriptor, from_fallback))
    }
}

impl Entry {
    fn compile(config: &EntryConfig, at: &FieldPath) -> Result<Self, ConfigError> {
        if config.key.is_empty() {
            return Err(at.field("key").error("must not be empty"));
        }
        Ok(Self {
            key: config.key.clone(),
            source: Source::compile(&config.source, &at.field("source"))?,
            fallback: config
                .fallback
                .as_ref()
                .map(|f| Source::compile(f, &at.field("fallback")))
                .transpose()?,
        })
    }
}

impl Source {
    fn compile(config: &SourceConfig, at: &FieldPath) -> Result<Self, ConfigError> {
        Ok(match config {
            SourceConfig::Claim { claim } if claim.is_empty() => {
                return Err(at.field("claim").error("must not be empty"));
            }
            SourceConfig::Claim { claim } => Source::Claim(claim.clone()),
            SourceConfig::Header { header } => {
                let better = match header.as_str() {
                    "host" => "\"host\" reaches filters as \":authority\": write \":authority\"",
                    ":path" => "\":path\" holds the query and every spelling of the path, each a value of its own: use {\"type\": \"path\"}",
                    ":method" => "\":method\" holds every letter case and no method override, each a value of its own: use {\"type\": \"method\"}",
                    _ => return Ok(Source::Header(header.clone())),
                };
                return Err(at.field("header").error(better));
            }
            SourceConfig::ClientAddress {
                ipv4_prefix,
                ipv6_prefix,
            } => Source::ClientAddress(Grouping::compile(*ipv4_prefix, *ipv6_prefix, at)?),
            SourceConfig::Path {} => Source::Path,
            SourceConfig::Method {} => Source::Method,
            SourceConfig::Route {} => Source::Route,
            SourceConfig::Constant { value } if value.is_empty() => {
                return Err(at.field("value").error("must not be empty"));
            }
            SourceConfig::Constant { value } => Source::Constant(value.clone()),
        })
    }
}

/// The host an `:authority` names, in one spelling whatever the client wrote: in lowercase (a
/// host name in any letter case is the same host, RFC 3986 section 3.2.2), without a port (which
/// listener took the request is the connection's, not the client's word, so whatever follows the
/// colon goes: `:443`, `:+443`, `:https`), without the trailing dot of a fully qualified name
/// (`api.example.` is `api.example`), and an IPv6 literal in its canonical form (`[0:0::1]:8443`
/// reads `[::1]`). What is not a host and port reads as written, in lowercase.
fn host_of(authority: &[u8]) -> Vec<u8> {
    let mut from_the_end = authority.rsplitn(2, |&b| b == b':');
    let host = match (from_the_end.next(), from_the_end.next()) {
        (Some(_port), Some(host)) => match host.first() {
            Some(b'[') if host.ends_with(b"]") => host,
            Some(_) if !host.contains(&b':') => host,
            _ => authority,
        },
        _ => authority,
    };
    let ipv6 = host
        .strip_prefix(b"[")
        .and_then(|literal| literal.strip_suffix(b"]"))
        .and_then(|literal| shared::ip::parse_ipv6(std::str::from_utf8(literal).ok()?));
    if let Some(bits) = ipv6 {
        let mut canonical = String::from("[");
        shared::ip::write_ipv6(&mut canonical, bits);
        canonical.push(']');
        return canonical.into_bytes();
    }
    let host = match host.strip_suffix(b".") {
        Some(name) if !name.is_empty() && !name.ends_with(b".") => name,
        _ => host,
    };
    host.to_ascii_lowercase()
}

/// What of a request the limits cannot take at its word.
#[derive(Clone, Copy, Debug, Default)]
pub struct Doubt {
    /// The path is not in normal form: another route to the upstream than it reads as.
    pub path: bool,
    /// A method-override header names a method the upstream may run instead of the request's.
    pub method: bool,
}

/// What the descriptors of one request are built from; host properties and claims are read at
/// most once, and only if a limit asks for them.
pub struct RequestFacts<'a> {
    headers: &'a Headers,
    line: RequestLine<'a>,
    ctx: &'a Ctx<'a>,
    /// Every claim a limit reads: the verified claims are parsed for these only.
    claims_read: &'a [String],
    claims: OnceCell<Option<serde_json::Map<String, Value>>>,
    /// Why the path is not to be trusted, if it is not: read once, by route matches and `path`
    /// sources alike.
    path_refusal: OnceCell<Option<&'static str>>,
    /// Whether a method-override header is present: read once, by route matches and `method`
    /// sources alike.
    method_overridden: OnceCell<bool>,
}

impl<'a> RequestFacts<'a> {
    pub fn new(headers: &'a Headers, line: RequestLine<'a>, ctx: &'a Ctx<'a>, claims_read: &'a [String]) -> Self {
        Self {
            headers,
            line,
            ctx,
            claims_read,
            claims: OnceCell::new(),
            path_refusal: OnceCell::new(),
            method_overridden: OnceCell::new(),
        }
    }

    pub fn line(&self) -> &RequestLine<'a> {
        &self.line
    }

    /// Whether the request carries a method-override header: the upstream may run another
    /// method than its own.
    pub fn method_overridden(&self) -> bool {
        *self
            .method_overridden
            .get_or_init(|| self.headers.has_method_override())
    }

    /// Whether the path is not in normal form ([`shared::route::path_refusal`]) or a path-override
    /// header names another: another route to the upstream than it reads as.
    pub fn untrusted_path(&self) -> bool {
        self.path_refusal
            .get_or_init(|| {
                let overridden = || self.headers.has_path_override().then_some("a path-override header");
                shared::route::path_refusal(self.line.path)
                    .or_else(overridden)
                    .inspect(|reason| log::debug!("rate_limit: path not to be trusted: {reason}"))
            })
            .is_some()
    }

    /// An empty value counts as none.
    fn value(&self, source: &Source) -> Option<String> {
        let value = match source {
            Source::Claim(name) => claim_value(self.claims()?.get(name)?)?,
            Source::Header(name) => {
                let mut values = self.headers.get_all(name.as_str());
                let first = values.next()?;
                match values.next() {
                    Some(_) => SEVERAL_VALUES.to_owned(),
                    None if name.as_str() == ":authority" => text_of(host_of(first)),
                    // RFC 9110 section 5.5: spaces and tabs around a value are not part of it.
                    // HTTP/1 parsers drop them; over HTTP/2 Envoy hands them on as sent, and each
                    // spelling would be a bucket of its own for one value upstream.
                    None => text_of(first.trim_ascii().to_vec()),
                }
            }
            Source::ClientAddress(grouping) => grouping.client(&self.property(&["source", "address"])?),
            // Every spelling of a path not in normal form may be the same resource upstream
            // (`//login`, `/x/../login`): they share one value, so none is a bucket of its own.
            Source::Path if self.untrusted_path() => UNTRUSTED_PATH.to_owned(),
            // One trailing slash is the same path, as route matches read it (`/login/` is `/login`),
            // and an escaped reserved character is the character (`/a%3Ab` is `/a:b` to an
            // upstream that decodes first; `/login%3Fx` is `/login` to one that then splits off
            // the query): one bucket for every spelling.
            Source::Path => {
                let path = self.line.most_decoded_path();
                path.strip_suffix('/')
                    .filter(|p| !p.is_empty())
                    .unwrap_or(path)
                    .to_owned()
            }
            Source::Method if self.method_overridden() => OVERRIDDEN_METHOD.to_owned(),
            // Routes match methods in any letter case and a GET route covers HEAD (most upstreams
            // run their GET handler for it): so must the value, or each spelling is a bucket.
            Source::Method if self.line.method.eq_ignore_ascii_case("HEAD") => "GET".to_owned(),
            Source::Method => self.line.method.to_ascii_uppercase(),
            Source::Route => self.property(&["xds", "route_name"])?,
            Source::Constant(value) => value.clone(),
        };
        Some(value).filter(|v| !v.is_empty())
    }

    fn property(&self, path: &[&str]) -> Option<String> {
        String::from_utf8(self.ctx.properties.property(path)?).ok()
    }

    fn claims(&self) -> Option<&serde_json::Map<String, Value>> {
        self.claims
            .get_or_init(|| {
                let raw = self.ctx.properties.filter_state(shared::handoff::CLAIMS)?;
                shared::handoff::read_claims(&raw, self.claims_read)
            })
            .as_ref()
    }
}

/// A string claim as it is; anything else as its JSON text, but none for `null` or for a number
/// with a fraction or an exponent (anywhere in it): no IdP issues one as an identifier, and
/// writing one would link float formatting (11 KB of the module).
fn claim_value(claim: &Value) -> Option<String> {
    match claim {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => shared::json::integral_text(other),
    }
}

/// A header value as descriptor text, one text per value: UTF-8 as it is, and anything else (or
/// text that starts with U+FFFD, to keep the two apart) as U+FFFD and the bytes in hex. Replacing
/// the bad bytes instead would give `key\xff` and `key\xfe` one bucket.
fn text_of(value: Vec<u8>) -> String {
    match String::from_utf8(value) {
        Ok(text) if !text.starts_with(char::REPLACEMENT_CHARACTER) => text,
        Ok(text) => hex_text(text.as_bytes()),
        Err(error) => hex_text(error.as_bytes()),
    }
}

fn hex_text(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut text = String::from(char::REPLACEMENT_CHARACTER);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn claims_become_strings() {
        let value = |claim: Value| claim_value(&claim);
        assert_eq!(value(serde_json::json!("alice")).as_deref(), Some("alice"));
        assert_eq!(value(serde_json::json!(42)).as_deref(), Some("42"));
        assert_eq!(value(serde_json::json!(-42)).as_deref(), Some("-42"));
        assert_eq!(value(serde_json::json!(true)).as_deref(), Some("true"));
        assert_eq!(value(serde_json::json!(["a", "b"])).as_deref(), Some(r#"["a","b"]"#));
        assert_eq!(value(serde_json::json!({"tier": 2})).as_deref(), Some(r#"{"tier":2}"#));
        assert_eq!(value(Value::Null), None);
        assert_eq!(value(serde_json::json!(1.5)), None);
        assert_eq!(value(serde_json::json!(["a", 2.0])), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn header_values_that_are_not_utf8_stay_apart() {
        assert_eq!(text_of(b"key-1".to_vec()), "key-1");
        assert_eq!(text_of(b"key\xff".to_vec()), "\u{fffd}6b6579ff");
        assert_ne!(text_of(b"key\xff".to_vec()), text_of(b"key\xfe".to_vec()));
        let lookalike = "\u{fffd}6b6579ff".as_bytes().to_vec();
        assert_ne!(text_of(lookalike), text_of(b"key\xff".to_vec()));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_authority_reads_as_its_host() {
        let host = |authority: &str| String::from_utf8(host_of(authority.as_bytes())).unwrap();
        for same in [
            "api.example",
            "API.Example",
            "api.example.",
            "api.example:443",
            "api.example.:8443",
            "api.example:",
        ] {
            assert_eq!(host(same), "api.example", "{same}");
        }
        for same in ["api.example:https", "api.example:+443", "API.example.:"] {
            assert_eq!(host(same), "api.example", "{same}");
        }
        for same in ["[::1]:8443", "[::1]", "[0:0::1]", "[::0001]:1", "[0:0:0:0:0:0:0:1]"] {
            assert_eq!(host(same), "[::1]", "{same}");
        }
        assert_eq!(host("[2001:DB8::A]"), "[2001:db8::a]");
        assert_eq!(host("::1"), "::1", "not a host and port: kept as written");
        assert_eq!(host("[fe80::1%25eth0]"), "[fe80::1%25eth0]");
        assert_eq!(host(":443"), ":443");
        assert_eq!(host("."), ".");
        assert_eq!(host("api.example.."), "api.example..");
    }
}
