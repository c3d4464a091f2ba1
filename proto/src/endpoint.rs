//! The `--endpoint` grammar shared by every component.
//!
//! A hop is either a unix socket on the same node (`unix:///path/to.sock`, or a bare
//! absolute path as the CSI sidecars also accept) or TCP where a hop crosses pods
//! (`tcp://host:port`). Parsing happens once, at start-up, so a malformed value is one
//! clear error line instead of a failure deep inside the transport.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where a gRPC server listens or a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix domain socket at an absolute path.
    Unix(PathBuf),
    /// A TCP `host:port`.
    Tcp { host: String, port: u16 },
}

/// Why an endpoint string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("endpoint {0:?} is empty")]
    Empty(String),
    #[error(
        "endpoint {0:?} has an unknown scheme: use unix:///absolute/path.sock or tcp://host:port"
    )]
    UnknownScheme(String),
    #[error("endpoint {0:?}: the unix socket path must be absolute (unix:///path/to.sock)")]
    RelativeUnixPath(String),
    #[error("endpoint {0:?}: the unix socket path is longer than the kernel's 107-byte limit")]
    UnixPathTooLong(String),
    #[error("endpoint {0:?}: expected tcp://host:port with a port in 1-65535")]
    BadTcp(String),
}

/// The longest path `sun_path` can hold, without the terminating NUL.
const MAX_UNIX_PATH: usize = 107;

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let raw = s.trim();
        if raw.is_empty() {
            return Err(EndpointError::Empty(s.to_string()));
        }
        if raw.contains('\0') || raw.chars().any(char::is_control) {
            return Err(EndpointError::UnknownScheme(s.to_string()));
        }
        if let Some(path) = raw.strip_prefix("unix://") {
            return unix(s, path);
        }
        if let Some(path) = raw.strip_prefix("unix:") {
            return unix(s, path);
        }
        if raw.starts_with('/') {
            return unix(s, raw);
        }
        if let Some(rest) = raw.strip_prefix("tcp://") {
            return tcp(s, rest);
        }
        Err(EndpointError::UnknownScheme(s.to_string()))
    }
}

fn unix(original: &str, path: &str) -> Result<Endpoint, EndpointError> {
    if !path.starts_with('/') {
        return Err(EndpointError::RelativeUnixPath(original.to_string()));
    }
    if path.len() > MAX_UNIX_PATH {
        return Err(EndpointError::UnixPathTooLong(original.to_string()));
    }
    Ok(Endpoint::Unix(PathBuf::from(path)))
}

fn tcp(original: &str, rest: &str) -> Result<Endpoint, EndpointError> {
    let bad = || EndpointError::BadTcp(original.to_string());
    let rest = rest.trim_end_matches('/');
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, p) = v6.split_once("]:").ok_or_else(bad)?;
        (h, p)
    } else {
        rest.rsplit_once(':').ok_or_else(bad)?
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    if port == 0 || !host_ok {
        return Err(bad());
    }
    Ok(Endpoint::Tcp {
        host: host.to_string(),
        port,
    })
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

impl Endpoint {
    /// `host:port` for a TCP endpoint, bracketing IPv6 literals.
    pub fn authority(&self) -> Option<String> {
        match self {
            Endpoint::Unix(_) => None,
            Endpoint::Tcp { host, port } if host.contains(':') => Some(format!("[{host}]:{port}")),
            Endpoint::Tcp { host, port } => Some(format!("{host}:{port}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_forms() {
        let want = Endpoint::Unix(PathBuf::from("/csi/csi.sock"));
        assert_eq!("unix:///csi/csi.sock".parse::<Endpoint>(), Ok(want.clone()));
        assert_eq!("unix:/csi/csi.sock".parse::<Endpoint>(), Ok(want.clone()));
        assert_eq!("/csi/csi.sock".parse::<Endpoint>(), Ok(want.clone()));
        assert_eq!(want.to_string(), "unix:///csi/csi.sock");
    }

    #[test]
    fn tcp_forms() {
        let e: Endpoint = "tcp://gateway.ns.svc:7443"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.authority().as_deref(), Some("gateway.ns.svc:7443"));
        let e: Endpoint = "tcp://[::1]:50051"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.to_string(), "tcp://[::1]:50051");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "   ",
            "http://x:1",
            "unix://relative.sock",
            "tcp://host",
            "tcp://host:0",
            "tcp://host:99999",
            "tcp://:80",
            "tcp://a b:80",
            "csi.sock",
            "unix:///a\nb",
        ] {
            assert!(
                bad.parse::<Endpoint>().is_err(),
                "{bad:?} should be refused"
            );
        }
        let long = format!("unix:///{}", "a".repeat(200));
        assert!(matches!(
            long.parse::<Endpoint>(),
            Err(EndpointError::UnixPathTooLong(_))
        ));
    }
}
