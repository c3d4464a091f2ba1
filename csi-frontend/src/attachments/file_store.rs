//! The attachment table in a JSON file, for a controller outside Kubernetes (the testbed, a
//! single machine).
//!
//! Every change rewrites the whole file atomically: write a temporary file beside it, fsync
//! it, rename it over the old one, fsync the directory. A crash leaves either the old or the
//! new table, never a torn one. A missing file is an empty table; an unreadable or corrupt
//! one stops the controller at start-up, because guessing would let a second node attach a
//! single-node volume.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Store, Table};
use crate::ids::{NodeId, VolumeId};

/// Format version written in the file.
const VERSION: u32 = 1;

/// Why the state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read attachment state {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("attachment state {path} is not valid JSON: {source}; fix or move the file away")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("attachment state {path} has format version {found}, this frontend reads {VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("attachment state {path} is inconsistent: {reason}; fix or move the file away")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write attachment state {path} ({step}): {source}")]
    Write {
        path: PathBuf,
        step: &'static str,
        source: std::io::Error,
    },
    #[error("cannot list VolumeAttachments: {0}")]
    Kubernetes(String),
    #[error("the state writer stopped: {0}")]
    Task(String),
}

#[derive(Serialize, Deserialize)]
struct Document {
    version: u32,
    #[serde(flatten)]
    table: Table,
}

/// A JSON file holding the table.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileStore { path: path.into() }
    }

    /// Parses the `--attachment-store` value: `file:/absolute/path.json`.
    pub fn from_flag(raw: &str) -> Result<FileStore, String> {
        let path = raw.strip_prefix("file:").ok_or_else(|| {
            format!("attachment store {raw:?} is not of the form file:/absolute/path.json")
        })?;
        if !path.starts_with('/') || path.ends_with('/') {
            return Err(format!(
                "attachment store {raw:?}: the path must be an absolute file path"
            ));
        }
        Ok(FileStore::new(path))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the table; a missing file is an empty table.
    pub fn load(&self) -> Result<Table, StoreError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Table::default()),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let doc: Document = serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse {
            path: self.path.clone(),
            source,
        })?;
        if doc.version != VERSION {
            return Err(StoreError::Version {
                path: self.path.clone(),
                found: doc.version,
            });
        }
        check(&doc.table).map_err(|reason| StoreError::Corrupt {
            path: self.path.clone(),
            reason,
        })?;
        Ok(doc.table)
    }

    fn write(&self, table: &Table) -> Result<(), StoreError> {
        let err = |step: &'static str| {
            let path = self.path.clone();
            move |source| StoreError::Write { path, step, source }
        };
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("/"));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err("create its directory"))?;
        let doc = Document {
            version: VERSION,
            table: table.clone(),
        };
        let body = serde_json::to_vec_pretty(&doc).map_err(|e| StoreError::Write {
            path: self.path.clone(),
            step: "encode",
            source: std::io::Error::other(e),
        })?;
        let mut tmp_name = self.path.clone().into_os_string();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err("create the temporary file"))?;
        f.write_all(&body)
            .map_err(err("write the temporary file"))?;
        f.sync_all().map_err(err("fsync the temporary file"))?;
        drop(f);
        fs::rename(&tmp, &self.path).map_err(err("rename the temporary file"))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err("fsync the directory"))?;
        Ok(())
    }
}

impl Store for FileStore {
    fn save(&self, table: &Table) -> Result<(), StoreError> {
        self.write(table)
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// Checks that a loaded table is one this frontend could have written.
fn check(table: &Table) -> Result<(), String> {
    for (volume, rec) in &table.volumes {
        VolumeId::parse("volume id", volume).map_err(|e| e.to_string())?;
        if rec.nodes.is_empty() || rec.nodes.len() > 2 {
            return Err(format!(
                "volume {volume} has {} attachments (1 or 2 expected)",
                rec.nodes.len()
            ));
        }
        if rec.nodes.len() == 2 && rec.sharing != super::Sharing::Migratable {
            return Err(format!(
                "single-node volume {volume} is attached to two nodes"
            ));
        }
        for a in &rec.nodes {
            NodeId::parse(&a.node).map_err(|e| format!("volume {volume}: {e}"))?;
        }
        if let [x, y] = rec.nodes.as_slice()
            && x.node == y.node
        {
            return Err(format!("volume {volume} lists node {} twice", x.node));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::{Attachments, PublishRequest, Sharing};
    use super::*;
    use std::sync::Arc;

    fn vol(n: u8) -> VolumeId {
        VolumeId::parse(
            "volume_id",
            &format!("pvc-0000000{n}-2222-3333-4444-555555555555"),
        )
        .unwrap()
    }

    #[test]
    fn flag_form() {
        assert_eq!(
            FileStore::from_flag("file:/var/lib/rds-csi/a.json")
                .unwrap()
                .path(),
            Path::new("/var/lib/rds-csi/a.json")
        );
        for bad in [
            "/var/lib/a.json",
            "file:relative.json",
            "file:/dir/",
            "s3:/x",
        ] {
            assert!(FileStore::from_flag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_missing_file_is_an_empty_table() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::new(dir.path().join("nope/state.json"));
        assert_eq!(s.load().unwrap(), Table::default());
    }

    #[tokio::test]
    async fn restart_rebuilds_the_same_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/attachments.json");
        let store = Arc::new(FileStore::new(&path));
        let att = Attachments::new(store.load().unwrap(), store.clone());
        let (v1, v2) = (vol(1), vol(2));
        let (a, b) = (
            NodeId::parse("node-a").unwrap(),
            NodeId::parse("node-b").unwrap(),
        );
        let publish = |v, n, sharing| PublishRequest {
            volume: v,
            node: n,
            sharing,
            read_only: false,
            migration_timeout_secs: 300,
        };
        att.publish(publish(&v1, &a, Sharing::SingleNode))
            .await
            .unwrap();
        att.publish(publish(&v2, &a, Sharing::Migratable))
            .await
            .unwrap();
        att.publish(publish(&v2, &b, Sharing::Migratable))
            .await
            .unwrap();
        let before = att.snapshot();
        drop(att);

        // A new process: the table is the same, and so are the rules it implies.
        let reloaded = Attachments::new(store.load().unwrap(), store.clone());
        assert_eq!(reloaded.snapshot(), before);
        assert_eq!(reloaded.attached_volumes(), 2);
        assert!(
            reloaded
                .publish(publish(&v1, &b, Sharing::SingleNode))
                .await
                .is_err(),
            "the RWO conflict survives a restart"
        );
        // No temporary file is left behind, and the file is private.
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        assert!(!Path::new(&tmp).exists());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Unpublishing everything is durable too.
        reloaded.unpublish(&v1, None).await.unwrap();
        reloaded.unpublish(&v2, None).await.unwrap();
        assert_eq!(store.load().unwrap(), Table::default());
    }

    #[test]
    fn corrupt_or_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let s = FileStore::new(&path);
        fs::write(&path, "{not json").unwrap();
        assert!(matches!(s.load(), Err(StoreError::Parse { .. })));
        fs::write(&path, r#"{"version": 2, "volumes": {}}"#).unwrap();
        assert!(matches!(
            s.load(),
            Err(StoreError::Version { found: 2, .. })
        ));
        let two_on_rwo = r#"{"version":1,"volumes":{"pvc-00000001-2222-3333-4444-555555555555":
            {"sharing":"single-node","migration_timeout_secs":300,"nodes":[
              {"node":"a","read_only":false,"attached_at":1},
              {"node":"b","read_only":false,"attached_at":2}]}}}"#;
        fs::write(&path, two_on_rwo).unwrap();
        assert!(matches!(s.load(), Err(StoreError::Corrupt { .. })));
        let bad_id = r#"{"version":1,"volumes":{"../etc":
            {"sharing":"single-node","migration_timeout_secs":300,"nodes":[
              {"node":"a","read_only":false,"attached_at":1}]}}}"#;
        fs::write(&path, bad_id).unwrap();
        assert!(matches!(s.load(), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn unwritable_location_is_a_write_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "x").unwrap();
        let s = FileStore::new(blocker.join("state.json"));
        assert!(matches!(
            s.save(&Table::default()),
            Err(StoreError::Write { .. })
        ));
    }
}
