//! Where a credential is read from: a header with a scheme prefix, a query parameter, or a cookie.

use serde::Deserialize;

use crate::route::RequestLine;
use crate::{ConfigError, FieldPath, HeaderEdit, HeaderName, Headers};

/// A token source as configured.
#[derive(Debug, Deserialize)]
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
                prefix: prefix.clone(),
            },
            SourceConfig::Query { name } => Source::Query {
                name: nonempty(name, "name")?,
            },
            SourceConfig::Cookie { name } => Source::Cookie {
                name: nonempty(name, "name")?,
            },
        })
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
                    Some(prefix) => value
                        .get(..prefix.len())
                        .filter(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
                        .and_then(|_| value.get(prefix.len()..)),
                };
                match token.map(<[u8]>::trim_ascii) {
                    // Envoy folds repeated inline headers (Authorization is one) into one value
                    // joined by commas; a bearer token (RFC 6750 b64token) never has a comma.
                    Some(token) if token.contains(&b',') => Found::Ambiguous,
                    Some(token) if !token.is_empty() => Found::Token(token),
                    _ => Found::None,
                }
            }
            Source::Query { name } => {
                // Some servers also split pairs at `;`, and decode names (`access%5Ftoken`): a
                // second token hidden either way still makes the request ambiguous.
                let mut values = line
                    .query
                    .into_iter()
                    .flat_map(|q| q.split(['&', ';']))
                    .filter_map(|pair| {
                        pair.split_once('=')
                            .filter(|(key, _)| query_name_is(key, name))
                            .map(|(_, value)| value.as_bytes())
                    });
                match (values.next(), values.next()) {
                    (Some(_), Some(_)) => Found::Ambiguous,
                    (Some(token), None) if !token.is_empty() => Found::Token(token),
                    _ => Found::None,
                }
            }
            Source::Cookie { name } => {
                let mut values = headers
                    .get_all("cookie")
                    .flat_map(cookie_pairs)
                    .filter(|(key, _)| *key == name.as_bytes());
                match (values.next(), values.next()) {
                    (Some(_), Some(_)) => Found::Ambiguous,
                    (Some((_, token)), None) if !token.is_empty() => Found::Token(token),
                    _ => Found::None,
                }
            }
        }
    }

    /// Edits that take the token out of the request, for providers that do not forward it.
    pub fn strip(&self, headers: &Headers, line: &RequestLine<'_>) -> Vec<HeaderEdit> {
        match self {
            Source::Header { name, .. } => vec![HeaderEdit::Remove(name.clone())],
            Source::Query { name } => {
                let kept: Vec<&str> = line
                    .query
                    .into_iter()
                    .flat_map(|q| q.split('&'))
                    .filter(|pair| !query_name_is(pair.split_once('=').map_or(*pair, |(k, _)| k), name))
                    .collect();
                let path = if kept.is_empty() {
                    line.path.to_owned()
                } else {
                    format!("{}?{}", line.path, kept.join("&"))
                };
                vec![HeaderEdit::Set(HeaderName::trusted(":path"), path.into_bytes())]
            }
            Source::Cookie { name } => {
                let kept: Vec<Vec<u8>> = headers
                    .get_all("cookie")
                    .flat_map(cookie_pairs)
                    .filter(|(key, _)| *key != name.as_bytes())
                    .map(|(key, value)| [key, b"=", value].concat())
                    .collect();
                if kept.is_empty() {
                    vec![HeaderEdit::Remove(HeaderName::trusted("cookie"))]
                } else {
                    vec![HeaderEdit::Set(HeaderName::trusted("cookie"), kept.join(&b"; "[..]))]
                }
            }
        }
    }
}

/// Whether a query parameter's name, as form-decoded (`+` is a space, `%XX` a byte), is `name`.
fn query_name_is(raw: &str, name: &str) -> bool {
    if raw == name {
        return true;
    }
    if !raw.contains(['%', '+']) {
        return false;
    }
    crate::route::percent_decode(&raw.replace('+', " ")).is_some_and(|decoded| decoded == name.as_bytes())
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
        let h = headers(&[("authorization", "Bearer ")]);
        assert_eq!(bearer().find(&h, &RequestLine::of(&h).unwrap()), Found::None);
        let h = headers(&[("authorization", "Bearer a"), ("Authorization", "Bearer b")]);
        assert_eq!(bearer().find(&h, &RequestLine::of(&h).unwrap()), Found::Ambiguous);
        let folded = headers(&[("authorization", "Bearer a,Bearer b")]);
        assert_eq!(
            bearer().find(&folded, &RequestLine::of(&folded).unwrap()),
            Found::Ambiguous
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
            query.strip(&h, &line),
            vec![HeaderEdit::Set(HeaderName::trusted(":path"), b"/x?a=1&b=2".to_vec())]
        );
        assert_eq!(
            cookie.strip(&h, &line),
            vec![HeaderEdit::Set(HeaderName::trusted("cookie"), b"a=1; b=2".to_vec())]
        );
        let h = headers(&[("cookie", "at=1"), ("cookie", "at=2")]);
        assert_eq!(cookie.find(&h, &RequestLine::of(&h).unwrap()), Found::Ambiguous);
    }
}
