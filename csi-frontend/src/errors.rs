//! The one place where a failure becomes a CSI status code.
//!
//! Every handler works with [`FrontendError`]; the conversion to `tonic::Status` is a single
//! exhaustive match, so a new kind of failure cannot reach the CO without someone deciding its
//! code. Failures relayed from rds-gateway and nvme-helper keep the code those services chose
//! (they assign it once, from their own typed errors) with three exceptions that would mislead
//! the CO: a peer that does not implement a call (version skew) and a peer's authentication
//! failure become `INTERNAL`, and a success without a status cannot occur. Messages name the
//! volume and, when the sidecars passed it, the claim (`namespace/name`), and say what to do.

use std::fmt;

use tonic::{Code, Status};

use crate::attachments::AttachError;
use crate::capabilities::{CapabilityError, CapacityError};
use crate::ids::IdError;
use crate::inflight::Busy;
use crate::known_nodes::NodeLookupError;
use crate::params::ParamError;
use crate::paths::PathError;
use crate::volume_context::ContextError;

/// Which internal service a call was relayed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Gateway,
    Helper,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Peer::Gateway => "rds-gateway",
            Peer::Helper => "nvme-helper",
        })
    }
}

/// What a request is about, for messages a user can act on. Boxed, so that errors that
/// carry it stay small.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject(Box<SubjectParts>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SubjectParts {
    volume: Option<String>,
    snapshot: Option<String>,
    node: Option<String>,
    /// `namespace/name` of the PersistentVolumeClaim, when the sidecars passed it.
    pvc: Option<String>,
}

impl Subject {
    pub fn volume(id: impl ToString) -> Subject {
        let mut s = Subject::default();
        s.0.volume = Some(id.to_string());
        s
    }

    pub fn snapshot(id: impl ToString) -> Subject {
        let mut s = Subject::default();
        s.0.snapshot = Some(id.to_string());
        s
    }

    pub fn with_pvc(mut self, pvc: Option<String>) -> Subject {
        self.0.pvc = pvc;
        self
    }

    pub fn with_node(mut self, node: impl ToString) -> Subject {
        self.0.node = Some(node.to_string());
        self
    }

    pub fn pvc(&self) -> Option<&str> {
        self.0.pvc.as_deref()
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.0;
        let mut parts = Vec::new();
        if let Some(v) = &p.volume {
            parts.push(format!("volume {v}"));
        }
        if let Some(s) = &p.snapshot {
            parts.push(format!("snapshot {s}"));
        }
        if let Some(n) = &p.node {
            parts.push(format!("node {n}"));
        }
        let mut text = if parts.is_empty() {
            "the request".to_string()
        } else {
            parts.join(" on ")
        };
        if let Some(pvc) = &p.pvc {
            text.push_str(&format!(" (PVC {pvc})"));
        }
        f.write_str(&text)
    }
}

/// Everything that can make a CSI call fail.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error(transparent)]
    Id(#[from] IdError),
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    #[error("{subject}: {source}")]
    Capacity {
        subject: Subject,
        source: CapacityError,
    },
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("{subject}: {source}")]
    Context {
        subject: Subject,
        source: ContextError,
    },
    #[error(transparent)]
    Busy(#[from] Busy),
    #[error(transparent)]
    Node(#[from] NodeLookupError),
    #[error("{source}{}", pvc_note(.pvc))]
    Attach {
        pvc: Option<String>,
        source: Box<AttachError>,
    },
    #[error(
        "starting_token {token} is not valid ({reason}); start the listing again with an empty token"
    )]
    BadToken { token: String, reason: &'static str },
    #[error("{subject} does not exist{}", hint_suffix(.hint))]
    NotFound {
        subject: Subject,
        hint: &'static str,
    },
    #[error("{subject} already exists but {reason}; use another name or fix the request")]
    AlreadyExists { subject: Subject, reason: String },
    #[error("{subject}: {reason}")]
    Precondition { subject: Subject, reason: String },
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("{subject}: {reason}")]
    Internal { subject: Subject, reason: String },
    #[error("{op} for {subject} failed in {peer}: {}{}", .status.message(), relay_hint(*.peer, .status.code()))]
    Relay {
        peer: Peer,
        op: &'static str,
        subject: Subject,
        status: Box<Status>,
    },
}

fn pvc_note(pvc: &Option<String>) -> String {
    pvc.as_ref()
        .map(|p| format!(" (PVC {p})"))
        .unwrap_or_default()
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("; {hint}")
    }
}

/// What a user or operator can do about a relayed failure.
fn relay_hint(peer: Peer, code: Code) -> String {
    match (peer, code) {
        (Peer::Gateway, Code::Unavailable) => {
            " (rds-gateway is unreachable or has no working session to the RDS; check its /readyz and logs, the call is retried)".into()
        }
        (Peer::Helper, Code::Unavailable) => {
            " (the node's nvme-helper is unreachable; check that its pod runs on this node, the call is retried)".into()
        }
        (_, Code::Unknown) => format!(
            " (the connection to {peer} broke during the call, usually because it restarted; the call is retried)"
        ),
        (_, Code::DeadlineExceeded) => {
            " (the call ran out of time; it is retried with the same arguments)".into()
        }
        (Peer::Gateway, Code::ResourceExhausted) => {
            " (the RDS storage pool has no room for this; free space or ask for less)".into()
        }
        (_, Code::Unimplemented) => format!(
            " ({peer} does not implement this call: run matching versions of csi-frontend and {peer})"
        ),
        (_, Code::Unauthenticated | Code::PermissionDenied) => {
            format!(" ({peer} refused the frontend; check the deployment's socket permissions)")
        }
        _ => String::new(),
    }
}

/// The CSI code of a relayed failure.
fn relay_code(code: Code) -> Code {
    match code {
        Code::Ok => Code::Internal,
        Code::Cancelled => Code::Cancelled,
        // The gateway and the helper never answer UNKNOWN themselves: tonic reports a
        // connection that broke mid-call (the peer crashed or restarted) that way, and the
        // call is safe to retry once the peer is back.
        Code::Unknown => Code::Unavailable,
        Code::InvalidArgument => Code::InvalidArgument,
        Code::DeadlineExceeded => Code::DeadlineExceeded,
        Code::NotFound => Code::NotFound,
        Code::AlreadyExists => Code::AlreadyExists,
        Code::PermissionDenied => Code::Internal,
        Code::ResourceExhausted => Code::ResourceExhausted,
        Code::FailedPrecondition => Code::FailedPrecondition,
        Code::Aborted => Code::Aborted,
        Code::OutOfRange => Code::OutOfRange,
        Code::Unimplemented => Code::Internal,
        Code::Internal => Code::Internal,
        Code::Unavailable => Code::Unavailable,
        Code::DataLoss => Code::Internal,
        Code::Unauthenticated => Code::Internal,
    }
}

impl FrontendError {
    /// A relayed failure of `op` on `subject`.
    pub fn relay(
        peer: Peer,
        op: &'static str,
        subject: &Subject,
    ) -> impl FnOnce(Status) -> FrontendError {
        let subject = subject.clone();
        move |status| FrontendError::Relay {
            peer,
            op,
            subject,
            status: Box::new(status),
        }
    }

    /// The CSI status code of this failure.
    pub fn code(&self) -> Code {
        match self {
            FrontendError::Missing(_)
            | FrontendError::Id(_)
            | FrontendError::Param(_)
            | FrontendError::Capability(_)
            | FrontendError::Path(_)
            | FrontendError::Context { .. } => Code::InvalidArgument,
            FrontendError::Capacity { source, .. } => match source {
                CapacityError::Negative { .. }
                | CapacityError::RequiredOverLimit { .. }
                | CapacityError::NoExpandSize => Code::InvalidArgument,
                CapacityError::CannotMeetLimit { .. } | CapacityError::TooLarge { .. } => {
                    Code::OutOfRange
                }
            },
            FrontendError::Busy(_) => Code::Aborted,
            FrontendError::Node(NodeLookupError::Unknown { .. }) => Code::NotFound,
            FrontendError::Node(NodeLookupError::Api { .. }) => Code::Unavailable,
            FrontendError::Attach { source, .. } => match source.as_ref() {
                AttachError::OtherNode { .. }
                | AttachError::MigrationFull { .. }
                | AttachError::MigrationExpired { .. } => Code::FailedPrecondition,
                AttachError::Incompatible { .. } => Code::AlreadyExists,
                AttachError::Store { .. } => Code::Internal,
            },
            FrontendError::BadToken { .. } => Code::Aborted,
            FrontendError::NotFound { .. } => Code::NotFound,
            FrontendError::AlreadyExists { .. } => Code::AlreadyExists,
            FrontendError::Precondition { .. } => Code::FailedPrecondition,
            FrontendError::Unsupported(_) => Code::Unimplemented,
            FrontendError::Internal { .. } => Code::Internal,
            FrontendError::Relay { status, .. } => relay_code(status.code()),
        }
    }
}

impl From<FrontendError> for Status {
    fn from(e: FrontendError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

/// Turns a handler's result into the gRPC answer, logging a failure once with its code.
pub fn respond<T>(
    rpc: &'static str,
    result: Result<T, FrontendError>,
) -> Result<tonic::Response<T>, Status> {
    match result {
        Ok(v) => Ok(tonic::Response::new(v)),
        Err(e) => {
            let status = Status::from(e);
            match status.code() {
                Code::Aborted | Code::NotFound | Code::AlreadyExists => {
                    tracing::info!(rpc, code = ?status.code(), message = status.message(), "call refused")
                }
                _ => {
                    tracing::warn!(rpc, code = ?status.code(), message = status.message(), "call failed")
                }
            }
            Err(status)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn relayed(peer: Peer, code: Code) -> Status {
        let subject = Subject::volume("pvc-1").with_pvc(Some("db/data".into()));
        FrontendError::relay(peer, "CreateVolume", &subject)(Status::new(code, "boom")).into()
    }

    #[test]
    fn relayed_codes_keep_their_meaning() {
        for (code, want) in [
            (Code::NotFound, Code::NotFound),
            (Code::AlreadyExists, Code::AlreadyExists),
            (Code::ResourceExhausted, Code::ResourceExhausted),
            (Code::Unavailable, Code::Unavailable),
            (Code::DeadlineExceeded, Code::DeadlineExceeded),
            (Code::InvalidArgument, Code::InvalidArgument),
            (Code::FailedPrecondition, Code::FailedPrecondition),
            (Code::Aborted, Code::Aborted),
            (Code::OutOfRange, Code::OutOfRange),
            (Code::Cancelled, Code::Cancelled),
            (Code::Internal, Code::Internal),
            (Code::Unknown, Code::Unavailable),
            (Code::DataLoss, Code::Internal),
            (Code::Unimplemented, Code::Internal),
            (Code::PermissionDenied, Code::Internal),
            (Code::Unauthenticated, Code::Internal),
            (Code::Ok, Code::Internal),
        ] {
            assert_eq!(relayed(Peer::Gateway, code).code(), want, "{code:?}");
        }
    }

    #[test]
    fn relayed_messages_name_the_volume_the_claim_and_what_to_do() {
        let s = relayed(Peer::Gateway, Code::Unavailable);
        let m = s.message();
        assert!(m.contains("pvc-1") && m.contains("db/data"), "{m}");
        assert!(m.contains("rds-gateway") && m.contains("boom"), "{m}");
        assert!(m.contains("/readyz"), "{m}");
        let m = relayed(Peer::Helper, Code::Unimplemented)
            .message()
            .to_string();
        assert!(m.contains("matching versions"), "{m}");
    }

    #[test]
    fn local_failures_map_to_their_codes() {
        let cases: Vec<(FrontendError, Code)> = vec![
            (FrontendError::Missing("name"), Code::InvalidArgument),
            (
                IdError::Empty { what: "volume_id" }.into(),
                Code::InvalidArgument,
            ),
            (ParamError::NoAddress.into(), Code::InvalidArgument),
            (CapabilityError::NoAccessMode.into(), Code::InvalidArgument),
            (
                FrontendError::Capacity {
                    subject: Subject::default(),
                    source: CapacityError::RequiredOverLimit {
                        required: 2,
                        limit: 1,
                    },
                },
                Code::InvalidArgument,
            ),
            (
                FrontendError::Capacity {
                    subject: Subject::default(),
                    source: CapacityError::CannotMeetLimit {
                        needed: 2,
                        limit: 1,
                    },
                },
                Code::OutOfRange,
            ),
            (
                Busy {
                    kind: "volume",
                    id: "pvc-1".into(),
                }
                .into(),
                Code::Aborted,
            ),
            (
                FrontendError::Attach {
                    pvc: None,
                    source: Box::new(AttachError::OtherNode {
                        volume: "v".into(),
                        attached_to: "a".into(),
                        requested: "b".into(),
                    }),
                },
                Code::FailedPrecondition,
            ),
            (
                FrontendError::Attach {
                    pvc: None,
                    source: Box::new(AttachError::Incompatible {
                        volume: "v".into(),
                        node: "a".into(),
                        reason: "x".into(),
                    }),
                },
                Code::AlreadyExists,
            ),
            (
                FrontendError::BadToken {
                    token: "x".into(),
                    reason: "y",
                },
                Code::Aborted,
            ),
            (
                FrontendError::NotFound {
                    subject: Subject::volume("v"),
                    hint: "",
                },
                Code::NotFound,
            ),
            (
                FrontendError::Unsupported("GetSnapshot"),
                Code::Unimplemented,
            ),
        ];
        for (e, code) in cases {
            let text = e.to_string();
            assert_eq!(Status::from(e).code(), code, "{text}");
        }
    }

    #[test]
    fn busy_message_is_the_documented_one() {
        let s: Status = FrontendError::from(Busy {
            kind: "volume",
            id: "pvc-9".into(),
        })
        .into();
        assert!(
            s.message()
                .contains("an operation for volume pvc-9 is already in progress"),
            "{}",
            s.message()
        );
    }
}
