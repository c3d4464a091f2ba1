//! Behaviour of the appliance behind the SSH layer: every command form against a real temporary
//! root, checked through what is printed, what is stored, and what is on disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::appliance::{Appliance, Reply};
use super::config::SimConfig;
use super::faults::{FaultAction, FaultRule, Faults};
use super::printer::PrintStyle;
use super::storage::allocated_bytes;
use super::{Verb, cmdlog, state};

const GIB: u64 = 1 << 30;

/// A temporary root with an open appliance on it.
struct Rig {
    _dir: tempfile::TempDir,
    app: Appliance,
}

impl Rig {
    fn new(adjust: impl FnOnce(&mut SimConfig)) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SimConfig::new(dir.path().join("root"));
        cfg.pool_size = Some(100 * GIB);
        adjust(&mut cfg);
        let app = Appliance::open(cfg).unwrap();
        Rig { _dir: dir, app }
    }

    fn root(&self) -> &Path {
        &self.app.config().root
    }

    fn run_width(&self, line: &str, width: usize) -> Reply {
        let received = self.app.receive("admin", line.as_bytes());
        self.app.execute(&received, width)
    }

    fn run(&self, line: &str) -> String {
        match self.run_width(line, 80) {
            Reply::Text(t) => t,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn add(&self, slot: &str, size: &str) -> String {
        self.run(&format!(
            "/disk add type=file file-path=/storage-pool/{slot}.img file-size={size} slot={slot} \
             nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:{slot}"
        ))
    }

    fn count(&self, cond: &str) -> u64 {
        self.run(&format!("/disk print count-only where {cond}"))
            .trim()
            .parse()
            .unwrap()
    }

    fn json(&self, line: &str) -> serde_json::Value {
        let out = self.run(line);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{out:?}: {e}"))
    }
}

/// Output with its lines joined by single spaces (for checks that do not depend on wrapping).
fn flat(out: &str) -> String {
    out.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

/// The first line of each entry (index and flags first).
fn entry_starts(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<usize>().is_ok())
        })
        .collect()
}

#[test]
fn add_creates_a_sparse_file_and_prints_like_the_appliance() {
    let b = Rig::new(|_| {});
    assert_eq!(b.add("pvc-1", "10G"), "");
    let img = b.root().join("storage-pool/pvc-1.img");
    assert_eq!(fs::metadata(&img).unwrap().len(), 10 * GIB);
    assert!(allocated_bytes(&img).unwrap() < 1 << 20, "not sparse");

    let out = b.run("/disk print detail where slot=pvc-1");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Flags: B - BLOCK-DEVICE; t - NVME-TCP-EXPORT");
    // the pool and its two members come first: this disk is number 3 of the whole list
    assert!(
        lines[1].starts_with(" 3 Bt type=file slot=\"pvc-1\" slot-default=\"\""),
        "{out}"
    );
    assert!(out.contains("size=10 737 418 240"));
    assert!(out.contains("file-size=10.0GiB"));
    assert!(out.contains("nvme-tcp-server-nqn=\"nqn.2000-02.com.mikrotik:pvc-1\""));
    assert!(out.contains("file-path=/storage-pool/pvc-1.img"));
    assert!(!out.contains("status="));
    assert!(lines.iter().all(|l| l.len() < 80));
}

#[test]
fn sizes_in_every_unit_form() {
    let b = Rig::new(|_| {});
    for (slot, size, bytes) in [
        ("a", "1048576", 1u64 << 20),
        ("b", "512M", 512 << 20),
        ("c", "2GiB", 2 * GIB),
        ("d", "1536MiB", 1536 << 20),
    ] {
        assert_eq!(b.add(slot, size), "", "{size}");
        let v = b.json(&format!(
            ":put [:serialize to=json [/disk print detail as-value where slot={slot}]]"
        ));
        assert_eq!(v[0]["size"].as_u64(), Some(bytes));
    }
    let out = b.run("/disk print detail where slot=d");
    assert!(out.contains("file-size=1.5GiB"), "{out}");
}

#[test]
fn add_failures_are_text_and_change_nothing() {
    let b = Rig::new(|_| {});
    assert_eq!(b.add("pvc-1", "1G"), "");
    assert_eq!(
        b.add("pvc-1", "1G"),
        "failure: already have disk with such slot\n"
    );
    // the slot of the pool itself is taken too
    assert_eq!(
        b.add("storage-pool", "1G"),
        "failure: already have disk with such slot\n"
    );
    assert_eq!(
        b.run("/disk add type=file file-path=/storage-pool/pvc-1.img file-size=1G slot=other"),
        "failure: file already exists\n"
    );
    assert_eq!(
        b.run("/disk add type=file file-path=/nopool/x.img file-size=1G slot=x"),
        "failure: could not create file, directory does not exist\n"
    );
    assert_eq!(
        b.run("/disk add type=file file-path=/storage-pool/../../etc/x.img file-size=1G slot=x"),
        "failure: invalid file path\n"
    );
    assert_eq!(
        b.run("/disk add type=file file-path=/.rds-sim/state.json file-size=1G slot=x"),
        "failure: invalid file path\n"
    );
    assert_eq!(b.add("big", "200G"), "failure: not enough space\n");
    assert_eq!(
        b.run("/disk add type=file file-path=/storage-pool/n.img file-size=1G slot=n nvme-tcp-export=yes nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:pvc-1"),
        "failure: already have disk with such nvme-tcp-server-nqn\n"
    );
    assert_eq!(b.count("type=file"), 1);
    assert!(!b.root().join("storage-pool/big.img").exists());
}

#[test]
fn free_space_counts_apparent_sizes_of_every_file_in_the_pool() {
    let b = Rig::new(|_| {});
    assert_eq!(b.add("a", "60G"), "");
    assert_eq!(b.add("b", "50G"), "failure: not enough space\n");
    // a removed disk leaves its file, and the file keeps the space
    assert_eq!(b.run("/disk remove [find slot=a]"), "");
    assert_eq!(b.add("b", "50G"), "failure: not enough space\n");
    assert_eq!(b.run("/file remove [find name=\"storage-pool/a.img\"]"), "");
    assert_eq!(b.add("b", "50G"), "");
    let pool = b.run("/disk print detail where mount-point=\"storage-pool\"");
    assert!(
        flat(&pool).contains("size=107 374 182 400 free=53 687 091 200"),
        "{pool}"
    );
    assert!(
        flat(&pool).contains("use=50% mount-point=\"storage-pool\""),
        "{pool}"
    );
    assert!(
        pool.starts_with("Flags: B - BLOCK-DEVICE; M - MOUNTED\n 0 BM type=raid"),
        "{pool}"
    );
    let file = b.run("/file print detail where name=\"storage-pool\"");
    assert!(
        flat(&file).contains("name=storage-pool type=directory size=107 374 182 400"),
        "{file}"
    );
    assert!(
        flat(&file).contains("free=53 687 091 200 use=50%"),
        "{file}"
    );
}

#[test]
fn set_grows_only() {
    let b = Rig::new(|_| {});
    assert_eq!(b.add("pvc-1", "1G"), "");
    let img = b.root().join("storage-pool/pvc-1.img");
    assert_eq!(b.run("/disk set [find slot=pvc-1] file-size=2G"), "");
    assert_eq!(fs::metadata(&img).unwrap().len(), 2 * GIB);
    assert!(
        b.run("/disk print detail where slot=pvc-1")
            .contains("size=2 147 483 648")
    );
    assert_eq!(
        b.run("/disk set [find slot=pvc-1] file-size=1G"),
        "failure: file-size can only be increased\n"
    );
    assert_eq!(fs::metadata(&img).unwrap().len(), 2 * GIB);
    assert_eq!(
        b.run("/disk set [find slot=pvc-1] file-size=500G"),
        "failure: not enough space\n"
    );
    // an empty find is a silent no-op; a bad name is not
    assert_eq!(b.run("/disk set [find slot=missing] file-size=5G"), "");
    assert_eq!(b.run("/disk set missing file-size=5G"), "no such item\n");
    // by id and by slot name, other properties
    assert_eq!(b.run("/disk set *10 comment=\"hello world\""), "");
    assert_eq!(b.run("/disk set pvc-1 nvme-tcp-export=no"), "");
    let out = b.run("/disk print detail where slot=pvc-1");
    assert!(out.contains(";;; hello world"), "{out}");
    assert!(!out.contains("nvme-tcp-server-port"), "{out}");
    assert!(out.starts_with("Flags: B - BLOCK-DEVICE\n"), "{out}");
}

#[test]
fn remove_keeps_the_file_and_file_remove_deletes_it() {
    let b = Rig::new(|_| {});
    assert_eq!(b.add("pvc-1", "1G"), "");
    let img = b.root().join("storage-pool/pvc-1.img");
    assert_eq!(
        b.run("/file remove [find name=\"storage-pool/pvc-1.img\"]"),
        "failure: file is in use by a disk\n"
    );
    assert_eq!(b.run("/disk remove [find slot=pvc-1]"), "");
    assert!(img.exists(), "disk remove must leave the backing file");
    assert_eq!(b.count("slot=pvc-1"), 0);
    assert_eq!(b.run("/disk remove [find slot=pvc-1]"), "");
    let listed = b.run("/file print detail where name=\"storage-pool/pvc-1.img\"");
    assert!(listed.contains("type=.img file size=1024.0MiB"), "{listed}");
    assert_eq!(
        b.run("/file remove [find name=\"storage-pool/pvc-1.img\"]"),
        ""
    );
    assert!(!img.exists());
    assert_eq!(
        b.run("/file remove [find name=\"storage-pool/pvc-1.img\"]"),
        ""
    );
    assert_eq!(
        b.run("/file remove [find name=\"storage-pool\"]"),
        "failure: can not remove mount point\n"
    );
    assert_eq!(
        b.run("/disk remove [find slot=storage-pool]"),
        "failure: can not remove this disk\n"
    );
}

#[test]
fn copy_keeps_data_and_holes() {
    let b = Rig::new(|_| {});
    assert_eq!(b.add("src", "1G"), "");
    let src = b.root().join("storage-pool/src.img");
    let f = fs::OpenOptions::new().write(true).open(&src).unwrap();
    f.write_all_at(b"volume data", 300 << 20).unwrap();
    drop(f);
    assert_eq!(
        b.run("/disk add type=file copy-from=[find slot=src] file-path=/storage-pool/snap.img slot=snap"),
        ""
    );
    let snap = b.root().join("storage-pool/snap.img");
    assert_eq!(fs::metadata(&snap).unwrap().len(), GIB);
    assert!(allocated_bytes(&snap).unwrap() < 8 << 20);
    let mut buf = [0u8; 11];
    fs::File::open(&snap)
        .unwrap()
        .read_exact_at(&mut buf, 300 << 20)
        .unwrap();
    assert_eq!(&buf, b"volume data");
    let out = b.run("/disk print detail where slot=snap");
    assert!(out.contains("nvme-tcp-export=no"), "{out}");
    assert!(out.starts_with("Flags: B - BLOCK-DEVICE\n"), "{out}");
    // a copy exported as a volume
    assert_eq!(
        b.run("/disk add type=file copy-from=[find slot=snap] file-path=/storage-pool/clone.img slot=clone nvme-tcp-export=yes nvme-tcp-server-port=4420 nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:clone"),
        ""
    );
    assert!(
        b.run("/disk print detail where slot=clone")
            .contains(" Bt ")
    );
    assert_eq!(
        b.run(
            "/disk add type=file copy-from=[find slot=nope] file-path=/storage-pool/x.img slot=x"
        ),
        "failure: no such item\n"
    );
    assert!(!b.root().join("storage-pool/x.img").exists());
}

#[test]
fn prints_index_by_whole_list_and_filter_by_prefix() {
    let b = Rig::new(|_| {});
    for slot in ["pvc-a", "snap-b", "pvc-c"] {
        assert_eq!(b.add(slot, "1G"), "");
    }
    let out = b.run("/disk print detail where slot~\"^pvc-\"");
    let starts = entry_starts(&out);
    assert_eq!(starts.len(), 2, "{out}");
    assert!(starts[0].starts_with(" 3 Bt type=file slot=\"pvc-a\""));
    assert!(starts[1].starts_with(" 5 Bt type=file slot=\"pvc-c\""));
    assert!(
        out.contains("\n \n"),
        "entries are separated by a single-space line"
    );
    assert_eq!(b.count("slot~\"pvc-\""), 2);
    assert_eq!(b.count("slot~\"b$\""), 1);
    // a filtered print that matches nothing prints nothing at all
    assert_eq!(b.run("/disk print detail where slot=none"), "");
    assert_eq!(b.run("/disk print detail where slot~\"^none\""), "");
    // the whole list: pool, members, disks
    let all = b.run("/disk print detail");
    assert!(all.starts_with(
        "Flags: B - BLOCK-DEVICE; M - MOUNTED; r - RAID-MEMBER; t - NVME-TCP-EXPORT\n"
    ));
    assert!(
        all.contains("\n 1 B r  type=raid slot=\"storage-pool-m0\""),
        "{all}"
    );
    // echo of count-only inside brackets, and :put of it
    assert_eq!(
        b.run(":put [/disk print count-only where slot~\"^pvc-\"]"),
        "2\n2\n"
    );
    let terse = b.run("/disk print terse where slot=pvc-a");
    assert!(terse.starts_with(" 3 Bt type=file slot=pvc-a"), "{terse}");
    assert!(terse.contains("size=1073741824"), "{terse}");
}

#[test]
fn json_output_by_version() {
    let b = Rig::new(|_| {});
    assert_eq!(b.add("pvc-1", "1G"), "");
    let v = b.json(":put [:serialize to=json [/disk print detail as-value where slot=pvc-1]]");
    assert_eq!(v[0][".id"], "*10");
    assert_eq!(v[0]["size"].as_u64(), Some(GIB));
    assert_eq!(v[0]["nvme-tcp-export"], true);
    assert_eq!(v[0]["nvme-tcp-server-port"].as_u64(), Some(4420));
    assert_eq!(v[0]["file-path"], "/storage-pool/pvc-1.img");
    assert_eq!(
        b.json(":put [:serialize to=json [/disk print detail as-value where slot=none]]"),
        serde_json::json!([])
    );
    let files = b.json(
        ":put [:serialize to=json [/file print detail as-value where name=\"storage-pool\"]]",
    );
    assert_eq!(files[0]["size"].as_u64(), Some(100 * GIB));
    assert_eq!(files[0]["free"].as_u64(), Some(99 * GIB));

    let floats = Rig::new(|c| c.json_floats = true);
    assert_eq!(floats.add("pvc-1", "1G"), "");
    let out =
        floats.run(":put [:serialize to=json [/disk print detail as-value where slot=pvc-1]]");
    assert!(out.contains("\"size\":1073741824.000000"), "{out}");
    assert!(out.contains("\"nvme-tcp-export\":true"), "{out}");

    let old = Rig::new(|c| c.routeros_version = "7.12.1".parse().unwrap());
    assert_eq!(
        old.run(":put [:serialize to=json [/disk print detail as-value where slot=pvc-1]]"),
        "bad command name serialize (line 1 column 8)\n"
    );
}

#[test]
fn syntax_errors_apply_nothing_and_report_positions() {
    let b = Rig::new(|_| {});
    assert_eq!(
        b.run("/disk add type=file file-path=/storage-pool/a.img file-size=1G slot=a; /disk frob"),
        "bad command name frob (line 1 column 78)\n"
    );
    assert_eq!(b.count("slot=a"), 0);
    assert_eq!(
        b.run("/disk add type=file file-path=/storage-pool/a.img file-size=1G slot=a nvme-tcp-export=maybe"),
        "input does not match any value of nvme-tcp-export\n"
    );
    assert_eq!(
        b.run("/disk print detail where slot=a; /system reboot"),
        "bad command name reboot (line 1 column 42)\n"
    );
    assert_eq!(
        b.run("/disk add type=file file-path=/storage-pool/a.img file-size=1G slot=\"$(reboot)\""),
        "syntax error (line 1 column 70)\n"
    );
    assert_eq!(b.count("type=file"), 0);
    // every line reached the log, rejected ones too
    let log = cmdlog::read(b.root()).unwrap();
    assert!(log.iter().any(|l| l.command.contains("/system reboot")));
    assert!(log.iter().any(|l| l.command.contains("$(reboot)")));
}

#[test]
fn several_commands_run_in_order_and_stop_at_a_failure() {
    let b = Rig::new(|_| {});
    assert_eq!(b.add("pvc-1", "1G"), "");
    assert_eq!(
        b.run(
            "/disk remove [find slot=pvc-1]; /file remove [find name=\"storage-pool/pvc-1.img\"]"
        ),
        ""
    );
    assert!(!b.root().join("storage-pool/pvc-1.img").exists());
    assert_eq!(b.add("pvc-2", "1G"), "");
    assert_eq!(
        b.run("/disk set pvc-2 file-size=1M; /disk remove [find slot=pvc-2]"),
        "failure: file-size can only be increased\n"
    );
    assert_eq!(b.count("slot=pvc-2"), 1);
}

#[test]
fn monitor_and_system_resource() {
    let b = Rig::new(|_| {});
    let out = b.run("/disk monitor-traffic storage-pool once");
    let sample = include_str!("../../fixtures/routeros/disk-monitor-traffic-once.txt");
    let keys = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.split(':').next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(keys(&out), keys(sample));
    assert_eq!(out.lines().next(), sample.lines().next());
    // values are right-aligned in a 16-column field after the colon
    assert_eq!(
        out.lines().nth(1),
        Some("read-ops-per-second:               0")
    );
    assert_eq!(out.lines().nth(3), Some("read-rate:            0bps"));
    assert_eq!(b.run("/disk monitor-traffic nope once"), "no such item\n");

    let sys = b.run("/system resource print");
    assert!(sys.contains("version: 7.16.2 (stable)"), "{sys}");
    assert!(sys.contains("board-name: RDS2216"), "{sys}");
    assert!(sys.contains("uptime: "), "{sys}");
    assert!(sys.lines().all(|l| l.contains(": ")));
}

#[test]
fn old_style_and_crlf() {
    let b = Rig::new(|c| {
        c.print_style = PrintStyle::Old;
        c.crlf = true;
    });
    assert_eq!(b.add("pvc-1", "1G"), "");
    assert_eq!(b.add("pvc-2", "1G"), "");
    let one = b.run("/disk print detail where slot=pvc-1");
    assert!(one.starts_with("type=file slot=\"pvc-1\""), "{one}");
    assert!(one.ends_with("\r\n"));
    assert!(one.lines().skip(1).all(|l| l.starts_with(&" ".repeat(15))));
    let two = b.run("/disk print detail where slot~\"^pvc\"");
    assert!(two.starts_with(" 3  type=file slot=\"pvc-1\""), "{two}");
    assert!(two.contains("\r\n\r\n 4  type=file"), "{two}");
    assert!(!two.contains("Flags:"));
}

#[test]
fn width_comes_from_the_caller() {
    let b = Rig::new(|_| {});
    assert_eq!(b.add("pvc-1", "1G"), "");
    let Reply::Text(wide) = b.run_width("/disk print detail where slot=pvc-1", 512) else {
        panic!()
    };
    assert_eq!(wide.lines().count(), 2, "{wide}");
    let Reply::Text(narrow) = b.run_width("/disk print detail where slot=pvc-1", 80) else {
        panic!()
    };
    assert!(narrow.lines().count() > 4);
}

#[test]
fn faults_fire_as_configured() {
    let b = Rig::new(|_| {});
    let add = "/disk add type=file file-path=/storage-pool/a.img file-size=1G slot=a";
    Faults::write(
        b.root(),
        &[FaultRule::times(Verb::DiskAdd, FaultAction::Drop, 1)],
    )
    .unwrap();
    assert_eq!(b.run_width(add, 80), Reply::Drop);
    assert_eq!(b.count("slot=a"), 0, "drop must not apply");

    Faults::write(
        b.root(),
        &[FaultRule::times(
            Verb::DiskAdd,
            FaultAction::FailAfterApply,
            1,
        )],
    )
    .unwrap();
    assert_eq!(b.run_width(add, 80), Reply::Drop);
    assert_eq!(b.count("slot=a"), 1, "fail-after-apply must apply");

    let add_b = "/disk add type=file file-path=/storage-pool/b.img file-size=1G slot=b";
    Faults::write(
        b.root(),
        &[FaultRule::times(Verb::DiskAdd, FaultAction::NoSpace, 1)],
    )
    .unwrap();
    assert_eq!(b.run(add_b), "failure: not enough space\n");
    Faults::write(
        b.root(),
        &[FaultRule::times(
            Verb::DiskAdd,
            FaultAction::UnknownCommand,
            1,
        )],
    )
    .unwrap();
    assert_eq!(b.run(add_b), "bad command name disk (line 1 column 2)\n");
    Faults::write(
        b.root(),
        &[FaultRule::times(Verb::DiskAdd, FaultAction::Hang, 1)],
    )
    .unwrap();
    assert_eq!(b.run_width(add_b, 80), Reply::Hang);
    assert_eq!(b.count("slot=b"), 0);
    // used up: the next add goes through
    assert_eq!(b.run(add_b), "");
    assert_eq!(b.count("slot=b"), 1);
}

#[test]
fn state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::new(dir.path().join("root"));
    cfg.pool_size = Some(10 * GIB);
    {
        let app = Appliance::open(cfg.clone()).unwrap();
        let r = app.receive("admin", b"/disk add type=file file-path=/storage-pool/a.img file-size=1G slot=a comment=\"kept\"");
        assert_eq!(app.execute(&r, 80), Reply::Text(String::new()));
    }
    let app = Appliance::open(cfg).unwrap();
    let r = app.receive("admin", b"/disk print detail where slot=a");
    let Reply::Text(out) = app.execute(&r, 80) else {
        panic!()
    };
    assert!(out.contains(";;; kept"), "{out}");
    let stored = state::load(app.paths()).unwrap();
    assert_eq!(stored.disks.len(), 1);
    assert_eq!(stored.disks[0].slot, "a");
}

#[test]
fn hostile_lines_are_answered_with_text_and_change_nothing() {
    let b = Rig::new(|_| {});
    let lines = [
        "",
        ";",
        "\u{0}",
        "/disk add type=file file-path=/storage-pool/a.img file-size=1G slot=a; /system reboot",
        "/disk add type=file file-path=/storage-pool/a.img file-size=1G slot=a $x",
        "/disk add type=file file-path=\"/storage-pool/a\u{0}.img\" file-size=1G slot=a",
        "/disk add type=file file-path=/storage-pool/a.img file-size=99999999999999999999 slot=a",
        "/disk add type=file file-path=/storage-pool/a.img file-size=16P slot=a",
        "/disk add type=file file-path=/storage-pool/a.img file-size=0 slot=a",
        "/disk add type=file file-path=/storage-pool/a.img file-size=1G slot=\"\"",
        "/disk add type=file file-path=/storage-pool/a.img file-size=1G",
        "/disk add type=file file-path=/storage-pool file-size=1G slot=a",
        "/disk add type=file file-path=/storage-pool/ file-size=1G slot=a",
        "/disk add type=file file-path=/etc/passwd file-size=1G slot=a",
        "/disk add type=file copy-from=[/file find] file-path=/storage-pool/a.img slot=a",
        "/disk add type=file copy-from=*FFFF file-path=/storage-pool/a.img slot=a",
        "/disk add type=file copy-from=[find slot=storage-pool] file-path=/storage-pool/a.img slot=a",
        "/disk remove [/file find]",
        "/disk set [/system resource print] file-size=1G",
        "/file remove [/disk find]",
        "/file remove *FFFF",
        "/disk print detail where slot~\"((((((((((\"",
        "/disk print detail where slot~\"a**********************b\"",
        ":put [:put [:put [/disk print count-only]]]",
        ":put [:serialize to=json [/file print as-value where name~\"\\\\\"]]",
        &format!("/disk print where slot={}", "x".repeat(100_000)),
        &"[".repeat(10_000),
    ];
    for line in lines {
        let reply = b.run_width(line, 80);
        assert!(matches!(reply, Reply::Text(_)), "{line:.60}: {reply:?}");
    }
    assert_eq!(b.count("type=file"), 0);
    let names: Vec<String> = fs::read_dir(b.root().join("storage-pool"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.is_empty(), "{names:?}");
    assert!(b.root().join("storage-pool").is_dir());
}
