//! The block devices that have a capacity, from `/proc/partitions`.
//!
//! Loop devices outlive their attachments: a node that once had 1,000 volumes staged keeps
//! 1,000 `loopN` entries in sysfs, and finding the attached ones by reading each device's
//! `loop/backing_file` costs a failed path walk through sysfs per idle device — on such a node
//! that walk was most of a stage's and an unstage's time. The kernel leaves devices without a
//! capacity out of `/proc/partitions`, and a detached loop device has none, so one read of that
//! file names every loop device that can be attached. A device attached to an empty file has
//! no capacity either and is not named; the loop fabric's backing files are never empty.

use std::collections::BTreeSet;
use std::path::Path;

/// Where the running kernel lists its sized block devices.
pub const PROC_PARTITIONS: &str = "/proc/partitions";

/// The numbers of the loop devices `/proc/partitions` (in `text`) lists with a non-zero size.
///
/// The format is a header line (`major minor  #blocks  name`), a blank line, then one line
/// per device: `   7        0       8192 loop0`. Partitions of a loop device (`loop0p1`) and
/// lines that do not parse are skipped.
pub fn sized_loops(text: &str) -> BTreeSet<u32> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_major, _minor, blocks, name) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            if fields.next().is_some() || blocks.parse::<u64>().ok()? == 0 {
                return None;
            }
            loop_number(name)
        })
        .collect()
}

/// N of a device named `loopN` (digits only: `loop0p1` and `loopy` are not loop devices).
pub fn loop_number(name: &str) -> Option<u32> {
    name.strip_prefix("loop")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u32>().ok())
}

/// [`sized_loops`] of the file at `path`; `None` when it cannot be read.
pub fn read_sized_loops(path: &Path) -> Option<BTreeSet<u32>> {
    let bytes = crate::proc_file::read(path).ok()?;
    Some(sized_loops(&String::from_utf8_lossy(&bytes)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn names_the_sized_loop_devices_only() {
        // As a kernel prints it with loop0 and loop12 attached (loop12 partitioned).
        let text = "major minor  #blocks  name\n\
                    \n\
                    \x20254        0  268435456 vda\n\
                    \x20254        1  268434432 vda1\n\
                    \x20  7        0       8192 loop0\n\
                    \x20  7       12    1048576 loop12\n\
                    \x20259        0    1047552 loop12p1\n\
                    \x20  7        3          0 loop3\n\
                    \x20  7        4       oops loop4\n\
                    \x20  7        5 loop5\n\
                    \x20  7        6       2048 loopy\n";
        assert_eq!(sized_loops(text).into_iter().collect::<Vec<_>>(), [0, 12]);
        assert!(sized_loops("").is_empty());
        assert!(sized_loops("major minor  #blocks  name\n\n").is_empty());
    }

    #[test]
    fn an_unreadable_file_is_none_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_sized_loops(&dir.path().join("missing")), None);
        let file = dir.path().join("partitions");
        std::fs::write(&file, "major minor  #blocks  name\n\n   7  9  64 loop9\n").unwrap();
        assert_eq!(
            read_sized_loops(&file)
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            [9]
        );
    }
}
