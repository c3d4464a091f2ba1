//! The documentation cannot rot: these tests fail when `docs/` and the code disagree.
//!
//! - **Flags and environment variables** (`docs/configuration.md`): every option the `--help` of
//!   `csi-frontend`, `rds-gateway`, `rds-gateway doctor`, `nvme-helper` and `nvme-helper doctor`
//!   shows is in the binary's table with the same environment variable and default, and every
//!   table row is an option the binary shows (hidden options are not shown, so not required;
//!   today that is `nvme-helper doctor --mountinfo` and `--tool-path`, for tests only). The
//!   `doctor` column of a parent table must say exactly which of its flags the doctor shows.
//!   Variables read outside clap must be in the "other" table, and every name there must be read
//!   by the sources; the OpenTelemetry SDK table may only name variables the SDK's sources know.
//! - **Metrics** (`docs/metrics.md`): every `rds_csi_*` name in a string literal of the
//!   components' sources (outside tests; `{side}` expanded to server and client) is documented
//!   and every documented `rds_csi_*` name is in the sources. With root, a whole stack is started,
//!   a volume driven through its life, and every family scraped from every component must be
//!   documented with the scraped type, labels and component, and every documented `process_*`
//!   family must be scraped from every component.
//! - **StorageClass, VolumeSnapshotClass and volume-context keys**
//!   (`docs/configuration.md`): the frontend's own parsers decide. Every string literal in
//!   `csi-frontend/src` that the parser does not answer with "unknown key" is a key, and must be
//!   documented; every documented key must not be answered "unknown"; every documented example
//!   value must parse.
//!
//! - **Spans** (`docs/tracing.md`): every `*_span!` of the components' sources (outside tests) is
//!   documented with its level and the union of its attribute names, and every documented span
//!   exists.
//!
//! Each test prints every problem it finds, naming the page, the binary and the name. The
//! binaries must be built first (`cargo build --workspace --bins`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use csi_frontend::ids::VolumeId;
use csi_frontend::params::{
    ConnectOptions, Defaults, ParamError, SnapshotParams, StorageParams, VolumePath,
};
use csi_frontend::volume_context::{ContextError, VolumeContext};
use rds_csi_testbed::docs_check::{
    FlagRow, HelpOption, Table, code_spans, compare_flags, flag_rows, fold_series, marked_table,
    markers, metric_names, parse_help, read, rust_files, scrape_families, set_diff,
    span_definitions, string_literals, workspace_root,
};
use rds_csi_testbed::e2e_support::{Bed, require_root};
use rds_csi_testbed::lifecycle::{self, Flavor};
use rds_csi_testbed::{bins, http};

const CONFIGURATION: &str = "docs/configuration.md";
const METRICS: &str = "docs/metrics.md";
const TRACING: &str = "docs/tracing.md";

/// The crates whose binaries ship, by source directory.
const COMPONENT_SOURCES: [&str; 4] = [
    "csi-frontend/src",
    "rds-gateway/src",
    "nvme-helper/src",
    "proto/src",
];

fn page(rel: &str) -> String {
    read(&workspace_root().join(rel)).unwrap()
}

fn report(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n  - {}",
        problems.len(),
        problems.join("\n  - ")
    );
}

// ---------------------------------------------------------------------------------------------
// Flags and environment variables
// ---------------------------------------------------------------------------------------------

/// A binary (and subcommand) whose `--help` a table documents.
struct HelpTarget {
    binary: &'static str,
    subcommand: Option<&'static str>,
    /// Its own table, if it has options of its own.
    table: Option<&'static str>,
    /// The parent's table whose `doctor` column marks the flags the subcommand shares.
    parent: Option<&'static str>,
}

const TARGETS: [HelpTarget; 5] = [
    HelpTarget {
        binary: "csi-frontend",
        subcommand: None,
        table: Some("csi-frontend"),
        parent: None,
    },
    HelpTarget {
        binary: "rds-gateway",
        subcommand: None,
        table: Some("rds-gateway"),
        parent: None,
    },
    HelpTarget {
        binary: "rds-gateway",
        subcommand: Some("doctor"),
        table: Some("rds-gateway doctor"),
        parent: Some("rds-gateway"),
    },
    HelpTarget {
        binary: "nvme-helper",
        subcommand: None,
        table: Some("nvme-helper"),
        parent: None,
    },
    HelpTarget {
        binary: "nvme-helper",
        subcommand: Some("doctor"),
        table: None,
        parent: Some("nvme-helper"),
    },
];

impl HelpTarget {
    fn name(&self) -> String {
        match self.subcommand {
            Some(sub) => format!("{} {sub}", self.binary),
            None => self.binary.to_string(),
        }
    }

    /// The long help, from a process whose environment sets none of the variables (clap would
    /// print their values).
    fn help(&self) -> Vec<HelpOption> {
        let program = bins::path(self.binary).unwrap();
        let mut cmd = Command::new(&program);
        cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        if let Some(sub) = self.subcommand {
            cmd.arg(sub);
        }
        let out = cmd.arg("--help").output().unwrap();
        assert!(
            out.status.success(),
            "{} --help failed: {}",
            self.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        let options = parse_help(&String::from_utf8_lossy(&out.stdout));
        assert!(
            options.iter().any(|o| o.flag == "--help"),
            "no options read from `{} --help`: has clap's help layout changed?\n{}",
            self.name(),
            String::from_utf8_lossy(&out.stdout)
        );
        options
    }
}

fn table(page_text: &str, page_name: &str, marker: &str) -> Table {
    marked_table(page_text, page_name, marker).unwrap()
}

/// Checks a parent table's `doctor` column against what the subcommand's help shows.
fn doctor_column(target: &str, parent: &Table, help: &[HelpOption]) -> Vec<String> {
    let Some(col) = parent.column("doctor") else {
        return vec![format!(
            "{CONFIGURATION}: the table of the parent of {target} has no `doctor` column"
        )];
    };
    let flag_col = parent.column("flag").unwrap_or(0);
    let shown: BTreeSet<&str> = help.iter().map(|o| o.flag.as_str()).collect();
    let mut problems = Vec::new();
    for row in &parent.rows {
        let flag = code_spans(parent.cell(row, flag_col))
            .into_iter()
            .next()
            .unwrap_or_default();
        let marked = parent.cell(row, col).trim().eq_ignore_ascii_case("yes");
        let applies = shown.contains(flag.as_str());
        if marked != applies {
            problems.push(format!(
                "{CONFIGURATION}: flag {flag} is marked doctor={} but `{target} --help` {} it",
                if marked { "yes" } else { "no" },
                if applies { "shows" } else { "does not show" }
            ));
        }
    }
    problems
}

fn duplicates(what: &str, names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    names
        .into_iter()
        .filter(|n| !seen.insert(n.clone()))
        .map(|n| format!("{CONFIGURATION}: {what} {n} is documented twice"))
        .collect()
}

#[test]
fn every_flag_and_environment_variable_is_documented() {
    let text = page(CONFIGURATION);
    let mut problems = Vec::new();
    let mut flags = BTreeSet::new();
    let mut envs = BTreeSet::new();
    for target in &TARGETS {
        let name = target.name();
        let help = target.help();
        for o in &help {
            flags.insert(format!("{name} {}", o.flag));
            envs.extend(o.env.clone());
        }
        let own: Vec<FlagRow> = match target.table {
            Some(marker) => {
                let t = table(&text, CONFIGURATION, marker);
                problems.extend(duplicates(
                    &format!("{name} flag"),
                    flag_rows(&t, CONFIGURATION, marker)
                        .unwrap()
                        .into_iter()
                        .map(|r| r.flag),
                ));
                flag_rows(&t, CONFIGURATION, marker).unwrap()
            }
            None => Vec::new(),
        };
        let inherited: Vec<FlagRow> = match target.parent {
            Some(marker) => {
                let parent = table(&text, CONFIGURATION, marker);
                problems.extend(doctor_column(&name, &parent, &help));
                flag_rows(&parent, CONFIGURATION, marker).unwrap()
            }
            None => Vec::new(),
        };
        problems.extend(compare_flags(&name, &help, &own, &inherited));
    }
    // A table for a binary or subcommand that is not checked would rot unseen.
    let checked: BTreeSet<&str> = TARGETS.iter().filter_map(|t| t.table).collect();
    let param_tables = [
        "other-env",
        "otel-sdk-env",
        "storageclass-parameters",
        "volumesnapshotclass-parameters",
        "volume-context",
    ];
    for m in markers(&text) {
        if !checked.contains(m.as_str()) && !param_tables.contains(&m.as_str()) {
            problems.push(format!(
                "{CONFIGURATION}: table <!-- docs-check: {m} --> is checked by nothing"
            ));
        }
    }
    eprintln!(
        "checked {} flags ({} distinct) and {} environment variables of 5 help texts",
        flags.len(),
        flags
            .iter()
            .map(|f| f.rsplit(' ').next().unwrap_or_default().to_string())
            .collect::<BTreeSet<_>>()
            .len(),
        envs.len()
    );
    report("flags in docs/configuration.md", &problems);
}

/// String literals of the component sources, with their file and line.
fn component_literals() -> Vec<(PathBuf, usize, String)> {
    let root = workspace_root();
    let mut out = Vec::new();
    for dir in COMPONENT_SOURCES {
        for file in rust_files(&root.join(dir)).unwrap() {
            let text = read(&file).unwrap();
            let rel = file.strip_prefix(&root).unwrap_or(&file).to_path_buf();
            for lit in string_literals(&text) {
                out.push((rel.clone(), lit.line, lit.text));
            }
        }
    }
    out
}

fn is_env_name(s: &str) -> bool {
    s.len() > 3
        && s.contains('_')
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && s.as_bytes()[0].is_ascii_uppercase()
}

/// The variables the sources read outside clap: literals handed straight to `env::var` or
/// `env::var_os`, and every `OTEL_*` literal (the telemetry set-up reads those through a helper).
fn variables_read_by_the_sources() -> BTreeSet<String> {
    let root = workspace_root();
    let mut out = BTreeSet::new();
    for dir in COMPONENT_SOURCES {
        for file in rust_files(&root.join(dir)).unwrap() {
            let text = read(&file).unwrap();
            for call in ["env::var(\"", "env::var_os(\""] {
                for (pos, _) in text.match_indices(call) {
                    let rest = &text[pos + call.len()..];
                    if let Some(end) = rest.find('"') {
                        out.insert(rest[..end].to_string());
                    }
                }
            }
            for lit in string_literals(&text) {
                if lit.text.starts_with("OTEL_") && is_env_name(&lit.text) {
                    out.insert(lit.text);
                }
            }
        }
    }
    out
}

/// The `OTEL_*` names in the sources of the OpenTelemetry SDK and OTLP exporter this build uses,
/// found through `cargo metadata`.
fn variables_known_to_the_sdk() -> BTreeSet<String> {
    let root = workspace_root();
    // Only this host's dependencies: the others are not downloaded, and --offline forbids it.
    let version = Command::new(env!("CARGO")).arg("-vV").output().unwrap();
    let host = String::from_utf8_lossy(&version.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("`cargo -vV` names no host triple");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host, "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut names = BTreeSet::new();
    let mut crates = 0;
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        let name = pkg["name"].as_str().unwrap_or_default();
        if !matches!(name, "opentelemetry_sdk" | "opentelemetry-otlp") {
            continue;
        }
        crates += 1;
        let manifest = PathBuf::from(pkg["manifest_path"].as_str().unwrap_or_default());
        let src = manifest.parent().unwrap_or(Path::new("/")).join("src");
        for file in rust_files(&src).unwrap() {
            for lit in string_literals(&read(&file).unwrap()) {
                if lit.text.starts_with("OTEL_") && is_env_name(&lit.text) {
                    names.insert(lit.text);
                }
            }
        }
    }
    assert!(
        crates >= 2,
        "cargo metadata lists no opentelemetry_sdk or opentelemetry-otlp sources"
    );
    names
}

fn first_column_names(t: &Table) -> Vec<String> {
    t.rows
        .iter()
        .filter_map(|r| code_spans(t.cell(r, 0)).into_iter().next())
        .collect()
}

#[test]
fn every_variable_read_outside_the_flags_is_documented() {
    let text = page(CONFIGURATION);
    let mut problems = Vec::new();

    let other = first_column_names(&table(&text, CONFIGURATION, "other-env"));
    problems.extend(duplicates("variable", other.iter().cloned()));
    let documented: BTreeSet<String> = other.into_iter().collect();
    let read_here = variables_read_by_the_sources();
    // Every literal of the sources, to prove a documented name is really used.
    let literals: BTreeSet<String> = component_literals()
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    for v in read_here.difference(&documented) {
        problems.push(format!(
            "{CONFIGURATION}: environment variable {v} is read by the sources but missing from the \"other-env\" table"
        ));
    }
    for v in &documented {
        if !literals.contains(v) {
            problems.push(format!(
                "{CONFIGURATION}: the \"other-env\" table names {v}, which no component source reads"
            ));
        }
    }

    let sdk = first_column_names(&table(&text, CONFIGURATION, "otel-sdk-env"));
    let known = variables_known_to_the_sdk();
    for v in &sdk {
        if !known.contains(v) {
            problems.push(format!(
                "{CONFIGURATION}: the \"otel-sdk-env\" table names {v}, which the OpenTelemetry SDK and OTLP exporter in use do not read"
            ));
        }
        if documented.contains(v) {
            problems.push(format!(
                "{CONFIGURATION}: {v} is in both the \"other-env\" and the \"otel-sdk-env\" tables"
            ));
        }
    }
    eprintln!(
        "checked {} variables read by the sources and {} honoured by the SDK",
        documented.len(),
        sdk.len()
    );
    report("environment variables in docs/configuration.md", &problems);
}

// ---------------------------------------------------------------------------------------------
// StorageClass, VolumeSnapshotClass and volume-context keys
// ---------------------------------------------------------------------------------------------

fn defaults() -> Defaults {
    Defaults {
        nvme_address: Some("10.0.0.1".parse().unwrap()),
        nvme_port: 4420,
        volume_path: VolumePath::parse("/storage-pool/kubernetes-volumes").unwrap(),
        migration_timeout_secs: 300,
        connect: ConnectOptions::default(),
    }
}

/// A documented key: a name, or a prefix for a `prefix*` row.
fn probe_key(documented: &str) -> String {
    match documented.strip_suffix('*') {
        Some(prefix) => format!("{prefix}docs-check"),
        None => documented.to_string(),
    }
}

/// Whether `candidate` is covered by a documented key (exactly, or by a `prefix*` row).
fn covered(candidate: &str, documented: &[String]) -> bool {
    documented.iter().any(|d| match d.strip_suffix('*') {
        Some(prefix) => candidate.starts_with(prefix),
        None => d == candidate,
    })
}

/// Every literal of `csi-frontend/src` (outside tests) that could be a map key.
fn frontend_key_candidates() -> BTreeSet<String> {
    component_literals()
        .into_iter()
        .filter(|(file, _, _)| file.starts_with("csi-frontend"))
        .map(|(_, _, text)| text)
        .filter(|t| {
            !t.is_empty()
                && t.len() <= 64
                && t.as_bytes()[0].is_ascii_alphabetic()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'_' | b'-'))
        })
        .collect()
}

/// One parameter table checked against a parser: `known(key)` says whether the parser knows
/// the key, `parses(key, value)` whether it takes the value.
fn check_keys(
    marker: &str,
    known: impl Fn(&str) -> bool,
    parses: impl Fn(&str, &str) -> Result<(), String>,
) -> (usize, Vec<String>) {
    let text = page(CONFIGURATION);
    let t = table(&text, CONFIGURATION, marker);
    let documented = first_column_names(&t);
    let mut problems = duplicates(&format!("{marker} key"), documented.iter().cloned());
    for d in &documented {
        if !known(&probe_key(d)) {
            problems.push(format!(
                "{CONFIGURATION}: the {marker} table documents {d}, which the frontend refuses as an unknown key"
            ));
        }
    }
    if let Some(col) = t.column("example") {
        for row in &t.rows {
            let Some(key) = code_spans(t.cell(row, 0)).into_iter().next() else {
                continue;
            };
            let Some(example) = code_spans(t.cell(row, col)).into_iter().next() else {
                problems.push(format!(
                    "{CONFIGURATION}: the {marker} table gives no example for {key}"
                ));
                continue;
            };
            if let Err(why) = parses(&probe_key(&key), &example) {
                problems.push(format!(
                    "{CONFIGURATION}: the {marker} example {key}={example} is refused: {why}"
                ));
            }
        }
    }
    for candidate in frontend_key_candidates() {
        if known(&candidate) && !covered(&candidate, &documented) {
            problems.push(format!(
                "{CONFIGURATION}: the frontend accepts the key {candidate:?}, which the {marker} table does not document"
            ));
        }
    }
    (documented.len(), problems)
}

fn one(key: &str, value: &str) -> HashMap<String, String> {
    HashMap::from([(key.to_string(), value.to_string())])
}

#[test]
fn storage_class_parameters_match_the_parser() {
    let d = defaults();
    let (count, problems) = check_keys(
        "storageclass-parameters",
        |k| {
            !matches!(
                StorageParams::parse(&one(k, "x"), &d),
                Err(ParamError::Unknown { .. })
            )
        },
        |k, v| {
            StorageParams::parse(&one(k, v), &d)
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    );
    eprintln!("checked {count} StorageClass parameters");
    report(
        "StorageClass parameters in docs/configuration.md",
        &problems,
    );
}

#[test]
fn snapshot_class_parameters_match_the_parser() {
    let d = defaults();
    let (count, problems) = check_keys(
        "volumesnapshotclass-parameters",
        |k| {
            !matches!(
                SnapshotParams::parse(&one(k, "x"), &d),
                Err(ParamError::Unknown { .. })
            )
        },
        |k, v| {
            SnapshotParams::parse(&one(k, v), &d)
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    );
    eprintln!("checked {count} VolumeSnapshotClass parameters");
    report(
        "VolumeSnapshotClass parameters in docs/configuration.md",
        &problems,
    );
}

#[test]
fn volume_context_keys_match_the_parser() {
    let id = VolumeId::parse("volume_id", "pvc-0f923194-922a-5dd8-b376-c2c6ccb56dd8").unwrap();
    let (count, problems) = check_keys(
        "volume-context",
        |k| {
            !matches!(
                VolumeContext::parse(&id, &one(k, "x")),
                Err(ContextError::Unknown { .. })
            )
        },
        |k, v| {
            VolumeContext::parse(&id, &one(k, v))
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    );
    eprintln!("checked {count} volume-context keys");
    report("volume-context keys in docs/configuration.md", &problems);
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// A documented metric family.
#[derive(Debug, Clone)]
struct MetricRow {
    kind: String,
    labels: BTreeSet<String>,
    components: String,
}

fn metric_rows() -> (BTreeMap<String, MetricRow>, Vec<String>) {
    let text = page(METRICS);
    let t = table(&text, METRICS, "metrics");
    let col = |n: &str| {
        t.column(n)
            .unwrap_or_else(|| panic!("{METRICS}: the metrics table has no {n:?} column"))
    };
    let (name_c, type_c, labels_c, comp_c) =
        (col("metric"), col("type"), col("labels"), col("component"));
    let mut rows = BTreeMap::new();
    let mut problems = Vec::new();
    for r in &t.rows {
        let Some(name) = code_spans(t.cell(r, name_c)).into_iter().next() else {
            problems.push(format!("{METRICS}: a metrics row names no metric: {r:?}"));
            continue;
        };
        let kind = t.cell(r, type_c).trim().to_string();
        if !matches!(kind.as_str(), "counter" | "gauge" | "histogram") {
            problems.push(format!(
                "{METRICS}: {name} has type {kind:?}, not counter, gauge or histogram"
            ));
        }
        let row = MetricRow {
            kind,
            labels: code_spans(t.cell(r, labels_c)).into_iter().collect(),
            components: t.cell(r, comp_c).to_string(),
        };
        if rows.insert(name.clone(), row).is_some() {
            problems.push(format!("{METRICS}: {name} is documented twice"));
        }
    }
    (rows, problems)
}

/// The package names of the workspace, as Rust identifiers (a crate name in a literal is not a
/// metric).
fn crate_identifiers() -> BTreeSet<String> {
    let root = workspace_root();
    let mut out = BTreeSet::new();
    for dir in [
        "csi-frontend",
        "rds-gateway",
        "nvme-helper",
        "proto",
        "tests",
    ] {
        let manifest = read(&root.join(dir).join("Cargo.toml")).unwrap();
        if let Some(line) = manifest
            .lines()
            .find(|l| l.trim_start().starts_with("name"))
            && let Some(name) = line.split('"').nth(1)
        {
            out.insert(name.replace('-', "_"));
        }
    }
    out
}

/// Every metric name registered by the component sources.
fn metrics_in_the_sources() -> (BTreeSet<String>, Vec<String>) {
    let crates = crate_identifiers();
    let mut names = BTreeSet::new();
    let mut problems = Vec::new();
    for (file, line, text) in component_literals() {
        match metric_names(&text) {
            Ok(found) => names.extend(found.into_iter().filter(|n| !crates.contains(n))),
            Err(why) => problems.push(format!("{}:{line}: {why}", file.display())),
        }
    }
    (fold_series(names), problems)
}

#[test]
fn every_metric_in_the_sources_is_documented() {
    let (rows, mut problems) = metric_rows();
    let (registered, scan_problems) = metrics_in_the_sources();
    problems.extend(scan_problems);
    let documented: BTreeSet<String> = rows
        .keys()
        .filter(|n| n.starts_with("rds_csi_"))
        .cloned()
        .collect();
    let (missing, stale) = set_diff(&registered, &documented);
    for m in missing {
        problems.push(format!(
            "{METRICS}: metric {m} is registered by the sources but not documented"
        ));
    }
    for s in stale {
        problems.push(format!(
            "{METRICS}: metric {s} is documented but no component source names it"
        ));
    }
    for name in rows.keys() {
        if !name.starts_with("rds_csi_") && !name.starts_with("process_") {
            problems.push(format!(
                "{METRICS}: {name} is neither an rds_csi_ nor a process_ family"
            ));
        }
    }
    eprintln!(
        "checked {} rds_csi_ metrics from the sources; {} families documented in all",
        registered.len(),
        rows.len()
    );
    report("metrics in docs/metrics.md", &problems);
}

/// The component names `Stack` gives, and how the metrics table names them.
const SCRAPED: [(&str, &str); 4] = [
    ("csi-frontend-controller", "csi-frontend (controller)"),
    ("csi-frontend-node", "csi-frontend (node)"),
    ("rds-gateway", "rds-gateway"),
    ("nvme-helper", "nvme-helper"),
];

/// Whether a row's component cell names `component` (`all` names every one; a bare
/// `csi-frontend` names both modes).
fn names_component(cell: &str, component: &str) -> bool {
    let cell = cell.to_ascii_lowercase();
    if cell
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
        .any(|w| w == "all")
    {
        return true;
    }
    let bare_frontend = cell
        .match_indices("csi-frontend")
        .any(|(i, m)| !cell[i + m.len()..].trim_start().starts_with('('));
    cell.contains(component) || (bare_frontend && component.starts_with("csi-frontend"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_scraped_family_is_documented() {
    require_root();
    let (rows, mut problems) = metric_rows();
    let mut bed = Bed::start_logging("docs", true, &[], "error")
        .await
        .unwrap();
    // A whole life of a filesystem and a block volume, so that the families with labels have
    // samples to show.
    for (flavor, tag) in [(Flavor::Ext4, "docs-ext4"), (Flavor::Block, "docs-block")] {
        let (steps, ok) = lifecycle::run(&bed.csi, &bed.ep.kubelet_dir, flavor, tag).await;
        if !ok {
            lifecycle::print_table(tag, &steps);
            panic!("the {tag} lifecycle failed; the metrics check needs it to run");
        }
    }
    let mut scraped_total = BTreeSet::new();
    for (stack_name, doc_name) in SCRAPED {
        let addr = bed.metrics(stack_name).unwrap();
        let body = http::get(addr, "/metrics", Duration::from_secs(10))
            .await
            .unwrap()
            .body;
        let families = scrape_families(&body);
        assert!(
            !families.is_empty(),
            "{stack_name} served no metrics:\n{body}"
        );
        for (name, family) in &families {
            scraped_total.insert(name.clone());
            let Some(row) = rows.get(name) else {
                problems.push(format!(
                    "{METRICS}: {doc_name} exports {name} ({}, labels {:?}), which is not documented",
                    family.kind, family.labels
                ));
                continue;
            };
            if row.kind != family.kind {
                problems.push(format!(
                    "{METRICS}: {name} is a {} on {doc_name}, documented as {}",
                    family.kind, row.kind
                ));
            }
            if family.samples > 0 && family.labels != row.labels {
                problems.push(format!(
                    "{METRICS}: {name} on {doc_name} has labels {:?}, documented {:?}",
                    family.labels, row.labels
                ));
            }
            if !names_component(&row.components, doc_name) {
                problems.push(format!(
                    "{METRICS}: {name} is exported by {doc_name}, but its row names {:?}",
                    row.components
                ));
            }
        }
        for (name, row) in &rows {
            if name.starts_with("process_") && !families.contains_key(name) {
                problems.push(format!(
                    "{METRICS}: {name} is documented ({}) but {doc_name} does not export it",
                    row.kind
                ));
            }
        }
    }
    let leaks = bed.stop().await.unwrap();
    assert!(leaks.is_empty(), "the run left behind: {leaks:?}");
    eprintln!(
        "scraped {} families from 4 components after an ext4 and a block lifecycle",
        scraped_total.len()
    );
    report("scraped metrics against docs/metrics.md", &problems);
}

// ---------------------------------------------------------------------------------------------
// Spans
// ---------------------------------------------------------------------------------------------

#[test]
fn every_span_is_documented() {
    let root = workspace_root();
    // Name -> (levels, attribute names, where), over every definition of that name.
    let mut spans: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>, String)> = BTreeMap::new();
    for dir in COMPONENT_SOURCES {
        for file in rust_files(&root.join(dir)).unwrap() {
            let rel = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .display()
                .to_string();
            for def in span_definitions(&read(&file).unwrap()) {
                let entry = spans.entry(def.name).or_insert_with(|| {
                    (
                        BTreeSet::new(),
                        BTreeSet::new(),
                        format!("{rel}:{}", def.line),
                    )
                });
                entry.0.insert(def.level);
                entry.1.extend(def.fields);
            }
        }
    }
    let text = page(TRACING);
    let t = table(&text, TRACING, "spans");
    let col = |n: &str| {
        t.column(n)
            .unwrap_or_else(|| panic!("{TRACING}: the spans table has no {n:?} column"))
    };
    let (name_c, level_c, attr_c) = (col("span"), col("level"), col("attributes"));
    let mut problems = Vec::new();
    let mut documented = BTreeSet::new();
    for row in &t.rows {
        let Some(name) = code_spans(t.cell(row, name_c)).into_iter().next() else {
            continue;
        };
        if !documented.insert(name.clone()) {
            problems.push(format!("{TRACING}: span {name} is documented twice"));
        }
        let Some((levels, fields, at)) = spans.get(&name) else {
            problems.push(format!(
                "{TRACING}: span {name} is documented but no component source creates it"
            ));
            continue;
        };
        let level = t.cell(row, level_c).trim().to_string();
        if levels.len() != 1 || !levels.contains(&level) {
            problems.push(format!(
                "{TRACING}: span {name} ({at}) is created at level {levels:?}, documented {level:?}"
            ));
        }
        let attrs: BTreeSet<String> = code_spans(t.cell(row, attr_c)).into_iter().collect();
        if &attrs != fields {
            problems.push(format!(
                "{TRACING}: span {name} ({at}) has attributes {fields:?}, documented {attrs:?}"
            ));
        }
    }
    for (name, (_, _, at)) in &spans {
        if !documented.contains(name) {
            problems.push(format!(
                "{TRACING}: span {name} ({at}) is created by the sources but not documented"
            ));
        }
    }
    eprintln!("checked {} span names", spans.len());
    report("spans in docs/tracing.md", &problems);
}
