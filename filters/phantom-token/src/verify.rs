//! Turns an introspection answer into what goes upstream, verifying every JWT on the way: the JWT
//! to forward (signature with the IdP's keys, `iss`, `aud`, `exp`) and, in RFC 9701 mode, the
//! signed response itself (`typ`, signature, `iss`, `aud` = this client, `iat`).

use jose::{ClaimRules, IssuerKeys, Jwt, Rejection};
use shared::Ctx;

use crate::introspection::{read_introspection, Failure, Reply, SIGNED_MEDIA};

/// What goes upstream from a signed introspection response.
pub enum SignedUpstream {
    /// The JWT in this `token_introspection` member, as the bearer token.
    JwtField(String),
    /// The signed response itself, in this header.
    ResponseHeader,
}

pub struct SignedRules {
    pub rules: ClaimRules,
    pub upstream: SignedUpstream,
}

pub struct Verifier {
    pub keys: IssuerKeys,
    pub token_rules: ClaimRules,
    pub signed: Option<SignedRules>,
    pub max_jwt_bytes: usize,
}

/// A verified answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    Active {
        upstream: Vec<u8>,
        claims: Vec<u8>,
        /// When what goes upstream expires, if it says.
        exp: Option<u64>,
    },
    Inactive,
}

/// Why an answer is not resolved yet, or never will be.
#[derive(Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// Signed with a key this worker does not have: refetching the keys may find it.
    UnknownKid,
    Failed(Failure),
}

impl Verifier {
    pub fn resolve(&self, reply: &Reply, ctx: &Ctx) -> Result<Resolved, Unresolved> {
        match (reply, &self.signed) {
            (Reply::Inactive(_), _) => Ok(Resolved::Inactive),
            (Reply::Token(token, _), _) => self.forwardable(token, ctx),
            (Reply::Signed(response, _), Some(signed)) => {
                let jwt = self.verified(response, &signed.rules, ctx)?;
                let introspection = jwt
                    .claim("token_introspection")
                    .filter(|v| v.is_object())
                    .ok_or(Unresolved::Failed(Failure::Malformed))?;
                match &signed.upstream {
                    SignedUpstream::JwtField(field) => {
                        match read_introspection(introspection, field).map_err(Unresolved::Failed)? {
                            Some(token) => self.forwardable(&token, ctx),
                            None => Ok(Resolved::Inactive),
                        }
                    }
                    SignedUpstream::ResponseHeader => match introspection.get("active") {
                        Some(serde_json::Value::Bool(false)) => Ok(Resolved::Inactive),
                        Some(serde_json::Value::Bool(true)) => {
                            // The answer goes upstream until the earlier of the token's and the
                            // response's own expiry.
                            let token_exp = match introspection.get("exp") {
                                None => None,
                                Some(exp) => {
                                    Some(jose::numeric_date_secs(exp).ok_or(Unresolved::Failed(Failure::Malformed))?)
                                }
                            };
                            let exp = match (token_exp, jwt.exp()) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (a, b) => a.or(b),
                            };
                            Ok(Resolved::Active {
                                upstream: response.as_bytes().to_vec(),
                                claims: serde_json::to_vec(introspection).unwrap_or_default(),
                                exp,
                            })
                        }
                        _ => Err(Unresolved::Failed(Failure::Malformed)),
                    },
                }
            }
            (Reply::Signed(..), None) => Err(Unresolved::Failed(Failure::Malformed)),
        }
    }

    /// A JWT that may go upstream as the access token.
    fn forwardable(&self, token: &str, ctx: &Ctx) -> Result<Resolved, Unresolved> {
        let jwt = self.verified(token, &self.token_rules, ctx)?;
        // RFC 9701 section 8.1: a token-introspection response is never an access token.
        if jwt.typ_is(SIGNED_MEDIA) {
            return Err(Unresolved::Failed(Failure::InvalidJwt));
        }
        Ok(Resolved::Active {
            upstream: token.as_bytes().to_vec(),
            claims: serde_json::to_vec(jwt.claims()).unwrap_or_default(),
            exp: jwt.exp(),
        })
    }

    fn verified(&self, token: &str, rules: &ClaimRules, ctx: &Ctx) -> Result<Jwt, Unresolved> {
        let invalid = |error: jose::JwtError| {
            log::info!(
                "phantom_token: the OAuth server's JWT is not acceptable: {}",
                error.reason()
            );
            Unresolved::Failed(Failure::InvalidJwt)
        };
        let jwt = Jwt::decode(token.as_bytes(), self.max_jwt_bytes).map_err(invalid)?;
        let (keys, _) = self
            .keys
            .current(ctx)
            .ok_or(Unresolved::Failed(Failure::KeysUnavailable))?;
        match self.keys.verify(&jwt, &keys, rules, ctx) {
            Ok(_) => Ok(jwt),
            Err(Rejection::UnknownKid) => Err(Unresolved::UnknownKid),
            Err(Rejection::KeysUnavailable) => Err(Unresolved::Failed(Failure::KeysUnavailable)),
            Err(Rejection::Invalid(error)) => Err(invalid(error)),
        }
    }
}
