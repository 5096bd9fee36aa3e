//! Config types read from the tree: [`FromConfig`], its impls for the types configs hold, and
//! what `#[derive(FromConfig)]` (the `config-derive` crate) calls for structs and enums.
//!
//! The derive reads the types' `#[serde(...)]` attributes (which schemars reads for the schemas
//! too), so the tests' types, which derive both, read the same with serde and here; the messages
//! are serde's and serde_json's.
//! Differences, on purpose: a struct is read from an object only (serde_json also took an array,
//! field by field); a key repeated in a map, or in an object read as any JSON value, is an error at
//! the map's path (serde_json kept the last); an enum with data is internally tagged (see
//! [`At::tagged`]); a unit enum is read from a string only; and an optional field given as `null`
//! is refused (serde_json read it as absent).

use std::collections::BTreeMap;
use std::fmt;
use std::slice;

use serde::de::{Error as _, Expected, Unexpected};

use super::tree::{At, Chain, Error, Member, Node};

/// A type a config holds, read from its place in the tree.
pub trait FromConfig: Sized {
    /// Reads the value at `at`. An error need not record its place: [`At::read`] does.
    fn from_config(at: At<'_, '_>) -> Result<Self, Error>;

    /// A struct member that is absent and has no default: serde's `missing field`, but `None` for
    /// an `Option`.
    fn absent(field: &'static str) -> Result<Self, Error> {
        Err(Error::missing_field(field))
    }
}

impl<'n, 'c> At<'n, 'c> {
    /// Reads the value here as `T`; an error comes back with its place recorded.
    pub fn read<T: FromConfig>(self) -> Result<T, Error> {
        T::from_config(self).map_err(|e| self.fail(e))
    }

    /// An object read as a struct (`expecting`: `struct Config`) with fields `names`.
    pub fn fields(
        self,
        expecting: &'static str,
        names: &'static [&'static str],
        deny_unknown: bool,
    ) -> Result<Fields<'n, 'c>, Error> {
        match self.node {
            Node::Object(members, _) => Ok(Fields::new(self, members, names, deny_unknown, None)),
            _ => Err(self.invalid(&expecting)),
        }
    }

    /// A unit enum (`expecting`: `enum Mode`), from a string: the index of its variant.
    pub fn unit_variant(self, expecting: &'static str, variants: &'static [&'static str]) -> Result<usize, Error> {
        match self.node {
            Node::Str(name) => variant_index(name, variants),
            Node::Object(..) => Err(self.invalid(&expecting)),
            // serde_json's words when an enum is neither a string nor an object.
            _ => Err(Error::custom("expected value")),
        }
    }

    /// An enum with data, tagged by its `type` member (`{"type": "claim", "claim": "sub"}`): the
    /// index of the variant `type` names, and the object, to read the variant's fields from the
    /// other members. Errors in `type` are at `….type`; a missing or repeated one, at the enum.
    pub fn tagged(
        self,
        name: &'static str,
        variants: &'static [&'static str],
    ) -> Result<(usize, Tagged<'n, 'c>), Error> {
        let Node::Object(members, _) = self.node else {
            return Err(self.invalid(&TaggedEnum(name)));
        };
        let mut tags = members.iter().filter(|(key, _)| key == TAG);
        let Some((key, tag)) = tags.next() else {
            return Err(Error::missing_field(TAG));
        };
        let chain = Chain::Key(self.chain, key);
        let at = At {
            node: tag,
            chain: &chain,
            track: self.track,
        };
        let variant = match tag {
            Node::Str(variant) => variant_index(variant, variants),
            _ => Err(at.invalid(&"variant identifier")),
        }
        .map_err(|e| at.fail(e))?;
        if tags.next().is_some() {
            return Err(Error::duplicate_field(TAG));
        }
        Ok((variant, Tagged { at: self, members }))
    }
}

/// The member naming the variant of a tagged enum.
const TAG: &str = "type";

/// What a tagged enum is expected to be, in serde's words.
struct TaggedEnum(&'static str);

impl Expected for TaggedEnum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "internally tagged enum {}", self.0)
    }
}

fn variant_index(name: &str, variants: &'static [&'static str]) -> Result<usize, Error> {
    variants
        .iter()
        .position(|v| *v == name)
        .ok_or_else(|| Error::unknown_variant(name, variants))
}

/// A tagged enum's object, its variant known.
pub struct Tagged<'n, 'c> {
    at: At<'n, 'c>,
    members: &'n [Member],
}

impl<'n, 'c> Tagged<'n, 'c> {
    /// The variant's fields: every member but `type`.
    pub fn fields(self, names: &'static [&'static str], deny_unknown: bool) -> Result<Fields<'n, 'c>, Error> {
        Ok(Fields::new(self.at, self.members, names, deny_unknown, Some(TAG)))
    }
}

/// A struct's members, in the text's order.
pub struct Fields<'n, 'c> {
    at: At<'n, 'c>,
    all: &'n [Member],
    members: slice::Iter<'n, Member>,
    names: &'static [&'static str],
    deny_unknown: bool,
    skip: Option<&'static str>,
}

impl<'n, 'c> Fields<'n, 'c> {
    fn new(
        at: At<'n, 'c>,
        members: &'n [Member],
        names: &'static [&'static str],
        deny_unknown: bool,
        skip: Option<&'static str>,
    ) -> Self {
        Self {
            at,
            all: members,
            members: members.iter(),
            names,
            deny_unknown,
            skip,
        }
    }

    /// The next member of a known field, and the field's index in `names`: an unknown field is an
    /// error (at its key) or skipped, a repeated one serde's `duplicate field`.
    #[allow(clippy::should_implement_trait, reason = "a fallible step, not an iterator")]
    pub fn next(&mut self) -> Result<Option<(usize, &'n Member)>, Error> {
        for member in self.members.by_ref() {
            let key = member.0.as_str();
            if Some(key) == self.skip {
                continue;
            }
            let Some(index) = self.names.iter().position(|name| *name == key) else {
                if self.deny_unknown {
                    let error = Error::unknown_field(key, self.names);
                    return Err(self.at.track_key(key, error));
                }
                continue;
            };
            let before = self.all.len() - self.members.len() - 1;
            if self.all.iter().take(before).any(|(earlier, _)| earlier == key) {
                return Err(Error::duplicate_field(
                    self.names.get(index).copied().unwrap_or_default(),
                ));
            }
            return Ok(Some((index, member)));
        }
        Ok(None)
    }

    /// A member's value, read as `T`.
    pub fn value<T: FromConfig>(&self, member: &'n Member) -> Result<T, Error> {
        let chain = Chain::Key(self.at.chain, &member.0);
        At {
            node: &member.1,
            chain: &chain,
            track: self.at.track,
        }
        .read()
    }
}

impl At<'_, '_> {
    /// Records the error at `self.key`.
    fn track_key(&self, key: &str, error: Error) -> Error {
        let chain = Chain::Key(self.chain, key);
        At { chain: &chain, ..*self }.fail(error)
    }
}

impl FromConfig for bool {
    fn from_config(at: At<'_, '_>) -> Result<Self, Error> {
        match at.node {
            Node::Bool(v) => Ok(*v),
            _ => Err(at.invalid(&"a boolean")),
        }
    }
}

impl FromConfig for String {
    fn from_config(at: At<'_, '_>) -> Result<Self, Error> {
        Ok(at.str("a string")?.to_owned())
    }
}

impl<'n> At<'n, '_> {
    /// The string here, or serde's error for a type `expecting` one.
    pub fn str(&self, expecting: &'static str) -> Result<&'n str, Error> {
        match self.node {
            Node::Str(v) => Ok(v),
            _ => Err(self.invalid(&expecting)),
        }
    }

    /// An integer in `min..=max`, in serde's words for the type named `expecting` (`u32`).
    fn integer(&self, expecting: &'static str, min: i128, max: i128) -> Result<i128, Error> {
        let (value, unexpected) = match self.node {
            Node::U64(v) => (i128::from(*v), Unexpected::Unsigned(*v)),
            Node::I64(v) => (i128::from(*v), Unexpected::Signed(*v)),
            _ => return Err(self.invalid(&expecting)),
        };
        if (min..=max).contains(&value) {
            Ok(value)
        } else {
            Err(Error::invalid_value(unexpected, &expecting))
        }
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl FromConfig for $t {
            fn from_config(at: At<'_, '_>) -> Result<Self, Error> {
                let value = at.integer(stringify!($t), <$t>::MIN as i128, <$t>::MAX as i128)?;
                Self::try_from(value).map_err(|_| Error::custom("out of range"))
            }
        }
    )*};
}

integers!(u8, u16, u32, u64, usize, i32, i64);

impl FromConfig for f64 {
    fn from_config(at: At<'_, '_>) -> Result<Self, Error> {
        match at.node {
            Node::F64(v) => Ok(*v),
            #[allow(clippy::cast_precision_loss, reason = "serde_json reads an integer as f64 so too")]
            Node::U64(v) => Ok(*v as f64),
            #[allow(clippy::cast_precision_loss, reason = "serde_json reads an integer as f64 so too")]
            Node::I64(v) => Ok(*v as f64),
            _ => Err(at.invalid(&"f64")),
        }
    }
}

/// What an optional field given as `null` gets.
pub const NULL_REFUSED: &str = "null is not a value here: leave the field out for its default";

/// An optional field is given or left out: `null` is refused, not read as absent, so that a
/// config template that renders a missing value as `null` (`"exact": null`, a rule for every path)
/// fails at load instead of meaning something else.
impl<T: FromConfig> FromConfig for Option<T> {
    fn from_config(at: At<'_, '_>) -> Result<Self, Error> {
        match at.node {
            Node::Null => Err(Error::custom(NULL_REFUSED)),
            _ => T::from_config(at).map(Some),
        }
    }

    fn absent(_field: &'static str) -> Result<Self, Error> {
        Ok(None)
    }
}

impl<T: FromConfig> FromConfig for Vec<T> {
    fn from_config(at: At<'_, '_>) -> Result<Self, Error> {
        let Node::Array(items, _) = at.node else {
            return Err(at.invalid(&"a sequence"));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, node) in items.iter().enumerate() {
            let chain = Chain::Index(at.chain, i);
            out.push(
                At {
                    node,
                    chain: &chain,
                    ..at
                }
                .read()?,
            );
        }
        Ok(out)
    }
}

impl<T: FromConfig> FromConfig for BTreeMap<String, T> {
    fn from_config(at: At<'_, '_>) -> Result<Self, Error> {
        let mut out = BTreeMap::new();
        at.each_member(&mut |key, value| {
            out.insert(key.to_owned(), value.read()?);
            Ok(())
        })?;
        Ok(out)
    }
}

/// Any JSON value (an inline JWKS, a chain member's config), its objects' keys unique.
impl FromConfig for serde_json::Value {
    fn from_config(at: At<'_, '_>) -> Result<Self, Error> {
        use serde_json::Value;
        Ok(match at.node {
            Node::Null | Node::Broken | Node::Unreached => Value::Null,
            Node::Bool(v) => Value::Bool(*v),
            Node::U64(v) => Value::from(*v),
            Node::I64(v) => Value::from(*v),
            Node::F64(v) => serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number),
            Node::Str(v) => Value::String(v.clone()),
            Node::Array(..) => Value::Array(Vec::from_config(at)?),
            Node::Object(..) => {
                let mut out = serde_json::Map::new();
                at.each_member(&mut |key, value| {
                    out.insert(key.to_owned(), value.read()?);
                    Ok(())
                })?;
                Value::Object(out)
            }
        })
    }
}

impl At<'_, '_> {
    /// Calls `each` on every member of the object here, as a map's entry at `self.key`. Not
    /// generic: one loop serves every map.
    fn each_member(&self, each: &mut dyn FnMut(&str, At<'_, '_>) -> Result<(), Error>) -> Result<(), Error> {
        let Node::Object(members, _) = self.node else {
            return Err(self.invalid(&"a map"));
        };
        for (i, (key, node)) in members.iter().enumerate() {
            unique_key(members, i)?;
            let chain = Chain::Key(self.chain, key);
            each(
                key,
                At {
                    node,
                    chain: &chain,
                    ..*self
                },
            )?;
        }
        Ok(())
    }
}

/// serde_json keeps the last of a repeated key, so `{"a": …, "a": …}` would load the second
/// silently: an error at the map instead, when the repeat is reached.
fn unique_key(members: &[Member], i: usize) -> Result<(), Error> {
    let key = members.get(i).map_or("", |(key, _)| key.as_str());
    if members.iter().take(i).any(|(earlier, _)| earlier == key) {
        return Err(Error::custom(format_args!("duplicate key {key:?}")));
    }
    Ok(())
}
