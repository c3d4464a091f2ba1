//! Fakes of rds-gateway and nvme-helper, served on unix sockets in a temporary directory,
//! and clients of the frontend's services for the tests.
//!
//! The fakes keep just enough state to answer like the real services (volumes, snapshots,
//! sizes, NOT_FOUND for what is missing) and record what they were asked, so the tests can
//! check what the frontend relayed. A test can make one method fail with a given status or
//! answer slowly.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rds_csi_proto::channel::{HopChannel, instrumented};
use rds_csi_proto::endpoint::Endpoint;
use rds_csi_proto::gateway::gateway_server::{Gateway, GatewayServer};
use rds_csi_proto::gateway::{self as gw, create_volume_request};
use rds_csi_proto::helper::node_helper_client::NodeHelperClient;
use rds_csi_proto::helper::node_helper_server::{NodeHelper, NodeHelperServer};
use rds_csi_proto::helper::{self as hp};
use rds_csi_proto::hop::HopMetrics;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Code, Request, Response, Status};

/// Slow or failing answers a test asks for, by method name.
#[derive(Default)]
pub struct Faults {
    fail: Mutex<HashMap<&'static str, Status>>,
    delay: Mutex<HashMap<&'static str, Duration>>,
}

impl Faults {
    pub fn fail(&self, method: &'static str, status: Status) {
        self.fail.lock().unwrap().insert(method, status);
    }
    pub fn heal(&self, method: &'static str) {
        self.fail.lock().unwrap().remove(method);
    }
    pub fn slow(&self, method: &'static str, d: Duration) {
        self.delay.lock().unwrap().insert(method, d);
    }
    async fn check(&self, method: &'static str) -> Result<(), Status> {
        let delay = self.delay.lock().unwrap().get(method).copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        match self.fail.lock().unwrap().get(method) {
            Some(s) => Err(Status::new(s.code(), s.message().to_string())),
            None => Ok(()),
        }
    }
}

/// What the fake gateway holds and saw.
#[derive(Default)]
pub struct GatewayState {
    pub volumes: BTreeMap<String, gw::Volume>,
    pub snapshots: BTreeMap<String, gw::Snapshot>,
    pub calls: Vec<String>,
    pub last_create: Option<gw::CreateVolumeRequest>,
    pub last_delete: Option<gw::DeleteVolumeRequest>,
    /// (method, grpc-timeout header) of every call that had one.
    pub timeouts: Vec<(String, String)>,
    /// The x-request-id header of every call.
    pub request_ids: Vec<String>,
}

#[derive(Clone, Default)]
pub struct FakeGateway {
    pub state: Arc<Mutex<GatewayState>>,
    pub faults: Arc<Faults>,
}

impl FakeGateway {
    fn record<T>(&self, method: &str, req: &Request<T>) {
        let mut s = self.state.lock().unwrap();
        s.calls.push(method.to_string());
        if let Some(t) = req.metadata().get("grpc-timeout") {
            s.timeouts.push((
                method.to_string(),
                t.to_str().unwrap_or_default().to_string(),
            ));
        }
        if let Some(t) = req.metadata().get("x-request-id") {
            s.request_ids
                .push(t.to_str().unwrap_or_default().to_string());
        }
    }

    /// Puts a volume on the fake appliance.
    pub fn add_volume(&self, slot: &str, size: u64, exported: bool) {
        self.state.lock().unwrap().volumes.insert(
            slot.to_string(),
            gw::Volume {
                slot: slot.to_string(),
                nqn: format!("nqn.2000-02.com.mikrotik:{slot}"),
                file_path: format!("/storage-pool/kubernetes-volumes/{slot}.img"),
                size_bytes: size,
                nvme_port: 4420,
                exported,
                source_snapshot_id: String::new(),
                source_volume_id: String::new(),
            },
        );
    }

    pub fn calls(&self, method: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.as_str() == method)
            .count()
    }
}

fn page<T: Clone>(items: Vec<T>, token: &str) -> Result<(Vec<T>, String), Status> {
    // Pages of two, so the frontend has to follow next_token.
    let start: usize = if token.is_empty() {
        0
    } else {
        token
            .parse()
            .map_err(|_| Status::invalid_argument("bad token"))?
    };
    let end = (start + 2).min(items.len());
    let next = if end < items.len() {
        end.to_string()
    } else {
        String::new()
    };
    Ok((items.get(start..end).unwrap_or_default().to_vec(), next))
}

#[tonic::async_trait]
impl Gateway for FakeGateway {
    async fn create_volume(
        &self,
        req: Request<gw::CreateVolumeRequest>,
    ) -> Result<Response<gw::Volume>, Status> {
        self.record("CreateVolume", &req);
        self.faults.check("CreateVolume").await?;
        let r = req.into_inner();
        let mut s = self.state.lock().unwrap();
        s.last_create = Some(r.clone());
        if let Some(v) = s.volumes.get(&r.slot) {
            return Ok(Response::new(v.clone()));
        }
        let (mut snap_src, mut vol_src) = (String::new(), String::new());
        match &r.source {
            Some(create_volume_request::Source::SnapshotId(id)) => {
                if !s.snapshots.contains_key(id) {
                    return Err(Status::not_found(format!("no snapshot {id}")));
                }
                snap_src = id.clone();
            }
            Some(create_volume_request::Source::VolumeId(id)) => {
                if !s.volumes.contains_key(id) {
                    return Err(Status::not_found(format!("no volume {id}")));
                }
                vol_src = id.clone();
            }
            None => {}
        }
        let loc = r.location.clone().unwrap_or_default();
        let v = gw::Volume {
            slot: r.slot.clone(),
            nqn: r.nqn.clone(),
            file_path: format!("{}/{}.img", loc.base_path, r.slot),
            size_bytes: r.required_bytes,
            nvme_port: loc.nvme_port,
            exported: true,
            source_snapshot_id: snap_src,
            source_volume_id: vol_src,
        };
        s.volumes.insert(r.slot, v.clone());
        Ok(Response::new(v))
    }

    async fn delete_volume(
        &self,
        req: Request<gw::DeleteVolumeRequest>,
    ) -> Result<Response<gw::DeleteVolumeResponse>, Status> {
        self.record("DeleteVolume", &req);
        self.faults.check("DeleteVolume").await?;
        let r = req.into_inner();
        let mut s = self.state.lock().unwrap();
        s.volumes.remove(&r.slot);
        s.last_delete = Some(r);
        Ok(Response::new(gw::DeleteVolumeResponse {}))
    }

    async fn expand_volume(
        &self,
        req: Request<gw::ExpandVolumeRequest>,
    ) -> Result<Response<gw::Volume>, Status> {
        self.record("ExpandVolume", &req);
        self.faults.check("ExpandVolume").await?;
        let r = req.into_inner();
        let mut s = self.state.lock().unwrap();
        let v = s
            .volumes
            .get_mut(&r.slot)
            .ok_or_else(|| Status::not_found("no such volume"))?;
        v.size_bytes = v.size_bytes.max(r.required_bytes);
        Ok(Response::new(v.clone()))
    }

    async fn get_volume(
        &self,
        req: Request<gw::GetVolumeRequest>,
    ) -> Result<Response<gw::Volume>, Status> {
        self.record("GetVolume", &req);
        self.faults.check("GetVolume").await?;
        let slot = req.into_inner().slot;
        self.state
            .lock()
            .unwrap()
            .volumes
            .get(&slot)
            .cloned()
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no volume {slot}")))
    }

    async fn list_volumes(
        &self,
        req: Request<gw::ListVolumesRequest>,
    ) -> Result<Response<gw::ListVolumesResponse>, Status> {
        self.record("ListVolumes", &req);
        self.faults.check("ListVolumes").await?;
        let all: Vec<gw::Volume> = self
            .state
            .lock()
            .unwrap()
            .volumes
            .values()
            .cloned()
            .collect();
        let (volumes, next_token) = page(all, &req.get_ref().starting_token)?;
        Ok(Response::new(gw::ListVolumesResponse {
            volumes,
            next_token,
        }))
    }

    async fn get_capacity(
        &self,
        req: Request<gw::GetCapacityRequest>,
    ) -> Result<Response<gw::Capacity>, Status> {
        self.record("GetCapacity", &req);
        self.faults.check("GetCapacity").await?;
        Ok(Response::new(gw::Capacity {
            total_bytes: 100 << 30,
            free_bytes: (40 << 30) + 123,
            refreshed_at_unix: 1_700_000_000,
        }))
    }

    async fn create_snapshot(
        &self,
        req: Request<gw::CreateSnapshotRequest>,
    ) -> Result<Response<gw::Snapshot>, Status> {
        self.record("CreateSnapshot", &req);
        self.faults.check("CreateSnapshot").await?;
        let r = req.into_inner();
        let mut s = self.state.lock().unwrap();
        if let Some(existing) = s.snapshots.get(&r.snapshot_id) {
            return Ok(Response::new(existing.clone()));
        }
        let size = s
            .volumes
            .get(&r.source_volume_id)
            .map(|v| v.size_bytes)
            .ok_or_else(|| Status::not_found("no source volume"))?;
        let snap = gw::Snapshot {
            snapshot_id: r.snapshot_id.clone(),
            source_volume_id: r.source_volume_id,
            size_bytes: size,
            created_at_unix: 1_700_000_000,
            ready_to_use: true,
        };
        s.snapshots.insert(r.snapshot_id, snap.clone());
        Ok(Response::new(snap))
    }

    async fn delete_snapshot(
        &self,
        req: Request<gw::DeleteSnapshotRequest>,
    ) -> Result<Response<gw::DeleteSnapshotResponse>, Status> {
        self.record("DeleteSnapshot", &req);
        self.faults.check("DeleteSnapshot").await?;
        self.state
            .lock()
            .unwrap()
            .snapshots
            .remove(&req.get_ref().snapshot_id);
        Ok(Response::new(gw::DeleteSnapshotResponse {}))
    }

    async fn list_snapshots(
        &self,
        req: Request<gw::ListSnapshotsRequest>,
    ) -> Result<Response<gw::ListSnapshotsResponse>, Status> {
        self.record("ListSnapshots", &req);
        self.faults.check("ListSnapshots").await?;
        let r = req.get_ref();
        let all: Vec<gw::Snapshot> = self
            .state
            .lock()
            .unwrap()
            .snapshots
            .values()
            .filter(|s| r.snapshot_id.is_empty() || s.snapshot_id == r.snapshot_id)
            .filter(|s| r.source_volume_id.is_empty() || s.source_volume_id == r.source_volume_id)
            .cloned()
            .collect();
        let (snapshots, next_token) = page(all, &r.starting_token)?;
        Ok(Response::new(gw::ListSnapshotsResponse {
            snapshots,
            next_token,
        }))
    }

    async fn health(
        &self,
        req: Request<gw::HealthRequest>,
    ) -> Result<Response<gw::HealthResponse>, Status> {
        self.record("Health", &req);
        self.faults.check("Health").await?;
        Ok(Response::new(gw::HealthResponse {
            ready: true,
            reason: String::new(),
            routeros_version: "7.16".into(),
        }))
    }
}

/// What the fake helper saw.
#[derive(Default)]
pub struct HelperState {
    pub stage: Vec<hp::StageRequest>,
    pub unstage: Vec<hp::UnstageRequest>,
    pub publish: Vec<hp::PublishRequest>,
    pub unpublish: Vec<hp::UnpublishRequest>,
    pub stats: Vec<hp::StatsRequest>,
    pub expand: Vec<hp::ExpandRequest>,
    /// The answer to Stats.
    pub stats_answer: hp::StatsResponse,
}

#[derive(Clone, Default)]
pub struct FakeHelper {
    pub state: Arc<Mutex<HelperState>>,
    pub faults: Arc<Faults>,
}

#[tonic::async_trait]
impl NodeHelper for FakeHelper {
    async fn stage(
        &self,
        req: Request<hp::StageRequest>,
    ) -> Result<Response<hp::StageResponse>, Status> {
        self.faults.check("Stage").await?;
        self.state.lock().unwrap().stage.push(req.into_inner());
        Ok(Response::new(hp::StageResponse {
            device: "/dev/nvme1n1".into(),
            formatted: true,
        }))
    }

    async fn unstage(
        &self,
        req: Request<hp::UnstageRequest>,
    ) -> Result<Response<hp::UnstageResponse>, Status> {
        self.faults.check("Unstage").await?;
        self.state.lock().unwrap().unstage.push(req.into_inner());
        Ok(Response::new(hp::UnstageResponse {}))
    }

    async fn publish(
        &self,
        req: Request<hp::PublishRequest>,
    ) -> Result<Response<hp::PublishResponse>, Status> {
        self.faults.check("Publish").await?;
        self.state.lock().unwrap().publish.push(req.into_inner());
        Ok(Response::new(hp::PublishResponse {}))
    }

    async fn unpublish(
        &self,
        req: Request<hp::UnpublishRequest>,
    ) -> Result<Response<hp::UnpublishResponse>, Status> {
        self.faults.check("Unpublish").await?;
        self.state.lock().unwrap().unpublish.push(req.into_inner());
        Ok(Response::new(hp::UnpublishResponse {}))
    }

    async fn stats(
        &self,
        req: Request<hp::StatsRequest>,
    ) -> Result<Response<hp::StatsResponse>, Status> {
        self.faults.check("Stats").await?;
        let mut s = self.state.lock().unwrap();
        s.stats.push(req.into_inner());
        Ok(Response::new(s.stats_answer.clone()))
    }

    async fn expand(
        &self,
        req: Request<hp::ExpandRequest>,
    ) -> Result<Response<hp::ExpandResponse>, Status> {
        self.faults.check("Expand").await?;
        let r = req.into_inner();
        let size = r.required_bytes.max(1 << 30);
        self.state.lock().unwrap().expand.push(r);
        Ok(Response::new(hp::ExpandResponse { size_bytes: size }))
    }

    async fn node_info(
        &self,
        _: Request<hp::NodeInfoRequest>,
    ) -> Result<Response<hp::NodeInfoResponse>, Status> {
        Ok(Response::new(hp::NodeInfoResponse {
            host_nqn: "nqn.2014-08.org.nvmexpress:uuid:test".into(),
            host_id: "test".into(),
            hostname: "node-a".into(),
        }))
    }

    async fn health(
        &self,
        _: Request<hp::HealthRequest>,
    ) -> Result<Response<hp::HealthResponse>, Status> {
        self.faults.check("Health").await?;
        Ok(Response::new(hp::HealthResponse {
            ready: true,
            reason: String::new(),
        }))
    }
}

/// Serves a tonic service on a unix socket at `path` (mode 0777, so that an unprivileged
/// child process can connect) until the runtime ends.
pub fn serve_unix<S>(path: &Path, svc: S)
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await;
    });
}

/// A fake gateway served in `dir`, and a hop-instrumented channel to it.
pub fn start_gateway(dir: &Path) -> (FakeGateway, PathBuf, HopChannel) {
    let fake = FakeGateway::default();
    let path = dir.join("gateway.sock");
    serve_unix(&path, GatewayServer::new(fake.clone()));
    let channel = instrumented(&Endpoint::Unix(path.clone()), metrics()).unwrap();
    (fake, path, channel)
}

/// A fake helper served in `dir`, and a hop-instrumented client to it.
pub fn start_helper(dir: &Path) -> (FakeHelper, PathBuf, NodeHelperClient<HopChannel>) {
    let fake = FakeHelper::default();
    let path = dir.join("helper.sock");
    serve_unix(&path, NodeHelperServer::new(fake.clone()));
    let client =
        NodeHelperClient::new(instrumented(&Endpoint::Unix(path.clone()), metrics()).unwrap());
    (fake, path, client)
}

fn metrics() -> HopMetrics {
    HopMetrics::register(&prometheus::Registry::new(), "test").unwrap()
}

/// Asserts a call failed with `code`, returning its message.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(r: Result<T, Status>, code: Code) -> String {
    match r {
        Ok(v) => panic!("expected {code:?}, got OK: {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "message: {}", s.message());
            s.message().to_string()
        }
    }
}
