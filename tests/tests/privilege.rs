//! Least privilege and secrets, shown on the running testbed (issue: reliability and
//! security, item 4): the frontend (both modes) and the gateway run as `nobody` with no
//! capabilities while the helper alone is root; the helper's, the frontend's and the
//! gateway's sockets refuse a client of another uid — by the socket file's mode, and again
//! by the peer-uid check when the mode is opened up; and after a whole lifecycle logged at
//! debug level, the gateway's SSH private key appears in no log line, span, metric or error
//! message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rds_csi_proto::csi::volume_capability::access_mode::Mode;
use rds_csi_proto::csi::{
    CreateVolumeRequest, DeleteVolumeRequest, NodeStageVolumeRequest, ProbeRequest,
};
use rds_csi_testbed::csi_client::{Csi, mount_capability};
use rds_csi_testbed::http;
use rds_csi_testbed::lifecycle::{self, Flavor};
use rds_csi_testbed::otlp_sink::OtlpSink;
use rds_csi_testbed::stack::{Stack, StackConfig, UNPRIVILEGED};

/// A uid nothing in the testbed runs as.
const STRANGER: u32 = 12345;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the privilege tests need root: they start the testbed (loop devices, mounts) and \
         act as other users; run them as root"
    );
}

/// A `Key:` line of /proc/<pid>/status.
fn status_field(pid: u32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

/// Runs `socket-knock` as `uid` against `socket`: 0 served, 2 refused, 3 closed unheard.
fn knock(uid: u32, socket: &Path) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_socket-knock"))
        .arg(socket)
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

async fn wait_ready(csi: &Csi) {
    let by = Instant::now() + Duration::from_secs(30);
    let mut identity = csi.identity.clone();
    while identity.probe(ProbeRequest {}).await.is_err() {
        assert!(Instant::now() < by, "the driver never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_helper_is_privileged_and_sockets_serve_only_their_clients() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StackConfig::new(dir.path());
    cfg.controller_socket = Some(dir.path().join("controller/csi.sock"));
    let stack = Stack::start(&cfg).await.unwrap();
    let ep = stack.endpoints.clone();

    for name in [
        "rds-gateway",
        "csi-frontend-controller",
        "csi-frontend-node",
    ] {
        let pid = stack.pid(name).unwrap();
        let uids = status_field(pid, "Uid:");
        assert!(
            uids.split_whitespace()
                .all(|u| u == UNPRIVILEGED.to_string()),
            "{name} runs as {uids}"
        );
        let gids = status_field(pid, "Gid:");
        assert!(
            gids.split_whitespace()
                .all(|g| g == UNPRIVILEGED.to_string()),
            "{name} runs with groups {gids}"
        );
        assert_eq!(status_field(pid, "Groups:"), "", "{name} keeps no groups");
        for caps in ["CapEff:", "CapPrm:"] {
            assert_eq!(status_field(pid, caps), "0000000000000000", "{name} {caps}");
        }
    }
    let helper = stack.pid("nvme-helper").unwrap();
    assert_eq!(
        status_field(helper, "Uid:").split_whitespace().next(),
        Some("0"),
        "the helper is the privileged one"
    );

    // The whole driver works that way.
    let csi = Csi::connect(&ep.csi_socket, &ep.controller_socket).unwrap();
    wait_ready(&csi).await;

    // Every socket serves its own clients and refuses a stranger at connect.
    let sockets = [
        ("helper", &ep.helper_socket, UNPRIVILEGED),
        ("gateway", &ep.gateway_socket, UNPRIVILEGED),
        ("node CSI", &ep.csi_socket, 0),
        ("controller CSI", &ep.controller_socket, 0),
    ];
    for (what, socket, client) in sockets {
        let (code, said) = knock(client, socket);
        assert_eq!(code, 0, "{what} socket for uid {client}: {said}");
        let (code, said) = knock(STRANGER, socket);
        assert_eq!(code, 2, "{what} socket for uid {STRANGER}: {said}");
        assert!(said.contains("ermission denied"), "{what}: {said}");
    }

    // With the helper's socket opened to everyone, its peer-uid check still hangs up on
    // the stranger before a byte, and still serves the frontend's uid.
    std::fs::set_permissions(&ep.helper_socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, said) = knock(STRANGER, &ep.helper_socket);
    assert_eq!(code, 3, "helper socket at 0666 for uid {STRANGER}: {said}");
    let (code, said) = knock(UNPRIVILEGED, &ep.helper_socket);
    assert_eq!(
        code, 0,
        "helper socket at 0666 for the frontend's uid: {said}"
    );

    stack.stop().await.unwrap();
}

/// Strings that would only be in a text if the private key had leaked into it.
fn key_needles(key_file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(key_file).unwrap();
    let key = russh::keys::PrivateKey::from_openssh(&text).unwrap();
    let seed = key
        .key_data()
        .ed25519()
        .expect("the testbed's gateway key is ed25519")
        .private
        .to_bytes();
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let mut needles = vec![
        "OPENSSH PRIVATE KEY".to_string(),
        hex.clone(),
        hex.to_uppercase(),
        format!("{seed:?}"),
    ];
    // Every base64 line of the file after the first (which holds only the header and the
    // public key), and each line's halves, so a partial dump is caught too.
    let body: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .skip(1)
        .filter(|l| l.len() >= 24)
        .collect();
    assert!(!body.is_empty(), "the key file has a body");
    for line in body {
        needles.push(line.to_string());
        let (a, b) = line.split_at(line.len() / 2);
        needles.push(a.to_string());
        needles.push(b.to_string());
    }
    for n in &needles {
        assert!(
            n.starts_with("OPENSSH")
                || text.contains(n.as_str())
                || n == &hex
                || n == &hex.to_uppercase()
                || n.starts_with('['),
            "needle {n} is not from the key"
        );
    }
    needles
}

fn assert_clean(what: &str, haystack: &str, needles: &[String]) {
    for n in needles {
        assert!(
            !haystack.contains(n.as_str()),
            "the SSH private key leaked into {what} (found {n:?})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssh_key_appears_in_no_log_span_metric_or_error() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let spans_file = dir.path().join("spans.jsonl");
    let sink = OtlpSink::start(Some(spans_file.clone())).await.unwrap();
    let mut cfg = StackConfig::new(&dir.path().join("state"));
    std::fs::create_dir_all(&cfg.state_dir).unwrap();
    cfg.log_level = "debug".into();
    cfg.log_dir = Some(logs.clone());
    cfg.otlp_endpoint = Some(sink.endpoint());
    let stack = Stack::start(&cfg).await.unwrap();
    let ep = stack.endpoints.clone();
    let csi = Csi::connect(&ep.csi_socket, &ep.controller_socket).unwrap();
    wait_ready(&csi).await;

    let (steps, ok) = lifecycle::run(&csi, &ep.kubelet_dir, Flavor::Ext4, "secret").await;
    assert!(ok, "{steps:#?}");

    // Failures carry messages back to the caller: collect a few kinds.
    let mut errors = Vec::new();
    let mut ctrl = csi.controller.clone();
    let mut node = csi.node.clone();
    let cap = mount_capability("ext4", Mode::SingleNodeWriter);
    for (key, value) in [("volumePath", "/x;y"), ("nvmePort", "22;reboot")] {
        let r = ctrl
            .create_volume(CreateVolumeRequest {
                name: "secret-bad-params".into(),
                volume_capabilities: vec![cap.clone()],
                parameters: [(key.to_string(), value.to_string())].into(),
                ..Default::default()
            })
            .await;
        errors.push(r.unwrap_err().message().to_string());
    }
    let r = ctrl
        .delete_volume(DeleteVolumeRequest {
            volume_id: String::new(),
            ..Default::default()
        })
        .await;
    errors.push(r.unwrap_err().message().to_string());
    let r = node
        .node_stage_volume(NodeStageVolumeRequest {
            volume_id: "pvc-00000000-0000-4000-8000-000000000001".into(),
            staging_target_path: ep
                .kubelet_dir
                .join("absent/globalmount")
                .display()
                .to_string(),
            volume_capability: Some(cap.clone()),
            ..Default::default()
        })
        .await;
    errors.push(r.unwrap_err().message().to_string());

    let mut metrics = String::new();
    for (name, addr) in &ep.metrics {
        let body = http::get(*addr, "/metrics", Duration::from_secs(5))
            .await
            .unwrap()
            .body;
        metrics.push_str(&format!("# {name}\n{body}\n"));
    }

    // A restart makes the gateway log its whole start-up again, key loading included.
    let mut stack = stack;
    stack.restart("rds-gateway").await.unwrap();
    wait_ready(&csi).await;
    stack.stop().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink.spans().len() < 50 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let needles = key_needles(&ep.sim_root.parent().unwrap().join("keys/gateway_ed25519"));
    let mut log_bytes = 0;
    for entry in std::fs::read_dir(&logs).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        log_bytes += text.len();
        assert_clean(&path.display().to_string(), &text, &needles);
    }
    let gateway_log = std::fs::read_to_string(logs.join("rds-gateway.log")).unwrap();
    assert!(
        gateway_log.contains("DEBUG"),
        "the gateway logged at debug level, so the check saw everything it logs"
    );
    let spans = std::fs::read_to_string(&spans_file).unwrap();
    assert!(
        spans.lines().count() >= 50,
        "the spans of the lifecycle were exported ({} lines)",
        spans.lines().count()
    );
    assert_clean("the exported spans", &spans, &needles);
    assert!(metrics.contains("rds_csi_grpc_server_handled_total"));
    assert_clean("the metrics", &metrics, &needles);
    for e in &errors {
        assert!(!e.is_empty());
        assert_clean("an error message", e, &needles);
    }
    println!(
        "searched {} needles in {log_bytes} bytes of logs, {} span lines, {} bytes of metrics \
         and {} error messages: no trace of the key",
        needles.len(),
        spans.lines().count(),
        metrics.len(),
        errors.len()
    );
}
