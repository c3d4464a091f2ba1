//! What "ready" means for the gateway: at least one working SSH session to the RDS. Both the
//! `Health` call and `/readyz` derive their answer from the transport's connection state here, so
//! they can never disagree; when not ready, the reason is the transport's actionable message
//! (connection refused, timeout, authentication failed, host key mismatch ...).

use rds_csi_proto::metrics_server::Readiness;
use tokio::sync::watch;

use crate::ssh::ConnectionState;

/// `Ok` when connected, otherwise why not.
pub fn readiness_of(state: &ConnectionState) -> Result<(), String> {
    match state {
        ConnectionState::Connected { .. } => Ok(()),
        ConnectionState::Down { reason, .. } => Err(format!("RDS unreachable: {reason}")),
        ConnectionState::Connecting { .. } => Err(state.to_string()),
    }
}

/// Keeps `readiness` in step with the connection state until the state's sender is gone.
pub fn follow(
    mut state: watch::Receiver<ConnectionState>,
    readiness: Readiness,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let verdict = readiness_of(&state.borrow_and_update());
            match verdict {
                Ok(()) => readiness.set_ready(),
                Err(reason) => readiness.set_not_ready(reason),
            }
            if state.changed().await.is_err() {
                readiness.set_not_ready("the RDS connection pool stopped");
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::ssh::DownReason;
    use std::time::{Duration, SystemTime};

    #[tokio::test]
    async fn readiness_follows_the_connection() {
        let (tx, rx) = watch::channel(ConnectionState::Connecting { attempt: 1 });
        let readiness = Readiness::not_ready("starting");
        let task = follow(rx, readiness.clone());
        let settle = || tokio::time::sleep(Duration::from_millis(20));
        settle().await;
        assert!(readiness.check().unwrap_err().contains("connecting"));
        tx.send_replace(ConnectionState::Connected {
            since: SystemTime::UNIX_EPOCH,
            routeros_version: None,
        });
        settle().await;
        assert_eq!(readiness.check(), Ok(()));
        tx.send_replace(ConnectionState::Down {
            reason: DownReason::AuthFailed {
                user: "admin".into(),
            },
            since: SystemTime::UNIX_EPOCH,
        });
        settle().await;
        let reason = readiness.check().unwrap_err();
        assert!(
            reason.contains("authentication failed for user admin"),
            "{reason}"
        );
        assert!(reason.contains("--rds-key-file"), "{reason}");
        drop(tx);
        task.await.unwrap();
        assert!(readiness.check().is_err());
    }
}
