//! The frontend's command line: every flag also reads an environment variable.

use clap::{Parser, ValueEnum};
use rds_csi_proto::component::CommonArgs;
use rds_csi_proto::endpoint::Endpoint;

/// Which CSI services this process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Identity and Controller, relaying to rds-gateway (the controller Deployment).
    Controller,
    /// Identity and Node, relaying to the local nvme-helper (the node DaemonSet).
    Node,
    /// Everything in one process (single-machine set-ups and tests).
    All,
}

impl Mode {
    pub fn controller(self) -> bool {
        matches!(self, Mode::Controller | Mode::All)
    }
    pub fn node(self) -> bool {
        matches!(self, Mode::Node | Mode::All)
    }
}

/// The CSI endpoint of rds-csi, a Kubernetes CSI driver for the MikroTik ROSE Data Server.
/// It runs unprivileged, validates every CSI call and relays it to rds-gateway (controller
/// mode) or to the node's nvme-helper (node mode).
#[derive(Debug, Parser)]
#[command(name = "csi-frontend", version, about, long_about = None)]
pub struct Args {
    /// Which CSI services to serve.
    #[arg(long, env = "CSI_MODE", value_enum, default_value = "all")]
    pub mode: Mode,
    /// The CSI socket kubelet and the sidecars connect to.
    #[arg(long, env = "CSI_ENDPOINT", default_value = "unix:///csi/csi.sock")]
    pub endpoint: Endpoint,
    /// The CSI driver name. The default is the one the older Go driver registered, so
    /// volumes it created stay addressable after a switch.
    #[arg(long, env = "CSI_DRIVER_NAME", default_value = "rds.csi.srvlab.io")]
    pub driver_name: String,
    /// This node's name as Kubernetes knows it (node mode).
    #[arg(long, env = "CSI_NODE_ID", default_value = "")]
    pub node_id: String,
    /// Where rds-gateway serves (controller mode).
    #[arg(
        long,
        env = "RDS_GATEWAY_ENDPOINT",
        default_value = "unix:///run/rds-csi/gateway.sock"
    )]
    pub gateway_endpoint: Endpoint,
    /// Where this node's nvme-helper serves (node mode).
    #[arg(
        long,
        env = "NVME_HELPER_ENDPOINT",
        default_value = "unix:///run/nvme-helper/helper.sock"
    )]
    pub helper_endpoint: Endpoint,
    /// Address of the HTTP server for /metrics, /healthz and /readyz (host:port or :port).
    #[arg(long, env = "CSI_METRICS_ADDRESS", default_value = ":9809")]
    pub metrics_address: String,
    #[command(flatten)]
    pub common: CommonArgs,
}
