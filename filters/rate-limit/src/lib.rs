//! rate-limit: local token buckets and calls to the Envoy rate-limit service.
//!
//! Each configured limit builds a descriptor from the request (verified claims, headers, client
//! address, path, method, route, constants). Local limits take tokens from buckets in shared data,
//! so every worker of the Envoy counts against the same bucket. Service limits are sent, all in one
//! `ShouldRateLimit` call, to the rate-limit service (gRPC, or its HTTP/JSON form), which holds
//! the count for a whole fleet. A request over any limit gets 429 with `Retry-After`; a service
//! that cannot answer gets the configured failure mode, 503 by default. Shadow mode counts and
//! logs what it would refuse, and refuses nothing.

mod address;
mod bucket;
mod config;
mod descriptor;
mod placement;
mod quota;
mod rls;
mod service;

#[cfg(test)]
mod tests;

use std::rc::Rc;
use std::time::Duration;

use shared::route::{RequestLine, RouteMatch};
use shared::{
    CallOutcome, ConfigError, Counter, Ctx, Deny, FieldPath, GrpcOutcome, HeaderEdit, HeaderName, Headers, HttpFilter,
    MetricRegistry, Namespace, Realm, RootStep, Step,
};

use bucket::Buckets;
pub use config::Config;
use config::{FailureMode, HeadersConfig};
use descriptor::{Doubt, Enforce, Limit, RequestFacts};
use placement::PlacementKey;
use quota::Quota;
use rls::{Answer, Ask, Code};
use service::Service;

shared::export_filter!(RateLimit);

/// Filter-state key with the outcome: `allowed`, `over_limit`, `shadow_over_limit`,
/// `failure_mode_allowed` or `service_unavailable`.
pub const OUTCOME_STATE: &str = "apisec.rate_limit.outcome";

/// Largest service answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The most keys a local limit may track: 2^20 buckets, 34 MiB of shared data per limit.
const MAX_KEYS: u32 = 1 << 20;

struct Counters {
    ok: Counter,
    over_limit: Counter,
    shadow_over_limit: Counter,
    service_error: Counter,
    failure_mode_allowed: Counter,
    descriptor_incomplete: Counter,
    local_store_error: Counter,
}

impl Counters {
    fn register(metrics: &mut MetricRegistry) -> Self {
        Self {
            ok: metrics.counter("ok"),
            over_limit: metrics.counter("over_limit"),
            shadow_over_limit: metrics.counter("shadow_over_limit"),
            service_error: metrics.counter("service_error"),
            failure_mode_allowed: metrics.counter("failure_mode_allowed"),
            descriptor_incomplete: metrics.counter("descriptor_incomplete"),
            local_store_error: metrics.counter("local_store_error"),
        }
    }
}

/// A limit and, for a local one, where its buckets live.
struct CompiledLimit {
    limit: Limit,
    buckets: Option<Buckets>,
}

/// The configured filter, one per worker.
pub struct RateLimit {
    limits: Vec<CompiledLimit>,
    /// The claims any limit reads, once each.
    claims_read: Vec<String>,
    /// Whether a limit's route reads the path: then a path not in normal form counts against
    /// every route-scoped limit.
    routes_read_paths: bool,
    /// Whether a route of some limit lists methods (which method-override headers put in doubt).
    routes_read_methods: bool,
    service: Option<Service>,
    headers: HeadersConfig,
    shadow: bool,
    case_insensitive_paths: bool,
    counters: Counters,
    /// Where the local limits' buckets live, if there are any.
    namespace: Option<Rc<Namespace>>,
    placement: PlacementKey,
}

impl shared::FilterRoot for RateLimit {
    const NAME: &'static str = "rate_limit";
    type Filter = RateLimitFilter;

    fn configure(raw: &[u8], metrics: &mut MetricRegistry) -> Result<Self, ConfigError> {
        let config: Config = shared::config::parse(raw)?;
        let root = FieldPath::root();
        let counters = Counters::register(metrics);
        if !(1..=MAX_KEYS).contains(&config.max_keys) {
            return Err(root
                .field("max_keys")
                .error(format!("must be between 1 and {MAX_KEYS}")));
        }
        let sets = config.max_keys.div_ceil(bucket::WAYS as u32);
        let mut compiled = Vec::with_capacity(config.limits.len());
        for (i, limit_config) in config.limits.iter().enumerate() {
            let at = root.field("limits").index(i);
            let limit = Limit::compile(limit_config, &at, metrics, config.case_insensitive_paths)?;
            if compiled.iter().any(|l: &Limit| l.name == limit.name) {
                return Err(at
                    .field("name")
                    .error(format!("{:?} is used by another limit", limit.name)));
            }
            if matches!(limit.enforce, Enforce::Service) && config.service.is_none() {
                return Err(at.field("enforce").error("a service limit needs the `service` section"));
            }
            compiled.push(limit);
        }
        let sets_of = |limit: &Limit| if limit.is_global() { 1 } else { sets };
        let keys: u64 = compiled
            .iter()
            .filter(|l| matches!(l.enforce, Enforce::Local(_)))
            .map(|l| u64::from(sets_of(l)))
            .sum();
        let keys = u32::try_from(keys).map_err(|_| root.field("limits").error("too many local limits"))?;
        // Configs with the same text share buckets; a changed config, or another layout, starts full.
        let identity = [&bucket::LAYOUT.to_le_bytes()[..], raw].concat();
        let namespace = Rc::new(Namespace::new(Self::NAME, &identity, keys));
        let mut first = 0;
        let mut limits = Vec::with_capacity(compiled.len());
        for limit in compiled {
            let buckets = match &limit.enforce {
                Enforce::Local(rate) => {
                    let buckets = Buckets::new(Rc::clone(&namespace), first, *rate, sets_of(&limit));
                    first += buckets.sets();
                    Some(buckets)
                }
                Enforce::Service => None,
            };
            limits.push(CompiledLimit { limit, buckets });
        }
        if limits.is_empty() {
            return Err(root.field("limits").error("give at least one limit"));
        }
        let service = config
            .service
            .as_ref()
            .map(|s| Service::compile(s, &root.field("service"), config.headers.style))
            .transpose()?;
        let mut claims_read: Vec<String> = Vec::new();
        for name in limits.iter().flat_map(|l| l.limit.claims_read()) {
            if !claims_read.iter().any(|known| known == name) {
                claims_read.push(name.to_owned());
            }
        }
        Ok(Self {
            routes_read_paths: shared::route::any_reads_path(limits.iter().flat_map(|l| &l.limit.routes)),
            routes_read_methods: limits
                .iter()
                .flat_map(|l| &l.limit.routes)
                .any(RouteMatch::reads_method),
            limits,
            claims_read,
            service,
            headers: config.headers,
            shadow: config.shadow,
            case_insensitive_paths: config.case_insensitive_paths,
            counters,
            namespace: (keys > 0).then_some(namespace),
            placement: PlacementKey::default(),
        })
    }

    fn new_filter(root: &Rc<Self>) -> RateLimitFilter {
        RateLimitFilter {
            root: Rc::clone(root),
            pending: None,
            asked: Vec::new(),
            response_headers: Vec::new(),
        }
    }

    fn tick_period(&self) -> Option<Duration> {
        self.namespace.as_ref().map(|_| shared::namespace::RENEW_EVERY)
    }

    fn on_start(&self, ctx: &Ctx) -> RootStep {
        self.claim_namespace(ctx);
        if self.namespace.is_some() && self.placement.load(ctx.store).is_err() {
            log::warn!("rate_limit: could not create the bucket placement secret in shared data");
        }
        for limit in &self.limits {
            if let Some(buckets) = &limit.buckets {
                buckets.create_missing(ctx.store, ctx.now_ms);
            }
        }
        RootStep::default()
    }

    fn on_tick(&self, ctx: &Ctx) -> RootStep {
        self.claim_namespace(ctx);
        RootStep::default()
    }
}

impl RateLimit {
    /// Takes or renews the shared data the buckets live in (a failure is retried on the next tick;
    /// meanwhile local limits answer as with any shared-data failure).
    fn claim_namespace(&self, ctx: &Ctx) {
        if let Some(namespace) = &self.namespace {
            let _ = namespace.claim(ctx.store, ctx.now_ms);
        }
    }
}

/// One request's rate limiting.
pub struct RateLimitFilter {
    root: Rc<RateLimit>,
    /// What the local limits said, while the service is asked.
    pending: Option<Tally>,
    /// Index into `root.limits` of each descriptor sent to the service, in request order.
    asked: Vec<usize>,
    /// Edits to the response to an allowed request: the filter's own rate-limit headers replace
    /// the upstream's, the service's `response_headers_to_add` are added, every copy, as Envoy's
    /// own rate-limit filter adds them.
    response_headers: Vec<HeaderEdit>,
}

/// What the limits said so far about one request.
#[derive(Default)]
struct Tally {
    quotas: Vec<Quota>,
    /// Names of the limits that refused it.
    refused_by: Vec<String>,
    /// The service said OVER_LIMIT (possibly without saying which descriptor).
    refused: bool,
    /// The local buckets the request took tokens from (limit index, bucket, the take, its entry
    /// in `quotas`): given back if it does not pass.
    taken: Vec<(usize, bucket::BucketKey, bucket::Verdict, usize)>,
    retry_after_secs: u64,
    counters: Vec<Counter>,
    /// The service's response headers that are allow-listed.
    extra_headers: Vec<(HeaderName, String)>,
}

/// A dependency that failed the request.
enum Failure {
    Service,
    LocalStore,
}

impl HttpFilter for RateLimitFilter {
    fn reads_response_headers(&self) -> bool {
        !self.response_headers.is_empty()
    }

    /// A request that went away while the service was asked does not pass: its local tokens go
    /// back, as a refused one's do.
    fn on_abandoned(&mut self, ctx: &Ctx) {
        if let Some(mut tally) = self.pending.take() {
            self.give_back(&mut tally, ctx);
        }
    }

    fn on_request_headers(&mut self, headers: &Headers, ctx: &Ctx) -> Step {
        let Some(line) = RequestLine::of(headers) else {
            return Step::reply(Deny::MalformedRequest("the request has no method or path").reply(&Realm::default()));
        };
        let root = Rc::clone(&self.root);
        let line = if root.case_insensitive_paths {
            line.case_folded()
        } else {
            line
        };
        let facts = RequestFacts::new(headers, line, ctx, &root.claims_read);
        let doubt = Doubt {
            path: root.routes_read_paths && facts.untrusted_path(),
            method: root.routes_read_methods && facts.method_overridden(),
        };
        let mut tally = Tally::default();
        let mut asks = Vec::new();
        for (index, compiled) in root.limits.iter().enumerate() {
            let limit = &compiled.limit;
            if !limit.applies_to(facts.line(), doubt) {
                continue;
            }
            let Some((descriptor, from_fallback)) = limit.descriptor(&facts) else {
                tally.counters.push(root.counters.descriptor_incomplete);
                continue;
            };
            let (Some(buckets), Enforce::Local(rate)) = (&compiled.buckets, &limit.enforce) else {
                asks.push(Ask {
                    descriptor,
                    hits: limit.cost,
                });
                self.asked.push(index);
                continue;
            };
            let placement = match root.placement.load(ctx.store) {
                Ok(placement) => placement,
                Err(error) => {
                    log::error!("rate_limit: the bucket placement secret is unavailable: {error:?}");
                    return self.conclude(tally, Some(Failure::LocalStore), ctx);
                }
            };
            let key = buckets.key(&placement, &descriptor, &from_fallback);
            // Once a limit refuses, the others are only asked what they would say.
            let taking = !tally.refused;
            let verdict = if taking {
                buckets.take(ctx.store, &key, limit.cost, ctx.now_ms)
            } else {
                buckets.check(ctx.store, &key, limit.cost, ctx.now_ms)
            };
            let verdict = match verdict {
                Ok(verdict) => verdict,
                Err(error) => {
                    log::error!("rate_limit: limit {}: shared data update failed: {error:?}", limit.name);
                    return self.conclude(tally, Some(Failure::LocalStore), ctx);
                }
            };
            if taking && verdict.allowed {
                tally.taken.push((index, key, verdict, tally.quotas.len()));
            }
            // The bucket is the quota (see `Rate::policy`), so the limit shown is never below
            // the remaining count.
            let (quota, window_secs) = rate.policy();
            tally.quotas.push(Quota {
                name: limit.name.clone(),
                unnamed: false,
                limit: quota,
                window_secs: Some(window_secs),
                remaining: verdict.remaining,
                reset_secs: verdict.reset_secs,
            });
            if !verdict.allowed {
                tally.refused_by.push(limit.name.clone());
                tally.refused = true;
                tally.retry_after_secs = tally.retry_after_secs.max(verdict.retry_after_secs);
            }
        }
        // Refused locally: no need to ask the service, unless only shadowing.
        let service = root.service.as_ref().filter(|_| !asks.is_empty());
        match service {
            Some(service) if !tally.refused || root.shadow => {
                let step = service.call(&asks);
                self.pending = Some(tally);
                step
            }
            _ => self.conclude(tally, None, ctx),
        }
    }

    fn on_grpc_response(&mut self, outcome: GrpcOutcome, ctx: &Ctx) -> Step {
        let answer = match outcome.status {
            GrpcOutcome::OK if outcome.message.len() > MAX_ANSWER_BYTES => Err("the answer is too large".to_owned()),
            GrpcOutcome::OK => {
                rls::decode_grpc(&outcome.message).map_err(|_| "the answer is not a RateLimitResponse".to_owned())
            }
            status => Err(format!("gRPC status {status}")),
        };
        self.answered(answer, ctx)
    }

    fn on_call_response(&mut self, outcome: CallOutcome, ctx: &Ctx) -> Step {
        let answer = match outcome {
            // The HTTP form answers 429 for OVER_LIMIT, 200 for OK; the body says which
            // descriptors. A status the body contradicts is no answer to go by.
            CallOutcome::Response {
                status: status @ (200 | 429),
                body,
                ..
            } if body.len() <= MAX_ANSWER_BYTES => match rls::decode_json(&body) {
                Ok(answer) if (status == 429) != (answer.overall == Code::OverLimit) => Err(format!(
                    "HTTP status {status} with an overall code of {:?}",
                    answer.overall
                )),
                Ok(answer) => Ok(answer),
                Err(_) => Err("the answer is not a RateLimitResponse".to_owned()),
            },
            CallOutcome::Response { status: 200 | 429, .. } => Err("the answer is too large".to_owned()),
            CallOutcome::Response { status, .. } => Err(format!("HTTP status {status}")),
            CallOutcome::Failed => Err("unreachable or timed out".to_owned()),
        };
        self.answered(answer, ctx)
    }

    fn on_response_headers(&mut self, _headers: &Headers, _ctx: &Ctx) -> Step {
        let mut step = Step::proceed();
        for edit in std::mem::take(&mut self.response_headers) {
            step = step.edit(edit);
        }
        step
    }
}

impl RateLimitFilter {
    /// Folds the service's answer into what the local limits said, and decides.
    fn answered(&mut self, answer: Result<Answer, String>, ctx: &Ctx) -> Step {
        let root = Rc::clone(&self.root);
        let mut tally = self.pending.take().unwrap_or_default();
        let answer = match answer {
            Ok(answer) if answer.overall != Code::Unknown => answer,
            Ok(_) => return self.service_failed(tally, "the service answered UNKNOWN", ctx),
            Err(why) => return self.service_failed(tally, &why, ctx),
        };
        if let Some(service) = &root.service {
            tally.extra_headers = service.allowed_headers(&answer);
        }
        // Descriptors over their limit refuse only when the answer as a whole does: a service in its
        // own shadow mode says OK overall and OVER_LIMIT for them (it counts those itself).
        let over_limit = answer.overall == Code::OverLimit;
        for (position, status) in answer.statuses.iter().enumerate() {
            let limit_name = self
                .asked
                .get(position)
                .and_then(|i| root.limits.get(*i))
                .map(|c| c.limit.name.clone())
                .unwrap_or_default();
            if let Some(current) = &status.current_limit {
                tally.quotas.push(Quota {
                    name: if current.name.is_empty() {
                        limit_name.clone()
                    } else {
                        current.name.clone()
                    },
                    unnamed: current.name.is_empty(),
                    limit: u64::from(current.requests_per_unit),
                    window_secs: current.window_secs,
                    remaining: u64::from(status.limit_remaining),
                    reset_secs: status.bounded_reset_secs().unwrap_or(0),
                });
            }
            if status.code == Code::OverLimit {
                if over_limit {
                    tally.refused_by.push(limit_name);
                    let wait = status
                        .bounded_reset_secs()
                        .or_else(|| status.current_limit.as_ref().and_then(|l| l.window_secs))
                        .unwrap_or(1);
                    tally.retry_after_secs = tally.retry_after_secs.max(wait);
                } else {
                    log::debug!("rate_limit: the service let {limit_name:?} through over its limit");
                }
            }
        }
        tally.refused |= over_limit;
        self.conclude(tally, None, ctx)
    }

    fn service_failed(&mut self, tally: Tally, why: &str, ctx: &Ctx) -> Step {
        log::warn!("rate_limit: rate-limit service failed: {why}");
        self.conclude(tally, Some(Failure::Service), ctx)
    }

    /// Gives the tokens of a request that does not pass back to the local buckets it took them
    /// from: a request refused by one limit (or by the service) costs the others nothing, so a
    /// client over its own limit cannot drain a limit it shares with others. Best effort: a bucket
    /// that cannot be updated keeps the tokens, erring on the strict side.
    fn give_back(&self, tally: &mut Tally, ctx: &Ctx) {
        for (index, key, taken, quota) in std::mem::take(&mut tally.taken) {
            let Some(compiled) = self.root.limits.get(index) else {
                continue;
            };
            let Some(buckets) = &compiled.buckets else { continue };
            let limit = &compiled.limit;
            match buckets.give_back(ctx.store, &key, limit.cost, &taken, ctx.now_ms) {
                // The answer's rate-limit headers show the bucket as the request left it.
                Ok(Some(after)) => {
                    if let Some(quota) = tally.quotas.get_mut(quota) {
                        quota.remaining = after.remaining;
                        quota.reset_secs = after.reset_secs;
                    }
                }
                Ok(None) => {}
                Err(error) => log::warn!("rate_limit: limit {}: tokens not given back: {error:?}", limit.name),
            }
        }
    }

    /// The decision: 503 for a failed dependency (unless allowed), 429 over a limit (unless
    /// shadowed), else the request passes.
    fn conclude(&mut self, mut tally: Tally, failure: Option<Failure>, ctx: &Ctx) -> Step {
        let root = Rc::clone(&self.root);
        let service_failure_refuses =
            root.service.as_ref().map_or(FailureMode::Deny, |s| s.failure_mode) == FailureMode::Deny && !root.shadow;
        let failure_refuses = match &failure {
            None => false,
            Some(Failure::Service) => service_failure_refuses,
            Some(Failure::LocalStore) => true,
        };
        if tally.refused || failure_refuses {
            self.give_back(&mut tally, ctx);
        }
        let counters = &root.counters;
        let mut step = Step::proceed();
        step.counters = tally.counters;
        for name in &tally.refused_by {
            if let Some(limit) = root.limits.iter().find(|l| &l.limit.name == name) {
                step = step.count(limit.limit.over_limit);
            }
        }
        let mut outcome = "allowed";
        match &failure {
            Some(Failure::LocalStore) => {
                return refuse(unavailable(), step.counters)
                    .count(counters.local_store_error)
                    .publish(OUTCOME_STATE, "local_store_error");
            }
            Some(Failure::Service) => {
                step = step.count(counters.service_error);
                if service_failure_refuses {
                    return refuse(unavailable(), step.counters).publish(OUTCOME_STATE, "service_unavailable");
                }
                step = step.count(counters.failure_mode_allowed);
                outcome = "failure_mode_allowed";
            }
            None => {}
        }
        if tally.refused {
            if root.shadow {
                log::info!("rate_limit: shadow: would refuse (limits {:?})", tally.refused_by);
                step = step.count(counters.shadow_over_limit);
                outcome = "shadow_over_limit";
            } else {
                let mut reply = Deny::RateLimited {
                    retry_after_secs: tally.retry_after_secs.max(1),
                }
                .reply(&Realm::default());
                reply.headers.extend(quota::render(root.headers.style, &tally.quotas));
                reply.headers.extend(tally.extra_headers);
                return refuse(reply, step.counters)
                    .count(counters.over_limit)
                    .publish(OUTCOME_STATE, "over_limit");
            }
        }
        if failure.is_none() && !tally.refused {
            step = step.count(counters.ok);
        }
        if root.headers.on_allowed && !root.shadow {
            let own = quota::render(root.headers.style, &tally.quotas);
            self.response_headers = own
                .into_iter()
                .map(|(name, value)| HeaderEdit::Set(name, value.into_bytes()))
                .collect();
        }
        let service = tally.extra_headers.into_iter();
        self.response_headers
            .extend(service.map(|(name, value)| HeaderEdit::Add(name, value.into_bytes())));
        step.publish(OUTCOME_STATE, outcome)
    }
}

fn unavailable() -> shared::LocalReply {
    Deny::Unavailable { retry_after_secs: None }.reply(&Realm::default())
}

/// A local reply that still bumps the counters gathered so far.
fn refuse(reply: shared::LocalReply, counters: Vec<Counter>) -> Step {
    let mut step = Step::reply(reply);
    step.counters = counters;
    step
}
