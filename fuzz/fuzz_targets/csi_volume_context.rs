//! cargo-fuzz entry point of the `csi_volume_context` target (see `rds_csi_fuzz::targets::csi_volume_context`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::csi_volume_context;

fuzz_target!(|data: &[u8]| {
    csi_volume_context::csi_volume_context(data);
});
