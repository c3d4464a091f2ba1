//! The background detector of stale mounts.
//!
//! A controller that reconnects may come back as a new block device while the old staging
//! mount keeps pointing at the dead one; pods then see I/O errors until someone notices. Every
//! `--stale-check-interval` this loop walks the stage records and judges each staged volume
//! with the same check as the volume condition: the staging mount (or, for block volumes, the
//! NQN's device) must be the device the NQN resolves to now. A newly stale volume is logged and
//! counted once in `rds_csi_stale_mounts_detected_total`; the repair itself is done by the next
//! stage or publish of the volume, which holds the volume's guard (this loop never mounts).
//!
//! A volume with an operation in progress is not judged: an unstage disconnects before it
//! removes the record, so for a moment every unstaging volume looks like one whose device is
//! gone. A volume is skipped while its guard is held, and a stale verdict only counts when,
//! after it, no operation has started and the record on disk is still the one judged.

use std::sync::Arc;
use std::time::Duration;

use crate::mounts::{block_devno, entry_devno};
use crate::node::Node;
use crate::nqn::Nqn;
use crate::stage_record::{RecordedAccess, StageRecord};
use crate::stats::Condition;

/// What one sweep found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Volumes checked.
    pub checked: usize,
    /// Volumes with a stale mount, with the reason.
    pub stale: Vec<(String, String)>,
}

/// Starts the loop; it runs until the returned handle is aborted.
pub fn spawn(node: Arc<Node>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let sweep = sweep(&node).await;
            tracing::debug!(
                checked = sweep.checked,
                stale = sweep.stale.len(),
                "stale-mount sweep"
            );
        }
    })
}

/// Checks every staged volume once.
pub async fn sweep(node: &Node) -> Sweep {
    let mut out = Sweep::default();
    let records = match node.records().all() {
        Ok(r) => r,
        Err(error) => {
            tracing::warn!(%error, "cannot list stage records for the stale-mount sweep");
            return out;
        }
    };
    let table = match node.mount_table().await {
        Ok(t) => t,
        Err(error) => {
            tracing::warn!(%error, "cannot read the mount table for the stale-mount sweep");
            return out;
        }
    };
    for record in records {
        let Ok(nqn) = Nqn::new(record.nqn.clone()) else {
            continue;
        };
        if !settled(node, &record) {
            continue;
        }
        let condition = match record.access {
            RecordedAccess::Filesystem => match table.top_at(&record.staging_path) {
                Some(top) => node.condition_for(&nqn, entry_devno(top)).await,
                // Not mounted (being unstaged, or lost): nothing stale to point at.
                None => continue,
            },
            RecordedAccess::Block => match block_devno(&record.device) {
                Ok(devno) => node.condition_for(&nqn, devno).await,
                Err(_) => Condition {
                    abnormal: true,
                    stale: true,
                    message: format!("{} is gone", record.device.display()),
                },
            },
        };
        if condition.stale && !settled(node, &record) {
            continue;
        }
        out.checked += 1;
        if condition.stale {
            tracing::warn!(volume_id = %record.volume_id, %nqn, reason = %condition.message, "stale mount detected");
            node.note_stale(&record.volume_id);
            out.stale
                .push((record.volume_id.clone(), condition.message));
        } else if !condition.abnormal {
            node.note_healthy(&record.volume_id);
        }
    }
    out
}

/// Whether no operation runs on the record's volume and the record is still on disk as it was.
fn settled(node: &Node, record: &StageRecord) -> bool {
    !node.guards().is_busy(&record.volume_id)
        && node
            .records()
            .load(&record.volume_id)
            .is_ok_and(|now| now.as_ref() == Some(record))
}
