//! Node service cases: capabilities and node info, argument validation of every call,
//! NodeGetVolumeStats and NodeExpandVolume on paths that hold nothing, the target path being
//! removed on unpublish, the single-writer rule, and expansion of a published volume.

use rds_csi_proto::csi::controller_service_capability::rpc::Type as ControllerRpc;
use rds_csi_proto::csi::node_service_capability::rpc::Type as NodeRpc;
use rds_csi_proto::csi::plugin_capability::service::Type as PluginService;
use rds_csi_proto::csi::volume_capability::access_mode::Mode;
use rds_csi_proto::csi::*;
use tonic::{Code, Status};

use super::*;
use crate::conformance::context::Ctx;
use crate::conformance::expect::{ensure, fails_with, succeeds};
use crate::conformance::registry::{Area, Case, CaseResult, Need, case};
use crate::leaks;

pub fn cases() -> Vec<Case> {
    use Area::Node as N;
    const VOL: &[Need] = &[CONTROLLER_SERVICE, CREATE_DELETE_VOLUME];
    const STAGE: &[Need] = &[STAGE_UNSTAGE];
    const STAGE_VOL: &[Need] = &[STAGE_UNSTAGE, CONTROLLER_SERVICE, CREATE_DELETE_VOLUME];
    const STATS: &[Need] = &[VOLUME_STATS];
    const STATS_VOL: &[Need] = &[VOLUME_STATS, CONTROLLER_SERVICE, CREATE_DELETE_VOLUME];
    const EXPAND: &[Need] = &[NODE_EXPAND];
    const EXPAND_VOL: &[Need] = &[NODE_EXPAND, CONTROLLER_SERVICE, CREATE_DELETE_VOLUME];
    vec![
        case!(
            N,
            "NodeGetCapabilities: every capability is one the spec defines",
            &[],
            capabilities_known
        ),
        case!(
            N,
            "NodeGetInfo: names the node and a sane volume limit",
            &[],
            info
        ),
        case!(
            N,
            "NodePublishVolume: no volume id is INVALID_ARGUMENT",
            &[],
            publish_no_id
        ),
        case!(
            N,
            "NodePublishVolume: no target path is INVALID_ARGUMENT",
            &[],
            publish_no_target
        ),
        case!(
            N,
            "NodePublishVolume: no capability is INVALID_ARGUMENT",
            &[],
            publish_no_cap
        ),
        case!(
            N,
            "NodePublishVolume: a single-writer volume at a second target is FAILED_PRECONDITION",
            &[
                NODE_SINGLE_NODE_MULTI_WRITER,
                CONTROLLER_SERVICE,
                CREATE_DELETE_VOLUME
            ],
            publish_single_writer_twice
        ),
        case!(
            N,
            "NodeUnpublishVolume: no volume id is INVALID_ARGUMENT",
            &[],
            unpublish_no_id
        ),
        case!(
            N,
            "NodeUnpublishVolume: no target path is INVALID_ARGUMENT",
            &[],
            unpublish_no_target
        ),
        case!(
            N,
            "NodeUnpublishVolume: removes the target path",
            VOL,
            unpublish_removes_target
        ),
        case!(
            N,
            "NodeStageVolume: no volume id is INVALID_ARGUMENT",
            STAGE,
            stage_no_id
        ),
        case!(
            N,
            "NodeStageVolume: no staging path is INVALID_ARGUMENT",
            STAGE,
            stage_no_path
        ),
        case!(
            N,
            "NodeStageVolume: no capability is INVALID_ARGUMENT",
            STAGE_VOL,
            stage_no_cap
        ),
        case!(
            N,
            "NodeUnstageVolume: no volume id is INVALID_ARGUMENT",
            STAGE,
            unstage_no_id
        ),
        case!(
            N,
            "NodeUnstageVolume: no staging path is INVALID_ARGUMENT",
            STAGE,
            unstage_no_path
        ),
        case!(
            N,
            "NodeGetVolumeStats: no volume id is INVALID_ARGUMENT",
            STATS,
            stats_no_id
        ),
        case!(
            N,
            "NodeGetVolumeStats: no volume path is INVALID_ARGUMENT",
            STATS,
            stats_no_path
        ),
        case!(
            N,
            "NodeGetVolumeStats: an absent volume at a relative path is NOT_FOUND",
            STATS,
            stats_absent_relative
        ),
        case!(
            N,
            "NodeGetVolumeStats: an absent volume at an absolute path is NOT_FOUND",
            STATS,
            stats_absent_absolute
        ),
        case!(
            N,
            "NodeGetVolumeStats: a relative path the volume is not at is NOT_FOUND",
            STATS_VOL,
            stats_elsewhere_relative
        ),
        case!(
            N,
            "NodeGetVolumeStats: an absolute path the volume is not at is NOT_FOUND",
            STATS_VOL,
            stats_elsewhere_absolute
        ),
        case!(
            N,
            "NodeExpandVolume: no volume id is INVALID_ARGUMENT",
            EXPAND,
            expand_no_id
        ),
        case!(
            N,
            "NodeExpandVolume: no volume path is INVALID_ARGUMENT",
            EXPAND_VOL,
            expand_no_path
        ),
        case!(
            N,
            "NodeExpandVolume: an absent volume at a relative path is NOT_FOUND",
            EXPAND,
            expand_absent_relative
        ),
        case!(
            N,
            "NodeExpandVolume: an absent volume at an absolute path is NOT_FOUND",
            EXPAND,
            expand_absent_absolute
        ),
        case!(
            N,
            "NodeExpandVolume: succeeds after publish",
            EXPAND_VOL,
            expand_after_publish
        ),
        case!(
            N,
            "NodeExpandVolume: grows the filesystem of a published volume",
            &[
                NODE_EXPAND,
                VOLUME_STATS,
                CONTROLLER_SERVICE,
                CREATE_DELETE_VOLUME,
                CONTROLLER_EXPAND
            ],
            expand_grows_online
        ),
        case!(
            N,
            "NodeExpandVolume: grows an xfs filesystem of a published volume",
            &[
                NODE_EXPAND,
                VOLUME_STATS,
                CONTROLLER_SERVICE,
                CREATE_DELETE_VOLUME,
                CONTROLLER_EXPAND
            ],
            expand_grows_online_xfs
        ),
    ]
}

fn sn_writer(ctx: &Ctx) -> VolumeCapability {
    ctx.mount_cap(Mode::SingleNodeWriter)
}

async fn capabilities_known(ctx: &Ctx) -> CaseResult {
    let caps = succeeds(
        "NodeGetCapabilities",
        ctx.call(
            ctx.node()
                .node_get_capabilities(NodeGetCapabilitiesRequest {}),
        )
        .await,
    )?
    .capabilities;
    for c in caps {
        let Some(node_service_capability::Type::Rpc(r)) = &c.r#type else {
            return Err(format!(
                "NodeGetCapabilities: {c:?} is not an RPC capability"
            ));
        };
        let known = NodeRpc::try_from(r.r#type).is_ok_and(|t| t != NodeRpc::Unknown);
        ensure(known, || {
            format!("NodeGetCapabilities: unknown capability {}", r.r#type)
        })?;
    }
    Ok(())
}

async fn info(ctx: &Ctx) -> CaseResult {
    let i = succeeds(
        "NodeGetInfo",
        ctx.call(ctx.node().node_get_info(NodeGetInfoRequest {}))
            .await,
    )?;
    ensure(!i.node_id.is_empty(), || {
        "NodeGetInfo: empty node id".into()
    })?;
    ensure(i.max_volumes_per_node >= 0, || {
        format!(
            "NodeGetInfo: negative max_volumes_per_node {}",
            i.max_volumes_per_node
        )
    })?;
    if ctx
        .adv()
        .has_plugin_service(PluginService::VolumeAccessibilityConstraints)
    {
        ensure(i.accessible_topology.is_some(), || {
            "NodeGetInfo: VOLUME_ACCESSIBILITY_CONSTRAINTS is advertised but no topology is given"
                .into()
        })?;
    }
    Ok(())
}

async fn node_publish_raw(ctx: &Ctx, req: NodePublishVolumeRequest) -> Result<(), Status> {
    ctx.call(ctx.node().node_publish_volume(req))
        .await
        .map(|_| ())
}

async fn publish_no_id(ctx: &Ctx) -> CaseResult {
    let r = node_publish_raw(ctx, NodePublishVolumeRequest::default()).await;
    fails_with(
        "NodePublishVolume without a volume id",
        r,
        Code::InvalidArgument,
    )
}

async fn publish_no_target(ctx: &Ctx) -> CaseResult {
    let r = node_publish_raw(
        ctx,
        NodePublishVolumeRequest {
            volume_id: ctx.ids().absent_volume_id(),
            ..Default::default()
        },
    )
    .await;
    fails_with(
        "NodePublishVolume without a target path",
        r,
        Code::InvalidArgument,
    )
}

async fn publish_no_cap(ctx: &Ctx) -> CaseResult {
    let r = node_publish_raw(
        ctx,
        NodePublishVolumeRequest {
            volume_id: ctx.ids().absent_volume_id(),
            target_path: ctx.target_path()?,
            ..Default::default()
        },
    )
    .await;
    fails_with(
        "NodePublishVolume without a capability",
        r,
        Code::InvalidArgument,
    )
}

async fn publish_single_writer_twice(ctx: &Ctx) -> CaseResult {
    let cap = ctx.mount_cap(Mode::SingleNodeSingleWriter);
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-single-writer"));
    req.volume_capabilities = vec![cap.clone()];
    let v = ctx.must_create_volume(req).await?;
    let m = ctx.make_available(&v, &cap).await?;
    let other = ctx.target_path()?;
    let r = ctx
        .node_publish(ctx.node_publish_request(&m, &cap, &other))
        .await;
    fails_with(
        "NodePublishVolume of a SINGLE_NODE_SINGLE_WRITER volume at a second target",
        r,
        Code::FailedPrecondition,
    )
}

async fn unpublish_no_id(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .call(
            ctx.node()
                .node_unpublish_volume(NodeUnpublishVolumeRequest::default()),
        )
        .await;
    fails_with(
        "NodeUnpublishVolume without a volume id",
        r,
        Code::InvalidArgument,
    )
}

async fn unpublish_no_target(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .call(
            ctx.node()
                .node_unpublish_volume(NodeUnpublishVolumeRequest {
                    volume_id: ctx.ids().absent_volume_id(),
                    target_path: String::new(),
                }),
        )
        .await;
    fails_with(
        "NodeUnpublishVolume without a target path",
        r,
        Code::InvalidArgument,
    )
}

/// CSI spec, NodeUnpublishVolume: the SP MUST delete the file or directory it created at
/// the target path.
async fn unpublish_removes_target(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-node-unpublish").await?;
    let m = ctx.make_available(&v, &sn_writer(ctx)).await?;
    ensure(std::fs::symlink_metadata(&m.target).is_ok(), || {
        format!(
            "NodePublishVolume succeeded but {} does not exist",
            m.target
        )
    })?;
    succeeds(
        "NodeUnpublishVolume",
        ctx.node_unpublish(&v.volume_id, &m.target).await,
    )?;
    ensure(std::fs::symlink_metadata(&m.target).is_err(), || {
        format!("NodeUnpublishVolume left {} behind", m.target)
    })
}

fn mock_publish_context() -> std::collections::HashMap<String, String> {
    [("device".to_string(), "/dev/conformance-mock".to_string())]
        .into_iter()
        .collect()
}

async fn node_stage_raw(ctx: &Ctx, req: NodeStageVolumeRequest) -> Result<(), Status> {
    ctx.call(ctx.node().node_stage_volume(req))
        .await
        .map(|_| ())
}

async fn stage_no_id(ctx: &Ctx) -> CaseResult {
    let r = node_stage_raw(
        ctx,
        NodeStageVolumeRequest {
            staging_target_path: ctx.staging_path()?,
            volume_capability: Some(sn_writer(ctx)),
            publish_context: mock_publish_context(),
            ..Default::default()
        },
    )
    .await;
    fails_with(
        "NodeStageVolume without a volume id",
        r,
        Code::InvalidArgument,
    )
}

async fn stage_no_path(ctx: &Ctx) -> CaseResult {
    let r = node_stage_raw(
        ctx,
        NodeStageVolumeRequest {
            volume_id: ctx.ids().absent_volume_id(),
            volume_capability: Some(sn_writer(ctx)),
            publish_context: mock_publish_context(),
            ..Default::default()
        },
    )
    .await;
    fails_with(
        "NodeStageVolume without a staging path",
        r,
        Code::InvalidArgument,
    )
}

async fn stage_no_cap(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-stage-nocaps").await?;
    let r = ctx
        .node_stage(NodeStageVolumeRequest {
            volume_id: v.volume_id.clone(),
            staging_target_path: ctx.staging_path()?,
            publish_context: mock_publish_context(),
            ..Default::default()
        })
        .await;
    fails_with(
        "NodeStageVolume without a capability",
        r,
        Code::InvalidArgument,
    )
}

async fn unstage_no_id(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .call(ctx.node().node_unstage_volume(NodeUnstageVolumeRequest {
            volume_id: String::new(),
            staging_target_path: ctx.staging_path()?,
        }))
        .await;
    fails_with(
        "NodeUnstageVolume without a volume id",
        r,
        Code::InvalidArgument,
    )
}

async fn unstage_no_path(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .call(ctx.node().node_unstage_volume(NodeUnstageVolumeRequest {
            volume_id: ctx.ids().absent_volume_id(),
            staging_target_path: String::new(),
        }))
        .await;
    fails_with(
        "NodeUnstageVolume without a staging path",
        r,
        Code::InvalidArgument,
    )
}

async fn stats(ctx: &Ctx, id: &str, path: &str) -> Result<NodeGetVolumeStatsResponse, Status> {
    ctx.call(ctx.node().node_get_volume_stats(NodeGetVolumeStatsRequest {
        volume_id: id.to_string(),
        volume_path: path.to_string(),
        staging_target_path: String::new(),
    }))
    .await
}

async fn stats_no_id(ctx: &Ctx) -> CaseResult {
    let r = stats(ctx, "", RELATIVE_PATH).await;
    fails_with(
        "NodeGetVolumeStats without a volume id",
        r,
        Code::InvalidArgument,
    )
}

async fn stats_no_path(ctx: &Ctx) -> CaseResult {
    let r = stats(ctx, &ctx.ids().absent_volume_id(), "").await;
    fails_with(
        "NodeGetVolumeStats without a volume path",
        r,
        Code::InvalidArgument,
    )
}

async fn stats_absent_relative(ctx: &Ctx) -> CaseResult {
    let r = stats(ctx, &ctx.ids().absent_volume_id(), RELATIVE_PATH).await;
    fails_with(
        &format!("NodeGetVolumeStats of an absent volume at {RELATIVE_PATH:?}"),
        r,
        Code::NotFound,
    )
}

/// CSI spec, NodeGetVolumeStats errors: "Volume does not exist | 5 NOT_FOUND".
async fn stats_absent_absolute(ctx: &Ctx) -> CaseResult {
    let path = ctx.target_path()?;
    let r = stats(ctx, &ctx.ids().absent_volume_id(), &path).await;
    fails_with(
        &format!("NodeGetVolumeStats of an absent volume at {path}"),
        r,
        Code::NotFound,
    )
}

async fn stats_elsewhere_relative(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-stats-elsewhere").await?;
    ctx.make_available(&v, &sn_writer(ctx)).await?;
    let r = stats(ctx, &v.volume_id, RELATIVE_PATH).await;
    fails_with(
        &format!("NodeGetVolumeStats of a published volume at {RELATIVE_PATH:?}"),
        r,
        Code::NotFound,
    )
}

async fn stats_elsewhere_absolute(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-stats-elsewhere").await?;
    ctx.make_available(&v, &sn_writer(ctx)).await?;
    let empty_dir = ctx.staging_path()?;
    let r = stats(ctx, &v.volume_id, &empty_dir).await;
    fails_with(
        &format!("NodeGetVolumeStats of a published volume at the unrelated directory {empty_dir}"),
        r,
        Code::NotFound,
    )
}

async fn node_expand(
    ctx: &Ctx,
    req: NodeExpandVolumeRequest,
) -> Result<NodeExpandVolumeResponse, Status> {
    ctx.call(ctx.node().node_expand_volume(req)).await
}

async fn expand_no_id(ctx: &Ctx) -> CaseResult {
    let r = node_expand(
        ctx,
        NodeExpandVolumeRequest {
            volume_path: ctx.target_path()?,
            volume_capability: Some(sn_writer(ctx)),
            ..Default::default()
        },
    )
    .await;
    fails_with(
        "NodeExpandVolume without a volume id",
        r,
        Code::InvalidArgument,
    )
}

async fn expand_no_path(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-node-expand-nopath").await?;
    let r = node_expand(
        ctx,
        NodeExpandVolumeRequest {
            volume_id: v.volume_id.clone(),
            volume_capability: Some(sn_writer(ctx)),
            ..Default::default()
        },
    )
    .await;
    fails_with(
        "NodeExpandVolume without a volume path",
        r,
        Code::InvalidArgument,
    )
}

async fn expand_absent_relative(ctx: &Ctx) -> CaseResult {
    let r = node_expand(
        ctx,
        NodeExpandVolumeRequest {
            volume_id: ctx.ids().absent_volume_id(),
            volume_path: RELATIVE_PATH.to_string(),
            ..Default::default()
        },
    )
    .await;
    fails_with(
        &format!("NodeExpandVolume of an absent volume at {RELATIVE_PATH:?}"),
        r,
        Code::NotFound,
    )
}

/// CSI spec, NodeExpandVolume errors: "Volume does not exist | 5 NOT_FOUND".
async fn expand_absent_absolute(ctx: &Ctx) -> CaseResult {
    let path = ctx.target_path()?;
    let r = node_expand(
        ctx,
        NodeExpandVolumeRequest {
            volume_id: ctx.ids().absent_volume_id(),
            volume_path: path.clone(),
            ..Default::default()
        },
    )
    .await;
    fails_with(
        &format!("NodeExpandVolume of an absent volume at {path}"),
        r,
        Code::NotFound,
    )
}

fn range_of(bytes: i64) -> Option<CapacityRange> {
    Some(CapacityRange {
        required_bytes: bytes,
        limit_bytes: 0,
    })
}

async fn controller_expand(ctx: &Ctx, id: &str, want: i64) -> CaseResult {
    let r = succeeds(
        "ControllerExpandVolume",
        ctx.call(
            ctx.controller()
                .controller_expand_volume(ControllerExpandVolumeRequest {
                    volume_id: id.to_string(),
                    capacity_range: range_of(want),
                    ..Default::default()
                }),
        )
        .await,
    )?;
    ensure(r.capacity_bytes == want, || {
        format!(
            "ControllerExpandVolume: asked for {want} bytes, got {}",
            r.capacity_bytes
        )
    })
}

async fn expand_after_publish(ctx: &Ctx) -> CaseResult {
    let want = ctx.config().expand_size;
    let v = ctx.new_volume("conformance-node-expand").await?;
    if ctx.adv().has_controller(ControllerRpc::ExpandVolume) {
        controller_expand(ctx, &v.volume_id, want).await?;
    }
    let m = ctx.make_available(&v, &sn_writer(ctx)).await?;
    succeeds(
        "NodeExpandVolume",
        node_expand(
            ctx,
            NodeExpandVolumeRequest {
                volume_id: v.volume_id.clone(),
                volume_path: m.target.clone(),
                capacity_range: range_of(want),
                ..Default::default()
            },
        )
        .await,
    )
    .map(|_| ())
}

async fn total_bytes(ctx: &Ctx, id: &str, path: &str) -> Result<i64, String> {
    let r = succeeds("NodeGetVolumeStats", stats(ctx, id, path).await)?;
    r.usage
        .iter()
        .find(|u| u.unit == volume_usage::Unit::Bytes as i32)
        .map(|u| u.total)
        .ok_or_else(|| "NodeGetVolumeStats: no byte usage".to_string())
}

/// The online expansion a CO performs: controller first, then the node, while mounted;
/// the filesystem must then be larger.
async fn grow_online(ctx: &Ctx, cap: VolumeCapability, size: i64, grown: i64) -> CaseResult {
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-online-expand"));
    req.volume_capabilities = vec![cap.clone()];
    req.capacity_range = range_of(size);
    let v = ctx.must_create_volume(req).await?;
    let m = ctx.make_available(&v, &cap).await?;
    ensure(
        !leaks::mounts_under(std::path::Path::new(&m.target)).is_empty(),
        || {
            format!(
                "NodePublishVolume succeeded but nothing is mounted at {}",
                m.target
            )
        },
    )?;
    let before = total_bytes(ctx, &v.volume_id, &m.target).await?;
    controller_expand(ctx, &v.volume_id, grown).await?;
    succeeds(
        "NodeExpandVolume",
        node_expand(
            ctx,
            NodeExpandVolumeRequest {
                volume_id: v.volume_id.clone(),
                volume_path: m.target.clone(),
                capacity_range: range_of(grown),
                staging_target_path: m.staging.clone(),
                volume_capability: Some(cap),
                ..Default::default()
            },
        )
        .await,
    )?;
    let after = total_bytes(ctx, &v.volume_id, &m.target).await?;
    ensure(after > before, || {
        format!("NodeExpandVolume: the filesystem still has {after} bytes (before: {before})")
    })
}

async fn expand_grows_online(ctx: &Ctx) -> CaseResult {
    let (size, grown) = (ctx.config().volume_size, ctx.config().expand_size);
    grow_online(ctx, sn_writer(ctx), size, grown).await
}

/// xfs needs at least 300 MiB, so this variant picks its own sizes.
async fn expand_grows_online_xfs(ctx: &Ctx) -> CaseResult {
    const MIB: i64 = 1 << 20;
    let cap = crate::csi_client::mount_capability("xfs", Mode::SingleNodeWriter);
    grow_online(ctx, cap, 512 * MIB, 768 * MIB).await
}
