//! Fakes of the ports and a small driver, so filter cores are tested the way the adapter runs them.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::config::ConfigError;
use crate::filter::FilterRoot;
use crate::metrics::{Counter, MetricRegistry};
use crate::ports::{Ctx, NoHostCrypto, Properties, SharedStore, StoreError};

/// In-memory shared data with Envoy's CAS semantics: one version counter for every key, and a
/// write to a key that does not exist creates it whatever version it names.
#[derive(Default)]
pub struct FakeStore {
    entries: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    last_version: Cell<u32>,
    refuse_writes: Cell<bool>,
}

impl FakeStore {
    /// Every key and value, by key.
    pub fn entries(&self) -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<(String, Vec<u8>)> = self
            .entries
            .borrow()
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        all.sort();
        all
    }

    /// The keys that start with `prefix`, sorted.
    pub fn keys_starting_with(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .entries
            .borrow()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// From now on, every write fails as a host that refuses it would.
    pub fn fail_writes(&self, refuse: bool) {
        self.refuse_writes.set(refuse);
    }
}

impl SharedStore for FakeStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.entries.borrow().get(key).cloned()
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        if self.refuse_writes.get() {
            return Err(StoreError::Failed);
        }
        let mut entries = self.entries.borrow_mut();
        let current = entries.get(key).map(|(_, version)| *version);
        if current.is_some() && cas.is_some() && cas != current {
            return Err(StoreError::CasMismatch);
        }
        let next = self.last_version.get().wrapping_add(1).max(1);
        self.last_version.set(next);
        entries.insert(key.to_owned(), (value.to_vec(), next));
        Ok(())
    }
}

/// Shared data another worker uses between two of this worker's calls, as Envoy's workers can:
/// each call is atomic, a sequence of them is not. The other worker's turn runs once, right after
/// the `nth` read (or write) of a key `matches` picks.
pub struct RacingStore<'a> {
    store: &'a FakeStore,
    matches: KeyPredicate<'a>,
    on_writes: bool,
    calls_left: Cell<u32>,
    other_worker: RefCell<Option<OtherWorkersWrite<'a>>>,
}

type KeyPredicate<'a> = Box<dyn Fn(&str) -> bool + 'a>;
type OtherWorkersWrite<'a> = Box<dyn FnOnce(&FakeStore) + 'a>;

impl<'a> RacingStore<'a> {
    /// The write runs after the first read of a key whose name ends with `suffix`.
    pub fn new(store: &'a FakeStore, suffix: &'a str, other_worker: impl FnOnce(&FakeStore) + 'a) -> Self {
        Self::after_read(store, 1, move |key| key.ends_with(suffix), other_worker)
    }

    pub fn after_read(
        store: &'a FakeStore,
        nth: u32,
        matches: impl Fn(&str) -> bool + 'a,
        other_worker: impl FnOnce(&FakeStore) + 'a,
    ) -> Self {
        Self {
            store,
            matches: Box::new(matches),
            on_writes: false,
            calls_left: Cell::new(nth),
            other_worker: RefCell::new(Some(Box::new(other_worker))),
        }
    }

    /// The other worker's turn runs after the `nth` write (successful or not) of a key
    /// `matches` picks.
    pub fn after_write(
        store: &'a FakeStore,
        nth: u32,
        matches: impl Fn(&str) -> bool + 'a,
        other_worker: impl FnOnce(&FakeStore) + 'a,
    ) -> Self {
        Self {
            on_writes: true,
            ..Self::after_read(store, nth, matches, other_worker)
        }
    }

    fn counted(&self, key: &str, write: bool) {
        if write != self.on_writes || !(self.matches)(key) {
            return;
        }
        self.calls_left.set(self.calls_left.get().saturating_sub(1));
        if self.calls_left.get() == 0 {
            if let Some(turn) = self.other_worker.borrow_mut().take() {
                turn(self.store);
            }
        }
    }
}

impl SharedStore for RacingStore<'_> {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        let value = self.store.get(key);
        self.counted(key, false);
        value
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let result = self.store.set(key, value, cas);
        self.counted(key, true);
        result
    }
}

/// Host properties and filter state, set by the test.
#[derive(Default)]
pub struct FakeProperties {
    pub properties: HashMap<Vec<String>, Vec<u8>>,
    pub filter_state: HashMap<String, Vec<u8>>,
}

impl Properties for FakeProperties {
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let key: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        self.properties.get(&key).cloned()
    }

    fn filter_state(&self, key: &str) -> Option<Vec<u8>> {
        self.filter_state.get(key).cloned()
    }
}

/// A host for one test: a clock, a store and properties.
pub struct FakeHost {
    pub now_ms: u64,
    pub store: FakeStore,
    pub properties: FakeProperties,
}

impl Default for FakeHost {
    fn default() -> Self {
        // 2026-01-01T00:00:00Z: a fixed, realistic "now".
        Self {
            now_ms: 1_767_225_600_000,
            store: FakeStore::default(),
            properties: FakeProperties::default(),
        }
    }
}

impl FakeHost {
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            now_ms: self.now_ms,
            store: &self.store,
            properties: &self.properties,
            crypto: &NoHostCrypto,
        }
    }
}

/// A configured root plus its counter names, as the adapter would hold it.
pub struct Configured<R> {
    pub root: Rc<R>,
    pub metrics: MetricRegistry,
}

impl<R: FilterRoot> Configured<R> {
    pub fn new(json: &str) -> Result<Self, ConfigError> {
        let mut metrics = MetricRegistry::new(R::NAME);
        let root = R::configure(json.as_bytes(), &mut metrics)?;
        Ok(Self {
            root: Rc::new(root),
            metrics,
        })
    }

    pub fn filter(&self) -> R::Filter {
        R::new_filter(&self.root)
    }

    /// Short names of the counters a step bumps, for readable assertions.
    pub fn counter_names(&self, counters: &[Counter]) -> Vec<String> {
        counters
            .iter()
            .filter_map(|c| self.metrics.name(*c))
            .map(str::to_owned)
            .collect()
    }
}

/// `value` (a JSON object) with the members of `changes` set; a `null` member removes that member.
pub fn with(mut value: serde_json::Value, changes: serde_json::Value) -> serde_json::Value {
    if let (Some(object), serde_json::Value::Object(changes)) = (value.as_object_mut(), changes) {
        for (k, v) in changes {
            if v.is_null() {
                object.remove(&k);
            } else {
                object.insert(k, v);
            }
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn fake_store_enforces_cas() {
        let store = FakeStore::default();
        assert_eq!(store.get("k"), None);
        store.set("k", b"1", None).unwrap();
        let (value, cas) = store.get("k").unwrap();
        assert_eq!(value, b"1");
        store.set("k", b"2", Some(cas)).unwrap();
        assert_eq!(store.set("k", b"3", Some(cas)), Err(StoreError::CasMismatch));
        assert_eq!(store.get("k").unwrap().0, b"2");
        store.set("absent", b"1", Some(cas)).unwrap();
        assert_eq!(
            store.get("absent").unwrap().0,
            b"1",
            "a missing key is created as Envoy does"
        );
    }
}
