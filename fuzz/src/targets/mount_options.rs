//! `mount_options`: the node helper's allow-lists for mount options (to `mount(2)`) and mkfs
//! options (to a root-run mkfs).
//!
//! Input fields: filesystem selector, mkfs option string, then mount option entries. Oracles:
//! - nothing panics;
//! - accepted mount data is at most 4095 bytes, free of NUL, whitespace and empty pieces, made only
//!   of pieces given in the input, and accepted again unchanged when passed back on its own;
//! - accepted mkfs options are flag/value pairs of single argv words (no whitespace, NUL or
//!   newline; every flag starts with `-`), accepted again unchanged when passed back.

use nvme_helper::mount_options::{FsType, MAX_DATA_BYTES, parse_mkfs_options, parse_mount_options};

use crate::input::Fields;

/// Tokens of mount and mkfs options.
pub const DICTIONARY: &[&[u8]] = &[
    b"ro",
    b"rw",
    b"noatime",
    b"relatime",
    b"nodev",
    b"nosuid",
    b"noexec",
    b"sync",
    b"discard",
    b"nodiscard",
    b"errors=remount-ro",
    b"errors=panic",
    b"data=ordered",
    b"commit=",
    b"barrier",
    b"nouuid",
    b"inode64",
    b"logbufs=8",
    b"logbsize=32k",
    b"allocsize=",
    b"noquota",
    b"uquota",
    b"-m",
    b"-E",
    b"-O",
    b"-L",
    b"-b",
    b"-i",
    b"-I",
    b"-N",
    b"-f",
    b"lazy_itable_init=0",
    b"lazy_journal_init=1",
    b"^has_journal",
    b"metadata_csum",
    b"crc=1",
    b"-m crc=1,finobt=1",
    b"4096",
];

fn piece_ok(p: &str) -> bool {
    !p.is_empty() && !p.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Validates the fuzzed options and checks the oracles above.
pub fn mount_options(data: &[u8]) {
    let mut f = Fields::new(data);
    let fs = if f.byte().is_multiple_of(2) {
        FsType::Ext4
    } else {
        FsType::Xfs
    };
    let mkfs = f.text();
    let entries: Vec<String> = f.rest_text().into_iter().map(|t| t.into_owned()).collect();

    if let Ok(opts) = parse_mount_options(fs, &entries) {
        assert!(opts.data.len() <= MAX_DATA_BYTES, "mount data too long");
        if !opts.data.is_empty() {
            let given: Vec<&str> = entries
                .iter()
                .flat_map(|e| e.split(','))
                .map(str::trim)
                .collect();
            for piece in opts.data.split(',') {
                assert!(
                    piece_ok(piece),
                    "mount data piece {piece:?} in {:?}",
                    opts.data
                );
                assert!(
                    given.contains(&piece),
                    "mount data piece {piece:?} was not given"
                );
            }
            match parse_mount_options(fs, &[opts.data.as_str()]) {
                Ok(again) => {
                    assert_eq!(again.data, opts.data, "mount data changes when passed back")
                }
                Err(e) => panic!(
                    "accepted mount data {:?} is refused when passed back: {e}",
                    opts.data
                ),
            }
        }
    }

    if let Ok(argv) = parse_mkfs_options(fs, &mkfs) {
        assert!(
            argv.len() % 2 == 0,
            "mkfs argv {argv:?} is not flag/value pairs"
        );
        for pair in argv.chunks(2) {
            assert!(pair[0].starts_with('-'), "mkfs flag {:?}", pair[0]);
            for word in pair {
                assert!(piece_ok(word), "mkfs argv word {word:?}");
            }
        }
        match parse_mkfs_options(fs, &argv.join(" ")) {
            Ok(again) => assert_eq!(again, argv, "mkfs options change when passed back"),
            Err(e) => {
                panic!("accepted mkfs options {argv:?} are refused when passed back: {e}")
            }
        }
    }
}
