//! The shape of a conformance case and the catalogue of all of them.
//!
//! A case is a name, the area of the CSI surface it exercises, the capabilities the plugin
//! must advertise for the case to apply, and an async function over a per-case [`Ctx`].
//! The catalogue is assembled from the per-area modules under `cases/`, in the order the
//! runner executes them.

use std::future::Future;
use std::pin::Pin;

use rds_csi_proto::csi::controller_service_capability::rpc::Type as ControllerRpc;
use rds_csi_proto::csi::group_controller_service_capability::rpc::Type as GroupRpc;
use rds_csi_proto::csi::node_service_capability::rpc::Type as NodeRpc;
use rds_csi_proto::csi::plugin_capability::service::Type as PluginService;

use super::caps::Advertised;
use super::context::Ctx;

/// What a case's future resolves to: `Err` carries the reason the case failed.
pub type CaseResult = Result<(), String>;

/// A boxed case future borrowing its context.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = CaseResult> + 'a>>;

/// The function behind a case.
pub type CaseFn = for<'a> fn(&'a Ctx) -> CaseFuture<'a>;

/// The part of the CSI surface a case exercises (a column of the report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Identity,
    Controller,
    Snapshot,
    Expansion,
    Group,
    Node,
    Lifecycle,
}

impl Area {
    pub fn name(self) -> &'static str {
        match self {
            Area::Identity => "identity",
            Area::Controller => "controller",
            Area::Snapshot => "snapshot",
            Area::Expansion => "expansion",
            Area::Group => "group",
            Area::Node => "node",
            Area::Lifecycle => "lifecycle",
        }
    }
}

/// One thing a case needs the plugin to advertise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A plugin service in GetPluginCapabilities (on either socket).
    Plugin(PluginService),
    /// An RPC capability in ControllerGetCapabilities.
    Controller(ControllerRpc),
    /// An RPC capability in GroupControllerGetCapabilities.
    GroupController(GroupRpc),
    /// An RPC capability in NodeGetCapabilities.
    Node(NodeRpc),
    /// A positive `max_volumes_per_node` in NodeGetInfo.
    NodeVolumeLimit,
}

impl Need {
    /// Whether `adv` satisfies this need.
    pub fn met(self, adv: &Advertised) -> bool {
        match self {
            Need::Plugin(s) => adv.has_plugin_service(s),
            Need::Controller(c) => adv.has_controller(c),
            Need::GroupController(g) => adv.has_group_controller(g),
            Need::Node(n) => adv.has_node(n),
            Need::NodeVolumeLimit => adv.max_volumes_per_node > 0,
        }
    }

    /// How the need is shown in a skip reason.
    pub fn label(self) -> String {
        match self {
            Need::Plugin(s) => format!("plugin {}", s.as_str_name()),
            Need::Controller(c) => format!("controller {}", c.as_str_name()),
            Need::GroupController(g) => format!("group controller {}", g.as_str_name()),
            Need::Node(n) => format!("node {}", n.as_str_name()),
            Need::NodeVolumeLimit => "node max_volumes_per_node > 0".to_string(),
        }
    }
}

/// One conformance case.
#[derive(Clone, Copy)]
pub struct Case {
    pub name: &'static str,
    pub area: Area,
    pub needs: &'static [Need],
    pub run: CaseFn,
}

impl Case {
    /// The needs `adv` does not satisfy (empty: the case applies).
    pub fn unmet(&self, adv: &Advertised) -> Vec<Need> {
        self.needs.iter().copied().filter(|n| !n.met(adv)).collect()
    }
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .field("area", &self.area)
            .field("needs", &self.needs)
            .finish()
    }
}

/// Builds a [`Case`] from an `async fn(&Ctx) -> CaseResult`.
macro_rules! case {
    ($area:expr, $name:expr, $needs:expr, $f:path) => {
        $crate::conformance::registry::Case {
            name: $name,
            area: $area,
            needs: $needs,
            run: {
                fn boxed<'a>(
                    ctx: &'a $crate::conformance::context::Ctx,
                ) -> $crate::conformance::registry::CaseFuture<'a> {
                    Box::pin($f(ctx))
                }
                boxed
            },
        }
    };
}
pub(crate) use case;

/// Every case, in the order they run.
pub fn all() -> Vec<Case> {
    let mut out = Vec::new();
    out.extend(super::cases::identity::cases());
    out.extend(super::cases::controller::cases());
    out.extend(super::cases::publish::cases());
    out.extend(super::cases::snapshots::cases());
    out.extend(super::cases::expansion::cases());
    out.extend(super::cases::modify::cases());
    out.extend(super::cases::group::cases());
    out.extend(super::cases::node::cases());
    out.extend(super::cases::lifecycle::cases());
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn names_are_unique_and_every_case_names_its_rpc() {
        let cases = all();
        assert!(cases.len() > 60, "only {} cases", cases.len());
        let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate case names");
        for c in &cases {
            assert!(c.name.contains(':'), "{} names no RPC", c.name);
        }
    }

    #[test]
    fn needs_follow_what_is_advertised() {
        let mut adv = Advertised::default();
        let need = [
            Need::Controller(ControllerRpc::CreateDeleteSnapshot),
            Need::Node(NodeRpc::StageUnstageVolume),
        ];
        let case = Case {
            name: "x: y",
            area: Area::Snapshot,
            needs: &[],
            run: |_| Box::pin(async { Ok(()) }),
        };
        let case = Case {
            needs: Box::leak(Box::new(need)),
            ..case
        };
        assert_eq!(case.unmet(&adv).len(), 2);
        adv.controller
            .push(ControllerRpc::CreateDeleteSnapshot as i32);
        assert_eq!(
            case.unmet(&adv),
            vec![Need::Node(NodeRpc::StageUnstageVolume)]
        );
        adv.node.push(NodeRpc::StageUnstageVolume as i32);
        assert!(case.unmet(&adv).is_empty());
        assert!(!Need::NodeVolumeLimit.met(&adv));
        adv.max_volumes_per_node = 3;
        assert!(Need::NodeVolumeLimit.met(&adv));
    }
}
