//! header-scrub's JSON config, parsed and validated as `on_configure` does, on arbitrary bytes; an
//! accepted config then serves one request (see `apisec_fuzz::check_config`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| apisec_fuzz::check_config::<header_scrub::HeaderScrub>(data));
