//! ControllerModifyVolume cases (VolumeAttributesClass): arguments, a volume that does not
//! exist, parameters the plugin does not support, and modifying with the configured ones.

use std::collections::HashMap;

use rds_csi_proto::csi::*;
use tonic::{Code, Status};

use super::*;
use crate::conformance::context::Ctx;
use crate::conformance::expect::{fails_with, succeeds};
use crate::conformance::registry::{Area, Case, CaseResult, Need, case};

pub fn cases() -> Vec<Case> {
    use Area::Controller as C;
    const M: &[Need] = &[CONTROLLER_SERVICE, MODIFY_VOLUME];
    const MC: &[Need] = &[CONTROLLER_SERVICE, MODIFY_VOLUME, CREATE_DELETE_VOLUME];
    vec![
        case!(
            C,
            "ControllerModifyVolume: no volume id is INVALID_ARGUMENT",
            M,
            no_id
        ),
        case!(
            C,
            "ControllerModifyVolume: an absent volume is NOT_FOUND",
            M,
            absent
        ),
        case!(
            C,
            "ControllerModifyVolume: unsupported parameters are INVALID_ARGUMENT",
            MC,
            unsupported
        ),
        case!(
            C,
            "ControllerModifyVolume: modifies a volume created without attributes",
            MC,
            modify_plain
        ),
        case!(
            C,
            "ControllerModifyVolume: modifies a volume created with attributes",
            MC,
            modify_with_class
        ),
        case!(
            C,
            "ControllerModifyVolume: unsupported parameters on a volume with attributes are INVALID_ARGUMENT",
            MC,
            unsupported_with_class
        ),
    ]
}

fn bogus_parameters() -> HashMap<String, String> {
    [("conformance-unknown-key".to_string(), "value".to_string())]
        .into_iter()
        .collect()
}

async fn modify(
    ctx: &Ctx,
    id: &str,
    params: HashMap<String, String>,
) -> Result<ControllerModifyVolumeResponse, Status> {
    ctx.call(
        ctx.controller()
            .controller_modify_volume(ControllerModifyVolumeRequest {
                volume_id: id.to_string(),
                mutable_parameters: params,
                ..Default::default()
            }),
    )
    .await
}

async fn with_class(ctx: &Ctx) -> Result<Volume, String> {
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-modify-class"));
    req.mutable_parameters = ctx.config().mutable_parameters.clone();
    ctx.must_create_volume(req).await
}

async fn no_id(ctx: &Ctx) -> CaseResult {
    let r = modify(ctx, "", ctx.config().mutable_parameters.clone()).await;
    fails_with(
        "ControllerModifyVolume without an id",
        r,
        Code::InvalidArgument,
    )
}

async fn absent(ctx: &Ctx) -> CaseResult {
    let id = ctx.ids().foreign_volume_id();
    let r = modify(ctx, &id, ctx.config().mutable_parameters.clone()).await;
    fails_with(
        "ControllerModifyVolume of an absent volume",
        r,
        Code::NotFound,
    )
}

async fn unsupported(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-modify").await?;
    let r = modify(ctx, &v.volume_id, bogus_parameters()).await;
    fails_with(
        "ControllerModifyVolume with an unknown parameter",
        r,
        Code::InvalidArgument,
    )
}

async fn modify_plain(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-modify").await?;
    succeeds(
        "ControllerModifyVolume",
        modify(ctx, &v.volume_id, ctx.config().mutable_parameters.clone()).await,
    )
    .map(|_| ())
}

async fn modify_with_class(ctx: &Ctx) -> CaseResult {
    let v = with_class(ctx).await?;
    succeeds(
        "ControllerModifyVolume",
        modify(ctx, &v.volume_id, ctx.config().mutable_parameters.clone()).await,
    )
    .map(|_| ())
}

async fn unsupported_with_class(ctx: &Ctx) -> CaseResult {
    let v = with_class(ctx).await?;
    let r = modify(ctx, &v.volume_id, bogus_parameters()).await;
    fails_with(
        "ControllerModifyVolume with an unknown parameter",
        r,
        Code::InvalidArgument,
    )
}
