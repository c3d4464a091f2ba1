//! The CSI requests the sweep sends, as one enum over every RPC it covers, and what it keeps
//! of an answer: the id a create returned (to check it and clean it up), whether a validation
//! confirmed, how many entries a listing held, the capacity reported.

use std::time::Duration;

use rds_csi_proto::csi::{
    ControllerExpandVolumeRequest, ControllerGetVolumeRequest, ControllerPublishVolumeRequest,
    ControllerUnpublishVolumeRequest, CreateSnapshotRequest, CreateVolumeRequest,
    DeleteSnapshotRequest, DeleteVolumeRequest, GetCapacityRequest, ListSnapshotsRequest,
    ListVolumesRequest, NodeExpandVolumeRequest, NodeGetVolumeStatsRequest,
    NodePublishVolumeRequest, NodeStageVolumeRequest, NodeUnpublishVolumeRequest,
    NodeUnstageVolumeRequest, ValidateVolumeCapabilitiesRequest,
};
use tonic::Status;

use crate::csi_client::Csi;
use crate::e2e_support::request;
use crate::fault_matrix::spec_codes::Rpc;

/// One request of any covered RPC.
#[derive(Debug, Clone)]
pub enum Req {
    CreateVolume(CreateVolumeRequest),
    DeleteVolume(DeleteVolumeRequest),
    ControllerPublish(ControllerPublishVolumeRequest),
    ControllerUnpublish(ControllerUnpublishVolumeRequest),
    Validate(ValidateVolumeCapabilitiesRequest),
    ListVolumes(ListVolumesRequest),
    GetCapacity(GetCapacityRequest),
    CreateSnapshot(CreateSnapshotRequest),
    DeleteSnapshot(DeleteSnapshotRequest),
    ListSnapshots(ListSnapshotsRequest),
    ControllerExpand(ControllerExpandVolumeRequest),
    ControllerGet(ControllerGetVolumeRequest),
    NodeStage(NodeStageVolumeRequest),
    NodeUnstage(NodeUnstageVolumeRequest),
    NodePublish(NodePublishVolumeRequest),
    NodeUnpublish(NodeUnpublishVolumeRequest),
    NodeStats(NodeGetVolumeStatsRequest),
    NodeExpand(NodeExpandVolumeRequest),
}

impl Req {
    pub fn rpc(&self) -> Rpc {
        match self {
            Req::CreateVolume(_) => Rpc::CreateVolume,
            Req::DeleteVolume(_) => Rpc::DeleteVolume,
            Req::ControllerPublish(_) => Rpc::ControllerPublishVolume,
            Req::ControllerUnpublish(_) => Rpc::ControllerUnpublishVolume,
            Req::Validate(_) => Rpc::ValidateVolumeCapabilities,
            Req::ListVolumes(_) => Rpc::ListVolumes,
            Req::GetCapacity(_) => Rpc::GetCapacity,
            Req::CreateSnapshot(_) => Rpc::CreateSnapshot,
            Req::DeleteSnapshot(_) => Rpc::DeleteSnapshot,
            Req::ListSnapshots(_) => Rpc::ListSnapshots,
            Req::ControllerExpand(_) => Rpc::ControllerExpandVolume,
            Req::ControllerGet(_) => Rpc::ControllerGetVolume,
            Req::NodeStage(_) => Rpc::NodeStageVolume,
            Req::NodeUnstage(_) => Rpc::NodeUnstageVolume,
            Req::NodePublish(_) => Rpc::NodePublishVolume,
            Req::NodeUnpublish(_) => Rpc::NodeUnpublishVolume,
            Req::NodeStats(_) => Rpc::NodeGetVolumeStats,
            Req::NodeExpand(_) => Rpc::NodeExpandVolume,
        }
    }
}

/// What the sweep keeps of a successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// CreateVolume: the volume id.
    Volume(String),
    /// CreateSnapshot: the snapshot id.
    Snapshot(String),
    /// ValidateVolumeCapabilities: whether `confirmed` was set.
    Validated(bool),
    /// A listing: how many entries.
    Entries(usize),
    /// GetCapacity: the available capacity.
    Capacity(i64),
    Done,
}

/// Sends `req` with deadline `timeout` through the socket of its service.
pub async fn send(csi: &Csi, req: Req, timeout: Duration) -> Result<Answer, Status> {
    let mut c = csi.controller.clone();
    let mut n = csi.node.clone();
    Ok(match req {
        Req::CreateVolume(m) => Answer::Volume(
            c.create_volume(request(m, timeout))
                .await?
                .into_inner()
                .volume
                .map(|v| v.volume_id)
                .unwrap_or_default(),
        ),
        Req::DeleteVolume(m) => c
            .delete_volume(request(m, timeout))
            .await
            .map(|_| Answer::Done)?,
        Req::ControllerPublish(m) => c
            .controller_publish_volume(request(m, timeout))
            .await
            .map(|_| Answer::Done)?,
        Req::ControllerUnpublish(m) => c
            .controller_unpublish_volume(request(m, timeout))
            .await
            .map(|_| Answer::Done)?,
        Req::Validate(m) => Answer::Validated(
            c.validate_volume_capabilities(request(m, timeout))
                .await?
                .into_inner()
                .confirmed
                .is_some(),
        ),
        Req::ListVolumes(m) => Answer::Entries(
            c.list_volumes(request(m, timeout))
                .await?
                .into_inner()
                .entries
                .len(),
        ),
        Req::GetCapacity(m) => Answer::Capacity(
            c.get_capacity(request(m, timeout))
                .await?
                .into_inner()
                .available_capacity,
        ),
        Req::CreateSnapshot(m) => Answer::Snapshot(
            c.create_snapshot(request(m, timeout))
                .await?
                .into_inner()
                .snapshot
                .map(|s| s.snapshot_id)
                .unwrap_or_default(),
        ),
        Req::DeleteSnapshot(m) => c
            .delete_snapshot(request(m, timeout))
            .await
            .map(|_| Answer::Done)?,
        Req::ListSnapshots(m) => Answer::Entries(
            c.list_snapshots(request(m, timeout))
                .await?
                .into_inner()
                .entries
                .len(),
        ),
        Req::ControllerExpand(m) => c
            .controller_expand_volume(request(m, timeout))
            .await
            .map(|_| Answer::Done)?,
        Req::ControllerGet(m) => c
            .controller_get_volume(request(m, timeout))
            .await
            .map(|_| Answer::Done)?,
        Req::NodeStage(m) => n
            .node_stage_volume(request(m, timeout))
            .await
            .map(|_| Answer::Done)?,
        Req::NodeUnstage(m) => n
            .node_unstage_volume(request(m, timeout))
            .await
            .map(|_| Answer::Done)?,
        Req::NodePublish(m) => n
            .node_publish_volume(request(m, timeout))
            .await
            .map(|_| Answer::Done)?,
        Req::NodeUnpublish(m) => n
            .node_unpublish_volume(request(m, timeout))
            .await
            .map(|_| Answer::Done)?,
        Req::NodeStats(m) => n
            .node_get_volume_stats(request(m, timeout))
            .await
            .map(|_| Answer::Done)?,
        Req::NodeExpand(m) => n
            .node_expand_volume(request(m, timeout))
            .await
            .map(|_| Answer::Done)?,
    })
}
