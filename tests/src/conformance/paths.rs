//! Fresh staging and target paths for one case, laid out under the kubelet directory the
//! way kubelet lays them out, and removed again when the case ends.
//!
//! As with a CO, the staging directory is created here, while for a target only the parent
//! is created: the plugin creates (and on NodeUnpublishVolume removes) the target itself.
//! Teardown never deletes recursively: a directory that is still mounted or not empty is
//! reported instead of emptied, so a leaked mount can never lose data through the suite.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::leaks;

/// Makes and later removes the paths of one case.
#[derive(Debug)]
pub struct PathMaker {
    kubelet: PathBuf,
    driver: String,
    tag: String,
    state: Mutex<Made>,
}

#[derive(Debug, Default)]
struct Made {
    n: usize,
    /// Directories this maker created, parents first.
    dirs: Vec<PathBuf>,
    /// Targets handed out (created by the plugin, if at all).
    targets: Vec<PathBuf>,
}

impl PathMaker {
    /// A maker for the case tagged `tag` (a short, path-safe text).
    pub fn new(kubelet: &Path, driver: &str, tag: &str) -> PathMaker {
        PathMaker {
            kubelet: kubelet.to_path_buf(),
            driver: driver.to_string(),
            tag: tag.to_string(),
            state: Mutex::new(Made::default()),
        }
    }

    fn next(&self) -> usize {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.n += 1;
        s.n
    }

    /// Creates every missing directory of `path`, recording each one created.
    fn make_dirs(&self, path: &Path) -> Result<(), String> {
        let mut missing = Vec::new();
        let mut p = path.to_path_buf();
        while !p.exists() {
            missing.push(p.clone());
            if !p.pop() {
                break;
            }
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for d in missing.into_iter().rev() {
            std::fs::create_dir(&d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
            s.dirs.push(d);
        }
        Ok(())
    }

    /// A new, existing, empty staging directory.
    pub fn staging(&self) -> Result<String, String> {
        let n = self.next();
        let dir = self
            .kubelet
            .join("plugins/kubernetes.io/csi")
            .join(&self.driver)
            .join(format!("{}-{n}", self.tag))
            .join("globalmount");
        self.make_dirs(&dir)?;
        Ok(dir.display().to_string())
    }

    /// A new target path whose parent exists and which itself does not.
    pub fn target(&self) -> Result<String, String> {
        let n = self.next();
        let parent = self
            .kubelet
            .join("pods")
            .join(format!("{}-{n}", self.tag))
            .join("volumes/kubernetes.io~csi")
            .join(format!("pv-{n}"));
        self.make_dirs(&parent)?;
        let target = parent.join("mount");
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .targets
            .push(target.clone());
        Ok(target.display().to_string())
    }

    /// Removes what the case left of its paths; returns what could not be removed.
    pub fn teardown(&self) -> Vec<String> {
        let made = std::mem::take(&mut *self.state.lock().unwrap_or_else(|e| e.into_inner()));
        let mut problems = Vec::new();
        for t in &made.targets {
            if !leaks::mounts_under(t).is_empty() {
                problems.push(format!("{} is still mounted", t.display()));
                continue;
            }
            let removed = match std::fs::symlink_metadata(t) {
                Err(_) => Ok(()),
                Ok(m) if m.is_dir() => std::fs::remove_dir(t),
                Ok(_) => std::fs::remove_file(t),
            };
            if let Err(e) = removed {
                problems.push(format!("cannot remove target {}: {e}", t.display()));
            }
        }
        for d in made.dirs.iter().rev() {
            if !leaks::mounts_under(d).is_empty() {
                problems.push(format!("{} is still mounted", d.display()));
                continue;
            }
            match std::fs::remove_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => problems.push(format!("cannot remove {}: {e}", d.display())),
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn paths_live_under_the_kubelet_dir_and_are_removed_again() {
        let dir = tempfile::tempdir().unwrap();
        let kubelet = dir.path().join("kubelet");
        std::fs::create_dir(&kubelet).unwrap();
        let m = PathMaker::new(&kubelet, "rds.csi.srvlab.io", "case-7");
        let staging = PathBuf::from(m.staging().unwrap());
        let target = PathBuf::from(m.target().unwrap());
        assert!(staging.starts_with(&kubelet) && staging.is_dir());
        assert!(target.starts_with(&kubelet));
        assert!(!target.exists() && target.parent().unwrap().is_dir());
        assert_ne!(staging, PathBuf::from(m.staging().unwrap()));
        // The plugin created the target; teardown removes it and every directory made.
        std::fs::create_dir(&target).unwrap();
        assert!(m.teardown().is_empty());
        assert_eq!(std::fs::read_dir(&kubelet).unwrap().count(), 0);
    }

    #[test]
    fn a_non_empty_directory_is_reported_not_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let m = PathMaker::new(dir.path(), "d", "t");
        let staging = PathBuf::from(m.staging().unwrap());
        std::fs::write(staging.join("data"), b"keep").unwrap();
        let problems = m.teardown();
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&staging.display().to_string())),
            "{problems:?}"
        );
        assert!(staging.join("data").exists());
    }
}
