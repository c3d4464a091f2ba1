//! Running the few external tools the helper needs (mkfs, blkid, e2fsck, grow tools), safely.
//!
//! The helper is privileged, so a tool is run from an argv (never through a shell), with a fixed
//! `PATH` and `LC_ALL=C` (predictable messages), no stdin, and a timeout after which its whole
//! process group is killed and reaped. Output is captured (with a size cap), and a failure
//! carries the tool, the full argv, the exit status and the trimmed stderr, so that the log line
//! alone explains it.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::Instant;

use crate::error::{HelperError, Result};

/// `PATH` the tools are looked up in.
pub const TOOL_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Default time a tool may run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Most bytes kept of each output stream (the rest is read and dropped).
pub const OUTPUT_CAP: usize = 1 << 20;
/// Most characters of stderr put into an error.
pub const STDERR_IN_ERROR: usize = 4096;

/// The tools the helper runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tool {
    /// `mkfs.ext4`.
    MkfsExt4,
    /// `mkfs.xfs`.
    MkfsXfs,
    /// `blkid`.
    Blkid,
    /// `resize2fs`.
    Resize2fs,
    /// `xfs_growfs`.
    XfsGrowfs,
    /// `e2fsck` (before an offline ext4 grow).
    E2fsck,
}

impl Tool {
    /// The program name.
    pub fn program(self) -> &'static str {
        match self {
            Self::MkfsExt4 => "mkfs.ext4",
            Self::MkfsXfs => "mkfs.xfs",
            Self::Blkid => "blkid",
            Self::Resize2fs => "resize2fs",
            Self::XfsGrowfs => "xfs_growfs",
            Self::E2fsck => "e2fsck",
        }
    }

    /// A command for this tool with the default timeout.
    pub fn command(self) -> ToolCommand {
        ToolCommand::new(self.program())
    }
}

/// The file `program` names: a name with a `/` as given, else the first executable regular
/// file of that name in a directory of [`TOOL_PATH`], else the bare name (the spawn then fails
/// with "not found"). Looking it up here instead of in the child lets the standard library
/// start the tool with `posix_spawn`: it falls back to a full `fork` (a copy of the helper's
/// page tables, and a fault on every page either side writes next) when the child's `PATH`
/// differs from the helper's and the program is a bare name.
fn resolve(program: &str) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    TOOL_PATH
        .split(':')
        .map(|dir| std::path::Path::new(dir).join(program))
        .find(|path| {
            std::fs::metadata(path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| PathBuf::from(program))
}

/// What a finished tool produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// Exit code, when the tool exited normally.
    pub exit_code: Option<i32>,
    /// Whether it exited with status 0.
    pub success: bool,
    /// Exit status as text.
    pub status: String,
    /// Captured stdout (at most `OUTPUT_CAP` bytes).
    pub stdout: Vec<u8>,
    /// Captured stderr (lossy UTF-8, at most `OUTPUT_CAP` bytes).
    pub stderr: String,
}

/// One invocation: a program, its arguments and a timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCommand {
    program: String,
    args: Vec<String>,
    timeout: Duration,
}

impl ToolCommand {
    /// A command for `program` (looked up in `TOOL_PATH`, or an absolute path).
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Appends one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets the timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The full argv, program first.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.program.clone())
            .chain(self.args.iter().cloned())
            .collect()
    }

    /// Runs the tool to completion. A non-zero exit is *not* an error here (blkid uses exit
    /// codes to answer); use `run_checked` when it should be.
    pub async fn run(&self) -> Result<ToolOutput> {
        let mut command = Command::new(resolve(&self.program));
        command
            .arg0(&self.program)
            .args(&self.args)
            .env_clear()
            .env("PATH", TOOL_PATH)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| HelperError::ToolSpawn {
            tool: self.program.clone(),
            argv: self.argv(),
            source,
        })?;
        let pid = child.id();
        let mut stdout = tokio::spawn(read_capped(child.stdout.take()));
        let mut stderr = tokio::spawn(read_capped(child.stderr.take()));
        let deadline = Instant::now() + self.timeout;

        let status = match tokio::time::timeout_at(deadline, child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(source)) => {
                stdout.abort();
                stderr.abort();
                return Err(HelperError::ToolSpawn {
                    tool: self.program.clone(),
                    argv: self.argv(),
                    source,
                });
            }
            Err(_) => {
                self.kill(&mut child, pid).await;
                stdout.abort();
                stderr.abort();
                return Err(self.timed_out(pid));
            }
        };
        // The tool has exited; its output pipes close unless something it started holds them.
        let collect = async {
            let out = (&mut stdout).await.unwrap_or_default();
            let err = (&mut stderr).await.unwrap_or_default();
            (out, err)
        };
        let Ok((stdout_bytes, stderr_bytes)) = tokio::time::timeout_at(deadline, collect).await
        else {
            stdout.abort();
            stderr.abort();
            return Err(self.timed_out(pid));
        };
        Ok(ToolOutput {
            exit_code: status.code(),
            success: status.success(),
            status: describe(status),
            stdout: stdout_bytes,
            stderr: String::from_utf8_lossy(&stderr_bytes).into_owned(),
        })
    }

    /// Runs the tool and turns a non-zero exit into `HelperError::ToolFailed`.
    pub async fn run_checked(&self) -> Result<ToolOutput> {
        let output = self.run().await?;
        if output.success {
            return Ok(output);
        }
        Err(HelperError::ToolFailed {
            tool: self.program.clone(),
            argv: self.argv(),
            status: output.status,
            exit_code: output.exit_code,
            stderr: trim_for_error(&output.stderr),
        })
    }

    /// Kills the tool's process group (the group id is its pid, as it was started with
    /// `process_group(0)` and has not been reaped yet), then kills and reaps the tool itself.
    async fn kill(&self, child: &mut tokio::process::Child, pid: Option<u32>) {
        if let Some(group) = pid.and_then(|p| i32::try_from(p).ok())
            && let Err(errno) = killpg(Pid::from_raw(group), Signal::SIGKILL)
        {
            tracing::debug!(tool = %self.program, %errno, "killpg after timeout failed");
        }
        if let Err(error) = child.kill().await {
            tracing::warn!(tool = %self.program, %error, "could not kill or reap timed-out tool");
        }
    }

    fn timed_out(&self, pid: Option<u32>) -> HelperError {
        HelperError::ToolTimedOut {
            tool: self.program.clone(),
            argv: self.argv(),
            timeout: self.timeout,
            pid,
        }
    }
}

fn describe(status: ExitStatus) -> String {
    status.to_string()
}

/// Trims stderr and caps it at `STDERR_IN_ERROR` characters.
pub fn trim_for_error(stderr: &str) -> String {
    let trimmed = stderr.trim();
    match trimmed.char_indices().nth(STDERR_IN_ERROR) {
        Some((cut, _)) => format!("{}...", trimmed.get(..cut).unwrap_or(trimmed)),
        None => trimmed.to_string(),
    }
}

/// Reads a stream to its end, keeping at most `OUTPUT_CAP` bytes.
async fn read_capped<R: AsyncRead + Unpin>(stream: Option<R>) -> Vec<u8> {
    let Some(mut stream) = stream else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = OUTPUT_CAP.saturating_sub(kept.len());
                kept.extend_from_slice(chunk.get(..n.min(room)).unwrap_or_default());
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::path::Path;

    #[tokio::test]
    async fn true_succeeds() {
        let out = ToolCommand::new("true").run_checked().await.unwrap();
        assert!(out.success);
        assert_eq!(out.exit_code, Some(0));
        assert!(out.stdout.is_empty());
    }

    #[tokio::test]
    async fn false_fails_with_its_status() {
        let cmd = ToolCommand::new("false");
        let out = cmd.run().await.unwrap();
        assert!(!out.success);
        assert_eq!(out.exit_code, Some(1));
        match cmd.run_checked().await.unwrap_err() {
            HelperError::ToolFailed {
                tool,
                argv,
                exit_code,
                ..
            } => {
                assert_eq!(tool, "false");
                assert_eq!(argv, ["false"]);
                assert_eq!(exit_code, Some(1));
            }
            other => panic!("expected ToolFailed, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn failure_carries_argv_status_and_trimmed_stderr() {
        let cmd = ToolCommand::new("sh").args(["-c", "echo x >&2; echo out; exit 3"]);
        let out = cmd.run().await.unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, "x\n");
        let err = cmd.run_checked().await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Internal);
        match err {
            HelperError::ToolFailed {
                tool,
                argv,
                status,
                exit_code,
                stderr,
            } => {
                assert_eq!(tool, "sh");
                assert_eq!(argv, ["sh", "-c", "echo x >&2; echo out; exit 3"]);
                assert_eq!(exit_code, Some(3));
                assert!(status.contains('3'), "{status}");
                assert_eq!(stderr, "x");
            }
            other => panic!("expected ToolFailed, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn arguments_are_not_interpreted_by_a_shell() {
        let out = ToolCommand::new("echo")
            .args(["$HOME", "; true", "`id`"])
            .run_checked()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"$HOME ; true `id`\n");
    }

    #[tokio::test]
    async fn environment_is_fixed() {
        let out = ToolCommand::new("sh")
            .args(["-c", "echo \"$PATH|$LC_ALL|${HOME:-unset}\""])
            .run_checked()
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{TOOL_PATH}|C|unset\n")
        );
    }

    #[tokio::test]
    async fn timeout_kills_and_reaps_the_tool() {
        let cmd = ToolCommand::new("sleep")
            .arg("5")
            .timeout(Duration::from_millis(200));
        let err = cmd.run().await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
        match err {
            HelperError::ToolTimedOut {
                tool,
                argv,
                timeout,
                pid,
            } => {
                assert_eq!(tool, "sleep");
                assert_eq!(argv, ["sleep", "5"]);
                assert_eq!(timeout, Duration::from_millis(200));
                let pid = pid.expect("pid of the killed tool");
                // Killed and reaped: no process (not even a zombie) is left with that id.
                assert!(
                    !Path::new(&format!("/proc/{pid}")).exists(),
                    "sleep {pid} is still there"
                );
            }
            other => panic!("expected ToolTimedOut, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let tmp = tempfile::tempdir().unwrap();
        let pidfile = tmp.path().join("grandchild");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let err = ToolCommand::new("sh")
            .args(["-c", script.as_str()])
            .timeout(Duration::from_millis(300))
            .run()
            .await
            .unwrap_err();
        assert!(matches!(err, HelperError::ToolTimedOut { .. }), "{err}");
        let grandchild: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild was SIGKILLed; wait (bounded) for init to reap it.
        let gone = (0..200).any(|_| {
            let state = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).ok();
            let dead = state.is_none_or(|s| s.split(' ').nth(2) == Some("Z"));
            if !dead {
                std::thread::sleep(Duration::from_millis(10));
            }
            dead
        });
        assert!(gone, "grandchild {grandchild} survived the timeout");
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let err = ToolCommand::new("definitely-not-a-tool-here")
            .arg("x")
            .run()
            .await
            .unwrap_err();
        match err {
            HelperError::ToolSpawn { tool, argv, .. } => {
                assert_eq!(tool, "definitely-not-a-tool-here");
                assert_eq!(argv, ["definitely-not-a-tool-here", "x"]);
            }
            other => panic!("expected ToolSpawn, got {other:?}"),
        }
    }

    #[test]
    fn a_bare_name_is_found_in_the_tool_path_and_a_path_is_kept() {
        // `sh` is in /usr/bin or /bin on every system the helper supports.
        let sh = resolve("sh");
        assert!(sh.is_absolute(), "{}", sh.display());
        assert!(
            TOOL_PATH
                .split(':')
                .any(|d| sh.parent() == Some(std::path::Path::new(d)))
        );
        assert_eq!(resolve("./local/tool"), PathBuf::from("./local/tool"));
        assert_eq!(
            resolve("definitely-not-a-tool-here"),
            PathBuf::from("definitely-not-a-tool-here")
        );
    }

    #[tokio::test]
    async fn a_tool_sees_its_bare_name_as_argv0() {
        let out = ToolCommand::new("sh")
            .args(["-c", "echo \"$0\""])
            .run_checked()
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "sh");
    }

    #[test]
    fn tools_have_their_program_names() {
        assert_eq!(Tool::MkfsExt4.command().argv(), ["mkfs.ext4"]);
        assert_eq!(
            Tool::XfsGrowfs.command().arg("/mnt").argv(),
            ["xfs_growfs", "/mnt"]
        );
        let long = "é".repeat(STDERR_IN_ERROR + 10);
        let trimmed = trim_for_error(&format!("  {long}\n"));
        assert_eq!(trimmed.chars().count(), STDERR_IN_ERROR + 3);
        assert!(trimmed.ends_with("..."));
    }
}
