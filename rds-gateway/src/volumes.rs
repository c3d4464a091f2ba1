//! Volume operations: create (new, restored from a snapshot, cloned from a volume), delete,
//! expand, get and list, each idempotent, serialised per slot and verified by reading back.
//!
//! - Sizes are rounded **up** to the appliance granularity (`size::round_up`), never down, and the
//!   limit is honoured (`OUT_OF_RANGE` when rounding or the source's size goes beyond it). What is
//!   returned is the size the appliance reports after the change.
//! - Create adopts an existing disk that already is what was asked for (same backing file, size
//!   within `[required, limit]`, same export, same source) and answers `ALREADY_EXISTS` naming
//!   every difference otherwise. A copy that was made but not yet grown is grown, so a retried
//!   clone or restore finishes the work. A backing file left at the path by an earlier failed
//!   create or delete is removed first (`/disk add` would fail on it).
//! - Delete removes the disk, then its backing file (`/disk remove` leaves it), and proves both are
//!   gone. A missing disk is success and still removes a left-over file at the expected path.
//! - Snapshots are disks too (see `snapshots`); volume calls treat a snapshot's slot as "no such
//!   volume" and never touch it.
//!
//! The decisions (size planning and judging an existing disk) are pure functions, tested on their
//! own; the rest only sequences commands.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::appliance::{Appliance, is_snapshot};
use crate::op_error::OpError;
use crate::paging::{self, Page};
use crate::routeros::command::{DiskAdd, DiskCopy, DiskResize, NvmeExport};
use crate::routeros::error::RosError;
use crate::routeros::model::{Disk, DiskType};
use crate::routeros::names::{
    Comment, CommentKind, FilePath, ImagePath, Nqn, PoolPath, Port, Slot,
};
use crate::routeros::size::{Bytes, GRANULARITY, round_up};
use crate::scope::Scope;
use crate::slot_lock::SlotLocks;

/// Size of a new empty volume whose request gave no size.
pub const DEFAULT_SIZE: Bytes = Bytes::new(1 << 30);

/// Where a volume's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// Restored from this snapshot.
    Snapshot(Slot),
    /// Cloned from this volume.
    Volume(Slot),
}

impl VolumeSource {
    /// The source's slot.
    pub fn slot(&self) -> &Slot {
        match self {
            VolumeSource::Snapshot(s) | VolumeSource::Volume(s) => s,
        }
    }

    fn what(&self) -> &'static str {
        match self {
            VolumeSource::Snapshot(_) => "snapshot",
            VolumeSource::Volume(_) => "source volume",
        }
    }

    fn field(&self) -> &'static str {
        match self {
            VolumeSource::Snapshot(_) => "snapshot_id",
            VolumeSource::Volume(_) => "volume_id",
        }
    }
}

/// A validated create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateVolume {
    /// Slot (= volume id).
    pub slot: Slot,
    /// Smallest acceptable size (0: the source's size, or [`DEFAULT_SIZE`]).
    pub required: Bytes,
    /// Largest acceptable size.
    pub limit: Option<Bytes>,
    /// Directory of the backing file.
    pub pool: PoolPath,
    /// How the disk is exported.
    pub export: NvmeExport,
    /// Where the data comes from.
    pub source: Option<VolumeSource>,
}

/// A volume as the appliance reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    /// Slot (= volume id).
    pub slot: Slot,
    /// Export NQN, when exported.
    pub nqn: Option<Nqn>,
    /// Backing file.
    pub file_path: Option<FilePath>,
    /// Size in bytes.
    pub size: Bytes,
    /// Export port, when exported.
    pub port: Option<Port>,
    /// Whether the disk is exported over NVMe/TCP.
    pub exported: bool,
    /// Where its data came from, when known.
    pub source: Option<VolumeSource>,
}

impl VolumeInfo {
    fn of(disk: &Disk, source: Option<VolumeSource>) -> VolumeInfo {
        VolumeInfo {
            slot: disk.slot.clone(),
            nqn: disk.nqn.clone(),
            file_path: disk.file_path.clone(),
            size: disk.size,
            port: disk.nvme_port,
            exported: disk.nvme_export,
            source,
        }
    }
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The size to create: `required` rounded up (or the source's size, or [`DEFAULT_SIZE`] when
/// `required` is 0), at least the source's size, within `limit`.
pub fn plan_size(
    slot: &Slot,
    required: Bytes,
    limit: Option<Bytes>,
    source_size: Option<Bytes>,
) -> Result<Bytes, OpError> {
    let out_of_range = |detail: String| OpError::OutOfRange {
        slot: slot.clone(),
        detail,
    };
    if let Some(limit) = limit
        && required > limit
    {
        return Err(out_of_range(format!(
            "required_bytes {required} is above limit_bytes {limit}"
        )));
    }
    let base = if required == Bytes::ZERO {
        match (source_size, limit) {
            (Some(size), _) => size,
            (None, Some(limit)) if limit < DEFAULT_SIZE => {
                // The largest whole number of granules within the limit.
                Bytes::new(limit.get() - limit.get() % GRANULARITY.get())
            }
            (None, _) => DEFAULT_SIZE,
        }
    } else {
        round_up(required).map_err(|e| out_of_range(e.to_string()))?
    };
    let target = base.max(source_size.unwrap_or(Bytes::ZERO));
    if target == Bytes::ZERO {
        return Err(out_of_range(format!(
            "limit_bytes {} is below the smallest disk ({GRANULARITY} bytes)",
            limit.unwrap_or(Bytes::ZERO)
        )));
    }
    if let Some(limit) = limit
        && target > limit
    {
        let why = match source_size {
            Some(size) if size > limit => {
                format!("the source is {size} bytes, above limit_bytes {limit}")
            }
            _ => format!(
                "required_bytes {required} rounded up to the appliance granularity \
                 ({GRANULARITY} bytes) is {target}, above limit_bytes {limit}"
            ),
        };
        return Err(out_of_range(why));
    }
    Ok(target)
}

/// What a create asks of a disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted<'a> {
    /// Backing file.
    pub image: &'a ImagePath,
    /// Smallest acceptable size.
    pub required: Bytes,
    /// Largest acceptable size.
    pub limit: Option<Bytes>,
    /// Export.
    pub export: &'a NvmeExport,
    /// Source slot of a clone or restore.
    pub source: Option<&'a Slot>,
}

/// What to do with a disk that already has the requested slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// It is what was asked: return it.
    Adopt,
    /// It is the requested copy but smaller than `required`: grow it.
    Grow,
    /// It is something else: these are the differences.
    Conflict(String),
}

/// Compares an existing disk with a create request.
pub fn judge(disk: &Disk, want: &Wanted<'_>) -> Judgement {
    let mut differs: Vec<String> = Vec::new();
    if is_snapshot(disk) {
        differs.push("it is a snapshot, not a volume".into());
    }
    if disk.disk_type != DiskType::File {
        differs.push("it is not a file disk".into());
    }
    match (&disk.file_path, disk.image_path()) {
        (_, Some(image)) if &image == want.image => {}
        (Some(path), _) => {
            differs.push(format!("backing file is {path}, requested {}", want.image))
        }
        (None, _) => differs.push(format!("it has no backing file, requested {}", want.image)),
    }
    if !disk.nvme_export {
        differs.push("it is not exported over NVMe/TCP".into());
    } else {
        if disk.nvme_port != Some(want.export.port) {
            let port = disk
                .nvme_port
                .map_or_else(|| "unset".to_owned(), |p| p.to_string());
            differs.push(format!(
                "exported on port {port}, requested {}",
                want.export.port
            ));
        }
        if disk.nqn.as_ref() != Some(&want.export.nqn) {
            let nqn = disk
                .nqn
                .as_ref()
                .map_or_else(|| "none".to_owned(), |n| n.to_string());
            differs.push(format!("exported as {nqn}, requested {}", want.export.nqn));
        }
    }
    let recorded = disk.comment.as_ref().and_then(|c| c.source());
    if recorded != want.source {
        differs.push(match (recorded, want.source) {
            (Some(have), Some(asked)) => format!("it is a copy of {have}, requested {asked}"),
            (Some(have), None) => format!("it is a copy of {have}, requested an empty volume"),
            (None, Some(asked)) => format!("it is not a copy of {asked}"),
            (None, None) => String::new(),
        });
    }
    if let Some(limit) = want.limit
        && disk.size > limit
    {
        differs.push(format!("size {} is above limit_bytes {limit}", disk.size));
    }
    let too_small = disk.size < want.required;
    if too_small && want.source.is_none() {
        differs.push(format!(
            "size {} is below required_bytes {}",
            disk.size, want.required
        ));
    }
    if !differs.is_empty() {
        return Judgement::Conflict(differs.join("; "));
    }
    if too_small {
        Judgement::Grow
    } else {
        Judgement::Adopt
    }
}

/// The source of a volume, as far as the disks at hand tell: the comment names the source slot,
/// and the source disk (when it still exists) says whether it is a snapshot.
fn resolve_source(disk: &Disk, source_disk: Option<&Disk>) -> Option<VolumeSource> {
    let slot = disk.comment.as_ref()?.source()?.clone();
    match source_disk {
        Some(src) if is_snapshot(src) => Some(VolumeSource::Snapshot(slot)),
        Some(_) => Some(VolumeSource::Volume(slot)),
        None => None,
    }
}

/// The volume operations.
#[derive(Debug, Clone)]
pub struct Volumes {
    appliance: Appliance,
    locks: SlotLocks,
    scope: Scope,
}

impl Volumes {
    /// Volume operations on `appliance` for the slots in `scope`, serialised by `locks` (shared
    /// with the snapshot operations).
    pub fn new(appliance: Appliance, locks: SlotLocks, scope: Scope) -> Self {
        Volumes {
            appliance,
            locks,
            scope,
        }
    }

    fn deadline(&self) -> Instant {
        self.appliance.executor().deadline(Instant::now())
    }

    async fn lock(&self, slots: &[&Slot]) -> Result<crate::slot_lock::SlotGuards, OpError> {
        self.locks
            .lock_all(slots, self.deadline())
            .await
            .map_err(|e| OpError::Pending { slot: e.slot })
    }

    /// Creates (or adopts) a volume.
    pub async fn create(&self, req: &CreateVolume) -> Result<VolumeInfo, OpError> {
        self.scope.check("slot", &req.slot)?;
        if let Some(src) = &req.source {
            self.scope.check(src.field(), src.slot())?;
            if src.slot() == &req.slot {
                return Err(OpError::BadRequest {
                    field: src.field(),
                    problem: "a volume cannot be its own source".into(),
                });
            }
        }
        let mut slots = vec![&req.slot];
        if let Some(src) = &req.source {
            slots.push(src.slot());
        }
        let _held = self.lock(&slots).await?;

        let image = ImagePath::new(&req.pool, &req.slot);
        let want = Wanted {
            image: &image,
            required: req.required,
            limit: req.limit,
            export: &req.export,
            source: req.source.as_ref().map(VolumeSource::slot),
        };
        let disk = match self.appliance.disk(&req.slot).await? {
            // An earlier (maybe interrupted) create: its source may be gone since, which does
            // not matter any more.
            Some(existing) => {
                tracing::debug!(rds.slot = %req.slot, "a disk with this slot exists; comparing");
                match judge(&existing, &want) {
                    Judgement::Conflict(differences) => {
                        return Err(OpError::Conflict {
                            slot: req.slot.clone(),
                            differences,
                        });
                    }
                    Judgement::Adopt => existing,
                    Judgement::Grow => self.grow(&req.slot, req, &want).await?,
                }
            }
            None => {
                let source_disk = match &req.source {
                    Some(src) => Some(self.source_disk(src).await?),
                    None => None,
                };
                let target = plan_size(
                    &req.slot,
                    req.required,
                    req.limit,
                    source_disk.as_ref().map(|d| d.size),
                )?;
                self.create_new(req, target, &want).await?
            }
        };
        Ok(VolumeInfo::of(&disk, req.source.clone()))
    }

    /// The source disk of a clone or restore, which must exist and be of the named kind.
    async fn source_disk(&self, src: &VolumeSource) -> Result<Disk, OpError> {
        let not_found = || OpError::NotFound {
            what: src.what(),
            slot: src.slot().clone(),
        };
        let disk = self
            .appliance
            .disk(src.slot())
            .await?
            .ok_or_else(not_found)?;
        let right_kind = match src {
            VolumeSource::Snapshot(_) => is_snapshot(&disk),
            VolumeSource::Volume(_) => !is_snapshot(&disk),
        };
        if right_kind {
            Ok(disk)
        } else {
            Err(not_found())
        }
    }

    async fn create_new(
        &self,
        req: &CreateVolume,
        target: Bytes,
        want: &Wanted<'_>,
    ) -> Result<Disk, OpError> {
        let exec = self.appliance.executor();
        self.appliance.remove_image_if_present(want.image).await?;
        let comment = Comment::new(CommentKind::Volume).with_created(unix_now());
        let ran = match &req.source {
            None => {
                let add = DiskAdd::new(&req.pool, &req.slot, target, req.export.clone())
                    .map_err(|e| OpError::invalid("required_bytes", e))?
                    .with_comment(comment);
                exec.run(&add).await
            }
            Some(src) => {
                let copy = DiskCopy::new(src.slot(), &req.pool, &req.slot)
                    .map_err(|e| OpError::invalid(src.field(), e))?
                    .exported(req.export.clone())
                    .with_comment(comment.with_source(src.slot().clone()));
                exec.run(&copy).await
            }
        };
        if let Err(e) = ran {
            // A create of the same slot that is still running on the appliance — a retry
            // after the gateway restarted cannot know about it — got there first. What it
            // made is judged like any existing disk: adopted if it is what was asked.
            if matches!(e, RosError::AlreadyExists { .. })
                && let Some(existing) = self.appliance.disk(&req.slot).await?
            {
                return match judge(&existing, want) {
                    Judgement::Adopt => Ok(existing),
                    Judgement::Grow => self.grow(&req.slot, req, want).await,
                    Judgement::Conflict(differences) => Err(OpError::Conflict {
                        slot: req.slot.clone(),
                        differences,
                    }),
                };
            }
            if !e.is_retryable() {
                self.clean_failed_create(&req.slot, want.image).await;
            }
            return Err(e.into());
        }
        let created = self.read_back(&req.slot, "/disk add").await?;
        match judge(&created, want) {
            Judgement::Adopt => Ok(created),
            Judgement::Grow => self.grow(&req.slot, req, want).await,
            Judgement::Conflict(differences) => Err(OpError::Unverified {
                slot: req.slot.clone(),
                detail: format!("the new disk is not what was asked: {differences}"),
            }),
        }
    }

    /// After a create the appliance refused: a backing file without a disk is removed so that
    /// nothing leaks when the caller gives up (best effort; the next create removes it anyway).
    async fn clean_failed_create(&self, slot: &Slot, image: &ImagePath) {
        let cleaned = async {
            if self.appliance.disk(slot).await?.is_none() {
                self.appliance.remove_image_if_present(image).await?;
            }
            Ok::<_, OpError>(())
        };
        if let Err(e) = cleaned.await {
            tracing::warn!(rds.slot = %slot, "cleaning up after a failed create failed: {e}");
        }
    }

    async fn read_back(&self, slot: &Slot, after: &str) -> Result<Disk, OpError> {
        self.appliance
            .disk(slot)
            .await?
            .ok_or_else(|| OpError::Unverified {
                slot: slot.clone(),
                detail: format!("the disk is missing after {after}"),
            })
    }

    /// Grows a copy that is smaller than the request to the request's (rounded) size.
    async fn grow(
        &self,
        slot: &Slot,
        req: &CreateVolume,
        want: &Wanted<'_>,
    ) -> Result<Disk, OpError> {
        let size = plan_size(slot, req.required, req.limit, None)?;
        let resize =
            DiskResize::new(slot, size).map_err(|e| OpError::invalid("required_bytes", e))?;
        self.appliance.executor().run(&resize).await?;
        let grown = self.read_back(slot, "/disk set").await?;
        match judge(&grown, want) {
            Judgement::Adopt => Ok(grown),
            Judgement::Grow => Err(OpError::Unverified {
                slot: slot.clone(),
                detail: format!(
                    "the disk is {} bytes after growing it to {size}",
                    grown.size
                ),
            }),
            Judgement::Conflict(differences) => Err(OpError::Unverified {
                slot: slot.clone(),
                detail: differences,
            }),
        }
    }

    /// Deletes a volume and its backing file; a missing volume is success.
    pub async fn delete(&self, slot: &Slot, pool: &PoolPath) -> Result<(), OpError> {
        self.scope.check("slot", slot)?;
        let _held = self.lock(&[slot]).await?;
        let expected = ImagePath::new(pool, slot);
        match self.appliance.disk(slot).await? {
            Some(disk) if is_snapshot(&disk) => {
                tracing::warn!(
                    rds.slot = %slot,
                    "DeleteVolume named a snapshot; it is not a volume and is left alone"
                );
                Ok(())
            }
            Some(disk) => self.appliance.remove_disk(&disk, &expected).await,
            None => self
                .appliance
                .remove_image_if_present(&expected)
                .await
                .map(|_| ()),
        }
    }

    /// Grows a volume to at least `required` (never shrinks); returns its size afterwards.
    pub async fn expand(
        &self,
        slot: &Slot,
        required: Bytes,
        limit: Option<Bytes>,
    ) -> Result<VolumeInfo, OpError> {
        self.scope.check("slot", slot)?;
        let _held = self.lock(&[slot]).await?;
        let disk = self.volume_disk(slot).await?;
        if let Some(limit) = limit
            && required > limit
        {
            return Err(OpError::OutOfRange {
                slot: slot.clone(),
                detail: format!("required_bytes {required} is above limit_bytes {limit}"),
            });
        }
        if required <= disk.size {
            return Ok(VolumeInfo::of(&disk, None));
        }
        let target = plan_size(slot, required, limit, None)?;
        let resize =
            DiskResize::new(slot, target).map_err(|e| OpError::invalid("required_bytes", e))?;
        self.appliance.executor().run(&resize).await?;
        let grown = self.read_back(slot, "/disk set").await?;
        if grown.size < required {
            return Err(OpError::Unverified {
                slot: slot.clone(),
                detail: format!(
                    "the disk is {} bytes after growing it to {target}",
                    grown.size
                ),
            });
        }
        Ok(VolumeInfo::of(&grown, None))
    }

    /// A volume's disk: `NOT_FOUND` when missing or when the slot is a snapshot.
    async fn volume_disk(&self, slot: &Slot) -> Result<Disk, OpError> {
        match self.appliance.disk(slot).await? {
            Some(disk) if !is_snapshot(&disk) => Ok(disk),
            _ => Err(OpError::NotFound {
                what: "volume",
                slot: slot.clone(),
            }),
        }
    }

    /// One volume.
    pub async fn get(&self, slot: &Slot) -> Result<VolumeInfo, OpError> {
        self.scope.check("slot", slot)?;
        let disk = self.volume_disk(slot).await?;
        let source_disk = match disk.comment.as_ref().and_then(|c| c.source()) {
            Some(src) => self.appliance.disk(src).await?,
            None => None,
        };
        Ok(VolumeInfo::of(
            &disk,
            resolve_source(&disk, source_disk.as_ref()),
        ))
    }

    /// One page of the volumes, in slot order.
    pub async fn list(&self, max_entries: u32, token: &str) -> Result<Page<VolumeInfo>, OpError> {
        let after = paging::parse_token(token, &self.scope)?;
        let disks = self.appliance.managed_disks(&self.scope).await?;
        let volumes: BTreeMap<Slot, VolumeInfo> = disks
            .values()
            .filter(|d| !is_snapshot(d))
            .map(|d| {
                let source = d
                    .comment
                    .as_ref()
                    .and_then(|c| c.source())
                    .and_then(|s| disks.get(s));
                (d.slot.clone(), VolumeInfo::of(d, resolve_source(d, source)))
            })
            .collect();
        Ok(paging::paginate(&volumes, after.as_ref(), max_entries))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::routeros::model::SizeSource;

    const MIB: u64 = 1 << 20;

    fn slot(s: &str) -> Slot {
        Slot::parse(s).unwrap()
    }

    fn pool() -> PoolPath {
        PoolPath::parse("storage-pool/kubernetes-volumes").unwrap()
    }

    fn export(s: &Slot) -> NvmeExport {
        NvmeExport {
            port: Port::NVME_TCP_DEFAULT,
            nqn: Nqn::for_slot("nqn.2000-02.com.mikrotik", s).unwrap(),
        }
    }

    fn disk(s: &str, size: u64) -> Disk {
        let sl = slot(s);
        Disk {
            slot: sl.clone(),
            disk_type: DiskType::File,
            file_path: Some(FilePath::parse(&ImagePath::new(&pool(), &sl).absolute()).unwrap()),
            size: Bytes::new(size),
            size_source: SizeSource::Exact,
            nvme_export: true,
            nvme_port: Some(Port::NVME_TCP_DEFAULT),
            nqn: Some(export(&sl).nqn),
            comment: Some(Comment::new(CommentKind::Volume).with_created(1)),
            raw_comment: None,
            mount_point: None,
            free: None,
            use_percent: None,
        }
    }

    fn wanted<'a>(
        image: &'a ImagePath,
        export: &'a NvmeExport,
        required: u64,
        limit: Option<u64>,
        source: Option<&'a Slot>,
    ) -> Wanted<'a> {
        Wanted {
            image,
            required: Bytes::new(required),
            limit: limit.map(Bytes::new),
            export,
            source,
        }
    }

    #[test]
    fn sizes_round_up_never_down_and_honour_the_limit() {
        let s = slot("pvc-1");
        let plan = |req: u64, limit: Option<u64>, src: Option<u64>| {
            plan_size(
                &s,
                Bytes::new(req),
                limit.map(Bytes::new),
                src.map(Bytes::new),
            )
        };
        // 1.5 GiB stays 1.5 GiB; one byte over a MiB becomes two MiB.
        assert_eq!(plan(3 << 29, None, None).unwrap().get(), 3 << 29);
        assert_eq!(plan(MIB + 1, None, None).unwrap().get(), 2 * MIB);
        assert_eq!(plan(1, None, None).unwrap().get(), MIB);
        // Rounding past the limit is refused, not rounded down.
        let err = plan(MIB + 1, Some(MIB + 100), None).unwrap_err();
        assert_eq!(err.code(), tonic::Code::OutOfRange);
        assert!(err.to_string().contains("rounded up"), "{err}");
        assert_eq!(plan(MIB + 1, Some(2 * MIB), None).unwrap().get(), 2 * MIB);
        // required above limit.
        assert_eq!(
            plan(5 * MIB, Some(4 * MIB), None).unwrap_err().code(),
            tonic::Code::OutOfRange
        );
        // No size: the default, or what fits the limit, or the source's size.
        assert_eq!(plan(0, None, None).unwrap(), DEFAULT_SIZE);
        assert_eq!(plan(0, Some(3 * MIB + 5), None).unwrap().get(), 3 * MIB);
        assert_eq!(
            plan(0, Some(MIB - 1), None).unwrap_err().code(),
            tonic::Code::OutOfRange
        );
        assert_eq!(plan(0, None, Some(7 * MIB)).unwrap().get(), 7 * MIB);
        // A copy is never smaller than its source, and a source beyond the limit is refused.
        assert_eq!(plan(MIB, None, Some(7 * MIB)).unwrap().get(), 7 * MIB);
        assert_eq!(plan(9 * MIB, None, Some(7 * MIB)).unwrap().get(), 9 * MIB);
        let err = plan(MIB, Some(4 * MIB), Some(7 * MIB)).unwrap_err();
        assert!(err.to_string().contains("source is"), "{err}");
        // Sizes too close to u64::MAX to round.
        assert_eq!(
            plan(u64::MAX - 3, None, None).unwrap_err().code(),
            tonic::Code::OutOfRange
        );
    }

    #[test]
    fn matching_disk_is_adopted() {
        let s = slot("pvc-1");
        let image = ImagePath::new(&pool(), &s);
        let exp = export(&s);
        let existing = disk("pvc-1", 2 * MIB);
        assert_eq!(
            judge(&existing, &wanted(&image, &exp, 2 * MIB, None, None)),
            Judgement::Adopt
        );
        // Bigger than asked but within the limit is still what was asked.
        assert_eq!(
            judge(&existing, &wanted(&image, &exp, MIB, Some(2 * MIB), None)),
            Judgement::Adopt
        );
        // A disk made by an older driver (no comment) is adopted too.
        let mut legacy = existing.clone();
        legacy.comment = None;
        assert_eq!(
            judge(&legacy, &wanted(&image, &exp, MIB, None, None)),
            Judgement::Adopt
        );
    }

    #[test]
    fn conflicts_name_every_difference() {
        let s = slot("pvc-1");
        let image = ImagePath::new(&pool(), &s);
        let exp = export(&s);
        let mut other = disk("pvc-1", MIB);
        other.nvme_port = Some(Port::new(4421).unwrap());
        other.nqn = Some(Nqn::parse("nqn.2000-02.com.mikrotik:other").unwrap());
        other.file_path = Some(FilePath::parse("/elsewhere/pvc-1.img").unwrap());
        let Judgement::Conflict(why) = judge(&other, &wanted(&image, &exp, 2 * MIB, None, None))
        else {
            panic!("expected a conflict");
        };
        for part in [
            "port 4421",
            ":other",
            "/elsewhere/pvc-1.img",
            "below required_bytes",
        ] {
            assert!(why.contains(part), "{part} missing in {why}");
        }
        let too_big = disk("pvc-1", 8 * MIB);
        let Judgement::Conflict(why) =
            judge(&too_big, &wanted(&image, &exp, MIB, Some(4 * MIB), None))
        else {
            panic!("expected a conflict");
        };
        assert!(why.contains("above limit_bytes"), "{why}");
        let mut unexported = disk("pvc-1", MIB);
        unexported.nvme_export = false;
        assert!(matches!(
            judge(&unexported, &wanted(&image, &exp, MIB, None, None)),
            Judgement::Conflict(w) if w.contains("not exported")
        ));
        let mut snap = disk("pvc-1", MIB);
        snap.comment = Some(Comment::snapshot(slot("pvc-0"), 5));
        assert!(matches!(
            judge(&snap, &wanted(&image, &exp, MIB, None, None)),
            Judgement::Conflict(w) if w.contains("snapshot")
        ));
    }

    #[test]
    fn copies_must_have_the_same_source_and_are_grown_when_short() {
        let s = slot("pvc-1");
        let image = ImagePath::new(&pool(), &s);
        let exp = export(&s);
        let src = slot("snap-1");
        let other_src = slot("snap-2");
        let mut copy = disk("pvc-1", 2 * MIB);
        copy.comment = Some(
            Comment::new(CommentKind::Volume)
                .with_source(src.clone())
                .with_created(9),
        );
        assert_eq!(
            judge(&copy, &wanted(&image, &exp, 2 * MIB, None, Some(&src))),
            Judgement::Adopt
        );
        assert_eq!(
            judge(&copy, &wanted(&image, &exp, 5 * MIB, None, Some(&src))),
            Judgement::Grow
        );
        assert!(matches!(
            judge(&copy, &wanted(&image, &exp, MIB, None, Some(&other_src))),
            Judgement::Conflict(w) if w.contains("copy of snap-1, requested snap-2")
        ));
        assert!(matches!(
            judge(&copy, &wanted(&image, &exp, MIB, None, None)),
            Judgement::Conflict(w) if w.contains("requested an empty volume")
        ));
        let plain = disk("pvc-1", 2 * MIB);
        assert!(matches!(
            judge(&plain, &wanted(&image, &exp, MIB, None, Some(&src))),
            Judgement::Conflict(w) if w.contains("not a copy of snap-1")
        ));
    }

    #[test]
    fn source_kind_comes_from_the_source_disk() {
        let mut clone = disk("pvc-2", MIB);
        clone.comment = Some(Comment::new(CommentKind::Volume).with_source(slot("snap-1")));
        let mut snap = disk("snap-1", MIB);
        snap.comment = Some(Comment::snapshot(slot("pvc-1"), 3));
        let vol = disk("snap-1", MIB);
        assert_eq!(
            resolve_source(&clone, Some(&snap)),
            Some(VolumeSource::Snapshot(slot("snap-1")))
        );
        assert_eq!(
            resolve_source(&clone, Some(&vol)),
            Some(VolumeSource::Volume(slot("snap-1")))
        );
        assert_eq!(resolve_source(&clone, None), None);
        assert_eq!(resolve_source(&disk("pvc-3", MIB), Some(&snap)), None);
    }
}
