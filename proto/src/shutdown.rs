//! Waiting for the signal that ends a component: SIGTERM (Kubernetes) or SIGINT (a terminal).

use tokio::signal::unix::{SignalKind, signal};

/// Resolves when SIGTERM or SIGINT arrives and returns its name.
pub async fn signalled() -> &'static str {
    let (term, int) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; only Ctrl-C will stop this process");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
