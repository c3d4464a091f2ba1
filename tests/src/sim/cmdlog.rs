//! The command log, `<root>/.rds-sim/commands.log`: every command line received, rejected ones
//! included, before anything else happens to it, one line each as
//! `<RFC 3339 time>\t<user>\t<command>` with control characters and backslashes escaped. Tests
//! read it back with [`read`] to prove what did, or did not, reach the appliance.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use super::clock::Civil;
use super::error::SimError;
use super::state::Paths;

/// One logged command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedCommand {
    pub time: String,
    pub user: String,
    pub command: String,
}

/// Appends `command`, received from `user`, to the log of the simulator at `paths`.
pub fn append(paths: &Paths, user: &str, command: &str) -> Result<(), SimError> {
    let path = paths.commands_log();
    let line = format!(
        "{}\t{}\t{}\n",
        Civil::from_system(SystemTime::now()).rfc3339(),
        escape(user),
        escape(command)
    );
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|source| SimError::Io {
            path: path.clone(),
            source,
        })?;
    // one write per line, so that lines from concurrent sessions never interleave
    file.write_all(line.as_bytes())
        .map_err(|source| SimError::Io { path, source })
}

/// Every logged command of the simulator rooted at `root` (none if nothing was logged yet).
pub fn read(root: &Path) -> Result<Vec<LoggedCommand>, SimError> {
    let path = Paths::new(root).commands_log();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(SimError::Io { path, source }),
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, '\t');
            Some(LoggedCommand {
                time: parts.next()?.to_string(),
                user: unescape(parts.next()?),
                command: unescape(parts.next()?),
            })
        })
        .collect())
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let code: String = chars
                    .by_ref()
                    .skip_while(|c| *c == '{')
                    .take_while(|c| *c != '}')
                    .collect();
                if let Some(ch) = u32::from_str_radix(&code, 16).ok().and_then(char::from_u32) {
                    out.push(ch);
                }
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lines_round_trip_whatever_the_command_holds() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        std::fs::create_dir_all(paths.meta()).unwrap();
        let hostile = "/disk print\n/system reboot\t\\x\u{1b}[2J\u{0}";
        append(&paths, "admin", "/disk print").unwrap();
        append(&paths, "ad\tmin", hostile).unwrap();
        let text = std::fs::read_to_string(paths.commands_log()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        let log = read(dir.path()).unwrap();
        assert_eq!(log[0].command, "/disk print");
        assert_eq!(log[1].user, "ad\tmin");
        assert_eq!(log[1].command, hostile);
        assert!(log[0].time.ends_with('Z'));
    }
}
