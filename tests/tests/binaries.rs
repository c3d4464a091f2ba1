//! Each shipped binary as a real process: it serves on its socket, answers a call,
//! exposes its metrics, stops cleanly on SIGTERM and removes its socket; bad start-up
//! input gives one clear error line and a non-zero exit, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use rds_csi_proto::channel::connect_lazy;
use rds_csi_proto::csi::GetPluginInfoRequest;
use rds_csi_proto::csi::identity_client::IdentityClient;
use rds_csi_proto::endpoint::Endpoint;
use rds_csi_proto::gateway::gateway_client::GatewayClient;
use rds_csi_proto::helper::node_helper_client::NodeHelperClient;
use rds_csi_testbed::process::{Process, free_port};
use rds_csi_testbed::{bins, http};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(20);

fn command(name: &str, socket: &Path, metrics: SocketAddr) -> Command {
    command_at(name, &format!("unix://{}", socket.display()), metrics)
}

fn command_at(name: &str, endpoint: &str, metrics: SocketAddr) -> Command {
    let mut cmd = Command::new(bins::path(name).unwrap_or_else(|e| panic!("{e}")));
    if name == "nvme-helper" {
        // Keep the helper's state, host identity and kubelet root inside the test's
        // world instead of /var/lib and /etc/nvme.
        let root = std::env::temp_dir().join(format!("binaries-helper-{}", std::process::id()));
        let kubelet = root.join("kubelet");
        std::fs::create_dir_all(&kubelet).unwrap();
        cmd.arg("--kubelet-dir")
            .arg(&kubelet)
            .arg("--state-dir")
            .arg(root.join("state"))
            .arg("--host-nqn-file")
            .arg(root.join("hostnqn"))
            .arg("--host-id-file")
            .arg(root.join("hostid"));
    }
    cmd.arg("--endpoint")
        .arg(endpoint)
        .arg("--metrics-address")
        .arg(metrics.to_string())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    cmd
}

async fn call_once(name: &str, endpoint: &Endpoint) -> (&'static str, &'static str) {
    let channel = connect_lazy(endpoint).unwrap();
    match name {
        "csi-frontend" => {
            let info = IdentityClient::new(channel)
                .get_plugin_info(GetPluginInfoRequest {})
                .await
                .unwrap();
            assert_eq!(info.get_ref().name, "rds.csi.srvlab.io");
            ("csi.v1.Identity", "GetPluginInfo")
        }
        "rds-gateway" => {
            let h = GatewayClient::new(channel)
                .health(rds_csi_proto::gateway::HealthRequest {})
                .await
                .unwrap();
            assert!(!h.get_ref().ready, "no RDS session yet");
            assert!(!h.get_ref().reason.is_empty(), "not-ready says why");
            ("rdscsi.gateway.v1.Gateway", "Health")
        }
        "nvme-helper" => {
            NodeHelperClient::new(channel)
                .health(rds_csi_proto::helper::HealthRequest {})
                .await
                .unwrap();
            ("rdscsi.helper.v1.NodeHelper", "Health")
        }
        other => panic!("unknown binary {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_binary_serves_reports_metrics_and_stops_cleanly() {
    for name in ["csi-frontend", "rds-gateway", "nvme-helper"] {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join(format!("{name}.sock"));
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap();
        let mut proc = Process::spawn(name, command(name, &socket, metrics)).unwrap();
        proc.wait_for_socket(&socket, WAIT).await.unwrap();
        let mode = std::fs::metadata(&socket).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600,
            "{name}: socket mode"
        );

        let (service, method) = call_once(name, &Endpoint::Unix(socket.clone())).await;
        let scraped = http::get(metrics, "/metrics", WAIT).await.unwrap();
        assert_eq!(scraped.status, 200, "{name}");
        let handled = http::sample(
            &scraped.body,
            "rds_csi_grpc_server_handled_total",
            &[
                ("component", name),
                ("grpc_service", service),
                ("grpc_method", method),
                ("grpc_code", "OK"),
            ],
        );
        assert_eq!(handled, Some(1.0), "{name}:\n{}", scraped.body);
        assert!(
            http::sample(&scraped.body, "process_resident_memory_bytes", &[]).is_some(),
            "{name}: process metrics"
        );
        assert_eq!(
            http::get(metrics, "/healthz", WAIT).await.unwrap().status,
            200
        );

        let status = proc.stop(Signal::SIGTERM, WAIT).await.unwrap();
        assert!(status.success(), "{name} exited with {status}");
        assert!(!socket.exists(), "{name} left its socket behind");
    }
}

/// Runs `name` with `args` and expects a quick non-zero exit with one clear error line.
async fn expect_start_failure(name: &str, cmd: Command, must_mention: &str) {
    let mut cmd = cmd;
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let proc = Process::spawn(name, cmd).unwrap();
    let out = proc.wait(WAIT).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{name} should fail: {stderr}");
    assert!(!stderr.contains("panicked"), "{name} panicked: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(
        errors.len(),
        1,
        "{name}: expected one error line, got:\n{stderr}"
    );
    assert!(
        errors[0].contains(must_mention),
        "{name}: {must_mention:?} not in {:?}",
        errors[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_start_up_input_is_one_clear_error() {
    for name in ["csi-frontend", "rds-gateway", "nvme-helper"] {
        let dir = tempfile::tempdir().unwrap();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap();

        // A malformed endpoint.
        let cmd = command_at(name, "http://nowhere", metrics);
        expect_start_failure(name, cmd, "unknown scheme").await;

        // A socket directory that does not exist.
        let cmd = command(name, &dir.path().join("missing/x.sock"), metrics);
        expect_start_failure(name, cmd, "does not exist").await;

        // A socket directory this user cannot write: run as nobody when we are root.
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let mut cmd = command(name, &ro.join("x.sock"), metrics);
        if nix::unistd::geteuid().is_root() {
            cmd.uid(65534).gid(65534);
        }
        expect_start_failure(name, cmd, "ermission denied").await;

        // A busy metrics port.
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let cmd = command(name, &dir.path().join("y.sock"), busy.local_addr().unwrap());
        expect_start_failure(name, cmd, "cannot listen for metrics").await;
        assert!(
            !dir.path().join("y.sock").exists(),
            "{name}: no socket left after a failed start"
        );
    }
}
