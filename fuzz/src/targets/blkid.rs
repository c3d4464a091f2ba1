//! `blkid`: the node helper's reading of `blkid -p -o export` and the rule that decides whether a
//! device may be formatted.
//!
//! Input fields: exit status selector, blkid stdout, stderr, device size, head length, tail
//! length, and the offset of one non-zero byte (or nothing). Oracles:
//! - nothing panics;
//! - exit status 0 with nothing readable is an error, never "found nothing";
//! - `Blank` (format allowed) only when blkid found no signature, the device is not empty and both
//!   edge windows were read completely and are all zero;
//! - `Filesystem(kind)` only when blkid printed `TYPE=kind` and no partition table.

use std::path::Path;

use nvme_helper::blank_probe::{Blkid, DeviceEdges, PROBE_WINDOW, Probe, decide};

use crate::input::Fields;

/// Tokens of blkid output.
pub const DICTIONARY: &[&[u8]] = &[
    b"DEVNAME=/dev/nvme2n1\n",
    b"TYPE=ext4\n",
    b"TYPE=xfs\n",
    b"TYPE=\n",
    b"PTTYPE=gpt\n",
    b"PTTYPE=dos\n",
    b"UUID=",
    b"BLOCK_SIZE=4096\n",
    b"/dev/nvme2n1: TYPE=\"ext4\" UUID=\"",
    b"=\"",
    b"\\\"",
    b"1048576",
    b"1048575",
    b"2097152",
];

/// Interprets the fuzzed blkid run and device edges and checks the oracles above.
pub fn blkid(data: &[u8]) {
    let mut f = Fields::new(data);
    let status = match f.byte() % 6 {
        0 | 1 => Some(0),
        2 => Some(2),
        3 => Some(8),
        4 => Some(4),
        _ => None,
    };
    let stdout = f.bytes();
    let stderr = f.text();
    let size: u64 = f.number().unwrap_or(4096);
    let window = size.min(PROBE_WINDOW);
    let head_len: u64 = f.number().unwrap_or(window).min(PROBE_WINDOW + 1);
    let tail_len: u64 = f.number().unwrap_or(window).min(PROBE_WINDOW + 1);
    let dirty: Option<u64> = f.number();

    let device = Path::new("/dev/fuzz0");
    let probe = match Blkid::from_output(device, status, stdout, &stderr) {
        Ok(p) => p,
        // The message quotes blkid's stderr as it is (not a log-safety promise of this module).
        Err(_) => return,
    };
    match (&probe, status) {
        (Blkid::Found(fields), Some(0)) => {
            assert!(!fields.is_empty(), "found nothing with status 0")
        }
        (Blkid::NothingFound, Some(2)) | (Blkid::Ambivalent, Some(8)) => {}
        _ => panic!("status {status:?} read as {probe:?}"),
    }

    let to_len = |n: u64| usize::try_from(n).unwrap_or(0);
    let mut head = vec![0u8; to_len(head_len)];
    let mut tail = vec![0u8; to_len(tail_len)];
    if let Some(at) = dirty {
        let at = to_len(at);
        if at < head.len() {
            head[at] = 1;
        } else if at - head.len() < tail.len() {
            tail[at - head.len()] = 1;
        }
    }
    let edges = DeviceEdges { size, head, tail };
    match decide(&probe, &edges) {
        Probe::Blank => {
            assert!(
                probe == Blkid::NothingFound,
                "Blank although blkid said {probe:?}"
            );
            assert!(size > 0, "Blank for an empty device");
            assert!(
                edges.head.len() as u64 == window && edges.tail.len() as u64 == window,
                "Blank after a short read ({} / {} of {window})",
                edges.head.len(),
                edges.tail.len()
            );
            assert!(
                edges.head.iter().chain(&edges.tail).all(|&b| b == 0),
                "Blank with a non-zero byte"
            );
        }
        Probe::Filesystem(kind) => {
            assert_eq!(
                probe.value("TYPE"),
                Some(kind.as_str()),
                "filesystem {kind:?}"
            );
            assert!(
                probe.value("PTTYPE").is_none(),
                "filesystem with a partition table"
            );
            assert!(!kind.is_empty(), "empty filesystem type");
        }
        Probe::Ambiguous(_) => {}
    }
}
