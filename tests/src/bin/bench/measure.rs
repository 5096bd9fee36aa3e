//! What is measured around a load window, and facts about the machine: CPU pinning, CPU time and
//! RSS of Envoy (from `/proc`), the counters that show a variant took the path it claims to.

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::envoy::taskset;
use harness::Envoy;

/// Pins every thread of this process (and so the servers it runs and the processes it starts) to
/// `cpus`, with `taskset`.
pub fn pin_self(cpus: &str) -> Result<(), String> {
    taskset(&["--all-tasks", "--pid", "--cpu-list", cpus], std::process::id())
}

/// Pins only this process's main thread (whose children inherit it): to start Envoy on its own
/// CPU, then come back.
pub fn pin_main_thread(cpus: &str) -> Result<(), String> {
    taskset(&["--pid", "--cpu-list", cpus], std::process::id())
}

/// Busy time of CPU `n` so far (all but idle and iowait), from `/proc/stat` (10 ms ticks).
pub fn cpu_busy(n: &str) -> Option<Duration> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let name = format!("cpu{n}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
    // user nice system idle iowait irq softirq steal (guest time is counted in user already).
    let ticks: u64 = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    Some(Duration::from_millis(ticks * 10))
}

/// CPUs this process may run on (its affinity and cgroup quota): call it before pinning.
pub fn usable_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// `<model name>, <n> logical CPUs (<usable> usable), Linux <release>`.
pub fn machine(usable: usize) -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let processors = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {processors} logical CPUs ({usable} usable), Linux {}",
        kernel.trim()
    )
}

/// `envoy --version`, shortened to `<version>/<build type>/<TLS library>`.
pub fn envoy_version() -> String {
    let bin = harness::paths::envoy_bin();
    let output = Command::new(&bin).arg("--version").stdin(Stdio::null()).output();
    let text = output.map_or_else(|e| e.to_string(), |o| String::from_utf8_lossy(&o.stdout).into_owned());
    let text = text.trim();
    text.rsplit_once("version: ")
        .and_then(|(_, v)| v.split_once('/').map(|(_, rest)| rest.to_owned()))
        .unwrap_or_else(|| text.to_owned())
}

/// The size of each filter module, in bytes (`None`: not built).
pub fn wasm_sizes(filters: &[&str]) -> Vec<(String, Option<u64>)> {
    let dir = harness::paths::wasm_dir();
    filters
        .iter()
        .map(|f| {
            let path = dir.join(format!("{f}.wasm"));
            ((*f).to_owned(), fs::metadata(path).ok().map(|m| m.len()))
        })
        .collect()
}

/// The counters that show which path a variant took: jwt-auth's cache hits and who verified the
/// signatures, native jwt_authn's cache, phantom-token's cache.
pub fn path_taken(envoy: &Envoy) -> String {
    let stats = envoy.stats();
    let get = |name: &str| -> u64 {
        stats
            .lines()
            .filter_map(|l| l.split_once(": "))
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut parts = Vec::new();
    let jwt = |c: &str| get(&format!("wasmcustom.apisec.jwt_auth.{c}"));
    let (hit, miss) = (jwt("cache_hit"), jwt("cache_miss"));
    if hit + miss > 0 {
        parts.push(format!(
            "jwt-auth cache hits {}, verified by host {}, in wasm {}",
            percent(hit, hit + miss),
            jwt("verified_by_host"),
            jwt("verified_in_wasm")
        ));
    }
    let native = |c: &str| get(&format!("http.gateway.jwt_authn.{c}"));
    let (hit, miss) = (native("jwt_cache_hit"), native("jwt_cache_miss"));
    if hit + miss > 0 {
        parts.push(format!("jwt_authn cache hits {}", percent(hit, hit + miss)));
    }
    let phantom = |c: &str| get(&format!("wasmcustom.apisec.phantom_token.{c}"));
    let (hit, miss) = (phantom("cache_hit"), phantom("cache_miss"));
    if hit + miss > 0 {
        parts.push(format!(
            "phantom-token cache hits {}, introspections {}",
            percent(hit, hit + miss),
            phantom("introspection_active")
        ));
    }
    parts.join("; ")
}

fn percent(part: u64, whole: u64) -> String {
    format!("{:.1}%", 100.0 * part as f64 / whole.max(1) as f64)
}
