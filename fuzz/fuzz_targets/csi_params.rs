//! cargo-fuzz entry point of the `csi_params` target (see `rds_csi_fuzz::targets::csi_params`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::csi_params;

fuzz_target!(|data: &[u8]| {
    csi_params::csi_params(data);
});
