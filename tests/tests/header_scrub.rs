//! header-scrub through a real Envoy: every config option, observed from the client and from the
//! upstream.

use harness::{Envoy, Gateway, GatewayConfig, Request, Response};
use serde_json::{json, Value};

/// A gateway with header-scrub as its only filter, configured the way the shipped configs are
/// (Envoy passes the upstream's `server` header through, for the filter to remove).
fn gateway(config: Value) -> Gateway {
    Gateway::start_with(|c| {
        c.filter("header_scrub", config)
            .hcm("server_header_transformation", json!("PASS_THROUGH"))
    })
}

fn assert_security_headers(response: &Response) {
    for (name, value) in harness::API_SECURITY_HEADERS {
        assert_eq!(
            response.header_all(name),
            vec![value.to_owned()],
            "{name} on a {} response",
            response.status
        );
    }
}

#[test]
fn spoofed_identity_headers_never_reach_the_upstream() {
    let gw = gateway(json!({"request": {"reserved": ["x-user-id", "X-Claims"]}}));
    let response = gw.send(
        Request::get("/orders")
            .header("x-user-id", "admin")
            .header("X-User-Id", "root")
            .header("X-USER-ID", "alice")
            .header("x-claims", "{\"scope\":\"admin\"}")
            .header("x-kept", "yes"),
    );
    assert_eq!(response.status, 200);
    let seen = gw.echo.last_request();
    assert!(!seen.has_header("x-user-id"), "{:?}", seen.headers);
    assert!(!seen.has_header("x-claims"), "{:?}", seen.headers);
    assert_eq!(seen.header_all("x-kept"), vec!["yes"]);
    assert_eq!(
        gw.envoy.stat("wasmcustom.apisec.header_scrub.request_headers_removed"),
        Some(2)
    );
}

#[test]
fn underscore_variants_are_refused_by_envoy_or_removed_by_the_filter() {
    // The shipped HCM setting: Envoy itself refuses names with underscores.
    let gw = gateway(json!({"request": {"reserved": ["x-user-id"]}}));
    assert_eq!(gw.send(Request::get("/").header("x_user_id", "admin")).status, 400);
    assert_eq!(gw.echo.request_count(), 0);

    // An operator who allows underscores is still protected by the filter.
    let gw = Gateway::start_with(|c| {
        c.filter("header_scrub", json!({"request": {"reserved": ["x-user-id"]}}))
            .hcm(
                "common_http_protocol_options",
                json!({"headers_with_underscores_action": "ALLOW"}),
            )
    });
    assert_eq!(
        gw.send(
            Request::get("/")
                .header("x_user_id", "admin")
                .header("X_User_Id", "root")
        )
        .status,
        200
    );
    let seen = gw.echo.last_request();
    assert!(!seen.has_header("x_user_id"), "{:?}", seen.headers);
}

/// Upstreams that honour method-override headers (Rails, Express's `method-override`, many Java
/// stacks) would run another method than the gateway's rules judged: by default they never get one.
#[test]
fn method_override_headers_never_reach_the_upstream_by_default() {
    let gw = gateway(json!({}));
    let response = gw.send(
        Request::post("/orders/1", "{}")
            .header("X-HTTP-Method-Override", "DELETE")
            .header("x-http-method", "DELETE")
            .header("X-Method-Override", "DELETE")
            .header("x-kept", "yes"),
    );
    assert_eq!(response.status, 200);
    let seen = gw.echo.last_request();
    for gone in ["x-http-method-override", "x-http-method", "x-method-override"] {
        assert!(
            !seen.has_header(gone),
            "{gone} reached the upstream: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header_all("x-kept"), vec!["yes"]);

    let gw = gateway(json!({"request": {"strip_preset": "none"}}));
    gw.send(Request::post("/orders/1", "{}").header("X-HTTP-Method-Override", "DELETE"));
    assert_eq!(
        gw.echo.last_request().header("x-http-method-override").as_deref(),
        Some("DELETE")
    );
}

#[test]
fn exact_prefix_and_regex_rules_remove_request_headers() {
    let gw = gateway(json!({"request": {
        "remove": ["x-debug"],
        "remove_prefixes": ["x-internal-"],
        "remove_regex": ["x-(tenant|shard)-override"],
    }}));
    gw.send(
        Request::get("/")
            .header("X-Debug", "1")
            .header("x-internal-route", "a")
            .header("X-Internal-Cost", "b")
            .header("x-tenant-override", "c")
            .header("x-shard-override", "d")
            .header("x-tenant-override-not", "kept")
            .header("accept", "application/json"),
    );
    let seen = gw.echo.last_request();
    for gone in [
        "x-debug",
        "x-internal-route",
        "x-internal-cost",
        "x-tenant-override",
        "x-shard-override",
    ] {
        assert!(!seen.has_header(gone), "{gone} reached the upstream");
    }
    assert_eq!(seen.header("x-tenant-override-not").as_deref(), Some("kept"));
    assert_eq!(seen.header("accept").as_deref(), Some("application/json"));
}

#[test]
fn non_utf8_header_values_do_not_crash_the_vm() {
    let gw = gateway(json!({
        "request": {"reserved": ["x-user-id"], "remove_regex": ["x-.*-bin"]},
        "cors": {"allowed_origins": ["https://app.example"]},
    }));
    let vms_before = gw.envoy.stat("wasm.envoy.wasm.runtime.v8.created");
    for value in [&b"\xff\xfe"[..], b"caf\xe9", b"\x80", b"\xc3\x28", b"a\tb"] {
        let response = gw.send(
            Request::get("/bytes")
                .header_bytes(b"x-user-id", value)
                .header_bytes(b"x-raw-bin", value)
                .header_bytes(b"x-other", value)
                .header_bytes(b"origin", value),
        );
        assert_eq!(response.status, 200, "value {value:?}");
        let seen = gw.echo.last_request();
        assert!(!seen.has_header("x-user-id") && !seen.has_header("x-raw-bin"));
        assert!(seen.has_header("x-other"));
        assert!(!response.has_header("access-control-allow-origin"));
    }
    // Still the same VM, still filtering: a crashed VM would fail closed with 503.
    let response = gw.send(Request::get("/after").header("x-user-id", "admin"));
    assert_eq!(response.status, 200);
    assert!(!gw.echo.last_request().has_header("x-user-id"));
    assert_eq!(gw.envoy.stat("wasm.envoy.wasm.runtime.v8.created"), vms_before);
    assert_eq!(gw.envoy.counter("wasm.header_scrub.vm_reload"), 0);
}

#[test]
fn responses_lose_stack_details_and_gain_security_headers() {
    let gw = gateway(json!({}));
    gw.echo.set_response_headers(vec![
        ("Server".into(), "Apache/2.4.1".into()),
        ("X-Powered-By".into(), "PHP/8.1".into()),
        ("x-envoy-degraded".into(), "1".into()),
        ("x-aspnet-version".into(), "4.0".into()),
        ("x-request-id".into(), "kept".into()),
    ]);
    let response = gw.get("/");
    assert_eq!(response.status, 200);
    for leaky in [
        "server",
        "x-powered-by",
        "x-envoy-degraded",
        "x-envoy-upstream-service-time",
        "x-aspnet-version",
    ] {
        assert!(
            !response.has_header(leaky),
            "{leaky} leaked: {:?}",
            response.header(leaky)
        );
    }
    assert_eq!(response.header("x-request-id").as_deref(), Some("kept"));
    assert_security_headers(&response);
}

#[test]
fn operator_rules_keep_and_presets_shape_the_response() {
    let gw = gateway(json!({"response": {
        "remove": ["x-backend"],
        "remove_prefixes": ["x-debug-"],
        "remove_regex": ["x-trace-[0-9]+"],
        "keep": ["x-envoy-upstream-service-time"],
    }}));
    gw.echo.set_response_headers(vec![
        ("x-backend".into(), "db-7".into()),
        ("x-debug-sql".into(), "select".into()),
        ("x-trace-42".into(), "t".into()),
        ("x-trace-id".into(), "kept".into()),
    ]);
    let response = gw.get("/");
    for gone in ["x-backend", "x-debug-sql", "x-trace-42"] {
        assert!(!response.has_header(gone), "{gone} leaked");
    }
    assert!(response.has_header("x-trace-id"));
    assert!(response.has_header("x-envoy-upstream-service-time"));

    let gw = gateway(json!({"response": {"strip_preset": "none", "security_headers": {"preset": "none"}}}));
    gw.echo.set_response_headers(vec![("server".into(), "Apache".into())]);
    let response = gw.get("/");
    assert_eq!(response.header("server").as_deref(), Some("Apache"));
    assert!(!response.has_header("x-frame-options"));
}

#[test]
fn security_headers_respect_upstream_values_unless_told_otherwise() {
    let gw = gateway(json!({"response": {"security_headers": {
        "set": {"x-frame-options": "SAMEORIGIN", "permissions-policy": "camera=()"},
        "omit": ["strict-transport-security"],
    }}}));
    gw.echo
        .set_response_headers(vec![("Cache-Control".into(), "max-age=60".into())]);
    let response = gw.get("/");
    assert_eq!(response.header_all("cache-control"), vec!["max-age=60"]);
    assert_eq!(response.header("x-frame-options").as_deref(), Some("SAMEORIGIN"));
    assert_eq!(response.header("permissions-policy").as_deref(), Some("camera=()"));
    assert!(!response.has_header("strict-transport-security"));

    let gw = gateway(json!({"response": {"security_headers": {"overwrite": true}}}));
    gw.echo.set_response_headers(vec![
        ("cache-control".into(), "public".into()),
        ("x-frame-options".into(), "ALLOW".into()),
    ]);
    assert_security_headers(&gw.get("/"));
}

#[test]
fn envoy_local_replies_get_security_headers_too() {
    let gw = gateway(json!({}));
    let direct = gw.get("/direct/teapot");
    assert_eq!(direct.status, 418);
    assert_security_headers(&direct);
    let unavailable = gw.get("/dead/x");
    assert_eq!(unavailable.status, 503);
    assert_security_headers(&unavailable);
    assert!(!unavailable.has_header("server"));
}

const CORS: fn() -> Value = || {
    json!({"cors": {
        "allowed_origins": ["https://app.example", "http://localhost:3000"],
        "allowed_methods": ["GET", "POST", "DELETE"],
        "allowed_headers": ["authorization", "content-type"],
        "exposed_headers": ["x-request-id"],
        "max_age_secs": 600,
        "allow_credentials": true,
    }})
};

fn preflight(origin: &str, method: &str, headers: &str) -> Request {
    Request::options("/orders")
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", headers)
}

#[test]
fn cors_preflight_allowed_is_answered_by_the_gateway() {
    let gw = gateway(CORS());
    let response = gw.send(preflight(
        "https://app.example",
        "DELETE",
        "Authorization, Content-Type",
    ));
    assert_eq!(response.status, 204);
    assert_eq!(
        response.header("access-control-allow-origin").as_deref(),
        Some("https://app.example")
    );
    assert_eq!(
        response.header("access-control-allow-methods").as_deref(),
        Some("GET, POST, DELETE")
    );
    assert_eq!(
        response.header("access-control-allow-headers").as_deref(),
        Some("authorization, content-type")
    );
    assert_eq!(response.header("access-control-max-age").as_deref(), Some("600"));
    assert_eq!(
        response.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(response.header_all("vary"), vec!["Origin"]);
    assert_security_headers(&response);
    assert_eq!(gw.echo.request_count(), 0, "a preflight must not reach the upstream");
    assert_eq!(
        gw.envoy.stat("wasmcustom.apisec.header_scrub.cors_preflight_allowed"),
        Some(1)
    );
}

#[test]
fn cors_preflight_refused_gets_403_without_cors_headers() {
    let gw = gateway(CORS());
    for request in [
        preflight("https://evil.example", "GET", "authorization"),
        preflight("https://app.example", "PUT", "authorization"),
        preflight("https://app.example", "GET", "x-admin"),
        preflight("https://app.example.evil.example", "GET", "authorization"),
    ] {
        let response = gw.send(request);
        assert_eq!(response.status, 403);
        assert_eq!(response.json()["error"], "forbidden");
        assert!(
            response.headers.iter().all(|(n, _)| !n.starts_with("access-control-")),
            "{:?}",
            response.headers
        );
        assert_eq!(response.header("vary").as_deref(), Some("Origin"));
        assert_security_headers(&response);
    }
    assert_eq!(gw.echo.request_count(), 0);
    assert_eq!(
        gw.envoy.stat("wasmcustom.apisec.header_scrub.cors_preflight_refused"),
        Some(4)
    );
}

#[test]
fn cors_actual_requests_get_headers_only_for_allowed_origins() {
    let gw = gateway(CORS());
    // The upstream's own CORS opinion never reaches the client: the gateway is the authority.
    gw.echo
        .set_response_headers(vec![("access-control-allow-origin".into(), "*".into())]);

    let allowed = gw.send(Request::get("/orders").header("Origin", "http://localhost:3000"));
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header_all("access-control-allow-origin"),
        vec!["http://localhost:3000"]
    );
    assert_eq!(
        allowed.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(
        allowed.header("access-control-expose-headers").as_deref(),
        Some("x-request-id")
    );
    assert!(allowed.header_all("vary").contains(&"Origin".to_owned()));

    let refused = gw.send(Request::get("/orders").header("Origin", "https://evil.example"));
    assert_eq!(
        refused.status, 200,
        "the browser, not the gateway, enforces CORS on simple requests"
    );
    assert!(
        refused.headers.iter().all(|(n, _)| !n.starts_with("access-control-")),
        "{:?}",
        refused.headers
    );
    assert_eq!(
        gw.envoy.stat("wasmcustom.apisec.header_scrub.cors_origin_refused"),
        Some(1)
    );

    let plain = gw.get("/orders");
    assert!(!plain.has_header("access-control-allow-origin"));
}

/// Browsers send an origin in its serialized form: no default port, an IPv6 host in canonical
/// form. A configured origin written otherwise still matches what they send.
#[test]
fn cors_origins_match_as_browsers_send_them() {
    let gw = gateway(json!({"cors": {"allowed_origins": ["https://app.example:443", "HTTP://[2001:DB8:0::7]:80"]}}));
    for origin in ["https://app.example", "http://[2001:db8::7]"] {
        let allowed = gw.send(Request::get("/orders").header("Origin", origin));
        assert_eq!(allowed.header_all("access-control-allow-origin"), vec![origin]);
    }
    for origin in [
        "https://app.example:8443",
        "http://[2001:db8::8]",
        "https://[2001:db8::7]",
    ] {
        let refused = gw.send(Request::get("/orders").header("Origin", origin));
        assert!(!refused.has_header("access-control-allow-origin"), "{origin}");
    }
    assert_eq!(
        gw.envoy.stat("wasmcustom.apisec.header_scrub.cors_origin_refused"),
        Some(3)
    );
}

#[test]
fn counters_are_exported_to_prometheus_under_one_prefix() {
    let gw = gateway(json!({"request": {"reserved": ["x-user-id"]}}));
    gw.send(Request::get("/").header("x-user-id", "a"));
    let prometheus = gw.envoy.prometheus();
    for name in [
        "apisec_header_scrub_request_headers_removed{} 1",
        "apisec_header_scrub_response_headers_removed{} 1",
        "apisec_header_scrub_security_headers_added{} 6",
        "apisec_header_scrub_cors_preflight_allowed{} 0",
        "apisec_header_scrub_cors_preflight_refused{} 0",
        "apisec_header_scrub_cors_origin_refused{} 0",
    ] {
        assert!(
            prometheus.lines().any(|l| l == name),
            "missing {name:?} in\n{prometheus}"
        );
    }
}

#[test]
fn a_bad_config_is_refused_at_load_with_the_field_path() {
    let echo = harness::EchoUpstream::start();
    let config = GatewayConfig::new(echo.addr()).filter(
        "header_scrub",
        json!({"cors": {"allowed_origins": ["https://ok.example", "https://bad.example/path"]}}),
    );
    let log = match Envoy::start(&config.to_bootstrap(), 1) {
        Ok(envoy) => panic!("Envoy accepted a bad config:\n{}", envoy.log()),
        Err(log) => log,
    };
    assert!(
        log.contains("header_scrub: invalid configuration: cors.allowed_origins[1]: \"https://bad.example/path\" is not an origin"),
        "{log}"
    );
    assert_eq!(echo.request_count(), 0);
}

#[test]
fn the_shipped_access_log_shows_the_outcome() {
    let format = harness::config::shipped_access_log_format("header-scrub.yaml");
    assert!(
        format.contains("header_scrub=%FILTER_STATE(wasm.apisec.header_scrub.outcome:PLAIN)%"),
        "{format}"
    );
    let mut config = CORS();
    config["request"] = json!({"reserved": ["x-user-id"]});
    let gw = Gateway::start_with(|c| {
        c.filter("header_scrub", config)
            .hcm("access_log", harness::config::stdout_access_log(&format))
    });
    let preflight_to = |path: &str, origin: &str| {
        Request::options(path)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
    };
    // (request, status, what identifies its log line, the outcome that line must show)
    let cases = [
        (Request::get("/log/plain"), 200, " /log/plain ", "passed"),
        (
            Request::get("/log/spoofed").header("X-User-Id", "admin"),
            200,
            " /log/spoofed ",
            "scrubbed",
        ),
        (
            preflight_to("/log/preflight-ok", "https://app.example"),
            204,
            " /log/preflight-ok ",
            "preflight_allowed",
        ),
        (
            preflight_to("/log/preflight-evil", "https://evil.example"),
            403,
            " /log/preflight-evil ",
            "preflight_denied",
        ),
        // Envoy's codec refuses the underscore name before any filter runs (and logs no path):
        // nothing is published.
        (
            Request::get("/log/underscore").header("x_user_id", "admin"),
            400,
            " http1.unexpected_underscore ",
            "-",
        ),
    ];
    let count = cases.len();
    let mut expected = Vec::new();
    for (request, status, key, outcome) in cases {
        assert_eq!(gw.send(request).status, status, "{key}");
        expected.push((status, key, outcome));
    }
    assert!(!gw.echo.last_request().has_header("x-user-id"));
    assert_eq!(
        gw.echo.request_count(),
        2,
        "only the forwarded requests reach the upstream"
    );

    let logged = |log: &str| log.lines().filter(|l| l.contains(" header_scrub=")).count();
    gw.wait_until("an access-log line per request", || logged(&gw.envoy.log()) == count);
    let log = gw.envoy.log();
    for (status, key, outcome) in expected {
        let line = log
            .lines()
            .find(|l| l.contains(key) && l.contains(" header_scrub="))
            .unwrap_or_else(|| panic!("no access-log line with {key:?} in\n{log}"));
        assert!(line.contains(&format!(" {status} ")), "{line:?} lacks status {status}");
        assert!(
            line.trim_end().ends_with(&format!(" header_scrub={outcome}")),
            "{line:?} lacks header_scrub={outcome}"
        );
    }
}

/// Trailers arrive after the headers went on (HTTP/2 always carries them; HTTP/1.1 here, with
/// Envoy told to pass them on): scrubbed by the same rules, or a client could send a reserved
/// field, and an upstream leak one, where the headers' rules never look.
#[test]
fn trailers_are_scrubbed_by_the_header_rules_both_ways() {
    let gw = Gateway::start_with(|c| {
        c.filter("header_scrub", json!({"request": {"reserved": ["x-user-id"]}}))
            .with_http1_trailers()
    });
    gw.echo.set_response_trailers(vec![
        ("x-powered-by".to_owned(), "PHP/8.3".to_owned()),
        ("x-envoy-debug".to_owned(), "1".to_owned()),
        ("grpc-status".to_owned(), "0".to_owned()),
    ]);
    let response = gw.send(
        Request::post("/orders", "{}")
            .header("te", "trailers")
            .trailer("X-User-Id", "admin")
            .trailer("x-checksum", "c1"),
    );
    assert_eq!(response.status, 200, "{}", response.text());

    let seen = gw.echo.last_request();
    assert_eq!(seen.body, b"{}");
    assert_eq!(
        seen.trailer_all("x-checksum"),
        vec!["c1"],
        "other trailers pass: {:?}",
        seen.trailers
    );
    assert!(seen.trailer_all("x-user-id").is_empty(), "{:?}", seen.trailers);

    let names: Vec<&str> = response.trailers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["grpc-status"], "{:?}", response.trailers);
    assert_eq!(
        gw.envoy.stat("wasmcustom.apisec.header_scrub.request_headers_removed"),
        Some(1)
    );
}

/// Forwarding headers Envoy does not write are the client's own: Rails builds links from
/// `X-Forwarded-Host` (a password-reset link to the attacker's host), Spring reads `Forwarded` and
/// `X-Forwarded-Prefix`, IP allow-lists read `X-Real-IP`. The default preset removes them; Envoy's
/// own `x-forwarded-for` goes on.
#[test]
fn client_written_forwarding_headers_never_reach_the_upstream_by_default() {
    let gw = gateway(json!({}));
    let response = gw.send(
        Request::post("/password-reset", "{}")
            .header("X-Forwarded-Host", "evil.example")
            .header("Forwarded", "for=203.0.113.9;host=evil.example;proto=https")
            .header("X-Real-IP", "203.0.113.9")
            .header("X-Forwarded-Prefix", "/admin"),
    );
    assert_eq!(response.status, 200);
    let seen = gw.echo.last_request();
    for name in ["x-forwarded-host", "forwarded", "x-real-ip", "x-forwarded-prefix"] {
        assert_eq!(seen.header(name), None, "{name}");
    }
    assert!(seen.has_header("x-forwarded-for"));
}

/// An upstream on loopback that answers every request head on a connection with `answer`,
/// verbatim, and counts the heads it got.
fn raw_upstream(answer: &'static [u8]) -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&heads);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let counted = Arc::clone(&counted);
            std::thread::spawn(move || {
                let (mut received, mut chunk) = (Vec::new(), [0u8; 4096]);
                while let Ok(n @ 1..) = stream.read(&mut chunk) {
                    received.extend_from_slice(&chunk[..n]);
                    while let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                        received.drain(..end + 4);
                        counted.fetch_add(1, Ordering::SeqCst);
                        if stream.write_all(answer).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, heads)
}

/// Envoy's router obeys `x-envoy-retry-on` and `x-envoy-max-retries` on a request it counts as
/// internal (`internal_address_config`, e.g. the private range a cloud load balancer connects
/// from), and header-scrub runs before the router: the default preset removes them, so a client
/// cannot turn one `POST` into five at the upstream.
#[test]
fn client_router_control_headers_are_removed_before_the_router() {
    let (raw, heads) = raw_upstream(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    let routes = json!({"name": "raw", "virtual_hosts": [{"name": "all", "domains": ["*"],
        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "raw"}}]}]});
    let internal = json!({"cidr_ranges": [{"address_prefix": "127.0.0.0", "prefix_len": 8}]});
    let gw = Gateway::start_with(|c| {
        c.filter("header_scrub", json!({}))
            .extra_cluster(harness::config::static_cluster("raw", raw))
            .hcm("route_config", routes)
            .hcm("internal_address_config", internal)
    });
    let response = gw.send(
        Request::post("/payments", "{\"amount\":100}")
            .header("x-envoy-retry-on", "5xx")
            .header("x-envoy-max-retries", "4"),
    );
    assert_eq!(response.status, 503);
    assert_eq!(
        heads.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the POST was repeated"
    );
}
