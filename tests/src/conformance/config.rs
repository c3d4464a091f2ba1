//! The knobs of a conformance run, with defaults sized for the testbed.
//!
//! csi-sanity's own defaults (10 GiB volumes, +1 GiB on expansion) would not fit the
//! simulated pool when the snapshot pagination case holds five volumes and five snapshots,
//! each reserved at full size; like csi-sanity's `--csi.testvolumesize`, the sizes are
//! configuration, not part of what is checked.

use std::collections::HashMap;
use std::time::Duration;

const MIB: i64 = 1 << 20;

/// How the suite runs.
#[derive(Debug, Clone)]
pub struct SuiteConfig {
    /// Size of the volumes cases create (`capacity_range.required_bytes`).
    pub volume_size: i64,
    /// Size expansion cases grow a volume to.
    pub expand_size: i64,
    /// How often the idempotency cases repeat each call.
    pub idempotent_count: usize,
    /// How often the full lifecycle case runs from create to delete.
    pub lifecycle_rounds: usize,
    /// StorageClass parameters sent with CreateVolume.
    pub volume_parameters: HashMap<String, String>,
    /// VolumeSnapshotClass parameters sent with CreateSnapshot.
    pub snapshot_parameters: HashMap<String, String>,
    /// VolumeAttributesClass parameters the ModifyVolume cases send.
    pub mutable_parameters: HashMap<String, String>,
    /// Longest a single CSI call may take before the case fails.
    pub call_timeout: Duration,
    /// Longest a whole case (without its cleanup) may take.
    pub case_timeout: Duration,
    /// Another node the controller accepts (csi-sanity needs a second real node for the
    /// cases that publish a single-node volume to two nodes); those cases are skipped when
    /// it is not set.
    pub second_node_id: Option<String>,
    /// When set, only cases whose name contains this text run; the others are reported as
    /// not run (a debugging aid, never set in CI).
    pub filter: Option<String>,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        SuiteConfig {
            volume_size: 256 * MIB,
            expand_size: 512 * MIB,
            idempotent_count: 3,
            lifecycle_rounds: 3,
            volume_parameters: HashMap::new(),
            snapshot_parameters: HashMap::new(),
            mutable_parameters: HashMap::new(),
            call_timeout: Duration::from_secs(120),
            case_timeout: Duration::from_secs(600),
            second_node_id: None,
            filter: None,
        }
    }
}

impl SuiteConfig {
    /// Whether the case called `name` is selected by the filter.
    pub fn selects(&self, name: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| name.contains(f))
    }
}
