//! Every refusal any filter can give, and the one table that turns it into HTTP.
//!
//! Descriptions are `&'static str` on purpose: a reply can never echo a token, a header or an
//! upstream body back to the client. The precise reason goes to metrics and logs instead.

use serde::{Deserialize, Deserializer};

use crate::effects::LocalReply;
use crate::headers::HeaderName;

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deny {
    /// The request itself is malformed (not an authentication problem).
    MalformedRequest(&'static str),
    /// The credentials are malformed, e.g. two `Authorization` headers (RFC 6750 `invalid_request`).
    InvalidAuthRequest(&'static str),
    /// No credentials at all: a bare challenge, no error code (RFC 6750 section 3.1).
    MissingToken,
    /// Credentials present but not acceptable.
    InvalidToken(&'static str),
    /// Authenticated, but the token lacks a scope the route needs; `scope` lists what would do.
    InsufficientScope {
        scope: String,
    },
    /// Refused by policy, not by credentials (e.g. a CORS preflight from an unknown origin).
    Forbidden(&'static str),
    UnsupportedMediaType(&'static str),
    RateLimited {
        retry_after_secs: u64,
    },
    /// A dependency (OAuth server, JWKS, rate-limit service) could not be asked.
    Unavailable {
        retry_after_secs: Option<u64>,
    },
    /// A dependency answered with something unusable.
    BadGateway(&'static str),
}

impl Deny {
    /// The table: status, RFC 6750 challenge, and JSON body for each refusal.
    pub fn reply(&self, realm: &Realm) -> LocalReply {
        let challenge = |error: Option<&str>, scope: Option<&str>| {
            let mut value = String::from("Bearer realm=\"");
            value.push_str(&realm.0);
            value.push('"');
            if let Some(error) = error {
                value.push_str(", error=\"");
                value.push_str(error);
                value.push('"');
            }
            if let Some(scope) = scope {
                value.push_str(", scope=\"");
                value.push_str(scope);
                value.push('"');
            }
            value
        };
        let (status, error, description, www_authenticate, retry_after) = match self {
            Deny::MalformedRequest(d) => (400, "invalid_request", *d, None, None),
            Deny::InvalidAuthRequest(d) => (
                400,
                "invalid_request",
                *d,
                Some(challenge(Some("invalid_request"), None)),
                None,
            ),
            Deny::MissingToken => (
                401,
                "unauthorized",
                "an access token is required",
                Some(challenge(None, None)),
                None,
            ),
            Deny::InvalidToken(d) => (
                401,
                "invalid_token",
                *d,
                Some(challenge(Some("invalid_token"), None)),
                None,
            ),
            Deny::InsufficientScope { scope } => (
                403,
                "insufficient_scope",
                "the access token lacks a required scope",
                Some(challenge(Some("insufficient_scope"), Some(scope))),
                None,
            ),
            Deny::Forbidden(d) => (403, "forbidden", *d, None, None),
            Deny::UnsupportedMediaType(d) => (415, "unsupported_media_type", *d, None, None),
            Deny::RateLimited { retry_after_secs } => {
                (429, "rate_limited", "too many requests", None, Some(*retry_after_secs))
            }
            Deny::Unavailable { retry_after_secs } => (
                503,
                "temporarily_unavailable",
                "a service the gateway depends on is unavailable",
                None,
                *retry_after_secs,
            ),
            Deny::BadGateway(d) => (502, "bad_gateway", *d, None, None),
        };
        let mut headers = vec![
            (HeaderName::trusted("content-type"), "application/json".to_owned()),
            (HeaderName::trusted("cache-control"), "no-store".to_owned()),
        ];
        if let Some(value) = www_authenticate {
            headers.push((HeaderName::trusted("www-authenticate"), value));
        }
        if let Some(secs) = retry_after {
            headers.push((HeaderName::trusted("retry-after"), secs.to_string()));
        }
        // `{"error":…,"error_description":…}`, byte for byte what serde_json writes for it, without
        // linking serde_json's `Value` and its serializer into every module for two strings.
        let mut body = String::from("{\"error\":");
        crate::json::write_string(&mut body, error);
        body.push_str(",\"error_description\":");
        crate::json::write_string(&mut body, description);
        body.push('}');
        LocalReply {
            status,
            headers,
            body: body.into_bytes(),
        }
    }
}

/// The `realm` of RFC 6750 challenges: printable ASCII without quotes or backslashes, so it can be
/// quoted into a header verbatim.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema, serde::Serialize),
    schemars(extend("pattern" = "^[ !#-\\[\\]-~]+$"))
)]
pub struct Realm(String);

impl Realm {
    pub fn new(realm: &str) -> Result<Self, String> {
        if realm.is_empty() {
            return Err("realm is empty".into());
        }
        if realm
            .bytes()
            .any(|b| !(b' '..=b'~').contains(&b) || b == b'"' || b == b'\\')
        {
            return Err("realm must be printable ASCII without '\"' or '\\'".into());
        }
        Ok(Self(realm.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Realm {
    fn default() -> Self {
        Self("api".to_owned())
    }
}

impl<'de> Deserialize<'de> for Realm {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Realm::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl crate::config::FromConfig for Realm {
    fn from_config(at: crate::config::At<'_, '_>) -> Result<Self, crate::config::Error> {
        Realm::new(at.str("a string")?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn row(deny: Deny) -> (u16, Option<String>, Option<String>, serde_json::Value) {
        let reply = deny.reply(&Realm::new("shop").unwrap());
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        (
            reply.status,
            reply.header("www-authenticate").map(str::to_owned),
            reply.header("retry-after").map(str::to_owned),
            serde_json::from_slice(&reply.body).unwrap(),
        )
    }

    /// Pins the whole table: a change here is a change of the public contract.
    #[wasm_bindgen_test(unsupported = test)]
    fn the_denial_table() {
        let none = || None::<String>;
        let body = |e: &str, d: &str| serde_json::json!({"error": e, "error_description": d});
        let bearer = |s: &str| Some(s.to_owned());
        let cases = vec![
            (
                Deny::MalformedRequest("bad path"),
                (400, none(), none(), body("invalid_request", "bad path")),
            ),
            (
                Deny::InvalidAuthRequest("more than one Authorization header"),
                (
                    400,
                    bearer(r#"Bearer realm="shop", error="invalid_request""#),
                    none(),
                    body("invalid_request", "more than one Authorization header"),
                ),
            ),
            (
                Deny::MissingToken,
                (
                    401,
                    bearer(r#"Bearer realm="shop""#),
                    none(),
                    body("unauthorized", "an access token is required"),
                ),
            ),
            (
                Deny::InvalidToken("the access token is invalid"),
                (
                    401,
                    bearer(r#"Bearer realm="shop", error="invalid_token""#),
                    none(),
                    body("invalid_token", "the access token is invalid"),
                ),
            ),
            (
                Deny::InsufficientScope {
                    scope: "orders:write admin".into(),
                },
                (
                    403,
                    bearer(r#"Bearer realm="shop", error="insufficient_scope", scope="orders:write admin""#),
                    none(),
                    body("insufficient_scope", "the access token lacks a required scope"),
                ),
            ),
            (
                Deny::Forbidden("CORS preflight refused"),
                (403, none(), none(), body("forbidden", "CORS preflight refused")),
            ),
            (
                Deny::UnsupportedMediaType("content type not allowed"),
                (
                    415,
                    none(),
                    none(),
                    body("unsupported_media_type", "content type not allowed"),
                ),
            ),
            (
                Deny::RateLimited { retry_after_secs: 7 },
                (429, none(), Some("7".into()), body("rate_limited", "too many requests")),
            ),
            (
                Deny::Unavailable {
                    retry_after_secs: Some(5),
                },
                (
                    503,
                    none(),
                    Some("5".into()),
                    body(
                        "temporarily_unavailable",
                        "a service the gateway depends on is unavailable",
                    ),
                ),
            ),
            (
                Deny::Unavailable { retry_after_secs: None },
                (
                    503,
                    none(),
                    none(),
                    body(
                        "temporarily_unavailable",
                        "a service the gateway depends on is unavailable",
                    ),
                ),
            ),
            (
                Deny::BadGateway("bad answer"),
                (502, none(), none(), body("bad_gateway", "bad answer")),
            ),
        ];
        for (deny, expected) in cases {
            assert_eq!(row(deny.clone()), expected, "{deny:?}");
        }
    }

    /// The body is what serde_json would write, escapes included.
    #[wasm_bindgen_test(unsupported = test)]
    fn bodies_are_serde_json_byte_for_byte() {
        let texts = [
            "plain",
            "quote \" back \\ slash",
            "\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}",
            "caf\u{e9} \u{1f600}",
            "",
        ];
        for text in texts {
            let reply = Deny::Forbidden(text).reply(&Realm::default());
            let expected = serde_json::json!({ "error": "forbidden", "error_description": text }).to_string();
            assert_eq!(String::from_utf8(reply.body).unwrap(), expected);
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn realms_that_would_break_the_header_are_refused() {
        assert!(Realm::new("api").is_ok());
        assert!(Realm::new("").is_err());
        assert!(Realm::new("a\"b").is_err());
        assert!(Realm::new("a\\b").is_err());
        assert!(Realm::new("a\r\nb").is_err());
    }
}
