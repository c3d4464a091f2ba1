//! The scripted volume lifecycle the demo prints and the end-to-end suite repeats for
//! ext4, xfs and raw block: create, publish, stage, publish to a pod path, write and read
//! back, stats, expand, snapshot, restore and find the data, then tear everything down.
//!
//! Each step is one or more CSI calls sent with a fresh trace context, so the step's
//! trace id finds its spans in any trace backend. A failed step stops the script, but the
//! teardown still runs so that nothing is left behind.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rds_csi_proto::csi::volume_capability::access_mode::Mode;
use rds_csi_proto::csi::volume_content_source::{SnapshotSource, Type as SourceType};
use rds_csi_proto::csi::*;

use crate::csi_client::{Csi, block_capability, mount_capability, new_trace, traced};

const GIB: i64 = 1 << 30;
use crate::stack::NODE_ID;

/// One printed row.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub took: Duration,
    pub trace_id: String,
    pub outcome: Result<String, String>,
}

/// The filesystem (or raw block) the lifecycle runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Ext4,
    Xfs,
    Block,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Ext4 => "ext4",
            Flavor::Xfs => "xfs",
            Flavor::Block => "block",
        }
    }

    fn capability(self) -> VolumeCapability {
        match self {
            Flavor::Block => block_capability(Mode::SingleNodeWriter),
            fs => mount_capability(fs.name(), Mode::SingleNodeWriter),
        }
    }
}

/// Records steps and stops at the first failure.
struct Script {
    steps: Vec<Step>,
    failed: bool,
}

impl Script {
    async fn step<T, F, Fut>(&mut self, name: &str, f: F) -> Option<T>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<(T, String), String>>,
    {
        if self.failed {
            return None;
        }
        let (traceparent, trace_id) = new_trace();
        let start = Instant::now();
        let result = f(traceparent).await;
        let took = start.elapsed();
        let (value, outcome) = match result {
            Ok((v, detail)) => (Some(v), Ok(detail)),
            Err(e) => {
                self.failed = true;
                (None, Err(e))
            }
        };
        self.steps.push(Step {
            name: name.to_string(),
            took,
            trace_id,
            outcome,
        });
        value
    }

    /// A teardown step: always runs, and records its outcome.
    async fn cleanup<F, Fut>(&mut self, name: &str, f: F)
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<String, String>>,
    {
        let (traceparent, trace_id) = new_trace();
        let start = Instant::now();
        let outcome = f(traceparent).await;
        if outcome.is_err() {
            self.failed = true;
        }
        self.steps.push(Step {
            name: name.to_string(),
            took: start.elapsed(),
            trace_id,
            outcome,
        });
    }
}

fn status(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// The paths kubelet would use for one volume under the kubelet dir.
struct Paths {
    staging: PathBuf,
    target: PathBuf,
}

fn paths(kubelet: &Path, tag: &str, flavor: Flavor) -> Result<Paths, String> {
    let staging = kubelet.join(format!(
        "plugins/kubernetes.io/csi/rds.csi.srvlab.io/{tag}/globalmount"
    ));
    let pod = kubelet.join(format!("pods/{tag}-pod/volumes/kubernetes.io~csi/{tag}"));
    std::fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&pod).map_err(|e| e.to_string())?;
    let target = match flavor {
        Flavor::Block => pod.join("dev"),
        _ => pod.join("mount"),
    };
    Ok(Paths { staging, target })
}

const PAYLOAD: &[u8] = b"rds-csi lifecycle payload\n";

/// The size a pod sees: the filesystem's size, or the block device's.
fn visible_size(target: &Path, flavor: Flavor) -> Result<i64, String> {
    match flavor {
        Flavor::Block => {
            let mut f = std::fs::File::open(target).map_err(|e| e.to_string())?;
            let end = f.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
            i64::try_from(end).map_err(|e| e.to_string())
        }
        _ => {
            let st = nix::sys::statvfs::statvfs(target).map_err(|e| e.to_string())?;
            let bytes = u128::from(st.blocks()) * u128::from(st.fragment_size());
            i64::try_from(bytes).map_err(|e| e.to_string())
        }
    }
}

fn write_payload(target: &Path, flavor: Flavor) -> Result<(), String> {
    match flavor {
        Flavor::Block => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(target)
                .map_err(|e| format!("open {}: {e}", target.display()))?;
            f.seek(SeekFrom::Start(1 << 20))
                .map_err(|e| e.to_string())?;
            f.write_all(PAYLOAD).map_err(|e| e.to_string())?;
            f.sync_all().map_err(|e| e.to_string())
        }
        _ => {
            let file = target.join("hello.txt");
            std::fs::write(&file, PAYLOAD).map_err(|e| format!("write {}: {e}", file.display()))?;
            std::fs::File::open(&file)
                .and_then(|f| f.sync_all())
                .map_err(|e| e.to_string())
        }
    }
}

fn read_payload(target: &Path, flavor: Flavor) -> Result<Vec<u8>, String> {
    match flavor {
        Flavor::Block => {
            let mut f = std::fs::File::open(target).map_err(|e| e.to_string())?;
            f.seek(SeekFrom::Start(1 << 20))
                .map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; PAYLOAD.len()];
            f.read_exact(&mut buf).map_err(|e| e.to_string())?;
            Ok(buf)
        }
        _ => std::fs::read(target.join("hello.txt")).map_err(|e| e.to_string()),
    }
}

/// Runs the whole lifecycle for `flavor`; `tag` keeps names unique when several run at
/// once.
pub async fn run(csi: &Csi, kubelet: &Path, flavor: Flavor, tag: &str) -> (Vec<Step>, bool) {
    let mut s = Script {
        steps: Vec::new(),
        failed: false,
    };
    let cap = flavor.capability();
    let fs = flavor.name();
    let ctrl = csi.controller.clone();
    let node = csi.node.clone();

    let p = match paths(kubelet, tag, flavor) {
        Ok(p) => p,
        Err(e) => {
            return (
                vec![Step {
                    name: "prepare kubelet paths".into(),
                    took: Duration::ZERO,
                    trace_id: String::new(),
                    outcome: Err(e),
                }],
                false,
            );
        }
    };
    let restored_paths = paths(kubelet, &format!("{tag}-restored"), flavor).ok();

    let vol = s
        .step(&format!("CreateVolume 1 GiB {fs}"), |tp| {
            let mut c = ctrl.clone();
            let cap = cap.clone();
            async move {
                let r = c
                    .create_volume(traced(
                        CreateVolumeRequest {
                            name: format!("{tag}-vol"),
                            capacity_range: Some(CapacityRange {
                                required_bytes: GIB,
                                limit_bytes: 0,
                            }),
                            volume_capabilities: vec![cap],
                            ..Default::default()
                        },
                        &tp,
                    ))
                    .await
                    .map_err(status)?;
                let v = r.into_inner().volume.ok_or("no volume in the answer")?;
                let detail = format!("{} ({} bytes)", v.volume_id, v.capacity_bytes);
                Ok((v, detail))
            }
        })
        .await;

    let publish = |vol: Volume, tp: String| {
        let mut c = ctrl.clone();
        let cap = cap.clone();
        async move {
            let r = c
                .controller_publish_volume(traced(
                    ControllerPublishVolumeRequest {
                        volume_id: vol.volume_id.clone(),
                        node_id: NODE_ID.into(),
                        volume_capability: Some(cap),
                        readonly: false,
                        volume_context: vol.volume_context.clone(),
                        ..Default::default()
                    },
                    &tp,
                ))
                .await
                .map_err(status)?;
            let ctx = r.into_inner().publish_context;
            let detail = format!("{} keys", ctx.len());
            Ok((ctx, detail))
        }
    };
    let stage = |vol: Volume, ctx: HashMap<String, String>, staging: PathBuf, tp: String| {
        let mut n = node.clone();
        let cap = cap.clone();
        async move {
            n.node_stage_volume(traced(
                NodeStageVolumeRequest {
                    volume_id: vol.volume_id.clone(),
                    publish_context: ctx,
                    staging_target_path: staging.display().to_string(),
                    volume_capability: Some(cap),
                    volume_context: vol.volume_context.clone(),
                    ..Default::default()
                },
                &tp,
            ))
            .await
            .map_err(status)?;
            Ok(((), staging.display().to_string()))
        }
    };
    let node_publish = |vol: Volume,
                        ctx: HashMap<String, String>,
                        staging: PathBuf,
                        target: PathBuf,
                        tp: String| {
        let mut n = node.clone();
        let cap = cap.clone();
        async move {
            n.node_publish_volume(traced(
                NodePublishVolumeRequest {
                    volume_id: vol.volume_id.clone(),
                    publish_context: ctx,
                    staging_target_path: staging.display().to_string(),
                    target_path: target.display().to_string(),
                    volume_capability: Some(cap),
                    readonly: false,
                    volume_context: vol.volume_context.clone(),
                    ..Default::default()
                },
                &tp,
            ))
            .await
            .map_err(status)?;
            Ok(((), target.display().to_string()))
        }
    };

    // Both return the path they undid; unpublish also checks the target entry is gone.
    let node_unpublish = |id: String, target: PathBuf, tp: String| {
        let mut n = node.clone();
        async move {
            let target = target.display().to_string();
            n.node_unpublish_volume(traced(
                NodeUnpublishVolumeRequest {
                    volume_id: id,
                    target_path: target.clone(),
                },
                &tp,
            ))
            .await
            .map_err(status)?;
            if Path::new(&target).exists() {
                return Err(format!("{target} still exists"));
            }
            Ok(target)
        }
    };
    let node_unstage = |id: String, staging: PathBuf, tp: String| {
        let mut n = node.clone();
        async move {
            let staging = staging.display().to_string();
            n.node_unstage_volume(traced(
                NodeUnstageVolumeRequest {
                    volume_id: id,
                    staging_target_path: staging.clone(),
                },
                &tp,
            ))
            .await
            .map_err(status)?;
            Ok(staging)
        }
    };

    let mut published = false;
    let mut staged = false;
    let mut pod_published = false;
    let mut snapshot_id = None;
    let mut restored: Option<Volume> = None;
    let mut restored_state = (false, false, false);

    if let Some(vol) = vol.clone() {
        let ctx = s
            .step("ControllerPublishVolume", |tp| publish(vol.clone(), tp))
            .await;
        published = ctx.is_some();
        if let Some(ctx) = ctx {
            let ok = s
                .step("NodeStageVolume", |tp| {
                    stage(vol.clone(), ctx.clone(), p.staging.clone(), tp)
                })
                .await
                .is_some();
            // A stage that failed half-way may have connected the volume: unstage anyway,
            // as a CO does.
            staged = true;
            if ok {
                pod_published = s
                    .step("NodePublishVolume (pod path)", |tp| {
                        node_publish(
                            vol.clone(),
                            ctx.clone(),
                            p.staging.clone(),
                            p.target.clone(),
                            tp,
                        )
                    })
                    .await
                    .is_some();
            }
        }
        s.step("write and read back a file", |_| async {
            write_payload(&p.target, flavor)?;
            let back = read_payload(&p.target, flavor)?;
            if back == PAYLOAD {
                Ok(((), format!("{} bytes match", back.len())))
            } else {
                Err("read back different bytes".to_string())
            }
        })
        .await;
        s.step("NodeGetVolumeStats", |tp| {
            let mut n = node.clone();
            let vol = vol.clone();
            let target = p.target.clone();
            async move {
                let r = n
                    .node_get_volume_stats(traced(
                        NodeGetVolumeStatsRequest {
                            volume_id: vol.volume_id,
                            volume_path: target.display().to_string(),
                            staging_target_path: String::new(),
                        },
                        &tp,
                    ))
                    .await
                    .map_err(status)?
                    .into_inner();
                let bytes = r
                    .usage
                    .iter()
                    .find(|u| u.unit == volume_usage::Unit::Bytes as i32)
                    .ok_or("no byte usage")?;
                let abnormal = r.volume_condition.as_ref().is_some_and(|c| c.abnormal);
                if abnormal {
                    return Err(format!(
                        "volume condition abnormal: {:?}",
                        r.volume_condition
                    ));
                }
                Ok(((), format!("total {} used {}", bytes.total, bytes.used)))
            }
        })
        .await;
        // Offline expansion, as Kubernetes does it for a volume that is not in use: the
        // pod goes, the controller grows the disk, and the next stage presents the larger
        // filesystem (online ext4 grow needs CAP_SYS_RESOURCE, which test machines may lack).
        if s.step(
            "expand offline: unstage, ControllerExpandVolume 2 GiB",
            |tp| {
                let mut c = ctrl.clone();
                let vol = vol.clone();
                let cap = cap.clone();
                let target = p.target.clone();
                let staging = p.staging.clone();
                let node_unpublish = &node_unpublish;
                let node_unstage = &node_unstage;
                async move {
                    node_unpublish(vol.volume_id.clone(), target, tp.clone()).await?;
                    node_unstage(vol.volume_id.clone(), staging, tp.clone()).await?;
                    let r = c
                        .controller_expand_volume(traced(
                            ControllerExpandVolumeRequest {
                                volume_id: vol.volume_id.clone(),
                                capacity_range: Some(CapacityRange {
                                    required_bytes: 2 * GIB,
                                    limit_bytes: 0,
                                }),
                                volume_capability: Some(cap),
                                ..Default::default()
                            },
                            &tp,
                        ))
                        .await
                        .map_err(status)?
                        .into_inner();
                    if r.capacity_bytes < 2 * GIB {
                        return Err(format!("controller reports {} bytes", r.capacity_bytes));
                    }
                    Ok(((), format!("disk now {} bytes", r.capacity_bytes)))
                }
            },
        )
        .await
        .is_some()
        {
            let ctx = s
                .step("stage, publish, NodeExpandVolume: 2 GiB visible", |tp| {
                    let vol = vol.clone();
                    let staging = p.staging.clone();
                    let target = p.target.clone();
                    let mut n = node.clone();
                    let cap = cap.clone();
                    let publish = &publish;
                    let stage = &stage;
                    let node_publish = &node_publish;
                    async move {
                        let (ctx, _) = publish(vol.clone(), tp.clone()).await?;
                        stage(vol.clone(), ctx.clone(), staging.clone(), tp.clone()).await?;
                        node_publish(
                            vol.clone(),
                            ctx.clone(),
                            staging.clone(),
                            target.clone(),
                            tp.clone(),
                        )
                        .await?;
                        let nr = n
                            .node_expand_volume(traced(
                                NodeExpandVolumeRequest {
                                    volume_id: vol.volume_id,
                                    volume_path: target.display().to_string(),
                                    capacity_range: Some(CapacityRange {
                                        required_bytes: 2 * GIB,
                                        limit_bytes: 0,
                                    }),
                                    staging_target_path: staging.display().to_string(),
                                    volume_capability: Some(cap),
                                    ..Default::default()
                                },
                                &tp,
                            ))
                            .await
                            .map_err(status)?
                            .into_inner();
                        let size = visible_size(&target, flavor)?;
                        if size < 2 * GIB - (128 << 20) {
                            return Err(format!(
                                "the volume shows {size} bytes after expansion (node said {})",
                                nr.capacity_bytes
                            ));
                        }
                        Ok((ctx, format!("{size} bytes visible")))
                    }
                })
                .await;
            if ctx.is_none() {
                // Whatever half of the re-stage happened is undone by the teardown.
                pod_published = true;
            }
        } else {
            // The volume may be unpublished or unstaged already; both are idempotent.
            pod_published = true;
        }
        s.step("the file is still there", |_| async {
            let back = read_payload(&p.target, flavor)?;
            if back == PAYLOAD {
                Ok(((), "same bytes after expansion".to_string()))
            } else {
                Err("different bytes after expansion".to_string())
            }
        })
        .await;
        snapshot_id = s
            .step("CreateSnapshot", |tp| {
                let mut c = ctrl.clone();
                let vol = vol.clone();
                async move {
                    let snap = c
                        .create_snapshot(traced(
                            CreateSnapshotRequest {
                                source_volume_id: vol.volume_id,
                                name: format!("{tag}-snap"),
                                ..Default::default()
                            },
                            &tp,
                        ))
                        .await
                        .map_err(status)?
                        .into_inner()
                        .snapshot
                        .ok_or("no snapshot in the answer")?;
                    if !snap.ready_to_use {
                        return Err("snapshot not ready to use".into());
                    }
                    let id = snap.snapshot_id.clone();
                    Ok((id.clone(), id))
                }
            })
            .await;
        if let (Some(snap), Some(rp)) = (snapshot_id.clone(), restored_paths.as_ref()) {
            restored = s
                .step("CreateVolume from the snapshot", |tp| {
                    let mut c = ctrl.clone();
                    let cap = cap.clone();
                    async move {
                        let v = c
                            .create_volume(traced(
                                CreateVolumeRequest {
                                    name: format!("{tag}-restored"),
                                    capacity_range: Some(CapacityRange {
                                        required_bytes: 2 * GIB,
                                        limit_bytes: 0,
                                    }),
                                    volume_capabilities: vec![cap],
                                    volume_content_source: Some(VolumeContentSource {
                                        r#type: Some(SourceType::Snapshot(SnapshotSource {
                                            snapshot_id: snap,
                                        })),
                                    }),
                                    ..Default::default()
                                },
                                &tp,
                            ))
                            .await
                            .map_err(status)?
                            .into_inner()
                            .volume
                            .ok_or("no volume in the answer")?;
                        let d = v.volume_id.clone();
                        Ok((v, d))
                    }
                })
                .await;
            if let Some(rv) = restored.clone() {
                let rctx = s
                    .step("publish and stage the restored volume", |tp| {
                        let rv = rv.clone();
                        let staging = rp.staging.clone();
                        let target = rp.target.clone();
                        let publish = &publish;
                        let stage = &stage;
                        let node_publish = &node_publish;
                        async move {
                            let (ctx, _) = publish(rv.clone(), tp.clone()).await?;
                            stage(rv.clone(), ctx.clone(), staging.clone(), tp.clone()).await?;
                            node_publish(rv, ctx.clone(), staging, target, tp).await?;
                            Ok((ctx, "published, staged, mounted".to_string()))
                        }
                    })
                    .await;
                // Any part of publish-stage-publish may have happened before a failure; the
                // teardown calls are idempotent, so undo all of them.
                let _ = rctx;
                restored_state = (true, true, true);
                s.step("find the file in the restored volume", |_| async {
                    let back = read_payload(&rp.target, flavor)?;
                    if back == PAYLOAD {
                        Ok(((), "the snapshot's data is there".to_string()))
                    } else {
                        Err("restored volume holds different bytes".to_string())
                    }
                })
                .await;
            }
        }
    }

    // Teardown, whatever happened above.
    let teardown = [
        (
            restored.clone(),
            restored_paths.as_ref(),
            restored_state,
            "restored",
        ),
        (
            vol.clone(),
            Some(&p),
            (published, staged, pod_published),
            "volume",
        ),
    ];
    for (v, paths, (pubd, stgd, podd), what) in teardown {
        let (Some(v), Some(paths)) = (v, paths) else {
            continue;
        };
        if podd {
            s.cleanup(&format!("NodeUnpublishVolume ({what})"), |tp| {
                node_unpublish(v.volume_id.clone(), paths.target.clone(), tp)
            })
            .await;
        }
        if stgd {
            s.cleanup(&format!("NodeUnstageVolume ({what})"), |tp| {
                node_unstage(v.volume_id.clone(), paths.staging.clone(), tp)
            })
            .await;
        }
        if pubd {
            s.cleanup(&format!("ControllerUnpublishVolume ({what})"), |tp| {
                let mut c = ctrl.clone();
                let id = v.volume_id.clone();
                async move {
                    c.controller_unpublish_volume(traced(
                        ControllerUnpublishVolumeRequest {
                            volume_id: id,
                            node_id: NODE_ID.into(),
                            ..Default::default()
                        },
                        &tp,
                    ))
                    .await
                    .map_err(status)?;
                    Ok(NODE_ID.to_string())
                }
            })
            .await;
        }
    }
    if let Some(snap) = snapshot_id {
        s.cleanup("DeleteSnapshot", |tp| {
            let mut c = ctrl.clone();
            async move {
                c.delete_snapshot(traced(
                    DeleteSnapshotRequest {
                        snapshot_id: snap.clone(),
                        ..Default::default()
                    },
                    &tp,
                ))
                .await
                .map_err(status)?;
                Ok(snap)
            }
        })
        .await;
    }
    for v in [restored, vol].into_iter().flatten() {
        s.cleanup("DeleteVolume", |tp| {
            let mut c = ctrl.clone();
            async move {
                c.delete_volume(traced(
                    DeleteVolumeRequest {
                        volume_id: v.volume_id.clone(),
                        ..Default::default()
                    },
                    &tp,
                ))
                .await
                .map_err(status)?;
                Ok(v.volume_id)
            }
        })
        .await;
    }
    let ok = !s.failed;
    (s.steps, ok)
}

/// Prints steps as a table.
pub fn print_table(title: &str, steps: &[Step]) {
    println!();
    println!("{title}");
    println!(
        "{:<52} {:>9}  {:<6} {:<32}  detail",
        "step", "ms", "result", "trace id"
    );
    for st in steps {
        let (res, detail) = match &st.outcome {
            Ok(d) => ("ok", d.as_str()),
            Err(d) => ("FAIL", d.as_str()),
        };
        println!(
            "{:<52} {:>9.1}  {res:<6} {:<32}  {detail}",
            st.name,
            st.took.as_secs_f64() * 1000.0,
            st.trace_id
        );
    }
}
