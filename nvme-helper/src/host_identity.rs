//! This node's NVMe host identity: the host NQN and host id it presents to the RDS.
//!
//! The RDS can restrict an export to named hosts, and the kernel ties reconnects to the pair,
//! so the identity must be stable across helper restarts and unique per node. It is read from
//! the same files nvme-cli uses (`/etc/nvme/hostnqn`, `/etc/nvme/hostid`, both configurable).
//! When a file is missing it is generated and persisted atomically (temporary file, `rename`,
//! mode 0644) so that a crash never leaves a half-written identity. Values that are known to be
//! shared by many machines (empty, the all-zero UUID, the examples printed in nvme-cli's manual,
//! the placeholder UUID of cheap firmware) are refused: two nodes with the same identity would
//! take over each other's connections.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::error::{HelperError, Result};
use crate::nqn::{Nqn, UUID_NQN_PREFIX};

/// Default host NQN file.
pub const DEFAULT_HOSTNQN_PATH: &str = "/etc/nvme/hostnqn";
/// Default host id file.
pub const DEFAULT_HOSTID_PATH: &str = "/etc/nvme/hostid";

/// Largest identity file accepted, in bytes.
const MAX_FILE_BYTES: u64 = 4096;

/// UUIDs that identify no machine in particular.
const PLACEHOLDER_UUIDS: &[(&str, &str)] = &[
    ("00000000-0000-0000-0000-000000000000", "the all-zero UUID"),
    ("ffffffff-ffff-ffff-ffff-ffffffffffff", "the all-ones UUID"),
    (
        "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "the example printed in the nvme-gen-hostnqn manual",
    ),
    (
        "03000200-0400-0500-0006-000700080009",
        "a firmware placeholder product UUID shared by many boards",
    ),
];

/// Where the identity files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentityFiles {
    /// Host NQN file.
    pub hostnqn: PathBuf,
    /// Host id file.
    pub hostid: PathBuf,
}

impl Default for HostIdentityFiles {
    fn default() -> Self {
        Self {
            hostnqn: PathBuf::from(DEFAULT_HOSTNQN_PATH),
            hostid: PathBuf::from(DEFAULT_HOSTID_PATH),
        }
    }
}

/// This host's NVMe identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    /// Host NQN.
    pub hostnqn: Nqn,
    /// Host id.
    pub hostid: Uuid,
}

impl HostIdentity {
    /// Reads the identity, generating and persisting whatever part is missing.
    ///
    /// - both missing: a fresh random UUID becomes the host id and `nqn.2014-08.org.nvmexpress:uuid:<same uuid>`;
    /// - only the host id missing: it is taken from a UUID-form host NQN, or generated;
    /// - only the host NQN missing: it is derived from the host id.
    ///
    /// A file that exists but is empty, malformed or a known placeholder is an error; it is
    /// never overwritten.
    pub fn load_or_create(files: &HostIdentityFiles) -> Result<Self> {
        let hostnqn = read_optional(&files.hostnqn)?
            .map(|text| parse_hostnqn(&files.hostnqn, &text))
            .transpose()?;
        let hostid = read_optional(&files.hostid)?
            .map(|text| parse_hostid(&files.hostid, &text))
            .transpose()?;
        let identity = match (hostnqn, hostid) {
            (Some(hostnqn), Some(hostid)) => {
                if let Some(embedded) = hostnqn.uuid()
                    && embedded != hostid
                {
                    tracing::warn!(%hostnqn, %hostid, "host id differs from the UUID in the host NQN");
                }
                Self { hostnqn, hostid }
            }
            (Some(hostnqn), None) => {
                let hostid = hostnqn.uuid().unwrap_or_else(Uuid::new_v4);
                write_atomically(&files.hostid, &format!("{}\n", hostid.hyphenated()))?;
                tracing::info!(path = %files.hostid.display(), %hostid, "host id created");
                Self { hostnqn, hostid }
            }
            (None, Some(hostid)) => {
                let hostnqn = Nqn::from_uuid(hostid);
                write_atomically(&files.hostnqn, &format!("{hostnqn}\n"))?;
                tracing::info!(path = %files.hostnqn.display(), %hostnqn, "host NQN created");
                Self { hostnqn, hostid }
            }
            (None, None) => {
                let hostid = Uuid::new_v4();
                let hostnqn = Nqn::from_uuid(hostid);
                write_atomically(&files.hostid, &format!("{}\n", hostid.hyphenated()))?;
                write_atomically(&files.hostnqn, &format!("{hostnqn}\n"))?;
                tracing::info!(%hostnqn, %hostid, "host identity created");
                Self { hostnqn, hostid }
            }
        };
        Ok(identity)
    }
}

fn placeholder_reason(uuid: Uuid) -> Option<&'static str> {
    PLACEHOLDER_UUIDS
        .iter()
        .find(|(text, _)| Uuid::try_parse(text).is_ok_and(|known| known == uuid))
        .map(|(_, why)| *why)
}

fn identity_error(path: &Path, reason: impl Into<String>) -> HelperError {
    HelperError::HostIdentity {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The trimmed content of `path`, or `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    let read_error = |source| HelperError::Io {
        operation: "read",
        path: path.to_path_buf(),
        source,
    };
    let Some(bytes) = crate::small_file::read_capped(path, MAX_FILE_BYTES).map_err(read_error)?
    else {
        return Ok(None);
    };
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(identity_error(
            path,
            format!("the file is larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| identity_error(path, "the file is not UTF-8"))?;
    Ok(Some(text.trim().to_string()))
}

pub(crate) fn parse_hostnqn(path: &Path, text: &str) -> Result<Nqn> {
    if text.is_empty() {
        return Err(identity_error(
            path,
            "the host NQN file is empty; delete it to have one generated, or write a unique NQN",
        ));
    }
    let nqn = Nqn::new(text).map_err(|e| identity_error(path, e.to_string()))?;
    if let Some(rest) = text.strip_prefix(UUID_NQN_PREFIX) {
        let uuid = nqn.uuid().ok_or_else(|| {
            identity_error(
                path,
                format!("{rest:?} after {UUID_NQN_PREFIX:?} is not a UUID"),
            )
        })?;
        if let Some(why) = placeholder_reason(uuid) {
            return Err(identity_error(
                path,
                format!("host NQN {text} uses {why}; every node needs its own"),
            ));
        }
    }
    Ok(nqn)
}

pub(crate) fn parse_hostid(path: &Path, text: &str) -> Result<Uuid> {
    if text.is_empty() {
        return Err(identity_error(
            path,
            "the host id file is empty; delete it to have one generated, or write a unique UUID",
        ));
    }
    let uuid = Uuid::try_parse(text)
        .map_err(|e| identity_error(path, format!("{text:?} is not a UUID ({e})")))?;
    if let Some(why) = placeholder_reason(uuid) {
        return Err(identity_error(
            path,
            format!("host id {text} is {why}; every node needs its own"),
        ));
    }
    Ok(uuid)
}

/// Writes `contents` to `path` via a temporary file in the same directory and `rename`, mode 0644.
fn write_atomically(path: &Path, contents: &str) -> Result<()> {
    let io_error = |operation: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| HelperError::Io {
            operation,
            path,
            source,
        }
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| identity_error(path, "the path has no file name"))?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .map_err(io_error("create directory", &dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(io_error("create", &tmp))?;
        // The process umask may have narrowed the mode; the files must be world-readable.
        file.set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(io_error("chmod", &tmp))?;
        file.write_all(contents.as_bytes())
            .map_err(io_error("write", &tmp))?;
        file.sync_all().map_err(io_error("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(io_error("rename into place", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Make the rename itself durable; failing to is not worth failing start-up for.
    if let Err(error) = fs::File::open(&dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), %error, "could not sync directory after writing host identity");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn files(dir: &Path) -> HostIdentityFiles {
        HostIdentityFiles {
            hostnqn: dir.join("etc/nvme/hostnqn"),
            hostid: dir.join("etc/nvme/hostid"),
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn generates_a_matching_pair_when_both_are_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let f = files(tmp.path());
        let id = HostIdentity::load_or_create(&f).unwrap();
        assert_eq!(id.hostnqn.uuid(), Some(id.hostid));
        assert_eq!(
            fs::read_to_string(&f.hostnqn).unwrap(),
            format!("nqn.2014-08.org.nvmexpress:uuid:{}\n", id.hostid)
        );
        assert_eq!(
            fs::read_to_string(&f.hostid).unwrap(),
            format!("{}\n", id.hostid)
        );
        assert_eq!(mode(&f.hostnqn), 0o644);
        assert_eq!(mode(&f.hostid), 0o644);
        // No temporary files left behind.
        let left: Vec<_> = fs::read_dir(f.hostnqn.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        // Stable on the next start.
        assert_eq!(HostIdentity::load_or_create(&f).unwrap(), id);
    }

    #[test]
    fn keeps_existing_values_and_fills_in_the_missing_one() {
        let tmp = tempfile::tempdir().unwrap();
        let f = files(tmp.path());
        fs::create_dir_all(f.hostnqn.parent().unwrap()).unwrap();

        let id = Uuid::new_v4();
        fs::write(&f.hostnqn, format!("  {}\n", Nqn::from_uuid(id))).unwrap();
        let loaded = HostIdentity::load_or_create(&f).unwrap();
        assert_eq!(
            loaded.hostid, id,
            "host id is taken from the UUID-form host NQN"
        );
        assert_eq!(
            fs::read_to_string(&f.hostid).unwrap().trim(),
            id.to_string()
        );

        fs::remove_file(&f.hostnqn).unwrap();
        let loaded = HostIdentity::load_or_create(&f).unwrap();
        assert_eq!(
            loaded.hostnqn,
            Nqn::from_uuid(id),
            "host NQN is derived from the host id"
        );

        fs::write(&f.hostnqn, "nqn.2024-01.io.example:node-7\n").unwrap();
        fs::remove_file(&f.hostid).unwrap();
        let loaded = HostIdentity::load_or_create(&f).unwrap();
        assert_eq!(loaded.hostnqn.as_str(), "nqn.2024-01.io.example:node-7");
        assert!(!loaded.hostid.is_nil());
        assert_eq!(HostIdentity::load_or_create(&f).unwrap(), loaded);
    }

    #[test]
    fn refuses_placeholders_and_garbage_without_overwriting() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("hostnqn", b"", "empty"),
            ("hostnqn", b"\n\n", "empty"),
            (
                "hostnqn",
                b"nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427\n",
                "manual",
            ),
            (
                "hostnqn",
                b"nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000000",
                "all-zero",
            ),
            (
                "hostnqn",
                b"nqn.2014-08.org.nvmexpress:uuid:03000200-0400-0500-0006-000700080009",
                "firmware",
            ),
            (
                "hostnqn",
                b"nqn.2014-08.org.nvmexpress:uuid:not-a-uuid",
                "not a UUID",
            ),
            ("hostnqn", b"my host", "invalid NQN"),
            ("hostnqn", b"\xff\xfe", "UTF-8"),
            ("hostid", b"", "empty"),
            (
                "hostid",
                b"00000000-0000-0000-0000-000000000000\n",
                "all-zero",
            ),
            ("hostid", b"1B4E28BA-2FA1-11D2-883F-0016D3CCA427", "manual"),
            (
                "hostid",
                b"ffffffff-ffff-ffff-ffff-ffffffffffff",
                "all-ones",
            ),
            ("hostid", b"banana", "not a UUID"),
        ];
        for (which, content, why) in cases {
            let tmp = tempfile::tempdir().unwrap();
            let f = files(tmp.path());
            fs::create_dir_all(f.hostnqn.parent().unwrap()).unwrap();
            let path = if *which == "hostnqn" {
                &f.hostnqn
            } else {
                &f.hostid
            };
            fs::write(path, content).unwrap();
            let err = HostIdentity::load_or_create(&f).unwrap_err();
            match &err {
                HelperError::HostIdentity { path: p, reason } => {
                    assert_eq!(p, path);
                    assert!(reason.contains(why), "{which} {content:?}: {reason}");
                }
                other => panic!("{which} {content:?}: expected HostIdentity, got {other:?}"),
            }
            assert_eq!(fs::read(path).unwrap(), *content, "file was modified");
            let other = if *which == "hostnqn" {
                &f.hostid
            } else {
                &f.hostnqn
            };
            assert!(!other.exists(), "nothing is generated when one file is bad");
        }
    }

    #[test]
    fn oversized_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let f = files(tmp.path());
        fs::create_dir_all(f.hostnqn.parent().unwrap()).unwrap();
        fs::write(&f.hostid, vec![b'a'; 5000]).unwrap();
        let err = HostIdentity::load_or_create(&f).unwrap_err();
        assert!(err.to_string().contains("larger than 4096"), "{err}");
    }

    #[test]
    fn mismatched_pair_is_accepted_as_configured() {
        let tmp = tempfile::tempdir().unwrap();
        let f = files(tmp.path());
        fs::create_dir_all(f.hostnqn.parent().unwrap()).unwrap();
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        fs::write(&f.hostnqn, Nqn::from_uuid(a).as_str()).unwrap();
        fs::write(&f.hostid, b.to_string()).unwrap();
        let id = HostIdentity::load_or_create(&f).unwrap();
        assert_eq!(id.hostnqn.uuid(), Some(a));
        assert_eq!(id.hostid, b);
    }

    #[test]
    fn atomic_write_replaces_and_fails_cleanly() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("file");
        fs::write(&target, "old").unwrap();
        write_atomically(&target, "new\n").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "new\n");
        // A directory in the way makes the rename fail; no temporary file may remain.
        let blocked = tmp.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inner"), "x").unwrap();
        let err = write_atomically(&blocked, "data").unwrap_err();
        assert!(
            matches!(
                err,
                HelperError::Io {
                    operation: "rename into place",
                    ..
                }
            ),
            "{err}"
        );
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    }
}
