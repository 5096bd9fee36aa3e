//! The pure-Rust signature checks timed one verify at a time in wasm, which Envoy's CPU a request
//! can only bound from above: `tests/verify-bench`, built for `wasm32-wasip1` with the modules'
//! release settings and `wasm-opt` flags (`make bench` puts it at [`WASM`]), run under node's V8
//! with every function compiled by TurboFan up front, as Envoy's V8 does. It runs after the Envoy
//! windows, on Envoy's CPU.

use std::path::PathBuf;
use std::process::Command;

/// Where `make bench` puts the optimised program, from the workspace root.
pub const WASM: &str = "target/bench/verify_bench.wasm";
const RUNNER: &str = "tests/verify-bench/run.mjs";

pub struct VerifyTimes {
    /// The V8 that ran it: node's version, and V8's.
    pub runtime: String,
    /// Per algorithm: µs per verify (the median of its batches), and how many verifies were timed.
    pub per_alg: Vec<(String, f64, u64)>,
}

impl VerifyTimes {
    pub fn us(&self, alg: &str) -> Option<f64> {
        self.per_alg.iter().find(|(a, _, _)| a == alg).map(|(_, us, _)| *us)
    }
}

/// Times each algorithm for `secs` seconds, on `cpu` when given.
pub fn run(secs: f64, cpu: Option<&str>) -> Result<VerifyTimes, String> {
    let root = harness::paths::workspace_root();
    let wasm: PathBuf = root.join(WASM);
    if !wasm.is_file() {
        return Err(format!("{WASM} is not built: run `make bench`"));
    }
    let runtime = node(&["-p", "`node ${process.versions.node}, V8 ${process.versions.v8}`"])?;
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
        .arg(&wasm)
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
    let per_alg = parse(&String::from_utf8_lossy(&output.stdout))?;
    Ok(VerifyTimes { runtime, per_alg })
}

fn node(args: &[&str]) -> Result<String, String> {
    let out = Command::new("node")
        .args(args)
        .output()
        .map_err(|e| format!("node: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `<alg> <µs> <verifies>` lines.
fn parse(stdout: &str) -> Result<Vec<(String, f64, u64)>, String> {
    stdout
        .lines()
        .map(|line| {
            let mut fields = line.split_whitespace();
            match (
                fields.next(),
                fields.next().map(str::parse),
                fields.next().map(str::parse),
            ) {
                (Some(alg), Some(Ok(us)), Some(Ok(n))) => Ok((alg.to_owned(), us, n)),
                _ => Err(format!("verify-bench printed {line:?}")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_one_line_per_algorithm() {
        let times = parse("RS256 95.3 16759\nEdDSA 166.0 9639\n").unwrap();
        assert_eq!(
            times,
            vec![("RS256".into(), 95.3, 16759), ("EdDSA".into(), 166.0, 9639)]
        );
        assert!(parse("RS256 fast\n").is_err());
    }
}
