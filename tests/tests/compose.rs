//! The docker-compose harness (`envoy/docker-compose.yaml`), checked without a Docker engine: the
//! file is valid for docker-compose, and everything it names exists and matches the native
//! topology (`harness::demo`, which `make run` and the gateway suite use, and `envoy/gateway.yaml`).
//! `make e2e-compose` runs the stack itself, where there is an engine.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use harness::demo::{self, Service};
use harness::paths::workspace_root;
use harness::registry::require_tool;
use serde_yaml_ng::Value;

const COMPOSE_FILE: &str = "envoy/docker-compose.yaml";

fn compose() -> Value {
    let path = workspace_root().join(COMPOSE_FILE);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{COMPOSE_FILE}: {e}"))
}

/// Where relative paths in the compose file start: its own directory.
fn compose_dir() -> PathBuf {
    workspace_root().join("envoy")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("{COMPOSE_FILE}: no service {name}"))
}

fn strings(value: &Value, what: &str) -> Vec<String> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {value:?}"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{what}: {v:?} is not a string"))
                .to_owned()
        })
        .collect()
}

fn str_field<'a>(value: &'a Value, field: &str, what: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{what}.{field}: expected a string, got {:?}", value[field]))
}

/// The Makefile's `NAME := value`.
fn makefile_variable(name: &str) -> String {
    let makefile = fs::read_to_string(workspace_root().join("Makefile")).expect("read the Makefile");
    makefile
        .lines()
        .filter_map(|line| line.split_once(":="))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| panic!("the Makefile sets no {name}"))
}

/// `(source on the host, target in the container)` of each bind mount of `service`.
fn mounts(service: &Value, what: &str) -> Vec<(PathBuf, String)> {
    strings(&service["volumes"], &format!("{what}.volumes"))
        .iter()
        .map(|volume| {
            let mut parts = volume.split(':');
            let (Some(source), Some(target)) = (parts.next(), parts.next()) else {
                panic!("{what}: volume {volume:?} is not source:target[:mode]");
            };
            assert!(
                source.starts_with("./") || source.starts_with("../"),
                "{what}: volume {volume:?} should be a bind mount of a path of this repository"
            );
            assert_eq!(parts.next(), Some("ro"), "{what}: mount {volume:?} read-only");
            (compose_dir().join(source), target.to_owned())
        })
        .collect()
}

/// The host path behind `container_path`, through the mounts.
fn host_path(mounts: &[(PathBuf, String)], container_path: &str) -> Option<PathBuf> {
    mounts.iter().find_map(|(source, target)| {
        let rest = container_path.strip_prefix(target.as_str())?;
        match rest {
            "" => Some(source.clone()),
            _ => rest.strip_prefix('/').map(|rest| source.join(rest)),
        }
    })
}

fn gateway_yaml() -> Value {
    let text = fs::read_to_string(demo::config_path()).expect("read envoy/gateway.yaml");
    serde_yaml_ng::from_str(&text).expect("parse envoy/gateway.yaml")
}

fn socket_address(value: &Value, what: &str) -> String {
    let socket = &value["socket_address"];
    let port = socket["port_value"]
        .as_u64()
        .unwrap_or_else(|| panic!("{what}: no port_value"));
    format!("{}:{port}", str_field(socket, "address", what))
}

#[test]
fn docker_compose_accepts_the_file() {
    let tool = require_tool("docker-compose", "docker-compose");
    let out = Command::new(tool)
        .arg("--file")
        .arg(workspace_root().join(COMPOSE_FILE))
        .args(["config", "--quiet"])
        .output()
        .expect("run docker-compose config");
    assert!(
        out.status.success(),
        "docker-compose refuses {COMPOSE_FILE}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_stack_is_envoy_and_the_demo_services() {
    let compose = compose();
    let mut names: Vec<String> = compose["services"]
        .as_mapping()
        .expect("services")
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    names.sort();
    let mut expected: Vec<String> = Service::ALL.iter().map(|s| s.name().to_owned()).collect();
    expected.push("envoy".into());
    expected.sort();
    assert_eq!(names, expected);
    for name in &names {
        assert_eq!(
            service(&compose, name)["network_mode"].as_str(),
            Some("host"),
            "{name}: the stack shares the host's network, so every address is the native one"
        );
    }
}

#[test]
fn envoy_is_the_official_image_of_the_native_version_running_the_shipped_config() {
    let compose = compose();
    let envoy = service(&compose, "envoy");
    assert_eq!(
        str_field(envoy, "image", "envoy"),
        format!("envoyproxy/envoy:v{}", makefile_variable("ENVOY_VERSION")),
        "the compose stack and the native harness run the same Envoy"
    );

    let command = strings(&envoy["command"], "envoy.command");
    let flag = |name: &str| {
        let at = command.iter().position(|a| a == name);
        at.and_then(|i| command.get(i + 1))
            .unwrap_or_else(|| panic!("envoy.command has no {name}: {command:?}"))
            .clone()
    };
    assert_eq!(flag("--concurrency"), demo::CONCURRENCY.to_string());

    let working_dir = str_field(envoy, "working_dir", "envoy");
    let mounts = mounts(envoy, "envoy");
    let config = format!("{working_dir}/{}", flag("-c"));
    let config_source = host_path(&mounts, &config).unwrap_or_else(|| panic!("{config} is not mounted"));
    assert_eq!(
        fs::canonicalize(&config_source).unwrap_or_else(|e| panic!("{}: {e}", config_source.display())),
        fs::canonicalize(demo::config_path()).expect("envoy/gateway.yaml"),
        "Envoy runs the shipped envoy/gateway.yaml"
    );

    // Every module gateway.yaml loads, relative to the working directory, is a built filter.
    let gateway = serde_yaml_ng::to_string(&gateway_yaml()).expect("re-serialise gateway.yaml");
    let modules: Vec<&str> = gateway
        .lines()
        .filter_map(|line| line.trim().strip_prefix("filename: "))
        .collect();
    assert_eq!(
        modules.len(),
        5,
        "gateway.yaml loads one module per filter: {modules:?}"
    );
    for module in modules {
        let source = host_path(&mounts, &format!("{working_dir}/{module}"))
            .unwrap_or_else(|| panic!("{module} is not under a mount of the envoy service"));
        assert!(
            source.is_file(),
            "{module}: {} does not exist (make build)",
            source.display()
        );
    }
}

#[test]
fn every_service_runs_from_the_workspace_image_on_its_native_addresses() {
    let compose = compose();
    let dockerfile_path = |build: &Value, what: &str| {
        let context = compose_dir().join(str_field(build, "context", what));
        assert!(
            context.join("Cargo.toml").is_file(),
            "{what}: the build context is the workspace"
        );
        context.join(str_field(build, "dockerfile", what))
    };
    for service_kind in Service::ALL {
        let name = service_kind.name();
        let spec = service(&compose, name);
        let dockerfile = dockerfile_path(&spec["build"], &format!("{name}.build"));
        let text = fs::read_to_string(&dockerfile).unwrap_or_else(|e| panic!("{}: {e}", dockerfile.display()));
        assert!(
            text.contains("--bin demo"),
            "{}: builds the demo binary",
            dockerfile.display()
        );
        assert!(text.contains("ENTRYPOINT [\"demo\"]"), "{}", dockerfile.display());
        assert!(
            workspace_root().join("tests/src/bin/demo.rs").is_file(),
            "the demo binary's source"
        );

        let command = strings(&spec["command"], &format!("{name}.command"));
        assert_eq!(command, ["serve", name], "{name}: `demo serve {name}`");

        let probe = strings(&spec["healthcheck"]["test"], &format!("{name}.healthcheck.test"));
        let addresses: Vec<String> = service_kind.addresses().iter().map(ToString::to_string).collect();
        let mut expected = vec!["CMD".to_owned(), "demo".to_owned(), "probe".to_owned()];
        expected.extend(addresses);
        assert_eq!(probe, expected, "{name}: the health check probes the native addresses");
    }
    let ignore = fs::read_to_string(workspace_root().join(".dockerignore")).expect("read .dockerignore");
    for heavy in ["target", ".venv", ".git"] {
        assert!(ignore.lines().any(|l| l == heavy), ".dockerignore leaves out {heavy}");
    }
}

#[test]
fn gateway_yaml_points_at_the_native_addresses() {
    let gateway = gateway_yaml();
    assert_eq!(socket_address(&gateway["admin"]["address"], "admin"), demo::ADMIN);
    let resources = &gateway["static_resources"];
    let listener = &resources["listeners"][0];
    assert_eq!(socket_address(&listener["address"], "listener"), demo::LISTENER);
    let clusters = resources["clusters"].as_sequence().expect("clusters");
    let cluster_address = |name: &str| {
        let cluster = clusters
            .iter()
            .find(|c| c["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("gateway.yaml has no cluster {name}"));
        let endpoint = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
        socket_address(endpoint, name)
    };
    assert_eq!(cluster_address("upstream"), demo::UPSTREAM);
    assert_eq!(cluster_address("oauth"), demo::OAUTH);
    assert_eq!(cluster_address("ratelimit"), demo::RATELIMIT_GRPC);
}

#[test]
fn make_e2e_compose_points_the_suite_at_the_native_addresses() {
    let endpoints = demo::Endpoints::local();
    let expected = format!(
        "GATEWAY_URL=http://{} GATEWAY_ADMIN_URL=http://{} OAUTH_URL=http://{}",
        endpoints.gateway, endpoints.admin, endpoints.oauth
    );
    assert_eq!(makefile_variable("DEMO_ENDPOINTS"), expected);
    assert_eq!(makefile_variable("COMPOSE_FILE"), COMPOSE_FILE);
    let names: Vec<String> = expected
        .split(' ')
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_owned()))
        .collect();
    assert_eq!(names, demo::ENDPOINT_VARIABLES);
}

/// Guards the helper the checks above rely on.
#[test]
fn host_path_follows_mounts() {
    let mounts = vec![(PathBuf::from("/repo/target/x"), "/srv/target/x".to_owned())];
    assert_eq!(
        host_path(&mounts, "/srv/target/x/a.wasm"),
        Some(Path::new("/repo/target/x/a.wasm").into())
    );
    assert_eq!(host_path(&mounts, "/srv/target/xy/a.wasm"), None);
    assert_eq!(host_path(&mounts, "/srv/other"), None);
}
