//! The outcome of a run: one row per case, the printed table, the summary line, and the
//! list of failures with what was expected and what came back.

use std::fmt::Write;
use std::time::Duration;

use super::registry::Area;

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed(String),
    /// The plugin does not advertise what the case needs (the reason names it).
    Skipped(String),
    /// Left out by the run's filter.
    NotRun,
}

/// One row.
#[derive(Debug, Clone)]
pub struct CaseReport {
    pub name: String,
    pub area: Area,
    pub outcome: Outcome,
    pub took: Duration,
}

/// Every row of a run, in run order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub cases: Vec<CaseReport>,
}

impl Report {
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.outcome)).count()
    }

    pub fn passed(&self) -> usize {
        self.count(|o| *o == Outcome::Passed)
    }

    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }

    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped(_)))
    }

    pub fn not_run(&self) -> usize {
        self.count(|o| *o == Outcome::NotRun)
    }

    /// The failed cases and why.
    pub fn failures(&self) -> Vec<(&str, &str)> {
        self.cases
            .iter()
            .filter_map(|c| match &c.outcome {
                Outcome::Failed(why) => Some((c.name.as_str(), why.as_str())),
                _ => None,
            })
            .collect()
    }

    /// `N passed, M failed, K skipped (capability not advertised)`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} passed, {} failed, {} skipped (capability not advertised)",
            self.passed(),
            self.failed(),
            self.skipped()
        );
        if self.not_run() > 0 {
            let _ = write!(s, ", {} not run (filtered out)", self.not_run());
        }
        s
    }

    /// The table: case, area, result, milliseconds; then skip reasons and failures.
    pub fn table(&self) -> String {
        let width = self
            .cases
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:>3}  {:<width$}  {:<10}  {:<6}  {:>8}",
            "#", "case", "area", "result", "ms"
        );
        let _ = writeln!(out, "{}", "-".repeat(width + 36));
        for (i, c) in self.cases.iter().enumerate() {
            let result = match c.outcome {
                Outcome::Passed => "pass",
                Outcome::Failed(_) => "FAIL",
                Outcome::Skipped(_) => "skip",
                Outcome::NotRun => "-",
            };
            let _ = writeln!(
                out,
                "{:>3}  {:<width$}  {:<10}  {:<6}  {:>8}",
                i + 1,
                c.name,
                c.area.name(),
                result,
                c.took.as_millis()
            );
        }
        let skips: Vec<&CaseReport> = self
            .cases
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Skipped(_)))
            .collect();
        if !skips.is_empty() {
            let _ = writeln!(out, "\nskipped:");
            for c in skips {
                if let Outcome::Skipped(why) = &c.outcome {
                    let _ = writeln!(out, "  {}: {why}", c.name);
                }
            }
        }
        let failures = self.failures();
        if !failures.is_empty() {
            let _ = writeln!(out, "\nfailed:");
            for (name, why) in failures {
                let _ = writeln!(out, "  {name}\n      {why}");
            }
        }
        let _ = writeln!(out, "\n{}", self.summary());
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn row(name: &str, outcome: Outcome) -> CaseReport {
        CaseReport {
            name: name.into(),
            area: Area::Node,
            outcome,
            took: Duration::from_millis(12),
        }
    }

    #[test]
    fn counts_summary_and_table_follow_the_rows() {
        let r = Report {
            cases: vec![
                row("A: one", Outcome::Passed),
                row(
                    "B: two",
                    Outcome::Failed("expected NOT_FOUND, got OK".into()),
                ),
                row(
                    "C: three",
                    Outcome::Skipped("controller GET_SNAPSHOT".into()),
                ),
                row("D: four", Outcome::Passed),
            ],
        };
        assert_eq!((r.passed(), r.failed(), r.skipped()), (2, 1, 1));
        assert_eq!(
            r.summary(),
            "2 passed, 1 failed, 1 skipped (capability not advertised)"
        );
        let t = r.table();
        assert!(t.contains("B: two") && t.contains("FAIL"), "{t}");
        assert!(t.contains("expected NOT_FOUND, got OK"), "{t}");
        assert!(t.contains("C: three: controller GET_SNAPSHOT"), "{t}");
        assert_eq!(r.failures(), vec![("B: two", "expected NOT_FOUND, got OK")]);
        let mut filtered = r.clone();
        filtered.cases.push(row("E: five", Outcome::NotRun));
        assert!(filtered.summary().ends_with("1 not run (filtered out)"));
    }
}
