//! `make soak DURATION=30m`: the demo gateway (`envoy/gateway.yaml`, the whole chain, real Envoy
//! and the demo's services) under steady mixed traffic for a set time. Every answer is checked
//! against the policy of its kind of request; Envoy's RSS and counters are sampled throughout.
//!
//! It fails when
//! - any answer is not one the policy gives that kind of request (every 5xx is one: no kind of
//!   request in the mix may get a 5xx while the OAuth server and the rate-limit service are up),
//!   or a request gets no answer;
//! - Envoy's RSS, after the warm-up, grows more than the bound above its value at the end of the
//!   warm-up (caches, key tables and token buckets are bounded and fill during the warm-up);
//! - a wasm VM crashed, was replaced or reloaded;
//! - the traffic did not take every path it should (tokens exchanged and served from the cache,
//!   rate limits reached).
//!
//! Settings (environment): `SOAK_DURATION` (`90s`, `30m`, `2h`; default 10m), `SOAK_RPS` (default
//! 200), `SOAK_WARMUP` (default a fifth of the duration, at most 5m), `SOAK_RSS_GROWTH_MIB`
//! (default 24), `SOAK_REPORT` (default `target/soak/report.md`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::demo::{self, Demo, Running};
use harness::envoy::VMS_CREATED;
use harness::examples::FILTERS;
use harness::http::{self, Request, Response};
use harness::{paths, OAuthServer};
use serde_json::json;

const CHALLENGE: &str = r#"Bearer realm="api""#;
const INVALID_TOKEN: &str = r#"Bearer realm="api", error="invalid_token""#;
const ORIGIN: &str = "http://localhost:3000";
/// Clients that stay under both rate limits (5 a minute locally, 100 an hour per path at the
/// service): each is visited once every `QUIET_CLIENTS` quiet visits.
const QUIET_CLIENTS: u64 = 2_000;
/// Clients that call far more often than their limit allows.
const HOT_CLIENTS: u64 = 4;
/// Clients with only `orders:read`, who try to write.
const READ_ONLY_CLIENTS: u64 = 500;
/// Paths per quiet client, so that no client reaches the service's 100 an hour on one path.
const PATHS: u64 = 7;
/// Tokens live 300 s at the demo's OAuth server; a client gets a new one well before.
const TOKEN_REUSE: Duration = Duration::from_secs(200);
const WORKERS: u64 = 16;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// The kinds of request in the mix and how many of every 20 requests are of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A quiet client's visit: two calls with its token; the second is served from the cache.
    Valid,
    /// A new client's first call: a token never seen, so an exchange at the OAuth server.
    FirstCall,
    /// A hot client: mostly 429 with `Retry-After`.
    OverLimit,
    /// A token the OAuth server never issued.
    UnknownToken,
    /// A token revoked before its first use.
    RevokedToken,
    /// No token on a protected route.
    NoToken,
    /// A read-only client posting an order.
    MissingScope,
    /// A CORS preflight from the allowed origin.
    Preflight,
    /// A public route without a token, from an address of its own.
    Public,
}

const MIX: [(Kind, u64); 9] = [
    (Kind::Valid, 8),
    (Kind::FirstCall, 2),
    (Kind::OverLimit, 2),
    (Kind::UnknownToken, 2),
    (Kind::RevokedToken, 1),
    (Kind::NoToken, 1),
    (Kind::MissingScope, 2),
    (Kind::Preflight, 1),
    (Kind::Public, 1),
];

fn kind_of(n: u64) -> Kind {
    let total: u64 = MIX.iter().map(|(_, weight)| weight).sum();
    let mut slot = n % total;
    for (kind, weight) in MIX {
        if slot < weight {
            return kind;
        }
        slot -= weight;
    }
    Kind::Valid
}

/// Requests per slot of the mix, on average (a valid visit is two requests).
fn requests_per_slot() -> f64 {
    let slots: u64 = MIX.iter().map(|(_, weight)| weight).sum();
    let requests: u64 = MIX
        .iter()
        .map(|(kind, weight)| if *kind == Kind::Valid { 2 * weight } else { *weight })
        .sum();
    requests as f64 / slots as f64
}

struct Settings {
    duration: Duration,
    warmup: Duration,
    rps: u64,
    rss_growth_mib: u64,
    report: std::path::PathBuf,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected e.g. 90s, 30m, 2h"))?;
    let secs = match unit {
        "" | "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        _ => return Err(format!("{text:?}: unit must be s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: u64| -> Result<u64, String> {
            var(name).map_or(Ok(default), |v| {
                v.trim().parse().map_err(|_| format!("{name}={v}: not a number"))
            })
        };
        let duration = var("SOAK_DURATION").map_or(Ok(Duration::from_secs(600)), |v| parse_duration(&v))?;
        let warmup = match var("SOAK_WARMUP") {
            Some(v) => parse_duration(&v)?,
            None => (duration / 5).min(Duration::from_secs(300)),
        };
        if warmup >= duration {
            return Err(format!(
                "SOAK_WARMUP ({warmup:?}) must be shorter than SOAK_DURATION ({duration:?})"
            ));
        }
        let rps = number("SOAK_RPS", 200)?;
        if rps == 0 {
            return Err("SOAK_RPS must be at least 1".into());
        }
        Ok(Settings {
            duration,
            warmup,
            rps,
            rss_growth_mib: number("SOAK_RSS_GROWTH_MIB", 24)?,
            report: var("SOAK_REPORT").map_or_else(
                || paths::workspace_root().join("target/soak/report.md"),
                std::path::PathBuf::from,
            ),
        })
    }
}

/// Tokens of the clients, minted in-process at the demo's OAuth server.
struct Tokens<'a> {
    oauth: &'a OAuthServer,
    /// Per client id: its token and when it was minted.
    issued: Mutex<BTreeMap<String, (String, Instant)>>,
}

impl Tokens<'_> {
    fn mint(&self, client: &str, scope: &str) -> String {
        self.oauth
            .opaque_token(json!({"client_id": client, "sub": client, "scope": scope}))
    }

    /// `client`'s current token, a new one when it has none or an old one.
    fn of(&self, client: &str, scope: &str) -> String {
        let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
        match issued.get(client) {
            Some((token, at)) if at.elapsed() < TOKEN_REUSE => token.clone(),
            _ => {
                let token = self.mint(client, scope);
                issued.insert(client.to_owned(), (token.clone(), Instant::now()));
                token
            }
        }
    }
}

/// What one kind of request got, and the answers the policy does not explain.
#[derive(Default)]
struct Tally {
    by_kind: BTreeMap<Kind, BTreeMap<u16, u64>>,
    failures: u64,
    unexplained: Vec<String>,
}

struct Traffic<'a> {
    gateway: std::net::SocketAddr,
    tokens: Tokens<'a>,
    next: AtomicU64,
    quiet_visits: AtomicU64,
    first_calls: AtomicU64,
    tally: Mutex<Tally>,
    stop: AtomicBool,
}

fn bearer(req: Request, token: &str) -> Request {
    req.header("Authorization", &format!("Bearer {token}"))
}

/// Why `resp` is not what the policy gives `kind` (`None` when it is).
fn unexplained(kind: Kind, resp: &Response) -> Option<String> {
    let challenge = resp.header("www-authenticate");
    let ok = match kind {
        Kind::Valid | Kind::FirstCall | Kind::Public => resp.status == 200,
        Kind::OverLimit => resp.status == 200 || (resp.status == 429 && resp.has_header("retry-after")),
        Kind::UnknownToken | Kind::RevokedToken => resp.status == 401 && challenge.as_deref() == Some(INVALID_TOKEN),
        Kind::NoToken => resp.status == 401 && challenge.as_deref() == Some(CHALLENGE),
        Kind::MissingScope => {
            resp.status == 403 && challenge.is_some_and(|c| c.contains(r#"error="insufficient_scope""#))
        }
        Kind::Preflight => resp.status == 204 && resp.header("access-control-allow-origin").as_deref() == Some(ORIGIN),
    };
    (!ok).then(|| {
        let body: String = resp.text().chars().take(200).collect();
        format!("{kind:?}: {} {body}", resp.status)
    })
}

impl Traffic<'_> {
    fn send(&self, kind: Kind, source: IpAddr, req: Request) {
        let outcome = http::send_from(source, self.gateway, &req);
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        let problem = match &outcome {
            Ok(resp) => {
                *tally.by_kind.entry(kind).or_default().entry(resp.status).or_default() += 1;
                unexplained(kind, resp)
            }
            Err(e) => Some(format!("{kind:?}: {} {}: no answer: {e}", req.method, req.path)),
        };
        if let Some(problem) = problem {
            tally.failures += 1;
            if tally.unexplained.len() < 20 {
                tally.unexplained.push(problem);
            }
        }
    }

    fn one(&self, n: u64) {
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // Which round of the mix: each kind's slots sit at fixed places in a round, so `n` modulo
        // a small number would pick only some of its clients.
        let round = n / MIX.iter().map(|(_, weight)| weight).sum::<u64>();
        match kind_of(n) {
            Kind::Valid => {
                let visit = self.quiet_visits.fetch_add(1, Ordering::Relaxed);
                let client = format!("quiet-{}", visit % QUIET_CLIENTS);
                let token = self.tokens.of(&client, "orders:read");
                let path = format!("/orders/{}", (visit / QUIET_CLIENTS) % PATHS);
                for _ in 0..2 {
                    self.send(Kind::Valid, local, bearer(Request::get(&path), &token));
                }
            }
            Kind::FirstCall => {
                let client = format!("new-{}", self.first_calls.fetch_add(1, Ordering::Relaxed));
                let token = self.tokens.mint(&client, "orders:read orders:write");
                self.send(Kind::FirstCall, local, bearer(Request::get("/orders"), &token));
            }
            Kind::OverLimit => {
                let token = self.tokens.of(&format!("hot-{}", round % HOT_CLIENTS), "orders:read");
                self.send(Kind::OverLimit, local, bearer(Request::get("/orders"), &token));
            }
            Kind::UnknownToken => {
                let token = format!("never-issued-{n:016x}");
                self.send(Kind::UnknownToken, local, bearer(Request::get("/orders"), &token));
            }
            Kind::RevokedToken => {
                let token = self.tokens.mint(&format!("revoked-{n}"), "orders:read");
                self.tokens.oauth.revoke(&token);
                self.send(Kind::RevokedToken, local, bearer(Request::get("/orders"), &token));
            }
            Kind::NoToken => self.send(Kind::NoToken, local, Request::get("/orders")),
            Kind::MissingScope => {
                let token = self
                    .tokens
                    .of(&format!("reader-{}", round % READ_ONLY_CLIENTS), "orders:read");
                let req = Request::post("/orders", r#"{"item":"book"}"#).header("Content-Type", "application/json");
                self.send(Kind::MissingScope, local, bearer(req, &token));
            }
            Kind::Preflight => {
                let req = Request::options("/orders")
                    .header("Origin", ORIGIN)
                    .header("Access-Control-Request-Method", "POST");
                self.send(Kind::Preflight, local, req);
            }
            Kind::Public => {
                // Its own address each time: the per-address limit of 5 a minute is not the point.
                let [_, a, b, c] = (round as u32 % (1 << 22) + (1 << 16)).to_be_bytes();
                let source = IpAddr::V4(Ipv4Addr::new(127, a.max(1), b, c.max(1)));
                self.send(Kind::Public, source, Request::get("/public/health"));
            }
        }
    }

    /// One worker: its share of the rate, on a fixed schedule; slots it is late for are skipped
    /// (no catch-up bursts, which would push quiet clients over their limits).
    fn worker(&self, started: Instant, period: Duration) {
        let mut due = started;
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            self.one(self.next.fetch_add(1, Ordering::Relaxed));
            due += period;
            let now = Instant::now();
            while due + period < now {
                due += period;
            }
        }
    }
}

/// One sample of Envoy.
struct Sample {
    at: Duration,
    rss_mib: f64,
    requests: u64,
    downstream_5xx: u64,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    let demo = match Demo::start() {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("soak: the demo gateway did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match soak(&settings, &demo) {
        Ok(report) => {
            println!("{report}");
            println!("soak: passed");
            ExitCode::SUCCESS
        }
        Err(report) => {
            eprintln!("{report}");
            eprintln!("soak: FAILED");
            ExitCode::FAILURE
        }
    }
}

fn soak(settings: &Settings, demo: &Demo) -> Result<String, String> {
    let Some(oauth) = demo.services.iter().find_map(|s| match s {
        Running::OAuth(oauth) => Some(oauth),
        _ => None,
    }) else {
        return Err("the demo has no OAuth server".into());
    };
    let envoy = &demo.envoy;
    wait_for_keys(envoy)?;
    let vms_created = envoy.counter(VMS_CREATED);
    let plugins: Vec<String> = FILTERS.iter().map(|f| f.root_id.to_owned()).collect();

    let traffic = Traffic {
        gateway: demo::addr(demo::LISTENER),
        tokens: Tokens {
            oauth,
            issued: Mutex::default(),
        },
        next: AtomicU64::new(0),
        quiet_visits: AtomicU64::new(0),
        first_calls: AtomicU64::new(0),
        tally: Mutex::default(),
        stop: AtomicBool::new(false),
    };
    println!(
        "soak: {:?} at {} requests/s ({:?} warm-up), RSS bound +{} MiB; the gateway at {}",
        settings.duration,
        settings.rps,
        settings.warmup,
        settings.rss_growth_mib,
        demo::LISTENER
    );
    println!(
        "{:>8} {:>10} {:>9} {:>8} {:>9}",
        "time", "requests", "req/s", "RSS MiB", "failures"
    );
    let started = Instant::now();
    let period = Duration::from_secs_f64(WORKERS as f64 * requests_per_slot() / settings.rps as f64);
    let mut samples: Vec<Sample> = Vec::new();
    std::thread::scope(|scope| {
        for w in 0..WORKERS {
            let traffic = &traffic;
            scope.spawn(move || traffic.worker(started + period.mul_f64(w as f64 / WORKERS as f64), period));
        }
        let mut last_requests = 0;
        while started.elapsed() < settings.duration {
            std::thread::sleep(SAMPLE_EVERY.min(settings.duration.saturating_sub(started.elapsed())));
            let sample = Sample {
                at: started.elapsed(),
                rss_mib: mib(envoy.rss_bytes()),
                requests: envoy.counter("http.gateway.downstream_rq_total"),
                downstream_5xx: envoy.counter("http.gateway.downstream_rq_5xx"),
            };
            let failures = traffic.tally.lock().unwrap_or_else(|e| e.into_inner()).failures;
            println!(
                "{:>7.0}s {:>10} {:>9.0} {:>8.1} {:>9}",
                sample.at.as_secs_f64(),
                sample.requests,
                (sample.requests - last_requests) as f64 / SAMPLE_EVERY.as_secs_f64(),
                sample.rss_mib,
                failures
            );
            last_requests = sample.requests;
            samples.push(sample);
        }
        traffic.stop.store(true, Ordering::Relaxed);
    });

    let tally = traffic.tally.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut problems: Vec<String> = Vec::new();
    if tally.failures > 0 {
        problems.push(format!(
            "{} answers the policy does not explain; the first: {:#?}",
            tally.failures, tally.unexplained
        ));
    }
    let last = samples.last().ok_or("no sample taken")?;
    if last.downstream_5xx > 0 {
        problems.push(format!("Envoy counted {} 5xx answers", last.downstream_5xx));
    }
    problems.extend(envoy.vm_failures(&plugins, vms_created));
    let (baseline, peak) = rss_after_warmup(&samples, settings.warmup).ok_or("no sample after the warm-up")?;
    let growth = peak - baseline;
    if growth > settings.rss_growth_mib as f64 {
        problems.push(format!(
            "RSS grew {growth:.1} MiB after the warm-up ({baseline:.1} to {peak:.1} MiB), bound {} MiB",
            settings.rss_growth_mib
        ));
    }
    let counter = |filter: &str, name: &str| envoy.counter(&format!("wasmcustom.apisec.{filter}.{name}"));
    let paths_taken = [
        (
            "tokens exchanged at the OAuth server",
            counter("phantom_token", "introspection_active"),
        ),
        (
            "tokens served from the phantom-token cache",
            counter("phantom_token", "cache_hit"),
        ),
        ("requests over a local limit", counter("rate_limit", "over_limit")),
    ];
    for (what, count) in paths_taken {
        if count == 0 {
            problems.push(format!("no {what}: the mix did not take that path"));
        }
    }

    let report = report(settings, &samples, &tally, baseline, peak, &paths_taken, &problems);
    if let Some(dir) = settings.report.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&settings.report, &report) {
        problems.push(format!("cannot write {}: {e}", settings.report.display()));
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(report)
    }
}

/// Polls until both JWT filters hold the OAuth server's keys (until then they answer 503, as
/// documented).
fn wait_for_keys(envoy: &harness::Envoy) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let keys = ["phantom_token", "jwt_auth"].map(|f| format!("wasmcustom.apisec.{f}.jwks_fetch_ok"));
    while keys.iter().any(|k| envoy.counter(k) == 0) {
        if Instant::now() > deadline {
            return Err(format!("the filters have no keys after 60 s: {keys:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// RSS at the first sample after the warm-up, and the highest after it.
fn rss_after_warmup(samples: &[Sample], warmup: Duration) -> Option<(f64, f64)> {
    let after: Vec<f64> = samples.iter().filter(|s| s.at >= warmup).map(|s| s.rss_mib).collect();
    let baseline = *after.first()?;
    Some((baseline, after.iter().copied().fold(baseline, f64::max)))
}

fn report(
    settings: &Settings,
    samples: &[Sample],
    tally: &Tally,
    baseline: f64,
    peak: f64,
    paths_taken: &[(&str, u64)],
    problems: &[String],
) -> String {
    let mut out = String::from("# make soak: report\n\n");
    let total: u64 = tally.by_kind.values().flat_map(|s| s.values()).sum();
    let elapsed = samples.last().map_or(1.0, |s| s.at.as_secs_f64());
    let _ = writeln!(
        out,
        "- gateway: envoy/gateway.yaml (the whole chain), Envoy --concurrency {}\n\
         - duration {:?}, warm-up {:?}, target {} requests/s; sent {total} ({:.0}/s)\n\
         - RSS: {:.1} MiB at the start, {baseline:.1} MiB after the warm-up, peak after it {peak:.1} MiB \
         (growth {:.1} MiB, bound {} MiB)\n",
        demo::CONCURRENCY,
        settings.duration,
        settings.warmup,
        settings.rps,
        total as f64 / elapsed,
        samples.first().map_or(0.0, |s| s.rss_mib),
        peak - baseline,
        settings.rss_growth_mib
    );
    out.push_str("| kind of request | answers |\n|---|---|\n");
    for (kind, statuses) in &tally.by_kind {
        let answers: Vec<String> = statuses.iter().map(|(status, n)| format!("{status}: {n}")).collect();
        let _ = writeln!(out, "| {kind:?} | {} |", answers.join(", "));
    }
    out.push('\n');
    for (what, count) in paths_taken {
        let _ = writeln!(out, "- {what}: {count}");
    }
    out.push_str("\n## RSS over time (MiB)\n\n");
    let step = (samples.len() / 20).max(1);
    for sample in samples.iter().step_by(step) {
        let _ = writeln!(out, "- {:.0} s: {:.1}", sample.at.as_secs_f64(), sample.rss_mib);
    }
    out.push_str("\n## Verdict\n\n");
    if problems.is_empty() {
        out.push_str("passed\n");
    }
    for problem in problems {
        let _ = writeln!(out, "- FAILED: {problem}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_minutes_and_hours() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn the_mix_repeats_every_twenty_slots_in_its_proportions() {
        for (kind, weight) in MIX {
            let seen = (0..200).filter(|n| kind_of(*n) == kind).count() as u64;
            assert_eq!(seen, weight * 10, "{kind:?}");
        }
        assert!((requests_per_slot() - 1.4).abs() < 1e-9);
    }
}
