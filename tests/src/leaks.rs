//! What a run may leave behind, looked for from the outside: mounts under the testbed's
//! directories, loop devices backed by the simulated appliance's files, `.img` files and
//! disks on the appliance. The suites assert the list is empty after a teardown.

use std::path::Path;

/// Mount points (from `/proc/self/mountinfo`) at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return vec!["cannot read /proc/self/mountinfo".into()];
    };
    let prefix = dir.display().to_string();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Loop devices whose backing file lies under `dir`.
pub fn loops_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("loop") {
                return None;
            }
            let backing = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            let backing = backing.trim();
            backing
                .starts_with(&prefix)
                .then(|| format!("/dev/{name} -> {backing}"))
        })
        .collect()
}

/// `.img` files anywhere under `dir`.
pub fn images_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "img") {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

/// Everything a stack rooted at `state_dir` (appliance under `sim_root`, kubelet paths
/// under `kubelet_dir`) has left behind.
pub fn all(sim_root: &Path, kubelet_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(
        mounts_under(kubelet_dir)
            .into_iter()
            .map(|m| format!("mount {m}")),
    );
    out.extend(
        mounts_under(sim_root)
            .into_iter()
            .map(|m| format!("mount {m}")),
    );
    out.extend(
        loops_under(sim_root)
            .into_iter()
            .map(|l| format!("loop {l}")),
    );
    out.extend(
        images_under(sim_root)
            .into_iter()
            .map(|i| format!("file {i}")),
    );
    out
}

/// Removes what [`all`] would report: lazily unmounts leftover mounts (deepest first) and
/// detaches leftover loop devices. Used by `testbed up` on exit, after the components
/// have stopped, and by suites after a deliberately crashed run.
pub fn force_clean(sim_root: &Path, kubelet_dir: &Path) {
    let mut mounts = mounts_under(kubelet_dir);
    mounts.extend(mounts_under(sim_root));
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    for l in loops_under(sim_root) {
        if let Some(dev) = l.split(' ').next() {
            let _ = std::process::Command::new("losetup")
                .args(["-d", dev])
                .status();
        }
    }
}

/// Unix socket files at or below `dir` (a component that stopped cleanly removes its own).
pub fn sockets_under(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(e.path());
            } else if kind.is_socket() {
                out.push(e.path().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// How many established TCP connections (IPv4 and IPv6) have `port` as their remote port:
/// the client ends of the connections to a local server on `port`.
pub fn tcp_connections_to(port: u16) -> usize {
    let want = format!("{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .map(|text| {
            text.lines()
                .skip(1)
                .filter(|l| {
                    // `sl local_address rem_address st ...`, addresses as `HEX:PORT`.
                    let cols: Vec<&str> = l.split_whitespace().collect();
                    cols.len() > 3
                        && cols[3] == "01"
                        && cols[2].rsplit(':').next() == Some(want.as_str())
                })
                .count()
        })
        .sum()
}
