//! The russh client callbacks for one connection: the host-key check (which aborts the handshake
//! with the fingerprint seen when the key is not the pinned one) and a notice when the connection
//! ends, so the session and pool learn about it without polling.

use std::sync::Arc;

use russh::client::{DisconnectReason, Handler};
use russh::keys::PublicKeyOrCertificate;
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
            },
            rx,
        )
    }
}

impl Handler for ClientHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let presented = server_public_key.public_key();
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
