//! Runs one target: seeds first, then mutations until the time budget is spent or a finding
//! stops the run.
//!
//! The inputs run on a worker thread. Each one runs inside `catch_unwind` (a panic is a finding,
//! its message and stack captured) and is timed (over [`Config::hang_limit`] twice in a row is a
//! hang: a slow first run is repeated so that a busy machine is not blamed on the input). The
//! calling thread is a watchdog: it sees the input in flight and, when one runs past
//! [`Config::stuck_limit`], saves it and reports a hang without waiting for it. The resident set
//! is sampled as the run goes; growth past [`Config::rss_limit_kib`] is a finding too.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::capture::Capturing;
use super::config::Config;
use super::corpus::{self, Seed};
use super::distinct::DistinctCounter;
use super::mutator::Mutator;
use super::rng::fnv1a;
use super::rss::vm_rss_kib;
use crate::targets::Target;

/// How often (in executions) the resident set is sampled.
const RSS_EVERY: u64 = 2048;
/// How many recent mutants are kept to splice from.
const RECENT: usize = 64;

/// What one run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Target name.
    pub target: &'static str,
    /// Seed files run.
    pub seeds: usize,
    /// Inputs executed (seeds included).
    pub executions: u64,
    /// Distinct inputs executed (estimated).
    pub distinct: u64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Inputs that panicked or hung (the run stops at the first).
    pub crashes: u64,
    /// The slowest single input.
    pub slowest: Duration,
    /// Growth of the resident set over the run, in KiB.
    pub rss_growth_kib: u64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = if self.seconds > 0.0 {
            self.executions as f64 / self.seconds
        } else {
            0.0
        };
        write!(
            f,
            "{:<20} executions {:>9}  distinct {:>9}  seconds {:>6.1}  crashes {}  ({:.0}/s, {} seeds, slowest {:.1} ms, rss +{} KiB)",
            self.target,
            self.executions,
            self.distinct,
            self.seconds,
            self.crashes,
            rate,
            self.seeds,
            self.slowest.as_secs_f64() * 1000.0,
            self.rss_growth_kib
        )
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindingKind {
    /// The target panicked: message, location and stack.
    Panic(String),
    /// One input took longer than the hang limit (it did finish).
    Hang(Duration),
    /// One input was still running when the watchdog gave up.
    Stuck(Duration),
    /// The resident set grew past the limit.
    Memory {
        /// Growth in KiB.
        growth_kib: u64,
    },
}

/// A finding and the input that caused it.
#[derive(Debug, Clone)]
pub struct Finding {
    /// What went wrong.
    pub kind: FindingKind,
    /// The input (for memory growth: the last input run).
    pub input: Vec<u8>,
    /// Where the input was saved.
    pub artifact: Option<PathBuf>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FindingKind::Panic(text) => writeln!(f, "PANIC: {text}")?,
            FindingKind::Hang(t) => writeln!(f, "HANG: one input took {:.2} s", t.as_secs_f64())?,
            FindingKind::Stuck(t) => writeln!(
                f,
                "HANG: one input was still running after {:.1} s (abandoned)",
                t.as_secs_f64()
            )?,
            FindingKind::Memory { growth_kib } => writeln!(
                f,
                "MEMORY: resident set grew by {growth_kib} KiB (last input below)"
            )?,
        }
        writeln!(f, "input ({} bytes):", self.input.len())?;
        writeln!(f, "  escaped: {}", corpus::escaped(&self.input, 4096))?;
        writeln!(f, "  hex:     {}", corpus::hex(&self.input, 2048))?;
        match &self.artifact {
            Some(p) => writeln!(
                f,
                "saved to {} (replay: RDS_FUZZ_REPLAY={} cargo test -p rds-csi-fuzz)",
                p.display(),
                p.display()
            ),
            None => writeln!(f, "(could not save the input)"),
        }
    }
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Counters.
    pub report: Report,
    /// The first finding, if any.
    pub finding: Option<Finding>,
}

/// What the worker and the watchdog share.
struct InFlight {
    /// The input being run.
    input: Mutex<Vec<u8>>,
    /// When it started, in nanoseconds since `epoch` plus one; 0 when idle.
    started: AtomicU64,
    epoch: Instant,
}

impl InFlight {
    fn now_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

struct Worker {
    target: Target,
    config: Config,
    in_flight: Arc<InFlight>,
    deadline: Instant,
    report: Report,
    distinct: DistinctCounter,
    rss_base: Option<u64>,
    capture: Capturing,
}

impl Worker {
    /// Runs one input; returns a finding when it panicked or hung.
    fn exec(&mut self, input: &[u8]) -> Option<Finding> {
        if let Ok(mut slot) = self.in_flight.input.lock() {
            slot.clear();
            slot.extend_from_slice(input);
        }
        self.in_flight
            .started
            .store(self.in_flight.now_nanos() + 1, Ordering::SeqCst);
        let run = self.target.run;
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| run(input)));
        let elapsed = start.elapsed();
        self.in_flight.started.store(0, Ordering::SeqCst);
        self.report.executions += 1;
        self.distinct.insert(fnv1a(input));
        let kind = match result {
            Err(_) => FindingKind::Panic(
                self.capture
                    .take()
                    .unwrap_or_else(|| "panic without a message".to_owned()),
            ),
            Ok(()) if elapsed > self.config.hang_limit => {
                // Time it again so that a busy machine is not taken for a slow input.
                let again = Instant::now();
                let second = catch_unwind(AssertUnwindSafe(|| run(input)));
                let elapsed_again = again.elapsed();
                self.report.slowest = self.report.slowest.max(elapsed.min(elapsed_again));
                match second {
                    Err(_) => FindingKind::Panic(
                        self.capture
                            .take()
                            .unwrap_or_else(|| "panic without a message".to_owned()),
                    ),
                    Ok(()) if elapsed_again > self.config.hang_limit => {
                        FindingKind::Hang(elapsed.min(elapsed_again))
                    }
                    Ok(()) => return None,
                }
            }
            Ok(()) => {
                self.report.slowest = self.report.slowest.max(elapsed);
                if self.report.executions.is_multiple_of(RSS_EVERY) {
                    return self.check_rss(input);
                }
                return None;
            }
        };
        Some(self.finding(kind, input))
    }

    fn check_rss(&mut self, input: &[u8]) -> Option<Finding> {
        let (Some(base), Some(now)) = (self.rss_base, vm_rss_kib()) else {
            return None;
        };
        let growth = now.saturating_sub(base);
        self.report.rss_growth_kib = self.report.rss_growth_kib.max(growth);
        (growth > self.config.rss_limit_kib)
            .then(|| self.finding(FindingKind::Memory { growth_kib: growth }, input))
    }

    fn finding(&mut self, kind: FindingKind, input: &[u8]) -> Finding {
        self.report.crashes += 1;
        Finding {
            kind,
            input: input.to_vec(),
            artifact: corpus::save_artifact(&self.config.artifacts_root, self.target.name, input)
                .ok(),
        }
    }

    fn fuzz(&mut self, seeds: &[Seed]) -> Option<Finding> {
        for seed in seeds {
            if let Some(f) = self.exec(&seed.data) {
                return Some(f);
            }
        }
        if self.config.replay.is_some() {
            return None;
        }
        let pool: Vec<Vec<u8>> = seeds.iter().map(|s| s.data.clone()).collect();
        let seed = self.config.seed ^ fnv1a(self.target.name.as_bytes());
        let mut mutator = Mutator::new(seed, self.target.dictionary, self.config.max_len);
        let mut recent: Vec<Vec<u8>> = Vec::with_capacity(RECENT);
        let mut current: Vec<u8> = Vec::new();
        let mut next_recent = 0usize;
        while Instant::now() < self.deadline {
            let rng = mutator.rng();
            if current.is_empty() || rng.one_in(4) || current.len() > self.config.max_len / 2 {
                current = if rng.one_in(5) && !recent.is_empty() {
                    rng.pick(&recent).cloned().unwrap_or_default()
                } else {
                    rng.pick(&pool).cloned().unwrap_or_default()
                };
            }
            let others = if mutator.rng().one_in(3) && !recent.is_empty() {
                &recent
            } else {
                &pool
            };
            mutator.mutate(&mut current, others);
            if let Some(f) = self.exec(&current) {
                return Some(f);
            }
            if current.len() <= 4096 {
                if recent.len() < RECENT {
                    recent.push(current.clone());
                } else {
                    recent[next_recent % RECENT].clone_from(&current);
                    next_recent += 1;
                }
            }
        }
        self.check_rss(&current)
    }
}

/// Runs `target` under `config`. `Err` means the run could not start (no seeds, no thread).
pub fn run(target: Target, config: &Config) -> Result<Outcome, String> {
    let seeds = match &config.replay {
        Some(path) => {
            let mut data = std::fs::read(path)
                .map_err(|e| format!("cannot read replay input {}: {e}", path.display()))?;
            data.truncate(config.max_len);
            vec![Seed {
                name: path.display().to_string(),
                data,
            }]
        }
        None => {
            let dir = config.corpus_root.join(target.name);
            corpus::load(&dir, config.max_len)
                .map_err(|e| format!("cannot load the seed corpus {}: {e}", dir.display()))?
        }
    };
    let started = Instant::now();
    let in_flight = Arc::new(InFlight {
        input: Mutex::new(Vec::new()),
        started: AtomicU64::new(0),
        epoch: started,
    });
    let (done_tx, done_rx) = mpsc::channel();
    let worker_config = config.clone();
    let worker_in_flight = Arc::clone(&in_flight);
    let deadline = started + config.budget;
    let seed_count = seeds.len();
    thread::Builder::new()
        .name(format!("fuzz-{}", target.name))
        .spawn(move || {
            let mut worker = Worker {
                target,
                config: worker_config,
                in_flight: worker_in_flight,
                deadline,
                report: Report {
                    target: target.name,
                    seeds: seed_count,
                    ..Report::default()
                },
                distinct: DistinctCounter::new(),
                rss_base: None,
                capture: Capturing::start(),
            };
            worker.rss_base = vm_rss_kib();
            let finding = worker.fuzz(&seeds);
            worker.report.distinct = worker.distinct.estimate();
            let _ = done_tx.send((worker.report, finding));
        })
        .map_err(|e| format!("cannot start the fuzzing thread: {e}"))?;

    loop {
        match done_rx.recv_timeout(Duration::from_millis(100)) {
            Ok((mut report, finding)) => {
                report.seconds = started.elapsed().as_secs_f64();
                if let Some(teardown) = target.teardown {
                    teardown();
                }
                return Ok(Outcome { report, finding });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("the fuzzing thread ended without a report".to_owned());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let since = in_flight.started.load(Ordering::SeqCst);
                if since == 0 {
                    continue;
                }
                let running = Duration::from_nanos(in_flight.now_nanos().saturating_sub(since - 1));
                if running < config.stuck_limit {
                    continue;
                }
                let input = in_flight
                    .input
                    .lock()
                    .map(|i| i.clone())
                    .unwrap_or_default();
                let artifact =
                    corpus::save_artifact(&config.artifacts_root, target.name, &input).ok();
                let report = Report {
                    target: target.name,
                    seeds: seed_count,
                    crashes: 1,
                    seconds: started.elapsed().as_secs_f64(),
                    slowest: running,
                    ..Report::default()
                };
                return Ok(Outcome {
                    report,
                    finding: Some(Finding {
                        kind: FindingKind::Stuck(running),
                        input,
                        artifact,
                    }),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::fs;

    fn config(dir: &std::path::Path, seconds: f64) -> Config {
        let mut c = Config::from_vars(|_| None).unwrap();
        c.budget = Duration::from_secs_f64(seconds);
        c.corpus_root = dir.join("corpus");
        c.artifacts_root = dir.join("artifacts");
        c.hang_limit = Duration::from_millis(300);
        c.stuck_limit = Duration::from_secs(2);
        c
    }

    fn with_seed(dir: &std::path::Path, name: &str, seed: &[u8]) {
        let d = dir.join("corpus").join(name);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("seed"), seed).unwrap();
    }

    fn target(name: &'static str, run: fn(&[u8])) -> Target {
        Target {
            name,
            run,
            dictionary: &[b"BOOM"],
            teardown: None,
        }
    }

    #[test]
    fn a_quiet_target_runs_for_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        with_seed(dir.path(), "quiet", b"abc");
        let out = run(
            target("quiet", |d| assert!(d.len() <= 256 * 1024)),
            &config(dir.path(), 0.3),
        )
        .unwrap();
        assert!(out.finding.is_none(), "{:?}", out.finding);
        assert!(out.report.executions > 100, "{}", out.report);
        assert!(out.report.distinct > 10, "{}", out.report);
        assert!(out.report.seconds >= 0.3);
        assert_eq!(out.report.crashes, 0);
    }

    #[test]
    fn a_panic_is_caught_saved_and_reported_with_its_input() {
        let dir = tempfile::tempdir().unwrap();
        with_seed(dir.path(), "panicky", b"hello");
        let out = run(
            target("panicky", |d| {
                if d.windows(4).any(|w| w == b"BOOM") {
                    panic!("found the token");
                }
            }),
            &config(dir.path(), 20.0),
        )
        .unwrap();
        let finding = out.finding.expect("the token is in the dictionary");
        assert!(matches!(&finding.kind, FindingKind::Panic(m) if m.contains("found the token")));
        assert!(finding.input.windows(4).any(|w| w == b"BOOM"));
        let saved = fs::read(finding.artifact.as_ref().unwrap()).unwrap();
        assert_eq!(saved, finding.input);
        assert_eq!(out.report.crashes, 1);
        assert!(out.report.seconds < 20.0, "stops at the first finding");
        let text = finding.to_string();
        assert!(text.contains("PANIC") && text.contains("hex:"), "{text}");
    }

    #[test]
    fn a_slow_input_is_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        with_seed(dir.path(), "slow", b"slow");
        let out = run(
            target("slow", |d| {
                if d == b"slow" {
                    thread::sleep(Duration::from_millis(400));
                }
            }),
            &config(dir.path(), 1.0),
        )
        .unwrap();
        let finding = out.finding.unwrap();
        assert!(matches!(finding.kind, FindingKind::Hang(t) if t >= Duration::from_millis(400)));
        assert_eq!(finding.input, b"slow");
    }

    #[test]
    fn an_input_slow_only_once_is_not_a_hang() {
        use std::sync::atomic::AtomicBool;
        static SLEPT: AtomicBool = AtomicBool::new(false);
        let dir = tempfile::tempdir().unwrap();
        with_seed(dir.path(), "hiccup", b"once");
        let out = run(
            target("hiccup", |d| {
                if d == b"once" && !SLEPT.swap(true, Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(400));
                }
            }),
            &config(dir.path(), 0.5),
        )
        .unwrap();
        assert!(SLEPT.load(Ordering::SeqCst));
        assert!(out.finding.is_none(), "{:?}", out.finding);
    }

    #[test]
    fn a_stuck_input_is_abandoned_by_the_watchdog() {
        let dir = tempfile::tempdir().unwrap();
        with_seed(dir.path(), "stuck", b"forever");
        let started = Instant::now();
        let out = run(
            target("stuck", |d| {
                if d == b"forever" {
                    thread::sleep(Duration::from_secs(30));
                }
            }),
            &config(dir.path(), 1.0),
        )
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        let finding = out.finding.unwrap();
        assert!(matches!(finding.kind, FindingKind::Stuck(_)));
        assert_eq!(finding.input, b"forever");
        assert!(finding.artifact.unwrap().exists());
    }

    #[test]
    fn replay_runs_only_the_given_input() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("crash-1");
        fs::write(&input, b"only this").unwrap();
        let mut c = config(dir.path(), 5.0);
        c.replay = Some(input);
        let out = run(target("replay", |d| assert_eq!(d, b"only this")), &c).unwrap();
        assert!(out.finding.is_none());
        assert_eq!(out.report.executions, 1);
    }

    #[test]
    fn a_target_without_seeds_does_not_start() {
        let dir = tempfile::tempdir().unwrap();
        assert!(run(target("none", |_| {}), &config(dir.path(), 0.1)).is_err());
    }
}
