//! Doctor check that every external tool the helper runs is installed on its tool `PATH`.
//!
//! A missing `mkfs.xfs` only shows up the first time someone asks for an XFS volume, as a
//! failed NodeStage; the doctor finds it up front and names the Debian package that ships each
//! missing tool. The lookup follows the runner's rules (`external::TOOL_PATH`, absolute
//! directories only) but the directory list can be given, so tests can point it at fakes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::doctor::Check;
use crate::external::Tool;

/// Name of the check.
pub const TOOLS_CHECK: &str = "tools";

/// Every tool the helper may run.
pub const REQUIRED_TOOLS: [Tool; 6] = [
    Tool::MkfsExt4,
    Tool::MkfsXfs,
    Tool::Resize2fs,
    Tool::XfsGrowfs,
    Tool::Blkid,
    Tool::E2fsck,
];

/// The Debian package that ships `tool`.
pub fn debian_package(tool: Tool) -> &'static str {
    match tool {
        Tool::MkfsExt4 | Tool::Resize2fs | Tool::E2fsck => "e2fsprogs",
        Tool::MkfsXfs | Tool::XfsGrowfs => "xfsprogs",
        Tool::Blkid => "util-linux",
    }
}

/// The first executable regular file named `program` in the absolute directories of
/// `tool_path` (colon-separated; empty and relative entries are ignored, as the runner never
/// searches the working directory).
pub fn find_tool(tool_path: &str, program: &str) -> Option<PathBuf> {
    tool_path
        .split(':')
        .map(Path::new)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// Every required tool is found; a failure names each missing tool with its package.
pub fn tools(tool_path: &str) -> Check {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let mut packages: Vec<&str> = Vec::new();
    for tool in REQUIRED_TOOLS {
        let program = tool.program();
        match find_tool(tool_path, program) {
            Some(path) => found.push(path.display().to_string()),
            None => {
                let package = debian_package(tool);
                missing.push(format!("{program} (package {package})"));
                if !packages.contains(&package) {
                    packages.push(package);
                }
            }
        }
    }
    if missing.is_empty() {
        return Check::pass(TOOLS_CHECK, format!("found {}", found.join(", ")));
    }
    Check::fail(
        TOOLS_CHECK,
        format!("missing from {tool_path}: {}", missing.join(", ")),
        format!(
            "install them in the helper image: `apt-get install -y {}`",
            packages.join(" ")
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn finds_only_executable_files_in_absolute_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let first = tmp.path().join("first");
        let second = tmp.path().join("second");
        fs::create_dir_all(&first).unwrap();
        fs::create_dir_all(&second).unwrap();
        fs::write(first.join("blkid"), b"").unwrap();
        fs::set_permissions(first.join("blkid"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(second.join("blkid"), b"").unwrap();
        fs::set_permissions(second.join("blkid"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(first.join("e2fsck")).unwrap();
        let path = format!("::{}:{}", first.display(), second.display());
        assert_eq!(find_tool(&path, "blkid"), Some(second.join("blkid")));
        assert_eq!(find_tool(&path, "e2fsck"), None);
        assert_eq!(find_tool("", "blkid"), None);
    }

    #[test]
    fn the_required_tools_are_distinct() {
        let mut programs: Vec<_> = REQUIRED_TOOLS.iter().map(|t| t.program()).collect();
        programs.sort_unstable();
        programs.dedup();
        assert_eq!(programs.len(), REQUIRED_TOOLS.len());
    }
}
