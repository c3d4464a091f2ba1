//! rds-gateway: the only process that holds credentials for the ROSE Data Server. It keeps SSH sessions
//! to RouterOS, runs typed `/disk` and `/file` commands with deadlines, decodes their output, classifies
//! errors and serves the internal gateway API to the controller.
//!
//! [`routeros`] is the pure layer of that work: validated names, exact command lines, output decoders
//! and the error type, with no I/O, so that all of it is tested without an appliance. [`ssh`] moves
//! command lines to the appliance. Above them: [`runner`] (the seam between the two), [`executor`]
//! (one typed command with deadline, classification and telemetry), [`slot_lock`], [`appliance`]
//! (shared disk/file primitives), [`volumes`], [`snapshots`], [`capacity`], and [`grpc_service`],
//! wired together by [`assembly`]. [`doctor`] is the `rds-gateway doctor` preflight.

pub mod appliance;
pub mod assembly;
pub mod capacity;
pub mod command_metrics;
pub mod doctor;
pub mod executor;
pub mod grpc_service;
pub mod op_error;
pub mod paging;
pub mod readiness;
pub mod routeros;
pub mod runner;
pub mod scope;
pub mod slot_lock;
pub mod snapshots;
pub mod ssh;
pub mod volumes;
