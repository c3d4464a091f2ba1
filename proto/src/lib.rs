//! The crate every rds-csi hop shares.
//!
//! It holds the contracts (the CSI v1 services and the two internal services, generated
//! from `proto/`), and everything about a gRPC hop that must not be written twice: the
//! tower layers that record metrics, traces and request ids on both ends of a call, the
//! endpoint grammar and socket handling, the telemetry set-up and the `/metrics` server.

pub mod channel;
pub mod component;
pub mod endpoint;
pub mod flags;
pub mod hop;
pub mod metrics_server;
pub mod raw_codec;
pub mod serve;
pub mod shutdown;
pub mod socket_access;
pub mod telemetry;

/// CSI v1, wire-identical to the published specification.
#[allow(clippy::all, missing_docs)]
pub mod csi {
    tonic::include_proto!("csi.v1");
}

/// The frontend → gateway contract.
#[allow(clippy::all, missing_docs)]
pub mod gateway {
    tonic::include_proto!("rdscsi.gateway.v1");
}

/// The frontend → node helper contract.
#[allow(clippy::all, missing_docs)]
pub mod helper {
    tonic::include_proto!("rdscsi.helper.v1");
}
