//! ControllerExpandVolume cases: arguments, a volume that does not exist, and growth to
//! exactly the asked size, repeated without harm.

use rds_csi_proto::csi::volume_capability::access_mode::Mode;
use rds_csi_proto::csi::*;
use tonic::Code;

use super::*;
use crate::conformance::context::Ctx;
use crate::conformance::expect::{ensure, fails_with, succeeds};
use crate::conformance::registry::{Area, Case, CaseResult, Need, case};

pub fn cases() -> Vec<Case> {
    use Area::Expansion as E;
    const X: &[Need] = &[CONTROLLER_SERVICE, CONTROLLER_EXPAND];
    const XC: &[Need] = &[CONTROLLER_SERVICE, CONTROLLER_EXPAND, CREATE_DELETE_VOLUME];
    vec![
        case!(
            E,
            "ControllerExpandVolume: no volume id is INVALID_ARGUMENT",
            X,
            no_id
        ),
        case!(
            E,
            "ControllerExpandVolume: no id and no capacity range is INVALID_ARGUMENT",
            X,
            nothing
        ),
        case!(
            E,
            "ControllerExpandVolume: no capacity range is INVALID_ARGUMENT",
            XC,
            no_range
        ),
        case!(
            E,
            "ControllerExpandVolume: an absent volume is NOT_FOUND",
            X,
            absent
        ),
        case!(
            E,
            "ControllerExpandVolume: grows a volume to the asked size",
            XC,
            grows
        ),
        case!(
            E,
            "ControllerExpandVolume: the same expansion twice succeeds alike",
            XC,
            twice
        ),
    ]
}

fn expand_request(ctx: &Ctx, id: &str) -> ControllerExpandVolumeRequest {
    ControllerExpandVolumeRequest {
        volume_id: id.to_string(),
        capacity_range: Some(CapacityRange {
            required_bytes: ctx.config().expand_size,
            limit_bytes: 0,
        }),
        volume_capability: Some(ctx.mount_cap(Mode::SingleNodeWriter)),
        ..Default::default()
    }
}

async fn expand(
    ctx: &Ctx,
    req: ControllerExpandVolumeRequest,
) -> Result<ControllerExpandVolumeResponse, tonic::Status> {
    ctx.call(ctx.controller().controller_expand_volume(req))
        .await
}

async fn no_id(ctx: &Ctx) -> CaseResult {
    let r = expand(ctx, expand_request(ctx, "")).await;
    fails_with(
        "ControllerExpandVolume without an id",
        r,
        Code::InvalidArgument,
    )
}

async fn nothing(ctx: &Ctx) -> CaseResult {
    let r = expand(ctx, ControllerExpandVolumeRequest::default()).await;
    fails_with(
        "ControllerExpandVolume without id or capacity",
        r,
        Code::InvalidArgument,
    )
}

/// CSI spec, ControllerExpandVolumeRequest.capacity_range: "This is a REQUIRED field."
async fn no_range(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-expand-norange").await?;
    let mut req = expand_request(ctx, &v.volume_id);
    req.capacity_range = None;
    let r = expand(ctx, req).await;
    fails_with(
        "ControllerExpandVolume without a capacity range",
        r,
        Code::InvalidArgument,
    )
}

/// CSI spec, ControllerExpandVolume errors: "Volume does not exist | 5 NOT_FOUND".
async fn absent(ctx: &Ctx) -> CaseResult {
    let r = expand(ctx, expand_request(ctx, &ctx.ids().absent_volume_id())).await;
    fails_with(
        "ControllerExpandVolume of an absent volume",
        r,
        Code::NotFound,
    )
}

async fn grows(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-expand").await?;
    let r = succeeds(
        "ControllerExpandVolume",
        expand(ctx, expand_request(ctx, &v.volume_id)).await,
    )?;
    let want = ctx.config().expand_size;
    ensure(r.capacity_bytes == want, || {
        format!(
            "ControllerExpandVolume: asked for {want} bytes, got {}",
            r.capacity_bytes
        )
    })
}

async fn twice(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-expand-twice").await?;
    let a = succeeds(
        "ControllerExpandVolume",
        expand(ctx, expand_request(ctx, &v.volume_id)).await,
    )?;
    let b = succeeds(
        "ControllerExpandVolume again",
        expand(ctx, expand_request(ctx, &v.volume_id)).await,
    )?;
    ensure(a.capacity_bytes == b.capacity_bytes, || {
        format!(
            "ControllerExpandVolume twice: {} then {} bytes",
            a.capacity_bytes, b.capacity_bytes
        )
    })
}
