//! Runs one typed RouterOS [`Command`] and hands back what it means: nothing for a mutation, the
//! decoded records for a print, or a classified [`RosError`].
//!
//! Every command here:
//! - gets a deadline: the caller's gRPC deadline (from [`CallContext`]), else the configured
//!   default, never beyond the hard maximum; the executor enforces it itself too, whatever the
//!   runner does;
//! - is checked for RouterOS failure text on both streams and the exit status
//!   ([`classify_for`]), because RouterOS reports most failures as text;
//! - is one `routeros.command` span (attributes `routeros.verb`, `rds.slot`, `routeros.result`:
//!   never the line, which holds paths and NQNs) and one sample in
//!   [`crate::command_metrics::CommandMetrics`].
//!
//! Prints are read in JSON (`:serialize to=json`) on RouterOS 7.13 and later and as `print detail`
//! text otherwise. The version is taken once per connection (the connection's start time in the
//! runner's state identifies it): from the version the transport's `/system resource print` probe
//! published, or by running `/system resource print` here when it published none. After a
//! reconnect it is read again. While no connection is up, prints use text. When JSON output does
//! not decode, the same print is run again as text and text is used for the rest of that
//! connection.
//!
//! A mutation that prints text that is not a recognised failure is logged, not failed: every
//! mutation is verified by reading back, which is the real check.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rds_csi_proto::hop::CallContext;
use tokio::sync::watch;
use tracing::Instrument;

use crate::command_metrics::{self, CommandMetrics};
use crate::routeros::command::SystemResourcePrint;
use crate::routeros::model::RouterOsVersion;
use crate::routeros::names::escape_limited;
use crate::routeros::{
    Command, Format, Output, Record, RosError, Subject, classify_for, json, text,
};
use crate::runner::{CommandRunner, RunOutput};
use crate::ssh::ConnectionState;
use crate::ssh::deadline::effective_deadline;

/// Deadlines of commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutorConfig {
    /// Deadline of a command whose caller gave none.
    pub default_timeout: Duration,
    /// Upper bound of any command's deadline.
    pub max_timeout: Duration,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            default_timeout: crate::ssh::config::DEFAULT_COMMAND_TIMEOUT,
            max_timeout: crate::ssh::config::DEFAULT_MAX_COMMAND_TIMEOUT,
        }
    }
}

/// What the executor knows about the appliance on the current connection.
#[derive(Debug, Clone, Default)]
struct Dialect {
    /// Start of the connected period this knowledge belongs to.
    epoch: Option<SystemTime>,
    version: Option<RouterOsVersion>,
    format: Format,
}

/// Runs typed commands through a [`CommandRunner`].
pub struct Executor {
    runner: Arc<dyn CommandRunner>,
    state: watch::Receiver<ConnectionState>,
    config: ExecutorConfig,
    metrics: CommandMetrics,
    dialect: Mutex<Dialect>,
    /// Only one task reads the version at a time; the others wait for its answer.
    detecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("config", &self.config)
            .field("dialect", &*self.dialect())
            .finish()
    }
}

/// The slot a command is about, for the span (empty when it is about no slot).
fn slot_attribute(subject: &Subject) -> String {
    match subject {
        Subject::Slot(s) => s.to_string(),
        Subject::Image(i) => i.slot().to_string(),
        Subject::None | Subject::Path(_) | Subject::Pool(_) => String::new(),
    }
}

/// The start of the current connected period, if connected.
fn epoch_of(state: &ConnectionState) -> Option<SystemTime> {
    match state {
        ConnectionState::Connected { since, .. } => Some(*since),
        ConnectionState::Connecting { .. } | ConnectionState::Down { .. } => None,
    }
}

fn format_for(version: Option<&RouterOsVersion>) -> Format {
    match version {
        Some(v) if v.supports_json() => Format::Json,
        _ => Format::Text,
    }
}

impl Executor {
    /// An executor over `runner`, recording into `metrics`.
    pub fn new(
        runner: Arc<dyn CommandRunner>,
        config: ExecutorConfig,
        metrics: CommandMetrics,
    ) -> Self {
        let state = runner.state();
        Executor {
            runner,
            state,
            config,
            metrics,
            dialect: Mutex::new(Dialect::default()),
            detecting: tokio::sync::Mutex::new(()),
        }
    }

    fn dialect(&self) -> MutexGuard<'_, Dialect> {
        self.dialect.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection state, updated as it changes.
    pub fn connection(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// The RouterOS version known for the current connection, if it was read.
    pub fn routeros_version(&self) -> Option<RouterOsVersion> {
        let epoch = epoch_of(&self.state.borrow());
        let d = self.dialect();
        if epoch.is_some() && d.epoch == epoch {
            d.version.clone()
        } else {
            None
        }
    }

    /// The deadline a command started `now` runs under (also used to bound waits for a slot).
    pub fn deadline(&self, now: Instant) -> Instant {
        let requested = CallContext::current().and_then(|c| c.deadline);
        effective_deadline(
            requested,
            now,
            self.config.default_timeout,
            self.config.max_timeout,
        )
    }

    /// Runs a mutation (`/disk add`, `/disk remove`, ...).
    pub async fn run(&self, command: &(dyn Command + Sync)) -> Result<(), RosError> {
        self.execute(command).await.map(|_| ())
    }

    /// Runs a print in the form the appliance reads best and returns its records. `build` makes
    /// the print in a given form.
    pub async fn print<C, F>(&self, build: F) -> Result<Vec<Record>, RosError>
    where
        C: Command + Sync,
        F: Fn(Format) -> C,
    {
        if self.format().await? == Format::Json {
            match self.execute(&build(Format::Json)).await {
                Err(e @ RosError::Unparseable { .. }) => {
                    tracing::warn!(
                        "JSON print output did not decode ({e}); using print detail text on this \
                         connection"
                    );
                    self.dialect().format = Format::Text;
                }
                other => return other,
            }
        }
        self.execute(&build(Format::Text)).await
    }

    /// The form prints use on the current connection, reading the version first when needed.
    /// While not connected, text (which every version reads) is used without reading the
    /// version, so a command fails, or waits for the connection, under its own verb.
    async fn format(&self) -> Result<Format, RosError> {
        if epoch_of(&self.state.borrow()).is_none() {
            return Ok(Format::Text);
        }
        if let Some(format) = self.known_format() {
            return Ok(format);
        }
        let wait = async {
            let _single = self.detecting.lock().await;
            if let Some(format) = self.known_format() {
                return Ok(format);
            }
            let version = self.detect_version().await?;
            let format = format_for(version.as_ref());
            let epoch = epoch_of(&self.state.borrow());
            tracing::info!(
                routeros.version = version
                    .as_ref()
                    .map(|v| format!("{}.{}.{}", v.major, v.minor, v.patch))
                    .unwrap_or_default(),
                json = format == Format::Json,
                "RouterOS version read for this connection"
            );
            *self.dialect() = Dialect {
                epoch,
                version,
                format,
            };
            Ok(format)
        };
        let deadline = self.deadline(Instant::now());
        match tokio::time::timeout_at(deadline.into(), wait).await {
            Ok(result) => result,
            Err(_) => Err(RosError::timeout(
                SystemResourcePrint.verb(),
                Subject::None,
                deadline.saturating_duration_since(Instant::now()),
            )),
        }
    }

    fn known_format(&self) -> Option<Format> {
        let epoch = epoch_of(&self.state.borrow())?;
        let d = self.dialect();
        (d.epoch == Some(epoch)).then_some(d.format)
    }

    /// The version the transport published for this connection, else `/system resource print`.
    /// `None` when the appliance printed none that parses (text prints are then used).
    async fn detect_version(&self) -> Result<Option<RouterOsVersion>, RosError> {
        let published = match &*self.state.borrow() {
            ConnectionState::Connected {
                routeros_version: Some(v),
                ..
            } => RouterOsVersion::parse(v),
            _ => None,
        };
        if published.is_some() {
            return Ok(published);
        }
        let records = self.execute(&SystemResourcePrint).await?;
        let parsed = records.first().map(RouterOsVersion::from_record);
        match parsed {
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(e)) => {
                tracing::warn!("cannot read the RouterOS version ({e}); using text prints");
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Runs one command in one form: deadline, span, metrics, classification, decoding.
    async fn execute(&self, command: &(dyn Command + Sync)) -> Result<Vec<Record>, RosError> {
        let verb = command.verb();
        let subject = command.subject();
        let span = tracing::info_span!(
            "routeros.command",
            routeros.verb = verb,
            rds.slot = %slot_attribute(&subject),
            routeros.result = tracing::field::Empty,
        );
        let work = async {
            let started = Instant::now();
            let deadline = self.deadline(started);
            let line = command.to_line();
            let ran =
                tokio::time::timeout_at(deadline.into(), self.runner.run(&line, Some(deadline)))
                    .await;
            let result = match ran {
                Ok(Ok(out)) => interpret(command, &subject, &out),
                Ok(Err(failure)) => Err(failure.into_ros(verb, subject.clone())),
                Err(_) => Err(RosError::timeout(
                    verb,
                    subject.clone(),
                    deadline.saturating_duration_since(started),
                )),
            };
            let label = match &result {
                Ok(_) => command_metrics::SUCCESS,
                Err(e) => command_metrics::result_label(e),
            };
            tracing::Span::current().record("routeros.result", label);
            self.metrics.observe(verb, label, started.elapsed());
            if let Err(e) = &result {
                tracing::debug!("RouterOS command failed: {e}");
            }
            result
        };
        work.instrument(span).await
    }
}

/// Classifies a command's output and decodes it as its form says.
fn interpret(
    command: &(dyn Command + Sync),
    subject: &Subject,
    out: &RunOutput,
) -> Result<Vec<Record>, RosError> {
    classify_for(
        command.verb(),
        subject.clone(),
        &out.stdout,
        &out.stderr,
        out.exit_status,
    )?;
    let about = |e: RosError| e.about(subject.clone());
    match command.output() {
        Output::Nothing => {
            let printed = format!("{}{}", out.stdout.trim(), out.stderr.trim());
            if !printed.is_empty() {
                tracing::warn!(
                    routeros.verb = command.verb(),
                    output = %escape_limited(&printed, 200),
                    "a RouterOS mutation printed text that is not a known failure; the result \
                     is verified by reading back"
                );
            }
            Ok(Vec::new())
        }
        Output::Detail => text::parse_detail(&out.stdout)
            .map(|t| t.records)
            .map_err(about),
        Output::Json => json::parse_json(&out.stdout).map_err(about),
        Output::Colon => text::parse_colon(&out.stdout)
            .map(|r| vec![r])
            .map_err(about),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::routeros::command::DiskPrint;
    use crate::routeros::model::Disk;
    use crate::routeros::names::Slot;
    use crate::runner::BoxFuture;
    use crate::runner::RunFailure;

    /// What the scripted runner answers to one line.
    #[derive(Clone)]
    pub(crate) enum Reply {
        Out(RunOutput),
        Hang,
        Fail(RunFailure),
    }

    pub(crate) fn out(stdout: &str) -> Reply {
        Reply::Out(RunOutput {
            stdout: stdout.into(),
            ..RunOutput::default()
        })
    }

    type Script = Box<dyn Fn(&str) -> Reply + Send + Sync>;

    /// A runner that answers from a script and records every line with its deadline.
    pub(crate) struct Scripted {
        pub state: watch::Sender<ConnectionState>,
        pub script: Script,
        pub seen: Mutex<Vec<(String, Option<Instant>)>>,
    }

    impl Scripted {
        pub(crate) fn new(version: Option<&str>, script: Script) -> Arc<Scripted> {
            let (state, _) = watch::channel(ConnectionState::Connected {
                since: SystemTime::UNIX_EPOCH,
                routeros_version: version.map(str::to_owned),
            });
            Arc::new(Scripted {
                state,
                script,
                seen: Mutex::new(Vec::new()),
            })
        }

        pub(crate) fn lines(&self) -> Vec<String> {
            self.seen
                .lock()
                .unwrap()
                .iter()
                .map(|(l, _)| l.clone())
                .collect()
        }
    }

    impl CommandRunner for Scripted {
        fn run<'a>(
            &'a self,
            line: &'a str,
            deadline: Option<Instant>,
        ) -> BoxFuture<'a, Result<RunOutput, RunFailure>> {
            self.seen.lock().unwrap().push((line.to_owned(), deadline));
            let reply = (self.script)(line);
            Box::pin(async move {
                match reply {
                    Reply::Out(o) => Ok(o),
                    Reply::Fail(f) => Err(f),
                    Reply::Hang => {
                        std::future::pending::<()>().await;
                        Err(RunFailure::Unavailable {
                            detail: "unreachable".into(),
                        })
                    }
                }
            })
        }

        fn state(&self) -> watch::Receiver<ConnectionState> {
            self.state.subscribe()
        }
    }

    fn executor(runner: Arc<Scripted>, config: ExecutorConfig) -> (Executor, prometheus::Registry) {
        let registry = prometheus::Registry::new();
        let metrics = CommandMetrics::register(&registry).unwrap();
        (Executor::new(runner, config, metrics), registry)
    }

    fn slot() -> Slot {
        Slot::parse("pvc-1").unwrap()
    }

    const DISK_TEXT: &str = "Flags: B - BLOCK-DEVICE\n 0 B type=file slot=\"pvc-1\" size=1 048 576 \
                             file-path=/pool/pvc-1.img\n";
    const DISK_JSON: &str = "[{\"type\":\"file\",\"slot\":\"pvc-1\",\"size\":1048576.000000,\
                             \"file-path\":\"/pool/pvc-1.img\"}]";

    fn answers(line: &str) -> Reply {
        if line.starts_with(":put") {
            out(DISK_JSON)
        } else if line.starts_with("/system resource") {
            out("uptime: 1d\nversion: 7.12.1 (stable)\n")
        } else {
            out(DISK_TEXT)
        }
    }

    #[tokio::test]
    async fn json_from_7_13_and_text_before() {
        for (version, json) in [("7.16.2 (stable)", true), ("7.12.1 (stable)", false)] {
            let runner = Scripted::new(Some(version), Box::new(answers));
            let (exec, _) = executor(runner.clone(), ExecutorConfig::default());
            let records = exec
                .print(|f| DiskPrint::new(&slot()).format(f))
                .await
                .unwrap();
            let disk = Disk::from_record(&records[0]).unwrap();
            assert_eq!(disk.size.get(), 1 << 20);
            let lines = runner.lines();
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert_eq!(lines[0].starts_with(":put"), json, "{version}: {lines:?}");
        }
    }

    #[tokio::test]
    async fn version_read_by_command_once_per_connection() {
        let runner = Scripted::new(None, Box::new(answers));
        let (exec, _) = executor(runner.clone(), ExecutorConfig::default());
        for _ in 0..3 {
            exec.print(|f| DiskPrint::new(&slot()).format(f))
                .await
                .unwrap();
        }
        let resource = |r: &Scripted| {
            r.lines()
                .iter()
                .filter(|l| l.starts_with("/system resource"))
                .count()
        };
        assert_eq!(resource(&runner), 1);
        assert_eq!(exec.routeros_version().unwrap().minor, 12);
        // A reconnect (a new connected period) makes the executor read the version again.
        runner.state.send_replace(ConnectionState::Connected {
            since: SystemTime::UNIX_EPOCH + Duration::from_secs(60),
            routeros_version: None,
        });
        assert!(exec.routeros_version().is_none());
        exec.print(|f| DiskPrint::new(&slot()).format(f))
            .await
            .unwrap();
        assert_eq!(resource(&runner), 2);
    }

    #[tokio::test]
    async fn without_a_connection_prints_are_text_and_fail_under_their_own_verb() {
        let runner = Scripted::new(
            Some("7.16"),
            Box::new(|_: &str| {
                Reply::Fail(RunFailure::Unavailable {
                    detail: "connection refused".into(),
                })
            }),
        );
        runner
            .state
            .send_replace(ConnectionState::Connecting { attempt: 2 });
        let (exec, _) = executor(runner.clone(), ExecutorConfig::default());
        let err = exec
            .print(|f| DiskPrint::new(&slot()).format(f))
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("disk-print"), "{err}");
        assert_eq!(runner.lines(), ["/disk print detail where slot=pvc-1"]);
    }

    #[tokio::test]
    async fn undecodable_json_falls_back_to_text_for_the_connection() {
        let runner = Scripted::new(
            Some("7.15"),
            Box::new(|line: &str| {
                if line.starts_with(":put") {
                    out("<garbage not json")
                } else {
                    out(DISK_TEXT)
                }
            }),
        );
        let (exec, registry) = executor(runner.clone(), ExecutorConfig::default());
        for _ in 0..2 {
            let records = exec
                .print(|f| DiskPrint::new(&slot()).format(f))
                .await
                .unwrap();
            assert_eq!(records.len(), 1);
        }
        let lines = runner.lines();
        assert_eq!(lines.len(), 3, "one JSON try, then text twice: {lines:?}");
        assert!(lines[0].starts_with(":put") && lines[1].starts_with("/disk"));
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(
            text.contains(
                "rds_csi_routeros_commands_total{result=\"unparseable\",verb=\"disk-print\"} 1"
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn failure_text_is_classified() {
        let runner = Scripted::new(
            Some("7.12"),
            Box::new(|_: &str| out("failure: not enough space")),
        );
        let (exec, _) = executor(runner, ExecutorConfig::default());
        let err = exec.run(&DiskPrint::new(&slot())).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.to_string().contains("pvc-1"), "{err}");
    }

    #[tokio::test]
    async fn default_deadline_applies_and_a_hung_command_times_out() {
        let runner = Scripted::new(Some("7.12"), Box::new(|_: &str| Reply::Hang));
        let config = ExecutorConfig {
            default_timeout: Duration::from_millis(50),
            max_timeout: Duration::from_secs(5),
        };
        let (exec, registry) = executor(runner.clone(), config);
        let started = Instant::now();
        let err = exec.run(&DiskPrint::new(&slot())).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let (_, deadline) = runner.seen.lock().unwrap()[0];
        let given = deadline.unwrap().saturating_duration_since(started);
        assert!(
            given >= Duration::from_millis(45) && given <= Duration::from_millis(70),
            "the runner got the default deadline: {given:?}"
        );
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(
            text.contains("result=\"timeout\",verb=\"disk-print\"} 1"),
            "{text}"
        );
    }

    /// One span seen: id, name, fields (recorded ones included).
    type SeenSpan = (u64, String, Vec<(String, String)>);

    /// Spans seen by a test subscriber.
    #[derive(Clone, Default)]
    struct Spans(Arc<Mutex<Vec<SeenSpan>>>);

    struct Fields<'a>(&'a mut Vec<(String, String)>);

    impl tracing::field::Visit for Fields<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push((field.name().to_owned(), format!("{value:?}")));
        }
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            self.0.push((field.name().to_owned(), value.to_owned()));
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            id: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut fields = Vec::new();
            attrs.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push((
                id.into_u64(),
                attrs.metadata().name().to_owned(),
                fields,
            ));
        }
        fn on_record(
            &self,
            id: &tracing::span::Id,
            values: &tracing::span::Record<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut spans = self.0.lock().unwrap();
            if let Some(span) = spans.iter_mut().find(|s| s.0 == id.into_u64()) {
                values.record(&mut Fields(&mut span.2));
            }
        }
    }

    #[tokio::test]
    async fn one_span_per_command_with_verb_slot_and_result_but_not_the_line() {
        use tracing_subscriber::layer::SubscriberExt;
        let spans = Spans::default();
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
        let runner = Scripted::new(Some("7.16"), Box::new(answers));
        let (exec, _) = executor(runner, ExecutorConfig::default());
        let image = crate::routeros::names::ImagePath::new(
            &crate::routeros::names::PoolPath::parse("secret-pool/dir").unwrap(),
            &slot(),
        );
        exec.run(&crate::routeros::command::FileRemove::new(&image))
            .await
            .unwrap();
        let seen = spans.0.lock().unwrap().clone();
        let commands: Vec<_> = seen
            .iter()
            .filter(|(_, name, _)| name == "routeros.command")
            .collect();
        assert_eq!(commands.len(), 1, "{seen:?}");
        let fields = &commands[0].2;
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("routeros.verb"), Some("file-remove"));
        assert_eq!(get("rds.slot"), Some("pvc-1"));
        assert_eq!(get("routeros.result"), Some("success"));
        assert!(
            fields.iter().all(|(_, v)| !v.contains("secret-pool")),
            "no path in the span: {fields:?}"
        );
    }

    #[tokio::test]
    async fn transport_failure_is_unavailable_with_verb() {
        let runner = Scripted::new(
            Some("7.12"),
            Box::new(|_: &str| {
                Reply::Fail(RunFailure::Unavailable {
                    detail: "connection refused".into(),
                })
            }),
        );
        let (exec, _) = executor(runner, ExecutorConfig::default());
        let err = exec.run(&DiskPrint::new(&slot())).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        assert!(err.to_string().contains("disk-print"), "{err}");
    }
}
