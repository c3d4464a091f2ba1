//! The sweep's cases, generated combinatorially: every hostile string in every string field of
//! every covered RPC (names, ids, node ids, StorageClass parameter keys and values, volume and
//! publish context keys and values, fs types, mount flags, secrets, page tokens, snapshot
//! filters), every hostile path in every path field, and the absurd capacity ranges and page
//! sizes. Each case carries its request, the code(s) it must be answered with and the needles
//! that must never show up at the appliance or in the mount table.

use std::collections::HashMap;

use rds_csi_proto::csi::volume_capability::AccessType;
use rds_csi_proto::csi::volume_content_source::{SnapshotSource, Type as SourceType, VolumeSource};
use rds_csi_proto::csi::{
    CapacityRange, ControllerExpandVolumeRequest, ControllerGetVolumeRequest,
    ControllerPublishVolumeRequest, ControllerUnpublishVolumeRequest, CreateSnapshotRequest,
    CreateVolumeRequest, DeleteSnapshotRequest, DeleteVolumeRequest, GetCapacityRequest,
    ListSnapshotsRequest, ListVolumesRequest, NodeExpandVolumeRequest, NodeGetVolumeStatsRequest,
    NodePublishVolumeRequest, NodeStageVolumeRequest, NodeUnpublishVolumeRequest,
    NodeUnstageVolumeRequest, ValidateVolumeCapabilitiesRequest, VolumeCapability,
    VolumeContentSource,
};
use tonic::Code;

use super::expect::{
    Check, Expect, csi_name_ok, mkfs_options_ok, mount_flag_ok, mount_options_ok, node_name_ok,
    volume_path_ok,
};
use super::fixture::Base;
use super::paths::{self, PathPayload, Roots, Setup};
use super::payloads::{Payload, TEMPLATES};
use super::requests::Req;
use crate::stack::NODE_ID;

const MIB: i64 = 1 << 20;

/// One case.
#[derive(Debug, Clone)]
pub struct Case {
    pub n: usize,
    /// `Rpc.field`, for the report.
    pub field: String,
    /// The payload's label.
    pub payload: &'static str,
    pub req: Req,
    pub expect: Expect,
    pub needles: Vec<String>,
    pub setup: Vec<Setup>,
}

fn map(k: &str, v: &str) -> HashMap<String, String> {
    HashMap::from([(k.to_string(), v.to_string())])
}

fn with(mut m: HashMap<String, String>, k: &str, v: &str) -> HashMap<String, String> {
    m.insert(k.to_string(), v.to_string());
    m
}

/// `cap` with its fs_type set to `fs`.
fn fs_type(cap: &VolumeCapability, fs: &str) -> VolumeCapability {
    let mut c = cap.clone();
    if let Some(AccessType::Mount(m)) = c.access_type.as_mut() {
        m.fs_type = fs.to_string();
    }
    c
}

/// `cap` with one mount flag.
fn flag(cap: &VolumeCapability, f: &str) -> VolumeCapability {
    let mut c = cap.clone();
    if let Some(AccessType::Mount(m)) = c.access_type.as_mut() {
        m.mount_flags = vec![f.to_string()];
    }
    c
}

fn create_req(b: &Base, name: String) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name,
        capacity_range: Some(CapacityRange {
            required_bytes: MIB,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![b.cap.clone()],
        ..Default::default()
    }
}

fn publish_req(b: &Base) -> ControllerPublishVolumeRequest {
    ControllerPublishVolumeRequest {
        volume_id: b.r1.volume_id.clone(),
        node_id: NODE_ID.to_string(),
        volume_capability: Some(b.cap.clone()),
        readonly: false,
        volume_context: b.r1.volume_context.clone(),
        ..Default::default()
    }
}

fn stage_req(b: &Base) -> NodeStageVolumeRequest {
    NodeStageVolumeRequest {
        volume_id: b.r1.volume_id.clone(),
        publish_context: b.ctx1.clone(),
        staging_target_path: b.s1.display().to_string(),
        volume_capability: Some(b.cap.clone()),
        volume_context: b.r1.volume_context.clone(),
        ..Default::default()
    }
}

fn node_publish_req(b: &Base) -> NodePublishVolumeRequest {
    NodePublishVolumeRequest {
        volume_id: b.r2.volume_id.clone(),
        publish_context: b.ctx2.clone(),
        staging_target_path: b.s2.display().to_string(),
        target_path: b.t2b.display().to_string(),
        volume_capability: Some(b.cap.clone()),
        readonly: false,
        volume_context: b.r2.volume_context.clone(),
        ..Default::default()
    }
}

fn snapshot_req(b: &Base, name: String) -> CreateSnapshotRequest {
    CreateSnapshotRequest {
        name,
        source_volume_id: b.unknown.clone(),
        ..Default::default()
    }
}

/// One string field: how to put a payload into a request, and what must come back.
struct Field {
    name: &'static str,
    /// The map key a value field sets ("" when none).
    key: &'static str,
    build: fn(&Base, &str, &str, usize) -> Req,
    /// `None`: a payload valid for this field would act on the fixture; not sent.
    expect: fn(&str, &str) -> Option<Expect>,
}

const NOT_AN_ID: &[Code] = &[Code::InvalidArgument, Code::NotFound];
const GONE_IS_OK: &[Code] = &[Code::Ok, Code::InvalidArgument];
const UNDO_OF_NOTHING: &[Code] = &[Code::InvalidArgument, Code::Ok, Code::NotFound];

fn invalid(_: &str, _: &str) -> Option<Expect> {
    Some(Expect::invalid("not a value this field accepts"))
}

fn not_an_id(_: &str, _: &str) -> Option<Expect> {
    Some(Expect::any(
        NOT_AN_ID,
        "not an id this driver issues: malformed, or names nothing",
    ))
}

fn gone_is_ok(_: &str, _: &str) -> Option<Expect> {
    Some(Expect::any(
        GONE_IS_OK,
        "deleting what cannot exist: OK (nothing to delete) or malformed",
    ))
}

fn undo_of_nothing(_: &str, _: &str) -> Option<Expect> {
    Some(Expect::any(
        UNDO_OF_NOTHING,
        "undoing what cannot exist: OK, malformed, or not found",
    ))
}

fn accepted_create(_: &str, _: &str) -> Option<Expect> {
    Some(Expect::ok(
        Check::CleanId,
        "opaque to the driver: accepted, and kept away from the appliance",
    ))
}

/// A StorageClass (or context) value: valid values of the free-form keys are accepted.
fn param_value(p: &str, key: &str) -> Option<Expect> {
    let valid = match key {
        "mountOptions" => mount_options_ok(p),
        "mkfsOptions" => mkfs_options_ok(p),
        // A valid path would put a volume elsewhere on the appliance: not a hostile case.
        "volumePath" => return (!volume_path_ok(p)).then(|| Expect::invalid("not a valid path")),
        _ => false,
    };
    Some(if valid {
        Expect::ok(
            Check::CleanId,
            "a valid option list, stored, never sent to the appliance",
        )
    } else {
        Expect::invalid("StorageClass parameter value rejected")
    })
}

const PARAM_KEYS: [&str; 13] = [
    "volumePath",
    "nvmeAddress",
    "nvmePort",
    "mkfsOptions",
    "mountOptions",
    "fsType",
    "nqnPrefix",
    "ctrlLossTmo",
    "reconnectDelay",
    "keepAliveTmo",
    "migrationTimeoutSeconds",
    "rdsAddress",
    "sshPort",
];

const CONTEXT_KEYS: [&str; 7] = [
    "nqn",
    "nvmeAddress",
    "nvmePort",
    "volumePath",
    "mountOptions",
    "mkfsOptions",
    "fsType",
];

const PUBLISH_CONTEXT_KEYS: [&str; 5] = [
    "nvme_nqn",
    "nvme_address",
    "nvme_port",
    "fs_type",
    "ctrl_loss_tmo",
];

fn fields() -> Vec<Field> {
    let mut out = vec![
        Field {
            name: "CreateVolume.name",
            key: "",
            build: |b, p, _, _| Req::CreateVolume(create_req(b, p.to_string())),
            expect: |p, _| {
                Some(if csi_name_ok(p) {
                    Expect::ok(
                        Check::CleanId,
                        "a valid CO name is hashed into the volume id",
                    )
                } else {
                    Expect::invalid("breaks the CSI name rule (banned character or > 128 bytes)")
                })
            },
        },
        Field {
            name: "CreateVolume.parameters[key]",
            key: "",
            build: |b, p, _, n| {
                let mut r = create_req(b, format!("sweep-{n}"));
                r.parameters = map(p, "x");
                Req::CreateVolume(r)
            },
            expect: |_, _| Some(Expect::invalid("unknown StorageClass parameter")),
        },
        Field {
            name: "GetCapacity.parameters[csi.storage.k8s.io/<key>]",
            key: "",
            build: |_, p, _, _| {
                Req::GetCapacity(GetCapacityRequest {
                    parameters: map(&format!("csi.storage.k8s.io/{p}"), "x"),
                    ..Default::default()
                })
            },
            expect: |_, _| {
                Some(Expect::one(
                    Code::Ok,
                    "sidecar keys are accepted, and kept away from the appliance",
                ))
            },
        },
        Field {
            name: "CreateVolume.parameters[csi.storage.k8s.io/pvc/name]",
            key: "",
            build: |b, p, _, n| {
                let mut r = create_req(b, format!("sweep-{n}"));
                r.parameters = map("csi.storage.k8s.io/pvc/name", p);
                Req::CreateVolume(r)
            },
            expect: accepted_create,
        },
        Field {
            name: "CreateVolume.mount_flags",
            key: "",
            build: |b, p, _, n| {
                let mut r = create_req(b, format!("sweep-{n}"));
                r.volume_capabilities = vec![flag(&b.cap, p)];
                Req::CreateVolume(r)
            },
            expect: |p, _| {
                Some(if mount_flag_ok(p) {
                    Expect::ok(Check::CleanId, "a plain mount flag, kept for the node")
                } else {
                    Expect::invalid("mount flag with characters outside the documented set")
                })
            },
        },
        Field {
            name: "CreateVolume.fs_type",
            key: "",
            build: |b, p, _, n| {
                let mut r = create_req(b, format!("sweep-{n}"));
                r.volume_capabilities = vec![fs_type(&b.cap, p)];
                Req::CreateVolume(r)
            },
            expect: invalid,
        },
        Field {
            name: "CreateVolume.content_source.snapshot_id",
            key: "",
            build: |b, p, _, n| {
                let mut r = create_req(b, format!("sweep-{n}"));
                r.volume_content_source = Some(VolumeContentSource {
                    r#type: Some(SourceType::Snapshot(SnapshotSource {
                        snapshot_id: p.to_string(),
                    })),
                });
                Req::CreateVolume(r)
            },
            expect: not_an_id,
        },
        Field {
            name: "CreateVolume.content_source.volume_id",
            key: "",
            build: |b, p, _, n| {
                let mut r = create_req(b, format!("sweep-{n}"));
                r.volume_content_source = Some(VolumeContentSource {
                    r#type: Some(SourceType::Volume(VolumeSource {
                        volume_id: p.to_string(),
                    })),
                });
                Req::CreateVolume(r)
            },
            expect: not_an_id,
        },
        Field {
            name: "DeleteVolume.volume_id",
            key: "",
            build: |_, p, _, _| {
                Req::DeleteVolume(DeleteVolumeRequest {
                    volume_id: p.to_string(),
                    ..Default::default()
                })
            },
            expect: gone_is_ok,
        },
        Field {
            name: "DeleteVolume.secrets[key]",
            key: "",
            build: |b, p, _, _| {
                Req::DeleteVolume(DeleteVolumeRequest {
                    volume_id: b.unknown.clone(),
                    secrets: map(p, "x"),
                })
            },
            expect: |_, _| {
                Some(Expect::one(
                    Code::Ok,
                    "secrets are not used; nothing to delete",
                ))
            },
        },
        Field {
            name: "DeleteVolume.secrets[value]",
            key: "",
            build: |b, p, _, _| {
                Req::DeleteVolume(DeleteVolumeRequest {
                    volume_id: b.unknown.clone(),
                    secrets: map("password", p),
                })
            },
            expect: |_, _| {
                Some(Expect::one(
                    Code::Ok,
                    "secrets are not used; nothing to delete",
                ))
            },
        },
        Field {
            name: "ControllerPublishVolume.volume_id",
            key: "",
            build: |b, p, _, _| {
                let mut r = publish_req(b);
                r.volume_id = p.to_string();
                r.volume_context = HashMap::new();
                Req::ControllerPublish(r)
            },
            expect: not_an_id,
        },
        Field {
            name: "ControllerPublishVolume.node_id",
            key: "",
            build: |b, p, _, _| {
                let mut r = publish_req(b);
                r.node_id = p.to_string();
                Req::ControllerPublish(r)
            },
            expect: |p, _| {
                Some(if node_name_ok(p) {
                    Expect::one(Code::NotFound, "a node name, but no such node")
                } else {
                    Expect::invalid("not a Kubernetes node name")
                })
            },
        },
        Field {
            name: "ControllerPublishVolume.volume_context[key]",
            key: "",
            build: |b, p, _, _| {
                let mut r = publish_req(b);
                r.volume_context = with(r.volume_context, p, "x");
                Req::ControllerPublish(r)
            },
            expect: |_, _| Some(Expect::invalid("unknown volume-context key")),
        },
        Field {
            name: "ControllerPublishVolume.fs_type",
            key: "",
            build: |b, p, _, _| {
                let mut r = publish_req(b);
                r.volume_capability = Some(fs_type(&b.cap, p));
                Req::ControllerPublish(r)
            },
            expect: invalid,
        },
        Field {
            name: "ControllerPublishVolume.mount_flags",
            key: "",
            build: |b, p, _, _| {
                let mut r = publish_req(b);
                r.volume_capability = Some(flag(&b.cap, p));
                Req::ControllerPublish(r)
            },
            expect: |p, _| {
                Some(if mount_flag_ok(p) {
                    Expect::one(Code::Ok, "a plain flag; R1 is already published there")
                } else {
                    Expect::invalid("mount flag with characters outside the documented set")
                })
            },
        },
        Field {
            name: "ControllerUnpublishVolume.volume_id",
            key: "",
            build: |_, p, _, _| {
                Req::ControllerUnpublish(ControllerUnpublishVolumeRequest {
                    volume_id: p.to_string(),
                    node_id: NODE_ID.to_string(),
                    ..Default::default()
                })
            },
            expect: undo_of_nothing,
        },
        Field {
            name: "ControllerUnpublishVolume.node_id",
            key: "",
            build: |b, p, _, _| {
                Req::ControllerUnpublish(ControllerUnpublishVolumeRequest {
                    volume_id: b.unknown.clone(),
                    node_id: p.to_string(),
                    ..Default::default()
                })
            },
            expect: undo_of_nothing,
        },
        Field {
            name: "ValidateVolumeCapabilities.volume_id",
            key: "",
            build: |b, p, _, _| {
                Req::Validate(ValidateVolumeCapabilitiesRequest {
                    volume_id: p.to_string(),
                    volume_capabilities: vec![b.cap.clone()],
                    ..Default::default()
                })
            },
            expect: not_an_id,
        },
        Field {
            name: "ValidateVolumeCapabilities.fs_type",
            key: "",
            build: |b, p, _, _| {
                Req::Validate(ValidateVolumeCapabilitiesRequest {
                    volume_id: b.r1.volume_id.clone(),
                    volume_capabilities: vec![fs_type(&b.cap, p)],
                    ..Default::default()
                })
            },
            expect: |_, _| {
                Some(Expect::ok(
                    Check::NotConfirmed,
                    "answered, but an unknown fs_type is not confirmed",
                ))
            },
        },
        Field {
            name: "ValidateVolumeCapabilities.parameters[key]",
            key: "",
            build: |b, p, _, _| {
                Req::Validate(ValidateVolumeCapabilitiesRequest {
                    volume_id: b.r1.volume_id.clone(),
                    volume_capabilities: vec![b.cap.clone()],
                    parameters: map(p, "x"),
                    ..Default::default()
                })
            },
            expect: |_, _| {
                Some(Expect::ok(
                    Check::NotConfirmed,
                    "answered, but an unknown parameter is not confirmed",
                ))
            },
        },
        Field {
            name: "ListVolumes.starting_token",
            key: "",
            build: |_, p, _, _| {
                Req::ListVolumes(ListVolumesRequest {
                    max_entries: 0,
                    starting_token: p.to_string(),
                })
            },
            expect: |_, _| {
                Some(Expect::one(
                    Code::Aborted,
                    "CSI: invalid starting_token is ABORTED",
                ))
            },
        },
        Field {
            name: "ListSnapshots.starting_token",
            key: "",
            build: |_, p, _, _| {
                Req::ListSnapshots(ListSnapshotsRequest {
                    starting_token: p.to_string(),
                    ..Default::default()
                })
            },
            expect: |_, _| {
                Some(Expect::one(
                    Code::Aborted,
                    "CSI: invalid starting_token is ABORTED",
                ))
            },
        },
        Field {
            name: "ListSnapshots.snapshot_id",
            key: "",
            build: |_, p, _, _| {
                Req::ListSnapshots(ListSnapshotsRequest {
                    snapshot_id: p.to_string(),
                    ..Default::default()
                })
            },
            expect: |_, _| {
                Some(Expect::ok(
                    Check::NoEntries,
                    "CSI: no such snapshot, an empty list",
                ))
            },
        },
        Field {
            name: "ListSnapshots.source_volume_id",
            key: "",
            build: |_, p, _, _| {
                Req::ListSnapshots(ListSnapshotsRequest {
                    source_volume_id: p.to_string(),
                    ..Default::default()
                })
            },
            expect: |_, _| {
                Some(Expect::ok(
                    Check::NoEntries,
                    "CSI: no such source, an empty list",
                ))
            },
        },
        Field {
            name: "GetCapacity.parameters[key]",
            key: "",
            build: |_, p, _, _| {
                Req::GetCapacity(GetCapacityRequest {
                    parameters: map(p, "x"),
                    ..Default::default()
                })
            },
            expect: |_, _| Some(Expect::invalid("unknown StorageClass parameter")),
        },
        Field {
            name: "GetCapacity.fs_type",
            key: "",
            build: |b, p, _, _| {
                Req::GetCapacity(GetCapacityRequest {
                    volume_capabilities: vec![fs_type(&b.cap, p)],
                    ..Default::default()
                })
            },
            expect: |_, _| {
                Some(Expect::ok(
                    Check::NoCapacity,
                    "CSI: capacity for volumes with ALL the capabilities, none can",
                ))
            },
        },
        Field {
            name: "CreateSnapshot.name",
            key: "",
            build: |b, p, _, _| Req::CreateSnapshot(snapshot_req(b, p.to_string())),
            expect: |p, _| {
                Some(if csi_name_ok(p) {
                    Expect::one(
                        Code::NotFound,
                        "a valid name, but the source does not exist",
                    )
                } else {
                    Expect::invalid("breaks the CSI name rule")
                })
            },
        },
        Field {
            name: "CreateSnapshot.source_volume_id",
            key: "",
            build: |b, p, _, n| {
                let mut r = snapshot_req(b, format!("sweep-snap-{n}"));
                r.source_volume_id = p.to_string();
                Req::CreateSnapshot(r)
            },
            expect: not_an_id,
        },
        Field {
            name: "CreateSnapshot.parameters[key]",
            key: "",
            build: |b, p, _, n| {
                let mut r = snapshot_req(b, format!("sweep-snap-{n}"));
                r.parameters = map(p, "x");
                Req::CreateSnapshot(r)
            },
            expect: |_, _| Some(Expect::invalid("unknown VolumeSnapshotClass parameter")),
        },
        Field {
            name: "CreateSnapshot.parameters[volumePath]",
            key: "volumePath",
            build: |b, p, _, n| {
                let mut r = snapshot_req(b, format!("sweep-snap-{n}"));
                r.parameters = map("volumePath", p);
                Req::CreateSnapshot(r)
            },
            expect: param_value,
        },
        Field {
            name: "CreateSnapshot.secrets[key]",
            key: "",
            build: |b, p, _, n| {
                let mut r = snapshot_req(b, format!("sweep-snap-{n}"));
                r.secrets = map(p, "x");
                Req::CreateSnapshot(r)
            },
            expect: |_, _| {
                Some(Expect::one(
                    Code::NotFound,
                    "secrets are not used; the source does not exist",
                ))
            },
        },
        Field {
            name: "DeleteSnapshot.snapshot_id",
            key: "",
            build: |_, p, _, _| {
                Req::DeleteSnapshot(DeleteSnapshotRequest {
                    snapshot_id: p.to_string(),
                    ..Default::default()
                })
            },
            expect: gone_is_ok,
        },
        Field {
            name: "ControllerExpandVolume.volume_id",
            key: "",
            build: |_, p, _, _| {
                Req::ControllerExpand(ControllerExpandVolumeRequest {
                    volume_id: p.to_string(),
                    capacity_range: Some(CapacityRange {
                        required_bytes: 128 * MIB,
                        limit_bytes: 0,
                    }),
                    ..Default::default()
                })
            },
            expect: not_an_id,
        },
        Field {
            name: "ControllerGetVolume.volume_id",
            key: "",
            build: |_, p, _, _| {
                Req::ControllerGet(ControllerGetVolumeRequest {
                    volume_id: p.to_string(),
                })
            },
            expect: not_an_id,
        },
        Field {
            name: "NodeStageVolume.volume_id",
            key: "",
            build: |b, p, _, _| {
                let mut r = stage_req(b);
                r.volume_id = p.to_string();
                r.volume_context = HashMap::new();
                r.publish_context = with(HashMap::new(), "nvme_address", "127.0.0.1");
                Req::NodeStage(r)
            },
            expect: not_an_id,
        },
        Field {
            name: "NodeStageVolume.mount_flags",
            key: "",
            build: |b, p, _, _| {
                let mut r = stage_req(b);
                r.volume_capability = Some(flag(&b.cap, p));
                Req::NodeStage(r)
            },
            expect: |_, _| {
                Some(Expect::invalid(
                    "refused by the frontend's syntax or the helper's allow-list",
                ))
            },
        },
        Field {
            name: "NodeStageVolume.fs_type",
            key: "",
            build: |b, p, _, _| {
                let mut r = stage_req(b);
                r.volume_capability = Some(fs_type(&b.cap, p));
                Req::NodeStage(r)
            },
            expect: invalid,
        },
        Field {
            name: "NodeStageVolume.volume_context[key]",
            key: "",
            build: |b, p, _, _| {
                let mut r = stage_req(b);
                r.volume_context = with(r.volume_context, p, "x");
                Req::NodeStage(r)
            },
            expect: |_, _| Some(Expect::invalid("unknown volume-context key")),
        },
        Field {
            name: "NodeStageVolume.publish_context[key]",
            key: "",
            build: |b, p, _, _| {
                let mut r = stage_req(b);
                r.publish_context = with(r.publish_context, p, "x");
                Req::NodeStage(r)
            },
            expect: |_, _| Some(Expect::invalid("unknown publish-context key")),
        },
        Field {
            name: "NodePublishVolume.volume_id",
            key: "",
            build: |b, p, _, _| {
                let mut r = node_publish_req(b);
                r.volume_id = p.to_string();
                r.volume_context = HashMap::new();
                r.publish_context = HashMap::new();
                Req::NodePublish(r)
            },
            expect: not_an_id,
        },
        Field {
            name: "NodePublishVolume.mount_flags",
            key: "",
            build: |b, p, _, _| {
                let mut r = node_publish_req(b);
                r.volume_capability = Some(flag(&b.cap, p));
                Req::NodePublish(r)
            },
            expect: |_, _| {
                Some(Expect::invalid(
                    "refused by the frontend's syntax or the helper's allow-list",
                ))
            },
        },
        Field {
            name: "NodePublishVolume.volume_context[key]",
            key: "",
            build: |b, p, _, _| {
                let mut r = node_publish_req(b);
                r.volume_context = with(r.volume_context, p, "x");
                Req::NodePublish(r)
            },
            expect: |_, _| Some(Expect::invalid("unknown volume-context key")),
        },
        Field {
            name: "NodeUnpublishVolume.volume_id",
            key: "",
            build: |b, p, _, _| {
                Req::NodeUnpublish(NodeUnpublishVolumeRequest {
                    volume_id: p.to_string(),
                    target_path: b.t2.display().to_string(),
                })
            },
            expect: undo_of_nothing,
        },
        Field {
            name: "NodeUnstageVolume.volume_id",
            key: "",
            build: |b, p, _, _| {
                Req::NodeUnstage(NodeUnstageVolumeRequest {
                    volume_id: p.to_string(),
                    staging_target_path: b.s2.display().to_string(),
                })
            },
            expect: undo_of_nothing,
        },
        Field {
            name: "NodeGetVolumeStats.volume_id",
            key: "",
            build: |b, p, _, _| {
                Req::NodeStats(NodeGetVolumeStatsRequest {
                    volume_id: p.to_string(),
                    volume_path: b.s2.display().to_string(),
                    staging_target_path: String::new(),
                })
            },
            expect: not_an_id,
        },
        Field {
            name: "NodeExpandVolume.volume_id",
            key: "",
            build: |b, p, _, _| {
                Req::NodeExpand(NodeExpandVolumeRequest {
                    volume_id: p.to_string(),
                    volume_path: b.s2.display().to_string(),
                    ..Default::default()
                })
            },
            expect: not_an_id,
        },
    ];
    for key in PARAM_KEYS {
        out.push(Field {
            name: "CreateVolume.parameters[<known key>]",
            key,
            build: |b, p, k, n| {
                let mut r = create_req(b, format!("sweep-{n}"));
                r.parameters = map(k, p);
                Req::CreateVolume(r)
            },
            expect: param_value,
        });
    }
    for key in ["volumePath", "nvmePort", "mountOptions"] {
        out.push(Field {
            name: "GetCapacity.parameters[<known key>]",
            key,
            build: |_, p, k, _| {
                Req::GetCapacity(GetCapacityRequest {
                    parameters: map(k, p),
                    ..Default::default()
                })
            },
            expect: |p, k| match param_value(p, k) {
                Some(e) if e.codes == [Code::Ok] => Some(Expect::one(
                    Code::Ok,
                    "a valid option list; capacity is answered",
                )),
                other => other,
            },
        });
    }
    for key in CONTEXT_KEYS {
        out.push(Field {
            name: "ControllerPublishVolume.volume_context[<known key>]",
            key,
            build: |b, p, k, _| {
                let mut r = publish_req(b);
                r.volume_context = with(r.volume_context, k, p);
                Req::ControllerPublish(r)
            },
            expect: |p, k| {
                let valid = match k {
                    "mountOptions" => mount_options_ok(p),
                    "mkfsOptions" => mkfs_options_ok(p),
                    _ => false,
                };
                Some(if valid {
                    Expect::one(Code::Ok, "valid options; R1 is already published there")
                } else {
                    Expect::invalid("volume-context value rejected")
                })
            },
        });
        out.push(Field {
            name: "NodeStageVolume.volume_context[<known key>]",
            key,
            build: |b, p, k, _| {
                let mut r = stage_req(b);
                r.volume_context = with(r.volume_context, k, p);
                Req::NodeStage(r)
            },
            expect: |_, _| {
                Some(Expect::invalid(
                    "refused by the frontend or the helper's allow-lists",
                ))
            },
        });
    }
    for key in PUBLISH_CONTEXT_KEYS {
        out.push(Field {
            name: "NodeStageVolume.publish_context[<known key>]",
            key,
            build: |b, p, k, _| {
                let mut r = stage_req(b);
                r.publish_context = with(r.publish_context, k, p);
                Req::NodeStage(r)
            },
            expect: |_, _| Some(Expect::invalid("publish-context value rejected")),
        });
    }
    out
}

/// One path field: how to put a path into a request, and what must come back.
struct PathField {
    name: &'static str,
    build: fn(&Base, &str) -> Req,
    expect: Expect,
}

fn path_fields() -> Vec<PathField> {
    vec![
        PathField {
            name: "NodeStageVolume.staging_target_path",
            build: |b, p| {
                let mut r = stage_req(b);
                r.staging_target_path = p.to_string();
                Req::NodeStage(r)
            },
            expect: Expect::invalid("not a safe path inside the kubelet directory"),
        },
        PathField {
            name: "NodePublishVolume.target_path",
            build: |b, p| {
                let mut r = node_publish_req(b);
                r.target_path = p.to_string();
                Req::NodePublish(r)
            },
            expect: Expect::invalid("not a safe path inside the kubelet directory"),
        },
        PathField {
            name: "NodePublishVolume.staging_target_path",
            build: |b, p| {
                let mut r = node_publish_req(b);
                r.staging_target_path = p.to_string();
                Req::NodePublish(r)
            },
            expect: Expect::any(
                &[Code::InvalidArgument, Code::FailedPrecondition],
                "not a safe path, or nothing is staged there",
            ),
        },
        PathField {
            name: "NodeUnpublishVolume.target_path",
            build: |b, p| {
                Req::NodeUnpublish(NodeUnpublishVolumeRequest {
                    volume_id: b.r2.volume_id.clone(),
                    target_path: p.to_string(),
                })
            },
            expect: Expect::any(
                &[Code::InvalidArgument, Code::Ok],
                "not a safe path, or nothing published there",
            ),
        },
        PathField {
            name: "NodeUnstageVolume.staging_target_path",
            build: |b, p| {
                Req::NodeUnstage(NodeUnstageVolumeRequest {
                    volume_id: b.r2.volume_id.clone(),
                    staging_target_path: p.to_string(),
                })
            },
            expect: Expect::any(
                &[Code::InvalidArgument, Code::Ok],
                "not a safe path, or nothing staged there",
            ),
        },
        PathField {
            name: "NodeGetVolumeStats.volume_path",
            build: |b, p| {
                Req::NodeStats(NodeGetVolumeStatsRequest {
                    volume_id: b.r2.volume_id.clone(),
                    volume_path: p.to_string(),
                    staging_target_path: String::new(),
                })
            },
            expect: Expect::any(
                &[Code::NotFound, Code::InvalidArgument],
                "CSI: the volume does not exist on that volume_path",
            ),
        },
        PathField {
            name: "NodeGetVolumeStats.staging_target_path",
            build: |b, p| {
                Req::NodeStats(NodeGetVolumeStatsRequest {
                    volume_id: b.r2.volume_id.clone(),
                    volume_path: b.s2.display().to_string(),
                    staging_target_path: p.to_string(),
                })
            },
            expect: Expect::any(
                &[Code::InvalidArgument, Code::Ok],
                "an optional path: refused, or ignored",
            ),
        },
        PathField {
            name: "NodeExpandVolume.volume_path",
            build: |b, p| {
                Req::NodeExpand(NodeExpandVolumeRequest {
                    volume_id: b.r2.volume_id.clone(),
                    volume_path: p.to_string(),
                    ..Default::default()
                })
            },
            expect: Expect::any(
                &[Code::NotFound, Code::InvalidArgument],
                "CSI: the volume does not exist on that volume_path",
            ),
        },
    ]
}

/// Capacity ranges: (required, limit, expected codes, why).
const CAPACITIES: &[(i64, i64, &[Code], &str)] = &[
    (
        i64::MAX,
        0,
        &[Code::OutOfRange],
        "i64::MAX does not round up to whole MiB",
    ),
    (
        i64::MAX,
        i64::MAX,
        &[Code::OutOfRange],
        "i64::MAX with itself as limit",
    ),
    (i64::MAX - 1, 0, &[Code::OutOfRange], "just below i64::MAX"),
    (-1, 0, &[Code::InvalidArgument], "negative required_bytes"),
    (0, -1, &[Code::InvalidArgument], "negative limit_bytes"),
    (i64::MIN, i64::MIN, &[Code::InvalidArgument], "i64::MIN"),
    (
        0,
        1,
        &[Code::OutOfRange],
        "0 with limit 1: no whole MiB fits",
    ),
    (
        1,
        1,
        &[Code::OutOfRange],
        "1 byte rounds up past a limit of 1",
    ),
    (2, 1, &[Code::InvalidArgument], "required above limit"),
    (
        1 << 60,
        0,
        &[Code::ResourceExhausted, Code::OutOfRange],
        "1 EiB: more than the pool",
    ),
    (
        (64 << 30) + (1 << 20),
        0,
        &[Code::ResourceExhausted, Code::OutOfRange],
        "one MiB more than the whole 64 GiB pool",
    ),
];

/// Expansion ranges for ControllerExpandVolume on R1 and NodeExpandVolume on R2.
const EXPANSIONS: &[(i64, i64, &[Code], &str)] = &[
    (i64::MAX, 0, &[Code::OutOfRange], "i64::MAX"),
    (
        i64::MAX - 1,
        i64::MAX,
        &[Code::OutOfRange],
        "just below i64::MAX",
    ),
    (-1, 0, &[Code::InvalidArgument], "negative required_bytes"),
    (0, -5, &[Code::InvalidArgument], "negative limit_bytes"),
    (2, 1, &[Code::InvalidArgument], "required above limit"),
];

/// Every case against `base`, paths built under `roots`.
pub fn all(base: &Base, roots: &Roots) -> Vec<Case> {
    let mut out: Vec<Case> = Vec::new();
    let mut push = |field: String,
                    payload: &'static str,
                    req: Req,
                    expect: Expect,
                    needles: Vec<String>,
                    setup: Vec<Setup>| {
        let n = out.len();
        out.push(Case {
            n,
            field,
            payload,
            req,
            expect,
            needles,
            setup,
        });
    };
    let mut n = 0usize;
    for f in fields() {
        for t in TEMPLATES {
            n += 1;
            let Payload {
                label,
                text,
                needles,
            } = t.instantiate(n);
            let Some(expect) = (f.expect)(&text, f.key) else {
                continue;
            };
            let name = if f.key.is_empty() {
                f.name.to_string()
            } else {
                f.name.replace("<known key>", f.key)
            };
            push(
                name,
                label,
                (f.build)(base, &text, f.key, n),
                expect,
                needles,
                Vec::new(),
            );
        }
    }
    for f in path_fields() {
        for label in paths::LABELS {
            n += 1;
            let PathPayload {
                label,
                path,
                needles,
                setup,
            } = paths::instantiate(label, roots, n);
            push(
                f.name.to_string(),
                label,
                (f.build)(base, &path),
                f.expect.clone(),
                needles,
                setup,
            );
        }
    }
    for &(required, limit, codes, why) in CAPACITIES {
        n += 1;
        let mut r = create_req(base, format!("sweep-{n}"));
        r.capacity_range = Some(CapacityRange {
            required_bytes: required,
            limit_bytes: limit,
        });
        push(
            "CreateVolume.capacity_range".into(),
            why,
            Req::CreateVolume(r),
            Expect::any(codes, why),
            Vec::new(),
            Vec::new(),
        );
    }
    for &(required, limit, codes, why) in EXPANSIONS {
        let range = Some(CapacityRange {
            required_bytes: required,
            limit_bytes: limit,
        });
        push(
            "ControllerExpandVolume.capacity_range".into(),
            why,
            Req::ControllerExpand(ControllerExpandVolumeRequest {
                volume_id: base.r1.volume_id.clone(),
                capacity_range: range,
                volume_capability: Some(base.cap.clone()),
                ..Default::default()
            }),
            Expect::any(codes, why),
            Vec::new(),
            Vec::new(),
        );
        push(
            "NodeExpandVolume.capacity_range".into(),
            why,
            Req::NodeExpand(NodeExpandVolumeRequest {
                volume_id: base.r2.volume_id.clone(),
                volume_path: base.s2.display().to_string(),
                capacity_range: range,
                ..Default::default()
            }),
            Expect::any(codes, why),
            Vec::new(),
            Vec::new(),
        );
    }
    for max in [-1, i32::MIN] {
        push(
            "ListVolumes.max_entries".into(),
            "negative page size",
            Req::ListVolumes(ListVolumesRequest {
                max_entries: max,
                starting_token: String::new(),
            }),
            Expect::invalid("CSI: max_entries MUST NOT be negative"),
            Vec::new(),
            Vec::new(),
        );
        push(
            "ListSnapshots.max_entries".into(),
            "negative page size",
            Req::ListSnapshots(ListSnapshotsRequest {
                max_entries: max,
                ..Default::default()
            }),
            Expect::invalid("CSI: max_entries MUST NOT be negative"),
            Vec::new(),
            Vec::new(),
        );
    }
    out
}
