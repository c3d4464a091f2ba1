//! `sysfs_tree`: the node helper's sysfs reader over a fake tree whose attributes and entry names
//! come from the fuzzer.
//!
//! A fake sysfs (the helper's own `fake_sysfs` layout: `class/` links into `devices/`) is made once
//! per process in a temporary directory, with three controllers, one subsystem and one block
//! device. Each input rewrites their attribute files and child entries, then runs every lookup.
//!
//! Input fields: the NQN to look up; for each controller its `subsysnqn`, `transport`, `address`,
//! `state` and a comma-separated list of child names; the subsystem's `subsysnqn` and disk names;
//! a block device name to query and the device's `size` attribute. Oracles:
//! - nothing panics, whatever the attributes hold;
//! - every controller found for an NQN has exactly that `subsysnqn`; connected ones are live or
//!   connecting;
//! - every namespace device is a plain kernel disk name (`nvme<N>n<M>`), either a child of a
//!   connected controller of the NQN or a multipath head present in a subsystem of that NQN, and a
//!   resolved device is one of them;
//! - a device name with `/`, `.` or `..` is refused before any path is built from it.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;

use nvme_helper::fake_sysfs::{FakeController, FakeSysfs};
use nvme_helper::nqn::Nqn;
use nvme_helper::sysfs::Sysfs;
use tempfile::TempDir;

use crate::input::Fields;

/// Tokens of sysfs attributes and entry names.
pub const DICTIONARY: &[&[u8]] = &[
    b"nqn.2000-02.com.mikrotik:pvc-1",
    b"nqn.2000-02.com.mikrotik:pvc-1\n",
    b"tcp",
    b"pcie",
    b"loop",
    b"live",
    b"connecting",
    b"deleting (no IO)",
    b"traddr=10.42.68.1,trsvcid=4420,src_addr=10.42.68.10",
    b"nvme0n1",
    b"nvme1n1",
    b"nvme0c0n1",
    b"nvme0c1n1",
    b"nvme00n1",
    b"nvme0n1p1",
    b"nvme4294967296n1",
    b"power",
    b"subsysnqn",
    b"holders",
    b"../../../etc",
];

const OURS: &str = "nqn.2000-02.com.mikrotik:pvc-1";
const CONTROLLERS: u32 = 3;
const ATTRIBUTES: [&str; 4] = ["subsysnqn", "transport", "address", "state"];

struct Fixture {
    _dir: TempDir,
    fake: FakeSysfs,
    sysfs: Sysfs,
    /// Child entries made by the previous input, to remove.
    made: Vec<PathBuf>,
}

static FIXTURE: Mutex<Option<Fixture>> = Mutex::new(None);

fn build() -> std::io::Result<Fixture> {
    let dir = super::scratch_dir("rds-csi-fuzz-sysfs-")?;
    let fake = FakeSysfs::create(dir.path().join("sys"))?;
    for instance in 0..CONTROLLERS {
        fake.add_controller(&FakeController {
            instance,
            subsysnqn: OURS.as_bytes(),
            transport: b"tcp",
            address: b"traddr=10.42.68.1,trsvcid=4420",
            state: b"live",
        })?;
    }
    fake.add_subsystem(0, OURS)?;
    fake.add_block_device("nvme0n1", 2048)?;
    let sysfs = Sysfs::new(fake.root());
    Ok(Fixture {
        _dir: dir,
        fake,
        sysfs,
        made: Vec::new(),
    })
}

/// Removes the temporary tree (the next call builds it again).
pub fn teardown() {
    FIXTURE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
}

/// A name the kernel could give a directory entry (others cannot be created at all).
fn creatable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
        && !ATTRIBUTES.contains(&name)
        && !matches!(name, "delete_controller" | "rescan_controller")
}

fn canonical_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

/// `nvme<N>n<M>` with canonical numbers.
fn is_disk_name(name: &str) -> bool {
    name.strip_prefix("nvme")
        .and_then(|rest| rest.split_once('n'))
        .is_some_and(|(a, b)| canonical_number(a) && canonical_number(b))
}

fn rewrite(fixture: &mut Fixture, f: &mut Fields<'_>) -> BTreeSet<(u32, String)> {
    for path in fixture.made.drain(..) {
        let _ = fs::remove_dir_all(path);
    }
    let mut children = BTreeSet::new();
    for instance in 0..CONTROLLERS {
        for attribute in ATTRIBUTES {
            let _ = fixture
                .fake
                .write_controller_file(instance, attribute, f.bytes());
        }
        let dir = fixture.fake.controller_dir(instance);
        for name in f.text().split(',').take(8).filter(|n| creatable(n)) {
            if fixture.fake.add_namespace_node(instance, name).is_ok() {
                fixture.made.push(dir.join(name));
                children.insert((instance, name.to_owned()));
            }
        }
    }
    let subsystem = "devices/virtual/nvme-subsystem/nvme-subsys0";
    let _ = fixture
        .fake
        .write_file(&format!("{subsystem}/subsysnqn"), f.bytes());
    for name in f.text().split(',').take(8).filter(|n| creatable(n)) {
        if fixture.fake.add_subsystem_disk(0, name).is_ok() {
            fixture
                .made
                .push(fixture.fake.root().join(subsystem).join(name));
        }
    }
    children
}

/// Rewrites the fake tree from the input, runs every lookup and checks the oracles above.
pub fn sysfs_tree(data: &[u8]) {
    let mut guard = FIXTURE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if guard.is_none() {
        match build() {
            Ok(f) => *guard = Some(f),
            Err(e) => panic!("cannot build the fake sysfs: {e}"),
        }
    }
    let Some(fixture) = guard.as_mut() else {
        return;
    };
    let mut f = Fields::new(data);
    let nqn_text = f.text();
    let nqn = Nqn::new(nqn_text.trim()).unwrap_or_else(|_| {
        Nqn::new(OURS).unwrap_or_else(|e| panic!("the fixed NQN is valid: {e}"))
    });
    let children = rewrite(fixture, &mut f);
    let device = f.text();
    let size_attr = f.bytes();
    let _ = fixture
        .fake
        .write_file("devices/virtual/block/nvme0n1/size", size_attr);
    let sysfs = &fixture.sysfs;

    let _ = sysfs.scan_controllers();
    let refs = sysfs.controller_refs_for(&nqn).unwrap_or_default();
    if let Ok(found) = sysfs.controllers_for(&nqn) {
        for c in &found {
            assert_eq!(
                c.subsysnqn,
                nqn.as_str(),
                "controller {} of another NQN",
                c.controller
            );
            assert!(
                refs.contains(&c.controller),
                "controller_refs_for misses {}",
                c.controller
            );
        }
    }
    if let Ok(connected) = sysfs.connected_controllers(&nqn) {
        assert!(
            connected.iter().all(|c| c.state.is_connected()),
            "unconnected controller"
        );
    }
    let namespaces = sysfs.namespaces(&nqn);
    if let Ok(list) = &namespaces {
        let connected: BTreeSet<u32> = sysfs
            .connected_controllers(&nqn)
            .unwrap_or_default()
            .iter()
            .map(|c| c.controller.instance)
            .collect();
        for ns in list {
            assert!(is_disk_name(&ns.device), "namespace device {:?}", ns.device);
            if !ns.multipath {
                assert!(
                    children
                        .iter()
                        .any(|(i, name)| connected.contains(i) && *name == ns.device),
                    "namespace {:?} is not a child of a connected controller of {nqn}",
                    ns.device
                );
            } else {
                let dirs = sysfs.subsystem_dirs_for(&nqn).unwrap_or_default();
                assert!(
                    dirs.iter().any(|d| d.join(&ns.device).exists()),
                    "multipath namespace {:?} is not in a subsystem of {nqn}",
                    ns.device
                );
            }
        }
    }
    if let Ok(Some(resolved)) = sysfs.resolve_device(&nqn) {
        let listed = namespaces
            .as_ref()
            .map(|l| l.iter().any(|n| n.device == resolved));
        assert_eq!(
            listed.ok(),
            Some(true),
            "resolved device {resolved:?} is not a namespace"
        );
    }
    let unsafe_name = device.is_empty() || device == "." || device == ".." || device.contains('/');
    for (what, outcome) in [
        (
            "size",
            sysfs.device_size_bytes(&device).map(|b| {
                assert_eq!(b % 512, 0, "device size is not whole sectors");
            }),
        ),
        ("holders", sysfs.holders(&device).map(|_| ())),
    ] {
        if unsafe_name {
            assert!(
                outcome.is_err(),
                "{what} of device {device:?} was looked up"
            );
        }
    }
    let _ = sysfs.device_size_bytes("nvme0n1");
}
