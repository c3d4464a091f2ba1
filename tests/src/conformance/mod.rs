//! The conformance suite: every case of the Kubernetes CSI sanity suite that applies to
//! what the plugin advertises, plus the CSI-spec rules that suite leaves out (capacity
//! ranges, publish rules, idempotent deletes), run in Rust against the plugin's sockets.
//!
//! [`run`] connects to a running plugin (normally the testbed's [`crate::stack::Stack`]),
//! asks what it advertises, runs each case from [`registry::all`] whose needs are met in a
//! fresh [`context::Ctx`], gives back whatever the case created even when it failed, and
//! returns a [`report::Report`] with a printable table and summary.

pub mod caps;
pub mod cases;
pub mod config;
pub mod context;
pub mod expect;
pub mod ids;
pub mod paths;
pub mod registry;
pub mod report;
pub mod resources;
pub mod runner;

pub use config::SuiteConfig;
pub use report::{Outcome, Report};
pub use runner::Target;

/// Runs the whole suite against the plugin at `target`; `Err` only when the plugin could
/// not be asked what it advertises.
pub async fn run(target: &Target<'_>, config: SuiteConfig) -> Result<Report, String> {
    let shared = runner::prepare(target, config).await?;
    eprintln!(
        "conformance: driver {}\n{}",
        shared.driver_name,
        shared.advertised.describe()
    );
    Ok(runner::run_all(&shared).await)
}
