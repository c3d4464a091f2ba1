//! The stable fuzz run: for every target, the seed corpus and then a mutation loop for
//! `RDS_FUZZ_SECONDS` (default 8 s; `RDS_FUZZ_SECONDS=60` is the intended deeper run), seeded by
//! `RDS_FUZZ_SEED`. A panic, a hang (one input over 1 s) or resident-memory growth over 512 MiB
//! fails the target's test, saves the input to `artifacts/<target>/crash-<hash>` and prints it.
//! Targets run one at a time so that their timings and memory readings do not mix.
//!
//! Replay one saved input: `RDS_FUZZ_REPLAY=fuzz/artifacts/<target>/crash-<hash> cargo test -p
//! rds-csi-fuzz <target>`.

use std::io::Write as _;
use std::sync::{Mutex, Once};

use rds_csi_fuzz::driver::{Config, run};
use rds_csi_fuzz::targets::{ALL, by_name};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Writes straight to the process's stderr, past the test harness's output capture, so that the
/// per-target counts show in every run, not only in failing ones.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn fuzz(name: &str) {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    static HEADER: Once = Once::new();
    HEADER.call_once(|| {
        say(&format!(
            "rds-csi-fuzz: seed {:#x} (RDS_FUZZ_SEED), {} s per target (RDS_FUZZ_SECONDS)",
            config.seed,
            config.budget.as_secs_f64()
        ));
    });
    if let Some(replay) = &config.replay
        && !replay.components().any(|c| c.as_os_str() == name)
    {
        say(&format!(
            "{name}: skipped, replaying {} for another target",
            replay.display()
        ));
        return;
    }
    let Some(target) = by_name(name) else {
        panic!("no target called {name}");
    };
    let outcome = match run(target, &config) {
        Ok(o) => o,
        Err(e) => panic!("{name}: {e}"),
    };
    if let Some(finding) = outcome.finding {
        panic!(
            "{name} (seed {:#x}): {finding}\n{}",
            config.seed, outcome.report
        );
    }
    say(&format!("{}", outcome.report));
}

macro_rules! fuzz_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                fuzz(stringify!($name));
            }
        )*

        #[test]
        fn every_target_has_a_test_a_corpus_and_a_cargo_fuzz_binary() {
            let tested: &[&str] = &[$(stringify!($name)),*];
            let registered: Vec<&str> = ALL.iter().map(|t| t.name).collect();
            assert_eq!(tested, registered.as_slice(), "tests and registry differ");
            let dir = Config::crate_dir();
            let manifest = std::fs::read_to_string(dir.join("cargo-fuzz/Cargo.toml"))
                .unwrap_or_else(|e| panic!("cargo-fuzz/Cargo.toml: {e}"));
            for name in tested {
                assert!(dir.join("corpus").join(name).is_dir(), "no corpus for {name}");
                let binary = dir.join("fuzz_targets").join(format!("{name}.rs"));
                let source = std::fs::read_to_string(&binary)
                    .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
                assert!(source.contains(&format!("{name}::{name}(")), "{} calls another target", binary.display());
                assert!(
                    manifest.contains(&format!("name = \"{name}\"")),
                    "cargo-fuzz/Cargo.toml has no [[bin]] {name}"
                );
            }
        }
    };
}

fuzz_tests!(
    routeros_text,
    routeros_json,
    routeros_colon,
    routeros_classify,
    routeros_commands,
    sysfs_attrs,
    sysfs_tree,
    nqn,
    mountinfo,
    mount_options,
    kubelet_path,
    blkid,
    csi_ids,
    csi_params,
    csi_volume_context,
    csi_capacity,
);
