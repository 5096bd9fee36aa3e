//! The config-schema tier: each filter ships `filters/<crate>/config.schema.json`, a JSON Schema
//! generated from its config types (the `schema` feature of every filter crate). These tests fail
//! when a checked-in schema drifts from the types, check every example config (embedded in
//! `envoy/*.yaml`, and `envoy/examples/*.json`) against its filter's schema and parser, and check
//! that the schemas are as strict as the parsers (unknown fields, unknown `type` tags, bad header
//! names).
//!
//! After changing a config type: `UPDATE_SCHEMAS=1 cargo test -p e2e --test config_schemas`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use harness::examples;
use harness::paths::workspace_root;
use serde_json::{json, Value};

const UPDATE_HINT: &str = "UPDATE_SCHEMAS=1 cargo test -p e2e --test config_schemas";

/// A filter: its name (the Envoy `root_id`), its crate directory, and its config types.
struct Filter {
    name: &'static str,
    dir: &'static str,
    schema: fn() -> schemars::Schema,
    /// Whether the filter's own parser (`shared::config::parse`, as the filter runs it) accepts a
    /// config.
    parses: fn(&Value) -> Result<(), String>,
}

/// The schema of `T`: JSON Schema 2020-12, as `schemars::schema_for!` makes it, with the integer
/// bounds the parsers enforce, and without `null` for optional fields (the parsers refuse it: an
/// optional field is given or left out).
fn generate<T: schemars::JsonSchema>() -> schemars::Schema {
    schemars::generate::SchemaSettings::draft2020_12()
        .with_transform(schemars::transform::RecursiveTransform(integer_bounds))
        .with_transform(schemars::transform::RecursiveTransform(without_null))
        .into_generator()
        .into_root_schema_for::<T>()
}

/// schemars bounds only 8- and 16-bit integers; serde refuses a `u32` or `u64` out of range, and
/// a `usize` above `u32::MAX`, since the filters run as wasm32.
fn integer_bounds(schema: &mut schemars::Schema) {
    let maximum = match schema.get("format").and_then(Value::as_str) {
        Some("uint32" | "uint") => u64::from(u32::MAX),
        Some("uint64") => u64::MAX,
        _ => return,
    };
    schema.insert("maximum".to_owned(), json!(maximum));
}

/// schemars allows `null` for every `Option`; the parsers refuse it, so the schema does not.
fn without_null(schema: &mut schemars::Schema) {
    let null = json!({"type": "null"});
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            schema.insert("type".to_owned(), only);
        }
    }
    // A default written from a struct's `Default` lists its absent options as `null`: leave
    // them out, as a config that takes the default does.
    if let Some(default) = schema.get_mut("default") {
        drop_nulls(default);
    }
    if let Some(Value::Array(any_of)) = schema.get_mut("anyOf") {
        any_of.retain(|s| *s != null);
        if let [Value::Object(only)] = any_of.as_slice() {
            let only = only.clone();
            schema.remove("anyOf");
            for (key, value) in only {
                schema.insert(key, value);
            }
        }
    }
}

/// `value` without its object members that are `null`, at any depth.
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(members) => {
            members.retain(|_, member| !member.is_null());
            members.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn parses<T: shared::config::FromConfig>(config: &Value) -> Result<(), String> {
    shared::config::parse::<T>(config.to_string().as_bytes())
        .map(drop)
        .map_err(|e| e.to_string())
}

static FILTERS: [Filter; 5] = [
    Filter {
        name: "header_scrub",
        dir: "header-scrub",
        schema: generate::<header_scrub::Config>,
        parses: parses::<header_scrub::Config>,
    },
    Filter {
        name: "jwt_auth",
        dir: "jwt-auth",
        schema: generate::<jwt_auth::Config>,
        parses: parses::<jwt_auth::Config>,
    },
    Filter {
        name: "scope_gate",
        dir: "scope-gate",
        schema: generate::<scope_gate::Config>,
        parses: parses::<scope_gate::Config>,
    },
    Filter {
        name: "phantom_token",
        dir: "phantom-token",
        schema: generate::<phantom_token::Config>,
        parses: parses::<phantom_token::Config>,
    },
    Filter {
        name: "rate_limit",
        dir: "rate-limit",
        schema: generate::<rate_limit::Config>,
        parses: parses::<rate_limit::Config>,
    },
];

impl Filter {
    fn schema_path(&self) -> PathBuf {
        workspace_root()
            .join("filters")
            .join(self.dir)
            .join("config.schema.json")
    }

    /// The schema as generated from the types, with a title that names the filter (every root
    /// type is called `Config`).
    fn generated(&self) -> Value {
        let mut schema = (self.schema)();
        schema.insert("title".to_owned(), json!(format!("{} filter configuration", self.dir)));
        schema.to_value()
    }

    /// The checked-in schema file, parsed.
    fn checked_in(&self) -> Value {
        let path = self.schema_path();
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; generate it with `{UPDATE_HINT}`", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
    }

    /// The schema the other tests check against: the checked-in file, which the drift test holds
    /// equal to the types (while that test rewrites the files, the generated schema).
    fn validator(&self) -> jsonschema::Validator {
        let schema = if updating() {
            self.generated()
        } else {
            self.checked_in()
        };
        jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("{}: not a usable schema: {e}", self.schema_path().display()))
    }
}

fn filter(name: &str) -> &'static Filter {
    FILTERS
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no filter named {name:?}"))
}

/// The validation errors of `config`, one line each, with the JSON pointer of the offending value.
fn errors(validator: &jsonschema::Validator, config: &Value) -> Vec<String> {
    validator
        .iter_errors(config)
        .map(|e| format!("at {:?}: {e}", e.instance_path().to_string()))
        .collect()
}

fn updating() -> bool {
    std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v == "1")
}

#[test]
fn checked_in_schemas_match_the_config_types() {
    let update = updating();
    let mut drifted = Vec::new();
    for filter in &FILTERS {
        let generated = filter.generated();
        if let Err(e) = jsonschema::meta::validate(&generated) {
            panic!(
                "the generated schema of {} is not a valid JSON Schema: {e}",
                filter.name
            );
        }
        let path = filter.schema_path();
        if update {
            let mut text = serde_json::to_string_pretty(&generated).expect("serialize a schema");
            text.push('\n');
            // Whole or not at all: the other tests of this file read these files meanwhile.
            let scratch = path.with_extension("json.tmp");
            fs::write(&scratch, text)
                .and_then(|()| fs::rename(&scratch, &path))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            continue;
        }
        let current = fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok());
        if current.as_ref() != Some(&generated) {
            drifted.push(path.display().to_string());
        }
    }
    assert!(
        drifted.is_empty(),
        "these schema files are missing or differ from the config types they describe:\n  {}\n\
         regenerate them with `{UPDATE_HINT}` and check in the result",
        drifted.join("\n  ")
    );
}

/// Every filter config that ships: (file, filter name, config) for each wasm filter embedded in
/// `envoy/*.yaml` and each example `envoy/examples/<filter>.json`.
fn example_configs() -> Vec<(String, String, Value)> {
    let mut found: Vec<(String, String, Value)> = examples::envoy_yaml_files()
        .iter()
        .flat_map(|path| examples::embedded_configs(path, |text| serde_yaml_ng::from_str(text)))
        .map(|embedded| (embedded.file, embedded.root_id, embedded.config))
        .collect();
    for path in examples::example_files() {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let filter = examples::filter(&stem);
        found.push((examples::relative(&path), filter.root_id.to_owned(), filter.example()));
    }
    found
}

#[test]
fn every_example_config_validates_against_its_schema() {
    let validators: BTreeMap<&str, jsonschema::Validator> = FILTERS.iter().map(|f| (f.name, f.validator())).collect();
    let mut per_filter: BTreeMap<&str, usize> = FILTERS.iter().map(|f| (f.name, 0)).collect();
    let mut failures = Vec::new();
    for (file, name, config) in example_configs() {
        let validator = validators
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{file}: a wasm filter {name:?} that is none of {:?}", per_filter.keys()));
        *per_filter.entry(filter(&name).name).or_default() += 1;
        for error in errors(validator, &config) {
            failures.push(format!("{file} {name} {error}"));
        }
        // The schema must not be looser or stricter than the parser on what ships.
        if let Err(e) = (filter(&name).parses)(&config) {
            failures.push(format!("{file} {name}: the filter's parser refuses it: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "example configs that fail:\n{}",
        failures.join("\n")
    );
    let missing: Vec<&&str> = per_filter.iter().filter(|(_, n)| **n == 0).map(|(f, _)| f).collect();
    assert!(missing.is_empty(), "no example config under envoy/ for {missing:?}");
    let here: BTreeSet<&str> = FILTERS.iter().map(|f| f.name).collect();
    let harness: BTreeSet<&str> = examples::FILTERS.iter().map(|f| f.root_id).collect();
    assert_eq!(
        here, harness,
        "this file and tests/src/examples.rs list different filters"
    );
}

/// A small valid config of `name` that reaches the nested structs and enum variants the negative
/// controls below change. Not an example from `envoy/`: these must not move when the examples do.
fn base(name: &str) -> Value {
    match name {
        "header_scrub" => json!({
            "request": {"remove": ["x-debug"]},
            "response": {"strip_preset": "default", "security_headers": {"preset": "api"}},
            "cors": {"allowed_origins": ["https://app.example.com"], "max_age_secs": 600}
        }),
        "jwt_auth" => json!({
            "realm": "api",
            "providers": {"demo": {
                "issuer": "https://issuer.example.com",
                "jwks": {"type": "remote", "cluster": "oauth", "path": "/jwks"},
                "from": [{"type": "header", "name": "authorization", "prefix": "Bearer "}]
            }},
            "rules": [{"match": {"prefix": "/public/"}, "requires": {"type": "none"}}]
        }),
        "scope_gate" => json!({
            "rules": [
                {"match": {"prefix": "/orders"}, "requires": {"type": "any_of", "scopes": ["orders:read"]}},
                {"requires": {"type": "public"}}
            ]
        }),
        "phantom_token" => json!({
            "introspection": {
                "cluster": "oauth", "path": "/introspect", "authority": "oauth",
                "client_id": "gateway", "client_secret": "secret",
                "response": {"type": "signed", "upstream": {"type": "response_header", "header": "x-introspection"}}
            },
            "jwt": {"issuer": "https://issuer.example.com", "jwks": {"type": "oidc", "cluster": "oauth"}}
        }),
        "rate_limit" => json!({
            "limits": [{
                "name": "per_client",
                "descriptor": [{"key": "client_id",
                                "source": {"type": "claim", "claim": "client_id"},
                                "fallback": {"type": "client_address"}}],
                "enforce": {"type": "local", "requests": 5, "per": "minute"}
            }],
            "service": {"transport": {"type": "http"}, "cluster": "ratelimit", "domain": "gateway",
                        "allowed_response_headers": ["x-ratelimit-limit"]}
        }),
        _ => panic!("no base config for {name}"),
    }
}

#[test]
fn the_base_configs_are_valid() {
    for filter in &FILTERS {
        let config = base(filter.name);
        (filter.parses)(&config).unwrap_or_else(|e| panic!("{}: the parser refuses the base config: {e}", filter.name));
        let errors = errors(&filter.validator(), &config);
        assert!(
            errors.is_empty(),
            "{}: the schema refuses the base config: {errors:?}",
            filter.name
        );
    }
}

/// `change` applied to the base config of `name` is refused by the filter's parser and by the
/// schema.
fn assert_refused(name: &str, what: &str, change: impl FnOnce(&mut Value)) {
    let filter = filter(name);
    let mut config = base(name);
    change(&mut config);
    assert!(
        (filter.parses)(&config).is_err(),
        "{name} ({what}): the parser accepts it, so this is no negative control: {config}"
    );
    assert!(
        !filter.validator().is_valid(&config),
        "{name} ({what}): the schema accepts what the parser refuses: {config}"
    );
}

fn set(config: &mut Value, pointer: &str, key: &str, value: Value) {
    config
        .pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("the base config has no object at {pointer:?}"))
        .insert(key.to_owned(), value);
}

#[test]
fn schemas_refuse_unknown_fields_everywhere() {
    for filter in &FILTERS {
        assert_refused(filter.name, "unknown top-level field", |c| {
            set(c, "", "not_a_field", json!(true))
        });
    }
    // Nested structs.
    assert_refused("header_scrub", "unknown field in cors", |c| {
        set(c, "/cors", "allowed_origin", json!("https://app.example.com"))
    });
    assert_refused("header_scrub", "unknown field in security_headers", |c| {
        set(c, "/response/security_headers", "remove", json!([]))
    });
    assert_refused("jwt_auth", "unknown field in a route match", |c| {
        set(c, "/rules/0/match", "path", json!("/public/"))
    });
    assert_refused("rate_limit", "unknown field in service", |c| {
        set(c, "/service", "timeout", json!(200))
    });
    // Variants of internally tagged enums, with fields and without.
    assert_refused("rate_limit", "unknown field in a local enforce", |c| {
        set(c, "/limits/0/enforce", "window", json!("minute"))
    });
    assert_refused("rate_limit", "a field on the empty variant path", |c| {
        set(c, "/limits/0/descriptor/0/fallback", "type", json!("path"));
        set(c, "/limits/0/descriptor/0/fallback", "header", json!("x-api-key"));
    });
    assert_refused("rate_limit", "unknown field in a client_address source", |c| {
        set(c, "/limits/0/descriptor/0/fallback", "prefix", json!(64))
    });
    assert_refused("jwt_auth", "unknown field in a jwks variant", |c| {
        set(c, "/providers/demo/jwks", "kid", json!("k1"))
    });
    assert_refused("jwt_auth", "unknown field in a token source", |c| {
        set(c, "/providers/demo/from/0", "scheme", json!("Bearer"))
    });
    assert_refused("jwt_auth", "fields on the empty variant none", |c| {
        set(c, "/rules/0/requires", "providers", json!(["demo"]))
    });
    assert_refused("scope_gate", "fields on the empty variant public", |c| {
        set(c, "/rules/1/requires", "scopes", json!(["admin"]))
    });
    assert_refused("phantom_token", "unknown field in a nested variant", |c| {
        set(c, "/introspection/response/upstream", "field", json!("jwt"))
    });
}

#[test]
fn schemas_refuse_unknown_tags_and_bad_values() {
    assert_refused("rate_limit", "unknown enforce type", |c| {
        c["limits"][0]["enforce"] = json!({"type": "global"});
    });
    assert_refused("rate_limit", "no type tag", |c| {
        c["limits"][0]["enforce"] = json!({"requests": 1, "per": "second"});
    });
    assert_refused("rate_limit", "a required field missing", |c| {
        c["limits"][0]["enforce"] = json!({"type": "local", "per": "second"});
    });
    assert_refused("rate_limit", "unknown unit", |c| {
        c["limits"][0]["enforce"]["per"] = json!("fortnight");
    });
    assert_refused("rate_limit", "a header name with a space", |c| {
        set(c, "/service", "allowed_response_headers", json!(["x rate"]))
    });
    assert_refused("jwt_auth", "a header name with a colon inside", |c| {
        set(c, "/providers/demo", "payload_header", json!("x-jwt:payload"))
    });
    assert_refused("rate_limit", "a u32 out of range", |c| {
        set(c, "", "max_keys", json!(u64::from(u32::MAX) + 1))
    });
    assert_refused("jwt_auth", "a realm with a quote", |c| {
        set(c, "", "realm", json!("a\"b"))
    });
    assert_refused("jwt_auth", "a negative cache size", |c| {
        set(c, "", "cache_max_entries", json!(-1))
    });
    assert_refused("header_scrub", "unknown strip preset", |c| {
        set(c, "/response", "strip_preset", json!("all"))
    });
    assert_refused("phantom_token", "a string for a number", |c| {
        set(c, "/introspection", "timeout_ms", json!("2s"))
    });
    assert_refused("scope_gate", "no rules", |c| {
        c.as_object_mut().expect("an object").remove("rules");
    });
}

/// A template that renders a missing value as `null` must not widen a config: `"prefix": null` would
/// otherwise be a rule for every path. An optional field is given or left out.
#[test]
fn null_is_refused_for_optional_fields() {
    assert_refused("scope_gate", "a null prefix", |c| {
        c["rules"][0]["match"]["prefix"] = Value::Null;
    });
    assert_refused("rate_limit", "a null fallback", |c| {
        c["limits"][0]["descriptor"][0]["fallback"] = Value::Null;
    });
    assert_refused("header_scrub", "a null cors", |c| set(c, "", "cors", Value::Null));
    assert_refused("jwt_auth", "a null audience list", |c| {
        set(c, "/providers/demo", "audiences", Value::Null)
    });
    let message =
        (filter("scope_gate").parses)(&json!({"rules": [{"match": {"exact": null}, "requires": {"type": "public"}}]}))
            .expect_err("refused");
    assert_eq!(
        message,
        "rules[0].match.exact: null is not a value here: leave the field out for its default"
    );
}

/// Every default a schema states is a value its filter takes: an editor that writes one in gets
/// a config that loads. None holds a `null` (which the parsers refuse), and a top-level field's
/// default written into a config passes both the schema and the parser.
#[test]
fn schema_defaults_are_values_the_filters_take() {
    fn defaults<'a>(node: &'a Value, at: String, found: &mut Vec<(String, &'a Value)>) {
        match node {
            Value::Object(members) => {
                if let Some(default) = members.get("default") {
                    found.push((at.clone(), default));
                }
                for (name, member) in members {
                    defaults(member, format!("{at}/{name}"), found);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    defaults(item, format!("{at}/{i}"), found);
                }
            }
            _ => {}
        }
    }
    fn holds_null(value: &Value) -> bool {
        match value {
            Value::Null => true,
            Value::Object(members) => members.values().any(holds_null),
            Value::Array(items) => items.iter().any(holds_null),
            _ => false,
        }
    }
    let mut failures = Vec::new();
    for filter in &FILTERS {
        let schema = filter.generated();
        let mut found = Vec::new();
        defaults(&schema, String::new(), &mut found);
        for (at, default) in &found {
            if holds_null(default) {
                failures.push(format!("{}: the default at {at} holds null: {default}", filter.name));
            }
        }
        let validator = filter.validator();
        let top_level = schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten();
        for (name, property) in top_level {
            let Some(default) = property.get("default") else {
                continue;
            };
            let mut config = base(filter.name);
            config[name] = default.clone();
            for error in errors(&validator, &config) {
                failures.push(format!("{}: the default of {name}: {error}", filter.name));
            }
            if let Err(e) = (filter.parses)(&config) {
                failures.push(format!("{}: the default of {name} is refused: {e}", filter.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
