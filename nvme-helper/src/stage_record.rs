//! What the helper remembers about each staged volume, on disk under `--state-dir`.
//!
//! A block volume has nothing mounted at its staging path, so without a record publish and
//! unstage would have to guess which device and NQN it belongs to; a filesystem volume's record
//! lets publish repair a stale staging mount with the original options, lets unstage disconnect
//! when the caller no longer knows the NQN, and lets start-up orphan cleanup tell a staged
//! volume from a leftover connection. Records are small JSON files, one per volume, replaced
//! atomically (temporary file, rename), so that a helper crash leaves either the old record or
//! the new one. They are not fsynced: a record only describes mounts and connections, which a
//! power loss takes away with it, and the fsyncs would double the cost of a stage on a busy
//! disk. A record that did not survive intact is treated as absent (and logged): the caller's
//! NQN, a new stage, or orphan cleanup take over.
//!
//! A second kind of record, the format intent, is written just before mkfs and removed just
//! after it: if the helper dies while mkfs runs, the half-written signatures it leaves would
//! make the device look "not blank" for ever; the intent proves that the only writes since the
//! device was found blank were our own mkfs, so formatting may be run again. Intents are
//! durable (file and directory fsynced on write and on removal): an intent that outlived its
//! mkfs through a power loss would let a later stage format a volume holding data.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{HelperError, Result};

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/rds-csi-helper";
/// Longest encoded volume id accepted as a file name.
const MAX_ENCODED: usize = 200;
/// Largest record file read.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// How a volume is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordedAccess {
    /// A raw block device.
    Block,
    /// A mounted filesystem.
    Filesystem,
}

/// One staged volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRecord {
    /// The CSI volume id.
    pub volume_id: String,
    /// The subsystem NQN it was connected as.
    pub nqn: String,
    /// Block or filesystem.
    pub access: RecordedAccess,
    /// The device node it resolved to when staged (the NQN stays authoritative).
    pub device: PathBuf,
    /// The staging path (resolved).
    pub staging_path: PathBuf,
    /// Filesystem type, for filesystem volumes.
    #[serde(default)]
    pub fs_type: Option<String>,
    /// Validated mount options the staging mount was made with.
    #[serde(default)]
    pub mount_options: Vec<String>,
    /// Whether it was staged read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// A format in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatIntent {
    /// The CSI volume id.
    pub volume_id: String,
    /// The NQN whose device was found blank.
    pub nqn: String,
    /// The filesystem being made.
    pub fs_type: String,
}

/// The record store.
#[derive(Debug, Clone)]
pub struct StageRecords {
    volumes: PathBuf,
    formatting: PathBuf,
}

impl StageRecords {
    /// A store under `state_dir`, creating its directories (0700).
    pub fn open(state_dir: impl AsRef<Path>) -> Result<Self> {
        let root = state_dir.as_ref();
        let volumes = root.join("volumes");
        let formatting = root.join("formatting");
        for dir in [&volumes, &formatting] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| HelperError::Io {
                    operation: "create the state directory",
                    path: dir.clone(),
                    source,
                })?;
        }
        Ok(Self {
            volumes,
            formatting,
        })
    }

    fn path_in(dir: &Path, volume_id: &str) -> Result<PathBuf> {
        Ok(dir.join(format!("{}.json", encode_volume_id(volume_id)?)))
    }

    /// The record of `volume_id`, if any. A record that cannot be read back intact is logged
    /// and treated as absent.
    pub fn load(&self, volume_id: &str) -> Result<Option<StageRecord>> {
        let path = Self::path_in(&self.volumes, volume_id)?;
        let record: Option<StageRecord> = match read_json(&path) {
            Ok(r) => r,
            Err(error @ HelperError::StateRecord { .. }) => {
                tracing::warn!(%error, "ignoring a damaged stage record");
                None
            }
            Err(e) => return Err(e),
        };
        match record {
            Some(r) if r.volume_id != volume_id => Err(HelperError::StateRecord {
                path,
                reason: format!("it belongs to volume {:?}", r.volume_id),
            }),
            other => Ok(other),
        }
    }

    /// Writes (replaces) the record of its volume.
    pub fn save(&self, record: &StageRecord) -> Result<()> {
        let path = Self::path_in(&self.volumes, &record.volume_id)?;
        write_json(&self.volumes, &path, record, false)
    }

    /// Removes the record of `volume_id`; a missing record is fine.
    pub fn remove(&self, volume_id: &str) -> Result<()> {
        remove_file(
            &self.volumes,
            &Self::path_in(&self.volumes, volume_id)?,
            false,
        )
    }

    /// Every readable record; unreadable ones are logged and skipped.
    pub fn all(&self) -> Result<Vec<StageRecord>> {
        let entries = fs::read_dir(&self.volumes).map_err(|source| HelperError::Io {
            operation: "list",
            path: self.volumes.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match read_json::<StageRecord>(&path) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "skipping unreadable stage record"),
            }
        }
        out.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
        Ok(out)
    }

    /// The format intent of `volume_id`, if a format was started and never finished.
    pub fn format_intent(&self, volume_id: &str) -> Result<Option<FormatIntent>> {
        read_json(&Self::path_in(&self.formatting, volume_id)?)
    }

    /// Records that mkfs is about to run.
    pub fn begin_format(&self, intent: &FormatIntent) -> Result<()> {
        let path = Self::path_in(&self.formatting, &intent.volume_id)?;
        write_json(&self.formatting, &path, intent, true)
    }

    /// Records that mkfs finished.
    pub fn end_format(&self, volume_id: &str) -> Result<()> {
        remove_file(
            &self.formatting,
            &Self::path_in(&self.formatting, volume_id)?,
            true,
        )
    }
}

/// A file name for a volume id: `[A-Za-z0-9_-]` and non-leading `.` kept, every other byte as
/// `%XX`, so that distinct ids never share a file and no id can name a path outside the store.
pub fn encode_volume_id(volume_id: &str) -> Result<String> {
    if volume_id.is_empty() {
        return Err(HelperError::InvalidRequest {
            field: "volume_id",
            reason: "it is empty".into(),
        });
    }
    let mut out = String::with_capacity(volume_id.len());
    for (i, b) in volume_id.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > MAX_ENCODED {
        return Err(HelperError::InvalidRequest {
            field: "volume_id",
            reason: format!("it is longer than the {MAX_ENCODED} bytes the helper records"),
        });
    }
    Ok(out)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    let Some(bytes) = crate::small_file::read_capped(path, MAX_RECORD_BYTES).map_err(|source| {
        HelperError::Io {
            operation: "read",
            path: path.to_path_buf(),
            source,
        }
    })?
    else {
        return Ok(None);
    };
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Err(HelperError::StateRecord {
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_RECORD_BYTES} bytes"),
        });
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| HelperError::StateRecord {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

fn write_json<T: Serialize>(dir: &Path, path: &Path, value: &T, durable: bool) -> Result<()> {
    let io_err = |operation: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| HelperError::Io {
            operation,
            path: p,
            source,
        }
    };
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| HelperError::StateRecord {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        file.write_all(&bytes).map_err(io_err("write", &tmp))?;
        if durable {
            file.sync_all().map_err(io_err("sync", &tmp))?;
        }
        fs::rename(&tmp, path).map_err(io_err("rename", path))?;
        if durable {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err("sync", dir))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn remove_file(dir: &Path, path: &Path, durable: bool) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) if !durable => Ok(()),
        Ok(()) => File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| HelperError::Io {
                operation: "sync",
                path: dir.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(HelperError::Io {
            operation: "remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn record(id: &str) -> StageRecord {
        StageRecord {
            volume_id: id.into(),
            nqn: "nqn.2000-02.com.mikrotik:pvc-1".into(),
            access: RecordedAccess::Filesystem,
            device: "/dev/loop3".into(),
            staging_path: "/var/lib/kubelet/plugins/x/globalmount".into(),
            fs_type: Some("ext4".into()),
            mount_options: vec!["noatime".into()],
            read_only: false,
        }
    }

    #[test]
    fn records_round_trip_and_are_removed_idempotently() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StageRecords::open(tmp.path().join("state")).unwrap();
        assert_eq!(store.load("pvc-1").unwrap(), None);
        store.save(&record("pvc-1")).unwrap();
        store.save(&record("pvc/../2")).unwrap();
        assert_eq!(store.load("pvc-1").unwrap(), Some(record("pvc-1")));
        assert_eq!(store.load("pvc/../2").unwrap(), Some(record("pvc/../2")));
        let ids: Vec<String> = store
            .all()
            .unwrap()
            .into_iter()
            .map(|r| r.volume_id)
            .collect();
        assert_eq!(ids, ["pvc-1", "pvc/../2"]);
        store.remove("pvc-1").unwrap();
        store.remove("pvc-1").unwrap();
        assert_eq!(store.load("pvc-1").unwrap(), None);
        // Nothing escaped the store, and no temporary file was left behind.
        let names: Vec<String> = fs::read_dir(tmp.path().join("state/volumes"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["pvc%2F..%2F2.json"]);
    }

    #[test]
    fn encoding_is_injective_and_safe() {
        assert_eq!(encode_volume_id("pvc-1_a.b").unwrap(), "pvc-1_a.b");
        assert_eq!(encode_volume_id(".hidden").unwrap(), "%2Ehidden");
        assert_eq!(encode_volume_id("..").unwrap(), "%2E.");
        assert_ne!(
            encode_volume_id("a%2F").unwrap(),
            encode_volume_id("a/").unwrap()
        );
        assert_eq!(
            encode_volume_id("").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert!(encode_volume_id(&"a".repeat(201)).is_err());
    }

    #[test]
    fn a_damaged_record_counts_as_absent_and_a_misplaced_one_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StageRecords::open(tmp.path()).unwrap();
        fs::write(tmp.path().join("volumes/pvc-1.json"), b"").unwrap();
        assert_eq!(store.load("pvc-1").unwrap(), None);
        fs::write(tmp.path().join("volumes/pvc-1.json"), b"{not json").unwrap();
        assert_eq!(store.load("pvc-1").unwrap(), None);
        assert!(store.all().unwrap().is_empty());
        // A record that parses but names another volume was put there by hand: refuse it.
        let other = serde_json::to_vec(&record("pvc-9")).unwrap();
        fs::write(tmp.path().join("volumes/pvc-1.json"), other).unwrap();
        let err = store.load("pvc-1").unwrap_err();
        assert!(err.to_string().contains("pvc-1.json"), "{err}");
        // A new save replaces a damaged record.
        store.save(&record("pvc-1")).unwrap();
        assert_eq!(store.load("pvc-1").unwrap(), Some(record("pvc-1")));
    }

    #[test]
    fn a_record_is_read_whole_up_to_the_cap() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StageRecords::open(tmp.path()).unwrap();
        // Longer than what a read reserves up front: still read to its end.
        let mut long = record("pvc-1");
        long.mount_options = vec!["x".repeat(3 * crate::small_file::READ_CAPACITY)];
        store.save(&long).unwrap();
        assert_eq!(store.load("pvc-1").unwrap(), Some(long));
        // Past the cap it is not parsed at all: a damaged record, so absent.
        let mut huge = record("pvc-1");
        huge.mount_options = vec!["x".repeat(MAX_RECORD_BYTES as usize)];
        fs::write(
            tmp.path().join("volumes/pvc-1.json"),
            serde_json::to_vec(&huge).unwrap(),
        )
        .unwrap();
        assert_eq!(store.load("pvc-1").unwrap(), None);
        let err = read_json::<StageRecord>(&tmp.path().join("volumes/pvc-1.json")).unwrap_err();
        assert!(err.to_string().contains("larger than 65536 bytes"), "{err}");
    }

    #[test]
    fn format_intents_begin_and_end() {
        let tmp = tempfile::tempdir().unwrap();
        let store = StageRecords::open(tmp.path()).unwrap();
        let intent = FormatIntent {
            volume_id: "pvc-1".into(),
            nqn: "nqn.2000-02.com.mikrotik:pvc-1".into(),
            fs_type: "xfs".into(),
        };
        store.begin_format(&intent).unwrap();
        assert_eq!(store.format_intent("pvc-1").unwrap(), Some(intent));
        store.end_format("pvc-1").unwrap();
        assert_eq!(store.format_intent("pvc-1").unwrap(), None);
    }
}
