//! The connection state the pool publishes (in a `tokio::sync::watch` channel) for readiness
//! checks, metrics and logs, and why a connection is down, phrased so that an operator knows what
//! to fix.

use std::fmt;
use std::time::{Duration, SystemTime};

use super::error::TransportError;

/// Where the pool stands with the RDS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// No session is up and an attempt is under way (`attempt` counts from 1 since the last
    /// success).
    Connecting {
        /// Number of this attempt.
        attempt: u32,
    },
    /// At least one session is up.
    Connected {
        /// When the first session of this connected period came up.
        since: SystemTime,
        /// The RouterOS version the health command reported, when it printed one.
        routeros_version: Option<String>,
    },
    /// No session is up and the last attempt failed; the pool keeps retrying in the background.
    Down {
        /// Why the last attempt failed.
        reason: DownReason,
        /// When the first failure of this outage happened.
        since: SystemTime,
    },
}

impl ConnectionState {
    /// True when commands can run now.
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnectionState::Connected { .. })
    }
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionState::Connecting { attempt } => {
                write!(f, "connecting to the RDS (attempt {attempt})")
            }
            ConnectionState::Connected {
                routeros_version: Some(v),
                ..
            } => write!(f, "connected to the RDS (RouterOS {v})"),
            ConnectionState::Connected { .. } => write!(f, "connected to the RDS"),
            ConnectionState::Down { reason, .. } => write!(f, "RDS unreachable: {reason}"),
        }
    }
}

/// Why the pool has no session, with what it failed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// Nothing accepted the TCP connection.
    Refused {
        /// `host:port` that refused.
        address: String,
    },
    /// The TCP connection, SSH handshake or login took longer than the connect timeout.
    Timeout {
        /// `host:port` tried.
        address: String,
        /// How long was waited.
        after: Duration,
    },
    /// The server rejected the client key.
    AuthFailed {
        /// The RouterOS user (without console options).
        user: String,
    },
    /// The server's host key is not the pinned one.
    HostKeyMismatch {
        /// Pinned fingerprint(s), `SHA256:...`.
        expected: String,
        /// Fingerprint the server presented.
        seen: String,
    },
    /// The RDS host name does not resolve.
    Dns {
        /// The name.
        host: String,
        /// The resolver's message.
        detail: String,
    },
    /// Anything else (protocol error, lost connection, failed health command ...).
    Other(String),
}

impl DownReason {
    /// Turns a failed connection attempt into the reason published in the state. `address` is the
    /// `host:port` that was tried (a timeout does not carry it).
    pub fn from_error(err: &TransportError, address: &str) -> Self {
        match err {
            TransportError::Refused { address } => DownReason::Refused {
                address: address.clone(),
            },
            TransportError::Timeout { after, .. } => DownReason::Timeout {
                address: address.to_string(),
                after: *after,
            },
            TransportError::AuthFailed { user } => DownReason::AuthFailed { user: user.clone() },
            TransportError::HostKeyMismatch { expected, seen } => DownReason::HostKeyMismatch {
                expected: expected.clone(),
                seen: seen.clone(),
            },
            TransportError::Dns { host, detail } => DownReason::Dns {
                host: host.clone(),
                detail: detail.clone(),
            },
            TransportError::NotConnected { reason } => reason.clone(),
            other => DownReason::Other(other.to_string()),
        }
    }

    /// A short, stable label (for logs and metrics).
    pub fn label(&self) -> &'static str {
        match self {
            DownReason::Refused { .. } => "refused",
            DownReason::Timeout { .. } => "timeout",
            DownReason::AuthFailed { .. } => "auth_failed",
            DownReason::HostKeyMismatch { .. } => "host_key_mismatch",
            DownReason::Dns { .. } => "dns",
            DownReason::Other(_) => "other",
        }
    }
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::Refused { address } => write!(
                f,
                "connection to {address} refused: check --rds-address and --rds-port and that \
                 the SSH service is enabled on the RDS (/ip service)"
            ),
            DownReason::Timeout { address, after } => write!(
                f,
                "no SSH answer from {address} within {after:?}: check the network path and \
                 firewalls between the gateway and the RDS"
            ),
            DownReason::AuthFailed { user } => {
                write!(f, "{}", TransportError::AuthFailed { user: user.clone() })
            }
            DownReason::HostKeyMismatch { expected, seen } => write!(
                f,
                "{}",
                TransportError::HostKeyMismatch {
                    expected: expected.clone(),
                    seen: seen.clone(),
                }
            ),
            DownReason::Dns { host, detail } => write!(
                f,
                "cannot resolve the RDS address {host}: {detail}: check --rds-address"
            ),
            DownReason::Other(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::error::Stage;

    #[test]
    fn reasons_name_what_to_fix() {
        let auth = DownReason::from_error(
            &TransportError::AuthFailed {
                user: "admin".into(),
            },
            "rds:22",
        );
        let text = auth.to_string();
        assert!(
            text.contains("authentication failed for user admin"),
            "{text}"
        );
        assert!(text.contains("--rds-key-file"), "{text}");

        let refused = DownReason::from_error(
            &TransportError::Refused {
                address: "10.0.0.1:22".into(),
            },
            "ignored:1",
        );
        assert!(refused.to_string().contains("10.0.0.1:22"));
        assert!(refused.to_string().contains("--rds-port"));

        let timeout = DownReason::from_error(
            &TransportError::Timeout {
                after: Duration::from_secs(3),
                stage: Stage::Connect,
            },
            "rds.example:2222",
        );
        assert_eq!(
            timeout,
            DownReason::Timeout {
                address: "rds.example:2222".into(),
                after: Duration::from_secs(3)
            }
        );

        let mismatch = DownReason::HostKeyMismatch {
            expected: "SHA256:aaa".into(),
            seen: "SHA256:bbb".into(),
        };
        assert!(
            mismatch.to_string().contains(
                "host key mismatch: expected SHA256:aaa, the server presented SHA256:bbb"
            )
        );
        assert_eq!(mismatch.label(), "host_key_mismatch");
    }

    #[test]
    fn state_display_and_connected_flag() {
        let up = ConnectionState::Connected {
            since: SystemTime::UNIX_EPOCH,
            routeros_version: Some("7.16 (stable)".into()),
        };
        assert!(up.is_connected());
        assert!(up.to_string().contains("7.16"));
        let down = ConnectionState::Down {
            reason: DownReason::Other("boom".into()),
            since: SystemTime::UNIX_EPOCH,
        };
        assert!(!down.is_connected());
        assert!(down.to_string().contains("boom"));
        assert!(!ConnectionState::Connecting { attempt: 2 }.is_connected());
    }
}
