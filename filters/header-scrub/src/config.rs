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
    /// Names never removed by the preset or the `remove` rules: forwarding headers a trusted proxy
    /// in front of the gateway sets, for instance. Never a `reserved` name.
    #[serde(default)]
    pub keep: Vec<HeaderName>,
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
    /// gateway's rules judged. The forwarding headers Envoy does not write (`forwarded`,
    /// `x-forwarded-host`, `x-forwarded-prefix`, `x-forwarded-server`, `x-real-ip`,
    /// `x-client-ip`, `true-client-ip`, `x-cluster-client-ip`): whatever a client writes there,
    /// upstreams take for what a proxy saw. Envoy's router-control headers (`x-envoy-retry-on`,
    /// `x-envoy-max-retries`, `x-envoy-upstream-rq-timeout-ms`, …), which Envoy obeys on requests
    /// it counts as internal.
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
    /// Request names never removed (normalised as the matcher reads names).
    pub request_keep: Vec<String>,
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
                let preset = shared::headers::METHOD_OVERRIDE_HEADERS
                    .iter()
                    .chain(&shared::headers::PATH_OVERRIDE_HEADERS)
                    .chain(&CLIENT_FORWARDING_HEADERS)
                    .chain(&ROUTER_CONTROL_HEADERS);
                request_rules.with_exact(preset.map(|name| (*name).to_owned()))
            }
            RequestStripPreset::None => request_rules,
        };
        let request_keep = kept_names(&request.keep, &request_path.field("keep"), |name| {
            if names(&request.reserved, name) {
                Some("is `reserved`: a client's copy is always removed")
            } else {
                names(&request.remove, name).then_some(ALSO_REMOVED)
            }
        })?;

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
            request_keep,
            keep: kept_names(&response.keep, &response_path.field("keep"), |name| {
                names(&response.remove, name).then_some(ALSO_REMOVED)
            })?,
            security,
            cors,
            counters: Counters::register(metrics),
        })
    }
}

/// Forwarding headers Envoy does not write, so that a request's copy is the client's own
/// (`x-forwarded-for` and `x-forwarded-proto` are Envoy's, set before any filter runs).
pub const CLIENT_FORWARDING_HEADERS: [&str; 8] = [
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
];

/// The `x-envoy-*` request headers that steer Envoy's router (retries, timeouts, tracing, stats),
/// which it obeys on requests it counts as internal (`internal_address_config`). Not the whole
/// prefix: the connection manager sets `x-envoy-external-address` and `x-envoy-internal` itself.
pub const ROUTER_CONTROL_HEADERS: [&str; 14] = [
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-upstream-stream-duration-ms",
    "x-envoy-force-trace",
    "x-envoy-ip-tags",
    "x-envoy-decorator-operation",
];

const ALSO_REMOVED: &str = "is also in `remove`: remove it, or keep it";

/// Whether `list` names the header whose normalised name is `normalised`.
fn names(list: &[HeaderName], normalised: &str) -> bool {
    list.iter()
        .any(|name| crate::matcher::normalise(name.as_str()) == normalised)
}

/// `keep` names, normalised; a pseudo-header, or a name `conflict` says something about, is refused.
fn kept_names(
    names: &[HeaderName],
    path: &FieldPath,
    conflict: impl Fn(&str) -> Option<&'static str>,
) -> Result<Vec<String>, ConfigError> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let normalised = crate::matcher::normalise(name.as_str());
            if name.as_str().starts_with(':') {
                return Err(path
                    .index(i)
                    .error(format!("{name:?} is a pseudo-header: it is never removed")));
            }
            match conflict(&normalised) {
                Some(why) => Err(path.index(i).error(format!("{name:?} {why}"))),
                None => Ok(normalised),
            }
        })
        .collect()
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
