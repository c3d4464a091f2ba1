//! What every rds-csi process does the same way: its common flags, telemetry, the one
//! metrics registry, the `/metrics` server, serving its gRPC endpoint, and a clean stop.
//!
//! A binary calls [`Component::start`], builds its services with the registry and
//! readiness it gets, then hands them to [`Component::serve`], which returns after
//! SIGTERM/SIGINT once in-flight calls are done (or the grace period ran out), traces are
//! flushed and the socket is gone.

use std::time::Duration;

use prometheus::Registry;
use tonic::service::Routes;

use crate::endpoint::Endpoint;
use crate::hop::{HopMetrics, ServerHopLayer};
use crate::metrics_server::{MetricsServer, MetricsServerError, Readiness};
use crate::serve::{Listener, ServeError};
use crate::socket_access::{AllowedPeers, SocketAccess, SocketOwner};
use crate::telemetry::{self, LogFormat, Telemetry, TelemetryError};

/// Flags every component shares.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Log line format.
    #[arg(long, env = "RDS_CSI_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter: a level (error, warn, info, debug, trace) or per-module directives
    /// such as "info,rds_gateway=debug".
    #[arg(long, env = "RDS_CSI_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// File mode of the unix socket this process listens on (octal).
    #[arg(long, env = "RDS_CSI_SOCKET_MODE", default_value = "0600", value_parser = parse_mode)]
    pub socket_mode: u32,
    /// Numeric owner (UID or UID:GID) to give the unix socket, so that a client running as
    /// another user can connect (e.g. the unprivileged frontend to the root helper). Unset:
    /// the process's own user.
    #[arg(long, env = "RDS_CSI_SOCKET_OWNER")]
    pub socket_owner: Option<SocketOwner>,
    /// Comma-separated uids whose connections the unix socket serves (checked on every
    /// connection with SO_PEERCRED); others are closed at once. Empty: every uid the
    /// socket's mode admits.
    #[arg(long, env = "RDS_CSI_SOCKET_ALLOWED_UIDS", default_value = "")]
    pub socket_allowed_uids: AllowedPeers,
    /// Seconds in-flight calls may take to finish after SIGTERM before the process exits.
    #[arg(long, env = "RDS_CSI_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,
}

fn parse_mode(raw: &str) -> Result<u32, String> {
    let digits = raw.trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!(
            "{raw:?} is not an octal file mode such as 0600 or 0660"
        )),
    }
}

/// Why a component could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    MetricsServer(#[from] MetricsServerError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// A started component: telemetry installed, registry and readiness ready for its services.
pub struct Component {
    name: &'static str,
    telemetry: Telemetry,
    registry: Registry,
    hop_metrics: HopMetrics,
    readiness: Readiness,
    grace: Duration,
    socket: SocketAccess,
}

impl Component {
    /// Installs telemetry and creates the process's registry. Must run inside tokio.
    pub fn start(
        name: &'static str,
        common: &CommonArgs,
        initial_not_ready: &str,
    ) -> Result<Self, ComponentError> {
        let telemetry = telemetry::init(name, common.log_format, &common.log_level)?;
        let registry = Registry::new();
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let hop_metrics = HopMetrics::register(&registry, name)?;
        Ok(Component {
            name,
            telemetry,
            registry,
            hop_metrics,
            readiness: Readiness::not_ready(initial_not_ready),
            grace: Duration::from_secs(common.shutdown_grace_seconds),
            socket: SocketAccess {
                mode: common.socket_mode,
                owner: common.socket_owner,
                peers: common.socket_allowed_uids.clone(),
            },
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn hop_metrics(&self) -> &HopMetrics {
        &self.hop_metrics
    }

    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Binds the metrics address and the gRPC endpoint (so a busy port or a bad socket path
    /// fails here, before anything serves), serves both until SIGTERM/SIGINT, then stops
    /// cleanly and flushes traces.
    pub async fn serve(
        self,
        endpoint: &Endpoint,
        metrics_address: &str,
        routes: Routes,
        known_services: &[&'static str],
    ) -> Result<(), ComponentError> {
        let metrics = MetricsServer::bind(metrics_address).await?;
        let listener = Listener::bind_with(endpoint, self.socket.clone()).await?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let wait_stop = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stopped| *stopped).await;
            }
        };
        let metrics_addr = metrics
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let metrics_task =
            tokio::spawn(metrics.serve(self.registry.clone(), self.readiness.clone(), wait_stop()));
        tracing::info!(
            component = self.name,
            endpoint = %listener.describe(),
            metrics = %metrics_addr,
            traces_exported = self.telemetry.exporting(),
            version = env!("CARGO_PKG_VERSION"),
            "serving"
        );
        let hop = ServerHopLayer::new(self.hop_metrics.clone(), known_services);
        let signal = async move {
            let which = crate::shutdown::signalled().await;
            tracing::info!(signal = which, "stopping: no new calls are accepted");
            let _ = stop_tx.send(true);
        };
        let served = listener.serve(routes, hop, signal, self.grace).await;
        let _ = metrics_task.await;
        tracing::info!(component = self.name, "stopped");
        self.telemetry.shutdown().await;
        served.map_err(ComponentError::from)
    }
}

/// The body of every binary's `main`: runs `run` on a multi-thread tokio runtime and turns
/// its result into the exit status, printing one `<name>: error: ...` line on failure.
pub fn main_with<E, F>(name: &str, run: impl FnOnce() -> F) -> std::process::ExitCode
where
    E: std::error::Error,
    F: std::future::Future<Output = Result<(), E>>,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: error: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Formats an error and its sources as one line, for the last words of a failed process.
pub fn one_line(err: &dyn std::error::Error) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = s.source();
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_modes() {
        assert_eq!(parse_mode("0600"), Ok(0o600));
        assert_eq!(parse_mode("660"), Ok(0o660));
        assert!(parse_mode("0800").is_err());
        assert!(parse_mode("1777").is_err());
        assert!(parse_mode("rw").is_err());
    }
}
