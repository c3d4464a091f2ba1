//! A CSI client for the testbed's tools and suites: the three services over the
//! frontend's sockets, and requests that start their own trace so that each step of a
//! scripted lifecycle can be found by its trace id.

use std::path::Path;

use rds_csi_proto::channel::connect_lazy;
use rds_csi_proto::csi::VolumeCapability;
use rds_csi_proto::csi::controller_client::ControllerClient;
use rds_csi_proto::csi::identity_client::IdentityClient;
use rds_csi_proto::csi::node_client::NodeClient;
use rds_csi_proto::csi::volume_capability::{
    AccessMode, AccessType, BlockVolume, MountVolume, access_mode,
};
use rds_csi_proto::endpoint::Endpoint;
use tonic::transport::Channel;

/// Clients of the three CSI services.
#[derive(Clone)]
pub struct Csi {
    pub identity: IdentityClient<Channel>,
    pub controller: ControllerClient<Channel>,
    pub node: NodeClient<Channel>,
}

impl Csi {
    /// Connects (lazily) to the node socket and the controller socket (may be the same).
    pub fn connect(node_socket: &Path, controller_socket: &Path) -> Result<Csi, String> {
        let node =
            connect_lazy(&Endpoint::Unix(node_socket.to_path_buf())).map_err(|e| e.to_string())?;
        let ctrl = connect_lazy(&Endpoint::Unix(controller_socket.to_path_buf()))
            .map_err(|e| e.to_string())?;
        Ok(Csi {
            identity: IdentityClient::new(node.clone()),
            controller: ControllerClient::new(ctrl),
            node: NodeClient::new(node),
        })
    }
}

/// A new sampled W3C trace context: the `traceparent` value and its trace id.
pub fn new_trace() -> (String, String) {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span: String = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
    (format!("00-{trace}-{span}-01"), trace)
}

/// `msg` as a request carrying `traceparent`.
pub fn traced<T>(msg: T, traceparent: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Ok(v) = traceparent.parse() {
        req.metadata_mut().insert("traceparent", v);
    }
    req
}

/// A filesystem capability.
pub fn mount_capability(fs_type: &str, mode: access_mode::Mode) -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: fs_type.to_string(),
            mount_flags: Vec::new(),
            volume_mount_group: String::new(),
        })),
    }
}

/// A raw block capability.
pub fn block_capability(mode: access_mode::Mode) -> VolumeCapability {
    VolumeCapability {
        access_mode: Some(AccessMode { mode: mode as i32 }),
        access_type: Some(AccessType::Block(BlockVolume {})),
    }
}
