//! A `kill -9` trial: the lifecycle of one volume with one component crashed (the process and
//! everything it started) at a seeded point inside one step's call, then restarted, the call
//! retried until it converges, the invariants checked, and the rest of the lifecycle run.
//!
//! The point is a delay into the call: a fraction of the step's duration measured on a clean
//! run. Trial `k` of `n` draws its fraction from `[k/n, (k+1)/n)`, so that `n` trials spread
//! over the call from its first to its last moment.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::steps::{self, Step, invoke, settle};
use super::trial::Trial;

/// How long the call of each step took on a clean run.
#[derive(Debug, Clone, Default)]
pub struct Timings(pub HashMap<Step, Duration>);

impl Timings {
    pub fn of(&self, step: Step) -> Duration {
        self.0
            .get(&step)
            .copied()
            .unwrap_or(Duration::from_millis(50))
    }
}

/// Longest wait for the call in flight to return after the kill.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(60);
/// Deadline of the call made while the component is down.
const WHILE_DOWN: Duration = Duration::from_secs(5);

/// Runs the lifecycle of a new volume, killing `component` `delay` into `step`'s call.
pub async fn run(t: &mut Trial<'_>, component: &'static str, step: Step, delay: Duration) {
    let i = match t.subject() {
        Ok(i) => i,
        Err(e) => {
            t.unconverged.push(e);
            return;
        }
    };
    for s in Step::LIFECYCLE {
        if s != step {
            if !t.converge(i, s).await {
                return;
            }
            continue;
        }
        let csi = t.bed.csi.clone();
        let subject = t.subjects[i].clone();
        let started = Instant::now();
        let call = tokio::spawn(async move { invoke(&csi, s, &subject, steps::CALL).await });
        tokio::time::sleep(delay).await;
        let inside = !call.is_finished();
        t.landed_inside = Some(inside);
        t.notes.push(format!(
            "killed {:.0} ms into {} ({})",
            started.elapsed().as_secs_f64() * 1000.0,
            s.rpc().name(),
            if inside {
                "in flight"
            } else {
                "it had already answered"
            }
        ));
        if let Err(e) = t.bed.crash(component).await {
            t.unconverged.push(format!("kill -9 {component}: {e}"));
            return;
        }
        match tokio::time::timeout(IN_FLIGHT_WAIT, call).await {
            Err(_) => t.unconverged.push(format!(
                "{} did not return within {IN_FLIGHT_WAIT:?} of the kill",
                s.rpc().name()
            )),
            Ok(Err(e)) => t.unconverged.push(format!("the call's task failed: {e}")),
            Ok(Ok(r)) => {
                settle(
                    &mut t.ledger,
                    &mut t.subjects[i],
                    s,
                    "in flight at the kill",
                    r,
                );
            }
        }
        let csi = t.bed.csi.clone();
        let subject = t.subjects[i].clone();
        let down = invoke(&csi, s, &subject, WHILE_DOWN).await;
        settle(
            &mut t.ledger,
            &mut t.subjects[i],
            s,
            &format!("while {component} is down"),
            down,
        );
        if let Err(e) = t.bed.restart(component).await {
            t.unconverged.push(format!("restart {component}: {e}"));
            return;
        }
        if !t.converge(i, s).await {
            return;
        }
        t.check(&format!("after {} converged", s.rpc().name()))
            .await;
    }
    t.check("after the lifecycle").await;
}
