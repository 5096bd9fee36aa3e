//! The config's JSON as a tree, and a serde `Deserializer` over it that tracks each value's field
//! path.
//!
//! Why not deserialize the config types straight from the text, tracking the path on the way (what
//! `serde_path_to_error` does)? Code size: that wraps every visitor, and the whole JSON parser is
//! then compiled once per config type; in a filter module the two came to a sizeable share of its
//! bytes. Here the text is parsed once, by one non-generic pass, into a [`Node`] tree, and the
//! config types read the tree through [`At`], a small deserializer that only matches on nodes.
//!
//! The errors stay what they were, word for word and path for path: the messages are serde_json's
//! (see [`Error`]), the paths follow the same rules (`a.b[2].c`, `?` for a key that could not be
//! read), and a syntax error does not end the parse early: the tree keeps what came before it and
//! marks where the text broke ([`Node::Broken`]), so a config type meets the syntax error only when
//! its reading gets there, after any error in a field before it, exactly as when it read the text.
//! The tests in `super` pin this against `serde_path_to_error`.
//!
//! Enums come in two kinds. A unit enum is read from a string (`"deny"`); serde_json's object form
//! (`{"deny": null}`, or `{"variant": data}` for an enum with data) is refused, no config uses it.
//! An enum with data is internally tagged (`{"type": "claim", "claim": "sub"}`), but not with
//! serde's `tag` attribute: serde reads those by first copying the object into a buffer of its own
//! (`Content`), which compiles every type inside the enum a second time, for that buffer (13 to
//! 46 KB of a module, 129 KB of the all-filters bundle), and loses the field path at the enum. A
//! config enum instead names itself with the [`TAGGED`] prefix (`#[serde(rename =
//! "tagged:SourceConfig")]`, and `#[schemars(tag = "type", rename = "SourceConfig")]` for the
//! schema); the tree reads the variant from its `type` member and the variant's fields from the
//! others, so an error inside a variant names the field (`sources[0].header: ...`). Otherwise it
//! says what serde's reading said, syntax errors included; only the array form serde also took
//! (`["claim", "sub"]`) is refused.
//!
//! One difference on purpose: a key repeated in a map (a `BTreeMap` member, or an object read as
//! any JSON value, such as an inline JWKS or a chain member's config) is an error at the map's
//! path (`providers: duplicate key "a"`), where serde_json kept the last. A struct's repeated field
//! is serde's `duplicate field` error, as it always was.
//!
//! Not needed by any config here, so kept simple: map keys are strings (a map with integer keys
//! would not parse), and a syntax error inside an unknown member that a struct without
//! `deny_unknown_fields` skips may be worded differently (same path). Every config type here
//! denies unknown fields.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::slice;

use serde::de::value::StrDeserializer;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, Error as _, Expected, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};

/// Why the tree does not fit a config type, in serde_json's words: what `serde_json::Error` would
/// say, minus the place in the text (the field path says more). An own type only to spell the
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
        Self(Box::new(without_place(message.to_string())))
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

/// serde_json's `custom` takes a trailing " at line N column M" as the error's place, which the
/// message then no longer shows.
fn without_place(mut message: String) -> String {
    fn digits(text: &str) -> (&str, &str) {
        let n = text.bytes().take_while(u8::is_ascii_digit).count();
        text.split_at_checked(n).unwrap_or((text, ""))
    }
    let place = super::place_start(&message).filter(|&start| {
        let (line, rest) = digits(message.get(start + " at line ".len()..).unwrap_or_default());
        let Some(rest) = rest.strip_prefix(" column ") else {
            return false;
        };
        let (column, rest) = digits(rest);
        rest.is_empty() && line.parse::<usize>().is_ok() && column.parse::<usize>().is_ok()
    });
    if let Some(start) = place {
        message.truncate(start);
    }
    message
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

/// A JSON value, as far as the text could be read.
pub enum Node {
    /// The text broke here (a syntax error, or its end): reading this value gives that error.
    Broken,
    /// Only as an object member's value: the text broke after the key, before the value began
    /// (e.g. no `:`). Reading it gives the error at the object's path, not the member's.
    Unreached,
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(String),
    /// The elements, and whether the text broke after the last of them.
    Array(Vec<Node>, bool),
    /// The members in the text's order (duplicates kept), and whether the text broke where the next
    /// key should have been.
    Object(Vec<(String, Node)>, bool),
}

/// An object member: its key and value.
type Member = (String, Node);

/// Reads `de` into a tree. On a syntax error the tree holds everything before it, with the
/// error's place marked, and the error comes back too.
pub fn read<'de, D: Deserializer<'de>>(de: D) -> (Node, Result<(), D::Error>) {
    let mut node = Node::Unreached;
    let result = Build(&mut node).deserialize(de);
    (node, result)
}

/// Builds the node it points at, leaving what it has so far there when the text breaks.
struct Build<'a>(&'a mut Node);

impl<'de> DeserializeSeed<'de> for Build<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        // Entered: until a value is seen, a failure is in this value.
        *self.0 = Node::Broken;
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Build<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        *self.0 = Node::Bool(v);
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        *self.0 = Node::I64(v);
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        *self.0 = Node::U64(v);
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        *self.0 = Node::F64(v);
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        *self.0 = Node::Str(v.to_owned());
        Ok(())
    }

    fn visit_string<E>(self, v: String) -> Result<(), E> {
        *self.0 = Node::Str(v);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        *self.0 = Node::Null;
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut items = Vec::new();
        loop {
            let mut item = Node::Unreached;
            match seq.next_element_seed(Build(&mut item)) {
                Ok(Some(())) => items.push(item),
                Ok(None) => {
                    *self.0 = Node::Array(items, false);
                    return Ok(());
                }
                Err(e) => {
                    // Unreached: the text broke between elements, not inside one.
                    let between = matches!(item, Node::Unreached);
                    if !between {
                        items.push(item);
                    }
                    *self.0 = Node::Array(items, between);
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut members = Vec::new();
        loop {
            let key = match map.next_key::<String>() {
                Ok(Some(key)) => key,
                Ok(None) => {
                    *self.0 = Node::Object(members, false);
                    return Ok(());
                }
                Err(e) => {
                    *self.0 = Node::Object(members, true);
                    return Err(e);
                }
            };
            let mut value = Node::Unreached;
            let result = map.next_value_seed(Build(&mut value));
            members.push((key, value));
            if let Err(e) = result {
                *self.0 = Node::Object(members, false);
                return Err(e);
            }
        }
    }
}

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
    fn render(&self, out: &mut String, first: &mut bool) {
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

/// The first (innermost) place an error was seen, and the syntax error the tree ends with.
pub struct Track {
    path: Cell<Option<String>>,
    broken: String,
    /// The first byte of the broken value, when it is a literal or a number (`nul`, `-x`, `1.`):
    /// serde_json reads those differently by what it expects there (below).
    broken_literal: Option<u8>,
}

impl Track {
    /// `broken`: the syntax error in `text`, if it has one.
    pub fn new(broken: Option<&serde_json::Error>, text: &[u8]) -> Self {
        let Some(error) = broken else {
            return Self {
                path: Cell::new(None),
                broken: String::new(),
                broken_literal: None,
            };
        };
        let broken = super::message(error);
        let literal = matches!(
            broken.as_str(),
            "expected ident" | "invalid number" | "number out of range" | "EOF while parsing a value"
        );
        Self {
            path: Cell::new(None),
            broken_literal: if literal {
                token_start(text, error.line(), error.column())
            } else {
                None
            },
            broken,
        }
    }

    /// The syntax error as an enum meets it: serde_json reads an enum only from a string or an
    /// object, so a broken literal or number there is "expected value", not what reading it said.
    fn broken_enum(&self) -> &str {
        match self.broken_literal {
            Some(b'n' | b't' | b'f' | b'-' | b'0'..=b'9') => "expected value",
            _ => &self.broken,
        }
    }

    /// Whether an `Option` meets the syntax error itself: serde_json reads a value starting with
    /// `n` as `null` right there, anything else as the option's content.
    fn broken_at_option(&self) -> bool {
        self.broken_literal == Some(b'n')
    }

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

    /// The syntax error, seen at `chain`.
    fn broken_at(&self, chain: &Chain<'_>) -> Error {
        self.trigger(chain, Error::custom(&self.broken))
    }

    /// The path of the error, "" at the root. (A member named "." at the root reads as the root
    /// too, as it always has: serde_path_to_error wrote the root as ".".)
    pub fn path(&self) -> String {
        self.path.take().filter(|path| path != ".").unwrap_or_default()
    }
}

/// The first byte of the literal or number that serde_json stopped in, found from the place it
/// reports (1-based line; column: the last byte it read, 1-based): the run of token bytes that
/// ends there, or ends just before the byte it stopped at.
fn token_start(text: &[u8], line: usize, column: usize) -> Option<u8> {
    let line_start = if line <= 1 {
        0
    } else {
        let newline = text.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(line - 2)?.0;
        newline + 1
    };
    let token = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.');
    let mut end = (line_start + column).min(text.len());
    if !text.get(end.checked_sub(1)?).is_some_and(token) {
        end -= 1;
    }
    let run = text.get(..end)?.iter().rev().take_while(|b| token(b)).count();
    text.get(end - run).copied().filter(token)
}

/// A node to deserialize, where it sits, and the error record.
#[derive(Clone, Copy)]
pub struct At<'n, 'c> {
    pub node: &'n Node,
    pub chain: &'c Chain<'c>,
    pub track: &'n Track,
}

impl<'n, 'c> At<'n, 'c> {
    fn fail(&self, error: Error) -> Error {
        self.track.trigger(self.chain, error)
    }

    /// What serde_json says when a value is not what the visitor expects.
    fn invalid(&self, expected: &dyn Expected) -> Error {
        let unexpected = match self.node {
            Node::Broken | Node::Unreached => return Error::custom(&self.track.broken),
            Node::Null => Unexpected::Unit,
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

    fn seq<'de, V: Visitor<'de>>(self, items: &'n [Node], broken: bool, visitor: V) -> Result<V::Value, Error> {
        let mut elements = Elements {
            items: items.iter(),
            index: 0,
            broken,
            chain: self.chain,
            track: self.track,
        };
        let value = visitor.visit_seq(&mut elements)?;
        elements.end()?;
        Ok(value)
    }

    /// `unique`: a map, whose keys may not repeat (a struct's fields are serde's to check).
    fn map<'de, V: Visitor<'de>>(
        self,
        members: &'n [(String, Node)],
        broken: bool,
        unique: bool,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut entries = Entries {
            all: unique.then_some(members),
            members: members.iter(),
            skip: None,
            value: None,
            broken,
            chain: self.chain,
            track: self.track,
        };
        let value = visitor.visit_map(&mut entries)?;
        entries.end(members.is_empty())?;
        Ok(value)
    }

    fn number<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::U64(v) => visitor.visit_u64(*v),
            Node::I64(v) => visitor.visit_i64(*v),
            Node::F64(v) => visitor.visit_f64(*v),
            _ => Err(self.invalid(&visitor)),
        }
        .map_err(|e| self.fail(e))
    }

    fn str<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Str(v) => visitor.visit_str(v),
            _ => Err(self.invalid(&visitor)),
        }
        .map_err(|e| self.fail(e))
    }

    fn array<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Array(items, broken) => self.seq(items, *broken, visitor),
            _ => Err(self.invalid(&visitor)),
        }
        .map_err(|e| self.fail(e))
    }

    fn unit<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Null => visitor.visit_unit(),
            _ => Err(self.invalid(&visitor)),
        }
        .map_err(|e| self.fail(e))
    }

    /// Whether the text broke anywhere inside this value.
    fn has_break(&self) -> bool {
        fn broken(node: &Node) -> bool {
            match node {
                Node::Broken | Node::Unreached => true,
                Node::Array(items, tail) => *tail || items.iter().any(broken),
                Node::Object(members, tail) => *tail || members.iter().any(|(_, v)| broken(v)),
                _ => false,
            }
        }
        broken(self.node)
    }

    /// An internally tagged enum (see the module doc): only from an object.
    #[inline(never)]
    fn tagged<'de, V: Visitor<'de>>(self, name: &str, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Object(members, broken) => visitor.visit_enum(Tagged {
                members,
                broken: *broken,
                at: self,
            }),
            _ => Err(self.invalid(&TaggedEnum(name))),
        }
        .map_err(|e| self.fail(e))
    }
}

/// The name prefix that marks a config enum as tagged by its `type` member (see the module doc).
pub const TAGGED: &str = "tagged:";

/// The enum's name if it is marked tagged: `strip_prefix` in a form the compiler folds for a
/// constant name (it did not fold `strip_prefix` itself).
#[inline(always)]
fn tagged_name(name: &str) -> Option<&str> {
    let marked = name.len() > TAGGED.len() && TAGGED.bytes().zip(name.bytes()).all(|(a, b)| a == b);
    if marked {
        name.get(TAGGED.len()..)
    } else {
        None
    }
}

/// The member naming the variant of a tagged enum.
const TAG: &str = "type";

/// What a tagged enum is expected to be, in serde's words.
struct TaggedEnum<'a>(&'a str);

impl Expected for TaggedEnum<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "internally tagged enum {}", self.0)
    }
}

impl<'de> Deserializer<'de> for At<'_, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Broken | Node::Unreached => Err(Error::custom(&self.track.broken)),
            Node::Null => visitor.visit_unit(),
            Node::Bool(v) => visitor.visit_bool(*v),
            Node::U64(v) => visitor.visit_u64(*v),
            Node::I64(v) => visitor.visit_i64(*v),
            Node::F64(v) => visitor.visit_f64(*v),
            Node::Str(v) => visitor.visit_str(v),
            Node::Array(items, broken) => self.seq(items, *broken, visitor),
            Node::Object(members, broken) => self.map(members, *broken, true, visitor),
        }
        .map_err(|e| self.fail(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Bool(v) => visitor.visit_bool(*v),
            _ => Err(self.invalid(&visitor)),
        }
        .map_err(|e| self.fail(e))
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.number(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.str(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Str(v) => visitor.visit_bytes(v.as_bytes()),
            Node::Array(items, broken) => self.seq(items, *broken, visitor),
            _ => Err(self.invalid(&visitor)),
        }
        .map_err(|e| self.fail(e))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Null => visitor.visit_none(),
            Node::Broken if self.track.broken_at_option() => Err(Error::custom(&self.track.broken)),
            _ => visitor.visit_some(self),
        }
        .map_err(|e| self.fail(e))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.unit(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        self.unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self).map_err(|e| self.fail(e))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.array(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.array(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.array(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Object(members, broken) => self.map(members, *broken, true, visitor),
            _ => Err(self.invalid(&visitor)),
        }
        .map_err(|e| self.fail(e))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // serde_json reads a struct from an object or an array.
        match self.node {
            Node::Object(members, broken) => self.map(members, *broken, false, visitor),
            Node::Array(items, broken) => self.seq(items, *broken, visitor),
            _ => Err(self.invalid(&visitor)),
        }
        .map_err(|e| self.fail(e))
    }

    /// Inlined so that the name, a constant in the derived code, picks the reading at compile
    /// time: each enum carries the code of its own kind only.
    #[inline(always)]
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match tagged_name(name) {
            Some(name) => self.tagged(name, visitor),
            None => self.external(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.has_break() {
            Err(self.fail(Error::custom(&self.track.broken)))
        } else {
            visitor.visit_unit().map_err(|e| self.fail(e))
        }
    }
}

impl At<'_, '_> {
    /// Any other enum: a unit variant, from a string. serde_json would also take an enum with data
    /// as `{"variant": data}` (and a unit one as `{"variant": null}`), a form no config uses.
    #[inline(never)]
    fn external<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.node {
            Node::Broken | Node::Unreached => Err(Error::custom(self.track.broken_enum())),
            Node::Str(_) => visitor.visit_enum(UnitVariant(self)),
            Node::Object(..) => Err(self.invalid(&visitor)),
            _ => Err(Error::custom("expected value")),
        }
        .map_err(|e| self.fail(e))
    }
}

/// An array's elements, each at `chain[i]`.
struct Elements<'n, 'c> {
    items: slice::Iter<'n, Node>,
    index: usize,
    broken: bool,
    chain: &'c Chain<'c>,
    track: &'n Track,
}

impl Elements<'_, '_> {
    /// serde_json's check that the visitor read the whole array (a struct read from an array stops
    /// after its fields), in its words for what follows the last element read.
    fn end(&self) -> Result<(), Error> {
        if self.items.len() > 0 {
            Err(Error::custom("trailing characters"))
        } else if self.broken {
            Err(Error::custom(match self.track.broken.as_str() {
                same @ ("EOF while parsing a list" | "trailing comma") => same,
                _ => "trailing characters",
            }))
        } else {
            Ok(())
        }
    }
}

impl<'de> SeqAccess<'de> for Elements<'_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        let Some(node) = self.items.next() else {
            if self.broken {
                self.broken = false;
                return Err(self.track.broken_at(self.chain));
            }
            return Ok(None);
        };
        let chain = Chain::Index(self.chain, self.index);
        self.index += 1;
        let at = At {
            node,
            chain: &chain,
            track: self.track,
        };
        seed.deserialize(at).map(Some).map_err(|e| at.fail(e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// An object's members, each value at `chain.key`.
struct Entries<'n, 'c> {
    /// Every member, when the object is a map: a key may not repeat one before it.
    all: Option<&'n [Member]>,
    members: slice::Iter<'n, (String, Node)>,
    /// A key not to show the visitor: a tagged enum's `type`, read already.
    skip: Option<&'static str>,
    /// The member whose key was read last, until its value is.
    value: Option<&'n (String, Node)>,
    broken: bool,
    chain: &'c Chain<'c>,
    track: &'n Track,
}

impl Entries<'_, '_> {
    /// serde_json's check that the visitor read the whole object (derived visitors always do), in
    /// its words for what follows the last member read.
    fn end(&self, empty: bool) -> Result<(), Error> {
        if self.members.len() > 0 {
            Err(Error::custom("trailing comma"))
        } else if self.broken {
            Err(Error::custom(match self.track.broken.as_str() {
                "EOF while parsing an object" => "EOF while parsing an object",
                "expected `,` or `}`" => "trailing characters",
                "key must be a string" if empty => "trailing characters",
                _ => "trailing comma",
            }))
        } else {
            Ok(())
        }
    }
}

impl<'n> Entries<'n, '_> {
    /// Apart from the key seeds' code, so that one copy serves every map and struct.
    #[inline(never)]
    fn next_member(&mut self) -> Option<&'n (String, Node)> {
        let skip = self.skip;
        self.members.find(|(key, _)| Some(key.as_str()) != skip)
    }

    /// In a map, the error for a member just taken that repeats the key of one before it. Not
    /// inlined: every key type's `next_key_seed` calls it.
    #[inline(never)]
    fn repeated(&self, key: &str) -> Result<(), Error> {
        let Some(all) = self.all else {
            return Ok(());
        };
        let before = all.len().saturating_sub(self.members.len() + 1);
        if all.iter().take(before).any(|(earlier, _)| earlier == key) {
            return Err(self
                .track
                .trigger(self.chain, Error::custom(format_args!("duplicate key {key:?}"))));
        }
        Ok(())
    }
}

impl<'de> MapAccess<'de> for Entries<'_, '_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some(member) = self.next_member() else {
            if self.broken {
                self.broken = false;
                return Err(self.track.broken_at(&Chain::UnknownKey(self.chain)));
            }
            return Ok(None);
        };
        self.value = Some(member);
        let key = member.0.as_str();
        self.repeated(key)?;
        seed.deserialize(StrDeserializer::<Error>::new(key))
            .map(Some)
            .map_err(|e| self.track.trigger(&Chain::Key(self.chain, key), e))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((key, node)) = self.value.take() else {
            return Err(self
                .track
                .trigger(self.chain, Error::custom("no key before this value")));
        };
        if let Node::Unreached = node {
            return Err(self.track.broken_at(self.chain));
        }
        let chain = Chain::Key(self.chain, key);
        let at = At {
            node,
            chain: &chain,
            track: self.track,
        };
        seed.deserialize(at).map_err(|e| at.fail(e))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }
}

/// An enum given as a string: a unit variant.
struct UnitVariant<'n, 'c>(At<'n, 'c>);

impl<'de> EnumAccess<'de> for UnitVariant<'_, '_> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        Ok((seed.deserialize(self.0)?, self))
    }
}

impl UnitVariant<'_, '_> {
    /// A unit variant read as another kind: the error sits at `chain.variant`.
    fn not_unit(&self, expected: &'static str) -> Error {
        let error = Error::invalid_type(Unexpected::UnitVariant, &expected);
        match self.0.node {
            Node::Str(variant) => self.0.track.trigger(&Chain::Key(self.0.chain, variant), error),
            _ => error,
        }
    }
}

impl<'de> VariantAccess<'de> for UnitVariant<'_, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, Error> {
        Err(self.not_unit("newtype variant"))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Error> {
        Err(self.not_unit("tuple variant"))
    }

    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], _visitor: V) -> Result<V::Value, Error> {
        Err(self.not_unit("struct variant"))
    }
}

/// A tagged enum's object: the variant from its `type` member, the fields from the others.
struct Tagged<'n, 'c> {
    members: &'n [Member],
    broken: bool,
    /// The enum's place.
    at: At<'n, 'c>,
}

impl<'de> EnumAccess<'de> for Tagged<'_, '_> {
    type Error = Error;
    type Variant = Self;

    /// Reads the object in order, as serde's buffering did: the variant where `type` is, and the
    /// other values only to meet a syntax error in them where serde met it.
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Error> {
        let (key, node, after) = self.tag_member()?;
        let member = Chain::Key(self.at.chain, key);
        let at = At {
            node,
            chain: &member,
            track: self.at.track,
        };
        let variant = seed.deserialize(at).map_err(|e| at.fail(e))?;
        self.read_past(after)?;
        self.end()?;
        Ok((variant, self))
    }
}

/// Not generic, so one copy serves every tagged enum.
impl<'n> Tagged<'n, '_> {
    /// The `type` member, and the members after it, once what precedes it is read.
    fn tag_member(&self) -> Result<(&'n str, &'n Node, &'n [Member]), Error> {
        let tag = self.members.iter().position(|(key, _)| key == TAG);
        let (before, from_tag) = self.members.split_at(tag.unwrap_or(self.members.len()));
        self.read_past(before)?;
        let Some(((key, node), after)) = from_tag.split_first() else {
            self.end()?;
            return Err(Error::missing_field(TAG));
        };
        if let Node::Unreached = node {
            return Err(self.at.track.broken_at(self.at.chain));
        }
        Ok((key, node, after))
    }

    /// Members other than the variant's `type`: a second `type`, or a syntax error inside one.
    fn read_past(&self, members: &[Member]) -> Result<(), Error> {
        let (chain, track) = (self.at.chain, self.at.track);
        for (key, node) in members {
            if key == TAG {
                return Err(Error::duplicate_field(TAG));
            }
            if let Node::Unreached = node {
                return Err(track.broken_at(chain));
            }
            let member = Chain::Key(chain, key);
            let at = At {
                node,
                chain: &member,
                track,
            };
            if at.has_break() {
                let mut skipped = Node::Unreached;
                Build(&mut skipped).deserialize(at).map_err(|e| at.fail(e))?;
            }
        }
        Ok(())
    }

    /// The text broke where the next key should have been.
    fn end(&self) -> Result<(), Error> {
        if self.broken {
            return Err(self.at.track.broken_at(&Chain::UnknownKey(self.at.chain)));
        }
        Ok(())
    }
}

/// The variants of a tagged config enum take fields (`Path {}`, not `Path`).
impl<'de> VariantAccess<'de> for Tagged<'_, '_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        Err(Error::invalid_type(Unexpected::StructVariant, &"unit variant"))
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, Error> {
        Err(Error::invalid_type(Unexpected::StructVariant, &"newtype variant"))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::invalid_type(Unexpected::StructVariant, &"tuple variant"))
    }

    fn struct_variant<V: Visitor<'de>>(self, _fields: &'static [&'static str], visitor: V) -> Result<V::Value, Error> {
        let mut entries = Entries {
            all: None,
            members: self.members.iter(),
            skip: Some(TAG),
            value: None,
            broken: false,
            chain: self.at.chain,
            track: self.at.track,
        };
        let value = visitor.visit_map(&mut entries)?;
        entries.end(false)?;
        Ok(value)
    }
}
