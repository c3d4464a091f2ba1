//! The rule that decides whether a device may be formatted.
//!
//! The Go driver once ran mkfs on a volume holding data after a reconnect race. Here formatting
//! is allowed only on positive evidence of blankness: blkid's low-level probe found no signature
//! (exit status 2) *and* the first and the last MiB of the device are all zero bytes. A filesystem
//! that blkid recognises is reported as such (the caller mounts it or refuses), and everything
//! else — a partition table, an ambivalent probe, stray non-zero bytes, a short read, a device of
//! size zero — is `Ambiguous` and must never be formatted. Only a failing blkid is an error.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{HelperError, Result};

/// How much is read at each end of the device.
pub const PROBE_WINDOW: u64 = 1 << 20;

/// What blkid (run as `blkid -p -o export <device>`) said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blkid {
    /// Exit status 2: no signature of any kind.
    NothingFound,
    /// Exit status 0: the `KEY=value` pairs it printed.
    Found(Vec<(String, String)>),
    /// Exit status 8: signatures that contradict each other.
    Ambivalent,
}

impl Blkid {
    /// Interprets blkid's exit status and output. Statuses other than 0, 2 and 8 (usage or
    /// I/O errors, a signal) are errors carrying the trimmed stderr.
    pub fn from_output(
        device: &Path,
        exit_code: Option<i32>,
        stdout: &[u8],
        stderr: &str,
    ) -> Result<Self> {
        let fail = |reason: String| HelperError::ProbeFailed {
            device: device.to_path_buf(),
            reason,
        };
        match exit_code {
            Some(0) => {
                let fields = parse_fields(&String::from_utf8_lossy(stdout));
                if fields.is_empty() {
                    Err(fail("blkid exited 0 but printed nothing".into()))
                } else {
                    Ok(Self::Found(fields))
                }
            }
            Some(2) => Ok(Self::NothingFound),
            Some(8) => Ok(Self::Ambivalent),
            Some(code) => Err(fail(format!("blkid exited {code}: {}", stderr.trim()))),
            None => Err(fail(format!(
                "blkid was killed by a signal: {}",
                stderr.trim()
            ))),
        }
    }

    /// The value of `key`, when blkid reported it.
    pub fn value(&self, key: &str) -> Option<&str> {
        match self {
            Self::Found(fields) => fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

/// Parses `KEY=value` lines (`-o export`) and `dev: KEY="value" ...` lines (default format).
fn parse_fields(output: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("=\"") {
            let body = match line.split_once(": ") {
                Some((head, rest)) if !head.contains('=') => rest,
                _ => line,
            };
            parse_quoted_pairs(body, &mut fields);
        } else if let Some((key, value)) = line.split_once('=') {
            fields.push((key.to_string(), value.to_string()));
        }
    }
    fields
}

fn parse_quoted_pairs(body: &str, out: &mut Vec<(String, String)>) {
    let mut rest = body.trim_start();
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => {
                    end = at + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        out.push((key.trim().to_string(), value));
        rest = after.get(end..).unwrap_or_default().trim_start();
    }
}

/// The first and last `PROBE_WINDOW` bytes of a device (the whole device when it is smaller;
/// below 2 MiB the two windows overlap).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceEdges {
    /// Device size in bytes.
    pub size: u64,
    /// Bytes read from offset 0.
    pub head: Vec<u8>,
    /// Bytes read so that they end at `size`.
    pub tail: Vec<u8>,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Provably blank: safe to format.
    Blank,
    /// blkid recognised this filesystem (or other) type.
    Filesystem(String),
    /// Neither: what was seen. Never format.
    Ambiguous(String),
}

/// Applies the formatting rule.
pub fn decide(blkid: &Blkid, edges: &DeviceEdges) -> Probe {
    match blkid {
        Blkid::Ambivalent => {
            Probe::Ambiguous("blkid found contradicting signatures (ambivalent probe)".into())
        }
        Blkid::Found(fields) => match (blkid.value("TYPE"), blkid.value("PTTYPE")) {
            (Some(kind), None) if !kind.is_empty() => Probe::Filesystem(kind.to_string()),
            (Some(kind), Some(table)) => Probe::Ambiguous(format!(
                "blkid found filesystem {kind} and partition table {table}"
            )),
            _ => {
                let seen: Vec<String> = fields
                    .iter()
                    .filter(|(k, _)| k != "DEVNAME")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                Probe::Ambiguous(format!(
                    "blkid found {} but no filesystem type",
                    seen.join(" ")
                ))
            }
        },
        Blkid::NothingFound => check_zero(edges),
    }
}

fn check_zero(edges: &DeviceEdges) -> Probe {
    if edges.size == 0 {
        return Probe::Ambiguous("the device reports a size of 0 bytes".into());
    }
    let window = edges.size.min(PROBE_WINDOW);
    let complete = |part: &[u8]| u64::try_from(part.len()).is_ok_and(|len| len == window);
    if !complete(&edges.head) || !complete(&edges.tail) {
        return Probe::Ambiguous(format!(
            "short read: {} and {} bytes of {window} at the start and end of a {}-byte device",
            edges.head.len(),
            edges.tail.len(),
            edges.size
        ));
    }
    if let Some(at) = edges.head.iter().position(|&b| b != 0) {
        return Probe::Ambiguous(format!(
            "no signature found, but the byte at offset {at} is not zero"
        ));
    }
    if let Some(at) = edges.tail.iter().position(|&b| b != 0) {
        let offset = edges.size - window + at as u64;
        return Probe::Ambiguous(format!(
            "no signature found, but the byte at offset {offset} is not zero"
        ));
    }
    Probe::Blank
}

/// Reads the first and last MiB of `device` (read-only, positioned reads). Blocking: call it
/// from a blocking task.
pub fn read_edges(device: &Path) -> Result<DeviceEdges> {
    let io_error = |operation: &'static str| {
        move |source| HelperError::Io {
            operation,
            path: device.to_path_buf(),
            source,
        }
    };
    let mut file = File::open(device).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            HelperError::DeviceNotFound {
                device: device.display().to_string(),
                path: device.to_path_buf(),
            }
        } else {
            io_error("open")(e)
        }
    })?;
    // Block devices report a length of 0 in their metadata; seeking to the end gives the size.
    let size = file
        .seek(SeekFrom::End(0))
        .map_err(io_error("find the size of"))?;
    let window = size.min(PROBE_WINDOW);
    let head = read_window(&file, 0, window).map_err(io_error("read the start of"))?;
    let tail = read_window(&file, size - window, window).map_err(io_error("read the end of"))?;
    Ok(DeviceEdges { size, head, tail })
}

/// Reads up to `len` bytes at `offset`, stopping early only at end of file.
fn read_window(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match file.read_at(rest, offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const MIB: usize = 1 << 20;

    fn zeros(size: usize) -> DeviceEdges {
        let window = size.min(MIB);
        DeviceEdges {
            size: size as u64,
            head: vec![0; window],
            tail: vec![0; window],
        }
    }

    fn dev() -> &'static Path {
        Path::new("/dev/nvme2n1")
    }

    #[test]
    fn blkid_statuses() {
        assert_eq!(
            Blkid::from_output(dev(), Some(2), b"", "").unwrap(),
            Blkid::NothingFound
        );
        assert_eq!(
            Blkid::from_output(dev(), Some(8), b"", "").unwrap(),
            Blkid::Ambivalent
        );
        let found = Blkid::from_output(
            dev(),
            Some(0),
            b"DEVNAME=/dev/nvme2n1\nUUID=1234\nBLOCK_SIZE=4096\nTYPE=ext4\n",
            "",
        )
        .unwrap();
        assert_eq!(found.value("TYPE"), Some("ext4"));
        assert_eq!(found.value("UUID"), Some("1234"));
        let full = Blkid::from_output(
            dev(),
            Some(0),
            br#"/dev/nvme2n1: LABEL="my \"disk\"" UUID="ab-cd" TYPE="xfs""#,
            "",
        )
        .unwrap();
        assert_eq!(full.value("TYPE"), Some("xfs"));
        assert_eq!(full.value("LABEL"), Some("my \"disk\""));
        assert_eq!(full.value("UUID"), Some("ab-cd"));

        for (code, stderr, expect) in [
            (
                Some(4),
                "  blkid: invalid option\n",
                "exited 4: blkid: invalid option",
            ),
            (Some(1), "", "exited 1"),
            (None, "", "signal"),
        ] {
            match Blkid::from_output(dev(), code, b"", stderr) {
                Err(HelperError::ProbeFailed { device, reason }) => {
                    assert_eq!(device, dev());
                    assert!(reason.contains(expect), "{reason}");
                }
                other => panic!("{code:?}: expected ProbeFailed, got {other:?}"),
            }
        }
        assert!(Blkid::from_output(dev(), Some(0), b"\n", "").is_err());
    }

    #[test]
    fn only_nothing_found_and_all_zero_is_blank() {
        assert_eq!(decide(&Blkid::NothingFound, &zeros(8 * MIB)), Probe::Blank);
        assert_eq!(decide(&Blkid::NothingFound, &zeros(MIB + 1)), Probe::Blank);
        assert_eq!(decide(&Blkid::NothingFound, &zeros(4096)), Probe::Blank);

        let mut head_dirty = zeros(8 * MIB);
        head_dirty.head[510] = 0x55;
        match decide(&Blkid::NothingFound, &head_dirty) {
            Probe::Ambiguous(seen) => assert!(seen.contains("offset 510"), "{seen}"),
            other => panic!("{other:?}"),
        }
        let mut tail_dirty = zeros(8 * MIB);
        tail_dirty.tail[MIB - 1] = 1;
        match decide(&Blkid::NothingFound, &tail_dirty) {
            Probe::Ambiguous(seen) => {
                assert!(seen.contains(&format!("offset {}", 8 * MIB - 1)), "{seen}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn anything_else_is_not_blank() {
        let ext4 = Blkid::Found(vec![("TYPE".into(), "ext4".into())]);
        assert_eq!(
            decide(&ext4, &zeros(8 * MIB)),
            Probe::Filesystem("ext4".into())
        );
        let luks = Blkid::Found(vec![("TYPE".into(), "crypto_LUKS".into())]);
        assert_eq!(
            decide(&luks, &zeros(8 * MIB)),
            Probe::Filesystem("crypto_LUKS".into())
        );

        let cases: Vec<(Blkid, DeviceEdges, &str)> = vec![
            (
                Blkid::Found(vec![
                    ("DEVNAME".into(), "/dev/x".into()),
                    ("PTTYPE".into(), "gpt".into()),
                ]),
                zeros(8 * MIB),
                "PTTYPE=gpt",
            ),
            (
                Blkid::Found(vec![
                    ("TYPE".into(), "ext4".into()),
                    ("PTTYPE".into(), "dos".into()),
                ]),
                zeros(8 * MIB),
                "partition table dos",
            ),
            (
                Blkid::Found(vec![("TYPE".into(), String::new())]),
                zeros(8 * MIB),
                "no filesystem type",
            ),
            (Blkid::Ambivalent, zeros(8 * MIB), "ambivalent"),
            (Blkid::NothingFound, zeros(0), "size of 0"),
            (
                Blkid::NothingFound,
                DeviceEdges {
                    size: 8 * MIB as u64,
                    head: vec![0; MIB],
                    tail: vec![0; 100],
                },
                "short read",
            ),
            (
                Blkid::NothingFound,
                DeviceEdges {
                    size: 4096,
                    head: vec![0; 4096],
                    tail: vec![0; MIB],
                },
                "short read",
            ),
        ];
        for (blkid, edges, expect) in cases {
            match decide(&blkid, &edges) {
                Probe::Ambiguous(seen) => assert!(seen.contains(expect), "{seen}"),
                other => panic!("{blkid:?}: expected Ambiguous, got {other:?}"),
            }
        }
    }

    #[test]
    fn reads_both_ends_of_large_and_small_devices() {
        let tmp = tempfile::tempdir().unwrap();

        let big = tmp.path().join("big");
        let mut data = vec![0u8; 3 * MIB];
        data[0] = 0xAA;
        data[MIB] = 0xBB; // just past the head window: not examined
        data[3 * MIB - 1] = 0xCC;
        std::fs::write(&big, &data).unwrap();
        let edges = read_edges(&big).unwrap();
        assert_eq!(edges.size, 3 * MIB as u64);
        assert_eq!(edges.head.len(), MIB);
        assert_eq!(edges.tail.len(), MIB);
        assert_eq!(edges.head[0], 0xAA);
        assert!(edges.head[1..].iter().all(|&b| b == 0));
        assert_eq!(edges.tail[MIB - 1], 0xCC);
        assert_eq!(edges.tail[..MIB - 1].iter().filter(|&&b| b != 0).count(), 0);

        // Smaller than 2 MiB: the windows overlap; each still ends where the device does.
        let mid = tmp.path().join("mid");
        let mut data = vec![0u8; MIB + MIB / 2];
        data[MIB + 10] = 7;
        std::fs::write(&mid, &data).unwrap();
        let edges = read_edges(&mid).unwrap();
        assert_eq!(edges.head.len(), MIB);
        assert_eq!(edges.tail.len(), MIB);
        assert!(edges.head.iter().all(|&b| b == 0));
        assert_eq!(edges.tail[MIB / 2 + 10], 7);
        match decide(&Blkid::NothingFound, &edges) {
            Probe::Ambiguous(seen) => {
                assert!(seen.contains(&format!("offset {}", MIB + 10)), "{seen}")
            }
            other => panic!("{other:?}"),
        }

        // Smaller than 1 MiB: both windows are the whole device.
        let small = tmp.path().join("small");
        std::fs::write(&small, vec![0u8; 4096]).unwrap();
        let edges = read_edges(&small).unwrap();
        assert_eq!((edges.head.len(), edges.tail.len()), (4096, 4096));
        assert_eq!(decide(&Blkid::NothingFound, &edges), Probe::Blank);

        let empty = tmp.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let edges = read_edges(&empty).unwrap();
        assert!(matches!(
            decide(&Blkid::NothingFound, &edges),
            Probe::Ambiguous(_)
        ));

        assert!(matches!(
            read_edges(&tmp.path().join("missing")),
            Err(HelperError::DeviceNotFound { .. })
        ));
    }

    #[test]
    fn a_sparse_zero_device_is_blank() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("sparse");
        let file = File::create(&path).unwrap();
        file.set_len(64 * MIB as u64).unwrap();
        let edges = read_edges(&path).unwrap();
        assert_eq!(decide(&Blkid::NothingFound, &edges), Probe::Blank);
    }
}
