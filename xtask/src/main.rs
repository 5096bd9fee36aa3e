//! Project tasks that are more than a Makefile line, run as `cargo run -p xtask -- <task>`.
//!
//! `oci [--out DIR] [FILTER...]` packs each built filter
//! (`target/wasm/<filter>.wasm`, from `make build`) as an OCI image in the
//! "compat" wasm variant that Istio and Envoy Gateway fetch, written as an OCI image layout
//! under `DIR/<filter>/` (`target/oci` by default). See [`oci`] for the image's contents.
//!
//! Environment: `WASM_DIR` (where the `.wasm` files are), `OCI_SOURCE` (the
//! `org.opencontainers.image.source` annotation), `SOURCE_DATE_EPOCH` (sets the `created`
//! time and the file time in the layer; without it the image has no timestamp at all).

mod oci;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use oci::{Error, ImageInfo};

const USAGE: &str = "\
usage: cargo run -p xtask -- <task>

tasks:
  oci [--out DIR] [FILTER...]   pack built filters as OCI wasm images (compat variant) under
                                DIR/<filter>/ (default: target/oci); FILTER defaults to every
                                .wasm in target/wasm
";

/// Where the image's sources are, unless `OCI_SOURCE` says otherwise.
const DEFAULT_SOURCE: &str = "https://github.com/apisec-filters/apisec";

fn main() -> ExitCode {
    match run(std::env::args().skip(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut args: impl Iterator<Item = String>) -> Result<(), Error> {
    match args.next().as_deref() {
        Some("oci") => oci_task(args),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task {other:?}\n\n{USAGE}").into()),
        None => Err(format!("no task given\n\n{USAGE}").into()),
    }
}

/// `oci [--out DIR] [FILTER...]`: one image layout per filter; prints each image's reference
/// (for `skopeo copy oci:<ref> ...`) and manifest digest.
fn oci_task(mut args: impl Iterator<Item = String>) -> Result<(), Error> {
    let root = workspace_root()?;
    let mut out = root.join("target").join("oci");
    let mut names = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--out" {
            out = PathBuf::from(args.next().ok_or("--out needs a directory")?);
        } else if let Some(dir) = arg.strip_prefix("--out=") {
            out = PathBuf::from(dir);
        } else if arg.starts_with('-') {
            return Err(format!("unknown option {arg:?}\n\n{USAGE}").into());
        } else {
            names.push(arg);
        }
    }

    let wasm_dir = match std::env::var_os("WASM_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => root.join("target").join("wasm"),
    };
    let filters = if names.is_empty() {
        built_filters(&wasm_dir)?
    } else {
        names
    };

    let info = ImageInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        revision: git_revision(&root),
        source: std::env::var("OCI_SOURCE")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_SOURCE.to_owned()),
        source_date_epoch: source_date_epoch()?,
    };

    for filter in &filters {
        if filter.is_empty() || !filter.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("{filter:?} is not a filter name (letters, digits and '_')").into());
        }
        let wasm_path = wasm_dir.join(format!("{filter}.wasm"));
        let wasm = std::fs::read(&wasm_path)
            .map_err(|e| format!("cannot read {}: {e}: run make build", wasm_path.display()))?;
        let layout = out.join(filter);
        let digest = oci::write_layout(&layout, filter, &wasm, &info)?;
        println!("oci:{}:{}  {digest}", layout.display(), info.version);
    }
    Ok(())
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> Result<PathBuf, Error> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest_dir
        .parent()
        .ok_or("xtask's directory has no parent")?
        .to_path_buf())
}

/// The stem of every `.wasm` file in `dir`, sorted.
fn built_filters(dir: &Path) -> Result<Vec<String>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}: run make build", dir.display()))?;
    let mut filters = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "wasm") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                filters.push(stem.to_owned());
            }
        }
    }
    if filters.is_empty() {
        return Err(format!("no .wasm files in {}: run make build", dir.display()).into());
    }
    filters.sort();
    Ok(filters)
}

/// The commit of `HEAD`, with `-dirty` when tracked files differ from it (the image is then not
/// that commit's), or `unknown` outside a git checkout.
fn git_revision(root: &Path) -> String {
    Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["describe", "--always", "--abbrev=40", "--dirty", "--exclude=*"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `SOURCE_DATE_EPOCH` (seconds since 1970), if set and not empty.
fn source_date_epoch() -> Result<Option<u64>, Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.trim().is_empty() => {
            let secs = s
                .trim()
                .parse()
                .map_err(|e| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds: {e}"))?;
            Ok(Some(secs))
        }
        _ => Ok(None),
    }
}
