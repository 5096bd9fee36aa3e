//! A real Envoy process running a given bootstrap.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::config::{GatewayConfig, GENERATION_PROBE_SOURCE, LISTENER_NAME};
use crate::http::{self, Request};
use crate::paths::envoy_bin;

/// How often [`Envoy::start`] checks whether Envoy is ready.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long [`Envoy::start`] waits for Envoy to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Envoy::push_listener`] waits for Envoy to take or refuse an update.
const PUSH_TIMEOUT: Duration = Duration::from_secs(15);
/// The listener file of an Envoy started by [`Envoy::start_lds`], in its directory.
const LDS_FILE: &str = "lds.json";

/// Envoy's counter of wasm VMs created (a VM that fails and is replaced adds one).
pub const VMS_CREATED: &str = "wasm.envoy.wasm.runtime.v8.created";

/// A running Envoy. Killed (and reaped) on drop; if the thread is panicking
/// at that point, Envoy's log is printed to stderr first.
pub struct Envoy {
    child: Child,
    dir: TempDir,
    admin: SocketAddr,
    listener: SocketAddr,
    /// The generation of the listener file of an Envoy started by [`Envoy::start_lds`]; else 0.
    lds_generation: AtomicU64,
}

impl std::fmt::Debug for Envoy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envoy")
            .field("pid", &self.child.id())
            .field("dir", &self.dir.path())
            .field("admin", &self.admin)
            .field("listener", &self.listener)
            .field("lds_generation", &self.lds_generation)
            .finish()
    }
}

/// Everything Envoy wrote: its log (stderr), then stdout if any.
fn collect_log(dir: &Path) -> String {
    let mut out = String::new();
    for (file, label) in [("envoy.log", None), ("stdout.txt", Some("stdout"))] {
        let Ok(bytes) = fs::read(dir.join(file)) else {
            continue;
        };
        if bytes.is_empty() {
            continue;
        }
        if let Some(label) = label {
            out.push_str(&format!("--- envoy {label} ---\n"));
        }
        out.push_str(&String::from_utf8_lossy(&bytes));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// `GET path` on the admin interface; `(status, body)`.
fn admin_get(admin: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let resp = http::send(admin, &Request::get(path))?;
    Ok((resp.status, resp.text()))
}

/// Finds the bound address of listener `name` in `/listeners?format=json`.
fn listener_address(listeners_json: &str, name: &str) -> Result<SocketAddr, String> {
    let doc: serde_json::Value = serde_json::from_str(listeners_json)
        .map_err(|e| format!("admin /listeners is not JSON ({e}): {listeners_json}"))?;
    let statuses = doc
        .get("listener_statuses")
        .and_then(|v| v.as_array())
        .ok_or_else(|| format!("no listener_statuses in admin /listeners: {listeners_json}"))?;
    let status = statuses
        .iter()
        .find(|s| s.get("name").and_then(|n| n.as_str()) == Some(name))
        .ok_or_else(|| format!("listener {name:?} not in admin /listeners: {listeners_json}"))?;
    let sock = status
        .get("local_address")
        .and_then(|a| a.get("socket_address"))
        .ok_or_else(|| format!("listener {name:?} has no socket address: {listeners_json}"))?;
    let ip = sock
        .get("address")
        .and_then(|a| a.as_str())
        .ok_or_else(|| format!("listener {name:?} has no IP: {listeners_json}"))?;
    let port = sock
        .get("port_value")
        .and_then(|p| p.as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| format!("listener {name:?} has no port: {listeners_json}"))?;
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|e| format!("listener {name:?} has a bad IP {ip:?}: {e}"))?;
    Ok(SocketAddr::new(ip, port))
}

impl Envoy {
    /// Writes `bootstrap` to `envoy.json` in a fresh temporary directory and
    /// runs Envoy on it with `concurrency` workers; returns once admin
    /// `/ready` answers 200.
    ///
    /// On failure (Envoy exits, or is not ready within 30 s) the error
    /// carries the reason followed by Envoy's full log.
    ///
    /// # Panics
    /// If the Envoy binary is missing (see [`envoy_bin`]) or the temporary
    /// directory cannot be written.
    pub fn start(bootstrap: &serde_json::Value, concurrency: u32) -> Result<Envoy, String> {
        let dir = tempfile::Builder::new()
            .prefix("e2e-envoy-")
            .tempdir()
            .expect("create a temporary directory for Envoy");
        let config_path = dir.path().join("envoy.json");
        let text = serde_json::to_string_pretty(bootstrap).expect("serialise the bootstrap");
        fs::write(&config_path, text).expect("write envoy.json");
        let cwd = dir.path().to_path_buf();
        Self::start_in(dir, &config_path, &cwd, &[], concurrency)
    }

    /// Like [`Envoy::start`] with `config`'s bootstrap, but the `gateway` listener comes from a
    /// file Envoy watches, as from a control plane: [`Envoy::push_listener`] changes it while
    /// Envoy runs. Envoy drains a replaced filter chain for `drain_secs` before it removes it.
    ///
    /// # Panics
    /// As [`Envoy::start`].
    pub fn start_lds(config: &GatewayConfig, drain_secs: u32) -> Result<Envoy, String> {
        let dir = tempfile::Builder::new()
            .prefix("e2e-envoy-")
            .tempdir()
            .expect("create a temporary directory for Envoy");
        let lds = dir.path().join("lds");
        fs::create_dir(&lds).expect("create the listener directory");
        write_atomically(&lds.join(LDS_FILE), &config.lds_listeners(1));
        let config_path = dir.path().join("envoy.json");
        let text = serde_json::to_string_pretty(&config.to_lds_bootstrap(&lds.join(LDS_FILE)))
            .expect("serialise the bootstrap");
        fs::write(&config_path, text).expect("write envoy.json");
        let cwd = dir.path().to_path_buf();
        let drain = drain_secs.to_string();
        let envoy = Self::start_in(dir, &config_path, &cwd, &["--drain-time-s", &drain], config.concurrency)?;
        envoy.lds_generation.store(1, Ordering::Relaxed);
        Ok(envoy)
    }

    /// Replaces the `gateway` listener with `config`'s, as a control plane's update would, and
    /// returns once every worker runs the new one. `Err`: Envoy refused the update (its log says
    /// why, e.g. a filter that refused its config), and goes on with the listener it had.
    ///
    /// # Panics
    /// If Envoy was not started by [`Envoy::start_lds`], or neither takes nor refuses the update
    /// within 15 s.
    pub fn push_listener(&self, config: &GatewayConfig) -> Result<(), String> {
        let generation = match self.lds_generation.load(Ordering::Relaxed) {
            0 => panic!("push_listener needs an Envoy started by Envoy::start_lds"),
            current => current + 1,
        };
        let accepted_before = self.counter("listener_manager.lds.update_success");
        let refused_before = self.counter("listener_manager.lds.update_rejected");
        let log_before = self.log().len();
        write_atomically(
            &self.dir.path().join("lds").join(LDS_FILE),
            &config.lds_listeners(generation),
        );
        let deadline = Instant::now() + PUSH_TIMEOUT;
        loop {
            if self.counter("listener_manager.lds.update_rejected") > refused_before {
                let log = self.log();
                return Err(log.get(log_before..).unwrap_or(&log).to_owned());
            }
            if self.counter("listener_manager.lds.update_success") > accepted_before {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Envoy neither took nor refused listener generation {generation} in {PUSH_TIMEOUT:?}. Envoy log:\n{}",
                self.log()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
        self.lds_generation.store(generation, Ordering::Relaxed);
        // Only the filter chains change, so Envoy updates the listener in place, on its socket.
        let listeners = self.admin_get("/listeners?format=json");
        let address = listener_address(&listeners, LISTENER_NAME).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(address, self.listener, "the pushed listener moved to another address");
        // Envoy counts the update when its main thread has it; each worker takes it a moment later.
        // A connection a worker accepts after it took the update gets the new filter chains.
        self.wait_for_workers(config.concurrency, generation, deadline);
        Ok(())
    }

    /// Asks the generation probe until each of the `workers` answered with `generation`. The
    /// kernel spreads connections over the workers; which one answered shows in its connection
    /// counter (nothing else connects while a listener is pushed).
    fn wait_for_workers(&self, workers: u32, generation: u64, deadline: Instant) {
        let source = IpAddr::V4(GENERATION_PROBE_SOURCE);
        let want = generation.to_string();
        let mut current = vec![false; workers as usize];
        while current.contains(&false) {
            let before = self.worker_connections(workers);
            let answer = http::send_from(source, self.listener, &Request::get("/"));
            let after = self.worker_connections(workers);
            let answered = answer.as_ref().is_ok_and(|a| a.status == 200 && a.text() == want);
            if answered {
                for (worker, (b, a)) in before.iter().zip(&after).enumerate() {
                    if a > b {
                        current[worker] = true;
                    }
                }
            }
            if !current.contains(&false) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the workers did not all run listener generation {generation} within {PUSH_TIMEOUT:?} \
                 (running it: {current:?}; last probe: {answer:?}). Envoy log:\n{}",
                self.log()
            );
            if !answered {
                std::thread::sleep(POLL_INTERVAL);
            }
        }
    }

    /// Connections each worker accepted on the `gateway` listener so far.
    fn worker_connections(&self, workers: u32) -> Vec<u64> {
        let stats = self.stats();
        (0..workers)
            .map(|worker| {
                let name = format!("listener.127.0.0.1_0.worker_{worker}.downstream_cx_total: ");
                stats
                    .lines()
                    .find_map(|line| line.strip_prefix(&name))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Runs Envoy on a config file of the project (e.g. `envoy/gateway.yaml`), from `cwd` so that
    /// relative `.wasm` paths resolve; returns once admin `/ready` answers 200.
    ///
    /// # Panics
    /// As [`Envoy::start`].
    pub fn start_file(config_path: &Path, cwd: &Path, concurrency: u32) -> Result<Envoy, String> {
        let dir = tempfile::Builder::new()
            .prefix("e2e-envoy-")
            .tempdir()
            .expect("create a temporary directory for Envoy");
        Self::start_in(dir, config_path, cwd, &[], concurrency)
    }

    fn start_in(
        dir: tempfile::TempDir,
        config_path: &Path,
        cwd: &Path,
        extra_args: &[&str],
        concurrency: u32,
    ) -> Result<Envoy, String> {
        let bin = envoy_bin();
        let admin_path = dir.path().join("admin.txt");
        let stdout = fs::File::create(dir.path().join("stdout.txt")).expect("create stdout.txt");
        // Envoy logs to stderr, which goes straight to envoy.log. Not
        // `--log-path`: Envoy buffers that file and flushes it only every
        // `--file-flush-interval-msec` (10 s by default), so a test reading
        // the log right after a request would not see the request's lines.
        let log = fs::File::create(dir.path().join("envoy.log")).expect("create envoy.log");

        let mut child = Command::new(&bin)
            .current_dir(cwd)
            .arg("-c")
            .arg(config_path)
            .arg("--concurrency")
            .arg(concurrency.to_string())
            .arg("--base-id-path")
            .arg(dir.path().join("base-id"))
            .arg("--use-dynamic-base-id")
            .arg("--admin-address-path")
            .arg(&admin_path)
            .arg("--log-level")
            .arg("info")
            // Access logs (stdout.txt) are written within 50 ms, for tests that read them.
            .arg("--file-flush-interval-msec")
            .arg("50")
            .arg("--disable-hot-restart")
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;

        let deadline = Instant::now() + START_TIMEOUT;
        let admin = loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    return Err(format!(
                        "Envoy exited during startup ({status}). Envoy log:\n{}",
                        collect_log(dir.path())
                    ));
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "cannot poll the Envoy process: {e}. Envoy log:\n{}",
                        collect_log(dir.path())
                    ));
                }
            }
            let ready = fs::read_to_string(&admin_path)
                .ok()
                .and_then(|s| s.trim().parse::<SocketAddr>().ok())
                .filter(|addr| matches!(admin_get(*addr, "/ready"), Ok((200, _))));
            if let Some(addr) = ready {
                break addr;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "Envoy not ready after {START_TIMEOUT:?}. Envoy log:\n{}",
                    collect_log(dir.path())
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        };

        let listener = admin_get(admin, "/listeners?format=json")
            .map_err(|e| format!("admin /listeners failed: {e}"))
            .and_then(|(status, body)| {
                if status == 200 {
                    listener_address(&body, LISTENER_NAME)
                } else {
                    Err(format!("admin /listeners answered {status}: {body}"))
                }
            });
        match listener {
            Ok(listener) => Ok(Envoy {
                child,
                dir,
                admin,
                listener,
                lds_generation: AtomicU64::new(0),
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("{e}\nEnvoy log:\n{}", collect_log(dir.path())))
            }
        }
    }

    /// The Envoy process id (for CPU and memory readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time Envoy has used so far (user + system), from `/proc/<pid>/stat`.
    pub fn cpu_time(&self) -> Duration {
        proc_stat_cpu_time(&format!("/proc/{}/stat", self.pid()), ProcCpu::Own)
    }

    /// Pins every thread of the Envoy process to the CPUs in `cpus` (a `taskset` CPU list such as
    /// `"0"` or `"0,2-3"`); threads Envoy starts later inherit it. For benchmarks: needs the
    /// `taskset` tool (util-linux); the error says why it did not happen.
    pub fn pin_to_cpus(&self, cpus: &str) -> Result<(), String> {
        taskset(&["--all-tasks", "--pid", "--cpu-list", cpus], self.pid())
    }

    /// Envoy's resident set size (`VmRSS` of `/proc/<pid>/status`) in bytes; 0 if unreadable.
    pub fn rss_bytes(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    /// The bound address of listener `gateway`.
    pub fn listener(&self) -> SocketAddr {
        self.listener
    }

    /// The bound address of the admin interface.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The bootstrap file Envoy was started with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("envoy.json")
    }

    /// Everything Envoy has logged so far (at `info` level), up to this
    /// moment: the log is unbuffered.
    pub fn log(&self) -> String {
        collect_log(self.dir.path())
    }

    /// `GET path` on the admin interface; the body as text.
    ///
    /// # Panics
    /// On an I/O error or a non-200 answer.
    pub fn admin_get(&self, path: &str) -> String {
        match admin_get(self.admin, path) {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!("admin {path} answered {status}: {body}"),
            Err(e) => panic!("admin {path} failed: {e}"),
        }
    }

    /// The admin `/stats` page (text format, one `name: value` per line).
    ///
    /// # Panics
    /// If the admin interface does not answer.
    pub fn stats(&self) -> String {
        self.admin_get("/stats")
    }

    /// The value of counter or gauge `name` from `/stats`; 0 if absent.
    ///
    /// # Panics
    /// If the admin interface does not answer.
    pub fn counter(&self, name: &str) -> u64 {
        self.stat(name).unwrap_or(0)
    }

    /// The value of counter or gauge `name` from `/stats`; `None` if Envoy
    /// does not have it (so a test can tell "zero" from "never defined").
    ///
    /// # Panics
    /// If the admin interface does not answer.
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.stats()
            .lines()
            .filter_map(|line| line.split_once(": "))
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.trim().parse().ok())
    }

    /// What went wrong with the wasm VMs, empty when nothing did: a per-plugin `vm_reload` counter
    /// above zero, reload counters for other plugins than `plugins` (the plugin names of the
    /// config), more VMs created than `vms_created_before` ([`VMS_CREATED`] read earlier: a VM that
    /// crashed and was replaced adds one), or a VM failure in the log.
    ///
    /// # Panics
    /// If the admin interface does not answer.
    pub fn vm_failures(&self, plugins: &[String], vms_created_before: u64) -> Vec<String> {
        let mut failures = Vec::new();
        let mut reloads = Vec::new();
        for (name, value) in self.stats().lines().filter_map(|line| line.split_once(": ")) {
            let value = value.trim();
            if !(name.starts_with("wasm.") && name.contains(".vm_reload")) {
                continue;
            }
            if let Some(plugin) = name.strip_prefix("wasm.").and_then(|n| n.strip_suffix(".vm_reload")) {
                reloads.push(plugin.to_owned());
            }
            if value != "0" {
                failures.push(format!("wasm counter {name} = {value}"));
            }
        }
        reloads.sort();
        let mut expected = plugins.to_vec();
        expected.sort();
        if reloads != expected {
            failures.push(format!(
                "wasm reload counters for {reloads:?}, expected one per plugin {expected:?}"
            ));
        }
        let created = self.counter(VMS_CREATED);
        if created != vms_created_before {
            failures.push(format!("{VMS_CREATED}: {vms_created_before} before, {created} now"));
        }
        for line in self.log().lines() {
            // What Envoy logs when a VM traps (a Rust panic is an `unreachable` trap after the
            // panic message): "Function: proxy_on_... failed: Uncaught RuntimeError: unreachable".
            let vm_failure = line.contains("panicked at")
                || line.contains("Uncaught")
                || line.contains("RuntimeError")
                || (line.contains("Function: proxy_") && line.contains("failed"))
                || line.contains("[critical][wasm]");
            if vm_failure {
                failures.push(format!("Envoy log: {line}"));
            }
        }
        failures
    }

    /// The admin `/stats/prometheus` page.
    ///
    /// # Panics
    /// If the admin interface does not answer.
    pub fn prometheus(&self) -> String {
        self.admin_get("/stats/prometheus")
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "===== Envoy log ({}) =====\n{}===== end of Envoy log =====",
                self.dir.path().display(),
                self.log()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `value` to `path` as JSON by a rename, so that a watcher never reads half of it.
fn write_atomically(path: &Path, value: &serde_json::Value) {
    let staged = path.with_extension("staged");
    let text = serde_json::to_string_pretty(value).expect("serialise the listeners");
    fs::write(&staged, text).unwrap_or_else(|e| panic!("write {}: {e}", staged.display()));
    fs::rename(&staged, path).unwrap_or_else(|e| panic!("rename {} to {}: {e}", staged.display(), path.display()));
}

/// Writes `bootstrap` to a temporary `envoy.json` and [`validate`]s it.
///
/// # Panics
/// If the Envoy binary is missing or the temporary file cannot be written.
pub fn validate_bootstrap(bootstrap: &serde_json::Value) -> Result<String, String> {
    let dir = tempfile::Builder::new()
        .prefix("e2e-validate-")
        .tempdir()
        .expect("create a temporary directory for the bootstrap");
    let path = dir.path().join("envoy.json");
    let text = serde_json::to_string_pretty(bootstrap).expect("serialise the bootstrap");
    fs::write(&path, text).expect("write envoy.json");
    validate(&path)
}

/// Runs `envoy --mode validate -c <config_path>`: `Ok(output)` if Envoy
/// accepts the configuration, `Err(output)` if not (stdout and stderr).
///
/// Validation builds the listeners' filter chains, so wasm filters are
/// really loaded: a missing or broken `.wasm` fails validation too.
///
/// # Panics
/// If the Envoy binary is missing (see [`envoy_bin`]).
pub fn validate(config_path: &Path) -> Result<String, String> {
    let bin = envoy_bin();
    // From the workspace root: the project's configs name `.wasm` files relative to it.
    let output = Command::new(&bin)
        .current_dir(crate::paths::workspace_root())
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(config_path)
        .arg("--disable-hot-restart")
        .arg("--use-dynamic-base-id")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!("envoy --mode validate failed ({}):\n{text}", output.status))
    }
}

/// Runs `taskset <args> <pid>` (util-linux): CPU affinity for benchmarks. The error says why it
/// did not happen.
pub fn taskset(args: &[&str], pid: u32) -> Result<(), String> {
    let output = Command::new("taskset")
        .args(args)
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run taskset: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "taskset failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Whose CPU time [`proc_stat_cpu_time`] reads.
#[derive(Clone, Copy)]
pub enum ProcCpu {
    /// The process's own (utime + stime).
    Own,
    /// Its children's that it has waited for (cutime + cstime).
    ReapedChildren,
}

/// User + system CPU time from a `/proc/<pid>/stat` file; zero if unreadable.
pub fn proc_stat_cpu_time(path: &str, whose: ProcCpu) -> Duration {
    let stat = fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th,
    // cutime and cstime the 14th and 15th.
    let skip = match whose {
        ProcCpu::Own => 11,
        ProcCpu::ReapedChildren => 13,
    };
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(skip)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}
