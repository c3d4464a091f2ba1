//! rds-sim: a RouterOS (ROSE Data Server) simulator for the gateway's integration tests, the
//! testbed, and anyone who wants to try the driver without an appliance.
//!
//! It serves SSH exec requests like an RDS: `/disk` and `/file` commands on sparse files under a
//! root directory, printed in the appliance's exact output shapes (old and new), with JSON
//! through `:serialize` on 7.13+, persistent state, a command log, injected latency and faults.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rds_csi_testbed::sim::SimError> {
//! use rds_csi_testbed::sim::{SimConfig, generate_client_key, start};
//! let dir = std::env::temp_dir().join("rds-sim-demo");
//! std::fs::create_dir_all(&dir).ok();
//! let public = generate_client_key(&dir.join("id_ed25519"))?;
//! std::fs::write(dir.join("authorized_keys"), public).ok();
//! let mut cfg = SimConfig::new(dir.join("root"));
//! cfg.authorized_keys = Some(dir.join("authorized_keys"));
//! let sim = start(cfg).await?;
//! println!("ssh admin@{} (host key {})", sim.addr(), sim.host_key_openssh());
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod appliance;
pub mod ast;
pub mod client;
mod clock;
pub mod cmdlog;
pub mod config;
pub mod engine;
mod error;
pub mod faults;
pub mod inventory;
pub mod keys;
pub mod lexer;
pub mod matcher;
pub mod oneshot;
pub mod parser;
pub mod printer;
pub mod record;
mod server;
pub mod state;
pub mod storage;
pub mod units;
pub mod value;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod shapes;

pub use appliance::{Appliance, Received, Reply};
pub use ast::Verb;
pub use client::{ExecOutput, SimClient};
pub use cmdlog::LoggedCommand;
pub use config::{Latency, LatencySetting, RosVersion, SimConfig};
pub use error::SimError;
pub use faults::{FaultAction, FaultRule, Faults};
pub use keys::generate_client_key;
pub use oneshot::{OneShot, run_once};
pub use printer::PrintStyle;
pub use server::{SimHandle, start};
