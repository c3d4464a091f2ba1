//! Observability of the running binaries checked with real tools: spans exported over
//! OTLP to the testbed's receiver form one trace per CSI call across processes; each
//! `/metrics` passes `promtool check metrics`; a real Prometheus scrapes all three.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rds_csi_proto::channel::connect_lazy;
use rds_csi_proto::csi::ProbeRequest;
use rds_csi_proto::csi::identity_client::IdentityClient;
use rds_csi_proto::endpoint::Endpoint;
use rds_csi_testbed::csi_client::{new_trace, traced};
use rds_csi_testbed::http;
use rds_csi_testbed::otlp_sink::{OtlpSink, SinkSpan};
use rds_csi_testbed::prometheus::{Prometheus, check_metrics};
use rds_csi_testbed::stack::{Stack, StackConfig};

const SERVER: i32 = 2;
const CLIENT: i32 = 3;

fn find<'a>(spans: &'a [SinkSpan], service: &str, name: &str, kind: i32) -> &'a SinkSpan {
    spans
        .iter()
        .find(|s| s.service == service && s.name == name && s.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} span {name} from {service} in {spans:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_csi_call_is_one_trace_across_processes_and_metrics_pass_real_tools() {
    let dir = tempfile::tempdir().unwrap();
    let sink = OtlpSink::start(Some(dir.path().join("spans.jsonl")))
        .await
        .unwrap();
    let mut cfg = StackConfig::new(dir.path());
    cfg.otlp_endpoint = Some(sink.endpoint());
    let stack = Stack::start(&cfg).await.unwrap();
    let ep = stack.endpoints.clone();

    // Probe relays to the gateway and the helper: three processes, one trace. Wait until
    // the gateway has its SSH session, then probe once more with a known trace id.
    let mut identity =
        IdentityClient::new(connect_lazy(&Endpoint::Unix(ep.csi_socket.clone())).unwrap());
    let ready_by = Instant::now() + Duration::from_secs(30);
    while identity.probe(ProbeRequest {}).await.is_err() {
        assert!(Instant::now() < ready_by, "the driver never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (traceparent, trace_id) = new_trace();
    identity
        .probe(traced(ProbeRequest {}, &traceparent))
        .await
        .unwrap();

    // Every exposition is valid for promtool.
    for (name, addr) in ep.metrics.clone() {
        let body = http::get(addr, "/metrics", Duration::from_secs(5))
            .await
            .unwrap()
            .body;
        if let Err(e) = check_metrics(&body).await {
            panic!("promtool check metrics on {name}: {e}");
        }
    }

    // A real Prometheus scrapes all three and sees the relayed Health calls.
    let prom = Prometheus::start(
        dir.path(),
        &ep.metrics
            .iter()
            .map(|(n, a)| (n.as_str(), *a))
            .collect::<Vec<_>>(),
        Duration::from_millis(500),
    )
    .await
    .unwrap();
    prom.wait_all_up(3, Duration::from_secs(30)).await.unwrap();
    let served = prom
        .query(r#"sum by (component) (rds_csi_grpc_server_handled_total{grpc_method="Health"})"#)
        .await
        .unwrap();
    let components: Vec<String> = served
        .iter()
        .filter(|(_, v)| *v >= 1.0)
        .map(|(m, _)| m["component"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        components.contains(&"rds-gateway".to_string()),
        "{served:?}"
    );
    assert!(
        components.contains(&"nvme-helper".to_string()),
        "{served:?}"
    );
    drop(prom);

    // Stopping flushes every exporter.
    stack.stop().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let trace = loop {
        let trace = sink.trace(&trace_id);
        if trace.len() >= 5 || Instant::now() > deadline {
            break trace;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let probe = find(&trace, "csi-frontend", "csi.v1.Identity/Probe", SERVER);
    let fe_to_gw = find(
        &trace,
        "csi-frontend",
        "rdscsi.gateway.v1.Gateway/Health",
        CLIENT,
    );
    let gw = find(
        &trace,
        "rds-gateway",
        "rdscsi.gateway.v1.Gateway/Health",
        SERVER,
    );
    let fe_to_helper = find(
        &trace,
        "csi-frontend",
        "rdscsi.helper.v1.NodeHelper/Health",
        CLIENT,
    );
    let helper = find(
        &trace,
        "nvme-helper",
        "rdscsi.helper.v1.NodeHelper/Health",
        SERVER,
    );
    assert_eq!(fe_to_gw.parent_span_id, probe.span_id);
    assert_eq!(gw.parent_span_id, fe_to_gw.span_id);
    assert_eq!(fe_to_helper.parent_span_id, probe.span_id);
    assert_eq!(helper.parent_span_id, fe_to_helper.span_id);
    let rid = probe.attributes.get("request_id").unwrap();
    assert_eq!(
        gw.attributes.get("request_id"),
        Some(rid),
        "request id crosses the hop"
    );
    assert_eq!(helper.attributes.get("request_id"), Some(rid));
    let lines = std::fs::read_to_string(dir.path().join("spans.jsonl")).unwrap();
    assert!(
        lines.lines().count() >= trace.len(),
        "spans are written to the file"
    );
}
