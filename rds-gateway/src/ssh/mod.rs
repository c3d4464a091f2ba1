//! The SSH transport to the ROSE Data Server: the only code in the gateway that opens network
//! connections to RouterOS.
//!
//! It moves command lines and bytes, nothing else: what a command means and what its output says
//! belongs to [`crate::routeros`]. The pieces, one job each:
//! - [`config`]: every knob, with defaults, validated once;
//! - [`host_key`]: the pinned RDS host key and the check against what the server presents;
//! - [`auth`]: the client key and public-key login (RouterOS console options in the login name);
//! - [`handler`]: the russh client callbacks (host-key check, disconnect notice);
//! - [`session`]: one SSH connection that runs `exec` channels with a deadline and an output cap;
//! - [`health`]: the cheap liveness command and the RouterOS version it reveals;
//! - [`backoff`]: reconnect delays (exponential, jittered, capped);
//! - [`deadline`]: a caller's deadline bounded by the configured default and maximum;
//! - [`pool`]: up to N sessions, a bounded queue with back-pressure, reconnect for ever;
//! - [`state`]: the connection state the pool publishes, with actionable reasons;
//! - [`metrics`]: Prometheus gauges derived from the pool's state at scrape time;
//! - [`error`]: the transport's error type and its gRPC code.

pub mod auth;
pub mod backoff;
pub mod config;
pub mod deadline;
pub mod error;
pub mod handler;
pub mod health;
pub mod host_key;
pub mod metrics;
pub mod pool;
pub mod session;
pub mod state;

pub use auth::{ClientKey, KeyError, login_name};
pub use backoff::{Backoff, BackoffConfig};
pub use config::{ConfigError, SshConfig, display_address};
pub use error::{Stage, TransportError};
pub use host_key::{HostKeyCheck, HostKeyError, HostKeyPin};
pub use pool::{SshPool, StartError};
pub use session::{ExecOutput, Handshake, HandshakeFailure, SshSession, connect_tcp};
pub use state::{ConnectionState, DownReason};
