//! The stable-Rust fuzz driver: for one target, run its seed corpus, then mutate for a time
//! budget, executing every input inside `catch_unwind` and under a watchdog, and report
//! executions, distinct inputs, time and findings (panic, hang, memory growth). Findings are saved
//! to `artifacts/<target>/crash-<hash>`.
//!
//! It has no coverage feedback (that is what `cargo fuzz` adds on nightly); it makes up for it
//! with seeds taken from real appliance output and a dictionary of the syntax each target reads.

pub mod capture;
pub mod config;
pub mod corpus;
pub mod distinct;
pub mod mutator;
pub mod rng;
pub mod rss;
pub mod runner;

pub use config::Config;
pub use runner::{Finding, FindingKind, Outcome, Report, run};
