//! Which volume capabilities and sizes this driver accepts.
//!
//! An RDS disk is one NVMe namespace: a single node may use it in any single-node mode, as a
//! block device or through ext4/xfs. Two nodes may share it only as a raw block device, and
//! only for the hand-over of a KubeVirt live migration (QEMU coordinates the writes); sharing
//! a filesystem between nodes would corrupt it, so MULTI_NODE_MULTI_WRITER is refused for
//! mounts. The reader-only multi-node modes are not offered.
//!
//! Sizes are rounded up to the appliance's 1 MiB granularity, never down.

use rds_csi_proto::csi::volume_capability::AccessType;
use rds_csi_proto::csi::volume_capability::access_mode::Mode;
use rds_csi_proto::csi::{CapacityRange, VolumeCapability};

use crate::ids::shown;

/// The appliance allocates disks in whole MiB.
pub const GRANULARITY: u64 = 1 << 20;
/// Size of a volume whose request names no size.
pub const DEFAULT_SIZE: u64 = 1 << 30;

/// A filesystem the node helper can create and mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filesystem {
    Ext4,
    Xfs,
}

impl Filesystem {
    /// Parses a CSI `fs_type`; empty is not accepted here (callers pick the default).
    pub fn parse(raw: &str) -> Option<Filesystem> {
        match raw {
            "ext4" => Some(Filesystem::Ext4),
            "xfs" => Some(Filesystem::Xfs),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Filesystem::Ext4 => "ext4",
            Filesystem::Xfs => "xfs",
        }
    }

    /// The helper API's spelling.
    pub fn to_helper(self) -> rds_csi_proto::helper::Filesystem {
        match self {
            Filesystem::Ext4 => rds_csi_proto::helper::Filesystem::Ext4,
            Filesystem::Xfs => rds_csi_proto::helper::Filesystem::Xfs,
        }
    }
}

/// The access modes this driver knows how to honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    SingleNodeWriter,
    SingleNodeReaderOnly,
    SingleNodeSingleWriter,
    SingleNodeMultiWriter,
    /// Block only: two nodes during a live migration.
    MultiNodeMultiWriter,
}

impl AccessMode {
    pub fn read_only(self) -> bool {
        matches!(self, AccessMode::SingleNodeReaderOnly)
    }

    pub fn multi_node(self) -> bool {
        matches!(self, AccessMode::MultiNodeMultiWriter)
    }

    pub fn name(self) -> &'static str {
        match self {
            AccessMode::SingleNodeWriter => "SINGLE_NODE_WRITER",
            AccessMode::SingleNodeReaderOnly => "SINGLE_NODE_READER_ONLY",
            AccessMode::SingleNodeSingleWriter => "SINGLE_NODE_SINGLE_WRITER",
            AccessMode::SingleNodeMultiWriter => "SINGLE_NODE_MULTI_WRITER",
            AccessMode::MultiNodeMultiWriter => "MULTI_NODE_MULTI_WRITER",
        }
    }
}

/// How the volume is presented on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Block,
    Mount {
        /// `None` when the capability left `fs_type` empty.
        fs_type: Option<Filesystem>,
        mount_flags: Vec<String>,
    },
}

/// One validated volume capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    pub access: Access,
    pub mode: AccessMode,
}

/// Why a capability was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilityError {
    #[error("{what} is required")]
    Missing { what: &'static str },
    #[error("a volume capability must say block or mount (access_type is unset)")]
    NoAccessType,
    #[error("a volume capability must carry an access_mode")]
    NoAccessMode,
    #[error("access mode {0} is not a CSI access mode this driver knows")]
    UnknownMode(i32),
    #[error("access mode {mode} with {access} access is not supported: {hint}")]
    Unsupported {
        mode: &'static str,
        access: &'static str,
        hint: &'static str,
    },
    #[error("fs_type {0} is not supported: use ext4 (the default) or xfs")]
    BadFsType(String),
    #[error("volume_mount_group is not supported by this driver")]
    MountGroup,
    #[error("mount flag {0} is not acceptable: only letters, digits and _ = . : + - are allowed")]
    BadMountFlag(String),
}

impl Capability {
    /// Validates one CSI capability.
    ///
    /// CSI spec, CreateVolumeRequest.volume_capabilities: "The capabilities that the provisioned
    /// volume MUST have. SP MUST provision a volume that will satisfy ALL of the capabilities
    /// specified in this list. Otherwise SP MUST return the appropriate gRPC error code."
    pub fn parse(cap: &VolumeCapability) -> Result<Capability, CapabilityError> {
        let mode_raw = cap
            .access_mode
            .as_ref()
            .ok_or(CapabilityError::NoAccessMode)?
            .mode;
        let mode = match Mode::try_from(mode_raw) {
            Ok(Mode::SingleNodeWriter) => AccessMode::SingleNodeWriter,
            Ok(Mode::SingleNodeReaderOnly) => AccessMode::SingleNodeReaderOnly,
            Ok(Mode::SingleNodeSingleWriter) => AccessMode::SingleNodeSingleWriter,
            Ok(Mode::SingleNodeMultiWriter) => AccessMode::SingleNodeMultiWriter,
            Ok(Mode::MultiNodeMultiWriter) => AccessMode::MultiNodeMultiWriter,
            Ok(Mode::MultiNodeReaderOnly) => {
                return Err(CapabilityError::Unsupported {
                    mode: "MULTI_NODE_READER_ONLY",
                    access: "any",
                    hint: "a disk is attached to one node at a time (two during a live migration)",
                });
            }
            Ok(Mode::MultiNodeSingleWriter) => {
                return Err(CapabilityError::Unsupported {
                    mode: "MULTI_NODE_SINGLE_WRITER",
                    access: "any",
                    hint: "a disk is attached to one node at a time (two during a live migration)",
                });
            }
            Ok(Mode::Unknown) | Err(_) => return Err(CapabilityError::UnknownMode(mode_raw)),
        };
        let access = match cap
            .access_type
            .as_ref()
            .ok_or(CapabilityError::NoAccessType)?
        {
            AccessType::Block(_) => Access::Block,
            AccessType::Mount(m) => {
                if mode.multi_node() {
                    return Err(CapabilityError::Unsupported {
                        mode: "MULTI_NODE_MULTI_WRITER",
                        access: "mount",
                        hint: "a filesystem cannot be shared between nodes; use volumeMode: Block (KubeVirt live migration)",
                    });
                }
                if !m.volume_mount_group.is_empty() {
                    return Err(CapabilityError::MountGroup);
                }
                let fs_type = if m.fs_type.is_empty() {
                    None
                } else {
                    Some(
                        Filesystem::parse(&m.fs_type)
                            .ok_or_else(|| CapabilityError::BadFsType(shown(&m.fs_type)))?,
                    )
                };
                for flag in &m.mount_flags {
                    check_mount_flag(flag)?;
                }
                Access::Mount {
                    fs_type,
                    mount_flags: m.mount_flags.clone(),
                }
            }
        };
        Ok(Capability { access, mode })
    }

    pub fn is_block(&self) -> bool {
        matches!(self.access, Access::Block)
    }

    /// The filesystem asked for, if this is a mount capability that named one.
    pub fn fs_type(&self) -> Option<Filesystem> {
        match &self.access {
            Access::Mount { fs_type, .. } => *fs_type,
            Access::Block => None,
        }
    }

    pub fn mount_flags(&self) -> &[String] {
        match &self.access {
            Access::Mount { mount_flags, .. } => mount_flags,
            Access::Block => &[],
        }
    }
}

/// Validates a non-empty list of capabilities (CreateVolume, ValidateVolumeCapabilities).
pub fn parse_all(caps: &[VolumeCapability]) -> Result<Vec<Capability>, CapabilityError> {
    if caps.is_empty() {
        return Err(CapabilityError::Missing {
            what: "volume_capabilities",
        });
    }
    caps.iter().map(Capability::parse).collect()
}

/// Validates the one capability of a publish, stage or expand call.
pub fn parse_one(cap: Option<&VolumeCapability>) -> Result<Capability, CapabilityError> {
    Capability::parse(cap.ok_or(CapabilityError::Missing {
        what: "volume_capability",
    })?)
}

fn check_mount_flag(flag: &str) -> Result<(), CapabilityError> {
    let ok = !flag.is_empty()
        && flag.len() <= 128
        && flag.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'=' | b'.' | b':' | b'+' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(CapabilityError::BadMountFlag(shown(flag)))
    }
}

/// Why a capacity range cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapacityError {
    #[error("capacity_range.{field} is negative ({value})")]
    Negative { field: &'static str, value: i64 },
    #[error("capacity_range.required_bytes ({required}) is larger than limit_bytes ({limit})")]
    RequiredOverLimit { required: u64, limit: u64 },
    #[error(
        "a volume of at least {needed} bytes, rounded up to whole MiB as the appliance allocates, does not fit limit_bytes {limit}"
    )]
    CannotMeetLimit { needed: u64, limit: u64 },
    #[error("{requested} bytes is larger than the largest volume this driver can create")]
    TooLarge { requested: u64 },
    #[error("capacity_range.required_bytes is required to expand a volume")]
    NoExpandSize,
}

/// A size to ask the appliance for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeRequest {
    /// Whole MiB, at least what the caller (and the content source) needs.
    pub bytes: u64,
    /// The caller's upper bound, if it set one.
    pub limit: Option<u64>,
}

/// Resolves a CreateVolume capacity range; `floor` is the size of the content source (0 for
/// none), below which a volume cannot be made.
///
/// CSI spec, CapacityRange: "required_bytes: Volume MUST be at least this big." and
/// "limit_bytes: Volume MUST not be bigger than this." CreateVolume errors: "Unsupported
/// capacity_range | 11 OUT_OF_RANGE | Indicates that the capacity range is not allowed by the
/// Plugin, for example when trying to create a volume smaller than the source snapshot."
pub fn create_size(
    range: Option<&CapacityRange>,
    floor: u64,
) -> Result<SizeRequest, CapacityError> {
    let (required, limit) = bounds(range)?;
    let mut want = required.max(floor);
    if want == 0 {
        want = match limit {
            Some(l) if l < DEFAULT_SIZE => l - l % GRANULARITY,
            _ => DEFAULT_SIZE,
        };
        if want == 0 {
            return Err(CapacityError::CannotMeetLimit {
                needed: GRANULARITY,
                limit: limit.unwrap_or_default(),
            });
        }
    }
    sized(want, limit)
}

/// Resolves a ControllerExpandVolume / NodeExpandVolume capacity range.
pub fn expand_size(range: Option<&CapacityRange>) -> Result<SizeRequest, CapacityError> {
    let (required, limit) = bounds(range)?;
    if required == 0 {
        return Err(CapacityError::NoExpandSize);
    }
    sized(required, limit)
}

fn bounds(range: Option<&CapacityRange>) -> Result<(u64, Option<u64>), CapacityError> {
    let Some(r) = range else {
        return Ok((0, None));
    };
    let required = u64::try_from(r.required_bytes).map_err(|_| CapacityError::Negative {
        field: "required_bytes",
        value: r.required_bytes,
    })?;
    let limit = u64::try_from(r.limit_bytes).map_err(|_| CapacityError::Negative {
        field: "limit_bytes",
        value: r.limit_bytes,
    })?;
    let limit = (limit > 0).then_some(limit);
    if let Some(l) = limit
        && required > l
    {
        return Err(CapacityError::RequiredOverLimit { required, limit: l });
    }
    Ok((required, limit))
}

fn sized(want: u64, limit: Option<u64>) -> Result<SizeRequest, CapacityError> {
    let bytes = round_up(want).ok_or(CapacityError::TooLarge { requested: want })?;
    if let Some(l) = limit
        && bytes > l
    {
        return Err(CapacityError::CannotMeetLimit {
            needed: want,
            limit: l,
        });
    }
    Ok(SizeRequest { bytes, limit })
}

/// Rounds up to whole MiB; `None` when that does not fit a CSI (signed 64-bit) size.
pub fn round_up(bytes: u64) -> Option<u64> {
    let rounded = bytes.checked_add(GRANULARITY - 1)? / GRANULARITY * GRANULARITY;
    (rounded <= i64::MAX as u64).then_some(rounded)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rds_csi_proto::csi::volume_capability::{AccessMode as CsiMode, BlockVolume, MountVolume};

    fn cap(mode: Mode, block: bool, fs: &str) -> VolumeCapability {
        VolumeCapability {
            access_type: Some(if block {
                AccessType::Block(BlockVolume {})
            } else {
                AccessType::Mount(MountVolume {
                    fs_type: fs.into(),
                    mount_flags: vec![],
                    volume_mount_group: String::new(),
                })
            }),
            access_mode: Some(CsiMode { mode: mode as i32 }),
        }
    }

    #[test]
    fn single_node_modes_work_for_block_and_mount() {
        for mode in [
            Mode::SingleNodeWriter,
            Mode::SingleNodeReaderOnly,
            Mode::SingleNodeSingleWriter,
            Mode::SingleNodeMultiWriter,
        ] {
            for block in [true, false] {
                let c = Capability::parse(&cap(mode, block, "")).unwrap();
                assert_eq!(c.is_block(), block);
                assert!(!c.mode.multi_node());
            }
        }
        assert!(
            Capability::parse(&cap(Mode::SingleNodeReaderOnly, false, ""))
                .unwrap()
                .mode
                .read_only()
        );
    }

    #[test]
    fn multi_node_multi_writer_is_block_only() {
        let c = Capability::parse(&cap(Mode::MultiNodeMultiWriter, true, "")).unwrap();
        assert!(c.mode.multi_node());
        let err = Capability::parse(&cap(Mode::MultiNodeMultiWriter, false, "ext4")).unwrap_err();
        assert!(
            matches!(
                err,
                CapabilityError::Unsupported {
                    access: "mount",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn other_modes_are_unsupported() {
        for mode in [Mode::MultiNodeReaderOnly, Mode::MultiNodeSingleWriter] {
            for block in [true, false] {
                assert!(matches!(
                    Capability::parse(&cap(mode, block, "")),
                    Err(CapabilityError::Unsupported { .. })
                ));
            }
        }
        assert_eq!(
            Capability::parse(&cap(Mode::Unknown, true, "")),
            Err(CapabilityError::UnknownMode(0))
        );
        let mut odd = cap(Mode::SingleNodeWriter, true, "");
        odd.access_mode = Some(CsiMode { mode: 42 });
        assert_eq!(
            Capability::parse(&odd),
            Err(CapabilityError::UnknownMode(42))
        );
        odd.access_mode = None;
        assert_eq!(Capability::parse(&odd), Err(CapabilityError::NoAccessMode));
        let mut no_type = cap(Mode::SingleNodeWriter, true, "");
        no_type.access_type = None;
        assert_eq!(
            Capability::parse(&no_type),
            Err(CapabilityError::NoAccessType)
        );
    }

    #[test]
    fn fs_types() {
        assert_eq!(
            Capability::parse(&cap(Mode::SingleNodeWriter, false, ""))
                .unwrap()
                .fs_type(),
            None
        );
        assert_eq!(
            Capability::parse(&cap(Mode::SingleNodeWriter, false, "xfs"))
                .unwrap()
                .fs_type(),
            Some(Filesystem::Xfs)
        );
        for bad in ["btrfs", "ext3", "EXT4", "ext4;rm"] {
            assert!(matches!(
                Capability::parse(&cap(Mode::SingleNodeWriter, false, bad)),
                Err(CapabilityError::BadFsType(_))
            ));
        }
    }

    #[test]
    fn mount_group_and_odd_flags_are_refused() {
        let mut c = cap(Mode::SingleNodeWriter, false, "ext4");
        if let Some(AccessType::Mount(m)) = c.access_type.as_mut() {
            m.volume_mount_group = "1000".into();
        }
        assert_eq!(Capability::parse(&c), Err(CapabilityError::MountGroup));
        for flag in ["", "no atime", "a,b", "x;y", "/dev/sda"] {
            let mut c = cap(Mode::SingleNodeWriter, false, "ext4");
            if let Some(AccessType::Mount(m)) = c.access_type.as_mut() {
                m.mount_flags = vec![flag.into()];
            }
            assert!(
                matches!(Capability::parse(&c), Err(CapabilityError::BadMountFlag(_))),
                "{flag:?}"
            );
        }
        let mut c = cap(Mode::SingleNodeWriter, false, "ext4");
        if let Some(AccessType::Mount(m)) = c.access_type.as_mut() {
            m.mount_flags = vec!["noatime".into(), "discard".into()];
        }
        assert_eq!(Capability::parse(&c).unwrap().mount_flags().len(), 2);
    }

    #[test]
    fn lists_and_single_capabilities_must_be_present() {
        assert!(matches!(
            parse_all(&[]),
            Err(CapabilityError::Missing { .. })
        ));
        assert!(matches!(
            parse_one(None),
            Err(CapabilityError::Missing { .. })
        ));
        // One bad entry spoils the list.
        assert!(
            parse_all(&[
                cap(Mode::SingleNodeWriter, true, ""),
                cap(Mode::MultiNodeReaderOnly, true, "")
            ])
            .is_err()
        );
    }

    fn range(required: i64, limit: i64) -> CapacityRange {
        CapacityRange {
            required_bytes: required,
            limit_bytes: limit,
        }
    }

    #[test]
    fn sizes_round_up_to_whole_mib() {
        let mib = GRANULARITY as i64;
        // The Go driver's 1.5 GiB request made a 1 GiB file; this one is exact or larger.
        let s = create_size(Some(&range(3 * 512 * mib, 0)), 0).unwrap();
        assert_eq!(s.bytes, 1536 * GRANULARITY);
        assert_eq!(
            create_size(Some(&range(1, 0)), 0).unwrap().bytes,
            GRANULARITY
        );
        assert_eq!(
            create_size(Some(&range(mib + 1, 0)), 0).unwrap().bytes,
            2 * GRANULARITY
        );
        assert_eq!(create_size(None, 0).unwrap().bytes, DEFAULT_SIZE);
        // Unspecified required with a small limit: the limit, rounded down.
        assert_eq!(
            create_size(Some(&range(0, 10 * mib + 5)), 0).unwrap().bytes,
            10 * GRANULARITY
        );
        // The source's size is a floor.
        assert_eq!(
            create_size(Some(&range(mib, 0)), 5 * GRANULARITY)
                .unwrap()
                .bytes,
            5 * GRANULARITY
        );
    }

    #[test]
    fn limits_that_cannot_be_met_are_out_of_range() {
        let mib = GRANULARITY as i64;
        assert!(matches!(
            create_size(Some(&range(mib + 1, mib + 100)), 0),
            Err(CapacityError::CannotMeetLimit { .. })
        ));
        assert!(matches!(
            create_size(Some(&range(0, 1000)), 0),
            Err(CapacityError::CannotMeetLimit { .. })
        ));
        assert!(matches!(
            create_size(Some(&range(mib, 2 * mib)), 4 * GRANULARITY),
            Err(CapacityError::CannotMeetLimit { .. })
        ));
        assert!(matches!(
            create_size(Some(&range(i64::MAX, 0)), 0),
            Err(CapacityError::TooLarge { .. })
        ));
        // Exactly on the limit is fine.
        assert_eq!(
            create_size(Some(&range(2 * mib, 2 * mib)), 0)
                .unwrap()
                .bytes,
            2 * GRANULARITY
        );
    }

    #[test]
    fn inconsistent_ranges_are_invalid() {
        assert!(matches!(
            create_size(Some(&range(10, 5)), 0),
            Err(CapacityError::RequiredOverLimit { .. })
        ));
        assert!(matches!(
            create_size(Some(&range(-1, 0)), 0),
            Err(CapacityError::Negative { .. })
        ));
        assert!(matches!(
            create_size(Some(&range(0, -1)), 0),
            Err(CapacityError::Negative { .. })
        ));
        assert_eq!(expand_size(None), Err(CapacityError::NoExpandSize));
        assert_eq!(
            expand_size(Some(&range(GRANULARITY as i64 * 3 - 1, 0)))
                .unwrap()
                .bytes,
            3 * GRANULARITY
        );
    }
}
