//! `nvme-helper`: the only privileged rds-csi process, one per node.
//!
//! It connects NVMe/TCP targets, resolves, formats and mounts their devices, and serves
//! a narrow typed API on a unix socket that only the node-mode csi-frontend reaches.

mod cli;
mod grpc_service;

use std::process::ExitCode;

use clap::Parser;
use rds_csi_proto::component::{Component, ComponentError, one_line};
use rds_csi_proto::helper::node_helper_server::NodeHelperServer;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nvme-helper: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nvme-helper: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(args: cli::Args) -> Result<(), ComponentError> {
    let component = Component::start("nvme-helper", &args.common, "starting")?;
    component.readiness().set_ready();
    let service = NodeHelperServer::new(grpc_service::HelperService::new(
        component.readiness().clone(),
    ));
    let routes = tonic::service::Routes::new(service);
    component
        .serve(
            &args.endpoint,
            &args.metrics_address,
            routes,
            &[<NodeHelperServer<grpc_service::HelperService> as tonic::server::NamedService>::NAME],
        )
        .await
}
