//! `routeros_classify`: the recogniser that turns RouterOS failure text and exit statuses into
//! typed errors.
//!
//! Input fields: exit status selector, stdout, stderr, slot. Oracles:
//! - nothing panics; an error's message is printable ASCII of bounded length (the appliance's text
//!   is escaped and cut before it reaches a log);
//! - a line that starts with `failure:` or `error:` is never read as success, nor is a non-zero
//!   exit status;
//! - the stream does not matter: swapping stdout and stderr gives the same kind of error.

use std::mem::discriminant;

use rds_gateway::routeros::error::classify;
use rds_gateway::routeros::names::Slot;

use crate::input::Fields;
use crate::oracle::{LogRule, assert_log_safe};

/// Tokens of RouterOS failure output.
pub const DICTIONARY: &[&[u8]] = &[
    b"failure: ",
    b"failure: no such item",
    b"failure: not enough space",
    b"no such item",
    b"not enough space",
    b"no space left",
    b"already have",
    b"already exists",
    b"bad command name ",
    b"syntax error (line 1 column 7)",
    b"expected end of command",
    b"expected command name",
    b"input does not match any value of ",
    b"invalid value",
    b"busy",
    b"in use",
    b"device busy",
    b"error: ",
    b"FAILURE:",
    b"comment=\"busy\"",
    b"slot=busy-disk",
    b"key: value",
    b"Flags: X - disabled",
    b"[{\"slot\":\"busy\"}]",
];

/// A bound on an error message: the appliance text is cut at 300 characters, each escaped to at
/// most 10 bytes, plus the verb, the slot and the wording.
const MESSAGE_LIMIT: usize = 4096;

/// Classifies the fuzzed streams and status and checks the oracles above.
pub fn routeros_classify(data: &[u8]) {
    let mut f = Fields::new(data);
    let status = match f.byte() % 6 {
        0 => None,
        1 | 2 => Some(0),
        3 => Some(1),
        4 => Some(255),
        _ => Some(u32::MAX),
    };
    let stdout = f.text();
    let stderr = f.text();
    let slot = Slot::parse(&f.text()).ok();

    let result = classify("disk-add", slot.as_ref(), &stdout, &stderr, status);
    let swapped = classify("disk-add", slot.as_ref(), &stderr, &stdout, status);
    match (&result, &swapped) {
        (Ok(()), Ok(())) => {}
        (Err(a), Err(b)) => assert_eq!(
            discriminant(a),
            discriminant(b),
            "the stream changed the kind of error: {a} / {b}"
        ),
        _ => panic!("the stream decided success: {result:?} / {swapped:?}"),
    }
    match result {
        Ok(()) => {
            assert!(
                matches!(status, None | Some(0)),
                "exit status {status:?} read as success"
            );
            let failure_line = stdout.lines().chain(stderr.lines()).find(|l| {
                let t = l.trim().to_ascii_lowercase();
                t.starts_with("failure:") || t.starts_with("error:")
            });
            assert!(
                failure_line.is_none(),
                "failure text read as success: {failure_line:?}"
            );
        }
        Err(e) => {
            assert_log_safe(
                "classified error",
                &e.to_string(),
                LogRule::EscapedAscii {
                    max_len: MESSAGE_LIMIT,
                },
            );
            let _ = (e.code(), e.is_retryable());
        }
    }
}
