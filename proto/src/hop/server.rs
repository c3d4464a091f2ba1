//! The server end of a hop: wraps a tonic server's routes.
//!
//! It also answers a call whose caller's deadline passes first. gRPC: "a server that has
//! received a deadline ... responds with DEADLINE_EXCEEDED" once it expires, and the CSI spec
//! lists DEADLINE_EXCEEDED for a call that ran out of time; tonic's own timeout instead ends
//! the call as CANCELLED ("Timeout expired"). So the hop stops waiting for the handler a
//! little before tonic would (a tenth of the time the call was given, at most 20 ms earlier,
//! so that the answer reaches a caller whose own timer runs out at the deadline)
//! and sends DEADLINE_EXCEEDED naming the method; the handler's future is dropped, as tonic
//! would drop it.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::call_context::{CallContext, REQUEST_ID_HEADER};
use super::grpc_call::GrpcMethod;
use super::metrics::HopMetrics;
use super::observed_body::{CallRecord, ObservedBody, Side, finish_if_trailers_only};
use super::propagation;

struct Shared {
    metrics: HopMetrics,
    known_services: Vec<&'static str>,
}

/// Instruments every call a server handles (see the [module docs](super)).
#[derive(Clone)]
pub struct ServerHopLayer {
    shared: Arc<Shared>,
}

impl ServerHopLayer {
    /// `known_services` are the fully qualified names of the services this server offers
    /// (the generated `SERVICE_NAME` constants); calls to anything else are labelled
    /// `unknown`.
    pub fn new(metrics: HopMetrics, known_services: &[&'static str]) -> Self {
        ServerHopLayer {
            shared: Arc::new(Shared {
                metrics,
                known_services: known_services.to_vec(),
            }),
        }
    }
}

impl<S> Layer<S> for ServerHopLayer {
    type Service = ServerHop<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerHop {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// When to answer DEADLINE_EXCEEDED for a call that arrived at `start` with `deadline`:
/// shortly before tonic's own timeout (which would answer CANCELLED) fires.
fn answer_by(start: Instant, deadline: Instant) -> Instant {
    let given = deadline.saturating_duration_since(start);
    let margin = (given / 10).min(Duration::from_millis(20));
    deadline.checked_sub(margin).unwrap_or(deadline)
}

/// The service [`ServerHopLayer`] produces.
#[derive(Clone)]
pub struct ServerHop<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ServerHop<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let method = GrpcMethod::from_path(req.uri().path(), &self.shared.known_services);
        let arrived = Instant::now();
        let ctx = CallContext::from_headers(req.headers(), arrived);
        let span = tracing::info_span!(
            "grpc.server",
            otel.name = %method.full_name(),
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = %method.service,
            rpc.method = %method.method,
            rpc.grpc.status_code = Empty,
            request_id = %ctx.request_id,
        );
        let parent = propagation::extract(req.headers());
        let _ = span.set_parent(parent);
        let record = CallRecord::start(
            &self.shared.metrics.server,
            &self.shared.metrics.component,
            &method,
            span.clone(),
            Side::Server,
        );
        // The clone-and-swap keeps the service that was polled ready for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let request_id = HeaderValue::from_str(&ctx.request_id).ok();
        let fut = span.in_scope(|| inner.call(req));
        let deadline = ctx.deadline.map(|d| answer_by(arrived, d));
        let full_name = method.full_name();
        Box::pin(async move {
            let call = ctx.scope(fut.instrument(span));
            let result = match deadline {
                None => call.await,
                Some(by) => match tokio::time::timeout_at(by.into(), call).await {
                    Ok(result) => result,
                    Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
                        "the caller's deadline passed before {full_name} finished"
                    ))
                    .into_http()),
                },
            };
            match result {
                Ok(resp) => {
                    let (mut parts, body) = resp.into_parts();
                    if let Some(v) = request_id {
                        parts.headers.insert(REQUEST_ID_HEADER, v);
                    }
                    let record = finish_if_trailers_only(&parts.headers, record);
                    Ok(Response::from_parts(parts, ObservedBody::new(body, record)))
                }
                Err(e) => {
                    let mut record = record;
                    record.finish(tonic::Code::Internal, Some("the server failed the call"));
                    Err(e)
                }
            }
        })
    }
}
