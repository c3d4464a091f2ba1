//! rds-csi-fuzz: fuzz targets for every parser and validator of rds-csi that reads untrusted
//! input, and a driver that runs them on stable Rust.
//!
//! Every target in [`targets`] is a plain `fn(&[u8])` that panics only when an oracle is broken:
//! a decoder that panics, a validator that lets RouterOS syntax or a `..` path segment reach a
//! command line, a context that can redirect a node to another subsystem, a probe that calls an
//! ambiguous device blank. The same functions back two harnesses: the `cargo fuzz` binaries in
//! `fuzz_targets/` (nightly, libFuzzer, coverage-guided) and [`driver`], a small mutation fuzzer
//! that `tests/fuzz_stable.rs` runs for a fixed time per target on stable Rust in CI.
//!
//! Inputs with several parts are split by [`input::Fields`] on `0xFF`, a byte that never occurs
//! in UTF-8, so every field can hold any text. [`oracle`] holds the checks shared by several
//! targets.

pub mod driver;
pub mod input;
pub mod oracle;
pub mod targets;

pub use targets::{ALL, Target};
