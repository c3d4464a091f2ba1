//! Validated names: the only way a value reaches a RouterOS command line.
//!
//! RouterOS has its own scripting language in which `;`, `[`, `]`, `"`, `$`, `\`, `{`, `}` and whitespace
//! all mean something. Rather than escaping arbitrary text, every value that goes into a command is one of
//! the newtypes below, built only through `parse` / `TryFrom`, whose alphabet contains none of those
//! characters. A type that exists is therefore always safe to print into a line, quoted or not.
//!
//! A rejection is an [`InvalidValue`] naming the [`Field`] and carrying the offending value escaped for
//! display (control characters, quotes and non-ASCII look-alikes are shown as escapes, long values are
//! cut), so that logs never carry raw hostile input.

use std::fmt;

/// Which kind of value was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// A disk slot name.
    Slot,
    /// A slot-name prefix used for listing.
    SlotPrefix,
    /// An NVMe qualified name.
    Nqn,
    /// The volume base path on the appliance.
    PoolPath,
    /// The backing file of a disk.
    ImagePath,
    /// Any other file path read back from the appliance.
    FilePath,
    /// The structured comment stored on a disk.
    Comment,
    /// A size in bytes.
    Size,
    /// A TCP port.
    Port,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Slot => "slot",
            Field::SlotPrefix => "slot-prefix",
            Field::Nqn => "nqn",
            Field::PoolPath => "pool-path",
            Field::ImagePath => "image-path",
            Field::FilePath => "file-path",
            Field::Comment => "comment",
            Field::Size => "size",
            Field::Port => "port",
        })
    }
}

/// A value refused by one of the validating constructors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {value}: {reason}")]
pub struct InvalidValue {
    /// Which kind of value it was meant to be.
    pub field: Field,
    /// The offending value, escaped and possibly shortened for display.
    pub value: String,
    /// Why it was refused.
    pub reason: &'static str,
}

impl InvalidValue {
    /// Builds a rejection, escaping `raw` for display.
    pub fn new(field: Field, raw: &str, reason: &'static str) -> Self {
        InvalidValue {
            field,
            value: escape_for_display(raw),
            reason,
        }
    }
}

/// Longest part of a rejected value kept in an error message.
const DISPLAY_LIMIT: usize = 80;

/// Renders untrusted text as a quoted, ASCII-only string: quotes, backslashes, control characters and
/// every non-ASCII character are escaped, and text beyond [`DISPLAY_LIMIT`] characters is cut with a
/// note of how many bytes were dropped.
pub fn escape_for_display(raw: &str) -> String {
    escape_limited(raw, DISPLAY_LIMIT)
}

/// [`escape_for_display`] with a caller-chosen limit in characters.
pub fn escape_limited(raw: &str, limit: usize) -> String {
    let mut out = String::with_capacity(raw.len().min(limit) + 16);
    out.push('"');
    let mut shown_bytes = 0usize;
    for (count, c) in raw.chars().enumerate() {
        if count >= limit {
            break;
        }
        shown_bytes += c.len_utf8();
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            _ => out.extend(c.escape_unicode()),
        }
    }
    out.push('"');
    if shown_bytes < raw.len() {
        out.push_str(&format!("...(+{} bytes)", raw.len() - shown_bytes));
    }
    out
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Longest slot name accepted.
pub const SLOT_MAX_LEN: usize = 63;

/// A disk slot name: `[a-z0-9.-]`, 1..=63 characters, starting and ending with a letter or digit, with
/// no `..`. Accepts the Go driver's `pvc-<uuid>` slots and appliance names such as `vm-storage-001`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(String);

impl Slot {
    /// Validates `raw` as a slot name.
    pub fn parse(raw: &str) -> Result<Slot, InvalidValue> {
        let bad = |reason| Err(InvalidValue::new(Field::Slot, raw, reason));
        let bytes = raw.as_bytes();
        if bytes.is_empty() {
            return bad("must not be empty");
        }
        if bytes.len() > SLOT_MAX_LEN {
            return bad("longer than 63 characters");
        }
        if !bytes
            .iter()
            .all(|&b| is_lower_alnum(b) || b == b'-' || b == b'.')
        {
            return bad("only lowercase letters, digits, '-' and '.' are allowed");
        }
        if !bytes.first().is_some_and(|&b| is_lower_alnum(b))
            || !bytes.last().is_some_and(|&b| is_lower_alnum(b))
        {
            return bad("must start and end with a letter or digit");
        }
        if raw.contains("..") {
            return bad("must not contain '..'");
        }
        Ok(Slot(raw.to_owned()))
    }

    /// The slot name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the slot name starts with `prefix`.
    pub fn has_prefix(&self, prefix: &SlotPrefix) -> bool {
        self.0.starts_with(prefix.as_str())
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for Slot {
    type Error = InvalidValue;
    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        Slot::parse(raw)
    }
}

impl TryFrom<String> for Slot {
    type Error = InvalidValue;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Slot::parse(&raw)
    }
}

/// The start of a slot name used to list "our" disks (`pvc-`, `snap-`): `[a-z0-9-]`, 1..=62
/// characters, starting with a letter or digit. `.` is refused because the prefix is used inside a
/// RouterOS regular expression, where it would match any character.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlotPrefix(String);

impl SlotPrefix {
    /// Validates `raw` as a slot prefix.
    pub fn parse(raw: &str) -> Result<SlotPrefix, InvalidValue> {
        let bad = |reason| Err(InvalidValue::new(Field::SlotPrefix, raw, reason));
        let bytes = raw.as_bytes();
        if bytes.is_empty() {
            return bad("must not be empty");
        }
        if bytes.len() >= SLOT_MAX_LEN {
            return bad("must be shorter than a slot name");
        }
        if !bytes.iter().all(|&b| is_lower_alnum(b) || b == b'-') {
            return bad("only lowercase letters, digits and '-' are allowed");
        }
        if !bytes.first().is_some_and(|&b| is_lower_alnum(b)) {
            return bad("must start with a letter or digit");
        }
        Ok(SlotPrefix(raw.to_owned()))
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SlotPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for SlotPrefix {
    type Error = InvalidValue;
    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        SlotPrefix::parse(raw)
    }
}

/// Longest NQN allowed by the NVMe specification, in bytes.
pub const NQN_MAX_LEN: usize = 223;

/// An NVMe qualified name of the form `nqn.yyyy-mm.<reverse-domain>:<suffix>` using only
/// `[a-z0-9.:-]`, at most 223 bytes, e.g. `nqn.2000-02.com.mikrotik:pvc-…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nqn(String);

impl Nqn {
    /// Validates `raw` as an NQN.
    pub fn parse(raw: &str) -> Result<Nqn, InvalidValue> {
        let bad = |reason| Err(InvalidValue::new(Field::Nqn, raw, reason));
        if raw.len() > NQN_MAX_LEN {
            return bad("longer than 223 bytes");
        }
        if !raw
            .bytes()
            .all(|b| is_lower_alnum(b) || matches!(b, b'.' | b':' | b'-'))
        {
            return bad("only lowercase letters, digits, '.', ':' and '-' are allowed");
        }
        let Some(rest) = raw.strip_prefix("nqn.") else {
            return bad("must start with 'nqn.'");
        };
        let date = rest.as_bytes();
        let date_ok = date.len() > 8
            && date[..4].iter().all(u8::is_ascii_digit)
            && date[4] == b'-'
            && date[5..7].iter().all(u8::is_ascii_digit)
            && date[7] == b'.';
        if !date_ok {
            return bad("must have a 'yyyy-mm.' date after 'nqn.'");
        }
        let month = u32::from(date[5] - b'0') * 10 + u32::from(date[6] - b'0');
        if !(1..=12).contains(&month) {
            return bad("month must be 01..12");
        }
        let Some((domain, suffix)) = rest[8..].split_once(':') else {
            return bad("must have ':' between the domain and the suffix");
        };
        let domain_ok = domain.split('.').all(|label| {
            let l = label.as_bytes();
            !l.is_empty()
                && l.len() <= 63
                && l.iter().all(|&b| is_lower_alnum(b) || b == b'-')
                && l.first().is_some_and(|&b| is_lower_alnum(b))
                && l.last().is_some_and(|&b| is_lower_alnum(b))
        });
        if !domain_ok {
            return bad("reverse domain must be dot-separated labels of [a-z0-9-]");
        }
        let s = suffix.as_bytes();
        if s.is_empty() {
            return bad("suffix after ':' must not be empty");
        }
        if !s.first().is_some_and(|&b| is_lower_alnum(b))
            || !s.last().is_some_and(|&b| is_lower_alnum(b))
        {
            return bad("suffix must start and end with a letter or digit");
        }
        Ok(Nqn(raw.to_owned()))
    }

    /// Builds `<authority>:<slot>` from an authority such as `nqn.2000-02.com.mikrotik` and validates it.
    pub fn for_slot(authority: &str, slot: &Slot) -> Result<Nqn, InvalidValue> {
        Nqn::parse(&format!("{authority}:{slot}"))
    }

    /// The NQN text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the first `:` (for NQNs built by [`Nqn::for_slot`], the slot).
    pub fn suffix(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, s)| s)
    }
}

impl fmt::Display for Nqn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for Nqn {
    type Error = InvalidValue;
    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        Nqn::parse(raw)
    }
}

impl TryFrom<String> for Nqn {
    type Error = InvalidValue;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Nqn::parse(&raw)
    }
}

/// Longest path (without the leading slash) accepted, in bytes.
pub const PATH_MAX_LEN: usize = 200;
/// Longest single path component accepted, in bytes.
pub const COMPONENT_MAX_LEN: usize = 80;

/// Longest pool path (without the leading slash) accepted, in bytes: room is left for
/// `/<slot>.img` with the longest slot, so that every disk file path made in a pool is one
/// [`FilePath`] reads back.
pub const POOL_PATH_MAX_LEN: usize = PATH_MAX_LEN - SLOT_MAX_LEN - ".img".len() - 1;

/// Validates an appliance path and returns it normalised without a leading slash.
fn normalise_path(field: Field, raw: &str) -> Result<String, InvalidValue> {
    let bad = |reason| Err(InvalidValue::new(field, raw, reason));
    let relative = raw.strip_prefix('/').unwrap_or(raw);
    if relative.is_empty() {
        return bad("must not be empty or '/'");
    }
    if relative.len() > PATH_MAX_LEN {
        return bad("longer than 200 bytes");
    }
    for component in relative.split('/') {
        if component.is_empty() {
            return bad("must not contain empty components ('//' or a trailing '/')");
        }
        if component == "." || component == ".." {
            return bad("must not contain '.' or '..' components");
        }
        if component.len() > COMPONENT_MAX_LEN {
            return bad("a component is longer than 80 bytes");
        }
        if !component
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return bad("components may only use letters, digits, '.', '_' and '-'");
        }
    }
    Ok(relative.to_owned())
}

/// The volume base path on the appliance (`storage-pool/metal-csi`, `/raid10`): `/`-separated
/// components of `[A-Za-z0-9._-]`, none empty, `.` or `..`. Stored without the leading slash;
/// [`PoolPath::absolute`] adds it where the appliance expects one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolPath(String);

impl PoolPath {
    /// Validates `raw` (with or without one leading slash).
    pub fn parse(raw: &str) -> Result<PoolPath, InvalidValue> {
        let relative = normalise_path(Field::PoolPath, raw)?;
        if relative.len() > POOL_PATH_MAX_LEN {
            return Err(InvalidValue::new(
                Field::PoolPath,
                raw,
                "longer than 132 bytes (a disk file path inside it must fit in 200)",
            ));
        }
        Ok(PoolPath(relative))
    }

    /// The path without a leading slash, as `/file` names print it.
    pub fn relative(&self) -> &str {
        &self.0
    }

    /// The path with a leading slash, as `/disk` file paths print it.
    pub fn absolute(&self) -> String {
        format!("/{}", self.0)
    }

    /// The first component: the pool's mount point (`storage-pool` for `storage-pool/metal-csi`).
    pub fn mount_point(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for PoolPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

impl TryFrom<&str> for PoolPath {
    type Error = InvalidValue;
    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        PoolPath::parse(raw)
    }
}

/// Any path read back from the appliance (a disk's `file-path`, a `/file` entry's `name`), checked
/// with the same rules as [`PoolPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FilePath(String);

impl FilePath {
    /// Validates `raw` (with or without one leading slash).
    pub fn parse(raw: &str) -> Result<FilePath, InvalidValue> {
        normalise_path(Field::FilePath, raw).map(FilePath)
    }

    /// The path without a leading slash.
    pub fn relative(&self) -> &str {
        &self.0
    }

    /// The path with a leading slash.
    pub fn absolute(&self) -> String {
        format!("/{}", self.0)
    }
}

impl fmt::Display for FilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

impl TryFrom<&str> for FilePath {
    type Error = InvalidValue;
    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        FilePath::parse(raw)
    }
}

/// The backing file of a disk: `<pool>/<slot>.img`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImagePath {
    pool: PoolPath,
    slot: Slot,
}

impl ImagePath {
    /// The image path of `slot` inside `pool`.
    pub fn new(pool: &PoolPath, slot: &Slot) -> ImagePath {
        ImagePath {
            pool: pool.clone(),
            slot: slot.clone(),
        }
    }

    /// Parses `<pool>/<slot>.img`, with or without a leading slash.
    pub fn parse(raw: &str) -> Result<ImagePath, InvalidValue> {
        let bad = |reason| Err(InvalidValue::new(Field::ImagePath, raw, reason));
        let relative = normalise_path(Field::ImagePath, raw)?;
        let Some((dir, file)) = relative.rsplit_once('/') else {
            return bad("must be inside a pool directory");
        };
        let Some(stem) = file.strip_suffix(".img") else {
            return bad("file name must end with '.img'");
        };
        let Ok(slot) = Slot::parse(stem) else {
            return bad("file name must be '<slot>.img' with a valid slot");
        };
        let Ok(pool) = PoolPath::parse(dir) else {
            return bad("directory is not a valid pool path");
        };
        Ok(ImagePath { pool, slot })
    }

    /// The pool directory.
    pub fn pool(&self) -> &PoolPath {
        &self.pool
    }

    /// The slot the file is named after.
    pub fn slot(&self) -> &Slot {
        &self.slot
    }

    /// The path without a leading slash, as `/file` names print it.
    pub fn relative(&self) -> String {
        format!("{}/{}.img", self.pool.relative(), self.slot)
    }

    /// The path with a leading slash, as `/disk` file paths print it.
    pub fn absolute(&self) -> String {
        format!("/{}", self.relative())
    }
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.absolute())
    }
}

impl TryFrom<&str> for ImagePath {
    type Error = InvalidValue;
    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        ImagePath::parse(raw)
    }
}

impl TryFrom<&FilePath> for ImagePath {
    type Error = InvalidValue;
    fn try_from(path: &FilePath) -> Result<Self, Self::Error> {
        ImagePath::parse(path.relative())
    }
}

/// A TCP port (1..=65535).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port(u16);

impl Port {
    /// The usual NVMe/TCP port.
    pub const NVME_TCP_DEFAULT: Port = Port(4420);

    /// Accepts any non-zero port.
    pub fn new(port: u16) -> Result<Port, InvalidValue> {
        if port == 0 {
            return Err(InvalidValue::new(Field::Port, "0", "must not be zero"));
        }
        Ok(Port(port))
    }

    /// Parses a decimal port number.
    pub fn parse(raw: &str) -> Result<Port, InvalidValue> {
        if raw.is_empty() || raw.len() > 5 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidValue::new(
                Field::Port,
                raw,
                "must be a decimal number",
            ));
        }
        match raw.parse::<u16>() {
            Ok(p) => Port::new(p),
            Err(_) => Err(InvalidValue::new(Field::Port, raw, "must be at most 65535")),
        }
    }

    /// The port number.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a disk carrying a [`Comment`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommentKind {
    /// An exported volume (possibly cloned or restored from `source`).
    Volume,
    /// A snapshot: an unexported copy of `source`.
    Snapshot,
}

impl CommentKind {
    fn as_str(self) -> &'static str {
        match self {
            CommentKind::Volume => "volume",
            CommentKind::Snapshot => "snapshot",
        }
    }
}

/// The tag that starts every comment this driver writes.
pub const COMMENT_TAG: &str = "rds-csi:v1";
const COMMENT_TAG_FAMILY: &str = "rds-csi:";
const COMMENT_MAX_LEN: usize = 255;

/// The structured comment stored on a disk, because `/disk print` shows neither a copy's source nor
/// its creation time. Built only from typed fields and printed as
/// `rds-csi:v1 kind=snapshot source=<slot> created=<unix secs>` (absent fields are left out), so its
/// alphabet is that of [`Slot`] plus letters, digits, `:`, `=` and single spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Comment {
    kind: CommentKind,
    source: Option<Slot>,
    created: Option<u64>,
}

impl Comment {
    /// A comment with only a kind.
    pub fn new(kind: CommentKind) -> Comment {
        Comment {
            kind,
            source: None,
            created: None,
        }
    }

    /// A snapshot of `source`, taken at `created_unix_secs`.
    pub fn snapshot(source: Slot, created_unix_secs: u64) -> Comment {
        Comment::new(CommentKind::Snapshot)
            .with_source(source)
            .with_created(created_unix_secs)
    }

    /// Records the disk this one was copied from.
    pub fn with_source(mut self, source: Slot) -> Comment {
        self.source = Some(source);
        self
    }

    /// Records the creation time in seconds since the Unix epoch.
    pub fn with_created(mut self, created_unix_secs: u64) -> Comment {
        self.created = Some(created_unix_secs);
        self
    }

    /// What the disk is.
    pub fn kind(&self) -> CommentKind {
        self.kind
    }

    /// The disk this one was copied from, if recorded.
    pub fn source(&self) -> Option<&Slot> {
        self.source.as_ref()
    }

    /// Creation time in seconds since the Unix epoch, if recorded.
    pub fn created(&self) -> Option<u64> {
        self.created
    }

    /// True when `text` was written by some version of this driver (it starts with `rds-csi:`).
    pub fn is_ours(text: &str) -> bool {
        text.trim_start().starts_with(COMMENT_TAG_FAMILY)
    }

    /// Parses a comment written by [`Comment`]'s `Display`. Fields may come in any order, separated by
    /// any amount of whitespace; unknown or repeated fields and anything after the tag that is not
    /// `key=value` are refused.
    pub fn parse(raw: &str) -> Result<Comment, InvalidValue> {
        let bad = |reason| Err(InvalidValue::new(Field::Comment, raw, reason));
        if raw.len() > COMMENT_MAX_LEN {
            return bad("longer than 255 bytes");
        }
        let mut words = raw.split_ascii_whitespace();
        if words.next() != Some(COMMENT_TAG) {
            return bad("must start with 'rds-csi:v1'");
        }
        let mut kind = None;
        let mut source = None;
        let mut created = None;
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                return bad("fields must be key=value");
            };
            match key {
                "kind" if kind.is_none() => {
                    kind = Some(match value {
                        "volume" => CommentKind::Volume,
                        "snapshot" => CommentKind::Snapshot,
                        _ => return bad("unknown kind"),
                    });
                }
                "source" if source.is_none() => match Slot::parse(value) {
                    Ok(slot) => source = Some(slot),
                    Err(_) => return bad("source is not a valid slot"),
                },
                "created" if created.is_none() => {
                    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                        return bad("created must be decimal seconds");
                    }
                    match value.parse::<u64>() {
                        Ok(secs) => created = Some(secs),
                        Err(_) => return bad("created is out of range"),
                    }
                }
                "kind" | "source" | "created" => return bad("repeated field"),
                _ => return bad("unknown field"),
            }
        }
        let Some(kind) = kind else {
            return bad("kind is missing");
        };
        Ok(Comment {
            kind,
            source,
            created,
        })
    }
}

impl fmt::Display for Comment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{COMMENT_TAG} kind={}", self.kind.as_str())?;
        if let Some(source) = &self.source {
            write!(f, " source={source}")?;
        }
        if let Some(created) = self.created {
            write!(f, " created={created}")?;
        }
        Ok(())
    }
}

impl TryFrom<&str> for Comment {
    type Error = InvalidValue;
    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        Comment::parse(raw)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Strings that must never be accepted by any name type, each a different attack or accident.
    fn hostile() -> Vec<String> {
        let mut v: Vec<String> = [
            "pvc-a;/system reboot",
            "pvc-a]",
            "[find]",
            "pvc\"a",
            "pvc-$x",
            "pvc\\a",
            "pvc{a}",
            "pvc-a }",
            "pvc a",
            "pvc\ta",
            "pvc\na",
            "pvc\ra",
            "pvc\0a",
            "pvc-\u{0430}bc", // Cyrillic 'а'
            "pvc\u{2010}abc", // Unicode hyphen
            "pvc\u{ff0d}abc", // full-width hyphen-minus
            "pvc\u{200b}abc", // zero-width space
            "\u{0440}vc-abc", // Cyrillic 'р'
            "../etc",
            "a/../../b",
            "/../x",
            "PVC-ABC",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push("a".repeat(100 * 1024));
        v
    }

    #[test]
    fn slot_accepts_real_names() {
        for ok in [
            "pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8",
            "vm-storage-001",
            "raid10",
            "raid10-m0",
            "a",
            "snap-1.2",
            &"a".repeat(63),
        ] {
            assert_eq!(Slot::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn slot_rejects_hostile_and_malformed() {
        let mut cases = hostile();
        cases.extend(
            [
                "-pvc",
                "pvc-",
                ".pvc",
                "pvc.",
                "a..b",
                "pvc_a",
                "pvc/a",
                "pvc:a",
                &"a".repeat(64),
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        for bad in &cases {
            let err = Slot::parse(bad).expect_err(bad);
            assert_eq!(err.field, Field::Slot);
            assert!(
                err.value.is_ascii(),
                "escaped value must be ASCII: {}",
                err.value
            );
            assert!(!err.value.contains('\n') && !err.value.contains('\0'));
            assert!(
                err.value.len() < 200,
                "long values are cut: {}",
                err.value.len()
            );
        }
    }

    #[test]
    fn prefix_rules() {
        assert!(SlotPrefix::parse("pvc-").is_ok());
        assert!(SlotPrefix::parse("snap-").is_ok());
        for bad in hostile()
            .iter()
            .map(String::as_str)
            .chain(["pvc.", "-x", ".x"])
        {
            assert!(SlotPrefix::parse(bad).is_err(), "{bad:?}");
        }
        let slot = Slot::parse("pvc-1").unwrap();
        assert!(slot.has_prefix(&SlotPrefix::parse("pvc-").unwrap()));
        assert!(!slot.has_prefix(&SlotPrefix::parse("snap-").unwrap()));
    }

    #[test]
    fn nqn_accepts_real_names() {
        for ok in [
            "nqn.2000-02.com.mikrotik:pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8",
            "nqn.2026-09.com.mikrotik:rds2216.vm-storage-001",
            "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3ccabcd",
        ] {
            assert_eq!(Nqn::parse(ok).unwrap().as_str(), ok);
        }
        let slot = Slot::parse("pvc-1").unwrap();
        let nqn = Nqn::for_slot("nqn.2000-02.com.mikrotik", &slot).unwrap();
        assert_eq!(nqn.as_str(), "nqn.2000-02.com.mikrotik:pvc-1");
        assert_eq!(nqn.suffix(), "pvc-1");
    }

    #[test]
    fn nqn_rejects_hostile_and_malformed() {
        let mut cases: Vec<String> = hostile()
            .into_iter()
            .map(|h| format!("nqn.2000-02.com.mikrotik:{h}"))
            .collect();
        cases.extend(
            [
                "nqn.2000-02.com.mikrotik",
                "nqn.2000-13.com.mikrotik:x",
                "nqn.2000-00.com.mikrotik:x",
                "nqn.20a0-02.com.mikrotik:x",
                "nqn.2000-02..com:x",
                "nqn.2000-02.com.mikrotik:",
                "nqn.2000-02.com.mikrotik:-x",
                "nqn.2000-02.-com:x",
                "NQN.2000-02.com.mikrotik:x",
                "iqn.2000-02.com.mikrotik:x",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        cases.push(format!("nqn.2000-02.com.mikrotik:{}", "a".repeat(200)));
        for bad in &cases {
            let err = Nqn::parse(bad).expect_err(bad);
            assert_eq!(err.field, Field::Nqn);
            assert!(err.value.is_ascii());
        }
        // Exactly at the limit is fine.
        let base = "nqn.2000-02.com.mikrotik:";
        let max = format!("{base}{}", "a".repeat(NQN_MAX_LEN - base.len()));
        assert!(Nqn::parse(&max).is_ok());
    }

    #[test]
    fn pool_path_normalises_and_prints() {
        let p = PoolPath::parse("/storage-pool/metal-csi").unwrap();
        assert_eq!(p.relative(), "storage-pool/metal-csi");
        assert_eq!(p.absolute(), "/storage-pool/metal-csi");
        assert_eq!(p.mount_point(), "storage-pool");
        assert_eq!(p, PoolPath::parse("storage-pool/metal-csi").unwrap());
        let r = PoolPath::parse("/raid10").unwrap();
        assert_eq!(r.relative(), "raid10");
        assert_eq!(r.mount_point(), "raid10");
        assert_eq!(r.to_string(), "/raid10");
    }

    #[test]
    fn pool_path_rejects_traversal_and_hostile() {
        let mut cases = hostile();
        cases.retain(|c| c != "PVC-ABC"); // upper case is fine in paths
        cases.extend(
            [
                "/",
                "//raid10",
                "raid10/",
                "raid10//x",
                "./raid10",
                "raid10/.",
                "raid10/..",
                "/../../etc/passwd",
                "raid10/../../etc",
                "raid 10",
                "raid10;x",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        for bad in &cases {
            let err = PoolPath::parse(bad).expect_err(bad);
            assert_eq!(err.field, Field::PoolPath);
            assert!(FilePath::parse(bad).is_err());
        }
    }

    #[test]
    fn image_path_round_trip() {
        let pool = PoolPath::parse("raid10").unwrap();
        let slot = Slot::parse("vm-storage-001").unwrap();
        let img = ImagePath::new(&pool, &slot);
        assert_eq!(img.relative(), "raid10/vm-storage-001.img");
        assert_eq!(img.absolute(), "/raid10/vm-storage-001.img");
        assert_eq!(ImagePath::parse("/raid10/vm-storage-001.img").unwrap(), img);
        assert_eq!(ImagePath::parse("raid10/vm-storage-001.img").unwrap(), img);
        assert_eq!(img.slot(), &slot);
        assert_eq!(img.pool(), &pool);
        for bad in [
            "vm.img",
            "/raid10/vm",
            "/raid10/VM.img",
            "/raid10/.img",
            "/raid10/../x.img",
            "/raid10/a b.img",
        ] {
            assert!(ImagePath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn comment_round_trip_and_rejections() {
        let c = Comment::snapshot(Slot::parse("pvc-1").unwrap(), 1_739_800_000);
        let text = c.to_string();
        assert_eq!(
            text,
            "rds-csi:v1 kind=snapshot source=pvc-1 created=1739800000"
        );
        assert_eq!(Comment::parse(&text).unwrap(), c);
        assert!(Comment::is_ours(&text));
        assert!(!Comment::is_ours("backup disk"));
        let reordered = "rds-csi:v1  created=5 kind=volume";
        let v = Comment::parse(reordered).unwrap();
        assert_eq!(v.kind(), CommentKind::Volume);
        assert_eq!(v.created(), Some(5));
        assert_eq!(v.source(), None);
        for bad in [
            "",
            "rds-csi:v2 kind=volume",
            "rds-csi:v1",
            "rds-csi:v1 kind=thing",
            "rds-csi:v1 kind=volume kind=volume",
            "rds-csi:v1 kind=volume extra=1",
            "rds-csi:v1 kind=volume source=BAD",
            "rds-csi:v1 kind=volume source=a;b",
            "rds-csi:v1 kind=volume created=-1",
            "rds-csi:v1 kind=volume created=99999999999999999999999",
            "rds-csi:v1 kind=volume junk",
        ] {
            let err = Comment::parse(bad).expect_err(bad);
            assert_eq!(err.field, Field::Comment);
        }
        assert!(
            Comment::parse(&format!(
                "rds-csi:v1 kind=volume {}",
                "x".repeat(100 * 1024)
            ))
            .is_err()
        );
    }

    #[test]
    fn port_rules() {
        assert_eq!(Port::parse("4420").unwrap(), Port::NVME_TCP_DEFAULT);
        for bad in ["0", "", "65536", "-1", "44 20", "4420a", "999999"] {
            assert!(Port::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_escaping() {
        assert_eq!(escape_for_display("a\"b"), "\"a\\\"b\"");
        assert_eq!(escape_for_display("\u{0430}"), "\"\\u{430}\"");
        let long = escape_for_display(&"x".repeat(1000));
        assert!(long.ends_with("...(+920 bytes)"), "{long}");
    }
}
