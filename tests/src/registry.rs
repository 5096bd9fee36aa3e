//! A real OCI registry (the Debian package `docker-registry`: the CNCF Distribution registry) on
//! 127.0.0.1, storing into a temporary directory, and [`require_tool`] for the other programs
//! the image tests run (`skopeo`).

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::http::{self, Request};

/// How long [`Registry::start`] waits for `GET /v2/` to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How often it checks.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Attempts at a free port (another process may take the port between the probe and the bind).
const PORT_ATTEMPTS: usize = 3;

/// The program `name` on `PATH`.
///
/// # Panics
/// If it is not installed; the message names the Debian package that provides it.
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` not found on PATH: install the Debian package {package} (apt-get install -y {package})")
        })
}

/// A running registry, killed (and reaped) on drop; if the thread is panicking at that point, the
/// registry's log is printed to stderr first.
pub struct Registry {
    child: Child,
    dir: TempDir,
    addr: SocketAddr,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("pid", &self.child.id())
            .field("dir", &self.dir.path())
            .field("addr", &self.addr)
            .finish()
    }
}

impl Registry {
    /// Starts `docker-registry serve` on a free port of 127.0.0.1 with filesystem storage in a
    /// temporary directory; returns once `GET /v2/` answers 200.
    ///
    /// # Panics
    /// If `docker-registry` is not installed, or the registry does not come up (the message
    /// includes its log).
    pub fn start() -> Registry {
        let bin = require_tool("docker-registry", "docker-registry");
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            match Self::try_start(&bin) {
                Ok(registry) => return registry,
                Err(e) => failures.push(e),
            }
        }
        panic!("the registry did not start:\n{}", failures.join("\n---\n"));
    }

    fn try_start(bin: &Path) -> Result<Registry, String> {
        let dir = tempfile::Builder::new()
            .prefix("e2e-registry-")
            .tempdir()
            .expect("create a temporary directory for the registry");
        let addr = free_port();
        let storage = dir.path().join("storage");
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\n",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).expect("write the registry config");
        let log = fs::File::create(dir.path().join("registry.log")).expect("create registry.log");
        let log_err = log.try_clone().expect("clone the registry.log handle");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        // From here on, dropping `registry` kills the process.
        let mut registry = Registry { child, dir, addr };

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = registry.child.try_wait() {
                return Err(format!("the registry exited ({status}); log:\n{}", registry.log()));
            }
            if matches!(http::send(addr, &Request::get("/v2/")), Ok(resp) if resp.status == 200) {
                return Ok(registry);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the registry did not answer GET /v2/ within {START_TIMEOUT:?}; log:\n{}",
                    registry.log()
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// `host:port`, as in `docker://<addr>/<repository>:<tag>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything the registry has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "===== registry log =====\n{}===== end of registry log =====",
                self.log()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An address on 127.0.0.1 that nothing listened on a moment ago.
fn free_port() -> SocketAddr {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0 to find a free port");
    listener.local_addr().expect("the probe listener's address")
}
