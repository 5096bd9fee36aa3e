//! The filter's JSON config.

use shared::config::FromConfig;

use shared::route::RouteMatchConfig;
use shared::HeaderName;

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Every limit a request may fall under; a request passes only if all that apply allow it.
    pub limits: Vec<LimitConfig>,
    /// The rate-limit service, required when a limit is enforced by it.
    pub service: Option<ServiceConfig>,
    #[serde(default)]
    pub headers: HeadersConfig,
    /// Count and log what would be refused, refuse nothing (for rolling out a new limit).
    #[serde(default)]
    pub shadow: bool,
    /// Compare paths without letter case (non-ASCII letters too; regexes in any letter case), in
    /// routes and in the `path` source, for upstreams that do (Express by default, most on
    /// Windows).
    #[serde(default)]
    pub case_insensitive_paths: bool,
    /// How many distinct keys each local limit tracks (1 to 1048576); more keys share slots (memory
    /// is bounded).
    #[serde(default = "default_max_keys")]
    pub max_keys: u32,
}

fn default_max_keys() -> u32 {
    16_384
}

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Lowercase letters, digits and `_`: names the limit in metrics, logs and headers.
    pub name: String,
    /// Requests this limit applies to; none: every request.
    #[serde(default)]
    pub routes: Vec<RouteMatchConfig>,
    /// The descriptor: one entry per key, in order.
    pub descriptor: Vec<EntryConfig>,
    /// Hits a request counts for (the hits addend).
    #[serde(default = "one")]
    pub cost: u32,
    pub enforce: EnforceConfig,
}

fn one() -> u32 {
    1
}

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EntryConfig {
    pub key: String,
    pub source: SourceConfig,
    /// Where the value comes from when `source` has none (e.g. the client address when there is
    /// no verified `sub`). With neither, the limit does not apply to the request.
    pub fallback: Option<SourceConfig>,
}

#[derive(Clone, Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename = "tagged:SourceConfig", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "schema", schemars(rename = "SourceConfig", tag = "type"))]
pub enum SourceConfig {
    /// A claim of the token verified by jwt-auth or phantom-token (filter state, never a header).
    Claim {
        claim: String,
    },
    /// A request header's value (`(several values)` for a header sent more than once;
    /// `:authority` reads as its host, in lowercase, without port or trailing dot). A client
    /// chooses it: key on claims where the limit must not be dodged.
    Header {
        header: HeaderName,
    },
    /// The downstream address as Envoy determined it (`use_remote_address`, trusted XFF hops),
    /// without the port. An IPv6 client is its /64 by default: one host usually holds a whole
    /// /64 and could take a new address from it for every request.
    ClientAddress {
        /// Leading bits of an IPv4 address that make one client, 1 to 32 (default 32: the
        /// address). Below 32 the value is the network, `192.0.2.0/24`.
        ipv4_prefix: Option<u32>,
        /// Leading bits of an IPv6 address that make one client, 1 to 128 (default 64: the
        /// value is the network, `2001:db8:1:2::/64`; 128: the address).
        ipv6_prefix: Option<u32>,
    },
    /// The request path, without query.
    Path {},
    Method {},
    /// The name of the Envoy route the request matched.
    Route {},
    Constant {
        value: String,
    },
}

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename = "tagged:EnforceConfig", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "schema", schemars(rename = "EnforceConfig", tag = "type"))]
pub enum EnforceConfig {
    /// A token bucket in shared data: `requests` per `per`, bursts up to `burst` (default
    /// `requests`), shared by every worker of this Envoy.
    Local {
        requests: u32,
        per: Unit,
        burst: Option<u32>,
    },
    /// Asked of the rate-limit service, which holds the limit.
    Service {},
}

#[derive(Clone, Copy, Debug, FromConfig, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Second,
    Minute,
    Hour,
    Day,
}

impl Unit {
    pub fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3600,
            Unit::Day => 86_400,
        }
    }
}

#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub transport: TransportConfig,
    /// The Envoy cluster of the service (HTTP/2 for gRPC).
    pub cluster: String,
    /// `:authority` of the calls; default: the cluster name.
    pub authority: Option<String>,
    /// The `domain` of every `RateLimitRequest`.
    pub domain: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// What a request gets when the service cannot answer: `deny` (503) or `allow`.
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// Headers of the service's `response_headers_to_add` passed to the client; others dropped.
    /// Not `retry-after`, `content-type` or the rate-limit headers of `headers.style`: this
    /// filter sets those itself.
    #[serde(default)]
    pub allowed_response_headers: Vec<HeaderName>,
}

fn default_timeout_ms() -> u64 {
    200
}

#[derive(Clone, Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename = "tagged:TransportConfig", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "schema", schemars(rename = "TransportConfig", tag = "type"))]
pub enum TransportConfig {
    /// `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`.
    Grpc {},
    /// The same request as proto3 JSON, `POST`ed to `path` (envoyproxy/ratelimit serves `/json`).
    Http {
        #[serde(default = "default_json_path")]
        path: String,
    },
}

fn default_json_path() -> String {
    "/json".to_owned()
}

#[derive(Clone, Copy, Debug, Default, FromConfig, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    #[default]
    Deny,
    Allow,
}

#[derive(Debug, Default, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct HeadersConfig {
    #[serde(default)]
    pub style: HeaderStyle,
    /// Also on responses to requests that were allowed, not only on 429s.
    #[serde(default)]
    pub on_allowed: bool,
}

#[derive(Clone, Copy, Debug, Default, FromConfig, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema, serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum HeaderStyle {
    #[default]
    None,
    /// `X-RateLimit-Limit`, `-Remaining`, `-Reset` (draft-polli-ratelimit-headers-03), as Envoy's
    /// rate-limit filters emit them.
    Draft03,
    /// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
    Ietf,
}
