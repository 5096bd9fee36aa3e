//! Introspection results shared by every worker, in shared data.
//!
//! Keys are the SHA-256 of the opaque token, never the token. The cache is a fixed number of
//! slots (a token's slot comes from its hash), so it never grows past its size: a new entry
//! replaces whatever held its slot, except that an inactive answer never replaces another
//! token's live active one (a flood of made-up tokens cannot evict real sessions); the same
//! token's, it does (a revocation another worker saw wins over an answer from before it). An
//! active answer is not written over anything written since it was asked for: that may have been
//! the token's revocation, since replaced by another token's entry.
//! Entries are never served past their expiry, nor to another config than the one that wrote them:
//! the slots are keys of the config's shared-data [`Namespace`], which a later config takes over
//! with whatever the slots still hold, so each entry carries its namespace's tag.

use crate::verify::Refusal;
use shared::{Namespace, SharedStore, StoreError};

const FORMAT: u8 = 4;
/// Format, tag, key, expiry, time written, kind, claims length, keys version.
const HEADER_LEN: usize = 1 + 8 + 32 + 8 + 8 + 1 + 4 + 8;
/// Where the time an entry was written is, in any entry of this format.
const WRITTEN_AT: std::ops::Range<usize> = 49..57;
/// Writes lost to other workers' before one is given up (and logged).
const MAX_WRITE_ATTEMPTS: usize = 8;
/// Entry kinds. An active entry bound to a client certificate has the certificate's SHA-256
/// after the header.
const INACTIVE: u8 = 0;
const ACTIVE: u8 = 1;
const SENDER_CONSTRAINED: u8 = 2;
const ACTIVE_BOUND: u8 = 3;
const OTHER_AUDIENCE: u8 = 4;

/// A cached answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Active {
        expires_at_ms: u64,
        /// What goes upstream (a JWT, or a signed introspection response).
        upstream: Vec<u8>,
        /// The claims published to filter state.
        claims: Vec<u8>,
        /// The SHA-256 of the client certificate the token is bound to, if it is (RFC 8705).
        certificate: Option<[u8; 32]>,
        /// The version of the IdP's keys that verified it (the same on every worker).
        keys_version: u64,
    },
    Inactive {
        expires_at_ms: u64,
    },
    /// Active, but refused, as an inactive answer is.
    Refused {
        expires_at_ms: u64,
        refusal: Refusal,
    },
}

impl Entry {
    fn expires_at_ms(&self) -> u64 {
        match self {
            Entry::Active { expires_at_ms, .. }
            | Entry::Inactive { expires_at_ms }
            | Entry::Refused { expires_at_ms, .. } => *expires_at_ms,
        }
    }

    fn encode(&self, tag: &[u8; 8], key: &[u8; 32], written_at_ms: u64) -> Vec<u8> {
        let (kind, upstream, claims, certificate, keys_version): (u8, &[u8], &[u8], &[u8], u64) = match self {
            Entry::Active {
                upstream,
                claims,
                certificate: None,
                keys_version,
                ..
            } => (ACTIVE, upstream, claims, &[], *keys_version),
            Entry::Active {
                upstream,
                claims,
                certificate: Some(certificate),
                keys_version,
                ..
            } => (ACTIVE_BOUND, upstream, claims, certificate, *keys_version),
            Entry::Inactive { .. } => (INACTIVE, &[], &[], &[], 0),
            Entry::Refused {
                refusal: Refusal::SenderConstrained,
                ..
            } => (SENDER_CONSTRAINED, &[], &[], &[], 0),
            Entry::Refused {
                refusal: Refusal::OtherAudience,
                ..
            } => (OTHER_AUDIENCE, &[], &[], &[], 0),
        };
        let claims_len = u32::try_from(claims.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(HEADER_LEN + certificate.len() + claims.len() + upstream.len());
        out.push(FORMAT);
        out.extend_from_slice(tag);
        out.extend_from_slice(key);
        out.extend_from_slice(&self.expires_at_ms().to_le_bytes());
        out.extend_from_slice(&written_at_ms.to_le_bytes());
        out.push(kind);
        out.extend_from_slice(&claims_len.to_le_bytes());
        out.extend_from_slice(&keys_version.to_le_bytes());
        out.extend_from_slice(certificate);
        out.extend_from_slice(claims);
        out.extend_from_slice(upstream);
        out
    }

    /// The entry in `bytes`, if it is for `key` and under `tag`.
    fn decode(bytes: &[u8], tag: &[u8; 8], key: &[u8; 32]) -> Option<Self> {
        let (header, rest) = bytes.split_at_checked(HEADER_LEN)?;
        let (format, header) = header.split_first()?;
        let (stored_tag, header) = header.split_at_checked(8)?;
        let (stored_key, header) = header.split_at_checked(32)?;
        let (expires, header) = header.split_at_checked(8)?;
        let (_written_at, header) = header.split_at_checked(8)?;
        let (kind, header) = header.split_first()?;
        let (claims_len, keys_version) = header.split_at_checked(4)?;
        if *format != FORMAT || stored_tag != tag || stored_key != key {
            return None;
        }
        let expires_at_ms = u64::from_le_bytes(expires.try_into().ok()?);
        let claims_len = usize::try_from(u32::from_le_bytes(claims_len.try_into().ok()?)).ok()?;
        let keys_version = u64::from_le_bytes(keys_version.try_into().ok()?);
        let active = |certificate, rest: &[u8]| {
            let (claims, upstream) = rest.split_at_checked(claims_len)?;
            Some(Entry::Active {
                expires_at_ms,
                upstream: upstream.to_vec(),
                claims: claims.to_vec(),
                certificate,
                keys_version,
            })
        };
        match *kind {
            INACTIVE => Some(Entry::Inactive { expires_at_ms }),
            SENDER_CONSTRAINED => Some(Entry::Refused {
                expires_at_ms,
                refusal: Refusal::SenderConstrained,
            }),
            OTHER_AUDIENCE => Some(Entry::Refused {
                expires_at_ms,
                refusal: Refusal::OtherAudience,
            }),
            ACTIVE => active(None, rest),
            ACTIVE_BOUND => {
                let (certificate, rest) = rest.split_first_chunk::<32>()?;
                active(Some(*certificate), rest)
            }
            _ => None,
        }
    }
}

pub struct SharedCache {
    namespace: Namespace,
    slots: u32,
}

impl SharedCache {
    /// The cache of a config told apart from others by `identity`; `slots` 0: nothing is cached.
    pub fn new(identity: &[u8], slots: u32) -> Self {
        Self {
            namespace: Namespace::new("phantom_token", identity, slots),
            slots,
        }
    }

    /// Whether the cache holds shared data that its config must keep claiming ([`Self::claim`]).
    pub fn is_enabled(&self) -> bool {
        self.slots > 0
    }

    /// Takes or renews the cache's namespace: before traffic, then on every tick.
    pub fn claim(&self, store: &dyn SharedStore, now_ms: u64) {
        if self.is_enabled() {
            let _ = self.namespace.claim(store, now_ms);
        }
    }

    fn slot_key(&self, store: &dyn SharedStore, key: &[u8; 32], now_ms: u64) -> Option<String> {
        let head: [u8; 8] = key.first_chunk::<8>().copied()?;
        let slot = u64::from_le_bytes(head).checked_rem(u64::from(self.slots))?;
        self.namespace.key(store, now_ms, u32::try_from(slot).ok()?)
    }

    /// The unexpired entry for `key`.
    pub fn get(&self, store: &dyn SharedStore, key: &[u8; 32], now_ms: u64) -> Option<Entry> {
        let (bytes, _) = store.get(&self.slot_key(store, key, now_ms)?)?;
        Entry::decode(&bytes, &self.namespace.tag(), key).filter(|entry| now_ms < entry.expires_at_ms())
    }

    /// Caches the answer to a question asked at `asked_at_ms`. Whether it may replace what the
    /// slot holds is decided on what the slot holds when it is written: another worker's write
    /// in between (a revocation) makes it decide again.
    pub fn put(&self, store: &dyn SharedStore, key: &[u8; 32], entry: &Entry, asked_at_ms: u64, now_ms: u64) {
        let Some(slot) = self.slot_key(store, key, now_ms) else {
            return;
        };
        if now_ms >= entry.expires_at_ms() {
            return;
        }
        let tag = self.namespace.tag();
        let encoded = entry.encode(&tag, key, now_ms);
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let held = store.get(&slot);
            let kept = held.as_ref().is_some_and(|(bytes, _)| match entry {
                Entry::Inactive { .. } | Entry::Refused { .. } => holds_anothers_live_active(bytes, &tag, key, now_ms),
                // An active answer a slow call brings back after another worker cached the
                // token's revocation is the older news, also once another token's entry has
                // taken the slot since.
                Entry::Active { .. } => {
                    holds_its_live_refusal(bytes, &tag, key, now_ms) || written_since(bytes, asked_at_ms)
                }
            });
            if kept {
                return;
            }
            match store.set_if_unchanged(&slot, &encoded, held.map(|(_, version)| version)) {
                Ok(()) => return,
                Err(StoreError::CasMismatch) => continue,
                Err(StoreError::Failed) => break,
            }
        }
        log::warn!("phantom_token: could not write the shared cache");
    }
}

fn holds_its_live_refusal(bytes: &[u8], tag: &[u8; 8], key: &[u8; 32], now_ms: u64) -> bool {
    Entry::decode(bytes, tag, key).is_some_and(|entry| {
        matches!(entry, Entry::Inactive { .. } | Entry::Refused { .. }) && now_ms < entry.expires_at_ms()
    })
}

/// Whether the entry in `bytes`, whoever's, was written at or after `asked_at_ms`.
fn written_since(bytes: &[u8], asked_at_ms: u64) -> bool {
    bytes.first() == Some(&FORMAT)
        && bytes
            .get(WRITTEN_AT)
            .and_then(|at| at.try_into().ok())
            .is_some_and(|at| u64::from_le_bytes(at) >= asked_at_ms)
}

fn holds_anothers_live_active(bytes: &[u8], tag: &[u8; 8], key: &[u8; 32], now_ms: u64) -> bool {
    let held: Option<[u8; 32]> = bytes.get(9..41).and_then(|k| k.try_into().ok());
    held.filter(|held| held != key)
        .and_then(|held| Entry::decode(bytes, tag, &held))
        .is_some_and(|entry| matches!(entry, Entry::Active { .. }) && now_ms < entry.expires_at_ms())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testkit::{FakeStore, RacingStore};
    use wasm_bindgen_test::wasm_bindgen_test;

    fn key(n: u8) -> [u8; 32] {
        let mut key = [n; 32];
        key[0] = n;
        key
    }

    fn active(expires_at_ms: u64) -> Entry {
        Entry::Active {
            expires_at_ms,
            upstream: b"h.p.s".to_vec(),
            claims: br#"{"sub":"a"}"#.to_vec(),
            certificate: None,
            keys_version: 0x0102_0304_0506_0708,
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn entries_round_trip_and_expire() {
        let store = FakeStore::default();
        let cache = SharedCache::new(b"t", 16);
        cache.put(&store, &key(1), &active(1000), 10, 10);
        assert_eq!(cache.get(&store, &key(1), 999), Some(active(1000)));
        assert_eq!(cache.get(&store, &key(1), 1000), None, "never past expiry");
        cache.put(&store, &key(2), &Entry::Inactive { expires_at_ms: 50 }, 10, 10);
        assert_eq!(
            cache.get(&store, &key(2), 49),
            Some(Entry::Inactive { expires_at_ms: 50 })
        );
        cache.put(&store, &key(3), &active(5), 10, 10);
        assert_eq!(cache.get(&store, &key(3), 0), None, "already expired: not written");
        let bound = Entry::Refused {
            expires_at_ms: 50,
            refusal: Refusal::SenderConstrained,
        };
        cache.put(&store, &key(4), &bound, 10, 10);
        assert_eq!(cache.get(&store, &key(4), 49), Some(bound));
        let certificate_bound = Entry::Active {
            expires_at_ms: 1000,
            upstream: b"h.p.s".to_vec(),
            claims: br#"{"sub":"a"}"#.to_vec(),
            certificate: Some([0xc5; 32]),
            keys_version: u64::MAX,
        };
        cache.put(&store, &key(5), &certificate_bound, 10, 10);
        assert_eq!(cache.get(&store, &key(5), 999), Some(certificate_bound));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn the_cache_is_bounded_by_its_slots() {
        let store = FakeStore::default();
        let cache = SharedCache::new(b"t", 4);
        for n in 0..=255u8 {
            let now = u64::from(n) + 1;
            cache.put(&store, &key(n), &active(1000), now, now);
        }
        let live = (0..=255u8).filter(|n| cache.get(&store, &key(*n), 1).is_some()).count();
        assert_eq!(live, 4);
        // Another token in the same slot is not served the entry.
        assert_eq!(cache.get(&store, &key(255), 1), Some(active(1000)));
        let mut other = key(255);
        other[31] ^= 1;
        assert_eq!(cache.get(&store, &other, 1), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_inactive_answer_never_evicts_a_live_session() {
        let store = FakeStore::default();
        let cache = SharedCache::new(b"t", 1);
        cache.put(&store, &key(1), &active(1000), 0, 0);
        cache.put(&store, &key(2), &Entry::Inactive { expires_at_ms: 900 }, 0, 0);
        assert_eq!(cache.get(&store, &key(1), 1), Some(active(1000)));
        assert_eq!(cache.get(&store, &key(2), 1), None);
        cache.put(
            &store,
            &key(2),
            &Entry::Refused {
                expires_at_ms: 900,
                refusal: Refusal::SenderConstrained,
            },
            0,
            0,
        );
        assert_eq!(cache.get(&store, &key(1), 1), Some(active(1000)), "nor a bound token's");
        // Once the session expired, it may.
        cache.put(&store, &key(2), &Entry::Inactive { expires_at_ms: 2000 }, 1000, 1000);
        assert!(cache.get(&store, &key(2), 1001).is_some());
        // An active answer always may.
        cache.put(&store, &key(3), &active(3000), 1001, 1001);
        assert_eq!(cache.get(&store, &key(3), 1002), Some(active(3000)));
    }

    /// Two workers asked about one token across its revocation: the inactive answer replaces the
    /// active one already there (the revocation is the newer news).
    #[wasm_bindgen_test(unsupported = test)]
    fn the_same_tokens_inactive_answer_replaces_its_active_one() {
        let store = FakeStore::default();
        let cache = SharedCache::new(b"t", 1);
        cache.put(&store, &key(1), &active(1000), 0, 0);
        cache.put(&store, &key(1), &Entry::Inactive { expires_at_ms: 900 }, 1, 1);
        assert_eq!(
            cache.get(&store, &key(1), 2),
            Some(Entry::Inactive { expires_at_ms: 900 })
        );
    }

    /// The other order: a call sent before the revocation answers after another worker cached
    /// it. The active answer is the older news and leaves the refusal in place until it expires.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_late_active_answer_never_undoes_the_same_tokens_refusal() {
        let store = FakeStore::default();
        let cache = SharedCache::new(b"t", 1);
        for refusal in [
            Entry::Inactive { expires_at_ms: 900 },
            Entry::Refused {
                expires_at_ms: 900,
                refusal: Refusal::SenderConstrained,
            },
        ] {
            cache.put(&store, &key(1), &refusal, 0, 0);
            cache.put(&store, &key(1), &active(1000), 1, 1);
            assert_eq!(cache.get(&store, &key(1), 2), Some(refusal));
        }
        // Once the refusal expired, it may; and another token's refusal is no reason to wait.
        cache.put(&store, &key(1), &active(2000), 900, 900);
        assert_eq!(cache.get(&store, &key(1), 901), Some(active(2000)));
        cache.put(&store, &key(2), &Entry::Inactive { expires_at_ms: 3000 }, 2000, 2000);
        cache.put(&store, &key(3), &active(4000), 2001, 2001);
        assert_eq!(cache.get(&store, &key(3), 2002), Some(active(4000)));
    }

    /// The revocation was cached, then another token's answer took the slot: a call about the
    /// revoked token sent before all that still brings back older news, and is not cached.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_late_active_answer_is_not_cached_over_anything_written_since_it_was_asked_for() {
        let store = FakeStore::default();
        let cache = SharedCache::new(b"t", 1);
        cache.put(&store, &key(1), &Entry::Inactive { expires_at_ms: 10_000 }, 5, 5);
        cache.put(&store, &key(2), &active(5000), 6, 6);
        cache.put(&store, &key(1), &active(5000), 2, 7);
        assert_eq!(
            cache.get(&store, &key(1), 8),
            None,
            "the revoked token served as active"
        );
        assert_eq!(cache.get(&store, &key(2), 8), Some(active(5000)));
        // Asked for after the last write, it is the newer news.
        cache.put(&store, &key(1), &active(5000), 6, 9);
        assert_eq!(
            cache.get(&store, &key(1), 10),
            None,
            "asked at the time of the last write"
        );
        cache.put(&store, &key(1), &active(5000), 7, 9);
        assert_eq!(cache.get(&store, &key(1), 10), Some(active(5000)));
    }

    /// Worker A's call went out before the revocation and answers at 5; worker B asked at 3 and
    /// caches the refusal at 4, between A's read of the slot and A's write: the refusal stays,
    /// whether the slot held something before (another token's expired entry) or nothing.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_refusal_another_worker_writes_while_an_older_answer_is_written_stays() {
        for slot_written_before in [true, false] {
            let store = FakeStore::default();
            let worker_a = SharedCache::new(b"t", 1);
            let worker_b = SharedCache::new(b"t", 1);
            worker_a.claim(&store, 0);
            worker_b.claim(&store, 0);
            if slot_written_before {
                worker_a.put(&store, &key(2), &Entry::Inactive { expires_at_ms: 1 }, 0, 0);
            }
            let racing = RacingStore::new(&store, "", |store: &FakeStore| {
                worker_b.put(store, &key(1), &Entry::Inactive { expires_at_ms: 10_000 }, 3, 4);
            });
            worker_a.put(&racing, &key(1), &active(100_000), 1, 5);
            assert_eq!(
                worker_a.get(&store, &key(1), 6),
                Some(Entry::Inactive { expires_at_ms: 10_000 }),
                "the revoked token served as active (slot written before: {slot_written_before})"
            );
        }
    }

    /// Nor does another token's refusal, written meanwhile, evict a live session.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_session_another_worker_writes_while_a_refusal_is_written_stays() {
        let store = FakeStore::default();
        let worker_a = SharedCache::new(b"t", 1);
        let worker_b = SharedCache::new(b"t", 1);
        worker_a.claim(&store, 0);
        worker_b.claim(&store, 0);
        let racing = RacingStore::new(&store, "", |store: &FakeStore| {
            worker_b.put(store, &key(1), &active(10_000), 3, 3);
        });
        worker_a.put(&racing, &key(2), &Entry::Inactive { expires_at_ms: 9_000 }, 2, 4);
        assert_eq!(worker_a.get(&store, &key(1), 5), Some(active(10_000)));
    }

    /// A host that refuses any version for a key that does not exist still gets entries cached.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_host_that_refuses_versions_of_missing_keys_still_caches() {
        struct Strict(FakeStore);
        impl SharedStore for Strict {
            fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
                self.0.get(key)
            }
            fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
                if cas.is_some() && self.0.get(key).is_none() {
                    return Err(StoreError::CasMismatch);
                }
                self.0.set(key, value, cas)
            }
        }
        let store = Strict(FakeStore::default());
        let cache = SharedCache::new(b"t", 1);
        cache.put(&store, &key(1), &active(1000), 0, 0);
        assert_eq!(cache.get(&store, &key(1), 1), Some(active(1000)));
        cache.put(&store, &key(1), &Entry::Inactive { expires_at_ms: 900 }, 2, 2);
        assert_eq!(
            cache.get(&store, &key(1), 3),
            Some(Entry::Inactive { expires_at_ms: 900 })
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn zero_slots_cache_nothing_and_garbage_is_ignored() {
        let store = FakeStore::default();
        let off = SharedCache::new(b"t", 0);
        off.put(&store, &key(1), &active(1000), 0, 0);
        assert_eq!(off.get(&store, &key(1), 1), None);
        let cache = SharedCache::new(b"t", 1);
        let slot = cache.slot_key(&store, &key(1), 1).unwrap();
        store.set(&slot, b"\x03short", None).unwrap();
        assert_eq!(cache.get(&store, &key(1), 1), None);
    }

    /// A config change hands the old config's slots to the new one, entries and all: none of them
    /// is served, as the new config never verified them (other audiences, keys, upstream form).
    #[wasm_bindgen_test(unsupported = test)]
    fn a_config_that_takes_over_the_slots_is_never_served_the_old_ones_entries() {
        let store = FakeStore::default();
        let old = SharedCache::new(b"old config", 4);
        old.claim(&store, 0);
        old.put(&store, &key(1), &active(u64::MAX), 0, 0);
        let later = shared::namespace::LEASE_MS + 1;
        let new = SharedCache::new(b"new config", 4);
        new.claim(&store, later);
        assert_eq!(new.slot_key(&store, &key(1), later), old.slot_key(&store, &key(1), 0));
        assert_eq!(new.get(&store, &key(1), later), None);
        // Nor does the old entry, though live, keep the new config from caching an inactive answer.
        new.put(
            &store,
            &key(2),
            &Entry::Inactive {
                expires_at_ms: u64::MAX,
            },
            later,
            later,
        );
        new.put(
            &store,
            &key(1),
            &Entry::Inactive {
                expires_at_ms: u64::MAX,
            },
            later,
            later,
        );
        assert!(new.get(&store, &key(1), later).is_some());
    }
}
