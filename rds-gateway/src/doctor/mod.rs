//! `rds-gateway doctor`: a preflight that walks the path the gateway takes to the RDS one step at
//! a time and says, for each step, what it saw and — when the step fails — what to change.
//!
//! The checks, in order (a check whose prerequisite did not pass is skipped):
//! 1. `address`: the TCP connection (a refusal, a timeout and a name that does not resolve are
//!    told apart);
//! 2. `host-key`: the SHA256 fingerprint of the key the RDS presents, against `--rds-host-key`;
//! 3. `auth`: the client key file and the public-key login;
//! 4. `routeros-version`: the version, and whether `:serialize to=json` exists (7.13+) or the
//!    gateway falls back to reading text;
//! 5. `user-rights`: a harmless read the driver relies on (`/disk print` of the managed slots);
//! 6. `base-path`: the volume base path is a directory on the RDS;
//! 7. `free-space`: the pool has at least `--min-free` free.
//!
//! It connects through the transport's own steps ([`crate::ssh::connect_tcp`],
//! [`crate::ssh::Handshake`]) and runs the gateway's typed commands through its own executor, so
//! what passes here is what the gateway does. The pieces: [`report`] (results and their text and
//! JSON forms), [`connect`] (checks 1–3), [`checks`] (checks 4–7), [`runner`] (the executor's
//! runner over the doctor's session), [`rights`] (refusals and the policies they call for).

pub mod checks;
pub mod connect;
pub mod report;
pub mod rights;
pub mod runner;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::routeros::size::Bytes;
use crate::ssh::HostKeyPin;
use crate::ssh::config::DEFAULT_CONNECT_TIMEOUT;

pub use report::{CheckId, CheckResult, Report, Status};

/// Default bound of a whole doctor run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default least free space of the pool (1 GiB).
pub const DEFAULT_MIN_FREE: Bytes = Bytes::new(1 << 30);

/// What `--rds-host-key` / `--rds-insecure-skip-host-key-check` say.
#[derive(Debug, Clone)]
pub enum HostKeySetting {
    /// A pin that parsed.
    Pinned(HostKeyPin),
    /// A `--rds-host-key` value that cannot be used, and why.
    Invalid(String),
    /// Neither flag: nothing is pinned.
    Missing,
    /// `--rds-insecure-skip-host-key-check`.
    InsecureSkip,
}

/// Everything the doctor checks against: the gateway's own RDS settings, unvalidated (a bad
/// value is a failed check with a fix, not a start-up error), plus the doctor's limits.
#[derive(Debug, Clone)]
pub struct DoctorSettings {
    /// `--rds-address`.
    pub address: Option<String>,
    /// `--rds-port`.
    pub port: u16,
    /// `--rds-user`.
    pub user: String,
    /// `--rds-console-options`.
    pub console_options: String,
    /// `--rds-key-file`.
    pub key_file: Option<PathBuf>,
    /// The host-key flags.
    pub host_key: HostKeySetting,
    /// `--rds-volume-base-path`.
    pub base_path: String,
    /// `--managed-slot-prefix` (the first one is read by the rights check).
    pub prefixes: Vec<String>,
    /// Bound of the TCP connect, of the handshake and of the login, each.
    pub connect_timeout: Duration,
    /// `--rds-command-timeout`: bound of each RouterOS command.
    pub command_timeout: Duration,
    /// `--rds-max-command-timeout`.
    pub max_command_timeout: Duration,
    /// `--timeout`: bound of the whole run.
    pub timeout: Duration,
    /// `--min-free`: least free space of the pool.
    pub min_free: Bytes,
}

impl DoctorSettings {
    /// Settings for `address` with the gateway's defaults.
    pub fn new(address: Option<String>) -> Self {
        DoctorSettings {
            address,
            port: crate::ssh::config::DEFAULT_PORT,
            user: crate::ssh::config::DEFAULT_USER.to_owned(),
            console_options: crate::ssh::config::DEFAULT_CONSOLE_OPTIONS.to_owned(),
            key_file: None,
            host_key: HostKeySetting::Missing,
            base_path: "storage-pool/kubernetes-volumes".to_owned(),
            prefixes: vec!["pvc-".to_owned()],
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: crate::ssh::config::DEFAULT_COMMAND_TIMEOUT,
            max_command_timeout: crate::ssh::config::DEFAULT_MAX_COMMAND_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            min_free: DEFAULT_MIN_FREE,
        }
    }
}

/// How long one step may take, and which setting decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The time allowed.
    pub after: Duration,
    /// The setting that bounds it (`--timeout` when the run's budget is the tighter bound).
    pub by: &'static str,
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rounded =
            Duration::from_millis(u64::try_from(self.after.as_millis()).unwrap_or(u64::MAX));
        write!(f, "{rounded:?} ({})", self.by)
    }
}

/// The time left for the whole run (`--timeout`).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    deadline: Instant,
}

impl Budget {
    /// A budget of `total` from now.
    pub fn new(total: Duration) -> Self {
        let now = Instant::now();
        Budget {
            deadline: now.checked_add(total).unwrap_or(now),
        }
    }

    /// The limit of a step bounded by `cap` (named `by`) and by what is left of the run.
    pub fn limit(&self, cap: Duration, by: &'static str) -> Limit {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left < cap {
            Limit {
                after: left,
                by: "--timeout",
            }
        } else {
            Limit { after: cap, by }
        }
    }
}

/// Records a skipped `check` (its prerequisite did not pass) and gives nothing to go on with.
fn skip<T>(report: &mut Report, check: CheckId) -> Option<T> {
    let why = match check.needs() {
        Some(dep) => format!("not run: {} did not pass", dep.name()),
        None => "not run".to_owned(),
    };
    report.push(CheckResult::skip(check, why));
    None
}

/// Records a skip for every check not in the report yet.
fn finish(report: &mut Report) {
    for check in CheckId::ALL {
        if report.status(check).is_none() {
            skip::<()>(report, check);
        }
    }
}

/// Records a check's result and passes on what the next check needs.
fn record<T>(report: &mut Report, (result, next): (CheckResult, Option<T>)) -> Option<T> {
    report.push(result);
    next
}

/// Runs every check in order within `settings.timeout` and returns the report.
pub async fn run(settings: &DoctorSettings) -> Report {
    let budget = Budget::new(settings.timeout);
    let mut report = Report::new();
    let stream = record(&mut report, connect::address(settings, &budget).await);
    let handshake = match stream {
        Some(stream) => record(
            &mut report,
            connect::host_key(settings, &budget, stream).await,
        ),
        None => skip(&mut report, CheckId::HostKey),
    };
    let session = match handshake {
        Some(handshake) => record(
            &mut report,
            connect::auth(settings, &budget, handshake).await,
        ),
        None => skip(&mut report, CheckId::Auth),
    };
    if let Some(session) = session {
        checks::run(settings, &budget, Box::new(session), &mut report).await;
    }
    finish(&mut report);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_budget_bounds_every_step() {
        let roomy = Budget::new(Duration::from_secs(3600));
        assert_eq!(
            roomy.limit(Duration::from_secs(5), "--rds-command-timeout"),
            Limit {
                after: Duration::from_secs(5),
                by: "--rds-command-timeout"
            }
        );
        let tight = Budget::new(Duration::from_millis(100));
        let limit = tight.limit(Duration::from_secs(5), "--rds-command-timeout");
        assert_eq!(limit.by, "--timeout");
        assert!(limit.after <= Duration::from_millis(100));
        let spent = Budget::new(Duration::ZERO);
        assert_eq!(
            spent.limit(Duration::from_secs(1), "x").after,
            Duration::ZERO
        );
        let shown = Limit {
            after: Duration::from_micros(1_500_700),
            by: "--timeout",
        }
        .to_string();
        assert_eq!(shown, "1.5s (--timeout)");
    }

    #[tokio::test]
    async fn without_an_address_only_the_first_check_runs_and_it_says_what_to_set() {
        let report = run(&DoctorSettings::new(None)).await;
        let results = report.results();
        assert_eq!(results.len(), CheckId::ALL.len());
        assert_eq!(results[0].status, Status::Fail);
        assert!(
            results[0]
                .fix
                .as_deref()
                .unwrap_or("")
                .contains("--rds-address")
        );
        for (r, id) in results.iter().zip(CheckId::ALL).skip(1) {
            assert_eq!(r.check, id);
            assert_eq!(r.status, Status::Skip, "{r:?}");
        }
        assert!(!report.all_passed());
    }
}
