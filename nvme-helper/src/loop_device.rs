//! The Linux loop-device ioctls the loop fabric needs, wrapped once.
//!
//! The single-machine testbed presents a simulator's backing file as a block device by
//! attaching it to a loop device, the way `losetup` would, but without running `losetup`:
//! `LOOP_CTL_GET_FREE` on `/dev/loop-control` picks a free device, `LOOP_CONFIGURE` (or, on
//! kernels older than 5.8, `LOOP_SET_FD` + `LOOP_SET_STATUS64`) attaches the file and sets
//! `lo_file_name`, `LOOP_GET_STATUS64` reads it back, `LOOP_SET_CAPACITY` re-reads the file's
//! size after it grew, and `LOOP_CLR_FD` detaches. All `unsafe` of the crate lives here, each
//! call with the structure layout of `<linux/loop.h>` and a note on why it is sound.
//!
//! `LO_FLAGS_AUTOCLEAR` is never set by us: we detach explicitly. The kernel sets it itself
//! when `LOOP_CLR_FD` is asked for a device that is still open (a mounted filesystem), and
//! detaches at the last close; the loop fabric reads that flag as "disconnect pending".
//! Every function here blocks: call them from a blocking task.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{HelperError, Result};

/// Size of `lo_file_name` (and of `lo_crypt_name`), including the terminating NUL.
pub const LO_NAME_SIZE: usize = 64;
const LO_KEY_SIZE: usize = 32;

/// `LO_FLAGS_READ_ONLY`.
pub const LO_FLAGS_READ_ONLY: u32 = 1;
/// `LO_FLAGS_AUTOCLEAR`: detach at the last close.
pub const LO_FLAGS_AUTOCLEAR: u32 = 4;

const LOOP_SET_FD: u16 = 0x4C00;
const LOOP_CLR_FD: u16 = 0x4C01;
const LOOP_SET_STATUS64: u16 = 0x4C04;
const LOOP_GET_STATUS64: u16 = 0x4C05;
const LOOP_SET_CAPACITY: u16 = 0x4C07;
const LOOP_CONFIGURE: u16 = 0x4C0A;
const LOOP_CTL_GET_FREE: u16 = 0x4C82;

/// How often attaching is retried when another process takes the free device first.
const ATTACH_ATTEMPTS: usize = 16;

/// `struct loop_info64` of `<linux/loop.h>` (232 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; LO_KEY_SIZE],
    lo_init: [u64; 2],
}

impl LoopInfo64 {
    fn zeroed() -> Self {
        Self {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: 0,
            lo_file_name: [0; LO_NAME_SIZE],
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; LO_KEY_SIZE],
            lo_init: [0; 2],
        }
    }
}

/// `struct loop_config` of `<linux/loop.h>` (304 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

nix::ioctl_none_bad!(ioctl_ctl_get_free, LOOP_CTL_GET_FREE);
nix::ioctl_write_ptr_bad!(ioctl_configure, LOOP_CONFIGURE, LoopConfig);
nix::ioctl_write_int_bad!(ioctl_set_fd, LOOP_SET_FD);
nix::ioctl_write_ptr_bad!(ioctl_set_status64, LOOP_SET_STATUS64, LoopInfo64);
nix::ioctl_read_bad!(ioctl_get_status64, LOOP_GET_STATUS64, LoopInfo64);
nix::ioctl_none_bad!(ioctl_set_capacity, LOOP_SET_CAPACITY);
nix::ioctl_none_bad!(ioctl_clr_fd, LOOP_CLR_FD);

/// What `LOOP_GET_STATUS64` reports about an attached device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopStatus {
    /// The `N` of `loopN`.
    pub number: u32,
    /// `lo_file_name` up to its first NUL (lossy UTF-8).
    pub file_name: String,
    /// `lo_flags`.
    pub flags: u32,
}

impl LoopStatus {
    /// Whether a detach is pending (the kernel set autoclear on a `LOOP_CLR_FD` while open).
    pub fn detach_pending(&self) -> bool {
        self.flags & LO_FLAGS_AUTOCLEAR != 0
    }
}

/// `lo_file_name` content for `name`: at most 63 bytes, cut at a character boundary, NUL padded.
pub fn file_name_field(name: &str) -> [u8; LO_NAME_SIZE] {
    let mut field = [0u8; LO_NAME_SIZE];
    let kept = truncate_name(name);
    for (slot, byte) in field.iter_mut().zip(kept.bytes()) {
        *slot = byte;
    }
    field
}

/// The part of `name` that fits `lo_file_name` (what a later read returns).
pub fn truncate_name(name: &str) -> &str {
    let mut end = name.len().min(LO_NAME_SIZE - 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.get(..end).unwrap_or_default()
}

fn loop_error(device: &Path, operation: &'static str, source: io::Error) -> HelperError {
    HelperError::LoopDevice {
        device: device.to_path_buf(),
        operation,
        source,
    }
}

/// The node of loop device `number` under `dev_root`.
pub fn device_node(dev_root: &Path, number: u32) -> PathBuf {
    dev_root.join(format!("loop{number}"))
}

/// Attaches `backing` (opened read-write) to a free loop device with `lo_file_name` = `name`
/// and returns the device number. Retries when another process takes the device first.
pub fn attach(dev_root: &Path, backing: &Path, name: &str) -> Result<u32> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(backing)
        .map_err(|source| HelperError::Io {
            operation: "open the backing file",
            path: backing.to_path_buf(),
            source,
        })?;
    let control_path = dev_root.join("loop-control");
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&control_path)
        .map_err(|e| loop_error(&control_path, "open", e))?;
    let mut last: Option<HelperError> = None;
    for _ in 0..ATTACH_ATTEMPTS {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument; the descriptor is open and owned.
        let number = match unsafe { ioctl_ctl_get_free(control.as_raw_fd()) } {
            Ok(n) => u32::try_from(n).map_err(|_| {
                loop_error(
                    &control_path,
                    "LOOP_CTL_GET_FREE",
                    io::Error::other(format!("negative device number {n}")),
                )
            })?,
            Err(errno) => {
                return Err(loop_error(
                    &control_path,
                    "LOOP_CTL_GET_FREE",
                    io::Error::from(errno),
                ));
            }
        };
        let node = device_node(dev_root, number);
        // Opened for writing: the kernel makes the loop device read-only otherwise.
        let device = match open_node(&node, true) {
            Ok(d) => d,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        match configure(&device, &file, name) {
            Ok(()) => return Ok(number),
            // Someone attached it between GET_FREE and our configure: take the next one.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                last = Some(loop_error(&node, "LOOP_CONFIGURE", e));
            }
            Err(e) => return Err(loop_error(&node, "LOOP_CONFIGURE", e)),
        }
    }
    Err(last.unwrap_or_else(|| {
        loop_error(
            &control_path,
            "LOOP_CTL_GET_FREE",
            io::Error::other("no free loop device"),
        )
    }))
}

/// Opens a loop device node for ioctls, waiting briefly for devtmpfs to create it.
fn open_node(node: &Path, write: bool) -> Result<File> {
    let mut attempts = 0;
    loop {
        match OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(libc::O_CLOEXEC)
            .open(node)
        {
            Ok(f) => return Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(loop_error(node, "open", e)),
        }
    }
}

fn configure(device: &File, backing: &File, name: &str) -> io::Result<()> {
    let mut info = LoopInfo64::zeroed();
    info.lo_file_name = file_name_field(name);
    let fd = u32::try_from(backing.as_raw_fd()).map_err(|_| io::Error::other("bad descriptor"))?;
    let config = LoopConfig {
        fd,
        block_size: 0,
        info,
        reserved: [0; 8],
    };
    // SAFETY: `config` is a fully initialised `struct loop_config` that outlives the call; the
    // kernel only reads it. Both descriptors are open for the duration of the call.
    match unsafe { ioctl_configure(device.as_raw_fd(), &config) } {
        Ok(_) => Ok(()),
        // Kernels before 5.8 have no LOOP_CONFIGURE: attach, then set the status.
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOTTY) => {
            // SAFETY: LOOP_SET_FD takes the backing descriptor as its integer argument.
            unsafe { ioctl_set_fd(device.as_raw_fd(), backing.as_raw_fd()) }
                .map_err(io::Error::from)?;
            // SAFETY: `info` is a fully initialised `struct loop_info64`, read by the kernel.
            if let Err(errno) = unsafe { ioctl_set_status64(device.as_raw_fd(), &info) } {
                // Do not leave a half-configured device behind.
                // SAFETY: LOOP_CLR_FD takes no argument.
                let _ = unsafe { ioctl_clr_fd(device.as_raw_fd()) };
                return Err(io::Error::from(errno));
            }
            Ok(())
        }
        Err(errno) => Err(io::Error::from(errno)),
    }
}

/// Reads the status of loop device `number`; `None` when it is not attached (ENXIO) or gone.
pub fn status(dev_root: &Path, number: u32) -> Result<Option<LoopStatus>> {
    let node = device_node(dev_root, number);
    let device = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&node)
    {
        Ok(d) => d,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENXIO)) => {
            return Ok(None);
        }
        Err(e) => return Err(loop_error(&node, "open", e)),
    };
    let mut info = LoopInfo64::zeroed();
    // SAFETY: `info` is a writable `struct loop_info64` the kernel fills in; it outlives the call.
    match unsafe { ioctl_get_status64(device.as_raw_fd(), &mut info) } {
        Ok(_) => {
            let end = info
                .lo_file_name
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(LO_NAME_SIZE);
            let name = info.lo_file_name.get(..end).unwrap_or_default();
            Ok(Some(LoopStatus {
                number: info.lo_number,
                file_name: String::from_utf8_lossy(name).into_owned(),
                flags: info.lo_flags,
            }))
        }
        Err(nix::errno::Errno::ENXIO) => Ok(None),
        Err(errno) => Err(loop_error(
            &node,
            "LOOP_GET_STATUS64",
            io::Error::from(errno),
        )),
    }
}

/// Asks the kernel to re-read the backing file's size.
pub fn set_capacity(dev_root: &Path, number: u32) -> Result<()> {
    let node = device_node(dev_root, number);
    let device = open_node(&node, false)?;
    // SAFETY: LOOP_SET_CAPACITY takes no argument; the descriptor is open.
    unsafe { ioctl_set_capacity(device.as_raw_fd()) }
        .map(drop)
        .map_err(|errno| loop_error(&node, "LOOP_SET_CAPACITY", io::Error::from(errno)))
}

/// Detaches loop device `number`. Returns `false` when it was not attached. When the device is
/// still open elsewhere the kernel defers the detach to the last close (and sets autoclear).
pub fn detach(dev_root: &Path, number: u32) -> Result<bool> {
    let node = device_node(dev_root, number);
    let device = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&node)
    {
        Ok(d) => d,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENXIO)) => {
            return Ok(false);
        }
        Err(e) => return Err(loop_error(&node, "open", e)),
    };
    // SAFETY: LOOP_CLR_FD takes no argument; the descriptor is open.
    match unsafe { ioctl_clr_fd(device.as_raw_fd()) } {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::ENXIO) => Ok(false),
        Err(errno) => Err(loop_error(&node, "LOOP_CLR_FD", io::Error::from(errno))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn structures_match_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
        assert_eq!(std::mem::offset_of!(LoopInfo64, lo_flags), 52);
        assert_eq!(std::mem::offset_of!(LoopInfo64, lo_file_name), 56);
        assert_eq!(std::mem::offset_of!(LoopConfig, info), 8);
    }

    #[test]
    fn names_are_cut_to_63_bytes_on_a_character_boundary() {
        let short = "nqn.2000-02.com.mikrotik:pvc-1";
        assert_eq!(truncate_name(short), short);
        let field = file_name_field(short);
        assert_eq!(&field[..short.len()], short.as_bytes());
        assert!(field[short.len()..].iter().all(|&b| b == 0));

        let long = format!("nqn.2000-02.com.mikrotik:{}", "a".repeat(80));
        assert_eq!(truncate_name(&long).len(), 63);
        assert_eq!(file_name_field(&long)[63], 0);

        let multibyte = format!("{}é", "a".repeat(62));
        assert_eq!(truncate_name(&multibyte), "a".repeat(62));
    }
}
