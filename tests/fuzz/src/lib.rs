//! What the fuzz targets share: the fixed keys tokens are verified against, the request a
//! configured filter is asked to serve, and the check every filter config gets.
//!
//! The keys are the public halves of the test fixtures (`tests/fixtures/keys`: `rsa-1`, `ec-1`,
//! `ec384-1`, `ed-1`, in `data/jwks.json`) plus one HMAC secret; the seed tokens under `corpus/`
//! are signed with them.

use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jose::{Alg, Jwk, Jwks};
use shared::testkit::FakeHost;
use shared::{Action, FilterRoot, Headers, HttpFilter, MetricRegistry, Secret};

/// The fixture JWKS: one RSA (no `alg`, so it checks every RS* and PS*), P-256, P-384 and Ed25519
/// key, each with its `kid`.
pub const JWKS: &str = include_str!("../data/jwks.json");

/// The secret of the HS256/384/512 seed tokens (64 bytes: long enough for HS512).
pub const HMAC_SECRET: &[u8] = b"fuzz-only hmac secret: 64 bytes, long enough for HS512 keys....!";

/// The issuer of every seed token.
pub const ISSUER: &str = "https://idp.example";

/// The testkit's clock: 2026-01-01T00:00:00Z.
pub const NOW_SECS: u64 = 1_767_225_600;

/// The longest token the targets decode (jwt-auth's default limit).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// [`JWKS`] plus an HMAC key without `kid` for each of HS256, HS384 and HS512.
pub fn fixed_keys() -> Jwks {
    let parsed = match Jwks::parse(JWKS.as_bytes()) {
        Ok(jwks) if jwks.len() == 4 && jwks.skipped() == 0 => jwks,
        other => panic!("data/jwks.json must hold four usable keys: {other:?}"),
    };
    let mut keys = parsed.keys().to_vec();
    for alg in [Alg::HS256, Alg::HS384, Alg::HS512] {
        keys.extend(Jwk::hmac(Secret::new(HMAC_SECRET), alg, None).ok());
    }
    Jwks::from_keys(keys)
}

/// Strict base64url, as in a compact JWS.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An ordinary request: every filter's request path runs on it (no credentials, a JSON body).
pub fn request() -> Headers {
    Headers::from_pairs([
        (":method", "POST"),
        (":path", "/orders/42?expand=items"),
        (":authority", "api.example"),
        ("content-type", "application/json"),
        ("origin", "https://app.example"),
        ("x-user-id", "spoofed"),
        ("x-api-key", "k"),
    ])
}

/// An ordinary upstream response.
pub fn response() -> Headers {
    Headers::from_pairs([
        (":status", "200"),
        ("server", "upstream"),
        ("x-envoy-upstream-service-time", "3"),
        ("content-type", "application/json"),
    ])
}

/// Parses and validates `raw` as the config of filter `R`, the way the host's `on_configure`
/// does, and checks that:
/// - the verdict is a function of the bytes (the same bytes twice: the same error, or the same
///   counters);
/// - an error names something (its text is not empty);
/// - a config that is accepted can serve a request and a response without panicking.
pub fn check_config<R: FilterRoot>(raw: &[u8]) {
    let mut metrics = MetricRegistry::new(R::NAME);
    let first = R::configure(raw, &mut metrics);
    let mut metrics_again = MetricRegistry::new(R::NAME);
    let second = R::configure(raw, &mut metrics_again);
    match (&first, &second) {
        (Err(a), Err(b)) => assert_eq!(a, b, "the same config, two different errors"),
        (Ok(_), Ok(_)) => assert_eq!(metrics.full_names(), metrics_again.full_names()),
        _ => panic!("the same config was accepted once and refused once"),
    }
    let root = match first {
        Ok(root) => Rc::new(root),
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    // `on_start` is left out on purpose: rate-limit's creates `max_keys / 4` shared-data keys,
    // which a fuzzed config can make arbitrarily many.
    let host = FakeHost::default();
    let mut filter = R::new_filter(&root);
    let step = filter.on_request_headers(&request(), &host.ctx());
    if step.action == Action::Continue {
        let _ = filter.on_response_headers(&response(), &host.ctx());
    }
}
