//! Query parameter names as upstreams read them.
//!
//! A filter that looks for a parameter (a token's, a method override's) must find it under every
//! spelling some upstream reads as that name, or a request could carry it past the filter:
//! servlet containers and Rack form-decode names, ASP.NET Core ignores their letter case, and PHP
//! (so Symfony and Laravel) reshapes them before the application sees them.

use crate::route::escape_at;

/// Whether some upstream reads the parameter the request names `raw` (as written in the query) as
/// `name`: form-decoded (`+` a space, `%XX` a byte, a malformed escape kept as written), in any
/// letter case, and as PHP names parameters: up to a NUL byte, without leading spaces, with a
/// space, `.` or a `[` never closed read as `_`, and `name[...]` as an array named `name`. A
/// spelling counts if any of these readings gives `name`, even where the others do not.
pub fn reads_as(raw: &str, name: &str) -> bool {
    // Every reading only shortens a name: most of a request's parameters are ruled out here,
    // without decoding (this runs on every pair of every request's query).
    if raw.len() < name.len() {
        return false;
    }
    let decoded = form_decode(raw);
    let php = php_name(&decoded);
    let before_index = php
        .iter()
        .position(|b| *b == b'[')
        .filter(|open| php.get(open + 1..).is_some_and(|rest| rest.contains(&b']')))
        .and_then(|open| php.get(..open));
    same(&decoded, name) || same(php, name) || before_index.is_some_and(|array| same(array, name))
}

/// Equal, ignoring ASCII letter case and reading a space, `.` or `[` as `_` on either side.
fn same(candidate: &[u8], name: &str) -> bool {
    let fold = |b: &u8| match b {
        b' ' | b'.' | b'[' => b'_',
        b => b.to_ascii_lowercase(),
    };
    candidate.len() == name.len() && candidate.iter().map(fold).eq(name.as_bytes().iter().map(fold))
}

/// `raw` form-decoded: `+` is a space, `%XX` a byte; a `%` not followed by two hex digits stays.
fn form_decode(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        match (b, escape_at(bytes, at)) {
            (_, Some(byte)) => {
                decoded.push(byte);
                at += 3;
            }
            (b'+', None) => {
                decoded.push(b' ');
                at += 1;
            }
            (b, None) => {
                decoded.push(b);
                at += 1;
            }
        }
    }
    decoded
}

/// What PHP keeps of a decoded name before reading it: the name ends at a NUL (it is handled as a
/// C string), and leading spaces are dropped.
fn php_name(decoded: &[u8]) -> &[u8] {
    let until_nul = decoded.split(|b| *b == 0).next().unwrap_or_default();
    let spaces = until_nul.iter().take_while(|b| **b == b' ').count();
    until_nul.get(spaces..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn names_read_as_the_parameter_by_some_upstream() {
        for raw in [
            "access_token",
            // Form-decoded, as servlet containers and Rack read names.
            "access%5Ftoken",
            "access%5ftoken",
            "%61ccess_token",
            // ASP.NET Core's query collection ignores letter case.
            "ACCESS_TOKEN",
            "Access_Token",
            // PHP: a space, `.` or unclosed `[` is `_`; leading spaces go; a NUL ends the name.
            "access.token",
            "access+token",
            "access%20token",
            "access[token",
            "+access_token",
            "%20%20access_token",
            "access_token%00anything",
            // PHP: an array named `access_token`.
            "access_token[]",
            "access_token[0]",
            // A malformed escape after a NUL is not read at all.
            "access_token%00%zz",
        ] {
            assert!(reads_as(raw, "access_token"), "{raw}");
        }
        for raw in [
            "access_tokens",
            "xaccess_token",
            "access-token",
            "access",
            "",
            "access%5Gtoken",
            "%access_token",
            "access_token%01",
            "x%00access_token",
            "[access_token]",
            "access_to[ken]",
        ] {
            assert!(!reads_as(raw, "access_token"), "{raw}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn form_decoding_keeps_malformed_escapes() {
        assert_eq!(form_decode("a%41+b%4"), b"aA b%4");
        assert_eq!(form_decode("%zz%"), b"%zz%");
        assert_eq!(form_decode("%e2%82%ac"), "€".as_bytes());
    }
}
