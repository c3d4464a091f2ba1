//! `rds-gateway doctor`, the real binary, against the RouterOS simulator over SSH on loopback (and
//! against a closed port, a name that does not resolve and a port that never speaks SSH): every
//! failure path prints its FAIL line with the fix, skips what depends on it, and exits non-zero;
//! a healthy RDS passes every check and exits 0.
//!
//! Not covered here: a user whose group lacks a policy. The simulator cannot refuse a command
//! for lack of rights yet, so that path is tested at unit level (`doctor::rights`) on the
//! RouterOS message shapes in `tests/fixtures/doctor/`; the simulator's unknown-command fault
//! covers the other refusal end to end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rds_csi_testbed::sim::{
    FaultAction, FaultRule, Faults, RosVersion, SimConfig, SimHandle, Verb, cmdlog,
    generate_client_key, start,
};
use rds_gateway::ssh::host_key::fingerprint;
use russh::keys::{Algorithm, EcdsaCurve, PrivateKey};

const BASE: &str = "storage-pool/kubernetes-volumes";

/// A simulator in a temporary root and the client key it accepts.
struct Sim {
    dir: tempfile::TempDir,
    handle: SimHandle,
    key: PathBuf,
}

impl Sim {
    /// A healthy RDS: the base path exists, 64 GiB pool, RouterOS 7.16.2; `edit` changes that.
    async fn start(edit: impl FnOnce(&mut SimConfig)) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        let public = generate_client_key(&key).unwrap();
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, format!("{public}\n")).unwrap();
        let mut cfg = SimConfig::new(dir.path().join("root"));
        cfg.authorized_keys = Some(authorized);
        cfg.pool = BASE.to_owned();
        cfg.pool_size = Some(64 << 30);
        edit(&mut cfg);
        let handle = start(cfg).await.unwrap();
        Sim { dir, handle, key }
    }

    fn root(&self) -> &Path {
        self.handle.root()
    }

    fn port(&self) -> String {
        self.handle.addr().port().to_string()
    }

    fn fingerprint(&self) -> String {
        fingerprint(self.handle.host_key())
    }

    /// `ssh-ed25519 AAAA...` without the comment, as the doctor prints it for pinning.
    fn key_line(&self) -> String {
        let line = self.handle.host_key_openssh();
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `doctor` with every flag pointing at this simulator, the host key pinned.
    fn args(&self) -> Vec<String> {
        self.args_with_key(&self.key)
    }

    fn args_with_key(&self, key: &Path) -> Vec<String> {
        let mut args = self.unpinned_args(key);
        args.extend([
            "--rds-host-key".into(),
            self.handle.host_key_openssh().into(),
        ]);
        args
    }

    fn unpinned_args(&self, key: &Path) -> Vec<String> {
        strings(&[
            "doctor",
            "--rds-address",
            "127.0.0.1",
            "--rds-port",
            &self.port(),
            "--rds-key-file",
            &key.display().to_string(),
            "--timeout",
            "20s",
        ])
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// What one doctor run printed and how it exited.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The line that starts with `start`.
    fn line(&self, start: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{}", self.stdout))
    }

    /// The fix printed under the line that starts with `start`.
    fn fix(&self, start: &str) -> &str {
        let mut lines = self.stdout.lines();
        lines
            .by_ref()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{}", self.stdout));
        let next = lines.next().unwrap_or_default();
        next.strip_prefix("  fix: ")
            .unwrap_or_else(|| panic!("no fix under {start:?} in:\n{}", self.stdout))
    }

    fn summary(&self) -> &str {
        self.stdout.lines().last().unwrap_or_default()
    }

    fn assert_code(&self, code: i32) {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }
}

/// Runs the real binary with `args` and nothing from this process's environment (an `RDS_*`
/// variable of the developer's must not change the result).
async fn doctor(args: &[String]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rds-gateway"))
        .args(args)
        .env_clear()
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn with(mut args: Vec<String>, extra: &[&str]) -> Vec<String> {
    args.extend(strings(extra));
    args
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

fn assert_skipped_after(run: &Run, first_skipped: &str) {
    let names = [
        "address",
        "host-key",
        "auth",
        "routeros-version",
        "user-rights",
        "base-path",
        "free-space",
    ];
    let from = names.iter().position(|n| *n == first_skipped).unwrap();
    for name in &names[from..] {
        let line = run.line(&format!("SKIP {name}: not run: "));
        assert!(line.ends_with(" did not pass"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_rds_passes_every_check_and_changes_nothing() {
    let sim = Sim::start(|_| {}).await;
    let run = doctor(&sim.args()).await;
    run.assert_code(0);
    let port = sim.port();
    assert!(
        run.line("PASS address: ").starts_with(&format!(
            "PASS address: 127.0.0.1:{port} accepts TCP connections"
        )),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.line("PASS host-key: "),
        format!(
            "PASS host-key: the RDS presented {} (ssh-ed25519), which matches --rds-host-key",
            sim.fingerprint()
        )
    );
    let auth = run.line("PASS auth: ");
    assert!(
        auth.contains("logged in as RouterOS user admin (login name admin+cet512w)"),
        "{auth}"
    );
    let version = run.line("PASS routeros-version: ");
    assert!(
        version
            .starts_with("PASS routeros-version: RouterOS 7.16.2 (stable) on RDS2216; JSON output"),
        "{version}"
    );
    assert!(!version.contains("fallback"), "{version}");
    let rights = run.line("PASS user-rights: ");
    assert!(
        rights.contains("0 disk(s) with slot prefix pvc- (read as JSON)"),
        "{rights}"
    );
    assert!(rights.contains("ssh,read,write"), "{rights}");
    assert_eq!(
        run.line("PASS base-path: "),
        format!("PASS base-path: {BASE} is a directory on the RDS (pool storage-pool)")
    );
    let free = run.line("PASS free-space: ");
    assert!(
        free.starts_with("PASS free-space: pool storage-pool: ") && free.contains(" of 64.0 GiB ("),
        "{free}"
    );
    assert!(free.ends_with("; --min-free is 1.0 GiB"), "{free}");
    assert_eq!(run.summary(), "7 passed, 0 failed, 0 skipped");
    assert!(!run.stdout.contains("fix:"), "{}", run.stdout);

    // The same run as JSON: one object per check, in order.
    let json = doctor(&with(sim.args(), &["--output", "json"])).await;
    json.assert_code(0);
    let objects: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let checks: Vec<&str> = objects
        .iter()
        .map(|o| o["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "address",
            "host-key",
            "auth",
            "routeros-version",
            "user-rights",
            "base-path",
            "free-space"
        ]
    );
    assert!(
        objects
            .iter()
            .all(|o| o["status"] == "pass" && o.get("fix").is_none())
    );
    assert!(
        objects[1]["seen"]
            .as_str()
            .unwrap()
            .contains(&sim.fingerprint())
    );

    // A doctor only reads.
    let commands: Vec<String> = cmdlog::read(sim.root())
        .unwrap()
        .into_iter()
        .map(|c| c.command)
        .collect();
    assert!(!commands.is_empty());
    for c in &commands {
        assert!(
            c.contains(" print"),
            "the doctor ran a command that is not a print: {c}"
        );
        for verb in ["add", "set", "remove"] {
            assert!(!c.contains(&format!(" {verb} ")), "{c}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_refused_and_everything_after_is_skipped() {
    let port = closed_port().await.to_string();
    let args = strings(&["doctor", "--rds-address", "127.0.0.1", "--rds-port", &port]);
    let run = doctor(&args).await;
    run.assert_code(1);
    assert_eq!(
        run.line("FAIL address: "),
        format!(
            "FAIL address: connection to 127.0.0.1:{port} refused: nothing listens on port {port}"
        )
    );
    let fix = run.fix("FAIL address: ");
    assert!(
        fix.contains("--rds-port") && fix.contains("/ip service"),
        "{fix}"
    );
    assert_skipped_after(&run, "host-key");
    assert_eq!(run.summary(), "0 passed, 1 failed, 6 skipped");

    let json = doctor(&with(args, &["--output", "json"])).await;
    json.assert_code(1);
    let first: serde_json::Value =
        serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["check"], "address");
    assert_eq!(first["status"], "fail");
    assert!(first["fix"].as_str().unwrap().contains("--rds-port"));
    assert_eq!(json.stdout.lines().count(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_is_a_dns_failure() {
    let run = doctor(&strings(&[
        "doctor",
        "--rds-address",
        "rds.doctor-test.invalid",
        "--timeout",
        "10s",
    ]))
    .await;
    run.assert_code(1);
    assert!(
        run.line("FAIL address: ")
            .starts_with("FAIL address: cannot resolve the RDS address rds.doctor-test.invalid: "),
        "{}",
        run.stdout
    );
    assert!(run.fix("FAIL address: ").contains("--rds-address"));
    assert_skipped_after(&run, "host-key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_never_speaks_ssh_times_out_in_the_handshake() {
    // Accepts connections and says nothing, like a black-holing middlebox.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let run = doctor(&strings(&[
        "doctor",
        "--rds-address",
        "127.0.0.1",
        "--rds-port",
        &port,
        "--timeout",
        "2s",
    ]))
    .await;
    let took = started.elapsed();
    silent.abort();
    run.assert_code(1);
    assert!(
        run.line("PASS address: ")
            .contains("accepts TCP connections")
    );
    let line = run.line("FAIL host-key: ");
    assert!(
        line.starts_with(&format!(
            "FAIL host-key: 127.0.0.1:{port} accepted the TCP connection but completed no SSH \
             handshake within "
        )) && line.ends_with("(--timeout)"),
        "{line}"
    );
    assert!(run.fix("FAIL host-key: ").contains("--rds-port"));
    assert_skipped_after(&run, "auth");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_pinned_key_is_a_mismatch_showing_both_fingerprints() {
    let sim = Sim::start(|_| {}).await;
    let other = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
    let pinned = other.public_key().to_openssh().unwrap();
    let args = with(sim.unpinned_args(&sim.key), &["--rds-host-key", &pinned]);
    let run = doctor(&args).await;
    run.assert_code(1);
    assert_eq!(
        run.line("FAIL host-key: "),
        format!(
            "FAIL host-key: host key mismatch: the RDS presented {}, but --rds-host-key pins {}",
            sim.fingerprint(),
            fingerprint(other.public_key())
        )
    );
    let fix = run.fix("FAIL host-key: ");
    assert!(
        fix.contains(&format!(
            "replace --rds-host-key with \"{}\"",
            sim.key_line()
        )),
        "{fix}"
    );
    assert!(fix.contains("do not connect"), "{fix}");
    assert_skipped_after(&run, "auth");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pin_fails_with_the_line_to_pin_and_the_insecure_flag_passes_with_a_warning() {
    let sim = Sim::start(|_| {}).await;
    let run = doctor(&sim.unpinned_args(&sim.key)).await;
    run.assert_code(1);
    assert_eq!(
        run.line("FAIL host-key: "),
        format!(
            "FAIL host-key: the RDS presented {} (ssh-ed25519), but no host key is pinned",
            sim.fingerprint()
        )
    );
    let fix = run.fix("FAIL host-key: ");
    assert!(
        fix.contains(&format!("--rds-host-key \"{}\"", sim.key_line())),
        "{fix}"
    );
    assert_skipped_after(&run, "auth");

    let insecure = doctor(&with(
        sim.unpinned_args(&sim.key),
        &["--rds-insecure-skip-host-key-check"],
    ))
    .await;
    insecure.assert_code(0);
    let line = insecure.line("PASS host-key: ");
    assert!(line.contains(&sim.fingerprint()), "{line}");
    assert!(line.contains("WARNING: not verified"), "{line}");
    assert!(line.contains(&sim.key_line()), "{line}");

    let garbled = doctor(&with(
        sim.unpinned_args(&sim.key),
        &["--rds-host-key", "ssh-ed25519 not-a-key"],
    ))
    .await;
    garbled.assert_code(1);
    assert!(
        garbled
            .line("FAIL host-key: ")
            .contains("but --rds-host-key cannot be used"),
        "{}",
        garbled.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_user_does_not_accept_fails_auth_with_the_import_command() {
    let sim = Sim::start(|_| {}).await;
    let stranger = sim.dir.path().join("stranger");
    let stranger_public = generate_client_key(&stranger).unwrap();
    let run = doctor(&sim.args_with_key(&stranger)).await;
    run.assert_code(1);
    let line = run.line("FAIL auth: ");
    assert!(
        line.starts_with(
            "FAIL auth: auth failed: the RouterOS user admin does not accept the ssh-ed25519 key SHA256:"
        ) && line.contains(&stranger.display().to_string()),
        "{line}"
    );
    let fix = run.fix("FAIL auth: ");
    assert!(
        fix.contains("/user ssh-keys import public-key-file=rds-csi.pub user=admin"),
        "{fix}"
    );
    let stranger_key: String = stranger_public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(fix.contains(&stranger_key), "{fix}");
    assert_skipped_after(&run, "routeros-version");

    // A user the RDS does not have is refused the same way, and named.
    let wrong_user = doctor(&with(sim.args(), &["--rds-user", "csi"])).await;
    wrong_user.assert_code(1);
    assert!(
        wrong_user
            .line("FAIL auth: ")
            .contains("the RouterOS user csi does not accept"),
        "{}",
        wrong_user.stdout
    );
    assert!(wrong_user.fix("FAIL auth: ").contains("user=csi"));

    // Key files that cannot be used never reach the RDS.
    let missing = doctor(&sim.args_with_key(&sim.dir.path().join("absent"))).await;
    missing.assert_code(1);
    assert!(
        missing
            .line("FAIL auth: ")
            .starts_with("FAIL auth: cannot read the RDS client key"),
        "{}",
        missing.stdout
    );
    let ecdsa_path = sim.dir.path().join("id_ecdsa");
    let ecdsa = PrivateKey::random(
        &mut rand::rng(),
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
    )
    .unwrap();
    std::fs::write(
        &ecdsa_path,
        ecdsa
            .to_openssh(russh::keys::ssh_key::LineEnding::LF)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let unsupported = doctor(&sim.args_with_key(&ecdsa_path)).await;
    unsupported.assert_code(1);
    assert!(
        unsupported
            .line("FAIL auth: ")
            .contains("key; use an ed25519 or RSA key"),
        "{}",
        unsupported.stdout
    );
    assert!(
        unsupported
            .fix("FAIL auth: ")
            .contains("ssh-keygen -t ed25519")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rds_that_refuses_every_login_fails_auth() {
    let sim = Sim::start(|cfg| cfg.refuse_auth = true).await;
    let run = doctor(&sim.args()).await;
    run.assert_code(1);
    assert!(run.line("PASS host-key: ").contains(&sim.fingerprint()));
    assert!(
        run.line("FAIL auth: ")
            .starts_with("FAIL auth: auth failed: the RouterOS user admin does not accept"),
        "{}",
        run.stdout
    );
    assert!(run.fix("FAIL auth: ").contains("/user ssh-keys import"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routeros_before_7_13_passes_with_the_text_fallback() {
    let sim = Sim::start(|cfg| {
        cfg.routeros_version = RosVersion {
            major: 7,
            minor: 10,
            patch: 0,
        };
    })
    .await;
    let run = doctor(&sim.args()).await;
    run.assert_code(0);
    let version = run.line("PASS routeros-version: ");
    assert!(
        version.starts_with("PASS routeros-version: RouterOS 7.10 (stable) on RDS2216; "),
        "{version}"
    );
    assert!(version.contains("(text fallback)"), "{version}");
    assert!(run.line("PASS user-rights: ").contains("(read as text)"));
    assert_eq!(run.summary(), "7 passed, 0 failed, 0 skipped");
    let commands = cmdlog::read(sim.root()).unwrap();
    assert!(
        commands.iter().all(|c| !c.command.contains(":serialize")),
        "JSON was tried on 7.10"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_the_rds_does_not_know_fails_user_rights_with_the_policies_needed() {
    let sim = Sim::start(|_| {}).await;
    Faults::write(
        sim.root(),
        &[FaultRule::always(
            Verb::DiskPrint,
            FaultAction::UnknownCommand,
        )],
    )
    .unwrap();
    let run = doctor(&sim.args()).await;
    run.assert_code(1);
    assert!(run.line("PASS routeros-version: ").contains("7.16.2"));
    let line = run.line("FAIL user-rights: ");
    assert!(
        line.starts_with(
            "FAIL user-rights: RouterOS does not know `:put [:serialize to=json [/disk print \
             detail as-value where slot~\"^pvc-\"]]` (user admin): "
        ) && line.contains("bad command name"),
        "{line}"
    );
    let fix = run.fix("FAIL user-rights: ");
    assert!(fix.contains("rose-storage"), "{fix}");
    assert!(
        fix.contains("/user group add name=rds-csi policy=ssh,read,write"),
        "{fix}"
    );
    assert!(
        fix.contains("/user set [find name=admin] group=rds-csi"),
        "{fix}"
    );
    assert_skipped_after(&run, "base-path");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_the_read_policy_fails_user_rights_with_the_policies_needed() {
    let sim = Sim::start(|_| {}).await;
    Faults::write(
        sim.root(),
        &[FaultRule::always(
            Verb::DiskPrint,
            FaultAction::NotEnoughPermissions,
        )],
    )
    .unwrap();
    let run = doctor(&sim.args()).await;
    run.assert_code(1);
    let line = run.line("FAIL user-rights: ");
    assert!(
        line.contains("for user admin: not enough permissions (9)"),
        "{line}"
    );
    let fix = run.fix("FAIL user-rights: ");
    assert!(
        fix.contains("/user group add name=rds-csi policy=ssh,read,write"),
        "{fix}"
    );
    assert!(
        !fix.contains("rose-storage"),
        "a rights problem, not a package: {fix}"
    );
    assert_skipped_after(&run, "base-path");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_base_path_fails_with_the_command_that_creates_it() {
    // The pool exists, the directory for volumes does not.
    let sim = Sim::start(|cfg| cfg.pool = "storage-pool".to_owned()).await;
    let run = doctor(&sim.args()).await;
    run.assert_code(1);
    assert_eq!(
        run.line("FAIL base-path: "),
        format!("FAIL base-path: the volume base path {BASE} does not exist on the RDS")
    );
    let fix = run.fix("FAIL base-path: ");
    assert!(
        fix.contains(&format!("/file add name={BASE} type=directory")),
        "{fix}"
    );
    assert!(fix.contains("--rds-volume-base-path"), "{fix}");
    // Free space does not depend on the directory.
    assert!(run.line("PASS free-space: ").contains("pool storage-pool"));
    assert_eq!(run.summary(), "6 passed, 1 failed, 0 skipped");

    // A file where the directory should be.
    std::fs::write(sim.root().join(BASE), b"").unwrap();
    let file = doctor(&sim.args()).await;
    file.assert_code(1);
    assert!(
        file.line("FAIL base-path: ").starts_with(&format!(
            "FAIL base-path: {BASE} exists on the RDS but is a "
        )),
        "{}",
        file.stdout
    );

    // A base path the gateway could never use.
    let bad = doctor(&with(sim.args(), &["--rds-volume-base-path", "../etc"])).await;
    bad.assert_code(1);
    assert!(
        bad.line("FAIL base-path: ")
            .starts_with("FAIL base-path: --rds-volume-base-path \"../etc\" cannot be used"),
        "{}",
        bad.stdout
    );
    assert!(
        bad.line("SKIP free-space: ")
            .contains("--rds-volume-base-path")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_free_space_fails_and_min_free_moves_the_bar() {
    let sim = Sim::start(|cfg| cfg.pool_size = Some(512 << 20)).await;
    let run = doctor(&sim.args()).await;
    run.assert_code(1);
    let line = run.line("FAIL free-space: ");
    assert!(
        line.starts_with("FAIL free-space: pool storage-pool: ")
            && line.contains(" of 512.0 MiB (")
            && line.ends_with(", below --min-free 1.0 GiB"),
        "{line}"
    );
    let fix = run.fix("FAIL free-space: ");
    assert!(
        fix.contains("lower --min-free") && fix.contains("grow the pool"),
        "{fix}"
    );
    assert_eq!(run.summary(), "6 passed, 1 failed, 0 skipped");

    let lower = doctor(&with(sim.args(), &["--min-free", "256MiB"])).await;
    lower.assert_code(0);
    assert!(
        lower
            .line("PASS free-space: ")
            .ends_with("; --min-free is 256.0 MiB")
    );
}
