//! Doctor checks of the kubelet dir: the helper can write in it, and the mounts it makes there
//! propagate back to the host, where kubelet and the pods look for them.
//!
//! Writability is proven by creating and removing a probe file (nothing is left behind).
//! Propagation is read from the mount table: the mount that contains the kubelet dir (the
//! deepest mount point above it, the topmost when mounts are stacked) must belong to a shared
//! peer group (`shared:N`). A slave (`master:N` only) or private mount means stage and publish
//! mounts stay inside the helper's container, invisible to kubelet.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::doctor::Check;
use crate::mountinfo::{MountEntry, MountTable};

/// Name of the writability check.
pub const WRITABLE_CHECK: &str = "kubelet-dir-writable";
/// Name of the propagation check.
pub const PROPAGATION_CHECK: &str = "mount-propagation";

const MOUNT_KUBELET_DIR: &str = "set --kubelet-dir to kubelet's --root-dir (default \
                                 /var/lib/kubelet) and mount that host directory read-write into \
                                 the helper container";

/// The kubelet dir exists, is a directory, and a file can be created in it and removed.
pub fn kubelet_dir_writable(dir: &Path) -> Check {
    let shown = dir.display();
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Check::fail(
                WRITABLE_CHECK,
                format!("{shown} is not a directory"),
                MOUNT_KUBELET_DIR,
            );
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Check::fail(
                WRITABLE_CHECK,
                format!("{shown} does not exist"),
                MOUNT_KUBELET_DIR,
            );
        }
        Err(e) => {
            return Check::fail(
                WRITABLE_CHECK,
                format!("cannot stat {shown}: {e}"),
                MOUNT_KUBELET_DIR,
            );
        }
    }
    let probe = dir.join(format!(
        ".nvme-helper-doctor-{}-{}",
        std::process::id(),
        Uuid::new_v4().simple()
    ));
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
        .and_then(|mut file| file.write_all(b"nvme-helper doctor probe\n"));
    if let Err(e) = created {
        // A failed write may still have created the file.
        let _ = fs::remove_file(&probe);
        return Check::fail(
            WRITABLE_CHECK,
            format!("cannot create a file in {shown}: {e}"),
            "mount the kubelet dir read-write into the helper container and run the helper as root",
        );
    }
    match fs::remove_file(&probe) {
        Ok(()) => Check::pass(
            WRITABLE_CHECK,
            format!("created and removed a probe file in {shown}"),
        ),
        Err(e) => Check::fail(
            WRITABLE_CHECK,
            format!("created {} but cannot remove it: {e}", probe.display()),
            format!(
                "remove {} by hand and check the kubelet dir's permissions",
                probe.display()
            ),
        ),
    }
}

/// The mount holding `path`: the deepest mount point that is `path` or above it; of several
/// mounts at that point, the last (topmost) one.
pub fn containing_mount<'a>(table: &'a MountTable, path: &Path) -> Option<&'a MountEntry> {
    table
        .entries()
        .iter()
        .filter(|e| path.starts_with(&e.mount_point))
        .fold(None, |best: Option<&MountEntry>, entry| match best {
            Some(b)
                if b.mount_point.components().count() > entry.mount_point.components().count() =>
            {
                Some(b)
            }
            _ => Some(entry),
        })
}

/// The mount containing the kubelet dir is shared, so mounts made there reach the host.
pub fn mount_propagation(kubelet_dir: &Path, mountinfo: &Path) -> Check {
    let table = match MountTable::read(mountinfo) {
        Ok(table) => table,
        Err(e) => {
            return Check::fail(
                PROPAGATION_CHECK,
                e.to_string(),
                "run the doctor inside the helper container, where /proc/self/mountinfo is readable",
            );
        }
    };
    // Mount points are real paths: resolve symbolic links in the kubelet dir when possible.
    let target: PathBuf =
        fs::canonicalize(kubelet_dir).unwrap_or_else(|_| kubelet_dir.to_path_buf());
    let Some(entry) = containing_mount(&table, &target) else {
        return Check::fail(
            PROPAGATION_CHECK,
            format!(
                "no mount in {} contains {}",
                mountinfo.display(),
                target.display()
            ),
            "run the doctor inside the helper container, with --kubelet-dir as the helper uses it",
        );
    };
    let seen = format!(
        "{} is on mount {} (id {})",
        target.display(),
        entry.mount_point.display(),
        entry.mount_id
    );
    if let Some(shared) = entry
        .optional_fields
        .iter()
        .find(|f| f.starts_with("shared:"))
    {
        return Check::pass(PROPAGATION_CHECK, format!("{seen}, shared ({shared})"));
    }
    let kind = match entry
        .optional_fields
        .iter()
        .find(|f| f.starts_with("master:"))
    {
        Some(master) => format!("a slave mount ({master}): mounts made there never reach the host"),
        None => "a private mount: mounts made there never reach the host".to_string(),
    };
    Check::fail(
        PROPAGATION_CHECK,
        format!("{seen}, {kind}"),
        "give the helper container `mountPropagation: Bidirectional` on its kubelet-dir volume \
         (privileged), and make the host mount shared: `mount --make-rshared /`",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_deepest_topmost_mount_contains_a_path() {
        let table = MountTable::parse(
            b"1 0 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n\
              2 1 8:2 / /var/lib rw shared:2 - ext4 /dev/sda2 rw\n\
              3 2 8:3 / /var/lib/kubelet rw - ext4 /dev/sda3 rw\n\
              4 2 8:4 / /var/lib/kubelet rw master:9 - ext4 /dev/sda4 rw\n\
              5 2 8:5 / /var/lib/kube rw shared:5 - ext4 /dev/sda5 rw\n",
        );
        let id = |p: &str| containing_mount(&table, Path::new(p)).map(|e| e.mount_id);
        assert_eq!(id("/var/lib/kubelet/pods/x"), Some(4));
        assert_eq!(id("/var/lib/kubelet"), Some(4));
        // Component-wise: /var/lib/kube is not above /var/lib/kubelet-other.
        assert_eq!(id("/var/lib/kubelet-other"), Some(2));
        assert_eq!(id("/etc"), Some(1));
        assert_eq!(
            containing_mount(&MountTable::default(), Path::new("/etc")),
            None
        );
    }
}
