//! The decoded form of one printed RouterOS item, shared by the text and JSON decoders.
//!
//! A record keeps values as the strings the appliance printed (quotes removed, nothing converted), in
//! printed order, so that the typed views in `model` decide what each field means and the decoders
//! stay ignorant of disks and files.

/// One item of a `print` (a disk, a file, a `key: value` block).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The item number printed before it (its position in the whole list), if any.
    pub index: Option<u32>,
    /// The single-letter flags printed after the index (`B`, `t`, `M`, `X`...), in printed order.
    pub flags: Vec<char>,
    /// The item's comment (the `;;;` line, or the `comment` field of JSON output).
    pub comment: Option<String>,
    fields: Vec<(String, String)>,
}

impl Record {
    /// An empty record.
    pub fn new() -> Record {
        Record::default()
    }

    /// Appends a field (a repeated key keeps both; [`Record::get`] returns the first).
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.fields.push((key.into(), value.into()));
    }

    /// Builder form of [`Record::push`].
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Record {
        self.push(key, value);
        self
    }

    /// The value of `key`, if printed.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All fields in printed order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when no field was printed.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// True when `flag` was printed after the index.
    pub fn has_flag(&self, flag: char) -> bool {
        self.flags.contains(&flag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_wins_and_order_is_kept() {
        let r = Record::new().with("a", "1").with("b", "2").with("a", "3");
        assert_eq!(r.get("a"), Some("1"));
        assert_eq!(r.get("c"), None);
        let keys: Vec<_> = r.fields().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "a"]);
        assert_eq!(r.len(), 3);
        assert!(!r.is_empty());
    }
}
