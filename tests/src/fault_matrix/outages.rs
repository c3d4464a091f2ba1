//! Trials where something under staged volumes goes away: the appliance (rds-sim killed and
//! restarted while volumes are staged and published), and the loop device behind a staged,
//! published volume (detached with `losetup -d` while mounted, which the kernel turns into a
//! detach at the last close).

use std::time::Duration;

use tonic::Code;

use super::spec_codes::Rpc;
use super::steps::{self, Step, invoke, settle};
use super::trial::{SIM, Trial};
use crate::e2e_support::{loops_of, volume_condition};

const PAYLOAD: &[u8] = b"written before the fault\n";
/// Deadline of a call made while the appliance is down.
const WHILE_DOWN: Duration = Duration::from_secs(5);

/// Up to the pod path: create, publish, stage, node-publish.
const UP: [Step; 4] = [Step::Create, Step::Publish, Step::Stage, Step::NodePublish];

fn write_payload(t: &mut Trial<'_>, i: usize) -> bool {
    let file = t.subjects[i].target.join("payload.txt");
    let wrote =
        std::fs::write(&file, PAYLOAD).and_then(|()| std::fs::File::open(&file)?.sync_all());
    match wrote {
        Ok(()) => true,
        Err(e) => {
            t.unconverged
                .push(format!("cannot write {}: {e}", file.display()));
            false
        }
    }
}

fn payload_intact(t: &mut Trial<'_>, i: usize, when: &str) {
    let file = t.subjects[i].target.join("payload.txt");
    match std::fs::read(&file) {
        Ok(b) if b == PAYLOAD => {}
        Ok(_) => t.findings.lost.push(format!(
            "{when}: {} reads back different bytes",
            file.display()
        )),
        Err(e) => t
            .findings
            .lost
            .push(format!("{when}: {} cannot be read: {e}", file.display())),
    }
}

/// Two volumes staged and published, data written; rds-sim killed; a create while it is down
/// must fail retryably; rds-sim restarted; the create converges (the gateway reconnects by
/// itself), the data is intact, everything tears down.
pub async fn appliance_restart(t: &mut Trial<'_>) {
    let mut staged = Vec::new();
    for _ in 0..2 {
        let Ok(i) = t.subject() else {
            t.unconverged.push("no kubelet paths".into());
            return;
        };
        if !t.run(i, &UP).await || !write_payload(t, i) {
            return;
        }
        staged.push(i);
    }
    if let Err(e) = t.bed.crash(SIM).await {
        t.unconverged.push(format!("kill -9 {SIM}: {e}"));
        return;
    }
    let Ok(fresh) = t.subject() else {
        t.unconverged.push("no kubelet paths".into());
        return;
    };
    let csi = t.bed.csi.clone();
    let subject = t.subjects[fresh].clone();
    let r = invoke(&csi, Step::Create, &subject, WHILE_DOWN).await;
    if r.is_ok() {
        t.ledger
            .wrong("CreateVolume succeeded while the appliance was down".to_string());
    }
    settle(
        &mut t.ledger,
        &mut t.subjects[fresh],
        Step::Create,
        "appliance down",
        r,
    );
    for &i in &staged {
        payload_intact(t, i, "while the appliance is down");
    }
    if let Err(e) = t.bed.restart(SIM).await {
        t.unconverged.push(format!("restart {SIM}: {e}"));
        return;
    }
    if !t.converge(fresh, Step::Create).await {
        return;
    }
    t.check("after the appliance came back").await;
    for &i in &staged {
        payload_intact(t, i, "after the appliance came back");
    }
    t.teardown().await;
    t.check("after teardown").await;
}

/// Detaches the loop device of subject `i` (`losetup -d` on a mounted device: the kernel
/// detaches it at the last close); returns the device.
fn yank(t: &mut Trial<'_>, i: usize) -> Option<String> {
    let id = t.subjects[i].id().to_string();
    let loops = loops_of(&t.bed.ep.sim_root, &id);
    let [line] = loops.as_slice() else {
        t.unconverged.push(format!(
            "want exactly one loop device for {id}, found {loops:?}"
        ));
        return None;
    };
    let dev = line.split(' ').next().unwrap_or_default().to_string();
    match std::process::Command::new("losetup")
        .args(["-d", &dev])
        .status()
    {
        Ok(s) if s.success() => Some(dev),
        Ok(s) => {
            t.unconverged.push(format!("losetup -d {dev}: {s}"));
            None
        }
        Err(e) => {
            t.unconverged.push(format!("losetup -d {dev}: {e}"));
            None
        }
    }
}

/// NodeGetVolumeStats of subject `i` at its staging or pod path must answer, and say whether
/// the volume is abnormal as `want_abnormal`.
async fn condition(t: &mut Trial<'_>, i: usize, pod: bool, want_abnormal: bool, when: &str) {
    let csi = t.bed.csi.clone();
    let s = &t.subjects[i];
    let path = if pod { &s.target } else { &s.staging };
    let r = volume_condition(&csi, s.id(), path, steps::CALL).await;
    let at = if pod { "pod path" } else { "staging path" };
    t.ledger.expect(
        Rpc::NodeGetVolumeStats,
        &format!("{when}, {at}"),
        &r,
        Code::Ok,
    );
    match r {
        Ok(Some((abnormal, message))) => {
            if abnormal != want_abnormal {
                t.ledger.wrong(format!(
                    "NodeGetVolumeStats at the {at} {when}: abnormal={abnormal}, want {want_abnormal} ({message})"
                ));
            } else {
                t.notes.push(format!("{when}, {at}: {message}"));
            }
        }
        Ok(None) => t.ledger.wrong(format!(
            "NodeGetVolumeStats at the {at} {when} carried no volume condition"
        )),
        Err(_) => {}
    }
}

/// A staged, published volume whose loop device is detached under its mounts: the volume
/// condition must turn abnormal at both paths; unpublish and unstage must converge and release
/// the device; a new stage and publish must converge on a fresh device with a normal condition.
pub async fn loop_yank(t: &mut Trial<'_>) {
    let Ok(i) = t.subject() else {
        t.unconverged.push("no kubelet paths".into());
        return;
    };
    if !t.run(i, &UP).await || !write_payload(t, i) {
        return;
    }
    condition(t, i, false, false, "before the detach").await;
    let Some(dev) = yank(t, i) else {
        return;
    };
    t.notes.push(format!("detached {dev}"));
    condition(t, i, false, true, "after the detach").await;
    condition(t, i, true, true, "after the detach").await;
    if !t.run(i, &[Step::NodeUnpublish, Step::Unstage]).await {
        return;
    }
    t.check("after unstaging the volume whose device was detached")
        .await;
    // Stage and publish again: a fresh loop device, the data still there.
    if !t.run(i, &[Step::Stage, Step::NodePublish]).await {
        return;
    }
    payload_intact(t, i, "after the re-stage");
    condition(t, i, false, false, "after the re-stage").await;
    t.check("after the re-stage").await;
    t.teardown().await;
    t.check("after teardown").await;
}
