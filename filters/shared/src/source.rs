//! Where a credential is read from: a header with a scheme prefix, a query parameter, or a cookie.

use crate::config::FromConfig;

use crate::route::RequestLine;
use crate::{ConfigError, FieldPath, HeaderEdit, HeaderName, Headers};

/// A token source as configured.
#[derive(Debug, FromConfig)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename = "tagged:SourceConfig", rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "schema", schemars(rename = "SourceConfig", tag = "type"))]
pub enum SourceConfig {
    /// A header; `prefix` (scheme, compared case-insensitively) is stripped.
    Header {
        name: HeaderName,
        prefix: Option<String>,
    },
    Query {
        name: String,
    },
    Cookie {
        name: String,
    },
}

impl SourceConfig {
    /// `Authorization: Bearer <token>` (RFC 6750 section 2.1).
    pub fn bearer() -> Self {
        SourceConfig::Header {
            name: HeaderName::trusted("authorization"),
            prefix: Some("Bearer ".to_owned()),
        }
    }
}

/// For the schema's defaults, tagged as the config writes it (a derive would not be: see
/// `config::tree`).
#[cfg(feature = "schema")]
impl serde::Serialize for SourceConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        match self {
            SourceConfig::Header { name, prefix } => {
                map.serialize_entry("type", "header")?;
                map.serialize_entry("name", name)?;
                map.serialize_entry("prefix", prefix)?;
            }
            SourceConfig::Query { name } => {
                map.serialize_entry("type", "query")?;
                map.serialize_entry("name", name)?;
            }
            SourceConfig::Cookie { name } => {
                map.serialize_entry("type", "cookie")?;
                map.serialize_entry("name", name)?;
            }
        }
        map.end()
    }
}

#[derive(Debug)]
pub enum Source {
    Header { name: HeaderName, prefix: Option<String> },
    Query { name: String },
    Cookie { name: String },
}

/// What looking for a token found.
#[derive(Debug, PartialEq, Eq)]
pub enum Found<'a> {
    None,
    Token(&'a [u8]),
    /// The header appears more than once: which one counts would be the attacker's choice.
    Ambiguous,
    /// The header holds a credential of this source's scheme, but not in its syntax
    /// (`Bearer<TAB>token`): a lenient upstream could still read a token out of it.
    Malformed,
    /// The header holds a JWT under no scheme or another (`JWT eyJ…`, as some libraries write
    /// it, or `DPoP eyJ…`): no token of this source's, but one to upstreams that strip whatever
    /// comes first. A filter that passes the header on refuses it as malformed; one that removes
    /// the header anyway may take it for what it says it is.
    OtherScheme,
}

impl Source {
    pub fn compile(config: &SourceConfig, at: &FieldPath) -> Result<Self, ConfigError> {
        let nonempty = |name: &str, field: &str| {
            if name.is_empty() || name.contains(['=', ';', '&', ' ']) {
                Err(at.field(field).error(format!("{name:?} is not a usable name")))
            } else {
                Ok(name.to_owned())
            }
        };
        Ok(match config {
            SourceConfig::Header { name, prefix } => Source::Header {
                name: name.clone(),
                prefix: prefix
                    .as_deref()
                    .map(|prefix| scheme_prefix(prefix, &at.field("prefix")))
                    .transpose()?,
            },
            SourceConfig::Query { name } => Source::Query {
                name: nonempty(name, "name")?,
            },
            SourceConfig::Cookie { name } => Source::Cookie {
                name: nonempty(name, "name")?,
            },
        })
    }

    /// Whether `other` reads the same place in a request (the same header, query parameter or
    /// cookie), whatever it expects to find there.
    pub fn same_place(&self, other: &Source) -> bool {
        match (self, other) {
            (Source::Header { name, .. }, Source::Header { name: other, .. }) => name == other,
            (Source::Query { name }, Source::Query { name: other })
            | (Source::Cookie { name }, Source::Cookie { name: other }) => name.eq_ignore_ascii_case(other),
            _ => false,
        }
    }

    pub fn find<'a>(&self, headers: &'a Headers, line: &RequestLine<'a>) -> Found<'a> {
        match self {
            Source::Header { name, prefix } => {
                if headers.count(name.as_str()) > 1 {
                    return Found::Ambiguous;
                }
                let Some(value) = headers.get(name.as_str()) else {
                    return Found::None;
                };
                let token = match prefix {
                    None => Some(value),
                    Some(prefix) => strip_prefix_ignore_case(value, prefix.as_bytes()),
                };
                match token.map(<[u8]>::trim_ascii) {
                    // Envoy folds repeated inline headers (Authorization is one) into one value
                    // joined by commas; a bearer token (RFC 6750 b64token) never has a comma.
                    Some(token) if token.contains(&b',') => Found::Ambiguous,
                    Some(token) if !token.is_empty() => Found::Token(token),
                    _ => match prefix.as_deref().and_then(|prefix| prefix.strip_suffix(' ')) {
                        // `Basic x, Bearer t`: folded, with one of ours after another scheme.
                        Some(scheme) if value.split(|b| *b == b',').skip(1).any(|v| names(v, scheme)) => {
                            Found::Ambiguous
                        }
                        Some(scheme) if names(value, scheme) => Found::Malformed,
                        // No scheme writes other bytes, and some upstreams split a value at
                        // any Unicode space: `Bearer<NBSP>token` is a bearer token to them.
                        Some(_) if !value.iter().all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\t') => {
                            Found::Malformed
                        }
                        // A JWT under no scheme or another (`JWT eyJ…`, as some libraries
                        // write it) is a token to upstreams that strip whatever comes first.
                        Some(_) if value.split(|b| b.is_ascii_whitespace() || *b == b',').any(is_jws) => {
                            Found::OtherScheme
                        }
                        _ => Found::None,
                    },
                }
            }
            Source::Query { name } => {
                // Some servers also split pairs at `;`, and read names decoded, in any case or
                // reshaped (`access%5Ftoken`, `ACCESS_TOKEN`, `access.token`): a second token
                // hidden any of these ways still makes the request ambiguous.
                let mut values = line
                    .query
                    .into_iter()
                    .flat_map(|q| q.split(['&', ';']))
                    .filter_map(|pair| {
                        pair.split_once('=')
                            .filter(|(key, _)| crate::query::reads_as(key, name))
                            .map(|(_, value)| value.as_bytes())
                    });
                match (values.next(), values.next()) {
                    (Some(_), Some(_)) => Found::Ambiguous,
                    (Some(token), None) if !token.is_empty() => Found::Token(token),
                    _ => Found::None,
                }
            }
            Source::Cookie { name } => {
                // Names as upstreams read them (PHP reshapes `access.token` to `access_token`,
                // ASP.NET Core ignores letter case): a second token hidden so is still a second.
                let mut values = headers
                    .get_all("cookie")
                    .flat_map(cookie_pairs)
                    .filter(|(key, _)| cookie_reads_as(key, name));
                match (values.next(), values.next()) {
                    (Some(_), Some(_)) => Found::Ambiguous,
                    (Some((_, token)), None) if !token.is_empty() => Found::Token(token),
                    _ => Found::None,
                }
            }
        }
    }
}

/// A JWS in compact form: three base64url parts, the first a JSON object (`eyJ` is `{"`).
fn is_jws(text: &[u8]) -> bool {
    let base64url =
        |part: &[u8]| !part.is_empty() && part.iter().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(b));
    let parts = || text.split(|b| *b == b'.');
    text.starts_with(b"eyJ") && parts().count() == 3 && parts().all(base64url)
}

/// A header source's `prefix`: an auth scheme (an RFC 9110 token) and one space, `"Bearer "`, as
/// credentials are written (RFC 9110 section 11.4). Without the space, `"Bearer"` would read
/// `BearerX.Y.Z` as the token `X.Y.Z`, a credential of another scheme (or of none) that a lenient
/// upstream reads otherwise; the space is also what tells a malformed credential of this scheme
/// (`Bearer<TAB>x`) from another scheme.
fn scheme_prefix(prefix: &str, at: &FieldPath) -> Result<String, ConfigError> {
    match prefix.strip_suffix(' ') {
        Some(scheme) if !scheme.is_empty() && scheme.bytes().all(crate::headers::is_token_byte) => {
            Ok(prefix.to_owned())
        }
        _ => Err(at.error(format!(
            "{prefix:?} is not an auth scheme and one space, such as \"Bearer \""
        ))),
    }
}

/// Edits that take out of the request every token these sources would find (for providers that
/// do not forward it): one edit per header, so that no source's edit puts back what another's
/// took out.
pub fn strip_all<'s>(
    sources: impl IntoIterator<Item = &'s Source>,
    headers: &Headers,
    line: &RequestLine<'_>,
) -> Vec<HeaderEdit> {
    let mut edits = Vec::new();
    let (mut query_names, mut cookie_names) = (Vec::new(), Vec::new());
    for source in sources {
        match source {
            Source::Header { name, .. } => edits.push(HeaderEdit::Remove(name.clone())),
            Source::Query { name } => query_names.push(name.as_str()),
            Source::Cookie { name } => cookie_names.push(name.as_str()),
        }
    }
    if let Some(query) = line.query.filter(|_| !query_names.is_empty()) {
        // Pairs are split where `find` splits them (`&` and `;`); kept pairs keep the separator
        // before them.
        let (mut kept, mut removed) = (String::new(), false);
        let (mut rest, mut separator) = (query, "");
        loop {
            let (pair, after) = rest.split_at(rest.find(['&', ';']).unwrap_or(rest.len()));
            let name = pair.split_once('=').map_or(pair, |(key, _)| key);
            if query_names.iter().any(|wanted| crate::query::reads_as(name, wanted)) {
                removed = true;
            } else {
                if !kept.is_empty() {
                    kept.push_str(separator);
                }
                kept.push_str(pair);
            }
            let Some((next_separator, next)) = after.split_at_checked(1) else {
                break;
            };
            (rest, separator) = (next, next_separator);
        }
        if removed {
            let path = if kept.is_empty() {
                line.path.to_owned()
            } else {
                format!("{}?{kept}", line.path)
            };
            edits.push(HeaderEdit::Set(HeaderName::trusted(":path"), path.into_bytes()));
        }
    }
    if !cookie_names.is_empty() && headers.contains("cookie") {
        let kept: Vec<Vec<u8>> = headers
            .get_all("cookie")
            .flat_map(cookie_pairs)
            .filter(|(key, _)| !cookie_names.iter().any(|name| cookie_reads_as(key, name)))
            .map(|(key, value)| [key, b"=", value].concat())
            .collect();
        edits.push(if kept.is_empty() {
            HeaderEdit::Remove(HeaderName::trusted("cookie"))
        } else {
            HeaderEdit::Set(HeaderName::trusted("cookie"), kept.join(&b"; "[..]))
        });
    }
    edits
}

fn strip_prefix_ignore_case<'v>(value: &'v [u8], prefix: &[u8]) -> Option<&'v [u8]> {
    value
        .get(..prefix.len())
        .filter(|head| head.eq_ignore_ascii_case(prefix))
        .and_then(|_| value.get(prefix.len()..))
}

/// Whether a header value (or one comma-folded part of it) holds a credential of `scheme`: the
/// scheme, case-insensitively, then a byte that cannot continue a scheme's name (whitespace, a
/// separator, any non-ASCII byte) and something more.
fn names(value: &[u8], scheme: &str) -> bool {
    strip_prefix_ignore_case(value.trim_ascii_start(), scheme.as_bytes()).is_some_and(|rest| {
        rest.first().is_some_and(|b| !crate::headers::is_token_byte(*b)) && !rest.trim_ascii().is_empty()
    })
}

/// Whether some upstream reads the cookie named `raw` as `name`, as it reads query parameter names.
fn cookie_reads_as(raw: &[u8], name: &str) -> bool {
    raw.len() >= name.len() && crate::query::reads_as(&String::from_utf8_lossy(raw), name)
}

fn cookie_pairs(header: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header.split(|b| *b == b';').filter_map(|pair| {
        let pair = pair.trim_ascii();
        let at = pair.iter().position(|b| *b == b'=')?;
        Some((pair.get(..at)?.trim_ascii(), pair.get(at + 1..)?.trim_ascii()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        let mut h = Headers::from_pairs([(":method", "GET"), (":path", "/x?a=1&access_token=QUERY&b=2")]);
        for (n, v) in pairs {
            h.push(n, v.as_bytes());
        }
        h
    }

    fn bearer() -> Source {
        Source::compile(&SourceConfig::bearer(), &FieldPath::root()).unwrap()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn bearer_header() {
        let h = headers(&[("authorization", "bEaReR  abc.def.ghi ")]);
        let line = RequestLine::of(&h).unwrap();
        assert_eq!(bearer().find(&h, &line), Found::Token(b"abc.def.ghi"));
        let h = headers(&[("authorization", "Basic dXNlcjpwdw==")]);
        assert_eq!(bearer().find(&h, &RequestLine::of(&h).unwrap()), Found::None);
        let find = |value: &str| {
            let h = headers(&[("authorization", value)]);
            format!("{:?}", bearer().find(&h, &RequestLine::of(&h).unwrap()))
        };
        // Our scheme with something after it that is not a token in its syntax.
        for malformed in [
            "bearer\tabc",
            "Bearer\tabc",
            " Bearer\t abc",
            "Bearer\nabc",
            "Bearer,abc",
            "Bearer=abc",
        ] {
            assert_eq!(find(malformed), "Malformed", "{malformed:?}");
        }
        // Python's `str.split()` splits at these (a latin-1 decoded 0xA0 is a no-break space).
        for separator in [&b"\x0b"[..], b"\x1c", b"\x1f", b"\xa0", b"\xc2\xa0", b"\xe2\x80\x83"] {
            for value in [
                [&b"Bearer"[..], separator, b"abc.def.ghi"].concat(),
                [separator, b"Bearer abc.def.ghi"].concat(),
                [&b"Basic dXNlcjpwdw==,"[..], separator, b"Bearer abc"].concat(),
            ] {
                let mut h = headers(&[]);
                h.push("authorization", value.clone());
                let found = bearer().find(&h, &RequestLine::of(&h).unwrap());
                assert!(
                    matches!(found, Found::Malformed | Found::Ambiguous),
                    "{value:?}: {found:?}"
                );
            }
        }
        for nothing in ["Bearer ", "Bearer", " Bearer \t"] {
            assert_eq!(find(nothing), "None", "{nothing:?}");
        }
        assert_eq!(find("Bearerabc"), "None", "another scheme");
        assert_eq!(find("Basic dXNlcjpwdw==, Bearer abc"), "Ambiguous");
        assert_eq!(find("Basic dXNlcjpwdw==, Bearer\tabc"), "Ambiguous");
        assert_eq!(find("Basic dXNlcjpwdw==, Bearerish"), "None");
        let h = headers(&[("authorization", "Bearer a"), ("Authorization", "Bearer b")]);
        assert_eq!(bearer().find(&h, &RequestLine::of(&h).unwrap()), Found::Ambiguous);
        let folded = headers(&[("authorization", "Bearer a,Bearer b")]);
        assert_eq!(
            bearer().find(&folded, &RequestLine::of(&folded).unwrap()),
            Found::Ambiguous
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_header_prefix_is_a_scheme_and_one_space() {
        let at = FieldPath::root().field("from").index(0);
        let compile = |prefix: &str| {
            let config = SourceConfig::Header {
                name: HeaderName::trusted("x-token"),
                prefix: Some(prefix.to_owned()),
            };
            Source::compile(&config, &at).map(|_| ()).map_err(|e| e.to_string())
        };
        for fine in ["Bearer ", "DPoP ", "token ", "X-Api_Key.1 "] {
            assert_eq!(compile(fine), Ok(()), "{fine:?}");
        }
        assert_eq!(
            compile("Bearer").unwrap_err(),
            "from[0].prefix: \"Bearer\" is not an auth scheme and one space, such as \"Bearer \""
        );
        for bad in ["Bearer  ", " ", "", "Bearer\t", "Be arer ", "Bearer: "] {
            assert_eq!(
                compile(bad).unwrap_err(),
                format!("from[0].prefix: {bad:?} is not an auth scheme and one space, such as \"Bearer \""),
                "{bad:?}"
            );
        }
        let none = SourceConfig::Header {
            name: HeaderName::trusted("x-token"),
            prefix: None,
        };
        assert!(Source::compile(&none, &at).is_ok());
    }

    /// PHP (so Symfony and Laravel) reads a cookie named `access.token` or `access token` as
    /// `access_token`, and keeps the first of two; ASP.NET Core reads cookie names in any letter
    /// case. A second token under such a spelling makes the request ambiguous, and `forward:
    /// false` takes it out, as for query parameters.
    #[wasm_bindgen_test(unsupported = test)]
    fn cookie_names_are_read_as_upstreams_read_them() {
        let cookie = Source::Cookie {
            name: "access_token".into(),
        };
        for jar in [
            "access.token=EVIL; access_token=GOOD",
            "access token=EVIL; access_token=GOOD",
            "ACCESS_TOKEN=EVIL; access_token=GOOD",
            "access%5Ftoken=EVIL; access_token=GOOD",
        ] {
            let h = headers(&[("cookie", jar)]);
            let line = RequestLine::of(&h).unwrap();
            assert_eq!(cookie.find(&h, &line), Found::Ambiguous, "{jar}");
            let edits = strip_all([&cookie], &h, &line);
            assert_eq!(edits, vec![HeaderEdit::Remove(HeaderName::trusted("cookie"))], "{jar}");
        }
        let h = headers(&[("cookie", "Access.Token=ONLY; other=1")]);
        let line = RequestLine::of(&h).unwrap();
        assert_eq!(cookie.find(&h, &line), Found::Token(b"ONLY"));
        assert_eq!(
            strip_all([&cookie], &h, &line),
            vec![HeaderEdit::Set(HeaderName::trusted("cookie"), b"other=1".to_vec())]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn query_and_cookie() {
        let h = headers(&[("cookie", "a=1; at=COOKIE; b=2")]);
        let line = RequestLine::of(&h).unwrap();
        let query = Source::Query {
            name: "access_token".into(),
        };
        let cookie = Source::Cookie { name: "at".into() };
        assert_eq!(query.find(&h, &line), Found::Token(b"QUERY"));
        assert_eq!(cookie.find(&h, &line), Found::Token(b"COOKIE"));
        assert_eq!(
            strip_all([&query], &h, &line),
            vec![HeaderEdit::Set(HeaderName::trusted(":path"), b"/x?a=1&b=2".to_vec())]
        );
        assert_eq!(
            strip_all([&cookie], &h, &line),
            vec![HeaderEdit::Set(HeaderName::trusted("cookie"), b"a=1; b=2".to_vec())]
        );
        let h = headers(&[("cookie", "at=1"), ("cookie", "at=2")]);
        assert_eq!(cookie.find(&h, &RequestLine::of(&h).unwrap()), Found::Ambiguous);
    }

    /// Every source's token goes, whichever source held it: one edit per header, so no source's
    /// edit puts back what another's took out; pairs split at `;` as `find` splits them.
    #[wasm_bindgen_test(unsupported = test)]
    fn stripping_several_sources_takes_every_token_out() {
        let mut h = Headers::from_pairs([(":method", "GET"), (":path", "/o?access_token=A&page=2;token=B;x=1")]);
        h.push("cookie", b"a=1; at=C");
        h.push("cookie", b"id=D; b=2");
        h.push("authorization", b"Bearer E");
        let line = RequestLine::of(&h).unwrap();
        let sources = [
            Source::Query {
                name: "access_token".into(),
            },
            Source::Query { name: "token".into() },
            Source::Cookie { name: "at".into() },
            Source::Cookie { name: "id".into() },
            bearer(),
        ];
        let edits = strip_all(&sources, &h, &line);
        h.apply(&edits);
        assert_eq!(h.path(), Some(&b"/o?page=2;x=1"[..]));
        assert_eq!(h.get_all("cookie").collect::<Vec<_>>(), vec![&b"a=1; b=2"[..]]);
        assert_eq!(h.get("authorization"), None);
        // Nothing to take out: no edit.
        let h = Headers::from_pairs([(":method", "GET"), (":path", "/o?page=2&&x")]);
        assert_eq!(strip_all(&sources[..2], &h, &RequestLine::of(&h).unwrap()), vec![]);
    }
}
