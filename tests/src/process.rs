//! Running a component as a child process in tests and in the testbed: start it, wait
//! until it serves, stop it with a signal, and never leave it behind.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// A child process that is killed when dropped.
pub struct Process {
    pub name: String,
    child: Child,
}

/// Why a child could not be started or did not behave.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error("{name} did not create {path} within {seconds} s")]
    NoSocket {
        name: String,
        path: String,
        seconds: u64,
    },
    #[error("{name} exited early with {status}")]
    Exited { name: String, status: ExitStatus },
    #[error("{name} did not exit within {seconds} s of {signal}")]
    NoExit {
        name: String,
        signal: &'static str,
        seconds: u64,
    },
    #[error("waiting for {name}: {source}")]
    Wait {
        name: String,
        source: std::io::Error,
    },
}

impl Process {
    /// Starts `cmd` (stdout/stderr inherited unless the caller set them).
    pub fn spawn(name: &str, mut cmd: Command) -> Result<Self, ProcessError> {
        cmd.kill_on_drop(true).stdin(Stdio::null());
        let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            name: name.to_string(),
            source,
        })?;
        Ok(Process {
            name: name.to_string(),
            child,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits until `path` exists (the process's socket), failing fast if it exits.
    pub async fn wait_for_socket(
        &mut self,
        path: &Path,
        within: Duration,
    ) -> Result<(), ProcessError> {
        let start = Instant::now();
        while start.elapsed() < within {
            if path.exists() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ProcessError::Exited {
                    name: self.name.clone(),
                    status,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(ProcessError::NoSocket {
            name: self.name.clone(),
            path: path.display().to_string(),
            seconds: within.as_secs(),
        })
    }

    /// Sends `signal` and waits for the exit status.
    pub async fn stop(
        mut self,
        signal: Signal,
        within: Duration,
    ) -> Result<ExitStatus, ProcessError> {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(source)) => Err(ProcessError::Wait {
                name: self.name.clone(),
                source,
            }),
            Err(_) => Err(ProcessError::NoExit {
                name: self.name.clone(),
                signal: signal.as_str(),
                seconds: within.as_secs(),
            }),
        }
    }

    /// Waits for the process to exit by itself.
    pub async fn wait(mut self, within: Duration) -> Result<std::process::Output, ProcessError> {
        let name = self.name.clone();
        let child = std::mem::replace(&mut self.child, dummy_child()?);
        match tokio::time::timeout(within, child.wait_with_output()).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(source)) => Err(ProcessError::Wait { name, source }),
            Err(_) => Err(ProcessError::NoExit {
                name,
                signal: "none",
                seconds: within.as_secs(),
            }),
        }
    }
}

fn dummy_child() -> Result<Child, ProcessError> {
    Command::new("true")
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ProcessError::Spawn {
            name: "true".into(),
            source,
        })
}

/// A TCP port on loopback that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
