//! nvme-helper: the privileged node-side process of rds-csi.
//!
//! This crate holds the kernel-contract layer the helper stands on: validated NQNs and connect
//! specs, the sysfs view of NVMe controllers and namespaces, the `Fabric` seam with its kernel
//! implementation (`/dev/nvme-fabrics`, no nvme-cli), host identity, path and option
//! allow-lists, the mount table, the format-safety probe and the external tool runner. Every
//! failure is a `HelperError`, mapped to a gRPC code in exactly one place.

pub mod blank_probe;
pub mod connect_spec;
pub mod error;
pub mod external;
pub mod fabric;
pub mod fake_sysfs;
pub mod host_identity;
pub mod kubelet_path;
pub mod mount_options;
pub mod mountinfo;
pub mod nqn;
pub mod sysfs;
