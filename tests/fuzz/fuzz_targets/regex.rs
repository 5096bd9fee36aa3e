//! The config regex engine (`shared::regex`) on arbitrary patterns and texts: it never panics nor
//! hangs, it accepts no pattern that `regex-lite` (the crate it replaced) refuses, and it answers
//! as `regex-lite` on every pattern both accept (`shared::regex::reference`). A pattern refused
//! here and accepted there is not a finding: a config with it is refused at load, with the
//! reason; the unit tests pin the known ones.
//!
//! Input: a first byte whose low bit is `case_insensitive`, then the pattern and the texts to
//! match, separated by NUL bytes, as UTF-8.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::regex::reference::Disagreement;

fuzz_target!(|data: &[u8]| {
    let Some((flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(rest) = std::str::from_utf8(rest) else { return };
    let mut parts = rest.split('\0');
    let pattern = parts.next().unwrap_or_default();
    let texts: Vec<&str> = parts.take(8).collect();
    match shared::regex::reference::disagreement(pattern, flags & 1 == 1, &texts) {
        None | Some(Disagreement::Refused(_)) => {}
        Some(disagreement) => panic!("{disagreement:?}"),
    }
});
