//! The CSI Node service: validates each call and relays it to the node's nvme-helper.
//!
//! The frontend runs unprivileged and touches nothing on the node itself: it checks ids,
//! paths, capabilities and the volume/publish contexts, works out the NVMe/TCP target and the
//! filesystem, and hands the privileged helper one narrow typed request. The helper checks
//! paths and NQNs again against its own configuration before it acts.
//!
//! Advertised: STAGE_UNSTAGE_VOLUME, GET_VOLUME_STATS, EXPAND_VOLUME, VOLUME_CONDITION,
//! SINGLE_NODE_MULTI_WRITER. NodeGetInfo reports no accessible topology: every node that can
//! reach the appliance's NVMe/TCP portal can use every volume, so there is nothing to
//! constrain (and VOLUME_ACCESSIBILITY_CONSTRAINTS is not advertised).

use rds_csi_proto::channel::HopChannel;
use rds_csi_proto::csi::node_server::Node;
use rds_csi_proto::csi::node_service_capability::{self, rpc};
use rds_csi_proto::csi::{
    NodeExpandVolumeRequest, NodeExpandVolumeResponse, NodeGetCapabilitiesRequest,
    NodeGetCapabilitiesResponse, NodeGetInfoRequest, NodeGetInfoResponse,
    NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse, NodePublishVolumeRequest,
    NodePublishVolumeResponse, NodeServiceCapability, NodeStageVolumeRequest,
    NodeStageVolumeResponse, NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse,
    NodeUnstageVolumeRequest, NodeUnstageVolumeResponse, VolumeCondition, VolumeUsage,
    volume_usage,
};
use rds_csi_proto::helper::node_helper_client::NodeHelperClient;
use rds_csi_proto::helper::{self as hp, AccessType};
use tonic::{Request, Response, Status};

use crate::capabilities::{self, Access, AccessMode, Capability, Filesystem};
use crate::errors::{FrontendError, Peer, Subject, respond};
use crate::ids::{NodeId, VolumeId};
use crate::inflight::InFlight;
use crate::params::KubeNames;
use crate::paths;
use crate::volume_context::{self, PublishContext, VolumeContext};

type Result<T> = std::result::Result<T, FrontendError>;

/// The node service.
pub struct NodeService {
    helper: NodeHelperClient<HopChannel>,
    node_id: NodeId,
    max_volumes_per_node: i64,
    inflight: InFlight,
}

fn access_type(cap: &Capability) -> AccessType {
    match cap.access {
        Access::Block => AccessType::Block,
        Access::Mount { .. } => AccessType::Filesystem,
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn rpc_cap(t: rpc::Type) -> NodeServiceCapability {
    NodeServiceCapability {
        r#type: Some(node_service_capability::Type::Rpc(
            node_service_capability::Rpc { r#type: t as i32 },
        )),
    }
}

/// The node capabilities, exactly what this service implements.
pub fn capabilities() -> Vec<NodeServiceCapability> {
    [
        rpc::Type::StageUnstageVolume,
        rpc::Type::GetVolumeStats,
        rpc::Type::ExpandVolume,
        rpc::Type::VolumeCondition,
        rpc::Type::SingleNodeMultiWriter,
    ]
    .into_iter()
    .map(rpc_cap)
    .collect()
}

impl NodeService {
    pub fn new(
        helper: NodeHelperClient<HopChannel>,
        node_id: NodeId,
        max_volumes_per_node: i64,
    ) -> Self {
        NodeService {
            helper,
            node_id,
            max_volumes_per_node,
            inflight: InFlight::default(),
        }
    }

    fn hp(&self) -> NodeHelperClient<HopChannel> {
        self.helper.clone()
    }

    fn subject(&self, id: &VolumeId, pvc: Option<String>) -> Subject {
        Subject::volume(id).with_node(&self.node_id).with_pvc(pvc)
    }

    /// CSI spec, NodeStageVolume: "If the volume corresponding to the `volume_id` is already
    /// staged to the `staging_target_path`, and is identical to the specified
    /// `volume_capability` the Plugin MUST reply `0 OK`." (the helper makes it idempotent).
    async fn stage(&self, req: NodeStageVolumeRequest) -> Result<NodeStageVolumeResponse> {
        let id = VolumeId::parse("volume_id", &req.volume_id)?;
        let staging = paths::absolute("staging_target_path", &req.staging_target_path)?;
        let cap = capabilities::parse_one(req.volume_capability.as_ref())?;
        let subject = self.subject(&id, KubeNames::from_map(&req.volume_context).pvc());
        let context_err = |source| FrontendError::Context {
            subject: subject.clone(),
            source,
        };
        let vc = VolumeContext::parse(&id, &req.volume_context).map_err(context_err)?;
        let pc = PublishContext::parse(&id, &req.publish_context).map_err(context_err)?;
        let target = volume_context::resolve_target(&id, &pc, &vc).map_err(context_err)?;
        let filesystem = match &cap.access {
            Access::Block => None,
            Access::Mount {
                fs_type,
                mount_flags,
            } => {
                let fs = fs_type
                    .or(pc.fs_type)
                    .or(vc.fs_type)
                    .unwrap_or(Filesystem::Ext4);
                let mut mount_options = mount_flags.clone();
                mount_options.extend(vc.mount_options.iter().cloned());
                Some(hp::FilesystemSpec {
                    filesystem: fs.to_helper() as i32,
                    mkfs_options: vc.mkfs_options.clone(),
                    mount_options,
                })
            }
        };
        let _guard = self.inflight.begin("volume", id.as_str())?;
        let staged = self
            .hp()
            .stage(hp::StageRequest {
                volume_id: id.to_string(),
                target: Some(target.to_helper()),
                staging_path: staging,
                access_type: access_type(&cap) as i32,
                filesystem,
                read_only: cap.mode.read_only(),
            })
            .await
            .map_err(FrontendError::relay(
                Peer::Helper,
                "NodeStageVolume",
                &subject,
            ))?
            .into_inner();
        tracing::info!(volume = %id, device = %staged.device, formatted = staged.formatted, "staged");
        Ok(NodeStageVolumeResponse {})
    }

    async fn unstage(&self, req: NodeUnstageVolumeRequest) -> Result<NodeUnstageVolumeResponse> {
        let id = VolumeId::parse("volume_id", &req.volume_id)?;
        let staging = paths::absolute("staging_target_path", &req.staging_target_path)?;
        let subject = self.subject(&id, None);
        let _guard = self.inflight.begin("volume", id.as_str())?;
        self.hp()
            .unstage(hp::UnstageRequest {
                volume_id: id.to_string(),
                staging_path: staging,
                nqn: id.nqn(),
            })
            .await
            .map_err(FrontendError::relay(
                Peer::Helper,
                "NodeUnstageVolume",
                &subject,
            ))?;
        Ok(NodeUnstageVolumeResponse {})
    }

    /// CSI spec, NodePublishVolume errors: "Staging target path not set | 9
    /// FAILED_PRECONDITION | Indicates that `STAGE_UNSTAGE_VOLUME` capability is set but no
    /// `staging_target_path` was set."
    async fn publish(&self, req: NodePublishVolumeRequest) -> Result<NodePublishVolumeResponse> {
        let id = VolumeId::parse("volume_id", &req.volume_id)?;
        let target = paths::absolute("target_path", &req.target_path)?;
        let cap = capabilities::parse_one(req.volume_capability.as_ref())?;
        let subject = self.subject(&id, KubeNames::from_map(&req.volume_context).pvc());
        let Some(staging) =
            paths::optional_absolute("staging_target_path", &req.staging_target_path)?
        else {
            return Err(FrontendError::Precondition {
                subject,
                reason: "staging_target_path is not set, but this driver stages volumes (STAGE_UNSTAGE_VOLUME); NodeStageVolume must succeed first".into(),
            });
        };
        if staging == target {
            return Err(FrontendError::Path(paths::PathError::Invalid {
                field: "target_path",
                shown: crate::ids::shown(&target),
                reason: "must differ from staging_target_path",
            }));
        }
        let context_err = |source| FrontendError::Context {
            subject: subject.clone(),
            source,
        };
        VolumeContext::parse(&id, &req.volume_context).map_err(context_err)?;
        PublishContext::parse(&id, &req.publish_context).map_err(context_err)?;
        let _guard = self.inflight.begin("volume", id.as_str())?;
        self.hp()
            .publish(hp::PublishRequest {
                volume_id: id.to_string(),
                staging_path: staging,
                target_path: target,
                access_type: access_type(&cap) as i32,
                read_only: req.readonly || cap.mode.read_only(),
                mount_options: cap.mount_flags().to_vec(),
                single_target: cap.mode == AccessMode::SingleNodeSingleWriter,
            })
            .await
            .map_err(FrontendError::relay(
                Peer::Helper,
                "NodePublishVolume",
                &subject,
            ))?;
        Ok(NodePublishVolumeResponse {})
    }

    async fn unpublish(
        &self,
        req: NodeUnpublishVolumeRequest,
    ) -> Result<NodeUnpublishVolumeResponse> {
        let id = VolumeId::parse("volume_id", &req.volume_id)?;
        let target = paths::absolute("target_path", &req.target_path)?;
        let subject = self.subject(&id, None);
        let _guard = self.inflight.begin("volume", id.as_str())?;
        self.hp()
            .unpublish(hp::UnpublishRequest {
                volume_id: id.to_string(),
                target_path: target,
            })
            .await
            .map_err(FrontendError::relay(
                Peer::Helper,
                "NodeUnpublishVolume",
                &subject,
            ))?;
        Ok(NodeUnpublishVolumeResponse {})
    }

    /// CSI spec, NodeGetVolumeStatsRequest.volume_path: "It can be any valid path where
    /// volume was previously staged or published. It MUST be an absolute path in the root
    /// filesystem of the process serving this request. This is a REQUIRED field."
    async fn stats(&self, req: NodeGetVolumeStatsRequest) -> Result<NodeGetVolumeStatsResponse> {
        let id = VolumeId::parse("volume_id", &req.volume_id)?;
        let path = self.volume_path(&id, &req.volume_path)?;
        paths::optional_absolute("staging_target_path", &req.staging_target_path)?;
        let subject = self.subject(&id, None);
        let s = self
            .hp()
            .stats(hp::StatsRequest {
                volume_id: id.to_string(),
                volume_path: path,
            })
            .await
            .map_err(FrontendError::relay(
                Peer::Helper,
                "NodeGetVolumeStats",
                &subject,
            ))?
            .into_inner();
        let bytes = VolumeUsage {
            available: to_i64(s.available_bytes),
            total: to_i64(s.total_bytes),
            used: to_i64(s.used_bytes),
            unit: volume_usage::Unit::Bytes as i32,
        };
        let usage = if s.access_type == AccessType::Block as i32 {
            vec![VolumeUsage {
                available: 0,
                used: 0,
                ..bytes
            }]
        } else {
            vec![
                bytes,
                VolumeUsage {
                    available: to_i64(s.available_inodes),
                    total: to_i64(s.total_inodes),
                    used: to_i64(s.used_inodes),
                    unit: volume_usage::Unit::Inodes as i32,
                },
            ]
        };
        Ok(NodeGetVolumeStatsResponse {
            usage,
            volume_condition: Some(VolumeCondition {
                abnormal: s.abnormal,
                message: if s.condition_message.is_empty() && !s.abnormal {
                    "mounted and readable".into()
                } else {
                    s.condition_message
                },
            }),
        })
    }

    /// The `volume_path` of a stats or expand call. CSI: "Volume does not exist — NOT_FOUND —
    /// Indicates that a volume corresponding to the specified volume_id does not exist on
    /// specified volume_path": no volume is ever staged or published at a path that is not
    /// absolute, so such a path answers NOT_FOUND (an empty one is a missing argument).
    fn volume_path(&self, id: &VolumeId, raw: &str) -> Result<String> {
        match paths::absolute("volume_path", raw) {
            Ok(path) => Ok(path),
            Err(e) if raw.is_empty() => Err(e.into()),
            Err(_) => Err(FrontendError::NotFound {
                subject: self.subject(id, None),
                hint: "no volume is staged or published at that volume_path (it is not an absolute path)",
            }),
        }
    }

    async fn expand(&self, req: NodeExpandVolumeRequest) -> Result<NodeExpandVolumeResponse> {
        let id = VolumeId::parse("volume_id", &req.volume_id)?;
        let path = self.volume_path(&id, &req.volume_path)?;
        let staging = paths::optional_absolute("staging_target_path", &req.staging_target_path)?;
        let subject = self.subject(&id, None);
        let required = match req.capacity_range.as_ref() {
            Some(r) if r.required_bytes != 0 || r.limit_bytes != 0 => {
                capabilities::expand_size(Some(r))
                    .map_err(|source| FrontendError::Capacity {
                        subject: subject.clone(),
                        source,
                    })?
                    .bytes
            }
            // Unset: grow the filesystem to the size of the device.
            _ => 0,
        };
        let access = req
            .volume_capability
            .as_ref()
            .map(Capability::parse)
            .transpose()?
            .map(|c| access_type(&c))
            .unwrap_or(AccessType::Unspecified);
        let _guard = self.inflight.begin("volume", id.as_str())?;
        let r = self
            .hp()
            .expand(hp::ExpandRequest {
                volume_id: id.to_string(),
                volume_path: path,
                staging_path: staging.unwrap_or_default(),
                required_bytes: required,
                access_type: access as i32,
            })
            .await
            .map_err(FrontendError::relay(
                Peer::Helper,
                "NodeExpandVolume",
                &subject,
            ))?
            .into_inner();
        Ok(NodeExpandVolumeResponse {
            capacity_bytes: to_i64(r.size_bytes),
        })
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        request: Request<NodeStageVolumeRequest>,
    ) -> std::result::Result<Response<NodeStageVolumeResponse>, Status> {
        respond("NodeStageVolume", self.stage(request.into_inner()).await)
    }

    async fn node_unstage_volume(
        &self,
        request: Request<NodeUnstageVolumeRequest>,
    ) -> std::result::Result<Response<NodeUnstageVolumeResponse>, Status> {
        respond(
            "NodeUnstageVolume",
            self.unstage(request.into_inner()).await,
        )
    }

    async fn node_publish_volume(
        &self,
        request: Request<NodePublishVolumeRequest>,
    ) -> std::result::Result<Response<NodePublishVolumeResponse>, Status> {
        respond(
            "NodePublishVolume",
            self.publish(request.into_inner()).await,
        )
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<NodeUnpublishVolumeRequest>,
    ) -> std::result::Result<Response<NodeUnpublishVolumeResponse>, Status> {
        respond(
            "NodeUnpublishVolume",
            self.unpublish(request.into_inner()).await,
        )
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<NodeGetVolumeStatsRequest>,
    ) -> std::result::Result<Response<NodeGetVolumeStatsResponse>, Status> {
        respond("NodeGetVolumeStats", self.stats(request.into_inner()).await)
    }

    async fn node_expand_volume(
        &self,
        request: Request<NodeExpandVolumeRequest>,
    ) -> std::result::Result<Response<NodeExpandVolumeResponse>, Status> {
        respond("NodeExpandVolume", self.expand(request.into_inner()).await)
    }

    async fn node_get_capabilities(
        &self,
        _: Request<NodeGetCapabilitiesRequest>,
    ) -> std::result::Result<Response<NodeGetCapabilitiesResponse>, Status> {
        Ok(Response::new(NodeGetCapabilitiesResponse {
            capabilities: capabilities(),
        }))
    }

    /// CSI spec, NodeGetInfoResponse.max_volumes_per_node: "Maximum number of volumes that
    /// controller can publish to the node. If value is not set or zero CO SHALL decide how
    /// many volumes of this type can be published by the controller to the node."
    async fn node_get_info(
        &self,
        _: Request<NodeGetInfoRequest>,
    ) -> std::result::Result<Response<NodeGetInfoResponse>, Status> {
        Ok(Response::new(NodeGetInfoResponse {
            node_id: self.node_id.to_string(),
            max_volumes_per_node: self.max_volumes_per_node,
            accessible_topology: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn advertised_node_capabilities() {
        let caps: Vec<i32> = capabilities()
            .into_iter()
            .filter_map(|c| {
                c.r#type
                    .map(|node_service_capability::Type::Rpc(r)| r.r#type)
            })
            .collect();
        assert_eq!(caps.len(), 5);
        assert!(!caps.contains(&(rpc::Type::VolumeMountGroup as i32)));
    }
}
