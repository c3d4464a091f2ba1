//! NodePublish and NodeUnpublish: exposing a staged volume at a pod's target path, and taking
//! it away again without ever deleting more than the target entry itself.
//!
//! Filesystem volumes are bind-mounted from the staging mount; read-only (and any of the VFS
//! flags `nosuid`, `nodev`, `noexec`, `noatime`, ... in the publish options) is applied with a
//! second `MS_BIND|MS_REMOUNT` call, because the kernel ignores flags on the bind itself. A
//! stale staging mount (its source is not the device the NQN resolves to now) is repaired first.
//!
//! Raw block volumes: the target is a regular file created empty, and the device node is
//! bind-mounted onto it, so the pod sees exactly one node. The Go driver instead mounted a
//! devtmpfs at the target directory to make the device appear there; every such mount is a full
//! copy of `/dev` that joins the shared mount-propagation peer group of the kubelet directory,
//! so each publish was replicated into every other mount namespace of the node and each of
//! those copies propagated again — a mount storm that grew with every pod and slowed the whole
//! node. A bind mount of one device node carries none of that: one mount, one node, no
//! filesystem instance. (A read-only remount of a device-node bind only stops writes through
//! path-based tools; the kernel still allows opening a device node for writing on a read-only
//! mount, so read-only raw block is advisory — the container runtime's device permissions are
//! what enforce it.)
//!
//! Unpublish unmounts every layer stacked at the target until the kernel answers that nothing
//! is mounted there, and only then removes the target entry: `rmdir` for a directory, `unlink`
//! for a file, never a recursive delete. A target that is already gone is success.

use std::path::Path;
use std::time::Instant;

use nix::mount::MsFlags;
use tracing::Instrument;

use crate::error::{HelperError, Result};
use crate::kubelet_path::SafePath;
use crate::mount_options::{FsType, parse_mount_options};
use crate::mounts::{self, DevNo, block_devno, block_devno_at, entry_devno};
use crate::node::Node;
use crate::nqn::Nqn;
use crate::stage_record::{RecordedAccess, StageRecord};

/// A validated publish request.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// The CSI volume id.
    pub volume_id: String,
    /// Where the volume was staged.
    pub staging: SafePath,
    /// Where to expose it.
    pub target: SafePath,
    /// Raw block (`true`) or filesystem.
    pub block: bool,
    /// Read-only publish.
    pub read_only: bool,
    /// Extra mount options (only VFS flags apply to a bind mount).
    pub mount_options: Vec<String>,
    /// At most one target path on this node (SINGLE_NODE_SINGLE_WRITER).
    pub single_target: bool,
}

impl Node {
    /// Publishes a staged volume (guarded).
    pub async fn publish(&self, req: &PublishRequest) -> Result<()> {
        let started = Instant::now();
        let result = match self.guards.acquire(&req.volume_id, "publish") {
            Ok(_guard) => {
                if req.block {
                    self.publish_block(req).await
                } else {
                    self.publish_filesystem(req).await
                }
            }
            Err(e) => Err(e),
        };
        self.metrics.operation("publish", started, &result);
        result
    }

    /// Unpublishes (guarded).
    pub async fn unpublish(&self, volume_id: &str, target: &SafePath) -> Result<()> {
        let started = Instant::now();
        let result = match self.guards.acquire(volume_id, "unpublish") {
            Ok(_guard) => self.unpublish_guarded(target).await,
            Err(e) => Err(e),
        };
        self.metrics.operation("unpublish", started, &result);
        result
    }

    async fn publish_filesystem(&self, req: &PublishRequest) -> Result<()> {
        let staging = req.staging.as_path();
        let target = req.target.as_path();
        let record = self.records.load(&req.volume_id)?;
        let mut table = self.mount_table().await?;
        let Some(staged) = table.top_at(staging).cloned() else {
            return Err(HelperError::NotStaged {
                volume_id: req.volume_id.clone(),
                path: staging.to_path_buf(),
                reason: "nothing is mounted there".into(),
            });
        };
        let mut staged_devno = entry_devno(&staged);
        if let Some(record) = record
            .as_ref()
            .filter(|r| r.access == RecordedAccess::Filesystem)
            && let Some(current) = self.repair_staging_if_stale(record, staged_devno).await?
        {
            staged_devno = current;
            table = self.mount_table().await?;
        }
        let fs = staged.fs_type.parse::<FsType>().unwrap_or(FsType::Ext4);
        let extra = parse_mount_options(fs, &req.mount_options)?;
        if !extra.data.is_empty() {
            tracing::debug!(ignored = %extra.data, "filesystem options do not apply to a bind mount; they were applied at stage");
        }
        let mut flags = extra.flags;
        if req.read_only {
            flags |= MsFlags::MS_RDONLY;
        }
        if let Some(top) = table.top_at(target) {
            if entry_devno(top) == staged_devno {
                tracing::info!(target = %target.display(), "already published");
                return Ok(());
            }
            tracing::warn!(target = %target.display(), mounted = %top.source, "target is mounted from another device (stale publish); replacing it");
            self.unmount_path(target).await?;
        }
        if req.single_target {
            let elsewhere = table
                .entries()
                .iter()
                .filter(|e| entry_devno(e) == staged_devno)
                .map(|e| e.mount_point.clone())
                .find(|p| self.is_other_target(p, req));
            self.refuse_second_target(req, elsewhere)?;
        }
        let dir = target.to_path_buf();
        Node::blocking("creating", target, move || mounts::ensure_dir(&dir)).await?;
        self.bind(staging, target, flags).await
    }

    async fn publish_block(&self, req: &PublishRequest) -> Result<()> {
        let target = req.target.as_path();
        let not_staged = |reason: String| HelperError::NotStaged {
            volume_id: req.volume_id.clone(),
            path: req.staging.as_path().to_path_buf(),
            reason,
        };
        let record = self
            .records
            .load(&req.volume_id)?
            .ok_or_else(|| not_staged("there is no stage record of it".into()))?;
        if record.access != RecordedAccess::Block {
            return Err(not_staged("it was staged as a filesystem".into()));
        }
        let nqn = Nqn::new(record.nqn.clone())?;
        let device = self
            .current_device(&nqn)
            .await?
            .ok_or_else(|| not_staged(format!("{nqn} has no block device now")))?;
        let probe_device = device.clone();
        let devno =
            Node::blocking("inspecting", &device, move || block_devno(&probe_device)).await?;
        let table = self.mount_table().await?;
        if table.is_mount_point(target) {
            let at = target.to_path_buf();
            let current =
                Node::blocking("inspecting", target, move || Ok(block_devno_at(&at))).await?;
            if current == Some(devno) {
                tracing::info!(target = %target.display(), "already published");
                return Ok(());
            }
            tracing::warn!(target = %target.display(), "target holds another device (stale publish); replacing it");
            self.unmount_path(target).await?;
        }
        if req.single_target {
            let candidates: Vec<std::path::PathBuf> = table
                .entries()
                .iter()
                .map(|e| e.mount_point.clone())
                .filter(|p| self.is_other_target(p, req))
                .collect();
            let elsewhere = Node::blocking("inspecting", target, move || {
                Ok(candidates
                    .into_iter()
                    .find(|p| block_devno_at(p) == Some(devno)))
            })
            .await?;
            self.refuse_second_target(req, elsewhere)?;
        }
        let file = target.to_path_buf();
        Node::blocking("creating", target, move || mounts::ensure_file(&file)).await?;
        let flags = if req.read_only {
            MsFlags::MS_RDONLY
        } else {
            MsFlags::empty()
        };
        self.bind(&device, target, flags).await
    }

    /// Whether `mount_point` could be another pod's publication of the volume in `req`: a
    /// mount inside the kubelet directory that is neither its staging path nor its target.
    fn is_other_target(&self, mount_point: &Path, req: &PublishRequest) -> bool {
        mount_point.starts_with(self.kubelet.path())
            && mount_point != req.staging.as_path()
            && mount_point != req.target.as_path()
    }

    /// CSI, VolumeCapability.AccessMode: SINGLE_NODE_SINGLE_WRITER means the volume "can only
    /// be published once as read/write on a single node, at any given time"; NodePublishVolume
    /// answers a CO that exceeds the volume's capabilities with FAILED_PRECONDITION.
    fn refuse_second_target(
        &self,
        req: &PublishRequest,
        elsewhere: Option<std::path::PathBuf>,
    ) -> Result<()> {
        match elsewhere {
            Some(published_at) => Err(HelperError::PublishedElsewhere {
                volume_id: req.volume_id.clone(),
                target: req.target.requested().to_path_buf(),
                published_at,
            }),
            None => Ok(()),
        }
    }

    /// Bind-mounts `source` on `target` (a `bind` span).
    async fn bind(&self, source: &Path, target: &Path, flags: MsFlags) -> Result<()> {
        let span =
            tracing::info_span!("bind", source = %source.display(), target = %target.display());
        let (from, to) = (source.to_path_buf(), target.to_path_buf());
        Node::blocking("bind-mounting", target, move || {
            mounts::bind(&from, &to, flags)?;
            tracing::info!(?flags, "bound");
            Ok(())
        })
        .instrument(span)
        .await
    }

    /// When the staging mount's device is not the device the record's NQN resolves to now,
    /// replaces the staging mount. Returns the new device number when it did.
    pub(crate) async fn repair_staging_if_stale(
        &self,
        record: &StageRecord,
        mounted: DevNo,
    ) -> Result<Option<DevNo>> {
        let nqn = Nqn::new(record.nqn.clone())?;
        let Some(device) = self.current_device(&nqn).await? else {
            // Nothing to repair with: the condition reports it, stage reconnects.
            return Ok(None);
        };
        let probe = device.clone();
        let devno = Node::blocking("inspecting", &device, move || block_devno(&probe)).await?;
        if devno == mounted {
            return Ok(None);
        }
        self.note_stale(&record.volume_id);
        tracing::warn!(volume_id = %record.volume_id, staging = %record.staging_path.display(), %mounted, device = %device.display(), "repairing stale staging mount");
        let result = self.remount_staging(record, &device).await;
        self.metrics.stale_recovery(result.is_ok());
        if result.is_ok() {
            self.note_healthy(&record.volume_id);
        }
        result.map(|()| Some(devno))
    }

    async fn remount_staging(&self, record: &StageRecord, device: &Path) -> Result<()> {
        let fs = record
            .fs_type
            .as_deref()
            .unwrap_or("ext4")
            .parse::<FsType>()?;
        let options = parse_mount_options(fs, &record.mount_options)?;
        self.unmount_path(&record.staging_path).await?;
        self.mount_filesystem(device, &record.staging_path, fs, &options, record.read_only)
            .await
    }

    async fn unpublish_guarded(&self, target: &SafePath) -> Result<()> {
        let path = target.as_path();
        let table = self.mount_table().await?;
        if table.is_mount_point(path) {
            // Unmounting ends only when the kernel itself answers "not a mount point", and
            // removing a directory or file that is still a mount point fails with EBUSY, so
            // nothing mounted can be removed.
            self.unmount_path(path).await?;
        }
        let entry = path.to_path_buf();
        Node::blocking("removing", path, move || mounts::remove_entry(&entry)).await
    }
}
