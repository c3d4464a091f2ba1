//! The helper's command line: every flag also reads an environment variable.

use clap::Parser;
use rds_csi_proto::component::CommonArgs;
use rds_csi_proto::endpoint::Endpoint;

/// The privileged node agent of rds-csi: connects NVMe/TCP volumes of a MikroTik ROSE
/// Data Server, formats only provably blank devices, and mounts them for kubelet. It
/// serves a narrow API on a unix socket that only the node-mode csi-frontend uses.
#[derive(Debug, Parser)]
#[command(name = "nvme-helper", version, about, long_about = None)]
pub struct Args {
    /// Where to serve the helper API (a unix socket: unix:///path/to.sock).
    #[arg(
        long,
        env = "NVME_HELPER_ENDPOINT",
        default_value = "unix:///run/nvme-helper/helper.sock"
    )]
    pub endpoint: Endpoint,
    /// Address of the HTTP server for /metrics, /healthz and /readyz (host:port or :port).
    #[arg(long, env = "NVME_HELPER_METRICS_ADDRESS", default_value = ":9811")]
    pub metrics_address: String,
    #[command(flatten)]
    pub common: CommonArgs,
}
