//! Script values (what `[brackets]` return) and the two ways they leave the console: `:put`
//! text and `:serialize to=json`. JSON keeps the record's property order with `.id` first,
//! raw integers (or floats like `443.000000` when asked), and booleans for yes/no.

use super::ast::Menu;
use super::record::{Prop, Record};

/// A reference to an item, as `find` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKey {
    /// A disk, by internal id.
    Disk(u32),
    /// A file, by name (relative, no leading `/`).
    File(String),
}

/// A script value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Nothing,
    Str(String),
    Num(u64),
    /// Items found by `find`, with their printed ids.
    Items(Menu, Vec<(ItemKey, String)>),
    /// The list returned by `print as-value`.
    Records(Vec<Record>),
}

impl Value {
    /// The text `:put` prints.
    pub fn put_text(&self) -> String {
        match self {
            Value::Nothing => String::new(),
            Value::Str(s) => s.clone(),
            Value::Num(n) => n.to_string(),
            Value::Items(_, items) => items
                .iter()
                .map(|(_, id)| id.as_str())
                .collect::<Vec<_>>()
                .join(";"),
            Value::Records(records) => records
                .iter()
                .map(|r| {
                    let mut parts = vec![format!(".id={}", r.id)];
                    parts.extend(r.props.iter().map(|(k, v)| format!("{k}={}", v.text())));
                    parts.join(";")
                })
                .collect::<Vec<_>>()
                .join(";"),
        }
    }

    /// The JSON `:serialize to=json` produces.
    pub fn to_json(&self, floats: bool) -> String {
        match self {
            Value::Nothing => "\"\"".to_string(),
            Value::Str(s) => json_string(s),
            Value::Num(n) => json_number(*n, floats),
            Value::Items(_, items) => {
                let ids: Vec<String> = items.iter().map(|(_, id)| json_string(id)).collect();
                format!("[{}]", ids.join(","))
            }
            Value::Records(records) => {
                let objects: Vec<String> = records.iter().map(|r| record_json(r, floats)).collect();
                format!("[{}]", objects.join(","))
            }
        }
    }
}

fn record_json(r: &Record, floats: bool) -> String {
    let mut fields = vec![format!("\".id\":{}", json_string(&r.id))];
    if let Some(c) = &r.comment {
        fields.push(format!("\"comment\":{}", json_string(c)));
    }
    for (k, v) in &r.props {
        let value = match v {
            Prop::Str(s) | Prop::Raw(s) => json_string(s),
            Prop::Int(n) | Prop::Big(n) | Prop::Human(n) | Prop::Percent(n) => {
                json_number(*n, floats)
            }
            Prop::Bool(b) => b.to_string(),
        };
        fields.push(format!("{}:{value}", json_string(k)));
    }
    format!("{{{}}}", fields.join(","))
}

fn json_number(n: u64, floats: bool) -> String {
    if floats {
        format!("{n}.000000")
    } else {
        n.to_string()
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record() -> Record {
        Record {
            id: "*1F".into(),
            index: 31,
            flags: vec![],
            comment: Some("say \"hi\"".into()),
            props: vec![
                ("type", Prop::Raw("file".into())),
                ("slot", Prop::Str("vm-1".into())),
                ("size", Prop::Big(1_099_511_627_776)),
                ("nvme-tcp-export", Prop::Bool(true)),
                ("nvme-tcp-server-port", Prop::Int(443)),
            ],
        }
    }

    #[test]
    fn json_of_records_is_valid_and_typed() {
        let text = Value::Records(vec![record()]).to_json(false);
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let obj = &parsed[0];
        assert_eq!(obj[".id"], "*1F");
        assert_eq!(obj["comment"], "say \"hi\"");
        assert_eq!(obj["size"], 1_099_511_627_776u64);
        assert_eq!(obj["nvme-tcp-export"], true);
        assert_eq!(obj["slot"], "vm-1");
        assert!(text.starts_with("[{\".id\":\"*1F\""), "{text}");
    }

    #[test]
    fn json_floats() {
        let text = Value::Records(vec![record()]).to_json(true);
        assert!(
            text.contains("\"nvme-tcp-server-port\":443.000000"),
            "{text}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed[0]["size"].as_f64(), Some(1_099_511_627_776.0));
        assert_eq!(Value::Num(7).to_json(true), "7.000000");
    }

    #[test]
    fn put_text() {
        assert_eq!(Value::Num(3).put_text(), "3");
        assert_eq!(
            Value::Items(
                Menu::Disk,
                vec![
                    (ItemKey::Disk(1), "*1".into()),
                    (ItemKey::Disk(2), "*2".into())
                ]
            )
            .put_text(),
            "*1;*2"
        );
        assert_eq!(Value::Records(vec![]).to_json(false), "[]");
    }
}
