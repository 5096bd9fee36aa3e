//! The service's shared state and the transport-independent answer to a
//! `ShouldRateLimit` call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, DescriptorStatus, RateLimit};
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitResponse;
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;

use super::{Descriptor, Fault, Limit, RecordedRequest};
use crate::oauth::now_secs;

/// What the handles and both transports share.
#[derive(Debug, Default)]
pub(super) struct State {
    /// The rules, by domain, in the order they were set.
    pub(super) limits: Vec<(String, Limit)>,
    /// Hits by domain and descriptor entries.
    pub(super) counts: HashMap<(String, Vec<(String, String)>), u64>,
    pub(super) response_headers: Vec<(String, String)>,
    pub(super) fault: Fault,
    pub(super) requests: Vec<RecordedRequest>,
    pub(super) calls: usize,
}

pub(super) type Shared = Arc<Mutex<State>>;

pub(super) fn lock(state: &Shared) -> MutexGuard<'_, State> {
    // Every update is a single assignment, insertion or clear: a panic while
    // holding the lock cannot leave the state inconsistent.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records `req`, then answers it according to the fault: the response, or
/// the gRPC status code to fail with. Under [`Fault::Slow`] and
/// [`Fault::Hold`] the answer is made at once and handed back after the
/// delay, or once the gate opens.
pub(super) async fn call(state: &Shared, req: RecordedRequest) -> Result<RateLimitResponse, tonic::Code> {
    let (answer, fault) = {
        let mut st = lock(state);
        st.calls += 1;
        let fault = st.fault.clone();
        let answer = match &fault {
            Fault::None | Fault::Slow(_) | Fault::Hold(_) => Ok(st.evaluate(&req)),
            Fault::Status(code) => Err(*code),
            Fault::Unknown => Ok(st.unknown()),
            // Only a call caught while the servers stop gets here.
            Fault::Down => Err(tonic::Code::Unavailable),
        };
        st.requests.push(req);
        (answer, fault)
    };
    match fault {
        Fault::Slow(delay) => tokio::time::sleep(delay).await,
        Fault::Hold(gate) => gate.passed().await,
        _ => {}
    }
    answer
}

impl State {
    /// Counts the hits of `req` and answers it (see the module docs).
    fn evaluate(&mut self, req: &RecordedRequest) -> RateLimitResponse {
        let request_hits = u64::from(req.hits_addend.max(1));
        let statuses: Vec<DescriptorStatus> = req
            .descriptors
            .iter()
            .map(|d| self.count(&req.domain, d, d.hits_addend.unwrap_or(request_hits)))
            .collect();
        let over = statuses.iter().any(|s| s.code == Code::OverLimit as i32);
        RateLimitResponse {
            overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
            statuses,
            response_headers_to_add: self.headers(),
            ..RateLimitResponse::default()
        }
    }

    /// The answer under [`Fault::Unknown`].
    fn unknown(&self) -> RateLimitResponse {
        RateLimitResponse {
            overall_code: Code::Unknown as i32,
            response_headers_to_add: self.headers(),
            ..RateLimitResponse::default()
        }
    }

    /// Adds `hits` to the count of descriptor `d` if a rule applies, and
    /// says where it stands.
    fn count(&mut self, domain: &str, d: &Descriptor, hits: u64) -> DescriptorStatus {
        let Some(rule) = self.rule_for(domain, &d.entries).cloned() else {
            return DescriptorStatus {
                code: Code::Ok as i32,
                ..DescriptorStatus::default()
            };
        };
        let count = self.counts.entry((domain.to_owned(), d.entries.clone())).or_default();
        *count = count.saturating_add(hits);
        let limit = u64::from(rule.requests_per_unit);
        let unit_secs = rule.unit.secs();
        DescriptorStatus {
            code: if *count > limit { Code::OverLimit } else { Code::Ok } as i32,
            current_limit: Some(RateLimit {
                name: rule.name.unwrap_or_default(),
                requests_per_unit: rule.requests_per_unit,
                unit: rule.unit.to_proto() as i32,
            }),
            // At most `requests_per_unit`, so it fits.
            limit_remaining: limit.saturating_sub(*count) as u32,
            duration_until_reset: Some(ProtoDuration {
                seconds: (unit_secs - now_secs() % unit_secs) as i64,
                nanos: 0,
            }),
            ..DescriptorStatus::default()
        }
    }

    /// The rule of `domain` for these entries: among those that apply, the
    /// one fixing the most values, then the first set.
    fn rule_for(&self, domain: &str, entries: &[(String, String)]) -> Option<&Limit> {
        let mut best: Option<&Limit> = None;
        for (_, rule) in self.limits.iter().filter(|(d, _)| d == domain) {
            if rule.applies_to(entries) && best.is_none_or(|b| rule.fixed_values() > b.fixed_values()) {
                best = Some(rule);
            }
        }
        best
    }

    fn headers(&self) -> Vec<HeaderValue> {
        self.response_headers
            .iter()
            .map(|(key, value)| HeaderValue {
                key: key.clone(),
                value: value.clone(),
                ..HeaderValue::default()
            })
            .collect()
    }
}
