//! The CSI controller service as served: the generated `csi.v1.Controller` routes, with
//! ListVolumes answered by the wire-level listing ([`super::answer`]) instead.
//!
//! The generated server decodes each request and encodes each answer with prost; this
//! route does the same for every method but ListVolumes, whose request is still decoded by
//! prost and whose answer is sent as the bytes the listing wrote
//! ([`PreEncodedReplyCodec`]). Both serve one [`ControllerService`], so a call made in
//! process through the `Controller` trait gets the same answer.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use rds_csi_proto::csi::ListVolumesRequest;
use rds_csi_proto::csi::controller_server::ControllerServer;
use rds_csi_proto::raw_codec::PreEncodedReplyCodec;
use tonic::body::Body;
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::controller::ControllerService;
use crate::errors::respond;

const LIST_VOLUMES: &str = "/csi.v1.Controller/ListVolumes";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// `csi.v1.Controller`, ListVolumes answered at the wire level.
#[derive(Clone)]
pub struct ControllerRoutes {
    service: Arc<ControllerService>,
    generated: ControllerServer<ControllerService>,
}

impl ControllerRoutes {
    pub fn new(service: ControllerService) -> Self {
        let service = Arc::new(service);
        ControllerRoutes {
            generated: ControllerServer::from_arc(service.clone()),
            service,
        }
    }
}

impl NamedService for ControllerRoutes {
    const NAME: &'static str = <ControllerServer<ControllerService> as NamedService>::NAME;
}

struct ListVolumes(Arc<ControllerService>);

impl UnaryService<ListVolumesRequest> for ListVolumes {
    type Response = Bytes;
    type Future = BoxFuture<Result<Response<Bytes>, Status>>;

    fn call(&mut self, request: Request<ListVolumesRequest>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move {
            respond(
                "ListVolumes",
                service.list_volumes_encoded(request.into_inner()).await,
            )
        })
    }
}

impl tower::Service<http::Request<Body>> for ControllerRoutes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if req.uri().path() != LIST_VOLUMES {
            return self.generated.call(req);
        }
        let method = ListVolumes(self.service.clone());
        Box::pin(async move {
            // The generated server's settings: no compression, tonic's default size limits.
            let mut grpc =
                tonic::server::Grpc::new(PreEncodedReplyCodec::<ListVolumesRequest>::default());
            Ok(grpc.unary(method, req).await)
        })
    }
}
