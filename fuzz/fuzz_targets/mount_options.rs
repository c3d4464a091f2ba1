//! cargo-fuzz entry point of the `mount_options` target (see `rds_csi_fuzz::targets::mount_options`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::mount_options;

fuzz_target!(|data: &[u8]| {
    mount_options::mount_options(data);
});
