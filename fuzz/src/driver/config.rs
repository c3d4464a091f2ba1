//! How a stable fuzz run is configured: the time budget and seed come from the environment, the
//! rest are fixed limits.
//!
//! - `RDS_FUZZ_SECONDS`: seconds per target (default 8, so every target fits in CI in about two
//!   minutes; 60 is the intended deeper run).
//! - `RDS_FUZZ_SEED`: the seed (decimal or `0x` hex); printed at start so a failure reproduces.
//! - `RDS_FUZZ_REPLAY`: a file to run alone (an artifact or corpus entry) instead of fuzzing; only
//!   the target whose name is a component of the path runs it.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Seconds per target when `RDS_FUZZ_SECONDS` is not set.
pub const DEFAULT_SECONDS: f64 = 8.0;
/// Seed when `RDS_FUZZ_SEED` is not set.
pub const DEFAULT_SEED: u64 = 0x0009_5EED_0DD5_F022;
/// One input taking longer than this is a hang.
pub const HANG_LIMIT: Duration = Duration::from_secs(1);
/// An input still running after this long is abandoned and reported as a hang.
pub const STUCK_LIMIT: Duration = Duration::from_secs(20);
/// Longest input generated or accepted (256 KiB).
pub const MAX_INPUT_LEN: usize = 256 * 1024;
/// Largest growth of the resident set allowed during one target's run.
pub const RSS_LIMIT_KIB: u64 = 512 * 1024;

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Time budget per target (seeds included).
    pub budget: Duration,
    /// Seed of the mutation sequence (each target mixes in its name).
    pub seed: u64,
    /// Per-input time limit.
    pub hang_limit: Duration,
    /// When the watchdog gives up on an input.
    pub stuck_limit: Duration,
    /// Longest input.
    pub max_len: usize,
    /// Largest RSS growth, in KiB.
    pub rss_limit_kib: u64,
    /// `corpus/`: one directory of seeds per target.
    pub corpus_root: PathBuf,
    /// `artifacts/`: where findings are written.
    pub artifacts_root: PathBuf,
    /// A single input to replay instead of fuzzing.
    pub replay: Option<PathBuf>,
}

impl Config {
    /// The crate's own directory (holds `corpus/` and `artifacts/`).
    pub fn crate_dir() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    /// Settings from the process environment.
    pub fn from_env() -> Result<Config, String> {
        Config::from_vars(|name| std::env::var(name).ok())
    }

    /// Settings from `var` (a lookup of environment variables).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let seconds = match var("RDS_FUZZ_SECONDS") {
            None => DEFAULT_SECONDS,
            Some(text) => match text.trim().parse::<f64>() {
                Ok(s) if (0.0..=86_400.0).contains(&s) => s,
                _ => {
                    return Err(format!(
                        "RDS_FUZZ_SECONDS={text:?} is not a number of seconds"
                    ));
                }
            },
        };
        let seed = match var("RDS_FUZZ_SEED") {
            None => DEFAULT_SEED,
            Some(text) => parse_seed(&text)
                .ok_or_else(|| format!("RDS_FUZZ_SEED={text:?} is not a decimal or 0x number"))?,
        };
        let dir = Config::crate_dir();
        Ok(Config {
            budget: Duration::from_secs_f64(seconds),
            seed,
            hang_limit: HANG_LIMIT,
            stuck_limit: STUCK_LIMIT,
            max_len: MAX_INPUT_LEN,
            rss_limit_kib: RSS_LIMIT_KIB,
            corpus_root: dir.join("corpus"),
            artifacts_root: dir.join("artifacts"),
            replay: var("RDS_FUZZ_REPLAY")
                .filter(|p| !p.is_empty())
                .map(|p| replay_path(dir, PathBuf::from(p))),
        })
    }
}

/// A relative replay path is taken from the workspace root (where the README's commands run),
/// since `cargo test` runs the test binary inside `fuzz/`; one that exists as given is kept.
fn replay_path(crate_dir: &std::path::Path, given: PathBuf) -> PathBuf {
    if given.is_absolute() || given.exists() {
        return given;
    }
    match crate_dir.parent() {
        Some(root) if root.join(&given).exists() => root.join(given),
        _ => given,
    }
}

/// Parses `123` or `0x7b`.
pub fn parse_seed(text: &str) -> Option<u64> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16).ok(),
        None => t.replace('_', "").parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::from_vars(|_| None).unwrap();
        assert_eq!(c.budget, Duration::from_secs(8));
        assert_eq!(c.seed, DEFAULT_SEED);
        assert!(c.replay.is_none());
        let c = Config::from_vars(|n| match n {
            "RDS_FUZZ_SECONDS" => Some("60".into()),
            "RDS_FUZZ_SEED" => Some("0xff".into()),
            "RDS_FUZZ_REPLAY" => Some("artifacts/x/crash-1".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.budget, Duration::from_secs(60));
        assert_eq!(c.seed, 255);
        assert_eq!(c.replay, Some(PathBuf::from("artifacts/x/crash-1")));
    }

    #[test]
    fn bad_values_are_errors_not_defaults() {
        for (name, value) in [
            ("RDS_FUZZ_SECONDS", "soon"),
            ("RDS_FUZZ_SECONDS", "-1"),
            ("RDS_FUZZ_SEED", "0xzz"),
        ] {
            let got = Config::from_vars(|n| (n == name).then(|| value.to_string()));
            assert!(got.is_err(), "{name}={value}");
        }
        assert_eq!(parse_seed("1_000"), Some(1000));
    }
}
