//! The gateway's command line: every flag also reads an environment variable.

use clap::Parser;
use rds_csi_proto::component::CommonArgs;
use rds_csi_proto::endpoint::Endpoint;

/// Holds the SSH session to the MikroTik ROSE Data Server (RouterOS) and serves the
/// internal gateway API that the controller-mode csi-frontend relays volume, snapshot and
/// capacity calls to. It is the only rds-csi process that holds RDS credentials.
#[derive(Debug, Parser)]
#[command(name = "rds-gateway", version, about, long_about = None)]
pub struct Args {
    /// Where to serve the gateway API: unix:///path/to.sock, or tcp://host:port when the
    /// frontend runs in another pod.
    #[arg(
        long,
        env = "RDS_GATEWAY_ENDPOINT",
        default_value = "unix:///run/rds-csi/gateway.sock"
    )]
    pub endpoint: Endpoint,
    /// Address of the HTTP server for /metrics, /healthz and /readyz (host:port or :port).
    #[arg(long, env = "RDS_GATEWAY_METRICS_ADDRESS", default_value = ":9810")]
    pub metrics_address: String,
    #[command(flatten)]
    pub common: CommonArgs,
}
