//! Checks of the harness itself, with a real Envoy but no wasm filter.

use harness::envoy::{validate, validate_bootstrap};
use harness::{Envoy, Gateway, GatewayConfig, Request};

/// Plain proxying: path, query and repeated request headers reach the echo.
#[test]
fn proxies_to_echo_keeping_repeated_headers() {
    let gw = Gateway::start(Vec::new());
    let resp = gw.send(
        Request::get("/hello?x=1")
            .header("X-Twice", "first")
            .header("x-twice", "second"),
    );
    assert_eq!(resp.status, 200, "body: {}", resp.text());
    assert_eq!(resp.header("content-type").as_deref(), Some("application/json"));
    let echo = resp.json();
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/hello?x=1");
    let twice: Vec<&str> = echo["headers"]
        .as_array()
        .expect("headers array")
        .iter()
        .filter(|h| h[0] == "x-twice")
        .map(|h| h[1].as_str().expect("header value string"))
        .collect();
    assert_eq!(twice, ["first", "second"], "echo: {echo}");

    assert_eq!(gw.echo.request_count(), 1);
    let seen = gw.echo.last_request();
    assert_eq!(seen.header_all("X-TWICE"), ["first", "second"]);
    assert!(seen.has_header("x-request-id"), "Envoy adds x-request-id");

    // A second request on the same gateway, with a body.
    let resp = gw.send(Request::post("/submit", "payload"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["body"], "payload");
    assert_eq!(gw.echo.requests().len(), 2);
    assert!(gw.envoy.counter("http.gateway.downstream_rq_completed") >= 2);
    assert!(gw.envoy.prometheus().contains("envoy_http_downstream_rq_completed"));
}

/// Headers configured on the echo upstream come back to the client.
#[test]
fn echo_response_headers_reach_client() {
    let gw = Gateway::start(Vec::new());
    gw.echo.set_response_headers(vec![
        ("x-upstream".into(), "yes".into()),
        ("set-cookie".into(), "a=1".into()),
        ("set-cookie".into(), "b=2".into()),
    ]);
    let resp = gw.get("/anything");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("X-Upstream").as_deref(), Some("yes"));
    assert_eq!(resp.header_all("set-cookie"), ["a=1", "b=2"]);
}

/// Envoy's own answers: the direct-response route and an unreachable cluster.
#[test]
fn direct_and_dead_routes_answer_from_envoy() {
    let gw = Gateway::start(Vec::new());
    let resp = gw.get("/direct/x");
    assert_eq!(resp.status, 418);
    assert_eq!(resp.text(), "direct");
    let resp = gw.get("/dead/x");
    assert_eq!(resp.status, 503, "body: {}", resp.text());
    assert_eq!(gw.echo.request_count(), 0, "neither route reaches the echo");
}

/// A header value with non-UTF-8 (obs-text, 0x80..=0xff) bytes is forwarded
/// byte for byte; a control byte makes Envoy's HTTP/1 codec answer 400.
#[test]
fn non_utf8_header_value_reaches_echo() {
    let gw = Gateway::start(Vec::new());
    let value: &[u8] = b"caf\xe9-\x80-\xff";
    let resp = gw.send(Request::get("/bytes").header_bytes(b"X-Raw", value));
    assert_eq!(resp.status, 200, "body: {}", resp.text());
    let seen = gw.echo.last_request();
    let raw: Vec<&Vec<u8>> = seen
        .headers
        .iter()
        .filter(|(n, _)| n == "x-raw")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(raw, [&value.to_vec()]);
    assert_eq!(resp.json()["headers"].to_string().matches('\u{fffd}').count(), 3);

    let resp = gw.send(Request::get("/ctl").header_bytes(b"X-Raw", b"a\x01b"));
    assert_eq!(resp.status, 400);
    assert_eq!(gw.echo.request_count(), 1, "rejected request must not reach the echo");
}

/// Reading stops at the end of the framed response even when the server
/// keeps the connection open.
#[test]
fn keep_alive_response_is_read_by_framing() {
    // A client that waited for EOF would hit its read timeout, and `send` would panic.
    let gw = Gateway::start(Vec::new());
    let resp = gw.send(Request::get("/ka").header("Connection", "keep-alive"));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["path"], "/ka");
}

/// A bootstrap Envoy rejects makes `Envoy::start` fail with Envoy's words.
#[test]
fn invalid_bootstrap_is_an_error_with_envoy_log() {
    let bootstrap = serde_json::json!({
        "static_resources": {
            "clusters": [{ "name": "broken", "type": "NO_SUCH_TYPE" }]
        }
    });
    let err = Envoy::start(&bootstrap, 1).expect_err("Envoy must reject this bootstrap");
    assert!(err.contains("NO_SUCH_TYPE"), "error lacks Envoy's reason: {err}");
}

/// `validate` accepts the generated configuration.
#[test]
fn validate_accepts_generated_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("envoy.json");
    let bootstrap = GatewayConfig::new(([127, 0, 0, 1], 9).into()).to_bootstrap();
    std::fs::write(&path, bootstrap.to_string()).expect("write config");
    let out = validate(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("OK"), "validate output: {out}");

    std::fs::write(&path, "{\"admin\": 5}").expect("write config");
    assert!(validate(&path).is_err());

    let mut broken = bootstrap.clone();
    broken["static_resources"]["clusters"][0]["type"] = "NO_SUCH_TYPE".into();
    let err = validate_bootstrap(&broken).expect_err("Envoy must reject this bootstrap");
    assert!(err.contains("NO_SUCH_TYPE"), "validate output: {err}");
}
