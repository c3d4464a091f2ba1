//! The node: everything a volume operation needs, assembled once at start-up.
//!
//! `Node` holds the fabric (kernel or loop, behind `Arc<dyn Fabric>`), the kubelet directory
//! every path is checked against, the stage records, the per-volume guards, the metrics and
//! the configuration, and offers the steps the operations share: deadlines derived from the
//! caller's, connecting (timed and counted), waiting for the device, reading the mount table
//! and running blocking system calls off the async threads inside the current span. The
//! operations themselves live in their own modules (`stage`, `publish`, `unstage`, `stats`,
//! `expand`), each an `impl Node` block.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use crate::connect_spec::ConnectSpec;
use crate::error::{HelperError, Result};
use crate::fabric::Fabric;
use crate::host_identity::HostIdentity;
use crate::kubelet_path::KubeletDir;
use crate::mount_options::{FsType, parse_mkfs_options};
use crate::mountinfo::MountTable;
use crate::nqn::{Nqn, NqnPrefix};
use crate::stage_record::StageRecords;
use crate::sysfs::{ControllerRef, Sysfs};
use crate::volume_guard::VolumeGuards;
use crate::volume_metrics::VolumeMetrics;

/// How often the device is looked for while waiting for it.
const DEVICE_POLL: Duration = Duration::from_millis(25);

/// Settings of the node operations (from the command line).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Every path handed to the helper must lie under this directory.
    pub kubelet_dir: PathBuf,
    /// Where stage records are kept.
    pub state_dir: PathBuf,
    /// sysfs mount point.
    pub sysfs_root: PathBuf,
    /// Directory of device nodes.
    pub dev_root: PathBuf,
    /// The mount table to read (`/proc/self/mountinfo`).
    pub mountinfo: PathBuf,
    /// Only NQNs under this prefix are ever disconnected.
    pub managed_prefix: NqnPrefix,
    /// This host's NQN and id.
    pub identity: HostIdentity,
    /// This node's host name (node info).
    pub hostname: String,
    /// Longest wait for a device to appear after a connect (the caller's deadline may cut it).
    pub device_wait_timeout: Duration,
    /// Longest wait for a disconnect to complete.
    pub disconnect_timeout: Duration,
    /// Longest run of an external tool.
    pub tool_timeout: Duration,
    /// Default mkfs.ext4 options (validated at start-up).
    pub mkfs_ext4_options: String,
    /// Default mkfs.xfs options (validated at start-up).
    pub mkfs_xfs_options: String,
}

/// The assembled node.
pub struct Node {
    pub(crate) cfg: NodeConfig,
    pub(crate) fabric: Arc<dyn Fabric>,
    pub(crate) kubelet: KubeletDir,
    pub(crate) sysfs: Sysfs,
    pub(crate) records: StageRecords,
    pub(crate) guards: VolumeGuards,
    pub(crate) metrics: VolumeMetrics,
    /// Volumes currently known to have a stale mount, so that one is counted once.
    stale: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Node {
    /// Assembles the node: resolves the kubelet directory, opens the state directory and
    /// validates the default mkfs options, so that bad flags fail at start-up.
    pub fn new(cfg: NodeConfig, fabric: Arc<dyn Fabric>, metrics: VolumeMetrics) -> Result<Self> {
        let kubelet = KubeletDir::new(&cfg.kubelet_dir)?;
        let records = StageRecords::open(&cfg.state_dir)?;
        parse_mkfs_options(FsType::Ext4, &cfg.mkfs_ext4_options)?;
        parse_mkfs_options(FsType::Xfs, &cfg.mkfs_xfs_options)?;
        Ok(Self {
            sysfs: Sysfs::new(&cfg.sysfs_root),
            cfg,
            fabric,
            kubelet,
            records,
            guards: VolumeGuards::new(),
            metrics,
            stale: std::sync::Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    /// The kubelet directory paths are checked against.
    pub fn kubelet(&self) -> &KubeletDir {
        &self.kubelet
    }

    /// The fabric.
    pub fn fabric(&self) -> &Arc<dyn Fabric> {
        &self.fabric
    }

    /// The metrics.
    pub fn metrics(&self) -> &VolumeMetrics {
        &self.metrics
    }

    /// The stage records.
    pub fn records(&self) -> &StageRecords {
        &self.records
    }

    /// The per-volume guards (which volumes have an operation running).
    pub fn guards(&self) -> &VolumeGuards {
        &self.guards
    }

    /// `now + cap`, or the caller's deadline when that comes first.
    pub(crate) fn deadline(caller: Option<std::time::Instant>, cap: Duration) -> Instant {
        let own = Instant::now() + cap;
        match caller {
            Some(d) => own.min(Instant::from_std(d)),
            None => own,
        }
    }

    /// Runs short blocking work (see `offload`), inside the current span.
    pub(crate) async fn blocking<T: Send + 'static>(
        operation: &'static str,
        target: &Path,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        crate::offload::run(operation, target.display(), work).await?
    }

    /// The current mount table.
    pub(crate) async fn mount_table(&self) -> Result<MountTable> {
        let path = self.cfg.mountinfo.clone();
        Self::blocking("reading", &self.cfg.mountinfo, move || {
            MountTable::read(&path)
        })
        .await
    }

    /// Connects `spec` (idempotent), in a `connect` span, timed and counted.
    pub(crate) async fn connect(&self, spec: &ConnectSpec) -> Result<ControllerRef> {
        let span = tracing::info_span!("connect", nqn = %spec.nqn, traddr = %spec.traddr, trsvcid = spec.trsvcid);
        let started = std::time::Instant::now();
        let result = self.fabric.connect(spec).instrument(span).await;
        self.metrics.connect(started, &result);
        result
    }

    /// Waits until the namespace device of `nqn` exists, until `deadline`.
    pub(crate) async fn wait_for_device(&self, nqn: &Nqn, deadline: Instant) -> Result<PathBuf> {
        let span = tracing::info_span!("wait_for_device", %nqn);
        async {
            loop {
                if let Some(device) = self.fabric.resolve_device(nqn).await? {
                    tracing::debug!(device = %device.display(), "device present");
                    return Ok(device);
                }
                let now = Instant::now();
                if now >= deadline {
                    return Err(HelperError::DeadlineExceeded {
                        operation: "waiting for the block device of",
                        target: nqn.to_string(),
                    });
                }
                tokio::time::sleep(DEVICE_POLL.min(deadline - now)).await;
            }
        }
        .instrument(span)
        .await
    }

    /// Notes that `volume_id` has a stale mount; counts it the first time it is seen.
    pub(crate) fn note_stale(&self, volume_id: &str) {
        let mut set = self
            .stale
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if set.insert(volume_id.to_string()) {
            self.metrics.stale_detected();
        }
    }

    /// Notes that `volume_id` is healthy (or was repaired).
    pub(crate) fn note_healthy(&self, volume_id: &str) {
        self.stale
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(volume_id);
    }

    /// The device `nqn` resolves to now, without waiting.
    pub(crate) async fn current_device(&self, nqn: &Nqn) -> Result<Option<PathBuf>> {
        self.fabric.resolve_device(nqn).await
    }
}
