//! `testbed`: the whole rds-csi driver on one machine.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rds_csi_proto::channel::connect_lazy;
use rds_csi_proto::csi::identity_client::IdentityClient;
use rds_csi_proto::csi::{GetPluginInfoRequest, ProbeRequest};
use rds_csi_proto::endpoint::Endpoint;
use rds_csi_testbed::http;
use rds_csi_testbed::stack::{Stack, StackConfig};

/// Runs every rds-csi component as its own process on this machine, wired together over
/// unix sockets, for trying the driver and for the end-to-end suites.
#[derive(Debug, Parser)]
#[command(name = "testbed", version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
    /// Directory for sockets and state; a fresh temporary one when not given.
    #[arg(long, env = "TESTBED_STATE_DIR", global = true)]
    state_dir: Option<std::path::PathBuf>,
    /// Path of the CSI socket (identity, controller and node).
    #[arg(long, env = "TESTBED_CSI_SOCKET", global = true)]
    csi_socket: Option<std::path::PathBuf>,
    /// Log filter passed to every component.
    #[arg(long, env = "TESTBED_LOG_LEVEL", default_value = "warn", global = true)]
    log_level: String,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start everything, print where it listens, and run until SIGINT/SIGTERM.
    Up,
    /// Start everything, check each component through its socket and metrics, print a
    /// table of the steps, and stop everything. Exit status 0 only if every check held.
    Demo,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("testbed: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("testbed: error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let temp;
    let state_dir = match &args.state_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let cfg = StackConfig {
        state_dir,
        csi_socket: args.csi_socket.clone(),
        log_level: args.log_level.clone(),
    };
    let stack = Stack::start(&cfg).await.map_err(|e| e.to_string())?;
    let ep = stack.endpoints.clone();
    println!("CSI socket:        unix://{}", ep.csi_socket.display());
    println!("frontend metrics:  http://{}/metrics", ep.frontend_metrics);
    println!("gateway metrics:   http://{}/metrics", ep.gateway_metrics);
    println!("helper metrics:    http://{}/metrics", ep.helper_metrics);
    let outcome = match args.command {
        Cmd::Up => {
            let which = rds_csi_proto::shutdown::signalled().await;
            println!("{which}: stopping");
            Ok(())
        }
        Cmd::Demo => demo(&ep).await,
    };
    let stopped = stack.stop().await.map_err(|e| e.to_string());
    outcome.and(stopped)
}

struct TempDir(std::path::PathBuf);
impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> Result<TempDir, String> {
    let base = std::env::temp_dir().join(format!("rds-csi-testbed-{}", std::process::id()));
    std::fs::create_dir_all(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
    Ok(TempDir(base))
}

async fn demo(ep: &rds_csi_testbed::stack::Endpoints) -> Result<(), String> {
    let mut rows: Vec<(String, Duration, Result<String, String>)> = Vec::new();
    let csi = Endpoint::Unix(ep.csi_socket.clone());
    let channel = connect_lazy(&csi).map_err(|e| e.to_string())?;
    let mut identity = IdentityClient::new(channel);

    let t = Instant::now();
    let r = identity
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .map(|r| format!("{} {}", r.get_ref().name, r.get_ref().vendor_version))
        .map_err(|s| s.message().to_string());
    rows.push(("GetPluginInfo".into(), t.elapsed(), r));

    let t = Instant::now();
    let r = identity
        .probe(ProbeRequest {})
        .await
        .map(|r| format!("ready={:?}", r.get_ref().ready))
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()));
    // The gateway has no RDS session yet, so a not-ready probe with a reason is the
    // expected answer at this stage.
    let probe_says_why = matches!(&r, Err(m) if m.contains("rds-gateway"));
    rows.push((
        "Probe (expects not ready: no RDS yet)".into(),
        t.elapsed(),
        if probe_says_why {
            Ok(r.err().unwrap_or_default())
        } else {
            Err(format!("unexpected probe answer: {r:?}"))
        },
    ));

    for (name, addr) in [
        ("csi-frontend", ep.frontend_metrics),
        ("rds-gateway", ep.gateway_metrics),
        ("nvme-helper", ep.helper_metrics),
    ] {
        let t = Instant::now();
        let r = match http::get(addr, "/metrics", Duration::from_secs(5)).await {
            Ok(reply) if reply.status == 200 => Ok(format!("{} bytes", reply.body.len())),
            Ok(reply) => Err(format!("HTTP {}", reply.status)),
            Err(e) => Err(e.to_string()),
        };
        rows.push((format!("scrape {name} /metrics"), t.elapsed(), r));
    }

    println!();
    println!("{:<40} {:>10}  {:<6} detail", "step", "ms", "result");
    let mut ok = true;
    for (step, took, r) in &rows {
        let (res, detail) = match r {
            Ok(d) => ("ok", d.as_str()),
            Err(d) => {
                ok = false;
                ("FAIL", d.as_str())
            }
        };
        println!(
            "{step:<40} {:>10.2}  {res:<6} {detail}",
            took.as_secs_f64() * 1000.0
        );
    }
    if ok {
        Ok(())
    } else {
        Err("some demo steps failed".into())
    }
}
