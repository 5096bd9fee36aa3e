//! The one proxy-wasm adapter: the only code in the workspace that names the SDK.
//!
//! It reads what the host has (headers as bytes, config, time), hands it to a pure core, and
//! carries out the [`Step`](crate::Step) the core returns. Every host call's error is handled
//! here instead of unwrapped: a panic would trap the VM and, under `FAIL_CLOSED`, fail every
//! request on the worker.

mod crypto;
mod host;
mod http;
mod root;
mod waiters;

pub use proxy_wasm::main as __proxy_main;

use proxy_wasm::types::LogLevel;

use crate::filter::FilterRoot;

/// Registers `R` as this module's root context. Called from [`export_filter!`](crate::export_filter).
pub fn start<R: FilterRoot>() {
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| Box::new(root::RootAdapter::<R>::new(context_id)));
}
