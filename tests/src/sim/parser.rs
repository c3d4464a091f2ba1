//! Turns tokens into a [`Script`], reporting problems with RouterOS's own words and positions
//! (`bad command name x (line 1 column 7)`, `expected end of command (...)`,
//! `input does not match any value of nvme-tcp-export`). A line is parsed whole before anything
//! runs, as on RouterOS, so a syntax error anywhere means nothing is applied.

use std::fmt;

use super::ast::{Cmd, Cond, DiskProps, Expr, Menu, Op, Print, PrintMode, Script};
use super::lexer::{LexError, Tok, Token, lex};
use super::units::parse_size;

/// Why a command line was refused before running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Syntax {
        line: usize,
        col: usize,
    },
    BadCommand {
        name: String,
        line: usize,
        col: usize,
    },
    ExpectedEnd {
        line: usize,
        col: usize,
    },
    ExpectedCommand {
        line: usize,
        col: usize,
    },
    NoMatch {
        param: String,
    },
    InvalidValue {
        param: String,
    },
    OutOfRange {
        param: String,
        max: u64,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Syntax { line, col } => {
                write!(f, "syntax error (line {line} column {col})")
            }
            ParseError::BadCommand { name, line, col } => {
                write!(f, "bad command name {name} (line {line} column {col})")
            }
            ParseError::ExpectedEnd { line, col } => {
                write!(f, "expected end of command (line {line} column {col})")
            }
            ParseError::ExpectedCommand { line, col } => {
                write!(f, "expected command name (line {line} column {col})")
            }
            ParseError::NoMatch { param } => {
                write!(f, "input does not match any value of {param}")
            }
            ParseError::InvalidValue { param } => {
                write!(f, "invalid value for argument {param}")
            }
            ParseError::OutOfRange { param, max } => {
                write!(f, "value of {param} out of range (0..{max})")
            }
        }
    }
}

impl From<LexError> for ParseError {
    fn from(e: LexError) -> Self {
        ParseError::Syntax {
            line: e.line,
            col: e.col,
        }
    }
}

/// What the parser needs to know about the simulated appliance.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// `:serialize` exists (RouterOS 7.13 and later).
    pub serialize: bool,
}

/// Parses a whole command line.
pub fn parse(input: &str, dialect: Dialect) -> Result<Script, ParseError> {
    let toks = lex(input)?;
    let end = end_position(input);
    let mut p = Parser {
        toks: &toks,
        pos: 0,
        end,
        dialect,
        depth: 0,
    };
    let mut commands = Vec::new();
    loop {
        while p.peek_is(&Tok::Sep) {
            p.pos += 1;
        }
        if p.at_end() {
            break;
        }
        let cmd = p.command(Node::Root)?;
        match p.peek() {
            None => {}
            Some(t) if t.tok == Tok::Sep => {}
            Some(t) => {
                return Err(ParseError::ExpectedEnd {
                    line: t.line,
                    col: t.col,
                });
            }
        }
        commands.push(cmd);
    }
    Ok(Script { commands })
}

/// Line and column just past the last character.
fn end_position(input: &str) -> (usize, usize) {
    let mut line = 1;
    let mut col = 1;
    for c in input.chars() {
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

/// A place in the menu tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Root,
    Disk,
    File,
    System,
    Resource,
}

/// What a name means in a menu.
enum Entry {
    Menu(Node),
    Command(&'static str),
}

fn lookup(node: Node, name: &str) -> Option<Entry> {
    Some(match (node, name) {
        (Node::Root, "disk") => Entry::Menu(Node::Disk),
        (Node::Root, "file") => Entry::Menu(Node::File),
        (Node::Root, "system") => Entry::Menu(Node::System),
        (Node::System, "resource") => Entry::Menu(Node::Resource),
        (Node::Disk, "add") => Entry::Command("add"),
        (Node::Disk, "set") => Entry::Command("set"),
        (Node::Disk, "monitor-traffic") => Entry::Command("monitor-traffic"),
        (Node::Disk | Node::File, "remove") => Entry::Command("remove"),
        (Node::Disk | Node::File | Node::Resource, "print") => Entry::Command("print"),
        (Node::Disk | Node::File, "find") => Entry::Command("find"),
        _ => return None,
    })
}

const ADD_PARAMS: &[&str] = &[
    "type",
    "slot",
    "file-path",
    "file-size",
    "copy-from",
    "nvme-tcp-export",
    "nvme-tcp-server-port",
    "nvme-tcp-server-nqn",
    "nvme-tcp-server-allow-host-name",
    "comment",
    "mount-filesystem",
];

const SET_PARAMS: &[&str] = &[
    "slot",
    "file-size",
    "nvme-tcp-export",
    "nvme-tcp-server-port",
    "nvme-tcp-server-nqn",
    "nvme-tcp-server-allow-host-name",
    "comment",
    "mount-filesystem",
];

struct Parser<'a> {
    toks: &'a [Token],
    pos: usize,
    end: (usize, usize),
    dialect: Dialect,
    depth: usize,
}

/// How deeply `[commands]` may nest; deeper input is a syntax error instead of a deep recursion.
const MAX_DEPTH: usize = 16;

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, offset: usize) -> Option<&'a Token> {
        self.toks.get(self.pos + offset)
    }

    fn peek_is(&self, tok: &Tok) -> bool {
        self.peek().is_some_and(|t| &t.tok == tok)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }

    /// The position of the next token, or of the end of input.
    fn here(&self) -> (usize, usize) {
        self.peek().map_or(self.end, |t| (t.line, t.col))
    }

    fn syntax_here(&self) -> ParseError {
        let (line, col) = self.here();
        ParseError::Syntax { line, col }
    }

    fn expected_end_here(&self) -> ParseError {
        let (line, col) = self.here();
        ParseError::ExpectedEnd { line, col }
    }

    /// True at the end of the current command (end of input, `;`, or a closing bracket).
    fn at_command_end(&self) -> bool {
        matches!(
            self.peek().map(|t| &t.tok),
            None | Some(Tok::Sep | Tok::RBrack)
        )
    }

    /// The next word, if the next token is one.
    fn peek_word(&self) -> Option<&'a str> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Word(w)) => Some(w.as_str()),
            _ => None,
        }
    }

    /// A command starting at the current token, resolved from `start`.
    fn command(&mut self, start: Node) -> Result<Cmd, ParseError> {
        let Some(first) = self.peek() else {
            return Err(self.syntax_here());
        };
        let Tok::Word(word) = &first.tok else {
            return Err(ParseError::ExpectedCommand {
                line: first.line,
                col: first.col,
            });
        };
        if let Some(name) = word.strip_prefix(':') {
            return self.global(name, first);
        }
        let mut node = start;
        while let Some(tok) = self.peek() {
            let Tok::Word(word) = &tok.tok else { break };
            let mut found: Option<&'static str> = None;
            if word.starts_with('/') {
                node = Node::Root;
            }
            for (seg_offset, seg) in split_segments(word) {
                let bad = || ParseError::BadCommand {
                    name: seg.to_string(),
                    line: tok.line,
                    col: tok.col + seg_offset,
                };
                if found.is_some() {
                    return Err(bad());
                }
                match lookup(node, seg) {
                    Some(Entry::Menu(next)) => node = next,
                    Some(Entry::Command(cmd)) => found = Some(cmd),
                    None => return Err(bad()),
                }
            }
            self.pos += 1;
            if let Some(cmd) = found {
                return self.arguments(node, cmd);
            }
        }
        if self.at_command_end() {
            Ok(Cmd::Nothing)
        } else {
            Err(self.expected_end_here())
        }
    }

    fn global(&mut self, name: &str, tok: &Token) -> Result<Cmd, ParseError> {
        self.pos += 1;
        match name {
            "put" => {
                let value = if self.at_command_end() {
                    Expr::Lit(String::new())
                } else {
                    self.value(Node::Root)?
                };
                Ok(Cmd::Put(value))
            }
            "serialize" if self.dialect.serialize => {
                let mut value = None;
                let mut to = None;
                while !self.at_command_end() {
                    if let Some(key) = self.named_key() {
                        let key_tok = self.peek();
                        self.pos += 2;
                        let v = self.value(Node::Root)?;
                        match key {
                            "to" => to = Some(literal(&v, "to")?),
                            "value" => value = Some(v),
                            "options" => {}
                            _ => {
                                return Err(key_tok.map_or_else(
                                    || self.expected_end_here(),
                                    |t| ParseError::ExpectedEnd {
                                        line: t.line,
                                        col: t.col,
                                    },
                                ));
                            }
                        }
                    } else if value.is_none() {
                        value = Some(self.value(Node::Root)?);
                    } else {
                        return Err(self.expected_end_here());
                    }
                }
                match to.as_deref() {
                    Some("json") => {}
                    Some(_) => {
                        return Err(ParseError::NoMatch {
                            param: "to".to_string(),
                        });
                    }
                    None => return Err(self.syntax_here()),
                }
                let value = value.ok_or_else(|| self.syntax_here())?;
                Ok(Cmd::Serialize(value))
            }
            _ => Err(ParseError::BadCommand {
                name: name.to_string(),
                line: tok.line,
                col: tok.col + 1,
            }),
        }
    }

    /// `key` when the next tokens are `key =`.
    fn named_key(&self) -> Option<&'a str> {
        let key = self.peek_word()?;
        self.peek_at(1)
            .is_some_and(|t| t.tok == Tok::Eq)
            .then_some(key)
    }

    /// A value: a word, a quoted string or a bracketed command.
    fn value(&mut self, ctx: Node) -> Result<Expr, ParseError> {
        let Some(tok) = self.peek() else {
            return Err(self.syntax_here());
        };
        match &tok.tok {
            Tok::Word(w) => {
                self.pos += 1;
                Ok(Expr::Lit(w.clone()))
            }
            Tok::Str(s) => {
                self.pos += 1;
                Ok(Expr::Lit(s.clone()))
            }
            Tok::LBrack => {
                if self.depth >= MAX_DEPTH {
                    return Err(ParseError::Syntax {
                        line: tok.line,
                        col: tok.col,
                    });
                }
                self.pos += 1;
                self.depth += 1;
                let inner = self.command(ctx)?;
                self.depth -= 1;
                if self.peek_is(&Tok::RBrack) {
                    self.pos += 1;
                    Ok(Expr::Sub(Box::new(inner)))
                } else if self.at_end() {
                    Err(self.syntax_here())
                } else {
                    Err(self.expected_end_here())
                }
            }
            _ => Err(ParseError::Syntax {
                line: tok.line,
                col: tok.col,
            }),
        }
    }

    fn arguments(&mut self, node: Node, cmd: &str) -> Result<Cmd, ParseError> {
        let menu = match node {
            Node::File => Menu::File,
            _ => Menu::Disk,
        };
        match (node, cmd) {
            (Node::Resource, "print") => {
                while self.peek_word() == Some("without-paging") {
                    self.pos += 1;
                }
                Ok(Cmd::SystemResourcePrint)
            }
            (_, "print") => Ok(Cmd::Print {
                menu,
                print: self.print()?,
            }),
            (_, "find") => {
                if self.peek_word() == Some("where") {
                    self.pos += 1;
                }
                let cond = if self.at_command_end() {
                    None
                } else {
                    Some(self.cond()?)
                };
                Ok(Cmd::Find { menu, cond })
            }
            (_, "remove") => {
                let target = self.target(node)?;
                Ok(Cmd::Remove { menu, target })
            }
            (_, "monitor-traffic") => {
                let target = self.target(node)?;
                while let Some(w) = self.peek_word() {
                    if w == "once" {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                Ok(Cmd::Monitor { target })
            }
            (_, "add") => Ok(Cmd::DiskAdd(self.disk_props(node, ADD_PARAMS)?)),
            (_, "set") => {
                let target = self.target(node)?;
                let props = self.disk_props(node, SET_PARAMS)?;
                Ok(Cmd::DiskSet { target, props })
            }
            _ => Err(self.syntax_here()),
        }
    }

    /// The item list of `set`, `remove`, `monitor-traffic`: positional or `numbers=`.
    fn target(&mut self, node: Node) -> Result<Expr, ParseError> {
        if self.named_key() == Some("numbers") {
            self.pos += 2;
            return self.value(node);
        }
        if self.at_command_end() || self.named_key().is_some() {
            return Err(self.syntax_here());
        }
        self.value(node)
    }

    fn print(&mut self) -> Result<Print, ParseError> {
        let mut print = Print::default();
        let mut as_value = false;
        while let Some(w) = self.peek_word() {
            match w {
                "detail" | "without-paging" => {}
                "terse" => print.mode = PrintMode::Terse,
                "count-only" => print.mode = PrintMode::CountOnly,
                "as-value" => as_value = true,
                "where" => {
                    self.pos += 1;
                    print.cond = Some(self.cond()?);
                    break;
                }
                _ => return Err(self.expected_end_here()),
            }
            self.pos += 1;
        }
        if as_value && print.mode != PrintMode::CountOnly {
            print.mode = PrintMode::AsValue;
        }
        if !self.at_command_end() {
            return Err(self.expected_end_here());
        }
        Ok(print)
    }

    fn cond(&mut self) -> Result<Cond, ParseError> {
        let mut any = vec![self.cond_and()?];
        while matches!(self.peek_word(), Some("or" | "||")) {
            self.pos += 1;
            any.push(self.cond_and()?);
        }
        Ok(if any.len() == 1 {
            any.remove(0)
        } else {
            Cond::Or(any)
        })
    }

    fn cond_and(&mut self) -> Result<Cond, ParseError> {
        let mut all = vec![self.comparison()?];
        loop {
            match self.peek_word() {
                Some("and" | "&&") => {
                    self.pos += 1;
                    all.push(self.comparison()?);
                }
                Some("or" | "||") | None => break,
                Some(_) => all.push(self.comparison()?),
            }
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Cond::And(all)
        })
    }

    fn comparison(&mut self) -> Result<Cond, ParseError> {
        let Some(key) = self.peek_word() else {
            return Err(self.syntax_here());
        };
        self.pos += 1;
        let op = match self.peek().map(|t| &t.tok) {
            Some(Tok::Eq) => Op::Eq,
            Some(Tok::NotEq) => Op::NotEq,
            Some(Tok::Tilde) => Op::Match,
            _ => return Err(self.syntax_here()),
        };
        self.pos += 1;
        let value = match self.peek().map(|t| &t.tok) {
            Some(Tok::Word(w) | Tok::Str(w)) => w.clone(),
            _ => return Err(self.syntax_here()),
        };
        self.pos += 1;
        Ok(Cond::Cmp {
            key: key.to_string(),
            op,
            value,
        })
    }

    fn disk_props(&mut self, node: Node, allowed: &[&str]) -> Result<DiskProps, ParseError> {
        let mut props = DiskProps::default();
        let mut seen: Vec<&str> = Vec::new();
        while !self.at_command_end() {
            let Some(key) = self.named_key() else {
                return Err(self.expected_end_here());
            };
            if !allowed.contains(&key) || seen.contains(&key) {
                return Err(self.expected_end_here());
            }
            seen.push(key);
            self.pos += 2;
            let value = self.value(node)?;
            match key {
                "type" => {
                    let v = literal(&value, key)?;
                    if v != "file" {
                        return Err(no_match(key));
                    }
                    props.kind = Some(v);
                }
                "slot" => props.slot = Some(literal(&value, key)?),
                "file-path" => props.file_path = Some(literal(&value, key)?),
                "file-size" => {
                    let v = literal(&value, key)?;
                    props.file_size = Some(parse_size(&v).ok_or_else(|| invalid(key))?);
                }
                "copy-from" => props.copy_from = Some(value),
                "nvme-tcp-export" => props.export = Some(yes_no(&value, key)?),
                "mount-filesystem" => props.mount_filesystem = Some(yes_no(&value, key)?),
                "nvme-tcp-server-port" => {
                    let v = literal(&value, key)?;
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(invalid(key));
                    }
                    props.port = Some(v.parse::<u16>().map_err(|_| ParseError::OutOfRange {
                        param: key.to_string(),
                        max: u64::from(u16::MAX),
                    })?);
                }
                "nvme-tcp-server-nqn" => props.nqn = Some(literal(&value, key)?),
                "nvme-tcp-server-allow-host-name" => {
                    props.allow_host = Some(literal(&value, key)?);
                }
                "comment" => props.comment = Some(literal(&value, key)?),
                _ => return Err(self.expected_end_here()),
            }
        }
        Ok(props)
    }
}

fn no_match(param: &str) -> ParseError {
    ParseError::NoMatch {
        param: param.to_string(),
    }
}

fn invalid(param: &str) -> ParseError {
    ParseError::InvalidValue {
        param: param.to_string(),
    }
}

/// The text of a literal value; a bracketed command is not a valid value here.
fn literal(value: &Expr, param: &str) -> Result<String, ParseError> {
    match value {
        Expr::Lit(s) => Ok(s.clone()),
        Expr::Sub(_) => Err(invalid(param)),
    }
}

fn yes_no(value: &Expr, param: &str) -> Result<bool, ParseError> {
    match literal(value, param)?.as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(no_match(param)),
    }
}

/// The `/`-separated parts of a path word with their character offsets.
fn split_segments(word: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for part in word.split('/') {
        if !part.is_empty() {
            out.push((offset, part));
        }
        offset += part.chars().count() + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NEW: Dialect = Dialect { serialize: true };
    const OLD: Dialect = Dialect { serialize: false };

    fn one(line: &str) -> Cmd {
        let mut s = parse(line, NEW).unwrap();
        assert_eq!(s.commands.len(), 1, "{line}");
        s.commands.remove(0)
    }

    fn err(line: &str) -> String {
        parse(line, NEW).unwrap_err().to_string()
    }

    fn slot_is(v: &str) -> Cond {
        Cond::Cmp {
            key: "slot".into(),
            op: Op::Eq,
            value: v.into(),
        }
    }

    fn find_slot(menu: Menu, v: &str) -> Expr {
        Expr::Sub(Box::new(Cmd::Find {
            menu,
            cond: Some(slot_is(v)),
        }))
    }

    #[test]
    fn disk_add_with_every_export_option() {
        let cmd = one(
            "/disk add type=file file-path=/storage-pool/metal-csi/pvc-1.img file-size=10G \
             slot=pvc-1 nvme-tcp-export=yes nvme-tcp-server-port=4420 \
             nvme-tcp-server-nqn=nqn.2000-02.com.mikrotik:pvc-1 comment=\"made by csi\"",
        );
        let Cmd::DiskAdd(p) = cmd else {
            panic!("not an add: {cmd:?}")
        };
        assert_eq!(p.kind.as_deref(), Some("file"));
        assert_eq!(
            p.file_path.as_deref(),
            Some("/storage-pool/metal-csi/pvc-1.img")
        );
        assert_eq!(p.file_size, Some(10 << 30));
        assert_eq!(p.slot.as_deref(), Some("pvc-1"));
        assert_eq!(p.export, Some(true));
        assert_eq!(p.port, Some(4420));
        assert_eq!(p.nqn.as_deref(), Some("nqn.2000-02.com.mikrotik:pvc-1"));
        assert_eq!(p.comment.as_deref(), Some("made by csi"));
        assert_eq!(p.copy_from, None);
    }

    #[test]
    fn disk_copy_takes_a_find_expression() {
        let cmd =
            one("/disk add type=file copy-from=[find slot=pvc-a] file-path=x/snap.img slot=snap");
        let Cmd::DiskAdd(p) = &cmd else {
            panic!("not an add")
        };
        assert_eq!(p.copy_from, Some(find_slot(Menu::Disk, "pvc-a")));
        assert_eq!(cmd.verb(), Some(super::super::ast::Verb::DiskCopy));
    }

    #[test]
    fn prints_with_where_clauses() {
        assert_eq!(
            one("/disk print detail where slot=pvc-1"),
            Cmd::Print {
                menu: Menu::Disk,
                print: Print {
                    mode: PrintMode::Detail,
                    cond: Some(slot_is("pvc-1"))
                }
            }
        );
        assert_eq!(
            one(r#"/disk print detail where slot~"^pvc-""#),
            Cmd::Print {
                menu: Menu::Disk,
                print: Print {
                    mode: PrintMode::Detail,
                    cond: Some(Cond::Cmp {
                        key: "slot".into(),
                        op: Op::Match,
                        value: "^pvc-".into()
                    })
                }
            }
        );
        assert_eq!(
            one("/disk print detail"),
            Cmd::Print {
                menu: Menu::Disk,
                print: Print::default()
            }
        );
        assert!(matches!(
            one(r#"/file print detail where name="storage-pool""#),
            Cmd::Print {
                menu: Menu::File,
                ..
            }
        ));
        assert!(matches!(
            one(r#"/disk print detail where mount-point="storage-pool""#),
            Cmd::Print { .. }
        ));
        let Cmd::Print { print, .. } = one("/disk print where slot~\"a\" and type=file or slot!=b")
        else {
            panic!()
        };
        assert!(matches!(print.cond, Some(Cond::Or(ref v)) if v.len() == 2));
    }

    #[test]
    fn set_remove_and_file_remove() {
        assert_eq!(
            one("/disk set [find slot=pvc-1] file-size=20G"),
            Cmd::DiskSet {
                target: find_slot(Menu::Disk, "pvc-1"),
                props: DiskProps {
                    file_size: Some(20 << 30),
                    ..DiskProps::default()
                }
            }
        );
        assert_eq!(
            one("/disk remove [find slot=pvc-1]"),
            Cmd::Remove {
                menu: Menu::Disk,
                target: find_slot(Menu::Disk, "pvc-1")
            }
        );
        assert_eq!(
            one(r#"/file remove [find name="storage-pool/pvc-1.img"]"#),
            Cmd::Remove {
                menu: Menu::File,
                target: Expr::Sub(Box::new(Cmd::Find {
                    menu: Menu::File,
                    cond: Some(Cond::Cmp {
                        key: "name".into(),
                        op: Op::Eq,
                        value: "storage-pool/pvc-1.img".into()
                    })
                }))
            }
        );
        assert_eq!(
            one("/disk set *1F nvme-tcp-export=no"),
            Cmd::DiskSet {
                target: Expr::Lit("*1F".into()),
                props: DiskProps {
                    export: Some(false),
                    ..DiskProps::default()
                }
            }
        );
    }

    #[test]
    fn monitor_system_and_slash_paths() {
        assert_eq!(
            one("/disk monitor-traffic storage-pool once"),
            Cmd::Monitor {
                target: Expr::Lit("storage-pool".into())
            }
        );
        assert_eq!(one("/system resource print"), Cmd::SystemResourcePrint);
        assert_eq!(one("/system/resource/print"), Cmd::SystemResourcePrint);
        assert!(matches!(one("/disk/print detail"), Cmd::Print { .. }));
        assert!(matches!(one("disk print"), Cmd::Print { .. }));
        assert_eq!(one("/disk"), Cmd::Nothing);
    }

    #[test]
    fn serialize_wrapper() {
        let cmd = one(":put [:serialize to=json [/disk print detail as-value where slot=pvc-1]]");
        let Cmd::Put(Expr::Sub(inner)) = &cmd else {
            panic!("{cmd:?}")
        };
        let Cmd::Serialize(Expr::Sub(print)) = inner.as_ref() else {
            panic!("{inner:?}")
        };
        assert_eq!(
            **print,
            Cmd::Print {
                menu: Menu::Disk,
                print: Print {
                    mode: PrintMode::AsValue,
                    cond: Some(slot_is("pvc-1"))
                }
            }
        );
        assert_eq!(cmd.verb(), Some(super::super::ast::Verb::DiskPrint));
        // `as-value` may also follow `where`-less prints and come before `detail`
        assert!(
            parse(
                ":put [:serialize to=json [/disk print as-value detail]]",
                NEW
            )
            .is_ok()
        );
        assert_eq!(
            parse(":put [:serialize to=json [/disk print as-value]]", OLD)
                .unwrap_err()
                .to_string(),
            "bad command name serialize (line 1 column 8)"
        );
        assert_eq!(
            err(":put [:serialize to=xml [/disk print as-value]]"),
            "input does not match any value of to"
        );
    }

    #[test]
    fn several_commands_on_one_line() {
        let s = parse("/disk print; /file print\n/system resource print", NEW).unwrap();
        assert_eq!(s.commands.len(), 3);
    }

    #[test]
    fn errors_read_like_routeros() {
        assert_eq!(
            err("/disks print"),
            "bad command name disks (line 1 column 2)"
        );
        assert_eq!(err("/disk frob"), "bad command name frob (line 1 column 7)");
        assert_eq!(err("/disk/frob"), "bad command name frob (line 1 column 7)");
        assert_eq!(
            err("/system reboot"),
            "bad command name reboot (line 1 column 9)"
        );
        assert_eq!(
            err(":execute x"),
            "bad command name execute (line 1 column 2)"
        );
        assert_eq!(
            err("/disk add type=file foo=bar"),
            "expected end of command (line 1 column 21)"
        );
        assert_eq!(
            err("/disk print detail extra"),
            "expected end of command (line 1 column 20)"
        );
        assert_eq!(
            err("/disk add type=file slot=a slot=b"),
            "expected end of command (line 1 column 28)"
        );
        assert_eq!(
            err("/disk add type=file nvme-tcp-export=maybe"),
            "input does not match any value of nvme-tcp-export"
        );
        assert_eq!(
            err("/disk add type=tmpfs"),
            "input does not match any value of type"
        );
        assert_eq!(
            err("/disk add type=file file-size=ten"),
            "invalid value for argument file-size"
        );
        assert_eq!(
            err("/disk add type=file nvme-tcp-server-port=70000"),
            "value of nvme-tcp-server-port out of range (0..65535)"
        );
        assert_eq!(err("/disk print where"), "syntax error (line 1 column 18)");
        assert_eq!(
            err("/disk remove [find slot=a"),
            "syntax error (line 1 column 26)"
        );
        assert_eq!(err("/disk print; $x"), "syntax error (line 1 column 14)");
        assert_eq!(err("= x"), "expected command name (line 1 column 1)");
        assert_eq!(err("/disk remove"), "syntax error (line 1 column 13)");
    }

    #[test]
    fn hostile_input_never_panics() {
        let samples = [
            "",
            ";",
            ";;;",
            "[",
            "]",
            "[[[[",
            "]]]]",
            "\"",
            "\\",
            "/",
            "//",
            "///disk",
            "/disk add",
            "/disk add =",
            "/disk add type=",
            "/disk add type=[",
            "/disk add type=[]",
            "/disk set",
            "/disk set [",
            "/disk set [find",
            "/disk set [find slot=]",
            ":put",
            ":put [",
            ":serialize",
            ":serialize to=json",
            "/disk print where a",
            "/disk print where a=",
            "/disk print where a~",
            "/disk print where a= and",
            "/disk remove [/system resource print]",
            "/disk add copy-from=[find slot~\"(\"] slot=x",
            "\u{0}",
            "\u{202e}/disk print",
            "/disk add type=file slot=\"a\nb\"",
            "x\ny\nz",
            "/disk print detail where slot=\"\\\"\"",
            "/disk monitor-traffic",
            "/disk monitor-traffic [find] once once",
            ":put [:put [:put]]",
        ];
        for s in samples {
            let _ = parse(s, NEW);
            let _ = parse(s, OLD);
        }
        // every prefix of a long valid line
        let line = ":put [:serialize to=json [/disk print detail as-value where slot~\"^pvc-\" and type=file]]";
        for (i, _) in line.char_indices() {
            let _ = parse(&line[..i], NEW);
        }
        // deep nesting is refused, not recursed into
        let deep = format!("{}:put x{}", ":put [".repeat(20_000), "]".repeat(20_000));
        assert!(parse(&deep, NEW).is_err());
        let fine = format!("{}:put x{}", ":put [".repeat(5), "]".repeat(5));
        assert!(parse(&fine, NEW).is_ok());
    }
}
