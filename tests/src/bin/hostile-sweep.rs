//! `hostile-sweep`: sends several hundred hostile CSI requests through the testbed's controller
//! and node sockets, prints the counts, and exits non-zero when any was answered with the wrong
//! code or reached the appliance's command log, the mount table or a loop device.

use std::process::ExitCode;

use clap::Parser;
use rds_csi_testbed::hostile::{SweepConfig, run};

/// Sends hostile CSI requests (RouterOS syntax, [find]/:put fragments, newlines, NUL, traversal,
/// symlinks, look-alike ids, absurd sizes, 100 KiB strings) to the whole rds-csi driver running
/// on this machine and checks each answer and that nothing reached the appliance or the mount
/// table. Needs root.
#[derive(Debug, Parser)]
#[command(name = "hostile-sweep", version, about, long_about = None)]
struct Args {
    /// Send only the cases whose field contains this (repeatable), e.g. `NodeStageVolume`.
    #[arg(long = "field")]
    fields: Vec<String>,
    /// Print every case, not only the failed ones.
    #[arg(long)]
    verbose: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = SweepConfig {
        fields: args.fields,
    };
    // Interrupted: the run is dropped, and with it the stack (its processes killed, their
    // mounts and loop devices removed).
    let outcome = tokio::select! {
        r = run(&cfg) => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("hostile-sweep: interrupted; the stack is stopped and cleaned up");
            return ExitCode::from(130);
        }
    };
    match outcome {
        Ok(report) => {
            print!("{}", report.render(args.verbose));
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("hostile-sweep: {e}");
            ExitCode::from(2)
        }
    }
}
