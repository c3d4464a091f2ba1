//! The SSH face of the simulator, on russh's server side: public-key logins checked against an
//! `authorized_keys` file, RouterOS console options in the login name, exec channels only (each
//! runs one command line and ends with exit status 0, EOF and close), `keepalive@openssh.com`
//! refused like on RouterOS, and connection faults (drop, hang) carried out.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{Algorithm, PublicKey};
use russh::server::{
    Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, RunningServerHandle, Server, Session,
    VerifiedPublicKey,
};
use russh::{Channel, ChannelId, Disconnect, MethodKind, MethodSet, SshId};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::appliance::{Appliance, Reply};
use super::config::{SimConfig, split_login};
use super::error::SimError;
use super::keys;

/// A running simulator. Dropping it stops the server.
pub struct SimHandle {
    addr: SocketAddr,
    host_key_line: String,
    host_key: PublicKey,
    root: PathBuf,
    server: RunningServerHandle,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// The address the SSH server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The host key as an OpenSSH public line (`ssh-ed25519 AAAA... comment`), for pinning.
    pub fn host_key_openssh(&self) -> &str {
        &self.host_key_line
    }

    /// The host key.
    pub fn host_key(&self) -> &PublicKey {
        &self.host_key
    }

    /// The appliance's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stops accepting connections, disconnects every session, and waits for the server task.
    pub async fn shutdown(mut self) {
        self.server.shutdown("rds-sim shutting down".to_string());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.server.shutdown("rds-sim stopped".to_string());
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts a simulator: opens (or creates) its root, loads or makes the host key, binds the
/// listening address and serves SSH in the background.
pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
    let appliance = Arc::new(Appliance::open(cfg.clone())?);
    let key = keys::host_key(appliance.paths(), cfg.host_key.as_deref())?;
    let host_key = key.public_key().clone();
    let host_key_line = keys::public_line(&host_key)?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| SimError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Listen {
        addr: cfg.listen,
        source,
    })?;
    // russh answers every global request it has no handler for (`keepalive@openssh.com`
    // among them) with REQUEST_FAILURE, which is what RouterOS does; the integration test
    // `keepalive_requests_and_shells_are_refused_like_routeros` holds it to that.
    let config = Arc::new(russh::server::Config {
        // the identification string RouterOS sends
        server_id: SshId::Standard("SSH-2.0-ROSSSH".into()),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_millis(50),
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![key],
        inactivity_timeout: Some(Duration::from_secs(3600)),
        nodelay: true,
        ..Default::default()
    });
    let (handle_tx, handle_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut server = SimServer { appliance };
        let running = server.run_on_socket(config, &listener);
        let _ = handle_tx.send(running.handle());
        if let Err(e) = running.await {
            tracing::error!(error = %e, "the SSH server stopped");
        }
    });
    let server = handle_rx.await.map_err(|_| SimError::Listen {
        addr,
        source: std::io::Error::other("the server task ended before it started"),
    })?;
    tracing::info!(%addr, root = %cfg.root.display(), "rds-sim listening");
    Ok(SimHandle {
        addr,
        host_key_line,
        host_key,
        root: cfg.root,
        server,
        task: Some(task),
    })
}

struct SimServer {
    appliance: Arc<Appliance>,
}

impl Server for SimServer {
    type Handler = Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> Connection {
        tracing::debug!(?peer, "new connection");
        Connection {
            width: self.appliance.config().wrap_width,
            appliance: self.appliance.clone(),
            user: String::new(),
        }
    }
}

/// One SSH connection.
struct Connection {
    appliance: Arc<Appliance>,
    /// The login name as given (with console options).
    user: String,
    width: usize,
}

impl Connection {
    fn accepts(&self, login: &str, key: &PublicKey, algorithm: &Algorithm) -> bool {
        let cfg = self.appliance.config();
        if cfg.refuse_auth {
            return false;
        }
        let (user, _) = split_login(login);
        if user != cfg.user || !keys::algorithm_allowed(algorithm) {
            return false;
        }
        let Some(path) = &cfg.authorized_keys else {
            return false;
        };
        match keys::authorized(path) {
            Ok(allowed) => keys::is_authorized(&allowed, key),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read authorized keys");
                false
            }
        }
    }
}

impl Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(if self.accepts(user, offer.public_key, offer.algorithm) {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if !self.accepts(user, key.public_key, key.algorithm) {
            tracing::info!(user, "login refused");
            return Ok(Auth::reject());
        }
        self.user = user.to_string();
        if let (_, Some(width)) = split_login(user) {
            self.width = width;
        }
        tracing::debug!(user, width = self.width, "login");
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        session.extended_data(
            channel,
            1,
            "rds-sim: no interactive console here; run one command per exec request\n",
        )?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let handle = session.handle();
        let appliance = self.appliance.clone();
        let user = split_login(&self.user).0.to_string();
        let width = self.width;
        let command = data.to_vec();
        tokio::spawn(async move {
            let reply = answer(appliance, user, width, command).await;
            match reply {
                Reply::Text(text) => {
                    if !text.is_empty() && handle.data(channel, text.into_bytes()).await.is_err() {
                        return;
                    }
                    let _ = handle.exit_status_request(channel, 0).await;
                    let _ = handle.eof(channel).await;
                    let _ = handle.close(channel).await;
                }
                Reply::Drop => {
                    let _ = handle
                        .disconnect(
                            Disconnect::ConnectionLost,
                            "connection lost".to_string(),
                            String::new(),
                        )
                        .await;
                }
                Reply::Hang => {}
            }
        });
        Ok(())
    }
}

/// Logs, delays and runs one command line off the session's task.
async fn answer(appliance: Arc<Appliance>, user: String, width: usize, command: Vec<u8>) -> Reply {
    let logger = appliance.clone();
    let Ok(received) = tokio::task::spawn_blocking(move || logger.receive(&user, &command)).await
    else {
        return Reply::Drop;
    };
    let delay = appliance.latency(&received);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    tokio::task::spawn_blocking(move || appliance.execute(&received, width))
        .await
        .unwrap_or(Reply::Drop)
}
