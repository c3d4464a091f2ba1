//! The pure RouterOS layer: everything the gateway knows about the appliance's command language and
//! output, with no I/O.
//!
//! Values enter through the validated [`names`] and [`size`] types, become exact command lines in
//! [`command`], and the output comes back through [`text`] (any RouterOS 7) or [`json`] (7.13 and
//! later) as [`record::Record`]s, which [`model`] turns into typed views. [`error`] classifies failure
//! text and maps every failure to a gRPC code in one place. The SSH transport lives elsewhere and only
//! moves lines and bytes.

pub mod command;
pub mod error;
pub mod json;
pub mod model;
pub mod names;
pub mod record;
pub mod size;
pub mod text;

pub use command::{Command, Format, Output};
pub use error::{RosError, Subject, classify, classify_for};
pub use record::Record;
