//! Writes one wasm module as an OCI image layout, in the "compat" variant of the wasm image
//! format (what Istio's `WasmPlugin` and Envoy Gateway's `EnvoyExtensionPolicy` fetch):
//!
//! - an image manifest (`application/vnd.oci.image.manifest.v1+json`, schema version 2)
//!   annotated `module.wasm.image/variant: compat` plus the `org.opencontainers.image.*`
//!   title, version, revision, source and licenses (and `created`, only with
//!   `SOURCE_DATE_EPOCH`);
//! - a small image config (`application/vnd.oci.image.config.v1+json`, platform `wasip1/wasm`);
//! - a single `tar+gzip` layer holding one file, `plugin.wasm`.
//!
//! The layout directory has `oci-layout`, `index.json` (the manifest, tagged with the version
//! through `org.opencontainers.image.ref.name`) and `blobs/sha256/<hex>`.
//!
//! Everything is reproducible: the same module, version, revision and source give the same
//! bytes, hence the same manifest digest. The tar entry has fixed metadata (mode 0644, owner
//! 0:0 without names, time 0 or `SOURCE_DATE_EPOCH`), the gzip header has no time or file
//! name, and JSON is written from structs (fixed field order) and `BTreeMap`s (sorted keys).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// What every fallible step returns.
pub type Error = Box<dyn std::error::Error>;

/// The file name Istio and Envoy Gateway look for in the layer.
const WASM_FILE: &str = "plugin.wasm";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const LICENSES: &str = "Apache-2.0";

/// Per-build facts shared by every image.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// The workspace version: the `org.opencontainers.image.version` annotation and the tag.
    pub version: String,
    /// The git commit the module was built from.
    pub revision: String,
    /// The repository URL.
    pub source: String,
    /// `SOURCE_DATE_EPOCH`: the `created` time and the layer's file time, if set.
    pub source_date_epoch: Option<u64>,
}

/// A content descriptor: what a manifest or index says about a blob.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: &'static str,
    digest: String,
    size: usize,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

impl Descriptor {
    fn of(media_type: &'static str, blob: &[u8]) -> Descriptor {
        Descriptor {
            media_type,
            digest: digest(blob),
            size: blob.len(),
            annotations: BTreeMap::new(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
    annotations: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

/// The image config: a platform and the layer's uncompressed digest, nothing to run.
#[derive(Serialize)]
struct Config {
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    architecture: &'static str,
    os: &'static str,
    rootfs: RootFs,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Writes the image of module `wasm` for filter `name` as an OCI image layout in `dir`,
/// replacing a layout already there; returns the manifest digest.
///
/// Refuses to touch a `dir` that exists, is not empty and is not an image layout.
pub fn write_layout(dir: &Path, name: &str, wasm: &[u8], info: &ImageInfo) -> Result<String, Error> {
    let created = info.source_date_epoch.map(rfc3339);

    let tar = layer_tar(wasm, info.source_date_epoch.unwrap_or(0))?;
    let layer = gzip(&tar)?;
    let config = serde_json::to_vec(&Config {
        created: created.clone(),
        architecture: "wasm",
        os: "wasip1",
        rootfs: RootFs {
            kind: "layers",
            diff_ids: vec![digest(&tar)],
        },
    })?;

    let mut annotations = BTreeMap::from([
        ("module.wasm.image/variant", "compat".to_owned()),
        ("org.opencontainers.image.title", name.to_owned()),
        ("org.opencontainers.image.version", info.version.clone()),
        ("org.opencontainers.image.revision", info.revision.clone()),
        ("org.opencontainers.image.source", info.source.clone()),
        ("org.opencontainers.image.licenses", LICENSES.to_owned()),
    ]);
    if let Some(created) = created {
        annotations.insert("org.opencontainers.image.created", created);
    }
    let manifest = serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: MANIFEST_TYPE,
        config: Descriptor::of(CONFIG_TYPE, &config),
        layers: vec![Descriptor::of(LAYER_TYPE, &layer)],
        annotations,
    })?;

    let mut manifest_descriptor = Descriptor::of(MANIFEST_TYPE, &manifest);
    manifest_descriptor
        .annotations
        .insert("org.opencontainers.image.ref.name", info.version.clone());
    let manifest_digest = manifest_descriptor.digest.clone();
    let index = serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: INDEX_TYPE,
        manifests: vec![manifest_descriptor],
    })?;

    clear_layout(dir)?;
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|e| format!("cannot create {}: {e}", blobs.display()))?;
    for blob in [&layer, &config, &manifest] {
        let hex = Sha256::digest(blob);
        write(&blobs.join(format!("{hex:x}")), blob)?;
    }
    write(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    write(&dir.join("index.json"), &index)?;
    Ok(manifest_digest)
}

/// A tar archive of one regular file, `plugin.wasm`, with fixed metadata.
fn layer_tar(wasm: &[u8], mtime: u64) -> Result<Vec<u8>, Error> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(u64::try_from(wasm.len())?);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_username("")?;
    header.set_groupname("")?;
    header.set_mtime(mtime);
    let mut builder = tar::Builder::new(Vec::new());
    // Sets the path and the checksum.
    builder.append_data(&mut header, WASM_FILE, wasm)?;
    Ok(builder.into_inner()?)
}

/// `data` gzip-compressed, with no time, file name or comment in the header.
fn gzip(data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255) // "unknown": the same bytes whatever machine builds it.
        .write(Vec::new(), flate2::Compression::best());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

/// Removes the image layout in `dir`, if any, so that the new one holds only the new blobs.
fn clear_layout(dir: &Path) -> Result<(), Error> {
    let Ok(mut entries) = fs::read_dir(dir) else {
        return Ok(()); // Does not exist yet.
    };
    if dir.join("oci-layout").is_file() {
        fs::remove_dir_all(dir).map_err(|e| format!("cannot remove the old layout {}: {e}", dir.display()))?;
    } else if entries.next().is_some() {
        return Err(format!(
            "{} is not empty and not an OCI image layout: refusing to overwrite it",
            dir.display()
        )
        .into());
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}

/// `secs` since 1970 as an RFC 3339 UTC time, e.g. `2023-11-14T22:13:20Z`.
fn rfc3339(secs: u64) -> String {
    let is_leap = |year: u64| (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let mut days = secs / 86_400;
    let mut year = 1970;
    loop {
        let year_days = if is_leap(year) { 366 } else { 365 };
        if days < year_days {
            break;
        }
        days -= year_days;
        year += 1;
    }
    let february = if is_leap(year) { 29 } else { 28 };
    let mut month = 1;
    for month_days in [31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] {
        if days < month_days {
            break;
        }
        days -= month_days;
        month += 1;
    }
    let time = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{:02}T{:02}:{:02}:{:02}Z",
        days + 1,
        time / 3600,
        time / 60 % 60,
        time % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_handles_epoch_leap_days_and_year_ends() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn gzip_header_has_no_time_or_name() {
        let gz = gzip(b"x").unwrap_or_default();
        // Magic, deflate, no flags (so no name or comment), mtime 0, best compression, OS unknown.
        assert_eq!(gz.get(..10), Some(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255][..]));
    }
}
