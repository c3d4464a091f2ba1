//! The cases, one module per part of the CSI surface, and what they share: the needs they
//! are gated on and a few small request helpers.
//!
//! Each case restates one behaviour the Kubernetes CSI sanity suite checks (or, where a
//! case says so, one the CSI specification requires that the sanity suite leaves out), in
//! this project's own words and code.

pub mod controller;
pub mod expansion;
pub mod group;
pub mod identity;
pub mod lifecycle;
pub mod modify;
pub mod node;
pub mod publish;
pub mod snapshots;

use std::time::Duration;

use rds_csi_proto::csi::controller_service_capability::rpc::Type as ControllerRpc;
use rds_csi_proto::csi::node_service_capability::rpc::Type as NodeRpc;
use rds_csi_proto::csi::plugin_capability::service::Type as PluginService;
use rds_csi_proto::csi::{CreateSnapshotRequest, ListVolumesRequest, Snapshot, Volume};

use super::context::Ctx;
use super::expect::succeeds;
use super::registry::Need;

pub const CONTROLLER_SERVICE: Need = Need::Plugin(PluginService::ControllerService);
pub const CREATE_DELETE_VOLUME: Need = Need::Controller(ControllerRpc::CreateDeleteVolume);
pub const PUBLISH_UNPUBLISH: Need = Need::Controller(ControllerRpc::PublishUnpublishVolume);
pub const LIST_VOLUMES: Need = Need::Controller(ControllerRpc::ListVolumes);
pub const LIST_PUBLISHED_NODES: Need = Need::Controller(ControllerRpc::ListVolumesPublishedNodes);
pub const GET_CAPACITY: Need = Need::Controller(ControllerRpc::GetCapacity);
pub const CREATE_DELETE_SNAPSHOT: Need = Need::Controller(ControllerRpc::CreateDeleteSnapshot);
pub const LIST_SNAPSHOTS: Need = Need::Controller(ControllerRpc::ListSnapshots);
pub const CLONE_VOLUME: Need = Need::Controller(ControllerRpc::CloneVolume);
pub const PUBLISH_READONLY: Need = Need::Controller(ControllerRpc::PublishReadonly);
pub const CONTROLLER_EXPAND: Need = Need::Controller(ControllerRpc::ExpandVolume);
pub const GET_VOLUME: Need = Need::Controller(ControllerRpc::GetVolume);
pub const MODIFY_VOLUME: Need = Need::Controller(ControllerRpc::ModifyVolume);
pub const GROUP_CONTROLLER_SERVICE: Need = Need::Plugin(PluginService::GroupControllerService);
pub const GROUP_SNAPSHOTS: Need = Need::GroupController(
    rds_csi_proto::csi::group_controller_service_capability::rpc::Type::CreateDeleteGetVolumeGroupSnapshot,
);
pub const STAGE_UNSTAGE: Need = Need::Node(NodeRpc::StageUnstageVolume);
pub const VOLUME_STATS: Need = Need::Node(NodeRpc::GetVolumeStats);
pub const NODE_EXPAND: Need = Need::Node(NodeRpc::ExpandVolume);
pub const NODE_SINGLE_NODE_MULTI_WRITER: Need = Need::Node(NodeRpc::SingleNodeMultiWriter);

/// A relative path: no plugin can have anything published there.
pub const RELATIVE_PATH: &str = "conformance/relative/path";

/// Every volume ListVolumes returns (no paging).
pub async fn list_all_volumes(ctx: &Ctx) -> Result<Vec<Volume>, String> {
    let r = succeeds(
        "ListVolumes",
        ctx.call(ctx.controller().list_volumes(ListVolumesRequest::default()))
            .await,
    )?;
    r.entries
        .into_iter()
        .map(|e| {
            e.volume
                .ok_or_else(|| "ListVolumes: an entry has no volume".to_string())
        })
        .collect()
}

/// CreateSnapshot repeated until the snapshot is ready to use, as csi-sanity waits.
pub async fn ready_snapshot(ctx: &Ctx, req: CreateSnapshotRequest) -> Result<Snapshot, String> {
    for _ in 0..60 {
        let snap = ctx.must_create_snapshot(req.clone()).await?;
        if snap.ready_to_use {
            return Ok(snap);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!(
        "CreateSnapshot {}: not ready to use after 60 attempts",
        req.name
    ))
}
