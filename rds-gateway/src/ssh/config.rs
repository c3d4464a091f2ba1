//! Every setting of the SSH transport in one value, with the defaults the gateway ships and one
//! validation pass, so that a bad flag fails at start-up with the flag's name rather than at the
//! first command.

use std::time::Duration;

use super::auth::{ClientKey, login_name};
use super::backoff::BackoffConfig;
use super::host_key::HostKeyCheck;

/// Default SSH port.
pub const DEFAULT_PORT: u16 = 22;
/// Default RouterOS user.
pub const DEFAULT_USER: &str = "admin";
/// Default console options: no colours, dumb terminal, no auto-detection, 512 columns.
pub const DEFAULT_CONSOLE_OPTIONS: &str = "cet512w";
/// Default number of SSH sessions.
pub const DEFAULT_MAX_SESSIONS: usize = 4;
/// Default number of commands in flight on one session.
pub const DEFAULT_CHANNELS_PER_SESSION: usize = 2;
/// Default number of commands that may wait for a channel.
pub const DEFAULT_QUEUE_DEPTH: usize = 256;
/// Default command deadline when the caller gives none.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Default upper bound of any command deadline.
pub const DEFAULT_MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Default bound of TCP connect + handshake + login + first health command.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Default interval of the liveness check.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(15);
/// Default deadline of one liveness check.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Default liveness command (cheap, always present, prints the RouterOS version).
pub const DEFAULT_HEALTH_COMMAND: &str = "/system resource print";
/// Default cap of one command's output (stdout and stderr together).
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 16 * 1024 * 1024;

/// Longest duration any setting accepts (a typo like `30000h` fails at start-up).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// `host:port` as shown in messages (IPv6 literals bracketed).
pub fn display_address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A field's value is out of range or malformed.
    #[error("{field}: {problem}")]
    Invalid {
        /// The flag the value came from.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

fn invalid(field: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// The SSH transport's settings.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// RDS host name or address (`--rds-address`).
    pub address: String,
    /// SSH port (`--rds-port`).
    pub port: u16,
    /// RouterOS user (`--rds-user`).
    pub user: String,
    /// Console options appended to the user after `+` (`--rds-console-options`); empty disables.
    pub console_options: String,
    /// The client key (`--rds-key-file`).
    pub key: ClientKey,
    /// The host-key check (`--rds-host-key` or `--rds-insecure-skip-host-key-check`).
    pub host_key: HostKeyCheck,
    /// Most SSH sessions open at once (`--rds-max-sessions`).
    pub max_sessions: usize,
    /// Most commands in flight on one session.
    pub channels_per_session: usize,
    /// Most commands waiting for a channel; beyond, commands fail at once (`--rds-queue-depth`).
    pub queue_depth: usize,
    /// Deadline of a command whose caller gave none (`--rds-command-timeout`).
    pub default_timeout: Duration,
    /// Upper bound of any command's deadline (`--rds-max-command-timeout`).
    pub max_timeout: Duration,
    /// Bound of one connection attempt (TCP, handshake, login, first health command).
    pub connect_timeout: Duration,
    /// Interval of the liveness check on each session (`--rds-health-interval`).
    pub health_interval: Duration,
    /// Deadline of one liveness check.
    pub health_timeout: Duration,
    /// The liveness command.
    pub health_command: String,
    /// Largest output (stdout + stderr) of one command.
    pub max_output_bytes: usize,
    /// Reconnect delays.
    pub backoff: BackoffConfig,
}

impl SshConfig {
    /// Settings for `address` with every other value at its default.
    pub fn new(address: impl Into<String>, key: ClientKey, host_key: HostKeyCheck) -> Self {
        SshConfig {
            address: address.into(),
            port: DEFAULT_PORT,
            user: DEFAULT_USER.to_string(),
            console_options: DEFAULT_CONSOLE_OPTIONS.to_string(),
            key,
            host_key,
            max_sessions: DEFAULT_MAX_SESSIONS,
            channels_per_session: DEFAULT_CHANNELS_PER_SESSION,
            queue_depth: DEFAULT_QUEUE_DEPTH,
            default_timeout: DEFAULT_COMMAND_TIMEOUT,
            max_timeout: DEFAULT_MAX_COMMAND_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            health_interval: DEFAULT_HEALTH_INTERVAL,
            health_timeout: DEFAULT_HEALTH_TIMEOUT,
            health_command: DEFAULT_HEALTH_COMMAND.to_string(),
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            backoff: BackoffConfig::default(),
        }
    }

    /// The SSH login name (user plus console options).
    pub fn login(&self) -> String {
        login_name(&self.user, &self.console_options)
    }

    /// `host:port` as shown in messages (IPv6 literals bracketed).
    pub fn display_address(&self) -> String {
        display_address(&self.address, self.port)
    }

    /// Checks every value; the error names the flag.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let address = self.address.trim();
        if address.is_empty() {
            return Err(invalid("--rds-address", "is empty"));
        }
        if address.chars().any(|c| c.is_whitespace() || c.is_control()) || address != self.address {
            return Err(invalid(
                "--rds-address",
                format!("{:?} holds white space", self.address),
            ));
        }
        if self.port == 0 {
            return Err(invalid("--rds-port", "must not be 0"));
        }
        if self.user.is_empty()
            || !self
                .user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                "--rds-user",
                format!(
                    "{:?} must be a RouterOS user name (letters, digits, '-', '_', '.')",
                    self.user
                ),
            ));
        }
        let options = self.console_options.trim().trim_start_matches('+');
        if !options.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(invalid(
                "--rds-console-options",
                format!(
                    "{:?} must be letters and digits only (for example cet512w)",
                    self.console_options
                ),
            ));
        }
        if self.max_sessions == 0 {
            return Err(invalid("--rds-max-sessions", "must be at least 1"));
        }
        if self.channels_per_session == 0 {
            return Err(invalid("channels per session", "must be at least 1"));
        }
        if self.default_timeout.is_zero() {
            return Err(invalid("--rds-command-timeout", "must be above 0"));
        }
        if self.max_timeout < self.default_timeout {
            return Err(invalid(
                "--rds-max-command-timeout",
                format!(
                    "{:?} is below --rds-command-timeout {:?}",
                    self.max_timeout, self.default_timeout
                ),
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(invalid("connect timeout", "must be above 0"));
        }
        if self.health_interval.is_zero() {
            return Err(invalid("--rds-health-interval", "must be above 0"));
        }
        if self.health_timeout.is_zero() {
            return Err(invalid("health timeout", "must be above 0"));
        }
        if self.health_command.trim().is_empty() || self.health_command.contains(['\n', '\r', '\0'])
        {
            return Err(invalid(
                "health command",
                "must be one non-empty command line",
            ));
        }
        let durations = [
            ("--rds-command-timeout", self.default_timeout),
            ("--rds-max-command-timeout", self.max_timeout),
            ("connect timeout", self.connect_timeout),
            ("--rds-health-interval", self.health_interval),
            ("health timeout", self.health_timeout),
            ("reconnect backoff", self.backoff.max),
        ];
        for (field, value) in durations {
            if value > MAX_DURATION {
                return Err(invalid(
                    field,
                    format!("{value:?} is above the limit of {MAX_DURATION:?}"),
                ));
            }
        }
        if self.max_output_bytes == 0 {
            return Err(invalid("max output bytes", "must be above 0"));
        }
        if self.backoff.initial.is_zero() || self.backoff.max < self.backoff.initial {
            return Err(invalid(
                "reconnect backoff",
                format!(
                    "initial {:?} must be above 0 and not above the cap {:?}",
                    self.backoff.initial, self.backoff.max
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use russh::keys::{Algorithm, PrivateKey};

    fn config() -> SshConfig {
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
        SshConfig::new(
            "rds.lan",
            ClientKey::from_private_key(key, "test").unwrap(),
            HostKeyCheck::InsecureSkip,
        )
    }

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = config();
        assert!(c.validate().is_ok());
        assert_eq!(c.login(), "admin+cet512w");
        assert_eq!(c.max_sessions, 4);
        assert_eq!(c.channels_per_session, 2);
        assert_eq!(c.queue_depth, 256);
        assert_eq!(c.backoff.initial, Duration::from_millis(200));
        assert_eq!(c.backoff.max, Duration::from_secs(30));
        assert_eq!(c.display_address(), "rds.lan:22");
    }

    #[test]
    fn ipv6_literal_is_bracketed() {
        let mut c = config();
        c.address = "fd00::1".into();
        c.port = 2222;
        assert_eq!(c.display_address(), "[fd00::1]:2222");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn bad_values_name_their_flag() {
        type Edit = fn(&mut SshConfig);
        let cases: [(Edit, &str); 10] = [
            (|c| c.address = String::new(), "--rds-address"),
            (|c| c.address = "rds lan".into(), "--rds-address"),
            (|c| c.port = 0, "--rds-port"),
            (|c| c.user = "ad min".into(), "--rds-user"),
            (|c| c.user = "admin+x".into(), "--rds-user"),
            (
                |c| c.console_options = "c e".into(),
                "--rds-console-options",
            ),
            (|c| c.max_sessions = 0, "--rds-max-sessions"),
            (
                |c| c.default_timeout = Duration::ZERO,
                "--rds-command-timeout",
            ),
            (
                |c| c.max_timeout = Duration::from_secs(1),
                "--rds-max-command-timeout",
            ),
            (
                |c| c.health_interval = Duration::ZERO,
                "--rds-health-interval",
            ),
        ];
        for (edit, flag) in cases {
            let mut c = config();
            edit(&mut c);
            let err = c.validate().unwrap_err();
            assert!(err.to_string().starts_with(flag), "{err} (wanted {flag})");
        }
        let mut c = config();
        c.max_timeout = Duration::from_secs(400_000);
        let err = c.validate().unwrap_err();
        assert!(
            err.to_string().starts_with("--rds-max-command-timeout"),
            "{err}"
        );
        let mut c = config();
        c.console_options = String::new();
        assert!(c.validate().is_ok());
        assert_eq!(c.login(), "admin");
        c.health_command = "/system resource print\n/quit".into();
        assert!(c.validate().is_err());
    }
}
