//! Reading one of the helper's own small files (a stage record, the host identity) whole.
//!
//! Both callers treat a missing file as "not there yet" and refuse one that is larger than any
//! real one could be, so the read stops one byte past the caller's cap: enough to tell "too
//! large" without reading a file of any size into memory. `take` hides the file's size from
//! `read_to_end`, which would then probe in reads of 32 bytes and up (six system calls for a
//! 300-byte record); room for a typical file up front makes it one read and the one that sees
//! the end.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// What a read reserves up front: the files read here are a few hundred bytes.
pub(crate) const READ_CAPACITY: usize = 1024;

/// Up to `cap + 1` bytes of `path`, or `None` when it does not exist. More than `cap` bytes
/// back means the file is larger than `cap`.
pub(crate) fn read_capped(path: &Path, cap: u64) -> io::Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::with_capacity(READ_CAPACITY);
    file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}
