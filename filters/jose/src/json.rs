//! JSON objects parsed strictly: a member name that appears twice, at any depth, is an error.
//! (`serde_json` keeps the last one silently, so `{"sub":"alice","sub":"admin"}` would mean
//! whatever the last parser in the chain decides.)

use serde_json::{Map, Value};

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
    let node = shared::json::parse(bytes).map_err(|_| ObjectError::NotJson)?;
    match node.into_strict_value() {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ObjectError::NotObject),
        Err(shared::json::Duplicate) => Err(ObjectError::Duplicate),
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
