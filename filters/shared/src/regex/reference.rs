//! This engine held to `regex-lite`, the crate it replaces: the same answers on every pattern both
//! accept, the same refusals, and more refusals only where the two crates of the `regex` family
//! read a pattern differently or where it is needlessly obscure ([`STRICTER`]). Used by the unit
//! tests and the `regex` fuzz target.

use super::Regex;

/// What this engine refuses and `regex-lite` accepts: stacked repetitions (`a**`, `a+{2}`), a
/// repetition right after a flag group (`a(?i)*`), `\b{..}` in any form, `[` in a class (itself
/// to `regex-lite`, a nested class to the `regex` crate), a range from a leading `]` (`[]-a]`:
/// three characters to `regex-lite`, a range to the `regex` crate), and `&&`, `--` or `~~` in a
/// class (characters to `regex-lite`, set operations to the `regex` crate), a comment right
/// after a class's `-` in verbose mode (`regex-lite` decides whether the `-` starts a range by the
/// comment's first character, then skips the comment for the range's end), the flag `R` (CRLF
/// line ends), group names that are not ASCII; and the limits: counts
/// over 1000, groups nested over 50 deep, patterns nested over 50 levels (counting `{1}` and
/// `{0}`, which `regex-lite` leaves out), programs over 10,000 states.
pub const STRICTER: &[&str] = &[
    "counted repetition over",
    "unsupported flag 'R'",
    "groups nested more than",
    "pattern nested more than",
    "pattern too large",
    "class set operations",
    "a range from a leading `]`",
    "a comment right after `-`",
    "nested classes are not supported",
    "repetition of a repetition",
    "repetition of nothing",
    "group names are ASCII only",
    "`\\b{...}` assertions are not supported",
];

/// `regex-lite`'s whole-text answer, or `None` if it refuses the pattern or its anchored form,
/// or if its answer may be wrong ([`may_hit_one_sided_fold`]).
pub fn answer(pattern: &str, case_insensitive: bool, text: &str) -> Option<bool> {
    regex_lite::Regex::new(pattern).ok()?;
    if may_hit_one_sided_fold(pattern, case_insensitive) {
        return None;
    }
    let flags = if case_insensitive { "(?i)" } else { "" };
    let anchored = regex_lite::Regex::new(&format!("{flags}^(?:{pattern})$")).ok()?;
    Some(anchored.is_match(text))
}

/// Whether `pattern` may have a class range that `regex-lite` (0.1.9) folds wrongly under `(?i)`:
/// it gives a range that holds letters of both cases only the other case of its lower-case
/// letters, so `(?i)[0-o]` (`0` to `o` holds `A`-`Z` and `a`-`o`) does not match `s`, which the
/// `regex` crate and this engine match. That takes a range in a class from at most `Z` to a
/// letter below `z`, and case insensitivity. This errs towards yes: any flag group that sets `i`
/// counts, wherever it is, and in a class both the characters next to a `-` and the nearest ones
/// that are not white space (verbose mode skips them).
fn may_hit_one_sided_fold(pattern: &str, case_insensitive: bool) -> bool {
    let sets_i = |(at, _): (usize, &str)| {
        pattern
            .get(at + 2..)
            .is_some_and(|flags| flags.chars().take_while(char::is_ascii_alphabetic).any(|f| f == 'i'))
    };
    (case_insensitive || pattern.match_indices("(?").any(sets_i)) && class_range_of_both_cases(pattern)
}

fn class_range_of_both_cases(pattern: &str) -> bool {
    let spans = |low: Option<&char>, high: Option<&char>| matches!((low, high), (Some(low), Some(high)) if *low <= 'Z' && ('a'..='y').contains(high));
    let chars: Vec<char> = pattern.chars().collect();
    let mut in_class = false;
    // At the first member of a class, where `]` is a member.
    let mut first = false;
    let mut at = 0;
    while let Some(&c) = chars.get(at) {
        if c == '\\' {
            (at, first) = (at + 2, false);
            continue;
        }
        if !in_class {
            if c == '[' {
                (in_class, first) = (true, true);
                if chars.get(at + 1) == Some(&'^') {
                    at += 1;
                }
            }
        } else if c == ']' && !first {
            in_class = false;
        } else if c == '-' {
            first = false;
            let before = chars.get(..at).unwrap_or_default();
            let after = chars.get(at + 1..).unwrap_or_default();
            let solid = |c: &&char| !c.is_whitespace();
            if spans(before.last(), after.first()) || spans(before.iter().rev().find(solid), after.iter().find(solid)) {
                return true;
            }
        } else {
            first = false;
        }
        at += 1;
    }
    false
}

/// How this engine and `regex-lite` part on a pattern.
#[derive(Debug)]
pub enum Disagreement {
    /// Refused here for a reason not in [`STRICTER`]: a config would be refused at load, with
    /// the reason, so this fails closed.
    Refused(String),
    /// Accepted here, refused by `regex-lite`.
    Accepted(String),
    /// Both accept it, and answer differently on a text.
    Answer(String),
}

/// Where this engine and `regex-lite` part on `pattern` and `texts`, if they do.
pub fn disagreement(pattern: &str, case_insensitive: bool, texts: &[&str]) -> Option<Disagreement> {
    let ours = Regex::whole(pattern, case_insensitive);
    let theirs = regex_lite::Regex::new(pattern);
    match (ours, theirs) {
        (Ok(_), Err(e)) => Some(Disagreement::Accepted(format!(
            "{pattern:?} accepted here, refused by regex-lite: {e}"
        ))),
        (Err(e), Ok(_)) if !STRICTER.iter().any(|refusal| e.message.starts_with(refusal)) => Some(
            Disagreement::Refused(format!("{pattern:?} refused here, accepted by regex-lite: {e}")),
        ),
        (Err(_), _) => None,
        // The reference wraps the pattern, and a verbose-mode comment would swallow its end.
        (Ok(_), Ok(_)) if pattern.contains("(?x)") && pattern.contains('#') => None,
        (Ok(regex), Ok(_)) => texts.iter().find_map(|text| {
            // `None`: regex-lite refuses the anchored form; under `(?i)` it refuses ranges written
            // with escapes (`(?i)[\--\x41]`), which it accepts alone.
            let expected = answer(pattern, case_insensitive, text)?;
            let found = regex.is_match(text);
            (found != expected).then(|| {
                Disagreement::Answer(format!(
                    "{pattern:?} on {text:?}: {found} here, {expected} in regex-lite"
                ))
            })
        }),
    }
}
