//! The appliance's persistent configuration: the file disks, kept in `<root>/.rds-sim/state.json`
//! and written atomically (temporary file + rename) so that a restarted simulator, like a
//! rebooted appliance, still has its disks. Every change happens under an exclusive `flock` on
//! `<root>/.rds-sim/lock`, which the SSH server and the one-shot `exec` mode share.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::error::SimError;
use super::storage::META_DIR;

/// The first internal id given to a file disk (lower ids are the pool and its members).
pub const FIRST_DISK_ID: u32 = 0x10;

/// A file disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// Internal id; the order of ids is the order of creation and of the print index.
    pub id: u32,
    pub slot: String,
    /// Backing file, relative to the root, no leading `/`.
    pub file_path: String,
    pub file_size: u64,
    pub export: bool,
    pub port: Option<u16>,
    pub nqn: Option<String>,
    #[serde(default)]
    pub allow_host: String,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default = "yes")]
    pub mount_filesystem: bool,
}

fn yes() -> bool {
    true
}

/// Everything persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub next_id: u32,
    pub disks: Vec<Disk>,
}

impl Default for State {
    fn default() -> Self {
        State {
            next_id: FIRST_DISK_ID,
            disks: Vec::new(),
        }
    }
}

impl State {
    /// Takes the next internal id.
    pub fn allocate_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        id
    }
}

/// Where a simulator keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    pub fn new(root: impl Into<PathBuf>) -> Paths {
        Paths { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn meta(&self) -> PathBuf {
        self.root.join(META_DIR)
    }

    pub fn state(&self) -> PathBuf {
        self.meta().join("state.json")
    }

    pub fn lock(&self) -> PathBuf {
        self.meta().join("lock")
    }

    pub fn faults(&self) -> PathBuf {
        self.meta().join("faults.json")
    }

    pub fn commands_log(&self) -> PathBuf {
        self.meta().join("commands.log")
    }

    pub fn host_key(&self) -> PathBuf {
        self.meta().join("host_key")
    }

    pub fn host_key_pub(&self) -> PathBuf {
        self.meta().join("host_key.pub")
    }
}

/// An exclusive hold on a simulator's state, released when dropped.
pub struct StateLock {
    _lock: Flock<File>,
}

/// Waits for the exclusive lock of the simulator at `paths`.
pub fn lock(paths: &Paths) -> Result<StateLock, SimError> {
    let path = paths.lock();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| SimError::Io {
            path: path.clone(),
            source,
        })?;
    let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| SimError::Io {
        path,
        source: errno.into(),
    })?;
    Ok(StateLock { _lock: lock })
}

/// Reads the state; a missing file is an empty appliance.
pub fn load(paths: &Paths) -> Result<State, SimError> {
    let path = paths.state();
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SimError::State {
            path,
            detail: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(source) => Err(SimError::Io { path, source }),
    }
}

/// Writes the state atomically.
pub fn store(paths: &Paths, state: &State) -> Result<(), SimError> {
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| SimError::State {
        path: paths.state(),
        detail: e.to_string(),
    })?;
    write_atomically(&paths.state(), &bytes)
}

/// Replaces `path` with `bytes` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SimError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let io = |source| SimError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn state_round_trips_and_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        fs::create_dir_all(paths.meta()).unwrap();
        assert_eq!(load(&paths).unwrap(), State::default());
        let _guard = lock(&paths).unwrap();
        let mut state = State::default();
        let id = state.allocate_id();
        state.disks.push(Disk {
            id,
            slot: "pvc-1".into(),
            file_path: "storage-pool/pvc-1.img".into(),
            file_size: 1 << 30,
            export: true,
            port: Some(4420),
            nqn: Some("nqn.2000-02.com.mikrotik:pvc-1".into()),
            allow_host: String::new(),
            comment: Some("c".into()),
            mount_filesystem: true,
        });
        store(&paths, &state).unwrap();
        assert_eq!(load(&paths).unwrap(), state);
        assert_eq!(load(&paths).unwrap().next_id, FIRST_DISK_ID + 1);
        // no temporary files left behind
        let names: Vec<_> = fs::read_dir(paths.meta())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
    }

    #[test]
    fn corrupt_state_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        fs::create_dir_all(paths.meta()).unwrap();
        fs::write(paths.state(), "{not json").unwrap();
        assert!(matches!(load(&paths), Err(SimError::State { .. })));
    }
}
