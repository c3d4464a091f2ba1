//! What must hold after every trial, checked from the outside against what the CO (the trial)
//! believes exists: every disk on the appliance belongs to a live volume or snapshot and every
//! live one has exactly one disk; no `.img` without its disk; a loop device and a staging mount
//! only for each staged volume; a pod mount only for each published one; no socket but the
//! running components'; no more SSH connections to the appliance than the gateway's pool; and
//! the driver's own ListVolumes agrees.
//!
//! A trial first takes a [`Baseline`] (what an earlier trial may have left), so that one leak is
//! counted once, by the trial that made it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::e2e_support::{Bed, list_volume_ids};
use crate::leaks;
use crate::sim::state::{self, Paths};

/// The gateway's SSH session pool size (`--rds-max-sessions`, which the stack leaves at its
/// default of 4).
pub const GATEWAY_MAX_SESSIONS: usize = 4;

/// What was there before a trial.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    pub disks: BTreeSet<String>,
    pub images: BTreeSet<String>,
    pub loops: BTreeSet<String>,
    pub mounts: BTreeSet<String>,
}

/// What the trial believes exists now.
#[derive(Debug, Clone, Default)]
pub struct Belief {
    pub volumes: BTreeSet<String>,
    pub snapshots: BTreeSet<String>,
    /// Volume ids that are staged (one loop device each).
    pub staged: BTreeSet<String>,
    /// Paths that must be mounted exactly once (staging paths, pod paths).
    pub mounted: BTreeSet<PathBuf>,
}

/// What a check found.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// Left behind: disks, files, loop devices, mounts, sockets, connections nobody owns.
    pub leaks: Vec<String>,
    /// Gone although believed to exist: a disk, a mount, a loop device.
    pub lost: Vec<String>,
    /// The driver's own view disagrees, or a component does not serve.
    pub broken: Vec<String>,
}

impl Findings {
    pub fn is_clean(&self) -> bool {
        self.leaks.is_empty() && self.lost.is_empty() && self.broken.is_empty()
    }

    /// Adds `other`'s findings, each prefixed with `when`.
    pub fn merge(&mut self, when: &str, other: Findings) {
        let tag = |v: Vec<String>| v.into_iter().map(|x| format!("{when}: {x}"));
        self.leaks.extend(tag(other.leaks));
        self.lost.extend(tag(other.lost));
        self.broken.extend(tag(other.broken));
    }
}

/// The disks of the appliance at `sim_root`: slot -> backing files (one per disk).
fn disks(sim_root: &Path) -> Result<BTreeMap<String, Vec<PathBuf>>, String> {
    let st = state::load(&Paths::new(sim_root)).map_err(|e| e.to_string())?;
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for d in st.disks {
        out.entry(d.slot)
            .or_default()
            .push(sim_root.join(d.file_path.trim_start_matches('/')));
    }
    Ok(out)
}

/// The volume id a loop device line (`/dev/loopN -> <root>/.../<id>.img`) stands for.
fn loop_volume(line: &str) -> String {
    line.rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(" (deleted)")
        .trim_end_matches(".img")
        .to_string()
}

/// Takes the baseline of `bed`.
pub fn baseline(bed: &Bed) -> Baseline {
    let ep = &bed.ep;
    Baseline {
        disks: disks(&ep.sim_root)
            .map(|d| d.into_keys().collect())
            .unwrap_or_default(),
        images: leaks::images_under(&ep.sim_root).into_iter().collect(),
        loops: leaks::loops_under(&ep.sim_root).into_iter().collect(),
        mounts: leaks::mounts_under(&ep.kubelet_dir).into_iter().collect(),
    }
}

/// Checks `bed` against `belief`, ignoring what `base` already held.
pub async fn check(bed: &Bed, base: &Baseline, belief: &Belief) -> Findings {
    let mut f = Findings::default();
    let ep = &bed.ep;

    // Disks: exactly one per live volume and snapshot, none for anything else.
    match disks(&ep.sim_root) {
        Err(e) => f
            .broken
            .push(format!("cannot read the appliance's state: {e}")),
        Ok(disks) => {
            let live: BTreeSet<&String> = belief.volumes.iter().chain(&belief.snapshots).collect();
            for (slot, files) in &disks {
                if base.disks.contains(slot) {
                    continue;
                }
                if !live.contains(slot) {
                    f.leaks
                        .push(format!("disk {slot} belongs to no live volume or snapshot"));
                } else if files.len() > 1 {
                    f.leaks.push(format!(
                        "{} disks with slot {slot} (duplicate)",
                        files.len()
                    ));
                }
            }
            for slot in live {
                if !disks.contains_key(slot) {
                    f.lost
                        .push(format!("{slot} is believed to exist but has no disk"));
                }
            }
            // Files: every .img is some disk's backing file.
            let owned: BTreeSet<String> = disks
                .values()
                .flatten()
                .map(|p| p.display().to_string())
                .collect();
            for img in leaks::images_under(&ep.sim_root) {
                if !owned.contains(&img) && !base.images.contains(&img) {
                    f.leaks.push(format!("orphan file {img} (no disk uses it)"));
                }
            }
            for slot in &belief.volumes {
                if let Some(files) = disks.get(slot)
                    && files.iter().any(|p| !p.exists())
                {
                    f.lost
                        .push(format!("the backing file of {slot} is gone: {files:?}"));
                }
            }
        }
    }

    // Loop devices: one per staged volume.
    let mut loops: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in leaks::loops_under(&ep.sim_root) {
        if !base.loops.contains(&l) {
            loops.entry(loop_volume(&l)).or_default().push(l);
        }
    }
    for (vol, devs) in &loops {
        if !belief.staged.contains(vol) {
            f.leaks.push(format!(
                "loop device for {vol}, which is not staged: {devs:?}"
            ));
        } else if devs.len() > 1 {
            f.leaks
                .push(format!("{} loop devices for {vol}: {devs:?}", devs.len()));
        }
    }
    for vol in &belief.staged {
        if !loops.contains_key(vol) {
            f.lost
                .push(format!("{vol} is staged but has no loop device"));
        }
    }

    // Mounts under the kubelet directory: exactly once at each believed mount point.
    let mut mounts: BTreeMap<String, usize> = BTreeMap::new();
    for m in leaks::mounts_under(&ep.kubelet_dir) {
        *mounts.entry(m).or_default() += 1;
    }
    for (m, n) in &mounts {
        let believed = belief.mounted.contains(Path::new(m));
        if !believed && !base.mounts.contains(m) {
            f.leaks
                .push(format!("mount at {m} that nothing staged or published"));
        } else if believed && *n > 1 {
            f.leaks.push(format!("{n} mounts stacked at {m}"));
        }
    }
    for m in &belief.mounted {
        if !mounts.contains_key(&m.display().to_string()) {
            f.lost
                .push(format!("{} is believed mounted but is not", m.display()));
        }
    }

    // Sockets: only the running components'.
    let expected: BTreeSet<String> = [
        &ep.csi_socket,
        &ep.controller_socket,
        &ep.gateway_socket,
        &ep.helper_socket,
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect();
    let sockets: BTreeSet<String> = leaks::sockets_under(&bed.dir).into_iter().collect();
    for s in sockets.difference(&expected) {
        f.leaks.push(format!("socket {s} that no component serves"));
    }
    for s in expected.difference(&sockets) {
        f.broken
            .push(format!("no socket at {s}: its component does not serve"));
    }
    let sessions = leaks::tcp_connections_to(ep.sim_addr.port());
    if sessions > GATEWAY_MAX_SESSIONS {
        f.leaks.push(format!(
            "{sessions} TCP connections to the appliance, more than the gateway's pool of {GATEWAY_MAX_SESSIONS}"
        ));
    }

    // The driver's own view of the volumes.
    let mut listed = None;
    for _ in 0..20 {
        match list_volume_ids(&bed.csi, Duration::from_secs(10)).await {
            Ok(ids) => {
                listed = Some(ids);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    match listed {
        None => f
            .broken
            .push("ListVolumes did not answer within 20 attempts".to_string()),
        Some(ids) => {
            let ids: BTreeSet<String> = ids
                .into_iter()
                .filter(|i| !base.disks.contains(i))
                .collect();
            if ids != belief.volumes {
                f.broken.push(format!(
                    "ListVolumes reports {ids:?}, the CO believes in {:?}",
                    belief.volumes
                ));
            }
        }
    }
    f
}

/// Plants one of each leak [`check`] looks for — an orphan `.img`, a loop device on it, a mount
/// under the kubelet directory, a stray socket — and requires the check to report every one,
/// so that a clean table means the check looked, not that it was blind. Everything planted is
/// removed again.
pub async fn self_test(bed: &Bed) -> Result<(), String> {
    let base = baseline(bed);
    let id = format!("pvc-{}", uuid::Uuid::new_v4());
    let dir = bed
        .ep
        .sim_root
        .join(crate::stack::VOLUME_PATH.trim_start_matches('/'));
    let img = dir.join(format!("{id}.img"));
    let mnt = bed.ep.kubelet_dir.join("plugins/self-test/globalmount");
    let sock = bed.dir.join("sockets/self-test.sock");
    let io = |what: &str, e: std::io::Error| format!("self-test: {what}: {e}");
    std::fs::create_dir_all(&dir).map_err(|e| io("mkdir", e))?;
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(1 << 20))
        .map_err(|e| io("create the orphan .img", e))?;
    std::fs::create_dir_all(&mnt).map_err(|e| io("mkdir the mount point", e))?;
    nix::mount::mount(
        Some("tmpfs"),
        &mnt,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| format!("self-test: mount tmpfs at {}: {e}", mnt.display()))?;
    let listener = std::os::unix::net::UnixListener::bind(&sock).map_err(|e| io("bind", e));
    let attached = std::process::Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&img)
        .output()
        .map_err(|e| io("losetup", e))
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let f = check(bed, &base, &Belief::default()).await;
    // Undo before judging.
    if let Ok(dev) = &attached
        && !dev.is_empty()
    {
        let _ = std::process::Command::new("losetup")
            .args(["-d", dev])
            .status();
    }
    let _ = nix::mount::umount2(&mnt, nix::mount::MntFlags::MNT_DETACH);
    drop(listener);
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(&img);
    let expected = [
        ("the orphan .img", img.display().to_string()),
        ("the loop device", format!("loop device for {id}")),
        ("the stray mount", mnt.display().to_string()),
        ("the stray socket", sock.display().to_string()),
    ];
    let unseen: Vec<&str> = expected
        .iter()
        .filter(|(_, needle)| !f.leaks.iter().any(|l| l.contains(needle.as_str())))
        .map(|(what, _)| *what)
        .collect();
    if unseen.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the invariant check did not see {unseen:?} (it reported {:?})",
            f.leaks
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_lines_name_their_volume() {
        assert_eq!(
            loop_volume("/dev/loop3 -> /tmp/x/appliance/storage-pool/kubernetes-volumes/pvc-1.img"),
            "pvc-1"
        );
        assert_eq!(
            loop_volume("/dev/loop3 -> /tmp/x/appliance/pool/pvc-2.img (deleted)"),
            "pvc-2"
        );
    }

    #[test]
    fn merged_findings_carry_their_moment() {
        let mut all = Findings::default();
        assert!(all.is_clean());
        all.merge(
            "after teardown",
            Findings {
                leaks: vec!["mount x".into()],
                ..Findings::default()
            },
        );
        assert_eq!(all.leaks, vec!["after teardown: mount x".to_string()]);
        assert!(!all.is_clean());
    }
}
