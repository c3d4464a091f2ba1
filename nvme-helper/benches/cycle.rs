//! Benchmark: one stage → publish → unpublish → unstage cycle through the real `nvme-helper`
//! binary (loop fabric, gRPC over its unix socket) beside the same system calls and tools run
//! directly in this process, the limit: the helper's own node code (`HelperService` over a
//! `Node` on a two-worker runtime, as the binary runs it) called in-process, so every mount,
//! ioctl, record, mount-table read and tool run is the same and only the helper's process
//! boundary (the gRPC round trip, the request relay) is missing. Target: the helper cycle at
//! most 1.15x the limit, under 15 MiB resident when idle.
//!
//! A third side shows what the helper's checks cost: the bare minimum sequence of the same
//! cycle without any of them (loop attach, `blkid -p`, `mount(2)`, bind mount, unmounts,
//! directory removal, loop detach), the number earlier notes compared against. Cycles
//! alternate between the three so that drift hits all alike; medians are compared. It also
//! reads the helper's resident memory from `/proc/<pid>/status`: `VmRSS` when idle (before
//! and after the cycles) and `VmHWM` (the peak). Each step's median is printed for every side,
//! so that a miss says where the time goes, and beside it the mean time each step spent inside
//! the node code (`rds_csi_volume_operation_duration_seconds`) on both sides and inside the
//! helper's gRPC server (`rds_csi_grpc_server_handling_seconds`), read from the helper's
//! `/metrics` and the in-process node's registry: what is left of a step after the server's
//! share is the trip between the processes.
//!
//! Needs root and e2fsprogs/util-linux. Run with `cargo bench -p nvme-helper --bench cycle`
//! (set `CYCLES=n` to change the number of cycles, default 40).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, MsFlags};
use nvme_helper::grpc_service::HelperService;
use nvme_helper::host_identity::{HostIdentity, HostIdentityFiles};
use nvme_helper::loop_device;
use nvme_helper::loop_fabric::LoopFabric;
use nvme_helper::node::{Node, NodeConfig};
use nvme_helper::nqn::NqnPrefix;
use nvme_helper::partitions::PROC_PARTITIONS;
use nvme_helper::volume_metrics::VolumeMetrics;
use rds_csi_proto::endpoint::Endpoint;
use rds_csi_proto::helper::node_helper_client::NodeHelperClient;
use rds_csi_proto::helper::node_helper_server::NodeHelper;
use rds_csi_proto::helper::{
    AccessType, Filesystem, FilesystemSpec, HealthRequest, PublishRequest, StageRequest, Target,
    UnpublishRequest, UnstageRequest,
};
use rds_csi_proto::metrics_server::Readiness;
use tonic::Request;
use tonic::transport::Channel;

const PREFIX: &str = "nqn.2000-02.com.mikrotik:";
const MIB: u64 = 1 << 20;

struct Helper {
    child: Child,
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / u32::try_from(v.len()).unwrap()
}

/// The four steps of a cycle, in order.
const STEPS: [&str; 4] = ["stage", "publish", "unpublish", "unstage"];

/// The helper's gRPC methods of the four steps, as its server metrics name them.
const METHODS: [&str; 4] = ["Stage", "Publish", "Unpublish", "Unstage"];

/// How long each step of one cycle took.
type StepTimes = [Duration; 4];

/// Step durations from the instants that separate them.
fn steps(marks: [Instant; 5]) -> StepTimes {
    [
        marks[1] - marks[0],
        marks[2] - marks[1],
        marks[3] - marks[2],
        marks[4] - marks[3],
    ]
}

fn wait_detached(number: u32) {
    let attr = format!("/sys/class/block/loop{number}/loop/backing_file");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&attr).exists() {
        assert!(Instant::now() < deadline, "loop{number} never detached");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The limit: the helper's system calls and tools, made directly.
fn direct_cycle(file: &Path, nqn: &str, staging: &Path, target: &Path) -> StepTimes {
    let t0 = Instant::now();
    let number = loop_device::attach(Path::new("/dev"), file, nqn).unwrap();
    let device = PathBuf::from(format!("/dev/loop{number}"));
    let out = Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(&device)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // blkid found the filesystem, so (like the helper) no edge bytes are read.
    assert!(String::from_utf8_lossy(&out.stdout).contains("TYPE=ext4"));
    if !staging.exists() {
        fs::create_dir(staging).unwrap();
    }
    nix::mount::mount(
        Some(&device),
        staging,
        Some("ext4"),
        MsFlags::MS_NOATIME,
        None::<&str>,
    )
    .unwrap();
    let t1 = Instant::now();
    fs::create_dir(target).unwrap();
    nix::mount::mount(
        Some(staging),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    let t2 = Instant::now();
    nix::mount::umount2(target, MntFlags::UMOUNT_NOFOLLOW).unwrap();
    fs::remove_dir(target).unwrap();
    let t3 = Instant::now();
    nix::mount::umount2(staging, MntFlags::UMOUNT_NOFOLLOW).unwrap();
    loop_device::detach(Path::new("/dev"), number).unwrap();
    wait_detached(number);
    steps([t0, t1, t2, t3, Instant::now()])
}

/// How a cycle reaches the helper's node code.
enum Side {
    /// The helper binary, over gRPC on its unix socket.
    Rpc(NodeHelperClient<Channel>),
    /// The same service, called in this process (the limit).
    InProcess(HelperService),
}

/// Calls `method` with `request` on either side; any error fails the benchmark.
macro_rules! call {
    ($side:expr, $method:ident, $request:expr) => {
        match $side {
            Side::Rpc(client) => drop(client.$method($request).await.unwrap()),
            Side::InProcess(service) => drop(
                NodeHelper::$method(&*service, Request::new($request))
                    .await
                    .unwrap(),
            ),
        }
    };
}

async fn helper_cycle(
    side: &mut Side,
    id: &str,
    nqn: &str,
    staging: &Path,
    target: &Path,
) -> StepTimes {
    let t0 = Instant::now();
    call!(
        side,
        stage,
        StageRequest {
            volume_id: id.into(),
            target: Some(Target {
                nqn: nqn.into(),
                address: "127.0.0.1".into(),
                port: 4420,
                ..Default::default()
            }),
            staging_path: staging.display().to_string(),
            access_type: AccessType::Filesystem as i32,
            filesystem: Some(FilesystemSpec {
                filesystem: Filesystem::Ext4 as i32,
                mkfs_options: vec![],
                mount_options: vec!["noatime".into()],
            }),
            read_only: false,
        }
    );
    let t1 = Instant::now();
    call!(
        side,
        publish,
        PublishRequest {
            volume_id: id.into(),
            staging_path: staging.display().to_string(),
            target_path: target.display().to_string(),
            access_type: AccessType::Filesystem as i32,
            read_only: false,
            mount_options: vec![],
            single_target: false,
        }
    );
    let t2 = Instant::now();
    call!(
        side,
        unpublish,
        UnpublishRequest {
            volume_id: id.into(),
            target_path: target.display().to_string(),
        }
    );
    let t3 = Instant::now();
    call!(
        side,
        unstage,
        UnstageRequest {
            volume_id: id.into(),
            staging_path: staging.display().to_string(),
            nqn: nqn.into(),
        }
    );
    steps([t0, t1, t2, t3, Instant::now()])
}

/// The mean of histogram `name` (`_sum` over `_count`) in a text exposition, over the series
/// whose labels contain `labels`, in microseconds. A series that is missing (a renamed metric
/// or label) fails the benchmark rather than printing a meaningless number.
fn histogram_mean_us(exposition: &str, name: &str, labels: &str) -> f64 {
    let value = |suffix: &str| -> f64 {
        let series = format!("{name}{suffix}");
        exposition
            .lines()
            .filter(|l| l.starts_with(&series) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let count = value("_count");
    assert!(
        count > 0.0,
        "no {name} series with {labels} in:\n{exposition}"
    );
    value("_sum") / count * 1e6
}

/// The helper's `/metrics` page.
fn scrape(address: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(address).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    conn.read_to_string(&mut page).unwrap();
    page
}

/// The helper's service over its node, built as the binary builds it with the flags the
/// benchmark gives the binary (loop fabric reading `/proc/partitions`, shipped timeouts), with
/// a state directory of its own.
fn in_process_service(
    root: &Path,
    kubelet: &Path,
    backing: &Path,
    registry: &prometheus::Registry,
) -> HelperService {
    let prefix = NqnPrefix::new(PREFIX).unwrap();
    let fabric = LoopFabric::new(backing, prefix.clone(), "/sys", "/dev")
        .unwrap()
        .with_partitions(PROC_PARTITIONS);
    let identity = HostIdentity::load_or_create(&HostIdentityFiles {
        hostnqn: root.join("hostnqn"),
        hostid: root.join("hostid"),
    })
    .unwrap();
    let config = NodeConfig {
        kubelet_dir: kubelet.to_path_buf(),
        state_dir: root.join("state-in-process"),
        sysfs_root: "/sys".into(),
        dev_root: "/dev".into(),
        mountinfo: "/proc/self/mountinfo".into(),
        managed_prefix: prefix,
        identity,
        hostname: "bench".into(),
        device_wait_timeout: Duration::from_secs(30),
        disconnect_timeout: Duration::from_secs(30),
        tool_timeout: Duration::from_secs(300),
        mkfs_ext4_options: String::new(),
        mkfs_xfs_options: String::new(),
    };
    let metrics = VolumeMetrics::register(registry).unwrap();
    let node = Node::new(config, Arc::new(fabric), metrics).unwrap();
    let readiness = Readiness::not_ready("starting");
    readiness.set_ready();
    HelperService::new(Arc::new(node), readiness)
}

/// Median of step `i` over all cycles, in microseconds.
fn step_median_us(cycles: &[StepTimes], i: usize) -> f64 {
    let mut v: Vec<Duration> = cycles.iter().map(|c| c[i]).collect();
    median(&mut v).as_secs_f64() * 1e6
}

fn main() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the cycle benchmark attaches loop devices and mounts: run it as root"
    );
    let cycles: usize = std::env::var("CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let tmp = tempfile::Builder::new()
        .prefix("nvme-helper-bench-")
        .tempdir()
        .unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let kubelet = root.join("kubelet");
    let backing = root.join("rds");
    let pool = backing.join("storage-pool");
    for d in [
        kubelet.join("plugins/v"),
        kubelet.join("pods/p"),
        pool.clone(),
    ] {
        fs::create_dir_all(d).unwrap();
    }
    // Identical pre-formatted volumes, one for each side, so that none sees another's cache.
    let mut files = Vec::new();
    for slot in ["pvc-bench-helper", "pvc-bench-direct", "pvc-bench-inproc"] {
        let f = pool.join(format!("{slot}.img"));
        File::create(&f).unwrap().set_len(64 * MIB).unwrap();
        let out = Command::new("mkfs.ext4")
            .arg("-q")
            .arg(&f)
            .output()
            .expect("mkfs.ext4 is missing: apt-get install e2fsprogs");
        assert!(out.status.success(), "{out:?}");
        files.push(f);
    }
    let socket = root.join("helper.sock");
    // A port that was free a moment ago (the helper fails to start, loudly, if it was taken).
    let metrics_address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_nvme-helper"))
        .arg("--endpoint")
        .arg(format!("unix://{}", socket.display()))
        .arg("--metrics-address")
        .arg(metrics_address.to_string())
        .args(["--fabric", "loop"])
        .arg("--loop-backing-dir")
        .arg(&backing)
        .arg("--kubelet-dir")
        .arg(&kubelet)
        .arg("--state-dir")
        .arg(root.join("state"))
        .arg("--host-nqn-file")
        .arg(root.join("hostnqn"))
        .arg("--host-id-file")
        .arg(root.join("hostid"))
        .args(["--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let helper = Helper { child };
    let pid = helper.child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "the helper did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    let idle_start = status_kib(pid, "VmRSS:");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let channel = rds_csi_proto::channel::connect_lazy(&Endpoint::Unix(socket.clone())).unwrap();
    let mut client = NodeHelperClient::new(channel);
    let mut helper_side = Side::Rpc(client.clone());
    // The limit's node runs on a runtime like the binary's: two workers, so that its short
    // system calls run in place as they do there.
    let in_process_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(32)
        .enable_all()
        .build()
        .unwrap();
    let in_process_registry = prometheus::Registry::new();
    let mut in_process = Side::InProcess({
        let _entered = in_process_runtime.enter();
        in_process_service(&root, &kubelet, &backing, &in_process_registry)
    });
    let h_nqn = format!("{PREFIX}pvc-bench-helper");
    let d_nqn = format!("{PREFIX}pvc-bench-direct");
    let i_nqn = format!("{PREFIX}pvc-bench-inproc");
    let h_staging = kubelet.join("plugins/v/helper-globalmount");
    let d_staging = kubelet.join("plugins/v/direct-globalmount");
    let i_staging = kubelet.join("plugins/v/inproc-globalmount");
    let h_target = kubelet.join("pods/p/helper-mount");
    let d_target = kubelet.join("pods/p/direct-mount");
    let i_target = kubelet.join("pods/p/inproc-mount");
    let mut three_cycles = || {
        let helper = runtime.block_on(helper_cycle(
            &mut helper_side,
            "pvc-bench-helper",
            &h_nqn,
            &h_staging,
            &h_target,
        ));
        let limit = in_process_runtime.block_on(helper_cycle(
            &mut in_process,
            "pvc-bench-inproc",
            &i_nqn,
            &i_staging,
            &i_target,
        ));
        let bare = direct_cycle(&files[1], &d_nqn, &d_staging, &d_target);
        (helper, limit, bare)
    };

    // Warm-up: page cache, binaries, connections.
    for _ in 0..3 {
        three_cycles();
    }
    let mut helper_steps = Vec::with_capacity(cycles);
    let mut limit_steps = Vec::with_capacity(cycles);
    let mut direct_steps = Vec::with_capacity(cycles);
    for _ in 0..cycles {
        let (helper, limit, bare) = three_cycles();
        helper_steps.push(helper);
        limit_steps.push(limit);
        direct_steps.push(bare);
    }
    // The floor of one call: a Health round trip (no kernel work) on the same channel. Four of
    // them are in every helper cycle and in no direct one.
    let mut floor: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            let health = runtime
                .block_on(client.health(HealthRequest {}))
                .unwrap()
                .into_inner();
            assert!(health.ready, "the helper is not ready: {}", health.reason);
            t.elapsed()
        })
        .collect();
    let floor = median(&mut floor);
    let total = |c: &StepTimes| c.iter().sum::<Duration>();
    let mut through_helper: Vec<Duration> = helper_steps.iter().map(total).collect();
    let mut limit: Vec<Duration> = limit_steps.iter().map(total).collect();
    let mut direct: Vec<Duration> = direct_steps.iter().map(total).collect();
    std::thread::sleep(Duration::from_millis(500));
    let idle_end = status_kib(pid, "VmRSS:");
    let peak = status_kib(pid, "VmHWM:");

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (hm, lm, dm) = (mean(&through_helper), mean(&limit), mean(&direct));
    let (hmed, lmed, dmed) = (
        median(&mut through_helper),
        median(&mut limit),
        median(&mut direct),
    );
    let ratio = hmed.as_secs_f64() / lmed.as_secs_f64();
    let idle = idle_start.max(idle_end);
    println!("stage→publish→unpublish→unstage, ext4 64 MiB loop volume, {cycles} cycles each");
    println!(
        "  through nvme-helper:            median {:>8.2} ms  mean {:>8.2} ms",
        ms(hmed),
        ms(hm)
    );
    println!(
        "  same calls in-process (limit):  median {:>8.2} ms  mean {:>8.2} ms",
        ms(lmed),
        ms(lm)
    );
    println!(
        "  ratio (medians):                {ratio:.3}x   target <= 1.15x   {}",
        if ratio <= 1.15 { "MET" } else { "MISSED" }
    );
    println!(
        "  bare minimum, no checks:        median {:>8.2} ms  mean {:>8.2} ms   (helper {:.3}x, in-process {:.3}x of it: the checks' cost)",
        ms(dmed),
        ms(dm),
        hmed.as_secs_f64() / dmed.as_secs_f64(),
        lmed.as_secs_f64() / dmed.as_secs_f64()
    );
    println!(
        "  one helper RPC with no work (Health, median): {:.0} µs, so {:.2} ms of each helper cycle is the 4 round trips",
        floor.as_secs_f64() * 1e6,
        4.0 * floor.as_secs_f64() * 1e3
    );
    let helper_page = scrape(metrics_address);
    let in_process_page = prometheus::TextEncoder::new()
        .encode_to_string(&in_process_registry.gather())
        .unwrap();
    const OPERATION: &str = "rds_csi_volume_operation_duration_seconds";
    const HANDLING: &str = "rds_csi_grpc_server_handling_seconds";
    println!(
        "  per step (medians, µs):   helper  in-process  bare minimum   means (µs, warm-up included): node code helper / in-process, helper gRPC server"
    );
    for (i, step) in STEPS.iter().enumerate() {
        let operation = format!("operation=\"{step}\"");
        let method = format!("grpc_method=\"{}\"", METHODS[i]);
        println!(
            "    {step:<10}          {:>9.0}   {:>9.0}     {:>9.0}      {:>9.0} / {:<9.0}  {:>9.0}",
            step_median_us(&helper_steps, i),
            step_median_us(&limit_steps, i),
            step_median_us(&direct_steps, i),
            histogram_mean_us(&helper_page, OPERATION, &operation),
            histogram_mean_us(&in_process_page, OPERATION, &operation),
            histogram_mean_us(&helper_page, HANDLING, &method),
        );
    }
    println!(
        "  helper RSS: idle {:.1} MiB at start, {:.1} MiB after the cycles, peak (VmHWM) {:.1} MiB   target idle < 15 MiB   {}",
        idle_start as f64 / 1024.0,
        idle_end as f64 / 1024.0,
        peak as f64 / 1024.0,
        if idle < 15 * 1024 { "MET" } else { "MISSED" }
    );
    drop(helper);
    for m in [
        &h_target, &i_target, &d_target, &h_staging, &i_staging, &d_staging,
    ] {
        let _ = nix::mount::umount2(m.as_path(), MntFlags::MNT_DETACH);
    }
}
