//! The mount system calls the volume operations make, and the device numbers they compare.
//!
//! Staging mounts a device with `mount(2)` (no `mount(8)`: no helper binaries, no fstab, no
//! option parsing by someone else), publishing bind-mounts, a read-only publish is a bind
//! followed by a `MS_BIND|MS_REMOUNT|MS_RDONLY` remount (a plain bind ignores `MS_RDONLY`), and
//! unmounting uses `UMOUNT_NOFOLLOW` so that a symbolic link planted at a mount point is never
//! followed. Whether a path is staged "from the same device" is decided by device numbers
//! (`major:minor` of the mount in mountinfo against `st_rdev` of the device node), which
//! survive renamed nodes. Every function blocks; callers run them on a blocking thread.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::error::{HelperError, Result};
use crate::mount_options::{FsType, MountOptions};
use crate::mountinfo::MountTable;

/// Most mounts stacked at one path that an unmount loop removes (a retry storm's leftovers).
pub const MAX_STACKED: usize = 32;

/// A block device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DevNo {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl std::fmt::Display for DevNo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

fn devno_of(rdev: u64) -> DevNo {
    DevNo {
        major: u32::try_from(nix::sys::stat::major(rdev)).unwrap_or(u32::MAX),
        minor: u32::try_from(nix::sys::stat::minor(rdev)).unwrap_or(u32::MAX),
    }
}

/// The device number of block device node `device`.
pub fn block_devno(device: &Path) -> Result<DevNo> {
    let meta = fs::metadata(device).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            HelperError::DeviceNotFound {
                device: device.display().to_string(),
                path: device.to_path_buf(),
            }
        } else {
            HelperError::Io {
                operation: "inspect",
                path: device.to_path_buf(),
                source,
            }
        }
    })?;
    if !meta.file_type().is_block_device() {
        return Err(HelperError::InvalidDeviceName {
            device: device.display().to_string(),
        });
    }
    Ok(devno_of(meta.rdev()))
}

/// The device number of `path` if it is a block device node (not following a final symlink).
pub fn block_devno_at(path: &Path) -> Option<DevNo> {
    let meta = fs::symlink_metadata(path).ok()?;
    meta.file_type()
        .is_block_device()
        .then(|| devno_of(meta.rdev()))
}

/// The device number of a mount table entry.
pub fn entry_devno(entry: &crate::mountinfo::MountEntry) -> DevNo {
    DevNo {
        major: entry.major,
        minor: entry.minor,
    }
}

/// Reads the mount table.
pub fn table(mountinfo: &Path) -> Result<MountTable> {
    MountTable::read(mountinfo)
}

fn mount_error(
    operation: &'static str,
    target: &Path,
    detail: String,
    errno: nix::errno::Errno,
) -> HelperError {
    HelperError::Mount {
        operation,
        target: target.to_path_buf(),
        detail,
        source: io::Error::from(errno),
    }
}

/// Mounts filesystem `fs` of `device` at `target` with validated `options`.
pub fn mount_device(
    device: &Path,
    target: &Path,
    fs: FsType,
    options: &MountOptions,
    read_only: bool,
) -> Result<()> {
    let mut flags = options.flags;
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    let data = (!options.data.is_empty()).then_some(options.data.as_str());
    nix::mount::mount(Some(device), target, Some(fs.as_str()), flags, data).map_err(|e| {
        mount_error(
            "mount",
            target,
            format!(
                " (source {}, type {fs}, flags {flags:?}, data {:?})",
                device.display(),
                options.data
            ),
            e,
        )
    })
}

/// Bind-mounts `source` (a directory or a device node) onto `target`, then applies `flags`
/// (`MS_RDONLY`, `MS_NOSUID`, ...) with a bind remount when there are any.
pub fn bind(source: &Path, target: &Path, flags: MsFlags) -> Result<()> {
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        mount_error(
            "bind-mount",
            target,
            format!(" (source {})", source.display()),
            e,
        )
    })?;
    if flags.is_empty() {
        return Ok(());
    }
    let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags;
    if let Err(e) = nix::mount::mount(None::<&str>, target, None::<&str>, remount, None::<&str>) {
        // Never leave a writable bind behind when read-only was asked for.
        let _ = nix::mount::umount2(target, MntFlags::UMOUNT_NOFOLLOW);
        return Err(mount_error(
            "remount",
            target,
            format!(" (flags {remount:?})"),
            e,
        ));
    }
    Ok(())
}

/// Unmounts the top mount at `target`. `Ok(false)`: nothing was mounted there.
pub fn unmount_once(target: &Path) -> Result<bool> {
    match nix::mount::umount2(target, MntFlags::UMOUNT_NOFOLLOW) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(mount_error("unmount", target, String::new(), e)),
    }
}

/// Unmounts every mount stacked at `target`, top first, until the kernel answers that nothing
/// is mounted there any more. Returns how many were removed. (No mount-table reads: `EINVAL`
/// from `umount2` is the kernel's own "not a mount point".)
pub fn unmount_all(target: &Path) -> Result<usize> {
    let mut removed = 0;
    while unmount_once(target)? {
        removed += 1;
        if removed > MAX_STACKED {
            return Err(HelperError::Mount {
                operation: "unmount",
                target: target.to_path_buf(),
                detail: format!(" (still mounted after removing {removed} mounts)"),
                source: io::Error::from(io::ErrorKind::Other),
            });
        }
    }
    Ok(removed)
}

/// Creates directory `path` (only its last component, mode 0750) unless it exists as a
/// directory. Anything else at the path is refused.
pub fn ensure_dir(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(HelperError::InvalidRequest {
                field: "path",
                reason: format!("{} exists and is not a directory", path.display()),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(HelperError::Io {
                operation: "inspect",
                path: path.to_path_buf(),
                source,
            });
        }
    }
    match fs::DirBuilder::new().mode(0o750).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(source) => Err(HelperError::Io {
            operation: "create directory",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Creates an empty regular file at `path` (mode 0640, never following a symlink) unless a
/// regular file is there. Anything else at the path is refused.
pub fn ensure_file(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => return Ok(()),
        // A device node bind-mounted here already (checked by the caller).
        Ok(meta) if meta.file_type().is_block_device() => return Ok(()),
        Ok(_) => {
            return Err(HelperError::InvalidRequest {
                field: "target_path",
                reason: format!("{} exists and is not a regular file", path.display()),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(HelperError::Io {
                operation: "inspect",
                path: path.to_path_buf(),
                source,
            });
        }
    }
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_file() => Ok(()),
        Err(source) => Err(HelperError::Io {
            operation: "create file",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Removes exactly the entry at `path`: `rmdir` for a directory, `unlink` for anything else.
/// Never recursive. A missing entry is success.
pub fn remove_entry(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(HelperError::Io {
                operation: "inspect",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let removed = if meta.is_dir() {
        fs::remove_dir(path)
    } else {
        fs::remove_file(path)
    };
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(HelperError::Io {
            operation: if meta.is_dir() {
                "remove directory"
            } else {
                "remove file"
            },
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Resolves the kernel name (`loop3`, `nvme1n1`) of block device `devno` through
/// `<sysfs>/dev/block/MAJ:MIN`.
pub fn kernel_name(sysfs_root: &Path, devno: DevNo) -> Option<String> {
    let link = sysfs_root.join("dev/block").join(devno.to_string());
    let target: PathBuf = fs::read_link(&link).ok()?;
    target.file_name()?.to_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn ensure_dir_creates_only_the_last_component() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("mount");
        ensure_dir(&target).unwrap();
        ensure_dir(&target).unwrap();
        let mode = fs::metadata(&target).unwrap().mode() & 0o777;
        assert_eq!(mode & !0o750, 0, "mode {mode:o}");
        assert!(ensure_dir(&tmp.path().join("a/b")).is_err());
        fs::write(tmp.path().join("file"), b"").unwrap();
        assert_eq!(
            ensure_dir(&tmp.path().join("file")).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn ensure_file_refuses_directories_and_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("dev");
        ensure_file(&target).unwrap();
        assert!(target.is_file());
        ensure_file(&target).unwrap();
        assert!(ensure_file(tmp.path()).is_err());
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), &link).unwrap();
        assert!(ensure_file(&link).is_err());
        assert!(!tmp.path().join("elsewhere").exists());
    }

    #[test]
    fn remove_entry_is_never_recursive() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("target");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("precious"), b"data").unwrap();
        assert!(remove_entry(&dir).is_err());
        assert_eq!(fs::read(dir.join("precious")).unwrap(), b"data");
        fs::remove_file(dir.join("precious")).unwrap();
        remove_entry(&dir).unwrap();
        assert!(!dir.exists());
        remove_entry(&dir).unwrap();
        let file = tmp.path().join("f");
        fs::write(&file, b"").unwrap();
        remove_entry(&file).unwrap();
        assert!(!file.exists());
        // A symlink is removed itself, never what it points to.
        let keep = tmp.path().join("keep");
        fs::create_dir(&keep).unwrap();
        let link = tmp.path().join("l");
        std::os::unix::fs::symlink(&keep, &link).unwrap();
        remove_entry(&link).unwrap();
        assert!(keep.is_dir());
    }
}
