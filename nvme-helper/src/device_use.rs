//! Deciding whether a block device is still in use, before it may be disconnected.
//!
//! Disconnecting a device something still uses is how the Go driver took live volumes away.
//! A device counts as used when any of these holds: a filesystem of it is mounted anywhere in
//! our mount namespace (any mount with its device number, staging or bind), its node is
//! bind-mounted somewhere (a raw block publish; such a mount carries the device number of
//! `/dev`, so candidates are confirmed with `stat`), sysfs lists holders (device mapper, md),
//! or an `O_EXCL` open fails with `EBUSY` (a mount in another namespace, an exclusive opener).
//! Blocking: call from a blocking task.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{HelperError, Result};
use crate::mountinfo::MountTable;
use crate::mounts::{DevNo, block_devno, block_devno_at, entry_devno};
use crate::sysfs::Sysfs;

/// Who uses `device`, as short human-readable phrases; empty when nothing does.
/// Mounts at `ignore` (the staging path about to be unmounted, say) are not counted.
pub fn users_of(
    device: &Path,
    table: &MountTable,
    sysfs: &Sysfs,
    ignore: Option<&Path>,
) -> Result<Vec<String>> {
    let devno = match block_devno(device) {
        Ok(d) => d,
        // A device that is gone is used by nobody.
        Err(HelperError::DeviceNotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut users = mounts_of(devno, device, table, ignore);
    if let Some(name) = device.file_name().and_then(|n| n.to_str()) {
        match sysfs.holders(name) {
            Ok(holders) => users.extend(holders.into_iter().map(|h| format!("holder {h}"))),
            Err(HelperError::DeviceNotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if users.is_empty() && ignore.is_none() && exclusively_held(device)? {
        users.push("an exclusive opener (a mount in another namespace, or a device mapper)".into());
    }
    Ok(users)
}

/// Mount points where `devno` is mounted as a filesystem or bind-mounted as a device node.
pub fn mounts_of(
    devno: DevNo,
    device: &Path,
    table: &MountTable,
    ignore: Option<&Path>,
) -> Vec<String> {
    let node_name = device.file_name();
    let mut users = Vec::new();
    for entry in table.entries() {
        if ignore.is_some_and(|p| entry.mount_point == p) {
            continue;
        }
        if entry_devno(entry) == devno {
            users.push(format!("mounted at {}", entry.mount_point.display()));
            continue;
        }
        // A bind mount of a device node: its root is the node's path inside /dev.
        let names_node = node_name.is_some_and(|n| entry.root.file_name() == Some(n));
        if names_node && block_devno_at(&entry.mount_point) == Some(devno) {
            users.push(format!(
                "device node bind-mounted at {}",
                entry.mount_point.display()
            ));
        }
    }
    users
}

/// Whether an `O_EXCL` open of the device fails with `EBUSY`.
pub fn exclusively_held(device: &Path) -> Result<bool> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL | libc::O_CLOEXEC)
        .open(device)
    {
        Ok(_) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(HelperError::Io {
            operation: "open exclusively",
            path: device.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn filesystem_mounts_are_found_by_device_number() {
        let table = MountTable::parse(
            b"36 25 7:3 / /var/lib/kubelet/plugins/x/globalmount rw,relatime shared:1 - ext4 /dev/loop3 rw\n\
              37 25 7:3 / /var/lib/kubelet/pods/p/volumes/v/mount rw,relatime shared:1 - ext4 /dev/loop3 rw\n\
              38 25 7:4 / /elsewhere rw - ext4 /dev/loop4 rw\n",
        );
        let devno = DevNo { major: 7, minor: 3 };
        let all = mounts_of(devno, Path::new("/dev/loop3"), &table, None);
        assert_eq!(all.len(), 2, "{all:?}");
        let published = mounts_of(
            devno,
            Path::new("/dev/loop3"),
            &table,
            Some(Path::new("/var/lib/kubelet/plugins/x/globalmount")),
        );
        assert_eq!(
            published,
            ["mounted at /var/lib/kubelet/pods/p/volumes/v/mount"]
        );
    }

    #[test]
    fn a_missing_device_has_no_users() {
        let tmp = tempfile::tempdir().unwrap();
        let users = users_of(
            &tmp.path().join("nope"),
            &MountTable::default(),
            &Sysfs::new(tmp.path()),
            None,
        )
        .unwrap();
        assert!(users.is_empty());
    }
}
