//! The Prometheus families every RouterOS command is counted in, kept apart from the executor so
//! their names, labels and result vocabulary are defined once.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `rds_csi_routeros_commands_total` | counter | `verb`, `result` |
//! | `rds_csi_routeros_command_duration_seconds` | histogram | `verb` |
//!
//! `verb` is the command's short name (`disk-add`, `disk-print`, ...), never its line, so the
//! label set stays small and no path or NQN reaches the metrics.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::routeros::RosError;

/// Command latency buckets in seconds: a local simulator answers in a millisecond, a busy
/// appliance copying a large disk may take minutes.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// The `result` label of a successful command.
pub const SUCCESS: &str = "success";

/// The `result` label of a failed command: one word per error kind.
pub fn result_label(err: &RosError) -> &'static str {
    match err {
        RosError::NotFound { .. } => "not_found",
        RosError::AlreadyExists { .. } => "already_exists",
        RosError::NoSpace { .. } => "no_space",
        RosError::Busy { .. } => "busy",
        RosError::Transport { .. } => "transport",
        RosError::Timeout { .. } => "timeout",
        RosError::Rejected { .. } => "rejected",
        RosError::PermissionDenied { .. } => "permission_denied",
        RosError::Unparseable { .. } => "unparseable",
        RosError::InvalidInput { .. } => "invalid_input",
    }
}

/// The two command families.
#[derive(Debug, Clone)]
pub struct CommandMetrics {
    commands: IntCounterVec,
    seconds: HistogramVec,
}

impl CommandMetrics {
    /// Registers both families in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let commands = IntCounterVec::new(
            Opts::new(
                "rds_csi_routeros_commands_total",
                "RouterOS commands run by the gateway, by verb and result.",
            ),
            &["verb", "result"],
        )?;
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                "rds_csi_routeros_command_duration_seconds",
                "Time from sending a RouterOS command to having its decoded result, by verb.",
            )
            .buckets(BUCKETS.to_vec()),
            &["verb"],
        )?;
        registry.register(Box::new(commands.clone()))?;
        registry.register(Box::new(seconds.clone()))?;
        Ok(CommandMetrics { commands, seconds })
    }

    /// Records one command.
    pub fn observe(&self, verb: &str, result: &str, took: Duration) {
        self.commands.with_label_values(&[verb, result]).inc();
        self.seconds
            .with_label_values(&[verb])
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::routeros::Subject;

    fn sample(registry: &Registry, series: &str) -> Option<f64> {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        text.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    #[test]
    fn counts_by_verb_and_result() {
        let registry = Registry::new();
        let m = CommandMetrics::register(&registry).unwrap();
        m.observe("disk-add", SUCCESS, Duration::from_millis(3));
        m.observe("disk-add", SUCCESS, Duration::from_millis(4));
        let err = RosError::timeout("disk-add", Subject::None, Duration::from_secs(1));
        m.observe("disk-add", result_label(&err), Duration::from_secs(1));
        assert_eq!(
            sample(
                &registry,
                "rds_csi_routeros_commands_total{result=\"success\",verb=\"disk-add\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &registry,
                "rds_csi_routeros_commands_total{result=\"timeout\",verb=\"disk-add\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &registry,
                "rds_csi_routeros_command_duration_seconds_count{verb=\"disk-add\"}"
            ),
            Some(3.0)
        );
        assert!(CommandMetrics::register(&registry).is_err());
    }
}
