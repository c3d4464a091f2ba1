//! Checks 1–3: reach the address, see and judge the host key, log in. Each runs one of the
//! transport's own connection steps ([`connect_tcp`], [`Handshake::start`],
//! [`Handshake::login`]) under its own time limit and turns the transport's typed error into
//! what was seen and what to change.

use std::time::Instant;

use russh::keys::PublicKey;
use tokio::net::TcpStream;

use super::report::{CheckId, CheckResult};
use super::{Budget, DoctorSettings, HostKeySetting, Limit};
use crate::ssh::host_key::fingerprint;
use crate::ssh::{
    ClientKey, Handshake, HostKeyCheck, KeyError, SshConfig, SshSession, TransportError,
    connect_tcp, display_address,
};

/// `host:port` as shown, or `None` without an address.
fn target(s: &DoctorSettings) -> Option<(String, String)> {
    let host = s.address.as_deref()?.trim();
    (!host.is_empty()).then(|| (host.to_owned(), display_address(host, s.port)))
}

/// The presented key as an OpenSSH line (what `--rds-host-key` takes).
fn key_line(key: &PublicKey) -> String {
    let mut bare = key.clone();
    bare.set_comment("");
    bare.to_openssh()
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|e| format!("<cannot encode the key: {e}>"))
}

/// `SHA256:... (ssh-ed25519)`.
fn describe_key(key: &PublicKey) -> String {
    format!("{} ({})", fingerprint(key), key.algorithm().as_str())
}

/// Check 1: a TCP connection to the address.
pub async fn address(s: &DoctorSettings, budget: &Budget) -> (CheckResult, Option<TcpStream>) {
    const ID: CheckId = CheckId::Address;
    let Some((host, shown)) = target(s) else {
        return (
            CheckResult::fail(
                ID,
                "no RDS address is set",
                "set --rds-address (or RDS_ADDRESS) to the host name or IP address of the RDS",
            ),
            None,
        );
    };
    let limit = budget.limit(s.connect_timeout, "connect timeout");
    let started = Instant::now();
    match tokio::time::timeout(limit.after, connect_tcp(&host, s.port, &shown)).await {
        Ok(Ok(stream)) => {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let via = if peer.is_empty() || peer == shown {
                String::new()
            } else {
                format!(" (at {peer})")
            };
            let took = started.elapsed().as_millis();
            (
                CheckResult::pass(
                    ID,
                    format!("{shown}{via} accepts TCP connections ({took} ms)"),
                ),
                Some(stream),
            )
        }
        Ok(Err(e)) => (tcp_failure(&e, &host, s.port, &shown), None),
        Err(_) => (
            CheckResult::fail(
                ID,
                format!("no TCP answer from {shown} within {limit}"),
                format!(
                    "packets to port {} are dropped on the way (a closed port would refuse at \
                     once): check routes and firewalls between here and the RDS, and the \
                     addresses allowed for its SSH service (/ip service print where name=ssh)",
                    s.port
                ),
            ),
            None,
        ),
    }
}

fn tcp_failure(e: &TransportError, host: &str, port: u16, shown: &str) -> CheckResult {
    const ID: CheckId = CheckId::Address;
    match e {
        TransportError::Refused { .. } => CheckResult::fail(
            ID,
            format!("connection to {shown} refused: nothing listens on port {port}"),
            "check --rds-address and --rds-port (the RDS shows its SSH port with \
             `/ip service print where name=ssh`) and that the SSH service is enabled \
             (`/ip service enable ssh`)",
        ),
        TransportError::Dns { detail, .. } => CheckResult::fail(
            ID,
            format!("cannot resolve the RDS address {host}: {detail}"),
            "check the spelling of --rds-address, or give the RDS's IP address; this host's \
             resolver does not know the name",
        ),
        other => CheckResult::fail(
            ID,
            other.to_string(),
            "check the network path from here to the RDS (routes, VLANs, firewalls) and \
             --rds-address",
        ),
    }
}

/// Check 2: the SSH handshake and the host key it shows.
pub async fn host_key(
    s: &DoctorSettings,
    budget: &Budget,
    stream: TcpStream,
) -> (CheckResult, Option<Handshake>) {
    const ID: CheckId = CheckId::HostKey;
    let shown = target(s).map(|(_, shown)| shown).unwrap_or_default();
    // Without a usable pin the handshake still runs, to show the key the RDS presents.
    let check = match &s.host_key {
        HostKeySetting::Pinned(pin) => HostKeyCheck::Pinned(pin.clone()),
        HostKeySetting::Invalid(_) | HostKeySetting::Missing | HostKeySetting::InsecureSkip => {
            HostKeyCheck::InsecureSkip
        }
    };
    let limit = budget.limit(s.connect_timeout, "connect timeout");
    let shaken =
        match tokio::time::timeout(limit.after, Handshake::start(stream, &check, &shown)).await {
            Ok(Ok(h)) => h,
            Ok(Err(failure)) => {
                return (
                    handshake_failure(&failure.error, failure.presented.as_ref(), &shown),
                    None,
                );
            }
            Err(_) => return (handshake_timeout(&shown, limit), None),
        };
    let Some(key) = shaken.host_key().cloned() else {
        return (
            CheckResult::fail(
                ID,
                format!("the SSH handshake with {shown} finished without a host key"),
                "check that --rds-address and --rds-port lead to the RDS's SSH service",
            ),
            None,
        );
    };
    let seen = describe_key(&key);
    let line = key_line(&key);
    match &s.host_key {
        HostKeySetting::Pinned(_) => (
            CheckResult::pass(
                ID,
                format!("the RDS presented {seen}, which matches --rds-host-key"),
            ),
            Some(shaken),
        ),
        HostKeySetting::InsecureSkip => (
            CheckResult::pass(
                ID,
                format!(
                    "the RDS presented {seen}; WARNING: not verified, because \
                     --rds-insecure-skip-host-key-check is set (anyone on the path could pose as \
                     the RDS): pin it with --rds-host-key \"{line}\""
                ),
            ),
            Some(shaken),
        ),
        HostKeySetting::Missing => (
            CheckResult::fail(
                ID,
                format!("the RDS presented {seen}, but no host key is pinned"),
                format!(
                    "check that fingerprint on the RDS itself, then pin the key with \
                     --rds-host-key \"{line}\" (or RDS_HOST_KEY); \
                     --rds-insecure-skip-host-key-check skips the check, for first tests only"
                ),
            ),
            None,
        ),
        HostKeySetting::Invalid(why) => (
            CheckResult::fail(
                ID,
                format!("the RDS presented {seen}, but --rds-host-key cannot be used: {why}"),
                format!(
                    "give the key as one OpenSSH line, after checking the fingerprint on the RDS \
                     itself: --rds-host-key \"{line}\""
                ),
            ),
            None,
        ),
    }
}

fn handshake_timeout(shown: &str, limit: Limit) -> CheckResult {
    CheckResult::fail(
        CheckId::HostKey,
        format!(
            "{shown} accepted the TCP connection but completed no SSH handshake within {limit}"
        ),
        "check that --rds-port is the RDS's SSH port (/ip service print where name=ssh) and \
         that nothing on the way (a proxy, a load balancer) holds the connection; an \
         overloaded RDS answers late too",
    )
}

fn handshake_failure(
    e: &TransportError,
    presented: Option<&PublicKey>,
    shown: &str,
) -> CheckResult {
    const ID: CheckId = CheckId::HostKey;
    match e {
        TransportError::HostKeyMismatch { expected, seen } => {
            let line = presented
                .map(key_line)
                .unwrap_or_else(|| "<the new key>".into());
            CheckResult::fail(
                ID,
                format!(
                    "host key mismatch: the RDS presented {seen}, but --rds-host-key pins \
                     {expected}"
                ),
                format!(
                    "if the RDS host key changed on purpose (reinstalled or replaced RDS), check \
                     {seen} on the RDS itself and replace --rds-host-key with \"{line}\"; if it \
                     did not change, something between here and the RDS answers in its place: \
                     do not connect"
                ),
            )
        }
        TransportError::Protocol { detail, .. } => CheckResult::fail(
            ID,
            format!("the SSH handshake with {shown} failed: {detail}"),
            "check that --rds-port is the RDS's SSH port (/ip service print where name=ssh), \
             not another service",
        ),
        other => CheckResult::fail(
            ID,
            format!("the SSH handshake with {shown} failed: {other}"),
            "check that --rds-address and --rds-port lead to the RDS's SSH service",
        ),
    }
}

fn key_failure(e: &KeyError) -> CheckResult {
    let fix = match e {
        KeyError::Read { .. } => {
            "check --rds-key-file and that this process may read the file (in Kubernetes: the \
             Secret holding the key is mounted at that path)"
                .to_owned()
        }
        KeyError::Encrypted { path } => {
            format!("use a copy without a passphrase: ssh-keygen -p -N '' -f {path}")
        }
        KeyError::Invalid { path, .. } => format!(
            "give an OpenSSH private key (-----BEGIN OPENSSH PRIVATE KEY-----); ssh-keygen -p \
             -N '' -f {path} rewrites a readable key in that format"
        ),
        KeyError::Unsupported { .. } => {
            "make an ed25519 key (ssh-keygen -t ed25519 -N '' -f rds-csi), import rds-csi.pub \
             for the user on the RDS (/user ssh-keys import public-key-file=rds-csi.pub \
             user=<user>) and point --rds-key-file at rds-csi"
                .to_owned()
        }
    };
    CheckResult::fail(CheckId::Auth, e.to_string(), fix)
}

/// Check 3: the client key and the login.
pub async fn auth(
    s: &DoctorSettings,
    budget: &Budget,
    handshake: Handshake,
) -> (CheckResult, Option<SshSession>) {
    const ID: CheckId = CheckId::Auth;
    let Some(path) = &s.key_file else {
        return (
            CheckResult::fail(
                ID,
                "no client key: --rds-key-file is not set",
                "set --rds-key-file (or RDS_KEY_FILE) to the OpenSSH private key (ed25519 or \
                 RSA) whose public half is in the RouterOS user's /user ssh-keys",
            ),
            None,
        );
    };
    let key = match ClientKey::from_file(path) {
        Ok(key) => key,
        Err(e) => return (key_failure(&e), None),
    };
    let host = target(s).map(|(host, _)| host).unwrap_or_default();
    // The check the handshake used does not matter any more: the key was judged in check 2.
    let mut config = SshConfig::new(host, key.clone(), HostKeyCheck::InsecureSkip);
    config.port = s.port;
    config.user = s.user.clone();
    config.console_options = s.console_options.clone();
    config.default_timeout = s.command_timeout;
    config.max_timeout = s.max_command_timeout.max(s.command_timeout);
    if let Err(e) = config.validate() {
        return (
            CheckResult::fail(
                ID,
                format!("a setting cannot work: {e}"),
                "correct the flag named",
            ),
            None,
        );
    }
    let user = &s.user;
    let described = format!(
        "{} key {} ({})",
        key.public_key().algorithm().as_str(),
        key.fingerprint(),
        path.display()
    );
    let limit = budget.limit(s.connect_timeout, "connect timeout");
    match tokio::time::timeout(limit.after, handshake.login(&config)).await {
        Ok(Ok(session)) => (
            CheckResult::pass(
                ID,
                format!(
                    "logged in as RouterOS user {user} (login name {}) with the {described}",
                    config.login()
                ),
            ),
            Some(session),
        ),
        Ok(Err(TransportError::AuthFailed { .. })) => (
            CheckResult::fail(
                ID,
                format!("auth failed: the RouterOS user {user} does not accept the {described}"),
                format!(
                    "import the public key for the user on the RDS: upload it as a file (for \
                     example rds-csi.pub) and run `/user ssh-keys import \
                     public-key-file=rds-csi.pub user={user}`; the public key is {}; also check \
                     that --rds-user names an existing user whose group has the ssh policy",
                    key_line(key.public_key())
                ),
            ),
            None,
        ),
        Ok(Err(e)) => (
            CheckResult::fail(
                ID,
                format!("the login as {user} failed: {e}"),
                "check --rds-user and --rds-key-file, and the RDS's log (/log print where \
                 topics~\"ssh\")",
            ),
            None,
        ),
        Err(_) => (
            CheckResult::fail(
                ID,
                format!("no answer to the login as {user} within {limit}"),
                "the RDS is slow to authenticate: check its load, and any RADIUS server its \
                 users are checked against",
            ),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::doctor::report::Status;

    #[test]
    fn tcp_failures_are_told_apart() {
        let refused = tcp_failure(
            &TransportError::Refused {
                address: "rds:22".into(),
            },
            "rds",
            22,
            "rds:22",
        );
        assert_eq!(refused.status, Status::Fail);
        assert!(refused.seen.contains("refused"), "{refused:?}");
        assert!(refused.fix.as_deref().unwrap().contains("--rds-port"));
        let dns = tcp_failure(
            &TransportError::Dns {
                host: "rds.lan".into(),
                detail: "no such host".into(),
            },
            "rds.lan",
            22,
            "rds.lan:22",
        );
        assert!(
            dns.seen
                .starts_with("cannot resolve the RDS address rds.lan"),
            "{dns:?}"
        );
        let other = tcp_failure(
            &TransportError::Connect {
                address: "rds:22".into(),
                detail: "network unreachable".into(),
            },
            "rds",
            22,
            "rds:22",
        );
        assert!(other.seen.contains("network unreachable"), "{other:?}");
        assert!(other.fix.as_deref().unwrap().contains("routes"));
    }

    #[test]
    fn key_file_failures_say_how_to_fix_them() {
        let cases = [
            (
                KeyError::Read {
                    path: "/k".into(),
                    detail: "not found".into(),
                },
                "Secret",
            ),
            (
                KeyError::Encrypted { path: "/k".into() },
                "ssh-keygen -p -N '' -f /k",
            ),
            (
                KeyError::Invalid {
                    path: "/k".into(),
                    detail: "x".into(),
                },
                "BEGIN OPENSSH PRIVATE KEY",
            ),
            (
                KeyError::Unsupported {
                    path: "/k".into(),
                    algorithm: "ecdsa-sha2-nistp256".into(),
                },
                "ssh-keygen -t ed25519",
            ),
        ];
        for (e, hint) in cases {
            let r = key_failure(&e);
            assert_eq!(r.check, CheckId::Auth);
            assert_eq!(r.seen, e.to_string());
            assert!(r.fix.as_deref().unwrap().contains(hint), "{r:?}");
        }
    }

    #[test]
    fn a_mismatch_shows_both_fingerprints_and_the_new_line() {
        let key =
            russh::keys::PrivateKey::random(&mut rand::rng(), russh::keys::Algorithm::Ed25519)
                .unwrap()
                .public_key()
                .clone();
        let r = handshake_failure(
            &TransportError::HostKeyMismatch {
                expected: "SHA256:old".into(),
                seen: fingerprint(&key),
            },
            Some(&key),
            "rds:22",
        );
        assert!(r.seen.contains("SHA256:old"), "{r:?}");
        assert!(r.seen.contains(&fingerprint(&key)), "{r:?}");
        let fix = r.fix.unwrap();
        assert!(fix.contains(&key_line(&key)), "{fix}");
        assert!(key_line(&key).starts_with("ssh-ed25519 AAAA"));
    }
}
