//! Every answer a trial got, judged against the spec's code table as it arrives, so that a
//! trial can report each call that ended in a code the spec does not allow.

use tonic::{Code, Status};

use super::spec_codes::{Rpc, Verdict, judge, short};

/// One judged answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub rpc: Rpc,
    /// What the call was for (`retry 3`, `in flight at the kill`).
    pub when: String,
    pub code: Code,
    pub verdict: Verdict,
}

/// The answers of one trial.
#[derive(Debug, Default)]
pub struct Ledger {
    pub answers: Vec<Answer>,
    /// Answers that were allowed by the table but not the one the condition prescribes.
    pub mismatches: Vec<String>,
}

impl Ledger {
    /// Records and judges the answer `r` to `rpc`.
    pub fn record<T>(&mut self, rpc: Rpc, when: &str, r: &Result<T, Status>) -> Verdict {
        let verdict = judge(rpc, r);
        self.answers.push(Answer {
            rpc,
            when: when.to_string(),
            code: r.as_ref().map_or_else(Status::code, |_| Code::Ok),
            verdict: verdict.clone(),
        });
        verdict
    }

    /// Records `r` and requires it to be exactly `want` (the code the injected condition
    /// prescribes), on top of the table's judgement.
    pub fn expect<T>(&mut self, rpc: Rpc, when: &str, r: &Result<T, Status>, want: Code) {
        let verdict = self.record(rpc, when, r);
        let got = r.as_ref().map_or_else(Status::code, |_| Code::Ok);
        // A code the table refuses is reported once, by the table.
        if got != want && !matches!(verdict, Verdict::Wrong(_)) {
            let msg = r
                .as_ref()
                .err()
                .map(|s| short(s.message()))
                .unwrap_or_default();
            self.mismatches.push(format!(
                "{} ({when}): expected {want:?}, got {got:?} {msg}",
                rpc.name()
            ));
        }
    }

    /// Records a wrong answer that is not a code (a condition reported wrongly, say).
    pub fn wrong(&mut self, what: String) {
        self.mismatches.push(what);
    }

    /// Every answer the spec does not allow, and every mismatch with the prescribed code.
    pub fn wrong_codes(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .answers
            .iter()
            .filter_map(|a| match &a.verdict {
                Verdict::Wrong(w) => Some(format!("{w} ({})", a.when)),
                _ => None,
            })
            .collect();
        out.extend(self.mismatches.iter().cloned());
        out
    }

    /// `Code x n` for every code seen, in first-seen order.
    pub fn summary(&self) -> String {
        let mut seen: Vec<(Code, u32)> = Vec::new();
        for a in &self.answers {
            match seen.iter_mut().find(|(c, _)| *c == a.code) {
                Some((_, n)) => *n += 1,
                None => seen.push((a.code, 1)),
            }
        }
        seen.iter()
            .map(|(c, n)| {
                if *n > 1 {
                    format!("{c:?} x{n}")
                } else {
                    format!("{c:?}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_codes_and_mismatches_are_reported_allowed_ones_not() {
        let mut l = Ledger::default();
        l.record::<()>(
            Rpc::CreateVolume,
            "first",
            &Err(Status::unavailable("down")),
        );
        l.record::<()>(Rpc::CreateVolume, "retry", &Ok(()));
        assert!(l.wrong_codes().is_empty());
        l.record::<()>(
            Rpc::NodeStageVolume,
            "retry",
            &Err(Status::internal("boom")),
        );
        l.expect::<()>(
            Rpc::CreateVolume,
            "no space",
            &Err(Status::unavailable("x")),
            Code::ResourceExhausted,
        );
        // Refused by the table: reported once, not again as a mismatch.
        l.expect::<()>(
            Rpc::CreateVolume,
            "hang",
            &Err(Status::cancelled("Timeout expired")),
            Code::DeadlineExceeded,
        );
        let w = l.wrong_codes();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[1].contains("Cancelled"), "{w:?}");
        assert!(w[0].contains("Internal"), "{w:?}");
        assert!(w[2].contains("expected ResourceExhausted"), "{w:?}");
        assert_eq!(l.summary(), "Unavailable x2, Ok, Internal, Cancelled");
    }
}
