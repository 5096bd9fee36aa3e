//! Credentials that must never reach a log.

use std::fmt;

use sha2::{Digest, Sha256};

/// A token or key. `Debug` and `Display` print only a short SHA-256 fingerprint, so a `{:?}` in a
/// log line cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The full SHA-256 of the secret: the key under which caches may remember it.
    pub fn sha256(&self) -> [u8; 32] {
        Self::sha256_of(&self.0)
    }

    /// The same key for a secret the caller only borrows: no copy of it is made.
    pub fn sha256_of(secret: &[u8]) -> [u8; 32] {
        Sha256::digest(secret).into()
    }

    /// The first 8 bytes of the SHA-256, in hex: enough to correlate log lines, useless to an attacker.
    pub fn fingerprint(&self) -> String {
        self.sha256().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(sha256:{})", self.fingerprint())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn formatting_never_shows_the_secret() {
        let s = Secret::new("opaque-token-value");
        for shown in [format!("{s}"), format!("{s:?}"), format!("{s:#?}")] {
            assert!(!shown.contains("opaque"), "{shown}");
            assert!(shown.contains(&s.fingerprint()), "{shown}");
        }
        assert_eq!(s.fingerprint().len(), 16);
        assert_eq!(s.expose(), b"opaque-token-value");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_hash_is_sha256() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(Secret::new("abc").fingerprint(), "ba7816bf8f01cfea");
    }
}
