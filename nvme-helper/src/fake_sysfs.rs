//! Test support: builds a fake NVMe sysfs tree in a directory of the caller's choosing.
//!
//! The helper's sysfs reader and `KernelFabric` take a configurable root so that tests can point
//! them at a tree built here. The layout follows the kernel's: `class/...` entries are symbolic
//! links into `devices/...`, controllers are assembled in a staging directory and linked in with
//! one atomic step (as the kernel publishes a device), and write-only attributes such as
//! `delete_controller` are regular files whose content a test can inspect. Nothing here is used
//! by the helper at run time.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// A controller to create, with raw attribute contents (so tests can plant garbage).
#[derive(Debug, Clone)]
pub struct FakeController<'a> {
    /// The `N` of `nvmeN`.
    pub instance: u32,
    /// Content of `subsysnqn`.
    pub subsysnqn: &'a [u8],
    /// Content of `transport`.
    pub transport: &'a [u8],
    /// Content of `address`.
    pub address: &'a [u8],
    /// Content of `state`.
    pub state: &'a [u8],
}

/// A fake sysfs tree rooted at `root`.
#[derive(Debug, Clone)]
pub struct FakeSysfs {
    root: PathBuf,
}

impl FakeSysfs {
    /// Creates the skeleton (`class/nvme`, `class/nvme-subsystem`, `class/block`, `devices/`).
    pub fn create(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        for dir in [
            "class/nvme",
            "class/nvme-subsystem",
            "class/block",
            "devices/virtual/nvme-fabrics/ctl",
            "devices/virtual/nvme-subsystem",
            "devices/virtual/block",
        ] {
            fs::create_dir_all(root.join(dir))?;
        }
        Ok(Self { root })
    }

    /// The root to hand to `Sysfs::new`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `class/nvme/nvmeN` (a symbolic link into `devices/`).
    pub fn controller_dir(&self, instance: u32) -> PathBuf {
        self.root.join("class/nvme").join(format!("nvme{instance}"))
    }

    fn controller_device_dir(&self, instance: u32) -> PathBuf {
        self.root
            .join("devices/virtual/nvme-fabrics/ctl")
            .join(format!("nvme{instance}"))
    }

    /// Adds a TCP controller with well-formed attributes (`src_addr` is always 10.42.68.10).
    pub fn add_tcp_controller(
        &self,
        instance: u32,
        subsysnqn: &str,
        traddr: &str,
        trsvcid: u16,
        state: &str,
    ) -> io::Result<PathBuf> {
        let address = format!("traddr={traddr},trsvcid={trsvcid},src_addr=10.42.68.10\n");
        self.add_controller(&FakeController {
            instance,
            subsysnqn: format!("{subsysnqn}\n").as_bytes(),
            transport: b"tcp\n",
            address: address.as_bytes(),
            state: format!("{state}\n").as_bytes(),
        })
    }

    /// Adds a controller; it becomes visible under `class/nvme` only once it is complete.
    pub fn add_controller(&self, c: &FakeController<'_>) -> io::Result<PathBuf> {
        let name = format!("nvme{}", c.instance);
        let device = self.controller_device_dir(c.instance);
        let staging = self
            .root
            .join("devices/virtual/nvme-fabrics")
            .join(format!(".staging-{name}"));
        if staging.exists() {
            fs::remove_dir_all(&staging)?;
        }
        fs::create_dir_all(&staging)?;
        fs::write(staging.join("subsysnqn"), c.subsysnqn)?;
        fs::write(staging.join("transport"), c.transport)?;
        fs::write(staging.join("address"), c.address)?;
        fs::write(staging.join("state"), c.state)?;
        fs::write(staging.join("delete_controller"), b"")?;
        fs::write(staging.join("rescan_controller"), b"")?;
        if device.exists() {
            fs::remove_dir_all(&device)?;
        }
        fs::rename(&staging, &device)?;
        let link = self.controller_dir(c.instance);
        let _ = fs::remove_file(&link);
        symlink(
            Path::new("../../devices/virtual/nvme-fabrics/ctl").join(&name),
            &link,
        )?;
        Ok(link)
    }

    /// Removes a controller: first its `class/nvme` link, then its device directory.
    pub fn remove_controller(&self, instance: u32) -> io::Result<()> {
        fs::remove_file(self.controller_dir(instance))?;
        fs::remove_dir_all(self.controller_device_dir(instance))
    }

    /// Replaces the `state` attribute.
    pub fn set_state(&self, instance: u32, state: &str) -> io::Result<()> {
        self.write_controller_file(instance, "state", format!("{state}\n").as_bytes())
    }

    /// Writes any file inside a controller directory.
    pub fn write_controller_file(
        &self,
        instance: u32,
        file: &str,
        content: &[u8],
    ) -> io::Result<()> {
        fs::write(self.controller_device_dir(instance).join(file), content)
    }

    /// Reads any file inside a controller directory.
    pub fn read_controller_file(&self, instance: u32, file: &str) -> io::Result<Vec<u8>> {
        fs::read(self.controller_device_dir(instance).join(file))
    }

    /// Removes one file of a controller directory.
    pub fn remove_controller_file(&self, instance: u32, file: &str) -> io::Result<()> {
        fs::remove_file(self.controller_device_dir(instance).join(file))
    }

    /// Adds a child directory to a controller: `nvmeXnY` (disk) or `nvmeScCnH` (multipath path).
    pub fn add_namespace_node(&self, instance: u32, name: &str) -> io::Result<()> {
        fs::create_dir_all(self.controller_device_dir(instance).join(name))
    }

    /// Adds `class/nvme-subsystem/nvme-subsysK` with the given `subsysnqn`.
    pub fn add_subsystem(&self, instance: u32, subsysnqn: &str) -> io::Result<PathBuf> {
        let name = format!("nvme-subsys{instance}");
        let device = self.root.join("devices/virtual/nvme-subsystem").join(&name);
        fs::create_dir_all(&device)?;
        fs::write(device.join("subsysnqn"), format!("{subsysnqn}\n"))?;
        let link = self.root.join("class/nvme-subsystem").join(&name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(
                Path::new("../../devices/virtual/nvme-subsystem").join(&name),
                &link,
            )?;
        }
        Ok(link)
    }

    /// Adds a multipath head disk (`nvmeMnZ`) to a subsystem.
    pub fn add_subsystem_disk(&self, instance: u32, disk: &str) -> io::Result<()> {
        fs::create_dir_all(
            self.root
                .join("devices/virtual/nvme-subsystem")
                .join(format!("nvme-subsys{instance}"))
                .join(disk),
        )
    }

    /// Adds `class/block/<name>` with a `size` (in 512-byte sectors) and an empty `holders/`.
    pub fn add_block_device(&self, name: &str, sectors: u64) -> io::Result<()> {
        let device = self.root.join("devices/virtual/block").join(name);
        fs::create_dir_all(device.join("holders"))?;
        fs::write(device.join("size"), format!("{sectors}\n"))?;
        let link = self.root.join("class/block").join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("../../devices/virtual/block").join(name), &link)?;
        }
        Ok(())
    }

    /// Adds a holder entry under `class/block/<device>/holders/`.
    pub fn add_holder(&self, device: &str, holder: &str) -> io::Result<()> {
        fs::create_dir_all(
            self.root
                .join("devices/virtual/block")
                .join(device)
                .join("holders")
                .join(holder),
        )
    }

    /// Writes any file relative to the root, creating parent directories.
    pub fn write_file(&self, relative: &str, content: &[u8]) -> io::Result<()> {
        let path = self.root.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(path, content)
    }
}
