//! The host's native signature check, detected on first use.

use std::cell::Cell;

use super::abi::{self, Status};
use crate::foreign::{decode_verify_result, encode_verify_arguments, VERIFY_SIGNATURE};
use crate::ports::HashAlg;

thread_local! {
    /// `Some(false)` once the host has said it has no such function: never ask again.
    static AVAILABLE: Cell<Option<bool>> = const { Cell::new(None) };
}

pub fn verify_signature(hash: HashAlg, spki_der: &[u8], signature: &[u8], message: &[u8]) -> Option<bool> {
    if AVAILABLE.get() == Some(false) {
        return None;
    }
    let arguments = encode_verify_arguments(hash, spki_der, signature, message);
    match abi::call_foreign_function(VERIFY_SIGNATURE, &arguments) {
        Ok(Some(result)) => {
            AVAILABLE.set(Some(true));
            decode_verify_result(&result)
        }
        Ok(None) => Some(false),
        Err(Status::NOT_FOUND) => {
            log::info!("host has no {VERIFY_SIGNATURE} function: signatures are checked in wasm");
            AVAILABLE.set(Some(false));
            None
        }
        // The host refused these arguments (e.g. a key it cannot import): let the caller decide.
        Err(_) => None,
    }
}
