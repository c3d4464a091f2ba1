//! cargo-fuzz entry point of the `routeros_text` target (see `rds_csi_fuzz::targets::routeros_text`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rds_csi_fuzz::targets::routeros_text;

fuzz_target!(|data: &[u8]| {
    routeros_text::routeros_text(data);
});
