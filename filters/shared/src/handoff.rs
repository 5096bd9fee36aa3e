//! The filter-state keys by which filters hand verified facts to the filters behind them.
//! Filter state is request-scoped and set only by filters: a client cannot forge it, unlike a
//! header.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// The verified token's claims, as the JSON object of its payload. Set by jwt-auth (and
/// phantom-token); read by scope-gate and rate-limit.
pub const CLAIMS: &str = "apisec.claims";

/// The members named `wanted` of the verified claims `raw`, the JSON object filter state holds
/// under [`CLAIMS`]. The other members are read (the whole text must be well-formed JSON) and
/// dropped, never put in a map: a filter wants one or two claims of a payload that may hold
/// dozens, on every request. `None` if `raw` is not one JSON object. A member given twice counts
/// as its last, as when the whole object is read.
///
/// (Skipping them with serde's `IgnoredAny` instead is 2 to 4 times faster again on a large
/// payload, but links serde_json's skipping code: 2.6 KB, which takes scope_gate.wasm over 300 KB.)
pub fn read_claims(raw: &[u8], wanted: &[String]) -> Option<Map<String, Value>> {
    let mut reader = serde_json::Deserializer::from_slice(raw);
    let claims = reader.deserialize_any(Wanted(wanted)).ok()?;
    reader.end().ok()?;
    claims
}

/// Visits a JSON object, keeping the members it names; anything else is `None`.
///
/// Not an error: refusing in serde's way spells out what was found, which links core's float
/// formatting (20 KB of every module) and serde_json's error builder.
struct Wanted<'a>(&'a [String]);

impl<'de> Visitor<'de> for Wanted<'_> {
    type Value = Option<Map<String, Value>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<Self::Value, A::Error> {
        while items.next_element::<Value>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Self::Value, A::Error> {
        let mut kept = Map::new();
        while let Some(position) = members.next_key_seed(MemberName(self.0))? {
            match position.and_then(|i| self.0.get(i)) {
                Some(name) => {
                    let value: Value = members.next_value()?;
                    kept.insert(name.clone(), value);
                }
                None => {
                    members.next_value::<Value>()?;
                }
            }
        }
        Ok(Some(kept))
    }
}

/// A member's name, as its position among the wanted names (`None`: not wanted), read without
/// allocating.
struct MemberName<'a>(&'a [String]);

impl<'de> DeserializeSeed<'de> for MemberName<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for MemberName<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|wanted| wanted == name))
    }
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
