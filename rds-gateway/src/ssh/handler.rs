//! The russh client callbacks for one connection: the host-key check (which aborts the handshake
//! with the fingerprint seen when the key is not the pinned one), a record of the key the server
//! presented (whether or not it was accepted, for the doctor's report), and a notice when the
//! connection ends, so the session and pool learn about it without polling.

use std::sync::{Arc, OnceLock};

use russh::client::{DisconnectReason, Handler};
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use tokio::sync::watch;

use super::host_key::{HostKeyCheck, HostKeyMismatch};

/// What ends a connection from the handler's side.
#[derive(Debug)]
pub enum HandlerError {
    /// A protocol or I/O error inside russh.
    Russh(russh::Error),
    /// The server's host key is not the pinned one.
    HostKey(HostKeyMismatch),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Russh(e)
    }
}

/// The client handler of one connection. It lives inside russh's connection task and is dropped
/// when that task ends, which closes `closed`: receivers of it learn the connection is gone.
pub struct ClientHandler {
    check: Arc<HostKeyCheck>,
    address: String,
    closed: watch::Sender<Option<String>>,
    presented: Arc<OnceLock<PublicKey>>,
}

impl ClientHandler {
    /// A handler for a connection to `address`, and the receiver that reports its end (the value
    /// is the reason when one was given; the channel closes when the connection task ends).
    pub fn new(
        check: Arc<HostKeyCheck>,
        address: String,
    ) -> (Self, watch::Receiver<Option<String>>) {
        let (closed, rx) = watch::channel(None);
        (
            ClientHandler {
                check,
                address,
                closed,
                presented: Arc::new(OnceLock::new()),
            },
            rx,
        )
    }

    /// Where the host key the server presents is kept once the handshake reaches the check
    /// (take it before the handler moves into russh). Set whether or not the key is accepted.
    pub fn presented_key(&self) -> Arc<OnceLock<PublicKey>> {
        self.presented.clone()
    }
}

impl Handler for ClientHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let presented = server_public_key.public_key();
        // The first key of the connection is the one the check is about; a re-key keeps it.
        let _ = self.presented.set(presented.clone());
        match self.check.verify(&presented, &self.address) {
            Ok(()) => Ok(true),
            Err(mismatch) => Err(HandlerError::HostKey(mismatch)),
        }
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        match reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                let text = format!(
                    "the RDS closed the connection ({:?}: {})",
                    info.reason_code, info.message
                );
                tracing::debug!(rds.address = %self.address, "{text}");
                self.closed.send_replace(Some(text));
                Ok(())
            }
            DisconnectReason::Error(e) => {
                let text = format!("the SSH connection failed: {e:?}");
                tracing::debug!(rds.address = %self.address, "{text}");
                self.closed.send_replace(Some(text));
                Err(e)
            }
        }
    }
}
