//! The simulator's own failures (as opposed to RouterOS failures, which are output text): each
//! variant names the file, key or address it failed on.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A failure to start or run the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is unreadable: {detail}")]
    State { path: PathBuf, detail: String },
    #[error("key {path}: {detail}")]
    Key { path: PathBuf, detail: String },
    #[error("faults file {path}: {detail}")]
    Faults { path: PathBuf, detail: String },
    #[error("bad setting {name}: {detail}")]
    Config { name: &'static str, detail: String },
    #[error("ssh to {addr}: {detail}")]
    Client { addr: SocketAddr, detail: String },
}
