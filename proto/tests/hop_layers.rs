//! Both ends of a hop, wrapped in the hop layers, over a real unix socket: the metrics a
//! real scrape returns, one trace across client and server, and the request id in the
//! server's log lines.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::InMemorySpanExporter;
use prometheus::Registry;
use rds_csi_proto::endpoint::Endpoint;
use rds_csi_proto::helper::node_helper_client::NodeHelperClient;
use rds_csi_proto::helper::node_helper_server::{NodeHelper, NodeHelperServer};
use rds_csi_proto::helper::*;
use rds_csi_proto::hop::{CallContext, HopMetrics, ServerHopLayer};
use rds_csi_proto::metrics_server::{MetricsServer, Readiness};
use rds_csi_proto::serve::Listener;
use rds_csi_proto::telemetry::{self, LogFormat};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::{Request, Response, Status as GrpcStatus};
use tracing_subscriber::fmt::writer::BoxMakeWriter;

#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A helper service with one succeeding and one failing method; the rest are not built.
struct TestHelper;

#[tonic::async_trait]
impl NodeHelper for TestHelper {
    async fn stage(&self, _: Request<StageRequest>) -> Result<Response<StageResponse>, GrpcStatus> {
        // Slower than any deadline the tests give it.
        tokio::time::sleep(Duration::from_secs(5)).await;
        Err(GrpcStatus::unimplemented("stage"))
    }
    async fn unstage(
        &self,
        _: Request<UnstageRequest>,
    ) -> Result<Response<UnstageResponse>, GrpcStatus> {
        Err(GrpcStatus::unimplemented("unstage"))
    }
    async fn publish(
        &self,
        _: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, GrpcStatus> {
        Err(GrpcStatus::unimplemented("publish"))
    }
    async fn unpublish(
        &self,
        _: Request<UnpublishRequest>,
    ) -> Result<Response<UnpublishResponse>, GrpcStatus> {
        Err(GrpcStatus::unimplemented("unpublish"))
    }
    async fn stats(&self, _: Request<StatsRequest>) -> Result<Response<StatsResponse>, GrpcStatus> {
        Err(GrpcStatus::unimplemented("stats"))
    }
    async fn expand(
        &self,
        _: Request<ExpandRequest>,
    ) -> Result<Response<ExpandResponse>, GrpcStatus> {
        Err(GrpcStatus::unimplemented("expand"))
    }
    async fn node_info(
        &self,
        _: Request<NodeInfoRequest>,
    ) -> Result<Response<NodeInfoResponse>, GrpcStatus> {
        let ctx = CallContext::current().expect("the server layer opens a call context");
        tracing::info!(seen_request_id = %ctx.request_id, "handler ran");
        Ok(Response::new(NodeInfoResponse {
            hostname: "node-a".into(),
            ..Default::default()
        }))
    }
    async fn health(
        &self,
        _: Request<HealthRequest>,
    ) -> Result<Response<HealthResponse>, GrpcStatus> {
        Err(GrpcStatus::not_found("volume pvc-1 is not staged here"))
    }
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (lbl, value) = rest.strip_prefix('{')?.split_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| lbl.split(',').any(|p| p == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hop_records_metrics_one_trace_and_the_request_id() {
    let exporter = InMemorySpanExporter::default();
    let logs = LogBuffer::default();
    let writer = {
        let logs = logs.clone();
        BoxMakeWriter::new(move || logs.clone())
    };
    let telemetry = telemetry::init_with_exporter(
        "hop-test",
        LogFormat::Text,
        "info",
        exporter.clone(),
        writer,
    )
    .unwrap();

    let registry = Registry::new();
    let metrics = HopMetrics::register(&registry, "hop-test").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("helper.sock");
    let endpoint = Endpoint::Unix(sock.clone());

    let listener = Listener::bind(&endpoint, 0o600).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let routes = tonic::service::Routes::new(NodeHelperServer::new(TestHelper));
    let hop = ServerHopLayer::new(
        metrics.clone(),
        &[<NodeHelperServer<TestHelper> as tonic::server::NamedService>::NAME],
    );
    let server = tokio::spawn(listener.serve(
        routes,
        hop,
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));

    let metrics_server = MetricsServer::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics_server.local_addr().unwrap();
    tokio::spawn(metrics_server.serve(
        registry.clone(),
        Readiness::not_ready("test"),
        std::future::pending(),
    ));

    let channel = rds_csi_proto::channel::instrumented(&endpoint, metrics.clone()).unwrap();
    let mut client = NodeHelperClient::new(channel);

    let mut req = Request::new(NodeInfoRequest {});
    req.metadata_mut()
        .insert("x-request-id", "req-test-42".parse().unwrap());
    let info = client.node_info(req).await.unwrap();
    assert_eq!(info.get_ref().hostname, "node-a");
    assert_eq!(
        info.metadata().get("x-request-id").unwrap(),
        "req-test-42",
        "the server echoes the request id"
    );
    for _ in 0..2 {
        let err = client.health(HealthRequest {}).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
    }
    let err = client.stats(StatsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    // A handler slower than the caller's deadline: DEADLINE_EXCEEDED (tonic alone would say
    // CANCELLED), in time.
    // The deadline is sent as the header alone, so that the client's own timer (tonic's,
    // which says CANCELLED) stays out of it: what comes back is the server's answer.
    let mut slow = Request::new(StageRequest::default());
    slow.metadata_mut()
        .insert("grpc-timeout", "300m".parse().unwrap());
    let asked = std::time::Instant::now();
    let err = client.stage(slow).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("NodeHelper/Stage"), "{err:?}");
    let took = asked.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}, not at the deadline"
    );

    // Metrics, through a real HTTP scrape.
    let scraped = http_get(metrics_addr, "/metrics").await;
    assert!(scraped.starts_with("HTTP/1.1 200"), "{scraped}");
    let svc = "rdscsi.helper.v1.NodeHelper";
    for side in ["server", "client"] {
        let handled = format!("rds_csi_grpc_{side}_handled_total");
        let count = |method: &str, code: &str| {
            sample(
                &scraped,
                &handled,
                &[
                    ("component", "hop-test"),
                    ("grpc_service", svc),
                    ("grpc_method", method),
                    ("grpc_code", code),
                ],
            )
        };
        assert_eq!(count("NodeInfo", "OK"), Some(1.0), "{side}\n{scraped}");
        assert_eq!(count("Health", "NotFound"), Some(2.0), "{side}");
        assert_eq!(count("Stats", "Unimplemented"), Some(1.0), "{side}");
        assert_eq!(count("Stage", "DeadlineExceeded"), Some(1.0), "{side}");
        assert_eq!(count("NodeInfo", "NotFound"), None, "{side}");
        let hist = format!("rds_csi_grpc_{side}_handling_seconds_count");
        assert_eq!(
            sample(&scraped, &hist, &[("grpc_method", "Health")]),
            Some(2.0),
            "{side}"
        );
        let in_flight = format!("rds_csi_grpc_{side}_in_flight");
        assert_eq!(
            sample(&scraped, &in_flight, &[("grpc_method", "NodeInfo")]),
            Some(0.0),
            "{side}"
        );
    }
    let ready = http_get(metrics_addr, "/readyz").await;
    assert!(
        ready.starts_with("HTTP/1.1 503") && ready.contains("not ready: test"),
        "{ready}"
    );
    assert!(
        http_get(metrics_addr, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );

    // Traces: the client's and the server's span of one call share a trace.
    let provider = telemetry.provider().clone();
    tokio::task::spawn_blocking(move || provider.force_flush())
        .await
        .unwrap()
        .unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let named = |kind: SpanKind, name: &str| {
        spans
            .iter()
            .filter(|s| s.span_kind == kind && s.name == name)
            .cloned()
            .collect::<Vec<_>>()
    };
    let info_server = named(SpanKind::Server, "rdscsi.helper.v1.NodeHelper/NodeInfo");
    let info_client = named(SpanKind::Client, "rdscsi.helper.v1.NodeHelper/NodeInfo");
    assert_eq!((info_server.len(), info_client.len()), (1, 1), "{spans:#?}");
    let (srv, cli) = (&info_server[0], &info_client[0]);
    assert_eq!(srv.span_context.trace_id(), cli.span_context.trace_id());
    assert_eq!(srv.parent_span_id, cli.span_context.span_id());
    let attr = |s: &opentelemetry_sdk::trace::SpanData, k: &str| {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(attr(srv, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(attr(srv, "rpc.service").as_deref(), Some(svc));
    assert_eq!(attr(srv, "rpc.method").as_deref(), Some("NodeInfo"));
    assert_eq!(attr(srv, "rpc.grpc.status_code").as_deref(), Some("0"));
    assert_eq!(attr(srv, "request_id").as_deref(), Some("req-test-42"));
    let health_client = named(SpanKind::Client, "rdscsi.helper.v1.NodeHelper/Health");
    assert_eq!(health_client.len(), 2);
    assert_eq!(
        attr(&health_client[0], "rpc.grpc.status_code").as_deref(),
        Some("5")
    );
    assert!(matches!(health_client[0].status, Status::Error { .. }));
    let health_server = named(SpanKind::Server, "rdscsi.helper.v1.NodeHelper/Health");
    assert!(
        !matches!(health_server[0].status, Status::Error { .. }),
        "NOT_FOUND is the client's problem, not a server error"
    );

    // The request id arrived and is on the handler's log line.
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("handler ran"))
        .unwrap_or_else(|| panic!("no handler line in:\n{text}"));
    assert!(line.contains("request_id=req-test-42"), "{line}");
    assert!(line.contains("seen_request_id=req-test-42"), "{line}");

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(!sock.exists(), "the socket is removed on shutdown");
}
