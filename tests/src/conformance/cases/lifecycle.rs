//! Whole-volume lifecycles through both services: csi-sanity's node lifecycle (once, and
//! with every node call repeated), and the full create → publish → stage → publish → use →
//! stats → unpublish → unstage → unpublish → delete sequence, repeated for filesystem
//! volumes and run for a raw block volume, with every step's effect checked on the host.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use rds_csi_proto::csi::controller_service_capability::rpc::Type as ControllerRpc;
use rds_csi_proto::csi::node_service_capability::rpc::Type as NodeRpc;
use rds_csi_proto::csi::volume_capability::access_mode::Mode;
use rds_csi_proto::csi::*;

use super::*;
use crate::conformance::context::{Ctx, Mounted};
use crate::conformance::expect::{ensure, succeeds};
use crate::conformance::registry::{Area, Case, CaseResult, Need, case};
use crate::leaks;

pub fn cases() -> Vec<Case> {
    use Area::Lifecycle as L;
    const VOL: &[Need] = &[CONTROLLER_SERVICE, CREATE_DELETE_VOLUME];
    vec![
        case!(
            L,
            "Node lifecycle: create, publish, stage, publish, stats, then tear down",
            VOL,
            node_once
        ),
        case!(
            L,
            "Node lifecycle: every stage and publish repeated",
            VOL,
            node_repeated
        ),
        case!(
            L,
            "Full lifecycle: filesystem volume, several rounds",
            VOL,
            full_mount_rounds
        ),
        case!(L, "Full lifecycle: raw block volume", VOL, full_block),
    ]
}

/// csi-sanity's node lifecycle with each stage and publish made `count` times, then the
/// teardown its cleanup performs, each step required to succeed.
async fn node_lifecycle(ctx: &Ctx, count: usize) -> CaseResult {
    let cap = ctx.mount_cap(Mode::SingleNodeWriter);
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-node-full"));
    req.capacity_range = Some(CapacityRange {
        required_bytes: ctx.config().volume_size,
        limit_bytes: 0,
    });
    let vol = ctx.must_create_volume(req).await?;
    let publish_context = if ctx
        .adv()
        .has_controller(ControllerRpc::PublishUnpublishVolume)
    {
        succeeds(
            "ControllerPublishVolume",
            ctx.controller_publish(ctx.publish_request(&vol, cap.clone()))
                .await,
        )?
        .publish_context
    } else {
        Default::default()
    };
    let staging = if ctx.adv().has_node(NodeRpc::StageUnstageVolume) {
        let staging = ctx.staging_path()?;
        for i in 0..count {
            succeeds(
                &format!("NodeStageVolume #{}", i + 1),
                ctx.node_stage(ctx.stage_request(&vol, &cap, &publish_context, &staging))
                    .await,
            )?;
        }
        staging
    } else {
        String::new()
    };
    let m = Mounted {
        volume: vol.clone(),
        publish_context,
        staging,
        target: ctx.target_path()?,
    };
    for i in 0..count {
        succeeds(
            &format!("NodePublishVolume #{}", i + 1),
            ctx.node_publish(ctx.node_publish_request(&m, &cap, &m.target))
                .await,
        )?;
    }
    if ctx.adv().has_node(NodeRpc::GetVolumeStats) {
        let s = succeeds(
            "NodeGetVolumeStats",
            ctx.call(ctx.node().node_get_volume_stats(NodeGetVolumeStatsRequest {
                volume_id: vol.volume_id.clone(),
                volume_path: m.target.clone(),
                staging_target_path: String::new(),
            }))
            .await,
        )?;
        ensure(!s.usage.is_empty(), || {
            "NodeGetVolumeStats: no usage".into()
        })?;
    }
    ctx.take_down(&m).await?;
    succeeds("DeleteVolume", ctx.delete_volume(&vol.volume_id).await)
}

async fn node_once(ctx: &Ctx) -> CaseResult {
    node_lifecycle(ctx, 1).await
}

async fn node_repeated(ctx: &Ctx) -> CaseResult {
    node_lifecycle(ctx, ctx.config().idempotent_count.max(2)).await
}

const PAYLOAD: &[u8] = b"rds-csi conformance payload\n";
/// Where on a raw block volume the payload goes.
const BLOCK_OFFSET: u64 = 1 << 20;

fn is_mounted(path: &str) -> bool {
    !leaks::mounts_under(Path::new(path)).is_empty()
}

fn use_volume(m: &Mounted, block: bool) -> CaseResult {
    let io = |e: std::io::Error| format!("using {}: {e}", m.target);
    if block {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&m.target)
            .map_err(io)?;
        f.seek(SeekFrom::Start(BLOCK_OFFSET)).map_err(io)?;
        f.write_all(PAYLOAD).map_err(io)?;
        f.sync_all().map_err(io)?;
        f.seek(SeekFrom::Start(BLOCK_OFFSET)).map_err(io)?;
        let mut back = vec![0u8; PAYLOAD.len()];
        f.read_exact(&mut back).map_err(io)?;
        ensure(back == PAYLOAD, || {
            format!("{}: read back different bytes", m.target)
        })
    } else {
        let file = Path::new(&m.target).join("conformance.txt");
        std::fs::write(&file, PAYLOAD).map_err(io)?;
        std::fs::File::open(&file)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        let back = std::fs::read(&file).map_err(io)?;
        ensure(back == PAYLOAD, || {
            format!("{}: read back different bytes", file.display())
        })
    }
}

/// One round of the full lifecycle for `cap`, every effect checked.
async fn full_round(ctx: &Ctx, cap: &VolumeCapability, block: bool, round: usize) -> CaseResult {
    let label = |step: &str| format!("round {round}: {step}");
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-full"));
    req.volume_capabilities = vec![cap.clone()];
    let vol = ctx.must_create_volume(req).await.map_err(|e| label(&e))?;
    let m = ctx.make_available(&vol, cap).await.map_err(|e| label(&e))?;
    if !m.staging.is_empty() && !block {
        ensure(is_mounted(&m.staging), || {
            label(&format!(
                "NodeStageVolume succeeded but nothing is mounted at {}",
                m.staging
            ))
        })?;
    }
    ensure(is_mounted(&m.target), || {
        label(&format!(
            "NodePublishVolume succeeded but nothing is mounted at {}",
            m.target
        ))
    })?;
    use_volume(&m, block).map_err(|e| label(&e))?;
    if ctx.adv().has_node(NodeRpc::GetVolumeStats) {
        let s = succeeds(
            &label("NodeGetVolumeStats"),
            ctx.call(ctx.node().node_get_volume_stats(NodeGetVolumeStatsRequest {
                volume_id: vol.volume_id.clone(),
                volume_path: m.target.clone(),
                staging_target_path: m.staging.clone(),
            }))
            .await,
        )?;
        let bytes = s
            .usage
            .iter()
            .find(|u| u.unit == volume_usage::Unit::Bytes as i32)
            .ok_or_else(|| label("NodeGetVolumeStats: no byte usage"))?;
        ensure(bytes.total > 0, || {
            label(&format!("NodeGetVolumeStats: total bytes {}", bytes.total))
        })?;
        if let Some(c) = &s.volume_condition {
            ensure(!c.abnormal, || {
                label(&format!("NodeGetVolumeStats: abnormal: {}", c.message))
            })?;
        }
    }
    succeeds(
        &label("NodeUnpublishVolume"),
        ctx.node_unpublish(&vol.volume_id, &m.target).await,
    )?;
    ensure(!is_mounted(&m.target), || {
        label(&format!(
            "{} is still mounted after NodeUnpublishVolume",
            m.target
        ))
    })?;
    ensure(std::fs::symlink_metadata(&m.target).is_err(), || {
        label(&format!("NodeUnpublishVolume left {} behind", m.target))
    })?;
    if !m.staging.is_empty() {
        succeeds(
            &label("NodeUnstageVolume"),
            ctx.node_unstage(&vol.volume_id, &m.staging).await,
        )?;
        ensure(!is_mounted(&m.staging), || {
            label(&format!(
                "{} is still mounted after NodeUnstageVolume",
                m.staging
            ))
        })?;
    }
    if ctx
        .adv()
        .has_controller(ControllerRpc::PublishUnpublishVolume)
    {
        succeeds(
            &label("ControllerUnpublishVolume"),
            ctx.controller_unpublish(&vol.volume_id, &ctx.node_id())
                .await,
        )?;
    }
    succeeds(
        &label("DeleteVolume"),
        ctx.delete_volume(&vol.volume_id).await,
    )?;
    if ctx.adv().has_controller(ControllerRpc::ListVolumes) {
        let left = list_all_volumes(ctx).await?;
        ensure(!left.iter().any(|v| v.volume_id == vol.volume_id), || {
            label(&format!("ListVolumes still lists {}", vol.volume_id))
        })?;
    }
    Ok(())
}

async fn full_mount_rounds(ctx: &Ctx) -> CaseResult {
    let cap = ctx.mount_cap(Mode::SingleNodeWriter);
    for round in 1..=ctx.config().lifecycle_rounds {
        full_round(ctx, &cap, false, round).await?;
    }
    Ok(())
}

async fn full_block(ctx: &Ctx) -> CaseResult {
    let cap = ctx.block_cap(Mode::SingleNodeWriter);
    full_round(ctx, &cap, true, 1).await
}
