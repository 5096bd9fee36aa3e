//! JSON text read and written without serde_json's deserializer and serializer (see `read` for
//! why): writing here links no float formatting (about 11 KB of a module) for values that never
//! hold a float.

use std::fmt::Write as _;

mod pow10;
mod read;

pub use read::{member_text, parse, parse_members, Duplicate, Member, Node, Reader, Syntax, SyntaxError};

use serde_json::Value;

/// Appends `text` as a JSON string, escaped as serde_json escapes it.
pub fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let hex = |digit: u32| char::from_digit(digit, 16).unwrap_or('0');
                out.push_str("\\u00");
                out.push(hex(u32::from(c) >> 4));
                out.push(hex(u32::from(c) & 0xf));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `value` as compact JSON text, byte for byte as serde_json writes it, or `None` if it holds a
/// number that is not an integer: one written with a fraction or an exponent, or past 64 bits.
pub fn integral_text(value: &Value) -> Option<String> {
    let mut out = String::new();
    write_integral(&mut out, value)?;
    Some(out)
}

/// serde_json reads at most 128 levels deep, so the recursion is as deep.
fn write_integral(out: &mut String, value: &Value) -> Option<()> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => match (number.as_u64(), number.as_i64()) {
            (Some(unsigned), _) => write!(out, "{unsigned}").ok()?,
            (None, Some(signed)) => write!(out, "{signed}").ok()?,
            (None, None) => return None,
        },
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_integral(out, item)?;
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (name, member)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, name);
                out.push(':');
                write_integral(out, member)?;
            }
            out.push('}');
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for text in [
            "",
            "plain",
            "q\"b\\",
            "\n\r\t\u{8}\u{c}",
            "\u{0}\u{1f}\u{7f}",
            "é東京😀",
        ] {
            let mut out = String::new();
            write_string(&mut out, text);
            assert_eq!(out, Value::from(text).to_string(), "{text:?}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn values_without_fractions_are_written_as_serde_json_writes_them() {
        let values = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(-1),
            json!("a\"b"),
            json!([]),
            json!({}),
            json!({"b": [1, "x", null, {"k": false}], "a": {"é": -7}}),
        ];
        for value in values {
            assert_eq!(integral_text(&value), Some(value.to_string()), "{value}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_number_with_a_fraction_or_exponent_anywhere_gives_none() {
        for raw in [
            "1.5",
            "1.0",
            "1e3",
            "-0.0",
            "18446744073709551616",
            "[1, 2.5]",
            r#"{"a": {"b": 1E2}}"#,
        ] {
            let value: Value = serde_json::from_str(raw).unwrap();
            assert_eq!(integral_text(&value), None, "{raw}");
        }
    }
}

/// Arbitrary JSON values for the property tests of this module's writer and reader.
#[cfg(all(test, not(target_family = "wasm")))]
mod arbitrary {
    use proptest::prelude::*;
    use serde_json::Value;

    /// Any JSON value up to four levels deep; with `floats`, numbers with fractions too.
    pub fn values(floats: bool) -> impl Strategy<Value = Value> {
        let float = any::<f64>().prop_map(Value::from);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            if floats {
                float.boxed()
            } else {
                Just(Value::Null).boxed()
            },
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }
}

#[cfg(all(test, not(target_family = "wasm")))]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn integral_text_is_serde_jsons_text(value in arbitrary::values(false)) {
            prop_assert_eq!(integral_text(&value), Some(value.to_string()));
        }
    }
}
