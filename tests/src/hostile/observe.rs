//! Looking from the outside for what a case reached: the lines the simulated appliance logged
//! since the last look (read from where the previous read stopped), the mount table, and the
//! loop devices. Each look is cheap enough to make after every case, so that anything found is
//! pinned on the case that caused it.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::payloads::has_any_marker;
use crate::leaks;
use crate::sim::state::Paths;

/// Reads the command log incrementally.
#[derive(Debug)]
pub struct LogTail {
    path: PathBuf,
    offset: u64,
    /// Lines read so far.
    pub lines: usize,
}

impl LogTail {
    /// Starts at the current end of the log of the appliance at `sim_root`.
    pub fn at_end(sim_root: &Path) -> LogTail {
        let path = Paths::new(sim_root).commands_log();
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        LogTail {
            path,
            offset,
            lines: 0,
        }
    }

    /// The complete lines logged since the last call (escaped as the log stores them: control
    /// characters and backslashes escaped, so a line is one line).
    pub fn new_lines(&mut self) -> Vec<String> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return Vec::new();
        }
        // Only whole lines; a line being written is read next time.
        let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        self.offset += end as u64 + 1;
        let text = String::from_utf8_lossy(&buf[..end]);
        let out: Vec<String> = text.lines().map(str::to_string).collect();
        self.lines += out.len();
        out
    }
}

/// The lines of `lines` that hold any of `needles` or any case marker.
pub fn reached<'a>(lines: &'a [String], needles: &[String]) -> Vec<&'a String> {
    lines
        .iter()
        .filter(|l| has_any_marker(l) || needles.iter().any(|n| l.contains(n.as_str())))
        .collect()
}

/// The whole mount table of this process's namespace.
pub fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
}

/// Mount-table lines that hold any of `needles` or any case marker.
pub fn mounts_with(needles: &[String]) -> Vec<String> {
    mountinfo()
        .lines()
        .filter(|l| has_any_marker(l) || needles.iter().any(|n| l.contains(n.as_str())))
        .map(str::to_string)
        .collect()
}

/// Every loop device's backing file (`/dev/loopN -> file`), whoever made it.
pub fn all_loops() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let backing = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            name.starts_with("loop")
                .then(|| format!("/dev/{name} -> {}", backing.trim()))
        })
        .collect()
}

/// Loop devices whose backing file holds any of `needles` or any case marker, and loop devices
/// under `dir` that are not in `allowed`.
pub fn new_loops(dir: &Path, allowed: &[String], needles: &[String]) -> Vec<String> {
    let mut out: Vec<String> = all_loops()
        .into_iter()
        .filter(|l| has_any_marker(l) || needles.iter().any(|n| l.contains(n.as_str())))
        .collect();
    for l in leaks::loops_under(dir) {
        if !allowed.contains(&l) && !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

/// Mount points under `dir` that are not in `allowed`, and allowed ones that are gone.
pub fn mount_changes(dir: &Path, allowed: &[String]) -> Vec<String> {
    let now = leaks::mounts_under(dir);
    let mut out: Vec<String> = now
        .iter()
        .filter(|m| !allowed.contains(m))
        .map(|m| format!("new mount {m}"))
        .collect();
    out.extend(
        allowed
            .iter()
            .filter(|a| !now.contains(a))
            .map(|a| format!("fixture mount {a} is gone")),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_returns_only_new_whole_lines() {
        let dir = std::env::temp_dir().join(format!("hostile-tail-{}", std::process::id()));
        let paths = Paths::new(&dir);
        std::fs::create_dir_all(paths.meta()).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(paths.commands_log(), "t\tadmin\t/disk print\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut tail = LogTail::at_end(&dir);
        assert!(tail.new_lines().is_empty());
        let more = format!(
            "t\tadmin\t/disk add slot={}\nt\tadmin\t/file print\npartial",
            super::super::payloads::marker(1)
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(paths.commands_log())
            .unwrap_or_else(|e| panic!("{e}"));
        std::io::Write::write_all(&mut f, more.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let lines = tail.new_lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(reached(&lines, &[]).len(), 1);
        assert_eq!(reached(&lines, &["file print".into()]).len(), 2);
        std::io::Write::write_all(&mut f, b"\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tail.new_lines(), vec!["partial".to_string()]);
        assert_eq!(tail.lines, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
