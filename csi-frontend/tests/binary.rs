//! The real `csi-frontend` binary: the connections gauge across a restart, and serving as an
//! unprivileged user.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{start_gateway, start_helper};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rds_csi_proto::channel::connect_lazy;
use rds_csi_proto::csi::controller_client::ControllerClient;
use rds_csi_proto::csi::identity_client::IdentityClient;
use rds_csi_proto::csi::node_client::NodeClient;
use rds_csi_proto::csi::volume_capability::access_mode::Mode;
use rds_csi_proto::csi::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use rds_csi_proto::csi::*;
use rds_csi_proto::endpoint::Endpoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;
use tonic::{Code, Request};

const WAIT: Duration = Duration::from_secs(30);

/// A running frontend process; killed if a test fails before stopping it.
struct Frontend {
    child: Option<Child>,
    log: PathBuf,
}

impl Frontend {
    fn spawn(bin: &Path, args: &[String], log: &Path, uid: Option<u32>) -> Frontend {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .env_remove("KUBERNETES_SERVICE_HOST");
        if let Some(uid) = uid {
            cmd.uid(uid).gid(uid);
        }
        Frontend {
            child: Some(cmd.spawn().unwrap()),
            log: log.to_path_buf(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for a clean exit.
    async fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "frontend did not stop: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Frontend {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn channel(socket: &Path) -> Channel {
    connect_lazy(&Endpoint::Unix(socket.to_path_buf())).unwrap()
}

/// Waits until the frontend answers Probe as ready.
async fn wait_ready(fe: &mut Frontend, socket: &Path) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = fe.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("frontend exited with {status}: {}", fe.log());
        }
        if socket.exists() {
            let mut id = IdentityClient::new(channel(socket));
            if let Ok(r) = id.probe(ProbeRequest {}).await
                && r.get_ref().ready == Some(true)
            {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "frontend not ready: {}",
            fe.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scrape(addr: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

/// The value of an unlabelled sample in a Prometheus text exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Parses a grpc-timeout header value (digits and a unit).
fn grpc_timeout(v: &str) -> Duration {
    let (n, unit) = v.split_at(v.len() - 1);
    let n: u64 = n.parse().unwrap();
    match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        other => panic!("unit {other}"),
    }
}

fn mount_rwo() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume::default())),
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
    }
}

fn block_rwx() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Block(BlockVolume {})),
        access_mode: Some(AccessMode {
            mode: Mode::MultiNodeMultiWriter as i32,
        }),
    }
}

async fn create(c: &mut ControllerClient<Channel>, name: &str, cap: VolumeCapability) -> Volume {
    let mut req = Request::new(CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(CapacityRange {
            required_bytes: 1 << 30,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![cap],
        ..Default::default()
    });
    req.set_timeout(Duration::from_secs(20));
    c.create_volume(req)
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap()
}

async fn publish(
    c: &mut ControllerClient<Channel>,
    v: &Volume,
    node: &str,
    cap: VolumeCapability,
) -> Result<HashMap<String, String>, tonic::Status> {
    c.controller_publish_volume(ControllerPublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        node_id: node.into(),
        volume_capability: Some(cap),
        readonly: false,
        secrets: HashMap::new(),
        volume_context: v.volume_context.clone(),
    })
    .await
    .map(|r| r.into_inner().publish_context)
}

fn controller_args(dir: &Path, gateway: &Path, metrics: SocketAddr) -> Vec<String> {
    vec![
        "--mode".into(),
        "controller".into(),
        "--endpoint".into(),
        format!("unix://{}", dir.join("csi.sock").display()),
        "--gateway-endpoint".into(),
        format!("unix://{}", gateway.display()),
        "--metrics-address".into(),
        metrics.to_string(),
        "--attachment-source".into(),
        "file".into(),
        "--attachment-store".into(),
        format!("file:{}", dir.join("state/attachments.json").display()),
        "--default-nvme-address".into(),
        "127.0.0.1".into(),
        "--shutdown-grace-seconds".into(),
        "5".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connections_gauge_is_right_before_and_after_a_restart() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_csi-frontend"));
    let dir = tempfile::tempdir().unwrap();
    let (gw, gw_path, _) = start_gateway(dir.path());
    let socket = dir.path().join("csi.sock");
    let metrics = free_port();
    let args = controller_args(dir.path(), &gw_path, metrics);
    let log = dir.path().join("frontend.log");

    let mut fe = Frontend::spawn(&bin, &args, &log, None);
    wait_ready(&mut fe, &socket).await;
    let mut c = ControllerClient::new(channel(&socket));
    let a = create(&mut c, "vol-a", mount_rwo()).await;
    let b = create(&mut c, "vol-b", block_rwx()).await;
    let d = create(&mut c, "vol-d", mount_rwo()).await;

    // The caller's deadline (20 s) reached the gateway, shortened by the time spent so far.
    {
        let s = gw.state.lock().unwrap();
        let creates: Vec<Duration> = s
            .timeouts
            .iter()
            .filter(|(m, _)| m == "CreateVolume")
            .map(|(_, t)| grpc_timeout(t))
            .collect();
        assert_eq!(creates.len(), 3, "{:?}", s.timeouts);
        for t in creates {
            assert!(
                t <= Duration::from_secs(20) && t > Duration::from_secs(10),
                "{t:?}"
            );
        }
        assert!(!s.request_ids.is_empty());
    }

    publish(&mut c, &a, "node-a", mount_rwo()).await.unwrap();
    // A live migration: two nodes, one volume.
    publish(&mut c, &b, "node-a", block_rwx()).await.unwrap();
    publish(&mut c, &b, "node-b", block_rwx()).await.unwrap();
    publish(&mut c, &d, "node-b", mount_rwo()).await.unwrap();
    c.controller_unpublish_volume(ControllerUnpublishVolumeRequest {
        volume_id: d.volume_id.clone(),
        node_id: "node-b".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let conflict = publish(&mut c, &a, "node-b", mount_rwo())
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), Code::FailedPrecondition);

    let before = scrape(metrics).await;
    assert_eq!(
        sample(&before, "rds_csi_nvme_connections_active"),
        Some(2.0),
        "{before}"
    );
    let status = fe.stop().await;
    assert!(status.success(), "unclean stop: {status}");

    let mut fe = Frontend::spawn(&bin, &args, &log, None);
    wait_ready(&mut fe, &socket).await;
    // The very first scrape after the restart is already right.
    let after = scrape(metrics).await;
    assert_eq!(
        sample(&after, "rds_csi_nvme_connections_active"),
        Some(2.0),
        "{after}"
    );
    // And so are the rules the state implies.
    let mut c = ControllerClient::new(channel(&socket));
    let conflict = publish(&mut c, &a, "node-b", mount_rwo())
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), Code::FailedPrecondition);
    assert!(conflict.message().contains("node-a"));
    let third = publish(&mut c, &b, "node-c", block_rwx())
        .await
        .unwrap_err();
    assert_eq!(third.code(), Code::FailedPrecondition);
    publish(&mut c, &a, "node-a", mount_rwo()).await.unwrap();
    let status = fe.stop().await;
    assert!(status.success(), "unclean stop: {status}");
}

/// `Uid:` and `CapEff:` of a process, from /proc.
fn proc_identity(pid: u32) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    (field("Uid:"), field("CapEff:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_controller_and_node_calls_as_an_unprivileged_user() {
    let root = nix::unistd::geteuid().is_root();
    let uid = root.then_some(65534u32);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    // A copy of the binary in the open directory, so that the unprivileged user can run it
    // whatever the permissions of the build tree.
    let bin = dir.path().join("csi-frontend");
    std::fs::copy(env!("CARGO_BIN_EXE_csi-frontend"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_gw, gw_path, _) = start_gateway(dir.path());
    let (helper, helper_path, _) = start_helper(dir.path());
    let socket = dir.path().join("csi.sock");
    let metrics = free_port();
    let mut args = controller_args(dir.path(), &gw_path, metrics);
    args[1] = "all".into();
    args.extend([
        "--helper-endpoint".to_string(),
        format!("unix://{}", helper_path.display()),
        "--node-id".into(),
        "node-a".into(),
    ]);
    let log = dir.path().join("frontend.log");
    std::fs::write(&log, "").unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666)).unwrap();

    let mut fe = Frontend::spawn(&bin, &args, &log, uid);
    wait_ready(&mut fe, &socket).await;
    let (uids, cap_eff) = proc_identity(fe.pid());
    if let Some(uid) = uid {
        assert!(
            uids.split_whitespace().all(|u| u == uid.to_string()),
            "Uid: {uids}"
        );
    }
    assert_eq!(
        u64::from_str_radix(&cap_eff, 16).unwrap(),
        0,
        "no effective capabilities"
    );

    // A controller call, which also writes the attachment state as that user.
    let mut c = ControllerClient::new(channel(&socket));
    let v = create(&mut c, "vol-unprivileged", mount_rwo()).await;
    let publish_context = publish(&mut c, &v, "node-a", mount_rwo()).await.unwrap();
    let state = dir.path().join("state/attachments.json");
    if let Some(uid) = uid {
        assert_eq!(std::fs::metadata(&state).unwrap().uid(), uid);
    }

    // A node call, relayed to the helper.
    let mut n = NodeClient::new(channel(&socket));
    n.node_stage_volume(NodeStageVolumeRequest {
        volume_id: v.volume_id.clone(),
        publish_context,
        staging_target_path: "/var/lib/kubelet/plugins/kubernetes.io/csi/x/globalmount".into(),
        volume_capability: Some(mount_rwo()),
        secrets: HashMap::new(),
        volume_context: v.volume_context.clone(),
    })
    .await
    .unwrap();
    let staged = helper.state.lock().unwrap().stage.pop().unwrap();
    assert_eq!(staged.volume_id, v.volume_id);
    assert_eq!(staged.target.unwrap().address, "127.0.0.1");
    let info = n
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, "node-a");

    let status = fe.stop().await;
    assert!(status.success(), "unclean stop: {status}");
}
