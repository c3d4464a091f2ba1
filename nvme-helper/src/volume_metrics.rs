//! The helper's domain metrics, with the Go driver's names so that dashboards carry over.
//!
//! Counters and histograms are recorded by the operations. The node's NVMe connection gauge
//! is not a counter-derived number (the Go driver's read 0 with 16 volumes attached after a
//! restart): `ConnectionCollector` asks the fabric at scrape time, with sysfs reads only, so it
//! is right after a restart and a scrape never waits on the kernel's connect machinery.

use std::sync::Arc;
use std::time::Instant;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use crate::error::{HelperError, Result};
use crate::fabric::Fabric;
use crate::nqn::NqnPrefix;

/// Buckets for volume operations and connects: from a fast idempotent retry to a long mkfs.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The counters and histograms the operations record into.
#[derive(Clone)]
pub struct VolumeMetrics {
    operations: IntCounterVec,
    duration: HistogramVec,
    connects: IntCounterVec,
    connect_seconds: Histogram,
    stale_detected: IntCounter,
    stale_recoveries: IntCounterVec,
    filesystem_grows: IntCounterVec,
}

impl VolumeMetrics {
    /// Creates the families without registering them (tests, benches).
    pub fn new() -> std::result::Result<Self, prometheus::Error> {
        Ok(Self {
            operations: IntCounterVec::new(
                Opts::new(
                    "rds_csi_volume_operations_total",
                    "Node volume operations (stage, unstage, publish, unpublish, expand), by result.",
                ),
                &["operation", "status"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "rds_csi_volume_operation_duration_seconds",
                    "Time a node volume operation took, whatever its result.",
                )
                .buckets(BUCKETS.to_vec()),
                &["operation"],
            )?,
            connects: IntCounterVec::new(
                Opts::new(
                    "rds_csi_nvme_connects_total",
                    "NVMe connect attempts (an already connected target counts as success).",
                ),
                &["status"],
            )?,
            connect_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "rds_csi_nvme_connect_duration_seconds",
                    "Time an NVMe connect took.",
                )
                .buckets(BUCKETS.to_vec()),
            )?,
            stale_detected: IntCounter::new(
                "rds_csi_stale_mounts_detected_total",
                "Mounts found whose source is no longer the device their NQN resolves to.",
            )?,
            stale_recoveries: IntCounterVec::new(
                Opts::new(
                    "rds_csi_stale_recoveries_total",
                    "Stale staging mounts replaced by a mount of the current device, by result.",
                ),
                &["status"],
            )?,
            filesystem_grows: IntCounterVec::new(
                Opts::new(
                    "rds_csi_filesystem_grows_total",
                    "Runs of a filesystem grow to the device's size: offline at stage (ext4, before \
                     mounting), online at stage (xfs) or expand, by filesystem and result.",
                ),
                &["fs", "mode", "status"],
            )?,
        })
    }

    /// Creates and registers the families in `registry`.
    pub fn register(registry: &Registry) -> std::result::Result<Self, prometheus::Error> {
        let m = Self::new()?;
        registry.register(Box::new(m.operations.clone()))?;
        registry.register(Box::new(m.duration.clone()))?;
        registry.register(Box::new(m.connects.clone()))?;
        registry.register(Box::new(m.connect_seconds.clone()))?;
        registry.register(Box::new(m.stale_detected.clone()))?;
        registry.register(Box::new(m.stale_recoveries.clone()))?;
        registry.register(Box::new(m.filesystem_grows.clone()))?;
        Ok(m)
    }

    /// Records one operation's outcome and duration.
    pub fn operation<T>(&self, operation: &str, started: Instant, result: &Result<T>) {
        self.operations
            .with_label_values(&[operation, status_of(result)])
            .inc();
        self.duration
            .with_label_values(&[operation])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Records one connect attempt.
    pub fn connect<T>(&self, started: Instant, result: &Result<T>) {
        let status = if result.is_ok() { "success" } else { "failure" };
        self.connects.with_label_values(&[status]).inc();
        self.connect_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    /// Records a newly detected stale mount.
    pub fn stale_detected(&self) {
        self.stale_detected.inc();
    }

    /// Records a stale-mount recovery attempt.
    pub fn stale_recovery(&self, success: bool) {
        self.stale_recoveries
            .with_label_values(&[if success { "success" } else { "failure" }])
            .inc();
    }

    /// Records one filesystem grow (`mode`: `offline` or `online`).
    pub fn filesystem_grow(&self, fs: &str, mode: &str, success: bool) {
        self.filesystem_grows
            .with_label_values(&[fs, mode, if success { "success" } else { "failure" }])
            .inc();
    }

    /// Current value of `rds_csi_filesystem_grows_total{fs,mode,status}` (tests).
    pub fn filesystem_grow_count(&self, fs: &str, mode: &str, success: bool) -> u64 {
        self.filesystem_grows
            .with_label_values(&[fs, mode, if success { "success" } else { "failure" }])
            .get()
    }

    /// Current value of `rds_csi_volume_operations_total{operation,status}` (tests).
    pub fn operations_count(&self, operation: &str, status: &str) -> u64 {
        self.operations
            .with_label_values(&[operation, status])
            .get()
    }

    /// Current value of `rds_csi_stale_mounts_detected_total` (tests).
    pub fn stale_detected_count(&self) -> u64 {
        self.stale_detected.get()
    }

    /// Current value of `rds_csi_stale_recoveries_total{status}` (tests).
    pub fn stale_recovery_count(&self, success: bool) -> u64 {
        self.stale_recoveries
            .with_label_values(&[if success { "success" } else { "failure" }])
            .get()
    }
}

/// `success`, `aborted` (another call on the volume was running) or `failure`.
fn status_of<T>(result: &Result<T>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(HelperError::VolumeBusy { .. }) => "aborted",
        Err(_) => "failure",
    }
}

/// `rds_csi_node_nvme_connections{managed,state}`, read from the fabric at scrape time.
pub struct ConnectionCollector {
    fabric: Arc<dyn Fabric>,
    prefix: NqnPrefix,
    gauge: IntGaugeVec,
    descs: Vec<Desc>,
    /// Serialises scrapes: each one resets and refills the gauge.
    scrape: std::sync::Mutex<()>,
}

impl ConnectionCollector {
    /// A collector over `fabric`; `managed` tells our NQNs (under `prefix`) from others.
    pub fn new(
        fabric: Arc<dyn Fabric>,
        prefix: NqnPrefix,
    ) -> std::result::Result<Self, prometheus::Error> {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "rds_csi_node_nvme_connections",
                "NVMe connections on this node as the fabric reports them now, by whether their \
                 NQN is under the managed prefix and by controller state.",
            ),
            &["managed", "state"],
        )?;
        let descs = gauge.desc().into_iter().cloned().collect();
        Ok(Self {
            fabric,
            prefix,
            gauge,
            descs,
            scrape: std::sync::Mutex::new(()),
        })
    }
}

impl Collector for ConnectionCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one_at_a_time = self
            .scrape
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.gauge.reset();
        match self.fabric.scrape_connections() {
            Ok(connections) => {
                // Always expose the live series of our own volumes, even at zero.
                self.gauge.with_label_values(&["true", "live"]).set(0);
                for c in connections {
                    let managed = if self.prefix.manages(&c.nqn) {
                        "true"
                    } else {
                        "false"
                    };
                    self.gauge
                        .with_label_values(&[managed, c.state.as_str()])
                        .inc();
                }
            }
            Err(error) => {
                tracing::debug!(%error, "cannot read the fabric's connections for a scrape");
                return Vec::new();
            }
        }
        self.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::fabric::KernelFabric;
    use crate::fake_sysfs::FakeSysfs;

    #[test]
    fn the_gauge_is_read_from_sysfs_at_scrape_time() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSysfs::create(tmp.path().join("sys")).unwrap();
        let fabric: Arc<dyn Fabric> = Arc::new(KernelFabric::new(
            fake.root(),
            tmp.path().join("fabrics"),
            tmp.path(),
        ));
        let registry = Registry::new();
        registry
            .register(Box::new(
                ConnectionCollector::new(
                    fabric,
                    NqnPrefix::new("nqn.2000-02.com.mikrotik:").unwrap(),
                )
                .unwrap(),
            ))
            .unwrap();
        let value = |managed: &str, state: &str| -> Option<i64> {
            registry
                .gather()
                .iter()
                .find(|f| f.name() == "rds_csi_node_nvme_connections")?
                .get_metric()
                .iter()
                .find(|m| {
                    let labels: Vec<(&str, &str)> = m
                        .get_label()
                        .iter()
                        .map(|l| (l.name(), l.value()))
                        .collect();
                    labels.contains(&("managed", managed)) && labels.contains(&("state", state))
                })
                .map(|m| m.get_gauge().get_value() as i64)
        };
        assert_eq!(value("true", "live"), Some(0));
        fake.add_tcp_controller(
            1,
            "nqn.2000-02.com.mikrotik:pvc-1",
            "10.0.0.1",
            4420,
            "live",
        )
        .unwrap();
        fake.add_tcp_controller(
            2,
            "nqn.2000-02.com.mikrotik:pvc-2",
            "10.0.0.1",
            4420,
            "connecting",
        )
        .unwrap();
        fake.add_tcp_controller(
            3,
            "nqn.2014-08.org.nvmexpress:uuid:x",
            "10.0.0.2",
            4420,
            "live",
        )
        .unwrap();
        assert_eq!(value("true", "live"), Some(1));
        assert_eq!(value("true", "connecting"), Some(1));
        assert_eq!(value("false", "live"), Some(1));
        fake.remove_controller(1).unwrap();
        assert_eq!(value("true", "live"), Some(0));
    }

    #[test]
    fn operations_are_counted_by_status() {
        let m = VolumeMetrics::new().unwrap();
        let started = Instant::now();
        m.operation::<()>("stage", started, &Ok(()));
        m.operation::<()>(
            "stage",
            started,
            &Err(HelperError::VolumeBusy {
                volume_id: "v".into(),
                operation: "stage",
                running: "stage",
            }),
        );
        assert_eq!(m.operations_count("stage", "success"), 1);
        assert_eq!(m.operations_count("stage", "aborted"), 1);
        assert_eq!(m.operations_count("stage", "failure"), 0);
    }
}
