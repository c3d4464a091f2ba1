//! `routeros_text`: the `print detail` decoder of rds-gateway and the typed views built on it.
//!
//! Input: the raw output of a `/disk` or `/file` `print detail` (lossily decoded). Oracles:
//! - decoding never panics, and a refusal is a log-safe message;
//! - every decoded key is a RouterOS property name and every flag a letter or `*`;
//! - text and JSON agree (the JSON typing mode is the input length modulo 3): each decoded record, re-encoded as the `:serialize to=json` output of
//!   the same item (values as strings, or integers and booleans typed as RouterOS 7.13+ prints
//!   them, in either integer or `443.000000` float form), decodes through `json::parse_json` to
//!   the same fields, and the typed disk, file and capacity views read from both are the same.

use rds_gateway::routeros::Record;
use rds_gateway::routeros::json::parse_json;
use rds_gateway::routeros::model::{Disk, FileEntry, PoolCapacity};
use rds_gateway::routeros::names::PoolPath;
use rds_gateway::routeros::text::parse_detail;
use serde_json::{Map, Number, Value};

use crate::input;
use crate::oracle::{LogRule, assert_log_safe};

/// Tokens of `print detail` output.
pub const DICTIONARY: &[&[u8]] = &[
    b"Flags: ",
    b"Flags: X - disabled, I - invalid",
    b"B - BLOCK-DEVICE; t - NVME-TCP-EXPORT",
    b"Columns: ",
    b" 0  ",
    b"31 Bt ",
    b"27 B r ",
    b"\n       ",
    b"\n               ",
    b"\n \n",
    b"type=file ",
    b"type=raid ",
    b"slot=\"",
    b"slot=pvc-",
    b"size=",
    b"size=53 687 091 200",
    b"free=",
    b"use=27%",
    b"file-path=/storage-pool/",
    b"file-size=50.0GiB",
    b"mount-point=\"",
    b"nvme-tcp-export=yes",
    b"nvme-tcp-server-port=4420",
    b"nvme-tcp-server-nqn=\"nqn.2000-02.com.mikrotik:",
    b"comment=",
    b";;; rds-csi:v1 kind=snapshot source=pvc-1 created=1700000000",
    b"name=storage-pool/metal-csi",
    b"type=directory",
    b"type=.img file",
    b"last-modified=2025-11-11 16:47:07",
    b"creation-time=jan/01/2025 00:00:00",
    b"\\\"",
    b"\\5C",
    b"\\_",
];

/// Capacity is read for this pool in every input.
const POOL: &str = "storage-pool";

/// Decodes the input as `print detail` output and checks the oracles above.
pub fn routeros_text(data: &[u8]) {
    let text = input::text(data);
    let output = match parse_detail(&text) {
        Ok(output) => output,
        Err(e) => {
            assert_log_safe(
                "parse_detail error",
                &e.to_string(),
                LogRule::EscapedAscii { max_len: 2048 },
            );
            return;
        }
    };
    for record in &output.records {
        for (key, _) in record.fields() {
            assert!(
                !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "decoded key {key:?} is not a property name"
            );
        }
        for flag in &record.flags {
            assert!(
                flag.is_ascii_alphabetic() || *flag == '*',
                "decoded flag {flag:?}"
            );
        }
    }
    let mode = data.len() % 3;
    for record in &output.records {
        agree_with_json(record, mode);
    }
    check_views(&output.records);
}

/// Runs every typed view over `records`; none may panic, errors must be log-safe.
pub fn check_views(records: &[Record]) {
    let messages = [
        Disk::from_records(records).err(),
        FileEntry::from_records(records).err(),
        PoolCapacity::from_records(records, &pool()).err(),
    ];
    for e in messages.into_iter().flatten() {
        assert_log_safe(
            "typed view error",
            &e.to_string(),
            LogRule::EscapedAscii { max_len: 2048 },
        );
    }
    for record in records {
        if let Ok(disk) = Disk::from_record(record) {
            let _ = disk.image_path();
        }
    }
}

fn pool() -> PoolPath {
    match PoolPath::parse(POOL) {
        Ok(p) => p,
        Err(e) => panic!("the fixed pool path is valid: {e}"),
    }
}

/// Keys whose `yes`/`no` RouterOS 7.13+ serialises as JSON booleans (the ones the views read).
const BOOL_KEYS: &[&str] = &["nvme-tcp-export"];
/// Keys whose spaced-thousands integers it serialises as numbers.
const SIZE_KEYS: &[&str] = &["size", "free"];

/// Longest digit string written as a JSON number (below 2^53, so exact as a float too).
const MAX_JSON_DIGITS: usize = 15;

fn canonical_digits(value: &str) -> Option<String> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.len() <= MAX_JSON_DIGITS
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'))
    };
    if plain(value) {
        return Some(value.to_owned());
    }
    None
}

fn spaced_thousands(value: &str) -> Option<String> {
    let mut groups = value.split(' ');
    let first = groups.next()?;
    if first.is_empty() || first.len() > 3 || first.starts_with('0') {
        return None;
    }
    let mut joined = first.to_owned();
    for g in groups {
        if g.len() != 3 {
            return None;
        }
        joined.push_str(g);
    }
    canonical_digits(&joined)
}

/// The JSON value RouterOS would print for `key`=`value` in `mode` (0: all strings, 1: typed
/// integers, 2: typed floats).
fn json_value(key: &str, value: &str, mode: usize) -> Value {
    if mode == 0 {
        return Value::String(value.to_owned());
    }
    if BOOL_KEYS.contains(&key) {
        match value {
            "yes" => return Value::Bool(true),
            "no" => return Value::Bool(false),
            _ => {}
        }
    }
    let digits = canonical_digits(value).or_else(|| {
        SIZE_KEYS
            .contains(&key)
            .then(|| spaced_thousands(value))
            .flatten()
    });
    let Some(digits) = digits else {
        return Value::String(value.to_owned());
    };
    if mode == 1 {
        if let Ok(n) = digits.parse::<u64>() {
            return Value::Number(Number::from(n));
        }
    } else if let Ok(Value::Number(n)) = serde_json::from_str::<Value>(&format!("{digits}.000000"))
    {
        return Value::Number(n);
    }
    Value::String(value.to_owned())
}

fn sorted_fields(record: &Record) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = record
        .fields()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    fields.sort();
    fields
}

fn agree_with_json(record: &Record, mode: usize) {
    let mut keys: Vec<&str> = record.fields().map(|(k, _)| k).collect();
    keys.sort_unstable();
    let unique = keys.windows(2).all(|w| w[0] != w[1]);
    // A `comment` property and a `;;;` line would both be the comment in JSON: skip that shape.
    if !unique || keys.contains(&"comment") {
        return;
    }
    let mut object = Map::new();
    for (k, v) in record.fields() {
        object.insert(k.to_owned(), json_value(k, v, mode));
    }
    if let Some(c) = record.comment.as_deref().filter(|c| !c.is_empty()) {
        object.insert("comment".to_owned(), Value::String(c.to_owned()));
    }
    let json = Value::Array(vec![Value::Object(object)]).to_string();
    let back = match parse_json(&json) {
        Ok(records) => records,
        Err(e) => panic!("JSON form of a decoded record was refused: {e}\n  json: {json}"),
    };
    let [from_json] = back.as_slice() else {
        panic!("JSON form of one record decoded to {} records", back.len());
    };
    let text_comment = record.comment.as_deref().filter(|c| !c.is_empty());
    assert_eq!(
        text_comment,
        from_json.comment.as_deref(),
        "comment differs between text and JSON"
    );
    if mode == 0 {
        assert_eq!(
            sorted_fields(record),
            sorted_fields(from_json),
            "fields differ between text and JSON\n  json: {json}"
        );
    }
    let disk_text = Disk::from_record(record);
    let disk_json = Disk::from_record(from_json);
    assert_eq!(
        disk_text.as_ref().ok(),
        disk_json.as_ref().ok(),
        "disk differs between text and JSON (mode {mode})\n  json: {json}\n  text error: {:?}\n  json error: {:?}",
        disk_text.as_ref().err(),
        disk_json.as_ref().err()
    );
    let file_text = FileEntry::from_record(record);
    let file_json = FileEntry::from_record(from_json);
    assert_eq!(
        file_text.as_ref().ok(),
        file_json.as_ref().ok(),
        "file entry differs between text and JSON (mode {mode})\n  json: {json}"
    );
    let pool = pool();
    assert_eq!(
        PoolCapacity::from_record(record, &pool).ok(),
        PoolCapacity::from_record(from_json, &pool).ok(),
        "pool capacity differs between text and JSON (mode {mode})\n  json: {json}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_follow_the_mode() {
        assert_eq!(
            json_value("size", "53 687 091 200", 0),
            Value::String("53 687 091 200".into())
        );
        assert_eq!(
            json_value("size", "53 687 091 200", 1),
            Value::Number(53_687_091_200u64.into())
        );
        assert_eq!(
            json_value("slot", "1 000", 1),
            Value::String("1 000".into())
        );
        assert_eq!(json_value("nvme-tcp-export", "yes", 2), Value::Bool(true));
        assert_eq!(json_value("x", "0443", 1), Value::String("0443".into()));
        assert!(json_value("x", "443", 2).to_string().starts_with("443.0"));
    }

    #[test]
    fn the_real_samples_pass() {
        for sample in [
            &include_bytes!("../../corpus/routeros_text/disk-print-detail-one.txt")[..],
            &include_bytes!("../../corpus/routeros_text/disk-print-detail-rds2216-2026.txt")[..],
            &include_bytes!("../../corpus/routeros_text/file-print-detail.txt")[..],
        ] {
            for extra in 0..3 {
                let mut data = sample.to_vec();
                data.extend(std::iter::repeat_n(b'\n', extra));
                routeros_text(&data);
            }
        }
    }
}
