//! Snapshot cases: CreateSnapshot (arguments, idempotency, name clashes), DeleteSnapshot
//! (arguments, what does not exist, idempotency) and ListSnapshots (filters, paging).

use std::collections::HashSet;

use rds_csi_proto::csi::*;
use tonic::Code;

use super::*;
use crate::conformance::context::{Ctx, check_snapshot};
use crate::conformance::expect::{ensure, fails_with, succeeds};
use crate::conformance::ids::MAX_NAME_LEN;
use crate::conformance::registry::{Area, Case, CaseResult, Need, case};

pub fn cases() -> Vec<Case> {
    use Area::Snapshot as S;
    const L: &[Need] = &[CONTROLLER_SERVICE, LIST_SNAPSHOTS];
    const LC: &[Need] = &[
        CONTROLLER_SERVICE,
        LIST_SNAPSHOTS,
        CREATE_DELETE_SNAPSHOT,
        CREATE_DELETE_VOLUME,
    ];
    const D: &[Need] = &[CONTROLLER_SERVICE, CREATE_DELETE_SNAPSHOT];
    const DC: &[Need] = &[
        CONTROLLER_SERVICE,
        CREATE_DELETE_SNAPSHOT,
        CREATE_DELETE_VOLUME,
    ];
    vec![
        case!(
            S,
            "ListSnapshots: every entry describes a snapshot fully",
            L,
            list_plain
        ),
        case!(
            S,
            "ListSnapshots: filtering by snapshot id finds exactly it",
            LC,
            list_by_id
        ),
        case!(
            S,
            "ListSnapshots: an unknown snapshot id lists nothing",
            L,
            list_unknown_id
        ),
        case!(
            S,
            "ListSnapshots: filtering by source volume finds exactly its snapshot",
            LC,
            list_by_source
        ),
        case!(
            S,
            "ListSnapshots: an absent source volume lists nothing",
            L,
            list_unknown_source
        ),
        case!(
            S,
            "ListSnapshots: a created snapshot appears and a deleted one goes",
            LC,
            list_tracks_create_delete
        ),
        case!(
            S,
            "ListSnapshots: max_entries gives a page and a token for the rest",
            LC,
            list_paged
        ),
        case!(
            S,
            "ListSnapshots: an unknown starting_token is ABORTED",
            L,
            list_bad_token
        ),
        case!(
            S,
            "DeleteSnapshot: no snapshot id is INVALID_ARGUMENT",
            D,
            delete_no_id
        ),
        case!(
            S,
            "DeleteSnapshot: an id of foreign form succeeds",
            D,
            delete_foreign_id
        ),
        case!(
            S,
            "DeleteSnapshot: deletes a created snapshot",
            DC,
            delete_plain
        ),
        case!(
            S,
            "DeleteSnapshot: twice succeeds and the snapshot is gone",
            DC,
            delete_twice
        ),
        case!(
            S,
            "CreateSnapshot: no name is INVALID_ARGUMENT",
            D,
            create_no_name
        ),
        case!(
            S,
            "CreateSnapshot: no source volume id is INVALID_ARGUMENT",
            D,
            create_no_source
        ),
        case!(
            S,
            "CreateSnapshot: same name and source twice is one snapshot",
            DC,
            create_twice
        ),
        case!(
            S,
            "CreateSnapshot: same name of another volume is ALREADY_EXISTS",
            DC,
            create_name_clash
        ),
        case!(
            S,
            "CreateSnapshot: a 128-byte name is accepted",
            DC,
            create_max_name
        ),
    ]
}

async fn list(ctx: &Ctx, req: ListSnapshotsRequest) -> Result<ListSnapshotsResponse, String> {
    let what = format!(
        "ListSnapshots (id {:?}, source {:?}, max {}, token {:?})",
        req.snapshot_id, req.source_volume_id, req.max_entries, req.starting_token
    );
    succeeds(&what, ctx.call(ctx.controller().list_snapshots(req)).await)
}

fn snapshots(r: &ListSnapshotsResponse) -> Result<Vec<Snapshot>, String> {
    r.entries
        .iter()
        .map(|e| {
            e.snapshot
                .clone()
                .ok_or_else(|| "ListSnapshots: an entry has no snapshot".to_string())
        })
        .collect()
}

async fn list_plain(ctx: &Ctx) -> CaseResult {
    for s in snapshots(&list(ctx, ListSnapshotsRequest::default()).await?)? {
        check_snapshot(&s).map_err(|e| format!("ListSnapshots: {e}"))?;
    }
    Ok(())
}

/// Three snapshots of three volumes; returns the middle one (the others are decoys).
async fn three_snapshots(ctx: &Ctx) -> Result<Snapshot, String> {
    ctx.new_snapshot_of_new_volume("conformance-decoy-vol", "conformance-decoy-snap")
        .await?;
    let (target, _) = ctx
        .new_snapshot_of_new_volume("conformance-target-vol", "conformance-target-snap")
        .await?;
    ctx.new_snapshot_of_new_volume("conformance-decoy-vol", "conformance-decoy-snap")
        .await?;
    Ok(target)
}

async fn list_by_id(ctx: &Ctx) -> CaseResult {
    let target = three_snapshots(ctx).await?;
    let found = snapshots(
        &list(
            ctx,
            ListSnapshotsRequest {
                snapshot_id: target.snapshot_id.clone(),
                ..Default::default()
            },
        )
        .await?,
    )?;
    ensure(found.len() == 1, || {
        format!("ListSnapshots by id: {} entries, expected 1", found.len())
    })?;
    check_snapshot(&found[0])?;
    ensure(found[0].snapshot_id == target.snapshot_id, || {
        format!(
            "ListSnapshots by id {}: got {}",
            target.snapshot_id, found[0].snapshot_id
        )
    })
}

async fn list_unknown_id(ctx: &Ctx) -> CaseResult {
    for id in [
        ctx.ids().foreign_snapshot_id(),
        ctx.ids().absent_snapshot_id(),
    ] {
        let found = snapshots(
            &list(
                ctx,
                ListSnapshotsRequest {
                    snapshot_id: id.clone(),
                    ..Default::default()
                },
            )
            .await?,
        )?;
        ensure(found.is_empty(), || {
            format!("ListSnapshots by unknown id {id}: {} entries", found.len())
        })?;
    }
    Ok(())
}

async fn list_by_source(ctx: &Ctx) -> CaseResult {
    let target = three_snapshots(ctx).await?;
    let found = snapshots(
        &list(
            ctx,
            ListSnapshotsRequest {
                source_volume_id: target.source_volume_id.clone(),
                ..Default::default()
            },
        )
        .await?,
    )?;
    ensure(found.len() == 1, || {
        format!(
            "ListSnapshots by source: {} entries, expected 1",
            found.len()
        )
    })?;
    check_snapshot(&found[0])?;
    ensure(found[0].source_volume_id == target.source_volume_id, || {
        format!(
            "ListSnapshots by source {}: got a snapshot of {}",
            target.source_volume_id, found[0].source_volume_id
        )
    })
}

async fn list_unknown_source(ctx: &Ctx) -> CaseResult {
    let found = snapshots(
        &list(
            ctx,
            ListSnapshotsRequest {
                source_volume_id: ctx.ids().absent_volume_id(),
                ..Default::default()
            },
        )
        .await?,
    )?;
    ensure(found.is_empty(), || {
        format!("ListSnapshots by an absent source: {} entries", found.len())
    })
}

async fn list_tracks_create_delete(ctx: &Ctx) -> CaseResult {
    let before = snapshots(&list(ctx, ListSnapshotsRequest::default()).await?)?.len();
    let (snap, _) = ctx
        .new_snapshot_of_new_volume("conformance-listed-vol", "conformance-listed-snap")
        .await?;
    let during = snapshots(&list(ctx, ListSnapshotsRequest::default()).await?)?;
    ensure(during.len() == before + 1, || {
        format!(
            "ListSnapshots: {before} entries before CreateSnapshot, {} after",
            during.len()
        )
    })?;
    succeeds(
        "DeleteSnapshot",
        ctx.delete_snapshot(&snap.snapshot_id).await,
    )?;
    let after = snapshots(&list(ctx, ListSnapshotsRequest::default()).await?)?;
    ensure(after.len() == before, || {
        format!(
            "ListSnapshots: {before} entries before, {} after create and delete",
            after.len()
        )
    })?;
    ensure(
        !after.iter().any(|s| s.snapshot_id == snap.snapshot_id),
        || format!("ListSnapshots still lists the deleted {}", snap.snapshot_id),
    )
}

async fn list_paged(ctx: &Ctx) -> CaseResult {
    const MIN: usize = 5;
    const MAX_ENTRIES: usize = 2;
    let initial = snapshots(&list(ctx, ListSnapshotsRequest::default()).await?)?.len();
    let mut total = initial;
    while total < MIN {
        let (s, _) = ctx
            .new_snapshot_of_new_volume("conformance-paged-vol", "conformance-paged-snap")
            .await?;
        check_snapshot(&s)?;
        total += 1;
    }
    let first = list(
        ctx,
        ListSnapshotsRequest {
            max_entries: MAX_ENTRIES as i32,
            ..Default::default()
        },
    )
    .await?;
    let first_ids: Vec<String> = snapshots(&first)?
        .into_iter()
        .map(|s| s.snapshot_id)
        .collect();
    ensure(first_ids.len() == MAX_ENTRIES, || {
        format!(
            "ListSnapshots: max_entries {MAX_ENTRIES} gave {} entries",
            first_ids.len()
        )
    })?;
    ensure(!first.next_token.is_empty(), || {
        format!("ListSnapshots: {total} snapshots but no next_token after {MAX_ENTRIES}")
    })?;
    let rest = list(
        ctx,
        ListSnapshotsRequest {
            starting_token: first.next_token.clone(),
            ..Default::default()
        },
    )
    .await?;
    let rest_ids: Vec<String> = snapshots(&rest)?
        .into_iter()
        .map(|s| s.snapshot_id)
        .collect();
    ensure(rest_ids.len() == total - MAX_ENTRIES, || {
        format!(
            "ListSnapshots after the token: {} entries, expected {}",
            rest_ids.len(),
            total - MAX_ENTRIES
        )
    })?;
    let all: HashSet<&String> = first_ids.iter().chain(rest_ids.iter()).collect();
    ensure(all.len() == total, || {
        "ListSnapshots: the two pages overlap".to_string()
    })
}

/// CSI spec, ListSnapshots errors: "Invalid starting_token | 10 ABORTED".
async fn list_bad_token(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .call(ctx.controller().list_snapshots(ListSnapshotsRequest {
            starting_token: "conformance-unknown-token".into(),
            ..Default::default()
        }))
        .await;
    fails_with("ListSnapshots with an unknown token", r, Code::Aborted)
}

async fn delete_no_id(ctx: &Ctx) -> CaseResult {
    let r = ctx.delete_snapshot("").await;
    fails_with("DeleteSnapshot without an id", r, Code::InvalidArgument)
}

async fn delete_foreign_id(ctx: &Ctx) -> CaseResult {
    let id = "conformance-fake-snapshot-id";
    succeeds(
        &format!("DeleteSnapshot {id} (an id of foreign form)"),
        ctx.delete_snapshot(id).await,
    )
}

async fn delete_plain(ctx: &Ctx) -> CaseResult {
    let (snap, _) = ctx
        .new_snapshot_of_new_volume("conformance-del-vol", "conformance-del-snap")
        .await?;
    succeeds(
        "DeleteSnapshot",
        ctx.delete_snapshot(&snap.snapshot_id).await,
    )
}

/// CSI spec, DeleteSnapshot: a snapshot that does not exist MUST be answered OK.
async fn delete_twice(ctx: &Ctx) -> CaseResult {
    let (snap, _) = ctx
        .new_snapshot_of_new_volume("conformance-del2-vol", "conformance-del2-snap")
        .await?;
    succeeds(
        "DeleteSnapshot",
        ctx.delete_snapshot(&snap.snapshot_id).await,
    )?;
    succeeds(
        "DeleteSnapshot again",
        ctx.delete_snapshot(&snap.snapshot_id).await,
    )?;
    succeeds(
        "DeleteSnapshot of an absent snapshot",
        ctx.delete_snapshot(&ctx.ids().absent_snapshot_id()).await,
    )?;
    if ctx
        .adv()
        .has_controller(rds_csi_proto::csi::controller_service_capability::rpc::Type::ListSnapshots)
    {
        let left = snapshots(
            &list(
                ctx,
                ListSnapshotsRequest {
                    snapshot_id: snap.snapshot_id.clone(),
                    ..Default::default()
                },
            )
            .await?,
        )?;
        ensure(left.is_empty(), || {
            format!("ListSnapshots still lists the deleted {}", snap.snapshot_id)
        })?;
    }
    Ok(())
}

async fn create_no_name(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .create_snapshot(ctx.snapshot_request("", "conformance-source-id"))
        .await;
    fails_with("CreateSnapshot without a name", r, Code::InvalidArgument)
}

async fn create_no_source(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .create_snapshot(ctx.snapshot_request("conformance-name", ""))
        .await;
    fails_with(
        "CreateSnapshot without a source volume",
        r,
        Code::InvalidArgument,
    )
}

async fn create_twice(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-snap-twice-vol").await?;
    let req = ctx.snapshot_request(&ctx.ids().unique("conformance-snap-twice"), &v.volume_id);
    let a = ctx.must_create_snapshot(req.clone()).await?;
    let b = ctx.must_create_snapshot(req).await?;
    ensure(a.snapshot_id == b.snapshot_id, || {
        format!(
            "CreateSnapshot twice made two snapshots: {} and {}",
            a.snapshot_id, b.snapshot_id
        )
    })
}

async fn create_name_clash(ctx: &Ctx) -> CaseResult {
    let name = ctx.ids().unique("conformance-snap-clash");
    let first = ctx.new_volume("conformance-clash-vol").await?;
    ctx.must_create_snapshot(ctx.snapshot_request(&name, &first.volume_id))
        .await?;
    let second = ctx.new_volume("conformance-clash-vol").await?;
    let r = ctx
        .create_snapshot(ctx.snapshot_request(&name, &second.volume_id))
        .await;
    fails_with(
        "CreateSnapshot of the same name from another volume",
        r,
        Code::AlreadyExists,
    )
}

async fn create_max_name(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-snap-maxlen-vol").await?;
    let name = ctx
        .ids()
        .unique_with_length("conformance-snap-maxlen", MAX_NAME_LEN);
    let req = ctx.snapshot_request(&name, &v.volume_id);
    ctx.must_create_snapshot(req.clone()).await?;
    ctx.must_create_snapshot(req).await?;
    Ok(())
}
