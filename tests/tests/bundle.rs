//! The bundle: every filter in one module (`apisec_bundle.wasm`, `filters/bundle`), loaded by
//! `envoy/gateway-bundle.yaml` into one VM per thread, through a real Envoy.
//!
//! The shipped configs run as they ship, with only what ties them to the demo's fixed addresses
//! changed (listener and admin on ephemeral ports, the clusters at this test's services, the
//! issuer and authority in the filter configs at this test's OAuth server, module paths made
//! absolute): `gateway-bundle.yaml`, `gateway-chain.yaml` (the bundle's `chain` root: every filter
//! in one plugin) and, for comparison, `gateway.yaml` with one module and one VM per filter. All
//! gateways must behave alike as a client sees them, and the bundle must create a fifth of the VMs.

use std::collections::BTreeSet;
use std::fs;

use harness::demo::GATEWAY_CLIENT;
use harness::examples::{self, localize, Environment};
use harness::oauth::{Client, TokenFormat};
use harness::paths::{wasm_path, workspace_root};
use harness::{EchoUpstream, Envoy, Gateway, OAuthServer, RateLimitService, Request};
use serde_json::{json, Value};

const BUNDLE: &str = "gateway-bundle.yaml";
const CHAIN: &str = "gateway-chain.yaml";
const SEPARATE: &str = "gateway.yaml";
/// The bundle's module.
const MODULE: &str = "apisec_bundle";
/// Envoy's gauge of the V8 VMs alive. Per VM key (`vm_id`, code, VM configuration): the base VM
/// the plugins were configured in on the main thread, and one clone on each thread (the main
/// thread and every worker). (`….v8.created` counts more: a VM per plugin is also created to
/// check its config, and dropped.)
const VMS_ACTIVE: &str = "wasm.envoy.wasm.runtime.v8.active";
/// Workers, as `make run` has them: VMs are per thread, so more than one shows the sharing.
const WORKERS: u32 = 2;

/// `envoy/<file>`, as JSON.
fn shipped(file: &str) -> Value {
    let path = workspace_root().join("envoy").join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `typed_config.config` of every wasm filter of `bootstrap`'s (one) listener, in chain order.
fn plugins(bootstrap: &mut Value) -> Vec<&mut Value> {
    let hcm = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    hcm["http_filters"]
        .as_array_mut()
        .expect("http_filters")
        .iter_mut()
        .filter(|f| f["name"] == "envoy.filters.http.wasm")
        .map(|f| &mut f["typed_config"]["config"])
        .collect()
}

/// What the gateways call: the OAuth server (opaque tokens; the gateway's introspection client
/// registered) and the rate-limit service, as `harness::demo` sets them up, on ephemeral ports.
struct Services {
    oauth: OAuthServer,
    ratelimit: RateLimitService,
}

impl Services {
    fn start() -> Services {
        let oauth = OAuthServer::start();
        oauth.set_token_format(TokenFormat::Opaque);
        oauth.add_client(Client::new(GATEWAY_CLIENT.0, GATEWAY_CLIENT.1, ""));
        Services {
            oauth,
            ratelimit: RateLimitService::start(),
        }
    }

    /// `envoy/<file>` pointed at these services and at `upstream`, `edit` applied last.
    fn bootstrap(&self, file: &str, upstream: &EchoUpstream, edit: impl FnOnce(&mut Value)) -> Value {
        let mut bootstrap = shipped(file);
        bootstrap["admin"]["address"]["socket_address"]["port_value"] = json!(0);
        bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = json!(0);
        for cluster in bootstrap["static_resources"]["clusters"]
            .as_array_mut()
            .expect("clusters")
        {
            let addr = match cluster["name"].as_str() {
                Some("upstream") => upstream.addr(),
                Some("oauth") => self.oauth.addr(),
                Some("ratelimit") => self.ratelimit.grpc_addr(),
                other => panic!("{file}: a cluster this test does not know: {other:?}"),
            };
            let endpoint = &mut cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"];
            endpoint["address"]["socket_address"] =
                json!({"address": addr.ip().to_string(), "port_value": addr.port()});
        }
        let environment = Environment::oauth(&self.oauth);
        for plugin in plugins(&mut bootstrap) {
            // Envoy runs from a temporary directory: the module by its absolute path.
            let local = &mut plugin["vm_config"]["code"]["local"]["filename"];
            let stem = local
                .as_str()
                .and_then(|f| f.strip_prefix("target/wasm/"))
                .and_then(|f| f.strip_suffix(".wasm"))
                .unwrap_or_else(|| panic!("{file}: an unexpected module path {local}"))
                .to_owned();
            *local = json!(wasm_path(&stem).to_string_lossy());
            let value = &mut plugin["configuration"]["value"];
            let config: Value = serde_json::from_str(value.as_str().expect("a StringValue")).expect("JSON");
            *value = json!(localize(config, &environment).to_string());
        }
        edit(&mut bootstrap);
        bootstrap
    }

    /// `envoy/<file>` running on [`WORKERS`] workers, ready: Envoy's `/ready`, and the filters
    /// that verify JWTs holding the OAuth server's keys (before that they answer 503, as
    /// documented).
    fn gateway(&self, file: &str) -> Gateway {
        let echo = EchoUpstream::start();
        let bootstrap = self.bootstrap(file, &echo, with_http1_trailers);
        let envoy =
            Envoy::start(&bootstrap, WORKERS).unwrap_or_else(|log| panic!("{file}: Envoy did not start: {log}"));
        let gw = Gateway { envoy, echo };
        gw.wait_until("the OAuth server's keys", || {
            ["phantom_token", "jwt_auth"]
                .iter()
                .all(|f| gw.envoy.counter(&format!("wasmcustom.apisec.{f}.jwks_fetch_ok")) >= 1)
        });
        gw
    }

    /// An opaque token of client `client` holding `scope`.
    fn token(&self, client: &str, scope: &str) -> String {
        self.oauth
            .opaque_token(json!({"sub": client, "client_id": client, "scope": scope}))
    }
}

/// The test client speaks HTTP/1.1, where Envoy drops trailers unless told to pass them on (an
/// HTTP/2 client always can send them).
fn with_http1_trailers(bootstrap: &mut Value) {
    let hcm = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    hcm["http_protocol_options"] = json!({"enable_trailers": true});
    for cluster in bootstrap["static_resources"]["clusters"]
        .as_array_mut()
        .expect("clusters")
        .iter_mut()
        .filter(|c| c["name"] == "upstream")
    {
        cluster["typed_extension_protocol_options"] = harness::config::upstream_http1_trailers();
    }
}

fn bearer(req: Request, token: &str) -> Request {
    req.header("Authorization", &format!("Bearer {token}"))
}

/// The gateway's behaviour as a client sees it, for `file`: what the shipped chain promises, in
/// short (the gateway suite, `tests/tests/gateway.rs`, has the whole of it for `gateway.yaml`).
fn check_the_chain(file: &str, gw: &Gateway, services: &Services) {
    // An opaque token in, a verified JWT upstream, and the verified identity only.
    let reader = services.token("reader", "orders:read");
    let resp = gw.send(bearer(Request::get("/orders"), &reader).header("x-user-id", "admin"));
    assert_eq!(resp.status, 200, "{file}: {}", resp.text());
    let seen = gw.echo.last_request();
    let jwt = seen
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer ").map(str::to_owned))
        .unwrap_or_else(|| panic!("{file}: no bearer token upstream"));
    assert_eq!(jwt.split('.').count(), 3, "{file}: upstream got no JWT: {jwt}");
    assert!(!jwt.contains(&reader), "{file}: the opaque token leaked upstream");
    assert_eq!(seen.header_all("x-user-id"), ["reader"], "{file}");
    assert_eq!(seen.header_all("x-user-scope"), ["orders:read"], "{file}");
    // Security headers on the way back, and no server details.
    for (name, value) in harness::API_SECURITY_HEADERS {
        assert_eq!(resp.header(name).as_deref(), Some(value), "{file}: {name}");
    }
    assert!(
        !resp.has_header("server"),
        "{file}: server: {:?}",
        resp.header("server")
    );

    // Trailers pass the same rules: no identity from the client, no server details back.
    gw.echo.set_response_trailers(vec![
        ("x-powered-by".to_owned(), "PHP/8.3".to_owned()),
        ("x-checksum".to_owned(), "c2".to_owned()),
    ]);
    let resp = gw.send(
        bearer(Request::get("/orders"), &reader)
            .header("te", "trailers")
            .trailer("x-user-id", "admin")
            .trailer("x-checksum", "c1"),
    );
    gw.echo.set_response_trailers(Vec::new());
    assert_eq!(resp.status, 200, "{file}: {}", resp.text());
    let seen = gw.echo.last_request();
    assert_eq!(seen.header_all("x-user-id"), ["reader"], "{file}");
    assert!(seen.trailer_all("x-user-id").is_empty(), "{file}: {:?}", seen.trailers);
    assert_eq!(seen.trailer_all("x-checksum"), ["c1"], "{file}");
    let trailers: Vec<&str> = resp.trailers.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(trailers, ["x-checksum"], "{file}");

    let missing = gw.get("/orders");
    assert_eq!(missing.status, 401, "{file}");
    assert!(!missing.bearer_challenge("api").contains("error="), "{file}");
    assert_eq!(
        missing.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{file}: refusals too"
    );

    // A missing scope.
    let post =
        |token: &str| gw.send(bearer(Request::post("/orders", "{}"), token).header("Content-Type", "application/json"));
    let refused = post(&reader);
    assert_eq!(refused.status, 403, "{file}: {}", refused.text());
    assert!(
        refused.bearer_challenge("api").contains("error=\"insufficient_scope\""),
        "{file}"
    );
    let writer = services.token("writer", "orders:write");
    assert_eq!(post(&writer).status, 200, "{file}");

    // Five requests a minute per client, on every worker together.
    let limited = services.token("limited", "orders:read");
    for n in 1..=5 {
        let resp = gw.send(bearer(Request::get("/orders"), &limited));
        assert_eq!(resp.status, 200, "{file}: request {n}: {}", resp.text());
    }
    let over = gw.send(bearer(Request::get("/orders"), &limited));
    assert_eq!(over.status, 429, "{file}: {}", over.text());
    assert!(over.header("retry-after").is_some(), "{file}: 429 without Retry-After");
    assert!(
        services.ratelimit.calls() > 0,
        "{file}: the rate-limit service was never asked"
    );

    // Each filter counted under its own name.
    let count = |name: &str| gw.envoy.counter(&format!("wasmcustom.apisec.{name}"));
    assert_eq!(count("rate_limit.over_limit"), 1, "{file}");
    assert_eq!(count("scope_gate.denied_orders_write"), 1, "{file}");
    let stats = gw.envoy.stats();
    for filter in examples::FILTERS {
        let prefix = format!("wasmcustom.apisec.{}.", filter.root_id);
        assert!(stats.contains(&prefix), "{file}: no counters under {prefix}");
    }
}

#[test]
fn the_bundle_in_one_vm_behaves_as_the_chain_of_separate_modules() {
    let services = Services::start();
    let separate = services.gateway(SEPARATE);
    check_the_chain(SEPARATE, &separate, &services);
    let separate_vms = separate.envoy.counter(VMS_ACTIVE);
    drop(separate);

    let services = Services::start();
    let bundle = services.gateway(BUNDLE);
    check_the_chain(BUNDLE, &bundle, &services);
    let bundle_vms = bundle.envoy.counter(VMS_ACTIVE);

    // One VM per thread for the whole chain (and the base VM), against one per filter.
    assert_eq!(
        bundle_vms,
        u64::from(WORKERS) + 2,
        "{VMS_ACTIVE} with the bundle on {WORKERS} workers"
    );
    assert_eq!(
        separate_vms,
        5 * bundle_vms,
        "{VMS_ACTIVE}: separate modules {separate_vms}, bundle {bundle_vms}"
    );
    // Every plugin started in that VM; none failed or was reloaded.
    let log = bundle.envoy.log();
    for filter in examples::FILTERS {
        assert!(
            log.contains(&format!("{}: configured", filter.root_id)),
            "{} did not start",
            filter.root_id
        );
        assert_eq!(
            bundle.envoy.stat(&format!("wasm.{}.vm_reload_failure", filter.root_id)),
            Some(0)
        );
    }
}

#[test]
fn an_unknown_root_id_is_refused_at_load_naming_the_filters_the_module_hosts() {
    let services = Services::start();
    let echo = EchoUpstream::start();
    let bootstrap = services.bootstrap(BUNDLE, &echo, |bootstrap| {
        let mut plugins = plugins(bootstrap);
        let scope_gate = plugins
            .iter_mut()
            .find(|p| p["root_id"] == "scope_gate")
            .expect("a scope_gate plugin");
        scope_gate["root_id"] = json!("scope_gates");
    });
    let log = match Envoy::start(&bootstrap, 1) {
        Ok(envoy) => panic!("Envoy accepted root_id scope_gates:\n{}", envoy.log()),
        Err(log) => log,
    };
    assert!(
        log.contains(
            "invalid configuration: root_id: \"scope_gates\" names no filter of this module, which hosts \
             chain, header_scrub, jwt_auth, phantom_token, rate_limit, scope_gate"
        ),
        "{log}"
    );
}

#[test]
fn gateway_bundle_yaml_is_gateway_yaml_with_one_vm_for_all_filters() {
    let mut bundle = shipped(BUNDLE);
    let mut separate = shipped(SEPARATE);
    let vm_configs: Vec<Value> = plugins(&mut bundle).iter().map(|p| p["vm_config"].clone()).collect();
    let root_ids: Vec<&str> = examples::FILTERS.iter().map(|f| f.root_id).collect();
    let bundle_root_ids: Vec<String> = plugins(&mut bundle)
        .iter()
        .map(|p| p["root_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        bundle_root_ids, root_ids,
        "{BUNDLE}: one plugin per filter, in chain order"
    );
    let distinct: BTreeSet<String> = vm_configs.iter().map(Value::to_string).collect();
    assert_eq!(
        distinct.len(),
        1,
        "{BUNDLE}: every plugin must have the same vm_config: {distinct:?}"
    );
    let vm_config = &vm_configs[0];
    assert_eq!(vm_config["vm_id"], "apisec");
    assert_eq!(
        vm_config["code"]["local"]["filename"],
        format!("target/wasm/{MODULE}.wasm")
    );
    // Everything else is gateway.yaml's: listener, clusters, chain and filter configs.
    for plugin in plugins(&mut separate) {
        plugin["vm_config"] = vm_config.clone();
    }
    let differences = examples::json_differences(&separate, &bundle);
    assert!(
        differences.is_empty(),
        "{BUNDLE} differs from {SEPARATE} beyond the vm_config:\n{}",
        differences.join("\n")
    );
}

#[test]
fn the_chain_in_one_plugin_behaves_as_the_chain_of_separate_plugins() {
    let services = Services::start();
    let chain = services.gateway(CHAIN);
    check_the_chain(CHAIN, &chain, &services);
    assert_eq!(
        chain.envoy.counter(VMS_ACTIVE),
        u64::from(WORKERS) + 2,
        "{VMS_ACTIVE} with the chain on {WORKERS} workers"
    );
    let log = chain.envoy.log();
    assert!(log.contains("chain: configured"), "{log}");
    assert_eq!(chain.envoy.stat("wasm.apisec_chain.vm_reload_failure"), Some(0));
    // Every member's counters under its own name, from the moment the chain is configured.
    let stats = chain.envoy.stats();
    assert!(
        !stats.contains("wasmcustom.apisec.chain."),
        "counters under the chain's name:\n{stats}"
    );
    // A preflight is answered by header-scrub, the first member: the members behind it never
    // see it, as they would not behind its own plugin.
    let jwt_auth_outcomes =
        || ["allowed", "denied_missing_token"].map(|c| chain.envoy.counter(&format!("wasmcustom.apisec.jwt_auth.{c}")));
    let before = jwt_auth_outcomes();
    let preflight = chain.send(
        Request::options("/orders")
            .header("Origin", "http://localhost:3000")
            .header("Access-Control-Request-Method", "POST"),
    );
    assert_eq!(preflight.status, 204, "{}", preflight.text());
    assert_eq!(
        preflight.header("access-control-allow-origin").as_deref(),
        Some("http://localhost:3000")
    );
    assert_eq!(
        chain
            .envoy
            .counter("wasmcustom.apisec.header_scrub.cors_preflight_allowed"),
        1
    );
    assert_eq!(jwt_auth_outcomes(), before, "jwt-auth saw the preflight");
}

#[test]
fn a_chain_member_with_a_bad_config_is_refused_at_load_with_its_place_in_the_chain() {
    let services = Services::start();
    let echo = EchoUpstream::start();
    let bootstrap = services.bootstrap(CHAIN, &echo, |bootstrap| {
        let mut plugins = plugins(bootstrap);
        let value = &mut plugins[0]["configuration"]["value"];
        let mut chain: Value = serde_json::from_str(value.as_str().expect("a StringValue")).expect("JSON");
        chain["filters"][4]["config"]["limits"][0]["enforce"]["requests"] = json!(0);
        *value = json!(chain.to_string());
    });
    let log = match Envoy::start(&bootstrap, 1) {
        Ok(envoy) => panic!("Envoy accepted a rate limit of 0 requests:\n{}", envoy.log()),
        Err(log) => log,
    };
    assert!(
        log.contains("chain: invalid configuration: filters[4].config.limits[0].enforce.requests: must be at least 1"),
        "{log}"
    );
}

#[test]
fn gateway_chain_yaml_is_gateway_yaml_with_the_filters_in_one_plugin() {
    let mut chain = shipped(CHAIN);
    let mut separate = shipped(SEPARATE);
    let members: Vec<Value> = plugins(&mut separate)
        .iter()
        .map(|p| {
            let config: Value =
                serde_json::from_str(p["configuration"]["value"].as_str().expect("a StringValue")).expect("JSON");
            json!({"filter": p["root_id"], "config": config})
        })
        .collect();
    let mut chain_plugins = plugins(&mut chain);
    assert_eq!(chain_plugins.len(), 1, "{CHAIN}: one wasm plugin");
    let plugin = &mut chain_plugins[0];
    assert_eq!(plugin["root_id"], examples::CHAIN_ROOT_ID);
    assert_eq!(
        plugin["vm_config"]["code"]["local"]["filename"],
        format!("target/wasm/{MODULE}.wasm")
    );
    let value: Value =
        serde_json::from_str(plugin["configuration"]["value"].as_str().expect("a StringValue")).expect("JSON");
    assert_eq!(
        value,
        json!({"filters": members}),
        "{CHAIN}: the members and their configs must be gateway.yaml's, in its order"
    );
    // Everything else is gateway.yaml's: listener, clusters, the rest of the HCM.
    let without_wasm = |bootstrap: &mut Value| {
        let hcm = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        hcm["http_filters"]
            .as_array_mut()
            .expect("http_filters")
            .retain(|f| f["name"] != "envoy.filters.http.wasm");
    };
    without_wasm(&mut chain);
    without_wasm(&mut separate);
    let differences = examples::json_differences(&separate, &chain);
    assert!(
        differences.is_empty(),
        "{CHAIN} differs from {SEPARATE} beyond the wasm plugins:\n{}",
        differences.join("\n")
    );
}

// ---- the chain against the same members as plugins of their own ----

use harness::WasmFilter;

/// Filter `root_id` of the bundle as a plugin of its own (its own vm_id).
fn bundle_plugin(root_id: &str, config: Value) -> WasmFilter {
    WasmFilter {
        file: Some(wasm_path(MODULE)),
        ..WasmFilter::new(root_id, config)
    }
}

/// The bundle's `chain` root with these members, in order.
fn chain_plugin(members: &[(&str, Value)]) -> WasmFilter {
    let filters: Vec<Value> = members
        .iter()
        .map(|(filter, config)| json!({"filter": filter, "config": config}))
        .collect();
    bundle_plugin(examples::CHAIN_ROOT_ID, json!({"filters": filters}))
}

/// The same members as separate plugins, in order.
fn separate_plugins(members: &[(&str, Value)]) -> Vec<WasmFilter> {
    members.iter().map(|(f, c)| bundle_plugin(f, c.clone())).collect()
}

/// A member that answers locally ends the request path there: the members after it never see
/// the request. As plugins of their own, Envoy does not run them on that reply either: its wasm
/// filter's `encodeHeaders` skips a plugin whose `decodeHeaders` never ran
/// (`source/extensions/common/wasm/context.cc`, `if (!http_request_started_) return Continue;`),
/// so here header-scrub, behind scope-gate's refusal, adds no security headers to it. The chain
/// runs every member that reads responses on the reply, the ones behind the refusal included.
#[test]
fn members_behind_the_one_that_answers_do_not_run_on_its_reply() {
    let members = [
        // No rule matches: every request is refused.
        ("scope_gate", json!({"realm": "api", "rules": []})),
        (
            "header_scrub",
            json!({"response": {"security_headers": {"preset": "api"}}}),
        ),
    ];
    let names = |response: &harness::Response| -> BTreeSet<String> {
        response
            .headers
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| name != "date")
            .collect()
    };
    let separate = Gateway::start(separate_plugins(&members));
    let refused = separate.get("/orders");
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(
        refused.header("x-content-type-options"),
        None,
        "as its own plugin, header-scrub behind the refusal does not run on it"
    );
    let as_plugins = names(&refused);
    drop(separate);

    let chain = Gateway::start(vec![chain_plugin(&members)]);
    let refused = chain.get("/orders");
    assert_eq!(refused.status, 403, "{}", refused.text());
    let in_chain = names(&refused);
    assert_eq!(
        in_chain.difference(&as_plugins).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "the chain ran header-scrub, behind the member that answered, on the reply"
    );
    assert_eq!(in_chain, as_plugins);
}

/// The same for the reply Envoy makes itself while a member holds the request (here its stream
/// idle timeout, 504, while jwt-auth waits for its first keys): as its own plugin, header-scrub behind
/// jwt-auth never saw the request and does not run on that reply; in the chain it does.
#[test]
fn members_behind_a_paused_one_do_not_run_on_envoys_reply() {
    use harness::config::static_cluster;
    use harness::oauth::{Fault, Gate};
    let oauth = OAuthServer::start();
    let keys = Gate::new();
    oauth.set_fault_at("/jwks", Fault::Hold(keys.clone()));
    let provider = json!({
        "issuer": oauth.issuer(),
        "audiences": ["api"],
        "jwks": {"type": "remote", "cluster": "oauth", "path": "/jwks", "timeout_ms": 10000},
    });
    let members = [
        ("jwt_auth", json!({"providers": {"idp": provider}})),
        (
            "header_scrub",
            json!({"response": {"security_headers": {"preset": "api"}}}),
        ),
    ];
    let token = oauth.token(json!({}));
    let timed_out = |filters: Vec<WasmFilter>| {
        let gw = Gateway::start_with(|c| {
            let mut c = c
                .extra_cluster(static_cluster("oauth", oauth.addr()))
                .hcm("stream_idle_timeout", json!("1s"));
            c.filters = filters;
            c
        });
        let response = gw.send(bearer(Request::get("/orders"), &token));
        assert_eq!(response.status, 504, "{}", response.text());
        assert_eq!(gw.echo.request_count(), 0);
        response
    };
    let as_plugins = timed_out(separate_plugins(&members));
    assert_eq!(
        as_plugins.header("x-content-type-options"),
        None,
        "as its own plugin, header-scrub behind the paused jwt-auth does not run on Envoy's reply"
    );
    let in_chain = timed_out(vec![chain_plugin(&members)]);
    keys.open();
    assert_eq!(
        in_chain.header("x-content-type-options"),
        None,
        "the chain ran header-scrub, behind the paused member, on Envoy's reply"
    );
}
