//! Controller service cases about volumes themselves: capabilities, GetCapacity,
//! ListVolumes and its paging, CreateVolume (arguments, idempotency, sizes, content
//! sources), DeleteVolume, ValidateVolumeCapabilities and ControllerGetVolume.

use std::collections::{HashMap, HashSet};

use rds_csi_proto::csi::controller_service_capability::rpc::Type as ControllerRpc;
use rds_csi_proto::csi::volume_capability::access_mode::Mode;
use rds_csi_proto::csi::volume_content_source::{SnapshotSource, Type as SourceType, VolumeSource};
use rds_csi_proto::csi::*;
use tonic::Code;

use super::*;
use crate::conformance::context::Ctx;
use crate::conformance::expect::{ensure, fails_with, fails_with_any, succeeds};
use crate::conformance::ids::MAX_NAME_LEN;
use crate::conformance::registry::{Area, Case, CaseResult, case};

const MIB: i64 = 1 << 20;

pub fn cases() -> Vec<Case> {
    use Area::Controller as C;
    const CREATE: &[crate::conformance::registry::Need] =
        &[CONTROLLER_SERVICE, CREATE_DELETE_VOLUME];
    vec![
        case!(
            C,
            "ControllerGetCapabilities: every capability is one the spec defines",
            &[CONTROLLER_SERVICE],
            capabilities_known
        ),
        case!(
            C,
            "GetCapacity: answers without optional fields",
            &[CONTROLLER_SERVICE, GET_CAPACITY],
            capacity_plain
        ),
        case!(
            C,
            "ListVolumes: every entry names a volume",
            &[CONTROLLER_SERVICE, LIST_VOLUMES],
            list_plain
        ),
        case!(
            C,
            "ListVolumes: an unknown starting_token is ABORTED",
            &[CONTROLLER_SERVICE, LIST_VOLUMES],
            list_bad_token
        ),
        case!(
            C,
            "ListVolumes: a created volume appears and a deleted one goes",
            &[CONTROLLER_SERVICE, LIST_VOLUMES, CREATE_DELETE_VOLUME],
            list_tracks_create_delete
        ),
        case!(
            C,
            "ListVolumes: pages of max_entries visit every volume once",
            &[CONTROLLER_SERVICE, LIST_VOLUMES, CREATE_DELETE_VOLUME],
            list_pages_visit_each_once
        ),
        case!(
            C,
            "ListVolumes: a token survives volumes deleted and added between pages",
            &[CONTROLLER_SERVICE, LIST_VOLUMES, CREATE_DELETE_VOLUME],
            list_pages_survive_changes
        ),
        case!(
            C,
            "CreateVolume: no name is INVALID_ARGUMENT",
            CREATE,
            create_no_name
        ),
        case!(
            C,
            "CreateVolume: no capabilities is INVALID_ARGUMENT",
            CREATE,
            create_no_caps
        ),
        case!(
            C,
            "CreateVolume: no capacity range creates a volume",
            CREATE,
            create_no_range
        ),
        case!(
            C,
            "CreateVolume: required_bytes only creates a volume that large",
            CREATE,
            create_required_only
        ),
        case!(
            C,
            "CreateVolume: same name and size twice is one volume",
            CREATE,
            create_idempotent
        ),
        case!(
            C,
            "CreateVolume: same name with another size is ALREADY_EXISTS",
            CREATE,
            create_other_size
        ),
        case!(
            C,
            "CreateVolume: a 128-byte name is accepted",
            CREATE,
            create_max_name
        ),
        case!(
            C,
            "CreateVolume: size is rounded up, never down",
            CREATE,
            create_rounds_up
        ),
        case!(
            C,
            "CreateVolume: the size stays within limit_bytes",
            CREATE,
            create_within_limit
        ),
        case!(
            C,
            "CreateVolume: required_bytes above limit_bytes is refused",
            CREATE,
            create_required_over_limit
        ),
        case!(
            C,
            "CreateVolume: negative sizes are refused",
            CREATE,
            create_negative
        ),
        case!(
            C,
            "CreateVolume: a limit below the smallest volume is OUT_OF_RANGE",
            CREATE,
            create_limit_too_small
        ),
        case!(
            C,
            "CreateVolume: from a snapshot",
            &[
                CONTROLLER_SERVICE,
                CREATE_DELETE_VOLUME,
                CREATE_DELETE_SNAPSHOT
            ],
            create_from_snapshot
        ),
        case!(
            C,
            "CreateVolume: from a snapshot id of foreign form is NOT_FOUND",
            &[
                CONTROLLER_SERVICE,
                CREATE_DELETE_VOLUME,
                CREATE_DELETE_SNAPSHOT
            ],
            create_from_foreign_snapshot
        ),
        case!(
            C,
            "CreateVolume: from an absent snapshot is NOT_FOUND",
            &[
                CONTROLLER_SERVICE,
                CREATE_DELETE_VOLUME,
                CREATE_DELETE_SNAPSHOT
            ],
            create_from_absent_snapshot
        ),
        case!(
            C,
            "CreateVolume: from a volume (clone)",
            &[CONTROLLER_SERVICE, CREATE_DELETE_VOLUME, CLONE_VOLUME],
            create_from_volume
        ),
        case!(
            C,
            "CreateVolume: from an absent volume is NOT_FOUND",
            &[CONTROLLER_SERVICE, CREATE_DELETE_VOLUME, CLONE_VOLUME],
            create_from_absent_volume
        ),
        case!(
            C,
            "DeleteVolume: no volume id is INVALID_ARGUMENT",
            CREATE,
            delete_no_id
        ),
        case!(
            C,
            "DeleteVolume: an id of foreign form succeeds",
            CREATE,
            delete_foreign_id
        ),
        case!(
            C,
            "DeleteVolume: an absent volume succeeds",
            CREATE,
            delete_absent
        ),
        case!(
            C,
            "DeleteVolume: deletes a created volume",
            CREATE,
            delete_plain
        ),
        case!(
            C,
            "DeleteVolume: twice succeeds and the volume is gone",
            CREATE,
            delete_twice
        ),
        case!(
            C,
            "ValidateVolumeCapabilities: no volume id is INVALID_ARGUMENT",
            &[CONTROLLER_SERVICE],
            validate_no_id
        ),
        case!(
            C,
            "ValidateVolumeCapabilities: no capabilities is INVALID_ARGUMENT",
            CREATE,
            validate_no_caps
        ),
        case!(
            C,
            "ValidateVolumeCapabilities: the created capability is confirmed",
            CREATE,
            validate_confirmed
        ),
        case!(
            C,
            "ValidateVolumeCapabilities: an absent volume is NOT_FOUND",
            &[CONTROLLER_SERVICE],
            validate_absent
        ),
        case!(
            C,
            "ControllerGetVolume: no volume id is INVALID_ARGUMENT",
            &[CONTROLLER_SERVICE, GET_VOLUME],
            get_volume_no_id
        ),
        case!(
            C,
            "ControllerGetVolume: an absent volume is NOT_FOUND",
            &[CONTROLLER_SERVICE, GET_VOLUME],
            get_volume_absent
        ),
        case!(
            C,
            "ControllerGetVolume: describes a created volume",
            &[CONTROLLER_SERVICE, GET_VOLUME, CREATE_DELETE_VOLUME],
            get_volume_plain
        ),
    ]
}

async fn capabilities_known(ctx: &Ctx) -> CaseResult {
    let caps = succeeds(
        "ControllerGetCapabilities",
        ctx.call(
            ctx.controller()
                .controller_get_capabilities(ControllerGetCapabilitiesRequest {}),
        )
        .await,
    )?
    .capabilities;
    ensure(!caps.is_empty(), || {
        "ControllerGetCapabilities: no capabilities at all".into()
    })?;
    for c in caps {
        let Some(controller_service_capability::Type::Rpc(r)) = &c.r#type else {
            return Err(format!(
                "ControllerGetCapabilities: {c:?} is not an RPC capability"
            ));
        };
        let known = ControllerRpc::try_from(r.r#type).is_ok_and(|t| t != ControllerRpc::Unknown);
        ensure(known, || {
            format!("ControllerGetCapabilities: unknown capability {}", r.r#type)
        })?;
    }
    Ok(())
}

async fn capacity_plain(ctx: &Ctx) -> CaseResult {
    let r = succeeds(
        "GetCapacity",
        ctx.call(ctx.controller().get_capacity(GetCapacityRequest::default()))
            .await,
    )?;
    ensure(r.available_capacity >= 0, || {
        format!(
            "GetCapacity: negative available_capacity {}",
            r.available_capacity
        )
    })
}

async fn list_plain(ctx: &Ctx) -> CaseResult {
    for v in list_all_volumes(ctx).await? {
        ensure(!v.volume_id.is_empty(), || {
            "ListVolumes: an entry has an empty volume id".into()
        })?;
    }
    Ok(())
}

async fn list_bad_token(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .call(ctx.controller().list_volumes(ListVolumesRequest {
            max_entries: 0,
            starting_token: "conformance-unknown-token".into(),
        }))
        .await;
    fails_with("ListVolumes with an unknown token", r, Code::Aborted)
}

async fn list_tracks_create_delete(ctx: &Ctx) -> CaseResult {
    let before = list_all_volumes(ctx).await?;
    let name = ctx.ids().unique("conformance-listed");
    let vol = ctx
        .must_create_volume(CreateVolumeRequest {
            name,
            volume_capabilities: vec![ctx.mount_cap(Mode::SingleNodeWriter)],
            parameters: ctx.config().volume_parameters.clone(),
            ..Default::default()
        })
        .await?;
    let during = list_all_volumes(ctx).await?;
    ensure(during.len() == before.len() + 1, || {
        format!(
            "ListVolumes: {} entries before CreateVolume, {} after",
            before.len(),
            during.len()
        )
    })?;
    ensure(during.iter().any(|v| v.volume_id == vol.volume_id), || {
        format!(
            "ListVolumes: the new volume {} is not listed",
            vol.volume_id
        )
    })?;
    succeeds("DeleteVolume", ctx.delete_volume(&vol.volume_id).await)?;
    let after = list_all_volumes(ctx).await?;
    ensure(after.len() == before.len(), || {
        format!(
            "ListVolumes: {} entries before, {} after create and delete",
            before.len(),
            after.len()
        )
    })?;
    ensure(!after.iter().any(|v| v.volume_id == vol.volume_id), || {
        format!(
            "ListVolumes: the deleted volume {} is still listed",
            vol.volume_id
        )
    })
}

async fn list_page(ctx: &Ctx, max: i32, token: &str) -> Result<ListVolumesResponse, String> {
    succeeds(
        &format!("ListVolumes (max_entries {max}, token {token:?})"),
        ctx.call(ctx.controller().list_volumes(ListVolumesRequest {
            max_entries: max,
            starting_token: token.to_string(),
        }))
        .await,
    )
}

fn page_ids(page: &ListVolumesResponse) -> Vec<String> {
    page.entries
        .iter()
        .filter_map(|e| e.volume.as_ref().map(|v| v.volume_id.clone()))
        .collect()
}

async fn list_pages_visit_each_once(ctx: &Ctx) -> CaseResult {
    let mut created = Vec::new();
    for _ in 0..3 {
        created.push(ctx.new_volume("conformance-paged").await?.volume_id);
    }
    let total = list_all_volumes(ctx).await?.len();
    let first = list_page(ctx, 2, "").await?;
    ensure(first.entries.len() == 2, || {
        format!(
            "ListVolumes: max_entries 2 gave {} entries",
            first.entries.len()
        )
    })?;
    ensure(!first.next_token.is_empty(), || {
        format!("ListVolumes: {total} volumes but no next_token after a page of 2")
    })?;
    let mut seen: Vec<String> = Vec::new();
    let mut token = String::new();
    for _ in 0..=total + 1 {
        let page = list_page(ctx, 1, &token).await?;
        ensure(page.entries.len() <= 1, || {
            format!(
                "ListVolumes: max_entries 1 gave {} entries",
                page.entries.len()
            )
        })?;
        seen.extend(page_ids(&page));
        if page.next_token.is_empty() {
            break;
        }
        token = page.next_token;
    }
    let unique: HashSet<&String> = seen.iter().collect();
    ensure(unique.len() == seen.len(), || {
        format!("ListVolumes: paging returned duplicates: {seen:?}")
    })?;
    ensure(seen.len() == total, || {
        format!(
            "ListVolumes: paging visited {} volumes of {total}",
            seen.len()
        )
    })?;
    for id in &created {
        ensure(unique.contains(id), || {
            format!("ListVolumes: paging never returned {id}")
        })?;
    }
    Ok(())
}

/// csi-sanity keeps this scenario disabled because index-based paging cannot pass it; the
/// brief asks for it, so it runs here.
async fn list_pages_survive_changes(ctx: &Ctx) -> CaseResult {
    const MIN: usize = 3;
    const MAX_ENTRIES: usize = 2;
    let mut existing: HashMap<String, bool> = list_all_volumes(ctx)
        .await?
        .into_iter()
        .map(|v| (v.volume_id, true))
        .collect();
    let mut count = existing.len();
    while count < MIN {
        let v = ctx.new_volume("conformance-paging").await?;
        existing.insert(v.volume_id, true);
        count += 1;
    }
    let first = list_page(ctx, MAX_ENTRIES as i32, "").await?;
    let first_ids = page_ids(&first);
    ensure(first_ids.len() == MAX_ENTRIES, || {
        format!(
            "ListVolumes: max_entries {MAX_ENTRIES} gave {} entries",
            first_ids.len()
        )
    })?;
    for id in &first_ids {
        ensure(existing.get(id) == Some(&true), || {
            format!("ListVolumes: listed {id}, which should not exist")
        })?;
        succeeds("DeleteVolume", ctx.delete_volume(id).await)?;
        existing.insert(id.clone(), false);
    }
    let added = ctx.new_volume("conformance-paging-added").await?;
    existing.insert(added.volume_id, true);
    let rest = list_page(ctx, 0, &first.next_token).await?;
    let rest_ids = page_ids(&rest);
    ensure(rest_ids.len() <= count - MAX_ENTRIES + 1, || {
        format!(
            "ListVolumes: {} entries after the token, at most {} expected",
            rest_ids.len(),
            count - MAX_ENTRIES + 1
        )
    })?;
    for id in rest_ids {
        ensure(existing.get(&id) == Some(&true), || {
            format!("ListVolumes: after the token, {id} is deleted, unknown or listed twice")
        })?;
        existing.insert(id, false);
    }
    Ok(())
}

async fn create_no_name(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .create_volume(CreateVolumeRequest {
            parameters: ctx.config().volume_parameters.clone(),
            ..Default::default()
        })
        .await;
    fails_with("CreateVolume without a name", r, Code::InvalidArgument)
}

async fn create_no_caps(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .create_volume(CreateVolumeRequest {
            name: ctx.ids().unique("conformance-no-caps"),
            parameters: ctx.config().volume_parameters.clone(),
            ..Default::default()
        })
        .await;
    fails_with(
        "CreateVolume without capabilities",
        r,
        Code::InvalidArgument,
    )
}

async fn create_no_range(ctx: &Ctx) -> CaseResult {
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-no-range"));
    req.capacity_range = None;
    let v = ctx.must_create_volume(req).await?;
    ensure(v.capacity_bytes >= 0, || {
        format!("CreateVolume: negative capacity {}", v.capacity_bytes)
    })
}

async fn create_required_only(ctx: &Ctx) -> CaseResult {
    let size = ctx.config().volume_size;
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-required"));
    req.capacity_range = Some(CapacityRange {
        required_bytes: size,
        limit_bytes: 0,
    });
    let v = ctx.must_create_volume(req).await?;
    ensure(v.capacity_bytes == 0 || v.capacity_bytes >= size, || {
        format!(
            "CreateVolume: asked for {size} bytes, got {}",
            v.capacity_bytes
        )
    })
}

async fn create_idempotent(ctx: &Ctx) -> CaseResult {
    let size = ctx.config().volume_size;
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-twice"));
    req.capacity_range = Some(CapacityRange {
        required_bytes: size,
        limit_bytes: 0,
    });
    let a = ctx.must_create_volume(req.clone()).await?;
    let b = ctx.must_create_volume(req).await?;
    for v in [&a, &b] {
        ensure(v.capacity_bytes == 0 || v.capacity_bytes >= size, || {
            format!(
                "CreateVolume: asked for {size} bytes, got {}",
                v.capacity_bytes
            )
        })?;
    }
    ensure(a.volume_id == b.volume_id, || {
        format!(
            "CreateVolume twice made two volumes: {} and {}",
            a.volume_id, b.volume_id
        )
    })
}

async fn create_other_size(ctx: &Ctx) -> CaseResult {
    let size = ctx.config().volume_size;
    let name = ctx.ids().unique("conformance-twice-different");
    ctx.must_create_volume(ctx.create_request(&name)).await?;
    let mut req = ctx.create_request(&name);
    req.capacity_range = Some(CapacityRange {
        required_bytes: 2 * size,
        limit_bytes: 2 * size,
    });
    let r = ctx.create_volume(req).await;
    fails_with(
        "CreateVolume of the same name at twice the size",
        r,
        Code::AlreadyExists,
    )
}

async fn create_max_name(ctx: &Ctx) -> CaseResult {
    let size = ctx.config().volume_size;
    let name = ctx
        .ids()
        .unique_with_length("conformance-maxlen", MAX_NAME_LEN);
    let mut req = ctx.create_request(&name);
    req.capacity_range = Some(CapacityRange {
        required_bytes: size,
        limit_bytes: 0,
    });
    let v = ctx.must_create_volume(req).await?;
    ensure(v.capacity_bytes == 0 || v.capacity_bytes >= size, || {
        format!(
            "CreateVolume: asked for {size} bytes, got {}",
            v.capacity_bytes
        )
    })
}

/// CSI spec, CapacityRange.required_bytes: the volume MUST be at least this big.
async fn create_rounds_up(ctx: &Ctx) -> CaseResult {
    let want = ctx.config().volume_size + 1;
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-odd-size"));
    req.capacity_range = Some(CapacityRange {
        required_bytes: want,
        limit_bytes: 0,
    });
    let v = ctx.must_create_volume(req).await?;
    ensure(v.capacity_bytes >= want, || {
        format!(
            "CreateVolume: asked for at least {want} bytes, got {}",
            v.capacity_bytes
        )
    })
}

/// CSI spec, CapacityRange.limit_bytes: the volume MUST NOT be bigger than this.
async fn create_within_limit(ctx: &Ctx) -> CaseResult {
    let size = ctx.config().volume_size;
    let limit = size + 16 * MIB;
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-limited"));
    req.capacity_range = Some(CapacityRange {
        required_bytes: size + 1,
        limit_bytes: limit,
    });
    let v = ctx.must_create_volume(req).await?;
    ensure(v.capacity_bytes > size && v.capacity_bytes <= limit, || {
        format!(
            "CreateVolume: asked for {} to {limit} bytes, got {}",
            size + 1,
            v.capacity_bytes
        )
    })
}

async fn create_required_over_limit(ctx: &Ctx) -> CaseResult {
    let size = ctx.config().volume_size;
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-inverted"));
    req.capacity_range = Some(CapacityRange {
        required_bytes: 2 * size,
        limit_bytes: size,
    });
    let r = ctx.create_volume(req).await;
    fails_with_any(
        "CreateVolume with required_bytes above limit_bytes",
        r,
        &[Code::InvalidArgument, Code::OutOfRange],
    )
}

/// CSI spec, CapacityRange: "The value of this field MUST NOT be negative."
async fn create_negative(ctx: &Ctx) -> CaseResult {
    for (required, limit) in [(-1, 0), (0, -1)] {
        let mut req = ctx.create_request(&ctx.ids().unique("conformance-negative"));
        req.capacity_range = Some(CapacityRange {
            required_bytes: required,
            limit_bytes: limit,
        });
        let r = ctx.create_volume(req).await;
        fails_with(
            &format!("CreateVolume with required {required} and limit {limit}"),
            r,
            Code::InvalidArgument,
        )?;
    }
    Ok(())
}

/// CSI spec, CreateVolume errors: "Unsupported capacity_range | 11 OUT_OF_RANGE".
async fn create_limit_too_small(ctx: &Ctx) -> CaseResult {
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-tiny"));
    req.capacity_range = Some(CapacityRange {
        required_bytes: 0,
        limit_bytes: 1,
    });
    let r = ctx.create_volume(req).await;
    fails_with("CreateVolume with limit_bytes 1", r, Code::OutOfRange)
}

fn from_snapshot(id: &str) -> VolumeContentSource {
    VolumeContentSource {
        r#type: Some(SourceType::Snapshot(SnapshotSource {
            snapshot_id: id.to_string(),
        })),
    }
}

fn from_volume(id: &str) -> VolumeContentSource {
    VolumeContentSource {
        r#type: Some(SourceType::Volume(VolumeSource {
            volume_id: id.to_string(),
        })),
    }
}

async fn create_from_snapshot(ctx: &Ctx) -> CaseResult {
    let source = ctx.new_volume("conformance-source").await?;
    let snap = ready_snapshot(
        ctx,
        ctx.snapshot_request(&ctx.ids().unique("conformance-snap"), &source.volume_id),
    )
    .await?;
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-from-snap"));
    req.volume_content_source = Some(from_snapshot(&snap.snapshot_id));
    let v = ctx.must_create_volume(req).await?;
    ensure(
        v.capacity_bytes == 0 || v.capacity_bytes >= snap.size_bytes,
        || {
            format!(
                "CreateVolume from a {}-byte snapshot made {} bytes",
                snap.size_bytes, v.capacity_bytes
            )
        },
    )
}

async fn create_from_foreign_snapshot(ctx: &Ctx) -> CaseResult {
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-from-nothing"));
    req.volume_content_source = Some(from_snapshot(&ctx.ids().foreign_snapshot_id()));
    let r = ctx.create_volume(req).await;
    fails_with(
        "CreateVolume from a snapshot id of foreign form",
        r,
        Code::NotFound,
    )
}

async fn create_from_absent_snapshot(ctx: &Ctx) -> CaseResult {
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-from-nothing"));
    req.volume_content_source = Some(from_snapshot(&ctx.ids().absent_snapshot_id()));
    let r = ctx.create_volume(req).await;
    fails_with("CreateVolume from an absent snapshot", r, Code::NotFound)
}

async fn create_from_volume(ctx: &Ctx) -> CaseResult {
    let source = ctx.new_volume("conformance-clone-source").await?;
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-clone"));
    req.volume_content_source = Some(from_volume(&source.volume_id));
    let v = ctx.must_create_volume(req).await?;
    ensure(v.volume_id != source.volume_id, || {
        "CreateVolume of a clone returned the source volume".into()
    })
}

async fn create_from_absent_volume(ctx: &Ctx) -> CaseResult {
    let mut req = ctx.create_request(&ctx.ids().unique("conformance-clone-nothing"));
    req.volume_content_source = Some(from_volume(&ctx.ids().absent_volume_id()));
    let r = ctx.create_volume(req).await;
    fails_with("CreateVolume from an absent volume", r, Code::NotFound)
}

async fn delete_no_id(ctx: &Ctx) -> CaseResult {
    let r = ctx.delete_volume("").await;
    fails_with("DeleteVolume without an id", r, Code::InvalidArgument)
}

async fn delete_foreign_id(ctx: &Ctx) -> CaseResult {
    let id = ctx.ids().foreign_volume_id();
    succeeds(
        &format!("DeleteVolume {id} (an id of foreign form)"),
        ctx.delete_volume(&id).await,
    )
}

/// CSI spec, DeleteVolume: a volume that does not exist MUST be answered OK.
async fn delete_absent(ctx: &Ctx) -> CaseResult {
    let id = ctx.ids().absent_volume_id();
    succeeds(
        &format!("DeleteVolume {id} (absent)"),
        ctx.delete_volume(&id).await,
    )
}

async fn delete_plain(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-delete").await?;
    succeeds("DeleteVolume", ctx.delete_volume(&v.volume_id).await)
}

async fn delete_twice(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-delete-twice").await?;
    succeeds("DeleteVolume", ctx.delete_volume(&v.volume_id).await)?;
    succeeds("DeleteVolume again", ctx.delete_volume(&v.volume_id).await)?;
    if ctx.adv().has_controller(ControllerRpc::ListVolumes) {
        let listed = list_all_volumes(ctx).await?;
        ensure(!listed.iter().any(|x| x.volume_id == v.volume_id), || {
            format!("ListVolumes still lists the deleted volume {}", v.volume_id)
        })?;
    }
    Ok(())
}

fn validate_request(id: &str, caps: Vec<VolumeCapability>) -> ValidateVolumeCapabilitiesRequest {
    ValidateVolumeCapabilitiesRequest {
        volume_id: id.to_string(),
        volume_capabilities: caps,
        ..Default::default()
    }
}

async fn validate_no_id(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .call(
            ctx.controller()
                .validate_volume_capabilities(validate_request("", Vec::new())),
        )
        .await;
    fails_with(
        "ValidateVolumeCapabilities without an id",
        r,
        Code::InvalidArgument,
    )
}

async fn validate_no_caps(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-validate-nocaps").await?;
    let r = ctx
        .call(
            ctx.controller()
                .validate_volume_capabilities(validate_request(&v.volume_id, Vec::new())),
        )
        .await;
    fails_with(
        "ValidateVolumeCapabilities without capabilities",
        r,
        Code::InvalidArgument,
    )
}

async fn validate_confirmed(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-validate").await?;
    let r = succeeds(
        "ValidateVolumeCapabilities",
        ctx.call(
            ctx.controller()
                .validate_volume_capabilities(validate_request(
                    &v.volume_id,
                    vec![ctx.mount_cap(Mode::SingleNodeWriter)],
                )),
        )
        .await,
    )?;
    let confirmed = r.confirmed.ok_or_else(|| {
        format!(
            "ValidateVolumeCapabilities: the capability the volume was created with is not confirmed ({:?})",
            r.message
        )
    })?;
    ensure(!confirmed.volume_capabilities.is_empty(), || {
        "ValidateVolumeCapabilities: confirmed without capabilities".into()
    })
}

async fn validate_absent(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .call(
            ctx.controller()
                .validate_volume_capabilities(validate_request(
                    &ctx.ids().absent_volume_id(),
                    vec![ctx.mount_cap(Mode::SingleNodeWriter)],
                )),
        )
        .await;
    fails_with(
        "ValidateVolumeCapabilities of an absent volume",
        r,
        Code::NotFound,
    )
}

async fn get_volume_no_id(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .call(
            ctx.controller()
                .controller_get_volume(ControllerGetVolumeRequest::default()),
        )
        .await;
    fails_with(
        "ControllerGetVolume without an id",
        r,
        Code::InvalidArgument,
    )
}

/// CSI spec, ControllerGetVolume errors: "Volume does not exist | 5 NOT_FOUND".
async fn get_volume_absent(ctx: &Ctx) -> CaseResult {
    let r = ctx
        .call(
            ctx.controller()
                .controller_get_volume(ControllerGetVolumeRequest {
                    volume_id: ctx.ids().absent_volume_id(),
                }),
        )
        .await;
    fails_with("ControllerGetVolume of an absent volume", r, Code::NotFound)
}

async fn get_volume_plain(ctx: &Ctx) -> CaseResult {
    let v = ctx.new_volume("conformance-get").await?;
    let r = succeeds(
        "ControllerGetVolume",
        ctx.call(
            ctx.controller()
                .controller_get_volume(ControllerGetVolumeRequest {
                    volume_id: v.volume_id.clone(),
                }),
        )
        .await,
    )?;
    let got = r
        .volume
        .ok_or("ControllerGetVolume: the answer has no volume")?;
    ensure(got.volume_id == v.volume_id, || {
        format!(
            "ControllerGetVolume: asked for {}, got {}",
            v.volume_id, got.volume_id
        )
    })?;
    ensure(
        got.capacity_bytes == 0 || got.capacity_bytes >= ctx.config().volume_size,
        || {
            format!(
                "ControllerGetVolume: capacity {} below the created size",
                got.capacity_bytes
            )
        },
    )?;
    let status = r
        .status
        .ok_or("ControllerGetVolume: the answer has no status")?;
    ensure(status.published_node_ids.is_empty(), || {
        format!(
            "ControllerGetVolume: a new volume is published to {:?}",
            status.published_node_ids
        )
    })?;
    if ctx.adv().has_controller(ControllerRpc::VolumeCondition) {
        let c = status.volume_condition.ok_or(
            "ControllerGetVolume: VOLUME_CONDITION is advertised but no volume_condition is given",
        )?;
        ensure(!c.abnormal, || {
            format!(
                "ControllerGetVolume: a new volume is abnormal: {}",
                c.message
            )
        })?;
    }
    Ok(())
}
