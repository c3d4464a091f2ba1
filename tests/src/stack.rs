//! The whole driver on one machine: every component as its own process, wired together
//! over unix sockets in one state directory, each with its own metrics port.
//!
//! The testbed binary and the end-to-end suites start a [`Stack`]; dropping it kills
//! whatever is still running, and [`Stack::stop`] stops everything with SIGTERM and
//! checks that each process exits cleanly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Command;

use crate::bins;
use crate::process::{Process, ProcessError, free_port};

/// How long a component may take to create its socket.
const START_WAIT: Duration = Duration::from_secs(30);
/// How long a component may take to exit after SIGTERM.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// Why the stack could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Binary(#[from] bins::MissingBinary),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{name} exited with {status} after SIGTERM")]
    Unclean { name: String, status: String },
}

/// Where each component listens.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub csi_socket: PathBuf,
    pub gateway_socket: PathBuf,
    pub helper_socket: PathBuf,
    pub frontend_metrics: SocketAddr,
    pub gateway_metrics: SocketAddr,
    pub helper_metrics: SocketAddr,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub state_dir: PathBuf,
    pub csi_socket: Option<PathBuf>,
    pub log_level: String,
}

/// The running components.
pub struct Stack {
    pub endpoints: Endpoints,
    processes: Vec<Process>,
}

fn port() -> Result<SocketAddr, StackError> {
    let p = free_port().map_err(|source| StackError::Io {
        path: PathBuf::from("127.0.0.1:0"),
        source,
    })?;
    Ok(SocketAddr::from(([127, 0, 0, 1], p)))
}

fn unix(path: &Path) -> String {
    format!("unix://{}", path.display())
}

impl Stack {
    /// Starts rds-gateway, nvme-helper and csi-frontend (all modes in one process) and
    /// waits until each serves.
    pub async fn start(cfg: &StackConfig) -> Result<Stack, StackError> {
        let sockets = cfg.state_dir.join("sockets");
        std::fs::create_dir_all(&sockets).map_err(|source| StackError::Io {
            path: sockets.clone(),
            source,
        })?;
        let endpoints = Endpoints {
            csi_socket: cfg
                .csi_socket
                .clone()
                .unwrap_or_else(|| sockets.join("csi.sock")),
            gateway_socket: sockets.join("gateway.sock"),
            helper_socket: sockets.join("helper.sock"),
            frontend_metrics: port()?,
            gateway_metrics: port()?,
            helper_metrics: port()?,
        };
        let mut stack = Stack {
            endpoints: endpoints.clone(),
            processes: Vec::new(),
        };
        let common = |cmd: &mut Command| {
            cmd.arg("--log-level").arg(&cfg.log_level);
        };

        let mut gw = Command::new(bins::path("rds-gateway")?);
        gw.arg("--endpoint")
            .arg(unix(&endpoints.gateway_socket))
            .arg("--metrics-address")
            .arg(endpoints.gateway_metrics.to_string());
        common(&mut gw);
        stack
            .launch("rds-gateway", gw, &endpoints.gateway_socket)
            .await?;

        let mut helper = Command::new(bins::path("nvme-helper")?);
        helper
            .arg("--endpoint")
            .arg(unix(&endpoints.helper_socket))
            .arg("--metrics-address")
            .arg(endpoints.helper_metrics.to_string());
        common(&mut helper);
        stack
            .launch("nvme-helper", helper, &endpoints.helper_socket)
            .await?;

        let mut fe = Command::new(bins::path("csi-frontend")?);
        fe.arg("--mode")
            .arg("all")
            .arg("--endpoint")
            .arg(unix(&endpoints.csi_socket))
            .arg("--gateway-endpoint")
            .arg(unix(&endpoints.gateway_socket))
            .arg("--helper-endpoint")
            .arg(unix(&endpoints.helper_socket))
            .arg("--node-id")
            .arg("testbed-node")
            .arg("--metrics-address")
            .arg(endpoints.frontend_metrics.to_string());
        common(&mut fe);
        stack
            .launch("csi-frontend", fe, &endpoints.csi_socket)
            .await?;
        Ok(stack)
    }

    async fn launch(&mut self, name: &str, cmd: Command, socket: &Path) -> Result<(), StackError> {
        let mut p = Process::spawn(name, cmd)?;
        p.wait_for_socket(socket, START_WAIT).await?;
        self.processes.push(p);
        Ok(())
    }

    /// Stops every component with SIGTERM, last started first, and checks each exit.
    pub async fn stop(mut self) -> Result<(), StackError> {
        let mut first_error = None;
        while let Some(p) = self.processes.pop() {
            let name = p.name.clone();
            match p.stop(Signal::SIGTERM, STOP_WAIT).await {
                Ok(status) if status.success() => {}
                Ok(status) => {
                    first_error.get_or_insert(StackError::Unclean {
                        name,
                        status: status.to_string(),
                    });
                }
                Err(e) => {
                    first_error.get_or_insert(e.into());
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}
