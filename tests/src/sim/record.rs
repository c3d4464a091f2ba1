//! One printable item (a disk or a file) as an ordered list of typed properties, with its
//! position in the whole list, its flags and its comment. The detail and terse printers, the
//! JSON serializer and `where` matching all read this one form, so they cannot disagree.

/// A property value and how RouterOS shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prop {
    /// A string, printed quoted (`slot="pvc-1"`).
    Str(String),
    /// A value printed as it is (`type=file`, `file-path=/pool/a.img`, `fs=-`).
    Raw(String),
    /// A small number, printed plainly (`sector-size=512`).
    Int(u64),
    /// A byte or inode count, printed with spaced thousands (`size=53 687 091 200`).
    Big(u64),
    /// A byte count printed rounded (`file-size=50.0GiB`); its raw value is exact.
    Human(u64),
    /// `yes` / `no`.
    Bool(bool),
    /// A percentage (`use=27%`).
    Percent(u64),
}

impl Prop {
    /// The value as plain text, for `where` comparisons.
    pub fn text(&self) -> String {
        match self {
            Prop::Str(s) | Prop::Raw(s) => s.clone(),
            Prop::Int(n) | Prop::Big(n) | Prop::Human(n) | Prop::Percent(n) => n.to_string(),
            Prop::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        }
    }

    /// The number behind a numeric value.
    pub fn number(&self) -> Option<u64> {
        match self {
            Prop::Int(n) | Prop::Big(n) | Prop::Human(n) | Prop::Percent(n) => Some(*n),
            _ => None,
        }
    }
}

/// An item flag: its legend letter and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flag {
    BlockDevice,
    Mounted,
    RaidMember,
    NvmeTcpExport,
}

impl Flag {
    /// Every flag, in legend (and column) order.
    pub const ALL: [Flag; 4] = [
        Flag::BlockDevice,
        Flag::Mounted,
        Flag::RaidMember,
        Flag::NvmeTcpExport,
    ];

    pub fn letter(self) -> char {
        match self {
            Flag::BlockDevice => 'B',
            Flag::Mounted => 'M',
            Flag::RaidMember => 'r',
            Flag::NvmeTcpExport => 't',
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Flag::BlockDevice => "BLOCK-DEVICE",
            Flag::Mounted => "MOUNTED",
            Flag::RaidMember => "RAID-MEMBER",
            Flag::NvmeTcpExport => "NVME-TCP-EXPORT",
        }
    }
}

/// A printable item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The internal id (`*1F`).
    pub id: String,
    /// The position in the whole, unfiltered list.
    pub index: usize,
    pub flags: Vec<Flag>,
    pub comment: Option<String>,
    pub props: Vec<(&'static str, Prop)>,
}

impl Record {
    /// The value of property `key`; `.id` and `comment` are properties too.
    pub fn get(&self, key: &str) -> Option<Prop> {
        match key {
            ".id" => Some(Prop::Raw(self.id.clone())),
            "comment" => Some(Prop::Str(self.comment.clone().unwrap_or_default())),
            _ => self
                .props
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone()),
        }
    }
}

/// Formats an internal id number as RouterOS does (`*1F`).
pub fn id_text(id: u32) -> String {
    format!("*{id:X}")
}

/// Reads an internal id (`*1F`).
pub fn parse_id(text: &str) -> Option<u32> {
    let hex = text.strip_prefix('*')?;
    if hex.is_empty() || hex.len() > 8 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        assert_eq!(id_text(31), "*1F");
        assert_eq!(parse_id("*1F"), Some(31));
        assert_eq!(parse_id("*1f"), Some(31));
        assert_eq!(parse_id("1F"), None);
        assert_eq!(parse_id("*"), None);
        assert_eq!(parse_id("*XYZ"), None);
        assert_eq!(parse_id("*123456789"), None);
    }

    #[test]
    fn values_as_text() {
        assert_eq!(Prop::Bool(true).text(), "yes");
        assert_eq!(Prop::Big(1024).text(), "1024");
        assert_eq!(Prop::Human(1 << 30).text(), "1073741824");
        assert_eq!(Prop::Str("a b".into()).text(), "a b");
        let r = Record {
            id: "*2".into(),
            index: 0,
            flags: vec![],
            comment: None,
            props: vec![("slot", Prop::Str("x".into()))],
        };
        assert_eq!(r.get("slot"), Some(Prop::Str("x".into())));
        assert_eq!(r.get(".id"), Some(Prop::Raw("*2".into())));
        assert_eq!(r.get("comment"), Some(Prop::Str(String::new())));
        assert_eq!(r.get("nope"), None);
    }
}
