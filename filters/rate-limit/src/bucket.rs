//! Local token buckets in shared data, shared by every worker of one Envoy.
//!
//! Each bucket is kept as its GCRA "theoretical arrival time" (TAT): the moment it will be full
//! again. That is the token bucket in one number, updated with exact integer arithmetic (time is
//! scaled by the rate, so no fraction of a token is ever rounded away).
//!
//! Memory is bounded: a limit owns a fixed number of keys ("sets") of its config's shared-data
//! [`Namespace`], each holding [`WAYS`] buckets. A set carries the namespace's tag: one under
//! another tag (a config that held the namespace before) is read as empty. A descriptor's SHA-256, keyed with this Envoy's secret [`Placement`], picks the set and a fingerprint within it. When a new
//! descriptor finds its set full, it takes the slot of the bucket that is fullest (smallest TAT)
//! and starts with a full bucket of its own: a full bucket holds no state, so under normal load
//! nothing is lost, and under a flood of keys the evicted client loses the least, while no new
//! client ever inherits another's debt. Updates are compare-and-swap with bounded retries.
//!
//! TATs are wall-clock times, and the host's wall clock can step back (NTP, a resumed VM). So each
//! set also keeps the latest clock reading it stored. A reading up to [`CLOCK_STEP_MS`] behind it
//! is two workers' readings crossing, and the set's reading stands in for it (time never goes back
//! for a bucket). A reading further behind is the clock stepping back: every TAT of the set moves
//! back by the step, so each bucket keeps the tokens it had at its last update and refills at the
//! rate from there, instead of counting the step as debt. The time between that update and the
//! step is not credited: a step back never makes a bucket fuller than it could be.

use std::rc::Rc;

use sha2::{Digest, Sha256};

use shared::{Namespace, SharedStore, StoreError};

use crate::config::Unit;
use crate::descriptor::Descriptor;
use crate::placement::Placement;

/// Buckets per shared-data key.
pub const WAYS: usize = 4;
const FINGERPRINT: usize = 12;
const SLOT: usize = FINGERPRINT + 4 + 16;
/// Before the slots: the namespace's tag, then the latest clock reading (ms) the set stored.
const TAG: std::ops::Range<usize> = 0..8;
const CLOCK: std::ops::Range<usize> = 8..16;
const HEADER: usize = 16;
const SET: usize = HEADER + SLOT * WAYS;
/// Goes into the namespace's identity: another layout is another tag, never a set misread.
pub const LAYOUT: u32 = 4;
/// CAS attempts before giving up on a contended set.
const MAX_ATTEMPTS: usize = 16;
/// How far a clock reading may lag the set's own before it counts as the host clock stepping back
/// rather than two workers' readings crossing.
const CLOCK_STEP_MS: u64 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub requests: u32,
    pub per: Unit,
    pub burst: u32,
}

impl Rate {
    /// The quota policy a client is shown, `(requests, per seconds)`: the window is the seconds
    /// an empty bucket takes to fill (rounded up), the quota what the limit's rate allows in it
    /// (rounded down), and never less than `burst`, so never below the remaining count. It never
    /// overstates the rate, and understates it by less than one request per window: 100 a
    /// second with a burst of 10 is `(100, 1)`, not `(10, 1)`.
    pub fn policy(&self) -> (u64, u64) {
        let (requests, per) = (u64::from(self.requests.max(1)), self.per.seconds().max(1));
        let window = (u64::from(self.burst) * per).div_ceil(requests);
        let at_rate = window.saturating_mul(requests) / per;
        (at_rate.max(u64::from(self.burst)), window)
    }
}

/// Where one descriptor's bucket lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketKey {
    /// Which of the limit's sets.
    pub set: u32,
    fingerprint: [u8; FINGERPRINT],
}

/// The shared-data layout of one local limit: keys `first..first + sets` of its namespace.
#[derive(Debug)]
pub struct Buckets {
    namespace: Rc<Namespace>,
    first: u32,
    sets: u32,
    rate: Rate,
}

/// What a bucket said about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Whole requests (of cost 1) still allowed now.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until a refused request of the same cost would pass (0 when allowed).
    pub retry_after_secs: u64,
    /// An allowed take's tokens are owed until this TAT: by then they have refilled, and
    /// [`Buckets::give_back`] has nothing to return.
    owed_until: u128,
    /// The buckets' time the verdict was reached at.
    at_ms: u64,
}

impl Buckets {
    /// The buckets of a limit with `sets` sets, from key `first` of `namespace` on. The namespace
    /// is its config's: a changed config starts from full buckets rather than reinterpreting old
    /// state.
    pub fn new(namespace: Rc<Namespace>, first: u32, rate: Rate, sets: u32) -> Self {
        Self {
            namespace,
            first,
            sets: sets.max(1),
            rate,
        }
    }

    /// How many keys of the namespace the limit uses.
    pub fn sets(&self) -> u32 {
        self.sets
    }

    /// The shared-data key of one of the limit's sets.
    fn set_name(&self, store: &dyn SharedStore, now_ms: u64, set: u32) -> Result<String, StoreError> {
        self.namespace
            .key(store, now_ms, self.first.saturating_add(set))
            .ok_or(StoreError::Failed)
    }

    /// An empty set of this namespace.
    fn fresh_set(&self) -> Vec<u8> {
        let mut set = vec![0; SET];
        if let Some(tag) = set.get_mut(TAG) {
            tag.copy_from_slice(&self.namespace.tag());
        }
        set
    }

    /// The bucket of a descriptor; `from_fallback[i]` says entry `i`'s value came from its
    /// fallback source: such a value has its own bucket, apart from the same value read from the
    /// source (a `sub` that reads like an IP address is not that address).
    pub fn key(&self, placement: &Placement, descriptor: &Descriptor, from_fallback: &[bool]) -> BucketKey {
        let mut hash = Sha256::new();
        hash.update(placement.0);
        for (i, (key, value)) in descriptor.iter().enumerate() {
            if from_fallback.get(i) == Some(&true) {
                // No key is this long: the marker cannot be read as a length.
                hash.update(u64::MAX.to_le_bytes());
            }
            // Lengths first: ("ab","c") and ("a","bc") must not collide.
            hash.update((key.len() as u64).to_le_bytes());
            hash.update(key.as_bytes());
            hash.update((value.len() as u64).to_le_bytes());
            hash.update(value.as_bytes());
        }
        let digest = hash.finalize();
        let mut index = [0u8; 4];
        index.copy_from_slice(digest.get(..4).unwrap_or(&[0; 4]));
        let mut fingerprint = [0u8; FINGERPRINT];
        fingerprint.copy_from_slice(digest.get(4..4 + FINGERPRINT).unwrap_or(&[0; FINGERPRINT]));
        BucketKey {
            set: u32::from_le_bytes(index) % self.sets,
            fingerprint,
        }
    }

    /// Creates the sets that do not exist yet, before traffic; one another worker created
    /// meanwhile is left as it is.
    pub fn create_missing(&self, store: &dyn SharedStore, now_ms: u64) {
        for set in 0..self.sets {
            let Ok(key) = self.set_name(store, now_ms, set) else {
                return;
            };
            if store.get(&key).is_none()
                && store.set_if_unchanged(&key, &self.fresh_set(), None) == Err(StoreError::Failed)
            {
                log::warn!("rate_limit: could not create shared data {key}");
            }
        }
    }

    /// What [`Buckets::take`] would say now, without taking anything: what the limits after one
    /// that refused a request say of it, since a refused request takes nothing. A limit that
    /// would allow it is shown as the request leaves it, untouched.
    pub fn check(
        &self,
        store: &dyn SharedStore,
        key: &BucketKey,
        cost: u32,
        now_ms: u64,
    ) -> Result<Verdict, StoreError> {
        let name = self.set_name(store, now_ms, key.set)?;
        let (mut set, _) = self.read_set(store, &name);
        let (now, _) = self.follow_clock(&mut set, now_ms);
        let tat = slot_of(&set, &key.fingerprint).map_or(0, |slot| read_tat(&set, slot));
        let (verdict, _) = self.gcra(tat, cost, now);
        Ok(if verdict.allowed {
            self.gcra(tat, 0, now).0
        } else {
            verdict
        })
    }

    /// Takes `cost` tokens from the bucket if it has them. A refusal leaves the set as it was,
    /// unless the clock stepped back: then the set's moving back is stored all the same.
    pub fn take(
        &self,
        store: &dyn SharedStore,
        key: &BucketKey,
        cost: u32,
        now_ms: u64,
    ) -> Result<Verdict, StoreError> {
        let name = self.set_name(store, now_ms, key.set)?;
        for _ in 0..MAX_ATTEMPTS {
            let (mut set, cas) = self.read_set(store, &name);
            let (now, stepped_back) = self.follow_clock(&mut set, now_ms);
            let (slot, tat) = match slot_of(&set, &key.fingerprint) {
                Some(slot) => (slot, read_tat(&set, slot)),
                // A new descriptor starts with a full bucket, whatever the evicted one held.
                None => (slot_to_evict(&set), 0),
            };
            let (verdict, new_tat) = self.gcra(tat, cost, now);
            if verdict.allowed {
                write_slot(&mut set, slot, &key.fingerprint, new_tat);
            } else if !stepped_back {
                return Ok(verdict);
            }
            match store.set_if_unchanged(&name, &set, cas) {
                Ok(()) => return Ok(verdict),
                Err(StoreError::CasMismatch) => continue,
                Err(StoreError::Failed) => return Err(StoreError::Failed),
            }
        }
        Err(StoreError::CasMismatch)
    }

    /// Undoes the `taken` [`Buckets::take`] of `cost` tokens that allowed a request after all
    /// refused elsewhere: gives back what of it has not refilled yet. GCRA is linear, so at once
    /// this leaves the bucket as if the request had never come; later, the tokens that came back
    /// with time are not given twice (a bucket never holds more than its burst). A bucket evicted
    /// since has nothing to give back to. Returns the bucket's state after, if it gave back.
    pub fn give_back(
        &self,
        store: &dyn SharedStore,
        key: &BucketKey,
        cost: u32,
        taken: &Verdict,
        now_ms: u64,
    ) -> Result<Option<Verdict>, StoreError> {
        let name = self.set_name(store, now_ms, key.set)?;
        for _ in 0..MAX_ATTEMPTS {
            let (mut set, cas) = self.read_set(store, &name);
            let (now, _) = self.follow_clock(&mut set, now_ms);
            let Some(slot) = slot_of(&set, &key.fingerprint) else {
                return Ok(None);
            };
            let now_scaled = u128::from(now) * u128::from(self.rate.requests);
            // Once the clock stepped back, the TATs moved and `owed_until` is of another time:
            // nothing is given back, erring on the strict side.
            let owed = if now < taken.at_ms {
                0
            } else {
                (u128::from(cost) * self.unit()).min(taken.owed_until.saturating_sub(now_scaled))
            };
            let tat = read_tat(&set, slot).saturating_sub(owed);
            write_tat(&mut set, slot, tat);
            match store.set_if_unchanged(&name, &set, cas) {
                Ok(()) => return Ok(Some(self.gcra(tat, 0, now).0)),
                Err(StoreError::CasMismatch) => continue,
                Err(StoreError::Failed) => return Err(StoreError::Failed),
            }
        }
        Err(StoreError::CasMismatch)
    }

    /// One token, in the scaled time of TATs.
    fn unit(&self) -> u128 {
        u128::from(self.rate.per.seconds()) * 1000
    }

    /// A set as stored, with its CAS version; missing (a host that skipped the start hook) or
    /// another config's reads as a fresh one.
    fn read_set(&self, store: &dyn SharedStore, name: &str) -> (Vec<u8>, Option<u32>) {
        let tag = self.namespace.tag();
        match store.get(name) {
            Some((bytes, cas)) if bytes.len() == SET && bytes.get(TAG) == Some(&tag[..]) => (bytes, Some(cas)),
            Some((_, cas)) => (self.fresh_set(), Some(cas)),
            None => (self.fresh_set(), None),
        }
    }

    /// The time the set's buckets are at for a reading of `now_ms`, recorded in `set`, and
    /// whether the clock stepped back (then `set`'s TATs were moved back with it).
    fn follow_clock(&self, set: &mut [u8], now_ms: u64) -> (u64, bool) {
        let clock = read_clock(set);
        if now_ms >= clock {
            write_clock(set, now_ms);
            return (now_ms, false);
        }
        let behind = clock - now_ms;
        if behind <= CLOCK_STEP_MS {
            return (clock, false);
        }
        // Only a full bucket's TAT can be below the step: it stays full at 0.
        let step = u128::from(behind) * u128::from(self.rate.requests);
        for slot in 0..WAYS {
            write_tat(set, slot, read_tat(set, slot).saturating_sub(step));
        }
        write_clock(set, now_ms);
        log::debug!("rate_limit: the clock stepped back {behind} ms; buckets moved back with it");
        (now_ms, true)
    }

    /// The GCRA step, in time scaled by `requests` so one token is exactly `unit_ms`.
    fn gcra(&self, tat: u128, cost: u32, now_ms: u64) -> (Verdict, u128) {
        let requests = u128::from(self.rate.requests);
        let unit = self.unit();
        let now = u128::from(now_ms) * requests;
        let capacity = u128::from(self.rate.burst) * unit;
        let tat = tat.max(now);
        let new_tat = tat + u128::from(cost) * unit;
        // Rounded up twice: to the millisecond the host clock can reach, then to the second.
        let to_secs = |scaled: u128| u64::try_from(scaled.div_ceil(requests).div_ceil(1000)).unwrap_or(u64::MAX);
        let tokens = |until_full: u128| u64::try_from(capacity.saturating_sub(until_full) / unit).unwrap_or(u64::MAX);
        if new_tat - now <= capacity {
            let verdict = Verdict {
                allowed: true,
                remaining: tokens(new_tat - now),
                reset_secs: to_secs(new_tat - now),
                retry_after_secs: 0,
                owed_until: new_tat,
                at_ms: now_ms,
            };
            (verdict, new_tat)
        } else {
            let verdict = Verdict {
                allowed: false,
                remaining: tokens(tat - now),
                reset_secs: to_secs(tat - now),
                retry_after_secs: to_secs(new_tat - now - capacity).max(1),
                owed_until: 0,
                at_ms: now_ms,
            };
            (verdict, tat)
        }
    }
}

/// The slot holding `fingerprint`, if any.
fn slot_of(set: &[u8], fingerprint: &[u8; FINGERPRINT]) -> Option<usize> {
    (0..WAYS).find(|&slot| {
        let start = HEADER + slot * SLOT;
        set.get(start..start + FINGERPRINT) == Some(&fingerprint[..])
    })
}

/// The slot whose bucket is fullest (empty slots first): evicting it loses the least state.
fn slot_to_evict(set: &[u8]) -> usize {
    (0..WAYS).min_by_key(|&slot| read_tat(set, slot)).unwrap_or(0)
}

fn read_clock(set: &[u8]) -> u64 {
    let mut clock = [0u8; 8];
    if let Some(bytes) = set.get(CLOCK) {
        clock.copy_from_slice(bytes);
    }
    u64::from_le_bytes(clock)
}

fn write_clock(set: &mut [u8], now_ms: u64) {
    if let Some(bytes) = set.get_mut(CLOCK) {
        bytes.copy_from_slice(&now_ms.to_le_bytes());
    }
}

fn tat_range(slot: usize) -> std::ops::Range<usize> {
    let start = HEADER + slot * SLOT + FINGERPRINT + 4;
    start..start + 16
}

fn read_tat(set: &[u8], slot: usize) -> u128 {
    let mut tat = [0u8; 16];
    if let Some(bytes) = set.get(tat_range(slot)) {
        tat.copy_from_slice(bytes);
    }
    u128::from_le_bytes(tat)
}

fn write_tat(set: &mut [u8], slot: usize, tat: u128) {
    if let Some(bytes) = set.get_mut(tat_range(slot)) {
        bytes.copy_from_slice(&tat.to_le_bytes());
    }
}

fn write_slot(set: &mut [u8], slot: usize, fingerprint: &[u8; FINGERPRINT], tat: u128) {
    let start = HEADER + slot * SLOT;
    if let Some(bytes) = set.get_mut(start..start + FINGERPRINT) {
        bytes.copy_from_slice(fingerprint);
    }
    write_tat(set, slot, tat);
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::testkit::{FakeStore, RacingStore};
    use wasm_bindgen_test::wasm_bindgen_test;

    const NOW: u64 = 1_767_225_600_000;
    const PLACEMENT: Placement = Placement([7; 16]);

    fn descriptor(value: &str) -> Descriptor {
        vec![("client".to_owned(), value.to_owned())]
    }

    fn buckets(requests: u32, per: Unit, burst: u32, sets: u32) -> Buckets {
        buckets_of(b"plugin", Rate { requests, per, burst }, sets)
    }

    /// The buckets of a config with this identity, alone in its namespace.
    fn buckets_of(identity: &[u8], rate: Rate, sets: u32) -> Buckets {
        Buckets::new(Rc::new(Namespace::new("rate_limit", identity, sets)), 0, rate, sets)
    }

    /// The shared-data key a bucket's set is stored under.
    fn stored_at(b: &Buckets, store: &FakeStore, key: &BucketKey) -> String {
        b.set_name(store, NOW, key.set).unwrap()
    }

    /// Two workers take from a set that does not exist yet (a host that skipped the start hook):
    /// the one that writes second does not wipe the token the first took.
    #[wasm_bindgen_test(unsupported = test)]
    fn takes_from_a_set_two_workers_create_at_once_are_both_counted() {
        let store = FakeStore::default();
        let b = buckets(1, Unit::Minute, 2, 1);
        let key = b.key(&PLACEMENT, &descriptor("alice"), &[]);
        let set = stored_at(&b, &store, &key);
        let racing = RacingStore::new(&store, &set, |store: &FakeStore| {
            assert!(b.take(store, &key, 1, NOW).unwrap().allowed);
        });
        assert!(b.take(&racing, &key, 1, NOW).unwrap().allowed);
        assert!(
            !b.take(&store, &key, 1, NOW).unwrap().allowed,
            "a burst of 2 gave a third token"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let store = FakeStore::default();
        let b = buckets(3, Unit::Minute, 3, 16);
        let key = b.key(&PLACEMENT, &descriptor("alice"), &[]);
        let remaining: Vec<u64> = (0..3)
            .map(|_| b.take(&store, &key, 1, NOW).unwrap().remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = b.take(&store, &key, 1, NOW).unwrap();
        assert!(!refused.allowed);
        assert_eq!(
            (refused.remaining, refused.retry_after_secs, refused.reset_secs),
            (0, 20, 60)
        );
        // One token every 20 s: not at 19.999 s, exactly at 20 s.
        assert!(!b.take(&store, &key, 1, NOW + 19_999).unwrap().allowed);
        let again = b.take(&store, &key, 1, NOW + 20_000).unwrap();
        assert!(again.allowed);
        assert_eq!(again.remaining, 0);
        assert!(!b.take(&store, &key, 1, NOW + 20_000).unwrap().allowed);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn slow_rates_refill_without_rounding_tokens_away() {
        // 7 per hour: one token every 514.28... s. Frequent refused calls must not lose the fraction.
        let store = FakeStore::default();
        let b = buckets(7, Unit::Hour, 1, 16);
        let key = b.key(&PLACEMENT, &descriptor("bob"), &[]);
        assert!(b.take(&store, &key, 1, NOW).unwrap().allowed);
        let mut t = NOW;
        while !b.take(&store, &key, 1, t).unwrap().allowed {
            t += 1000;
        }
        assert_eq!((t - NOW) / 1000, 515, "3600/7 s, rounded up to the second of the probe");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn retry_after_is_never_early_when_a_token_takes_a_fraction_of_a_millisecond() {
        // 7 per second: a token every 142.857... ms. Ten drained, then eight asked for 142 ms
        // later: they pass after 1000.857 ms, i.e. at 1001 ms on the host's millisecond clock,
        // so Retry-After is 2 s (it said 1 s when the fraction was rounded down first).
        let store = FakeStore::default();
        let b = buckets(7, Unit::Second, 10, 16);
        let key = b.key(&PLACEMENT, &descriptor("dave"), &[]);
        assert!(b.take(&store, &key, 10, NOW).unwrap().allowed);
        let refused = b.take(&store, &key, 8, NOW + 142).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 2);
        assert!(!b.take(&store, &key, 8, NOW + 142 + 1000).unwrap().allowed);
        assert!(b.take(&store, &key, 8, NOW + 142 + 1001).unwrap().allowed);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn costs_and_bursts() {
        let store = FakeStore::default();
        let b = buckets(10, Unit::Second, 20, 16);
        let key = b.key(&PLACEMENT, &descriptor("carol"), &[]);
        assert_eq!(b.take(&store, &key, 15, NOW).unwrap().remaining, 5);
        let refused = b.take(&store, &key, 6, NOW).unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 1, "0.1 s rounds up to a whole second");
        assert!(b.take(&store, &key, 5, NOW).unwrap().allowed);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn keys_are_separate_and_state_is_shared_through_the_store() {
        let store = FakeStore::default();
        let b = buckets(1, Unit::Hour, 1, 16);
        let (alice, bob) = (
            b.key(&PLACEMENT, &descriptor("alice"), &[]),
            b.key(&PLACEMENT, &descriptor("bob"), &[]),
        );
        assert!(b.take(&store, &alice, 1, NOW).unwrap().allowed);
        assert!(b.take(&store, &bob, 1, NOW).unwrap().allowed);
        // A second worker: same config, same store.
        let other_worker = buckets(1, Unit::Hour, 1, 16);
        assert!(!other_worker.take(&store, &alice, 1, NOW).unwrap().allowed);
        // Another config running at the same time has buckets of its own.
        let other_config = buckets_of(
            b"other",
            Rate {
                requests: 1,
                per: Unit::Hour,
                burst: 1,
            },
            16,
        );
        assert_ne!(stored_at(&other_config, &store, &alice), stored_at(&b, &store, &alice));
        assert!(other_config.take(&store, &alice, 1, NOW).unwrap().allowed);
    }

    /// A config change hands the old config's shared data on to the new one: its buckets start
    /// full, whatever the old config's held.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_config_that_takes_over_a_namespace_starts_from_full_buckets() {
        let store = FakeStore::default();
        let rate = Rate {
            requests: 1,
            per: Unit::Hour,
            burst: 1,
        };
        let old = buckets_of(b"old", rate, 1);
        old.create_missing(&store, NOW);
        let alice = old.key(&PLACEMENT, &descriptor("alice"), &[]);
        assert!(old.take(&store, &alice, 1, NOW).unwrap().allowed);
        assert!(!old.take(&store, &alice, 1, NOW).unwrap().allowed);

        let later = NOW + shared::namespace::LEASE_MS + 1;
        let new = buckets_of(b"new", rate, 1);
        new.create_missing(&store, later);
        assert_eq!(
            new.set_name(&store, later, 0),
            old.set_name(&store, NOW, 0),
            "the same key"
        );
        assert!(new.take(&store, &alice, 1, later).unwrap().allowed);
        assert!(!new.take(&store, &alice, 1, later).unwrap().allowed);
    }

    /// A client that drained its bucket cannot have it evicted by sending descriptors it worked
    /// out to share its set: worked out offline, without this Envoy's secret, they land elsewhere.
    #[wasm_bindgen_test(unsupported = test)]
    fn descriptors_that_share_a_set_cannot_be_worked_out_without_the_secret() {
        let store = FakeStore::default();
        let b = buckets(1, Unit::Minute, 1, 1024);
        b.create_missing(&store, NOW);
        let guess = Placement([0; 16]);
        let target = descriptor("192.0.2.7 /login");
        let in_target_set =
            |placement: &Placement, d: &Descriptor| b.key(placement, d, &[]).set == b.key(placement, &target, &[]).set;
        let colliding: Vec<Descriptor> = (0..)
            .map(|i| descriptor(&format!("192.0.2.7 /junk{i}")))
            .filter(|d| in_target_set(&guess, d))
            .take(8)
            .collect();
        assert!(colliding.iter().all(|d| !in_target_set(&PLACEMENT, d)));

        let login = b.key(&PLACEMENT, &target, &[]);
        assert!(b.take(&store, &login, 1, NOW).unwrap().allowed);
        for (i, junk) in colliding.iter().enumerate() {
            let key = b.key(&PLACEMENT, junk, &[]);
            assert!(b.take(&store, &key, 1, NOW + 1 + i as u64).unwrap().allowed);
        }
        assert!(!b.take(&store, &login, 1, NOW + 20).unwrap().allowed, "not evicted");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn memory_is_bounded_and_a_flood_evicts_the_fullest_bucket() {
        let store = FakeStore::default();
        let b = buckets(1, Unit::Hour, 2, 1);
        b.create_missing(&store, NOW);
        let victim = b.key(&PLACEMENT, &descriptor("victim"), &[]);
        assert!(b.take(&store, &victim, 1, NOW).unwrap().allowed);
        assert!(b.take(&store, &victim, 1, NOW).unwrap().allowed);
        // Three other keys take one token each, at later times: the victim's bucket is the
        // emptiest, so it survives while the set (4 ways) is shared by all four.
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            assert!(
                b.take(
                    &store,
                    &b.key(&PLACEMENT, &descriptor(name), &[]),
                    1,
                    NOW + 1 + i as u64
                )
                .unwrap()
                .allowed
            );
        }
        assert!(!b.take(&store, &victim, 1, NOW + 10).unwrap().allowed, "state kept");
        assert_eq!(store.get(&stored_at(&b, &store, &victim)).unwrap().0.len(), SET);
        // A fifth key evicts the fullest of a, b, c; the victim stays limited.
        assert!(
            b.take(&store, &b.key(&PLACEMENT, &descriptor("d"), &[]), 1, NOW + 20)
                .unwrap()
                .allowed
        );
        assert!(!b.take(&store, &victim, 1, NOW + 30).unwrap().allowed);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_new_key_gets_a_full_bucket_never_the_evicted_ones_state() {
        let store = FakeStore::default();
        let b = buckets(1, Unit::Hour, 3, 1);
        b.create_missing(&store, NOW);
        // Four keys drain their buckets: every slot of the one set is empty of tokens.
        for name in ["a", "b", "c", "d"] {
            let key = b.key(&PLACEMENT, &descriptor(name), &[]);
            for _ in 0..3 {
                assert!(b.take(&store, &key, 1, NOW).unwrap().allowed);
            }
            assert!(!b.take(&store, &key, 1, NOW).unwrap().allowed);
        }
        // A flood of new keys: each one evicts a drained bucket and starts full.
        for i in 0..20 {
            let verdict = b
                .take(
                    &store,
                    &b.key(&PLACEMENT, &descriptor(&format!("new-{i}")), &[]),
                    1,
                    NOW,
                )
                .unwrap();
            assert!(verdict.allowed, "new-{i} inherited another client's bucket");
            assert_eq!(verdict.remaining, 2, "new-{i}");
        }
    }

    /// The host's wall clock stepping back (NTP, a resumed VM) leaves every bucket with the tokens
    /// it had, and refilling from there at the rate, never in debt for the length of the step.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_clock_step_back_leaves_every_bucket_as_it_was() {
        let store = FakeStore::default();
        let b = buckets(100, Unit::Second, 100, 16);
        let key = b.key(&PLACEMENT, &descriptor("alice"), &[]);
        assert_eq!(b.take(&store, &key, 1, NOW).unwrap().remaining, 99);
        let after_step = b.take(&store, &key, 1, NOW - 60_000).unwrap();
        assert!(after_step.allowed, "{after_step:?}");
        assert_eq!(after_step.remaining, 98);

        // A drained bucket: a token every minute, a step back of an hour.
        let b = buckets(1, Unit::Minute, 2, 16);
        let key = b.key(&PLACEMENT, &descriptor("bob"), &[]);
        assert!(b.take(&store, &key, 2, NOW).unwrap().allowed);
        let stepped = NOW - 3_600_000;
        let refused = b.take(&store, &key, 1, stepped).unwrap();
        assert!(!refused.allowed);
        assert_eq!((refused.retry_after_secs, refused.reset_secs), (60, 120));
        assert!(!b.take(&store, &key, 1, stepped + 59_999).unwrap().allowed);
        let refilled = b.take(&store, &key, 1, stepped + 60_000).unwrap();
        assert!(refilled.allowed, "{refilled:?}");
        assert_eq!(refilled.remaining, 0);
    }

    /// A give-back returns only the tokens still owed (README: "a request whose answer comes after
    /// its tokens refilled gives back nothing, so a bucket never holds more than its burst"). After
    /// the clock steps back, the set's TATs move back with it but the take's `owed_until` does
    /// not: a token that refilled since is given back in full.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_give_back_after_a_clock_step_back_returns_no_token_that_refilled() {
        let store = FakeStore::default();
        // A token a second, a burst of one; one set, so both clients share it.
        let b = buckets(1, Unit::Second, 1, 1);
        let alice = b.key(&PLACEMENT, &descriptor("alice"), &[]);
        let bob = b.key(&PLACEMENT, &descriptor("bob"), &[]);
        let taken = b.take(&store, &alice, 1, NOW).unwrap();
        assert!(taken.allowed);
        // The clock steps back 10 s; another client's request sees it first.
        let stepped = NOW - 10_000;
        assert!(b.take(&store, &bob, 1, stepped).unwrap().allowed);
        // 2 s later alice's token has refilled, and she spends it.
        assert!(b.take(&store, &alice, 1, stepped + 2_000).unwrap().allowed);
        // Now her first request is refused elsewhere: its token came back long ago.
        b.give_back(&store, &alice, 1, &taken, stepped + 2_000).unwrap();
        let third = b.take(&store, &alice, 1, stepped + 2_000).unwrap();
        assert!(!third.allowed, "two requests at once on a burst of 1: {third:?}");
    }

    /// Two workers' readings of the clock cross (one read it first, stored last): time does not
    /// go back for the bucket, and no token is handed out early.
    #[wasm_bindgen_test(unsupported = test)]
    fn readings_a_moment_behind_the_bucket_get_no_token_early() {
        let store = FakeStore::default();
        let b = buckets(1, Unit::Second, 1, 16);
        let key = b.key(&PLACEMENT, &descriptor("carol"), &[]);
        assert!(b.take(&store, &key, 1, NOW).unwrap().allowed);
        assert!(b.take(&store, &key, 1, NOW + 1000).unwrap().allowed);
        let behind = b.take(&store, &key, 1, NOW + 600).unwrap();
        assert!(!behind.allowed);
        assert_eq!(behind.retry_after_secs, 1);
        assert!(!b.take(&store, &key, 1, NOW + 1999).unwrap().allowed);
        assert!(b.take(&store, &key, 1, NOW + 2000).unwrap().allowed);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn contention_is_retried_and_bounded() {
        // A store whose CAS always fails: the take gives up instead of spinning.
        struct Contended(FakeStore);
        impl SharedStore for Contended {
            fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
                self.0.get(key)
            }
            fn set(&self, key: &str, value: &[u8], _: Option<u32>) -> Result<(), StoreError> {
                let _ = (key, value);
                Err(StoreError::CasMismatch)
            }
        }
        let store = Contended(FakeStore::default());
        let b = buckets(1, Unit::Second, 1, 1);
        b.create_missing(&store.0, NOW);
        assert_eq!(
            b.take(&store, &b.key(&PLACEMENT, &descriptor("x"), &[]), 1, NOW),
            Err(StoreError::CasMismatch)
        );
    }

    /// Properties of the GCRA arithmetic, over random rates, bursts, costs and request times.
    #[cfg(not(target_family = "wasm"))]
    mod properties {
        use proptest::prelude::*;

        use super::*;

        const UNITS: [Unit; 4] = [Unit::Second, Unit::Minute, Unit::Hour, Unit::Day];

        /// A rate, and request `(gap before it in ms, cost)` pairs, with gaps around the time one
        /// token takes so that both refusals and refills happen.
        fn scenario() -> impl Strategy<Value = (Rate, Vec<(u64, u32)>)> {
            (1u32..=40, 0usize..UNITS.len(), 1u32..=12).prop_flat_map(|(requests, unit, extra)| {
                let per = UNITS[unit];
                let burst = extra.max(1);
                let token_ms = per.seconds() * 1000 / u64::from(requests);
                let step = (0..=token_ms.saturating_mul(3).max(1), 1..=burst);
                (
                    Just(Rate { requests, per, burst }),
                    proptest::collection::vec(step, 1..40),
                )
            })
        }

        fn unit_ms(rate: &Rate) -> u128 {
            u128::from(rate.per.seconds()) * 1000
        }

        /// A second store holding the same bucket state, to ask "what if" without changing it.
        fn fork(store: &FakeStore) -> FakeStore {
            let copy = FakeStore::default();
            for (key, value) in store.entries() {
                copy.set(&key, &value, None).unwrap();
            }
            copy
        }

        fn allowed_at(b: &Buckets, store: &FakeStore, key: &BucketKey, cost: u32, at_ms: u64) -> bool {
            b.take(&fork(store), key, cost, at_ms).unwrap().allowed
        }

        /// The first millisecond from `from_ms` on at which `cost` tokens can be taken.
        fn available_at(b: &Buckets, store: &FakeStore, key: &BucketKey, cost: u32, from_ms: u64) -> u64 {
            if allowed_at(b, store, key, cost, from_ms) {
                return from_ms;
            }
            // Refused at `lo`, allowed at `hi` (by then the bucket is full whatever happened).
            let (mut lo, mut hi) = (
                from_ms,
                from_ms + 2 * u64::from(b.rate.burst) * b.rate.per.seconds() * 1000,
            );
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if allowed_at(b, store, key, cost, mid) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            hi
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            /// Over any window [t_i, t_j] of a request sequence, what is allowed never exceeds
            /// the burst plus the rate times the window: cost * unit <= burst * unit + requests * (t_j - t_i).
            #[test]
            fn never_more_than_burst_plus_rate_times_elapsed((rate, steps) in scenario()) {
                let store = FakeStore::default();
                let b = buckets_of(b"prop", rate, 1);
                let key = b.key(&PLACEMENT, &descriptor("p"), &[]);
                let mut now = NOW;
                let mut allowed: Vec<(u64, u32)> = Vec::new();
                for (gap, cost) in steps {
                    now += gap;
                    if b.take(&store, &key, cost, now).unwrap().allowed {
                        allowed.push((now, cost));
                    }
                }
                let unit = unit_ms(&rate);
                for (i, (start, _)) in allowed.iter().enumerate() {
                    let mut taken = 0u128;
                    for (end, cost) in &allowed[i..] {
                        taken += u128::from(*cost);
                        let budget = u128::from(rate.burst) * unit + u128::from(rate.requests) * u128::from(end - start);
                        prop_assert!(taken * unit <= budget, "{taken} tokens in {} ms at {rate:?}", end - start);
                    }
                }
            }

            /// A refused request leaves the bucket exactly as it was (bytes and CAS version).
            #[test]
            fn refusals_do_not_change_state((rate, steps) in scenario()) {
                let store = FakeStore::default();
                let b = buckets_of(b"prop", rate, 1);
                let key = b.key(&PLACEMENT, &descriptor("p"), &[]);
                let set = stored_at(&b, &store, &key);
                let mut now = NOW;
                for (gap, cost) in steps {
                    now += gap;
                    let before = store.get(&set);
                    let verdict = b.take(&store, &key, cost, now).unwrap();
                    if !verdict.allowed {
                        prop_assert_eq!(store.get(&set), before);
                    }
                }
            }

            /// A step back of the clock moves the bucket's future back with it: from the step on,
            /// every request gets the verdict it would have got that long after the bucket's last
            /// update without the step.
            #[test]
            fn a_clock_step_back_moves_the_buckets_future_back_with_it(
                (rate, steps) in scenario(),
                back in (CLOCK_STEP_MS + 1)..=86_400_000u64,
                after in proptest::collection::vec((0u64..=5_000, 1u32..=12), 1..20),
            ) {
                let store = FakeStore::default();
                let b = buckets_of(b"prop", rate, 1);
                let key = b.key(&PLACEMENT, &descriptor("p"), &[]);
                let mut now = NOW;
                let mut updated = NOW;
                for (gap, cost) in steps {
                    now += gap;
                    if b.take(&store, &key, cost, now).unwrap().allowed {
                        updated = now;
                    }
                }
                let (unstepped, stepped) = (fork(&store), fork(&store));
                let mut elapsed = 0;
                for (i, (gap, cost)) in after.into_iter().enumerate() {
                    // The first request comes at the step itself.
                    if i > 0 {
                        elapsed += gap;
                    }
                    let cost = cost.min(rate.burst);
                    let expected = b.take(&unstepped, &key, cost, updated + elapsed).unwrap();
                    let got = b.take(&stepped, &key, cost, updated - back + elapsed).unwrap();
                    // What a client is told (the TATs themselves differ by the step).
                    let shown = |v: Verdict| (v.allowed, v.remaining, v.reset_secs, v.retry_after_secs);
                    prop_assert_eq!(shown(got), shown(expected), "{} ms after a step back of {} ms", elapsed, back);
                }
            }

            /// Retry-After is exact: the whole seconds until the refused request would pass
            /// (rounded up; at least 1), never earlier. Likewise the reset time: the whole seconds
            /// until the bucket is full again. Each request is also asked just over a second before
            /// it could pass, where rounding a fraction of a millisecond the wrong way shows.
            #[test]
            fn retry_after_and_reset_are_exact((rate, steps) in scenario()) {
                let store = FakeStore::default();
                let b = buckets_of(b"prop", rate, 1);
                let key = b.key(&PLACEMENT, &descriptor("p"), &[]);
                let mut now = NOW;
                for (gap, cost) in steps {
                    now += gap;
                    let passes_at = available_at(&b, &store, &key, cost, now);
                    for at in [now, passes_at.saturating_sub(1001).max(now)] {
                        let verdict = b.take(&fork(&store), &key, cost, at).unwrap();
                        if !verdict.allowed {
                            let exact = (passes_at - at).div_ceil(1000).max(1);
                            prop_assert_eq!(verdict.retry_after_secs, exact, "{:?} at {:?}, cost {}", verdict, rate, cost);
                        }
                    }
                    // The reset time describes the bucket after this take (a refusal leaves it as it was).
                    let verdict = b.take(&store, &key, cost, now).unwrap();
                    let full_at = available_at(&b, &store, &key, rate.burst, now);
                    prop_assert_eq!(verdict.reset_secs, (full_at - now).div_ceil(1000), "{:?} at {:?}", verdict, rate);
                }
            }
        }
    }
}
