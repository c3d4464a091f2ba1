//! Decoder of `:put [:serialize to=json [<print> as-value]]` output (RouterOS 7.13 and later) into the
//! same [`Record`]s the text decoder produces.
//!
//! The machine-readable form is preferred wherever the appliance supports it, but it is decoded
//! defensively: the output may be an array of objects or a single object; integers may be printed as
//! floats (`443.000000` becomes `443`); booleans, `.id` fields and strings pass through as text; a
//! `comment` field becomes the record's comment, as the `;;;` line does in text output. Integral floats
//! beyond 2^53 are refused because they cannot be exact.

use serde_json::Value;

use super::error::{RosError, Subject};
use super::names::escape_limited;
use super::record::Record;

const WHAT: &str = "JSON print output";

/// Largest integer a float carries exactly.
const EXACT_FLOAT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Decodes serialised print output. Empty output gives no records.
pub fn parse_json(text: &str) -> Result<Vec<Record>, RosError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_str(trimmed).map_err(|e| {
        RosError::unparseable(
            WHAT,
            Subject::None,
            format!("{e} in {}", escape_limited(trimmed, 120)),
        )
    })?;
    match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(map) => record_from(map),
                other => Err(RosError::unparseable(
                    WHAT,
                    Subject::None,
                    format!("item {i} is {}, not an object", kind_of(&other)),
                )),
            })
            .collect(),
        Value::Object(map) => Ok(vec![record_from(map)?]),
        other => Err(RosError::unparseable(
            WHAT,
            Subject::None,
            format!("expected an array or an object, found {}", kind_of(&other)),
        )),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn record_from(map: serde_json::Map<String, Value>) -> Result<Record, RosError> {
    let mut record = Record::new();
    for (key, value) in map {
        let text = value_text(&key, value)?;
        if key == "comment" {
            if !text.is_empty() {
                record.comment = Some(text);
            }
        } else {
            record.push(key, text);
        }
    }
    Ok(record)
}

fn value_text(key: &str, value: Value) -> Result<String, RosError> {
    Ok(match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s,
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u.to_string()
            } else if let Some(i) = n.as_i64() {
                i.to_string()
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if !f.is_finite() {
                    return Err(bad_number(key, &n));
                }
                if f.fract() == 0.0 {
                    if f.abs() >= EXACT_FLOAT_LIMIT {
                        return Err(bad_number(key, &n));
                    }
                    format!("{f:.0}")
                } else {
                    n.to_string()
                }
            }
        }
        nested @ (Value::Array(_) | Value::Object(_)) => nested.to_string(),
    })
}

fn bad_number(key: &str, n: &serde_json::Number) -> RosError {
    RosError::unparseable(
        WHAT,
        Subject::None,
        format!(
            "field {} holds {n}, which is not an exact integer",
            escape_limited(key, 80)
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn array_of_objects_with_every_value_kind() {
        let text = r#"[{".id":"*1F","slot":"vm-storage-001","size":1099511627776,"nvme-tcp-export":true,"nvme-tcp-server-port":4420.000000,"use":8.5,"parent":null,"comment":"rds-csi:v1 kind=volume"}]"#;
        let records = parse_json(&format!("\n  {text}\n\n")).unwrap();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.get(".id"), Some("*1F"));
        assert_eq!(r.get("slot"), Some("vm-storage-001"));
        assert_eq!(r.get("size"), Some("1099511627776"));
        assert_eq!(r.get("nvme-tcp-export"), Some("true"));
        assert_eq!(r.get("nvme-tcp-server-port"), Some("4420"));
        assert_eq!(r.get("use"), Some("8.5"));
        assert_eq!(r.get("parent"), Some(""));
        assert_eq!(r.get("comment"), None);
        assert_eq!(r.comment.as_deref(), Some("rds-csi:v1 kind=volume"));
    }

    #[test]
    fn single_object_and_empty_outputs() {
        let r = parse_json(r#"{"size":443.000000}"#).unwrap();
        assert_eq!(r[0].get("size"), Some("443"));
        assert!(parse_json("").unwrap().is_empty());
        assert!(parse_json(" \r\n").unwrap().is_empty());
        assert!(parse_json("[]").unwrap().is_empty());
    }

    #[test]
    fn refuses_what_it_cannot_represent() {
        for bad in [
            "[1,2]",
            "\"text\"",
            "42",
            "[{\"a\":1}",
            "failure: no such item",
            "{\"size\":1e300}",
            "{\"size\":18446744073709551616.000000}",
        ] {
            let err = parse_json(bad).unwrap_err();
            assert!(
                matches!(err, RosError::Unparseable { .. }),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn large_exact_floats_pass() {
        let r = parse_json(r#"{"size":16003143565312.000000,"neg":-5}"#).unwrap();
        assert_eq!(r[0].get("size"), Some("16003143565312"));
        assert_eq!(r[0].get("neg"), Some("-5"));
    }
}
