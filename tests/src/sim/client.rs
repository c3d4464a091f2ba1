//! A minimal russh client for tests and tools that talk to a simulator: connects with a pinned
//! host key, logs in with a private key file, and runs exec commands, reporting stdout, stderr,
//! the exit status and whether the server answered at all.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate, load_secret_key};
use russh::{ChannelMsg, Disconnect};

use super::error::SimError;

/// Accepts only the pinned host key.
struct Pinned {
    expected: PublicKey,
}

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                key.key_data() == self.expected.key_data()
            }
            PublicKeyOrCertificate::Certificate(_) => false,
        })
    }
}

/// What one exec request produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// `None` when the server sent no exit status (the connection dropped, or it hung).
    pub exit_status: Option<u32>,
    /// The server sent EOF or closed the channel.
    pub closed: bool,
    /// The server answered the request with a failure.
    pub refused: bool,
}

/// Reads a channel until it ends.
async fn collect(mut channel: russh::Channel<russh::client::Msg>) -> ExecOutput {
    let mut out = ExecOutput::default();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    while let Some(msg) = channel.wait().await {
        match msg {
            ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, .. } => stderr.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => out.exit_status = Some(exit_status),
            ChannelMsg::Eof | ChannelMsg::Close => out.closed = true,
            ChannelMsg::Failure => out.refused = true,
            _ => {}
        }
    }
    out.stdout = String::from_utf8_lossy(&stdout).into_owned();
    out.stderr = String::from_utf8_lossy(&stderr).into_owned();
    out
}

/// A logged-in SSH connection.
pub struct SimClient {
    addr: SocketAddr,
    handle: Handle<Pinned>,
}

fn client_error(addr: SocketAddr, detail: impl ToString) -> SimError {
    SimError::Client {
        addr,
        detail: detail.to_string(),
    }
}

impl SimClient {
    /// Connects to `addr`, checks the host key against `host_key` (an OpenSSH public line), and
    /// logs in as `user` with the private key in `key_file`. A refused login is an error.
    pub async fn connect(
        addr: SocketAddr,
        host_key: &str,
        user: &str,
        key_file: &Path,
    ) -> Result<SimClient, SimError> {
        let expected =
            PublicKey::from_openssh(host_key.trim()).map_err(|e| client_error(addr, e))?;
        let key = load_secret_key(key_file, None).map_err(|e| client_error(addr, e))?;
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(300)),
            ..Default::default()
        });
        let mut handle = client::connect(config, addr, Pinned { expected })
            .await
            .map_err(|e| client_error(addr, e))?;
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| client_error(addr, e))?
            .flatten();
        let auth = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(|e| client_error(addr, e))?;
        if !auth.success() {
            return Err(client_error(addr, format!("login as {user} refused")));
        }
        Ok(SimClient { addr, handle })
    }

    /// Runs `command` on a new exec channel and collects everything until the channel ends.
    pub async fn exec(&self, command: &str) -> Result<ExecOutput, SimError> {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| client_error(self.addr, e))?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| client_error(self.addr, e))?;
        Ok(collect(channel).await)
    }

    /// Asks for an interactive shell (which the simulator refuses) and collects the answer.
    pub async fn shell(&self) -> Result<ExecOutput, SimError> {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| client_error(self.addr, e))?;
        channel
            .request_shell(true)
            .await
            .map_err(|e| client_error(self.addr, e))?;
        Ok(collect(channel).await)
    }

    /// Like [`SimClient::exec`], giving up after `limit`: `Ok(None)` means no answer in time.
    pub async fn exec_within(
        &self,
        command: &str,
        limit: Duration,
    ) -> Result<Option<ExecOutput>, SimError> {
        match tokio::time::timeout(limit, self.exec(command)).await {
            Ok(result) => result.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Sends a global request and reports whether the server accepted it.
    pub async fn global_request(&self, name: &str) -> Result<bool, SimError> {
        match self.handle.send_global_request(name, &[], true).await {
            Ok(_) => Ok(true),
            Err(russh::Error::RequestDenied) => Ok(false),
            Err(e) => Err(client_error(self.addr, e)),
        }
    }

    /// True once the server has closed the connection.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Disconnects politely.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "bye", "en")
            .await;
    }
}
