//! The hostile-input sweep in CI: every generated case through the testbed's controller and node
//! sockets; each must get its written code, and none may reach the appliance's command log, the
//! mount table or a loop device. Root is required (loop devices, mounts): without it the test
//! fails, never passes silently. Build the binaries first: `cargo build --bins`.

use rds_csi_testbed::e2e_support::require_root;
use rds_csi_testbed::hostile::{SweepConfig, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_their_codes_and_reach_nothing() {
    require_root();
    let report = match run(&SweepConfig::default()).await {
        Ok(r) => r,
        Err(e) => panic!("the sweep could not run: {e}"),
    };
    let text = report.render(false);
    print!("{text}");
    assert!(
        report.results.len() >= 500,
        "only {} cases: the sweep is meant to be combinatorial",
        report.results.len()
    );
    assert_eq!(report.reached_log(), 0, "{text}");
    assert_eq!(report.reached_mounts(), 0, "{text}");
    assert_eq!(report.new_loops(), 0, "{text}");
    assert_eq!(report.wrong(), 0, "{text}");
    assert!(report.ok(), "{text}");
}
