//! The ports, implemented with host calls.

use super::abi::{self, BufferType, MapType, Status};
use super::dispatch::{self, Call};
use crate::headers::Headers;
use crate::metrics::Counter;
use crate::ports::{Ctx, Properties, SharedStore, StoreError};

pub struct Host;

/// The ports and clock every callback gets.
pub fn ctx() -> Ctx<'static> {
    static HOST: Host = Host;
    Ctx {
        now_ms: now_ms(),
        store: &HOST,
        properties: &HOST,
        crypto: &HOST,
    }
}

/// Bumps counters: `metric_ids` holds the host's id for each registered [`Counter`] index.
/// One host call per distinct counter, however often the step counts it.
pub fn bump(metric_ids: &[Option<u32>], counters: &[Counter]) {
    for (position, counter) in counters.iter().enumerate() {
        let earlier = counters.get(..position).unwrap_or_default();
        if earlier.contains(counter) {
            continue;
        }
        if let Some(Some(id)) = metric_ids.get(counter.index()) {
            let times = counters.iter().filter(|c| *c == counter).count();
            let _ = abi::increment_metric(*id, i64::try_from(times).unwrap_or(i64::MAX));
        }
    }
}

impl SharedStore for Host {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        abi::shared_data(key).ok().flatten()
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        abi::set_shared_data(key, value, cas.unwrap_or(0)).map_err(|status| match status {
            Status::CAS_MISMATCH => StoreError::CasMismatch,
            _ => StoreError::Failed,
        })
    }
}

impl Properties for Host {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        property(path)
    }

    fn filter_state(&self, key: &str) -> Option<Vec<u8>> {
        property(&[key])
    }
}

/// A property by its path; `None` if the host has none (or will not say).
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    match path {
        // Filter state, on every request: a one-segment path is the segment itself, no copy.
        [segment] => abi::property(segment.as_bytes()),
        _ => abi::property(&crate::wire::property_path(path)),
    }
    .ok()
    .flatten()
}

/// Milliseconds since the Unix epoch by the host's clock. A host that will not say stops the VM
/// (an `abort`, as a trap), which a failure policy that fails closed turns into 503s: never a
/// request checked against time 0, where no token would be expired.
pub fn now_ms() -> u64 {
    match abi::current_time_ns() {
        Ok(ns) => ns / 1_000_000,
        Err(status) => {
            log::error!("host clock unreadable ({status:?}): stopping the VM");
            std::process::abort()
        }
    }
}

/// A header map; an unreadable map reads as empty.
pub fn read_headers(map: MapType) -> Headers {
    let encoded = abi::header_map(map).ok().flatten().unwrap_or_default();
    Headers::from_owned(crate::wire::parse_map(&encoded))
}

impl crate::ports::HostCrypto for Host {
    fn verify(&self, hash: crate::ports::HashAlg, spki_der: &[u8], signature: &[u8], message: &[u8]) -> Option<bool> {
        super::crypto::verify_signature(hash, spki_der, signature, message)
    }
}

/// Dispatches an outbound call whose answer goes to context `owner`; `None` if the host refused
/// it (unknown cluster, bad headers).
pub fn dispatch(call: &crate::effects::HttpCall, owner: u32) -> Option<u32> {
    let headers: Vec<(&str, &[u8])> = call.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    let body = call.body.as_deref().unwrap_or_default();
    let token = abi::http_call(
        &call.cluster,
        &crate::wire::map(&headers),
        body,
        timeout_ms(call.timeout),
    )
    .ok()?;
    dispatch::await_answer(Call::Http, token, owner);
    Some(token)
}

/// Says which call the host refused: most often a cluster Envoy does not have (a typo in the
/// config, or one its cluster discovery has not delivered yet).
pub fn log_undispatched(filter: &str, cluster: &str) {
    log::warn!("{filter}: a call to cluster {cluster:?} could not be dispatched: is the cluster defined in Envoy?");
}

/// The ABI's 32-bit milliseconds; configs keep timeouts far below its limit.
fn timeout_ms(timeout: std::time::Duration) -> u32 {
    u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX)
}

/// Dispatches a unary gRPC call whose answer goes to context `owner`; `None` if the host refused
/// it.
///
/// The service is named by a serialized `envoy.config.core.v3.GrpcService` (`envoy_grpc` with
/// the cluster and authority) rather than a bare cluster name: Envoy first tries to parse the
/// argument as that message, and some cluster names happen to parse.
pub fn dispatch_grpc(call: &crate::effects::GrpcCall, owner: u32) -> Option<u32> {
    let mut service = crate::protobuf::Writer::new();
    service.message(1, |envoy_grpc| {
        envoy_grpc.string(1, &call.cluster);
        if !call.authority.is_empty() {
            envoy_grpc.string(2, &call.authority);
        }
    });
    let token = abi::grpc_call(
        &service.into_bytes(),
        &call.service,
        &call.method,
        &call.message,
        timeout_ms(call.timeout),
    )
    .ok()?;
    dispatch::await_answer(Call::Grpc, token, owner);
    Some(token)
}

/// Reads the answer to a gRPC call the host just delivered. A message larger than the VM reads
/// is `RESOURCE_EXHAUSTED`, as to a gRPC client over its size limit: never its first part, which
/// could decode as another message.
pub fn read_grpc_outcome(status: u32, response_size: usize) -> crate::effects::GrpcOutcome {
    use crate::effects::GrpcOutcome;
    if status == GrpcOutcome::OK && response_size > super::http::MAX_CALL_BODY {
        return GrpcOutcome {
            status: GrpcOutcome::RESOURCE_EXHAUSTED,
            message: Vec::new(),
        };
    }
    let message = if status == GrpcOutcome::OK {
        abi::buffer(BufferType::GrpcReceiveBuffer, 0, response_size)
            .ok()
            .flatten()
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    GrpcOutcome { status, message }
}
