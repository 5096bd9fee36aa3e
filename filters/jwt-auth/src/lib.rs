//! jwt-auth: verifies JWTs against JWKS keys (inline, remote, OIDC discovery), checks claims, and
//! hands the verified claims to the filters behind it (filter state `apisec.claims`) and,
//! as configured, to the upstream (headers).
//!
//! Remote keys are fetched in the background and shared across workers; a token whose `kid` is
//! unknown, or that arrives before any keys, triggers one rate-limited refetch that concurrent
//! requests wait on. Verified tokens are cached per worker by SHA-256 until `exp` or a key change.

mod cache;
mod config;
mod provider;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use shared::certificate::ClientCertificate;
use shared::route::{first_match, path_refusal, RequestLine, RouteMatch};
use shared::{
    CallOutcome, ConfigError, Counter, Ctx, Deny, FieldPath, HeaderEdit, HeaderName, Headers, HttpFilter,
    MetricRegistry, NoHostCrypto, Realm, RootStep, Step,
};

use cache::TokenCache;
pub use config::Config;
use config::RequirementConfig;
use jose::keys::{Fetch, FetchCounters, Refetch, Refetched, RemoteKeys, Ticket};
use jose::Rejection;
use provider::{token_key, Provider, Verified};
use shared::source::{Found, Source};

shared::export_filter!(JwtAuth);

/// Filter-state key of the verified claims (JSON): the hand-off to scope-gate and rate-limit.
pub const CLAIMS_STATE: &str = shared::handoff::CLAIMS;
/// Filter-state key naming the provider that verified the token.
pub const PROVIDER_STATE: &str = "apisec.jwt_auth.provider";
/// Filter-state key with the outcome (`allowed` or the denial reason), for access logs.
pub const OUTCOME_STATE: &str = "apisec.jwt_auth.outcome";

const TICK: Duration = Duration::from_millis(500);
const RETRY_AFTER_SECS: u64 = 2;

/// Denial reasons of this filter itself; the token's own come from [`jose::JwtError::REASONS`].
/// Each has a counter `denied_<reason>`.
const REQUEST_DENIAL_REASONS: &[&str] = &[
    "path_refused",
    "method_override_refused",
    "missing_token",
    "ambiguous_token",
    "keys_unavailable",
];

#[derive(Clone, Debug)]
enum Requirement {
    None,
    Providers {
        providers: Vec<usize>,
        all: bool,
        allow_missing: bool,
    },
}

/// What a rule (or the default) asks for, and the token sources it leaves unchecked, as
/// `(provider, source)` indexes: a token found in one is taken out of a request that goes on.
struct Policy {
    requirement: Requirement,
    unchecked: Vec<(usize, usize)>,
}

impl Policy {
    /// The sources it leaves unchecked: those of the providers the requirement does not name
    /// (under a `none` rule, which passes every token on, none), unless a named provider reads
    /// the same place; and those of every provider that does not forward its tokens.
    fn new(requirement: Requirement, providers: &[Provider]) -> Self {
        let named = match &requirement {
            Requirement::None => None,
            Requirement::Providers { providers, .. } => Some(providers.as_slice()),
        };
        let named_sources: Vec<&Source> = named
            .unwrap_or_default()
            .iter()
            .filter_map(|p| providers.get(*p))
            .flat_map(|p| &p.sources)
            .collect();
        let mut unchecked = Vec::new();
        for (p, provider) in providers.iter().enumerate() {
            let unnamed = named.is_some_and(|named| !named.contains(&p));
            for (s, source) in provider.sources.iter().enumerate() {
                let read_by_named = named_sources.iter().any(|n| n.same_place(source));
                if (unnamed && !read_by_named) || !provider.forwards() {
                    unchecked.push((p, s));
                }
            }
        }
        Self { requirement, unchecked }
    }
}

pub struct Counters {
    allowed: Counter,
    unauthenticated_allowed: Counter,
    cache_hit: Counter,
    cache_miss: Counter,
    fetches: FetchCounters,
    kid_refetch: Counter,
    missing_keys_refetch: Counter,
    verified_by_host: Counter,
    verified_in_wasm: Counter,
    denied: Vec<(&'static str, Counter)>,
    denied_other: Counter,
}

impl Counters {
    fn register(metrics: &mut MetricRegistry) -> Self {
        Self {
            allowed: metrics.counter("allowed"),
            unauthenticated_allowed: metrics.counter("unauthenticated_allowed"),
            cache_hit: metrics.counter("cache_hit"),
            cache_miss: metrics.counter("cache_miss"),
            fetches: FetchCounters {
                ok: metrics.counter("jwks_fetch_ok"),
                failed: metrics.counter("jwks_fetch_failed"),
            },
            kid_refetch: metrics.counter("kid_refetch"),
            missing_keys_refetch: metrics.counter("missing_keys_refetch"),
            verified_by_host: metrics.counter("verified_by_host"),
            verified_in_wasm: metrics.counter("verified_in_wasm"),
            denied: REQUEST_DENIAL_REASONS
                .iter()
                .chain(jose::JwtError::REASONS)
                .map(|r| (*r, metrics.counter(&format!("denied_{r}"))))
                .collect(),
            denied_other: metrics.counter("denied_other"),
        }
    }

    fn denied(&self, reason: &str) -> Counter {
        self.denied
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(self.denied_other, |(_, c)| *c)
    }
}

/// The configured filter, one per worker.
pub struct JwtAuth {
    realm: Realm,
    providers: Vec<Provider>,
    rules: Vec<(RouteMatch, Policy)>,
    /// Whether a rule reads the path: then a path not in normal form is refused.
    rules_read_paths: bool,
    case_insensitive_paths: bool,
    /// Whether a request with a method-override header is refused: a rule reads methods, and the
    /// config does not say the headers are harmless.
    refuse_method_override: bool,
    client_certificate: ClientCertificate,
    default: Policy,
    bypass_cors_preflight: bool,
    max_token_bytes: usize,
    /// Whether signature checks may use the host's native crypto (config `host_crypto`).
    host_crypto: bool,
    output_headers: Vec<HeaderName>,
    cache: RefCell<TokenCache>,
    counters: Counters,
}

impl JwtAuth {
    fn compile(config: &Config, metrics: &mut MetricRegistry) -> Result<Self, ConfigError> {
        let root = FieldPath::root();
        if config.providers.is_empty() {
            return Err(root.field("providers").error("configure at least one provider"));
        }
        let providers: Vec<Provider> = config
            .providers
            .iter()
            .map(|(name, p)| Provider::compile(name, p, &root.field("providers").key(name)))
            .collect::<Result<_, _>>()?;
        let index = |name: &str, at: &FieldPath| {
            providers
                .iter()
                .position(|p| p.name == name)
                .ok_or_else(|| at.error(format!("no provider named {name:?}")))
        };
        let mut rules = Vec::new();
        for (i, rule) in config.rules.iter().enumerate() {
            let at = root.field("rules").index(i);
            let route = if config.case_insensitive_paths {
                RouteMatch::compile_case_insensitive(&rule.route, &at.field("match"))?
            } else {
                RouteMatch::compile(&rule.route, &at.field("match"))?
            };
            let req_at = at.field("requires");
            let list = |names: &[String], field: &str| -> Result<Vec<usize>, ConfigError> {
                if names.is_empty() {
                    return Err(req_at.field(field).error("name at least one provider"));
                }
                names
                    .iter()
                    .enumerate()
                    .map(|(j, n)| index(n, &req_at.field(field).index(j)))
                    .collect()
            };
            let requirement = match &rule.requires {
                RequirementConfig::None {} => Requirement::None,
                RequirementConfig::Provider { name } => Requirement::Providers {
                    providers: vec![index(name, &req_at.field("name"))?],
                    all: false,
                    allow_missing: false,
                },
                RequirementConfig::AnyOf { providers } => Requirement::Providers {
                    providers: list(providers, "providers")?,
                    all: false,
                    allow_missing: false,
                },
                RequirementConfig::AllOf { providers } => Requirement::Providers {
                    providers: list(providers, "providers")?,
                    all: true,
                    allow_missing: false,
                },
                RequirementConfig::AllowMissing { providers } => Requirement::Providers {
                    providers: list(providers, "providers")?,
                    all: false,
                    allow_missing: true,
                },
            };
            rules.push((route, Policy::new(requirement, &providers)));
        }
        // Sorted and unique by insertion, which links no sorting code.
        let mut output_headers: Vec<HeaderName> = Vec::new();
        for header in providers.iter().flat_map(Provider::output_headers) {
            if let Err(at) = output_headers.binary_search(header) {
                output_headers.insert(at, header.clone());
            }
        }
        Ok(Self {
            realm: config.realm.clone(),
            default: Policy::new(
                Requirement::Providers {
                    providers: (0..providers.len()).collect(),
                    all: false,
                    allow_missing: false,
                },
                &providers,
            ),
            providers,
            rules_read_paths: shared::route::any_reads_path(rules.iter().map(|(route, _)| route)),
            case_insensitive_paths: config.case_insensitive_paths,
            refuse_method_override: config
                .method_override_headers
                .refuses(rules.iter().map(|(route, _)| route)),
            rules,
            client_certificate: ClientCertificate::compile(
                &config.client_certificate,
                &root.field("client_certificate"),
            )?,
            bypass_cors_preflight: config.bypass_cors_preflight,
            max_token_bytes: shared::config::max_token_bytes(config.max_token_bytes, &root.field("max_token_bytes"))?,
            host_crypto: config.host_crypto,
            output_headers,
            cache: RefCell::new(TokenCache::new(config.cache_max_entries)),
            counters: Counters::register(metrics),
        })
    }

    fn remote(&self, provider: usize) -> Option<&RemoteKeys> {
        self.providers.get(provider)?.keys.remote()
    }
}

/// Requests that wait on a provider's key refetch wait on this signal.
fn keys_signal(provider: usize) -> String {
    format!("jwt_auth.keys.{provider}")
}

impl shared::FilterRoot for JwtAuth {
    const NAME: &'static str = "jwt_auth";
    type Filter = Auth;

    fn configure(raw: &[u8], metrics: &mut MetricRegistry) -> Result<Self, ConfigError> {
        let config: Config = shared::config::parse(raw)?;
        Self::compile(&config, metrics)
    }

    fn new_filter(root: &Rc<Self>) -> Auth {
        Auth {
            root: Rc::clone(root),
            saved: None,
            forwarded_certificate: None,
            leading: None,
            waiting: None,
            refetched: Vec::new(),
        }
    }

    fn tick_period(&self) -> Option<Duration> {
        self.providers.iter().any(|p| p.keys.remote().is_some()).then_some(TICK)
    }

    /// The first fetch of remote keys goes out at configure, not at the first tick.
    fn on_start(&self, ctx: &Ctx) -> RootStep {
        self.on_tick(ctx)
    }

    fn on_tick(&self, ctx: &Ctx) -> RootStep {
        let mut step = RootStep::default();
        for (i, provider) in self.providers.iter().enumerate() {
            if let Some(remote) = provider.keys.remote() {
                if let Some((fetch, call)) = remote.tick(ctx.now_ms, ctx.store) {
                    step.calls.push((fetch.tag(i), call));
                }
            }
        }
        step
    }

    fn on_call_response(&self, tag: u32, outcome: CallOutcome, ctx: &Ctx) -> RootStep {
        let (provider, fetch) = Fetch::untag(tag);
        match self.remote(provider) {
            Some(remote) => remote.answer_in_root(
                provider,
                fetch,
                outcome,
                ctx,
                self.counters.fetches,
                keys_signal(provider),
            ),
            None => RootStep::default(),
        }
    }
}

/// One request's authentication.
pub struct Auth {
    root: Rc<JwtAuth>,
    /// The request headers, kept while the request waits for keys.
    saved: Option<Headers>,
    /// The request's `x-forwarded-client-cert`, when the config reads the client certificate
    /// from it.
    forwarded_certificate: Option<Vec<u8>>,
    /// The provider whose keys this request is refetching, and the fetch in flight.
    leading: Option<(usize, Fetch)>,
    /// The provider whose fetch this request waits on.
    waiting: Option<(usize, Ticket)>,
    /// Providers whose keys this request has fetched, or waited for: it asks once per provider.
    refetched: Vec<usize>,
}

impl HttpFilter for Auth {
    fn reads_response_headers(&self) -> bool {
        false
    }

    fn on_request_headers(&mut self, headers: &Headers, ctx: &Ctx) -> Step {
        self.evaluate(headers, ctx)
    }

    /// An upstream that merged trailers into the headers would take a client's copies from them.
    fn on_request_trailers(&mut self, trailers: &Headers, _ctx: &Ctx) -> Step {
        Step::proceed().remove_present(trailers, &self.root.output_headers)
    }

    fn on_call_response(&mut self, outcome: CallOutcome, ctx: &Ctx) -> Step {
        let Some((provider, fetch)) = self.leading.take() else {
            return Step::proceed();
        };
        let root = Rc::clone(&self.root);
        // The keys first: the request then resumes with them.
        let answer = root
            .remote(provider)
            .map(|remote| remote.answer_refetch(fetch, outcome, ctx, root.counters.fetches));
        let counter = match answer {
            Some(Refetched::Next(next, call)) => {
                self.leading = Some((provider, next));
                return Step::pause()
                    .call(call)
                    .notify_if_abandoned(vec![keys_signal(provider)]);
            }
            Some(Refetched::Ended(counter)) => Some(counter),
            None => None,
        };
        self.refetched.push(provider);
        let mut step = self.resume(ctx);
        step.counters.extend(counter);
        step.notify(keys_signal(provider))
    }

    /// The fetch this request waited on ended, or its leader went away. In the second case the
    /// request may lead a refetch itself (an abandoned refetch does not use up the rate limit);
    /// after an answer, a kid still unknown is refused.
    fn on_wake(&mut self, _signal: &str, ctx: &Ctx) -> Step {
        if let Some((p, ticket)) = self.waiting.take() {
            if !self.root.remote(p).is_some_and(|remote| remote.abandoned(ticket)) {
                self.refetched.push(p);
            }
        }
        self.resume(ctx)
    }
}

impl Drop for Auth {
    /// A request that goes away (the client left) while it refetches keys never gets the answer:
    /// the adapter drops an answer whose request is gone. Give the fetch up, or the provider would count it in flight for
    /// good: no periodic refresh again on this worker, and every later unknown `kid` would wait on
    /// a signal nobody notifies.
    fn drop(&mut self) {
        if let Some(remote) = self.leading.take().and_then(|(p, _)| self.root.remote(p)) {
            remote.abandon();
        }
    }
}

impl Auth {
    fn resume(&mut self, ctx: &Ctx) -> Step {
        match self.saved.take() {
            Some(headers) => self.evaluate(&headers, ctx),
            None => Step::proceed(),
        }
    }

    fn evaluate(&mut self, headers: &Headers, ctx: &Ctx) -> Step {
        let root = Rc::clone(&self.root);
        if root.client_certificate.reads_forwarded_header() {
            self.forwarded_certificate = shared::certificate::forwarded_header(headers);
        }
        // Whatever happens next, a client's copies of the headers this filter sets are gone.
        let mut step = Step::proceed().remove_present(headers, &root.output_headers);
        let Some(line) = RequestLine::of(headers) else {
            return self.deny(Deny::MalformedRequest("malformed request line"), "malformed");
        };
        // A browser's preflight carries no credentials (Fetch): one that does is checked as any
        // request is, so no token reaches the upstream unverified.
        let credentials = || {
            root.providers
                .iter()
                .any(|p| p.find_token(headers, &line) != Found::None)
        };
        if root.bypass_cors_preflight && headers.is_plain_cors_preflight() && !credentials() {
            return step.count(root.counters.unauthenticated_allowed);
        }
        if let Some(reason) = root.rules_read_paths.then(|| path_refusal(line.path)).flatten() {
            log::debug!("jwt_auth: path refused: {reason}");
            return self.deny(
                Deny::MalformedRequest("the request path is not in normal form"),
                "path_refused",
            );
        }
        if root.rules_read_paths && headers.has_path_override() {
            log::debug!("jwt_auth: path-override header refused");
            return self.deny(
                Deny::MalformedRequest("path-override headers are not accepted"),
                "path_refused",
            );
        }
        // A rule judged on `GET` while the upstream runs the `DELETE` a header asks for would let
        // an unauthenticated request through a stricter rule.
        if root.refuse_method_override && headers.has_method_override() {
            log::debug!("jwt_auth: method-override header refused");
            return self.deny(
                Deny::MalformedRequest("method-override headers are not accepted"),
                "method_override_refused",
            );
        }
        let line = if root.case_insensitive_paths {
            line.case_folded()
        } else {
            line
        };
        let Ok(rule) = first_match(&root.rules, |(route, _)| route, &line) else {
            log::debug!("jwt_auth: path refused: its decoded form matches another rule");
            return self.deny(
                Deny::MalformedRequest("the request path is another route once its escapes are decoded"),
                "path_refused",
            );
        };
        let policy = rule.map_or(&root.default, |(_, policy)| policy);
        let Requirement::Providers {
            providers,
            all,
            allow_missing,
        } = &policy.requirement
        else {
            step.header_edits
                .extend(self.strip_unchecked(&policy.unchecked, headers, &line));
            return step.count(root.counters.unauthenticated_allowed);
        };

        let mut found = Vec::new();
        for &p in providers {
            let Some(provider) = root.providers.get(p) else {
                continue;
            };
            match provider.find_token(headers, &line) {
                Found::Ambiguous => {
                    return self.deny(
                        Deny::InvalidAuthRequest("more than one credential in the request"),
                        "ambiguous_token",
                    )
                }
                Found::Malformed | Found::OtherScheme => {
                    return self.deny(Deny::InvalidToken("the access token is malformed"), "malformed")
                }
                Found::Token(token) => found.push((p, token)),
                Found::None => {}
            }
        }
        if found.is_empty() || (*all && found.len() < providers.len()) {
            if *allow_missing && found.is_empty() {
                step.header_edits
                    .extend(self.strip_unchecked(&policy.unchecked, headers, &line));
                return step.count(root.counters.unauthenticated_allowed);
            }
            return self.deny(Deny::MissingToken, "missing_token");
        }
        let mut verified: Vec<(usize, Rc<Verified>)> = Vec::new();
        if *all {
            for (p, token) in &found {
                match self.check(*p, token, ctx, &mut step) {
                    Ok(v) => verified.push((*p, v)),
                    Err(rejection) => return self.reject(step, headers, vec![(*p, rejection)], ctx),
                }
            }
            return self.allow(step, &verified, &policy.unchecked, headers, &line);
        }
        // Every token the request carries must be valid for one of the providers that found it: a
        // second token let through unchecked could reach an upstream that trusts its header.
        for (i, (_, token)) in found.iter().enumerate() {
            if found.iter().take(i).any(|(_, earlier)| earlier == token) {
                continue;
            }
            let candidates: Vec<usize> = found.iter().filter(|(_, t)| t == token).map(|(p, _)| *p).collect();
            match self.check_any(&candidates, token, ctx, &mut step) {
                Ok(v) => verified.push(v),
                Err(rejections) => return self.reject(step, headers, rejections, ctx),
            }
        }
        self.allow(step, &verified, &policy.unchecked, headers, &line)
    }

    /// The first of `candidates` (providers whose sources hold this one token) to accept it, trying
    /// the one whose issuer the token names first; else what each said.
    fn check_any(
        &self,
        candidates: &[usize],
        token: &[u8],
        ctx: &Ctx,
        step: &mut Step,
    ) -> Result<(usize, Rc<Verified>), Rejections> {
        let root = &self.root;
        // The issuer's first, the others in their order: a partition, not a sort, which would
        // link some 7 KB of stable-sort code.
        let named = |p: &usize| issued_by(token, root.providers.get(*p), root.max_token_bytes);
        let order = if candidates.len() > 1 {
            let (first, rest): (Vec<usize>, Vec<usize>) = candidates.iter().partition(|p| named(p));
            first.into_iter().chain(rest).collect()
        } else {
            candidates.to_vec()
        };
        let mut rejections = Vec::new();
        for p in order {
            match self.check(p, token, ctx, step) {
                Ok(v) => return Ok((p, v)),
                Err(rejection) => rejections.push((p, rejection)),
            }
        }
        Err(rejections)
    }

    /// Whether `token` is good for provider `p` on this request: a verified token (from the cache
    /// or checked now) whose holder this request is.
    fn check(&self, p: usize, token: &[u8], ctx: &Ctx, step: &mut Step) -> Result<Rc<Verified>, Rejection> {
        let verified = self.verify(p, token, ctx, step)?;
        // RFC 8705 section 3: a token bound to a client certificate, only on a connection that
        // presented it.
        let presented = || {
            self.root
                .client_certificate
                .presented(ctx.properties, self.forwarded_certificate.as_deref())
        };
        verified.binding.check_holder(presented).map_err(Rejection::Invalid)?;
        Ok(verified)
    }

    fn verify(&self, p: usize, token: &[u8], ctx: &Ctx, step: &mut Step) -> Result<Rc<Verified>, Rejection> {
        let root = &self.root;
        let provider = root.providers.get(p).ok_or(Rejection::KeysUnavailable)?;
        if token.len() > root.max_token_bytes {
            return Err(Rejection::Invalid(jose::JwtError::TooLong));
        }
        let Some((keys, version)) = provider.current_keys(ctx) else {
            let jwt = jose::Jwt::decode(token, root.max_token_bytes).map_err(Rejection::Invalid)?;
            return Err(outage_only_if_theirs(Rejection::KeysUnavailable, &jwt, provider));
        };
        let key = token_key(token);
        if let Some(hit) = root.cache.borrow_mut().get(&key, p, version, ctx.now_secs()) {
            step.counters.push(root.counters.cache_hit);
            return Ok(hit);
        }
        step.counters.push(root.counters.cache_miss);
        let jwt = jose::Jwt::decode(token, root.max_token_bytes).map_err(Rejection::Invalid)?;
        // With `host_crypto: false` the host is never asked: every check runs in wasm.
        let wasm_only = Ctx {
            crypto: &NoHostCrypto,
            ..*ctx
        };
        let verify_ctx = if root.host_crypto { ctx } else { &wasm_only };
        let verified = Rc::new(
            provider
                .verify(&jwt, &keys, verify_ctx)
                .map_err(|rejection| outage_only_if_theirs(rejection, &jwt, provider))?,
        );
        step.counters.push(if verified.by_host {
            root.counters.verified_by_host
        } else {
            root.counters.verified_in_wasm
        });
        if let Some(exp) = jwt.exp() {
            root.cache
                .borrow_mut()
                .insert(key, p, version, exp, Rc::clone(&verified));
        }
        Ok(verified)
    }

    fn allow(
        &self,
        mut step: Step,
        verified: &[(usize, Rc<Verified>)],
        unchecked: &[(usize, usize)],
        headers: &Headers,
        line: &RequestLine,
    ) -> Step {
        let root = &self.root;
        // The claims handed on are the first verified token's: a header its provider sets is its
        // alone, so the upstream never acts for another token's identity than the one scope-gate
        // and rate-limit judged (two providers may well both map `sub` to `x-user-id`).
        let first = verified.first().and_then(|(p, _)| root.providers.get(*p));
        for (i, (_, v)) in verified.iter().enumerate() {
            for (name, value) in &v.headers {
                let the_firsts = i > 0 && first.is_some_and(|f| f.output_headers().any(|h| h == name));
                if !the_firsts {
                    step = step.edit(HeaderEdit::Set(name.clone(), value.clone()));
                }
            }
        }
        step.header_edits.extend(self.strip_unchecked(unchecked, headers, line));
        if let Some((p, v)) = verified.first() {
            let name = root.providers.get(*p).map_or("", |pr| pr.name.as_str());
            step = step
                .publish(CLAIMS_STATE, v.claims_json.clone())
                .publish(PROVIDER_STATE, name);
        }
        step.publish(OUTCOME_STATE, "allowed").count(root.counters.allowed)
    }

    /// Edits that take out of the request every token it holds in these `(provider, source)`
    /// places, which its rule leaves unchecked ([`Policy`]).
    fn strip_unchecked(&self, unchecked: &[(usize, usize)], headers: &Headers, line: &RequestLine) -> Vec<HeaderEdit> {
        let providers = &self.root.providers;
        let found = unchecked
            .iter()
            .filter_map(|(p, s)| providers.get(*p)?.sources.get(*s))
            .filter(|source| source.find(headers, line) != Found::None);
        shared::source::strip_all(found, headers, line)
    }

    fn reject(&mut self, step: Step, headers: &Headers, rejections: Rejections, ctx: &Ctx) -> Step {
        let root = Rc::clone(&self.root);
        // A provider the token may be from lacks its key (no keys yet, or none with its `kid`),
        // and this request has not asked it for its keys yet.
        let lacking = rejections
            .iter()
            .filter(|(p, _)| !self.refetched.contains(p))
            .find_map(|(p, r)| match r {
                Rejection::UnknownKid => Some((*p, root.counters.kid_refetch)),
                Rejection::KeysUnavailable => Some((*p, root.counters.missing_keys_refetch)),
                Rejection::Invalid(_) => None,
            });
        if let Some((p, refetch_counter)) = lacking {
            if let Some(remote) = root.remote(p) {
                // Another worker may have fetched the key already: take its version and try again.
                if remote.sync(ctx.store) {
                    return self.evaluate(headers, ctx);
                }
                match remote.refetch(ctx.now_ms) {
                    Refetch::Started(fetch, call) => {
                        self.saved = Some(headers.clone());
                        self.leading = Some((p, fetch));
                        let mut waiting = Step::pause().call(call).count(refetch_counter);
                        waiting.header_edits = step.header_edits;
                        waiting.notify_if_abandoned = vec![keys_signal(p)];
                        return waiting;
                    }
                    Refetch::InFlight(ticket) => {
                        self.saved = Some(headers.clone());
                        self.waiting = Some((p, ticket));
                        return Step::wait(keys_signal(p));
                    }
                    Refetch::RateLimited => {}
                }
            }
        }
        // An outage of a provider the token may be from (its keys never came, or they lack the
        // token's kid while the IdP cannot be asked) is not a bad token, whatever other providers
        // said: fail closed with 503, never a 401 that makes the client discard a good token.
        // A provider the token does not name refused it for its issuer instead (`check`).
        let outage = rejections.iter().any(|(p, r)| match r {
            Rejection::KeysUnavailable => true,
            Rejection::UnknownKid => root.remote(*p).is_some_and(|remote| remote.failing()),
            Rejection::Invalid(_) => false,
        });
        let invalid = rejections.iter().find_map(|(_, r)| match r {
            Rejection::Invalid(error) => Some((error.reason(), error.description())),
            Rejection::UnknownKid => Some((
                jose::JwtError::KeyNotFound.reason(),
                jose::JwtError::KeyNotFound.description(),
            )),
            Rejection::KeysUnavailable => None,
        });
        match invalid.filter(|_| !outage) {
            Some((reason, description)) => self.deny_after(step.counters, Deny::InvalidToken(description), reason),
            None => {
                let unavailable = Deny::Unavailable {
                    retry_after_secs: Some(RETRY_AFTER_SECS),
                };
                self.deny_after(step.counters, unavailable, "keys_unavailable")
            }
        }
    }

    fn deny(&self, deny: Deny, reason: &'static str) -> Step {
        self.deny_after(Vec::new(), deny, reason)
    }

    /// A denial that keeps the counters bumped on the way (cache hits and misses).
    fn deny_after(&self, counters: Vec<Counter>, deny: Deny, reason: &'static str) -> Step {
        let mut step = Step::reply(deny.reply(&self.root.realm));
        step.counters = counters;
        step.count(self.root.counters.denied(reason))
            .publish(OUTCOME_STATE, reason)
    }
}

/// What each provider that was asked said of a token.
type Rejections = Vec<(usize, Rejection)>;

/// A provider's missing keys, or a `kid` its keys lack, stand for an outage (503) or call for a
/// refetch only with a token that may be that provider's: one whose (unverified) `iss` names its
/// issuer. Any other token it refuses as it would with every key at hand, for the `iss` claim.
fn outage_only_if_theirs(rejection: Rejection, jwt: &jose::Jwt, provider: &Provider) -> Rejection {
    use jose::JwtError;
    use serde_json::Value;
    if !matches!(rejection, Rejection::KeysUnavailable | Rejection::UnknownKid) {
        return rejection;
    }
    match jwt.claims().get("iss") {
        Some(Value::String(iss)) if *iss == provider.issuer => rejection,
        Some(Value::String(_)) => Rejection::Invalid(JwtError::WrongIssuer),
        None => Rejection::Invalid(JwtError::MissingClaim("iss".to_owned())),
        Some(_) => Rejection::Invalid(JwtError::BadClaimType("iss")),
    }
}

/// Whether the token's (unverified) `iss` names this provider: only to choose which provider tries first.
fn issued_by(token: &[u8], provider: Option<&Provider>, max_len: usize) -> bool {
    let issuer = jose::Jwt::decode(token, max_len)
        .ok()
        .and_then(|jwt| jwt.issuer().map(str::to_owned));
    provider.is_some_and(|p| issuer.is_some_and(|iss| iss == p.issuer))
}

#[cfg(test)]
mod tests;
