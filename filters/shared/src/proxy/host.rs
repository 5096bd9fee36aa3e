//! The ports, implemented with host calls.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MapType, Status};

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
            let _ = hostcalls::increment_metric(*id, i64::try_from(times).unwrap_or(i64::MAX));
        }
    }
}

impl SharedStore for Host {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), Some(cas))) => Some((value, cas)),
            _ => None,
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(|status| match status {
            Status::CasMismatch => StoreError::CasMismatch,
            _ => StoreError::Failed,
        })
    }
}

impl Properties for Host {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn filter_state(&self, key: &str) -> Option<Vec<u8>> {
        hostcalls::get_property(vec![key]).ok().flatten()
    }
}

/// Milliseconds since the Unix epoch by the host's clock. A host that will not say fails the VM
/// (the SDK traps on the call's error), which a failure policy that fails closed turns into 503s:
/// never a request checked against time 0, where no token would be expired.
pub fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A header map as bytes; an unreadable map reads as empty.
pub fn read_headers(map: MapType) -> Headers {
    Headers::from_owned(hostcalls::get_map_bytes(map).unwrap_or_default())
}

impl crate::ports::HostCrypto for Host {
    fn verify(&self, hash: crate::ports::HashAlg, spki_der: &[u8], signature: &[u8], message: &[u8]) -> Option<bool> {
        super::crypto::verify_signature(hash, spki_der, signature, message)
    }
}

/// Dispatches an outbound call; `None` if the host refused it (unknown cluster, bad headers).
pub fn dispatch(call: &crate::effects::HttpCall) -> Option<u32> {
    let mut headers = Vec::with_capacity(call.headers.len());
    for (name, value) in &call.headers {
        headers.push((name.as_str(), std::str::from_utf8(value).ok()?));
    }
    hostcalls::dispatch_http_call(&call.cluster, headers, call.body.as_deref(), Vec::new(), call.timeout).ok()
}

/// Dispatches a unary gRPC call; `None` if the host refused it.
///
/// The service is named by a serialized `envoy.config.core.v3.GrpcService` (`envoy_grpc` with
/// the cluster and authority) rather than a bare cluster name: Envoy first tries to parse the
/// argument as that message, and some cluster names happen to parse.
pub fn dispatch_grpc(call: &crate::effects::GrpcCall) -> Option<u32> {
    let mut service = crate::protobuf::Writer::new();
    service.message(1, |envoy_grpc| {
        envoy_grpc.string(1, &call.cluster);
        if !call.authority.is_empty() {
            envoy_grpc.string(2, &call.authority);
        }
    });
    // The SDK takes the argument as `&str`; short ASCII names keep the encoding valid UTF-8.
    let service = String::from_utf8(service.into_bytes()).ok()?;
    hostcalls::dispatch_grpc_call(
        &service,
        &call.service,
        &call.method,
        Vec::new(),
        Some(&call.message),
        call.timeout,
    )
    .ok()
}

/// Reads the answer to a gRPC call the host just delivered.
pub fn read_grpc_outcome(status: u32, response_size: usize) -> crate::effects::GrpcOutcome {
    let message = if status == crate::effects::GrpcOutcome::OK {
        hostcalls::get_buffer(
            proxy_wasm::types::BufferType::GrpcReceiveBuffer,
            0,
            response_size.min(super::http::MAX_CALL_BODY),
        )
        .ok()
        .flatten()
        .unwrap_or_default()
    } else {
        Vec::new()
    };
    crate::effects::GrpcOutcome { status, message }
}
