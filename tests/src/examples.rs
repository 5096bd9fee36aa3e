//! The per-filter example configs, `envoy/examples/<filter>.json`: the one source of truth for
//! each filter's documented config.
//!
//! Envoy cannot read a wasm plugin's configuration from a file, so each standalone
//! `envoy/<filter>.yaml` carries a copy of its example inline (a `StringValue`, with YAML
//! comments on the knobs). `tests/tests/examples.rs` holds every copy equal to its example and
//! runs each example through a real Envoy; `tests/tests/config_schemas.rs` checks the examples
//! (and everything else embedded in `envoy/*.yaml`) against the filters' schemas and parsers.
//!
//! ```no_run
//! use harness::examples::{example, localize, Environment};
//! use harness::OAuthServer;
//!
//! let oauth = OAuthServer::start();
//! // The jwt-auth example, its issuer pointed at this test's OAuth server.
//! let config = localize(example("jwt-auth"), &Environment::oauth(&oauth));
//! ```

use std::collections::BTreeSet;
use std::fmt::Display;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::oauth::OAuthServer;
use crate::paths::workspace_root;

/// One filter of the workspace, by its two names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Filter {
    /// The dashed name: the crate directory under `filters/`, and the stem of
    /// `envoy/<name>.yaml` and `envoy/examples/<name>.json`.
    pub name: &'static str,
    /// The snake-case name: the `.wasm` file stem, and the plugin's `name`, `root_id` and
    /// `vm_id` in Envoy configs (what [`GatewayConfig::filter`](crate::GatewayConfig::filter)
    /// takes).
    pub root_id: &'static str,
}

/// Every filter, in chain order (see `DESIGN.md`).
pub const FILTERS: [Filter; 5] = [
    Filter {
        name: "header-scrub",
        root_id: "header_scrub",
    },
    Filter {
        name: "phantom-token",
        root_id: "phantom_token",
    },
    Filter {
        name: "jwt-auth",
        root_id: "jwt_auth",
    },
    Filter {
        name: "scope-gate",
        root_id: "scope_gate",
    },
    Filter {
        name: "rate-limit",
        root_id: "rate_limit",
    },
];

/// The filter called `name`, either spelling (`jwt-auth` or `jwt_auth`).
///
/// # Panics
/// If no filter has that name.
pub fn filter(name: &str) -> Filter {
    FILTERS
        .iter()
        .copied()
        .find(|f| f.name == name || f.root_id == name)
        .unwrap_or_else(|| {
            let known: Vec<&str> = FILTERS.iter().map(|f| f.name).collect();
            panic!("no filter named {name:?}; the filters are {known:?}")
        })
}

/// `envoy/examples/`.
pub fn examples_dir() -> PathBuf {
    workspace_root().join("envoy").join("examples")
}

/// `envoy/`.
pub fn envoy_dir() -> PathBuf {
    workspace_root().join("envoy")
}

impl Filter {
    /// `envoy/examples/<name>.json`.
    pub fn example_path(&self) -> PathBuf {
        examples_dir().join(format!("{}.json", self.name))
    }

    /// `envoy/<name>.yaml`: the standalone Envoy config that embeds the example.
    pub fn standalone_yaml(&self) -> PathBuf {
        envoy_dir().join(format!("{}.yaml", self.name))
    }

    /// The example config, parsed.
    ///
    /// # Panics
    /// If the file is missing or is not a JSON object.
    pub fn example(&self) -> Value {
        let path = self.example_path();
        let text = fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the {} example config {}: {e}; it must hold the JSON config that {} embeds",
                self.name,
                path.display(),
                relative(&self.standalone_yaml()),
            )
        });
        let config: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not valid JSON: {e}", relative(&path)));
        assert!(
            config.is_object(),
            "{}: a filter config is a JSON object, found {config}",
            relative(&path)
        );
        config
    }
}

/// The example config of `filter` (either spelling), `envoy/examples/<filter>.json`, parsed.
///
/// # Panics
/// If `filter` is unknown, or its example is missing or not a JSON object.
pub fn example(filter: &str) -> Value {
    self::filter(filter).example()
}

/// `path` relative to the workspace root (for messages), or as it is if outside it.
pub fn relative(path: &Path) -> String {
    let root = workspace_root();
    path.strip_prefix(&root).unwrap_or(path).display().to_string()
}

/// The files of `dir` whose name ends in `.<ext>`, sorted, without dotfiles (the scratch copies
/// some tests write next to the real configs).
///
/// # Panics
/// If the directory cannot be read.
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == ext))
        .filter(|path| !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    files
}

/// Every Envoy config `envoy/*.yaml`, sorted.
pub fn envoy_yaml_files() -> Vec<PathBuf> {
    files_with_extension(&envoy_dir(), "yaml")
}

/// Every example file `envoy/examples/*.json`, sorted.
pub fn example_files() -> Vec<PathBuf> {
    files_with_extension(&examples_dir(), "json")
}

/// One wasm filter config embedded in an Envoy config.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedConfig {
    /// The Envoy config it was found in, relative to the workspace root (`envoy/jwt-auth.yaml`).
    pub file: String,
    /// The plugin's `root_id` (or its `name` when it has none).
    pub root_id: String,
    /// The plugin configuration: the `StringValue`, parsed as JSON.
    pub config: Value,
}

/// Every `envoy.filters.http.wasm` filter config in the Envoy config at `path`, in the order
/// they appear. `parse` reads the file's YAML into JSON values: pass `|text| serde_yaml_ng::from_str(text)`
/// (a dev-dependency of this crate, so the test passes it in).
///
/// # Panics
/// If the file cannot be read or parsed, or a wasm filter has no `root_id`/`name`, a
/// configuration that is not a `StringValue`, or a value that is not JSON.
pub fn embedded_configs<E: Display>(path: &Path, parse: impl Fn(&str) -> Result<Value, E>) -> Vec<EmbeddedConfig> {
    let file = relative(path);
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let yaml = parse(&text).unwrap_or_else(|e| panic!("{file}: not YAML: {e}"));
    let mut filters = Vec::new();
    wasm_filters(&yaml, &mut filters);
    filters
        .into_iter()
        .flat_map(|typed_config| {
            let config = &typed_config["config"];
            let root_id = config["root_id"]
                .as_str()
                .or_else(|| config["name"].as_str())
                .unwrap_or_else(|| panic!("{file}: a wasm filter without root_id or name"));
            let configuration = &config["configuration"];
            assert_eq!(
                configuration["@type"], "type.googleapis.com/google.protobuf.StringValue",
                "{file}: the configuration of {root_id} is not a StringValue"
            );
            let value = configuration["value"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: {root_id} has no configuration value"));
            let config: Value =
                serde_json::from_str(value).unwrap_or_else(|e| panic!("{file}: the {root_id} config is not JSON: {e}"));
            if root_id == CHAIN_ROOT_ID {
                return chain_members(&file, &config);
            }
            vec![EmbeddedConfig {
                file: file.clone(),
                root_id: root_id.to_owned(),
                config,
            }]
        })
        .collect()
}

/// The `root_id` of the bundle's chain plugin, whose config lists its member filters' configs.
pub const CHAIN_ROOT_ID: &str = "chain";

/// A chain plugin's members, each as the config of its own filter.
fn chain_members(file: &str, chain: &Value) -> Vec<EmbeddedConfig> {
    let members = chain["filters"]
        .as_array()
        .unwrap_or_else(|| panic!("{file}: the chain config has no filters array"));
    members
        .iter()
        .map(|member| EmbeddedConfig {
            file: file.to_owned(),
            root_id: member["filter"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: a chain member without filter"))
                .to_owned(),
            config: member["config"].clone(),
        })
        .collect()
}

/// Collects the `typed_config` of every `envoy.filters.http.wasm` HTTP filter under `node`.
fn wasm_filters<'a>(node: &'a Value, out: &mut Vec<&'a Value>) {
    match node {
        Value::Object(map) => {
            if map.get("name").and_then(Value::as_str) == Some("envoy.filters.http.wasm") {
                if let Some(typed_config) = map.get("typed_config") {
                    out.push(typed_config);
                    return;
                }
            }
            map.values().for_each(|v| wasm_filters(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| wasm_filters(v, out)),
        _ => {}
    }
}

/// Where `expected` and `actual` differ, one line per JSON pointer (`/rules/1/requires/type:
/// "all_of" != "any_of"`), for failure messages.
pub fn json_differences(expected: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    differences("", expected, actual, &mut out);
    out
}

fn differences(at: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let keys: BTreeSet<&String> = e.keys().chain(a.keys()).collect();
            for key in keys {
                let here = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (e.get(key), a.get(key)) {
                    (Some(e), Some(a)) => differences(&here, e, a, out),
                    (Some(e), None) => out.push(format!("{here}: {e} is missing")),
                    (None, Some(a)) => out.push(format!("{here}: {a} is extra")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                differences(&format!("{at}/{i}"), e, a, out);
            }
        }
        (e, a) if e != a => out.push(format!("{}: {e} != {a}", if at.is_empty() { "/" } else { at })),
        _ => {}
    }
}

/// The demo issuer the examples name: the OAuth server `make run` starts.
pub fn demo_issuer() -> String {
    format!("http://{}", crate::demo::OAUTH)
}

/// Where a test's dependencies really are, for [`localize`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// Replaces [`demo_issuer`] in every `issuer` field.
    pub issuer: Option<String>,
    /// Replaces [`demo::OAUTH`](crate::demo::OAUTH) in every `authority` field.
    pub oauth_authority: Option<String>,
}

impl Environment {
    /// The environment of a test OAuth server: its issuer and its address.
    pub fn oauth(oauth: &OAuthServer) -> Environment {
        Environment {
            issuer: Some(oauth.issuer()),
            oauth_authority: Some(oauth.addr().to_string()),
        }
    }
}

/// `config` (an example) with its environment-specific fields pointed at a test's servers, and
/// nothing else changed: an `issuer` equal to [`demo_issuer`] becomes `env.issuer`, an
/// `authority` equal to [`demo::OAUTH`](crate::demo::OAUTH) becomes `env.oauth_authority` (when set), at any
/// depth. Cluster names stay as they are: give the test gateway clusters of those names (see
/// [`clusters`]).
pub fn localize(mut config: Value, env: &Environment) -> Value {
    replace_strings(&mut config, "issuer", &demo_issuer(), env.issuer.as_deref());
    replace_strings(
        &mut config,
        "authority",
        crate::demo::OAUTH,
        env.oauth_authority.as_deref(),
    );
    config
}

fn replace_strings(node: &mut Value, field: &str, from: &str, to: Option<&str>) {
    let Some(to) = to else { return };
    match node {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if key == field && value.as_str() == Some(from) {
                    *value = Value::from(to);
                } else {
                    replace_strings(value, field, from, Some(to));
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| replace_strings(v, field, from, Some(to))),
        _ => {}
    }
}

/// The names of the Envoy clusters `config` calls: every string `cluster` field, at any depth.
pub fn clusters(config: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect_clusters(config, &mut out);
    out
}

fn collect_clusters(node: &Value, out: &mut BTreeSet<String>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                match value.as_str() {
                    Some(name) if key == "cluster" => {
                        out.insert(name.to_owned());
                    }
                    _ => collect_clusters(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_clusters(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn either_spelling_names_a_filter() {
        assert_eq!(filter("jwt-auth"), filter("jwt_auth"));
        assert_eq!(filter("rate_limit").name, "rate-limit");
    }

    #[test]
    #[should_panic(expected = "no filter named")]
    fn an_unknown_filter_is_refused() {
        filter("jwt");
    }

    #[test]
    fn localize_changes_only_the_demo_endpoints() {
        let config = json!({
            "introspection": {"cluster": "oauth", "authority": "127.0.0.1:8082", "path": "/introspect"},
            "jwt": {"issuer": "http://127.0.0.1:8082", "jwks": {"type": "oidc", "cluster": "oauth"}},
            "other": {"issuer": "https://elsewhere.example", "note": "http://127.0.0.1:8082"},
        });
        let env = Environment {
            issuer: Some("http://127.0.0.1:40000".into()),
            oauth_authority: Some("127.0.0.1:40000".into()),
        };
        let mut expected = config.clone();
        expected["introspection"]["authority"] = json!("127.0.0.1:40000");
        expected["jwt"]["issuer"] = json!("http://127.0.0.1:40000");
        assert_eq!(localize(config.clone(), &env), expected);
        assert_eq!(localize(config.clone(), &Environment::default()), config);
        assert_eq!(
            clusters(&config).into_iter().collect::<Vec<_>>(),
            vec!["oauth".to_owned()]
        );
    }

    #[test]
    fn differences_name_the_pointer() {
        let a = json!({"rules": [{"type": "any_of"}], "realm": "api", "a/b": 1});
        let b = json!({"rules": [{"type": "all_of"}], "extra": true, "a/b": 1});
        assert_eq!(
            json_differences(&a, &b),
            vec![
                "/extra: true is extra",
                "/realm: \"api\" is missing",
                "/rules/0/type: \"any_of\" != \"all_of\"",
            ]
        );
        assert!(json_differences(&a, &a).is_empty());
    }
}
