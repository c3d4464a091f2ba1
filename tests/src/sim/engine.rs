//! Runs a parsed command line against the appliance state and the host files, producing the
//! terminal output. Commands run in order; the first runtime failure prints its message
//! (`failure: not enough space`, `no such item`, ...) and stops the line, as on RouterOS.

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::ast::{Cmd, Cond, DiskProps, Expr, Menu, Print, PrintMode, Script};
use super::config::RosVersion;
use super::inventory::{self, DiskItem, PoolInfo};
use super::matcher::matches;
use super::printer::{self, Layout, PrintStyle};
use super::record::{Record, parse_id};
use super::state::{Disk, State};
use super::storage::{self, META_DIR, under};
use super::units::{bit_rate, human_size, uptime};
use super::value::{ItemKey, Value};

/// The default NVMe/TCP port.
pub const DEFAULT_PORT: u16 = 4420;

/// The facts a command runs with.
#[derive(Debug, Clone)]
pub struct Env<'a> {
    pub root: &'a Path,
    /// The pool's mount point (directory directly under the root).
    pub pool_mount: &'a str,
    pub pool_size: Option<u64>,
    pub style: PrintStyle,
    pub width: usize,
    pub version: RosVersion,
    pub json_floats: bool,
    pub board: &'a str,
    pub uptime: Duration,
}

/// What running a line did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Output lines, without line ends.
    pub lines: Vec<String>,
    /// The persistent state changed and must be stored.
    pub changed: bool,
}

/// A runtime failure: the message the console prints.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure(String);

type Step<T> = Result<T, Failure>;

fn failure(text: &str) -> Failure {
    Failure(format!("failure: {text}"))
}

fn no_such_item() -> Failure {
    Failure("no such item".to_string())
}

/// Runs every command of `script` in order.
pub fn run(env: &Env<'_>, state: &mut State, script: &Script) -> Outcome {
    let mut exec = Exec {
        env,
        state,
        lines: Vec::new(),
        changed: false,
    };
    for cmd in &script.commands {
        if let Err(Failure(text)) = exec.eval(cmd) {
            exec.lines.push(text);
            break;
        }
    }
    Outcome {
        lines: exec.lines,
        changed: exec.changed,
    }
}

struct Exec<'e, 's> {
    env: &'e Env<'e>,
    state: &'s mut State,
    lines: Vec<String>,
    changed: bool,
}

impl Exec<'_, '_> {
    fn pool(&self) -> PoolInfo<'_> {
        PoolInfo {
            root: self.env.root,
            mount: self.env.pool_mount,
            size_override: self.env.pool_size,
        }
    }

    fn disks(&self) -> Vec<DiskItem> {
        inventory::disks(&self.pool(), self.state)
    }

    fn files(&self) -> Vec<Record> {
        inventory::files(&self.pool(), self.env.style)
    }

    fn eval(&mut self, cmd: &Cmd) -> Step<Value> {
        match cmd {
            Cmd::Nothing => Ok(Value::Nothing),
            Cmd::Print { menu, print } => self.print(*menu, print),
            Cmd::Find { menu, cond } => Ok(self.find(*menu, cond.as_ref())),
            Cmd::DiskAdd(props) => match &props.copy_from {
                Some(source) => self.disk_copy(source, props),
                None => self.disk_add(props),
            },
            Cmd::DiskSet { target, props } => self.disk_set(target, props),
            Cmd::Remove {
                menu: Menu::Disk,
                target,
            } => self.disk_remove(target),
            Cmd::Remove {
                menu: Menu::File,
                target,
            } => self.file_remove(target),
            Cmd::Monitor { target } => self.monitor(target),
            Cmd::SystemResourcePrint => {
                self.system_resource();
                Ok(Value::Nothing)
            }
            Cmd::Put(expr) => {
                let value = self.expr(expr)?;
                self.lines.push(value.put_text());
                Ok(Value::Nothing)
            }
            Cmd::Serialize(expr) => {
                let value = self.expr(expr)?;
                Ok(Value::Str(value.to_json(self.env.json_floats)))
            }
        }
    }

    fn expr(&mut self, expr: &Expr) -> Step<Value> {
        match expr {
            Expr::Lit(s) => Ok(Value::Str(s.clone())),
            Expr::Sub(cmd) => self.eval(cmd),
        }
    }

    fn records(&self, menu: Menu) -> Vec<Record> {
        match menu {
            Menu::Disk => self.disks().into_iter().map(|d| d.record).collect(),
            Menu::File => self.files(),
        }
    }

    fn print(&mut self, menu: Menu, print: &Print) -> Step<Value> {
        let records: Vec<Record> = self
            .records(menu)
            .into_iter()
            .filter(|r| print.cond.as_ref().is_none_or(|c| matches(r, c)))
            .collect();
        match print.mode {
            PrintMode::AsValue => return Ok(Value::Records(records)),
            PrintMode::CountOnly => {
                self.lines.push(records.len().to_string());
                return Ok(Value::Num(records.len() as u64));
            }
            PrintMode::Terse => self.lines.extend(printer::terse(&records)),
            PrintMode::Detail => {
                let layout = Layout {
                    style: self.env.style,
                    width: self.env.width,
                    legend: menu == Menu::Disk,
                    filtered: print.cond.is_some(),
                    old_breaks: match menu {
                        Menu::Disk => &["nvme-tcp-export", "file-path"],
                        Menu::File => &[],
                    },
                    separator: match (menu, self.env.style) {
                        (Menu::Disk, PrintStyle::New) => " ",
                        _ => "",
                    },
                };
                self.lines.extend(printer::detail(&records, &layout));
            }
        }
        Ok(Value::Nothing)
    }

    fn find(&self, menu: Menu, cond: Option<&Cond>) -> Value {
        let keep = |r: &Record| cond.is_none_or(|c| matches(r, c));
        let items = match menu {
            Menu::Disk => self
                .disks()
                .into_iter()
                .filter(|d| keep(&d.record))
                .map(|d| (ItemKey::Disk(d.id), d.record.id))
                .collect(),
            Menu::File => self
                .files()
                .into_iter()
                .filter(|r| keep(r))
                .map(|r| {
                    let name = r.get("name").map(|p| p.text()).unwrap_or_default();
                    (ItemKey::File(name), r.id)
                })
                .collect(),
        };
        Value::Items(menu, items)
    }

    /// The disks an item list names: a `[find]` result, ids (`*1F`) or slot names.
    fn disk_targets(&mut self, expr: &Expr) -> Step<Vec<u32>> {
        let text = match expr {
            Expr::Sub(cmd) => {
                return match self.eval(cmd)? {
                    Value::Nothing => Ok(Vec::new()),
                    Value::Items(Menu::Disk, items) => Ok(items
                        .into_iter()
                        .filter_map(|(k, _)| match k {
                            ItemKey::Disk(id) => Some(id),
                            ItemKey::File(_) => None,
                        })
                        .collect()),
                    Value::Str(s) => self.disk_names(&s),
                    _ => Err(Failure("invalid internal item number".to_string())),
                };
            }
            Expr::Lit(s) => s.clone(),
        };
        self.disk_names(&text)
    }

    fn disk_names(&self, text: &str) -> Step<Vec<u32>> {
        let disks = self.disks();
        let mut ids = Vec::new();
        for part in text.split(',') {
            let found = match parse_id(part) {
                Some(id) => disks.iter().find(|d| d.id == id),
                None => disks
                    .iter()
                    .find(|d| d.record.get("slot").is_some_and(|s| s.text() == part)),
            };
            match found {
                Some(d) => ids.push(d.id),
                None => return Err(no_such_item()),
            }
        }
        Ok(ids)
    }

    /// The files an item list names: a `[find]` result, ids (`*3`) or names.
    fn file_targets(&mut self, expr: &Expr) -> Step<Vec<String>> {
        let text = match expr {
            Expr::Sub(cmd) => {
                return match self.eval(cmd)? {
                    Value::Nothing => Ok(Vec::new()),
                    Value::Items(Menu::File, items) => Ok(items
                        .into_iter()
                        .filter_map(|(k, _)| match k {
                            ItemKey::File(name) => Some(name),
                            ItemKey::Disk(_) => None,
                        })
                        .collect()),
                    Value::Str(s) => self.file_names(&s),
                    _ => Err(Failure("invalid internal item number".to_string())),
                };
            }
            Expr::Lit(s) => s.clone(),
        };
        self.file_names(&text)
    }

    fn file_names(&self, text: &str) -> Step<Vec<String>> {
        let files = self.files();
        let mut names = Vec::new();
        for part in text.split(',') {
            let found = files.iter().find(|r| {
                r.id.eq_ignore_ascii_case(part) || r.get("name").is_some_and(|n| n.text() == part)
            });
            match found.and_then(|r| r.get("name")) {
                Some(name) => names.push(name.text()),
                None => return Err(no_such_item()),
            }
        }
        Ok(names)
    }

    /// The position in `state.disks` of a file disk id, or a failure for the pool and members.
    fn file_disk(&self, id: u32) -> Step<usize> {
        self.state
            .disks
            .iter()
            .position(|d| d.id == id)
            .ok_or_else(|| failure("not a file disk"))
    }

    fn slot_taken(&self, slot: &str, except: Option<u32>) -> bool {
        self.disks()
            .iter()
            .any(|d| Some(d.id) != except && d.record.get("slot").is_some_and(|s| s.text() == slot))
    }

    fn nqn_taken(&self, nqn: &str, except: Option<u32>) -> bool {
        self.state
            .disks
            .iter()
            .any(|d| Some(d.id) != except && d.export && d.nqn.as_deref() == Some(nqn))
    }

    fn free_space(&self) -> u64 {
        self.pool().capacity().free
    }

    /// Checks a new disk's slot and file path; returns the normalised path.
    fn check_new_disk(&self, props: &DiskProps) -> Step<(String, String)> {
        let slot = match props.slot.as_deref() {
            None => return Err(failure("slot must be set")),
            Some("") => return Err(failure("slot must not be empty")),
            Some(s) => s.to_string(),
        };
        if self.slot_taken(&slot, None) {
            return Err(failure("already have disk with such slot"));
        }
        let Some(raw_path) = props.file_path.as_deref() else {
            return Err(failure("file-path must be set"));
        };
        let path = normalise_path(raw_path)?;
        let first = path.split('/').next().unwrap_or_default();
        let dir = self.env.root.join(first);
        if !path.contains('/') || !dir.is_dir() {
            return Err(failure("could not create file, directory does not exist"));
        }
        if under(self.env.root, &path).symlink_metadata().is_ok() {
            return Err(failure("file already exists"));
        }
        Ok((slot, path))
    }

    /// The export settings of a new disk, checked.
    fn export_of(
        &self,
        props: &DiskProps,
        slot: &str,
    ) -> Step<(bool, Option<u16>, Option<String>)> {
        let export = props.export.unwrap_or(false);
        let nqn = props
            .nqn
            .clone()
            .or_else(|| export.then(|| format!("nqn.2000-02.com.mikrotik:{slot}")));
        if export
            && let Some(n) = &nqn
            && self.nqn_taken(n, None)
        {
            return Err(failure("already have disk with such nvme-tcp-server-nqn"));
        }
        Ok((export, props.port.or(export.then_some(DEFAULT_PORT)), nqn))
    }

    fn make_parent(&self, path: &str) -> Step<()> {
        let full = under(self.env.root, path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).map_err(|_| failure("could not create directory"))?;
        }
        Ok(())
    }

    fn disk_add(&mut self, props: &DiskProps) -> Step<Value> {
        let (slot, path) = self.check_new_disk(props)?;
        let size = match props.file_size {
            None => return Err(failure("file-size must be set")),
            Some(0) => return Err(failure("file-size must be greater than 0")),
            Some(s) => s,
        };
        let (export, port, nqn) = self.export_of(props, &slot)?;
        if size > self.free_space() {
            return Err(failure("not enough space"));
        }
        self.make_parent(&path)?;
        storage::create_sparse(&under(self.env.root, &path), size)
            .map_err(|_| failure("could not create file"))?;
        self.insert(Disk {
            id: 0,
            slot,
            file_path: path,
            file_size: size,
            export,
            port,
            nqn,
            allow_host: props.allow_host.clone().unwrap_or_default(),
            comment: props.comment.clone().filter(|c| !c.is_empty()),
            mount_filesystem: props.mount_filesystem.unwrap_or(true),
        })
    }

    fn insert(&mut self, mut disk: Disk) -> Step<Value> {
        disk.id = self.state.allocate_id();
        let id = super::record::id_text(disk.id);
        self.state.disks.push(disk);
        self.changed = true;
        Ok(Value::Str(id))
    }

    fn disk_copy(&mut self, source: &Expr, props: &DiskProps) -> Step<Value> {
        let ids = match self.disk_targets(source) {
            Ok(ids) => ids,
            Err(_) => return Err(failure("no such item")),
        };
        let Some(&source_id) = ids.first() else {
            return Err(failure("no such item"));
        };
        let source_disk = self.state.disks[self.file_disk(source_id)?].clone();
        let (slot, path) = self.check_new_disk(props)?;
        let size = props.file_size.unwrap_or(source_disk.file_size);
        if size < source_disk.file_size {
            return Err(failure("file-size can not be smaller than the source"));
        }
        let (export, port, nqn) = self.export_of(props, &slot)?;
        if size > self.free_space() {
            return Err(failure("not enough space"));
        }
        self.make_parent(&path)?;
        let target = under(self.env.root, &path);
        let from = inventory::backing_path(self.env.root, &source_disk);
        storage::copy_sparse(&from, &target).map_err(|_| failure("could not copy file"))?;
        if size > source_disk.file_size {
            storage::grow(&target, size).map_err(|_| failure("could not resize file"))?;
        }
        self.insert(Disk {
            id: 0,
            slot,
            file_path: path,
            file_size: size,
            export,
            port,
            nqn,
            allow_host: props.allow_host.clone().unwrap_or_default(),
            comment: props.comment.clone().filter(|c| !c.is_empty()),
            mount_filesystem: props
                .mount_filesystem
                .unwrap_or(source_disk.mount_filesystem),
        })
    }

    fn disk_set(&mut self, target: &Expr, props: &DiskProps) -> Step<Value> {
        let ids = self.disk_targets(target)?;
        // check everything first, change nothing unless all of it is allowed
        let mut plans = Vec::new();
        for id in &ids {
            let pos = self.file_disk(*id)?;
            let mut disk = self.state.disks[pos].clone();
            if let Some(slot) = &props.slot {
                if slot.is_empty() {
                    return Err(failure("slot must not be empty"));
                }
                if self.slot_taken(slot, Some(disk.id)) {
                    return Err(failure("already have disk with such slot"));
                }
                disk.slot = slot.clone();
            }
            if let Some(size) = props.file_size {
                if size < disk.file_size {
                    return Err(failure("file-size can only be increased"));
                }
                if size - disk.file_size > self.free_space() {
                    return Err(failure("not enough space"));
                }
                disk.file_size = size;
            }
            if let Some(export) = props.export {
                disk.export = export;
            }
            if let Some(port) = props.port {
                disk.port = Some(port);
            }
            if let Some(nqn) = &props.nqn {
                disk.nqn = Some(nqn.clone());
            }
            if disk.export {
                disk.port = disk.port.or(Some(DEFAULT_PORT));
                if disk.nqn.is_none() {
                    disk.nqn = Some(format!("nqn.2000-02.com.mikrotik:{}", disk.slot));
                }
                if let Some(n) = &disk.nqn
                    && self.nqn_taken(n, Some(disk.id))
                {
                    return Err(failure("already have disk with such nvme-tcp-server-nqn"));
                }
            }
            if let Some(host) = &props.allow_host {
                disk.allow_host = host.clone();
            }
            if let Some(comment) = &props.comment {
                disk.comment = Some(comment.clone()).filter(|c| !c.is_empty());
            }
            if let Some(m) = props.mount_filesystem {
                disk.mount_filesystem = m;
            }
            plans.push((pos, disk));
        }
        for (pos, disk) in plans {
            if disk.file_size > self.state.disks[pos].file_size {
                let path = inventory::backing_path(self.env.root, &disk);
                storage::grow(&path, disk.file_size)
                    .map_err(|_| failure("could not resize file"))?;
            }
            self.state.disks[pos] = disk;
            self.changed = true;
        }
        Ok(Value::Nothing)
    }

    fn disk_remove(&mut self, target: &Expr) -> Step<Value> {
        let ids = self.disk_targets(target)?;
        for id in &ids {
            self.file_disk(*id)
                .map_err(|_| failure("can not remove this disk"))?;
        }
        let before = self.state.disks.len();
        self.state.disks.retain(|d| !ids.contains(&d.id));
        self.changed |= self.state.disks.len() != before;
        Ok(Value::Nothing)
    }

    fn file_remove(&mut self, target: &Expr) -> Step<Value> {
        let names = self.file_targets(target)?;
        for name in &names {
            if name == self.env.pool_mount {
                return Err(failure("can not remove mount point"));
            }
            if self.state.disks.iter().any(|d| &d.file_path == name) {
                return Err(failure("file is in use by a disk"));
            }
        }
        for name in names {
            let path = under(self.env.root, &name);
            let Ok(meta) = path.symlink_metadata() else {
                continue;
            };
            let result = if meta.is_dir() {
                fs::remove_dir(&path)
            } else {
                fs::remove_file(&path)
            };
            if result.is_err() {
                return Err(failure(if meta.is_dir() {
                    "directory is not empty"
                } else {
                    "could not remove file"
                }));
            }
        }
        Ok(Value::Nothing)
    }

    fn monitor(&mut self, target: &Expr) -> Step<Value> {
        let ids = self.disk_targets(target)?;
        let disks = self.disks();
        let Some(disk) = ids
            .first()
            .and_then(|id| disks.iter().find(|d| d.id == *id))
        else {
            return Err(no_such_item());
        };
        let slot = disk
            .record
            .get("slot")
            .map(|s| s.text())
            .unwrap_or_default();
        self.lines.push(format!("slot: {slot}"));
        let rows = [
            ("read-ops-per-second", "0".to_string()),
            ("write-ops-per-second", "0".to_string()),
            ("read-rate", bit_rate(0)),
            ("write-rate", bit_rate(0)),
            ("read-time", "0ms".to_string()),
            ("write-time", "0ms".to_string()),
            ("in-flight-ops", "0".to_string()),
            ("active-time", "0ms".to_string()),
            ("wait-time", "0ms".to_string()),
        ];
        for (key, value) in rows {
            self.lines.push(format!("{key}:{value:>16}"));
        }
        Ok(Value::Nothing)
    }

    fn system_resource(&mut self) {
        const TOTAL_MEMORY: u64 = 32 << 30;
        const TOTAL_HDD: u64 = 128 << 20;
        let pairs = [
            ("uptime", uptime(self.env.uptime)),
            ("version", format!("{} (stable)", self.env.version)),
            ("build-time", "2025-01-01 00:00:00".to_string()),
            ("factory-software", "7.13".to_string()),
            ("free-memory", human_size(TOTAL_MEMORY - (3 << 30))),
            ("total-memory", human_size(TOTAL_MEMORY)),
            ("cpu", "ARM64".to_string()),
            ("cpu-count", "4".to_string()),
            ("cpu-frequency", "2000MHz".to_string()),
            ("cpu-load", "1%".to_string()),
            ("free-hdd-space", human_size(TOTAL_HDD - (37 << 20))),
            ("total-hdd-space", human_size(TOTAL_HDD)),
            ("architecture-name", "arm64".to_string()),
            ("board-name", self.env.board.to_string()),
            ("platform", "MikroTik".to_string()),
        ];
        self.lines.extend(printer::colon_block(&pairs));
    }
}

/// A `file-path` argument as a relative path without a leading `/`; refuses empty components,
/// `.`, `..`, control characters and the simulator's own directory.
fn normalise_path(raw: &str) -> Step<String> {
    let bad = || failure("invalid file path");
    let trimmed = raw.strip_prefix('/').unwrap_or(raw);
    if trimmed.is_empty() || trimmed.chars().any(char::is_control) {
        return Err(bad());
    }
    let parts: Vec<&str> = trimmed.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
        || parts.first() == Some(&META_DIR)
    {
        return Err(bad());
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_or_refused() {
        assert_eq!(normalise_path("/pool/a.img"), Ok("pool/a.img".to_string()));
        assert_eq!(
            normalise_path("pool/sub/a.img"),
            Ok("pool/sub/a.img".to_string())
        );
        for bad in [
            "",
            "/",
            "//pool/a",
            "pool/../etc/passwd",
            "pool/./a",
            "pool/a/",
            "/.rds-sim/state.json",
            "pool/a\nb",
        ] {
            assert!(normalise_path(bad).is_err(), "{bad:?}");
        }
    }
}
