//! The controller service against a fake rds-gateway: every validation rule answers with its
//! CSI code, and valid calls relay what the gateway needs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{FakeGateway, expect_code, serve_unix, start_gateway};
use csi_frontend::attachments::{Attachments, KubernetesRecord, Table};
use csi_frontend::controller::ControllerService;
use csi_frontend::known_nodes::KnownNodes;
use csi_frontend::listing::route::ControllerRoutes;
use csi_frontend::params::{ConnectOptions, Defaults, VolumePath};
use rds_csi_proto::channel::{HopChannel, connect_lazy};
use rds_csi_proto::csi::controller_client::ControllerClient;
use rds_csi_proto::csi::controller_server::Controller;
use rds_csi_proto::csi::volume_capability::access_mode::Mode;
use rds_csi_proto::csi::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use rds_csi_proto::csi::*;
use rds_csi_proto::endpoint::Endpoint;
use tonic::{Code, Request, Status};
use uuid::Uuid;

const MIB: i64 = 1 << 20;

fn cap(mode: Mode, block: bool, fs: &str) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(if block {
            AccessType::Block(BlockVolume {})
        } else {
            AccessType::Mount(MountVolume {
                fs_type: fs.into(),
                mount_flags: vec![],
                volume_mount_group: String::new(),
            })
        }),
        access_mode: Some(AccessMode { mode: mode as i32 }),
    }
}

fn rwo() -> VolumeCapability {
    cap(Mode::SingleNodeWriter, false, "ext4")
}

fn rwx_block() -> VolumeCapability {
    cap(Mode::MultiNodeMultiWriter, true, "")
}

fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Env {
    dir: tempfile::TempDir,
    gw: FakeGateway,
    svc: ControllerService,
    att: Arc<Attachments>,
    channel: HopChannel,
    defaults: Defaults,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (gw, _, client) = start_gateway(dir.path());
    let att = Arc::new(Attachments::new(
        Table::default(),
        Arc::new(KubernetesRecord),
    ));
    let defaults = Defaults {
        nvme_address: Some("10.0.0.1".parse().unwrap()),
        nvme_port: 4420,
        volume_path: VolumePath::parse("/storage-pool/kubernetes-volumes").unwrap(),
        migration_timeout_secs: 300,
        connect: ConnectOptions::default(),
    };
    let svc = ControllerService::new(client.clone(), att.clone(), defaults.clone());
    Env {
        dir,
        gw,
        svc,
        att,
        channel: client,
        defaults,
    }
}

fn create_req(name: &str, caps: Vec<VolumeCapability>, required: i64) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(CapacityRange {
            required_bytes: required,
            limit_bytes: 0,
        }),
        volume_capabilities: caps,
        parameters: params(&[
            ("csi.storage.k8s.io/pvc/name", "data"),
            ("csi.storage.k8s.io/pvc/namespace", "db"),
        ]),
        ..Default::default()
    }
}

async fn create(e: &Env, name: &str, caps: Vec<VolumeCapability>) -> Volume {
    e.svc
        .create_volume(Request::new(create_req(name, caps, 10 * MIB)))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap()
}

fn publish_req(v: &Volume, node: &str, c: VolumeCapability) -> ControllerPublishVolumeRequest {
    ControllerPublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        node_id: node.into(),
        volume_capability: Some(c),
        readonly: false,
        secrets: HashMap::new(),
        volume_context: v.volume_context.clone(),
    }
}

const PV: &str = "pvc-3f0b7d2c-1c1d-4e0b-9a55-0f6b1c2e9e11";

#[tokio::test]
async fn create_volume_relays_a_typed_request_and_returns_the_node_context() {
    let e = env();
    let v = e
        .svc
        .create_volume(Request::new(CreateVolumeRequest {
            parameters: params(&[
                ("nvmeAddress", "10.42.68.1"),
                ("volumePath", "/storage-pool/metal-csi"),
                ("mkfsOptions", "-m 0"),
                ("mountOptions", "noatime"),
                ("csi.storage.k8s.io/pvc/name", "data"),
                ("csi.storage.k8s.io/pvc/namespace", "db"),
            ]),
            ..create_req(
                PV,
                vec![cap(Mode::SingleNodeWriter, false, "xfs")],
                3 * 512 * MIB + 1,
            )
        }))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(v.volume_id, PV, "a provisioner name is the volume id");
    // 1.5 GiB + 1 byte rounds up to the next MiB, never down.
    assert_eq!(v.capacity_bytes, 1537 * MIB);
    let sent = e.gw.state.lock().unwrap().last_create.clone().unwrap();
    assert_eq!(sent.slot, PV);
    assert_eq!(sent.nqn, format!("nqn.2000-02.com.mikrotik:{PV}"));
    assert_eq!(sent.required_bytes, 1537 << 20);
    let loc = sent.location.unwrap();
    assert_eq!(
        (loc.base_path.as_str(), loc.nvme_port),
        ("/storage-pool/metal-csi", 4420)
    );
    let ctx = &v.volume_context;
    assert_eq!(ctx["nqn"], format!("nqn.2000-02.com.mikrotik:{PV}"));
    assert_eq!(ctx["nvmeAddress"], "10.42.68.1");
    assert_eq!(ctx["nvmePort"], "4420");
    assert_eq!(ctx["fsType"], "xfs");
    assert_eq!(
        ctx["volumePath"],
        format!("/storage-pool/metal-csi/{PV}.img")
    );
    assert_eq!(ctx["mkfsOptions"], "-m 0");
    assert_eq!(ctx["mountOptions"], "noatime");
    assert_eq!(ctx["ctrlLossTmo"], "-1");
    assert_eq!(ctx["migrationTimeoutSeconds"], "300");
    assert_eq!(ctx["csi.storage.k8s.io/pvc/name"], "data");
}

#[tokio::test]
async fn other_names_map_to_the_go_drivers_uuid5_ids_and_retries_are_idempotent() {
    let e = env();
    let name = "sanity-volume-1";
    let ns = Uuid::parse_str("6ba7b810-9dad-11d1-80b4-00c04fd430c8").unwrap();
    let expected = format!("pvc-{}", Uuid::new_v5(&ns, name.as_bytes()));
    let first = create(&e, name, vec![rwo()]).await;
    assert_eq!(first.volume_id, expected);
    let again = create(&e, name, vec![rwo()]).await;
    assert_eq!(again.volume_id, first.volume_id);
    assert_eq!(e.gw.state.lock().unwrap().volumes.len(), 1);
}

#[tokio::test]
async fn create_volume_validation_codes() {
    let e = env();
    let ok = || create_req(PV, vec![rwo()], MIB);
    let cases: Vec<(CreateVolumeRequest, Code, &str)> = vec![
        (
            CreateVolumeRequest {
                name: String::new(),
                ..ok()
            },
            Code::InvalidArgument,
            "name",
        ),
        (
            CreateVolumeRequest {
                volume_capabilities: vec![],
                ..ok()
            },
            Code::InvalidArgument,
            "volume_capabilities",
        ),
        (
            CreateVolumeRequest {
                volume_capabilities: vec![cap(Mode::MultiNodeMultiWriter, false, "ext4")],
                ..ok()
            },
            Code::InvalidArgument,
            "MULTI_NODE_MULTI_WRITER",
        ),
        (
            CreateVolumeRequest {
                volume_capabilities: vec![cap(Mode::MultiNodeReaderOnly, true, "")],
                ..ok()
            },
            Code::InvalidArgument,
            "MULTI_NODE_READER_ONLY",
        ),
        (
            CreateVolumeRequest {
                volume_capabilities: vec![cap(Mode::SingleNodeWriter, false, "btrfs")],
                ..ok()
            },
            Code::InvalidArgument,
            "btrfs",
        ),
        (
            CreateVolumeRequest {
                parameters: params(&[("nvmePrt", "4420")]),
                ..ok()
            },
            Code::InvalidArgument,
            "nvmePrt",
        ),
        (
            CreateVolumeRequest {
                parameters: params(&[("ctrlLossTmo", "-5")]),
                ..ok()
            },
            Code::InvalidArgument,
            "ctrlLossTmo",
        ),
        (
            CreateVolumeRequest {
                capacity_range: Some(CapacityRange {
                    required_bytes: 10 * MIB,
                    limit_bytes: 5 * MIB,
                }),
                ..ok()
            },
            Code::InvalidArgument,
            "larger than limit_bytes",
        ),
        (
            CreateVolumeRequest {
                capacity_range: Some(CapacityRange {
                    required_bytes: MIB + 1,
                    limit_bytes: MIB + 2,
                }),
                ..ok()
            },
            Code::OutOfRange,
            "limit_bytes",
        ),
        (
            CreateVolumeRequest {
                capacity_range: Some(CapacityRange {
                    required_bytes: -1,
                    limit_bytes: 0,
                }),
                ..ok()
            },
            Code::InvalidArgument,
            "negative",
        ),
        (
            CreateVolumeRequest {
                volume_content_source: Some(VolumeContentSource {
                    r#type: Some(volume_content_source::Type::Snapshot(
                        volume_content_source::SnapshotSource {
                            snapshot_id: "snap;rm".into(),
                        },
                    )),
                }),
                ..ok()
            },
            Code::NotFound,
            "no snapshot made by this driver",
        ),
        (
            CreateVolumeRequest {
                volume_content_source: Some(VolumeContentSource {
                    r#type: Some(volume_content_source::Type::Snapshot(
                        volume_content_source::SnapshotSource {
                            snapshot_id: "snap-00000000-0000-0000-0000-000000000000-at-abc".into(),
                        },
                    )),
                }),
                ..ok()
            },
            Code::NotFound,
            "source snapshot",
        ),
        (
            CreateVolumeRequest {
                volume_content_source: Some(VolumeContentSource {
                    r#type: Some(volume_content_source::Type::Volume(
                        volume_content_source::VolumeSource {
                            volume_id: "pvc-00000000-0000-0000-0000-000000000000".into(),
                        },
                    )),
                }),
                ..ok()
            },
            Code::NotFound,
            "source volume",
        ),
        (
            CreateVolumeRequest {
                mutable_parameters: params(&[("iops", "1")]),
                ..ok()
            },
            Code::Unimplemented,
            "mutable_parameters",
        ),
    ];
    for (req, code, needle) in cases {
        let msg = expect_code(e.svc.create_volume(Request::new(req)).await, code);
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    }
    assert_eq!(
        e.gw.calls("CreateVolume"),
        0,
        "nothing invalid reached the gateway"
    );
}

#[tokio::test]
async fn restore_and_clone_take_the_source_size_as_a_floor() {
    let e = env();
    let src = create(&e, PV, vec![rwo()]).await;
    e.gw.state
        .lock()
        .unwrap()
        .volumes
        .get_mut(PV)
        .unwrap()
        .size_bytes = 64 << 20;
    let snap = e
        .svc
        .create_snapshot(Request::new(CreateSnapshotRequest {
            source_volume_id: src.volume_id.clone(),
            name: "snapshot-1".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    let restored = e
        .svc
        .create_volume(Request::new(CreateVolumeRequest {
            volume_content_source: Some(VolumeContentSource {
                r#type: Some(volume_content_source::Type::Snapshot(
                    volume_content_source::SnapshotSource {
                        snapshot_id: snap.snapshot_id.clone(),
                    },
                )),
            }),
            ..create_req("restored", vec![rwo()], MIB)
        }))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(restored.capacity_bytes, 64 * MIB);
    let sent = e.gw.state.lock().unwrap().last_create.clone().unwrap();
    assert_eq!(
        sent.source,
        Some(
            rds_csi_proto::gateway::create_volume_request::Source::SnapshotId(
                snap.snapshot_id.clone()
            )
        )
    );
    assert!(restored.content_source.is_some());
    // Smaller than the snapshot with a limit that forbids growing: OUT_OF_RANGE.
    let msg = expect_code(
        e.svc
            .create_volume(Request::new(CreateVolumeRequest {
                capacity_range: Some(CapacityRange {
                    required_bytes: MIB,
                    limit_bytes: 2 * MIB,
                }),
                volume_content_source: Some(VolumeContentSource {
                    r#type: Some(volume_content_source::Type::Volume(
                        volume_content_source::VolumeSource {
                            volume_id: src.volume_id.clone(),
                        },
                    )),
                }),
                ..create_req("clone-too-small", vec![rwo()], MIB)
            }))
            .await,
        Code::OutOfRange,
    );
    assert!(msg.contains("db/data"), "the claim is named: {msg}");
}

#[tokio::test]
async fn an_adopted_volume_of_the_wrong_size_is_already_exists() {
    let e = env();
    e.gw.add_volume(PV, 5 * MIB as u64, true);
    expect_code(
        e.svc
            .create_volume(Request::new(create_req(PV, vec![rwo()], 10 * MIB)))
            .await,
        Code::AlreadyExists,
    );
}

#[tokio::test]
async fn gateway_failures_keep_their_meaning_and_say_what_to_do() {
    let e = env();
    e.gw.faults.fail(
        "CreateVolume",
        Status::unavailable("no RDS session: connection refused"),
    );
    let msg = expect_code(
        e.svc
            .create_volume(Request::new(create_req(PV, vec![rwo()], MIB)))
            .await,
        Code::Unavailable,
    );
    assert!(
        msg.contains(PV) && msg.contains("db/data") && msg.contains("connection refused"),
        "{msg}"
    );
    e.gw.faults
        .fail("CreateVolume", Status::resource_exhausted("pool full"));
    expect_code(
        e.svc
            .create_volume(Request::new(create_req(PV, vec![rwo()], MIB)))
            .await,
        Code::ResourceExhausted,
    );
    e.gw.faults
        .fail("CreateVolume", Status::unimplemented("later"));
    let msg = expect_code(
        e.svc
            .create_volume(Request::new(create_req(PV, vec![rwo()], MIB)))
            .await,
        Code::Internal,
    );
    assert!(msg.contains("matching versions"), "{msg}");
}

#[tokio::test]
async fn a_concurrent_call_on_the_same_volume_is_aborted() {
    let e = Arc::new(env());
    e.gw.faults.slow("CreateVolume", Duration::from_millis(500));
    let first = {
        let e = e.clone();
        tokio::spawn(async move {
            e.svc
                .create_volume(Request::new(create_req(PV, vec![rwo()], MIB)))
                .await
                .map(|_| ())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let msg = expect_code(
        e.svc
            .create_volume(Request::new(create_req(PV, vec![rwo()], MIB)))
            .await,
        Code::Aborted,
    );
    assert!(
        msg.contains(&format!(
            "an operation for volume {PV} is already in progress"
        )),
        "{msg}"
    );
    // Another volume is not blocked.
    e.svc
        .delete_volume(Request::new(DeleteVolumeRequest {
            volume_id: "pvc-00000000-0000-0000-0000-000000000001".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    first.await.unwrap().unwrap();
    // Once the first finished, the volume is free again.
    e.gw.faults.slow("CreateVolume", Duration::ZERO);
    e.svc
        .create_volume(Request::new(create_req(PV, vec![rwo()], MIB)))
        .await
        .unwrap();
}

#[tokio::test]
async fn delete_volume_rules() {
    let e = env();
    // Missing volume: success, and the gateway was asked with the default location.
    e.svc
        .delete_volume(Request::new(DeleteVolumeRequest {
            volume_id: PV.into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let sent = e.gw.state.lock().unwrap().last_delete.clone().unwrap();
    assert_eq!(
        sent.location.unwrap().base_path,
        "/storage-pool/kubernetes-volumes"
    );
    // A gateway that reports NOT_FOUND is also success.
    e.gw.faults.fail("DeleteVolume", Status::not_found("gone"));
    e.svc
        .delete_volume(Request::new(DeleteVolumeRequest {
            volume_id: PV.into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    e.gw.faults.heal("DeleteVolume");
    // An empty id is malformed; an id this driver never issues names no volume, which
    // DeleteVolume answers OK without asking the gateway.
    expect_code(
        e.svc
            .delete_volume(Request::new(DeleteVolumeRequest::default()))
            .await,
        Code::InvalidArgument,
    );
    let before = e.gw.calls("DeleteVolume");
    for foreign in ["volume-1", "pvc-../../etc", "pvc-1;/disk remove"] {
        e.svc
            .delete_volume(Request::new(DeleteVolumeRequest {
                volume_id: foreign.into(),
                ..Default::default()
            }))
            .await
            .unwrap();
    }
    assert_eq!(
        e.gw.calls("DeleteVolume"),
        before,
        "foreign ids never reach the gateway"
    );
    // An attached volume is in use.
    let v = create(&e, PV, vec![rwo()]).await;
    e.svc
        .controller_publish_volume(Request::new(publish_req(&v, "node-a", rwo())))
        .await
        .unwrap();
    let msg = expect_code(
        e.svc
            .delete_volume(Request::new(DeleteVolumeRequest {
                volume_id: PV.into(),
                ..Default::default()
            }))
            .await,
        Code::FailedPrecondition,
    );
    assert!(msg.contains("node-a"), "{msg}");
}

#[tokio::test]
async fn publish_returns_what_the_node_needs() {
    let e = env();
    let v = create(&e, PV, vec![rwo()]).await;
    let ctx = e
        .svc
        .controller_publish_volume(Request::new(publish_req(&v, "node-a", rwo())))
        .await
        .unwrap()
        .into_inner()
        .publish_context;
    assert_eq!(ctx["nvme_nqn"], format!("nqn.2000-02.com.mikrotik:{PV}"));
    assert_eq!(ctx["nvme_address"], "10.0.0.1");
    assert_eq!(ctx["nvme_port"], "4420");
    assert_eq!(ctx["fs_type"], "ext4");
    assert_eq!(ctx["ctrl_loss_tmo"], "-1");
    assert_eq!(ctx["reconnect_delay"], "5");
    assert_eq!(ctx["keep_alive_tmo"], "0");
    // Block volumes carry no filesystem.
    let b = create(&e, "block-vol", vec![rwx_block()]).await;
    let ctx = e
        .svc
        .controller_publish_volume(Request::new(publish_req(&b, "node-a", rwx_block())))
        .await
        .unwrap()
        .into_inner()
        .publish_context;
    assert!(!ctx.contains_key("fs_type"));
}

#[tokio::test]
async fn publish_validation_and_attachment_codes() {
    let e = env();
    let v = create(&e, PV, vec![rwo()]).await;
    // Volume missing on the appliance: NOT_FOUND.
    let mut missing = publish_req(&v, "node-a", rwo());
    missing.volume_id = "pvc-00000000-0000-0000-0000-000000000009".into();
    missing.volume_context.clear();
    expect_code(
        e.svc.controller_publish_volume(Request::new(missing)).await,
        Code::NotFound,
    );
    // Bad node ids, missing capability, a context for another volume: INVALID_ARGUMENT.
    for node in ["", "Node_A", "node a"] {
        expect_code(
            e.svc
                .controller_publish_volume(Request::new(publish_req(&v, node, rwo())))
                .await,
            Code::InvalidArgument,
        );
    }
    let mut no_cap = publish_req(&v, "node-a", rwo());
    no_cap.volume_capability = None;
    expect_code(
        e.svc.controller_publish_volume(Request::new(no_cap)).await,
        Code::InvalidArgument,
    );
    let mut foreign = publish_req(&v, "node-a", rwo());
    foreign.volume_context.insert(
        "nqn".into(),
        "nqn.2000-02.com.mikrotik:root-of-node-3".into(),
    );
    expect_code(
        e.svc.controller_publish_volume(Request::new(foreign)).await,
        Code::InvalidArgument,
    );

    // RWO: same node idempotent, another node FAILED_PRECONDITION naming the holder.
    for _ in 0..2 {
        e.svc
            .controller_publish_volume(Request::new(publish_req(&v, "node-a", rwo())))
            .await
            .unwrap();
    }
    let msg = expect_code(
        e.svc
            .controller_publish_volume(Request::new(publish_req(&v, "node-b", rwo())))
            .await,
        Code::FailedPrecondition,
    );
    assert!(msg.contains("node-a") && msg.contains("db/data"), "{msg}");
    // Same node, read-only now: incompatible, ALREADY_EXISTS.
    let mut ro = publish_req(&v, "node-a", rwo());
    ro.readonly = true;
    expect_code(
        e.svc.controller_publish_volume(Request::new(ro)).await,
        Code::AlreadyExists,
    );
    assert_eq!(e.att.attached_volumes(), 1);

    // Unpublish is idempotent; then the other node may attach.
    for _ in 0..2 {
        e.svc
            .controller_unpublish_volume(Request::new(ControllerUnpublishVolumeRequest {
                volume_id: PV.into(),
                node_id: "node-a".into(),
                ..Default::default()
            }))
            .await
            .unwrap();
    }
    e.svc
        .controller_publish_volume(Request::new(publish_req(&v, "node-b", rwo())))
        .await
        .unwrap();
}

#[tokio::test]
async fn publish_to_a_node_the_controller_does_not_know_is_not_found() {
    let e = env();
    let v = create(&e, PV, vec![rwo()]).await;
    let svc = e
        .svc
        .with_known_nodes(KnownNodes::from_list("node-a,node-b"));
    let absent = svc
        .controller_publish_volume(Request::new(publish_req(&v, "node-z", rwo())))
        .await;
    expect_code(absent, Code::NotFound);
    assert!(
        e.att.snapshot().volumes.is_empty(),
        "nothing is recorded for an unknown node"
    );
    svc.controller_publish_volume(Request::new(publish_req(&v, "node-a", rwo())))
        .await
        .unwrap();
    // A known second node meets the single-node rule, not the node check.
    expect_code(
        svc.controller_publish_volume(Request::new(publish_req(&v, "node-b", rwo())))
            .await,
        Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn block_rwx_allows_a_migration_and_refuses_a_third_node() {
    let e = env();
    let v = create(&e, PV, vec![rwx_block()]).await;
    for n in ["node-a", "node-b"] {
        e.svc
            .controller_publish_volume(Request::new(publish_req(&v, n, rwx_block())))
            .await
            .unwrap();
    }
    let msg = expect_code(
        e.svc
            .controller_publish_volume(Request::new(publish_req(&v, "node-c", rwx_block())))
            .await,
        Code::FailedPrecondition,
    );
    assert!(msg.contains("node-a") && msg.contains("node-b"), "{msg}");
    assert_eq!(
        e.att.attached_volumes(),
        1,
        "a migrating volume counts once"
    );
    let got = e
        .svc
        .controller_get_volume(Request::new(ControllerGetVolumeRequest {
            volume_id: PV.into(),
        }))
        .await
        .unwrap()
        .into_inner();
    let status = got.status.unwrap();
    assert_eq!(status.published_node_ids, ["node-a", "node-b"]);
    assert!(!status.volume_condition.unwrap().abnormal);
    // Unpublish with no node detaches everywhere.
    e.svc
        .controller_unpublish_volume(Request::new(ControllerUnpublishVolumeRequest {
            volume_id: PV.into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(e.att.attached_volumes(), 0);
}

#[tokio::test]
async fn validate_volume_capabilities() {
    let e = env();
    let v = create(&e, PV, vec![rwo()]).await;
    let req = |caps: Vec<VolumeCapability>| ValidateVolumeCapabilitiesRequest {
        volume_id: v.volume_id.clone(),
        volume_context: v.volume_context.clone(),
        volume_capabilities: caps,
        ..Default::default()
    };
    let ok = e
        .svc
        .validate_volume_capabilities(Request::new(req(vec![rwo(), rwx_block()])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.confirmed.unwrap().volume_capabilities.len(), 2);
    let no = e
        .svc
        .validate_volume_capabilities(Request::new(req(vec![cap(
            Mode::MultiNodeMultiWriter,
            false,
            "ext4",
        )])))
        .await
        .unwrap()
        .into_inner();
    assert!(no.confirmed.is_none());
    assert!(
        no.message.contains("MULTI_NODE_MULTI_WRITER"),
        "{}",
        no.message
    );
    expect_code(
        e.svc
            .validate_volume_capabilities(Request::new(req(vec![])))
            .await,
        Code::InvalidArgument,
    );
    let mut missing = req(vec![rwo()]);
    missing.volume_id = "pvc-00000000-0000-0000-0000-000000000009".into();
    missing.volume_context.clear();
    expect_code(
        e.svc
            .validate_volume_capabilities(Request::new(missing))
            .await,
        Code::NotFound,
    );
}

/// `n` volumes of ours (their ids returned sorted), the `published` ones (by index)
/// ControllerPublished to their node, the `unexported` one no longer exported, and a disk on
/// the appliance that is not ours and must not be listed.
async fn listing_fixture(
    e: &Env,
    n: usize,
    published: &[(usize, &str)],
    unexported: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(create(e, &format!("vol-{i}"), vec![rwo()]).await.volume_id);
    }
    e.gw.add_volume("root-disk-node-3", MIB as u64, true);
    ids.sort();
    for &(i, node) in published {
        let v = Volume {
            volume_id: ids[i].clone(),
            ..Default::default()
        };
        e.svc
            .controller_publish_volume(Request::new(publish_req(&v, node, rwo())))
            .await
            .unwrap();
    }
    e.gw.state
        .lock()
        .unwrap()
        .volumes
        .get_mut(&ids[unexported])
        .unwrap()
        .exported = false;
    ids
}

#[tokio::test]
async fn list_volumes_pages_with_published_nodes_and_conditions() {
    let e = env();
    let ids = listing_fixture(&e, 5, &[(0, "node-a")], 1).await;

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = e
            .svc
            .list_volumes(Request::new(ListVolumesRequest {
                max_entries: 2,
                starting_token: token,
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(page.entries.len() <= 2);
        for entry in page.entries {
            let id = entry.volume.unwrap().volume_id;
            let status = entry.status.unwrap();
            let cond = status.volume_condition.unwrap();
            if id == ids[0] {
                assert_eq!(status.published_node_ids, ["node-a"]);
            } else {
                assert!(status.published_node_ids.is_empty());
            }
            assert_eq!(cond.abnormal, id == ids[1], "{id}: {}", cond.message);
            seen.push(id);
        }
        if page.next_token.is_empty() {
            break;
        }
        token = page.next_token;
    }
    assert_eq!(seen, ids);
    expect_code(
        e.svc
            .list_volumes(Request::new(ListVolumesRequest {
                max_entries: 1,
                starting_token: "bogus".into(),
            }))
            .await,
        Code::Aborted,
    );
    expect_code(
        e.svc
            .list_volumes(Request::new(ListVolumesRequest {
                max_entries: -1,
                starting_token: String::new(),
            }))
            .await,
        Code::InvalidArgument,
    );
}

/// The controller as the binary serves it ([`ControllerRoutes`]) over a unix socket: a
/// second service over the same fake gateway and attachment table as `e.svc`.
fn served(e: &Env) -> ControllerClient<tonic::transport::Channel> {
    let path = e.dir.path().join("controller.sock");
    let svc = ControllerService::new(e.channel.clone(), e.att.clone(), e.defaults.clone());
    serve_unix(&path, ControllerRoutes::new(svc));
    ControllerClient::new(connect_lazy(&Endpoint::Unix(path)).unwrap())
}

/// ListVolumes served at the wire level answers over the socket exactly what the service
/// answers in process, page by page (the fake gateway answers in pages of two, so the
/// listing follows its tokens), and every other method still reaches the generated routes.
#[tokio::test]
async fn served_listing_is_the_in_process_answer_and_other_methods_still_route() {
    let e = env();
    let ids = listing_fixture(&e, 7, &[(0, "node-a"), (3, "node-b")], 2).await;
    let mut client = served(&e);
    for (max_entries, starting_token) in [
        (0, ""),
        (3, ""),
        (3, ids[2].as_str()),
        (100, ids[6].as_str()),
    ] {
        let ask = || ListVolumesRequest {
            max_entries,
            starting_token: starting_token.to_string(),
        };
        let over_socket = client.list_volumes(ask()).await.unwrap().into_inner();
        let in_process = e
            .svc
            .list_volumes(Request::new(ask()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            over_socket, in_process,
            "max {max_entries} from {starting_token:?}"
        );
        if max_entries == 0 {
            assert_eq!(over_socket.entries.len(), 7);
            let first = over_socket.entries[0].status.as_ref().unwrap();
            assert_eq!(first.published_node_ids, ["node-a"]);
            let third = over_socket.entries[2].status.as_ref().unwrap();
            assert!(third.volume_condition.as_ref().unwrap().abnormal);
        }
    }
    // The CSI codes come through the served route too.
    expect_code(
        client
            .list_volumes(ListVolumesRequest {
                max_entries: 1,
                starting_token: "bogus".into(),
            })
            .await,
        Code::Aborted,
    );
    let caps = client
        .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!caps.capabilities.is_empty());
}

#[tokio::test]
async fn get_capacity_reports_the_free_pool() {
    let e = env();
    let c = e
        .svc
        .get_capacity(Request::new(GetCapacityRequest {
            volume_capabilities: vec![rwo()],
            parameters: params(&[("volumePath", "/raid10")]),
            accessible_topology: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.available_capacity, (40 << 30) + 123);
    assert_eq!(c.maximum_volume_size, Some(40 << 30));
    // Capabilities we cannot provide have no capacity at all.
    let c = e
        .svc
        .get_capacity(Request::new(GetCapacityRequest {
            volume_capabilities: vec![cap(Mode::MultiNodeReaderOnly, true, "")],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.available_capacity, 0);
    expect_code(
        e.svc
            .get_capacity(Request::new(GetCapacityRequest {
                parameters: params(&[("volumePath", "../x")]),
                ..Default::default()
            }))
            .await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn snapshots_create_list_delete() {
    let e = env();
    let src = create(&e, PV, vec![rwo()]).await;
    let snap = |name: &str, source: &str| CreateSnapshotRequest {
        source_volume_id: source.into(),
        name: name.into(),
        ..Default::default()
    };
    let s1 = e
        .svc
        .create_snapshot(Request::new(snap("daily", PV)))
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    // The Go driver's id: snap-<source uuid>-at-<10 hex of uuid5(name)>.
    let ns = Uuid::parse_str("6ba7b810-9dad-11d1-80b4-00c04fd430c8").unwrap();
    let hash = Uuid::new_v5(&ns, b"daily").simple().to_string();
    assert_eq!(
        s1.snapshot_id,
        format!("snap-{}-at-{}", &PV[4..], &hash[..10])
    );
    assert!(s1.ready_to_use);
    assert_eq!(s1.creation_time.unwrap().seconds, 1_700_000_000);
    // Idempotent.
    let again = e
        .svc
        .create_snapshot(Request::new(snap("daily", PV)))
        .await
        .unwrap();
    assert_eq!(
        again.into_inner().snapshot.unwrap().snapshot_id,
        s1.snapshot_id
    );
    // Same name, another source: ALREADY_EXISTS.
    let other = create(&e, "other", vec![rwo()]).await;
    expect_code(
        e.svc
            .create_snapshot(Request::new(snap("daily", &other.volume_id)))
            .await,
        Code::AlreadyExists,
    );
    e.svc
        .create_snapshot(Request::new(snap("weekly", PV)))
        .await
        .unwrap();
    e.svc
        .create_snapshot(Request::new(snap("hourly", &other.volume_id)))
        .await
        .unwrap();
    // Missing source volume: NOT_FOUND; invalid: INVALID_ARGUMENT; no name: INVALID_ARGUMENT.
    expect_code(
        e.svc
            .create_snapshot(Request::new(snap(
                "x",
                "pvc-00000000-0000-0000-0000-000000000009",
            )))
            .await,
        Code::NotFound,
    );
    expect_code(
        e.svc
            .create_snapshot(Request::new(snap("x", "vol;1")))
            .await,
        Code::InvalidArgument,
    );
    expect_code(
        e.svc.create_snapshot(Request::new(snap("", PV))).await,
        Code::InvalidArgument,
    );

    let list = |req: ListSnapshotsRequest| {
        let svc = &e.svc;
        async move { svc.list_snapshots(Request::new(req)).await }
    };
    let all = list(ListSnapshotsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.entries.len(), 3);
    let of_pv = list(ListSnapshotsRequest {
        source_volume_id: PV.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(of_pv.entries.len(), 2);
    let one = list(ListSnapshotsRequest {
        snapshot_id: s1.snapshot_id.clone(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(one.entries.len(), 1);
    let none = list(ListSnapshotsRequest {
        snapshot_id: "garbage".into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert!(none.entries.is_empty());
    let p1 = list(ListSnapshotsRequest {
        max_entries: 2,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(p1.entries.len(), 2);
    let p2 = list(ListSnapshotsRequest {
        max_entries: 2,
        starting_token: p1.next_token,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!((p2.entries.len(), p2.next_token.as_str()), (1, ""));
    expect_code(
        list(ListSnapshotsRequest {
            starting_token: "x".into(),
            ..Default::default()
        })
        .await,
        Code::Aborted,
    );

    // Delete: idempotent; invalid id INVALID_ARGUMENT.
    for _ in 0..2 {
        e.svc
            .delete_snapshot(Request::new(DeleteSnapshotRequest {
                snapshot_id: s1.snapshot_id.clone(),
                ..Default::default()
            }))
            .await
            .unwrap();
    }
    let before = e.gw.calls("DeleteSnapshot");
    e.svc
        .delete_snapshot(Request::new(DeleteSnapshotRequest {
            snapshot_id: "snap-x".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        e.gw.calls("DeleteSnapshot"),
        before,
        "a foreign id never reaches the gateway"
    );
    expect_code(
        e.svc
            .delete_snapshot(Request::new(DeleteSnapshotRequest::default()))
            .await,
        Code::InvalidArgument,
    );
    let _ = src;
}

#[tokio::test]
async fn expansion_needs_the_node_only_for_filesystems() {
    let e = env();
    create(&e, PV, vec![rwo()]).await;
    let expand = |cap: Option<VolumeCapability>, required: i64| ControllerExpandVolumeRequest {
        volume_id: PV.into(),
        capacity_range: Some(CapacityRange {
            required_bytes: required,
            limit_bytes: 0,
        }),
        secrets: HashMap::new(),
        volume_capability: cap,
    };
    let r = e
        .svc
        .controller_expand_volume(Request::new(expand(Some(rwo()), 20 * MIB + 1)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.capacity_bytes, 21 * MIB);
    assert!(r.node_expansion_required);
    let r = e
        .svc
        .controller_expand_volume(Request::new(expand(
            Some(cap(Mode::SingleNodeWriter, true, "")),
            30 * MIB,
        )))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.node_expansion_required);
    expect_code(
        e.svc
            .controller_expand_volume(Request::new(expand(None, 0)))
            .await,
        Code::InvalidArgument,
    );
    let mut missing = expand(None, MIB);
    missing.volume_id = "pvc-00000000-0000-0000-0000-000000000009".into();
    expect_code(
        e.svc.controller_expand_volume(Request::new(missing)).await,
        Code::NotFound,
    );
    e.gw.faults
        .fail("ExpandVolume", Status::out_of_range("cannot shrink"));
    expect_code(
        e.svc
            .controller_expand_volume(Request::new(expand(None, MIB)))
            .await,
        Code::OutOfRange,
    );
}

#[tokio::test]
async fn controller_get_volume_condition() {
    let e = env();
    let v = create(&e, PV, vec![rwo()]).await;
    let get = || {
        e.svc
            .controller_get_volume(Request::new(ControllerGetVolumeRequest {
                volume_id: PV.into(),
            }))
    };
    let healthy = get().await.unwrap().into_inner();
    assert!(!healthy.status.unwrap().volume_condition.unwrap().abnormal);
    e.gw.state
        .lock()
        .unwrap()
        .volumes
        .get_mut(PV)
        .unwrap()
        .exported = false;
    let cond = get()
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
        .volume_condition
        .unwrap();
    assert!(
        cond.abnormal && cond.message.contains("not exported"),
        "{}",
        cond.message
    );
    // Attached but the disk vanished: reported, abnormal.
    e.gw.state
        .lock()
        .unwrap()
        .volumes
        .get_mut(PV)
        .unwrap()
        .exported = true;
    e.svc
        .controller_publish_volume(Request::new(publish_req(&v, "node-a", rwo())))
        .await
        .unwrap();
    e.gw.state.lock().unwrap().volumes.remove(PV);
    let cond = get()
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
        .volume_condition
        .unwrap();
    assert!(
        cond.abnormal && cond.message.contains("missing"),
        "{}",
        cond.message
    );
    // Not attached and not there: NOT_FOUND.
    e.svc
        .controller_unpublish_volume(Request::new(ControllerUnpublishVolumeRequest {
            volume_id: PV.into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    expect_code(get().await, Code::NotFound);
    expect_code(
        e.svc
            .controller_get_volume(Request::new(ControllerGetVolumeRequest {
                volume_id: "x".into(),
            }))
            .await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn unadvertised_calls_are_unimplemented() {
    let e = env();
    expect_code(
        e.svc
            .get_snapshot(Request::new(GetSnapshotRequest::default()))
            .await,
        Code::Unimplemented,
    );
    expect_code(
        e.svc
            .controller_modify_volume(Request::new(ControllerModifyVolumeRequest::default()))
            .await,
        Code::Unimplemented,
    );
}
