//! The CSI Identity service: the plugin's name, what it offers, and whether it is ready.
//!
//! Capabilities: CONTROLLER_SERVICE in controller and all modes; VolumeExpansion ONLINE
//! (volumes grow while attached and mounted) in every mode. Nothing else is advertised: no
//! accessibility constraints (every node reaches the appliance), no group controller and no
//! snapshot metadata service.

use rds_csi_proto::csi::identity_server::Identity;
use rds_csi_proto::csi::plugin_capability::{
    Service as ServiceCap, VolumeExpansion, service, volume_expansion,
};
use rds_csi_proto::csi::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, PluginCapability, ProbeRequest, ProbeResponse, plugin_capability,
};
use tonic::{Request, Response, Status};

use crate::relay::Relays;

pub struct IdentityService {
    driver_name: String,
    controller: bool,
    relays: Relays,
}

impl IdentityService {
    pub fn new(driver_name: String, controller: bool, relays: Relays) -> Self {
        IdentityService {
            driver_name,
            controller,
            relays,
        }
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        Ok(Response::new(GetPluginInfoResponse {
            name: self.driver_name.clone(),
            vendor_version: env!("CARGO_PKG_VERSION").to_string(),
            manifest: Default::default(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        let mut capabilities = Vec::new();
        if self.controller {
            capabilities.push(PluginCapability {
                r#type: Some(plugin_capability::Type::Service(ServiceCap {
                    r#type: service::Type::ControllerService as i32,
                })),
            });
        }
        capabilities.push(PluginCapability {
            r#type: Some(plugin_capability::Type::VolumeExpansion(VolumeExpansion {
                r#type: volume_expansion::Type::Online as i32,
            })),
        });
        Ok(Response::new(GetPluginCapabilitiesResponse {
            capabilities,
        }))
    }

    /// CSI spec, Probe errors: "Plugin not healthy — FAILED_PRECONDITION — indicates that
    /// the plugin is not in a healthy/ready state." Ready means the relay target this mode
    /// depends on answers its health check as ready; the message says which one is not.
    async fn probe(&self, _: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        match self.relays.ready().await {
            Ok(()) => Ok(Response::new(ProbeResponse { ready: Some(true) })),
            Err(reason) => Err(Status::failed_precondition(reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    async fn caps(controller: bool) -> Vec<PluginCapability> {
        let svc = IdentityService::new(
            "rds.csi.srvlab.io".into(),
            controller,
            Relays {
                gateway: None,
                helper: None,
            },
        );
        svc.get_plugin_capabilities(Request::new(GetPluginCapabilitiesRequest {}))
            .await
            .unwrap()
            .into_inner()
            .capabilities
    }

    fn has_controller(caps: &[PluginCapability]) -> bool {
        caps.iter().any(|c| {
            matches!(&c.r#type, Some(plugin_capability::Type::Service(s))
                if s.r#type == service::Type::ControllerService as i32)
        })
    }

    fn online(caps: &[PluginCapability]) -> bool {
        caps.iter().any(|c| {
            matches!(&c.r#type, Some(plugin_capability::Type::VolumeExpansion(v))
                if v.r#type == volume_expansion::Type::Online as i32)
        })
    }

    #[tokio::test]
    async fn plugin_capabilities_follow_the_mode() {
        let c = caps(true).await;
        assert!(has_controller(&c) && online(&c));
        assert_eq!(c.len(), 2, "nothing unsupported is advertised");
        let n = caps(false).await;
        assert!(!has_controller(&n) && online(&n));
        assert_eq!(n.len(), 1);
    }
}
