//! Envoy configurations of the variants: each [`Stage`] as a filter entry, on top of the
//! harness's [`GatewayConfig`].

use std::net::SocketAddr;

use harness::config::static_cluster;
use harness::paths::wasm_path;
use harness::{GatewayConfig, OAuthServer, WasmFilter};
use serde_json::{json, Value};

use crate::tokens::{self, AUDIENCE, ISSUER, SCOPE};
use crate::variants::{Modules, Stage, Variant};

/// The module that hosts every filter (`filters/bundle`), and the VM its plugins share (as in
/// `envoy/gateway-bundle.yaml`).
pub const BUNDLE_MODULE: &str = "apisec_bundle";
const BUNDLE_VM_ID: &str = "apisec";

/// Headers the chains set for the upstream, which a client must not send (header-scrub's
/// `reserved`).
const RESERVED: [&str; 3] = ["x-user-id", "x-user-scope", "x-jwt-payload"];
/// A limit no bench run reaches.
const NEVER_REACHED: u32 = 1_000_000_000;

/// The gateway of `variant` in front of `upstream`.
pub fn gateway(variant: &Variant, upstream: SocketAddr, oauth: &OAuthServer) -> GatewayConfig {
    let mut config = GatewayConfig::new(upstream);
    for stage in &variant.stages {
        config = match *stage {
            Stage::NativeJwt { cache } => config.native_filter(native_jwt(cache)),
            Stage::NativeHeaderMutation => config.native_filter(native_header_mutation()),
            Stage::NativeLocalRateLimit => config.native_filter(native_local_ratelimit()),
            Stage::JwtAuth {
                cache_max_entries,
                host_crypto,
                claim_headers,
            } => config.filter("jwt_auth", jwt_auth(cache_max_entries, host_crypto, claim_headers)),
            Stage::ScopeGate => config.filter("scope_gate", scope_gate()),
            Stage::HeaderScrub => config.filter("header_scrub", header_scrub()),
            Stage::RateLimit { per_client } => config.filter("rate_limit", rate_limit(per_client)),
            Stage::PhantomToken => config
                .filter("phantom_token", phantom_token(oauth))
                .extra_cluster(static_cluster("oauth", oauth.addr())),
        };
    }
    // No variant mixes native and wasm filters, so the harness's verbatim entries keep the chain
    // order.
    match variant.modules {
        Modules::PerFilter => {}
        // The same plugins, in the same order, all loaded from the bundle into one VM.
        Modules::Bundle => {
            for filter in std::mem::take(&mut config.filters) {
                config = config.native_filter(bundled(&filter));
            }
        }
        // The same filters, in the same order, as members of one plugin.
        Modules::Chain => {
            let members: Vec<Value> = std::mem::take(&mut config.filters)
                .into_iter()
                .map(|f| json!({"filter": f.name, "config": f.config}))
                .collect();
            let mut entry = bundled(&WasmFilter::new(BUNDLE_MODULE, json!({"filters": members})));
            entry["typed_config"]["config"]["name"] = json!("apisec_chain");
            entry["typed_config"]["config"]["root_id"] = json!("chain");
            config = config.native_filter(entry);
        }
    }
    config
}

/// `filter`'s entry (plugin name and `root_id`: the filter's name) with the `vm_config` every
/// bundled plugin shares: same `vm_id`, same module, no VM configuration.
fn bundled(filter: &WasmFilter) -> Value {
    let mut entry = filter.to_http_filter();
    entry["typed_config"]["config"]["vm_config"] = json!({
        "vm_id": BUNDLE_VM_ID,
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": wasm_path(BUNDLE_MODULE).to_string_lossy()}},
    });
    entry
}

fn jwt_auth(cache_max_entries: usize, host_crypto: bool, claim_headers: bool) -> Value {
    let mut provider = json!({
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "jwks": {"type": "inline", "jwks": tokens::jwks()},
    });
    if claim_headers {
        provider["claims_to_headers"] = json!([
            {"claim": "sub", "header": "x-user-id"},
            {"claim": "scope", "header": "x-user-scope"},
        ]);
    }
    json!({
        "providers": {"bench": provider},
        "cache_max_entries": cache_max_entries,
        "host_crypto": host_crypto,
    })
}

fn native_jwt(cache: bool) -> Value {
    let mut provider = json!({
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "local_jwks": {"inline_string": tokens::jwks().to_string()},
        // As jwt-auth: the token goes on to the upstream, `exp` is required.
        "forward": true,
        "require_expiration": true,
    });
    if cache {
        provider["jwt_cache_config"] = json!({"jwt_cache_size": 4096});
    }
    json!({
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"bench": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
        }
    })
}

fn scope_gate() -> Value {
    json!({
        "rules": [{"id": "bench", "match": {"prefix": "/"}, "requires": {"type": "any_of", "scopes": [SCOPE]}}],
    })
}

/// As `envoy/examples/header-scrub.json`, without CORS (the load sends no `Origin`).
fn header_scrub() -> Value {
    json!({
        "request": {"reserved": RESERVED, "remove_prefixes": ["x-internal-"]},
        "response": {"strip_preset": "default", "security_headers": {"preset": "api"}},
    })
}

/// What [`header_scrub`] does, as far as `header_mutation` can: it has no prefix or
/// case/underscore-variant matching, so the prefixes become the names the load sends.
fn native_header_mutation() -> Value {
    let mut request: Vec<Value> = RESERVED.iter().map(|h| json!({"remove": h})).collect();
    request.push(json!({"remove": "x-internal-trace"}));
    let mut response: Vec<Value> = [
        "server",
        "x-powered-by",
        "x-aspnet-version",
        "x-aspnetmvc-version",
        "x-envoy-upstream-service-time",
    ]
    .iter()
    .map(|h| json!({"remove": h}))
    .collect();
    response.extend(harness::API_SECURITY_HEADERS.iter().map(
        |(k, v)| json!({"append": {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}),
    ));
    json!({
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"request_mutations": request, "response_mutations": response},
        }
    })
}

fn rate_limit(per_client: bool) -> Value {
    let descriptor = if per_client {
        json!([{"key": "client", "source": {"type": "claim", "claim": "sub"},
                "fallback": {"type": "client_address"}}])
    } else {
        json!([{"key": "all", "source": {"type": "constant", "value": "all"}}])
    };
    json!({
        "limits": [{
            "name": "bench",
            "descriptor": descriptor,
            "enforce": {"type": "local", "requests": NEVER_REACHED, "per": "second"},
        }],
    })
}

fn native_local_ratelimit() -> Value {
    let all = json!({"default_value": {"numerator": 100, "denominator": "HUNDRED"}, "runtime_key": "bench_rl"});
    json!({
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "bench",
            "token_bucket": {"max_tokens": NEVER_REACHED, "tokens_per_fill": NEVER_REACHED, "fill_interval": "1s"},
            "filter_enabled": all,
            "filter_enforced": all,
        }
    })
}

/// phantom-token as in `envoy/examples/phantom-token.json`, with inline keys.
fn phantom_token(oauth: &OAuthServer) -> Value {
    json!({
        "introspection": {
            "cluster": "oauth", "path": "/introspect", "authority": "idp",
            "client_id": PHANTOM_CLIENT.0, "client_secret": PHANTOM_CLIENT.1,
            "response": {"type": "jwt"},
        },
        "jwt": {"issuer": oauth.issuer(), "audiences": [AUDIENCE], "jwks": {"type": "inline", "jwks": oauth.jwks_json()}},
    })
}

/// The client phantom-token introspects as.
pub const PHANTOM_CLIENT: (&str, &str) = ("gateway", "gateway-secret");
