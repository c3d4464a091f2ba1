//! Prints records exactly like the appliance's terminal: the `Flags:` legend, the index and
//! positional flag columns, `;;;` comments, values quoted or spaced by type, lines wrapped at the
//! terminal width (even inside a value), and the separators between entries. Two shapes exist:
//! [`PrintStyle::New`] (RouterOS 7.16+ on an RDS2216) and [`PrintStyle::Old`] (earlier 7.x).

use super::record::{Flag, Prop, Record};
use super::units::{human_size, spaced};

/// Which generation of terminal output to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrintStyle {
    /// Legend with only the flags present, positional flag columns, continuation lines indented to
    /// the index-and-flags prefix, entries separated by a line holding one space.
    #[default]
    New,
    /// No legend, a 15-space continuation indent, blank lines between entries, and a result of a
    /// filtered print with a single match printed without its index.
    Old,
}

/// How one print is laid out.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub style: PrintStyle,
    /// Terminal width: no line reaches it (the last column is left free, as on a terminal).
    pub width: usize,
    /// Print the `Flags:` legend (disk menu).
    pub legend: bool,
    /// The print had a `where` clause.
    pub filtered: bool,
    /// Properties that always start a new line in the old style.
    pub old_breaks: &'static [&'static str],
    /// The line between two entries (`" "` for disks in the new style, empty otherwise).
    pub separator: &'static str,
}

/// The continuation indent of the old style.
const OLD_INDENT: usize = 15;

/// `print detail` output lines.
pub fn detail(records: &[Record], layout: &Layout) -> Vec<String> {
    let mut out = Vec::new();
    if records.is_empty() {
        return out;
    }
    let present: Vec<Flag> = Flag::ALL
        .into_iter()
        .filter(|f| records.iter().any(|r| r.flags.contains(f)))
        .collect();
    let index_width = records
        .iter()
        .map(|r| r.index.to_string().len())
        .max()
        .unwrap_or(1)
        .max(2);
    if layout.style == PrintStyle::New && layout.legend && !present.is_empty() {
        let legend: Vec<String> = present
            .iter()
            .map(|f| format!("{} - {}", f.letter(), f.name()))
            .collect();
        out.push(format!("Flags: {}", legend.join("; ")));
    }
    let no_index = layout.style == PrintStyle::Old && layout.filtered && records.len() == 1;
    for (n, record) in records.iter().enumerate() {
        if n > 0 {
            out.push(layout.separator.to_string());
        }
        let (prefix, indent) = match layout.style {
            PrintStyle::New => {
                let mut p = format!("{:>index_width$} ", record.index);
                if present.is_empty() {
                    p.push_str("  ");
                } else {
                    for f in &present {
                        p.push(if record.flags.contains(f) {
                            f.letter()
                        } else {
                            ' '
                        });
                    }
                    p.push(' ');
                }
                let indent = p.chars().count();
                (p, indent)
            }
            PrintStyle::Old if no_index => (String::new(), OLD_INDENT),
            PrintStyle::Old => (format!("{:>2}  ", record.index), OLD_INDENT),
        };
        let mut first = prefix;
        if let Some(comment) = &record.comment {
            out.push(format!("{first};;; {}", escape_text(comment)));
            first = " ".repeat(indent);
            if no_index {
                first = String::new();
            }
        }
        let breaks: &[&str] = match layout.style {
            PrintStyle::New => &[],
            PrintStyle::Old => layout.old_breaks,
        };
        let tokens: Vec<(bool, String)> = record
            .props
            .iter()
            .map(|(k, v)| (breaks.contains(k), format!("{k}={}", detail_value(v))))
            .collect();
        out.extend(wrap(&first, indent, &tokens, layout.width));
    }
    out
}

/// `print terse` output lines: one per item, raw numbers, no wrapping.
pub fn terse(records: &[Record]) -> Vec<String> {
    let present: Vec<Flag> = Flag::ALL
        .into_iter()
        .filter(|f| records.iter().any(|r| r.flags.contains(f)))
        .collect();
    records
        .iter()
        .map(|r| {
            let mut line = format!("{:>2} ", r.index);
            for f in &present {
                line.push(if r.flags.contains(f) { f.letter() } else { ' ' });
            }
            if !present.is_empty() {
                line.push(' ');
            }
            let mut parts = Vec::new();
            if let Some(c) = &r.comment {
                parts.push(format!("comment={}", quote_if_needed(c)));
            }
            for (k, v) in &r.props {
                let value = match v {
                    Prop::Str(s) | Prop::Raw(s) => quote_if_needed(s),
                    Prop::Big(n) => n.to_string(),
                    other => detail_value(other),
                };
                parts.push(format!("{k}={value}"));
            }
            line.push_str(&parts.join(" "));
            line
        })
        .collect()
}

/// `key: value` lines with the keys right-aligned, as `/system resource print` shows them.
pub fn colon_block(pairs: &[(&str, String)]) -> Vec<String> {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:>width$}: {v}"))
        .collect()
}

/// A property value as `print detail` shows it.
pub fn detail_value(v: &Prop) -> String {
    match v {
        Prop::Str(s) => quote(s),
        Prop::Raw(s) if s.is_empty() => "\"\"".to_string(),
        Prop::Raw(s) => escape_text(s),
        Prop::Int(n) => n.to_string(),
        Prop::Big(n) => spaced(*n),
        Prop::Human(n) => human_size(*n),
        Prop::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        Prop::Percent(n) => format!("{n}%"),
    }
}

/// `"text"` with RouterOS escapes.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&control_escape(c)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn quote_if_needed(s: &str) -> String {
    if s.is_empty()
        || s.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, '"' | '\\' | '$' | ';' | '[' | ']' | '=')
        })
    {
        quote(s)
    } else {
        s.to_string()
    }
}

/// Control characters as `\XX`; everything else unchanged.
fn escape_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                control_escape(c)
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn control_escape(c: char) -> String {
    let code = u32::from(c);
    if code <= 0xff {
        format!("\\{code:02X}")
    } else {
        "\\?".to_string()
    }
}

/// Packs `key=value` tokens into lines no longer than `width - 1` characters. The first line
/// starts with `first`; later lines are indented by `indent` spaces. A token marked `true` always
/// starts a new line. A token too long for a whole line is cut where the line ends and continues
/// on the next one, as the appliance's terminal does.
fn wrap(first: &str, indent: usize, tokens: &[(bool, String)], width: usize) -> Vec<String> {
    let max = width.saturating_sub(1).max(indent + 16);
    let pad = " ".repeat(indent);
    let mut lines = Vec::new();
    let mut line = first.to_string();
    let mut len = line.chars().count();
    let mut has_tokens = false;
    for (force_break, token) in tokens {
        let token_len = token.chars().count();
        if has_tokens && (*force_break || len + 1 + token_len > max) {
            lines.push(std::mem::replace(&mut line, pad.clone()));
            len = indent;
            has_tokens = false;
        }
        if has_tokens {
            line.push(' ');
            len += 1;
        }
        let mut rest: Vec<char> = token.chars().collect();
        loop {
            let room = max.saturating_sub(len);
            if rest.len() <= room {
                line.extend(rest.iter());
                len += rest.len();
                break;
            }
            line.extend(rest.iter().take(room));
            rest.drain(..room);
            lines.push(std::mem::replace(&mut line, pad.clone()));
            len = indent;
        }
        has_tokens = true;
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &str) -> (bool, String) {
        (false, s.to_string())
    }

    #[test]
    fn wrap_packs_until_the_last_column() {
        let toks = [tok("aaaa=1"), tok("bbbb=2"), tok("cccc=3")];
        // width 30: max line 29; "xx " + 3 tokens = 3 + 20 = 23 fits
        assert_eq!(wrap("xx ", 3, &toks, 30), vec!["xx aaaa=1 bbbb=2 cccc=3"]);
        // width 17 → max 16 but never less than indent+16 = 19
        let lines = wrap("xx ", 3, &toks, 17);
        assert_eq!(lines, vec!["xx aaaa=1 bbbb=2", "   cccc=3"]);
    }

    #[test]
    fn wrap_splits_inside_a_long_value() {
        let long = format!("file-path=/storage-pool/metal-csi/{}.img", "x".repeat(60));
        let lines = wrap(" 0 Bt ", 6, &[tok("slot=\"a\""), tok(&long)], 40);
        assert_eq!(lines[0], " 0 Bt slot=\"a\"");
        assert!(lines.iter().all(|l| l.chars().count() <= 39), "{lines:#?}");
        assert!(lines[1].starts_with("      file-path=/storage-pool/"));
        assert!(lines.len() >= 3);
        let joined: String = lines[1..].iter().map(|l| &l[6..]).collect();
        assert_eq!(joined, long);
    }

    #[test]
    fn wrap_forced_breaks() {
        let toks = [tok("a=1"), (true, "file-path=/x".to_string()), tok("b=2")];
        assert_eq!(
            wrap("", 15, &toks, 80),
            vec!["a=1", "               file-path=/x b=2"]
        );
    }

    #[test]
    fn values_by_type() {
        assert_eq!(detail_value(&Prop::Str("pvc-1".into())), "\"pvc-1\"");
        assert_eq!(
            detail_value(&Prop::Str("a\"b$c\\".into())),
            "\"a\\\"b\\$c\\\\\""
        );
        assert_eq!(detail_value(&Prop::Str("a\nb".into())), "\"a\\0Ab\"");
        assert_eq!(detail_value(&Prop::Raw(String::new())), "\"\"");
        assert_eq!(detail_value(&Prop::Raw(".img file".into())), ".img file");
        assert_eq!(detail_value(&Prop::Big(53_687_091_200)), "53 687 091 200");
        assert_eq!(detail_value(&Prop::Int(4420)), "4420");
        assert_eq!(detail_value(&Prop::Human(50 << 30)), "50.0GiB");
        assert_eq!(detail_value(&Prop::Bool(false)), "no");
        assert_eq!(detail_value(&Prop::Percent(8)), "8%");
    }

    #[test]
    fn colon_block_right_aligns_keys() {
        let lines = colon_block(&[("uptime", "1h".into()), ("board-name", "RDS2216".into())]);
        assert_eq!(lines, vec!["    uptime: 1h", "board-name: RDS2216"]);
    }
}
