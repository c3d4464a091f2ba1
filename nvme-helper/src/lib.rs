//! nvme-helper: the privileged node-side process of rds-csi.
//!
//! The kernel-contract layer: validated NQNs and connect specs, the sysfs view of NVMe
//! controllers and namespaces, the `Fabric` seam with its kernel implementation
//! (`/dev/nvme-fabrics`, no nvme-cli) and its loop-device implementation for single-machine
//! use, host identity, path and option allow-lists, the mount table, the format-safety probe,
//! filesystem sizes read from superblocks and the external tool runner. Above it, the node
//! operations (stage, with its grow of a filesystem smaller than its device, publish,
//! unpublish, unstage, stats, expand), the stale-mount detector and start-up orphan cleanup,
//! their metrics, and the `NodeHelper` gRPC service. Every failure is a `HelperError`, mapped
//! to a gRPC code in exactly one place. Beside it, the `doctor` preflight checks of a node.

pub mod blank_probe;
pub mod connect_spec;
pub mod device_use;
pub mod doctor;
pub mod doctor_identity;
pub mod doctor_kernel;
pub mod doctor_mounts;
pub mod doctor_tools;
pub mod error;
pub mod expand;
pub mod external;
pub mod fabric;
pub mod fake_sysfs;
pub mod format;
pub mod fs_geometry;
pub mod grow;
pub mod grpc_service;
pub mod host_identity;
pub mod kubelet_path;
pub mod loop_device;
pub mod loop_fabric;
pub mod mount_options;
pub mod mountinfo;
pub mod mounts;
pub mod node;
pub mod nqn;
pub mod offload;
pub mod orphans;
pub mod partitions;
pub mod proc_file;
pub mod publish;
pub mod small_file;
pub mod stage;
pub mod stage_record;
pub mod stale_monitor;
pub mod stats;
pub mod sysfs;
pub mod sysfs_handles;
pub mod unstage;
pub mod volume_guard;
pub mod volume_metrics;
