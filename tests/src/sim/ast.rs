//! The parsed form of a command line: what the parser produces and the engine runs. Values are
//! already checked against their parameter's type, so the engine never sees `maybe` for a
//! yes/no parameter or `10X` for a size.

/// A menu that holds items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Menu {
    Disk,
    File,
}

/// A whole command line: commands separated by `;` or line breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub commands: Vec<Cmd>,
}

/// One command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// A bare menu path (`/disk`): changes the current menu, prints nothing.
    Nothing,
    DiskAdd(DiskProps),
    DiskSet {
        target: Expr,
        props: DiskProps,
    },
    Print {
        menu: Menu,
        print: Print,
    },
    Find {
        menu: Menu,
        cond: Option<Cond>,
    },
    Monitor {
        target: Expr,
    },
    Remove {
        menu: Menu,
        target: Expr,
    },
    SystemResourcePrint,
    Put(Expr),
    Serialize(Expr),
}

/// A value: a literal or the result of a `[bracketed]` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Lit(String),
    Sub(Box<Cmd>),
}

/// Properties given to `/disk add` and `/disk set`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskProps {
    pub kind: Option<String>,
    pub slot: Option<String>,
    pub file_path: Option<String>,
    pub file_size: Option<u64>,
    pub copy_from: Option<Expr>,
    pub export: Option<bool>,
    pub port: Option<u16>,
    pub nqn: Option<String>,
    pub allow_host: Option<String>,
    pub comment: Option<String>,
    pub mount_filesystem: Option<bool>,
}

/// How a print shows its items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PrintMode {
    /// `print` or `print detail`.
    #[default]
    Detail,
    /// `print terse`: one line per item.
    Terse,
    /// `print count-only`: the number of items.
    CountOnly,
    /// `print as-value`: a list value, nothing printed.
    AsValue,
}

/// A `print` command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Print {
    pub mode: PrintMode,
    pub cond: Option<Cond>,
}

/// A comparison operator in a `where` clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    NotEq,
    Match,
}

/// A `where` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    Cmp { key: String, op: Op, value: String },
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

/// The commands a fault rule or a latency setting can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    DiskAdd,
    DiskCopy,
    DiskPrint,
    DiskSet,
    DiskRemove,
    FileRemove,
    FilePrint,
    Monitor,
    System,
}

impl Verb {
    pub const ALL: [Verb; 9] = [
        Verb::DiskAdd,
        Verb::DiskCopy,
        Verb::DiskPrint,
        Verb::DiskSet,
        Verb::DiskRemove,
        Verb::FileRemove,
        Verb::FilePrint,
        Verb::Monitor,
        Verb::System,
    ];

    /// The name used on the command line and in `faults.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::DiskAdd => "disk-add",
            Verb::DiskCopy => "disk-copy",
            Verb::DiskPrint => "disk-print",
            Verb::DiskSet => "disk-set",
            Verb::DiskRemove => "disk-remove",
            Verb::FileRemove => "file-remove",
            Verb::FilePrint => "file-print",
            Verb::Monitor => "monitor",
            Verb::System => "system",
        }
    }

    /// The verb called `name`, if any.
    pub fn parse(name: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.as_str() == name)
    }
}

impl std::fmt::Display for Verb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Cmd {
    /// The verb of this command, looking through `:put` and `:serialize` wrappers.
    pub fn verb(&self) -> Option<Verb> {
        match self {
            Cmd::Nothing => None,
            Cmd::DiskAdd(p) if p.copy_from.is_some() => Some(Verb::DiskCopy),
            Cmd::DiskAdd(_) => Some(Verb::DiskAdd),
            Cmd::DiskSet { .. } => Some(Verb::DiskSet),
            Cmd::Print {
                menu: Menu::Disk, ..
            }
            | Cmd::Find {
                menu: Menu::Disk, ..
            } => Some(Verb::DiskPrint),
            Cmd::Print {
                menu: Menu::File, ..
            }
            | Cmd::Find {
                menu: Menu::File, ..
            } => Some(Verb::FilePrint),
            Cmd::Monitor { .. } => Some(Verb::Monitor),
            Cmd::Remove {
                menu: Menu::File, ..
            } => Some(Verb::FileRemove),
            Cmd::Remove {
                menu: Menu::Disk, ..
            } => Some(Verb::DiskRemove),
            Cmd::SystemResourcePrint => Some(Verb::System),
            Cmd::Put(e) | Cmd::Serialize(e) => e.verb(),
        }
    }
}

impl Expr {
    fn verb(&self) -> Option<Verb> {
        match self {
            Expr::Lit(_) => None,
            Expr::Sub(c) => c.verb(),
        }
    }
}

impl Script {
    /// The verb of the first command that has one.
    pub fn verb(&self) -> Option<Verb> {
        self.commands.iter().find_map(Cmd::verb)
    }
}
