//! Verified tokens, per worker: keyed by SHA-256 of the token, bounded, never past `exp`, and
//! only for the key-set version that verified them.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use crate::provider::Verified;

struct Entry {
    provider: usize,
    keys_version: u64,
    expires_at_secs: u64,
    verified: Rc<Verified>,
}

pub struct TokenCache {
    max_entries: usize,
    entries: HashMap<[u8; 32], Entry>,
    /// Insertion order, for eviction of the oldest.
    order: VecDeque<[u8; 32]>,
}

impl TokenCache {
    pub fn new(max_entries: usize) -> Self {
        Self {
            max_entries,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn get(&mut self, key: &[u8; 32], provider: usize, keys_version: u64, now_secs: u64) -> Option<Rc<Verified>> {
        let entry = self.entries.get(key)?;
        if entry.provider == provider && entry.keys_version == keys_version && now_secs < entry.expires_at_secs {
            return Some(Rc::clone(&entry.verified));
        }
        if now_secs >= entry.expires_at_secs || entry.keys_version != keys_version {
            self.entries.remove(key);
        }
        None
    }

    pub fn insert(
        &mut self,
        key: [u8; 32],
        provider: usize,
        keys_version: u64,
        expires_at_secs: u64,
        verified: Rc<Verified>,
    ) {
        if self.max_entries == 0 {
            return;
        }
        while self.entries.len() >= self.max_entries {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
        if self
            .entries
            .insert(
                key,
                Entry {
                    provider,
                    keys_version,
                    expires_at_secs,
                    verified,
                },
            )
            .is_none()
        {
            self.order.push_back(key);
        }
        // Keys of entries that expired or were replaced linger in `order`; keep it bounded too.
        if self.order.len() > self.max_entries.saturating_mul(2) {
            self.order.retain(|k| self.entries.contains_key(k));
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn verified() -> Rc<Verified> {
        Rc::new(Verified::default())
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn entries_expire_and_belong_to_one_key_version_and_provider() {
        let mut cache = TokenCache::new(10);
        cache.insert([1; 32], 0, 7, 100, verified());
        assert!(cache.get(&[1; 32], 0, 7, 99).is_some());
        assert!(cache.get(&[1; 32], 1, 7, 99).is_none(), "another provider");
        assert!(cache.get(&[1; 32], 0, 7, 100).is_none(), "at exp");
        cache.insert([2; 32], 0, 7, 100, verified());
        assert!(cache.get(&[2; 32], 0, 8, 50).is_none(), "keys changed");
        assert!(cache.get(&[2; 32], 0, 7, 50).is_none(), "dropped on key change");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_cache_is_bounded() {
        let mut cache = TokenCache::new(3);
        for i in 0..10u8 {
            cache.insert([i; 32], 0, 1, 100, verified());
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&[9; 32], 0, 1, 1).is_some());
        assert!(cache.get(&[0; 32], 0, 1, 1).is_none());
    }
}
