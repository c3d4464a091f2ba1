//! NodeGetVolumeStats: usage and the volume condition.
//!
//! A filesystem path reports `statvfs` bytes and inodes; a raw block path reports the device's
//! size from sysfs. The condition is abnormal when the device behind the path is gone, when
//! the NQN's controller is not live, or when the path's device is not the device the NQN
//! resolves to now (a stale mount left behind by a reconnect). The same check drives the
//! background stale-mount detector.

use std::path::{Path, PathBuf};

use crate::error::{HelperError, Result};
use crate::kubelet_path::SafePath;
use crate::mounts::{DevNo, block_devno, block_devno_at, entry_devno, kernel_name};
use crate::node::Node;
use crate::nqn::Nqn;
use crate::sysfs::ControllerState;

/// Usage numbers of a volume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Whether the path is a raw block device.
    pub block: bool,
    /// Total bytes.
    pub total_bytes: u64,
    /// Available bytes (to unprivileged users).
    pub available_bytes: u64,
    /// Used bytes.
    pub used_bytes: u64,
    /// Total inodes (0 for block).
    pub total_inodes: u64,
    /// Free inodes.
    pub available_inodes: u64,
    /// Used inodes.
    pub used_inodes: u64,
}

/// The volume condition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    /// Something is wrong.
    pub abnormal: bool,
    /// What is wrong is a stale mount: the device behind the path is gone or is not the NQN's
    /// device any more (a controller that is merely reconnecting is abnormal, not stale).
    pub stale: bool,
    /// What, or a short "healthy" note.
    pub message: String,
}

impl Condition {
    fn ok(message: impl Into<String>) -> Self {
        Self {
            abnormal: false,
            stale: false,
            message: message.into(),
        }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self {
            abnormal: true,
            stale: false,
            message: message.into(),
        }
    }
    fn stale(message: impl Into<String>) -> Self {
        Self {
            abnormal: true,
            stale: true,
            message: message.into(),
        }
    }
}

impl Node {
    /// Usage and condition of the volume at `path`.
    pub async fn stats(&self, volume_id: &str, path: &SafePath) -> Result<(Usage, Condition)> {
        let at = path.as_path().to_path_buf();
        let table = self.mount_table().await?;
        let Some(top) = table.top_at(&at).cloned() else {
            return Err(HelperError::VolumePathNotFound {
                volume_id: volume_id.to_string(),
                path: at,
            });
        };
        let probe = at.clone();
        let node_devno =
            Node::blocking("inspecting", &at, move || Ok(block_devno_at(&probe))).await?;
        let (usage, devno) = match node_devno {
            Some(devno) => {
                let sysfs_root = self.cfg.sysfs_root.clone();
                let sysfs = self.sysfs.clone();
                let size = Node::blocking("reading", &at, move || {
                    let name = kernel_name(&sysfs_root, devno).ok_or_else(|| {
                        HelperError::DeviceNotFound {
                            device: devno.to_string(),
                            path: sysfs_root.join("dev/block").join(devno.to_string()),
                        }
                    })?;
                    sysfs.device_size_bytes(&name)
                })
                .await;
                let total = match size {
                    Ok(s) => s,
                    // The device vanished under the bind mount: report it, do not fail.
                    Err(HelperError::DeviceNotFound { .. }) => 0,
                    Err(e) => return Err(e),
                };
                (
                    Usage {
                        block: true,
                        total_bytes: total,
                        ..Usage::default()
                    },
                    devno,
                )
            }
            None => {
                let probe = at.clone();
                let usage = Node::blocking("statvfs", &at, move || statvfs_usage(&probe)).await?;
                (usage, entry_devno(&top))
            }
        };
        let condition = self.condition(volume_id, devno).await;
        Ok((usage, condition))
    }

    /// Judges whether the device `devno` behind a volume path is the healthy current device of
    /// the volume's NQN (taken from its stage record).
    pub(crate) async fn condition(&self, volume_id: &str, devno: DevNo) -> Condition {
        let record = match self.records.load(volume_id) {
            Ok(Some(r)) => r,
            Ok(None) => return Condition::ok("no stage record; device checks skipped"),
            Err(e) => return Condition::bad(format!("stage record unreadable: {e}")),
        };
        let nqn = match Nqn::new(record.nqn.clone()) {
            Ok(n) => n,
            Err(e) => return Condition::bad(e.to_string()),
        };
        self.condition_for(&nqn, devno).await
    }

    /// The condition of a mount of `devno` that should be `nqn`'s device.
    pub(crate) async fn condition_for(&self, nqn: &Nqn, devno: DevNo) -> Condition {
        let states: Vec<ControllerState> = match self.fabric.connection_states(nqn).await {
            Ok(states) => states,
            Err(e) => return Condition::bad(format!("cannot list connections: {e}")),
        };
        let shown = || {
            states
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let reconnecting = states.iter().any(|s| {
            matches!(
                s,
                ControllerState::Connecting | ControllerState::Resetting | ControllerState::New
            )
        });
        let device: PathBuf = match self.current_device(nqn).await {
            Ok(Some(d)) => d,
            Ok(None) if reconnecting => {
                return Condition::bad(format!(
                    "{nqn} is reconnecting (state {}) and has no block device",
                    shown()
                ));
            }
            Ok(None) if states.is_empty() => {
                return Condition::stale(format!(
                    "the block device of {nqn} is gone (not connected)"
                ));
            }
            Ok(None) => {
                return Condition::stale(format!(
                    "the block device of {nqn} is gone (state {})",
                    shown()
                ));
            }
            Err(e) => return Condition::bad(format!("cannot resolve the device of {nqn}: {e}")),
        };
        if !states.contains(&ControllerState::Live) {
            return Condition::bad(format!(
                "no live controller for {nqn} (state {})",
                if states.is_empty() {
                    "none".to_string()
                } else {
                    shown()
                }
            ));
        }
        let probe = device.clone();
        match Node::blocking("inspecting", &device, move || block_devno(&probe)).await {
            Ok(current) if current == devno => {
                Condition::ok(format!("{} is live", device.display()))
            }
            Ok(current) => Condition::stale(format!(
                "stale: the volume path is backed by device {devno}, but {nqn} is {} ({current}) now",
                device.display()
            )),
            Err(e) => Condition::bad(e.to_string()),
        }
    }
}

/// `statvfs` numbers of a mounted filesystem.
pub fn statvfs_usage(path: &Path) -> Result<Usage> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|e| HelperError::Io {
        operation: "statvfs",
        path: path.to_path_buf(),
        source: std::io::Error::from(e),
    })?;
    let frsize = st.fragment_size();
    let blocks = st.blocks();
    let free = st.blocks_free();
    let avail = st.blocks_available();
    let total_bytes = blocks.saturating_mul(frsize);
    Ok(Usage {
        block: false,
        total_bytes,
        available_bytes: avail.saturating_mul(frsize),
        used_bytes: blocks.saturating_sub(free).saturating_mul(frsize),
        total_inodes: st.files(),
        available_inodes: st.files_free(),
        used_inodes: st.files().saturating_sub(st.files_free()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn statvfs_numbers_are_consistent() {
        let tmp = tempfile::tempdir().unwrap();
        let u = statvfs_usage(tmp.path()).unwrap();
        assert!(u.total_bytes > 0);
        assert!(u.used_bytes <= u.total_bytes);
        assert!(u.available_bytes <= u.total_bytes);
        assert!(!u.block);
        assert!(statvfs_usage(&tmp.path().join("missing")).is_err());
    }
}
