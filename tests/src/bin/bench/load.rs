//! The load generator: wrk (one thread, a fixed number of connections, pinned to the load CPU),
//! driven by a generated Lua script that sets the headers, cycles through a token file when the
//! tokens must differ, and prints wrk's summary as one machine-readable line.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The path every request asks for.
pub const PATH: &str = "/bench";
/// Headers every request carries besides the token: an identity header a client must not set and
/// an internal one, which header-scrub and its native counterpart remove.
pub const EXTRA_HEADERS: [(&str, &str); 2] = [("X-User-Id", "spoofed"), ("X-Internal-Trace", "1")];
/// wrk connections (closed loop: each waits for its answer before sending again).
pub const CONNECTIONS: u32 = 16;
/// Marks the summary line the script prints.
const MARK: &str = "BENCH-SUMMARY";

/// What each request carries in `Authorization`.
pub enum Auth {
    None,
    /// `Bearer <token>` on every request.
    Same(String),
    /// `Bearer <line>` cycling through the lines of this file, in order.
    Cycle(PathBuf),
}

/// What one wrk run reports.
#[derive(Debug, Clone, Copy)]
pub struct WrkResult {
    pub requests: u64,
    pub duration: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// Answers with a status of 400 or more.
    pub bad_status: u64,
    /// Connect, read, write errors and timeouts.
    pub socket_errors: u64,
}

impl WrkResult {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.duration.as_secs_f64().max(1e-9)
    }
}

/// A Lua string literal (the values are ASCII; JSON escapes are Lua escapes there).
fn lua_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// Writes the wrk script for `auth` to `path`; a cycle starts after its first `start` tokens.
pub fn write_script(path: &Path, auth: &Auth, start: usize) -> Result<(), String> {
    let mut lua = String::from("wrk.method = \"GET\"\n");
    for (name, value) in EXTRA_HEADERS {
        let _ = writeln!(lua, "wrk.headers[{}] = {}", lua_str(name), lua_str(value));
    }
    match auth {
        Auth::None => {}
        Auth::Same(token) => {
            let _ = writeln!(
                lua,
                "wrk.headers[\"Authorization\"] = {}",
                lua_str(&format!("Bearer {token}"))
            );
        }
        Auth::Cycle(file) => {
            let file = file.to_str().ok_or("token file path is not UTF-8")?;
            let _ = write!(
                lua,
                r#"local tokens = {{}}
for line in io.lines({file}) do tokens[#tokens + 1] = "Bearer " .. line end
local i = {start} % #tokens
request = function()
  i = i % #tokens + 1
  wrk.headers["Authorization"] = tokens[i]
  return wrk.format()
end
"#,
                file = lua_str(file),
            );
        }
    }
    let _ = write!(
        lua,
        r#"done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("{MARK} %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"#
    );
    fs::write(path, lua).map_err(|e| format!("write {}: {e}", path.display()))
}

/// The wrk command line against `target` (`host:port`), `taskset -c <cpu>` in front when pinned.
pub fn command(target: &str, script: &Path, secs: u64, cpu: Option<&str>) -> Vec<String> {
    let mut argv = Vec::new();
    if let Some(cpu) = cpu {
        argv.extend(["taskset".to_owned(), "-c".to_owned(), cpu.to_owned()]);
    }
    argv.extend([
        "wrk".to_owned(),
        "-t1".to_owned(),
        format!("-c{CONNECTIONS}"),
        format!("-d{secs}s"),
        "--timeout".to_owned(),
        "5s".to_owned(),
        "-s".to_owned(),
        script.display().to_string(),
        format!("http://{target}{PATH}"),
    ]);
    argv
}

/// Runs wrk for `secs` seconds against `target` with `script`.
pub fn run(target: SocketAddr, script: &Path, secs: u64, cpu: Option<&str>) -> Result<WrkResult, String> {
    let argv = command(&target.to_string(), script, secs, cpu);
    let (program, args) = argv.split_first().ok_or("empty wrk command")?;
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "wrk failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    parse(&stdout).ok_or_else(|| format!("no summary line in wrk's output:\n{stdout}"))
}

/// Parses the summary line the script's `done` prints.
fn parse(stdout: &str) -> Option<WrkResult> {
    let line = stdout.lines().find_map(|l| l.strip_prefix(MARK))?;
    let n: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse::<f64>().ok().map(|x| x.max(0.0) as u64))
        .collect::<Option<_>>()?;
    let [requests, duration_us, connect, read, write, status, timeout, p50_us, p99_us] = n.as_slice() else {
        return None;
    };
    Some(WrkResult {
        requests: *requests,
        duration: Duration::from_micros(*duration_us),
        p50: Duration::from_micros(*p50_us),
        p99: Duration::from_micros(*p99_us),
        bad_status: *status,
        socket_errors: connect + read + write + timeout,
    })
}

/// wrk's version line, or why there is none.
pub fn version() -> Result<String, String> {
    // `wrk -v` prints its version and usage, and exits non-zero.
    let output = Command::new("wrk")
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("wrk is not installed ({e}): run `make bench-tools` (apt-get install wrk)"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.lines().next().unwrap_or("wrk").trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_parses() {
        let out = "Running 2s test\nBENCH-SUMMARY 1000 2000000 0 1 0 3 0 512 2048\n";
        let r = parse(out).expect("parsed");
        assert_eq!(r.requests, 1000);
        assert_eq!(r.duration, Duration::from_secs(2));
        assert_eq!(r.bad_status, 3);
        assert_eq!(r.socket_errors, 1);
        assert_eq!(r.p99, Duration::from_micros(2048));
        assert!((r.rps() - 500.0).abs() < 1e-9);
        assert!(parse("BENCH-SUMMARY 1 2\n").is_none());
    }
}
