//! csi-frontend: the unprivileged CSI endpoint of rds-csi.
//!
//! It speaks CSI v1 to kubelet and the CSI sidecars, validates every request, and relays
//! typed calls to rds-gateway (controller side) and nvme-helper (node side).

pub mod attachments;
pub mod capabilities;
pub mod cli;
pub mod controller;
pub mod errors;
pub mod identity;
pub mod ids;
pub mod inflight;
pub mod known_nodes;
pub mod listing;
pub mod node;
pub mod paging;
pub mod params;
pub mod paths;
pub mod relay;
pub mod volume_condition;
pub mod volume_context;
