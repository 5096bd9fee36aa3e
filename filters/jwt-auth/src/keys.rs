//! Where a provider's keys come from, and how remote keys stay fresh.
//!
//! Remote keys are fetched by one worker at a time (a lease in shared data), stored in shared
//! data for every worker, and parsed once per version by each. A failed fetch keeps the last
//! good keys and retries with backoff; until keys were ever obtained, requests get 503.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use jose::Jwks;
use shared::{CallOutcome, HeaderName, HttpCall, SharedStore};

/// Longest pause between retries of a failing fetch.
const MAX_BACKOFF_MS: u64 = 30_000;
/// A provider refetches for an unknown `kid` at most this often.
const UNKNOWN_KID_REFETCH_MS: u64 = 10_000;

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
    refresh_ms: u64,
    timeout: Duration,
    /// Shared-data keys: the document, its fetch time (written last), and the fetch lease.
    body_key: String,
    stamp_key: String,
    lease_key: String,
    state: RefCell<KeyState>,
}

#[derive(Default)]
struct KeyState {
    jwks: Option<Rc<Jwks>>,
    /// Fetch time (ms) of the adopted document; 0: none yet.
    stamp: u64,
    jwks_path: Option<String>,
    in_flight: bool,
    next_attempt_ms: u64,
    failures: u32,
    last_forced_ms: Option<u64>,
}

/// What a request with an unknown `kid` can do.
pub enum Refetch {
    Started(HttpCall),
    InFlight,
    RateLimited,
}

/// Why a fetch did not produce keys.
#[derive(Debug, PartialEq, Eq)]
pub enum FetchError {
    Unreachable,
    Status(u16),
    Malformed,
    NoUsableKeys,
}

pub struct RemoteSpec {
    pub cluster: String,
    pub authority: String,
    /// `Some(path)` for a JWKS URL, `None` for OIDC discovery at `discovery_path`.
    pub jwks_path: Option<String>,
    pub discovery_path: Option<String>,
    pub refresh_secs: u64,
    pub timeout_ms: u64,
    /// Distinguishes this provider's shared data from every other plugin's.
    pub store_id: String,
}

impl RemoteKeys {
    pub fn new(spec: RemoteSpec) -> Self {
        Self {
            cluster: spec.cluster,
            authority: spec.authority,
            discovery_path: spec.discovery_path,
            refresh_ms: spec.refresh_secs.saturating_mul(1000),
            timeout: Duration::from_millis(spec.timeout_ms),
            body_key: format!("apisec.jwt_auth.{}.jwks", spec.store_id),
            stamp_key: format!("apisec.jwt_auth.{}.stamp", spec.store_id),
            lease_key: format!("apisec.jwt_auth.{}.lease", spec.store_id),
            state: RefCell::new(KeyState {
                jwks_path: spec.jwks_path,
                ..KeyState::default()
            }),
        }
    }

    /// The adopted keys and their version, after taking any newer version another worker stored.
    pub fn current(&self, store: &dyn SharedStore) -> Option<(Rc<Jwks>, u64)> {
        self.sync(store);
        let state = self.state.borrow();
        state.jwks.clone().map(|jwks| (jwks, state.stamp))
    }

    fn sync(&self, store: &dyn SharedStore) {
        let Some(stamp) = store.get(&self.stamp_key).and_then(|(v, _)| read_u64(&v)) else {
            return;
        };
        if stamp == self.state.borrow().stamp {
            return;
        }
        let parsed = store.get(&self.body_key).and_then(|(body, _)| Jwks::parse(&body).ok());
        let mut state = self.state.borrow_mut();
        state.stamp = stamp;
        if let Some(jwks) = parsed {
            state.jwks = Some(Rc::new(jwks));
        }
    }

    /// Periodic work: the fetch this worker should make now, if any.
    pub fn tick(&self, now_ms: u64, store: &dyn SharedStore) -> Option<(Fetch, HttpCall)> {
        self.sync(store);
        let due = {
            let state = self.state.borrow();
            let stale = state.jwks.is_none() || now_ms >= state.stamp.saturating_add(self.refresh_ms);
            stale && !state.in_flight && now_ms >= state.next_attempt_ms
        };
        if !due || !self.take_lease(now_ms, store) {
            return None;
        }
        Some(self.start_fetch())
    }

    /// A request met a `kid` it has no key for: refetch now, unless that happened recently.
    pub fn refetch_for_unknown_kid(&self, now_ms: u64) -> Refetch {
        {
            let state = self.state.borrow();
            if state.in_flight {
                return Refetch::InFlight;
            }
            if state
                .last_forced_ms
                .is_some_and(|at| now_ms < at.saturating_add(UNKNOWN_KID_REFETCH_MS))
            {
                return Refetch::RateLimited;
            }
        }
        self.state.borrow_mut().last_forced_ms = Some(now_ms);
        match self.start_fetch() {
            (Fetch::Jwks, call) => Refetch::Started(call),
            // Keys never came (no discovery yet): the periodic fetch is on it.
            (Fetch::Discovery, _) => {
                self.state.borrow_mut().in_flight = false;
                Refetch::RateLimited
            }
        }
    }

    fn start_fetch(&self) -> (Fetch, HttpCall) {
        let mut state = self.state.borrow_mut();
        state.in_flight = true;
        match (&state.jwks_path, &self.discovery_path) {
            (Some(path), _) | (None, Some(path)) => {
                let kind = if state.jwks_path.is_some() {
                    Fetch::Jwks
                } else {
                    Fetch::Discovery
                };
                (kind, self.get(path))
            }
            (None, None) => (Fetch::Jwks, self.get("/")),
        }
    }

    fn get(&self, path: &str) -> HttpCall {
        HttpCall {
            cluster: self.cluster.clone(),
            headers: vec![
                (HeaderName::trusted(":method"), b"GET".to_vec()),
                (HeaderName::trusted(":path"), path.as_bytes().to_vec()),
                (HeaderName::trusted(":authority"), self.authority.as_bytes().to_vec()),
                (HeaderName::trusted("accept"), b"application/json".to_vec()),
            ],
            body: None,
            timeout: self.timeout,
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
            Fetch::Discovery => self.discovered(outcome).map(|path| {
                self.state.borrow_mut().jwks_path = Some(path.clone());
                Some(self.get(&path))
            }),
            Fetch::Jwks => self.fetched(outcome, now_ms, store).map(|()| None),
        };
        let mut state = self.state.borrow_mut();
        state.in_flight = matches!(result, Ok(Some(_)));
        match &result {
            Ok(_) => state.failures = 0,
            Err(_) => {
                state.failures = state.failures.saturating_add(1);
                let backoff = 1000u64.saturating_mul(1 << state.failures.min(5)).min(MAX_BACKOFF_MS);
                state.next_attempt_ms = now_ms.saturating_add(backoff);
            }
        }
        result
    }

    fn discovered(&self, outcome: CallOutcome) -> Result<String, FetchError> {
        let body = ok_body(outcome)?;
        let document: serde_json::Value = serde_json::from_slice(&body).map_err(|_| FetchError::Malformed)?;
        let uri = document
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .ok_or(FetchError::Malformed)?;
        path_of(uri).ok_or(FetchError::Malformed)
    }

    fn fetched(&self, outcome: CallOutcome, now_ms: u64, store: &dyn SharedStore) -> Result<(), FetchError> {
        let body = ok_body(outcome)?;
        let jwks = Jwks::parse(&body).map_err(|_| FetchError::Malformed)?;
        if jwks.is_empty() {
            return Err(FetchError::NoUsableKeys);
        }
        // A stamp strictly newer than the adopted one, so every worker sees a new version.
        let stamp = now_ms.max(self.state.borrow().stamp.saturating_add(1));
        let stored = store.set(&self.body_key, &body, None).is_ok()
            && store.set(&self.stamp_key, &stamp.to_le_bytes(), None).is_ok();
        if !stored {
            log::warn!("jwt_auth: could not share fetched keys with the other workers");
        }
        let mut state = self.state.borrow_mut();
        state.jwks = Some(Rc::new(jwks));
        state.stamp = stamp;
        Ok(())
    }

    /// One worker fetches at a time: a lease in shared data, taken with compare-and-swap.
    fn take_lease(&self, now_ms: u64, store: &dyn SharedStore) -> bool {
        let until = now_ms
            .saturating_add(u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX))
            .saturating_add(1000);
        match store.get(&self.lease_key) {
            Some((value, cas)) => {
                let held = read_u64(&value).is_some_and(|held_until| now_ms < held_until);
                !held && store.set(&self.lease_key, &until.to_le_bytes(), Some(cas)).is_ok()
            }
            None => store.set(&self.lease_key, &until.to_le_bytes(), None).is_ok(),
        }
    }
}

fn ok_body(outcome: CallOutcome) -> Result<Vec<u8>, FetchError> {
    match outcome {
        CallOutcome::Response { status: 200, body, .. } => Ok(body),
        CallOutcome::Response { status, .. } => Err(FetchError::Status(status)),
        CallOutcome::Failed => Err(FetchError::Unreachable),
    }
}

fn read_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// The path (and query) of an absolute `http(s)` URL.
pub fn path_of(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let path = rest.find('/').and_then(|at| rest.get(at..)).unwrap_or("/");
    Some(path.split('#').next().unwrap_or(path).to_owned())
}

/// The host (authority) of an absolute `http(s)` URL.
pub fn authority_of(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest.get(..end).filter(|a| !a.is_empty()).map(str::to_owned)
}
