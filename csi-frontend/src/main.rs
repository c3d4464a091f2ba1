//! `csi-frontend`: serves CSI on the socket kubelet and the sidecars use.
//!
//! Start-up order matters for correctness: in controller mode the attachment state is loaded
//! (from the state file, or rebuilt from VolumeAttachments) and the
//! `rds_csi_nvme_connections_active` collector registered before the socket is bound, so
//! neither a publish decision nor a scrape ever sees an empty table after a restart.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use csi_frontend::attachments::collector::ConnectionsCollector;
use csi_frontend::attachments::{self, Attachments, FileStore, KubernetesRecord};
use csi_frontend::cli::{Args, AttachmentSource};
use csi_frontend::controller::ControllerService;
use csi_frontend::identity::IdentityService;
use csi_frontend::ids::NodeId;
use csi_frontend::known_nodes::KnownNodes;
use csi_frontend::listing::route::ControllerRoutes;
use csi_frontend::node::NodeService;
use csi_frontend::relay::Relays;
use rds_csi_proto::component::{Component, ComponentError, one_line};
use rds_csi_proto::csi::identity_server::IdentityServer;
use rds_csi_proto::csi::node_server::NodeServer;
use tonic::server::NamedService;

/// How often readiness is refreshed from the relay targets.
const READINESS_INTERVAL: Duration = Duration::from_secs(5);

/// A start-up or serving failure, already worded for the one error line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct StartError(String);

fn main() -> ExitCode {
    let args = Args::parse();
    rds_csi_proto::component::main_with("csi-frontend", || async {
        run(args).await.map_err(StartError)
    })
}

/// The node id: the flag, or this machine's host name when the flag is empty.
fn node_id(flag: &str) -> Result<NodeId, String> {
    let raw = if flag.is_empty() {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_lowercase())
            .map_err(|e| format!("--node-id is empty and the host name cannot be read: {e}"))?
    } else {
        flag.to_string()
    };
    NodeId::parse(&raw).map_err(|e| format!("--node-id: {e}"))
}

/// Loads (or rebuilds) the attachment state before anything serves.
async fn load_attachments(args: &Args) -> Result<(Arc<Attachments>, KnownNodes), String> {
    match args.attachment_source() {
        AttachmentSource::File => {
            let store = FileStore::from_flag(&args.attachment_store)?;
            let table = store.load().map_err(|e| one_line(&e))?;
            tracing::info!(
                store = %store.path().display(),
                attached_volumes = table.attached_volumes(),
                "attachment state loaded"
            );
            Ok((
                Arc::new(Attachments::new(table, Arc::new(store))),
                KnownNodes::from_list(&args.known_nodes),
            ))
        }
        AttachmentSource::Kubernetes => {
            let client = kube::Client::try_default().await.map_err(|e| {
                format!("--attachment-source kubernetes: cannot reach the Kubernetes API: {e}")
            })?;
            let rebuilt = attachments::kubernetes::rebuild(
                &client,
                &args.driver_name,
                args.default_migration_timeout_seconds,
            )
            .await
            .map_err(|e| one_line(&e))?;
            for reason in &rebuilt.skipped {
                tracing::warn!(%reason, "VolumeAttachment not used for the attachment state");
            }
            tracing::info!(
                attached_volumes = rebuilt.table.attached_volumes(),
                "attachment state rebuilt from VolumeAttachments"
            );
            let state = Arc::new(Attachments::new(rebuilt.table, Arc::new(KubernetesRecord)));
            let known = KnownNodes::Kubernetes {
                client: client.clone(),
                driver: args.driver_name.clone(),
            };
            if args.attachment_resync_seconds > 0 {
                tokio::spawn(attachments::kubernetes::resync_loop(
                    client,
                    args.driver_name.clone(),
                    state.clone(),
                    Duration::from_secs(args.attachment_resync_seconds),
                ));
            }
            Ok((state, known))
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let err = |e: ComponentError| one_line(&e);
    let component = Component::start(
        "csi-frontend",
        &args.common,
        "relay targets not checked yet",
    )
    .map_err(err)?;
    let relays = Relays::connect(
        args.mode.controller().then_some(&args.gateway_endpoint),
        args.mode.node().then_some(&args.helper_endpoint),
        component.hop_metrics(),
    )
    .map_err(|e| one_line(&e))?;
    {
        let relays = relays.clone();
        let readiness = component.readiness().clone();
        tokio::spawn(async move {
            loop {
                match relays.ready().await {
                    Ok(()) => readiness.set_ready(),
                    Err(reason) => readiness.set_not_ready(reason),
                }
                tokio::time::sleep(READINESS_INTERVAL).await;
            }
        });
    }
    let mut services = vec![<IdentityServer<IdentityService> as NamedService>::NAME];
    let mut routes = tonic::service::Routes::new(IdentityServer::new(IdentityService::new(
        args.driver_name.clone(),
        args.mode.controller(),
        relays.clone(),
    )));
    if let Some(gateway) = relays.gateway.clone() {
        let (state, known_nodes) = load_attachments(&args).await?;
        tracing::info!(nodes = %known_nodes.describe(), "ControllerPublish node check");
        let collector = ConnectionsCollector::new(state.clone())
            .map_err(|e| format!("cannot create the connections gauge: {e}"))?;
        component
            .registry()
            .register(Box::new(collector))
            .map_err(|e| format!("cannot register the connections gauge: {e}"))?;
        tracing::info!(store = %state.store().describe(), "attachment state ready");
        routes = routes.add_service(ControllerRoutes::new(
            ControllerService::new(gateway, state, args.defaults()).with_known_nodes(known_nodes),
        ));
        services.push(<ControllerRoutes as NamedService>::NAME);
    }
    if let Some(helper) = relays.helper.clone() {
        let node = node_id(&args.node_id)?;
        tracing::info!(node_id = %node, "node service ready");
        routes = routes.add_service(NodeServer::new(NodeService::new(
            helper,
            node,
            args.max_volumes_per_node,
        )));
        services.push(<NodeServer<NodeService> as NamedService>::NAME);
    }
    component
        .serve(&args.endpoint, &args.metrics_address, routes, &services)
        .await
        .map_err(err)
}
