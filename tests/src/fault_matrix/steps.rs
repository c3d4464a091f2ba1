//! The volume lifecycle a trial walks through, one CSI call per step, and the bounded retry a
//! CO would make after a fault: call again while the answer says "try again", stop at success
//! or at an answer that says the call will not succeed as is.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rds_csi_proto::csi::volume_capability::access_mode::Mode;
use rds_csi_proto::csi::{Volume, VolumeCapability};
use tonic::Status;

use super::ledger::Ledger;
use super::spec_codes::{Rpc, Verdict, short};
use crate::csi_client::{Csi, mount_capability};
use crate::e2e_support::{
    E2eError, create, delete, node_publish, node_unpublish, pod_path, publish, stage, staging_path,
    unpublish, unstage,
};
use crate::stack::NODE_ID;

/// Size of every volume a trial makes.
pub const VOLUME_BYTES: i64 = 64 << 20;
/// Deadline of one call.
pub const CALL: Duration = Duration::from_secs(30);
/// Most calls of one step's retry.
pub const RETRY_ATTEMPTS: u32 = 60;
/// Pause between two calls of a retry.
pub const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// Longest a retry may take, whatever the attempts.
pub const RETRY_BUDGET: Duration = Duration::from_secs(45);

/// One step of the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    Create,
    Publish,
    Stage,
    NodePublish,
    NodeUnpublish,
    Unstage,
    Unpublish,
    Delete,
}

impl Step {
    /// The whole lifecycle, in order.
    pub const LIFECYCLE: [Step; 8] = [
        Step::Create,
        Step::Publish,
        Step::Stage,
        Step::NodePublish,
        Step::NodeUnpublish,
        Step::Unstage,
        Step::Unpublish,
        Step::Delete,
    ];

    /// The name used in fault names (`kill-helper@stage`).
    pub fn name(self) -> &'static str {
        match self {
            Step::Create => "create",
            Step::Publish => "publish",
            Step::Stage => "stage",
            Step::NodePublish => "node-publish",
            Step::NodeUnpublish => "node-unpublish",
            Step::Unstage => "unstage",
            Step::Unpublish => "unpublish",
            Step::Delete => "delete",
        }
    }

    pub fn rpc(self) -> Rpc {
        match self {
            Step::Create => Rpc::CreateVolume,
            Step::Publish => Rpc::ControllerPublishVolume,
            Step::Stage => Rpc::NodeStageVolume,
            Step::NodePublish => Rpc::NodePublishVolume,
            Step::NodeUnpublish => Rpc::NodeUnpublishVolume,
            Step::Unstage => Rpc::NodeUnstageVolume,
            Step::Unpublish => Rpc::ControllerUnpublishVolume,
            Step::Delete => Rpc::DeleteVolume,
        }
    }

    /// What exists once this step has succeeded.
    pub fn state_after(self) -> VolumeState {
        let at = |exists, staged, in_pod| VolumeState {
            exists,
            staged,
            in_pod,
        };
        match self {
            Step::Create | Step::Publish | Step::Unstage | Step::Unpublish => {
                at(true, false, false)
            }
            Step::Stage | Step::NodeUnpublish => at(true, true, false),
            Step::NodePublish => at(true, true, true),
            Step::Delete => at(false, false, false),
        }
    }
}

/// Where a volume is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VolumeState {
    /// The disk exists on the appliance.
    pub exists: bool,
    /// Mounted at its staging path (and attached to a loop device).
    pub staged: bool,
    /// Bind-mounted at its pod path.
    pub in_pod: bool,
}

/// The volume a trial works on, and what the calls so far returned for it.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The CreateVolume name; a `pvc-<uuid>` name is also the volume id.
    pub name: String,
    pub cap: VolumeCapability,
    pub vol: Option<Volume>,
    pub ctx: HashMap<String, String>,
    pub staging: PathBuf,
    pub target: PathBuf,
    pub state: VolumeState,
}

impl Subject {
    /// A new ext4 volume with its kubelet paths under `kubelet` (created).
    pub fn new(kubelet: &Path, tag: &str) -> Result<Subject, E2eError> {
        Ok(Subject {
            name: format!("pvc-{}", uuid::Uuid::new_v4()),
            cap: mount_capability("ext4", Mode::SingleNodeWriter),
            vol: None,
            ctx: HashMap::new(),
            staging: staging_path(kubelet, tag)?,
            target: pod_path(kubelet, tag, false)?,
            state: VolumeState::default(),
        })
    }

    /// The volume id (the name, which is already of the id's form).
    pub fn id(&self) -> &str {
        &self.name
    }

    /// The volume as CreateVolume returned it, or as the CO would know it by id alone.
    pub fn volume(&self) -> Volume {
        self.vol.clone().unwrap_or_else(|| Volume {
            volume_id: self.name.clone(),
            ..Volume::default()
        })
    }

    fn apply(&mut self, step: Step, effect: Effect) {
        match effect {
            Effect::Created(v) => self.vol = Some(v),
            Effect::Published(ctx) => self.ctx = ctx,
            Effect::Done => {}
        }
        self.state = step.state_after();
    }
}

/// What a successful step returned.
#[derive(Debug)]
pub enum Effect {
    Created(Volume),
    Published(HashMap<String, String>),
    Done,
}

/// Makes the call of `step` for `s` once.
pub async fn invoke(
    csi: &Csi,
    step: Step,
    s: &Subject,
    timeout: Duration,
) -> Result<Effect, Status> {
    let vol = s.volume();
    match step {
        Step::Create => create(csi, &s.name, VOLUME_BYTES, &s.cap, timeout)
            .await
            .map(Effect::Created),
        Step::Publish => publish(csi, &vol, NODE_ID, &s.cap, timeout)
            .await
            .map(Effect::Published),
        Step::Stage => stage(csi, &vol, &s.ctx, &s.staging, &s.cap, timeout)
            .await
            .map(|()| Effect::Done),
        Step::NodePublish => {
            node_publish(csi, &vol, &s.ctx, &s.staging, &s.target, &s.cap, timeout)
                .await
                .map(|()| Effect::Done)
        }
        Step::NodeUnpublish => node_unpublish(csi, s.id(), &s.target, timeout)
            .await
            .map(|()| Effect::Done),
        Step::Unstage => unstage(csi, s.id(), &s.staging, timeout)
            .await
            .map(|()| Effect::Done),
        Step::Unpublish => unpublish(csi, s.id(), NODE_ID, timeout)
            .await
            .map(|()| Effect::Done),
        Step::Delete => delete(csi, s.id(), timeout).await.map(|()| Effect::Done),
    }
}

/// Records the answer of a call of `step` made elsewhere (in flight at a kill) and applies
/// what it returned.
pub fn settle(
    ledger: &mut Ledger,
    s: &mut Subject,
    step: Step,
    when: &str,
    r: Result<Effect, Status>,
) -> Verdict {
    let verdict = ledger.record(step.rpc(), when, &r);
    if let Ok(effect) = r {
        s.apply(step, effect);
    }
    verdict
}

/// Applies what a call of `step` returned to `s`, when it succeeded (the answer recorded
/// by the caller).
pub fn adopt(s: &mut Subject, step: Step, r: Result<Effect, Status>) {
    if let Ok(effect) = r {
        s.apply(step, effect);
    }
}

/// Makes `call` until it succeeds, as a CO would: again after every retryable answer (at most
/// [`RETRY_ATTEMPTS`] calls within [`RETRY_BUDGET`]), never after one that is not. Every
/// answer is judged as an answer to `rpc`. Returns the value and the number of calls, or why
/// the call did not converge.
pub async fn retry_rpc<T, F, Fut>(
    ledger: &mut Ledger,
    rpc: Rpc,
    mut call: F,
) -> Result<(T, u32), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let start = Instant::now();
    let mut last = String::new();
    for attempt in 1..=RETRY_ATTEMPTS {
        let r = call().await;
        let verdict = ledger.record(rpc, &format!("retry {attempt}"), &r);
        match r {
            Ok(v) => return Ok((v, attempt)),
            Err(e) => last = format!("{:?}: {}", e.code(), short(e.message())),
        }
        if !verdict.retryable() {
            return Err(format!(
                "{} stopped at a non-retryable answer after {attempt} calls: {last}",
                rpc.name()
            ));
        }
        if start.elapsed() >= RETRY_BUDGET {
            break;
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Err(format!(
        "{} did not succeed within {RETRY_ATTEMPTS} calls / {RETRY_BUDGET:?}: last {last}",
        rpc.name()
    ))
}

/// Calls `step` for `s` until it succeeds (see [`retry_rpc`]) and applies what it returned.
pub async fn converge(
    csi: &Csi,
    ledger: &mut Ledger,
    s: &mut Subject,
    step: Step,
) -> Result<u32, String> {
    let snapshot = s.clone();
    let (effect, calls) =
        retry_rpc(ledger, step.rpc(), || invoke(csi, step, &snapshot, CALL)).await?;
    s.apply(step, effect);
    Ok(calls)
}

/// Runs `steps` in order with [`converge`], stopping at the first that does not converge.
pub async fn run_steps(
    csi: &Csi,
    ledger: &mut Ledger,
    s: &mut Subject,
    steps: &[Step],
) -> Result<(), String> {
    for step in steps {
        converge(csi, ledger, s, *step).await?;
    }
    Ok(())
}

/// The steps that undo what exists of `s`, in order (the rest of its lifecycle).
pub fn teardown_steps(s: &Subject) -> Vec<Step> {
    let mut out = Vec::new();
    if s.state.in_pod {
        out.push(Step::NodeUnpublish);
    }
    if s.state.staged {
        out.push(Step::Unstage);
    }
    if s.state.exists {
        out.extend([Step::Unpublish, Step::Delete]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_ends_where_it_started_and_teardown_follows_the_state() {
        let mut state = VolumeState::default();
        for step in Step::LIFECYCLE {
            state = step.state_after();
        }
        assert_eq!(state, VolumeState::default());
        let dir = std::env::temp_dir().join(format!("fm-steps-{}", std::process::id()));
        let mut s = Subject::new(&dir, "t")
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| {
                panic!("{e}");
            });
        assert!(teardown_steps(&s).is_empty());
        s.state = Step::NodePublish.state_after();
        assert_eq!(
            teardown_steps(&s),
            [
                Step::NodeUnpublish,
                Step::Unstage,
                Step::Unpublish,
                Step::Delete
            ]
        );
        s.state = Step::Unstage.state_after();
        assert_eq!(teardown_steps(&s), [Step::Unpublish, Step::Delete]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
