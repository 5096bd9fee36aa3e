//! Turns an introspection answer into what goes upstream, verifying every JWT on the way: the JWT
//! to forward (signature with the IdP's keys, `iss`, `aud`, `exp`) and, in RFC 9701 mode, the
//! signed response itself (`typ`, signature, `iss`, `aud` = this client, `iat`). A signed
//! response that goes upstream itself is held to what a forwarded JWT would be: its
//! `token_introspection` must have an `exp`, and an `aud` for this API.

use jose::{Binding, ClaimRules, IssuerKeys, Jwt, Rejection};
use shared::Ctx;

use crate::introspection::{read_active, read_introspection, Failure, Lifetime, Reply};

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
    /// What a forwarded JWT must satisfy, but its audience: one for another API is the client's
    /// mistake (401), where a JWT that fails any other rule is the OAuth server's (502).
    pub token_rules: ClaimRules,
    /// The forwarded JWT's `aud` names one of these (when non-empty).
    pub audiences: Vec<String>,
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
        /// Bearer, or bound to a client certificate (RFC 8705): good only on a connection that
        /// presented it.
        binding: Binding,
        /// The version of the keys that verified it: once they change, it is asked about again.
        keys_version: u64,
    },
    Inactive,
    /// Active, but not for this gateway to forward.
    Refused(Refusal),
}

/// Why an active token is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Bound to a key this gateway checks no proof of (RFC 9449): never forwarded.
    SenderConstrained,
    /// Issued for another API (RFC 7662 section 4, RFC 9068 section 4): its `aud` names none of
    /// this one's.
    OtherAudience,
}

/// Why an answer is not resolved yet, or never will be.
#[derive(Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// Signed with a key this worker does not have: refetching the keys may find it.
    UnknownKid,
    /// This worker has no keys at all yet: fetching them may find the key.
    NoKeys,
    Failed(Failure),
}

impl Verifier {
    pub fn resolve(&self, reply: &Reply, ctx: &Ctx) -> Result<Resolved, Unresolved> {
        match (reply, &self.signed) {
            (Reply::Inactive(_), _) => Ok(Resolved::Inactive),
            (Reply::Token(token, lifetime, _), _) => self.forwardable(token, *lifetime, None, ctx),
            (Reply::Signed(response, _), Some(signed)) => {
                let (jwt, keys_version) = self.verified(response, &signed.rules, ctx)?;
                let introspection = jwt
                    .claim("token_introspection")
                    .filter(|v| v.is_object())
                    .ok_or(Unresolved::Failed(Failure::Malformed))?;
                match &signed.upstream {
                    SignedUpstream::JwtField(field) => {
                        match read_introspection(introspection, field).map_err(Unresolved::Failed)? {
                            Some((token, lifetime)) => self.forwardable(&token, lifetime, jwt.exp(), ctx),
                            None => Ok(Resolved::Inactive),
                        }
                    }
                    SignedUpstream::ResponseHeader => {
                        let Some(lifetime) = read_active(introspection).map_err(Unresolved::Failed)? else {
                            return Ok(Resolved::Inactive);
                        };
                        // What goes upstream stands for the access token: without an `exp` it
                        // would hold for as long as the cache keeps it, as a forwarded JWT
                        // without one would.
                        if lifetime.exp.is_none() {
                            log::info!("phantom_token: the introspected token has no exp");
                            return Err(Unresolved::Failed(Failure::InvalidJwt));
                        }
                        if lifetime.is_over(ctx.now_secs(), self.token_rules.clock_skew_secs) {
                            return Ok(Resolved::Inactive);
                        }
                        // What goes upstream is the token's introspection: it must be for this API.
                        if let Some(refusal) = self.for_another_api(introspection.get("aud"))? {
                            return Ok(Resolved::Refused(refusal));
                        }
                        if lifetime.binding == Binding::Unchecked {
                            return Ok(Resolved::Refused(Refusal::SenderConstrained));
                        }
                        Ok(Resolved::Active {
                            upstream: response.as_bytes().to_vec(),
                            // Its text as the server signed it (checked above to be an object).
                            claims: shared::json::member_text(jwt.payload_json(), "token_introspection")
                                .unwrap_or_default()
                                .to_vec(),
                            // Until the earlier of the token's and the response's own expiry.
                            exp: earliest(lifetime.exp, jwt.exp()),
                            binding: lifetime.binding,
                            keys_version,
                        })
                    }
                }
            }
            (Reply::Signed(..), None) => Err(Unresolved::Failed(Failure::Malformed)),
        }
    }

    /// A JWT that may go upstream as the access token, for an opaque token with `lifetime`, from
    /// an answer that itself expires at `answer_exp`.
    fn forwardable(
        &self,
        token: &str,
        lifetime: Lifetime,
        answer_exp: Option<u64>,
        ctx: &Ctx,
    ) -> Result<Resolved, Unresolved> {
        // RFC 7662 section 2.2: a token past its `exp` is not active, whatever `active` said.
        if lifetime.is_over(ctx.now_secs(), self.token_rules.clock_skew_secs) {
            return Ok(Resolved::Inactive);
        }
        // Refuses other kinds of JWT, an introspection response among them (RFC 9701 section 8.1).
        let (jwt, keys_version) = self.verified(token, &self.token_rules, ctx)?;
        if let Some(refusal) = self.for_another_api(jwt.claim("aud"))? {
            return Ok(Resolved::Refused(refusal));
        }
        // RFC 9449 section 7.2: a token bound to a key whose proof no one checks behind a
        // `Bearer` header is refused; one bound to a client certificate goes on to be checked.
        let binding = lifetime.binding.and(jwt.binding());
        if binding == Binding::Unchecked {
            return Ok(Resolved::Refused(Refusal::SenderConstrained));
        }
        Ok(Resolved::Active {
            upstream: token.as_bytes().to_vec(),
            claims: jwt.payload_json().to_vec(),
            // The JWT goes upstream only while the opaque token, and the answer, still hold.
            exp: earliest(earliest(jwt.exp(), lifetime.exp), answer_exp),
            binding,
            keys_version,
        })
    }

    /// Whether an `aud` the OAuth server vouches for names another API; an `aud` that is no
    /// string or array of strings, or absent where one is wanted, is the server's error.
    fn for_another_api(&self, aud: Option<&serde_json::Value>) -> Result<Option<Refusal>, Unresolved> {
        match jose::check_audience(aud, &self.audiences) {
            Ok(()) => Ok(None),
            Err(jose::JwtError::WrongAudience) => Ok(Some(Refusal::OtherAudience)),
            Err(error) => {
                log::info!(
                    "phantom_token: the introspected token is not acceptable: {}",
                    error.reason()
                );
                Err(Unresolved::Failed(Failure::InvalidJwt))
            }
        }
    }

    /// The JWT in `token`, verified, and the version of the keys that verified it.
    fn verified(&self, token: &str, rules: &ClaimRules, ctx: &Ctx) -> Result<(Jwt, u64), Unresolved> {
        let invalid = |error: jose::JwtError| {
            log::info!(
                "phantom_token: the OAuth server's JWT is not acceptable: {}",
                error.reason()
            );
            Unresolved::Failed(Failure::InvalidJwt)
        };
        let jwt = Jwt::decode(token.as_bytes(), self.max_jwt_bytes).map_err(invalid)?;
        let (keys, version) = self.keys.current(ctx).ok_or(Unresolved::NoKeys)?;
        match self.keys.verify(&jwt, &keys, rules, ctx) {
            Ok(_) => Ok((jwt, version)),
            Err(Rejection::UnknownKid) => Err(Unresolved::UnknownKid),
            Err(Rejection::KeysUnavailable) => Err(Unresolved::Failed(Failure::KeysUnavailable)),
            Err(Rejection::Invalid(error)) => Err(invalid(error)),
        }
    }
}

/// The earlier of two optional instants.
fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
