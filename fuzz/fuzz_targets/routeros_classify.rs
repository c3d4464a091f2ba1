//! cargo-fuzz entry point of the `routeros_classify` target (see `rds_csi_fuzz::targets::routeros_classify`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::routeros_classify;

fuzz_target!(|data: &[u8]| {
    routeros_classify::routeros_classify(data);
});
