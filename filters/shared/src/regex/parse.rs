//! Pattern text to syntax tree, with the `regex` crate's syntax (the subset listed in
//! [`super`]) and its ASCII-only meanings of `\d`, `\w`, `\s`, `\b` and `(?i)`.

use super::RegexError;

/// Code points as `u32`: a class is sorted, disjoint, inclusive ranges of them.
pub(super) type Ranges = Vec<(u32, u32)>;

const MAX_CHAR: u32 = char::MAX as u32;
/// Counted repetitions past this are refused (as the `regex` crate does).
const MAX_COUNT: u32 = 1000;
/// Groups nested deeper are refused, as by `regex-lite`: parsing and compiling recurse once a
/// level.
const MAX_DEPTH: usize = 50;
/// Patterns whose tree is deeper are refused, as by `regex-lite`, which counts each group that
/// captures, repetition, alternation and sequence within another as a level.
const MAX_NESTING: usize = 50;
/// `regex-lite` reads `[` in a class as itself, the `regex` crate as a nested class: refused.
const NESTED_CLASS: &str = "nested classes are not supported: escape `[` as `\\[`";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Look {
    TextStart,
    TextEnd,
    LineStart,
    LineEnd,
    WordBoundary,
    NotWordBoundary,
    WordStart,
    WordEnd,
}

#[derive(Debug)]
pub(super) enum Node {
    Empty,
    Class(Ranges),
    Look(Look),
    Concat(Vec<Node>),
    Alternation(Vec<Node>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
    /// A group that captures: it matches as its contents, and is a level of nesting to `regex-lite`.
    Capture(Box<Node>),
}

/// Levels of nesting as `regex-lite` counts them in its tree, which leaves `{1}` out: at least
/// as many.
fn height(node: &Node) -> usize {
    match node {
        Node::Empty | Node::Class(_) | Node::Look(_) => 0,
        Node::Concat(nodes) | Node::Alternation(nodes) => 1 + nodes.iter().map(height).max().unwrap_or(0),
        Node::Repeat { node, .. } | Node::Capture(node) => 1 + height(node),
    }
}

#[derive(Clone, Copy, Default)]
struct Flags {
    case_insensitive: bool,
    multi_line: bool,
    dot_matches_new_line: bool,
    verbose: bool,
}

pub(super) fn parse(pattern: &str, case_insensitive: bool) -> Result<Node, RegexError> {
    let mut parser = Parser {
        pattern,
        pos: 0,
        flags: Flags {
            case_insensitive,
            ..Flags::default()
        },
        depth: 0,
        group_names: Vec::new(),
    };
    let node = parser.alternation()?;
    if parser.peek().is_some() {
        return Err(parser.error_here("unopened group: `)` without its `(`"));
    }
    if height(&node) > MAX_NESTING {
        return Err(parser.error_at(0, format!("pattern nested more than {MAX_NESTING} levels deep")));
    }
    Ok(node)
}

struct Parser<'a> {
    pattern: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    flags: Flags,
    depth: usize,
    group_names: Vec<&'a str>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<char> {
        self.pattern.get(self.pos..).and_then(|rest| rest.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, expected: char) -> bool {
        let found = self.peek() == Some(expected);
        if found {
            self.pos += expected.len_utf8();
        }
        found
    }

    fn error_at(&self, at: usize, message: impl Into<String>) -> RegexError {
        RegexError {
            at,
            message: message.into(),
        }
    }

    fn error_here(&self, message: impl Into<String>) -> RegexError {
        self.error_at(self.pos, message)
    }

    /// In verbose mode (`x`), whitespace and `#` comments between items are not part of the
    /// pattern.
    fn skip_verbose(&mut self) {
        if !self.flags.verbose {
            return;
        }
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.bump();
            } else if c == '#' {
                while !matches!(self.bump(), None | Some('\n')) {}
            } else {
                break;
            }
        }
    }

    /// Whitespace around the numbers of a counted repetition (`a{2, 3}`) is allowed in any mode,
    /// as in the `regex` crates.
    fn skip_count_space(&mut self) {
        self.skip_verbose();
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn alternation(&mut self) -> Result<Node, RegexError> {
        let mut branches = vec![self.concat()?];
        while self.eat('|') {
            branches.push(self.concat()?);
        }
        Ok(match branches.len() {
            1 => branches.pop().unwrap_or(Node::Empty),
            _ => Node::Alternation(branches),
        })
    }

    fn concat(&mut self) -> Result<Node, RegexError> {
        let mut items = Vec::new();
        loop {
            self.skip_verbose();
            let node = match self.peek() {
                None | Some('|' | ')') => break,
                Some('*' | '+' | '?' | '{') => return Err(self.error_here("repetition of nothing")),
                Some('(') => match self.group()? {
                    Some(node) => node,
                    // A bare flag group like `(?i)`: it changed the flags and matches nothing.
                    None => continue,
                },
                Some(_) => self.atom()?,
            };
            items.push(self.repetitions(node)?);
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(items),
        })
    }

    /// The quantifier after an item, if any (`*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`, each
    /// optionally lazy; laziness changes no answer of a whole-text match).
    fn repetitions(&mut self, node: Node) -> Result<Node, RegexError> {
        self.skip_verbose();
        let (min, max) = match self.peek() {
            Some(c @ ('*' | '+' | '?')) => {
                self.bump();
                (u32::from(c == '+'), (c == '?').then_some(1))
            }
            Some('{') => {
                self.bump();
                self.counted()?
            }
            _ => return Ok(node),
        };
        self.eat('?');
        self.skip_verbose();
        if matches!(self.peek(), Some('*' | '+' | '?' | '{')) {
            return Err(self.error_here("repetition of a repetition: put the inner one in a group"));
        }
        Ok(Node::Repeat {
            node: Box::new(node),
            min,
            max,
        })
    }

    /// After `{`: `n}`, `n,}` or `n,m}`, leaving the position just past `}`.
    fn counted(&mut self) -> Result<(u32, Option<u32>), RegexError> {
        self.skip_count_space();
        let min = self.count()?;
        self.skip_count_space();
        let max = if self.eat(',') {
            // `{2,}` is open-ended; `{2, }` is refused, as by the `regex` crates.
            match self.peek() {
                Some('}') => None,
                _ => {
                    self.skip_count_space();
                    Some(self.count()?)
                }
            }
        } else {
            Some(min)
        };
        self.skip_count_space();
        if !self.eat('}') {
            return Err(self.error_here("unclosed counted repetition: expected `}`"));
        }
        if max.is_some_and(|max| max < min) {
            return Err(self.error_here("counted repetition whose maximum is below its minimum"));
        }
        Ok((min, max))
    }

    fn count(&mut self) -> Result<u32, RegexError> {
        let start = self.pos;
        match self.digits(10, u32::MAX) {
            (_, 0) => Err(self.error_here("counted repetition without a number")),
            (n, _) if n <= MAX_COUNT => Ok(n),
            _ => Err(self.error_at(start, format!("counted repetition over {MAX_COUNT}"))),
        }
    }

    /// `(...)`, `(?:...)`, `(?P<name>...)`, `(?<name>...)`, `(?flags:...)`; `None` for a bare
    /// `(?flags)`, which sets the flags for the rest of the enclosing group.
    fn group(&mut self) -> Result<Option<Node>, RegexError> {
        let open = self.pos;
        self.bump();
        let saved = self.flags;
        let mut captures = true;
        if self.eat('?') {
            if self.eat('P') && self.peek() != Some('<') {
                return Err(self.error_here("expected `<` of a group name after `(?P`"));
            }
            if self.eat('<') {
                self.group_name()?;
            } else if self.flag_group()? {
                return Ok(None);
            } else {
                captures = false;
            }
        }
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(open, format!("groups nested more than {MAX_DEPTH} deep")));
        }
        let node = self.alternation()?;
        self.depth -= 1;
        if !self.eat(')') {
            return Err(self.error_at(open, "unclosed group"));
        }
        self.flags = saved;
        Ok(Some(match captures {
            true => Node::Capture(Box::new(node)),
            false => node,
        }))
    }

    fn group_name(&mut self) -> Result<(), RegexError> {
        let start = self.pos;
        while let Some(c) = self.bump() {
            if c == '>' {
                let name = self.pattern.get(start..self.pos - 1).unwrap_or_default();
                // ASCII only, where `regex-lite` takes any Unicode letter or digit: its tables
                // would cost 3 KB of every module, for a name no whole-text match reads.
                if !name.is_ascii() {
                    return Err(self.error_at(start, format!("group names are ASCII only: {name:?}")));
                }
                let valid_start = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
                let valid_rest = name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'));
                if !valid_start || !valid_rest {
                    return Err(self.error_at(start, format!("invalid group name {name:?}")));
                }
                if self.group_names.contains(&name) {
                    return Err(self.error_at(start, format!("repeated group name {name:?}")));
                }
                self.group_names.push(name);
                return Ok(());
            }
        }
        Err(self.error_at(start, "unclosed group name: expected `>`"))
    }

    /// After `(?`: flags, then `)` (true: a bare flag group) or `:` (false: a group follows).
    fn flag_group(&mut self) -> Result<bool, RegexError> {
        let start = self.pos;
        let mut on = true;
        // Not a `String`: `str::contains` with a non-ASCII `char` links core's substring search.
        let mut seen: Vec<char> = Vec::new();
        loop {
            let at = self.pos;
            let c = self.bump().ok_or_else(|| self.error_at(start, "unclosed flag group"))?;
            match c {
                ')' if seen.is_empty() => return Err(self.error_at(start, "empty flag group")),
                ')' | ':' if seen.last() == Some(&'-') => {
                    return Err(self.error_at(at, format!("`-` without a flag before `{c}`")))
                }
                ')' | ':' => return Ok(c == ')'),
                '-' if on => on = false,
                _ if seen.contains(&c) => return Err(self.error_at(at, format!("repeated flag {c:?}"))),
                'i' => self.flags.case_insensitive = on,
                'm' => self.flags.multi_line = on,
                's' => self.flags.dot_matches_new_line = on,
                'x' => self.flags.verbose = on,
                // `U` swaps greedy and lazy: no whole-text match changes. `u` (Unicode) changes
                // nothing where `\d`, `\w`, `\s` and case folding are ASCII only.
                'U' | 'u' => {}
                _ => return Err(self.error_at(at, format!("unsupported flag {c:?} (i, m, s, x, U and u are)"))),
            }
            seen.push(c);
        }
    }

    fn atom(&mut self) -> Result<Node, RegexError> {
        let start = self.pos;
        let c = self.bump().ok_or_else(|| self.error_here("unexpected end"))?;
        Ok(match c {
            '.' if self.flags.dot_matches_new_line => Node::Class(vec![(0, MAX_CHAR)]),
            '.' => Node::Class(negated(vec![(u32::from('\n'), u32::from('\n'))])),
            '^' if self.flags.multi_line => Node::Look(Look::LineStart),
            '^' => Node::Look(Look::TextStart),
            '$' if self.flags.multi_line => Node::Look(Look::LineEnd),
            '$' => Node::Look(Look::TextEnd),
            '[' => Node::Class(self.class(start)?),
            '\\' => match self.escape(false)? {
                Escaped::Char(c) => Node::Class(self.folded(single(c))),
                Escaped::Class(ranges) => Node::Class(ranges),
                Escaped::Look(look) => Node::Look(look),
            },
            c => Node::Class(self.folded(single(c))),
        })
    }

    /// With `(?i)`, a class also holds the other case of its ASCII letters (as in the `regex`
    /// crate's `regex-lite`: no Unicode case folding).
    fn folded(&self, ranges: Ranges) -> Ranges {
        if !self.flags.case_insensitive {
            return ranges;
        }
        let mut all = ranges.clone();
        for &(low, high) in &ranges {
            for (from, to) in [(u32::from('a'), u32::from('A')), (u32::from('A'), u32::from('a'))] {
                let (overlap_low, overlap_high) = (low.max(from), high.min(from + 25));
                if overlap_low <= overlap_high {
                    all.push((overlap_low - from + to, overlap_high - from + to));
                }
            }
        }
        normalised(all)
    }

    /// After `\`. `in_class`: inside `[...]`, where assertions mean nothing.
    fn escape(&mut self, in_class: bool) -> Result<Escaped, RegexError> {
        let start = self.pos - 1;
        let c = self
            .bump()
            .ok_or_else(|| self.error_at(start, "pattern ends with a lone `\\`"))?;
        let escaped = match c {
            'd' | 's' | 'w' | 'D' | 'S' | 'W' => {
                let class = perl_class(c.to_ascii_lowercase());
                Escaped::Class(if c.is_ascii_uppercase() { negated(class) } else { class })
            }
            'b' | 'B' | 'A' | 'z' if !in_class => {
                if c == 'b' && self.peek() == Some('{') {
                    return Err(self.error_at(start, "`\\b{...}` assertions are not supported"));
                }
                Escaped::Look(match c {
                    'b' => Look::WordBoundary,
                    'B' => Look::NotWordBoundary,
                    'A' => Look::TextStart,
                    _ => Look::TextEnd,
                })
            }
            'n' => Escaped::Char('\n'),
            't' => Escaped::Char('\t'),
            'r' => Escaped::Char('\r'),
            'f' => Escaped::Char('\u{c}'),
            'v' => Escaped::Char('\u{b}'),
            'a' => Escaped::Char('\u{7}'),
            'x' => Escaped::Char(self.hex(start, 2)?),
            'u' => Escaped::Char(self.hex(start, 4)?),
            'U' => Escaped::Char(self.hex(start, 8)?),
            'p' | 'P' => return Err(self.error_at(start, "Unicode classes (`\\p`, `\\P`) are not supported")),
            '<' if !in_class => Escaped::Look(Look::WordStart),
            '>' if !in_class => Escaped::Look(Look::WordEnd),
            '<' | '>' => return Err(self.error_at(start, "`\\<` and `\\>` are word boundaries, not characters")),
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Escaped::Char(c),
            c => return Err(self.error_at(start, format!("unknown escape `\\{c}`"))),
        };
        Ok(escaped)
    }

    /// After `\x`, `\u` or `\U`: exactly `digits` hex digits, or `{` 1 to 8 of them `}`.
    fn hex(&mut self, start: usize, digits: u32) -> Result<char, RegexError> {
        self.skip_verbose();
        let braced = self.eat('{');
        let (value, count) = self.digits(16, if braced { 9 } else { digits });
        self.skip_verbose();
        let complete = if braced {
            (1..=8).contains(&count) && self.eat('}')
        } else {
            count == digits
        };
        char::from_u32(value)
            .filter(|_| complete)
            .ok_or_else(|| self.error_at(start, "invalid hex escape"))
    }

    /// Up to `most` digits in `radix` (in verbose mode, spaces between them are skipped, as the
    /// `regex` crates do): their value (saturated) and how many there were.
    fn digits(&mut self, radix: u32, most: u32) -> (u32, u32) {
        let (mut value, mut count) = (0u32, 0);
        while count < most {
            self.skip_verbose();
            let Some(digit) = self.peek().and_then(|c| c.to_digit(radix)) else {
                break;
            };
            self.bump();
            value = value.saturating_mul(radix).saturating_add(digit);
            count += 1;
        }
        (value, count)
    }

    /// After `[`: the items up to `]`.
    fn class(&mut self, open: usize) -> Result<Ranges, RegexError> {
        self.skip_verbose();
        let negate = self.eat('^');
        let mut ranges = Ranges::new();
        // Leading `-`s are themselves, even with spaces between them in verbose mode.
        loop {
            self.skip_verbose();
            if self.peek() != Some('-') {
                break;
            }
            if self.pattern.get(self.pos + 1..self.pos + 2) == Some("-") {
                return Err(self.error_here("class set operations (`--`) are not supported"));
            }
            self.bump();
            ranges.push((u32::from('-'), u32::from('-')));
        }
        let mut first = ranges.is_empty();
        loop {
            self.skip_verbose();
            let at = self.pos;
            let c = self
                .bump()
                .ok_or_else(|| self.error_at(open, "unclosed class: expected `]`"))?;
            match c {
                ']' if !first => break,
                '[' if self.peek() == Some(':') => ranges.extend(self.posix_class(at)?),
                '[' => return Err(self.error_at(at, NESTED_CLASS)),
                '&' | '-' | '~' if self.peek() == Some(c) => {
                    return Err(self.error_at(at, format!("class set operations (`{c}{c}`) are not supported")))
                }
                _ => {
                    let low = match c {
                        '\\' => match self.escape(true)? {
                            Escaped::Char(c) => c,
                            Escaped::Class(class) => {
                                if self.dash_starts_range()? {
                                    return Err(self.error_at(at, "a range must start with a character"));
                                }
                                ranges.extend(class);
                                first = false;
                                continue;
                            }
                            Escaped::Look(_) => return Err(self.error_at(at, "assertion in a class")),
                        },
                        c => c,
                    };
                    if first && low == ']' && self.dash_starts_range()? {
                        return Err(
                            self.error_at(at, "a range from a leading `]` is read two ways: escape it as `\\]`")
                        );
                    }
                    let high = self.range_end(low)?;
                    ranges.push((u32::from(low), u32::from(high)));
                }
            }
            first = false;
        }
        let ranges = self.folded(normalised(ranges));
        Ok(if negate { negated(ranges) } else { ranges })
    }

    /// Whether a `-` comes next (after spaces, in verbose mode) and does not end the class.
    fn dash_starts_range(&mut self) -> Result<bool, RegexError> {
        self.skip_verbose();
        if self.peek() != Some('-') {
            return Ok(false);
        }
        let after = self.pattern.get(self.pos + 1..).unwrap_or_default();
        let after = if self.flags.verbose { after.trim_start() } else { after };
        match after.chars().next() {
            Some(']') | None => Ok(false),
            // `regex-lite` looks past the `-` for `]` without skipping the comment.
            Some('#') if self.flags.verbose => {
                Err(self.error_here("a comment right after `-` in a class is read two ways: escape the `-`"))
            }
            Some(_) => Ok(true),
        }
    }

    /// After a class item `low`: `-high` makes it a range, unless the `-` ends the class.
    fn range_end(&mut self, low: char) -> Result<char, RegexError> {
        if !self.dash_starts_range()? {
            return Ok(low);
        }
        let dash = self.pos;
        self.bump();
        self.skip_verbose();
        let high = match self.bump() {
            Some('-') => return Err(self.error_at(dash, "class set operations (`--`) are not supported")),
            Some('\\') => match self.escape(true)? {
                Escaped::Char(c) => c,
                _ => return Err(self.error_at(dash, "a range must end in a character")),
            },
            Some('[') => return Err(self.error_at(self.pos - 1, NESTED_CLASS)),
            Some(c) => c,
            // Not after `dash_starts_range`; the class is unclosed either way.
            None => return Ok(low),
        };
        if high < low {
            return Err(self.error_at(dash, format!("class range {low:?}-{high:?} ends before it starts")));
        }
        Ok(high)
    }

    /// After `[` inside a class, at `:`: `[:name:]` or `[:^name:]`.
    fn posix_class(&mut self, at: usize) -> Result<Ranges, RegexError> {
        let rest = self.pattern.get(self.pos..).unwrap_or_default();
        let close = rest
            .as_bytes()
            .windows(2)
            .position(|pair| pair == b":]")
            .ok_or_else(|| self.error_at(at, "unclosed POSIX class: expected `:]`"))?;
        let inner = rest.get(1..close).unwrap_or_default();
        let (negate, name) = match inner.strip_prefix('^') {
            Some(name) => (true, name),
            None => (false, inner),
        };
        let ranges = posix(name).ok_or_else(|| self.error_at(at, format!("unknown POSIX class {name:?}")))?;
        self.pos += close + 2;
        Ok(if negate { negated(ranges) } else { ranges })
    }
}

enum Escaped {
    Char(char),
    Class(Ranges),
    Look(Look),
}

fn single(c: char) -> Ranges {
    vec![(u32::from(c), u32::from(c))]
}

fn ascii(pairs: &[(u8, u8)]) -> Ranges {
    pairs
        .iter()
        .map(|&(low, high)| (u32::from(low), u32::from(high)))
        .collect()
}

/// `\d`, `\s`, `\w`: their ASCII meanings.
fn perl_class(name: char) -> Ranges {
    match name {
        'd' => ascii(&[(b'0', b'9')]),
        's' => ascii(&[(b'\t', b'\r'), (b' ', b' ')]),
        _ => ascii(&[(b'0', b'9'), (b'A', b'Z'), (b'_', b'_'), (b'a', b'z')]),
    }
}

fn posix(name: &str) -> Option<Ranges> {
    let pairs: &[(u8, u8)] = match name {
        "alnum" => &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z')],
        "alpha" => &[(b'A', b'Z'), (b'a', b'z')],
        "ascii" => &[(0, 0x7f)],
        "blank" => &[(b'\t', b'\t'), (b' ', b' ')],
        "cntrl" => &[(0, 0x1f), (0x7f, 0x7f)],
        "digit" => &[(b'0', b'9')],
        "graph" => &[(b'!', b'~')],
        "lower" => &[(b'a', b'z')],
        "print" => &[(b' ', b'~')],
        "punct" => &[(b'!', b'/'), (b':', b'@'), (b'[', b'`'), (b'{', b'~')],
        "space" => &[(b'\t', b'\r'), (b' ', b' ')],
        "upper" => &[(b'A', b'Z')],
        "word" => &[(b'0', b'9'), (b'A', b'Z'), (b'_', b'_'), (b'a', b'z')],
        "xdigit" => &[(b'0', b'9'), (b'A', b'F'), (b'a', b'f')],
        _ => return None,
    };
    Some(ascii(pairs))
}

/// Sorted, with overlapping and adjacent ranges merged.
fn normalised(ranges: Ranges) -> Ranges {
    // Sorted by insertion: a class has few ranges, and `sort_unstable` would add 9 KB to every
    // module.
    let mut sorted: Ranges = Vec::with_capacity(ranges.len());
    for range in ranges {
        sorted.insert(sorted.partition_point(|&r| r < range), range);
    }
    let mut merged: Ranges = Vec::with_capacity(sorted.len());
    for (low, high) in sorted {
        match merged.last_mut() {
            Some(last) if low <= last.1.saturating_add(1) => last.1 = last.1.max(high),
            _ => merged.push((low, high)),
        }
    }
    merged
}

/// Every code point not in `ranges` (which must be normalised).
fn negated(ranges: Ranges) -> Ranges {
    let mut out = Ranges::new();
    let mut next = 0;
    for (low, high) in normalised(ranges) {
        if low > next {
            out.push((next, low - 1));
        }
        next = high + 1;
    }
    if next <= MAX_CHAR {
        out.push((next, MAX_CHAR));
    }
    out
}
