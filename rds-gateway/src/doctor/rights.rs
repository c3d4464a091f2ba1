//! Recognises a RouterOS answer that says the user may not run a command — a missing policy
//! (`not enough permissions`) or a command the appliance does not know (`bad command name`) — and
//! turns it into a fix that names the RouterOS policies the driver needs.
//!
//! Both are recognised by the gateway's own classifier ([`classify_for`]), the one the driver's
//! commands go through, so the doctor and the driver read a refusal alike.

use crate::routeros::{RosError, Subject, classify_for};
use crate::runner::RunOutput;

/// The RouterOS policies the driver's user needs: `ssh` to log in, `read` for every print, `write`
/// to create, grow and remove disks and files.
pub const NEEDED_POLICIES: &str = "ssh,read,write";

/// Why RouterOS refused a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The user's group lacks a policy the command needs.
    Permission {
        /// RouterOS's message.
        text: String,
    },
    /// RouterOS does not know the command (a missing package, or a menu the user cannot see).
    UnknownCommand {
        /// RouterOS's message.
        text: String,
    },
}

/// The refusal in a command's output, if there is one. `verb` names the command for the
/// classifier.
pub fn refusal(verb: &'static str, out: &RunOutput) -> Option<Refusal> {
    match classify_for(
        verb,
        Subject::None,
        &out.stdout,
        &out.stderr,
        out.exit_status,
    ) {
        // The classifier quotes the appliance's text (escaped); the report shows it plain.
        Err(RosError::PermissionDenied { text, .. }) => Some(Refusal::Permission {
            text: text.trim_matches('"').to_owned(),
        }),
        Err(RosError::Rejected { text, .. })
            if text.to_ascii_lowercase().contains("bad command name") =>
        {
            Some(Refusal::UnknownCommand { text })
        }
        _ => None,
    }
}

impl Refusal {
    /// What was seen, for the report: `command` is the RouterOS command as an operator types it.
    pub fn seen(&self, user: &str, command: &str) -> String {
        match self {
            Refusal::Permission { text } => format!(
                "RouterOS refused `{command}` for user {user}: {text} (a policy is missing from \
                 the user's group)"
            ),
            Refusal::UnknownCommand { text } => {
                format!("RouterOS does not know `{command}` (user {user}): {text}")
            }
        }
    }

    /// How to fix it, naming the policies the driver needs.
    pub fn fix(&self, user: &str) -> String {
        let group = format!(
            "give user {user} a group with the policies the driver needs \
             ({NEEDED_POLICIES}): `/user group add name=rds-csi policy={NEEDED_POLICIES}` then \
             `/user set [find name={user}] group=rds-csi` (or add the missing policies to its \
             group: `/user print detail where name={user}` shows which group)"
        );
        match self {
            Refusal::Permission { .. } => group,
            Refusal::UnknownCommand { .. } => format!(
                "the driver needs RouterOS 7 with the rose-storage package (file disks and \
                 NVMe/TCP export under /disk): check `/system package print`; if it is \
                 installed, {group}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn out(stdout: &str, stderr: &str, status: Option<u32>) -> RunOutput {
        RunOutput {
            stdout: stdout.into(),
            stderr: stderr.into(),
            exit_status: status,
        }
    }

    // The permission message as RouterOS words it for a user whose group lacks a policy (the
    // shape its API reports, `not enough permissions (9)`), bare and with the console's
    // `failure:` prefix; see tests/fixtures/doctor/permission-denied.txt.
    const FIXTURE: &str = include_str!("../../tests/fixtures/doctor/permission-denied.txt");

    #[test]
    fn permission_text_is_a_refusal_on_either_stream_with_or_without_prefix() {
        let shapes: Vec<&str> = FIXTURE
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .collect();
        assert!(shapes.len() >= 2, "{FIXTURE}");
        for shape in shapes {
            for o in [
                out(&format!("{shape}\n"), "", Some(0)),
                out("", &format!("{shape}\r\n"), None),
                out(&format!("Flags: X - disabled\n{shape}\n"), "", Some(1)),
            ] {
                let r = refusal("disk-print", &o);
                assert!(
                    matches!(&r, Some(Refusal::Permission { text }) if text == shape.trim()),
                    "{shape:?} in {o:?} gave {r:?}"
                );
            }
        }
    }

    #[test]
    fn the_bare_permission_message_is_a_refusal_even_with_exit_status_0() {
        let bare = out("not enough permissions (9)\n", "", Some(0));
        assert!(matches!(
            classify_for("disk-print", Subject::None, &bare.stdout, "", Some(0)),
            Err(RosError::PermissionDenied { .. })
        ));
        assert!(matches!(
            refusal("disk-print", &bare),
            Some(Refusal::Permission { .. })
        ));
    }

    #[test]
    fn unknown_commands_come_from_the_classifier() {
        let o = out("bad command name disk (line 1 column 2)\n", "", Some(0));
        let r = refusal("disk-print", &o);
        assert!(
            matches!(&r, Some(Refusal::UnknownCommand { text })
                if text.contains("bad command name disk (line 1 column 2)")),
            "{r:?}"
        );
    }

    #[test]
    fn records_and_other_failures_are_not_refusals() {
        let cases = [
            out("", "", Some(0)),
            out(
                " 0 slot=pvc-1 comment=\"not enough permissions\" type=file\n",
                "",
                Some(0),
            ),
            out(";;; not enough permissions\n 0 slot=pvc-1\n", "", Some(0)),
            out(
                "[{\".id\":\"*1\",\"comment\":\"not enough permissions\"}]\n",
                "",
                None,
            ),
            out("failure: not enough space\n", "", Some(0)),
            out("syntax error (line 1 column 7)\n", "", Some(0)),
            out("no such item\n", "", Some(0)),
        ];
        for o in cases {
            assert_eq!(refusal("disk-print", &o), None, "{o:?}");
        }
    }

    #[test]
    fn fixes_name_the_policies_and_the_user() {
        let p = Refusal::Permission {
            text: "not enough permissions (9)".into(),
        };
        let fix = p.fix("csi");
        assert!(fix.contains("policy=ssh,read,write"), "{fix}");
        assert!(
            fix.contains("/user set [find name=csi] group=rds-csi"),
            "{fix}"
        );
        let seen = p.seen("csi", "/disk print");
        assert!(
            seen.contains("`/disk print`") && seen.contains("user csi"),
            "{seen}"
        );
        assert!(seen.contains("not enough permissions (9)"), "{seen}");
        let u = Refusal::UnknownCommand {
            text: "bad command name disk".into(),
        };
        let fix = u.fix("csi");
        assert!(fix.contains("rose-storage"), "{fix}");
        assert!(fix.contains("policy=ssh,read,write"), "{fix}");
    }
}
