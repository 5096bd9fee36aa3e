//! Paths that could mean something else to the upstream than to the rules.
//!
//! Envoy with `normalize_path`, `merge_slashes` and an escaped-slash action forwards normal
//! paths; this check is the filter's own line of defence when it runs without them: a path
//! the rules might read differently from the upstream is refused, never guessed at.

/// Why a path is refused, or `None` for a path the rules can be trusted with.
pub fn refuse(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("path must start with '/'");
    }
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%5c", "%2e", "%00", "%25"].iter().any(|e| lower.contains(e)) {
        return Some("percent-encoded '/', '\\', '.', '%' or NUL in the path");
    }
    if path.contains('\\') {
        return Some("backslash in the path");
    }
    if path.contains(';') {
        return Some("';' path parameters are not accepted");
    }
    if path.contains("//") {
        return Some("empty path segment");
    }
    if path.split('/').any(|segment| segment == "." || segment == "..") {
        return Some("dot segment in the path");
    }
    if path.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Some("control, space or non-ASCII byte in the path");
    }
    if !path.contains('%') {
        return None;
    }
    match shared::route::percent_decode(path) {
        None => Some("malformed percent-encoding in the path"),
        // Overlong forms such as `%c0%ae` ('.') are invalid UTF-8: an upstream that decodes them
        // leniently would see a dot segment the rules never saw.
        Some(decoded) if std::str::from_utf8(&decoded).is_err() => Some("percent-encoding that is not UTF-8"),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn tricks_are_refused_and_normal_paths_pass() {
        for ok in [
            "/",
            "/orders",
            "/orders/42/items",
            "/a-b_c~d.e",
            "/v1/orders.json",
            "/%41",
            "/caf%C3%A9",
            "/%E2%82%AC/price",
        ] {
            assert_eq!(refuse(ok), None, "{ok}");
        }
        for bad in [
            "/public/%2e%2e/admin",
            "/public/..%2fadmin",
            "/public%2Fadmin",
            "/public%5cadmin",
            "/public\\..\\admin",
            "/public/../admin",
            "/public/./admin",
            "/admin/.",
            "//admin",
            "/public//admin",
            "/admin;jsessionid=1",
            "/admin%00.json",
            "/%252e%252e/admin",
            "relative",
            "/a b",
            "/caf\u{e9}",
            "/public/%c0%ae%c0%ae/admin",
            "/public/%C0%AE./admin",
            "/%e0%80%ae",
            "/caf%e9",
            "/%zz",
            "/trailing%4",
            "/trailing%",
        ] {
            assert!(refuse(bad).is_some(), "{bad}");
        }
    }
}
