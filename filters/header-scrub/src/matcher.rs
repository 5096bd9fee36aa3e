//! Which header names a rule set selects: exact names, prefixes and regexes.

use regex_lite::Regex;

use shared::{ConfigError, FieldPath, HeaderName};

/// A rule set as written in config (the `remove*` fields of `request` and `response`).
pub struct NameRules<'a> {
    /// Exact names, any letter case; `_` and `-` are treated alike, so `x_user_id` is caught too.
    pub remove: &'a [HeaderName],
    /// Name prefixes, same normalisation as `remove`.
    pub remove_prefixes: &'a [String],
    /// Regexes matched against the whole lowercase name as received.
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
            // Anchored: a pattern must describe the whole name, not any name containing it.
            let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| at.error(format!("invalid regex: {e}")))?;
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
        let normalised = normalise(name);
        self.exact.contains(&normalised)
            || self.prefixes.iter().any(|p| normalised.starts_with(p.as_str()))
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
