//! Security response headers: presets and the operator's changes to them.

use std::collections::BTreeMap;

use shared::config::FromConfig;

use shared::{ConfigError, FieldPath, HeaderName};

#[derive(Clone, Copy, Debug, Default, FromConfig, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum SecurityPreset {
    /// Headers for a JSON API that is never framed, rendered or cached.
    #[default]
    Api,
    None,
}

impl SecurityPreset {
    fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            SecurityPreset::Api => &[
                ("strict-transport-security", "max-age=63072000; includeSubDomains"),
                ("x-content-type-options", "nosniff"),
                ("x-frame-options", "DENY"),
                ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
                ("referrer-policy", "no-referrer"),
                ("cache-control", "no-store"),
            ],
            SecurityPreset::None => &[],
        }
    }
}

#[derive(Debug, Default, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct SecurityHeadersConfig {
    #[serde(default)]
    pub preset: SecurityPreset,
    /// Added or replaced values: `{"x-frame-options": "SAMEORIGIN"}`.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Preset headers not to add.
    #[serde(default)]
    pub omit: Vec<HeaderName>,
    /// Replace a value the upstream already set (default: the upstream's value wins).
    #[serde(default)]
    pub overwrite: bool,
}

/// The headers to add, in a fixed order.
#[derive(Debug, Default)]
pub struct SecurityHeaders {
    pub headers: Vec<(HeaderName, String)>,
    pub overwrite: bool,
}

impl SecurityHeaders {
    pub fn compile(config: &SecurityHeadersConfig, path: &FieldPath) -> Result<Self, ConfigError> {
        let preset = config.preset.headers();
        for (i, name) in config.omit.iter().enumerate() {
            let at = path.field("omit").index(i);
            if !preset.iter().any(|(preset_name, _)| name.as_str() == *preset_name) {
                return Err(at.error(format!("{name:?} is not a header of the preset: nothing to omit")));
            }
            if config.set.keys().any(|set| set.eq_ignore_ascii_case(name.as_str())) {
                return Err(at.error(format!("{name:?} is also in `set`: omit it, or set it")));
            }
        }
        let mut headers: Vec<(HeaderName, String)> = config
            .preset
            .headers()
            .iter()
            .map(|(name, value)| (HeaderName::trusted(name), (*value).to_owned()))
            .filter(|(name, _)| !config.omit.contains(name))
            .collect();
        for (raw_name, value) in &config.set {
            let at = path.field("set").key(raw_name);
            let name = HeaderName::new(raw_name).map_err(|e| at.error(e))?;
            name.check_settable(&at)?;
            validate_value(value).map_err(|e| at.error(e))?;
            if value.trim().is_empty() {
                // An empty `Content-Security-Policy` is no policy at all: leave it out with `omit`.
                return Err(at.error("an empty value says nothing: give one, or `omit` the header"));
            }
            // `X-Frame-Options` and `x-frame-options` are one header: one value would win
            // silently, and which one by the keys' sort order.
            if let Some(earlier) = config
                .set
                .keys()
                .take_while(|k| *k != raw_name)
                .find(|k| k.eq_ignore_ascii_case(raw_name))
            {
                return Err(at.error(format!(
                    "{earlier:?} sets the same header: header names are case-insensitive, set it once"
                )));
            }
            match headers.iter_mut().find(|(n, _)| *n == name) {
                Some(existing) => existing.1.clone_from(value),
                None => headers.push((name, value.clone())),
            }
        }
        Ok(Self {
            headers,
            overwrite: config.overwrite,
        })
    }
}

/// A header value must be visible ASCII, spaces or tabs: no CR/LF that could split the response.
pub fn validate_value(value: &str) -> Result<(), String> {
    if value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        Ok(())
    } else {
        Err("header value must be visible ASCII (no control characters)".into())
    }
}
