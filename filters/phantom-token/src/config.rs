//! The filter's JSON config.

use shared::config::FromConfig;

use jose::JwksConfig;
use shared::certificate::ClientCertificateConfig;
use shared::route::{MethodOverride, RouteMatchConfig};
use shared::{HeaderName, Realm};

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The `realm` of `WWW-Authenticate` challenges.
    #[serde(default)]
    pub realm: Realm,
    pub introspection: IntrospectionConfig,
    /// How the JWTs this filter forwards are verified first.
    pub jwt: JwtConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    /// Let a JWT-shaped bearer token (an internal client's) through untouched, for jwt-auth
    /// behind this filter to verify. Off: every token is introspected.
    #[serde(default)]
    pub pass_through_jwts: bool,
    /// Routes where a request without a token passes untouched (a token that is present is still
    /// exchanged, and refused if bad: an opaque token never reaches the upstream).
    #[serde(default)]
    pub token_optional: Vec<RouteMatchConfig>,
    /// What happens to a request without a token that has a method-override header
    /// (`X-HTTP-Method-Override` and the like) while a `token_optional` route reads methods.
    #[serde(default)]
    pub method_override_headers: MethodOverride,
    /// Let CORS preflights through without a token: browsers never send credentials on them.
    #[serde(default = "shared::config::yes")]
    pub bypass_cors_preflight: bool,
    /// Longest opaque token accepted, in bytes.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Where the client certificate a token may be bound to (RFC 8705) is read from: the TLS
    /// connection, or `x-forwarded-client-cert` from a trusted front proxy.
    #[serde(default)]
    pub client_certificate: ClientCertificateConfig,
}

fn default_max_token_bytes() -> usize {
    4096
}

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// The Envoy cluster of the OAuth server.
    pub cluster: String,
    /// Path of the introspection endpoint.
    pub path: String,
    /// `:authority` of the introspection request.
    pub authority: String,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Sent as `token_type_hint` when set (e.g. `access_token`).
    pub token_type_hint: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// A larger answer is a bad gateway.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// How the OAuth server answers, and where the JWT is in the answer.
    pub response: ResponseConfig,
}

fn default_timeout() -> u64 {
    2000
}

fn default_max_response_bytes() -> usize {
    64 * 1024
}

/// How the client authenticates at the introspection endpoint (RFC 7662 section 2.1, RFC 6749
/// section 2.3.1).
#[derive(Clone, Copy, Debug, Default, FromConfig, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
}

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename = "tagged:ResponseConfig", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "schema", schemars(rename = "ResponseConfig", tag = "type"))]
pub enum ResponseConfig {
    /// `Accept: application/jwt`: a 200 body is the JWT, 204 means inactive.
    Jwt {},
    /// RFC 7662 JSON: `active`, and the JWT in `field`.
    Json { field: String },
    /// RFC 9701 signed introspection response (`Accept: application/token-introspection+jwt`),
    /// verified with the `jwt` keys: `typ`, `iss`, `aud` (this client).
    Signed {
        /// The `iss` of the response; default: `jwt.issuer`.
        issuer: Option<String>,
        /// The `aud` the response must carry; default: `introspection.client_id`.
        audience: Option<String>,
        upstream: SignedUpstreamConfig,
    },
}

/// What goes upstream from a signed introspection response.
#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(
    rename = "tagged:SignedUpstreamConfig",
    rename_all = "snake_case",
    deny_unknown_fields
)]
#[cfg_attr(feature = "schema", schemars(rename = "SignedUpstreamConfig", tag = "type"))]
pub enum SignedUpstreamConfig {
    /// The JWT in this member of `token_introspection`, as `Authorization: Bearer`.
    JwtField { field: String },
    /// The signed response itself, in this header (never in `Authorization`): the upstream
    /// verifies it as a token-introspection response.
    ResponseHeader { header: HeaderName },
}

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    pub issuer: String,
    /// The JWT's `aud` must contain one of these (when non-empty).
    #[serde(default)]
    pub audiences: Vec<String>,
    pub jwks: JwksConfig,
    /// Accepted `alg` values; default: RS256/384/512, PS256/384/512, ES256, ES384, EdDSA.
    pub algorithms: Option<Vec<String>>,
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
}

fn default_skew() -> u64 {
    60
}

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Slots of the cache shared by all workers (0 to 1048576); 0 turns caching off.
    #[serde(default = "default_entries")]
    pub max_entries: u32,
    /// No answer is kept longer than this.
    #[serde(default = "default_max_ttl")]
    pub max_ttl_secs: u64,
    /// How long an inactive answer is kept; at most `max_ttl_secs`. Default: 10, or
    /// `max_ttl_secs` when that is less.
    pub inactive_ttl_secs: Option<u64>,
    /// An active answer is dropped this long before the JWT's `exp`, so that what goes upstream
    /// still has time to live.
    #[serde(default = "default_exp_margin")]
    pub exp_margin_secs: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: default_entries(),
            max_ttl_secs: default_max_ttl(),
            inactive_ttl_secs: None,
            exp_margin_secs: default_exp_margin(),
        }
    }
}

fn default_entries() -> u32 {
    4096
}

fn default_max_ttl() -> u64 {
    300
}

/// `inactive_ttl_secs` when not given (and `max_ttl_secs` is not less).
pub const DEFAULT_INACTIVE_TTL_SECS: u64 = 10;

fn default_exp_margin() -> u64 {
    5
}
