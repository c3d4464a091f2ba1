//! The fault matrix (issue #9, item 2): for each fault, `N` trials on the real stack (rds-sim,
//! rds-gateway, nvme-helper on the loop fabric, csi-frontend in controller and node mode as
//! separate processes), each followed by a bounded retry as a CO would make and a check of the
//! invariants: nothing leaked, nothing lost, no duplicate, every answer a code the CSI spec
//! allows for its RPC, and the retry converged.
//!
//! [`run`] starts one stack for the whole run, measures each lifecycle step on a clean run
//! (the kill points are fractions of those durations), then runs the trials one after another;
//! after each trial whatever it left is cleaned up by force so that the next starts from the
//! same baseline. The `fault-matrix` binary and `tests/tests/fault_matrix.rs` call it.

pub mod appliance_faults;
pub mod catalogue;
pub mod invariants;
pub mod kill;
pub mod ledger;
pub mod outages;
pub mod report;
pub mod rng;
pub mod spec_codes;
pub mod steps;
pub mod trial;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use catalogue::Fault;
use kill::Timings;
use report::{Report, Row};
use rng::SplitMix;
use steps::Step;
use trial::{Trial, TrialOutcome};

use crate::e2e_support::{Bed, ROOT_REQUIRED};

/// Appliance latency while the matrix runs: it widens the window in which a kill lands while
/// the appliance works on a create, a delete or a copy.
pub const SIM_LATENCY: [&str; 3] = ["disk-add=100ms", "disk-remove=100ms", "disk-copy=100ms"];

/// What to run.
#[derive(Debug, Clone)]
pub struct MatrixConfig {
    /// Trials per fault.
    pub trials: u32,
    /// Only the faults whose name contains one of these (all when empty).
    pub faults: Vec<String>,
    /// Seed of the kill points.
    pub seed: u64,
}

/// Why the matrix could not run at all (a failed trial is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum MatrixError {
    #[error("{ROOT_REQUIRED} (the fault matrix attaches loop devices and mounts volumes)")]
    NotRoot,
    #[error("no fault matches {0:?}; see --list")]
    NoFault(Vec<String>),
    #[error("the stack did not start: {0}")]
    Stack(String),
    #[error("the clean lifecycle before the trials failed, so no fault can be judged: {0}")]
    WarmUp(String),
    #[error("the invariant check is blind, so a clean table would prove nothing: {0}")]
    SelfTest(String),
    #[error("--trials must be at least 1")]
    NoTrials,
}

/// Runs the matrix and returns its report.
pub async fn run(cfg: &MatrixConfig) -> Result<Report, MatrixError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(MatrixError::NotRoot);
    }
    if cfg.trials == 0 {
        return Err(MatrixError::NoTrials);
    }
    let faults = Fault::matching(&cfg.faults);
    if faults.is_empty() {
        return Err(MatrixError::NoFault(cfg.faults.clone()));
    }
    let started = Instant::now();
    let mut bed = Bed::start_logging("fault-matrix", true, &SIM_LATENCY, "error")
        .await
        .map_err(|e| MatrixError::Stack(e.to_string()))?;
    let timings = warm_up(&mut bed).await?;
    invariants::self_test(&bed)
        .await
        .map_err(MatrixError::SelfTest)?;
    let rng = SplitMix::new(cfg.seed);
    let mut report = Report {
        seed: cfg.seed,
        trials_per_fault: cfg.trials,
        ..Report::default()
    };
    for (n, fault) in faults.iter().enumerate() {
        let row_start = Instant::now();
        let mut row = Row {
            fault: fault.name(),
            ..Row::default()
        };
        let mut points = rng.fork(n as u64);
        for k in 0..cfg.trials {
            let fraction = (f64::from(k) + points.unit()) / f64::from(cfg.trials);
            let outcome = trial(&mut bed, fault, k, fraction, &timings).await;
            if outcome.failed() {
                eprintln!("fault matrix: {} trial {k} FAILED", row.fault);
            }
            row.trials.push(outcome);
        }
        row.took = row_start.elapsed();
        eprintln!(
            "fault matrix: {} done in {:.1} s",
            row.fault,
            row.took.as_secs_f64()
        );
        report.rows.push(row);
    }
    report.after_stop = match bed.stop().await {
        Ok(mut left) => {
            left.extend(
                crate::leaks::sockets_under(&bed.dir)
                    .into_iter()
                    .map(|s| format!("socket {s}")),
            );
            left
        }
        Err(e) => vec![format!("the stack did not stop cleanly: {e}")],
    };
    report.took = started.elapsed();
    Ok(report)
}

/// One trial of `fault`; `fraction` places a kill inside its call.
async fn trial(
    bed: &mut Bed,
    fault: &Fault,
    k: u32,
    fraction: f64,
    timings: &Timings,
) -> TrialOutcome {
    let tag = format!("t{k}-{}", fault.name().replace('@', "-"));
    let mut t = Trial::new(bed, &tag);
    match fault {
        Fault::Drop { call, verb, action } => {
            appliance_faults::dropped(&mut t, *call, *verb, *action).await;
        }
        Fault::Kill { component, step } => {
            let delay = timings.of(*step).mul_f64(fraction);
            kill::run(&mut t, component, *step, delay).await;
        }
        Fault::NoSpace => appliance_faults::no_space(&mut t).await,
        Fault::Hang => appliance_faults::hang(&mut t).await,
        Fault::ApplianceRestart => outages::appliance_restart(&mut t).await,
        Fault::LoopYank => outages::loop_yank(&mut t).await,
    }
    t.finish().await
}

/// A clean lifecycle (twice: the first warms the gateway's sessions and the page cache), timing
/// each step of the second.
async fn warm_up(bed: &mut Bed) -> Result<Timings, MatrixError> {
    let mut timings = HashMap::new();
    for round in 0..2 {
        let mut t = Trial::new(bed, &format!("warm-up-{round}"));
        let i = t.subject().map_err(MatrixError::WarmUp)?;
        for step in Step::LIFECYCLE {
            let start = Instant::now();
            if !t.converge(i, step).await {
                return Err(MatrixError::WarmUp(t.unconverged.join("; ")));
            }
            timings.insert(step, start.elapsed());
        }
        t.check("after the clean lifecycle").await;
        let outcome = t.finish().await;
        if outcome.failed() {
            return Err(MatrixError::WarmUp(format!(
                "wrong codes {:?}, findings {:?}",
                outcome.wrong_codes, outcome.findings
            )));
        }
    }
    eprintln!(
        "fault matrix: step durations on a clean run: {}",
        Step::LIFECYCLE
            .iter()
            .map(|s| format!(
                "{} {:.0} ms",
                s.name(),
                timings
                    .get(s)
                    .copied()
                    .unwrap_or(Duration::ZERO)
                    .as_secs_f64()
                    * 1000.0
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Timings(timings))
}
