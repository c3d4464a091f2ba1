//! `routeros_commands`: the validators of every value that reaches a RouterOS command line (slot
//! names, slot prefixes, NQNs, pool and image paths, sizes, ports, comments, page tokens) and the
//! command builders that use them.
//!
//! Input fields: slot, source slot, slot prefix, NQN, NQN authority, pool path, image path, file
//! path, size, port, comment, page token, a comma-separated slot list and a page size. Every value
//! a validator accepts goes into every command that takes it; the others are replaced by plain
//! placeholders. Oracles:
//! - the command line has exactly the RouterOS syntax (quotes, brackets, `=`, spaces, ...) of the
//!   same command built from placeholders, and no `$`, `;`, `\`, `{`, `}`, control character,
//!   non-ASCII or `.`/`..` path segment at all; a slot prefix in a regular expression holds no
//!   regular-expression metacharacter;
//! - accepted values round-trip (parse of the printed form gives the same value), paths are
//!   normalised, every image path made in an accepted pool reads back as a file path and an image
//!   path, sizes round up and never down, an NQN built for a slot ends with that slot and is
//!   also accepted by the node helper;
//! - a page token is accepted only as a managed slot, and paging through a listing returns every
//!   item once, in order;
//! - rejections are log-safe (escaped ASCII, bounded).

use std::collections::BTreeMap;

use rds_gateway::paging::{paginate, parse_token};
use rds_gateway::routeros::Command;
use rds_gateway::routeros::command::{
    DiskAdd, DiskCopy, DiskList, DiskMonitorTraffic, DiskPrint, DiskRemove, DiskResize, FilePrint,
    FileRemove, Format, NvmeExport, PoolCapacityQuery,
};
use rds_gateway::routeros::names::{
    Comment, CommentKind, FilePath, ImagePath, InvalidValue, Nqn, PoolPath, Port, Slot, SlotPrefix,
};
use rds_gateway::routeros::size::{Bytes, GRANULARITY, round_up};
use rds_gateway::scope::Scope;

use crate::input::Fields;
use crate::oracle::{LogRule, assert_command_line_clean, assert_log_safe, assert_same_syntax};

/// Tokens of the values that reach command lines.
pub const DICTIONARY: &[&[u8]] = &[
    b"pvc-11111111-2222-3333-4444-555555555555",
    b"snap-11111111-2222-3333-4444-555555555555-at-0123456789",
    b"vm-storage-001",
    b"raid10",
    b"storage-pool/metal-csi",
    b"/storage-pool/metal-csi/",
    b".img",
    b"nqn.2000-02.com.mikrotik",
    b"nqn.2026-09.com.mikrotik:rds2216.",
    b"nqn.2014-08.org.nvmexpress:uuid:",
    b"rds-csi:v1",
    b"rds-csi:v1 kind=volume",
    b"rds-csi:v1 kind=snapshot source=pvc-1 created=1700000000",
    b" source=",
    b" created=",
    b"4420",
    b"1073741824",
    b"1.5GiB",
    b"1T",
];

const PLACEHOLDER_NQN: &str = "nqn.2000-01.a:a";

/// Every value one command set is built from.
#[derive(Debug, Clone)]
struct Values {
    slot: Slot,
    source: Slot,
    prefix: SlotPrefix,
    nqn: Nqn,
    pool: PoolPath,
    image: ImagePath,
    size: Bytes,
    port: Port,
    comment: Comment,
}

fn plain<T>(what: &str, value: Result<T, InvalidValue>) -> T {
    value.unwrap_or_else(|e| panic!("placeholder {what} is valid: {e}"))
}

/// The placeholder values, with a comment of the same shape as `comment`.
fn placeholders(comment: &Comment) -> Values {
    let slot = plain("slot", Slot::parse("a"));
    let pool = plain("pool", PoolPath::parse("p"));
    let mut placeholder_comment = Comment::new(comment.kind());
    if comment.source().is_some() {
        placeholder_comment = placeholder_comment.with_source(plain("slot", Slot::parse("c")));
    }
    if comment.created().is_some() {
        placeholder_comment = placeholder_comment.with_created(0);
    }
    Values {
        image: ImagePath::new(&pool, &slot),
        source: plain("slot", Slot::parse("b")),
        prefix: plain("prefix", SlotPrefix::parse("a")),
        nqn: plain("nqn", Nqn::parse(PLACEHOLDER_NQN)),
        size: GRANULARITY,
        port: plain("port", Port::new(1)),
        comment: placeholder_comment,
        slot,
        pool,
    }
}

/// Every command line built from `v`, by name (a builder that refuses its values is left out).
fn lines(v: &Values) -> Vec<(&'static str, Option<String>)> {
    let export = NvmeExport {
        port: v.port,
        nqn: v.nqn.clone(),
    };
    let mut out: Vec<(&'static str, Option<String>)> = vec![
        (
            "disk-add",
            DiskAdd::new(&v.pool, &v.slot, v.size, export.clone())
                .ok()
                .map(|c| c.with_comment(v.comment.clone()).to_line()),
        ),
        (
            "disk-copy",
            DiskCopy::new(&v.source, &v.pool, &v.slot)
                .ok()
                .map(|c| c.to_line()),
        ),
        (
            "disk-copy-exported",
            DiskCopy::new(&v.source, &v.pool, &v.slot)
                .ok()
                .map(|c| c.exported(export).with_comment(v.comment.clone()).to_line()),
        ),
        (
            "disk-resize",
            DiskResize::new(&v.slot, v.size).ok().map(|c| c.to_line()),
        ),
        ("disk-remove", Some(DiskRemove::new(&v.slot).to_line())),
        ("file-remove", Some(FileRemove::new(&v.image).to_line())),
        (
            "file-remove-built",
            Some(FileRemove::new(&ImagePath::new(&v.pool, &v.slot)).to_line()),
        ),
        (
            "disk-monitor-traffic",
            Some(DiskMonitorTraffic::new(&v.slot).to_line()),
        ),
    ];
    for format in [Format::Text, Format::Json] {
        out.push((
            "disk-print",
            Some(DiskPrint::new(&v.slot).format(format).to_line()),
        ));
        out.push((
            "disk-list",
            Some(DiskList::new(&v.prefix).format(format).to_line()),
        ));
        out.push((
            "file-print-image",
            Some(FilePrint::image(&v.image).format(format).to_line()),
        ));
        out.push((
            "file-print-directory",
            Some(FilePrint::directory(&v.pool).format(format).to_line()),
        ));
        out.push((
            "pool-capacity-disk",
            Some(
                PoolCapacityQuery::by_mount_point(&v.pool)
                    .format(format)
                    .to_line(),
            ),
        ));
        out.push((
            "pool-capacity-file",
            Some(PoolCapacityQuery::by_file(&v.pool).format(format).to_line()),
        ));
    }
    out
}

fn refused(what: &str, e: &InvalidValue) {
    assert_log_safe(
        what,
        &e.to_string(),
        LogRule::EscapedAscii { max_len: 1024 },
    );
}

/// `Some(value)` when `parsed` accepted it; a refusal is checked for log safety.
fn accepted<T>(what: &str, parsed: Result<T, InvalidValue>) -> Option<T> {
    match parsed {
        Ok(v) => Some(v),
        Err(e) => {
            refused(what, &e);
            None
        }
    }
}

/// Validates every fuzzed value, builds every command and checks the oracles above.
pub fn routeros_commands(data: &[u8]) {
    let mut f = Fields::new(data);
    let slot_raw = f.text();
    let source_raw = f.text();
    let prefix_raw = f.text();
    let nqn_raw = f.text();
    let authority = f.text();
    let pool_raw = f.text();
    let image_raw = f.text();
    let file_raw = f.text();
    let size_raw = f.text();
    let port_raw = f.text();
    let comment_raw = f.text();
    let token = f.text();
    let listing = f.text();
    let page_size = f.byte();

    let slot = accepted("slot", Slot::parse(&slot_raw));
    let source = accepted("slot", Slot::parse(&source_raw));
    let prefix = accepted("slot prefix", SlotPrefix::parse(&prefix_raw));
    let nqn = accepted("nqn", Nqn::parse(&nqn_raw));
    let pool = accepted("pool path", PoolPath::parse(&pool_raw));
    let image = accepted("image path", ImagePath::parse(&image_raw));
    let file = accepted("file path", FilePath::parse(&file_raw));
    let size = accepted("size", Bytes::parse(&size_raw));
    let port = accepted("port", Port::parse(&port_raw));
    let comment = accepted("comment", Comment::parse(&comment_raw));

    if let Some(s) = &slot {
        check_slot(&slot_raw, s);
    }
    if let Some(s) = &source {
        check_slot(&source_raw, s);
    }
    if let Some(p) = &prefix {
        assert_eq!(p.as_str(), prefix_raw, "a prefix changed when accepted");
        if let Some(s) = &slot {
            assert_eq!(
                s.has_prefix(p),
                s.as_str().starts_with(p.as_str()),
                "has_prefix disagrees with the text"
            );
        }
    }
    if let Some(n) = &nqn {
        check_nqn(&nqn_raw, n);
    }
    if let Some(s) = &slot {
        for_slot(&authority, s);
    }
    if let Some(p) = &pool {
        check_pool(p);
    }
    if let Some(i) = &image {
        check_image(i);
    }
    if let (Some(p), Some(s)) = (&pool, &slot) {
        // What the gateway creates it must be able to read back.
        let built = ImagePath::new(p, s);
        check_image(&built);
        assert!(
            FilePath::parse(&built.absolute()).is_ok(),
            "disk file path {built} made in pool {p} is not a readable file path"
        );
    }
    if let Some(p) = &file {
        assert_eq!(FilePath::parse(&p.absolute()).as_ref(), Ok(p), "file path");
        assert_eq!(FilePath::parse(p.relative()).as_ref(), Ok(p), "file path");
        if let Ok(i) = ImagePath::try_from(p) {
            assert_eq!(
                i.relative(),
                p.relative(),
                "image path read from a file path"
            );
        }
    }
    if let Some(b) = size {
        assert_eq!(Bytes::parse(&b.to_string()), Ok(b), "size {size_raw:?}");
    }
    if let Some(p) = port {
        assert!(p.get() >= 1, "port 0 accepted");
        assert_eq!(Port::parse(&p.to_string()), Ok(p), "port {port_raw:?}");
    }
    if let Some(c) = &comment {
        assert_eq!(
            Comment::parse(&c.to_string()).as_ref(),
            Ok(c),
            "comment {comment_raw:?} printed as {c} reads differently"
        );
        assert!(Comment::is_ours(&c.to_string()), "our comment is not ours");
    }

    let comment_shape = comment
        .clone()
        .unwrap_or_else(|| Comment::new(CommentKind::Volume));
    let base = placeholders(&comment_shape);
    let rounded = size.and_then(|b| round_up(b).ok());
    let fuzzed = Values {
        slot: slot.clone().unwrap_or_else(|| base.slot.clone()),
        source: source.clone().unwrap_or_else(|| base.source.clone()),
        prefix: prefix.clone().unwrap_or_else(|| base.prefix.clone()),
        nqn: nqn.clone().unwrap_or_else(|| base.nqn.clone()),
        pool: pool.clone().unwrap_or_else(|| base.pool.clone()),
        image: image.clone().unwrap_or_else(|| base.image.clone()),
        size: rounded.unwrap_or(base.size),
        port: port.unwrap_or(base.port),
        comment: comment_shape,
    };
    check_lines(&fuzzed, &base);

    check_paging(&token, &listing, page_size);
}

fn check_slot(raw: &str, s: &Slot) {
    assert_eq!(s.as_str(), raw, "a slot changed when accepted");
    assert_eq!(
        Slot::parse(&s.to_string()).as_ref(),
        Ok(s),
        "slot round trip"
    );
}

fn check_nqn(raw: &str, n: &Nqn) {
    assert_eq!(n.as_str(), raw, "an NQN changed when accepted");
    assert!(
        nvme_helper::nqn::Nqn::new(n.as_str()).is_ok(),
        "the gateway exports NQN {raw:?}, which the node helper refuses to connect"
    );
}

fn for_slot(authority: &str, slot: &Slot) {
    match Nqn::for_slot(authority, slot) {
        Ok(n) => {
            assert!(
                n.as_str().ends_with(&format!(":{slot}")),
                "NQN {n} built for slot {slot} does not end with it"
            );
            if !authority.contains(':') {
                assert_eq!(n.suffix(), slot.as_str(), "NQN suffix of {n}");
            }
            check_nqn(n.as_str(), &n);
        }
        Err(e) => refused("nqn for slot", &e),
    }
}

fn check_pool(p: &PoolPath) {
    assert!(!p.relative().starts_with('/'), "relative pool path {p}");
    assert_eq!(
        p.absolute(),
        format!("/{}", p.relative()),
        "absolute pool path"
    );
    assert_eq!(
        PoolPath::parse(&p.absolute()).as_ref(),
        Ok(p),
        "pool round trip"
    );
    assert_eq!(
        PoolPath::parse(p.relative()).as_ref(),
        Ok(p),
        "pool round trip"
    );
    assert_eq!(
        Some(p.mount_point()),
        p.relative().split('/').next(),
        "mount point of {p}"
    );
}

fn check_image(i: &ImagePath) {
    assert_eq!(
        ImagePath::parse(&i.absolute()).as_ref(),
        Ok(i),
        "image round trip"
    );
    assert_eq!(
        ImagePath::parse(&i.relative()).as_ref(),
        Ok(i),
        "image round trip"
    );
    assert_eq!(
        i.relative(),
        format!("{}/{}.img", i.pool().relative(), i.slot()),
        "image path is <pool>/<slot>.img"
    );
    assert_eq!(
        ImagePath::new(i.pool(), i.slot()),
        *i,
        "image rebuilt from its parts"
    );
}

fn check_lines(fuzzed: &Values, base: &Values) {
    let got = lines(fuzzed);
    let want = lines(base);
    for ((name, line), (_, placeholder_line)) in got.iter().zip(&want) {
        let (Some(line), Some(placeholder_line)) = (line, placeholder_line) else {
            continue;
        };
        assert_command_line_clean(name, line);
        assert_same_syntax(name, line, placeholder_line);
    }
    for (name, line) in &got {
        if *name != "disk-list" {
            continue;
        }
        let Some(line) = line else { continue };
        let pattern = line
            .split_once("slot~\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(p, _)| p)
            .unwrap_or_else(|| panic!("disk-list line without a pattern: {line}"));
        let body = pattern
            .strip_prefix('^')
            .unwrap_or_else(|| panic!("disk-list pattern is not anchored: {line}"));
        assert!(
            !body.is_empty()
                && body
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "regular-expression metacharacter in the slot prefix: {line}"
        );
    }
}

fn check_paging(token: &str, listing: &str, page_size: u8) {
    let scope = Scope::new(
        ["pvc-", "snap-"]
            .into_iter()
            .filter_map(|p| SlotPrefix::parse(p).ok()),
    );
    match parse_token(token, &scope) {
        Ok(None) => assert!(token.is_empty(), "token {token:?} read as the first page"),
        Ok(Some(slot)) => {
            assert_eq!(slot.as_str(), token, "token changed when accepted");
            assert!(scope.contains(&slot), "token outside the managed prefixes");
        }
        Err(e) => {
            assert_eq!(e.code(), tonic::Code::Aborted, "bad token code: {e}");
            assert_log_safe(
                "page token error",
                &e.to_string(),
                LogRule::EscapedAscii { max_len: 1024 },
            );
        }
    }
    let items: BTreeMap<Slot, String> = listing
        .split(',')
        .take(200)
        .filter_map(|s| Slot::parse(s).ok())
        .map(|s| {
            let name = s.to_string();
            (s, name)
        })
        .collect();
    let max = u32::from(page_size % 6);
    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<Slot> = None;
    for _ in 0..=items.len() + 1 {
        let page = paginate(&items, after.as_ref(), max);
        if max > 0 {
            assert!(page.items.len() <= max as usize, "page longer than asked");
        }
        seen.extend(page.items);
        match page.next {
            Some(next) => {
                assert_eq!(
                    seen.last().map(String::as_str),
                    Some(next.as_str()),
                    "the next token is not the last item of the page"
                );
                after = Some(next);
            }
            None => break,
        }
    }
    let want: Vec<String> = items.into_values().collect();
    assert_eq!(seen, want, "paging lost, repeated or reordered items");
}
