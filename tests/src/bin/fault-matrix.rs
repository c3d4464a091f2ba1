//! `fault-matrix`: runs every fault of the matrix (or those named with `--fault`) `--trials`
//! times against the real stack, prints the table, and exits non-zero when any trial leaked,
//! lost something, got a code the CSI spec does not allow, or did not converge.

use std::process::ExitCode;

use clap::Parser;
use rds_csi_testbed::fault_matrix::catalogue::Fault;
use rds_csi_testbed::fault_matrix::rng::seed_from_clock;
use rds_csi_testbed::fault_matrix::{MatrixConfig, run};

/// Injects faults into the whole rds-csi driver running on this machine (rds-sim, rds-gateway,
/// nvme-helper on loop devices, csi-frontend) and checks that every trial converges with
/// nothing leaked, nothing lost and every answer a code the CSI spec allows. Needs root.
#[derive(Debug, Parser)]
#[command(name = "fault-matrix", version, about, long_about = None)]
struct Args {
    /// Trials per fault; kill points spread evenly over the call across the trials.
    #[arg(long, default_value_t = 3)]
    trials: u32,
    /// Run only the faults whose name contains this (repeatable); see --list.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Seed of the kill points (printed, so a run can be repeated); random when not given.
    #[arg(long)]
    seed: Option<u64>,
    /// List the faults and exit.
    #[arg(long)]
    list: bool,
    /// Print the codes and notes of every trial, not only of the failed ones.
    #[arg(long)]
    verbose: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.list {
        for f in Fault::matching(&args.faults) {
            println!("{:<30} {}", f.name(), f.describe());
        }
        return ExitCode::SUCCESS;
    }
    let cfg = MatrixConfig {
        trials: args.trials,
        faults: args.faults.clone(),
        seed: args.seed.unwrap_or_else(seed_from_clock),
    };
    eprintln!("fault matrix: seed {} (--seed to repeat)", cfg.seed);
    // Interrupted: the run is dropped, and with it the stack (its processes killed, their
    // mounts and loop devices removed).
    let outcome = tokio::select! {
        r = run(&cfg) => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("fault-matrix: interrupted; the stack is stopped and cleaned up");
            return ExitCode::from(130);
        }
    };
    match outcome {
        Ok(report) => {
            print!("{}", report.render_with(args.verbose));
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("fault-matrix: {e}");
            ExitCode::from(2)
        }
    }
}
