//! Doctor checks of the kernel side: the `nvme_tcp` module, the `/dev/nvme-fabrics` control
//! device and, for the loop fabric, `/dev/loop-control` and the backing directory.
//!
//! A device node must be a character device the helper may write: a regular file at
//! `/dev/nvme-fabrics` is a real failure (writing a connect string there while `nvme-fabrics`
//! was not loaded creates one, and every later connect "succeeds" into that file), so it is
//! reported, not accepted. Tests stand a device in with a symbolic link to `/dev/null`.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use nix::unistd::{AccessFlags, access};

use crate::doctor::Check;

/// Name of the module check.
pub const NVME_TCP_CHECK: &str = "nvme-tcp-module";
/// Name of the fabrics device check.
pub const FABRICS_CHECK: &str = "fabrics-device";
/// Name of the loop control check.
pub const LOOP_CONTROL_CHECK: &str = "loop-control";
/// Name of the backing directory check.
pub const LOOP_BACKING_CHECK: &str = "loop-backing-dir";

/// The module's directory name under `<sysfs>/module`.
pub const NVME_TCP_MODULE: &str = "nvme_tcp";

const LOAD_NVME_TCP: &str = "on the node run `modprobe nvme-tcp` and make it load at boot: \
                             `echo nvme-tcp > /etc/modules-load.d/nvme-tcp.conf`";

/// `nvme_tcp` is loaded or built in: `<sysfs>/module/nvme_tcp` exists (a loadable module also
/// has `initstate`, which must say `live`).
pub fn nvme_tcp_module(sysfs_root: &Path) -> Check {
    let dir = sysfs_root.join("module").join(NVME_TCP_MODULE);
    match fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Check::fail(
                NVME_TCP_CHECK,
                format!("{} is not a directory", dir.display()),
                format!("check that --sysfs-root points at sysfs; then {LOAD_NVME_TCP}"),
            );
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Check::fail(
                NVME_TCP_CHECK,
                format!(
                    "{} does not exist: the nvme_tcp module is not loaded",
                    dir.display()
                ),
                LOAD_NVME_TCP,
            );
        }
        Err(e) => {
            return Check::fail(
                NVME_TCP_CHECK,
                format!("cannot read {}: {e}", dir.display()),
                "run the doctor inside the helper container, which sees the host's sysfs",
            );
        }
    }
    match fs::read_to_string(dir.join("initstate")) {
        Ok(state) if state.trim() == "live" => Check::pass(
            NVME_TCP_CHECK,
            format!("{} present, loaded as a module (live)", dir.display()),
        ),
        Ok(state) => Check::fail(
            NVME_TCP_CHECK,
            format!(
                "{} present but the module is {:?}, not live",
                dir.display(),
                state.trim()
            ),
            "wait for it to finish loading or unloading, then run `modprobe nvme-tcp` on the node",
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Check::pass(
            NVME_TCP_CHECK,
            format!("{} present, built into the kernel", dir.display()),
        ),
        Err(e) => Check::fail(
            NVME_TCP_CHECK,
            format!("cannot read {}/initstate: {e}", dir.display()),
            "run the doctor inside the helper container, which sees the host's sysfs",
        ),
    }
}

/// What to advise for one device node.
struct DeviceFixes {
    /// The check's name.
    check: &'static str,
    /// When the node does not exist.
    missing: String,
    /// When something other than a character device is in its place.
    impostor: String,
}

/// `/dev/nvme-fabrics` (or `--fabrics-device`) is a character device the helper can write.
pub fn fabrics_device(path: &Path) -> Check {
    device_node(
        path,
        &DeviceFixes {
            check: FABRICS_CHECK,
            missing: "on the node run `modprobe nvme-tcp` (it loads nvme-fabrics, which creates \
                      the device) and give the helper container the host's /dev (hostPath /dev)"
                .into(),
            impostor: format!(
                "delete it (`rm {}`) and load the module that creates the real device: \
                 `modprobe nvme-fabrics`",
                path.display()
            ),
        },
    )
}

/// `<dev-root>/loop-control` is a character device the helper can write.
pub fn loop_control(dev_root: &Path) -> Check {
    let path = dev_root.join("loop-control");
    device_node(
        &path,
        &DeviceFixes {
            check: LOOP_CONTROL_CHECK,
            missing: "on the node run `modprobe loop` and give the helper container the host's \
                      /dev (hostPath /dev)"
                .into(),
            impostor: format!(
                "delete it (`rm {}`) and run `modprobe loop` on the node",
                path.display()
            ),
        },
    )
}

fn device_node(path: &Path, fixes: &DeviceFixes) -> Check {
    let shown = path.display();
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Check::fail(
                fixes.check,
                format!("{shown} does not exist"),
                fixes.missing.clone(),
            );
        }
        Err(e) => {
            return Check::fail(
                fixes.check,
                format!("cannot stat {shown}: {e}"),
                "run the doctor as root inside the helper container",
            );
        }
    };
    let kind = meta.file_type();
    if !kind.is_char_device() {
        let what = if kind.is_file() {
            "a regular file"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_block_device() {
            "a block device"
        } else {
            "not a device"
        };
        return Check::fail(
            fixes.check,
            format!("{shown} is {what}, not a character device"),
            fixes.impostor.clone(),
        );
    }
    let rdev = meta.rdev();
    let number = format!(
        "{}:{}",
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev)
    );
    match access(path, AccessFlags::W_OK) {
        Ok(()) => Check::pass(
            fixes.check,
            format!("{shown} is a character device ({number}), writable"),
        ),
        Err(errno) => Check::fail(
            fixes.check,
            format!(
                "{shown} is a character device ({number}) but not writable by uid {}: {errno}",
                nix::unistd::geteuid()
            ),
            "run the helper (and the doctor) as root in a privileged container",
        ),
    }
}

/// `--loop-backing-dir` was given and is a directory.
pub fn loop_backing_dir(dir: Option<&Path>) -> Check {
    let fix = "point --loop-backing-dir (NVME_HELPER_LOOP_BACKING_DIR) at the RouterOS \
               simulator's file root";
    let Some(dir) = dir else {
        return Check::fail(
            LOOP_BACKING_CHECK,
            "--fabric loop without --loop-backing-dir",
            fix,
        );
    };
    let shown = dir.display();
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Check::pass(LOOP_BACKING_CHECK, format!("{shown} exists")),
        Ok(_) => Check::fail(
            LOOP_BACKING_CHECK,
            format!("{shown} is not a directory"),
            fix,
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Check::fail(LOOP_BACKING_CHECK, format!("{shown} does not exist"), fix)
        }
        Err(e) => Check::fail(LOOP_BACKING_CHECK, format!("cannot stat {shown}: {e}"), fix),
    }
}
