//! Observability of the running binaries checked with real tools: spans exported over
//! OTLP to the testbed's receiver form one trace per CSI call across processes — the
//! frontend's call, the gateway's with a span per RouterOS command, the helper's with a span
//! per node step — each correctly parented; each `/metrics` passes `promtool check metrics`;
//! a real Prometheus scrapes all three.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rds_csi_proto::channel::connect_lazy;
use rds_csi_proto::csi::ProbeRequest;
use rds_csi_proto::csi::identity_client::IdentityClient;
use rds_csi_proto::endpoint::Endpoint;
use rds_csi_testbed::csi_client::{Csi, new_trace, traced};
use rds_csi_testbed::http;
use rds_csi_testbed::lifecycle::{self, Flavor, Step};
use rds_csi_testbed::otlp_sink::{OtlpSink, SinkSpan};
use rds_csi_testbed::prometheus::{Prometheus, check_metrics};
use rds_csi_testbed::stack::{Stack, StackConfig};

const SERVER: i32 = 2;
const CLIENT: i32 = 3;

/// The spans a lifecycle step's trace must hold beyond the frontend's own server span:
/// (service, span name) pairs, each one at least once.
fn expected_spans(step: &str) -> &'static [(&'static str, &'static str)] {
    const GW_CREATE: &[(&str, &str)] = &[
        ("rds-gateway", "rdscsi.gateway.v1.Gateway/CreateVolume"),
        ("rds-gateway", "routeros.command"),
    ];
    if step.starts_with("CreateVolume") {
        GW_CREATE
    } else if step == "NodeStageVolume" {
        &[
            ("nvme-helper", "rdscsi.helper.v1.NodeHelper/Stage"),
            ("nvme-helper", "connect"),
            ("nvme-helper", "wait_for_device"),
            ("nvme-helper", "probe"),
            ("nvme-helper", "mkfs"),
            ("nvme-helper", "mount"),
        ]
    } else if step.starts_with("NodePublishVolume") {
        &[
            ("nvme-helper", "rdscsi.helper.v1.NodeHelper/Publish"),
            ("nvme-helper", "bind"),
        ]
    } else if step.starts_with("NodeUnstageVolume") {
        &[
            ("nvme-helper", "rdscsi.helper.v1.NodeHelper/Unstage"),
            ("nvme-helper", "unmount"),
            ("nvme-helper", "disconnect"),
        ]
    } else if step.starts_with("DeleteVolume") {
        &[
            ("rds-gateway", "rdscsi.gateway.v1.Gateway/DeleteVolume"),
            ("rds-gateway", "routeros.command"),
        ]
    } else if step == "CreateSnapshot" {
        &[
            ("rds-gateway", "rdscsi.gateway.v1.Gateway/CreateSnapshot"),
            ("rds-gateway", "routeros.command"),
        ]
    } else {
        &[]
    }
}

/// Checks one lifecycle step's trace: one root (the frontend's server span, whose parent is
/// the test's own client span), every other span's parent inside the trace, and the
/// gateway's and helper's step spans below their own server span.
fn check_step_trace(step: &Step, trace: &[SinkSpan]) {
    let ids: std::collections::HashSet<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
    let roots: Vec<&SinkSpan> = trace
        .iter()
        .filter(|s| !ids.contains(s.parent_span_id.as_str()))
        .collect();
    assert_eq!(
        roots.len(),
        1,
        "{}: one root span, got {roots:#?}",
        step.name
    );
    assert_eq!(roots[0].service, "csi-frontend", "{}", step.name);
    assert_eq!(roots[0].kind, SERVER, "{}", step.name);
    assert!(
        roots[0].name.starts_with("csi.v1."),
        "{}: {}",
        step.name,
        roots[0].name
    );
    let parent_of = |s: &SinkSpan| trace.iter().find(|p| p.span_id == s.parent_span_id);
    for (service, name) in expected_spans(&step.name) {
        let span = trace
            .iter()
            .find(|s| s.service == *service && s.name == *name)
            .unwrap_or_else(|| {
                panic!("{}: no {name} span from {service} in {trace:#?}", step.name)
            });
        // Walk up: a component's spans hang below that component's server span, which
        // hangs below the frontend's client span of the same call.
        let mut at = span;
        while !(at.service == *service && at.kind == SERVER) {
            at = parent_of(at).unwrap_or_else(|| {
                panic!("{}: {name} is not below a {service} server span", step.name)
            });
        }
        let relay =
            parent_of(at).unwrap_or_else(|| panic!("{}: {} has no parent", step.name, at.name));
        assert_eq!(
            (relay.service.as_str(), relay.kind, relay.name.as_str()),
            ("csi-frontend", CLIENT, at.name.as_str()),
            "{}: the {service} server span is the child of the frontend's client span",
            step.name
        );
    }
}

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

    // A whole volume lifecycle, each call with its own trace.
    let csi = Csi::connect(&ep.csi_socket, &ep.controller_socket).unwrap();
    let (steps, ok) = lifecycle::run(&csi, &ep.kubelet_dir, Flavor::Ext4, "obs").await;
    assert!(ok, "the lifecycle failed: {steps:#?}");

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
    let mut checked = 0;
    // Steps named after a CSI call are that call (local steps such as writing a file make
    // no spans).
    let is_call = |s: &&Step| {
        ["Create", "Delete", "Controller", "Node"]
            .iter()
            .any(|p| s.name.starts_with(p))
    };
    for step in steps.iter().filter(is_call) {
        let trace = sink.trace(&step.trace_id);
        check_step_trace(step, &trace);
        checked += usize::from(!expected_spans(&step.name).is_empty());
    }
    assert!(
        checked >= 6,
        "the lifecycle's steps were checked: {steps:#?}"
    );
    let lines = std::fs::read_to_string(dir.path().join("spans.jsonl")).unwrap();
    assert!(
        lines.lines().count() >= trace.len(),
        "spans are written to the file"
    );
}
