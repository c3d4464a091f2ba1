//! Who may talk to a component's unix socket.
//!
//! The helper is privileged and the frontend relays kubelet's calls; a process on the node
//! that reaches either socket can mount, format or attach. Two independent locks guard them:
//! the socket file's owner and mode (the kernel refuses `connect` to anyone without write
//! permission on it), and an optional list of peer uids checked on every accepted connection
//! with `SO_PEERCRED` (the kernel's record of who connected), so a socket shared through a
//! volume with looser permissions still serves only the intended client. A refused
//! connection is closed before any byte of HTTP/2 is read, and logged with the peer's uid
//! and pid.

use std::path::Path;

/// The file owner a socket gets: a uid, and optionally a gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOwner {
    pub uid: u32,
    pub gid: Option<u32>,
}

impl std::str::FromStr for SocketOwner {
    type Err = String;

    /// `UID` or `UID:GID`, numeric (names would need the container's passwd file).
    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = || format!("{raw:?} is not a numeric owner such as 65534 or 65534:65534");
        let (uid, gid) = match raw.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (raw, None),
        };
        let uid = uid.parse::<u32>().map_err(|_| bad())?;
        let gid = gid
            .map(|g| g.parse::<u32>().map_err(|_| bad()))
            .transpose()?;
        Ok(SocketOwner { uid, gid })
    }
}

/// The peer uids a socket serves; `None` serves every peer the file mode lets in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedPeers(Option<Vec<u32>>);

impl AllowedPeers {
    /// Every peer.
    pub fn any() -> Self {
        AllowedPeers(None)
    }

    /// Only these uids.
    pub fn only(uids: impl IntoIterator<Item = u32>) -> Self {
        AllowedPeers(Some(uids.into_iter().collect()))
    }

    /// Whether a peer with `uid` is served.
    pub fn admits(&self, uid: u32) -> bool {
        self.0.as_ref().is_none_or(|list| list.contains(&uid))
    }

    /// The flag value this came from, for logs.
    pub fn describe(&self) -> String {
        match &self.0 {
            None => "any uid the socket's mode admits".into(),
            Some(list) => format!(
                "uids {}",
                list.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

impl std::str::FromStr for AllowedPeers {
    type Err = String;

    /// A comma-separated uid list; empty means any peer.
    fn from_str(raw: &str) -> Result<Self, String> {
        let items: Vec<&str> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if items.is_empty() {
            return Ok(AllowedPeers::any());
        }
        items
            .iter()
            .map(|s| {
                s.parse::<u32>()
                    .map_err(|_| format!("{s:?} in {raw:?} is not a numeric uid"))
            })
            .collect::<Result<Vec<u32>, String>>()
            .map(AllowedPeers::only)
    }
}

/// How a component's unix socket is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketAccess {
    /// File mode of the socket.
    pub mode: u32,
    /// Owner to give the socket file (needs CAP_CHOWN when it is not the process's own uid).
    pub owner: Option<SocketOwner>,
    /// Peers served.
    pub peers: AllowedPeers,
}

impl SocketAccess {
    /// Mode only, every peer the mode lets in.
    pub fn mode(mode: u32) -> Self {
        SocketAccess {
            mode,
            owner: None,
            peers: AllowedPeers::any(),
        }
    }

    /// Gives the socket at `path` its owner, when one is configured.
    pub fn apply_owner(&self, path: &Path) -> std::io::Result<()> {
        match self.owner {
            Some(owner) => std::os::unix::fs::chown(path, Some(owner.uid), owner.gid),
            None => Ok(()),
        }
    }

    /// Whether an accepted connection is served; a refused one is logged.
    pub fn admit(&self, stream: &tokio::net::UnixStream) -> bool {
        match stream.peer_cred() {
            Ok(cred) if self.peers.admits(cred.uid()) => true,
            Ok(cred) => {
                tracing::warn!(
                    peer_uid = cred.uid(),
                    peer_pid = cred.pid().unwrap_or(0),
                    allowed = %self.peers.describe(),
                    "refused a connection from a uid this socket does not serve"
                );
                false
            }
            Err(error) => {
                tracing::warn!(%error, "refused a connection whose peer cannot be identified");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn owners_are_numeric_uid_with_an_optional_gid() {
        assert_eq!(
            "65534".parse::<SocketOwner>().unwrap(),
            SocketOwner {
                uid: 65534,
                gid: None
            }
        );
        assert_eq!(
            "1000:2000".parse::<SocketOwner>().unwrap(),
            SocketOwner {
                uid: 1000,
                gid: Some(2000)
            }
        );
        for bad in ["", "nobody", "1000:", ":1", "1:2:3", "-1"] {
            assert!(bad.parse::<SocketOwner>().is_err(), "{bad}");
        }
    }

    #[test]
    fn allowed_peers_parse_and_admit() {
        let any: AllowedPeers = " ".parse().unwrap();
        assert!(any.admits(0) && any.admits(12345));
        let some: AllowedPeers = "0, 65534".parse().unwrap();
        assert!(some.admits(0) && some.admits(65534));
        assert!(!some.admits(1000));
        assert!("0,abc".parse::<AllowedPeers>().is_err());
    }

    #[tokio::test]
    async fn a_peer_outside_the_list_is_refused_and_one_inside_is_admitted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let me = nix::unistd::getuid().as_raw();
        let client = tokio::net::UnixStream::connect(&path).await.unwrap();
        let (served, _) = listener.accept().await.unwrap();
        let mut access = SocketAccess::mode(0o600);
        access.peers = AllowedPeers::only([me]);
        assert!(access.admit(&served));
        access.peers = AllowedPeers::only([me.wrapping_add(1)]);
        assert!(!access.admit(&served));
        drop(client);
    }
}
