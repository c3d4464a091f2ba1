//! Finding the workspace's built binaries from a test or a testbed process.
//!
//! Cargo puts every binary of the workspace in the same directory (`target/<profile>/`);
//! a test executable lives in its `deps/` subdirectory. The binaries must be built first
//! (`cargo build --workspace --bins`), which the test command does.

use std::path::PathBuf;

/// Why a binary could not be found.
#[derive(Debug, thiserror::Error)]
#[error(
    "binary {name} not found at {path}: build the workspace binaries first (cargo build --workspace --bins)"
)]
pub struct MissingBinary {
    pub name: String,
    pub path: PathBuf,
}

/// The path of the workspace binary `name` built with the same profile as the caller.
pub fn path(name: &str) -> Result<PathBuf, MissingBinary> {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let candidate = dir.join(name);
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(MissingBinary {
            name: name.to_string(),
            path: candidate,
        })
    }
}
