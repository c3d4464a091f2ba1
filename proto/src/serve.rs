//! Binding a component's gRPC endpoint and serving it until shutdown.
//!
//! A unix socket left behind by a killed process is replaced on start, but a socket that
//! still has a live server behind it, or a path that is not a socket at all, is never
//! touched. The socket gets a restrictive mode (0600 unless configured), optionally an
//! owner and a list of peer uids it serves (see [`crate::socket_access`]), and is removed on
//! exit. Shutdown stops accepting, lets in-flight calls finish up to a grace period, and
//! then returns.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::service::Routes;
use tonic::transport::Server;

use crate::endpoint::Endpoint;
use crate::hop::ServerHopLayer;
use crate::socket_access::SocketAccess;

/// Why a gRPC endpoint could not be bound or served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("socket directory {0} does not exist")]
    NoSocketDir(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("another process is already serving on {0}")]
    InUse(PathBuf),
    #[error("cannot replace stale socket {path}: {source}")]
    RemoveStale {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {endpoint}: {source}")]
    Bind {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("cannot give {path} the owner {owner}: {source}")]
    Chown {
        path: PathBuf,
        owner: String,
        source: std::io::Error,
    },
    #[error("cannot set mode {mode:o} on {path}: {source}")]
    Chmod {
        path: PathBuf,
        mode: u32,
        source: std::io::Error,
    },
    #[error("serving {endpoint} failed: {source}")]
    Serve {
        endpoint: String,
        source: tonic::transport::Error,
    },
}

/// A bound gRPC listener, not yet serving.
pub enum Listener {
    Unix {
        listener: tokio::net::UnixListener,
        path: PathBuf,
        access: SocketAccess,
    },
    Tcp(tokio::net::TcpListener),
}

impl Listener {
    /// Binds `endpoint`; a unix socket gets the mode `access` names.
    pub async fn bind(endpoint: &Endpoint, mode: u32) -> Result<Self, ServeError> {
        Self::bind_with(endpoint, SocketAccess::mode(mode)).await
    }

    /// Binds `endpoint`; a unix socket gets `access` (mode, owner, peers served).
    pub async fn bind_with(endpoint: &Endpoint, access: SocketAccess) -> Result<Self, ServeError> {
        match endpoint {
            Endpoint::Unix(path) => bind_unix(path, access),
            Endpoint::Tcp { .. } => {
                let authority = endpoint.authority().unwrap_or_default();
                let listener =
                    tokio::net::TcpListener::bind(&authority)
                        .await
                        .map_err(|source| ServeError::Bind {
                            endpoint: endpoint.to_string(),
                            source,
                        })?;
                Ok(Listener::Tcp(listener))
            }
        }
    }

    /// The endpoint as bound (for TCP with port 0, the real port).
    pub fn describe(&self) -> String {
        match self {
            Listener::Unix { path, .. } => format!("unix://{}", path.display()),
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp://{a}"),
                Err(_) => "tcp://?".to_string(),
            },
        }
    }

    /// Serves `routes`, wrapped in `hop`, until `shutdown` resolves; then waits at most
    /// `grace` for in-flight calls and removes the socket file.
    pub async fn serve(
        self,
        routes: Routes,
        hop: ServerHopLayer,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        grace: Duration,
    ) -> Result<(), ServeError> {
        let endpoint = self.describe();
        let stopping = std::sync::Arc::new(tokio::sync::Notify::new());
        let signal = {
            let stopping = stopping.clone();
            async move {
                shutdown.await;
                stopping.notify_one();
            }
        };
        let router = Server::builder().layer(hop).add_routes(routes);
        let (served, socket) = match self {
            Listener::Unix {
                listener,
                path,
                access,
            } => {
                use tokio_stream::StreamExt;
                let incoming = UnixListenerStream::new(listener).filter(move |conn| match conn {
                    Ok(stream) => access.admit(stream),
                    Err(_) => true,
                });
                let fut = router.serve_with_incoming_shutdown(incoming, signal);
                (with_grace(fut, &stopping, grace).await, Some(path))
            }
            Listener::Tcp(listener) => {
                let fut =
                    router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal);
                (with_grace(fut, &stopping, grace).await, None)
            }
        };
        if let Some(path) = socket {
            let _ = std::fs::remove_file(&path);
        }
        served.map_err(|source| ServeError::Serve { endpoint, source })
    }
}

async fn with_grace<F>(
    fut: F,
    stopping: &tokio::sync::Notify,
    grace: Duration,
) -> Result<(), tonic::transport::Error>
where
    F: std::future::Future<Output = Result<(), tonic::transport::Error>>,
{
    tokio::select! {
        r = fut => r,
        _ = async { stopping.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_seconds = grace.as_secs_f64(), "in-flight calls did not finish within the shutdown grace period; closing");
            Ok(())
        }
    }
}

fn bind_unix(path: &Path, access: SocketAccess) -> Result<Listener, ServeError> {
    let mode = access.mode;
    let dir = path.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        return Err(ServeError::NoSocketDir(dir.to_path_buf()));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ServeError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(|source| ServeError::RemoveStale {
                path: path.to_path_buf(),
                source,
            })?;
        }
        Ok(_) => return Err(ServeError::NotASocket(path.to_path_buf())),
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|source| ServeError::Bind {
        endpoint: format!("unix://{}", path.display()),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        let _ = std::fs::remove_file(path);
        ServeError::Chmod {
            path: path.to_path_buf(),
            mode,
            source,
        }
    })?;
    access.apply_owner(path).map_err(|source| {
        let _ = std::fs::remove_file(path);
        ServeError::Chown {
            path: path.to_path_buf(),
            owner: access
                .owner
                .map(|o| match o.gid {
                    Some(g) => format!("{}:{g}", o.uid),
                    None => o.uid.to_string(),
                })
                .unwrap_or_default(),
            source,
        }
    })?;
    Ok(Listener::Unix {
        listener,
        path: path.to_path_buf(),
        access,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replaces_a_stale_socket_but_not_a_live_one_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        // A stale socket: bound once, listener dropped, file left behind.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let live = Listener::bind(&Endpoint::Unix(path.clone()), 0o600)
            .await
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Now something serves there: a second bind must refuse.
        let again = Listener::bind(&Endpoint::Unix(path.clone()), 0o600).await;
        assert!(matches!(again, Err(ServeError::InUse(_))));
        drop(live);

        let file = dir.path().join("plain");
        std::fs::write(&file, b"data").unwrap();
        let r = Listener::bind(&Endpoint::Unix(file.clone()), 0o600).await;
        assert!(matches!(r, Err(ServeError::NotASocket(_))));
        assert_eq!(std::fs::read(&file).unwrap(), b"data");

        let r = Listener::bind(&Endpoint::Unix(dir.path().join("nope/s.sock")), 0o600).await;
        assert!(matches!(r, Err(ServeError::NoSocketDir(_))));
    }
}
