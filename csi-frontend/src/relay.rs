//! The frontend's clients to the components it relays to, and their readiness.

use std::time::Duration;

use rds_csi_proto::channel::{ChannelError, HopChannel, instrumented};
use rds_csi_proto::endpoint::Endpoint;
use rds_csi_proto::gateway::gateway_client::GatewayClient;
use rds_csi_proto::helper::node_helper_client::NodeHelperClient;
use rds_csi_proto::hop::HopMetrics;

/// How long a readiness check may wait for a relay target.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// The relay targets this process uses; `None` for a side its mode does not serve.
#[derive(Clone)]
pub struct Relays {
    pub gateway: Option<HopChannel>,
    pub helper: Option<NodeHelperClient<HopChannel>>,
}

impl Relays {
    pub fn connect(
        gateway: Option<&Endpoint>,
        helper: Option<&Endpoint>,
        metrics: &HopMetrics,
    ) -> Result<Self, ChannelError> {
        Ok(Relays {
            gateway: gateway
                .map(|e| instrumented(e, metrics.clone()))
                .transpose()?,
            helper: helper
                .map(|e| instrumented(e, metrics.clone()).map(NodeHelperClient::new))
                .transpose()?,
        })
    }

    /// `Ok` when every relay target this process needs is reachable and ready, otherwise
    /// the first reason it is not.
    pub async fn ready(&self) -> Result<(), String> {
        if let Some(gw) = &self.gateway {
            let mut gw = GatewayClient::new(gw.clone());
            let mut req = tonic::Request::new(rds_csi_proto::gateway::HealthRequest {});
            req.set_timeout(HEALTH_TIMEOUT);
            match gw.health(req).await {
                Ok(r) if r.get_ref().ready => {}
                Ok(r) => return Err(format!("rds-gateway is not ready: {}", r.get_ref().reason)),
                Err(s) => return Err(format!("rds-gateway is unreachable: {}", s.message())),
            }
        }
        if let Some(h) = &self.helper {
            let mut h = h.clone();
            let mut req = tonic::Request::new(rds_csi_proto::helper::HealthRequest {});
            req.set_timeout(HEALTH_TIMEOUT);
            match h.health(req).await {
                Ok(r) if r.get_ref().ready => {}
                Ok(r) => return Err(format!("nvme-helper is not ready: {}", r.get_ref().reason)),
                Err(s) => return Err(format!("nvme-helper is unreachable: {}", s.message())),
            }
        }
        Ok(())
    }
}
