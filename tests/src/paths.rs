//! Where the harness finds the workspace, the Envoy binary and the filters.
//!
//! Anything missing is a hard failure with a message that says how to fix
//! it: an end-to-end test must never pass by silently skipping.

use std::path::PathBuf;

/// The workspace root: the parent of this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("crate directory {} has no parent", manifest.display()))
}

/// The Envoy binary: `$ENVOY_BIN` if set, else `<root>/.venv/bin/envoy`.
///
/// # Panics
/// If the file does not exist.
pub fn envoy_bin() -> PathBuf {
    let path = match std::env::var_os("ENVOY_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace_root().join(".venv").join("bin").join("envoy"),
    };
    assert!(
        path.is_file(),
        "Envoy binary not found at {}: run `make test` (it installs Envoy), \
         or point ENVOY_BIN at an Envoy binary",
        path.display()
    );
    path
}

/// Where the shipped modules are: `$WASM_DIR` if set (a relative path from the workspace root,
/// where `make` and the bench run, whatever the directory `cargo test` runs a test in), else
/// `<root>/target/wasm` (`make build` writes them there, optimized, from cargo's output).
///
/// # Panics
/// If `$WASM_DIR` is not a directory: Envoy would otherwise fail to start with no word of why.
pub fn wasm_dir() -> PathBuf {
    match std::env::var_os("WASM_DIR") {
        Some(d) if !d.is_empty() => {
            let dir = workspace_root().join(d);
            assert!(dir.is_dir(), "WASM_DIR={} is not a directory", dir.display());
            dir
        }
        _ => workspace_root().join("target").join("wasm"),
    }
}

/// rate_limit built with the `crash-test` feature (`make crash-test-wasm`): it traps its VM on a
/// request carrying [`CRASH_TEST_HEADER`].
///
/// # Panics
/// If the file does not exist.
pub fn crash_test_wasm() -> PathBuf {
    let path = workspace_root().join("target/crash-test/wasm32-wasip1/release/rate_limit.wasm");
    assert!(
        path.exists(),
        "{} is missing: run `make crash-test-wasm`",
        path.display()
    );
    path
}

/// The request header on which a [`crash_test_wasm`] module crashes.
pub const CRASH_TEST_HEADER: &str = "x-apisec-crash-test";

/// The compiled filter `<filter>.wasm` in [`wasm_dir`].
///
/// # Panics
/// If the file does not exist.
pub fn wasm_path(filter: &str) -> PathBuf {
    let path = wasm_dir().join(format!("{filter}.wasm"));
    assert!(
        path.is_file(),
        "filter module {} not found: build the filters first: make build",
        path.display()
    );
    path
}
