//! Finishing a call when its real end is known.
//!
//! A gRPC call ends with its status: in the response headers for a trailers-only answer
//! (most errors), otherwise in the trailers after the last message. [`CallRecord`] holds
//! what must happen at that end (metrics, span status, the in-flight gauge) and
//! [`ObservedBody`] wraps the response body so that the record is finished when the
//! trailers pass by, or as cancelled when the body is dropped first.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus::IntGauge;
use tonic::Code;

use super::grpc_call::{GrpcMethod, code_label, status_in};
use super::metrics::SideMetrics;

/// Which end of the hop a record belongs to; the two differ in what marks a span as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// The pending end of one call.
pub(crate) struct CallRecord {
    metrics: SideMetrics,
    labels: [String; 3],
    start: Instant,
    span: tracing::Span,
    in_flight: IntGauge,
    side: Side,
    done: bool,
}

impl CallRecord {
    /// Starts timing a call and counts it as in flight.
    pub(crate) fn start(
        metrics: &SideMetrics,
        component: &str,
        method: &GrpcMethod,
        span: tracing::Span,
        side: Side,
    ) -> Self {
        let labels = [
            component.to_string(),
            method.service.clone(),
            method.method.clone(),
        ];
        let in_flight = metrics
            .in_flight
            .with_label_values(&[&labels[0], &labels[1], &labels[2]]);
        in_flight.inc();
        CallRecord {
            metrics: metrics.clone(),
            labels,
            start: Instant::now(),
            span,
            in_flight,
            side,
            done: false,
        }
    }

    /// Records the final status of the call. Only the first call has an effect.
    pub(crate) fn finish(&mut self, code: Code, message: Option<&str>) {
        if self.done {
            return;
        }
        self.done = true;
        self.in_flight.dec();
        let [component, service, method] = &self.labels;
        let elapsed = self.start.elapsed();
        self.metrics
            .handled
            .with_label_values(&[component, service, method, code_label(code)])
            .inc();
        self.metrics
            .seconds
            .with_label_values(&[component, service, method])
            .observe(elapsed.as_secs_f64());
        self.span.record("rpc.grpc.status_code", code as i32);
        let failed = match self.side {
            // Semantic conventions: a server span fails only on codes that mean the server erred.
            Side::Server => matches!(
                code,
                Code::Unknown
                    | Code::DeadlineExceeded
                    | Code::Unimplemented
                    | Code::Internal
                    | Code::Unavailable
                    | Code::DataLoss
            ),
            Side::Client => code != Code::Ok,
        };
        if failed {
            self.span.record("otel.status_code", "ERROR");
        }
        let ms = elapsed.as_secs_f64() * 1000.0;
        let _entered = self.span.enter();
        if code == Code::Ok {
            tracing::debug!(
                grpc.code = code_label(code),
                elapsed_ms = ms,
                "call finished"
            );
        } else {
            tracing::info!(
                grpc.code = code_label(code),
                grpc.message = message.unwrap_or(""),
                elapsed_ms = ms,
                "call failed"
            );
        }
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        self.finish(
            Code::Cancelled,
            Some("the call ended before its status was sent"),
        );
    }
}

pin_project_lite::pin_project! {
    /// A response body that finishes its call's record when the status goes by.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        record: Option<CallRecord>,
    }
}

impl<B> ObservedBody<B> {
    pub(crate) fn new(inner: B, record: Option<CallRecord>) -> Self {
        ObservedBody { inner, record }
    }
}

/// Finishes `record` from a response's headers when they already carry the status, and
/// hands the record back when the status will come in the trailers.
pub(crate) fn finish_if_trailers_only(
    headers: &http::HeaderMap,
    mut record: CallRecord,
) -> Option<CallRecord> {
    match status_in(headers) {
        Some(code) => {
            record.finish(code, grpc_message(headers).as_deref());
            None
        }
        None => Some(record),
    }
}

fn grpc_message(headers: &http::HeaderMap) -> Option<String> {
    let raw = headers.get("grpc-message")?.to_str().ok()?;
    Some(percent_decode(raw))
}

/// Undoes the percent-encoding gRPC applies to `grpc-message`.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

impl<B> Body for ObservedBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Some(record) = this.record.as_mut() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        let code = status_in(trailers).unwrap_or(Code::Unknown);
                        record.finish(code, grpc_message(trailers).as_deref());
                    }
                }
                Poll::Ready(Some(Err(_))) => {
                    record.finish(Code::Unknown, Some("response body failed"))
                }
                Poll::Ready(None) => {
                    record.finish(Code::Unknown, Some("response ended without a status"))
                }
                Poll::Pending => {}
            }
            if record.done {
                *this.record = None;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_grpc_message() {
        assert_eq!(percent_decode("volume%20not%20found"), "volume not found");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%E2%9C%93"), "✓");
    }
}
