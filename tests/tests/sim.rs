//! The simulator seen from outside: SSH round trips with russh's client on loopback (logins,
//! every command, faults, restarts), the `rds-sim` binary in serve and one-shot exec mode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rds_csi_testbed::sim::{
    ExecOutput, FaultAction, FaultRule, Faults, SimClient, SimConfig, SimHandle, Verb, cmdlog,
    generate_client_key, start,
};

const GIB: u64 = 1 << 30;

/// A temporary directory with a client key pair, its authorized_keys, and a simulator root.
struct Fixture {
    dir: tempfile::TempDir,
    key: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        let line = generate_client_key(&key).unwrap();
        std::fs::write(dir.path().join("authorized_keys"), format!("{line}\n")).unwrap();
        Fixture { dir, key }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn config(&self) -> SimConfig {
        let mut cfg = SimConfig::new(self.root());
        cfg.authorized_keys = Some(self.dir.path().join("authorized_keys"));
        cfg.pool_size = Some(100 * GIB);
        cfg
    }

    async fn start(&self) -> SimHandle {
        start(self.config()).await.unwrap()
    }

    async fn login(&self, sim: &SimHandle) -> SimClient {
        self.login_as(sim, "admin").await
    }

    async fn login_as(&self, sim: &SimHandle, user: &str) -> SimClient {
        SimClient::connect(sim.addr(), sim.host_key_openssh(), user, &self.key)
            .await
            .unwrap()
    }
}

async fn run(client: &SimClient, command: &str) -> String {
    let out = client.exec(command).await.unwrap();
    assert_eq!(out.exit_status, Some(0), "{command}: {out:?}");
    assert!(out.closed, "{command}: {out:?}");
    out.stdout
}

fn add_line(slot: &str, size: &str) -> String {
    format!(
        "/disk add type=file file-path=/storage-pool/{slot}.img file-size={size} slot={slot} \
         nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:{slot}"
    )
}

async fn count(client: &SimClient, slot: &str) -> String {
    run(client, &format!("/disk print count-only where slot={slot}"))
        .await
        .trim()
        .to_string()
}

fn flat(out: &str) -> String {
    out.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

fn fixture_key(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/keys")
        .join(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn login_with_the_right_key_and_refusals() {
    let f = Fixture::new();
    let sim = f.start().await;
    let client = f.login(&sim).await;
    assert!(
        run(&client, "/system resource print")
            .await
            .contains("board-name: RDS2216")
    );

    // another key is refused
    let other = f.dir.path().join("other");
    generate_client_key(&other).unwrap();
    let refused = SimClient::connect(sim.addr(), sim.host_key_openssh(), "admin", &other).await;
    assert!(refused.is_err());
    // so is another user, console options or not
    assert!(
        SimClient::connect(sim.addr(), sim.host_key_openssh(), "root", &f.key)
            .await
            .is_err()
    );
    assert!(
        SimClient::connect(sim.addr(), sim.host_key_openssh(), "root+cet512w", &f.key)
            .await
            .is_err()
    );
    // a wrong pinned host key makes the client give up
    let wrong_host = std::fs::read_to_string(f.dir.path().join("other.pub")).unwrap();
    assert!(
        SimClient::connect(sim.addr(), &wrong_host, "admin", &f.key)
            .await
            .is_err()
    );
    // the host key is written for pinning
    let pinned = std::fs::read_to_string(f.root().join(".rds-sim/host_key.pub")).unwrap();
    assert_eq!(pinned.trim(), sim.host_key_openssh());
    client.close().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refuse_auth_refuses_everyone() {
    let f = Fixture::new();
    let mut cfg = f.config();
    cfg.refuse_auth = true;
    let sim = start(cfg).await.unwrap();
    assert!(
        SimClient::connect(sim.addr(), sim.host_key_openssh(), "admin", &f.key)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rsa_keys_log_in_with_sha2_only() {
    let f = Fixture::new();
    let public = std::fs::read_to_string(fixture_key("rsa_test_key.pub")).unwrap();
    std::fs::write(f.dir.path().join("authorized_keys"), public).unwrap();
    let sim = f.start().await;
    let client = SimClient::connect(
        sim.addr(),
        sim.host_key_openssh(),
        "admin",
        &fixture_key("rsa_test_key"),
    )
    .await
    .unwrap();
    assert!(
        run(&client, "/system resource print")
            .await
            .contains("version: 7.16.2 (stable)")
    );

    // the same key with a SHA-1 `ssh-rsa` signature is refused
    struct AnyHost;
    impl russh::client::Handler for AnyHost {
        type Error = russh::Error;
        async fn check_server_key(
            &mut self,
            _: &russh::keys::PublicKeyOrCertificate,
        ) -> Result<bool, Self::Error> {
            Ok(true)
        }
    }
    let key = russh::keys::load_secret_key(fixture_key("rsa_test_key"), None).unwrap();
    let mut handle = russh::client::connect(
        Arc::new(russh::client::Config::default()),
        sim.addr(),
        AnyHost,
    )
    .await
    .unwrap();
    let auth = handle
        .authenticate_publickey(
            "admin",
            russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key), None),
        )
        .await
        .unwrap();
    assert!(!auth.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn keepalive_requests_and_shells_are_refused_like_routeros() {
    let f = Fixture::new();
    let sim = f.start().await;
    let client = f.login(&sim).await;
    assert!(
        !client
            .global_request("keepalive@openssh.com")
            .await
            .unwrap()
    );
    // the session is still good afterwards
    assert!(
        run(&client, "/system resource print")
            .await
            .contains("uptime:")
    );
    // no interactive console: the request fails, with a word on stderr
    let shell = client.shell().await.unwrap();
    assert!(shell.refused, "{shell:?}");
    assert!(shell.stderr.contains("exec"), "{shell:?}");
    assert_ne!(shell.exit_status, Some(0));
    assert!(
        run(&client, "/system resource print")
            .await
            .contains("uptime:")
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn disk_life_cycle_over_ssh() {
    let f = Fixture::new();
    let sim = f.start().await;
    let client = f.login(&sim).await;
    let img = f.root().join("storage-pool/pvc-1.img");

    assert_eq!(run(&client, &add_line("pvc-1", "10G")).await, "");
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 10 * GIB);

    let printed = run(&client, "/disk print detail where slot=pvc-1").await;
    assert!(
        printed.starts_with("Flags: B - BLOCK-DEVICE; t - NVME-TCP-EXPORT\n 3 Bt type=file"),
        "{printed}"
    );
    assert!(flat(&printed).contains("size=10 737 418 240"));
    assert!(flat(&printed).contains("file-size=10.0GiB"));

    let json = run(
        &client,
        ":put [:serialize to=json [/disk print detail as-value where slot~\"^pvc-\"]]",
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v[0]["slot"], "pvc-1");
    assert_eq!(v[0]["size"].as_u64(), Some(10 * GIB));
    assert_eq!(v[0]["nvme-tcp-export"], true);

    assert_eq!(
        run(&client, "/disk set [find slot=pvc-1] file-size=20G").await,
        ""
    );
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 20 * GIB);
    assert_eq!(
        run(&client, "/disk set [find slot=pvc-1] file-size=5G").await,
        "failure: file-size can only be increased\n"
    );

    // copy, then the unknown-source case
    assert_eq!(
        run(
            &client,
            "/disk add type=file copy-from=[find slot=pvc-1] file-path=/storage-pool/snap-1.img slot=snap-1",
        )
        .await,
        ""
    );
    assert_eq!(
        std::fs::metadata(f.root().join("storage-pool/snap-1.img"))
            .unwrap()
            .len(),
        20 * GIB
    );
    assert_eq!(
        run(
            &client,
            "/disk add type=file copy-from=[find slot=ghost] file-path=/storage-pool/x.img slot=x",
        )
        .await,
        "failure: no such item\n"
    );

    // space
    assert_eq!(
        run(&client, &add_line("huge", "1T")).await,
        "failure: not enough space\n"
    );

    // remove leaves the file; file remove deletes it; empty finds are silent
    assert_eq!(run(&client, "/disk remove [find slot=pvc-1]").await, "");
    assert!(img.exists());
    assert_eq!(
        run(&client, "/disk print detail where slot=pvc-1").await,
        ""
    );
    assert_eq!(run(&client, "/disk remove [find slot=pvc-1]").await, "");
    assert_eq!(
        run(
            &client,
            "/file remove [find name=\"storage-pool/pvc-1.img\"]"
        )
        .await,
        ""
    );
    assert!(!img.exists());
    assert_eq!(
        run(
            &client,
            "/file remove [find name=\"storage-pool/pvc-1.img\"]"
        )
        .await,
        ""
    );
    assert_eq!(run(&client, "/disk remove pvc-1").await, "no such item\n");

    // pool capacity both ways
    let pool = run(
        &client,
        "/disk print detail where mount-point=\"storage-pool\"",
    )
    .await;
    assert!(
        flat(&pool).contains("size=107 374 182 400 free=85 899 345 920"),
        "{pool}"
    );
    let file = run(&client, "/file print detail where name=\"storage-pool\"").await;
    assert!(
        flat(&file).contains("free=85 899 345 920 use=20%"),
        "{file}"
    );

    // errors are text with status 0
    assert_eq!(
        run(&client, "/disk frobnicate").await,
        "bad command name frobnicate (line 1 column 7)\n"
    );
    assert_eq!(
        run(&client, "/disk print detail where slot=\"a").await,
        "syntax error (line 1 column 31)\n"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn console_width_comes_from_the_login_name() {
    let f = Fixture::new();
    let sim = f.start().await;
    let narrow = f.login(&sim).await;
    assert_eq!(run(&narrow, &add_line("pvc-1", "1G")).await, "");
    let wide = f.login_as(&sim, "admin+cet512w").await;
    let at_80 = run(&narrow, "/disk print detail where slot=pvc-1").await;
    let at_512 = run(&wide, "/disk print detail where slot=pvc-1").await;
    assert!(at_80.lines().all(|l| l.len() < 80));
    assert!(at_80.lines().count() > 4);
    assert_eq!(at_512.lines().count(), 2, "{at_512}");
    assert_eq!(
        flat(&at_80).replace("  ", " "),
        flat(&at_512).replace("  ", " ")
    );
    // the log names the user without console options
    let log = cmdlog::read(&f.root()).unwrap();
    assert!(log.iter().all(|l| l.user == "admin"));
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_keeps_disks_and_host_key() {
    let f = Fixture::new();
    let sim = f.start().await;
    let host_key = sim.host_key_openssh().to_string();
    let client = f.login(&sim).await;
    assert_eq!(run(&client, &add_line("pvc-1", "1G")).await, "");
    assert_eq!(
        run(
            &client,
            "/disk set [find slot=pvc-1] comment=\"survives reboots\""
        )
        .await,
        ""
    );
    client.close().await;
    sim.shutdown().await;

    let sim = f.start().await;
    assert_eq!(sim.host_key_openssh(), host_key);
    let client = f.login(&sim).await;
    let out = run(&client, "/disk print detail where slot=pvc-1").await;
    assert!(out.contains(" 3 Bt ;;; survives reboots"), "{out}");
    // ids keep counting where they stopped
    assert_eq!(run(&client, &add_line("pvc-2", "1G")).await, "");
    let v: serde_json::Value = serde_json::from_str(
        run(
            &client,
            ":put [:serialize to=json [/disk print as-value where slot~\"^pvc\"]]",
        )
        .await
        .trim(),
    )
    .unwrap();
    assert_eq!(v[0][".id"], "*10");
    assert_eq!(v[1][".id"], "*11");
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_over_ssh() {
    let f = Fixture::new();
    let sim = f.start().await;
    let root = f.root();

    // drop: the connection closes, nothing is applied
    Faults::write(
        &root,
        &[FaultRule::times(Verb::DiskAdd, FaultAction::Drop, 1)],
    )
    .unwrap();
    let client = f.login(&sim).await;
    let out = client.exec(&add_line("a", "1G")).await;
    assert!(
        matches!(
            &out,
            Ok(ExecOutput {
                exit_status: None,
                ..
            }) | Err(_)
        ),
        "{out:?}"
    );
    let client = f.login(&sim).await;
    assert_eq!(count(&client, "a").await, "0");

    // fail-after-apply: no answer, but the disk exists
    Faults::write(
        &root,
        &[FaultRule::times(
            Verb::DiskAdd,
            FaultAction::FailAfterApply,
            1,
        )],
    )
    .unwrap();
    let out = client.exec(&add_line("a", "1G")).await;
    assert!(
        matches!(
            &out,
            Ok(ExecOutput {
                exit_status: None,
                ..
            }) | Err(_)
        ),
        "{out:?}"
    );
    let client = f.login(&sim).await;
    assert_eq!(count(&client, "a").await, "1");

    // no-space and unknown-command answer with text
    Faults::write(
        &root,
        &[FaultRule::times(Verb::DiskAdd, FaultAction::NoSpace, 1)],
    )
    .unwrap();
    assert_eq!(
        run(&client, &add_line("b", "1G")).await,
        "failure: not enough space\n"
    );
    Faults::write(
        &root,
        &[FaultRule::times(
            Verb::DiskSet,
            FaultAction::UnknownCommand,
            1,
        )],
    )
    .unwrap();
    assert_eq!(
        run(&client, "/disk set [find slot=a] file-size=2G").await,
        "bad command name disk (line 1 column 2)\n"
    );
    assert_eq!(count(&client, "b").await, "0");

    // hang: no answer at all; other channels of the same session still work
    Faults::write(
        &root,
        &[FaultRule::times(Verb::DiskRemove, FaultAction::Hang, 1)],
    )
    .unwrap();
    let hung = client
        .exec_within("/disk remove [find slot=a]", Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(hung, None);
    assert_eq!(count(&client, "a").await, "1");

    // a rule without a count fires every time, until the file is cleared
    Faults::write(
        &root,
        &[FaultRule::always(Verb::System, FaultAction::UnknownCommand)],
    )
    .unwrap();
    for _ in 0..2 {
        assert!(
            run(&client, "/system resource print")
                .await
                .starts_with("bad command name system")
        );
    }
    Faults::clear(&root).unwrap();
    assert!(
        run(&client, "/system resource print")
            .await
            .contains("board-name")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_line_is_logged_even_rejected_ones() {
    let f = Fixture::new();
    let sim = f.start().await;
    let client = f.login(&sim).await;
    let hostile = "/disk print; /system reboot";
    assert!(
        run(&client, hostile)
            .await
            .starts_with("bad command name reboot")
    );
    assert_eq!(run(&client, "/disk print count-only").await, "3\n");
    let log = cmdlog::read(&f.root()).unwrap();
    let commands: Vec<&str> = log.iter().map(|l| l.command.as_str()).collect();
    assert_eq!(commands, vec![hostile, "/disk print count-only"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_clients_get_distinct_disks() {
    let f = Fixture::new();
    let sim = f.start().await;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let client = f.login(&sim).await;
        tasks.push(tokio::spawn(async move {
            run(&client, &add_line(&format!("pvc-{i}"), "1G")).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), "");
    }
    let client = f.login(&sim).await;
    let v: serde_json::Value = serde_json::from_str(
        run(
            &client,
            ":put [:serialize to=json [/disk print as-value where type=file]]",
        )
        .await
        .trim(),
    )
    .unwrap();
    let mut ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[".id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6);
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rds-sim"))
}

#[test]
fn one_shot_exec_shares_state_with_the_server() {
    let f = Fixture::new();
    let root = f.root();
    let out = bin()
        .args(["exec", "--root"])
        .arg(&root)
        .args(["--pool-size", "10G", "--"])
        .arg(add_line("pvc-1", "1G"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    // the ForceCommand way
    let out = bin()
        .args(["exec", "--root"])
        .arg(&root)
        .args(["--pool-size", "10G", "--wrap-width", "512"])
        .env(
            "SSH_ORIGINAL_COMMAND",
            "/disk print detail where slot=pvc-1",
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("file-size=1024.0MiB"));
    // failures are text with status 0
    let out = bin()
        .args(["exec", "--root"])
        .arg(&root)
        .env("SSH_ORIGINAL_COMMAND", "/disk frob")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "bad command name frob (line 1 column 7)\n"
    );
    // a drop fault is an exit without output
    Faults::write(
        &root,
        &[FaultRule::times(Verb::DiskPrint, FaultAction::Drop, 1)],
    )
    .unwrap();
    let out = bin()
        .args(["exec", "--root"])
        .arg(&root)
        .args(["--", "/disk print"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(out.stdout.is_empty());
    // no command at all is a usage error
    let out = bin()
        .args(["exec", "--root"])
        .arg(&root)
        .env_remove("SSH_ORIGINAL_COMMAND")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let log = cmdlog::read(&root).unwrap();
    assert_eq!(log.len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_serves_until_sigterm() {
    let f = Fixture::new();
    let mut child = bin()
        .arg("--root")
        .arg(f.root())
        .arg("--authorized-keys")
        .arg(f.dir.path().join("authorized_keys"))
        .args([
            "--pool-size",
            "10G",
            "--latency",
            "disk-print=5ms",
            "--print-style",
            "old",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (addr, host_key) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().unwrap().unwrap();
        let second = lines.next().unwrap().unwrap();
        (
            first
                .strip_prefix("rds-sim listening on ")
                .unwrap()
                .parse::<std::net::SocketAddr>()
                .unwrap(),
            second.strip_prefix("host key: ").unwrap().to_string(),
        )
    })
    .await
    .unwrap();
    let client = SimClient::connect(addr, &host_key, "admin", &f.key)
        .await
        .unwrap();
    let out = client
        .exec("/disk print detail where slot=storage-pool")
        .await
        .unwrap();
    assert_eq!(out.exit_status, Some(0));
    // old style: a single filtered result has no index and no legend
    assert!(
        out.stdout.starts_with("type=raid slot=\"storage-pool\""),
        "{}",
        out.stdout
    );
    client.close().await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn help_describes_the_options() {
    let top = bin().arg("--help").output().unwrap();
    assert!(top.status.success());
    let top = String::from_utf8_lossy(&top.stdout);
    assert!(top.contains("serve") && top.contains("exec"), "{top}");
    let out = bin().args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let exec = bin().args(["exec", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&exec.stdout).contains("SSH_ORIGINAL_COMMAND"));
    // without --root, serving is refused with a usage error
    let none = bin().output().unwrap();
    assert_eq!(none.status.code(), Some(2));
    for option in [
        "--listen",
        "--host-key",
        "--authorized-keys",
        "--user",
        "--pool",
        "--pool-size",
        "--wrap-width",
        "--print-style",
        "--routeros-version",
        "--json-floats",
        "--latency",
        "--refuse-auth",
        "RDS_SIM_ROOT",
    ] {
        assert!(help.contains(option), "{option} missing from --help");
    }
}
