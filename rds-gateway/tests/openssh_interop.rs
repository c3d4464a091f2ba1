//! The gateway against a stock OpenSSH server, to prove that its russh client interoperates with
//! a standard SSH implementation and not only with the simulator's own russh server.
//!
//! Each test starts Debian's `/usr/sbin/sshd` on a free loopback port with a temporary
//! configuration whose `ForceCommand` is the simulator's one-shot mode (`rds-sim exec --root
//! DIR`): OpenSSH does the key exchange, host-key proof, public-key login and channel handling,
//! and every exec request runs one RouterOS command line against the simulator's on-disk state.
//! The gateway pins the host key `ssh-keygen` made (its `.pub` line), so the tests also show that
//! a wrong pinned key is refused before any command runs, and that an RSA client key logs in
//! with a SHA-2 signature.
//!
//! Needs `openssh-server` and `openssh-client` installed, and the `rds-sim` binary built
//! (`cargo build -p rds-csi-testbed --bin rds-sim`); a missing one fails the test and says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::Registry;
use rds_csi_proto::gateway::gateway_server::Gateway as _;
use rds_csi_proto::gateway::{
    CreateVolumeRequest, DeleteVolumeRequest, ExpandVolumeRequest, GetVolumeRequest, HealthRequest,
};
use rds_csi_testbed::sim::cmdlog;
use rds_csi_testbed::sim::state::{self, Paths};
use rds_gateway::assembly::{Gateway, Settings};
use rds_gateway::executor::ExecutorConfig;
use rds_gateway::routeros::names::{PoolPath, SlotPrefix};
use rds_gateway::runner::{CommandRunner, SshRunner};
use rds_gateway::ssh::host_key::fingerprint;
use rds_gateway::ssh::{
    BackoffConfig, ClientKey, ConnectionState, DownReason, HostKeyCheck, HostKeyPin, SshConfig,
    SshPool, SshSession, TransportError,
};
use russh::keys::PublicKey;
use tonic::{Code, Request};

const SSHD: &str = "/usr/sbin/sshd";
const INSTALL: &str = "apt-get install openssh-server openssh-client";
const BASE: &str = "storage-pool/kubernetes-volumes";
const MIB: u64 = 1 << 20;
/// How long anything in these tests may take (every exec forks sshd and starts rds-sim).
const PATIENCE: Duration = Duration::from_secs(30);

/// Fails (never skips) when an OpenSSH program is missing.
fn require_openssh() {
    assert!(
        Path::new(SSHD).is_file(),
        "{SSHD} is missing: {INSTALL} (this test needs a stock OpenSSH server)"
    );
    match Command::new("ssh-keygen")
        .arg("-?")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) => panic!("ssh-keygen cannot run ({e}): {INSTALL}"),
    }
}

/// `ssh-keygen -t <kind>` into `path` (no passphrase); returns the `.pub` line.
fn keygen(path: &Path, kind: &str) -> String {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C", "openssh-interop", "-f"])
        .arg(path);
    if kind == "rsa" {
        cmd.args(["-b", "3072"]);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("ssh-keygen cannot run ({e}): {INSTALL}"));
    assert!(
        out.status.success(),
        "ssh-keygen -t {kind} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut public = path.as_os_str().to_owned();
    public.push(".pub");
    std::fs::read_to_string(PathBuf::from(public))
        .unwrap()
        .trim()
        .to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A stock sshd on a loopback port whose every session runs `rds-sim exec` on `root`.
struct Sshd {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
    /// The host key's OpenSSH public line (what the gateway pins).
    host_public: String,
    /// The simulator's root.
    root: PathBuf,
}

impl Sshd {
    /// Starts sshd accepting the client keys whose public lines are in `authorized`.
    fn start(authorized: &[&str]) -> Sshd {
        require_openssh();
        let sim = rds_csi_testbed::bins::path("rds-sim").unwrap_or_else(|e| {
            panic!("{e} (for this test: cargo build -p rds-csi-testbed --bin rds-sim)")
        });
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("ssh_host_ed25519_key");
        let host_public = keygen(&host_key, "ed25519");
        let authorized_keys = dir.path().join("authorized_keys");
        std::fs::write(&authorized_keys, format!("{}\n", authorized.join("\n"))).unwrap();
        let root = dir.path().join("sim-root");
        std::fs::create_dir_all(&root).unwrap();
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();

        let port = free_port();
        let config = dir.path().join("sshd_config");
        let text = format!(
            "ListenAddress 127.0.0.1\n\
             Port {port}\n\
             HostKey {host_key}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {authorized_keys}\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             StrictModes no\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAcceptedAlgorithms ssh-ed25519,rsa-sha2-512,rsa-sha2-256\n\
             PermitTTY no\n\
             AllowTcpForwarding no\n\
             X11Forwarding no\n\
             PrintMotd no\n\
             LogLevel VERBOSE\n\
             ForceCommand {sim} exec --root {root} --pool-size 64G\n",
            host_key = host_key.display(),
            pid = dir.path().join("sshd.pid").display(),
            authorized_keys = authorized_keys.display(),
            sim = sim.display(),
            root = root.display(),
        );
        // No AcceptEnv line: sshd then takes no environment from the client at all.
        std::fs::write(&config, text).unwrap();
        let log = std::fs::File::create(dir.path().join("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{SSHD} cannot start ({e}): {INSTALL}"));
        let mut sshd = Sshd {
            dir,
            child,
            port,
            host_public,
            root,
        };
        sshd.wait_listening();
        sshd
    }

    fn wait_listening(&mut self) {
        let until = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("sshd exited with {status}:\n{}", self.log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < until,
                "sshd never listened on port {}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What sshd logged so far.
    fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("sshd.log")) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// The command lines the simulator received (through sshd and `rds-sim exec`).
    fn logged(&self) -> Vec<cmdlog::LoggedCommand> {
        cmdlog::read(&self.root).unwrap()
    }

    fn image(&self, slot: &str) -> PathBuf {
        self.root.join(BASE).join(format!("{slot}.img"))
    }

    /// The simulator's own record of its file disks (slot names).
    fn sim_disks(&self) -> Vec<String> {
        state::load(&Paths::new(&self.root))
            .unwrap()
            .disks
            .into_iter()
            .map(|d| d.slot)
            .collect()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Transport settings toward `sshd` as the current user, pinned to `pin`.
fn ssh_config(sshd: &Sshd, key: &Path, pin: &str) -> SshConfig {
    let mut c = SshConfig::new(
        "127.0.0.1",
        ClientKey::from_file(key).unwrap(),
        HostKeyCheck::Pinned(HostKeyPin::parse(pin).unwrap()),
    );
    c.port = sshd.port;
    // The test runs as root, so the OpenSSH login is `root`. RouterOS reads console options
    // appended to the login name (`root+cet512w`), but OpenSSH would take that for another
    // user that does not exist: the options are off here.
    c.user = whoami();
    c.console_options = String::new();
    c.default_timeout = PATIENCE;
    c.max_timeout = PATIENCE * 2;
    c.connect_timeout = Duration::from_secs(10);
    c.health_interval = Duration::from_secs(2);
    c.health_timeout = Duration::from_secs(10);
    c.backoff = BackoffConfig {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(500),
    };
    c
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    let name = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(
        name, "root",
        "this test logs into sshd as root (PermitRootLogin prohibit-password); run it as root"
    );
    name
}

/// A gateway over an SSH pool, as the binary assembles it.
struct Rig {
    gateway: Gateway,
    runner: Arc<SshRunner>,
    _registry: Registry,
}

impl Rig {
    fn start(config: SshConfig) -> Rig {
        let registry = Registry::new();
        let runner = Arc::new(SshRunner::new(SshPool::start(config, &registry).unwrap()));
        let mut settings = Settings::new(
            PoolPath::parse(BASE).unwrap(),
            vec![SlotPrefix::parse("pvc-").unwrap()],
        );
        settings.executor = ExecutorConfig {
            default_timeout: PATIENCE,
            max_timeout: PATIENCE * 2,
        };
        let as_runner: Arc<dyn CommandRunner> = runner.clone();
        let gateway = Gateway::build(as_runner, settings, &registry).unwrap();
        Rig {
            gateway,
            runner,
            _registry: registry,
        }
    }

    async fn wait_state(
        &self,
        what: &str,
        pred: impl Fn(&ConnectionState) -> bool,
    ) -> ConnectionState {
        let mut rx = self.runner.pool().state();
        let waited = tokio::time::timeout(PATIENCE, rx.wait_for(|s| pred(s)))
            .await
            .map(|r| r.map(|state| state.clone()));
        match waited {
            Ok(Ok(state)) => state,
            _ => panic!(
                "no {what} state in time: {:?}",
                *self.runner.pool().state().borrow()
            ),
        }
    }
}

fn create(slot: &str, required: u64) -> Request<CreateVolumeRequest> {
    Request::new(CreateVolumeRequest {
        slot: slot.into(),
        required_bytes: required,
        limit_bytes: 0,
        location: None,
        nqn: format!("nqn.2000-02.com.mikrotik:{slot}"),
        source: None,
    })
}

fn delete(slot: &str) -> Request<DeleteVolumeRequest> {
    Request::new(DeleteVolumeRequest {
        slot: slot.into(),
        location: None,
    })
}

fn get(slot: &str) -> Request<GetVolumeRequest> {
    Request::new(GetVolumeRequest { slot: slot.into() })
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_round_trip_through_stock_openssh() {
    let scratch = tempfile::tempdir().unwrap();
    let key = scratch.path().join("id_ed25519");
    let public = keygen(&key, "ed25519");
    let sshd = Sshd::start(&[&public]);
    let rig = Rig::start(ssh_config(&sshd, &key, &sshd.host_public));

    // The pool logged in and its liveness command ran through sshd and rds-sim.
    let state = rig
        .wait_state("connected", ConnectionState::is_connected)
        .await;
    let ConnectionState::Connected {
        routeros_version, ..
    } = state
    else {
        unreachable!()
    };
    assert_eq!(routeros_version.as_deref(), Some("7.16.2 (stable)"));
    let health = rig
        .gateway
        .service
        .health(Request::new(HealthRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(health.ready, "{health:?}");

    let service = &rig.gateway.service;
    let slot = "pvc-openssh-a";
    // 1.5 GiB + 1 byte, rounded up to the next MiB.
    let asked = (3 << 29) + 1;
    let created = service
        .create_volume(create(slot, asked))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.slot, slot);
    assert_eq!(created.size_bytes, (3 << 29) + MIB);
    assert_eq!(created.file_path, format!("/{BASE}/{slot}.img"));
    assert!(created.exported);
    assert_eq!(
        std::fs::metadata(sshd.image(slot)).unwrap().len(),
        created.size_bytes
    );
    assert_eq!(sshd.sim_disks(), [slot]);

    // Idempotent: the same request adopts the disk the one-shot simulator kept on disk.
    let again = service
        .create_volume(create(slot, asked))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, created);

    let got = service.get_volume(get(slot)).await.unwrap().into_inner();
    assert_eq!(got, created);

    let grown = service
        .expand_volume(Request::new(ExpandVolumeRequest {
            slot: slot.into(),
            required_bytes: 2 << 30,
            limit_bytes: 0,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grown.size_bytes, 2 << 30);
    assert_eq!(std::fs::metadata(sshd.image(slot)).unwrap().len(), 2 << 30);
    let got = service.get_volume(get(slot)).await.unwrap().into_inner();
    assert_eq!(got.size_bytes, 2 << 30);

    service.delete_volume(delete(slot)).await.unwrap();
    assert_eq!(
        service.get_volume(get(slot)).await.unwrap_err().code(),
        Code::NotFound
    );
    assert!(!sshd.image(slot).exists(), "the backing file leaked");
    assert!(sshd.sim_disks().is_empty());
    // Deleting again is success.
    service.delete_volume(delete(slot)).await.unwrap();

    // Every command reached the simulator through sshd's forced command, as the login user.
    let logged = sshd.logged();
    assert!(logged.iter().all(|c| c.user == "root"), "{logged:?}");
    let commands: Vec<&str> = logged.iter().map(|c| c.command.as_str()).collect();
    for wanted in [
        "/system resource print",
        "/disk add",
        "/disk set",
        "/disk remove",
        "/file remove",
    ] {
        assert!(
            commands.iter().any(|c| c.starts_with(wanted)),
            "no {wanted} among {commands:#?}"
        );
    }
    let log = sshd.log();
    assert!(log.contains("Accepted publickey for root"), "{log}");
    assert!(log.contains("forced-command"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_pinned_host_key_is_refused_before_any_command() {
    let scratch = tempfile::tempdir().unwrap();
    let key = scratch.path().join("id_ed25519");
    let public = keygen(&key, "ed25519");
    let sshd = Sshd::start(&[&public]);
    let impostor = keygen(&scratch.path().join("impostor_host_key"), "ed25519");
    let expected = fingerprint(&PublicKey::from_openssh(&impostor).unwrap());
    let seen = fingerprint(&PublicKey::from_openssh(&sshd.host_public).unwrap());
    assert_ne!(expected, seen);

    // One connection: refused during the handshake with both fingerprints.
    let config = ssh_config(&sshd, &key, &impostor);
    match SshSession::connect(&config).await {
        Err(TransportError::HostKeyMismatch {
            expected: e,
            seen: s,
        }) => {
            assert_eq!(e, expected);
            assert_eq!(s, seen);
        }
        other => panic!("expected a host key mismatch, got {other:?}"),
    }

    // The gateway: down with the same reason, and its operations are UNAVAILABLE.
    let rig = Rig::start(config);
    let state = rig
        .wait_state("down", |s| matches!(s, ConnectionState::Down { .. }))
        .await;
    let ConnectionState::Down { reason, .. } = state else {
        unreachable!()
    };
    assert_eq!(
        reason,
        DownReason::HostKeyMismatch {
            expected: expected.clone(),
            seen: seen.clone()
        }
    );
    let status = rig
        .gateway
        .service
        .create_volume(create("pvc-openssh-b", MIB))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("host key mismatch"), "{status:?}");
    let health = rig
        .gateway
        .service
        .health(Request::new(HealthRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(!health.ready);
    assert!(health.reason.contains(&seen), "{health:?}");

    // Nothing ran, and the client never even tried to log in.
    assert!(sshd.logged().is_empty(), "{:?}", sshd.logged());
    assert!(sshd.sim_disks().is_empty());
    let log = sshd.log();
    assert!(!log.contains("Accepted publickey"), "{log}");
    drop(rig);

    // The same server with the right pin works: the refusal was the pin's doing.
    let rig = Rig::start(ssh_config(&sshd, &key, &sshd.host_public));
    rig.wait_state("connected", ConnectionState::is_connected)
        .await;
    let logged = sshd.logged();
    assert!(
        logged.iter().any(|c| c.command == "/system resource print"),
        "{logged:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rsa_client_key_logs_in_with_sha2() {
    let scratch = tempfile::tempdir().unwrap();
    let key = scratch.path().join("id_rsa");
    let public = keygen(&key, "rsa");
    let sshd = Sshd::start(&[&public]);
    let config = ssh_config(&sshd, &key, &sshd.host_public);
    assert!(config.key.is_rsa());
    let rig = Rig::start(config);
    rig.wait_state("connected", ConnectionState::is_connected)
        .await;

    let service = &rig.gateway.service;
    let slot = "pvc-openssh-rsa";
    let v = service
        .create_volume(create(slot, 64 * MIB))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.size_bytes, 64 * MIB);
    assert_eq!(sshd.sim_disks(), [slot]);
    service.delete_volume(delete(slot)).await.unwrap();
    assert!(sshd.sim_disks().is_empty());
    assert!(!sshd.image(slot).exists());

    // sshd accepts only ed25519 and RSA with SHA-2 here (no `ssh-rsa`), and says it took an
    // RSA key.
    let log = sshd.log();
    assert!(
        log.lines()
            .any(|l| l.contains("Accepted publickey for root") && l.contains("RSA SHA256:")),
        "{log}"
    );
}
