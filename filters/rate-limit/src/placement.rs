//! The secret that places descriptors among a limit's buckets.
//!
//! A limit's buckets are a fixed number of sets, and a new descriptor in a full set evicts the
//! fullest bucket there. Were a set picked by a plain hash of the descriptor, a client could find
//! offline the values that share a set with its own drained bucket (a few thousand tries each),
//! send them, and have its bucket evicted: a fresh, full one each round. So the hash is keyed with
//! a random secret of this Envoy, kept in shared data so that every worker places a descriptor in
//! the same bucket, and never shown to anyone.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

use shared::{SharedStore, StoreError};

/// The shared-data key of the secret (one per Envoy process, for every rate-limit config).
pub const KEY: &str = "apisec.rate_limit.placement";
const LEN: usize = 16;

/// The secret, as the buckets use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement(pub [u8; LEN]);

/// One worker's copy of the secret, read from shared data once.
#[derive(Debug, Default)]
pub struct PlacementKey {
    loaded: Cell<Option<Placement>>,
}

impl PlacementKey {
    /// The secret, created if this Envoy has none yet: by the first plugin to start, and by one
    /// worker only should two create it at once (the other reads what the first wrote).
    pub fn load(&self, store: &dyn SharedStore) -> Result<Placement, StoreError> {
        if let Some(placement) = self.loaded.get() {
            return Ok(placement);
        }
        let stored = match store.get(KEY) {
            Some((bytes, cas)) => match <[u8; LEN]>::try_from(bytes.as_slice()) {
                Ok(secret) => secret,
                Err(_) => create(store, Some(cas))?,
            },
            None => create(store, None)?,
        };
        let placement = Placement(stored);
        self.loaded.set(Some(placement));
        Ok(placement)
    }
}

fn create(store: &dyn SharedStore, seen: Option<u32>) -> Result<[u8; LEN], StoreError> {
    match store.set_if_unchanged(KEY, &random_secret(), seen) {
        Ok(()) | Err(StoreError::CasMismatch) => {}
        Err(StoreError::Failed) => return Err(StoreError::Failed),
    }
    store
        .get(KEY)
        .and_then(|(bytes, _)| <[u8; LEN]>::try_from(bytes.as_slice()).ok())
        .ok_or(StoreError::Failed)
}

/// 128 random bits. std's `RandomState` is keyed from the host's randomness (WASI `random_get`,
/// which Envoy serves from its CSPRNG) and hashes with SipHash, a keyed PRF: its outputs are as
/// unpredictable as its key, without a crate of its own for randomness.
fn random_secret() -> [u8; LEN] {
    let mut secret = [0u8; LEN];
    for (i, half) in secret.chunks_exact_mut(8).enumerate() {
        half.copy_from_slice(&RandomState::new().hash_one(i).to_le_bytes());
    }
    secret
}

#[cfg(test)]
mod tests {
    use shared::testkit::{FakeStore, RacingStore};
    use wasm_bindgen_test::wasm_bindgen_test;

    use super::*;

    #[wasm_bindgen_test(unsupported = test)]
    fn the_first_start_creates_the_secret_and_every_worker_reads_the_same() {
        let store = FakeStore::default();
        let main = PlacementKey::default().load(&store).unwrap();
        let worker = PlacementKey::default().load(&store).unwrap();
        assert_eq!(main, worker);
        assert_ne!(main, Placement([0; LEN]));
        let other_envoy = PlacementKey::default().load(&FakeStore::default()).unwrap();
        assert_ne!(main, other_envoy, "each Envoy draws its own");
    }

    /// Two workers that both find no secret: the second to write reads the first's, so both
    /// place buckets alike.
    #[wasm_bindgen_test(unsupported = test)]
    fn two_workers_creating_the_secret_at_once_agree_on_it() {
        let store = FakeStore::default();
        let other = std::cell::Cell::new(None);
        let racing = RacingStore::new(&store, KEY, |store: &FakeStore| {
            other.set(PlacementKey::default().load(store).ok());
        });
        let this = PlacementKey::default().load(&racing).unwrap();
        assert_eq!(Some(this), other.get());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_damaged_secret_is_replaced() {
        let store = FakeStore::default();
        store.set(KEY, b"short", None).unwrap();
        let placement = PlacementKey::default().load(&store).unwrap();
        assert_eq!(store.get(KEY).unwrap().0, placement.0);
    }
}
