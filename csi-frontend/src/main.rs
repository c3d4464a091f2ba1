//! `csi-frontend`: serves CSI on the socket kubelet and the sidecars use.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use csi_frontend::cli::Args;
use csi_frontend::identity::IdentityService;
use csi_frontend::relay::Relays;
use rds_csi_proto::component::{Component, ComponentError, one_line};
use rds_csi_proto::csi::identity_server::IdentityServer;

/// How often readiness is refreshed from the relay targets.
const READINESS_INTERVAL: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("csi-frontend: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("csi-frontend: error: {e}");
            ExitCode::FAILURE
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
    let identity = IdentityServer::new(IdentityService::new(
        args.driver_name.clone(),
        args.mode.controller(),
        relays,
    ));
    let routes = tonic::service::Routes::new(identity);
    component
        .serve(
            &args.endpoint,
            &args.metrics_address,
            routes,
            &[<IdentityServer<IdentityService> as tonic::server::NamedService>::NAME],
        )
        .await
        .map_err(err)
}
