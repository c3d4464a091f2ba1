//! What the end-to-end suite (`tests/tests/e2e.rs`) needs beyond the stack itself: a stack
//! in its own directory that cleans up after a failed test, crashing a component the way a
//! container dies (the process and everything it started), freezing one so that a kill lands
//! at a known point, bounded retries that record every code seen, reads of the simulated
//! appliance's state and command log, kubelet paths, metric reads, the per-test table, and
//! the CSI calls with deadlines that both the suite and the fault matrix make.
//!
//! Nothing here decides whether a test passes: it measures and reports, and the suite asserts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rds_csi_proto::csi::{
    CapacityRange, ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest,
    CreateSnapshotRequest, CreateVolumeRequest, DeleteSnapshotRequest, DeleteVolumeRequest,
    ListVolumesRequest, NodeGetVolumeStatsRequest, NodePublishVolumeRequest,
    NodeStageVolumeRequest, NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest, Snapshot, Volume,
    VolumeCapability,
};
use tonic::{Code, Status};

use crate::csi_client::{Csi, new_trace, traced};
use crate::http;
use crate::leaks;
use crate::sim::cmdlog::{self, LoggedCommand};
use crate::sim::state::{self, Paths};
use crate::stack::{Endpoints, Stack, StackConfig};

/// The message every e2e test fails with when it is not run as root.
pub const ROOT_REQUIRED: &str = "run as root: the testbed needs loop devices and mounts";

/// Fails the calling test unless it runs as root (loop devices, mkfs and mounts need it).
/// A test without root must fail, never pass silently.
pub fn require_root() {
    assert!(nix::unistd::geteuid().is_root(), "{ROOT_REQUIRED}");
}

/// Capability number of `CAP_SYS_RESOURCE`: the kernel refuses an online ext4 resize without it.
pub const CAP_SYS_RESOURCE: u32 = 24;

/// Whether this process (and so the helper it starts, which inherits it) has capability
/// `cap` in its effective set, read from `/proc/self/status`.
pub fn has_capability(cap: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|mask| mask.checked_shr(cap).is_some_and(|m| m & 1 == 1))
}

/// Why a step of the suite's harness failed.
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stack of {tag}: {detail}")]
    Stack { tag: String, detail: String },
    #[error("no running component {name} in the stack of {tag}")]
    NotRunning { tag: String, name: String },
    #[error("cannot signal {name} (pid {pid}) with {signal}: {errno}")]
    Signal {
        name: String,
        pid: u32,
        signal: &'static str,
        errno: nix::errno::Errno,
    },
    #[error("reading the appliance at {root}: {detail}")]
    Appliance { root: PathBuf, detail: String },
    #[error("scraping {addr}{path}: {detail}")]
    Scrape {
        addr: SocketAddr,
        path: String,
        detail: String,
    },
}

/// A stack in its own directory under the system temporary directory. Dropping it (a failed
/// test) kills every component, lazily unmounts and detaches whatever was left, and removes
/// the directory, so that one failure does not leave mounts on the machine.
pub struct Bed {
    pub tag: String,
    pub dir: PathBuf,
    pub ep: Endpoints,
    pub csi: Csi,
    stack: Option<Stack>,
}

impl Bed {
    /// Starts a stack for test `tag`: with `split`, the controller and node frontends are
    /// separate processes (`csi-frontend-controller`, `csi-frontend-node`); `sim_latency`
    /// entries (`disk-add=1500ms`) slow the appliance's verbs.
    pub async fn start(tag: &str, split: bool, sim_latency: &[&str]) -> Result<Bed, E2eError> {
        Self::start_logging(tag, split, sim_latency, "warn").await
    }

    /// [`Bed::start`] with the components' log filter (`error` keeps a long run quiet).
    pub async fn start_logging(
        tag: &str,
        split: bool,
        sim_latency: &[&str],
        log_level: &str,
    ) -> Result<Bed, E2eError> {
        let dir = std::env::temp_dir().join(format!(
            "rds-e2e-{tag}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&dir).map_err(|source| E2eError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut cfg = StackConfig::new(&dir);
        if split {
            cfg.controller_socket = Some(dir.join("sockets/controller.sock"));
        }
        cfg.sim_latency = sim_latency.iter().map(|s| s.to_string()).collect();
        cfg.log_level = log_level.to_string();
        let stack = match Stack::start(&cfg).await {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(E2eError::Stack {
                    tag: tag.into(),
                    detail: e.to_string(),
                });
            }
        };
        let ep = stack.endpoints.clone();
        let csi = Csi::connect(&ep.csi_socket, &ep.controller_socket).map_err(|detail| {
            E2eError::Stack {
                tag: tag.into(),
                detail,
            }
        })?;
        Ok(Bed {
            tag: tag.to_string(),
            dir,
            ep,
            csi,
            stack: Some(stack),
        })
    }

    fn stack_mut(&mut self) -> Result<&mut Stack, E2eError> {
        self.stack.as_mut().ok_or_else(|| E2eError::Stack {
            tag: self.tag.clone(),
            detail: "already stopped".into(),
        })
    }

    /// The pid of a running component.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.stack.as_ref().and_then(|s| s.pid(name))
    }

    fn running_pid(&self, name: &str) -> Result<u32, E2eError> {
        self.pid(name).ok_or_else(|| E2eError::NotRunning {
            tag: self.tag.clone(),
            name: name.to_string(),
        })
    }

    /// Freezes component `name` with SIGSTOP: it keeps its state (open sessions, a call half
    /// done) but does nothing more until killed.
    pub fn freeze(&self, name: &str) -> Result<(), E2eError> {
        let pid = self.running_pid(name)?;
        signal(name, pid, Signal::SIGSTOP)
    }

    /// Crashes component `name` as a container dies: SIGKILL to the process and to every
    /// process it started (a `mkfs` it was running, say), then waits for it to be gone.
    pub async fn crash(&mut self, name: &str) -> Result<(), E2eError> {
        let pid = self.running_pid(name)?;
        // Stopped first, so that it cannot start a new child while its children are listed.
        signal(name, pid, Signal::SIGSTOP)?;
        for child in descendants(pid) {
            let _ = signal(name, child, Signal::SIGKILL);
        }
        let tag = self.tag.clone();
        self.stack_mut()?
            .kill(name, Signal::SIGKILL)
            .await
            .map_err(|e| E2eError::Stack {
                tag,
                detail: e.to_string(),
            })
    }

    /// Starts component `name` again with the same flags.
    pub async fn restart(&mut self, name: &str) -> Result<(), E2eError> {
        let tag = self.tag.clone();
        self.stack_mut()?
            .restart(name)
            .await
            .map_err(|e| E2eError::Stack {
                tag,
                detail: e.to_string(),
            })
    }

    /// Stops every component with SIGTERM (checking each exit) and returns what the run
    /// left behind: mounts, loop devices and `.img` files (empty when nothing leaked).
    pub async fn stop(&mut self) -> Result<Vec<String>, E2eError> {
        if let Some(stack) = self.stack.take() {
            stack.stop().await.map_err(|e| E2eError::Stack {
                tag: self.tag.clone(),
                detail: e.to_string(),
            })?;
        }
        Ok(leaks::all(&self.ep.sim_root, &self.ep.kubelet_dir))
    }

    /// The metrics address of component `name`.
    pub fn metrics(&self, name: &str) -> Result<SocketAddr, E2eError> {
        self.ep
            .metrics_of(name)
            .ok_or_else(|| E2eError::NotRunning {
                tag: self.tag.clone(),
                name: name.to_string(),
            })
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        // Components die with their handles (SIGKILL); then nothing of theirs may remain.
        drop(self.stack.take());
        std::thread::sleep(Duration::from_millis(100));
        leaks::force_clean(&self.ep.sim_root, &self.ep.kubelet_dir);
        if leaks::mounts_under(&self.dir).is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn signal(name: &str, pid: u32, sig: Signal) -> Result<(), E2eError> {
    let raw = i32::try_from(pid).map_err(|_| E2eError::Signal {
        name: name.to_string(),
        pid,
        signal: sig.as_str(),
        errno: nix::errno::Errno::ESRCH,
    })?;
    kill(Pid::from_raw(raw), sig).map_err(|errno| E2eError::Signal {
        name: name.to_string(),
        pid,
        signal: sig.as_str(),
        errno,
    })
}

/// Every process below `pid` (children, their children, ...), read from `/proc/*/stat`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (child, parent) in &parent_of {
            if *parent == p && !out.contains(child) {
                out.push(*child);
                frontier.push(*child);
            }
        }
    }
    out
}

/// Whether a status is what a CO may see while a component is down or restarting:
/// UNAVAILABLE, ABORTED, DEADLINE_EXCEEDED, or a transport failure that tonic reports
/// without a server-chosen code.
pub fn acceptable_while_down(s: &Status) -> bool {
    match s.code() {
        Code::Unavailable | Code::Aborted | Code::DeadlineExceeded => true,
        Code::Unknown | Code::Cancelled => {
            let m = s.message().to_ascii_lowercase();
            [
                "transport error",
                "connection",
                "h2 protocol error",
                "broken pipe",
                // tonic's own channel, when its connection to the dead socket is torn down
                // while the call waits for it (the call never reached a server).
                "operation was canceled",
            ]
            .iter()
            .any(|t| m.contains(t))
        }
        _ => false,
    }
}

/// A status in one short line: `Unavailable: message` (the message cut at 160 characters).
pub fn code_line(s: &Status) -> String {
    let msg: String = s.message().chars().take(160).collect();
    format!("{:?}: {msg}", s.code())
}

/// The codes a sequence of attempts saw, with how often: `Unavailable x3, Ok`.
#[derive(Debug, Default, Clone)]
pub struct Codes {
    seen: BTreeMap<String, u32>,
    order: Vec<String>,
    /// Every status that was not acceptable while a component was down.
    pub unacceptable: Vec<String>,
}

impl Codes {
    /// Records one outcome.
    pub fn record<T>(&mut self, r: &Result<T, Status>) {
        let key = match r {
            Ok(_) => "Ok".to_string(),
            Err(s) => {
                if !acceptable_while_down(s) {
                    self.unacceptable.push(code_line(s));
                }
                format!("{:?}", s.code())
            }
        };
        if !self.seen.contains_key(&key) {
            self.order.push(key.clone());
        }
        *self.seen.entry(key).or_insert(0) += 1;
    }

    /// How many outcomes were recorded.
    pub fn total(&self) -> u32 {
        self.seen.values().sum()
    }
}

impl std::fmt::Display for Codes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .order
            .iter()
            .map(|k| match self.seen.get(k) {
                Some(n) if *n > 1 => format!("{k} x{n}"),
                _ => k.clone(),
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// Calls `call` until it succeeds, at most `attempts` times with `pause` between attempts,
/// stopping at the first status that is not acceptable while a component restarts. Returns
/// the value (if any attempt succeeded) and every code seen.
pub async fn retry<T, F, Fut>(attempts: u32, pause: Duration, mut call: F) -> (Option<T>, Codes)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut codes = Codes::default();
    for i in 0..attempts {
        let r = call().await;
        codes.record(&r);
        match r {
            Ok(v) => return (Some(v), codes),
            Err(s) if !acceptable_while_down(&s) => return (None, codes),
            Err(_) => {}
        }
        if i + 1 < attempts {
            tokio::time::sleep(pause).await;
        }
    }
    (None, codes)
}

/// `msg` as a request with its own trace and a deadline (sent as `grpc-timeout`).
pub fn request<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let (traceparent, _) = new_trace();
    let mut r = traced(msg, &traceparent);
    r.set_timeout(timeout);
    r
}

/// Polls `check` every `every` until it holds or `within` passes; returns how long it took.
pub async fn wait_until<F>(within: Duration, every: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> bool,
{
    let start = Instant::now();
    loop {
        if check() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// The slots of every disk the simulated appliance at `sim_root` has (from its persisted
/// state; the pool is not a disk there).
pub fn disk_slots(sim_root: &Path) -> Result<Vec<String>, E2eError> {
    state::load(&Paths::new(sim_root))
        .map(|s| s.disks.into_iter().map(|d| d.slot).collect())
        .map_err(|e| E2eError::Appliance {
            root: sim_root.to_path_buf(),
            detail: e.to_string(),
        })
}

/// How many disks have slot `slot`.
pub fn disks_named(sim_root: &Path, slot: &str) -> Result<usize, E2eError> {
    Ok(disk_slots(sim_root)?.iter().filter(|s| *s == slot).count())
}

/// Every command the appliance received, in order.
pub fn commands(sim_root: &Path) -> Result<Vec<LoggedCommand>, E2eError> {
    cmdlog::read(sim_root).map_err(|e| E2eError::Appliance {
        root: sim_root.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Whether a command after the first `from` of the log contains every one of `needles`.
pub fn logged_since(sim_root: &Path, from: usize, needles: &[&str]) -> bool {
    commands(sim_root).is_ok_and(|log| {
        log.iter()
            .skip(from)
            .any(|c| needles.iter().all(|n| c.command.contains(n)))
    })
}

/// Loop devices attached to the backing file of volume `id` (`<id>.img` under `sim_root`).
pub fn loops_of(sim_root: &Path, id: &str) -> Vec<String> {
    let file = format!("/{id}.img");
    leaks::loops_under(sim_root)
        .into_iter()
        .filter(|l| l.ends_with(&file) || l.contains(&format!("{file} ")))
        .collect()
}

/// How many mounts sit exactly at `path` (more than one: stacked mounts).
pub fn mounts_at(path: &Path) -> usize {
    let p = path.display().to_string();
    leaks::mounts_under(path)
        .into_iter()
        .filter(|m| *m == p)
        .count()
}

/// Distinct mount points at or below `dir`.
pub fn distinct_mounts_under(dir: &Path) -> BTreeSet<String> {
    leaks::mounts_under(dir).into_iter().collect()
}

/// The staging path kubelet would give volume `tag`, created.
pub fn staging_path(kubelet: &Path, tag: &str) -> Result<PathBuf, E2eError> {
    let p = kubelet.join(format!(
        "plugins/kubernetes.io/csi/rds.csi.srvlab.io/{tag}/globalmount"
    ));
    std::fs::create_dir_all(&p).map_err(|source| E2eError::Io {
        path: p.clone(),
        source,
    })?;
    Ok(p)
}

/// The pod path kubelet would publish volume `tag` to: a directory for a filesystem (its
/// parent created), a file path for a block volume.
pub fn pod_path(kubelet: &Path, tag: &str, block: bool) -> Result<PathBuf, E2eError> {
    let dir = kubelet.join(format!("pods/{tag}-pod/volumes/kubernetes.io~csi/{tag}"));
    std::fs::create_dir_all(&dir).map_err(|source| E2eError::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(dir.join(if block { "dev" } else { "mount" }))
}

/// GETs `/metrics` from `addr` and returns the value of the first sample of `name` with
/// all of `labels` (`None` when the series is absent).
pub async fn metric(
    addr: SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
) -> Result<Option<f64>, E2eError> {
    let reply = http::get(addr, "/metrics", Duration::from_secs(5))
        .await
        .map_err(|e| E2eError::Scrape {
            addr,
            path: "/metrics".into(),
            detail: e.to_string(),
        })?;
    if reply.status != 200 {
        return Err(E2eError::Scrape {
            addr,
            path: "/metrics".into(),
            detail: format!("HTTP {}", reply.status),
        });
    }
    Ok(http::sample(&reply.body, name, labels))
}

/// The HTTP status of `/readyz` at `addr` (0 when nothing answers).
pub async fn readyz(addr: SocketAddr) -> u16 {
    http::get(addr, "/readyz", Duration::from_secs(2))
        .await
        .map(|r| r.status)
        .unwrap_or(0)
}

/// One row of a test's table.
#[derive(Debug, Clone)]
pub struct Row {
    pub what: String,
    pub trials: u32,
    pub outcome: Result<String, String>,
    pub took: Duration,
}

/// The table a test prints: what was done, how many trials, the outcome, how long.
#[derive(Debug)]
pub struct Table {
    title: String,
    rows: Vec<Row>,
    started: Instant,
}

impl Table {
    pub fn new(title: &str) -> Table {
        Table {
            title: title.to_string(),
            rows: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Adds a row.
    pub fn row(
        &mut self,
        what: &str,
        trials: u32,
        outcome: Result<String, String>,
        took: Duration,
    ) {
        self.rows.push(Row {
            what: what.to_string(),
            trials,
            outcome,
            took,
        });
    }

    /// The rows that failed, as `what: detail`.
    pub fn failures(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter_map(|r| r.outcome.as_ref().err().map(|e| format!("{}: {e}", r.what)))
            .collect()
    }

    /// Prints the table (one `print!`, so that tests running at once do not interleave).
    pub fn print(&self) {
        let mut out = format!(
            "\n== {} ({:.1} s)\n{:<48} {:>6}  {:<6} {:>9}  detail\n",
            self.title,
            self.started.elapsed().as_secs_f64(),
            "what",
            "trials",
            "result",
            "ms"
        );
        for r in &self.rows {
            let (res, detail) = match &r.outcome {
                Ok(d) => ("ok", d.as_str()),
                Err(d) => ("FAIL", d.as_str()),
            };
            out.push_str(&format!(
                "{:<48} {:>6}  {res:<6} {:>9.1}  {detail}\n",
                r.what,
                r.trials,
                r.took.as_secs_f64() * 1000.0
            ));
        }
        print!("{out}");
    }
}

// ---------------------------------------------------------------------------------------------
// CSI calls with deadlines, shared by the end-to-end suite and the fault matrix
// ---------------------------------------------------------------------------------------------

/// CreateVolume of `name` with `bytes` required and capability `cap`.
pub async fn create(
    csi: &Csi,
    name: &str,
    bytes: i64,
    cap: &VolumeCapability,
    timeout: Duration,
) -> Result<Volume, Status> {
    let mut c = csi.controller.clone();
    let r = c
        .create_volume(request(
            CreateVolumeRequest {
                name: name.to_string(),
                capacity_range: Some(CapacityRange {
                    required_bytes: bytes,
                    limit_bytes: 0,
                }),
                volume_capabilities: vec![cap.clone()],
                ..Default::default()
            },
            timeout,
        ))
        .await?;
    r.into_inner()
        .volume
        .ok_or_else(|| Status::internal("CreateVolume answered without a volume"))
}

/// ControllerPublishVolume of `vol` to `node`; returns the publish context.
pub async fn publish(
    csi: &Csi,
    vol: &Volume,
    node: &str,
    cap: &VolumeCapability,
    timeout: Duration,
) -> Result<HashMap<String, String>, Status> {
    let mut c = csi.controller.clone();
    let r = c
        .controller_publish_volume(request(
            ControllerPublishVolumeRequest {
                volume_id: vol.volume_id.clone(),
                node_id: node.to_string(),
                volume_capability: Some(cap.clone()),
                readonly: false,
                volume_context: vol.volume_context.clone(),
                ..Default::default()
            },
            timeout,
        ))
        .await?;
    Ok(r.into_inner().publish_context)
}

/// ControllerUnpublishVolume of volume `id` from `node`.
pub async fn unpublish(csi: &Csi, id: &str, node: &str, timeout: Duration) -> Result<(), Status> {
    let mut c = csi.controller.clone();
    c.controller_unpublish_volume(request(
        ControllerUnpublishVolumeRequest {
            volume_id: id.to_string(),
            node_id: node.to_string(),
            ..Default::default()
        },
        timeout,
    ))
    .await?;
    Ok(())
}

/// NodeStageVolume of `vol` at `staging` with the publish context `ctx`.
pub async fn stage(
    csi: &Csi,
    vol: &Volume,
    ctx: &HashMap<String, String>,
    staging: &Path,
    cap: &VolumeCapability,
    timeout: Duration,
) -> Result<(), Status> {
    let mut n = csi.node.clone();
    n.node_stage_volume(request(
        NodeStageVolumeRequest {
            volume_id: vol.volume_id.clone(),
            publish_context: ctx.clone(),
            staging_target_path: staging.display().to_string(),
            volume_capability: Some(cap.clone()),
            volume_context: vol.volume_context.clone(),
            ..Default::default()
        },
        timeout,
    ))
    .await?;
    Ok(())
}

/// NodeUnstageVolume of volume `id` from `staging`.
pub async fn unstage(csi: &Csi, id: &str, staging: &Path, timeout: Duration) -> Result<(), Status> {
    let mut n = csi.node.clone();
    n.node_unstage_volume(request(
        NodeUnstageVolumeRequest {
            volume_id: id.to_string(),
            staging_target_path: staging.display().to_string(),
        },
        timeout,
    ))
    .await?;
    Ok(())
}

/// NodePublishVolume of `vol`, staged at `staging`, to the pod path `target`.
#[allow(clippy::too_many_arguments)]
pub async fn node_publish(
    csi: &Csi,
    vol: &Volume,
    ctx: &HashMap<String, String>,
    staging: &Path,
    target: &Path,
    cap: &VolumeCapability,
    timeout: Duration,
) -> Result<(), Status> {
    let mut n = csi.node.clone();
    n.node_publish_volume(request(
        NodePublishVolumeRequest {
            volume_id: vol.volume_id.clone(),
            publish_context: ctx.clone(),
            staging_target_path: staging.display().to_string(),
            target_path: target.display().to_string(),
            volume_capability: Some(cap.clone()),
            readonly: false,
            volume_context: vol.volume_context.clone(),
            ..Default::default()
        },
        timeout,
    ))
    .await?;
    Ok(())
}

/// NodeUnpublishVolume of volume `id` from the pod path `target`.
pub async fn node_unpublish(
    csi: &Csi,
    id: &str,
    target: &Path,
    timeout: Duration,
) -> Result<(), Status> {
    let mut n = csi.node.clone();
    n.node_unpublish_volume(request(
        NodeUnpublishVolumeRequest {
            volume_id: id.to_string(),
            target_path: target.display().to_string(),
        },
        timeout,
    ))
    .await?;
    Ok(())
}

/// DeleteVolume of volume `id`.
pub async fn delete(csi: &Csi, id: &str, timeout: Duration) -> Result<(), Status> {
    let mut c = csi.controller.clone();
    c.delete_volume(request(
        DeleteVolumeRequest {
            volume_id: id.to_string(),
            ..Default::default()
        },
        timeout,
    ))
    .await?;
    Ok(())
}

/// CreateSnapshot called `name` of volume `source`.
pub async fn create_snapshot(
    csi: &Csi,
    name: &str,
    source: &str,
    timeout: Duration,
) -> Result<Snapshot, Status> {
    let mut c = csi.controller.clone();
    let r = c
        .create_snapshot(request(
            CreateSnapshotRequest {
                name: name.to_string(),
                source_volume_id: source.to_string(),
                ..Default::default()
            },
            timeout,
        ))
        .await?;
    r.into_inner()
        .snapshot
        .ok_or_else(|| Status::internal("CreateSnapshot answered without a snapshot"))
}

/// DeleteSnapshot of snapshot `id`.
pub async fn delete_snapshot(csi: &Csi, id: &str, timeout: Duration) -> Result<(), Status> {
    let mut c = csi.controller.clone();
    c.delete_snapshot(request(
        DeleteSnapshotRequest {
            snapshot_id: id.to_string(),
            ..Default::default()
        },
        timeout,
    ))
    .await?;
    Ok(())
}

/// NodeGetVolumeStats of volume `id` at `path`; returns the reported condition
/// (`abnormal`, message), `None` when the answer carried none.
pub async fn volume_condition(
    csi: &Csi,
    id: &str,
    path: &Path,
    timeout: Duration,
) -> Result<Option<(bool, String)>, Status> {
    let mut n = csi.node.clone();
    let r = n
        .node_get_volume_stats(request(
            NodeGetVolumeStatsRequest {
                volume_id: id.to_string(),
                volume_path: path.display().to_string(),
                staging_target_path: String::new(),
            },
            timeout,
        ))
        .await?;
    Ok(r.into_inner()
        .volume_condition
        .map(|c| (c.abnormal, c.message)))
}

/// The ids of every volume ListVolumes reports (all pages).
pub async fn list_volume_ids(csi: &Csi, timeout: Duration) -> Result<Vec<String>, Status> {
    let mut c = csi.controller.clone();
    let mut out = Vec::new();
    let mut token = String::new();
    // A safety stop: the driver's pages cannot be more than the disks it has.
    for _ in 0..10_000 {
        let page = c
            .list_volumes(request(
                ListVolumesRequest {
                    max_entries: 0,
                    starting_token: token.clone(),
                },
                timeout,
            ))
            .await?
            .into_inner();
        out.extend(
            page.entries
                .into_iter()
                .filter_map(|e| e.volume.map(|v| v.volume_id)),
        );
        if page.next_token.is_empty() {
            break;
        }
        token = page.next_token;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn transport_failures_and_waiting_codes_are_acceptable_others_not() {
        assert!(acceptable_while_down(&Status::unavailable("x")));
        assert!(acceptable_while_down(&Status::aborted("busy")));
        assert!(acceptable_while_down(&Status::deadline_exceeded("slow")));
        assert!(acceptable_while_down(&Status::unknown(
            "transport error: connection reset"
        )));
        assert!(acceptable_while_down(&Status::cancelled(
            "operation was canceled"
        )));
        assert!(!acceptable_while_down(&Status::internal("transport")));
        assert!(!acceptable_while_down(&Status::unknown("mkfs failed")));
        assert!(!acceptable_while_down(&Status::already_exists("dup")));
    }

    #[test]
    fn codes_count_in_order_and_flag_unacceptable_ones() {
        let mut c = Codes::default();
        c.record::<()>(&Err(Status::unavailable("down")));
        c.record::<()>(&Err(Status::unavailable("down")));
        c.record::<()>(&Err(Status::internal("boom")));
        c.record(&Ok(()));
        assert_eq!(c.to_string(), "Unavailable x2, Internal, Ok");
        assert_eq!(c.total(), 4);
        assert_eq!(c.unacceptable, vec!["Internal: boom".to_string()]);
    }

    #[tokio::test]
    async fn retry_stops_at_success_or_at_an_unacceptable_code() {
        let mut n = 0;
        let (v, codes) = retry(5, Duration::from_millis(1), || {
            n += 1;
            let r = if n < 3 {
                Err(Status::unavailable("down"))
            } else {
                Ok(n)
            };
            async move { r }
        })
        .await;
        assert_eq!(v, Some(3));
        assert_eq!(codes.to_string(), "Unavailable x2, Ok");
        let (v, codes) = retry(5, Duration::from_millis(1), || async {
            Err::<(), _>(Status::invalid_argument("bad"))
        })
        .await;
        assert_eq!(v, None);
        assert_eq!(codes.total(), 1);
    }

    #[test]
    fn descendants_of_this_process_include_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let kids = descendants(std::process::id());
        let id = child.id();
        let _ = child.kill();
        let _ = child.wait();
        assert!(kids.contains(&id), "{kids:?} lacks {id}");
    }
}
