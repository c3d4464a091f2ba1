//! Test helpers that print records the way RouterOS does, in many layouts, so the decoders can be
//! checked against variations of the real output shapes rather than against the fixtures alone.
//!
//! The printer follows the layout model described in `routeros::text`: items are placed on lines as
//! wide as the terminal, an item that does not fit moves to the next indented line, and an item longer
//! than a whole line is cut at the terminal width (or, in word-wrap mode, split at a space when one
//! fits). Keys are never cut.

#![allow(dead_code)]

use rds_gateway::routeros::Record;

/// A small deterministic PRNG (xorshift64*), so every run sees the same "random" data.
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }

    pub fn uuid(&mut self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(4),
            self.hex(4),
            self.hex(12)
        )
    }
}

/// How item numbers and continuation lines are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// RouterOS 7 (2026): `31 Bt ` with continuation lines indented to the prefix width.
    Positional,
    /// Older: ` 0  ` then continuation lines at a fixed, deeper indentation.
    Classic { indent: usize },
    /// No item numbers (a single-item print): continuation lines at a fixed indentation.
    Unindexed { indent: usize },
}

/// How values are quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// Only where needed.
    Minimal,
    /// Every value that can be quoted.
    All,
    /// A deterministic mix.
    Mixed(u64),
}

/// One way of printing.
#[derive(Debug, Clone)]
pub struct Style {
    pub width: usize,
    pub layout: Layout,
    pub legend: Option<&'static str>,
    /// The text of the line between items (`""` or `" "`).
    pub separator: &'static str,
    pub crlf: bool,
    /// `;;;` comments on their own line above the item, instead of after the item number.
    pub comment_above: bool,
    /// Split over-long items with spaces at a space instead of cutting them.
    pub word_wrap: bool,
    /// Drop spaces left at the end of a line.
    pub trim_trailing: bool,
    /// Spaces between items on a line.
    pub gap: usize,
    pub quoting: Quoting,
}

impl Style {
    pub fn new(width: usize, layout: Layout) -> Style {
        Style {
            width,
            layout,
            legend: None,
            separator: "",
            crlf: false,
            comment_above: false,
            word_wrap: false,
            trim_trailing: false,
            gap: 1,
            quoting: Quoting::Minimal,
        }
    }
}

fn is_key_token(token: &str) -> bool {
    token.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

/// True when `value` reads back the same without quotes.
fn can_stay_unquoted(value: &str) -> bool {
    !value.is_empty()
        && value.is_ascii()
        && !value.contains(['"', '\\', '\t', '\n', '\r'])
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !value.contains("  ")
        && !value.split(' ').skip(1).any(is_key_token)
}

fn quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
        }
    }
    out.push('"');
    out
}

fn item_text(key: &str, value: &str, quoting: Quoting, n: usize) -> String {
    let quote_it = !can_stay_unquoted(value)
        || match quoting {
            Quoting::Minimal => false,
            Quoting::All => true,
            Quoting::Mixed(seed) => {
                (seed.wrapping_add(n as u64).wrapping_mul(0x9E37_79B9)) % 3 == 0
            }
        };
    if quote_it {
        format!("{key}={}", quote(value))
    } else {
        format!("{key}={value}")
    }
}

/// Places items on lines of at most `style.width` characters (see the module documentation).
struct Filler<'s> {
    style: &'s Style,
    lines: Vec<String>,
    current: String,
    indent: String,
    fresh: bool,
}

impl Filler<'_> {
    fn flush(&mut self) {
        let mut line = std::mem::take(&mut self.current);
        if self.style.trim_trailing {
            line.truncate(line.trim_end().len());
        }
        self.lines.push(line);
        self.current = self.indent.clone();
        self.fresh = true;
    }

    /// Places one item; `false` when its key cannot fit on a line of this width.
    fn place(&mut self, item: &str, key_len: usize) -> bool {
        let width = self.style.width;
        let gap = if self.fresh { 0 } else { self.style.gap };
        if self.current.len() + gap + item.len() <= width {
            self.current.push_str(&" ".repeat(gap));
            self.current.push_str(item);
            self.fresh = false;
            return true;
        }
        if !self.fresh {
            self.flush();
        }
        let mut rest = item.to_owned();
        let mut protect = key_len + 1; // never cut inside `key=`
        loop {
            let room = width.saturating_sub(self.current.len());
            if rest.len() <= room {
                self.current.push_str(&rest);
                self.fresh = false;
                return true;
            }
            if room < protect {
                return false;
            }
            let cut = room.min(rest.len());
            let space = rest[..cut].rfind(' ').filter(|&s| s >= protect);
            if let (true, Some(space)) = (self.style.word_wrap, space) {
                self.current.push_str(&rest[..space]);
                rest = rest[space + 1..].to_owned();
                protect = 1;
                self.flush();
                continue;
            }
            self.current.push_str(&rest[..cut]);
            rest = rest[cut..].to_owned();
            protect = 1;
            self.flush();
            if rest.is_empty() {
                return true;
            }
        }
    }
}

/// Prints `records` as `print detail` output in `style`; `None` when a key is too long for a line of
/// this width at this indentation.
pub fn render_detail(records: &[Record], style: &Style) -> Option<String> {
    let mut lines: Vec<String> = Vec::new();
    if let Some(legend) = style.legend {
        lines.push(legend.to_owned());
    }
    let index_width = records
        .iter()
        .filter_map(|r| r.index)
        .map(|i| i.to_string().len())
        .max()
        .unwrap_or(1)
        .max(2);
    let flag_width = records.iter().map(|r| r.flags.len()).max().unwrap_or(0);
    let mut counter = 0usize;
    for (n, record) in records.iter().enumerate() {
        if n > 0 {
            lines.push(style.separator.to_owned());
        }
        let (prefix, indent) = match style.layout {
            Layout::Positional => {
                let flags: String = record.flags.iter().collect();
                let prefix = format!(
                    "{:>index_width$} {:<flag_width$} ",
                    record.index.unwrap_or(0),
                    flags
                );
                let indent = prefix.len();
                (prefix, indent)
            }
            Layout::Classic { indent } => {
                let flags: String = record.flags.iter().collect();
                let prefix = if flag_width > 0 {
                    format!(
                        "{:>index_width$} {:<flag_width$}  ",
                        record.index.unwrap_or(0),
                        flags
                    )
                } else {
                    format!("{:>index_width$}  ", record.index.unwrap_or(0))
                };
                let indent = indent.max(prefix.len());
                (prefix, indent)
            }
            Layout::Unindexed { indent } => (String::new(), indent),
        };
        let indent_text = " ".repeat(indent);
        let mut filler = Filler {
            style,
            lines: Vec::new(),
            current: prefix.clone(),
            indent: indent_text.clone(),
            fresh: true,
        };
        if let Some(comment) = &record.comment {
            if style.comment_above || prefix.is_empty() {
                lines.push(format!(";;; {comment}"));
            } else {
                filler.current.push_str(&format!(";;; {comment}"));
                filler.flush();
            }
        }
        for (key, value) in record.fields() {
            counter += 1;
            let item = item_text(key, value, style.quoting, counter);
            if !filler.place(&item, key.len()) {
                return None;
            }
        }
        if !filler.fresh || !filler.current.trim().is_empty() {
            filler.flush();
        }
        lines.extend(filler.lines);
    }
    let eol = if style.crlf { "\r\n" } else { "\n" };
    let mut out = lines.join(eol);
    out.push_str(eol);
    Some(out)
}

/// The records as `parse_detail` returns them after printing in `style` (unindexed layouts lose the
/// item numbers, and print no flags).
pub fn expected_for(records: &[Record], style: &Style) -> Vec<Record> {
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if matches!(style.layout, Layout::Unindexed { .. }) {
                r.index = None;
                r.flags.clear();
            }
            r
        })
        .collect()
}

/// Every combination of the layouts the variation tests use, at the given widths.
pub fn styles(widths: &[usize]) -> Vec<Style> {
    let mut out = Vec::new();
    let mut n = 0u64;
    for &width in widths {
        for layout in [
            Layout::Positional,
            Layout::Classic { indent: 15 },
            Layout::Classic { indent: 5 },
        ] {
            for variant in 0..8u64 {
                n += 1;
                let mut s = Style::new(width, layout);
                s.legend = match variant % 3 {
                    0 => None,
                    1 => Some("Flags: B - BLOCK-DEVICE; t - NVME-TCP-EXPORT"),
                    _ => Some("Flags: X - disabled, I - invalid; D - dynamic"),
                };
                s.separator = if variant % 2 == 0 { "" } else { " " };
                s.crlf = variant % 4 == 1;
                s.comment_above = variant % 4 >= 2;
                s.word_wrap = variant % 5 == 3;
                s.trim_trailing = variant % 3 == 2;
                s.gap = 1 + (variant % 7 == 6) as usize;
                s.quoting = match variant % 3 {
                    0 => Quoting::Minimal,
                    1 => Quoting::All,
                    _ => Quoting::Mixed(n),
                };
                out.push(s);
            }
        }
    }
    out
}

/// Prints records as `:serialize to=json` would: spaced thousands and integers as numbers (sometimes
/// as `N.000000` floats), `yes`/`no` as booleans, the comment as a `comment` field.
pub fn render_json(records: &[Record], floats: bool) -> String {
    let mut items = Vec::new();
    for (n, r) in records.iter().enumerate() {
        let mut parts = vec![format!("\".id\":\"*{:X}\"", n + 1)];
        for (k, v) in r.fields() {
            let compact = v.replace(' ', "");
            let is_number = !compact.is_empty()
                && compact.bytes().all(|b| b.is_ascii_digit())
                && (v == compact || v.split(' ').skip(1).all(|g| g.len() == 3))
                && compact.len() < 16;
            let json_value = if is_number {
                if floats {
                    format!("{compact}.000000")
                } else {
                    compact
                }
            } else if v == "yes" || v == "no" {
                (v == "yes").to_string()
            } else {
                serde_json::Value::String(v.to_owned()).to_string()
            };
            parts.push(format!(
                "{}:{json_value}",
                serde_json::Value::String(k.to_owned())
            ));
        }
        if let Some(c) = &r.comment {
            parts.push(format!(
                "\"comment\":{}",
                serde_json::Value::String(c.clone())
            ));
        }
        items.push(format!("{{{}}}", parts.join(",")));
    }
    format!("[{}]\n", items.join(","))
}

const POOLS: [&str; 3] = [
    "/storage-pool/metal-csi",
    "/raid10",
    "/nvme1/kubernetes/volumes",
];

/// `n` disks shaped like the appliance's, with increasing but gapped item numbers.
pub fn synthetic_disks(n: usize, seed: u64) -> Vec<Record> {
    let mut rng = Prng::new(seed);
    let mut index = 0u32;
    (0..n)
        .map(|i| {
            index += 1 + rng.below(3) as u32;
            let slot = match i % 4 {
                0 | 1 => format!("pvc-{}", rng.uuid()),
                2 => format!(
                    "snap-{}-at-{}",
                    rng.uuid(),
                    1_700_000_000 + rng.below(99_999_999)
                ),
                _ => format!("vm-storage-{:03}", rng.below(1000)),
            };
            let pool = POOLS[rng.below(POOLS.len() as u64) as usize];
            let gib = 1 + rng.below(2048);
            let bytes = gib * (1 << 30) + rng.below(4) * (1 << 20);
            let exported = i % 4 != 2;
            let mut r = Record::new()
                .with("type", "file")
                .with("slot", slot.clone())
                .with("slot-default", "")
                .with("parent", "")
                .with("fs", "-")
                .with("model", format!("{pool}/{slot}.img"))
                .with("size", spaced(bytes))
                .with("mount-filesystem", "no")
                .with("mount-read-only", "no")
                .with("compress", "no")
                .with("sector-size", "512")
                .with("raid-master", "none")
                .with("nvme-tcp-export", if exported { "yes" } else { "no" });
            if exported {
                r = r
                    .with("nvme-tcp-server-port", "4420")
                    .with(
                        "nvme-tcp-server-nqn",
                        format!("nqn.2000-02.com.mikrotik:{slot}"),
                    )
                    .with("nvme-tcp-server-allow-host-name", "");
            }
            r = r
                .with("iscsi-export", "no")
                .with("swap", "no")
                .with("file-path", format!("{pool}/{slot}.img"))
                .with(
                    "file-size",
                    format!("{:.1}GiB", bytes as f64 / (1u64 << 30) as f64),
                )
                .with("file-offset", "0");
            r.index = Some(index);
            r.flags = if exported { vec!['B', 't'] } else { vec!['B'] };
            r.comment = match i % 5 {
                0 => Some(format!(
                    "rds-csi:v1 kind=snapshot source=pvc-{} created={}",
                    rng.uuid(),
                    1_739_000_000 + rng.below(1_000_000)
                )),
                1 => Some("made by hand = keep".to_owned()),
                _ => None,
            };
            r
        })
        .collect()
}

/// `n` `/file` entries with both date forms and `type=.img file` values.
pub fn synthetic_files(n: usize, seed: u64) -> Vec<Record> {
    let mut rng = Prng::new(seed);
    let months = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    (0..n)
        .map(|i| {
            let month = 1 + rng.below(12);
            let day = 1 + rng.below(28);
            let (h, m, s) = (rng.below(24), rng.below(60), rng.below(60));
            let date = if i % 2 == 0 {
                format!("2025-{month:02}-{day:02} {h:02}:{m:02}:{s:02}")
            } else {
                format!(
                    "{}/{day:02}/2025 {h:02}:{m:02}:{s:02}",
                    months[(month - 1) as usize]
                )
            };
            let date_key = if i % 3 == 0 {
                "creation-time"
            } else {
                "last-modified"
            };
            let name = format!("storage-pool/metal-csi/pvc-{}.img", rng.uuid());
            let mut r = Record::new().with("name", name).with("type", ".img file");
            r = if i % 2 == 0 {
                r.with("size", format!("{}.0GiB", 1 + rng.below(100)))
            } else {
                r.with("size", spaced((1 + rng.below(100)) << 30))
            };
            r = r.with(date_key, date);
            r.index = Some(i as u32);
            r
        })
        .collect()
}

/// `1234567` → `1 234 567`.
pub fn spaced(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}
