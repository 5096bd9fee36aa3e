//! What a client is told about its limits: the rate-limit header fields, in the style configured.

use shared::HeaderName;

use crate::config::HeaderStyle;

/// One limit as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    /// The policy name (the limit's, or the service's name for it).
    pub name: String,
    /// The service gave no name: draft-03 headers then print none, as Envoy does.
    pub unnamed: bool,
    /// The quota: a service limit's `requests_per_unit`; a local limit's bucket size (`burst`),
    /// never less than `remaining`.
    pub limit: u64,
    /// The quota's window: a service limit's unit; for a local limit, the seconds an empty bucket
    /// takes to fill, so that `limit` per window is the limit's rate.
    pub window_secs: Option<u64>,
    pub remaining: u64,
    pub reset_secs: u64,
}

/// The names of the header fields [`render`] writes in `style`.
pub fn header_names(style: HeaderStyle) -> &'static [&'static str] {
    match style {
        HeaderStyle::None => &[],
        HeaderStyle::Draft03 => &["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"],
        HeaderStyle::Ietf => &["ratelimit-policy", "ratelimit"],
    }
}

/// The header fields for `quotas`, in `style`.
pub fn render(style: HeaderStyle, quotas: &[Quota]) -> Vec<(HeaderName, String)> {
    match style {
        HeaderStyle::None => Vec::new(),
        HeaderStyle::Draft03 => draft03(quotas),
        HeaderStyle::Ietf => ietf(quotas),
    }
}

/// draft-polli-ratelimit-headers-03 as Envoy writes it: the most exhausted limit first in
/// `X-RateLimit-Limit`, then every limit's policy (`10, 10;w=60;name="per_client"`); remaining
/// and reset of that most exhausted limit.
fn draft03(quotas: &[Quota]) -> Vec<(HeaderName, String)> {
    let Some(tightest) = quotas
        .iter()
        .reduce(|a, b| if b.remaining < a.remaining { b } else { a })
    else {
        return Vec::new();
    };
    let mut limit = tightest.limit.to_string();
    for quota in quotas {
        if let Some(window) = quota.window_secs {
            limit.push_str(&format!(", {};w={window}", quota.limit));
            if !quota.unnamed {
                limit.push_str(&format!(";name=\"{}\"", sf_string_content(&quota.name)));
            }
        }
    }
    vec![
        (HeaderName::trusted("x-ratelimit-limit"), limit),
        (
            HeaderName::trusted("x-ratelimit-remaining"),
            tightest.remaining.to_string(),
        ),
        (
            HeaderName::trusted("x-ratelimit-reset"),
            tightest.reset_secs.to_string(),
        ),
    ]
}

/// draft-ietf-httpapi-ratelimit-headers-10: `RateLimit-Policy` lists each quota policy
/// (`"per_client";q=10;w=60`), `RateLimit` the current state of each (`"per_client";r=3;t=42`).
fn ietf(quotas: &[Quota]) -> Vec<(HeaderName, String)> {
    if quotas.is_empty() {
        return Vec::new();
    }
    let name = |quota: &Quota| format!("\"{}\"", sf_string_content(&quota.name));
    let policies: Vec<String> = quotas
        .iter()
        .map(|q| match q.window_secs {
            Some(window) => format!("{};q={};w={window}", name(q), q.limit),
            None => format!("{};q={}", name(q), q.limit),
        })
        .collect();
    let limits: Vec<String> = quotas
        .iter()
        .map(|q| format!("{};r={};t={}", name(q), q.remaining, q.reset_secs))
        .collect();
    vec![
        (HeaderName::trusted("ratelimit-policy"), policies.join(", ")),
        (HeaderName::trusted("ratelimit"), limits.join(", ")),
    ]
}

/// The inside of a structured-field string (RFC 9651): printable ASCII, `"` and `\` escaped;
/// anything else (a service's odd name) dropped.
fn sf_string_content(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn quota(name: &str, limit: u64, window: Option<u64>, remaining: u64, reset: u64) -> Quota {
        Quota {
            name: if name.is_empty() {
                "fallback".into()
            } else {
                name.into()
            },
            unnamed: name.is_empty(),
            limit,
            window_secs: window,
            remaining,
            reset_secs: reset,
        }
    }

    fn as_strings(headers: Vec<(HeaderName, String)>) -> Vec<(String, String)> {
        headers.into_iter().map(|(n, v)| (n.to_string(), v)).collect()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn header_names_are_those_render_writes() {
        let quotas = [quota("per_client", 10, Some(60), 7, 18)];
        for style in [HeaderStyle::None, HeaderStyle::Draft03, HeaderStyle::Ietf] {
            let written: Vec<String> = render(style, &quotas).into_iter().map(|(n, _)| n.to_string()).collect();
            assert_eq!(written, header_names(style), "{style:?}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn draft03_matches_envoys_format() {
        let quotas = [
            quota("per_client", 10, Some(60), 7, 18),
            quota("", 100, Some(3600), 2, 900),
            quota("odd", 5, None, 4, 1),
        ];
        assert_eq!(
            as_strings(render(HeaderStyle::Draft03, &quotas)),
            vec![
                (
                    "x-ratelimit-limit".into(),
                    "100, 10;w=60;name=\"per_client\", 100;w=3600".into()
                ),
                ("x-ratelimit-remaining".into(), "2".into()),
                ("x-ratelimit-reset".into(), "900".into()),
            ]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn ietf_lists_every_policy_and_its_state() {
        let quotas = [
            quota("per_client", 10, Some(60), 7, 18),
            quota("we\"ird", 3, None, 0, 5),
        ];
        assert_eq!(
            as_strings(render(HeaderStyle::Ietf, &quotas)),
            vec![
                (
                    "ratelimit-policy".into(),
                    "\"per_client\";q=10;w=60, \"we\\\"ird\";q=3".into()
                ),
                (
                    "ratelimit".into(),
                    "\"per_client\";r=7;t=18, \"we\\\"ird\";r=0;t=5".into()
                ),
            ]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn nothing_to_say_says_nothing() {
        assert!(render(HeaderStyle::Draft03, &[]).is_empty());
        assert!(render(HeaderStyle::Ietf, &[]).is_empty());
        assert!(render(HeaderStyle::None, &[quota("a", 1, Some(1), 0, 1)]).is_empty());
    }
}
