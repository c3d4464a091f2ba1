//! cargo-fuzz entry point of the `kubelet_path` target (see `rds_csi_fuzz::targets::kubelet_path`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::kubelet_path;

fuzz_target!(|data: &[u8]| {
    kubelet_path::kubelet_path(data);
});
