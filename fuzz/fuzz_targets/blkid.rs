//! cargo-fuzz entry point of the `blkid` target (see `rds_csi_fuzz::targets::blkid`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::blkid;

fuzz_target!(|data: &[u8]| {
    blkid::blkid(data);
});
