//! The core, driven the way the adapter drives it.

use shared::testkit::{Configured, FakeHost};
use shared::{Action, Headers, HttpFilter, Step};
use wasm_bindgen_test::wasm_bindgen_test;

use crate::{HeaderScrub, Outcome, OUTCOME_STATE};

fn configured(json: &str) -> Configured<HeaderScrub> {
    Configured::new(json).unwrap_or_else(|e| panic!("config rejected: {e}"))
}

fn request(pairs: &[(&str, &[u8])]) -> Headers {
    let mut headers = Headers::from_pairs([(":method", &b"GET"[..]), (":path", b"/orders")]);
    for (name, value) in pairs {
        headers.push(name, *value);
    }
    headers
}

/// Runs the request phase and returns the headers the upstream would see.
fn upstream_view(config: &Configured<HeaderScrub>, mut headers: Headers) -> Headers {
    let host = FakeHost::default();
    let step = config.filter().on_request_headers(&headers, &host.ctx());
    assert_eq!(step.action, Action::Continue);
    headers.apply(&step.header_edits);
    headers
}

/// Runs both phases and returns the headers the client would see.
fn client_view(config: &Configured<HeaderScrub>, request: Headers, mut response: Headers) -> Headers {
    let host = FakeHost::default();
    let mut filter = config.filter();
    let step = filter.on_request_headers(&request, &host.ctx());
    assert_eq!(step.action, Action::Continue);
    let step = filter.on_response_headers(&response, &host.ctx());
    assert_eq!(step.action, Action::Continue);
    response.apply(&step.header_edits);
    response
}

fn response(pairs: &[(&str, &str)]) -> Headers {
    let mut headers = Headers::from_pairs([(":status", "200")]);
    for (name, value) in pairs {
        headers.push(name, value.as_bytes());
    }
    headers
}

#[wasm_bindgen_test(unsupported = test)]
fn reserved_headers_are_removed_in_every_case_and_spelling() {
    let config = configured(r#"{"request": {"reserved": ["X-User-Id"]}}"#);
    let seen = upstream_view(
        &config,
        request(&[
            ("x-user-id", b"admin"),
            ("X-USER-ID", b"root"),
            ("x_user_id", b"x"),
            ("x-other", b"kept"),
        ]),
    );
    assert!(!seen.contains("x-user-id"));
    assert!(!seen.contains("x_user_id"));
    assert_eq!(seen.get("x-other"), Some(&b"kept"[..]));
    assert_eq!(seen.get(":path"), Some(&b"/orders"[..]));
}

#[wasm_bindgen_test(unsupported = test)]
fn exact_prefix_and_regex_rules_remove_request_headers() {
    let config = configured(
        r#"{"request": {"remove": ["x-debug"], "remove_prefixes": ["x-internal-"], "remove_regex": ["x-(a|b)-token"]}}"#,
    );
    let host = FakeHost::default();
    let headers = request(&[
        ("x-debug", b"1"),
        ("x-internal-route", b"2"),
        ("x-a-token", b"3"),
        ("x-a-token-2", b"4"),
        ("x-b-token", b"5"),
        ("accept", b"*/*"),
    ]);
    let step = config.filter().on_request_headers(&headers, &host.ctx());
    assert_eq!(
        step.removed_headers(),
        vec!["x-debug", "x-internal-route", "x-a-token", "x-b-token"]
    );
    assert_eq!(config.counter_names(&step.counters), vec!["request_headers_removed"; 4]);
}

/// Rails, Express's `method-override` and many Java stacks run the method these headers name: a
/// `POST` the gateway's rules judged would be a `DELETE` to them.
#[wasm_bindgen_test(unsupported = test)]
fn method_and_path_override_headers_are_removed_by_default() {
    let overrides = || {
        request(&[
            ("x-http-method-override", b"DELETE"),
            ("X-HTTP-Method", b"DELETE"),
            ("x_method_override", b"DELETE"),
            ("X-Original-URL", b"/admin"),
            ("x_rewrite_url", b"/admin"),
            ("x-other", b"kept"),
        ])
    };
    for config in ["{}", r#"{"request": {"remove": ["x-debug"]}}"#] {
        let seen = upstream_view(&configured(config), overrides());
        assert_eq!(seen.names(), vec![":method", ":path", "x-other"], "{config}");
        let outcome = outcome(&configured(config), &overrides());
        assert_eq!(outcome.as_deref(), Some("scrubbed"), "{config}");
    }
    let kept = upstream_view(&configured(r#"{"request": {"strip_preset": "none"}}"#), overrides());
    assert_eq!(kept.len(), 8);
}

#[wasm_bindgen_test(unsupported = test)]
fn pseudo_headers_are_never_removed_even_by_a_catch_all_regex() {
    let config = configured(r#"{"request": {"remove_regex": [".*"]}}"#);
    let seen = upstream_view(&config, request(&[("a", b"1")]));
    assert_eq!(seen.names(), vec![":method", ":path"]);
}

#[wasm_bindgen_test(unsupported = test)]
fn non_utf8_values_are_handled_as_bytes() {
    let config =
        configured(r#"{"request": {"reserved": ["x-user"]}, "cors": {"allowed_origins": ["https://a.example"]}}"#);
    let seen = upstream_view(
        &config,
        request(&[
            ("x-user", b"\xff\xfe"),
            ("origin", b"https://a.example\xff"),
            ("x-ok", b"\x80"),
        ]),
    );
    assert!(!seen.contains("x-user"));
    assert_eq!(seen.get("x-ok"), Some(&b"\x80"[..]));
}

#[wasm_bindgen_test(unsupported = test)]
fn default_response_preset_hides_the_stack_and_adds_api_security_headers() {
    let config = configured("{}");
    let seen = client_view(
        &config,
        request(&[]),
        response(&[
            ("server", "nginx"),
            ("x-powered-by", "PHP"),
            ("x-envoy-upstream-service-time", "3"),
            ("content-type", "application/json"),
        ]),
    );
    for leaky in ["server", "x-powered-by", "x-envoy-upstream-service-time"] {
        assert!(!seen.contains(leaky), "{leaky} leaked");
    }
    assert_eq!(seen.get_str("content-type"), Some("application/json"));
    assert_eq!(
        seen.get_str("strict-transport-security"),
        Some("max-age=63072000; includeSubDomains")
    );
    assert_eq!(seen.get_str("x-content-type-options"), Some("nosniff"));
    assert_eq!(seen.get_str("x-frame-options"), Some("DENY"));
    assert_eq!(
        seen.get_str("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
    assert_eq!(seen.get_str("referrer-policy"), Some("no-referrer"));
    assert_eq!(seen.get_str("cache-control"), Some("no-store"));
}

#[wasm_bindgen_test(unsupported = test)]
fn keep_protects_a_header_from_the_preset_and_none_disables_it() {
    let config = configured(r#"{"response": {"keep": ["x-envoy-upstream-service-time"]}}"#);
    let seen = client_view(
        &config,
        request(&[]),
        response(&[("x-envoy-upstream-service-time", "3"), ("x-envoy-other", "1")]),
    );
    assert!(seen.contains("x-envoy-upstream-service-time"));
    assert!(!seen.contains("x-envoy-other"));

    let config = configured(r#"{"response": {"strip_preset": "none", "security_headers": {"preset": "none"}}}"#);
    let seen = client_view(&config, request(&[]), response(&[("server", "nginx")]));
    assert_eq!(seen, response(&[("server", "nginx")]));
}

#[wasm_bindgen_test(unsupported = test)]
fn upstream_values_win_unless_overwrite_is_set() {
    let config = configured(
        r#"{"response": {"security_headers": {"set": {"x-frame-options": "SAMEORIGIN", "permissions-policy": "camera=()"}, "omit": ["strict-transport-security"]}}}"#,
    );
    let seen = client_view(&config, request(&[]), response(&[("cache-control", "max-age=60")]));
    assert_eq!(seen.get_all("cache-control").count(), 1);
    assert_eq!(seen.get_str("cache-control"), Some("max-age=60"));
    assert_eq!(seen.get_str("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(seen.get_str("permissions-policy"), Some("camera=()"));
    assert!(!seen.contains("strict-transport-security"));

    let config = configured(r#"{"response": {"security_headers": {"overwrite": true}}}"#);
    let seen = client_view(
        &config,
        request(&[]),
        response(&[("cache-control", "max-age=60"), ("Cache-Control", "public")]),
    );
    assert_eq!(
        seen.get_all("cache-control").collect::<Vec<_>>(),
        vec![&b"no-store"[..]]
    );
}

const CORS: &str = r#"{"cors": {
    "allowed_origins": ["https://app.example"],
    "allowed_methods": ["GET", "POST", "DELETE"],
    "allowed_headers": ["Authorization", "Content-Type"],
    "exposed_headers": ["X-Request-Id"],
    "max_age_secs": 600,
    "allow_credentials": true
}}"#;

fn preflight(origin: &str, method: &str, headers: Option<&str>) -> Headers {
    let mut h = Headers::from_pairs([(":method", "OPTIONS"), (":path", "/orders"), ("origin", origin)]);
    h.push("access-control-request-method", method.as_bytes());
    if let Some(headers) = headers {
        h.push("access-control-request-headers", headers.as_bytes());
    }
    h
}

#[wasm_bindgen_test(unsupported = test)]
fn an_allowed_preflight_is_answered_locally() {
    let config = configured(CORS);
    let host = FakeHost::default();
    let mut filter = config.filter();
    let step = filter.on_request_headers(
        &preflight("https://app.example", "DELETE", Some("authorization, content-type")),
        &host.ctx(),
    );
    let reply = step.local_reply().expect("answered locally");
    assert_eq!(reply.status, 204);
    assert_eq!(reply.header("access-control-allow-origin"), Some("https://app.example"));
    assert_eq!(reply.header("access-control-allow-methods"), Some("GET, POST, DELETE"));
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("600"));
    assert_eq!(reply.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(reply.header("vary"), Some("Origin"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(config.counter_names(&step.counters), vec!["cors_preflight_allowed"]);
    // The answer is complete: the response phase adds nothing twice.
    assert_eq!(
        filter.on_response_headers(&Headers::from_pairs([(":status", "204")]), &host.ctx()),
        Step::proceed()
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn refused_preflights_get_403_without_cors_headers() {
    let config = configured(CORS);
    let host = FakeHost::default();
    for (origin, method, headers) in [
        ("https://evil.example", "GET", None),
        ("https://app.example", "PUT", None),
        ("https://app.example", "GET", Some("x-secret")),
        ("https://app.example.evil.example", "GET", None),
        ("null", "GET", None),
    ] {
        let step = config
            .filter()
            .on_request_headers(&preflight(origin, method, headers), &host.ctx());
        let reply = step.local_reply().expect("answered locally");
        assert_eq!(reply.status, 403, "{origin} {method} {headers:?}");
        assert!(
            reply
                .headers
                .iter()
                .all(|(n, _)| !n.as_str().starts_with("access-control-")),
            "{reply:?}"
        );
        assert_eq!(reply.header("vary"), Some("Origin"), "{origin} {method} {headers:?}");
        assert_eq!(config.counter_names(&step.counters), vec!["cors_preflight_refused"]);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn actual_cors_requests_get_headers_only_for_allowed_origins() {
    let config = configured(CORS);
    let allowed = client_view(
        &config,
        request(&[("origin", b"https://app.example")]),
        response(&[("access-control-allow-origin", "*"), ("vary", "Accept")]),
    );
    assert_eq!(
        allowed.get_all("access-control-allow-origin").collect::<Vec<_>>(),
        vec![&b"https://app.example"[..]]
    );
    assert_eq!(allowed.get_str("access-control-allow-credentials"), Some("true"));
    assert_eq!(allowed.get_str("access-control-expose-headers"), Some("x-request-id"));
    assert_eq!(
        allowed.get_all("vary").collect::<Vec<_>>(),
        vec![&b"Accept"[..], b"Origin"]
    );

    let refused = client_view(
        &config,
        request(&[("origin", b"https://evil.example")]),
        response(&[("access-control-allow-origin", "*")]),
    );
    assert!(
        refused.iter().all(|(n, _)| !n.starts_with("access-control-")),
        "{refused:?}"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn options_without_a_request_method_is_not_a_preflight() {
    let config = configured(CORS);
    let seen = upstream_view(
        &config,
        Headers::from_pairs([
            (":method", "OPTIONS"),
            (":path", "/"),
            ("origin", "https://app.example"),
        ]),
    );
    assert!(seen.contains("origin"));
}

#[wasm_bindgen_test(unsupported = test)]
fn any_origin_answers_star() {
    let config = configured(r#"{"cors": {"allow_any_origin": true}}"#);
    let seen = client_view(&config, request(&[("origin", b"https://x.example")]), response(&[]));
    assert_eq!(seen.get_str("access-control-allow-origin"), Some("*"));
}

#[wasm_bindgen_test(unsupported = test)]
fn bad_configs_are_refused_with_the_field_path() {
    let cases = [
        (r#"{"request": {"remove": ["bad name"]}}"#, "request.remove[0]"),
        (r#"{"request": {"remove": [":path"]}}"#, "request.remove[0]"),
        (r#"{"request": {"reserved": [":authority"]}}"#, "request.reserved[0]"),
        (
            r#"{"request": {"remove_regex": ["ok", "("]}}"#,
            "request.remove_regex[1]",
        ),
        (
            r#"{"request": {"remove_prefixes": ["x y"]}}"#,
            "request.remove_prefixes[0]",
        ),
        (r#"{"request": {"unknown": 1}}"#, "request.unknown"),
        (r#"{"response": {"strip_preset": "all"}}"#, "response.strip_preset"),
        (r#"{"request": {"strip_preset": "all"}}"#, "request.strip_preset"),
        (
            r#"{"response": {"security_headers": {"set": {"x-a": "a\nb"}}}}"#,
            "response.security_headers.set.x-a",
        ),
        (
            r#"{"response": {"security_headers": {"set": {"bad name": "v"}}}}"#,
            "response.security_headers.set.bad name",
        ),
        (
            r#"{"cors": {"allowed_origins": ["https://a.example", "https://b.example/"]}}"#,
            "cors.allowed_origins[1]",
        ),
        (r#"{"cors": {"allowed_origins": ["*"]}}"#, "cors.allowed_origins[0]"),
        (
            r#"{"cors": {"allow_any_origin": true, "allow_credentials": true}}"#,
            "cors.allow_any_origin",
        ),
        (r#"{"cors": {}}"#, "cors.allowed_origins"),
        (
            r#"{"cors": {"allow_any_origin": true, "allowed_methods": ["GE T"]}}"#,
            "cors.allowed_methods[0]",
        ),
        (
            r#"{"cors": {"allowed_origins": ["https://[::1"]}}"#,
            "cors.allowed_origins[0]",
        ),
        (
            r#"{"cors": {"allow_any_origin": true, "allowed_methods": ["GET", "delete"]}}"#,
            "cors.allowed_methods[1]",
        ),
        (
            r#"{"response": {"security_headers": {"set": {"X-Frame-Options": "DENY", "x-frame-options": "SAMEORIGIN"}}}}"#,
            "response.security_headers.set.x-frame-options",
        ),
        (
            r#"{"response": {"security_headers": {"set": {"Access-Control-Allow-Origin": "*"}}},
                "cors": {"allowed_origins": ["https://app.example"]}}"#,
            "response.security_headers.set.Access-Control-Allow-Origin",
        ),
        (r#"["not", "an", "object"]"#, ""),
    ];
    for (json, path) in cases {
        match Configured::<HeaderScrub>::new(json) {
            Ok(_) => panic!("accepted: {json}"),
            Err(e) => assert_eq!(e.path, path, "{json}: {e}"),
        }
    }
}

/// One header set twice (the config's keys differ only in case, or repeat) is refused, not the
/// last value silently.
#[wasm_bindgen_test(unsupported = test)]
fn a_security_header_set_twice_is_refused() {
    let cases = [
        (
            r#"{"response": {"security_headers": {"set": {"x-a": "1", "X-A": "2"}}}}"#,
            "response.security_headers.set.x-a: \"X-A\" sets the same header: header names are case-insensitive, set it once",
        ),
        (
            r#"{"response": {"security_headers": {"set": {"x-a": "1", "x-b": "2", "x-a": "3"}}}}"#,
            "response.security_headers.set: duplicate key \"x-a\"",
        ),
    ];
    for (json, expected) in cases {
        match Configured::<HeaderScrub>::new(json) {
            Ok(_) => panic!("accepted: {json}"),
            Err(e) => assert_eq!(e.to_string(), expected, "{json}"),
        }
    }
}

/// Security headers go on every response: never the status, the framing or the connection's.
#[wasm_bindgen_test(unsupported = test)]
fn security_headers_that_must_never_be_set_are_refused() {
    let cases = [
        (
            ":status",
            "response.security_headers.set.:status: \":status\" is a pseudo-header; a filter may not set it",
        ),
        (
            "Content-Length",
            "response.security_headers.set.Content-Length: \"content-length\" is a hop-by-hop or framing header; a filter may not set it",
        ),
        (
            "transfer-encoding",
            "response.security_headers.set.transfer-encoding: \"transfer-encoding\" is a hop-by-hop or framing header; a filter may not set it",
        ),
        (
            "connection",
            "response.security_headers.set.connection: \"connection\" is a hop-by-hop or framing header; a filter may not set it",
        ),
    ];
    for (name, expected) in cases {
        let json = format!(r#"{{"response": {{"security_headers": {{"set": {{"x-a": "1", "{name}": "v"}}}}}}}}"#);
        match Configured::<HeaderScrub>::new(&json) {
            Ok(_) => panic!("accepted: {json}"),
            Err(e) => assert_eq!(e.to_string(), expected, "{json}"),
        }
    }
}

/// The request phase's published outcome, and checks that it is the step's only state write.
fn outcome(config: &Configured<HeaderScrub>, headers: &Headers) -> Option<String> {
    let host = FakeHost::default();
    let step = config.filter().on_request_headers(headers, &host.ctx());
    assert_eq!(step.state_writes.len(), 1, "{:?}", step.state_writes);
    outcome_of(&step)
}

/// The outcome a step publishes, if it publishes one.
fn outcome_of(step: &Step) -> Option<String> {
    step.state_writes
        .iter()
        .find(|w| w.key == OUTCOME_STATE)
        .map(|w| String::from_utf8_lossy(&w.value).into_owned())
}

#[wasm_bindgen_test(unsupported = test)]
fn the_outcome_is_published_for_access_logs() {
    assert_eq!(OUTCOME_STATE, "apisec.header_scrub.outcome");
    let config = configured(
        r#"{"request": {"reserved": ["x-user-id"], "remove_prefixes": ["x-internal-"]},
            "cors": {"allowed_origins": ["https://app.example"], "allowed_methods": ["GET"]}}"#,
    );
    let cases: [(&str, Headers, Outcome); 8] = [
        ("nothing to remove", request(&[("x-other", b"1")]), Outcome::Passed),
        (
            "reserved header",
            request(&[("X-User-Id", b"admin")]),
            Outcome::Scrubbed,
        ),
        (
            "prefix rule, non-UTF-8 value",
            request(&[("x-internal-route", b"\xff")]),
            Outcome::Scrubbed,
        ),
        (
            "an allowed actual CORS request",
            request(&[("origin", b"https://app.example")]),
            Outcome::Passed,
        ),
        (
            "a refused origin on an actual request is the browser's to enforce",
            request(&[("origin", b"https://evil.example"), ("x-user-id", b"root")]),
            Outcome::Scrubbed,
        ),
        (
            "OPTIONS without a requested method is not a preflight",
            Headers::from_pairs([
                (":method", "OPTIONS"),
                (":path", "/"),
                ("origin", "https://app.example"),
            ]),
            Outcome::Passed,
        ),
        (
            "allowed preflight",
            preflight("https://app.example", "GET", None),
            Outcome::PreflightAllowed,
        ),
        (
            "refused preflight",
            preflight("https://evil.example", "GET", None),
            Outcome::PreflightDenied,
        ),
    ];
    for (what, headers, expected) in cases {
        assert_eq!(outcome(&config, &headers).as_deref(), Some(expected.as_str()), "{what}");
    }
    // A preflight for a method the config does not allow is refused too.
    assert_eq!(
        outcome(&config, &preflight("https://app.example", "DELETE", None)).as_deref(),
        Some("preflight_denied")
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn outcome_names_are_stable_snake_case() {
    let names = [
        Outcome::Passed,
        Outcome::Scrubbed,
        Outcome::PreflightAllowed,
        Outcome::PreflightDenied,
    ]
    .map(Outcome::as_str);
    assert_eq!(names, ["passed", "scrubbed", "preflight_allowed", "preflight_denied"]);
}

#[wasm_bindgen_test(unsupported = test)]
fn without_cors_a_preflight_is_forwarded_like_any_request() {
    let config = configured(r#"{"request": {"reserved": ["x-user-id"]}}"#);
    assert_eq!(
        outcome(&config, &preflight("https://app.example", "GET", None)).as_deref(),
        Some("passed")
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn the_response_phase_leaves_the_outcome_alone() {
    let config = configured(CORS);
    let host = FakeHost::default();
    let mut filter = config.filter();
    let step = filter.on_request_headers(&request(&[("origin", b"https://evil.example")]), &host.ctx());
    assert_eq!(step.state_writes.len(), 1);
    let step = filter.on_response_headers(&response(&[("server", "nginx")]), &host.ctx());
    assert!(step.state_writes.is_empty(), "{:?}", step.state_writes);
}

fn trailers(pairs: &[(&str, &str)]) -> Headers {
    Headers::from_pairs(pairs.iter().map(|(n, v)| (*n, v.as_bytes())))
}

#[wasm_bindgen_test(unsupported = test)]
fn request_trailers_lose_what_the_request_headers_would() {
    let config = configured(r#"{"request": {"reserved": ["x-user-id"], "remove_prefixes": ["x-internal-"]}}"#);
    let host = FakeHost::default();
    let mut filter = config.filter();
    let step = filter.on_request_headers(&request(&[]), &host.ctx());
    assert_eq!(outcome_of(&step), Some("passed".to_owned()));

    let mut sent = trailers(&[
        ("X-User-Id", "admin"),
        ("x-user-id", "root"),
        ("x-internal-route", "a"),
        ("grpc-timeout", "1S"),
    ]);
    let step = filter.on_request_trailers(&sent, &host.ctx());
    assert_eq!(step.action, Action::Continue);
    sent.apply(&step.header_edits);
    assert_eq!(sent.names(), vec!["grpc-timeout"]);
    assert_eq!(config.counter_names(&step.counters), vec!["request_headers_removed"; 2]);
    assert_eq!(outcome_of(&step), Some("scrubbed".to_owned()), "the outcome follows");

    let step = filter.on_request_trailers(&trailers(&[("grpc-timeout", "1S")]), &host.ctx());
    assert_eq!(step, Step::proceed(), "clean trailers: nothing to do");
}

#[wasm_bindgen_test(unsupported = test)]
fn response_trailers_lose_what_leaks_and_gain_nothing() {
    let config =
        configured(r#"{"response": {"remove_prefixes": ["x-backend", "server-"], "keep": ["server-timing"]}}"#);
    let host = FakeHost::default();
    let mut filter = config.filter();
    let mut sent = trailers(&[
        ("x-backend", "db-3"),
        ("x-powered-by", "PHP"),
        ("server-timing", "db;dur=53"),
        ("grpc-status", "0"),
    ]);
    let step = filter.on_response_trailers(&sent, &host.ctx());
    assert_eq!(step.action, Action::Continue);
    sent.apply(&step.header_edits);
    assert_eq!(sent.names(), vec!["server-timing", "grpc-status"]);
    assert_eq!(
        config.counter_names(&step.counters),
        vec!["response_headers_removed"; 2]
    );
    assert!(step.state_writes.is_empty(), "{:?}", step.state_writes);
}

/// The default preset removes the forwarding headers Envoy does not write (the client's own, which
/// upstreams take for what a proxy saw) and Envoy's router-control headers, in any spelling; it
/// leaves Envoy's own `x-forwarded-for` and `x-forwarded-proto`. `keep` lets through what a
/// trusted proxy in front sets.
#[wasm_bindgen_test(unsupported = test)]
fn client_forwarding_and_router_control_headers_are_removed_by_default() {
    let sent = || {
        request(&[
            ("x-forwarded-host", b"evil.example"),
            ("Forwarded", b"for=203.0.113.9;host=evil.example"),
            ("x_real_ip", b"203.0.113.9"),
            ("x-forwarded-prefix", b"/admin"),
            ("true-client-ip", b"203.0.113.9"),
            ("x-envoy-retry-on", b"5xx"),
            ("x-envoy-max-retries", b"4"),
            ("x-envoy-upstream-rq-timeout-ms", b"1"),
            ("x-forwarded-for", b"198.51.100.7"),
            ("x-forwarded-proto", b"https"),
            ("x-envoy-external-address", b"198.51.100.7"),
        ])
    };
    let seen = upstream_view(&configured("{}"), sent());
    assert_eq!(
        seen.names(),
        vec![
            ":method",
            ":path",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-envoy-external-address"
        ]
    );
    let behind_a_cdn = configured(r#"{"request": {"keep": ["True-Client-IP", "x-forwarded-host"]}}"#);
    let seen = upstream_view(&behind_a_cdn, sent());
    assert_eq!(seen.get_str("true-client-ip"), Some("203.0.113.9"));
    assert_eq!(seen.get_str("x-forwarded-host"), Some("evil.example"));
    assert_eq!(seen.get("forwarded"), None);
    let none = upstream_view(&configured(r#"{"request": {"strip_preset": "none"}}"#), sent());
    assert_eq!(none.len(), sent().len());
}

/// Settings that contradict each other, or do nothing, are refused at load with the field path,
/// rather than one of them winning silently.
#[wasm_bindgen_test(unsupported = test)]
fn contradictory_or_void_settings_are_refused_at_load() {
    let cases = [
        (
            r#"{"response": {"security_headers": {"omit": ["x-frame-options"], "set": {"X-Frame-Options": "SAMEORIGIN"}}}}"#,
            "response.security_headers.omit[0]",
        ),
        (
            r#"{"response": {"security_headers": {"omit": ["strict-transport-securty"]}}}"#,
            "response.security_headers.omit[0]",
        ),
        (
            r#"{"response": {"security_headers": {"preset": "none", "omit": ["x-frame-options"]}}}"#,
            "response.security_headers.omit[0]",
        ),
        (
            r#"{"response": {"security_headers": {"set": {"content-security-policy": " "}}}}"#,
            "response.security_headers.set.content-security-policy",
        ),
        (
            r#"{"response": {"remove": ["x-backend"], "keep": ["X_Backend"]}}"#,
            "response.keep[0]",
        ),
        (r#"{"response": {"keep": [":status"]}}"#, "response.keep[0]"),
        (
            r#"{"request": {"reserved": ["x-user-id"], "keep": ["x-user-id"]}}"#,
            "request.keep[0]",
        ),
        (
            r#"{"request": {"remove": ["x-debug"], "keep": ["x-debug"]}}"#,
            "request.keep[0]",
        ),
        (r#"{"request": {"keep": [":path"]}}"#, "request.keep[0]"),
    ];
    for (json, path) in cases {
        match Configured::<HeaderScrub>::new(json) {
            Ok(_) => panic!("loaded: {json}"),
            Err(e) => assert!(e.to_string().starts_with(&format!("{path}:")), "{json}: {e}"),
        }
    }
    // `keep` may override a prefix or regex rule: that is what it is for.
    configured(r#"{"response": {"remove_prefixes": ["x-debug-"], "keep": ["x-debug-id"]}}"#);
}

/// Properties of the header rules, over random names, spellings and rule sets.
#[cfg(not(target_family = "wasm"))]
mod properties {
    use proptest::prelude::*;
    use serde_json::json;
    use shared::testkit::{Configured, FakeHost};
    use shared::{HeaderEdit, Headers, HttpFilter};

    use crate::HeaderScrub;

    /// The form the filter compares names in: lowercase, `_` for `-`.
    fn normal(name: &str) -> String {
        name.to_ascii_lowercase().replace('_', "-")
    }

    /// A lowercase header name of one to four dash-separated words.
    fn name() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9]{0,5}(-[a-z0-9]{1,5}){0,3}"
    }

    /// `name` as a client might spell it: any letter case, any `-` written as `_`.
    fn spelling(name: String) -> impl Strategy<Value = String> {
        let len = name.len();
        proptest::collection::vec((any::<bool>(), any::<bool>()), len).prop_map(move |flips| {
            name.chars()
                .zip(flips)
                .map(|(c, (upper, underscore))| match c {
                    '-' if underscore => '_',
                    c if upper => c.to_ascii_uppercase(),
                    c => c,
                })
                .collect()
        })
    }

    fn configured(config: serde_json::Value) -> Configured<HeaderScrub> {
        Configured::new(&config.to_string()).unwrap_or_else(|e| panic!("config rejected: {e}: {config}"))
    }

    /// The request or response as the next hop sees it after this filter's edits.
    fn after(headers: &Headers, edits: &[HeaderEdit]) -> Headers {
        let mut headers = headers.clone();
        headers.apply(edits);
        headers
    }

    const PRESET: [&str; 4] = ["server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version"];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// A reserved header never reaches the upstream, however the config and the client
        /// spell it (letter case, `_` for `-`), in however many copies; other headers do.
        #[test]
        fn a_reserved_header_is_removed_in_any_spelling(
            (configured_as, sent_as) in name().prop_flat_map(|n| (spelling(n.clone()), proptest::collection::vec(spelling(n), 1..4))),
            other in name(),
        ) {
            prop_assume!(normal(&other) != normal(&configured_as));
            let config = configured(json!({"request": {"reserved": [configured_as]}}));
            let mut request = Headers::from_pairs([(":method", "GET"), (":path", "/orders")]);
            for spelling in &sent_as {
                request.push(spelling, b"spoofed".to_vec());
            }
            request.push(&other, b"kept".to_vec());
            let step = config.filter().on_request_headers(&request, &FakeHost::default().ctx());
            let seen = after(&request, &step.header_edits);
            prop_assert!(seen.iter().all(|(n, _)| normal(n) != normal(&configured_as)), "{:?}", seen);
            prop_assert_eq!(seen.get(&other), Some(&b"kept"[..]));
            prop_assert_eq!(seen.len(), 3);
        }

        /// Pseudo-headers are never removed or replaced, whatever the rules select, in either
        /// direction.
        #[test]
        fn pseudo_headers_are_never_touched(
            remove in proptest::collection::vec(name(), 0..3),
            prefixes in proptest::collection::vec("[a-z]{0,3}-?", 0..3),
            regexes in proptest::collection::vec(
                prop::sample::select(vec![".*", ".+", ":.*", "[:a-z]+", ":?path", "(:status|server)", "[^x].*"]),
                0..3,
            ),
            extra in proptest::collection::vec(name(), 0..4),
        ) {
            let prefixes: Vec<String> = prefixes.into_iter().filter(|p| !p.is_empty()).collect();
            let rules = json!({"remove": remove, "remove_prefixes": prefixes, "remove_regex": regexes});
            let mut response_rules = rules.clone();
            response_rules["security_headers"] = json!({"overwrite": true});
            let config = configured(json!({"request": rules, "response": response_rules}));
            let pseudo = |h: &Headers| -> Vec<(String, Vec<u8>)> {
                h.iter().filter(|(n, _)| n.starts_with(':')).map(|(n, v)| (n.to_owned(), v.to_vec())).collect()
            };
            let touches_pseudo = |edits: &[HeaderEdit]| edits.iter().any(|edit| match edit {
                HeaderEdit::Remove(n) | HeaderEdit::Set(n, _) | HeaderEdit::Add(n, _) => n.as_str().starts_with(':'),
            });

            let mut request = Headers::from_pairs([
                (":method", "GET"), (":path", "/orders?x=1"), (":authority", "api.example"), (":scheme", "https"),
            ]);
            let mut response = Headers::from_pairs([(":status", "200")]);
            for name in &extra {
                request.push(name, b"1".to_vec());
                response.push(name, b"1".to_vec());
            }
            let host = FakeHost::default();
            let mut filter = config.filter();
            let step = filter.on_request_headers(&request, &host.ctx());
            prop_assert!(!touches_pseudo(&step.header_edits), "{:?}", step.header_edits);
            prop_assert_eq!(pseudo(&after(&request, &step.header_edits)), pseudo(&request));
            let step = filter.on_response_headers(&response, &host.ctx());
            prop_assert!(!touches_pseudo(&step.header_edits), "{:?}", step.header_edits);
            prop_assert_eq!(pseudo(&after(&response, &step.header_edits)), pseudo(&response));
        }

        /// `keep` wins over the strip preset and over the operator's other rules: a kept name (in
        /// any spelling) always reaches the client; every other name the preset or a rule
        /// selects never does; anything else passes.
        #[test]
        fn keep_wins_over_the_preset_and_the_rules(
            envoy_suffixes in proptest::collection::vec("[a-z]{1,8}(-[a-z]{1,5})?", 1..4),
            plain in proptest::collection::vec(name(), 0..4),
            removed in proptest::collection::vec(name(), 0..3),
            kept_mask in proptest::collection::vec(any::<bool>(), 12),
            keep_spelling in any::<u64>(),
        ) {
            let mut names: Vec<String> = PRESET.iter().map(|n| (*n).to_owned()).collect();
            names.extend(envoy_suffixes.iter().map(|s| format!("x-envoy-{s}")));
            names.extend(plain.iter().cloned());
            names.extend(removed.iter().cloned());
            // Kept names, spelled in the config with letter case and `_` varying by position. A
            // name both in `remove` and in `keep` is refused at load, so none is drawn.
            let keep: Vec<String> = names
                .iter()
                .zip(kept_mask.iter().cycle())
                .filter(|(n, kept)| **kept && !removed.iter().any(|r| normal(r) == normal(n)))
                .enumerate()
                .map(|(i, (n, _))| {
                    n.chars()
                        .enumerate()
                        .map(|(j, c)| match (keep_spelling >> ((i * 7 + j) % 64)) & 1 {
                            1 if c == '-' => '_',
                            1 => c.to_ascii_uppercase(),
                            _ => c,
                        })
                        .collect()
                })
                .collect();
            let config = configured(json!({"response": {
                "remove": removed, "keep": keep, "security_headers": {"preset": "none"},
            }}));
            let mut response = Headers::from_pairs([(":status", "200")]);
            for name in &names {
                response.push(name, b"v".to_vec());
            }
            let host = FakeHost::default();
            let mut filter = config.filter();
            let request = Headers::from_pairs([(":method", "GET"), (":path", "/")]);
            let _ = filter.on_request_headers(&request, &host.ctx());
            let step = filter.on_response_headers(&response, &host.ctx());
            let seen = after(&response, &step.header_edits);
            for name in &names {
                let kept = keep.iter().any(|k| normal(k) == normal(name));
                let selected = PRESET.contains(&name.as_str())
                    || name.starts_with("x-envoy-")
                    || removed.iter().any(|r| normal(r) == normal(name));
                prop_assert_eq!(seen.contains(name), kept || !selected, "{} (kept {}, selected {})", name, kept, selected);
            }
        }
    }
}

/// A response that reflects allowed origins varies by `Origin` whatever the request's origin:
/// one to no origin or to a refused one must not be served from a cache to an allowed origin.
#[wasm_bindgen_test(unsupported = test)]
fn vary_origin_is_on_every_response_when_origins_are_reflected() {
    let config = configured(CORS);
    let plain = client_view(&config, request(&[]), response(&[("cache-control", "max-age=60")]));
    assert!(
        plain.get_all("vary").any(|v| v.eq_ignore_ascii_case(b"origin")),
        "{plain:?}"
    );
    let refused = client_view(&config, request(&[("origin", b"https://evil.example")]), response(&[]));
    assert!(
        refused.get_all("vary").any(|v| v.eq_ignore_ascii_case(b"origin")),
        "{refused:?}"
    );
    assert!(!refused.contains("access-control-allow-origin"));

    let any = configured(r#"{"cors": {"allow_any_origin": true}}"#);
    let plain = client_view(&any, request(&[]), response(&[]));
    assert!(!plain.contains("vary"), "`*` does not depend on the origin: {plain:?}");
}

/// A security header the upstream sent but a response rule removed is absent: the preset's
/// value goes in its place.
#[wasm_bindgen_test(unsupported = test)]
fn a_removed_upstream_security_header_is_replaced_by_the_presets() {
    let config = configured(r#"{"response": {"remove_prefixes": ["x-"]}}"#);
    let seen = client_view(
        &config,
        request(&[]),
        response(&[("x-content-type-options", "nosniff"), ("x-frame-options", "SAMEORIGIN")]),
    );
    assert_eq!(seen.get("x-frame-options"), Some(&b"DENY"[..]), "{seen:?}");
    assert_eq!(seen.get("x-content-type-options"), Some(&b"nosniff"[..]), "{seen:?}");
}

#[wasm_bindgen_test(unsupported = test)]
fn ipv6_origins_are_accepted_with_and_without_a_port() {
    for origin in ["http://[::1]", "http://[::1]:8080", "https://[2001:db8::1]"] {
        let config = Configured::<HeaderScrub>::new(&format!(r#"{{"cors": {{"allowed_origins": ["{origin}"]}}}}"#));
        assert!(config.is_ok(), "{origin}: {:?}", config.err());
    }
    assert!(Configured::<HeaderScrub>::new(r#"{"cors": {"allowed_origins": ["http://[::1]:x"]}}"#).is_err());
}

/// Browsers take `_` in host names (WHATWG URL) and send `Origin: https://my_app.example`.
#[wasm_bindgen_test(unsupported = test)]
fn an_origin_with_an_underscore_in_its_host_can_be_allowed() {
    let config = configured(r#"{"cors": {"allowed_origins": ["https://My_App.example"]}}"#);
    let seen = client_view(
        &config,
        request(&[("origin", b"https://my_app.example")]),
        response(&[]),
    );
    assert_eq!(
        seen.get("access-control-allow-origin"),
        Some(&b"https://my_app.example"[..])
    );
}

/// Config mistakes that used to load and then quietly do something else: the message names the
/// field and says what to write instead.
#[wasm_bindgen_test(unsupported = test)]
fn configs_that_would_misbehave_are_refused_with_the_reason() {
    let message = |json: &str| match Configured::<HeaderScrub>::new(json) {
        Ok(_) => panic!("accepted: {json}"),
        Err(e) => e.to_string(),
    };
    // Browsers send `DELETE` in a preflight whatever the page wrote: `delete` never matches.
    assert_eq!(
        message(r#"{"cors": {"allow_any_origin": true, "allowed_methods": ["get"]}}"#),
        r#"cors.allowed_methods[0]: "get": write methods in uppercase ("GET"), as browsers send them in preflights"#
    );
    // One header, two values: which one went out depended on the keys' sort order.
    assert_eq!(
        message(
            r#"{"response": {"security_headers": {"set": {"x-frame-options": "SAMEORIGIN", "X-Frame-Options": "DENY"}}}}"#
        ),
        r#"response.security_headers.set.x-frame-options: "X-Frame-Options" sets the same header: header names are case-insensitive, set it once"#
    );
    // A refused origin would get `Access-Control-Allow-Origin: *` from the security headers.
    assert_eq!(
        message(
            r#"{"response": {"security_headers": {"set": {"access-control-allow-origin": "*"}}},
                "cors": {"allowed_origins": ["https://app.example"]}}"#
        ),
        "response.security_headers.set.access-control-allow-origin: CORS headers come from the cors policy: configure them there"
    );
    assert_eq!(
        message(r#"{"cors": {"allowed_origins": ["https://[::1"]}}"#),
        r#"cors.allowed_origins[0]: "https://[::1" is not an origin (expected scheme://host[:port] with no path)"#
    );
    // `*` is "any" to browsers, and would refuse every preflight here.
    for (list, value) in [("allowed_methods", "GET"), ("allowed_headers", "x-trace")] {
        assert_eq!(
            message(&format!(
                r#"{{"cors": {{"allow_any_origin": true, "{list}": ["{value}", "*"]}}}}"#
            )),
            format!(r#"cors.{list}[1]: "*" is not a wildcard here: list what preflights may ask for"#)
        );
    }
    // Without `cors` the filter is no CORS authority, and a fixed value is the operator's call.
    configured(r#"{"response": {"security_headers": {"set": {"access-control-allow-origin": "*"}}}}"#);
}

/// Header names have no case: a regex written with capitals must catch the lowercase names the
/// host hands over, on requests and responses alike.
#[wasm_bindgen_test(unsupported = test)]
fn remove_regexes_match_names_in_any_letter_case() {
    let config = configured(
        r#"{"request": {"remove_regex": ["X-Debug-.*"]}, "response": {"strip_preset": "none", "remove_regex": ["X-Backend-[A-Z]+"]}}"#,
    );
    let seen = upstream_view(
        &config,
        request(&[("x-debug-trace", b"1"), ("X-DEBUG-LEVEL", b"2"), ("x-debugger", b"3")]),
    );
    assert_eq!(seen.names(), vec![":method", ":path", "x-debugger"]);
    let seen = client_view(
        &config,
        request(&[]),
        response(&[("x-backend-host", "db1"), ("x-backend-2", "kept")]),
    );
    assert!(!seen.contains("x-backend-host"));
    assert!(seen.contains("x-backend-2"));
}

/// An empty field value is no policy (browsers ignore an empty `X-Frame-Options` or
/// `Content-Security-Policy`): the upstream set nothing that could win over the gateway's value.
#[wasm_bindgen_test(unsupported = test)]
fn an_empty_upstream_security_header_does_not_displace_the_preset() {
    let config = configured("{}");
    let seen = client_view(
        &config,
        request(&[]),
        response(&[
            ("x-frame-options", ""),
            ("content-security-policy", " "),
            ("strict-transport-security", ""),
            ("referrer-policy", "same-origin"),
        ]),
    );
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
        ("strict-transport-security", "max-age=63072000; includeSubDomains"),
        ("referrer-policy", "same-origin"),
    ] {
        assert_eq!(
            seen.get_all(name).collect::<Vec<_>>(),
            vec![value.as_bytes()],
            "{name}: {seen:?}"
        );
    }
}

/// With `allow_any_origin` the answer to a CORS request carries `Access-Control-Allow-Origin: *`,
/// but the answer to the same URL without `Origin` carried neither that header nor
/// `Vary: Origin` (and the upstream's own `*` was even removed). A cache (a CDN, Envoy's cache
/// filter, a browser) that stored the no-`Origin` answer hands it to the next cross-origin
/// request, which the browser then refuses. Fetch standard, "CORS protocol and HTTP caches":
/// with `*`, always send `Access-Control-Allow-Origin`, for non-CORS requests too (or vary).
#[wasm_bindgen_test(unsupported = test)]
fn any_origin_answers_without_origin_are_safe_to_cache_for_cors_requests() {
    let config = configured(r#"{"cors": {"allow_any_origin": true}}"#);
    let cors = client_view(
        &config,
        request(&[("origin", b"https://app.example")]),
        response(&[("cache-control", "public, max-age=600")]),
    );
    assert_eq!(cors.get_str("access-control-allow-origin"), Some("*"));
    let plain = client_view(
        &config,
        request(&[]),
        response(&[
            ("cache-control", "public, max-age=600"),
            ("access-control-allow-origin", "*"),
        ]),
    );
    let star = plain.get_str("access-control-allow-origin") == Some("*");
    let varies = plain
        .get_all("vary")
        .flat_map(shared::headers::split_list)
        .any(|v| v.eq_ignore_ascii_case(b"origin"));
    assert!(
        star || varies,
        "a cacheable answer without Origin has neither `Access-Control-Allow-Origin: *` nor `Vary: Origin`: {plain:?}"
    );
}

/// `Access-Control-Expose-Headers: *` exposes every header only to requests without credentials
/// (Fetch standard, "HTTP responses"; the CORS check); with `allow_credentials` browsers read it
/// as a header named `*` and expose nothing. The same reason `*` is refused in
/// `allowed_headers` and `allowed_methods`.
#[wasm_bindgen_test(unsupported = test)]
fn an_exposed_wildcard_with_credentials_is_refused() {
    let json = r#"{"cors": {"allowed_origins": ["https://app.example"], "allow_credentials": true,
        "exposed_headers": ["*"]}}"#;
    match Configured::<HeaderScrub>::new(json) {
        Ok(_) => panic!("loaded: {json}"),
        Err(e) => assert!(e.to_string().starts_with("cors.exposed_headers[0]:"), "{e}"),
    }
}

/// `allow_any_origin` answers every origin with `*`: a list of origins beside it restricts
/// nothing, one of the two settings is void (refused elsewhere in this config, e.g. `omit` with
/// `set`).
#[wasm_bindgen_test(unsupported = test)]
fn allowed_origins_beside_allow_any_origin_are_refused() {
    let json = r#"{"cors": {"allow_any_origin": true, "allowed_origins": ["https://app.example"]}}"#;
    assert!(Configured::<HeaderScrub>::new(json).is_err(), "loaded: {json}");
}

/// A `GET` with `Authorization` is preflighted with `Access-Control-Request-Method: GET`. Browsers
/// accept a CORS-safelisted method (`GET`, `HEAD`, `POST`) whatever `Access-Control-Allow-Methods`
/// lists (Fetch standard, CORS-preflight fetch), so `allowed_methods: ["PUT", "DELETE"]` reads
/// as "these as well"; the filter answered such preflights 403, and every authenticated `GET`
/// from the allowed origin failed.
#[wasm_bindgen_test(unsupported = test)]
fn a_preflight_for_a_safelisted_method_is_allowed_without_listing_it() {
    let config = configured(
        r#"{"cors": {"allowed_origins": ["https://app.example"], "allowed_methods": ["PUT", "DELETE"],
            "allowed_headers": ["authorization"]}}"#,
    );
    for method in ["GET", "HEAD", "POST"] {
        let step = config.filter().on_request_headers(
            &preflight("https://app.example", method, Some("authorization")),
            &FakeHost::default().ctx(),
        );
        let reply = step.local_reply().expect("answered locally");
        assert_eq!(reply.status, 204, "{method}");
    }
}
