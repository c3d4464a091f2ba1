//! cargo-fuzz entry point of the `csi_capacity` target (see `rds_csi_fuzz::targets::csi_capacity`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::csi_capacity;

fuzz_target!(|data: &[u8]| {
    csi_capacity::csi_capacity(data);
});
