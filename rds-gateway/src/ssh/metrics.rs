//! The transport's Prometheus metrics.
//!
//! Gauges are computed at scrape time from the pool's own state (a collector that asks the pool
//! for a snapshot), never kept by increments and decrements, so they cannot drift and are right
//! from the first scrape. Taking the snapshot locks the pool's bookkeeping for a moment; it never
//! waits on SSH.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `rds_csi_rds_connection_state` | gauge | 1 while at least one SSH session to the RDS is up, 0 otherwise |
//! | `rds_csi_rds_sessions_open` | gauge | SSH sessions up |
//! | `rds_csi_rds_channels_in_use` | gauge | commands running (exec channels open) |
//! | `rds_csi_rds_queue_depth` | gauge | commands waiting for a free channel |
//! | `rds_csi_rds_reconnect_total{status="success\|failure"}` | counter | connection attempts by outcome |
//! | `rds_csi_rds_session_teardowns_total{cause="disconnected\|health_check\|broken"}` | counter | sessions lost, by cause |

use prometheus::core::{Collector, Desc};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry, proto};

/// The pool's state as the gauges show it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// At least one session is up.
    pub connected: bool,
    /// Sessions up.
    pub sessions_open: usize,
    /// Commands running.
    pub channels_in_use: usize,
    /// Commands waiting.
    pub queued: usize,
}

/// Why a session was torn down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Teardown {
    /// The connection dropped.
    Disconnected,
    /// The liveness command failed or timed out.
    HealthCheck,
    /// A command found the connection unusable.
    Broken,
}

impl Teardown {
    /// The `cause` label value.
    pub fn label(self) -> &'static str {
        match self {
            Teardown::Disconnected => "disconnected",
            Teardown::HealthCheck => "health_check",
            Teardown::Broken => "broken",
        }
    }
}

/// The counters the pool increments.
#[derive(Debug, Clone)]
pub struct TransportMetrics {
    reconnects: IntCounterVec,
    teardowns: IntCounterVec,
}

impl TransportMetrics {
    /// Registers the counters.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let reconnects = IntCounterVec::new(
            Opts::new(
                "rds_csi_rds_reconnect_total",
                "SSH connection attempts to the RDS, by outcome.",
            ),
            &["status"],
        )?;
        let teardowns = IntCounterVec::new(
            Opts::new(
                "rds_csi_rds_session_teardowns_total",
                "SSH sessions to the RDS torn down, by cause.",
            ),
            &["cause"],
        )?;
        registry.register(Box::new(reconnects.clone()))?;
        registry.register(Box::new(teardowns.clone()))?;
        // Every label value exists from the start, so rate() and alerts work before the first event.
        reconnects.with_label_values(&["success"]);
        reconnects.with_label_values(&["failure"]);
        for cause in [
            Teardown::Disconnected,
            Teardown::HealthCheck,
            Teardown::Broken,
        ] {
            teardowns.with_label_values(&[cause.label()]);
        }
        Ok(TransportMetrics {
            reconnects,
            teardowns,
        })
    }

    /// Counts one connection attempt.
    pub fn reconnect(&self, success: bool) {
        let status = if success { "success" } else { "failure" };
        self.reconnects.with_label_values(&[status]).inc();
    }

    /// Counts one torn-down session.
    pub fn teardown(&self, cause: Teardown) {
        self.teardowns.with_label_values(&[cause.label()]).inc();
    }
}

type SnapshotFn = Box<dyn Fn() -> Option<Snapshot> + Send + Sync>;

/// The gauges, filled from a snapshot on every scrape.
struct StateCollector {
    connection_state: IntGauge,
    sessions_open: IntGauge,
    channels_in_use: IntGauge,
    queue_depth: IntGauge,
    snapshot: SnapshotFn,
}

impl StateCollector {
    fn gauges(&self) -> [&IntGauge; 4] {
        [
            &self.connection_state,
            &self.sessions_open,
            &self.channels_in_use,
            &self.queue_depth,
        ]
    }
}

fn as_gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for StateCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges().into_iter().flat_map(|g| g.desc()).collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        // A pool that is gone reads as disconnected and empty.
        let s = (self.snapshot)().unwrap_or_default();
        self.connection_state.set(i64::from(s.connected));
        self.sessions_open.set(as_gauge(s.sessions_open));
        self.channels_in_use.set(as_gauge(s.channels_in_use));
        self.queue_depth.set(as_gauge(s.queued));
        self.gauges()
            .into_iter()
            .flat_map(|g| g.collect())
            .collect()
    }
}

/// Registers the gauges; `snapshot` is called on every scrape (`None` when the pool is gone).
pub fn register_gauges(
    registry: &Registry,
    snapshot: impl Fn() -> Option<Snapshot> + Send + Sync + 'static,
) -> Result<(), prometheus::Error> {
    let collector = StateCollector {
        connection_state: IntGauge::new(
            "rds_csi_rds_connection_state",
            "1 while at least one SSH session to the RDS is up, 0 otherwise.",
        )?,
        sessions_open: IntGauge::new(
            "rds_csi_rds_sessions_open",
            "SSH sessions to the RDS that are up.",
        )?,
        channels_in_use: IntGauge::new(
            "rds_csi_rds_channels_in_use",
            "RouterOS commands running (exec channels open).",
        )?,
        queue_depth: IntGauge::new(
            "rds_csi_rds_queue_depth",
            "RouterOS commands waiting for a free SSH channel.",
        )?,
        snapshot: Box::new(snapshot),
    };
    registry.register(Box::new(collector))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::{Arc, Mutex};

    /// The value of the sample `series` (`name` or `name{label="v"}`) in the text exposition.
    fn value(registry: &Registry, series: &str) -> Option<f64> {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    #[test]
    fn gauges_follow_the_snapshot_at_scrape_time() {
        let registry = Registry::new();
        let shared = Arc::new(Mutex::new(Some(Snapshot {
            connected: true,
            sessions_open: 3,
            channels_in_use: 5,
            queued: 7,
        })));
        let source = shared.clone();
        register_gauges(&registry, move || *source.lock().unwrap()).unwrap();
        assert_eq!(value(&registry, "rds_csi_rds_connection_state"), Some(1.0));
        assert_eq!(value(&registry, "rds_csi_rds_sessions_open"), Some(3.0));
        assert_eq!(value(&registry, "rds_csi_rds_channels_in_use"), Some(5.0));
        assert_eq!(value(&registry, "rds_csi_rds_queue_depth"), Some(7.0));
        *shared.lock().unwrap() = None;
        assert_eq!(value(&registry, "rds_csi_rds_connection_state"), Some(0.0));
        assert_eq!(value(&registry, "rds_csi_rds_queue_depth"), Some(0.0));
    }

    #[test]
    fn counters_by_label_and_double_registration_fails() {
        let registry = Registry::new();
        let m = TransportMetrics::register(&registry).unwrap();
        m.reconnect(true);
        m.reconnect(false);
        m.reconnect(false);
        m.teardown(Teardown::HealthCheck);
        assert_eq!(
            value(&registry, "rds_csi_rds_reconnect_total{status=\"failure\"}"),
            Some(2.0)
        );
        assert_eq!(
            value(&registry, "rds_csi_rds_reconnect_total{status=\"success\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(
                &registry,
                "rds_csi_rds_session_teardowns_total{cause=\"health_check\"}"
            ),
            Some(1.0)
        );
        assert!(TransportMetrics::register(&registry).is_err());
    }
}
