//! cargo-fuzz entry point of the `routeros_colon` target (see `rds_csi_fuzz::targets::routeros_colon`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::routeros_colon;

fuzz_target!(|data: &[u8]| {
    routeros_colon::routeros_colon(data);
});
