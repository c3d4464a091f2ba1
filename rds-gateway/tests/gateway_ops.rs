//! The gateway against the RouterOS simulator over real SSH on loopback: every operation, its
//! idempotency and its failure codes, faults injected into the simulator (a hung command, a
//! connection dropped after a create was applied, no space), a simulator that goes away and comes
//! back, concurrency without leaks, and snapshot/restore/clone round trips with data.
//!
//! Each test starts its own simulator (in a temporary root) and its own gateway, served over
//! gRPC on a loopback port with the same hop layer the binary uses, and talks to it through the
//! generated client, as the frontend does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::Registry;
use rds_csi_proto::gateway::create_volume_request::Source;
use rds_csi_proto::gateway::gateway_client::GatewayClient;
use rds_csi_proto::gateway::gateway_server::GatewayServer;
use rds_csi_proto::gateway::*;
use rds_csi_proto::hop::{HopMetrics, ServerHopLayer};
use rds_csi_proto::serve::Listener;
use rds_csi_testbed::sim::state::{self, Paths};
use rds_csi_testbed::sim::{
    FaultAction, FaultRule, Faults, PrintStyle, RosVersion, SimConfig, SimHandle, Verb, cmdlog,
    generate_client_key, start,
};
use rds_gateway::assembly::{Gateway, Settings};
use rds_gateway::executor::ExecutorConfig;
use rds_gateway::grpc_service::GatewayService;
use rds_gateway::routeros::names::{PoolPath, SlotPrefix};
use rds_gateway::runner::SshRunner;
use rds_gateway::ssh::{BackoffConfig, ClientKey, HostKeyCheck, HostKeyPin, SshConfig, SshPool};
use tonic::transport::Channel;
use tonic::{Code, Request};

const BASE: &str = "storage-pool/kubernetes-volumes";
const MIB: u64 = 1 << 20;

type Client = GatewayClient<Channel>;

#[derive(Clone)]
struct Options {
    version: RosVersion,
    style: PrintStyle,
    pool_size: Option<u64>,
    command_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            version: RosVersion::DEFAULT,
            style: PrintStyle::New,
            pool_size: Some(64 << 30),
            command_timeout: Duration::from_secs(5),
        }
    }
}

/// A simulator, a gateway over SSH to it, and a gRPC client of the gateway.
struct Harness {
    _dir: tempfile::TempDir,
    sim_cfg: SimConfig,
    sim: Option<SimHandle>,
    registry: Registry,
    _gateway: Gateway,
    client: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    async fn start(opts: Options) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        let public = generate_client_key(&key).unwrap();
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, format!("{public}\n")).unwrap();
        let mut sim_cfg = SimConfig::new(dir.path().join("root"));
        sim_cfg.authorized_keys = Some(authorized);
        sim_cfg.routeros_version = opts.version;
        sim_cfg.print_style = opts.style;
        sim_cfg.pool_size = opts.pool_size;
        let sim = start(sim_cfg.clone()).await.unwrap();
        // Restarts listen where the gateway already points.
        sim_cfg.listen = sim.addr();

        let pin = HostKeyPin::parse(sim.host_key_openssh()).unwrap();
        let mut ssh = SshConfig::new(
            "127.0.0.1",
            ClientKey::from_file(&key).unwrap(),
            HostKeyCheck::Pinned(pin),
        );
        ssh.port = sim.addr().port();
        ssh.default_timeout = opts.command_timeout;
        ssh.max_timeout = opts.command_timeout * 4;
        ssh.connect_timeout = Duration::from_secs(3);
        ssh.health_interval = Duration::from_millis(500);
        ssh.health_timeout = Duration::from_secs(2);
        ssh.backoff = BackoffConfig {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(300),
        };
        let registry = Registry::new();
        let pool = SshPool::start(ssh, &registry).unwrap();
        let mut settings = Settings::new(
            PoolPath::parse(BASE).unwrap(),
            vec![
                SlotPrefix::parse("pvc-").unwrap(),
                SlotPrefix::parse("snap-").unwrap(),
            ],
        );
        settings.executor = ExecutorConfig {
            default_timeout: opts.command_timeout,
            max_timeout: opts.command_timeout * 4,
        };
        settings.capacity_refresh = Duration::from_millis(200);
        let gateway = Gateway::build(Arc::new(SshRunner::new(pool)), settings, &registry).unwrap();

        let name = <GatewayServer<GatewayService> as tonic::server::NamedService>::NAME;
        let hop = ServerHopLayer::new(
            HopMetrics::register(&registry, "rds-gateway").unwrap(),
            &[name],
        );
        let listener = Listener::Tcp(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        let url = listener.describe().replace("tcp://", "http://");
        let routes = tonic::service::Routes::new(GatewayServer::new(gateway.service.clone()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            listener
                .serve(routes, hop, shutdown, Duration::from_secs(1))
                .await
                .unwrap();
        });
        let client = GatewayClient::connect(url).await.unwrap();
        let h = Harness {
            _dir: dir,
            sim_cfg,
            sim: Some(sim),
            registry,
            _gateway: gateway,
            client,
            stop: Some(stop),
            server: Some(server),
        };
        h.wait_health(true, Duration::from_secs(10)).await;
        h
    }

    fn client(&self) -> Client {
        self.client.clone()
    }

    fn root(&self) -> PathBuf {
        self.sim_cfg.root.clone()
    }

    fn image(&self, slot: &str) -> PathBuf {
        self.root().join(BASE).join(format!("{slot}.img"))
    }

    /// Every `.img` file under the simulator's root.
    fn images(&self) -> BTreeSet<String> {
        fn walk(dir: &Path, out: &mut BTreeSet<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let path = e.path();
                if path.file_name().is_some_and(|n| n == ".rds-sim") {
                    continue;
                }
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|x| x == "img") {
                    out.insert(path.file_name().unwrap().to_string_lossy().into_owned());
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.root(), &mut out);
        out
    }

    /// The simulator's own record of its file disks (slot names).
    fn sim_disks(&self) -> Vec<String> {
        state::load(&Paths::new(self.root()))
            .unwrap()
            .disks
            .into_iter()
            .map(|d| d.slot)
            .collect()
    }

    fn faults(&self, rules: &[FaultRule]) {
        Faults::write(&self.root(), rules).unwrap();
    }

    fn logged(&self) -> Vec<String> {
        cmdlog::read(&self.root())
            .unwrap()
            .into_iter()
            .map(|c| c.command)
            .collect()
    }

    async fn health(&self) -> HealthResponse {
        self.client()
            .health(HealthRequest {})
            .await
            .unwrap()
            .into_inner()
    }

    async fn wait_health(&self, ready: bool, within: Duration) -> HealthResponse {
        let until = Instant::now() + within;
        loop {
            let h = self.health().await;
            if h.ready == ready {
                return h;
            }
            assert!(
                Instant::now() < until,
                "health never became ready={ready}: {h:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop_sim(&mut self) {
        if let Some(sim) = self.sim.take() {
            sim.shutdown().await;
        }
    }

    async fn restart_sim(&mut self, version: RosVersion) {
        self.stop_sim().await;
        let mut cfg = self.sim_cfg.clone();
        cfg.routeros_version = version;
        self.sim = Some(start(cfg).await.unwrap());
    }

    fn metric(&self, series: &str) -> Option<f64> {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap();
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        self.stop_sim().await;
    }
}

fn nqn(slot: &str) -> String {
    format!("nqn.2000-02.com.mikrotik:{slot}")
}

fn create(slot: &str, required: u64, limit: u64) -> CreateVolumeRequest {
    CreateVolumeRequest {
        slot: slot.into(),
        required_bytes: required,
        limit_bytes: limit,
        location: None,
        nqn: nqn(slot),
        source: None,
    }
}

fn delete(slot: &str) -> DeleteVolumeRequest {
    DeleteVolumeRequest {
        slot: slot.into(),
        location: None,
    }
}

fn snapshot(id: &str, source: &str) -> CreateSnapshotRequest {
    CreateSnapshotRequest {
        snapshot_id: id.into(),
        source_volume_id: source.into(),
        location: None,
    }
}

fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(s) => s.code(),
    }
}

/// Retries a call while it is UNAVAILABLE, as the CSI sidecars do.
async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        match call().await {
            Err(s) if s.code() == Code::Unavailable && Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other.map(tonic::Response::into_inner),
        }
    }
}

async fn volume_round_trip(opts: Options) {
    let h = Harness::start(opts).await;
    let mut c = h.client();
    // 1.5 GiB + 1 byte is rounded up to the next MiB, never down.
    let asked = (3 << 29) + 1;
    let v = c
        .create_volume(create("pvc-a", asked, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.size_bytes, (3 << 29) + MIB);
    assert_eq!(v.slot, "pvc-a");
    assert_eq!(v.nqn, nqn("pvc-a"));
    assert_eq!(v.file_path, format!("/{BASE}/pvc-a.img"));
    assert_eq!(v.nvme_port, 4420);
    assert!(v.exported);
    assert_eq!(
        std::fs::metadata(h.image("pvc-a")).unwrap().len(),
        v.size_bytes,
        "the backing file has the reported size"
    );

    // Idempotent: the same request adopts the disk.
    let again = c
        .create_volume(create("pvc-a", asked, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, v);
    assert_eq!(h.sim_disks(), ["pvc-a"]);

    let got = c
        .get_volume(GetVolumeRequest {
            slot: "pvc-a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, v);

    // Expand grows, rounding up; a smaller or equal size is a no-op.
    let grown = c
        .expand_volume(ExpandVolumeRequest {
            slot: "pvc-a".into(),
            required_bytes: 2 << 30,
            limit_bytes: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grown.size_bytes, 2 << 30);
    assert_eq!(std::fs::metadata(h.image("pvc-a")).unwrap().len(), 2 << 30);
    let same = c
        .expand_volume(ExpandVolumeRequest {
            slot: "pvc-a".into(),
            required_bytes: MIB,
            limit_bytes: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(same.size_bytes, 2 << 30);
    assert_eq!(
        code(
            c.expand_volume(ExpandVolumeRequest {
                slot: "pvc-a".into(),
                required_bytes: (4 << 30) + 1,
                limit_bytes: (4 << 30) + 100,
            })
            .await
        ),
        Code::OutOfRange
    );
    assert_eq!(
        code(
            c.expand_volume(ExpandVolumeRequest {
                slot: "pvc-none".into(),
                required_bytes: MIB,
                limit_bytes: 0,
            })
            .await
        ),
        Code::NotFound
    );

    let list = c
        .list_volumes(ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.volumes.len(), 1);
    assert_eq!(list.volumes[0].size_bytes, 2 << 30);
    assert!(list.next_token.is_empty());

    // Delete removes disk and file; a second delete is success.
    c.delete_volume(delete("pvc-a")).await.unwrap();
    assert!(h.sim_disks().is_empty());
    assert!(h.images().is_empty(), "{:?}", h.images());
    c.delete_volume(delete("pvc-a")).await.unwrap();
    assert_eq!(
        code(
            c.get_volume(GetVolumeRequest {
                slot: "pvc-a".into()
            })
            .await
        ),
        Code::NotFound
    );
    assert!(
        h.metric("rds_csi_routeros_commands_total{result=\"success\",verb=\"disk-add\"}")
            .is_some_and(|n| n >= 1.0)
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_round_trip_json_new_layout() {
    volume_round_trip(Options::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_round_trip_text_old_layout() {
    volume_round_trip(Options {
        version: "7.12.1".parse().unwrap(),
        style: PrintStyle::Old,
        ..Options::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prints_use_json_from_7_13_and_text_before() {
    for (version, json) in [("7.16.2", true), ("7.12.1", false)] {
        let h = Harness::start(Options {
            version: version.parse().unwrap(),
            ..Options::default()
        })
        .await;
        let mut c = h.client();
        c.create_volume(create("pvc-j", MIB, 0)).await.unwrap();
        let prints: Vec<String> = h
            .logged()
            .into_iter()
            .filter(|l| l.contains("print") && l.contains("pvc-j"))
            .collect();
        assert!(!prints.is_empty());
        assert!(
            prints
                .iter()
                .all(|l| l.starts_with(":put [:serialize") == json),
            "{version}: {prints:?}"
        );
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_limits_and_invalid_fields() {
    let h = Harness::start(Options::default()).await;
    let mut c = h.client();
    c.create_volume(create("pvc-b", 4 * MIB, 0)).await.unwrap();

    // A bigger size, another NQN or a source: ALREADY_EXISTS naming what differs.
    let s = c
        .create_volume(create("pvc-b", 8 * MIB, 0))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::AlreadyExists);
    assert!(
        s.message().contains("below required_bytes"),
        "{}",
        s.message()
    );
    let mut other_nqn = create("pvc-b", 4 * MIB, 0);
    other_nqn.nqn = nqn("pvc-other");
    let s = c.create_volume(other_nqn).await.unwrap_err();
    assert_eq!(s.code(), Code::AlreadyExists);
    assert!(s.message().contains("pvc-other"), "{}", s.message());
    // Smaller than the existing disk but within the limit: adopted.
    let adopted = c
        .create_volume(create("pvc-b", MIB, 8 * MIB))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(adopted.size_bytes, 4 * MIB);
    // Above the limit: conflict.
    assert_eq!(
        code(c.create_volume(create("pvc-b", MIB, 2 * MIB)).await),
        Code::AlreadyExists
    );

    // Rounding past the limit is OUT_OF_RANGE and nothing is created.
    assert_eq!(
        code(c.create_volume(create("pvc-c", MIB + 1, MIB + 10)).await),
        Code::OutOfRange
    );
    assert_eq!(h.sim_disks(), ["pvc-b"]);

    // Malformed fields never reach the appliance.
    let before = h.logged().len();
    let bad: Vec<(CreateVolumeRequest, &str)> = vec![
        (create("pvc-x;/system reboot", MIB, 0), "slot"),
        (create("pvc-\"x\"", MIB, 0), "slot"),
        (create("pvc-$(x)", MIB, 0), "slot"),
        (create("pvc-a b", MIB, 0), "slot"),
        (create("pvc-a\nb", MIB, 0), "slot"),
        (create("", MIB, 0), "slot"),
        (
            CreateVolumeRequest {
                nqn: "nqn.bad name".into(),
                ..create("pvc-d", MIB, 0)
            },
            "nqn",
        ),
        (
            CreateVolumeRequest {
                location: Some(VolumeLocation {
                    base_path: "storage-pool/../etc".into(),
                    nvme_port: 0,
                }),
                ..create("pvc-d", MIB, 0)
            },
            "location.base_path",
        ),
        (
            CreateVolumeRequest {
                location: Some(VolumeLocation {
                    base_path: String::new(),
                    nvme_port: 70_000,
                }),
                ..create("pvc-d", MIB, 0)
            },
            "location.nvme_port",
        ),
        (
            CreateVolumeRequest {
                source: Some(Source::SnapshotId("snap-[x]".into())),
                ..create("pvc-d", MIB, 0)
            },
            "snapshot_id",
        ),
        (create("storage-pool", MIB, 0), "slot"),
    ];
    for (req, field) in bad {
        let s = c.create_volume(req).await.unwrap_err();
        assert_eq!(s.code(), Code::InvalidArgument, "{field}: {}", s.message());
        assert!(s.message().starts_with(field), "{field}: {}", s.message());
    }
    assert_eq!(
        code(c.delete_volume(delete("vm-storage-001")).await),
        Code::InvalidArgument,
        "a disk outside the managed prefixes is never touched"
    );
    // Only the background capacity refresh reached the appliance meanwhile.
    let reached: Vec<String> = h.logged()[before..]
        .iter()
        .filter(|l| !l.contains("mount-point=") && !l.starts_with("/system resource"))
        .cloned()
        .collect();
    assert!(reached.is_empty(), "{reached:?}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_space_is_resource_exhausted_and_leaves_nothing() {
    let h = Harness::start(Options {
        pool_size: Some(64 * MIB),
        ..Options::default()
    })
    .await;
    let mut c = h.client();
    assert_eq!(
        code(c.create_volume(create("pvc-big", 1 << 30, 0)).await),
        Code::ResourceExhausted
    );
    // The same through an injected `failure: not enough space`.
    h.faults(&[FaultRule::times(Verb::DiskAdd, FaultAction::NoSpace, 1)]);
    assert_eq!(
        code(c.create_volume(create("pvc-small", MIB, 0)).await),
        Code::ResourceExhausted
    );
    assert!(h.sim_disks().is_empty());
    assert!(h.images().is_empty(), "{:?}", h.images());
    // The retry, with the fault used up, works.
    c.create_volume(create("pvc-small", MIB, 0)).await.unwrap();
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_command_is_deadline_exceeded_and_the_gateway_keeps_serving() {
    let h = Harness::start(Options {
        command_timeout: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    let mut c = h.client();
    h.faults(&[FaultRule::always(Verb::DiskPrint, FaultAction::Hang)]);
    let started = Instant::now();
    let s = c
        .get_volume(GetVolumeRequest {
            slot: "pvc-h".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::DeadlineExceeded, "{}", s.message());
    assert!(s.message().contains("disk-print"), "{}", s.message());
    assert!(started.elapsed() < Duration::from_secs(3));

    // The caller's own deadline bounds the command too (here shorter than the default).
    let mut req = Request::new(GetVolumeRequest {
        slot: "pvc-h".into(),
    });
    req.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let s = c.get_volume(req).await.unwrap_err();
    assert!(
        matches!(s.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{s:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // Still serving: health is fine, and with the fault gone everything works.
    assert!(h.health().await.ready);
    Faults::clear(&h.root()).unwrap();
    let v = c
        .create_volume(create("pvc-h", MIB, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.size_bytes, MIB);
    assert!(
        h.metric("rds_csi_routeros_commands_total{result=\"timeout\",verb=\"disk-print\"}")
            .is_some_and(|n| n >= 1.0)
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_dropped_mid_create_leaves_exactly_one_disk_after_the_retry() {
    let h = Harness::start(Options::default()).await;
    let mut c = h.client();
    for (verb, slot) in [(Verb::DiskAdd, "pvc-drop"), (Verb::DiskCopy, "snap-drop")] {
        if verb == Verb::DiskCopy {
            c.create_volume(create("pvc-src", 4 * MIB, 0))
                .await
                .unwrap();
        }
        h.faults(&[FaultRule::times(verb, FaultAction::FailAfterApply, 1)]);
        let first = if verb == Verb::DiskAdd {
            c.create_volume(create(slot, 2 * MIB, 0)).await.map(|_| ())
        } else {
            c.create_snapshot(snapshot(slot, "pvc-src"))
                .await
                .map(|_| ())
        };
        let s = first.unwrap_err();
        assert_eq!(s.code(), Code::Unavailable, "{}", s.message());
        // The command was applied before the connection dropped; the retry adopts it.
        if verb == Verb::DiskAdd {
            let v = with_retries(|| {
                let mut c = c.clone();
                async move { c.create_volume(create(slot, 2 * MIB, 0)).await }
            })
            .await
            .unwrap();
            assert_eq!(v.size_bytes, 2 * MIB);
        } else {
            let s = with_retries(|| {
                let mut c = c.clone();
                async move { c.create_snapshot(snapshot(slot, "pvc-src")).await }
            })
            .await
            .unwrap();
            assert_eq!(s.source_volume_id, "pvc-src");
        }
        let count = h.sim_disks().iter().filter(|d| *d == slot).count();
        assert_eq!(count, 1, "{:?}", h.sim_disks());
    }
    assert_eq!(
        h.images(),
        ["pvc-drop.img", "pvc-src.img", "snap-drop.img"]
            .map(String::from)
            .into()
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_while_the_sim_is_down_and_reconnected_after_it_restarts() {
    let mut h = Harness::start(Options::default()).await;
    let mut c = h.client();
    c.create_volume(create("pvc-keep", MIB, 0)).await.unwrap();
    let capacity = c
        .get_capacity(GetCapacityRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(capacity.total_bytes, 64 << 30);

    h.stop_sim().await;
    // Not ready, and (between reconnect attempts) saying why.
    let until = Instant::now() + Duration::from_secs(10);
    let health = loop {
        let health = h.wait_health(false, Duration::from_secs(10)).await;
        if health.reason.contains("refused") || Instant::now() > until {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(health.reason.contains("refused"), "{}", health.reason);
    assert!(health.reason.contains("--rds-port"), "{}", health.reason);
    let s = c
        .create_volume(create("pvc-new", MIB, 0))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable, "{}", s.message());
    assert!(s.message().contains("refused"), "{}", s.message());
    // Capacity still answers from the cache; a scrape never waits on SSH.
    let cached = c
        .get_capacity(GetCapacityRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cached.total_bytes, capacity.total_bytes);

    // The simulator comes back as an older RouterOS: the gateway reconnects by itself and reads
    // the version again (text prints from now on).
    h.restart_sim("7.12.1".parse().unwrap()).await;
    let health = h.wait_health(true, Duration::from_secs(10)).await;
    assert!(health.routeros_version.starts_with("7.12"), "{health:?}");
    let before = h.logged().len();
    let v = with_retries(|| {
        let mut c = c.clone();
        async move { c.create_volume(create("pvc-new", MIB, 0)).await }
    })
    .await
    .unwrap();
    assert_eq!(v.size_bytes, MIB);
    let after: Vec<String> = h.logged()[before..].to_vec();
    assert!(
        after.iter().all(|l| !l.starts_with(":put")),
        "text prints after the restart: {after:?}"
    );
    let listed = c
        .list_volumes(ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let slots: Vec<&str> = listed.volumes.iter().map(|v| v.slot.as_str()).collect();
    assert_eq!(slots, ["pvc-keep", "pvc-new"]);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_rds_at_start_is_not_fatal() {
    // Nothing listens on this port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    generate_client_key(&key).unwrap();
    let mut ssh = SshConfig::new(
        "127.0.0.1",
        ClientKey::from_file(&key).unwrap(),
        HostKeyCheck::InsecureSkip,
    );
    ssh.port = port;
    ssh.backoff = BackoffConfig {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
    };
    let registry = Registry::new();
    let pool = SshPool::start(ssh, &registry).unwrap();
    let settings = Settings::new(
        PoolPath::parse(BASE).unwrap(),
        vec![SlotPrefix::parse("pvc-").unwrap()],
    );
    let gateway = Gateway::build(Arc::new(SshRunner::new(pool)), settings, &registry).unwrap();
    let readiness = rds_csi_proto::metrics_server::Readiness::not_ready("starting");
    let _follow = rds_gateway::readiness::follow(gateway.executor.connection(), readiness.clone());
    let service = gateway.service.clone();
    use rds_csi_proto::gateway::gateway_server::Gateway as _;
    let until = Instant::now() + Duration::from_secs(10);
    let health = loop {
        let h = service
            .health(Request::new(HealthRequest {}))
            .await
            .unwrap()
            .into_inner();
        if h.reason.contains("refused") || Instant::now() > until {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!health.ready);
    assert!(health.reason.contains("refused"), "{}", health.reason);
    let until = Instant::now() + Duration::from_secs(10);
    let not_ready = loop {
        let reason = readiness.check().unwrap_err();
        if reason.contains("refused") || Instant::now() > until {
            break reason;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(not_ready.contains("refused"), "{not_ready}");
    let s = service
        .get_capacity(Request::new(GetCapacityRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable);
    let s = service
        .create_volume(Request::new(create("pvc-1", MIB, 0)))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_and_deletes_leave_no_leak() {
    let h = Harness::start(Options::default()).await;
    let c = h.client();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            let slot = format!("pvc-par-{i:02}");
            let v = c
                .create_volume(create(&slot, (i + 1) * MIB, 0))
                .await
                .map_err(|s| format!("create {slot}: {s:?}"))?
                .into_inner();
            if v.size_bytes != (i + 1) * MIB {
                return Err(format!("{slot}: size {}", v.size_bytes));
            }
            c.delete_volume(delete(&slot))
                .await
                .map_err(|s| format!("delete {slot}: {s:?}"))?;
            Ok::<_, String>(())
        }));
    }
    // Meanwhile, 16 concurrent creates of one slot end as one disk. A call that waited too
    // long behind the others on the slot may be ABORTED (CSI: "operation pending for
    // volume"; the CO retries), so each retries on ABORTED as a CO would.
    let mut same = Vec::new();
    for _ in 0..16 {
        let mut c = c.clone();
        same.push(tokio::spawn(async move {
            loop {
                match c.create_volume(create("pvc-same", 3 * MIB, 0)).await {
                    Err(s) if s.code() == tonic::Code::Aborted => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    other => break other.map(|r| r.into_inner().size_bytes),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for t in same {
        assert_eq!(t.await.unwrap().unwrap(), 3 * MIB);
    }
    assert_eq!(h.sim_disks(), ["pvc-same"]);
    let mut c = h.client();
    c.delete_volume(delete("pvc-same")).await.unwrap();
    assert!(h.sim_disks().is_empty());
    assert!(h.images().is_empty(), "{:?}", h.images());
    let listed = c
        .list_volumes(ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.volumes.is_empty());
    h.shutdown().await;
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset).unwrap();
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_restore_and_clone_round_trip_with_data() {
    let h = Harness::start(Options::default()).await;
    let mut c = h.client();
    c.create_volume(create("pvc-src", 8 * MIB, 0))
        .await
        .unwrap();
    let payload = b"rds-csi snapshot payload";
    write_at(&h.image("pvc-src"), 5 * MIB + 17, payload);
    write_at(&h.image("pvc-src"), 0, b"head");

    let snap = c
        .create_snapshot(snapshot("snap-1", "pvc-src"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(snap.snapshot_id, "snap-1");
    assert_eq!(snap.source_volume_id, "pvc-src");
    assert_eq!(snap.size_bytes, 8 * MIB);
    assert!(snap.ready_to_use);
    assert!(snap.created_at_unix > 1_700_000_000);
    // Idempotent by id; another source is ALREADY_EXISTS.
    let again = c
        .create_snapshot(snapshot("snap-1", "pvc-src"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, snap);
    c.create_volume(create("pvc-other", MIB, 0)).await.unwrap();
    assert_eq!(
        code(c.create_snapshot(snapshot("snap-1", "pvc-other")).await),
        Code::AlreadyExists
    );
    assert_eq!(
        code(c.create_snapshot(snapshot("snap-2", "pvc-missing")).await),
        Code::NotFound
    );
    assert_eq!(
        code(c.create_snapshot(snapshot("pvc-other", "pvc-src")).await),
        Code::AlreadyExists,
        "a volume's slot is not a snapshot"
    );

    // The snapshot keeps the data of the moment it was taken.
    write_at(&h.image("pvc-src"), 5 * MIB + 17, b"CHANGED");
    assert_eq!(
        read_at(&h.image("snap-1"), 5 * MIB + 17, payload.len()),
        payload
    );

    // Restore into a bigger volume: data there, size as asked, exported, source recorded.
    let restored = c
        .create_volume(CreateVolumeRequest {
            source: Some(Source::SnapshotId("snap-1".into())),
            ..create("pvc-restored", 16 * MIB, 0)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(restored.size_bytes, 16 * MIB);
    assert!(restored.exported);
    assert_eq!(restored.source_snapshot_id, "snap-1");
    assert_eq!(read_at(&h.image("pvc-restored"), 0, 4), b"head");
    assert_eq!(
        read_at(&h.image("pvc-restored"), 5 * MIB + 17, payload.len()),
        payload
    );
    let got = c
        .get_volume(GetVolumeRequest {
            slot: "pvc-restored".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.source_snapshot_id, "snap-1");
    // Restoring again is idempotent; from another source it conflicts.
    let again = c
        .create_volume(CreateVolumeRequest {
            source: Some(Source::SnapshotId("snap-1".into())),
            ..create("pvc-restored", 16 * MIB, 0)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, restored);
    assert_eq!(
        code(
            c.create_volume(CreateVolumeRequest {
                source: Some(Source::VolumeId("pvc-other".into())),
                ..create("pvc-restored", 16 * MIB, 0)
            })
            .await
        ),
        Code::AlreadyExists
    );
    // A volume is never smaller than its source; a missing snapshot is NOT_FOUND.
    assert_eq!(
        code(
            c.create_volume(CreateVolumeRequest {
                source: Some(Source::SnapshotId("snap-1".into())),
                ..create("pvc-tiny", MIB, 4 * MIB)
            })
            .await
        ),
        Code::OutOfRange
    );
    assert_eq!(
        code(
            c.create_volume(CreateVolumeRequest {
                source: Some(Source::SnapshotId("snap-none".into())),
                ..create("pvc-r2", MIB, 0)
            })
            .await
        ),
        Code::NotFound
    );

    // Clone the (changed) source volume.
    let clone = c
        .create_volume(CreateVolumeRequest {
            source: Some(Source::VolumeId("pvc-src".into())),
            ..create("pvc-clone", 0, 0)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(clone.size_bytes, 8 * MIB);
    assert_eq!(clone.source_volume_id, "pvc-src");
    assert_eq!(read_at(&h.image("pvc-clone"), 5 * MIB + 17, 7), b"CHANGED");

    // Listing: by id, by source, all; volumes do not include snapshots.
    c.create_snapshot(snapshot("snap-2", "pvc-other"))
        .await
        .unwrap();
    let by_id = c
        .list_snapshots(ListSnapshotsRequest {
            snapshot_id: "snap-2".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.snapshots.len(), 1);
    assert_eq!(by_id.snapshots[0].source_volume_id, "pvc-other");
    let by_source = c
        .list_snapshots(ListSnapshotsRequest {
            source_volume_id: "pvc-src".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = by_source
        .snapshots
        .iter()
        .map(|s| s.snapshot_id.as_str())
        .collect();
    assert_eq!(ids, ["snap-1"]);
    let unknown = c
        .list_snapshots(ListSnapshotsRequest {
            snapshot_id: "snap-;nope".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(unknown.snapshots.is_empty());
    let page = c
        .list_snapshots(ListSnapshotsRequest {
            max_entries: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.snapshots[0].snapshot_id, "snap-1");
    assert_eq!(page.next_token, "snap-1");
    let rest = c
        .list_snapshots(ListSnapshotsRequest {
            max_entries: 1,
            starting_token: page.next_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.snapshots[0].snapshot_id, "snap-2");
    assert!(rest.next_token.is_empty());
    let volumes = c
        .list_volumes(ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let slots: Vec<&str> = volumes.volumes.iter().map(|v| v.slot.as_str()).collect();
    assert_eq!(slots, ["pvc-clone", "pvc-other", "pvc-restored", "pvc-src"]);
    let listed_restored = volumes
        .volumes
        .iter()
        .find(|v| v.slot == "pvc-restored")
        .unwrap();
    assert_eq!(listed_restored.source_snapshot_id, "snap-1");

    // Volume calls never touch a snapshot and snapshot calls never touch a volume.
    c.delete_volume(delete("snap-1")).await.unwrap();
    c.delete_snapshot(DeleteSnapshotRequest {
        snapshot_id: "pvc-other".into(),
        location: None,
    })
    .await
    .unwrap();
    assert!(h.image("snap-1").exists() && h.image("pvc-other").exists());
    assert_eq!(
        code(
            c.get_volume(GetVolumeRequest {
                slot: "snap-1".into()
            })
            .await
        ),
        Code::NotFound
    );

    // Delete everything: idempotent, files gone.
    for id in ["snap-1", "snap-2", "snap-1"] {
        c.delete_snapshot(DeleteSnapshotRequest {
            snapshot_id: id.into(),
            location: None,
        })
        .await
        .unwrap();
    }
    // A retried restore whose snapshot is gone by now still finds its volume.
    let retried = c
        .create_volume(CreateVolumeRequest {
            source: Some(Source::SnapshotId("snap-1".into())),
            ..create("pvc-restored", 16 * MIB, 0)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.size_bytes, restored.size_bytes);
    for slot in ["pvc-src", "pvc-other", "pvc-restored", "pvc-clone"] {
        c.delete_volume(delete(slot)).await.unwrap();
    }
    assert!(h.sim_disks().is_empty(), "{:?}", h.sim_disks());
    assert!(h.images().is_empty(), "{:?}", h.images());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_are_stable_and_bad_tokens_are_aborted() {
    let h = Harness::start(Options::default()).await;
    let mut c = h.client();
    for s in ["pvc-e", "pvc-c", "pvc-a", "pvc-d", "pvc-b"] {
        c.create_volume(create(s, MIB, 0)).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_volumes(ListVolumesRequest {
                max_entries: 2,
                starting_token: token.clone(),
                without_paths: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.volumes.len() <= 2);
        seen.extend(page.volumes.into_iter().map(|v| v.slot));
        if page.next_token.is_empty() {
            break;
        }
        token = page.next_token;
        if token == "pvc-b" {
            // A volume removed between pages does not disturb the walk.
            c.delete_volume(delete("pvc-b")).await.unwrap();
        }
    }
    assert_eq!(seen, ["pvc-a", "pvc-b", "pvc-c", "pvc-d", "pvc-e"]);
    for bad in ["garbage;x", "other-1", "PVC-A"] {
        assert_eq!(
            code(
                c.list_volumes(ListVolumesRequest {
                    max_entries: 2,
                    starting_token: bad.into(),
                    without_paths: false,
                })
                .await
            ),
            Code::Aborted,
            "{bad}"
        );
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_without_paths_leaves_out_only_the_nqn_and_file_path() {
    let h = Harness::start(Options::default()).await;
    let mut c = h.client();
    for s in ["pvc-b", "pvc-a"] {
        c.create_volume(create(s, MIB, 0)).await.unwrap();
    }
    let list = |without_paths| {
        let mut c = h.client();
        async move {
            c.list_volumes(ListVolumesRequest {
                without_paths,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .volumes
        }
    };
    let (full, lean) = (list(false).await, list(true).await);
    assert_eq!(full.len(), 2);
    assert!(
        full.iter()
            .all(|v| v.nqn.ends_with(&v.slot) && v.file_path.ends_with(".img"))
    );
    let cleared: Vec<_> = full
        .into_iter()
        .map(|v| Volume {
            nqn: String::new(),
            file_path: String::new(),
            ..v
        })
        .collect();
    assert_eq!(lean, cleared);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn left_over_backing_files_are_removed() {
    let h = Harness::start(Options::default()).await;
    let mut c = h.client();
    std::fs::create_dir_all(h.root().join(BASE)).unwrap();
    // A file left by an earlier failed delete: deleting the (missing) volume removes it.
    std::fs::write(h.image("pvc-orphan"), b"old data").unwrap();
    c.delete_volume(delete("pvc-orphan")).await.unwrap();
    assert!(!h.image("pvc-orphan").exists());
    // A file left by an earlier failed create: the create removes it first and succeeds.
    std::fs::write(h.image("pvc-stale"), b"old data").unwrap();
    let v = c
        .create_volume(create("pvc-stale", 2 * MIB, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.size_bytes, 2 * MIB);
    assert_eq!(
        read_at(&h.image("pvc-stale"), 0, 8),
        [0u8; 8],
        "a fresh file"
    );
    // `/disk remove` alone would leave the file: the gateway removes it too.
    c.delete_volume(delete("pvc-stale")).await.unwrap();
    assert!(h.images().is_empty(), "{:?}", h.images());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_comes_from_the_background_cache() {
    let h = Harness::start(Options {
        pool_size: Some(10 << 30),
        ..Options::default()
    })
    .await;
    let mut c = h.client();
    let until = Instant::now() + Duration::from_secs(10);
    let first = loop {
        match c.get_capacity(GetCapacityRequest::default()).await {
            Ok(r) => break r.into_inner(),
            Err(s) => {
                assert_eq!(s.code(), Code::Unavailable);
                assert!(Instant::now() < until, "capacity never read: {s:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(first.total_bytes, 10 << 30);
    assert!(first.free_bytes <= first.total_bytes);
    assert!(first.refreshed_at_unix > 1_700_000_000);
    assert_eq!(
        h.metric("rds_csi_rds_pool_total_bytes{pool=\"storage-pool\"}"),
        Some((10u64 << 30) as f64)
    );
    // Free space follows what is allocated, at the next refresh.
    c.create_volume(create("pvc-cap", 1 << 30, 0))
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let now = c
            .get_capacity(GetCapacityRequest::default())
            .await
            .unwrap()
            .into_inner();
        if now.free_bytes < first.free_bytes {
            break;
        }
        assert!(Instant::now() < until, "free space never changed: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A pool never asked for before is UNAVAILABLE until the refresher has read it.
    let s = c
        .get_capacity(GetCapacityRequest {
            location: Some(VolumeLocation {
                base_path: "other-pool/x".into(),
                nvme_port: 0,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unavailable);
    h.shutdown().await;
}
