//! The liveness probe: a cheap command (by default `/system resource print`) whose completion
//! proves a session still works end to end, and whose output tells the RouterOS version.
//!
//! Only completion counts: what the command prints is RouterOS's business, and a session that
//! answers at all is alive.

use std::time::{Duration, Instant};

use super::error::TransportError;
use super::session::SshSession;

/// Longest version text kept (anything longer is not a version line).
const VERSION_LIMIT: usize = 64;

/// Runs `command` on `session` within `timeout` and returns the RouterOS version it printed.
pub async fn probe(
    session: &SshSession,
    command: &str,
    timeout: Duration,
) -> Result<Option<String>, TransportError> {
    let now = Instant::now();
    // Settings are validated to at most a day, so this cannot overflow in practice.
    let deadline = now.checked_add(timeout).unwrap_or(now);
    let output = session.exec(command, deadline).await?;
    Ok(routeros_version(&output.stdout_text()))
}

/// The value of a `version:` line (`/system resource print`) or a `version=` field
/// (`print as-value`/terse output).
pub fn routeros_version(output: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let line = line.trim();
        let value = line
            .strip_prefix("version:")
            .map(str::trim)
            .or_else(|| {
                line.split(';')
                    .flat_map(|part| part.split_whitespace())
                    .find_map(|field| field.strip_prefix("version="))
            })?
            .trim_matches('"');
        let ok = !value.is_empty()
            && value.len() <= VERSION_LIMIT
            && value.starts_with(|c: char| c.is_ascii_digit())
            && !value.chars().any(char::is_control);
        ok.then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_resource_print() {
        let out = "                   uptime: 3w2d1h\n                  version: 7.16.2 (stable)\n\
                   \x20              build-time: 2024-11-26 12:00:00\n";
        assert_eq!(routeros_version(out), Some("7.16.2 (stable)".to_string()));
    }

    #[test]
    fn version_from_fields() {
        assert_eq!(
            routeros_version("uptime=1d;version=7.20beta2;cpu=ARM64"),
            Some("7.20beta2".to_string())
        );
        assert_eq!(
            routeros_version(" 0 uptime=1d version=\"7.18\" "),
            Some("7.18".to_string())
        );
    }

    #[test]
    fn no_version_or_junk() {
        assert_eq!(routeros_version(""), None);
        assert_eq!(routeros_version("uptime: 3d"), None);
        assert_eq!(routeros_version("version:"), None);
        assert_eq!(routeros_version("version: unknown"), None);
        let long = format!("version: 7.{}", "1".repeat(100));
        assert_eq!(routeros_version(&long), None);
    }
}
