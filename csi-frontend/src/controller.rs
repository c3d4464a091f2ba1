//! The CSI Controller service: validates each call and relays it to rds-gateway.
//!
//! Volumes and snapshots live on the appliance, so their lifecycle calls become typed gateway
//! calls; attachments live in this process ([`crate::attachments`]), because attaching an
//! NVMe/TCP volume needs nothing from the appliance (every disk is exported) beyond checking
//! that the disk exists. Each gateway call is made inside the handler, so the caller's
//! deadline and request id travel with it (the hop client layer forwards them).
//!
//! Advertised: CREATE_DELETE_VOLUME, PUBLISH_UNPUBLISH_VOLUME, LIST_VOLUMES,
//! LIST_VOLUMES_PUBLISHED_NODES, GET_CAPACITY, CREATE_DELETE_SNAPSHOT, LIST_SNAPSHOTS,
//! CLONE_VOLUME, EXPAND_VOLUME, VOLUME_CONDITION, GET_VOLUME, SINGLE_NODE_MULTI_WRITER. Not
//! advertised, and answered UNIMPLEMENTED: GetSnapshot, ControllerModifyVolume. Not
//! advertised: PUBLISH_READONLY (an NVMe/TCP attachment cannot be made read-only on the
//! controller side; the node mounts read-only instead).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;

use rds_csi_proto::channel::HopChannel;
use rds_csi_proto::csi::controller_server::Controller;
use rds_csi_proto::csi::controller_service_capability::{self, rpc};
use rds_csi_proto::csi::{
    self, ControllerExpandVolumeRequest, ControllerExpandVolumeResponse,
    ControllerGetCapabilitiesRequest, ControllerGetCapabilitiesResponse,
    ControllerGetVolumeRequest, ControllerGetVolumeResponse, ControllerModifyVolumeRequest,
    ControllerModifyVolumeResponse, ControllerPublishVolumeRequest,
    ControllerPublishVolumeResponse, ControllerServiceCapability, ControllerUnpublishVolumeRequest,
    ControllerUnpublishVolumeResponse, CreateSnapshotRequest, CreateSnapshotResponse,
    CreateVolumeRequest, CreateVolumeResponse, DeleteSnapshotRequest, DeleteSnapshotResponse,
    DeleteVolumeRequest, DeleteVolumeResponse, GetCapacityRequest, GetCapacityResponse,
    GetSnapshotRequest, GetSnapshotResponse, ListSnapshotsRequest, ListSnapshotsResponse,
    ListVolumesRequest, ListVolumesResponse, ValidateVolumeCapabilitiesRequest,
    ValidateVolumeCapabilitiesResponse, VolumeContentSource, list_snapshots_response,
    validate_volume_capabilities_response, volume_content_source,
};
use rds_csi_proto::gateway::gateway_client::GatewayClient;
use rds_csi_proto::gateway::{self as gw, create_volume_request};
use tonic::{Code, Request, Response, Status};

use crate::attachments::{Attachments, PublishRequest, Sharing};
use crate::capabilities::{self, Access, Capability, Filesystem, GRANULARITY};
use crate::errors::{FrontendError, Peer, Subject, respond};
use crate::ids::{NodeId, SnapshotId, VolumeId, name_hash};
use crate::inflight::InFlight;
use crate::known_nodes::KnownNodes;
use crate::listing;
use crate::paging::PageRequest;
use crate::params::{Defaults, KubeNames, ParamError, SnapshotParams, StorageParams, VolumePath};
use crate::volume_condition::{self, Disk};
use crate::volume_context::{self, VolumeContext};

/// Most gateway pages fetched for one listing (a safety stop for a misbehaving gateway).
pub(crate) const MAX_GATEWAY_PAGES: usize = 1000;

/// The controller service.
pub struct ControllerService {
    gateway: GatewayClient<HopChannel>,
    /// The gateway's channel itself, for the listing's calls that keep the answer as bytes.
    gateway_channel: HopChannel,
    attachments: Arc<Attachments>,
    inflight: InFlight,
    defaults: Defaults,
    known_nodes: KnownNodes,
}

type Result<T> = std::result::Result<T, FrontendError>;

fn location(path: &VolumePath, port: u16) -> gw::VolumeLocation {
    gw::VolumeLocation {
        base_path: path.as_str().to_string(),
        nvme_port: u32::from(port),
    }
}

fn to_i64(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

fn rpc_cap(t: rpc::Type) -> ControllerServiceCapability {
    ControllerServiceCapability {
        r#type: Some(controller_service_capability::Type::Rpc(
            controller_service_capability::Rpc { r#type: t as i32 },
        )),
    }
}

/// The filesystem a set of capabilities asks for: the capabilities' `fs_type` (all must
/// agree), else the StorageClass's legacy `fsType`, else ext4; `None` for block-only.
fn filesystem_of(caps: &[Capability], legacy: Option<Filesystem>) -> Result<Option<Filesystem>> {
    let mut named: Option<Filesystem> = None;
    let mut any_mount = false;
    for c in caps {
        if let Access::Mount { fs_type, .. } = &c.access {
            any_mount = true;
            if let Some(fs) = fs_type {
                if named.is_some_and(|n| n != *fs) {
                    return Err(capabilities::CapabilityError::BadFsType(
                        "(the capabilities name different filesystems)".into(),
                    )
                    .into());
                }
                named = Some(*fs);
            }
        }
    }
    if let (Some(n), Some(l)) = (named, legacy)
        && n != l
    {
        return Err(ParamError::Invalid {
            key: "fsType",
            value: format!("\"{}\"", l.as_str()),
            reason: format!(
                "conflicts with the volume capability's fs_type {} (csi.storage.k8s.io/fstype)",
                n.as_str()
            ),
        }
        .into());
    }
    Ok(any_mount.then(|| named.or(legacy).unwrap_or(Filesystem::Ext4)))
}

impl ControllerService {
    pub fn new(gateway: HopChannel, attachments: Arc<Attachments>, defaults: Defaults) -> Self {
        ControllerService {
            gateway: GatewayClient::new(gateway.clone()),
            gateway_channel: gateway,
            attachments,
            inflight: InFlight::default(),
            defaults,
            known_nodes: KnownNodes::Unchecked,
        }
    }

    /// Checks every ControllerPublish node id against `known` (by default none is checked).
    pub fn with_known_nodes(mut self, known: KnownNodes) -> Self {
        self.known_nodes = known;
        self
    }

    fn gw(&self) -> GatewayClient<HopChannel> {
        self.gateway.clone()
    }

    /// The appliance's view of a volume; `None` when it does not exist.
    async fn lookup_volume(&self, id: &VolumeId, subject: &Subject) -> Result<Option<gw::Volume>> {
        match self
            .gw()
            .get_volume(gw::GetVolumeRequest {
                slot: id.to_string(),
            })
            .await
        {
            Ok(v) => Ok(Some(v.into_inner())),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(FrontendError::relay(Peer::Gateway, "GetVolume", subject)(s)),
        }
    }

    async fn snapshots(&self, snapshot_id: &str, source: &str) -> Result<Vec<gw::Snapshot>> {
        let mut out = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_GATEWAY_PAGES {
            let page = self
                .gw()
                .list_snapshots(gw::ListSnapshotsRequest {
                    max_entries: 0,
                    starting_token: token.clone(),
                    snapshot_id: snapshot_id.to_string(),
                    source_volume_id: source.to_string(),
                })
                .await
                .map_err(FrontendError::relay(
                    Peer::Gateway,
                    "ListSnapshots",
                    &Subject::default(),
                ))?
                .into_inner();
            if out.is_empty() {
                out = page.snapshots;
            } else {
                out.extend(page.snapshots);
            }
            if page.next_token.is_empty() || page.next_token == token {
                return Ok(out);
            }
            token = page.next_token;
        }
        Ok(out)
    }

    async fn create(&self, req: CreateVolumeRequest) -> Result<CreateVolumeResponse> {
        if req.name.is_empty() {
            return Err(FrontendError::Missing("name"));
        }
        let id = VolumeId::from_name(&req.name)?;
        let caps = capabilities::parse_all(&req.volume_capabilities)?;
        let params = StorageParams::parse(&req.parameters, &self.defaults)?;
        let subject = Subject::volume(&id).with_pvc(params.kube.pvc());
        if !req.mutable_parameters.is_empty() {
            return Err(FrontendError::Unsupported(
                "mutable_parameters (VolumeAttributesClass) are not supported by this driver",
            ));
        }
        let fs_type = filesystem_of(&caps, params.fs_type)?;
        let _guard = self.inflight.begin("volume", id.as_str())?;

        let (source, floor) = match req
            .volume_content_source
            .as_ref()
            .and_then(|s| s.r#type.as_ref())
        {
            None => (None, 0),
            Some(volume_content_source::Type::Snapshot(s)) => {
                // An id this driver never issues names no snapshot: NOT_FOUND, like any
                // other snapshot that does not exist (only an empty id is malformed).
                let snap = match SnapshotId::parse(
                    "volume_content_source.snapshot.snapshot_id",
                    &s.snapshot_id,
                ) {
                    Ok(snap) => snap,
                    Err(e) if s.snapshot_id.is_empty() => return Err(e.into()),
                    Err(_) => {
                        return Err(FrontendError::NotFound {
                            subject: Subject::snapshot(shown(&s.snapshot_id))
                                .with_pvc(params.kube.pvc()),
                            hint: "no snapshot made by this driver has this id",
                        });
                    }
                };
                let found = self.snapshots(snap.as_str(), "").await?;
                let Some(found) = found.into_iter().find(|x| x.snapshot_id == snap.as_str()) else {
                    return Err(FrontendError::NotFound {
                        subject: Subject::snapshot(&snap).with_pvc(params.kube.pvc()),
                        hint: "the source snapshot of the new volume was not found on the RDS",
                    });
                };
                (
                    Some(create_volume_request::Source::SnapshotId(snap.to_string())),
                    found.size_bytes,
                )
            }
            Some(volume_content_source::Type::Volume(v)) => {
                let src =
                    match VolumeId::parse("volume_content_source.volume.volume_id", &v.volume_id) {
                        Ok(src) => src,
                        Err(e) if v.volume_id.is_empty() => return Err(e.into()),
                        Err(_) => {
                            return Err(FrontendError::NotFound {
                                subject: Subject::volume(shown(&v.volume_id))
                                    .with_pvc(params.kube.pvc()),
                                hint: "no volume made by this driver has this id",
                            });
                        }
                    };
                let Some(found) = self.lookup_volume(&src, &subject).await? else {
                    return Err(FrontendError::NotFound {
                        subject: Subject::volume(&src).with_pvc(params.kube.pvc()),
                        hint: "the source volume to clone was not found on the RDS",
                    });
                };
                (
                    Some(create_volume_request::Source::VolumeId(src.to_string())),
                    found.size_bytes,
                )
            }
        };
        let size =
            capabilities::create_size(req.capacity_range.as_ref(), floor).map_err(|source| {
                FrontendError::Capacity {
                    subject: subject.clone(),
                    source,
                }
            })?;
        let vol = self
            .gw()
            .create_volume(gw::CreateVolumeRequest {
                slot: id.to_string(),
                required_bytes: size.bytes,
                limit_bytes: size.limit.unwrap_or(0),
                location: Some(location(&params.volume_path, params.nvme_port)),
                nqn: id.nqn(),
                source: source.clone(),
            })
            .await
            .map_err(FrontendError::relay(
                Peer::Gateway,
                "CreateVolume",
                &subject,
            ))?
            .into_inner();

        // The gateway adopts an existing disk of the same slot: check it fits this request.
        let needed = req
            .capacity_range
            .as_ref()
            .map(|r| u64::try_from(r.required_bytes).unwrap_or(0))
            .unwrap_or(0)
            .max(floor);
        if vol.size_bytes < needed || size.limit.is_some_and(|l| vol.size_bytes > l) {
            return Err(FrontendError::AlreadyExists {
                subject,
                reason: format!(
                    "has {} bytes, outside the requested capacity range",
                    vol.size_bytes
                ),
            });
        }
        let source_matches = match &source {
            None => true,
            Some(create_volume_request::Source::SnapshotId(s)) => vol.source_snapshot_id == *s,
            Some(create_volume_request::Source::VolumeId(v)) => vol.source_volume_id == *v,
        };
        if !source_matches {
            return Err(FrontendError::AlreadyExists {
                subject,
                reason: "was made from a different content source".into(),
            });
        }
        let mut ctx_params = params.clone();
        if let Ok(port) = u16::try_from(vol.nvme_port)
            && port != 0
        {
            ctx_params.nvme_port = port;
        }
        Ok(CreateVolumeResponse {
            volume: Some(csi::Volume {
                capacity_bytes: to_i64(vol.size_bytes),
                volume_id: id.to_string(),
                volume_context: VolumeContext::build(&id, &ctx_params, fs_type),
                content_source: req.volume_content_source.clone(),
                accessible_topology: Vec::new(),
            }),
        })
    }

    /// CSI spec, DeleteVolume: "If a volume corresponding to the specified `volume_id` does
    /// not exist or the artifacts associated with the volume do not exist anymore, the Plugin
    /// MUST reply `0 OK`." and "Volume in use | 9 FAILED_PRECONDITION".
    async fn delete(&self, req: DeleteVolumeRequest) -> Result<DeleteVolumeResponse> {
        let id = match VolumeId::parse("volume_id", &req.volume_id) {
            Ok(id) => id,
            Err(e) if req.volume_id.is_empty() => return Err(e.into()),
            // No volume of this driver can have an id it never issues: it does not exist.
            Err(_) => return Ok(DeleteVolumeResponse {}),
        };
        let subject = Subject::volume(&id);
        let _guard = self.inflight.begin("volume", id.as_str())?;
        let nodes = self.attachments.nodes(&id);
        if !nodes.is_empty() {
            return Err(FrontendError::Precondition {
                subject,
                reason: format!(
                    "the volume is still attached to {}; it can be deleted once it is unpublished",
                    nodes.join(", ")
                ),
            });
        }
        match self
            .gw()
            .delete_volume(gw::DeleteVolumeRequest {
                slot: id.to_string(),
                location: Some(location(
                    &self.defaults.volume_path,
                    self.defaults.nvme_port,
                )),
            })
            .await
        {
            Ok(_) => Ok(DeleteVolumeResponse {}),
            Err(s) if s.code() == Code::NotFound => Ok(DeleteVolumeResponse {}),
            Err(s) => Err(FrontendError::relay(
                Peer::Gateway,
                "DeleteVolume",
                &subject,
            )(s)),
        }
    }

    /// CSI spec, ControllerPublishVolume errors: "Volume does not exist | 5 NOT_FOUND |
    /// Indicates that a volume corresponding to the specified `volume_id` does not exist."
    async fn publish(
        &self,
        req: ControllerPublishVolumeRequest,
    ) -> Result<ControllerPublishVolumeResponse> {
        let id = VolumeId::parse("volume_id", &req.volume_id)?;
        let node = NodeId::parse(&req.node_id)?;
        let cap = capabilities::parse_one(req.volume_capability.as_ref())?;
        let pvc = KubeNames::from_map(&req.volume_context).pvc();
        let subject = Subject::volume(&id).with_pvc(pvc.clone());
        let mut vc = VolumeContext::parse(&id, &req.volume_context).map_err(|source| {
            FrontendError::Context {
                subject: subject.clone(),
                source,
            }
        })?;
        let _guard = self.inflight.begin("volume", id.as_str())?;
        let Some(vol) = self.lookup_volume(&id, &subject).await? else {
            return Err(FrontendError::NotFound {
                subject,
                hint: "it is not on the RDS (was it deleted?)",
            });
        };
        self.known_nodes.check(&node).await?;
        if vc.nvme_port.is_none() {
            vc.nvme_port = u16::try_from(vol.nvme_port).ok().filter(|p| *p != 0);
        }
        let fs_type = match &cap.access {
            Access::Block => None,
            Access::Mount { fs_type, .. } => {
                Some(fs_type.or(vc.fs_type).unwrap_or(Filesystem::Ext4))
            }
        };
        let publish_context =
            volume_context::build_publish_context(&id, &vc, &self.defaults, fs_type).map_err(
                |source| FrontendError::Context {
                    subject: subject.clone(),
                    source,
                },
            )?;
        let outcome = self
            .attachments
            .publish(PublishRequest {
                volume: &id,
                node: &node,
                sharing: if cap.mode.multi_node() {
                    Sharing::Migratable
                } else {
                    Sharing::SingleNode
                },
                read_only: req.readonly,
                migration_timeout_secs: vc
                    .migration_timeout_secs
                    .unwrap_or(self.defaults.migration_timeout_secs),
            })
            .await
            .map_err(|source| FrontendError::Attach {
                pvc,
                source: Box::new(source),
            })?;
        tracing::info!(volume = %id, node = %node, outcome = ?outcome, "published");
        Ok(ControllerPublishVolumeResponse { publish_context })
    }

    async fn unpublish(
        &self,
        req: ControllerUnpublishVolumeRequest,
    ) -> Result<ControllerUnpublishVolumeResponse> {
        let id = VolumeId::parse("volume_id", &req.volume_id)?;
        let node = if req.node_id.is_empty() {
            None
        } else {
            Some(NodeId::parse(&req.node_id)?)
        };
        let _guard = self.inflight.begin("volume", id.as_str())?;
        let outcome = self
            .attachments
            .unpublish(&id, node.as_ref())
            .await
            .map_err(|source| FrontendError::Attach {
                pvc: None,
                source: Box::new(source),
            })?;
        tracing::info!(volume = %id, node = ?node.as_ref().map(NodeId::as_str), outcome = ?outcome, "unpublished");
        Ok(ControllerUnpublishVolumeResponse {})
    }

    /// CSI spec, ValidateVolumeCapabilities: "This RPC call SHALL return `confirmed` only if
    /// all the volume capabilities specified in the request are supported".
    async fn validate(
        &self,
        req: ValidateVolumeCapabilitiesRequest,
    ) -> Result<ValidateVolumeCapabilitiesResponse> {
        let id = VolumeId::parse("volume_id", &req.volume_id)?;
        if req.volume_capabilities.is_empty() {
            return Err(FrontendError::Missing("volume_capabilities"));
        }
        let subject = Subject::volume(&id);
        if self.lookup_volume(&id, &subject).await?.is_none() {
            return Err(FrontendError::NotFound {
                subject,
                hint: "it is not on the RDS",
            });
        }
        let refusal = match capabilities::parse_all(&req.volume_capabilities) {
            Err(e) => Some(e.to_string()),
            Ok(_) if !req.mutable_parameters.is_empty() => {
                Some("mutable_parameters are not supported by this driver".to_string())
            }
            Ok(_) => {
                let params = (!req.parameters.is_empty())
                    .then(|| StorageParams::parse(&req.parameters, &self.lenient_defaults()))
                    .transpose();
                let ctx = VolumeContext::parse(&id, &req.volume_context);
                match (params, ctx) {
                    (Err(e), _) => Some(e.to_string()),
                    (_, Err(e)) => Some(e.to_string()),
                    _ => None,
                }
            }
        };
        Ok(match refusal {
            Some(message) => ValidateVolumeCapabilitiesResponse {
                confirmed: None,
                message,
            },
            None => ValidateVolumeCapabilitiesResponse {
                confirmed: Some(validate_volume_capabilities_response::Confirmed {
                    volume_context: req.volume_context,
                    volume_capabilities: req.volume_capabilities,
                    parameters: req.parameters,
                    mutable_parameters: HashMap::new(),
                }),
                message: String::new(),
            },
        })
    }

    /// Defaults for calls where only the storage location matters: a missing NVMe address is
    /// not an error there.
    fn lenient_defaults(&self) -> Defaults {
        let mut d = self.defaults.clone();
        d.nvme_address = d
            .nvme_address
            .or(Some(std::net::IpAddr::from([0, 0, 0, 0])));
        d
    }

    /// ListVolumes, its answer encoded (see [`crate::listing`]).
    pub async fn list_volumes_encoded(&self, req: ListVolumesRequest) -> Result<Bytes> {
        let page = PageRequest::parse(req.max_entries, &req.starting_token, |t| {
            VolumeId::parse("starting_token", t).is_ok()
        })?;
        let pages = listing::gateway_pages(self.gateway_channel.clone(), MAX_GATEWAY_PAGES).await?;
        listing::answer(&pages, &page, &self.attachments)
    }

    async fn capacity(&self, req: GetCapacityRequest) -> Result<GetCapacityResponse> {
        if !req.volume_capabilities.is_empty()
            && capabilities::parse_all(&req.volume_capabilities).is_err()
        {
            // CSI spec: "the Plugin SHALL report the capacity of the storage that can be used
            // to provision volumes that satisfy ALL of the specified `volume_capabilities`":
            // none can.
            return Ok(GetCapacityResponse {
                available_capacity: 0,
                maximum_volume_size: Some(0),
                minimum_volume_size: None,
            });
        }
        let params = StorageParams::parse(&req.parameters, &self.lenient_defaults())?;
        let cap = self
            .gw()
            .get_capacity(gw::GetCapacityRequest {
                location: Some(location(&params.volume_path, params.nvme_port)),
            })
            .await
            .map_err(FrontendError::relay(
                Peer::Gateway,
                "GetCapacity",
                &Subject::default(),
            ))?
            .into_inner();
        Ok(GetCapacityResponse {
            available_capacity: to_i64(cap.free_bytes),
            maximum_volume_size: Some(to_i64(cap.free_bytes - cap.free_bytes % GRANULARITY)),
            minimum_volume_size: Some(to_i64(GRANULARITY)),
        })
    }

    /// CSI spec, CreateSnapshot errors: "Snapshot already exists but is incompatible | 6
    /// ALREADY_EXISTS | Indicates that a snapshot corresponding to the specified snapshot
    /// `name` already exists but is incompatible with the specified `volume_id`."
    async fn create_snapshot_impl(
        &self,
        req: CreateSnapshotRequest,
    ) -> Result<CreateSnapshotResponse> {
        let source = VolumeId::parse("source_volume_id", &req.source_volume_id)?;
        if req.name.is_empty() {
            return Err(FrontendError::Missing("name"));
        }
        let params = SnapshotParams::parse(&req.parameters, &self.defaults)?;
        let id = SnapshotId::for_snapshot(&req.name, &source)?;
        let subject = Subject::snapshot(&id);
        let _guard = self.inflight.begin("snapshot", id.as_str())?;
        let hash = name_hash(&req.name);
        let clash = self.snapshots("", "").await?.into_iter().find(|s| {
            SnapshotId::parse("snapshot", &s.snapshot_id)
                .is_ok_and(|o| o.suffix() == Some(hash.as_str()) && o.source_volume() != source)
        });
        if let Some(other) = clash {
            return Err(FrontendError::AlreadyExists {
                subject: Subject::snapshot(&other.snapshot_id),
                reason: format!(
                    "a snapshot of that name was taken of volume {}, not {source}",
                    other.source_volume_id
                ),
            });
        }
        let snap = match self
            .gw()
            .create_snapshot(gw::CreateSnapshotRequest {
                snapshot_id: id.to_string(),
                source_volume_id: source.to_string(),
                location: Some(location(&params.volume_path, self.defaults.nvme_port)),
            })
            .await
        {
            Ok(s) => s.into_inner(),
            Err(s) if s.code() == Code::NotFound => {
                return Err(FrontendError::NotFound {
                    subject: Subject::volume(&source),
                    hint: "the volume to snapshot is not on the RDS",
                });
            }
            Err(s) => {
                return Err(FrontendError::relay(
                    Peer::Gateway,
                    "CreateSnapshot",
                    &subject,
                )(s));
            }
        };
        Ok(CreateSnapshotResponse {
            snapshot: Some(csi_snapshot(&snap)),
        })
    }

    async fn delete_snapshot_impl(
        &self,
        req: DeleteSnapshotRequest,
    ) -> Result<DeleteSnapshotResponse> {
        // CSI DeleteSnapshot: "If a snapshot corresponding to the specified snapshot_id does
        // not exist ... the Plugin MUST reply 0 OK" — and an id this driver never issues names
        // no snapshot. Only an empty id is malformed.
        let id = match SnapshotId::parse("snapshot_id", &req.snapshot_id) {
            Ok(id) => id,
            Err(e) if req.snapshot_id.is_empty() => return Err(e.into()),
            Err(_) => return Ok(DeleteSnapshotResponse {}),
        };
        let subject = Subject::snapshot(&id);
        let _guard = self.inflight.begin("snapshot", id.as_str())?;
        match self
            .gw()
            .delete_snapshot(gw::DeleteSnapshotRequest {
                snapshot_id: id.to_string(),
                location: Some(location(
                    &self.defaults.volume_path,
                    self.defaults.nvme_port,
                )),
            })
            .await
        {
            Ok(_) => Ok(DeleteSnapshotResponse {}),
            Err(s) if s.code() == Code::NotFound => Ok(DeleteSnapshotResponse {}),
            Err(s) => Err(FrontendError::relay(
                Peer::Gateway,
                "DeleteSnapshot",
                &subject,
            )(s)),
        }
    }

    async fn list_snapshots_impl(
        &self,
        req: ListSnapshotsRequest,
    ) -> Result<ListSnapshotsResponse> {
        let page = PageRequest::parse(req.max_entries, &req.starting_token, |t| {
            SnapshotId::parse("starting_token", t).is_ok()
        })?;
        // A filter naming something that cannot exist matches nothing.
        let empty = ListSnapshotsResponse {
            entries: Vec::new(),
            next_token: String::new(),
        };
        if !req.snapshot_id.is_empty()
            && SnapshotId::parse("snapshot_id", &req.snapshot_id).is_err()
        {
            return Ok(empty);
        }
        if !req.source_volume_id.is_empty()
            && VolumeId::parse("source_volume_id", &req.source_volume_id).is_err()
        {
            return Ok(empty);
        }
        let snaps = self
            .snapshots(&req.snapshot_id, &req.source_volume_id)
            .await?;
        let items: Vec<gw::Snapshot> = snaps
            .into_iter()
            .filter(|s| SnapshotId::parse("snapshot", &s.snapshot_id).is_ok())
            .filter(|s| req.snapshot_id.is_empty() || s.snapshot_id == req.snapshot_id)
            .filter(|s| {
                req.source_volume_id.is_empty() || s.source_volume_id == req.source_volume_id
            })
            .collect();
        let (snaps, next_token) = page.page(items, |s| s.snapshot_id.as_str());
        Ok(ListSnapshotsResponse {
            entries: snaps
                .iter()
                .map(|s| list_snapshots_response::Entry {
                    snapshot: Some(csi_snapshot(s)),
                })
                .collect(),
            next_token,
        })
    }

    /// CSI spec, ControllerExpandVolumeResponse.node_expansion_required: "Whether node
    /// expansion is required for the volume. When true the CO MUST make NodeExpandVolume RPC
    /// call on the node." A block volume needs nothing on the node; a filesystem must grow.
    async fn expand(
        &self,
        req: ControllerExpandVolumeRequest,
    ) -> Result<ControllerExpandVolumeResponse> {
        let id = VolumeId::parse("volume_id", &req.volume_id)?;
        let subject = Subject::volume(&id);
        let size = capabilities::expand_size(req.capacity_range.as_ref()).map_err(|source| {
            FrontendError::Capacity {
                subject: subject.clone(),
                source,
            }
        })?;
        let cap = req
            .volume_capability
            .as_ref()
            .map(Capability::parse)
            .transpose()?;
        let _guard = self.inflight.begin("volume", id.as_str())?;
        let vol = match self
            .gw()
            .expand_volume(gw::ExpandVolumeRequest {
                slot: id.to_string(),
                required_bytes: size.bytes,
                limit_bytes: size.limit.unwrap_or(0),
            })
            .await
        {
            Ok(v) => v.into_inner(),
            Err(s) if s.code() == Code::NotFound => {
                return Err(FrontendError::NotFound {
                    subject,
                    hint: "it is not on the RDS",
                });
            }
            Err(s) => {
                return Err(FrontendError::relay(
                    Peer::Gateway,
                    "ExpandVolume",
                    &subject,
                )(s));
            }
        };
        Ok(ControllerExpandVolumeResponse {
            capacity_bytes: to_i64(vol.size_bytes),
            node_expansion_required: !cap.is_some_and(|c| c.is_block()),
        })
    }

    /// CSI spec, ControllerGetVolume errors: "Volume does not exist | 5 NOT_FOUND". A volume
    /// that is still attached but whose disk vanished is reported, as abnormal, instead.
    async fn get_volume(
        &self,
        req: ControllerGetVolumeRequest,
    ) -> Result<ControllerGetVolumeResponse> {
        let id = VolumeId::parse("volume_id", &req.volume_id)?;
        let subject = Subject::volume(&id);
        let vol = self.lookup_volume(&id, &subject).await?;
        let nodes = self.attachments.nodes(&id);
        if vol.is_none() && nodes.is_empty() {
            return Err(FrontendError::NotFound {
                subject,
                hint: "it is not on the RDS",
            });
        }
        Ok(ControllerGetVolumeResponse {
            volume: Some(csi::Volume {
                capacity_bytes: vol.as_ref().map(|v| to_i64(v.size_bytes)).unwrap_or(0),
                volume_id: id.to_string(),
                volume_context: HashMap::new(),
                content_source: vol.as_ref().and_then(content_source_of),
                accessible_topology: Vec::new(),
            }),
            status: Some(csi::controller_get_volume_response::VolumeStatus {
                published_node_ids: nodes,
                volume_condition: Some(volume_condition::condition(
                    Disk::of(vol.as_ref()),
                    self.attachments.abnormal(&id).as_deref(),
                )),
            }),
        })
    }
}

fn content_source_of(v: &gw::Volume) -> Option<VolumeContentSource> {
    if !v.source_snapshot_id.is_empty() {
        Some(VolumeContentSource {
            r#type: Some(volume_content_source::Type::Snapshot(
                volume_content_source::SnapshotSource {
                    snapshot_id: v.source_snapshot_id.clone(),
                },
            )),
        })
    } else if !v.source_volume_id.is_empty() {
        Some(VolumeContentSource {
            r#type: Some(volume_content_source::Type::Volume(
                volume_content_source::VolumeSource {
                    volume_id: v.source_volume_id.clone(),
                },
            )),
        })
    } else {
        None
    }
}

fn csi_snapshot(s: &gw::Snapshot) -> csi::Snapshot {
    csi::Snapshot {
        size_bytes: to_i64(s.size_bytes),
        snapshot_id: s.snapshot_id.clone(),
        source_volume_id: s.source_volume_id.clone(),
        creation_time: Some(prost_types::Timestamp {
            seconds: s.created_at_unix,
            nanos: 0,
        }),
        ready_to_use: s.ready_to_use,
        group_snapshot_id: String::new(),
    }
}

/// The controller capabilities, exactly what this service implements.
pub fn capabilities() -> Vec<ControllerServiceCapability> {
    [
        rpc::Type::CreateDeleteVolume,
        rpc::Type::PublishUnpublishVolume,
        rpc::Type::ListVolumes,
        rpc::Type::ListVolumesPublishedNodes,
        rpc::Type::GetCapacity,
        rpc::Type::CreateDeleteSnapshot,
        rpc::Type::ListSnapshots,
        rpc::Type::CloneVolume,
        rpc::Type::ExpandVolume,
        rpc::Type::VolumeCondition,
        rpc::Type::GetVolume,
        rpc::Type::SingleNodeMultiWriter,
    ]
    .into_iter()
    .map(rpc_cap)
    .collect()
}

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn create_volume(
        &self,
        request: Request<CreateVolumeRequest>,
    ) -> std::result::Result<Response<CreateVolumeResponse>, Status> {
        respond("CreateVolume", self.create(request.into_inner()).await)
    }

    async fn delete_volume(
        &self,
        request: Request<DeleteVolumeRequest>,
    ) -> std::result::Result<Response<DeleteVolumeResponse>, Status> {
        respond("DeleteVolume", self.delete(request.into_inner()).await)
    }

    async fn controller_publish_volume(
        &self,
        request: Request<ControllerPublishVolumeRequest>,
    ) -> std::result::Result<Response<ControllerPublishVolumeResponse>, Status> {
        respond(
            "ControllerPublishVolume",
            self.publish(request.into_inner()).await,
        )
    }

    async fn controller_unpublish_volume(
        &self,
        request: Request<ControllerUnpublishVolumeRequest>,
    ) -> std::result::Result<Response<ControllerUnpublishVolumeResponse>, Status> {
        respond(
            "ControllerUnpublishVolume",
            self.unpublish(request.into_inner()).await,
        )
    }

    async fn validate_volume_capabilities(
        &self,
        request: Request<ValidateVolumeCapabilitiesRequest>,
    ) -> std::result::Result<Response<ValidateVolumeCapabilitiesResponse>, Status> {
        respond(
            "ValidateVolumeCapabilities",
            self.validate(request.into_inner()).await,
        )
    }

    async fn list_volumes(
        &self,
        request: Request<ListVolumesRequest>,
    ) -> std::result::Result<Response<ListVolumesResponse>, Status> {
        // Served by [`crate::listing::route`] over the wire; in process, the same answer
        // decoded.
        let answer = self
            .list_volumes_encoded(request.into_inner())
            .await
            .and_then(|bytes| {
                ListVolumesResponse::decode(bytes).map_err(|e| FrontendError::Internal {
                    subject: Subject::default(),
                    reason: format!("the encoded listing does not decode: {e}"),
                })
            });
        respond("ListVolumes", answer)
    }

    async fn get_capacity(
        &self,
        request: Request<GetCapacityRequest>,
    ) -> std::result::Result<Response<GetCapacityResponse>, Status> {
        respond("GetCapacity", self.capacity(request.into_inner()).await)
    }

    async fn controller_get_capabilities(
        &self,
        _: Request<ControllerGetCapabilitiesRequest>,
    ) -> std::result::Result<Response<ControllerGetCapabilitiesResponse>, Status> {
        Ok(Response::new(ControllerGetCapabilitiesResponse {
            capabilities: capabilities(),
        }))
    }

    async fn create_snapshot(
        &self,
        request: Request<CreateSnapshotRequest>,
    ) -> std::result::Result<Response<CreateSnapshotResponse>, Status> {
        respond(
            "CreateSnapshot",
            self.create_snapshot_impl(request.into_inner()).await,
        )
    }

    async fn delete_snapshot(
        &self,
        request: Request<DeleteSnapshotRequest>,
    ) -> std::result::Result<Response<DeleteSnapshotResponse>, Status> {
        respond(
            "DeleteSnapshot",
            self.delete_snapshot_impl(request.into_inner()).await,
        )
    }

    async fn list_snapshots(
        &self,
        request: Request<ListSnapshotsRequest>,
    ) -> std::result::Result<Response<ListSnapshotsResponse>, Status> {
        respond(
            "ListSnapshots",
            self.list_snapshots_impl(request.into_inner()).await,
        )
    }

    /// Not advertised (GET_SNAPSHOT), so UNIMPLEMENTED.
    async fn get_snapshot(
        &self,
        _: Request<GetSnapshotRequest>,
    ) -> std::result::Result<Response<GetSnapshotResponse>, Status> {
        respond(
            "GetSnapshot",
            Err(FrontendError::Unsupported(
                "GetSnapshot is not supported (GET_SNAPSHOT is not advertised); use ListSnapshots",
            )),
        )
    }

    async fn controller_expand_volume(
        &self,
        request: Request<ControllerExpandVolumeRequest>,
    ) -> std::result::Result<Response<ControllerExpandVolumeResponse>, Status> {
        respond(
            "ControllerExpandVolume",
            self.expand(request.into_inner()).await,
        )
    }

    async fn controller_get_volume(
        &self,
        request: Request<ControllerGetVolumeRequest>,
    ) -> std::result::Result<Response<ControllerGetVolumeResponse>, Status> {
        respond(
            "ControllerGetVolume",
            self.get_volume(request.into_inner()).await,
        )
    }

    /// Not advertised (MODIFY_VOLUME), so UNIMPLEMENTED.
    async fn controller_modify_volume(
        &self,
        _: Request<ControllerModifyVolumeRequest>,
    ) -> std::result::Result<Response<ControllerModifyVolumeResponse>, Status> {
        respond(
            "ControllerModifyVolume",
            Err(FrontendError::Unsupported(
                "ControllerModifyVolume is not supported (MODIFY_VOLUME is not advertised)",
            )),
        )
    }
}

/// A caller-supplied id as it may appear in a message: escaped and cut short.
fn shown(raw: &str) -> String {
    let escaped: String = raw.escape_debug().take(80).collect();
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rds_csi_proto::csi::volume_capability::{self, AccessType};

    fn mount(fs: &str) -> Capability {
        Capability::parse(&csi::VolumeCapability {
            access_type: Some(AccessType::Mount(volume_capability::MountVolume {
                fs_type: fs.into(),
                ..Default::default()
            })),
            access_mode: Some(volume_capability::AccessMode {
                mode: volume_capability::access_mode::Mode::SingleNodeWriter as i32,
            }),
        })
        .unwrap()
    }

    fn block() -> Capability {
        Capability::parse(&csi::VolumeCapability {
            access_type: Some(AccessType::Block(volume_capability::BlockVolume {})),
            access_mode: Some(volume_capability::AccessMode {
                mode: volume_capability::access_mode::Mode::SingleNodeWriter as i32,
            }),
        })
        .unwrap()
    }

    #[test]
    fn filesystem_defaults_to_ext4_and_follows_the_capability() {
        assert_eq!(
            filesystem_of(&[mount("")], None).unwrap(),
            Some(Filesystem::Ext4)
        );
        assert_eq!(
            filesystem_of(&[mount("xfs")], None).unwrap(),
            Some(Filesystem::Xfs)
        );
        assert_eq!(
            filesystem_of(&[mount("")], Some(Filesystem::Xfs)).unwrap(),
            Some(Filesystem::Xfs)
        );
        assert_eq!(
            filesystem_of(&[block()], Some(Filesystem::Xfs)).unwrap(),
            None
        );
        assert!(filesystem_of(&[mount("ext4")], Some(Filesystem::Xfs)).is_err());
        assert!(filesystem_of(&[mount("ext4"), mount("xfs")], None).is_err());
    }

    #[test]
    fn advertised_capabilities_are_exactly_the_implemented_ones() {
        let caps: Vec<i32> = capabilities()
            .into_iter()
            .filter_map(|c| {
                c.r#type
                    .map(|controller_service_capability::Type::Rpc(r)| r.r#type)
            })
            .collect();
        for absent in [
            rpc::Type::PublishReadonly,
            rpc::Type::ModifyVolume,
            rpc::Type::GetSnapshot,
        ] {
            assert!(!caps.contains(&(absent as i32)), "{absent:?}");
        }
        assert!(caps.contains(&(rpc::Type::GetVolume as i32)));
        assert!(caps.contains(&(rpc::Type::VolumeCondition as i32)));
    }
}
