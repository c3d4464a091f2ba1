//! The transport's error type and the one place where its failures become gRPC codes.
//!
//! Toward CSI every transport failure is `UNAVAILABLE` (the sidecars retry it), except a command
//! that ran out of time (`DEADLINE_EXCEEDED`) and the two that no retry can fix (`INTERNAL`).
//! Authentication and host-key failures are the operator's to fix, not the caller's, so they are
//! `UNAVAILABLE` with a message that says what to change, never `UNAUTHENTICATED`.

use std::fmt;
use std::time::Duration;

use super::state::DownReason;

/// What the transport was doing when time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Connecting, handshaking or logging in.
    Connect,
    /// Waiting in the pool's queue for a free channel.
    Queue,
    /// Running the command (the channel was opened and the command sent).
    Command,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connecting to the RDS",
            Stage::Queue => "waiting for a free SSH channel",
            Stage::Command => "running the command",
        })
    }
}

/// Everything that can go wrong moving a command to RouterOS and its output back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Nothing accepted the TCP connection.
    #[error(
        "connection to {address} refused: check --rds-address and --rds-port and that the SSH \
         service is enabled on the RDS"
    )]
    Refused {
        /// `host:port`.
        address: String,
    },
    /// The RDS host name does not resolve.
    #[error("cannot resolve the RDS address {host}: {detail}")]
    Dns {
        /// The name.
        host: String,
        /// The resolver's message.
        detail: String,
    },
    /// The TCP connection failed for another reason than a refusal.
    #[error("cannot connect to {address}: {detail}")]
    Connect {
        /// `host:port`.
        address: String,
        /// The socket error.
        detail: String,
    },
    /// The deadline passed.
    #[error("timed out after {after:?} while {stage}")]
    Timeout {
        /// How long the operation had.
        after: Duration,
        /// What it was doing.
        stage: Stage,
    },
    /// The SSH connection dropped before the command finished; the command may or may not have
    /// run on the RDS.
    #[error("the SSH connection to {address} was lost before the command finished")]
    Disconnected {
        /// `host:port`.
        address: String,
    },
    /// The server rejected the client key.
    #[error(
        "authentication failed for user {user}: check --rds-key-file and that the key is in the \
         user's ssh keys on the RDS (/user ssh-keys)"
    )]
    AuthFailed {
        /// The RouterOS user (without console options).
        user: String,
    },
    /// The server's host key is not the pinned one.
    #[error(
        "host key mismatch: expected {expected}, the server presented {seen}: if the RDS host key \
         changed on purpose, update --rds-host-key (for example from `ssh-keyscan <rds-address>`)"
    )]
    HostKeyMismatch {
        /// Pinned fingerprint(s).
        expected: String,
        /// Fingerprint presented.
        seen: String,
    },
    /// The queue of waiting commands is full (back-pressure).
    #[error(
        "{depth} RouterOS commands are already waiting: the gateway is overloaded, retry later"
    )]
    Overloaded {
        /// The queue's capacity.
        depth: usize,
    },
    /// The server broke the protocol or refused a channel or request.
    #[error("SSH protocol error with {address}: {detail}")]
    Protocol {
        /// `host:port`.
        address: String,
        /// What happened.
        detail: String,
    },
    /// The command printed more than the configured limit.
    #[error("the command's output exceeded {limit} bytes; it was stopped")]
    OutputTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No session is up and the last connection attempt failed.
    #[error("not connected to the RDS: {reason}")]
    NotConnected {
        /// Why.
        reason: DownReason,
    },
    /// The command line holds a character that cannot go over an exec request (a line break or
    /// NUL would start a second command) or is empty.
    #[error("refusing to send the command line: {detail}")]
    InvalidCommand {
        /// What is wrong with it.
        detail: String,
    },
}

impl TransportError {
    /// The gRPC code this failure is reported with.
    pub fn code(&self) -> tonic::Code {
        match self {
            TransportError::Timeout { .. } => tonic::Code::DeadlineExceeded,
            TransportError::OutputTooLarge { .. } | TransportError::InvalidCommand { .. } => {
                tonic::Code::Internal
            }
            TransportError::Refused { .. }
            | TransportError::Dns { .. }
            | TransportError::Connect { .. }
            | TransportError::Disconnected { .. }
            | TransportError::AuthFailed { .. }
            | TransportError::HostKeyMismatch { .. }
            | TransportError::Overloaded { .. }
            | TransportError::Protocol { .. }
            | TransportError::NotConnected { .. } => tonic::Code::Unavailable,
        }
    }

    /// True when the command may have reached RouterOS and run (fully or partly): a timeout while
    /// it ran or a connection lost under it. Callers that mutate state verify before retrying.
    pub fn command_may_have_run(&self) -> bool {
        matches!(
            self,
            TransportError::Timeout {
                stage: Stage::Command,
                ..
            } | TransportError::Disconnected { .. }
                | TransportError::OutputTooLarge { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let d = Duration::from_millis(5);
        let cases = [
            (
                TransportError::Timeout {
                    after: d,
                    stage: Stage::Command,
                },
                tonic::Code::DeadlineExceeded,
            ),
            (
                TransportError::Timeout {
                    after: d,
                    stage: Stage::Queue,
                },
                tonic::Code::DeadlineExceeded,
            ),
            (
                TransportError::AuthFailed { user: "u".into() },
                tonic::Code::Unavailable,
            ),
            (
                TransportError::HostKeyMismatch {
                    expected: "a".into(),
                    seen: "b".into(),
                },
                tonic::Code::Unavailable,
            ),
            (
                TransportError::Overloaded { depth: 3 },
                tonic::Code::Unavailable,
            ),
            (
                TransportError::NotConnected {
                    reason: DownReason::Other("x".into()),
                },
                tonic::Code::Unavailable,
            ),
            (
                TransportError::Refused {
                    address: "a".into(),
                },
                tonic::Code::Unavailable,
            ),
            (
                TransportError::Disconnected {
                    address: "a".into(),
                },
                tonic::Code::Unavailable,
            ),
            (
                TransportError::OutputTooLarge { limit: 1 },
                tonic::Code::Internal,
            ),
            (
                TransportError::InvalidCommand { detail: "x".into() },
                tonic::Code::Internal,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code, "{err}");
        }
    }

    #[test]
    fn may_have_run() {
        let d = Duration::from_millis(5);
        assert!(
            TransportError::Timeout {
                after: d,
                stage: Stage::Command
            }
            .command_may_have_run()
        );
        assert!(
            !TransportError::Timeout {
                after: d,
                stage: Stage::Queue
            }
            .command_may_have_run()
        );
        assert!(!TransportError::Overloaded { depth: 1 }.command_may_have_run());
        assert!(
            TransportError::Disconnected {
                address: "a".into()
            }
            .command_may_have_run()
        );
    }

    #[test]
    fn messages_are_actionable() {
        let e = TransportError::HostKeyMismatch {
            expected: "SHA256:x".into(),
            seen: "SHA256:y".into(),
        };
        assert!(
            e.to_string()
                .starts_with("host key mismatch: expected SHA256:x, the server presented SHA256:y")
        );
        let e = TransportError::NotConnected {
            reason: DownReason::AuthFailed {
                user: "admin".into(),
            },
        };
        assert!(
            e.to_string()
                .contains("authentication failed for user admin")
        );
    }
}
