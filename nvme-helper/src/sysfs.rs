//! Read-only view of the NVMe part of sysfs, rooted at a configurable directory (`--sysfs-root`).
//!
//! sysfs is the kernel's authoritative answer to "is this NQN connected, and which block device is
//! it?". Controllers (`class/nvme/nvmeN`) and disks (`nvmeXnY` without multipath, `nvmeMnZ` under
//! `class/nvme-subsystem/nvme-subsysK` with native multipath) are numbered independently, and
//! the numbers change when a controller is deleted and re-created, so every lookup here goes by
//! NQN and re-reads the tree; nothing caches a number. Every attribute is parsed defensively:
//! missing, empty, over-long, non-UTF-8 or malformed content is a typed error, never a panic,
//! and controllers that belong to someone else (a local PCIe disk, another driver's NQN) can
//! never break a lookup for ours.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::connect_spec::parse_decimal;
use crate::error::{AttrProblem, HelperError, Result};
use crate::nqn::Nqn;

/// Default sysfs mount point.
pub const DEFAULT_SYSFS_ROOT: &str = "/sys";
/// Largest attribute file read; real sysfs attributes are at most one page.
pub const ATTR_LIMIT: usize = 64 * 1024;
/// Size of the unit the `size` attribute of a block device counts in.
pub const SECTOR_BYTES: u64 = 512;

/// One NVMe controller, by kernel instance number (`nvmeN`). Only valid until the next rescan:
/// never store it across operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ControllerRef {
    /// The `N` of `nvmeN`.
    pub instance: u32,
}

impl ControllerRef {
    /// The controller's sysfs / device name, `nvmeN`.
    pub fn name(self) -> String {
        format!("nvme{}", self.instance)
    }
}

impl fmt::Display for ControllerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nvme{}", self.instance)
    }
}

/// The `state` attribute of a controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControllerState {
    /// Being set up.
    New,
    /// Connected and serving I/O.
    Live,
    /// Being reset.
    Resetting,
    /// Connection lost, reconnecting.
    Connecting,
    /// Being deleted.
    Deleting,
    /// Being deleted, I/O already stopped.
    DeletingNoIo,
    /// Gave up.
    Dead,
}

impl ControllerState {
    /// Parses the kernel's spelling of a state.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "new" => Self::New,
            "live" => Self::Live,
            "resetting" => Self::Resetting,
            "connecting" => Self::Connecting,
            "deleting" => Self::Deleting,
            "deleting (no IO)" => Self::DeletingNoIo,
            "dead" => Self::Dead,
            _ => return None,
        })
    }

    /// The kernel's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Live => "live",
            Self::Resetting => "resetting",
            Self::Connecting => "connecting",
            Self::Deleting => "deleting",
            Self::DeletingNoIo => "deleting (no IO)",
            Self::Dead => "dead",
        }
    }

    /// Live and connecting (reconnecting after a loss) both count as connected: a second
    /// connect must not be issued for a controller that is merely reconnecting.
    pub fn is_connected(self) -> bool {
        matches!(self, Self::Live | Self::Connecting)
    }

    /// Whether the controller is on its way out.
    pub fn is_deleting(self) -> bool {
        matches!(self, Self::Deleting | Self::DeletingNoIo)
    }
}

impl fmt::Display for ControllerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `address` attribute of a TCP controller: `traddr=..,trsvcid=..[,src_addr=..][,...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FabricAddress {
    /// Target address.
    pub traddr: IpAddr,
    /// Target port.
    pub trsvcid: u16,
    /// Local address of the connection, when the kernel reports it.
    pub src_addr: Option<IpAddr>,
}

impl FabricAddress {
    /// Parses an `address` attribute; unknown keys are ignored.
    pub fn parse(text: &str) -> Option<Self> {
        let mut traddr = None;
        let mut trsvcid = None;
        let mut src_addr = None;
        for piece in text.split(',') {
            let (key, value) = piece.split_once('=')?;
            match key {
                "traddr" => traddr = Some(value.parse::<IpAddr>().ok()?),
                "trsvcid" => trsvcid = Some(parse_decimal::<u16>(value)?),
                "src_addr" => src_addr = Some(value.parse::<IpAddr>().ok()?),
                _ => {}
            }
        }
        Some(Self {
            traddr: traddr?,
            trsvcid: trsvcid?,
            src_addr,
        })
    }
}

/// One controller as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    /// Which controller.
    pub controller: ControllerRef,
    /// The `subsysnqn` attribute, trimmed; not necessarily a valid `Nqn` (PCIe disks have odd ones).
    pub subsysnqn: String,
    /// The `transport` attribute (`tcp`, `pcie`, `loop`, ...).
    pub transport: String,
    /// The parsed address, for TCP controllers.
    pub address: Option<FabricAddress>,
    /// The `state` attribute.
    pub state: ControllerState,
}

impl Controller {
    /// Whether this is an NVMe/TCP controller.
    pub fn is_tcp(&self) -> bool {
        self.transport == "tcp"
    }

    /// Whether this controller talks to `traddr`:`trsvcid`.
    pub fn serves(&self, traddr: IpAddr, trsvcid: u16) -> bool {
        self.address
            .as_ref()
            .is_some_and(|a| a.traddr == traddr && a.trsvcid == trsvcid)
    }
}

/// A controller directory that could not be read completely.
#[derive(Debug)]
pub struct SkippedController {
    /// Which controller.
    pub controller: ControllerRef,
    /// Its `subsysnqn`, when that much could be read.
    pub subsysnqn: Option<String>,
    /// What went wrong.
    pub error: HelperError,
}

/// Result of listing every controller.
#[derive(Debug, Default)]
pub struct ControllerScan {
    /// Controllers whose attributes all parsed, by instance.
    pub controllers: Vec<Controller>,
    /// Controllers whose attributes did not.
    pub skipped: Vec<SkippedController>,
}

/// A namespace block device reached through a connected controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// The block device name (`nvme2n1`), also its name under `/dev`.
    pub device: String,
    /// Whether it is a native-multipath head (`nvme-subsysK/nvmeMnZ`) rather than a plain disk.
    pub multipath: bool,
}

enum NsNode {
    /// `nvmeXnY`: a block device of its own.
    Disk,
    /// `nvmeScCnH`: a hidden path of the multipath head `nvmeSnH`.
    Path { subsys: u32, head: u32 },
}

/// The sysfs reader.
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Self::new(DEFAULT_SYSFS_ROOT)
    }
}

impl Sysfs {
    /// A reader over the tree mounted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root this reader looks at.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn nvme_class(&self) -> PathBuf {
        self.root.join("class").join("nvme")
    }

    fn subsystem_class(&self) -> PathBuf {
        self.root.join("class").join("nvme-subsystem")
    }

    fn block_dir(&self, device: &str) -> Result<PathBuf> {
        check_device_name(device)?;
        Ok(self.root.join("class").join("block").join(device))
    }

    /// `<root>/class/nvme/nvmeN`.
    pub fn controller_dir(&self, controller: ControllerRef) -> PathBuf {
        self.nvme_class().join(controller.name())
    }

    /// Every controller instance present, in ascending order.
    pub fn controller_refs(&self) -> Result<Vec<ControllerRef>> {
        let names = list_dir(&self.nvme_class())?.unwrap_or_default();
        let mut refs: Vec<ControllerRef> = names
            .iter()
            .filter_map(|n| parse_numbered(n, "nvme"))
            .map(|instance| ControllerRef { instance })
            .collect();
        refs.sort_unstable();
        Ok(refs)
    }

    /// Reads every controller. One bad controller never hides the others: it goes to `skipped`.
    pub fn scan_controllers(&self) -> Result<ControllerScan> {
        let mut scan = ControllerScan::default();
        for controller in self.controller_refs()? {
            let dir = self.controller_dir(controller);
            match self.read_controller(controller, &dir) {
                Ok(c) => scan.controllers.push(c),
                // A controller deleted while we looked is simply gone, not broken.
                Err(_) if !dir.exists() => {}
                Err(skipped) => scan.skipped.push(*skipped),
            }
        }
        Ok(scan)
    }

    fn read_controller(
        &self,
        controller: ControllerRef,
        dir: &Path,
    ) -> std::result::Result<Controller, Box<SkippedController>> {
        let skipped = |subsysnqn: Option<String>, error| {
            Box::new(SkippedController {
                controller,
                subsysnqn,
                error,
            })
        };
        let subsysnqn = read_attr(&dir.join("subsysnqn")).map_err(|e| skipped(None, e))?;
        let rest = || -> Result<(String, Option<FabricAddress>, ControllerState)> {
            let transport = read_attr(&dir.join("transport"))?;
            let state_path = dir.join("state");
            let state_text = read_attr(&state_path)?;
            let state = ControllerState::parse(&state_text).ok_or_else(|| HelperError::SysfsAttr {
                path: state_path.clone(),
                problem: AttrProblem::Garbage {
                    content: state_text.clone(),
                    expected: "a controller state (live, connecting, resetting, deleting, dead, new)",
                },
            })?;
            let address = if transport == "tcp" {
                let path = dir.join("address");
                let text = read_attr(&path)?;
                Some(FabricAddress::parse(&text).ok_or(HelperError::SysfsAttr {
                    path,
                    problem: AttrProblem::Garbage {
                        content: text,
                        expected: "traddr=<ip>,trsvcid=<port>[,...]",
                    },
                })?)
            } else {
                None
            };
            Ok((transport, address, state))
        };
        match rest() {
            Ok((transport, address, state)) => Ok(Controller {
                controller,
                subsysnqn,
                transport,
                address,
                state,
            }),
            Err(e) => Err(skipped(Some(subsysnqn), e)),
        }
    }

    /// Controllers whose `subsysnqn` is `nqn`, judged by that one attribute only, in any state.
    ///
    /// This is what disconnect uses: it must find our controllers even when their other
    /// attributes are unreadable.
    pub fn controller_refs_for(&self, nqn: &Nqn) -> Result<Vec<ControllerRef>> {
        let mut out = Vec::new();
        for controller in self.controller_refs()? {
            let path = self.controller_dir(controller).join("subsysnqn");
            match read_attr(&path) {
                Ok(text) if text == nqn.as_str() => out.push(controller),
                Ok(_) => {}
                Err(error) => {
                    if self.controller_dir(controller).exists() {
                        tracing::debug!(%controller, %error, "skipping controller with unreadable subsysnqn");
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every controller of `nqn`, in any state. Fails if one of them cannot be read: deciding
    /// "not connected" on a controller we cannot read could lead to a duplicate connect.
    pub fn controllers_for(&self, nqn: &Nqn) -> Result<Vec<Controller>> {
        let scan = self.scan_controllers()?;
        if let Some(bad) = scan
            .skipped
            .into_iter()
            .find(|s| s.subsysnqn.as_deref() == Some(nqn.as_str()))
        {
            return Err(bad.error);
        }
        Ok(scan
            .controllers
            .into_iter()
            .filter(|c| c.subsysnqn == nqn.as_str())
            .collect())
    }

    /// The controllers of `nqn` that are live or reconnecting.
    pub fn connected_controllers(&self, nqn: &Nqn) -> Result<Vec<Controller>> {
        let mut all = self.controllers_for(nqn)?;
        all.retain(|c| c.state.is_connected());
        Ok(all)
    }

    /// `class/nvme-subsystem/nvme-subsysK` directories whose `subsysnqn` is `nqn`.
    pub fn subsystem_dirs_for(&self, nqn: &Nqn) -> Result<Vec<PathBuf>> {
        let class = self.subsystem_class();
        let names = list_dir(&class)?.unwrap_or_default();
        let mut out = Vec::new();
        for name in names {
            if parse_numbered(&name, "nvme-subsys").is_none() {
                continue;
            }
            let dir = class.join(&name);
            match read_attr(&dir.join("subsysnqn")) {
                Ok(text) if text == nqn.as_str() => out.push(dir),
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(subsystem = %name, %error, "skipping unreadable subsystem")
                }
            }
        }
        Ok(out)
    }

    /// The namespace block devices of `nqn`, found through its connected controllers.
    ///
    /// A plain `nvmeXnY` child of a controller is a disk of its own. A `nvmeScCnH` child is a
    /// multipath path; its disk is `nvmeSnH`, accepted only if it exists under a subsystem
    /// directory whose `subsysnqn` is `nqn`. A subsystem left without any connected controller
    /// yields nothing.
    pub fn namespaces(&self, nqn: &Nqn) -> Result<Vec<Namespace>> {
        let controllers = self.connected_controllers(nqn)?;
        if controllers.is_empty() {
            return Ok(Vec::new());
        }
        let mut subsystems: Option<Vec<PathBuf>> = None;
        let mut found: BTreeMap<String, Namespace> = BTreeMap::new();
        for controller in &controllers {
            let dir = self.controller_dir(controller.controller);
            let Some(children) = list_dir(&dir)? else {
                continue;
            };
            for child in children {
                match parse_ns_node(&child) {
                    Some(NsNode::Disk) => {
                        found.entry(child.clone()).or_insert(Namespace {
                            device: child,
                            multipath: false,
                        });
                    }
                    Some(NsNode::Path { subsys, head }) => {
                        let disk = format!("nvme{subsys}n{head}");
                        if found.contains_key(&disk) {
                            continue;
                        }
                        let dirs = match &subsystems {
                            Some(d) => d,
                            None => subsystems.insert(self.subsystem_dirs_for(nqn)?),
                        };
                        if dirs.iter().any(|d| d.join(&disk).exists()) {
                            found.insert(
                                disk.clone(),
                                Namespace {
                                    device: disk,
                                    multipath: true,
                                },
                            );
                        } else {
                            tracing::debug!(%nqn, path = %child, %disk, "multipath head not visible yet");
                        }
                    }
                    None => {}
                }
            }
        }
        Ok(found.into_values().collect())
    }

    /// The single namespace block device of `nqn` (`None` while there is none).
    pub fn resolve_device(&self, nqn: &Nqn) -> Result<Option<String>> {
        let mut namespaces = self.namespaces(nqn)?;
        match namespaces.len() {
            0 => Ok(None),
            1 => Ok(namespaces.pop().map(|n| n.device)),
            _ => Err(HelperError::MultipleNamespaces {
                nqn: nqn.to_string(),
                devices: namespaces.into_iter().map(|n| n.device).collect(),
            }),
        }
    }

    /// Size in bytes of block device `device` (from `class/block/<device>/size`, in 512-byte sectors).
    pub fn device_size_bytes(&self, device: &str) -> Result<u64> {
        let dir = self.existing_block_dir(device)?;
        let path = dir.join("size");
        let text = read_attr(&path)?;
        parse_decimal::<u64>(&text)
            .and_then(|sectors| sectors.checked_mul(SECTOR_BYTES))
            .ok_or(HelperError::SysfsAttr {
                path,
                problem: AttrProblem::Garbage {
                    content: text,
                    expected: "a sector count",
                },
            })
    }

    /// Names of the devices stacked on `device` (`class/block/<device>/holders/`), sorted.
    pub fn holders(&self, device: &str) -> Result<Vec<String>> {
        let dir = self.existing_block_dir(device)?;
        let holders = dir.join("holders");
        list_dir(&holders)?.ok_or_else(|| HelperError::SysfsDir {
            path: holders,
            source: io::Error::from(io::ErrorKind::NotFound),
        })
    }

    fn existing_block_dir(&self, device: &str) -> Result<PathBuf> {
        let dir = self.block_dir(device)?;
        if dir.exists() {
            Ok(dir)
        } else {
            Err(HelperError::DeviceNotFound {
                device: device.to_string(),
                path: dir,
            })
        }
    }
}

/// Reads one attribute file: at most `ATTR_LIMIT` bytes, UTF-8, trimmed, non-empty.
pub(crate) fn read_attr(path: &Path) -> Result<String> {
    let file = fs::File::open(path).map_err(|e| open_error(path, &e))?;
    let mut bytes = Vec::new();
    file.take(ATTR_LIMIT as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| attr_error(path, AttrProblem::Unreadable(e.to_string())))?;
    attr_text(bytes).map_err(|problem| attr_error(path, problem))
}

/// The error for an attribute file that could not be opened.
pub(crate) fn open_error(path: &Path, e: &io::Error) -> HelperError {
    attr_error(
        path,
        match e.kind() {
            io::ErrorKind::NotFound => AttrProblem::Missing,
            _ => AttrProblem::Unreadable(e.to_string()),
        },
    )
}

pub(crate) fn attr_error(path: &Path, problem: AttrProblem) -> HelperError {
    HelperError::SysfsAttr {
        path: path.to_path_buf(),
        problem,
    }
}

/// An attribute's content as text: at most `ATTR_LIMIT` bytes, UTF-8, trimmed, non-empty.
pub(crate) fn attr_text(bytes: Vec<u8>) -> std::result::Result<String, AttrProblem> {
    if bytes.len() > ATTR_LIMIT {
        return Err(AttrProblem::TooLong { limit: ATTR_LIMIT });
    }
    let text = String::from_utf8(bytes).map_err(|_| AttrProblem::NotUtf8)?;
    let trimmed = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if trimmed.is_empty() {
        return Err(AttrProblem::Empty);
    }
    Ok(trimmed.to_string())
}

/// Lists the UTF-8 entry names of a directory, sorted; `None` when the directory does not exist.
pub(crate) fn list_dir(dir: &Path) -> Result<Option<Vec<String>>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(HelperError::SysfsDir {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
            // The directory vanished under us.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(HelperError::SysfsDir {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
    }
    names.sort_unstable();
    Ok(Some(names))
}

/// A block device name as the kernel makes them: no `/`, not `.`/`..`, short, plain characters.
pub(crate) fn check_device_name(device: &str) -> Result<()> {
    let ok = !device.is_empty()
        && device.len() <= 64
        && device != "."
        && device != ".."
        && device
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(HelperError::InvalidDeviceName {
            device: device.to_string(),
        })
    }
}

/// Canonical decimal (no sign, no leading zeros) that fits a u32.
fn canonical_number(digits: &str) -> Option<u32> {
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    parse_decimal(digits)
}

/// `prefixN` → `N`.
fn parse_numbered(name: &str, prefix: &str) -> Option<u32> {
    canonical_number(name.strip_prefix(prefix)?)
}

/// Splits leading ASCII digits off `text`.
fn split_digits(text: &str) -> (&str, &str) {
    let end = text
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

fn parse_ns_node(name: &str) -> Option<NsNode> {
    let rest = name.strip_prefix("nvme")?;
    let (first, rest) = split_digits(rest);
    let first = canonical_number(first)?;
    if let Some(rest) = rest.strip_prefix('n') {
        let (disk, tail) = split_digits(rest);
        canonical_number(disk)?;
        return tail.is_empty().then_some(NsNode::Disk);
    }
    let rest = rest.strip_prefix('c')?;
    let (ctrl, rest) = split_digits(rest);
    canonical_number(ctrl)?;
    let rest = rest.strip_prefix('n')?;
    let (head, tail) = split_digits(rest);
    let head = canonical_number(head)?;
    tail.is_empty().then_some(NsNode::Path {
        subsys: first,
        head,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::fake_sysfs::{FakeController, FakeSysfs};

    const OURS: &str = "nqn.2000-02.com.mikrotik:pvc-1";
    const OTHER: &str = "nqn.2000-02.com.mikrotik:pvc-2";

    fn nqn(s: &str) -> Nqn {
        Nqn::new(s).unwrap()
    }

    fn tree() -> (tempfile::TempDir, FakeSysfs, Sysfs) {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSysfs::create(tmp.path().join("sys")).unwrap();
        let sysfs = Sysfs::new(fake.root());
        (tmp, fake, sysfs)
    }

    #[test]
    fn empty_tree_has_no_controllers() {
        let tmp = tempfile::tempdir().unwrap();
        let sysfs = Sysfs::new(tmp.path());
        assert!(sysfs.controller_refs().unwrap().is_empty());
        assert_eq!(sysfs.resolve_device(&nqn(OURS)).unwrap(), None);
    }

    #[test]
    fn reads_a_tcp_controller() {
        let (_tmp, fake, sysfs) = tree();
        fake.add_tcp_controller(3, OURS, "10.42.68.1", 4420, "live")
            .unwrap();
        let found = sysfs.controllers_for(&nqn(OURS)).unwrap();
        assert_eq!(found.len(), 1);
        let c = &found[0];
        assert_eq!(c.controller, ControllerRef { instance: 3 });
        assert_eq!(c.controller.to_string(), "nvme3");
        assert_eq!(c.state, ControllerState::Live);
        assert!(c.is_tcp());
        let addr = c.address.as_ref().unwrap();
        assert_eq!(addr.traddr, "10.42.68.1".parse::<IpAddr>().unwrap());
        assert_eq!(addr.trsvcid, 4420);
        assert_eq!(addr.src_addr, Some("10.42.68.10".parse().unwrap()));
        assert!(c.serves("10.42.68.1".parse().unwrap(), 4420));
        assert!(!c.serves("10.42.68.1".parse().unwrap(), 4421));
    }

    #[test]
    fn non_multipath_naming_resolves_under_the_controller() {
        let (_tmp, fake, sysfs) = tree();
        fake.add_tcp_controller(1, OURS, "10.42.68.1", 4420, "live")
            .unwrap();
        fake.add_namespace_node(1, "nvme1n1").unwrap();
        // Partitions and other children are not namespaces.
        fake.add_namespace_node(1, "nvme1n1p1").unwrap();
        fake.add_namespace_node(1, "power").unwrap();
        let ns = sysfs.namespaces(&nqn(OURS)).unwrap();
        assert_eq!(
            ns,
            vec![Namespace {
                device: "nvme1n1".into(),
                multipath: false
            }]
        );
        assert_eq!(
            sysfs.resolve_device(&nqn(OURS)).unwrap().as_deref(),
            Some("nvme1n1")
        );
        assert_eq!(sysfs.resolve_device(&nqn(OTHER)).unwrap(), None);
    }

    #[test]
    fn multipath_naming_resolves_through_the_subsystem() {
        let (_tmp, fake, sysfs) = tree();
        // Controller nvme1 carries path nvme2c1n2; the disk is nvme2n2 in nvme-subsys2.
        fake.add_tcp_controller(1, OURS, "10.42.68.1", 4420, "live")
            .unwrap();
        fake.add_namespace_node(1, "nvme2c1n2").unwrap();
        fake.add_subsystem(2, OURS).unwrap();
        fake.add_subsystem_disk(2, "nvme2n2").unwrap();
        // A subsystem of someone else with a similarly numbered disk.
        fake.add_subsystem(0, OTHER).unwrap();
        fake.add_subsystem_disk(0, "nvme0n2").unwrap();
        assert_eq!(
            sysfs.namespaces(&nqn(OURS)).unwrap(),
            vec![Namespace {
                device: "nvme2n2".into(),
                multipath: true
            }]
        );
        assert_eq!(
            sysfs.resolve_device(&nqn(OURS)).unwrap().as_deref(),
            Some("nvme2n2")
        );
    }

    #[test]
    fn multipath_head_must_be_in_a_subsystem_of_the_same_nqn() {
        let (_tmp, fake, sysfs) = tree();
        fake.add_tcp_controller(1, OURS, "10.42.68.1", 4420, "live")
            .unwrap();
        fake.add_namespace_node(1, "nvme2c1n2").unwrap();
        fake.add_subsystem(2, OTHER).unwrap();
        fake.add_subsystem_disk(2, "nvme2n2").unwrap();
        assert_eq!(sysfs.resolve_device(&nqn(OURS)).unwrap(), None);
    }

    #[test]
    fn two_paths_to_one_head_count_once() {
        let (_tmp, fake, sysfs) = tree();
        fake.add_tcp_controller(1, OURS, "10.42.68.1", 4420, "live")
            .unwrap();
        fake.add_tcp_controller(4, OURS, "10.42.69.1", 4420, "connecting")
            .unwrap();
        fake.add_namespace_node(1, "nvme2c1n1").unwrap();
        fake.add_namespace_node(4, "nvme2c4n1").unwrap();
        fake.add_subsystem(2, OURS).unwrap();
        fake.add_subsystem_disk(2, "nvme2n1").unwrap();
        assert_eq!(
            sysfs.resolve_device(&nqn(OURS)).unwrap().as_deref(),
            Some("nvme2n1")
        );
        assert_eq!(sysfs.connected_controllers(&nqn(OURS)).unwrap().len(), 2);
    }

    #[test]
    fn renumbered_controller_is_found_again_by_nqn() {
        let (_tmp, fake, sysfs) = tree();
        fake.add_tcp_controller(1, OURS, "10.42.68.1", 4420, "live")
            .unwrap();
        fake.add_namespace_node(1, "nvme1n1").unwrap();
        fake.add_tcp_controller(2, OTHER, "10.42.68.1", 4420, "live")
            .unwrap();
        fake.add_namespace_node(2, "nvme2n1").unwrap();
        assert_eq!(
            sysfs.resolve_device(&nqn(OURS)).unwrap().as_deref(),
            Some("nvme1n1")
        );

        // Reconnect: ours comes back as nvme5, and nvme1 is reused by the other subsystem.
        fake.remove_controller(1).unwrap();
        fake.remove_controller(2).unwrap();
        fake.add_tcp_controller(5, OURS, "10.42.68.1", 4420, "live")
            .unwrap();
        fake.add_namespace_node(5, "nvme5n1").unwrap();
        fake.add_tcp_controller(1, OTHER, "10.42.68.1", 4420, "live")
            .unwrap();
        fake.add_namespace_node(1, "nvme1n1").unwrap();

        assert_eq!(
            sysfs.resolve_device(&nqn(OURS)).unwrap().as_deref(),
            Some("nvme5n1")
        );
        assert_eq!(
            sysfs.resolve_device(&nqn(OTHER)).unwrap().as_deref(),
            Some("nvme1n1")
        );
        assert_eq!(
            sysfs.controller_refs_for(&nqn(OURS)).unwrap(),
            vec![ControllerRef { instance: 5 }]
        );
    }

    #[test]
    fn connecting_counts_as_connected_and_other_states_do_not() {
        let (_tmp, fake, sysfs) = tree();
        fake.add_tcp_controller(1, OURS, "10.42.68.1", 4420, "connecting")
            .unwrap();
        fake.add_namespace_node(1, "nvme1n1").unwrap();
        assert_eq!(sysfs.connected_controllers(&nqn(OURS)).unwrap().len(), 1);
        assert_eq!(
            sysfs.resolve_device(&nqn(OURS)).unwrap().as_deref(),
            Some("nvme1n1")
        );

        for (state, parsed) in [
            ("deleting", ControllerState::Deleting),
            ("deleting (no IO)", ControllerState::DeletingNoIo),
            ("dead", ControllerState::Dead),
            ("new", ControllerState::New),
            ("resetting", ControllerState::Resetting),
        ] {
            fake.set_state(1, state).unwrap();
            let all = sysfs.controllers_for(&nqn(OURS)).unwrap();
            assert_eq!(all[0].state, parsed);
            assert!(
                sysfs.connected_controllers(&nqn(OURS)).unwrap().is_empty(),
                "{state}"
            );
            assert_eq!(sysfs.resolve_device(&nqn(OURS)).unwrap(), None, "{state}");
        }
    }

    #[test]
    fn orphaned_subsystem_resolves_to_nothing() {
        let (_tmp, fake, sysfs) = tree();
        fake.add_subsystem(3, OURS).unwrap();
        fake.add_subsystem_disk(3, "nvme3n1").unwrap();
        assert!(sysfs.controllers_for(&nqn(OURS)).unwrap().is_empty());
        assert_eq!(sysfs.subsystem_dirs_for(&nqn(OURS)).unwrap().len(), 1);
        assert_eq!(sysfs.resolve_device(&nqn(OURS)).unwrap(), None);
    }

    #[test]
    fn foreign_controllers_do_not_match_and_do_not_break_lookups() {
        let (_tmp, fake, sysfs) = tree();
        // A local PCIe disk: odd subsysnqn with spaces and capitals, address without keys.
        fake.add_controller(&FakeController {
            instance: 0,
            subsysnqn: b"nqn.2014.08.org.nvmexpress:144d144dS4EWNX0R Samsung SSD 970     \n",
            transport: b"pcie\n",
            address: b"0000:01:00.0\n",
            state: b"live\n",
        })
        .unwrap();
        fake.add_namespace_node(0, "nvme0n1").unwrap();
        // A lookalike NQN that a careless prefix match would take for ours.
        fake.add_tcp_controller(
            1,
            "nqn.2000-02.com.mikrotik:pvc-10",
            "10.42.68.1",
            4420,
            "live",
        )
        .unwrap();
        fake.add_namespace_node(1, "nvme1n1").unwrap();
        // A broken foreign controller.
        fake.add_tcp_controller(2, OTHER, "10.42.68.1", 4420, "live")
            .unwrap();
        fake.write_controller_file(2, "state", b"exploded\n")
            .unwrap();

        assert!(sysfs.controllers_for(&nqn(OURS)).unwrap().is_empty());
        assert_eq!(sysfs.resolve_device(&nqn(OURS)).unwrap(), None);
        let scan = sysfs.scan_controllers().unwrap();
        assert_eq!(scan.controllers.len(), 2);
        assert_eq!(scan.skipped.len(), 1);
        assert_eq!(scan.skipped[0].subsysnqn.as_deref(), Some(OTHER));
        let pcie = &scan.controllers[0];
        assert!(!pcie.is_tcp());
        assert_eq!(pcie.address, None);
    }

    #[test]
    fn multiple_namespaces_are_listed_and_refused_as_a_single_device() {
        let (_tmp, fake, sysfs) = tree();
        fake.add_tcp_controller(1, OURS, "10.42.68.1", 4420, "live")
            .unwrap();
        fake.add_namespace_node(1, "nvme1n1").unwrap();
        fake.add_namespace_node(1, "nvme1n2").unwrap();
        let ns = sysfs.namespaces(&nqn(OURS)).unwrap();
        let names: Vec<_> = ns.iter().map(|n| n.device.as_str()).collect();
        assert_eq!(names, ["nvme1n1", "nvme1n2"]);
        match sysfs.resolve_device(&nqn(OURS)) {
            Err(HelperError::MultipleNamespaces { nqn: n, devices }) => {
                assert_eq!(n, OURS);
                assert_eq!(devices, ["nvme1n1", "nvme1n2"]);
            }
            other => panic!("expected MultipleNamespaces, got {other:?}"),
        }
    }

    #[test]
    fn garbage_in_our_controller_is_a_typed_error() {
        type Expect = fn(&AttrProblem) -> bool;
        let cases: [(&str, &[u8], Expect); 7] = [
            ("state", b"", |p| *p == AttrProblem::Empty),
            ("state", b"  \n", |p| *p == AttrProblem::Empty),
            ("state", b"\xff\xfe", |p| *p == AttrProblem::NotUtf8),
            ("state", b"lively\n", |p| {
                matches!(p, AttrProblem::Garbage { .. })
            }),
            ("address", b"traddr=10.42.68.1\n", |p| {
                matches!(p, AttrProblem::Garbage { .. })
            }),
            ("address", b"traddr=not-an-ip,trsvcid=4420", |p| {
                matches!(p, AttrProblem::Garbage { .. })
            }),
            ("address", b"traddr=10.0.0.1,trsvcid=99999", |p| {
                matches!(p, AttrProblem::Garbage { .. })
            }),
        ];
        for (file, content, expected) in cases {
            let (_tmp, fake, sysfs) = tree();
            fake.add_tcp_controller(1, OURS, "10.42.68.1", 4420, "live")
                .unwrap();
            fake.write_controller_file(1, file, content).unwrap();
            match sysfs.controllers_for(&nqn(OURS)) {
                Err(HelperError::SysfsAttr { path, problem }) => {
                    assert!(path.ends_with(file), "{path:?}");
                    assert!(expected(&problem), "{file} {content:?}: {problem:?}");
                }
                other => panic!("{file} {content:?}: expected SysfsAttr, got {other:?}"),
            }
            // Disconnect-style lookup still finds the controller by NQN.
            assert_eq!(sysfs.controller_refs_for(&nqn(OURS)).unwrap().len(), 1);
        }
    }

    #[test]
    fn missing_and_oversized_attributes_are_typed() {
        let (_tmp, fake, sysfs) = tree();
        fake.add_tcp_controller(1, OURS, "10.42.68.1", 4420, "live")
            .unwrap();
        fake.remove_controller_file(1, "transport").unwrap();
        assert!(matches!(
            sysfs.controllers_for(&nqn(OURS)),
            Err(HelperError::SysfsAttr {
                problem: AttrProblem::Missing,
                ..
            })
        ));
        let big = vec![b'a'; ATTR_LIMIT + 10];
        fake.write_controller_file(1, "transport", &big).unwrap();
        assert!(matches!(
            sysfs.controllers_for(&nqn(OURS)),
            Err(HelperError::SysfsAttr {
                problem: AttrProblem::TooLong { .. },
                ..
            })
        ));
    }

    #[test]
    fn odd_directory_names_are_ignored() {
        let (_tmp, fake, sysfs) = tree();
        for name in [
            "nvme",
            "nvme01",
            "nvme-fabrics",
            "nvmex",
            "nvme99999999999",
            "other",
        ] {
            fake.write_file(&format!("class/nvme/{name}/subsysnqn"), OURS.as_bytes())
                .unwrap();
        }
        assert!(sysfs.controller_refs().unwrap().is_empty());
    }

    #[test]
    fn namespace_names_are_parsed_strictly() {
        assert!(matches!(parse_ns_node("nvme0n1"), Some(NsNode::Disk)));
        assert!(matches!(
            parse_ns_node("nvme2c1n2"),
            Some(NsNode::Path { subsys: 2, head: 2 })
        ));
        for bad in [
            "nvme",
            "nvme0",
            "nvme0n",
            "nvme0n1p1",
            "nvme0c1",
            "nvme0c1n",
            "nvmec1n1",
            "nvme0x1",
            "nvme01n1",
            "nvme0n1 ",
            "nvme2c1n2p3",
        ] {
            assert!(parse_ns_node(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn device_size_and_holders() {
        let (_tmp, fake, sysfs) = tree();
        fake.add_block_device("nvme2n1", 2_097_152).unwrap();
        assert_eq!(sysfs.device_size_bytes("nvme2n1").unwrap(), 1 << 30);
        assert!(sysfs.holders("nvme2n1").unwrap().is_empty());
        fake.add_holder("nvme2n1", "dm-1").unwrap();
        fake.add_holder("nvme2n1", "dm-0").unwrap();
        assert_eq!(sysfs.holders("nvme2n1").unwrap(), ["dm-0", "dm-1"]);

        assert!(matches!(
            sysfs.device_size_bytes("nvme9n1"),
            Err(HelperError::DeviceNotFound { .. })
        ));
        assert!(matches!(
            sysfs.holders("nvme9n1"),
            Err(HelperError::DeviceNotFound { .. })
        ));
        for bad in ["", "..", "../nvme2n1", "a/b", "nvme2n1\0"] {
            assert!(matches!(
                sysfs.device_size_bytes(bad),
                Err(HelperError::InvalidDeviceName { .. })
            ));
        }
        for garbage in [&b"lots"[..], b"-1", b"", b"18446744073709551615", b"\xff"] {
            fake.write_file("class/block/nvme2n1/size", garbage)
                .unwrap();
            assert!(
                matches!(
                    sysfs.device_size_bytes("nvme2n1"),
                    Err(HelperError::SysfsAttr { .. })
                ),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn address_parser_accepts_variants() {
        let a = FabricAddress::parse("traddr=fd00::1,trsvcid=4420").unwrap();
        assert_eq!(a.traddr, "fd00::1".parse::<IpAddr>().unwrap());
        assert_eq!(a.src_addr, None);
        let b = FabricAddress::parse(
            "traddr=10.0.0.1,trsvcid=4420,host_traddr=10.0.0.2,host_iface=eth0,src_addr=10.0.0.2",
        )
        .unwrap();
        assert_eq!(b.src_addr, Some("10.0.0.2".parse().unwrap()));
        for bad in [
            "",
            "0000:01:00.0",
            "trsvcid=4420",
            "traddr=10.0.0.1,trsvcid=",
            "traddr=[::1],trsvcid=1",
        ] {
            assert!(FabricAddress::parse(bad).is_none(), "{bad}");
        }
    }
}
