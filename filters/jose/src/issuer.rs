//! A trusted issuer's keys and algorithms, as configured: where the keys come from (inline, a
//! remote JWKS, OIDC discovery, an HMAC secret) and the signature check against them.

use std::cell::Cell;
use std::rc::Rc;

use base64::Engine;
use shared::config::nonempty;
use shared::config::FromConfig;
use shared::{ConfigError, Ctx, FieldPath, HashAlg, HostCrypto};

use crate::keys::{authority_of, path_of, KeySource, RemoteKeys, RemoteSpec};
use crate::{Alg, ClaimRules, Jwk, Jwks, Jwt, JwtError};

/// The `jwks` member of an issuer's config.
#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename = "tagged:JwksConfig", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "schema", schemars(rename = "JwksConfig", tag = "type"))]
pub enum JwksConfig {
    /// Keys in the config itself.
    Inline { jwks: serde_json::Value },
    /// A JWKS document fetched through an Envoy cluster.
    Remote {
        cluster: String,
        path: String,
        /// `:authority` of the fetch; default: the issuer's host.
        authority: Option<String>,
        #[serde(default = "default_refresh")]
        refresh_secs: u64,
        /// How long the last good keys are used while fetches fail; default: an hour, or twice
        /// `refresh_secs` when that is longer.
        max_stale_secs: Option<u64>,
        #[serde(default = "default_timeout")]
        timeout_ms: u64,
    },
    /// `<issuer>/.well-known/openid-configuration`, then its `jwks_uri`, through an Envoy cluster.
    Oidc {
        cluster: String,
        authority: Option<String>,
        /// The cluster for a `jwks_uri` on another host than the discovery document's.
        jwks_cluster: Option<String>,
        #[serde(default = "default_refresh")]
        refresh_secs: u64,
        max_stale_secs: Option<u64>,
        #[serde(default = "default_timeout")]
        timeout_ms: u64,
    },
    /// A shared secret for HS256/384/512 (base64url, at least 32 bytes).
    Hmac { secret_base64url: String },
}

fn default_refresh() -> u64 {
    300
}

fn default_timeout() -> u64 {
    2000
}

/// The longest key refresh period: a key the IdP removed (a compromised one) is trusted at most
/// this long after. 0 would fetch on every tick.
pub const MAX_REFRESH_SECS: u64 = 86_400;

/// The longest the last good keys are used while fetches fail, and the default.
pub const MAX_STALE_SECS: u64 = 604_800;
const DEFAULT_STALE_SECS: u64 = 3600;

/// The largest clock skew an issuer's config may allow. RFC 7519 (section 4.1.4) speaks of "a
/// few minutes" at most; more would keep expired tokens alive (`1e12` would disable expiry).
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

impl ClaimRules {
    /// The claim rules every configured issuer has (jwt-auth's providers, phantom-token's `jwt`):
    /// `iss` equal to `issuer`, `aud` naming one of `audiences` (when any), `exp` required,
    /// `clock_skew_secs` of leeway. Checked, with errors at `at.issuer`, `at.audiences[i]` and
    /// `at.clock_skew_secs`; the other rules are left at their defaults.
    pub fn for_issuer(
        issuer: &str,
        audiences: &[String],
        clock_skew_secs: u64,
        at: &FieldPath,
    ) -> Result<Self, ConfigError> {
        let issuer = nonempty(issuer, &at.field("issuer"))?;
        for (i, audience) in audiences.iter().enumerate() {
            nonempty(audience, &at.field("audiences").index(i))?;
        }
        if clock_skew_secs > MAX_CLOCK_SKEW_SECS {
            return Err(at
                .field("clock_skew_secs")
                .error(format!("must be at most {MAX_CLOCK_SKEW_SECS}")));
        }
        Ok(Self {
            issuer: Some(issuer),
            audiences: audiences.to_vec(),
            clock_skew_secs,
            require_exp: true,
            ..Self::default()
        })
    }
}

/// Why a token's signature was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    Invalid(JwtError),
    /// No key with the token's `kid`, and the keys are remote: a refetch might find it.
    UnknownKid,
    /// Keys were never obtained.
    KeysUnavailable,
}

/// The keys and algorithms an issuer's tokens are checked with.
pub struct IssuerKeys {
    algorithms: Vec<Alg>,
    pub source: KeySource,
}

/// What compiling an issuer's keys needs: the config members, and where they sit in the config.
pub struct IssuerKeysSpec<'a> {
    pub issuer: &'a str,
    pub jwks: &'a JwksConfig,
    /// Allowed `alg` values; `None`: [`Alg::DEFAULT_ALLOWED`].
    pub algorithms: Option<&'a [String]>,
    /// Shared-data prefix of remote keys, unique to this filter and issuer.
    pub store_prefix: String,
    /// The config object holding `issuer`, `jwks` and `algorithms`.
    pub at: &'a FieldPath,
}

impl IssuerKeys {
    pub fn compile(spec: IssuerKeysSpec<'_>) -> Result<Self, ConfigError> {
        let at = spec.at;
        let algorithms = match spec.algorithms {
            None => Alg::DEFAULT_ALLOWED.to_vec(),
            Some(names) => names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    Alg::parse(n).ok_or_else(|| {
                        at.field("algorithms")
                            .index(i)
                            .error(format!("{n:?} is not a supported algorithm"))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        if algorithms.is_empty() {
            return Err(at.field("algorithms").error("allow at least one algorithm"));
        }
        let keys_at = at.field("jwks");
        let issuer_authority = authority_of(spec.issuer);
        let hmac_algs = algorithms.iter().filter(|a| a.is_symmetric()).count();
        let remote = |cluster: &str,
                      authority: &Option<String>,
                      jwks_path: Option<String>,
                      discovery_path,
                      jwks_cluster: &Option<String>,
                      refresh,
                      max_stale: Option<u64>,
                      timeout| {
            let cluster = nonempty(cluster, &keys_at.field("cluster"))?;
            let jwks_cluster = jwks_cluster
                .as_deref()
                .map(|c| nonempty(c, &keys_at.field("jwks_cluster")))
                .transpose()?;
            shared::config::call_timeout(timeout, &keys_at.field("timeout_ms"))?;
            if !(1..=MAX_REFRESH_SECS).contains(&refresh) {
                return Err(keys_at
                    .field("refresh_secs")
                    .error(format!("must be between 1 and {MAX_REFRESH_SECS}")));
            }
            let max_stale_secs = max_stale.unwrap_or(DEFAULT_STALE_SECS.max(refresh.saturating_mul(2)));
            if max_stale_secs <= refresh || max_stale_secs > MAX_STALE_SECS {
                return Err(keys_at.field("max_stale_secs").error(format!(
                    "must be more than refresh_secs ({refresh}) and at most {MAX_STALE_SECS}"
                )));
            }
            let authority = match (authority, &issuer_authority) {
                (Some(authority), _) => {
                    shared::config::call_authority(authority, &keys_at.field("authority"))?;
                    authority.clone()
                }
                (None, Some(from_issuer)) => {
                    shared::config::call_authority(from_issuer, &keys_at.field("authority")).map_err(|_| {
                        keys_at.field("authority").error(format!(
                            "the issuer's host {from_issuer:?} is not an authority to fetch keys from: give one"
                        ))
                    })?;
                    from_issuer.clone()
                }
                (None, None) => {
                    return Err(keys_at
                        .field("authority")
                        .error("the issuer is not a URL: give the authority to fetch keys from"))
                }
            };
            // Plugins in one VM share fetched keys only if they fetch them from the same place:
            // the same issuer name with another JWKS must not bring its keys along.
            let origin = shared::Secret::new(format!(
                "{cluster}\n{authority}\n{jwks_path:?}\n{discovery_path:?}\n{jwks_cluster:?}"
            ));
            let mut keys = RemoteKeys::new(RemoteSpec {
                store_prefix: format!("{}.{}", spec.store_prefix, origin.fingerprint()),
                cluster,
                authority,
                jwks_path,
                discovery_path,
                jwks_cluster,
                refresh_secs: refresh,
                max_stale_secs,
                timeout_ms: timeout,
            });
            // OIDC discovery: a document naming another issuer is not used (Discovery 1.0
            // section 4.3).
            keys.require_issuer(spec.issuer);
            Ok::<_, ConfigError>(KeySource::Remote(Box::new(keys)))
        };
        let source = match spec.jwks {
            JwksConfig::Hmac { secret_base64url } => {
                if hmac_algs != algorithms.len() {
                    return Err(at
                        .field("algorithms")
                        .error("an hmac secret verifies only HS256/HS384/HS512: list only those"));
                }
                let secret_at = keys_at.field("secret_base64url");
                let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(secret_base64url.trim_end_matches('='))
                    .map_err(|_| secret_at.error("not base64url"))?;
                let keys = algorithms
                    .iter()
                    .map(|alg| Jwk::hmac(shared::Secret::new(secret.clone()), *alg, None))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| secret_at.error(e.to_string()))?;
                KeySource::Static(Rc::new(Jwks::from_keys(keys)))
            }
            _ if hmac_algs > 0 => {
                return Err(at
                    .field("algorithms")
                    .error("HS256/HS384/HS512 need `jwks: {\"type\": \"hmac\"}`: public keys are never HMAC secrets"));
            }
            JwksConfig::Inline { jwks } => {
                let jwks = Jwks::from_value(jwks).map_err(|e| keys_at.field("jwks").error(e.to_string()))?;
                if jwks.is_empty() {
                    let skipped = jwks.skip_reasons().join("; ");
                    let why = if skipped.is_empty() {
                        String::new()
                    } else {
                        format!(" ({skipped})")
                    };
                    return Err(keys_at.field("jwks").error(format!("no usable key{why}")));
                }
                KeySource::Static(Rc::new(jwks))
            }
            JwksConfig::Remote {
                cluster,
                path,
                authority,
                refresh_secs,
                max_stale_secs,
                timeout_ms,
            } => {
                shared::config::call_path(path, &keys_at.field("path"))?;
                remote(
                    cluster,
                    authority,
                    Some(path.clone()),
                    None,
                    &None,
                    *refresh_secs,
                    *max_stale_secs,
                    *timeout_ms,
                )?
            }
            JwksConfig::Oidc {
                cluster,
                authority,
                jwks_cluster,
                refresh_secs,
                max_stale_secs,
                timeout_ms,
            } => {
                let issuer_at = at.field("issuer");
                let base = path_of(spec.issuer)
                    .ok_or_else(|| issuer_at.error("OIDC discovery needs an http(s) issuer URL"))?;
                // Discovery 1.0 section 2: an issuer has no query or fragment; section 4 appends
                // the well-known path to the issuer's path.
                if spec.issuer.contains(['?', '#']) {
                    return Err(issuer_at.error("an OIDC issuer has no query or fragment"));
                }
                let discovery = format!("{}/.well-known/openid-configuration", base.trim_end_matches('/'));
                shared::config::call_path(&discovery, &issuer_at)
                    .map_err(|_| issuer_at.error("the issuer's path is not a request target: percent-encode it"))?;
                remote(
                    cluster,
                    authority,
                    None,
                    Some(discovery),
                    jwks_cluster,
                    *refresh_secs,
                    *max_stale_secs,
                    *timeout_ms,
                )?
            }
        };
        Ok(Self { algorithms, source })
    }

    /// The keys and their version, if there are any.
    pub fn current(&self, ctx: &Ctx) -> Option<(Rc<Jwks>, u64)> {
        match &self.source {
            KeySource::Static(jwks) => Some((Rc::clone(jwks), 0)),
            KeySource::Remote(remote) => remote.current(ctx.store, ctx.now_ms),
        }
    }

    pub fn remote(&self) -> Option<&RemoteKeys> {
        match &self.source {
            KeySource::Remote(remote) => Some(remote),
            KeySource::Static(_) => None,
        }
    }

    /// Checks the token completely against `keys` and `rules`: algorithm, signature, claims.
    /// `Ok(true)`: the host's native crypto checked the signature (otherwise the wasm
    /// implementation did).
    pub fn verify(&self, jwt: &Jwt, keys: &Jwks, rules: &ClaimRules, ctx: &Ctx) -> Result<bool, Rejection> {
        let by_host = self.check_signature(jwt, keys, ctx.crypto)?;
        jwt.validate_claims(rules, ctx.now_ms).map_err(Rejection::Invalid)?;
        Ok(by_host)
    }

    fn check_signature(&self, jwt: &Jwt, keys: &Jwks, crypto: &dyn HostCrypto) -> Result<bool, Rejection> {
        if !self.algorithms.contains(&jwt.alg()) {
            return Err(Rejection::Invalid(JwtError::AlgNotAllowed));
        }
        let mut candidates = keys.candidates(jwt.kid(), jwt.alg()).peekable();
        if candidates.peek().is_none() {
            // The key the token names is at hand but is not for its `alg`: a bad token, not a
            // rotation that a refetch would catch up with (nor, while the IdP is down, an outage).
            let named_key_at_hand = jwt
                .kid()
                .is_some_and(|kid| keys.keys().iter().any(|key| key.kid() == Some(kid)));
            return Err(match self.source {
                _ if named_key_at_hand => Rejection::Invalid(JwtError::KeyMismatch),
                KeySource::Remote(_) => Rejection::UnknownKid,
                KeySource::Static(_) => Rejection::Invalid(JwtError::KeyNotFound),
            });
        }
        let crypto = Recorder {
            host: crypto,
            answered: Cell::new(false),
        };
        let mut last = JwtError::BadSignature;
        if !candidates.any(|key| jwt.verify(key, &crypto).map_err(|e| last = e).is_ok()) {
            return Err(Rejection::Invalid(last));
        }
        Ok(crypto.answered.get())
    }
}

/// Remembers whether the host answered a signature check.
struct Recorder<'a> {
    host: &'a dyn HostCrypto,
    answered: Cell<bool>,
}

impl HostCrypto for Recorder<'_> {
    fn verify(&self, hash: HashAlg, spki_der: &[u8], signature: &[u8], message: &[u8]) -> Option<bool> {
        let answer = self.host.verify(hash, spki_der, signature, message);
        self.answered.set(self.answered.get() || answer.is_some());
        answer
    }
}

/// A shared-data prefix unique to a filter, a name within it, and an issuer.
pub fn store_prefix(filter: &str, name: &str, issuer: &str) -> String {
    let digest = shared::Secret::new(format!("{name}\n{issuer}")).fingerprint();
    format!("apisec.{filter}.{name}.{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn issuer_rules_are_checked() {
        let at = FieldPath::root().field("jwt");
        let rules = |issuer: &str, audiences: &[&str], skew: u64| {
            let audiences: Vec<String> = audiences.iter().map(|a| (*a).to_owned()).collect();
            ClaimRules::for_issuer(issuer, &audiences, skew, &at).map_err(|e| e.to_string())
        };
        let ok = rules("https://idp.example", &["api"], MAX_CLOCK_SKEW_SECS).unwrap();
        assert_eq!(ok.issuer.as_deref(), Some("https://idp.example"));
        assert_eq!(ok.audiences, ["api"]);
        assert_eq!(ok.clock_skew_secs, 300);
        assert!(ok.require_exp);
        assert!(rules("i", &[], 0).is_ok());
        assert_eq!(rules("", &["api"], 60).unwrap_err(), "jwt.issuer: must not be empty");
        assert_eq!(
            rules("i", &["api", ""], 60).unwrap_err(),
            "jwt.audiences[1]: must not be empty"
        );
        for skew in [301, 1_000_000_000_000, u64::MAX] {
            assert_eq!(
                rules("i", &[], skew).unwrap_err(),
                "jwt.clock_skew_secs: must be at most 300"
            );
        }
    }
}
