//! Positive controls for the sweep's own eyes: before any hostile case, a marker is made to
//! reach each place the sweep watches through a legitimate request — the command log (a valid
//! `volumePath` that holds the marker), the mount table and a new loop device (R1 staged at a
//! valid path that holds the marker) — and the same looks the cases get must see it. A sweep
//! that could not see a reach would report zeros that prove nothing.

use std::time::Duration;

use super::fixture::Base;
use super::observe::{self, LogTail};
use super::payloads::marker;
use crate::e2e_support::{Bed, delete, request, stage, unstage};
use rds_csi_proto::csi::CreateVolumeRequest;

/// The case numbers of the controls' markers (above any case's).
pub const LOG_CONTROL: usize = 9901;
pub const MOUNT_CONTROL: usize = 9902;

const CALL: Duration = Duration::from_secs(60);

/// Runs the controls; returns what the sweep failed to see or could not undo. The markers the
/// controls put in the log are [`marker`]`(LOG_CONTROL)` and `marker(MOUNT_CONTROL)`.
pub async fn run(
    bed: &Bed,
    base: &Base,
    tail: &mut LogTail,
    fixture_loops: &[String],
) -> Vec<String> {
    let mut problems = Vec::new();
    let csi = &bed.csi;

    // The command log: a volume under a valid directory named after the marker.
    let m = marker(LOG_CONTROL);
    let mut req = CreateVolumeRequest {
        name: format!("sweep-control-{m}"),
        ..Default::default()
    };
    req.parameters
        .insert("volumePath".into(), format!("/storage-pool/{m}"));
    let mut c = csi.controller.clone();
    req.volume_capabilities = vec![base.cap.clone()];
    let created = c
        .create_volume(request(req, CALL))
        .await
        .ok()
        .and_then(|r| r.into_inner().volume);
    let lines = tail.new_lines();
    if observe::reached(&lines, std::slice::from_ref(&m)).is_empty() {
        problems.push(format!(
            "control: a valid volumePath holding {m} was sent, but the command-log look did not see it"
        ));
    }
    if let Some(v) = created
        && let Err(s) = delete(csi, &v.volume_id, CALL).await
    {
        problems.push(format!("control: DeleteVolume {}: {s:?}", v.volume_id));
    }
    let _ = tail.new_lines();

    // The mount table and the loop devices: R1 staged at a valid path holding the marker.
    let m = marker(MOUNT_CONTROL);
    let dir = base
        .kubelet
        .join(format!("plugins/kubernetes.io/csi/rds.csi.srvlab.io/{m}"));
    let staging = dir.join("globalmount");
    if let Err(e) = std::fs::create_dir_all(&staging) {
        problems.push(format!("control: mkdir {}: {e}", staging.display()));
        return problems;
    }
    match stage(csi, &base.r1, &base.ctx1, &staging, &base.cap, CALL).await {
        Err(s) => problems.push(format!("control: NodeStageVolume of R1: {s:?}")),
        Ok(()) => {
            if observe::mounts_with(std::slice::from_ref(&m)).is_empty()
                || observe::mount_changes(&bed.dir, &base.mounts()).is_empty()
            {
                problems.push(format!(
                    "control: R1 was staged at a path holding {m}, but the mount-table look did not see it"
                ));
            }
            if observe::new_loops(&bed.dir, fixture_loops, &[]).is_empty() {
                problems.push(
                    "control: R1 was staged, but the loop-device look saw no new device".into(),
                );
            }
            if let Err(s) = unstage(csi, &base.r1.volume_id, &staging, CALL).await {
                problems.push(format!("control: NodeUnstageVolume of R1: {s:?}"));
            }
            if !observe::mount_changes(&bed.dir, &base.mounts()).is_empty()
                || !observe::new_loops(&bed.dir, fixture_loops, &[]).is_empty()
            {
                problems.push("control: R1's control mount or loop device stayed".into());
            }
        }
    }
    let _ = tail.new_lines();
    problems
}

/// Whether a logged command comes from a control (and so holds a marker legitimately).
pub fn is_control(command: &str) -> bool {
    command.contains(&marker(LOG_CONTROL)) || command.contains(&marker(MOUNT_CONTROL))
}
