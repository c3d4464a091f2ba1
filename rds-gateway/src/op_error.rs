//! The error of the gateway's operations (volumes, snapshots, capacity), and the one place that
//! decides its gRPC code.
//!
//! RouterOS failures travel inside as [`RosError`] and keep the code `RosError::code` gives them;
//! the other variants are decisions the operations make themselves (a conflicting existing disk,
//! a size beyond the limit, a bad page token ...). Every variant names the slot, field or pool it
//! is about.

use crate::routeros::RosError;
use crate::routeros::names::{InvalidValue, PoolPath, Slot};

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// A RouterOS command failed.
    #[error(transparent)]
    Ros(#[from] RosError),
    /// A request field is malformed.
    #[error("{field}: {source}")]
    InvalidField {
        /// The request field.
        field: &'static str,
        /// What is wrong with its value.
        source: InvalidValue,
    },
    /// A request field is missing or out of its domain.
    #[error("{field}: {problem}")]
    BadRequest {
        /// The request field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The slot does not start with a managed prefix, so the gateway will not touch it.
    #[error("{field}: slot {slot} is outside the managed slot prefixes ({prefixes})")]
    Unmanaged {
        /// The request field.
        field: &'static str,
        /// The slot.
        slot: Slot,
        /// The managed prefixes, comma-separated.
        prefixes: String,
    },
    /// No such volume or snapshot.
    #[error("{what} {slot} not found")]
    NotFound {
        /// `volume`, `snapshot`, `source volume`, ...
        what: &'static str,
        /// The slot.
        slot: Slot,
    },
    /// A disk with this slot exists and does not match the request.
    #[error("slot {slot} already exists and differs from the request: {differences}")]
    Conflict {
        /// The slot.
        slot: Slot,
        /// What differs.
        differences: String,
    },
    /// The size cannot be honoured within the limits.
    #[error("slot {slot}: {detail}")]
    OutOfRange {
        /// The slot.
        slot: Slot,
        /// Why.
        detail: String,
    },
    /// A page token that this gateway did not hand out.
    #[error("starting_token {token} is not valid: {reason}")]
    BadToken {
        /// The token, escaped for display.
        token: String,
        /// Why.
        reason: &'static str,
    },
    /// Another operation on the slot did not finish in time.
    #[error("another operation on slot {slot} is still in progress; retry later")]
    Pending {
        /// The slot.
        slot: Slot,
    },
    /// A mutation reported success but reading back shows otherwise.
    #[error("slot {slot}: {detail}")]
    Unverified {
        /// The slot.
        slot: Slot,
        /// What reading back showed.
        detail: String,
    },
    /// Pool capacity has not been read yet.
    #[error("capacity of pool {pool} is not known yet: {detail}")]
    CapacityUnknown {
        /// The pool.
        pool: PoolPath,
        /// Why (the last refresh error, or that none ran yet).
        detail: String,
    },
}

impl OpError {
    /// The gRPC code of this error. Every status the gateway returns for a failed operation takes
    /// its code from here.
    pub fn code(&self) -> tonic::Code {
        match self {
            OpError::Ros(e) => e.code(),
            OpError::InvalidField { .. }
            | OpError::BadRequest { .. }
            | OpError::Unmanaged { .. } => tonic::Code::InvalidArgument,
            OpError::NotFound { .. } => tonic::Code::NotFound,
            OpError::Conflict { .. } => tonic::Code::AlreadyExists,
            OpError::OutOfRange { .. } => tonic::Code::OutOfRange,
            OpError::BadToken { .. } | OpError::Pending { .. } => tonic::Code::Aborted,
            OpError::Unverified { .. } => tonic::Code::Internal,
            OpError::CapacityUnknown { .. } => tonic::Code::Unavailable,
        }
    }

    /// A malformed request field.
    pub fn invalid(field: &'static str, source: InvalidValue) -> Self {
        OpError::InvalidField { field, source }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::routeros::Subject;
    use crate::routeros::names::Field;
    use std::time::Duration;

    #[test]
    fn codes_and_messages_name_their_subject() {
        let slot = Slot::parse("pvc-9").unwrap();
        let cases = [
            (
                OpError::Ros(RosError::timeout(
                    "disk-add",
                    Subject::Slot(slot.clone()),
                    Duration::from_secs(1),
                )),
                tonic::Code::DeadlineExceeded,
            ),
            (
                OpError::invalid(
                    "slot",
                    InvalidValue::new(Field::Slot, "a;b", "only lowercase letters"),
                ),
                tonic::Code::InvalidArgument,
            ),
            (
                OpError::NotFound {
                    what: "volume",
                    slot: slot.clone(),
                },
                tonic::Code::NotFound,
            ),
            (
                OpError::Conflict {
                    slot: slot.clone(),
                    differences: "size".into(),
                },
                tonic::Code::AlreadyExists,
            ),
            (
                OpError::OutOfRange {
                    slot: slot.clone(),
                    detail: "x".into(),
                },
                tonic::Code::OutOfRange,
            ),
            (
                OpError::Pending { slot: slot.clone() },
                tonic::Code::Aborted,
            ),
            (
                OpError::Unverified {
                    slot: slot.clone(),
                    detail: "x".into(),
                },
                tonic::Code::Internal,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code, "{err}");
            let text = err.to_string();
            assert!(
                text.contains("pvc-9") || text.starts_with("slot:"),
                "{text}"
            );
        }
    }
}
