//! Path safety for the privileged helper: only paths inside the kubelet directory are touched.
//!
//! The helper mounts, bind-mounts and creates files as root at paths that arrive over RPC. A
//! path that escapes the kubelet directory (through `..`, or through a symbolic link planted by
//! a pod in a directory it can write) would let an unprivileged workload make root mount over or
//! create files anywhere on the node. `SafePath` is the only way to hold such a path: it checks
//! the text lexically, resolves the *parent* with `canonicalize`, checks that the resolved parent
//! lies inside the (canonical) kubelet directory, and refuses a final component that is itself a
//! symbolic link (which mount(2) would follow). The final component may not exist yet.
//!
//! The check is made at construction; callers still open the final component with
//! `O_NOFOLLOW`-style care where the kernel allows it.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{HelperError, PathRejection, Result};

/// Default kubelet root directory.
pub const DEFAULT_KUBELET_DIR: &str = "/var/lib/kubelet";
/// Longest accepted path in bytes (`PATH_MAX` less the terminating NUL).
pub const MAX_PATH_BYTES: usize = 4095;
/// Longest accepted path component in bytes (`NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// The kubelet directory, canonicalized once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletDir {
    configured: PathBuf,
    canonical: PathBuf,
}

impl KubeletDir {
    /// Resolves the configured kubelet directory (it must exist and be absolute).
    pub fn new(dir: impl AsRef<Path>) -> Result<Self> {
        let configured = dir.as_ref().to_path_buf();
        if !configured.is_absolute() {
            return Err(HelperError::UnsafePath {
                path: configured.to_string_lossy().into_owned(),
                reason: PathRejection::Relative,
            });
        }
        let canonical = fs::canonicalize(&configured).map_err(|source| HelperError::Io {
            operation: "resolve the kubelet directory",
            path: configured.clone(),
            source,
        })?;
        Ok(Self {
            configured,
            canonical,
        })
    }

    /// The canonical kubelet directory.
    pub fn path(&self) -> &Path {
        &self.canonical
    }
}

/// An absolute path inside the kubelet directory whose parent has been resolved and whose final
/// component is not a symbolic link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafePath {
    requested: PathBuf,
    resolved: PathBuf,
}

impl SafePath {
    /// Checks `candidate` against `kubelet`.
    pub fn new(candidate: impl AsRef<OsStr>, kubelet: &KubeletDir) -> Result<Self> {
        let raw = candidate.as_ref();
        let reject = |reason: PathRejection| HelperError::UnsafePath {
            path: raw.to_string_lossy().into_owned(),
            reason,
        };
        let bytes = raw.as_bytes();
        if bytes.contains(&0) {
            return Err(reject(PathRejection::ContainsNul));
        }
        let Some(text) = raw.to_str() else {
            return Err(reject(PathRejection::NotUtf8));
        };
        if text.is_empty() {
            return Err(reject(PathRejection::Empty));
        }
        if !text.starts_with('/') {
            return Err(reject(PathRejection::Relative));
        }
        if text.len() > MAX_PATH_BYTES {
            return Err(reject(PathRejection::TooLong {
                len: text.len(),
                limit: MAX_PATH_BYTES,
            }));
        }
        if text == "/" {
            return Err(reject(PathRejection::OutsideKubeletDir {
                kubelet_dir: kubelet.canonical.clone(),
            }));
        }
        // Skip the empty piece before the leading '/'.
        for component in text.split('/').skip(1) {
            match component {
                "" => return Err(reject(PathRejection::EmptyComponent)),
                "." => return Err(reject(PathRejection::Dot)),
                ".." => return Err(reject(PathRejection::DotDot)),
                c if c.len() > MAX_COMPONENT_BYTES => {
                    let shown: String = c.chars().take(40).collect();
                    return Err(reject(PathRejection::ComponentTooLong {
                        component: format!("{shown}..."),
                        limit: MAX_COMPONENT_BYTES,
                    }));
                }
                _ => {}
            }
        }
        let requested = PathBuf::from(text);
        let (Some(parent), Some(name)) = (requested.parent(), requested.file_name()) else {
            // Only "/" has no parent or name.
            return Err(reject(PathRejection::OutsideKubeletDir {
                kubelet_dir: kubelet.canonical.clone(),
            }));
        };
        let resolved_parent = fs::canonicalize(parent).map_err(|e| {
            reject(if e.kind() == io::ErrorKind::NotFound {
                PathRejection::ParentMissing {
                    parent: parent.to_path_buf(),
                }
            } else {
                PathRejection::Uninspectable {
                    path: parent.to_path_buf(),
                    error: e.to_string(),
                }
            })
        })?;
        if !resolved_parent.starts_with(&kubelet.canonical) {
            let looks_inside =
                parent.starts_with(&kubelet.configured) || parent.starts_with(&kubelet.canonical);
            return Err(reject(if looks_inside {
                PathRejection::EscapesThroughSymlink {
                    resolved: resolved_parent,
                    kubelet_dir: kubelet.canonical.clone(),
                }
            } else {
                PathRejection::OutsideKubeletDir {
                    kubelet_dir: kubelet.canonical.clone(),
                }
            }));
        }
        let resolved = resolved_parent.join(name);
        match fs::symlink_metadata(&resolved) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(reject(PathRejection::FinalSymlink));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(reject(PathRejection::Uninspectable {
                    path: resolved,
                    error: e.to_string(),
                }));
            }
        }
        Ok(Self {
            requested,
            resolved,
        })
    }

    /// The path with its parent resolved: use this for every system call.
    pub fn as_path(&self) -> &Path {
        &self.resolved
    }

    /// The path as it was requested (for messages and for matching kubelet's own records).
    pub fn requested(&self) -> &Path {
        &self.requested
    }
}

impl AsRef<Path> for SafePath {
    fn as_ref(&self) -> &Path {
        &self.resolved
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    use std::os::unix::fs::symlink;

    struct Bed {
        tmp: tempfile::TempDir,
        kubelet: KubeletDir,
    }

    impl Bed {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("kubelet");
            fs::create_dir_all(dir.join("pods/p1/volumes")).unwrap();
            fs::create_dir_all(dir.join("plugins/kubernetes.io/csi/staging")).unwrap();
            fs::create_dir_all(tmp.path().join("etc")).unwrap();
            let kubelet = KubeletDir::new(&dir).unwrap();
            Self { tmp, kubelet }
        }

        fn k(&self, rel: &str) -> String {
            format!("{}/{rel}", self.kubelet.path().display())
        }

        fn reason(&self, path: impl AsRef<OsStr>) -> PathRejection {
            match SafePath::new(path.as_ref(), &self.kubelet) {
                Err(HelperError::UnsafePath {
                    path: shown,
                    reason,
                }) => {
                    assert_eq!(
                        shown,
                        path.as_ref().to_string_lossy(),
                        "error names the path"
                    );
                    reason
                }
                other => panic!("{:?}: expected rejection, got {other:?}", path.as_ref()),
            }
        }
    }

    #[test]
    fn accepts_paths_inside_whether_or_not_the_leaf_exists() {
        let bed = Bed::new();
        let missing = bed.k("pods/p1/volumes/mount");
        let safe = SafePath::new(&missing, &bed.kubelet).unwrap();
        assert_eq!(safe.as_path(), Path::new(&missing));
        assert_eq!(safe.requested(), Path::new(&missing));

        let existing = bed.k("plugins/kubernetes.io/csi/staging");
        fs::create_dir_all(&existing).unwrap();
        assert!(SafePath::new(&existing, &bed.kubelet).is_ok());
    }

    #[test]
    fn rejects_lexically_bad_paths() {
        let bed = Bed::new();
        assert_eq!(bed.reason(""), PathRejection::Empty);
        assert_eq!(bed.reason("pods/p1"), PathRejection::Relative);
        assert_eq!(bed.reason(bed.k("pods/../../etc/x")), PathRejection::DotDot);
        assert_eq!(bed.reason(bed.k("pods/./p1")), PathRejection::Dot);
        assert_eq!(bed.reason(bed.k("pods//p1")), PathRejection::EmptyComponent);
        assert_eq!(bed.reason(bed.k("pods/p1/")), PathRejection::EmptyComponent);
        assert_eq!(
            bed.reason(format!("{}\0/x", bed.k("pods"))),
            PathRejection::ContainsNul
        );

        let mut raw = bed.k("pods/").into_bytes();
        raw.extend_from_slice(b"\xff\xfe");
        assert_eq!(bed.reason(OsString::from_vec(raw)), PathRejection::NotUtf8);

        let long_component = bed.k(&format!("pods/{}", "a".repeat(256)));
        assert!(matches!(
            bed.reason(long_component),
            PathRejection::ComponentTooLong { .. }
        ));
        let long_path = bed.k(&"abcdefgh/".repeat(600));
        assert!(matches!(
            bed.reason(long_path),
            PathRejection::TooLong { .. }
        ));
    }

    #[test]
    fn rejects_paths_outside_and_the_kubelet_dir_itself() {
        let bed = Bed::new();
        let etc = format!("{}/etc/passwd", bed.tmp.path().display());
        assert!(matches!(
            bed.reason(etc),
            PathRejection::OutsideKubeletDir { .. }
        ));
        let itself = bed.kubelet.path().display().to_string();
        assert!(matches!(
            bed.reason(itself),
            PathRejection::OutsideKubeletDir { .. }
        ));
        assert!(matches!(
            bed.reason("/"),
            PathRejection::OutsideKubeletDir { .. }
        ));
        // A sibling sharing the name as a string prefix is still outside.
        let twin = format!("{}2", bed.kubelet.path().display());
        fs::create_dir_all(&twin).unwrap();
        assert!(matches!(
            bed.reason(format!("{twin}/x")),
            PathRejection::OutsideKubeletDir { .. }
        ));
    }

    #[test]
    fn rejects_a_missing_parent() {
        let bed = Bed::new();
        assert!(matches!(
            bed.reason(bed.k("pods/nope/volumes/x")),
            PathRejection::ParentMissing { .. }
        ));
    }

    #[test]
    fn rejects_a_final_symlink_even_when_it_points_inside() {
        let bed = Bed::new();
        let inside_target = bed.k("pods/p1/volumes/real");
        fs::create_dir_all(&inside_target).unwrap();
        let link = bed.k("pods/p1/volumes/link");
        symlink(&inside_target, &link).unwrap();
        assert_eq!(bed.reason(&link), PathRejection::FinalSymlink);
        let dangling = bed.k("pods/p1/volumes/dangling");
        symlink("/nonexistent/target", &dangling).unwrap();
        assert_eq!(bed.reason(&dangling), PathRejection::FinalSymlink);
    }

    #[test]
    fn rejects_a_parent_that_escapes_through_a_symlink() {
        let bed = Bed::new();
        let outside = bed.tmp.path().join("etc");
        symlink(&outside, bed.k("pods/p1/volumes/evil")).unwrap();
        match bed.reason(bed.k("pods/p1/volumes/evil/passwd")) {
            PathRejection::EscapesThroughSymlink { resolved, .. } => {
                assert_eq!(resolved, fs::canonicalize(&outside).unwrap());
            }
            other => panic!("expected EscapesThroughSymlink, got {other:?}"),
        }
    }

    #[test]
    fn follows_parent_symlinks_that_stay_inside() {
        let bed = Bed::new();
        let real = bed.k("pods/p1/volumes");
        let alias = bed.k("alias");
        symlink(&real, &alias).unwrap();
        let safe = SafePath::new(format!("{alias}/mount"), &bed.kubelet).unwrap();
        assert_eq!(safe.as_path(), Path::new(&format!("{real}/mount")));
        assert_eq!(safe.requested(), Path::new(&format!("{alias}/mount")));
    }

    #[test]
    fn a_symlinked_kubelet_dir_is_resolved_once() {
        let bed = Bed::new();
        let link = bed.tmp.path().join("var-lib-kubelet");
        symlink(bed.kubelet.path(), &link).unwrap();
        let via_link = KubeletDir::new(&link).unwrap();
        assert_eq!(via_link.path(), bed.kubelet.path());
        let safe =
            SafePath::new(format!("{}/pods/p1/volumes/m", link.display()), &via_link).unwrap();
        assert!(safe.as_path().starts_with(bed.kubelet.path()));
        assert!(matches!(
            KubeletDir::new("relative/kubelet"),
            Err(HelperError::UnsafePath {
                reason: PathRejection::Relative,
                ..
            })
        ));
    }
}
