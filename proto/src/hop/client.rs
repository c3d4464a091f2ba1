//! The client end of a hop: wraps a tonic channel.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::call_context::{self, CallContext, REQUEST_ID_HEADER};
use super::grpc_call::GrpcMethod;
use super::metrics::HopMetrics;
use super::observed_body::{CallRecord, ObservedBody, Side, finish_if_trailers_only};
use super::propagation;

/// Instruments every call a client makes (see the [module docs](super)).
#[derive(Clone)]
pub struct ClientHopLayer {
    metrics: Arc<HopMetrics>,
}

impl ClientHopLayer {
    pub fn new(metrics: HopMetrics) -> Self {
        ClientHopLayer {
            metrics: Arc::new(metrics),
        }
    }
}

impl<S> Layer<S> for ClientHopLayer {
    type Service = ClientHop<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientHop {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`ClientHopLayer`] produces; hand it to a generated client's `new`.
#[derive(Clone)]
pub struct ClientHop<S> {
    inner: S,
    metrics: Arc<HopMetrics>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ClientHop<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let method = GrpcMethod::from_path(req.uri().path(), &[]);
        let ctx = CallContext::current();
        // An id the caller set on this request wins; then the one of the call being served.
        let explicit = req
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let request_id = explicit
            .or_else(|| ctx.as_ref().map(|c| c.request_id.clone()))
            .unwrap_or_else(call_context::new_request_id);
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = %method.full_name(),
            otel.kind = "client",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = %method.service,
            rpc.method = %method.method,
            rpc.grpc.status_code = Empty,
            request_id = %request_id,
        );
        let headers = req.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            headers.insert(REQUEST_ID_HEADER, v);
        }
        if let Some(remaining) = ctx.as_ref().and_then(CallContext::remaining) {
            call_context::propagate_deadline(
                headers,
                remaining.max(std::time::Duration::from_nanos(1)),
            );
        }
        propagation::inject(&span.context(), headers);
        let record = CallRecord::start(
            &self.metrics.client,
            &self.metrics.component,
            &method,
            span.clone(),
            Side::Client,
        );
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let fut = span.in_scope(|| inner.call(req));
        Box::pin(async move {
            match fut.instrument(span).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    let record = finish_if_trailers_only(&parts.headers, record);
                    Ok(Response::from_parts(parts, ObservedBody::new(body, record)))
                }
                Err(e) => {
                    let mut record = record;
                    record.finish(tonic::Code::Unavailable, Some("the transport failed"));
                    Err(e)
                }
            }
        })
    }
}
