//! The single error type of the helper's kernel-contract layer and its single mapping to gRPC codes.
//!
//! Every variant carries what it failed on (NQN, path, device, tool and argv) so that one log line
//! or one gRPC status message is enough to act on. `HelperError::code` is the only place where a
//! failure becomes a `tonic::Code`; the gRPC service layer must not invent its own mapping.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Result alias used across the crate.
pub type Result<T, E = HelperError> = std::result::Result<T, E>;

/// Why a single sysfs attribute file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttrProblem {
    /// The file does not exist.
    #[error("missing")]
    Missing,
    /// The file exists but reading it failed.
    #[error("unreadable ({0})")]
    Unreadable(String),
    /// The content is not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// The content is empty (or only whitespace).
    #[error("empty")]
    Empty,
    /// The content is larger than any real attribute can be.
    #[error("longer than {limit} bytes")]
    TooLong {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The content does not have the expected shape.
    #[error("unexpected content {content:?} (expected {expected})")]
    Garbage {
        /// What was read (trimmed).
        content: String,
        /// A short description of the expected shape.
        expected: &'static str,
    },
}

/// Why the bytes read as a filesystem superblock cannot be used (see `fs_geometry`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuperblockProblem {
    /// Fewer bytes could be read than the superblock needs (the device is tiny or truncated).
    #[error("only {got} bytes could be read, {needed} are needed")]
    Short {
        /// Bytes available.
        got: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The magic number is not the filesystem's.
    #[error("magic number {found:#x} is not {expected:#x}")]
    BadMagic {
        /// What was found.
        found: u64,
        /// What the filesystem type has.
        expected: u64,
    },
    /// The block size field is out of the range the filesystem allows.
    #[error("block size field {field} is out of range")]
    BadBlockSize {
        /// The raw field (log2 offset for ext4, bytes for xfs).
        field: u64,
    },
    /// The filesystem claims to have no blocks.
    #[error("block count is zero")]
    NoBlocks,
    /// Block count times block size does not fit 64 bits.
    #[error("{blocks} blocks of {block_size} bytes do not fit 64 bits")]
    Overflow {
        /// Block count.
        blocks: u64,
        /// Block size in bytes.
        block_size: u64,
    },
}

/// Why a path handed to the helper was refused (see `kubelet_path`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathRejection {
    /// The path is the empty string.
    #[error("it is empty")]
    Empty,
    /// The path contains a NUL byte.
    #[error("it contains a NUL byte")]
    ContainsNul,
    /// The path is not valid UTF-8.
    #[error("it is not valid UTF-8")]
    NotUtf8,
    /// The path is not absolute.
    #[error("it is not absolute")]
    Relative,
    /// The path is longer than the kernel accepts.
    #[error("it is {len} bytes long, more than {limit}")]
    TooLong {
        /// Length of the path in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// One component is longer than a file name may be.
    #[error("component {component:?} is longer than {limit} bytes")]
    ComponentTooLong {
        /// The offending component (possibly shortened).
        component: String,
        /// The limit.
        limit: usize,
    },
    /// The path has a `..` component.
    #[error("it has a '..' component")]
    DotDot,
    /// The path has a `.` component.
    #[error("it has a '.' component")]
    Dot,
    /// The path has an empty component (`//` or a trailing `/`).
    #[error("it has an empty component ('//' or a trailing '/')")]
    EmptyComponent,
    /// The final component exists and is a symbolic link.
    #[error("its final component is a symbolic link")]
    FinalSymlink,
    /// The parent directory does not exist.
    #[error("its parent directory {parent} does not exist")]
    ParentMissing {
        /// The parent as given.
        parent: PathBuf,
    },
    /// The parent directory or the final component could not be inspected.
    #[error("{path} cannot be inspected: {error}")]
    Uninspectable {
        /// What was being inspected.
        path: PathBuf,
        /// The I/O error, as text.
        error: String,
    },
    /// The path names the kubelet directory itself or lies outside it.
    #[error("it is not inside the kubelet directory {kubelet_dir}")]
    OutsideKubeletDir {
        /// The configured kubelet directory (canonical).
        kubelet_dir: PathBuf,
    },
    /// The path looks as if it were inside the kubelet directory, but its parent resolves elsewhere.
    #[error("its parent resolves through a symbolic link to {resolved}, outside {kubelet_dir}")]
    EscapesThroughSymlink {
        /// Where the parent really is.
        resolved: PathBuf,
        /// The configured kubelet directory (canonical).
        kubelet_dir: PathBuf,
    },
}

/// Every failure of the helper's kernel-contract layer.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// A string is not an acceptable NVMe Qualified Name.
    #[error("invalid NQN {nqn:?}: {reason}")]
    InvalidNqn {
        /// The rejected text.
        nqn: String,
        /// Why it was rejected.
        reason: String,
    },

    /// The managed-NQN prefix is not acceptable.
    #[error("invalid managed NQN prefix {prefix:?}: {reason}")]
    InvalidNqnPrefix {
        /// The rejected text.
        prefix: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A connect parameter is out of range.
    #[error("invalid connect option {option} for {nqn}: {reason}")]
    InvalidConnectSpec {
        /// The subsystem NQN of the spec.
        nqn: String,
        /// Which option.
        option: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// The fabrics device could not be opened (module not loaded, no permission, ...).
    #[error("cannot open fabrics device {path}: {source}")]
    FabricDevice {
        /// The fabrics device path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// The kernel refused or failed the connect request.
    #[error("connecting {nqn} at {traddr} port {trsvcid} through {path} failed: {source}")]
    FabricConnect {
        /// The subsystem NQN.
        nqn: String,
        /// Target address.
        traddr: String,
        /// Target port.
        trsvcid: u16,
        /// The fabrics device path.
        path: PathBuf,
        /// The underlying error (its errno is the kernel's answer).
        source: io::Error,
    },

    /// The kernel's answer to a connect request could not be understood.
    #[error("unexpected reply {reply:?} from {path} for {nqn}: {reason}")]
    FabricReply {
        /// The subsystem NQN.
        nqn: String,
        /// The fabrics device path.
        path: PathBuf,
        /// What was read back.
        reply: String,
        /// Why it was not understood.
        reason: String,
    },

    /// A controller was requested but did not show up in sysfs in time.
    #[error("no connected controller for {nqn} appeared under {path} within {waited:?}")]
    ControllerNotVisible {
        /// The subsystem NQN.
        nqn: String,
        /// The sysfs directory that was watched.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
    },

    /// No controller exists for the NQN.
    #[error("no connected controller for {nqn}")]
    ControllerNotFound {
        /// The subsystem NQN.
        nqn: String,
    },

    /// The subsystem exposes more than one namespace; the helper expects exactly one.
    #[error("{nqn} exposes {} namespaces {devices:?}, expected exactly one", devices.len())]
    MultipleNamespaces {
        /// The subsystem NQN.
        nqn: String,
        /// The block devices found.
        devices: Vec<String>,
    },

    /// No block device is attached for the NQN.
    #[error("no block device for {nqn}")]
    NoDevice {
        /// The subsystem NQN.
        nqn: String,
    },

    /// A sysfs attribute could not be read or understood.
    #[error("sysfs attribute {path} is {problem}")]
    SysfsAttr {
        /// The attribute file.
        path: PathBuf,
        /// What is wrong with it.
        problem: AttrProblem,
    },

    /// A sysfs directory could not be listed.
    #[error("cannot list sysfs directory {path}: {source}")]
    SysfsDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// Writing a controller attribute (`delete_controller`, `rescan_controller`) failed.
    #[error("writing {path} for {nqn} failed: {source}")]
    ControllerWrite {
        /// The subsystem NQN.
        nqn: String,
        /// The attribute file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// A block device name is not a plain kernel device name.
    #[error("invalid block device name {device:?}")]
    InvalidDeviceName {
        /// The rejected name.
        device: String,
    },

    /// A block device does not exist.
    #[error("block device {device} not found at {path}")]
    DeviceNotFound {
        /// The device name or path.
        device: String,
        /// Where it was looked for.
        path: PathBuf,
    },

    /// A block device is used by something else.
    #[error("block device {device} is in use by {users:?}")]
    DeviceInUse {
        /// The device.
        device: String,
        /// Who uses it (holders, mount points).
        users: Vec<String>,
    },

    /// An operation did not finish before its deadline.
    #[error("deadline passed while {operation} {target}")]
    DeadlineExceeded {
        /// What was being done ("disconnecting", ...).
        operation: &'static str,
        /// The NQN or path it was done to.
        target: String,
    },

    /// The host NQN / host id files are unusable.
    #[error("host identity file {path}: {reason}")]
    HostIdentity {
        /// The file.
        path: PathBuf,
        /// Why it is unusable.
        reason: String,
    },

    /// A path handed to the helper is unsafe.
    #[error("path {path:?} rejected: {reason}")]
    UnsafePath {
        /// The path (lossily converted for display).
        path: String,
        /// Why it was rejected.
        reason: PathRejection,
    },

    /// A filesystem type the helper does not format or mount.
    #[error("filesystem type {fs:?} is not supported (ext4 and xfs are)")]
    UnsupportedFilesystem {
        /// The requested type.
        fs: String,
    },

    /// A mount option is not on the allow-list.
    #[error("mount option {option:?} rejected for {fs}: {reason}")]
    InvalidMountOption {
        /// Filesystem type.
        fs: &'static str,
        /// The option as given.
        option: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A mkfs option is not on the allow-list.
    #[error("mkfs option {option:?} rejected for {fs}: {reason}")]
    InvalidMkfsOption {
        /// Filesystem type.
        fs: &'static str,
        /// The option as given.
        option: String,
        /// Why it was rejected.
        reason: String,
    },

    /// The blank-device probe could not decide that formatting is safe.
    #[error("probe of {device} is ambiguous: {seen}")]
    AmbiguousProbe {
        /// The device.
        device: PathBuf,
        /// What was seen.
        seen: String,
    },

    /// The blank-device probe itself failed.
    #[error("probing {device} failed: {reason}")]
    ProbeFailed {
        /// The device.
        device: PathBuf,
        /// Why.
        reason: String,
    },

    /// An external tool could not be started.
    #[error("cannot start {tool} (argv {argv:?}): {source}")]
    ToolSpawn {
        /// Tool name.
        tool: String,
        /// Full argv (program first).
        argv: Vec<String>,
        /// The underlying error.
        source: io::Error,
    },

    /// An external tool ended unsuccessfully.
    #[error("{tool} failed with {status} (argv {argv:?}): {stderr}")]
    ToolFailed {
        /// Tool name.
        tool: String,
        /// Full argv (program first).
        argv: Vec<String>,
        /// The exit status as text (`exit status: 1`, `signal: 9`).
        status: String,
        /// The exit code, when it exited normally.
        exit_code: Option<i32>,
        /// Trimmed (and capped) standard error.
        stderr: String,
    },

    /// An external tool ran past its timeout and was killed.
    #[error("{tool} did not finish within {timeout:?} and was killed (argv {argv:?})")]
    ToolTimedOut {
        /// Tool name.
        tool: String,
        /// Full argv (program first).
        argv: Vec<String>,
        /// The timeout that expired.
        timeout: Duration,
        /// Process id of the killed process (it has been reaped).
        pid: Option<u32>,
    },

    /// Any other I/O failure on a named path.
    #[error("cannot {operation} {path}: {source}")]
    Io {
        /// What was being done ("read", "rename", ...).
        operation: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// A loop-device ioctl or open failed (loop fabric).
    #[error("{operation} on {device} failed: {source}")]
    LoopDevice {
        /// The loop device or control node.
        device: PathBuf,
        /// Which operation (`LOOP_CONFIGURE`, `open`, ...).
        operation: &'static str,
        /// The underlying error.
        source: io::Error,
    },

    /// The loop fabric found no backing file for an NQN.
    #[error("no backing file {file} for {nqn} under {dir}")]
    BackingFileNotFound {
        /// The subsystem NQN.
        nqn: String,
        /// The file name looked for.
        file: String,
        /// The directory searched.
        dir: PathBuf,
    },

    /// The loop fabric found more than one backing file for an NQN.
    #[error("{nqn} matches several backing files {files:?}; refusing to guess")]
    BackingFileAmbiguous {
        /// The subsystem NQN.
        nqn: String,
        /// The candidates.
        files: Vec<PathBuf>,
    },

    /// The backing file of an NQN is attached to a loop device the helper did not set up.
    #[error(
        "backing file of {nqn} is already attached to {device} (file name {name:?}), not by this helper"
    )]
    ForeignAttachment {
        /// The subsystem NQN.
        nqn: String,
        /// The loop device holding it.
        device: PathBuf,
        /// Its `lo_file_name`.
        name: String,
    },

    /// A single-target volume is already published at another target path on this node.
    #[error(
        "volume {volume_id} is already published at {published_at} on this node; its access mode SINGLE_NODE_SINGLE_WRITER allows one target path at a time, so {target} has to wait until that pod unpublishes it"
    )]
    PublishedElsewhere {
        /// The CSI volume id.
        volume_id: String,
        /// The target path that was asked for.
        target: PathBuf,
        /// The target path that already holds it.
        published_at: PathBuf,
    },

    /// Another operation on the same volume is in progress.
    #[error(
        "{operation} of volume {volume_id} refused: {running} of the same volume is in progress"
    )]
    VolumeBusy {
        /// The volume.
        volume_id: String,
        /// What was asked.
        operation: &'static str,
        /// What is running.
        running: &'static str,
    },

    /// A request field is missing or malformed.
    #[error("invalid {field}: {reason}")]
    InvalidRequest {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },

    /// The device holds a filesystem other than the one requested.
    #[error("{device} holds a {found} filesystem, but {requested} was requested; not reformatting")]
    FilesystemMismatch {
        /// The device.
        device: PathBuf,
        /// What blkid found.
        found: String,
        /// What was asked for.
        requested: String,
    },

    /// A publish needs a staged volume, and there is none.
    #[error("volume {volume_id} is not staged at {path}: {reason}")]
    NotStaged {
        /// The volume.
        volume_id: String,
        /// The staging path.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },

    /// A volume path has nothing mounted (stats, expand).
    #[error("nothing of volume {volume_id} is mounted at {path}")]
    VolumePathNotFound {
        /// The volume.
        volume_id: String,
        /// The path.
        path: PathBuf,
    },

    /// A mount, bind, remount or unmount failed.
    #[error("{operation} {target} failed: {source}{detail}")]
    Mount {
        /// What was done (`mount`, `bind-mount`, `unmount`, ...).
        operation: &'static str,
        /// The mount point.
        target: PathBuf,
        /// Extra context (source, type, options), starting with a separator, or empty.
        detail: String,
        /// The kernel's answer.
        source: io::Error,
    },

    /// A stage record under the state directory is unusable.
    #[error("stage record {path}: {reason}")]
    StateRecord {
        /// The record file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// The helper lacks a capability an operation needs.
    #[error(
        "{operation} needs {capability}, which this helper process does not have; grant it to the helper's container"
    )]
    MissingCapability {
        /// The capability (`CAP_SYS_RESOURCE`).
        capability: &'static str,
        /// What needs it.
        operation: &'static str,
    },

    /// A filesystem's superblock could not be used to tell its size.
    #[error("superblock of the {fs} filesystem on {device} is unusable: {problem}")]
    Superblock {
        /// The device.
        device: PathBuf,
        /// The filesystem type it was read as.
        fs: &'static str,
        /// What is wrong with it.
        problem: SuperblockProblem,
    },

    /// `e2fsck -f -p` found errors preen mode does not fix; nothing was grown or mounted.
    #[error(
        "e2fsck -f -p of {device} ended with {status}: the filesystem has errors that preen mode \
         does not repair, so it was neither grown nor mounted; check it by hand (e2fsck -f {device}). \
         e2fsck said: {output}"
    )]
    FilesystemCheck {
        /// The device.
        device: PathBuf,
        /// The exit status as text.
        status: String,
        /// The exit code, when e2fsck exited normally.
        exit_code: Option<i32>,
        /// Trimmed (and capped) standard output and standard error of e2fsck.
        output: String,
    },

    /// ext4 would have to grow online, and this node's helper lacks the capability for it.
    #[error(
        "volume {volume_id}: the ext4 filesystem on {device} ({fs_bytes} bytes) is smaller than \
         the device ({device_bytes} bytes), and this node's helper lacks CAP_SYS_RESOURCE, which \
         online ext4 grow (resize2fs of a mounted filesystem) needs; the filesystem will be grown \
         offline at the volume's next stage (or grant CAP_SYS_RESOURCE to the helper's container)"
    )]
    OnlineGrowUnavailable {
        /// The volume.
        volume_id: String,
        /// The device.
        device: PathBuf,
        /// The filesystem's size now.
        fs_bytes: u64,
        /// The device's size.
        device_bytes: u64,
    },

    /// A blocking worker task died (panicked or was cancelled).
    #[error("background task for {operation} {target} failed: {reason}")]
    Task {
        /// What the task was doing.
        operation: &'static str,
        /// NQN or path.
        target: String,
        /// The join error, as text.
        reason: String,
    },
}

impl HelperError {
    /// The gRPC status code for this error. This is the one mapping the helper uses.
    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            Self::InvalidNqn { .. }
            | Self::InvalidNqnPrefix { .. }
            | Self::InvalidConnectSpec { .. }
            | Self::InvalidDeviceName { .. }
            | Self::UnsafePath { .. }
            | Self::UnsupportedFilesystem { .. }
            | Self::InvalidMountOption { .. }
            | Self::InvalidMkfsOption { .. }
            | Self::InvalidRequest { .. } => Code::InvalidArgument,

            Self::ControllerNotFound { .. }
            | Self::NoDevice { .. }
            | Self::DeviceNotFound { .. }
            | Self::BackingFileNotFound { .. }
            | Self::VolumePathNotFound { .. } => Code::NotFound,

            Self::AmbiguousProbe { .. }
            | Self::DeviceInUse { .. }
            | Self::MultipleNamespaces { .. }
            | Self::BackingFileAmbiguous { .. }
            | Self::ForeignAttachment { .. }
            | Self::PublishedElsewhere { .. }
            | Self::FilesystemMismatch { .. }
            | Self::NotStaged { .. }
            | Self::MissingCapability { .. }
            | Self::Superblock { .. }
            | Self::FilesystemCheck { .. }
            | Self::OnlineGrowUnavailable { .. } => Code::FailedPrecondition,

            Self::VolumeBusy { .. } => Code::Aborted,

            Self::DeadlineExceeded { .. } | Self::ToolTimedOut { .. } => Code::DeadlineExceeded,

            Self::FabricConnect { .. } | Self::ControllerNotVisible { .. } => Code::Unavailable,

            Self::FabricDevice { .. }
            | Self::FabricReply { .. }
            | Self::SysfsAttr { .. }
            | Self::SysfsDir { .. }
            | Self::ControllerWrite { .. }
            | Self::HostIdentity { .. }
            | Self::ProbeFailed { .. }
            | Self::ToolSpawn { .. }
            | Self::ToolFailed { .. }
            | Self::Io { .. }
            | Self::Task { .. }
            | Self::LoopDevice { .. }
            | Self::Mount { .. }
            | Self::StateRecord { .. } => Code::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn codes_follow_the_documented_mapping() {
        let cases: Vec<(HelperError, Code)> = vec![
            (
                HelperError::InvalidNqn {
                    nqn: "x".into(),
                    reason: "r".into(),
                },
                Code::InvalidArgument,
            ),
            (
                HelperError::UnsafePath {
                    path: "a".into(),
                    reason: PathRejection::Relative,
                },
                Code::InvalidArgument,
            ),
            (HelperError::NoDevice { nqn: "n".into() }, Code::NotFound),
            (
                HelperError::VolumeBusy {
                    volume_id: "v".into(),
                    operation: "stage",
                    running: "stage",
                },
                Code::Aborted,
            ),
            (
                HelperError::FilesystemMismatch {
                    device: "/dev/loop1".into(),
                    found: "xfs".into(),
                    requested: "ext4".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                HelperError::AmbiguousProbe {
                    device: "/dev/x".into(),
                    seen: "gpt".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                HelperError::DeviceInUse {
                    device: "nvme1n1".into(),
                    users: vec!["dm-0".into()],
                },
                Code::FailedPrecondition,
            ),
            (
                HelperError::DeadlineExceeded {
                    operation: "disconnecting",
                    target: "n".into(),
                },
                Code::DeadlineExceeded,
            ),
            (
                HelperError::FabricConnect {
                    nqn: "n".into(),
                    traddr: "10.0.0.1".into(),
                    trsvcid: 4420,
                    path: "/dev/nvme-fabrics".into(),
                    source: io::Error::from_raw_os_error(libc::ECONNREFUSED),
                },
                Code::Unavailable,
            ),
            (
                HelperError::SysfsAttr {
                    path: "/sys/x".into(),
                    problem: AttrProblem::NotUtf8,
                },
                Code::Internal,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code, "{err}");
        }
    }

    #[test]
    fn messages_name_their_subject() {
        let err = HelperError::ToolFailed {
            tool: "mkfs.ext4".into(),
            argv: vec!["mkfs.ext4".into(), "/dev/nvme1n1".into()],
            status: "exit status: 1".into(),
            exit_code: Some(1),
            stderr: "device busy".into(),
        };
        let text = err.to_string();
        assert!(text.contains("mkfs.ext4"), "{text}");
        assert!(text.contains("/dev/nvme1n1"), "{text}");
        assert!(text.contains("device busy"), "{text}");
    }
}
