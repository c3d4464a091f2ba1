//! Serialises mutations of one slot: a map of async mutexes keyed by slot, whose entries exist only
//! while someone holds or waits for them, so the map never grows with the number of slots ever seen.
//!
//! An operation that touches several slots (a clone reads its source while creating its target)
//! takes them all at once with [`SlotLocks::lock_all`], always in slot order, so two such operations
//! cannot deadlock. Waiting is bounded by a deadline; a caller that gives up (its deadline passed or
//! its call was cancelled) leaves no entry behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::OwnedMutexGuard;

use crate::routeros::names::Slot;

type Map = Mutex<HashMap<Slot, Arc<tokio::sync::Mutex<()>>>>;

/// The per-slot locks of one gateway.
#[derive(Debug, Default, Clone)]
pub struct SlotLocks {
    map: Arc<Map>,
}

/// The time ran out before the slot was free.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("slot {slot} is busy with another operation")]
pub struct LockTimeout {
    /// The slot that stayed busy.
    pub slot: Slot,
}

/// A claim on one slot's entry: taken before waiting, given back (and the entry removed when
/// nobody else claims it) on drop, whether or not the lock was ever acquired.
#[derive(Debug)]
struct Claim {
    map: Arc<Map>,
    slot: Slot,
    mutex: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut map = lock_map(&self.map);
        drop(self.mutex.take());
        let unused = map
            .get(&self.slot)
            .is_some_and(|m| Arc::strong_count(m) == 1);
        if unused {
            map.remove(&self.slot);
        }
    }
}

/// Holds one slot's lock; dropping it releases the slot.
#[derive(Debug)]
pub struct SlotGuard {
    // Field order matters: the guard is released before the claim looks at the count.
    _guard: OwnedMutexGuard<()>,
    _claim: Claim,
}

/// Holds several slots' locks.
#[derive(Debug)]
pub struct SlotGuards {
    _guards: Vec<SlotGuard>,
}

fn lock_map(map: &Map) -> MutexGuard<'_, HashMap<Slot, Arc<tokio::sync::Mutex<()>>>> {
    map.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SlotLocks {
    /// An empty map.
    pub fn new() -> Self {
        SlotLocks::default()
    }

    /// Waits for `slot` until `deadline`.
    pub async fn lock(&self, slot: &Slot, deadline: Instant) -> Result<SlotGuard, LockTimeout> {
        let claim = {
            let mut map = lock_map(&self.map);
            let mutex = map.entry(slot.clone()).or_default().clone();
            Claim {
                map: self.map.clone(),
                slot: slot.clone(),
                mutex: Some(mutex),
            }
        };
        let Some(mutex) = claim.mutex.clone() else {
            return Err(LockTimeout { slot: slot.clone() });
        };
        match tokio::time::timeout_at(deadline.into(), mutex.lock_owned()).await {
            Ok(guard) => Ok(SlotGuard {
                _guard: guard,
                _claim: claim,
            }),
            Err(_) => Err(LockTimeout { slot: slot.clone() }),
        }
    }

    /// Waits for every slot in `slots` (duplicates allowed) until `deadline`, in slot order.
    pub async fn lock_all(
        &self,
        slots: &[&Slot],
        deadline: Instant,
    ) -> Result<SlotGuards, LockTimeout> {
        let mut ordered: Vec<&Slot> = slots.to_vec();
        ordered.sort();
        ordered.dedup();
        let mut guards = Vec::with_capacity(ordered.len());
        for slot in ordered {
            guards.push(self.lock(slot, deadline).await?);
        }
        Ok(SlotGuards { _guards: guards })
    }

    /// Number of slots held or waited for right now.
    pub fn len(&self) -> usize {
        lock_map(&self.map).len()
    }

    /// True when no slot is held or waited for.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn slot(s: &str) -> Slot {
        Slot::parse(s).unwrap()
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn one_holder_per_slot_and_others_run_in_parallel() {
        let locks = SlotLocks::new();
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let _g = locks.lock(&slot("pvc-a"), soon(10_000)).await.unwrap();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        // A different slot is not held up by the queue on pvc-a.
        let other = locks.lock(&slot("pvc-b"), soon(1_000)).await;
        assert!(other.is_ok());
        drop(other);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(locks.is_empty(), "{} entries left", locks.len());
    }

    #[tokio::test]
    async fn waiting_past_the_deadline_fails_and_leaves_no_entry() {
        let locks = SlotLocks::new();
        let held = locks.lock(&slot("pvc-a"), soon(1_000)).await.unwrap();
        let err = locks.lock(&slot("pvc-a"), soon(20)).await.unwrap_err();
        assert_eq!(err.slot, slot("pvc-a"));
        assert_eq!(locks.len(), 1);
        drop(held);
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_no_entry() {
        let locks = SlotLocks::new();
        let held = locks.lock(&slot("pvc-a"), soon(1_000)).await.unwrap();
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.lock(&slot("pvc-a"), soon(10_000)).await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        waiter.abort();
        let _ = waiter.await;
        drop(held);
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn many_slots_do_not_accumulate() {
        let locks = SlotLocks::new();
        for i in 0..500 {
            let g = locks
                .lock(&slot(&format!("pvc-{i}")), soon(1_000))
                .await
                .unwrap();
            drop(g);
        }
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn lock_all_in_order_does_not_deadlock() {
        let locks = SlotLocks::new();
        let mut tasks = Vec::new();
        for i in 0..32 {
            let locks = locks.clone();
            tasks.push(tokio::spawn(async move {
                let (a, b) = (slot("pvc-a"), slot("pvc-b"));
                let order: [&Slot; 2] = if i % 2 == 0 { [&a, &b] } else { [&b, &a] };
                let _g = locks.lock_all(&order, soon(10_000)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }));
        }
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .unwrap()
                .unwrap();
        }
        let same = locks
            .lock_all(&[&slot("pvc-a"), &slot("pvc-a")], soon(100))
            .await;
        assert!(same.is_ok(), "duplicates are taken once");
        drop(same);
        assert!(locks.is_empty());
    }
}
