//! One operation per volume at a time: a concurrent second call is refused with `ABORTED`.
//!
//! kubelet retries a NodeStage whose first attempt is still running (a slow connect, a long
//! mkfs); letting both run is how the Go driver stacked mounts and, once, formatted a volume
//! twice. The guard is taken for the whole of a per-volume call and released when the returned
//! value is dropped, whatever path the call leaves by. A refused caller learns what is running
//! and retries later, as CSI expects of `ABORTED`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{HelperError, Result};

/// The set of volumes with an operation in progress.
#[derive(Debug, Clone, Default)]
pub struct VolumeGuards {
    busy: Arc<Mutex<HashMap<String, &'static str>>>,
}

/// Proof that the caller holds a volume; releases it on drop.
#[derive(Debug)]
pub struct VolumeGuard {
    busy: Arc<Mutex<HashMap<String, &'static str>>>,
    volume_id: String,
}

impl VolumeGuards {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `volume_id` for `operation`, or fails with `VolumeBusy` (→ `ABORTED`).
    pub fn acquire(&self, volume_id: &str, operation: &'static str) -> Result<VolumeGuard> {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(running) = busy.get(volume_id) {
            return Err(HelperError::VolumeBusy {
                volume_id: volume_id.to_string(),
                operation,
                running,
            });
        }
        busy.insert(volume_id.to_string(), operation);
        Ok(VolumeGuard {
            busy: self.busy.clone(),
            volume_id: volume_id.to_string(),
        })
    }

    /// Whether an operation on `volume_id` is running now.
    pub fn is_busy(&self, volume_id: &str) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(volume_id)
    }

    /// How many volumes are busy now.
    pub fn in_progress(&self) -> usize {
        self.busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for VolumeGuard {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.volume_id);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_second_call_on_the_same_volume_is_aborted_until_the_first_ends() {
        let guards = VolumeGuards::new();
        let first = guards.acquire("pvc-1", "stage").unwrap();
        assert!(guards.is_busy("pvc-1"));
        assert!(!guards.is_busy("pvc-2"));
        let err = guards.acquire("pvc-1", "unstage").unwrap_err();
        assert_eq!(err.code(), tonic::Code::Aborted);
        let text = err.to_string();
        assert!(
            text.contains("pvc-1") && text.contains("unstage") && text.contains("stage"),
            "{text}"
        );
        // Other volumes are not affected.
        let other = guards.acquire("pvc-2", "stage").unwrap();
        assert_eq!(guards.in_progress(), 2);
        drop(first);
        let again = guards.acquire("pvc-1", "unstage").unwrap();
        drop(again);
        drop(other);
        assert_eq!(guards.in_progress(), 0);
    }

    #[test]
    fn the_guard_is_released_when_a_call_fails_early() {
        let guards = VolumeGuards::new();
        let failing = || -> Result<()> {
            let _g = guards.acquire("pvc-1", "stage")?;
            Err(HelperError::InvalidRequest {
                field: "x",
                reason: "y".into(),
            })
        };
        assert!(failing().is_err());
        assert!(guards.acquire("pvc-1", "stage").is_ok());
    }

    #[test]
    fn threads_racing_for_one_volume_get_exactly_one_guard() {
        let guards = VolumeGuards::new();
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let guards = guards.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    let got = guards.acquire("pvc-1", "stage");
                    let ok = got.is_ok();
                    barrier.wait();
                    drop(got);
                    ok
                })
            })
            .collect();
        let winners = handles
            .into_iter()
            .filter(|_| true)
            .map(|h| h.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(winners, 1);
    }
}
