//! NodeStage: connect, wait for the device, format only if blank, grow if the device grew,
//! mount — idempotently.
//!
//! A retried stage must neither stack a second mount nor touch a working one: a staging path
//! already mounted from the device the NQN resolves to is success. A staging path mounted from
//! another device is stale (the controller reconnected under a new device, the old one is gone):
//! it is unmounted and the current device mounted, and the recovery is counted. A block volume
//! mounts nothing; its stage record says which NQN and device it belongs to. A filesystem
//! found smaller than its device (offline expansion) is grown to it (see `grow`), except on a
//! read-only stage, which writes nothing.

use std::path::PathBuf;
use std::time::Instant;

use tracing::Instrument;

use crate::connect_spec::ConnectSpec;
use crate::error::Result;
use crate::grow::{Grow, GrowPlan};
use crate::kubelet_path::SafePath;
use crate::mount_options::{FsType, MountOptions, parse_mount_options};
use crate::mounts::{self, block_devno, entry_devno};
use crate::node::Node;
use crate::stage_record::{RecordedAccess, StageRecord};

/// A filesystem volume's settings, validated.
#[derive(Debug, Clone)]
pub struct FilesystemVolume {
    /// ext4 or xfs.
    pub fs: FsType,
    /// mkfs options for this volume (validated when used); `None`: the node's defaults.
    pub mkfs_options: Option<String>,
    /// Mount options as given (each validated).
    pub mount_options: Vec<String>,
}

impl FilesystemVolume {
    /// The validated mount options. XFS volumes always get `nouuid`: a restored snapshot
    /// or a clone carries its source's filesystem UUID, and XFS refuses to mount a second
    /// filesystem with a UUID already mounted on the node.
    pub fn parsed_mount_options(&self) -> Result<MountOptions> {
        let has_nouuid = self
            .mount_options
            .iter()
            .any(|o| o.split(',').any(|p| p.trim() == "nouuid"));
        if self.fs == FsType::Xfs && !has_nouuid {
            let mut with = self.mount_options.clone();
            with.push("nouuid".to_string());
            return parse_mount_options(self.fs, &with);
        }
        parse_mount_options(self.fs, &self.mount_options)
    }
}

/// Block or filesystem.
#[derive(Debug, Clone)]
pub enum VolumeKind {
    /// A raw block device.
    Block,
    /// A filesystem to mount.
    Filesystem(FilesystemVolume),
}

/// A validated stage request.
#[derive(Debug, Clone)]
pub struct StageRequest {
    /// The CSI volume id.
    pub volume_id: String,
    /// How to connect.
    pub spec: ConnectSpec,
    /// Where to mount (filesystem) or what to record (block).
    pub staging: SafePath,
    /// Block or filesystem.
    pub kind: VolumeKind,
    /// Stage read-only.
    pub read_only: bool,
}

/// What a stage did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageOutcome {
    /// The device the volume resolved to.
    pub device: PathBuf,
    /// Whether mkfs ran.
    pub formatted: bool,
    /// Whether a stale staging mount was replaced.
    pub recovered_stale: bool,
    /// The filesystem grown to fill its device, if one was.
    pub grown: Option<Grow>,
}

impl Node {
    /// Stages a volume (guarded: a concurrent call on the same volume is `ABORTED`).
    pub async fn stage(
        &self,
        req: &StageRequest,
        caller_deadline: Option<Instant>,
    ) -> Result<StageOutcome> {
        let started = Instant::now();
        let result = match self.guards.acquire(&req.volume_id, "stage") {
            Ok(_guard) => self.stage_guarded(req, caller_deadline).await,
            Err(e) => Err(e),
        };
        self.metrics.operation("stage", started, &result);
        result
    }

    async fn stage_guarded(
        &self,
        req: &StageRequest,
        caller_deadline: Option<Instant>,
    ) -> Result<StageOutcome> {
        let nqn = &req.spec.nqn;
        // Validate everything before touching the kernel.
        let parsed = match &req.kind {
            VolumeKind::Filesystem(fs) => Some(fs.parsed_mount_options()?),
            VolumeKind::Block => None,
        };
        self.connect(&req.spec).await?;
        let deadline = Node::deadline(caller_deadline, self.cfg.device_wait_timeout);
        let device = self.wait_for_device(nqn, deadline).await?;
        let staging = req.staging.as_path().to_path_buf();
        let mut record = StageRecord {
            volume_id: req.volume_id.clone(),
            nqn: nqn.to_string(),
            access: RecordedAccess::Block,
            device: device.clone(),
            staging_path: staging.clone(),
            fs_type: None,
            mount_options: Vec::new(),
            read_only: req.read_only,
        };
        let (VolumeKind::Filesystem(fs), Some(options)) = (&req.kind, parsed) else {
            self.records.save(&record)?;
            return Ok(StageOutcome {
                device,
                formatted: false,
                recovered_stale: false,
                grown: None,
            });
        };
        record.access = RecordedAccess::Filesystem;
        record.fs_type = Some(fs.fs.as_str().to_string());
        record.mount_options = fs.mount_options.clone();

        let probe_device = device.clone();
        let devno =
            Node::blocking("inspecting", &device, move || block_devno(&probe_device)).await?;
        let table = self.mount_table().await?;
        let mut recovered_stale = false;
        if let Some(top) = table.top_at(&staging) {
            if entry_devno(top) == devno {
                tracing::info!(staging = %staging.display(), device = %device.display(), "already staged from this device");
                self.records.save(&record)?;
                return Ok(StageOutcome {
                    device,
                    formatted: false,
                    recovered_stale: false,
                    grown: None,
                });
            }
            self.note_stale(&req.volume_id);
            tracing::warn!(
                staging = %staging.display(),
                mounted = %top.source,
                mounted_devno = %entry_devno(top),
                device = %device.display(),
                "staging path is mounted from another device (stale); remounting"
            );
            if let Err(e) = self.unmount_path(&staging).await {
                self.metrics.stale_recovery(false);
                return Err(e);
            }
            recovered_stale = true;
        }
        let result = self
            .format_and_mount(req, fs, &options, &device, &staging)
            .await;
        if recovered_stale {
            self.metrics.stale_recovery(result.is_ok());
            if result.is_ok() {
                self.note_healthy(&req.volume_id);
            }
        }
        let (formatted, grown) = result?;
        self.records.save(&record)?;
        Ok(StageOutcome {
            device,
            formatted,
            recovered_stale,
            grown,
        })
    }

    async fn format_and_mount(
        &self,
        req: &StageRequest,
        fs: &FilesystemVolume,
        options: &MountOptions,
        device: &std::path::Path,
        staging: &std::path::Path,
    ) -> Result<(bool, Option<Grow>)> {
        let dir = staging.to_path_buf();
        Node::blocking("creating", staging, move || mounts::ensure_dir(&dir)).await?;
        let formatted = self
            .ensure_filesystem(
                &req.volume_id,
                &req.spec.nqn,
                device,
                fs.fs,
                fs.mkfs_options.as_deref(),
            )
            .await?;
        // A fresh mkfs fills the device; a read-only stage must not write.
        let plan = if formatted {
            GrowPlan::Nothing
        } else if req.read_only {
            tracing::debug!(device = %device.display(), "read-only stage: not growing the filesystem");
            GrowPlan::Nothing
        } else {
            self.grow_before_mount(&req.spec.nqn, device, fs.fs).await?
        };
        self.mount_filesystem(device, staging, fs.fs, options, req.read_only)
            .await?;
        let grown = match plan {
            GrowPlan::Nothing => None,
            GrowPlan::Grown(grow) => Some(grow),
            GrowPlan::AfterMount(grow) => {
                if let Err(e) = self.grow_after_mount(grow, staging).await {
                    // Leave nothing mounted, so that a retried stage grows it again instead
                    // of finding it staged.
                    if let Err(unmount) = self.unmount_path(staging).await {
                        tracing::warn!(error = %unmount, "unmounting after the failed grow failed");
                    }
                    return Err(e);
                }
                Some(grow)
            }
        };
        Ok((formatted, grown))
    }

    /// Mounts `device` at `staging` (a `mount` span).
    pub(crate) async fn mount_filesystem(
        &self,
        device: &std::path::Path,
        staging: &std::path::Path,
        fs: FsType,
        options: &MountOptions,
        read_only: bool,
    ) -> Result<()> {
        let span = tracing::info_span!("mount", device = %device.display(), target = %staging.display(), fs = fs.as_str());
        let (device, target, options) =
            (device.to_path_buf(), staging.to_path_buf(), options.clone());
        Node::blocking("mounting", staging, move || {
            mounts::mount_device(&device, &target, fs, &options, read_only)?;
            tracing::info!("mounted");
            Ok(())
        })
        .instrument(span)
        .await
    }

    /// Unmounts everything stacked at `path` (an `unmount` span).
    pub(crate) async fn unmount_path(&self, path: &std::path::Path) -> Result<usize> {
        let span = tracing::info_span!("unmount", target = %path.display());
        let target = path.to_path_buf();
        Node::blocking("unmounting", path, move || {
            let removed = mounts::unmount_all(&target)?;
            tracing::info!(removed, "unmounted");
            Ok(removed)
        })
        .instrument(span)
        .await
    }
}
