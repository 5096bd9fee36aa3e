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
}

/// Read access to the host's request properties and to filter state set by earlier filters.
pub trait Properties {
    /// A host property by path, e.g. `["source", "address"]`.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// A value an earlier filter published with [`Step::publish`](crate::Step::publish).
    fn filter_state(&self, key: &str) -> Option<Vec<u8>>;
}

/// What every callback gets besides the headers.
pub struct Ctx<'a> {
    /// Host wall clock, milliseconds since the Unix epoch.
    pub now_ms: u64,
    pub store: &'a dyn SharedStore,
    pub properties: &'a dyn Properties,
}

impl Ctx<'_> {
    pub fn now_secs(&self) -> u64 {
        self.now_ms / 1000
    }
}
