//! Reading whole `/proc` tables (the mount table, the partition list) in as few system calls
//! as the kernel allows.
//!
//! The kernel reports a size of 0 for these files, so `fs::read` starts with a 32-byte read and
//! doubles from there: a 3 KiB mount table took eight reads, and each read makes the kernel walk
//! the table again up to where the last one stopped. Reading into a buffer reserved up front
//! takes one read and the end-of-file read; bigger tables still grow the buffer as needed.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Bytes reserved before the first read: room for the mount table of a node with a few hundred
/// mounts, and below the helper's fixed mmap threshold (128 KiB), so it comes from the heap
/// rather than an mmap and munmap per read.
pub const INITIAL_CAPACITY: usize = 64 * 1024;

/// The whole content of the file at `path`.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(INITIAL_CAPACITY);
    File::open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn reads_a_proc_table_whole() {
        let mounts = read(Path::new("/proc/self/mountinfo")).unwrap();
        let text = String::from_utf8(mounts).unwrap();
        // Every line of the table is there, up to the last newline.
        assert!(text.ends_with('\n'), "{text}");
        assert!(
            text.lines().any(|l| l.contains(" / / ")),
            "no root mount in {text}"
        );
    }

    #[test]
    fn reads_a_file_larger_than_the_first_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let content: Vec<u8> = (0..INITIAL_CAPACITY * 3 + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &content).unwrap();
        assert_eq!(read(&path).unwrap(), content);
    }

    #[test]
    fn a_missing_file_is_an_error_of_kind_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(&dir.path().join("absent")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
