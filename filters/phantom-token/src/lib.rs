//! phantom-token: clients hold opaque access tokens; the APIs behind the gateway receive a JWT.
//!
//! For each request with `Authorization: Bearer <opaque>`, the filter asks the OAuth server's
//! introspection endpoint (RFC 7662) for the token's JWT, in one of three answer formats
//! (`application/jwt`, RFC 7662 JSON with a JWT member, RFC 9701 signed response), verifies the
//! JWT with the IdP's keys, and forwards `Authorization: Bearer <jwt>`. The claims go to filter
//! state (`apisec.claims`) for the filters behind it.
//!
//! Answers are cached in shared data for every worker, keyed by the token's SHA-256; requests on
//! one worker with the same uncached token wait on a single introspection call. Every failure
//! fails closed: 401 for a token the IdP does not vouch for, 502 for an answer that cannot be
//! trusted, 503 when the IdP cannot be asked.

mod cache;
mod config;
mod introspection;
mod verify;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use jose::keys::{Fetch, FetchCounters, Refetch, Refetched, RemoteKeys, Ticket};
use jose::{ClaimRules, IssuerKeys, IssuerKeysSpec};
use shared::certificate::ClientCertificate;
use shared::route::{first_match, path_refusal, RequestLine, RouteMatch};
use shared::source::{Found, Source, SourceConfig};
use shared::{
    CallOutcome, ConfigError, Counter, Ctx, Deny, FieldPath, HeaderEdit, HeaderName, Headers, HttpFilter,
    MetricRegistry, Realm, RootStep, Secret, Step,
};

use cache::{Entry, SharedCache};
pub use config::Config;
use config::{CacheConfig, ResponseConfig, SignedUpstreamConfig};
use introspection::{Failure, Introspector, Reply};
use verify::{Refusal, Resolved, SignedRules, SignedUpstream, Unresolved, Verifier};

shared::export_filter!(PhantomToken);

/// Filter-state key of the verified claims (JSON): the hand-off to scope-gate and rate-limit.
pub const CLAIMS_STATE: &str = shared::handoff::CLAIMS;
/// Filter-state key with the outcome (`allowed`, `passed_through` or the denial reason).
pub const OUTCOME_STATE: &str = "apisec.phantom_token.outcome";

const TICK: Duration = Duration::from_millis(500);
/// Slots of the shared cache a config may ask for: each holds a JWT and its claims (a few KB),
/// and a config that takes over another's namespace reads each of its slots once.
const MAX_CACHE_ENTRIES: u32 = 1 << 20;
const KEYS_RETRY_AFTER_SECS: u64 = 2;
/// The index of the IdP's key source in fetch tags (there is one).
const KEY_SOURCE: usize = 0;

/// Denial reasons; each has a counter `denied_<reason>`.
const DENIAL_REASONS: &[&str] = &[
    "malformed_request",
    "path_refused",
    "method_override_refused",
    "missing_token",
    "ambiguous_token",
    "malformed_token",
    "not_access_token",
    "inactive_token",
    "sender_constrained",
    "wrong_audience",
    "certificate_mismatch",
    "idp_unavailable",
    "idp_bad_answer",
];

struct Counters {
    allowed: Counter,
    passed_through: Counter,
    unauthenticated_allowed: Counter,
    cache_hit: Counter,
    cache_negative_hit: Counter,
    cache_miss: Counter,
    coalesced_waits: Counter,
    introspection_active: Counter,
    introspection_inactive: Counter,
    introspection_errors: Vec<(&'static str, Counter)>,
    fetches: FetchCounters,
    kid_refetch: Counter,
    missing_keys_refetch: Counter,
    denied: Vec<(&'static str, Counter)>,
}

impl Counters {
    fn register(metrics: &mut MetricRegistry) -> Self {
        let named = |metrics: &mut MetricRegistry, prefix: &str, names: &[&'static str]| {
            names
                .iter()
                .map(|n| (*n, metrics.counter(&format!("{prefix}{n}"))))
                .collect()
        };
        Self {
            allowed: metrics.counter("allowed"),
            passed_through: metrics.counter("jwt_passed_through"),
            unauthenticated_allowed: metrics.counter("unauthenticated_allowed"),
            cache_hit: metrics.counter("cache_hit"),
            cache_negative_hit: metrics.counter("cache_negative_hit"),
            cache_miss: metrics.counter("cache_miss"),
            coalesced_waits: metrics.counter("coalesced_waits"),
            introspection_active: metrics.counter("introspection_active"),
            introspection_inactive: metrics.counter("introspection_inactive"),
            introspection_errors: named(metrics, "introspection_error_", Failure::KINDS),
            fetches: FetchCounters {
                ok: metrics.counter("jwks_fetch_ok"),
                failed: metrics.counter("jwks_fetch_failed"),
            },
            kid_refetch: metrics.counter("kid_refetch"),
            missing_keys_refetch: metrics.counter("missing_keys_refetch"),
            denied: named(metrics, "denied_", DENIAL_REASONS),
        }
    }

    fn find(list: &[(&'static str, Counter)], name: &str) -> Vec<Counter> {
        list.iter().filter(|(n, _)| *n == name).map(|(_, c)| *c).collect()
    }
}

/// How a verdict reaches the upstream.
enum UpstreamHeader {
    /// `Authorization: Bearer <jwt>`.
    Bearer,
    /// The signed introspection response in this header; `Authorization` removed.
    Response(HeaderName),
}

/// How long answers are kept.
struct CachePolicy {
    max_ttl_ms: u64,
    inactive_ttl_ms: u64,
    exp_margin_ms: u64,
}

/// The outcome of one introspection, for the request that made it and every request that waited
/// on it.
enum Verdict {
    Allow {
        upstream: Vec<u8>,
        claims: Vec<u8>,
        /// Bearer, or bound to a client certificate (RFC 8705): each request that gets this
        /// verdict must come on a connection that presented it.
        binding: jose::Binding,
    },
    Deny(Deny, &'static str),
}

/// One worker's introspection of one token, in flight or just answered.
#[derive(Default)]
struct Flight {
    verdict: Option<Rc<Verdict>>,
}

/// The configured filter, one per worker.
pub struct PhantomToken {
    realm: Realm,
    source: Source,
    introspector: Introspector,
    verifier: Verifier,
    upstream_header: UpstreamHeader,
    cache: SharedCache,
    policy: CachePolicy,
    pass_through_jwts: bool,
    token_optional: Vec<RouteMatch>,
    /// Whether a `token_optional` route reads the path: then, without a token, a path not in
    /// normal form is refused.
    token_optional_reads_paths: bool,
    /// Whether a `token_optional` route reads the method: then, without a token, a request that
    /// asks the upstream to run another method is refused.
    refuse_method_override: bool,
    bypass_cors_preflight: bool,
    max_token_bytes: usize,
    client_certificate: ClientCertificate,
    /// Prefix of the wait signals: unique to this plugin's config.
    signal_prefix: String,
    flights: RefCell<HashMap<[u8; 32], Flight>>,
    counters: Counters,
}

impl PhantomToken {
    /// `raw`: the config as the host gave it, which names this plugin's cache.
    fn compile(config: &Config, raw: &[u8], metrics: &mut MetricRegistry) -> Result<Self, ConfigError> {
        let root = FieldPath::root();
        let at = root.field("introspection");
        let introspector = Introspector::compile(&config.introspection, &at)?;
        let jwt_at = root.field("jwt");
        let jwt = &config.jwt;
        let mut token_rules = ClaimRules::for_issuer(&jwt.issuer, &jwt.audiences, jwt.clock_skew_secs, &jwt_at)?;
        // The audience is checked apart: see `Verifier::token_rules`.
        let audiences = std::mem::take(&mut token_rules.audiences);
        let keys = IssuerKeys::compile(IssuerKeysSpec {
            issuer: &jwt.issuer,
            jwks: &jwt.jwks,
            algorithms: jwt.algorithms.as_deref(),
            store_prefix: jose::store_prefix("phantom_token", "idp", &jwt.issuer),
            at: &jwt_at,
        })?;
        let (signed, upstream_header) = match &config.introspection.response {
            ResponseConfig::Signed {
                issuer,
                audience,
                upstream,
            } => {
                let (upstream, header) = match upstream {
                    SignedUpstreamConfig::JwtField { field } if field.is_empty() => {
                        return Err(at
                            .field("response")
                            .field("upstream")
                            .field("field")
                            .error("must not be empty"))
                    }
                    SignedUpstreamConfig::JwtField { field } => {
                        (SignedUpstream::JwtField(field.clone()), UpstreamHeader::Bearer)
                    }
                    SignedUpstreamConfig::ResponseHeader { header } => {
                        let header_at = at.field("response").field("upstream").field("header");
                        header.check_settable(&header_at)?;
                        if header.as_str() == "authorization" {
                            return Err(header_at
                                .error("a token-introspection response never goes upstream as the access token"));
                        }
                        (SignedUpstream::ResponseHeader, UpstreamHeader::Response(header.clone()))
                    }
                };
                let response_at = at.field("response");
                let given = |value: &Option<String>, field: &str| {
                    value
                        .as_deref()
                        .map(|value| shared::config::nonempty(value, &response_at.field(field)))
                        .transpose()
                };
                let issuer = given(issuer, "issuer")?;
                let audience = given(audience, "audience")?;
                let rules = ClaimRules {
                    issuer: Some(issuer.unwrap_or_else(|| jwt.issuer.clone())),
                    audiences: vec![audience.unwrap_or_else(|| introspector.client_id().to_owned())],
                    clock_skew_secs: jwt.clock_skew_secs,
                    required_claims: vec!["iat".to_owned()],
                    require_exp: false,
                    allowed_typ: Some(vec![introspection::SIGNED_MEDIA.to_owned()]),
                    ..ClaimRules::default()
                };
                (Some(SignedRules { rules, upstream }), header)
            }
            _ => (None, UpstreamHeader::Bearer),
        };
        let CacheConfig {
            max_entries,
            max_ttl_secs,
            inactive_ttl_secs,
            exp_margin_secs,
        } = config.cache;
        if max_entries > MAX_CACHE_ENTRIES {
            return Err(root
                .field("cache")
                .field("max_entries")
                .error(format!("must be at most {MAX_CACHE_ENTRIES}")));
        }
        // `max_ttl_secs` is the longest any answer is reused, inactive ones included.
        let inactive_ttl_secs = match inactive_ttl_secs {
            None => config::DEFAULT_INACTIVE_TTL_SECS.min(max_ttl_secs),
            Some(secs) if secs > max_ttl_secs => {
                return Err(root
                    .field("cache")
                    .field("inactive_ttl_secs")
                    .error(format!("must not exceed cache.max_ttl_secs ({max_ttl_secs})")))
            }
            Some(secs) => secs,
        };
        // Plugins in one VM share its shared data and wait signals. Only plugins with the same
        // config may share answers: any other setting (audiences, keys, what goes upstream) could
        // make one forward what the other never verified.
        let identity = Secret::new(raw).fingerprint();
        let prefix = format!("apisec.phantom_token.{identity}");
        let token_optional: Vec<RouteMatch> = config
            .token_optional
            .iter()
            .enumerate()
            .map(|(i, route)| RouteMatch::compile(route, &root.field("token_optional").index(i)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            realm: config.realm.clone(),
            source: Source::compile(&SourceConfig::bearer(), &root)?,
            verifier: Verifier {
                keys,
                token_rules,
                audiences,
                signed,
                max_jwt_bytes: config.introspection.max_response_bytes,
            },
            introspector,
            upstream_header,
            cache: SharedCache::new(raw, max_entries),
            policy: CachePolicy {
                max_ttl_ms: max_ttl_secs.saturating_mul(1000),
                inactive_ttl_ms: inactive_ttl_secs.saturating_mul(1000),
                exp_margin_ms: exp_margin_secs.saturating_mul(1000),
            },
            pass_through_jwts: config.pass_through_jwts,
            token_optional_reads_paths: shared::route::any_reads_path(&token_optional),
            refuse_method_override: config.method_override_headers.refuses(&token_optional),
            token_optional,
            bypass_cors_preflight: config.bypass_cors_preflight,
            max_token_bytes: shared::config::max_token_bytes(config.max_token_bytes, &root.field("max_token_bytes"))?,
            client_certificate: ClientCertificate::compile(
                &config.client_certificate,
                &root.field("client_certificate"),
            )?,
            signal_prefix: prefix,
            flights: RefCell::new(HashMap::new()),
            counters: Counters::register(metrics),
        })
    }

    fn remote(&self) -> Option<&RemoteKeys> {
        self.verifier.keys.remote()
    }

    /// The version of the keys this worker verifies with now.
    fn keys_version(&self, ctx: &Ctx) -> Option<u64> {
        self.verifier.keys.current(ctx).map(|(_, version)| version)
    }

    fn flight_signal(&self, key: &[u8; 32]) -> String {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}.flight.{hex}", self.signal_prefix)
    }

    fn keys_signal(&self) -> String {
        format!("{}.keys", self.signal_prefix)
    }

    /// When a verified answer stops being served from the cache; `None`: it is not cached.
    fn expiry(&self, resolved: &Resolved, reply: &Reply, now_ms: u64) -> Option<u64> {
        let freshness = match reply {
            Reply::Inactive(f) | Reply::Token(_, _, f) | Reply::Signed(_, f) => *f,
        };
        if freshness.forbidden {
            return None;
        }
        let mut expiry = match resolved {
            Resolved::Inactive | Resolved::Refused(_) => now_ms.saturating_add(self.policy.inactive_ttl_ms),
            Resolved::Active { exp, .. } => {
                let capped = now_ms.saturating_add(self.policy.max_ttl_ms);
                exp.map_or(capped, |exp| {
                    capped.min(exp.saturating_mul(1000).saturating_sub(self.policy.exp_margin_ms))
                })
            }
        };
        if let Some(max_age) = freshness.max_age_secs {
            expiry = expiry.min(now_ms.saturating_add(max_age.saturating_mul(1000)));
        }
        (expiry > now_ms).then_some(expiry)
    }
}

impl shared::FilterRoot for PhantomToken {
    const NAME: &'static str = "phantom_token";
    type Filter = Exchange;

    fn configure(raw: &[u8], metrics: &mut MetricRegistry) -> Result<Self, ConfigError> {
        let config: Config = shared::config::parse(raw)?;
        Self::compile(&config, raw, metrics)
    }

    fn new_filter(root: &Rc<Self>) -> Exchange {
        Exchange {
            root: Rc::clone(root),
            token: None,
            key: None,
            leading: false,
            looked_up: false,
            waited: false,
            asked_at_ms: 0,
            refetching_keys: None,
            waiting_for_keys: None,
            unverified: None,
            forwarded_certificate: None,
        }
    }

    fn tick_period(&self) -> Option<Duration> {
        match (self.remote(), self.cache.is_enabled()) {
            (Some(_), _) => Some(TICK),
            (None, true) => Some(shared::namespace::RENEW_EVERY),
            (None, false) => None,
        }
    }

    /// The first fetch of remote keys goes out at configure, not at the first tick.
    fn on_start(&self, ctx: &Ctx) -> RootStep {
        self.on_tick(ctx)
    }

    fn on_tick(&self, ctx: &Ctx) -> RootStep {
        self.cache.claim(ctx.store, ctx.now_ms);
        let mut step = RootStep::default();
        if let Some((fetch, call)) = self.remote().and_then(|remote| remote.tick(ctx.now_ms, ctx.store)) {
            step.calls.push((fetch.tag(KEY_SOURCE), call));
        }
        step
    }

    fn on_call_response(&self, tag: u32, outcome: CallOutcome, ctx: &Ctx) -> RootStep {
        let (_, fetch) = Fetch::untag(tag);
        match self.remote() {
            Some(remote) => remote.answer_in_root(
                KEY_SOURCE,
                fetch,
                outcome,
                ctx,
                self.counters.fetches,
                self.keys_signal(),
            ),
            None => RootStep::default(),
        }
    }
}

/// One request's token exchange.
pub struct Exchange {
    root: Rc<PhantomToken>,
    /// The opaque token, kept while the request waits.
    token: Option<Secret>,
    /// Its SHA-256: the cache and flight key.
    key: Option<[u8; 32]>,
    /// This request makes the introspection call others wait on.
    leading: bool,
    /// Its cache lookup and its wait on another request's call were counted: a request that
    /// looks up again because the request it waited on went away counts once.
    looked_up: bool,
    waited: bool,
    /// When it asked (host clock, ms): what was cached since may be newer news than the answer.
    asked_at_ms: u64,
    /// Its outstanding call is this fetch of a key refetch.
    refetching_keys: Option<Fetch>,
    /// It waits on a key fetch another request or the root makes.
    waiting_for_keys: Option<Ticket>,
    /// An answer waiting for the keys that verify it.
    unverified: Option<Reply>,
    /// The request's `x-forwarded-client-cert`, when the config reads the client certificate
    /// from it.
    forwarded_certificate: Option<Vec<u8>>,
}

impl HttpFilter for Exchange {
    fn reads_response_headers(&self) -> bool {
        false
    }

    /// An upstream that merged trailers into the headers would take a client's copies of the
    /// headers this filter sets from them.
    fn on_request_trailers(&mut self, trailers: &Headers, _ctx: &Ctx) -> Step {
        let authorization = HeaderName::trusted("authorization");
        let response = match &self.root.upstream_header {
            UpstreamHeader::Response(name) => Some(name),
            UpstreamHeader::Bearer => None,
        };
        Step::proceed().remove_present(trailers, std::iter::once(&authorization).chain(response))
    }

    fn on_request_headers(&mut self, headers: &Headers, ctx: &Ctx) -> Step {
        let root = Rc::clone(&self.root);
        if root.client_certificate.reads_forwarded_header() {
            self.forwarded_certificate = shared::certificate::forwarded_header(headers);
        }
        let mut step = Step::proceed();
        if let UpstreamHeader::Response(name) = &root.upstream_header {
            step = step.remove_present(headers, [name]);
        }
        let Some(line) = RequestLine::of(headers) else {
            return self.deny(
                step,
                Deny::MalformedRequest("malformed request line"),
                "malformed_request",
            );
        };
        let found = root.source.find(headers, &line);
        // A browser's preflight carries no credentials (Fetch): one that does is checked as any
        // request is, so the opaque token never reaches the upstream.
        if root.bypass_cors_preflight
            && headers.is_plain_cors_preflight()
            && matches!(found, Found::None | Found::OtherScheme)
        {
            return without_credentials(step, headers).count(root.counters.unauthenticated_allowed);
        }
        let token = match found {
            Found::Token(token) => token,
            Found::Malformed => {
                let deny = Deny::InvalidToken("the access token is malformed");
                return self.deny(step, deny, "malformed_token");
            }
            // Without a token, the path decides: it must be one the routes can be trusted with.
            // Another scheme's credential, JWT or not, is no bearer token: removed on the routes
            // let through without one, challenged as none elsewhere (RFC 6750 section 3.1).
            Found::None | Found::OtherScheme
                if let Some(reason) = root
                    .token_optional_reads_paths
                    .then(|| path_refusal(line.path))
                    .flatten() =>
            {
                log::debug!("phantom_token: path refused: {reason}");
                let deny = Deny::MalformedRequest("the request path is not in normal form");
                return self.deny(step, deny, "path_refused");
            }
            Found::None | Found::OtherScheme if root.token_optional_reads_paths && headers.has_path_override() => {
                log::debug!("phantom_token: path-override header refused");
                let deny = Deny::MalformedRequest("path-override headers are not accepted");
                return self.deny(step, deny, "path_refused");
            }
            // A `GET` route open without a token must not open the `DELETE` an override asks for.
            Found::None | Found::OtherScheme if root.refuse_method_override && headers.has_method_override() => {
                log::debug!("phantom_token: method-override header refused");
                let deny = Deny::MalformedRequest("method-override headers are not accepted");
                return self.deny(step, deny, "method_override_refused");
            }
            Found::None | Found::OtherScheme => match first_match(&root.token_optional, |route| route, &line) {
                Ok(Some(_)) => return without_credentials(step, headers).count(root.counters.unauthenticated_allowed),
                Ok(None) => return self.deny(step, Deny::MissingToken, "missing_token"),
                Err(_) => {
                    log::debug!("phantom_token: path refused: its decoded form matches another route");
                    let deny = Deny::MalformedRequest("the request path is another route once its escapes are decoded");
                    return self.deny(step, deny, "path_refused");
                }
            },
            Found::Ambiguous => {
                let deny = Deny::InvalidAuthRequest("more than one credential in the request");
                return self.deny(step, deny, "ambiguous_token");
            }
        };
        if token.len() > root.max_token_bytes || !is_b64token(token) {
            let deny = Deny::InvalidToken("the access token is malformed");
            return self.deny(step, deny, "malformed_token");
        }
        if let Some(jwt) = root
            .pass_through_jwts
            .then(|| jose::Jwt::decode(token, root.max_token_bytes).ok())
            .flatten()
        {
            // A signed introspection response (one a `response_header` upstream got, say), a
            // security event or a logout token is no access token.
            if jwt.is_another_kind_of_jwt() {
                let deny = Deny::InvalidToken("this JWT is not an access token");
                return self.deny(step, deny, "not_access_token");
            }
            // jwt-auth behind this filter verifies it.
            return step
                .count(root.counters.passed_through)
                .publish(OUTCOME_STATE, "passed_through");
        }
        let secret = Secret::new(token);
        self.key = Some(secret.sha256());
        self.token = Some(secret);
        self.lookup(step, ctx)
    }

    fn on_call_response(&mut self, outcome: CallOutcome, ctx: &Ctx) -> Step {
        let root = Rc::clone(&self.root);
        if let Some(fetch) = self.refetching_keys.take() {
            let answer = root
                .remote()
                .map(|remote| remote.answer_refetch(fetch, outcome, ctx, root.counters.fetches));
            let counter = match answer {
                Some(Refetched::Next(next, call)) => {
                    self.refetching_keys = Some(next);
                    return Step::pause().call(call).notify_if_abandoned(self.abandon_signals(true));
                }
                Some(Refetched::Ended(counter)) => Some(counter),
                None => None,
            };
            let mut step = self.verify(ctx, false);
            step.counters.extend(counter);
            return step.notify(root.keys_signal());
        }
        match root.introspector.read(outcome) {
            Ok(reply) => {
                self.unverified = Some(reply);
                self.verify(ctx, true)
            }
            Err(failure) => self.fail(failure, ctx),
        }
    }

    fn on_wake(&mut self, signal: &str, ctx: &Ctx) -> Step {
        if signal == self.root.keys_signal() {
            // A leader that went away fetched nothing: this request may fetch the keys itself.
            let abandoned = self
                .waiting_for_keys
                .take()
                .zip(self.root.remote())
                .is_some_and(|(ticket, remote)| remote.abandoned(ticket));
            return self.verify(ctx, abandoned);
        }
        let Some(key) = self.key else {
            return Step::proceed();
        };
        let verdict = self
            .root
            .flights
            .borrow()
            .get(&key)
            .and_then(|flight| flight.verdict.clone());
        match verdict {
            Some(verdict) => self.apply(Step::proceed(), &verdict, ctx),
            // The request that asked went away before the answer: ask again (or wait on whoever does).
            None => self.lookup(Step::proceed(), ctx),
        }
    }
}

/// A request that passes without a bearer token passes without any `Authorization`: the
/// credential of another scheme (`DPoP <opaque token>`, `Basic …`) was not checked here, and the
/// upstream reads that header as the gateway's.
fn without_credentials(step: Step, headers: &Headers) -> Step {
    step.remove_present(headers, [&HeaderName::trusted("authorization")])
}

impl Drop for Exchange {
    /// A request that goes away (the client left) while it introspects or refetches keys never
    /// gets the answer: give the flight up, so that the requests waiting on it ask again.
    fn drop(&mut self) {
        if self.leading {
            if let Some(key) = self.key {
                let mut flights = self.root.flights.borrow_mut();
                if flights.get(&key).is_some_and(|f| f.verdict.is_none()) {
                    flights.remove(&key);
                }
            }
        }
        if self.refetching_keys.is_some() {
            if let Some(remote) = self.root.remote() {
                remote.abandon();
            }
        }
    }
}

impl Exchange {
    /// What to wake if this request goes away while it waits: the requests waiting on its
    /// introspection (it still leads it: they must ask again), and on its key fetch if it makes one.
    fn abandon_signals(&self, fetching_keys: bool) -> Vec<String> {
        let flight = self.key.map(|key| self.root.flight_signal(&key));
        let keys = fetching_keys.then(|| self.root.keys_signal());
        flight.into_iter().chain(keys).collect()
    }

    /// From the cache, from a flight in progress on this worker, or a new introspection.
    fn lookup(&mut self, step: Step, ctx: &Ctx) -> Step {
        let root = Rc::clone(&self.root);
        let (Some(key), Some(token)) = (self.key, self.token.as_ref()) else {
            return Step::proceed();
        };
        let first_lookup = !std::mem::replace(&mut self.looked_up, true);
        let count_once = |step: Step, counter, first: bool| if first { step.count(counter) } else { step };
        match root.cache.get(ctx.store, &key, ctx.now_ms) {
            // Verified with keys the IdP has since changed (a key it removed, perhaps): asked again.
            Some(Entry::Active {
                upstream,
                claims,
                certificate,
                keys_version,
                ..
            }) if root.keys_version(ctx) == Some(keys_version) => {
                let step = count_once(step, root.counters.cache_hit, first_lookup);
                let verdict = Verdict::Allow {
                    upstream,
                    claims,
                    binding: certificate.map_or(jose::Binding::Bearer, jose::Binding::Certificate),
                };
                return self.apply(step, &verdict, ctx);
            }
            Some(Entry::Inactive { .. }) => {
                let step = count_once(step, root.counters.cache_negative_hit, first_lookup);
                return self.apply(step, &inactive(), ctx);
            }
            Some(Entry::Refused { refusal, .. }) => {
                let step = count_once(step, root.counters.cache_negative_hit, first_lookup);
                return self.apply(step, &refused(refusal), ctx);
            }
            Some(Entry::Active { .. }) | None => {}
        }
        let signal = root.flight_signal(&key);
        let mut flights = root.flights.borrow_mut();
        if flights.get(&key).is_some_and(|f| f.verdict.is_none()) {
            let first_wait = !std::mem::replace(&mut self.waited, true);
            let waiting = count_once(Step::wait(signal), root.counters.cache_miss, first_lookup);
            let mut waiting = count_once(waiting, root.counters.coalesced_waits, first_wait);
            waiting.header_edits = step.header_edits;
            return waiting;
        }
        // Answered flights were read by their waiters when they were notified: drop them.
        flights.retain(|_, f| f.verdict.is_none());
        flights.insert(key, Flight::default());
        self.leading = true;
        self.asked_at_ms = ctx.now_ms;
        let calling = Step::pause().call(root.introspector.request(token.expose()));
        let mut calling = count_once(calling, root.counters.cache_miss, first_lookup).notify_if_abandoned(vec![signal]);
        calling.header_edits = step.header_edits;
        calling
    }

    /// Verifies the answer waiting in `unverified`; an unknown key may refetch the keys first.
    fn verify(&mut self, ctx: &Ctx, may_refetch: bool) -> Step {
        let root = Rc::clone(&self.root);
        let Some(reply) = self.unverified.take() else {
            return Step::proceed();
        };
        let resolved = match root.verifier.resolve(&reply, ctx) {
            Ok(resolved) => resolved,
            Err(Unresolved::Failed(failure)) => return self.fail(failure, ctx),
            Err(lacking @ (Unresolved::UnknownKid | Unresolved::NoKeys)) => {
                let no_keys = lacking == Unresolved::NoKeys;
                let Some(remote) = root.remote() else {
                    return self.fail(Failure::InvalidJwt, ctx);
                };
                if may_refetch && remote.sync(ctx.store) {
                    self.unverified = Some(reply);
                    return self.verify(ctx, false);
                }
                if may_refetch {
                    match remote.refetch(ctx.now_ms) {
                        Refetch::Started(fetch, call) => {
                            self.unverified = Some(reply);
                            self.refetching_keys = Some(fetch);
                            let counter = if no_keys {
                                root.counters.missing_keys_refetch
                            } else {
                                root.counters.kid_refetch
                            };
                            return Step::pause()
                                .call(call)
                                .count(counter)
                                .notify_if_abandoned(self.abandon_signals(true));
                        }
                        Refetch::InFlight(ticket) => {
                            self.unverified = Some(reply);
                            self.waiting_for_keys = Some(ticket);
                            return Step::wait(root.keys_signal()).notify_if_abandoned(self.abandon_signals(false));
                        }
                        Refetch::RateLimited => {}
                    }
                }
                // No keys, or an unknown key while the IdP's keys cannot be fetched, is an outage,
                // not a bad answer.
                let failure = if no_keys || remote.failing() {
                    Failure::KeysUnavailable
                } else {
                    Failure::InvalidJwt
                };
                return self.fail(failure, ctx);
            }
        };
        let expiry = root.expiry(&resolved, &reply, ctx.now_ms);
        let (entry, verdict, counter) = match resolved {
            Resolved::Active {
                upstream,
                claims,
                binding,
                keys_version,
                ..
            } => (
                expiry.map(|expires_at_ms| Entry::Active {
                    expires_at_ms,
                    upstream: upstream.clone(),
                    claims: claims.clone(),
                    certificate: binding.certificate(),
                    keys_version,
                }),
                Verdict::Allow {
                    upstream,
                    claims,
                    binding,
                },
                root.counters.introspection_active,
            ),
            Resolved::Inactive => (
                expiry.map(|expires_at_ms| Entry::Inactive { expires_at_ms }),
                inactive(),
                root.counters.introspection_inactive,
            ),
            // The OAuth server vouches for the token, for whoever proves its key or elsewhere.
            Resolved::Refused(refusal) => (
                expiry.map(|expires_at_ms| Entry::Refused { expires_at_ms, refusal }),
                refused(refusal),
                root.counters.introspection_active,
            ),
        };
        if let (Some(entry), Some(key)) = (entry, self.key) {
            root.cache.put(ctx.store, &key, &entry, self.asked_at_ms, ctx.now_ms);
        }
        self.finish(verdict, ctx).count(counter)
    }

    fn fail(&mut self, failure: Failure, ctx: &Ctx) -> Step {
        log::warn!("phantom_token: introspection failed: {failure:?}");
        let counters = Counters::find(&self.root.counters.introspection_errors, failure.kind());
        let mut step = self.finish(failed(failure), ctx);
        step.counters.extend(counters);
        step
    }

    /// Ends this request's flight: the verdict is this request's and its waiters'.
    fn finish(&mut self, verdict: Verdict, ctx: &Ctx) -> Step {
        let root = Rc::clone(&self.root);
        let verdict = Rc::new(verdict);
        let mut step = self.apply(Step::proceed(), &verdict, ctx);
        if self.leading {
            self.leading = false;
            if let Some(key) = self.key {
                if let Some(flight) = root.flights.borrow_mut().get_mut(&key) {
                    flight.verdict = Some(Rc::clone(&verdict));
                }
                step = step.notify(root.flight_signal(&key));
            }
        }
        step
    }

    /// Carries out `verdict` for this request: a token bound to a client certificate goes
    /// upstream only from a connection that presented it (RFC 8705 section 3).
    fn apply(&self, step: Step, verdict: &Verdict, ctx: &Ctx) -> Step {
        let root = &self.root;
        match verdict {
            Verdict::Allow {
                upstream,
                claims,
                binding,
            } => {
                let presented = || {
                    root.client_certificate
                        .presented(ctx.properties, self.forwarded_certificate.as_deref())
                };
                if let Err(refusal) = binding.check_holder(presented) {
                    return self.deny(step, Deny::InvalidToken(refusal.description()), refusal.reason());
                }
                let step = match &root.upstream_header {
                    UpstreamHeader::Bearer => {
                        let mut value = b"Bearer ".to_vec();
                        value.extend_from_slice(upstream);
                        step.edit(HeaderEdit::Set(HeaderName::trusted("authorization"), value))
                    }
                    UpstreamHeader::Response(name) => step
                        .edit(HeaderEdit::Remove(HeaderName::trusted("authorization")))
                        .edit(HeaderEdit::Set(name.clone(), upstream.clone())),
                };
                step.publish(CLAIMS_STATE, claims.clone())
                    .publish(OUTCOME_STATE, "allowed")
                    .count(root.counters.allowed)
            }
            Verdict::Deny(deny, reason) => self.deny(step, deny.clone(), reason),
        }
    }

    /// A denial that keeps the counters bumped on the way (cache hits and misses).
    fn deny(&self, step: Step, deny: Deny, reason: &'static str) -> Step {
        let mut reply = Step::reply(deny.reply(&self.root.realm));
        reply.counters = step.counters;
        reply
            .counters
            .extend(Counters::find(&self.root.counters.denied, reason));
        reply.publish(OUTCOME_STATE, reason)
    }
}

fn inactive() -> Verdict {
    Verdict::Deny(Deny::InvalidToken("the access token is not active"), "inactive_token")
}

/// The verdict on an active token this gateway does not forward, as jwt-auth words it: RFC 9449
/// section 7.2, RFC 8705 section 3 (this filter reads only `Bearer` tokens and checks neither
/// DPoP proofs nor client certificates, so a token bound to a key is refused); RFC 7662 section 4
/// (a token for another API).
fn refused(refusal: Refusal) -> Verdict {
    let error = match refusal {
        Refusal::SenderConstrained => jose::JwtError::SenderConstrained,
        Refusal::OtherAudience => jose::JwtError::WrongAudience,
    };
    Verdict::Deny(Deny::InvalidToken(error.description()), error.reason())
}

/// The verdict on an unusable answer: 503 when the IdP could not be asked, 502 when its answer
/// cannot be trusted. Never a detail in the reply: the IdP's body is not echoed.
fn failed(failure: Failure) -> Verdict {
    match failure {
        Failure::Unavailable { retry_after_secs } => {
            Verdict::Deny(Deny::Unavailable { retry_after_secs }, "idp_unavailable")
        }
        Failure::Unreachable => Verdict::Deny(Deny::Unavailable { retry_after_secs: None }, "idp_unavailable"),
        Failure::KeysUnavailable => Verdict::Deny(
            Deny::Unavailable {
                retry_after_secs: Some(KEYS_RETRY_AFTER_SECS),
            },
            "idp_unavailable",
        ),
        Failure::Status(_) | Failure::Malformed | Failure::Oversized | Failure::InvalidJwt => Verdict::Deny(
            Deny::BadGateway("the authorization server's answer is unusable"),
            "idp_bad_answer",
        ),
    }
}

/// RFC 6750 section 2.1 `b64token`: the only characters a bearer token has.
fn is_b64token(token: &[u8]) -> bool {
    let end = token.iter().rposition(|b| *b != b'=').map_or(0, |i| i + 1);
    end > 0
        && token.get(..end).is_some_and(|body| {
            body.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
        })
}

#[cfg(test)]
mod tests;
