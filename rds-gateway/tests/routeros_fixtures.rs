//! Golden tests: the output shapes of real appliances (tests/fixtures/routeros) decode to exactly the
//! records and typed values they show.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use rds_gateway::routeros::Record;
use rds_gateway::routeros::error::classify;
use rds_gateway::routeros::model::{
    BitRate, Disk, DiskType, FileEntry, PoolCapacity, RosDateTime, SizeSource, TrafficSample,
};
use rds_gateway::routeros::names::{Nqn, PoolPath, Port, Slot};
use rds_gateway::routeros::text::{parse_colon, parse_detail};

pub fn fixture(name: &str) -> String {
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

fn record(index: Option<u32>, flags: &[char], fields: &[(&str, &str)]) -> Record {
    let mut r = Record::new();
    r.index = index;
    r.flags = flags.to_vec();
    for (k, v) in fields {
        r.push(*k, *v);
    }
    r
}

#[test]
fn disk_print_detail_one() {
    let out = parse_detail(&fixture("disk-print-detail-one.txt")).unwrap();
    assert!(out.legend.is_empty());
    let want = record(
        None,
        &[],
        &[
            ("type", "file"),
            ("slot", "pvc-test-123"),
            ("slot-default", ""),
            ("parent", ""),
            ("fs", "-"),
            ("model", "/storage-pool/test.img"),
            ("size", "53 687 091 200"),
            ("mount-filesystem", "yes"),
            ("mount-read-only", "no"),
            ("compress", "no"),
            ("sector-size", "512"),
            ("raid-master", "none"),
            ("nvme-tcp-export", "yes"),
            ("nvme-tcp-server-port", "4420"),
            (
                "nvme-tcp-server-nqn",
                "nqn.2000-02.com.mikrotik:pvc-test-123",
            ),
            ("nvme-tcp-server-allow-host-name", ""),
            ("iscsi-export", "no"),
            ("nfs-sharing", "no"),
            ("smb-sharing", "no"),
            ("media-sharing", "no"),
            ("media-interface", "none"),
            ("swap", "no"),
            ("file-path", "/storage-pool/test.img"),
            ("file-size", "50.0GiB"),
            ("file-offset", "0"),
        ],
    );
    assert_eq!(out.records, vec![want]);

    let disk = Disk::from_record(&out.records[0]).unwrap();
    assert_eq!(disk.slot, Slot::parse("pvc-test-123").unwrap());
    assert_eq!(disk.disk_type, DiskType::File);
    assert_eq!(disk.size.get(), 53_687_091_200);
    assert_eq!(disk.size_source, SizeSource::Exact);
    assert!(disk.nvme_export);
    assert_eq!(disk.nvme_port, Some(Port::NVME_TCP_DEFAULT));
    assert_eq!(
        disk.nqn,
        Some(Nqn::parse("nqn.2000-02.com.mikrotik:pvc-test-123").unwrap())
    );
    assert_eq!(disk.file_path.unwrap().absolute(), "/storage-pool/test.img");
    assert_eq!(disk.comment, None);
}

#[test]
fn disk_print_detail_list() {
    let out = parse_detail(&fixture("disk-print-detail-list.txt")).unwrap();
    let want: Vec<Record> = [
        (0, "1", "53 687 091 200", "50.0GiB"),
        (1, "2", "107 374 182 400", "100.0GiB"),
    ]
    .iter()
    .map(|(i, n, size, file_size)| {
        record(
            Some(*i),
            &[],
            &[
                ("type", "file"),
                ("slot", &format!("pvc-test-{n}")),
                ("size", size),
                ("file-path", &format!("/storage-pool/test{n}.img")),
                ("file-size", file_size),
                ("nvme-tcp-export", "yes"),
                ("nvme-tcp-server-port", "4420"),
                (
                    "nvme-tcp-server-nqn",
                    &format!("nqn.2000-02.com.mikrotik:pvc-test-{n}"),
                ),
            ],
        )
    })
    .collect();
    assert_eq!(out.records, want);
    let disks = Disk::from_records(&out.records).unwrap();
    let sizes: Vec<u64> = disks.iter().map(|d| d.size.get()).collect();
    assert_eq!(sizes, [50 << 30, 100 << 30]);
    // The backing file is read as printed, even when it is not named after the slot: deleting the
    // disk must remove the file it really used.
    let image = disks[0].image_path().unwrap();
    assert_eq!(image.relative(), "storage-pool/test1.img");
    assert_ne!(image.slot(), &disks[0].slot);
}

#[test]
fn disk_print_detail_rds2216_2026() {
    let out = parse_detail(&fixture("disk-print-detail-rds2216-2026.txt")).unwrap();
    assert_eq!(out.legend.name_of('B'), Some("BLOCK-DEVICE"));
    assert_eq!(out.legend.flag_named("NVME-TCP-EXPORT"), Some('t'));
    assert_eq!(out.records.len(), 1);
    let r = &out.records[0];
    assert_eq!(r.index, Some(31));
    assert_eq!(r.flags, ['B', 't']);
    assert_eq!(r.len(), 25);
    assert_eq!(r.get("model"), Some("/raid10/vm-storage-001.img"));
    assert_eq!(r.get("nvme-tcp-server-allow-host-name"), Some(""));
    assert_eq!(r.get("file-offset"), Some("0"));

    let disk = Disk::from_record(r).unwrap();
    assert_eq!(disk.slot.as_str(), "vm-storage-001");
    assert_eq!(disk.size.get(), 1 << 40);
    assert_eq!(disk.size_source, SizeSource::Exact);
    assert_eq!(
        disk.nqn.as_ref().unwrap().as_str(),
        "nqn.2026-09.com.mikrotik:rds2216.vm-storage-001"
    );
    let image = disk.image_path().unwrap();
    assert_eq!(image.slot(), &disk.slot);
    assert_eq!(image.pool(), &PoolPath::parse("raid10").unwrap());
}

#[test]
fn disk_print_detail_pool_rds2216_2026() {
    let out = parse_detail(&fixture("disk-print-detail-pool-rds2216-2026.txt")).unwrap();
    assert_eq!(out.legend.entries().len(), 3);
    assert_eq!(out.legend.name_of('r'), Some("RAID-MEMBER"));
    let heads: Vec<_> = out
        .records
        .iter()
        .map(|r| (r.index, r.flags.clone(), r.get("slot")))
        .collect();
    assert_eq!(
        heads,
        [
            (Some(26), vec!['B', 'M'], Some("raid10")),
            (Some(27), vec!['B', 'r'], Some("raid10-m0")),
        ]
    );
    let pool = &out.records[0];
    assert_eq!(pool.get("model"), Some("RAID0 striped"));
    assert_eq!(pool.get("total-inodes"), Some("1 562 806 656"));
    assert_eq!(pool.get("free-inodes"), Some("1 562 806 652"));
    assert_eq!(pool.get("raid-chunk-size"), Some("256K"));
    assert_eq!(pool.get("swap"), Some("no"));
    assert_eq!(out.records[1].get("raid-member-state"), Some("0:in_sync"));
    assert_eq!(out.records[1].get("swap"), Some("no"));

    let raid10 = PoolPath::parse("/raid10").unwrap();
    let cap = PoolCapacity::from_records(&out.records, &raid10).unwrap();
    assert_eq!(cap.total.get(), 16_003_143_565_312);
    assert_eq!(cap.free.get(), 14_789_895_307_264);
    let disk = Disk::from_record(pool).unwrap();
    assert_eq!(disk.disk_type, DiskType::Raid);
    assert_eq!(disk.mount_point, Some(raid10));
    assert_eq!(disk.use_percent, Some(8));
    assert!(!disk.nvme_export);
}

#[test]
fn file_print_detail() {
    let out = parse_detail(&fixture("file-print-detail.txt")).unwrap();
    assert_eq!(out.records.len(), 3);
    assert_eq!(
        out.records[1],
        record(
            Some(1),
            &[],
            &[
                (
                    "name",
                    "storage-pool/metal-csi/pvc-ccdecfad-a8bf-572e-9120-464c4d99f12f.img"
                ),
                ("type", ".img file"),
                ("size", "10.0GiB"),
                ("last-modified", "2025-11-11 14:32:41"),
            ],
        )
    );
    let files = FileEntry::from_records(&out.records).unwrap();
    assert!(files[0].is_directory());
    assert_eq!(files[0].name.relative(), "storage-pool/metal-csi");
    assert_eq!(files[1].size.unwrap().get(), 10 << 30);
    assert_eq!(files[2].size.unwrap().get(), 1 << 30);
    assert_eq!(files[2].kind, ".img file");
    assert_eq!(
        files[2].modified,
        RosDateTime::parse("nov/11/2025 16:47:07")
    );
}

#[test]
fn pool_capacity_file_print() {
    let out = parse_detail(&fixture("pool-capacity-file-print.txt")).unwrap();
    assert_eq!(out.records.len(), 1);
    let r = &out.records[0];
    assert_eq!(r.get("name"), Some("/storage-pool"));
    assert_eq!(r.get("creation-time"), Some("jan/01/2025 00:00:00"));
    let pool = PoolPath::parse("storage-pool/metal-csi").unwrap();
    let cap = PoolCapacity::from_record(r, &pool).unwrap();
    assert_eq!(cap.total.get(), 7_681_574_174_720);
    assert_eq!(cap.free.get(), 5_632_440_000_000);
    let entry = FileEntry::from_record(r).unwrap();
    assert_eq!(
        entry.modified.unwrap(),
        RosDateTime::parse("2025-01-01 00:00:00").unwrap()
    );
}

#[test]
fn disk_monitor_traffic_once() {
    let r = parse_colon(&fixture("disk-monitor-traffic-once.txt")).unwrap();
    assert_eq!(r.len(), 10);
    let s = TrafficSample::from_record(&r).unwrap();
    assert_eq!(s.slot, Some(Slot::parse("storage-pool").unwrap()));
    assert_eq!(s.read_ops_per_second, 0);
    assert_eq!(s.write_ops_per_second, 76);
    assert_eq!(s.read_rate, BitRate(0));
    assert_eq!(s.write_rate, BitRate(12_800_000));
    assert_eq!(s.write_time, Some(Duration::ZERO));
    assert_eq!(s.in_flight_ops, Some(0));
    assert_eq!(s.wait_time, Some(Duration::ZERO));
}

#[test]
fn fixtures_are_not_mistaken_for_failures() {
    for name in [
        "disk-monitor-traffic-once.txt",
        "disk-print-detail-list.txt",
        "disk-print-detail-one.txt",
        "disk-print-detail-pool-rds2216-2026.txt",
        "disk-print-detail-rds2216-2026.txt",
        "file-print-detail.txt",
        "pool-capacity-file-print.txt",
    ] {
        let text = fixture(name);
        assert_eq!(
            classify("disk-print", None, &text, "", Some(0)),
            Ok(()),
            "{name}"
        );
    }
}

#[test]
fn a_filtered_print_matching_nothing() {
    // Newer appliances print nothing; older ones print the legend alone.
    assert!(parse_detail("").unwrap().records.is_empty());
    let legend_only = parse_detail("Flags: B - BLOCK-DEVICE; t - NVME-TCP-EXPORT\n").unwrap();
    assert!(legend_only.records.is_empty());
    assert_eq!(Disk::from_records(&legend_only.records).unwrap(), vec![]);
}
