//! Which requests a rule applies to: path (exact, prefix or regex) and methods.
//!
//! Paths are matched without query or fragment, on the path as the proxy forwards it (run Envoy
//! with `normalize_path` and `merge_slashes`, as the shipped configs do), with its percent-encoding
//! in normal form (see [`normal_escapes`]) whatever the proxy did.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::config::FromConfig;
use serde::Deserialize;

use crate::config::{ConfigError, FieldPath};
use crate::headers::Headers;
use crate::regex::Regex;

/// A route match as written in config. Exactly one of `exact`, `prefix`, `regex`; no path at all
/// matches every path.
#[derive(Clone, Debug, Default, Deserialize, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct RouteMatchConfig {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    /// Matched against the whole path (anchored).
    pub regex: Option<String>,
    /// Methods, in uppercase; a request's method matches in any letter case (`delete` is `DELETE`),
    /// and `GET` covers `HEAD` too. Empty or absent: every method.
    #[serde(default)]
    pub methods: Vec<String>,
}

#[derive(Debug)]
enum PathMatch {
    Any,
    Exact(Forms),
    Prefix(Forms),
    Regex {
        written: Regex,
        /// For the decoded readings, when the pattern has escapes of reserved characters: the
        /// pattern with each such escape read as its character (`%3A` as `:`).
        decoded: Option<Box<Regex>>,
    },
}

/// A rule's path as written (escapes in normal form) and as an upstream that decodes the path
/// reads it ([`decoded_reserved`]): `/files/my%20report` and `/files/my report`.
#[derive(Debug)]
struct Forms {
    written: String,
    decoded: String,
}

impl Forms {
    fn new(written: String) -> Self {
        let decoded = decoded_reserved(&written).unwrap_or_else(|| written.clone());
        Self { written, decoded }
    }

    fn read_as(&self, reading: &Reading<'_>) -> &str {
        if reading.decoded {
            &self.decoded
        } else {
            &self.written
        }
    }
}

/// One way an upstream may read a request's path: as written, or decoded.
#[derive(Clone, Copy, Debug)]
pub struct Reading<'l> {
    pub path: &'l str,
    decoded: bool,
}

/// A compiled route match.
#[derive(Debug)]
pub struct RouteMatch {
    path: PathMatch,
    methods: Vec<String>,
    /// The path reads otherwise decoded: it has an escape of a reserved character. Known once,
    /// at load, for every request to ask.
    decodes: bool,
}

impl RouteMatch {
    pub fn compile(config: &RouteMatchConfig, at: &FieldPath) -> Result<Self, ConfigError> {
        Self::compile_with::<false>(config, at)
    }

    /// The match for upstreams that treat `/Admin` as `/admin`: its paths read through
    /// [`case_folded`], its regex matching in any letter case. Pairs with
    /// [`RequestLine::case_folded`]. (A function of its own, so that filters without the option
    /// do not carry Unicode's case tables.)
    pub fn compile_case_insensitive(config: &RouteMatchConfig, at: &FieldPath) -> Result<Self, ConfigError> {
        Self::compile_with::<true>(config, at)
    }

    /// `FOLD`: paths and regexes are folded (a parameter of the type, so that a filter that
    /// never folds links no case tables).
    fn compile_with<const FOLD: bool>(config: &RouteMatchConfig, at: &FieldPath) -> Result<Self, ConfigError> {
        let checked = |path: &str, field: &str| {
            let path = checked_path(path, &at.field(field))?;
            Ok::<_, ConfigError>(if FOLD { case_folded(&path) } else { path })
        };
        let path = match (&config.exact, &config.prefix, &config.regex) {
            (None, None, None) => PathMatch::Any,
            (Some(exact), None, None) => {
                PathMatch::Exact(Forms::new(without_trailing_slash(&checked(exact, "exact")?).to_owned()))
            }
            (None, Some(prefix), None) => PathMatch::Prefix(Forms::new(checked(prefix, "prefix")?)),
            (None, None, Some(regex)) => {
                // `(?i)` takes care of ASCII letters; escaped non-ASCII ones are folded as the
                // request paths are (`%C3%89`, `É`, matches what `%C3%A9`, `é`, folds to).
                let regex = if FOLD {
                    Cow::Owned(escapes_case_folded(regex))
                } else {
                    Cow::Borrowed(regex.as_str())
                };
                let compiled = |pattern: &str| {
                    Regex::whole(pattern, FOLD).map_err(|e| at.field("regex").error(format!("invalid regex: {e}")))
                };
                PathMatch::Regex {
                    written: compiled(&regex)?,
                    decoded: decoded_pattern(&regex)
                        .map(|p| compiled(&p).map(Box::new))
                        .transpose()?,
                }
            }
            _ => return Err(at.error("give at most one of exact, prefix, regex")),
        };
        for (i, method) in config.methods.iter().enumerate() {
            if method.is_empty()
                || !method
                    .bytes()
                    .all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
            {
                return Err(at
                    .field("methods")
                    .index(i)
                    .error(format!("{method:?} is not an HTTP method")));
            }
            if method.bytes().any(|b| b.is_ascii_lowercase()) {
                return Err(at.field("methods").index(i).error(format!(
                    "{method:?}: write methods in uppercase ({:?}); requests match them in any letter case",
                    method.to_ascii_uppercase()
                )));
            }
        }
        let decodes = match &path {
            PathMatch::Any => false,
            PathMatch::Exact(forms) | PathMatch::Prefix(forms) => forms.written != forms.decoded,
            PathMatch::Regex { decoded, .. } => decoded.is_some(),
        };
        Ok(Self {
            path,
            decodes,
            methods: config.methods.clone(),
        })
    }

    /// Matches every request.
    pub fn any() -> Self {
        Self {
            path: PathMatch::Any,
            methods: Vec::new(),
            decodes: false,
        }
    }

    /// Whether a request with this method could match, whatever its path.
    pub fn fits_method(&self, method: &str) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| method_covers(m, method))
    }

    /// Whether the match reads the method, and so cares about headers that change it for the
    /// upstream ([`crate::headers::METHOD_OVERRIDE_HEADERS`]).
    pub fn reads_method(&self) -> bool {
        !self.methods.is_empty()
    }

    /// Whether the match reads the path, and so cares about [`path_refusal`].
    pub fn reads_path(&self) -> bool {
        !matches!(self.path, PathMatch::Any)
    }

    /// Whether the request matches in some reading of its path ([`RequestLine::readings`]).
    pub fn matches(&self, request: &RequestLine<'_>) -> bool {
        self.fits_method(request.method) && self.fits_path(request)
    }

    /// Whether the request's path matches in some reading of it, whatever its method: whether
    /// the request could be this route's to the upstream.
    pub fn fits_path(&self, request: &RequestLine<'_>) -> bool {
        request.readings(self.decodes).any(|reading| self.fits(&reading))
    }

    fn fits(&self, reading: &Reading<'_>) -> bool {
        let path = reading.path;
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(exact) => without_trailing_slash(path) == exact.read_as(reading),
            PathMatch::Prefix(prefix) => {
                let prefix = prefix.read_as(reading);
                path.starts_with(prefix) || without_trailing_slash(prefix) == path
            }
            PathMatch::Regex { written, decoded } => match decoded {
                Some(decoded) if reading.decoded => decoded.is_match(path),
                _ => written.is_match(path),
            },
        }
    }
}

/// Two readings of a request's path lead to different routes: `/orders/42%3Acancel` is
/// `/orders/42:cancel` to an upstream that decodes the path before routing it, and another path
/// to one that does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmbiguousPath;

/// The first of `items` whose route (`route_of`) matches `line`: the same in every reading of its
/// path ([`RequestLine::readings`]), or `Err` when the readings lead to different ones (or one of
/// them to none), as no rule can be trusted to be the upstream's.
pub fn first_match<'i, T>(
    items: &'i [T],
    route_of: impl Fn(&T) -> &RouteMatch,
    line: &RequestLine<'_>,
) -> Result<Option<&'i T>, AmbiguousPath> {
    let first = |reading: &Reading<'_>| {
        items
            .iter()
            .position(|item| route_of(item).fits_method(line.method) && route_of(item).fits(reading))
    };
    let rules_decode = items.iter().any(|item| route_of(item).decodes);
    let mut readings = line.readings(rules_decode);
    let as_written = readings.next().and_then(|reading| first(&reading));
    if readings.any(|reading| first(&reading) != as_written) {
        return Err(AmbiguousPath);
    }
    Ok(as_written.and_then(|i| items.get(i)))
}

/// `path` without one trailing `/` (`/` itself stays). Many upstreams serve `/admin/` as `/admin`
/// and the other way round (Rails, Express without `strict`, Spring before 6): to the rules the
/// two are one path, so `exact "/admin"` holds `/admin/` too, and `prefix "/admin/"` holds `/admin`.
fn without_trailing_slash(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => path,
    }
}

/// Whether a rule for method `rule` (uppercase, as config has it) holds a request with `request`.
/// Methods are case-sensitive (RFC 9110 section 9.1), but many upstreams read `delete` as
/// `DELETE` (Node's parser, frameworks that uppercase it, servers that compare it
/// case-insensitively): a lowercase method must not slip past the rule for its uppercase form.
/// A HEAD request is a GET without the content (RFC 9110 section 9.3.2), and most servers answer it
/// by running their GET handler: a rule for GET that missed HEAD would let `HEAD /admin` past it.
fn method_covers(rule: &str, request: &str) -> bool {
    rule.eq_ignore_ascii_case(request) || (rule == "GET" && request.eq_ignore_ascii_case("HEAD"))
}

fn checked_path(path: &str, at: &FieldPath) -> Result<String, ConfigError> {
    if !path.starts_with('/') {
        return Err(at.error(format!("{path:?} must start with '/'")));
    }
    if path.contains(['?', '#']) {
        return Err(at.error("a path match never sees the query or fragment: remove '?'/'#'"));
    }
    // A request path in this form is refused (or, by Envoy's normalisation, made another path)
    // before any rule reads it: a rule written in it could never match, and the requests it was
    // meant for would fall to the rules after it.
    if let Some(reason) = path_refusal(path) {
        let hint = match percent_encoded(path) {
            Some(encoded) if path_refusal(&encoded).is_none() => {
                format!("; write it percent-encoded as UTF-8, as requests carry it: {encoded:?}")
            }
            _ => String::new(),
        };
        return Err(at.error(format!(
            "{path:?} can never match a request: {reason}, and the filters refuse such request paths{hint}"
        )));
    }
    Ok(normal_escapes(path).into_owned())
}

/// `path` with its spaces and non-ASCII characters percent-encoded (UTF-8, uppercase hex), or
/// `None` when it has neither.
fn percent_encoded(path: &str) -> Option<String> {
    if !path.bytes().any(|b| b == b' ' || !b.is_ascii()) {
        return None;
    }
    let mut encoded = String::with_capacity(path.len() * 3);
    for byte in path.bytes() {
        if byte == b' ' || !byte.is_ascii() {
            let _ = write!(encoded, "%{byte:02X}");
        } else {
            encoded.push(char::from(byte));
        }
    }
    Some(encoded)
}

/// `path` with its percent-encoding in normal form (RFC 3986 section 6.2.2): escapes of letters,
/// digits, `-`, `_` and `~` decoded (`/%61dmin` is `/admin` to any upstream that decodes, and
/// most do), every other escape in uppercase (`%c3%a9` is `%C3%A9`). `%2E` stays encoded: a
/// decoded one could make a dot segment the client never wrote. A `%` without two hex digits
/// after it stays as it is.
pub fn normal_escapes(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut normal = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        match escape_at(bytes, i) {
            Some(byte) => {
                if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'~') {
                    normal.push(char::from(byte));
                } else {
                    let _ = write!(normal, "%{byte:02X}");
                }
                i += 3;
            }
            None => {
                let rest = path.get(i..).unwrap_or_default();
                let char_len = rest.chars().next().map_or(1, char::len_utf8);
                normal.push_str(rest.get(..char_len).unwrap_or_default());
                i += char_len;
            }
        }
    }
    Cow::Owned(normal)
}

/// `rule_path` (escapes in normal form) with every escaped printable ASCII character decoded, or
/// `None` when it has none: the path as an upstream that decodes it before routing reads it (Go's
/// `ServeMux`, Spring's path matching, the `PATH_INFO` of every WSGI application), where
/// `/orders/42%3Acancel` is `/orders/42:cancel`. To RFC 3986 and to other upstreams they are two
/// paths, so the rules take both readings.
fn decoded_reserved(rule_path: &str) -> Option<String> {
    let bytes = rule_path.as_bytes();
    let printable = |at: usize| escape_at(bytes, at).filter(|b| (0x20..0x7f).contains(b));
    if !(0..bytes.len()).any(|at| printable(at).is_some()) {
        return None;
    }
    let mut decoded = String::with_capacity(rule_path.len());
    let mut at = 0;
    while let Some(rest) = rule_path.get(at..).filter(|rest| !rest.is_empty()) {
        match printable(at) {
            Some(byte) => {
                decoded.push(char::from(byte));
                at += 3;
            }
            None => {
                let char_len = rest.chars().next().map_or(1, char::len_utf8);
                decoded.push_str(rest.get(..char_len).unwrap_or_default());
                at += char_len;
            }
        }
    }
    Some(decoded)
}

/// `pattern` (a regex written for paths as requests carry them) with each escape of a reserved
/// character (`%3A`) made the regex escape of that character (`\x3A`), for the decoded readings;
/// `None` when it has none.
fn decoded_pattern(pattern: &str) -> Option<String> {
    let bytes = pattern.as_bytes();
    let mut decoded = String::with_capacity(pattern.len());
    let (mut at, mut changed) = (0, false);
    while let Some(rest) = pattern.get(at..).filter(|rest| !rest.is_empty()) {
        match escape_at(bytes, at).filter(|b| (0x20..0x7f).contains(b)) {
            Some(byte) => {
                let _ = write!(decoded, "\\x{byte:02X}");
                at += 3;
                changed = true;
            }
            None => {
                // A regex escape (`\%`) is taken whole: its `%` is not an escape's.
                let take = if rest.starts_with('\\') { 2 } else { 1 };
                let end = rest.char_indices().nth(take).map_or(rest.len(), |(i, _)| i);
                decoded.push_str(rest.get(..end).unwrap_or_default());
                at += end;
            }
        }
    }
    changed.then_some(decoded)
}

/// The decoded readings of `rule_path` ([`RequestLine::decoded_rule_paths`]).
fn decoded_readings(rule_path: &str) -> Vec<String> {
    let Some(decoded) = decoded_reserved(rule_path) else {
        return Vec::new();
    };
    let before_query = decoded
        .find(['?', '#'])
        .and_then(|at| decoded.get(..at))
        .map(str::to_owned);
    std::iter::once(decoded).chain(before_query).collect()
}

/// `path` (escapes in normal form) as an upstream that ignores letter case reads it, in one
/// spelling: every letter in lowercase, non-ASCII ones too (`%C3%89`, `É`, is `%c3%a9`, `é`), each
/// through its uppercase first, so that the letters a case-insensitive comparison takes for one
/// (`ſ` and `s`, `ı` and `i`, which .NET's `OrdinalIgnoreCase` does) read the same; escapes are
/// written in lowercase, so the whole path is. Escaped bytes that are not UTF-8 stay as they are,
/// in lowercase.
pub fn case_folded(path: &str) -> String {
    folded(path, true)
}

/// `pattern` (a regex matched in any ASCII letter case) with its escaped non-ASCII letters folded
/// as [`case_folded`] folds a path's; its own letters and escapes (`\D`) keep their meaning.
fn escapes_case_folded(pattern: &str) -> String {
    folded(pattern, false)
}

/// [`case_folded`], of every letter or (`!ascii`) of escaped non-ASCII ones only.
fn folded(path: &str, ascii: bool) -> String {
    let bytes = path.as_bytes();
    let mut folded = String::with_capacity(path.len());
    let mut at = 0;
    while let Some(rest) = path.get(at..).filter(|rest| !rest.is_empty()) {
        // A run of escaped non-ASCII bytes is read as the characters it encodes.
        let mut run = Vec::new();
        while let Some(byte) = escape_at(bytes, at + 3 * run.len()).filter(|b| !b.is_ascii()) {
            run.push(byte);
        }
        if !run.is_empty() {
            at += 3 * run.len();
            match std::str::from_utf8(&run) {
                Ok(text) => text.chars().for_each(|c| push_folded(&mut folded, c)),
                Err(_) => run.iter().for_each(|byte| push_escape(&mut folded, *byte)),
            }
        } else if let Some(byte) = escape_at(bytes, at).filter(|_| ascii) {
            push_escape(&mut folded, byte);
            at += 3;
        } else {
            let c = rest.chars().next().unwrap_or_default();
            if ascii {
                push_folded(&mut folded, c);
            } else {
                folded.push(c);
            }
            at += c.len_utf8();
        }
    }
    folded
}

/// The letters whose lowercase is not their uppercase's lowercase (`ſ` is `S` in uppercase, so
/// `s`; `ς` is `Σ`, so `σ`), with that: a case-insensitive comparison through uppercase, as .NET's
/// `OrdinalIgnoreCase` is, takes each for the other letter. Sorted; the rest of Unicode folds
/// with `char::to_lowercase` (this table instead of `to_uppercase` keeps its tables, 14 KB of
/// wasm, out of the modules; a test checks it against `to_uppercase`).
const FOLDED_THROUGH_UPPERCASE: [(char, char); 24] = [
    ('\u{b5}', '\u{3bc}'),
    // Not through its uppercase, which it is: `İ`'s full lowercase is `i` and a combining dot,
    // but its simple one `i`, as Java's `Character.toLowerCase` and Spring's case-insensitive
    // path matching read it.
    ('\u{130}', 'i'),
    ('\u{131}', 'i'),
    ('\u{17f}', 's'),
    ('\u{345}', '\u{3b9}'),
    ('\u{3c2}', '\u{3c3}'),
    ('\u{3d0}', '\u{3b2}'),
    ('\u{3d1}', '\u{3b8}'),
    ('\u{3d5}', '\u{3c6}'),
    ('\u{3d6}', '\u{3c0}'),
    ('\u{3f0}', '\u{3ba}'),
    ('\u{3f1}', '\u{3c1}'),
    ('\u{3f5}', '\u{3b5}'),
    ('\u{1c80}', '\u{432}'),
    ('\u{1c81}', '\u{434}'),
    ('\u{1c82}', '\u{43e}'),
    ('\u{1c83}', '\u{441}'),
    ('\u{1c84}', '\u{442}'),
    ('\u{1c85}', '\u{442}'),
    ('\u{1c86}', '\u{44a}'),
    ('\u{1c87}', '\u{463}'),
    ('\u{1c88}', '\u{a64b}'),
    ('\u{1e9b}', '\u{1e61}'),
    ('\u{1fbe}', '\u{3b9}'),
];

/// `c` in lowercase, through its uppercase where that is another letter's ([`FOLDED_THROUGH_UPPERCASE`]).
fn fold_case(c: char) -> impl Iterator<Item = char> {
    let through_uppercase = FOLDED_THROUGH_UPPERCASE
        .binary_search_by_key(&c, |(from, _)| *from)
        .ok()
        .and_then(|at| FOLDED_THROUGH_UPPERCASE.get(at))
        .map(|(_, to)| *to);
    let lowercase = through_uppercase.is_none().then(|| c.to_lowercase());
    through_uppercase.into_iter().chain(lowercase.into_iter().flatten())
}

fn push_folded(out: &mut String, c: char) {
    for c in fold_case(c) {
        if c.is_ascii() {
            out.push(c);
        } else {
            c.encode_utf8(&mut [0; 4])
                .bytes()
                .for_each(|byte| push_escape(out, byte));
        }
    }
}

fn push_escape(out: &mut String, byte: u8) {
    let _ = write!(out, "%{byte:02x}");
}

/// Why `path` (without its query) could mean something else to the upstream than to the rules, or
/// `None` for a path they can be trusted with. Envoy with `normalize_path`, `merge_slashes` and an
/// escaped-slash action never forwards such a path; this is the filters' own line of defence
/// when it runs without them: such a path is refused, never guessed at.
pub fn path_refusal(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("path must start with '/'");
    }
    for byte in path.bytes() {
        match byte {
            b'\\' => return Some("backslash in the path"),
            b';' => return Some("';' path parameters are not accepted"),
            0x21..0x7f => {}
            _ => return Some("control, space or non-ASCII byte in the path"),
        }
    }
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        match segment {
            "." | ".." => return Some("dot segment in the path"),
            "" if segments.peek().is_some() => return Some("empty path segment"),
            _ => {}
        }
    }
    if !path.contains('%') {
        return None;
    }
    let mut escaped = path.split('%').skip(1).map(|after| {
        let mut digits = after.bytes();
        Some(hex(digits.next()?)? << 4 | hex(digits.next()?)?)
    });
    // An escaped ';' is a path parameter to an upstream that decodes before it strips them
    // (`/admin%3Bx` is `/admin` to Spring's path matching), as an escaped control byte is a line
    // break or a NUL to one that decodes into a log line or a C string.
    let refused = |b: u8| matches!(b, b'/' | b'\\' | b'.' | b'%' | b';') || b.is_ascii_control();
    if escaped.any(|byte| byte.is_none_or(refused)) {
        return Some("percent-encoded '/', '\\', '.', '%', ';' or control byte, or a malformed escape, in the path");
    }
    let decoded = percent_decode(path).unwrap_or_default();
    // Overlong forms such as `%c0%ae` ('.') are invalid UTF-8: an upstream that decodes them
    // leniently would see a dot segment the rules never saw.
    std::str::from_utf8(&decoded)
        .err()
        .map(|_| "percent-encoding that is not UTF-8")
}

/// Whether any of `routes` reads the path, and so needs [`path_refusal`]: a filter whose matches
/// never read the path has no reason to refuse one. Known once per config.
pub fn any_reads_path<'r>(routes: impl IntoIterator<Item = &'r RouteMatch>) -> bool {
    routes.into_iter().any(RouteMatch::reads_path)
}

/// What a filter whose rules read methods does with a request that carries a method-override
/// header (`X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`): `POST` with
/// `X-HTTP-Method-Override: DELETE` is a `DELETE` to Rails, Express's `method-override` and many
/// Java stacks, so the rules would judge one method and the upstream run another.
#[derive(Clone, Copy, Debug, Default, Deserialize, FromConfig, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum MethodOverride {
    /// 400: an upstream that honours the header would run another method than the rules judged.
    #[default]
    Refuse,
    /// Rules judge the request's own method; the headers pass on. Only for upstreams that ignore
    /// them (or behind header-scrub, which strips them by default).
    Ignore,
}

impl MethodOverride {
    /// Whether requests with a method-override header are refused, given `routes`: only where
    /// a route reads methods, as paths not in normal form are only where a route reads paths.
    pub fn refuses<'r>(self, routes: impl IntoIterator<Item = &'r RouteMatch>) -> bool {
        self == MethodOverride::Refuse && routes.into_iter().any(RouteMatch::reads_method)
    }
}

/// The bytes `text` percent-decodes to; `None` when a `%` is not followed by two hex digits.
pub fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let mut decoded = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let high = hex(bytes.next()?)?;
            let low = hex(bytes.next()?)?;
            decoded.push(high << 4 | low);
        } else {
            decoded.push(b);
        }
    }
    Some(decoded)
}

/// The byte the `%XX` escape at `at` in `bytes` stands for, if one is there.
pub(crate) fn escape_at(bytes: &[u8], at: usize) -> Option<u8> {
    if bytes.get(at) != Some(&b'%') {
        return None;
    }
    Some(hex(*bytes.get(at + 1)?)? << 4 | hex(*bytes.get(at + 2)?)?)
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Method and path (query and fragment cut off) of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: &'a str,
    /// The path as the request has it.
    pub path: &'a str,
    /// The path as rules read it: its escapes in normal form ([`normal_escapes`]).
    pub rule_path: Cow<'a, str>,
    /// The rule path as upstreams that decode the path before routing read it, when that is
    /// another path ([`decoded_reserved`]): `/orders/42:cancel` for `/orders/42%3Acancel`; and
    /// when a decoded `?` or `#` is in it, the path before that too, as one that decodes the path
    /// and then splits off the query reads it (`/admin` for `/admin%3Fx`).
    pub decoded_rule_paths: Vec<String>,
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
        let rule_path = normal_escapes(path);
        Some(Self {
            method,
            path,
            decoded_rule_paths: decoded_readings(&rule_path),
            rule_path,
            query,
        })
    }

    /// Each way an upstream may read the path: the rule path, then the decoded ones. When the
    /// rules read decode (`rules_decode`: one is written with an escape of a reserved
    /// character), a path without such escapes is read decoded too, against the rules decoded: a
    /// rule for `/a%3Ab` is one for `/a:b` to an upstream that decodes.
    pub fn readings(&self, rules_decode: bool) -> impl Iterator<Item = Reading<'_>> {
        let written = Reading {
            path: &self.rule_path,
            decoded: false,
        };
        let as_is = (rules_decode && self.decoded_rule_paths.is_empty()).then_some(Reading {
            path: &self.rule_path,
            decoded: true,
        });
        let decoded = self
            .decoded_rule_paths
            .iter()
            .map(|path| Reading { path, decoded: true });
        std::iter::once(written).chain(as_is).chain(decoded)
    }

    /// The path in the reading that makes the fewest paths of all spellings: the last decoded
    /// one, else the rule path.
    pub fn most_decoded_path(&self) -> &str {
        self.decoded_rule_paths.last().map_or(&self.rule_path, String::as_str)
    }

    /// The line as rules read it when paths are compared without letter case ([`case_folded`],
    /// after its escapes are read: `%4F` is `O`, and so `o`), as the rules of
    /// [`RouteMatch::compile_case_insensitive`] are.
    pub fn case_folded(self) -> Self {
        Self {
            rule_path: case_folded(&self.rule_path).into(),
            decoded_rule_paths: self.decoded_rule_paths.iter().map(|path| case_folded(path)).collect(),
            ..self
        }
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

    fn compile_folded(json: &str) -> RouteMatch {
        let config: RouteMatchConfig = crate::config::parse(json.as_bytes()).unwrap();
        RouteMatch::compile_case_insensitive(&config, &FieldPath::root().field("match")).unwrap()
    }

    fn line<'a>(method: &'a str, path: &'a str) -> RequestLine<'a> {
        let rule_path = normal_escapes(path);
        RequestLine {
            method,
            path,
            decoded_rule_paths: decoded_readings(&rule_path),
            rule_path,
            query: None,
        }
    }

    /// An upstream that decodes the path before routing it (Go's `ServeMux`, Spring, WSGI) reads
    /// `/orders/42%3Acancel` as `/orders/42:cancel`; others read another path. A request whose two
    /// readings lead to different rules has no rule the rules' author can trust.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_path_whose_decoded_reading_is_another_rules_is_ambiguous() {
        let routes = [
            ("cancel", compile(r#"{"regex": "/v1/orders/[0-9]+:cancel"}"#).unwrap()),
            ("plus", compile(r#"{"exact": "/files/a+b"}"#).unwrap()),
            ("rest", compile(r#"{"prefix": "/"}"#).unwrap()),
        ];
        let first = |routes: &[(&'static str, RouteMatch)], path: &str| {
            first_match(routes, |(_, route)| route, &line("POST", path)).map(|rule| rule.map(|(name, _)| *name))
        };
        assert_eq!(first(&routes, "/v1/orders/42:cancel"), Ok(Some("cancel")));
        for ambiguous in ["/v1/orders/42%3Acancel", "/v1/orders/42%3acancel", "/files/a%2Bb"] {
            assert_eq!(first(&routes, ambiguous), Err(AmbiguousPath), "{ambiguous}");
        }
        // Escapes that lead to the same rule either way are paths like any other.
        for same in [
            "/users/alice%40example.com",
            "/v1/orders/42%3Aship",
            "/files/my%20report",
        ] {
            assert_eq!(first(&routes, same), Ok(Some("rest")), "{same}");
        }
        assert_eq!(
            first(&routes[..2], "/v1/orders/1%3Acancel"),
            Err(AmbiguousPath),
            "one reading to none"
        );
        assert_eq!(first(&routes[..2], "/v1/orders/1%3Aship"), Ok(None));
        assert_eq!(
            decoded_reserved("/a%3A%40%2B%20b%C3%A9"),
            Some("/a:@+ b%C3%A9".to_owned())
        );
        assert_eq!(
            decoded_reserved("/caf%C3%A9/menu"),
            None,
            "non-ASCII stays escaped in both"
        );
        assert_eq!(decoded_reserved("/plain"), None);
        // A regex written with the escapes requests carry reads the decoded paths with them decoded.
        assert_eq!(
            decoded_pattern("/v1/[0-9]+%3Acancel").as_deref(),
            Some("/v1/[0-9]+\\x3Acancel")
        );
        assert_eq!(
            decoded_pattern("/a\\%3A%C3%A9"),
            None,
            "an escaped % and non-ASCII stay"
        );
        let escaped = [("cancel", compile(r#"{"regex": "/v1/orders/[0-9]+%3Acancel"}"#).unwrap())];
        assert_eq!(first(&escaped, "/v1/orders/42%3Acancel"), Ok(Some("cancel")));
        assert_eq!(first(&escaped, "/v1/orders/42%3acancel"), Ok(Some("cancel")));
        // A limit's route applies if the request could be its to the upstream in either reading.
        assert!(routes[0].1.matches(&line("POST", "/v1/orders/42%3Acancel")));
        assert!(routes[0].1.fits_path(&line("POST", "/v1/orders/42%3acancel")));
    }

    /// The table that folds letters through their uppercase is what `to_uppercase` makes of them.
    #[wasm_bindgen_test(unsupported = test)]
    fn letters_fold_through_their_uppercase() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let through_uppercase: String = c.to_uppercase().flat_map(char::to_lowercase).collect();
            let single = |s: &str| s.chars().count() == 1;
            let upper: String = c.to_uppercase().collect();
            if single(&upper) && single(&through_uppercase) {
                assert_eq!(
                    fold_case(c).collect::<String>(),
                    through_uppercase,
                    "{c:?} U+{:04X}",
                    u32::from(c)
                );
            }
        }
    }

    /// For upstreams that ignore letter case (IIS, ASP.NET Core's `OrdinalIgnoreCase`), non-ASCII
    /// letters are letters too: `/CAF%C3%89` (`/CAFÉ`) is `/caf%C3%A9` (`/café`).
    #[wasm_bindgen_test(unsupported = test)]
    fn case_folding_reads_every_letter_and_escape_in_one_case() {
        assert_eq!(case_folded("/CAF%C3%89/Admin"), "/caf%c3%a9/admin");
        assert_eq!(case_folded("/a%3Ab"), "/a%3ab");
        assert_eq!(
            case_folded("/%C5%BFecret"),
            "/secret",
            "long s is s to a case-insensitive comparison"
        );
        assert_eq!(case_folded("/adm%C4%B1n"), "/admin", "dotless i is I in uppercase");
        assert_eq!(case_folded("/%FF%C3"), "/%ff%c3", "escapes that are not UTF-8 stay");
        assert_eq!(case_folded("/%E2%82%AC"), "/%e2%82%ac");
        let prefix = compile_folded(r#"{"prefix": "/caf%C3%A9/admin"}"#);
        let regex = compile_folded(r#"{"regex": "/caf%c3%a9/admin(/.*)?"}"#);
        let upper_regex = compile_folded(r#"{"regex": "/CAF%C3%A9/Admin(/.*)?"}"#);
        for path in [
            "/caf%c3%a9/admin",
            "/CAF%C3%A9/ADMIN",
            "/CAF%C3%89/ADMIN/x",
            "/Caf%C3%89/%41dmin",
        ] {
            let folded = line("GET", path).case_folded();
            assert!(prefix.matches(&folded), "{path}");
            assert!(regex.matches(&folded), "{path}");
            assert!(upper_regex.matches(&folded), "{path}");
        }
        let folded = line("GET", "/V1/Orders/1%3ACancel").case_folded();
        assert_eq!(folded.decoded_rule_paths, ["/v1/orders/1:cancel"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn path_forms_and_methods() {
        let exact = compile(r#"{"exact": "/orders"}"#).unwrap();
        assert!(exact.matches(&line("GET", "/orders")));
        assert!(!exact.matches(&line("GET", "/orders/1")));
        let prefix = compile(r#"{"prefix": "/orders/", "methods": ["POST"]}"#).unwrap();
        assert!(prefix.matches(&line("POST", "/orders/1")));
        assert!(!prefix.matches(&line("GET", "/orders/1")));
        assert!(!prefix.matches(&line("PUT", "/orders/1")));
        let regex = compile(r#"{"regex": "/orders/[0-9]+"}"#).unwrap();
        assert!(regex.matches(&line("GET", "/orders/42")));
        assert!(!regex.matches(&line("GET", "/orders/42/items")));
        assert!(compile("{}").unwrap().matches(&line("DELETE", "/anything")));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_get_rule_covers_head_and_nothing_else_does() {
        let get = compile(r#"{"prefix": "/admin", "methods": ["GET"]}"#).unwrap();
        assert!(get.matches(&line("HEAD", "/admin/users")));
        assert!(!get.matches(&line("OPTIONS", "/admin/users")));
        let head = compile(r#"{"methods": ["HEAD"]}"#).unwrap();
        assert!(head.matches(&line("HEAD", "/")));
        assert!(!head.matches(&line("GET", "/")));
        let post = compile(r#"{"methods": ["POST", "PUT"]}"#).unwrap();
        assert!(!post.matches(&line("HEAD", "/")));
    }

    /// Many upstreams read `delete` as `DELETE`: a method in another letter case is held to the
    /// rule for the method, not let past it.
    #[wasm_bindgen_test(unsupported = test)]
    fn methods_match_in_any_letter_case() {
        let delete = compile(r#"{"prefix": "/orders/", "methods": ["DELETE"]}"#).unwrap();
        for method in ["DELETE", "delete", "Delete", "dElEtE"] {
            assert!(delete.matches(&line(method, "/orders/1")), "{method}");
        }
        assert!(!delete.matches(&line("deletex", "/orders/1")));
        let get = compile(r#"{"methods": ["GET"]}"#).unwrap();
        for method in ["get", "head", "Head"] {
            assert!(get.matches(&line(method, "/")), "{method}");
            assert!(get.fits_method(method), "{method}");
        }
        assert!(!get.matches(&line("post", "/")));
    }

    /// An upstream that serves `/admin/` as `/admin` (Rails, Express without `strict`, Spring
    /// before 6) must not see a request that got past the rule for `/admin` by its trailing slash.
    #[wasm_bindgen_test(unsupported = test)]
    fn one_trailing_slash_does_not_change_which_rule_matches() {
        let exact = compile(r#"{"exact": "/admin"}"#).unwrap();
        assert!(exact.matches(&line("GET", "/admin")));
        assert!(exact.matches(&line("GET", "/admin/")));
        assert!(exact.matches(&line("GET", "/%61dmin/")));
        assert!(!exact.matches(&line("GET", "/admin/x")));
        assert!(!exact.matches(&line("GET", "/admin//")));
        assert!(!exact.matches(&line("GET", "/")));
        let slashed = compile(r#"{"exact": "/admin/"}"#).unwrap();
        assert!(slashed.matches(&line("GET", "/admin")));
        assert!(slashed.matches(&line("GET", "/admin/")));
        let root = compile(r#"{"exact": "/"}"#).unwrap();
        assert!(root.matches(&line("GET", "/")));
        assert!(!root.matches(&line("GET", "/admin")));
        let prefix = compile(r#"{"prefix": "/admin/"}"#).unwrap();
        assert!(prefix.matches(&line("GET", "/admin")));
        assert!(prefix.matches(&line("GET", "/admin/users")));
        assert!(!prefix.matches(&line("GET", "/administrator")));
        assert!(!prefix.matches(&line("GET", "/adm")));
    }

    /// A format suffix makes another path to `exact` (as the README says, with what to write in
    /// front of an upstream that serves `/admin.json` as `/admin`): a prefix or the regex covers it.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_format_suffix_is_another_path_to_exact_and_the_documented_matches_cover_it() {
        let exact = compile(r#"{"exact": "/admin"}"#).unwrap();
        assert!(!exact.matches(&line("GET", "/admin.json")));
        let prefix = compile(r#"{"prefix": "/admin"}"#).unwrap();
        let regex = compile(r#"{"regex": "/admin(\\.[^/]*)?/?"}"#).unwrap();
        for path in ["/admin", "/admin/", "/admin.json", "/admin.xml/"] {
            assert!(prefix.matches(&line("GET", path)), "{path}");
            assert!(regex.matches(&line("GET", path)), "{path}");
        }
        for path in ["/administrator", "/admin/users", "/admin.json/x"] {
            assert!(!regex.matches(&line("GET", path)), "{path}");
        }
    }

    /// RFC 3986 section 6.2.2: escapes of unreserved characters mean the characters, and the
    /// letter case of an escape's hex digits means nothing; rules see one form for all of them.
    #[wasm_bindgen_test(unsupported = test)]
    fn paths_in_normal_form_are_accepted_as_matches() {
        for json in [
            r#"{"prefix": "/"}"#,
            r#"{"prefix": "/public/"}"#,
            r#"{"exact": "/.well-known/jwks.json"}"#,
            r#"{"exact": "/caf%C3%A9"}"#,
            r#"{"exact": "/my%20report"}"#,
            r#"{"prefix": "/%61dmin"}"#,
        ] {
            assert!(compile(json).is_ok(), "{json}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn escapes_are_matched_in_normal_form() {
        let admin = compile(r#"{"prefix": "/admin"}"#).unwrap();
        for path in ["/admin/users", "/%61dmin/users", "/%61%64%6D%69%6E", "/adm%69n"] {
            assert!(admin.matches(&line("GET", path)), "{path}");
        }
        let cafe = compile(r#"{"exact": "/caf%c3%a9/menu"}"#).unwrap();
        for path in ["/caf%C3%A9/menu", "/caf%c3%a9/menu", "/c%61f%C3%a9/menu"] {
            assert!(cafe.matches(&line("GET", path)), "{path}");
        }
        let regex = compile(r#"{"regex": "/users/[a-z]+"}"#).unwrap();
        assert!(regex.matches(&line("GET", "/users/%62ob")));
        assert_eq!(normal_escapes("/a%2e%2E/%2f%7e%5F%2D%41%"), "/a%2E%2E/%2F~_-A%");
        assert_eq!(normal_escapes("/%zz%4"), "/%zz%4");
        assert_eq!(normal_escapes("/caf\u{e9}%41"), "/caf\u{e9}A");
        assert!(matches!(normal_escapes("/plain"), Cow::Borrowed(_)));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn request_lines_drop_query_and_fragment() {
        let h = Headers::from_pairs([(":method", "GET"), (":path", "/a/b?x=1#frag")]);
        assert_eq!(
            RequestLine::of(&h),
            Some(RequestLine {
                method: "GET",
                path: "/a/b",
                rule_path: Cow::Borrowed("/a/b"),
                decoded_rule_paths: Vec::new(),
                query: Some("x=1")
            })
        );
        let h = Headers::from_pairs([(":method", "GET"), (":path", "/a#f?x")]);
        assert_eq!(RequestLine::of(&h).map(|l| l.path), Some("/a"));
        let h = Headers::from_pairs([(":method", "GET"), (":path", "/%61b?%61")]);
        let line = RequestLine::of(&h).unwrap();
        assert_eq!((line.path, &*line.rule_path, line.query), ("/%61b", "/ab", Some("%61")));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn bad_matches_are_refused_with_paths() {
        let err = |json: &str| compile(json).unwrap_err().to_string();
        assert!(err(r#"{"exact": "/a", "prefix": "/b"}"#).starts_with("match: give at most one"));
        assert!(err(r#"{"prefix": "orders"}"#).starts_with("match.prefix: "));
        assert!(err(r#"{"exact": "/a?b=1"}"#).starts_with("match.exact: "));
        assert!(err(r#"{"regex": "("}"#).starts_with("match.regex: invalid regex"));
        // Paths the filters refuse in requests (or that Envoy normalises to another form): a rule
        // written in one is dead, and the requests it was meant for fall to the next rule.
        for (json, field, reason) in [
            (r#"{"exact": "/a//b"}"#, "exact", "empty path segment"),
            (r#"{"prefix": "/a/../b"}"#, "prefix", "dot segment"),
            (r#"{"prefix": "/a/./b"}"#, "prefix", "dot segment"),
            (r#"{"exact": "/a;b"}"#, "exact", "';' path parameters"),
            (r#"{"prefix": "/a%2Fb"}"#, "prefix", "percent-encoded '/'"),
            (r#"{"prefix": "/a%2e%2e/b"}"#, "prefix", "percent-encoded '/'"),
            (r#"{"exact": "/a\\b"}"#, "exact", "backslash"),
            (r#"{"prefix": "/a%zz"}"#, "prefix", "malformed escape"),
            (r#"{"prefix": "/%c0%ae"}"#, "prefix", "not UTF-8"),
            (r#"{"exact": "/a\tb"}"#, "exact", "control, space or non-ASCII"),
        ] {
            let message = err(json);
            assert!(message.starts_with(&format!("match.{field}: ")), "{json}: {message}");
            assert!(message.contains("can never match a request"), "{json}: {message}");
            assert!(message.contains(reason), "{json}: {message}");
            assert!(!message.contains("percent-encoded as UTF-8"), "{json}: {message}");
        }
        assert_eq!(
            err(r#"{"prefix": "/caf\u00e9"}"#),
            "match.prefix: \"/caf\u{e9}\" can never match a request: control, space or non-ASCII byte in the \
             path, and the filters refuse such request paths; write it percent-encoded as UTF-8, as \
             requests carry it: \"/caf%C3%A9\""
        );
        assert!(err(r#"{"exact": "/my report"}"#).ends_with(r#"as requests carry it: "/my%20report""#));
        assert_eq!(
            err(r#"{"methods": ["GET", "get"]}"#),
            r#"match.methods[1]: "get": write methods in uppercase ("GET"); requests match them in any letter case"#
        );
        assert!(err(r#"{"methods": ["GE T"]}"#).starts_with("match.methods[0]: "));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn tricks_are_refused_and_normal_paths_pass() {
        for ok in [
            "/",
            "/orders",
            "/orders/42/items",
            "/a-b_c~d.e",
            "/v1/orders.json",
            "/%41",
            "/caf%C3%A9",
            "/%E2%82%AC/price",
            "/files/my%20report.pdf",
        ] {
            assert_eq!(path_refusal(ok), None, "{ok}");
        }
        for bad in [
            "/public/%2e%2e/admin",
            "/public/..%2fadmin",
            "/public%2Fadmin",
            "/public%5cadmin",
            "/public\\..\\admin",
            "/public/../admin",
            "/public/./admin",
            "/admin/.",
            "//admin",
            "/public//admin",
            "/admin;jsessionid=1",
            "/admin%00.json",
            "/admin%3Bjsessionid=1",
            "/public/..%3B/admin",
            "/admin%3b",
            "/admin%0d%0aSet-Cookie:x",
            "/admin%09",
            "/admin%7F",
            "/%252e%252e/admin",
            "relative",
            "/a b",
            "/caf\u{e9}",
            "/public/%c0%ae%c0%ae/admin",
            "/public/%C0%AE./admin",
            "/%e0%80%ae",
            "/caf%e9",
            "/%zz",
            "/trailing%4",
            "/trailing%",
        ] {
            assert!(path_refusal(bad).is_some(), "{bad}");
        }
    }
}
