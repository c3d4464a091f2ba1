//! One simulated appliance on disk, independent of how commands arrive (SSH session or one-shot
//! `exec`): it logs each command line, parses it, applies the fault rules, and runs it under
//! the state lock — load, run, store — returning the terminal output or a connection fault.

use std::fs;
use std::time::{Duration, Instant};

use super::ast::{Script, Verb};
use super::cmdlog;
use super::config::SimConfig;
use super::engine::{self, Env};
use super::error::SimError;
use super::faults::{FaultAction, Faults};
use super::parser::{self, Dialect, ParseError};
use super::state::{self, Paths};
use super::storage::META_DIR;

/// How a command is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Send this output, exit status 0, EOF, close.
    Text(String),
    /// Close the connection without an answer.
    Drop,
    /// Never answer.
    Hang,
}

/// A logged and parsed command line, not yet run.
#[derive(Debug, Clone)]
pub struct Received {
    pub text: String,
    pub script: Result<Script, ParseError>,
    pub verb: Option<Verb>,
}

/// A simulated appliance.
#[derive(Debug)]
pub struct Appliance {
    cfg: SimConfig,
    paths: Paths,
    started: Instant,
}

impl Appliance {
    /// Opens (creating when needed) the appliance rooted at `cfg.root`, with its pool directory.
    pub fn open(cfg: SimConfig) -> Result<Appliance, SimError> {
        let pool_ok = !cfg.pool.is_empty()
            && cfg
                .pool
                .trim_start_matches('/')
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".." && c != META_DIR);
        if !pool_ok {
            return Err(SimError::Config {
                name: "pool",
                detail: format!("{:?} is not a relative directory path", cfg.pool),
            });
        }
        let paths = Paths::new(&cfg.root);
        for dir in [
            paths.meta(),
            cfg.root.join(cfg.pool.trim_start_matches('/')),
        ] {
            fs::create_dir_all(&dir).map_err(|source| SimError::Io { path: dir, source })?;
        }
        Ok(Appliance {
            cfg,
            paths,
            started: Instant::now(),
        })
    }

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The pool's mount point: the first component of the configured pool path.
    pub fn pool_mount(&self) -> &str {
        self.cfg
            .pool
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
    }

    /// Logs a command line received from `user` and parses it.
    pub fn receive(&self, user: &str, raw: &[u8]) -> Received {
        let text = String::from_utf8_lossy(raw).into_owned();
        if let Err(e) = cmdlog::append(&self.paths, user, &text) {
            tracing::warn!(error = %e, "cannot write the command log");
        }
        let dialect = Dialect {
            serialize: self.cfg.routeros_version.has_serialize(),
        };
        let script = parser::parse(&text, dialect);
        let verb = script.as_ref().ok().and_then(Script::verb);
        Received { text, script, verb }
    }

    /// The delay configured for this command.
    pub fn latency(&self, received: &Received) -> Duration {
        self.cfg.latency.of(received.verb)
    }

    /// Runs a received command for a terminal `width` columns wide. Blocks on the state lock
    /// and on file I/O: call it from a blocking context.
    pub fn execute(&self, received: &Received, width: usize) -> Reply {
        let _lock = match state::lock(&self.paths) {
            Ok(lock) => lock,
            Err(e) => return self.internal(&e),
        };
        let fault = match Faults::take(&self.cfg.root, received.verb) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the faults file");
                None
            }
        };
        if let Some(action) = fault {
            tracing::info!(?action, verb = ?received.verb, "injecting a fault");
        }
        match fault {
            Some(FaultAction::Drop) => return Reply::Drop,
            Some(FaultAction::Hang) => return Reply::Hang,
            Some(FaultAction::NoSpace) => {
                return Reply::Text(self.lines(&["failure: not enough space".to_string()]));
            }
            Some(FaultAction::UnknownCommand) => {
                return Reply::Text(self.lines(&[unknown_command(&received.text)]));
            }
            Some(FaultAction::NotEnoughPermissions) => {
                return Reply::Text(self.lines(&["not enough permissions (9)".to_string()]));
            }
            Some(FaultAction::FailAfterApply) | None => {}
        }
        let lines = match &received.script {
            Err(e) => vec![e.to_string()],
            Ok(script) => match self.run(script, width) {
                Ok(lines) => lines,
                Err(e) => return self.internal(&e),
            },
        };
        if fault == Some(FaultAction::FailAfterApply) {
            Reply::Drop
        } else {
            Reply::Text(self.lines(&lines))
        }
    }

    fn run(&self, script: &Script, width: usize) -> Result<Vec<String>, SimError> {
        let mut state = state::load(&self.paths)?;
        let env = Env {
            root: &self.cfg.root,
            pool_mount: self.pool_mount(),
            pool_size: self.cfg.pool_size,
            style: self.cfg.print_style,
            width,
            version: self.cfg.routeros_version,
            json_floats: self.cfg.json_floats,
            board: &self.cfg.board_name,
            uptime: self.started.elapsed(),
        };
        let outcome = engine::run(&env, &mut state, script);
        if outcome.changed {
            state::store(&self.paths, &state)?;
        }
        Ok(outcome.lines)
    }

    fn internal(&self, e: &SimError) -> Reply {
        tracing::error!(error = %e, "simulator failure");
        Reply::Text(self.lines(&["failure: internal error".to_string()]))
    }

    /// Joins output lines with the configured line end.
    fn lines(&self, lines: &[String]) -> String {
        if lines.is_empty() {
            return String::new();
        }
        let eol = if self.cfg.crlf { "\r\n" } else { "\n" };
        let mut out = lines.join(eol);
        out.push_str(eol);
        out
    }
}

/// `bad command name <first word>` for a command line, as RouterOS words it.
fn unknown_command(text: &str) -> String {
    let trimmed = text.trim_start();
    let lead = text.len() - trimmed.len();
    let (skip, rest) = match trimmed.strip_prefix(['/', ':']) {
        Some(rest) => (1, rest),
        None => (0, trimmed),
    };
    let word: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '/')
        .collect();
    format!(
        "bad command name {word} (line 1 column {})",
        lead + skip + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_names_the_first_word() {
        assert_eq!(
            unknown_command("/disk add type=file"),
            "bad command name disk (line 1 column 2)"
        );
        assert_eq!(
            unknown_command(":put [:serialize]"),
            "bad command name put (line 1 column 2)"
        );
        assert_eq!(
            unknown_command("disk print"),
            "bad command name disk (line 1 column 1)"
        );
    }
}
