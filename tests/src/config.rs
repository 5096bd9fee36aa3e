//! Builds the Envoy v3 bootstrap the end-to-end tests run.
//!
//! The bootstrap is a `serde_json::Value` (Envoy reads a JSON bootstrap from
//! a `.json` file), which avoids the quoting pitfalls of templated YAML.

use std::net::SocketAddr;

use serde_json::{json, Value};

use crate::paths::wasm_path;

/// One proxy-wasm filter in the HTTP filter chain.
#[derive(Debug, Clone, PartialEq)]
pub struct WasmFilter {
    /// The wasm file stem (e.g. `header_scrub`); also used as the plugin
    /// name, `root_id` and `vm_id`.
    pub name: String,
    /// The plugin configuration, handed to the filter as a JSON string.
    pub config: Value,
    /// The module, if not `<name>.wasm` in [`wasm_dir`](crate::paths::wasm_dir).
    pub file: Option<std::path::PathBuf>,
}

impl WasmFilter {
    /// A filter entry for `<name>.wasm` with the given configuration.
    pub fn new(name: &str, config: Value) -> Self {
        Self {
            name: name.to_owned(),
            config,
            file: None,
        }
    }

    /// The `envoy.filters.http.wasm` entry for the HTTP filter chain.
    ///
    /// # Panics
    /// If the `.wasm` file does not exist (see [`wasm_path`]).
    pub fn to_http_filter(&self) -> Value {
        let name = &self.name;
        let file = self.file.clone().unwrap_or_else(|| wasm_path(name));
        let filename = file.to_string_lossy().into_owned();
        json!({
            "name": "envoy.filters.http.wasm",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": name,
                    "root_id": name,
                    // A filter that fails to load must reject traffic, never
                    // let it through unfiltered; one that crashes fails the
                    // request closed and is reloaded for the next.
                    "failure_policy": "FAIL_RELOAD",
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": self.config.to_string(),
                    },
                    "vm_config": {
                        "vm_id": name,
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": { "local": { "filename": filename } },
                    },
                },
            },
        })
    }
}

/// What the test gateway looks like: native Envoy HTTP filters, then the wasm
/// filters, in chain order, in front of the echo upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// The wasm filters, in the order they run on requests (after
    /// [`GatewayConfig::native_filters`]).
    pub filters: Vec<WasmFilter>,
    /// Native Envoy HTTP filter entries (`{"name": ..., "typed_config":
    /// {...}}`, used verbatim), in the order they run on requests, before
    /// every wasm filter: e.g. `envoy.filters.http.jwt_authn` for a test that
    /// compares a wasm filter with its native counterpart.
    pub native_filters: Vec<Value>,
    /// Envoy worker threads (`--concurrency`); 1 by default.
    pub concurrency: u32,
    /// The echo upstream's address (cluster `upstream`).
    pub upstream: SocketAddr,
    /// Extra clusters appended verbatim to `static_resources.clusters`.
    pub extra_clusters: Vec<Value>,
    /// Fields merged over the HTTP connection manager's typed config (e.g.
    /// `server_header_transformation`), for tests of how settings interact.
    pub hcm_overrides: serde_json::Map<String, Value>,
    /// HTTP/1.1 trailers passed on both ways (Envoy drops them by default; HTTP/2 always has them).
    pub http1_trailers: bool,
    /// The listener speaks TLS and asks for a client certificate ([`crate::tls::downstream_tls`]).
    pub tls: bool,
}

/// A STATIC cluster with a single endpoint.
pub fn static_cluster(name: &str, addr: SocketAddr) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{
                "lb_endpoints": [{
                    "endpoint": {
                        "address": {
                            "socket_address": {
                                "address": addr.ip().to_string(),
                                "port_value": addr.port(),
                            }
                        }
                    }
                }]
            }]
        }
    })
}

/// A [`static_cluster`] that speaks HTTP/2 (cleartext) to its endpoint: what
/// Envoy's gRPC clients need, e.g. for the test rate-limit service
/// ([`RateLimitService::grpc_addr`](crate::RateLimitService::grpc_addr)).
pub fn grpc_cluster(name: &str, addr: SocketAddr) -> Value {
    let mut cluster = static_cluster(name, addr);
    cluster["typed_extension_protocol_options"] = json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": { "http2_protocol_options": {} },
        }
    });
    cluster
}

/// A cluster's `typed_extension_protocol_options` that has it speak HTTP/1.1 to its endpoint with
/// trailers passed on both ways (Envoy drops them by default).
pub fn upstream_http1_trailers() -> Value {
    json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": { "http_protocol_options": { "enable_trailers": true } },
        }
    })
}

/// The access-log format shipped in `envoy/<file>`: its first `inline_string: "…"` line that holds
/// a `%…%` command, with the YAML escape `\n` undone. For tests that check what an operator reading
/// that file's log sees.
///
/// # Panics
/// If the file cannot be read or has no such line.
pub fn shipped_access_log_format(file: &str) -> String {
    let path = crate::paths::workspace_root().join("envoy").join(file);
    let yaml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let line = yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("inline_string: \""))
        .find(|l| l.contains('%'))
        .unwrap_or_else(|| panic!("{} has no access-log format", path.display()));
    line.trim_end_matches('"').replace("\\n", "\n")
}

/// An HTTP connection manager `access_log` value (for [`GatewayConfig::hcm`]) that writes `format`
/// to Envoy's stdout, which [`Envoy::log`](crate::Envoy::log) collects.
pub fn stdout_access_log(format: &str) -> Value {
    json!([{
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": { "text_format_source": { "inline_string": format } },
        },
    }])
}

impl GatewayConfig {
    /// No filters, one worker, the given upstream.
    pub fn new(upstream: SocketAddr) -> Self {
        Self {
            filters: Vec::new(),
            native_filters: Vec::new(),
            concurrency: 1,
            upstream,
            extra_clusters: Vec::new(),
            hcm_overrides: serde_json::Map::new(),
            http1_trailers: false,
            tls: false,
        }
    }

    /// Passes HTTP/1.1 trailers on, from the client to the upstream and back.
    pub fn with_http1_trailers(mut self) -> Self {
        self.http1_trailers = true;
        self.hcm("http_protocol_options", json!({"enable_trailers": true}))
    }

    /// The listener speaks TLS only, and asks clients for a certificate without requiring one
    /// (see [`crate::tls::downstream_tls`]); send with [`crate::Gateway::send_tls`].
    pub fn with_tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Sets one field of the HTTP connection manager's typed config.
    pub fn hcm(mut self, field: &str, value: Value) -> Self {
        self.hcm_overrides.insert(field.to_owned(), value);
        self
    }

    /// Turns off Envoy's path normalisation (dot segments, slashes, escaped slashes), which every
    /// shipped config has on: the filters must hold without it.
    pub fn without_path_normalisation(self) -> Self {
        self.hcm("normalize_path", json!(false))
            .hcm("merge_slashes", json!(false))
            .hcm("path_with_escaped_slashes_action", json!("KEEP_UNCHANGED"))
    }

    /// Appends a wasm filter to the chain.
    pub fn filter(mut self, name: &str, config: Value) -> Self {
        self.filters.push(WasmFilter::new(name, config));
        self
    }

    /// Appends filter `name` loaded from `file` instead of the shipped module (a test build).
    pub fn filter_from(mut self, name: &str, file: std::path::PathBuf, config: Value) -> Self {
        self.filters.push(WasmFilter {
            file: Some(file),
            ..WasmFilter::new(name, config)
        });
        self
    }

    /// Appends a native Envoy HTTP filter entry (`{"name": ..., "typed_config":
    /// {...}}`, used verbatim). Native filters run in the order they are
    /// added, all of them before the wasm filters.
    pub fn native_filter(mut self, filter: Value) -> Self {
        self.native_filters.push(filter);
        self
    }

    /// Sets the number of Envoy worker threads.
    pub fn concurrency(mut self, n: u32) -> Self {
        self.concurrency = n;
        self
    }

    /// Appends a cluster definition (used verbatim).
    pub fn extra_cluster(mut self, cluster: Value) -> Self {
        self.extra_clusters.push(cluster);
        self
    }

    /// The Envoy v3 bootstrap, with the `gateway` listener among its static resources.
    ///
    /// Admin and the `gateway` listener bind `127.0.0.1:0`; routes, in
    /// order: `/direct/` answers 418 `direct` from Envoy itself, `/dead/`
    /// goes to cluster `dead` (nothing listens on 127.0.0.1:1, so Envoy
    /// answers 503), and everything else goes to cluster `upstream`.
    ///
    /// # Panics
    /// If a filter's `.wasm` file does not exist.
    pub fn to_bootstrap(&self) -> Value {
        let mut listener = json!({
            "name": LISTENER_NAME,
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        });
        listener["filter_chains"] = json!([{ "filters": [self.http_connection_manager()] }]);
        if self.tls {
            listener["filter_chains"][0]["transport_socket"] = crate::tls::downstream_tls();
        }
        json!({
            "admin": admin_address(),
            "static_resources": {
                "listeners": [listener],
                "clusters": self.clusters(),
            }
        })
    }

    /// The Envoy v3 bootstrap with the `gateway` listener read from `lds_file`, which Envoy watches
    /// (LDS from the file system): a control plane's listener updates, for tests of config changes.
    /// The file holds [`GatewayConfig::lds_listeners`]; see there for the listener.
    pub fn to_lds_bootstrap(&self, lds_file: &std::path::Path) -> Value {
        let directory = lds_file.parent().unwrap_or(lds_file);
        json!({
            "admin": admin_address(),
            // xDS needs a node identity, even from a file.
            "node": { "id": "e2e-gateway", "cluster": "e2e" },
            "dynamic_resources": {
                "lds_config": {
                    "resource_api_version": "V3",
                    "path_config_source": {
                        "path": lds_file.to_string_lossy(),
                        "watched_directory": { "path": directory.to_string_lossy() },
                    },
                }
            },
            "static_resources": { "clusters": self.clusters() },
        })
    }

    /// The LDS file's content at `generation`: the `gateway` listener as a discovery response.
    ///
    /// Besides the gateway's filter chain, the listener has one for [`GENERATION_PROBE_SOURCE`]
    /// alone, without the wasm filters: Envoy answers its `GET /` with 200 and the generation. A
    /// listener update reaches the workers after Envoy reports it accepted, so a test that must not
    /// race it asks a worker which generation it runs before it sends anything else.
    ///
    /// # Panics
    /// If a filter's `.wasm` file does not exist.
    pub fn lds_listeners(&self, generation: u64) -> Value {
        let probe_routes = json!({
            "name": "generation_probe",
            "virtual_hosts": [{
                "name": "probe",
                "domains": ["*"],
                "routes": [{
                    "match": { "prefix": "/" },
                    "direct_response": { "status": 200, "body": { "inline_string": generation.to_string() } },
                }],
            }],
        });
        let probe = json!({
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "generation_probe",
                "route_config": probe_routes,
                "http_filters": [router()],
            }
        });
        let mut gateway = self.http_connection_manager();
        // The gateway's own chain changes with every generation too, as it would when a control
        // plane pushes any change to it: Envoy rebuilds it, and its filters, from the new config.
        gateway["typed_config"]["server_name"] = json!(format!("gateway-{generation}"));
        json!({
            "version_info": generation.to_string(),
            "resources": [{
                "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
                "name": LISTENER_NAME,
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
                "filter_chains": [
                    { "filters": [gateway] },
                    {
                        "filter_chain_match": {
                            "source_prefix_ranges": [{ "address_prefix": GENERATION_PROBE_SOURCE.to_string(), "prefix_len": 32 }]
                        },
                        "filters": [probe],
                    },
                ],
            }],
        })
    }

    /// The HTTP connection manager of the `gateway` listener, with the filters.
    fn http_connection_manager(&self) -> Value {
        let mut http_filters: Vec<Value> = self.native_filters.clone();
        http_filters.extend(self.filters.iter().map(WasmFilter::to_http_filter));
        http_filters.push(router());

        let route_config = json!({
            "name": "gateway_routes",
            "virtual_hosts": [{
                "name": "all",
                "domains": ["*"],
                "routes": [
                    {
                        "match": { "prefix": "/direct/" },
                        "direct_response": {
                            "status": 418,
                            "body": { "inline_string": "direct" }
                        }
                    },
                    {
                        "match": { "prefix": "/dead/" },
                        "route": { "cluster": "dead" }
                    },
                    {
                        "match": { "prefix": "/" },
                        "route": { "cluster": "upstream" }
                    }
                ]
            }]
        });

        let mut hcm = json!({
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "gateway",
                "codec_type": "AUTO",
                "normalize_path": true,
                "merge_slashes": true,
                "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
                "common_http_protocol_options": {
                    "headers_with_underscores_action": "REJECT_REQUEST"
                },
                "use_remote_address": true,
                "request_timeout": "15s",
                "route_config": route_config,
                "http_filters": http_filters,
            }
        });

        if let Some(typed) = hcm["typed_config"].as_object_mut() {
            typed.extend(self.hcm_overrides.clone());
        }
        hcm
    }

    /// `upstream`, `dead` and the extra clusters.
    fn clusters(&self) -> Vec<Value> {
        let dead: SocketAddr = ([127, 0, 0, 1], 1).into();
        let mut upstream = static_cluster("upstream", self.upstream);
        if self.http1_trailers {
            upstream["typed_extension_protocol_options"] = upstream_http1_trailers();
        }
        let mut clusters = vec![upstream, static_cluster("dead", dead)];
        clusters.extend(self.extra_clusters.iter().cloned());
        clusters
    }
}

/// The name of the listener the tests send to.
pub const LISTENER_NAME: &str = "gateway";

/// The client address whose connections reach the generation probe of an LDS listener
/// ([`GatewayConfig::lds_listeners`]), not the gateway.
pub const GENERATION_PROBE_SOURCE: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 255, 255, 254);

fn admin_address() -> Value {
    json!({ "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } })
}

fn router() -> Value {
    json!({
        "name": "envoy.filters.http.router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_shape_without_filters() {
        let cfg = GatewayConfig::new(([127, 0, 0, 1], 4242).into()).extra_cluster(json!({"name": "x"}));
        let b = cfg.to_bootstrap();
        let clusters = b["static_resources"]["clusters"].as_array().expect("clusters");
        assert_eq!(clusters.len(), 3);
        assert_eq!(
            clusters[0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
                ["port_value"],
            4242
        );
        let hcm = &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        let filters = hcm["http_filters"].as_array().expect("http_filters");
        assert_eq!(filters.len(), 1);
        assert_eq!(filters[0]["name"], "envoy.filters.http.router");
    }

    #[test]
    fn native_filters_come_first_in_the_order_added() {
        let cfg = GatewayConfig::new(([127, 0, 0, 1], 4242).into())
            .native_filter(json!({"name": "first", "typed_config": {"x": 1}}))
            .native_filter(json!({"name": "second"}));
        let b = cfg.to_bootstrap();
        let hcm = &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        let filters = hcm["http_filters"].as_array().expect("http_filters");
        let names: Vec<&str> = filters.iter().map(|f| f["name"].as_str().expect("name")).collect();
        assert_eq!(names, ["first", "second", "envoy.filters.http.router"]);
        assert_eq!(filters[0]["typed_config"]["x"], 1, "used verbatim");
    }
}
