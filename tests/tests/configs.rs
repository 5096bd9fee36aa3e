//! The config tier: every Envoy config the project ships is accepted by `envoy --mode validate`,
//! which builds the filter chains and so loads each `.wasm` and runs its config parser.

use std::fs;
use std::path::PathBuf;

use harness::envoy::validate;
use harness::paths::workspace_root;

fn shipped_envoy_configs() -> Vec<PathBuf> {
    let dir = workspace_root().join("envoy");
    let mut configs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("read envoy/").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .filter(|path| {
            // Not the compose file, and not the scratch copy the test below writes.
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            !name.starts_with("docker-compose") && !name.starts_with('.')
        })
        .collect();
    configs.sort();
    configs
}

#[test]
fn every_shipped_envoy_config_validates() {
    let configs = shipped_envoy_configs();
    assert!(
        configs.len() >= 2,
        "expected the per-filter and gateway configs, found {configs:?}"
    );
    for config in configs {
        if let Err(output) = validate(&config) {
            panic!("{} does not validate:\n{output}", config.display());
        }
    }
}

#[test]
fn validation_refuses_a_filter_config_error_and_names_the_field() {
    let gateway = fs::read_to_string(workspace_root().join("envoy/gateway.yaml")).expect("read gateway.yaml");
    let broken = gateway.replacen(r#""max_age_secs": 600"#, r#""max_age_secs": "ten minutes""#, 1);
    assert_ne!(broken, gateway, "gateway.yaml no longer has the field this test breaks");
    // Inside envoy/ so the relative .wasm path resolves as it does for the real configs.
    let path = workspace_root().join("envoy").join(".broken-gateway.yaml");
    fs::write(&path, broken).expect("write the broken config");
    let result = validate(&path);
    fs::remove_file(&path).expect("remove the broken config");
    let output = result.expect_err("Envoy accepted a broken filter config");
    assert!(
        output.contains("header_scrub: invalid configuration: cors.max_age_secs: invalid type"),
        "{output}"
    );
}
