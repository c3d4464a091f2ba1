//! What the plugin says it can do, asked once before the suite runs.
//!
//! Cases are selected from these answers, never from a list kept here, so the suite keeps
//! choosing the right cases when the frontend starts or stops advertising something.

use rds_csi_proto::csi::controller_service_capability::rpc::Type as ControllerRpc;
use rds_csi_proto::csi::group_controller_client::GroupControllerClient;
use rds_csi_proto::csi::group_controller_service_capability::rpc::Type as GroupRpc;
use rds_csi_proto::csi::identity_client::IdentityClient;
use rds_csi_proto::csi::node_service_capability::rpc::Type as NodeRpc;
use rds_csi_proto::csi::plugin_capability::service::Type as PluginService;
use rds_csi_proto::csi::plugin_capability::volume_expansion::Type as Expansion;
use rds_csi_proto::csi::{
    ControllerGetCapabilitiesRequest, GetPluginCapabilitiesRequest,
    GroupControllerGetCapabilitiesRequest, NodeGetCapabilitiesRequest, NodeGetInfoRequest,
    controller_service_capability, group_controller_service_capability, node_service_capability,
    plugin_capability,
};
use tonic::transport::Channel;

use crate::csi_client::Csi;

/// The advertised capabilities, as raw enum values (unknown values are kept, so the
/// capability cases can complain about them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertised {
    /// Plugin services advertised on any identity endpoint.
    pub plugin_services: Vec<i32>,
    /// Volume expansion kinds advertised on any identity endpoint.
    pub expansion: Vec<i32>,
    pub controller: Vec<i32>,
    pub group_controller: Vec<i32>,
    pub node: Vec<i32>,
    pub node_id: String,
    pub max_volumes_per_node: i64,
    pub has_topology: bool,
}

impl Advertised {
    pub fn has_plugin_service(&self, s: PluginService) -> bool {
        self.plugin_services.contains(&(s as i32))
    }

    pub fn has_controller(&self, c: ControllerRpc) -> bool {
        self.controller.contains(&(c as i32))
    }

    pub fn has_group_controller(&self, g: GroupRpc) -> bool {
        self.group_controller.contains(&(g as i32))
    }

    pub fn has_node(&self, n: NodeRpc) -> bool {
        self.node.contains(&(n as i32))
    }

    pub fn has_expansion(&self, e: Expansion) -> bool {
        self.expansion.contains(&(e as i32))
    }

    /// One line per service for the run's header.
    pub fn describe(&self) -> String {
        let plugin: Vec<&str> = self
            .plugin_services
            .iter()
            .map(|v| PluginService::try_from(*v).map_or("?", |t| t.as_str_name()))
            .chain(
                self.expansion
                    .iter()
                    .map(|v| Expansion::try_from(*v).map_or("?", |t| t.as_str_name())),
            )
            .collect();
        let controller: Vec<&str> = self
            .controller
            .iter()
            .map(|v| ControllerRpc::try_from(*v).map_or("?", |t| t.as_str_name()))
            .collect();
        let node: Vec<&str> = self
            .node
            .iter()
            .map(|v| NodeRpc::try_from(*v).map_or("?", |t| t.as_str_name()))
            .collect();
        format!(
            "plugin: {}\ncontroller: {}\nnode: {} (node id {:?}, max volumes {})",
            plugin.join(" "),
            controller.join(" "),
            node.join(" "),
            self.node_id,
            self.max_volumes_per_node
        )
    }

    /// Asks the plugin: identity on every socket, the controller (and group controller)
    /// when some identity endpoint offers that service, and the node.
    pub async fn query(
        csi: &Csi,
        controller_identity: Option<&IdentityClient<Channel>>,
        group: &GroupControllerClient<Channel>,
    ) -> Result<Advertised, String> {
        let mut adv = Advertised::default();
        let mut identities = vec![csi.identity.clone()];
        identities.extend(controller_identity.cloned());
        for mut id in identities {
            let caps = id
                .get_plugin_capabilities(GetPluginCapabilitiesRequest {})
                .await
                .map_err(|s| format!("GetPluginCapabilities: {}", s.message()))?
                .into_inner()
                .capabilities;
            for c in caps {
                match c.r#type {
                    Some(plugin_capability::Type::Service(s)) => {
                        push_unique(&mut adv.plugin_services, s.r#type)
                    }
                    Some(plugin_capability::Type::VolumeExpansion(e)) => {
                        push_unique(&mut adv.expansion, e.r#type)
                    }
                    None => {}
                }
            }
        }
        if adv.has_plugin_service(PluginService::ControllerService) {
            let caps = csi
                .controller
                .clone()
                .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
                .await
                .map_err(|s| format!("ControllerGetCapabilities: {}", s.message()))?
                .into_inner()
                .capabilities;
            for c in caps {
                if let Some(controller_service_capability::Type::Rpc(r)) = c.r#type {
                    push_unique(&mut adv.controller, r.r#type);
                }
            }
        }
        if adv.has_plugin_service(PluginService::GroupControllerService) {
            let caps = group
                .clone()
                .group_controller_get_capabilities(GroupControllerGetCapabilitiesRequest {})
                .await
                .map_err(|s| format!("GroupControllerGetCapabilities: {}", s.message()))?
                .into_inner()
                .capabilities;
            for c in caps {
                if let Some(group_controller_service_capability::Type::Rpc(r)) = c.r#type {
                    push_unique(&mut adv.group_controller, r.r#type);
                }
            }
        }
        let mut node = csi.node.clone();
        let caps = node
            .node_get_capabilities(NodeGetCapabilitiesRequest {})
            .await
            .map_err(|s| format!("NodeGetCapabilities: {}", s.message()))?
            .into_inner()
            .capabilities;
        for c in caps {
            if let Some(node_service_capability::Type::Rpc(r)) = c.r#type {
                push_unique(&mut adv.node, r.r#type);
            }
        }
        let info = node
            .node_get_info(NodeGetInfoRequest {})
            .await
            .map_err(|s| format!("NodeGetInfo: {}", s.message()))?
            .into_inner();
        adv.node_id = info.node_id;
        adv.max_volumes_per_node = info.max_volumes_per_node;
        adv.has_topology = info.accessible_topology.is_some();
        Ok(adv)
    }
}

fn push_unique(list: &mut Vec<i32>, v: i32) {
    if !list.contains(&v) {
        list.push(v);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn lookups_and_description_use_the_enum_values() {
        let adv = Advertised {
            plugin_services: vec![PluginService::ControllerService as i32],
            expansion: vec![Expansion::Online as i32],
            controller: vec![ControllerRpc::GetCapacity as i32, 999],
            group_controller: Vec::new(),
            node: vec![NodeRpc::StageUnstageVolume as i32],
            node_id: "n1".into(),
            max_volumes_per_node: 0,
            has_topology: false,
        };
        assert!(adv.has_controller(ControllerRpc::GetCapacity));
        assert!(!adv.has_controller(ControllerRpc::CloneVolume));
        assert!(adv.has_expansion(Expansion::Online));
        assert!(!adv.has_node(NodeRpc::GetVolumeStats));
        let text = adv.describe();
        assert!(text.contains("CONTROLLER_SERVICE ONLINE"), "{text}");
        assert!(text.contains("GET_CAPACITY ?"), "{text}");
        assert!(text.contains("STAGE_UNSTAGE_VOLUME"), "{text}");
    }
}
