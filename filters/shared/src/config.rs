//! Config parsing with errors that name the field.
//!
//! Every filter parses its JSON with [`parse`] (serde, `deny_unknown_fields`), then compiles and
//! validates it once; anything wrong becomes a [`ConfigError`] whose path points at the field, e.g.
//! `cors.allowed_origins[1]: "https://a.example/" is not an origin`. The adapter logs it and
//! refuses the plugin, so the host will not serve traffic with a config it did not understand.

use std::fmt;

use serde::de::DeserializeOwned;

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

/// Parses a filter config. An empty or whitespace-only config means `{}` (all defaults).
pub fn parse<T: DeserializeOwned>(raw: &[u8]) -> Result<T, ConfigError> {
    let raw: &[u8] = if raw.trim_ascii().is_empty() { b"{}" } else { raw };
    if !raw.trim_ascii_start().starts_with(b"{") {
        return Err(ConfigError::new("", "the config must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // The root reads "." in serde_path_to_error; it is "" everywhere else here.
        let path = match e.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        };
        ConfigError::new(path, strip_location(&e.inner().to_string()))
    })?;
    de.end().map_err(|e| ConfigError::new("", e.to_string()))?;
    Ok(value)
}

/// serde_json appends " at line 1 column 42"; the field path says more, so drop it.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message.get(..i).unwrap_or(message).to_owned(),
        None => message.to_owned(),
    }
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

    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.0.clone(), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        #[serde(default)]
        items: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
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

    #[wasm_bindgen_test(unsupported = test)]
    fn field_paths_compose() {
        let p = FieldPath::root().field("cors").field("allowed_origins").index(2);
        assert_eq!(p.error("bad").to_string(), "cors.allowed_origins[2]: bad");
        assert_eq!(FieldPath::root().error("bad").to_string(), "(root): bad");
    }
}
