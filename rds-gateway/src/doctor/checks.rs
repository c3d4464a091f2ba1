//! Checks 4–7, on the logged-in session: the RouterOS version, a harmless read the driver relies
//! on, the volume base path and the pool's free space. Each runs the gateway's typed command
//! through the gateway's executor; a RouterOS refusal in any answer (missing rights, unknown
//! command) becomes a failure whose fix names the policies the driver needs.

use std::future::Future;
use std::sync::Arc;

use prometheus::Registry;

use super::report::{CheckId, CheckResult, Report, Status};
use super::rights::{self, NEEDED_POLICIES};
use super::runner::{LineRunner, SessionRunner};
use super::{Budget, DoctorSettings};
use crate::command_metrics::CommandMetrics;
use crate::executor::{Executor, ExecutorConfig};
use crate::routeros::command::{DiskList, FilePrint, PoolCapacityQuery, SystemResourcePrint};
use crate::routeros::model::{FileEntry, PoolCapacity, RouterOsVersion};
use crate::routeros::names::{PoolPath, SlotPrefix};
use crate::routeros::size::Bytes;
use crate::routeros::{Command, Format, Record, RosError};

/// A size for people: `512.0 MiB`, `7.0 TiB` (binary units, one decimal).
pub fn human(bytes: Bytes) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes.get() as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} B", bytes.get())
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What the version means for the gateway, for the version check's line.
pub fn version_note(version: &RouterOsVersion) -> String {
    if version.supports_json() {
        "JSON output (:serialize to=json) is available; the gateway reads prints as JSON".into()
    } else {
        "no :serialize before RouterOS 7.13, so the gateway reads `print detail` text instead \
         of JSON (text fallback)"
            .into()
    }
}

/// The session, the executor over it and what every check needs.
struct Context<'a> {
    settings: &'a DoctorSettings,
    budget: &'a Budget,
    runner: Arc<SessionRunner>,
    exec: Executor,
}

impl Context<'_> {
    /// Runs `work` (one or more commands) within the command timeout and the run's budget; a
    /// refusal in the last answer wins over whatever the decoder made of it.
    async fn ask<T>(
        &self,
        check: CheckId,
        shown: &str,
        work: impl Future<Output = Result<T, RosError>>,
    ) -> Result<T, CheckResult> {
        let limit = self
            .budget
            .limit(self.settings.command_timeout, "--rds-command-timeout");
        let result = tokio::time::timeout(limit.after, work).await;
        if let Some(refusal) = self.refusal() {
            // Name the line that was refused (it may be the JSON form of `shown`).
            let sent = self.runner.last().map(|r| r.line);
            let user = &self.settings.user;
            return Err(CheckResult::fail(
                check,
                refusal.seen(user, sent.as_deref().unwrap_or(shown)),
                refusal.fix(user),
            ));
        }
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(CheckResult::fail(
                check,
                format!("`{shown}` failed: {e}"),
                failure_fix(&e, &self.settings.user),
            )),
            Err(_) => Err(CheckResult::fail(
                check,
                format!("`{shown}` got no answer within {limit}"),
                "the RDS is slow or the session stalled: run the doctor again, and raise \
                 --rds-command-timeout or --timeout if the RDS is busy",
            )),
        }
    }

    fn refusal(&self) -> Option<rights::Refusal> {
        let last = self.runner.last()?;
        let out = last.output?;
        rights::refusal("doctor", &out)
    }

    /// True when the last print went out as JSON.
    fn last_was_json(&self) -> bool {
        self.runner
            .last()
            .is_some_and(|r| r.line.starts_with(":put [:serialize"))
    }
}

fn failure_fix(e: &RosError, user: &str) -> String {
    match e {
        RosError::Transport { .. } => {
            "the session to the RDS broke: check the RDS's load and log (/log print) and run the \
             doctor again"
                .into()
        }
        RosError::Timeout { .. } => {
            "the RDS answered too late: raise --rds-command-timeout if it is busy".into()
        }
        RosError::Unparseable { .. } => {
            "the answer is not in a shape the gateway reads: report it with the RouterOS version \
             (this is a gateway bug or an unsupported RouterOS release)"
                .into()
        }
        _ => format!(
            "check that the RouterOS user {user} has the policies {NEEDED_POLICIES} and that \
             the rose-storage package is installed (/system package print)"
        ),
    }
}

/// Check 4: the version, and with it the form prints take.
async fn routeros_version(cx: &Context<'_>) -> CheckResult {
    const ID: CheckId = CheckId::RouterosVersion;
    // The executor reads the version itself first (to choose text or JSON), then runs the print.
    let shown = SystemResourcePrint.to_line();
    let records = match cx
        .ask(ID, &shown, cx.exec.print(|_: Format| SystemResourcePrint))
        .await
    {
        Ok(records) => records,
        Err(failed) => return failed,
    };
    let Some(record) = records.first() else {
        return CheckResult::fail(
            ID,
            format!("`{shown}` printed nothing"),
            "check that the RouterOS user may read the system resources (policy read)",
        );
    };
    let version = match RouterOsVersion::from_record(record) {
        Ok(v) => v,
        Err(e) => {
            return CheckResult::fail(
                ID,
                format!("no RouterOS version can be read from `{shown}`: {e}"),
                "the driver needs RouterOS 7 on a ROSE Data Server: check that --rds-address is \
                 the RDS",
            );
        }
    };
    let raw = record.get("version").unwrap_or_default().to_owned();
    if version.major < 7 {
        return CheckResult::fail(
            ID,
            format!("RouterOS {raw}: the ROSE storage features need RouterOS 7"),
            "upgrade the RDS to RouterOS 7 (/system package update)",
        );
    }
    // From here on every print uses the form this version supports.
    cx.runner.publish_version(&raw);
    let board = record
        .get("board-name")
        .map(|b| format!(" on {b}"))
        .unwrap_or_default();
    CheckResult::pass(
        ID,
        format!("RouterOS {raw}{board}; {}", version_note(&version)),
    )
}

fn first_prefix(s: &DoctorSettings) -> Result<SlotPrefix, CheckResult> {
    let raw = s
        .prefixes
        .iter()
        .map(|p| p.trim())
        .find(|p| !p.is_empty())
        .unwrap_or("pvc-");
    SlotPrefix::parse(raw).map_err(|e| {
        CheckResult::fail(
            CheckId::UserRights,
            format!("--managed-slot-prefix {raw:?} cannot be used: {e}"),
            "give slot prefixes of letters, digits and '-' (for example pvc-)",
        )
    })
}

/// Check 5: a read the driver does all the time (`/disk print` of its own slots).
async fn user_rights(cx: &Context<'_>) -> CheckResult {
    const ID: CheckId = CheckId::UserRights;
    let prefix = match first_prefix(cx.settings) {
        Ok(p) => p,
        Err(failed) => return failed,
    };
    let shown = DiskList::new(&prefix).to_line();
    let records = match cx
        .ask(
            ID,
            &shown,
            cx.exec.print(|f| DiskList::new(&prefix).format(f)),
        )
        .await
    {
        Ok(records) => records,
        Err(failed) => return failed,
    };
    let form = if cx.last_was_json() { "JSON" } else { "text" };
    CheckResult::pass(
        ID,
        format!(
            "user {} may read /disk: {} disk(s) with slot prefix {prefix} (read as {form}); \
             creating and deleting volumes also needs the write policy ({NEEDED_POLICIES} in \
             all), which this read-only check cannot prove",
            cx.settings.user,
            records.len()
        ),
    )
}

/// Check 6: the volume base path is a directory.
async fn base_path(cx: &Context<'_>, pool: &PoolPath) -> CheckResult {
    const ID: CheckId = CheckId::BasePath;
    let shown = FilePrint::directory(pool).to_line();
    let records = match cx
        .ask(
            ID,
            &shown,
            cx.exec.print(|f| FilePrint::directory(pool).format(f)),
        )
        .await
    {
        Ok(records) => records,
        Err(failed) => return failed,
    };
    let entries = match FileEntry::from_records(&records) {
        Ok(entries) => entries,
        Err(e) => {
            return CheckResult::fail(
                ID,
                format!("`{shown}` answered something unreadable: {e}"),
                "report it with the RouterOS version (a gateway bug or an unsupported release)",
            );
        }
    };
    let path = pool.relative();
    match entries.iter().find(|e| e.name.relative() == path) {
        None => CheckResult::fail(
            ID,
            format!("the volume base path {path} does not exist on the RDS"),
            format!(
                "create it on the RDS (`/file add name={path} type=directory`), or point \
                 --rds-volume-base-path at an existing directory inside a storage pool \
                 (`/file print where type=directory` lists them)"
            ),
        ),
        Some(e) if !e.is_directory() => CheckResult::fail(
            ID,
            format!(
                "{path} exists on the RDS but is a {}, not a directory",
                e.kind
            ),
            "rename or remove it, or choose another --rds-volume-base-path",
        ),
        Some(_) => CheckResult::pass(
            ID,
            format!(
                "{path} is a directory on the RDS (pool {})",
                pool.mount_point()
            ),
        ),
    }
}

/// Reads capacity one way.
async fn capacity_by(
    cx: &Context<'_>,
    pool: &PoolPath,
    by_file: bool,
) -> Result<PoolCapacity, RosError> {
    let records: Vec<Record> = cx
        .exec
        .print(|f| {
            let q = if by_file {
                PoolCapacityQuery::by_file(pool)
            } else {
                PoolCapacityQuery::by_mount_point(pool)
            };
            q.format(f)
        })
        .await?;
    PoolCapacity::from_records(&records, pool)
}

/// Capacity as the gateway's refresher reads it: from the pool disk, else from the pool's
/// directory entry.
async fn read_capacity(cx: &Context<'_>, pool: &PoolPath) -> Result<PoolCapacity, RosError> {
    match capacity_by(cx, pool, false).await {
        Err(e @ (RosError::Transport { .. } | RosError::Timeout { .. })) => Err(e),
        Ok(capacity) => Ok(capacity),
        // Refused for lack of rights: the other print would be refused too.
        Err(e) if cx.refusal().is_some() => Err(e),
        Err(_) => capacity_by(cx, pool, true).await,
    }
}

/// Check 7: the pool's free space against `--min-free`.
async fn free_space(cx: &Context<'_>, pool: &PoolPath) -> CheckResult {
    const ID: CheckId = CheckId::FreeSpace;
    let mount = pool.mount_point();
    let shown = PoolCapacityQuery::by_mount_point(pool).to_line();
    let capacity = match cx.ask(ID, &shown, read_capacity(cx, pool)).await {
        Ok(c) => c,
        Err(mut failed) => {
            if failed.status == Status::Fail && cx.refusal().is_none() {
                failed.fix = Some(format!(
                    "check that {mount} (the first part of --rds-volume-base-path) is the mount \
                     point of a storage pool: `/disk print detail where mount-point=\"{mount}\"` \
                     must show size= and free="
                ));
            }
            return failed;
        }
    };
    let used = if capacity.total.get() == 0 {
        0
    } else {
        capacity.used().get().saturating_mul(100) / capacity.total.get()
    };
    let seen = format!(
        "pool {mount}: {} free of {} ({used}% used)",
        human(capacity.free),
        human(capacity.total)
    );
    let min = cx.settings.min_free;
    if capacity.free < min {
        CheckResult::fail(
            ID,
            format!("{seen}, below --min-free {}", human(min)),
            format!(
                "free space in pool {mount} (delete volumes no longer needed), grow the pool, or \
                 lower --min-free"
            ),
        )
    } else {
        CheckResult::pass(ID, format!("{seen}; --min-free is {}", human(min)))
    }
}

/// Runs checks 4–7 on `session` and ends it; a check that cannot run is left out (the caller
/// records it as skipped).
pub async fn run(
    settings: &DoctorSettings,
    budget: &Budget,
    session: Box<dyn LineRunner>,
    report: &mut Report,
) {
    let runner = SessionRunner::new(session);
    let exec = match CommandMetrics::register(&Registry::new()) {
        Ok(metrics) => Executor::new(
            runner.clone(),
            ExecutorConfig {
                default_timeout: settings.command_timeout,
                max_timeout: settings.max_command_timeout.max(settings.command_timeout),
            },
            metrics,
        ),
        Err(e) => {
            report.push(CheckResult::fail(
                CheckId::RouterosVersion,
                format!("the doctor cannot set up its command executor: {e}"),
                "report this as a gateway bug",
            ));
            runner.close().await;
            return;
        }
    };
    let cx = Context {
        settings,
        budget,
        runner: runner.clone(),
        exec,
    };
    let mut results = Vec::new();
    results.push(routeros_version(&cx).await);
    if results.last().is_some_and(|r| r.status == Status::Pass) {
        results.push(user_rights(&cx).await);
    }
    if results
        .last()
        .is_some_and(|r| r.check == CheckId::UserRights && r.status == Status::Pass)
    {
        match PoolPath::parse(&settings.base_path) {
            Ok(pool) => {
                results.push(base_path(&cx, &pool).await);
                results.push(free_space(&cx, &pool).await);
            }
            Err(e) => {
                results.push(CheckResult::fail(
                    CheckId::BasePath,
                    format!(
                        "--rds-volume-base-path {:?} cannot be used: {e}",
                        settings.base_path
                    ),
                    "give a directory inside a storage pool, such as \
                     storage-pool/kubernetes-volumes",
                ));
                results.push(CheckResult::skip(
                    CheckId::FreeSpace,
                    "not run: the pool comes from --rds-volume-base-path, which cannot be used",
                ));
            }
        }
    }
    for r in results {
        report.push(r);
    }
    runner.close().await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::runner::BoxFuture;
    use crate::ssh::{ExecOutput, TransportError};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    const VERSION: &str = "   uptime: 3d\n  version: 7.16.2 (stable)\n  board-name: RDS2216\n";
    const DENIED: &str = "not enough permissions (9)\n";

    type Script = Box<dyn Fn(&str) -> Option<&'static str> + Send + Sync>;

    /// Answers lines from a script (falling back to a healthy RDS) and records them.
    struct Scripted {
        script: Script,
        lines: Arc<Mutex<Vec<String>>>,
    }

    /// A healthy RDS, in the form the line asks for (the executor switches to text for the rest
    /// of a session once a JSON answer does not decode).
    fn healthy(line: &str) -> &'static str {
        let json = line.starts_with(":put [:serialize");
        let pick = |j: &'static str, t: &'static str| if json { j } else { t };
        if line.contains("/system resource print") {
            VERSION
        } else if line.contains("mount-point=") {
            // Capacity is not printed on the pool disk here: the pool directory has it.
            pick("[]", "")
        } else if line.contains("/disk print") {
            pick(
                r#"[{".id":"*4","slot":"pvc-1","type":"file"}]"#,
                " 0  slot=pvc-1 type=file\n",
            )
        } else if line.contains("kubernetes-volumes") {
            pick(
                r#"[{".id":"*9","name":"storage-pool/kubernetes-volumes","type":"directory"}]"#,
                " 0 name=storage-pool/kubernetes-volumes type=directory\n",
            )
        } else if line.contains("/file print") {
            pick(
                r#"[{"name":"storage-pool","type":"directory","size":68719476736,"free":34359738368}]"#,
                " 0 name=storage-pool type=directory size=68 719 476 736 free=34 359 738 368\n",
            )
        } else {
            "bad command name x (line 1 column 1)"
        }
    }

    impl LineRunner for Scripted {
        fn exec<'a>(
            &'a self,
            line: &'a str,
            _deadline: Instant,
        ) -> BoxFuture<'a, Result<ExecOutput, TransportError>> {
            self.lines.lock().unwrap().push(line.to_owned());
            let text = (self.script)(line).unwrap_or_else(|| healthy(line));
            Box::pin(async move {
                Ok(ExecOutput {
                    stdout: text.as_bytes().to_vec(),
                    exit_status: Some(0),
                    ..ExecOutput::default()
                })
            })
        }

        fn close(&self) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    /// Runs checks 4–7 against `script`; returns the results and the lines sent.
    async fn checks_against(
        script: impl Fn(&str) -> Option<&'static str> + Send + Sync + 'static,
    ) -> (Vec<CheckResult>, Vec<String>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let runner = Scripted {
            script: Box::new(script),
            lines: lines.clone(),
        };
        let mut settings = DoctorSettings::new(Some("rds".into()));
        settings.user = "csi".into();
        settings.command_timeout = Duration::from_secs(5);
        let mut report = Report::new();
        run(
            &settings,
            &Budget::new(Duration::from_secs(30)),
            Box::new(runner),
            &mut report,
        )
        .await;
        let sent = lines.lock().unwrap().clone();
        (report.results().to_vec(), sent)
    }

    fn result(results: &[CheckResult], check: CheckId) -> &CheckResult {
        results
            .iter()
            .find(|r| r.check == check)
            .unwrap_or_else(|| panic!("no {check:?} in {results:?}"))
    }

    #[tokio::test]
    async fn a_healthy_rds_passes_and_capacity_falls_back_to_the_pool_directory() {
        let (results, sent) = checks_against(|_| None).await;
        assert_eq!(results.len(), 4, "{results:?}");
        assert!(
            results.iter().all(|r| r.status == Status::Pass),
            "{results:?}"
        );
        assert!(
            result(&results, CheckId::UserRights)
                .seen
                .contains("1 disk(s)")
        );
        let free = &result(&results, CheckId::FreeSpace).seen;
        assert_eq!(
            free,
            "pool storage-pool: 32.0 GiB free of 64.0 GiB (50% used); --min-free is 1.0 GiB"
        );
        let by_disk = sent
            .iter()
            .position(|l| l.contains("mount-point=\"storage-pool\""));
        let by_file = sent
            .iter()
            .position(|l| l.contains("where name=\"storage-pool\""));
        assert!(by_disk.is_some() && by_disk < by_file, "{sent:?}");
    }

    #[tokio::test]
    async fn a_refused_disk_read_fails_user_rights_with_the_policies_and_stops() {
        let (results, sent) = checks_against(|l| l.contains("/disk print").then_some(DENIED)).await;
        assert_eq!(
            results.len(),
            2,
            "later checks are left to be skipped: {results:?}"
        );
        assert_eq!(
            result(&results, CheckId::RouterosVersion).status,
            Status::Pass
        );
        let rights = result(&results, CheckId::UserRights);
        assert_eq!(rights.status, Status::Fail);
        assert!(
            rights
                .seen
                .contains("for user csi: not enough permissions (9)"),
            "{rights:?}"
        );
        // The refused line is named as sent (the JSON form failed to decode and text was tried).
        let last = sent.last().unwrap();
        assert!(
            rights.seen.contains(&format!("`{last}`")),
            "{rights:?} {sent:?}"
        );
        let fix = rights.fix.as_deref().unwrap();
        assert!(fix.contains("policy=ssh,read,write"), "{fix}");
        assert!(
            fix.contains("/user set [find name=csi] group=rds-csi"),
            "{fix}"
        );
    }

    #[tokio::test]
    async fn a_refused_directory_read_is_a_rights_failure_not_a_missing_directory() {
        let (results, _) = checks_against(|l| {
            (l.contains("/file print") && l.contains("kubernetes-volumes")).then_some(DENIED)
        })
        .await;
        let base = result(&results, CheckId::BasePath);
        assert_eq!(base.status, Status::Fail);
        assert!(base.seen.contains("not enough permissions"), "{base:?}");
        assert!(!base.seen.contains("does not exist"), "{base:?}");
        assert!(
            base.fix
                .as_deref()
                .unwrap()
                .contains("policy=ssh,read,write")
        );
        // The refusal did not decode as JSON, so the rest of the session reads text.
        let free = result(&results, CheckId::FreeSpace);
        assert_eq!(free.status, Status::Pass, "{free:?}");
    }

    #[tokio::test]
    async fn a_refused_version_read_fails_first_with_the_policies() {
        let (results, _) = checks_against(|l| {
            l.contains("/system resource")
                .then_some("failure: not enough permissions (9)\n")
        })
        .await;
        assert_eq!(results.len(), 1, "{results:?}");
        let version = &results[0];
        assert_eq!(
            (version.check, version.status),
            (CheckId::RouterosVersion, Status::Fail)
        );
        assert!(
            version
                .fix
                .as_deref()
                .unwrap()
                .contains("policy=ssh,read,write")
        );
    }

    #[tokio::test]
    async fn routeros_6_is_refused() {
        let (results, _) = checks_against(|l| {
            l.contains("/system resource")
                .then_some("  version: 6.49.10 (long-term)\n")
        })
        .await;
        let version = result(&results, CheckId::RouterosVersion);
        assert_eq!(version.status, Status::Fail);
        assert!(version.seen.contains("need RouterOS 7"), "{version:?}");
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human(Bytes::new(0)), "0 B");
        assert_eq!(human(Bytes::new(1023)), "1023 B");
        assert_eq!(human(Bytes::new(512 << 20)), "512.0 MiB");
        assert_eq!(human(Bytes::new(3 << 29)), "1.5 GiB");
        assert_eq!(human(Bytes::new(7_681_574_174_720)), "7.0 TiB");
    }

    #[test]
    fn the_version_note_says_json_or_text_fallback() {
        let new = RouterOsVersion::parse("7.16.2 (stable)").unwrap();
        assert!(version_note(&new).contains("JSON"));
        assert!(!version_note(&new).contains("fallback"));
        let old = RouterOsVersion::parse("7.10").unwrap();
        assert!(version_note(&old).contains("text fallback"));
    }
}
