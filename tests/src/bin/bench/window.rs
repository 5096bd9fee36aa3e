//! One measured window of one variant, and how windows are made (for the report).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use harness::{http, Envoy, OAuthServer, Request};
use serde_json::json;

use crate::load::{self, Auth, CONNECTIONS, EXTRA_HEADERS, PATH};
use crate::report::Sample;
use crate::tokens::{self, Alg, Tokens};
use crate::variants::{Load, Variant, UNIQUE_CACHE_ENTRIES};
use crate::{chain, measure, ENVOY_CPU, LOAD_CPU};

/// What every window shares.
pub struct Bench {
    pub upstream: SocketAddr,
    pub oauth: OAuthServer,
    pub tokens: Tokens,
    pub dir: PathBuf,
    pub pinned: bool,
    pub secs: u64,
    pub warmup: u64,
}

/// One window: a fresh Envoy, a check request, a warm-up, the measured load.
pub fn run_once(v: &Variant, bench: &mut Bench) -> Result<Sample, String> {
    let config = chain::gateway(v, bench.upstream, &bench.oauth);
    let bootstrap = config.to_bootstrap();
    // Envoy starts on its own CPU: it inherits the affinity of the thread that spawns it.
    if bench.pinned {
        measure::pin_main_thread(ENVOY_CPU)?;
    }
    let started = Instant::now();
    let envoy = Envoy::start(&bootstrap, config.concurrency);
    let ready = started.elapsed();
    if bench.pinned {
        measure::pin_main_thread(LOAD_CPU)?;
    }
    let envoy = envoy.map_err(|log| format!("Envoy did not start: {log}"))?;
    if bench.pinned {
        envoy.pin_to_cpus(ENVOY_CPU)?;
    }

    let (auth, first) = match v.load {
        Load::Plain => (Auth::None, None),
        Load::Repeated(alg) => {
            let t = bench.tokens.repeated(alg);
            (Auth::Same(t.clone()), Some(t))
        }
        Load::Unique(alg) => (
            Auth::Cycle(bench.tokens.set_file(alg)),
            Some(bench.tokens.first_of_set(alg)?),
        ),
        Load::Opaque => {
            let t = bench.oauth.opaque_token(json!({"scope": tokens::SCOPE}));
            (Auth::Same(t.clone()), Some(t))
        }
    };
    let mut check = Request::get(PATH);
    for (name, value) in EXTRA_HEADERS {
        check = check.header(name, value);
    }
    if let Some(token) = &first {
        check = check.header("Authorization", &format!("Bearer {token}"));
    }
    let answer = http::send(envoy.listener(), &check).map_err(|e| format!("check request failed: {e}"))?;
    if answer.status != 200 {
        return Err(format!("check request answered {}: {}", answer.status, answer.text()));
    }

    let cycle_len = match v.load {
        Load::Unique(alg) => bench.tokens.set_sizes().get(&alg).copied().unwrap_or(1),
        _ => 1,
    };
    let cpu = bench.pinned.then_some(LOAD_CPU);
    let script = bench.dir.join(format!("{}.lua", v.id));
    load::write_script(&script, &auth, 0)?;
    let warm = load::run(envoy.listener(), &script, bench.warmup, cpu)?;
    // The measured load goes on with the tokens after the warm-up's, as one long cycle would.
    let next = (warm.requests as usize + CONNECTIONS as usize) % cycle_len;
    load::write_script(&script, &auth, next)?;
    let busy_before = measure::cpu_busy(ENVOY_CPU);
    let cpu_before = envoy.cpu_time();
    let result = load::run(envoy.listener(), &script, bench.secs, cpu)?;
    let cpu_used = envoy.cpu_time().saturating_sub(cpu_before);
    let busy = measure::cpu_busy(ENVOY_CPU)
        .zip(busy_before)
        .map(|(after, before)| after.saturating_sub(before));
    let wall = result.duration.as_secs_f64().max(1e-9);
    let rss = envoy.rss_bytes();
    Ok(Sample {
        rps: result.rps(),
        p50_ms: result.p50.as_secs_f64() * 1e3,
        p99_ms: result.p99.as_secs_f64() * 1e3,
        cpu_us: cpu_used.as_secs_f64() * 1e6 / result.requests.max(1) as f64,
        cpu_util: cpu_used.as_secs_f64() / wall,
        others_util: busy
            .filter(|_| bench.pinned)
            .map(|b| b.saturating_sub(cpu_used).as_secs_f64() / wall),
        rss_mib: rss as f64 / (1024.0 * 1024.0),
        ready_ms: ready.as_secs_f64() * 1e3,
        bad_status: result.bad_status,
        socket_errors: result.socket_errors,
        path: measure::path_taken(&envoy),
    })
}

pub fn method_notes(bench: &Bench) -> Vec<String> {
    let sets: Vec<String> = bench
        .tokens
        .set_sizes()
        .iter()
        .map(|(alg, n): (&Alg, &usize)| format!("{} {n}", alg.name()))
        .collect();
    vec![
        format!(
            "each window: a fresh Envoy (`--concurrency 1`), one check request that must answer 200, {} s of \
             warm-up load, then {} s measured; wrk with 1 thread and {CONNECTIONS} connections (closed loop), \
             GET {PATH} with `X-User-Id` and `X-Internal-Trace` headers on every request",
            bench.warmup, bench.secs
        ),
        "upstream: a fixed `200 ok` from a minimal HTTP/1.1 server (the harness's hyper server, one thread) \
         on the load CPU; the echo upstream would record every request, without bound under load"
            .into(),
        "Envoy CPU: utime + stime of the Envoy process (all threads) from /proc/<pid>/stat before and after \
         the measured window (10 ms ticks); RSS: VmRSS after the window; time to ready: spawn to admin \
         /ready answering 200, polled every 20 ms, Envoy on its CPU from the start"
            .into(),
        format!(
            "tokens: RS256 (RSA 2048), ES256 (P-256), EdDSA (Ed25519), 6 h lifetime; unique-token sets \
             ({}) cycled in order, so with jwt-auth's `cache_max_entries` {UNIQUE_CACHE_ENTRIES} (FIFO) every \
             token is evicted before it comes back; native jwt_authn without `jwt_cache_config` has no cache, \
             with it `jwt_cache_size` 4096",
            if sets.is_empty() {
                "none".to_owned()
            } else {
                sets.join(", ")
            }
        ),
        "pure Rust: jwt-auth with `host_crypto: false`; Ed25519 has no host path (Envoy's verify_signature \
         does RSA and ECDSA), so the EdDSA jwt-auth row is the pure-Rust check; per-verify cost = CPU per \
         request of the pure-Rust row minus bare Envoy's (an upper bound: it includes the filter's own work)"
            .into(),
        "equivalents: native header_mutation removes the same names (it has no prefix matching, so the \
         one `x-internal-` header the load sends) and adds the same six security headers; native \
         local_ratelimit has one global bucket, as the rate-limit row (one constant descriptor); the full \
         chain's rate-limit keys on the verified `sub`; no limit is ever reached"
            .into(),
        "the machine is not reserved for the run: other processes compete for both CPUs, so compare rows \
         of one run, not numbers across runs"
            .into(),
    ]
}
