//! The adversarial suite: dodging the rate limit, and flooding it with keys.

use super::*;

/// A loopback address of this family's own: `127.<a>.<b>.<c>`.
fn loopback(a: u8, i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, a, (i / 250) as u8, (i % 250 + 1) as u8))
}

fn rate_limited<'a>(name: &str, request: Request) -> Case<'a> {
    Case::refused(name, request, 429, None).check(|response, _| match response.header("retry-after") {
        Some(secs) if secs.parse::<u64>().is_ok_and(|s| s > 0) => Ok(()),
        other => Err(format!("Retry-After {other:?}")),
    })
}

/// The per-client limit of this family: the shipped 5, per hour instead of per minute, so that
/// no token comes back while the suite runs.
const PER_CLIENT: usize = 5;

/// A limit that tracks only this many descriptors, far fewer than the flood brings.
const MAX_KEYS: u32 = 64;

fn dodge_cases(oauth: &OAuthServer) -> Vec<Case<'_>> {
    let m = Mint { oauth };
    let client_a = m.valid(json!({"client_id": "client-a"}));
    let a = || bearer("/orders", &client_a);
    let address = loopback(9, 0);
    let public = || Request::get("/public/status");
    let mut cases: Vec<Case<'_>> = (1..=PER_CLIENT)
        .map(|n| Case::allowed(format!("client-a request {n}"), a()))
        .collect();
    cases.extend([
        rate_limited("client-a over its limit", a()),
        rate_limited(
            "client-a with X-Forwarded-For",
            a().header("X-Forwarded-For", "203.0.113.7"),
        ),
        rate_limited("client-a with X-Real-IP", a().header("X-Real-IP", "203.0.113.7")),
        rate_limited("client-a with Forwarded", a().header("Forwarded", "for=203.0.113.7")),
        rate_limited(
            "client-a with X-Envoy-External-Address",
            a().header("X-Envoy-External-Address", "203.0.113.7"),
        ),
        // Envoy refuses header names with underscores outright (headers_with_underscores_action).
        Case::refused(
            "client-a with a client_id header",
            a().header("client_id", "client-b"),
            400,
            None,
        ),
        rate_limited("client-a with a Client-Id header", a().header("Client-Id", "client-b")),
        rate_limited("client-a with X-Client-Id", a().header("X-Client-Id", "client-b")),
        rate_limited("client-a with a spoofed x-user-id", a().header("X-User-Id", "bob")),
        rate_limited("client-a from another address", a()).from(loopback(9, 100)),
        rate_limited(
            "another token of client-a",
            bearer(
                "/orders",
                &m.valid(json!({"client_id": "client-a", "sub": "bob", "jti": "other"})),
            ),
        ),
    ]);
    cases.extend((1..=PER_CLIENT).map(|n| Case::allowed(format!("anonymous request {n}"), public()).from(address)));
    cases.extend([
        rate_limited("anonymous over its limit", public()).from(address),
        rate_limited(
            "anonymous with X-Forwarded-For",
            public().header("X-Forwarded-For", "203.0.113.8"),
        )
        .from(address),
        rate_limited("anonymous with X-Real-IP", public().header("X-Real-IP", "203.0.113.8")).from(address),
        rate_limited(
            "anonymous with X-Envoy-External-Address",
            public().header("X-Envoy-External-Address", "203.0.113.8"),
        )
        .from(address),
        rate_limited("anonymous on another path", Request::get("/public/other?x=1")).from(address),
        rate_limited(
            "a token without client_id falls back to the address",
            bearer("/orders", &m.valid(json!({}))),
        )
        .from(address),
        Case::refused(
            "a forged client_id is refused before it counts",
            bearer("/orders", "forged.jwt.token"),
            401,
            Some(INVALID_TOKEN),
        )
        .from(address),
        Case::allowed("control: another address", public()).from(loopback(9, 1)),
        // An early client that used one token: the bucket that has the most left.
        Case::allowed("an early client's first request", public())
            .from(loopback(9, 3))
            .check(remaining(PER_CLIENT - 1)),
    ]);
    cases
}

/// `count` requests, each from its own loopback address `127.<a>.x.y` to its own path, eight
/// at a time; returns the answers that were not a 200 from the upstream.
fn flood(gw: &Gateway, a: u8, count: u32) -> Vec<String> {
    const THREADS: u32 = 8;
    let addr = gw.envoy.listener();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                scope.spawn(move || {
                    let mut bad = Vec::new();
                    for i in (t..count).step_by(THREADS as usize) {
                        let source = loopback(a, i);
                        let request = Request::get(&format!("/public/flood/{i}"));
                        match http::send_from(source, addr, &request) {
                            Ok(r) if r.status == 200 => {}
                            Ok(r) => bad.push(format!("{source}: {} {}", r.status, r.text())),
                            Err(e) => bad.push(format!("{source}: {e}")),
                        }
                    }
                    bad
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a flood thread"))
            .collect()
    })
}

#[test]
fn rate_limit_family() {
    let backends = Backends::start();
    let mut chain = Chain::jwt(&backends);
    chain.set_local_limit(PER_CLIENT as u64, "hour");
    chain.merge("rate_limit", json!({"max_keys": MAX_KEYS}));
    chain.concurrency = 2;
    let gw = chain.start();
    let mut family = Family::new("rate_limit", &gw);
    family.run(dodge_cases(&backends.oauth));

    // Very many distinct keys: each client address is a new descriptor of the per-client limit
    // (and, with its path, of the service limit). The limit tracks MAX_KEYS of them; a new one
    // takes the slot of the bucket with the most tokens left, so exhausted clients stay limited.
    // Memory stays bounded by design (the buckets exist before traffic); `make soak` and
    // `make bench` measure RSS, which is no assertion for `make test`.
    let warm_up = flood(&gw, 10, 1_000);
    let errors = flood(&gw, 11, 6_000);
    for (what, errors) in [("warm-up", warm_up), ("flood", errors)] {
        if !errors.is_empty() {
            family.failures.push(format!(
                "rate_limit/{what}: {} requests were not answered 200, e.g. {:?}",
                errors.len(),
                errors.iter().take(3).collect::<Vec<_>>()
            ));
        }
    }
    let store_errors = gw.envoy.counter("wasmcustom.apisec.rate_limit.local_store_error");
    if store_errors != 0 {
        family
            .failures
            .push(format!("rate_limit/flood: {store_errors} shared-data update failures"));
    }
    // After the flood, the exhausted clients are still limited: a flood of keys does not evict
    // them. The early client's bucket, with the most tokens left, was the one to go: it starts
    // afresh, as a limit that tracks a bounded number of keys must.
    let m = Mint { oauth: &backends.oauth };
    family.run(vec![
        rate_limited(
            "client-a still limited after the flood",
            bearer("/orders", &m.valid(json!({"client_id": "client-a"}))),
        ),
        rate_limited(
            "the anonymous address still limited after the flood",
            Request::get("/public/status"),
        )
        .from(loopback(9, 0)),
        Case::allowed(
            "the early client was evicted: a full bucket again",
            Request::get("/public/status"),
        )
        .from(loopback(9, 3))
        .check(remaining(PER_CLIENT - 1)),
        Case::allowed("control: a new client after the flood", Request::get("/public/status")).from(loopback(9, 2)),
    ]);
    let valid = m.valid(json!({"client_id": "client-final"}));
    family.finish(bearer("/orders", &valid));
}

/// The `per_client` tokens the `RateLimit` header (IETF style, as shipped) says are left.
fn remaining<'a>(expected: usize) -> impl Fn(&Response, &[RecordedRequest]) -> Result<(), String> + 'a {
    move |response, _| {
        let header = response.header("ratelimit").unwrap_or_default();
        let left = header
            .split(',')
            .find_map(|item| item.trim().strip_prefix("\"per_client\";r="))
            .and_then(|rest| rest.split(';').next())
            .and_then(|n| n.parse::<usize>().ok());
        if left == Some(expected) {
            Ok(())
        } else {
            Err(format!(
                "RateLimit {header:?}: expected {expected} per_client tokens left"
            ))
        }
    }
}
