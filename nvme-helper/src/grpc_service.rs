//! The helper API as served today: health only. Every other call answers UNIMPLEMENTED
//! until the node data plane lands, never a fake success.

use rds_csi_proto::helper::node_helper_server::NodeHelper;
use rds_csi_proto::helper::*;
use rds_csi_proto::metrics_server::Readiness;
use tonic::{Request, Response, Status};

pub struct HelperService {
    readiness: Readiness,
}

impl HelperService {
    pub fn new(readiness: Readiness) -> Self {
        HelperService { readiness }
    }
}

fn not_built(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not implemented by this helper yet"))
}

#[tonic::async_trait]
impl NodeHelper for HelperService {
    async fn stage(&self, _: Request<StageRequest>) -> Result<Response<StageResponse>, Status> {
        Err(not_built("Stage"))
    }
    async fn unstage(
        &self,
        _: Request<UnstageRequest>,
    ) -> Result<Response<UnstageResponse>, Status> {
        Err(not_built("Unstage"))
    }
    async fn publish(
        &self,
        _: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        Err(not_built("Publish"))
    }
    async fn unpublish(
        &self,
        _: Request<UnpublishRequest>,
    ) -> Result<Response<UnpublishResponse>, Status> {
        Err(not_built("Unpublish"))
    }
    async fn stats(&self, _: Request<StatsRequest>) -> Result<Response<StatsResponse>, Status> {
        Err(not_built("Stats"))
    }
    async fn expand(&self, _: Request<ExpandRequest>) -> Result<Response<ExpandResponse>, Status> {
        Err(not_built("Expand"))
    }
    async fn node_info(
        &self,
        _: Request<NodeInfoRequest>,
    ) -> Result<Response<NodeInfoResponse>, Status> {
        Err(not_built("NodeInfo"))
    }
    async fn health(&self, _: Request<HealthRequest>) -> Result<Response<HealthResponse>, Status> {
        let (ready, reason) = match self.readiness.check() {
            Ok(()) => (true, String::new()),
            Err(reason) => (false, reason),
        };
        Ok(Response::new(HealthResponse { ready, reason }))
    }
}
