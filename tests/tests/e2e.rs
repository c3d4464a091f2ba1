//! The end-to-end suite: the shipped binaries running together as separate processes (rds-sim
//! as the appliance, rds-gateway over SSH, nvme-helper on the loop fabric with real mkfs and
//! mounts, csi-frontend in controller and node mode), driven only through the CSI sockets and
//! checked from the outside (the appliance's state and command log, mountinfo, loop devices,
//! `/metrics`, `/readyz`).
//!
//! - the scripted lifecycle for ext4, xfs and raw block;
//! - `kill -9` of each component at a point inside CreateVolume, ControllerPublishVolume or
//!   NodeStageVolume, then restart, retry until the call succeeds (only UNAVAILABLE, ABORTED,
//!   DEADLINE_EXCEEDED or transport failures may be seen on the way), and convergence: one disk,
//!   one mount, one loop device, nothing left after teardown;
//! - the appliance restarted under a staged volume, with the gateway reconnecting by itself;
//! - the controller frontend restarted with volumes attached, `rds_csi_nvme_connections_active`
//!   right on its first scrape;
//! - 32 volumes created, staged and deleted in parallel.
//!
//! Each test starts its own stack in its own directory, so tests run in parallel. Root is
//! required (loop devices, mkfs, mounts): without it every test fails, never passes silently.
//! Build the binaries first: `cargo build --workspace --bins`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rds_csi_proto::csi::volume_capability::access_mode::Mode;
use rds_csi_proto::csi::*;
use rds_csi_testbed::csi_client::{Csi, block_capability, mount_capability};
use rds_csi_testbed::e2e_support::{
    Bed, Codes, Table, code_line, commands, create, delete, disk_slots, disks_named,
    distinct_mounts_under, logged_since, loops_of, metric, mounts_at, node_publish, node_unpublish,
    pod_path, publish, readyz, require_root, retry, stage, staging_path, unpublish, unstage,
    wait_until,
};
use rds_csi_testbed::leaks;
use rds_csi_testbed::lifecycle::{self, Flavor};
use rds_csi_testbed::sim::{FaultAction, FaultRule, Faults, Verb};
use tonic::{Code, Status};

const MIB: i64 = 1 << 20;
const NODE: &str = "testbed-node";
const CONNECTIONS: &str = "rds_csi_nvme_connections_active";
const CONTROLLER: &str = "csi-frontend-controller";
const NODE_FRONTEND: &str = "csi-frontend-node";
const GATEWAY: &str = "rds-gateway";
const HELPER: &str = "nvme-helper";
const SIM: &str = "rds-sim";
/// Deadline of one CSI call made by the suite.
const CALL: Duration = Duration::from_secs(30);

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn new_volume_name() -> String {
    // A provisioner-style name (`pvc-<uuid>`) is the volume id itself, so the suite knows the
    // slot before CreateVolume answers.
    format!("pvc-{}", uuid::Uuid::new_v4())
}

/// Runs one step, records its row, and turns a failure into the test's error.
async fn step<T, Fut>(t: &mut Table, what: &str, fut: Fut) -> Result<T, String>
where
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let start = Instant::now();
    match fut.await {
        Ok(v) => {
            t.row(what, 1, Ok(String::new()), start.elapsed());
            Ok(v)
        }
        Err(s) => {
            let e = code_line(&s);
            t.row(what, 1, Err(e.clone()), start.elapsed());
            Err(format!("{what}: {e}"))
        }
    }
}

/// Records a check that holds or not.
fn check(
    t: &mut Table,
    what: &str,
    outcome: Result<String, String>,
    took: Duration,
) -> Result<(), String> {
    let failed = outcome.as_ref().err().map(|e| format!("{what}: {e}"));
    t.row(what, 1, outcome, took);
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Stops the stack and requires that nothing was left behind; prints the table and fails the
/// test on any failed row.
async fn finish(mut bed: Bed, mut t: Table, body: Result<(), String>) {
    let start = Instant::now();
    let left = bed.stop().await;
    let outcome = match left {
        Ok(l) if l.is_empty() => Ok("no mount, loop device or .img left".to_string()),
        Ok(l) => Err(format!("leaked: {l:?}")),
        Err(e) => Err(e.to_string()),
    };
    t.row(
        "stop the stack (SIGTERM); leaks",
        1,
        outcome,
        start.elapsed(),
    );
    t.print();
    let failures = t.failures();
    drop(bed);
    if let Err(e) = body {
        panic!("{e}\nall failures: {failures:#?}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------------------------------------
// 1. The lifecycle for ext4, xfs and block
// ---------------------------------------------------------------------------------------------

async fn lifecycle_of(flavor: Flavor, split: bool) {
    require_root();
    let tag = format!("life-{}", flavor.name());
    let mut t = Table::new(&format!(
        "lifecycle {} ({})",
        flavor.name(),
        if split {
            "controller and node frontends apart"
        } else {
            "one frontend in mode all"
        }
    ));
    let start = Instant::now();
    let bed = Bed::start(&tag, split, &[])
        .await
        .expect("the stack starts");
    t.row("start the stack", 1, Ok(String::new()), start.elapsed());
    let start = Instant::now();
    let (steps, ok) = lifecycle::run(&bed.csi, &bed.ep.kubelet_dir, flavor, &tag).await;
    lifecycle::print_table(&format!("lifecycle steps ({})", flavor.name()), &steps);
    let failed: Vec<String> = steps
        .iter()
        .filter_map(|s| s.outcome.as_ref().err().map(|e| format!("{}: {e}", s.name)))
        .collect();
    let outcome = if ok && failed.is_empty() {
        Ok(format!("{} steps", steps.len()))
    } else {
        Err(format!("{failed:?}"))
    };
    let body = check(
        &mut t,
        "scripted lifecycle with teardown",
        outcome,
        start.elapsed(),
    );
    let slots = disk_slots(&bed.ep.sim_root).map_err(|e| e.to_string());
    let body = body.and(check(
        &mut t,
        "no disk left on the appliance",
        match slots {
            Ok(s) if s.is_empty() => Ok("0 disks".into()),
            Ok(s) => Err(format!("{s:?}")),
            Err(e) => Err(e),
        },
        Duration::ZERO,
    ));
    finish(bed, t, body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_ext4() {
    lifecycle_of(Flavor::Ext4, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_xfs() {
    lifecycle_of(Flavor::Xfs, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_block() {
    lifecycle_of(Flavor::Block, true).await;
}

// ---------------------------------------------------------------------------------------------
// 2. kill -9 inside a call, restart, retry, converge
// ---------------------------------------------------------------------------------------------

/// The CSI call a crash lands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Create,
    Publish,
    Stage,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Create => "CreateVolume",
            Call::Publish => "ControllerPublishVolume",
            Call::Stage => "NodeStageVolume",
        }
    }
}

/// Size of the crash tests' volumes.
const CRASH_SIZE: i64 = 256 * MIB;
/// The appliance's delay on `/disk add`: the window a kill inside CreateVolume lands in.
const DISK_ADD_DELAY: &str = "disk-add=1500ms";

/// One call under test, repeatable.
#[derive(Clone)]
struct Target {
    csi: Csi,
    call: Call,
    name: String,
    cap: VolumeCapability,
    vol: Option<Volume>,
    ctx: HashMap<String, String>,
    staging: PathBuf,
}

enum Done {
    Created(Volume),
    Published,
    Staged,
}

impl Target {
    async fn run(self, timeout: Duration) -> Result<Done, Status> {
        let vol = || {
            self.vol
                .clone()
                .ok_or_else(|| Status::internal("no volume to work on"))
        };
        match self.call {
            Call::Create => create(&self.csi, &self.name, CRASH_SIZE, &self.cap, timeout)
                .await
                .map(Done::Created),
            Call::Publish => publish(&self.csi, &vol()?, NODE, &self.cap, timeout)
                .await
                .map(|_| Done::Published),
            Call::Stage => stage(
                &self.csi,
                &vol()?,
                &self.ctx,
                &self.staging,
                &self.cap,
                timeout,
            )
            .await
            .map(|_| Done::Staged),
        }
    }
}

/// Where the call under test is when the component is frozen, then killed.
async fn reach_window(bed: &Bed, target: &Target, from_log: usize) -> Result<String, String> {
    let root = bed.ep.sim_root.clone();
    let id = target.name.clone();
    let within = Duration::from_secs(15);
    match target.call {
        Call::Create => wait_until(within, Duration::from_millis(2), || {
            logged_since(&root, from_log, &["/disk add", &id])
        })
        .await
        .map(|d| {
            format!(
                "`/disk add` of {id} received by the appliance after {}",
                ms(d)
            )
        })
        .ok_or_else(|| format!("no `/disk add` of {id} reached the appliance within {within:?}")),
        Call::Publish => wait_until(within, Duration::from_millis(2), || {
            logged_since(&root, from_log, &["/disk", &id])
        })
        .await
        .map(|d| {
            format!(
                "the volume's `/disk print` hangs on the appliance ({})",
                ms(d)
            )
        })
        .ok_or_else(|| format!("no `/disk print` of {id} reached the appliance within {within:?}")),
        Call::Stage => wait_until(within, Duration::from_millis(1), || {
            !loops_of(&root, &id).is_empty()
        })
        .await
        .map(|d| format!("loop device attached after {}", ms(d)))
        .ok_or_else(|| format!("no loop device for {id} within {within:?}")),
    }
}

async fn crash_inside(component: &'static str, call: Call) {
    require_root();
    let tag = format!(
        "crash-{}-{}",
        component.trim_start_matches("csi-frontend-"),
        match call {
            Call::Create => "create",
            Call::Publish => "publish",
            Call::Stage => "stage",
        }
    );
    let mut t = Table::new(&format!("kill -9 {component} inside {}", call.name()));
    let latency: &[&str] = if call == Call::Create {
        &[DISK_ADD_DELAY]
    } else {
        &[]
    };
    let start = Instant::now();
    let mut bed = Bed::start(&tag, true, latency)
        .await
        .expect("the stack starts");
    t.row(
        "start the stack (frontends apart)",
        1,
        Ok(latency.join(" ")),
        start.elapsed(),
    );
    let name = new_volume_name();
    let staging = staging_path(&bed.ep.kubelet_dir, &tag).expect("a staging path");
    let body = crash_body(&mut bed, &mut t, &name, &staging, component, call).await;
    if body.is_err() {
        cleanup_after_failure(&mut bed, &mut t, component, &name, &staging).await;
    }
    finish(bed, t, body).await;
}

/// After a failed crash test: the component running again, no fault left, and the volume
/// unstaged, unpublished and deleted as far as the driver lets it, so that the leak check
/// reports what the driver leaves, not what the test abandoned.
async fn cleanup_after_failure(
    bed: &mut Bed,
    t: &mut Table,
    component: &str,
    name: &str,
    staging: &Path,
) {
    let start = Instant::now();
    let _ = Faults::clear(&bed.ep.sim_root);
    let mut notes = Vec::new();
    if bed.pid(component).is_none()
        && let Err(e) = bed.restart(component).await
    {
        notes.push(format!("restart {component}: {e}"));
    }
    let csi = bed.csi.clone();
    let pause = Duration::from_millis(300);
    let (r, codes) = retry(10, pause, || unstage(&csi, name, staging, CALL)).await;
    notes.push(format!("NodeUnstageVolume {} ({codes})", r.is_some()));
    let (r, codes) = retry(10, pause, || unpublish(&csi, name, NODE, CALL)).await;
    notes.push(format!(
        "ControllerUnpublishVolume {} ({codes})",
        r.is_some()
    ));
    let (r, codes) = retry(10, pause, || delete(&csi, name, CALL)).await;
    notes.push(format!("DeleteVolume {} ({codes})", r.is_some()));
    t.row(
        "best-effort teardown after the failure",
        1,
        Ok(notes.join("; ")),
        start.elapsed(),
    );
}

async fn crash_body(
    bed: &mut Bed,
    t: &mut Table,
    name: &str,
    staging: &Path,
    component: &'static str,
    call: Call,
) -> Result<(), String> {
    let csi = bed.csi.clone();
    let root = bed.ep.sim_root.clone();
    let cap = mount_capability("ext4", Mode::SingleNodeWriter);
    let name = name.to_string();
    let staging = staging.to_path_buf();
    let mut target = Target {
        csi: csi.clone(),
        call,
        name: name.clone(),
        cap: cap.clone(),
        vol: None,
        ctx: HashMap::new(),
        staging: staging.clone(),
    };
    if call != Call::Create {
        target.vol = Some(
            step(
                t,
                "CreateVolume 256 MiB ext4",
                create(&csi, &name, CRASH_SIZE, &cap, CALL),
            )
            .await?,
        );
    }
    if call == Call::Stage {
        let vol = target.vol.clone().ok_or("no volume")?;
        target.ctx = step(
            t,
            "ControllerPublishVolume",
            publish(&csi, &vol, NODE, &cap, CALL),
        )
        .await?;
    }
    if call == Call::Publish {
        // Widen the window: the volume's look-up on the appliance never answers.
        Faults::write(
            &root,
            &[FaultRule::always(Verb::DiskPrint, FaultAction::Hang)],
        )
        .map_err(|e| e.to_string())?;
    }

    // The call, in flight; the component frozen inside it, checked, then killed.
    let from_log = commands(&root).map_err(|e| e.to_string())?.len();
    let start = Instant::now();
    let in_flight = tokio::spawn(target.clone().run(CALL));
    let reached = reach_window(bed, &target, from_log).await;
    let reached = check(
        t,
        &format!("{} in flight", call.name()),
        reached,
        start.elapsed(),
    );
    if let Err(e) = reached {
        let _ = Faults::clear(&root);
        return Err(e);
    }
    bed.freeze(component).map_err(|e| e.to_string())?;
    let pending = !in_flight.is_finished();
    let disks_then = disks_named(&root, &name).map_err(|e| e.to_string())?;
    let mounted_then = mounts_at(&staging);
    let frozen_at = match call {
        Call::Create => format!(
            "call pending: {pending}; disk on the appliance: {}",
            disks_then > 0
        ),
        Call::Publish => format!("call pending: {pending}; appliance look-up unanswered"),
        Call::Stage => format!(
            "call pending: {pending}; staging path mounted: {}",
            mounted_then > 0
        ),
    };
    let inside = pending && !(call == Call::Create && disks_then > 0);
    check(
        t,
        &format!("{component} frozen inside the call"),
        if inside {
            Ok(frozen_at)
        } else {
            Err(frozen_at)
        },
        Duration::ZERO,
    )?;
    let start = Instant::now();
    bed.crash(component).await.map_err(|e| e.to_string())?;
    t.row(
        &format!("kill -9 {component} (and its children)"),
        1,
        Ok(format!("pid gone; {:?} restartable", component)),
        start.elapsed(),
    );
    if call == Call::Publish {
        Faults::clear(&root).map_err(|e| e.to_string())?;
    }

    // What the CO saw: the call in flight, and one call while the component is down.
    let start = Instant::now();
    let flight = tokio::time::timeout(Duration::from_secs(60), in_flight).await;
    let mut seen = Codes::default();
    let outcome = match flight {
        Err(_) => Err("the call did not return within 60 s of the kill".to_string()),
        Ok(Err(e)) => Err(format!("the call's task failed: {e}")),
        Ok(Ok(Ok(_))) => Err("the call succeeded: the kill did not land inside it".to_string()),
        Ok(Ok(Err(s))) => {
            seen.record::<()>(&Err(s.clone()));
            if seen.unacceptable.is_empty() {
                Ok(code_line(&s))
            } else {
                Err(code_line(&s))
            }
        }
    };
    // Recorded, not fatal: what follows (restart, retry, convergence) is still worth seeing.
    let _ = check(
        t,
        "the call in flight fails retryably",
        outcome,
        start.elapsed(),
    );
    let start = Instant::now();
    let down = target.clone().run(Duration::from_secs(5)).await;
    let mut down_codes = Codes::default();
    down_codes.record(&down);
    let outcome = match &down {
        Ok(_) => Err(format!("succeeded while {component} was down")),
        Err(s) if down_codes.unacceptable.is_empty() => Ok(code_line(s)),
        Err(s) => Err(code_line(s)),
    };
    let _ = check(
        t,
        &format!("{} while {component} is down", call.name()),
        outcome,
        start.elapsed(),
    );

    let start = Instant::now();
    bed.restart(component).await.map_err(|e| e.to_string())?;
    t.row(
        &format!("restart {component}"),
        1,
        Ok(String::new()),
        start.elapsed(),
    );

    let start = Instant::now();
    let (done, codes) = retry(60, Duration::from_millis(500), || target.clone().run(CALL)).await;
    let outcome = match (&done, codes.unacceptable.is_empty()) {
        (Some(_), true) => Ok(codes.to_string()),
        (_, false) => Err(format!("{codes}; not retryable: {:?}", codes.unacceptable)),
        (None, true) => Err(format!("never succeeded: {codes}")),
    };
    t.row(
        &format!("retry {} until it succeeds", call.name()),
        codes.total(),
        outcome.clone(),
        start.elapsed(),
    );
    outcome.map_err(|e| format!("retry {}: {e}", call.name()))?;
    if let Some(Done::Created(v)) = done {
        if v.volume_id != name || v.capacity_bytes < CRASH_SIZE {
            return check(
                t,
                "the created volume",
                Err(format!("{} with {} bytes", v.volume_id, v.capacity_bytes)),
                Duration::ZERO,
            );
        }
        target.vol = Some(v);
    }

    // Convergence: one disk, and for the later calls one attachment / one mount, one loop.
    let start = Instant::now();
    let slots = disk_slots(&root).map_err(|e| e.to_string())?;
    let ours = slots.iter().filter(|s| **s == name).count();
    let mut problems = Vec::new();
    if ours != 1 || slots.len() != 1 {
        problems.push(format!(
            "disks on the appliance: {slots:?} (want exactly {name})"
        ));
    }
    let mut detail = format!("1 disk {name}");
    match call {
        Call::Create => {}
        Call::Publish => {
            let addr = bed.metrics(CONTROLLER).map_err(|e| e.to_string())?;
            match metric(addr, CONNECTIONS, &[]).await {
                Ok(Some(1.0)) => detail.push_str(&format!("; {CONNECTIONS} 1")),
                other => problems.push(format!("{CONNECTIONS}: {other:?}, want 1")),
            }
        }
        Call::Stage => {
            let mounts = mounts_at(&staging);
            let loops = loops_of(&root, &name);
            if mounts != 1 {
                problems.push(format!("{mounts} mounts at the staging path, want 1"));
            }
            if loops.len() != 1 {
                problems.push(format!("loop devices for the volume: {loops:?}, want 1"));
            }
            detail.push_str(&format!("; {mounts} mount; {} loop device", loops.len()));
        }
    }
    check(
        t,
        "converged: no duplicate, nothing stacked",
        if problems.is_empty() {
            Ok(detail)
        } else {
            Err(problems.join("; "))
        },
        start.elapsed(),
    )?;

    // Teardown through CSI, retried like a CO would.
    let vol = target.vol.clone().ok_or("no volume after the retry")?;
    let id = vol.volume_id.clone();
    if call == Call::Stage {
        let start = Instant::now();
        let (r, codes) = retry(20, Duration::from_millis(500), || {
            unstage(&csi, &id, &staging, CALL)
        })
        .await;
        check(
            t,
            "NodeUnstageVolume",
            match r {
                Some(()) if mounts_at(&staging) == 0 && loops_of(&root, &id).is_empty() => {
                    Ok(codes.to_string())
                }
                Some(()) => Err(format!(
                    "unstaged but {} mounts, loops {:?}",
                    mounts_at(&staging),
                    loops_of(&root, &id)
                )),
                None => Err(codes.to_string()),
            },
            start.elapsed(),
        )?;
    }
    if call != Call::Create {
        step(
            t,
            "ControllerUnpublishVolume",
            unpublish(&csi, &id, NODE, CALL),
        )
        .await?;
    }
    step(t, "DeleteVolume", delete(&csi, &id, CALL)).await?;
    let left = disk_slots(&root).map_err(|e| e.to_string())?;
    check(
        t,
        "no disk left on the appliance",
        if left.is_empty() {
            Ok("0 disks".into())
        } else {
            Err(format!("{left:?}"))
        },
        Duration::ZERO,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_gateway_inside_create() {
    crash_inside(GATEWAY, Call::Create).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_controller_frontend_inside_create() {
    crash_inside(CONTROLLER, Call::Create).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_appliance_inside_create() {
    crash_inside(SIM, Call::Create).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_controller_frontend_inside_publish() {
    crash_inside(CONTROLLER, Call::Publish).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_helper_inside_stage() {
    crash_inside(HELPER, Call::Stage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_node_frontend_inside_stage() {
    crash_inside(NODE_FRONTEND, Call::Stage).await;
}

// ---------------------------------------------------------------------------------------------
// 3. The appliance restarted under a staged volume
// ---------------------------------------------------------------------------------------------

const PAYLOAD: &[u8] = b"written before the appliance restarted\n";

async fn wait_ready(
    addr: std::net::SocketAddr,
    want_ok: bool,
    within: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if (readyz(addr).await == 200) == want_ok {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appliance_restart_under_a_staged_volume_and_the_gateway_reconnects() {
    require_root();
    let mut t = Table::new("rds-sim killed and restarted under a staged, published volume");
    let start = Instant::now();
    let mut bed = Bed::start("sim-restart", true, &[])
        .await
        .expect("the stack starts");
    t.row("start the stack", 1, Ok(String::new()), start.elapsed());
    let body = appliance_restart_body(&mut bed, &mut t).await;
    finish(bed, t, body).await;
}

async fn appliance_restart_body(bed: &mut Bed, t: &mut Table) -> Result<(), String> {
    let csi = bed.csi.clone();
    let root = bed.ep.sim_root.clone();
    let cap = mount_capability("ext4", Mode::SingleNodeWriter);
    let staging = staging_path(&bed.ep.kubelet_dir, "sim-restart").map_err(|e| e.to_string())?;
    let target = pod_path(&bed.ep.kubelet_dir, "sim-restart", false).map_err(|e| e.to_string())?;
    let gw = bed.metrics(GATEWAY).map_err(|e| e.to_string())?;

    let vol = step(
        t,
        "CreateVolume 256 MiB ext4",
        create(&csi, &new_volume_name(), 256 * MIB, &cap, CALL),
    )
    .await?;
    let id = vol.volume_id.clone();
    let ctx = step(
        t,
        "ControllerPublishVolume",
        publish(&csi, &vol, NODE, &cap, CALL),
    )
    .await?;
    step(
        t,
        "NodeStageVolume",
        stage(&csi, &vol, &ctx, &staging, &cap, CALL),
    )
    .await?;
    step(
        t,
        "NodePublishVolume (pod path)",
        node_publish(&csi, &vol, &ctx, &staging, &target, &cap, CALL),
    )
    .await?;
    let file = target.join("before.txt");
    let start = Instant::now();
    let wrote = std::fs::write(&file, PAYLOAD)
        .and_then(|()| std::fs::File::open(&file)?.sync_all())
        .map(|()| format!("{} bytes to {}", PAYLOAD.len(), file.display()))
        .map_err(|e| e.to_string());
    check(t, "write a file in the pod path", wrote, start.elapsed())?;
    let gateway_pid = bed.pid(GATEWAY);
    let start = Instant::now();
    let ready = wait_ready(gw, true, Duration::from_secs(20)).await;
    check(
        t,
        "gateway /readyz 200 before",
        ready.map(ms).ok_or_else(|| "not ready".to_string()),
        start.elapsed(),
    )?;

    let start = Instant::now();
    bed.crash(SIM).await.map_err(|e| e.to_string())?;
    t.row("kill -9 rds-sim", 1, Ok(String::new()), start.elapsed());
    let start = Instant::now();
    let noticed = wait_ready(gw, false, Duration::from_secs(30)).await;
    check(
        t,
        "gateway /readyz leaves 200 (it noticed)",
        noticed
            .map(|d| format!("after {}", ms(d)))
            .ok_or_else(|| "still 200 after 30 s without an appliance".to_string()),
        start.elapsed(),
    )?;
    let start = Instant::now();
    let down = create(
        &csi,
        &new_volume_name(),
        64 * MIB,
        &cap,
        Duration::from_secs(10),
    )
    .await;
    let mut codes = Codes::default();
    codes.record(&down);
    check(
        t,
        "CreateVolume while the appliance is down",
        match &down {
            Ok(v) => Err(format!("created {} without an appliance", v.volume_id)),
            Err(s) if codes.unacceptable.is_empty() => Ok(code_line(s)),
            Err(s) => Err(code_line(s)),
        },
        start.elapsed(),
    )?;

    let start = Instant::now();
    bed.restart(SIM).await.map_err(|e| e.to_string())?;
    t.row("restart rds-sim", 1, Ok(String::new()), start.elapsed());
    let start = Instant::now();
    let back = wait_ready(gw, true, Duration::from_secs(60)).await;
    check(
        t,
        "gateway /readyz 200 again by itself",
        back.map(|d| format!("after {}", ms(d)))
            .ok_or_else(|| "not ready 60 s after the appliance came back".to_string()),
        start.elapsed(),
    )?;
    let start = Instant::now();
    let read = std::fs::read(&file)
        .map_err(|e| e.to_string())
        .and_then(|b| {
            if b == PAYLOAD {
                let again = target.join("after.txt");
                std::fs::write(&again, PAYLOAD)
                    .and_then(|()| std::fs::read(&again))
                    .map_err(|e| e.to_string())
                    .and_then(|b2| {
                        if b2 == PAYLOAD {
                            Ok("the file reads back; a new one writes and reads".to_string())
                        } else {
                            Err("the new file reads back different bytes".to_string())
                        }
                    })
            } else {
                Err("different bytes".to_string())
            }
        });
    check(
        t,
        "the staged volume's data is readable",
        read,
        start.elapsed(),
    )?;
    let fresh = step(
        t,
        "a new CreateVolume (first attempt)",
        create(&csi, &new_volume_name(), 64 * MIB, &cap, CALL),
    )
    .await?;
    check(
        t,
        "the gateway was not restarted",
        if bed.pid(GATEWAY) == gateway_pid && gateway_pid.is_some() {
            Ok(format!("pid {gateway_pid:?}"))
        } else {
            Err(format!("pid {gateway_pid:?} -> {:?}", bed.pid(GATEWAY)))
        },
        Duration::ZERO,
    )?;

    step(
        t,
        "NodeUnpublishVolume",
        node_unpublish(&csi, &id, &target, CALL),
    )
    .await?;
    step(t, "NodeUnstageVolume", unstage(&csi, &id, &staging, CALL)).await?;
    step(
        t,
        "ControllerUnpublishVolume",
        unpublish(&csi, &id, NODE, CALL),
    )
    .await?;
    step(t, "DeleteVolume (staged one)", delete(&csi, &id, CALL)).await?;
    step(
        t,
        "DeleteVolume (new one)",
        delete(&csi, &fresh.volume_id, CALL),
    )
    .await?;
    let left = disk_slots(&root).map_err(|e| e.to_string())?;
    check(
        t,
        "no disk left on the appliance",
        if left.is_empty() {
            Ok("0 disks".into())
        } else {
            Err(format!("{left:?}"))
        },
        Duration::ZERO,
    )
}

// ---------------------------------------------------------------------------------------------
// 4. The controller frontend restarted with volumes attached
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_restart_keeps_the_connections_gauge_right() {
    require_root();
    let mut t = Table::new("csi-frontend-controller killed and restarted with 3 volumes attached");
    let start = Instant::now();
    let mut bed = Bed::start("ctrl-restart", true, &[])
        .await
        .expect("the stack starts");
    t.row("start the stack", 1, Ok(String::new()), start.elapsed());
    let body = controller_restart_body(&mut bed, &mut t).await;
    finish(bed, t, body).await;
}

async fn gauge(t: &mut Table, bed: &Bed, what: &str, want: f64) -> Result<(), String> {
    let addr = bed.metrics(CONTROLLER).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let got = metric(addr, CONNECTIONS, &[]).await;
    check(
        t,
        what,
        match got {
            Ok(Some(v)) if v == want => Ok(format!("{CONNECTIONS} {v}")),
            other => Err(format!("{other:?}, want {want}")),
        },
        start.elapsed(),
    )
}

async fn controller_restart_body(bed: &mut Bed, t: &mut Table) -> Result<(), String> {
    let csi = bed.csi.clone();
    let fs = mount_capability("ext4", Mode::SingleNodeWriter);
    let shared = block_capability(Mode::MultiNodeMultiWriter);
    gauge(t, bed, "gauge before any publish", 0.0).await?;
    let a = step(
        t,
        "CreateVolume a (ext4)",
        create(&csi, &new_volume_name(), 64 * MIB, &fs, CALL),
    )
    .await?;
    let b = step(
        t,
        "CreateVolume b (ext4)",
        create(&csi, &new_volume_name(), 64 * MIB, &fs, CALL),
    )
    .await?;
    let c = step(
        t,
        "CreateVolume c (block, MULTI_NODE_MULTI_WRITER)",
        create(&csi, &new_volume_name(), 64 * MIB, &shared, CALL),
    )
    .await?;
    step(
        t,
        "publish a to testbed-node",
        publish(&csi, &a, NODE, &fs, CALL),
    )
    .await?;
    step(
        t,
        "publish b to testbed-node",
        publish(&csi, &b, NODE, &fs, CALL),
    )
    .await?;
    step(
        t,
        "publish c to testbed-node",
        publish(&csi, &c, NODE, &shared, CALL),
    )
    .await?;
    step(
        t,
        "publish c to testbed-node-b (live migration)",
        publish(&csi, &c, "testbed-node-b", &shared, CALL),
    )
    .await?;
    gauge(t, bed, "gauge with 3 volumes, one on two nodes", 3.0).await?;

    let start = Instant::now();
    bed.crash(CONTROLLER).await.map_err(|e| e.to_string())?;
    t.row(
        "kill -9 csi-frontend-controller",
        1,
        Ok(String::new()),
        start.elapsed(),
    );
    let start = Instant::now();
    bed.restart(CONTROLLER).await.map_err(|e| e.to_string())?;
    // The first scrape that gets an answer at all: the gauge must be right already.
    let addr = bed.metrics(CONTROLLER).map_err(|e| e.to_string())?;
    let mut first = None;
    let mut tries = 0;
    while start.elapsed() < Duration::from_secs(30) {
        tries += 1;
        match metric(addr, CONNECTIONS, &[]).await {
            Ok(v) => {
                first = Some(v);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    let outcome = match first {
        Some(Some(3.0)) => Ok(format!("{CONNECTIONS} 3 on the first scrape")),
        Some(other) => Err(format!("first scrape: {other:?}, want 3")),
        None => Err("no scrape answered within 30 s".into()),
    };
    t.row(
        "restart; first scrape after it serves",
        tries,
        outcome.clone(),
        start.elapsed(),
    );
    outcome?;

    // The reloaded table also decides: a third node for the migrating volume is refused.
    let start = Instant::now();
    let third = publish(&csi, &c, "testbed-node-c", &shared, CALL).await;
    check(
        t,
        "publish c to a third node after the restart",
        match &third {
            Err(s) if s.code() == Code::FailedPrecondition => Ok(code_line(s)),
            Err(s) => Err(code_line(s)),
            Ok(_) => Err("accepted: the restarted controller forgot the migration".into()),
        },
        start.elapsed(),
    )?;
    step(
        t,
        "unpublish c from testbed-node-b",
        unpublish(&csi, &c.volume_id, "testbed-node-b", CALL),
    )
    .await?;
    gauge(t, bed, "gauge: c still on one node", 3.0).await?;
    for (v, what) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        step(
            t,
            &format!("unpublish {what} from testbed-node"),
            unpublish(&csi, &v.volume_id, NODE, CALL),
        )
        .await?;
    }
    gauge(t, bed, "gauge after every unpublish", 0.0).await?;
    for (v, what) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        step(
            t,
            &format!("DeleteVolume {what}"),
            delete(&csi, &v.volume_id, CALL),
        )
        .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 5. 32 volumes in parallel
// ---------------------------------------------------------------------------------------------

const PARALLEL_VOLUMES: usize = 32;
/// A volume and its publish context.
type Staged = (Volume, HashMap<String, String>);
const PARALLEL_TASKS: usize = 16;

/// Runs `work` for every index with at most `PARALLEL_TASKS` at once; returns the failures.
async fn in_parallel<F, Fut>(n: usize, work: F) -> Vec<String>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let gate = Arc::new(tokio::sync::Semaphore::new(PARALLEL_TASKS));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let fut = work(i);
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            fut.await.map_err(|e| format!("#{i}: {e}"))
        });
    }
    let mut failures = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(e.to_string()),
        }
    }
    failures.sort();
    failures
}

fn phase(t: &mut Table, what: &str, failures: Vec<String>, took: Duration) -> Result<(), String> {
    let outcome = if failures.is_empty() {
        Ok(format!("{PARALLEL_VOLUMES} ok, {PARALLEL_TASKS} at a time"))
    } else {
        Err(format!("{} failed: {failures:?}", failures.len()))
    };
    let failed = outcome.as_ref().err().cloned();
    t.row(what, PARALLEL_VOLUMES as u32, outcome, took);
    match failed {
        Some(e) => Err(format!("{what}: {e}")),
        None => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_volumes_created_staged_and_deleted_in_parallel() {
    require_root();
    let mut t = Table::new("32 volumes (64 MiB ext4) created, staged and deleted in parallel");
    let start = Instant::now();
    let mut bed = Bed::start("parallel", true, &[])
        .await
        .expect("the stack starts");
    t.row("start the stack", 1, Ok(String::new()), start.elapsed());
    let body = parallel_body(&mut bed, &mut t).await;
    finish(bed, t, body).await;
}

async fn parallel_body(bed: &mut Bed, t: &mut Table) -> Result<(), String> {
    let csi = bed.csi.clone();
    let root = bed.ep.sim_root.clone();
    let kubelet = bed.ep.kubelet_dir.clone();
    let cap = mount_capability("ext4", Mode::SingleNodeWriter);
    let names: Vec<String> = (0..PARALLEL_VOLUMES).map(|_| new_volume_name()).collect();
    let stagings: Vec<PathBuf> = (0..PARALLEL_VOLUMES)
        .map(|i| staging_path(&kubelet, &format!("par-{i:02}")))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let volumes: Arc<std::sync::Mutex<Vec<Option<Staged>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; PARALLEL_VOLUMES]));

    let start = Instant::now();
    let failures = in_parallel(PARALLEL_VOLUMES, |i| {
        let (csi, cap, name, vols) = (csi.clone(), cap.clone(), names[i].clone(), volumes.clone());
        async move {
            let v = create(&csi, &name, 64 * MIB, &cap, Duration::from_secs(60))
                .await
                .map_err(|s| format!("CreateVolume: {}", code_line(&s)))?;
            if let Ok(mut l) = vols.lock() {
                l[i] = Some((v, HashMap::new()));
            }
            Ok(())
        }
    })
    .await;
    phase(t, "CreateVolume x32", failures, start.elapsed())?;
    let slots = disk_slots(&root).map_err(|e| e.to_string())?;
    check(
        t,
        "32 distinct disks on the appliance",
        if slots.len() == PARALLEL_VOLUMES && names.iter().all(|n| slots.contains(n)) {
            Ok(format!("{} disks", slots.len()))
        } else {
            Err(format!("{} disks: {slots:?}", slots.len()))
        },
        Duration::ZERO,
    )?;

    let start = Instant::now();
    let failures = in_parallel(PARALLEL_VOLUMES, |i| {
        let (csi, cap, staging, vols) = (
            csi.clone(),
            cap.clone(),
            stagings[i].clone(),
            volumes.clone(),
        );
        async move {
            let v = vols
                .lock()
                .ok()
                .and_then(|l| l[i].clone())
                .ok_or("no volume")?
                .0;
            let ctx = publish(&csi, &v, NODE, &cap, Duration::from_secs(60))
                .await
                .map_err(|s| format!("ControllerPublishVolume: {}", code_line(&s)))?;
            stage(&csi, &v, &ctx, &staging, &cap, Duration::from_secs(120))
                .await
                .map_err(|s| format!("NodeStageVolume: {}", code_line(&s)))?;
            if let Ok(mut l) = vols.lock() {
                l[i] = Some((v, ctx));
            }
            Ok(())
        }
    })
    .await;
    phase(
        t,
        "ControllerPublish + NodeStage x32",
        failures,
        start.elapsed(),
    )?;
    let mounts = distinct_mounts_under(&kubelet);
    let loops = leaks::loops_under(&root);
    let stacked: Vec<&PathBuf> = stagings.iter().filter(|s| mounts_at(s) != 1).collect();
    check(
        t,
        "32 staging mounts, 32 loop devices, none stacked",
        if mounts.len() == PARALLEL_VOLUMES && loops.len() == PARALLEL_VOLUMES && stacked.is_empty()
        {
            Ok(format!("{} mounts, {} loops", mounts.len(), loops.len()))
        } else {
            Err(format!(
                "{} mounts, {} loops, not exactly one mount at {stacked:?}",
                mounts.len(),
                loops.len()
            ))
        },
        Duration::ZERO,
    )?;

    let start = Instant::now();
    let failures = in_parallel(PARALLEL_VOLUMES, |i| {
        let (csi, staging, vols) = (csi.clone(), stagings[i].clone(), volumes.clone());
        async move {
            let (v, _) = vols
                .lock()
                .ok()
                .and_then(|l| l[i].clone())
                .ok_or("no volume")?;
            let id = v.volume_id;
            unstage(&csi, &id, &staging, Duration::from_secs(120))
                .await
                .map_err(|s| format!("NodeUnstageVolume: {}", code_line(&s)))?;
            unpublish(&csi, &id, NODE, Duration::from_secs(60))
                .await
                .map_err(|s| format!("ControllerUnpublishVolume: {}", code_line(&s)))?;
            delete(&csi, &id, Duration::from_secs(60))
                .await
                .map_err(|s| format!("DeleteVolume: {}", code_line(&s)))
        }
    })
    .await;
    phase(
        t,
        "NodeUnstage + ControllerUnpublish + DeleteVolume x32",
        failures,
        start.elapsed(),
    )?;
    let left = disk_slots(&root).map_err(|e| e.to_string())?;
    check(
        t,
        "no disk left on the appliance",
        if left.is_empty() {
            Ok("0 disks".into())
        } else {
            Err(format!("{} left: {left:?}", left.len()))
        },
        Duration::ZERO,
    )
}
