//! The node steps are traced as child spans of the gRPC server span of the call that made them.
//!
//! A root test (loop devices, mkfs, mounts; it fails saying what is missing otherwise) in a
//! process of its own, because it installs a global tracing subscriber that records, for every
//! new span, its name and the request id of the `grpc.server` span it descends from. One ext4
//! volume goes through stage, publish, unpublish and unstage, each call with its own
//! `x-request-id`, and each call must show its steps under its own server span.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{self, File};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nvme_helper::grpc_service::HelperService;
use nvme_helper::host_identity::{HostIdentity, HostIdentityFiles};
use nvme_helper::loop_fabric::LoopFabric;
use nvme_helper::node::{Node, NodeConfig};
use nvme_helper::nqn::NqnPrefix;
use nvme_helper::volume_metrics::VolumeMetrics;
use rds_csi_proto::endpoint::Endpoint;
use rds_csi_proto::helper::node_helper_client::NodeHelperClient;
use rds_csi_proto::helper::node_helper_server::NodeHelperServer;
use rds_csi_proto::helper::{
    AccessType, Filesystem, FilesystemSpec, PublishRequest, StageRequest, Target, UnpublishRequest,
    UnstageRequest,
};
use rds_csi_proto::hop::{HopMetrics, ServerHopLayer};
use rds_csi_proto::metrics_server::Readiness;
use rds_csi_proto::serve::Listener;
use tracing::span::{Attributes, Id};
use tracing::{Subscriber, field};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

const PREFIX: &str = "nqn.2000-02.com.mikrotik:";

/// The request id of a `grpc.server` span, kept in its extensions.
struct RequestId(String);

/// (span name, request id of the server span above it).
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

struct Capture(Seen);

struct RequestIdVisitor(Option<String>);

impl field::Visit for RequestIdVisitor {
    fn record_debug(&mut self, f: &field::Field, value: &dyn std::fmt::Debug) {
        if f.name() == "request_id" {
            self.0 = Some(format!("{value:?}"));
        }
    }
    fn record_str(&mut self, f: &field::Field, value: &str) {
        if f.name() == "request_id" {
            self.0 = Some(value.to_string());
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        if span.name() == "grpc.server" {
            let mut v = RequestIdVisitor(None);
            attrs.record(&mut v);
            if let Some(rid) = v.0 {
                span.extensions_mut().insert(RequestId(rid));
            }
        }
        let rid = span
            .scope()
            .find_map(|s| s.extensions().get::<RequestId>().map(|r| r.0.clone()));
        self.0.lock().unwrap().push((span.name().to_string(), rid));
    }
}

fn with_rid<T>(msg: T, rid: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("x-request-id", rid.parse().unwrap());
    r.set_timeout(Duration::from_secs(60));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_steps_are_children_of_the_server_span() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test attaches loop devices and mounts: run it as root"
    );
    assert!(
        Path::new("/usr/sbin/mkfs.ext4").exists() || Path::new("/sbin/mkfs.ext4").exists(),
        "mkfs.ext4 is missing: apt-get install e2fsprogs xfsprogs util-linux"
    );
    let seen: Seen = Arc::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(Capture(seen.clone())),
    )
    .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(tmp.path()).unwrap();
    let kubelet = root.join("kubelet");
    let backing = root.join("rds");
    fs::create_dir_all(kubelet.join("plugins/v")).unwrap();
    fs::create_dir_all(kubelet.join("pods/p")).unwrap();
    fs::create_dir_all(backing.join("pool")).unwrap();
    let file = backing.join("pool/pvc-spans.img");
    File::create(&file).unwrap().set_len(64 << 20).unwrap();

    let prefix = NqnPrefix::new(PREFIX).unwrap();
    let fabric = Arc::new(LoopFabric::new(&backing, prefix.clone(), "/sys", "/dev").unwrap());
    let registry = prometheus::Registry::new();
    let identity = HostIdentity::load_or_create(&HostIdentityFiles {
        hostnqn: root.join("hostnqn"),
        hostid: root.join("hostid"),
    })
    .unwrap();
    let node = Arc::new(
        Node::new(
            NodeConfig {
                kubelet_dir: kubelet.clone(),
                state_dir: root.join("state"),
                sysfs_root: "/sys".into(),
                dev_root: "/dev".into(),
                mountinfo: "/proc/self/mountinfo".into(),
                managed_prefix: prefix,
                identity,
                hostname: "n".into(),
                device_wait_timeout: Duration::from_secs(10),
                disconnect_timeout: Duration::from_secs(10),
                tool_timeout: Duration::from_secs(60),
                mkfs_ext4_options: String::new(),
                mkfs_xfs_options: String::new(),
            },
            fabric,
            VolumeMetrics::register(&registry).unwrap(),
        )
        .unwrap(),
    );
    let readiness = Readiness::not_ready("x");
    readiness.set_ready();
    let name = <NodeHelperServer<HelperService> as tonic::server::NamedService>::NAME;
    let hop = ServerHopLayer::new(
        HopMetrics::register(&registry, "nvme-helper").unwrap(),
        &[name],
    );
    let socket = root.join("h.sock");
    let listener = Listener::bind(&Endpoint::Unix(socket.clone()), 0o600)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(listener.serve(
        tonic::service::Routes::new(NodeHelperServer::new(HelperService::new(node, readiness))),
        hop,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(5),
    ));
    let channel = rds_csi_proto::channel::connect_lazy(&Endpoint::Unix(socket)).unwrap();
    let mut c = NodeHelperClient::new(channel);

    let staging = kubelet.join("plugins/v/globalmount");
    let target = kubelet.join("pods/p/mount");
    let nqn = format!("{PREFIX}pvc-spans");
    let result = async {
        c.stage(with_rid(
            StageRequest {
                volume_id: "pvc-spans".into(),
                target: Some(Target {
                    nqn: nqn.clone(),
                    address: "127.0.0.1".into(),
                    port: 4420,
                    ..Default::default()
                }),
                staging_path: staging.display().to_string(),
                access_type: AccessType::Filesystem as i32,
                filesystem: Some(FilesystemSpec {
                    filesystem: Filesystem::Ext4 as i32,
                    ..Default::default()
                }),
                read_only: false,
            },
            "rid-stage",
        ))
        .await?;
        c.publish(with_rid(
            PublishRequest {
                volume_id: "pvc-spans".into(),
                staging_path: staging.display().to_string(),
                target_path: target.display().to_string(),
                access_type: AccessType::Filesystem as i32,
                read_only: false,
                mount_options: vec![],
                single_target: false,
            },
            "rid-publish",
        ))
        .await?;
        c.unpublish(with_rid(
            UnpublishRequest {
                volume_id: "pvc-spans".into(),
                target_path: target.display().to_string(),
            },
            "rid-unpublish",
        ))
        .await?;
        c.unstage(with_rid(
            UnstageRequest {
                volume_id: "pvc-spans".into(),
                staging_path: staging.display().to_string(),
                nqn: nqn.clone(),
            },
            "rid-unstage",
        ))
        .await?;
        Ok::<_, tonic::Status>(())
    }
    .await;
    // Clean up whatever happened before judging.
    for m in [&target, &staging] {
        let _ = nix::mount::umount2(m.as_path(), nix::mount::MntFlags::MNT_DETACH);
    }
    if let Ok(entries) = fs::read_dir("/sys/class/block") {
        for e in entries.flatten() {
            let backing_file = fs::read_to_string(e.path().join("loop/backing_file"));
            if backing_file.is_ok_and(|b| b.trim() == file.display().to_string())
                && let Some(n) = e
                    .file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("loop"))
                    .and_then(|n| n.parse().ok())
            {
                let _ = nvme_helper::loop_device::detach(Path::new("/dev"), n);
            }
        }
    }
    let _ = stop.send(());
    let _ = server.await;
    result.unwrap();

    let seen = seen.lock().unwrap().clone();
    let under = |rid: &str| -> Vec<String> {
        seen.iter()
            .filter(|(name, r)| r.as_deref() == Some(rid) && name != "grpc.server")
            .map(|(name, _)| name.clone())
            .collect()
    };
    let expect = [
        (
            "rid-stage",
            &["connect", "wait_for_device", "probe", "mkfs", "mount"][..],
        ),
        ("rid-publish", &["bind"][..]),
        ("rid-unpublish", &["unmount"][..]),
        ("rid-unstage", &["unmount", "disconnect"][..]),
    ];
    for (rid, steps) in expect {
        let got = under(rid);
        for step in steps {
            assert!(
                got.iter().any(|g| g == step),
                "{rid}: no {step} span under the server span (got {got:?})"
            );
        }
    }
}
