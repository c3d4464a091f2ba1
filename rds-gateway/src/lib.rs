//! rds-gateway: the only process that holds credentials for the ROSE Data Server. It keeps SSH sessions
//! to RouterOS, runs typed `/disk` and `/file` commands with deadlines, decodes their output, classifies
//! errors and serves the internal gateway API to the controller.
//!
//! [`routeros`] is the pure layer of that work: validated names, exact command lines, output decoders
//! and the error type, with no I/O, so that all of it is tested without an appliance.

pub mod routeros;
pub mod ssh;
