//! `rds-gateway`: the only rds-csi process that holds RDS credentials.
//!
//! It keeps SSH sessions to the RouterOS appliance, runs typed `/disk` commands and
//! serves the internal gateway API to the controller-mode csi-frontend.

mod cli;
mod grpc_service;

use std::process::ExitCode;

use clap::Parser;
use rds_csi_proto::component::{Component, ComponentError, one_line};
use rds_csi_proto::gateway::gateway_server::GatewayServer;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rds-gateway: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rds-gateway: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(args: cli::Args) -> Result<(), ComponentError> {
    let component = Component::start(
        "rds-gateway",
        &args.common,
        "no RDS session: the RouterOS client is not built yet",
    )?;
    let service = GatewayServer::new(grpc_service::GatewayService::new(
        component.readiness().clone(),
    ));
    let routes = tonic::service::Routes::new(service);
    component
        .serve(
            &args.endpoint,
            &args.metrics_address,
            routes,
            &[<GatewayServer<grpc_service::GatewayService> as tonic::server::NamedService>::NAME],
        )
        .await
}
