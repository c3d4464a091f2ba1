//! cargo-fuzz entry point of the `sysfs_attrs` target (see `rds_csi_fuzz::targets::sysfs_attrs`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::sysfs_attrs;

fuzz_target!(|data: &[u8]| {
    sysfs_attrs::sysfs_attrs(data);
});
