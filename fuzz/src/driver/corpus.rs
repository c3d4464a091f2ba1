//! Seed corpora on disk (`corpus/<target>/`), findings written back (`artifacts/<target>/`), and
//! the printable forms of an input used in failure reports.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::rng::fnv1a;

/// One seed: its file name and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// File name inside the corpus directory.
    pub name: String,
    /// Content, cut to the input limit.
    pub data: Vec<u8>,
}

/// Reads every regular file of `dir`, sorted by name; each is cut to `max_len` bytes. A missing
/// or empty directory is an error: every target must have seeds.
pub fn load(dir: &Path, max_len: usize) -> io::Result<Vec<Seed>> {
    let mut seeds = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let mut data = fs::read(entry.path())?;
        data.truncate(max_len);
        seeds.push(Seed { name, data });
    }
    if seeds.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no seed files in {}", dir.display()),
        ));
    }
    seeds.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(seeds)
}

/// The file name of a finding: `crash-<16 hex digits of FNV-1a>`.
pub fn artifact_name(input: &[u8]) -> String {
    format!("crash-{:016x}", fnv1a(input))
}

/// Writes `input` to `<root>/<target>/crash-<hash>` and returns the path.
pub fn save_artifact(root: &Path, target: &str, input: &[u8]) -> io::Result<PathBuf> {
    let dir = root.join(target);
    fs::create_dir_all(&dir)?;
    let path = dir.join(artifact_name(input));
    fs::write(&path, input)?;
    Ok(path)
}

/// The input as an escaped string (printable ASCII as is, `\n`, `\t`, `\r`, `\\`, `\"`, other
/// bytes as `\xNN`), cut after `limit` bytes.
pub fn escaped(input: &[u8], limit: usize) -> String {
    let mut out = String::with_capacity(input.len().min(limit) * 2 + 16);
    out.push('"');
    for &b in input.iter().take(limit) {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    if input.len() > limit {
        let _ = write!(out, "... ({} more bytes)", input.len() - limit);
    }
    out
}

/// The input in hex, cut after `limit` bytes.
pub fn hex(input: &[u8], limit: usize) -> String {
    let mut out = String::with_capacity(input.len().min(limit) * 2 + 24);
    for b in input.iter().take(limit) {
        let _ = write!(out, "{b:02x}");
    }
    if input.len() > limit {
        let _ = write!(out, "... ({} more bytes)", input.len() - limit);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn loads_sorted_seeds_and_refuses_an_empty_corpus() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path(), 10).is_err());
        fs::write(dir.path().join("b"), b"0123456789abc").unwrap();
        fs::write(dir.path().join("a"), b"x").unwrap();
        fs::write(dir.path().join(".hidden"), b"y").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let seeds = load(dir.path(), 10).unwrap();
        let names: Vec<&str> = seeds.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(seeds[1].data, b"0123456789");
    }

    #[test]
    fn artifacts_are_named_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = save_artifact(dir.path(), "t", b"boom").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"boom");
        assert_eq!(p.parent().unwrap().file_name().unwrap(), "t");
        assert_eq!(
            p.file_name().unwrap().to_str().unwrap(),
            artifact_name(b"boom")
        );
        assert_ne!(artifact_name(b"boom"), artifact_name(b"boon"));
    }

    #[test]
    fn printable_forms() {
        assert_eq!(escaped(b"a\n\"\xff", 10), "\"a\\n\\\"\\xff\"");
        assert_eq!(escaped(b"abcdef", 2), "\"ab\"... (4 more bytes)");
        assert_eq!(hex(b"\x00\xab", 10), "00ab");
    }
}
