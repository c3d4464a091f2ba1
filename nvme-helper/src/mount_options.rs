//! Allow-lists for user-supplied mount and mkfs options.
//!
//! Mount options come from StorageClasses and volume capabilities, mkfs options from
//! StorageClass parameters; both end up in a privileged `mount(2)` call or a root-run mkfs.
//! Only options known to be harmless are let through, per filesystem where ext4 and xfs differ,
//! and contradictions (`ro` with `rw`, `discard` with `nodiscard`, two `errors=`) are refused
//! rather than resolved silently. Mount options become `(MsFlags, data string)` for `mount(2)`;
//! mkfs options become separate argv elements, never a shell string.

use std::fmt;
use std::str::FromStr;

use nix::mount::MsFlags;

use crate::error::{HelperError, Result};

/// Longest accepted single option, in bytes.
pub const MAX_OPTION_BYTES: usize = 256;
/// Longest accepted mount data string (one page less the NUL).
pub const MAX_DATA_BYTES: usize = 4095;

/// A filesystem the helper can format and mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsType {
    /// ext4.
    Ext4,
    /// XFS.
    Xfs,
}

impl FsType {
    /// The kernel / mkfs name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ext4 => "ext4",
            Self::Xfs => "xfs",
        }
    }
}

impl fmt::Display for FsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FsType {
    type Err = HelperError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ext4" => Ok(Self::Ext4),
            "xfs" => Ok(Self::Xfs),
            other => Err(HelperError::UnsupportedFilesystem {
                fs: other.to_string(),
            }),
        }
    }
}

/// Validated mount options, ready for `mount(2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Generic VFS flags.
    pub flags: MsFlags,
    /// Filesystem-specific data, comma-separated (empty when there is none).
    pub data: String,
}

/// Options that cannot be combined with each other.
const EXCLUSIVE: &[&[&str]] = &[
    &["ro", "rw"],
    &["noatime", "relatime", "strictatime"],
    &["discard", "nodiscard"],
    &["barrier", "nobarrier"],
    &["noquota", "usrquota"],
    &["noquota", "grpquota"],
    &["noquota", "prjquota"],
];

fn vfs_flag(name: &str) -> Option<MsFlags> {
    Some(match name {
        "ro" => MsFlags::MS_RDONLY,
        "rw" => MsFlags::empty(),
        "noatime" => MsFlags::MS_NOATIME,
        "nodiratime" => MsFlags::MS_NODIRATIME,
        "relatime" => MsFlags::MS_RELATIME,
        "strictatime" => MsFlags::MS_STRICTATIME,
        "lazytime" => MsFlags::MS_LAZYTIME,
        "nosuid" => MsFlags::MS_NOSUID,
        "nodev" => MsFlags::MS_NODEV,
        "noexec" => MsFlags::MS_NOEXEC,
        "sync" => MsFlags::MS_SYNCHRONOUS,
        "dirsync" => MsFlags::MS_DIRSYNC,
        _ => return None,
    })
}

#[derive(Clone, Copy)]
enum Kind {
    Bare,
    Choice(&'static [&'static str]),
    Number { min: u64, max: u64 },
    LogBufSize,
    AllocSize,
}

struct DataOption {
    name: &'static str,
    kind: Kind,
    ext4: bool,
    xfs: bool,
}

const fn opt(name: &'static str, kind: Kind, ext4: bool, xfs: bool) -> DataOption {
    DataOption {
        name,
        kind,
        ext4,
        xfs,
    }
}

const DATA_OPTIONS: &[DataOption] = &[
    opt("discard", Kind::Bare, true, true),
    opt("nodiscard", Kind::Bare, true, true),
    opt("noquota", Kind::Bare, true, true),
    opt("usrquota", Kind::Bare, true, true),
    opt("grpquota", Kind::Bare, true, true),
    opt("prjquota", Kind::Bare, true, true),
    opt(
        "errors",
        Kind::Choice(&["continue", "remount-ro", "panic"]),
        true,
        false,
    ),
    opt("commit", Kind::Number { min: 0, max: 3600 }, true, false),
    opt(
        "data",
        Kind::Choice(&["ordered", "writeback", "journal"]),
        true,
        false,
    ),
    opt("barrier", Kind::Bare, true, false),
    opt("nobarrier", Kind::Bare, true, false),
    opt("nouuid", Kind::Bare, false, true),
    opt("inode64", Kind::Bare, false, true),
    opt("logbsize", Kind::LogBufSize, false, true),
    opt("allocsize", Kind::AllocSize, false, true),
    opt("largeio", Kind::Bare, false, true),
    opt("swalloc", Kind::Bare, false, true),
];

/// Checks one filesystem-specific option; returns the reason when it is refused.
fn check_data_option(fs: FsType, token: &str) -> std::result::Result<(), String> {
    let (name, value) = match token.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (token, None),
    };
    let Some(spec) = DATA_OPTIONS.iter().find(|o| o.name == name) else {
        return Err("it is not on the allow-list".into());
    };
    let supported = match fs {
        FsType::Ext4 => spec.ext4,
        FsType::Xfs => spec.xfs,
    };
    if !supported {
        let other = if spec.ext4 { "ext4" } else { "xfs" };
        return Err(format!("it is only accepted for {other}"));
    }
    match (spec.kind, value) {
        (Kind::Bare, None) => Ok(()),
        (Kind::Bare, Some(_)) => Err(format!("{name} takes no value")),
        (_, None) => Err(format!("{name} needs a value")),
        (Kind::Choice(choices), Some(v)) => {
            if choices.contains(&v) {
                Ok(())
            } else {
                Err(format!("{v:?} is not one of {}", choices.join(", ")))
            }
        }
        (Kind::Number { min, max }, Some(v)) => match parse_number(v) {
            Some(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(format!("{v:?} is not a number between {min} and {max}")),
        },
        (Kind::LogBufSize, Some(v)) => {
            let ok = v
                .strip_suffix('k')
                .and_then(parse_number)
                .is_some_and(|n| [16, 32, 64, 128, 256].contains(&n));
            if ok {
                Ok(())
            } else {
                Err(format!("{v:?} is not one of 16k, 32k, 64k, 128k, 256k"))
            }
        }
        (Kind::AllocSize, Some(v)) => match parse_size(v) {
            Some(bytes) if bytes.is_power_of_two() && (4096..=1 << 30).contains(&bytes) => Ok(()),
            _ => Err(format!(
                "{v:?} is not a power of two between 4k and 1g (digits with an optional k, m or g)"
            )),
        },
    }
}

/// `12` → 12; no sign, no spaces, no leading `+`.
fn parse_number(text: &str) -> Option<u64> {
    crate::connect_spec::parse_decimal(text)
}

/// `64k`, `1m`, `4096` → bytes.
fn parse_size(text: &str) -> Option<u64> {
    let (digits, multiplier) = match text.as_bytes().last()? {
        b'k' => (text.get(..text.len() - 1)?, 1u64 << 10),
        b'm' => (text.get(..text.len() - 1)?, 1 << 20),
        b'g' => (text.get(..text.len() - 1)?, 1 << 30),
        _ => (text, 1),
    };
    parse_number(digits)?.checked_mul(multiplier)
}

fn conflicts(a: &str, b: &str) -> bool {
    if a == b {
        return false;
    }
    let key = |s: &str| s.split_once('=').map(|(k, _)| k.to_string());
    if let (Some(ka), Some(kb)) = (key(a), key(b))
        && ka == kb
    {
        return true;
    }
    EXCLUSIVE
        .iter()
        .any(|group| group.contains(&a) && group.contains(&b))
}

/// Validates user mount options for `fs`. Each entry may itself hold comma-separated options;
/// empty pieces are ignored, exact repeats are collapsed, anything else unknown is refused.
pub fn parse_mount_options<S: AsRef<str>>(fs: FsType, options: &[S]) -> Result<MountOptions> {
    let reject = |option: &str, reason: String| HelperError::InvalidMountOption {
        fs: fs.as_str(),
        option: option.to_string(),
        reason,
    };
    let mut flags = MsFlags::empty();
    let mut accepted: Vec<&str> = Vec::new();
    let mut data: Vec<&str> = Vec::new();
    for entry in options {
        for token in entry.as_ref().split(',').map(str::trim) {
            if token.is_empty() {
                continue;
            }
            if token.len() > MAX_OPTION_BYTES {
                return Err(reject(
                    token,
                    format!("it is longer than {MAX_OPTION_BYTES} bytes"),
                ));
            }
            if let Some(earlier) = accepted.iter().find(|a| conflicts(a, token)) {
                return Err(reject(token, format!("it contradicts {earlier:?}")));
            }
            if accepted.contains(&token) {
                continue;
            }
            if let Some(flag) = vfs_flag(token) {
                flags |= flag;
            } else {
                check_data_option(fs, token).map_err(|reason| reject(token, reason))?;
                data.push(token);
            }
            accepted.push(token);
        }
    }
    let data = data.join(",");
    if data.len() > MAX_DATA_BYTES {
        return Err(reject(
            &data,
            format!("together they are longer than {MAX_DATA_BYTES} bytes"),
        ));
    }
    Ok(MountOptions { flags, data })
}

type ValueCheck = fn(&str) -> std::result::Result<String, String>;

fn check_choice_list(
    value: &str,
    what: &str,
    allowed: impl Fn(&str, Option<&str>) -> std::result::Result<(), String>,
) -> std::result::Result<String, String> {
    let mut seen: Vec<&str> = Vec::new();
    for item in value.split(',') {
        if item.is_empty() {
            return Err(format!("the {what} list has an empty entry"));
        }
        let (key, val) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (item, None),
        };
        allowed(key, val)?;
        let base = key.trim_start_matches('^');
        if seen.contains(&base) {
            return Err(format!("{base} is given more than once"));
        }
        seen.push(base);
    }
    Ok(value.to_string())
}

const EXT4_FEATURES: &[&str] = &[
    "64bit",
    "dir_index",
    "dir_nlink",
    "encrypt",
    "ext_attr",
    "extent",
    "extra_isize",
    "filetype",
    "flex_bg",
    "has_journal",
    "huge_file",
    "inline_data",
    "large_dir",
    "large_file",
    "metadata_csum",
    "metadata_csum_seed",
    "orphan_file",
    "project",
    "quota",
    "resize_inode",
    "sparse_super",
    "stable_inodes",
    "uninit_bg",
    "verity",
];

fn ext4_features(value: &str) -> std::result::Result<String, String> {
    check_choice_list(value, "feature", |key, val| {
        if val.is_some() {
            return Err(format!("feature {key} takes no value"));
        }
        let name = key.strip_prefix('^').unwrap_or(key);
        if EXT4_FEATURES.contains(&name) {
            Ok(())
        } else {
            Err(format!("feature {name:?} is not on the allow-list"))
        }
    })
}

fn ext4_extended(value: &str) -> std::result::Result<String, String> {
    check_choice_list(value, "extended option", |key, val| {
        let bool_like = |v: Option<&str>, allowed: &[&str]| match v {
            Some(v) if allowed.contains(&v) => Ok(()),
            _ => Err(format!("{key} needs one of {}", allowed.join(", "))),
        };
        match key {
            "discard" | "nodiscard" => match val {
                None => Ok(()),
                Some(_) => Err(format!("{key} takes no value")),
            },
            "lazy_itable_init"
            | "lazy_journal_init"
            | "packed_meta_blocks"
            | "assume_storage_prezeroed" => bool_like(val, &["0", "1"]),
            "num_backup_sb" => bool_like(val, &["0", "1", "2"]),
            "stride" | "stripe_width" | "stripe-width" => match val.and_then(parse_number) {
                Some(n) if (1..=1 << 22).contains(&n) => Ok(()),
                _ => Err(format!("{key} needs a number between 1 and {}", 1 << 22)),
            },
            "root_owner" => {
                let ok = val.and_then(|v| v.split_once(':')).is_some_and(|(u, g)| {
                    crate::connect_spec::parse_decimal::<u32>(u).is_some()
                        && crate::connect_spec::parse_decimal::<u32>(g).is_some()
                });
                if ok {
                    Ok(())
                } else {
                    Err("root_owner needs uid:gid (numbers)".into())
                }
            }
            other => Err(format!(
                "extended option {other:?} is not on the allow-list"
            )),
        }
    })
}

fn number_in(value: &str, min: u64, max: u64) -> std::result::Result<String, String> {
    match parse_number(value) {
        Some(n) if (min..=max).contains(&n) => Ok(n.to_string()),
        _ => Err(format!("{value:?} is not a number between {min} and {max}")),
    }
}

fn power_of_two_in(value: &str, min: u64, max: u64) -> std::result::Result<String, String> {
    match parse_number(value) {
        Some(n) if n.is_power_of_two() && (min..=max).contains(&n) => Ok(n.to_string()),
        _ => Err(format!(
            "{value:?} is not a power of two between {min} and {max}"
        )),
    }
}

fn label(value: &str, max: usize) -> std::result::Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= max
        && !value.starts_with('-')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "a label is 1 to {max} characters of A-Z a-z 0-9 . _ - and does not start with '-'"
        ))
    }
}

fn xfs_single_suboption(
    value: &str,
    key: &str,
    min: u64,
    max: u64,
) -> std::result::Result<String, String> {
    match value.split_once('=') {
        Some((k, v)) if k == key => power_of_two_in(v, min, max).map(|n| format!("{key}={n}")),
        _ => Err(format!("only {key}=<n> is accepted")),
    }
}

const XFS_META: &[&str] = &[
    "crc",
    "reflink",
    "finobt",
    "rmapbt",
    "bigtime",
    "inobtcount",
];

fn xfs_metadata(value: &str) -> std::result::Result<String, String> {
    check_choice_list(value, "metadata option", |key, val| {
        if !XFS_META.contains(&key) {
            return Err(format!("metadata option {key:?} is not on the allow-list"));
        }
        match val {
            Some("0" | "1") => Ok(()),
            _ => Err(format!("{key} needs 0 or 1")),
        }
    })
}

fn mkfs_check(fs: FsType, flag: &str) -> Option<ValueCheck> {
    Some(match (fs, flag) {
        (FsType::Ext4, "-O") => ext4_features,
        (FsType::Ext4, "-E") => ext4_extended,
        (FsType::Ext4, "-m") => |v| number_in(v, 0, 50),
        (FsType::Ext4, "-i") => |v| number_in(v, 1024, 64 << 20),
        (FsType::Ext4, "-b") => |v| power_of_two_in(v, 1024, 65536),
        (FsType::Ext4, "-L") => |v| label(v, 16),
        (FsType::Xfs, "-m") => xfs_metadata,
        (FsType::Xfs, "-i") => |v| xfs_single_suboption(v, "size", 256, 2048),
        (FsType::Xfs, "-b") => |v| xfs_single_suboption(v, "size", 512, 65536),
        (FsType::Xfs, "-L") => |v| label(v, 12),
        _ => return None,
    })
}

/// Validates user mkfs options (whitespace-separated, each flag followed by its value) for `fs`
/// and returns them as argv elements. Quoting is not interpreted: a value cannot contain spaces.
pub fn parse_mkfs_options(fs: FsType, options: &str) -> Result<Vec<String>> {
    let reject = |option: String, reason: String| HelperError::InvalidMkfsOption {
        fs: fs.as_str(),
        option,
        reason,
    };
    let mut argv = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut tokens = options.split_ascii_whitespace();
    while let Some(flag) = tokens.next() {
        let Some(check) = mkfs_check(fs, flag) else {
            return Err(reject(
                flag.to_string(),
                "it is not on the allow-list".into(),
            ));
        };
        if seen.contains(&flag) {
            return Err(reject(
                flag.to_string(),
                "it is given more than once".into(),
            ));
        }
        seen.push(flag);
        let Some(value) = tokens.next() else {
            return Err(reject(flag.to_string(), "it needs a value".into()));
        };
        if value.len() > MAX_OPTION_BYTES {
            return Err(reject(
                format!("{flag} {value}"),
                format!("the value is longer than {MAX_OPTION_BYTES} bytes"),
            ));
        }
        let canonical = check(value).map_err(|reason| reject(format!("{flag} {value}"), reason))?;
        argv.push(flag.to_string());
        argv.push(canonical);
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn mount(fs: FsType, opts: &[&str]) -> Result<MountOptions> {
        parse_mount_options(fs, opts)
    }

    fn refused_option(err: HelperError) -> (String, String) {
        match err {
            HelperError::InvalidMountOption { option, reason, .. }
            | HelperError::InvalidMkfsOption { option, reason, .. } => (option, reason),
            other => panic!("expected an option error, got {other:?}"),
        }
    }

    #[test]
    fn flags_and_data_are_split() {
        let m = mount(
            FsType::Ext4,
            &["ro,noatime", "nodev", "errors=remount-ro", "discard"],
        )
        .unwrap();
        assert_eq!(
            m.flags,
            MsFlags::MS_RDONLY | MsFlags::MS_NOATIME | MsFlags::MS_NODEV
        );
        assert_eq!(m.data, "errors=remount-ro,discard");

        let all = mount(
            FsType::Xfs,
            &[
                "rw",
                "nodiratime",
                "lazytime",
                "nosuid",
                "noexec",
                "sync",
                "dirsync",
                "strictatime",
            ],
        )
        .unwrap();
        assert_eq!(
            all.flags,
            MsFlags::MS_NODIRATIME
                | MsFlags::MS_LAZYTIME
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NOEXEC
                | MsFlags::MS_SYNCHRONOUS
                | MsFlags::MS_DIRSYNC
                | MsFlags::MS_STRICTATIME
        );
        assert_eq!(all.data, "");
        assert_eq!(
            mount(FsType::Ext4, &["relatime"]).unwrap().flags,
            MsFlags::MS_RELATIME
        );
        let empty: [&str; 0] = [];
        assert_eq!(
            mount(FsType::Ext4, &empty).unwrap(),
            MountOptions {
                flags: MsFlags::empty(),
                data: String::new()
            }
        );
    }

    #[test]
    fn per_filesystem_data_options() {
        let ext4 = mount(
            FsType::Ext4,
            &[
                "commit=30",
                "data=journal",
                "nobarrier",
                "usrquota",
                "grpquota",
                "prjquota",
            ],
        )
        .unwrap();
        assert_eq!(
            ext4.data,
            "commit=30,data=journal,nobarrier,usrquota,grpquota,prjquota"
        );

        let xfs = mount(
            FsType::Xfs,
            &[
                "nouuid,inode64",
                "logbsize=256k",
                "allocsize=64k",
                "largeio",
                "swalloc",
                "noquota",
            ],
        )
        .unwrap();
        assert_eq!(
            xfs.data,
            "nouuid,inode64,logbsize=256k,allocsize=64k,largeio,swalloc,noquota"
        );
        assert_eq!(
            mount(FsType::Xfs, &["allocsize=1g"]).unwrap().data,
            "allocsize=1g"
        );
        assert_eq!(
            mount(FsType::Xfs, &["allocsize=4096"]).unwrap().data,
            "allocsize=4096"
        );

        for (fs, option, why) in [
            (FsType::Xfs, "errors=panic", "only accepted for ext4"),
            (FsType::Xfs, "barrier", "only accepted for ext4"),
            (FsType::Xfs, "data=ordered", "only accepted for ext4"),
            (FsType::Ext4, "nouuid", "only accepted for xfs"),
            (FsType::Ext4, "logbsize=32k", "only accepted for xfs"),
        ] {
            let (got, reason) = refused_option(mount(fs, &[option]).unwrap_err());
            assert_eq!(got, option);
            assert!(reason.contains(why), "{option}: {reason}");
        }
    }

    #[test]
    fn unknown_or_malformed_options_are_named() {
        for (fs, option) in [
            (FsType::Ext4, "suid"),
            (FsType::Ext4, "dev"),
            (FsType::Ext4, "exec"),
            (FsType::Ext4, "remount"),
            (FsType::Ext4, "bind"),
            (FsType::Ext4, "context=system_u:object_r:x"),
            (FsType::Ext4, "errors=ignore"),
            (FsType::Ext4, "errors"),
            (FsType::Ext4, "discard=1"),
            (FsType::Ext4, "commit=-1"),
            (FsType::Ext4, "commit=3601"),
            (FsType::Ext4, "commit=1e3"),
            (FsType::Ext4, "data="),
            (FsType::Ext4, "NOATIME"),
            (FsType::Xfs, "logbsize=48k"),
            (FsType::Xfs, "logbsize=32768"),
            (FsType::Xfs, "allocsize=3k"),
            (FsType::Xfs, "allocsize=2g"),
            (FsType::Xfs, "allocsize=2048"),
            (FsType::Xfs, "allocsize=k"),
            (FsType::Xfs, "allocsize=99999999999999999999"),
        ] {
            let (got, _) = refused_option(mount(fs, &[option]).unwrap_err());
            assert_eq!(got, option);
        }
        let long = "a".repeat(MAX_OPTION_BYTES + 1);
        assert!(mount(FsType::Ext4, &[long.as_str()]).is_err());
    }

    #[test]
    fn contradictions_are_refused_and_repeats_collapsed() {
        for pair in [
            ["ro", "rw"],
            ["noatime", "relatime"],
            ["strictatime", "noatime"],
            ["discard", "nodiscard"],
            ["barrier", "nobarrier"],
            ["noquota", "usrquota"],
            ["errors=panic", "errors=continue"],
            ["commit=5", "commit=10"],
        ] {
            let (option, reason) = refused_option(mount(FsType::Ext4, &pair).unwrap_err());
            assert_eq!(option, pair[1]);
            assert!(reason.contains(pair[0]), "{pair:?}: {reason}");
        }
        let m = mount(FsType::Ext4, &["discard,discard", "ro", "ro", " ", ",,"]).unwrap();
        assert_eq!(m.data, "discard");
        assert_eq!(m.flags, MsFlags::MS_RDONLY);
    }

    #[test]
    fn fs_type_parses_only_supported_names() {
        assert_eq!("ext4".parse::<FsType>().unwrap(), FsType::Ext4);
        assert_eq!("xfs".parse::<FsType>().unwrap(), FsType::Xfs);
        for bad in ["ext3", "btrfs", "XFS", ""] {
            let err = bad.parse::<FsType>().unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert!(err.to_string().contains(&format!("{bad:?}")));
        }
    }

    #[test]
    fn ext4_mkfs_options_become_argv() {
        let argv = parse_mkfs_options(
            FsType::Ext4,
            "-O ^has_journal,metadata_csum,64bit  -E lazy_itable_init=0,discard,stride=16,root_owner=1000:1000 -m 0 -i 16384 -b 4096 -L data-01",
        )
        .unwrap();
        assert_eq!(
            argv,
            [
                "-O",
                "^has_journal,metadata_csum,64bit",
                "-E",
                "lazy_itable_init=0,discard,stride=16,root_owner=1000:1000",
                "-m",
                "0",
                "-i",
                "16384",
                "-b",
                "4096",
                "-L",
                "data-01"
            ]
        );
        assert!(parse_mkfs_options(FsType::Ext4, "").unwrap().is_empty());
    }

    #[test]
    fn xfs_mkfs_options_become_argv() {
        let argv = parse_mkfs_options(
            FsType::Xfs,
            "-m crc=1,reflink=1 -i size=512 -b size=4096 -L vmdata",
        )
        .unwrap();
        assert_eq!(
            argv,
            [
                "-m",
                "crc=1,reflink=1",
                "-i",
                "size=512",
                "-b",
                "size=4096",
                "-L",
                "vmdata"
            ]
        );
    }

    #[test]
    fn mkfs_options_outside_the_allow_list_are_named() {
        for (fs, text, option) in [
            (FsType::Ext4, "-F", "-F"),
            (FsType::Ext4, "-O", "-O"),
            (FsType::Ext4, "-O bogus_feature", "-O bogus_feature"),
            (
                FsType::Ext4,
                "-O has_journal,^has_journal",
                "-O has_journal,^has_journal",
            ),
            (FsType::Ext4, "-O has_journal=1", "-O has_journal=1"),
            (FsType::Ext4, "-O a,,b", "-O a,,b"),
            (FsType::Ext4, "-E offset=4096", "-E offset=4096"),
            (
                FsType::Ext4,
                "-E lazy_itable_init=2",
                "-E lazy_itable_init=2",
            ),
            (
                FsType::Ext4,
                "-E root_owner=root:root",
                "-E root_owner=root:root",
            ),
            (FsType::Ext4, "-m 51", "-m 51"),
            (FsType::Ext4, "-m -1", "-m -1"),
            (FsType::Ext4, "-i 512", "-i 512"),
            (FsType::Ext4, "-b 3000", "-b 3000"),
            (
                FsType::Ext4,
                "-L this-label-is-too-long",
                "-L this-label-is-too-long",
            ),
            (FsType::Ext4, "-L -f", "-L -f"),
            (FsType::Ext4, "-L a;rm", "-L a;rm"),
            (FsType::Ext4, "-m 1 -m 2", "-m"),
            (FsType::Ext4, "-m crc=1", "-m crc=1"),
            (FsType::Xfs, "-O metadata_csum", "-O"),
            (FsType::Xfs, "-m crc=2", "-m crc=2"),
            (FsType::Xfs, "-m uuid=1", "-m uuid=1"),
            (FsType::Xfs, "-m crc=1,crc=0", "-m crc=1,crc=0"),
            (FsType::Xfs, "-i maxpct=5", "-i maxpct=5"),
            (FsType::Xfs, "-i size=4096", "-i size=4096"),
            (FsType::Xfs, "-b size=1000", "-b size=1000"),
            (FsType::Xfs, "-L thirteen-char", "-L thirteen-char"),
            (FsType::Xfs, "-f", "-f"),
            (FsType::Xfs, "/dev/sda", "/dev/sda"),
        ] {
            let (got, reason) = refused_option(parse_mkfs_options(fs, text).unwrap_err());
            assert_eq!(got, option, "{fs} {text:?}: {reason}");
        }
    }
}
