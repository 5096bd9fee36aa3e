//! The filter core, driven the way the adapter drives it.

use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;

use shared::protobuf::Writer;
use shared::testkit::{with, Configured, FakeHost};
use shared::{Action, CallOutcome, GrpcOutcome, Headers, HttpFilter, Step};

use crate::rls::{self, Ask};
use crate::{RateLimit, OUTCOME_STATE};

fn local_limit(name: &str, requests: u32, descriptor: Value) -> Value {
    json!({"name": name, "descriptor": descriptor, "enforce": {"type": "local", "requests": requests, "per": "hour"}})
}

fn per_client(requests: u32) -> Value {
    local_limit(
        "per_client",
        requests,
        json!([{"key": "client_id", "source": {"type": "claim", "claim": "client_id"},
                "fallback": {"type": "client_address"}}]),
    )
}

/// Where the local limits' buckets live in shared data.
const BUCKETS: &str = "apisec.rate_limit.ns";

fn configured(config: Value) -> Configured<RateLimit> {
    Configured::new(&config.to_string()).unwrap()
}

fn request(path: &str) -> Headers {
    Headers::from_pairs([(":method", "GET"), (":path", path), (":authority", "api")])
}

fn host_with_claims(claims: Value) -> FakeHost {
    let mut host = FakeHost::default();
    set_claims(&mut host, &claims);
    host.properties
        .properties
        .insert(vec!["source".into(), "address".into()], b"192.0.2.7:50000".to_vec());
    host
}

/// The next request's verified claims, on the same Envoy (the same shared data).
fn set_claims(host: &mut FakeHost, claims: &Value) {
    host.properties
        .filter_state
        .insert(shared::handoff::CLAIMS.into(), claims.to_string().into_bytes());
}

fn status(step: &Step) -> u16 {
    step.local_reply().map_or(0, |r| r.status)
}

fn outcome(step: &Step) -> String {
    step.state_writes
        .iter()
        .find(|w| w.key == OUTCOME_STATE)
        .map(|w| String::from_utf8_lossy(&w.value).into_owned())
        .unwrap_or_default()
}

#[wasm_bindgen_test(unsupported = test)]
fn a_local_limit_allows_its_burst_then_refuses_with_retry_after() {
    let filter = configured(json!({"limits": [per_client(2)]}));
    let host = host_with_claims(json!({"client_id": "app-1"}));
    for _ in 0..2 {
        let step = filter.filter().on_request_headers(&request("/a"), &host.ctx());
        assert_eq!(step.action, Action::Continue);
        assert_eq!(outcome(&step), "allowed");
        assert_eq!(filter.counter_names(&step.counters), ["ok"]);
    }
    let step = filter.filter().on_request_headers(&request("/a"), &host.ctx());
    let reply = step.local_reply().unwrap();
    assert_eq!(reply.status, 429);
    assert_eq!(
        reply.header("retry-after"),
        Some("1800"),
        "2 per hour: a token every 30 min"
    );
    assert_eq!(outcome(&step), "over_limit");
    assert_eq!(
        filter.counter_names(&step.counters),
        ["over_limit_per_client", "over_limit"]
    );
}

/// Buckets live in the VM's shared data: workers with the same config count together, another
/// plugin in the VM (the bundle's, or one `vm_id` on two listeners) with a limit of the same name
/// and rate but another descriptor has buckets of its own.
#[wasm_bindgen_test(unsupported = test)]
fn plugins_count_against_the_same_buckets_only_with_the_same_config() {
    let config = json!({"limits": [per_client(1)]});
    let host = host_with_claims(json!({"client_id": "app-1"}));
    let worker1 = configured(config.clone());
    let worker2 = configured(config);
    assert_eq!(
        status(&worker1.filter().on_request_headers(&request("/"), &host.ctx())),
        0
    );
    assert_eq!(
        status(&worker2.filter().on_request_headers(&request("/"), &host.ctx())),
        429
    );

    // Keyed by a header instead: "app-1" in it is another client, not the claim's.
    let by_header = configured(json!({"limits": [local_limit(
        "per_client",
        1,
        json!([{"key": "client_id", "source": {"type": "header", "header": "x-client-id"}}]),
    )]}));
    let mut claiming = request("/");
    claiming.push("x-client-id", "app-1");
    assert_eq!(
        status(&by_header.filter().on_request_headers(&claiming, &host.ctx())),
        0
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn claims_key_the_limit_and_a_header_cannot_change_the_key() {
    let filter = configured(json!({"limits": [per_client(1)]}));
    let host = host_with_claims(json!({"client_id": "app-1"}));
    assert_eq!(
        status(&filter.filter().on_request_headers(&request("/"), &host.ctx())),
        0
    );
    // The client tries another identity in headers: the claim comes from filter state only.
    let mut dodging = request("/");
    dodging.push("client_id", "someone-else");
    dodging.push("x-client-id", "someone-else");
    assert_eq!(status(&filter.filter().on_request_headers(&dodging, &host.ctx())), 429);
    // Another verified client has its own bucket.
    let other = host_with_claims(json!({"client_id": "app-2"}));
    assert_eq!(
        status(&filter.filter().on_request_headers(&request("/"), &other.ctx())),
        0
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn without_the_claim_the_fallback_keys_by_address_and_without_any_value_the_limit_skips() {
    let filter = configured(json!({"limits": [per_client(1)]}));
    let mut host = host_with_claims(json!({"sub": "no client_id here"}));
    assert_eq!(
        status(&filter.filter().on_request_headers(&request("/"), &host.ctx())),
        0
    );
    assert_eq!(
        status(&filter.filter().on_request_headers(&request("/"), &host.ctx())),
        429
    );
    host.properties.properties.clear();
    let step = filter.filter().on_request_headers(&request("/"), &host.ctx());
    assert_eq!(status(&step), 0);
    assert_eq!(filter.counter_names(&step.counters), ["descriptor_incomplete", "ok"]);
}

/// A value from the fallback has its own bucket: a client whose `client_id` reads like an
/// address neither spends nor is refused by that address's anonymous bucket.
#[wasm_bindgen_test(unsupported = test)]
fn a_fallback_value_and_the_same_value_from_the_source_have_their_own_buckets() {
    let filter = configured(json!({"limits": [per_client(1)]}));
    let mut host = host_with_claims(json!({"sub": "anonymous"}));
    let send = |host: &FakeHost| status(&filter.filter().on_request_headers(&request("/"), &host.ctx()));
    assert_eq!(send(&host), 0);
    assert_eq!(send(&host), 429, "the address's bucket is empty");
    host.properties.filter_state.insert(
        shared::handoff::CLAIMS.into(),
        json!({"client_id": "192.0.2.7"}).to_string().into_bytes(),
    );
    assert_eq!(send(&host), 0, "the client 192.0.2.7 is not the address");
    assert_eq!(send(&host), 429);
}

#[wasm_bindgen_test(unsupported = test)]
fn routes_select_limits_and_costs_count() {
    let expensive = with(
        local_limit(
            "reports",
            10,
            json!([{"key": "k", "source": {"type": "constant", "value": "reports"}}]),
        ),
        json!({"routes": [{"prefix": "/reports/", "methods": ["POST"]}], "cost": 5}),
    );
    let filter = configured(json!({"limits": [expensive]}));
    let host = FakeHost::default();
    let post = |path: &str| Headers::from_pairs([(":method", "POST"), (":path", path)]);
    for _ in 0..2 {
        assert_eq!(
            status(&filter.filter().on_request_headers(&post("/reports/1"), &host.ctx())),
            0
        );
    }
    assert_eq!(
        status(&filter.filter().on_request_headers(&post("/reports/1"), &host.ctx())),
        429
    );
    // Not the route: not limited.
    assert_eq!(
        status(&filter.filter().on_request_headers(&post("/other"), &host.ctx())),
        0
    );
    assert_eq!(
        status(&filter.filter().on_request_headers(&request("/reports/1"), &host.ctx())),
        0
    );
}

/// Without Envoy's `normalize_path`, `/public/../login` is `/login` to the upstream: a path the
/// routes could read differently counts against every route-scoped limit its method fits.
#[wasm_bindgen_test(unsupported = test)]
fn a_path_not_in_normal_form_counts_against_every_routes_limit() {
    let login = with(
        local_limit(
            "login",
            1,
            json!([{"key": "k", "source": {"type": "constant", "value": "login"}}]),
        ),
        json!({"routes": [{"exact": "/login", "methods": ["POST"]}]}),
    );
    let filter = configured(json!({"limits": [login]}));
    let host = FakeHost::default();
    let send = |method: &str, path: &str| {
        let headers = Headers::from_pairs([(":method", method), (":path", path)]);
        status(&filter.filter().on_request_headers(&headers, &host.ctx()))
    };
    assert_eq!(send("POST", "/public/../login"), 0);
    for dodge in [
        "/login",
        "/public/../login",
        "/%2flogin",
        "//login",
        "/login;x",
        "/login/.",
    ] {
        assert_eq!(send("POST", dodge), 429, "{dodge}");
    }
    assert_eq!(send("GET", "/public/../login"), 0, "not the route's method");
    assert_eq!(send("POST", "/public/login"), 0, "a normal path elsewhere");
}

/// Keyed on the path, each spelling of `/login` that the upstream may read as `/login` would be a
/// bucket of its own: they share one instead.
#[wasm_bindgen_test(unsupported = test)]
fn paths_not_in_normal_form_share_one_path_bucket() {
    let per_path = local_limit("per_path", 1, json!([{"key": "path", "source": {"type": "path"}}]));
    let filter = configured(json!({"limits": [per_path]}));
    let host = FakeHost::default();
    let send = |path: &str| {
        let headers = Headers::from_pairs([(":method", "POST"), (":path", path)]);
        status(&filter.filter().on_request_headers(&headers, &host.ctx()))
    };
    assert_eq!(send("/login"), 0);
    assert_eq!(send("/login"), 429);
    assert_eq!(send("//login"), 0, "the first path not in normal form");
    for dodge in ["/./login", "/x/../login", "/login;a", "/%2flogin", "//login"] {
        assert_eq!(send(dodge), 429, "{dodge}");
    }
    assert_eq!(send("/orders"), 0, "another path in normal form");
}

/// `/v1/orders/42%3Acancel` is `/v1/orders/42:cancel` to an upstream that decodes the path
/// before routing it: a limit on the cancel route holds it, and a limit keyed on the path reads
/// both as one. A path-override header (`X-Original-URL`) could be any route to the upstream: it
/// counts against every route-scoped limit, as a path not in normal form does.
#[wasm_bindgen_test(unsupported = test)]
fn escaped_reserved_characters_and_path_overrides_do_not_dodge_a_route() {
    let cancel = with(
        local_limit(
            "cancel",
            1,
            json!([{"key": "k", "source": {"type": "constant", "value": "cancel"}}]),
        ),
        json!({"routes": [{"regex": "/v1/orders/[0-9]+:cancel"}]}),
    );
    let per_path = local_limit("per_path", 2, json!([{"key": "path", "source": {"type": "path"}}]));
    let filter = configured(json!({"limits": [cancel, per_path]}));
    let host = FakeHost::default();
    let send = |path: &str, extra: &[(&str, &str)]| {
        let mut headers = Headers::from_pairs([(":method", "POST"), (":path", path)]);
        extra
            .iter()
            .for_each(|(name, value)| headers.push(name, value.as_bytes()));
        let step = filter.filter().on_request_headers(&headers, &host.ctx());
        (status(&step), outcome(&step))
    };
    assert_eq!(send("/v1/orders/42:cancel", &[]).0, 0);
    assert_eq!(
        send("/v1/orders/42%3Acancel", &[]),
        (429, "over_limit".into()),
        "the cancel route"
    );
    assert_eq!(send("/v1/orders/43:cancel", &[]).0, 429);
    assert_eq!(
        send("/v1/orders/7", &[("x-original-url", "/v1/orders/7:cancel")]).0,
        429
    );
    assert_eq!(send("/v1/orders/7", &[]).0, 0, "another route");
    // Keyed on the path: `/users/a%40b` and `/users/a@b` share a bucket.
    assert_eq!(send("/users/a%40b", &[]).0, 0);
    assert_eq!(send("/users/a@b", &[]).0, 0);
    assert_eq!(send("/users/a%40b", &[]).0, 429);
}

/// Rails, Express's `method-override` and many Java stacks run the method that
/// `X-HTTP-Method-Override` names: a `POST` with one could be a `DELETE` to the upstream, so it
/// counts against every limit whose route its path fits, whatever the route's methods.
#[wasm_bindgen_test(unsupported = test)]
fn a_method_override_counts_against_every_route_its_path_fits() {
    let deletes = with(
        local_limit(
            "deletes",
            1,
            json!([{"key": "k", "source": {"type": "constant", "value": "deletes"}}]),
        ),
        json!({"routes": [{"prefix": "/orders", "methods": ["DELETE"]}]}),
    );
    let filter = configured(json!({"limits": [deletes]}));
    let host = FakeHost::default();
    let send = |method: &str, path: &str, header: Option<(&str, &str)>| {
        let mut pairs = vec![(":method", method), (":path", path)];
        pairs.extend(header);
        status(
            &filter
                .filter()
                .on_request_headers(&Headers::from_pairs(pairs), &host.ctx()),
        )
    };
    assert_eq!(send("POST", "/orders/1", None), 0, "not the route's method");
    assert_eq!(send("POST", "/orders/1", Some(("x-http-method-override", "DELETE"))), 0);
    for header in [
        "X-HTTP-Method-Override",
        "x-http-method",
        "X-Method-Override",
        "x_http_method_override",
    ] {
        assert_eq!(send("POST", "/orders/1", Some((header, "DELETE"))), 429, "{header}");
        assert_eq!(
            send("GET", "/orders/2", Some((header, "PUT"))),
            429,
            "{header}: any value"
        );
    }
    assert_eq!(send("DELETE", "/orders/1", None), 429);
    assert_eq!(
        send("POST", "/users/1", Some(("x-http-method-override", "DELETE"))),
        0,
        "another path"
    );
}

/// Keyed on the method, `post` and `Post` are `POST` and `HEAD` is `GET`, as routes read them:
/// many upstreams run the same handler for each, which would otherwise have a bucket of its own.
#[wasm_bindgen_test(unsupported = test)]
fn every_spelling_of_a_method_shares_its_bucket() {
    let per_method = local_limit(
        "per_method",
        1,
        json!([{"key": "method", "source": {"type": "method"}}]),
    );
    let filter = configured(json!({"limits": [per_method]}));
    let host = FakeHost::default();
    let send = |method: &str| {
        let headers = Headers::from_pairs([(":method", method), (":path", "/login")]);
        status(&filter.filter().on_request_headers(&headers, &host.ctx()))
    };
    assert_eq!(send("POST"), 0);
    for spelling in ["post", "Post", "pOST", "POST"] {
        assert_eq!(send(spelling), 429, "{spelling}");
    }
    assert_eq!(send("HEAD"), 0);
    assert_eq!(send("GET"), 429);
    assert_eq!(send("head"), 429);
    assert_eq!(send("DELETE"), 0, "another method");
}

/// Keyed on the method, each method an override could name would be a bucket of its own: every
/// request with an override shares one instead.
#[wasm_bindgen_test(unsupported = test)]
fn overridden_methods_share_one_method_bucket() {
    let per_method = local_limit(
        "per_method",
        1,
        json!([{"key": "method", "source": {"type": "method"}}]),
    );
    let filter = configured(json!({"limits": [per_method]}));
    let host = FakeHost::default();
    let send = |method: &str, header: Option<(&str, &str)>| {
        let mut pairs = vec![(":method", method), (":path", "/orders")];
        pairs.extend(header);
        status(
            &filter
                .filter()
                .on_request_headers(&Headers::from_pairs(pairs), &host.ctx()),
        )
    };
    assert_eq!(send("POST", None), 0);
    assert_eq!(send("POST", None), 429);
    assert_eq!(
        send("POST", Some(("x-http-method-override", "DELETE"))),
        0,
        "the first override"
    );
    for value in ["PUT", "PATCH", "DELETE", "post"] {
        assert_eq!(send("POST", Some(("x-http-method-override", value))), 429, "{value}");
    }
    let with_parameter = Headers::from_pairs([(":method", "PUT"), (":path", "/orders?_method=PATCH")]);
    assert_eq!(
        status(&filter.filter().on_request_headers(&with_parameter, &host.ctx())),
        429,
        "a _method parameter"
    );
    assert_eq!(send("GET", None), 0, "another method, not overridden");
}

#[wasm_bindgen_test(unsupported = test)]
fn headers_in_both_styles_on_refusals_and_on_allowed_responses() {
    let config = |style: &str| json!({"limits": [per_client(2)], "headers": {"style": style, "on_allowed": true}});
    let host = host_with_claims(json!({"client_id": "app-1"}));

    let filter = configured(config("draft03"));
    let mut first = filter.filter();
    first.on_request_headers(&request("/"), &host.ctx());
    let response = first.on_response_headers(&Headers::from_pairs([(":status", "200")]), &host.ctx());
    let mut edited = Headers::new();
    edited.apply(&response.header_edits);
    assert_eq!(
        edited.get_str("x-ratelimit-limit"),
        Some("2, 2;w=3600;name=\"per_client\"")
    );
    assert_eq!(edited.get_str("x-ratelimit-remaining"), Some("1"));
    assert_eq!(edited.get_str("x-ratelimit-reset"), Some("1800"));
    filter.filter().on_request_headers(&request("/"), &host.ctx());
    let refused = filter.filter().on_request_headers(&request("/"), &host.ctx());
    let reply = refused.local_reply().unwrap();
    assert_eq!(reply.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(reply.header("x-ratelimit-reset"), Some("3600"));

    let filter = configured(config("ietf"));
    filter.filter().on_request_headers(&request("/"), &host.ctx());
    filter.filter().on_request_headers(&request("/"), &host.ctx());
    let refused = filter.filter().on_request_headers(&request("/"), &host.ctx());
    let reply = refused.local_reply().unwrap();
    assert_eq!(reply.header("ratelimit-policy"), Some("\"per_client\";q=2;w=3600"));
    assert_eq!(reply.header("ratelimit"), Some("\"per_client\";r=0;t=3600"));
    assert_eq!(reply.header("x-ratelimit-limit"), None);
}

/// A local limit's quota is its bucket: `burst` requests, refilled in `burst * per / requests`
/// seconds, so the limit shown is never below the remaining count and the policy's rate is the
/// limit's rate.
#[wasm_bindgen_test(unsupported = test)]
fn local_limits_show_their_bucket_size_and_the_time_to_refill_it() {
    let per_ip = json!({"name": "per_ip", "descriptor": [{"key": "ip", "source": {"type": "client_address"}}],
                        "enforce": {"type": "local", "requests": 1, "per": "minute", "burst": 10}});
    let config = |style: &str| json!({"limits": [per_ip.clone()], "headers": {"style": style, "on_allowed": true}});
    let host = host_with_claims(json!({}));
    let answer = |filter: &Configured<RateLimit>| {
        let mut f = filter.filter();
        assert_eq!(status(&f.on_request_headers(&request("/"), &host.ctx())), 0);
        let response = f.on_response_headers(&Headers::from_pairs([(":status", "200")]), &host.ctx());
        let mut edited = Headers::new();
        edited.apply(&response.header_edits);
        edited
    };

    let draft = answer(&configured(config("draft03")));
    assert_eq!(draft.get_str("x-ratelimit-limit"), Some("10, 10;w=600;name=\"per_ip\""));
    assert_eq!(draft.get_str("x-ratelimit-remaining"), Some("9"));
    assert_eq!(draft.get_str("x-ratelimit-reset"), Some("60"));

    let ietf = answer(&configured(config("ietf")));
    assert_eq!(ietf.get_str("ratelimit-policy"), Some("\"per_ip\";q=10;w=600"));
    assert_eq!(ietf.get_str("ratelimit"), Some("\"per_ip\";r=9;t=60"));

    // A window that is not a whole number of seconds is rounded up: a bucket of 1 at 7 an hour
    // fills in 514.3 s.
    let odd = with(
        per_ip,
        json!({"enforce": {"type": "local", "requests": 7, "per": "hour", "burst": 1}}),
    );
    let filter = configured(json!({"limits": [odd], "headers": {"style": "ietf", "on_allowed": true}}));
    assert_eq!(
        answer(&filter).get_str("ratelimit-policy"),
        Some("\"per_ip\";q=1;w=515")
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn shadow_mode_counts_and_logs_but_never_refuses() {
    let filter = configured(json!({"limits": [per_client(1)], "shadow": true, "headers": {"style": "draft03"}}));
    let host = host_with_claims(json!({"client_id": "app-1"}));
    filter.filter().on_request_headers(&request("/"), &host.ctx());
    let step = filter.filter().on_request_headers(&request("/"), &host.ctx());
    assert_eq!(step.action, Action::Continue);
    assert_eq!(outcome(&step), "shadow_over_limit");
    assert_eq!(
        filter.counter_names(&step.counters),
        ["over_limit_per_client", "shadow_over_limit"]
    );
}

fn service_config(transport: Value, failure_mode: &str) -> Value {
    json!({
        "limits": [
            per_client(100),
            {"name": "fleet", "descriptor": [
                {"key": "client_id", "source": {"type": "claim", "claim": "client_id"}},
                {"key": "path", "source": {"type": "path"}}],
             "enforce": {"type": "service"}},
        ],
        "service": {"transport": transport, "cluster": "ratelimit", "domain": "gateway", "timeout_ms": 150,
                    "failure_mode": failure_mode, "allowed_response_headers": ["x-quota-note"]},
        "headers": {"style": "draft03", "on_allowed": true},
    })
}

fn grpc_answer(overall: u64, statuses: &[(u64, u32, u32, u64)]) -> GrpcOutcome {
    let mut w = Writer::new();
    w.uint(1, overall);
    for (code, requests, remaining, reset) in statuses {
        w.message(2, |s| {
            s.uint(1, *code)
                .message(2, |l| {
                    l.uint(1, u64::from(*requests)).uint(2, 2);
                })
                .uint(3, u64::from(*remaining))
                .message(4, |d| {
                    d.uint(1, *reset);
                });
        });
    }
    w.message(3, |h| {
        h.string(1, "x-quota-note").string(2, "fleet");
    });
    w.message(3, |h| {
        h.string(1, "set-cookie").string(2, "not=allowed");
    });
    GrpcOutcome {
        status: GrpcOutcome::OK,
        message: w.into_bytes(),
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn service_limits_go_out_in_one_grpc_call_and_its_answer_decides() {
    let filter = configured(service_config(json!({"type": "grpc"}), "deny"));
    let host = host_with_claims(json!({"client_id": "app-1"}));
    let mut f = filter.filter();
    let step = f.on_request_headers(&request("/orders?page=2"), &host.ctx());
    assert_eq!(step.action, Action::Pause);
    let call = step.grpc_calls.first().unwrap();
    assert_eq!(
        (call.cluster.as_str(), call.service.as_str(), call.method.as_str()),
        (
            "ratelimit",
            "envoy.service.ratelimit.v3.RateLimitService",
            "ShouldRateLimit"
        )
    );
    assert_eq!(call.timeout.as_millis(), 150);
    let expected = rls::encode_grpc(
        "gateway",
        &[Ask {
            descriptor: vec![("client_id".into(), "app-1".into()), ("path".into(), "/orders".into())],
            hits: 1,
        }],
    );
    assert_eq!(
        call.message, expected,
        "only the service limit is asked; the local one was counted here"
    );

    let allowed = f.on_grpc_response(grpc_answer(1, &[(1, 10, 9, 42)]), &host.ctx());
    assert_eq!(allowed.action, Action::Continue);
    assert_eq!(outcome(&allowed), "allowed");
    let response = f.on_response_headers(&Headers::new(), &host.ctx());
    let mut edited = Headers::new();
    edited.apply(&response.header_edits);
    assert_eq!(edited.get_str("x-quota-note"), Some("fleet"));
    assert_eq!(edited.get_str("set-cookie"), None, "not allow-listed");
    assert_eq!(
        edited.get_str("x-ratelimit-limit"),
        Some("10, 100;w=3600;name=\"per_client\", 10;w=60")
    );
    assert_eq!(edited.get_str("x-ratelimit-remaining"), Some("9"));

    let mut f = filter.filter();
    f.on_request_headers(&request("/orders"), &host.ctx());
    let refused = f.on_grpc_response(grpc_answer(2, &[(2, 10, 0, 42)]), &host.ctx());
    let reply = refused.local_reply().unwrap();
    assert_eq!((reply.status, reply.header("retry-after")), (429, Some("42")));
    assert_eq!(reply.header("x-quota-note"), Some("fleet"));
    assert_eq!(
        filter.counter_names(&refused.counters),
        ["over_limit_fleet", "over_limit"]
    );
}

/// A reset beyond the limit's window is the service's error: the client is told the window.
#[wasm_bindgen_test(unsupported = test)]
fn a_service_reset_beyond_the_window_is_cut_to_the_window() {
    let filter = configured(service_config(json!({"type": "grpc"}), "deny"));
    let host = host_with_claims(json!({"client_id": "app-1"}));
    let mut f = filter.filter();
    f.on_request_headers(&request("/orders"), &host.ctx());
    let a_century = 100 * 365 * 86_400;
    let refused = f.on_grpc_response(grpc_answer(2, &[(2, 10, 0, a_century)]), &host.ctx());
    let reply = refused.local_reply().unwrap();
    // The limit is per minute.
    assert_eq!((reply.status, reply.header("retry-after")), (429, Some("60")));
    assert_eq!(reply.header("x-ratelimit-reset"), Some("60"));
}

/// A service in its own shadow mode answers OK overall with descriptors OVER_LIMIT: the request
/// passes and counts as allowed, not as refused by the limit.
#[wasm_bindgen_test(unsupported = test)]
fn an_over_limit_descriptor_does_not_count_when_the_service_says_ok() {
    let filter = configured(service_config(json!({"type": "grpc"}), "deny"));
    let host = host_with_claims(json!({"client_id": "app-1"}));
    let mut f = filter.filter();
    f.on_request_headers(&request("/orders"), &host.ctx());
    let step = f.on_grpc_response(grpc_answer(1, &[(2, 10, 0, 42)]), &host.ctx());
    assert_eq!(step.action, Action::Continue);
    assert_eq!(outcome(&step), "allowed");
    assert_eq!(filter.counter_names(&step.counters), ["ok"]);
    let response = f.on_response_headers(&Headers::new(), &host.ctx());
    let mut edited = Headers::new();
    edited.apply(&response.header_edits);
    assert_eq!(edited.get_str("retry-after"), None);
    assert_eq!(edited.get_str("x-quota-note"), Some("fleet"));

    // Over HTTP likewise.
    let filter = configured(service_config(json!({"type": "http"}), "deny"));
    let mut f = filter.filter();
    f.on_request_headers(&request("/orders"), &host.ctx());
    let body = json!({"overallCode": "OK", "statuses": [{"code": "OVER_LIMIT", "durationUntilReset": "7s"}]});
    let step = f.on_call_response(
        CallOutcome::Response {
            status: 200,
            headers: Headers::new(),
            body: body.to_string().into_bytes(),
        },
        &host.ctx(),
    );
    assert_eq!(step.action, Action::Continue);
    assert_eq!(filter.counter_names(&step.counters), ["ok"]);
}

/// An answer that contradicts itself or that a protobuf or protojson parser would not read as it
/// reads is no answer to go by: the failure mode decides, never the part that says OK.
#[wasm_bindgen_test(unsupported = test)]
fn a_malformed_service_answer_gets_the_failure_mode() {
    let host = host_with_claims(json!({"client_id": "app-1"}));
    let http = |status: u16, body: &str| CallOutcome::Response {
        status,
        headers: Headers::new(),
        body: body.as_bytes().to_vec(),
    };
    // `overall_code` with the wire type fixed32: an unknown field to protobuf, so UNKNOWN.
    let wrong_wire_type = GrpcOutcome {
        status: GrpcOutcome::OK,
        message: vec![0x0d, 1, 0, 0, 0],
    };
    // OK, then padding past what the filter reads, then OVER_LIMIT (the last value of a field
    // wins): what the host would hand over of it must not read as OK.
    let mut oversized = Writer::new();
    oversized.uint(1, 1).bytes(15, &[0; 64 * 1024]).uint(1, 2);
    let oversized = GrpcOutcome {
        status: GrpcOutcome::OK,
        message: oversized.into_bytes(),
    };
    for failure in [wrong_wire_type, oversized] {
        let filter = configured(service_config(json!({"type": "grpc"}), "deny"));
        let mut f = filter.filter();
        f.on_request_headers(&request("/x"), &host.ctx());
        let step = f.on_grpc_response(failure.clone(), &host.ctx());
        assert_eq!(status(&step), 503, "{failure:?}");
        assert_eq!(filter.counter_names(&step.counters), ["service_error"]);
    }
    for (code, body) in [
        (429, r#"{"overallCode": "OK"}"#),
        (200, r#"{"overallCode": "OVER_LIMIT"}"#),
        (200, r#"{"overallCode": "OVER_LIMIT", "overallCode": "OK"}"#),
        (200, r#"{"overall_code": "OVER_LIMIT", "overallCode": "OK"}"#),
        (
            200,
            r#"{"overallCode": "OK", "responseHeadersToAdd": [{"key": "x-quota-note", "rawValue": "not base64!"}]}"#,
        ),
    ] {
        let filter = configured(service_config(json!({"type": "http"}), "deny"));
        let mut f = filter.filter();
        f.on_request_headers(&request("/x"), &host.ctx());
        let step = f.on_call_response(http(code, body), &host.ctx());
        assert_eq!(status(&step), 503, "{code} {body}");
        assert_eq!(filter.counter_names(&step.counters), ["service_error"], "{code} {body}");
    }
}

/// The JSON form writes `HeaderValue.raw_value` as base64 `rawValue`: an allowed header the
/// service sends so reaches the client with its value, as from the gRPC form.
#[wasm_bindgen_test(unsupported = test)]
fn a_header_the_service_sends_as_raw_bytes_keeps_its_value() {
    let host = host_with_claims(json!({"client_id": "app-1"}));
    let filter = configured(service_config(json!({"type": "http"}), "deny"));
    let mut f = filter.filter();
    f.on_request_headers(&request("/x"), &host.ctx());
    let body = r#"{"overallCode": "OK", "responseHeadersToAdd": [{"key": "x-quota-note", "rawValue": "Zm9v"}]}"#;
    let answer = CallOutcome::Response {
        status: 200,
        headers: Headers::new(),
        body: body.as_bytes().to_vec(),
    };
    assert_eq!(f.on_call_response(answer, &host.ctx()).action, Action::Continue);
    let mut edited = Headers::new();
    edited.apply(&f.on_response_headers(&Headers::new(), &host.ctx()).header_edits);
    assert_eq!(edited.get_str("x-quota-note"), Some("foo"));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_failing_service_gets_the_failure_mode() {
    let host = host_with_claims(json!({"client_id": "app-1"}));
    let failures = [
        GrpcOutcome::unavailable(),
        GrpcOutcome {
            status: GrpcOutcome::DEADLINE_EXCEEDED,
            message: Vec::new(),
        },
        grpc_answer(0, &[]),
        GrpcOutcome {
            status: GrpcOutcome::OK,
            message: vec![0x12, 40],
        },
    ];
    for failure in failures {
        let deny = configured(service_config(json!({"type": "grpc"}), "deny"));
        let mut f = deny.filter();
        f.on_request_headers(&request("/"), &host.ctx());
        let step = f.on_grpc_response(failure.clone(), &host.ctx());
        assert_eq!(status(&step), 503, "{failure:?}");
        assert_eq!(deny.counter_names(&step.counters), ["service_error"]);

        let allow = configured(service_config(json!({"type": "grpc"}), "allow"));
        let mut f = allow.filter();
        f.on_request_headers(&request("/"), &host.ctx());
        let step = f.on_grpc_response(failure, &host.ctx());
        assert_eq!(step.action, Action::Continue);
        assert_eq!(outcome(&step), "failure_mode_allowed");
        assert_eq!(
            allow.counter_names(&step.counters),
            ["service_error", "failure_mode_allowed"]
        );
    }
    // Shadow mode never refuses, even with failure_mode deny.
    let shadow = configured(with(
        service_config(json!({"type": "grpc"}), "deny"),
        json!({"shadow": true}),
    ));
    let mut f = shadow.filter();
    f.on_request_headers(&request("/"), &host.ctx());
    assert_eq!(
        f.on_grpc_response(GrpcOutcome::unavailable(), &host.ctx()).action,
        Action::Continue
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn the_http_form_posts_proto3_json_and_reads_200_and_429() {
    let filter = configured(service_config(json!({"type": "http"}), "deny"));
    let host = host_with_claims(json!({"client_id": "app-1"}));
    let mut f = filter.filter();
    let step = f.on_request_headers(&request("/x"), &host.ctx());
    let call = step.calls.first().unwrap();
    let header = |name: &str| {
        call.headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(header(":path").as_deref(), Some("/json"));
    assert_eq!(header(":method").as_deref(), Some("POST"));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    let body: Value = serde_json::from_slice(call.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["domain"], "gateway");
    assert_eq!(
        body["descriptors"][0]["entries"][1],
        json!({"key": "path", "value": "/x"})
    );

    let answer = |status: u16, body: Value| CallOutcome::Response {
        status,
        headers: Headers::new(),
        body: body.to_string().into_bytes(),
    };
    let over = json!({"overallCode": "OVER_LIMIT", "statuses": [{"code": "OVER_LIMIT", "durationUntilReset": "7s"}]});
    let step = f.on_call_response(answer(429, over), &host.ctx());
    assert_eq!(step.local_reply().and_then(|r| r.header("retry-after")), Some("7"));

    let mut f = filter.filter();
    f.on_request_headers(&request("/x"), &host.ctx());
    let step = f.on_call_response(answer(200, json!({"overallCode": "OK"})), &host.ctx());
    assert_eq!(step.action, Action::Continue);

    for failed in [answer(500, json!({})), answer(200, json!("nope")), CallOutcome::Failed] {
        let mut f = filter.filter();
        f.on_request_headers(&request("/x"), &host.ctx());
        assert_eq!(status(&f.on_call_response(failed, &host.ctx())), 503);
    }
}

/// A client over its own limit must not use up a limit it shares with everyone: a request one
/// limit refuses takes nothing from the others, whichever order they come in.
#[wasm_bindgen_test(unsupported = test)]
fn a_request_refused_by_one_limit_costs_the_others_nothing() {
    let global = local_limit(
        "global",
        5,
        json!([{"key": "all", "source": {"type": "constant", "value": "all"}}]),
    );
    for limits in [
        json!([per_client(1), global.clone()]),
        json!([global.clone(), per_client(1)]),
    ] {
        let filter = configured(json!({ "limits": limits }));
        let mallory = host_with_claims(json!({"client_id": "mallory"}));
        let answers: Vec<u16> = (0..6)
            .map(|_| status(&filter.filter().on_request_headers(&request("/"), &mallory.ctx())))
            .collect();
        assert_eq!(answers, [0, 429, 429, 429, 429, 429], "{limits}");
        let mut host = mallory;
        let others: Vec<u16> = ["bob", "carol", "dave", "erin", "frank"]
            .iter()
            .map(|client| {
                set_claims(&mut host, &json!({ "client_id": client }));
                status(&filter.filter().on_request_headers(&request("/"), &host.ctx()))
            })
            .collect();
        assert_eq!(others, [0, 0, 0, 0, 429], "{limits}: global had 4 left");
    }
}

/// Express matches routes without letter case by default: with `case_insensitive_paths` a login
/// limit holds for every spelling of the path, and the `path` source reads one spelling.
#[wasm_bindgen_test(unsupported = test)]
fn with_case_insensitive_paths_every_spelling_of_a_route_counts() {
    let login = json!({"name": "login", "routes": [{"exact": "/login"}],
        "descriptor": [{"key": "path", "source": {"type": "path"}}],
        "enforce": {"type": "local", "requests": 1, "per": "hour"}});
    let host = host_with_claims(json!({}));
    let answers = |config: Value| {
        let filter = configured(config);
        ["/login", "/login/", "/LOGIN", "/Login/", "/LoGiN?x=1"]
            .map(|path| status(&filter.filter().on_request_headers(&request(path), &host.ctx())))
    };
    assert_eq!(
        answers(json!({"limits": [login.clone()], "case_insensitive_paths": true})),
        [0, 429, 429, 429, 429]
    );
    assert_eq!(answers(json!({"limits": [login]})), [0, 429, 0, 0, 0], "as written");
}

/// The service refusing a request gives its local tokens back too.
#[wasm_bindgen_test(unsupported = test)]
fn a_request_the_service_refuses_keeps_no_local_tokens() {
    let mut config = service_config(json!({"type": "grpc"}), "deny");
    config["limits"][0] = per_client(1);
    let filter = configured(config);
    let host = host_with_claims(json!({"client_id": "app-1"}));
    for _ in 0..3 {
        let mut f = filter.filter();
        assert_eq!(f.on_request_headers(&request("/"), &host.ctx()).grpc_calls.len(), 1);
        let refused = f.on_grpc_response(grpc_answer(2, &[(2, 10, 0, 42)]), &host.ctx());
        assert_eq!(status(&refused), 429);
    }
    let mut f = filter.filter();
    assert_eq!(f.on_request_headers(&request("/"), &host.ctx()).grpc_calls.len(), 1);
    let allowed = f.on_grpc_response(grpc_answer(1, &[(1, 10, 9, 42)]), &host.ctx());
    assert_eq!(allowed.action, Action::Continue);
    assert_eq!(
        status(&filter.filter().on_request_headers(&request("/"), &host.ctx())),
        429
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_local_refusal_does_not_ask_the_service() {
    let filter = configured(with(
        service_config(json!({"type": "grpc"}), "deny"),
        json!({"limits": [per_client(1), {"name": "fleet", "descriptor": [
            {"key": "k", "source": {"type": "constant", "value": "v"}}], "enforce": {"type": "service"}}]}),
    ));
    let host = host_with_claims(json!({"client_id": "app-1"}));
    assert_eq!(
        filter
            .filter()
            .on_request_headers(&request("/"), &host.ctx())
            .grpc_calls
            .len(),
        1
    );
    let refused = filter.filter().on_request_headers(&request("/"), &host.ctx());
    assert_eq!(status(&refused), 429);
    assert!(refused.grpc_calls.is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn bad_configs_are_refused_with_the_field_path() {
    let error = |config: Value| match Configured::<RateLimit>::new(&config.to_string()) {
        Ok(_) => panic!("accepted {config}"),
        Err(e) => e.to_string(),
    };
    let base = json!({"limits": [per_client(5)]});
    let cases = [
        (json!({"limits": []}), "limits: give at least one limit"),
        (
            json!({"limits": [with(per_client(5), json!({"name": "Per-Client"}))]}),
            "limits[0].name: ",
        ),
        (
            json!({"limits": [per_client(5), per_client(6)]}),
            "limits[1].name: \"per_client\" is used by another limit",
        ),
        (
            json!({"limits": [with(per_client(5), json!({"descriptor": []}))]}),
            "limits[0].descriptor: give at least one entry",
        ),
        (
            json!({"limits": [with(per_client(5), json!({"descriptor": [{"key": "k", "source": {"type": "cookie"}}]}))]}),
            "limits[0].descriptor[0].source.type: unknown variant `cookie`",
        ),
        (
            json!({"limits": [with(per_client(5), json!({"enforce": {"type": "local", "requests": 0, "per": "minute"}}))]}),
            "limits[0].enforce.requests: must be at least 1",
        ),
        // Names a filter never sees, or sees in a form each spelling of a request is a value of.
        (
            json!({"limits": [with(per_client(5), json!({"descriptor": [{"key": "k", "source": {"type": "header", "header": "Host"}}]}))]}),
            "limits[0].descriptor[0].source.header: \"host\" reaches filters as \":authority\": write \":authority\"",
        ),
        (
            json!({"limits": [with(per_client(5), json!({"descriptor": [{"key": "k", "source": {"type": "claim", "claim": "sub"}, "fallback": {"type": "header", "header": ":path"}}]}))]}),
            "limits[0].descriptor[0].fallback.header: \":path\" holds the query",
        ),
        (
            json!({"limits": [with(per_client(5), json!({"descriptor": [{"key": "k", "source": {"type": "header", "header": ":method"}}]}))]}),
            "limits[0].descriptor[0].source.header: \":method\" holds every letter case",
        ),
        // Errors inside a tagged object name the member, not the object.
        (
            json!({"limits": [with(per_client(5), json!({"enforce": {"type": "local", "requests": "5", "per": "minute"}}))]}),
            "limits[0].enforce.requests: invalid type: string \"5\", expected u32",
        ),
        (
            json!({"limits": [with(per_client(5), json!({"descriptor": [{"key": "k", "source": {"type": "claim", "name": "sub"}}]}))]}),
            "limits[0].descriptor[0].source.name: unknown field `name`, expected `claim`",
        ),
        (
            json!({"limits": [with(per_client(5), json!({"enforce": {"type": "local", "requests": 5, "per": {"minute": null}}}))]}),
            "limits[0].enforce.per: invalid type: map, expected enum Unit",
        ),
        (
            json!({"limits": [with(per_client(5), json!({"cost": 9, "enforce": {"type": "local", "requests": 5, "per": "minute"}}))]}),
            "limits[0].enforce.burst: 5 is less than the cost 9",
        ),
        (
            json!({"limits": [with(per_client(5), json!({"enforce": {"type": "service"}}))]}),
            "limits[0].enforce: a service limit needs the `service` section",
        ),
        (
            with(
                base.clone(),
                json!({"service": {"transport": {"type": "http", "path": "json"}, "cluster": "rl", "domain": "d"}}),
            ),
            "service.transport.path: must start with '/'",
        ),
        (
            with(
                base.clone(),
                json!({"service": {"transport": {"type": "http", "path": "/json x"}, "cluster": "rl", "domain": "d"}}),
            ),
            "service.transport.path: \"/json x\" is not a request target",
        ),
        (
            with(
                base.clone(),
                json!({"service": {"transport": {"type": "grpc"}, "cluster": "rl", "domain": "d", "authority": "rl@host"}}),
            ),
            "service.authority: \"rl@host\" is not an authority",
        ),
        (
            with(
                base.clone(),
                json!({"service": {"transport": {"type": "grpc"}, "cluster": "rl", "domain": "d", "failure_mode": "open"}}),
            ),
            "service.failure_mode: unknown variant `open`",
        ),
        (
            with(base.clone(), json!({"headers": {"style": "draft-99"}})),
            "headers.style: unknown variant `draft-99`",
        ),
        (
            with(base.clone(), json!({"max_keys": 0})),
            "max_keys: must be between 1 and 1048576",
        ),
        (
            with(
                base.clone(),
                json!({"service": {"transport": {"type": "grpc"}, "cluster": "rl", "domain": "d", "timeout_ms": 4_294_967_296_u64}}),
            ),
            "service.timeout_ms: must be between 1 and 60000",
        ),
        (
            with(base.clone(), json!({"max_keys": 1_048_577})),
            "max_keys: must be between 1 and 1048576",
        ),
        (
            with(
                base.clone(),
                json!({"headers": {"style": "draft03"}, "service": {"transport": {"type": "grpc"}, "cluster": "rl", "domain": "d",
                    "allowed_response_headers": ["x-quota-note", "X-RateLimit-Remaining"]}}),
            ),
            "service.allowed_response_headers[1]: \"x-ratelimit-remaining\" is set by this filter: a client would get it twice",
        ),
        (
            with(
                base.clone(),
                json!({"service": {"transport": {"type": "grpc"}, "cluster": "rl", "domain": "d",
                    "allowed_response_headers": ["retry-after"]}}),
            ),
            "service.allowed_response_headers[0]: \"retry-after\" is set by this filter",
        ),
        (
            with(
                base.clone(),
                json!({"service": {"transport": {"type": "grpc"}, "cluster": "rl", "domain": "d",
                    "allowed_response_headers": ["x-quota-note", "Cache-Control"]}}),
            ),
            "service.allowed_response_headers[1]: \"cache-control\" is set by this filter: a client would get it twice",
        ),
        (
            with(
                base.clone(),
                json!({"service": {"transport": {"type": "grpc"}, "cluster": "rl", "domain": "d",
                    "allowed_response_headers": [":status"]}}),
            ),
            "service.allowed_response_headers[0]: \":status\" is a pseudo-header; a filter may not set it",
        ),
        (
            with(
                base.clone(),
                json!({"service": {"transport": {"type": "grpc"}, "cluster": "rl", "domain": "d",
                    "allowed_response_headers": ["x-quota-note", "content-length"]}}),
            ),
            "service.allowed_response_headers[1]: \"content-length\" is a hop-by-hop or framing header; a filter may not set it",
        ),
        (
            with(
                base,
                json!({"service": {"transport": {"type": "grpc"}, "cluster": "rl", "domain": "d",
                    "allowed_response_headers": ["connection"]}}),
            ),
            "service.allowed_response_headers[0]: \"connection\" is a hop-by-hop or framing header; a filter may not set it",
        ),
    ];
    for (config, expected) in cases {
        let message = error(config);
        assert!(
            message.starts_with(expected),
            "{message:?} should start with {expected:?}"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn start_creates_every_bucket_set_before_traffic() {
    let filter = configured(json!({"limits": [per_client(5)], "max_keys": 64}));
    let host = FakeHost::default();
    shared::FilterRoot::on_start(&*filter.root, &host.ctx());
    assert_eq!(host.store.keys_starting_with(BUCKETS).len(), 16);
}

/// Shared data outlives a config, and the host cannot delete a key: a config change must hand
/// the old config's keys on, or every change would leave megabytes behind.
#[wasm_bindgen_test(unsupported = test)]
fn config_changes_leave_no_shared_data_behind() {
    let mut host = host_with_claims(json!({"client_id": "c1"}));
    let running = configured(json!({"limits": [per_client(1)], "max_keys": 64}));
    shared::FilterRoot::on_start(&*running.root, &host.ctx());
    for requests in 2..12 {
        // The config before is gone: it stops renewing, and its lease runs out.
        host.now_ms += shared::namespace::LEASE_MS + 1;
        shared::FilterRoot::on_tick(&*running.root, &host.ctx());
        let filter = configured(json!({"limits": [per_client(requests)], "max_keys": 64}));
        shared::FilterRoot::on_start(&*filter.root, &host.ctx());
        for _ in 0..requests {
            assert_eq!(
                status(&filter.filter().on_request_headers(&request("/"), &host.ctx())),
                0
            );
        }
        assert_eq!(
            status(&filter.filter().on_request_headers(&request("/"), &host.ctx())),
            429,
            "a new config's bucket starts full, with its own size"
        );
    }
    assert_eq!(
        host.store.keys_starting_with(BUCKETS).len(),
        32,
        "the config kept running and the latest one"
    );
    assert_eq!(
        status(&running.filter().on_request_headers(&request("/"), &host.ctx())),
        0
    );
}

/// A path key reads escapes as route matches do: `/%6Cogin` is `/login`, and counts with it.
#[wasm_bindgen_test(unsupported = test)]
fn escaped_letters_do_not_give_a_path_a_bucket_of_its_own() {
    let filter =
        configured(json!({"limits": [local_limit("per_path", 1, json!([{"key": "p", "source": {"type": "path"}}]))]}));
    let host = host_with_claims(json!({}));
    assert_eq!(
        status(&filter.filter().on_request_headers(&request("/login"), &host.ctx())),
        0
    );
    for path in ["/%6Cogin", "/l%6fgin?x=1"] {
        assert_eq!(
            status(&filter.filter().on_request_headers(&request(path), &host.ctx())),
            429,
            "{path}"
        );
    }
    assert_eq!(
        status(&filter.filter().on_request_headers(&request("/logout"), &host.ctx())),
        0
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn every_source_reaches_the_descriptor() {
    let filter = configured(json!({
        "limits": [{"name": "all_sources", "descriptor": [
            {"key": "h", "source": {"type": "header", "header": "x-api-key"}},
            {"key": "m", "source": {"type": "method"}},
            {"key": "r", "source": {"type": "route"}},
            {"key": "a", "source": {"type": "client_address"}},
            {"key": "c", "source": {"type": "claim", "claim": "tier"}},
            {"key": "k", "source": {"type": "constant", "value": "v"}}],
            "enforce": {"type": "service"}}],
        "service": {"transport": {"type": "grpc"}, "cluster": "rl", "domain": "d"},
    }));
    let mut host = host_with_claims(json!({"tier": 3}));
    host.properties
        .properties
        .insert(vec!["xds".into(), "route_name".into()], b"orders_route".to_vec());
    let mut headers = request("/");
    headers.push("x-api-key", "k1");
    let step = filter.filter().on_request_headers(&headers, &host.ctx());
    let expected = rls::encode_grpc(
        "d",
        &[Ask {
            descriptor: [
                ("h", "k1"),
                ("m", "GET"),
                ("r", "orders_route"),
                ("a", "192.0.2.7"),
                ("c", "3"),
                ("k", "v"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
            hits: 1,
        }],
    );
    assert_eq!(step.grpc_calls.first().map(|c| &c.message), Some(&expected));
    // Without the route name the limit does not apply: nothing to ask.
    host.properties.properties.clear();
    let step = filter.filter().on_request_headers(&headers, &host.ctx());
    assert!(step.grpc_calls.is_empty());
    assert_eq!(filter.counter_names(&step.counters), ["descriptor_incomplete", "ok"]);
}

#[wasm_bindgen_test(unsupported = test)]
fn every_claim_any_limit_reads_is_found_fallbacks_included() {
    let filter = configured(json!({
        "limits": [
            {"name": "per_org", "descriptor": [
                {"key": "org", "source": {"type": "claim", "claim": "org"},
                 "fallback": {"type": "claim", "claim": "sub"}}],
             "enforce": {"type": "service"}},
            {"name": "per_tier", "descriptor": [
                {"key": "tier", "source": {"type": "claim", "claim": "tier"}}],
             "enforce": {"type": "service"}}],
        "service": {"transport": {"type": "grpc"}, "cluster": "rl", "domain": "d"},
    }));
    let host = host_with_claims(json!({"aud": ["x"], "sub": "alice", "nested": {"tier": "no"}, "tier": ["gold"]}));
    let step = filter.filter().on_request_headers(&request("/"), &host.ctx());
    let ask = |key: &str, value: &str| Ask {
        descriptor: vec![(key.to_owned(), value.to_owned())],
        hits: 1,
    };
    let expected = rls::encode_grpc("d", &[ask("org", "alice"), ask("tier", r#"["gold"]"#)]);
    assert_eq!(step.grpc_calls.first().map(|c| &c.message), Some(&expected));
}

/// A client that holds one API key gets no fresh bucket by sending its key more than once: an
/// upstream reads one copy (Go's `Header.Get`, a servlet's `getHeader` and Envoy's own
/// `request_headers` action the first), so every request with several copies shares one value.
#[wasm_bindgen_test(unsupported = test)]
fn repeating_a_header_does_not_give_its_value_a_new_bucket() {
    let filter = configured(json!({"limits": [local_limit(
        "per_key",
        1,
        json!([{"key": "api_key", "source": {"type": "header", "header": "x-api-key"}}]),
    )]}));
    let host = FakeHost::default();
    let with_key = |values: &[&str]| {
        let mut headers = request("/");
        for value in values {
            headers.push("x-api-key", *value);
        }
        headers
    };
    let run = |values: &[&str]| status(&filter.filter().on_request_headers(&with_key(values), &host.ctx()));
    assert_eq!(run(&["k1"]), 0);
    assert_eq!(run(&["k1"]), 429);
    assert_eq!(run(&["k1", "k1"]), 0, "the first request with several copies");
    for copies in [&["k1", "k1"][..], &["k1", "k1", "k1"], &["k2", "k1"], &["k1", "k2"]] {
        assert_eq!(run(copies), 429, "{copies:?}");
    }
    assert_eq!(run(&["k1,k1"]), 0, "one value with a comma is that value");
    assert_eq!(run(&["k2"]), 0);
}

/// A host name in any letter case, with a port or a trailing dot, is the same host to the
/// upstream: a limit keyed on `:authority` is not dodged by `TENANT-A.example`,
/// `tenant-a.example.` or `tenant-a.example:443`.
#[wasm_bindgen_test(unsupported = test)]
fn a_limit_keyed_on_the_authority_reads_every_spelling_of_the_host_as_one() {
    let filter = configured(json!({"limits": [local_limit(
        "per_host",
        1,
        json!([{"key": "host", "source": {"type": "header", "header": ":authority"}}]),
    )]}));
    let host = FakeHost::default();
    let to = |authority: &str| {
        let headers = Headers::from_pairs([(":method", "GET"), (":path", "/"), (":authority", authority)]);
        status(&filter.filter().on_request_headers(&headers, &host.ctx()))
    };
    assert_eq!(to("tenant-a.example"), 0);
    for spelling in [
        "TENANT-A.example",
        "tenant-a.example.",
        "tenant-a.example:443",
        "Tenant-A.Example.:8080",
    ] {
        assert_eq!(to(spelling), 429, "{spelling}");
    }
    assert_eq!(to("tenant-b.example"), 0);
}

/// A refused request costs the limits that allowed it nothing: those before the refusing one get
/// their tokens back, those after it are only asked. The 429's rate-limit headers show them as the
/// request left them, not with its tokens spent.
#[wasm_bindgen_test(unsupported = test)]
fn a_refusal_shows_the_other_limits_as_it_left_them() {
    let constant = |value: &str| json!([{"key": "k", "source": {"type": "constant", "value": value}}]);
    let wide = local_limit("wide", 10, constant("wide"));
    let narrow = local_limit("narrow", 1, constant("narrow"));
    for (limits, expected) in [
        ([&wide, &narrow], r#""wide";r=9;t=360, "narrow";r=0;t=3600"#),
        ([&narrow, &wide], r#""narrow";r=0;t=3600, "wide";r=9;t=360"#),
    ] {
        let filter = configured(json!({"limits": limits, "headers": {"style": "ietf"}}));
        let host = FakeHost::default();
        assert_eq!(
            status(&filter.filter().on_request_headers(&request("/"), &host.ctx())),
            0
        );
        let step = filter.filter().on_request_headers(&request("/"), &host.ctx());
        let reply = step.local_reply().expect("refused");
        assert_eq!(reply.status, 429);
        // "wide" allowed 1 of its 10 tokens an hour (one every 360 s); shown with the refused
        // request's taken, it read `r=8;t=720`.
        assert_eq!(reply.header("ratelimit"), Some(expected));
    }
}

/// With `case_insensitive_paths`, a route's regex with an escaped uppercase non-ASCII letter
/// holds every spelling of the path.
#[wasm_bindgen_test(unsupported = test)]
fn a_case_insensitive_regex_route_with_an_escaped_uppercase_letter_applies() {
    let limit = json!({"name": "equipe", "routes": [{"regex": "/%C3%89quipe/login"}],
        "descriptor": [{"key": "k", "source": {"type": "constant", "value": "x"}}],
        "enforce": {"type": "local", "requests": 1, "per": "hour"}});
    let filter = configured(json!({"limits": [limit], "case_insensitive_paths": true}));
    let host = host_with_claims(json!({}));
    let answers = ["/%C3%89quipe/login", "/%C3%89quipe/login", "/%C3%A9quipe/LOGIN"]
        .map(|path| status(&filter.filter().on_request_headers(&request(path), &host.ctx())));
    assert_eq!(answers, [0, 429, 429]);
}

/// `/login%3F1` is `/login` to an upstream that decodes the path and then splits off the query: a
/// limit on `/login` holds it, and a limit keyed on the path reads it as `/login`.
#[wasm_bindgen_test(unsupported = test)]
fn an_escaped_question_mark_does_not_dodge_an_exact_route() {
    let login = json!({"name": "login", "routes": [{"exact": "/login"}],
        "descriptor": [{"key": "path", "source": {"type": "path"}}],
        "enforce": {"type": "local", "requests": 1, "per": "hour"}});
    let filter = configured(json!({"limits": [login]}));
    let host = host_with_claims(json!({}));
    let answers = ["/login", "/login%3F1", "/login%3F2", "/login%231"]
        .map(|path| status(&filter.filter().on_request_headers(&request(path), &host.ctx())));
    assert_eq!(answers, [0, 429, 429, 429]);

    // A route written with an escape holds the path spelt without it, which a decoding upstream
    // serves alike.
    let escaped = json!({"name": "alice", "routes": [{"prefix": "/users/alice%40example.com"}],
        "descriptor": [{"key": "k", "source": {"type": "constant", "value": "alice"}}],
        "enforce": {"type": "local", "requests": 1, "per": "hour"}});
    let filter = configured(json!({"limits": [escaped]}));
    let answers = [
        "/users/alice%40example.com",
        "/users/alice@example.com/inbox",
        "/users/bob@example.com",
    ]
    .map(|path| status(&filter.filter().on_request_headers(&request(path), &host.ctx())));
    assert_eq!(answers, [0, 429, 0]);
}

/// In `draft03`, which shows the most exhausted limit, an untouched limit after the refusing one
/// does not read as the exhausted one.
#[wasm_bindgen_test(unsupported = test)]
fn draft03_shows_the_refusing_limit_not_an_untouched_one_after_it() {
    let constant = |value: &str| json!([{"key": "k", "source": {"type": "constant", "value": value}}]);
    let filter = configured(json!({
        "limits": [
            {"name": "narrow", "cost": 2, "descriptor": constant("narrow"),
             "enforce": {"type": "local", "requests": 3, "per": "hour"}},
            {"name": "reports", "cost": 5, "descriptor": constant("reports"),
             "enforce": {"type": "local", "requests": 5, "per": "hour"}, "routes": [{"prefix": "/reports"}]},
        ],
        "headers": {"style": "draft03"},
    }));
    let host = FakeHost::default();
    assert_eq!(
        status(&filter.filter().on_request_headers(&request("/"), &host.ctx())),
        0
    );
    let step = filter.filter().on_request_headers(&request("/reports"), &host.ctx());
    let reply = step.local_reply().expect("refused");
    assert_eq!(reply.status, 429);
    // "narrow" refused with 1 token left (the request needs 2); "reports" still holds all 5.
    assert_eq!(reply.header("x-ratelimit-remaining"), Some("1"));
    assert_eq!(reply.header("x-ratelimit-reset"), Some("2400"));
}

/// The service may send an allowed header more than once (`response_headers_to_add` is repeated).
/// Every copy reaches the client, on a 429 and on an allowed response alike, added to what the
/// upstream sent, as Envoy's own rate-limit filter adds them.
#[wasm_bindgen_test(unsupported = test)]
fn every_copy_of_an_allowed_service_header_reaches_the_client() {
    let answer = |overall: u64| {
        let mut w = Writer::new();
        w.uint(1, overall);
        for value in ["a", "b"] {
            w.message(3, |h| {
                h.string(1, "x-quota-note").string(2, value);
            });
        }
        GrpcOutcome {
            status: GrpcOutcome::OK,
            message: w.into_bytes(),
        }
    };
    let filter = configured(service_config(json!({"type": "grpc"}), "deny"));
    let host = host_with_claims(json!({"client_id": "app-1"}));

    let mut f = filter.filter();
    f.on_request_headers(&request("/orders"), &host.ctx());
    let refused = f.on_grpc_response(answer(2), &host.ctx());
    let on_429: Vec<&str> = refused
        .local_reply()
        .expect("a 429")
        .headers
        .iter()
        .filter(|(n, _)| n.as_str() == "x-quota-note")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(on_429, ["a", "b"]);

    let mut f = filter.filter();
    f.on_request_headers(&request("/orders"), &host.ctx());
    assert_eq!(f.on_grpc_response(answer(1), &host.ctx()).action, Action::Continue);
    let mut response = Headers::from_pairs([(":status", "200"), ("x-quota-note", "upstream")]);
    let edits = f.on_response_headers(&response, &host.ctx()).header_edits;
    response.apply(&edits);
    let on_200: Vec<&[u8]> = response.get_all("x-quota-note").collect();
    assert_eq!(on_200, [&b"upstream"[..], b"a", b"b"]);
}

/// A request the service refuses gives back the local tokens it took; but while it waited for the
/// answer its tokens had already refilled (the bucket was full again and others spent it), so
/// giving them back credits tokens nobody owes: the bucket then allows more than its burst at once.
#[wasm_bindgen_test(unsupported = test)]
fn a_late_give_back_never_lets_more_than_the_burst_through() {
    let mut config = service_config(json!({"type": "grpc"}), "deny");
    // 10 a second, a burst of 10: a token every 100 ms.
    config["limits"][0] = json!({"name": "per_client",
        "descriptor": [{"key": "client_id", "source": {"type": "claim", "claim": "client_id"}}],
        "enforce": {"type": "local", "requests": 10, "per": "second"}});
    let filter = configured(config);
    let mut host = host_with_claims(json!({"client_id": "app-1"}));

    // The first request takes a token from a full bucket and waits for the service.
    let mut doomed = filter.filter();
    assert_eq!(
        doomed.on_request_headers(&request("/"), &host.ctx()).grpc_calls.len(),
        1
    );

    // 101 ms later (within the service timeout of 150 ms) its token has refilled: the bucket is
    // full, and ten requests spend all of it.
    host.now_ms += 101;
    for i in 0..10 {
        let mut f = filter.filter();
        assert_eq!(
            f.on_request_headers(&request("/"), &host.ctx()).grpc_calls.len(),
            1,
            "request {i}"
        );
        let allowed = f.on_grpc_response(grpc_answer(1, &[(1, 100, 99, 42)]), &host.ctx());
        assert_eq!(allowed.action, Action::Continue, "request {i}");
    }

    // Now the service refuses the first request: its token goes back.
    let refused = doomed.on_grpc_response(grpc_answer(2, &[(2, 100, 0, 42)]), &host.ctx());
    assert_eq!(status(&refused), 429);

    // Ten allowed in this very millisecond on a burst of 10: an eleventh must be refused locally.
    let eleventh = filter.filter().on_request_headers(&request("/"), &host.ctx());
    assert_eq!(
        status(&eleventh),
        429,
        "the bucket allowed 11 requests at once on a burst of 10 (grpc calls: {})",
        eleventh.grpc_calls.len()
    );
}

/// A request that goes away while the service is asked gives its local tokens back.
#[wasm_bindgen_test(unsupported = test)]
fn a_request_abandoned_while_the_service_is_asked_gives_its_tokens_back() {
    let mut config = service_config(json!({"type": "grpc"}), "deny");
    config["limits"][0] = json!({"name": "global",
        "descriptor": [{"key": "api", "source": {"type": "constant", "value": "api"}}],
        "enforce": {"type": "local", "requests": 1, "per": "hour"}});
    let filter = configured(config);
    let host = host_with_claims(json!({"client_id": "app-1"}));
    let mut left = filter.filter();
    assert_eq!(left.on_request_headers(&request("/"), &host.ctx()).grpc_calls.len(), 1);
    left.on_abandoned(&host.ctx());
    let next = filter.filter().on_request_headers(&request("/"), &host.ctx());
    assert_eq!(next.grpc_calls.len(), 1, "the one token came back: {:?}", status(&next));
}

/// Spaces and tabs around a header value are not part of it (RFC 9110 section 5.5): HTTP/1
/// parsers strip them, and an upstream reads `k1 ` as `k1`. Over HTTP/2 Envoy hands them to
/// filters as sent, so each spelling of one API key with whitespace must not be a bucket of its
/// own.
#[wasm_bindgen_test(unsupported = test)]
fn whitespace_around_a_header_value_does_not_give_it_a_new_bucket() {
    let filter = configured(json!({"limits": [local_limit(
        "per_key",
        1,
        json!([{"key": "api_key", "source": {"type": "header", "header": "x-api-key"}}]),
    )]}));
    let host = FakeHost::default();
    let run = |value: &str| {
        let mut headers = request("/");
        headers.push("x-api-key", value);
        status(&filter.filter().on_request_headers(&headers, &host.ctx()))
    };
    assert_eq!(run("k1"), 0);
    assert_eq!(run("k1"), 429);
    for spelling in ["k1 ", "k1\t", " k1", "\tk1 "] {
        assert_eq!(run(spelling), 429, "{spelling:?}");
    }
    assert_eq!(run("k 1"), 0, "inner whitespace is part of the value");
}

/// README, Local buckets: "A config change leaves no shared data behind ... Memory stays at what
/// the configs running at once need, however many changes Envoy sees." After one change from a
/// config with many keys to one with few, the old config is gone, but its buckets keep their
/// memory until some later config change happens to take its namespace over.
#[wasm_bindgen_test(unsupported = test)]
fn a_config_change_frees_the_old_configs_buckets_without_waiting_for_another_change() {
    let mut host = host_with_claims(json!({"client_id": "c1"}));
    let held = |host: &FakeHost| -> usize {
        host.store
            .entries()
            .into_iter()
            .filter(|(key, _)| key.starts_with(BUCKETS))
            .map(|(_, value)| value.len())
            .sum()
    };
    let big = configured(json!({"limits": [per_client(1)], "max_keys": 4096}));
    shared::FilterRoot::on_start(&*big.root, &host.ctx());
    assert_eq!(held(&host), 1024 * 144);

    // The config changes: the new one starts while the old one drains, then the old one is gone.
    let small = configured(json!({"limits": [per_client(2)], "max_keys": 4}));
    shared::FilterRoot::on_start(&*small.root, &host.ctx());
    for _ in 0..(3 * shared::namespace::LEASE_MS / 5_000) {
        host.now_ms += 5_000;
        shared::FilterRoot::on_tick(&*small.root, &host.ctx());
    }
    assert_eq!(
        status(&small.filter().on_request_headers(&request("/"), &host.ctx())),
        0
    );
    assert_eq!(
        held(&host),
        144,
        "three leases after the change, only the running config's one set should hold memory"
    );
}

/// A local limit's quota policy is its rate: when the time an empty bucket takes to fill is
/// rounded up to whole seconds, the quota is what the rate allows in that window, not `burst`
/// (100 a second with a burst of 10 shown as `q=10;w=1` is a tenth of its rate, and a client that
/// paces itself by the policy sends a tenth of what it may).
#[wasm_bindgen_test(unsupported = test)]
fn the_policy_shown_for_a_local_limit_is_its_rate() {
    for (requests, per, per_secs, burst) in [
        (100u64, "second", 1u64, 10u64),
        (10, "second", 1, 3),
        (90, "minute", 60, 1),
    ] {
        let limit = json!({"name": "per_ip", "descriptor": [{"key": "ip", "source": {"type": "client_address"}}],
                           "enforce": {"type": "local", "requests": requests, "per": per, "burst": burst}});
        let filter = configured(json!({"limits": [limit], "headers": {"style": "ietf", "on_allowed": true}}));
        let host = host_with_claims(json!({}));
        let mut f = filter.filter();
        assert_eq!(status(&f.on_request_headers(&request("/"), &host.ctx())), 0);
        let response = f.on_response_headers(&Headers::from_pairs([(":status", "200")]), &host.ctx());
        let mut edited = Headers::new();
        edited.apply(&response.header_edits);
        let policy = edited.get_str("ratelimit-policy").unwrap().to_owned();
        let param = |name: &str| -> u64 {
            policy
                .split(';')
                .find_map(|p| p.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        let (q, w) = (param("q"), param("w"));
        // q per w seconds is the rate, less than one request per window under it, never over.
        assert!(
            q * per_secs <= requests * w && requests * w - q * per_secs < per_secs && q >= burst,
            "{requests} per {per} (burst {burst}) shown as {policy:?}: {q} per {w} s"
        );
    }
}
