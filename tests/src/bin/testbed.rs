//! `testbed`: the whole rds-csi driver on one machine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use rds_csi_testbed::csi_client::Csi;
use rds_csi_testbed::leaks;
use rds_csi_testbed::lifecycle::{self, Flavor};
use rds_csi_testbed::otlp_sink::OtlpSink;
use rds_csi_testbed::stack::{Stack, StackConfig};

/// Runs the rds-csi driver on this machine — the RouterOS simulator as the appliance,
/// rds-gateway over real SSH, nvme-helper with the loop-device fabric (real mkfs and
/// mounts; needs root), csi-frontend in controller and node mode — each as its own
/// process, for trying the driver, for external CSI tools (csi-sanity, csc) and for the
/// end-to-end suites.
#[derive(Debug, Parser)]
#[command(name = "testbed", version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
    /// Directory for sockets, the appliance's files and all state; a fresh temporary one
    /// (removed on exit) when not given.
    #[arg(long, env = "TESTBED_STATE_DIR", global = true)]
    state_dir: Option<PathBuf>,
    /// Path of the CSI socket for node and identity calls.
    #[arg(long, env = "TESTBED_CSI_SOCKET", global = true)]
    csi_socket: Option<PathBuf>,
    /// Path of the CSI socket for controller calls; the same as --csi-socket when not
    /// given (then one frontend process serves both).
    #[arg(long, env = "TESTBED_CONTROLLER_SOCKET", global = true)]
    controller_socket: Option<PathBuf>,
    /// Root under which staging and target paths may live (passed to the helper);
    /// external tools put their paths there.
    #[arg(long, env = "TESTBED_KUBELET_DIR", global = true)]
    kubelet_dir: Option<PathBuf>,
    /// RouterOS version the simulator imitates (JSON output from 7.13 on).
    #[arg(
        long,
        env = "TESTBED_ROUTEROS_VERSION",
        default_value = "7.16.2",
        global = true
    )]
    routeros_version: String,
    /// Simulator latency per command verb, e.g. disk-add=20ms (repeatable).
    #[arg(long = "sim-latency", env = "TESTBED_SIM_LATENCY", global = true)]
    sim_latency: Vec<String>,
    /// Run a built-in OTLP trace receiver and write every span it receives to this file,
    /// one JSON object per line.
    #[arg(long, env = "TESTBED_OTLP_FILE", global = true)]
    otlp_file: Option<PathBuf>,
    /// Log filter passed to every component.
    #[arg(long, env = "TESTBED_LOG_LEVEL", default_value = "warn", global = true)]
    log_level: String,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start everything, print where it listens, and run until SIGINT/SIGTERM; then stop
    /// every process and leave nothing behind.
    Up,
    /// Start everything, run a scripted volume lifecycle through the CSI sockets, print a
    /// table of steps with durations and trace ids, and stop. Exit status 0 only if every
    /// check held and nothing was left behind.
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

/// A temporary state directory, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn run(args: Args) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err(
            "the testbed needs root: nvme-helper attaches loop devices and mounts filesystems"
                .into(),
        );
    }
    let mut _temp = None;
    let state_dir = match &args.state_dir {
        Some(d) => d.clone(),
        None => {
            let d = std::env::temp_dir().join(format!("rds-csi-testbed-{}", std::process::id()));
            std::fs::create_dir_all(&d)
                .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
            _temp = Some(TempDir(d.clone()));
            d
        }
    };
    let sink = match &args.otlp_file {
        Some(path) => Some(
            OtlpSink::start(Some(path.clone()))
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let mut cfg = StackConfig::new(&state_dir);
    cfg.csi_socket = args.csi_socket.clone();
    cfg.controller_socket = args.controller_socket.clone();
    cfg.kubelet_dir = args.kubelet_dir.clone();
    cfg.routeros_version = args.routeros_version.clone();
    cfg.sim_latency = args.sim_latency.clone();
    cfg.log_level = args.log_level.clone();
    cfg.otlp_endpoint = sink.as_ref().map(OtlpSink::endpoint);

    let started = Instant::now();
    let stack = Stack::start(&cfg).await.map_err(|e| e.to_string())?;
    let ep = stack.endpoints.clone();
    println!(
        "appliance (rds-sim): ssh://{} root {}",
        ep.sim_addr,
        ep.sim_root.display()
    );
    println!("CSI socket (node):   unix://{}", ep.csi_socket.display());
    println!(
        "CSI socket (ctrl):   unix://{}",
        ep.controller_socket.display()
    );
    println!("kubelet dir:         {}", ep.kubelet_dir.display());
    for (name, addr) in &ep.metrics {
        println!("metrics {name:<22} http://{addr}/metrics");
    }
    match (&sink, &args.otlp_file) {
        (Some(sink), Some(file)) => println!(
            "traces:              OTLP receiver {} writing {}",
            sink.endpoint(),
            file.display()
        ),
        _ => println!("traces:              not exported (use --otlp-file FILE)"),
    }
    println!("started in {:.2} s", started.elapsed().as_secs_f64());

    let outcome = match args.command {
        Cmd::Up => {
            let which = rds_csi_proto::shutdown::signalled().await;
            println!("{which}: stopping");
            Ok(())
        }
        Cmd::Demo => {
            let csi = Csi::connect(&ep.csi_socket, &ep.controller_socket)?;
            let t = Instant::now();
            let (steps, ok) = lifecycle::run(&csi, &ep.kubelet_dir, Flavor::Ext4, "demo").await;
            lifecycle::print_table("volume lifecycle (ext4)", &steps);
            println!("lifecycle took {:.2} s", t.elapsed().as_secs_f64());
            if ok {
                Ok(())
            } else {
                Err("some lifecycle steps failed".to_string())
            }
        }
    };
    let stopped = stack.stop().await.map_err(|e| e.to_string());
    let left = leaks::all(&ep.sim_root, &ep.kubelet_dir);
    // Volumes still staged when `up` stops keep their mounts and loop devices (the helper
    // never detaches on exit, so a restart converges); the testbed owns them now.
    leaks::force_clean(&ep.sim_root, &ep.kubelet_dir);
    let left = if left.is_empty() || matches!(args.command, Cmd::Up) {
        println!("left behind: nothing (no mount, loop device or image file)");
        Ok(())
    } else {
        Err(format!("left behind: {}", left.join(", ")))
    };
    outcome.and(stopped).and(left)
}
