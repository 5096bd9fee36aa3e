//! The demo gateway (`envoy/gateway.yaml` and the services behind it; see `harness::demo`).
//!
//! - `demo`: `make run`. Starts the echo upstream (127.0.0.1:8081), the test OAuth server (8082),
//!   the test rate-limit service (gRPC 8083, HTTP/JSON 8084) and a real Envoy (listener 8080, admin
//!   9901), prints curl commands that show each filter at work, and serves until interrupted.
//! - `demo serve <echo|oauth|ratelimit>`: one service alone, as the docker-compose harness runs it.
//! - `demo probe <host:port>...`: exits 0 when something accepts connections at each address
//!   (the compose health checks; the service image has no curl).

use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use harness::demo::{self, Demo, Service, OAUTH, RATELIMIT_GRPC, UPSTREAM};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] => run_demo(),
        ["serve", name] => match Service::from_name(name) {
            Some(service) => serve(service),
            None => usage(),
        },
        ["probe", addresses @ ..] if !addresses.is_empty() => probe(addresses),
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: demo | demo serve <echo|oauth|ratelimit> | demo probe <host:port>...");
    ExitCode::from(2)
}

fn serve(service: Service) -> ExitCode {
    let running = service.start();
    println!("{} serving on {:?}", service.name(), service.addresses());
    wait_for_stop_signal();
    drop(running);
    ExitCode::SUCCESS
}

fn probe(addresses: &[&str]) -> ExitCode {
    for address in addresses {
        let Ok(addr) = address.parse() else {
            return usage();
        };
        if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            eprintln!("{address}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn run_demo() -> ExitCode {
    let demo = match Demo::start() {
        Ok(demo) => demo,
        Err(log) => {
            eprintln!("Envoy did not start with {}:\n{log}", demo::config_path().display());
            return ExitCode::FAILURE;
        }
    };
    let envoy = &demo.envoy;
    let gw = format!("http://{}", envoy.listener());
    println!(
        r#"
Demo gateway ready: {gw} (Envoy admin http://{admin}, echo upstream http://{UPSTREAM},
OAuth server http://{OAUTH})

phantom-token and jwt-auth: get an opaque token from the OAuth server (client credentials), then
call the API with it. The gateway introspects it once (then caches the answer) and the upstream
sees a verified JWT instead (Authorization: Bearer eyJ...) with its claims as x-user-id /
x-user-scope; without a token 401, with a token nobody issued 401 invalid_token:
  TOKEN=$(curl -s -u demo:demo-secret -d grant_type=client_credentials -d scope=orders:read \
    http://{OAUTH}/token | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  echo $TOKEN
  curl -si {gw}/orders -H "Authorization: Bearer $TOKEN"
  curl -si {gw}/orders
  curl -si {gw}/orders -H 'Authorization: Bearer made-up-token'
  curl -si {gw}/public/status

scope-gate: that token has orders:read, so reading works and writing is refused (403 with
error="insufficient_scope"); a token with orders:write may POST JSON, and nothing else (415):
  curl -si -X POST {gw}/orders -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{{}}'
  WRITER=$(curl -s -u demo:demo-secret -d grant_type=client_credentials -d scope=orders:write \
    http://{OAUTH}/token | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -si -X POST {gw}/orders -H "Authorization: Bearer $WRITER" -H 'Content-Type: application/json' -d '{{}}'
  curl -si -X POST {gw}/orders -H "Authorization: Bearer $WRITER" -H 'Content-Type: text/plain' -d 'x'

header-scrub: a spoofed identity header never reaches the upstream (the echo shows what it got),
and the response carries security headers but no server details:
  curl -si {gw}/public/status -H 'x-user-id: admin' -H 'X-User-Id: root'

CORS preflight from an allowed origin (answered by the gateway, 204) and from another one (403):
  curl -si -X OPTIONS {gw}/orders -H 'Origin: http://localhost:3000' -H 'Access-Control-Request-Method: DELETE'
  curl -si -X OPTIONS {gw}/orders -H 'Origin: https://evil.example' -H 'Access-Control-Request-Method: DELETE'

rate-limit: each client gets 5 requests a minute on this Envoy (keyed by its verified client_id,
or its address without a token); the rate-limit service (gRPC, {RATELIMIT_GRPC}) also counts 100 an
hour per client and path. Both tokens above are client demo's, so the calls made with them count
too: once 5 are spent within the minute, the next call gets 429 with Retry-After; every answer
carries RateLimit-Policy / RateLimit:
  for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}} ' {gw}/orders -H "Authorization: Bearer $TOKEN"; done; echo
  curl -si {gw}/orders -H "Authorization: Bearer $TOKEN" | grep -i -e ^HTTP -e ^ratelimit -e ^retry-after

The filters' counters:
  curl -s http://{admin}/stats/prometheus | grep apisec_

Press Ctrl-C to stop.
"#,
        admin = envoy.admin()
    );
    wait_for_stop_signal();
    // Dropping the demo stops Envoy, then the services behind it.
    drop(demo);
    ExitCode::SUCCESS
}

/// Blocks until Ctrl-C (SIGINT) or SIGTERM.
fn wait_for_stop_signal() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("signal runtime: {e}"));
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .unwrap_or_else(|e| panic!("SIGTERM handler: {e}"));
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
}
