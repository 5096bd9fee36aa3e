//! The per-filter example configs `envoy/examples/<filter>.json` are the one source of truth:
//! each standalone `envoy/<filter>.yaml` embeds exactly its example (Envoy cannot read a plugin
//! configuration from a file, so the YAML keeps a commented copy, held equal here), and each
//! example does, through a real Envoy, what it is there to show.
//!
//! The e2e tests run the examples as they are, except for the fields that name the demo's fixed
//! addresses (the issuer and `:authority` of the OAuth server on 127.0.0.1:8082), which
//! [`localize`] points at this test's servers; the clusters the examples call get their names
//! from the examples.

use std::time::Instant;

use harness::config::{grpc_cluster, static_cluster};
use harness::examples::{self, clusters, example, json_differences, localize, relative, Environment, FILTERS};
use harness::oauth::{verify_jws, Client, ClientAuth};
use harness::ratelimit::{Descriptor, Fault, Limit, Unit};
use harness::{Gateway, GatewayConfig, OAuthServer, RateLimitService, Request, Response};
use serde_json::{json, Value};

fn yaml(text: &str) -> Result<Value, serde_yaml_ng::Error> {
    serde_yaml_ng::from_str(text)
}

/// Every object of a shipped config whose `@type` ends with `type_suffix`, found wherever it sits.
fn typed_configs(node: &Value, type_suffix: &str, found: &mut Vec<Value>) {
    match node {
        Value::Object(members) => {
            let is_it = members
                .get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(type_suffix));
            if is_it {
                found.push(node.clone());
            }
            members
                .values()
                .for_each(|child| typed_configs(child, type_suffix, found));
        }
        Value::Array(items) => items.iter().for_each(|child| typed_configs(child, type_suffix, found)),
        _ => {}
    }
}

/// README, "Loading a filter in Envoy": the settings a gateway should have are in every shipped
/// config.
#[test]
fn every_shipped_config_has_the_gateway_settings_the_readme_lists() {
    let dir = harness::paths::workspace_root().join("envoy");
    let mut missing = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("envoy/") {
        let path = entry.expect("an entry of envoy/").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if !name.ends_with(".yaml") || name == "docker-compose.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let config = yaml(&text).unwrap_or_else(|e| panic!("{name}: not YAML: {e}"));
        let mut managers = Vec::new();
        typed_configs(
            &config,
            ".network.http_connection_manager.v3.HttpConnectionManager",
            &mut managers,
        );
        assert!(!managers.is_empty(), "{name}: no HTTP connection manager");
        // Fail closed (a crashed VM is reloaded, never skipped), and reachable from this host only.
        let mut plugins = Vec::new();
        typed_configs(&config, ".filters.http.wasm.v3.Wasm", &mut plugins);
        for plugin in &plugins {
            if plugin.pointer("/config/failure_policy") != Some(&json!("FAIL_RELOAD"))
                || plugin.pointer("/config/fail_open") == Some(&json!(true))
            {
                missing.push(format!("{name}: a wasm filter without failure_policy FAIL_RELOAD"));
            }
        }
        let mut addresses = vec![config.pointer("/admin/address/socket_address/address").cloned()];
        let listeners = config.pointer("/static_resources/listeners").and_then(Value::as_array);
        addresses.extend(
            listeners
                .into_iter()
                .flatten()
                .map(|l| l.pointer("/address/socket_address/address").cloned()),
        );
        if addresses.iter().any(|a| a.as_ref() != Some(&json!("127.0.0.1"))) {
            missing.push(format!("{name}: admin or a listener not on 127.0.0.1: {addresses:?}"));
        }
        let mut monitors = Vec::new();
        typed_configs(
            &config,
            ".resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
            &mut monitors,
        );
        if monitors.len() != 1 {
            missing.push(format!("{name}: no limit on downstream connections"));
        }
        for hcm in managers {
            checked += 1;
            for (pointer, expected) in [
                ("/use_remote_address", json!(true)),
                ("/normalize_path", json!(true)),
                ("/merge_slashes", json!(true)),
                ("/path_with_escaped_slashes_action", json!("UNESCAPE_AND_REDIRECT")),
                (
                    "/common_http_protocol_options/headers_with_underscores_action",
                    json!("REJECT_REQUEST"),
                ),
                ("/common_http_protocol_options/idle_timeout", json!("300s")),
                ("/request_headers_timeout", json!("10s")),
                ("/server_header_transformation", json!("PASS_THROUGH")),
            ] {
                if hcm.pointer(pointer) != Some(&expected) {
                    missing.push(format!("{name}: {pointer} is not {expected}"));
                }
            }
            if hcm.pointer("/request_timeout").is_none() {
                missing.push(format!("{name}: no request_timeout"));
            }
        }
    }
    assert!(checked >= 8, "only {checked} connection managers found");
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// One source of truth

#[test]
fn every_standalone_envoy_config_embeds_the_examples() {
    let mut failures = Vec::new();
    for filter in FILTERS {
        let yaml_path = filter.standalone_yaml();
        let embedded = examples::embedded_configs(&yaml_path, yaml);
        let own = embedded.iter().filter(|e| e.root_id == filter.root_id).count();
        if own != 1 {
            failures.push(format!(
                "{} embeds {own} {} configs, expected exactly one",
                relative(&yaml_path),
                filter.root_id
            ));
        }
        // Its own filter, and any filter it runs in front (scope-gate.yaml runs jwt-auth): each
        // one is that filter's example.
        for config in embedded {
            let of = examples::filter(&config.root_id);
            let expected = of.example();
            if config.config != expected {
                failures.push(format!(
                    "the {root} config embedded in {file} differs from {example}:\n    {diff}\n  \
                     {example} is the source of truth: update the `value:` of the {root} filter in \
                     {file} to match it (keeping the YAML comments), or, if the change to {file} is \
                     intended, update {example}",
                    root = config.root_id,
                    file = config.file,
                    example = relative(&of.example_path()),
                    diff = json_differences(&expected, &config.config).join("\n    "),
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_example_file_belongs_to_a_known_filter() {
    let known: Vec<String> = FILTERS.iter().map(|f| format!("{}.json", f.name)).collect();
    let strays: Vec<String> = examples::example_files()
        .iter()
        .map(|path| relative(path))
        .filter(|file| !known.iter().any(|k| file.ends_with(&format!("/{k}"))))
        .collect();
    assert!(
        strays.is_empty(),
        "files in envoy/examples/ that are no filter's example (they must be one of {known:?}): {strays:?}"
    );
    // And every filter has one, a JSON object (`example` panics otherwise).
    for filter in FILTERS {
        example(filter.name);
    }
}

// ---------------------------------------------------------------------------------------------
// The examples through a real Envoy

/// The gateway's HTTP connection manager setting `field` as `envoy/<filter>.yaml` has it.
fn standalone_hcm_setting(filter: &str, field: &str) -> Value {
    let path = examples::filter(filter).standalone_yaml();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let config = yaml(&text).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
    config
        .pointer("/static_resources/listeners/0/filter_chains/0/filters/0/typed_config")
        .and_then(|hcm| hcm.get(field))
        .cloned()
        .unwrap_or_else(|| panic!("{}: the HTTP connection manager has no {field}", relative(&path)))
}

/// `gw` with one STATIC cluster per cluster name `config` calls, each pointing at `addr`.
fn with_clusters_at(mut gw: GatewayConfig, config: &Value, addr: std::net::SocketAddr) -> GatewayConfig {
    for name in clusters(config) {
        gw = gw.extra_cluster(static_cluster(&name, addr));
    }
    gw
}

/// A string member of an example, which the example must have.
fn string_at<'a>(config: &'a Value, pointer: &str) -> &'a str {
    config
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("the example has no string at {pointer}: {config}"))
}

/// The strings of an array member of an example, which the example must have, non-empty.
fn strings_at(config: &Value, pointer: &str) -> Vec<String> {
    let items: Vec<String> = config
        .pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("the example has no array at {pointer}: {config}"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{pointer}: {v} is not a string"))
                .to_owned()
        })
        .collect();
    assert!(!items.is_empty(), "the example's {pointer} is empty");
    items
}

fn bearer(request: Request, token: &str) -> Request {
    request.header("Authorization", &format!("Bearer {token}"))
}

fn counter(gw: &Gateway, filter: &str, name: &str) -> u64 {
    gw.envoy.counter(&format!("wasmcustom.apisec.{filter}.{name}"))
}

/// Readiness (a bounded poll, not a sleep): `filter` fetched its keys.
fn wait_for_keys(gw: &Gateway, filter: &str) {
    gw.wait_until(&format!("{filter} to fetch its keys"), || {
        counter(gw, filter, "jwks_fetch_ok") >= 1
    });
}

fn assert_denied(response: &Response, status: u16, error: &str, challenge: Option<&str>) {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(response.json()["error"], error, "{}", response.text());
    assert_eq!(response.header("www-authenticate").as_deref(), challenge);
}

/// The headers the jwt-auth example sets for upstreams: its `claims_to_headers` and
/// `payload_header`, across providers.
fn identity_headers(jwt_auth: &Value) -> Vec<String> {
    let providers = jwt_auth["providers"].as_object().expect("providers");
    let mut headers: Vec<String> = providers
        .values()
        .flat_map(|p| {
            let claims = p["claims_to_headers"].as_array().cloned().unwrap_or_default();
            claims
                .into_iter()
                .map(|c| c["header"].clone())
                .chain([p["payload_header"].clone()])
        })
        .filter_map(|h| h.as_str().map(str::to_owned))
        .collect();
    headers.sort();
    headers.dedup();
    assert!(!headers.is_empty(), "the jwt-auth example sets no headers");
    headers
}

#[test]
fn header_scrub_example_strips_what_clients_and_upstreams_must_not_control() {
    let config = example("header-scrub");
    // What the example is for: the identity headers the chain sets for upstreams (those of the
    // jwt-auth example) are never the client's, nor are internal ones.
    let identity = identity_headers(&example("jwt-auth"));
    let internal = "x-internal-debug";
    let origin = strings_at(&config, "/cors/allowed_origins")[0].clone();
    assert_eq!(config.pointer("/response/security_headers/preset"), Some(&json!("api")));
    let transformation = standalone_hcm_setting("header-scrub", "server_header_transformation");
    let gw = Gateway::start_with(|c| {
        c.filter("header_scrub", config.clone())
            .hcm("server_header_transformation", transformation)
    });
    gw.echo.set_response_headers(vec![
        ("Server".into(), "Apache/2.4.1".into()),
        ("X-Powered-By".into(), "PHP/8.1".into()),
    ]);

    // Spoofed identity headers (any case) and internal headers never reach the upstream.
    let mut request = Request::get("/orders")
        .header("Origin", &origin)
        .header("x-kept", "yes");
    for name in &identity {
        request = request.header(name, "admin").header(&name.to_uppercase(), "root");
    }
    request = request.header(internal, "1");
    let response = gw.send(request);
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = gw.echo.last_request();
    for name in identity.iter().map(String::as_str).chain([internal]) {
        assert!(
            !seen.has_header(name),
            "{name} reached the upstream: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header_all("x-kept"), vec!["yes"]);

    // The response: no stack details, the security headers, CORS for the allowed origin.
    for leaky in ["server", "x-powered-by", "x-envoy-upstream-service-time"] {
        assert!(
            !response.has_header(leaky),
            "{leaky} leaked: {:?}",
            response.header(leaky)
        );
    }
    for (name, value) in harness::API_SECURITY_HEADERS {
        assert_eq!(response.header_all(name), vec![value.to_owned()], "{name}");
    }
    assert_eq!(response.header_all("access-control-allow-origin"), vec![origin.clone()]);
    assert_eq!(
        response.header("access-control-expose-headers"),
        Some(strings_at(&config, "/cors/exposed_headers").join(", "))
    );

    // Preflights are answered by the gateway: allowed for the example's origin, refused otherwise.
    let preflight = |origin: &str| {
        Request::options("/orders")
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "DELETE")
            .header("Access-Control-Request-Headers", "authorization")
    };
    let upstream_before = gw.echo.request_count();
    let allowed = gw.send(preflight(&origin));
    assert_eq!(allowed.status, 204, "{}", allowed.text());
    assert_eq!(allowed.header("access-control-allow-origin"), Some(origin));
    assert_eq!(
        allowed.header("access-control-max-age"),
        Some(config["cors"]["max_age_secs"].to_string())
    );
    let refused = gw.send(preflight("https://evil.example"));
    assert_eq!(refused.status, 403);
    assert!(!refused.has_header("access-control-allow-origin"));
    assert_eq!(
        gw.echo.request_count(),
        upstream_before,
        "preflights never reach the upstream"
    );
}

#[test]
fn jwt_auth_example_requires_a_valid_token_and_passes_its_claims_on() {
    let oauth = OAuthServer::start();
    let config = localize(example("jwt-auth"), &Environment::oauth(&oauth));
    let gw = Gateway::start_with(|c| with_clusters_at(c.filter("jwt_auth", config.clone()), &config, oauth.addr()));
    wait_for_keys(&gw, "jwt_auth");

    let no_token = gw.get("/orders");
    assert_denied(&no_token, 401, "unauthorized", Some(r#"Bearer realm="api""#));
    assert_eq!(gw.echo.request_count(), 0);

    let token = oauth.token(json!({"sub": "alice", "scope": "orders:read"}));
    let response = gw.send(bearer(Request::get("/orders"), &token).header("X-User-Id", "mallory"));
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = gw.echo.last_request();
    assert_eq!(
        seen.header_all("x-user-id"),
        vec!["alice"],
        "the claim, not the client's copy"
    );
    assert_eq!(seen.header_all("x-user-scope"), vec!["orders:read"]);
    assert_eq!(seen.header("x-jwt-payload").as_deref(), token.split('.').nth(1));

    let other_audience = oauth.token(json!({"aud": "billing"}));
    assert_denied(
        &gw.send(bearer(Request::get("/orders"), &other_audience)),
        401,
        "invalid_token",
        Some(r#"Bearer realm="api", error="invalid_token""#),
    );
    let public = gw.send(Request::get("/public/status").header("X-User-Id", "mallory"));
    assert_eq!(public.status, 200, "/public/ needs no token");
    assert!(
        !gw.echo.last_request().has_header("x-user-id"),
        "no verified claims, no identity header"
    );
    // A token sent there is checked all the same: a forged one never reaches the upstream, which
    // may read it on a public page that greets its user.
    let before = gw.echo.request_count();
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiIsInNjb3BlIjoiYWRtaW4ifQ.";
    let response = gw.send(bearer(Request::get("/public/status"), forged));
    assert_eq!(response.status, 401, "{}", response.text());
    assert_eq!(gw.echo.request_count(), before);
    let public = gw.send(bearer(Request::get("/public/status"), &token));
    assert_eq!(public.status, 200);
    assert_eq!(gw.echo.last_request().header_all("x-user-id"), vec!["alice"]);
}

/// `envoy/jwt-auth.yaml` and `envoy/scope-gate.yaml` tell the user to start the demo's OAuth
/// server (`demo serve oauth`) for their tokens, and the README's jwt-auth and scope-gate examples
/// call those configs with such a token: the client-credentials call `make run` prints, then the
/// JWT behind that opaque token from introspection, must give one the jwt-auth example accepts.
#[test]
fn a_token_from_the_demo_oauth_server_passes_the_jwt_auth_example() {
    use base64::Engine;
    let oauth = OAuthServer::start();
    // As `make run` and `demo serve oauth` set it up.
    harness::demo::set_up_oauth(&oauth);
    let config = localize(example("jwt-auth"), &Environment::oauth(&oauth));
    let gw = Gateway::start_with(|c| with_clusters_at(c.filter("jwt_auth", config.clone()), &config, oauth.addr()));
    wait_for_keys(&gw, "jwt_auth");

    let basic = base64::engine::general_purpose::STANDARD.encode("demo:demo-secret");
    let answer = harness::http::send(
        oauth.addr(),
        &Request::post("/token", "grant_type=client_credentials&scope=orders:read")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Authorization", &format!("Basic {basic}")),
    )
    .expect("POST /token");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let token = answer.json()["access_token"].as_str().expect("access_token").to_owned();
    // The JWT behind it, from introspection as the gateway client, as the configs' headers and
    // the README say.
    let gateway = base64::engine::general_purpose::STANDARD.encode("gateway:gateway-secret");
    let introspected = harness::http::send(
        oauth.addr(),
        &Request::post("/introspect", format!("token={token}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/jwt")
            .header("Authorization", &format!("Basic {gateway}")),
    )
    .expect("POST /introspect");
    assert_eq!(introspected.status, 200, "{}", introspected.text());
    let jwt = introspected.text();

    let response = gw.send(bearer(Request::get("/orders"), &jwt));
    assert_eq!(
        response.status,
        200,
        "the demo OAuth server's JWT is refused by the jwt-auth example: {jwt:?} gets {}",
        response.text()
    );
}

#[test]
fn scope_gate_example_behind_the_jwt_auth_example_checks_scopes_per_method() {
    let oauth = OAuthServer::start();
    let env = Environment::oauth(&oauth);
    // As envoy/scope-gate.yaml runs it: behind jwt-auth, which verifies the token.
    let jwt_auth = localize(example("jwt-auth"), &env);
    let scope_gate = localize(example("scope-gate"), &env);
    let gw = Gateway::start_with(|c| {
        with_clusters_at(
            c.filter("jwt_auth", jwt_auth.clone()).filter("scope_gate", scope_gate),
            &jwt_auth,
            oauth.addr(),
        )
    });
    wait_for_keys(&gw, "jwt_auth");
    let reader = oauth.token(json!({"scope": "orders:read"}));
    let writer = oauth.token(json!({"scope": "orders:write"}));
    let post = |content_type: &str| Request::post("/orders", "{}").header("Content-Type", content_type);

    assert_eq!(gw.send(bearer(Request::get("/orders/1"), &reader)).status, 200);
    assert_eq!(gw.send(bearer(Request::get("/orders/1"), &writer)).status, 200);
    assert_denied(
        &gw.send(bearer(post("application/json"), &reader)),
        403,
        "insufficient_scope",
        Some(r#"Bearer realm="api", error="insufficient_scope", scope="orders:write""#),
    );
    assert_eq!(gw.send(bearer(post("application/json"), &writer)).status, 200);
    assert_denied(
        &gw.send(bearer(post("text/plain"), &writer)),
        415,
        "unsupported_media_type",
        None,
    );
    assert_eq!(
        gw.send(bearer(Request::get("/admin"), &writer)).status,
        403,
        "unmatched routes are denied"
    );
    assert_eq!(gw.get("/public/status").status, 200);
    assert_eq!(gw.echo.request_count(), 4, "refused requests never reach the upstream");
}

#[test]
fn phantom_token_example_turns_an_opaque_token_into_a_jwt_upstream() {
    let oauth = OAuthServer::start();
    let config = localize(example("phantom-token"), &Environment::oauth(&oauth));
    // The OAuth server knows the gateway by the credentials the example introspects with.
    let client_id = string_at(&config, "/introspection/client_id").to_owned();
    oauth.add_client(Client::new(
        &client_id,
        string_at(&config, "/introspection/client_secret"),
        "",
    ));
    let gw =
        Gateway::start_with(|c| with_clusters_at(c.filter("phantom_token", config.clone()), &config, oauth.addr()));
    wait_for_keys(&gw, "phantom_token");

    let opaque = oauth.opaque_token(json!({"scope": "orders:read"}));
    let jwt = oauth.phantom_jwt(&opaque).expect("a phantom JWT");
    let response = gw.send(bearer(Request::get("/orders"), &opaque));
    assert_eq!(response.status, 200, "{}", response.text());
    let seen = gw.echo.last_request();
    assert_eq!(seen.header_all("authorization"), vec![format!("Bearer {jwt}")]);
    verify_jws(&oauth.jwks_json(), &jwt).unwrap_or_else(|e| panic!("the forwarded JWT does not verify: {e}"));
    assert!(
        seen.headers
            .iter()
            .all(|(_, v)| !String::from_utf8_lossy(v).contains(&opaque)),
        "the opaque token reached the upstream"
    );
    let asked = oauth.introspection_requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].token, opaque);
    assert_eq!(asked[0].client_id, client_id);
    assert_eq!(asked[0].auth_method, ClientAuth::Basic);
    assert_eq!(asked[0].accept.as_deref(), Some("application/jwt"));

    // Cached: the same token again is not introspected again.
    assert_eq!(gw.send(bearer(Request::get("/orders"), &opaque)).status, 200);
    assert_eq!(oauth.introspection_requests().len(), 1);

    assert_denied(&gw.get("/orders"), 401, "unauthorized", Some(r#"Bearer realm="api""#));
    assert_denied(
        &gw.send(bearer(Request::get("/orders"), "not-a-token-the-server-issued")),
        401,
        "invalid_token",
        Some(r#"Bearer realm="api", error="invalid_token""#),
    );
    assert_eq!(
        gw.get("/public/status").status,
        200,
        "the token is optional under /public/"
    );
}

/// A gateway running the rate-limit example, its clusters (gRPC) pointing at `rls`.
fn rate_limit_gateway(rls: &RateLimitService) -> (Gateway, Value) {
    let config = localize(example("rate-limit"), &Environment::default());
    let mut names = clusters(&config);
    assert!(!names.is_empty(), "the rate-limit example calls no rate-limit service");
    let gw = Gateway::start_with(|mut c| {
        c = c.filter("rate_limit", config.clone());
        for name in std::mem::take(&mut names) {
            c = c.extra_cluster(grpc_cluster(&name, rls.grpc_addr()));
        }
        c
    });
    (gw, config)
}

/// The limit `name` of the rate-limit example.
fn limit<'a>(config: &'a Value, name: &str) -> &'a Value {
    config["limits"]
        .as_array()
        .and_then(|limits| limits.iter().find(|l| l["name"] == name))
        .unwrap_or_else(|| panic!("the rate-limit example has no limit {name}"))
}

/// A local limit of the rate-limit example: (requests, per seconds, burst).
fn local_limit(config: &Value, name: &str) -> (u64, u64, u64) {
    let enforce = &limit(config, name)["enforce"];
    assert_eq!(enforce["type"], "local", "{name}");
    let requests = enforce["requests"].as_u64().expect("requests");
    let per = match enforce["per"].as_str() {
        Some("second") => 1,
        Some("minute") => 60,
        Some("hour") => 3600,
        Some("day") => 86_400,
        other => panic!("{name}: unit {other:?}"),
    };
    (requests, per, enforce["burst"].as_u64().unwrap_or(requests))
}

#[test]
fn rate_limit_example_refuses_a_burst_beyond_the_per_address_limit() {
    let rls = RateLimitService::start();
    let (gw, config) = rate_limit_gateway(&rls);
    let (requests, per_secs, burst) = local_limit(&config, "per_address");

    // The bucket holds `burst` requests and refills `requests` per `per_secs`: count how many
    // pass before the first 429, and allow for what refilled meanwhile.
    let started = Instant::now();
    let mut allowed = 0u64;
    let refused = loop {
        let response = gw.get("/orders");
        if response.status != 200 {
            break response;
        }
        assert!(
            !response.has_header("x-ratelimit-limit"),
            "the example sends rate-limit headers only with refusals"
        );
        allowed += 1;
        assert!(allowed <= 10 * burst, "{allowed} requests passed: no limit");
    };
    let refilled = started.elapsed().as_secs() * requests / per_secs + 1;
    assert!(
        (burst..=burst + refilled).contains(&allowed),
        "{allowed} passed before the first refusal, expected {burst} (+ up to {refilled} refilled)"
    );
    assert_denied(&refused, 429, "rate_limited", None);
    let retry_after: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(
        (1..=per_secs.div_ceil(requests)).contains(&retry_after),
        "a token every {per_secs}/{requests} s, Retry-After {retry_after}"
    );
    assert_eq!(
        refused.header("x-ratelimit-remaining").as_deref(),
        Some("0"),
        "draft03 headers"
    );
    assert!(counter(&gw, "rate_limit", "over_limit_per_address") >= 1);
    assert_eq!(gw.echo.request_count() as u64, allowed);
    assert_eq!(rls.calls(), 0, "without an API key the service limit does not apply");
}

#[test]
fn rate_limit_example_charges_reports_ten_and_asks_the_service_per_api_key() {
    let rls = RateLimitService::start();
    rls.set_limit(
        "gateway",
        Limit::new(&[("api_key", None), ("path", None)], 2, Unit::Minute),
    );
    let (gw, config) = rate_limit_gateway(&rls);
    assert_eq!(config["service"]["domain"], "gateway");

    // Reports cost 10 of a 100-an-hour bucket: the 11th POST is refused, other routes are not.
    assert_eq!(
        limit(&config, "expensive_reports")["routes"],
        json!([{"prefix": "/reports/", "methods": ["POST"]}])
    );
    let (_, per_secs, reports_burst) = local_limit(&config, "expensive_reports");
    assert_eq!(per_secs, 3600, "no refill to speak of during the test");
    let cost = limit(&config, "expensive_reports")["cost"].as_u64().expect("cost");
    let reports = reports_burst / cost;
    for i in 0..reports {
        assert_eq!(gw.send(Request::post("/reports/daily", "{}")).status, 200, "report {i}");
    }
    assert_denied(
        &gw.send(Request::post("/reports/daily", "{}")),
        429,
        "rate_limited",
        None,
    );
    assert_eq!(counter(&gw, "rate_limit", "over_limit_expensive_reports"), 1);
    assert_eq!(gw.get("/orders").status, 200, "only reports cost 10");

    // The API-key limit is the service's: two calls per key and path, then 429; another key counts
    // apart.
    let with_key = |key: &str| Request::get("/orders").header("X-Api-Key", key);
    assert_eq!(gw.send(with_key("k1")).status, 200);
    assert_eq!(gw.send(with_key("k1")).status, 200);
    assert_denied(&gw.send(with_key("k1")), 429, "rate_limited", None);
    assert_eq!(gw.send(with_key("k2")).status, 200);
    let recorded = rls.requests();
    assert_eq!(recorded.len(), 4);
    assert_eq!(recorded[3].domain, "gateway");
    assert_eq!(
        recorded[3].descriptors,
        vec![Descriptor::new(&[("api_key", "k2"), ("path", "/orders")])]
    );

    // The example fails closed: the service down is 503, never a pass.
    rls.set_fault(Fault::Down);
    assert_denied(&gw.send(with_key("k3")), 503, "temporarily_unavailable", None);
}

/// Every row of the README's tables starts with `|`: a row without it ends the table there, and
/// the rows after it render as text.
#[test]
fn readme_tables_have_no_broken_rows() {
    let readme = std::fs::read_to_string(harness::paths::workspace_root().join("README.md")).expect("README.md");
    let lines: Vec<&str> = readme.lines().collect();
    let broken: Vec<String> = lines
        .windows(3)
        .enumerate()
        .filter_map(|(i, w)| match w {
            [before, line, after] if before.starts_with('|') && after.starts_with('|') && !line.starts_with('|') => {
                Some(format!(
                    "README.md:{}: {}",
                    i + 2,
                    line.chars().take(60).collect::<String>()
                ))
            }
            _ => None,
        })
        .collect();
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
