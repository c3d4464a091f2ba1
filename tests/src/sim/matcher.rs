//! Evaluates `where` conditions against a [`Record`]: `=` and `!=` (numbers compared as numbers,
//! so `file-size=10G` works), and `~` with the small part of POSIX regular expressions that
//! scripts use on slot names: `^` and `$` anchors, `.`, `\` escapes, and the `*`, `+`, `?`
//! repeats. Other regex syntax is matched literally. Matching is bounded: no input can make it
//! run away.

use super::ast::{Cond, Op};
use super::record::{Prop, Record};
use super::units::parse_size;

/// True when `record` satisfies `cond`.
pub fn matches(record: &Record, cond: &Cond) -> bool {
    match cond {
        Cond::And(all) => all.iter().all(|c| matches(record, c)),
        Cond::Or(any) => any.iter().any(|c| matches(record, c)),
        Cond::Cmp { key, op, value } => {
            let Some(prop) = record.get(key) else {
                return *op == Op::NotEq;
            };
            match op {
                Op::Eq => equal(&prop, value),
                Op::NotEq => !equal(&prop, value),
                Op::Match => Regex::new(value).is_match(&prop.text()),
            }
        }
    }
}

fn equal(prop: &Prop, value: &str) -> bool {
    match prop {
        Prop::Bool(b) => match value {
            "yes" | "true" => *b,
            "no" | "false" => !*b,
            _ => false,
        },
        Prop::Percent(n) => value.trim_end_matches('%').parse::<u64>().ok() == Some(*n),
        _ => match prop.number() {
            Some(n) => parse_size(value) == Some(n),
            None => prop.text() == value,
        },
    }
}

/// One element of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Atom {
    Any,
    Char(char),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    One,
    ZeroOrOne,
    ZeroOrMore,
    OneOrMore,
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regex {
    anchored_start: bool,
    anchored_end: bool,
    pieces: Vec<(Atom, Repeat)>,
}

impl Regex {
    /// Compiles `pattern`; never fails (unsupported syntax is taken literally).
    pub fn new(pattern: &str) -> Regex {
        let mut chars: Vec<char> = pattern.chars().collect();
        let anchored_start = chars.first() == Some(&'^');
        if anchored_start {
            chars.remove(0);
        }
        let mut anchored_end = false;
        if chars.last() == Some(&'$') {
            let escapes = chars
                .iter()
                .rev()
                .skip(1)
                .take_while(|c| **c == '\\')
                .count();
            if escapes % 2 == 0 {
                anchored_end = true;
                chars.pop();
            }
        }
        let mut pieces: Vec<(Atom, Repeat)> = Vec::new();
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            i += 1;
            let atom = match c {
                '\\' => match chars.get(i) {
                    Some(&e) => {
                        i += 1;
                        Atom::Char(e)
                    }
                    None => Atom::Char('\\'),
                },
                '.' => Atom::Any,
                '*' | '+' | '?' => {
                    let repeat = match c {
                        '*' => Repeat::ZeroOrMore,
                        '+' => Repeat::OneOrMore,
                        _ => Repeat::ZeroOrOne,
                    };
                    match pieces.last_mut() {
                        Some(last) if last.1 == Repeat::One => {
                            last.1 = repeat;
                            continue;
                        }
                        _ => Atom::Char(c),
                    }
                }
                other => Atom::Char(other),
            };
            pieces.push((atom, Repeat::One));
        }
        Regex {
            anchored_start,
            anchored_end,
            pieces,
        }
    }

    /// True when the pattern occurs in `text` (anywhere, unless anchored).
    pub fn is_match(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let mut budget: u32 = 200_000;
        let starts: Vec<usize> = if self.anchored_start {
            vec![0]
        } else {
            (0..=text.len()).collect()
        };
        starts
            .into_iter()
            .any(|s| self.match_here(0, &text, s, &mut budget))
    }

    fn match_here(&self, piece: usize, text: &[char], at: usize, budget: &mut u32) -> bool {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let Some(&(atom, repeat)) = self.pieces.get(piece) else {
            return !self.anchored_end || at == text.len();
        };
        let fits = |pos: usize| {
            text.get(pos).is_some_and(|c| match atom {
                Atom::Any => true,
                Atom::Char(want) => *c == want,
            })
        };
        match repeat {
            Repeat::One => fits(at) && self.match_here(piece + 1, text, at + 1, budget),
            Repeat::ZeroOrOne => {
                (fits(at) && self.match_here(piece + 1, text, at + 1, budget))
                    || self.match_here(piece + 1, text, at, budget)
            }
            Repeat::ZeroOrMore | Repeat::OneOrMore => {
                let mut run = 0;
                while fits(at + run) {
                    run += 1;
                }
                *budget = budget.saturating_sub(u32::try_from(run).unwrap_or(u32::MAX));
                let min = usize::from(repeat == Repeat::OneOrMore);
                (min..=run)
                    .rev()
                    .any(|n| self.match_here(piece + 1, text, at + n, budget))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        Record {
            id: "*1F".into(),
            index: 3,
            flags: vec![],
            comment: Some("made by csi".into()),
            props: vec![
                ("type", Prop::Raw("file".into())),
                ("slot", Prop::Str("pvc-123".into())),
                ("size", Prop::Big(10 << 30)),
                ("file-size", Prop::Human(10 << 30)),
                ("nvme-tcp-export", Prop::Bool(true)),
                ("use", Prop::Percent(27)),
            ],
        }
    }

    fn cmp(key: &str, op: Op, value: &str) -> Cond {
        Cond::Cmp {
            key: key.into(),
            op,
            value: value.into(),
        }
    }

    #[test]
    fn equality_by_type() {
        let r = rec();
        assert!(matches(&r, &cmp("slot", Op::Eq, "pvc-123")));
        assert!(!matches(&r, &cmp("slot", Op::Eq, "pvc-12")));
        assert!(matches(&r, &cmp("size", Op::Eq, "10737418240")));
        assert!(matches(&r, &cmp("file-size", Op::Eq, "10G")));
        assert!(matches(&r, &cmp("nvme-tcp-export", Op::Eq, "yes")));
        assert!(matches(&r, &cmp("nvme-tcp-export", Op::Eq, "true")));
        assert!(!matches(&r, &cmp("nvme-tcp-export", Op::Eq, "no")));
        assert!(matches(&r, &cmp("use", Op::Eq, "27%")));
        assert!(matches(&r, &cmp(".id", Op::Eq, "*1F")));
        assert!(matches(&r, &cmp("comment", Op::Eq, "made by csi")));
        assert!(!matches(&r, &cmp("missing", Op::Eq, "x")));
        assert!(matches(&r, &cmp("missing", Op::NotEq, "x")));
        assert!(matches(&r, &cmp("slot", Op::NotEq, "other")));
    }

    #[test]
    fn combinations() {
        let r = rec();
        let yes = cmp("type", Op::Eq, "file");
        let no = cmp("type", Op::Eq, "raid");
        assert!(matches(&r, &Cond::And(vec![yes.clone(), yes.clone()])));
        assert!(!matches(&r, &Cond::And(vec![yes.clone(), no.clone()])));
        assert!(matches(&r, &Cond::Or(vec![no.clone(), yes])));
        assert!(!matches(&r, &Cond::Or(vec![no.clone(), no])));
    }

    #[test]
    fn regex_subset() {
        let m = |p: &str, t: &str| Regex::new(p).is_match(t);
        assert!(m("^pvc-", "pvc-123"));
        assert!(!m("^pvc-", "snap-pvc-1"));
        assert!(m("pvc-", "snap-pvc-1"));
        assert!(m("", "anything"));
        assert!(m("^$", ""));
        assert!(!m("^$", "x"));
        assert!(m("123$", "pvc-123"));
        assert!(!m("12$", "pvc-123"));
        assert!(m("^p.c", "pvc"));
        assert!(!m("^p\\.c", "pvc"));
        assert!(m("^p\\.c", "p.c"));
        assert!(m("^a*b$", "aaab"));
        assert!(m("^a*b$", "b"));
        assert!(!m("^a+b$", "b"));
        assert!(m("^ab?c$", "ac"));
        assert!(m("^ab?c$", "abc"));
        assert!(m("^.*\\.img$", "storage-pool/x.img"));
        assert!(m("(", "a(b"));
        assert!(m("^*", "*x"));
        assert!(m("x\\$", "ax$"));
        // a pathological pattern ends within its budget
        let long = "a".repeat(5000);
        let pattern = format!("{}b", "a*".repeat(30));
        assert!(!m(&pattern, &long));
    }
}
