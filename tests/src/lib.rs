//! The rds-csi testbed: everything needed to run the shipped binaries together on one
//! machine and to check what they do from the outside.

pub mod bins;
pub mod http;
pub mod process;
pub mod sim;
pub mod stack;
