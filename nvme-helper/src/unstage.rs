//! NodeUnstage: unmount the staging path, then disconnect — only what is ours and unused.
//!
//! Order and refusals: a filesystem still published somewhere (another mount of the same
//! device) is refused with `FAILED_PRECONDITION` before anything changes; the staging mount
//! is then removed (all stacked layers); before a disconnect, every namespace device of the NQN
//! must be unused (no mount, no bind-mounted node, no sysfs holder, an `O_EXCL` open succeeds),
//! or the call is refused with `FAILED_PRECONDITION` naming the users. Only NQNs under the
//! managed prefix are disconnected at all: a foreign NQN (a diskless node's root volume, say)
//! is left connected whatever the caller asks. The record goes last, so a crash anywhere in
//! between leaves enough behind for the retry. Every step is idempotent: a second unstage of
//! an unstaged volume succeeds.

use std::path::PathBuf;
use std::time::Instant;

use tracing::Instrument;

use crate::device_use::{mounts_of, users_of};
use crate::error::{HelperError, Result};
use crate::kubelet_path::SafePath;
use crate::mounts::{DevNo, entry_devno};
use crate::node::Node;
use crate::nqn::Nqn;

impl Node {
    /// Unstages a volume (guarded). `nqn`: from the caller, or `None` to use the record.
    pub async fn unstage(
        &self,
        volume_id: &str,
        staging: &SafePath,
        nqn: Option<Nqn>,
        caller_deadline: Option<Instant>,
    ) -> Result<()> {
        let started = Instant::now();
        let result = match self.guards.acquire(volume_id, "unstage") {
            Ok(_guard) => {
                self.unstage_guarded(volume_id, staging, nqn, caller_deadline)
                    .await
            }
            Err(e) => Err(e),
        };
        self.metrics.operation("unstage", started, &result);
        result
    }

    async fn unstage_guarded(
        &self,
        volume_id: &str,
        staging: &SafePath,
        nqn: Option<Nqn>,
        caller_deadline: Option<Instant>,
    ) -> Result<()> {
        let path = staging.as_path();
        let record = self.records.load(volume_id)?;
        let nqn = match nqn {
            Some(n) => Some(n),
            None => record
                .as_ref()
                .map(|r| Nqn::new(r.nqn.clone()))
                .transpose()?,
        };
        let table = self.mount_table().await?;
        if let Some(top) = table.top_at(path) {
            let devno: DevNo = entry_devno(top);
            let source = PathBuf::from(&top.source);
            let others = mounts_of(devno, &source, &table, Some(path));
            if !others.is_empty() {
                return Err(HelperError::DeviceInUse {
                    device: top.source.clone(),
                    users: others,
                });
            }
            self.unmount_path(path).await?;
        }
        match nqn {
            Some(nqn) if self.cfg.managed_prefix.manages(&nqn) => {
                self.disconnect_if_unused(&nqn, caller_deadline).await?;
            }
            Some(nqn) => {
                tracing::warn!(%nqn, prefix = %self.cfg.managed_prefix, "not disconnecting an NQN outside the managed prefix");
            }
            None => {
                tracing::info!(
                    volume_id,
                    "no NQN known for this volume; nothing to disconnect"
                );
            }
        }
        self.records.remove(volume_id)?;
        Ok(())
    }

    /// Disconnects `nqn` unless one of its namespace devices is in use (a `disconnect` span).
    pub(crate) async fn disconnect_if_unused(
        &self,
        nqn: &Nqn,
        caller_deadline: Option<Instant>,
    ) -> Result<usize> {
        let span = tracing::info_span!("disconnect", %nqn);
        async {
            let devices = self.fabric.namespace_devices(nqn).await?;
            let table = self.mount_table().await?;
            for device in devices {
                let (d, t, s) = (device.clone(), table.clone(), self.sysfs.clone());
                let users =
                    Node::blocking("checking", &device, move || users_of(&d, &t, &s, None)).await?;
                if !users.is_empty() {
                    return Err(HelperError::DeviceInUse {
                        device: device.display().to_string(),
                        users,
                    });
                }
            }
            let deadline = Node::deadline(caller_deadline, self.cfg.disconnect_timeout);
            let removed = self.fabric.disconnect(nqn, deadline).await?;
            tracing::info!(removed, "disconnected");
            Ok(removed)
        }
        .instrument(span)
        .await
    }
}
