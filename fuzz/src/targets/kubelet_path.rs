//! `kubelet_path`: the node helper's check that a path it will mount at or create lies inside the
//! kubelet directory.
//!
//! The target runs against a small real tree made once per process in a temporary directory: a
//! kubelet directory with sub-directories and a file, symbolic links that stay inside, that escape
//! (to a sibling directory and to `/`), that loop and that dangle, and a second name for the
//! kubelet directory reached through a symbolic link.
//!
//! Input: one mode byte (which name of the kubelet directory to use, and what to put before the
//! rest: nothing, the configured directory, the canonical directory or the temporary root), then
//! the path bytes (not necessarily UTF-8). Oracles for an accepted path:
//! - the path to use is absolute, strictly inside the canonical kubelet directory, has no empty,
//!   `.` or `..` component, and its parent is already canonical;
//! - its final component is not a symbolic link;
//! - the requested path is the input, unchanged, absolute and free of `..`.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::sync::Mutex;

use nvme_helper::kubelet_path::{KubeletDir, SafePath};
use tempfile::TempDir;

/// Tokens of kubelet paths.
pub const DICTIONARY: &[&[u8]] = &[
    b"/pods/",
    b"/plugins/",
    b"/pods/pod1/volumes/kubernetes.io~csi/pvc-1/mount",
    b"/plugins/kubernetes.io/csi/rds.csi.mikrotik.com/abc/globalmount",
    b"/escape/",
    b"/escape",
    b"/inside/",
    b"/inside",
    b"/loop",
    b"/dangling",
    b"/up/",
    b"/root-link/",
    b"/pods/file",
    b"/pods/file/x",
    b"/../",
    b"/./",
    b"//",
    b"/..",
    b"/.",
];

struct Fixture {
    _dir: TempDir,
    root: PathBuf,
    direct: KubeletDir,
    via_link: KubeletDir,
}

static FIXTURE: Mutex<Option<Fixture>> = Mutex::new(None);

fn build() -> std::io::Result<Fixture> {
    let dir = super::scratch_dir("rds-csi-fuzz-kubelet-")?;
    let root = fs::canonicalize(dir.path())?;
    let kubelet = root.join("kubelet");
    let outside = root.join("outside");
    for d in [
        kubelet.join("pods/pod1/volumes/kubernetes.io~csi/pvc-1/mount"),
        kubelet.join("plugins/kubernetes.io/csi/rds.csi.mikrotik.com/abc/globalmount"),
        outside.join("x"),
    ] {
        fs::create_dir_all(d)?;
    }
    fs::write(kubelet.join("pods/file"), b"")?;
    symlink(&outside, kubelet.join("escape"))?;
    symlink("/", kubelet.join("pods/root-link"))?;
    symlink(kubelet.join("plugins"), kubelet.join("inside"))?;
    symlink("loop", kubelet.join("pods/loop"))?;
    symlink("missing", kubelet.join("pods/dangling"))?;
    symlink("..", kubelet.join("pods/up"))?;
    symlink("../..", kubelet.join("plugins/up2"))?;
    symlink(&kubelet, root.join("kubelet-link"))?;
    let direct = KubeletDir::new(&kubelet).map_err(std::io::Error::other)?;
    let via_link = KubeletDir::new(root.join("kubelet-link")).map_err(std::io::Error::other)?;
    Ok(Fixture {
        _dir: dir,
        root,
        direct,
        via_link,
    })
}

/// Removes the temporary tree (the next call builds it again).
pub fn teardown() {
    FIXTURE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
}

fn check(candidate: &[u8], kubelet: &KubeletDir) {
    let Ok(safe) = SafePath::new(OsStr::from_bytes(candidate), kubelet) else {
        return;
    };
    let path = safe.as_path();
    let base = kubelet.path();
    assert!(
        path.is_absolute() && path.starts_with(base) && path != base,
        "accepted {:?} as {path:?}, not strictly inside {base:?}",
        String::from_utf8_lossy(candidate)
    );
    let bytes = path.as_os_str().as_bytes();
    let bad_component = bytes
        .split(|&b| b == b'/')
        .skip(1)
        .any(|c| c.is_empty() || c == b"." || c == b"..");
    assert!(!bad_component, "accepted path {path:?} is not normalised");
    if let Some(parent) = path.parent() {
        assert_eq!(
            fs::canonicalize(parent).ok().as_deref(),
            Some(parent),
            "the parent of accepted path {path:?} is not canonical"
        );
    }
    if let Ok(meta) = fs::symlink_metadata(path) {
        assert!(
            !meta.file_type().is_symlink(),
            "accepted path {path:?} is a symbolic link"
        );
    }
    let requested = safe.requested();
    assert_eq!(
        requested.as_os_str().as_bytes(),
        candidate,
        "requested path changed"
    );
    assert!(
        requested.is_absolute()
            && !requested
                .as_os_str()
                .as_bytes()
                .split(|&b| b == b'/')
                .any(|c| c == b".."),
        "requested path {requested:?} accepted with '..'"
    );
}

/// Checks the fuzzed path against the fixture tree and the oracles above.
pub fn kubelet_path(data: &[u8]) {
    let mut guard = FIXTURE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if guard.is_none() {
        match build() {
            Ok(f) => *guard = Some(f),
            Err(e) => panic!("cannot build the kubelet fixture: {e}"),
        }
    }
    let Some(fixture) = guard.as_ref() else {
        return;
    };
    let (mode, rest) = data.split_first().unwrap_or((&0, &[]));
    let kubelet = if mode & 1 == 0 {
        &fixture.direct
    } else {
        &fixture.via_link
    };
    let prefix: Option<PathBuf> = match (mode >> 1) % 4 {
        0 => None,
        1 => Some(fixture.root.join(if mode & 1 == 0 {
            "kubelet"
        } else {
            "kubelet-link"
        })),
        2 => Some(kubelet.path().to_path_buf()),
        _ => Some(fixture.root.clone()),
    };
    let candidate = match prefix {
        None => rest.to_vec(),
        Some(p) => [p.as_os_str().as_bytes(), rest].concat(),
    };
    check(&candidate, kubelet);
}
