//! The `NodeHelper` gRPC service: turns each request into a validated, typed operation on the
//! `Node`, and each failure into a status exactly once, through `HelperError::code`.
//!
//! Validation happens here, before anything touches the kernel: every path must be a `SafePath`
//! under the kubelet directory (`INVALID_ARGUMENT` otherwise), NQNs and addresses must parse,
//! options must pass their allow-lists. Each per-volume operation then runs in a task of its
//! own that keeps the volume's guard until the work is done, even if the caller gives up: a
//! cancelled call must not kill a running mkfs halfway, and its retry gets `ABORTED` until the
//! first attempt has finished. The caller's deadline (from the hop layer's `CallContext`) bounds
//! the waits (device, disconnect, size), and the task runs inside the call's span so that every
//! step is a child span of the gRPC server span.

use std::net::IpAddr;
use std::sync::Arc;

use rds_csi_proto::helper::node_helper_server::NodeHelper;
use rds_csi_proto::helper::{
    AccessType, ExpandRequest, ExpandResponse, Filesystem, HealthRequest, HealthResponse,
    NodeInfoRequest, NodeInfoResponse, PublishRequest, PublishResponse, StageRequest,
    StageResponse, StatsRequest, StatsResponse, Target, UnpublishRequest, UnpublishResponse,
    UnstageRequest, UnstageResponse,
};
use rds_csi_proto::hop::CallContext;
use rds_csi_proto::metrics_server::Readiness;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::connect_spec::ConnectSpec;
use crate::error::{HelperError, Result};
use crate::expand;
use crate::kubelet_path::SafePath;
use crate::mount_options::FsType;
use crate::node::Node;
use crate::nqn::Nqn;
use crate::publish;
use crate::stage::{self, FilesystemVolume, VolumeKind};
use crate::stage_record::encode_volume_id;

/// The service.
#[derive(Clone)]
pub struct HelperService {
    node: Arc<Node>,
    readiness: Readiness,
}

impl HelperService {
    /// A service over `node`; `readiness` is what Health reports.
    pub fn new(node: Arc<Node>, readiness: Readiness) -> Self {
        Self { node, readiness }
    }

    /// The node behind the service.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    fn path(&self, field: &'static str, raw: &str) -> Result<SafePath> {
        if raw.is_empty() {
            return Err(HelperError::InvalidRequest {
                field,
                reason: "it is empty".into(),
            });
        }
        SafePath::new(raw, self.node.kubelet())
    }

    fn optional_path(&self, field: &'static str, raw: &str) -> Result<Option<SafePath>> {
        if raw.is_empty() {
            Ok(None)
        } else {
            self.path(field, raw).map(Some)
        }
    }

    fn stage_request(&self, req: StageRequest) -> Result<stage::StageRequest> {
        volume_id(&req.volume_id)?;
        let target = req.target.ok_or(HelperError::InvalidRequest {
            field: "target",
            reason: "it is missing".into(),
        })?;
        let spec = self.connect_spec(&target)?;
        let staging = self.path("staging_path", &req.staging_path)?;
        let kind = match AccessType::try_from(req.access_type) {
            Ok(AccessType::Block) => VolumeKind::Block,
            Ok(AccessType::Filesystem) => {
                let fs = req.filesystem.unwrap_or_default();
                let fs_type = match Filesystem::try_from(fs.filesystem) {
                    Ok(Filesystem::Ext4 | Filesystem::Unspecified) => FsType::Ext4,
                    Ok(Filesystem::Xfs) => FsType::Xfs,
                    Err(_) => {
                        return Err(HelperError::InvalidRequest {
                            field: "filesystem.filesystem",
                            reason: format!("{} is not a known filesystem", fs.filesystem),
                        });
                    }
                };
                let volume = FilesystemVolume {
                    fs: fs_type,
                    mkfs_options: (!fs.mkfs_options.is_empty()).then(|| fs.mkfs_options.join(" ")),
                    mount_options: fs.mount_options,
                };
                // Fail on a bad option now, not after connecting.
                volume.parsed_mount_options()?;
                if let Some(m) = &volume.mkfs_options {
                    crate::mount_options::parse_mkfs_options(fs_type, m)?;
                }
                VolumeKind::Filesystem(volume)
            }
            _ => {
                return Err(HelperError::InvalidRequest {
                    field: "access_type",
                    reason: "it must be block or filesystem".into(),
                });
            }
        };
        Ok(stage::StageRequest {
            volume_id: req.volume_id,
            spec,
            staging,
            kind,
            read_only: req.read_only,
        })
    }

    fn connect_spec(&self, target: &Target) -> Result<ConnectSpec> {
        let nqn = Nqn::new(target.nqn.clone())?;
        let traddr: IpAddr = target
            .address
            .parse()
            .map_err(|_| HelperError::InvalidRequest {
                field: "target.address",
                reason: format!("{:?} is not an IP address", target.address),
            })?;
        let trsvcid = u16::try_from(target.port).ok().filter(|p| *p != 0).ok_or(
            HelperError::InvalidRequest {
                field: "target.port",
                reason: format!("{} is not a TCP port", target.port),
            },
        )?;
        let identity = &self.node.config().identity;
        let mut spec = ConnectSpec::new(
            traddr,
            trsvcid,
            nqn,
            identity.hostnqn.clone(),
            identity.hostid,
        );
        // Zero is proto3's "not set": keep the defaults.
        if target.ctrl_loss_tmo != 0 {
            spec.ctrl_loss_tmo = target.ctrl_loss_tmo;
        }
        if target.reconnect_delay != 0 {
            spec.reconnect_delay = target.reconnect_delay;
        }
        if target.keep_alive_tmo != 0 {
            spec.keep_alive_tmo = target.keep_alive_tmo;
        }
        spec.validate()?;
        Ok(spec)
    }
}

/// Checks a volume id (it names a record file).
fn volume_id(id: &str) -> Result<()> {
    encode_volume_id(id).map(drop)
}

/// The one place a `HelperError` becomes a `Status`.
fn status(err: HelperError) -> Status {
    let code = err.code();
    if matches!(
        code,
        tonic::Code::Internal | tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
    ) {
        tracing::warn!(error = %err, ?code, "call failed");
    } else {
        tracing::info!(error = %err, ?code, "call refused");
    }
    Status::new(code, err.to_string())
}

fn caller_deadline() -> Option<std::time::Instant> {
    CallContext::current().and_then(|c| c.deadline)
}

/// Runs `work` in its own task (in the current span) and waits for it: the work finishes even
/// when the caller goes away.
async fn detached<T: Send + 'static>(
    operation: &'static str,
    target: String,
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(work.instrument(tracing::Span::current()))
        .await
        .map_err(|e| HelperError::Task {
            operation,
            target,
            reason: e.to_string(),
        })?
}

#[tonic::async_trait]
impl NodeHelper for HelperService {
    async fn stage(
        &self,
        request: Request<StageRequest>,
    ) -> Result<Response<StageResponse>, Status> {
        let req = self.stage_request(request.into_inner()).map_err(status)?;
        let deadline = caller_deadline();
        let node = self.node.clone();
        let id = req.volume_id.clone();
        let outcome = detached(
            "staging",
            id,
            async move { node.stage(&req, deadline).await },
        )
        .await
        .map_err(status)?;
        Ok(Response::new(StageResponse {
            device: outcome.device.display().to_string(),
            formatted: outcome.formatted,
        }))
    }

    async fn unstage(
        &self,
        request: Request<UnstageRequest>,
    ) -> Result<Response<UnstageResponse>, Status> {
        let req = request.into_inner();
        volume_id(&req.volume_id).map_err(status)?;
        let staging = self
            .path("staging_path", &req.staging_path)
            .map_err(status)?;
        let nqn = if req.nqn.is_empty() {
            None
        } else {
            Some(Nqn::new(req.nqn).map_err(status)?)
        };
        let deadline = caller_deadline();
        let node = self.node.clone();
        let id = req.volume_id.clone();
        detached("unstaging", id.clone(), async move {
            node.unstage(&id, &staging, nqn, deadline).await
        })
        .await
        .map_err(status)?;
        Ok(Response::new(UnstageResponse {}))
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let req = request.into_inner();
        volume_id(&req.volume_id).map_err(status)?;
        let block = match AccessType::try_from(req.access_type) {
            Ok(AccessType::Block) => true,
            Ok(AccessType::Filesystem) => false,
            _ => {
                return Err(status(HelperError::InvalidRequest {
                    field: "access_type",
                    reason: "it must be block or filesystem".into(),
                }));
            }
        };
        let typed = publish::PublishRequest {
            staging: self
                .path("staging_path", &req.staging_path)
                .map_err(status)?,
            target: self.path("target_path", &req.target_path).map_err(status)?,
            volume_id: req.volume_id,
            block,
            read_only: req.read_only,
            mount_options: req.mount_options,
            single_target: req.single_target,
        };
        let node = self.node.clone();
        let id = typed.volume_id.clone();
        detached("publishing", id, async move { node.publish(&typed).await })
            .await
            .map_err(status)?;
        Ok(Response::new(PublishResponse {}))
    }

    async fn unpublish(
        &self,
        request: Request<UnpublishRequest>,
    ) -> Result<Response<UnpublishResponse>, Status> {
        let req = request.into_inner();
        volume_id(&req.volume_id).map_err(status)?;
        let target = self.path("target_path", &req.target_path).map_err(status)?;
        let node = self.node.clone();
        let id = req.volume_id.clone();
        detached("unpublishing", id.clone(), async move {
            node.unpublish(&id, &target).await
        })
        .await
        .map_err(status)?;
        Ok(Response::new(UnpublishResponse {}))
    }

    async fn stats(
        &self,
        request: Request<StatsRequest>,
    ) -> Result<Response<StatsResponse>, Status> {
        let req = request.into_inner();
        volume_id(&req.volume_id).map_err(status)?;
        let path = self.path("volume_path", &req.volume_path).map_err(status)?;
        let (usage, condition) = self
            .node
            .stats(&req.volume_id, &path)
            .await
            .map_err(status)?;
        Ok(Response::new(StatsResponse {
            access_type: if usage.block {
                AccessType::Block as i32
            } else {
                AccessType::Filesystem as i32
            },
            total_bytes: usage.total_bytes,
            available_bytes: usage.available_bytes,
            used_bytes: usage.used_bytes,
            total_inodes: usage.total_inodes,
            available_inodes: usage.available_inodes,
            used_inodes: usage.used_inodes,
            abnormal: condition.abnormal,
            condition_message: condition.message,
        }))
    }

    async fn expand(
        &self,
        request: Request<ExpandRequest>,
    ) -> Result<Response<ExpandResponse>, Status> {
        let req = request.into_inner();
        volume_id(&req.volume_id).map_err(status)?;
        let block = match AccessType::try_from(req.access_type) {
            Ok(AccessType::Block) => Some(true),
            Ok(AccessType::Filesystem) => Some(false),
            _ => None,
        };
        let typed = expand::ExpandRequest {
            volume_path: self
                .optional_path("volume_path", &req.volume_path)
                .map_err(status)?,
            staging: self
                .optional_path("staging_path", &req.staging_path)
                .map_err(status)?,
            volume_id: req.volume_id,
            required_bytes: req.required_bytes,
            block,
        };
        let deadline = caller_deadline();
        let node = self.node.clone();
        let id = typed.volume_id.clone();
        let size = detached("expanding", id, async move {
            node.expand(&typed, deadline).await
        })
        .await
        .map_err(status)?;
        Ok(Response::new(ExpandResponse { size_bytes: size }))
    }

    async fn node_info(
        &self,
        _: Request<NodeInfoRequest>,
    ) -> Result<Response<NodeInfoResponse>, Status> {
        let cfg = self.node.config();
        Ok(Response::new(NodeInfoResponse {
            host_nqn: cfg.identity.hostnqn.to_string(),
            host_id: cfg.identity.hostid.hyphenated().to_string(),
            hostname: cfg.hostname.clone(),
        }))
    }

    async fn health(&self, _: Request<HealthRequest>) -> Result<Response<HealthResponse>, Status> {
        if let Err(reason) = self.readiness.check() {
            return Ok(Response::new(HealthResponse {
                ready: false,
                reason,
            }));
        }
        let (ready, reason) = match self.node.fabric().check_readable() {
            Ok(_) => (true, String::new()),
            Err(e) => (false, format!("the fabric cannot be read: {e}")),
        };
        Ok(Response::new(HealthResponse { ready, reason }))
    }
}
