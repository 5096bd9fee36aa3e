//! The counter convention every filter follows.
//!
//! A filter registers its counters once, at configure time, and gets a [`Counter`] handle per
//! counter; a core bumps counters by returning handles in its [`Step`](crate::Step). The adapter
//! defines each one with the host as `apisec.<filter>.<name>`, so every outcome shows in Envoy's
//! `/stats` and `/stats/prometheus` under one stable prefix, at zero before the first request.

/// The namespace every filter's counters live under.
pub const PREFIX: &str = "apisec";

/// A handle to one registered counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Counter(u16);

impl Counter {
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// The counters of one plugin, in registration order: one filter's, or those of every filter of
/// a chain, each under its own filter's name.
#[derive(Clone, Debug, Default)]
pub struct MetricRegistry {
    /// The filter whose counters register now.
    filter: String,
    /// (filter, name) per handle.
    names: Vec<(String, String)>,
}

impl MetricRegistry {
    pub fn new(filter: &str) -> Self {
        Self {
            filter: filter.to_owned(),
            names: Vec::new(),
        }
    }

    /// Counters registered from now on belong to `filter` (a chain configuring its members).
    pub fn switch_to(&mut self, filter: &str) {
        filter.clone_into(&mut self.filter);
    }

    /// Registers `name` (lowercase, `_` separated) or returns the handle it already has.
    pub fn counter(&mut self, name: &str) -> Counter {
        let filter = &self.filter;
        let position = self
            .names
            .iter()
            .position(|(f, n)| f == filter && n == name)
            .unwrap_or_else(|| {
                self.names.push((filter.clone(), name.to_owned()));
                self.names.len() - 1
            });
        // More than 65 535 counters in one filter would be a config bug; saturating keeps it total.
        Counter(u16::try_from(position).unwrap_or(u16::MAX))
    }

    /// The host-facing name of every counter, indexed like the handles.
    pub fn full_names(&self) -> Vec<String> {
        self.names
            .iter()
            .map(|(filter, name)| format!("{PREFIX}.{filter}.{name}"))
            .collect()
    }

    /// The short name behind a handle.
    pub fn name(&self, counter: Counter) -> Option<&str> {
        self.names.get(counter.index()).map(|(_, name)| name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn counters_get_stable_handles_and_prefixed_names() {
        let mut registry = MetricRegistry::new("header_scrub");
        let a = registry.counter("allowed");
        let b = registry.counter("denied");
        assert_eq!(registry.counter("allowed"), a);
        assert_ne!(a, b);
        assert_eq!(registry.name(b), Some("denied"));
        assert_eq!(
            registry.full_names(),
            vec!["apisec.header_scrub.allowed", "apisec.header_scrub.denied"]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_chain_registers_each_members_counters_under_its_name() {
        let mut registry = MetricRegistry::new("chain");
        registry.switch_to("jwt_auth");
        let jwt = registry.counter("allowed");
        registry.switch_to("scope_gate");
        let scope = registry.counter("allowed");
        assert_ne!(jwt, scope);
        assert_eq!(
            registry.full_names(),
            vec!["apisec.jwt_auth.allowed", "apisec.scope_gate.allowed"]
        );
    }
}
