//! The Kubernetes side of the controller (attachment rebuild from VolumeAttachments, node
//! lookup in CSINodes) driven through kube-rs over real HTTP.
//!
//! No kube-apiserver can run on the test machine, so a small HTTP server stands in for it: it
//! answers the exact REST paths kube-rs requests with objects serialized from the
//! k8s-openapi types (the same JSON an API server sends, list envelopes included), honours
//! `limit`/`continue` paging, answers an unknown object with a `Status` 404 as the API server
//! does, and records every request so the tests can show the frontend only ever reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use csi_frontend::attachments::Sharing;
use csi_frontend::attachments::kubernetes::rebuild;
use csi_frontend::errors::FrontendError;
use csi_frontend::ids::NodeId;
use csi_frontend::known_nodes::{KnownNodes, NodeLookupError};
use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, PersistentVolume, PersistentVolumeSpec,
};
use k8s_openapi::api::storage::v1::{
    CSINode, CSINodeDriver, CSINodeSpec, VolumeAttachment, VolumeAttachmentSource,
    VolumeAttachmentSpec, VolumeAttachmentStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{Value, json};
use tonic::Code;

const DRIVER: &str = "rds.csi.srvlab.io";
const VOL_FS: &str = "pvc-0b1d5a43-1f8e-4c8e-9d55-1e2f3a4b5c6d";
const VOL_BLOCK: &str = "pvc-7c6d5e4f-3a2b-4c1d-8e9f-0a1b2c3d4e5f";

/// What the stand-in serves, and what it was asked.
#[derive(Default)]
struct Api {
    /// Collection path → items, in order.
    collections: BTreeMap<String, Vec<Value>>,
    /// Collection paths that answer 500.
    failing: Vec<String>,
    /// The most items one page holds, whatever `limit` asks (an API server may always answer
    /// fewer items than `limit`, with a `continue` token for the rest).
    max_page: Option<usize>,
    requests: Vec<(Method, String)>,
}

type Shared = Arc<Mutex<Api>>;

fn kind_of_list(path: &str) -> &'static str {
    match path.rsplit('/').next() {
        Some("volumeattachments") => "VolumeAttachmentList",
        Some("persistentvolumes") => "PersistentVolumeList",
        Some("csinodes") => "CSINodeList",
        _ => "List",
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

/// Answers a list (`GET <collection>?limit=&continue=`) or a get (`GET <collection>/<name>`).
async fn serve(State(api): State<Shared>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let mut api = api.lock().unwrap();
    api.requests
        .push((req.method().clone(), req.uri().to_string()));
    if req.method() != Method::GET {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("{} {path} is not allowed", req.method()),
        );
    }
    if api.failing.iter().any(|f| path.starts_with(f.as_str())) {
        return status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "etcdserver: request timed out".into(),
        );
    }
    if let Some(items) = api.collections.get(&path) {
        let param = |key: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
                .map(str::to_string)
        };
        let limit = param("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(usize::MAX)
            .min(api.max_page.unwrap_or(usize::MAX));
        let start = param("continue")
            .and_then(|c| c.parse::<usize>().ok())
            .unwrap_or(0);
        let page: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
        let next = start + page.len();
        let mut metadata = json!({"resourceVersion": "4242"});
        if next < items.len() {
            metadata["continue"] = json!(next.to_string());
        }
        let api_version = if path.starts_with("/api/v1") {
            "v1"
        } else {
            "storage.k8s.io/v1"
        };
        return axum::Json(json!({
            "apiVersion": api_version, "kind": kind_of_list(&path),
            "metadata": metadata, "items": page,
        }))
        .into_response();
    }
    if let Some((collection, name)) = path.rsplit_once('/')
        && let Some(items) = api.collections.get(collection)
    {
        if let Some(item) = items.iter().find(|i| i["metadata"]["name"] == name) {
            return axum::Json(item.clone()).into_response();
        }
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{collection} \"{name}\" not found"),
        );
    }
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("the server could not find the requested resource ({path})"),
    )
}

struct Server {
    api: Shared,
    client: kube::Client,
}

async fn start(api: Api) -> Server {
    let api = Arc::new(Mutex::new(api));
    let app = Router::new().fallback(serve).with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    Server { api, client }
}

fn meta(name: &str, created: i64) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        uid: Some(format!("uid-{name}")),
        resource_version: Some("17".into()),
        creation_timestamp: Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(created).unwrap(),
        )),
        ..Default::default()
    }
}

fn pv(name: &str, driver: &str, handle: &str, block: bool, modes: &[&str]) -> Value {
    let mut attributes = BTreeMap::new();
    if block {
        attributes.insert("migrationTimeoutSeconds".to_string(), "90".to_string());
    }
    serde_json::to_value(PersistentVolume {
        metadata: meta(name, 1_700_000_000),
        spec: Some(PersistentVolumeSpec {
            access_modes: Some(modes.iter().map(|m| m.to_string()).collect()),
            volume_mode: Some(if block { "Block" } else { "Filesystem" }.into()),
            csi: Some(CSIPersistentVolumeSource {
                driver: driver.into(),
                volume_handle: handle.into(),
                volume_attributes: Some(attributes),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
    .unwrap()
}

fn va(name: &str, attacher: &str, pv: &str, node: &str, attached: bool, created: i64) -> Value {
    serde_json::to_value(VolumeAttachment {
        metadata: meta(name, created),
        spec: VolumeAttachmentSpec {
            attacher: attacher.into(),
            node_name: node.into(),
            source: VolumeAttachmentSource {
                persistent_volume_name: Some(pv.into()),
                ..Default::default()
            },
        },
        status: Some(VolumeAttachmentStatus {
            attached,
            ..Default::default()
        }),
    })
    .unwrap()
}

fn csinode(name: &str, drivers: &[(&str, &str)]) -> Value {
    serde_json::to_value(CSINode {
        metadata: meta(name, 1_700_000_000),
        spec: CSINodeSpec {
            drivers: drivers
                .iter()
                .map(|(driver, node_id)| CSINodeDriver {
                    name: driver.to_string(),
                    node_id: node_id.to_string(),
                    ..Default::default()
                })
                .collect(),
        },
    })
    .unwrap()
}

fn cluster() -> Api {
    let mut api = Api::default();
    api.collections.insert(
        "/api/v1/persistentvolumes".into(),
        vec![
            pv("pv-fs", DRIVER, VOL_FS, false, &["ReadWriteOnce"]),
            pv("pv-block", DRIVER, VOL_BLOCK, true, &["ReadWriteMany"]),
            pv(
                "pv-other",
                "other.csi.example",
                VOL_FS,
                false,
                &["ReadWriteOnce"],
            ),
        ],
    );
    api.collections.insert(
        "/apis/storage.k8s.io/v1/volumeattachments".into(),
        vec![
            va("va-fs", DRIVER, "pv-fs", "worker-1", true, 1_700_000_100),
            va(
                "va-block-src",
                DRIVER,
                "pv-block",
                "worker-1",
                true,
                1_700_000_200,
            ),
            va(
                "va-block-dst",
                DRIVER,
                "pv-block",
                "worker-2",
                true,
                1_700_000_300,
            ),
            // Not attached yet: the publish has not returned OK, so it is not state.
            va(
                "va-pending",
                DRIVER,
                "pv-fs",
                "worker-3",
                false,
                1_700_000_400,
            ),
            // Another driver's attachment of the same handle.
            va(
                "va-other",
                "other.csi.example",
                "pv-other",
                "worker-4",
                true,
                1_700_000_500,
            ),
        ],
    );
    api.collections.insert(
        "/apis/storage.k8s.io/v1/csinodes".into(),
        vec![
            csinode("worker-1", &[(DRIVER, "worker-1")]),
            // The node id the plugin reported differs from the node's name.
            csinode(
                "worker-2",
                &[("other.csi.example", "w2"), (DRIVER, "worker-2-id")],
            ),
            // A node where our node plugin never registered.
            csinode("worker-3", &[("other.csi.example", "worker-3")]),
        ],
    );
    api
}

#[tokio::test]
async fn attachments_are_rebuilt_from_the_attached_volume_attachments_of_this_driver() {
    let server = start(cluster()).await;
    let rebuilt = rebuild(&server.client, DRIVER, 300).await.unwrap();
    let table = rebuilt.table;
    assert_eq!(table.volumes.len(), 2, "{table:#?}");

    let fs = &table.volumes[VOL_FS];
    assert_eq!(fs.sharing, Sharing::SingleNode);
    let nodes: Vec<&str> = fs.nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(nodes, ["worker-1"], "the pending attachment is not state");
    assert_eq!(fs.nodes[0].attached_at, 1_700_000_100);

    let block = &table.volumes[VOL_BLOCK];
    assert_eq!(block.sharing, Sharing::Migratable);
    assert_eq!(block.migration_timeout_secs, 90);
    let nodes: Vec<&str> = block.nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(
        nodes,
        ["worker-1", "worker-2"],
        "oldest first: the migration source"
    );

    let requests = server.api.lock().unwrap().requests.clone();
    assert!(
        requests.iter().all(|(m, _)| m == Method::GET),
        "the frontend only reads: {requests:?}"
    );
    for path in [
        "/apis/storage.k8s.io/v1/volumeattachments",
        "/api/v1/persistentvolumes",
    ] {
        assert!(
            requests.iter().any(|(_, uri)| uri.starts_with(path)),
            "{path} was listed: {requests:?}"
        );
    }
}

#[tokio::test]
async fn a_list_split_over_pages_is_followed_to_its_end() {
    let mut api = cluster();
    // Forty attached volumes: with a page size of 7 the stand-in answers six pages.
    let vas = api
        .collections
        .get_mut("/apis/storage.k8s.io/v1/volumeattachments")
        .unwrap();
    let pvs_extra: Vec<Value> = (0..40)
        .map(|i| {
            let handle = format!("pvc-00000000-0000-4000-8000-{i:012}");
            vas.push(va(
                &format!("va-{i}"),
                DRIVER,
                &format!("pv-{i}"),
                "worker-1",
                true,
                1_700_001_000 + i,
            ));
            pv(
                &format!("pv-{i}"),
                DRIVER,
                &handle,
                false,
                &["ReadWriteOnce"],
            )
        })
        .collect();
    api.collections
        .get_mut("/api/v1/persistentvolumes")
        .unwrap()
        .extend(pvs_extra);
    api.max_page = Some(7);
    let server = start(api).await;
    let rebuilt = rebuild(&server.client, DRIVER, 300).await.unwrap();
    assert_eq!(rebuilt.table.volumes.len(), 42, "every page was read");
    let requests = server.api.lock().unwrap().requests.clone();
    let va_pages = requests
        .iter()
        .filter(|(_, uri)| uri.starts_with("/apis/storage.k8s.io/v1/volumeattachments"))
        .count();
    assert_eq!(
        va_pages, 7,
        "45 VolumeAttachments in pages of 7: {requests:?}"
    );
    assert!(
        requests.iter().any(|(_, uri)| uri.contains("continue=42")),
        "the continue token is sent back: {requests:?}"
    );
}

#[tokio::test]
async fn a_node_exists_when_a_csinode_lists_this_driver_with_its_node_id() {
    let server = start(cluster()).await;
    let known = KnownNodes::Kubernetes {
        client: server.client.clone(),
        driver: DRIVER.into(),
    };
    let node = |n: &str| NodeId::parse(n).unwrap();
    known.check(&node("worker-1")).await.unwrap();
    known.check(&node("worker-2-id")).await.unwrap();
    for absent in ["worker-3", "ghost", "w2"] {
        let e = known.check(&node(absent)).await.unwrap_err();
        assert!(
            matches!(e, NodeLookupError::Unknown { .. }),
            "{absent}: {e}"
        );
        let e = FrontendError::from(e);
        assert_eq!(e.code(), Code::NotFound, "{absent}");
        assert!(
            e.to_string().contains(absent) && e.to_string().contains(DRIVER),
            "{e}"
        );
    }
    let requests = server.api.lock().unwrap().requests.clone();
    assert!(
        requests.iter().all(|(m, _)| m == Method::GET),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|(_, uri)| uri.starts_with("/apis/storage.k8s.io/v1/csinodes/worker-1")),
        "the CSINode named like the node is read first: {requests:?}"
    );
}

#[tokio::test]
async fn an_api_server_that_fails_makes_the_node_check_unavailable_not_not_found() {
    let mut api = cluster();
    api.failing.push("/apis/storage.k8s.io/v1/csinodes".into());
    let server = start(api).await;
    let known = KnownNodes::Kubernetes {
        client: server.client.clone(),
        driver: DRIVER.into(),
    };
    let e = known
        .check(&NodeId::parse("worker-1").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, NodeLookupError::Api { .. }), "{e}");
    let e = FrontendError::from(e);
    assert_eq!(e.code(), Code::Unavailable);
    assert!(e.to_string().contains("etcdserver"), "{e}");
}
