//! The shared runtime of the gateway filters.
//!
//! Filter cores are plain libraries: they take headers, the time and ports, and return effects
//! ([`Step`]). The only code that talks to a proxy-wasm host lives in [`proxy`], compiled only for
//! `wasm32-wasip1`; a filter crate exports itself with [`export_filter!`].

// The derived config readers name `::shared::config`, here too.
extern crate self as shared;

pub mod certificate;
pub mod chain;
pub mod config;
pub mod deny;
pub mod effects;
pub mod filter;
pub mod foreign;
pub mod handoff;
pub mod headers;
pub mod ip;
pub mod json;
pub mod metrics;
pub mod namespace;
pub mod ports;
pub mod protobuf;
pub mod query;
pub mod regex;
pub mod route;
pub mod secret;
pub mod source;
pub mod wire;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
pub mod proxy;

pub use config::{ConfigError, FieldPath};
pub use deny::{Deny, Realm};
pub use effects::{
    Action, CallOutcome, GrpcCall, GrpcOutcome, HeaderEdit, HttpCall, LocalReply, RootStep, StateWrite, Step,
};
pub use filter::{FilterRoot, HttpFilter};
pub use headers::{HeaderName, Headers};
pub use metrics::{Counter, MetricRegistry};
pub use namespace::Namespace;
pub use ports::{Ctx, HashAlg, HostCrypto, NoHostCrypto, Properties, SharedStore, StoreError};
pub use secret::Secret;

/// Makes a filter crate a proxy-wasm module whose root context runs `$root`.
///
/// The module's entry point (`_initialize`) lives in [`proxy`], once for the whole module; this
/// macro only adds `$root` to the filters the module hosts, from a static constructor that
/// `_initialize` runs before the host creates any context. So the filter crate is a complete
/// module on its own (`<filter>.wasm`, which serves its one filter whatever the plugin's
/// `root_id`), and linking several filter crates into one cdylib (`filters/bundle`) gives one
/// module that hosts them all, each plugin picking its filter by `root_id` ([`FilterRoot::NAME`]),
/// with no duplicate entry point.
///
/// Expands to nothing outside `wasm32-wasip1`, so the same crate builds for host tests.
#[macro_export]
macro_rules! export_filter {
    ($root:ty) => {
        #[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
        const _: () = {
            // A static constructor: on wasm, `__wasm_call_ctors` runs what `.init_array` holds,
            // and `_initialize` calls it first. `#[used]` keeps it through LTO and the linker.
            // (Not an `_initialize` per filter crate: a module linking several would define it
            // once per filter.)
            #[used]
            #[link_section = ".init_array"]
            static REGISTER: extern "C" fn() = $crate::proxy::register::<$root>;
        };
    };
}

/// Adds root_id `chain` ([`chain`]) to a module that links several filters: its filters as
/// members of one plugin. Only such a module pays for the chain's code.
#[macro_export]
macro_rules! export_chain {
    () => {
        #[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
        const _: () = {
            // A static constructor, as in `export_filter!`.
            #[used]
            #[link_section = ".init_array"]
            static REGISTER: extern "C" fn() = $crate::proxy::register_chain;
        };
    };
}
