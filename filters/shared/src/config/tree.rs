//! The config's JSON as a tree, read once by one non-generic pass, and the place of each value in
//! it.
//!
//! Why a tree, and not serde's deserializers over the text? Code size. serde's derived visitors
//! and the deserializer they drive are compiled once per config type, and with the field path
//! tracked on the way (what `serde_path_to_error` does) every visitor is wrapped again: in a
//! filter module that machinery came to 34 to 73 KB, a fifth of the module. Here the text is
//! parsed once into a [`Node`] tree (by `crate::json`'s reader), and the config types read the
//! tree through [`At`] with the small, mostly non-generic readers of `super::read`.
//!
//! The errors are serde_json's, word for word (see [`Error`]), and the paths follow the same rules
//! (`a.b[2].c`; `?` for a key that could not be read). A syntax error is reported first, at the
//! place the text broke, before any type is read: a config must parse before its fields mean
//! anything.

use std::cell::Cell;
use std::fmt::{self, Write as _};

use serde::de::{self, Error as _, Expected, Unexpected};

/// Why the tree does not fit a config type, in serde_json's words: what `serde_json::Error` would
/// say reading the type from the text, minus the place in the text (the field path says more). An own type only to spell the
/// values it did not expect: serde_json's goes through serde's `Unexpected` display, which links
/// core's whole float formatting (some 20 KB) for a case serde_json never takes.
///
/// A `Box<String>`: one thin pointer, like serde_json's error, so the `Result` every deserializer
/// call returns stays small. With `String` (three words) or `Box<str>` (two) the config code of
/// every module grows by several KB, the bundle's by some 60 KB.
#[allow(
    clippy::box_collection,
    reason = "a thin pointer keeps every Result small: see above"
)]
pub struct Error(Box<String>);

impl Error {
    pub fn into_message(self) -> String {
        *self.0
    }
}

impl de::Error for Error {
    #[cold]
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self(Box::new(message.to_string()))
    }

    #[cold]
    fn invalid_type(unexpected: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Self::custom(format_args!(
            "invalid type: {}, expected {expected}",
            Spelled(unexpected)
        ))
    }

    #[cold]
    fn invalid_value(unexpected: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Self::custom(format_args!(
            "invalid value: {}, expected {expected}",
            Spelled(unexpected)
        ))
    }
}

impl std::error::Error for Error {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// An unexpected value as serde_json spells it: serde's words, but `null` for unit. A float is
/// not spelled out: printing one is 4 KB of float formatting in every module that has no other
/// use for it (the error's path already points at the value).
struct Spelled<'a>(Unexpected<'a>);

impl fmt::Display for Spelled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Unexpected::Bool(v) => write!(f, "boolean `{v}`"),
            Unexpected::Unsigned(v) => write!(f, "integer `{v}`"),
            Unexpected::Signed(v) => write!(f, "integer `{v}`"),
            Unexpected::Float(_) => f.write_str("floating point"),
            Unexpected::Char(v) => write!(f, "character `{v}`"),
            Unexpected::Str(v) => write!(f, "string {v:?}"),
            Unexpected::Bytes(_) => f.write_str("byte array"),
            Unexpected::Unit => f.write_str("null"),
            Unexpected::Option => f.write_str("Option value"),
            Unexpected::NewtypeStruct => f.write_str("newtype struct"),
            Unexpected::Seq => f.write_str("sequence"),
            Unexpected::Map => f.write_str("map"),
            Unexpected::Enum => f.write_str("enum"),
            Unexpected::UnitVariant => f.write_str("unit variant"),
            Unexpected::NewtypeVariant => f.write_str("newtype variant"),
            Unexpected::TupleVariant => f.write_str("tuple variant"),
            Unexpected::StructVariant => f.write_str("struct variant"),
            Unexpected::Other(other) => f.write_str(other),
        }
    }
}

pub use crate::json::{Member, Node};

/// Where a value sits: the field path, built only when an error needs it.
#[derive(Clone, Copy)]
pub enum Chain<'a> {
    Root,
    Index(&'a Chain<'a>, usize),
    Key(&'a Chain<'a>, &'a str),
    /// A key that could not be read.
    UnknownKey(&'a Chain<'a>),
}

impl Chain<'_> {
    /// `a.b[2].c`; the root is "".
    pub(super) fn render(&self, out: &mut String, first: &mut bool) {
        let segment = match self {
            Chain::Root => return,
            Chain::Index(parent, i) => {
                parent.render(out, first);
                *first = false;
                let _ = write!(out, "[{i}]");
                return;
            }
            Chain::Key(parent, key) => {
                parent.render(out, first);
                *key
            }
            Chain::UnknownKey(parent) => {
                parent.render(out, first);
                "?"
            }
        };
        if !*first {
            out.push('.');
        }
        *first = false;
        out.push_str(segment);
    }
}

/// The first (innermost) place an error was seen.
#[derive(Default)]
pub struct Track {
    path: Cell<Option<String>>,
}

impl Track {
    /// Notes `chain` as the error's place unless a deeper one was noted first.
    fn trigger(&self, chain: &Chain<'_>, error: Error) -> Error {
        let path = self.path.take().unwrap_or_else(|| {
            let mut path = String::new();
            chain.render(&mut path, &mut true);
            path
        });
        self.path.set(Some(path));
        error
    }

    /// The path of the error, "" at the root. (A member named "." at the root reads as the root
    /// too, as it always has: serde_path_to_error wrote the root as ".".)
    pub fn path(&self) -> String {
        self.path.take().filter(|path| path != ".").unwrap_or_default()
    }
}

/// Where the text broke, in a tree [`read`] gave back with a syntax error: the parse stops at
/// the first error, so the break is at the end of the last member or element at every depth.
pub fn broken_path(node: &Node) -> String {
    let mut path = String::new();
    // Whether nothing is written yet: a key after anything (an empty key too) takes a dot.
    let mut first = true;
    let key = |path: &mut String, first: &mut bool, key: &str| {
        if !std::mem::take(first) {
            path.push('.');
        }
        path.push_str(key);
    };
    let mut node = node;
    loop {
        match node {
            Node::Object(_, true) => {
                key(&mut path, &mut first, "?");
                break;
            }
            // The text broke after the last key, before its value: the object's place.
            Node::Object(members, false) => match members.last() {
                Some((_, Node::Unreached)) | None => break,
                Some((name, value)) => {
                    key(&mut path, &mut first, name);
                    node = value;
                }
            },
            Node::Array(items, false) if !items.is_empty() => {
                let _ = write!(path, "[{}]", items.len() - 1);
                first = false;
                node = items.last().unwrap_or(&Node::Broken);
            }
            _ => break,
        }
    }
    if path == "." {
        path.clear();
    }
    path
}

/// A node to read, where it sits, and the error record.
#[derive(Clone, Copy)]
pub struct At<'n, 'c> {
    pub node: &'n Node,
    pub chain: &'c Chain<'c>,
    pub track: &'n Track,
}

impl At<'_, '_> {
    /// Records this place as the error's, unless a deeper one was recorded first.
    pub(super) fn fail(&self, error: Error) -> Error {
        self.track.trigger(self.chain, error)
    }

    /// What serde_json says when a value is not what a type expects.
    pub(super) fn invalid(&self, expected: &dyn Expected) -> Error {
        let unexpected = match self.node {
            Node::Broken | Node::Unreached | Node::Null => Unexpected::Unit,
            Node::Bool(v) => Unexpected::Bool(*v),
            Node::U64(v) => Unexpected::Unsigned(*v),
            Node::I64(v) => Unexpected::Signed(*v),
            Node::F64(v) => Unexpected::Float(*v),
            Node::Str(v) => Unexpected::Str(v),
            Node::Array(..) => Unexpected::Seq,
            Node::Object(..) => Unexpected::Map,
        };
        Error::invalid_type(unexpected, expected)
    }
}
