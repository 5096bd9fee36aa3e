//! Which header names a rule set selects: exact names, prefixes and regexes.

use shared::regex::Regex;
use shared::{ConfigError, FieldPath, HeaderName};

/// A rule set as written in config (the `remove*` fields of `request` and `response`).
pub struct NameRules<'a> {
    /// Exact names, any letter case; `_` and `-` are treated alike, so `x_user_id` is caught too.
    pub remove: &'a [HeaderName],
    /// Name prefixes, same normalisation as `remove`.
    pub remove_prefixes: &'a [String],
    /// Regexes matched against the whole name as received, ignoring letter case.
    pub remove_regex: &'a [String],
}

/// A compiled rule set.
#[derive(Debug, Default)]
pub struct NameMatcher {
    exact: Vec<String>,
    prefixes: Vec<String>,
    regexes: Vec<Regex>,
}

impl NameMatcher {
    pub fn compile(rules: &NameRules<'_>, path: &FieldPath) -> Result<Self, ConfigError> {
        let mut matcher = Self::default();
        for (i, name) in rules.remove.iter().enumerate() {
            matcher
                .exact
                .push(normalise(refuse_pseudo(name.as_str(), &path.field("remove").index(i))?));
        }
        for (i, prefix) in rules.remove_prefixes.iter().enumerate() {
            let at = path.field("remove_prefixes").index(i);
            let checked = HeaderName::new(prefix).map_err(|e| at.error(e))?;
            matcher.prefixes.push(normalise(refuse_pseudo(checked.as_str(), &at)?));
        }
        for (i, pattern) in rules.remove_regex.iter().enumerate() {
            let at = path.field("remove_regex").index(i);
            // Anchored: a pattern must describe the whole name, not any name containing it. Case
            // insensitive: header names have no case, and `X-Debug-.*` must not silently miss
            // the lowercase names the host hands over.
            let regex = Regex::whole(pattern, true).map_err(|e| at.error(format!("invalid regex: {e}")))?;
            matcher.regexes.push(regex);
        }
        Ok(matcher)
    }

    /// Adds exact names (already lowercase), e.g. from a preset.
    pub fn with_exact(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.exact.extend(names.into_iter().map(|n| normalise(&n)));
        self
    }

    pub fn with_prefixes(mut self, prefixes: impl IntoIterator<Item = String>) -> Self {
        self.prefixes.extend(prefixes.into_iter().map(|p| normalise(&p)));
        self
    }

    /// Pseudo-headers (`:path`, `:status`...) are never selected: removing them breaks the stream.
    pub fn matches(&self, name: &str) -> bool {
        if name.starts_with(':') {
            return false;
        }
        let name_bytes = name.as_bytes();
        self.exact.iter().any(|e| same_normalised(name_bytes, e))
            || self
                .prefixes
                .iter()
                .any(|p| name_bytes.get(..p.len()).is_some_and(|head| same_normalised(head, p)))
            || self.regexes.iter().any(|r| r.is_match(name))
    }
}

fn refuse_pseudo<'a>(name: &'a str, at: &FieldPath) -> Result<&'a str, ConfigError> {
    if name.starts_with(':') {
        Err(at.error(format!("{name:?} is a pseudo-header and cannot be removed")))
    } else {
        Ok(name)
    }
}

/// Lowercase with `_` folded to `-`: the forms a spoofing client might try are one name here.
pub fn normalise(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// Whether `name` normalises to `normalised` (already normalised), without building the string:
/// this runs for every header of every request.
fn same_normalised(name: &[u8], normalised: &str) -> bool {
    name.len() == normalised.len() && name.iter().zip(normalised.bytes()).all(|(&b, n)| fold(b) == n)
}

fn fold(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn matcher() -> NameMatcher {
        NameMatcher::default()
            .with_exact(["x-user-id".to_owned()])
            .with_prefixes(["x-internal-".to_owned()])
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn exact_names_and_prefixes_match_in_any_case_with_underscores_for_dashes() {
        let m = matcher();
        for name in [
            "x-user-id",
            "X-User-Id",
            "x_user_id",
            "X_USER-ID",
            "x-internal-",
            "x-internal-trace",
            "X_Internal_Trace",
        ] {
            assert!(m.matches(name), "{name}");
        }
        for name in [
            "x-user-i",
            "x-user-idx",
            "x-user",
            "x-internal",
            "y-internal-trace",
            ":path",
            "",
            "x-usér-id",
        ] {
            assert!(!m.matches(name), "{name}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn agrees_with_comparing_normalised_names() {
        let m = matcher();
        let exact = normalise("x-user-id");
        for name in [
            "x-User_ID",
            "x-user-id\u{e9}",
            "X-INTERNAL-\u{e9}",
            "x\u{130}user-id",
            "x-internal",
            "X-Internal_",
        ] {
            let normalised = normalise(name);
            let expected = normalised == exact || normalised.starts_with("x-internal-");
            assert_eq!(m.matches(name), expected, "{name}");
        }
    }
}
