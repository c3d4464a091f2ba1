//! One SSH connection to RouterOS and the commands run on it: each command is an `exec` channel
//! without a PTY whose stdout, stderr and exit status are collected until the server closes the
//! channel, bounded by a deadline and an output cap.
//!
//! A connection is made in three steps — [`connect_tcp`], [`Handshake::start`] (host-key
//! check), [`Handshake::login`] — which [`SshSession::connect`] runs in one go under one deadline
//! and the doctor runs one at a time to report each.
//!
//! Keepalives stay off: RouterOS rejects `keepalive@openssh.com` requests, and the pool's
//! liveness command does that job instead.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::client::{self, Handle, Msg};
use russh::keys::PublicKey;
use russh::{Channel, ChannelMsg, Disconnect, Preferred};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::auth;
use super::config::SshConfig;
use super::error::{Stage, TransportError};
use super::handler::{ClientHandler, HandlerError};
use super::host_key::{HostKeyCheck, fingerprint};

/// How long a best-effort close or disconnect may take.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What a command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error (SSH extended data).
    pub stderr: Vec<u8>,
    /// The exit status, when the server sent one.
    pub exit_status: Option<u32>,
    /// The signal that ended the command, when the server sent one.
    pub exit_signal: Option<String>,
}

impl ExecOutput {
    /// Standard output as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stdout)
    }

    /// Standard error as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stderr)
    }
}

/// Rejects a command line that cannot travel as one exec request.
pub fn check_line(line: &str) -> Result<(), TransportError> {
    if line.trim().is_empty() {
        return Err(TransportError::InvalidCommand {
            detail: "the command line is empty".to_string(),
        });
    }
    if let Some(c) = line.chars().find(|c| matches!(c, '\n' | '\r' | '\0')) {
        return Err(TransportError::InvalidCommand {
            detail: format!("the command line holds the control character {c:?}"),
        });
    }
    Ok(())
}

/// Why a channel could not be opened.
#[derive(Debug)]
pub(crate) struct OpenFailure {
    /// The error to report.
    pub error: TransportError,
    /// True when the connection itself is gone (another session may serve the command, which was
    /// not sent).
    pub session_broken: bool,
}

/// One authenticated SSH connection.
pub struct SshSession {
    handle: Handle<ClientHandler>,
    closed: watch::Receiver<Option<String>>,
    address: String,
    max_output: usize,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("address", &self.address)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The russh client settings: no keepalive, no inactivity timeout (the pool decides when a
/// session is dead), and the pinned host-key algorithms first.
pub(crate) fn client_config(check: &HostKeyCheck) -> client::Config {
    let mut preferred = Preferred::default();
    let pinned = check.preferred_algorithms();
    if !pinned.is_empty() {
        let mut keys = pinned;
        for a in preferred.key.iter() {
            if !keys.contains(a) {
                keys.push(a.clone());
            }
        }
        preferred.key = Cow::Owned(keys);
    }
    client::Config {
        preferred,
        keepalive_interval: None,
        inactivity_timeout: None,
        nodelay: true,
        ..client::Config::default()
    }
}

/// Opens the TCP connection to `host:port`, trying every address the name resolves to in turn;
/// `address` (`host:port` as shown) names it in errors. A name that does not resolve
/// ([`TransportError::Dns`]), a refusal ([`TransportError::Refused`]) and other socket errors
/// ([`TransportError::Connect`]) stay distinct. It has no deadline of its own: callers bound it.
pub async fn connect_tcp(
    host: &str,
    port: u16,
    address: &str,
) -> Result<TcpStream, TransportError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| TransportError::Dns {
            host: host.to_string(),
            detail: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(TransportError::Dns {
            host: host.to_string(),
            detail: "the name has no addresses".to_string(),
        });
    }
    let mut refused = false;
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(rds.address = %address, "cannot set TCP_NODELAY: {e}");
                }
                return Ok(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => refused = true,
            Err(e) => last_error = Some(format!("{addr}: {e}")),
        }
    }
    match last_error {
        Some(detail) if !refused => Err(TransportError::Connect {
            address: address.to_string(),
            detail,
        }),
        _ => Err(TransportError::Refused {
            address: address.to_string(),
        }),
    }
}

/// A failed SSH handshake: the error, and the host key the server presented when the handshake
/// got that far (also when the key was the reason it failed).
#[derive(Debug)]
pub struct HandshakeFailure {
    /// What went wrong ([`TransportError::HostKeyMismatch`] for a key that is not the pinned one).
    pub error: TransportError,
    /// The server's host key, when it was presented.
    pub presented: Option<PublicKey>,
}

/// A connection whose SSH handshake is done and whose host key passed the check, not logged in
/// yet. [`SshSession::connect`] goes through it; the doctor uses it to report each step.
pub struct Handshake {
    handle: Handle<ClientHandler>,
    closed: watch::Receiver<Option<String>>,
    address: String,
    host_key: Option<PublicKey>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("address", &self.address)
            .field("host_key", &self.host_key.as_ref().map(fingerprint))
            .finish()
    }
}

impl Handshake {
    /// Runs the SSH handshake on `stream` and checks the server's host key with `check`.
    /// `address` (`host:port`) names the server in errors. No deadline of its own.
    pub async fn start(
        stream: TcpStream,
        check: &HostKeyCheck,
        address: &str,
    ) -> Result<Handshake, HandshakeFailure> {
        let (handler, closed) = ClientHandler::new(Arc::new(check.clone()), address.to_string());
        let presented = handler.presented_key();
        let russh_config = Arc::new(client_config(check));
        let connected = client::connect_stream(russh_config, stream, handler).await;
        let host_key = presented.get().cloned();
        match connected {
            Ok(handle) => Ok(Handshake {
                handle,
                closed,
                address: address.to_string(),
                host_key,
            }),
            Err(e) => Err(HandshakeFailure {
                error: match e {
                    HandlerError::HostKey(m) => TransportError::HostKeyMismatch {
                        expected: m.expected,
                        seen: m.seen,
                    },
                    HandlerError::Russh(e) => TransportError::Protocol {
                        address: address.to_string(),
                        detail: format!("SSH handshake failed: {e}"),
                    },
                },
                presented: host_key,
            }),
        }
    }

    /// The host key the server presented.
    pub fn host_key(&self) -> Option<&PublicKey> {
        self.host_key.as_ref()
    }

    /// Logs in as `config`'s user with its key and console options.
    pub async fn login(mut self, config: &SshConfig) -> Result<SshSession, TransportError> {
        auth::authenticate(
            &mut self.handle,
            &config.login(),
            &config.user,
            &config.key,
            &self.address,
        )
        .await?;
        tracing::debug!(rds.address = %self.address, login = %config.login(), "SSH session authenticated");
        Ok(SshSession {
            handle: self.handle,
            closed: self.closed,
            address: self.address,
            max_output: config.max_output_bytes,
        })
    }
}

impl SshSession {
    /// Connects, checks the host key and logs in, all within `config.connect_timeout`.
    pub async fn connect(config: &SshConfig) -> Result<Self, TransportError> {
        let address = config.display_address();
        let after = config.connect_timeout;
        match tokio::time::timeout(after, Self::connect_inner(config, &address)).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout {
                after,
                stage: Stage::Connect,
            }),
        }
    }

    async fn connect_inner(config: &SshConfig, address: &str) -> Result<Self, TransportError> {
        let stream = connect_tcp(&config.address, config.port, address).await?;
        let handshake = Handshake::start(stream, &config.host_key, address)
            .await
            .map_err(|f| f.error)?;
        handshake.login(config).await
    }

    /// `host:port` of the RDS.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// True once the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed() || self.closed.has_changed().is_err()
    }

    /// Why the connection ended, when it did and a reason was given.
    pub fn close_reason(&self) -> Option<String> {
        self.closed.borrow().clone()
    }

    /// Resolves when the connection is gone.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        while rx.changed().await.is_ok() {}
    }

    /// Sends an SSH disconnect (best effort, bounded).
    pub async fn disconnect(&self) {
        let bye = self.handle.disconnect(
            Disconnect::ByApplication,
            "rds-gateway closing the session",
            "en",
        );
        if tokio::time::timeout(CLOSE_WAIT, bye).await.is_err() {
            tracing::debug!(rds.address = %self.address, "SSH disconnect did not complete");
        }
    }

    /// Runs `line` and collects its output until the server closes the channel or `deadline`
    /// passes (then the channel is closed and the result is a timeout).
    pub async fn exec(&self, line: &str, deadline: Instant) -> Result<ExecOutput, TransportError> {
        check_line(line)?;
        let channel = self.open_channel(deadline).await.map_err(|f| f.error)?;
        self.run(channel, line, deadline).await
    }

    fn lost(&self) -> TransportError {
        TransportError::Disconnected {
            address: self.address.clone(),
        }
    }

    /// Opens a session channel (the command is not sent yet).
    pub(crate) async fn open_channel(
        &self,
        deadline: Instant,
    ) -> Result<Channel<Msg>, OpenFailure> {
        let started = Instant::now();
        let open = self.handle.channel_open_session();
        match tokio::time::timeout_at(deadline.into(), open).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(russh::Error::ChannelOpenFailure(reason))) => Err(OpenFailure {
                error: TransportError::Protocol {
                    address: self.address.clone(),
                    detail: format!(
                        "the RDS refused to open a channel ({reason:?}); lower the channels per \
                         session"
                    ),
                },
                session_broken: false,
            }),
            Ok(Err(e)) => {
                tracing::debug!(rds.address = %self.address, "cannot open a channel: {e}");
                Err(OpenFailure {
                    error: self.lost(),
                    session_broken: true,
                })
            }
            Err(_) => Err(OpenFailure {
                error: TransportError::Timeout {
                    after: started.elapsed(),
                    stage: Stage::Queue,
                },
                session_broken: false,
            }),
        }
    }

    /// Sends `line` on an open channel and collects the result (see [`SshSession::exec`]).
    pub(crate) async fn run(
        &self,
        channel: Channel<Msg>,
        line: &str,
        deadline: Instant,
    ) -> Result<ExecOutput, TransportError> {
        let started = Instant::now();
        let mut guard = ChannelGuard(Some(channel));
        let collected = match guard.0.as_mut() {
            Some(channel) => {
                tokio::time::timeout_at(deadline.into(), self.collect(channel, line)).await
            }
            None => Ok(Err(self.lost())),
        };
        match collected {
            Ok(Ok(output)) => {
                // The server closed the channel; nothing left to close.
                guard.0 = None;
                Ok(output)
            }
            Ok(Err(e)) => {
                guard.close().await;
                Err(e)
            }
            Err(_) => {
                guard.close().await;
                Err(TransportError::Timeout {
                    after: started.elapsed(),
                    stage: Stage::Command,
                })
            }
        }
    }

    async fn collect(
        &self,
        channel: &mut Channel<Msg>,
        line: &str,
    ) -> Result<ExecOutput, TransportError> {
        channel.exec(true, line).await.map_err(|e| {
            tracing::debug!(rds.address = %self.address, "cannot send the exec request: {e}");
            self.lost()
        })?;
        let mut out = ExecOutput::default();
        let mut eof = false;
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Data { data }) => {
                    self.append(&mut out, &data, false)?;
                }
                Some(ChannelMsg::ExtendedData { data, .. }) => {
                    self.append(&mut out, &data, true)?;
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => out.exit_status = Some(exit_status),
                Some(ChannelMsg::ExitSignal {
                    signal_name,
                    error_message,
                    ..
                }) => {
                    out.exit_signal = Some(format!("{signal_name:?} {error_message}"));
                }
                Some(ChannelMsg::Failure) => {
                    return Err(TransportError::Protocol {
                        address: self.address.clone(),
                        detail: "the RDS refused the exec request".to_string(),
                    });
                }
                Some(ChannelMsg::Eof) => eof = true,
                Some(ChannelMsg::Close) => return Ok(out),
                Some(_) => {}
                // The channel is gone without a close: the output is whole only if the server
                // said it was done writing.
                None if eof => return Ok(out),
                None => return Err(self.lost()),
            }
        }
    }

    fn append(
        &self,
        out: &mut ExecOutput,
        data: &[u8],
        stderr: bool,
    ) -> Result<(), TransportError> {
        let total = out.stdout.len() + out.stderr.len();
        if total.saturating_add(data.len()) > self.max_output {
            return Err(TransportError::OutputTooLarge {
                limit: self.max_output,
            });
        }
        if stderr {
            out.stderr.extend_from_slice(data);
        } else {
            out.stdout.extend_from_slice(data);
        }
        Ok(())
    }
}

/// Closes a channel whose command did not finish, also when the future running it is dropped
/// (a cancelled caller), so that no command keeps running on the RDS for nobody.
struct ChannelGuard(Option<Channel<Msg>>);

impl ChannelGuard {
    async fn close(&mut self) {
        if let Some(channel) = self.0.take() {
            let _ = tokio::time::timeout(CLOSE_WAIT, channel.close()).await;
        }
    }
}

impl Drop for ChannelGuard {
    fn drop(&mut self) {
        if let Some(channel) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(CLOSE_WAIT, channel.close()).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, HashAlg};

    #[test]
    fn command_lines_are_checked() {
        assert!(check_line("/disk print detail").is_ok());
        for bad in ["", "   ", "/disk print\n/quit", "a\rb", "a\0b"] {
            assert!(
                matches!(check_line(bad), Err(TransportError::InvalidCommand { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn client_config_has_no_keepalive_and_pinned_algorithms_first() {
        let c = client_config(&HostKeyCheck::InsecureSkip);
        assert!(c.keepalive_interval.is_none());
        assert!(c.inactivity_timeout.is_none());
        assert_eq!(c.preferred.key, Preferred::default().key);

        let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCq/Klf3ChcNORoqTKK2vaQhqYSqTsCB/zBwAAnC/7k+ihBBXzcnm2Jz4WugajxzVS+u78N+hHPxsrWyPMUfQp1/weQnbhHqb3RPaJLLgS7IwzvioR93k/SVZO2qUGUv92V0Np0hVS7rBt0dY3M7VVNohW2SoHGB3MDQlC1LY990d8+EaCwz0RKzYof7SQCbIs/0ywTOmNKRz7O2ULMvdX1ksJKhhgA6HU9dIghXmBbRLAAHRtvOl9kkNb879osYaS/3VkHbdt1BS+HUpG3ZZ6MN0gquXFR3AthYanig+mklPzzaPf8E/CnFpXVpdMLDl/2F0tgR5TQEJVgpuDTLsIJ";
        let pin = super::super::host_key::HostKeyPin::parse(rsa);
        assert!(pin.is_ok());
        if let Ok(pin) = pin {
            let c = client_config(&HostKeyCheck::Pinned(pin));
            assert_eq!(
                c.preferred.key.first(),
                Some(&Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512)
                })
            );
            // Every default algorithm is still offered, once.
            assert_eq!(c.preferred.key.len(), Preferred::default().key.len());
        }
    }
}
