//! Logging and tracing set-up shared by every component.
//!
//! Logs are `tracing` events written to stderr as text or JSON. Spans always go through an
//! OpenTelemetry tracer, so trace ids exist and propagate across hops even when nothing is
//! exported; export over OTLP/gRPC is switched on only by the standard `OTEL_*` variables
//! (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SERVICE_NAME`,
//! `OTEL_TRACES_SAMPLER` and `OTEL_RESOURCE_ATTRIBUTES` are honoured by the SDK). With none
//! set nothing is exported and nothing fails; a broken exporter configuration is a warning.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log level {level:?}: {source}")]
    Filter {
        level: String,
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Keeps the tracer provider alive; [`Telemetry::shutdown`] flushes pending spans.
pub struct Telemetry {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl Telemetry {
    /// Whether spans are being exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// The provider, for tests that need to flush.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// Flushes pending spans and stops the exporter. Blocking work runs off the async
    /// threads, so this is safe on any runtime flavour.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let joined = tokio::task::spawn_blocking(move || {
            let _ = provider.force_flush();
            provider.shutdown()
        })
        .await;
        if let Ok(Err(e)) = joined {
            tracing::warn!(error = %e, "flushing traces on shutdown failed");
        }
    }
}

/// Whether the environment asks for OTLP export.
fn otlp_requested() -> bool {
    let set = |k: &str| {
        std::env::var(k)
            .map(|v| !v.trim().is_empty())
            .unwrap_or(false)
    };
    let disabled = std::env::var("OTEL_SDK_DISABLED")
        .map(|v| v.eq_ignore_ascii_case("true"))
        .unwrap_or(false);
    let exporter_none = std::env::var("OTEL_TRACES_EXPORTER")
        .map(|v| v.trim() == "none")
        .unwrap_or(false);
    !disabled
        && !exporter_none
        && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

fn resource(service: &str) -> Resource {
    let builder = Resource::builder();
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty());
    if named {
        builder.build()
    } else {
        builder.with_service_name(service.to_string()).build()
    }
}

/// Installs the global subscriber for a component. Must run inside a tokio runtime (the
/// OTLP exporter builds its channel there).
pub fn init(service: &str, format: LogFormat, level: &str) -> Result<Telemetry, TelemetryError> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource(service));
    let mut exporting = false;
    let mut warning = None;
    if otlp_requested() {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => {
                builder = builder.with_batch_exporter(exporter);
                exporting = true;
            }
            Err(e) => warning = Some(e.to_string()),
        }
    }
    let writer = BoxMakeWriter::new(std::io::stderr);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let telemetry = install(
        builder.build(),
        service,
        format,
        level,
        exporting,
        writer,
        ansi,
    )?;
    if let Some(w) = warning {
        tracing::warn!(error = %w, "OTLP trace export is configured but could not start; traces are not exported");
    }
    Ok(telemetry)
}

/// Installs the global subscriber with a caller-supplied span exporter and log writer
/// (tests use an in-memory exporter and a buffer).
pub fn init_with_exporter<E: SpanExporter + 'static>(
    service: &str,
    format: LogFormat,
    level: &str,
    exporter: E,
    writer: BoxMakeWriter,
) -> Result<Telemetry, TelemetryError> {
    let provider = SdkTracerProvider::builder()
        .with_resource(resource(service))
        .with_simple_exporter(exporter)
        .build();
    install(provider, service, format, level, true, writer, false)
}

fn install(
    provider: SdkTracerProvider,
    service: &str,
    format: LogFormat,
    level: &str,
    exporting: bool,
    writer: BoxMakeWriter,
    ansi: bool,
) -> Result<Telemetry, TelemetryError> {
    // The SDK's own chatter (provider set, exporter start) is kept to warnings unless asked for.
    let directives = if level.contains("opentelemetry") {
        level.to_string()
    } else {
        format!("{level},opentelemetry=warn,opentelemetry_sdk=warn")
    };
    let filter =
        EnvFilter::builder()
            .parse(&directives)
            .map_err(|source| TelemetryError::Filter {
                level: level.to_string(),
                source,
            })?;
    let tracer = provider.tracer(service.to_string());
    // Spans reach the tracer whatever the log level, so traces stay whole when logs are quiet.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(ansi)
                .with_target(false),
        ),
        LogFormat::Json => Box::new(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_ansi(false)
                .with_writer(writer),
        ),
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(Telemetry {
        provider,
        exporting,
    })
}
