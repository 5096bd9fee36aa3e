//! The JOSE core shared by `jwt-auth` and `phantom-token`: strict compact-JWS parsing ([`Jwt`]),
//! JWKS parsing ([`Jwks`]), signature checks that prefer the host's native crypto and fall back to
//! pure Rust ([`Jwt::verify`]), and claim rules ([`ClaimRules`]).
//!
//! [`IssuerKeys`] compiles an issuer's configured keys; [`keys::RemoteKeys`] keeps remote ones fresh
//! (shared data, one fetching worker, backoff) and only says which calls to make.
//!
//! Pure code: no I/O, no host calls (the host's crypto arrives as a [`shared::HostCrypto`]), no
//! clock (`now` is an argument), no panics.
//!
//! What a token must look like to get through:
//! - compact JWS, three non-empty strict-base64url segments; JWE, JSON serialization, unsecured
//!   (`none`) and detached-payload tokens are rejected;
//! - a header that is a JSON object without duplicate members, whose `alg` is one of [`Alg`]
//!   (exact spelling), with no `crit` (no extension is understood); `jwk`, `jku`, `x5u`, `x5c`,
//!   `x5t` are never used to find a key: keys come only from the configured [`Jwks`];
//! - a payload that is a JSON object without duplicate members (at any depth).

mod alg;
mod b64;
mod bignum;
mod claims;
mod der;
mod ecdsa;
mod ed25519;
mod error;
mod issuer;
mod json;
mod jwk;
mod jwt;
pub mod keys;
mod rsassa;
mod verify;

#[cfg(test)]
mod testdata;

pub use alg::Alg;
pub use b64::b64url_decode;
pub use claims::{check_audience, sender_constrained, Binding, ClaimRules};
pub use error::{JwksError, JwtError};
pub use issuer::{
    store_prefix, IssuerKeys, IssuerKeysSpec, JwksConfig, Rejection, MAX_CLOCK_SKEW_SECS, MAX_REFRESH_SECS,
};
pub use json::{parse_object, ObjectError};
pub use jwk::{Jwk, Jwks, KeyKind, MAX_JWKS_BYTES, MAX_JWKS_KEYS, MAX_RSA_BITS, MIN_RSA_BITS};
pub use jwt::{numeric_date_secs, Jwt};
