//! The per-volume in-flight guard: at most one mutating call per volume (or snapshot) at a
//! time in this process.
//!
//! A second call for the same id while the first runs is answered `ABORTED` at once instead
//! of queueing behind it: the CO retries with back-off, and two interleaved operations on one
//! volume (a retried NodeStage racing the first, a delete racing a publish) never reach the
//! gateway or the helper together. The guard is released when the handler's future ends,
//! including when the caller gives up and the future is dropped.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

/// The set of ids with an operation under way.
#[derive(Clone, Default)]
pub struct InFlight {
    busy: Arc<Mutex<HashSet<String>>>,
}

/// Another operation holds the id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an operation for {kind} {id} is already in progress; retry once it has finished")]
pub struct Busy {
    pub kind: &'static str,
    pub id: String,
}

/// Holds an id until dropped.
#[must_use = "the id is released as soon as the guard is dropped"]
pub struct Guard {
    busy: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl InFlight {
    /// Claims `id` (a volume or snapshot id; `kind` names which, for the message).
    ///
    /// CSI spec, error scheme: "Operation pending for volume | 10 ABORTED | Indicates that
    /// there is already an operation pending for the specified volume. ... The Plugin, SHOULD
    /// handle this as gracefully as possible, and MAY return this error code to reject
    /// secondary calls."
    pub fn begin(&self, kind: &'static str, id: &str) -> Result<Guard, Busy> {
        let mut set = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        if !set.insert(id.to_string()) {
            return Err(Busy {
                kind,
                id: id.to_string(),
            });
        }
        Ok(Guard {
            busy: self.busy.clone(),
            id: id.to_string(),
        })
    }

    /// Number of ids held now.
    pub fn len(&self) -> usize {
        self.busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn second_claim_is_refused_until_the_first_is_dropped() {
        let f = InFlight::default();
        let g = f.begin("volume", "pvc-a").unwrap();
        let err = f.begin("volume", "pvc-a").err().unwrap();
        assert_eq!(err.id, "pvc-a");
        assert!(err.to_string().contains("already in progress"));
        // Another id is independent.
        let other = f.begin("volume", "pvc-b").unwrap();
        assert_eq!(f.len(), 2);
        drop(g);
        let again = f.begin("volume", "pvc-a").unwrap();
        drop(again);
        drop(other);
        assert!(f.is_empty());
    }

    #[tokio::test]
    async fn a_cancelled_call_releases_its_id() {
        let f = InFlight::default();
        let held = f.clone();
        let task = tokio::spawn(async move {
            let _g = held.begin("volume", "pvc-a").unwrap();
            std::future::pending::<()>().await;
        });
        tokio::task::yield_now().await;
        while f.is_empty() {
            tokio::task::yield_now().await;
        }
        assert!(f.begin("volume", "pvc-a").is_err());
        task.abort();
        let _ = task.await;
        assert!(f.begin("volume", "pvc-a").is_ok());
    }
}
