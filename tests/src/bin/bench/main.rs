//! `make bench` / `make bench-quick`: every variant of the issue (bare Envoy, native filters, our
//! filters alone and chained) under the same load, interleaved over rounds; medians, ratios to
//! bare Envoy and to the native equivalent, the targets met or missed, module sizes and time to
//! ready, the pure-Rust signature checks timed in wasm, printed and written as markdown.
//!
//! Envoy runs with one worker pinned to CPU 0; wrk, the upstream and this process share CPU 1.
//!
//! ```text
//! bench [--quick] [--out FILE] [--rounds N] [--secs N] [--warmup N] [--only ID,ID...]
//! ```

mod chain;
mod load;
mod measure;
mod report;
mod tokens;
mod variants;
mod verify;
mod window;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use bytes::Bytes;
use harness::oauth::Client;
use harness::server::BackgroundServer;
use harness::OAuthServer;
use http_body_util::Full;

use report::{Meta, Results, Sample};
use tokens::Tokens;
use variants::{Load, Variant};
use window::Bench;

/// The modules whose sizes are reported: one per filter, and the bundle of all five.
const MODULES: [&str; 6] = [
    "header_scrub",
    "jwt_auth",
    "scope_gate",
    "phantom_token",
    "rate_limit",
    chain::BUNDLE_MODULE,
];
/// Where Envoy runs, and where the load (wrk, the upstream, this process) runs.
pub const ENVOY_CPU: &str = "0";
pub const LOAD_CPU: &str = "1";

struct Options {
    out: PathBuf,
    quick: bool,
    rounds: usize,
    secs: u64,
    warmup: u64,
    only: Option<Vec<String>>,
}

fn usage() -> ExitCode {
    eprintln!("usage: bench [--quick] [--out FILE] [--rounds N] [--secs N] [--warmup N] [--only ID,ID...]");
    ExitCode::from(2)
}

fn parse_args() -> Option<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Options {
        out: harness::paths::workspace_root().join("target/bench/results.md"),
        quick,
        rounds: if quick { 1 } else { 3 },
        secs: if quick { 2 } else { 10 },
        warmup: 1,
        only: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => {}
            "--out" => o.out = PathBuf::from(it.next()?),
            "--rounds" => o.rounds = it.next()?.parse().ok().filter(|n| *n > 0)?,
            "--secs" => o.secs = it.next()?.parse().ok().filter(|n| *n > 0)?,
            "--warmup" => o.warmup = it.next()?.parse().ok().filter(|n| *n > 0)?,
            "--only" => o.only = Some(it.next()?.split(',').map(str::to_owned).collect()),
            _ => return None,
        }
    }
    Some(o)
}

fn main() -> ExitCode {
    let Some(opts) = parse_args() else {
        return usage();
    };
    match run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `Ok(false)`: the report is written, but some variant could not be measured.
fn run(opts: &Options) -> Result<bool, String> {
    // Everything that could stop the run comes first, before any Envoy runs.
    let wrk = load::version()?;
    let envoy_version = measure::envoy_version();
    let wasm_sizes = measure::wasm_sizes(&MODULES);
    if let Some((name, _)) = wasm_sizes.iter().find(|(_, s)| s.is_none()) {
        return Err(format!("{name}.wasm is not built: run `make build`"));
    }
    let selected: Vec<Variant> = variants::all()
        .into_iter()
        .filter(|v| match &opts.only {
            Some(ids) => ids.iter().any(|id| id == v.id),
            None => v.quick || !opts.quick,
        })
        .collect();
    if selected.is_empty() {
        return Err("no variant selected".into());
    }

    let usable = measure::usable_cpus();
    let (pinned, pinning) = if usable < 2 {
        (false, format!("none: only {usable} usable CPU"))
    } else {
        // Envoy's CPU must be usable too: the main thread visits it to start each Envoy.
        match measure::pin_main_thread(ENVOY_CPU).and_then(|()| measure::pin_self(LOAD_CPU)) {
            Ok(()) => (
                true,
                format!(
                    "Envoy (all threads) on CPU {ENVOY_CPU}; wrk, the upstream and the bench runner on CPU \
                     {LOAD_CPU} (taskset)"
                ),
            ),
            Err(e) => (false, format!("none, everything unpinned: {e}")),
        }
    };

    let dir = tempfile::Builder::new()
        .prefix("bench-")
        .tempdir()
        .map_err(|e| format!("temporary directory: {e}"))?;
    let upstream = BackgroundServer::spawn(([127, 0, 0, 1], 0).into(), "bench upstream", |_req| async {
        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok\n"))))
    });
    let oauth = OAuthServer::start();
    oauth.add_client(Client::new(chain::PHANTOM_CLIENT.0, chain::PHANTOM_CLIENT.1, ""));
    oauth.set_token_ttl(3600);

    let mut bench = Bench {
        upstream: upstream.addr(),
        oauth,
        tokens: Tokens::new(dir.path()),
        dir: dir.path().to_owned(),
        pinned,
        secs: opts.secs,
        warmup: opts.warmup,
    };
    let set_size = if opts.quick { 1000 } else { 2000 };
    let minting = Instant::now();
    for v in &selected {
        if let Load::Unique(alg) = v.load {
            bench.tokens.mint_set(alg, set_size)?;
        }
    }
    eprintln!("bench: minted token sets in {:.1} s", minting.elapsed().as_secs_f64());

    let mut samples: BTreeMap<&'static str, Vec<Sample>> = BTreeMap::new();
    let mut failures: BTreeMap<&'static str, String> = BTreeMap::new();
    for round in 0..opts.rounds {
        // Interleaved, and the order rotated each round, so that drift hits every variant alike.
        let n = selected.len();
        for v in (0..n).map(|i| &selected[(i + round) % n]) {
            match window::run_once(v, &mut bench) {
                Ok(s) => {
                    eprintln!(
                        "[round {}/{}] {:<28} {:>8.0} req/s  p99 {:>6.2} ms  {:>7.1} µs CPU/req  errors {}/{}",
                        round + 1,
                        opts.rounds,
                        v.id,
                        s.rps,
                        s.p99_ms,
                        s.cpu_us,
                        s.bad_status,
                        s.socket_errors
                    );
                    samples.entry(v.id).or_default().push(s);
                }
                Err(e) => {
                    eprintln!("[round {}/{}] {}: FAILED: {e}", round + 1, opts.rounds, v.id);
                    failures.entry(v.id).or_insert(e);
                }
            }
        }
    }

    let mut results: Results = BTreeMap::new();
    for v in &selected {
        let summary = samples.get(v.id).and_then(|s| report::summarise(s));
        let entry = match summary {
            Some(s) => Ok(s),
            None => Err(failures.remove(v.id).unwrap_or_else(|| "not run".into())),
        };
        results.insert(v.id, entry);
    }
    let verify_secs = if opts.quick { 0.5 } else { 2.0 };
    let verify = verify::run(verify_secs, pinned.then_some(ENVOY_CPU));
    if let Err(e) = &verify {
        eprintln!("bench: pure-Rust checks in wasm: FAILED: {e}");
    }
    let complete = results.values().all(Result::is_ok) && failures.is_empty() && verify.is_ok();

    let example_script = bench.dir.join("<variant>.lua");
    let cpu = pinned.then_some(LOAD_CPU);
    let wrk_command = load::command("127.0.0.1:<port>", &example_script, opts.secs, cpu);
    let meta = Meta {
        date: date(),
        mode: format!(
            "{} ({} round(s) x {} s per variant, {} s warm-up, variants interleaved)",
            if opts.quick { "quick" } else { "full" },
            opts.rounds,
            opts.secs,
            opts.warmup
        ),
        machine: measure::machine(usable),
        envoy: envoy_version,
        wrk,
        wrk_command: wrk_command.join(" "),
        pinning,
        method: window::method_notes(&bench),
        wasm_sizes,
        verify,
    };
    let markdown = report::render(&meta, &selected, &results);
    println!("{markdown}");
    write(&opts.out, &markdown)?;
    eprintln!("bench: wrote {}", opts.out.display());
    if !failures.is_empty() {
        eprintln!("bench: some windows failed: {:?}", failures.keys().collect::<Vec<_>>());
    }
    Ok(complete)
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}
