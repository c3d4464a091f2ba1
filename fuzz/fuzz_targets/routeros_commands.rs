//! cargo-fuzz entry point of the `routeros_commands` target (see `rds_csi_fuzz::targets::routeros_commands`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::routeros_commands;

fuzz_target!(|data: &[u8]| {
    routeros_commands::routeros_commands(data);
});
