//! `make run`: the demo gateway. Starts the echo upstream on 127.0.0.1:8081, the test OAuth server
//! on 127.0.0.1:8082, the test rate-limit service on 127.0.0.1:8083 (gRPC) and 8084 (HTTP/JSON)
//! and a real Envoy with `envoy/gateway.yaml` (listener 127.0.0.1:8080, admin
//! 127.0.0.1:9901), prints curl commands that show each filter at work, and serves until
//! interrupted.

use harness::oauth::{Client, TokenFormat};
use harness::ratelimit::{Limit, Unit};
use harness::{paths, EchoUpstream, Envoy, OAuthServer, RateLimitService};

const UPSTREAM: &str = "127.0.0.1:8081";
const OAUTH: &str = "127.0.0.1:8082";
const RATELIMIT_GRPC: &str = "127.0.0.1:8083";
const RATELIMIT_HTTP: &str = "127.0.0.1:8084";

fn main() {
    let root = paths::workspace_root();
    let config = root.join("envoy").join("gateway.yaml");
    let upstream = UPSTREAM.parse().unwrap_or_else(|e| panic!("{UPSTREAM}: {e}"));
    let _echo = EchoUpstream::bind(upstream);
    let oauth_addr = OAUTH.parse().unwrap_or_else(|e| panic!("{OAUTH}: {e}"));
    let oauth = OAuthServer::bind(oauth_addr);
    // Clients get opaque tokens; phantom-token exchanges them, as client `gateway`.
    oauth.set_token_format(TokenFormat::Opaque);
    oauth.add_client(Client::new("gateway", "gateway-secret", ""));
    let parse = |addr: &str| addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
    let ratelimit = RateLimitService::bind(parse(RATELIMIT_GRPC), parse(RATELIMIT_HTTP));
    // The fleet-wide limit of envoy/gateway.yaml: per client and path, 100 an hour.
    ratelimit.set_limit(
        "gateway",
        Limit::new(&[("client_id", None), ("path", None)], 100, Unit::Hour).named("fleet_per_path"),
    );
    let envoy = match Envoy::start_file(&config, &root, 2) {
        Ok(envoy) => envoy,
        Err(log) => {
            eprintln!("Envoy did not start with {}:\n{log}", config.display());
            std::process::exit(1);
        }
    };
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
or its address without a token); the rate-limit service (gRPC, 127.0.0.1:8083) also counts 100 an
hour per client and path. The sixth call within the minute gets 429 with Retry-After; every
answer carries RateLimit-Policy / RateLimit:
  for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}} ' {gw}/orders -H "Authorization: Bearer $TOKEN"; done; echo
  curl -si {gw}/orders -H "Authorization: Bearer $TOKEN" | grep -i -e ^HTTP -e ^ratelimit -e ^retry-after

The filters' counters:
  curl -s http://{admin}/stats/prometheus | grep apisec_

Press Ctrl-C to stop.
"#,
        admin = envoy.admin()
    );
    wait_for_stop_signal();
    // Dropping the guards stops Envoy, then the servers behind it.
    drop(envoy);
    drop(ratelimit);
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
