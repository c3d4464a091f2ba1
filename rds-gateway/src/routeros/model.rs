//! Typed views of decoded records: disks, pool capacity, files, the RouterOS version and traffic
//! samples.
//!
//! This is where field names and value formats are interpreted, the same way whether the record came
//! from `print detail` text or from JSON (`yes`/`true`, `53 687 091 200`/`53687091200`). A missing or
//! garbled field is an [`RosError::Unparseable`] naming the field and, where known, the slot; nothing
//! here panics or guesses silently. The one documented approximation is a disk's size when the exact
//! `size=` is absent: the rounded `file-size=` is used and [`SizeSource::RoundedFileSize`] says so.

use std::time::Duration;

use super::error::{RosError, Subject};
use super::names::{COMMENT_TAG, Comment, FilePath, ImagePath, Nqn, PoolPath, Port, Slot};
use super::record::Record;
use super::size::Bytes;

fn garbled(
    what: &'static str,
    subject: &Subject,
    key: &str,
    detail: impl std::fmt::Display,
) -> RosError {
    RosError::unparseable(what, subject.clone(), format!("field '{key}': {detail}"))
}

fn required<'r>(
    record: &'r Record,
    what: &'static str,
    subject: &Subject,
    key: &str,
) -> Result<&'r str, RosError> {
    record
        .get(key)
        .ok_or_else(|| garbled(what, subject, key, "missing"))
}

/// Reads RouterOS booleans: `yes`/`no` in text, `true`/`false` in JSON.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw {
        "yes" | "true" => Some(true),
        "no" | "false" => Some(false),
        _ => None,
    }
}

fn bytes_field(
    record: &Record,
    what: &'static str,
    subject: &Subject,
    key: &str,
) -> Result<Option<Bytes>, RosError> {
    record
        .get(key)
        .map(|v| Bytes::parse(v).map_err(|e| garbled(what, subject, key, e)))
        .transpose()
}

/// What kind of disk a record describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskType {
    /// A file-backed disk (volumes and snapshots).
    File,
    /// A RAID array (pools).
    Raid,
    /// Anything else, as printed.
    Other(String),
}

/// Where a disk's size came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeSource {
    /// The exact `size=` byte count.
    Exact,
    /// The rounded, human-readable `file-size=` (`50.0GiB`), because `size=` was not printed.
    RoundedFileSize,
}

/// One `/disk` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// Slot name.
    pub slot: Slot,
    /// Disk type.
    pub disk_type: DiskType,
    /// Backing file for file disks.
    pub file_path: Option<FilePath>,
    /// Size in bytes.
    pub size: Bytes,
    /// Whether [`Disk::size`] is exact.
    pub size_source: SizeSource,
    /// Whether the disk is exported over NVMe/TCP.
    pub nvme_export: bool,
    /// NVMe/TCP port, when exported.
    pub nvme_port: Option<Port>,
    /// NVMe/TCP subsystem NQN, when exported.
    pub nqn: Option<Nqn>,
    /// The driver's structured comment, when the comment is one.
    pub comment: Option<Comment>,
    /// The comment as printed, whoever wrote it.
    pub raw_comment: Option<String>,
    /// Mount point of a pool disk.
    pub mount_point: Option<PoolPath>,
    /// Free space of a pool disk.
    pub free: Option<Bytes>,
    /// Percentage used of a pool disk.
    pub use_percent: Option<u8>,
}

impl Disk {
    /// Reads a `/disk` record.
    pub fn from_record(record: &Record) -> Result<Disk, RosError> {
        const WHAT: &str = "disk";
        let unknown = Subject::None;
        let slot_text = required(record, WHAT, &unknown, "slot")?;
        let slot = Slot::parse(slot_text).map_err(|e| garbled(WHAT, &unknown, "slot", e))?;
        let subject = Subject::Slot(slot.clone());
        let s = &subject;

        let disk_type = match required(record, WHAT, s, "type")? {
            "file" => DiskType::File,
            "raid" => DiskType::Raid,
            other => DiskType::Other(other.to_owned()),
        };
        let file_path = record
            .get("file-path")
            .filter(|p| !p.is_empty())
            .map(|p| FilePath::parse(p).map_err(|e| garbled(WHAT, s, "file-path", e)))
            .transpose()?;
        let (size, size_source) = match bytes_field(record, WHAT, s, "size")? {
            Some(exact) => (exact, SizeSource::Exact),
            None => match bytes_field(record, WHAT, s, "file-size")? {
                Some(rounded) => (rounded, SizeSource::RoundedFileSize),
                None => {
                    return Err(garbled(
                        WHAT,
                        s,
                        "size",
                        "neither size nor file-size printed",
                    ));
                }
            },
        };
        let nvme_export = match record.get("nvme-tcp-export") {
            None => false,
            Some(v) => {
                parse_bool(v).ok_or_else(|| garbled(WHAT, s, "nvme-tcp-export", "not yes/no"))?
            }
        };
        let nvme_port = record
            .get("nvme-tcp-server-port")
            .map(|p| Port::parse(p).map_err(|e| garbled(WHAT, s, "nvme-tcp-server-port", e)))
            .transpose()?;
        let nqn = record
            .get("nvme-tcp-server-nqn")
            .filter(|n| !n.is_empty())
            .map(|n| Nqn::parse(n).map_err(|e| garbled(WHAT, s, "nvme-tcp-server-nqn", e)))
            .transpose()?;
        let raw_comment = record
            .comment
            .clone()
            .or_else(|| record.get("comment").map(str::to_owned))
            .filter(|c| !c.is_empty());
        let comment = match raw_comment.as_deref() {
            Some(text) if is_current_comment(text) => {
                Some(Comment::parse(text).map_err(|e| garbled(WHAT, s, "comment", e))?)
            }
            _ => None,
        };
        let mount_point = record
            .get("mount-point")
            .filter(|m| !m.is_empty())
            .map(|m| PoolPath::parse(m).map_err(|e| garbled(WHAT, s, "mount-point", e)))
            .transpose()?;
        let free = bytes_field(record, WHAT, s, "free")?;
        let use_percent = record
            .get("use")
            .map(|u| parse_percent(u).ok_or_else(|| garbled(WHAT, s, "use", "not a percentage")))
            .transpose()?;
        Ok(Disk {
            slot,
            disk_type,
            file_path,
            size,
            size_source,
            nvme_export,
            nvme_port,
            nqn,
            comment,
            raw_comment,
            mount_point,
            free,
            use_percent,
        })
    }

    /// Reads every record of a `/disk` print.
    pub fn from_records(records: &[Record]) -> Result<Vec<Disk>, RosError> {
        records.iter().map(Disk::from_record).collect()
    }

    /// The backing file as an [`ImagePath`], when it is named `<slot>.img` inside a pool directory.
    pub fn image_path(&self) -> Option<ImagePath> {
        self.file_path
            .as_ref()
            .and_then(|p| ImagePath::try_from(p).ok())
    }
}

/// A comment in this driver's current format (a later format is left alone, not refused).
fn is_current_comment(text: &str) -> bool {
    let t = text.trim_start();
    t.strip_prefix(COMMENT_TAG)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

fn parse_percent(raw: &str) -> Option<u8> {
    let digits = raw.strip_suffix('%').unwrap_or(raw);
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u8>().ok().filter(|p| *p <= 100)
}

/// Total and free space of a storage pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolCapacity {
    /// Size of the pool.
    pub total: Bytes,
    /// Free space in the pool.
    pub free: Bytes,
}

impl PoolCapacity {
    /// Reads capacity from the pool disk (`/disk print ... where mount-point=`) or from the pool's
    /// directory entry (`/file print ... where name=`): both print `size=` and `free=`.
    pub fn from_record(record: &Record, pool: &PoolPath) -> Result<PoolCapacity, RosError> {
        const WHAT: &str = "pool capacity";
        let s = &Subject::Pool(pool.clone());
        let total = bytes_field(record, WHAT, s, "size")?
            .ok_or_else(|| garbled(WHAT, s, "size", "missing"))?;
        let free = bytes_field(record, WHAT, s, "free")?
            .ok_or_else(|| garbled(WHAT, s, "free", "missing"))?;
        if free > total {
            return Err(garbled(WHAT, s, "free", "larger than size"));
        }
        Ok(PoolCapacity { total, free })
    }

    /// Reads capacity from the first record of a capacity print; no record means the pool was not
    /// found.
    pub fn from_records(records: &[Record], pool: &PoolPath) -> Result<PoolCapacity, RosError> {
        match records.first() {
            Some(r) => PoolCapacity::from_record(r, pool),
            None => Err(RosError::NotFound {
                verb: "pool-capacity",
                subject: Subject::Pool(pool.clone()),
                text: "the appliance printed no pool disk or directory".to_owned(),
            }),
        }
    }

    /// Space in use.
    pub fn used(&self) -> Bytes {
        self.total.saturating_sub(self.free)
    }
}

/// A date and time as the appliance prints it (its local clock; RouterOS does not print a zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RosDateTime {
    /// Year.
    pub year: u16,
    /// Month, 1..=12.
    pub month: u8,
    /// Day, 1..=31.
    pub day: u8,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=59.
    pub second: u8,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

impl RosDateTime {
    /// Parses `2025-11-12 00:36:13` (newer RouterOS) or `jan/02/2025 10:30:45` (older).
    pub fn parse(raw: &str) -> Option<RosDateTime> {
        let (date, time) = raw.trim().split_once(' ')?;
        let num = |s: &str, len: usize| -> Option<u16> {
            (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let (year, month, day) = if let Some((m, rest)) = date.split_once('/') {
            let (d, y) = rest.split_once('/')?;
            let month = MONTHS.iter().position(|n| n.eq_ignore_ascii_case(m))? + 1;
            (num(y, 4)?, u8::try_from(month).ok()?, num(d, 2)?)
        } else {
            let mut parts = date.split('-');
            let y = num(parts.next()?, 4)?;
            let m = num(parts.next()?, 2)?;
            let d = num(parts.next()?, 2)?;
            if parts.next().is_some() {
                return None;
            }
            (y, u8::try_from(m).ok()?, d)
        };
        let mut t = time.trim().split(':');
        let hour = num(t.next()?, 2)?;
        let minute = num(t.next()?, 2)?;
        let second = num(t.next()?, 2)?;
        if t.next().is_some() {
            return None;
        }
        let dt = RosDateTime {
            year,
            month,
            day: u8::try_from(day).ok()?,
            hour: u8::try_from(hour).ok()?,
            minute: u8::try_from(minute).ok()?,
            second: u8::try_from(second).ok()?,
        };
        let valid = (1..=12).contains(&dt.month)
            && dt.day >= 1
            && dt.day <= days_in_month(dt.year, dt.month)
            && dt.hour < 24
            && dt.minute < 60
            && dt.second < 60;
        valid.then_some(dt)
    }

    /// Seconds since the Unix epoch, reading the appliance clock as UTC.
    pub fn unix_seconds(&self) -> i64 {
        let days = days_from_civil(
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        );
        days * 86_400
            + i64::from(self.hour) * 3_600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }
}

fn days_in_month(year: u16, month: u8) -> u8 {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian calendar).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One `/file` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path, as printed without a leading slash.
    pub name: FilePath,
    /// `directory`, `.img file`, ...
    pub kind: String,
    /// Size: exact when printed as an integer, rounded when printed with a unit (`10.0GiB`).
    pub size: Option<Bytes>,
    /// Free space (printed for pool directories).
    pub free: Option<Bytes>,
    /// `last-modified` or, failing that, `creation-time`.
    pub modified: Option<RosDateTime>,
}

impl FileEntry {
    /// Reads a `/file` record.
    pub fn from_record(record: &Record) -> Result<FileEntry, RosError> {
        const WHAT: &str = "file";
        let unknown = Subject::None;
        let name_text = required(record, WHAT, &unknown, "name")?;
        let name = FilePath::parse(name_text).map_err(|e| garbled(WHAT, &unknown, "name", e))?;
        let s = &Subject::Path(name.clone());
        let kind = required(record, WHAT, s, "type")?.to_owned();
        let size = bytes_field(record, WHAT, s, "size")?;
        let free = bytes_field(record, WHAT, s, "free")?;
        let modified = match ["last-modified", "creation-time"]
            .into_iter()
            .find_map(|k| record.get(k).map(|v| (k, v)))
        {
            Some((key, value)) => {
                Some(RosDateTime::parse(value).ok_or_else(|| garbled(WHAT, s, key, "not a date"))?)
            }
            None => None,
        };
        Ok(FileEntry {
            name,
            kind,
            size,
            free,
            modified,
        })
    }

    /// Reads every record of a `/file` print.
    pub fn from_records(records: &[Record]) -> Result<Vec<FileEntry>, RosError> {
        records.iter().map(FileEntry::from_record).collect()
    }

    /// True for directories.
    pub fn is_directory(&self) -> bool {
        self.kind == "directory"
    }
}

/// The RouterOS version, from `/system resource print`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterOsVersion {
    /// Major version (7).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch level (0 when not printed).
    pub patch: u32,
    /// Pre-release tag glued to the last number (`rc3`, `beta2`).
    pub prerelease: Option<String>,
    /// Release channel in brackets (`stable`, `long-term`, `testing`).
    pub channel: Option<String>,
}

impl RouterOsVersion {
    /// Parses `7.16.2 (stable)`, `7.13`, `7.12.1`, `7.15rc3 (testing)`.
    /// A leading `version:` label (the whole line of `/system resource print`) is accepted too.
    pub fn parse(raw: &str) -> Option<RouterOsVersion> {
        let raw = raw.trim();
        let raw = raw.strip_prefix("version:").map_or(raw, str::trim_start);
        let (number, rest) = raw.split_once(' ').unwrap_or((raw, ""));
        let rest = rest.trim();
        let channel = if rest.is_empty() {
            None
        } else {
            let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
            if inner.is_empty()
                || !inner
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return None;
            }
            Some(inner.to_owned())
        };
        let parts: Vec<&str> = number.split('.').collect();
        if !(2..=3).contains(&parts.len()) {
            return None;
        }
        let mut prerelease = None;
        let mut nums = [0u32; 3];
        for (i, part) in parts.iter().enumerate() {
            let digits_len = part.bytes().take_while(u8::is_ascii_digit).count();
            let (digits, suffix) = part.split_at(digits_len);
            if digits.is_empty() || digits.len() > 6 {
                return None;
            }
            nums[i] = digits.parse().ok()?;
            if !suffix.is_empty() {
                let valid = i == parts.len() - 1
                    && suffix
                        .bytes()
                        .next()
                        .is_some_and(|b| b.is_ascii_alphabetic())
                    && suffix.bytes().all(|b| b.is_ascii_alphanumeric());
                if !valid {
                    return None;
                }
                prerelease = Some(suffix.to_owned());
            }
        }
        Some(RouterOsVersion {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            prerelease,
            channel,
        })
    }

    /// Reads the `version` field of a `/system resource print` record.
    pub fn from_record(record: &Record) -> Result<RouterOsVersion, RosError> {
        let s = &Subject::None;
        let raw = required(record, "system resource", s, "version")?;
        RouterOsVersion::parse(raw).ok_or_else(|| {
            garbled(
                "system resource",
                s,
                "version",
                super::names::escape_for_display(raw),
            )
        })
    }

    /// True from 7.13 on (`:serialize to=json` exists); pre-releases of 7.13 are not trusted.
    pub fn supports_json(&self) -> bool {
        match (self.major, self.minor) {
            (m, _) if m > 7 => true,
            (7, n) if n > 13 => true,
            (7, 13) => self.prerelease.is_none(),
            _ => false,
        }
    }
}

/// Bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BitRate(pub u64);

impl BitRate {
    /// Parses `0bps`, `950kbps`, `12.8Mbps`, `1.2Gbps` (decimal prefixes, as RouterOS prints rates).
    pub fn parse(raw: &str) -> Option<BitRate> {
        let raw = raw.trim();
        let number_len = raw
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (number, unit) = raw.split_at(number_len);
        let multiplier: u64 = match unit.trim_start() {
            "bps" => 1,
            "kbps" | "Kbps" => 1_000,
            "Mbps" => 1_000_000,
            "Gbps" => 1_000_000_000,
            "Tbps" => 1_000_000_000_000,
            _ => return None,
        };
        scaled_decimal(number, multiplier).map(BitRate)
    }
}

/// `number × multiplier`, rounded to the nearest integer, for a decimal `number`.
fn scaled_decimal(number: &str, multiplier: u64) -> Option<u64> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 20
        || fraction.len() > 9
        || !digits(whole)
        || !digits(fraction)
    {
        return None;
    }
    if number.contains('.') && fraction.is_empty() {
        return None;
    }
    let scale = 10u128.pow(fraction.len() as u32);
    let w: u128 = whole.parse().ok()?;
    let f: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    let value = (w.checked_mul(scale)?.checked_add(f)?).checked_mul(u128::from(multiplier))?;
    u64::try_from(value.checked_add(scale / 2)? / scale).ok()
}

/// Parses RouterOS durations: `0ms`, `250us`, `1.5ms`, `1s`, `1m30s`, `1w2d3h`.
pub fn parse_duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let mut total_nanos: u128 = 0;
    let mut rest = raw;
    while !rest.is_empty() {
        let number_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let unit_len = rest[number_len..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        let number = &rest[..number_len];
        let unit = &rest[number_len..number_len + unit_len];
        let nanos_per: u64 = match unit {
            "ns" => 1,
            "us" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "w" => 604_800_000_000_000,
            _ => return None,
        };
        total_nanos = total_nanos.checked_add(u128::from(scaled_decimal(number, nanos_per)?))?;
        rest = &rest[number_len + unit_len..];
    }
    u64::try_from(total_nanos).ok().map(Duration::from_nanos)
}

/// One `/disk monitor-traffic <slot> once` sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSample {
    /// The disk sampled, when printed.
    pub slot: Option<Slot>,
    /// Read operations per second.
    pub read_ops_per_second: u64,
    /// Write operations per second.
    pub write_ops_per_second: u64,
    /// Read rate.
    pub read_rate: BitRate,
    /// Write rate.
    pub write_rate: BitRate,
    /// Time spent reading, when printed.
    pub read_time: Option<Duration>,
    /// Time spent writing, when printed.
    pub write_time: Option<Duration>,
    /// Operations in flight, when printed.
    pub in_flight_ops: Option<u64>,
    /// Time the disk was busy, when printed.
    pub active_time: Option<Duration>,
    /// Time requests waited, when printed.
    pub wait_time: Option<Duration>,
}

impl TrafficSample {
    /// Reads a `key: value` record from `monitor-traffic`.
    pub fn from_record(record: &Record) -> Result<TrafficSample, RosError> {
        const WHAT: &str = "traffic sample";
        let unknown = Subject::None;
        let slot = record
            .get("slot")
            .map(|v| Slot::parse(v).map_err(|e| garbled(WHAT, &unknown, "slot", e)))
            .transpose()?;
        let subject = Subject::from(slot.as_ref());
        let s = &subject;
        let count = |key: &str| -> Result<u64, RosError> {
            let v = required(record, WHAT, s, key)?;
            parse_count(v).ok_or_else(|| garbled(WHAT, s, key, "not a count"))
        };
        let rate = |key: &str| -> Result<BitRate, RosError> {
            let v = required(record, WHAT, s, key)?;
            BitRate::parse(v).ok_or_else(|| garbled(WHAT, s, key, "not a rate"))
        };
        let duration = |key: &str| -> Result<Option<Duration>, RosError> {
            record
                .get(key)
                .map(|v| parse_duration(v).ok_or_else(|| garbled(WHAT, s, key, "not a duration")))
                .transpose()
        };
        Ok(TrafficSample {
            read_ops_per_second: count("read-ops-per-second")?,
            write_ops_per_second: count("write-ops-per-second")?,
            read_rate: rate("read-rate")?,
            write_rate: rate("write-rate")?,
            read_time: duration("read-time")?,
            write_time: duration("write-time")?,
            in_flight_ops: record
                .get("in-flight-ops")
                .map(|v| {
                    parse_count(v).ok_or_else(|| garbled(WHAT, s, "in-flight-ops", "not a count"))
                })
                .transpose()?,
            active_time: duration("active-time")?,
            wait_time: duration("wait-time")?,
            slot,
        })
    }
}

/// A count printed as an integer, spaced thousands or an integral float.
fn parse_count(raw: &str) -> Option<u64> {
    Bytes::parse(raw)
        .ok()
        .filter(|_| {
            raw.trim()
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b' ' || b == b'.')
        })
        .map(Bytes::get)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::routeros::names::CommentKind;

    fn disk_record() -> Record {
        Record::new()
            .with("type", "file")
            .with("slot", "pvc-1")
            .with("size", "53 687 091 200")
            .with("file-path", "/storage-pool/metal-csi/pvc-1.img")
            .with("file-size", "50.0GiB")
            .with("nvme-tcp-export", "yes")
            .with("nvme-tcp-server-port", "4420")
            .with("nvme-tcp-server-nqn", "nqn.2000-02.com.mikrotik:pvc-1")
    }

    #[test]
    fn disk_prefers_exact_size() {
        let d = Disk::from_record(&disk_record()).unwrap();
        assert_eq!(d.size.get(), 53_687_091_200);
        assert_eq!(d.size_source, SizeSource::Exact);
        assert!(d.nvme_export);
        assert_eq!(d.nvme_port, Some(Port::NVME_TCP_DEFAULT));
        assert_eq!(d.image_path().unwrap().slot().as_str(), "pvc-1");
    }

    #[test]
    fn disk_falls_back_to_rounded_file_size_and_says_so() {
        let mut r = Record::new();
        for (k, v) in disk_record().fields().filter(|(k, _)| *k != "size") {
            r.push(k, v);
        }
        let d = Disk::from_record(&r).unwrap();
        assert_eq!(d.size.get(), 50 << 30);
        assert_eq!(d.size_source, SizeSource::RoundedFileSize);
    }

    #[test]
    fn disk_errors_name_the_field_and_slot() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("slot", None, "slot"),
            ("slot", Some("BAD SLOT"), "slot"),
            ("type", None, "type"),
            ("nvme-tcp-export", Some("maybe"), "nvme-tcp-export"),
            ("nvme-tcp-server-port", Some("0"), "nvme-tcp-server-port"),
            ("nvme-tcp-server-nqn", Some("nqn;x"), "nvme-tcp-server-nqn"),
            ("size", Some("lots"), "size"),
            ("file-path", Some("/a/../b"), "file-path"),
        ];
        for (key, value, field) in cases {
            let mut r = Record::new();
            for (k, v) in disk_record().fields().filter(|(k, _)| k != key) {
                r.push(k, v);
            }
            if let Some(v) = value {
                r.push(*key, *v);
            }
            let err = Disk::from_record(&r).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&format!("'{field}'")), "{msg}");
            if *key != "slot" {
                assert!(msg.contains("pvc-1"), "{msg}");
            }
        }
        let mut no_size = Record::new();
        for (k, v) in disk_record().fields().filter(|(k, _)| !k.contains("size")) {
            no_size.push(k, v);
        }
        assert!(Disk::from_record(&no_size).is_err());
    }

    #[test]
    fn disk_comments() {
        let mut r = disk_record();
        r.comment = Some("rds-csi:v1 kind=snapshot source=pvc-0 created=1739800000".into());
        let d = Disk::from_record(&r).unwrap();
        let c = d.comment.unwrap();
        assert_eq!(c.kind(), CommentKind::Snapshot);
        assert_eq!(c.source().unwrap().as_str(), "pvc-0");
        assert_eq!(c.created(), Some(1_739_800_000));

        r.comment = Some("made by hand".into());
        let d = Disk::from_record(&r).unwrap();
        assert_eq!(d.comment, None);
        assert_eq!(d.raw_comment.as_deref(), Some("made by hand"));

        r.comment = Some("rds-csi:v2 kind=whatever".into());
        assert_eq!(Disk::from_record(&r).unwrap().comment, None);

        r.comment = Some("rds-csi:v1 kind=snapshot source=BAD".into());
        assert!(Disk::from_record(&r).is_err());
    }

    #[test]
    fn pool_capacity() {
        let pool = PoolPath::parse("raid10").unwrap();
        let r = Record::new()
            .with("size", "16 003 143 565 312")
            .with("free", "14 789 895 307 264");
        let c = PoolCapacity::from_record(&r, &pool).unwrap();
        assert_eq!(c.total.get(), 16_003_143_565_312);
        assert_eq!(c.used().get(), 16_003_143_565_312 - 14_789_895_307_264);
        let inverted = Record::new().with("size", "1").with("free", "2");
        assert!(PoolCapacity::from_record(&inverted, &pool).is_err());
        assert!(PoolCapacity::from_record(&Record::new().with("size", "1"), &pool).is_err());
        let err = PoolCapacity::from_records(&[], &pool).unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
    }

    #[test]
    fn dates_in_both_forms_agree() {
        let a = RosDateTime::parse("2025-01-02 10:30:45").unwrap();
        let b = RosDateTime::parse("jan/02/2025 10:30:45").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.unix_seconds(), 1_735_813_845);
        assert_eq!(
            RosDateTime::parse("1970-01-01 00:00:00")
                .unwrap()
                .unix_seconds(),
            0
        );
        for bad in [
            "2025-02-30 00:00:00",
            "2025-13-01 00:00:00",
            "foo/01/2025 00:00:00",
            "2025-01-01",
            "2025-01-01 24:00:00",
            "2025-1-01 00:00:00",
            "",
        ] {
            assert!(RosDateTime::parse(bad).is_none(), "{bad}");
        }
        assert!(RosDateTime::parse("2024-02-29 00:00:00").is_some());
    }

    #[test]
    fn versions() {
        let v = RouterOsVersion::parse("7.16.2 (stable)").unwrap();
        assert_eq!(
            RouterOsVersion::parse("version: 7.16.2 (stable)"),
            Some(v.clone())
        );
        assert_eq!((v.major, v.minor, v.patch), (7, 16, 2));
        assert_eq!(v.channel.as_deref(), Some("stable"));
        assert!(v.supports_json());
        assert!(RouterOsVersion::parse("7.13").unwrap().supports_json());
        assert!(!RouterOsVersion::parse("7.12.1").unwrap().supports_json());
        assert!(
            !RouterOsVersion::parse("7.13rc1 (testing)")
                .unwrap()
                .supports_json()
        );
        assert!(RouterOsVersion::parse("7.14beta2").unwrap().supports_json());
        assert!(
            !RouterOsVersion::parse("6.49.10 (long-term)")
                .unwrap()
                .supports_json()
        );
        assert!(RouterOsVersion::parse("8.0").unwrap().supports_json());
        for bad in [
            "",
            "7",
            "seven.1",
            "7.x",
            "7.1.2.3",
            "7.16 stable",
            "7.16 (st able)",
            "7.1rc.2",
        ] {
            assert!(RouterOsVersion::parse(bad).is_none(), "{bad}");
        }
        let r = Record::new().with("version", "7.16.2 (stable)");
        assert_eq!(RouterOsVersion::from_record(&r).unwrap(), v);
        assert!(RouterOsVersion::from_record(&Record::new()).is_err());
    }

    #[test]
    fn rates_and_durations() {
        assert_eq!(BitRate::parse("0bps"), Some(BitRate(0)));
        assert_eq!(BitRate::parse("12.8Mbps"), Some(BitRate(12_800_000)));
        assert_eq!(BitRate::parse("950kbps"), Some(BitRate(950_000)));
        assert_eq!(BitRate::parse("1.25Gbps"), Some(BitRate(1_250_000_000)));
        for bad in ["", "12", "Mbps", "1.2.3Mbps", "12MBps", "-1bps"] {
            assert!(BitRate::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(parse_duration("0ms"), Some(Duration::ZERO));
        assert_eq!(parse_duration("1.5ms"), Some(Duration::from_micros(1500)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        for bad in ["", "ms", "5", "5parsecs", "1.ms"] {
            assert!(parse_duration(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("27%"), Some(27));
        assert_eq!(parse_percent("100%"), Some(100));
        assert_eq!(parse_percent("101%"), None);
        assert_eq!(parse_percent("%"), None);
    }
}
