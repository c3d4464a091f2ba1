//! The NVMe fabric as the helper sees it: connect, find the device, disconnect, list, rescan.
//!
//! `Fabric` is the seam between the helper's volume logic and the kernel, used behind
//! `Arc<dyn Fabric>` so that the testbed can swap in a loop-device fabric. `KernelFabric` is the
//! real one: it writes the option string to `/dev/nvme-fabrics` (no nvme-cli), reads sysfs to
//! learn what exists, and writes `delete_controller` / `rescan_controller`. Every lookup goes by
//! NQN through sysfs each time; controller numbers are never kept between calls. Paths are
//! configurable so tests run it against a fake tree.
//!
//! This layer does not decide *whether* a disconnect is allowed (managed prefix, holders,
//! mounts): the caller does, before calling `disconnect`.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use tokio::time::Instant;

use crate::connect_spec::{ConnectSpec, FabricsReply};
use crate::error::{HelperError, Result};
use crate::nqn::Nqn;
use crate::sysfs::{ATTR_LIMIT, ControllerRef, ControllerState, DEFAULT_SYSFS_ROOT, Sysfs};

/// Default path of the fabrics control device.
pub const DEFAULT_FABRICS_DEV: &str = "/dev/nvme-fabrics";
/// Default directory holding block device nodes.
pub const DEFAULT_DEV_ROOT: &str = "/dev";
/// Default time to wait for a new controller to show up in sysfs after a connect.
pub const DEFAULT_SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default sysfs polling interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A boxed future, so that `Fabric` can be used as `Arc<dyn Fabric>`.
pub type FabricFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// One NVMe/TCP connection to a subsystem with a valid NQN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Subsystem NQN.
    pub nqn: Nqn,
    /// The controller carrying it (valid until the next reconnect).
    pub controller: ControllerRef,
    /// Controller state.
    pub state: ControllerState,
    /// Target address.
    pub traddr: IpAddr,
    /// Target port.
    pub trsvcid: u16,
}

/// The operations the helper needs from an NVMe fabric.
pub trait Fabric: Send + Sync {
    /// Connects `spec`. Idempotent: a live or connecting controller for the same NQN, address
    /// and port is reused and nothing is written.
    fn connect<'a>(&'a self, spec: &'a ConnectSpec) -> FabricFuture<'a, ControllerRef>;

    /// The namespace block device node of `nqn`, once it exists (`None` until then).
    fn resolve_device<'a>(&'a self, nqn: &'a Nqn) -> FabricFuture<'a, Option<PathBuf>>;

    /// Deletes every controller of `nqn` and waits until they are gone or `deadline` passes.
    /// Returns how many controllers there were (0: nothing to do).
    fn disconnect<'a>(&'a self, nqn: &'a Nqn, deadline: Instant) -> FabricFuture<'a, usize>;

    /// Every NVMe/TCP connection whose subsystem NQN is valid, whatever its owner.
    fn connections(&self) -> FabricFuture<'_, Vec<Connection>>;

    /// Asks the connected controllers of `nqn` to rescan namespaces (after an expand).
    fn rescan<'a>(&'a self, nqn: &'a Nqn) -> FabricFuture<'a, ()>;

    /// Every namespace block device node of `nqn` that exists now, in any number: what must be
    /// unused before the NQN may be disconnected.
    fn namespace_devices<'a>(&'a self, nqn: &'a Nqn) -> FabricFuture<'a, Vec<PathBuf>>;

    /// The same list as `connections`, read synchronously with sysfs reads only: what a
    /// metrics scrape can afford (it must never wait on the kernel's connect machinery).
    fn scrape_connections(&self) -> Result<Vec<Connection>>;

    /// The states of `nqn`'s connections (empty: not connected): what a volume condition
    /// needs, which a fabric may answer without reading every connection on the node.
    fn connection_states<'a>(&'a self, nqn: &'a Nqn) -> FabricFuture<'a, Vec<ControllerState>> {
        Box::pin(async move {
            Ok(self
                .connections()
                .await?
                .into_iter()
                .filter(|c| &c.nqn == nqn)
                .map(|c| c.state)
                .collect())
        })
    }

    /// Whether the fabric can be read at all (a health check): as cheap as the fabric allows,
    /// independent of how many connections there are.
    fn check_readable(&self) -> Result<()> {
        self.scrape_connections().map(|_| ())
    }
}

/// The fabric backed by the Linux kernel's NVMe/TCP initiator.
#[derive(Debug, Clone)]
pub struct KernelFabric {
    sysfs: Sysfs,
    fabrics_dev: PathBuf,
    dev_root: PathBuf,
    settle_timeout: Duration,
    poll_interval: Duration,
}

impl Default for KernelFabric {
    fn default() -> Self {
        Self::new(DEFAULT_SYSFS_ROOT, DEFAULT_FABRICS_DEV, DEFAULT_DEV_ROOT)
    }
}

/// What happened when the option string was written.
enum ConnectOutcome {
    /// The kernel answered (text as read).
    Reply(String),
    /// Nothing could be read back.
    NoReply,
    /// The write itself failed; the errno is the kernel's verdict.
    Refused(io::Error),
}

/// What happened when a controller attribute was written.
#[derive(Debug, PartialEq, Eq)]
enum AttrWrite {
    Written,
    /// The controller no longer exists or now belongs to another NQN.
    Gone,
    /// The controller is already being deleted.
    AlreadyDeleting,
}

impl KernelFabric {
    /// A fabric over the given sysfs root, fabrics device and device-node directory.
    pub fn new(
        sysfs_root: impl Into<PathBuf>,
        fabrics_dev: impl Into<PathBuf>,
        dev_root: impl Into<PathBuf>,
    ) -> Self {
        Self {
            sysfs: Sysfs::new(sysfs_root),
            fabrics_dev: fabrics_dev.into(),
            dev_root: dev_root.into(),
            settle_timeout: DEFAULT_SETTLE_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }

    /// How long to wait for a new controller to appear in sysfs after a connect.
    #[must_use]
    pub fn with_settle_timeout(mut self, timeout: Duration) -> Self {
        self.settle_timeout = timeout;
        self
    }

    /// How often sysfs is polled while waiting.
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The sysfs reader this fabric uses.
    pub fn sysfs(&self) -> &Sysfs {
        &self.sysfs
    }

    fn existing_controller(&self, spec: &ConnectSpec) -> Result<Option<ControllerRef>> {
        Ok(self
            .sysfs
            .connected_controllers(&spec.nqn)?
            .into_iter()
            .find(|c| c.serves(spec.traddr, spec.trsvcid))
            .map(|c| c.controller))
    }

    async fn connect_impl(&self, spec: &ConnectSpec) -> Result<ControllerRef> {
        spec.validate()?;
        if let Some(existing) = self.existing_controller(spec)? {
            tracing::debug!(nqn = %spec.nqn, controller = %existing, "reusing connected controller");
            return Ok(existing);
        }
        let options = spec.to_string();
        let path = self.fabrics_dev.clone();
        let nqn = spec.nqn.to_string();
        let outcome =
            run_blocking("connecting", &nqn, move || write_connect(&path, &options)).await??;
        let expected = match outcome {
            ConnectOutcome::Reply(text) => match FabricsReply::parse(&text) {
                Ok(reply) => Some(reply.instance),
                Err(reason) => {
                    return Err(HelperError::FabricReply {
                        nqn,
                        path: self.fabrics_dev.clone(),
                        reply: text,
                        reason,
                    });
                }
            },
            ConnectOutcome::NoReply => None,
            // Someone else connected the same controller first: find it like any other.
            ConnectOutcome::Refused(e) if e.raw_os_error() == Some(libc::EALREADY) => {
                tracing::debug!(%nqn, "kernel reports the controller already exists");
                None
            }
            ConnectOutcome::Refused(source) => {
                return Err(HelperError::FabricConnect {
                    nqn,
                    traddr: spec.traddr.to_string(),
                    trsvcid: spec.trsvcid,
                    path: self.fabrics_dev.clone(),
                    source,
                });
            }
        };
        self.wait_for_controller(spec, expected).await
    }

    /// Polls sysfs until a connected controller for `spec` (and instance `expected`, when the
    /// kernel told us) is visible.
    async fn wait_for_controller(
        &self,
        spec: &ConnectSpec,
        expected: Option<u32>,
    ) -> Result<ControllerRef> {
        let started = Instant::now();
        let deadline = started + self.settle_timeout;
        let mut last_error: Option<HelperError>;
        loop {
            match self.sysfs.connected_controllers(&spec.nqn) {
                Ok(list) => {
                    if let Some(found) = list.iter().find(|c| {
                        c.serves(spec.traddr, spec.trsvcid)
                            && expected.is_none_or(|i| i == c.controller.instance)
                    }) {
                        tracing::info!(nqn = %spec.nqn, controller = %found.controller, "connected");
                        return Ok(found.controller);
                    }
                    last_error = None;
                }
                Err(e) => last_error = Some(e),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(
                    last_error.unwrap_or_else(|| HelperError::ControllerNotVisible {
                        nqn: spec.nqn.to_string(),
                        path: self.sysfs.root().join("class/nvme"),
                        waited: now.duration_since(started),
                    }),
                );
            }
            tokio::time::sleep(self.poll_interval.min(deadline - now)).await;
        }
    }

    async fn disconnect_impl(&self, nqn: &Nqn, deadline: Instant) -> Result<usize> {
        let targets = self.sysfs.controller_refs_for(nqn)?;
        if targets.is_empty() {
            return Ok(0);
        }
        let late = || HelperError::DeadlineExceeded {
            operation: "disconnecting",
            target: nqn.to_string(),
        };
        for controller in &targets {
            let dir = self.sysfs.controller_dir(*controller);
            let owner = nqn.clone();
            let work = run_blocking("disconnecting", nqn.as_str(), move || {
                write_checked_attr(&dir, &owner, "delete_controller", true)
            });
            let outcome = tokio::time::timeout_at(deadline, work)
                .await
                .map_err(|_| late())???;
            tracing::info!(%nqn, %controller, ?outcome, "delete_controller");
        }
        loop {
            if self.sysfs.controller_refs_for(nqn)?.is_empty() {
                return Ok(targets.len());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(late());
            }
            tokio::time::sleep(self.poll_interval.min(deadline - now)).await;
        }
    }

    async fn rescan_impl(&self, nqn: &Nqn) -> Result<()> {
        let controllers = self.sysfs.connected_controllers(nqn)?;
        if controllers.is_empty() {
            return Err(HelperError::ControllerNotFound {
                nqn: nqn.to_string(),
            });
        }
        for controller in controllers {
            let dir = self.sysfs.controller_dir(controller.controller);
            let owner = nqn.clone();
            let outcome = run_blocking("rescanning", nqn.as_str(), move || {
                write_checked_attr(&dir, &owner, "rescan_controller", false)
            })
            .await??;
            tracing::debug!(%nqn, controller = %controller.controller, ?outcome, "rescan_controller");
        }
        Ok(())
    }

    fn resolve_device_now(&self, nqn: &Nqn) -> Result<Option<PathBuf>> {
        let Some(device) = self.sysfs.resolve_device(nqn)? else {
            return Ok(None);
        };
        let node = self.dev_root.join(&device);
        match node.try_exists() {
            Ok(true) => Ok(Some(node)),
            Ok(false) => {
                tracing::debug!(%nqn, %device, "device known to sysfs but its node does not exist yet");
                Ok(None)
            }
            Err(source) => Err(HelperError::Io {
                operation: "inspect",
                path: node,
                source,
            }),
        }
    }

    fn connections_now(&self) -> Result<Vec<Connection>> {
        let scan = self.sysfs.scan_controllers()?;
        for skipped in &scan.skipped {
            tracing::warn!(controller = %skipped.controller, error = %skipped.error, "unreadable controller left out of the connection list");
        }
        Ok(scan
            .controllers
            .into_iter()
            .filter(|c| c.is_tcp())
            .filter_map(|c| {
                let nqn = Nqn::new(c.subsysnqn).ok()?;
                let address = c.address?;
                Some(Connection {
                    nqn,
                    controller: c.controller,
                    state: c.state,
                    traddr: address.traddr,
                    trsvcid: address.trsvcid,
                })
            })
            .collect())
    }
}

impl Fabric for KernelFabric {
    fn connect<'a>(&'a self, spec: &'a ConnectSpec) -> FabricFuture<'a, ControllerRef> {
        Box::pin(self.connect_impl(spec))
    }

    fn resolve_device<'a>(&'a self, nqn: &'a Nqn) -> FabricFuture<'a, Option<PathBuf>> {
        Box::pin(async move { self.resolve_device_now(nqn) })
    }

    fn disconnect<'a>(&'a self, nqn: &'a Nqn, deadline: Instant) -> FabricFuture<'a, usize> {
        Box::pin(self.disconnect_impl(nqn, deadline))
    }

    fn connections(&self) -> FabricFuture<'_, Vec<Connection>> {
        Box::pin(async move { self.connections_now() })
    }

    fn rescan<'a>(&'a self, nqn: &'a Nqn) -> FabricFuture<'a, ()> {
        Box::pin(self.rescan_impl(nqn))
    }

    fn namespace_devices<'a>(&'a self, nqn: &'a Nqn) -> FabricFuture<'a, Vec<PathBuf>> {
        Box::pin(async move {
            Ok(self
                .sysfs
                .namespaces(nqn)?
                .into_iter()
                .map(|ns| self.dev_root.join(ns.device))
                .filter(|node| node.exists())
                .collect())
        })
    }

    fn scrape_connections(&self) -> Result<Vec<Connection>> {
        self.connections_now()
    }

    fn check_readable(&self) -> Result<()> {
        self.sysfs.controller_refs().map(|_| ())
    }
}

/// Runs blocking kernel I/O off the async threads.
async fn run_blocking<T: Send + 'static>(
    operation: &'static str,
    target: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| HelperError::Task {
            operation,
            target: target.to_string(),
            reason: e.to_string(),
        })
}

/// One `write(2)` of the whole option string, then one `read(2)` of the kernel's answer on the
/// same descriptor (this is how the fabrics device reports the new controller).
fn write_connect(path: &Path, options: &str) -> Result<ConnectOutcome> {
    let mut device = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| HelperError::FabricDevice {
            path: path.to_path_buf(),
            source,
        })?;
    match device.write(options.as_bytes()) {
        Ok(n) if n == options.len() => {}
        Ok(n) => {
            return Ok(ConnectOutcome::Refused(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write: {n} of {} bytes accepted", options.len()),
            )));
        }
        Err(e) => return Ok(ConnectOutcome::Refused(e)),
    }
    let mut reply = [0u8; 512];
    match device.read(&mut reply) {
        Ok(0) => Ok(ConnectOutcome::NoReply),
        Ok(n) => Ok(ConnectOutcome::Reply(
            String::from_utf8_lossy(reply.get(..n).unwrap_or_default()).into_owned(),
        )),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "connect written but the reply could not be read");
            Ok(ConnectOutcome::NoReply)
        }
    }
}

/// Writes `1` to `attr` of the controller at `dir`, but only if the controller still belongs to
/// `nqn`. The directory is opened once and everything else is opened relative to it, so a
/// controller deleted and re-created under the same number for another subsystem is never hit.
fn write_checked_attr(
    dir: &Path,
    nqn: &Nqn,
    attr: &str,
    skip_if_deleting: bool,
) -> Result<AttrWrite> {
    let attr_path = dir.join(attr);
    let fail = |source: io::Error| HelperError::ControllerWrite {
        nqn: nqn.to_string(),
        path: attr_path.clone(),
        source,
    };
    let gone_or = |e: io::Error| {
        if e.kind() == io::ErrorKind::NotFound || !dir.exists() {
            Ok(AttrWrite::Gone)
        } else {
            Err(fail(e))
        }
    };
    let dir_file = match File::open(dir) {
        Ok(f) => f,
        Err(e) => return gone_or(e),
    };
    let owner = match read_relative(&dir_file, "subsysnqn") {
        Ok(text) => text,
        Err(e) => return gone_or(e),
    };
    if owner.trim() != nqn.as_str() {
        return Ok(AttrWrite::Gone);
    }
    if skip_if_deleting
        && let Ok(state) = read_relative(&dir_file, "state")
        && ControllerState::parse(state.trim()).is_some_and(ControllerState::is_deleting)
    {
        return Ok(AttrWrite::AlreadyDeleting);
    }
    let fd = match openat(
        dir_file.as_fd(),
        attr,
        OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(errno) => {
            let e = io::Error::from(errno);
            return if dir.exists() {
                Err(fail(e))
            } else {
                Ok(AttrWrite::Gone)
            };
        }
    };
    let mut target = File::from(fd);
    match target.write(b"1") {
        Ok(1) => Ok(AttrWrite::Written),
        Ok(n) => Err(fail(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {n} of 1 byte accepted"),
        ))),
        Err(e) if skip_if_deleting && e.raw_os_error() == Some(libc::EBUSY) => {
            Ok(AttrWrite::AlreadyDeleting)
        }
        Err(e) => gone_or(e),
    }
}

/// Reads a small attribute relative to an open directory.
fn read_relative(dir: &File, name: &str) -> io::Result<String> {
    let fd = openat(
        dir.as_fd(),
        name,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(io::Error::from)?;
    let mut bytes = Vec::new();
    File::from(fd)
        .take(ATTR_LIMIT as u64)
        .read_to_end(&mut bytes)?;
    String::from_utf8(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::fake_sysfs::{FakeController, FakeSysfs};
    use std::sync::Arc;
    use tempfile::TempDir;
    use uuid::Uuid;

    const OURS: &str = "nqn.2000-02.com.mikrotik:pvc-1";
    const OTHER: &str = "nqn.2000-02.com.mikrotik:pvc-2";
    const TICK: Duration = Duration::from_millis(5);

    struct Bed {
        _tmp: TempDir,
        fake: FakeSysfs,
        fabrics: PathBuf,
        dev: PathBuf,
        fabric: KernelFabric,
    }

    fn bed() -> Bed {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSysfs::create(tmp.path().join("sys")).unwrap();
        let fabrics = tmp.path().join("nvme-fabrics");
        std::fs::write(&fabrics, b"").unwrap();
        let dev = tmp.path().join("dev");
        std::fs::create_dir(&dev).unwrap();
        let fabric = KernelFabric::new(fake.root(), &fabrics, &dev)
            .with_settle_timeout(Duration::from_secs(5))
            .with_poll_interval(TICK);
        Bed {
            _tmp: tmp,
            fake,
            fabrics,
            dev,
            fabric,
        }
    }

    fn nqn(s: &str) -> Nqn {
        Nqn::new(s).unwrap()
    }

    fn spec(port: u16) -> ConnectSpec {
        let id = Uuid::parse_str("6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b").unwrap();
        ConnectSpec::new(
            "10.42.68.1".parse().unwrap(),
            port,
            nqn(OURS),
            Nqn::from_uuid(id),
            id,
        )
    }

    /// Waits (bounded) for a simulated-kernel task, so that a broken fabric fails instead of hanging.
    async fn join<T>(task: tokio::task::JoinHandle<T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the simulated kernel never saw the expected write")
            .unwrap()
    }

    /// Simulated kernel: once the fabrics file holds a connect string, publish controller `instance`.
    fn kernel_creates_controller(
        bed: &Bed,
        instance: u32,
        port: u16,
    ) -> tokio::task::JoinHandle<Vec<u8>> {
        let fake = bed.fake.clone();
        let fabrics = bed.fabrics.clone();
        tokio::spawn(async move {
            loop {
                let bytes = std::fs::read(&fabrics).unwrap();
                if bytes.starts_with(b"transport=") {
                    fake.add_tcp_controller(instance, OURS, "10.42.68.1", port, "live")
                        .unwrap();
                    return bytes;
                }
                tokio::time::sleep(TICK).await;
            }
        })
    }

    /// Simulated kernel: once `delete_controller` of `instance` holds data, remove the controller.
    fn kernel_deletes_controller(
        fake: &FakeSysfs,
        instance: u32,
    ) -> tokio::task::JoinHandle<Vec<u8>> {
        let fake = fake.clone();
        tokio::spawn(async move {
            loop {
                let bytes = fake
                    .read_controller_file(instance, "delete_controller")
                    .unwrap();
                if !bytes.is_empty() {
                    fake.remove_controller(instance).unwrap();
                    return bytes;
                }
                tokio::time::sleep(TICK).await;
            }
        })
    }

    #[tokio::test]
    async fn connect_writes_the_exact_option_string_and_finds_the_controller() {
        let bed = bed();
        let spec = spec(4420);
        let kernel = kernel_creates_controller(&bed, 3, 4420);
        let controller = bed.fabric.connect(&spec).await.unwrap();
        assert_eq!(controller, ControllerRef { instance: 3 });
        let seen = join(kernel).await;
        assert_eq!(seen, spec.to_string().as_bytes());
        assert_eq!(
            std::fs::read(&bed.fabrics).unwrap(),
            spec.to_string().as_bytes()
        );
    }

    #[tokio::test]
    async fn connect_uses_the_instance_the_kernel_reports() {
        let bed = bed();
        let spec = spec(4420);
        let options = spec.to_string();
        // Whatever follows our write on the stand-in file is what a read returns: the "reply".
        let mut initial = vec![b'#'; options.len()];
        initial.extend_from_slice(b"instance=7,cntlid=1\n");
        std::fs::write(&bed.fabrics, &initial).unwrap();
        // The same NQN also has a stale controller on another port; it must not be picked.
        bed.fake
            .add_tcp_controller(6, OURS, "10.42.68.1", 4421, "live")
            .unwrap();
        let fake = bed.fake.clone();
        let fabrics = bed.fabrics.clone();
        let kernel = tokio::spawn(async move {
            loop {
                if std::fs::read(&fabrics).unwrap().starts_with(b"transport=") {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    fake.add_tcp_controller(7, OURS, "10.42.68.1", 4420, "live")
                        .unwrap();
                    return;
                }
                tokio::time::sleep(TICK).await;
            }
        });
        let controller = bed.fabric.connect(&spec).await.unwrap();
        join(kernel).await;
        assert_eq!(controller.instance, 7);
        let written = std::fs::read(&bed.fabrics).unwrap();
        assert_eq!(&written[..options.len()], options.as_bytes());
    }

    #[tokio::test]
    async fn connect_reuses_live_or_connecting_controllers_without_writing() {
        for state in ["live", "connecting"] {
            let bed = bed();
            bed.fake
                .add_tcp_controller(4, OURS, "10.42.68.1", 4420, state)
                .unwrap();
            let controller = bed.fabric.connect(&spec(4420)).await.unwrap();
            assert_eq!(controller.instance, 4, "{state}");
            assert!(
                std::fs::read(&bed.fabrics).unwrap().is_empty(),
                "{state}: wrote to the fabrics device"
            );
        }
    }

    #[tokio::test]
    async fn connect_does_not_reuse_a_dead_controller_or_another_port() {
        let bed = bed();
        bed.fake
            .add_tcp_controller(1, OURS, "10.42.68.1", 4420, "dead")
            .unwrap();
        bed.fake
            .add_tcp_controller(2, OURS, "10.42.68.1", 4421, "live")
            .unwrap();
        let kernel = kernel_creates_controller(&bed, 5, 4420);
        let controller = bed.fabric.connect(&spec(4420)).await.unwrap();
        assert_eq!(controller.instance, 5);
        assert!(join(kernel).await.starts_with(b"transport=tcp,"));
    }

    #[tokio::test]
    async fn connect_times_out_when_no_controller_appears() {
        let bed = bed();
        let fabric = bed
            .fabric
            .clone()
            .with_settle_timeout(Duration::from_millis(150));
        let err = fabric.connect(&spec(4420)).await.unwrap_err();
        assert!(
            matches!(err, HelperError::ControllerNotVisible { ref nqn, .. } if nqn == OURS),
            "{err}"
        );
        assert_eq!(err.code(), tonic::Code::Unavailable);
    }

    #[tokio::test]
    async fn connect_rejects_garbage_replies() {
        let bed = bed();
        let spec = spec(4420);
        let mut initial = vec![b'#'; spec.to_string().len()];
        initial.extend_from_slice(b"hello there\n");
        std::fs::write(&bed.fabrics, &initial).unwrap();
        let err = bed.fabric.connect(&spec).await.unwrap_err();
        match err {
            HelperError::FabricReply { nqn, reply, .. } => {
                assert_eq!(nqn, OURS);
                assert_eq!(reply, "hello there\n");
            }
            other => panic!("expected FabricReply, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn connect_reports_kernel_refusal_and_missing_device() {
        let bed = bed();
        // /dev/full fails every write with ENOSPC: a stand-in for a kernel that refuses.
        let refusing = KernelFabric::new(bed.fake.root(), "/dev/full", &bed.dev);
        let err = refusing.connect(&spec(4420)).await.unwrap_err();
        match &err {
            HelperError::FabricConnect {
                nqn,
                trsvcid,
                source,
                ..
            } => {
                assert_eq!(nqn, OURS);
                assert_eq!(*trsvcid, 4420);
                assert_eq!(source.raw_os_error(), Some(libc::ENOSPC));
            }
            other => panic!("expected FabricConnect, got {other:?}"),
        }
        assert_eq!(err.code(), tonic::Code::Unavailable);

        let missing = KernelFabric::new(bed.fake.root(), bed.dev.join("no-such-device"), &bed.dev);
        let err = missing.connect(&spec(4420)).await.unwrap_err();
        assert!(matches!(err, HelperError::FabricDevice { .. }), "{err}");
        assert_eq!(err.code(), tonic::Code::Internal);
    }

    #[tokio::test]
    async fn connect_validates_before_writing() {
        let bed = bed();
        let mut bad = spec(4420);
        bad.trsvcid = 0;
        let err = bed.fabric.connect(&bad).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(std::fs::read(&bed.fabrics).unwrap().is_empty());
    }

    #[tokio::test]
    async fn disconnect_deletes_every_controller_of_the_nqn_and_nothing_else() {
        let bed = bed();
        bed.fake
            .add_tcp_controller(2, OURS, "10.42.68.1", 4420, "live")
            .unwrap();
        bed.fake
            .add_tcp_controller(5, OURS, "10.42.69.1", 4420, "connecting")
            .unwrap();
        bed.fake
            .add_tcp_controller(3, OTHER, "10.42.68.1", 4420, "live")
            .unwrap();
        let k2 = kernel_deletes_controller(&bed.fake, 2);
        let k5 = kernel_deletes_controller(&bed.fake, 5);
        let deadline = Instant::now() + Duration::from_secs(5);
        let removed = bed.fabric.disconnect(&nqn(OURS), deadline).await.unwrap();
        assert_eq!(removed, 2);
        assert_eq!(join(k2).await, b"1");
        assert_eq!(join(k5).await, b"1");
        assert!(
            bed.fake
                .read_controller_file(3, "delete_controller")
                .unwrap()
                .is_empty()
        );
        assert!(bed.fake.controller_dir(3).exists());
        // Idempotent: nothing left to do.
        let again = bed.fabric.disconnect(&nqn(OURS), deadline).await.unwrap();
        assert_eq!(again, 0);
    }

    #[tokio::test]
    async fn disconnect_gives_up_at_the_deadline() {
        let bed = bed();
        bed.fake
            .add_tcp_controller(2, OURS, "10.42.68.1", 4420, "live")
            .unwrap();
        let deadline = Instant::now() + Duration::from_millis(150);
        let err = bed
            .fabric
            .disconnect(&nqn(OURS), deadline)
            .await
            .unwrap_err();
        assert!(
            matches!(err, HelperError::DeadlineExceeded { ref target, .. } if target == OURS),
            "{err}"
        );
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(
            bed.fake
                .read_controller_file(2, "delete_controller")
                .unwrap(),
            b"1"
        );
    }

    #[tokio::test]
    async fn disconnect_waits_for_a_controller_already_being_deleted_without_writing() {
        let bed = bed();
        bed.fake
            .add_tcp_controller(2, OURS, "10.42.68.1", 4420, "deleting")
            .unwrap();
        let fake = bed.fake.clone();
        let kernel = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let written = fake.read_controller_file(2, "delete_controller").unwrap();
            fake.remove_controller(2).unwrap();
            written
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            bed.fabric.disconnect(&nqn(OURS), deadline).await.unwrap(),
            1
        );
        assert!(join(kernel).await.is_empty());
    }

    #[test]
    fn checked_write_refuses_a_controller_that_changed_hands() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeSysfs::create(tmp.path()).unwrap();
        let dir = fake
            .add_tcp_controller(2, OTHER, "10.42.68.1", 4420, "live")
            .unwrap();
        let outcome = write_checked_attr(&dir, &nqn(OURS), "delete_controller", true).unwrap();
        assert_eq!(outcome, AttrWrite::Gone);
        assert!(
            fake.read_controller_file(2, "delete_controller")
                .unwrap()
                .is_empty()
        );
        let outcome = write_checked_attr(
            &fake.controller_dir(9),
            &nqn(OURS),
            "delete_controller",
            true,
        )
        .unwrap();
        assert_eq!(outcome, AttrWrite::Gone);
        let outcome = write_checked_attr(&dir, &nqn(OTHER), "delete_controller", true).unwrap();
        assert_eq!(outcome, AttrWrite::Written);
        assert_eq!(
            fake.read_controller_file(2, "delete_controller").unwrap(),
            b"1"
        );
    }

    #[tokio::test]
    async fn rescan_writes_to_connected_controllers_of_the_nqn() {
        let bed = bed();
        bed.fake
            .add_tcp_controller(1, OURS, "10.42.68.1", 4420, "live")
            .unwrap();
        bed.fake
            .add_tcp_controller(2, OURS, "10.42.69.1", 4420, "dead")
            .unwrap();
        bed.fake
            .add_tcp_controller(3, OTHER, "10.42.68.1", 4420, "live")
            .unwrap();
        bed.fabric.rescan(&nqn(OURS)).await.unwrap();
        assert_eq!(
            bed.fake
                .read_controller_file(1, "rescan_controller")
                .unwrap(),
            b"1"
        );
        assert!(
            bed.fake
                .read_controller_file(2, "rescan_controller")
                .unwrap()
                .is_empty()
        );
        assert!(
            bed.fake
                .read_controller_file(3, "rescan_controller")
                .unwrap()
                .is_empty()
        );

        let err = bed
            .fabric
            .rescan(&nqn("nqn.2000-02.com.mikrotik:pvc-9"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
    }

    #[tokio::test]
    async fn resolve_device_needs_both_sysfs_and_the_node() {
        let bed = bed();
        bed.fake
            .add_tcp_controller(1, OURS, "10.42.68.1", 4420, "live")
            .unwrap();
        bed.fake.add_namespace_node(1, "nvme2c1n1").unwrap();
        bed.fake.add_subsystem(2, OURS).unwrap();
        bed.fake.add_subsystem_disk(2, "nvme2n1").unwrap();
        assert_eq!(bed.fabric.resolve_device(&nqn(OURS)).await.unwrap(), None);
        std::fs::write(bed.dev.join("nvme2n1"), b"").unwrap();
        assert_eq!(
            bed.fabric.resolve_device(&nqn(OURS)).await.unwrap(),
            Some(bed.dev.join("nvme2n1"))
        );
        assert_eq!(bed.fabric.resolve_device(&nqn(OTHER)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn connections_lists_tcp_controllers_with_valid_nqns() {
        let bed = bed();
        bed.fake
            .add_tcp_controller(1, OURS, "10.42.68.1", 4420, "live")
            .unwrap();
        bed.fake
            .add_tcp_controller(2, OTHER, "fd00::1", 4421, "connecting")
            .unwrap();
        bed.fake
            .add_controller(&FakeController {
                instance: 0,
                subsysnqn: b"nqn.2014.08.org.nvmexpress:144d144dS4EWNX0R Samsung\n",
                transport: b"pcie\n",
                address: b"0000:01:00.0\n",
                state: b"live\n",
            })
            .unwrap();
        bed.fake
            .add_tcp_controller(3, "NOT AN NQN", "10.42.68.1", 4420, "live")
            .unwrap();
        bed.fake
            .add_tcp_controller(4, OURS, "10.42.68.1", 4420, "live")
            .unwrap();
        bed.fake.write_controller_file(4, "state", b"\xff").unwrap();

        // Used the way the helper will: behind an Arc<dyn Fabric>.
        let fabric: Arc<dyn Fabric> = Arc::new(bed.fabric.clone());
        let list = fabric.connections().await.unwrap();
        assert_eq!(
            list,
            vec![
                Connection {
                    nqn: nqn(OURS),
                    controller: ControllerRef { instance: 1 },
                    state: ControllerState::Live,
                    traddr: "10.42.68.1".parse().unwrap(),
                    trsvcid: 4420,
                },
                Connection {
                    nqn: nqn(OTHER),
                    controller: ControllerRef { instance: 2 },
                    state: ControllerState::Connecting,
                    traddr: "fd00::1".parse().unwrap(),
                    trsvcid: 4421,
                },
            ]
        );
    }
}
