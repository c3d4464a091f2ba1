//! cargo-fuzz entry point of the `mountinfo` target (see `rds_csi_fuzz::targets::mountinfo`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::mountinfo;

fuzz_target!(|data: &[u8]| {
    mountinfo::mountinfo(data);
});
