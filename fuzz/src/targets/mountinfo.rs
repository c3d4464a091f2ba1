//! `mountinfo`: the node helper's parser of `/proc/self/mountinfo`.
//!
//! Input: mountinfo content (raw bytes). Oracles:
//! - nothing panics; every non-empty line is either an entry or counted as skipped;
//! - an entry has absolute root and mount point and a filesystem type;
//! - printed back in the kernel's form (octal escapes for space, tab, newline, backslash and
//!   other control bytes), an entry parses to the same entry;
//! - the lookups (`top_at`, `is_mount_point`, `by_source`, `by_device`) agree with the entries.

use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;

use nvme_helper::mountinfo::{MountEntry, MountTable, parse_line, unescape};

/// Tokens of mountinfo lines.
pub const DICTIONARY: &[&[u8]] = &[
    b" - ",
    b" - ext4 /dev/nvme2n1 rw",
    b" - xfs ",
    b"259:5",
    b"0:21",
    b" / ",
    b"/var/lib/kubelet/",
    b"/var/lib/kubelet/plugins/kubernetes.io/csi/",
    b"/globalmount",
    b"rw,relatime",
    b"ro,noatime",
    b"shared:1",
    b"master:2",
    b"propagate_from:3",
    b"unbindable",
    b"\\040",
    b"\\011",
    b"\\012",
    b"\\134",
    b"\\777",
    b"\\0",
    b"\\",
    b"4294967295",
    b"4294967296",
];

fn escape(out: &mut Vec<u8>, field: &[u8]) {
    for &b in field {
        if b <= b' ' || b == b'\\' || b == 0x7f {
            let _ = write!(out, "\\{b:03o}");
        } else {
            out.push(b);
        }
    }
}

/// The kernel's line for `e`.
fn print(e: &MountEntry) -> Vec<u8> {
    let mut line = Vec::new();
    let _ = write!(
        line,
        "{} {} {}:{} ",
        e.mount_id, e.parent_id, e.major, e.minor
    );
    escape(&mut line, e.root.as_os_str().as_bytes());
    line.push(b' ');
    escape(&mut line, e.mount_point.as_os_str().as_bytes());
    line.push(b' ');
    escape(&mut line, e.mount_options.as_bytes());
    for optional in &e.optional_fields {
        line.push(b' ');
        escape(&mut line, optional.as_bytes());
    }
    line.extend_from_slice(b" - ");
    escape(&mut line, e.fs_type.as_bytes());
    line.push(b' ');
    escape(&mut line, e.source.as_bytes());
    line.push(b' ');
    escape(&mut line, e.super_options.as_bytes());
    line
}

/// Parses the input as a mount table and checks the oracles above.
pub fn mountinfo(data: &[u8]) {
    let table = MountTable::parse(data);
    let lines = data
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(
        table.entries().len() + table.skipped(),
        lines,
        "entries and skipped lines do not add up to the lines"
    );
    assert!(table.errors().len() <= nvme_helper::mountinfo::MAX_KEPT_ERRORS);
    for e in table.entries() {
        assert!(
            e.root.as_os_str().as_bytes().starts_with(b"/")
                && e.mount_point.as_os_str().as_bytes().starts_with(b"/"),
            "relative root or mount point: {e:?}"
        );
        assert!(!e.fs_type.is_empty(), "empty filesystem type: {e:?}");
        let printed = print(e);
        match parse_line(&printed) {
            Ok(again) => assert_eq!(
                &again,
                e,
                "entry printed as {:?} reads differently",
                String::from_utf8_lossy(&printed)
            ),
            Err(reason) => panic!(
                "entry printed as {:?} is refused: {reason}",
                String::from_utf8_lossy(&printed)
            ),
        }
        let top = table.top_at(&e.mount_point);
        assert!(top.is_some(), "top_at misses a mount point");
        assert!(table.is_mount_point(&e.mount_point));
        assert!(table.at_mount_point(&e.mount_point).contains(&e));
        assert!(table.by_source(&e.source).contains(&e));
        assert!(table.by_device(e.major, e.minor).contains(&e));
        let _ = (e.is_read_only(), e.has_option("rw"));
    }
    for line in data.split(|&b| b == b'\n').take(16) {
        let decoded = unescape(line);
        assert!(decoded.len() <= line.len(), "unescape grew a field");
    }
}
