//! `rds-gateway`: the only rds-csi process that holds RDS credentials.
//!
//! It reads its flags, starts the shared component machinery (telemetry, registry, `/metrics`),
//! starts the SSH pool to the RDS in the background (an unreachable RDS is not fatal: the gateway
//! serves and reports not ready until it connects), builds the operations over it and serves the
//! internal gateway API until SIGTERM. Started without `--rds-address` it serves too, not ready,
//! saying what to set; a bad key file or host key is a start-up error.
//!
//! `rds-gateway doctor` serves nothing: it runs the preflight checks against the RDS, prints the
//! report and exits 0 only when every check passed.

mod cli;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use rds_csi_proto::component::{Component, ComponentError};
use rds_csi_proto::gateway::gateway_server::GatewayServer;
use rds_gateway::assembly::Gateway;
use rds_gateway::grpc_service::GatewayService;
use rds_gateway::readiness;
use rds_gateway::runner::{CommandRunner, NOT_CONFIGURED, NotConfigured, SshRunner};
use rds_gateway::ssh::{SshPool, StartError};

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
enum GatewayError {
    #[error(transparent)]
    Flag(#[from] cli::FlagError),
    #[error(transparent)]
    Component(#[from] ComponentError),
    #[error(transparent)]
    Pool(#[from] StartError),
    #[error("cannot register the gateway metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

fn main() -> ExitCode {
    let args = cli::Args::parse();
    match &args.command {
        Some(cli::Command::Doctor(doctor)) => run_doctor(&args, doctor),
        None => rds_csi_proto::component::main_with("rds-gateway", || run(args)),
    }
}

/// Exit status of a doctor run with a failed check (clap uses 2 for bad flags).
const DOCTOR_FAILED: u8 = 1;

fn run_doctor(args: &cli::Args, doctor: &cli::DoctorArgs) -> ExitCode {
    let settings = args.doctor_settings(doctor);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rds-gateway doctor: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = runtime.block_on(rds_gateway::doctor::run(&settings));
    let text = match doctor.output {
        cli::OutputFormat::Text => report.to_text(),
        cli::OutputFormat::Json => report.to_json_lines(),
    };
    let mut stdout = std::io::stdout().lock();
    // A closed stdout (`| head`) must not turn a result into a panic; the status still tells.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(DOCTOR_FAILED)
    }
}

async fn run(args: cli::Args) -> Result<(), GatewayError> {
    // Flags first: a bad value fails before anything starts.
    let ssh = args.ssh_config()?;
    let settings = args.settings()?;
    let component = Component::start("rds-gateway", &args.common, "connecting to the RDS")?;
    let runner: Arc<dyn CommandRunner> = match ssh {
        Some(config) => Arc::new(SshRunner::new(SshPool::start(
            config,
            component.registry(),
        )?)),
        None => {
            tracing::warn!("{NOT_CONFIGURED}; serving, but not ready");
            Arc::new(NotConfigured::new())
        }
    };
    let gateway = Gateway::build(runner, settings, component.registry())?;
    let follower = readiness::follow(gateway.executor.connection(), component.readiness().clone());
    let routes = tonic::service::Routes::new(GatewayServer::new(gateway.service.clone()));
    let served = component
        .serve(
            &args.endpoint,
            &args.metrics_address,
            routes,
            &[<GatewayServer<GatewayService> as tonic::server::NamedService>::NAME],
        )
        .await;
    follower.abort();
    drop(gateway);
    served.map_err(GatewayError::from)
}
