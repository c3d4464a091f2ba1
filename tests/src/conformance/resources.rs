//! What a case created and must give back, and the cleanup that gives it back even when the
//! case failed half-way.
//!
//! Volumes and snapshots are recorded when a call that creates them succeeds; node paths
//! are recorded before a stage or publish is attempted (a failed attempt may still have
//! mounted or connected something). Cleanup runs newest first, as a CO tears down: for a
//! volume, unpublish each target and unstage each staging path (NOT_FOUND is fine), detach
//! it from each node it was published to, then delete it; for a snapshot, delete it. A
//! cleanup call that fails is reported, and the case fails with it.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use rds_csi_proto::csi::{
    ControllerUnpublishVolumeRequest, DeleteSnapshotRequest, DeleteVolumeRequest,
    NodeUnpublishVolumeRequest, NodeUnstageVolumeRequest,
};
use tonic::{Code, Status};

use super::expect::shown;
use crate::csi_client::Csi;

/// One volume and where it is in use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeUse {
    pub id: String,
    pub nodes: Vec<String>,
    pub staged: Vec<String>,
    pub targets: Vec<String>,
}

/// Something to give back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Volume(VolumeUse),
    Snapshot(String),
}

/// The resources of one case, oldest first.
#[derive(Debug, Default)]
pub struct Tracker {
    list: Mutex<Vec<Resource>>,
}

fn add(list: &mut Vec<String>, v: &str) {
    if !list.iter().any(|x| x == v) {
        list.push(v.to_string());
    }
}

fn drop_item(list: &mut Vec<String>, v: &str) {
    list.retain(|x| x != v);
}

impl Tracker {
    fn with<R>(&self, f: impl FnOnce(&mut Vec<Resource>) -> R) -> R {
        f(&mut self.list.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The volume `id`, recorded if it is not yet.
    fn with_volume(&self, id: &str, f: impl FnOnce(&mut VolumeUse)) {
        self.with(|list| {
            let found = list.iter_mut().find_map(|r| match r {
                Resource::Volume(v) if v.id == id => Some(v),
                _ => None,
            });
            match found {
                Some(v) => f(v),
                None => {
                    let mut v = VolumeUse {
                        id: id.to_string(),
                        ..VolumeUse::default()
                    };
                    f(&mut v);
                    list.push(Resource::Volume(v));
                }
            }
        })
    }

    pub fn volume_created(&self, id: &str) {
        self.with_volume(id, |_| {});
    }

    pub fn volume_deleted(&self, id: &str) {
        self.with(|l| l.retain(|r| !matches!(r, Resource::Volume(v) if v.id == id)));
    }

    pub fn published(&self, id: &str, node: &str) {
        self.with_volume(id, |v| add(&mut v.nodes, node));
    }

    pub fn unpublished(&self, id: &str, node: &str) {
        self.with_volume(id, |v| {
            if node.is_empty() {
                v.nodes.clear();
            } else {
                drop_item(&mut v.nodes, node);
            }
        });
    }

    pub fn staging(&self, id: &str, path: &str) {
        self.with_volume(id, |v| add(&mut v.staged, path));
    }

    pub fn unstaged(&self, id: &str, path: &str) {
        self.with_volume(id, |v| drop_item(&mut v.staged, path));
    }

    pub fn targeting(&self, id: &str, path: &str) {
        self.with_volume(id, |v| add(&mut v.targets, path));
    }

    pub fn untargeted(&self, id: &str, path: &str) {
        self.with_volume(id, |v| drop_item(&mut v.targets, path));
    }

    pub fn snapshot_created(&self, id: &str) {
        self.with(|l| {
            if !l
                .iter()
                .any(|r| matches!(r, Resource::Snapshot(s) if s == id))
            {
                l.push(Resource::Snapshot(id.to_string()));
            }
        });
    }

    pub fn snapshot_deleted(&self, id: &str) {
        self.with(|l| l.retain(|r| !matches!(r, Resource::Snapshot(s) if s == id)));
    }

    /// What is still recorded, oldest first.
    pub fn outstanding(&self) -> Vec<Resource> {
        self.with(|l| l.clone())
    }

    /// Gives everything back, newest first; returns the calls that failed.
    pub async fn cleanup(&self, csi: &Csi, timeout: Duration) -> Vec<String> {
        let items = self.with(std::mem::take);
        let mut problems = Vec::new();
        for item in items.into_iter().rev() {
            match item {
                Resource::Volume(v) => release_volume(csi, &v, timeout, &mut problems).await,
                Resource::Snapshot(id) => {
                    let mut c = csi.controller.clone();
                    let r = bounded(timeout, async {
                        c.delete_snapshot(DeleteSnapshotRequest {
                            snapshot_id: id.clone(),
                            secrets: Default::default(),
                        })
                        .await
                        .map(|_| ())
                    })
                    .await;
                    if let Err(s) = r {
                        problems.push(format!("cleanup DeleteSnapshot {id}: {}", shown(&s)));
                    }
                }
            }
        }
        problems
    }
}

/// `fut`, or DEADLINE_EXCEEDED after `timeout`.
pub async fn bounded<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "conformance: no answer within {timeout:?}"
        ))),
    }
}

async fn release_volume(csi: &Csi, v: &VolumeUse, timeout: Duration, problems: &mut Vec<String>) {
    let gone_is_fine = |r: Result<(), Status>, what: String, problems: &mut Vec<String>| {
        if let Err(s) = r
            && s.code() != Code::NotFound
        {
            problems.push(format!("cleanup {what}: {}", shown(&s)));
        }
    };
    for target in v.targets.iter().rev() {
        let mut n = csi.node.clone();
        let r = bounded(timeout, async {
            n.node_unpublish_volume(NodeUnpublishVolumeRequest {
                volume_id: v.id.clone(),
                target_path: target.clone(),
            })
            .await
            .map(|_| ())
        })
        .await;
        gone_is_fine(r, format!("NodeUnpublishVolume {target}"), problems);
    }
    for staging in v.staged.iter().rev() {
        let mut n = csi.node.clone();
        let r = bounded(timeout, async {
            n.node_unstage_volume(NodeUnstageVolumeRequest {
                volume_id: v.id.clone(),
                staging_target_path: staging.clone(),
            })
            .await
            .map(|_| ())
        })
        .await;
        gone_is_fine(r, format!("NodeUnstageVolume {staging}"), problems);
    }
    for node in &v.nodes {
        let mut c = csi.controller.clone();
        let r = bounded(timeout, async {
            c.controller_unpublish_volume(ControllerUnpublishVolumeRequest {
                volume_id: v.id.clone(),
                node_id: node.clone(),
                secrets: Default::default(),
            })
            .await
            .map(|_| ())
        })
        .await;
        if let Err(s) = r {
            problems.push(format!(
                "cleanup ControllerUnpublishVolume {} from {node}: {}",
                v.id,
                shown(&s)
            ));
        }
    }
    let mut c = csi.controller.clone();
    let r = bounded(timeout, async {
        c.delete_volume(DeleteVolumeRequest {
            volume_id: v.id.clone(),
            secrets: Default::default(),
        })
        .await
        .map(|_| ())
    })
    .await;
    if let Err(s) = r {
        problems.push(format!("cleanup DeleteVolume {}: {}", v.id, shown(&s)));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn records_follow_the_calls() {
        let t = Tracker::default();
        t.volume_created("v1");
        t.snapshot_created("s1");
        t.published("v1", "n1");
        t.staging("v1", "/k/s");
        t.targeting("v1", "/k/t");
        // A publish of an unrecorded volume records it, as csi-sanity does.
        t.published("v2", "n1");
        t.snapshot_created("s1");
        assert_eq!(t.outstanding().len(), 3);
        t.untargeted("v1", "/k/t");
        t.unstaged("v1", "/k/s");
        t.unpublished("v1", "n1");
        assert_eq!(
            t.outstanding()[0],
            Resource::Volume(VolumeUse {
                id: "v1".into(),
                ..VolumeUse::default()
            })
        );
        t.unpublished("v2", "");
        t.volume_deleted("v1");
        t.snapshot_deleted("s1");
        assert_eq!(
            t.outstanding(),
            vec![Resource::Volume(VolumeUse {
                id: "v2".into(),
                ..VolumeUse::default()
            })]
        );
    }
}
