//! Which gRPC codes the CSI spec allows each RPC to end with, written down as data so that the
//! fault matrix can judge every answer it gets and the hostile-input sweep can check that the
//! code it expects for a case is one the spec allows for that RPC at all.
//!
//! Each RPC's list is the spec's error table for that RPC (the `<Rpc> Errors` section), plus the
//! general error scheme every RPC shares, plus the two codes gRPC itself produces for a call
//! that could not be served right now. Each entry says what kind of condition it stands for, so
//! a caller can tell "the request was malformed" (never right for a well-formed request) from
//! "the volume is in this state" and from "try again".

use tonic::{Code, Status};

use crate::e2e_support::acceptable_while_down;

/// The CSI RPCs the driver serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rpc {
    CreateVolume,
    DeleteVolume,
    ControllerPublishVolume,
    ControllerUnpublishVolume,
    ValidateVolumeCapabilities,
    ListVolumes,
    GetCapacity,
    CreateSnapshot,
    DeleteSnapshot,
    ListSnapshots,
    ControllerExpandVolume,
    ControllerGetVolume,
    NodeStageVolume,
    NodeUnstageVolume,
    NodePublishVolume,
    NodeUnpublishVolume,
    NodeGetVolumeStats,
    NodeExpandVolume,
}

impl Rpc {
    /// Every RPC in the table.
    pub const ALL: [Rpc; 18] = [
        Rpc::CreateVolume,
        Rpc::DeleteVolume,
        Rpc::ControllerPublishVolume,
        Rpc::ControllerUnpublishVolume,
        Rpc::ValidateVolumeCapabilities,
        Rpc::ListVolumes,
        Rpc::GetCapacity,
        Rpc::CreateSnapshot,
        Rpc::DeleteSnapshot,
        Rpc::ListSnapshots,
        Rpc::ControllerExpandVolume,
        Rpc::ControllerGetVolume,
        Rpc::NodeStageVolume,
        Rpc::NodeUnstageVolume,
        Rpc::NodePublishVolume,
        Rpc::NodeUnpublishVolume,
        Rpc::NodeGetVolumeStats,
        Rpc::NodeExpandVolume,
    ];

    /// The RPC's name in the spec.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::CreateVolume => "CreateVolume",
            Rpc::DeleteVolume => "DeleteVolume",
            Rpc::ControllerPublishVolume => "ControllerPublishVolume",
            Rpc::ControllerUnpublishVolume => "ControllerUnpublishVolume",
            Rpc::ValidateVolumeCapabilities => "ValidateVolumeCapabilities",
            Rpc::ListVolumes => "ListVolumes",
            Rpc::GetCapacity => "GetCapacity",
            Rpc::CreateSnapshot => "CreateSnapshot",
            Rpc::DeleteSnapshot => "DeleteSnapshot",
            Rpc::ListSnapshots => "ListSnapshots",
            Rpc::ControllerExpandVolume => "ControllerExpandVolume",
            Rpc::ControllerGetVolume => "ControllerGetVolume",
            Rpc::NodeStageVolume => "NodeStageVolume",
            Rpc::NodeUnstageVolume => "NodeUnstageVolume",
            Rpc::NodePublishVolume => "NodePublishVolume",
            Rpc::NodeUnpublishVolume => "NodeUnpublishVolume",
            Rpc::NodeGetVolumeStats => "NodeGetVolumeStats",
            Rpc::NodeExpandVolume => "NodeExpandVolume",
        }
    }

    /// Whether the RPC acts on one volume (or snapshot), so that the spec's "operation
    /// pending" ABORTED applies to it.
    fn per_object(self) -> bool {
        !matches!(
            self,
            Rpc::ListVolumes | Rpc::GetCapacity | Rpc::ListSnapshots
        )
    }
}

/// What kind of condition a code reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request itself is wrong: never the right answer to a well-formed request.
    Request,
    /// The volume, snapshot or node is in a state that forbids the call.
    State,
    /// Nothing is wrong with the request: the call could not be served now; retry.
    Transient,
}

/// One allowed code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    pub code: Code,
    /// The spec's name for the condition.
    pub condition: &'static str,
    pub kind: Kind,
}

const fn allow(code: Code, condition: &'static str, kind: Kind) -> Allowed {
    Allowed {
        code,
        condition,
        kind,
    }
}

/// CSI spec, "Error Scheme" (general error table): "Missing required field | 3
/// INVALID_ARGUMENT | Indicates that a required field is missing from the request.", "Invalid
/// or unsupported field in the request | 3 INVALID_ARGUMENT | Indicates that the one or more
/// fields in this field is either not allowed by the Plugin or has an invalid value.", and
/// "Call not implemented | 12 UNIMPLEMENTED". PERMISSION_DENIED and UNAUTHENTICATED belong to
/// secrets, which this driver takes none of, so they are not listed.
const GENERAL: &[Allowed] = &[
    allow(
        Code::InvalidArgument,
        "missing or invalid field",
        Kind::Request,
    ),
    allow(Code::Unimplemented, "call not implemented", Kind::Request),
];

/// CSI spec, general error table: "Operation pending for volume | 10 ABORTED | Indicates that
/// there is already an operation pending for the specified volume. [...] The Plugin, SHOULD
/// handle this as gracefully as possible, and MAY return this error code to reject secondary
/// calls." (per-volume and per-snapshot RPCs only).
const PENDING: Allowed = allow(
    Code::Aborted,
    "operation pending for volume",
    Kind::Transient,
);

/// gRPC's own status codes for a call that was not served (not CSI's tables): UNAVAILABLE "The
/// service is currently unavailable. This is most likely a transient condition, which can be
/// corrected by retrying with a backoff." and DEADLINE_EXCEEDED "The deadline expired before the
/// operation could complete." A CO retries both.
const NOT_SERVED: &[Allowed] = &[
    allow(Code::Unavailable, "service unavailable", Kind::Transient),
    allow(Code::DeadlineExceeded, "deadline exceeded", Kind::Transient),
];

/// CSI spec, CreateVolume Errors: "Source incompatible or not supported | 3 INVALID_ARGUMENT",
/// "Source does not exist | 5 NOT_FOUND", "Volume already exists but is incompatible | 6
/// ALREADY_EXISTS", "Unable to provision in `accessible_topology` | 8 RESOURCE_EXHAUSTED |
/// [...] (e.g. quota issues)", "Unsupported `capacity_range` | 11 OUT_OF_RANGE | Indicates that
/// the capacity range is not allowed by the Plugin".
const CREATE_VOLUME: &[Allowed] = &[
    allow(Code::NotFound, "source does not exist", Kind::State),
    allow(
        Code::AlreadyExists,
        "volume already exists but is incompatible",
        Kind::State,
    ),
    allow(
        Code::ResourceExhausted,
        "unable to provision (out of space)",
        Kind::State,
    ),
    allow(
        Code::OutOfRange,
        "unsupported capacity_range",
        Kind::Request,
    ),
];

/// CSI spec, DeleteVolume Errors: "Volume in use | 9 FAILED_PRECONDITION | Indicates that the
/// volume corresponding to the specified `volume_id` could not be deleted because it is in use
/// by another resource or has snapshots". A missing volume is `0 OK`.
const DELETE_VOLUME: &[Allowed] = &[allow(
    Code::FailedPrecondition,
    "volume in use",
    Kind::State,
)];

/// CSI spec, ControllerPublishVolume Errors: "Volume does not exist | 5 NOT_FOUND", "Node does
/// not exist | 5 NOT_FOUND", "Volume published but is incompatible | 6 ALREADY_EXISTS", "Volume
/// published to another node | 9 FAILED_PRECONDITION", "Max volumes attached | 8
/// RESOURCE_EXHAUSTED".
const CONTROLLER_PUBLISH: &[Allowed] = &[
    allow(Code::NotFound, "volume or node does not exist", Kind::State),
    allow(
        Code::AlreadyExists,
        "volume published but is incompatible",
        Kind::State,
    ),
    allow(
        Code::FailedPrecondition,
        "volume published to another node",
        Kind::State,
    ),
    allow(Code::ResourceExhausted, "max volumes attached", Kind::State),
];

/// CSI spec, ControllerUnpublishVolume Errors: "Volume does not exist and volume not assumed
/// ControllerUnpublished from node | 5 NOT_FOUND", "Node does not exist and volume not assumed
/// ControllerUnpublished from node | 5 NOT_FOUND".
const CONTROLLER_UNPUBLISH: &[Allowed] = &[allow(
    Code::NotFound,
    "volume or node does not exist",
    Kind::State,
)];

/// CSI spec, ValidateVolumeCapabilities Errors: "Volume does not exist | 5 NOT_FOUND".
const VALIDATE: &[Allowed] = &[allow(Code::NotFound, "volume does not exist", Kind::State)];

/// CSI spec, ListVolumes Errors: "Invalid `starting_token` | 10 ABORTED | Indicates that
/// `starting_token` is not valid." (ListSnapshots has the same row).
const LIST: &[Allowed] = &[allow(
    Code::Aborted,
    "invalid starting_token",
    Kind::Request,
)];

/// CSI spec, GetCapacity: no error table beyond the general one.
const GET_CAPACITY: &[Allowed] = &[];

/// CSI spec, CreateSnapshot Errors: "Snapshot already exists but is incompatible | 6
/// ALREADY_EXISTS", "Operation pending for snapshot | 10 ABORTED", "Not enough space to create
/// snapshot | 8 RESOURCE_EXHAUSTED | There is not enough space on the storage system to handle
/// the create snapshot request." A source that does not exist is answered NOT_FOUND, as
/// CreateVolume's "Source does not exist".
const CREATE_SNAPSHOT: &[Allowed] = &[
    allow(
        Code::AlreadyExists,
        "snapshot already exists but is incompatible",
        Kind::State,
    ),
    allow(
        Code::ResourceExhausted,
        "not enough space to create snapshot",
        Kind::State,
    ),
    allow(Code::NotFound, "source volume does not exist", Kind::State),
];

/// CSI spec, DeleteSnapshot Errors: "Snapshot in use | 9 FAILED_PRECONDITION", "Operation
/// pending for snapshot | 10 ABORTED". A missing snapshot is `0 OK`.
const DELETE_SNAPSHOT: &[Allowed] = &[allow(
    Code::FailedPrecondition,
    "snapshot in use",
    Kind::State,
)];

/// CSI spec, ControllerExpandVolume Errors: "Exceeds capabilities | 3 INVALID_ARGUMENT", "Volume
/// does not exist | 5 NOT FOUND", "Volume in use | 9 FAILED_PRECONDITION", "Unsupported
/// `capacity_range` | 11 OUT_OF_RANGE". NodeExpandVolume has the same table.
const EXPAND: &[Allowed] = &[
    allow(Code::NotFound, "volume does not exist", Kind::State),
    allow(Code::FailedPrecondition, "volume in use", Kind::State),
    allow(
        Code::OutOfRange,
        "unsupported capacity_range",
        Kind::Request,
    ),
];

/// CSI spec, ControllerGetVolume Errors: "Volume does not exist | 5 NOT_FOUND".
const CONTROLLER_GET: &[Allowed] = &[allow(Code::NotFound, "volume does not exist", Kind::State)];

/// CSI spec, NodeStageVolume Errors: "Volume does not exist | 5 NOT_FOUND", "Volume published
/// but is incompatible | 6 ALREADY_EXISTS", "Exceeds capabilities | 9 FAILED_PRECONDITION".
const NODE_STAGE: &[Allowed] = &[
    allow(Code::NotFound, "volume does not exist", Kind::State),
    allow(
        Code::AlreadyExists,
        "volume published but is incompatible",
        Kind::State,
    ),
    allow(
        Code::FailedPrecondition,
        "exceeds capabilities",
        Kind::State,
    ),
];

/// CSI spec, NodeUnstageVolume Errors: "Volume does not exist | 5 NOT_FOUND".
const NODE_UNSTAGE: &[Allowed] = &[allow(Code::NotFound, "volume does not exist", Kind::State)];

/// CSI spec, NodePublishVolume Errors: "Volume does not exist | 5 NOT_FOUND", "Volume published
/// but is incompatible | 6 ALREADY_EXISTS", "Exceeds capabilities | 9 FAILED_PRECONDITION",
/// "Staging target path not set | 9 FAILED_PRECONDITION".
const NODE_PUBLISH: &[Allowed] = &[
    allow(Code::NotFound, "volume does not exist", Kind::State),
    allow(
        Code::AlreadyExists,
        "volume published but is incompatible",
        Kind::State,
    ),
    allow(
        Code::FailedPrecondition,
        "exceeds capabilities or not staged",
        Kind::State,
    ),
];

/// CSI spec, NodeUnpublishVolume Errors: "Volume does not exist | 5 NOT_FOUND".
const NODE_UNPUBLISH: &[Allowed] = &[allow(Code::NotFound, "volume does not exist", Kind::State)];

/// CSI spec, NodeGetVolumeStats Errors: "Volume does not exist | 5 NOT_FOUND | Indicates that a
/// volume corresponding to the specified `volume_id` does not exist on specified
/// `volume_path`."
const NODE_STATS: &[Allowed] = &[allow(Code::NotFound, "volume does not exist", Kind::State)];

/// The RPC's own error table.
fn specific(rpc: Rpc) -> &'static [Allowed] {
    match rpc {
        Rpc::CreateVolume => CREATE_VOLUME,
        Rpc::DeleteVolume => DELETE_VOLUME,
        Rpc::ControllerPublishVolume => CONTROLLER_PUBLISH,
        Rpc::ControllerUnpublishVolume => CONTROLLER_UNPUBLISH,
        Rpc::ValidateVolumeCapabilities => VALIDATE,
        Rpc::ListVolumes | Rpc::ListSnapshots => LIST,
        Rpc::GetCapacity => GET_CAPACITY,
        Rpc::CreateSnapshot => CREATE_SNAPSHOT,
        Rpc::DeleteSnapshot => DELETE_SNAPSHOT,
        Rpc::ControllerExpandVolume | Rpc::NodeExpandVolume => EXPAND,
        Rpc::ControllerGetVolume => CONTROLLER_GET,
        Rpc::NodeStageVolume => NODE_STAGE,
        Rpc::NodeUnstageVolume => NODE_UNSTAGE,
        Rpc::NodePublishVolume => NODE_PUBLISH,
        Rpc::NodeUnpublishVolume => NODE_UNPUBLISH,
        Rpc::NodeGetVolumeStats => NODE_STATS,
    }
}

/// Every code `rpc` may end with besides OK: its own table, the general one, and the codes of a
/// call that was not served.
pub fn allowed(rpc: Rpc) -> Vec<Allowed> {
    let mut out: Vec<Allowed> = specific(rpc).to_vec();
    out.extend_from_slice(GENERAL);
    if rpc.per_object() {
        out.push(PENDING);
    }
    out.extend_from_slice(NOT_SERVED);
    out
}

/// Whether the spec allows `rpc` to end with `code` (OK always is).
pub fn allows(rpc: Rpc, code: Code) -> bool {
    code == Code::Ok || allowed(rpc).iter().any(|a| a.code == code)
}

/// How one answer to a well-formed request is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// An allowed code for a condition of the volume, node or snapshot.
    State(Code),
    /// An allowed code for a call that could not be served now (retry).
    Transient(Code),
    /// The call never reached a server: the client's transport failed (the socket's process is
    /// down). Not the plugin's answer, and what a CO sees while a container restarts.
    Transport,
    /// A code the spec does not allow for this RPC, or one that says a well-formed request was
    /// malformed.
    Wrong(String),
}

impl Verdict {
    /// Whether the CO would retry after this answer.
    pub fn retryable(&self) -> bool {
        matches!(self, Verdict::Transient(_) | Verdict::Transport)
    }
}

/// Judges the answer `r` to a well-formed `rpc` request.
pub fn judge<T>(rpc: Rpc, r: &Result<T, Status>) -> Verdict {
    let s = match r {
        Ok(_) => return Verdict::Ok,
        Err(s) => s,
    };
    let code = s.code();
    if matches!(code, Code::Unknown | Code::Cancelled) && acceptable_while_down(s) {
        return Verdict::Transport;
    }
    match allowed(rpc).iter().find(|a| a.code == code) {
        Some(a) if a.kind == Kind::Transient => Verdict::Transient(code),
        Some(a) if a.kind == Kind::State => Verdict::State(code),
        Some(a) => Verdict::Wrong(format!(
            "{} answered {code:?} ({}) to a well-formed request: {}",
            rpc.name(),
            a.condition,
            short(s.message())
        )),
        None => Verdict::Wrong(format!(
            "{} answered {code:?}, which the spec does not list for it: {}",
            rpc.name(),
            short(s.message())
        )),
    }
}

/// A message cut at 200 characters.
pub fn short(m: &str) -> String {
    let mut out: String = m.chars().take(200).collect();
    if out.len() < m.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_allows_the_general_codes_and_not_internal() {
        for rpc in Rpc::ALL {
            assert!(allows(rpc, Code::InvalidArgument), "{rpc:?}");
            assert!(allows(rpc, Code::Unavailable), "{rpc:?}");
            assert!(!allows(rpc, Code::Internal), "{rpc:?}");
            assert!(!allows(rpc, Code::DataLoss), "{rpc:?}");
        }
    }

    #[test]
    fn rpc_specific_rows_are_only_where_the_spec_puts_them() {
        assert!(allows(Rpc::CreateSnapshot, Code::ResourceExhausted));
        assert!(allows(Rpc::CreateVolume, Code::OutOfRange));
        assert!(!allows(Rpc::DeleteVolume, Code::NotFound));
        assert!(!allows(Rpc::NodeUnpublishVolume, Code::FailedPrecondition));
        assert!(allows(Rpc::ListVolumes, Code::Aborted));
        assert!(!allows(Rpc::GetCapacity, Code::Aborted));
        assert!(allows(Rpc::DeleteVolume, Code::Aborted));
    }

    #[test]
    fn answers_to_well_formed_requests_are_judged_by_kind() {
        let ok: Result<(), Status> = Ok(());
        assert_eq!(judge(Rpc::CreateVolume, &ok), Verdict::Ok);
        let r: Result<(), Status> = Err(Status::unavailable("gateway down"));
        assert_eq!(
            judge(Rpc::CreateVolume, &r),
            Verdict::Transient(Code::Unavailable)
        );
        let r: Result<(), Status> = Err(Status::resource_exhausted("no space"));
        assert_eq!(
            judge(Rpc::CreateVolume, &r),
            Verdict::State(Code::ResourceExhausted)
        );
        let r: Result<(), Status> = Err(Status::unknown("transport error"));
        assert_eq!(judge(Rpc::NodeStageVolume, &r), Verdict::Transport);
        for bad in [
            Status::internal("transport error"),
            Status::invalid_argument("bad"),
            Status::unknown("mkfs failed"),
            Status::not_found("gone"),
        ] {
            let r: Result<(), Status> = Err(bad.clone());
            assert!(
                matches!(judge(Rpc::DeleteVolume, &r), Verdict::Wrong(_)),
                "{bad:?}"
            );
        }
        assert!(Verdict::Transport.retryable());
        assert!(!Verdict::State(Code::NotFound).retryable());
    }
}
