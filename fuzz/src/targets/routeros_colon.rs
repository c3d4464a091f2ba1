//! `routeros_colon`: the `key: value` decoder (`/disk monitor-traffic ... once`, `/system
//! resource print`) and every value parser of the RouterOS model: version, dates, bit rates,
//! durations, booleans and sizes.
//!
//! Input: the raw output (lossily decoded); each line is also fed to every value parser, whole
//! and as the part after its first `:`. Oracles:
//! - nothing panics, refusals are log-safe;
//! - every value that parses prints back, in the canonical form, to text that parses to the same
//!   value (version, date in both of RouterOS's date styles, rate in bps, duration in ns, size in
//!   bytes), and the date's Unix time agrees with its fields;
//! - sizes round up, never down, to an aligned size less than one granule above.

use rds_gateway::routeros::model::{
    BitRate, RosDateTime, RouterOsVersion, TrafficSample, parse_bool, parse_duration,
};
use rds_gateway::routeros::size::{Bytes, GRANULARITY, round_up};
use rds_gateway::routeros::text::parse_colon;

use crate::input;
use crate::oracle::{LogRule, assert_log_safe};

/// Tokens of `key: value` output and of the value formats.
pub const DICTIONARY: &[&[u8]] = &[
    b"slot: storage-pool",
    b"read-ops-per-second: ",
    b"write-ops-per-second: ",
    b"read-rate: ",
    b"write-rate: 12.8Mbps",
    b"read-time: 0ms",
    b"in-flight-ops: ",
    b"active-time: ",
    b"wait-time: ",
    b"version: 7.16.2 (stable)",
    b"7.13",
    b"7.15rc3 (testing)",
    b"(long-term)",
    b"bps",
    b"kbps",
    b"Mbps",
    b"Gbps",
    b"Tbps",
    b"ns",
    b"us",
    b"ms",
    b"1w2d3h4m5s",
    b"2025-11-12 00:36:13",
    b"jan/02/2025 10:30:45",
    b"feb/29/2024 23:59:59",
    b"9999-12-31 23:59:59",
    b"0000-01-01 00:00:00",
    b"1.5GiB",
    b"1024.0MiB",
    b"1T",
    b"53 687 091 200",
];

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Decodes the input as `key: value` output, runs every value parser on its lines and checks the
/// oracles above.
pub fn routeros_colon(data: &[u8]) {
    let text = input::text(data);
    match parse_colon(&text) {
        Ok(record) => {
            for e in [
                TrafficSample::from_record(&record).err(),
                RouterOsVersion::from_record(&record).err(),
            ]
            .into_iter()
            .flatten()
            {
                assert_log_safe(
                    "colon view error",
                    &e.to_string(),
                    LogRule::EscapedAscii { max_len: 2048 },
                );
            }
        }
        Err(e) => assert_log_safe(
            "parse_colon error",
            &e.to_string(),
            LogRule::EscapedAscii { max_len: 2048 },
        ),
    }
    for line in text.lines().take(64) {
        values(line);
        if let Some((_, value)) = line.split_once(':') {
            values(value);
        }
    }
}

fn values(raw: &str) {
    if let Some(v) = RouterOsVersion::parse(raw) {
        let mut printed = format!("{}.{}.{}", v.major, v.minor, v.patch);
        if let Some(p) = &v.prerelease {
            printed.push_str(p);
        }
        if let Some(c) = &v.channel {
            printed.push_str(&format!(" ({c})"));
        }
        assert_eq!(
            RouterOsVersion::parse(&printed).as_ref(),
            Some(&v),
            "version {raw:?} printed as {printed:?} reads differently"
        );
        let _ = v.supports_json();
    }
    if let Some(dt) = RosDateTime::parse(raw) {
        check_date(raw, dt);
    }
    if let Some(rate) = BitRate::parse(raw) {
        let printed = format!("{}bps", rate.0);
        assert_eq!(BitRate::parse(&printed), Some(rate), "rate {raw:?}");
    }
    if let Some(d) = parse_duration(raw) {
        let printed = format!("{}ns", d.as_nanos());
        assert_eq!(parse_duration(&printed), Some(d), "duration {raw:?}");
    }
    let _ = parse_bool(raw);
    match Bytes::parse(raw) {
        Ok(b) => {
            assert_eq!(Bytes::parse(&b.to_string()), Ok(b), "size {raw:?}");
            check_round_up(b);
        }
        Err(e) => assert_log_safe(
            "size error",
            &e.to_string(),
            LogRule::EscapedAscii { max_len: 1024 },
        ),
    }
}

fn check_date(raw: &str, dt: RosDateTime) {
    let time = format!("{:02}:{:02}:{:02}", dt.hour, dt.minute, dt.second);
    let newer = format!("{:04}-{:02}-{:02} {time}", dt.year, dt.month, dt.day);
    assert_eq!(
        RosDateTime::parse(&newer),
        Some(dt),
        "date {raw:?} as {newer:?}"
    );
    let month = MONTHS
        .get(usize::from(dt.month).wrapping_sub(1))
        .unwrap_or_else(|| panic!("date {raw:?} has month {}", dt.month));
    let older = format!("{month}/{:02}/{:04} {time}", dt.day, dt.year);
    assert_eq!(
        RosDateTime::parse(&older),
        Some(dt),
        "date {raw:?} as {older:?}"
    );
    let secs = dt.unix_seconds();
    let of_day = i64::from(dt.hour) * 3600 + i64::from(dt.minute) * 60 + i64::from(dt.second);
    assert_eq!(
        (secs - of_day).rem_euclid(86_400),
        0,
        "date {raw:?}: Unix time {secs} is not midnight plus the time of day"
    );
    if dt.year == 1970 && dt.month == 1 && dt.day == 1 {
        assert_eq!(secs, of_day, "the epoch day");
    }
}

fn check_round_up(b: Bytes) {
    match round_up(b) {
        Ok(r) => {
            assert!(r >= b, "round_up({b}) = {r} rounds down");
            assert!(r.is_aligned(), "round_up({b}) = {r} is not aligned");
            assert!(
                r.get() - b.get() < GRANULARITY.get(),
                "round_up({b}) = {r} adds a whole granule or more"
            );
        }
        Err(_) => assert!(
            b.get() > u64::MAX - GRANULARITY.get(),
            "round_up({b}) refused a size that fits"
        ),
    }
}
