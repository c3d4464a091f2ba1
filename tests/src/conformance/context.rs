//! What a case works with: the CSI clients, the advertised capabilities, the run's
//! configuration and id generator, fresh node paths, and calls that record what they create
//! so that the runner can give it back when the case ends, passed or not.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use rds_csi_proto::csi::controller_client::ControllerClient;
use rds_csi_proto::csi::controller_service_capability::rpc::Type as ControllerRpc;
use rds_csi_proto::csi::group_controller_client::GroupControllerClient;
use rds_csi_proto::csi::identity_client::IdentityClient;
use rds_csi_proto::csi::node_client::NodeClient;
use rds_csi_proto::csi::node_service_capability::rpc::Type as NodeRpc;
use rds_csi_proto::csi::volume_capability::access_mode::Mode;
use rds_csi_proto::csi::*;
use tonic::transport::Channel;
use tonic::{Response, Status};

use super::caps::Advertised;
use super::config::SuiteConfig;
use super::expect::{ensure, succeeds};
use super::ids::IdGen;
use super::paths::PathMaker;
use super::resources::{Tracker, bounded};
use crate::csi_client::{Csi, block_capability, mount_capability};

/// Everything the cases of one run share.
pub struct Shared {
    pub csi: Csi,
    /// Identity on the controller socket, when it is not the node socket.
    pub controller_identity: Option<IdentityClient<Channel>>,
    /// The group controller service on the controller socket.
    pub group: GroupControllerClient<Channel>,
    pub advertised: Advertised,
    pub config: SuiteConfig,
    pub ids: IdGen,
    pub kubelet_dir: PathBuf,
    pub driver_name: String,
}

/// The context of one case.
pub struct Ctx {
    shared: Arc<Shared>,
    tracker: Tracker,
    paths: PathMaker,
}

/// A volume made available at a target path, and how.
#[derive(Debug, Clone)]
pub struct Mounted {
    pub volume: Volume,
    pub publish_context: HashMap<String, String>,
    /// Empty when the plugin does not stage.
    pub staging: String,
    pub target: String,
}

impl Ctx {
    /// A context for the case numbered `index`.
    pub fn new(shared: Arc<Shared>, index: usize) -> Ctx {
        let paths = PathMaker::new(
            &shared.kubelet_dir,
            &shared.driver_name,
            &format!("conformance-{index:03}"),
        );
        Ctx {
            shared,
            tracker: Tracker::default(),
            paths,
        }
    }

    /// Gives back what the case created and removes its paths; returns what went wrong.
    pub async fn finish(self) -> Vec<String> {
        let mut problems = self
            .tracker
            .cleanup(&self.shared.csi, self.shared.config.call_timeout)
            .await;
        problems.extend(self.paths.teardown());
        problems
    }

    pub fn config(&self) -> &SuiteConfig {
        &self.shared.config
    }

    pub fn adv(&self) -> &Advertised {
        &self.shared.advertised
    }

    pub fn ids(&self) -> &IdGen {
        &self.shared.ids
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The node id the node service reported.
    pub fn node_id(&self) -> String {
        self.shared.advertised.node_id.clone()
    }

    pub fn controller(&self) -> ControllerClient<Channel> {
        self.shared.csi.controller.clone()
    }

    pub fn group(&self) -> GroupControllerClient<Channel> {
        self.shared.group.clone()
    }

    pub fn node(&self) -> NodeClient<Channel> {
        self.shared.csi.node.clone()
    }

    /// Identity clients by socket: the node socket, and the controller socket if separate.
    pub fn identities(&self) -> Vec<(&'static str, IdentityClient<Channel>)> {
        let mut out = vec![("node socket", self.shared.csi.identity.clone())];
        if let Some(c) = &self.shared.controller_identity {
            out.push(("controller socket", c.clone()));
        }
        out
    }

    /// Runs one call under the run's call timeout and unwraps its answer.
    pub async fn call<T>(
        &self,
        fut: impl Future<Output = Result<Response<T>, Status>>,
    ) -> Result<T, Status> {
        bounded(self.shared.config.call_timeout, async {
            fut.await.map(Response::into_inner)
        })
        .await
    }

    /// A fresh staging directory.
    pub fn staging_path(&self) -> Result<String, String> {
        self.paths.staging()
    }

    /// A fresh target path (its parent exists, it does not).
    pub fn target_path(&self) -> Result<String, String> {
        self.paths.target()
    }

    /// The capability most cases use: a mount with no filesystem named, in `mode`.
    pub fn mount_cap(&self, mode: Mode) -> VolumeCapability {
        mount_capability("", mode)
    }

    /// A raw block capability in `mode`.
    pub fn block_cap(&self, mode: Mode) -> VolumeCapability {
        block_capability(mode)
    }

    /// A single-node-writer mount CreateVolume of exactly the configured size.
    pub fn create_request(&self, name: &str) -> CreateVolumeRequest {
        let size = self.config().volume_size;
        CreateVolumeRequest {
            name: name.to_string(),
            capacity_range: Some(CapacityRange {
                required_bytes: size,
                limit_bytes: size,
            }),
            volume_capabilities: vec![self.mount_cap(Mode::SingleNodeWriter)],
            parameters: self.config().volume_parameters.clone(),
            ..Default::default()
        }
    }

    /// A CreateSnapshot of `source` called `name`.
    pub fn snapshot_request(&self, name: &str, source: &str) -> CreateSnapshotRequest {
        CreateSnapshotRequest {
            source_volume_id: source.to_string(),
            name: name.to_string(),
            parameters: self.config().snapshot_parameters.clone(),
            ..Default::default()
        }
    }

    // ---- calls that record what they create ----

    pub async fn create_volume(
        &self,
        req: CreateVolumeRequest,
    ) -> Result<CreateVolumeResponse, Status> {
        let r = self.call(self.controller().create_volume(req)).await;
        if let Ok(v) = &r
            && let Some(vol) = &v.volume
            && !vol.volume_id.is_empty()
        {
            self.tracker.volume_created(&vol.volume_id);
        }
        r
    }

    /// CreateVolume that must succeed and name the volume.
    pub async fn must_create_volume(&self, req: CreateVolumeRequest) -> Result<Volume, String> {
        let name = req.name.clone();
        let r = succeeds(
            &format!("CreateVolume {name}"),
            self.create_volume(req).await,
        )?;
        let vol = r
            .volume
            .ok_or_else(|| format!("CreateVolume {name}: the answer has no volume"))?;
        ensure(!vol.volume_id.is_empty(), || {
            format!("CreateVolume {name}: the volume has no id")
        })?;
        Ok(vol)
    }

    /// A new volume from [`Ctx::create_request`] with a unique name made from `prefix`.
    pub async fn new_volume(&self, prefix: &str) -> Result<Volume, String> {
        let name = self.ids().unique(prefix);
        self.must_create_volume(self.create_request(&name)).await
    }

    pub async fn delete_volume(&self, id: &str) -> Result<(), Status> {
        let r = self
            .call(self.controller().delete_volume(DeleteVolumeRequest {
                volume_id: id.to_string(),
                secrets: Default::default(),
            }))
            .await;
        if r.is_ok() && !id.is_empty() {
            self.tracker.volume_deleted(id);
        }
        r.map(|_| ())
    }

    pub async fn controller_publish(
        &self,
        req: ControllerPublishVolumeRequest,
    ) -> Result<ControllerPublishVolumeResponse, Status> {
        let (vol, node) = (req.volume_id.clone(), req.node_id.clone());
        let r = self
            .call(self.controller().controller_publish_volume(req))
            .await;
        if r.is_ok() && !vol.is_empty() && !node.is_empty() {
            self.tracker.published(&vol, &node);
        }
        r
    }

    /// The ControllerPublishVolume csi-sanity makes: this node, read-write, with the
    /// volume's context.
    pub fn publish_request(
        &self,
        vol: &Volume,
        cap: VolumeCapability,
    ) -> ControllerPublishVolumeRequest {
        ControllerPublishVolumeRequest {
            volume_id: vol.volume_id.clone(),
            node_id: self.node_id(),
            volume_capability: Some(cap),
            readonly: false,
            volume_context: vol.volume_context.clone(),
            ..Default::default()
        }
    }

    pub async fn controller_unpublish(&self, vol: &str, node: &str) -> Result<(), Status> {
        let r =
            self.call(self.controller().controller_unpublish_volume(
                ControllerUnpublishVolumeRequest {
                    volume_id: vol.to_string(),
                    node_id: node.to_string(),
                    secrets: Default::default(),
                },
            ))
            .await;
        if r.is_ok() && !vol.is_empty() {
            self.tracker.unpublished(vol, node);
        }
        r.map(|_| ())
    }

    pub async fn node_stage(&self, req: NodeStageVolumeRequest) -> Result<(), Status> {
        if !req.volume_id.is_empty() && !req.staging_target_path.is_empty() {
            self.tracker
                .staging(&req.volume_id, &req.staging_target_path);
        }
        self.call(self.node().node_stage_volume(req))
            .await
            .map(|_| ())
    }

    pub async fn node_unstage(&self, vol: &str, staging: &str) -> Result<(), Status> {
        let r = self
            .call(self.node().node_unstage_volume(NodeUnstageVolumeRequest {
                volume_id: vol.to_string(),
                staging_target_path: staging.to_string(),
            }))
            .await;
        if r.is_ok() {
            self.tracker.unstaged(vol, staging);
        }
        r.map(|_| ())
    }

    pub async fn node_publish(&self, req: NodePublishVolumeRequest) -> Result<(), Status> {
        if !req.volume_id.is_empty() && !req.target_path.is_empty() {
            self.tracker.targeting(&req.volume_id, &req.target_path);
        }
        self.call(self.node().node_publish_volume(req))
            .await
            .map(|_| ())
    }

    pub async fn node_unpublish(&self, vol: &str, target: &str) -> Result<(), Status> {
        let r = self
            .call(
                self.node()
                    .node_unpublish_volume(NodeUnpublishVolumeRequest {
                        volume_id: vol.to_string(),
                        target_path: target.to_string(),
                    }),
            )
            .await;
        if r.is_ok() {
            self.tracker.untargeted(vol, target);
        }
        r.map(|_| ())
    }

    pub async fn create_snapshot(
        &self,
        req: CreateSnapshotRequest,
    ) -> Result<CreateSnapshotResponse, Status> {
        let r = self.call(self.controller().create_snapshot(req)).await;
        if let Ok(s) = &r
            && let Some(snap) = &s.snapshot
            && !snap.snapshot_id.is_empty()
        {
            self.tracker.snapshot_created(&snap.snapshot_id);
        }
        r
    }

    /// CreateSnapshot that must succeed with a complete snapshot description.
    pub async fn must_create_snapshot(
        &self,
        req: CreateSnapshotRequest,
    ) -> Result<Snapshot, String> {
        let name = req.name.clone();
        let r = succeeds(
            &format!("CreateSnapshot {name}"),
            self.create_snapshot(req).await,
        )?;
        let snap = r
            .snapshot
            .ok_or_else(|| format!("CreateSnapshot {name}: the answer has no snapshot"))?;
        check_snapshot(&snap).map_err(|e| format!("CreateSnapshot {name}: {e}"))?;
        Ok(snap)
    }

    /// A new volume and a snapshot of it.
    pub async fn new_snapshot_of_new_volume(
        &self,
        volume_prefix: &str,
        snapshot_prefix: &str,
    ) -> Result<(Snapshot, Volume), String> {
        let vol = self.new_volume(volume_prefix).await?;
        let name = self.ids().unique(snapshot_prefix);
        let snap = self
            .must_create_snapshot(self.snapshot_request(&name, &vol.volume_id))
            .await?;
        Ok((snap, vol))
    }

    pub async fn delete_snapshot(&self, id: &str) -> Result<(), Status> {
        let r = self
            .call(self.controller().delete_snapshot(DeleteSnapshotRequest {
                snapshot_id: id.to_string(),
                secrets: Default::default(),
            }))
            .await;
        if r.is_ok() && !id.is_empty() {
            self.tracker.snapshot_deleted(id);
        }
        r.map(|_| ())
    }

    // ---- the node steps csi-sanity chains, each taken only when advertised ----

    /// ControllerPublishVolume (when advertised), NodeStageVolume (when advertised) and
    /// NodePublishVolume of `vol` with `cap` at a fresh target.
    pub async fn make_available(
        &self,
        vol: &Volume,
        cap: &VolumeCapability,
    ) -> Result<Mounted, String> {
        let publish_context = if self
            .adv()
            .has_controller(ControllerRpc::PublishUnpublishVolume)
        {
            succeeds(
                "ControllerPublishVolume",
                self.controller_publish(self.publish_request(vol, cap.clone()))
                    .await,
            )?
            .publish_context
        } else {
            HashMap::new()
        };
        let staging = if self.adv().has_node(NodeRpc::StageUnstageVolume) {
            let staging = self.staging_path()?;
            succeeds(
                "NodeStageVolume",
                self.node_stage(self.stage_request(vol, cap, &publish_context, &staging))
                    .await,
            )?;
            staging
        } else {
            String::new()
        };
        let target = self.target_path()?;
        let mounted = Mounted {
            volume: vol.clone(),
            publish_context,
            staging,
            target,
        };
        succeeds(
            "NodePublishVolume",
            self.node_publish(self.node_publish_request(&mounted, cap, &mounted.target))
                .await,
        )?;
        Ok(mounted)
    }

    pub fn stage_request(
        &self,
        vol: &Volume,
        cap: &VolumeCapability,
        publish_context: &HashMap<String, String>,
        staging: &str,
    ) -> NodeStageVolumeRequest {
        NodeStageVolumeRequest {
            volume_id: vol.volume_id.clone(),
            publish_context: publish_context.clone(),
            staging_target_path: staging.to_string(),
            volume_capability: Some(cap.clone()),
            volume_context: vol.volume_context.clone(),
            ..Default::default()
        }
    }

    /// NodePublishVolume of an already staged volume to `target`.
    pub fn node_publish_request(
        &self,
        m: &Mounted,
        cap: &VolumeCapability,
        target: &str,
    ) -> NodePublishVolumeRequest {
        NodePublishVolumeRequest {
            volume_id: m.volume.volume_id.clone(),
            publish_context: m.publish_context.clone(),
            staging_target_path: m.staging.clone(),
            target_path: target.to_string(),
            volume_capability: Some(cap.clone()),
            readonly: false,
            volume_context: m.volume.volume_context.clone(),
            ..Default::default()
        }
    }

    /// The reverse of [`Ctx::make_available`], each step required to succeed.
    pub async fn take_down(&self, m: &Mounted) -> Result<(), String> {
        let id = &m.volume.volume_id;
        succeeds(
            "NodeUnpublishVolume",
            self.node_unpublish(id, &m.target).await,
        )?;
        if !m.staging.is_empty() {
            succeeds("NodeUnstageVolume", self.node_unstage(id, &m.staging).await)?;
        }
        if self
            .adv()
            .has_controller(ControllerRpc::PublishUnpublishVolume)
        {
            succeeds(
                "ControllerUnpublishVolume",
                self.controller_unpublish(id, &self.node_id()).await,
            )?;
        }
        Ok(())
    }
}

/// What csi-sanity requires of every snapshot description.
pub fn check_snapshot(s: &Snapshot) -> Result<(), String> {
    ensure(!s.snapshot_id.is_empty(), || "snapshot has no id".into())?;
    ensure(!s.source_volume_id.is_empty(), || {
        format!("snapshot {} has no source volume id", s.snapshot_id)
    })?;
    ensure(
        s.creation_time
            .as_ref()
            .is_some_and(|t| t.seconds != 0 || t.nanos != 0),
        || format!("snapshot {} has no creation time", s.snapshot_id),
    )
}
