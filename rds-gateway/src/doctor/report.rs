//! The doctor's report: one result per check, in the order the checks ran, and its two
//! renderings. Text is for the person at the terminal — one line `PASS|FAIL|SKIP <check>: <seen>`
//! per check, an indented `fix: ...` line under each failure, and a closing summary. JSON is for
//! scripts — one object per check per line.
//!
//! Everything shown is squeezed onto one line here (RouterOS output quoted in a result may hold
//! line breaks or control characters), so a reader or a `grep` can rely on the layout.

use std::fmt::Write as _;

use serde::Serialize;

/// The checks, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    /// TCP connection to `--rds-address`:`--rds-port`.
    Address,
    /// The host key the RDS presents, against `--rds-host-key`.
    HostKey,
    /// The client key and the public-key login.
    Auth,
    /// The RouterOS version and whether `:serialize to=json` exists.
    RouterosVersion,
    /// A harmless read the driver relies on.
    UserRights,
    /// The volume base path exists as a directory.
    BasePath,
    /// The pool's free space.
    FreeSpace,
}

impl CheckId {
    /// Every check, in the order they run.
    pub const ALL: [CheckId; 7] = [
        CheckId::Address,
        CheckId::HostKey,
        CheckId::Auth,
        CheckId::RouterosVersion,
        CheckId::UserRights,
        CheckId::BasePath,
        CheckId::FreeSpace,
    ];

    /// The name shown in the report.
    pub fn name(self) -> &'static str {
        match self {
            CheckId::Address => "address",
            CheckId::HostKey => "host-key",
            CheckId::Auth => "auth",
            CheckId::RouterosVersion => "routeros-version",
            CheckId::UserRights => "user-rights",
            CheckId::BasePath => "base-path",
            CheckId::FreeSpace => "free-space",
        }
    }

    /// The check that must pass before this one can run (none for the first).
    pub fn needs(self) -> Option<CheckId> {
        match self {
            CheckId::Address => None,
            CheckId::HostKey => Some(CheckId::Address),
            CheckId::Auth => Some(CheckId::HostKey),
            CheckId::RouterosVersion => Some(CheckId::Auth),
            CheckId::UserRights => Some(CheckId::RouterosVersion),
            // Free space is worth knowing even when the base directory is missing.
            CheckId::BasePath | CheckId::FreeSpace => Some(CheckId::UserRights),
        }
    }
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It passed.
    Pass,
    /// It failed; the result says how to fix it.
    Fail,
    /// It did not run (a check it needs did not pass).
    Skip,
}

impl Status {
    /// The word that starts the check's line.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// Longest text kept for `seen` or `fix` (a quoted RouterOS answer can be long).
const TEXT_LIMIT: usize = 1000;

/// `text` on one line: control characters become spaces, runs of white space one space, and
/// anything past [`TEXT_LIMIT`] characters is cut with an ellipsis.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(TEXT_LIMIT));
    let mut count = 0usize;
    for word in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
            count += 1;
        }
        for c in word.chars() {
            if count >= TEXT_LIMIT {
                out.push('…');
                return out;
            }
            out.push(c);
            count += 1;
        }
    }
    out
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Which check.
    pub check: CheckId,
    /// How it ended.
    pub status: Status,
    /// What the check saw (for a skip: why it did not run).
    pub seen: String,
    /// For a failure: what to change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl CheckResult {
    /// A pass.
    pub fn pass(check: CheckId, seen: impl Into<String>) -> Self {
        CheckResult {
            check,
            status: Status::Pass,
            seen: one_line(&seen.into()),
            fix: None,
        }
    }

    /// A failure and its fix.
    pub fn fail(check: CheckId, seen: impl Into<String>, fix: impl Into<String>) -> Self {
        CheckResult {
            check,
            status: Status::Fail,
            seen: one_line(&seen.into()),
            fix: Some(one_line(&fix.into())),
        }
    }

    /// A check that did not run, and why.
    pub fn skip(check: CheckId, why: impl Into<String>) -> Self {
        CheckResult {
            check,
            status: Status::Skip,
            seen: one_line(&why.into()),
            fix: None,
        }
    }
}

/// Every result of one doctor run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    results: Vec<CheckResult>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Report::default()
    }

    /// Adds a result.
    pub fn push(&mut self, result: CheckResult) {
        self.results.push(result);
    }

    /// The results, in the order the checks ran.
    pub fn results(&self) -> &[CheckResult] {
        &self.results
    }

    /// How `check` ended, if it is in the report.
    pub fn status(&self, check: CheckId) -> Option<Status> {
        self.results
            .iter()
            .find(|r| r.check == check)
            .map(|r| r.status)
    }

    /// True when there is at least one result and every one passed (what the exit status says).
    pub fn all_passed(&self) -> bool {
        !self.results.is_empty() && self.results.iter().all(|r| r.status == Status::Pass)
    }

    fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }

    /// The text rendering: one line per check, `  fix: ...` under failures, then a summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for r in &self.results {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{} {}: {}", r.status.label(), r.check.name(), r.seen);
            if let Some(fix) = &r.fix {
                let _ = writeln!(out, "  fix: {fix}");
            }
        }
        let _ = writeln!(
            out,
            "{} passed, {} failed, {} skipped",
            self.count(Status::Pass),
            self.count(Status::Fail),
            self.count(Status::Skip)
        );
        out
    }

    /// The JSON rendering: one object per check per line (`check`, `status`, `seen`, and `fix`
    /// on failures).
    pub fn to_json_lines(&self) -> String {
        let mut out = String::new();
        for r in &self.results {
            match serde_json::to_string(r) {
                Ok(line) => {
                    out.push_str(&line);
                    out.push('\n');
                }
                // Plain strings and enums always serialize; keep the line count honest anyway.
                Err(e) => {
                    let _ = writeln!(
                        out,
                        "{{\"check\":\"{}\",\"status\":\"fail\",\"seen\":\"cannot render: {}\"}}",
                        r.check.name(),
                        one_line(&e.to_string()).replace(['"', '\\'], "'")
                    );
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sample() -> Report {
        let mut r = Report::new();
        r.push(CheckResult::pass(
            CheckId::Address,
            "10.0.0.5:22 accepts TCP connections",
        ));
        r.push(CheckResult::fail(
            CheckId::HostKey,
            "host key mismatch:\nthe RDS presented SHA256:new",
            "update --rds-host-key",
        ));
        r.push(CheckResult::skip(CheckId::Auth, "host-key did not pass"));
        r
    }

    #[test]
    fn text_has_one_line_per_check_a_fix_under_failures_and_a_summary() {
        let text = sample().to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "PASS address: 10.0.0.5:22 accepts TCP connections",
                "FAIL host-key: host key mismatch: the RDS presented SHA256:new",
                "  fix: update --rds-host-key",
                "SKIP auth: host-key did not pass",
                "1 passed, 1 failed, 1 skipped",
            ]
        );
    }

    #[test]
    fn json_has_one_object_per_check() {
        let json = sample().to_json_lines();
        let objects: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(objects.len(), 3);
        assert_eq!(objects[0]["check"], "address");
        assert_eq!(objects[0]["status"], "pass");
        assert!(objects[0].get("fix").is_none());
        assert_eq!(objects[1]["check"], "host-key");
        assert_eq!(objects[1]["status"], "fail");
        assert_eq!(objects[1]["fix"], "update --rds-host-key");
        assert_eq!(objects[2]["status"], "skip");
        let names: Vec<String> = CheckId::ALL
            .iter()
            .map(|c| {
                serde_json::to_value(c)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let shown: Vec<&str> = CheckId::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names, shown, "JSON and text name checks alike");
    }

    #[test]
    fn exit_status_follows_every_result() {
        assert!(
            !Report::new().all_passed(),
            "an empty report proves nothing"
        );
        let mut r = Report::new();
        r.push(CheckResult::pass(CheckId::Address, "ok"));
        assert!(r.all_passed());
        r.push(CheckResult::skip(CheckId::HostKey, "x"));
        assert!(!r.all_passed(), "a skipped check is not a pass");
        assert!(!sample().all_passed());
        assert_eq!(sample().status(CheckId::HostKey), Some(Status::Fail));
        assert_eq!(sample().status(CheckId::FreeSpace), None);
    }

    #[test]
    fn text_is_squeezed_onto_one_line_and_bounded() {
        assert_eq!(one_line("  a\r\n  b\tc\u{1b}[0m d  "), "a b c [0m d");
        assert_eq!(one_line(""), "");
        let long = "x".repeat(TEXT_LIMIT + 50);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), TEXT_LIMIT + 1);
        assert!(cut.ends_with('…'));
        let r = CheckResult::fail(CheckId::Auth, "a\nb", "c\n\nd");
        assert_eq!((r.seen.as_str(), r.fix.as_deref()), ("a b", Some("c d")));
    }

    #[test]
    fn every_check_but_the_first_needs_an_earlier_one() {
        for (i, check) in CheckId::ALL.iter().enumerate() {
            match check.needs() {
                None => assert_eq!(i, 0),
                Some(dep) => {
                    let at = CheckId::ALL.iter().position(|c| *c == dep).unwrap();
                    assert!(at < i, "{check:?} needs the later {dep:?}");
                }
            }
        }
    }
}
