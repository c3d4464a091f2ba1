//! The checks cases make, each turning a mismatch into a message that says what was
//! expected and what came back — the form the deviation report at the end quotes.

use std::fmt::Debug;

use tonic::{Code, Status};

/// The CSI spelling of a gRPC code (`INVALID_ARGUMENT`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A failed call shown as `CODE: message`.
pub fn shown(s: &Status) -> String {
    format!("{}: {}", code_name(s.code()), s.message())
}

/// `call` must have failed with `want`.
pub fn fails_with<T: Debug>(
    call: &str,
    result: Result<T, Status>,
    want: Code,
) -> Result<(), String> {
    fails_with_any(call, result, &[want])
}

/// `call` must have failed with one of `wanted`.
pub fn fails_with_any<T: Debug>(
    call: &str,
    result: Result<T, Status>,
    wanted: &[Code],
) -> Result<(), String> {
    let expected: Vec<&str> = wanted.iter().map(|c| code_name(*c)).collect();
    let expected = expected.join(" or ");
    match result {
        Err(s) if wanted.contains(&s.code()) => Ok(()),
        Err(s) => Err(format!("{call}: expected {expected}, got {}", shown(&s))),
        Ok(v) => Err(format!("{call}: expected {expected}, got OK ({v:?})")),
    }
}

/// `call` must have succeeded; returns its answer.
pub fn succeeds<T>(call: &str, result: Result<T, Status>) -> Result<T, String> {
    result.map_err(|s| format!("{call}: expected OK, got {}", shown(&s)))
}

/// `cond` must hold.
pub fn ensure(cond: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(why()) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn mismatches_say_what_was_expected_and_what_came_back() {
        assert!(fails_with::<()>("X", Err(Status::not_found("gone")), Code::NotFound).is_ok());
        let e = fails_with::<()>("X", Err(Status::invalid_argument("bad")), Code::NotFound)
            .unwrap_err();
        assert_eq!(e, "X: expected NOT_FOUND, got INVALID_ARGUMENT: bad");
        let e = fails_with("X", Ok(7), Code::AlreadyExists).unwrap_err();
        assert_eq!(e, "X: expected ALREADY_EXISTS, got OK (7)");
        let e = fails_with_any::<()>(
            "X",
            Err(Status::internal("boom")),
            &[Code::InvalidArgument, Code::OutOfRange],
        )
        .unwrap_err();
        assert!(e.contains("INVALID_ARGUMENT or OUT_OF_RANGE"), "{e}");
        assert_eq!(succeeds("X", Ok::<_, Status>(3)).unwrap(), 3);
        assert!(
            succeeds::<()>("X", Err(Status::aborted("busy")))
                .unwrap_err()
                .contains("expected OK, got ABORTED")
        );
        assert!(ensure(false, || "no".into()).is_err());
    }
}
