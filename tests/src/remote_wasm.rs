//! Wasm filters whose module Envoy fetches over HTTP (`vm_config.code.remote`) instead of
//! reading a local file: how a module published to a web server or a registry is loaded.

use serde_json::{json, Value};

use crate::config::WasmFilter;

impl WasmFilter {
    /// The `envoy.filters.http.wasm` entry of [`WasmFilter::to_http_filter`], with the module
    /// fetched from `uri` through cluster `cluster` and checked against `sha256` (lowercase hex)
    /// before Envoy loads it. Add it with
    /// [`GatewayConfig::native_filter`](crate::GatewayConfig::native_filter) (used verbatim),
    /// and the cluster with [`GatewayConfig::extra_cluster`](crate::GatewayConfig::extra_cluster).
    ///
    /// # Panics
    /// As [`WasmFilter::to_http_filter`]: if the local `.wasm` does not exist (the tests serve
    /// that very file).
    pub fn to_remote_http_filter(&self, uri: &str, cluster: &str, sha256: &str) -> Value {
        let mut filter = self.to_http_filter();
        filter["typed_config"]["config"]["vm_config"]["code"] = json!({
            "remote": {
                "http_uri": { "uri": uri, "cluster": cluster, "timeout": "5s" },
                "sha256": sha256,
            }
        });
        filter
    }
}
