//! Node paths: the staging and target paths kubelet hands the node service.
//!
//! The frontend checks the shape of a path (absolute, normalised, printable) before it goes
//! anywhere; the helper checks again that it lies under its kubelet directory before it
//! touches the filesystem. The frontend never opens a path itself.

use crate::ids::shown;

/// Longest path accepted (the kernel's PATH_MAX).
const MAX_PATH: usize = 4096;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("{field} is required")]
    Missing { field: &'static str },
    #[error("{field} {shown} is not usable: {reason}")]
    Invalid {
        field: &'static str,
        shown: String,
        reason: &'static str,
    },
}

/// Validates a path received in `field`.
///
/// CSI spec, NodeStageVolumeRequest.staging_target_path (and likewise target_path,
/// volume_path): "It MUST be an absolute path in the root filesystem of the process serving
/// this request".
pub fn absolute(field: &'static str, raw: &str) -> Result<String, PathError> {
    if raw.is_empty() {
        return Err(PathError::Missing { field });
    }
    let bad = |reason| PathError::Invalid {
        field,
        shown: shown(raw),
        reason,
    };
    if !raw.starts_with('/') {
        return Err(bad("must be an absolute path"));
    }
    if raw.len() > MAX_PATH {
        return Err(bad("longer than 4096 bytes"));
    }
    if raw.chars().any(char::is_control) {
        return Err(bad("contains a control character"));
    }
    // A trailing slash is tolerated and dropped.
    let trimmed = raw.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(bad("must not be the root directory"));
    }
    if trimmed
        .split('/')
        .skip(1)
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(bad("must be normalised (no '.', '..' or '//' components)"));
    }
    Ok(trimmed.to_string())
}

/// Like [`absolute`] for a field that may be left empty.
pub fn optional_absolute(field: &'static str, raw: &str) -> Result<Option<String>, PathError> {
    if raw.is_empty() {
        Ok(None)
    } else {
        absolute(field, raw).map(Some)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn absolute_normalised_paths_pass() {
        let p = "/var/lib/kubelet/plugins/kubernetes.io/csi/rds.csi.srvlab.io/abc/globalmount";
        assert_eq!(absolute("staging_target_path", p).unwrap(), p);
        assert_eq!(absolute("target_path", "/a/b/").unwrap(), "/a/b");
        assert_eq!(optional_absolute("staging_target_path", "").unwrap(), None);
    }

    #[test]
    fn anything_else_is_refused() {
        assert_eq!(
            absolute("target_path", ""),
            Err(PathError::Missing {
                field: "target_path"
            })
        );
        for bad in [
            "relative/path",
            "/",
            "//",
            "/a/../etc",
            "/a/./b",
            "/a//b",
            "/a/b\n/c",
            "/a\0b",
        ] {
            assert!(
                matches!(absolute("target_path", bad), Err(PathError::Invalid { .. })),
                "{bad:?}"
            );
        }
        assert!(absolute("target_path", &format!("/{}", "a".repeat(5000))).is_err());
    }
}
