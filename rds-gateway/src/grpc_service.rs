//! The gateway API as served today: health only. Every other call answers UNIMPLEMENTED
//! until the RouterOS client lands, never a fake success.

use rds_csi_proto::gateway::gateway_server::Gateway;
use rds_csi_proto::gateway::*;
use rds_csi_proto::metrics_server::Readiness;
use tonic::{Request, Response, Status};

pub struct GatewayService {
    readiness: Readiness,
}

impl GatewayService {
    pub fn new(readiness: Readiness) -> Self {
        GatewayService { readiness }
    }
}

fn not_built(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not implemented by this gateway yet"))
}

#[tonic::async_trait]
impl Gateway for GatewayService {
    async fn create_volume(
        &self,
        _: Request<CreateVolumeRequest>,
    ) -> Result<Response<Volume>, Status> {
        Err(not_built("CreateVolume"))
    }
    async fn delete_volume(
        &self,
        _: Request<DeleteVolumeRequest>,
    ) -> Result<Response<DeleteVolumeResponse>, Status> {
        Err(not_built("DeleteVolume"))
    }
    async fn expand_volume(
        &self,
        _: Request<ExpandVolumeRequest>,
    ) -> Result<Response<Volume>, Status> {
        Err(not_built("ExpandVolume"))
    }
    async fn get_volume(&self, _: Request<GetVolumeRequest>) -> Result<Response<Volume>, Status> {
        Err(not_built("GetVolume"))
    }
    async fn list_volumes(
        &self,
        _: Request<ListVolumesRequest>,
    ) -> Result<Response<ListVolumesResponse>, Status> {
        Err(not_built("ListVolumes"))
    }
    async fn get_capacity(
        &self,
        _: Request<GetCapacityRequest>,
    ) -> Result<Response<Capacity>, Status> {
        Err(not_built("GetCapacity"))
    }
    async fn create_snapshot(
        &self,
        _: Request<CreateSnapshotRequest>,
    ) -> Result<Response<Snapshot>, Status> {
        Err(not_built("CreateSnapshot"))
    }
    async fn delete_snapshot(
        &self,
        _: Request<DeleteSnapshotRequest>,
    ) -> Result<Response<DeleteSnapshotResponse>, Status> {
        Err(not_built("DeleteSnapshot"))
    }
    async fn list_snapshots(
        &self,
        _: Request<ListSnapshotsRequest>,
    ) -> Result<Response<ListSnapshotsResponse>, Status> {
        Err(not_built("ListSnapshots"))
    }
    async fn health(&self, _: Request<HealthRequest>) -> Result<Response<HealthResponse>, Status> {
        let (ready, reason) = match self.readiness.check() {
            Ok(()) => (true, String::new()),
            Err(reason) => (false, reason),
        };
        Ok(Response::new(HealthResponse {
            ready,
            reason,
            routeros_version: String::new(),
        }))
    }
}
