//! NodeExpandVolume: make the node see the grown device, then grow the filesystem on it.
//!
//! The appliance has already grown the backing file. The controller (or loop device) is
//! asked to rescan, the device's size in sysfs is polled until it reaches the requested size
//! (bounded by the caller's deadline), then ext4 is grown online with `resize2fs <device>` and
//! xfs with `xfs_growfs <mount point>` (xfs only grows through a mount). Without
//! `CAP_SYS_RESOURCE` ext4 cannot grow online: the answer is then success when the filesystem
//! already fills the device (stage grew it offline, see `grow`), else `FAILED_PRECONDITION`
//! saying the next stage will grow it. The answer is the device's real size, read back, never
//! the requested one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::error::{HelperError, Result};
use crate::external::Tool;
use crate::kubelet_path::SafePath;
use crate::mount_options::FsType;
use crate::mounts::{block_devno, entry_devno};
use crate::node::Node;
use crate::nqn::Nqn;

const SIZE_POLL: Duration = Duration::from_millis(50);
/// Capability number of `CAP_SYS_RESOURCE` (ext4 refuses online resize without it).
const CAP_SYS_RESOURCE: u32 = 24;

/// Whether this process has capability `cap` in its effective set (`CapEff` of
/// `/proc/self/status`). Unknown counts as present: the tool's own error then says why.
fn has_capability(cap: u32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true;
    };
    capability_in(&status, cap).unwrap_or(true)
}

/// Reads bit `cap` of the `CapEff:` line of a `/proc/<pid>/status` text.
fn capability_in(status: &str, cap: u32) -> Option<bool> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let mask = u64::from_str_radix(hex, 16).ok()?;
    Some(mask.checked_shr(cap).is_some_and(|m| m & 1 == 1))
}

/// A validated expand request.
#[derive(Debug, Clone)]
pub struct ExpandRequest {
    /// The CSI volume id.
    pub volume_id: String,
    /// The published path (may be empty-equivalent: `None`).
    pub volume_path: Option<SafePath>,
    /// The staging path, if known.
    pub staging: Option<SafePath>,
    /// The size the volume must reach (0: whatever it is now).
    pub required_bytes: u64,
    /// Raw block volume; `None`: as the volume was staged.
    pub block: Option<bool>,
}

impl Node {
    /// Expands a volume (guarded). Returns the device's size in bytes.
    pub async fn expand(
        &self,
        req: &ExpandRequest,
        caller_deadline: Option<Instant>,
    ) -> Result<u64> {
        let started = Instant::now();
        let result = match self.guards.acquire(&req.volume_id, "expand") {
            Ok(_guard) => self.expand_guarded(req, caller_deadline).await,
            Err(e) => Err(e),
        };
        self.metrics.operation("expand", started, &result);
        result
    }

    async fn expand_guarded(
        &self,
        req: &ExpandRequest,
        caller_deadline: Option<Instant>,
    ) -> Result<u64> {
        let record = self
            .records
            .load(&req.volume_id)?
            // CSI NodeExpandVolume: "Volume does not exist — NOT_FOUND — Indicates that a
            // volume corresponding to the specified volume_id does not exist on specified
            // volume_path." A volume this node never staged is not there.
            .ok_or_else(|| HelperError::VolumePathNotFound {
                volume_id: req.volume_id.clone(),
                path: req
                    .volume_path
                    .as_ref()
                    .or(req.staging.as_ref())
                    .map(|p| p.as_path().to_path_buf())
                    .unwrap_or_default(),
            })?;
        let nqn = Nqn::new(record.nqn.clone())?;
        self.fabric
            .rescan(&nqn)
            .instrument(tracing::info_span!("rescan", %nqn))
            .await?;
        let device = self
            .current_device(&nqn)
            .await?
            .ok_or_else(|| HelperError::NoDevice {
                nqn: nqn.to_string(),
            })?;
        let deadline = Node::deadline(caller_deadline, self.cfg.device_wait_timeout);
        let size = self
            .wait_for_size(&nqn, &device, req.required_bytes, deadline)
            .await?;
        let block = req
            .block
            .unwrap_or(record.access == crate::stage_record::RecordedAccess::Block);
        if block {
            return Ok(size);
        }
        let (mount_point, fs) = self
            .filesystem_mount_of(req, &record.staging_path, &device)
            .await?;
        let span =
            tracing::info_span!("grow_filesystem", device = %device.display(), fs = fs.as_str());
        async {
            if fs == FsType::Ext4 && !has_capability(CAP_SYS_RESOURCE) {
                // Without the capability only an offline grow (at stage) is possible: success
                // if one already made the filesystem fill the device, else say when it will be.
                let measured = self.measure_filesystem(&device, fs).await?;
                let fs_bytes = measured.geometry.size_bytes();
                if !measured.needs_grow() {
                    tracing::info!(
                        size,
                        fs_bytes,
                        "ext4 already fills its device (grown at stage)"
                    );
                    return Ok(size);
                }
                return Err(HelperError::OnlineGrowUnavailable {
                    volume_id: req.volume_id.clone(),
                    device: device.clone(),
                    fs_bytes,
                    device_bytes: measured.device_bytes,
                });
            }
            let command = match fs {
                FsType::Ext4 => Tool::Resize2fs.command().arg(device.display().to_string()),
                FsType::Xfs => Tool::XfsGrowfs
                    .command()
                    .arg(mount_point.display().to_string()),
            };
            let grown = command.timeout(self.cfg.tool_timeout).run_checked().await;
            self.metrics
                .filesystem_grow(fs.as_str(), "online", grown.is_ok());
            grown?;
            tracing::info!(size, "filesystem grown");
            Ok(size)
        }
        .instrument(span)
        .await
    }

    /// Polls the device's sysfs size until it is at least `required`.
    async fn wait_for_size(
        &self,
        nqn: &Nqn,
        device: &Path,
        required: u64,
        deadline: tokio::time::Instant,
    ) -> Result<u64> {
        let name = device
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| HelperError::InvalidDeviceName {
                device: device.display().to_string(),
            })?
            .to_string();
        loop {
            let size = self.sysfs.device_size_bytes(&name)?;
            if size >= required {
                return Ok(size);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(HelperError::DeadlineExceeded {
                    operation: "waiting for the grown size of",
                    target: format!(
                        "{nqn} ({} is {size} bytes, {required} required)",
                        device.display()
                    ),
                });
            }
            tokio::time::sleep(SIZE_POLL.min(deadline - now)).await;
        }
    }

    /// A mount point of `device` (the staging path first, then the volume path) and its type.
    async fn filesystem_mount_of(
        &self,
        req: &ExpandRequest,
        recorded_staging: &Path,
        device: &Path,
    ) -> Result<(PathBuf, FsType)> {
        let probe = device.to_path_buf();
        let devno = Node::blocking("inspecting", device, move || block_devno(&probe)).await?;
        let table = self.mount_table().await?;
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(s) = &req.staging {
            candidates.push(s.as_path().to_path_buf());
        }
        candidates.push(recorded_staging.to_path_buf());
        if let Some(v) = &req.volume_path {
            candidates.push(v.as_path().to_path_buf());
        }
        for path in candidates {
            if let Some(top) = table.top_at(&path)
                && entry_devno(top) == devno
            {
                let fs = top.fs_type.parse::<FsType>()?;
                return Ok((path, fs));
            }
        }
        Err(HelperError::VolumePathNotFound {
            volume_id: req.volume_id.clone(),
            path: req
                .volume_path
                .as_ref()
                .map(|v| v.as_path().to_path_buf())
                .unwrap_or_else(|| recorded_staging.to_path_buf()),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn capabilities_are_read_from_the_effective_set() {
        let full = "Name:\tx\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n";
        let no_resource = "CapPrm:\t000001ffffffffff\nCapEff:\t000001fffeffffff\n";
        assert_eq!(capability_in(full, CAP_SYS_RESOURCE), Some(true));
        assert_eq!(capability_in(no_resource, CAP_SYS_RESOURCE), Some(false));
        assert_eq!(capability_in(no_resource, 21), Some(true));
        assert_eq!(capability_in("CapEff:\tzz\n", 1), None);
        assert_eq!(capability_in("", 1), None);
    }
}
