//! The filter's JSON config.

use shared::config::FromConfig;

use shared::route::{MethodOverride, RouteMatchConfig};
use shared::Realm;

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub realm: Realm,
    /// Claims that hold scopes: a space-separated string (`scope`) or an array of strings (`scp`).
    #[serde(default = "default_scope_claims")]
    pub scope_claims: Vec<String>,
    /// First match wins.
    pub rules: Vec<RuleConfig>,
    /// What happens to a request no rule matches.
    #[serde(default)]
    pub unmatched: Unmatched,
    /// Compare paths case-insensitively, for upstreams that do (most on Windows): every letter,
    /// non-ASCII ones too, in lowercase; regexes match in any letter case.
    #[serde(default)]
    pub case_insensitive_paths: bool,
    /// What happens to a request with a method-override header (`X-HTTP-Method-Override` and
    /// the like) while a rule reads methods.
    #[serde(default)]
    pub method_override_headers: MethodOverride,
    /// Let CORS preflights (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) without
    /// verified claims through on routes that need scopes: browsers never send credentials on
    /// them, and the authenticating filter in front lets them through too.
    #[serde(default = "shared::config::yes")]
    pub bypass_cors_preflight: bool,
}

fn default_scope_claims() -> Vec<String> {
    vec!["scope".to_owned(), "scp".to_owned()]
}

#[derive(Clone, Copy, Debug, Default, FromConfig, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    #[default]
    Deny,
    Allow,
}

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Names the rule in metrics (`denied_<id>`); default `rule_<index>`.
    pub id: Option<String>,
    #[serde(rename = "match", default)]
    pub route: RouteMatchConfig,
    /// Media types the request body may have (`application/json`); empty: any.
    #[serde(default)]
    pub content_types: Vec<String>,
    pub requires: RequiresConfig,
}

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename = "tagged:RequiresConfig", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "schema", schemars(rename = "RequiresConfig", tag = "type"))]
pub enum RequiresConfig {
    /// One of these scopes.
    AnyOf { scopes: Vec<String> },
    /// Every one of these scopes.
    AllOf { scopes: Vec<String> },
    /// No authentication at all. (A struct variant: serde ignores `deny_unknown_fields` on unit
    /// variants of tagged enums, and `{"type": "public", "scopes": […]}` must not pass silently.)
    Public {},
}
