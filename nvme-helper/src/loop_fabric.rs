//! A `Fabric` made of loop devices, for running the whole driver on one machine.
//!
//! The testbed has no NVMe/TCP target: its RouterOS simulator keeps each disk as a sparse file
//! at `<root>/<file-path>`. With `--fabric loop --loop-backing-dir <root>`, "connecting" the NQN
//! `<prefix><slot>` (prefix = `--managed-nqn-prefix`, `nqn.2000-02.com.mikrotik:` by default)
//! attaches the file named `<slot>.img` found under the backing directory (searched
//! breadth-first, at most `MAX_SEARCH_DEPTH` directories deep, hidden directories such as the
//! simulator's `.rds-sim/` skipped, symbolic links not followed; two matches are refused) to a
//! free loop device, and the loop device plays the namespace block device. Everything above
//! the fabric (probe, mkfs, mount, publish, unstage) is the production code path.
//!
//! Sysfs is the only truth: an attachment is found again after a helper restart from
//! sysfs (`class/block/loopN/loop/backing_file` under the backing directory, named
//! `<slot>.img`), and `lo_file_name` carries the NQN (its first 63 bytes, all the field holds)
//! as a marker that the helper made the attachment. A loop device on one of our files without
//! that marker (someone ran `losetup` by hand) is never reused and never detached. A loop whose
//! kernel autoclear flag is set has had a detach requested while still open (a mount holds it):
//! it counts as "deleting", is no longer resolved as the NQN's device, and a new connect
//! attaches a fresh loop device, which is how a stale mount arises and is recovered in tests.
//! Loop connections report address 127.0.0.1 and port 0: there is no network behind them.
//!
//! Finding an NQN's loop device means reading the attributes of every loop device on the node;
//! a stage touches the fabric half a dozen times, so the helper keeps a hint, NQN → loop number,
//! set when it attaches or finds exactly one live attachment, and checks the hinted device alone
//! first. A hint is only a guess to verify: the device must still be attached to that NQN's file,
//! carry our marker and have no detach pending, or the hint is dropped and every loop device is
//! read again. It is lost with the process, and a restart simply starts by reading them all.
//!
//! A scan of every loop device (a `/metrics` scrape, a lookup without a hint) reads two
//! attributes of each through kept-open handles (`sysfs_handles`), and spreads the devices
//! over one thread per core when there are hundreds of them: with 1,000 volumes staged that
//! is what keeps a scrape within a few milliseconds. Given the kernel's `/proc/partitions`
//! (`with_partitions`, set when sysfs is the running kernel's own), a scan reads only the
//! loop devices listed there, the ones with a capacity (`partitions`): the detached devices a
//! busy node accumulates are never walked.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroUsize;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::connect_spec::ConnectSpec;
use crate::error::{HelperError, Result};
use crate::fabric::{Connection, Fabric, FabricFuture};
use crate::loop_device;
use crate::nqn::{Nqn, NqnPrefix};
use crate::partitions::{loop_number, read_sized_loops};
use crate::sysfs::{ControllerRef, ControllerState, list_dir};
use crate::sysfs_handles::AttrHandles;

/// How many directory levels below the backing directory are searched for `<slot>.img`.
pub const MAX_SEARCH_DEPTH: usize = 4;
/// Suffix of the simulator's disk files.
pub const BACKING_SUFFIX: &str = ".img";
/// sysfs polling interval while waiting for a detach.
const POLL: Duration = Duration::from_millis(20);
/// What the kernel appends to `backing_file` when the file was deleted while attached.
const DELETED_SUFFIX: &str = " (deleted)";
/// Loop devices one scan thread reads at least: below twice this, one thread reads them all.
const LOOPS_PER_THREAD: usize = 128;

/// One loop device attached to a file under the backing directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The `N` of `loopN`.
    pub number: u32,
    /// The backing file as the kernel reports it.
    pub backing_file: PathBuf,
    /// The NQN the file stands for.
    pub nqn: Nqn,
    /// The kernel will detach it at the last close (a detach was requested while it was open).
    pub detach_pending: bool,
}

impl Attachment {
    /// The controller state a loop attachment stands for: deleting once a detach is pending.
    pub fn state(&self) -> ControllerState {
        if self.detach_pending {
            ControllerState::Deleting
        } else {
            ControllerState::Live
        }
    }
}

/// The loop-device fabric.
#[derive(Debug)]
pub struct LoopFabric {
    backing_dir: PathBuf,
    prefix: NqnPrefix,
    sysfs_root: PathBuf,
    dev_root: PathBuf,
    connect_lock: tokio::sync::Mutex<()>,
    hints: Arc<Mutex<HashMap<Nqn, u32>>>,
    attrs: Arc<AttrHandles<(u32, LoopAttr)>>,
    partitions: Option<PathBuf>,
}

impl LoopFabric {
    /// A fabric serving the NQNs under `prefix` from files under `backing_dir` (which must
    /// exist), reading sysfs at `sysfs_root` and device nodes at `dev_root`.
    pub fn new(
        backing_dir: impl AsRef<Path>,
        prefix: NqnPrefix,
        sysfs_root: impl Into<PathBuf>,
        dev_root: impl Into<PathBuf>,
    ) -> Result<Self> {
        let dir = backing_dir.as_ref();
        let backing_dir = fs::canonicalize(dir).map_err(|source| HelperError::Io {
            operation: "resolve the loop backing directory",
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            backing_dir,
            prefix,
            sysfs_root: sysfs_root.into(),
            dev_root: dev_root.into(),
            connect_lock: tokio::sync::Mutex::new(()),
            hints: Arc::default(),
            attrs: Arc::new(AttrHandles::within_fd_limit()),
            partitions: None,
        })
    }

    /// Scans only the loop devices that `partitions` (the kernel's `/proc/partitions`) lists
    /// with a capacity; an unreadable file falls back to reading every loop device. Only for
    /// a sysfs root that is the running kernel's: the two must describe the same devices.
    pub fn with_partitions(mut self, partitions: impl Into<PathBuf>) -> Self {
        self.partitions = Some(partitions.into());
        self
    }

    /// The canonical backing directory.
    pub fn backing_dir(&self) -> &Path {
        &self.backing_dir
    }

    /// The slot an NQN names: the part after the managed prefix.
    pub fn slot<'a>(&self, nqn: &'a Nqn) -> Result<&'a str> {
        if !self.prefix.manages(nqn) {
            return Err(HelperError::InvalidNqn {
                nqn: nqn.to_string(),
                reason: format!(
                    "the loop fabric only serves NQNs under {}",
                    self.prefix.as_str()
                ),
            });
        }
        Ok(nqn
            .as_str()
            .get(self.prefix.as_str().len()..)
            .unwrap_or_default())
    }

    /// Finds the one file `<slot>.img` for `nqn` under the backing directory.
    pub fn find_backing_file(&self, nqn: &Nqn) -> Result<PathBuf> {
        let wanted = format!("{}{BACKING_SUFFIX}", self.slot(nqn)?);
        let mut found = Vec::new();
        let mut level = vec![self.backing_dir.clone()];
        for depth in 0..=MAX_SEARCH_DEPTH {
            let mut next = Vec::new();
            for dir in level {
                let entries = match fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(source) if depth == 0 => {
                        return Err(HelperError::Io {
                            operation: "list the loop backing directory",
                            path: dir,
                            source,
                        });
                    }
                    Err(error) => {
                        tracing::debug!(dir = %dir.display(), %error, "skipping unreadable directory");
                        continue;
                    }
                };
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    if name.as_bytes().starts_with(b".") {
                        continue;
                    }
                    let Ok(kind) = entry.file_type() else {
                        continue;
                    };
                    if kind.is_dir() {
                        next.push(entry.path());
                    } else if kind.is_file() && name.as_bytes() == wanted.as_bytes() {
                        found.push(entry.path());
                    }
                }
            }
            level = next;
        }
        match found.len() {
            0 => Err(HelperError::BackingFileNotFound {
                nqn: nqn.to_string(),
                file: wanted,
                dir: self.backing_dir.clone(),
            }),
            1 => Ok(found.swap_remove(0)),
            _ => {
                found.sort();
                Err(HelperError::BackingFileAmbiguous {
                    nqn: nqn.to_string(),
                    files: found,
                })
            }
        }
    }

    /// The NQN a backing file stands for, if it is one of ours.
    pub fn nqn_for_file(&self, file: &Path) -> Option<Nqn> {
        let relative = file.strip_prefix(&self.backing_dir).ok()?;
        let mut parts = 0;
        for component in relative.components() {
            let Component::Normal(part) = component else {
                return None;
            };
            if part.as_bytes().starts_with(b".") {
                return None;
            }
            parts += 1;
        }
        if parts == 0 || parts > MAX_SEARCH_DEPTH + 1 {
            return None;
        }
        let name = relative.file_name()?.to_str()?;
        let slot = name.strip_suffix(BACKING_SUFFIX)?;
        if slot.is_empty() {
            return None;
        }
        Nqn::new(format!("{}{slot}", self.prefix.as_str())).ok()
    }

    /// Every loop device attached to one of our files, from sysfs only.
    pub fn scan(&self) -> Result<Vec<Attachment>> {
        let sized = self.partitions.as_deref().and_then(read_sized_loops);
        let numbers: Vec<u32> = match sized {
            Some(sized) => sized.into_iter().collect(),
            None => list_dir(&self.class_block())?
                .unwrap_or_default()
                .iter()
                .filter_map(|name| loop_number(name))
                .collect(),
        };
        self.close_handles_of_removed(&numbers);
        // Asking for the core count reads the cgroup files: only worth it for a big scan.
        let threads = if numbers.len() < 2 * LOOPS_PER_THREAD {
            1
        } else {
            std::thread::available_parallelism()
                .map_or(1, NonZeroUsize::get)
                .min(numbers.len() / LOOPS_PER_THREAD)
                .max(1)
        };
        if threads == 1 {
            return Ok(self.attachments_among(&numbers));
        }
        let part = numbers.len().div_ceil(threads);
        Ok(std::thread::scope(|scope| {
            let workers: Vec<_> = numbers
                .chunks(part)
                .map(|some| {
                    let worker = std::thread::Builder::new()
                        .name("loop-scan".into())
                        .spawn_scoped(scope, || self.attachments_among(some));
                    (some, worker)
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|(some, worker)| {
                    // A thread that could not start (or failed) is made up for here.
                    match worker.map(|w| w.join()) {
                        Ok(Ok(found)) => found,
                        _ => self.attachments_among(some),
                    }
                })
                .collect()
        }))
    }

    fn attachments_among(&self, numbers: &[u32]) -> Vec<Attachment> {
        numbers
            .iter()
            .filter_map(|&number| self.attachment_at(number))
            .collect()
    }

    /// Closes the kept attribute handles of loop devices that no longer exist at all (a
    /// detached device's handles are closed when reading them fails); only checked when there
    /// are more handles than the listed devices can have.
    fn close_handles_of_removed(&self, numbers: &[u32]) {
        if self.attrs.len() <= 2 * numbers.len() {
            return;
        }
        let listed: HashSet<u32> = numbers.iter().copied().collect();
        self.attrs.retain(|(number, _)| listed.contains(number));
    }

    fn class_block(&self) -> PathBuf {
        self.sysfs_root.join("class").join("block")
    }

    /// `class/block/loopN/loop/<attr>`: present only while the device is attached.
    fn attr_path(&self, number: u32, attr: LoopAttr) -> PathBuf {
        let mut path = self.class_block();
        path.push(format!("loop{number}"));
        path.push("loop");
        path.push(attr.file_name());
        path
    }

    fn read_loop_attr(&self, number: u32, attr: LoopAttr) -> Result<String> {
        self.attrs
            .read((number, attr), || self.attr_path(number, attr))
    }

    /// Loop device `number`, if it is attached to one of our files (from sysfs only).
    fn attachment_at(&self, number: u32) -> Option<Attachment> {
        // An unattached loop device has no `loop/` directory.
        let text = self.read_loop_attr(number, LoopAttr::BackingFile).ok()?;
        let backing = PathBuf::from(text.strip_suffix(DELETED_SUFFIX).unwrap_or(&text));
        let nqn = self.nqn_for_file(&backing)?;
        let detach_pending = self
            .read_loop_attr(number, LoopAttr::Autoclear)
            .is_ok_and(|v| v == "1");
        Some(Attachment {
            number,
            backing_file: backing,
            nqn,
            detach_pending,
        })
    }

    fn hint(&self, nqn: &Nqn) -> Option<u32> {
        let hints = self.hints.lock().unwrap_or_else(PoisonError::into_inner);
        hints.get(nqn).copied()
    }

    fn remember(&self, nqn: &Nqn, number: u32) {
        let mut hints = self.hints.lock().unwrap_or_else(PoisonError::into_inner);
        hints.insert(nqn.clone(), number);
    }

    fn forget(&self, nqn: &Nqn) {
        let mut hints = self.hints.lock().unwrap_or_else(PoisonError::into_inner);
        hints.remove(nqn);
    }

    /// Whether loop `number` is a live attachment of ours for `nqn`: attached to its file, not
    /// detach-pending, carrying our marker.
    fn is_live_ours(&self, number: u32, nqn: &Nqn) -> Result<bool> {
        let Some(a) = self.attachment_at(number) else {
            return Ok(false);
        };
        if &a.nqn != nqn || a.detach_pending {
            return Ok(false);
        }
        Ok(
            loop_device::status(&self.dev_root, number)?.is_some_and(|s| {
                !s.detach_pending() && s.file_name == loop_device::truncate_name(nqn.as_str())
            }),
        )
    }

    fn attachments_of(&self, nqn: &Nqn) -> Result<Vec<Attachment>> {
        let mut all = self.scan()?;
        all.retain(|a| &a.nqn == nqn);
        Ok(all)
    }

    /// Whether loop `number` carries our marker for `nqn` (`None`: no longer attached).
    fn marked(&self, number: u32, nqn: &Nqn) -> Result<Option<bool>> {
        Ok(loop_device::status(&self.dev_root, number)?
            .map(|status| status.file_name == loop_device::truncate_name(nqn.as_str())))
    }

    /// Our live (not detach-pending, marked) attachments of `nqn`, and the foreign ones: the
    /// hinted device alone when it still is one, else from every loop device.
    fn live_of(&self, nqn: &Nqn) -> Result<LiveAttachments> {
        if let Some(number) = self.hint(nqn) {
            if self.is_live_ours(number, nqn)? {
                return Ok((vec![number], Vec::new()));
            }
            self.forget(nqn);
        }
        let (ours, foreign) = self.live_of_scanned(nqn)?;
        if let [only] = ours.as_slice() {
            self.remember(nqn, *only);
        }
        Ok((ours, foreign))
    }

    fn live_of_scanned(&self, nqn: &Nqn) -> Result<LiveAttachments> {
        let mut ours = Vec::new();
        let mut foreign = Vec::new();
        for a in self.attachments_of(nqn)? {
            if a.detach_pending {
                continue;
            }
            match loop_device::status(&self.dev_root, a.number)? {
                Some(s) if s.detach_pending() => {}
                Some(s) if s.file_name == loop_device::truncate_name(nqn.as_str()) => {
                    ours.push(a.number);
                }
                Some(s) => foreign.push((a.number, s.file_name)),
                None => {}
            }
        }
        Ok((ours, foreign))
    }

    fn node(&self, number: u32) -> PathBuf {
        loop_device::device_node(&self.dev_root, number)
    }

    async fn connect_impl(&self, spec: &ConnectSpec) -> Result<ControllerRef> {
        spec.validate()?;
        let _serial = self.connect_lock.lock().await;
        let (ours, foreign) = blocking("connecting", &spec.nqn, {
            let nqn = spec.nqn.clone();
            let me = self.snapshot();
            move || me.live_of(&nqn)
        })
        .await??;
        if let Some(&number) = ours.first() {
            tracing::debug!(nqn = %spec.nqn, device = %self.node(number).display(), "reusing loop attachment");
            return Ok(ControllerRef { instance: number });
        }
        if let Some((number, name)) = foreign.into_iter().next() {
            return Err(HelperError::ForeignAttachment {
                nqn: spec.nqn.to_string(),
                device: self.node(number),
                name,
            });
        }
        let me = self.snapshot();
        let nqn = spec.nqn.clone();
        let number = blocking("connecting", &spec.nqn, move || {
            let file = me.find_backing_file(&nqn)?;
            let number = loop_device::attach(&me.dev_root, &file, nqn.as_str())?;
            me.remember(&nqn, number);
            tracing::info!(%nqn, file = %file.display(), device = %me.node(number).display(), "attached loop device");
            Ok::<_, HelperError>(number)
        })
        .await??;
        Ok(ControllerRef { instance: number })
    }

    async fn disconnect_impl(&self, nqn: &Nqn, deadline: Instant) -> Result<usize> {
        self.forget(nqn);
        let me = self.snapshot();
        let owner = nqn.clone();
        let detached = blocking("disconnecting", nqn, move || {
            let mut detached = Vec::new();
            for a in me.attachments_of(&owner)? {
                match me.marked(a.number, &owner)? {
                    Some(true) if loop_device::detach(&me.dev_root, a.number)? => {
                        detached.push(a);
                    }
                    Some(true) => {}
                    Some(false) => {
                        tracing::warn!(nqn = %owner, device = %me.node(a.number).display(), "not detaching a loop device this helper did not attach");
                    }
                    None => {}
                }
            }
            Ok::<_, HelperError>(detached)
        })
        .await??;
        for a in &detached {
            loop {
                let still = self
                    .attachment_at(a.number)
                    .is_some_and(|b| b.backing_file == a.backing_file);
                if !still {
                    tracing::info!(%nqn, device = %self.node(a.number).display(), "detached loop device");
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    return Err(HelperError::DeadlineExceeded {
                        operation: "detaching the loop device of",
                        target: nqn.to_string(),
                    });
                }
                tokio::time::sleep(POLL.min(deadline - now)).await;
            }
        }
        Ok(detached.len())
    }

    /// A copy of the configuration for a blocking task.
    fn snapshot(&self) -> LoopFabricView {
        LoopFabricView(LoopFabric {
            backing_dir: self.backing_dir.clone(),
            prefix: self.prefix.clone(),
            sysfs_root: self.sysfs_root.clone(),
            dev_root: self.dev_root.clone(),
            connect_lock: tokio::sync::Mutex::new(()),
            hints: Arc::clone(&self.hints),
            attrs: Arc::clone(&self.attrs),
            partitions: self.partitions.clone(),
        })
    }

    fn connections_now(&self) -> Result<Vec<Connection>> {
        Ok(self
            .scan()?
            .into_iter()
            .map(|a| Connection {
                state: a.state(),
                nqn: a.nqn,
                controller: ControllerRef { instance: a.number },
                traddr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                trsvcid: 0,
            })
            .collect())
    }
}

/// The attributes of `class/block/loopN/loop/` the fabric reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LoopAttr {
    BackingFile,
    Autoclear,
}

impl LoopAttr {
    fn file_name(self) -> &'static str {
        match self {
            Self::BackingFile => "backing_file",
            Self::Autoclear => "autoclear",
        }
    }
}

/// Loop numbers attached by us, and `(number, lo_file_name)` of foreign attachments.
type LiveAttachments = (Vec<u32>, Vec<(u32, String)>);

/// A lock-free copy of a `LoopFabric` that can move into a blocking task.
struct LoopFabricView(LoopFabric);

impl std::ops::Deref for LoopFabricView {
    type Target = LoopFabric;
    fn deref(&self) -> &LoopFabric {
        &self.0
    }
}

async fn blocking<T: Send + 'static>(
    operation: &'static str,
    nqn: &Nqn,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    crate::offload::run(operation, nqn, work).await
}

impl Fabric for LoopFabric {
    fn connect<'a>(&'a self, spec: &'a ConnectSpec) -> FabricFuture<'a, ControllerRef> {
        Box::pin(self.connect_impl(spec))
    }

    fn resolve_device<'a>(&'a self, nqn: &'a Nqn) -> FabricFuture<'a, Option<PathBuf>> {
        Box::pin(async move {
            let me = self.snapshot();
            let owner = nqn.clone();
            let (mut ours, _) = blocking("resolving", nqn, move || me.live_of(&owner)).await??;
            match ours.len() {
                0 => Ok(None),
                1 => {
                    let node = self.node(ours.swap_remove(0));
                    Ok(node.exists().then_some(node))
                }
                _ => Err(HelperError::MultipleNamespaces {
                    nqn: nqn.to_string(),
                    devices: ours.into_iter().map(|n| format!("loop{n}")).collect(),
                }),
            }
        })
    }

    fn disconnect<'a>(&'a self, nqn: &'a Nqn, deadline: Instant) -> FabricFuture<'a, usize> {
        Box::pin(self.disconnect_impl(nqn, deadline))
    }

    fn connections(&self) -> FabricFuture<'_, Vec<Connection>> {
        Box::pin(async move { self.connections_now() })
    }

    fn rescan<'a>(&'a self, nqn: &'a Nqn) -> FabricFuture<'a, ()> {
        Box::pin(async move {
            let me = self.snapshot();
            let owner = nqn.clone();
            blocking("rescanning", nqn, move || {
                let (ours, _) = me.live_of(&owner)?;
                if ours.is_empty() {
                    return Err(HelperError::ControllerNotFound {
                        nqn: owner.to_string(),
                    });
                }
                for number in ours {
                    loop_device::set_capacity(&me.dev_root, number)?;
                }
                Ok(())
            })
            .await?
        })
    }

    fn namespace_devices<'a>(&'a self, nqn: &'a Nqn) -> FabricFuture<'a, Vec<PathBuf>> {
        Box::pin(async move {
            Ok(self
                .attachments_of(nqn)?
                .into_iter()
                .map(|a| self.node(a.number))
                .filter(|node| node.exists())
                .collect())
        })
    }

    fn scrape_connections(&self) -> Result<Vec<Connection>> {
        self.connections_now()
    }

    /// The hinted device alone when it is still a live attachment of ours (`[Live]`), else
    /// every attachment of `nqn` found by reading all loop devices.
    fn connection_states<'a>(&'a self, nqn: &'a Nqn) -> FabricFuture<'a, Vec<ControllerState>> {
        Box::pin(async move {
            let me = self.snapshot();
            let owner = nqn.clone();
            blocking("inspecting", nqn, move || {
                if let Some(number) = me.hint(&owner)
                    && me.is_live_ours(number, &owner)?
                {
                    return Ok(vec![ControllerState::Live]);
                }
                Ok(me
                    .attachments_of(&owner)?
                    .into_iter()
                    .map(|a| a.state())
                    .collect())
            })
            .await?
        })
    }

    /// The loop devices can be listed (reading each one is what a scrape does).
    fn check_readable(&self) -> Result<()> {
        // Opening the directory proves it readable; listing it (1,000 names on a node that
        // once staged 1,000 volumes: even the first getdents formats them all) was most of
        // a Health call.
        let dir = self.class_block();
        let unreadable = |source| HelperError::SysfsDir {
            path: dir.clone(),
            source,
        };
        let opened = fs::File::open(&dir).map_err(unreadable)?;
        if opened.metadata().map_err(unreadable)?.is_dir() {
            Ok(())
        } else {
            Err(unreadable(std::io::ErrorKind::NotADirectory.into()))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::fake_sysfs::FakeSysfs;

    const PREFIX: &str = "nqn.2000-02.com.mikrotik:";

    fn fabric(dir: &Path, sysfs: &Path) -> LoopFabric {
        LoopFabric::new(
            dir,
            NqnPrefix::new(PREFIX).unwrap(),
            sysfs,
            "/nonexistent-dev",
        )
        .unwrap()
    }

    /// A loop fabric over an empty backing dir (`<tmp>/rds`) and an empty fake sysfs tree.
    fn on_fake_sysfs() -> (tempfile::TempDir, PathBuf, FakeSysfs, LoopFabric) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rds");
        fs::create_dir_all(&root).unwrap();
        let fake = FakeSysfs::create(tmp.path().join("sys")).unwrap();
        let f = fabric(&root, fake.root());
        (tmp, root, fake, f)
    }

    fn nqn(slot: &str) -> Nqn {
        Nqn::new(format!("{PREFIX}{slot}")).unwrap()
    }

    #[test]
    fn finds_the_one_backing_file_of_a_slot_and_refuses_to_guess() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rds");
        fs::create_dir_all(root.join("storage-pool/kubernetes-volumes")).unwrap();
        fs::create_dir_all(root.join(".rds-sim")).unwrap();
        let img = root.join("storage-pool/kubernetes-volumes/pvc-1.img");
        fs::write(&img, b"").unwrap();
        // Hidden directories are not searched.
        fs::write(root.join(".rds-sim/pvc-2.img"), b"").unwrap();
        let f = fabric(&root, tmp.path());
        let canonical = fs::canonicalize(&img).unwrap();
        assert_eq!(f.find_backing_file(&nqn("pvc-1")).unwrap(), canonical);
        let err = f.find_backing_file(&nqn("pvc-2")).unwrap_err();
        assert!(
            matches!(err, HelperError::BackingFileNotFound { .. }),
            "{err}"
        );
        assert_eq!(err.code(), tonic::Code::NotFound);

        fs::write(root.join("storage-pool/pvc-1.img"), b"").unwrap();
        let err = f.find_backing_file(&nqn("pvc-1")).unwrap_err();
        match &err {
            HelperError::BackingFileAmbiguous { files, .. } => assert_eq!(files.len(), 2),
            other => panic!("expected ambiguity, got {other}"),
        }

        let foreign = Nqn::new("nqn.2014-08.org.nvmexpress:uuid:x").unwrap();
        assert_eq!(
            f.find_backing_file(&foreign).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn search_depth_is_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rds");
        let mut deep = root.clone();
        for i in 0..=MAX_SEARCH_DEPTH {
            deep = deep.join(format!("d{i}"));
        }
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("pvc-deep.img"), b"").unwrap();
        let f = fabric(&root, tmp.path());
        assert!(f.find_backing_file(&nqn("pvc-deep")).is_err());
        assert_eq!(
            f.nqn_for_file(
                &f.backing_dir()
                    .join(deep.strip_prefix(&root).unwrap())
                    .join("pvc-deep.img")
            ),
            None
        );
    }

    #[test]
    fn maps_files_back_to_nqns_only_inside_the_backing_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rds");
        fs::create_dir_all(&root).unwrap();
        let f = fabric(&root, tmp.path());
        let base = f.backing_dir().to_path_buf();
        assert_eq!(
            f.nqn_for_file(&base.join("storage-pool/pvc-7.img")),
            Some(nqn("pvc-7"))
        );
        assert_eq!(f.nqn_for_file(&base.join("storage-pool/pvc-7.raw")), None);
        assert_eq!(f.nqn_for_file(&base.join(".rds-sim/pvc-7.img")), None);
        assert_eq!(f.nqn_for_file(&base.join("pool/PVC.img")), None);
        assert_eq!(f.nqn_for_file(&base.join("pool/.img")), None);
        assert_eq!(f.nqn_for_file(Path::new("/elsewhere/pvc-7.img")), None);
    }

    #[test]
    fn scan_reads_attachments_and_pending_detaches_from_sysfs() {
        let (_tmp, _root, fake, f) = on_fake_sysfs();
        let base = f.backing_dir().to_path_buf();
        let add = |name: &str, backing: Option<String>, autoclear: &str| {
            fake.add_block_device(name, 2048).unwrap();
            if let Some(b) = backing {
                fake.write_file(
                    &format!("class/block/{name}/loop/backing_file"),
                    format!("{b}\n").as_bytes(),
                )
                .unwrap();
                fake.write_file(
                    &format!("class/block/{name}/loop/autoclear"),
                    format!("{autoclear}\n").as_bytes(),
                )
                .unwrap();
            }
        };
        add(
            "loop0",
            Some(format!("{}/pool/pvc-1.img", base.display())),
            "0",
        );
        add(
            "loop1",
            Some(format!("{}/pool/pvc-2.img (deleted)", base.display())),
            "1",
        );
        add("loop2", Some("/var/lib/other/disk.img".into()), "0");
        add("loop3", None, "0");
        add("vda", None, "0");
        let scan = f.scan().unwrap();
        assert_eq!(
            scan,
            vec![
                Attachment {
                    number: 0,
                    backing_file: base.join("pool/pvc-1.img"),
                    nqn: nqn("pvc-1"),
                    detach_pending: false,
                },
                Attachment {
                    number: 1,
                    backing_file: base.join("pool/pvc-2.img"),
                    nqn: nqn("pvc-2"),
                    detach_pending: true,
                },
            ]
        );
        let conns = f.scrape_connections().unwrap();
        assert_eq!(conns.len(), 2);
        assert_eq!(conns[0].state, ControllerState::Live);
        assert_eq!(conns[1].state, ControllerState::Deleting);

        // Without a hint, one volume's states come from the same scan.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let states = |slot: &str| rt.block_on(f.connection_states(&nqn(slot))).unwrap();
        assert_eq!(states("pvc-1"), vec![ControllerState::Live]);
        assert_eq!(states("pvc-2"), vec![ControllerState::Deleting]);
        assert_eq!(states("pvc-9"), Vec::<ControllerState>::new());
    }

    #[test]
    fn with_partitions_a_scan_reads_only_the_sized_loop_devices() {
        let (tmp, _root, fake, f) = on_fake_sysfs();
        let base = f.backing_dir().to_path_buf();
        for n in 0..4 {
            fake.add_block_device(&format!("loop{n}"), 2048).unwrap();
            fake.write_file(
                &format!("class/block/loop{n}/loop/backing_file"),
                format!("{}/pvc-{n}.img\n", base.display()).as_bytes(),
            )
            .unwrap();
        }
        let numbers = |f: &LoopFabric| -> Vec<u32> {
            f.scan().unwrap().into_iter().map(|a| a.number).collect()
        };
        assert_eq!(numbers(&f), [0, 1, 2, 3]);
        // The kernel lists loop1 and loop3 (and a device that sysfs does not have): only
        // they are read.
        let partitions = tmp.path().join("partitions");
        fs::write(
            &partitions,
            "major minor  #blocks  name\n\n 7 1 1024 loop1\n 7 3 1024 loop3\n 7 8 1024 loop8\n",
        )
        .unwrap();
        let listed = f.snapshot().0.with_partitions(&partitions);
        assert_eq!(numbers(&listed), [1, 3]);
        // An unreadable list is no list: every loop device is read again.
        let missing = f.snapshot().0.with_partitions(tmp.path().join("missing"));
        assert_eq!(numbers(&missing), [0, 1, 2, 3]);
    }

    #[test]
    fn health_needs_the_block_class_directory_and_nothing_more() {
        let (tmp, root, fake, f) = on_fake_sysfs();
        fake.add_block_device("loop0", 2048).unwrap();
        f.check_readable().unwrap();

        let missing = fabric(&root, &tmp.path().join("no-sysfs"));
        let err = missing.check_readable().unwrap_err();
        assert!(
            matches!(&err, HelperError::SysfsDir { path, .. } if path.ends_with("class/block")),
            "{err}"
        );
    }
}
