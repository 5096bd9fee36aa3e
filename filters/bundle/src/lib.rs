//! `apisec_bundle.wasm`: every filter of the workspace in one proxy-wasm module.
//!
//! With one `.wasm` per filter, Envoy runs one VM per filter on each worker (and on the main
//! thread), each with its own V8 isolate, heap and compile: the full chain costs five times that.
//! This module links all five filter crates; give every plugin of the chain the same `vm_config`
//! (same `vm_id`, same code, same VM configuration) and Envoy runs one VM per worker that hosts
//! them all. Each plugin still has its own root context, config, counters and tick, and picks its
//! filter by its `root_id`, which is the filter's name, as for the single-filter modules:
//!
//! | `root_id` | filter |
//! |---|---|
//! | `header_scrub` | [`HeaderScrub`] |
//! | `phantom_token` | [`PhantomToken`] |
//! | `jwt_auth` | [`JwtAuth`] |
//! | `scope_gate` | [`ScopeGate`] |
//! | `rate_limit` | [`RateLimit`] |
//! | `chain` | the filters it lists, as members of one plugin ([`shared::chain`]) |
//!
//! A `root_id` that names none of them is refused at configure time, with the list, so Envoy does
//! not start the plugin (see `envoy/gateway-bundle.yaml`).
//!
//! There is no code here besides the links: each filter crate's
//! [`export_filter!`](shared::export_filter) registers its root with the adapter, which owns the
//! module's one entry point and the choice by `root_id` (`filters/shared/src/proxy/module.rs`).
//! What the filters keep in the VM-wide shared data and counters is namespaced by filter
//! (`apisec.<filter>.…`), so filters in one VM do not meet there.

pub use header_scrub::HeaderScrub;
pub use jwt_auth::JwtAuth;
pub use phantom_token::PhantomToken;
pub use rate_limit::RateLimit;
pub use scope_gate::ScopeGate;

use shared::FilterRoot;

// root_id `chain`: the filters below as members of one plugin (`envoy/gateway-chain.yaml`).
shared::export_chain!();

/// The `root_id` of every filter this module hosts, in chain order.
pub const ROOT_IDS: [&str; 5] = [
    HeaderScrub::NAME,
    PhantomToken::NAME,
    JwtAuth::NAME,
    ScopeGate::NAME,
    RateLimit::NAME,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_ids_are_the_filter_names_of_the_single_modules() {
        assert_eq!(
            ROOT_IDS,
            ["header_scrub", "phantom_token", "jwt_auth", "scope_gate", "rate_limit"]
        );
    }
}
