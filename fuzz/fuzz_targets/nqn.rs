//! cargo-fuzz entry point of the `nqn` target (see `rds_csi_fuzz::targets::nqn`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::nqn;

fuzz_target!(|data: &[u8]| {
    nqn::nqn(data);
});
