//! The node service against a fake nvme-helper: every Node RPC is validated and relayed with
//! the context the helper needs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{FakeHelper, expect_code, start_helper};
use csi_frontend::ids::NodeId;
use csi_frontend::node::NodeService;
use rds_csi_proto::csi::node_server::Node;
use rds_csi_proto::csi::volume_capability::access_mode::Mode;
use rds_csi_proto::csi::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use rds_csi_proto::csi::*;
use rds_csi_proto::helper as hp;
use tonic::{Code, Request, Status};

const VOL: &str = "pvc-3f0b7d2c-1c1d-4e0b-9a55-0f6b1c2e9e11";
const STAGING: &str = "/var/lib/kubelet/plugins/kubernetes.io/csi/rds.csi.srvlab.io/x/globalmount";
const TARGET: &str = "/var/lib/kubelet/pods/p/volumes/kubernetes.io~csi/pvc/mount";

fn mount_cap(mode: Mode, fs: &str, flags: &[&str]) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: fs.into(),
            mount_flags: flags.iter().map(|f| f.to_string()).collect(),
            volume_mount_group: String::new(),
        })),
        access_mode: Some(AccessMode { mode: mode as i32 }),
    }
}

fn block_cap() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Block(BlockVolume {})),
        access_mode: Some(AccessMode {
            mode: Mode::MultiNodeMultiWriter as i32,
        }),
    }
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn publish_context() -> HashMap<String, String> {
    map(&[
        ("nvme_nqn", &format!("nqn.2000-02.com.mikrotik:{VOL}")),
        ("nvme_address", "10.42.68.1"),
        ("nvme_port", "4420"),
        ("fs_type", "xfs"),
        ("ctrl_loss_tmo", "600"),
        ("reconnect_delay", "3"),
        ("keep_alive_tmo", "15"),
    ])
}

struct Env {
    _dir: tempfile::TempDir,
    helper: FakeHelper,
    svc: NodeService,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let (helper, _, client) = start_helper(dir.path());
    let svc = NodeService::new(client, NodeId::parse("node-a").unwrap(), 24);
    Env {
        _dir: dir,
        helper,
        svc,
    }
}

fn stage_req(cap: VolumeCapability) -> NodeStageVolumeRequest {
    NodeStageVolumeRequest {
        volume_id: VOL.into(),
        publish_context: publish_context(),
        staging_target_path: STAGING.into(),
        volume_capability: Some(cap),
        secrets: HashMap::new(),
        volume_context: map(&[
            ("mkfsOptions", "-m 0"),
            ("mountOptions", "discard"),
            ("csi.storage.k8s.io/pvc/name", "data"),
            ("csi.storage.k8s.io/pvc/namespace", "db"),
        ]),
    }
}

#[tokio::test]
async fn stage_relays_target_filesystem_and_options() {
    let e = env();
    e.svc
        .node_stage_volume(Request::new(stage_req(mount_cap(
            Mode::SingleNodeWriter,
            "",
            &["noatime"],
        ))))
        .await
        .unwrap();
    let sent = e.helper.state.lock().unwrap().stage.pop().unwrap();
    assert_eq!(sent.volume_id, VOL);
    assert_eq!(sent.staging_path, STAGING);
    assert_eq!(sent.access_type, hp::AccessType::Filesystem as i32);
    assert!(!sent.read_only);
    let t = sent.target.unwrap();
    assert_eq!(t.nqn, format!("nqn.2000-02.com.mikrotik:{VOL}"));
    assert_eq!((t.address.as_str(), t.port), ("10.42.68.1", 4420));
    assert_eq!(
        (t.ctrl_loss_tmo, t.reconnect_delay, t.keep_alive_tmo),
        (600, 3, 15)
    );
    let fs = sent.filesystem.unwrap();
    // The capability named no filesystem: the publish context's xfs applies.
    assert_eq!(fs.filesystem, hp::Filesystem::Xfs as i32);
    assert_eq!(fs.mkfs_options, ["-m", "0"]);
    assert_eq!(fs.mount_options, ["noatime", "discard"]);

    // Block: no filesystem; reader-only mode stages read-only.
    e.svc
        .node_stage_volume(Request::new(stage_req(block_cap())))
        .await
        .unwrap();
    let sent = e.helper.state.lock().unwrap().stage.pop().unwrap();
    assert_eq!(sent.access_type, hp::AccessType::Block as i32);
    assert!(sent.filesystem.is_none());
    e.svc
        .node_stage_volume(Request::new(stage_req(mount_cap(
            Mode::SingleNodeReaderOnly,
            "ext4",
            &[],
        ))))
        .await
        .unwrap();
    let sent = e.helper.state.lock().unwrap().stage.pop().unwrap();
    assert!(sent.read_only);
    assert_eq!(
        sent.filesystem.unwrap().filesystem,
        hp::Filesystem::Ext4 as i32
    );
}

#[tokio::test]
async fn a_go_driver_volume_stages_from_its_volume_context() {
    let e = env();
    let mut req = stage_req(mount_cap(Mode::SingleNodeWriter, "ext4", &[]));
    req.publish_context = map(&[
        ("nvme_address", "10.42.68.1"),
        ("nvme_port", "4420"),
        ("nvme_nqn", &format!("nqn.2000-02.com.mikrotik:{VOL}")),
        ("fs_type", "ext4"),
    ]);
    req.volume_context = map(&[
        ("rdsAddress", "10.42.241.3"),
        ("nvmeAddress", "10.42.68.1"),
        ("nvmePort", "4420"),
        ("nqn", &format!("nqn.2000-02.com.mikrotik:{VOL}")),
        ("volumePath", &format!("/storage-pool/metal-csi/{VOL}.img")),
        ("ctrlLossTmo", "-1"),
        ("reconnectDelay", "5"),
        ("keepAliveTmo", "0"),
        ("migrationTimeoutSeconds", "300"),
    ]);
    e.svc.node_stage_volume(Request::new(req)).await.unwrap();
    let t = e
        .helper
        .state
        .lock()
        .unwrap()
        .stage
        .pop()
        .unwrap()
        .target
        .unwrap();
    assert_eq!((t.ctrl_loss_tmo, t.reconnect_delay), (-1, 5));
}

#[tokio::test]
async fn stage_validation_codes() {
    let e = env();
    let ok = || stage_req(mount_cap(Mode::SingleNodeWriter, "ext4", &[]));
    let mut cases: Vec<(NodeStageVolumeRequest, &str)> = vec![
        (
            NodeStageVolumeRequest {
                volume_id: String::new(),
                ..ok()
            },
            "volume_id",
        ),
        (
            NodeStageVolumeRequest {
                volume_id: "vol-1".into(),
                ..ok()
            },
            "volume_id",
        ),
        (
            NodeStageVolumeRequest {
                staging_target_path: String::new(),
                ..ok()
            },
            "staging_target_path",
        ),
        (
            NodeStageVolumeRequest {
                staging_target_path: "relative/dir".into(),
                ..ok()
            },
            "absolute",
        ),
        (
            NodeStageVolumeRequest {
                staging_target_path: "/var/../etc".into(),
                ..ok()
            },
            "normalised",
        ),
        (
            NodeStageVolumeRequest {
                volume_capability: None,
                ..ok()
            },
            "volume_capability",
        ),
        (
            NodeStageVolumeRequest {
                volume_capability: Some(mount_cap(Mode::MultiNodeMultiWriter, "ext4", &[])),
                ..ok()
            },
            "MULTI_NODE_MULTI_WRITER",
        ),
    ];
    let mut foreign = ok();
    foreign.publish_context.insert(
        "nvme_nqn".into(),
        "nqn.2000-02.com.mikrotik:root-disk".into(),
    );
    cases.push((foreign, "NQN"));
    let mut unknown = ok();
    unknown.volume_context.insert("evil".into(), "1".into());
    cases.push((unknown, "evil"));
    let mut bad_port = ok();
    bad_port
        .publish_context
        .insert("nvme_port".into(), "99999".into());
    cases.push((bad_port, "nvme_port"));
    let mut no_address = ok();
    no_address.publish_context.remove("nvme_address");
    cases.push((no_address, "no NVMe/TCP address"));
    let mut bad_mkfs = ok();
    bad_mkfs
        .volume_context
        .insert("mkfsOptions".into(), "-E $(id)".into());
    cases.push((bad_mkfs, "mkfsOptions"));
    for (req, needle) in cases {
        let msg = expect_code(
            e.svc.node_stage_volume(Request::new(req)).await,
            Code::InvalidArgument,
        );
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    }
    assert!(
        e.helper.state.lock().unwrap().stage.is_empty(),
        "nothing invalid reached the helper"
    );
}

#[tokio::test]
async fn unstage_publish_unpublish() {
    let e = env();
    e.svc
        .node_unstage_volume(Request::new(NodeUnstageVolumeRequest {
            volume_id: VOL.into(),
            staging_target_path: STAGING.into(),
        }))
        .await
        .unwrap();
    let u = e.helper.state.lock().unwrap().unstage.pop().unwrap();
    // Only this volume's own NQN is handed over for disconnecting.
    assert_eq!(u.nqn, format!("nqn.2000-02.com.mikrotik:{VOL}"));
    expect_code(
        e.svc
            .node_unstage_volume(Request::new(NodeUnstageVolumeRequest {
                volume_id: VOL.into(),
                staging_target_path: "staging".into(),
            }))
            .await,
        Code::InvalidArgument,
    );

    let publish = |cap: VolumeCapability, staging: &str, target: &str, readonly: bool| {
        NodePublishVolumeRequest {
            volume_id: VOL.into(),
            publish_context: publish_context(),
            staging_target_path: staging.into(),
            target_path: target.into(),
            volume_capability: Some(cap),
            readonly,
            secrets: HashMap::new(),
            volume_context: map(&[("csi.storage.k8s.io/pod.name", "virt-launcher-1")]),
        }
    };
    e.svc
        .node_publish_volume(Request::new(publish(
            mount_cap(Mode::SingleNodeWriter, "ext4", &["noatime"]),
            STAGING,
            TARGET,
            true,
        )))
        .await
        .unwrap();
    let p = e.helper.state.lock().unwrap().publish.pop().unwrap();
    assert_eq!(
        (p.staging_path.as_str(), p.target_path.as_str()),
        (STAGING, TARGET)
    );
    assert!(p.read_only);
    assert_eq!(p.mount_options, ["noatime"]);
    assert_eq!(p.access_type, hp::AccessType::Filesystem as i32);
    expect_code(
        e.svc
            .node_publish_volume(Request::new(publish(block_cap(), "", TARGET, false)))
            .await,
        Code::FailedPrecondition,
    );
    for (staging, target) in [(STAGING, ""), (STAGING, "pods/x"), (STAGING, STAGING)] {
        expect_code(
            e.svc
                .node_publish_volume(Request::new(publish(block_cap(), staging, target, false)))
                .await,
            Code::InvalidArgument,
        );
    }
    e.svc
        .node_unpublish_volume(Request::new(NodeUnpublishVolumeRequest {
            volume_id: VOL.into(),
            target_path: TARGET.into(),
        }))
        .await
        .unwrap();
    assert_eq!(e.helper.state.lock().unwrap().unpublish.len(), 1);
    expect_code(
        e.svc
            .node_unpublish_volume(Request::new(NodeUnpublishVolumeRequest {
                volume_id: VOL.into(),
                target_path: String::new(),
            }))
            .await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn stats_map_usage_and_condition() {
    let e = env();
    e.helper.state.lock().unwrap().stats_answer = hp::StatsResponse {
        access_type: hp::AccessType::Filesystem as i32,
        total_bytes: 1000,
        available_bytes: 600,
        used_bytes: 400,
        total_inodes: 100,
        available_inodes: 90,
        used_inodes: 10,
        abnormal: true,
        condition_message: "the staging mount is stale".into(),
    };
    let r = e
        .svc
        .node_get_volume_stats(Request::new(NodeGetVolumeStatsRequest {
            volume_id: VOL.into(),
            volume_path: TARGET.into(),
            staging_target_path: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.usage.len(), 2);
    assert_eq!(
        (r.usage[0].total, r.usage[0].used, r.usage[0].available),
        (1000, 400, 600)
    );
    assert_eq!(r.usage[1].unit, volume_usage::Unit::Inodes as i32);
    let c = r.volume_condition.unwrap();
    assert!(c.abnormal && c.message.contains("stale"));
    e.helper.state.lock().unwrap().stats_answer = hp::StatsResponse {
        access_type: hp::AccessType::Block as i32,
        total_bytes: 4096,
        ..Default::default()
    };
    let r = e
        .svc
        .node_get_volume_stats(Request::new(NodeGetVolumeStatsRequest {
            volume_id: VOL.into(),
            volume_path: TARGET.into(),
            staging_target_path: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.usage.len(), 1);
    assert_eq!(r.usage[0].total, 4096);
    assert!(!r.volume_condition.unwrap().abnormal);
    expect_code(
        e.svc
            .node_get_volume_stats(Request::new(NodeGetVolumeStatsRequest {
                volume_id: VOL.into(),
                volume_path: String::new(),
                staging_target_path: String::new(),
            }))
            .await,
        Code::InvalidArgument,
    );
    e.helper
        .faults
        .fail("Stats", Status::not_found("nothing mounted there"));
    expect_code(
        e.svc
            .node_get_volume_stats(Request::new(NodeGetVolumeStatsRequest {
                volume_id: VOL.into(),
                volume_path: TARGET.into(),
                staging_target_path: String::new(),
            }))
            .await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn expand_relays_size_and_access_type() {
    let e = env();
    let r = e
        .svc
        .node_expand_volume(Request::new(NodeExpandVolumeRequest {
            volume_id: VOL.into(),
            volume_path: TARGET.into(),
            capacity_range: Some(CapacityRange {
                required_bytes: (2 << 30) + 1,
                limit_bytes: 0,
            }),
            staging_target_path: STAGING.into(),
            volume_capability: Some(mount_cap(Mode::SingleNodeWriter, "ext4", &[])),
            secrets: HashMap::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    let sent = e.helper.state.lock().unwrap().expand.pop().unwrap();
    assert_eq!(sent.required_bytes, (2 << 30) + (1 << 20));
    assert_eq!(sent.access_type, hp::AccessType::Filesystem as i32);
    assert_eq!(sent.staging_path, STAGING);
    assert_eq!(r.capacity_bytes, (2 << 30) + (1 << 20));
    expect_code(
        e.svc
            .node_expand_volume(Request::new(NodeExpandVolumeRequest {
                volume_id: VOL.into(),
                volume_path: "rel".into(),
                ..Default::default()
            }))
            .await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn info_and_capabilities() {
    let e = env();
    let info = e
        .svc
        .node_get_info(Request::new(NodeGetInfoRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, "node-a");
    assert_eq!(info.max_volumes_per_node, 24);
    assert!(info.accessible_topology.is_none());
    let caps = e
        .svc
        .node_get_capabilities(Request::new(NodeGetCapabilitiesRequest {}))
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    use node_service_capability::rpc::Type;
    let types: Vec<i32> = caps
        .into_iter()
        .filter_map(|c| {
            c.r#type
                .map(|node_service_capability::Type::Rpc(r)| r.r#type)
        })
        .collect();
    for t in [
        Type::StageUnstageVolume,
        Type::GetVolumeStats,
        Type::ExpandVolume,
        Type::VolumeCondition,
        Type::SingleNodeMultiWriter,
    ] {
        assert!(types.contains(&(t as i32)), "{t:?}");
    }
}

#[tokio::test]
async fn a_second_call_on_a_volume_being_staged_is_aborted() {
    let e = Arc::new(env());
    e.helper.faults.slow("Stage", Duration::from_millis(500));
    let first = {
        let e = e.clone();
        tokio::spawn(async move {
            e.svc
                .node_stage_volume(Request::new(stage_req(mount_cap(
                    Mode::SingleNodeWriter,
                    "ext4",
                    &[],
                ))))
                .await
                .map(|_| ())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let msg = expect_code(
        e.svc
            .node_unstage_volume(Request::new(NodeUnstageVolumeRequest {
                volume_id: VOL.into(),
                staging_target_path: STAGING.into(),
            }))
            .await,
        Code::Aborted,
    );
    assert!(msg.contains("already in progress"), "{msg}");
    first.await.unwrap().unwrap();
    // Helper failures keep their code (the helper's own guard says ABORTED too).
    e.helper.faults.slow("Stage", Duration::ZERO);
    e.helper
        .faults
        .fail("Stage", Status::failed_precondition("device busy"));
    expect_code(
        e.svc
            .node_stage_volume(Request::new(stage_req(mount_cap(
                Mode::SingleNodeWriter,
                "ext4",
                &[],
            ))))
            .await,
        Code::FailedPrecondition,
    );
}
