//! The CSI Identity service.

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
            capabilities.push(PluginCapability {
                r#type: Some(plugin_capability::Type::VolumeExpansion(VolumeExpansion {
                    r#type: volume_expansion::Type::Online as i32,
                })),
            });
        }
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
