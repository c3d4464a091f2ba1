//! csi-frontend: the unprivileged CSI endpoint of rds-csi.
//!
//! It speaks CSI v1 to kubelet and the CSI sidecars, validates every request, and relays
//! typed calls to rds-gateway (controller side) and nvme-helper (node side).

pub mod cli;
pub mod identity;
pub mod relay;
