//! The rds-csi testbed: everything needed to run the shipped binaries together on one
//! machine and to check what they do from the outside.

pub mod bench_support;
pub mod bins;
pub mod conformance;
pub mod csi_client;
pub mod docs_check;
pub mod e2e_support;
pub mod fault_matrix;
pub mod hostile;
pub mod http;
pub mod leaks;
pub mod lifecycle;
pub mod otlp_sink;
pub mod process;
pub mod prometheus;
pub mod sim;
pub mod stack;
