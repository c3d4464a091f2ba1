//! The fault matrix in CI: every fault once (`FAULT_MATRIX_TRIALS` for more), on the real stack,
//! with the seed printed so that a failure can be repeated with
//! `fault-matrix --seed <seed> --fault <name>`. Root is required (loop devices, mounts): without
//! it the test fails, never passes silently. Build the binaries first: `cargo build --bins`.

use rds_csi_testbed::e2e_support::require_root;
use rds_csi_testbed::fault_matrix::rng::seed_from_clock;
use rds_csi_testbed::fault_matrix::{MatrixConfig, run};

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_converges_with_nothing_leaked_or_lost_and_spec_codes_only() {
    require_root();
    let cfg = MatrixConfig {
        trials: env_number("FAULT_MATRIX_TRIALS")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1),
        faults: Vec::new(),
        seed: env_number("FAULT_MATRIX_SEED").unwrap_or_else(seed_from_clock),
    };
    eprintln!("fault matrix: seed {}", cfg.seed);
    let report = match run(&cfg).await {
        Ok(r) => r,
        Err(e) => panic!("the fault matrix could not run: {e}"),
    };
    let text = report.render();
    print!("{text}");
    // Every fault of the catalogue ran, each trial was judged.
    assert_eq!(
        report.rows.len(),
        rds_csi_testbed::fault_matrix::catalogue::Fault::all().len()
    );
    assert!(
        report
            .rows
            .iter()
            .all(|r| r.trials.len() == cfg.trials as usize)
    );
    assert!(
        report.ok(),
        "the fault matrix failed (seed {}): see the table and details above",
        cfg.seed
    );
}
