//! Checks the printer against the output shapes captured from real appliances
//! (`tests/fixtures/routeros/`): exact where the sample is a whole capture, structural
//! (legend, index and flag columns, indents, separators, property order, number formats)
//! where the sample is trimmed.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, UNIX_EPOCH};

use super::inventory::{file_disk_record, file_record, member_record, pool_record};
use super::printer::{Layout, PrintStyle, detail};
use super::record::Record;
use super::state::Disk;
use super::storage::{Capacity, FileEntry};

const RDS2216_DISK: &str =
    include_str!("../../fixtures/routeros/disk-print-detail-rds2216-2026.txt");
const RDS2216_POOL: &str =
    include_str!("../../fixtures/routeros/disk-print-detail-pool-rds2216-2026.txt");
const OLD_LIST: &str = include_str!("../../fixtures/routeros/disk-print-detail-list.txt");
const OLD_ONE: &str = include_str!("../../fixtures/routeros/disk-print-detail-one.txt");
const FILE_PRINT: &str = include_str!("../../fixtures/routeros/file-print-detail.txt");
const POOL_FILE: &str = include_str!("../../fixtures/routeros/pool-capacity-file-print.txt");

fn layout(style: PrintStyle, width: usize, filtered: bool, disk: bool) -> Layout {
    Layout {
        style,
        width,
        legend: disk,
        filtered,
        old_breaks: if disk {
            &["nvme-tcp-export", "file-path"]
        } else {
            &[]
        },
        separator: if disk && style == PrintStyle::New {
            " "
        } else {
            ""
        },
    }
}

fn disk(slot: &str, path: &str, size: u64, nqn: &str) -> Disk {
    Disk {
        id: 0x10,
        slot: slot.into(),
        file_path: path.into(),
        file_size: size,
        export: true,
        port: Some(4420),
        nqn: Some(nqn.into()),
        allow_host: String::new(),
        comment: None,
        mount_filesystem: true,
    }
}

fn at(mut r: Record, index: usize) -> Record {
    r.index = index;
    r
}

/// Property names in order of appearance (`key=` at the start of a space-separated piece).
fn keys(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter_map(|piece| {
            let (k, _) = piece.split_once('=')?;
            let ok = k.starts_with(|c: char| c.is_ascii_lowercase())
                && k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            ok.then(|| k.to_string())
        })
        .collect()
}

/// The entries of a print: groups of lines between separator lines, legend dropped.
fn entries(lines: &[&str]) -> Vec<String> {
    lines
        .split(|l| l.trim().is_empty())
        .map(|group| {
            group
                .iter()
                .filter(|l| !l.starts_with("Flags:"))
                .copied()
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|e| !e.is_empty())
        .collect()
}

#[test]
fn new_style_file_disk_matches_the_rds2216_capture_exactly() {
    let mut d = disk(
        "vm-storage-001",
        "raid10/vm-storage-001.img",
        1 << 40,
        "nqn.2026-09.com.mikrotik:rds2216.vm-storage-001",
    );
    d.mount_filesystem = false;
    let lines = detail(
        &[at(file_disk_record(&d), 31)],
        &layout(PrintStyle::New, 240, true, true),
    );
    assert_eq!(format!("{}\n", lines.join("\n")), RDS2216_DISK);
}

#[test]
fn new_style_pool_and_member_follow_the_rds2216_capture() {
    let cap = Capacity {
        size: 16_003_143_565_312,
        free: 14_789_895_307_264,
        total_inodes: 1_562_806_656,
        free_inodes: 1_562_806_652,
        fs: "xfs",
    };
    let records = [
        at(pool_record("raid10", &cap), 26),
        at(member_record("raid10", 0, 4_000_786_153_472), 27),
    ];
    let lines = detail(&records, &layout(PrintStyle::New, 240, false, true));
    let sample: Vec<&str> = RDS2216_POOL.lines().collect();
    // the legend lists exactly the flags present, in the same order
    assert_eq!(lines[0], sample[0]);
    // index followed by positional flag columns
    assert!(
        lines[1].starts_with("26 BM  type=raid slot=\"raid10\""),
        "{}",
        lines[1]
    );
    let second = lines.iter().position(|l| l.starts_with("27 ")).unwrap();
    assert!(lines[second].starts_with("27 B r type=raid slot=\"raid10-m0\""));
    // entries are separated by a line holding one space
    assert_eq!(lines[second - 1], " ");
    // continuation lines are indented to the prefix width, and no line reaches the width
    for l in lines
        .iter()
        .skip(1)
        .filter(|l| l.starts_with(' ') && l.len() > 1)
    {
        assert!(
            l.starts_with("       ") && !l.starts_with("        "),
            "{l:?}"
        );
    }
    assert!(lines.iter().all(|l| l.len() < 240));
    // spaced thousands and percentages as on the appliance
    let text = lines.join("\n");
    for needle in [
        "size=16 003 143 565 312 free=14 789 895 307 264 total-inodes=1 562 806 656",
        "use=8% mount-point=\"raid10\"",
        "size=4 000 786 153 472",
    ] {
        assert!(text.contains(needle), "{needle}");
        assert!(
            RDS2216_POOL
                .replace('\n', " ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains(needle),
            "sample lacks {needle}"
        );
    }
    // the same properties in the same order, entry by entry
    let mine = entries(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    let theirs = entries(&sample);
    assert_eq!(mine.len(), theirs.len());
    for (m, t) in mine.iter().zip(&theirs) {
        assert_eq!(keys(m), keys(t));
    }
}

#[test]
fn new_style_file_print_matches_the_capture_exactly() {
    let when = |h: u64, m: u64, s: u64| {
        UNIX_EPOCH + Duration::from_secs(1_762_819_200 + h * 3600 + m * 60 + s)
    };
    let files = [
        ("storage-pool/metal-csi", true, 0, when(16, 47, 7)),
        (
            "storage-pool/metal-csi/pvc-ccdecfad-a8bf-572e-9120-464c4d99f12f.img",
            false,
            10u64 << 30,
            when(14, 32, 41),
        ),
        (
            "storage-pool/metal-csi/pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8.img",
            false,
            1 << 30,
            when(16, 47, 7),
        ),
    ];
    let records: Vec<Record> = files
        .iter()
        .enumerate()
        .map(|(i, (name, is_dir, size, modified))| {
            let entry = FileEntry {
                name: (*name).to_string(),
                is_dir: *is_dir,
                size: *size,
                modified: *modified,
            };
            file_record(i, &entry, None, PrintStyle::New)
        })
        .collect();
    let lines = detail(&records, &layout(PrintStyle::New, 80, false, false));
    assert_eq!(format!("{}\n", lines.join("\n")), FILE_PRINT);
}

#[test]
fn old_style_list_has_no_legend_wide_indent_and_blank_separators() {
    let records = [
        at(
            file_disk_record(&disk(
                "pvc-test-1",
                "storage-pool/test1.img",
                50 << 30,
                "nqn.2000-02.com.mikrotik:pvc-test-1",
            )),
            0,
        ),
        at(
            file_disk_record(&disk(
                "pvc-test-2",
                "storage-pool/test2.img",
                100 << 30,
                "nqn.2000-02.com.mikrotik:pvc-test-2",
            )),
            1,
        ),
    ];
    let lines = detail(&records, &layout(PrintStyle::Old, 80, false, true));
    let sample: Vec<&str> = OLD_LIST.lines().collect();
    assert!(lines.iter().all(|l| !l.starts_with("Flags:")));
    assert!(lines[0].starts_with(" 0  type=file slot=\"pvc-test-1\""));
    assert!(sample[0].starts_with(" 0  type=file slot=\"pvc-test-1\""));
    let blank = lines.iter().position(String::is_empty).unwrap();
    assert!(lines[blank + 1].starts_with(" 1  type=file slot=\"pvc-test-2\""));
    for l in lines
        .iter()
        .filter(|l| l.starts_with(' ') && !l.starts_with(" 0") && !l.starts_with(" 1"))
    {
        assert!(
            l.starts_with(&" ".repeat(15)) && !l.starts_with(&" ".repeat(16)),
            "{l:?}"
        );
    }
    // lines the sample shows whole appear whole
    for wanted in [
        sample[1], sample[2], sample[3], sample[6], sample[7], sample[8],
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(wanted)),
            "missing {wanted:?} in {lines:#?}"
        );
    }
    assert!(lines.iter().any(|l| l.contains("size=53 687 091 200")));
    assert!(lines.iter().any(|l| l.contains("size=107 374 182 400")));
}

#[test]
fn old_style_single_result_prints_without_index() {
    let records = [at(
        file_disk_record(&disk(
            "pvc-test-123",
            "storage-pool/test.img",
            50 << 30,
            "nqn.2000-02.com.mikrotik:pvc-test-123",
        )),
        4,
    )];
    let lines = detail(&records, &layout(PrintStyle::Old, 80, true, true));
    let sample: Vec<&str> = OLD_ONE.lines().collect();
    assert_eq!(lines[0], sample[0]);
    assert!(lines[1..].iter().all(|l| l.starts_with(&" ".repeat(15))));
    assert_eq!(keys(&lines.join(" ")), keys(OLD_ONE));
    assert!(lines.iter().any(|l| {
        l.trim_start()
            .starts_with("file-path=/storage-pool/test.img")
    }));
    assert!(lines.iter().all(|l| l.len() < 80));
}

#[test]
fn old_style_pool_directory_carries_capacity() {
    let cap = Capacity {
        size: 7_681_574_174_720,
        free: 5_632_440_000_000,
        total_inodes: 0,
        free_inodes: 0,
        fs: "btrfs",
    };
    let entry = FileEntry {
        name: "storage-pool".into(),
        is_dir: true,
        size: 0,
        modified: UNIX_EPOCH + Duration::from_secs(1_735_689_600),
    };
    let record = file_record(0, &entry, Some(&cap), PrintStyle::Old);
    let lines = detail(&[record], &layout(PrintStyle::Old, 80, true, false));
    assert!(lines[0].starts_with("name=storage-pool type=directory size=7 681 574 174 720"));
    assert!(lines[1..].iter().all(|l| l.starts_with(&" ".repeat(15))));
    assert_eq!(keys(&lines.join(" ")), keys(POOL_FILE));
    let text = lines.join(" ");
    assert!(text.contains("free=5 632 440 000 000"));
    assert!(text.contains("use=27%"));
    assert!(text.contains("creation-time=jan/01/2025 00:00:00"));
}

#[test]
fn long_values_wrap_inside_the_value_at_width_80() {
    let path = "storage-pool/metal-csi/pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8.img";
    let mut d = disk(
        "pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8",
        path,
        10 << 30,
        "nqn.2000-02.com.mikrotik:pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8",
    );
    d.comment = Some("created by rds-csi".into());
    let lines = detail(
        &[at(file_disk_record(&d), 5)],
        &layout(PrintStyle::New, 80, true, true),
    );
    assert_eq!(lines[0], "Flags: B - BLOCK-DEVICE; t - NVME-TCP-EXPORT");
    assert_eq!(lines[1], " 5 Bt ;;; created by rds-csi");
    assert!(lines[2].starts_with("      type=file slot="));
    assert!(lines.iter().all(|l| l.chars().count() < 80), "{lines:#?}");
    // file-path does not fit a line: it is cut and continues on the next line
    let start = lines
        .iter()
        .position(|l| l.trim_start().starts_with("file-path="))
        .unwrap();
    assert!(!lines[start].ends_with(".img"));
    let joined = format!(
        "{}{}",
        lines[start].trim_start(),
        lines[start + 1].trim_start()
    );
    assert!(
        joined.starts_with(&format!("file-path=/{path}")),
        "{joined}"
    );
    // so is the quoted model
    let model = lines.iter().position(|l| l.contains("model=\"")).unwrap();
    assert!(!lines[model].ends_with('"'));
}
