//! A built-in OTLP/gRPC trace receiver: the testbed's stand-in for a tracing backend.
//!
//! Every component exports its spans here over real OTLP (the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` points at it). Each received span is kept in memory for
//! the suites to check parentage across processes, and written as one JSON line to a
//! file when one is given (`testbed --otlp-file`).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use serde::Serialize;
use tokio_stream::wrappers::TcpListenerStream;

/// One received span, flattened for checking and for the JSON-lines file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SinkSpan {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// OTLP span kind: 1 internal, 2 server, 3 client.
    pub kind: i32,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: BTreeMap<String, String>,
}

/// Why the sink could not start.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot listen for OTLP on 127.0.0.1: {0}")]
    Bind(std::io::Error),
    #[error("cannot open the span file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

struct Sink {
    spans: Mutex<Vec<SinkSpan>>,
    file: Option<Mutex<std::fs::File>>,
}

/// The running receiver; stops when dropped.
pub struct OtlpSink {
    addr: SocketAddr,
    sink: Arc<Sink>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl OtlpSink {
    /// Starts a receiver on a free loopback port, appending spans to `file` if given.
    pub async fn start(file: Option<PathBuf>) -> Result<OtlpSink, SinkError> {
        let file = match file {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|source| SinkError::File { path, source })?,
            )),
            None => None,
        };
        let sink = Arc::new(Sink {
            spans: Mutex::new(Vec::new()),
            file,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(SinkError::Bind)?;
        let addr = listener.local_addr().map_err(SinkError::Bind)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = TraceServiceServer::from_arc(sink.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                }),
        );
        Ok(OtlpSink {
            addr,
            sink,
            _stop: stop,
        })
    }

    /// The `http://127.0.0.1:port` to put in `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<SinkSpan> {
        self.sink
            .spans
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// The spans of one trace.
    pub fn trace(&self, trace_id: &str) -> Vec<SinkSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn value_text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), value_text(&kv.value)))
        .collect()
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for rs in request.into_inner().resource_spans {
            let resource = rs
                .resource
                .as_ref()
                .map(|r| attributes(&r.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    received.push(SinkSpan {
                        service: service.clone(),
                        name: span.name.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        kind: span.kind,
                        status: span.status.as_ref().map(|s| s.code).unwrap_or(0),
                        start_unix_nanos: span.start_time_unix_nano,
                        end_unix_nanos: span.end_time_unix_nano,
                        attributes: attributes(&span.attributes),
                    });
                }
            }
        }
        if let Some(file) = &self.file
            && let Ok(mut f) = file.lock()
        {
            for s in &received {
                if let Ok(line) = serde_json::to_string(s) {
                    let _ = writeln!(f, "{line}");
                }
            }
        }
        if let Ok(mut spans) = self.spans.lock() {
            spans.extend(received);
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}
