//! The filter's JSON config.

use std::collections::BTreeMap;

use shared::config::FromConfig;

use jose::JwksConfig;
use shared::certificate::ClientCertificateConfig;
use shared::route::{MethodOverride, RouteMatchConfig};
use shared::source::SourceConfig;
use shared::{HeaderName, Realm};

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The `realm` of `WWW-Authenticate` challenges.
    #[serde(default)]
    pub realm: Realm,
    pub providers: BTreeMap<String, ProviderConfig>,
    /// First match wins. A request no rule matches needs a valid token from any provider.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Let CORS preflights (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) through
    /// without a token: browsers never send credentials on them.
    #[serde(default = "shared::config::yes")]
    pub bypass_cors_preflight: bool,
    /// Verified tokens remembered per worker (by SHA-256), until `exp` or a key change.
    #[serde(default = "default_cache_entries")]
    pub cache_max_entries: usize,
    /// Longest token accepted, in bytes.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Let the host check RS256/384/512, ES256 and ES384 signatures natively where it can (Envoy's
    /// `verify_signature` foreign function). `false`: every signature is checked in wasm (pure
    /// Rust), e.g. to measure that path or on a host whose native check is not trusted.
    #[serde(default = "shared::config::yes")]
    pub host_crypto: bool,
    /// Compare paths case-insensitively, for upstreams that do (Express by default, most on
    /// Windows): every letter, non-ASCII ones too, in lowercase; regexes match in any letter case.
    #[serde(default)]
    pub case_insensitive_paths: bool,
    /// What happens to a request with a method-override header (`X-HTTP-Method-Override` and
    /// the like) while a rule reads methods.
    #[serde(default)]
    pub method_override_headers: MethodOverride,
    /// Where the client certificate a token may be bound to (RFC 8705) is read from: the TLS
    /// connection, or `x-forwarded-client-cert` from a trusted front proxy.
    #[serde(default)]
    pub client_certificate: ClientCertificateConfig,
}

fn default_cache_entries() -> usize {
    4096
}

fn default_max_token_bytes() -> usize {
    16 * 1024
}

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub issuer: String,
    /// The token's `aud` must contain one of these (when non-empty).
    #[serde(default)]
    pub audiences: Vec<String>,
    pub jwks: JwksConfig,
    /// Accepted `alg` values; default: RS256/384/512, PS256/384/512, ES256, ES384, EdDSA.
    pub algorithms: Option<Vec<String>>,
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
    pub max_lifetime_secs: Option<u64>,
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Accepted `typ` header values (e.g. `["at+jwt"]` for RFC 9068 access tokens); absent: any but
    /// the kinds of JWT that are never access tokens (`token-introspection+jwt`, `secevent+jwt`,
    /// `logout+jwt`, `entity-statement+jwt`, SD-JWT credentials).
    pub typ: Option<Vec<String>>,
    /// Where the token is read from, in order; default `Authorization: Bearer`.
    #[serde(default = "default_sources")]
    pub from: Vec<SourceConfig>,
    /// Keep the token in the request to the upstream (default) or strip it.
    #[serde(default = "shared::config::yes")]
    pub forward: bool,
    /// Verified claims copied into request headers for the upstream.
    #[serde(default)]
    pub claims_to_headers: Vec<ClaimHeaderConfig>,
    /// Joins array claims in headers.
    #[serde(default = "default_separator")]
    pub array_separator: String,
    /// A header that carries the verified payload (base64url, as in the token).
    pub payload_header: Option<HeaderName>,
}

fn default_skew() -> u64 {
    60
}

fn default_separator() -> String {
    ",".to_owned()
}

fn default_sources() -> Vec<SourceConfig> {
    vec![SourceConfig::bearer()]
}

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimHeaderConfig {
    pub claim: String,
    pub header: HeaderName,
}

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(rename = "match", default)]
    pub route: RouteMatchConfig,
    pub requires: RequirementConfig,
}

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename = "tagged:RequirementConfig", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "schema", schemars(rename = "RequirementConfig", tag = "type"))]
pub enum RequirementConfig {
    /// A valid token from this provider.
    Provider { name: String },
    /// A valid token from any of these; every token the request carries in their sources must be
    /// valid for one of the providers that read it.
    AnyOf { providers: Vec<String> },
    /// A valid token from each of these.
    AllOf { providers: Vec<String> },
    /// No token is fine; every token that is present must be valid for one of these.
    AllowMissing { providers: Vec<String> },
    /// No authentication. A struct variant, not a unit one: serde's `deny_unknown_fields` does not
    /// reach unit variants of internally tagged enums (serde-rs/serde#2123), so
    /// `{"type": "none", "providers": ["x"]}` would silently mean "no authentication".
    None {},
}
