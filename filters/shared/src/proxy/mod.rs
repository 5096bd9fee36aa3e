//! The one proxy-wasm adapter: the only code in the workspace that talks to the host.
//!
//! [`abi`] is the proxy-wasm ABI itself (the host's functions and the module's exports, the
//! workspace's only `unsafe` code), [`dispatch`] routes the host's callbacks to the contexts it
//! created. The rest reads what the host has (headers as bytes, config, time), hands it to a pure core, and
//! carries out the [`Step`](crate::Step) the core returns. Every host call's error is handled
//! here instead of unwrapped: a panic would trap the VM, and fail requests until Envoy reloads it
//! (`FAIL_RELOAD`) or restarts.

mod abi;
mod crypto;
mod dispatch;
mod host;
mod http;
mod logger;
mod module;
mod root;
mod waiters;

#[doc(hidden)]
pub use module::{register, register_chain};
