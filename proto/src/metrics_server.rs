//! The per-process HTTP server for `/metrics`, `/healthz` and `/readyz`.
//!
//! `/metrics` renders the process's one registry in the Prometheus text format; every gauge
//! in it is either set by the code that owns the state or computed by a collector from
//! in-memory state at scrape time, so a scrape never waits on SSH or on the kernel.
//! `/healthz` answers as long as the process serves; `/readyz` reports the readiness the
//! component supplies, with its reason when not ready.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};

/// Whether the component can do its job now, and why not when it cannot.
#[derive(Clone, Debug)]
pub struct Readiness(Arc<RwLock<Option<String>>>);

impl Readiness {
    /// Starts not ready, for `reason`.
    pub fn not_ready(reason: impl Into<String>) -> Self {
        Readiness(Arc::new(RwLock::new(Some(reason.into()))))
    }

    pub fn set_ready(&self) {
        if let Ok(mut g) = self.0.write() {
            *g = None;
        }
    }

    pub fn set_not_ready(&self, reason: impl Into<String>) {
        if let Ok(mut g) = self.0.write() {
            *g = Some(reason.into());
        }
    }

    /// `Ok` when ready, the reason otherwise.
    pub fn check(&self) -> Result<(), String> {
        match self.0.read() {
            Ok(g) => match g.as_ref() {
                None => Ok(()),
                Some(reason) => Err(reason.clone()),
            },
            Err(_) => Err("readiness state is poisoned".to_string()),
        }
    }
}

/// Why the metrics server could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsServerError {
    #[error(
        "metrics address {0:?} is not of the form host:port or :port (for example :9809 or 127.0.0.1:9809)"
    )]
    BadAddress(String),
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Parses `:9809`, `0.0.0.0:9809`, `[::1]:9809` or `localhost:9809`.
pub fn parse_metrics_address(raw: &str) -> Result<SocketAddr, MetricsServerError> {
    let bad = || MetricsServerError::BadAddress(raw.to_string());
    let with_host = if raw.starts_with(':') {
        format!("0.0.0.0{raw}")
    } else if let Some(rest) = raw.strip_prefix("localhost:") {
        format!("127.0.0.1:{rest}")
    } else {
        raw.to_string()
    };
    with_host.parse().map_err(|_| bad())
}

/// A bound, not yet serving, metrics listener; binding first makes a busy port a start-up error.
pub struct MetricsServer {
    listener: tokio::net::TcpListener,
}

#[derive(Clone)]
struct AppState {
    registry: Registry,
    readiness: Readiness,
}

impl MetricsServer {
    pub async fn bind(raw: &str) -> Result<Self, MetricsServerError> {
        let addr = parse_metrics_address(raw)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsServerError::Bind {
                addr: raw.to_string(),
                source,
            })?;
        Ok(MetricsServer { listener })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        registry: Registry,
        readiness: Readiness,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .with_state(AppState {
                registry,
                readiness,
            });
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let families = state.registry.gather();
    let mut buf = Vec::with_capacity(16 * 1024);
    match TextEncoder::new().encode(&families, &mut buf) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            buf,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics failed: {e}\n"),
        )
            .into_response(),
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.readiness.check() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            parse_metrics_address(":9809").unwrap(),
            "0.0.0.0:9809".parse().unwrap()
        );
        assert_eq!(
            parse_metrics_address("localhost:1").unwrap(),
            "127.0.0.1:1".parse().unwrap()
        );
        assert!(parse_metrics_address("[::1]:9809").is_ok());
        for bad in ["9809", "", "host:port", ":99999", "a b:1"] {
            assert!(parse_metrics_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn readiness_flips() {
        let r = Readiness::not_ready("gateway unreachable");
        assert_eq!(r.check(), Err("gateway unreachable".to_string()));
        r.set_ready();
        assert_eq!(r.check(), Ok(()));
        r.set_not_ready("auth failed");
        assert_eq!(r.check(), Err("auth failed".to_string()));
    }
}
