//! rate-limit through a real Envoy: local buckets shared by two workers, the rate-limit service
//! over gRPC and over HTTP/JSON, both header styles, failure modes, shadow mode, and a differential
//! run against Envoy's native rate-limit filter.

use std::net::SocketAddr;
use std::time::Duration;

use harness::config::{grpc_cluster, shipped_access_log_format, static_cluster, stdout_access_log};
use harness::ratelimit::{Fault, Limit, Transport, Unit};
use harness::{Gateway, OAuthServer, RateLimitService, Request, Response};
use serde_json::{json, Value};

const STAT: &str = "wasmcustom.apisec.rate_limit.";

fn stat(gw: &Gateway, name: &str) -> u64 {
    gw.envoy.counter(&format!("{STAT}{name}"))
}

fn local(name: &str, requests: u32, per: &str, descriptor: Value) -> Value {
    json!({"name": name, "descriptor": descriptor,
           "enforce": {"type": "local", "requests": requests, "per": per}})
}

fn constant(value: &str) -> Value {
    json!([{"key": "generic_key", "source": {"type": "constant", "value": value}}])
}

/// Sends `n` requests at once, each on its own connection, and returns the statuses.
fn burst(gw: &Gateway, n: usize, request: impl Fn(usize) -> Request + Sync) -> Vec<u16> {
    let addr = gw.envoy.listener();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let request = &request;
                scope.spawn(move || send(addr, &request(i)).status)
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("request thread")).collect()
    })
}

fn send(addr: SocketAddr, request: &Request) -> Response {
    harness::http::send(addr, request).unwrap_or_else(|e| panic!("request to {addr} failed: {e}"))
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// Two plugins with different configs in one VM share its shared data: each config's buckets are
/// its own (a limit of the same name in the other config never resets or spends them).
#[test]
fn plugins_with_different_configs_keep_their_buckets_apart() {
    let gw = Gateway::start_with(|c| {
        c.concurrency(2)
            .filter(
                "rate_limit",
                json!({"limits": [local("global", 25, "hour", constant("api"))]}),
            )
            .filter(
                "rate_limit",
                json!({"limits": [local("global", 10, "hour", constant("api"))]}),
            )
    });
    let statuses = burst(&gw, 40, |_| Request::get("/orders"));
    assert_eq!(count(&statuses, 200), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 30, "{statuses:?}");
    // The first plugin let 25 through to the second: its own bucket is empty now.
    assert_eq!(gw.get("/orders").status, 429);
}

/// A client over its own limit cannot use up a limit it shares with others: its refused requests
/// give back what they took from the shared bucket.
#[test]
fn a_client_over_its_own_limit_leaves_the_shared_limit_to_the_others() {
    let per_client = json!([{"key": "client", "source": {"type": "header", "header": "x-client"}}]);
    let gw = Gateway::start_with(|c| {
        c.concurrency(2).filter(
            "rate_limit",
            json!({"limits": [
                local("global", 5, "hour", constant("api")),
                local("per_client", 1, "hour", per_client),
            ]}),
        )
    });
    let from = |client: &str| gw.send(Request::get("/orders").header("x-client", client)).status;
    let mallory: Vec<u16> = (0..6).map(|_| from("mallory")).collect();
    assert_eq!(mallory, [200, 429, 429, 429, 429, 429]);
    let others: Vec<u16> = ["bob", "carol", "dave", "erin", "frank"].map(from).to_vec();
    assert_eq!(others, [200, 200, 200, 200, 429], "the global limit had 4 left");
    assert_eq!(stat(&gw, "over_limit_per_client"), 5);
    assert_eq!(stat(&gw, "over_limit_global"), 1);
}

#[test]
fn a_local_limit_holds_exactly_across_two_workers() {
    let gw = Gateway::start_with(|c| {
        c.concurrency(2).filter(
            "rate_limit",
            json!({"limits": [local("global", 25, "hour", constant("api"))]}),
        )
    });
    let statuses = burst(&gw, 60, |_| Request::get("/orders"));
    let connections_per_worker: Vec<u64> = (0..2)
        .map(|w| {
            gw.envoy
                .counter(&format!("listener.127.0.0.1_0.worker_{w}.downstream_cx_total"))
        })
        .collect();
    assert!(
        connections_per_worker.iter().all(|n| *n > 0),
        "both workers must take part: {connections_per_worker:?}"
    );
    assert_eq!(count(&statuses, 200), 25, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 35, "{statuses:?}");
    assert_eq!(
        gw.echo.requests().len(),
        25,
        "refused requests never reach the upstream"
    );
    assert_eq!(stat(&gw, "ok"), 25);
    assert_eq!(stat(&gw, "over_limit_global"), 35);
    let refused = gw.get("/orders");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["error"], "rate_limited");
    let retry_after: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(
        (1..=144).contains(&retry_after),
        "25 per hour: a token every 144 s, got {retry_after}"
    );
    assert_eq!(
        gw.envoy.stat("wasm.rate_limit.vm_reload"),
        Some(0),
        "the VM never failed"
    );
}

fn jwt_auth(oauth: &OAuthServer) -> Value {
    json!({
        "providers": {"idp": {"issuer": oauth.issuer(), "audiences": ["api"],
                              "jwks": {"type": "inline", "jwks": oauth.jwks_json()}}},
        "rules": [{"match": {"prefix": "/"}, "requires": {"type": "provider", "name": "idp"}}],
    })
}

#[test]
fn a_limit_keyed_by_a_verified_claim_cannot_be_dodged_with_headers() {
    let oauth = OAuthServer::start();
    let per_user = local(
        "per_user",
        2,
        "hour",
        json!([{"key": "user", "source": {"type": "claim", "claim": "sub"}}]),
    );
    let gw = Gateway::start_with(|c| {
        c.filter("jwt_auth", jwt_auth(&oauth))
            .filter("rate_limit", json!({"limits": [per_user]}))
    });
    let alice = oauth.token(json!({"sub": "alice"}));
    let bob = oauth.token(json!({"sub": "bob"}));
    let as_user = |token: &str| Request::get("/data").header("Authorization", &format!("Bearer {token}"));
    assert_eq!(gw.send(as_user(&alice)).status, 200);
    assert_eq!(gw.send(as_user(&alice)).status, 200);
    // Every header a client might hope the key comes from: none of them does.
    let dodges = [
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Real-IP", "203.0.113.9"),
        ("X-User", "mallory"),
        ("Sub", "mallory"),
        ("X-Jwt-Sub", "mallory"),
    ];
    for (name, value) in dodges {
        assert_eq!(gw.send(as_user(&alice).header(name, value)).status, 429, "{name}");
    }
    assert_eq!(gw.send(as_user(&bob)).status, 200, "bob has his own bucket");
    assert_eq!(gw.get("/data").status, 401, "jwt-auth refuses before the limit counts");
    assert_eq!(stat(&gw, "over_limit_per_user"), dodges.len() as u64);
}

/// An upstream that honours `X-HTTP-Method-Override` runs a `POST` carrying one as the method it
/// names: such a request counts against the `DELETE` limit of its route.
#[test]
fn a_method_override_cannot_dodge_a_limit_on_a_method() {
    let deletes = json!({"name": "deletes", "routes": [{"prefix": "/orders", "methods": ["DELETE"]}],
                         "descriptor": constant("deletes"),
                         "enforce": {"type": "local", "requests": 1, "per": "hour"}});
    let gw = Gateway::start_with(|c| c.filter("rate_limit", json!({"limits": [deletes]})));
    let post = |override_header: Option<&str>| {
        let request = Request::post("/orders/7", "");
        let request = match override_header {
            Some(name) => request.header(name, "DELETE"),
            None => request,
        };
        gw.send(request).status
    };
    assert_eq!(post(None), 200);
    assert_eq!(post(None), 200, "a POST is not limited as a DELETE");
    assert_eq!(post(Some("X-HTTP-Method-Override")), 200);
    for name in ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"] {
        assert_eq!(post(Some(name)), 429, "{name}");
    }
    assert_eq!(stat(&gw, "over_limit_deletes"), 3);
}

/// A claim that is not a string keys by its JSON text. One that holds a number with a fraction or
/// an exponent keys nothing: the limit does not apply to its requests, as to a missing claim.
#[test]
fn a_claim_that_is_not_a_string_keys_by_its_json_text() {
    let oauth = OAuthServer::start();
    let per_tenant = local(
        "per_tenant",
        1,
        "hour",
        json!([{"key": "tenant", "source": {"type": "claim", "claim": "tenant"}}]),
    );
    let gw = Gateway::start_with(|c| {
        c.filter("jwt_auth", jwt_auth(&oauth))
            .filter("rate_limit", json!({"limits": [per_tenant]}))
    });
    let status = |tenant: &Value| {
        let token = oauth.token(json!({"sub": "alice", "tenant": tenant}));
        gw.send(Request::get("/data").header("Authorization", &format!("Bearer {token}")))
            .status
    };
    let tenants = [json!(7), json!(-7), json!(true), json!(["eu", "us"]), json!({"id": 7})];
    for tenant in &tenants {
        assert_eq!(status(tenant), 200, "{tenant}");
        assert_eq!(status(tenant), 429, "{tenant} has its own bucket, now spent");
    }
    assert_eq!(status(&json!("7")), 429, "the string 7 reads as the number 7");
    for tenant in [json!(7.5), json!(7.0), json!(["eu", 1.5])] {
        assert_eq!(status(&tenant), 200, "{tenant}");
        assert_eq!(status(&tenant), 200, "{tenant} keys nothing");
    }
    assert_eq!(stat(&gw, "over_limit_per_tenant"), tenants.len() as u64 + 1);
    assert_eq!(stat(&gw, "descriptor_incomplete"), 6);
}

/// Behind a trusted load balancer (one XFF hop) the client address comes from
/// `X-Forwarded-For`. An IPv6 client is its /64: the addresses of one network share a bucket.
#[test]
fn an_ipv6_client_cannot_dodge_an_address_limit_with_new_addresses_from_its_network() {
    let per_client = local(
        "per_client",
        2,
        "hour",
        json!([{"key": "client", "source": {"type": "client_address"}}]),
    );
    let gw = Gateway::start_with(|c| {
        c.hcm("xff_num_trusted_hops", json!(1))
            .filter("rate_limit", json!({"limits": [per_client]}))
    });
    let from = |address: &str| gw.send(Request::get("/data").header("X-Forwarded-For", address)).status;
    assert_eq!(from("2001:db8:1:2::5"), 200);
    assert_eq!(from("2001:db8:1:2::6"), 200);
    for address in ["2001:db8:1:2::7", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::5"] {
        assert_eq!(from(address), 429, "{address} is in the same /64");
    }
    assert_eq!(from("2001:db8:1:3::5"), 200, "another /64 is another client");
    assert_eq!(from("192.0.2.7"), 200);
    assert_eq!(from("192.0.2.7"), 200);
    assert_eq!(from("192.0.2.7"), 429);
    assert_eq!(from("192.0.2.8"), 200, "an IPv4 client is its address");
    assert_eq!(stat(&gw, "over_limit_per_client"), 4);
}

fn service_config(rls_cluster: &str, transport: Value, failure_mode: &str, timeout_ms: u64) -> Value {
    json!({
        "limits": [{"name": "per_client", "descriptor": [
            {"key": "client", "source": {"type": "header", "header": "x-client"}},
            {"key": "path", "source": {"type": "path"}}],
            "enforce": {"type": "service"}}],
        "service": {"transport": transport, "cluster": rls_cluster, "domain": "gateway",
                    "timeout_ms": timeout_ms, "failure_mode": failure_mode,
                    "allowed_response_headers": ["x-quota-note"]},
        "headers": {"style": "draft03", "on_allowed": true},
    })
}

fn service_gateway(rls: &RateLimitService, transport: &str, failure_mode: &str, timeout_ms: u64) -> Gateway {
    let (cluster, transport) = match transport {
        "grpc" => (grpc_cluster("ratelimit", rls.grpc_addr()), json!({"type": "grpc"})),
        _ => (static_cluster("ratelimit", rls.http_addr()), json!({"type": "http"})),
    };
    Gateway::start_with(|c| {
        c.extra_cluster(cluster).filter(
            "rate_limit",
            service_config("ratelimit", transport, failure_mode, timeout_ms),
        )
    })
}

#[test]
fn the_service_decides_over_grpc_and_over_http_json() {
    for (transport, recorded_as) in [("grpc", Transport::Grpc), ("http", Transport::Http)] {
        let rls = RateLimitService::start();
        rls.set_limit(
            "gateway",
            Limit::new(&[("client", None), ("path", None)], 2, Unit::Hour).named("per_client_hourly"),
        );
        rls.set_response_headers(vec![
            ("x-quota-note".into(), "counted".into()),
            ("x-internal-shard".into(), "7".into()),
        ]);
        let gw = service_gateway(&rls, transport, "deny", 1000);
        let request = |client: &str| Request::get("/orders?page=1").header("X-Client", client);

        let first = gw.send(request("a"));
        assert_eq!(first.status, 200, "{transport}");
        assert_eq!(first.header("x-quota-note").as_deref(), Some("counted"));
        assert_eq!(first.header("x-internal-shard"), None, "not allow-listed");
        assert_eq!(
            first.header("x-ratelimit-limit").as_deref(),
            Some("2, 2;w=3600;name=\"per_client_hourly\"")
        );
        assert_eq!(first.header("x-ratelimit-remaining").as_deref(), Some("1"));
        assert_eq!(gw.send(request("a")).status, 200);
        let refused = gw.send(request("a"));
        assert_eq!(refused.status, 429, "{transport}");
        let retry_after: u64 = refused
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("seconds");
        assert!((1..=3600).contains(&retry_after), "{retry_after}");
        assert_eq!(refused.header("x-quota-note").as_deref(), Some("counted"));
        assert_eq!(refused.header("x-ratelimit-remaining").as_deref(), Some("0"));
        assert_eq!(gw.send(request("b")).status, 200, "another client counts apart");
        assert_eq!(gw.echo.requests().len(), 3);

        let recorded = rls.requests();
        assert_eq!(recorded.len(), 4);
        let last = recorded.last().expect("a request");
        assert_eq!(last.transport, recorded_as);
        assert_eq!(last.domain, "gateway");
        assert_eq!(last.hits_addend, 0, "cost 1 is the protocol default and is left out");
        let entries: Vec<Vec<(String, String)>> = last.descriptors.iter().map(|d| d.entries.clone()).collect();
        assert_eq!(
            entries,
            vec![vec![("client".into(), "b".into()), ("path".into(), "/orders".into())]]
        );
        assert_eq!((stat(&gw, "ok"), stat(&gw, "over_limit_per_client")), (3, 1));
        // No header, no descriptor: the limit does not apply and the service is not asked.
        assert_eq!(gw.get("/orders").status, 200);
        assert_eq!(rls.calls(), 4);
    }
}

#[test]
fn a_failing_service_gets_503_under_deny_and_passes_under_allow() {
    let faults = [
        ("down", Fault::Down),
        ("slow", Fault::Slow(Duration::from_millis(1500))),
        ("error status", Fault::Status(tonic::Code::Internal)),
        ("UNKNOWN", Fault::Unknown),
    ];
    for transport in ["grpc", "http"] {
        let rls = RateLimitService::start();
        rls.set_limit(
            "gateway",
            Limit::new(&[("client", None), ("path", None)], 100, Unit::Hour),
        );
        let deny = service_gateway(&rls, transport, "deny", 300);
        let allow = service_gateway(&rls, transport, "allow", 300);
        let request = || Request::get("/x").header("X-Client", "a");
        assert_eq!(deny.send(request()).status, 200);
        for (name, fault) in &faults {
            rls.set_fault(fault.clone());
            let refused = deny.send(request());
            assert_eq!(refused.status, 503, "{transport} {name}: {}", refused.text());
            assert_eq!(refused.json()["error"], "temporarily_unavailable");
            assert_eq!(allow.send(request()).status, 200, "{transport} {name}");
            rls.set_fault(Fault::None);
            assert_eq!(deny.send(request()).status, 200, "{transport} {name}: recovered");
        }
        let n = faults.len() as u64;
        assert_eq!(stat(&deny, "service_error"), n, "{transport}");
        assert_eq!(stat(&deny, "failure_mode_allowed"), 0);
        assert_eq!(stat(&allow, "service_error"), n);
        assert_eq!(stat(&allow, "failure_mode_allowed"), n);
        assert_eq!(
            deny.echo.requests().len(),
            faults.len() + 1,
            "no refused request reached the upstream"
        );
    }
}

#[test]
fn headers_in_both_styles_on_allowed_and_refused_responses() {
    let limit = local(
        "per_path",
        2,
        "minute",
        json!([{"key": "path", "source": {"type": "path"}}]),
    );
    let draft = Gateway::start_with(|c| {
        c.filter(
            "rate_limit",
            json!({"limits": [limit.clone()], "headers": {"style": "draft03", "on_allowed": true}}),
        )
    });
    let ok = draft.get("/a");
    assert_eq!(
        ok.header("x-ratelimit-limit").as_deref(),
        Some("2, 2;w=60;name=\"per_path\"")
    );
    assert_eq!(ok.header("x-ratelimit-remaining").as_deref(), Some("1"));
    assert_eq!(ok.header("x-ratelimit-reset").as_deref(), Some("30"));
    assert!(!ok.has_header("ratelimit-policy"));
    draft.get("/a");
    let refused = draft.get("/a");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("x-ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(refused.header("retry-after").as_deref(), Some("30"));

    let ietf = Gateway::start_with(|c| {
        c.filter(
            "rate_limit",
            json!({"limits": [limit], "headers": {"style": "ietf", "on_allowed": true}}),
        )
    });
    let ok = ietf.get("/a");
    assert_eq!(ok.header("ratelimit-policy").as_deref(), Some("\"per_path\";q=2;w=60"));
    assert_eq!(ok.header("ratelimit").as_deref(), Some("\"per_path\";r=1;t=30"));
    assert!(!ok.has_header("x-ratelimit-limit"));
    ietf.get("/a");
    let refused = ietf.get("/a");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("ratelimit").as_deref(), Some("\"per_path\";r=0;t=60"));

    // Without on_allowed, only refusals carry them.
    let quiet = Gateway::start_with(|c| {
        c.filter(
            "rate_limit",
            json!({"limits": [local("q", 1, "hour", constant("q"))], "headers": {"style": "ietf"}}),
        )
    });
    assert!(!quiet.get("/").has_header("ratelimit"));
    assert!(quiet.get("/").has_header("ratelimit"));
}

/// Without Envoy's path normalisation, `/public/../login` is `/login` to the upstream: a path the
/// routes could read differently counts against a route-scoped limit instead of dodging it.
#[test]
fn without_envoy_normalisation_a_route_limit_is_not_dodged() {
    let mut login = local("login", 1, "hour", constant("login"));
    login["routes"] = json!([{"exact": "/login", "methods": ["POST"]}]);
    let gw = Gateway::start_with(|c| {
        c.filter("rate_limit", json!({"limits": [login]}))
            .without_path_normalisation()
    });
    assert_eq!(gw.send(Request::post("/login", "{}")).status, 200);
    for dodge in ["/public/../login", "/%2flogin", "//login", "/login/."] {
        assert_eq!(gw.send(Request::post(dodge, "{}")).status, 429, "{dodge}");
    }
    assert_eq!(stat(&gw, "over_limit_login"), 4);
    assert_eq!(
        gw.send(Request::post("/public/login", "{}")).status,
        200,
        "another route"
    );
}

#[test]
fn shadow_mode_counts_what_it_would_refuse_and_refuses_nothing() {
    let rls = RateLimitService::start();
    rls.set_limit("gateway", Limit::new(&[("generic_key", None)], 1, Unit::Hour));
    let gw = Gateway::start_with(|c| {
        c.extra_cluster(grpc_cluster("ratelimit", rls.grpc_addr())).filter(
            "rate_limit",
            json!({
                "limits": [local("local_one", 1, "hour", constant("l")),
                           {"name": "service_one", "descriptor": constant("s"), "enforce": {"type": "service"}}],
                "service": {"transport": {"type": "grpc"}, "cluster": "ratelimit", "domain": "gateway",
                            "failure_mode": "deny"},
                "shadow": true,
                "headers": {"style": "draft03", "on_allowed": true},
            }),
        )
    });
    for _ in 0..3 {
        let response = gw.get("/");
        assert_eq!(response.status, 200);
        assert!(
            !response.has_header("x-ratelimit-limit"),
            "shadow mode tells clients nothing"
        );
    }
    rls.set_fault(Fault::Down);
    assert_eq!(
        gw.get("/").status,
        200,
        "shadow mode never refuses, not even a failed service"
    );
    assert_eq!(gw.echo.requests().len(), 4);
    assert_eq!(stat(&gw, "shadow_over_limit"), 3);
    assert_eq!(stat(&gw, "over_limit_local_one"), 3);
    assert_eq!(stat(&gw, "over_limit_service_one"), 2);
    assert_eq!(stat(&gw, "over_limit"), 0);
    assert_eq!(stat(&gw, "service_error"), 1);
}

/// Envoy's own `envoy.filters.http.ratelimit` with the same descriptors, against the same service.
fn native_gateway(rls: &RateLimitService) -> Gateway {
    let route_config = json!({
        "name": "native",
        "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
            "match": {"prefix": "/"},
            "route": {"cluster": "upstream", "rate_limits": [
                {"actions": [{"request_headers": {"header_name": "x-client", "descriptor_key": "client"}},
                             {"request_headers": {"header_name": ":path", "descriptor_key": "path"}}]},
                {"actions": [{"generic_key": {"descriptor_value": "all"}}]},
            ]},
        }]}],
    });
    Gateway::start_with(|c| {
        c.extra_cluster(grpc_cluster("ratelimit", rls.grpc_addr()))
            .hcm("route_config", route_config)
            .native_filter(json!({
                "name": "envoy.filters.http.ratelimit",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit",
                    "domain": "native",
                    "failure_mode_deny": true,
                    "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
                    "timeout": "1s",
                    "rate_limit_service": {"transport_api_version": "V3",
                                           "grpc_service": {"envoy_grpc": {"cluster_name": "ratelimit"}}},
                },
            }))
    })
}

fn wasm_gateway(rls: &RateLimitService) -> Gateway {
    Gateway::start_with(|c| {
        c.extra_cluster(grpc_cluster("ratelimit", rls.grpc_addr())).filter(
            "rate_limit",
            json!({
                "limits": [
                    {"name": "per_client", "descriptor": [
                        {"key": "client", "source": {"type": "header", "header": "x-client"}},
                        {"key": "path", "source": {"type": "path"}}],
                     "enforce": {"type": "service"}},
                    {"name": "all", "descriptor": constant("all"), "enforce": {"type": "service"}},
                ],
                "service": {"transport": {"type": "grpc"}, "cluster": "ratelimit", "domain": "wasm",
                            "failure_mode": "deny", "timeout_ms": 1000},
                "headers": {"style": "draft03", "on_allowed": true},
            }),
        )
    })
}

#[test]
fn decisions_match_envoys_native_rate_limit_filter() {
    let rls = RateLimitService::start();
    for domain in ["native", "wasm"] {
        rls.set_limit(domain, Limit::new(&[("client", None), ("path", None)], 3, Unit::Minute));
        rls.set_limit(
            domain,
            Limit::new(&[("client", Some("vip")), ("path", None)], 5, Unit::Hour).named("vip"),
        );
        rls.set_limit(domain, Limit::new(&[("generic_key", Some("all"))], 12, Unit::Hour));
    }
    let native = native_gateway(&rls);
    let wasm = wasm_gateway(&rls);
    // A mix of clients, paths and a request without the header (only the global limit applies).
    let sequence: Vec<Request> = [
        "a", "a", "b", "a", "a", "vip", "", "b", "vip", "a", "c", "vip", "b", "c", "", "a",
    ]
    .iter()
    .enumerate()
    .map(|(i, client)| {
        let path = if i % 5 == 4 { "/other" } else { "/orders" };
        let request = Request::get(path);
        if client.is_empty() {
            request
        } else {
            request.header("X-Client", client)
        }
    })
    .collect();
    let mut disagreements = Vec::new();
    let (mut statuses_seen, mut headers_seen) = (Vec::new(), false);
    for (i, request) in sequence.iter().enumerate() {
        rls.clear_requests();
        let from_native = native.send(request.clone());
        let native_asked = rls.requests();
        rls.clear_requests();
        let from_wasm = wasm.send(request.clone());
        let wasm_asked = rls.requests();
        let descriptors = |asked: &[harness::ratelimit::RecordedRequest]| -> Vec<Vec<(String, String)>> {
            asked
                .iter()
                .flat_map(|r| r.descriptors.iter().map(|d| d.entries.clone()))
                .collect()
        };
        assert_eq!(
            descriptors(&native_asked),
            descriptors(&wasm_asked),
            "request {i}: descriptors"
        );
        let headers = |r: &Response| {
            (
                r.status,
                r.header("x-ratelimit-limit"),
                r.header("x-ratelimit-remaining"),
            )
        };
        statuses_seen.push(from_native.status);
        headers_seen |= from_native.has_header("x-ratelimit-limit");
        if headers(&from_native) != headers(&from_wasm) {
            disagreements.push((i, headers(&from_native), headers(&from_wasm)));
        }
        let reset = |r: &Response| -> i64 { r.header("x-ratelimit-reset").map_or(-1, |v| v.parse().unwrap_or(-2)) };
        assert!(
            (reset(&from_native) - reset(&from_wasm)).abs() <= 1,
            "request {i}: reset"
        );
    }
    assert!(disagreements.is_empty(), "native and wasm disagree: {disagreements:#?}");
    assert!(
        statuses_seen.contains(&429) && statuses_seen.contains(&200) && headers_seen,
        "the sequence must exercise refusals, passes and rate-limit headers: {statuses_seen:?}"
    );
    assert_eq!(native.echo.requests().len(), wasm.echo.requests().len());
}

#[test]
fn a_bad_config_is_refused_at_load_with_the_field_path() {
    let log = Gateway::start_refused(|c| {
        c.filter(
            "rate_limit",
            json!({"limits": [local("per_client", 0, "minute", constant("x"))]}),
        )
    });
    assert!(
        log.contains("rate_limit: invalid configuration: limits[0].enforce.requests: must be at least 1"),
        "{log}"
    );
}

/// A limit keyed on a header the client holds one value of (an API key the upstream checks) is
/// not dodged by sending that header more than once: Envoy forwards every copy and an upstream
/// reads one, so every request with several copies shares one bucket.
#[test]
fn repeating_the_key_header_does_not_dodge_a_limit_on_it() {
    let gw = Gateway::start_with(|c| {
        c.filter(
            "rate_limit",
            json!({"limits": [local("per_key", 1, "hour",
                json!([{"key": "api_key", "source": {"type": "header", "header": "x-api-key"}}]))]}),
        )
    });
    let with_key = |copies: usize| (0..copies).fold(Request::get("/orders"), |r, _| r.header("X-Api-Key", "k1"));
    assert_eq!(gw.send(with_key(1)).status, 200);
    assert_eq!(gw.send(with_key(1)).status, 429);
    assert_eq!(
        gw.send(with_key(2)).status,
        200,
        "the first request with several copies"
    );
    assert_eq!(gw.send(with_key(2)).status, 429, "the key sent twice again");
    assert_eq!(gw.send(with_key(3)).status, 429, "the key sent three times");
    assert_eq!(gw.echo.request_count(), 2);
}

/// A per-tenant limit keys on `:authority` (Envoy hands filters the `Host` header so), read as
/// the host in any letter case, port or trailing dot; `host` itself is refused at load with what
/// to write instead.
#[test]
fn a_limit_keyed_on_the_authority_holds_for_every_spelling_of_the_host() {
    let per_host = |header: &str| {
        json!({"limits": [local("per_host", 1, "hour",
            json!([{"key": "host", "source": {"type": "header", "header": header}}]))]})
    };
    let gw = Gateway::start_with(|c| c.filter("rate_limit", per_host(":authority")));
    let to = |host: &str| gw.send(Request::get("/orders").header("Host", host)).status;
    assert_eq!(to("tenant-a.example"), 200);
    for spelling in ["TENANT-A.example", "tenant-a.example.", "tenant-a.example:8080"] {
        assert_eq!(to(spelling), 429, "{spelling}");
    }
    assert_eq!(to("tenant-b.example"), 200);
    assert_eq!(gw.echo.request_count(), 2);

    let log = Gateway::start_refused(|c| c.filter("rate_limit", per_host("host")));
    assert!(
        log.contains(
            r#"limits[0].descriptor[0].source.header: "host" reaches filters as ":authority": write ":authority""#
        ),
        "{log}"
    );
}

#[test]
fn the_shipped_access_log_shows_each_filters_outcome() {
    let oauth = OAuthServer::start();
    let scope_gate = json!({"rules": [
        {"id": "orders", "match": {"prefix": "/orders"}, "requires": {"type": "any_of", "scopes": ["orders:read"]}}]});
    let gw = Gateway::start_with(|c| {
        c.filter("jwt_auth", jwt_auth(&oauth))
            .filter("scope_gate", scope_gate)
            .filter(
                "rate_limit",
                json!({"limits": [local("per_user", 1, "hour",
                json!([{"key": "user", "source": {"type": "claim", "claim": "sub"}}]))]}),
            )
            .hcm(
                "access_log",
                stdout_access_log(&shipped_access_log_format("gateway.yaml")),
            )
    });
    let reader = oauth.token(json!({"sub": "alice", "scope": "orders:read"}));
    let nobody = oauth.token(json!({"sub": "bob", "scope": "profile"}));
    let send = |token: &str| gw.send(Request::get("/orders").header("Authorization", &format!("Bearer {token}")));
    assert_eq!(send(&reader).status, 200);
    assert_eq!(send(&reader).status, 429);
    assert_eq!(send(&nobody).status, 403);
    let expected = [
        "200 via_upstream",
        "header_scrub=- phantom_token=- jwt_auth=allowed scope_gate=allowed rate_limit=allowed",
        "429 ",
        "jwt_auth=allowed scope_gate=allowed rate_limit=over_limit",
        "403 ",
        "jwt_auth=allowed scope_gate=denied_orders rate_limit=-",
    ];
    gw.wait_until("three access-log lines", || {
        gw.envoy.log().lines().filter(|l| l.contains(" jwt_auth=")).count() == 3
    });
    let log = gw.envoy.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(" jwt_auth=")).collect();
    for (line, pair) in lines.iter().zip(expected.chunks(2)) {
        assert!(
            line.contains(pair[0]) && line.contains(pair[1]),
            "{line:?} lacks {pair:?}"
        );
    }
}

/// One HTTP/2 request without TLS (prior knowledge) on a connection of its own, `GET /orders`
/// with the header `name: value` sent as written: true when Envoy answered 200 (the
/// `:status: 200` of the static table, which is how Envoy's encoder writes it on a new
/// connection).
fn h2c_get_with(addr: SocketAddr, name: &str, value: &[u8]) -> bool {
    use std::io::{Read, Write};
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }
    // HPACK: :method GET, :scheme http, :path from the static table; :authority (index 1) and the
    // header as literals without indexing, neither Huffman-coded.
    let mut block = vec![0x82, 0x86, 0x04, 7];
    block.extend_from_slice(b"/orders");
    block.extend_from_slice(&[0x01, 9]);
    block.extend_from_slice(b"127.0.0.1");
    block.push(0x00);
    block.push(name.len() as u8);
    block.extend_from_slice(name.as_bytes());
    block.push(value.len() as u8);
    block.extend_from_slice(value);
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(4, 0, 0, &[]));
    out.extend(frame(1, 0x5, 1, &block));
    stream.write_all(&out).expect("send");
    loop {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head).expect("a frame from Envoy");
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).expect("the frame's payload");
        let stream_id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        match head[3] {
            // SETTINGS from Envoy: acknowledged.
            4 if head[4] & 1 == 0 => stream.write_all(&frame(4, 1, 0, &[])).expect("ack"),
            1 if stream_id == 1 => return payload.first() == Some(&0x88),
            3 | 7 => panic!("Envoy reset the request (frame type {})", head[3]),
            _ => {}
        }
    }
}

/// Over HTTP/2 Envoy hands filters a header value with the spaces or tabs a client put around it
/// (HTTP/1 parsers, Envoy's own among them, strip them; RFC 9110 section 5.5: they are not part of
/// the value). An upstream reads `k1 ` as `k1`, the API key the client holds: the limit on that
/// key must not give each spelling with whitespace a fresh bucket.
#[test]
fn whitespace_around_a_key_header_over_http2_does_not_dodge_a_limit_on_it() {
    let gw = Gateway::start_with(|c| {
        c.filter(
            "rate_limit",
            json!({"limits": [local("per_key", 1, "hour",
                json!([{"key": "api_key", "source": {"type": "header", "header": "x-api-key"}}]))]}),
        )
    });
    let addr = gw.envoy.listener();
    assert!(h2c_get_with(addr, "x-api-key", b"k1"), "the first request");
    assert!(!h2c_get_with(addr, "x-api-key", b"k1"), "the key's bucket is empty");
    let dodged: Vec<String> = [&b"k1 "[..], b"k1\t", b" k1", b"k1  "]
        .iter()
        .filter(|value| h2c_get_with(addr, "x-api-key", value))
        .map(|value| format!("{:?}", String::from_utf8_lossy(value)))
        .collect();
    let upstream_read: Vec<String> = gw
        .echo
        .requests()
        .iter()
        .flat_map(|r| r.headers.iter().filter(|(n, _)| n == "x-api-key"))
        .map(|(_, v)| format!("{:?}", String::from_utf8_lossy(v)))
        .collect();
    assert!(
        dodged.is_empty(),
        "passed with a fresh bucket: {dodged:?}; the upstream read the key as {upstream_read:?}"
    );
    assert_eq!(stat(&gw, "over_limit_per_key"), 5);
}

/// A request that goes away while the service is asked does not pass, so it costs the local limits
/// nothing: a client over its service limit that drops each request while the service thinks (a
/// closed connection, an HTTP/2 RST_STREAM right behind the HEADERS) must not drain a limit it
/// shares with everyone, without a single request reaching the upstream.
#[test]
fn a_client_that_abandons_its_requests_cannot_use_up_a_shared_local_limit() {
    use std::io::Write;
    let rls = RateLimitService::start();
    rls.set_limit("gateway", Limit::new(&[("client", None)], 1, Unit::Hour));
    let gw = Gateway::start_with(|c| {
        c.extra_cluster(grpc_cluster("ratelimit", rls.grpc_addr())).filter(
            "rate_limit",
            json!({
                "limits": [
                    local("global", 5, "hour", constant("api")),
                    {"name": "per_client", "descriptor": [{"key": "client", "source": {"type": "header", "header": "x-client"}}],
                     "enforce": {"type": "service"}},
                ],
                "service": {"transport": {"type": "grpc"}, "cluster": "ratelimit", "domain": "gateway", "timeout_ms": 5000},
            }),
        )
    });
    let from = |client: &str| gw.send(Request::get("/orders").header("x-client", client)).status;
    assert_eq!(from("mallory"), 200, "mallory's one request an hour");

    // Mallory's next requests each leave while the service holds its answer.
    let gate = harness::server::Gate::new();
    rls.set_fault(Fault::Hold(gate.clone()));
    let abandoned = Request::get("/orders").header("x-client", "mallory").to_bytes();
    for _ in 0..5 {
        let calls = rls.calls();
        let mut connection = std::net::TcpStream::connect(gw.envoy.listener()).expect("connect");
        connection.write_all(&abandoned).expect("send");
        gw.wait_until("the service to be asked", || rls.calls() > calls);
        drop(connection);
        gw.wait_until("Envoy to end the request", || gw.requests_in_flight() == 0);
    }
    gate.open();
    rls.set_fault(Fault::None);

    assert_eq!(
        gw.echo.request_count(),
        1,
        "none of the abandoned requests reached the upstream"
    );
    let others: Vec<u16> = ["bob", "carol", "dave", "erin", "frank"].map(from).to_vec();
    assert_eq!(
        others,
        [200, 200, 200, 200, 429],
        "the global limit had 4 left after mallory's one request"
    );
}

/// Behind one load balancer that appends the address a client connected from to
/// X-Forwarded-For, the setting the README and envoy/rate-limit.yaml give (`use_remote_address:
/// true` with `xff_num_trusted_hops: 1`) reads the address the load balancer saw: a client that
/// writes its own X-Forwarded-For entries cannot choose a fresh bucket with them.
#[test]
fn behind_one_load_balancer_a_client_cannot_choose_its_address() {
    let per_address = local(
        "per_address",
        1,
        "hour",
        json!([{"key": "client", "source": {"type": "client_address"}}]),
    );
    let gw = Gateway::start_with(|c| {
        c.hcm("use_remote_address", json!(true))
            .hcm("xff_num_trusted_hops", json!(1))
            .filter("rate_limit", json!({"limits": [per_address]}))
    });
    // The load balancer appends the address the client connected from, 192.0.2.7, to whatever
    // X-Forwarded-For the client sent.
    let via_load_balancer = |forged: Option<&str>| {
        let xff = forged.map_or("192.0.2.7".to_owned(), |f| format!("{f}, 192.0.2.7"));
        gw.send(Request::get("/data").header("X-Forwarded-For", &xff)).status
    };
    assert_eq!(via_load_balancer(None), 200);
    assert_eq!(via_load_balancer(None), 429);
    let dodged: Vec<&str> = ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .into_iter()
        .filter(|forged| via_load_balancer(Some(forged)) == 200)
        .collect();
    assert!(dodged.is_empty(), "192.0.2.7 passed again as {dodged:?}");
}
