//! How big a filesystem is, read from its own superblock, against how big its device is.
//!
//! Offline expansion (the volume grew while it was not staged) leaves a filesystem smaller than
//! its device; stage must notice it before mounting. The size is read from the on-disk
//! superblock bytes rather than from a tool's text output: ext4 (little-endian, at byte 1024)
//! gives its block count and block size, xfs (big-endian, at byte 0) its data block count and
//! block size. Anything that does not look like the superblock it claims to be is a
//! `SuperblockProblem`, never a panic. The device's size is where a seek to its end lands,
//! which works for block devices and plain image files alike.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{HelperError, Result, SuperblockProblem};
use crate::mount_options::FsType;

/// The smallest shortfall of a filesystem against its device that is worth a grow (a block
/// group smaller than this lowers it): less is rounding, not an expansion.
pub const GROW_MIN_SLACK: u64 = 1 << 20;

/// Bytes read from the start of the device: both superblocks lie inside.
const HEAD_BYTES: usize = 4096;

/// ext4: where the superblock starts and the fields used from it.
const EXT4_SB_OFFSET: usize = 1024;
const EXT4_BLOCKS_LO: usize = 4;
const EXT4_LOG_BLOCK_SIZE: usize = 24;
const EXT4_BLOCKS_PER_GROUP: usize = 32;
const EXT4_MAGIC_AT: usize = 56;
const EXT4_FEATURE_INCOMPAT: usize = 0x60;
const EXT4_BLOCKS_HI: usize = 0x150;
const EXT4_MAGIC: u16 = 0xEF53;
/// `INCOMPAT_64BIT`: only then is the high half of the block count meaningful.
const EXT4_INCOMPAT_64BIT: u32 = 0x80;
/// Largest `s_log_block_size` (64 KiB blocks).
const EXT4_MAX_LOG_BLOCK: u32 = 6;

/// xfs: the fields used from the primary superblock at byte 0.
const XFS_BLOCK_SIZE: usize = 4;
const XFS_DBLOCKS: usize = 8;
const XFS_AGBLOCKS: usize = 84;
const XFS_MAGIC: u32 = 0x5846_5342; // "XFSB"

/// A filesystem's size as its superblock states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Block size in bytes.
    pub block_size: u64,
    /// Number of blocks (xfs: data blocks).
    pub blocks: u64,
    /// Blocks per ext4 block group / xfs allocation group, when stated.
    pub blocks_per_group: Option<u64>,
}

impl Geometry {
    /// The filesystem's size in bytes (checked when parsed: it fits).
    pub fn size_bytes(&self) -> u64 {
        self.blocks.saturating_mul(self.block_size)
    }

    /// The shortfall below which growing is not worth it: one group or 1 MiB, the smaller.
    pub fn min_slack(&self) -> u64 {
        self.blocks_per_group
            .filter(|&g| g > 0)
            .map_or(GROW_MIN_SLACK, |g| {
                g.saturating_mul(self.block_size).min(GROW_MIN_SLACK)
            })
    }

    /// Whether a device of `device_bytes` has room worth growing into.
    pub fn needs_grow(&self, device_bytes: u64) -> bool {
        device_bytes.saturating_sub(self.size_bytes()) >= self.min_slack()
    }
}

/// A filesystem's geometry together with its device's size, read at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// What the superblock says.
    pub geometry: Geometry,
    /// The device's size in bytes.
    pub device_bytes: u64,
}

impl Measured {
    /// Whether the filesystem should be grown to its device.
    pub fn needs_grow(&self) -> bool {
        self.geometry.needs_grow(self.device_bytes)
    }
}

fn slice<const N: usize>(
    bytes: &[u8],
    at: usize,
) -> std::result::Result<[u8; N], SuperblockProblem> {
    at.checked_add(N)
        .and_then(|end| bytes.get(at..end))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or(SuperblockProblem::Short {
            got: bytes.len(),
            needed: at.saturating_add(N),
        })
}

fn le32(bytes: &[u8], at: usize) -> std::result::Result<u32, SuperblockProblem> {
    slice::<4>(bytes, at).map(u32::from_le_bytes)
}

fn be32(bytes: &[u8], at: usize) -> std::result::Result<u32, SuperblockProblem> {
    slice::<4>(bytes, at).map(u32::from_be_bytes)
}

fn checked_geometry(
    block_size: u64,
    blocks: u64,
    blocks_per_group: Option<u64>,
) -> std::result::Result<Geometry, SuperblockProblem> {
    if blocks == 0 {
        return Err(SuperblockProblem::NoBlocks);
    }
    if blocks.checked_mul(block_size).is_none() {
        return Err(SuperblockProblem::Overflow { blocks, block_size });
    }
    Ok(Geometry {
        block_size,
        blocks,
        blocks_per_group,
    })
}

/// Parses the ext4 superblock out of the first bytes of a device (`head` starts at byte 0).
pub fn parse_ext4(head: &[u8]) -> std::result::Result<Geometry, SuperblockProblem> {
    let sb = head.get(EXT4_SB_OFFSET..).unwrap_or_default();
    let short = |e: SuperblockProblem| match e {
        SuperblockProblem::Short { got, needed } => SuperblockProblem::Short {
            got: got.saturating_add(EXT4_SB_OFFSET.min(head.len())),
            needed: needed.saturating_add(EXT4_SB_OFFSET),
        },
        other => other,
    };
    let magic = u16::from_le_bytes(slice::<2>(sb, EXT4_MAGIC_AT).map_err(short)?);
    if magic != EXT4_MAGIC {
        return Err(SuperblockProblem::BadMagic {
            found: u64::from(magic),
            expected: u64::from(EXT4_MAGIC),
        });
    }
    let log_block = le32(sb, EXT4_LOG_BLOCK_SIZE).map_err(short)?;
    if log_block > EXT4_MAX_LOG_BLOCK {
        return Err(SuperblockProblem::BadBlockSize {
            field: u64::from(log_block),
        });
    }
    let block_size = 1024u64 << log_block;
    let lo = le32(sb, EXT4_BLOCKS_LO).map_err(short)?;
    let incompat = le32(sb, EXT4_FEATURE_INCOMPAT).map_err(short)?;
    let hi = if incompat & EXT4_INCOMPAT_64BIT != 0 {
        le32(sb, EXT4_BLOCKS_HI).map_err(short)?
    } else {
        0
    };
    let blocks = (u64::from(hi) << 32) | u64::from(lo);
    let per_group = le32(sb, EXT4_BLOCKS_PER_GROUP).map_err(short)?;
    checked_geometry(block_size, blocks, Some(u64::from(per_group)))
}

/// Parses the xfs primary superblock out of the first bytes of a device.
pub fn parse_xfs(head: &[u8]) -> std::result::Result<Geometry, SuperblockProblem> {
    let magic = be32(head, 0)?;
    if magic != XFS_MAGIC {
        return Err(SuperblockProblem::BadMagic {
            found: u64::from(magic),
            expected: u64::from(XFS_MAGIC),
        });
    }
    let block_size = be32(head, XFS_BLOCK_SIZE)?;
    if !(512..=65536).contains(&block_size) || !block_size.is_power_of_two() {
        return Err(SuperblockProblem::BadBlockSize {
            field: u64::from(block_size),
        });
    }
    let blocks = u64::from_be_bytes(slice::<8>(head, XFS_DBLOCKS)?);
    let per_group = be32(head, XFS_AGBLOCKS)?;
    checked_geometry(u64::from(block_size), blocks, Some(u64::from(per_group)))
}

/// Parses the superblock of `fs` out of the first bytes of a device.
pub fn parse(fs: FsType, head: &[u8]) -> std::result::Result<Geometry, SuperblockProblem> {
    match fs {
        FsType::Ext4 => parse_ext4(head),
        FsType::Xfs => parse_xfs(head),
    }
}

/// Reads the superblock of `fs` on `device` (a block device or an image file) and the
/// device's size. Blocking. Cached pages of the device are dropped first and readahead is
/// turned off for this open (both hints), so that an unmounted device is read as it is on disk
/// and only the superblock page is fetched.
pub fn measure(device: &Path, fs: FsType) -> Result<Measured> {
    let io = |operation: &'static str| {
        move |source: std::io::Error| HelperError::Io {
            operation,
            path: device.to_path_buf(),
            source,
        }
    };
    let mut file = File::open(device).map_err(io("open"))?;
    // Drop what is cached, and read only the page asked for: with the default readahead a
    // 4 KiB read fetches a whole window from the device, which over a network is real time.
    for advice in [
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_RANDOM,
    ] {
        if let Err(errno) = nix::fcntl::posix_fadvise(&file, 0, 0, advice) {
            tracing::debug!(device = %device.display(), %errno, ?advice, "advising the page cache failed");
        }
    }
    let mut head = vec![0u8; HEAD_BYTES];
    let mut got = 0;
    while let Some(rest) = head.get_mut(got..).filter(|r| !r.is_empty()) {
        let offset = u64::try_from(got).unwrap_or(u64::MAX);
        match file.read_at(rest, offset) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io("read the superblock of")(e)),
        }
    }
    head.truncate(got);
    let geometry = parse(fs, &head).map_err(|problem| HelperError::Superblock {
        device: device.to_path_buf(),
        fs: fs.as_str(),
        problem,
    })?;
    let device_bytes = file
        .seek(SeekFrom::End(0))
        .map_err(io("seek to the end of"))?;
    Ok(Measured {
        geometry,
        device_bytes,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::process::Command;

    const MIB: u64 = 1 << 20;

    fn tool_present(tool: &str) -> bool {
        crate::external::TOOL_PATH
            .split(':')
            .any(|d| Path::new(d).join(tool).exists())
    }

    fn run(program: &str, args: &[&str], file: &Path) {
        let out = Command::new(program)
            .env("PATH", crate::external::TOOL_PATH)
            .args(args)
            .arg(file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{program}: {out:?}");
    }

    /// A field read from `dumpe2fs -h` (a second opinion on our own parsing).
    fn dumpe2fs_field(file: &Path, field: &str) -> u64 {
        let out = Command::new("dumpe2fs")
            .env("PATH", crate::external::TOOL_PATH)
            .arg("-h")
            .arg(file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in dumpe2fs output"))
            .trim()
            .parse()
            .unwrap()
    }

    fn image(dir: &Path, mib: u64) -> std::path::PathBuf {
        let file = dir.join("fs.img");
        File::create(&file).unwrap().set_len(mib * MIB).unwrap();
        file
    }

    #[test]
    fn ext4_geometry_agrees_with_dumpe2fs_before_and_after_an_offline_grow() {
        for tool in ["mkfs.ext4", "dumpe2fs", "e2fsck", "resize2fs"] {
            assert!(
                tool_present(tool),
                "{tool} is missing: apt-get install e2fsprogs"
            );
        }
        let tmp = tempfile::tempdir().unwrap();
        for (options, mib) in [
            (&["-q"][..], 64u64),
            (&["-q", "-b", "4096", "-O", "^64bit"][..], 40),
        ] {
            let file = image(tmp.path(), mib);
            run("mkfs.ext4", options, &file);
            let m = measure(&file, FsType::Ext4).unwrap();
            assert_eq!(m.geometry.blocks, dumpe2fs_field(&file, "Block count"));
            assert_eq!(m.geometry.block_size, dumpe2fs_field(&file, "Block size"));
            assert_eq!(
                m.geometry.blocks_per_group,
                Some(dumpe2fs_field(&file, "Blocks per group"))
            );
            assert_eq!(m.device_bytes, mib * MIB);
            assert!(!m.needs_grow(), "{m:?}");

            File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_len((mib + 24) * MIB)
                .unwrap();
            let grown = measure(&file, FsType::Ext4).unwrap();
            assert_eq!(grown.geometry, m.geometry, "the filesystem did not change");
            assert_eq!(grown.device_bytes, (mib + 24) * MIB);
            assert!(grown.needs_grow(), "{grown:?}");

            run("e2fsck", &["-f", "-p"], &file);
            run("resize2fs", &[], &file);
            let after = measure(&file, FsType::Ext4).unwrap();
            assert_eq!(after.geometry.blocks, dumpe2fs_field(&file, "Block count"));
            assert!(after.geometry.size_bytes() > m.geometry.size_bytes());
            assert!(!after.needs_grow(), "{after:?}");
            std::fs::remove_file(&file).unwrap();
        }
    }

    #[test]
    fn xfs_geometry_is_its_data_section() {
        assert!(
            tool_present("mkfs.xfs"),
            "mkfs.xfs is missing: apt-get install xfsprogs"
        );
        let tmp = tempfile::tempdir().unwrap();
        let file = image(tmp.path(), 320);
        run("mkfs.xfs", &["-q", "-b", "size=4096"], &file);
        let m = measure(&file, FsType::Xfs).unwrap();
        assert_eq!(m.geometry.block_size, 4096);
        assert_eq!(m.geometry.size_bytes(), 320 * MIB, "{m:?}");
        assert!(!m.needs_grow());
        File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(400 * MIB)
            .unwrap();
        let grown = measure(&file, FsType::Xfs).unwrap();
        assert!(grown.needs_grow(), "{grown:?}");
        // Read as the other type, each is refused by its magic number.
        assert!(matches!(
            measure(&file, FsType::Ext4).unwrap_err(),
            HelperError::Superblock {
                problem: SuperblockProblem::BadMagic { .. },
                ..
            }
        ));
    }

    /// A minimal ext4 superblock image with the given fields.
    fn ext4_head(blocks_lo: u32, blocks_hi: u32, log_block: u32, incompat: u32) -> Vec<u8> {
        let mut head = vec![0u8; 2048];
        let sb = &mut head[EXT4_SB_OFFSET..];
        sb[EXT4_BLOCKS_LO..EXT4_BLOCKS_LO + 4].copy_from_slice(&blocks_lo.to_le_bytes());
        sb[EXT4_LOG_BLOCK_SIZE..EXT4_LOG_BLOCK_SIZE + 4].copy_from_slice(&log_block.to_le_bytes());
        sb[EXT4_BLOCKS_PER_GROUP..EXT4_BLOCKS_PER_GROUP + 4]
            .copy_from_slice(&32768u32.to_le_bytes());
        sb[EXT4_MAGIC_AT..EXT4_MAGIC_AT + 2].copy_from_slice(&EXT4_MAGIC.to_le_bytes());
        sb[EXT4_FEATURE_INCOMPAT..EXT4_FEATURE_INCOMPAT + 4]
            .copy_from_slice(&incompat.to_le_bytes());
        sb[EXT4_BLOCKS_HI..EXT4_BLOCKS_HI + 4].copy_from_slice(&blocks_hi.to_le_bytes());
        head
    }

    #[test]
    fn the_high_block_count_counts_only_on_64bit_filesystems() {
        let g = parse_ext4(&ext4_head(5, 2, 2, EXT4_INCOMPAT_64BIT)).unwrap();
        assert_eq!(g.blocks, (2 << 32) | 5);
        assert_eq!(g.block_size, 4096);
        assert_eq!(g.size_bytes(), ((2u64 << 32) | 5) * 4096);
        let g = parse_ext4(&ext4_head(5, 2, 2, 0)).unwrap();
        assert_eq!(g.blocks, 5, "hi ignored without INCOMPAT_64BIT");
    }

    #[test]
    fn garbage_is_a_problem_never_a_panic() {
        assert!(matches!(
            parse_ext4(&[]),
            Err(SuperblockProblem::Short { got: 0, .. })
        ));
        assert!(matches!(
            parse_ext4(&[0u8; 1030]),
            Err(SuperblockProblem::Short { got: 1030, .. })
        ));
        assert!(matches!(
            parse_xfs(&[0x58, 0x46]),
            Err(SuperblockProblem::Short { .. })
        ));
        assert_eq!(
            parse_ext4(&vec![0xA5; 4096]),
            Err(SuperblockProblem::BadMagic {
                found: 0xA5A5,
                expected: 0xEF53
            })
        );
        assert_eq!(
            parse_ext4(&ext4_head(5, 0, 7, 0)),
            Err(SuperblockProblem::BadBlockSize { field: 7 })
        );
        assert_eq!(
            parse_ext4(&ext4_head(0, 0, 0, EXT4_INCOMPAT_64BIT)),
            Err(SuperblockProblem::NoBlocks)
        );
        assert!(matches!(
            parse_ext4(&ext4_head(u32::MAX, u32::MAX, 6, EXT4_INCOMPAT_64BIT)),
            Err(SuperblockProblem::Overflow { .. })
        ));
        let mut xfs = vec![0u8; 512];
        xfs[..4].copy_from_slice(&XFS_MAGIC.to_be_bytes());
        xfs[4..8].copy_from_slice(&3000u32.to_be_bytes());
        assert_eq!(
            parse_xfs(&xfs),
            Err(SuperblockProblem::BadBlockSize { field: 3000 })
        );
        xfs[4..8].copy_from_slice(&4096u32.to_be_bytes());
        assert_eq!(parse_xfs(&xfs), Err(SuperblockProblem::NoBlocks));
        // Every prefix of a valid superblock, and every single-byte change of it, parses
        // or is refused, without panicking.
        let valid = ext4_head(1000, 0, 0, 0);
        for len in 0..valid.len() {
            let _ = parse_ext4(&valid[..len]);
        }
        for at in (0..valid.len()).step_by(7) {
            let mut bent = valid.clone();
            bent[at] ^= 0xFF;
            let _ = parse_ext4(&bent);
            let _ = parse_xfs(&bent);
        }
    }

    #[test]
    fn growing_needs_a_real_shortfall() {
        let g = Geometry {
            block_size: 4096,
            blocks: 16384,
            blocks_per_group: Some(32768),
        };
        assert_eq!(g.min_slack(), MIB);
        assert!(!g.needs_grow(64 * MIB));
        assert!(!g.needs_grow(65 * MIB - 1));
        assert!(g.needs_grow(65 * MIB));
        assert!(
            !g.needs_grow(32 * MIB),
            "a device smaller than its filesystem"
        );
        let tiny_groups = Geometry {
            blocks_per_group: Some(64),
            ..g
        };
        assert_eq!(tiny_groups.min_slack(), 64 * 4096);
        assert!(tiny_groups.needs_grow(64 * MIB + 64 * 4096));
        let no_groups = Geometry {
            blocks_per_group: Some(0),
            ..g
        };
        assert_eq!(no_groups.min_slack(), MIB);
    }
}
