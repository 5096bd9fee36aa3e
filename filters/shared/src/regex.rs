//! The regexes of the configs (route matches, header-name rules): whole-text matches in time
//! linear in the text, whatever the pattern.
//!
//! The syntax is the `regex` crate's, with `regex-lite`'s ASCII meanings: `\d`, `\w`, `\s`, `\b`
//! and `(?i)` know only ASCII; `.` and classes match whole code points. Supported: literals and
//! escapes (`\.`, `\/`, `\n`, `\t`, `\x7F`, `\x{..}`, `\u....`, `\U........`), `.`, classes
//! (`[a-z]`, `[^/]`, `[\d_]`, `[[:alpha:]]`), `\d \D \s \S \w \W`, `^ $ \A \z \b \B \< \>`,
//! groups (`(..)`, `(?:..)`, `(?P<name>..)`, `(?<name>..)`), alternation, `* + ? {n} {n,} {n,m}`
//! (lazy forms too) and the flags `i m s x U u` (`(?i)`, `(?i:..)`, `(?-i)`). Refused at load, with
//! where: Unicode classes (`\p{..}`), nested classes and class set operations, a range from a
//! leading `]`, `\b{..}`, a repetition of a repetition (`a**`) or of a flag group, counts over
//! 1000, groups or levels nested over 50 deep and programs over 10,000 states ([`reference::STRICTER`]
//! lists why). This replaces `regex-lite`, which took 55 KB of every module for the few matches
//! the filters make; the tests and the `regex` fuzz target hold the two to the same answers.

mod parse;
mod program;

use std::cell::RefCell;
use std::fmt;

use program::{Scratch, State};

/// A compiled pattern that must match the whole of a text.
#[derive(Debug)]
pub struct Regex {
    states: Vec<State>,
    scratch: RefCell<Scratch>,
}

/// Why a pattern was refused, and where (a byte offset into it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegexError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for RegexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.at)
    }
}

impl Regex {
    /// `pattern` anchored at both ends: `/orders/[0-9]+` matches `/orders/1` but not
    /// `/orders/1/items`. `case_insensitive` is `(?i)` over the whole pattern.
    pub fn whole(pattern: &str, case_insensitive: bool) -> Result<Self, RegexError> {
        let tree = parse::parse(pattern, case_insensitive)?;
        Ok(Self {
            states: program::compile(&tree)?,
            scratch: RefCell::default(),
        })
    }

    pub fn is_match(&self, text: &str) -> bool {
        match self.scratch.try_borrow_mut() {
            Ok(mut scratch) => program::matches_whole(&self.states, text, &mut scratch),
            Err(_) => program::matches_whole(&self.states, text, &mut Scratch::default()),
        }
    }
}

#[cfg(any(test, feature = "testkit"))]
pub mod reference;
#[cfg(test)]
mod tests;
