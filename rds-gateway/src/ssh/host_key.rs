//! The RDS host key the gateway trusts (`--rds-host-key`) and the check of the key a server
//! presents against it.
//!
//! The pin is given as text an operator already has: an OpenSSH public-key line
//! (`ssh-ed25519 AAAA... comment`) or a known_hosts line (`rds ssh-ed25519 AAAA...`,
//! `[rds]:2222 ssh-rsa AAAA...`, hosts comma-separated), several lines allowed (the output of
//! `ssh-keyscan` pastes as is; any listed key is accepted). Hashed known_hosts entries cannot be
//! used: they hide the host names, and an operator can always give the plain line instead.
//! Skipping the check is possible only as an explicit, loud choice.

use std::fmt;

use russh::keys::{Algorithm, HashAlg, PublicKey};

/// The `SHA256:...` fingerprint OpenSSH prints for a key.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Why `--rds-host-key` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostKeyError {
    /// No key at all.
    #[error(
        "--rds-host-key holds no key: give the RDS host key as an OpenSSH public-key line \
         (ssh-ed25519 AAAA...) or a known_hosts line, or pass --rds-insecure-skip-host-key-check"
    )]
    Empty,
    /// A hashed known_hosts entry.
    #[error(
        "--rds-host-key line {line}: hashed known_hosts entries (|1|...) cannot be used; give the \
         plain line instead, for example from `ssh-keyscan -t ed25519 <rds-address>` (without -H)"
    )]
    Hashed {
        /// 1-based line number.
        line: usize,
    },
    /// `@cert-authority` or `@revoked`.
    #[error("--rds-host-key line {line}: the known_hosts marker {marker} is not supported")]
    Marker {
        /// 1-based line number.
        line: usize,
        /// The marker.
        marker: String,
    },
    /// A host entry that is not `host` or `[host]:port`.
    #[error(
        "--rds-host-key line {line}: bad known_hosts host entry {host:?} (expected host or \
         [host]:port)"
    )]
    BadHost {
        /// 1-based line number.
        line: usize,
        /// The entry.
        host: String,
    },
    /// Neither a pin nor the explicit insecure mode was given.
    #[error(
        "no RDS host key: pass --rds-host-key (for example the output of `ssh-keyscan -t ed25519 \
         <rds-address>`) or, for tests only, --rds-insecure-skip-host-key-check"
    )]
    Missing,
    /// Both a pin and the insecure mode were given.
    #[error("--rds-host-key and --rds-insecure-skip-host-key-check exclude each other")]
    Conflicting,
    /// Neither form parses.
    #[error("--rds-host-key line {line}: not an OpenSSH public key or known_hosts line: {detail}")]
    Invalid {
        /// 1-based line number.
        line: usize,
        /// The parser's message.
        detail: String,
    },
}

/// The presented key is not one of the pinned keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyMismatch {
    /// Pinned fingerprint(s), comma-separated.
    pub expected: String,
    /// Fingerprint the server presented.
    pub seen: String,
}

/// One host entry of a known_hosts line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// The host name or address, possibly with `*` and `?` wildcards.
    pub host: String,
    /// The port (22 when not bracketed).
    pub port: u16,
    /// `!host` entries exclude a host.
    pub negated: bool,
}

impl HostPattern {
    fn parse(raw: &str, line: usize) -> Result<Self, HostKeyError> {
        let bad = || HostKeyError::BadHost {
            line,
            host: raw.to_string(),
        };
        let (negated, rest) = match raw.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, raw),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (host, tail) = inner.split_once(']').ok_or_else(bad)?;
            let port = tail
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(bad)?;
            (host, port)
        } else {
            (rest, 22)
        };
        if host.is_empty()
            || host.contains(['[', ']', '/'])
            || host.chars().any(char::is_whitespace)
        {
            return Err(bad());
        }
        Ok(HostPattern {
            host: host.to_string(),
            port,
            negated,
        })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        self.port == port
            && glob_matches(&self.host.to_ascii_lowercase(), &host.to_ascii_lowercase())
    }
}

/// `*` and `?` matching as known_hosts uses it (iterative, no recursion).
fn glob_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || Some(c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

/// One pinned key and, for a known_hosts line, the hosts it names.
#[derive(Debug, Clone)]
struct PinnedKey {
    key: PublicKey,
    hosts: Vec<HostPattern>,
}

/// The host keys the gateway accepts for the RDS.
#[derive(Clone)]
pub struct HostKeyPin {
    keys: Vec<PinnedKey>,
}

impl fmt::Debug for HostKeyPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostKeyPin")
            .field("fingerprints", &self.fingerprints())
            .finish()
    }
}

impl HostKeyPin {
    /// Reads one or more lines; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Self, HostKeyError> {
        let mut keys = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            keys.push(parse_line(line, index + 1)?);
        }
        if keys.is_empty() {
            return Err(HostKeyError::Empty);
        }
        Ok(HostKeyPin { keys })
    }

    /// Pins exactly this key.
    pub fn from_key(key: PublicKey) -> Self {
        HostKeyPin {
            keys: vec![PinnedKey {
                key,
                hosts: Vec::new(),
            }],
        }
    }

    /// The pinned keys' fingerprints, in the order given.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys.iter().map(|k| fingerprint(&k.key)).collect()
    }

    /// The host-key algorithms to ask the server for first, so that a server with several keys
    /// presents the pinned one.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut out: Vec<Algorithm> = Vec::new();
        for k in &self.keys {
            let algs = match k.key.algorithm() {
                Algorithm::Rsa { .. } => vec![
                    Algorithm::Rsa {
                        hash: Some(HashAlg::Sha512),
                    },
                    Algorithm::Rsa {
                        hash: Some(HashAlg::Sha256),
                    },
                ],
                other => vec![other],
            };
            for a in algs {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// False when every pinned line is a known_hosts line and none of them names `host:port`
    /// (a plain public-key line names no host and so applies to any). Only worth a warning: the
    /// key decides, not the name.
    pub fn names_host(&self, host: &str, port: u16) -> bool {
        self.keys.iter().any(|k| {
            k.hosts.is_empty()
                || (k.hosts.iter().any(|h| !h.negated && h.matches(host, port))
                    && !k.hosts.iter().any(|h| h.negated && h.matches(host, port)))
        })
    }

    /// Accepts `presented` when it is one of the pinned keys (comments and RSA signature hashes
    /// do not matter, the key material does).
    pub fn verify(&self, presented: &PublicKey) -> Result<(), HostKeyMismatch> {
        if self
            .keys
            .iter()
            .any(|k| k.key.key_data() == presented.key_data())
        {
            return Ok(());
        }
        Err(HostKeyMismatch {
            expected: self.fingerprints().join(", "),
            seen: fingerprint(presented),
        })
    }
}

fn parse_line(line: &str, number: usize) -> Result<PinnedKey, HostKeyError> {
    if let Ok(key) = PublicKey::from_openssh(line) {
        return Ok(PinnedKey {
            key,
            hosts: Vec::new(),
        });
    }
    let (first, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    if first.starts_with("|1|") {
        return Err(HostKeyError::Hashed { line: number });
    }
    if first.starts_with('@') {
        return Err(HostKeyError::Marker {
            line: number,
            marker: first.to_string(),
        });
    }
    let rest = rest.trim_start();
    if rest.is_empty() {
        // A single word: report why it is not a key line.
        return Err(HostKeyError::Invalid {
            line: number,
            detail: "expected `<key-type> <base64> [comment]` or `<hosts> <key-type> <base64>`"
                .to_string(),
        });
    }
    let key = PublicKey::from_openssh(rest).map_err(|e| HostKeyError::Invalid {
        line: number,
        detail: e.to_string(),
    })?;
    let hosts = first
        .split(',')
        .map(|h| HostPattern::parse(h, number))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PinnedKey { key, hosts })
}

/// How the gateway checks the RDS host key.
#[derive(Debug, Clone)]
pub enum HostKeyCheck {
    /// Accept only the pinned keys.
    Pinned(HostKeyPin),
    /// Accept any key (`--rds-insecure-skip-host-key-check`); logged as a warning on every
    /// connection.
    InsecureSkip,
}

impl HostKeyCheck {
    /// Checks the key `address` presented.
    pub fn verify(&self, presented: &PublicKey, address: &str) -> Result<(), HostKeyMismatch> {
        match self {
            HostKeyCheck::Pinned(pin) => pin.verify(presented),
            HostKeyCheck::InsecureSkip => {
                tracing::warn!(
                    rds.address = %address,
                    host_key = %fingerprint(presented),
                    "host key check is disabled (--rds-insecure-skip-host-key-check): accepting \
                     the server's key without verification; pin it with --rds-host-key"
                );
                Ok(())
            }
        }
    }

    /// The check the two flags ask for: exactly one of a pin or the insecure mode.
    pub fn from_flags(host_key: Option<&str>, insecure_skip: bool) -> Result<Self, HostKeyError> {
        match (host_key, insecure_skip) {
            (Some(_), true) => Err(HostKeyError::Conflicting),
            (Some(text), false) => HostKeyPin::parse(text).map(HostKeyCheck::Pinned),
            (None, true) => Ok(HostKeyCheck::InsecureSkip),
            (None, false) => Err(HostKeyError::Missing),
        }
    }

    /// Host-key algorithms to prefer in the handshake (empty: the library's default order).
    pub fn preferred_algorithms(&self) -> Vec<Algorithm> {
        match self {
            HostKeyCheck::Pinned(pin) => pin.algorithms(),
            HostKeyCheck::InsecureSkip => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use russh::keys::PrivateKey;

    fn ed25519() -> PublicKey {
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
            .unwrap()
            .public_key()
            .clone()
    }

    fn line(key: &PublicKey) -> String {
        key.to_openssh().unwrap()
    }

    const RSA_PUB: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCq/Klf3ChcNORoqTKK2vaQhqYSqTsCB/zBwAAnC/7k+ihBBXzcnm2Jz4WugajxzVS+u78N+hHPxsrWyPMUfQp1/weQnbhHqb3RPaJLLgS7IwzvioR93k/SVZO2qUGUv92V0Np0hVS7rBt0dY3M7VVNohW2SoHGB3MDQlC1LY990d8+EaCwz0RKzYof7SQCbIs/0ywTOmNKRz7O2ULMvdX1ksJKhhgA6HU9dIghXmBbRLAAHRtvOl9kkNb879osYaS/3VkHbdt1BS+HUpG3ZZ6MN0gquXFR3AthYanig+mklPzzaPf8E/CnFpXVpdMLDl/2F0tgR5TQEJVgpuDTLsIJ";

    #[test]
    fn openssh_line_with_comment() {
        let key = ed25519();
        let text = format!("{} admin@rds with spaces", line(&key));
        let pin = HostKeyPin::parse(&text).unwrap();
        assert!(pin.verify(&key).is_ok());
        assert!(pin.verify(&ed25519()).is_err());
        assert_eq!(pin.fingerprints(), vec![fingerprint(&key)]);
        assert!(pin.fingerprints()[0].starts_with("SHA256:"));
        assert!(pin.names_host("anything", 22));
    }

    #[test]
    fn known_hosts_with_ports_and_several_hosts() {
        let key = ed25519();
        let text = format!("[rds.lan]:2222,10.0.0.5,[10.0.0.5]:2200 {}", line(&key));
        let pin = HostKeyPin::parse(&text).unwrap();
        assert!(pin.verify(&key).is_ok());
        assert!(pin.names_host("rds.lan", 2222));
        assert!(pin.names_host("10.0.0.5", 22));
        assert!(pin.names_host("10.0.0.5", 2200));
        assert!(!pin.names_host("rds.lan", 22));
        assert!(!pin.names_host("other", 2222));
    }

    #[test]
    fn known_hosts_wildcards_and_negation() {
        let key = ed25519();
        let pin = HostKeyPin::parse(&format!("*.lan,!bad.lan {}", line(&key))).unwrap();
        assert!(pin.names_host("rds.lan", 22));
        assert!(pin.names_host("RDS.LAN", 22));
        assert!(!pin.names_host("bad.lan", 22));
        assert!(!pin.names_host("rds.example", 22));
        assert!(glob_matches("r?s*", "rds-1"));
        assert!(!glob_matches("r?s", "rds-1"));
        assert!(glob_matches("*", ""));
    }

    #[test]
    fn rsa_key_line_prefers_sha2_algorithms() {
        let pin = HostKeyPin::parse(&format!("rds {RSA_PUB}")).unwrap();
        assert_eq!(
            pin.algorithms(),
            vec![
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512)
                },
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha256)
                }
            ]
        );
    }

    #[test]
    fn keyscan_output_with_several_keys_and_comments() {
        let a = ed25519();
        let b = ed25519();
        let text = format!(
            "# rds.lan:22 SSH-2.0-ROSSSH\nrds.lan {}\n\n  rds.lan {}  \n",
            line(&a),
            line(&b)
        );
        let pin = HostKeyPin::parse(&text).unwrap();
        assert!(pin.verify(&a).is_ok());
        assert!(pin.verify(&b).is_ok());
        let other = ed25519();
        let err = pin.verify(&other).unwrap_err();
        assert_eq!(err.seen, fingerprint(&other));
        assert_eq!(
            err.expected,
            format!("{}, {}", fingerprint(&a), fingerprint(&b))
        );
        assert_eq!(pin.algorithms(), vec![Algorithm::Ed25519]);
    }

    #[test]
    fn hashed_marker_and_garbage_are_rejected_with_the_line() {
        let key = ed25519();
        let hashed = format!("|1|abc=|def= {}", line(&key));
        assert_eq!(
            HostKeyPin::parse(&hashed).unwrap_err(),
            HostKeyError::Hashed { line: 1 }
        );
        let marked = format!("\n@cert-authority *.lan {}", line(&key));
        assert!(matches!(
            HostKeyPin::parse(&marked).unwrap_err(),
            HostKeyError::Marker { line: 2, .. }
        ));
        assert_eq!(HostKeyPin::parse("").unwrap_err(), HostKeyError::Empty);
        assert_eq!(
            HostKeyPin::parse("  \n# only a comment\n").unwrap_err(),
            HostKeyError::Empty
        );
        for garbage in [
            "hello",
            "ssh-ed25519",
            "ssh-ed25519 not-base64!!",
            "rds ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
            "rds ssh-foo AAAA",
            "rds.lan,10.0.0.1",
        ] {
            assert!(
                matches!(
                    HostKeyPin::parse(garbage),
                    Err(HostKeyError::Invalid { line: 1, .. })
                ),
                "{garbage}: {:?}",
                HostKeyPin::parse(garbage)
            );
        }
        // The algorithm name must match the key inside the base64 blob.
        let lying = line(&key).replace("ssh-ed25519", "ssh-rsa");
        assert!(HostKeyPin::parse(&lying).is_err());
        for bad_host in ["[rds.lan] ", "[rds.lan]:x ", "[rds.lan]:70000 ", "a,,b "] {
            let text = format!("{bad_host}{}", line(&key));
            assert!(
                matches!(
                    HostKeyPin::parse(&text),
                    Err(HostKeyError::BadHost { line: 1, .. })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn flags_need_exactly_one_choice() {
        let key = ed25519();
        assert!(matches!(
            HostKeyCheck::from_flags(Some(&line(&key)), false),
            Ok(HostKeyCheck::Pinned(_))
        ));
        assert!(matches!(
            HostKeyCheck::from_flags(None, true),
            Ok(HostKeyCheck::InsecureSkip)
        ));
        assert_eq!(
            HostKeyCheck::from_flags(None, false).unwrap_err(),
            HostKeyError::Missing
        );
        assert_eq!(
            HostKeyCheck::from_flags(Some(&line(&key)), true).unwrap_err(),
            HostKeyError::Conflicting
        );
        assert_eq!(
            HostKeyCheck::from_flags(Some(""), false).unwrap_err(),
            HostKeyError::Empty
        );
    }

    #[test]
    fn insecure_mode_accepts_anything() {
        let check = HostKeyCheck::InsecureSkip;
        assert!(check.verify(&ed25519(), "rds:22").is_ok());
        assert!(check.preferred_algorithms().is_empty());
        let pinned = HostKeyCheck::Pinned(HostKeyPin::from_key(ed25519()));
        assert!(pinned.verify(&ed25519(), "rds:22").is_err());
    }
}
