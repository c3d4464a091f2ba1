//! The gateway's command line: every flag also reads an environment variable, and turning flags
//! into the SSH and gateway settings happens here, once, so that a bad value fails at start-up
//! naming its flag. An unreachable RDS is not a start-up error (the gateway serves and reports
//! not ready); a missing key file or host key is.
//!
//! Without a subcommand the gateway serves. `rds-gateway doctor` checks the way to the RDS
//! instead, with the same RDS flags (they are global, so they may come before or after
//! `doctor`); there a bad value is a failed check with a fix, not a start-up error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use rds_csi_proto::component::CommonArgs;
use rds_csi_proto::endpoint::Endpoint;
use rds_csi_proto::flags::parse_duration;
use rds_gateway::assembly::Settings;
use rds_gateway::doctor::{DoctorSettings, HostKeySetting};
use rds_gateway::executor::ExecutorConfig;
use rds_gateway::routeros::names::{PoolPath, SlotPrefix};
use rds_gateway::routeros::size::Bytes;
use rds_gateway::ssh::{ClientKey, HostKeyCheck, HostKeyPin, SshConfig};

/// Holds the SSH session to the MikroTik ROSE Data Server (RouterOS) and serves the
/// internal gateway API that the controller-mode csi-frontend relays volume, snapshot and
/// capacity calls to. It is the only rds-csi process that holds RDS credentials.
#[derive(Debug, Parser)]
#[command(name = "rds-gateway", version, about, long_about = None)]
pub struct Args {
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Where to serve the gateway API: unix:///path/to.sock, or tcp://host:port when the
    /// frontend runs in another pod.
    #[arg(
        long,
        env = "RDS_GATEWAY_ENDPOINT",
        default_value = "unix:///run/rds-csi/gateway.sock"
    )]
    pub endpoint: Endpoint,
    /// Address of the HTTP server for /metrics, /healthz and /readyz (host:port or :port).
    #[arg(long, env = "RDS_GATEWAY_METRICS_ADDRESS", default_value = ":9810")]
    pub metrics_address: String,

    /// Host name or IP address of the RDS (its SSH service). Without it the gateway serves but
    /// stays not ready and answers every RDS call with UNAVAILABLE.
    #[arg(long, global = true, env = "RDS_ADDRESS")]
    pub rds_address: Option<String>,
    /// SSH port of the RDS.
    #[arg(long, global = true, env = "RDS_PORT", default_value_t = 22)]
    pub rds_port: u16,
    /// RouterOS user to log in as (public-key authentication; the key must be in the
    /// user's `/user ssh-keys` on the RDS).
    #[arg(long, global = true, env = "RDS_USER", default_value = "admin")]
    pub rds_user: String,
    /// OpenSSH private key file (ed25519 or RSA, not passphrase-protected). Required with
    /// --rds-address.
    #[arg(long, global = true, env = "RDS_KEY_FILE")]
    pub rds_key_file: Option<PathBuf>,
    /// The RDS host key to accept: an OpenSSH public-key line (`ssh-ed25519 AAAA...`), a
    /// known_hosts line (`rds.lan ssh-ed25519 AAAA...`, as printed by `ssh-keyscan`), or the path
    /// of a file holding such lines. Required unless --rds-insecure-skip-host-key-check.
    #[arg(
        long,
        global = true,
        env = "RDS_HOST_KEY",
        conflicts_with = "rds_insecure_skip_host_key_check"
    )]
    pub rds_host_key: Option<String>,
    /// Accept any RDS host key without checking it (logged as a warning on every connection).
    /// For first tests only: anyone on the path could pose as the RDS.
    #[arg(
        long,
        global = true,
        env = "RDS_INSECURE_SKIP_HOST_KEY_CHECK",
        default_value_t = false
    )]
    pub rds_insecure_skip_host_key_check: bool,
    /// RouterOS console options appended to the login name (`admin+cet512w`): no colours, dumb
    /// terminal, no auto-detection, 512 columns, which keeps output free of escapes and wrapping.
    /// Empty disables.
    #[arg(
        long,
        global = true,
        env = "RDS_CONSOLE_OPTIONS",
        default_value = "+cet512w"
    )]
    pub rds_console_options: String,
    /// Directory on the RDS that holds the volumes' backing files, inside a storage pool
    /// (used when a request names none).
    #[arg(
        long,
        global = true,
        env = "RDS_VOLUME_BASE_PATH",
        default_value = "storage-pool/kubernetes-volumes"
    )]
    pub rds_volume_base_path: String,
    /// Most SSH sessions the gateway opens to the RDS at once.
    #[arg(long, env = "RDS_MAX_SESSIONS", default_value_t = rds_gateway::ssh::config::DEFAULT_MAX_SESSIONS)]
    pub rds_max_sessions: usize,
    /// Most RouterOS commands that may wait for a free SSH channel; beyond that, calls fail at
    /// once with UNAVAILABLE (back-pressure).
    #[arg(long, env = "RDS_QUEUE_DEPTH", default_value_t = rds_gateway::ssh::config::DEFAULT_QUEUE_DEPTH)]
    pub rds_queue_depth: usize,
    /// Deadline of a RouterOS command when the caller gave none (`30s`, `1m`, `500ms`, or seconds).
    #[arg(long, global = true, env = "RDS_COMMAND_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub rds_command_timeout: Duration,
    /// Upper bound of any RouterOS command's deadline, whatever the caller asks.
    #[arg(long, global = true, env = "RDS_MAX_COMMAND_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    pub rds_max_command_timeout: Duration,
    /// Interval of the liveness command on each SSH session.
    #[arg(long, env = "RDS_HEALTH_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub rds_health_interval: Duration,
    /// Interval at which pool capacity (total and free) is read in the background.
    #[arg(long, env = "RDS_CAPACITY_REFRESH_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    pub capacity_refresh_interval: Duration,
    /// Slot prefix of the disks this gateway manages (repeat the flag, or separate with commas
    /// in the environment variable). Disks outside these prefixes are never listed or changed.
    #[arg(
        long = "managed-slot-prefix",
        global = true,
        env = "RDS_MANAGED_SLOT_PREFIXES",
        value_delimiter = ',',
        default_values_t = ["pvc-".to_string(), "snap-".to_string()]
    )]
    pub managed_slot_prefixes: Vec<String>,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// Subcommands (without one, the gateway serves).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the way to the RDS one step at a time and say what to fix.
    ///
    /// Checks the address, the host key (its SHA256 fingerprint), the login, the RouterOS version
    /// and JSON output, the user's rights, the volume base path and the pool's free space. Prints
    /// PASS, FAIL (with a fix) or SKIP per check; the exit status is 0 only when every check
    /// passes. Uses the same --rds-* flags and environment variables as the gateway, and only
    /// reads: it changes nothing on the RDS.
    Doctor(DoctorArgs),
}

/// How the doctor prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// `PASS|FAIL|SKIP <check>: <seen>` lines, `  fix: ...` under failures, and a summary.
    Text,
    /// One JSON object per check per line (`check`, `status`, `seen`, `fix`).
    Json,
}

/// The doctor's own flags.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Bound of the whole doctor run (`30s`, `1m`, or seconds); a check still running when it
    /// passes fails with a timeout.
    #[arg(long, env = "RDS_DOCTOR_TIMEOUT", default_value = "1m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Least free space the pool must have for the free-space check to pass (`1GiB`,
    /// `500MiB`, or bytes).
    #[arg(long, env = "RDS_DOCTOR_MIN_FREE", default_value = "1GiB", value_parser = parse_size)]
    pub min_free: Bytes,
    /// Report format.
    #[arg(long, env = "RDS_DOCTOR_OUTPUT", value_enum, default_value = "text")]
    pub output: OutputFormat,
}

fn parse_size(raw: &str) -> Result<Bytes, String> {
    Bytes::parse(raw).map_err(|e| e.to_string())
}

/// A flag value that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {problem}")]
pub struct FlagError {
    /// The flag.
    pub flag: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn flag_error(flag: &'static str, problem: impl std::fmt::Display) -> FlagError {
    FlagError {
        flag,
        problem: problem.to_string(),
    }
}

/// True when the `--rds-host-key` value names a file rather than holding a key.
fn is_path(raw: &str) -> bool {
    raw.starts_with('/') || raw.starts_with("./") || raw.starts_with("../")
}

fn read_host_key(raw: &str) -> Result<HostKeyPin, FlagError> {
    let raw = raw.trim();
    let text = if is_path(raw) {
        std::fs::read_to_string(Path::new(raw))
            .map_err(|e| flag_error("--rds-host-key", format!("cannot read {raw}: {e}")))?
    } else {
        raw.to_owned()
    };
    HostKeyPin::parse(&text).map_err(|e| flag_error("--rds-host-key", e))
}

impl Args {
    /// The SSH transport's settings; `None` when no RDS address is given.
    pub fn ssh_config(&self) -> Result<Option<SshConfig>, FlagError> {
        let Some(address) = self.rds_address.as_deref() else {
            return Ok(None);
        };
        let Some(key_file) = &self.rds_key_file else {
            return Err(flag_error(
                "--rds-key-file",
                "is required with --rds-address",
            ));
        };
        let host_key = match (&self.rds_host_key, self.rds_insecure_skip_host_key_check) {
            (Some(raw), _) => HostKeyCheck::Pinned(read_host_key(raw)?),
            (None, true) => HostKeyCheck::InsecureSkip,
            (None, false) => {
                return Err(flag_error(
                    "--rds-host-key",
                    "the RDS host key must be pinned (for example with the output of \
                     `ssh-keyscan <rds-address>`), or the check disabled with \
                     --rds-insecure-skip-host-key-check",
                ));
            }
        };
        let key = ClientKey::from_file(key_file).map_err(|e| flag_error("--rds-key-file", e))?;
        let mut config = SshConfig::new(address.trim(), key, host_key);
        config.port = self.rds_port;
        config.user = self.rds_user.clone();
        config.console_options = self.rds_console_options.clone();
        config.max_sessions = self.rds_max_sessions;
        config.queue_depth = self.rds_queue_depth;
        config.default_timeout = self.rds_command_timeout;
        config.max_timeout = self.rds_max_command_timeout;
        config.health_interval = self.rds_health_interval;
        config.health_timeout = config.health_timeout.min(self.rds_health_interval);
        config.validate().map_err(|e| FlagError {
            flag: "RDS SSH setting",
            problem: e.to_string(),
        })?;
        Ok(Some(config))
    }

    /// What the doctor checks against: the same RDS flags, unvalidated (the doctor reports a bad
    /// value as a failed check), plus its own limits.
    pub fn doctor_settings(&self, doctor: &DoctorArgs) -> DoctorSettings {
        let host_key = match (&self.rds_host_key, self.rds_insecure_skip_host_key_check) {
            (Some(raw), _) => match read_host_key(raw) {
                Ok(pin) => HostKeySetting::Pinned(pin),
                Err(e) => HostKeySetting::Invalid(e.problem),
            },
            (None, true) => HostKeySetting::InsecureSkip,
            (None, false) => HostKeySetting::Missing,
        };
        let mut s = DoctorSettings::new(self.rds_address.clone());
        s.port = self.rds_port;
        s.user = self.rds_user.clone();
        s.console_options = self.rds_console_options.clone();
        s.key_file = self.rds_key_file.clone();
        s.host_key = host_key;
        s.base_path = self.rds_volume_base_path.clone();
        s.prefixes = self.managed_slot_prefixes.clone();
        s.command_timeout = self.rds_command_timeout;
        s.max_command_timeout = self.rds_max_command_timeout;
        s.timeout = doctor.timeout;
        s.min_free = doctor.min_free;
        s
    }

    /// The operations' settings.
    pub fn settings(&self) -> Result<Settings, FlagError> {
        let pool = PoolPath::parse(&self.rds_volume_base_path)
            .map_err(|e| flag_error("--rds-volume-base-path", e))?;
        let prefixes = self
            .managed_slot_prefixes
            .iter()
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                SlotPrefix::parse(p.trim()).map_err(|e| flag_error("--managed-slot-prefix", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if prefixes.is_empty() {
            return Err(flag_error(
                "--managed-slot-prefix",
                "at least one prefix is needed",
            ));
        }
        let mut settings = Settings::new(pool, prefixes);
        settings.executor = ExecutorConfig {
            default_timeout: self.rds_command_timeout,
            max_timeout: self.rds_max_command_timeout,
        };
        settings.capacity_refresh = self.capacity_refresh_interval;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        let mut argv = vec![
            "rds-gateway",
            "--rds-address",
            "10.0.0.5",
            "--rds-key-file",
            "/nonexistent/key",
        ];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv)
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.rds_port, 22);
        assert_eq!(a.rds_user, "admin");
        assert_eq!(a.rds_console_options, "+cet512w");
        assert_eq!(a.rds_volume_base_path, "storage-pool/kubernetes-volumes");
        assert_eq!(a.managed_slot_prefixes, ["pvc-", "snap-"]);
        assert_eq!(a.rds_command_timeout, Duration::from_secs(30));
        assert_eq!(a.rds_max_command_timeout, Duration::from_secs(120));
        assert_eq!(a.capacity_refresh_interval, Duration::from_secs(60));
        let s = a.settings().unwrap();
        assert_eq!(s.prefixes.len(), 2);
        assert_eq!(s.pool.relative(), "storage-pool/kubernetes-volumes");
    }

    #[test]
    fn prefixes_repeat_and_bad_ones_name_the_flag() {
        let a = parse(&[
            "--managed-slot-prefix",
            "vol-",
            "--managed-slot-prefix",
            "bk-",
        ])
        .unwrap();
        assert_eq!(a.managed_slot_prefixes, ["vol-", "bk-"]);
        let a = parse(&["--managed-slot-prefix", "bad;prefix"]).unwrap();
        let err = a.settings().unwrap_err();
        assert_eq!(err.flag, "--managed-slot-prefix");
        let a = parse(&["--rds-volume-base-path", "../etc"]).unwrap();
        assert_eq!(a.settings().unwrap_err().flag, "--rds-volume-base-path");
    }

    #[test]
    fn a_bad_duration_flag_is_refused() {
        assert!(parse(&["--rds-command-timeout", "x"]).is_err());
        assert!(parse(&["--rds-command-timeout", "0s"]).is_err());
    }

    #[test]
    fn host_key_is_required_unless_explicitly_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let key =
            russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
                .unwrap();
        let key_path = dir.path().join("id_ed25519");
        std::fs::write(
            &key_path,
            key.to_openssh(russh::keys::ssh_key::LineEnding::LF)
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        let base = |extra: &[&str]| {
            let mut argv = vec![
                "rds-gateway".to_string(),
                "--rds-address".into(),
                "10.0.0.5".into(),
                "--rds-key-file".into(),
                key_path.display().to_string(),
            ];
            argv.extend(extra.iter().map(|s| s.to_string()));
            Args::try_parse_from(argv).unwrap()
        };
        assert_eq!(base(&[]).ssh_config().unwrap_err().flag, "--rds-host-key");
        let skip = base(&["--rds-insecure-skip-host-key-check"])
            .ssh_config()
            .unwrap()
            .unwrap();
        assert!(matches!(skip.host_key, HostKeyCheck::InsecureSkip));
        assert_eq!(skip.login(), "admin+cet512w");

        let host =
            russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
                .unwrap();
        let line = host.public_key().to_openssh().unwrap();
        let pinned = base(&["--rds-host-key", &line])
            .ssh_config()
            .unwrap()
            .unwrap();
        assert!(matches!(pinned.host_key, HostKeyCheck::Pinned(_)));
        let file = dir.path().join("known_hosts");
        std::fs::write(&file, format!("rds.lan {line}\n")).unwrap();
        let from_file = base(&["--rds-host-key", &file.display().to_string()])
            .ssh_config()
            .unwrap()
            .unwrap();
        assert!(matches!(from_file.host_key, HostKeyCheck::Pinned(_)));
        let missing = base(&["--rds-host-key", "/nonexistent/known_hosts"]).ssh_config();
        assert_eq!(missing.unwrap_err().flag, "--rds-host-key");
        assert!(
            Args::try_parse_from([
                "rds-gateway",
                "--rds-address",
                "x",
                "--rds-key-file",
                "/k",
                "--rds-host-key",
                "ssh-ed25519 AAAA",
                "--rds-insecure-skip-host-key-check"
            ])
            .is_err(),
            "the two host-key flags exclude each other"
        );
        let mut no_key = base(&["--rds-insecure-skip-host-key-check"]);
        no_key.rds_key_file = Some(dir.path().join("absent"));
        assert_eq!(no_key.ssh_config().unwrap_err().flag, "--rds-key-file");
        no_key.rds_key_file = None;
        assert_eq!(no_key.ssh_config().unwrap_err().flag, "--rds-key-file");
        // No address at all: nothing to connect to, which is not an error at start.
        let unconfigured = Args::try_parse_from(["rds-gateway"]).unwrap();
        assert!(unconfigured.ssh_config().unwrap().is_none());
    }

    fn doctor_of(args: &Args) -> &DoctorArgs {
        match &args.command {
            Some(Command::Doctor(d)) => d,
            None => panic!("no doctor subcommand in {args:?}"),
        }
    }

    #[test]
    fn serving_stays_the_default_and_the_rds_flags_reach_the_doctor_on_either_side() {
        let serve = parse(&["--rds-port", "2222"]).unwrap();
        assert!(serve.command.is_none());
        assert_eq!(serve.rds_port, 2222);

        let after = Args::try_parse_from([
            "rds-gateway",
            "doctor",
            "--rds-address",
            "rds.lan",
            "--rds-port",
            "2222",
            "--rds-user",
            "csi",
            "--managed-slot-prefix",
            "vol-",
            "--rds-command-timeout",
            "5s",
            "--min-free",
            "2GiB",
            "--output",
            "json",
            "--timeout",
            "10s",
        ])
        .unwrap();
        let d = doctor_of(&after);
        assert_eq!(d.min_free, Bytes::new(2 << 30));
        assert_eq!(d.output, OutputFormat::Json);
        assert_eq!(d.timeout, Duration::from_secs(10));
        let s = after.doctor_settings(d);
        assert_eq!(s.address.as_deref(), Some("rds.lan"));
        assert_eq!((s.port, s.user.as_str()), (2222, "csi"));
        assert_eq!(s.prefixes, ["vol-"]);
        assert_eq!(s.command_timeout, Duration::from_secs(5));
        assert_eq!((s.min_free, s.timeout), (d.min_free, d.timeout));

        let before = Args::try_parse_from([
            "rds-gateway",
            "--rds-address",
            "rds.lan",
            "--rds-port",
            "2200",
            "doctor",
        ])
        .unwrap();
        let d = doctor_of(&before);
        assert_eq!(d.min_free, Bytes::new(1 << 30));
        assert_eq!(d.output, OutputFormat::Text);
        let s = before.doctor_settings(d);
        assert_eq!(s.address.as_deref(), Some("rds.lan"));
        assert_eq!(s.port, 2200);
        assert_eq!(s.base_path, "storage-pool/kubernetes-volumes");

        assert!(Args::try_parse_from(["rds-gateway", "doctor", "--min-free", "lots"]).is_err());
        assert!(Args::try_parse_from(["rds-gateway", "doctor", "--output", "yaml"]).is_err());
    }

    #[test]
    fn the_doctor_reports_host_key_flags_instead_of_refusing_to_start() {
        let with = |extra: &[&str]| {
            let mut argv = vec!["rds-gateway", "doctor", "--rds-address", "rds.lan"];
            argv.extend_from_slice(extra);
            let args = Args::try_parse_from(argv).unwrap();
            args.doctor_settings(doctor_of(&args)).host_key
        };
        assert!(matches!(with(&[]), HostKeySetting::Missing));
        assert!(matches!(
            with(&["--rds-insecure-skip-host-key-check"]),
            HostKeySetting::InsecureSkip
        ));
        let key =
            russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
                .unwrap();
        let line = key.public_key().to_openssh().unwrap();
        assert!(matches!(
            with(&["--rds-host-key", &line]),
            HostKeySetting::Pinned(_)
        ));
        match with(&["--rds-host-key", "ssh-ed25519 notbase64"]) {
            HostKeySetting::Invalid(why) => assert!(why.contains("line 1"), "{why}"),
            other => panic!("{other:?}"),
        }
        match with(&["--rds-host-key", "/nonexistent/known_hosts"]) {
            HostKeySetting::Invalid(why) => assert!(why.contains("cannot read"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
