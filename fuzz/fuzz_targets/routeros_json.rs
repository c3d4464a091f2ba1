//! cargo-fuzz entry point of the `routeros_json` target (see `rds_csi_fuzz::targets::routeros_json`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::routeros_json;

fuzz_target!(|data: &[u8]| {
    routeros_json::routeros_json(data);
});
