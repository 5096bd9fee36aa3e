//! The filter-state keys by which filters hand verified facts to the filters behind them.
//! Filter state is request-scoped and set only by filters: a client cannot forge it, unlike a
//! header.

use serde_json::{Map, Value};

/// The verified token's claims, as the JSON object of its payload. Set by jwt-auth (and
/// phantom-token); read by scope-gate and rate-limit.
pub const CLAIMS: &str = "apisec.claims";

/// The members named `wanted` of the verified claims `raw`, the JSON object filter state holds
/// under [`CLAIMS`]. The whole text must be well-formed JSON, but only the wanted members become
/// values (the others are checked and dropped unbuilt): a filter wants one or two claims of a
/// payload that may hold dozens, on every request. `None` if `raw` is not one JSON object. A
/// member given twice counts as its last, as when the whole object is read.
pub fn read_claims(raw: &[u8], wanted: &[String]) -> Option<Map<String, Value>> {
    let mut kept = Map::new();
    for (name, value) in crate::json::parse_members(raw, wanted)? {
        kept.insert(name, value.into_value());
    }
    Some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn keeps_the_wanted_members_only() {
        let raw = br#"{"sub":"alice","scope":"a b","aud":["x","y"],"nested":{"deep":[1,2,{"k":null}]},"exp":1.5e9}"#;
        let claims = read_claims(raw, &names(&["scope", "sub", "missing"])).unwrap();
        assert_eq!(Value::Object(claims), json!({"sub": "alice", "scope": "a b"}));
        let claims = read_claims(raw, &names(&["aud", "nested"])).unwrap();
        assert_eq!(
            Value::Object(claims),
            json!({"aud": ["x", "y"], "nested": {"deep": [1, 2, {"k": null}]}})
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_escaped_names_and_keeps_the_last_of_a_repeated_member() {
        let raw = br#"{"s\u0075b":"first","sub":"second"}"#;
        let claims = read_claims(raw, &names(&["sub"])).unwrap();
        assert_eq!(Value::Object(claims), json!({"sub": "second"}));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn agrees_with_reading_the_whole_object() {
        let raw =
            br#"{"sub":"bob","scope":["a","b"],"n":-0.0,"big":123456789012345678901234567890,"s":"\ud83d\ude00"}"#;
        let whole: Map<String, Value> = serde_json::from_slice(raw).unwrap();
        let wanted = names(&["sub", "scope", "n", "big", "s"]);
        assert_eq!(read_claims(raw, &wanted).unwrap(), whole);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn anything_but_one_well_formed_object_is_none() {
        let wanted = names(&["sub"]);
        for raw in [
            &br#"["sub"]"#[..],
            br#""sub""#,
            b"null",
            b"",
            br#"{"sub":"a"} {"sub":"b"}"#,
            br#"{"sub":"a","other":[1,}"#,
            br#"{"sub":"a","other":tru}"#,
            br#"{"sub":"a""#,
        ] {
            assert_eq!(read_claims(raw, &wanted), None, "{}", String::from_utf8_lossy(raw));
        }
        assert_eq!(read_claims(b" {} ", &wanted), Some(Map::new()));
    }
}
