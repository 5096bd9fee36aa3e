//! JSON text read by one small recursive-descent reader instead of serde_json's deserializer.
//!
//! Why not serde_json's? Code size. Its deserializer is compiled once for every visitor that
//! drives it (the config tree, strict JWT objects, plain values, the claims a filter wants): with
//! its error type and number parsing, this reader in its place took 14 to 17 KB off each module
//! (more off the JWT filters, which also dropped serde_json's serializer). It builds one tree,
//! [`Node`], for every caller.
//!
//! It reads what serde_json reads, to the same values, and refuses what it refuses, with the
//! same words: RFC 8259 JSON, UTF-8, no comments, no trailing commas, no lone surrogates, at most
//! 127 levels deep, numbers as `u64`, negative `i64` or else `f64` (rounded as serde_json rounds
//! them, out of range an error). Proptests and the `json` fuzz target hold it to serde_json.

use std::fmt;

use serde_json::{Map, Number, Value};

use super::pow10::POW10;

/// A JSON value as read: members in the text's order, a repeated name kept. On a syntax error
/// the tree holds everything before it, the break marked (see [`Reader::value`]).
#[derive(Debug, PartialEq)]
pub enum Node {
    /// The text broke here (a syntax error, or its end).
    Broken,
    /// Only as an object member's value: the text broke after the key, before the value began
    /// (e.g. no `:`), so the error is at the object's place, not the member's.
    Unreached,
    Null,
    Bool(bool),
    U64(u64),
    /// Always negative: a non-negative integer is a `U64`.
    I64(i64),
    /// Always finite.
    F64(f64),
    Str(String),
    /// The elements, and whether the text broke after the last of them.
    Array(Vec<Node>, bool),
    /// The members in the text's order (duplicates kept), and whether the text broke where the next
    /// key should have been.
    Object(Vec<Member>, bool),
}

/// An object member: its name and value.
pub type Member = (String, Node);

/// What is wrong with the text, in serde_json's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    EofWhileParsingList,
    EofWhileParsingObject,
    EofWhileParsingString,
    EofWhileParsingValue,
    ExpectedColon,
    ExpectedListCommaOrEnd,
    ExpectedObjectCommaOrEnd,
    ExpectedSomeIdent,
    ExpectedSomeValue,
    InvalidEscape,
    InvalidNumber,
    NumberOutOfRange,
    InvalidUnicodeCodePoint,
    ControlCharacterWhileParsingString,
    KeyMustBeAString,
    LoneLeadingSurrogateInHexEscape,
    TrailingComma,
    TrailingCharacters,
    UnexpectedEndOfHexEscape,
    RecursionLimitExceeded,
}

impl Syntax {
    pub fn message(self) -> &'static str {
        match self {
            Syntax::EofWhileParsingList => "EOF while parsing a list",
            Syntax::EofWhileParsingObject => "EOF while parsing an object",
            Syntax::EofWhileParsingString => "EOF while parsing a string",
            Syntax::EofWhileParsingValue => "EOF while parsing a value",
            Syntax::ExpectedColon => "expected `:`",
            Syntax::ExpectedListCommaOrEnd => "expected `,` or `]`",
            Syntax::ExpectedObjectCommaOrEnd => "expected `,` or `}`",
            Syntax::ExpectedSomeIdent => "expected ident",
            Syntax::ExpectedSomeValue => "expected value",
            Syntax::InvalidEscape => "invalid escape",
            Syntax::InvalidNumber => "invalid number",
            Syntax::NumberOutOfRange => "number out of range",
            Syntax::InvalidUnicodeCodePoint => "invalid unicode code point",
            Syntax::ControlCharacterWhileParsingString => {
                "control character (\\u0000-\\u001F) found while parsing a string"
            }
            Syntax::KeyMustBeAString => "key must be a string",
            Syntax::LoneLeadingSurrogateInHexEscape => "lone leading surrogate in hex escape",
            Syntax::TrailingComma => "trailing comma",
            Syntax::TrailingCharacters => "trailing characters",
            Syntax::UnexpectedEndOfHexEscape => "unexpected end of hex escape",
            Syntax::RecursionLimitExceeded => "recursion limit exceeded",
        }
    }
}

/// A syntax error and where the text broke: the line (from 1) and the column (bytes into the
/// line). serde_json's words; the place is where this reader stopped, which can be a byte before
/// or after the one serde_json names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub kind: Syntax,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.kind.message(),
            self.line,
            self.column
        )
    }
}

/// `text` as one JSON value, with nothing but whitespace around it.
pub fn parse(text: &[u8]) -> Result<Node, SyntaxError> {
    let mut reader = Reader::new(text);
    let mut node = Node::Unreached;
    reader.value(&mut node)?;
    reader.end()?;
    Ok(node)
}

/// `text` as one JSON object of which only the members named in `wanted` are kept (all of
/// them, in the text's order); the others are read only to check them, into no value. `None`
/// if `text` is not one JSON object.
pub fn parse_members(text: &[u8], wanted: &[String]) -> Option<Vec<Member>> {
    let mut reader = Reader::new(text);
    reader.wanted = Some(wanted);
    let mut node = Node::Unreached;
    reader.value(&mut node).ok()?;
    reader.end().ok()?;
    match node {
        Node::Object(members, _) => Some(members),
        _ => None,
    }
}

/// The text of the value of `text`'s last top-level member named `name`, as it stands in
/// `text` (which must be one JSON object); `None` if there is none, or `text` is not an object.
/// The value's text means what the whole does: what a filter hands on when it hands on a part.
pub fn member_text<'t>(text: &'t [u8], name: &str) -> Option<&'t [u8]> {
    let mut reader = Reader::new(text);
    reader.spans = Some(Vec::new());
    let mut node = Node::Unreached;
    reader.value(&mut node).ok()?;
    reader.end().ok()?;
    let Node::Object(members, _) = node else {
        return None;
    };
    let spans = reader.spans.unwrap_or_default();
    let last = members.iter().rposition(|(key, _)| key == name)?;
    let &(start, end) = spans.get(last)?;
    text.get(start..end)
}

/// How deep arrays and objects may nest, as in serde_json: the 128th level is refused.
const DEPTH_LIMIT: u8 = 127;

/// A cursor over the text.
pub struct Reader<'t> {
    text: &'t [u8],
    at: usize,
    depth: u8,
    /// Where each member's value of the outermost object starts and ends, if asked for.
    spans: Option<Vec<(usize, usize)>>,
    /// The only members of the outermost object to keep, if not all.
    wanted: Option<&'t [String]>,
    /// Checking a value that is not kept: no strings, elements or members are built.
    skipping: bool,
}

type Result<T, E = Syntax> = std::result::Result<T, E>;

impl<'t> Reader<'t> {
    pub fn new(text: &'t [u8]) -> Self {
        Reader {
            text,
            at: 0,
            depth: 0,
            spans: None,
            wanted: None,
            skipping: false,
        }
    }

    /// Reads one value into `out`. On an error, `out` holds what was read of it, and the place
    /// it broke: [`Node::Broken`] where a value was begun, the flag of an array or object where
    /// the text broke between elements or where a key should have been.
    pub fn value(&mut self, out: &mut Node) -> Result<(), SyntaxError> {
        self.node(out).map_err(|kind| self.error(kind, self.at))
    }

    /// Only whitespace may follow the value.
    pub fn end(&mut self) -> Result<(), SyntaxError> {
        match self.whitespace() {
            // serde_json points past the first byte it did not expect.
            Some(_) => Err(self.error(Syntax::TrailingCharacters, self.at + 1)),
            None => Ok(()),
        }
    }

    #[cold]
    fn error(&self, kind: Syntax, at: usize) -> SyntaxError {
        let before = self.text.get(..at).unwrap_or(self.text);
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        SyntaxError {
            kind,
            line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
            column: before.len() - line_start,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    /// Skips whitespace; the next byte.
    fn whitespace(&mut self) -> Option<u8> {
        while let Some(byte) = self.peek() {
            if !matches!(byte, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(byte);
            }
            self.at += 1;
        }
        None
    }

    fn node(&mut self, out: &mut Node) -> Result<()> {
        // Entered: until a value is read, a failure is in this value.
        *out = Node::Broken;
        let Some(byte) = self.whitespace() else {
            return Err(Syntax::EofWhileParsingValue);
        };
        *out = match byte {
            b'n' => self.ident(b"null", Node::Null)?,
            b't' => self.ident(b"true", Node::Bool(true))?,
            b'f' => self.ident(b"false", Node::Bool(false))?,
            b'-' => {
                self.at += 1;
                self.number(false)?
            }
            b'0'..=b'9' => self.number(true)?,
            b'"' => {
                self.at += 1;
                Node::Str(self.string()?)
            }
            b'[' | b'{' => {
                if self.depth == DEPTH_LIMIT {
                    return Err(Syntax::RecursionLimitExceeded);
                }
                self.at += 1;
                self.depth += 1;
                let nested = if byte == b'[' {
                    self.array(out)
                } else {
                    self.object(out)
                };
                self.depth -= 1;
                return nested;
            }
            _ => return Err(Syntax::ExpectedSomeValue),
        };
        Ok(())
    }

    fn ident(&mut self, ident: &[u8], node: Node) -> Result<Node> {
        for &expected in ident {
            match self.next() {
                None => return Err(Syntax::EofWhileParsingValue),
                Some(byte) if byte != expected => return Err(Syntax::ExpectedSomeIdent),
                Some(_) => {}
            }
        }
        Ok(node)
    }

    fn array(&mut self, out: &mut Node) -> Result<()> {
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let between = match self.whitespace() {
                Some(b']') => {
                    self.at += 1;
                    *out = Node::Array(items, false);
                    return Ok(());
                }
                Some(_) if first => None,
                Some(b',') => {
                    self.at += 1;
                    match self.whitespace() {
                        Some(b']') => Some(Syntax::TrailingComma),
                        Some(_) => None,
                        None => Some(Syntax::EofWhileParsingValue),
                    }
                }
                Some(_) => Some(Syntax::ExpectedListCommaOrEnd),
                None => Some(Syntax::EofWhileParsingList),
            };
            if let Some(error) = between {
                *out = Node::Array(items, true);
                return Err(error);
            }
            first = false;
            let mut item = Node::Unreached;
            let read = self.node(&mut item);
            if !self.skipping {
                items.push(item);
            }
            if let Err(error) = read {
                *out = Node::Array(items, false);
                return Err(error);
            }
        }
    }

    fn object(&mut self, out: &mut Node) -> Result<()> {
        let outermost = self.depth == 1;
        let mut members = Vec::new();
        let mut first = true;
        loop {
            let no_key = match self.whitespace() {
                Some(b'}') => {
                    self.at += 1;
                    *out = Node::Object(members, false);
                    return Ok(());
                }
                Some(b'"') if first => None,
                Some(_) if first => Some(Syntax::KeyMustBeAString),
                Some(b',') => {
                    self.at += 1;
                    match self.whitespace() {
                        Some(b'"') => None,
                        Some(b'}') => Some(Syntax::TrailingComma),
                        Some(_) => Some(Syntax::KeyMustBeAString),
                        None => Some(Syntax::EofWhileParsingValue),
                    }
                }
                Some(_) => Some(Syntax::ExpectedObjectCommaOrEnd),
                None => Some(Syntax::EofWhileParsingObject),
            };
            first = false;
            if let Some(error) = no_key {
                *out = Node::Object(members, true);
                return Err(error);
            }
            self.at += 1;
            let key = match self.string() {
                Ok(key) => key,
                Err(error) => {
                    *out = Node::Object(members, true);
                    return Err(error);
                }
            };
            let unwanted = outermost && self.wanted.is_some_and(|wanted| !wanted.contains(&key));
            let mut value = Node::Unreached;
            let read = match self.whitespace() {
                Some(b':') => {
                    self.at += 1;
                    self.whitespace();
                    let start = self.at;
                    self.skipping |= unwanted;
                    let read = self.node(&mut value);
                    self.skipping &= !unwanted;
                    if let (true, Some(spans)) = (outermost, &mut self.spans) {
                        spans.push((start, self.at));
                    }
                    read
                }
                Some(_) => Err(Syntax::ExpectedColon),
                None => Err(Syntax::EofWhileParsingObject),
            };
            if !self.skipping && !unwanted {
                members.push((key, value));
            }
            if let Err(error) = read {
                *out = Node::Object(members, false);
                return Err(error);
            }
        }
    }

    /// A string's contents, after its opening quote; when skipping, checked and not kept (an
    /// empty string, which allocates nothing).
    fn string(&mut self) -> Result<String> {
        let mut bytes = Vec::new();
        let mut utf8 = true;
        loop {
            let rest = self.text.get(self.at..).unwrap_or_default();
            let length = rest
                .iter()
                .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
                .unwrap_or(rest.len());
            let chunk = rest.get(..length).unwrap_or_default();
            self.at += length;
            if self.skipping {
                // Split at ASCII bytes, so valid chunk by chunk is valid as a whole.
                utf8 &= std::str::from_utf8(chunk).is_ok();
            } else {
                bytes.extend_from_slice(chunk);
            }
            match self.next() {
                None => return Err(Syntax::EofWhileParsingString),
                Some(b'"') if self.skipping => {
                    return if utf8 {
                        Ok(String::new())
                    } else {
                        Err(Syntax::InvalidUnicodeCodePoint)
                    };
                }
                Some(b'"') => return String::from_utf8(bytes).map_err(|_| Syntax::InvalidUnicodeCodePoint),
                Some(b'\\') => {
                    self.escape(&mut bytes)?;
                    if self.skipping {
                        bytes.clear();
                    }
                }
                Some(_) => return Err(Syntax::ControlCharacterWhileParsingString),
            }
        }
    }

    /// One escape, after its backslash.
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let byte = match self.next().ok_or(Syntax::EofWhileParsingString)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let c = self.unicode_escape()?;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Ok(());
            }
            _ => return Err(Syntax::InvalidEscape),
        };
        out.push(byte);
        Ok(())
    }

    /// A `\u` escape, after the `u`: a character, or a pair of them for a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char> {
        let first = self.hex4()?;
        // serde_json calls a lone trailing surrogate a leading one too.
        if (0xDC00..=0xDFFF).contains(&first) {
            return Err(Syntax::LoneLeadingSurrogateInHexEscape);
        }
        if !(0xD800..=0xDBFF).contains(&first) {
            return char::from_u32(first).ok_or(Syntax::InvalidUnicodeCodePoint);
        }
        for expected in [b'\\', b'u'] {
            match self.next() {
                Some(byte) if byte == expected => {}
                Some(_) => return Err(Syntax::UnexpectedEndOfHexEscape),
                None => return Err(Syntax::EofWhileParsingString),
            }
        }
        let second = self.hex4()?;
        if !(0xDC00..=0xDFFF).contains(&second) {
            return Err(Syntax::LoneLeadingSurrogateInHexEscape);
        }
        char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)).ok_or(Syntax::InvalidUnicodeCodePoint)
    }

    fn hex4(&mut self) -> Result<u32> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .ok_or(Syntax::EofWhileParsingString)?;
        self.at += 4;
        digits.iter().try_fold(0, |n, &digit| {
            let digit = char::from(digit).to_digit(16).ok_or(Syntax::InvalidEscape)?;
            Ok(n << 4 | digit)
        })
    }

    fn digit(&self) -> Option<u64> {
        self.peek()
            .filter(u8::is_ascii_digit)
            .map(|byte| u64::from(byte - b'0'))
    }

    /// A number, after its sign.
    fn number(&mut self, positive: bool) -> Result<Node> {
        let mut significand = match self.next() {
            None => return Err(Syntax::EofWhileParsingValue),
            // Only one leading zero.
            Some(b'0') if self.digit().is_some() => return Err(Syntax::InvalidNumber),
            Some(byte @ b'0'..=b'9') => u64::from(byte - b'0'),
            Some(_) => return Err(Syntax::InvalidNumber),
        };
        while let Some(digit) = self.digit() {
            match significand.checked_mul(10).and_then(|n| n.checked_add(digit)) {
                Some(n) => significand = n,
                // Past 64 bits: a double, of the digits that fit and a power of ten for the rest.
                None => return self.long_integer(positive, significand).map(Node::F64),
            }
            self.at += 1;
        }
        match self.peek() {
            Some(b'.') => self.fraction(positive, significand, 0).map(Node::F64),
            Some(b'e' | b'E') => self.exponent(positive, significand, 0).map(Node::F64),
            _ if positive => Ok(Node::U64(significand)),
            _ => {
                let negative = (significand as i64).wrapping_neg();
                // Past i64, or `-0`: a double.
                Ok(if negative >= 0 {
                    Node::F64(-(significand as f64))
                } else {
                    Node::I64(negative)
                })
            }
        }
    }

    fn long_integer(&mut self, positive: bool, significand: u64) -> Result<f64> {
        let mut exponent = 0i32;
        while self.digit().is_some() {
            self.at += 1;
            exponent = exponent.saturating_add(1);
        }
        match self.peek() {
            Some(b'.') => self.fraction(positive, significand, exponent),
            Some(b'e' | b'E') => self.exponent(positive, significand, exponent),
            _ => to_f64(positive, significand, exponent),
        }
    }

    /// The digits after the point (at least one), then the exponent if there is one.
    fn fraction(&mut self, positive: bool, mut significand: u64, mut exponent: i32) -> Result<f64> {
        self.at += 1;
        let start = self.at;
        while let Some(digit) = self.digit() {
            self.at += 1;
            match significand.checked_mul(10).and_then(|n| n.checked_add(digit)) {
                Some(n) => {
                    significand = n;
                    exponent = exponent.saturating_sub(1);
                }
                // The digits past 64 bits change nothing.
                None => {
                    while self.digit().is_some() {
                        self.at += 1;
                    }
                }
            }
        }
        if self.at == start {
            return Err(match self.peek() {
                Some(_) => Syntax::InvalidNumber,
                None => Syntax::EofWhileParsingValue,
            });
        }
        match self.peek() {
            Some(b'e' | b'E') => self.exponent(positive, significand, exponent),
            _ => to_f64(positive, significand, exponent),
        }
    }

    fn exponent(&mut self, positive: bool, significand: u64, exponent_before: i32) -> Result<f64> {
        self.at += 1;
        let positive_exponent = match self.peek() {
            Some(b'-') => {
                self.at += 1;
                false
            }
            Some(b'+') => {
                self.at += 1;
                true
            }
            _ => true,
        };
        let mut exponent: i32 = match self.next() {
            None => return Err(Syntax::EofWhileParsingValue),
            Some(byte @ b'0'..=b'9') => i32::from(byte - b'0'),
            Some(_) => return Err(Syntax::InvalidNumber),
        };
        while let Some(digit) = self.digit() {
            self.at += 1;
            let digit = digit as i32;
            match exponent.checked_mul(10).and_then(|n| n.checked_add(digit)) {
                Some(n) => exponent = n,
                None => {
                    // An exponent past 32 bits: infinity is an error, and anything else is zero.
                    if significand != 0 && positive_exponent {
                        return Err(Syntax::NumberOutOfRange);
                    }
                    while self.digit().is_some() {
                        self.at += 1;
                    }
                    return Ok(if positive { 0.0 } else { -0.0 });
                }
            }
        }
        let exponent = if positive_exponent {
            exponent_before.saturating_add(exponent)
        } else {
            exponent_before.saturating_sub(exponent)
        };
        to_f64(positive, significand, exponent)
    }
}

/// `significand` times ten to the `exponent`, by one multiplication or division with the
/// closest double to that power of ten (for an exponent below -308, by dividing by 1e308 first);
/// past the largest double, an error.
fn to_f64(positive: bool, significand: u64, mut exponent: i32) -> Result<f64> {
    let mut f = significand as f64;
    loop {
        match POW10.get(exponent.unsigned_abs() as usize) {
            Some(&power) if exponent >= 0 => {
                f *= power;
                if f.is_infinite() {
                    return Err(Syntax::NumberOutOfRange);
                }
                break;
            }
            Some(&power) => {
                f /= power;
                break;
            }
            None if f == 0.0 => break,
            None if exponent >= 0 => return Err(Syntax::NumberOutOfRange),
            None => {
                f /= 1e308;
                exponent += 308;
            }
        }
    }
    Ok(if positive { f } else { -f })
}

/// A member name that appears twice in one object, where that is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duplicate;

impl Node {
    /// As serde_json's value, a repeated member name keeping its last value (as serde_json
    /// reads it). Call it on a complete tree: a [`Node::Broken`] part is `null`.
    pub fn into_value(self) -> Value {
        self.into_value_checked(false).unwrap_or(Value::Null)
    }

    /// As serde_json's value, a member name that appears twice in one object, at any depth,
    /// refused.
    pub fn into_strict_value(self) -> Result<Value, Duplicate> {
        self.into_value_checked(true)
    }

    fn into_value_checked(self, strict: bool) -> Result<Value, Duplicate> {
        Ok(match self {
            Node::Broken | Node::Unreached | Node::Null => Value::Null,
            Node::Bool(v) => Value::Bool(v),
            Node::U64(v) => Value::Number(v.into()),
            Node::I64(v) => Value::Number(v.into()),
            Node::F64(v) => Number::from_f64(v).map_or(Value::Null, Value::Number),
            Node::Str(v) => Value::String(v),
            Node::Array(items, _) => Value::Array(
                items
                    .into_iter()
                    .map(|item| item.into_value_checked(strict))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Object(members, _) => {
                let mut map = Map::new();
                for (name, member) in members {
                    let value = member.into_value_checked(strict)?;
                    if map.insert(name, value).is_some() && strict {
                        return Err(Duplicate);
                    }
                }
                Value::Object(map)
            }
        })
    }
}

#[cfg(test)]
mod tests;
