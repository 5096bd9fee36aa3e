//! Shipping the filters as OCI wasm images: what `cargo run -p xtask -- oci` writes (the
//! "compat" variant Istio and Envoy Gateway fetch), that it is byte-for-byte reproducible, that
//! the images survive a push to and a pull from a real registry (`docker-registry`, `skopeo`),
//! and that Envoy runs a module it fetches over HTTP (`vm_config.code.remote`), refusing one
//! whose SHA-256 does not match.
//!
//! Prerequisites (`make build`, Envoy, `apt-get install -y skopeo docker-registry`) missing make
//! these tests fail with instructions, never skip.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use harness::config::static_cluster;
use harness::http::{self, Request};
use harness::paths::{wasm_path, workspace_root};
use harness::registry::{require_tool, Registry};
use harness::server::BackgroundServer;
use harness::{Gateway, WasmFilter};
use http_body_util::Full;
use serde_json::{json, Value};

const MODULES: [&str; 6] = [
    "header_scrub",
    "jwt_auth",
    "phantom_token",
    "rate_limit",
    "scope_gate",
    "apisec_bundle",
];
/// The workspace version, which the xtask puts in the images (this crate shares it).
const VERSION: &str = env!("CARGO_PKG_VERSION");
const DEFAULT_SOURCE: &str = "https://github.com/apisec-filters/apisec";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create a temporary directory")
}

fn output_text(output: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The xtask binary, built once per test process (`cargo build -p xtask`).
fn xtask() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--quiet", "-p", "xtask", "--message-format=json"])
            .output()
            .expect("run cargo build -p xtask");
        assert!(
            output.status.success(),
            "cargo build -p xtask failed: {}",
            output_text(&output)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "xtask")
            .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
            .unwrap_or_else(|| panic!("no xtask executable in cargo's output: {}", output_text(&output)))
    })
}

/// Runs `xtask oci --out <out> <args>` with `env` set and `SOURCE_DATE_EPOCH` and `OCI_SOURCE`
/// unset unless `env` sets them.
fn run_xtask(out: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(xtask());
    cmd.arg("oci").arg("--out").arg(out).args(args);
    cmd.env_remove("SOURCE_DATE_EPOCH").env_remove("OCI_SOURCE");
    cmd.envs(env.iter().copied());
    cmd.output().expect("run the xtask")
}

/// `xtask oci --out <out> <args>`, which must succeed.
fn pack(out: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = run_xtask(out, args, env);
    assert!(output.status.success(), "xtask oci failed: {}", output_text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One file of a layer's tar archive, with the metadata the images pin.
#[derive(Debug)]
struct TarFile {
    path: String,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    username: Vec<u8>,
    groupname: Vec<u8>,
    data: Vec<u8>,
}

/// Decompresses and unpacks a `tar+gzip` layer.
fn unpack(layer: &[u8]) -> Vec<TarFile> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    let entries = archive.entries().expect("read the layer as tar+gzip");
    entries
        .map(|entry| {
            let mut entry = entry.expect("a tar entry");
            let header = entry.header().clone();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read a tar entry");
            TarFile {
                path: entry.path().expect("entry path").to_string_lossy().into_owned(),
                kind: header.entry_type(),
                mode: header.mode().expect("mode"),
                uid: header.uid().expect("uid"),
                gid: header.gid().expect("gid"),
                mtime: header.mtime().expect("mtime"),
                username: header.username_bytes().unwrap_or_default().to_vec(),
                groupname: header.groupname_bytes().unwrap_or_default().to_vec(),
                data,
            }
        })
        .collect()
}

/// An OCI image layout on disk, as skopeo and the xtask write it.
struct Layout(PathBuf);

impl Layout {
    fn index(&self) -> Value {
        let text = std::fs::read(self.0.join("index.json")).expect("read index.json");
        serde_json::from_slice(&text).expect("index.json is JSON")
    }

    /// The digest of the manifest tagged `tag`.
    fn manifest_digest(&self, tag: &str) -> String {
        let index = self.index();
        let manifests = index["manifests"].as_array().expect("index.json has manifests");
        manifests
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .and_then(|m| m["digest"].as_str())
            .unwrap_or_else(|| panic!("no manifest tagged {tag} in {index}"))
            .to_owned()
    }

    /// The blob `sha256:<hex>`, checked against its digest.
    fn blob(&self, digest: &str) -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        let bytes = std::fs::read(self.0.join("blobs").join("sha256").join(hex)).expect("read a blob");
        assert_eq!(sha256_hex(&bytes), hex, "blob content does not match its name");
        bytes
    }

    fn blob_json(&self, digest: &str) -> Value {
        serde_json::from_slice(&self.blob(digest)).expect("a JSON blob")
    }

    /// The manifest tagged `tag` and its single layer, checked against their descriptors.
    fn image(&self, tag: &str) -> (Value, Vec<u8>) {
        let manifest = self.blob_json(&self.manifest_digest(tag));
        let layers = manifest["layers"].as_array().expect("manifest layers");
        assert_eq!(layers.len(), 1, "one layer: {manifest}");
        let layer = self.blob(layers[0]["digest"].as_str().expect("layer digest"));
        assert_eq!(layers[0]["size"], layer.len());
        (manifest, layer)
    }

    /// Every file under the layout, with its bytes.
    fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).expect("list a layout directory") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    let rel = path.strip_prefix(root).expect("under the root").to_path_buf();
                    out.insert(rel, std::fs::read(&path).expect("read a layout file"));
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(&self.0, &self.0, &mut files);
        files
    }
}

/// The commit the xtask should record: `git rev-parse HEAD`, or `unknown`.
fn git_head() -> String {
    Command::new("git")
        .arg("-C")
        .arg(workspace_root())
        .args(["describe", "--always", "--abbrev=40", "--dirty", "--exclude=*"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Checks everything about `filter`'s image in `layout` that does not depend on the environment
/// variables; returns its manifest.
fn check_image(layout: &Layout, filter: &str) -> Value {
    let built = std::fs::read(wasm_path(filter)).expect("read the built module");

    assert_eq!(
        std::fs::read_to_string(layout.0.join("oci-layout")).expect("read oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index = layout.index();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(1), "{index}");
    assert_eq!(index["manifests"][0]["mediaType"], MANIFEST_TYPE);

    let manifest_digest = layout.manifest_digest(VERSION);
    let manifest_bytes = layout.blob(&manifest_digest);
    assert_eq!(index["manifests"][0]["size"], manifest_bytes.len());
    let (manifest, layer) = layout.image(VERSION);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], MANIFEST_TYPE);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let config_digest = manifest["config"]["digest"].as_str().expect("config digest");
    let config_bytes = layout.blob(config_digest);
    assert_eq!(manifest["config"]["size"], config_bytes.len());

    // Exactly the three blobs, nothing left over.
    let blobs: BTreeSet<String> = std::fs::read_dir(layout.0.join("blobs").join("sha256"))
        .expect("list the blobs")
        .map(|e| format!("sha256:{}", e.expect("a blob").file_name().to_string_lossy()))
        .collect();
    let layer_digest = manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .to_owned();
    assert_eq!(
        blobs,
        BTreeSet::from([manifest_digest, config_digest.to_owned(), layer_digest])
    );

    let annotations = &manifest["annotations"];
    assert_eq!(annotations["module.wasm.image/variant"], "compat");
    assert_eq!(annotations["org.opencontainers.image.title"], filter);
    assert_eq!(annotations["org.opencontainers.image.version"], VERSION);
    assert_eq!(annotations["org.opencontainers.image.revision"], git_head());
    assert_eq!(annotations["org.opencontainers.image.licenses"], "Apache-2.0");

    // A reproducible gzip header: no flags (no file name or comment), no time.
    assert_eq!(
        layer.get(..4),
        Some(&[0x1f, 0x8b, 8, 0][..]),
        "gzip magic, deflate, no flags"
    );
    assert_eq!(layer.get(4..8), Some(&[0, 0, 0, 0][..]), "gzip mtime 0");

    let files = unpack(&layer);
    assert_eq!(files.len(), 1, "one file in the layer: {files:?}");
    let file = &files[0];
    assert_eq!(file.path, "plugin.wasm");
    assert_eq!(file.kind, tar::EntryType::Regular);
    assert_eq!(file.mode, 0o644);
    assert_eq!((file.uid, file.gid), (0, 0));
    assert!(file.username.is_empty() && file.groupname.is_empty(), "{file:?}");
    assert_eq!(
        sha256_hex(&file.data),
        sha256_hex(&built),
        "plugin.wasm is not the built {filter}.wasm"
    );

    let config: Value = serde_json::from_slice(&config_bytes).expect("config is JSON");
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip1");
    assert_eq!(config["rootfs"]["type"], "layers");
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&layer[..])
        .read_to_end(&mut tar)
        .expect("gunzip the layer");
    assert_eq!(config["rootfs"]["diff_ids"], json!([digest(&tar)]));
    manifest
}

#[test]
fn images_are_reproducible_and_hold_the_built_modules() {
    for filter in MODULES {
        wasm_path(filter); // Fails with "make build" if a module is missing.
    }
    let (first, second) = (temp_dir("e2e-oci-a-"), temp_dir("e2e-oci-b-"));
    // No filter names: every built module.
    let printed = pack(first.path(), &[], &[]);
    pack(second.path(), &[], &[]);

    for filter in MODULES {
        let a = Layout(first.path().join(filter));
        let b = Layout(second.path().join(filter));
        let manifest = check_image(&a, filter);
        check_image(&b, filter);
        assert_eq!(a.manifest_digest(VERSION), b.manifest_digest(VERSION), "{filter}");
        assert_eq!(a.files(), b.files(), "{filter}: two builds differ");

        let annotations = &manifest["annotations"];
        assert_eq!(annotations["org.opencontainers.image.source"], DEFAULT_SOURCE);
        assert!(
            annotations.get("org.opencontainers.image.created").is_none(),
            "{manifest}"
        );
        let (_, layer) = a.image(VERSION);
        assert_eq!(unpack(&layer)[0].mtime, 0);
        let config = a.blob_json(manifest["config"]["digest"].as_str().expect("config digest"));
        assert!(config.get("created").is_none(), "{config}");

        let reference = format!("oci:{}:{VERSION}  {}", a.0.display(), a.manifest_digest(VERSION));
        assert!(
            printed.lines().any(|l| l == reference),
            "{reference:?} not in {printed}"
        );
        eprintln!("{filter}: {}", a.manifest_digest(VERSION));
    }
}

#[test]
fn source_date_epoch_and_oci_source_are_recorded() {
    let (plain, dated, again) = (temp_dir("e2e-oci-"), temp_dir("e2e-oci-"), temp_dir("e2e-oci-"));
    let env = [
        ("SOURCE_DATE_EPOCH", "1700000000"),
        ("OCI_SOURCE", "https://example.test/apisec"),
    ];
    pack(plain.path(), &["header_scrub"], &[]);
    pack(dated.path(), &["header_scrub"], &env);
    pack(again.path(), &["header_scrub"], &env);

    let layout = Layout(dated.path().join("header_scrub"));
    let manifest = check_image(&layout, "header_scrub");
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["org.opencontainers.image.created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        annotations["org.opencontainers.image.source"],
        "https://example.test/apisec"
    );
    let config = layout.blob_json(manifest["config"]["digest"].as_str().expect("config digest"));
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    let (_, layer) = layout.image(VERSION);
    assert_eq!(unpack(&layer)[0].mtime, 1_700_000_000);

    let digest_of = |dir: &tempfile::TempDir| Layout(dir.path().join("header_scrub")).manifest_digest(VERSION);
    assert_eq!(
        digest_of(&dated),
        digest_of(&again),
        "reproducible with SOURCE_DATE_EPOCH too"
    );
    assert_ne!(digest_of(&dated), digest_of(&plain));
}

#[test]
fn a_missing_module_fails_with_a_hint() {
    let out = temp_dir("e2e-oci-");
    let output = run_xtask(out.path(), &["header_scrub", "no_such_filter"], &[]);
    assert!(!output.status.success(), "{}", output_text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no_such_filter.wasm") && stderr.contains("run make build"),
        "{stderr}"
    );

    let empty = temp_dir("e2e-oci-wasm-");
    let output = run_xtask(out.path(), &[], &[("WASM_DIR", &empty.path().to_string_lossy())]);
    assert!(!output.status.success(), "{}", output_text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no .wasm files") && stderr.contains("run make build"),
        "{stderr}"
    );

    let output = run_xtask(out.path(), &["../header_scrub"], &[]);
    assert!(!output.status.success(), "{}", output_text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a filter name"));
}

/// `skopeo <args>`, which must succeed.
fn skopeo(args: &[&str]) {
    let bin = require_tool("skopeo", "skopeo");
    let output = Command::new(&bin).args(args).output().expect("run skopeo");
    assert!(
        output.status.success(),
        "skopeo {args:?} failed: {}",
        output_text(&output)
    );
}

#[test]
fn images_round_trip_through_a_registry() {
    require_tool("skopeo", "skopeo");
    let registry = Registry::start();
    let (packed, pulled) = (temp_dir("e2e-oci-push-"), temp_dir("e2e-oci-pull-"));
    pack(packed.path(), &[], &[]);

    for filter in MODULES {
        let layout = Layout(packed.path().join(filter));
        let digest = layout.manifest_digest(VERSION);
        let remote = format!("docker://{}/apisec/{filter}:{VERSION}", registry.addr());
        // What `make oci-push OCI_INSECURE=1` runs (the registry speaks plain HTTP on loopback).
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:{VERSION}", layout.0.display()),
            &remote,
        ]);

        // The registry serves the very manifest bytes the xtask wrote, under the same digest.
        let resp = http::send(
            registry.addr(),
            &Request::get(&format!("/v2/apisec/{filter}/manifests/{VERSION}")).header("Accept", MANIFEST_TYPE),
        )
        .expect("GET the manifest from the registry");
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.header("docker-content-digest"), Some(digest.clone()));
        assert_eq!(resp.header("content-type").as_deref(), Some(MANIFEST_TYPE));
        assert_eq!(resp.body, layout.blob(&digest));

        let back = pulled.path().join(filter);
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &remote,
            &format!("oci:{}:{VERSION}", back.display()),
        ]);
        let back = Layout(back);
        assert_eq!(
            back.manifest_digest(VERSION),
            digest,
            "{filter}: pulled a different manifest"
        );
        let (_, layer) = back.image(VERSION);
        let files = unpack(&layer);
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(files[0].path, "plugin.wasm");
        let built = std::fs::read(wasm_path(filter)).expect("read the built module");
        assert_eq!(sha256_hex(&files[0].data), sha256_hex(&built), "{filter}");
    }
}

/// An HTTP server answering `GET /header_scrub.wasm` with `module` (404 otherwise), and how many
/// requests it got.
fn module_server(module: Vec<u8>) -> (BackgroundServer, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let module = Bytes::from(module);
    let server = BackgroundServer::spawn(([127, 0, 0, 1], 0).into(), "wasm module server", {
        let fetches = Arc::clone(&fetches);
        move |req| {
            fetches.fetch_add(1, Ordering::SeqCst);
            let found = req.uri().path() == "/header_scrub.wasm";
            let module = module.clone();
            async move {
                let mut resp = hyper::Response::new(Full::new(if found { module } else { Bytes::new() }));
                if !found {
                    *resp.status_mut() = hyper::StatusCode::NOT_FOUND;
                }
                Ok::<_, Infallible>(resp)
            }
        }
    });
    (server, fetches)
}

/// `plugin.wasm` from the header-scrub image the xtask writes.
fn header_scrub_from_image() -> Vec<u8> {
    let out = temp_dir("e2e-oci-");
    pack(out.path(), &["header_scrub"], &[]);
    let (_, layer) = Layout(out.path().join("header_scrub")).image(VERSION);
    unpack(&layer).remove(0).data
}

/// A gateway whose header-scrub module Envoy fetches from `server`, expecting `sha256`.
fn remote_gateway(server: &BackgroundServer, sha256: &str) -> Gateway {
    let filter = WasmFilter::new("header_scrub", json!({"request": {"reserved": ["x-user-id"]}}));
    let uri = format!("http://{}/header_scrub.wasm", server.addr());
    let remote = filter.to_remote_http_filter(&uri, "wasm_modules", sha256);
    Gateway::start_with(|c| {
        c.native_filter(remote)
            .extra_cluster(static_cluster("wasm_modules", server.addr()))
    })
}

#[test]
fn envoy_runs_the_image_module_fetched_over_http() {
    let module = header_scrub_from_image();
    let sha256 = sha256_hex(&module);
    let (server, fetches) = module_server(module);
    let gw = remote_gateway(&server, &sha256);

    let response = gw.send(Request::get("/orders").header("x-user-id", "admin"));
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        !gw.echo.last_request().has_header("x-user-id"),
        "the spoofed header reached the upstream"
    );
    assert_eq!(response.header("x-content-type-options").as_deref(), Some("nosniff"));
    // One download, shared by the main thread's and the worker's VMs.
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(gw.envoy.stat("wasm.remote_load_fetch_successes"), Some(1));
    assert_eq!(gw.envoy.stat("wasm.remote_load_fetch_failures"), Some(0));
}

#[test]
fn envoy_fails_closed_on_a_module_with_the_wrong_sha256() {
    let module = header_scrub_from_image();
    let wrong = sha256_hex(b"some other module");
    let (server, fetches) = module_server(module);
    // Envoy starts (the listener is up) but the plugin never loads ...
    let gw = remote_gateway(&server, &wrong);
    assert_eq!(gw.envoy.stat("wasm.remote_load_fetch_successes"), Some(0));
    assert_eq!(gw.envoy.stat("wasm.remote_load_fetch_failures"), Some(1));
    // ... after the default retry: the first download and one more.
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert!(
        gw.envoy.log().contains("Plugin header_scrub failed to load"),
        "{}",
        gw.envoy.log()
    );

    // ... so, configured to fail closed, it answers 503 and forwards nothing.
    for _ in 0..3 {
        let response = gw.send(Request::get("/orders").header("x-user-id", "admin"));
        assert_eq!(response.status, 503, "{}", response.text());
    }
    assert_eq!(gw.echo.request_count(), 0);
}
