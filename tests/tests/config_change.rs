//! Config changes while Envoy runs, as a control plane pushes them: the `gateway` listener comes
//! from a file Envoy watches (LDS), and each push replaces its filter chain. Envoy keeps a filter
//! whose config the push leaves as it was (its plugin context lives on), starts a new plugin
//! context for a changed config next to the old one, and ends the old one once its chain has
//! drained. What a filter keeps in shared data, which outlives every plugin context, must follow
//! the config: found again by the same config, never served to one it was not made for. A config
//! a filter refuses is refused with the push, and the gateway goes on with the one it had.

use harness::config::static_cluster;
use harness::envoy::VMS_CREATED;
use harness::oauth::{Client, Fault, Gate, INTROSPECT_PATH};
use harness::paths::wasm_path;
use harness::{Gateway, GatewayConfig, OAuthServer, Request};
use serde_json::{json, Value};

/// How long Envoy drains a replaced filter chain before it removes it (and the old filters' plugin
/// contexts with it).
const DRAIN_SECS: u32 = 1;

fn counter(gw: &Gateway, filter: &str, name: &str) -> u64 {
    gw.envoy.counter(&format!("wasmcustom.apisec.{filter}.{name}"))
}

/// Waits until Envoy has removed every replaced filter chain: the old filters are gone.
fn wait_for_drain(gw: &Gateway) {
    gw.wait_until("the replaced filter chains to drain", || {
        gw.envoy.counter("listener_manager.total_filter_chains_draining") == 0
    });
}

/// Fails on any wasm VM failure. (Whether Envoy builds a new VM for the pushed plugin is up to
/// Envoy: shared data belongs to the `vm_id`, so it outlives a VM.)
fn assert_healthy_vms(gw: &Gateway, plugins: &[&str]) {
    let plugins: Vec<String> = plugins.iter().map(|p| (*p).to_owned()).collect();
    let failures = gw.envoy.vm_failures(&plugins, gw.envoy.counter(VMS_CREATED));
    assert!(failures.is_empty(), "{failures:#?}");
}

fn statuses(gw: &Gateway, n: usize, request: impl Fn() -> Request) -> Vec<u16> {
    (0..n).map(|_| gw.send(request()).status).collect()
}

fn rate_limit(requests: u32) -> Value {
    json!({"limits": [{
        "name": "per_client",
        "descriptor": [{"key": "client", "source": {"type": "header", "header": "x-client"}}],
        "enforce": {"type": "local", "requests": requests, "per": "hour"},
    }]})
}

fn from(client: &str) -> Request {
    Request::get("/orders").header("X-Client", client)
}

#[test]
fn rate_limit_buckets_follow_the_config_across_pushes() {
    let gw = Gateway::start_lds(DRAIN_SECS, |c| c.concurrency(2).filter("rate_limit", rate_limit(3)));
    assert_eq!(statuses(&gw, 4, || from("alice")), [200, 200, 200, 429]);

    // A push that changes the listener but not rate-limit's config: the filter goes on as it was.
    gw.push(|c| c.filter("rate_limit", rate_limit(3))).expect("push");
    wait_for_drain(&gw);
    assert_eq!(gw.send(from("alice")).status, 429, "alice's spent bucket was kept");
    assert_eq!(statuses(&gw, 4, || from("bob")), [200, 200, 200, 429]);

    // A new limit: every client starts with a full bucket of its size, none inherits the old
    // config's count, while the old config drains and after it is gone.
    gw.push(|c| c.filter("rate_limit", rate_limit(5))).expect("push");
    assert_eq!(statuses(&gw, 6, || from("alice")), [200, 200, 200, 200, 200, 429]);
    wait_for_drain(&gw);
    assert_eq!(statuses(&gw, 6, || from("bob")), [200, 200, 200, 200, 200, 429]);
    assert_eq!(gw.send(from("alice")).status, 429);

    // Back to the first config, in a new plugin context: its buckets are within their lease (a
    // minute since a context of that config last renewed them), so alice's is found spent again.
    gw.push(|c| c.filter("rate_limit", rate_limit(3))).expect("push");
    assert_eq!(gw.send(from("alice")).status, 429);
    assert_eq!(statuses(&gw, 4, || from("carol")), [200, 200, 200, 429]);
    assert_healthy_vms(&gw, &["rate_limit"]);
}

#[test]
fn a_refused_config_is_refused_with_the_push_and_the_gateway_keeps_the_one_it_had() {
    let gw = Gateway::start_lds(DRAIN_SECS, |c| c.filter("rate_limit", rate_limit(2)));
    assert_eq!(statuses(&gw, 3, || from("alice")), [200, 200, 429]);

    let log = gw
        .push(|c| c.filter("rate_limit", rate_limit(0)))
        .expect_err("Envoy must refuse a listener whose rate-limit config is refused");
    assert!(
        log.contains("rate_limit: invalid configuration: limits[0].enforce.requests: must be at least 1"),
        "{log}"
    );
    assert_eq!(gw.envoy.counter("listener_manager.lds.update_rejected"), 1);
    assert_eq!(gw.send(from("alice")).status, 429, "the old config still limits");
    assert_eq!(statuses(&gw, 3, || from("bob")), [200, 200, 429]);

    gw.push(|c| c.filter("rate_limit", rate_limit(3)))
        .expect("a good config after a bad one");
    assert_eq!(statuses(&gw, 4, || from("alice")), [200, 200, 200, 429]);
}

const CLIENT_ID: &str = "gateway";
const CLIENT_SECRET: &str = "gateway secret";

fn phantom_token(oauth: &OAuthServer, audience: &str) -> Value {
    json!({
        "realm": "api",
        "introspection": {
            "cluster": "oauth", "path": INTROSPECT_PATH, "authority": "idp.test",
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "timeout_ms": 1000,
            "response": {"type": "jwt"},
        },
        "jwt": {
            "issuer": oauth.issuer(), "audiences": [audience],
            "jwks": {"type": "remote", "cluster": "oauth", "path": "/jwks", "timeout_ms": 1000},
        },
    })
}

fn with_phantom_token(oauth: &OAuthServer, audience: &str) -> impl FnOnce(GatewayConfig) -> GatewayConfig {
    let config = phantom_token(oauth, audience);
    let oauth = oauth.addr();
    move |c| {
        c.filter("phantom_token", config)
            .extra_cluster(static_cluster("oauth", oauth))
    }
}

fn bearer(token: &str) -> Request {
    Request::get("/orders").header("Authorization", &format!("Bearer {token}"))
}

#[test]
fn phantom_token_serves_its_cache_to_the_config_that_filled_it_only() {
    let oauth = OAuthServer::start();
    oauth.add_client(Client::new(CLIENT_ID, CLIENT_SECRET, ""));
    let gw = Gateway::start_lds(DRAIN_SECS, with_phantom_token(&oauth, "api"));
    gw.wait_until("the IdP's keys", || counter(&gw, "phantom_token", "jwks_fetch_ok") == 1);
    let opaque = oauth.opaque_token(json!({"aud": "api"}));
    assert_eq!(gw.send(bearer(&opaque)).status, 200);
    assert_eq!(gw.send(bearer(&opaque)).status, 200);
    assert_eq!(oauth.calls(INTROSPECT_PATH), 1);

    // Another audience: the cached answer was verified for "api", so it must not be served here.
    // The token is introspected again, and refused as one issued for another API (401).
    gw.push(with_phantom_token(&oauth, "billing")).expect("push");
    let refused = gw.send(bearer(&opaque));
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(refused.json()["error"], "invalid_token");
    assert_eq!(oauth.calls(INTROSPECT_PATH), 2);
    let billing = oauth.opaque_token(json!({"aud": "billing"}));
    assert_eq!(gw.send(bearer(&billing)).status, 200);
    assert_eq!(oauth.calls(INTROSPECT_PATH), 3);

    // Back to the first config once the second is gone: a new plugin context of the config that
    // verified the cached answer serves it, and does not serve the one cached for "billing".
    wait_for_drain(&gw);
    gw.push(with_phantom_token(&oauth, "api")).expect("push");
    assert_eq!(gw.send(bearer(&opaque)).status, 200);
    assert_eq!(oauth.calls(INTROSPECT_PATH), 3, "served from the cache");
    assert_eq!(gw.send(bearer(&billing)).status, 401);
    assert_eq!(oauth.calls(INTROSPECT_PATH), 4);
    wait_for_drain(&gw);
    assert_eq!(gw.send(bearer(&opaque)).status, 200);
    assert_healthy_vms(&gw, &["phantom_token"]);
}

/// A push while an introspection call is in flight: the request that made it is answered under the
/// config it started with, and a request of the new filter chain that waited on that call is not
/// stranded when the old chain is removed with the call still unanswered.
#[test]
fn an_introspection_in_flight_across_a_push_strands_no_request() {
    let oauth = OAuthServer::start();
    oauth.add_client(Client::new(CLIENT_ID, CLIENT_SECRET, ""));
    let patient = |c: GatewayConfig| {
        let mut config = phantom_token(&oauth, "api");
        config["introspection"]["timeout_ms"] = json!(10_000);
        c.filter("phantom_token", config)
            .extra_cluster(static_cluster("oauth", oauth.addr()))
    };
    // Drained for longer than the others: the first answer must come back within the drain.
    let gw = Gateway::start_lds(3, patient);
    gw.wait_until("the IdP's keys", || counter(&gw, "phantom_token", "jwks_fetch_ok") == 1);
    let answers = Gate::new();
    oauth.set_fault_at(INTROSPECT_PATH, Fault::Hold(answers.clone()));
    let opaque = oauth.opaque_token(json!({"aud": "api"}));

    // Answered within the drain: the first request gets its answer from the old chain.
    let first = std::thread::scope(|s| {
        let first = s.spawn(|| gw.send(bearer(&opaque)));
        gw.wait_until("the first introspection call", || oauth.calls(INTROSPECT_PATH) == 1);
        gw.push(patient).expect("push");
        answers.open();
        first.join().expect("first request")
    });
    assert_eq!(first.status, 200, "{}", first.text());
    wait_for_drain(&gw);

    // Unanswered when the old chain goes: its request's connection is closed with it, and a
    // request of the new chain that waited on its call asks for itself.
    let answers = Gate::new();
    oauth.set_fault_at(INTROSPECT_PATH, Fault::Hold(answers.clone()));
    let other = oauth.opaque_token(json!({"aud": "api"}));
    let mut stranded = std::net::TcpStream::connect(gw.envoy.listener()).expect("connect");
    let request = format!("GET /orders HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {other}\r\n\r\n");
    std::io::Write::write_all(&mut stranded, request.as_bytes()).expect("send");
    gw.wait_until("the stranded request's call", || oauth.calls(INTROSPECT_PATH) == 2);
    gw.push(patient).expect("push");
    let waits_before = counter(&gw, "phantom_token", "coalesced_waits");
    let second = std::thread::scope(|s| {
        let second = s.spawn(|| gw.send(bearer(&other)));
        gw.wait_until("the second request to wait on the first's call", || {
            counter(&gw, "phantom_token", "coalesced_waits") == waits_before + 1
        });
        wait_for_drain(&gw);
        let mut rest = Vec::new();
        let read = std::io::Read::read_to_end(&mut stranded, &mut rest);
        assert!(
            read.is_err() || rest.is_empty(),
            "the old chain answered: {}",
            String::from_utf8_lossy(&rest)
        );
        gw.wait_until("the second request's own call", || oauth.calls(INTROSPECT_PATH) == 3);
        answers.open();
        second.join().expect("second request")
    });
    assert_eq!(second.status, 200, "{}", second.text());
    assert_healthy_vms(&gw, &["phantom_token"]);
}

fn jwt_auth(oauth: &OAuthServer, kid: &str) -> Value {
    json!({
        "providers": {"idp": {"issuer": oauth.issuer(), "audiences": ["api"],
                              "jwks": {"type": "inline", "jwks": oauth.jwks_for(&[kid])}}},
        "rules": [{"match": {"prefix": "/"}, "requires": {"type": "provider", "name": "idp"}}],
    })
}

#[test]
fn jwt_auth_forgets_the_tokens_it_verified_when_its_keys_change() {
    let oauth = OAuthServer::start();
    let old_kid = oauth.default_kid();
    let gw = Gateway::start_lds(DRAIN_SECS, |c| c.filter("jwt_auth", jwt_auth(&oauth, &old_kid)));
    let token = oauth.token(json!({}));
    let request = || Request::get("/orders").header("Authorization", &format!("Bearer {token}"));
    assert_eq!(statuses(&gw, 2, request), [200, 200]);
    assert_eq!(counter(&gw, "jwt_auth", "cache_hit"), 1);

    // The old key is withdrawn: a token it signed is refused at once, not served from the cache.
    gw.push(|c| c.filter("jwt_auth", jwt_auth(&oauth, "rsa-2")))
        .expect("push");
    let refused = gw.send(request());
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(
        refused.header("www-authenticate").map(|h| h.contains("invalid_token")),
        Some(true)
    );
    oauth.set_default_kid("rsa-2");
    let new_token = oauth.token(json!({}));
    let accepted = gw.send(Request::get("/orders").header("Authorization", &format!("Bearer {new_token}")));
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    wait_for_drain(&gw);
    assert_eq!(gw.send(request()).status, 401);
    assert_healthy_vms(&gw, &["jwt_auth"]);
}

/// A pushed config that fetches its keys from somewhere new has none at first: its first
/// requests wait for them instead of failing while the keys are on their way.
#[test]
fn a_config_that_moves_the_keys_elsewhere_serves_its_first_requests() {
    let oauth = OAuthServer::start();
    let addr = oauth.addr();
    let remote = |cluster: &str| {
        json!({"providers": {"idp": {"issuer": oauth.issuer(), "audiences": ["api"],
            "jwks": {"type": "remote", "cluster": cluster, "path": "/jwks", "timeout_ms": 5000}}}})
    };
    let gw = Gateway::start_lds(DRAIN_SECS, |c| {
        c.filter("jwt_auth", remote("oauth"))
            .extra_cluster(static_cluster("oauth", addr))
            .extra_cluster(static_cluster("oauth_v2", addr))
    });
    gw.wait_until("the keys", || counter(&gw, "jwt_auth", "jwks_fetch_ok") == 1);
    let token = oauth.token(json!({}));
    assert_eq!(gw.send(bearer(&token)).status, 200);

    let new_keys = Gate::new();
    oauth.set_fault_at("/jwks", Fault::Hold(new_keys.clone()));
    gw.push(|c| c.filter("jwt_auth", remote("oauth_v2"))).expect("push");
    assert_eq!(counter(&gw, "jwt_auth", "jwks_fetch_ok"), 1, "the new keys are held");
    let response = gw.send_then_open(bearer(&token), &new_keys);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(counter(&gw, "jwt_auth", "jwks_fetch_ok"), 2);
}

/// The bundle's `chain` plugin running `members` (`{"filter": ..., "config": ...}`), as a filter
/// entry for the HTTP connection manager.
fn chain(members: Value) -> Value {
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "chain",
                "root_id": "chain",
                "failure_policy": "FAIL_RELOAD",
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": json!({"filters": members}).to_string(),
                },
                "vm_config": {
                    "vm_id": "apisec",
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": wasm_path("apisec_bundle").to_string_lossy()}},
                },
            },
        },
    })
}

fn scrub_and_limit(removed: &str, requests: u32) -> Value {
    chain(json!([
        {"filter": "header_scrub", "config": {"request": {"remove": [removed]}}},
        {"filter": "rate_limit", "config": rate_limit(requests)},
    ]))
}

#[test]
fn a_chain_member_keeps_its_state_when_another_members_config_changes() {
    let gw = Gateway::start_lds(DRAIN_SECS, |c| c.native_filter(scrub_and_limit("x-debug", 3)));
    assert_eq!(statuses(&gw, 4, || from("alice")), [200, 200, 200, 429]);

    // header-scrub's config changes, so Envoy starts a new chain plugin; its rate-limit member has
    // the config it had, and finds alice's bucket spent, while the old plugin drains and after.
    gw.push(|c| c.native_filter(scrub_and_limit("x-trace", 3)))
        .expect("push");
    assert_eq!(gw.send(from("alice")).status, 429);
    let scrubbed = gw.send(from("bob").header("X-Debug", "1").header("X-Trace", "1"));
    assert_eq!(scrubbed.status, 200);
    let seen = gw.echo.last_request();
    assert_eq!(
        seen.header("x-debug").as_deref(),
        Some("1"),
        "the new header-scrub config runs"
    );
    assert_eq!(seen.header("x-trace"), None);
    wait_for_drain(&gw);
    assert_eq!(gw.send(from("alice")).status, 429);

    gw.push(|c| c.native_filter(scrub_and_limit("x-trace", 5)))
        .expect("push");
    assert_eq!(statuses(&gw, 6, || from("alice")), [200, 200, 200, 200, 200, 429]);
    assert_healthy_vms(&gw, &["chain"]);
}
