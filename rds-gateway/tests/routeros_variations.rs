//! Variation tests: the same records printed at other terminal widths (with cuts inside values), with
//! and without legend, with both separators, CRLF, `;;;` comments on or above items, both date forms,
//! odd spacing and hundreds of items must decode to the same records; the JSON form must give the same
//! typed disks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;

use rds_gateway::routeros::Record;
use rds_gateway::routeros::json::parse_json;
use rds_gateway::routeros::model::{Disk, FileEntry, RosDateTime};
use rds_gateway::routeros::text::parse_detail;
use support::{
    Layout, Style, expected_for, render_detail, render_json, styles, synthetic_disks,
    synthetic_files,
};

const WIDTHS: [usize; 4] = [40, 80, 120, 512];

fn fixture(name: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "routeros",
        name,
    ]
    .iter()
    .collect();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// True when some continuation line of `text` does not start with `key=` or a comment: the output
/// contains a break inside a value.
fn has_break_inside_value(text: &str) -> bool {
    text.lines().any(|line| {
        let t = line.trim_start();
        line.starts_with(' ')
            && !t.is_empty()
            && !t.starts_with(";;;")
            && !t.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
    })
}

/// Prints `records` in every style at every width, decodes each and compares. Returns how many
/// renderings contained a break inside a value, per width.
fn check_all_styles(records: &[Record], label: &str) -> Vec<(usize, usize, usize)> {
    let mut stats = Vec::new();
    for width in WIDTHS {
        let mut rendered = 0;
        let mut with_cuts = 0;
        for style in styles(&[width]) {
            let Some(text) = render_detail(records, &style) else {
                continue;
            };
            rendered += 1;
            if has_break_inside_value(&text) {
                with_cuts += 1;
            }
            let parsed =
                parse_detail(&text).unwrap_or_else(|e| panic!("{label} {style:?}: {e}\n{text}"));
            let want = expected_for(records, &style);
            if parsed.records != want {
                let first_bad = parsed.records.iter().zip(&want).position(|(a, b)| a != b);
                panic!(
                    "{label} {style:?}: {} records, want {}; first difference at {first_bad:?}: {:#?} vs {:#?}\n{text}",
                    parsed.records.len(),
                    want.len(),
                    first_bad.and_then(|i| parsed.records.get(i)),
                    first_bad.and_then(|i| want.get(i)),
                );
            }
        }
        assert!(
            rendered > 0,
            "{label}: nothing could be printed at width {width}"
        );
        stats.push((width, rendered, with_cuts));
    }
    stats
}

#[test]
fn fixtures_rewrapped_decode_the_same() {
    for name in [
        "disk-print-detail-list.txt",
        "disk-print-detail-one.txt",
        "disk-print-detail-pool-rds2216-2026.txt",
        "disk-print-detail-rds2216-2026.txt",
        "file-print-detail.txt",
        "pool-capacity-file-print.txt",
    ] {
        let mut records = parse_detail(&fixture(name)).unwrap().records;
        // Unindexed samples are printed with item numbers too, as in a list.
        for (i, r) in records.iter_mut().enumerate() {
            r.index.get_or_insert(i as u32);
        }
        let stats = check_all_styles(&records, name);
        let narrow = stats.iter().find(|(w, _, _)| *w == 40).unwrap();
        assert!(
            narrow.2 > 0,
            "{name}: no rendering at 40 columns broke a value: {stats:?}"
        );
    }
}

#[test]
fn single_items_without_numbers_decode_the_same() {
    for name in [
        "disk-print-detail-one.txt",
        "pool-capacity-file-print.txt",
        "disk-print-detail-rds2216-2026.txt",
    ] {
        let records = parse_detail(&fixture(name)).unwrap().records;
        for width in WIDTHS {
            for indent in [2, 15] {
                for comment in [None, Some("rds-csi:v1 kind=volume created=1")] {
                    let mut records = records.clone();
                    records[0].comment = comment.map(str::to_owned);
                    let mut style = Style::new(width, Layout::Unindexed { indent });
                    style.crlf = width == 80;
                    let Some(text) = render_detail(&records, &style) else {
                        continue;
                    };
                    let parsed = parse_detail(&text).unwrap();
                    assert_eq!(
                        parsed.records,
                        expected_for(&records, &style),
                        "{name} {style:?}\n{text}"
                    );
                }
            }
        }
    }
}

#[test]
fn hundreds_of_disks_decode_the_same_in_every_style() {
    let records = synthetic_disks(300, 7);
    let stats = check_all_styles(&records, "synthetic disks");
    assert!(stats.iter().any(|(_, _, cuts)| *cuts > 0), "{stats:?}");
    // And the typed views carry the exact numbers that were printed.
    let text = render_detail(&records, &Style::new(80, Layout::Positional)).unwrap();
    let disks = Disk::from_records(&parse_detail(&text).unwrap().records).unwrap();
    assert_eq!(disks.len(), 300);
    for (disk, source) in disks.iter().zip(&records) {
        assert_eq!(disk.slot.as_str(), source.get("slot").unwrap());
        assert_eq!(
            disk.size.to_string(),
            source.get("size").unwrap().replace(' ', "")
        );
        assert_eq!(
            disk.nvme_export,
            source.get("nvme-tcp-export") == Some("yes")
        );
        assert_eq!(disk.raw_comment, source.comment);
        let ours = source
            .comment
            .as_deref()
            .is_some_and(|c| c.starts_with("rds-csi:v1"));
        assert_eq!(disk.comment.is_some(), ours);
        assert_eq!(disk.image_path().unwrap().slot(), &disk.slot);
    }
}

#[test]
fn files_with_both_date_forms_decode_the_same() {
    let records = synthetic_files(120, 11);
    check_all_styles(&records, "synthetic files");
    let text = render_detail(&records, &Style::new(60, Layout::Classic { indent: 5 })).unwrap();
    let files = FileEntry::from_records(&parse_detail(&text).unwrap().records).unwrap();
    for (file, source) in files.iter().zip(&records) {
        let date = source
            .get("last-modified")
            .or(source.get("creation-time"))
            .unwrap();
        assert_eq!(file.modified, RosDateTime::parse(date));
        assert!(file.modified.is_some(), "{date}");
        assert_eq!(file.kind, ".img file");
    }
}

#[test]
fn json_gives_the_same_disks_as_text() {
    let records = synthetic_disks(120, 3);
    let text = render_detail(&records, &Style::new(120, Layout::Classic { indent: 15 })).unwrap();
    let from_text = Disk::from_records(&parse_detail(&text).unwrap().records).unwrap();
    for floats in [false, true] {
        let json = render_json(&records, floats);
        let from_json = Disk::from_records(&parse_json(&json).unwrap()).unwrap();
        assert_eq!(from_json, from_text, "floats={floats}");
    }
    // A single object instead of an array.
    let one = render_json(&records[..1], true);
    let object = one.trim().trim_start_matches('[').trim_end_matches(']');
    let single = Disk::from_records(&parse_json(&format!("  {object}\r\n")).unwrap()).unwrap();
    assert_eq!(single, from_text[..1]);
}

#[test]
fn tabs_and_extra_blank_lines_are_tolerated() {
    let original = fixture("disk-print-detail-list.txt");
    let want = parse_detail(&original).unwrap().records;
    let tabbed: String = original
        .lines()
        .map(|l| {
            if l.starts_with("               ") {
                format!("\t{}", l.trim_start())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    let padded = format!(
        "\n\n{}\n  \n\t\n",
        tabbed.replace("\r\n\r\n", "\r\n   \r\n\r\n")
    );
    assert_eq!(parse_detail(&padded).unwrap().records, want);
}
