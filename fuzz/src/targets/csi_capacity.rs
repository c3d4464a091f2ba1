//! `csi_capacity`: the frontend's capacity-range and volume-capability validators, and what the
//! gateway and the node helper make of what they accept.
//!
//! Input fields: `required_bytes`, `limit_bytes`, the content-source size, the access mode, the
//! access type selector, `fs_type`, `volume_mount_group`, then mount flags. Numbers are decimal
//! text; a field that is not a number is read as its first 8 bytes, little-endian. Oracles:
//! - nothing panics; refusals are escaped ASCII of bounded length;
//! - an accepted size is whole MiB, at least what was required and the source's size, within
//!   the limit, positive and a valid CSI (signed) size; the gateway's own rounding leaves it
//!   unchanged and its disk builders accept it; expansion without a size is refused;
//! - rounding never rounds down;
//! - an accepted mount capability is never multi-node; its flags are single words the node
//!   helper's allow-list can read without panicking.

use csi_frontend::capabilities::{
    Access, Capability, GRANULARITY, create_size, expand_size, round_up,
};
use nvme_helper::mount_options::{FsType, parse_mount_options};
use rds_csi_proto::csi::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
use rds_csi_proto::csi::{CapacityRange, VolumeCapability};
use rds_gateway::routeros::command::DiskResize;
use rds_gateway::routeros::names::Slot;
use rds_gateway::routeros::size::{self, Bytes};

use crate::input::Fields;
use crate::oracle::{LogRule, assert_log_safe};

/// Numbers at the edges of sizes, and mount flags.
pub const DICTIONARY: &[&[u8]] = &[
    b"1048576",
    b"1048575",
    b"1048577",
    b"1073741824",
    b"1610612736",
    b"9223372036853727232",
    b"9223372036853727233",
    b"ext4",
    b"xfs",
    b"btrfs",
    b"noatime",
    b"discard",
    b"ro,nosuid",
    b"uid=1000",
];

fn number(f: &mut Fields<'_>) -> i64 {
    let raw = f.bytes();
    if let Some(n) = std::str::from_utf8(raw)
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
    {
        return n;
    }
    let mut bytes = [0u8; 8];
    for (slot, b) in bytes.iter_mut().zip(raw) {
        *slot = *b;
    }
    i64::from_le_bytes(bytes)
}

fn refused(what: &str, message: String) {
    assert_log_safe(what, &message, LogRule::EscapedAscii { max_len: 2048 });
}

/// Checks a size the frontend will ask the gateway for.
fn check_size(bytes: u64, needed: u64, limit: Option<u64>) {
    assert!(bytes > 0, "size 0 accepted");
    assert_eq!(bytes % GRANULARITY, 0, "size {bytes} is not whole MiB");
    assert!(bytes >= needed, "size {bytes} is below the {needed} needed");
    assert!(bytes <= i64::MAX as u64, "size {bytes} is not a CSI size");
    if let Some(l) = limit {
        assert!(bytes <= l, "size {bytes} is over the limit {l}");
    }
    let b = Bytes::new(bytes);
    assert_eq!(size::round_up(b), Ok(b), "the gateway rounds {bytes} again");
    let slot = Slot::parse("pvc-fuzz").unwrap_or_else(|e| panic!("fixed slot: {e}"));
    assert!(
        DiskResize::new(&slot, b).is_ok(),
        "the gateway refuses size {bytes}"
    );
}

/// Validates the fuzzed range and capability and checks the oracles above.
pub fn csi_capacity(data: &[u8]) {
    let mut f = Fields::new(data);
    let required = number(&mut f);
    let limit = number(&mut f);
    let floor = number(&mut f) as u64;
    let mode = number(&mut f) as i32;
    let kind = f.byte();
    let fs_type = f.text().into_owned();
    let mount_group = f.text().into_owned();
    let flags: Vec<String> = f.rest_text().into_iter().map(|t| t.into_owned()).collect();

    let range = CapacityRange {
        required_bytes: required,
        limit_bytes: limit,
    };
    let limit_u = u64::try_from(limit).ok().filter(|l| *l > 0);
    let required_u = u64::try_from(required).unwrap_or(0);
    for source in [0, floor] {
        match create_size(Some(&range), source) {
            Ok(s) => {
                assert!(required >= 0 && limit >= 0, "negative range accepted");
                check_size(s.bytes, required_u.max(source), limit_u);
                assert_eq!(s.limit, limit_u, "limit");
            }
            Err(e) => refused("capacity error", e.to_string()),
        }
    }
    match create_size(None, 0) {
        Ok(s) => check_size(s.bytes, 1, None),
        Err(e) => panic!("no range must give the default size: {e}"),
    }
    match expand_size(Some(&range)) {
        Ok(s) => {
            assert!(required > 0, "expansion without a size accepted");
            check_size(s.bytes, required_u, limit_u);
        }
        Err(e) => refused("expand error", e.to_string()),
    }
    assert!(
        expand_size(None).is_err(),
        "expansion without a range accepted"
    );
    let x = required_u;
    if let Some(r) = round_up(x) {
        assert!(
            r >= x && r % GRANULARITY == 0 && r - x < GRANULARITY,
            "round_up({x}) = {r}"
        );
    } else {
        assert!(
            x > i64::MAX as u64 - GRANULARITY + 1,
            "round_up({x}) refused a size that fits"
        );
    }

    let access_type = match kind % 3 {
        0 => None,
        1 => Some(AccessType::Block(BlockVolume {})),
        _ => Some(AccessType::Mount(MountVolume {
            fs_type,
            mount_flags: flags,
            volume_mount_group: mount_group,
        })),
    };
    let cap = VolumeCapability {
        access_mode: (kind % 7 != 6).then_some(AccessMode { mode }),
        access_type,
    };
    match Capability::parse(&cap) {
        Ok(c) => {
            if let Access::Mount { mount_flags, .. } = &c.access {
                assert!(!c.mode.multi_node(), "a multi-node filesystem was accepted");
                for flag in mount_flags {
                    assert!(
                        !flag.is_empty()
                            && !flag
                                .chars()
                                .any(|ch| ch.is_whitespace() || ch.is_control() || ch == ','),
                        "mount flag {flag:?} passed"
                    );
                }
                for fs in [FsType::Ext4, FsType::Xfs] {
                    let _ = parse_mount_options(fs, mount_flags);
                }
            }
            let _ = (
                c.is_block(),
                c.fs_type(),
                c.mount_flags(),
                c.mode.read_only(),
                c.mode.name(),
            );
        }
        Err(e) => refused("capability error", e.to_string()),
    }
}
