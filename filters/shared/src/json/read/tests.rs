use serde_json::json;
use wasm_bindgen_test::wasm_bindgen_test;

use super::*;

/// What serde_json makes of `text`: the value, or its error's words without the place.
fn serde_json_reads(text: &[u8]) -> Result<Value, String> {
    serde_json::from_slice::<Value>(text).map_err(|e| {
        let message = e.to_string();
        match message.rfind(" at line ") {
            Some(i) => message[..i].to_owned(),
            None => message,
        }
    })
}

fn ours(text: &[u8]) -> Result<Value, String> {
    parse(text)
        .map(Node::into_value)
        .map_err(|e| e.kind.message().to_owned())
}

/// The same value, but a double may be off by a few units in the last place: serde_json rounds
/// some doubles that way, unless its `float_roundtrip` feature is on (as the dependencies of the
/// workspace's tests turn it on, and the modules' build does not). The reader rounds as the
/// modules' serde_json did. Units in the last place, not a relative error, because a subnormal
/// double's unit is a large part of it (4.9e-324 of 2.1e-309).
fn same(ours: &Value, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Value::Number(a), Value::Number(b)) if a.is_f64() && b.is_f64() => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            a == b || (a.is_sign_negative() == b.is_sign_negative() && a.to_bits().abs_diff(b.to_bits()) <= 8)
        }
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b)),
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|((ka, a), (kb, b))| ka == kb && same(a, b))
        }
        _ => ours == theirs,
    }
}

fn agrees(ours: &Result<Value, String>, theirs: &Result<Value, String>) -> bool {
    match (ours, theirs) {
        (Ok(a), Ok(b)) => same(a, b),
        _ => ours == theirs,
    }
}

#[track_caller]
fn reads_as_serde_json(text: &[u8]) {
    let (ours, theirs) = (ours(text), serde_json_reads(text));
    assert!(
        agrees(&ours, &theirs),
        "{:?}: {ours:?} against {theirs:?}",
        String::from_utf8_lossy(text)
    );
    // Reading only some members accepts and refuses the same texts, to the same members.
    let wanted = ["a".to_owned(), String::new()];
    let some = parse_members(text, &wanted);
    let expected = match parse(text) {
        Ok(Node::Object(members, _)) => Some(
            members
                .into_iter()
                .filter(|(name, _)| wanted.contains(name))
                .collect::<Vec<_>>(),
        ),
        _ => None,
    };
    assert_eq!(some, expected, "{:?}", String::from_utf8_lossy(text));
}

#[wasm_bindgen_test(unsupported = test)]
fn values_read_as_serde_json_reads_them() {
    for text in [
        r#"{"a": [1, -2, 3.5, 18446744073709551615, 1e300, true, null, "x\u00e9"], "b": {"c": {}}, "": 0}"#,
        " \t\r\n[ ] ",
        "{}",
        r#""\"\\\/\b\f\n\r\t\u0000\u001f\uD83D\uDE00\u00E9é東京""#,
        "0",
        "-0",
        "-0.0",
        "0e0",
        "1E+2",
        "1e-2",
        "123.456e-7",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999999999.5e3",
        "0.00000000000000000000000000000000000000000000000000000000001",
        "1.7976931348623157e308",
        "2.2250738585072014e-308",
        "4.9e-324",
        "-2.12464570310552e-309",
        "1e-400",
        "0e999999999999",
        "1e-99999999999",
        "123456789012345678901234567890e-10",
        "0.1234567890123456789012345678901234567890",
        "1e308",
        r#"{"a": 1, "a": 2}"#,
    ] {
        reads_as_serde_json(text.as_bytes());
        assert!(ours(text.as_bytes()).is_ok(), "{text}");
    }
}

/// As the modules' serde_json (without `float_roundtrip`): the significand divided by the
/// closest doubles to the powers of ten, even where that is a unit off the closest double.
#[wasm_bindgen_test(unsupported = test)]
fn doubles_round_as_the_modules_serde_json_rounds_them() {
    for (text, expected) in [
        ("-2.12464570310552e-309", 212464570310552.0_f64 / 1e308 / 1e15),
        ("123.456e-7", 123456.0 / 1e10),
        ("1.7976931348623157e308", 17976931348623157.0 * 1e292),
    ] {
        let Ok(Node::F64(read)) = parse(text.as_bytes()) else {
            panic!("{text}: not a double");
        };
        assert_eq!(read.abs().to_bits(), expected.to_bits(), "{text}");
    }
    assert_ne!(
        212464570310552.0 / 1e308 / 1e15,
        2.12464570310552e-309,
        "a case where the two differ"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn errors_are_serde_jsons() {
    for (text, message) in [
        ("", "EOF while parsing a value"),
        ("[", "EOF while parsing a list"),
        ("[1", "EOF while parsing a list"),
        ("[1,", "EOF while parsing a value"),
        ("[1,]", "trailing comma"),
        ("[1 2]", "expected `,` or `]`"),
        ("[,1]", "expected value"),
        ("{", "EOF while parsing an object"),
        ("{\"a\"", "EOF while parsing an object"),
        ("{\"a\" 1}", "expected `:`"),
        ("{\"a\":", "EOF while parsing a value"),
        ("{\"a\":1,}", "trailing comma"),
        ("{\"a\":1,", "EOF while parsing a value"),
        ("{\"a\":1 \"b\":2}", "expected `,` or `}`"),
        ("{1:1}", "key must be a string"),
        ("{\"a\":1,2:1}", "key must be a string"),
        ("\"abc", "EOF while parsing a string"),
        (
            "\"a\u{1}\"",
            "control character (\\u0000-\\u001F) found while parsing a string",
        ),
        ("\"\\x\"", "invalid escape"),
        ("\"\\u12g4\"", "invalid escape"),
        ("\"\\u12\"", "EOF while parsing a string"),
        ("\"\\uDC00\"", "lone leading surrogate in hex escape"),
        ("\"\\uD800\"", "unexpected end of hex escape"),
        ("\"\\uD800\\n\"", "unexpected end of hex escape"),
        ("\"\\uD800\\u0041\"", "lone leading surrogate in hex escape"),
        ("\"\\uD800", "EOF while parsing a string"),
        ("nul", "EOF while parsing a value"),
        ("nulx", "expected ident"),
        ("tru", "EOF while parsing a value"),
        ("fals3", "expected ident"),
        ("x", "expected value"),
        ("-", "EOF while parsing a value"),
        ("-x", "invalid number"),
        ("01", "invalid number"),
        ("1.", "EOF while parsing a value"),
        ("1.x", "invalid number"),
        ("1e", "EOF while parsing a value"),
        ("1e+", "EOF while parsing a value"),
        ("1ex", "invalid number"),
        ("1e309", "number out of range"),
        ("1e99999999999", "number out of range"),
        ("-1e400", "number out of range"),
        ("{} {}", "trailing characters"),
        ("1 x", "trailing characters"),
    ] {
        assert_eq!(ours(text.as_bytes()), Err(message.to_owned()), "{text:?}");
        reads_as_serde_json(text.as_bytes());
    }
    // Not UTF-8, in a string or anywhere else.
    for text in [&b"\"\xff\""[..], b"{\"\xc3\":1}", b"\xef\xbb\xbf{}", b"[\xff]"] {
        assert!(ours(text).is_err());
        reads_as_serde_json(text);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn nests_up_to_127_levels() {
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert!(ours(nested(127).as_bytes()).is_ok());
    assert_eq!(ours(nested(128).as_bytes()), Err("recursion limit exceeded".to_owned()));
    reads_as_serde_json(nested(127).as_bytes());
    reads_as_serde_json(nested(128).as_bytes());
    let objects = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    reads_as_serde_json(objects(127).as_bytes());
    reads_as_serde_json(objects(128).as_bytes());
    reads_as_serde_json(nested(100_000).as_bytes());
}

#[wasm_bindgen_test(unsupported = test)]
fn trailing_text_is_placed_as_serde_json_places_it() {
    for text in ["{}x", "{\n}\n  x", "[1]\n\n,"] {
        let ours = parse(text.as_bytes()).unwrap_err().to_string();
        let theirs = serde_json::from_str::<Value>(text).unwrap_err().to_string();
        assert_eq!(ours, theirs, "{text:?}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn strict_values_refuse_a_repeated_name_at_any_depth() {
    for text in [
        r#"{"a": 1, "a": 1}"#,
        r#"{"a": {"x": 1, "x": 2}}"#,
        r#"{"a": [{"x": 1, "x": 2}]}"#,
        // Escapes decode to the same name.
        r#"{"alg": "HS256", "\u0061lg": "RS256"}"#,
    ] {
        let node = parse(text.as_bytes()).unwrap();
        assert_eq!(node.into_strict_value(), Err(Duplicate), "{text}");
        // Loosely read, the last one counts, as in serde_json.
        assert_eq!(
            parse(text.as_bytes()).unwrap().into_value(),
            serde_json_reads(text.as_bytes()).unwrap()
        );
    }
    let same_name_elsewhere = parse(br#"{"a": {"x": 1}, "b": {"x": 1}}"#).unwrap();
    assert_eq!(
        same_name_elsewhere.into_strict_value(),
        Ok(json!({"a": {"x": 1}, "b": {"x": 1}}))
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn members_not_wanted_are_checked_all_the_same() {
    let wanted = ["a".to_owned()];
    let members = parse_members(
        br#"{"b": {"c": [1, "x\u00e9"]}, "a": [true], "d": "y", "a": 2}"#,
        &wanted,
    );
    assert_eq!(
        members,
        Some(vec![
            ("a".to_owned(), Node::Array(vec![Node::Bool(true)], false)),
            ("a".to_owned(), Node::U64(2))
        ])
    );
    for broken in [
        &br#"{"a": 1, "b": "\x"}"#[..],
        br#"{"a": 1, "b": "\uDC00"}"#,
        b"{\"a\": 1, \"b\": \"\xff\"}",
        b"{\"a\": 1, \"b\": \"\x01\"}",
        br#"{"a": 1, "b": [1,]}"#,
        br#"{"a": 1, "b": {"c" 1}}"#,
        br#"{"a": 1, "b": 1e400}"#,
        br#"{"a": 1, "b": nul}"#,
        br#"{"a": 1} x"#,
        br#"[{"a": 1}]"#,
    ] {
        assert_eq!(
            parse_members(broken, &wanted),
            None,
            "{:?}",
            String::from_utf8_lossy(broken)
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_members_text_is_the_last_one_as_written() {
    let text = br#" { "a" : [1, {"b": 2.50}] , "t": {"x": 1e3, "y": "\u00e9"}, "t" :  {"z": -0.0}  } "#;
    assert_eq!(member_text(text, "a"), Some(&br#"[1, {"b": 2.50}]"#[..]));
    assert_eq!(member_text(text, "t"), Some(&br#"{"z": -0.0}"#[..]));
    assert_eq!(member_text(text, "b"), None, "only the outermost object's members");
    assert_eq!(member_text(text, "missing"), None);
    assert_eq!(member_text(br#"[{"a": 1}]"#, "a"), None);
    assert_eq!(member_text(br#"{"a": 1} x"#, "a"), None);
    assert_eq!(member_text(br#"{"a": 1, "b": [}"#, "a"), None);
    assert_eq!(member_text(br#"{"a":"x"}"#, "a"), Some(&br#""x""#[..]));
}

#[cfg(not(target_family = "wasm"))]
mod properties {
    use proptest::prelude::*;

    use super::*;

    use crate::json::arbitrary::values;

    /// Text made of JSON's own bytes, mostly broken.
    fn jsonish() -> impl Strategy<Value = Vec<u8>> {
        const PIECES: &[&[u8]] = &[
            b"{",
            b"}",
            b"[",
            b"]",
            b",",
            b":",
            b"\"",
            b"\\",
            b"\\u",
            b"D83D",
            b"\\uDE00",
            b"00e9",
            b" ",
            b"\n",
            b"-",
            b"0",
            b"1",
            b"9",
            b".",
            b"e",
            b"E+",
            b"e-",
            b"308",
            b"18446744073709551616",
            b"null",
            b"tr",
            b"ue",
            b"false",
            b"\"a\"",
            b"\x01",
            b"\xc3\xa9",
            b"\xc3",
        ];
        let pieces = proptest::sample::select(PIECES);
        proptest::collection::vec(pieces, 0..24).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn any_value_reads_as_serde_json_reads_it(value in values(true)) {
            // Not always `value` again: serde_json's reading rounds some doubles to a neighbour.
            let text = serde_json::to_vec(&value).unwrap();
            prop_assert!(ours(&text).is_ok());
            reads_as_serde_json(&text);
            reads_as_serde_json(&serde_json::to_vec_pretty(&value).unwrap());
        }

        #[test]
        fn broken_text_is_refused_as_serde_json_refuses_it(text in jsonish()) {
            reads_as_serde_json(&text);
        }

        #[test]
        fn cut_text_is_refused_as_serde_json_refuses_it(value in values(true), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut text = serde_json::to_vec(&value).unwrap();
            let at = cut.index(text.len() + 1);
            let mut changed = text.clone();
            changed.insert(at, byte);
            reads_as_serde_json(&changed);
            text.truncate(at);
            reads_as_serde_json(&text);
        }

        #[test]
        fn numbers_read_as_serde_json_reads_them(
            sign in prop_oneof![Just(""), Just("-")],
            int in "[0-9]{1,30}",
            fraction in proptest::option::of("[0-9]{0,30}"),
            exponent in proptest::option::of(("[eE]", prop_oneof![Just(""), Just("+"), Just("-")], "[0-9]{0,4}")),
        ) {
            let mut text = format!("{sign}{int}");
            if let Some(fraction) = fraction {
                text.push('.');
                text.push_str(&fraction);
            }
            if let Some((e, sign, digits)) = exponent {
                text.push_str(&format!("{e}{sign}{digits}"));
            }
            reads_as_serde_json(text.as_bytes());
        }
    }
}
