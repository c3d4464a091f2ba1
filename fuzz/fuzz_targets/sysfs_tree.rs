//! cargo-fuzz entry point of the `sysfs_tree` target (see `rds_csi_fuzz::targets::sysfs_tree`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::sysfs_tree;

fuzz_target!(|data: &[u8]| {
    sysfs_tree::sysfs_tree(data);
});
