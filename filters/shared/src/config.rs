//! Config parsing with errors that name the field.
//!
//! Every filter parses its JSON with [`parse`] into its config types, which derive [`FromConfig`]
//! (unknown fields refused), then compiles and validates it once; anything wrong becomes a [`ConfigError`] whose path points at the field, e.g.
//! `cors.allowed_origins[1]: "https://a.example/" is not an origin`. The adapter logs it and
//! refuses the plugin, so the host will not serve traffic with a config it did not understand.

use std::fmt;
use std::time::Duration;

mod read;
mod tree;

pub use config_derive::FromConfig;
pub use read::{Fields, FromConfig, Tagged};
pub use tree::{At, Error, Member};

/// A rejected config: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(root): {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The longest call timeout a config may set.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// A call timeout from config (`…timeout_ms`), 1 ms to a minute: the host takes it in 32-bit
/// milliseconds (larger values wrap), and 0 would mean no timeout at all.
pub fn call_timeout(ms: u64, at: &FieldPath) -> Result<Duration, ConfigError> {
    if (1..=MAX_TIMEOUT_MS).contains(&ms) {
        Ok(Duration::from_millis(ms))
    } else {
        Err(at.error(format!("must be between 1 and {MAX_TIMEOUT_MS}")))
    }
}

/// The lowest `max_token_bytes` a config may set. The shortest JWT jwt-auth could accept (HS256,
/// a payload of `iss` and `exp` only) is about 100 bytes, an ES256 or EdDSA one about 150, and
/// opaque access tokens are rarely under 32: a lower limit refuses every real token.
pub const MIN_TOKEN_BYTES: usize = 128;

/// The longest token a filter reads (`max_token_bytes`), at least [`MIN_TOKEN_BYTES`].
pub fn max_token_bytes(bytes: usize, at: &FieldPath) -> Result<usize, ConfigError> {
    if bytes < MIN_TOKEN_BYTES {
        Err(at.error(format!("must be at least {MIN_TOKEN_BYTES}")))
    } else {
        Ok(bytes)
    }
}

/// The path (query allowed) of a call the filter makes, as the request line carries it: from `/`,
/// visible ASCII, no fragment. Anything else could never reach the service as written (a space
/// ends the request target), and every call would fail.
pub fn call_path(path: &str, at: &FieldPath) -> Result<(), ConfigError> {
    if !path.starts_with('/') {
        return Err(at.error("must start with '/'"));
    }
    if !is_request_target(path) {
        return Err(at.error(format!(
            "{path:?} is not a request target: use visible ASCII without '#', percent-encoding the rest"
        )));
    }
    Ok(())
}

/// The `:authority` of a call the filter makes: a host (a name, an IPv4 address or a bracketed
/// IPv6 one) with an optional `:port` (RFC 3986 section 3.2), and nothing else. User info, a path,
/// white space or a line break could never go out as written, and every call would fail (or reach
/// a server that routes by host as another name).
pub fn call_authority(authority: &str, at: &FieldPath) -> Result<(), ConfigError> {
    if !is_authority(authority) {
        return Err(at.error(format!(
            "{authority:?} is not an authority: give a host and an optional :port (no user info, path or spaces)"
        )));
    }
    Ok(())
}

/// Whether `path` (from `/`) can go out as a request line's target: see [`call_path`].
pub fn is_request_target(path: &str) -> bool {
    path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
}

/// Whether `authority` is a host and an optional port: see [`call_authority`]. The longest DNS
/// name (253) with `:` and a five-digit port is 259 bytes.
pub fn is_authority(authority: &str) -> bool {
    let host_byte = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b);
    !authority.is_empty() && authority.len() <= 259 && authority.bytes().all(host_byte)
}

/// `true`: the default of an option that is on unless turned off (`#[serde(default =
/// "shared::config::yes")]`).
pub fn yes() -> bool {
    true
}

/// A string from config that may not be empty (an empty string is never a name, an issuer, a
/// hint...): the string, owned.
pub fn nonempty(value: &str, at: &FieldPath) -> Result<String, ConfigError> {
    if value.is_empty() {
        Err(at.error("must not be empty"))
    } else {
        Ok(value.to_owned())
    }
}

/// Parses a filter config. An empty or whitespace-only config means `{}` (all defaults).
pub fn parse<T: FromConfig>(raw: &[u8]) -> Result<T, ConfigError> {
    let raw: &[u8] = if raw.trim_ascii().is_empty() { b"{}" } else { raw };
    if !raw.trim_ascii_start().starts_with(b"{") {
        return Err(ConfigError::new("", "the config must be a JSON object"));
    }
    // The text becomes a tree first, in one pass that is not generic over `T` (see `tree` for why).
    let mut reader = crate::json::Reader::new(raw);
    let mut node = tree::Node::Unreached;
    if let Err(e) = reader.value(&mut node) {
        return Err(ConfigError::new(tree::broken_path(&node), e.kind.message()));
    }
    let track = tree::Track::default();
    let at = tree::At {
        node: &node,
        chain: &tree::Chain::Root,
        track: &track,
    };
    let value = at
        .read::<T>()
        .map_err(|e| ConfigError::new(track.path(), e.into_message()))?;
    // Trailing text after the object: serde_json's message with its place, as it always read.
    reader.end().map_err(|e| ConfigError::new("", e.to_string()))?;
    Ok(value)
}

/// Builds field paths while validating: `Path::root().field("cors").index(2)`.
#[derive(Clone, Debug, Default)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn root() -> Self {
        Self(String::new())
    }

    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_owned())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}.{key}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.0.clone(), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[wasm_bindgen_test(unsupported = test)]
    fn a_call_path_is_one_a_request_line_can_carry() {
        let at = FieldPath::root().field("path");
        for good in ["/", "/jwks", "/introspect?client=gw&x=%20", "/a/b~c"] {
            assert!(call_path(good, &at).is_ok(), "{good}");
        }
        for bad in ["jwks", "", "/json x", "/a\tb", "/a#frag", "/caf\u{e9}", "/a\r\nHost: x"] {
            let error = call_path(bad, &at).expect_err(bad).to_string();
            assert!(error.starts_with("path: "), "{error}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_call_authority_is_a_host_and_a_port() {
        let at = FieldPath::root().field("authority");
        for good in [
            "idp.example",
            "idp.example:8443",
            "127.0.0.1:9000",
            "[::1]:443",
            "oauth_server",
        ] {
            assert!(call_authority(good, &at).is_ok(), "{good}");
        }
        for bad in [
            "",
            "idp example",
            "idp.example\r\nx: 1",
            "idp.example/keys",
            "user:pw@idp",
            "idp?x",
            "h\u{e9}",
        ] {
            let error = call_authority(bad, &at).expect_err(bad).to_string();
            assert!(error.starts_with("authority: "), "{error}");
        }
    }

    /// A DNS name is up to 253 characters (RFC 1035 section 2.3.4, as text); with a port the
    /// authority is longer than the 255 the check allows.
    #[wasm_bindgen_test(unsupported = test)]
    fn the_longest_host_name_with_a_port_is_an_authority() {
        let label = "a".repeat(63);
        let host = format!("{label}.{label}.{label}.{}", "b".repeat(61));
        assert_eq!(host.len(), 253);
        let at = FieldPath::root().field("authority");
        let authority = format!("{host}:8443");
        assert!(
            call_authority(&authority, &at).is_ok(),
            "{} characters refused",
            authority.len()
        );
    }

    use serde::de::DeserializeOwned;
    use serde::Deserialize;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[derive(Debug, Deserialize, FromConfig)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        #[serde(default)]
        items: Vec<Inner>,
    }

    #[derive(Debug, Deserialize, FromConfig)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn errors_name_the_field_path() {
        let err = parse::<Outer>(br#"{"items": [{"name": "a"}, {"nam": "b"}]}"#).unwrap_err();
        assert_eq!(err.path, "items[1].nam");
        assert!(err.message.contains("unknown field `nam`"), "{err}");
        assert!(!err.to_string().contains("line 1"), "{err}");

        let err = parse::<Outer>(br#"{"items": [{"name": 3}]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "items[0].name: invalid type: integer `3`, expected a string"
        );
    }

    /// A syntax error is reported where the text broke, before any field is read.
    #[wasm_bindgen_test(unsupported = test)]
    fn syntax_errors_come_first_where_the_text_broke() {
        let error = |raw: &str| parse::<Outer>(raw.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            error(r#"{"items": [{"name": "a", "#),
            "items[0].?: EOF while parsing a value"
        );
        assert_eq!(
            error(r#"{"items": [{"name": 1}, {"name": }]}"#),
            "items[1].name: expected value"
        );
        assert_eq!(error(r#"{"items" [] }"#), "(root): expected `:`");
        assert_eq!(error(r#"{"items": [1 2]}"#), "items: expected `,` or `]`");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn empty_config_means_defaults_and_garbage_is_rejected() {
        assert!(parse::<Outer>(b"").is_ok());
        assert!(parse::<Outer>(b"  \n").is_ok());
        assert!(parse::<Outer>(b"{} trailing").is_err());
        assert_eq!(
            parse::<Outer>(b"not json").unwrap_err().to_string(),
            "(root): the config must be a JSON object"
        );
        assert_eq!(
            parse::<Outer>(b"[1]").unwrap_err().to_string(),
            "(root): the config must be a JSON object"
        );
    }

    /// serde_path_to_error over the text: the reference `parse` must match, error for error. A
    /// syntax error comes first, where reading the text as any JSON value meets it; then the type.
    fn reference<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ConfigError> {
        let raw: &[u8] = if raw.trim_ascii().is_empty() { b"{}" } else { raw };
        if !raw.trim_ascii_start().starts_with(b"{") {
            return Err(ConfigError::new("", "the config must be a JSON object"));
        }
        let error = |e: serde_path_to_error::Error<serde_json::Error>| {
            let path = match e.path().to_string() {
                root if root == "." => String::new(),
                path => path,
            };
            let message = e.inner().to_string();
            let message = match message.rfind(" at line ") {
                Some(i) => message[..i].to_owned(),
                None => message,
            };
            ConfigError::new(path, without_float_value(message))
        };
        let mut de = serde_json::Deserializer::from_slice(raw);
        serde_path_to_error::deserialize::<_, serde_json::Value>(&mut de).map_err(error)?;
        let mut de = serde_json::Deserializer::from_slice(raw);
        let value = serde_path_to_error::deserialize(&mut de).map_err(error)?;
        de.end().map_err(|e| ConfigError::new("", e.to_string()))?;
        Ok(value)
    }

    /// The one place the tree's messages differ on purpose: a float is not spelled out.
    fn without_float_value(message: String) -> String {
        const FLOAT: &str = "floating point `";
        match message.find(FLOAT) {
            Some(start) => {
                let value_start = start + FLOAT.len();
                let end = message[value_start..]
                    .find('`')
                    .map_or(message.len(), |i| value_start + i + 1);
                format!("{}floating point{}", &message[..start], &message[end..])
            }
            None => message,
        }
    }

    /// The shapes the filters' configs use: structs with defaults and `deny_unknown_fields`,
    /// options, lists, maps, unit enums, internally tagged enums, validated strings, numbers.
    /// Twice: with the tagged enum as the configs declare it, and as serde's `tag` declares it
    /// (the reference).
    macro_rules! everything {
        ($name:ident, $source:ty, $($derive:ident),*) => {
            #[derive(Debug, Deserialize, $($derive),*)]
            #[serde(deny_unknown_fields)]
            #[allow(dead_code)]
            struct $name {
                #[serde(default)]
                realm: crate::Realm,
                #[serde(default)]
                names: Vec<crate::HeaderName>,
                one: Option<crate::HeaderName>,
                #[serde(default)]
                mode: Mode,
                #[serde(default)]
                nested: Nested,
                #[serde(default = "Vec::new")]
                sources: Vec<$source>,
                #[serde(default)]
                by_name: std::collections::BTreeMap<String, Inner>,
                #[serde(default)]
                count: u32,
                limit: Option<u64>,
                small: Option<u16>,
                signed: Option<i32>,
                size: Option<usize>,
                #[serde(default)]
                flag: bool,
                lists: Option<Vec<Vec<String>>>,
                ratio: Option<f64>,
                #[serde(rename = "match", default)]
                route: crate::route::RouteMatchConfig,
                any: Option<serde_json::Value>,
            }
        };
    }
    everything!(Everything, Source, FromConfig);
    everything!(EverythingTagged, serde_tagged::Source,);

    #[derive(Debug, Default, Deserialize, FromConfig)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        #[default]
        Deny,
        Allow,
    }

    #[derive(Debug, Default, Deserialize, FromConfig)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        #[serde(default = "yes")]
        on: bool,
        #[serde(default)]
        prefixes: Vec<String>,
        inner: Option<Inner>,
    }

    /// A tagged enum as the configs declare one, and as serde's `tag` declares it (the reference).
    macro_rules! source {
        ($name:ident, [$($derive:ident),*], $($serde:tt)*) => {
            #[derive(Debug, Deserialize, $($derive),*)]
            #[serde($($serde)*, rename_all = "snake_case", deny_unknown_fields)]
            #[allow(dead_code)]
            pub enum $name {
                Header {
                    header: crate::HeaderName,
                },
                Claim {
                    claim: String,
                    fallback: Option<String>,
                },
                Local {
                    requests: u32,
                    per: super::Mode,
                    burst: Option<u32>,
                    #[serde(default)]
                    names: Vec<String>,
                },
                Path {},
            }
        };
    }
    use ours::Source;
    mod ours {
        use super::*;
        source!(Source, [FromConfig], rename = "tagged:Source");
    }
    mod serde_tagged {
        use super::*;
        source!(Source, [], tag = "type");
    }

    /// No `deny_unknown_fields`: unknown members are skipped (see `tree` on syntax errors in them).
    #[derive(Debug, Deserialize, FromConfig)]
    #[allow(dead_code)]
    struct Loose {
        #[serde(default)]
        a: u8,
    }

    const SEEDS: &[&str] = &[
        r#"{}"#,
        r#"{"realm": "shop", "names": ["X-A", "x-b"], "one": "y", "mode": "allow", "count": 3}"#,
        r#"{"nested": {"on": false, "prefixes": ["x-", "y-"], "inner": {"name": "n"}}, "flag": true}"#,
        r#"{"sources": [{"type": "header", "header": "x-user"}, {"type": "claim", "claim": "sub"},
            {"type": "local", "requests": 5, "per": "deny", "burst": null}, {"type": "path"}]}"#,
        r#"{"by_name": {"a": {"name": "x"}, "b": {"name": "y"}}, "limit": 18446744073709551615}"#,
        r#"{"small": 65535, "signed": -5, "size": 0, "lists": [["a"], [], ["b", "c"]], "ratio": 1.5}"#,
        r#"{"match": {"prefix": "/a", "methods": ["GET"]}}"#,
        r#"{"any": {"k": [1, 2.5, -3, "s", null, true, {"x": {}}]}, "one": null}"#,
        r#"{"realm": "a"b", "names": ["bad name"], "mode": "maybe", "count": -1, "small": 70000}"#,
        r#"{"sources": [{"type": "nope"}, {"header": "x"}, {"type": "claim"}, {"type": "path", "x": 1}]}"#,
        r#"{"nested": {"inner": {"nam": "n"}}, "by_name": {"a": {}}, "flag": "yes", "ratio": "x"}"#,
        r#"{"count": 1.5, "limit": 1e3, "signed": 3000000000, "size": -0, "lists": [[1]], "one": 5}"#,
        r#"{"names": "x", "nested": [true], "sources": {}, "by_name": [], "loose": "l", "mode": 1}"#,
        r#"{"count": 1, "count": 2, "sources": [{"type": "path", "type": "path"}]}"#,
        r#"{"by_name": {"a": {"name": "x"}, "b": {"name": "y"}, "a": {"name": "z"}}, "any": {"k": 1, "k": 2}}"#,
        "{\"names\": [\"a\\u0041\", \"\\ud800\"], \"one\": \"\\n\", \"x\": 1}",
        r#"{"nested": {"on": true, "prefixes": ["a" "b"]}, "count": 0}"#,
        r#"{"pair": [1, "a"], "mode": {"allow": null}}"#,
        r#"{"pair": [2, "b", 3], "mode": {}}"#,
        r#"{"pair": [1]}"#,
        r#"{"pair": {"0": 1}}"#,
        r#"{"by_name": {"a": {"name": "x",}}, "sources": [1,], "flag": tru}"#,
        r#"{"sources": [{"names": ["a", "b"], "type": "local", "requests": 1, "per": "allow"},
            {"claim": "x", "type": "claim", "fallback": "y"}, ["path"], "header", null]}"#,
    ];

    /// A small deterministic generator: the test needs no seed file and no extra crate.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Deletes, inserts, replaces, truncates or repeats a little of the text.
    fn mutate(text: &[u8], rng: &mut Rng) -> Vec<u8> {
        const BYTES: &[u8] = b"{}[]\",:. 0123456789-+eEtrufalsn\\xay_ \n\xff";
        let mut out = text.to_vec();
        for _ in 0..=rng.below(3) {
            let at = rng.below(out.len() + 1);
            match rng.below(6) {
                0 if at < out.len() => {
                    out.remove(at);
                }
                1 => out.insert(at, BYTES[rng.below(BYTES.len())]),
                2 if at < out.len() => out[at] = BYTES[rng.below(BYTES.len())],
                3 => out.truncate(at),
                4 if at < out.len() => {
                    let end = (at + 1 + rng.below(12)).min(out.len());
                    let piece = out[at..end].to_vec();
                    out.splice(at..at, piece);
                }
                _ => {
                    let end = (at + 1 + rng.below(8)).min(out.len());
                    out.drain(at..end);
                }
            }
        }
        out
    }

    fn same<T: DeserializeOwned + FromConfig + std::fmt::Debug>(raw: &[u8]) {
        let ours = parse::<T>(raw).map(|v| format!("{v:?}"));
        let theirs = reference::<T>(raw).map(|v| format!("{v:?}"));
        if !struct_from_array(&ours) {
            assert_eq!(ours, theirs, "for {:?}", String::from_utf8_lossy(raw));
        }
    }

    /// On purpose: serde_json also reads a struct from an array, field by field.
    fn struct_from_array(ours: &Result<String, ConfigError>) -> bool {
        ours.as_ref()
            .is_err_and(|e| e.message.starts_with("invalid type: sequence, expected struct "))
    }

    /// `Everything` with its tagged enum read by the tree, against serde's `tag` read by
    /// serde_path_to_error: the same value or error, but for what the tree does on purpose. An
    /// error inside a variant names the field where serde's named the enum; the array form serde
    /// also took for a tagged enum is refused, and so is an object for a unit enum, and a repeated
    /// map key.
    fn same_but_deeper(raw: &[u8]) {
        let ours = parse::<Everything>(raw).map(|v| format!("{v:?}"));
        let theirs =
            reference::<EverythingTagged>(raw).map(|v| format!("{v:?}").replacen("EverythingTagged", "Everything", 1));
        let in_source = |path: &str| {
            path.strip_prefix("sources[")
                .and_then(|rest| rest.split_once(']'))
                .is_some_and(|(index, rest)| index.parse::<usize>().is_ok() && rest.is_empty())
        };
        match (&ours, &theirs) {
            _ if struct_from_array(&ours) => {}
            // On purpose: serde_json read `null` as an absent optional field.
            (Err(ours), _) if ours.message == read::NULL_REFUSED => {
                assert!(raw.windows(4).any(|w| w == b"null"), "{ours}");
            }
            // On purpose: serde_json kept the last of a repeated map key.
            (Err(ours), _) if ours.message.starts_with("duplicate key ") => {
                assert!(ours.path == "by_name" || ours.path.starts_with("any"), "{ours}");
            }
            (Err(ours), _) if ours.message == "invalid type: map, expected enum Mode" => {
                let path = theirs.as_ref().err().map_or("", |theirs| theirs.path.as_str());
                assert!(
                    ours.path == "mode" || in_source(path) && ours.path.ends_with(".per"),
                    "{ours}"
                );
            }
            (Err(ours), _) if in_source(&ours.path) && ours.message.starts_with("invalid type: sequence") => {
                assert_eq!(
                    ours.message,
                    "invalid type: sequence, expected internally tagged enum Source"
                )
            }
            (Err(ours), Err(theirs))
                if in_source(&theirs.path)
                    && ours.path.starts_with(&theirs.path)
                    && ours.path.len() > theirs.path.len() =>
            {
                // serde's buffer words a unit enum read from a number "expected string or map";
                // the tree says what serde_json says everywhere else.
                let buffer_words =
                    ours.message == "expected value" && theirs.message.ends_with("expected string or map");
                if !buffer_words {
                    assert_eq!(ours.message, theirs.message, "for {:?}", String::from_utf8_lossy(raw));
                }
                let below = &ours.path[theirs.path.len()..];
                assert!(below.starts_with('.') && below != ".type", "{below}");
            }
            _ => assert_eq!(ours, theirs, "for {:?}", String::from_utf8_lossy(raw)),
        }
    }

    /// The tree gives every config the value, or the error and path, that serde_path_to_error
    /// over the text gave: on good configs, wrong ones, and thousands of broken variants of them.
    #[wasm_bindgen_test(unsupported = test)]
    fn errors_and_paths_match_serde_path_to_error() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let rounds = if cfg!(target_family = "wasm") { 200 } else { 3000 };
        for seed in SEEDS {
            same_but_deeper(seed.as_bytes());
            same::<Outer>(seed.as_bytes());
            for _ in 0..rounds {
                let text = mutate(seed.as_bytes(), &mut rng);
                same_but_deeper(&text);
                same::<Outer>(&text);
            }
        }
        for text in [
            "",
            " ",
            "{",
            "{\"",
            "{\"a\"",
            "{\"a\":",
            "{,}",
            "{\"items\":[,]}",
            "{\"items\":[{}]",
            "{} x",
            "{}}",
        ] {
            same_but_deeper(text.as_bytes());
            same::<Outer>(text.as_bytes());
        }
        for text in [
            r#"{"a": 1, "b": [1, {"c": 2}]}"#,
            r#"{"b": {}, "a": -1}"#,
            r#"{"a": "x", "a": 2}"#,
        ] {
            same::<Loose>(text.as_bytes());
        }
        // Nesting past serde_json's recursion limit.
        let deep = format!("{{\"lists\": {}{}}}", "[".repeat(200), "]".repeat(200));
        same_but_deeper(deep.as_bytes());
        let deep = format!("{{\"any\": {}{}}}", "[".repeat(200), "]".repeat(200));
        same_but_deeper(deep.as_bytes());
    }

    /// A tagged enum's errors name the field inside the variant, and its `type` where that is the
    /// trouble.
    #[wasm_bindgen_test(unsupported = test)]
    fn tagged_enums_name_the_field_in_the_variant() {
        let error = |raw: &str| parse::<Everything>(raw.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            error(r#"{"sources": [{"type": "path"}, {"claim": 5, "type": "claim"}]}"#),
            "sources[1].claim: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            error(r#"{"sources": [{"type": "local", "requests": 1, "per": "deny", "names": ["a", 2]}]}"#),
            "sources[0].names[1]: invalid type: integer `2`, expected a string"
        );
        assert_eq!(
            error(r#"{"sources": [{"type": "path", "x": 1}]}"#),
            "sources[0].x: unknown field `x`, there are no fields"
        );
        assert_eq!(
            error(r#"{"sources": [{"type": "nope"}]}"#),
            "sources[0].type: unknown variant `nope`, expected one of `header`, `claim`, `local`, `path`"
        );
        assert_eq!(
            error(r#"{"sources": [{"header": "x"}]}"#),
            "sources[0]: missing field `type`"
        );
        assert_eq!(
            error(r#"{"sources": [{"type": "path", "type": "path"}]}"#),
            "sources[0]: duplicate field `type`"
        );
        assert_eq!(
            error(r#"{"sources": ["path"]}"#),
            "sources[0]: invalid type: string \"path\", expected internally tagged enum Source"
        );
        assert_eq!(
            error(r#"{"sources": [["claim", "sub"]]}"#),
            "sources[0]: invalid type: sequence, expected internally tagged enum Source"
        );
        // A unit enum is a string; serde_json also took `{"allow": null}`.
        assert_eq!(
            error(r#"{"mode": {"allow": null}}"#),
            "mode: invalid type: map, expected enum Mode"
        );
        let parsed = parse::<Everything>(br#"{"sources": [{"claim": "sub", "type": "claim"}]}"#);
        assert_eq!(
            format!("{:?}", parsed.map(|e| e.sources)),
            r#"Ok([Claim { claim: "sub", fallback: None }])"#
        );
    }

    /// serde_json keeps the last of a repeated key: `{"a": …, "a": …}` would load the second
    /// silently. In a map that is an error at the map's path; a struct's repeated field is serde's
    /// `duplicate field`.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_repeated_map_key_is_an_error_at_the_map() {
        let error = |raw: &str| parse::<Everything>(raw.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            error(r#"{"by_name": {"a": {"name": "x"}, "b": {"name": "y"}, "a": {"name": "z"}}}"#),
            "by_name: duplicate key \"a\""
        );
        // Any JSON value, at any depth.
        assert_eq!(error(r#"{"any": {"k": 1, "k": 1}}"#), "any: duplicate key \"k\"");
        assert_eq!(
            error(r#"{"any": {"k": [true, {"x": 1, "y": {}, "x": 2}]}}"#),
            "any.k[1]: duplicate key \"x\""
        );
        // The members are read in order: an error before the repeat is the one reported.
        assert_eq!(
            error(r#"{"by_name": {"a": {"name": 1}, "a": {"name": "z"}}}"#),
            "by_name.a.name: invalid type: integer `1`, expected a string"
        );
        // A struct's repeated field stays serde's error.
        assert_eq!(error(r#"{"count": 1, "count": 2}"#), "(root): duplicate field `count`");
        // The same key in different maps, or in a map and a struct, is fine.
        let fine = parse::<Everything>(br#"{"by_name": {"a": {"name": "x"}}, "any": {"a": {"a": 1}, "b": {"a": 2}}}"#);
        assert!(fine.is_ok(), "{fine:?}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn call_timeouts_are_1_ms_to_a_minute() {
        let at = FieldPath::root().field("timeout_ms");
        assert_eq!(call_timeout(1, &at), Ok(Duration::from_millis(1)));
        assert_eq!(call_timeout(60_000, &at), Ok(Duration::from_secs(60)));
        for ms in [0, 60_001, 1 << 32] {
            assert_eq!(
                call_timeout(ms, &at).unwrap_err().to_string(),
                "timeout_ms: must be between 1 and 60000"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_token_limit_is_at_least_128_bytes() {
        let at = FieldPath::root().field("max_token_bytes");
        assert_eq!(max_token_bytes(128, &at), Ok(128));
        assert_eq!(max_token_bytes(usize::MAX, &at), Ok(usize::MAX));
        for bytes in [0, 1, 127] {
            assert_eq!(
                max_token_bytes(bytes, &at).unwrap_err().to_string(),
                "max_token_bytes: must be at least 128"
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn empty_strings_are_refused_where_a_value_is_needed() {
        let at = FieldPath::root().field("issuer");
        assert_eq!(nonempty("i", &at), Ok("i".to_owned()));
        assert_eq!(nonempty("", &at).unwrap_err().to_string(), "issuer: must not be empty");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn field_paths_compose() {
        let p = FieldPath::root().field("cors").field("allowed_origins").index(2);
        assert_eq!(p.error("bad").to_string(), "cors.allowed_origins[2]: bad");
        assert_eq!(FieldPath::root().error("bad").to_string(), "(root): bad");
    }
}
