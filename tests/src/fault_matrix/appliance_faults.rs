//! Trials whose fault is injected at the simulated appliance through its fault rules: a dropped
//! connection inside a create, a delete or a snapshot; `not enough space`; a command that hangs
//! past the caller's deadline.

use std::time::{Duration, Instant};

use tonic::Code;

use super::catalogue::DropCall;
use super::spec_codes::Rpc;
use super::steps::{self, Step, adopt, invoke, settle};
use super::trial::Trial;
use crate::e2e_support::create_snapshot;
use crate::sim::{FaultAction, FaultRule, Faults, Verb};

/// Deadline of the calls the hang trial makes.
pub const SHORT_DEADLINE: Duration = Duration::from_secs(2);
/// How much later than its deadline a call may answer (scheduling, a debug build).
const DEADLINE_SLACK: Duration = Duration::from_secs(3);

fn arm(t: &mut Trial<'_>, rules: &[FaultRule]) -> bool {
    match Faults::write(&t.bed.ep.sim_root, rules) {
        Ok(()) => true,
        Err(e) => {
            t.unconverged
                .push(format!("cannot write the fault rules: {e}"));
            false
        }
    }
}

/// Whether the one-shot rules were used up; a rule left means the fault never fired and the
/// trial tested nothing, which fails it.
fn fired(t: &mut Trial<'_>, verb: Verb) -> bool {
    let left = Faults::read(&t.bed.ep.sim_root).unwrap_or_default();
    let _ = Faults::clear(&t.bed.ep.sim_root);
    if left.is_empty() {
        true
    } else {
        t.unconverged.push(format!(
            "the fault on {} never fired: the driver sent no such command",
            verb.as_str()
        ));
        false
    }
}

/// The connection dropped on `verb` inside `call`, before (`Drop`) or after
/// (`FailAfterApply`) the appliance applied the command; then retry, converge, tear down.
pub async fn dropped(t: &mut Trial<'_>, call: DropCall, verb: Verb, action: FaultAction) {
    let Ok(i) = t.subject() else {
        t.unconverged.push("no kubelet paths".into());
        return;
    };
    let rule = [FaultRule::times(verb, action, 1)];
    let csi = t.bed.csi.clone();
    match call {
        DropCall::Create => {
            if !arm(t, &rule) {
                return;
            }
            let subject = t.subjects[i].clone();
            let r = invoke(&csi, Step::Create, &subject, steps::CALL).await;
            settle(
                &mut t.ledger,
                &mut t.subjects[i],
                Step::Create,
                "connection dropped",
                r,
            );
            if !fired(t, verb) || !t.converge(i, Step::Create).await {
                return;
            }
            t.check("after CreateVolume converged").await;
        }
        DropCall::Delete => {
            if !t.converge(i, Step::Create).await || !arm(t, &rule) {
                return;
            }
            let subject = t.subjects[i].clone();
            let r = invoke(&csi, Step::Delete, &subject, steps::CALL).await;
            settle(
                &mut t.ledger,
                &mut t.subjects[i],
                Step::Delete,
                "connection dropped",
                r,
            );
            if !fired(t, verb) || !t.converge(i, Step::Delete).await {
                return;
            }
        }
        DropCall::Snapshot => {
            if !t.converge(i, Step::Create).await || !arm(t, &rule) {
                return;
            }
            let name = format!("snap-of-{}", t.subjects[i].name);
            let source = t.subjects[i].id().to_string();
            let r = create_snapshot(&csi, &name, &source, steps::CALL).await;
            t.ledger
                .record(Rpc::CreateSnapshot, "connection dropped", &r);
            if let Ok(s) = &r {
                t.snapshots.insert(s.snapshot_id.clone());
            }
            if !fired(t, verb) || t.snapshot(i, &name).await.is_none() {
                return;
            }
            t.check("after CreateSnapshot converged").await;
        }
    }
    t.teardown().await;
    t.check("after teardown").await;
}

/// `not enough space` on a create and on a snapshot: each must answer RESOURCE_EXHAUSTED and
/// leave nothing behind; once space is back, both converge.
pub async fn no_space(t: &mut Trial<'_>) {
    let Ok(i) = t.subject() else {
        t.unconverged.push("no kubelet paths".into());
        return;
    };
    let csi = t.bed.csi.clone();
    if !arm(
        t,
        &[FaultRule::times(Verb::DiskAdd, FaultAction::NoSpace, 1)],
    ) {
        return;
    }
    let subject = t.subjects[i].clone();
    let r = invoke(&csi, Step::Create, &subject, steps::CALL).await;
    t.ledger.expect(
        Rpc::CreateVolume,
        "appliance out of space",
        &r,
        Code::ResourceExhausted,
    );
    let created = r.is_ok();
    adopt(&mut t.subjects[i], Step::Create, r);
    if !fired(t, Verb::DiskAdd) {
        return;
    }
    if !created {
        t.check("after the refused CreateVolume").await;
    }
    if !t.converge(i, Step::Create).await {
        return;
    }
    if !arm(
        t,
        &[FaultRule::times(Verb::DiskCopy, FaultAction::NoSpace, 1)],
    ) {
        return;
    }
    let name = format!("snap-of-{}", t.subjects[i].name);
    let source = t.subjects[i].id().to_string();
    let r = create_snapshot(&csi, &name, &source, steps::CALL).await;
    t.ledger.expect(
        Rpc::CreateSnapshot,
        "appliance out of space",
        &r,
        Code::ResourceExhausted,
    );
    if let Ok(s) = &r {
        t.snapshots.insert(s.snapshot_id.clone());
    }
    if !fired(t, Verb::DiskCopy) {
        return;
    }
    t.check("after the refused CreateSnapshot").await;
    if t.snapshot(i, &name).await.is_none() {
        return;
    }
    t.teardown().await;
    t.check("after teardown").await;
}

/// A create and a delete whose appliance command never answers: each must end with
/// DEADLINE_EXCEEDED close to the caller's deadline, and the same call converge once the
/// appliance answers again (the hung command must not hold the gateway up).
pub async fn hang(t: &mut Trial<'_>) {
    let Ok(i) = t.subject() else {
        t.unconverged.push("no kubelet paths".into());
        return;
    };
    let csi = t.bed.csi.clone();
    for step in [Step::Create, Step::Delete] {
        let verb = if step == Step::Create {
            Verb::DiskAdd
        } else {
            Verb::DiskRemove
        };
        if !arm(t, &[FaultRule::always(verb, FaultAction::Hang)]) {
            return;
        }
        let subject = t.subjects[i].clone();
        let start = Instant::now();
        let r = invoke(&csi, step, &subject, SHORT_DEADLINE).await;
        let took = start.elapsed();
        t.ledger.expect(
            step.rpc(),
            &format!("{} hangs", verb.as_str()),
            &r,
            Code::DeadlineExceeded,
        );
        adopt(&mut t.subjects[i], step, r);
        if took > SHORT_DEADLINE + DEADLINE_SLACK {
            t.ledger.wrong(format!(
                "{} with a {SHORT_DEADLINE:?} deadline answered only after {took:?}",
                step.rpc().name()
            ));
        }
        t.notes.push(format!(
            "{} answered after {:.1} s with a {SHORT_DEADLINE:?} deadline",
            step.rpc().name(),
            took.as_secs_f64()
        ));
        let _ = Faults::clear(&t.bed.ep.sim_root);
        if !t.converge(i, step).await {
            return;
        }
        t.check(&format!("after {} converged", step.rpc().name()))
            .await;
    }
}
