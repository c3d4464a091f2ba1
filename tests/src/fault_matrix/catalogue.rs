//! The faults the matrix injects, each with a stable name for `--fault` and the table.
//!
//! - the appliance's connection dropped inside CreateVolume, DeleteVolume and CreateSnapshot,
//!   before the command is applied and after it (the answer lost);
//! - `kill -9` of the gateway, the helper, the controller frontend and the node frontend inside
//!   each lifecycle step they serve;
//! - the appliance answering `not enough space`;
//! - an appliance command hanging past the caller's deadline;
//! - the appliance restarting while volumes are staged and published;
//! - the loop device under a staged, published volume detached.

use crate::sim::{FaultAction, Verb};

use super::steps::Step;
use super::trial::{CONTROLLER, GATEWAY, HELPER, NODE};

/// The call a dropped connection lands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropCall {
    Create,
    Delete,
    Snapshot,
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The appliance closes the connection on `verb` inside `call`.
    Drop {
        call: DropCall,
        verb: Verb,
        action: FaultAction,
    },
    /// `kill -9` of `component` at a point inside `step`.
    Kill { component: &'static str, step: Step },
    /// The appliance answers `failure: not enough space` to a create and a snapshot.
    NoSpace,
    /// The appliance never answers a create (and a delete) until the caller's deadline.
    Hang,
    /// rds-sim killed and restarted under staged, published volumes.
    ApplianceRestart,
    /// The loop device of a staged, published volume detached under its mounts.
    LoopYank,
}

/// The short name of a component in fault names.
fn short(component: &str) -> &'static str {
    match component {
        GATEWAY => "gateway",
        HELPER => "helper",
        CONTROLLER => "controller",
        NODE => "node",
        _ => "component",
    }
}

impl Fault {
    pub fn name(&self) -> String {
        match self {
            Fault::Drop { call, verb, action } => {
                let call = match call {
                    DropCall::Create => "create",
                    DropCall::Delete => "delete",
                    DropCall::Snapshot => "snapshot",
                };
                let when = match action {
                    FaultAction::FailAfterApply => "-after-apply",
                    _ => "",
                };
                let on_file = if *verb == Verb::FileRemove {
                    "-file"
                } else {
                    ""
                };
                format!("drop-mid-{call}{on_file}{when}")
            }
            Fault::Kill { component, step } => {
                format!("kill-{}@{}", short(component), step.name())
            }
            Fault::NoSpace => "no-space".into(),
            Fault::Hang => "hang-past-deadline".into(),
            Fault::ApplianceRestart => "appliance-restart-staged".into(),
            Fault::LoopYank => "loop-device-yanked".into(),
        }
    }

    /// What the fault does, for `--list`.
    pub fn describe(&self) -> String {
        match self {
            Fault::Drop { call, verb, action } => format!(
                "the appliance drops the connection on {} ({}) inside {call:?}",
                verb.as_str(),
                match action {
                    FaultAction::FailAfterApply => "after applying it",
                    _ => "before applying it",
                }
            ),
            Fault::Kill { component, step } => format!(
                "kill -9 {component} at a seeded point inside {} (then restart, retry, converge)",
                step.rpc().name()
            ),
            Fault::NoSpace => {
                "the appliance answers `not enough space` to CreateVolume and CreateSnapshot".into()
            }
            Fault::Hang => "an appliance command hangs past a 2 s CSI deadline".into(),
            Fault::ApplianceRestart => {
                "rds-sim killed and restarted with two volumes staged and published".into()
            }
            Fault::LoopYank => {
                "the loop device under a staged, published volume detached (losetup -d)".into()
            }
        }
    }

    /// Every fault, in table order.
    pub fn all() -> Vec<Fault> {
        let mut out = vec![
            Fault::Drop {
                call: DropCall::Create,
                verb: Verb::DiskAdd,
                action: FaultAction::Drop,
            },
            Fault::Drop {
                call: DropCall::Create,
                verb: Verb::DiskAdd,
                action: FaultAction::FailAfterApply,
            },
            Fault::Drop {
                call: DropCall::Delete,
                verb: Verb::DiskRemove,
                action: FaultAction::Drop,
            },
            Fault::Drop {
                call: DropCall::Delete,
                verb: Verb::DiskRemove,
                action: FaultAction::FailAfterApply,
            },
            Fault::Drop {
                call: DropCall::Delete,
                verb: Verb::FileRemove,
                action: FaultAction::Drop,
            },
            Fault::Drop {
                call: DropCall::Snapshot,
                verb: Verb::DiskCopy,
                action: FaultAction::Drop,
            },
            Fault::Drop {
                call: DropCall::Snapshot,
                verb: Verb::DiskCopy,
                action: FaultAction::FailAfterApply,
            },
        ];
        for step in Step::LIFECYCLE {
            for component in serving(step) {
                out.push(Fault::Kill { component, step });
            }
        }
        out.extend([
            Fault::NoSpace,
            Fault::Hang,
            Fault::ApplianceRestart,
            Fault::LoopYank,
        ]);
        out
    }

    /// The faults whose name contains any of `filters` (all of them when there is none).
    pub fn matching(filters: &[String]) -> Vec<Fault> {
        Fault::all()
            .into_iter()
            .filter(|f| filters.is_empty() || filters.iter().any(|x| f.name().contains(x.as_str())))
            .collect()
    }
}

/// The components a step's call passes through (and so the ones worth killing inside it).
pub fn serving(step: Step) -> Vec<&'static str> {
    match step {
        Step::Create | Step::Publish | Step::Delete => vec![GATEWAY, CONTROLLER],
        Step::Unpublish => vec![CONTROLLER],
        Step::Stage | Step::NodePublish | Step::NodeUnpublish | Step::Unstage => vec![HELPER, NODE],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_and_filters_select_by_name() {
        let all = Fault::all();
        let names: BTreeSet<String> = all.iter().map(Fault::name).collect();
        assert_eq!(names.len(), all.len(), "{names:?}");
        assert!(names.contains("kill-helper@stage"));
        assert!(names.contains("drop-mid-delete-file"));
        assert!(names.contains("drop-mid-snapshot-after-apply"));
        let helper = Fault::matching(&["kill-helper".to_string()]);
        assert_eq!(helper.len(), 4);
        assert!(Fault::matching(&["no-such-fault".to_string()]).is_empty());
        assert_eq!(Fault::matching(&[]).len(), all.len());
    }

    #[test]
    fn every_component_is_killed_in_every_step_it_serves() {
        let kills: Vec<Fault> = Fault::all()
            .into_iter()
            .filter(|f| matches!(f, Fault::Kill { .. }))
            .collect();
        assert_eq!(kills.len(), 15);
        for c in [GATEWAY, HELPER, CONTROLLER, NODE] {
            assert!(
                kills
                    .iter()
                    .any(|f| matches!(f, Fault::Kill { component, .. } if *component == c)),
                "{c}"
            );
        }
    }
}
