//! `routeros_json`: the `:serialize to=json` decoder of rds-gateway.
//!
//! Input: the raw output of `:put [:serialize to=json [<print> as-value]]` (lossily decoded).
//! Oracles:
//! - decoding never panics, and a refusal is a log-safe message;
//! - decoding is stable: the decoded records, written back as JSON strings, decode to the same
//!   records (so no value changes on a second pass, and the `comment` field keeps its role);
//! - the typed views read from the records never panic.

use rds_gateway::routeros::Record;
use rds_gateway::routeros::json::parse_json;
use serde_json::{Map, Value};

use super::routeros_text::check_views;
use crate::input;
use crate::oracle::{LogRule, assert_log_safe};

/// Tokens of serialised print output.
pub const DICTIONARY: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b"[{",
    b"}]",
    b"},{",
    b"\":\"",
    b"\":",
    b"\",\"",
    b"\".id\":\"*1F\"",
    b"\"slot\":\"",
    b"\"type\":\"file\"",
    b"\"size\":",
    b"\"size\":1099511627776",
    b"\"size\":443.000000",
    b"\"free\":",
    b"\"nvme-tcp-export\":true",
    b"\"nvme-tcp-server-port\":4420.000000",
    b"\"nvme-tcp-server-nqn\":\"nqn.2000-02.com.mikrotik:",
    b"\"file-path\":\"/storage-pool/",
    b"\"mount-point\":\"raid10\"",
    b"\"comment\":\"rds-csi:v1 kind=volume\"",
    b"\"name\":\"storage-pool/metal-csi\"",
    b"\"last-modified\":\"2025-11-11 16:47:07\"",
    b"null",
    b"1e400",
    b"-0.0",
    b"9007199254740993.000000",
    b"\\u0000",
    b"\\ud800",
    b"\\\"",
    b"\\\\",
];

/// Decodes the input as serialised print output and checks the oracles above.
pub fn routeros_json(data: &[u8]) {
    let text = input::text(data);
    let records = match parse_json(&text) {
        Ok(records) => records,
        Err(e) => {
            assert_log_safe(
                "parse_json error",
                &e.to_string(),
                LogRule::EscapedAscii { max_len: 2048 },
            );
            return;
        }
    };
    let again = Value::Array(records.iter().map(as_strings).collect()).to_string();
    match parse_json(&again) {
        Ok(second) => assert!(
            same_records(&records, &second),
            "decoding is not stable\n  first:  {records:?}\n  second: {second:?}"
        ),
        Err(e) => panic!("re-encoded records were refused: {e}\n  json: {again}"),
    }
    check_views(&records);
}

/// A record as a JSON object of strings (the first value of a repeated key wins, as in `get`).
fn as_strings(record: &Record) -> Value {
    let mut object = Map::new();
    for (k, v) in record.fields() {
        object
            .entry(k.to_owned())
            .or_insert_with(|| Value::String(v.to_owned()));
    }
    if let Some(c) = &record.comment {
        object.insert("comment".to_owned(), Value::String(c.clone()));
    }
    Value::Object(object)
}

fn same_records(a: &[Record], b: &[Record]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.comment == y.comment
                && x.fields().count() == y.fields().count()
                && x.fields().all(|(k, v)| y.get(k) == Some(v))
        })
}
