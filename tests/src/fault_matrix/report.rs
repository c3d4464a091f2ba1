//! The matrix's table: one row per fault with how many trials ran, converged, leaked, got a
//! wrong code or lost something, and for kills how many landed inside the call; then the
//! detail of every failed trial, and whatever the stopped stack left behind.

use std::time::Duration;

use super::trial::TrialOutcome;

/// All trials of one fault.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub fault: String,
    pub trials: Vec<TrialOutcome>,
    pub took: Duration,
}

impl Row {
    pub fn converged(&self) -> usize {
        self.trials.iter().filter(|t| t.converged).count()
    }

    pub fn leaked(&self) -> usize {
        self.trials
            .iter()
            .filter(|t| !t.findings.leaks.is_empty())
            .count()
    }

    pub fn wrong_code(&self) -> usize {
        self.trials
            .iter()
            .filter(|t| !t.wrong_codes.is_empty())
            .count()
    }

    /// Trials that lost something believed to exist, or left the driver not serving.
    pub fn lost(&self) -> usize {
        self.trials
            .iter()
            .filter(|t| !t.findings.lost.is_empty() || !t.findings.broken.is_empty())
            .count()
    }

    /// `inside/kills`, or `-` for a fault that is not a kill.
    pub fn landed(&self) -> String {
        let kills: Vec<bool> = self.trials.iter().filter_map(|t| t.landed_inside).collect();
        if kills.is_empty() {
            "-".into()
        } else {
            format!("{}/{}", kills.iter().filter(|x| **x).count(), kills.len())
        }
    }

    pub fn failed(&self) -> bool {
        self.trials.iter().any(TrialOutcome::failed)
    }
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub seed: u64,
    pub trials_per_fault: u32,
    pub rows: Vec<Row>,
    /// What the stack left once stopped with SIGTERM (mounts, loop devices, files, sockets).
    pub after_stop: Vec<String>,
    pub took: Duration,
}

impl Report {
    /// Whether every trial converged without a leak, a loss or a wrong code, and the stopped
    /// stack left nothing.
    pub fn ok(&self) -> bool {
        !self.rows.is_empty() && !self.rows.iter().any(Row::failed) && self.after_stop.is_empty()
    }

    /// The table and the details of every failed trial, ready to print.
    pub fn render(&self) -> String {
        self.render_with(false)
    }

    /// The table, and the details of every trial (`verbose`) or of the failed ones.
    pub fn render_with(&self, verbose: bool) -> String {
        let mut out = format!(
            "\n== fault matrix: {} faults x {} trials, seed {} ({:.1} s)\n",
            self.rows.len(),
            self.trials_per_fault,
            self.seed,
            self.took.as_secs_f64()
        );
        out.push_str(&format!(
            "{:<30} {:>6} {:>9} {:>6} {:>10} {:>5} {:>6} {:>7}\n",
            "fault", "trials", "converged", "leaked", "wrong-code", "lost", "inside", "s"
        ));
        for r in &self.rows {
            out.push_str(&format!(
                "{:<30} {:>6} {:>9} {:>6} {:>10} {:>5} {:>6} {:>7.1}{}\n",
                r.fault,
                r.trials.len(),
                r.converged(),
                r.leaked(),
                r.wrong_code(),
                r.lost(),
                r.landed(),
                r.took.as_secs_f64(),
                if r.failed() { "  FAIL" } else { "" }
            ));
        }
        let total = |f: fn(&Row) -> usize| self.rows.iter().map(f).sum::<usize>();
        out.push_str(&format!(
            "{:<30} {:>6} {:>9} {:>6} {:>10} {:>5}\n",
            "total",
            self.rows.iter().map(|r| r.trials.len()).sum::<usize>(),
            total(Row::converged),
            total(Row::leaked),
            total(Row::wrong_code),
            total(Row::lost),
        ));
        for r in self.rows.iter().filter(|r| verbose || r.failed()) {
            for (k, t) in r
                .trials
                .iter()
                .enumerate()
                .filter(|(_, t)| verbose || t.failed())
            {
                out.push_str(&format!("\n-- {} trial {k}: codes {}\n", r.fault, t.codes));
                let lines = t
                    .unconverged
                    .iter()
                    .map(|x| ("not converged", x))
                    .chain(t.wrong_codes.iter().map(|x| ("wrong code", x)))
                    .chain(t.findings.leaks.iter().map(|x| ("leaked", x)))
                    .chain(t.findings.lost.iter().map(|x| ("lost", x)))
                    .chain(t.findings.broken.iter().map(|x| ("broken", x)))
                    .chain(t.notes.iter().map(|x| ("note", x)));
                for (kind, line) in lines {
                    out.push_str(&format!("   {kind}: {line}\n"));
                }
            }
        }
        if !self.after_stop.is_empty() {
            out.push_str(&format!(
                "\n-- left behind after the stack stopped: {:?}\n",
                self.after_stop
            ));
        }
        out.push_str(if self.ok() {
            "\nfault matrix: OK\n"
        } else {
            "\nfault matrix: FAILED\n"
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault_matrix::invariants::Findings;

    fn clean() -> TrialOutcome {
        TrialOutcome {
            converged: true,
            ..TrialOutcome::default()
        }
    }

    #[test]
    fn rows_count_each_kind_of_failure_and_the_report_fails_on_any() {
        let mut leaky = clean();
        leaky.findings = Findings {
            leaks: vec!["mount x".into()],
            ..Findings::default()
        };
        leaky.landed_inside = Some(true);
        let mut wrong = clean();
        wrong.wrong_codes = vec!["Internal".into()];
        wrong.landed_inside = Some(false);
        let row = Row {
            fault: "kill-x@y".into(),
            trials: vec![clean(), leaky, wrong],
            took: Duration::ZERO,
        };
        assert_eq!(
            (row.converged(), row.leaked(), row.wrong_code(), row.lost()),
            (3, 1, 1, 0)
        );
        assert_eq!(row.landed(), "1/2");
        let mut report = Report {
            rows: vec![row],
            ..Report::default()
        };
        assert!(!report.ok());
        let text = report.render();
        assert!(
            text.contains("FAIL") && text.contains("leaked: mount x"),
            "{text}"
        );
        report.rows[0].trials = vec![clean()];
        assert!(report.ok());
        report.after_stop = vec!["socket".into()];
        assert!(!report.ok());
        assert!(!Report::default().ok(), "an empty run proves nothing");
    }
}
