//! The helper's command line: every flag also reads an environment variable, and turning the
//! flags into the node's settings happens here, once, so that a bad value fails at start-up
//! naming its flag.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use nvme_helper::doctor::{DoctorConfig, FabricChoice};
use nvme_helper::external::TOOL_PATH;
use nvme_helper::fabric::{DEFAULT_DEV_ROOT, DEFAULT_FABRICS_DEV};
use nvme_helper::host_identity::{DEFAULT_HOSTID_PATH, DEFAULT_HOSTNQN_PATH, HostIdentityFiles};
use nvme_helper::kubelet_path::DEFAULT_KUBELET_DIR;
use nvme_helper::mountinfo::DEFAULT_MOUNTINFO;
use nvme_helper::nqn::NqnPrefix;
use nvme_helper::stage_record::DEFAULT_STATE_DIR;
use nvme_helper::sysfs::DEFAULT_SYSFS_ROOT;
use rds_csi_proto::component::CommonArgs;
use rds_csi_proto::endpoint::Endpoint;

/// Which fabric connects volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FabricKind {
    /// The kernel's NVMe/TCP initiator (`/dev/nvme-fabrics` and sysfs).
    Kernel,
    /// Loop devices over the RouterOS simulator's backing files (single-machine testbed).
    Loop,
}

/// The privileged node agent of rds-csi: connects NVMe/TCP volumes of a MikroTik ROSE
/// Data Server, formats only provably blank devices, and mounts them for kubelet. It
/// serves a narrow API on a unix socket that only the node-mode csi-frontend uses.
///
/// The socket is created with mode 0600 (--socket-mode): when the frontend runs as another
/// user, give the socket that user's group and 0660, never a wider mode.
///
/// Without a subcommand it serves; `nvme-helper doctor` checks the node instead.
#[derive(Debug, Parser)]
#[command(name = "nvme-helper", version, about, long_about = None)]
pub struct Args {
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Where to serve the helper API (a unix socket: unix:///path/to.sock).
    #[arg(
        long,
        env = "NVME_HELPER_ENDPOINT",
        default_value = "unix:///run/nvme-helper/helper.sock"
    )]
    pub endpoint: Endpoint,
    /// Address of the HTTP server for /metrics, /healthz and /readyz (host:port or :port).
    #[arg(long, env = "NVME_HELPER_METRICS_ADDRESS", default_value = ":9811")]
    pub metrics_address: String,
    #[command(flatten)]
    pub common: CommonArgs,

    /// How volumes are attached: the kernel's NVMe/TCP initiator, or loop devices over the
    /// simulator's files (testbed only).
    #[arg(
        long,
        env = "NVME_HELPER_FABRIC",
        value_enum,
        default_value = "kernel",
        global = true
    )]
    pub fabric: FabricKind,
    /// With --fabric loop: the simulator's root; the NQN <prefix><slot> is the file
    /// <slot>.img found under it (at most 4 directories deep, hidden directories skipped).
    #[arg(long, env = "NVME_HELPER_LOOP_BACKING_DIR", global = true)]
    pub loop_backing_dir: Option<PathBuf>,
    /// sysfs mount point.
    #[arg(long, env = "NVME_HELPER_SYSFS_ROOT", default_value = DEFAULT_SYSFS_ROOT, global = true)]
    pub sysfs_root: PathBuf,
    /// The NVMe over Fabrics control device.
    #[arg(long, env = "NVME_HELPER_FABRICS_DEVICE", default_value = DEFAULT_FABRICS_DEV, global = true)]
    pub fabrics_device: PathBuf,
    /// Directory holding block device nodes.
    #[arg(long, env = "NVME_HELPER_DEV_ROOT", default_value = DEFAULT_DEV_ROOT, global = true)]
    pub dev_root: PathBuf,
    /// kubelet's root directory: every path in a request must lie inside it.
    #[arg(long, env = "NVME_HELPER_KUBELET_DIR", default_value = DEFAULT_KUBELET_DIR, global = true)]
    pub kubelet_dir: PathBuf,
    /// Where the helper keeps its stage records.
    #[arg(long, env = "NVME_HELPER_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Only NQNs starting with this prefix are ever disconnected (orphan cleanup included).
    #[arg(
        long,
        env = "NVME_HELPER_MANAGED_NQN_PREFIX",
        default_value = "nqn.2000-02.com.mikrotik:"
    )]
    pub managed_nqn_prefix: String,
    /// This host's NQN (created when missing).
    #[arg(long, env = "NVME_HELPER_HOST_NQN_FILE", default_value = DEFAULT_HOSTNQN_PATH, global = true)]
    pub host_nqn_file: PathBuf,
    /// This host's id (created when missing).
    #[arg(long, env = "NVME_HELPER_HOST_ID_FILE", default_value = DEFAULT_HOSTID_PATH, global = true)]
    pub host_id_file: PathBuf,
    /// Longest wait for a volume's block device after connecting (the caller's deadline may
    /// end it sooner). A number with ms, s, m or h.
    #[arg(long, env = "NVME_HELPER_DEVICE_WAIT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub device_wait_timeout: Duration,
    /// Longest wait for a disconnect to complete.
    #[arg(long, env = "NVME_HELPER_DISCONNECT_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub disconnect_timeout: Duration,
    /// Longest run of an external tool (mkfs, blkid, resize2fs, xfs_growfs).
    #[arg(long, env = "NVME_HELPER_TOOL_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub tool_timeout: Duration,
    /// Interval of the stale-mount detector; 0 disables it.
    #[arg(long, env = "NVME_HELPER_STALE_CHECK_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub stale_check_interval: Duration,
    /// Disconnect our unclaimed, unused connections at start-up.
    #[arg(long, env = "NVME_HELPER_CLEANUP_ORPHANS", default_value_t = true, action = clap::ArgAction::Set)]
    pub cleanup_orphans: bool,
    /// Default mkfs.ext4 options (allow-listed, e.g. "-E lazy_itable_init=1 -m 0"), used
    /// when a volume brings none.
    #[arg(long, env = "NVME_HELPER_MKFS_EXT4_OPTIONS", default_value = "")]
    pub mkfs_ext4_options: String,
    /// Default mkfs.xfs options (allow-listed, e.g. "-m reflink=1").
    #[arg(long, env = "NVME_HELPER_MKFS_XFS_OPTIONS", default_value = "")]
    pub mkfs_xfs_options: String,
    /// This node's name as reported in node info (default: the kernel's host name).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
}

/// Subcommands; without one the helper serves.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that this node can run the helper: the nvme_tcp module, /dev/nvme-fabrics, the
    /// host NQN and host id, the filesystem tools, the kubelet dir and mount propagation. It
    /// reads the same flags and environment as the server, prints one PASS, FAIL or SKIP line
    /// per check (a FAIL with a fix), and exits 0 only when nothing failed.
    Doctor(DoctorArgs),
}

/// Options of `nvme-helper doctor` beyond the helper's own flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// The mount table to inspect (tests feed a fake one).
    #[arg(long, hide = true, default_value = DEFAULT_MOUNTINFO)]
    pub mountinfo: PathBuf,
    /// Colon-separated directories the tools are looked up in (tests point it at fakes).
    #[arg(long, hide = true, default_value = TOOL_PATH)]
    pub tool_path: String,
}

/// A flag whose value cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// `--fabric loop` without a backing directory.
    #[error("--fabric loop needs --loop-backing-dir")]
    LoopWithoutDir,
    /// A bad `--managed-nqn-prefix`.
    #[error("--managed-nqn-prefix: {0}")]
    Prefix(nvme_helper::error::HelperError),
}

impl Args {
    /// The managed prefix, validated.
    pub fn prefix(&self) -> Result<NqnPrefix, FlagError> {
        NqnPrefix::new(self.managed_nqn_prefix.clone()).map_err(FlagError::Prefix)
    }

    /// The loop backing directory, required with `--fabric loop`.
    pub fn loop_dir(&self) -> Result<Option<&PathBuf>, FlagError> {
        match (self.fabric, &self.loop_backing_dir) {
            (FabricKind::Loop, None) => Err(FlagError::LoopWithoutDir),
            (FabricKind::Loop, Some(d)) => Ok(Some(d)),
            (FabricKind::Kernel, _) => Ok(None),
        }
    }

    /// The host identity files.
    pub fn identity_files(&self) -> HostIdentityFiles {
        HostIdentityFiles {
            hostnqn: self.host_nqn_file.clone(),
            hostid: self.host_id_file.clone(),
        }
    }

    /// What the doctor checks, from the helper's flags and the doctor's own options.
    pub fn doctor_config(&self, doctor: &DoctorArgs) -> DoctorConfig {
        let fabric = match self.fabric {
            FabricKind::Kernel => FabricChoice::Kernel,
            FabricKind::Loop => FabricChoice::Loop {
                backing_dir: self.loop_backing_dir.clone(),
            },
        };
        DoctorConfig {
            fabric,
            sysfs_root: self.sysfs_root.clone(),
            fabrics_device: self.fabrics_device.clone(),
            dev_root: self.dev_root.clone(),
            kubelet_dir: self.kubelet_dir.clone(),
            identity: self.identity_files(),
            mountinfo: doctor.mountinfo.clone(),
            tool_path: doctor.tool_path.clone(),
        }
    }

    /// The mount table the helper reads.
    pub fn mountinfo(&self) -> PathBuf {
        PathBuf::from(DEFAULT_MOUNTINFO)
    }

    /// The node name: the flag, else the kernel's host name.
    pub fn hostname(&self) -> String {
        self.node_name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default()
        })
    }
}

/// Parses `500ms`, `30s`, `5m`, `1h` or a plain number of seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let text = raw.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration such as 500ms, 30s, 5m or 1h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "{raw:?} has an unknown unit {unit:?} (ms, s, m or h)"
            ));
        }
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "s", "1d", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loop_fabric_needs_a_backing_dir() {
        let args = Args::try_parse_from(["nvme-helper", "--fabric", "loop"]).unwrap();
        assert!(matches!(args.loop_dir(), Err(FlagError::LoopWithoutDir)));
        let args = Args::try_parse_from([
            "nvme-helper",
            "--fabric",
            "loop",
            "--loop-backing-dir",
            "/srv",
        ])
        .unwrap();
        assert_eq!(args.loop_dir().unwrap(), Some(&PathBuf::from("/srv")));
        let args = Args::try_parse_from(["nvme-helper"]).unwrap();
        assert_eq!(args.fabric, FabricKind::Kernel);
        assert!(args.cleanup_orphans);
        assert!(args.prefix().is_ok());
        let bad = Args::try_parse_from(["nvme-helper", "--managed-nqn-prefix", "nqn."]).unwrap();
        assert!(bad.prefix().is_err());
    }

    #[test]
    fn no_subcommand_serves_and_doctor_takes_the_helper_flags_on_either_side() {
        let serve = Args::try_parse_from(["nvme-helper", "--sysfs-root", "/s"]).unwrap();
        assert!(serve.command.is_none());
        for argv in [
            &[
                "nvme-helper",
                "--sysfs-root",
                "/s",
                "doctor",
                "--kubelet-dir",
                "/k",
            ][..],
            &[
                "nvme-helper",
                "doctor",
                "--sysfs-root",
                "/s",
                "--kubelet-dir",
                "/k",
            ][..],
        ] {
            let args = Args::try_parse_from(argv).unwrap();
            let Some(Command::Doctor(doctor)) = &args.command else {
                panic!("{argv:?}: no doctor subcommand");
            };
            let config = args.doctor_config(doctor);
            assert_eq!(config.sysfs_root, PathBuf::from("/s"), "{argv:?}");
            assert_eq!(config.kubelet_dir, PathBuf::from("/k"), "{argv:?}");
            assert_eq!(config.mountinfo, PathBuf::from(DEFAULT_MOUNTINFO));
            assert_eq!(config.tool_path, TOOL_PATH);
            assert_eq!(config.fabric, FabricChoice::Kernel);
        }
        let args = Args::try_parse_from([
            "nvme-helper",
            "doctor",
            "--fabric",
            "loop",
            "--mountinfo",
            "/m",
            "--tool-path",
            "/t",
        ])
        .unwrap();
        let Some(Command::Doctor(doctor)) = &args.command else {
            panic!("no doctor subcommand");
        };
        let config = args.doctor_config(doctor);
        assert_eq!(config.fabric, FabricChoice::Loop { backing_dir: None });
        assert_eq!(config.mountinfo, PathBuf::from("/m"));
        assert_eq!(config.tool_path, "/t");
        // The doctor's own options do not belong to the server.
        assert!(Args::try_parse_from(["nvme-helper", "--tool-path", "/t"]).is_err());
    }
}
