//! Medians over the rounds, ratios, the targets of the issue, and the markdown report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::chain::BUNDLE_MODULE;
use crate::variants::Variant;
use crate::verify::{self, VerifyTimes};

/// One measured window of one variant.
#[derive(Debug, Clone)]
pub struct Sample {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Envoy CPU time (all threads, user + system) per request, µs.
    pub cpu_us: f64,
    /// Envoy CPU time over wall time during the window (1.0: one core busy).
    pub cpu_util: f64,
    /// CPU time other processes took on Envoy's CPU during the window, over wall time (pinned
    /// runs only).
    pub others_util: Option<f64>,
    pub rss_mib: f64,
    /// From spawning Envoy to admin `/ready` answering 200.
    pub ready_ms: f64,
    pub bad_status: u64,
    pub socket_errors: u64,
    /// Which path the requests took (counters).
    pub path: String,
}

/// The medians of a variant's samples.
#[derive(Debug, Clone)]
pub struct Summary {
    pub rounds: usize,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub cpu_us: f64,
    /// The lowest and highest Envoy CPU per request over the rounds: how far the median can be
    /// trusted, so two rows closer than this are not told apart.
    pub cpu_us_range: (f64, f64),
    pub cpu_util: f64,
    pub others_util: Option<f64>,
    pub rss_mib: f64,
    pub ready_ms: f64,
    pub bad_status: u64,
    pub socket_errors: u64,
    pub path: String,
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

pub fn summarise(samples: &[Sample]) -> Option<Summary> {
    let last = samples.last()?;
    let m = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    Some(Summary {
        rounds: samples.len(),
        rps: m(|s| s.rps),
        p50_ms: m(|s| s.p50_ms),
        p99_ms: m(|s| s.p99_ms),
        cpu_us: m(|s| s.cpu_us),
        cpu_us_range: samples
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), s| {
                (low.min(s.cpu_us), high.max(s.cpu_us))
            }),
        cpu_util: m(|s| s.cpu_util),
        others_util: samples
            .iter()
            .map(|s| s.others_util)
            .collect::<Option<Vec<f64>>>()
            .map(median),
        rss_mib: m(|s| s.rss_mib),
        ready_ms: m(|s| s.ready_ms),
        bad_status: samples.iter().map(|s| s.bad_status).sum(),
        socket_errors: samples.iter().map(|s| s.socket_errors).sum(),
        path: last.path.clone(),
    })
}

/// How the run was made, for the report's header.
pub struct Meta {
    pub date: String,
    pub mode: String,
    pub machine: String,
    pub envoy: String,
    pub wrk: String,
    pub wrk_command: String,
    pub pinning: String,
    pub method: Vec<String>,
    pub wasm_sizes: Vec<(String, Option<u64>)>,
    pub verify: Result<VerifyTimes, String>,
}

/// Everything measured: per variant id, its summary or why it has none.
pub type Results = BTreeMap<&'static str, Result<Summary, String>>;

fn ok<'a>(results: &'a Results, id: &str) -> Option<&'a Summary> {
    results.get(id).and_then(|r| r.as_ref().ok())
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}x", a / b)
}

/// The whole report, in markdown.
pub fn render(meta: &Meta, variants: &[Variant], results: &Results) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# make bench: results\n");
    let _ = writeln!(md, "- date: {}", meta.date);
    let _ = writeln!(md, "- mode: {}", meta.mode);
    let _ = writeln!(md, "- machine: {}", meta.machine);
    let _ = writeln!(md, "- Envoy: {}", meta.envoy);
    let _ = writeln!(md, "- load generator: {}: `{}`", meta.wrk, meta.wrk_command);
    let _ = writeln!(md, "- pinning: {}", meta.pinning);
    for line in &meta.method {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(md, "\n## Variants (medians)\n");
    md.push_str(&table(variants, results));
    let _ = writeln!(
        md,
        "\n`x bare`, `x ref`: throughput (req/s) relative to bare Envoy and to the reference (the \
         native equivalent, or the chain the variant extends). `+CPU µs`: Envoy CPU per request over \
         bare Envoy's. `its range`: the lowest and highest Envoy CPU per request over the rounds; rows \
         closer than their ranges are not told apart by this run. `Envoy CPU`: Envoy's CPU time over wall time in the window (100% = its core \
         saturated; lower means Envoy waited for the load side, or other processes took its CPU). \
         `others on Envoy's CPU`: busy time of Envoy's CPU (/proc/stat) not spent by Envoy, over wall \
         time: what other processes took from it during the window; a high value makes the row's \
         throughput and latency unreliable (CPU per request much less so). `errors`: answers >= 400 / socket \
         errors, summed over the rounds; a row with errors did not measure what it claims."
    );
    let _ = writeln!(md, "\n## Path taken (counters after the last round)\n");
    for v in variants {
        if let Some(s) = ok(results, v.id).filter(|s| !s.path.is_empty()) {
            let _ = writeln!(md, "- {}: {}", v.label, s.path);
        }
    }
    let _ = writeln!(md, "\n## Targets\n");
    let _ = writeln!(md, "| target | measured | verdict |\n|---|---|---|");
    for t in targets(results, &meta.wasm_sizes, meta.verify.as_ref().ok()) {
        let _ = writeln!(md, "| {} | {} | {} |", t.0, t.1, t.2);
    }
    let _ = writeln!(md, "\n## Pure-Rust signature checks in wasm\n");
    match &meta.verify {
        Ok(v) => {
            let _ = writeln!(
                md,
                "| algorithm | µs per verify | its range | verifies timed |\n|---|---:|---:|---:|"
            );
            for t in &v.per_alg {
                let _ = writeln!(
                    md,
                    "| {} | {:.1} | {:.1}–{:.1} | {} |",
                    t.alg, t.median_us, t.fastest_us, t.slowest_us, t.verifies
                );
            }
            if let Some(others) = v.others_util {
                let _ = writeln!(
                    md,
                    "\nOther processes took {:.0}% of that CPU while the checks ran (as `others on Envoy's CPU` \
                     above: a high value makes these times unreliable).",
                    100.0 * others
                );
            }
            let _ = writeln!(
                md,
                "\n`Jwt::verify` without host crypto, one token at a time, in `{}` (`tests/verify-bench`: \
                 the modules' release settings and `wasm-opt` flags) under {} with `--no-liftoff` (every \
                 function compiled by TurboFan up front, as Envoy's V8 does), on Envoy's CPU after the \
                 windows; the median of the medians of three node processes (five batches each, after \
                 a warm-up), and the fastest and slowest batch of any. Keys and tokens: RFC 7515 A.2 \
                 (RSA 2048), A.3 (P-256), RFC 8037 A.1's Ed25519 key.",
                verify::WASM,
                v.runtime
            );
        }
        Err(e) => {
            let _ = writeln!(md, "not measured: {}", one_line(e));
        }
    }
    let _ = writeln!(md, "\n## Module sizes\n");
    let _ = writeln!(md, "| module | bytes | KB |\n|---|---:|---:|");
    for (name, size) in &meta.wasm_sizes {
        match size {
            Some(b) => {
                let _ = writeln!(md, "| {name}.wasm | {b} | {:.0} |", *b as f64 / 1000.0);
            }
            None => {
                let _ = writeln!(md, "| {name}.wasm | not built | |");
            }
        }
    }
    let _ = writeln!(
        md,
        "\n`{BUNDLE_MODULE}.wasm` holds all five filters: the full chain's \"one module\" row loads it \
         for every plugin with one `vm_config` (one `vm_id`), so Envoy runs one VM per thread for the \
         chain instead of one per filter (`envoy/gateway-bundle.yaml`); the \"one plugin\" row runs them \
         all in one plugin, its `chain` root (`envoy/gateway-chain.yaml`). The per-module size target is \
         about the single-filter modules."
    );
    md
}

fn table(variants: &[Variant], results: &Results) -> String {
    let mut md = String::from(
        "| variant | rounds | req/s | x bare | x ref | p50 ms | p99 ms | Envoy CPU µs/req | its range | +CPU µs | Envoy CPU | \
         others on Envoy's CPU | RSS MiB | ready ms | errors |\n|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let bare = ok(results, "bare");
    for v in variants {
        let Some(result) = results.get(v.id) else {
            continue;
        };
        let s = match result {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(md, "| {} | 0 | failed: {} |||||||||||||", v.label, one_line(e));
                continue;
            }
        };
        let vs_bare = bare.map_or("-".into(), |b| ratio(s.rps, b.rps));
        let extra_cpu = bare.map_or("-".into(), |b| format!("{:+.1}", s.cpu_us - b.cpu_us));
        let vs_ref = v
            .reference
            .and_then(|r| ok(results, r).map(|rs| format!("{} ({r})", ratio(s.rps, rs.rps))))
            .unwrap_or_else(|| "-".into());
        let others = s.others_util.map_or("-".into(), |o| format!("{:.0}%", 100.0 * o));
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {vs_bare} | {vs_ref} | {:.2} | {:.2} | {:.1} | {:.1}–{:.1} | {extra_cpu} | {:.0}% | {others} | {:.1} | {:.0} | {} / {} |",
            v.label,
            s.rounds,
            s.rps,
            s.p50_ms,
            s.p99_ms,
            s.cpu_us,
            s.cpu_us_range.0,
            s.cpu_us_range.1,
            100.0 * s.cpu_util,
            s.rss_mib,
            s.ready_ms,
            s.bad_status,
            s.socket_errors
        );
    }
    md
}

fn one_line(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default();
    first.chars().take(160).collect::<String>().replace('|', "/")
}

/// `(target, measured, verdict)` rows.
pub fn targets(
    results: &Results,
    wasm: &[(String, Option<u64>)],
    verify: Option<&VerifyTimes>,
) -> Vec<(String, String, &'static str)> {
    let mut rows = Vec::new();
    let verdict = |met: bool| if met { "met" } else { "missed" };
    // Throughput is the targets' metric; Envoy CPU per request gives the ratio Envoy would reach
    // with its core to itself, so it is shown too, and a disagreement is called out.
    let mut throughput = |what: &str, ours: &str, theirs: &str, min: f64| {
        let row = match (ok(results, ours), ok(results, theirs)) {
            (Some(a), Some(b)) => {
                let by_rps = a.rps / b.rps;
                let by_cpu = b.cpu_us / a.cpu_us;
                let verdict = match (by_rps >= min, by_cpu >= min) {
                    (true, true) => "met",
                    (true, false) => "met (missed by CPU/request)",
                    (false, true) => "missed (met by CPU/request)",
                    (false, false) => "missed",
                };
                (
                    format!(
                        "{by_rps:.2}x by req/s ({:.0} vs {:.0}); {by_cpu:.2}x by Envoy CPU/request ({:.1} vs {:.1} µs)",
                        a.rps, b.rps, a.cpu_us, b.cpu_us
                    ),
                    verdict,
                )
            }
            _ => ("-".into(), "not measured"),
        };
        rows.push((format!("{what} >= {min}x"), row.0, row.1));
    };
    throughput(
        "jwt-auth unique tokens RS256 vs native jwt_authn",
        "jwt-rs256-unique-host",
        "native-jwt-rs256-unique",
        1.0,
    );
    throughput(
        "jwt-auth unique tokens ES256 vs native jwt_authn",
        "jwt-es256-unique-host",
        "native-jwt-es256-unique",
        1.0,
    );
    throughput(
        "jwt-auth repeated token vs native jwt_authn without cache",
        "jwt-repeated",
        "native-jwt-repeated",
        1.2,
    );
    throughput(
        "jwt-auth repeated token vs native jwt_authn with jwt_cache_config",
        "jwt-repeated",
        "native-jwt-repeated-cache",
        1.0,
    );
    for (id, chain) in CHAINS {
        throughput(&format!("{chain} (cached path) vs bare Envoy"), id, "bare", 0.6);
    }

    let bare = ok(results, "bare");
    let extra_cpu = |what: &str, id: &str, max_us: f64| {
        let row = match (ok(results, id), bare) {
            (Some(s), Some(b)) => {
                let extra = s.cpu_us - b.cpu_us;
                (
                    format!("{extra:.1} µs ({:.1} - {:.1})", s.cpu_us, b.cpu_us),
                    verdict(extra <= max_us),
                )
            }
            _ => ("-".into(), "not measured"),
        };
        (format!("{what} <= {max_us} µs"), row.0, row.1)
    };
    rows.push(extra_cpu(
        "phantom-token cache hit: extra Envoy CPU per request over bare",
        "phantom-hit",
        25.0,
    ));
    for (alg, id, max_us) in [
        ("RS256", "jwt-rs256-unique-wasm", 300.0),
        ("EdDSA", "jwt-eddsa-unique", 150.0),
    ] {
        rows.push(match verify.and_then(|v| v.us(alg)) {
            Some(us) => (
                format!("pure Rust {alg} per verify in wasm <= {max_us} µs"),
                format!("{us:.1} µs (V8 under node, one verify at a time)"),
                verdict(us <= max_us),
            ),
            None => (
                format!("pure Rust {alg} per verify in wasm <= {max_us} µs"),
                "-".into(),
                "not measured",
            ),
        });
        rows.push(extra_cpu(
            &format!("pure Rust {alg} per verify in Envoy (CPU/request over bare, an upper bound: with the filter's own work)"),
            id,
            max_us,
        ));
    }

    // The size target is per filter module; the bundle holds all five.
    let filter_modules: Vec<&(String, Option<u64>)> = wasm.iter().filter(|(n, _)| n != BUNDLE_MODULE).collect();
    let largest = filter_modules
        .iter()
        .filter_map(|(n, s)| s.map(|s| (n, s)))
        .max_by_key(|(_, s)| *s);
    rows.push(match largest {
        Some((name, size)) => (
            "each filter's .wasm <= 300 KB".into(),
            format!("largest {name}.wasm {:.0} KB", size as f64 / 1000.0),
            verdict(filter_modules.iter().all(|(_, s)| s.is_some_and(|s| s <= 300_000))),
        ),
        None => ("each filter's .wasm <= 300 KB".into(), "-".into(), "not measured"),
    });

    for (id, chain) in CHAINS {
        let full = ok(results, id);
        let what = format!("Envoy RSS with the {chain} <= bare + 60 MiB");
        rows.push(match (full, bare) {
            (Some(f), Some(b)) => {
                let extra = f.rss_mib - b.rss_mib;
                (
                    what,
                    format!("+{extra:.1} MiB ({:.1} vs {:.1})", f.rss_mib, b.rss_mib),
                    verdict(extra <= 60.0),
                )
            }
            _ => (what, "-".into(), "not measured"),
        });
        let what = format!("time to ready with the {chain} <= 1.5 s");
        rows.push(match full {
            Some(f) => (what, format!("{:.0} ms", f.ready_ms), verdict(f.ready_ms <= 1500.0)),
            None => (what, "-".into(), "not measured"),
        });
    }
    rows
}

/// The full chain's variants, with how the targets name them.
const CHAINS: [(&str, &str); 3] = [
    ("full-chain", "full chain, separate modules"),
    ("full-chain-bundle", "full chain, one module"),
    ("full-chain-plugin", "full chain, one plugin"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cpu_us: f64) -> Sample {
        Sample {
            rps: 1000.0,
            p50_ms: 1.0,
            p99_ms: 2.0,
            cpu_us,
            cpu_util: 1.0,
            others_util: None,
            rss_mib: 60.0,
            ready_ms: 100.0,
            bad_status: 0,
            socket_errors: 1,
            path: String::new(),
        }
    }

    #[test]
    fn a_summary_gives_the_median_and_the_range_of_the_cpu_per_request() {
        let s = summarise(&[sample(63.5), sample(61.7), sample(65.7)]).unwrap();
        assert_eq!((s.cpu_us, s.cpu_us_range), (63.5, (61.7, 65.7)));
        assert_eq!((s.rounds, s.socket_errors), (3, 3));
        assert!(summarise(&[]).is_none());
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }
}
