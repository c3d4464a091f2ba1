//! ControllerPublishVolume and ControllerUnpublishVolume cases: argument validation, what
//! does not exist, idempotency, the single-node rule, and the controller-side lifecycle.

use rds_csi_proto::csi::volume_capability::access_mode::Mode;
use rds_csi_proto::csi::*;
use tonic::Code;

use super::*;
use crate::conformance::context::Ctx;
use crate::conformance::expect::{ensure, fails_with, succeeds};
use crate::conformance::registry::{Area, Case, CaseResult, Need, case};

pub fn cases() -> Vec<Case> {
    use Area::Controller as C;
    const P: &[Need] = &[CONTROLLER_SERVICE, PUBLISH_UNPUBLISH];
    const PC: &[Need] = &[CONTROLLER_SERVICE, PUBLISH_UNPUBLISH, CREATE_DELETE_VOLUME];
    vec![
        case!(
            C,
            "ControllerPublishVolume: no volume id is INVALID_ARGUMENT",
            P,
            publish_no_volume
        ),
        case!(
            C,
            "ControllerPublishVolume: no node id is INVALID_ARGUMENT",
            P,
            publish_no_node
        ),
        case!(
            C,
            "ControllerPublishVolume: no capability is INVALID_ARGUMENT",
            P,
            publish_no_cap
        ),
        case!(
            C,
            "ControllerPublishVolume: more volumes than the node's limit fail",
            &[
                CONTROLLER_SERVICE,
                PUBLISH_UNPUBLISH,
                CREATE_DELETE_VOLUME,
                Need::NodeVolumeLimit
            ],
            publish_over_limit
        ),
        case!(
            C,
            "ControllerPublishVolume: an absent volume is NOT_FOUND",
            P,
            publish_absent_volume
        ),
        case!(
            C,
            "ControllerPublishVolume: an absent node is NOT_FOUND",
            PC,
            publish_absent_node
        ),
        case!(
            C,
            "ControllerPublishVolume: read-only after read-write is ALREADY_EXISTS",
            &[
                CONTROLLER_SERVICE,
                PUBLISH_UNPUBLISH,
                CREATE_DELETE_VOLUME,
                PUBLISH_READONLY
            ],
            publish_incompatible
        ),
        case!(
            C,
            "ControllerPublishVolume: the same publish twice succeeds alike",
            PC,
            publish_twice
        ),
        case!(
            C,
            "ControllerPublishVolume: a single-node volume on a second node is FAILED_PRECONDITION",
            PC,
            publish_second_node
        ),
        case!(
            C,
            "ControllerPublishVolume: publish and unpublish once",
            PC,
            lifecycle_once
        ),
        case!(
            C,
            "ControllerPublishVolume: publish and unpublish, each repeated",
            PC,
            lifecycle_repeated
        ),
        case!(
            C,
            "ControllerUnpublishVolume: no volume id is INVALID_ARGUMENT",
            P,
            unpublish_no_volume
        ),
        case!(
            C,
            "ControllerUnpublishVolume: what is not published succeeds",
            P,
            unpublish_not_published
        ),
        case!(
            C,
            "DeleteVolume: a published volume is FAILED_PRECONDITION",
            PC,
            delete_published
        ),
        case!(
            C,
            "ControllerGetVolume: lists the nodes a volume is published to",
            &[
                CONTROLLER_SERVICE,
                PUBLISH_UNPUBLISH,
                CREATE_DELETE_VOLUME,
                GET_VOLUME
            ],
            get_volume_published
        ),
        case!(
            C,
            "ListVolumes: lists the nodes a volume is published to",
            &[
                CONTROLLER_SERVICE,
                PUBLISH_UNPUBLISH,
                CREATE_DELETE_VOLUME,
                LIST_VOLUMES,
                LIST_PUBLISHED_NODES
            ],
            list_published
        ),
    ]
}

fn sn_writer(ctx: &Ctx) -> VolumeCapability {
    ctx.mount_cap(Mode::SingleNodeWriter)
}

async fn publish_no_volume(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .controller_publish(ControllerPublishVolumeRequest::default())
        .await;
    fails_with(
        "ControllerPublishVolume without a volume id",
        r,
        Code::InvalidArgument,
    )
}

async fn publish_no_node(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .controller_publish(ControllerPublishVolumeRequest {
            volume_id: ctx.ids().absent_volume_id(),
            ..Default::default()
        })
        .await;
    fails_with(
        "ControllerPublishVolume without a node id",
        r,
        Code::InvalidArgument,
    )
}

async fn publish_no_cap(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .controller_publish(ControllerPublishVolumeRequest {
            volume_id: ctx.ids().absent_volume_id(),
            node_id: ctx.ids().absent_node_id(),
            ..Default::default()
        })
        .await;
    fails_with(
        "ControllerPublishVolume without a capability",
        r,
        Code::InvalidArgument,
    )
}

async fn publish_over_limit(ctx: &Ctx) -> CaseResult {
    let limit = ctx.adv().max_volumes_per_node;
    for _ in 0..limit {
        let v = ctx.new_volume("conformance-attach-limit").await?;
        succeeds(
            "ControllerPublishVolume within the limit",
            ctx.controller_publish(ctx.publish_request(&v, sn_writer(ctx)))
                .await,
        )?;
    }
    let extra = ctx.new_volume("conformance-attach-limit-extra").await?;
    let r = ctx
        .controller_publish(ctx.publish_request(&extra, sn_writer(ctx)))
        .await;
    ensure(r.is_err(), || {
        format!(
            "ControllerPublishVolume: volume {} over the node's limit of {limit} was published",
            limit + 1
        )
    })
}

async fn publish_absent_volume(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .controller_publish(ControllerPublishVolumeRequest {
            volume_id: ctx.ids().absent_volume_id(),
            node_id: ctx.ids().absent_node_id(),
            volume_capability: Some(sn_writer(ctx)),
            readonly: false,
            ..Default::default()
        })
        .await;
    fails_with(
        "ControllerPublishVolume of an absent volume",
        r,
        Code::NotFound,
    )
}

async fn publish_absent_node(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-wrong-node").await?;
    let mut req = ctx.publish_request(&v, sn_writer(ctx));
    req.node_id = ctx.ids().absent_node_id();
    req.volume_context.clear();
    let r = ctx.controller_publish(req).await;
    fails_with(
        "ControllerPublishVolume to a node that does not exist",
        r,
        Code::NotFound,
    )
}

async fn publish_incompatible(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-incompatible").await?;
    let mut req = ctx.publish_request(&v, sn_writer(ctx));
    req.volume_context.clear();
    succeeds(
        "ControllerPublishVolume read-write",
        ctx.controller_publish(req.clone()).await,
    )?;
    req.readonly = true;
    let r = ctx.controller_publish(req).await;
    fails_with(
        "ControllerPublishVolume read-only to the same node",
        r,
        Code::AlreadyExists,
    )
}

/// CSI spec, ControllerPublishVolume: a volume already published to the node with the same
/// arguments MUST be answered OK.
async fn publish_twice(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-publish-twice").await?;
    let req = ctx.publish_request(&v, sn_writer(ctx));
    let a = succeeds(
        "ControllerPublishVolume",
        ctx.controller_publish(req.clone()).await,
    )?;
    let b = succeeds(
        "ControllerPublishVolume again",
        ctx.controller_publish(req).await,
    )?;
    ensure(a.publish_context == b.publish_context, || {
        format!(
            "ControllerPublishVolume twice gave different contexts: {:?} then {:?}",
            a.publish_context, b.publish_context
        )
    })
}

/// CSI spec, ControllerPublishVolume errors: "Volume published to another node | 9
/// FAILED_PRECONDITION" for a volume without a MULTI_NODE capability.
async fn publish_second_node(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-second-node").await?;
    succeeds(
        "ControllerPublishVolume",
        ctx.controller_publish(ctx.publish_request(&v, sn_writer(ctx)))
            .await,
    )?;
    let mut other = ctx.publish_request(&v, sn_writer(ctx));
    // A second node the controller knows; a controller that checks no node ids (no
    // `second_node_id` configured) is asked with a made-up one.
    other.node_id = ctx
        .config()
        .second_node_id
        .clone()
        .unwrap_or_else(|| ctx.ids().absent_node_id());
    let r = ctx.controller_publish(other).await;
    fails_with(
        "ControllerPublishVolume of a SINGLE_NODE_WRITER volume to a second node",
        r,
        Code::FailedPrecondition,
    )
}

async fn controller_lifecycle(ctx: &Ctx, count: usize) -> CaseResult {
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-controller-publish"));
    req.capacity_range = None;
    let v = ctx.must_create_volume(req).await?;
    let node = ctx.node_id();
    for i in 0..count {
        succeeds(
            &format!("ControllerPublishVolume #{}", i + 1),
            ctx.controller_publish(ctx.publish_request(&v, sn_writer(ctx)))
                .await,
        )?;
    }
    for i in 0..count {
        succeeds(
            &format!("ControllerUnpublishVolume #{}", i + 1),
            ctx.controller_unpublish(&v.volume_id, &node).await,
        )?;
    }
    succeeds("DeleteVolume", ctx.delete_volume(&v.volume_id).await)
}

async fn lifecycle_once(ctx: &Ctx) -> CaseResult {
    controller_lifecycle(ctx, 1).await
}

async fn lifecycle_repeated(ctx: &Ctx) -> CaseResult {
    controller_lifecycle(ctx, ctx.config().idempotent_count).await
}

async fn unpublish_no_volume(ctx: &Ctx) -> CaseResult {
    let r = ctx.controller_unpublish("", "").await;
    fails_with(
        "ControllerUnpublishVolume without a volume id",
        r,
        Code::InvalidArgument,
    )
}

/// CSI spec, ControllerUnpublishVolume: a volume or node the plugin cannot find, and so
/// can regard as unpublished, SHOULD be answered OK.
async fn unpublish_not_published(ctx: &Ctx) -> CaseResult {
    let vol = ctx.ids().absent_volume_id();
    succeeds(
        "ControllerUnpublishVolume of an absent volume from an absent node",
        ctx.controller_unpublish(&vol, &ctx.ids().absent_node_id())
            .await,
    )?;
    succeeds(
        "ControllerUnpublishVolume of an absent volume from every node",
        ctx.controller_unpublish(&vol, "").await,
    )
}

/// CSI spec, DeleteVolume errors: "Volume in use | 9 FAILED_PRECONDITION".
async fn delete_published(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-delete-in-use").await?;
    succeeds(
        "ControllerPublishVolume",
        ctx.controller_publish(ctx.publish_request(&v, sn_writer(ctx)))
            .await,
    )?;
    let r = ctx.delete_volume(&v.volume_id).await;
    fails_with(
        "DeleteVolume of a published volume",
        r,
        Code::FailedPrecondition,
    )
}

async fn published_nodes_of(ctx: &Ctx, id: &str) -> Result<Vec<String>, String> {
    let r = succeeds(
        "ControllerGetVolume",
        ctx.call(
            ctx.controller()
                .controller_get_volume(ControllerGetVolumeRequest {
                    volume_id: id.to_string(),
                }),
        )
        .await,
    )?;
    Ok(r.status.map(|s| s.published_node_ids).unwrap_or_default())
}

async fn get_volume_published(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-get-published").await?;
    succeeds(
        "ControllerPublishVolume",
        ctx.controller_publish(ctx.publish_request(&v, sn_writer(ctx)))
            .await,
    )?;
    let nodes = published_nodes_of(ctx, &v.volume_id).await?;
    ensure(nodes == vec![ctx.node_id()], || {
        format!(
            "ControllerGetVolume: published to {nodes:?}, expected [{}]",
            ctx.node_id()
        )
    })?;
    succeeds(
        "ControllerUnpublishVolume",
        ctx.controller_unpublish(&v.volume_id, &ctx.node_id()).await,
    )?;
    let nodes = published_nodes_of(ctx, &v.volume_id).await?;
    ensure(nodes.is_empty(), || {
        format!("ControllerGetVolume: still published to {nodes:?} after unpublish")
    })
}

async fn list_published(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-list-published").await?;
    succeeds(
        "ControllerPublishVolume",
        ctx.controller_publish(ctx.publish_request(&v, sn_writer(ctx)))
            .await,
    )?;
    let r = succeeds(
        "ListVolumes",
        ctx.call(ctx.controller().list_volumes(ListVolumesRequest::default()))
            .await,
    )?;
    let entry = r
        .entries
        .iter()
        .find(|e| {
            e.volume
                .as_ref()
                .is_some_and(|x| x.volume_id == v.volume_id)
        })
        .ok_or_else(|| format!("ListVolumes does not list {}", v.volume_id))?;
    let nodes = entry
        .status
        .as_ref()
        .map(|s| s.published_node_ids.clone())
        .unwrap_or_default();
    ensure(nodes == vec![ctx.node_id()], || {
        format!(
            "ListVolumes: {} published to {nodes:?}, expected [{}]",
            v.volume_id,
            ctx.node_id()
        )
    })
}
