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

/// `regex-lite`'s whole-text answer, or `None` if it refuses the pattern or its anchored form.
pub fn answer(pattern: &str, case_insensitive: bool, text: &str) -> Option<bool> {
    regex_lite::Regex::new(pattern).ok()?;
    let flags = if case_insensitive { "(?i)" } else { "" };
    let anchored = regex_lite::Regex::new(&format!("{flags}^(?:{pattern})$")).ok()?;
    Some(anchored.is_match(text))
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
