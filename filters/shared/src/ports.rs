//! What a core may ask of the host synchronously, as traits; the adapter implements them with
//! host calls and the testkit with in-memory fakes.

/// Why a shared-data write did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// Someone else wrote the key since it was read: read again and retry.
    CasMismatch,
    /// The host refused the write.
    Failed,
}

/// Key/value data shared by every worker's VM of one plugin, with compare-and-swap.
pub trait SharedStore {
    /// The value and its CAS version, if the key exists.
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes `value` if the key is still at version `cas` (`None`: unconditionally).
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;

    /// Writes `value` if the key is still as it was read: at version `seen`, or still missing
    /// (`seen` is `None`). Envoy creates a missing key whatever version a write names, and
    /// refuses [`NOT_WRITTEN_YET`] for a key another worker created meanwhile (a key holds that
    /// version once in 2^32 writes); on a host that refuses any version for a missing key, a key
    /// still missing is written unconditionally.
    fn set_if_unchanged(&self, key: &str, value: &[u8], seen: Option<u32>) -> Result<(), StoreError> {
        match self.set(key, value, Some(seen.unwrap_or(NOT_WRITTEN_YET))) {
            Err(StoreError::CasMismatch) if seen.is_none() && self.get(key).is_none() => self.set(key, value, None),
            result => result,
        }
    }
}

/// The version a write to a key nobody has written names (see [`SharedStore::set_if_unchanged`]).
pub const NOT_WRITTEN_YET: u32 = u32::MAX;

/// Read access to the host's request properties and to filter state set by earlier filters.
pub trait Properties {
    /// A host property by path, e.g. `["source", "address"]`.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// A value an earlier filter published with [`Step::publish`](crate::Step::publish).
    fn filter_state(&self, key: &str) -> Option<Vec<u8>>;

    /// The SHA-256 of the client certificate the downstream connection presented in its TLS
    /// handshake (which proved the client holds its private key), from Envoy's
    /// `connection.sha256_peer_certificate_digest` (lowercase hex); `None` without TLS, without a
    /// certificate, or if the host says anything else.
    fn client_certificate_sha256(&self) -> Option<[u8; 32]> {
        crate::certificate::sha256_from_hex(&self.property(&["connection", "sha256_peer_certificate_digest"])?)
    }
}

/// Hash functions a host signature check can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

/// Signature checks the host does natively (Envoy: the `verify_signature` foreign function, with
/// BoringSSL), far faster than the same check in wasm.
pub trait HostCrypto {
    /// Checks an RSA PKCS#1 v1.5 or ECDSA (DER-encoded) signature over `message` with the key in
    /// `spki_der` (a DER SubjectPublicKeyInfo). `None`: the host cannot check it (no such
    /// function, or it refused the arguments); the caller falls back to its own implementation.
    fn verify(&self, hash: HashAlg, spki_der: &[u8], signature: &[u8], message: &[u8]) -> Option<bool>;
}

/// A host without native crypto.
pub struct NoHostCrypto;

impl HostCrypto for NoHostCrypto {
    fn verify(&self, _: HashAlg, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
        None
    }
}

/// What every callback gets besides the headers.
pub struct Ctx<'a> {
    /// Host wall clock, milliseconds since the Unix epoch.
    pub now_ms: u64,
    pub store: &'a dyn SharedStore,
    pub properties: &'a dyn Properties,
    pub crypto: &'a dyn HostCrypto,
}

impl Ctx<'_> {
    pub fn now_secs(&self) -> u64 {
        self.now_ms / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// A connection whose certificate digest property is this value, if any.
    struct Connection(Option<Vec<u8>>);

    impl Properties for Connection {
        fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
            (path == ["connection", "sha256_peer_certificate_digest"])
                .then(|| self.0.clone())
                .flatten()
        }

        fn filter_state(&self, _key: &str) -> Option<Vec<u8>> {
            None
        }
    }

    fn with_digest(value: &[u8]) -> Connection {
        Connection(Some(value.to_vec()))
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_client_certificate_digest_is_read_from_its_hex_and_nothing_else_counts() {
        let hex = "00ff10a0".repeat(8);
        let expected: Vec<u8> = [0x00, 0xff, 0x10, 0xa0].repeat(8);
        assert_eq!(
            with_digest(hex.as_bytes()).client_certificate_sha256().map(Vec::from),
            Some(expected.clone())
        );
        assert_eq!(
            with_digest(hex.to_uppercase().as_bytes())
                .client_certificate_sha256()
                .map(Vec::from),
            Some(expected)
        );
        assert_eq!(Connection(None).client_certificate_sha256(), None);
        for bad in [
            "",
            &hex[2..],
            &format!("{hex}00"),
            &hex.replacen('0', "g", 1),
            &hex.replacen("00", "+0", 1),
        ] {
            assert_eq!(with_digest(bad.as_bytes()).client_certificate_sha256(), None, "{bad}");
        }
    }
}
