//! The sweep's counts: cases sent, answers per code, wrong answers, and how many cases reached
//! the appliance's command log, the mount table or a loop device (each must be 0); then the
//! detail of every failed case.

use std::collections::BTreeMap;
use std::time::Duration;

use tonic::Code;

use crate::fault_matrix::spec_codes::Rpc;

/// What one case came to.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub n: usize,
    pub rpc: Rpc,
    pub field: String,
    pub payload: &'static str,
    pub code: Code,
    pub expected: Vec<Code>,
    /// The code was wrong, or the answer failed its check (why).
    pub wrong: Option<String>,
    /// Command-log lines that hold this case's needles.
    pub log_hits: Vec<String>,
    /// Mount-table lines or mount changes this case caused.
    pub mount_hits: Vec<String>,
    /// Loop devices this case caused.
    pub loop_hits: Vec<String>,
    /// Commands the appliance received during the case (legitimate look-ups included).
    pub appliance_commands: usize,
    pub took: Duration,
}

impl CaseResult {
    pub fn failed(&self) -> bool {
        self.wrong.is_some()
            || !self.log_hits.is_empty()
            || !self.mount_hits.is_empty()
            || !self.loop_hits.is_empty()
    }
}

/// The whole sweep.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    pub results: Vec<CaseResult>,
    /// Expected codes that the spec does not allow for the case's RPC (a mistake in the sweep).
    pub bad_expectations: Vec<String>,
    /// Problems outside any one case: tearing the fixture down, what the stopped stack left,
    /// a marker found in the whole log afterwards.
    pub problems: Vec<String>,
    /// Volumes and snapshots accepted cases created (and the sweep deleted).
    pub created: usize,
    pub took: Duration,
}

impl SweepReport {
    pub fn reached_log(&self) -> usize {
        self.results
            .iter()
            .filter(|r| !r.log_hits.is_empty())
            .count()
    }

    pub fn reached_mounts(&self) -> usize {
        self.results
            .iter()
            .filter(|r| !r.mount_hits.is_empty())
            .count()
    }

    pub fn new_loops(&self) -> usize {
        self.results
            .iter()
            .filter(|r| !r.loop_hits.is_empty())
            .count()
    }

    pub fn wrong(&self) -> usize {
        self.results.iter().filter(|r| r.wrong.is_some()).count()
    }

    pub fn ok(&self) -> bool {
        !self.results.is_empty()
            && !self.results.iter().any(CaseResult::failed)
            && self.bad_expectations.is_empty()
            && self.problems.is_empty()
    }

    /// The counts and the details of every failed case (of every case with `verbose`).
    pub fn render(&self, verbose: bool) -> String {
        let mut per_code: BTreeMap<String, usize> = BTreeMap::new();
        let mut per_rpc: BTreeMap<&'static str, (usize, usize, Duration)> = BTreeMap::new();
        for r in &self.results {
            *per_code.entry(format!("{:?}", r.code)).or_default() += 1;
            let e = per_rpc.entry(r.rpc.name()).or_default();
            e.0 += 1;
            e.2 += r.took;
            if r.failed() {
                e.1 += 1;
            }
        }
        let mut out = format!(
            "\n== hostile-input sweep: {} cases ({:.1} s)\n",
            self.results.len(),
            self.took.as_secs_f64()
        );
        out.push_str(&format!(
            "{:<28} {:>6} {:>7} {:>8}\n",
            "rpc", "cases", "failed", "s"
        ));
        for (rpc, (n, failed, took)) in &per_rpc {
            out.push_str(&format!(
                "{rpc:<28} {n:>6} {failed:>7} {:>8.1}\n",
                took.as_secs_f64()
            ));
        }
        out.push_str("answers per code:");
        for (code, n) in &per_code {
            out.push_str(&format!(" {code} {n};"));
        }
        out.push('\n');
        let with_commands = self
            .results
            .iter()
            .filter(|r| r.appliance_commands > 0)
            .count();
        out.push_str(&format!(
            "cases sent:                  {}\n\
             wrong code or answer:        {}\n\
             reached the command log:     {} (must be 0)\n\
             reached the mount table:     {} (must be 0)\n\
             new loop devices:            {} (must be 0)\n\
             cases that made the driver ask the appliance something (look-ups, creates): {}\n\
             volumes/snapshots created by accepted cases (deleted again): {}\n",
            self.results.len(),
            self.wrong(),
            self.reached_log(),
            self.reached_mounts(),
            self.new_loops(),
            with_commands,
            self.created,
        ));
        for r in self.results.iter().filter(|r| verbose || r.failed()) {
            out.push_str(&format!(
                "\n-- case {} {} <- {}: got {:?}, expected {:?}{}\n",
                r.n,
                r.field,
                r.payload,
                r.code,
                r.expected,
                if r.failed() { "  FAIL" } else { "" }
            ));
            if let Some(w) = &r.wrong {
                out.push_str(&format!("   wrong: {w}\n"));
            }
            for l in &r.log_hits {
                out.push_str(&format!("   command log: {}\n", cut(l)));
            }
            for l in &r.mount_hits {
                out.push_str(&format!("   mount table: {}\n", cut(l)));
            }
            for l in &r.loop_hits {
                out.push_str(&format!("   loop device: {}\n", cut(l)));
            }
        }
        for b in &self.bad_expectations {
            out.push_str(&format!("\nexpectation outside the spec: {b}\n"));
        }
        for p in &self.problems {
            out.push_str(&format!("\nproblem: {p}\n"));
        }
        out.push_str(if self.ok() {
            "\nhostile-input sweep: OK\n"
        } else {
            "\nhostile-input sweep: FAILED\n"
        });
        out
    }
}

/// A line cut at 300 characters.
fn cut(s: &str) -> String {
    let mut out: String = s.chars().take(300).collect();
    if out.len() < s.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: Code) -> CaseResult {
        CaseResult {
            n: 0,
            rpc: Rpc::CreateVolume,
            field: "CreateVolume.name".into(),
            payload: "NUL",
            code,
            expected: vec![Code::InvalidArgument],
            wrong: None,
            log_hits: Vec::new(),
            mount_hits: Vec::new(),
            loop_hits: Vec::new(),
            appliance_commands: 0,
            took: Duration::ZERO,
        }
    }

    #[test]
    fn any_reach_or_wrong_answer_fails_the_sweep() {
        let mut report = SweepReport {
            results: vec![result(Code::InvalidArgument)],
            ..SweepReport::default()
        };
        assert!(report.ok());
        report.results[0].log_hits = vec!["/disk add slot=x".into()];
        assert!(!report.ok());
        assert_eq!(report.reached_log(), 1);
        let text = report.render(false);
        assert!(text.contains("reached the command log:     1"), "{text}");
        report.results[0].log_hits.clear();
        report.results[0].wrong = Some("Internal".into());
        assert!(!report.ok());
        assert_eq!(report.wrong(), 1);
        assert!(
            !SweepReport::default().ok(),
            "an empty sweep proves nothing"
        );
    }
}
