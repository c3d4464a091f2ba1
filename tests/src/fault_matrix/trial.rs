//! One trial's bookkeeping: the volumes and snapshots it made (what the CO believes exists),
//! the judged answers, the invariant findings at each checkpoint, and what did not converge;
//! and the clean-up after a trial, so that what one trial leaves does not spill into the next.

use std::collections::BTreeSet;
use std::time::Duration;

use super::invariants::{self, Baseline, Belief, Findings};
use super::ledger::Ledger;
use super::spec_codes::Rpc;
use super::steps::{self, Step, Subject, retry_rpc, teardown_steps};
use crate::e2e_support::{Bed, create_snapshot, delete, delete_snapshot, unpublish};
use crate::leaks;
use crate::sim::Faults;
use crate::sim::state::{self, Paths};

/// Component names, as the stack knows them.
pub const SIM: &str = "rds-sim";
pub const GATEWAY: &str = "rds-gateway";
pub const HELPER: &str = "nvme-helper";
pub const CONTROLLER: &str = "csi-frontend-controller";
pub const NODE: &str = "csi-frontend-node";
/// Every component of the split stack the matrix runs.
pub const COMPONENTS: [&str; 5] = [SIM, GATEWAY, HELPER, CONTROLLER, NODE];

/// What one trial came to.
#[derive(Debug, Clone, Default)]
pub struct TrialOutcome {
    /// Every step and retry succeeded within its bounds.
    pub converged: bool,
    /// Why not.
    pub unconverged: Vec<String>,
    pub findings: Findings,
    /// Answers the spec does not allow, or not the one the condition prescribes.
    pub wrong_codes: Vec<String>,
    /// For a kill: whether the call was still in flight when the component was killed.
    pub landed_inside: Option<bool>,
    /// Every code seen, for the detail line.
    pub codes: String,
    pub notes: Vec<String>,
}

impl TrialOutcome {
    pub fn failed(&self) -> bool {
        !self.converged || !self.findings.is_clean() || !self.wrong_codes.is_empty()
    }
}

/// A trial in progress.
pub struct Trial<'a> {
    pub bed: &'a mut Bed,
    pub ledger: Ledger,
    pub base: Baseline,
    pub subjects: Vec<Subject>,
    pub snapshots: BTreeSet<String>,
    pub findings: Findings,
    pub unconverged: Vec<String>,
    pub notes: Vec<String>,
    pub landed_inside: Option<bool>,
    tag: String,
}

impl<'a> Trial<'a> {
    /// Starts a trial on `bed`, taking the baseline.
    pub fn new(bed: &'a mut Bed, tag: &str) -> Trial<'a> {
        let base = invariants::baseline(bed);
        Trial {
            bed,
            ledger: Ledger::default(),
            base,
            subjects: Vec::new(),
            snapshots: BTreeSet::new(),
            findings: Findings::default(),
            unconverged: Vec::new(),
            notes: Vec::new(),
            landed_inside: None,
            tag: tag.to_string(),
        }
    }

    /// A new volume to work on; its index.
    pub fn subject(&mut self) -> Result<usize, String> {
        let tag = format!("{}-{}", self.tag, self.subjects.len());
        let s = Subject::new(&self.bed.ep.kubelet_dir, &tag).map_err(|e| e.to_string())?;
        self.subjects.push(s);
        Ok(self.subjects.len() - 1)
    }

    /// What the trial believes exists now.
    pub fn belief(&self) -> Belief {
        let mut b = Belief {
            snapshots: self.snapshots.clone(),
            ..Belief::default()
        };
        for s in &self.subjects {
            if s.state.exists {
                b.volumes.insert(s.id().to_string());
            }
            if s.state.staged {
                b.staged.insert(s.id().to_string());
                b.mounted.insert(s.staging.clone());
            }
            if s.state.in_pod {
                b.mounted.insert(s.target.clone());
            }
        }
        b
    }

    /// Checks the invariants now; `when` names the checkpoint.
    pub async fn check(&mut self, when: &str) {
        let belief = self.belief();
        let f = invariants::check(self.bed, &self.base, &belief).await;
        self.findings.merge(when, f);
    }

    /// Runs `step` for subject `i` until it converges; `false` (recorded) when it does not.
    pub async fn converge(&mut self, i: usize, step: Step) -> bool {
        let csi = self.bed.csi.clone();
        let r = steps::converge(&csi, &mut self.ledger, &mut self.subjects[i], step).await;
        self.settle_retry(r)
    }

    /// Runs `list` for subject `i`, stopping at the first step that does not converge.
    pub async fn run(&mut self, i: usize, list: &[Step]) -> bool {
        for step in list {
            if !self.converge(i, *step).await {
                return false;
            }
        }
        true
    }

    /// Records a retry's result: `false` when it did not converge.
    pub fn settle_retry<T>(&mut self, r: Result<T, String>) -> bool {
        match r {
            Ok(_) => true,
            Err(e) => {
                self.unconverged.push(e);
                false
            }
        }
    }

    /// Takes snapshot `name` of subject `i` until it converges; its id.
    pub async fn snapshot(&mut self, i: usize, name: &str) -> Option<String> {
        let csi = self.bed.csi.clone();
        let source = self.subjects[i].id().to_string();
        let r = retry_rpc(&mut self.ledger, Rpc::CreateSnapshot, || {
            create_snapshot(&csi, name, &source, steps::CALL)
        })
        .await;
        let (snap, _) = match r {
            Ok(v) => v,
            Err(e) => {
                self.unconverged.push(e);
                return None;
            }
        };
        self.snapshots.insert(snap.snapshot_id.clone());
        Some(snap.snapshot_id)
    }

    /// Deletes snapshot `id` until it converges.
    pub async fn delete_snapshot(&mut self, id: &str) -> bool {
        let csi = self.bed.csi.clone();
        let r = retry_rpc(&mut self.ledger, Rpc::DeleteSnapshot, || {
            delete_snapshot(&csi, id, steps::CALL)
        })
        .await;
        if r.is_ok() {
            self.snapshots.remove(id);
        }
        self.settle_retry(r)
    }

    /// Undoes everything the trial made (snapshots first), each step converging.
    pub async fn teardown(&mut self) -> bool {
        let mut ok = true;
        for id in self.snapshots.clone() {
            ok &= self.delete_snapshot(&id).await;
        }
        for i in 0..self.subjects.len() {
            let list = teardown_steps(&self.subjects[i]);
            ok &= self.run(i, &list).await;
        }
        ok
    }

    /// The trial's outcome; everything it made is cleaned up first (by force when the driver
    /// did not manage), so that the next trial starts clean.
    pub async fn finish(mut self) -> TrialOutcome {
        recover(self.bed, &self.base).await;
        let wrong_codes = self.ledger.wrong_codes();
        TrialOutcome {
            converged: self.unconverged.is_empty(),
            unconverged: std::mem::take(&mut self.unconverged),
            findings: std::mem::take(&mut self.findings),
            wrong_codes,
            landed_inside: self.landed_inside,
            codes: self.ledger.summary(),
            notes: std::mem::take(&mut self.notes),
        }
    }
}

/// Brings `bed` back to `base` after a trial: no fault rules, every component running, no
/// mount or loop device under the testbed, and no disk or `.img` the baseline did not have.
pub async fn recover(bed: &mut Bed, base: &Baseline) {
    let root = bed.ep.sim_root.clone();
    let _ = Faults::clear(&root);
    for name in COMPONENTS {
        if bed.pid(name).is_none() {
            let _ = bed.restart(name).await;
        }
    }
    let stray_mounts: Vec<String> = leaks::mounts_under(&bed.ep.kubelet_dir)
        .into_iter()
        .filter(|m| !base.mounts.contains(m))
        .collect();
    let stray_loops: Vec<String> = leaks::loops_under(&root)
        .into_iter()
        .filter(|l| !base.loops.contains(l))
        .collect();
    if !stray_mounts.is_empty() || !stray_loops.is_empty() {
        leaks::force_clean(&root, &bed.ep.kubelet_dir);
    }
    let csi = bed.csi.clone();
    let slots: Vec<String> = state::load(&Paths::new(&root))
        .map(|s| s.disks.into_iter().map(|d| d.slot).collect())
        .unwrap_or_default();
    for slot in slots.iter().filter(|s| !base.disks.contains(*s)) {
        for _ in 0..10 {
            let r = if slot.starts_with("snap-") {
                delete_snapshot(&csi, slot, Duration::from_secs(10)).await
            } else {
                // Detached from every node first: an attached volume is not deleted.
                match unpublish(&csi, slot, "", Duration::from_secs(10)).await {
                    Ok(()) => delete(&csi, slot, Duration::from_secs(10)).await,
                    Err(e) => Err(e),
                }
            };
            if r.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let owned: BTreeSet<String> = state::load(&Paths::new(&root))
        .map(|s| {
            s.disks
                .into_iter()
                .map(|d| {
                    root.join(d.file_path.trim_start_matches('/'))
                        .display()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    for img in leaks::images_under(&root) {
        if !owned.contains(&img) && !base.images.contains(&img) {
            let _ = std::fs::remove_file(&img);
        }
    }
}
