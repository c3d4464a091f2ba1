//! The seam between the operations and the SSH transport: something that runs one RouterOS command
//! line before a deadline and reports how the connection stands.
//!
//! The executor and everything above it only know [`CommandRunner`], so they are tested with a
//! scripted runner and run in production over [`SshRunner`], the adapter for
//! [`crate::ssh::SshPool`]. Transport failures cross this seam as a [`RunFailure`] without a verb;
//! the executor, which knows the command, turns them into [`RosError`]s (see
//! [`RunFailure::into_ros`]).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::routeros::{RosError, Subject};
use crate::ssh::{ConnectionState, SshPool, TransportError};

/// What a command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOutput {
    /// Standard output as text.
    pub stdout: String,
    /// Standard error as text.
    pub stderr: String,
    /// The exit status, when the server sent one.
    pub exit_status: Option<u32>,
}

/// Why a command line did not produce output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunFailure {
    /// The deadline passed (waiting for a channel or running the command).
    #[error("no answer within {after:?}")]
    Timeout {
        /// How long the command had.
        after: Duration,
    },
    /// The connection is down, broke, refused or is overloaded; retrying later may work.
    #[error("{detail}")]
    Unavailable {
        /// The transport's actionable message.
        detail: String,
    },
    /// The transport refused the line or its output (too large, not one line).
    #[error("{detail}")]
    Refused {
        /// What was wrong.
        detail: String,
    },
}

impl RunFailure {
    /// The same failure as a [`RosError`] about command `verb` and `subject`.
    pub fn into_ros(self, verb: &'static str, subject: Subject) -> RosError {
        match self {
            RunFailure::Timeout { after } => RosError::timeout(verb, subject, after),
            RunFailure::Unavailable { detail } => RosError::transport(verb, subject, detail),
            RunFailure::Refused { detail } => {
                RosError::unparseable("command output", subject, format!("{verb}: {detail}"))
            }
        }
    }
}

impl From<TransportError> for RunFailure {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Timeout { after, .. } => RunFailure::Timeout { after },
            TransportError::OutputTooLarge { .. } | TransportError::InvalidCommand { .. } => {
                RunFailure::Refused {
                    detail: e.to_string(),
                }
            }
            other => RunFailure::Unavailable {
                detail: other.to_string(),
            },
        }
    }
}

/// A boxed, sendable future (what [`CommandRunner::run`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs RouterOS command lines.
pub trait CommandRunner: Send + Sync {
    /// Runs one line; `deadline` is when the caller stops waiting (`None`: the runner's default).
    fn run<'a>(
        &'a self,
        line: &'a str,
        deadline: Option<Instant>,
    ) -> BoxFuture<'a, Result<RunOutput, RunFailure>>;

    /// The connection state, updated as it changes.
    fn state(&self) -> watch::Receiver<ConnectionState>;
}

/// [`CommandRunner`] over the SSH pool.
#[derive(Debug)]
pub struct SshRunner {
    pool: SshPool,
}

impl SshRunner {
    /// Runs commands through `pool`.
    pub fn new(pool: SshPool) -> Self {
        SshRunner { pool }
    }

    /// The pool underneath.
    pub fn pool(&self) -> &SshPool {
        &self.pool
    }
}

impl CommandRunner for SshRunner {
    fn run<'a>(
        &'a self,
        line: &'a str,
        deadline: Option<Instant>,
    ) -> BoxFuture<'a, Result<RunOutput, RunFailure>> {
        Box::pin(async move {
            let out = self.pool.exec(line, deadline).await?;
            Ok(RunOutput {
                stdout: out.stdout_text().into_owned(),
                stderr: out.stderr_text().into_owned(),
                exit_status: out.exit_status,
            })
        })
    }

    fn state(&self) -> watch::Receiver<ConnectionState> {
        self.pool.state()
    }
}

/// [`CommandRunner`] of a gateway started without an RDS address: it serves, reports not ready
/// with what to set, and fails every command as `UNAVAILABLE`.
#[derive(Debug)]
pub struct NotConfigured {
    state: watch::Sender<ConnectionState>,
}

/// Why [`NotConfigured`] runs nothing.
pub const NOT_CONFIGURED: &str =
    "no RDS is configured: set --rds-address, --rds-key-file and --rds-host-key";

impl NotConfigured {
    /// A runner that is down for good.
    pub fn new() -> Self {
        let (state, _) = watch::channel(ConnectionState::Down {
            reason: crate::ssh::DownReason::Other(NOT_CONFIGURED.to_owned()),
            since: std::time::SystemTime::now(),
        });
        NotConfigured { state }
    }
}

impl Default for NotConfigured {
    fn default() -> Self {
        NotConfigured::new()
    }
}

impl CommandRunner for NotConfigured {
    fn run<'a>(
        &'a self,
        _line: &'a str,
        _deadline: Option<Instant>,
    ) -> BoxFuture<'a, Result<RunOutput, RunFailure>> {
        Box::pin(async {
            Err(RunFailure::Unavailable {
                detail: NOT_CONFIGURED.to_owned(),
            })
        })
    }

    fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.subscribe()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::routeros::names::Slot;
    use crate::ssh::error::Stage;
    use crate::ssh::state::DownReason;

    #[test]
    fn transport_failures_keep_their_meaning() {
        let slot = Slot::parse("pvc-1").unwrap();
        let subject = Subject::Slot(slot);
        let cases = [
            (
                TransportError::Timeout {
                    after: Duration::from_secs(2),
                    stage: Stage::Command,
                },
                tonic::Code::DeadlineExceeded,
            ),
            (
                TransportError::Timeout {
                    after: Duration::from_secs(2),
                    stage: Stage::Queue,
                },
                tonic::Code::DeadlineExceeded,
            ),
            (
                TransportError::Disconnected {
                    address: "rds:22".into(),
                },
                tonic::Code::Unavailable,
            ),
            (
                TransportError::NotConnected {
                    reason: DownReason::AuthFailed {
                        user: "admin".into(),
                    },
                },
                tonic::Code::Unavailable,
            ),
            (
                TransportError::Overloaded { depth: 4 },
                tonic::Code::Unavailable,
            ),
            (
                TransportError::OutputTooLarge { limit: 10 },
                tonic::Code::Internal,
            ),
        ];
        for (transport, code) in cases {
            let expected = transport.code();
            let ros = RunFailure::from(transport.clone()).into_ros("disk-add", subject.clone());
            assert_eq!(ros.code(), code, "{transport}");
            assert_eq!(ros.code(), expected, "{transport}");
            let text = ros.to_string();
            assert!(
                text.contains("disk-add") && text.contains("pvc-1"),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn not_configured_is_down_and_unavailable() {
        let r = NotConfigured::new();
        assert!(!r.state().borrow().is_connected());
        assert!(r.state().borrow().to_string().contains("--rds-address"));
        let err = r.run("/disk print", None).await.unwrap_err();
        assert_eq!(
            err.into_ros("disk-print", Subject::None).code(),
            tonic::Code::Unavailable
        );
    }

    #[test]
    fn actionable_reason_survives() {
        let ros = RunFailure::from(TransportError::NotConnected {
            reason: DownReason::AuthFailed {
                user: "admin".into(),
            },
        })
        .into_ros("disk-print", Subject::None);
        assert!(ros.to_string().contains("--rds-key-file"), "{ros}");
    }
}
