//! Reads the documentation's reference tables and the things they describe — the binaries'
//! `--help`, the metric names in the sources, a `/metrics` exposition — and compares them, so
//! that `tests/tests/docs_current.rs` fails the moment `docs/` and the code disagree.
//!
//! A reference table in a page is the first Markdown table after a marker comment
//! `<!-- docs-check: NAME -->`. Names in its cells are written in backticks; a cell may hold
//! several (`` `a`, `b` ``) or none (`—`). Every comparison returns the list of problems, each
//! naming exactly what is missing, stale or different, so a failing test prints all of them at
//! once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Why a page or a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{page} has no marker <!-- docs-check: {marker} -->")]
    NoMarker { page: String, marker: String },
    #[error("{page}: no Markdown table follows <!-- docs-check: {marker} -->")]
    NoTable { page: String, marker: String },
    #[error("{page}: the table after <!-- docs-check: {marker} --> has no column {column:?}")]
    NoColumn {
        page: String,
        marker: String,
        column: String,
    },
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Reads a file as text.
pub fn read(path: &Path) -> Result<String, DocsError> {
    std::fs::read_to_string(path).map_err(|source| DocsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Every `.rs` file under `dir`, sorted.
pub fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, DocsError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| DocsError::Io {
            path: d.clone(),
            source,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|source| DocsError::Io {
                    path: d.clone(),
                    source,
                })?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Markdown tables
// ---------------------------------------------------------------------------------------------

/// A Markdown table: lower-cased header cells and the body rows, cells trimmed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The index of column `name` (case-insensitive).
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
    }

    /// Cell `column` of `row`, empty when the row is short.
    pub fn cell<'a>(&self, row: &'a [String], column: usize) -> &'a str {
        row.get(column).map(String::as_str).unwrap_or("")
    }
}

fn split_row(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    // `\|` inside a cell is a literal bar, not a separator.
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => cells.push(std::mem::take(&mut cell).trim().to_string()),
            other => cell.push(other),
        }
    }
    cells.push(cell.trim().to_string());
    cells
}

fn is_separator(line: &str) -> bool {
    let t = line.trim();
    t.starts_with('|') && t.contains('-') && t.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

/// The marker comment of reference table `name`.
pub fn marker(name: &str) -> String {
    format!("<!-- docs-check: {name} -->")
}

/// Every marker name in `page`, in order.
pub fn markers(page: &str) -> Vec<String> {
    page.lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("<!-- docs-check:")?
                .strip_suffix("-->")
                .map(|n| n.trim().to_string())
        })
        .collect()
}

/// The first table after marker `name` in `page` (`page_name` is for messages).
pub fn marked_table(page: &str, page_name: &str, name: &str) -> Result<Table, DocsError> {
    let mark = marker(name);
    let mut lines = page.lines();
    if !lines.by_ref().any(|l| l.trim() == mark) {
        return Err(DocsError::NoMarker {
            page: page_name.to_string(),
            marker: name.to_string(),
        });
    }
    let no_table = || DocsError::NoTable {
        page: page_name.to_string(),
        marker: name.to_string(),
    };
    // Prose may come between the marker and its table, but not another marker.
    let mut header = None;
    for line in lines.by_ref() {
        let t = line.trim();
        if t.starts_with("<!-- docs-check:") {
            return Err(no_table());
        }
        if t.starts_with('|') {
            header = Some(split_row(t));
            break;
        }
    }
    let header = header.ok_or_else(no_table)?;
    if !lines.next().is_some_and(is_separator) {
        return Err(no_table());
    }
    let rows = lines
        .map(str::trim)
        .take_while(|l| l.starts_with('|'))
        .map(split_row)
        .collect();
    Ok(Table {
        header: header.iter().map(|h| h.to_ascii_lowercase()).collect(),
        rows,
    })
}

/// The backticked names in a cell (`` `--mode` ``, `` `a`, `b` ``); none for `—` or prose.
pub fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// `--help` of the binaries
// ---------------------------------------------------------------------------------------------

/// One option as clap's long help (`--help`) shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpOption {
    /// The long flag, with its dashes (`--mode`).
    pub flag: String,
    /// The environment variable it reads.
    pub env: Option<String>,
    /// The default, as shown (`[default: all]` gives `all`).
    pub default: Option<String>,
}

/// The options of a clap long help text, in order.
///
/// An option line is indented by 2 to 6 spaces and starts with `-x, --long` or `--long`; its
/// description lines are indented deeper and carry `[env: NAME=]` and `[default: X]`. The text
/// must come from a process whose environment does not set the variables (clap would show
/// their values).
pub fn parse_help(text: &str) -> Vec<HelpOption> {
    let mut out: Vec<HelpOption> = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();
        if (2..=6).contains(&indent) && body.starts_with('-') {
            let long = body
                .split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '<')
                .find(|w| w.starts_with("--") && w.len() > 2);
            if let Some(long) = long {
                out.push(HelpOption {
                    flag: long.to_string(),
                    env: None,
                    default: None,
                });
            }
            continue;
        }
        let Some(current) = out.last_mut() else {
            continue;
        };
        if let Some(rest) = bracketed(body, "[env: ") {
            let name = rest.split('=').next().unwrap_or("").trim();
            if !name.is_empty() {
                current.env = Some(name.to_string());
            }
        }
        if let Some(rest) = bracketed(body, "[default: ") {
            current.default = Some(rest.to_string());
        }
    }
    out
}

/// The text between `open` and the matching `]` on a line, if the line has it.
fn bracketed<'a>(line: &'a str, open: &str) -> Option<&'a str> {
    let start = line.find(open)? + open.len();
    let rest = &line[start..];
    let end = rest.rfind(']')?;
    Some(&rest[..end])
}

/// A documented flag: one row of a flag table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagRow {
    pub flag: String,
    pub env: Option<String>,
    pub default: String,
}

/// The rows of a flag table (columns `flag`, `env`, `default`).
pub fn flag_rows(table: &Table, page: &str, marker: &str) -> Result<Vec<FlagRow>, DocsError> {
    let col = |name: &str| {
        table.column(name).ok_or_else(|| DocsError::NoColumn {
            page: page.to_string(),
            marker: marker.to_string(),
            column: name.to_string(),
        })
    };
    let (f, e, d) = (col("flag")?, col("env")?, col("default")?);
    Ok(table
        .rows
        .iter()
        .map(|row| FlagRow {
            flag: code_spans(table.cell(row, f))
                .into_iter()
                .next()
                .unwrap_or_else(|| table.cell(row, f).to_string()),
            env: code_spans(table.cell(row, e)).into_iter().next(),
            default: table.cell(row, d).to_string(),
        })
        .collect())
}

/// A documented default normalised for comparison: backticks and quotes off; `—`, `(empty)`,
/// `(none)` and an empty cell all mean "nothing".
pub fn normalise_default(cell: &str) -> String {
    let spans = code_spans(cell);
    let text = if spans.is_empty() {
        cell.trim().to_string()
    } else {
        spans.join(" ")
    };
    match text.as_str() {
        "—" | "-" | "(empty)" | "(none)" | "\"\"" => String::new(),
        _ => text,
    }
}

/// Compares what `binary`'s help shows with its documented rows. `inherited` are rows of
/// another table that also apply (a subcommand's global flags documented with the parent).
pub fn compare_flags(
    binary: &str,
    help: &[HelpOption],
    rows: &[FlagRow],
    inherited: &[FlagRow],
) -> Vec<String> {
    let mut problems = Vec::new();
    let documented: BTreeMap<&str, &FlagRow> = rows
        .iter()
        .chain(inherited)
        .map(|r| (r.flag.as_str(), r))
        .collect();
    let shown: BTreeSet<&str> = help.iter().map(|o| o.flag.as_str()).collect();
    for opt in help {
        let Some(row) = documented.get(opt.flag.as_str()) else {
            problems.push(format!(
                "{binary}: flag {} (env {}) is shown by --help but missing from docs/configuration.md",
                opt.flag,
                opt.env.as_deref().unwrap_or("none")
            ));
            continue;
        };
        if row.env != opt.env {
            problems.push(format!(
                "{binary}: flag {} reads env {}, docs/configuration.md says {}",
                opt.flag,
                opt.env.as_deref().unwrap_or("none"),
                row.env.as_deref().unwrap_or("none")
            ));
        }
        let want = opt
            .default
            .as_deref()
            .map(normalise_default)
            .unwrap_or_default();
        let have = normalise_default(&row.default);
        if want != have {
            problems.push(format!(
                "{binary}: flag {} defaults to {want:?}, docs/configuration.md says {have:?}",
                opt.flag
            ));
        }
    }
    for row in rows {
        if !shown.contains(row.flag.as_str()) {
            problems.push(format!(
                "{binary}: docs/configuration.md documents flag {} (env {}), which --help does not show",
                row.flag,
                row.env.as_deref().unwrap_or("none")
            ));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Rust sources: string literals
// ---------------------------------------------------------------------------------------------

/// A string literal found in a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literal {
    /// 1-based line of its opening quote.
    pub line: usize,
    /// Its content, escapes left as written.
    pub text: String,
}

/// The string literals of a Rust source outside comments and outside `#[cfg(test)]` items (test
/// code may invent names that no component registers).
pub fn string_literals(source: &str) -> Vec<Literal> {
    scan(source).0
}

/// The byte ranges of the `#[cfg(test)]` items of a Rust source.
pub fn test_items(source: &str) -> Vec<std::ops::Range<usize>> {
    scan(source).1
}

/// One pass over a source: its string literals outside tests and comments, and the ranges of
/// its `#[cfg(test)]` items.
fn scan(source: &str) -> (Vec<Literal>, Vec<std::ops::Range<usize>>) {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut tests = Vec::new();
    let mut test_start = 0;
    let mut i = 0;
    let mut line = 1;
    // Brace depth, and the depth at which a skipped `#[cfg(test)]` item ends.
    let mut depth = 0usize;
    let mut skip_until: Option<usize> = None;
    let mut pending_test_item = false;
    let at = |k: usize| bytes.get(k).copied().unwrap_or(0);
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'/' if at(i + 1) == b'/' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if at(i + 1) == b'*' => {
                let mut nest = 0usize;
                while i < bytes.len() {
                    if bytes[i] == b'/' && at(i + 1) == b'*' {
                        nest += 1;
                        i += 2;
                    } else if bytes[i] == b'*' && at(i + 1) == b'/' {
                        nest = nest.saturating_sub(1);
                        i += 2;
                        if nest == 0 {
                            break;
                        }
                    } else {
                        if bytes[i] == b'\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            b'#' if source[i..].starts_with("#[cfg(test)]") => {
                pending_test_item = true;
                i += "#[cfg(test)]".len();
            }
            b'{' => {
                depth += 1;
                if pending_test_item && skip_until.is_none() {
                    skip_until = Some(depth);
                    test_start = i;
                }
                pending_test_item = false;
                i += 1;
            }
            b'}' => {
                if skip_until == Some(depth) {
                    skip_until = None;
                    tests.push(test_start..i + 1);
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b';' => {
                // `#[cfg(test)] use ...;` or `mod tests;`: the attribute ends with the item.
                if skip_until.is_none() {
                    pending_test_item = false;
                }
                i += 1;
            }
            b'\'' => {
                // A char literal ('"', '\'', '\u{..}') or a lifetime / label.
                if at(i + 1) == b'\\' {
                    let mut k = i + 2;
                    while k < bytes.len() && bytes[k] != b'\'' && bytes[k] != b'\n' {
                        k += 1;
                    }
                    i = k + 1;
                } else {
                    let ch_len = source[i + 1..].chars().next().map_or(1, char::len_utf8);
                    if at(i + 1 + ch_len) == b'\'' {
                        i += 2 + ch_len;
                    } else {
                        i += 1;
                    }
                }
            }
            b'r' if (at(i + 1) == b'"' || at(i + 1) == b'#') && raw_start(bytes, i) => {
                let mut k = i + 1;
                let mut hashes = 0;
                while at(k) == b'#' {
                    hashes += 1;
                    k += 1;
                }
                if at(k) != b'"' {
                    i += 1;
                    continue;
                }
                let start = k + 1;
                let close = format!("\"{}", "#".repeat(hashes));
                let end = source[start..]
                    .find(&close)
                    .map_or(bytes.len(), |e| start + e);
                let text = &source[start..end];
                if skip_until.is_none() {
                    out.push(Literal {
                        line,
                        text: text.to_string(),
                    });
                }
                line += text.matches('\n').count();
                i = (end + close.len()).min(bytes.len());
            }
            b'"' => {
                let start = i + 1;
                let mut k = start;
                while k < bytes.len() && bytes[k] != b'"' {
                    if bytes[k] == b'\\' {
                        k += 1;
                    }
                    k += 1;
                }
                let end = k.min(bytes.len());
                let text = &source[start..end];
                if skip_until.is_none() {
                    out.push(Literal {
                        line,
                        text: text.to_string(),
                    });
                }
                line += text.matches('\n').count();
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    if skip_until.is_some() {
        tests.push(test_start..bytes.len());
    }
    (out, tests)
}

/// Whether the `r` at `i` starts a raw string (`r"`, `r#"`, `br"`), not the end of a name.
fn raw_start(bytes: &[u8], i: usize) -> bool {
    let ident = |k: usize| bytes[k].is_ascii_alphanumeric() || bytes[k] == b'_';
    match i {
        0 => true,
        _ if !ident(i - 1) => true,
        _ => bytes[i - 1] == b'b' && (i < 2 || !ident(i - 2)),
    }
}

/// A span a source creates with `tracing::<level>_span!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanDef {
    /// The span's name (the macro's first argument).
    pub name: String,
    /// `info`, `debug`, ...
    pub level: String,
    /// Its field names, in order (`%nqn` gives `nqn`, `a.b = x` gives `a.b`).
    pub fields: Vec<String>,
    /// 1-based line of the macro.
    pub line: usize,
}

/// The spans created in a source outside `#[cfg(test)]` items.
pub fn span_definitions(source: &str) -> Vec<SpanDef> {
    let tests = test_items(source);
    let mut out = Vec::new();
    for level in ["trace", "debug", "info", "warn", "error"] {
        let call = format!("{level}_span!(");
        for (pos, _) in source.match_indices(&call) {
            if tests.iter().any(|r| r.contains(&pos)) {
                continue;
            }
            let args = macro_arguments(&source[pos + call.len()..]);
            let mut parts = args.into_iter();
            let Some(first) = parts.next() else {
                continue;
            };
            let Some(name) = first
                .trim()
                .strip_prefix('"')
                .and_then(|n| n.strip_suffix('"'))
            else {
                continue;
            };
            let fields = parts
                .map(|a| {
                    let a = a.trim().trim_start_matches(['%', '?']);
                    a.split('=').next().unwrap_or("").trim().to_string()
                })
                .filter(|f| !f.is_empty() && !f.starts_with('"'))
                .collect();
            out.push(SpanDef {
                name: name.to_string(),
                level: level.to_string(),
                fields,
                line: source[..pos].matches('\n').count() + 1,
            });
        }
    }
    out.sort_by_key(|d| d.line);
    out
}

/// The top-level, comma-separated arguments of a macro call whose `(` was just passed.
fn macro_arguments(rest: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for c in rest.chars() {
        if in_string {
            current.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                current.push(c);
            }
            '(' | '[' | '{' => {
                depth += 1;
                current.push(c);
            }
            ')' | ']' | '}' if depth == 0 => break,
            ')' | ']' | '}' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => args.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        args.push(current);
    }
    args
}

/// The values a placeholder in a metric-name format string can take.
fn placeholder_values(name: &str) -> Option<&'static [&'static str]> {
    match name {
        // proto/src/hop/metrics.rs registers each hop family once per side.
        "side" => Some(&["server", "client"]),
        _ => None,
    }
}

/// The metric names (`rds_csi_...`) a string literal holds, with `{side}`-style placeholders
/// expanded. A placeholder whose values are not known is an error naming it.
pub fn metric_names(literal: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = literal;
    while let Some(pos) = rest.find("rds_csi_") {
        // Only at a word start: `xrds_csi_` is not a metric name.
        let before = &rest[..pos];
        if before
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            rest = &rest[pos + "rds_csi_".len()..];
            continue;
        }
        let tail = &rest[pos..];
        let mut variants = vec![String::new()];
        let mut k = 0;
        let b = tail.as_bytes();
        loop {
            let start = k;
            while k < b.len()
                && (b[k].is_ascii_lowercase() || b[k].is_ascii_digit() || b[k] == b'_')
            {
                k += 1;
            }
            for v in &mut variants {
                v.push_str(&tail[start..k]);
            }
            // `{name}` followed by more of the name is a format placeholder; `{{`, `{label=`
            // and the like end the name.
            if k < b.len() && b[k] == b'{' && k + 1 < b.len() && b[k + 1] != b'{' {
                let Some(close) = tail[k..].find('}') else {
                    break;
                };
                let inner = &tail[k + 1..k + close];
                let after = tail.as_bytes().get(k + close + 1).copied().unwrap_or(0);
                let is_placeholder = !inner.is_empty()
                    && inner
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'_')
                    && (after.is_ascii_lowercase() || after == b'_');
                if !is_placeholder {
                    break;
                }
                let values = placeholder_values(inner).ok_or_else(|| {
                    format!(
                        "metric name {:?} has a placeholder {{{inner}}} whose values docs_check does not know; add them to placeholder_values",
                        &tail[..k + close + 1]
                    )
                })?;
                variants = variants
                    .iter()
                    .flat_map(|v| values.iter().map(move |x| format!("{v}{x}")))
                    .collect();
                k += close + 1;
                continue;
            }
            break;
        }
        // A literal that ends in `_` is a prefix (`starts_with("rds_csi_grpc_")`), not a name.
        out.extend(
            variants
                .into_iter()
                .filter(|v| v.len() > "rds_csi_".len() && !v.ends_with('_')),
        );
        rest = &tail[k.max(1)..];
    }
    Ok(out)
}

/// Histogram series suffixes, folded into their family.
const SERIES_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// Folds `x_bucket`, `x_sum` and `x_count` into `x` when `x` is itself in `names`.
pub fn fold_series(names: BTreeSet<String>) -> BTreeSet<String> {
    names
        .iter()
        .map(|n| {
            SERIES_SUFFIXES
                .iter()
                .find_map(|s| {
                    n.strip_suffix(s)
                        .filter(|base| names.contains(*base))
                        .map(str::to_string)
                })
                .unwrap_or_else(|| n.clone())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The Prometheus text exposition
// ---------------------------------------------------------------------------------------------

/// A metric family as scraped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Family {
    /// `counter`, `gauge`, `histogram`, ...
    pub kind: String,
    /// Label names seen on its samples (`le` of histogram buckets left out).
    pub labels: BTreeSet<String>,
    /// Sample lines seen.
    pub samples: usize,
}

/// The families of a text exposition, by name, from their `# TYPE` lines and samples.
pub fn scrape_families(exposition: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                out.entry(name.to_string()).or_default().kind = kind.to_string();
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .unwrap_or(line.len());
        let series = &line[..name_end];
        let family = out
            .keys()
            .find(|f| {
                series == f.as_str()
                    || SERIES_SUFFIXES
                        .iter()
                        .any(|s| series.strip_suffix(s) == Some(f.as_str()))
            })
            .cloned()
            .unwrap_or_else(|| series.to_string());
        let labels = label_names(&line[name_end..]);
        let entry = out.entry(family).or_default();
        entry.samples += 1;
        entry
            .labels
            .extend(labels.into_iter().filter(|l| l != "le"));
    }
    out
}

/// The label names of a sample's `{a="x",b="y"}` part.
fn label_names(rest: &str) -> Vec<String> {
    let Some(body) = rest.strip_prefix('{') else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut in_value = false;
    let mut escaped = false;
    let mut name = String::new();
    for c in body.chars() {
        if in_value {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_value = false,
                _ => {}
            }
            continue;
        }
        match c {
            '=' => names.push(std::mem::take(&mut name).trim().to_string()),
            '"' => in_value = true,
            ',' => name.clear(),
            '}' => break,
            c => name.push(c),
        }
    }
    names
}

/// `missing` (expected but not documented) and `stale` (documented but not expected).
pub fn set_diff(
    expected: &BTreeSet<String>,
    documented: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    (
        expected.difference(documented).cloned().collect(),
        documented.difference(expected).cloned().collect(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const HELP: &str = "\
The CSI endpoint.

Usage: csi-frontend [OPTIONS]

Options:
      --mode <MODE>
          Which CSI services to serve.

          Possible values:
          - controller: Identity and Controller
          - node:       Identity and Node

          [env: CSI_MODE=]
          [default: all]

      --node-id <NODE_ID>
          This node's name; `--other-flag` in prose is not an option

          [env: CSI_NODE_ID=]
          [default: \"\"]

      --known <KNOWN>
          [env: KNOWN=]

  -h, --help
          Print help (see a summary with '-h')

  -V, --version
          Print version
";

    #[test]
    fn help_options_with_env_and_default() {
        let opts = parse_help(HELP);
        let flags: Vec<&str> = opts.iter().map(|o| o.flag.as_str()).collect();
        assert_eq!(
            flags,
            ["--mode", "--node-id", "--known", "--help", "--version"]
        );
        assert_eq!(opts[0].env.as_deref(), Some("CSI_MODE"));
        assert_eq!(opts[0].default.as_deref(), Some("all"));
        assert_eq!(opts[1].default.as_deref(), Some("\"\""));
        assert_eq!(opts[2].default, None);
        assert_eq!(opts[3].env, None);
    }

    fn row(flag: &str, env: Option<&str>, default: &str) -> FlagRow {
        FlagRow {
            flag: flag.into(),
            env: env.map(String::from),
            default: default.into(),
        }
    }

    #[test]
    fn flag_comparison_names_each_problem() {
        let help = parse_help(HELP);
        let good = vec![
            row("--mode", Some("CSI_MODE"), "`all`"),
            row("--node-id", Some("CSI_NODE_ID"), "(empty)"),
            row("--known", Some("KNOWN"), "—"),
            row("--help", None, "—"),
            row("--version", None, ""),
        ];
        assert_eq!(compare_flags("fe", &help, &good, &[]), Vec::<String>::new());

        let mut bad = good.clone();
        bad.remove(2); // --known missing
        bad[0].env = Some("MODE".into()); // wrong env
        bad[1].default = "`x`".into(); // wrong default
        bad.push(row("--gone", Some("GONE"), "")); // stale
        let problems = compare_flags("fe", &help, &bad, &[]);
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("--known") && p.contains("missing"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("--mode") && p.contains("MODE"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("--node-id") && p.contains("\"x\""))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("--gone") && p.contains("does not show"))
        );

        // A subcommand's flags may be documented with the parent.
        let (own, parent) = good.split_at(2);
        assert!(compare_flags("fe doctor", &help, own, parent).is_empty());
    }

    #[test]
    fn tables_after_markers() {
        let page = "\
# Title
<!-- docs-check: a -->
Some prose.

| Flag | env | default |
|---|:--|---|
| `--x` | `X` | `1` |
| `--y` \\| more | — | |

After.
<!-- docs-check: b -->
<!-- docs-check: c -->
| q |
|---|
";
        let t = marked_table(page, "p", "a").unwrap();
        assert_eq!(t.header, ["flag", "env", "default"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[1][0], "`--y` | more");
        let rows = flag_rows(&t, "p", "a").unwrap();
        assert_eq!(rows[0], row("--x", Some("X"), "`1`"));
        assert_eq!(rows[1].env, None);
        assert!(matches!(
            marked_table(page, "p", "b"),
            Err(DocsError::NoTable { .. })
        ));
        assert!(matches!(
            marked_table(page, "p", "zz"),
            Err(DocsError::NoMarker { .. })
        ));
        assert_eq!(markers(page), ["a", "b", "c"]);
        assert_eq!(code_spans("`a`, `b` and c"), ["a", "b"]);
        assert_eq!(normalise_default("`pvc-`, `snap-`"), "pvc- snap-");
    }

    #[test]
    fn literals_skip_comments_chars_and_test_modules() {
        let src = r####"
//! "rds_csi_in_a_doc_comment"
/* "rds_csi_in_a_block" /* nested "x" */ still "comment" */
const A: &str = "rds_csi_a_total";
const Q: char = '"';
fn f<'a>(x: &'a str) -> String { format!("{x} \"esc\" rds_csi_b") }
const R: &str = r#"raw "rds_csi_raw" text"#;
#[cfg(test)]
mod tests {
    const T: &str = "rds_csi_invented_in_a_test";
    fn g() { let _ = "{"; }
}
const AFTER: &str = "after the tests";
"####;
        let lits: Vec<String> = string_literals(src).into_iter().map(|l| l.text).collect();
        assert_eq!(
            lits,
            [
                "rds_csi_a_total",
                "{x} \\\"esc\\\" rds_csi_b",
                "raw \"rds_csi_raw\" text",
                "after the tests"
            ]
        );
        let a = string_literals(src)
            .into_iter()
            .find(|l| l.text == "rds_csi_a_total")
            .unwrap();
        assert_eq!(a.line, 4);
    }

    #[test]
    fn span_macros_and_their_fields() {
        let src = r#"
fn a() {
    let span = tracing::info_span!("connect", nqn = %spec.nqn, traddr = %spec.traddr, trsvcid = spec.trsvcid);
    let s = tracing::debug_span!(
        "rds.exec",
        command = %verb(line, (1, 2)),
        session = tracing::field::Empty,
    );
    let t = info_span!("probe", %nqn, ?dev, "not, a field");
}
#[cfg(test)]
mod tests {
    fn b() { let _ = tracing::info_span!("only_in_a_test"); }
}
"#;
        let defs = span_definitions(src);
        let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["connect", "rds.exec", "probe"]);
        assert_eq!(defs[0].fields, ["nqn", "traddr", "trsvcid"]);
        assert_eq!(defs[0].level, "info");
        assert_eq!(defs[1].fields, ["command", "session"]);
        assert_eq!(defs[1].level, "debug");
        assert_eq!(defs[1].line, 4);
        assert_eq!(defs[2].fields, ["nqn", "dev"]);
        assert_eq!(test_items(src).len(), 1);
    }

    #[test]
    fn metric_names_in_literals() {
        assert_eq!(
            metric_names("rds_csi_grpc_{side}_handled_total").unwrap(),
            [
                "rds_csi_grpc_server_handled_total",
                "rds_csi_grpc_client_handled_total"
            ]
        );
        assert_eq!(
            metric_names("rds_csi_x_total{status=\\\"ok\\\"} and rds_csi_y").unwrap(),
            ["rds_csi_x_total", "rds_csi_y"]
        );
        assert_eq!(
            metric_names("rds_csi_z{{a=\"{v}\"}}").unwrap(),
            ["rds_csi_z"]
        );
        assert_eq!(
            metric_names("use rds_csi_proto::x").unwrap(),
            ["rds_csi_proto"]
        );
        assert!(
            metric_names("starts_with(rds_csi_grpc_)")
                .unwrap()
                .is_empty()
        );
        assert!(metric_names("xrds_csi_no").unwrap().is_empty());
        let err = metric_names("rds_csi_{kind}_total").unwrap_err();
        assert!(err.contains("{kind}"), "{err}");
        let folded = fold_series(
            [
                "rds_csi_h_seconds",
                "rds_csi_h_seconds_count",
                "rds_csi_c_count",
            ]
            .map(String::from)
            .into(),
        );
        assert_eq!(
            folded,
            ["rds_csi_c_count", "rds_csi_h_seconds"]
                .map(String::from)
                .into()
        );
    }

    #[test]
    fn exposition_families_types_and_labels() {
        let text = "\
# HELP rds_csi_h_seconds Time.
# TYPE rds_csi_h_seconds histogram
rds_csi_h_seconds_bucket{verb=\"a,b\",le=\"0.1\"} 1
rds_csi_h_seconds_sum{verb=\"x\\\"y\"} 0.1
rds_csi_h_seconds_count{verb=\"x\"} 1
# TYPE process_open_fds gauge
process_open_fds 9
# TYPE rds_csi_c_total counter
rds_csi_c_total{status=\"ok\",cause=\"x\"} 2
";
        let f = scrape_families(text);
        assert_eq!(f.len(), 3);
        assert_eq!(f["rds_csi_h_seconds"].kind, "histogram");
        assert_eq!(f["rds_csi_h_seconds"].labels, ["verb".to_string()].into());
        assert!(f["process_open_fds"].labels.is_empty());
        assert_eq!(f["rds_csi_h_seconds"].samples, 3);
        assert_eq!(
            f["rds_csi_c_total"].labels,
            ["cause".to_string(), "status".to_string()].into()
        );
        let (missing, stale) = set_diff(
            &["a".to_string(), "b".to_string()].into(),
            &["b".to_string(), "c".to_string()].into(),
        );
        assert_eq!((missing, stale), (vec!["a".into()], vec!["c".into()]));
    }
}
