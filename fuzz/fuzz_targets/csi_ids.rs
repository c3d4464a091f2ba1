//! cargo-fuzz entry point of the `csi_ids` target (see `rds_csi_fuzz::targets::csi_ids`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::csi_ids;

fuzz_target!(|data: &[u8]| {
    csi_ids::csi_ids(data);
});
