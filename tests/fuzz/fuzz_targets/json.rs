//! The filters' JSON reader (`shared::json`) against serde_json, from arbitrary bytes.
//!
//! Invariants, besides "never panics":
//! - it reads what serde_json reads, to the same value, and refuses what serde_json refuses, with
//!   the same words (this crate's serde_json rounds doubles as the modules' build did: no
//!   `float_roundtrip`);
//! - a member's text ([`shared::json::member_text`]) reads as that member's value;
//! - reading only some members ([`shared::json::parse_members`]) accepts the same texts, to the
//!   same members;
//! - a strict reading refuses exactly the objects that repeat a member name.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::json::{member_text, parse, parse_members, Node};

/// Whether a name repeats within one object, at any depth.
fn repeats(node: &Node) -> bool {
    match node {
        Node::Array(items, _) => items.iter().any(repeats),
        Node::Object(members, _) => {
            members
                .iter()
                .enumerate()
                .any(|(i, (name, _))| members[..i].iter().any(|(earlier, _)| earlier == name))
                || members.iter().any(|(_, value)| repeats(value))
        }
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let theirs = serde_json::from_slice::<Value>(data);
    let ours = parse(data);
    let wanted = ["a".to_owned(), "sub".to_owned(), String::new()];
    let expected = match parse(data) {
        Ok(Node::Object(members, _)) => Some(
            members
                .into_iter()
                .filter(|(name, _)| wanted.contains(name))
                .collect::<Vec<_>>(),
        ),
        _ => None,
    };
    assert_eq!(parse_members(data, &wanted), expected);
    match (&ours, &theirs) {
        (Ok(node), Ok(value)) => {
            assert!(!matches!(node, Node::Broken | Node::Unreached));
            let strict = parse(data).unwrap().into_strict_value();
            assert_eq!(strict.is_err(), repeats(node));
            assert_eq!(&parse(data).unwrap().into_value(), value);
            if let Value::Object(members) = value {
                for (name, member) in members {
                    let text = member_text(data, name).expect("every member has its text");
                    assert_eq!(&parse(text).unwrap().into_value(), member, "{name:?}");
                }
            }
        }
        (Err(ours), Err(theirs)) => {
            let theirs = theirs.to_string();
            assert!(theirs.starts_with(ours.kind.message()), "{ours} against {theirs}");
        }
        _ => panic!("ours {ours:?}, serde_json {theirs:?}"),
    }
});
