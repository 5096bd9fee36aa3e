//! Checks of the test rate-limit service (`harness::ratelimit`), without
//! Envoy: over gRPC with tonic's generated client, and over HTTP/1.1 JSON
//! with the harness's raw client.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit as ProtoUnit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{Code, RateLimit};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;
use harness::http::{self, Request, Response};
use harness::ratelimit::{Descriptor, Fault, Limit, RecordedRequest, Transport, Unit, JSON_PATH};
use harness::RateLimitService;
use serde_json::json;
use tonic::transport::Channel;

/// A gRPC client with its own runtime; its channel keeps one HTTP/2
/// connection, as Envoy does.
struct Grpc {
    runtime: tokio::runtime::Runtime,
    client: RateLimitServiceClient<Channel>,
}

impl Grpc {
    fn connect(rls: &RateLimitService) -> Grpc {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let url = format!("http://{}", rls.grpc_addr());
        let client = runtime
            .block_on(RateLimitServiceClient::connect(url.clone()))
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        Grpc { runtime, client }
    }

    fn call(&mut self, req: RateLimitRequest) -> Result<RateLimitResponse, tonic::Status> {
        let client = &mut self.client;
        self.runtime
            .block_on(client.should_rate_limit(req))
            .map(tonic::Response::into_inner)
    }

    fn ok(&mut self, req: RateLimitRequest) -> RateLimitResponse {
        self.call(req).unwrap_or_else(|e| panic!("ShouldRateLimit failed: {e}"))
    }
}

fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(k, v)| Entry {
                key: (*k).to_owned(),
                value: (*v).to_owned(),
            })
            .collect(),
        ..RateLimitDescriptor::default()
    }
}

fn request(domain: &str, descriptors: Vec<RateLimitDescriptor>) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.to_owned(),
        descriptors,
        hits_addend: 0,
    }
}

/// One descriptor `client=<client>` in domain `api`.
fn client_request(client: &str) -> RateLimitRequest {
    request("api", vec![descriptor(&[("client", client)])])
}

fn post_json(rls: &RateLimitService, body: &str) -> Response {
    let req = Request::post(JSON_PATH, body).header("Content-Type", "application/json");
    http::send(rls.http_addr(), &req).unwrap_or_else(|e| panic!("POST {JSON_PATH}: {e}"))
}

/// `{"domain": "api", "descriptors": [{"entries": [{"key": "client", "value": <client>}]}]}`.
fn client_json(client: &str) -> String {
    json!({"domain": "api", "descriptors": [{"entries": [{"key": "client", "value": client}]}]}).to_string()
}

fn service_with_client_limit(requests_per_unit: u32) -> RateLimitService {
    let rls = RateLimitService::start();
    rls.set_limit(
        "api",
        Limit::new(&[("client", None)], requests_per_unit, Unit::Minute).named("per-client"),
    );
    rls
}

fn code(c: Code) -> i32 {
    c as i32
}

#[test]
fn grpc_ok_until_the_limit_then_over_limit() {
    let rls = service_with_client_limit(3);
    let mut grpc = Grpc::connect(&rls);
    for remaining in [2, 1, 0] {
        let resp = grpc.ok(client_request("a"));
        assert_eq!(resp.overall_code, code(Code::Ok));
        let [status] = resp.statuses.as_slice() else {
            panic!("one status per descriptor: {resp:?}");
        };
        assert_eq!(status.code, code(Code::Ok));
        assert_eq!(status.limit_remaining, remaining);
        assert_eq!(
            status.current_limit,
            Some(RateLimit {
                name: "per-client".into(),
                requests_per_unit: 3,
                unit: ProtoUnit::Minute as i32,
            })
        );
        let reset = status.duration_until_reset.expect("duration_until_reset").seconds;
        assert!(
            (1..=60).contains(&reset),
            "duration_until_reset {reset}s within a minute"
        );
    }
    let resp = grpc.ok(client_request("a"));
    assert_eq!(resp.overall_code, code(Code::OverLimit));
    assert_eq!(resp.statuses[0].code, code(Code::OverLimit));
    assert_eq!(resp.statuses[0].limit_remaining, 0);

    rls.reset_counts();
    assert_eq!(grpc.ok(client_request("a")).overall_code, code(Code::Ok));
}

#[test]
fn json_ok_until_the_limit_then_429() {
    let rls = service_with_client_limit(2);
    rls.set_response_headers(vec![("X-RateLimit-Limit".into(), "2".into())]);
    let resp = post_json(&rls, &client_json("a"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type").as_deref(), Some("application/json"));
    let body = resp.json();
    assert_eq!(body["overallCode"], "OK");
    let status = &body["statuses"][0];
    assert_eq!(status["code"], "OK");
    assert_eq!(
        status["currentLimit"],
        json!({"name": "per-client", "requestsPerUnit": 2, "unit": "MINUTE"})
    );
    assert_eq!(status["limitRemaining"], 1);
    let reset = status["durationUntilReset"].as_str().expect("a proto3 Duration string");
    let secs: u64 = reset
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .expect("like \"42s\"");
    assert!((1..=60).contains(&secs), "{reset}");
    assert_eq!(
        body["responseHeadersToAdd"],
        json!([{"key": "X-RateLimit-Limit", "value": "2"}])
    );

    // At the limit: limitRemaining 0 is a default value, so left out.
    let body = post_json(&rls, &client_json("a")).json();
    assert_eq!(body["overallCode"], "OK");
    assert_eq!(body["statuses"][0].get("limitRemaining"), None);

    let resp = post_json(&rls, &client_json("a"));
    assert_eq!(resp.status, 429);
    assert_eq!(resp.json()["overallCode"], "OVER_LIMIT");
    assert_eq!(resp.json()["statuses"][0]["code"], "OVER_LIMIT");
}

#[test]
fn both_transports_share_the_counts() {
    let rls = service_with_client_limit(2);
    let mut grpc = Grpc::connect(&rls);
    assert_eq!(grpc.ok(client_request("a")).statuses[0].limit_remaining, 1);
    assert_eq!(post_json(&rls, &client_json("a")).status, 200);
    assert_eq!(grpc.ok(client_request("a")).overall_code, code(Code::OverLimit));
    assert_eq!(post_json(&rls, &client_json("a")).status, 429);
}

#[test]
fn each_value_counts_separately() {
    let rls = service_with_client_limit(1);
    let mut grpc = Grpc::connect(&rls);
    assert_eq!(grpc.ok(client_request("a")).overall_code, code(Code::Ok));
    assert_eq!(grpc.ok(client_request("b")).overall_code, code(Code::Ok));
    assert_eq!(grpc.ok(client_request("a")).overall_code, code(Code::OverLimit));
    assert_eq!(grpc.ok(client_request("b")).overall_code, code(Code::OverLimit));
    // Another domain has no rule.
    let other = grpc.ok(request("other", vec![descriptor(&[("client", "a")])]));
    assert_eq!(other.overall_code, code(Code::Ok));
}

#[test]
fn a_fixed_value_matches_only_that_value_and_wins() {
    let rls = service_with_client_limit(1);
    rls.set_limit(
        "api",
        Limit::new(&[("client", Some("vip"))], 5, Unit::Hour).named("vip"),
    );
    rls.set_limit("api", Limit::new(&[("path", Some("/admin"))], 1, Unit::Second));
    let mut grpc = Grpc::connect(&rls);

    let vip = grpc.ok(client_request("vip")).statuses[0].clone();
    assert_eq!(vip.limit_remaining, 4);
    let limit = vip.current_limit.expect("the vip rule");
    assert_eq!((limit.name.as_str(), limit.unit), ("vip", ProtoUnit::Hour as i32));
    assert_eq!(grpc.ok(client_request("plain")).statuses[0].limit_remaining, 0);

    let admin = grpc.ok(request("api", vec![descriptor(&[("path", "/admin")])]));
    assert_eq!(
        admin.statuses[0].current_limit.as_ref().map(|l| l.requests_per_unit),
        Some(1)
    );
    let other = grpc.ok(request("api", vec![descriptor(&[("path", "/other")])]));
    assert_eq!(other.statuses[0].current_limit, None, "no rule for another path");
}

#[test]
fn hits_addend_of_the_request_and_of_a_descriptor() {
    let rls = service_with_client_limit(10);
    let mut grpc = Grpc::connect(&rls);
    let mut req = client_request("a");
    req.hits_addend = 4;
    assert_eq!(grpc.ok(req.clone()).statuses[0].limit_remaining, 6);

    // The descriptor's own addend wins; 0 there counts nothing.
    req.descriptors[0].hits_addend = Some(UInt64Value { value: 5 });
    assert_eq!(grpc.ok(req.clone()).statuses[0].limit_remaining, 1);
    req.descriptors[0].hits_addend = Some(UInt64Value { value: 0 });
    assert_eq!(grpc.ok(req).statuses[0].limit_remaining, 1);

    // Over JSON, snake_case and string integers as proto3 JSON allows.
    let body = r#"{"domain": "api", "hits_addend": 1,
        "descriptors": [{"entries": [{"key": "client", "value": "a"}], "hitsAddend": "2"}]}"#;
    let resp = post_json(&rls, body);
    assert_eq!(resp.status, 429, "{}", resp.text());
    assert_eq!(
        rls.requests().last().map(|r| r.descriptors[0].hits_addend),
        Some(Some(2))
    );
}

#[test]
fn a_descriptor_without_a_rule_is_ok_and_the_worst_one_decides() {
    let rls = service_with_client_limit(0);
    let mut grpc = Grpc::connect(&rls);
    let resp = grpc.ok(request(
        "api",
        vec![descriptor(&[("unknown", "x")]), descriptor(&[("client", "a")])],
    ));
    assert_eq!(resp.overall_code, code(Code::OverLimit));
    let [free, limited] = resp.statuses.as_slice() else {
        panic!("two statuses: {resp:?}");
    };
    assert_eq!(free.code, code(Code::Ok));
    assert_eq!((free.current_limit.as_ref(), free.limit_remaining), (None, 0));
    assert_eq!(limited.code, code(Code::OverLimit));

    let body = post_json(
        &rls,
        r#"{"domain": "api", "descriptors": [{"entries": [{"key": "unknown"}]}]}"#,
    )
    .json();
    assert_eq!(body, json!({"overallCode": "OK", "statuses": [{"code": "OK"}]}));
}

#[test]
fn response_headers_are_added_over_grpc() {
    let rls = RateLimitService::start();
    rls.set_response_headers(vec![("x-ratelimit-policy".into(), "3;w=60".into())]);
    let resp = Grpc::connect(&rls).ok(client_request("a"));
    let headers: Vec<(&str, &str)> = resp
        .response_headers_to_add
        .iter()
        .map(|h| (h.key.as_str(), h.value.as_str()))
        .collect();
    assert_eq!(headers, [("x-ratelimit-policy", "3;w=60")]);
}

#[test]
fn calls_are_recorded_with_their_transport() {
    let rls = RateLimitService::start();
    let mut with_addend = descriptor(&[("client", "a"), ("path", "/p")]);
    with_addend.hits_addend = Some(UInt64Value { value: 3 });
    let mut req = request("grpc-domain", vec![with_addend]);
    req.hits_addend = 2;
    Grpc::connect(&rls).ok(req);
    post_json(&rls, &client_json("b"));
    assert_eq!(post_json(&rls, "{not json").status, 400);

    let mut expected_grpc = Descriptor::new(&[("client", "a"), ("path", "/p")]);
    expected_grpc.hits_addend = Some(3);
    assert_eq!(
        rls.requests(),
        vec![
            RecordedRequest {
                transport: Transport::Grpc,
                domain: "grpc-domain".into(),
                descriptors: vec![expected_grpc],
                hits_addend: 2,
            },
            RecordedRequest {
                transport: Transport::Http,
                domain: "api".into(),
                descriptors: vec![Descriptor::new(&[("client", "b")])],
                hits_addend: 0,
            },
        ]
    );
    assert_eq!(rls.calls(), 3, "the malformed body counts as a call");
    rls.clear_requests();
    assert_eq!((rls.requests(), rls.calls()), (Vec::new(), 0));
}

#[test]
fn malformed_json_is_400_and_other_paths_404() {
    let rls = RateLimitService::start();
    for body in [
        "{not json",
        "[]",
        r#"{"domain": "d", "bogus": 1}"#,
        r#"{"descriptors": [{"entries": "k=v"}]}"#,
    ] {
        let resp = post_json(&rls, body);
        assert_eq!(resp.status, 400, "{body}: {}", resp.text());
    }
    let resp = http::send(rls.http_addr(), &Request::get("/other")).expect("GET /other");
    assert_eq!(resp.status, 404);
}

#[test]
fn slow_answers_after_the_delay_on_both_transports() {
    let rls = service_with_client_limit(5);
    let mut grpc = Grpc::connect(&rls);
    let delay = Duration::from_millis(300);
    rls.set_fault(Fault::Slow(delay));

    let start = Instant::now();
    let resp = grpc.ok(client_request("a"));
    assert!(start.elapsed() >= delay, "answered after {:?}", start.elapsed());
    assert_eq!(resp.statuses[0].limit_remaining, 4, "a slow answer counts");

    let start = Instant::now();
    let resp = post_json(&rls, &client_json("a"));
    assert!(start.elapsed() >= delay, "answered after {:?}", start.elapsed());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["statuses"][0]["limitRemaining"], 3);
}

#[test]
fn status_fault_on_both_transports() {
    let rls = service_with_client_limit(5);
    let mut grpc = Grpc::connect(&rls);
    rls.set_fault(Fault::Status(tonic::Code::ResourceExhausted));

    let err = grpc.call(client_request("a")).expect_err("a gRPC error");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    let resp = post_json(&rls, &client_json("a"));
    assert_eq!(resp.status, 500);
    assert!(resp.text().contains("ResourceExhausted"), "{}", resp.text());

    assert_eq!(rls.calls(), 2);
    rls.set_fault(Fault::None);
    assert_eq!(
        grpc.ok(client_request("a")).statuses[0].limit_remaining,
        4,
        "faults count no hits"
    );
}

#[test]
fn unknown_fault_on_both_transports() {
    let rls = service_with_client_limit(5);
    let mut grpc = Grpc::connect(&rls);
    rls.set_fault(Fault::Unknown);

    let resp = grpc.ok(client_request("a"));
    assert_eq!(resp.overall_code, code(Code::Unknown));
    assert!(resp.statuses.is_empty(), "{resp:?}");
    let resp = post_json(&rls, &client_json("a"));
    assert_eq!(resp.status, 500);
    assert_eq!(resp.json(), json!({}), "UNKNOWN is the default code, left out");
}

/// Whether the server closed `stream` (EOF or reset), reading whatever it
/// sent first; fails on a read timeout.
fn closed_by_server(mut stream: TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) => panic!("waiting for the server to close the connection: {e}"),
        }
    }
}

/// An HTTP/1.1 connection to the JSON endpoint, kept alive after one answer.
fn kept_alive_json_connection(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let body = client_json("keepalive");
    let req = format!(
        "POST {JSON_PATH} HTTP/1.1\r\nHost: rls\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).expect("write");
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).expect("read the answer");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    stream
}

#[test]
fn down_closes_everything_and_comes_back_on_the_same_ports() {
    let rls = service_with_client_limit(5);
    let (grpc_addr, http_addr) = (rls.grpc_addr(), rls.http_addr());
    let mut grpc = Grpc::connect(&rls);
    grpc.ok(client_request("a"));
    let json_conn = kept_alive_json_connection(http_addr);
    let raw_grpc_conn = TcpStream::connect(grpc_addr).expect("connect");

    rls.set_fault(Fault::Down);
    assert!(closed_by_server(json_conn), "kept-alive JSON connection closed");
    assert!(closed_by_server(raw_grpc_conn), "open gRPC connection closed");
    for addr in [grpc_addr, http_addr] {
        let err = TcpStream::connect(addr).expect_err("nothing listens");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{addr}");
    }
    // The code depends on when the client notices its connection is gone.
    grpc.call(client_request("a")).expect_err("the call fails");
    assert!(http::send(http_addr, &Request::post(JSON_PATH, client_json("a"))).is_err());
    assert_eq!(rls.calls(), 2, "no call got through while down");

    rls.set_fault(Fault::None);
    assert_eq!((rls.grpc_addr(), rls.http_addr()), (grpc_addr, http_addr));
    // The client's channel reconnects by itself, to the same address.
    let resp = grpc.ok(client_request("a"));
    assert_eq!(resp.statuses[0].limit_remaining, 3, "counts survive");
    assert_eq!(post_json(&rls, &client_json("a")).status, 200);

    // Down, then straight to another fault: up again, with that fault.
    rls.set_fault(Fault::Down);
    rls.set_fault(Fault::Unknown);
    assert_eq!(post_json(&rls, &client_json("a")).status, 500);
}
