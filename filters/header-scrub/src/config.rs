//! The filter's JSON config, and its compiled form.

use shared::config::FromConfig;

use shared::{ConfigError, FieldPath, HeaderName, MetricRegistry};

use crate::cors::{Cors, CorsConfig};
use crate::matcher::{NameMatcher, NameRules};
use crate::security::{SecurityHeaders, SecurityHeadersConfig};
use crate::Counters;

#[derive(Debug, Default, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub request: RequestConfig,
    #[serde(default)]
    pub response: ResponseConfig,
    pub cors: Option<CorsConfig>,
}

#[derive(Debug, Default, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct RequestConfig {
    /// Headers removed unless told otherwise.
    #[serde(default)]
    pub strip_preset: RequestStripPreset,
    #[serde(default)]
    pub remove: Vec<HeaderName>,
    #[serde(default)]
    pub remove_prefixes: Vec<String>,
    #[serde(default)]
    pub remove_regex: Vec<String>,
    /// Identity headers the chain sets for upstreams (claim headers and the like): a client's copy
    /// is always removed, every duplicate, any case, `_` for `-`.
    #[serde(default)]
    pub reserved: Vec<HeaderName>,
}

#[derive(Debug, Default, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct ResponseConfig {
    #[serde(default)]
    pub strip_preset: StripPreset,
    #[serde(default)]
    pub remove: Vec<HeaderName>,
    #[serde(default)]
    pub remove_prefixes: Vec<String>,
    #[serde(default)]
    pub remove_regex: Vec<String>,
    /// Names never removed, even when a preset or rule selects them.
    #[serde(default)]
    pub keep: Vec<HeaderName>,
    #[serde(default)]
    pub security_headers: SecurityHeadersConfig,
}

/// Request headers no client needs to send through the gateway.
#[derive(Clone, Copy, Debug, Default, FromConfig, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum RequestStripPreset {
    /// The method-override headers (`x-http-method-override`, `x-http-method`,
    /// `x-method-override`) and path-override headers (`x-original-url`, `x-rewrite-url`):
    /// upstreams that honour them run another method, or serve another path, than the one the
    /// gateway's rules judged.
    #[default]
    Default,
    None,
}

/// Response headers that tell an attacker what runs behind the gateway.
#[derive(Clone, Copy, Debug, Default, FromConfig, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum StripPreset {
    /// `server`, `x-powered-by`, `x-aspnet-version`, `x-aspnetmvc-version` and every `x-envoy-*`.
    #[default]
    Default,
    None,
}

/// The config, compiled once per plugin.
pub struct Compiled {
    pub request_rules: NameMatcher,
    pub response_rules: NameMatcher,
    pub keep: Vec<String>,
    pub security: SecurityHeaders,
    pub cors: Option<Cors>,
    pub counters: Counters,
}

impl Compiled {
    pub fn new(raw: &[u8], metrics: &mut MetricRegistry) -> Result<Self, ConfigError> {
        let config: Config = shared::config::parse(raw)?;
        let root = FieldPath::root();
        let request_path = root.field("request");
        let request = &config.request;
        let request_rules = NameMatcher::compile(
            &NameRules {
                remove: &request.remove,
                remove_prefixes: &request.remove_prefixes,
                remove_regex: &request.remove_regex,
            },
            &request_path,
        )?
        .with_exact(reserved_names(&request.reserved, &request_path.field("reserved"))?);
        let request_rules = match request.strip_preset {
            RequestStripPreset::Default => {
                let overrides = shared::headers::METHOD_OVERRIDE_HEADERS
                    .iter()
                    .chain(&shared::headers::PATH_OVERRIDE_HEADERS);
                request_rules.with_exact(overrides.map(|name| (*name).to_owned()))
            }
            RequestStripPreset::None => request_rules,
        };

        let response_path = root.field("response");
        let response = &config.response;
        let mut response_rules = NameMatcher::compile(
            &NameRules {
                remove: &response.remove,
                remove_prefixes: &response.remove_prefixes,
                remove_regex: &response.remove_regex,
            },
            &response_path,
        )?;
        if response.strip_preset == StripPreset::Default {
            response_rules = response_rules
                .with_exact(["server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version"].map(String::from))
                .with_prefixes(["x-envoy-".to_owned()]);
        }
        let security = SecurityHeaders::compile(&response.security_headers, &response_path.field("security_headers"))?;
        let cors = config
            .cors
            .as_ref()
            .map(|c| Cors::compile(c, &root.field("cors")))
            .transpose()?;
        if cors.is_some() {
            // With `cors` the filter is the one CORS authority: a fixed `access-control-*` value
            // would go on every response, e.g. `Access-Control-Allow-Origin: *` to an origin the
            // policy refuses.
            let set = response.security_headers.set.keys();
            if let Some(name) = set
                .into_iter()
                .find(|n| n.to_ascii_lowercase().starts_with("access-control-"))
            {
                return Err(response_path
                    .field("security_headers")
                    .field("set")
                    .key(name)
                    .error("CORS headers come from the cors policy: configure them there"));
            }
        }
        Ok(Self {
            request_rules,
            response_rules,
            keep: response
                .keep
                .iter()
                .map(|n| crate::matcher::normalise(n.as_str()))
                .collect(),
            security,
            cors,
            counters: Counters::register(metrics),
        })
    }
}

fn reserved_names(names: &[HeaderName], path: &FieldPath) -> Result<Vec<String>, ConfigError> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if name.as_str().starts_with(':') {
                Err(path
                    .index(i)
                    .error(format!("{name:?} is a pseudo-header and cannot be reserved")))
            } else {
                Ok(name.as_str().to_owned())
            }
        })
        .collect()
}
