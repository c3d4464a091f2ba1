//! What the appliance's `/disk` and `/file` menus hold right now, as [`Record`]s in list order:
//! the pool (a mounted RAID), its two RAID members, then the file disks in order of creation; and
//! every file and directory under the root. Property order and types follow the appliance.

use std::path::Path;

use super::clock::Civil;
use super::printer::PrintStyle;
use super::record::{Flag, Prop, Record, id_text};
use super::state::{Disk, State};
use super::storage::{Capacity, FileEntry, capacity, list_files, under};

/// Internal id of the pool disk.
pub const POOL_ID: u32 = 1;
/// Internal ids of the pool's RAID members.
pub const MEMBER_IDS: [u32; 2] = [2, 3];

/// What a disk entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskKind {
    Pool,
    Member,
    /// A file disk: its position in [`State::disks`].
    File(usize),
}

/// A disk entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskItem {
    pub id: u32,
    pub kind: DiskKind,
    pub record: Record,
}

/// The fixed facts about the simulated pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolInfo<'a> {
    pub root: &'a Path,
    /// Mount point name (the pool directory directly under the root).
    pub mount: &'a str,
    pub size_override: Option<u64>,
}

impl PoolInfo<'_> {
    pub fn capacity(&self) -> Capacity {
        capacity(&self.root.join(self.mount), self.size_override)
    }
}

/// Every disk, in list order, with its index.
pub fn disks(pool: &PoolInfo<'_>, state: &State) -> Vec<DiskItem> {
    let cap = pool.capacity();
    let mut items = vec![DiskItem {
        id: POOL_ID,
        kind: DiskKind::Pool,
        record: pool_record(pool.mount, &cap),
    }];
    for (role, id) in MEMBER_IDS.into_iter().enumerate() {
        items.push(DiskItem {
            id,
            kind: DiskKind::Member,
            record: member_record(pool.mount, role, cap.size / 2),
        });
    }
    let mut order: Vec<usize> = (0..state.disks.len()).collect();
    order.sort_by_key(|i| state.disks[*i].id);
    for i in order {
        let disk = &state.disks[i];
        items.push(DiskItem {
            id: disk.id,
            kind: DiskKind::File(i),
            record: file_disk_record(disk),
        });
    }
    for (index, item) in items.iter_mut().enumerate() {
        item.record.index = index;
        item.record.id = id_text(item.id);
    }
    items
}

fn no(key: &'static str) -> (&'static str, Prop) {
    (key, Prop::Bool(false))
}

fn raw(key: &'static str, v: &str) -> (&'static str, Prop) {
    (key, Prop::Raw(v.to_string()))
}

fn string(key: &'static str, v: &str) -> (&'static str, Prop) {
    (key, Prop::Str(v.to_string()))
}

/// A stable uuid-looking value derived from `seed`.
fn pseudo_uuid(seed: &str, dashes: &[usize]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut hex = String::new();
    while hex.len() < 32 {
        for b in seed.bytes().chain(hex.len().to_le_bytes()) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hex.push_str(&format!("{hash:016x}"));
    }
    hex.truncate(32);
    let mut out = String::new();
    for (i, c) in hex.chars().enumerate() {
        if dashes.contains(&i) {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// The pool's own disk entry (a mounted RAID).
pub fn pool_record(mount: &str, cap: &Capacity) -> Record {
    Record {
        id: String::new(),
        index: 0,
        flags: vec![Flag::BlockDevice, Flag::Mounted],
        comment: None,
        props: vec![
            raw("type", "raid"),
            string("slot", mount),
            string("slot-default", ""),
            string("parent", ""),
            string("fs-label", mount),
            string("fs-uuid", &pseudo_uuid(mount, &[8, 12, 16, 20])),
            raw("fs", cap.fs),
            string("model", "RAID0 striped"),
            ("size", Prop::Big(cap.size)),
            ("free", Prop::Big(cap.free)),
            ("total-inodes", Prop::Big(cap.total_inodes)),
            ("free-inodes", Prop::Big(cap.free_inodes)),
            ("use", Prop::Percent(cap.use_percent())),
            string("mount-point", mount),
            ("mount-filesystem", Prop::Bool(true)),
            no("mount-read-only"),
            no("compress"),
            ("sector-size", Prop::Int(512)),
            ("raid-type", Prop::Int(0)),
            ("raid-device-count", Prop::Int(2)),
            raw("raid-max-component-size", "none"),
            raw("raid-chunk-size", "256K"),
            raw("raid-master", "none"),
            string("state", "clean"),
            string(
                "raid-uuid",
                &pseudo_uuid(&format!("{mount}/raid"), &[8, 16, 24]),
            ),
            no("nvme-tcp-export"),
            no("iscsi-export"),
            no("nfs-sharing"),
            no("smb-sharing"),
            no("media-sharing"),
            raw("media-interface", "none"),
            no("swap"),
        ],
    }
}

/// A RAID member of the pool.
pub fn member_record(mount: &str, role: usize, size: u64) -> Record {
    Record {
        id: String::new(),
        index: 0,
        flags: vec![Flag::BlockDevice, Flag::RaidMember],
        comment: None,
        props: vec![
            raw("type", "raid"),
            string("slot", &format!("{mount}-m{role}")),
            string("slot-default", ""),
            string("parent", ""),
            raw("fs", "-"),
            string("model", "RAID1 mirrored"),
            ("size", Prop::Big(size)),
            no("mount-filesystem"),
            no("mount-read-only"),
            no("compress"),
            ("sector-size", Prop::Int(512)),
            ("raid-type", Prop::Int(1)),
            ("raid-device-count", Prop::Int(2)),
            raw("raid-max-component-size", "none"),
            raw("raid-master", mount),
            ("raid-role", Prop::Int(role as u64)),
            no("raid-member-failed"),
            string("raid-member-state", "0:in_sync"),
            string("state", "clean"),
            string(
                "raid-uuid",
                &pseudo_uuid(&format!("{mount}/m{role}"), &[8, 16, 24]),
            ),
            no("nvme-tcp-export"),
            no("iscsi-export"),
            no("nfs-sharing"),
            no("smb-sharing"),
            no("media-sharing"),
            raw("media-interface", "none"),
            no("swap"),
        ],
    }
}

/// A file disk's entry.
pub fn file_disk_record(disk: &Disk) -> Record {
    let path = format!("/{}", disk.file_path);
    let mut flags = vec![Flag::BlockDevice];
    if disk.export {
        flags.push(Flag::NvmeTcpExport);
    }
    let mut props = vec![
        raw("type", "file"),
        string("slot", &disk.slot),
        string("slot-default", ""),
        string("parent", ""),
        raw("fs", "-"),
        string("model", &path),
        ("size", Prop::Big(disk.file_size)),
        ("mount-filesystem", Prop::Bool(disk.mount_filesystem)),
        no("mount-read-only"),
        no("compress"),
        ("sector-size", Prop::Int(512)),
        raw("raid-master", "none"),
        ("nvme-tcp-export", Prop::Bool(disk.export)),
    ];
    if disk.export {
        props.push((
            "nvme-tcp-server-port",
            Prop::Int(u64::from(disk.port.unwrap_or(4420))),
        ));
        props.push(string(
            "nvme-tcp-server-nqn",
            disk.nqn.as_deref().unwrap_or_default(),
        ));
        props.push(string("nvme-tcp-server-allow-host-name", &disk.allow_host));
    }
    props.extend([
        no("iscsi-export"),
        no("nfs-sharing"),
        no("smb-sharing"),
        no("media-sharing"),
        raw("media-interface", "none"),
        no("swap"),
        raw("file-path", &path),
        ("file-size", Prop::Human(disk.file_size)),
        ("file-offset", Prop::Int(0)),
    ]);
    Record {
        id: String::new(),
        index: 0,
        flags,
        comment: disk.comment.clone(),
        props,
    }
}

/// Every file and directory, in list order. The pool's own directory carries its capacity.
pub fn files(pool: &PoolInfo<'_>, style: PrintStyle) -> Vec<Record> {
    let entries = list_files(pool.root);
    let cap = entries
        .iter()
        .any(|e| e.is_dir && e.name == pool.mount)
        .then(|| pool.capacity());
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let cap = cap
                .as_ref()
                .filter(|_| entry.is_dir && entry.name == pool.mount);
            file_record(index, entry, cap, style)
        })
        .collect()
}

/// The record of one `/file` entry; `capacity` is given for the pool's own directory.
pub fn file_record(
    index: usize,
    entry: &FileEntry,
    capacity: Option<&Capacity>,
    style: PrintStyle,
) -> Record {
    let civil = Civil::from_system(entry.modified);
    let (date_key, date) = match style {
        PrintStyle::New => ("last-modified", civil.routeros_new()),
        PrintStyle::Old => ("creation-time", civil.routeros_old()),
    };
    let mut props = vec![raw("name", &entry.name)];
    if entry.is_dir {
        props.push(raw("type", "directory"));
        if let Some(cap) = capacity {
            props.push(("size", Prop::Big(cap.size)));
            props.push(("free", Prop::Big(cap.free)));
            props.push(("use", Prop::Percent(cap.use_percent())));
        }
    } else {
        let kind = match entry
            .name
            .rsplit('/')
            .next()
            .and_then(|n| n.rsplit_once('.'))
        {
            Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => format!(".{ext} file"),
            _ => "file".to_string(),
        };
        props.push(raw("type", &kind));
        props.push(("size", Prop::Human(entry.size)));
    }
    props.push(raw(date_key, &date));
    Record {
        id: id_text(u32::try_from(index + 1).unwrap_or(u32::MAX)),
        index,
        flags: Vec::new(),
        comment: None,
        props,
    }
}

/// The host path of a disk's backing file.
pub fn backing_path(root: &Path, disk: &Disk) -> std::path::PathBuf {
    under(root, &disk.file_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_uuids_are_stable_and_shaped() {
        let a = pseudo_uuid("raid10", &[8, 12, 16, 20]);
        assert_eq!(a, pseudo_uuid("raid10", &[8, 12, 16, 20]));
        assert_ne!(a, pseudo_uuid("raid11", &[8, 12, 16, 20]));
        let parts: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(parts, vec![8, 4, 4, 4, 12]);
    }
}
