//! Shared-data namespaces that configs hand on to each other, so a config change leaks no keys.
//!
//! Shared data lives as long as the Envoy process, and proxy-wasm cannot delete a key (Envoy
//! frees a value set to empty, never its key). Keys named after a config would stay behind on
//! every config change. So a filter's configs take numbered namespaces from one registry key
//! instead: a config renews its namespace while it runs (on start and on its ticks), and a new
//! config takes over one that nobody renewed for [`LEASE_MS`]. The keys in use stay bounded by
//! the configs alive at once, each at the largest size a config of that namespace used.
//!
//! A namespace changes hands with its data: what a filter stores in one must carry the owner's
//! [`Namespace::tag`], and data under another tag must be read as absent.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use crate::ports::{SharedStore, StoreError};
use crate::secret::Secret;

/// How long a namespace nobody renews stays its config's. Configs renew every quarter of it, so
/// only a config that is gone (or a host clock that jumped ahead) loses its namespace; a config
/// that finds its namespace taken claims another.
pub const LEASE_MS: u64 = 60_000;
const RENEW_MS: u64 = LEASE_MS / 4;
/// How often a filter with a namespace should tick to renew it: well within [`RENEW_MS`].
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// A registry entry: the owner's tag, when it last renewed (ms), how many keys it uses.
const ENTRY: usize = 8 + 8 + 4;
/// CAS attempts before giving up on a contended registry.
const MAX_ATTEMPTS: usize = 16;

/// One config's namespace among its filter's.
#[derive(Debug)]
pub struct Namespace {
    filter: &'static str,
    tag: [u8; 8],
    keys: u32,
    held: Cell<Option<u32>>,
    /// Other configs' namespaces seen stale at this one's renewals: see [`Namespace::gone`].
    suspects: RefCell<Vec<Suspect>>,
}

/// A namespace whose registry entry this config saw stale, unchanged since `since_ms`.
#[derive(Debug, Clone, Copy)]
struct Suspect {
    slot: usize,
    entry: Entry,
    since_ms: u64,
}

/// The owner of a namespace being emptied: it holds the slot while its keys are emptied, so no
/// new config takes it over and writes there meanwhile.
const RECLAIMING: [u8; 8] = *b"reclaim\0";

impl Namespace {
    /// The namespace of a config of `filter` that uses keys `0..keys`. `identity` tells configs
    /// apart: those with the same identity (the same raw config) share one namespace and its data.
    pub fn new(filter: &'static str, identity: &[u8], keys: u32) -> Self {
        let digest = Secret::sha256_of(identity);
        let mut tag = [0u8; 8];
        tag.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
        Self {
            filter,
            tag,
            keys,
            held: Cell::new(None),
            suspects: RefCell::new(Vec::new()),
        }
    }

    /// What marks this config's data inside the namespace.
    pub fn tag(&self) -> [u8; 8] {
        self.tag
    }

    /// The shared-data name of key `n`, claiming a namespace first if none is held yet. `None`:
    /// no namespace could be claimed (the host refused the registry write).
    pub fn key(&self, store: &dyn SharedStore, now_ms: u64, n: u32) -> Option<String> {
        let slot = match self.held.get() {
            Some(slot) => slot,
            None => self.claim(store, now_ms).ok()?,
        };
        Some(self.key_in(slot, n))
    }

    /// Takes or renews this config's namespace: the one it holds, else one nobody renewed for
    /// [`LEASE_MS`], else a new one. Taking one over empties the keys its last owner wrote beyond
    /// ours, so they hold no memory (a read of each key it declared: configs bound their sizes). Run it before traffic and then at least every
    /// [`LEASE_MS`]` / 4`; between renewals it only reads the registry.
    pub fn claim(&self, store: &dyn SharedStore, now_ms: u64) -> Result<u32, StoreError> {
        let registry = self.registry_key();
        let mut last_error = StoreError::CasMismatch;
        for _ in 0..MAX_ATTEMPTS {
            let (mut table, cas) = match store.get(&registry) {
                Some((bytes, cas)) => (bytes, Some(cas)),
                None => (Vec::new(), None),
            };
            table.truncate(table.len() - table.len() % ENTRY);
            let entries: Vec<Entry> = table.chunks_exact(ENTRY).filter_map(Entry::read).collect();
            let (slot, freed) = match entries.iter().position(|e| e.owner == self.tag) {
                Some(slot)
                    if entries
                        .get(slot)
                        .is_some_and(|e| e.renewed_ms.abs_diff(now_ms) < RENEW_MS) =>
                {
                    self.held.set(Some(to_u32(slot)));
                    return Ok(to_u32(slot));
                }
                Some(slot) => (slot, None),
                None => {
                    let stale = entries
                        .iter()
                        .position(|e| e.renewed_ms.saturating_add(LEASE_MS) < now_ms);
                    let slot = stale.unwrap_or(entries.len());
                    let freed = stale.and_then(|s| entries.get(s)).map(|e| self.keys..e.keys);
                    (slot, freed)
                }
            };
            let entry = Entry {
                owner: self.tag,
                renewed_ms: now_ms,
                keys: self.keys,
            };
            entry.write(&mut table, slot);
            // The namespaces of configs that are gone give their memory back now, not when a
            // later config takes them over: held as reclaiming while their keys are emptied.
            let gone = self.gone(&entries, slot, now_ms);
            for (i, e) in &gone {
                Entry {
                    owner: RECLAIMING,
                    renewed_ms: now_ms,
                    keys: e.keys,
                }
                .write(&mut table, *i);
            }
            match store.set_if_unchanged(&registry, &table, cas) {
                Ok(()) => {
                    let slot = to_u32(slot);
                    if self.held.replace(Some(slot)).is_some_and(|before| before != slot) {
                        log::warn!("{}: shared-data namespace taken over; now {slot}", self.filter);
                    }
                    let emptied = freed.into_iter().flatten().map(|n| self.key_in(slot, n));
                    let reclaimed = gone
                        .iter()
                        .flat_map(|(i, e)| (0..e.keys).map(move |n| self.key_in(to_u32(*i), n)));
                    // Setting a key creates it: only the keys the last owners wrote are emptied.
                    for key in emptied.chain(reclaimed) {
                        if store.get(&key).is_some_and(|(value, _)| !value.is_empty()) {
                            let _ = store.set(&key, &[], None);
                        }
                    }
                    if !gone.is_empty() {
                        self.free(store, &gone, now_ms);
                    }
                    return Ok(slot);
                }
                Err(error) => last_error = error,
            }
        }
        log::warn!("{}: could not claim a shared-data namespace", self.filter);
        Err(last_error)
    }

    /// The other namespaces whose configs are gone: their entries stale by the clock, and seen
    /// unchanged at this config's renewals for a whole lease since. A host clock that jumps ahead
    /// makes every entry look stale at once, but a config still running renews within the
    /// lease, so only the gone ones stay unchanged.
    fn gone(&self, entries: &[Entry], own: usize, now_ms: u64) -> Vec<(usize, Entry)> {
        let mut suspects = self.suspects.borrow_mut();
        let stale = entries.iter().enumerate().filter(|(i, e)| {
            *i != own && e.owner != RECLAIMING && e.keys > 0 && e.renewed_ms.saturating_add(LEASE_MS) < now_ms
        });
        let seen: Vec<Suspect> = stale
            .map(|(slot, entry)| {
                let since_ms = suspects
                    .iter()
                    .find(|s| s.slot == slot && s.entry == *entry)
                    .map_or(now_ms, |s| s.since_ms);
                Suspect {
                    slot,
                    entry: *entry,
                    since_ms,
                }
            })
            .collect();
        *suspects = seen;
        suspects
            .iter()
            .filter(|s| s.since_ms.saturating_add(LEASE_MS) <= now_ms)
            .map(|s| (s.slot, s.entry))
            .collect()
    }

    /// Marks the namespaces this config just emptied free to take over, if they are still its to
    /// free; a lost race leaves them reclaiming, to go stale within a lease.
    fn free(&self, store: &dyn SharedStore, gone: &[(usize, Entry)], now_ms: u64) {
        let registry = self.registry_key();
        for _ in 0..MAX_ATTEMPTS {
            let Some((mut table, cas)) = store.get(&registry) else {
                return;
            };
            for (i, _) in gone {
                let ours = table
                    .get(i * ENTRY..(i + 1) * ENTRY)
                    .and_then(Entry::read)
                    .is_some_and(|e| e.owner == RECLAIMING && e.renewed_ms == now_ms);
                if ours {
                    Entry {
                        owner: RECLAIMING,
                        renewed_ms: 0,
                        keys: 0,
                    }
                    .write(&mut table, *i);
                }
            }
            if store.set_if_unchanged(&registry, &table, Some(cas)).is_ok() {
                return;
            }
        }
    }

    fn registry_key(&self) -> String {
        format!("apisec.{}.namespaces", self.filter)
    }

    fn key_in(&self, slot: u32, n: u32) -> String {
        format!("apisec.{}.ns{slot}.{n}", self.filter)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    owner: [u8; 8],
    renewed_ms: u64,
    keys: u32,
}

impl Entry {
    fn read(bytes: &[u8]) -> Option<Self> {
        let (owner, rest) = bytes.split_first_chunk::<8>()?;
        let (renewed, rest) = rest.split_first_chunk::<8>()?;
        let keys = rest.first_chunk::<4>()?;
        Some(Self {
            owner: *owner,
            renewed_ms: u64::from_le_bytes(*renewed),
            keys: u32::from_le_bytes(*keys),
        })
    }

    fn write(&self, table: &mut Vec<u8>, slot: usize) {
        let at = slot * ENTRY;
        if table.len() < at + ENTRY {
            table.resize(at + ENTRY, 0);
        }
        if let Some(place) = table.get_mut(at..at + ENTRY) {
            let (owner, rest) = place.split_at_mut(8);
            let (renewed, keys) = rest.split_at_mut(8);
            owner.copy_from_slice(&self.owner);
            renewed.copy_from_slice(&self.renewed_ms.to_le_bytes());
            keys.copy_from_slice(&self.keys.to_le_bytes());
        }
    }
}

fn to_u32(slot: usize) -> u32 {
    u32::try_from(slot).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::FakeStore;
    use wasm_bindgen_test::wasm_bindgen_test;

    const T0: u64 = 1_700_000_000_000;

    fn config(n: u32, keys: u32) -> Namespace {
        Namespace::new("test", format!("config {n}").as_bytes(), keys)
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn configs_alive_at_once_get_namespaces_of_their_own_and_the_same_config_shares_one() {
        let store = FakeStore::default();
        let (a, b, a_again) = (config(1, 4), config(2, 4), config(1, 4));
        assert_eq!(a.claim(&store, T0), Ok(0));
        assert_eq!(b.claim(&store, T0), Ok(1));
        assert_eq!(a_again.key(&store, T0, 3).as_deref(), Some("apisec.test.ns0.3"));
        assert_ne!(a.tag(), b.tag());
        assert_eq!(a.tag(), a_again.tag());
    }

    /// Two configs that both find no registry yet (their VMs start on two threads) do not both
    /// take namespace 0.
    #[wasm_bindgen_test(unsupported = test)]
    fn configs_that_create_the_registry_at_once_get_namespaces_of_their_own() {
        let store = FakeStore::default();
        let (a, b) = (config(1, 4), config(2, 4));
        let racing = crate::testkit::RacingStore::new(&store, "namespaces", |store: &FakeStore| {
            assert_eq!(b.claim(store, T0), Ok(0));
        });
        assert_eq!(a.claim(&racing, T0), Ok(1));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn config_changes_reuse_the_namespaces_of_configs_that_are_gone() {
        let store = FakeStore::default();
        let mut now = T0;
        let live = config(0, 8);
        live.claim(&store, now).unwrap();
        for generation in 1..=50 {
            let current = config(generation, 8);
            current.claim(&store, now).unwrap();
            for n in 0..8 {
                let key = current.key(&store, now, n).unwrap();
                store.set(&key, &[1; 16], None).unwrap();
            }
            // The old config goes; the live one renews on its ticks.
            now += LEASE_MS + 1;
            live.claim(&store, now).unwrap();
        }
        assert_eq!(
            store.keys_starting_with("apisec.test.ns"),
            (0..8).map(|n| format!("apisec.test.ns1.{n}")).collect::<Vec<_>>()
        );
        assert_eq!(live.held.get(), Some(0), "a renewed namespace is never taken over");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_namespace_is_taken_over_only_after_its_lease_and_its_surplus_keys_are_emptied() {
        let store = FakeStore::default();
        let old = config(1, 6);
        old.claim(&store, T0).unwrap();
        for n in 0..6 {
            store.set(&old.key(&store, T0, n).unwrap(), &[7; 32], None).unwrap();
        }
        let new = config(2, 2);
        assert_eq!(
            new.claim(&store, T0 + LEASE_MS),
            Ok(1),
            "within the lease: a namespace of its own"
        );
        let newer = config(3, 2);
        assert_eq!(newer.claim(&store, T0 + LEASE_MS + 1), Ok(0), "after it: the old one's");
        let lengths: Vec<usize> = (0..6)
            .map(|n| store.get(&format!("apisec.test.ns0.{n}")).unwrap().0.len())
            .collect();
        assert_eq!(
            lengths,
            vec![32, 32, 0, 0, 0, 0],
            "data under the old tag stays; surplus keys are emptied"
        );
    }

    /// A config that is gone gives its memory back at the next renewal of a config still
    /// running, not when some later config happens to take its namespace over.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_running_config_empties_the_namespaces_of_configs_that_are_gone() {
        let store = FakeStore::default();
        let (old, running) = (config(1, 3), config(2, 1));
        for n in 0..3 {
            store.set(&old.key(&store, T0, n).unwrap(), &[7; 32], None).unwrap();
        }
        running.claim(&store, T0).unwrap();
        let held = || -> Vec<usize> {
            (0..3)
                .map(|n| store.get(&format!("apisec.test.ns0.{n}")).unwrap().0.len())
                .collect()
        };
        // Renewing every quarter lease, the running config finds it stale after one lease, and
        // gone once it stayed so for another.
        let mut now = T0;
        while held() != vec![0, 0, 0] {
            now += RENEW_MS;
            running.claim(&store, now).unwrap();
            assert!(now <= T0 + 2 * LEASE_MS + 2 * RENEW_MS, "still held at {}", now - T0);
        }
        assert!(
            now > T0 + 2 * LEASE_MS,
            "emptied {} ms after its last renewal",
            now - T0
        );
        // Its namespace is free to take over, with nothing left to empty.
        assert_eq!(config(3, 2).claim(&store, now), Ok(0));
    }

    /// A running config renews (and marks a gone config's namespace empty in the registry); before
    /// it empties that namespace's keys, a new config on another worker takes the namespace over
    /// and writes its data there. The emptying, done after the registry write without looking at
    /// who holds the namespace now, wipes the new owner's data.
    #[wasm_bindgen_test(unsupported = test)]
    fn emptying_a_gone_configs_namespace_spares_the_config_that_just_took_it_over() {
        let store = FakeStore::default();
        let (old, running) = (config(1, 2), config(2, 1));
        old.claim(&store, T0).unwrap();
        for n in 0..2 {
            store.set(&old.key(&store, T0, n).unwrap(), &[7; 32], None).unwrap();
        }
        running.claim(&store, T0).unwrap();
        running.claim(&store, T0 + LEASE_MS + RENEW_MS).unwrap();
        let now = T0 + 2 * LEASE_MS + RENEW_MS;
        let newcomer = config(3, 2);
        let racing = crate::testkit::RacingStore::after_write(
            &store,
            1,
            |key| key.ends_with("namespaces"),
            |store: &FakeStore| {
                assert_eq!(
                    newcomer.claim(store, now),
                    Ok(2),
                    "one of its own: ns0 is being emptied"
                );
                for n in 0..2 {
                    store
                        .set(&newcomer.key(store, now, n).unwrap(), &[9; 32], None)
                        .unwrap();
                }
            },
        );
        running.claim(&racing, now).unwrap();
        let held = |ns: u32| -> Vec<Vec<u8>> {
            (0..2)
                .map(|n| store.get(&format!("apisec.test.ns{ns}.{n}")).unwrap().0)
                .collect()
        };
        assert_eq!(
            held(2),
            vec![vec![9; 32], vec![9; 32]],
            "the new owner's data was emptied"
        );
        assert_eq!(held(0), vec![Vec::<u8>::new(), Vec::new()]);
    }

    /// README: "A host clock that jumps ahead by more than 60 s can hand a running config's
    /// namespace to a new one" (only then). Now any running config's first renewal after such a
    /// jump empties the namespaces of every other config still running, no new config needed:
    /// their buckets and caches start over.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_clock_jump_alone_empties_no_running_configs_namespace() {
        let store = FakeStore::default();
        let (a, b) = (config(1, 1), config(2, 1));
        a.claim(&store, T0).unwrap();
        b.claim(&store, T0).unwrap();
        store.set(&b.key(&store, T0, 0).unwrap(), &[7; 32], None).unwrap();
        let jumped = T0 + 2 * LEASE_MS;
        a.claim(&store, jumped).unwrap();
        assert_eq!(b.claim(&store, jumped), Ok(1), "b keeps its namespace");
        assert_eq!(
            store.get("apisec.test.ns1.0").unwrap().0.len(),
            32,
            "b, still running, lost its data to a's renewal"
        );
    }

    /// A config that declared many keys and wrote few leaves only those few behind: emptying the
    /// rest would create them.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_takeover_creates_no_key_the_last_owner_never_wrote() {
        let store = FakeStore::default();
        let old = config(1, 100_000);
        old.claim(&store, T0).unwrap();
        for n in [3, 99_999] {
            store.set(&old.key(&store, T0, n).unwrap(), &[7; 32], None).unwrap();
        }
        let new = config(2, 2);
        assert_eq!(new.claim(&store, T0 + LEASE_MS + 1), Ok(0));
        let keys: Vec<(String, usize)> = store
            .entries()
            .into_iter()
            .filter(|(key, _)| key.starts_with("apisec.test.ns0."))
            .map(|(key, value)| (key, value.len()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("apisec.test.ns0.3".to_owned(), 0),
                ("apisec.test.ns0.99999".to_owned(), 0)
            ]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_config_that_lost_its_namespace_claims_another() {
        let store = FakeStore::default();
        let slow = config(1, 1);
        slow.claim(&store, T0).unwrap();
        // A host clock that jumps ahead makes a live namespace look abandoned.
        let other = config(2, 1);
        assert_eq!(other.claim(&store, T0 + 2 * LEASE_MS), Ok(0));
        assert_eq!(slow.claim(&store, T0 + 2 * LEASE_MS), Ok(1));
        assert_eq!(slow.key(&store, T0, 0).as_deref(), Some("apisec.test.ns1.0"));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn renewals_write_only_every_quarter_lease() {
        let store = FakeStore::default();
        let a = config(1, 1);
        a.claim(&store, T0).unwrap();
        let version = |s: &FakeStore| s.get("apisec.test.namespaces").map(|(_, cas)| cas);
        let before = version(&store);
        a.claim(&store, T0 + RENEW_MS - 1).unwrap();
        assert_eq!(version(&store), before);
        a.claim(&store, T0 + RENEW_MS).unwrap();
        assert_ne!(version(&store), before);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_refused_registry_write_leaves_no_namespace() {
        let store = FakeStore::default();
        store.fail_writes(true);
        let a = config(1, 1);
        assert_eq!(a.claim(&store, T0), Err(StoreError::Failed));
        assert_eq!(a.key(&store, T0, 0), None);
    }
}
