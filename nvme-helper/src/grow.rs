//! Stage-time growth: a filesystem smaller than its device is grown before it is handed out.
//!
//! Kubernetes expands a volume offline by growing it on the appliance while it is not staged;
//! the next stage must then present the larger filesystem. Online ext4 grow needs
//! `CAP_SYS_RESOURCE`, which hardened nodes drop, so ext4 is grown *before* it is mounted:
//! `e2fsck -f -p` (preen: fixes only what is safe, asks nothing; exit 0 or 1 is fine, anything
//! else stops the stage with nothing grown or mounted), then `resize2fs <device>`. That only
//! ever runs on a device the mount table shows mounted nowhere. xfs can only grow mounted, so
//! it is measured before the mount and grown with `xfs_growfs <mount point>` after it. Each
//! step runs in a `grow` span and is counted in `rds_csi_filesystem_grows_total`.

use std::path::{Path, PathBuf};

use tracing::Instrument;

use crate::error::{HelperError, Result};
use crate::external::{Tool, trim_for_error};
use crate::fs_geometry::{self, Measured};
use crate::mount_options::FsType;
use crate::mounts::block_devno;
use crate::node::Node;
use crate::nqn::Nqn;

/// A filesystem grown by a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grow {
    /// ext4 or xfs.
    pub fs: FsType,
    /// The filesystem's size before, in bytes.
    pub from_bytes: u64,
    /// The device's size, which the filesystem now fills.
    pub device_bytes: u64,
}

/// What stage does about the filesystem's size, decided before the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrowPlan {
    /// The filesystem fills its device (or growing is not possible now).
    Nothing,
    /// ext4 was grown offline.
    Grown(Grow),
    /// xfs is to be grown once mounted.
    AfterMount(Grow),
}

impl Node {
    /// Reads `device`'s superblock and size (blocking, off the async threads).
    pub(crate) async fn measure_filesystem(&self, device: &Path, fs: FsType) -> Result<Measured> {
        let path = device.to_path_buf();
        Node::blocking("measuring", device, move || fs_geometry::measure(&path, fs)).await
    }

    /// Before the mount: measures the filesystem on the unmounted `device` and grows ext4 to
    /// the device offline when it is smaller (a `grow` span).
    pub(crate) async fn grow_before_mount(
        &self,
        nqn: &Nqn,
        device: &Path,
        fs: FsType,
    ) -> Result<GrowPlan> {
        let span = tracing::info_span!("grow", device = %device.display(), fs = fs.as_str(), mode = "offline");
        async {
            // The device may have grown while connected; a rescan refreshes its size (the
            // loop fabric and a fresh NVMe connect read it anyway). Best effort.
            if let Err(error) = self
                .fabric
                .rescan(nqn)
                .instrument(tracing::info_span!("rescan", %nqn))
                .await
            {
                tracing::warn!(%error, "rescan before measuring failed; using the size known now");
            }
            let measured = self.measure_filesystem(device, fs).await?;
            let from_bytes = measured.geometry.size_bytes();
            if !measured.needs_grow() {
                if from_bytes > measured.device_bytes {
                    tracing::warn!(
                        fs_bytes = from_bytes,
                        device_bytes = measured.device_bytes,
                        "the filesystem is larger than its device"
                    );
                }
                tracing::debug!(
                    fs_bytes = from_bytes,
                    device_bytes = measured.device_bytes,
                    "filesystem fills its device"
                );
                return Ok(GrowPlan::Nothing);
            }
            let grow = Grow {
                fs,
                from_bytes,
                device_bytes: measured.device_bytes,
            };
            if fs == FsType::Xfs {
                tracing::info!(
                    fs_bytes = from_bytes,
                    device_bytes = measured.device_bytes,
                    "xfs is smaller than its device; growing it once mounted"
                );
                return Ok(GrowPlan::AfterMount(grow));
            }
            if let Some(mounted_at) = self.mounted_anywhere(device).await? {
                tracing::warn!(
                    mounted_at = %mounted_at.display(),
                    fs_bytes = from_bytes,
                    device_bytes = measured.device_bytes,
                    "the device is mounted elsewhere; not checking or growing it offline"
                );
                return Ok(GrowPlan::Nothing);
            }
            let result = self.grow_ext4_offline(device).await;
            self.metrics
                .filesystem_grow(fs.as_str(), "offline", result.is_ok());
            let after = result?;
            let to_bytes = after.geometry.size_bytes();
            if after.needs_grow() {
                tracing::warn!(
                    from_bytes,
                    to_bytes,
                    device_bytes = after.device_bytes,
                    "resize2fs left part of the device unused"
                );
            }
            tracing::info!(
                from_bytes,
                to_bytes,
                device_bytes = after.device_bytes,
                "grew ext4 offline to its device"
            );
            Ok(GrowPlan::Grown(grow))
        }
        .instrument(span)
        .await
    }

    /// After the mount: grows xfs mounted at `mount_point` (a `grow` span).
    pub(crate) async fn grow_after_mount(&self, grow: Grow, mount_point: &Path) -> Result<()> {
        let span = tracing::info_span!("grow", mount_point = %mount_point.display(), fs = grow.fs.as_str(), mode = "online");
        async {
            let result = Tool::XfsGrowfs
                .command()
                .arg(mount_point.display().to_string())
                .timeout(self.cfg.tool_timeout)
                .run_checked()
                .await;
            self.metrics
                .filesystem_grow(grow.fs.as_str(), "online", result.is_ok());
            result?;
            tracing::info!(
                from_bytes = grow.from_bytes,
                device_bytes = grow.device_bytes,
                "grew xfs to its device"
            );
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// A mount point of `device`, if the mount table shows it mounted anywhere.
    async fn mounted_anywhere(&self, device: &Path) -> Result<Option<PathBuf>> {
        let probe = device.to_path_buf();
        let devno = Node::blocking("inspecting", device, move || block_devno(&probe)).await?;
        let table = self.mount_table().await?;
        Ok(table
            .by_device(devno.major, devno.minor)
            .first()
            .map(|e| e.mount_point.clone()))
    }

    /// `e2fsck -f -p`, then `resize2fs`, on the unmounted `device`; measures the result.
    async fn grow_ext4_offline(&self, device: &Path) -> Result<Measured> {
        let target = device.display().to_string();
        let check = Tool::E2fsck
            .command()
            .args(["-f", "-p"])
            .arg(target.clone())
            .timeout(self.cfg.tool_timeout)
            .run()
            .await?;
        match check.exit_code {
            Some(0) => tracing::debug!("e2fsck found the filesystem clean"),
            Some(1) => tracing::warn!(
                output = %String::from_utf8_lossy(&check.stdout).trim(),
                "e2fsck corrected errors before the grow"
            ),
            _ => {
                let output = format!(
                    "{} {}",
                    String::from_utf8_lossy(&check.stdout).trim(),
                    check.stderr.trim()
                );
                return Err(HelperError::FilesystemCheck {
                    device: device.to_path_buf(),
                    status: check.status,
                    exit_code: check.exit_code,
                    output: trim_for_error(&output),
                });
            }
        }
        Tool::Resize2fs
            .command()
            .arg(target)
            .timeout(self.cfg.tool_timeout)
            .run_checked()
            .await?;
        self.measure_filesystem(device, FsType::Ext4).await
    }
}
