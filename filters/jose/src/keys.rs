//! Where a provider's keys come from, and how remote keys stay fresh.
//!
//! Remote keys are fetched periodically by one worker at a time (a lease in shared data), stored
//! in shared data for every worker, and parsed once per version by each. A failed fetch keeps the last
//! good keys, for at most `max_stale_secs` after the fetch that got them, and every worker retries
//! after one backoff (kept with the lease). A request that finds no key for its token (none yet, or
//! none with its `kid`) fetches the keys itself, or waits on the fetch in flight on its worker;
//! these request fetches are rate-limited, and when they find nothing the request gets 503 (no
//! keys) or 401 (an unknown `kid` while the IdP answers).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use shared::{CallOutcome, Counter, Ctx, HeaderName, HttpCall, RootStep, SharedStore, StoreError};

use crate::Jwks;

/// Longest pause between retries of a failing fetch.
const MAX_BACKOFF_MS: u64 = 30_000;
/// A fetch time this far ahead of the clock was taken before the clock stepped back: the keys
/// are refreshed at once rather than once the clock has caught up.
const CLOCK_STEP_MS: u64 = 1000;
/// A provider refetches for a request at most this often.
const REQUEST_REFETCH_MS: u64 = 10_000;
/// Request refetches whose request went away before the answer that give their rate-limit
/// window back, per window of [`REQUEST_REFETCH_MS`]. Beyond these, an abandoned refetch uses
/// the window up as a completed one does, and the periodic fetch catches up on the next tick.
const ABANDONED_REFETCH_BUDGET: u32 = 2;
/// Longest discovered `issuer` quoted in a log line.
const MAX_LOGGED_ISSUER: usize = 200;

pub enum KeySource {
    Static(Rc<Jwks>),
    Remote(Box<RemoteKeys>),
}

/// Which document a fetch asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetch {
    Discovery,
    Jwks,
}

pub struct RemoteKeys {
    cluster: String,
    authority: String,
    discovery_path: Option<String>,
    /// The cluster for a discovered `jwks_uri` on another host than the discovery document's.
    jwks_cluster: Option<String>,
    /// The `issuer` an OIDC discovery document must name ([`RemoteKeys::require_issuer`]).
    issuer: Option<String>,
    refresh_ms: u64,
    /// The last good keys are used at most this long after the fetch that got them.
    max_stale_ms: u64,
    timeout: Duration,
    /// Shared-data keys: the document, its fetch time (written last), the lease of the fetch in
    /// flight, and the backoff every worker follows: failed periodic fetches in a row, and until
    /// when no periodic fetch is made.
    body_key: String,
    stamp_key: String,
    lease_key: String,
    failures_key: String,
    /// Names this key source in logs.
    label: String,
    state: RefCell<KeyState>,
}

#[derive(Default)]
struct KeyState {
    jwks: Option<Rc<Jwks>>,
    /// Fetch time (ms) of the adopted document; 0: none yet.
    stamp: u64,
    /// The adopted document's [`content_version`].
    version: u64,
    /// Where the JWKS is: configured, or found by discovery (and forgotten when a fetch from
    /// there fails, so that the next one reads discovery again: the IdP may have moved it).
    jwks_at: Option<Location>,
    in_flight: bool,
    /// The fetch in flight holds the lease: a periodic one does, a request's refetch does not.
    holds_lease: bool,
    next_attempt_ms: u64,
    failures: u32,
    /// When this worker's last fetch failed: keys another worker fetched later end its outage.
    failed_at_ms: u64,
    /// When the last request refetch that counts against the rate limit started.
    last_forced_ms: Option<u64>,
    /// A periodic fetch failed lately on some worker (the shared backoff, read on each tick).
    shared_failing: bool,
    /// A request refetch is in flight (rather than a periodic fetch).
    forced_in_flight: bool,
    /// `last_forced_ms` before the refetch in flight started: restored if it is abandoned.
    forced_before: Option<u64>,
    /// Start of the current window of abandoned refetches, and how many of them gave their
    /// rate-limit window back in it.
    abandoned_since_ms: Option<u64>,
    abandoned: u32,
    /// An abandoned refetch kept its rate-limit window: the periodic fetch is due now.
    catch_up: bool,
    /// Fetches of this worker that ended (with keys or not); abandoned ones do not count.
    ended: u64,
}

impl Fetch {
    /// The tag of a root-context fetch of key source `index`: the answer comes back with it.
    pub fn tag(self, index: usize) -> u32 {
        let kind = u32::from(self == Fetch::Discovery);
        u32::try_from(index)
            .unwrap_or(u32::MAX / 2)
            .saturating_mul(2)
            .saturating_add(kind)
    }

    /// The key source and the fetch a [`Fetch::tag`] names.
    pub fn untag(tag: u32) -> (usize, Fetch) {
        let index = usize::try_from(tag / 2).unwrap_or(usize::MAX);
        let fetch = if tag % 2 == 1 { Fetch::Discovery } else { Fetch::Jwks };
        (index, fetch)
    }
}

/// The counters a filter bumps when a key fetch ends.
#[derive(Clone, Copy, Debug)]
pub struct FetchCounters {
    pub ok: Counter,
    pub failed: Counter,
}

/// What a request that found no key for its token can do.
pub enum Refetch {
    /// It leads a refetch: it sends this call, and hands the answer to
    /// [`RemoteKeys::answer_refetch`].
    Started(Fetch, HttpCall),
    /// A fetch is in flight on this worker: the request waits for it to end. Once woken,
    /// [`RemoteKeys::abandoned`] tells whether it ended or its leader went away.
    InFlight(Ticket),
    /// A refetch was made too recently: the request is decided with the keys at hand.
    RateLimited,
}

/// What a request waiting on a fetch knew when it started waiting.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    ended: u64,
}

/// What became of a request's refetch once its call was answered.
pub enum Refetched {
    /// The discovery document named the JWKS: this call fetches it, for the same request.
    Next(Fetch, HttpCall),
    /// The fetch is over, with keys or without: the counter to bump. The request wakes the
    /// requests waiting on it.
    Ended(Counter),
}

/// Where a document is fetched from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Location {
    cluster: String,
    authority: String,
    path: String,
}

/// Why a fetch did not produce keys.
#[derive(Debug, PartialEq, Eq)]
pub enum FetchError {
    Unreachable,
    Status(u16),
    Malformed,
    /// The OIDC discovery document names another `issuer` (or none): it must not be used
    /// (OpenID Connect Discovery 1.0 section 4.3).
    WrongIssuer,
    /// The discovery document's `jwks_uri` is on another host, and no cluster is configured for
    /// it (`jwks_cluster`).
    JwksOnAnotherHost,
}

pub struct RemoteSpec {
    pub cluster: String,
    pub authority: String,
    /// `Some(path)` for a JWKS URL, `None` for OIDC discovery at `discovery_path`.
    pub jwks_path: Option<String>,
    pub discovery_path: Option<String>,
    /// With discovery: the cluster for a `jwks_uri` on another host.
    pub jwks_cluster: Option<String>,
    pub refresh_secs: u64,
    pub max_stale_secs: u64,
    pub timeout_ms: u64,
    /// Prefix of this key source's shared-data keys: distinguishes it from every other plugin's.
    pub store_prefix: String,
}

impl RemoteKeys {
    pub fn new(spec: RemoteSpec) -> Self {
        let jwks_at = spec.jwks_path.map(|path| Location {
            cluster: spec.cluster.clone(),
            authority: spec.authority.clone(),
            path,
        });
        Self {
            cluster: spec.cluster,
            authority: spec.authority,
            discovery_path: spec.discovery_path,
            jwks_cluster: spec.jwks_cluster,
            issuer: None,
            refresh_ms: spec.refresh_secs.saturating_mul(1000),
            max_stale_ms: spec.max_stale_secs.saturating_mul(1000),
            timeout: Duration::from_millis(spec.timeout_ms),
            body_key: format!("{}.jwks", spec.store_prefix),
            stamp_key: format!("{}.stamp", spec.store_prefix),
            lease_key: format!("{}.lease", spec.store_prefix),
            failures_key: format!("{}.failures", spec.store_prefix),
            label: spec.store_prefix,
            state: RefCell::new(KeyState {
                jwks_at,
                ..KeyState::default()
            }),
        }
    }

    /// With OIDC discovery: the `issuer` the discovery document must name, exactly (OpenID Connect
    /// Discovery 1.0 section 4.3: the issuer whose URL the document was fetched from). A document
    /// naming another issuer, or none, is a failed fetch.
    pub fn require_issuer(&mut self, issuer: &str) {
        self.issuer = Some(issuer.to_owned());
    }

    /// The adopted keys and their version: the same for the same document, so that a refresh
    /// that finds the keys unchanged keeps what was verified with them. Newer documents other
    /// workers stored are taken on each tick; a request reads shared data itself only while this
    /// worker has no keys it may use. None once the keys are older than `max_stale_secs`: a key the
    /// IdP removed while its keys could not be fetched is not trusted on without bound.
    pub fn current(&self, store: &dyn SharedStore, now_ms: u64) -> Option<(Rc<Jwks>, u64)> {
        let usable = |state: &KeyState| state.jwks.is_some() && !self.past_max_stale(state.stamp, now_ms);
        if !usable(&self.state.borrow()) {
            self.sync(store);
        }
        let state = self.state.borrow();
        if self.past_max_stale(state.stamp, now_ms) {
            return None;
        }
        state.jwks.clone().map(|jwks| (jwks, state.version))
    }

    /// Whether keys fetched at `stamp` are too old to use: older than `max_stale_secs`, or of an
    /// age nobody knows (fetched before the clock stepped back; the refresh is then due at once,
    /// and requests wait on it).
    fn past_max_stale(&self, stamp: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(stamp) > self.max_stale_ms || stepped_back(stamp, now_ms)
    }

    /// Takes the fetch another worker stored, if it is newer. Returns whether that changed the
    /// keys.
    pub fn sync(&self, store: &dyn SharedStore) -> bool {
        let Some(stamp) = store.get(&self.stamp_key).and_then(|(v, _)| read_u64(&v)) else {
            return false;
        };
        if stamp == self.state.borrow().stamp {
            return false;
        }
        let body = store.get(&self.body_key).map(|(body, _)| body).unwrap_or_default();
        let version = content_version(&body);
        let mut state = self.state.borrow_mut();
        state.stamp = stamp;
        if state.failures > 0 && stamp > state.failed_at_ms {
            state.failures = 0;
            state.next_attempt_ms = 0;
        }
        if state.jwks.is_some() && version == state.version {
            return false;
        }
        let Ok(jwks) = Jwks::parse(&body) else {
            return false;
        };
        state.jwks = Some(Rc::new(jwks));
        state.version = version;
        true
    }

    /// Periodic work: the fetch this worker should make now, if any.
    pub fn tick(&self, now_ms: u64, store: &dyn SharedStore) -> Option<(Fetch, HttpCall)> {
        self.sync(store);
        let backoff = self.shared_backoff(store);
        self.state.borrow_mut().shared_failing = backoff.failures > 0;
        let due = {
            let state = self.state.borrow();
            let stale = state.jwks.is_none()
                || state.catch_up
                || now_ms >= state.stamp.saturating_add(self.refresh_ms)
                || stepped_back(state.stamp, now_ms);
            // A backoff ending later than any backoff does began before the clock stepped back.
            let backed_off = now_ms < state.next_attempt_ms
                && !stepped_back(state.next_attempt_ms, now_ms.saturating_add(MAX_BACKOFF_MS));
            stale && !state.in_flight && !backed_off
        };
        if !due {
            return None;
        }
        let holds_lease = self.take_lease(now_ms, store)?;
        let fetch = self.start_fetch();
        self.state.borrow_mut().holds_lease = holds_lease;
        Some(fetch)
    }

    /// A request found no key for its token: no keys yet (Envoy serves a listener before its
    /// first fetch answers, and after a failed one the periodic retry backs off), or none with its
    /// `kid` (a rotation). Refetch now, unless a fetch is in flight or a refetch happened recently.
    pub fn refetch(&self, now_ms: u64) -> Refetch {
        {
            let state = self.state.borrow();
            if state.in_flight {
                return Refetch::InFlight(Ticket { ended: state.ended });
            }
            if state
                .last_forced_ms
                .is_some_and(|at| now_ms < at.saturating_add(REQUEST_REFETCH_MS) && !stepped_back(at, now_ms))
            {
                return Refetch::RateLimited;
            }
        }
        let (fetch, call) = self.start_fetch();
        let mut state = self.state.borrow_mut();
        state.forced_before = state.last_forced_ms.replace(now_ms);
        state.forced_in_flight = true;
        Refetch::Started(fetch, call)
    }

    /// Whether the fetch a request waited on ([`Refetch::InFlight`]) went away unanswered rather
    /// than ended: the request may then refetch itself.
    pub fn abandoned(&self, ticket: Ticket) -> bool {
        self.state.borrow().ended == ticket.ended
    }

    /// The request that started a refetch went away before the answer (which, when it comes, has
    /// no request to go to: the adapter drops it). The refetch did not complete, so it gives
    /// its rate-limit window back: otherwise a client that sends a made-up `kid` and hangs up
    /// would keep a genuinely rotated key out for the whole window. Only
    /// [`ABANDONED_REFETCH_BUDGET`] abandoned refetches per window do (each may have reached the
    /// IdP), so that clients hanging up in a loop cannot make this worker fetch without bound;
    /// beyond that the window stays used up, and the periodic fetch, which no client can cancel,
    /// is due at once instead. Nothing happens unless a request refetch is in flight.
    pub fn abandon(&self) {
        let mut state = self.state.borrow_mut();
        if !state.forced_in_flight {
            return;
        }
        state.forced_in_flight = false;
        state.in_flight = false;
        let Some(started) = state.last_forced_ms else {
            return;
        };
        let window_over = state
            .abandoned_since_ms
            .is_none_or(|since| started >= since.saturating_add(REQUEST_REFETCH_MS) || stepped_back(since, started));
        if window_over {
            state.abandoned_since_ms = Some(started);
            state.abandoned = 0;
        }
        if state.abandoned < ABANDONED_REFETCH_BUDGET {
            state.abandoned = state.abandoned.saturating_add(1);
            state.last_forced_ms = state.forced_before;
        } else {
            log::warn!(
                "{}: key refetches keep being abandoned; the periodic fetch takes over",
                self.label
            );
            state.catch_up = true;
        }
    }

    fn start_fetch(&self) -> (Fetch, HttpCall) {
        let mut state = self.state.borrow_mut();
        state.in_flight = true;
        match (&state.jwks_at, &self.discovery_path) {
            (Some(jwks), _) => (Fetch::Jwks, self.get(jwks)),
            (None, Some(path)) => (Fetch::Discovery, self.get(&self.here(path))),
            (None, None) => (Fetch::Jwks, self.get(&self.here("/"))),
        }
    }

    /// A path on the configured cluster and authority.
    fn here(&self, path: &str) -> Location {
        Location {
            cluster: self.cluster.clone(),
            authority: self.authority.clone(),
            path: path.to_owned(),
        }
    }

    fn get(&self, at: &Location) -> HttpCall {
        HttpCall {
            cluster: at.cluster.clone(),
            headers: vec![
                (HeaderName::trusted(":method"), b"GET".to_vec()),
                (HeaderName::trusted(":path"), at.path.as_bytes().to_vec()),
                (HeaderName::trusted(":authority"), at.authority.as_bytes().to_vec()),
                (HeaderName::trusted("accept"), b"application/json".to_vec()),
            ],
            body: None,
            timeout: self.timeout,
        }
    }

    /// This worker's last fetch failed, or the last periodic fetch of any worker did: the IdP
    /// cannot be asked right now, so an unknown `kid` may be a rotation this gateway cannot see
    /// yet rather than a bad token.
    pub fn failing(&self) -> bool {
        let state = self.state.borrow();
        state.failures > 0 || state.shared_failing
    }

    fn shared_backoff(&self, store: &dyn SharedStore) -> Backoff {
        store
            .get(&self.failures_key)
            .map_or_else(Backoff::default, |(value, _)| Backoff::read(&value))
    }

    fn set_shared_backoff(&self, store: &dyn SharedStore, backoff: &Backoff) {
        let _ = store.set(&self.failures_key, &backoff.bytes(), None);
    }

    /// The root context's part: takes the answer to fetch `fetch` of key source `index`, and
    /// returns the follow-up fetch, or the fetch's counter and a wake-up of `signal` for the
    /// requests waiting on keys.
    pub fn answer_in_root(
        &self,
        index: usize,
        fetch: Fetch,
        outcome: CallOutcome,
        ctx: &Ctx,
        counters: FetchCounters,
        signal: String,
    ) -> RootStep {
        let mut step = RootStep::default();
        match self.on_response(fetch, outcome, ctx.now_ms, ctx.store) {
            Ok(Some(next)) => step.calls.push((Fetch::Jwks.tag(index), next)),
            result => {
                step.counters
                    .push(self.counted(result.map(|_| ()), fetch, counters, ctx.now_ms));
                step.notify.push(signal);
            }
        }
        step
    }

    /// Takes the answer to fetch `fetch` of a request's refetch ([`Refetch::Started`]).
    pub fn answer_refetch(&self, fetch: Fetch, outcome: CallOutcome, ctx: &Ctx, counters: FetchCounters) -> Refetched {
        match self.on_response(fetch, outcome, ctx.now_ms, ctx.store) {
            Ok(Some(next)) => Refetched::Next(Fetch::Jwks, next),
            result => Refetched::Ended(self.counted(result.map(|_| ()), fetch, counters, ctx.now_ms)),
        }
    }

    fn counted(&self, result: Result<(), FetchError>, fetch: Fetch, counters: FetchCounters, now_ms: u64) -> Counter {
        match result {
            Ok(()) => counters.ok,
            Err(error) => {
                let state = self.state.borrow();
                if state.jwks.is_some() && self.past_max_stale(state.stamp, now_ms) {
                    log::warn!(
                        "{}: {fetch:?} fetch failed ({error:?}); the last good keys are older than max_stale_secs: tokens are refused until a fetch succeeds",
                        self.label
                    );
                } else {
                    log::warn!(
                        "{}: {fetch:?} fetch failed ({error:?}); keeping the last good keys",
                        self.label
                    );
                }
                counters.failed
            }
        }
    }

    /// Takes the answer to a fetch. A discovery answer leads to the JWKS fetch it names.
    pub fn on_response(
        &self,
        fetch: Fetch,
        outcome: CallOutcome,
        now_ms: u64,
        store: &dyn SharedStore,
    ) -> Result<Option<HttpCall>, FetchError> {
        let result = match fetch {
            Fetch::Discovery => self.discovered(outcome).map(|jwks| {
                let call = self.get(&jwks);
                let mut state = self.state.borrow_mut();
                state.jwks_at = Some(jwks);
                // The JWKS call is part of the same fetch: the lease covers it too.
                if state.holds_lease {
                    let until = now_ms.saturating_add(self.fetch_ms());
                    let _ = store.set(&self.lease_key, &until.to_le_bytes(), None);
                }
                Some(call)
            }),
            Fetch::Jwks => self.fetched(outcome, now_ms, store).map(|()| None),
        };
        if fetch == Fetch::Jwks && result.is_err() && self.discovery_path.is_some() {
            self.state.borrow_mut().jwks_at = None;
        }
        let mut state = self.state.borrow_mut();
        state.in_flight = matches!(result, Ok(Some(_)));
        let held_lease = !state.in_flight && std::mem::take(&mut state.holds_lease);
        // After a failed periodic fetch, no worker makes one before the backoff of the failures
        // in a row is over; a fetch that got keys (a request's refetch too) ends the backoff.
        // Written before the lease is freed: a worker that finds the lease free finds the backoff.
        match &result {
            Err(_) if held_lease => {
                let failures = self.shared_backoff(store).failures.saturating_add(1);
                let until_ms = now_ms.saturating_add(backoff_ms(failures));
                self.set_shared_backoff(store, &Backoff { failures, until_ms });
                state.shared_failing = true;
            }
            Ok(None) => {
                if self.shared_backoff(store) != Backoff::default() {
                    self.set_shared_backoff(store, &Backoff::default());
                }
                state.shared_failing = false;
            }
            Err(_) | Ok(Some(_)) => {}
        }
        if held_lease {
            let _ = store.set(&self.lease_key, &0u64.to_le_bytes(), None);
        }
        if !state.in_flight {
            state.forced_in_flight = false;
            state.catch_up = false;
            state.ended = state.ended.wrapping_add(1);
        }
        match &result {
            Ok(None) => {
                state.failures = 0;
                state.next_attempt_ms = 0;
            }
            Ok(Some(_)) => {}
            Err(_) => {
                state.failures = state.failures.saturating_add(1);
                state.failed_at_ms = now_ms;
                state.next_attempt_ms = now_ms.saturating_add(backoff_ms(state.failures));
            }
        }
        result
    }

    fn discovered(&self, outcome: CallOutcome) -> Result<Location, FetchError> {
        let body = ok_body(outcome)?;
        let document = shared::json::parse(&body)
            .map_err(|_| FetchError::Malformed)?
            .into_value();
        let uri = document
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or(FetchError::Malformed)?;
        // What goes out as the fetch's `:path` and, on another host, `:authority`: the IdP's
        // word, held to what a configured one is.
        let path = path_of(uri)
            .filter(|p| shared::config::is_request_target(p))
            .ok_or(FetchError::Malformed)?;
        if let Some(expected) = &self.issuer {
            let issuer = document.get("issuer").and_then(|v| v.as_str());
            if issuer != Some(expected.as_str()) {
                // The document's value is the IdP's, not a secret; quoted with escapes, and cut short.
                let shown: String = issuer.unwrap_or_default().chars().take(MAX_LOGGED_ISSUER).collect();
                log::warn!(
                    "{}: the discovery document's issuer {:?} is not the configured {:?}; not using it",
                    self.label,
                    issuer.map(|_| shown),
                    expected
                );
                return Err(FetchError::WrongIssuer);
            }
        }
        // On the discovery document's host (as the config or the issuer names it): the same
        // cluster and authority. On another (Google's keys are on www.googleapis.com): its own.
        let authority = authority_of(uri)
            .filter(|a| shared::config::is_authority(a))
            .ok_or(FetchError::Malformed)?;
        let default_port = split_scheme(uri).map_or("", |(port, _)| port);
        let issuer_authority = self.issuer.as_deref().and_then(authority_of);
        let (cluster, authority) = if authority.eq_ignore_ascii_case(without_port(&self.authority, default_port))
            || issuer_authority.is_some_and(|a| a.eq_ignore_ascii_case(&authority))
        {
            (self.cluster.clone(), self.authority.clone())
        } else if let Some(cluster) = &self.jwks_cluster {
            (cluster.clone(), authority)
        } else {
            log::warn!(
                "{}: the discovery document's jwks_uri is on {:?}, not {:?}: set `jwks_cluster` to a cluster that reaches it",
                self.label,
                authority.chars().take(MAX_LOGGED_ISSUER).collect::<String>(),
                self.authority
            );
            return Err(FetchError::JwksOnAnotherHost);
        };
        Ok(Location {
            cluster,
            authority,
            path,
        })
    }

    fn fetched(&self, outcome: CallOutcome, now_ms: u64, store: &dyn SharedStore) -> Result<(), FetchError> {
        let body = ok_body(outcome)?;
        let jwks = Jwks::parse(&body).map_err(|_| FetchError::Malformed)?;
        // A well-formed set is the IdP's word on which keys are valid, even when none is one this
        // filter can use (`{"keys": []}` after a compromise): keeping the last keys instead would
        // trust a key the IdP removed for as long as it says so.
        if jwks.is_empty() {
            log::warn!(
                "{}: the fetched JWKS has no key this filter can use: every token is refused until it has",
                self.label
            );
        }
        // Another stamp than the adopted one, so every worker sees a new fetch; the clock's time
        // even after it stepped back, so that refreshes keep their pace.
        let adopted = self.state.borrow().stamp;
        let stamp = if now_ms == adopted {
            now_ms.saturating_add(1)
        } else {
            now_ms
        };
        let stored = store.set(&self.body_key, &body, None).is_ok()
            && store.set(&self.stamp_key, &stamp.to_le_bytes(), None).is_ok();
        if !stored {
            log::warn!("{}: could not share fetched keys with the other workers", self.body_key);
        }
        let mut state = self.state.borrow_mut();
        let version = content_version(&body);
        if state.jwks.is_none() || version != state.version {
            if jwks.skipped() > 0 {
                log::warn!(
                    "{}: the fetched JWKS has {} key(s) this filter does not use: {}",
                    self.label,
                    jwks.skipped(),
                    jwks.skip_reasons().join("; ")
                );
            }
            state.jwks = Some(Rc::new(jwks));
            state.version = version;
        }
        state.stamp = stamp;
        Ok(())
    }

    /// One worker fetches at a time: a lease in shared data, taken with compare-and-swap.
    /// `None`: another worker holds it; `Some(false)`: the host refused the write, so this worker
    /// fetches without one rather than never (its own backoff still bounds it).
    fn take_lease(&self, now_ms: u64, store: &dyn SharedStore) -> Option<bool> {
        let fetch_ms = self.fetch_ms();
        let (held_until, seen) = match store.get(&self.lease_key) {
            Some((value, version)) => (value.get(..8).and_then(read_u64).unwrap_or(0), Some(version)),
            None => (0, None),
        };
        // A lease running out later than any config takes one for (or an earlier release kept
        // its backoff in) was taken before the clock stepped back: it is over.
        let longest = (shared::config::MAX_TIMEOUT_MS + 1000).max(MAX_BACKOFF_MS);
        if now_ms < held_until && !stepped_back(held_until, now_ms.saturating_add(longest)) {
            return None;
        }
        // Read after the lease: a holder writes its backoff before it frees the lease, and frees
        // it after this read only if the write below then finds the lease changed.
        if self.shared_backoff(store).holds_at(now_ms) {
            return None;
        }
        // Nor does a worker fetch keys another one got since this tick took them in.
        let stamp = store.get(&self.stamp_key).and_then(|(value, _)| read_u64(&value));
        if stamp.is_some_and(|stamp| stamp != self.state.borrow().stamp) {
            return None;
        }
        let until = now_ms.saturating_add(fetch_ms);
        match store.set_if_unchanged(&self.lease_key, &until.to_le_bytes(), seen) {
            Ok(()) => Some(true),
            Err(StoreError::CasMismatch) => None,
            Err(StoreError::Failed) => Some(false),
        }
    }

    /// How long a lease is taken for: one call's timeout, and a second for the answer to arrive.
    fn fetch_ms(&self) -> u64 {
        u64::try_from(self.timeout.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1000)
    }
}

/// The backoff every worker follows, as stored: failed periodic fetches in a row, and until when
/// none is made.
#[derive(Debug, Default, PartialEq, Eq)]
struct Backoff {
    failures: u32,
    until_ms: u64,
}

impl Backoff {
    fn read(bytes: &[u8]) -> Self {
        Self {
            failures: bytes
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_le_bytes),
            until_ms: bytes.get(4..12).and_then(read_u64).unwrap_or(0),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.failures.to_le_bytes().to_vec();
        out.extend_from_slice(&self.until_ms.to_le_bytes());
        out
    }

    /// Whether it keeps periodic fetches back at `now_ms`; one ending later than any backoff
    /// does began before the clock stepped back, and is over.
    fn holds_at(&self, now_ms: u64) -> bool {
        now_ms < self.until_ms && !stepped_back(self.until_ms, now_ms.saturating_add(MAX_BACKOFF_MS))
    }
}

/// Whether a time noted at `at` lies ahead of `now_ms`: the clock stepped back since.
fn stepped_back(at: u64, now_ms: u64) -> bool {
    at > now_ms.saturating_add(CLOCK_STEP_MS)
}

/// The pause after `failures` failed fetches in a row: 2 s, doubling, at most 30 s.
fn backoff_ms(failures: u32) -> u64 {
    1000u64.saturating_mul(1 << failures.min(5)).min(MAX_BACKOFF_MS)
}

fn ok_body(outcome: CallOutcome) -> Result<Vec<u8>, FetchError> {
    match outcome {
        CallOutcome::Response { status: 200, body, .. } => Ok(body),
        CallOutcome::Response { status, .. } => Err(FetchError::Status(status)),
        CallOutcome::Failed => Err(FetchError::Unreachable),
    }
}

/// A key document's version: its SHA-256, shortened. Refreshes that fetch the same document
/// keep the version; any change to it, a removed key included, gives a new one.
fn content_version(body: &[u8]) -> u64 {
    let digest = Sha256::digest(body);
    digest.first_chunk::<8>().map_or(0, |bytes| u64::from_le_bytes(*bytes))
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// The default port of an absolute `http(s)` URL's scheme (any letter case), and what follows `://`.
fn split_scheme(url: &str) -> Option<(&'static str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme {
        _ if scheme.eq_ignore_ascii_case("https") => "443",
        _ if scheme.eq_ignore_ascii_case("http") => "80",
        _ => return None,
    };
    Some((default_port, rest))
}

/// The path (and query) of an absolute `http(s)` URL.
pub fn path_of(url: &str) -> Option<String> {
    let (_, rest) = split_scheme(url)?;
    let path = rest.find('/').and_then(|at| rest.get(at..)).unwrap_or("/");
    Some(path.split('#').next().unwrap_or(path).to_owned())
}

/// The host (authority) of an absolute `http(s)` URL, without its scheme's default port: RFC 3986
/// section 6.2.3 makes `https://idp.example:443/` and `https://idp.example/` the same URI.
pub fn authority_of(url: &str) -> Option<String> {
    let (default_port, rest) = split_scheme(url)?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..end).filter(|a| !a.is_empty())?;
    Some(without_port(authority, default_port).to_owned())
}

/// `authority` without a trailing `:port` (`[::1]:443` is `[::1]`; `idp:8443` and `[::443]` stay).
fn without_port<'a>(authority: &'a str, port: &str) -> &'a str {
    match authority.strip_suffix(port).and_then(|a| a.strip_suffix(':')) {
        Some(host) if !host.is_empty() && !host.ends_with(':') => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shared::testkit::{FakeHost, FakeStore, RacingStore};
    use shared::{Headers, MetricRegistry};
    use wasm_bindgen_test::wasm_bindgen_test;

    const T0: u64 = 1_767_225_600_000;
    const TIMEOUT_MS: u64 = 100;
    const REFRESH_MS: u64 = 60_000;
    const MAX_STALE_MS: u64 = 600_000;

    /// The RFC 8037 appendix A.1 Ed25519 public key, as a JWKS.
    fn jwks_body(kid: &str) -> Vec<u8> {
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": kid,
                         "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]})
        .to_string()
        .into_bytes()
    }

    fn spec(discovery: bool) -> RemoteSpec {
        RemoteSpec {
            cluster: "idp".into(),
            authority: "idp.example".into(),
            jwks_path: (!discovery).then(|| "/jwks".to_owned()),
            discovery_path: discovery.then(|| "/.well-known/openid-configuration".to_owned()),
            jwks_cluster: None,
            refresh_secs: REFRESH_MS / 1000,
            max_stale_secs: MAX_STALE_MS / 1000,
            timeout_ms: TIMEOUT_MS,
            store_prefix: "apisec.test.idp".into(),
        }
    }

    fn ok(body: impl Into<Vec<u8>>) -> CallOutcome {
        CallOutcome::Response {
            status: 200,
            headers: Headers::from_pairs([(":status", "200")]),
            body: body.into(),
        }
    }

    fn authority(call: &HttpCall) -> &str {
        call.headers
            .iter()
            .find(|(n, _)| n.as_str() == ":authority")
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .unwrap_or_default()
    }

    /// Discovery with `jwks_cluster`, answered with a document naming `jwks_uri`: the JWKS call.
    fn discover(keys: &RemoteKeys, store: &FakeStore, jwks_uri: &str) -> Result<Option<HttpCall>, FetchError> {
        let (fetch, _) = keys.tick(T0, store).unwrap();
        assert_eq!(fetch, Fetch::Discovery);
        let document = json!({"issuer": "https://login.example", "jwks_uri": jwks_uri}).to_string();
        keys.on_response(Fetch::Discovery, ok(document), T0, store)
    }

    fn oidc(authority: &str, jwks_cluster: Option<&str>) -> RemoteKeys {
        let mut keys = RemoteKeys::new(RemoteSpec {
            authority: authority.into(),
            jwks_cluster: jwks_cluster.map(str::to_owned),
            ..spec(true)
        });
        keys.require_issuer("https://login.example");
        keys
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_jwks_uri_on_the_discovery_host_is_fetched_like_the_discovery_document() {
        for jwks_uri in ["https://login.example/certs", "https://LOGIN.example/certs"] {
            let keys = oidc("keycloak.internal:8080", None);
            let next = discover(&keys, &FakeStore::default(), jwks_uri).unwrap().unwrap();
            assert_eq!(
                (next.cluster.as_str(), authority(&next), path(&next)),
                ("idp", "keycloak.internal:8080", "/certs")
            );
        }
    }

    /// RFC 3986 section 6.2.3: the scheme's default port, written or not, is the same host.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_jwks_uri_with_its_default_port_is_on_the_discovery_host() {
        for (configured, jwks_uri) in [
            ("login.example", "https://login.example:443/certs"),
            ("login.example", "http://login.example:80/certs"),
            ("login.example:443", "https://login.example/certs"),
            ("keycloak.internal:8080", "https://LOGIN.example:443/certs"),
        ] {
            let keys = oidc(configured, None);
            let next = discover(&keys, &FakeStore::default(), jwks_uri).unwrap().unwrap();
            assert_eq!((next.cluster.as_str(), path(&next)), ("idp", "/certs"), "{jwks_uri}");
        }
        // Another port is another host.
        let keys = oidc("login.example", None);
        let store = FakeStore::default();
        assert_eq!(
            discover(&keys, &store, "https://login.example:8443/certs"),
            Err(FetchError::JwksOnAnotherHost)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_jwks_uri_on_another_host_is_fetched_through_its_own_cluster() {
        let jwks_uri = "https://www.keys.example/oauth2/v3/certs";
        let keys = oidc("login.example", Some("key_host"));
        let next = discover(&keys, &FakeStore::default(), jwks_uri).unwrap().unwrap();
        assert_eq!(
            (next.cluster.as_str(), authority(&next), path(&next)),
            ("key_host", "www.keys.example", "/oauth2/v3/certs")
        );
        // Without one, not from the discovery host's cluster under the wrong name: a failure.
        let keys = oidc("login.example", None);
        let store = FakeStore::default();
        assert_eq!(discover(&keys, &store, jwks_uri), Err(FetchError::JwksOnAnotherHost));
        assert!(keys.failing());
    }

    /// The authority a discovery document's `jwks_uri` names for `jwks_cluster`, and its path, go
    /// out as the key fetch's `:authority` and `:path`: held to what a configured one is (no user
    /// info, white space or line break), else the document is malformed.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_discovered_jwks_authority_is_a_host_and_a_port() {
        let at = shared::config::FieldPath::root().field("jwks_uri");
        let mut sent = Vec::new();
        for jwks_uri in [
            "https://user:secret@www.keys.example/certs",
            "https://www.keys.example\r\nx-injected: 1/certs",
            "https://www keys.example/certs",
        ] {
            let keys = oidc("login.example", Some("key_host"));
            if let Ok(Some(next)) = discover(&keys, &FakeStore::default(), jwks_uri) {
                if shared::config::call_authority(authority(&next), &at).is_err() {
                    sent.push(authority(&next).to_owned());
                }
            }
        }
        assert!(sent.is_empty(), "key fetches went out with :authority {sent:?}");
        let keys = oidc("login.example", None);
        let spaced = discover(&keys, &FakeStore::default(), "https://login.example/my certs");
        assert_eq!(
            spaced.err(),
            Some(FetchError::Malformed),
            "a path that is no request target"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_failed_jwks_fetch_reads_discovery_again() {
        let store = FakeStore::default();
        let keys = oidc("login.example", None);
        discover(&keys, &store, "https://login.example/old-keys")
            .unwrap()
            .unwrap();
        let gone = CallOutcome::Response {
            status: 404,
            headers: Headers::new(),
            body: Vec::new(),
        };
        assert_eq!(
            keys.on_response(Fetch::Jwks, gone, T0, &store),
            Err(FetchError::Status(404))
        );
        let (fetch, call) = keys.tick(T0 + 60_000, &store).unwrap();
        assert_eq!(
            (fetch, path(&call)),
            (Fetch::Discovery, "/.well-known/openid-configuration")
        );
    }

    fn path(call: &HttpCall) -> &str {
        call.headers
            .iter()
            .find(|(n, _)| n.as_str() == ":path")
            .map(|(_, v)| std::str::from_utf8(v).unwrap())
            .unwrap()
    }

    /// The kids of the keys `keys` adopted, stale or not.
    fn kids(keys: &RemoteKeys, store: &FakeStore) -> Vec<String> {
        keys.sync(store);
        let jwks = keys.state.borrow().jwks.clone().expect("keys");
        jwks.keys().iter().filter_map(|k| k.kid().map(str::to_owned)).collect()
    }

    /// Ticks `keys` every 0.5 s from `from` until `n` periodic fetches have failed; the time then.
    fn fail_periodic_fetches(keys: &RemoteKeys, store: &FakeStore, from: u64, n: usize) -> u64 {
        let mut now = from;
        let mut failed = 0;
        while failed < n {
            if keys.tick(now, store).is_some() {
                assert!(keys.on_response(Fetch::Jwks, CallOutcome::Failed, now, store).is_err());
                failed += 1;
            }
            now += 500;
        }
        now
    }

    /// Two workers: one that fetched keys `k1`, and one that adopted them from shared data.
    fn two_workers_with_keys(store: &FakeStore) -> (RemoteKeys, RemoteKeys) {
        let fetcher = loaded(store, "k1");
        let other = RemoteKeys::new(spec(false));
        assert_eq!(kids(&other, store), vec!["k1"]);
        (fetcher, other)
    }

    fn counters() -> FetchCounters {
        let mut metrics = MetricRegistry::new("test");
        FetchCounters {
            ok: metrics.counter("ok"),
            failed: metrics.counter("failed"),
        }
    }

    /// A provider with keys `kid`, fetched at `T0`.
    fn loaded(store: &FakeStore, kid: &str) -> RemoteKeys {
        let keys = RemoteKeys::new(spec(false));
        let (fetch, _) = keys.tick(T0, store).unwrap();
        assert_eq!(fetch, Fetch::Jwks);
        assert_eq!(keys.on_response(Fetch::Jwks, ok(jwks_body(kid)), T0, store), Ok(None));
        keys
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_fetch_is_a_get_through_the_cluster_with_the_authority_and_timeout() {
        let store = FakeStore::default();
        let keys = RemoteKeys::new(spec(false));
        assert!(keys.current(&store, T0).is_none());
        let (fetch, call) = keys.tick(T0, &store).unwrap();
        assert_eq!(fetch, Fetch::Jwks);
        assert_eq!(
            call,
            HttpCall {
                cluster: "idp".into(),
                headers: vec![
                    (HeaderName::trusted(":method"), b"GET".to_vec()),
                    (HeaderName::trusted(":path"), b"/jwks".to_vec()),
                    (HeaderName::trusted(":authority"), b"idp.example".to_vec()),
                    (HeaderName::trusted("accept"), b"application/json".to_vec()),
                ],
                body: None,
                timeout: Duration::from_millis(TIMEOUT_MS),
            }
        );
        // One at a time.
        assert!(keys.tick(T0 + 5000, &store).is_none());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn one_worker_fetches_and_the_others_adopt_what_it_stored() {
        let store = FakeStore::default();
        let worker1 = RemoteKeys::new(spec(false));
        let worker2 = RemoteKeys::new(spec(false));
        assert!(worker1.tick(T0, &store).is_some());
        assert!(worker2.tick(T0, &store).is_none(), "the lease is held");
        assert!(worker2.current(&store, T0).is_none());
        assert_eq!(
            worker1.on_response(Fetch::Jwks, ok(jwks_body("k1")), T0 + 50, &store),
            Ok(None)
        );
        assert_eq!(kids(&worker2, &store), vec!["k1"]);
        assert_eq!(
            worker1.current(&store, T0).map(|(_, v)| v),
            worker2.current(&store, T0).map(|(_, v)| v),
            "one version for every worker"
        );
        // Fresh keys: nobody fetches, lease or not.
        assert!(worker2.tick(T0 + 5000, &store).is_none());
        assert!(worker1.tick(T0 + 5000, &store).is_none());
        // Due: the first to tick fetches.
        let due = T0 + 50 + REFRESH_MS;
        assert!(worker1.tick(due - 1, &store).is_none());
        assert!(worker2.tick(due, &store).is_some());
        assert!(worker1.tick(due, &store).is_none());
        // A new document gets a new version everywhere, even within the same millisecond.
        let before = worker1.current(&store, T0).unwrap().1;
        assert_eq!(
            worker2.on_response(Fetch::Jwks, ok(jwks_body("k2")), T0 + 50, &store),
            Ok(None)
        );
        // Worker 1 takes it on its next tick.
        assert!(worker1.tick(T0 + 60, &store).is_none());
        let after = worker1.current(&store, T0).unwrap().1;
        assert_ne!(before, after);
        assert_eq!(kids(&worker1, &store), vec!["k2"]);
    }

    /// jwt-auth keeps verified tokens per key version: a refresh that finds the same document
    /// must not throw them away on every worker; a changed document (a key removed) must.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_refresh_that_finds_the_same_document_keeps_the_version() {
        let store = FakeStore::default();
        let worker1 = RemoteKeys::new(spec(false));
        let worker2 = RemoteKeys::new(spec(false));
        assert!(worker1.tick(T0, &store).is_some());
        assert_eq!(
            worker1.on_response(Fetch::Jwks, ok(jwks_body("k1")), T0, &store),
            Ok(None)
        );
        let version = worker2.current(&store, T0).unwrap().1;
        let due = T0 + REFRESH_MS;
        assert!(worker1.tick(due, &store).is_some());
        assert_eq!(
            worker1.on_response(Fetch::Jwks, ok(jwks_body("k1")), due, &store),
            Ok(None)
        );
        assert!(!worker2.sync(&store), "nothing new to adopt");
        assert_eq!(worker1.current(&store, due).unwrap().1, version);
        assert_eq!(worker2.current(&store, due).unwrap().1, version);
        // The refresh still counts: nobody fetches again until the next one is due.
        assert!(worker2.tick(due + 1, &store).is_none());

        let due = due + REFRESH_MS;
        assert!(worker2.tick(due, &store).is_some());
        assert_eq!(
            worker2.on_response(Fetch::Jwks, ok(jwks_body("k2")), due, &store),
            Ok(None)
        );
        assert!(worker1.sync(&store));
        assert_ne!(worker1.current(&store, due).unwrap().1, version);
        assert_eq!(kids(&worker1, &store), vec!["k2"]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_lease_whose_holder_never_answers_runs_out() {
        let store = FakeStore::default();
        let worker1 = RemoteKeys::new(spec(false));
        let worker2 = RemoteKeys::new(spec(false));
        assert!(worker1.tick(T0, &store).is_some());
        assert!(worker2.tick(T0 + TIMEOUT_MS + 999, &store).is_none());
        assert!(worker2.tick(T0 + TIMEOUT_MS + 1000, &store).is_some());
    }

    /// A request's refetch takes no lease, so when it ends it must not free the lease another
    /// worker holds for its own fetch: that would let a third worker fetch alongside.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_request_refetch_leaves_another_workers_lease_alone() {
        let store = FakeStore::default();
        let [holder, requester, bystander] = [(); 3].map(|()| RemoteKeys::new(spec(false)));
        assert!(holder.tick(T0, &store).is_some());
        let Refetch::Started(fetch, _) = requester.refetch(T0) else {
            panic!("a worker without keys refetches for a request");
        };
        assert_eq!(
            requester.on_response(fetch, CallOutcome::Failed, T0 + 10, &store),
            Err(FetchError::Unreachable)
        );
        assert!(
            bystander.tick(T0 + 20, &store).is_none(),
            "the holder's lease is still held"
        );
        assert_eq!(
            holder.on_response(Fetch::Jwks, CallOutcome::Failed, T0 + 30, &store),
            Err(FetchError::Unreachable)
        );
        assert!(
            bystander.tick(T0 + 40, &store).is_none(),
            "the holder failed: every worker waits its backoff out"
        );
        assert!(
            bystander.tick(T0 + 30 + 2_000, &store).is_some(),
            "then the lease is free"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn failures_say_why_and_keep_the_last_good_keys() {
        let store = FakeStore::default();
        let keys = loaded(&store, "k1");
        let cases = [
            (
                CallOutcome::Response {
                    status: 503,
                    headers: Headers::new(),
                    body: jwks_body("k2"),
                },
                FetchError::Status(503),
            ),
            (CallOutcome::Failed, FetchError::Unreachable),
            (ok("<html>"), FetchError::Malformed),
            (ok(r#"{"keys": {}}"#), FetchError::Malformed),
            (ok(r#"[]"#), FetchError::Malformed),
        ];
        for (outcome, error) in cases {
            assert_eq!(keys.on_response(Fetch::Jwks, outcome, T0, &store), Err(error));
            assert_eq!(kids(&keys, &store), vec!["k1"]);
        }
    }

    /// An IdP that withdraws every key (or keeps only kinds this filter cannot use) is believed:
    /// the keys it removed are not trusted on.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_well_formed_set_without_usable_keys_replaces_the_last_one() {
        for body in [r#"{"keys": []}"#, r#"{"keys": [{"kty": "oct", "k": "AAAA"}]}"#] {
            let store = FakeStore::default();
            let keys = loaded(&store, "k1");
            let worker2 = RemoteKeys::new(spec(false));
            assert_eq!(kids(&worker2, &store), vec!["k1"]);
            let (_, version) = keys.current(&store, T0).unwrap();
            assert_eq!(
                keys.on_response(Fetch::Jwks, ok(body), T0 + 1, &store),
                Ok(None),
                "{body}"
            );
            assert!(!keys.failing(), "{body}");
            assert_eq!(kids(&keys, &store), Vec::<String>::new(), "{body}");
            assert_ne!(keys.current(&store, T0).unwrap().1, version, "{body}");
            assert!(worker2.sync(&store), "{body}: the other workers take it too");
            assert_eq!(kids(&worker2, &store), Vec::<String>::new(), "{body}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn failing_fetches_back_off_exponentially_up_to_30_seconds() {
        let store = FakeStore::default();
        let keys = RemoteKeys::new(RemoteSpec {
            // The lease (timeout + 1 s) stays shorter than the first backoff.
            timeout_ms: 0,
            ..spec(false)
        });
        let mut now = T0;
        for backoff in [2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000] {
            assert!(keys.tick(now, &store).is_some(), "retry at +{}", now - T0);
            assert_eq!(
                keys.on_response(Fetch::Jwks, CallOutcome::Failed, now, &store),
                Err(FetchError::Unreachable)
            );
            assert!(keys.tick(now + backoff - 1, &store).is_none(), "backoff {backoff}");
            now += backoff;
        }
        // A success resets it.
        assert!(keys.tick(now, &store).is_some());
        assert_eq!(
            keys.on_response(Fetch::Jwks, ok(jwks_body("k1")), now, &store),
            Ok(None)
        );
        now += REFRESH_MS;
        assert!(keys.tick(now, &store).is_some());
        assert!(keys.on_response(Fetch::Jwks, CallOutcome::Failed, now, &store).is_err());
        assert!(keys.tick(now + 1_999, &store).is_none());
        assert!(keys.tick(now + 2_000, &store).is_some());
    }

    /// The backoff is the IdP's, not one worker's: with four workers, a failing IdP is asked once
    /// per backoff, not by each worker on its next tick.
    #[wasm_bindgen_test(unsupported = test)]
    fn every_worker_waits_out_the_backoff_of_a_failed_fetch() {
        let store = FakeStore::default();
        let workers: Vec<RemoteKeys> = (0..4).map(|_| RemoteKeys::new(spec(false))).collect();
        let mut fetches_at = Vec::new();
        let mut now = T0;
        while now < T0 + 2_000 + 4_000 + 8_000 {
            for worker in &workers {
                if worker.tick(now, &store).is_some() {
                    fetches_at.push(now - T0);
                    let _ = worker.on_response(Fetch::Jwks, CallOutcome::Failed, now, &store);
                }
            }
            now += 500;
        }
        assert_eq!(fetches_at, vec![0, 2_000, 6_000]);
    }

    /// After the clock steps back, a worker's own backoff and its request-refetch rate limit,
    /// noted on the old clock, do not hold for the length of the step.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_clock_that_steps_back_does_not_stretch_a_workers_own_deadlines() {
        let store = FakeStore::default();
        let keys = loaded(&store, "k1");
        let due = T0 + REFRESH_MS;
        assert!(keys.tick(due, &store).is_some());
        assert!(keys.on_response(Fetch::Jwks, CallOutcome::Failed, due, &store).is_err());
        let back = due - 3_600_000;
        assert!(keys.tick(back, &store).is_some(), "the backoff began on the old clock");
        assert!(keys.on_response(Fetch::Jwks, ok(jwks_body("k1")), back, &store).is_ok());

        let store = FakeStore::default();
        let keys = loaded(&store, "k1");
        let t = T0 + 1000;
        assert!(matches!(keys.refetch(t), Refetch::Started(..)));
        assert_eq!(
            keys.on_response(Fetch::Jwks, ok(jwks_body("k1")), t + 50, &store),
            Ok(None)
        );
        assert!(
            matches!(keys.refetch(t - 3_600_000), Refetch::Started(..)),
            "the last refetch was noted on the old clock"
        );
    }

    /// Keys fetched before the clock stepped back are of an age nobody knows: not used until a
    /// fetch succeeds (it is due at once), so an outage after the step does not stretch
    /// `max_stale_secs` by the step.
    #[wasm_bindgen_test(unsupported = test)]
    fn keys_fetched_before_the_clock_stepped_back_wait_for_a_fetch() {
        let store = FakeStore::default();
        let keys = loaded(&store, "k1");
        let back = T0 - 3_600_000;
        assert!(
            keys.current(&store, T0 - 1_000).is_some(),
            "within a second: the same reading"
        );
        assert!(keys.current(&store, back).is_none());
        assert!(keys.tick(back, &store).is_some(), "due at once");
        assert_eq!(
            keys.on_response(Fetch::Jwks, ok(jwks_body("k1")), back, &store),
            Ok(None)
        );
        assert!(keys.current(&store, back).is_some());
    }

    /// An outage a request's refetch saw the end of is over for the periodic fetch's backoff too:
    /// the next failure waits 2 s, not the 30 s of the failures before.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_request_refetch_that_succeeds_ends_the_shared_backoff() {
        let store = FakeStore::default();
        let (keys, other) = two_workers_with_keys(&store);
        let mut now = fail_periodic_fetches(&keys, &store, T0 + REFRESH_MS, 5);
        now += 1_000;
        assert!(matches!(keys.refetch(now), Refetch::Started(..)));
        assert_eq!(
            keys.on_response(Fetch::Jwks, ok(jwks_body("k2")), now, &store),
            Ok(None)
        );
        assert!(other.tick(now, &store).is_none());
        assert!(!keys.failing() && !other.failing());
        let due = now + REFRESH_MS;
        assert!(other.tick(due, &store).is_some());
        assert!(other
            .on_response(Fetch::Jwks, CallOutcome::Failed, due, &store)
            .is_err());
        assert!(keys.tick(due + 1_999, &store).is_none());
        assert!(keys.tick(due + 2_000, &store).is_some());
    }

    /// Two workers that both read "no lease yet" cannot both take it: the second write finds the
    /// key the first created.
    #[wasm_bindgen_test(unsupported = test)]
    fn two_workers_cannot_both_take_the_first_lease() {
        let store = FakeStore::default();
        let worker1 = RemoteKeys::new(spec(false));
        let worker2 = RemoteKeys::new(spec(false));
        let worker2_fetched = std::cell::Cell::new(false);
        let racing = RacingStore::new(&store, ".lease", |store: &FakeStore| {
            worker2_fetched.set(worker2.tick(T0, store).is_some());
        });
        let worker1_fetched = worker1.tick(T0, &racing).is_some();
        assert!(worker2_fetched.get(), "worker 2 took the lease first");
        assert!(!worker1_fetched, "both fetch");
    }

    /// The lease keeps the 8-byte form earlier releases read, so a VM of one still sees it held
    /// while both serve during an upgrade; a longer value is read by its first 8 bytes.
    #[wasm_bindgen_test(unsupported = test)]
    fn the_lease_keeps_its_form() {
        let store = FakeStore::default();
        let keys = RemoteKeys::new(spec(false));
        assert!(keys.tick(T0, &store).is_some());
        let (lease, _) = store.get("apisec.test.idp.lease").expect("a lease");
        assert_eq!(read_u64(&lease), Some(T0 + TIMEOUT_MS + 1_000));
        let mut longer = lease;
        longer.extend_from_slice(&[0; 4]);
        let store = FakeStore::default();
        store.set("apisec.test.idp.lease", &longer, None).unwrap();
        assert!(RemoteKeys::new(spec(false)).tick(T0 + 1, &store).is_none(), "held");
    }

    /// With `oidc`, a discovery document that answers while the JWKS fetch fails is a failed
    /// fetch like any other: the shared backoff doubles, and the outage is not over for the other
    /// workers before a JWKS came.
    #[wasm_bindgen_test(unsupported = test)]
    fn an_answered_discovery_is_not_a_fetch_that_got_keys() {
        let store = FakeStore::default();
        let workers: Vec<RemoteKeys> = (0..4).map(|_| oidc("login.example", None)).collect();
        let document = json!({"issuer": "https://login.example", "jwks_uri": "https://login.example/certs"});
        let mut fetches_at = Vec::new();
        let mut now = T0;
        while now < T0 + 2_000 + 4_000 + 8_000 {
            for worker in &workers {
                if worker.tick(now, &store).is_some() {
                    fetches_at.push(now - T0);
                    let next = worker.on_response(Fetch::Discovery, ok(document.to_string()), now, &store);
                    assert!(matches!(next, Ok(Some(_))));
                    assert!(workers
                        .iter()
                        .all(|w| w.tick(now, &store).is_none() && (now == T0 || w.failing())));
                    assert!(worker
                        .on_response(Fetch::Jwks, CallOutcome::Failed, now, &store)
                        .is_err());
                }
            }
            now += 500;
        }
        assert_eq!(fetches_at, vec![0, 2_000, 6_000]);
    }

    /// With `oidc` one fetch is two calls, each up to `timeout_ms`: the lease covers the JWKS
    /// call that follows discovery, so no second worker fetches alongside.
    #[wasm_bindgen_test(unsupported = test)]
    fn the_lease_covers_discovery_and_the_jwks_fetch_that_follows() {
        let store = FakeStore::default();
        let (holder, other) = (oidc("login.example", None), oidc("login.example", None));
        assert!(holder.tick(T0, &store).is_some());
        let document = json!({"issuer": "https://login.example", "jwks_uri": "https://login.example/certs"});
        let discovered_at = T0 + TIMEOUT_MS + 900;
        let next = holder.on_response(Fetch::Discovery, ok(document.to_string()), discovered_at, &store);
        assert!(matches!(next, Ok(Some(_))));
        assert!(other.tick(discovered_at + TIMEOUT_MS + 999, &store).is_none());
        assert!(
            other.tick(discovered_at + TIMEOUT_MS + 1_000, &store).is_some(),
            "then it runs out"
        );
    }

    /// A host that refuses shared-data writes: the lease cannot be taken, and each worker then
    /// refreshes on its own rather than never.
    #[wasm_bindgen_test(unsupported = test)]
    fn refused_writes_do_not_stop_the_periodic_refresh() {
        let store = FakeStore::default();
        let keys = loaded(&store, "k1");
        store.fail_writes(true);
        assert!(keys.tick(T0 + REFRESH_MS, &store).is_some());
    }

    /// A request refetch that gets keys ends the shared backoff, its deadline too: with a short
    /// `refresh_secs`, the next refresh does not wait out the 30 s of the failures before.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_request_refetch_that_succeeds_ends_the_backoff_deadline() {
        let store = FakeStore::default();
        let keys = RemoteKeys::new(RemoteSpec {
            refresh_secs: 1,
            ..spec(false)
        });
        assert!(keys.tick(T0, &store).is_some());
        assert_eq!(keys.on_response(Fetch::Jwks, ok(jwks_body("k1")), T0, &store), Ok(None));
        let now = fail_periodic_fetches(&keys, &store, T0 + 1_000, 5);
        assert!(matches!(keys.refetch(now), Refetch::Started(..)));
        assert_eq!(
            keys.on_response(Fetch::Jwks, ok(jwks_body("k2")), now, &store),
            Ok(None)
        );
        assert!(keys.tick(now + 1_000, &store).is_some());
    }

    /// A failed periodic fetch writes its backoff before it frees the lease, and a tick reads
    /// the backoff after the lease: no worker fetches again in between, on either side.
    #[wasm_bindgen_test(unsupported = test)]
    fn no_worker_fetches_between_a_failed_fetch_and_its_backoff() {
        let store = FakeStore::default();
        let (holder, other) = two_workers_with_keys(&store);
        let due = T0 + REFRESH_MS;
        assert!(holder.tick(due, &store).is_some());
        // The other worker ticks right after the holder's first write of the lease or the
        // backoff: the backoff is written by then.
        let other_fetched = std::cell::Cell::new(false);
        let lease_or_backoff = |key: &str| key.ends_with(".lease") || key.ends_with(".failures");
        let racing = RacingStore::after_write(&store, 1, lease_or_backoff, |store: &FakeStore| {
            other_fetched.set(other.tick(due + 10, store).is_some());
        });
        assert!(holder
            .on_response(Fetch::Jwks, CallOutcome::Failed, due + 10, &racing)
            .is_err());
        assert!(!other_fetched.get(), "the writer's side");

        // The failure lands right after the reader's first read of the lease or the backoff in
        // `take_lease` (its tick read the backoff once before).
        let store = FakeStore::default();
        let (holder, other) = two_workers_with_keys(&store);
        assert!(holder.tick(due, &store).is_some());
        let lease_or_backoff = |key: &str| key.ends_with(".lease") || key.ends_with(".failures");
        let racing = RacingStore::after_read(&store, 2, lease_or_backoff, |store: &FakeStore| {
            assert!(holder
                .on_response(Fetch::Jwks, CallOutcome::Failed, due + 10, store)
                .is_err());
        });
        assert!(other.tick(due + 10, &racing).is_none(), "the reader's side");
    }

    /// A worker whose clock reading is a moment behind another's still sees that worker's
    /// deadlines at their longest (a 30 s backoff, the lease of a minute's timeout) as held.
    #[wasm_bindgen_test(unsupported = test)]
    fn deadlines_at_their_longest_hold_for_a_worker_a_moment_behind() {
        let store = FakeStore::default();
        let (holder, other) = two_workers_with_keys(&store);
        store
            .set(
                "apisec.test.idp.failures",
                &Backoff {
                    failures: 5,
                    until_ms: 0,
                }
                .bytes(),
                None,
            )
            .unwrap();
        let due = T0 + REFRESH_MS;
        assert!(holder.tick(due, &store).is_some());
        let racing = RacingStore::new(&store, ".failures", |store: &FakeStore| {
            assert!(holder
                .on_response(Fetch::Jwks, CallOutcome::Failed, due + 11, store)
                .is_err());
        });
        assert!(other.tick(due + 10, &racing).is_none(), "the 30 s backoff");

        let store = FakeStore::default();
        let slow = || {
            RemoteKeys::new(RemoteSpec {
                timeout_ms: shared::config::MAX_TIMEOUT_MS,
                ..spec(false)
            })
        };
        let (holder, other) = (slow(), slow());
        let holder_fetched = std::cell::Cell::new(false);
        let racing = RacingStore::new(&store, ".failures", |store: &FakeStore| {
            holder_fetched.set(holder.tick(T0 + 1, store).is_some());
        });
        let other_fetched = other.tick(T0, &racing).is_some();
        assert!(holder_fetched.get(), "the holder took the lease");
        assert!(!other_fetched, "the lease of a minute's timeout");
    }

    /// Nor does a worker fetch again keys another one got between its tick's reads.
    #[wasm_bindgen_test(unsupported = test)]
    fn no_worker_fetches_again_right_after_another_workers_refresh() {
        let store = FakeStore::default();
        let (holder, other) = two_workers_with_keys(&store);
        let due = T0 + REFRESH_MS;
        assert!(holder.tick(due, &store).is_some());
        let racing = RacingStore::new(&store, ".failures", |store: &FakeStore| {
            assert_eq!(
                holder.on_response(Fetch::Jwks, ok(jwks_body("k1")), due + 10, store),
                Ok(None)
            );
        });
        assert!(other.tick(due + 10, &racing).is_none());
    }

    /// Configs that fetch from the same place with other timeouts share a lease (a config change
    /// draining): a longer one's lease still holds for a worker with a shorter timeout, as does
    /// an earlier release's lease held through its backoff.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_lease_taken_for_longer_than_this_worker_would_still_holds() {
        let store = FakeStore::default();
        let slow = RemoteKeys::new(RemoteSpec {
            timeout_ms: 5_000,
            ..spec(false)
        });
        assert!(slow.tick(T0, &store).is_some());
        assert!(RemoteKeys::new(spec(false)).tick(T0 + 500, &store).is_none());

        let store = FakeStore::default();
        store
            .set("apisec.test.idp.failures", &4u32.to_le_bytes(), None)
            .unwrap();
        store
            .set("apisec.test.idp.lease", &(T0 + 16_000).to_le_bytes(), None)
            .unwrap();
        assert!(RemoteKeys::new(spec(false)).tick(T0 + 500, &store).is_none());
    }

    /// Keys another worker fetched after this one's failed fetch end this worker's outage: an
    /// unknown `kid` is then a bad token (401), not a 503.
    #[wasm_bindgen_test(unsupported = test)]
    fn keys_fetched_after_a_workers_failure_end_its_outage() {
        let store = FakeStore::default();
        let (keys, other) = two_workers_with_keys(&store);
        assert!(matches!(keys.refetch(T0 + 1_000), Refetch::Started(..)));
        assert!(keys
            .on_response(Fetch::Jwks, CallOutcome::Failed, T0 + 1_100, &store)
            .is_err());
        assert!(keys.failing());
        assert!(matches!(other.refetch(T0 + 2_000), Refetch::Started(..)));
        assert_eq!(
            other.on_response(Fetch::Jwks, ok(jwks_body("k2")), T0 + 2_000, &store),
            Ok(None)
        );
        assert!(keys.tick(T0 + 2_500, &store).is_none());
        assert_eq!(kids(&keys, &store), vec!["k2"]);
        assert!(!keys.failing());
    }

    /// Another worker's failed periodic fetch tells this one, on its next tick, that the IdP
    /// cannot be asked: an unknown `kid` here is then an outage (503), not a bad token.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_failed_fetch_on_one_worker_is_an_outage_on_every_worker() {
        let store = FakeStore::default();
        let (fetcher, other) = two_workers_with_keys(&store);
        assert!(!other.failing());
        let later = T0 + REFRESH_MS;
        assert!(fetcher.tick(later, &store).is_some());
        assert!(fetcher
            .on_response(Fetch::Jwks, CallOutcome::Failed, later, &store)
            .is_err());
        assert!(other.tick(later + 1, &store).is_none(), "backing off");
        assert!(other.failing());
        // Until a fetch succeeds again.
        let again = later + 2_000;
        assert!(other.tick(again, &store).is_some());
        assert_eq!(
            other.on_response(Fetch::Jwks, ok(jwks_body("k1")), again, &store),
            Ok(None)
        );
        assert!(!other.failing());
    }

    /// Past `max_stale_secs` since the fetch that got them, keys whose refreshes keep failing are
    /// not used: a key the IdP removed meanwhile is not trusted on without bound.
    #[wasm_bindgen_test(unsupported = test)]
    fn keys_older_than_max_stale_are_not_used() {
        let store = FakeStore::default();
        let keys = loaded(&store, "k1");
        let worker2 = RemoteKeys::new(spec(false));
        let mut now = T0 + 1;
        while now <= T0 + MAX_STALE_MS {
            if keys.tick(now, &store).is_some() {
                let _ = keys.on_response(Fetch::Jwks, CallOutcome::Failed, now, &store);
            }
            now += 500;
        }
        assert!(
            keys.current(&store, T0 + MAX_STALE_MS).is_some(),
            "still within max_stale_secs"
        );
        assert!(keys.current(&store, T0 + MAX_STALE_MS + 1).is_none());
        assert!(
            worker2.current(&store, T0 + MAX_STALE_MS + 1).is_none(),
            "on every worker"
        );
        // A fetch that succeeds again brings them back.
        let later = T0 + MAX_STALE_MS + 30_000;
        assert!(keys.tick(later, &store).is_some());
        assert_eq!(
            keys.on_response(Fetch::Jwks, ok(jwks_body("k2")), later, &store),
            Ok(None)
        );
        assert!(worker2.current(&store, later).is_some());
        assert_eq!(kids(&worker2, &store), vec!["k2"]);
    }

    /// The fetch time is the host's wall clock: after it steps back an hour, keys are refreshed
    /// at once and then at their pace, and a lease taken before the step does not block fetches
    /// for that hour.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_clock_that_steps_back_does_not_stop_refreshes() {
        let store = FakeStore::default();
        let (keys, other) = two_workers_with_keys(&store);
        // A fetch in flight (its lease taken) when the clock steps back.
        assert!(keys.tick(T0 + REFRESH_MS, &store).is_some());
        let back = T0 + REFRESH_MS - 3_600_000;
        assert!(other.tick(back, &store).is_some(), "refreshed at once");
        assert_eq!(
            other.on_response(Fetch::Jwks, ok(jwks_body("k1")), back, &store),
            Ok(None)
        );
        assert!(other.tick(back + REFRESH_MS - 1, &store).is_none());
        assert!(other.tick(back + REFRESH_MS, &store).is_some(), "then at its pace");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn discovery_finds_the_jwks_path_once() {
        let store = FakeStore::default();
        let keys = RemoteKeys::new(spec(true));
        let (fetch, call) = keys.tick(T0, &store).unwrap();
        assert_eq!(fetch, Fetch::Discovery);
        assert_eq!(path(&call), "/.well-known/openid-configuration");
        let document = json!({"jwks_uri": "https://idp.example/oauth2/v1/keys"}).to_string();
        let next = keys
            .on_response(Fetch::Discovery, ok(document), T0, &store)
            .unwrap()
            .unwrap();
        assert_eq!(path(&next), "/oauth2/v1/keys");
        assert_eq!(next.cluster, "idp");
        assert!(keys.tick(T0 + 5000, &store).is_none(), "the JWKS fetch is in flight");
        assert_eq!(keys.on_response(Fetch::Jwks, ok(jwks_body("k1")), T0, &store), Ok(None));
        let (fetch, call) = keys.tick(T0 + REFRESH_MS, &store).unwrap();
        assert_eq!(fetch, Fetch::Jwks);
        assert_eq!(path(&call), "/oauth2/v1/keys");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_bad_discovery_answer_is_a_failure_and_discovery_is_retried() {
        let cases = [
            (CallOutcome::Failed, FetchError::Unreachable),
            (
                CallOutcome::Response {
                    status: 404,
                    headers: Headers::new(),
                    body: Vec::new(),
                },
                FetchError::Status(404),
            ),
            (ok("{"), FetchError::Malformed),
            (ok(r#"{"issuer": "https://idp.example"}"#), FetchError::Malformed),
            (
                ok(r#"{"jwks_uri": ["https://idp.example/keys"]}"#),
                FetchError::Malformed,
            ),
            (ok(r#"{"jwks_uri": "/keys"}"#), FetchError::Malformed),
        ];
        for (outcome, error) in cases {
            let store = FakeStore::default();
            let keys = RemoteKeys::new(spec(true));
            keys.tick(T0, &store).unwrap();
            assert_eq!(keys.on_response(Fetch::Discovery, outcome, T0, &store), Err(error));
            assert!(keys.tick(T0 + 1_999, &store).is_none());
            let (fetch, _) = keys.tick(T0 + 2_000, &store).unwrap();
            assert_eq!(fetch, Fetch::Discovery);
        }
    }

    /// OpenID Connect Discovery 1.0 section 4.3: the document's `issuer` must be the configured
    /// issuer, exactly; otherwise the document is not used.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_discovery_document_for_another_issuer_is_a_failed_fetch() {
        let issuer = "https://idp.example/realms/a";
        let jwks_uri = "https://idp.example/realms/a/keys";
        let bad = [
            json!({"issuer": "https://evil.example/realms/a", "jwks_uri": jwks_uri}),
            json!({"issuer": "https://idp.example/realms/a/", "jwks_uri": jwks_uri}),
            json!({"issuer": "https://IDP.example/realms/a", "jwks_uri": jwks_uri}),
            json!({"issuer": ["https://idp.example/realms/a"], "jwks_uri": jwks_uri}),
            json!({"jwks_uri": jwks_uri}),
        ];
        for document in bad {
            let store = FakeStore::default();
            let mut keys = RemoteKeys::new(spec(true));
            keys.require_issuer(issuer);
            keys.tick(T0, &store).unwrap();
            assert_eq!(
                keys.on_response(Fetch::Discovery, ok(document.to_string()), T0, &store),
                Err(FetchError::WrongIssuer),
                "{document}"
            );
            assert!(keys.current(&store, T0).is_none());
            assert!(keys.failing());
            assert!(keys.tick(T0 + 1_999, &store).is_none());
            let (fetch, _) = keys.tick(T0 + 2_000, &store).unwrap();
            assert_eq!(fetch, Fetch::Discovery, "{document}: discovery again");
        }
        let store = FakeStore::default();
        let mut keys = RemoteKeys::new(spec(true));
        keys.require_issuer(issuer);
        keys.tick(T0, &store).unwrap();
        let document = json!({"issuer": issuer, "jwks_uri": jwks_uri}).to_string();
        let next = keys.on_response(Fetch::Discovery, ok(document), T0, &store);
        assert_eq!(
            next.map(|call| call.map(|c| path(&c).to_owned())),
            Ok(Some("/realms/a/keys".to_owned()))
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn unknown_kid_refetches_are_single_flight_and_rate_limited() {
        let store = FakeStore::default();
        let keys = loaded(&store, "k1");
        let t = T0 + 1000;
        let Refetch::Started(Fetch::Jwks, call) = keys.refetch(t) else {
            panic!("no refetch")
        };
        assert_eq!(path(&call), "/jwks");
        assert!(matches!(keys.refetch(t + 1), Refetch::InFlight(_)));
        assert!(
            keys.tick(T0 + REFRESH_MS, &store).is_none(),
            "no periodic fetch meanwhile"
        );
        assert_eq!(
            keys.on_response(Fetch::Jwks, ok(jwks_body("k2")), t + 50, &store),
            Ok(None)
        );
        assert_eq!(kids(&keys, &store), vec!["k2"]);
        assert!(matches!(keys.refetch(t + 9_999), Refetch::RateLimited));
        assert!(matches!(keys.refetch(t + 10_000), Refetch::Started(..)));
        // The request that started it went away: the fetch is no longer in flight, and as it
        // never completed, it does not use the rate limit up.
        keys.abandon();
        assert!(matches!(keys.refetch(t + 10_001), Refetch::Started(..)));
        keys.abandon();
        assert!(keys.tick(t + 50 + REFRESH_MS, &store).is_some());
    }

    /// A client that sends a made-up `kid` and hangs up must not keep a genuinely rotated key out
    /// for the rate limit's 10 s.
    #[wasm_bindgen_test(unsupported = test)]
    fn an_abandoned_refetch_gives_its_rate_limit_window_back() {
        let store = FakeStore::default();
        let keys = loaded(&store, "k1");
        let t = T0 + 1000;
        assert!(matches!(keys.refetch(t), Refetch::Started(..)));
        keys.abandon();
        let Refetch::Started(Fetch::Jwks, call) = keys.refetch(t + 1) else {
            panic!("the abandoned refetch still counts against the rate limit")
        };
        assert_eq!(path(&call), "/jwks");
        assert_eq!(
            keys.on_response(Fetch::Jwks, ok(jwks_body("k2")), t + 50, &store),
            Ok(None)
        );
        assert_eq!(kids(&keys, &store), vec!["k2"]);
        // A completed refetch does use the window up.
        assert!(matches!(keys.refetch(t + 9_999), Refetch::RateLimited));
        assert!(matches!(keys.refetch(t + 10_001), Refetch::Started(..)));
    }

    /// Clients that hang up in a loop: two abandoned refetches per 10 s give their window back;
    /// the third uses it up, and the periodic fetch, which no client can cancel, runs at once.
    /// At most four fetches per 10 s on a worker, however often clients hang up.
    #[wasm_bindgen_test(unsupported = test)]
    fn refetches_abandoned_in_a_loop_are_bounded_and_the_periodic_fetch_catches_up() {
        let store = FakeStore::default();
        let keys = loaded(&store, "k1");
        let t = T0 + 1000;
        let mut fetches = 0;
        for at in t..t + 10_000 {
            if let Refetch::Started(..) = keys.refetch(at) {
                fetches += 1;
                keys.abandon();
            }
            if keys.tick(at, &store).is_some() {
                fetches += 1;
                // While the periodic fetch is in flight, unknown kids wait for it.
                assert!(matches!(keys.refetch(at), Refetch::InFlight(_)));
                assert_eq!(
                    keys.on_response(Fetch::Jwks, ok(jwks_body("k2")), at + 10, &store),
                    Ok(None)
                );
            }
        }
        assert_eq!(fetches, 4, "three refetches and one catch-up fetch");
        assert_eq!(kids(&keys, &store), vec!["k2"]);
        // The catch-up done, the keys are fresh again: no periodic fetch until it is due.
        assert!(keys.tick(t + 10_001, &store).is_none());
        // The window over, the budget is back.
        assert!(matches!(keys.refetch(t + 10_002), Refetch::Started(..)));
        keys.abandon();
        assert!(matches!(keys.refetch(t + 10_003), Refetch::Started(..)));
    }

    /// Only a request refetch can be abandoned: a periodic fetch stays in flight.
    #[wasm_bindgen_test(unsupported = test)]
    fn abandon_without_a_request_refetch_changes_nothing() {
        let store = FakeStore::default();
        let keys = loaded(&store, "k1");
        keys.abandon();
        assert!(keys.tick(T0 + REFRESH_MS, &store).is_some());
        keys.abandon();
        assert!(matches!(keys.refetch(T0 + REFRESH_MS + 1), Refetch::InFlight(_)));
        assert!(keys.tick(T0 + REFRESH_MS + 5_000, &store).is_none());
    }

    /// A request that finds no keys yet fetches them: with OIDC, the discovery document first,
    /// then the JWKS it names, for the same request.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_request_without_keys_fetches_them_through_discovery() {
        let host = FakeHost::default();
        let (store, ctx) = (&host.store, host.ctx());
        let keys = RemoteKeys::new(spec(true));
        let Refetch::Started(Fetch::Discovery, call) = keys.refetch(T0) else {
            panic!("no discovery")
        };
        assert_eq!(path(&call), "/.well-known/openid-configuration");
        assert!(keys.tick(T0, store).is_none(), "the periodic fetch waits for it");
        let document = json!({"jwks_uri": "https://idp.example/keys"}).to_string();
        let Refetched::Next(Fetch::Jwks, call) = keys.answer_refetch(Fetch::Discovery, ok(document), &ctx, counters())
        else {
            panic!("no JWKS fetch")
        };
        assert_eq!(path(&call), "/keys");
        assert!(matches!(keys.refetch(T0 + 1), Refetch::InFlight(_)));
        let Refetched::Ended(counter) = keys.answer_refetch(Fetch::Jwks, ok(jwks_body("k1")), &ctx, counters()) else {
            panic!("not over")
        };
        assert_eq!(counter, counters().ok);
        assert_eq!(kids(&keys, store), vec!["k1"]);
    }

    /// Requests waiting on a fetch learn whether it ended, or its leader went away unanswered.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_waiter_tells_an_ended_fetch_from_an_abandoned_one() {
        let host = FakeHost::default();
        let keys = RemoteKeys::new(spec(false));
        assert!(matches!(keys.refetch(T0), Refetch::Started(..)));
        let Refetch::InFlight(ticket) = keys.refetch(T0) else {
            panic!("not in flight")
        };
        keys.abandon();
        assert!(keys.abandoned(ticket));
        assert!(
            matches!(keys.refetch(T0 + 1), Refetch::Started(..)),
            "the window is given back"
        );
        let Refetch::InFlight(ticket) = keys.refetch(T0 + 1) else {
            panic!("not in flight")
        };
        let _ = keys.answer_refetch(Fetch::Jwks, CallOutcome::Failed, &host.ctx(), counters());
        assert!(!keys.abandoned(ticket));
        assert!(keys.failing());
        assert!(matches!(keys.refetch(T0 + 2), Refetch::RateLimited));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn urls_split_into_authority_and_path() {
        assert_eq!(authority_of("https://idp.example/realms/a"), Some("idp.example".into()));
        assert_eq!(
            authority_of("http://idp.example:8080?x"),
            Some("idp.example:8080".into())
        );
        assert_eq!(authority_of("https://"), None);
        assert_eq!(authority_of("idp.example"), None);
        // The scheme's default port is the same URI (RFC 3986 section 6.2.3); the scheme is
        // case-insensitive.
        assert_eq!(authority_of("https://idp.example:443/a"), Some("idp.example".into()));
        assert_eq!(authority_of("HTTP://idp.example:80"), Some("idp.example".into()));
        assert_eq!(
            authority_of("https://[2001:db8::1]:443/a"),
            Some("[2001:db8::1]".into())
        );
        for kept in [
            "http://idp.example:443",
            "https://idp.example:8443",
            "https://[::443]",
            "https://idp.example:",
        ] {
            assert_eq!(
                authority_of(kept),
                kept.split_once("://").map(|(_, a)| a.to_owned()),
                "{kept}"
            );
        }
        assert_eq!(path_of("HTTPS://idp.example/a"), Some("/a".into()));
        assert_eq!(path_of("https://idp.example"), Some("/".into()));
        assert_eq!(path_of("https://idp.example/a/b?c=d#e"), Some("/a/b?c=d".into()));
        assert_eq!(path_of("ftp://idp.example/a"), None);
    }
}
