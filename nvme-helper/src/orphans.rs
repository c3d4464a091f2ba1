//! Start-up cleanup of our own leftover connections.
//!
//! A helper that died between connect and mount, or a node that lost its stage records, leaves
//! NVMe connections nobody will unstage. At start-up, before serving, every connection whose NQN
//! is under the managed prefix, that no stage record claims, and whose devices are unused (not
//! mounted, not bind-mounted, no holders, an exclusive open succeeds) is disconnected. Nothing
//! else is touched: the Go driver's cleanup listed every NQN of the node and nearly took a
//! diskless node's root volume with it; here a foreign NQN is never even considered.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::error::{HelperError, Result};
use crate::node::Node;
use crate::nqn::Nqn;

/// What the cleanup did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// NQNs disconnected.
    pub disconnected: Vec<Nqn>,
    /// Our NQNs kept because a record claims them.
    pub staged: Vec<Nqn>,
    /// Our NQNs kept because a device is in use, with who uses it.
    pub in_use: Vec<(Nqn, String)>,
    /// NQNs outside the managed prefix (never touched).
    pub foreign: Vec<Nqn>,
    /// Our NQNs whose connections the fabric would not disconnect (not made by this helper,
    /// such as a loop device someone attached by hand).
    pub not_ours: Vec<Nqn>,
}

impl Node {
    /// Disconnects our unclaimed, unused connections (see the module doc).
    pub async fn cleanup_orphans(&self, deadline: Option<Instant>) -> Result<OrphanReport> {
        let mut report = OrphanReport::default();
        let claimed: BTreeSet<String> = self.records.all()?.into_iter().map(|r| r.nqn).collect();
        let nqns: BTreeSet<Nqn> = self
            .fabric
            .connections()
            .await?
            .into_iter()
            .map(|c| c.nqn)
            .collect();
        for nqn in nqns {
            if !self.cfg.managed_prefix.manages(&nqn) {
                report.foreign.push(nqn);
                continue;
            }
            if claimed.contains(nqn.as_str()) {
                report.staged.push(nqn);
                continue;
            }
            match self.disconnect_if_unused(&nqn, deadline).await {
                Ok(0) => {
                    tracing::info!(%nqn, "connection not made by this helper; left alone");
                    report.not_ours.push(nqn);
                }
                Ok(_) => {
                    tracing::info!(%nqn, "disconnected orphaned connection");
                    report.disconnected.push(nqn);
                }
                Err(HelperError::DeviceInUse { users, .. }) => {
                    tracing::info!(%nqn, ?users, "keeping a connection that is in use");
                    report.in_use.push((nqn, users.join("; ")));
                }
                Err(error) => {
                    tracing::warn!(%nqn, %error, "could not clean up an orphaned connection");
                }
            }
        }
        Ok(report)
    }
}
