//! Everything that can be set on a simulator: where it keeps its state, how it listens and
//! authenticates, which appliance generation it imitates, and injected latency. Shared by the
//! SSH server, the one-shot `exec` mode and the `rds-sim` binary.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::ast::Verb;
use super::printer::PrintStyle;
use super::units::parse_duration;

/// A RouterOS version (`7.16.2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RosVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl RosVersion {
    /// The default: a current RDS2216.
    pub const DEFAULT: RosVersion = RosVersion {
        major: 7,
        minor: 16,
        patch: 2,
    };

    /// `:serialize` (and so JSON output) exists from 7.13 on.
    pub fn has_serialize(&self) -> bool {
        (self.major, self.minor) >= (7, 13)
    }
}

impl Default for RosVersion {
    fn default() -> Self {
        RosVersion::DEFAULT
    }
}

impl fmt::Display for RosVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.patch == 0 {
            write!(f, "{}.{}", self.major, self.minor)
        } else {
            write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
        }
    }
}

impl FromStr for RosVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("not a RouterOS version: {s:?} (expected like 7.16.2)");
        let mut parts = s.trim().split('.');
        let mut number = |required: bool| -> Result<u32, String> {
            match parts.next() {
                Some(p) => {
                    let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().map_err(|_| bad())
                }
                None if required => Err(bad()),
                None => Ok(0),
            }
        };
        let version = RosVersion {
            major: number(true)?,
            minor: number(true)?,
            patch: number(false)?,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(version)
    }
}

impl FromStr for PrintStyle {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "new" => Ok(PrintStyle::New),
            "old" => Ok(PrintStyle::Old),
            _ => Err(format!("unknown print style {s:?} (expected new or old)")),
        }
    }
}

/// Added delay per command verb.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Latency(BTreeMap<Verb, Duration>);

impl Latency {
    /// The delay for `verb` (zero when none is set).
    pub fn of(&self, verb: Option<Verb>) -> Duration {
        verb.and_then(|v| self.0.get(&v).copied())
            .unwrap_or_default()
    }

    /// Sets the delay of `verb`.
    pub fn set(&mut self, verb: Verb, delay: Duration) {
        self.0.insert(verb, delay);
    }
}

/// One `--latency VERB=DURATION` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySetting {
    pub verb: Verb,
    pub delay: Duration,
}

impl FromStr for LatencySetting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (verb, delay) = s
            .split_once('=')
            .ok_or_else(|| format!("expected VERB=DURATION, got {s:?}"))?;
        let verb = Verb::parse(verb.trim()).ok_or_else(|| {
            let names: Vec<&str> = Verb::ALL.iter().map(|v| v.as_str()).collect();
            format!("unknown verb {verb:?} (one of {})", names.join(", "))
        })?;
        let delay = parse_duration(delay.trim())
            .ok_or_else(|| format!("bad duration {delay:?} (like 20ms, 1s)"))?;
        Ok(LatencySetting { verb, delay })
    }
}

impl FromIterator<LatencySetting> for Latency {
    fn from_iter<I: IntoIterator<Item = LatencySetting>>(iter: I) -> Self {
        let mut l = Latency::default();
        for s in iter {
            l.set(s.verb, s.delay);
        }
        l
    }
}

/// A simulator's settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The appliance's filesystem: pools, backing files and `.rds-sim/` (state, log, faults, keys).
    pub root: PathBuf,
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// OpenSSH private host key; when `None`, `<root>/.rds-sim/host_key` is used, generated
    /// (ed25519) the first time.
    pub host_key: Option<PathBuf>,
    /// OpenSSH `authorized_keys` file, re-read on every login; `None` lets nobody in.
    pub authorized_keys: Option<PathBuf>,
    /// The login name (console options after a `+` are ignored for the check).
    pub user: String,
    /// The pool directory created under the root (its first component is the pool's mount point).
    pub pool: String,
    /// Pool size in bytes; `None` uses the size of the filesystem holding the root.
    pub pool_size: Option<u64>,
    /// Terminal width when the login name sets none.
    pub wrap_width: usize,
    pub print_style: PrintStyle,
    pub routeros_version: RosVersion,
    /// Print JSON integers as floats (`443.000000`), as some versions do.
    pub json_floats: bool,
    /// End output lines with CR LF instead of LF.
    pub crlf: bool,
    pub latency: Latency,
    /// Refuse every login.
    pub refuse_auth: bool,
    /// The `board-name` reported by `/system resource print`.
    pub board_name: String,
}

impl SimConfig {
    /// Defaults for a simulator rooted at `root`: loopback on a free port, user `admin`, pool
    /// `storage-pool`, width 80, the new print style, RouterOS 7.16.2.
    pub fn new(root: impl Into<PathBuf>) -> SimConfig {
        SimConfig {
            root: root.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            host_key: None,
            authorized_keys: None,
            user: "admin".to_string(),
            pool: "storage-pool".to_string(),
            pool_size: None,
            wrap_width: 80,
            print_style: PrintStyle::New,
            routeros_version: RosVersion::DEFAULT,
            json_floats: false,
            crlf: false,
            latency: Latency::default(),
            refuse_auth: false,
            board_name: "RDS2216".to_string(),
        }
    }
}

/// The part of an SSH login name that names the user, and the terminal width its RouterOS
/// console options ask for (`admin+cet512w` → `admin`, `Some(512)`).
pub fn split_login(login: &str) -> (&str, Option<usize>) {
    let Some((user, options)) = login.split_once('+') else {
        return (login, None);
    };
    let mut width = None;
    let mut digits = String::new();
    for c in options.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if c == 'w' && !digits.is_empty() {
                width = digits.parse().ok();
            }
            digits.clear();
        }
    }
    (user, width)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn versions() {
        let v: RosVersion = "7.16.2".parse().unwrap();
        assert_eq!(v, RosVersion::DEFAULT);
        assert!(v.has_serialize());
        let v: RosVersion = "7.13".parse().unwrap();
        assert!(v.has_serialize());
        assert_eq!(v.to_string(), "7.13");
        let v: RosVersion = "7.12.1".parse().unwrap();
        assert!(!v.has_serialize());
        let v: RosVersion = "7.14beta2".parse().unwrap();
        assert_eq!((v.major, v.minor), (7, 14));
        assert!("seven".parse::<RosVersion>().is_err());
        assert!("7".parse::<RosVersion>().is_err());
        assert!("7.1.2.3".parse::<RosVersion>().is_err());
    }

    #[test]
    fn latency_settings() {
        let s: LatencySetting = "disk-add=20ms".parse().unwrap();
        assert_eq!(s.verb, Verb::DiskAdd);
        assert_eq!(s.delay, Duration::from_millis(20));
        assert!("disk-explode=1s".parse::<LatencySetting>().is_err());
        assert!("disk-add".parse::<LatencySetting>().is_err());
        assert!("disk-add=soon".parse::<LatencySetting>().is_err());
        let l: Latency = [s].into_iter().collect();
        assert_eq!(l.of(Some(Verb::DiskAdd)), Duration::from_millis(20));
        assert_eq!(l.of(Some(Verb::DiskSet)), Duration::ZERO);
        assert_eq!(l.of(None), Duration::ZERO);
    }

    #[test]
    fn login_names() {
        assert_eq!(split_login("admin"), ("admin", None));
        assert_eq!(split_login("admin+cet512w"), ("admin", Some(512)));
        assert_eq!(split_login("admin+ct80w"), ("admin", Some(80)));
        assert_eq!(split_login("admin+cte"), ("admin", None));
        assert_eq!(split_login("admin+512h"), ("admin", None));
        assert_eq!(split_login("admin+w"), ("admin", None));
    }
}
