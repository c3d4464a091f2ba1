//! The SSH transport against a real SSH server over loopback TCP: a small russh server defined
//! here (public-key auth, an exec handler driven by command words, stop and restart on the same
//! port) plays the RDS.
//!
//! Command words the server understands: `/system resource print` (prints a RouterOS version;
//! hangs while `hang_health` is set), `echo <text>`, `sleep <ms> <text>`, `hang`, `fail`
//! (stderr + exit 1), `bytes <n>`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rds_gateway::ssh::host_key::fingerprint;
use rds_gateway::ssh::{
    BackoffConfig, ClientKey, ConnectionState, DownReason, HostKeyCheck, HostKeyPin, SshConfig,
    SshPool, Stage, StartError, TransportError,
};
use russh::keys::{Algorithm, PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Handle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, Disconnect, MethodKind, MethodSet};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

// Generated with `ssh-keygen -t rsa -b 2048 -N ''` for this test only.
const RSA_CLIENT_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAABFwAAAAdzc2gtcn
NhAAAAAwEAAQAAAQEAqvypX9woXDTkaKkyitr2kIamEqk7Agf8wcAAJwv+5PooQQV83J5t
ic+FroGo8c1Uvru/DfoRz8bK1sjzFH0Kdf8HkJ24R6m90T2iSy4EuyMM74qEfd5P0lWTtq
lBlL/dldDadIVUu6wbdHWNzO1VTaIVtkqBxgdzA0JQtS2PfdHfPhGgsM9ESs2KH+0kAmyL
P9MsEzpjSkc+ztlCzL3V9ZLCSoYYAOh1PXSIIV5gW0SwAB0bbzpfZJDW/O/aLGGkv91ZB2
3bdQUvh1KRt2WejDdIKrlxUdwLYWGp4oPppJT882j3/BPwpxaV1aXTCw5f9hdLYEeU0BCV
YKbg0y7CCQAAA8BqVuiDalbogwAAAAdzc2gtcnNhAAABAQCq/Klf3ChcNORoqTKK2vaQhq
YSqTsCB/zBwAAnC/7k+ihBBXzcnm2Jz4WugajxzVS+u78N+hHPxsrWyPMUfQp1/weQnbhH
qb3RPaJLLgS7IwzvioR93k/SVZO2qUGUv92V0Np0hVS7rBt0dY3M7VVNohW2SoHGB3MDQl
C1LY990d8+EaCwz0RKzYof7SQCbIs/0ywTOmNKRz7O2ULMvdX1ksJKhhgA6HU9dIghXmBb
RLAAHRtvOl9kkNb879osYaS/3VkHbdt1BS+HUpG3ZZ6MN0gquXFR3AthYanig+mklPzzaP
f8E/CnFpXVpdMLDl/2F0tgR5TQEJVgpuDTLsIJAAAAAwEAAQAAAQBE/3whsKegvb9F9LDu
k3lXzN4LPbsQEMUQMjhdiVusbr37rwk5xbySFenuB2hzWtZNuVlZfIXfgGqtzZ05sVOdVf
Jpixun33k3jFWHXOSP148KwqzAVguD5wCafyZ1rg7uu77LsloE+WiC0EUOYt8/Wp7EVsCT
dsIUmJgU5HO442T/YfaHQnRUidRToOPKKNJge+d7sZeHJEhndt3zqZQkN72dqfxxip4baL
2h0/1T+1hByk93RmOeiV8jjHTMtpYbHwjAvxX3nu1mPf5jHeg0/PXpg9KyPM5oZAhrEp0O
vJG5sUrSSxSWQyXbt4alY4IuMqys5amFwAUFryrrUp05AAAAgFYfDiluv7M2REtVotBXr9
bi8PdXLLdJx2EuGj5TgPdkTifS+9hGcgV7ieL0rWjC5m9SOBN/3Mq6w09Jn06cAyFaNYl9
kCDG+spyAtofp40n0cjEwJD4JxtDgNDhnIIfxtJARgO2fOWESkJr5nVYeNDm7+RPfVXlEi
PPVN+OYPOZAAAAgQDU5k6ZH028SmqGOmGv9ZpM8v5Zqgn2PqS3ChiwsmnpjfpasOdxy21n
VfoOTbUnqC+K/DZiNtwMPRrO/ntjBc9KO7St4JKhdDsbcJcaRfNjKE++ivDyosxfbGfXxL
tV7DjMCS5gMFWMddDxCtl0iW24D/a3wSC8vb7Zwun8PYNnIwAAAIEAzZoyXvfGxG847+ce
2SOQRyeKda3tRd9mDa+AdJLKpGL9HjsMiWfOk+BnW3bo8a/D9wYVXpRohNy4mEHfAFNlge
XR76GGMIxoETZQja1h7+9TSaw7/uzdIqSMnxJ3l49M/SSq4I43ymu0Jo4mFLJHPDhmXJqo
KohJEkZ6xZ94WuMAAAAIdGVzdC1yc2EBAgM=
-----END OPENSSH PRIVATE KEY-----
";

const VERSION: &str = "7.16.2 (stable)";
/// Bound of every wait in these tests (a failure bound, not a speed requirement).
const PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The test server
// ---------------------------------------------------------------------------------------------

/// What the server saw and how it behaves, shared by all its connections.
#[derive(Default)]
struct Shared {
    authorized: Mutex<Vec<PublicKey>>,
    /// (login name, signature algorithm) of every successful login.
    logins: Mutex<Vec<(String, String)>>,
    connections: AtomicUsize,
    max_connections: AtomicUsize,
    max_channels_per_connection: AtomicUsize,
    /// Channels the client closed before the command finished.
    closed_by_client: AtomicUsize,
    hang_health: AtomicBool,
    health_calls: AtomicUsize,
    /// Exec requests received.
    execs: AtomicUsize,
}

/// One connection's handler.
struct Conn {
    shared: Arc<Shared>,
    /// Channels open on this connection (closed by the client, or finished by the server).
    open_channels: Arc<AtomicUsize>,
    finished: Arc<Mutex<HashSet<ChannelId>>>,
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let known = self
            .shared
            .authorized
            .lock()
            .unwrap()
            .iter()
            .any(|k| k.key_data() == key.public_key.key_data());
        if known {
            self.shared
                .logins
                .lock()
                .unwrap()
                .push((user.to_string(), key.algorithm.to_string()));
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let open = self.open_channels.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared
            .max_channels_per_connection
            .fetch_max(open, Ordering::SeqCst);
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // A channel the server finished was counted down already.
        if !self.finished.lock().unwrap().remove(&channel) {
            self.open_channels.fetch_sub(1, Ordering::SeqCst);
            self.shared.closed_by_client.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.shared.execs.fetch_add(1, Ordering::SeqCst);
        session.channel_success(channel)?;
        let line = String::from_utf8_lossy(data).to_string();
        tokio::spawn(run_command(
            session.handle(),
            channel,
            line,
            self.shared.clone(),
            self.finished.clone(),
            self.open_channels.clone(),
        ));
        Ok(())
    }
}

async fn run_command(
    handle: Handle,
    channel: ChannelId,
    line: String,
    shared: Arc<Shared>,
    finished: Arc<Mutex<HashSet<ChannelId>>>,
    open_channels: Arc<AtomicUsize>,
) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (stdout, stderr, status): (Vec<u8>, Vec<u8>, u32) = match words.as_slice() {
        ["/system", "resource", "print"] => {
            shared.health_calls.fetch_add(1, Ordering::SeqCst);
            if shared.hang_health.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            let text =
                format!("                  uptime: 1d2h\n                 version: {VERSION}\n");
            (text.into_bytes(), Vec::new(), 0)
        }
        ["echo", rest @ ..] => (format!("{}\n", rest.join(" ")).into_bytes(), Vec::new(), 0),
        ["sleep", ms, rest @ ..] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            (format!("{}\n", rest.join(" ")).into_bytes(), Vec::new(), 0)
        }
        ["hang"] => {
            std::future::pending::<()>().await;
            (Vec::new(), Vec::new(), 0)
        }
        ["fail"] => (Vec::new(), b"failure: no such item\n".to_vec(), 1),
        ["bytes", n] => (vec![b'x'; n.parse().unwrap_or(0)], Vec::new(), 0),
        _ => (
            Vec::new(),
            format!("bad command name {line}\n").into_bytes(),
            1,
        ),
    };
    for chunk in stdout.chunks(16 * 1024) {
        if handle.data(channel, chunk.to_vec()).await.is_err() {
            return;
        }
    }
    if !stderr.is_empty() {
        let _ = handle.extended_data(channel, 1, stderr).await;
    }
    let _ = handle.exit_status_request(channel, status).await;
    let _ = handle.eof(channel).await;
    if finished.lock().unwrap().insert(channel) {
        open_channels.fetch_sub(1, Ordering::SeqCst);
    }
    let _ = handle.close(channel).await;
}

struct Running {
    accept: JoinHandle<()>,
    sessions: Arc<Mutex<Vec<Handle>>>,
}

/// A russh server on 127.0.0.1 that can be stopped and started again on the same port with the
/// same host key.
struct TestServer {
    port: u16,
    host_key: PrivateKey,
    shared: Arc<Shared>,
    running: Option<Running>,
}

fn ed25519() -> PrivateKey {
    PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap()
}

impl TestServer {
    /// A server on a fresh port that accepts `authorized` client keys.
    async fn start(authorized: &[&PrivateKey]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut server = Self::stopped(port, authorized);
        server.serve(listener);
        server
    }

    /// A server that will listen on `port` once started.
    fn stopped(port: u16, authorized: &[&PrivateKey]) -> Self {
        let shared = Arc::new(Shared::default());
        *shared.authorized.lock().unwrap() =
            authorized.iter().map(|k| k.public_key().clone()).collect();
        TestServer {
            port,
            host_key: ed25519(),
            shared,
            running: None,
        }
    }

    fn host_public_key(&self) -> PublicKey {
        self.host_key.public_key().clone()
    }

    async fn restart(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let config = Arc::new(russh::server::Config {
            keys: vec![self.host_key.clone()],
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            auth_rejection_time: Duration::from_millis(5),
            auth_rejection_time_initial: Some(Duration::ZERO),
            inactivity_timeout: None,
            ..Default::default()
        });
        let sessions: Arc<Mutex<Vec<Handle>>> = Arc::default();
        let shared = self.shared.clone();
        let registry = sessions.clone();
        let accept = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let handler = Conn {
                    shared: shared.clone(),
                    open_channels: Arc::default(),
                    finished: Arc::default(),
                };
                let config = config.clone();
                let shared = shared.clone();
                let registry = registry.clone();
                tokio::spawn(async move {
                    let Ok(running) = russh::server::run_stream(config, socket, handler).await
                    else {
                        return;
                    };
                    registry.lock().unwrap().push(running.handle());
                    let now = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
                    shared.max_connections.fetch_max(now, Ordering::SeqCst);
                    let _ = running.await;
                    shared.connections.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        self.running = Some(Running { accept, sessions });
    }

    /// Stops listening and drops every connection.
    async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.accept.abort();
            let _ = running.accept.await;
            let handles = std::mem::take(&mut *running.sessions.lock().unwrap());
            for h in handles {
                let _ = h
                    .disconnect(
                        Disconnect::ByApplication,
                        "test server stops".into(),
                        String::new(),
                    )
                    .await;
            }
        }
    }

    fn logins(&self) -> Vec<(String, String)> {
        self.shared.logins.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn client_key(key: &PrivateKey) -> ClientKey {
    ClientKey::from_private_key(key.clone(), "test key").unwrap()
}

/// Settings for a pool toward `port`, pinned to `host` through a known_hosts line.
fn config(port: u16, key: &PrivateKey, host: &PublicKey) -> SshConfig {
    let line = format!("[127.0.0.1]:{port} {}", host.to_openssh().unwrap());
    let pin = HostKeyPin::parse(&line).unwrap();
    let mut c = SshConfig::new("127.0.0.1", client_key(key), HostKeyCheck::Pinned(pin));
    c.port = port;
    c.connect_timeout = Duration::from_secs(10);
    c.health_interval = Duration::from_secs(3600);
    c.health_timeout = Duration::from_secs(5);
    c.default_timeout = Duration::from_secs(20);
    c.max_timeout = Duration::from_secs(60);
    c.backoff = BackoffConfig {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(300),
    };
    c
}

fn start(config: SshConfig) -> (SshPool, prometheus::Registry) {
    let registry = prometheus::Registry::new();
    let pool = SshPool::start(config, &registry).unwrap();
    (pool, registry)
}

async fn wait_state(
    pool: &SshPool,
    what: &str,
    mut pred: impl FnMut(&ConnectionState) -> bool,
) -> ConnectionState {
    let mut rx = pool.state();
    let waited = tokio::time::timeout(PATIENCE, rx.wait_for(|s| pred(s)))
        .await
        .map(|r| r.map(|state| state.clone()));
    match waited {
        Ok(Ok(state)) => state,
        _ => panic!(
            "no {what} state in time; state is {:?}",
            *pool.state().borrow()
        ),
    }
}

async fn connected(pool: &SshPool) -> ConnectionState {
    wait_state(pool, "connected", ConnectionState::is_connected).await
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one sample (`name` or `name{label="v"}`) in the text exposition.
fn metric(registry: &prometheus::Registry, series: &str) -> f64 {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

fn in_secs(secs: u64) -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(secs))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn login_runs_commands_and_collects_both_streams() {
    let key = ed25519();
    let server = TestServer::start(&[&key]).await;
    let (pool, registry) = start(config(server.port, &key, &server.host_public_key()));

    let state = connected(&pool).await;
    match state {
        ConnectionState::Connected {
            routeros_version, ..
        } => assert_eq!(routeros_version.as_deref(), Some(VERSION)),
        other => panic!("{other:?}"),
    }

    let out = pool.exec("echo hello rds", in_secs(10)).await.unwrap();
    assert_eq!(out.stdout_text(), "hello rds\n");
    assert!(out.stderr.is_empty());
    assert_eq!(out.exit_status, Some(0));

    let out = pool.exec("fail", in_secs(10)).await.unwrap();
    assert!(out.stdout.is_empty());
    assert_eq!(out.stderr_text(), "failure: no such item\n");
    assert_eq!(out.exit_status, Some(1));

    // Without a caller deadline the default applies and the command still runs.
    let out = pool.exec("echo no deadline", None).await.unwrap();
    assert_eq!(out.stdout_text(), "no deadline\n");

    let logins = server.logins();
    assert!(!logins.is_empty());
    assert!(
        logins
            .iter()
            .all(|(user, alg)| user == "admin+cet512w" && alg == "ssh-ed25519"),
        "{logins:?}"
    );
    assert_eq!(metric(&registry, "rds_csi_rds_connection_state"), 1.0);
    assert_eq!(metric(&registry, "rds_csi_rds_sessions_open"), 1.0);
    assert_eq!(metric(&registry, "rds_csi_rds_channels_in_use"), 0.0);
    assert_eq!(metric(&registry, "rds_csi_rds_queue_depth"), 0.0);
    assert_eq!(
        metric(&registry, "rds_csi_rds_reconnect_total{status=\"success\"}"),
        1.0
    );

    // A command line that would smuggle a second command is refused before it is sent.
    let err = pool
        .exec("echo a\n/system reboot", in_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::InvalidCommand { .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_console_options_log_in_as_the_bare_user() {
    let key = ed25519();
    let server = TestServer::start(&[&key]).await;
    let mut c = config(server.port, &key, &server.host_public_key());
    c.user = "storage".into();
    c.console_options = String::new();
    let (pool, _registry) = start(c);
    connected(&pool).await;
    assert!(
        server.logins().iter().all(|(user, _)| user == "storage"),
        "{:?}",
        server.logins()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rsa_client_key_signs_with_sha2() {
    let key = ClientKey::from_openssh(RSA_CLIENT_KEY, "rsa fixture").unwrap();
    assert!(key.is_rsa());
    let rsa = PrivateKey::from_openssh(RSA_CLIENT_KEY).unwrap();
    let server = TestServer::start(&[&rsa]).await;
    let mut c = config(server.port, &ed25519(), &server.host_public_key());
    c.key = key;
    let (pool, _registry) = start(c);
    connected(&pool).await;
    let out = pool.exec("echo rsa", in_secs(10)).await.unwrap();
    assert_eq!(out.stdout_text(), "rsa\n");
    let logins = server.logins();
    assert!(!logins.is_empty());
    for (_, alg) in logins {
        assert!(
            alg == "rsa-sha2-512" || alg == "rsa-sha2-256",
            "signed with {alg}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_client_key_is_auth_failed() {
    let authorized = ed25519();
    let other = ed25519();
    let server = TestServer::start(&[&authorized]).await;
    let (pool, registry) = start(config(server.port, &other, &server.host_public_key()));

    let state = wait_state(&pool, "down", |s| matches!(s, ConnectionState::Down { .. })).await;
    let ConnectionState::Down { reason, .. } = state else {
        panic!("{state:?}")
    };
    assert_eq!(
        reason,
        DownReason::AuthFailed {
            user: "admin".into()
        }
    );
    assert!(reason.to_string().contains("--rds-key-file"), "{reason}");

    // Commands fail at once, as UNAVAILABLE with the reason.
    let err = pool.exec("echo x", in_secs(10)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    match &err {
        TransportError::NotConnected {
            reason: DownReason::AuthFailed { user },
        } => assert_eq!(user, "admin"),
        other => panic!("{other:?}"),
    }
    assert!(server.logins().is_empty());
    assert_eq!(metric(&registry, "rds_csi_rds_connection_state"), 0.0);
    assert!(metric(&registry, "rds_csi_rds_reconnect_total{status=\"failure\"}") >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_pinned_host_key_reports_both_fingerprints() {
    let key = ed25519();
    let server = TestServer::start(&[&key]).await;
    let impostor = ed25519();
    let (pool, _registry) = start(config(server.port, &key, impostor.public_key()));

    let state = wait_state(&pool, "down", |s| matches!(s, ConnectionState::Down { .. })).await;
    let ConnectionState::Down { reason, .. } = state else {
        panic!("{state:?}")
    };
    let expected = fingerprint(impostor.public_key());
    let seen = fingerprint(&server.host_public_key());
    assert_ne!(expected, seen);
    assert_eq!(
        reason,
        DownReason::HostKeyMismatch {
            expected: expected.clone(),
            seen: seen.clone()
        }
    );
    assert!(
        reason.to_string().contains(&format!(
            "host key mismatch: expected {expected}, the server presented {seen}"
        )),
        "{reason}"
    );
    // The key never reached the impostor: no login happened.
    assert!(server.logins().is_empty());
    let err = pool.exec("echo x", in_secs(5)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
}

#[tokio::test(flavor = "multi_thread")]
async fn insecure_mode_accepts_any_host_key() {
    let key = ed25519();
    let server = TestServer::start(&[&key]).await;
    let mut c = config(server.port, &key, ed25519().public_key());
    c.host_key = HostKeyCheck::InsecureSkip;
    let (pool, _registry) = start(c);
    connected(&pool).await;
    assert_eq!(
        pool.exec("echo ok", in_secs(10))
            .await
            .unwrap()
            .stdout_text(),
        "ok\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_at_start_then_connects_by_itself() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let key = ed25519();
    let mut server = TestServer::stopped(port, &[&key]);
    let (pool, registry) = start(config(port, &key, &server.host_public_key()));

    let state = wait_state(&pool, "down", |s| matches!(s, ConnectionState::Down { .. })).await;
    let ConnectionState::Down { reason, .. } = state else {
        panic!("{state:?}")
    };
    assert_eq!(
        reason,
        DownReason::Refused {
            address: format!("127.0.0.1:{port}")
        }
    );
    let err = pool.exec("echo x", in_secs(5)).await.unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::NotConnected {
                reason: DownReason::Refused { .. }
            }
        ),
        "{err:?}"
    );

    // Let the pool fail a few times (backoff keeps it trying), then bring the server up.
    eventually("several failed attempts", || {
        metric(&registry, "rds_csi_rds_reconnect_total{status=\"failure\"}") >= 3.0
    })
    .await;
    server.restart().await;
    connected(&pool).await;
    assert_eq!(
        pool.exec("echo up", in_secs(10))
            .await
            .unwrap()
            .stdout_text(),
        "up\n"
    );
    assert_eq!(
        metric(&registry, "rds_csi_rds_reconnect_total{status=\"success\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hanging_command_times_out_and_the_pool_keeps_serving() {
    let key = ed25519();
    let server = TestServer::start(&[&key]).await;
    let mut c = config(server.port, &key, &server.host_public_key());
    c.max_sessions = 1;
    c.channels_per_session = 2;
    let (pool, registry) = start(c);
    connected(&pool).await;

    let budget = Duration::from_millis(300);
    let hang = pool.exec("hang", Some(Instant::now() + budget));
    let others = async {
        for i in 0..5 {
            let out = pool.exec(&format!("echo {i}"), in_secs(10)).await.unwrap();
            assert_eq!(out.stdout_text(), format!("{i}\n"));
        }
    };
    let (hung, ()) = tokio::join!(hang, others);
    let err = hung.unwrap_err();
    match err {
        TransportError::Timeout { after, stage } => {
            assert_eq!(stage, Stage::Command);
            assert!(after <= budget, "{after:?}");
        }
        ref other => panic!("{other:?}"),
    }
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
    assert!(err.command_may_have_run());

    // The channel of the hung command was closed, and its slot is free again.
    eventually("the hung channel to be closed", || {
        server.shared.closed_by_client.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert_eq!(pool.snapshot().channels_in_use, 0);
    assert_eq!(metric(&registry, "rds_csi_rds_sessions_open"), 1.0);
    assert_eq!(
        pool.exec("echo after", in_secs(10))
            .await
            .unwrap()
            .stdout_text(),
        "after\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn caller_deadline_is_capped_and_default_applies() {
    let key = ed25519();
    let server = TestServer::start(&[&key]).await;
    let mut c = config(server.port, &key, &server.host_public_key());
    c.default_timeout = Duration::from_millis(200);
    c.max_timeout = Duration::from_millis(400);
    let (pool, _registry) = start(c);
    connected(&pool).await;

    let err = pool.exec("hang", None).await.unwrap_err();
    assert_eq!(
        err,
        TransportError::Timeout {
            after: Duration::from_millis(200),
            stage: Stage::Command
        }
    );
    let err = pool.exec("hang", in_secs(3600)).await.unwrap_err();
    assert_eq!(
        err,
        TransportError::Timeout {
            after: Duration::from_millis(400),
            stage: Stage::Command
        }
    );
    // A deadline already passed fails without sending anything.
    let execs = server.shared.execs.load(Ordering::SeqCst);
    let past = Instant::now()
        .checked_sub(Duration::from_millis(1))
        .unwrap();
    let err = pool.exec("echo late", Some(past)).await.unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::Timeout {
                stage: Stage::Queue,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.command_may_have_run());
    assert_eq!(server.shared.execs.load(Ordering::SeqCst), execs);
    eventually("the two hung channels to be closed", || {
        server.shared.closed_by_client.load(Ordering::SeqCst) >= 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_restart_mid_run_reconnects_the_same_pool() {
    let key = ed25519();
    let mut server = TestServer::start(&[&key]).await;
    let (pool, registry) = start(config(server.port, &key, &server.host_public_key()));
    connected(&pool).await;
    assert_eq!(
        pool.exec("echo before", in_secs(10))
            .await
            .unwrap()
            .stdout_text(),
        "before\n"
    );

    // A command in flight when the server goes away sees the connection drop.
    let execs = server.shared.execs.load(Ordering::SeqCst);
    let in_flight = pool.exec("sleep 60000 never", in_secs(60));
    let stop = async {
        eventually("the long command to reach the server", || {
            server.shared.execs.load(Ordering::SeqCst) > execs
        })
        .await;
        server.stop().await;
    };
    let (lost, ()) = tokio::join!(in_flight, stop);
    let err = lost.unwrap_err();
    assert!(
        matches!(err, TransportError::Disconnected { .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), tonic::Code::Unavailable);

    wait_state(&pool, "not connected", |s| !s.is_connected()).await;
    server.restart().await;
    connected(&pool).await;
    assert_eq!(
        pool.exec("echo after", in_secs(10))
            .await
            .unwrap()
            .stdout_text(),
        "after\n"
    );
    assert!(metric(&registry, "rds_csi_rds_reconnect_total{status=\"success\"}") >= 2.0);
    assert!(
        metric(
            &registry,
            "rds_csi_rds_session_teardowns_total{cause=\"disconnected\"}"
        ) + metric(
            &registry,
            "rds_csi_rds_session_teardowns_total{cause=\"broken\"}"
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn many_concurrent_commands_share_at_most_four_sessions() {
    let key = ed25519();
    let server = TestServer::start(&[&key]).await;
    let mut c = config(server.port, &key, &server.host_public_key());
    c.max_sessions = 4;
    c.channels_per_session = 2;
    let (pool, _registry) = start(c);
    connected(&pool).await;

    let pool = Arc::new(pool);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.exec(&format!("sleep 200 cmd-{i}"), in_secs(60)).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let out = task.await.unwrap().unwrap();
        assert_eq!(out.stdout_text(), format!("cmd-{i}\n"));
    }
    let max_connections = server.shared.max_connections.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&max_connections),
        "{max_connections} connections"
    );
    let max_channels = server
        .shared
        .max_channels_per_connection
        .load(Ordering::SeqCst);
    assert!(
        max_channels <= 2,
        "{max_channels} channels on one connection"
    );
    let snap = pool.snapshot();
    assert_eq!((snap.channels_in_use, snap.queued), (0, 0));
    assert!(snap.sessions_open <= 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_fails_fast_with_overloaded() {
    let key = ed25519();
    let server = TestServer::start(&[&key]).await;
    let mut c = config(server.port, &key, &server.host_public_key());
    c.max_sessions = 1;
    c.channels_per_session = 1;
    c.queue_depth = 2;
    let (pool, registry) = start(c);
    connected(&pool).await;
    let pool = Arc::new(pool);

    let spawn = |line: &'static str| {
        let pool = pool.clone();
        tokio::spawn(async move { pool.exec(line, in_secs(60)).await })
    };
    let busy = spawn("hang");
    eventually("the only channel to be busy", || {
        pool.snapshot().channels_in_use == 1
    })
    .await;
    let queued = [spawn("echo one"), spawn("echo two")];
    eventually("two queued commands", || pool.snapshot().queued == 2).await;
    assert_eq!(metric(&registry, "rds_csi_rds_queue_depth"), 2.0);
    assert_eq!(metric(&registry, "rds_csi_rds_channels_in_use"), 1.0);

    let err = pool.exec("echo three", in_secs(60)).await.unwrap_err();
    assert_eq!(err, TransportError::Overloaded { depth: 2 });
    assert_eq!(err.code(), tonic::Code::Unavailable);

    // Callers that give up leave nothing behind: no queue entry, no busy channel.
    for task in queued {
        task.abort();
    }
    busy.abort();
    eventually("the queue and channel to empty", || {
        let s = pool.snapshot();
        s.queued == 0 && s.channels_in_use == 0
    })
    .await;
    eventually("the abandoned channel to be closed on the server", || {
        server.shared.closed_by_client.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert_eq!(
        pool.exec("echo free", in_secs(10))
            .await
            .unwrap()
            .stdout_text(),
        "free\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn output_is_capped() {
    let key = ed25519();
    let server = TestServer::start(&[&key]).await;
    let mut c = config(server.port, &key, &server.host_public_key());
    c.max_output_bytes = 4096;
    let (pool, _registry) = start(c);
    connected(&pool).await;

    let out = pool.exec("bytes 4000", in_secs(10)).await.unwrap();
    assert_eq!(out.stdout.len(), 4000);
    let err = pool.exec("bytes 100000", in_secs(10)).await.unwrap_err();
    assert_eq!(err, TransportError::OutputTooLarge { limit: 4096 });
    assert_eq!(err.code(), tonic::Code::Internal);
    // The session survives the stopped command.
    assert_eq!(
        pool.exec("echo still here", in_secs(10))
            .await
            .unwrap()
            .stdout_text(),
        "still here\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn large_output_within_the_cap_arrives_whole() {
    let key = ed25519();
    let server = TestServer::start(&[&key]).await;
    let (pool, _registry) = start(config(server.port, &key, &server.host_public_key()));
    connected(&pool).await;
    // Larger than the SSH window, so flow control has to work.
    let n = 5 * 1024 * 1024;
    let out = pool.exec(&format!("bytes {n}"), in_secs(60)).await.unwrap();
    assert_eq!(out.stdout.len(), n);
    assert!(out.stdout.iter().all(|b| *b == b'x'));
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_liveness_check_tears_down_and_reconnects() {
    let key = ed25519();
    let server = TestServer::start(&[&key]).await;
    let mut c = config(server.port, &key, &server.host_public_key());
    c.health_interval = Duration::from_millis(100);
    c.health_timeout = Duration::from_secs(1);
    let (pool, registry) = start(c);
    connected(&pool).await;
    eventually("a liveness check", || {
        server.shared.health_calls.load(Ordering::SeqCst) >= 3
    })
    .await;

    server.shared.hang_health.store(true, Ordering::SeqCst);
    eventually("a health-check teardown", || {
        metric(
            &registry,
            "rds_csi_rds_session_teardowns_total{cause=\"health_check\"}",
        ) >= 1.0
    })
    .await;
    server.shared.hang_health.store(false, Ordering::SeqCst);
    eventually("a reconnect", || {
        metric(&registry, "rds_csi_rds_reconnect_total{status=\"success\"}") >= 2.0
    })
    .await;
    connected(&pool).await;
    assert_eq!(
        pool.exec("echo back", in_secs(10))
            .await
            .unwrap()
            .stdout_text(),
        "back\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_pool_closes_its_sessions() {
    let key = ed25519();
    let server = TestServer::start(&[&key]).await;
    let (pool, _registry) = start(config(server.port, &key, &server.host_public_key()));
    connected(&pool).await;
    eventually("the server to count the connection", || {
        server.shared.connections.load(Ordering::SeqCst) == 1
    })
    .await;
    drop(pool);
    eventually("the connection to close", || {
        server.shared.connections.load(Ordering::SeqCst) == 0
    })
    .await;
}

#[test]
fn starting_outside_a_runtime_is_an_error_not_a_panic() {
    let key = ed25519();
    let c = config(22, &key, ed25519().public_key());
    let err = SshPool::start(c, &prometheus::Registry::new()).unwrap_err();
    assert!(matches!(err, StartError::NoRuntime), "{err:?}");
}

#[test]
fn invalid_settings_are_refused_at_start() {
    let key = ed25519();
    let mut c = config(22, &key, ed25519().public_key());
    c.max_sessions = 0;
    let err = SshPool::start(c, &prometheus::Registry::new()).unwrap_err();
    assert!(matches!(err, StartError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("--rds-max-sessions"), "{err}");
}
