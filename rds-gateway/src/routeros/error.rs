//! The RouterOS layer's error type, the recogniser that turns RouterOS failure text into it, and the one
//! place where these errors become gRPC codes.
//!
//! RouterOS reports most failures as text (`failure: no such item`, `syntax error`, ...) and it is not
//! known whether it also sets an exit status or which stream it writes to, so [`classify`] reads both
//! streams and the status. Only lines that look like messages are read: record lines (`key=value`),
//! JSON and `key: value` lines are skipped, so a disk whose name or comment contains "busy" is not
//! taken for a failure.

use std::fmt;
use std::time::Duration;

use super::names::{Field, FilePath, ImagePath, InvalidValue, PoolPath, Slot, escape_limited};

/// What a failed operation was about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Subject {
    /// Nothing in particular (for example `/system resource print`).
    #[default]
    None,
    /// A disk slot.
    Slot(Slot),
    /// A disk's backing file.
    Image(ImagePath),
    /// A file on the appliance.
    Path(FilePath),
    /// A storage pool.
    Pool(PoolPath),
}

impl From<Option<&Slot>> for Subject {
    fn from(slot: Option<&Slot>) -> Self {
        slot.map_or(Subject::None, |s| Subject::Slot(s.clone()))
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::None => Ok(()),
            Subject::Slot(s) => write!(f, " slot={s}"),
            Subject::Image(p) => write!(f, " file={p}"),
            Subject::Path(p) => write!(f, " file={p}"),
            Subject::Pool(p) => write!(f, " pool={p}"),
        }
    }
}

/// Everything that can go wrong talking to RouterOS, each variant carrying the command verb and what
/// it was about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosError {
    /// The item does not exist.
    #[error("{verb}{subject}: not found: {text}")]
    NotFound {
        /// Command verb.
        verb: &'static str,
        /// What it was about.
        subject: Subject,
        /// The appliance's message.
        text: String,
    },
    /// The item exists already.
    #[error("{verb}{subject}: already exists: {text}")]
    AlreadyExists {
        /// Command verb.
        verb: &'static str,
        /// What it was about.
        subject: Subject,
        /// The appliance's message.
        text: String,
    },
    /// The pool is full.
    #[error("{verb}{subject}: not enough space: {text}")]
    NoSpace {
        /// Command verb.
        verb: &'static str,
        /// What it was about.
        subject: Subject,
        /// The appliance's message.
        text: String,
    },
    /// The item is busy or in use; retrying later may work.
    #[error("{verb}{subject}: busy: {text}")]
    Busy {
        /// Command verb.
        verb: &'static str,
        /// What it was about.
        subject: Subject,
        /// The appliance's message.
        text: String,
    },
    /// The SSH connection or channel failed.
    #[error("{verb}{subject}: transport failure: {detail}")]
    Transport {
        /// Command verb.
        verb: &'static str,
        /// What it was about.
        subject: Subject,
        /// What failed.
        detail: String,
    },
    /// No answer before the deadline.
    #[error("{verb}{subject}: no answer within {after:?}")]
    Timeout {
        /// Command verb.
        verb: &'static str,
        /// What it was about.
        subject: Subject,
        /// How long was waited.
        after: Duration,
    },
    /// RouterOS refused the command (syntax, unknown parameter, other `failure:`).
    #[error("{verb}{subject}: rejected by RouterOS: {text}")]
    Rejected {
        /// Command verb.
        verb: &'static str,
        /// What it was about.
        subject: Subject,
        /// The appliance's message.
        text: String,
    },
    /// The RDS user's group lacks a policy the command needs (`not enough permissions`).
    #[error(
        "{verb}{subject}: the RDS user may not run this command: {text}; give its RouterOS group the policies ssh, read and write (`rds-gateway doctor` checks them)"
    )]
    PermissionDenied {
        /// Command verb.
        verb: &'static str,
        /// What it was about.
        subject: Subject,
        /// The appliance's message.
        text: String,
    },
    /// The output could not be read.
    #[error("cannot read {what}{subject}: {detail}")]
    Unparseable {
        /// What was being read (`disk`, `print detail output`, ...).
        what: &'static str,
        /// What it was about.
        subject: Subject,
        /// What was wrong.
        detail: String,
    },
    /// A value refused before any command was built.
    #[error("invalid {field} {value}: {reason}")]
    InvalidInput {
        /// Which kind of value.
        field: Field,
        /// The value, escaped for display.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
}

impl From<InvalidValue> for RosError {
    fn from(e: InvalidValue) -> Self {
        RosError::InvalidInput {
            field: e.field,
            value: e.value,
            reason: e.reason,
        }
    }
}

impl RosError {
    /// A transport failure.
    pub fn transport(verb: &'static str, subject: Subject, detail: impl fmt::Display) -> Self {
        RosError::Transport {
            verb,
            subject,
            detail: escape_limited(&detail.to_string(), MESSAGE_LIMIT),
        }
    }

    /// A deadline that passed.
    pub fn timeout(verb: &'static str, subject: Subject, after: Duration) -> Self {
        RosError::Timeout {
            verb,
            subject,
            after,
        }
    }

    /// Output that could not be read.
    pub fn unparseable(what: &'static str, subject: Subject, detail: impl fmt::Display) -> Self {
        RosError::Unparseable {
            what,
            subject,
            detail: detail.to_string(),
        }
    }

    /// The same error about `subject` (used by callers that know more than the parser did).
    pub fn about(mut self, new_subject: Subject) -> Self {
        match &mut self {
            RosError::NotFound { subject, .. }
            | RosError::AlreadyExists { subject, .. }
            | RosError::NoSpace { subject, .. }
            | RosError::Busy { subject, .. }
            | RosError::Transport { subject, .. }
            | RosError::Timeout { subject, .. }
            | RosError::Rejected { subject, .. }
            | RosError::PermissionDenied { subject, .. }
            | RosError::Unparseable { subject, .. } => *subject = new_subject,
            RosError::InvalidInput { .. } => {}
        }
        self
    }

    /// The gRPC code for this error. This is the only mapping from RouterOS failures to gRPC codes.
    pub fn code(&self) -> tonic::Code {
        match self {
            RosError::NotFound { .. } => tonic::Code::NotFound,
            RosError::AlreadyExists { .. } => tonic::Code::AlreadyExists,
            RosError::NoSpace { .. } => tonic::Code::ResourceExhausted,
            RosError::Busy { .. } | RosError::Transport { .. } => tonic::Code::Unavailable,
            RosError::Timeout { .. } => tonic::Code::DeadlineExceeded,
            RosError::InvalidInput { .. } => tonic::Code::InvalidArgument,
            RosError::PermissionDenied { .. } => tonic::Code::PermissionDenied,
            RosError::Rejected { .. } | RosError::Unparseable { .. } => tonic::Code::Internal,
        }
    }

    /// True for failures that may go away when the same command is tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            RosError::Busy { .. } | RosError::Transport { .. } | RosError::Timeout { .. }
        )
    }
}

/// Longest appliance message kept in an error.
const MESSAGE_LIMIT: usize = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Permission,
    NotFound,
    NoSpace,
    AlreadyExists,
    Rejected,
    Busy,
    Failure,
}

/// Checks a command's result for RouterOS failure text on either stream and for a non-zero exit
/// status. `Ok(())` means the command did not report a failure.
pub fn classify(
    verb: &'static str,
    slot: Option<&Slot>,
    stdout: &str,
    stderr: &str,
    exit_status: Option<u32>,
) -> Result<(), RosError> {
    classify_for(verb, Subject::from(slot), stdout, stderr, exit_status)
}

/// [`classify`] for a command about something other than a slot.
pub fn classify_for(
    verb: &'static str,
    subject: Subject,
    stdout: &str,
    stderr: &str,
    exit_status: Option<u32>,
) -> Result<(), RosError> {
    let found = stderr
        .lines()
        .chain(stdout.lines())
        .filter_map(|line| recognise(line).map(|kind| (kind, line)))
        .min_by_key(|(kind, _)| *kind);
    let (kind, line) = match found {
        Some(hit) => hit,
        None => match exit_status {
            None | Some(0) => return Ok(()),
            Some(status) => {
                let first = stderr
                    .lines()
                    .chain(stdout.lines())
                    .map(str::trim)
                    .find(|l| !l.is_empty());
                let text = match first {
                    Some(l) => escape_limited(l, MESSAGE_LIMIT),
                    None => format!("exit status {status}"),
                };
                return Err(RosError::Rejected {
                    verb,
                    subject,
                    text,
                });
            }
        },
    };
    let text = escape_limited(line.trim(), MESSAGE_LIMIT);
    Err(match kind {
        Kind::Permission => RosError::PermissionDenied {
            verb,
            subject,
            text,
        },
        Kind::NotFound => RosError::NotFound {
            verb,
            subject,
            text,
        },
        Kind::NoSpace => RosError::NoSpace {
            verb,
            subject,
            text,
        },
        Kind::AlreadyExists => RosError::AlreadyExists {
            verb,
            subject,
            text,
        },
        Kind::Busy => RosError::Busy {
            verb,
            subject,
            text,
        },
        Kind::Rejected | Kind::Failure => RosError::Rejected {
            verb,
            subject,
            text,
        },
    })
}

/// What failure, if any, one output line reports.
fn recognise(line: &str) -> Option<Kind> {
    if !is_message_line(line) {
        return None;
    }
    let lower = line.trim().to_ascii_lowercase();
    let has = |p: &str| lower.contains(p);
    if has("not enough permissions") {
        Some(Kind::Permission)
    } else if has("no such item") {
        Some(Kind::NotFound)
    } else if has("not enough space") || has("no space left") {
        Some(Kind::NoSpace)
    } else if has("already have") || has("already exists") {
        Some(Kind::AlreadyExists)
    } else if has("bad command name")
        || has("syntax error")
        || has("expected end of command")
        || has("input does not match any value of")
        || has("expected command name")
        || has("invalid value")
    {
        Some(Kind::Rejected)
    } else if has_word(&lower, "busy") || has_word(&lower, "in use") {
        Some(Kind::Busy)
    } else if lower.starts_with("failure:") || lower.starts_with("error:") {
        Some(Kind::Failure)
    } else {
        None
    }
}

/// True for lines that may carry a message: not blank, not a `key=value` record line, not JSON, not a
/// `key: value` line (other than `failure:` / `error:`), not a comment or legend.
fn is_message_line(line: &str) -> bool {
    let t = line.trim();
    if t.is_empty() {
        return false;
    }
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("failure:") || lower.starts_with("error:") {
        return true;
    }
    if t.starts_with(['[', ']', '{', '}', '"', ','])
        || t.starts_with(";;;")
        || t.starts_with("Flags:")
        || t.starts_with("Columns:")
    {
        return false;
    }
    if t.split_ascii_whitespace().any(is_assignment) {
        return false;
    }
    !is_colon_pair(t)
}

/// `key=...` with a RouterOS property name as key.
fn is_assignment(token: &str) -> bool {
    token.split_once('=').is_some_and(|(k, _)| is_key(k))
}

/// `key: value` as printed by `monitor-traffic` and `system resource print`.
fn is_colon_pair(line: &str) -> bool {
    line.split_once(": ").is_some_and(|(k, _)| is_key(k))
        || line.ends_with(':') && is_key(&line[..line.len() - 1])
}

fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `needle` occurs in `hay` with no name character (letter, digit, `-`, `_`, `.`, `/`) on either side,
/// so `busy` matches "device busy" but not a slot called `busy-disk`.
fn has_word(hay: &str, needle: &str) -> bool {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
    hay.match_indices(needle).any(|(at, _)| {
        let before = hay[..at].chars().next_back();
        let after = hay[at + needle.len()..].chars().next();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn slot() -> Slot {
        Slot::parse("pvc-1").unwrap()
    }

    fn kind_of(stdout: &str, stderr: &str, status: Option<u32>) -> Option<tonic::Code> {
        classify("disk-add", Some(&slot()), stdout, stderr, status)
            .err()
            .map(|e| e.code())
    }

    #[test]
    fn recognises_failure_text_on_either_stream() {
        let cases: &[(&str, tonic::Code)] = &[
            ("failure: no such item", tonic::Code::NotFound),
            ("no such item", tonic::Code::NotFound),
            ("failure: not enough space", tonic::Code::ResourceExhausted),
            (
                "failure: already have disk with such slot",
                tonic::Code::AlreadyExists,
            ),
            ("failure: item already exists", tonic::Code::AlreadyExists),
            (
                "bad command name dsk (line 1 column 2)",
                tonic::Code::Internal,
            ),
            ("syntax error (line 1 column 12)", tonic::Code::Internal),
            (
                "expected end of command (line 1 column 40)",
                tonic::Code::Internal,
            ),
            (
                "input does not match any value of nvme-tcp-export",
                tonic::Code::Internal,
            ),
            ("failure: device busy", tonic::Code::Unavailable),
            ("failure: disk is in use", tonic::Code::Unavailable),
            ("failure: something new", tonic::Code::Internal),
            ("not enough permissions (9)", tonic::Code::PermissionDenied),
            (
                "failure: not enough permissions (9)",
                tonic::Code::PermissionDenied,
            ),
        ];
        for (text, code) in cases {
            assert_eq!(kind_of(text, "", None), Some(*code), "stdout {text}");
            assert_eq!(kind_of("", text, None), Some(*code), "stderr {text}");
            assert_eq!(
                kind_of("", &format!("\r\n{text}\r\n"), Some(0)),
                Some(*code)
            );
        }
    }

    #[test]
    fn error_carries_verb_slot_and_text() {
        let err = classify(
            "disk-remove",
            Some(&slot()),
            "",
            "failure: no such item",
            None,
        )
        .unwrap_err();
        match &err {
            RosError::NotFound {
                verb,
                subject,
                text,
            } => {
                assert_eq!(*verb, "disk-remove");
                assert_eq!(subject, &Subject::Slot(slot()));
                assert!(text.contains("no such item"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("disk-remove") && msg.contains("pvc-1"),
            "{msg}"
        );
    }

    #[test]
    fn normal_output_is_not_a_failure() {
        let record = " 0  type=file slot=\"busy-disk\" comment=\"in use\" size=1 024\n";
        assert_eq!(kind_of(record, "", Some(0)), None);
        assert_eq!(
            kind_of(";;; disk in use by vm\n 0 type=file", "", None),
            None
        );
        assert_eq!(kind_of("[{\"slot\":\"busy\"}]", "", None), None);
        assert_eq!(kind_of("slot: busy\nread-rate: 0bps", "", None), None);
        assert_eq!(kind_of("Flags: B - BLOCK-DEVICE", "", None), None);
        assert_eq!(kind_of("", "", None), None);
        assert_eq!(kind_of("", "", Some(0)), None);
    }

    #[test]
    fn nonzero_status_without_text_is_rejected() {
        let err = classify("disk-add", None, "", "", Some(2)).unwrap_err();
        assert!(matches!(&err, RosError::Rejected { text, .. } if text.contains("exit status 2")));
        let err = classify("disk-add", None, "", "strange words\n", Some(1)).unwrap_err();
        assert!(matches!(&err, RosError::Rejected { text, .. } if text.contains("strange words")));
    }

    #[test]
    fn most_specific_failure_wins() {
        let err = classify(
            "disk-add",
            None,
            "failure: something\n",
            "failure: not enough space",
            None,
        )
        .unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    }

    #[test]
    fn code_mapping_is_complete() {
        let s = Subject::None;
        let cases = [
            (
                RosError::Busy {
                    verb: "v",
                    subject: s.clone(),
                    text: String::new(),
                },
                tonic::Code::Unavailable,
                true,
            ),
            (
                RosError::transport("v", s.clone(), "reset"),
                tonic::Code::Unavailable,
                true,
            ),
            (
                RosError::timeout("v", s.clone(), Duration::from_secs(3)),
                tonic::Code::DeadlineExceeded,
                true,
            ),
            (
                RosError::unparseable("disk", s.clone(), "x"),
                tonic::Code::Internal,
                false,
            ),
            (
                RosError::PermissionDenied {
                    verb: "v",
                    subject: s.clone(),
                    text: "not enough permissions (9)".into(),
                },
                tonic::Code::PermissionDenied,
                false,
            ),
            (
                RosError::from(InvalidValue::new(Field::Slot, "a;b", "bad")),
                tonic::Code::InvalidArgument,
                false,
            ),
        ];
        for (err, code, retry) in cases {
            assert_eq!(err.code(), code, "{err}");
            assert_eq!(err.is_retryable(), retry, "{err}");
        }
    }

    #[test]
    fn hostile_output_is_escaped_and_cut() {
        let nasty = format!("failure: \u{1b}[31m{}\0", "x".repeat(10_000));
        let err = classify("disk-add", None, &nasty, "", None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.len() < 1_000, "{}", msg.len());
        assert!(!msg.contains('\u{1b}') && !msg.contains('\0'));
    }
}
