//! JSON objects parsed strictly: a member name that appears twice, at any depth, is an error.
//! (`serde_json` keeps the last one silently, so `{"sub":"alice","sub":"admin"}` would mean
//! whatever the last parser in the chain decides.)

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why [`parse_object`] refused its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectError {
    /// Not JSON at all.
    NotJson,
    /// JSON, but not an object.
    NotObject,
    /// A member name appears twice in one object, at any depth.
    Duplicate,
}

/// Parses `bytes` as one JSON object without duplicate member names.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ObjectError> {
    let duplicate = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictValue { duplicate: &duplicate }
        .deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value));
    match parsed {
        _ if duplicate.get() => Err(ObjectError::Duplicate),
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ObjectError::NotObject),
        Err(_) => Err(ObjectError::NotJson),
    }
}

/// Builds a [`Value`] like `serde_json` does, but flags (and stops at) a repeated member name.
/// `serde_json`'s recursion limit (128) still bounds the depth.
#[derive(Clone, Copy)]
struct StrictValue<'a> {
    duplicate: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if map.contains_key(&name) {
                self.duplicate.set(true);
                return Err(de::Error::custom("duplicate member name"));
            }
            let value = access.next_value_seed(self)?;
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn parses_like_serde_json() {
        let text = r#"{"a": [1, -2, 3.5, 18446744073709551615, 1e300, true, null, "x\u00e9"], "b": {"c": {}}, "": 0}"#;
        let strict = parse_object(text.as_bytes()).unwrap();
        let loose: Value = serde_json::from_str(text).unwrap();
        assert_eq!(Value::Object(strict), loose);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_duplicates_at_any_depth() {
        for text in [
            r#"{"a": 1, "a": 1}"#,
            r#"{"sub": "alice", "sub": "admin"}"#,
            r#"{"a": 1, "b": 2, "a": 3}"#,
            r#"{"a": {"x": 1, "x": 2}}"#,
            r#"{"a": [{"x": 1, "x": 2}]}"#,
            // Escapes decode to the same name.
            r#"{"alg": "HS256", "\u0061lg": "RS256"}"#,
        ] {
            assert_eq!(parse_object(text.as_bytes()), Err(ObjectError::Duplicate), "{text}");
        }
        // Same name in different objects is fine.
        assert!(parse_object(br#"{"a": {"x": 1}, "b": {"x": 1}}"#).is_ok());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_non_objects_and_garbage() {
        assert_eq!(parse_object(b"[1]"), Err(ObjectError::NotObject));
        assert_eq!(parse_object(b"\"x\""), Err(ObjectError::NotObject));
        assert_eq!(parse_object(b"null"), Err(ObjectError::NotObject));
        for bad in [
            &b""[..],
            b"{",
            b"{} {}",
            b"{}x",
            b"{'a': 1}",
            b"{\"a\": 1,}",
            b"{\"a\": \xff}",
            b"{\"\xff\": 1}",
        ] {
            assert_eq!(parse_object(bad), Err(ObjectError::NotJson), "{bad:?}");
        }
        assert_eq!(parse_object(b" {\"a\": 1} \n").unwrap()["a"], json!(1));
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(1000), "]".repeat(1000));
        assert_eq!(parse_object(deep.as_bytes()), Err(ObjectError::NotJson));
    }
}
