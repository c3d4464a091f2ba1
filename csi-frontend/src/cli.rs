//! The frontend's command line: every flag also reads an environment variable.

use std::net::IpAddr;

use clap::{Parser, ValueEnum};
use rds_csi_proto::component::CommonArgs;
use rds_csi_proto::endpoint::Endpoint;

use crate::params::{self, ConnectOptions, Defaults, VolumePath};

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

/// Where the controller's attachment state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttachmentSource {
    /// Rebuilt at start from this driver's VolumeAttachment objects (read-only access).
    Kubernetes,
    /// A JSON file (`--attachment-store file:/path`), written atomically on every change.
    File,
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
    /// This node's name as Kubernetes knows it (node mode); empty means the host name.
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
    /// NVMe/TCP address of the appliance for StorageClasses without nvmeAddress (controller).
    #[arg(long, env = "RDS_CSI_DEFAULT_NVME_ADDRESS")]
    pub default_nvme_address: Option<IpAddr>,
    /// NVMe/TCP port for StorageClasses without nvmePort (controller).
    #[arg(long, env = "RDS_CSI_DEFAULT_NVME_PORT", default_value_t = 4420, value_parser = clap::value_parser!(u16).range(1..))]
    pub default_nvme_port: u16,
    /// Appliance directory of the backing files for StorageClasses without volumePath
    /// (controller). `--rds-volume-base-path` is the Go driver's name for it.
    #[arg(
        long,
        alias = "rds-volume-base-path",
        env = "RDS_CSI_DEFAULT_VOLUME_PATH",
        default_value = "/storage-pool/kubernetes-volumes",
        value_parser = VolumePath::parse
    )]
    pub default_volume_path: VolumePath,
    /// Live-migration window in seconds for volumes whose context names none (30-3600).
    #[arg(long, env = "RDS_CSI_DEFAULT_MIGRATION_TIMEOUT_SECONDS", default_value = "300", value_parser = params::parse_migration_timeout)]
    pub default_migration_timeout_seconds: u32,
    /// Most volumes the controller may publish to this node; 0 leaves it to the CO (node).
    #[arg(long, env = "CSI_MAX_VOLUMES_PER_NODE", default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    pub max_volumes_per_node: i64,
    /// Where attachment state comes from (controller). Unset: kubernetes inside a cluster
    /// (KUBERNETES_SERVICE_HOST is set), file otherwise.
    #[arg(long, env = "RDS_CSI_ATTACHMENT_SOURCE", value_enum)]
    pub attachment_source: Option<AttachmentSource>,
    /// The state file for `--attachment-source file`, as file:/absolute/path.json.
    #[arg(
        long,
        env = "RDS_CSI_ATTACHMENT_STORE",
        default_value = "file:/var/lib/rds-csi/attachments.json"
    )]
    pub attachment_store: String,
    /// Seconds between checks that forget attachments whose VolumeAttachment was deleted by
    /// hand (`--attachment-source kubernetes`); 0 disables them.
    #[arg(long, env = "RDS_CSI_ATTACHMENT_RESYNC_SECONDS", default_value_t = 300)]
    pub attachment_resync_seconds: u64,
    /// The node ids ControllerPublish may attach to, comma-separated, for
    /// `--attachment-source file` (outside a cluster); a publish to another node is NOT_FOUND.
    /// Empty: any node id is accepted. With `--attachment-source kubernetes` the CSINode
    /// objects decide instead.
    #[arg(long, env = "RDS_CSI_KNOWN_NODES", default_value = "")]
    pub known_nodes: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl Args {
    /// The attachment source to use: the flag, or the environment's guess.
    pub fn attachment_source(&self) -> AttachmentSource {
        self.attachment_source.unwrap_or_else(|| {
            if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
                AttachmentSource::Kubernetes
            } else {
                AttachmentSource::File
            }
        })
    }

    /// The controller's fallbacks for parameters a StorageClass leaves out.
    pub fn defaults(&self) -> Defaults {
        Defaults {
            nvme_address: self.default_nvme_address,
            nvme_port: self.default_nvme_port,
            volume_path: self.default_volume_path.clone(),
            migration_timeout_secs: self.default_migration_timeout_seconds,
            connect: ConnectOptions::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn defaults_and_go_driver_flag_names() {
        let a = Args::try_parse_from(["csi-frontend"]).unwrap();
        assert_eq!(a.default_nvme_port, 4420);
        assert_eq!(
            a.default_volume_path.as_str(),
            "/storage-pool/kubernetes-volumes"
        );
        assert_eq!(a.default_migration_timeout_seconds, 300);
        let a = Args::try_parse_from([
            "csi-frontend",
            "--rds-volume-base-path",
            "storage-pool/metal-csi",
            "--default-nvme-address",
            "10.42.68.1",
        ])
        .unwrap();
        assert_eq!(a.default_volume_path.as_str(), "/storage-pool/metal-csi");
        assert_eq!(a.defaults().nvme_address.unwrap().to_string(), "10.42.68.1");
    }

    #[test]
    fn bad_flag_values_are_refused() {
        for bad in [
            &["--default-volume-path", "/a/../b"][..],
            &["--default-nvme-port", "0"],
            &["--default-nvme-address", "rds.local"],
            &["--default-migration-timeout-seconds", "5"],
            &["--max-volumes-per-node", "-1"],
            &["--attachment-source", "etcd"],
        ] {
            let mut argv = vec!["csi-frontend"];
            argv.extend_from_slice(bad);
            assert!(Args::try_parse_from(argv).is_err(), "{bad:?}");
        }
    }
}
