//! The pure-Rust signature checks timed one verify at a time in wasm, which Envoy's CPU a request
//! can only bound from above: `tests/verify-bench`, built for `wasm32-wasip1` with the modules'
//! release settings and `wasm-opt` flags (`make bench` puts it at [`WASM`]), run under node's V8
//! with every function compiled by TurboFan up front, as Envoy's V8 does. It runs after the Envoy
//! windows, on Envoy's CPU.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::envoy::{proc_stat_cpu_time, ProcCpu};

use crate::measure;

/// Where `make bench` puts the optimised program, from the workspace root.
pub const WASM: &str = "target/bench/verify_bench.wasm";
const RUNNER: &str = "tests/verify-bench/run.mjs";

pub struct VerifyTimes {
    /// The V8 that ran it: node's version, and V8's.
    pub runtime: String,
    pub per_alg: Vec<AlgTime>,
    /// Busy time of the CPU it ran on that was not its own, over wall time (when it was pinned):
    /// what other processes took from it, as for the Envoy windows.
    pub others_util: Option<f64>,
}

/// One algorithm's batches, in µs per verify.
#[derive(Debug, PartialEq)]
pub struct AlgTime {
    pub alg: String,
    pub median_us: f64,
    pub fastest_us: f64,
    pub slowest_us: f64,
    pub verifies: u64,
}

impl VerifyTimes {
    pub fn us(&self, alg: &str) -> Option<f64> {
        self.per_alg.iter().find(|t| t.alg == alg).map(|t| t.median_us)
    }
}

/// node processes the checks are timed in: a process's batches agree closely with each other,
/// but where V8 happened to place the code moves a whole process's times by a few percent.
const PROCESSES: usize = 3;

/// Times each algorithm for `secs` seconds in each of [`PROCESSES`] node processes, on `cpu` when
/// given: the median of their medians, and the fastest and slowest batch of any.
pub fn run(secs: f64, cpu: Option<&str>) -> Result<VerifyTimes, String> {
    let root = harness::paths::workspace_root();
    let wasm: PathBuf = root.join(WASM);
    if !wasm.is_file() {
        return Err(format!("{WASM} is not built: run `make bench`"));
    }
    let runtime = node(&["-p", "`node ${process.versions.node}, V8 ${process.versions.v8}`"])?;
    let busy_before = cpu.and_then(measure::cpu_busy);
    let children_before = children_cpu_time();
    let started = Instant::now();
    let runs = (0..PROCESSES)
        .map(|_| run_once(&root, &wasm, secs, cpu))
        .collect::<Result<Vec<_>, _>>()?;
    let wall = started.elapsed().as_secs_f64().max(1e-9);
    // node and every thread it starts ran on `cpu` only, and each run has reaped its process.
    let own = children_cpu_time().saturating_sub(children_before);
    let others_util = cpu
        .and_then(measure::cpu_busy)
        .zip(busy_before)
        .map(|(after, before)| after.saturating_sub(before).saturating_sub(own).as_secs_f64() / wall);
    Ok(VerifyTimes {
        runtime,
        per_alg: combine(&runs)?,
        others_util,
    })
}

fn run_once(
    root: &std::path::Path,
    wasm: &std::path::Path,
    secs: f64,
    cpu: Option<&str>,
) -> Result<Vec<AlgTime>, String> {
    let mut command = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["--cpu-list", cpu, "node"]);
            c
        }
        None => Command::new("node"),
    };
    let output = command
        .args(["--no-warnings", "--no-liftoff"])
        .arg(root.join(RUNNER))
        .arg(wasm)
        .args(["--secs", &secs.to_string()])
        .output()
        .map_err(|e| format!("node: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "verify-bench failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    parse(&String::from_utf8_lossy(&output.stdout))
}

/// Per algorithm of the first run: the median of the runs' medians, the fastest and slowest batch
/// of any run, and every verify timed. Every run must have timed the same algorithms.
fn combine(runs: &[Vec<AlgTime>]) -> Result<Vec<AlgTime>, String> {
    let Some(first) = runs.first() else {
        return Err("no run".into());
    };
    first
        .iter()
        .map(|t| {
            let same: Vec<&AlgTime> = runs
                .iter()
                .map(|run| run.iter().find(|other| other.alg == t.alg))
                .collect::<Option<_>>()
                .ok_or_else(|| format!("{} missing from a run", t.alg))?;
            let mut medians: Vec<f64> = same.iter().map(|o| o.median_us).collect();
            medians.sort_by(f64::total_cmp);
            Ok(AlgTime {
                alg: t.alg.clone(),
                median_us: medians.get(medians.len() / 2).copied().unwrap_or(t.median_us),
                fastest_us: same.iter().map(|o| o.fastest_us).fold(f64::INFINITY, f64::min),
                slowest_us: same.iter().map(|o| o.slowest_us).fold(0.0, f64::max),
                verifies: same.iter().map(|o| o.verifies).sum(),
            })
        })
        .collect()
}

/// CPU time (user + system) of this process's reaped children so far.
fn children_cpu_time() -> Duration {
    proc_stat_cpu_time("/proc/self/stat", ProcCpu::ReapedChildren)
}

fn node(args: &[&str]) -> Result<String, String> {
    let out = Command::new("node")
        .args(args)
        .output()
        .map_err(|e| format!("node: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `<alg> <median µs> <verifies> <fastest batch µs> <slowest batch µs>` lines.
fn parse(stdout: &str) -> Result<Vec<AlgTime>, String> {
    stdout
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let us = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
            match (
                fields.first(),
                us(1),
                fields.get(2).and_then(|f| f.parse().ok()),
                us(3),
                us(4),
            ) {
                (Some(alg), Some(median_us), Some(verifies), Some(fastest_us), Some(slowest_us))
                    if fields.len() == 5 =>
                {
                    Ok(AlgTime {
                        alg: (*alg).to_owned(),
                        median_us,
                        fastest_us,
                        slowest_us,
                        verifies,
                    })
                }
                _ => Err(format!("verify-bench printed {line:?}")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{combine, parse, AlgTime};

    #[test]
    fn reads_one_line_per_algorithm() {
        let times = parse("RS256 95.3 16759 94.8 97.0\nEdDSA 166.0 9639 165.1 170.2\n").unwrap();
        let rs256 = AlgTime {
            alg: "RS256".into(),
            median_us: 95.3,
            fastest_us: 94.8,
            slowest_us: 97.0,
            verifies: 16759,
        };
        assert_eq!(times.first(), Some(&rs256));
        assert_eq!(
            times.get(1).map(|t| (t.alg.as_str(), t.median_us, t.slowest_us)),
            Some(("EdDSA", 166.0, 170.2))
        );
        assert_eq!(times.len(), 2);
        assert!(parse("RS256 fast\n").is_err());
        // The older three-field lines: a stale build of verify-bench.
        assert!(parse("RS256 95.3 16759\n").is_err());
    }

    #[test]
    fn combines_processes_by_their_medians() {
        let runs = [
            "RS256 95.0 100 94.0 96.0\nEdDSA 140.0 50 139.0 141.0\n",
            "RS256 99.0 100 98.0 99.5\nEdDSA 151.0 50 150.0 152.0\n",
            "RS256 96.0 100 95.5 97.0\nEdDSA 141.0 50 140.5 141.5\n",
        ]
        .map(|r| parse(r).unwrap());
        let combined = combine(&runs).unwrap();
        let eddsa = AlgTime {
            alg: "EdDSA".into(),
            median_us: 141.0,
            fastest_us: 139.0,
            slowest_us: 152.0,
            verifies: 150,
        };
        assert_eq!(combined.get(1), Some(&eddsa));
        assert_eq!(combined.first().map(|t| t.median_us), Some(96.0));
        let missing = [
            parse("RS256 95.0 100 94.0 96.0\n").unwrap(),
            parse("EdDSA 140.0 50 139.0 141.0\n").unwrap(),
        ];
        assert!(combine(&missing).is_err());
    }
}
