//! A [`CommandRunner`] over the one SSH session the doctor opened, so that its checks run the
//! gateway's own typed commands through the gateway's own [`crate::executor::Executor`] (deadline,
//! classification, JSON or text by version) instead of a second way of talking to RouterOS.
//!
//! It keeps what every command printed, because a refusal for lack of rights can look like an
//! empty answer once decoded (see [`super::rights`]), and it publishes the RouterOS version the
//! doctor read, as the pool does, so the executor picks the output form from it. Lines go out
//! through [`LineRunner`]: the SSH session in the binary, a script in unit tests.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use crate::runner::{BoxFuture, CommandRunner, RunFailure, RunOutput};
use crate::ssh::{ConnectionState, ExecOutput, SshSession, TransportError};

/// Runs one command line on the RDS before a deadline.
pub trait LineRunner: Send + Sync {
    /// Runs `line`.
    fn exec<'a>(
        &'a self,
        line: &'a str,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<ExecOutput, TransportError>>;

    /// Ends the connection (best effort, bounded).
    fn close(&self) -> BoxFuture<'_, ()>;
}

impl LineRunner for SshSession {
    fn exec<'a>(
        &'a self,
        line: &'a str,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<ExecOutput, TransportError>> {
        Box::pin(SshSession::exec(self, line, deadline))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.disconnect())
    }
}

/// Deadline of a command whose caller gave none (the executor always gives one).
const FALLBACK_TIMEOUT: Duration = Duration::from_secs(30);

/// One line the doctor ran and what came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// The command line.
    pub line: String,
    /// Its output, when it produced any.
    pub output: Option<RunOutput>,
}

/// Runs lines on one logged-in session.
pub struct SessionRunner {
    session: Box<dyn LineRunner>,
    since: SystemTime,
    state: watch::Sender<ConnectionState>,
    transcript: Mutex<Vec<Ran>>,
}

impl std::fmt::Debug for SessionRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRunner")
            .field("since", &self.since)
            .finish_non_exhaustive()
    }
}

impl SessionRunner {
    /// A runner over `session`, connected as of now with no RouterOS version known.
    pub fn new(session: Box<dyn LineRunner>) -> Arc<Self> {
        let since = SystemTime::now();
        let (state, _) = watch::channel(ConnectionState::Connected {
            since,
            routeros_version: None,
        });
        Arc::new(SessionRunner {
            session,
            since,
            state,
            transcript: Mutex::new(Vec::new()),
        })
    }

    fn transcript_lock(&self) -> MutexGuard<'_, Vec<Ran>> {
        self.transcript
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `version` (as `/system resource print` printed it) the connection's RouterOS version.
    pub fn publish_version(&self, version: &str) {
        self.state.send_replace(ConnectionState::Connected {
            since: self.since,
            routeros_version: Some(version.to_owned()),
        });
    }

    /// The last line run and its output.
    pub fn last(&self) -> Option<Ran> {
        self.transcript_lock().last().cloned()
    }

    /// Ends the session (best effort, bounded).
    pub async fn close(&self) {
        self.session.close().await;
    }
}

impl CommandRunner for SessionRunner {
    fn run<'a>(
        &'a self,
        line: &'a str,
        deadline: Option<Instant>,
    ) -> BoxFuture<'a, Result<RunOutput, RunFailure>> {
        Box::pin(async move {
            let now = Instant::now();
            let deadline =
                deadline.unwrap_or_else(|| now.checked_add(FALLBACK_TIMEOUT).unwrap_or(now));
            let result = self
                .session
                .exec(line, deadline)
                .await
                .map(|out| RunOutput {
                    stdout: out.stdout_text().into_owned(),
                    stderr: out.stderr_text().into_owned(),
                    exit_status: out.exit_status,
                });
            self.transcript_lock().push(Ran {
                line: line.to_owned(),
                output: result.as_ref().ok().cloned(),
            });
            result.map_err(RunFailure::from)
        })
    }

    fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.subscribe()
    }
}
