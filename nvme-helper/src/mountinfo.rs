//! Parser of `/proc/self/mountinfo`, the kernel's record of what is mounted where.
//!
//! Idempotent staging and publishing (a retried NodeStage must not stack a second mount), stale
//! mount detection and "is this device still in use" all start from this table. Lines are
//! parsed as bytes, octal escapes (`\040` for a space, ...) are decoded, optional fields up to
//! the `-` separator are kept, and a line that does not parse is skipped and counted rather than
//! failing the whole table or panicking.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::connect_spec::parse_decimal;
use crate::error::{HelperError, Result};

/// The mount table of the helper's own mount namespace.
pub const DEFAULT_MOUNTINFO: &str = "/proc/self/mountinfo";
/// How many skipped-line reasons are kept for diagnostics.
pub const MAX_KEPT_ERRORS: usize = 8;

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Unique mount id.
    pub mount_id: u32,
    /// Id of the parent mount.
    pub parent_id: u32,
    /// Device major number.
    pub major: u32,
    /// Device minor number.
    pub minor: u32,
    /// Root of the mount within its filesystem (differs from `/` for bind mounts of subtrees).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,noatime`).
    pub mount_options: String,
    /// Optional fields (`shared:1`, `master:2`, ...).
    pub optional_fields: Vec<String>,
    /// Filesystem type.
    pub fs_type: String,
    /// Mount source (`/dev/nvme2n1`, `tmpfs`, possibly empty).
    pub source: String,
    /// Per-superblock options.
    pub super_options: String,
}

impl MountEntry {
    /// Whether the per-mount or per-superblock options contain exactly `option`.
    pub fn has_option(&self, option: &str) -> bool {
        self.mount_options.split(',').any(|o| o == option)
            || self.super_options.split(',').any(|o| o == option)
    }

    /// Whether the mount is read-only.
    pub fn is_read_only(&self) -> bool {
        self.mount_options.split(',').any(|o| o == "ro")
    }
}

/// A parsed mount table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountTable {
    entries: Vec<MountEntry>,
    skipped: usize,
    errors: Vec<(usize, String)>,
}

impl MountTable {
    /// Parses the content of a mountinfo file. Never fails: bad lines are skipped and counted.
    pub fn parse(content: &[u8]) -> Self {
        let mut table = Self::default();
        for (index, line) in content.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            match parse_line(line) {
                Ok(entry) => table.entries.push(entry),
                Err(reason) => {
                    table.skipped += 1;
                    if table.errors.len() < MAX_KEPT_ERRORS {
                        table.errors.push((index + 1, reason));
                    }
                }
            }
        }
        if table.skipped > 0 {
            tracing::warn!(skipped = table.skipped, first = ?table.errors.first(), "skipped unparseable mountinfo lines");
        }
        table
    }

    /// Reads and parses a mountinfo file (normally `/proc/self/mountinfo`).
    pub fn read(path: &Path) -> Result<Self> {
        let content = crate::proc_file::read(path).map_err(|source| HelperError::Io {
            operation: "read",
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::parse(&content))
    }

    /// All parsed entries, in table order (later entries are mounted on top of earlier ones).
    pub fn entries(&self) -> &[MountEntry] {
        &self.entries
    }

    /// How many lines were skipped.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Line numbers and reasons of the first skipped lines.
    pub fn errors(&self) -> &[(usize, String)] {
        &self.errors
    }

    /// Every mount at `mount_point`, bottom first.
    pub fn at_mount_point(&self, mount_point: &Path) -> Vec<&MountEntry> {
        self.entries
            .iter()
            .filter(|e| e.mount_point == mount_point)
            .collect()
    }

    /// The visible (topmost) mount at `mount_point`.
    pub fn top_at(&self, mount_point: &Path) -> Option<&MountEntry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.mount_point == mount_point)
    }

    /// Whether anything is mounted at `mount_point`.
    pub fn is_mount_point(&self, mount_point: &Path) -> bool {
        self.entries.iter().any(|e| e.mount_point == mount_point)
    }

    /// Every mount whose source is `source` (e.g. `/dev/nvme2n1`).
    pub fn by_source(&self, source: &str) -> Vec<&MountEntry> {
        self.entries.iter().filter(|e| e.source == source).collect()
    }

    /// Every mount of device `major:minor` (survives a device being renamed).
    pub fn by_device(&self, major: u32, minor: u32) -> Vec<&MountEntry> {
        self.entries
            .iter()
            .filter(|e| e.major == major && e.minor == minor)
            .collect()
    }
}

/// Decodes the kernel's `\ooo` escapes; a backslash not followed by three octal digits (or one
/// whose value does not fit a byte) is kept as it is.
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let byte = field[i];
        if byte == b'\\'
            && let Some(digits) = field.get(i + 1..i + 4)
            && digits.iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            if let Ok(decoded) = u8::try_from(value) {
                out.push(decoded);
                i += 4;
                continue;
            }
        }
        out.push(byte);
        i += 1;
    }
    out
}

/// Decodes a text field; bytes that are not UTF-8 are replaced rather than failing the line, so
/// that an odd source name never hides a mount point from the lookups.
fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(&unescape(field)).into_owned()
}

fn path(field: &[u8], what: &str) -> std::result::Result<PathBuf, String> {
    let bytes = unescape(field);
    if bytes.first() != Some(&b'/') {
        return Err(format!("{what} is not an absolute path"));
    }
    Ok(PathBuf::from(OsString::from_vec(bytes)))
}

fn number(field: &[u8], what: &str) -> std::result::Result<u32, String> {
    std::str::from_utf8(field)
        .ok()
        .and_then(parse_decimal::<u32>)
        .ok_or_else(|| format!("{what} is not a number"))
}

/// Parses one line; the error is the reason it was skipped.
pub fn parse_line(line: &[u8]) -> std::result::Result<MountEntry, String> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let separator = fields
        .iter()
        .skip(6)
        .position(|f| *f == b"-")
        .map(|p| p + 6)
        .ok_or_else(|| "no '-' separator after the sixth field".to_string())?;
    let after = fields.get(separator + 1..).unwrap_or_default();
    let [fs_type, source, super_options] = after else {
        return Err(format!(
            "{} fields after the separator, expected 3",
            after.len()
        ));
    };
    let [id, parent, dev, root, mount_point, options, ..] = fields.as_slice() else {
        return Err("fewer than six fields before the separator".into());
    };
    let (major, minor) = {
        let mut parts = dev.splitn(2, |&b| b == b':');
        let major = parts.next().unwrap_or_default();
        let minor = parts.next().ok_or("device is not major:minor")?;
        (number(major, "major")?, number(minor, "minor")?)
    };
    let optional_fields = fields
        .get(6..separator)
        .unwrap_or_default()
        .iter()
        .map(|f| {
            if f.is_empty() {
                Err("empty optional field".to_string())
            } else {
                Ok(text(f))
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let fs_type = text(fs_type);
    if fs_type.is_empty() {
        return Err("empty filesystem type".into());
    }
    Ok(MountEntry {
        mount_id: number(id, "mount id")?,
        parent_id: number(parent, "parent id")?,
        major,
        minor,
        root: path(root, "root")?,
        mount_point: path(mount_point, "mount point")?,
        mount_options: text(options),
        optional_fields,
        fs_type,
        source: text(source),
        super_options: text(super_options),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const SAMPLE: &[u8] = include_bytes!("../fixtures/mountinfo/node.txt");

    #[test]
    fn parses_a_realistic_table() {
        let table = MountTable::parse(SAMPLE);
        assert_eq!(table.skipped(), 0, "{:?}", table.errors());
        let root = &table.entries()[0];
        assert_eq!(root.mount_id, 22);
        assert_eq!(root.parent_id, 1);
        assert_eq!((root.major, root.minor), (259, 2));
        assert_eq!(root.mount_point, Path::new("/"));
        assert_eq!(root.optional_fields, ["shared:1"]);
        assert_eq!(root.fs_type, "ext4");
        assert_eq!(root.source, "/dev/nvme0n1p2");
        assert_eq!(root.super_options, "rw,errors=remount-ro");

        let staged = table
            .by_source("/dev/nvme2n1")
            .into_iter()
            .map(|e| e.mount_point.clone())
            .collect::<Vec<_>>();
        assert_eq!(
            staged.len(),
            2,
            "staging mount and its bind mount: {staged:?}"
        );
        let publish = table.by_source("/dev/nvme2n1")[1];
        assert_eq!(publish.root, Path::new("/"));
        assert!(publish.mount_point.ends_with("mount"));
        assert_eq!(table.by_device(259, 5).len(), 2);
        assert!(table.by_device(259, 99).is_empty());
    }

    #[test]
    fn decodes_octal_escapes_in_paths() {
        let table = MountTable::parse(SAMPLE);
        let spaced = Path::new("/var/lib/kubelet/pods/a b/volumes/x\ty");
        let entry = table.top_at(spaced).expect("escaped mount point found");
        assert_eq!(entry.fs_type, "xfs");
        assert_eq!(entry.source, "/dev/nvme3n1");
        assert!(entry.has_option("nouuid"));
        assert!(entry.is_read_only());
        assert_eq!(unescape(br"a\134b"), b"a\\b");
        assert_eq!(unescape(br"a\012b"), b"a\nb");
        // Not an escape: kept literally.
        assert_eq!(unescape(br"a\9b"), br"a\9b");
        assert_eq!(unescape(br"a\777"), br"a\777");
        assert_eq!(unescape(br"end\04"), br"end\04");
        assert_eq!(unescape(b"\\"), b"\\");
    }

    #[test]
    fn stacked_mounts_report_the_top_one() {
        let table = MountTable::parse(SAMPLE);
        let point = Path::new(
            "/var/lib/kubelet/plugins/kubernetes.io/csi/rds.csi.mikrotik.com/abc/globalmount",
        );
        let all = table.at_mount_point(point);
        assert_eq!(all.len(), 2);
        assert_eq!(table.top_at(point).unwrap().mount_id, all[1].mount_id);
        assert!(table.is_mount_point(point));
        assert!(!table.is_mount_point(Path::new("/nowhere")));
    }

    #[test]
    fn optional_fields_and_empty_source() {
        let line =
            b"40 22 0:38 / /run/x rw,nosuid shared:5 master:1 propagate_from:2 - tmpfs  rw,size=1k";
        let entry = parse_line(line).unwrap();
        assert_eq!(
            entry.optional_fields,
            ["shared:5", "master:1", "propagate_from:2"]
        );
        assert_eq!(entry.source, "");
        assert_eq!(entry.super_options, "rw,size=1k");
        let none = parse_line(b"41 22 0:39 / /run/y rw - proc proc rw").unwrap();
        assert!(none.optional_fields.is_empty());
        // An odd source must not hide the mount point.
        let odd = parse_line(b"42 22 8:1 / /mnt/z rw - ext4 /dev/\xff rw").unwrap();
        assert_eq!(odd.mount_point, Path::new("/mnt/z"));
        assert!(odd.source.starts_with("/dev/"));
    }

    #[test]
    fn garbage_lines_are_counted_not_fatal() {
        let mut content = SAMPLE.to_vec();
        let good = MountTable::parse(SAMPLE).entries().len();
        for bad in [
            &b"garbage"[..],
            b"1 2 3",
            b"x 1 8:1 / /mnt rw - ext4 /dev/sda1 rw",
            b"1 1 81 / /mnt rw - ext4 /dev/sda1 rw",
            b"1 1 8:1 / /mnt rw ext4 /dev/sda1 rw",
            b"1 1 8:1 / /mnt rw - ext4 /dev/sda1",
            b"1 1 8:1 / /mnt rw - ext4 /dev/sda1 rw extra",
            b"1 1 8:1 / relative rw - ext4 /dev/sda1 rw",
            b"1 1 8:1 / /mnt rw  - ext4 /dev/sda1 rw",
            b"1 1 8:1 / /mnt rw - ",
            b"99999999999 1 8:1 / /mnt rw - ext4 /dev/sda1 rw",
            b"1 1 8:1 /mnt rw - ext4 /dev/sda1 rw",
            b"-",
            b"\xff\xfe\xfd",
        ] {
            content.extend_from_slice(bad);
            content.push(b'\n');
        }
        let table = MountTable::parse(&content);
        assert_eq!(table.entries().len(), good);
        assert_eq!(table.skipped(), 14);
        assert_eq!(table.errors().len(), MAX_KEPT_ERRORS);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // A deterministic pseudo-random walk over byte strings built from mountinfo's alphabet.
        let alphabet = b" -:/\\0123456789abc\n\xff";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut line = Vec::new();
            for _ in 0..(state % 64) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let index = usize::try_from(state % alphabet.len() as u64).unwrap();
                line.push(alphabet[index]);
            }
            let table = MountTable::parse(&line);
            assert!(table.entries().len() + table.skipped() <= line.len() + 1);
        }
    }

    #[test]
    fn read_names_a_missing_file() {
        let err = MountTable::read(Path::new("/nonexistent/mountinfo")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/mountinfo"));
    }
}
