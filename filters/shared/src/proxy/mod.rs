//! The one proxy-wasm adapter: the only code in the workspace that names the SDK.
//!
//! It reads what the host has (headers as bytes, config, time), hands it to a pure core, and
//! carries out the [`Step`](crate::Step) the core returns. Every host call's error is handled
//! here instead of unwrapped: a panic would trap the VM, and fail requests until Envoy reloads it
//! (`FAIL_RELOAD`) or restarts.

mod crypto;
mod host;
mod http;
mod module;
mod root;
mod waiters;

#[doc(hidden)]
pub use module::{register, register_chain};
