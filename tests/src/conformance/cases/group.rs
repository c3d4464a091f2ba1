//! GroupController cases: its capabilities, and argument validation of the volume group
//! snapshot calls, including what does not exist.

use rds_csi_proto::csi::group_controller_service_capability::rpc::Type as GroupRpc;
use rds_csi_proto::csi::*;
use tonic::Code;

use super::*;
use crate::conformance::context::Ctx;
use crate::conformance::expect::{ensure, fails_with, succeeds};
use crate::conformance::registry::{Area, Case, CaseResult, Need, case};

pub fn cases() -> Vec<Case> {
    use Area::Group as G;
    const S: &[Need] = &[GROUP_CONTROLLER_SERVICE];
    const GS: &[Need] = &[GROUP_CONTROLLER_SERVICE, GROUP_SNAPSHOTS];
    vec![
        case!(
            G,
            "GroupControllerGetCapabilities: every capability is one the spec defines",
            S,
            capabilities_known
        ),
        case!(
            G,
            "CreateVolumeGroupSnapshot: no name is INVALID_ARGUMENT",
            GS,
            create_no_name
        ),
        case!(
            G,
            "GetVolumeGroupSnapshot: no id is INVALID_ARGUMENT",
            GS,
            get_no_id
        ),
        case!(
            G,
            "GetVolumeGroupSnapshot: an id of foreign form is NOT_FOUND",
            GS,
            get_foreign
        ),
        case!(
            G,
            "DeleteVolumeGroupSnapshot: no id is INVALID_ARGUMENT",
            GS,
            delete_no_id
        ),
        case!(
            G,
            "DeleteVolumeGroupSnapshot: an id of foreign form succeeds",
            GS,
            delete_foreign
        ),
    ]
}

async fn capabilities_known(ctx: &Ctx) -> CaseResult {
    let caps = succeeds(
        "GroupControllerGetCapabilities",
        ctx.call(
            ctx.group()
                .group_controller_get_capabilities(GroupControllerGetCapabilitiesRequest {}),
        )
        .await,
    )?
    .capabilities;
    ensure(!caps.is_empty(), || {
        "GroupControllerGetCapabilities: no capabilities at all".into()
    })?;
    for c in caps {
        let Some(group_controller_service_capability::Type::Rpc(r)) = &c.r#type else {
            return Err(format!(
                "GroupControllerGetCapabilities: {c:?} is not an RPC capability"
            ));
        };
        ensure(
            GroupRpc::try_from(r.r#type).is_ok_and(|t| t != GroupRpc::Unknown),
            || {
                format!(
                    "GroupControllerGetCapabilities: unknown capability {}",
                    r.r#type
                )
            },
        )?;
    }
    Ok(())
}

async fn create_no_name(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .call(
            ctx.group()
                .create_volume_group_snapshot(CreateVolumeGroupSnapshotRequest::default()),
        )
        .await;
    fails_with(
        "CreateVolumeGroupSnapshot without a name",
        r,
        Code::InvalidArgument,
    )
}

async fn get_no_id(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .call(
            ctx.group()
                .get_volume_group_snapshot(GetVolumeGroupSnapshotRequest::default()),
        )
        .await;
    fails_with(
        "GetVolumeGroupSnapshot without an id",
        r,
        Code::InvalidArgument,
    )
}

async fn get_foreign(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .call(
            ctx.group()
                .get_volume_group_snapshot(GetVolumeGroupSnapshotRequest {
                    group_snapshot_id: ctx.ids().foreign_volume_id(),
                    ..Default::default()
                }),
        )
        .await;
    fails_with("GetVolumeGroupSnapshot of a foreign id", r, Code::NotFound)
}

async fn delete_no_id(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .call(
            ctx.group()
                .delete_volume_group_snapshot(DeleteVolumeGroupSnapshotRequest::default()),
        )
        .await;
    fails_with(
        "DeleteVolumeGroupSnapshot without an id",
        r,
        Code::InvalidArgument,
    )
}

async fn delete_foreign(ctx: &Ctx) -> CaseResult {
    succeeds(
        "DeleteVolumeGroupSnapshot of a foreign id",
        ctx.call(
            ctx.group()
                .delete_volume_group_snapshot(DeleteVolumeGroupSnapshotRequest {
                    group_snapshot_id: ctx.ids().foreign_volume_id(),
                    ..Default::default()
                }),
        )
        .await,
    )
    .map(|_| ())
}
