//! The simulator's disks on the host filesystem: sparse backing files, growing them, copying them
//! without filling holes (a `FICLONE` reflink where the filesystem has one, otherwise only the
//! data extents found with `SEEK_DATA`/`SEEK_HOLE`), the `/file` listing, and pool capacity.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::sys::statfs::{BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC, statfs};
use nix::sys::statvfs::statvfs;
use nix::unistd::{Whence, lseek};

/// The directory under the root where the simulator keeps its own files; never listed, never
/// a valid place for a disk.
pub const META_DIR: &str = ".rds-sim";

/// Creates a sparse file of `size` bytes; fails if anything exists at `path`.
pub fn create_sparse(path: &Path, size: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).create_new(true).open(path)?;
    if let Err(e) = file.set_len(size) {
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

/// Grows a file to `size` bytes, leaving the new part as a hole.
pub fn grow(path: &Path, size: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    if file.metadata()?.len() < size {
        file.set_len(size)?;
    }
    Ok(())
}

/// How a copy was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMethod {
    /// The filesystem shares the blocks (`FICLONE`).
    Reflink,
    /// Data extents were copied; holes stayed holes.
    Extents,
}

nix::ioctl_write_int!(ficlone, 0x94, 9);

/// Copies `src` to a new file `dst` (which must not exist), preserving holes.
pub fn copy_sparse(src: &Path, dst: &Path) -> io::Result<CopyMethod> {
    let source = File::open(src)?;
    let len = source.metadata()?.len();
    let target = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(dst)?;
    let result = copy_into(&source, &target, len);
    if result.is_err() {
        let _ = fs::remove_file(dst);
    }
    result
}

fn copy_into(source: &File, target: &File, len: u64) -> io::Result<CopyMethod> {
    // SAFETY: FICLONE takes the source descriptor as its integer argument and reads no memory
    // of ours; both descriptors are open for the whole call.
    let cloned = unsafe {
        ficlone(
            target.as_raw_fd(),
            source.as_raw_fd() as nix::sys::ioctl::ioctl_param_type,
        )
    };
    if cloned.is_ok() {
        return Ok(CopyMethod::Reflink);
    }
    target.set_len(len)?;
    let mut pos: i64 = 0;
    let end = i64::try_from(len).map_err(|_| io::Error::other("file too large"))?;
    let mut buf = vec![0u8; 1 << 20];
    while pos < end {
        let data = match lseek(source, pos, Whence::SeekData) {
            Ok(p) => p,
            Err(Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let hole = match lseek(source, data, Whence::SeekHole) {
            Ok(p) => p.min(end),
            Err(e) => return Err(e.into()),
        };
        let mut at = data;
        while at < hole {
            let want = usize::try_from((hole - at).min(buf.len() as i64)).unwrap_or(buf.len());
            let offset = u64::try_from(at).unwrap_or(0);
            let got = source.read_at(&mut buf[..want], offset)?;
            if got == 0 {
                break;
            }
            let chunk = &buf[..got];
            // keep holes inside data extents too: skip all-zero blocks
            if chunk.iter().any(|b| *b != 0) {
                target.write_all_at(chunk, offset)?;
            }
            at += got as i64;
        }
        pos = hole;
    }
    Ok(CopyMethod::Extents)
}

/// One entry of the `/file` menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the root, without a leading `/`.
    pub name: String,
    pub is_dir: bool,
    /// Apparent size.
    pub size: u64,
    pub modified: SystemTime,
}

/// Every file and directory under `root` (not following symlinks, skipping [`META_DIR`]),
/// sorted by name.
pub fn list_files(root: &Path) -> Vec<FileEntry> {
    let mut out = Vec::new();
    walk(root, "", 0, &mut out);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<FileEntry>) {
    if depth > 16 {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if depth == 0 && name == META_DIR {
            continue;
        }
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if meta.is_dir() {
            out.push(FileEntry {
                name: rel.clone(),
                is_dir: true,
                size: 0,
                modified,
            });
            walk(&entry.path(), &rel, depth + 1, out);
        } else if meta.is_file() {
            out.push(FileEntry {
                name: rel,
                is_dir: false,
                size: meta.len(),
                modified,
            });
        }
    }
}

/// The sum of the apparent sizes of the regular files under `dir`.
pub fn apparent_usage(dir: &Path) -> u64 {
    let mut entries = Vec::new();
    walk(dir, "", 1, &mut entries);
    entries
        .iter()
        .filter(|e| !e.is_dir)
        .map(|e| e.size)
        .fold(0u64, u64::saturating_add)
}

/// The pool's capacity as the appliance reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    pub size: u64,
    pub free: u64,
    pub total_inodes: u64,
    pub free_inodes: u64,
    /// `btrfs`, `xfs`, `ext4`, `tmpfs` or `unknown`.
    pub fs: &'static str,
}

impl Capacity {
    pub fn used(&self) -> u64 {
        self.size.saturating_sub(self.free)
    }

    /// `use=NN%`, rounded to the nearest percent.
    pub fn use_percent(&self) -> u64 {
        if self.size == 0 {
            return 0;
        }
        let used = u128::from(self.used());
        u64::try_from((used * 100 + u128::from(self.size) / 2) / u128::from(self.size))
            .unwrap_or(100)
    }
}

/// The capacity of pool directory `pool_dir`: its size is `size_override` or the size of the
/// filesystem holding it; the appliance reserves each file's full size, so free space is the size
/// minus the apparent size of every file in the pool.
pub fn capacity(pool_dir: &Path, size_override: Option<u64>) -> Capacity {
    let vfs = statvfs(pool_dir).ok();
    let fs_size = vfs
        .as_ref()
        .map(|v| v.blocks().saturating_mul(v.fragment_size()))
        .unwrap_or(0);
    let size = size_override.unwrap_or(fs_size);
    let used = apparent_usage(pool_dir);
    let fs = match statfs(pool_dir).map(|s| s.filesystem_type()) {
        Ok(t) if t == BTRFS_SUPER_MAGIC => "btrfs",
        Ok(t) if t == XFS_SUPER_MAGIC => "xfs",
        Ok(t) if t == EXT4_SUPER_MAGIC => "ext4",
        Ok(t) if t == TMPFS_MAGIC => "tmpfs",
        _ => "unknown",
    };
    Capacity {
        size,
        free: size.saturating_sub(used),
        total_inodes: vfs.as_ref().map_or(0, |v| v.files()),
        free_inodes: vfs.as_ref().map_or(0, |v| v.files_free()),
        fs,
    }
}

/// Allocated bytes of a file (blocks actually used), for tests that check sparseness.
pub fn allocated_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(fs::metadata(path)?.blocks() * 512)
}

/// Joins a validated relative path onto `root`.
pub fn under(root: &Path, relative: &str) -> PathBuf {
    relative
        .split('/')
        .filter(|c| !c.is_empty())
        .fold(root.to_path_buf(), |p, c| p.join(c))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sparse_files_grow_and_copy_without_filling_holes() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.img");
        create_sparse(&a, 64 << 20).unwrap();
        assert_eq!(fs::metadata(&a).unwrap().len(), 64 << 20);
        assert!(allocated_bytes(&a).unwrap() < 1 << 20);
        assert!(create_sparse(&a, 1).is_err(), "must not overwrite");

        // some data in the middle
        let f = OpenOptions::new().write(true).open(&a).unwrap();
        f.write_all_at(b"hello", 10 << 20).unwrap();
        drop(f);

        grow(&a, 128 << 20).unwrap();
        assert_eq!(fs::metadata(&a).unwrap().len(), 128 << 20);

        let b = dir.path().join("b.img");
        copy_sparse(&a, &b).unwrap();
        assert_eq!(fs::metadata(&b).unwrap().len(), 128 << 20);
        assert!(allocated_bytes(&b).unwrap() < 4 << 20, "copy filled holes");
        let mut buf = [0u8; 5];
        File::open(&b)
            .unwrap()
            .read_exact_at(&mut buf, 10 << 20)
            .unwrap();
        assert_eq!(&buf, b"hello");
        assert!(copy_sparse(&a, &b).is_err(), "must not overwrite");
    }

    #[test]
    fn listing_and_capacity() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("pool/sub")).unwrap();
        fs::create_dir_all(dir.path().join(META_DIR)).unwrap();
        fs::write(dir.path().join(META_DIR).join("state.json"), "{}").unwrap();
        create_sparse(&dir.path().join("pool/sub/a.img"), 1 << 30).unwrap();
        create_sparse(&dir.path().join("pool/b.img"), 1 << 20).unwrap();
        let names: Vec<String> = list_files(dir.path()).into_iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            vec!["pool", "pool/b.img", "pool/sub", "pool/sub/a.img"]
        );
        let cap = capacity(&dir.path().join("pool"), Some(4 << 30));
        assert_eq!(cap.size, 4 << 30);
        assert_eq!(cap.free, (4 << 30) - (1 << 30) - (1 << 20));
        assert_eq!(cap.use_percent(), 25);
        let real = capacity(&dir.path().join("pool"), None);
        assert!(real.size > 0);
    }
}
