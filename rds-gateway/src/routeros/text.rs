//! Decoder of RouterOS's human-readable `print detail` output (and of the `key: value` form of
//! `monitor-traffic` and `system resource print`) into [`Record`]s.
//!
//! This is the fallback for appliances older than 7.13, which cannot serialise to JSON. The layout is
//! made for people, so the decoder tolerates every shape seen on real appliances: an optional `Flags:`
//! legend (old `X - disabled, I - invalid` and new `B - BLOCK-DEVICE; t - NVME-TCP-EXPORT` styles),
//! indexed and unindexed items, positional flag columns after the index (`31 Bt `, `27 B r `), `;;;`
//! comments on or above the item, continuation lines at any indentation, separators that are empty or
//! hold spaces, values containing spaces (`type=.img file`, `size=7 681 574 174 720`,
//! `last-modified=2025-11-11 16:47:07`), `\r\n` line ends and colour escapes.
//!
//! # Telling a wrapped value from a new key
//!
//! RouterOS lays items (`key=value`) out on lines as wide as the terminal, moving an item that does not
//! fit to the next, indented line. An item longer than a whole line is cut at the terminal width, in
//! the middle of its value. At every line break the decoder therefore decides between a *soft* break
//! (the lines are joined with one space) and a *hard* cut (the lines are joined with nothing):
//!
//! 1. a break inside an open quoted value continues that value;
//! 2. otherwise, a continuation line starting with `key=` (`[a-z0-9-]+=`) starts a new item: soft;
//! 3. otherwise the line continues the last value. It is a hard cut when the line before it is *full*
//!    (as wide as the widest content line of the whole output, which is the terminal width whenever a
//!    cut happened), soft otherwise. Two exceptions keep values with spaces whole when the line before
//!    happens to be the widest: complete thousands groups followed by a 3-digit group
//!    (`7 681` / `574 174 720`), and a date followed by a time. A cut inside those shapes leaves a
//!    partial group or date, so the exceptions never undo a real cut.
//!
//! Continuation lines are measured against the smallest indentation of the item, so a cut just
//! before a space (which then starts the next line) keeps its space. Keys are assumed never to be cut
//! (RouterOS moves the whole item, and keys are short). Within a line, a token that is not `key=`
//! continues the current value.

use super::error::{RosError, Subject};
use super::record::Record;

/// The `Flags:` legend: flag letter → name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Legend {
    entries: Vec<(char, String)>,
}

impl Legend {
    /// The name of `flag` (`t` → `NVME-TCP-EXPORT`), if the legend listed it.
    pub fn name_of(&self, flag: char) -> Option<&str> {
        self.entries
            .iter()
            .find(|(c, _)| *c == flag)
            .map(|(_, n)| n.as_str())
    }

    /// The letter used for the flag named `name` (case-insensitive), if listed.
    pub fn flag_named(&self, name: &str) -> Option<char> {
        self.entries
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(c, _)| *c)
    }

    /// All entries in printed order.
    pub fn entries(&self) -> &[(char, String)] {
        &self.entries
    }

    /// True when no legend was printed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A decoded `print detail` output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextOutput {
    /// The `Flags:` legend, empty when none was printed.
    pub legend: Legend,
    /// The items, in printed order.
    pub records: Vec<Record>,
}

const WHAT: &str = "print detail output";
const MAX_FLAGS: usize = 12;

fn fail(line_no: usize, detail: impl std::fmt::Display) -> RosError {
    RosError::unparseable(WHAT, Subject::None, format!("line {line_no}: {detail}"))
}

/// Removes ANSI escape sequences (colours) and splits into lines without their `\r`.
fn clean_lines(text: &str) -> Vec<String> {
    let mut cleaned = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            cleaned.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates, then one final byte in '@'..='~'.
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) {
                    break;
                }
            }
        }
    }
    cleaned
        .split('\n')
        .map(|l| l.trim_end_matches('\r').to_owned())
        .collect()
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn leading_ws(line: &str) -> usize {
    line.bytes().take_while(|&b| is_ws(b)).count()
}

fn width(line: &str) -> usize {
    line.chars().count()
}

/// If a property key followed by `=` starts at byte `at`, the position of the `=`.
fn key_at(s: &str, at: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = at;
    while i < bytes.len()
        && (bytes[i].is_ascii_lowercase() || bytes[i].is_ascii_digit() || bytes[i] == b'-')
    {
        i += 1;
    }
    (i > at && bytes.get(i) == Some(&b'=')).then_some(i)
}

fn starts_with_key(s: &str) -> bool {
    key_at(s, 0).is_some()
}

/// One content line of an item, as printed.
struct Piece<'a> {
    line: &'a str,
    lead: usize,
    width: usize,
}

/// The lines of one item before they are joined.
struct Block<'a> {
    index: Option<u32>,
    flags: Vec<char>,
    comment: Option<String>,
    /// Column where the first line's content starts; an index line less indented than this starts a
    /// new item.
    content_col: usize,
    /// Content of the first line after index and flags (may be empty).
    first: Option<Piece<'a>>,
    first_content_at: usize,
    rest: Vec<Piece<'a>>,
    line_no: usize,
}

impl Block<'_> {
    fn has_content(&self) -> bool {
        self.first.is_some() || !self.rest.is_empty()
    }
}

/// Decodes `print detail` output. Empty output (or a legend alone) gives no records.
pub fn parse_detail(text: &str) -> Result<TextOutput, RosError> {
    let lines = clean_lines(text);
    let mut legend = Legend::default();
    let mut blocks: Vec<Block<'_>> = Vec::new();
    let mut current: Option<Block<'_>> = None;
    let mut pending_comment: Option<String> = None;
    let mut in_legend = false;

    for (n, line) in lines.iter().enumerate() {
        let line_no = n + 1;
        let line = line.as_str();
        let trimmed = line.trim_matches([' ', '\t']);
        if trimmed.is_empty() {
            blocks.extend(current.take());
            in_legend = false;
            continue;
        }
        if let Some(items) = trimmed.strip_prefix("Flags:") {
            blocks.extend(current.take());
            read_legend(items, &mut legend.entries);
            in_legend = true;
            continue;
        }
        if in_legend && current.is_none() && !trimmed.contains('=') && is_legend_text(trimmed) {
            read_legend(trimmed, &mut legend.entries);
            continue;
        }
        in_legend = false;
        if trimmed.starts_with("Columns:") {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix(";;;") {
            let comment = comment.trim().to_owned();
            match current.as_mut() {
                Some(block) if !block.has_content() && block.comment.is_none() => {
                    block.comment = Some(comment);
                }
                _ => {
                    blocks.extend(current.take());
                    pending_comment = Some(comment);
                }
            }
            continue;
        }
        let lead = leading_ws(line);
        let starts_with_index = line.as_bytes().get(lead).is_some_and(u8::is_ascii_digit) && {
            let digits = line[lead..].bytes().take_while(u8::is_ascii_digit).count();
            line.as_bytes().get(lead + digits).is_none_or(|&b| is_ws(b))
        };
        let new_item = match &current {
            None => true,
            Some(block) => starts_with_index && lead < block.content_col,
        };
        if !new_item {
            if let Some(block) = current.as_mut() {
                block.rest.push(Piece {
                    line,
                    lead,
                    width: width(line),
                });
            }
            continue;
        }
        blocks.extend(current.take());
        let block = if starts_with_index {
            index_block(line, lead, line_no, pending_comment.take())?
        } else {
            Block {
                index: None,
                flags: Vec::new(),
                comment: pending_comment.take(),
                content_col: lead,
                first: Some(Piece {
                    line,
                    lead,
                    width: width(line),
                }),
                first_content_at: lead,
                rest: Vec::new(),
                line_no,
            }
        };
        current = Some(block);
    }
    blocks.extend(current);

    let full_width = blocks
        .iter()
        .flat_map(|b| b.first.iter().chain(b.rest.iter()))
        .map(|p| p.width)
        .max()
        .unwrap_or(0);

    let mut records = Vec::with_capacity(blocks.len());
    for block in blocks {
        let logical = join_block(&block, full_width);
        let mut record = Record::new();
        record.index = block.index;
        record.flags = block.flags;
        record.comment = block.comment;
        for (key, value) in tokenize(&logical, block.line_no)? {
            record.push(key, value);
        }
        records.push(record);
    }
    Ok(TextOutput { legend, records })
}

/// Reads `X - disabled, I - invalid` / `B - BLOCK-DEVICE; t - NVME-TCP-EXPORT` items.
fn read_legend(items: &str, into: &mut Vec<(char, String)>) {
    for item in items.split([',', ';']) {
        if let Some((flag, name)) = legend_item(item) {
            into.push((flag, name.to_owned()));
        }
    }
}

fn legend_item(item: &str) -> Option<(char, &str)> {
    let item = item.trim();
    let mut chars = item.chars();
    let flag = chars.next()?;
    let name = chars.as_str().strip_prefix(" - ")?.trim();
    (!flag.is_whitespace() && !name.is_empty()).then_some((flag, name))
}

fn is_legend_text(text: &str) -> bool {
    text.split([',', ';'])
        .filter(|i| !i.trim().is_empty())
        .all(|i| legend_item(i).is_some())
}

/// Reads `<index> [flags] [;;; comment | content]`.
fn index_block<'a>(
    line: &'a str,
    lead: usize,
    line_no: usize,
    comment: Option<String>,
) -> Result<Block<'a>, RosError> {
    let bytes = line.as_bytes();
    let digits_end = lead + line[lead..].bytes().take_while(u8::is_ascii_digit).count();
    let index: u32 = line[lead..digits_end]
        .parse()
        .map_err(|_| fail(line_no, "item number out of range"))?;
    let mut block = Block {
        index: Some(index),
        flags: Vec::new(),
        comment,
        content_col: digits_end + 1,
        first: None,
        first_content_at: 0,
        rest: Vec::new(),
        line_no,
    };
    let mut i = digits_end;
    loop {
        while i < bytes.len() && is_ws(bytes[i]) {
            i += 1;
        }
        if i >= bytes.len() {
            block.content_col = block.content_col.max(i);
            return Ok(block);
        }
        if line[i..].starts_with(";;;") {
            block.content_col = i;
            block.comment = Some(line[i + 3..].trim().to_owned());
            return Ok(block);
        }
        if key_at(line, i).is_some() {
            block.content_col = i;
            block.first = Some(Piece {
                line,
                lead,
                width: width(line),
            });
            block.first_content_at = i;
            return Ok(block);
        }
        let token_end = i + line[i..].bytes().take_while(|&b| !is_ws(b)).count();
        let token = &line[i..token_end];
        if !token.bytes().all(|b| b.is_ascii_alphabetic() || b == b'*')
            || block.flags.len() + token.len() > MAX_FLAGS
        {
            return Err(fail(
                line_no,
                format!(
                    "unexpected text after the item number: {}",
                    super::names::escape_for_display(token)
                ),
            ));
        }
        block.flags.extend(token.chars());
        i = token_end;
    }
}

/// Where the incremental scan of a joined item stands.
#[derive(Default)]
struct ScanState {
    pos: usize,
    in_quote: bool,
    escape: bool,
    at_token_start: bool,
    value_start: Option<usize>,
}

impl ScanState {
    /// Advances over the part of `s` not scanned yet.
    fn advance(&mut self, s: &str) {
        let bytes = s.as_bytes();
        let mut i = self.pos;
        while i < bytes.len() {
            let b = bytes[i];
            if self.in_quote {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_quote = false;
                }
                i += 1;
                continue;
            }
            if is_ws(b) {
                self.at_token_start = true;
                i += 1;
                continue;
            }
            if self.at_token_start {
                self.at_token_start = false;
                if let Some(eq) = key_at(s, i) {
                    i = eq + 1;
                    self.value_start = Some(i);
                    if bytes.get(i) == Some(&b'"') {
                        self.in_quote = true;
                        i += 1;
                    }
                    continue;
                }
            }
            i += 1;
        }
        self.pos = i;
    }
}

/// Joins an item's lines into one logical line, deciding at each break between a soft break and a
/// hard cut (see the module documentation).
fn join_block(block: &Block<'_>, full_width: usize) -> String {
    let mut logical = String::new();
    let mut scan = ScanState {
        at_token_start: true,
        ..ScanState::default()
    };
    let mut prev_full = false;
    if let Some(first) = &block.first {
        logical.push_str(&first.line[block.first_content_at..]);
        prev_full = first.width >= full_width;
    }
    let indent = block.rest.iter().map(|p| p.lead).min().unwrap_or(0);
    for piece in &block.rest {
        let from_indent = &piece.line[indent.min(piece.line.len())..];
        let stripped = &piece.line[piece.lead..];
        if logical.is_empty() {
            logical.clear();
            logical.push_str(stripped);
            scan = ScanState {
                at_token_start: true,
                ..ScanState::default()
            };
            prev_full = piece.width >= full_width;
            continue;
        }
        scan.advance(&logical);
        let hard = if scan.in_quote {
            prev_full
        } else if starts_with_key(stripped) {
            false
        } else {
            let value = scan
                .value_start
                .map_or("", |at| logical.get(at..).unwrap_or(""));
            prev_full && !keeps_space(value.trim_end_matches([' ', '\t']), stripped)
        };
        if hard {
            logical.push_str(from_indent);
        } else {
            let kept = logical.trim_end_matches([' ', '\t']).len();
            logical.truncate(kept);
            scan.pos = scan.pos.min(kept);
            logical.push(' ');
            logical.push_str(stripped);
        }
        prev_full = piece.width >= full_width;
    }
    logical
}

/// The exceptions to "a full line means a hard cut": shapes whose split at a space is certain.
fn keeps_space(value: &str, next: &str) -> bool {
    let next_token = next.split([' ', '\t']).next().unwrap_or("");
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // Complete thousands groups, then a whole group.
    let mut groups = value.split(' ');
    let first_ok = groups.next().is_some_and(|g| all_digits(g) && g.len() <= 3);
    if first_ok
        && groups.all(|g| g.len() == 3 && all_digits(g))
        && next_token.len() == 3
        && all_digits(next_token)
    {
        return true;
    }
    // A whole date, then a whole time.
    let time = next_token.as_bytes();
    let is_time = time.len() == 8
        && time[2] == b':'
        && time[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| time[i].is_ascii_digit());
    is_time && value.rsplit(' ').next().is_some_and(is_date)
}

/// `2025-11-12` or `jan/02/2025`.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let d = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10 && b.len() != 11 {
        return false;
    }
    (b.len() == 10 && d(0..4) && b[4] == b'-' && d(5..7) && b[7] == b'-' && d(8..10))
        || (b.len() == 11
            && b[..3].iter().all(u8::is_ascii_lowercase)
            && b[3] == b'/'
            && d(4..6)
            && b[6] == b'/'
            && d(7..11))
}

/// Splits a joined item into `key=value` pairs.
fn tokenize(s: &str, line_no: usize) -> Result<Vec<(String, String)>, RosError> {
    let bytes = s.as_bytes();
    let mut fields = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && is_ws(bytes[i]) {
            i += 1;
        }
        if i >= bytes.len() {
            return Ok(fields);
        }
        let Some(eq) = key_at(s, i) else {
            let end = i + s[i..].bytes().take_while(|&b| !is_ws(b)).count();
            return Err(fail(
                line_no,
                format!(
                    "expected key=value, found {}",
                    super::names::escape_for_display(&s[i..end])
                ),
            ));
        };
        let key = s[i..eq].to_owned();
        i = eq + 1;
        let value;
        if bytes.get(i) == Some(&b'"') {
            let (decoded, after) = read_quoted(s, i + 1).ok_or_else(|| {
                fail(
                    line_no,
                    format!(
                        "unterminated quoted value for {}",
                        super::names::escape_for_display(&key)
                    ),
                )
            })?;
            // Anything glued to the closing quote belongs to the same value.
            let tail_end = after + s[after..].bytes().take_while(|&b| !is_ws(b)).count();
            let mut v = decoded;
            v.push_str(&s[after..tail_end]);
            value = v;
            i = tail_end;
        } else {
            let start = i;
            let mut end = i;
            loop {
                end += s[end..].bytes().take_while(|&b| !is_ws(b)).count();
                let next = end + s[end..].bytes().take_while(|&b| is_ws(b)).count();
                if next >= bytes.len() || key_at(s, next).is_some() {
                    break;
                }
                end = next;
            }
            value = s[start..end].to_owned();
            i = end;
        }
        fields.push((key, value));
    }
}

/// Reads a quoted value starting after its opening quote; returns the decoded text and the position
/// after the closing quote. RouterOS escapes `"` and `\` with a backslash and prints other bytes as
/// `\XX` hex pairs.
fn read_quoted(s: &str, from: usize) -> Option<(String, usize)> {
    let bytes = s.as_bytes();
    let mut out: Vec<u8> = Vec::new();
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some((String::from_utf8_lossy(&out).into_owned(), i + 1)),
            b'\\' => {
                let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
                if let (Some(hi), Some(lo)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                match bytes.get(i + 1) {
                    Some(b'n') => out.push(b'\n'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'_') => out.push(b' '),
                    Some(&other) => out.push(other),
                    None => return None,
                }
                i += 2;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    None
}

/// Decodes the `key: value` form printed by `/disk monitor-traffic ... once` and
/// `/system resource print`. Keys may be right-aligned; a line without `key:` continues the value
/// before it.
pub fn parse_colon(text: &str) -> Result<Record, RosError> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for (n, line) in clean_lines(text).iter().enumerate() {
        let trimmed = line.trim_matches([' ', '\t']);
        if trimmed.is_empty() {
            continue;
        }
        let pair = trimmed.split_once(':').filter(|(k, v)| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && (v.is_empty() || v.starts_with([' ', '\t']))
        });
        match (pair, fields.last_mut()) {
            (Some((k, v)), _) => fields.push((k.to_owned(), v.trim().to_owned())),
            (None, Some((_, value))) => {
                value.push(' ');
                value.push_str(trimmed);
            }
            (None, None) => {
                return Err(RosError::unparseable(
                    "key: value output",
                    Subject::None,
                    format!(
                        "line {}: expected key: value, found {}",
                        n + 1,
                        super::names::escape_for_display(trimmed)
                    ),
                ));
            }
        }
    }
    let mut record = Record::new();
    for (k, v) in fields {
        record.push(k, v);
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn one(text: &str) -> Record {
        let out = parse_detail(text).unwrap();
        assert_eq!(out.records.len(), 1, "{:#?}", out.records);
        out.records.into_iter().next().unwrap()
    }

    #[test]
    fn quoted_values_keep_spaces_equals_and_escapes() {
        let r = one("comment=\"a b=c \\\"q\\\" \\\\ \\D0\\B0\" x=1");
        assert_eq!(r.get("comment"), Some("a b=c \"q\" \\ \u{430}"));
        assert_eq!(r.get("x"), Some("1"));
    }

    #[test]
    fn unquoted_values_with_spaces() {
        let r = one(
            "name=a type=.img file size=10.0GiB last-modified=2025-11-11 14:32:41 size2=7 681 574",
        );
        assert_eq!(r.get("type"), Some(".img file"));
        assert_eq!(r.get("size"), Some("10.0GiB"));
        assert_eq!(r.get("last-modified"), Some("2025-11-11 14:32:41"));
        assert_eq!(r.get("size2"), Some("7 681 574"));
    }

    #[test]
    fn hard_cut_inside_a_value_is_rejoined() {
        // The first line is cut at the terminal width (32 columns): it is the widest line.
        let text = "type=file file-path=/pool/pvc-0f\n     923194-922a-5dd8-b376.img\n     size=1";
        assert_eq!(text.lines().next().unwrap().len(), 32);
        let r = one(text);
        assert_eq!(
            r.get("file-path"),
            Some("/pool/pvc-0f923194-922a-5dd8-b376.img")
        );
        assert_eq!(r.get("size"), Some("1"));
    }

    #[test]
    fn soft_break_inside_a_spaced_value_keeps_the_space() {
        let text = "name=storage-pool/metal-csi/test.img type=.img\n                    file size=10.0GiB last-modified=2025-11-11 14:32:41";
        let r = one(text);
        assert_eq!(r.get("type"), Some(".img file"));
        assert_eq!(r.get("size"), Some("10.0GiB"));
    }

    #[test]
    fn thousands_split_on_the_widest_line_keeps_the_space() {
        let text = "x=1 size=7 681\n  574 174 720";
        let r = one(text);
        assert_eq!(r.get("size"), Some("7 681 574 174 720"));
        let cut = "x=1 size=7 681 57\n  4 174 720";
        assert_eq!(one(cut).get("size"), Some("7 681 574 174 720"));
    }

    #[test]
    fn quoted_value_cut_across_lines() {
        let text = "a=1 nqn=\"nqn.2000-02.com.mi\n     krotik:pvc-1\" b=2\n     c=3";
        let r = one(text);
        assert_eq!(r.get("nqn"), Some("nqn.2000-02.com.mikrotik:pvc-1"));
        assert_eq!(r.get("b"), Some("2"));
        assert_eq!(r.get("c"), Some("3"));
    }

    #[test]
    fn legend_styles() {
        let old =
            parse_detail("Flags: X - disabled, I - invalid; D - dynamic\n 0 X  a=1\n\n 1    a=2\n")
                .unwrap();
        assert_eq!(old.legend.name_of('X'), Some("disabled"));
        assert_eq!(old.legend.flag_named("DYNAMIC"), Some('D'));
        assert_eq!(old.records[0].flags, ['X']);
        assert!(old.records[1].flags.is_empty());
        let new =
            parse_detail("Flags: B - BLOCK-DEVICE; t - NVME-TCP-EXPORT\n31 Bt a=1\n").unwrap();
        assert_eq!(new.legend.name_of('t'), Some("NVME-TCP-EXPORT"));
        assert_eq!(new.records[0].flags, ['B', 't']);
        assert_eq!(new.records[0].index, Some(31));
        let only = parse_detail("Flags: B - BLOCK-DEVICE; t - NVME-TCP-EXPORT\r\n").unwrap();
        assert!(only.records.is_empty());
        assert_eq!(only.legend.entries().len(), 2);
    }

    #[test]
    fn comments_on_and_above_items() {
        let out =
            parse_detail(";;; first\n 0  a=1\n\n 1  ;;; second\n    a=2\n\n 2  a=3\n").unwrap();
        let comments: Vec<_> = out.records.iter().map(|r| r.comment.as_deref()).collect();
        assert_eq!(comments, [Some("first"), Some("second"), None]);
        assert_eq!(out.records[1].get("a"), Some("2"));
    }

    #[test]
    fn digits_continuation_is_not_a_new_item() {
        let text = " 0  a=1 size=7 681\n               574 174 720 b=2\n 1  a=2";
        let out = parse_detail(text).unwrap();
        assert_eq!(out.records.len(), 2);
        assert_eq!(out.records[0].get("size"), Some("7 681 574 174 720"));
        assert_eq!(out.records[1].index, Some(1));
    }

    #[test]
    fn empty_and_blank_outputs() {
        for text in ["", "\n", " \n \r\n", "\r\n\r\n"] {
            assert!(parse_detail(text).unwrap().records.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for text in [
            "this is not output",
            " 0  ??? a=1",
            "a=\"unterminated",
            " 99999999999 a=1",
            "a=1\n\nfoo bar",
        ] {
            let err = parse_detail(text).unwrap_err();
            assert!(
                matches!(err, RosError::Unparseable { .. }),
                "{text:?}: {err:?}"
            );
        }
    }

    #[test]
    fn colour_escapes_are_ignored() {
        let r = one("\u{1b}[1;32mslot\u{1b}[0m=\"x\" a=1");
        assert_eq!(r.get("slot"), Some("x"));
    }

    #[test]
    fn colon_form() {
        let r = parse_colon(
            "                   uptime: 1w2d03:04:05\n                  version: 7.16.2 (stable)\nbuild-time: 2024-11-26 10:00:00\n   board-name: RDS2216\n     continued words\n",
        )
        .unwrap();
        assert_eq!(r.get("uptime"), Some("1w2d03:04:05"));
        assert_eq!(r.get("version"), Some("7.16.2 (stable)"));
        assert_eq!(r.get("build-time"), Some("2024-11-26 10:00:00"));
        assert_eq!(r.get("board-name"), Some("RDS2216 continued words"));
        assert!(parse_colon("no colon here").is_err());
        assert!(parse_colon("").unwrap().is_empty());
    }

    /// Feeds random and mutated bytes to the decoders, the typed views and the failure recogniser:
    /// they may refuse, never panic.
    #[test]
    fn no_panic_on_random_or_mutated_input() {
        use crate::routeros::model;
        let seeds = [
            " 0  type=file slot=\"pvc-test-1\" size=53 687 091 200\n               file-path=/storage-pool/test1.img file-size=50.0GiB\n",
            "Flags: B - BLOCK-DEVICE; t - NVME-TCP-EXPORT\n31 Bt type=file slot=\"vm\" model=\"/raid10/vm.img\"\n      nvme-tcp-server-port=4420\n \n",
            ";;; c\nname=/storage-pool type=directory size=7 681 574 174 720\r\n   free=5 632 440 000 000 use=27%\r\n",
            "read-rate:  0bps\nwrite-rate: 12.8Mbps\n",
        ];
        let alphabet: &[u8] = b" \t\r\n=\";:\\0123456789abcXYZ-./[]{}$\x1b\x00";
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..4000 {
            let mut bytes: Vec<u8> = if round % 4 == 0 {
                (0..(next() % 300))
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            } else {
                seeds[round % seeds.len()].as_bytes().to_vec()
            };
            for _ in 0..(next() % 8) {
                if bytes.is_empty() {
                    break;
                }
                let at = (next() % bytes.len() as u64) as usize;
                match next() % 4 {
                    0 => bytes[at] = alphabet[(next() % alphabet.len() as u64) as usize],
                    1 => {
                        bytes.remove(at);
                    }
                    2 => bytes.insert(at, alphabet[(next() % alphabet.len() as u64) as usize]),
                    _ => bytes.insert(at, (next() & 0xff) as u8),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(out) = parse_detail(&text) {
                let _ = model::Disk::from_records(&out.records);
                let _ = model::FileEntry::from_records(&out.records);
                let pool = crate::routeros::names::PoolPath::parse("raid10").unwrap();
                let _ = model::PoolCapacity::from_records(&out.records, &pool);
            }
            if let Ok(record) = parse_colon(&text) {
                let _ = model::TrafficSample::from_record(&record);
                let _ = model::RouterOsVersion::from_record(&record);
            }
            let _ = crate::routeros::json::parse_json(&text);
            let _ = crate::routeros::size::Bytes::parse(&text);
            let _ = crate::routeros::error::classify("fuzz", None, &text, &text, Some(1));
        }
    }

    #[test]
    fn huge_input_is_handled() {
        let long_value = format!("a=\"{}\"", "x".repeat(100 * 1024));
        assert_eq!(one(&long_value).get("a").map(str::len), Some(100 * 1024));
        let many_lines = format!("a=1{}", "\n   b=2".repeat(20_000));
        assert_eq!(one(&many_lines).len(), 20_001);
    }
}
