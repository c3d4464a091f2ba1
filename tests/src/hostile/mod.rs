//! The hostile-input sweep (issue #9, item 3): CSI requests whose names, ids, node ids, paths,
//! StorageClass parameters, contexts, fs types, mount flags, secrets, page tokens and capacity
//! ranges are built to escape — RouterOS syntax, `[find ...]` and `:put` fragments, line breaks,
//! NUL, traversal, symbolic links, look-alike ids, absurd sizes, 100 KiB strings — sent through
//! the testbed's controller and node sockets. Every one must be answered with the code written
//! for it (INVALID_ARGUMENT for what is malformed, NOT_FOUND for a well-formed id that names
//! nothing, OUT_OF_RANGE for a size beyond the limits, ...), and none may reach the simulated
//! appliance's command log, the mount table or a loop device.
//!
//! [`run`] starts one stack, makes the [`fixture::Base`] volumes the cases aim at, sends every
//! case from [`cases::all`] one after another and looks after each one, then deletes what
//! accepted cases created, tears the fixture down and stops the stack. The `hostile-sweep`
//! binary and `tests/tests/hostile_sweep.rs` call it.

pub mod cases;
pub mod controls;
pub mod expect;
pub mod fixture;
pub mod observe;
pub mod paths;
pub mod payloads;
pub mod report;
pub mod requests;

use std::time::{Duration, Instant};

use tonic::Code;

use crate::e2e_support::{Bed, ROOT_REQUIRED, delete, delete_snapshot, disk_slots};
use crate::sim::cmdlog;
use cases::Case;
use expect::{Check, snapshot_id_ok, volume_id_ok};
use fixture::Base;
use observe::LogTail;
use paths::Roots;
use report::{CaseResult, SweepReport};
use requests::{Answer, send};

/// Deadline of one case's call.
const CALL: Duration = Duration::from_secs(15);

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct SweepConfig {
    /// Only the cases whose field contains one of these (all when empty).
    pub fields: Vec<String>,
}

/// Why the sweep could not run at all (a failed case is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{ROOT_REQUIRED} (the sweep stages a real volume to aim the node cases at)")]
    NotRoot,
    #[error("the stack did not start: {0}")]
    Stack(String),
    #[error("the fixture volumes could not be made, so no case can be judged: {0}")]
    Fixture(String),
    #[error("no case matches {0:?}")]
    NoCase(Vec<String>),
}

/// Runs the sweep and returns its report.
pub async fn run(cfg: &SweepConfig) -> Result<SweepReport, SweepError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(SweepError::NotRoot);
    }
    let started = Instant::now();
    let mut bed = Bed::start_logging("hostile-sweep", true, &[], "error")
        .await
        .map_err(|e| SweepError::Stack(e.to_string()))?;
    let base = Base::prepare(&bed).await.map_err(SweepError::Fixture)?;
    let roots = Roots {
        kubelet: base.kubelet.clone(),
        outside: bed.dir.join("outside"),
    };
    let cases: Vec<Case> = cases::all(&base, &roots)
        .into_iter()
        .filter(|c| {
            cfg.fields.is_empty() || cfg.fields.iter().any(|f| c.field.contains(f.as_str()))
        })
        .collect();
    if cases.is_empty() {
        return Err(SweepError::NoCase(cfg.fields.clone()));
    }
    let mut report = SweepReport::default();
    for c in &cases {
        let outside = c.expect.outside_spec(c.req.rpc());
        if !outside.is_empty() {
            report.bad_expectations.push(format!(
                "case {} {}: {outside:?} for {}",
                c.n,
                c.field,
                c.req.rpc().name()
            ));
        }
    }
    let fixture_mounts = base.mounts();
    let fixture_loops = crate::leaks::loops_under(&bed.dir);
    let mut tail = LogTail::at_end(&bed.ep.sim_root);
    report
        .problems
        .extend(controls::run(&bed, &base, &mut tail, &fixture_loops).await);
    let mut volumes = Vec::new();
    let mut snapshots = Vec::new();
    for c in cases {
        let r = run_case(&bed, c, &mut tail, &fixture_mounts, &fixture_loops).await;
        match r.1 {
            Some(Answer::Volume(id)) => volumes.push(id),
            Some(Answer::Snapshot(id)) => snapshots.push(id),
            _ => {}
        }
        report.results.push(r.0);
    }
    report.created = volumes.len() + snapshots.len();
    report
        .problems
        .extend(clean_up(&bed, &base, &volumes, &snapshots).await);
    // Anything of this run that reached the appliance late, or outside any one case's look.
    if let Ok(log) = cmdlog::read(&bed.ep.sim_root) {
        for l in log
            .iter()
            .filter(|l| payloads::has_any_marker(&l.command) && !controls::is_control(&l.command))
        {
            report
                .problems
                .push(format!("a marker in the command log: {}", l.command));
        }
    }
    match bed.stop().await {
        Ok(left) => report.problems.extend(
            left.into_iter()
                .map(|l| format!("left after the stack stopped: {l}")),
        ),
        Err(e) => report
            .problems
            .push(format!("the stack did not stop cleanly: {e}")),
    }
    report.took = started.elapsed();
    Ok(report)
}

/// Sends one case and looks for what it reached.
async fn run_case(
    bed: &Bed,
    c: Case,
    tail: &mut LogTail,
    fixture_mounts: &[String],
    fixture_loops: &[String],
) -> (CaseResult, Option<Answer>) {
    let rpc = c.req.rpc();
    let mut wrong = None;
    for s in &c.setup {
        if let Err(e) = s.apply() {
            wrong = Some(format!("the case could not be prepared: {e}"));
        }
    }
    let start = Instant::now();
    let r = send(&bed.csi, c.req, CALL).await;
    let took = start.elapsed();
    let code = r.as_ref().map_or_else(tonic::Status::code, |_| Code::Ok);
    if wrong.is_none() && !c.expect.codes.contains(&code) {
        let msg = r
            .as_ref()
            .err()
            .map(|s| s.message().chars().take(200).collect::<String>())
            .unwrap_or_default();
        wrong = Some(format!(
            "expected {:?} ({}), got {code:?} {msg}",
            c.expect.codes, c.expect.why
        ));
    }
    let answer = r.ok();
    if wrong.is_none()
        && let Some(a) = &answer
    {
        wrong = check(c.expect.check, a, &c.needles);
    }
    let lines = tail.new_lines();
    let log_hits: Vec<String> = observe::reached(&lines, &c.needles)
        .into_iter()
        .cloned()
        .collect();
    let mut mount_hits = observe::mounts_with(&c.needles);
    mount_hits.extend(observe::mount_changes(&bed.dir, fixture_mounts));
    let loop_hits = observe::new_loops(&bed.dir, fixture_loops, &c.needles);
    (
        CaseResult {
            n: c.n,
            rpc,
            field: c.field,
            payload: c.payload,
            code,
            expected: c.expect.codes,
            wrong,
            log_hits,
            mount_hits,
            loop_hits,
            appliance_commands: lines.len(),
            took,
        },
        answer,
    )
}

/// The check of a successful answer; why it failed, if it did.
fn check(check: Check, a: &Answer, needles: &[String]) -> Option<String> {
    let holds_needle = |id: &str| needles.iter().any(|n| id.contains(n.as_str()));
    match (check, a) {
        (Check::Nothing, _) => None,
        (Check::CleanId, Answer::Volume(id)) if volume_id_ok(id) && !holds_needle(id) => None,
        (Check::CleanId, Answer::Snapshot(id)) if snapshot_id_ok(id) && !holds_needle(id) => None,
        (Check::CleanId, other) => Some(format!("the returned id is not a clean id: {other:?}")),
        (Check::NotConfirmed, Answer::Validated(false)) => None,
        (Check::NotConfirmed, other) => Some(format!("confirmed anyway: {other:?}")),
        (Check::NoEntries, Answer::Entries(0)) => None,
        (Check::NoEntries, other) => Some(format!("listed something: {other:?}")),
        (Check::NoCapacity, Answer::Capacity(0)) => None,
        (Check::NoCapacity, other) => Some(format!("reported capacity: {other:?}")),
    }
}

/// Deletes what accepted cases made and the fixture; returns what failed or remains.
async fn clean_up(bed: &Bed, base: &Base, volumes: &[String], snapshots: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for id in snapshots {
        if let Err(s) = delete_snapshot(&bed.csi, id, CALL).await {
            problems.push(format!(
                "DeleteSnapshot {id}: {:?} {}",
                s.code(),
                s.message()
            ));
        }
    }
    for id in volumes {
        if let Err(s) = delete(&bed.csi, id, CALL).await {
            problems.push(format!("DeleteVolume {id}: {:?} {}", s.code(), s.message()));
        }
    }
    problems.extend(base.teardown(bed).await);
    match disk_slots(&bed.ep.sim_root) {
        Ok(left) if left.is_empty() => {}
        Ok(left) => problems.push(format!("disks left on the appliance: {left:?}")),
        Err(e) => problems.push(e.to_string()),
    }
    for img in crate::leaks::images_under(&bed.ep.sim_root) {
        problems.push(format!("backing file left on the appliance: {img}"));
    }
    problems
}
