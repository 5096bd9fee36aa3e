//! A test rate-limit service: Envoy's rate-limit service protocol
//! (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`), driven
//! in-process by the test, on two ports of `127.0.0.1`:
//!
//! | Address | Transport |
//! |---|---|
//! | [`RateLimitService::grpc_addr`] | gRPC over cleartext HTTP/2 (point an Envoy cluster made by [`grpc_cluster`](crate::config::grpc_cluster) at it) |
//! | [`RateLimitService::http_addr`] | HTTP/1.1, `POST` [`JSON_PATH`]: the proto3-JSON form of the same RPC, as envoyproxy/ratelimit serves it |
//!
//! Each runs on its own thread with its own tokio runtime, like the other
//! test servers, and both stop on drop.
//!
//! # Limits and counting
//!
//! Limits are set from code ([`RateLimitService::set_limit`]) in the spirit
//! of envoyproxy/ratelimit's configuration: a [`Limit`] applies to a
//! descriptor whose entries have exactly the limit's keys, in order, and
//! the limit's value wherever it gives one (the limit with the most fixed
//! values wins, then the one set first). Hits are counted per domain and
//! full descriptor (keys and values), so `client=a` and `client=b` count
//! separately under a `client` limit.
//!
//! Counts never reset on their own, whatever the [`Unit`]: tests are
//! deterministic, and [`RateLimitService::reset_counts`] starts over. The
//! unit only shapes the answer: `duration_until_reset` is the time to the
//! end of the current unit-aligned window of the wall clock, as
//! envoyproxy/ratelimit reports it.
//!
//! A call adds, to each descriptor a limit applies to, the descriptor's own
//! `hits_addend` if it has one (0 included: a check that counts nothing),
//! else the request's `hits_addend` (0, its default, counting as 1), as
//! envoyproxy/ratelimit does. Hits over the limit are counted too. Then:
//!
//! - a descriptor whose count exceeds the limit's `requests_per_unit` is
//!   `OVER_LIMIT`, any other `OK`; its status carries `current_limit`
//!   (name, `requests_per_unit`, unit), `limit_remaining`
//!   (`requests_per_unit - count`, at least 0) and `duration_until_reset`;
//! - a descriptor no limit applies to is `OK`, with no `current_limit`, no
//!   `duration_until_reset` and `limit_remaining` 0;
//! - `overall_code` is `OVER_LIMIT` if any descriptor is, else `OK`;
//! - `response_headers_to_add` is what [`RateLimitService::set_response_headers`] set.
//!
//! The descriptor fields `limit` (a per-request limit override) and
//! `is_negative_hits` are accepted and ignored.
//!
//! # The JSON endpoint
//!
//! Like envoyproxy/ratelimit's `/json`, it takes the proto3-JSON mapping of
//! a `RateLimitRequest` (camelCase or snake_case field names; 64-bit and
//! 32-bit integers as numbers or strings; unknown fields rejected), e.g.
//! `{"domain": "d", "descriptors": [{"entries": [{"key": "k", "value": "v"}]}], "hitsAddend": 1}`,
//! and answers `application/json`, the proto3-JSON mapping of the
//! `RateLimitResponse` as Go's `protojson.Marshal` writes it: camelCase
//! names, enums by name (`"OVER_LIMIT"`, `"MINUTE"`), the duration as a
//! string (`"42s"`), and **fields at their default value left out** (a
//! `limitRemaining` of 0, an empty `name`, an `UNKNOWN` code, an empty
//! list):
//!
//! ```json
//! {"overallCode": "OVER_LIMIT",
//!  "statuses": [{"code": "OVER_LIMIT",
//!                "currentLimit": {"name": "per-client", "requestsPerUnit": 3, "unit": "MINUTE"},
//!                "durationUntilReset": "42s"}],
//!  "responseHeadersToAdd": [{"key": "x-ratelimit-policy", "value": "3;w=60"}]}
//! ```
//!
//! The status is `200` for `OK`, `429` for `OVER_LIMIT`, `500` for
//! `UNKNOWN` ([`Fault::Unknown`]); `400` with a short `text/plain` reason
//! for a body that is not such a request; `404` off [`JSON_PATH`]. Any
//! method is accepted, as upstream does.
//!
//! # Faults
//!
//! [`RateLimitService::set_fault`] makes both transports misbehave (see
//! [`Fault`]). [`Fault::Down`] really stops the servers: nothing listens,
//! every open connection (Envoy's kept-alive HTTP/2 one included) is
//! closed, so new calls are refused; any other fault brings them back on
//! the same ports.
//!
//! ```no_run
//! use harness::ratelimit::{Fault, Limit, Unit};
//! use harness::RateLimitService;
//!
//! let rls = RateLimitService::start();
//! rls.set_limit("api", Limit::new(&[("client", None)], 3, Unit::Minute).named("per-client"));
//! rls.set_limit("api", Limit::new(&[("client", Some("vip"))], 100, Unit::Minute));
//! // ... point Envoy at rls.grpc_addr(), send four requests as one client ...
//! assert_eq!(rls.calls(), 4);
//! rls.set_fault(Fault::Down);
//! // ... Envoy's calls now fail: check its failure mode ...
//! rls.set_fault(Fault::None);
//! ```

mod grpc;
mod json;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit as ProtoUnit;

use crate::server::{BackgroundServer, BoundListener};
use grpc::GrpcServer;
use state::{lock, Shared, State};

/// The path of the HTTP/1.1 JSON endpoint.
pub const JSON_PATH: &str = "/json";

/// The time unit of a [`Limit`]: the proto's `RateLimitResponse.RateLimit.Unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// 1 s.
    Second,
    /// 60 s.
    Minute,
    /// 3600 s.
    Hour,
    /// 86 400 s.
    Day,
    /// 7 days.
    Week,
    /// 30 days, as envoyproxy/ratelimit counts it.
    Month,
    /// 365 days, as envoyproxy/ratelimit counts it.
    Year,
}

impl Unit {
    /// The length of the unit in seconds: the window `duration_until_reset`
    /// is computed from.
    pub fn secs(self) -> u64 {
        const DAY: u64 = 86_400;
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => DAY,
            Unit::Week => 7 * DAY,
            Unit::Month => 30 * DAY,
            Unit::Year => 365 * DAY,
        }
    }

    /// The proto enum value.
    pub fn to_proto(self) -> ProtoUnit {
        match self {
            Unit::Second => ProtoUnit::Second,
            Unit::Minute => ProtoUnit::Minute,
            Unit::Hour => ProtoUnit::Hour,
            Unit::Day => ProtoUnit::Day,
            Unit::Week => ProtoUnit::Week,
            Unit::Month => ProtoUnit::Month,
            Unit::Year => ProtoUnit::Year,
        }
    }
}

/// A rate limit rule of one domain (see the [module docs](self) for how it
/// applies and counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The descriptor entries it applies to, in order: the key, and the
    /// value when only that value matches (`None`: any value).
    pub entries: Vec<(String, Option<String>)>,
    /// How many hits are allowed; more are `OVER_LIMIT`.
    pub requests_per_unit: u32,
    /// The unit reported in `current_limit`.
    pub unit: Unit,
    /// The name reported in `current_limit` (empty when `None`).
    pub name: Option<String>,
}

impl Limit {
    /// A rule for descriptors with exactly these entries, in order: `(key,
    /// None)` matches any value, `(key, Some(value))` only that one.
    pub fn new(entries: &[(&str, Option<&str>)], requests_per_unit: u32, unit: Unit) -> Limit {
        Limit {
            entries: entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
                .collect(),
            requests_per_unit,
            unit,
            name: None,
        }
    }

    /// Sets the name reported in `current_limit`.
    pub fn named(mut self, name: &str) -> Limit {
        self.name = Some(name.to_owned());
        self
    }

    /// Whether the rule applies to a descriptor with these entries.
    fn applies_to(&self, entries: &[(String, String)]) -> bool {
        self.entries.len() == entries.len()
            && self
                .entries
                .iter()
                .zip(entries)
                .all(|((rk, rv), (k, v))| rk == k && rv.as_ref().is_none_or(|rv| rv == v))
    }

    /// How many values the rule fixes: the more, the more specific.
    fn fixed_values(&self) -> usize {
        self.entries.iter().filter(|(_, v)| v.is_some()).count()
    }
}

/// A misbehaviour of the service, on both transports. A call answered by a
/// fault other than [`Fault::Slow`] or [`Fault::Hold`] counts no hits; every call that arrives
/// is recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answer normally.
    #[default]
    None,
    /// Answer normally, this much later. The answer (and the hits it
    /// counts) is made when the call arrives, so a call the client gives up
    /// on still counts.
    Slow(Duration),
    /// Answer normally once the test opens the gate. As with [`Fault::Slow`],
    /// the answer (and the hits it counts) is made when the call arrives.
    Hold(crate::server::Gate),
    /// gRPC: fail the call with this status code. JSON: `500`, `text/plain`,
    /// a short body naming the code.
    Status(tonic::Code),
    /// A well-formed answer with `overall_code` `UNKNOWN`, no statuses (the
    /// response headers are still added). JSON: `500`, as
    /// envoyproxy/ratelimit answers `UNKNOWN`, with the body
    /// `{}` (plus `responseHeadersToAdd` if any).
    Unknown,
    /// Stop listening on both ports and close every open connection: new
    /// calls are refused. Setting any other fault starts the servers again
    /// on the same ports.
    Down,
}

/// The transport a call came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// gRPC, on [`RateLimitService::grpc_addr`].
    Grpc,
    /// HTTP/1.1 JSON, on [`RateLimitService::http_addr`].
    Http,
}

/// One descriptor of a recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Its entries, `(key, value)`, in order.
    pub entries: Vec<(String, String)>,
    /// Its own `hits_addend`, if set.
    pub hits_addend: Option<u64>,
}

impl Descriptor {
    /// A descriptor with these entries and no `hits_addend` (to compare
    /// with recorded ones).
    pub fn new(entries: &[(&str, &str)]) -> Descriptor {
        Descriptor {
            entries: entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            hits_addend: None,
        }
    }
}

/// One `ShouldRateLimit` call, as the service received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// How it came.
    pub transport: Transport,
    /// The request's `domain`.
    pub domain: String,
    /// The request's descriptors, in order.
    pub descriptors: Vec<Descriptor>,
    /// The request's `hits_addend` (0 when not set).
    pub hits_addend: u32,
}

/// Both servers, while they run.
struct Servers {
    grpc: GrpcServer,
    http: BackgroundServer,
}

impl Servers {
    /// Binds both addresses (port 0 for ephemeral ports) and starts serving.
    fn start(grpc_addr: SocketAddr, http_addr: SocketAddr, state: &Shared) -> Servers {
        let grpc = GrpcServer::start(grpc_addr, Arc::clone(state));
        let handler_state = Arc::clone(state);
        let http = BoundListener::bind(http_addr, "rate limit json")
            .serve(move |req| json::handle(req, Arc::clone(&handler_state)));
        Servers { grpc, http }
    }
}

/// A running test rate-limit service. Stops on drop.
pub struct RateLimitService {
    state: Shared,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    /// `None` while [`Fault::Down`].
    servers: Mutex<Option<Servers>>,
}

impl std::fmt::Debug for RateLimitService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitService")
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .field("fault", &lock(&self.state).fault)
            .finish()
    }
}

impl RateLimitService {
    /// Binds two ephemeral ports of `127.0.0.1` (gRPC, JSON) and starts
    /// serving on background threads, with no limits, no fault.
    ///
    /// # Panics
    /// If a socket cannot be bound or a runtime cannot be built.
    pub fn start() -> RateLimitService {
        let ephemeral = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::bind(ephemeral, ephemeral)
    }

    /// Like [`RateLimitService::start`], on the given addresses (the demo's fixed ports).
    ///
    /// # Panics
    /// If a socket cannot be bound or a runtime cannot be built.
    pub fn bind(grpc: SocketAddr, http: SocketAddr) -> RateLimitService {
        let state: Shared = Arc::new(Mutex::new(State::default()));
        let servers = Servers::start(grpc, http, &state);
        RateLimitService {
            state,
            grpc_addr: servers.grpc.addr(),
            http_addr: servers.http.addr(),
            servers: Mutex::new(Some(servers)),
        }
    }

    /// Where gRPC is served (cleartext HTTP/2).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Where the HTTP/1.1 JSON endpoint ([`JSON_PATH`]) is served.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Adds a rule to `domain`, replacing the rule of that domain with the
    /// same entries (keys and fixed values), if any. Counts are kept.
    pub fn set_limit(&self, domain: &str, rule: Limit) {
        let mut st = lock(&self.state);
        st.limits.retain(|(d, r)| !(d == domain && r.entries == rule.entries));
        st.limits.push((domain.to_owned(), rule));
    }

    /// Sets every hit count back to zero.
    pub fn reset_counts(&self) {
        lock(&self.state).counts.clear();
    }

    /// Sets the `response_headers_to_add` of every answer from now on
    /// (none at start), e.g. `X-RateLimit-*` headers or one a filter must
    /// not let through.
    pub fn set_response_headers(&self, headers: Vec<(String, String)>) {
        lock(&self.state).response_headers = headers;
    }

    /// Sets the fault of both transports ([`Fault::None`] makes them healthy
    /// again). [`Fault::Down`] stops both servers, joining their threads,
    /// before returning; any other fault, set while down, restarts them on
    /// the same ports before returning.
    ///
    /// # Panics
    /// On `Fault::Status(Code::Ok)` (not an error), or if a port cannot be
    /// bound again (another process took it meanwhile).
    pub fn set_fault(&self, fault: Fault) {
        assert!(
            fault != Fault::Status(tonic::Code::Ok),
            "Fault::Status(Code::Ok): a gRPC status fault needs an error code"
        );
        let down = fault == Fault::Down;
        lock(&self.state).fault = fault;
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        if down {
            // Dropping stops each server and its runtime, which closes
            // every connection it holds.
            drop(servers.take());
        } else if servers.is_none() {
            *servers = Some(Servers::start(self.grpc_addr, self.http_addr, &self.state));
        }
    }

    /// Every call since start (or [`RateLimitService::clear_requests`]),
    /// both transports, in arrival order, faults included. A JSON body
    /// that is not a `RateLimitRequest` is not recorded (it is
    /// [counted](RateLimitService::calls)).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// How many calls have arrived since start (or
    /// [`RateLimitService::clear_requests`]), both transports, whatever
    /// their outcome: faults and malformed JSON bodies included.
    pub fn calls(&self) -> usize {
        lock(&self.state).calls
    }

    /// Forgets the recorded calls and sets [`RateLimitService::calls`] back
    /// to zero (hit counts are kept: see [`RateLimitService::reset_counts`]).
    pub fn clear_requests(&self) {
        let mut st = lock(&self.state);
        st.requests.clear();
        st.calls = 0;
    }
}
