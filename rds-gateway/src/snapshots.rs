//! Snapshot operations. A snapshot is an unexported copy of a volume's disk (`/disk add
//! copy-from=...`) whose slot is the snapshot id. `print` shows neither a copy's source nor when it
//! was made, so both are written into the disk's comment (`rds-csi:v1 kind=snapshot source=<slot>
//! created=<unix secs>`); that is also how a disk is known to be a snapshot after a restart.
//!
//! - Create is idempotent by id: the same id from the same source returns the existing snapshot,
//!   from another source (or a volume with that slot) is `ALREADY_EXISTS`. A backing file left at
//!   the path by an earlier failure is removed first.
//! - Delete is idempotent: disk and backing file go, a missing snapshot is success (and a left-over
//!   file at its path is removed); a slot that holds a volume is never touched.
//! - List filters by id and by source, in id order, with page tokens.
//! - A snapshot is ready as soon as the copy exists: `/disk add copy-from` returns once it is made.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::appliance::{Appliance, is_snapshot};
use crate::op_error::OpError;
use crate::paging::{self, Page};
use crate::routeros::command::DiskCopy;
use crate::routeros::error::RosError;
use crate::routeros::model::Disk;
use crate::routeros::names::{Comment, ImagePath, PoolPath, Slot};
use crate::routeros::size::Bytes;
use crate::scope::Scope;
use crate::slot_lock::SlotLocks;
use crate::volumes::unix_now;

/// A snapshot as the appliance reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Snapshot id (= its slot).
    pub id: Slot,
    /// The volume it was taken from, as recorded.
    pub source: Option<Slot>,
    /// Size in bytes.
    pub size: Bytes,
    /// Creation time in Unix seconds, as recorded (0 when not recorded).
    pub created_unix: u64,
    /// Whether it can be restored from.
    pub ready: bool,
}

impl SnapshotInfo {
    /// The snapshot view of `disk`, or `None` when it is not a snapshot.
    pub fn of(disk: &Disk) -> Option<SnapshotInfo> {
        if !is_snapshot(disk) {
            return None;
        }
        let comment = disk.comment.as_ref();
        Some(SnapshotInfo {
            id: disk.slot.clone(),
            source: comment.and_then(|c| c.source()).cloned(),
            size: disk.size,
            created_unix: comment.and_then(Comment::created).unwrap_or(0),
            ready: true,
        })
    }
}

/// A validated create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSnapshot {
    /// Snapshot id (= its slot).
    pub id: Slot,
    /// Volume to copy.
    pub source: Slot,
    /// Directory of the snapshot's backing file.
    pub pool: PoolPath,
}

/// What a listing is restricted to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// Only this snapshot.
    pub id: Option<Slot>,
    /// Only snapshots of this volume.
    pub source: Option<Slot>,
}

/// What to do with a disk that already has the requested snapshot id.
pub fn judge_existing(disk: &Disk, source: &Slot) -> Result<SnapshotInfo, String> {
    match SnapshotInfo::of(disk) {
        None => Err("it is a volume, not a snapshot".into()),
        Some(snap) => match &snap.source {
            Some(have) if have == source => Ok(snap),
            Some(have) => Err(format!("it is a snapshot of {have}, requested {source}")),
            None => Err(format!(
                "its source is not recorded, requested a snapshot of {source}"
            )),
        },
    }
}

/// The snapshot operations.
#[derive(Debug, Clone)]
pub struct Snapshots {
    appliance: Appliance,
    locks: SlotLocks,
    scope: Scope,
}

impl Snapshots {
    /// Snapshot operations on `appliance` for the slots in `scope`, serialised by `locks` (shared
    /// with the volume operations).
    pub fn new(appliance: Appliance, locks: SlotLocks, scope: Scope) -> Self {
        Snapshots {
            appliance,
            locks,
            scope,
        }
    }

    async fn lock(&self, slots: &[&Slot]) -> Result<crate::slot_lock::SlotGuards, OpError> {
        let deadline = self.appliance.executor().deadline(Instant::now());
        self.locks
            .lock_all(slots, deadline)
            .await
            .map_err(|e| OpError::Pending { slot: e.slot })
    }

    /// Creates (or returns the existing) snapshot.
    pub async fn create(&self, req: &CreateSnapshot) -> Result<SnapshotInfo, OpError> {
        self.scope.check("snapshot_id", &req.id)?;
        self.scope.check("source_volume_id", &req.source)?;
        if req.id == req.source {
            return Err(OpError::BadRequest {
                field: "snapshot_id",
                problem: "a snapshot cannot have the slot of its source volume".into(),
            });
        }
        let _held = self.lock(&[&req.id, &req.source]).await?;
        if let Some(existing) = self.appliance.disk(&req.id).await? {
            return judge_existing(&existing, &req.source).map_err(|differences| {
                OpError::Conflict {
                    slot: req.id.clone(),
                    differences,
                }
            });
        }
        match self.appliance.disk(&req.source).await? {
            Some(src) if !is_snapshot(&src) => {}
            _ => {
                return Err(OpError::NotFound {
                    what: "source volume",
                    slot: req.source.clone(),
                });
            }
        }
        let image = ImagePath::new(&req.pool, &req.id);
        self.appliance.remove_image_if_present(&image).await?;
        let copy = DiskCopy::new(&req.source, &req.pool, &req.id)
            .map_err(|e| OpError::invalid("snapshot_id", e))?
            .with_comment(Comment::snapshot(req.source.clone(), unix_now()));
        if let Err(e) = self.appliance.executor().run(&copy).await {
            // A copy of the same id still running on the appliance (the caller retried
            // after a restart) got there first: judge what it made.
            if matches!(e, RosError::AlreadyExists { .. })
                && let Some(existing) = self.appliance.disk(&req.id).await?
            {
                return judge_existing(&existing, &req.source).map_err(|differences| {
                    OpError::Conflict {
                        slot: req.id.clone(),
                        differences,
                    }
                });
            }
            if !e.is_retryable() {
                self.clean_failed_create(&req.id, &image).await;
            }
            return Err(e.into());
        }
        let made = self
            .appliance
            .disk(&req.id)
            .await?
            .ok_or_else(|| OpError::Unverified {
                slot: req.id.clone(),
                detail: "the snapshot disk is missing after /disk add copy-from".into(),
            })?;
        judge_existing(&made, &req.source).map_err(|detail| OpError::Unverified {
            slot: req.id.clone(),
            detail: format!("the new snapshot is not what was asked: {detail}"),
        })
    }

    async fn clean_failed_create(&self, id: &Slot, image: &ImagePath) {
        let cleaned = async {
            if self.appliance.disk(id).await?.is_none() {
                self.appliance.remove_image_if_present(image).await?;
            }
            Ok::<_, OpError>(())
        };
        if let Err(e) = cleaned.await {
            tracing::warn!(rds.slot = %id, "cleaning up after a failed snapshot failed: {e}");
        }
    }

    /// Deletes a snapshot and its backing file; a missing snapshot is success.
    pub async fn delete(&self, id: &Slot, pool: &PoolPath) -> Result<(), OpError> {
        self.scope.check("snapshot_id", id)?;
        let _held = self.lock(&[id]).await?;
        let expected = ImagePath::new(pool, id);
        match self.appliance.disk(id).await? {
            Some(disk) if is_snapshot(&disk) => self.appliance.remove_disk(&disk, &expected).await,
            Some(_) => {
                tracing::warn!(
                    rds.slot = %id,
                    "DeleteSnapshot named a volume; it is not a snapshot and is left alone"
                );
                Ok(())
            }
            None => self
                .appliance
                .remove_image_if_present(&expected)
                .await
                .map(|_| ()),
        }
    }

    /// One page of the snapshots matching `filter`, in id order.
    pub async fn list(
        &self,
        filter: &SnapshotFilter,
        max_entries: u32,
        token: &str,
    ) -> Result<Page<SnapshotInfo>, OpError> {
        let after = paging::parse_token(token, &self.scope)?;
        let candidates: Vec<Disk> = match &filter.id {
            Some(id) if !self.scope.contains(id) => Vec::new(),
            Some(id) => self.appliance.disk(id).await?.into_iter().collect(),
            None => self
                .appliance
                .managed_disks(&self.scope)
                .await?
                .into_values()
                .collect(),
        };
        let snapshots: BTreeMap<Slot, SnapshotInfo> = candidates
            .iter()
            .filter_map(SnapshotInfo::of)
            .filter(|s| filter.source.is_none() || s.source == filter.source)
            .map(|s| (s.id.clone(), s))
            .collect();
        Ok(paging::paginate(&snapshots, after.as_ref(), max_entries))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::routeros::model::{DiskType, SizeSource};
    use crate::routeros::names::{CommentKind, FilePath};

    fn slot(s: &str) -> Slot {
        Slot::parse(s).unwrap()
    }

    fn disk(s: &str, comment: Option<Comment>) -> Disk {
        Disk {
            slot: slot(s),
            disk_type: DiskType::File,
            file_path: Some(FilePath::parse(&format!("/pool/{s}.img")).unwrap()),
            size: Bytes::new(1 << 20),
            size_source: SizeSource::Exact,
            nvme_export: false,
            nvme_port: None,
            nqn: None,
            comment,
            raw_comment: None,
            mount_point: None,
            free: None,
            use_percent: None,
        }
    }

    #[test]
    fn same_source_is_returned_and_others_conflict() {
        let snap = disk(
            "snap-1",
            Some(Comment::snapshot(slot("pvc-a"), 1_700_000_000)),
        );
        let info = judge_existing(&snap, &slot("pvc-a")).unwrap();
        assert_eq!(info.source, Some(slot("pvc-a")));
        assert_eq!(info.created_unix, 1_700_000_000);
        assert!(info.ready);
        let why = judge_existing(&snap, &slot("pvc-b")).unwrap_err();
        assert!(why.contains("snapshot of pvc-a, requested pvc-b"), "{why}");
        let volume = disk("snap-1", Some(Comment::new(CommentKind::Volume)));
        assert!(
            judge_existing(&volume, &slot("pvc-a"))
                .unwrap_err()
                .contains("volume")
        );
        let unknown = disk("snap-1", None);
        assert!(judge_existing(&unknown, &slot("pvc-a")).is_err());
        let no_source = disk("snap-1", Some(Comment::new(CommentKind::Snapshot)));
        assert!(
            judge_existing(&no_source, &slot("pvc-a"))
                .unwrap_err()
                .contains("not recorded")
        );
    }

    #[test]
    fn only_commented_snapshots_are_snapshots() {
        assert!(SnapshotInfo::of(&disk("snap-1", None)).is_none());
        assert!(
            SnapshotInfo::of(&disk("snap-1", Some(Comment::new(CommentKind::Volume)))).is_none()
        );
        let no_time = SnapshotInfo::of(&disk(
            "snap-1",
            Some(Comment::new(CommentKind::Snapshot).with_source(slot("pvc-a"))),
        ))
        .unwrap();
        assert_eq!(no_time.created_unix, 0);
    }
}
