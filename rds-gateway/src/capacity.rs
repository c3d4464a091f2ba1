//! Pool capacity (total and free bytes), read from the appliance in the background and served
//! from a cache, so neither a `GetCapacity` call nor a metrics scrape ever waits on SSH.
//!
//! A refresher task reads every known pool on an interval, right after the connection comes up,
//! and right after a call names a pool not seen before. It reads the pool disk by its mount point
//! (`/disk print detail where mount-point=...`, which newer appliances print `size=`/`free=` on)
//! and falls back to the pool's directory entry (`/file print detail where name=...`) when the
//! first gives nothing usable. Each successful read also sets the gauges
//! `rds_csi_rds_pool_total_bytes{pool}` and `rds_csi_rds_pool_free_bytes{pool}`.
//!
//! `GetCapacity` answers the last successful read with its time; before the first one it is
//! `UNAVAILABLE`, with the last refresh error when there was one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use prometheus::{IntGaugeVec, Opts, Registry};
use tokio::sync::Notify;

use crate::executor::Executor;
use crate::op_error::OpError;
use crate::routeros::RosError;
use crate::routeros::command::{CapacitySource, PoolCapacityQuery};
use crate::routeros::model::PoolCapacity;
use crate::routeros::names::PoolPath;
use crate::routeros::size::Bytes;

/// Most pools tracked at once (a bound on what callers can make the refresher read).
pub const MAX_POOLS: usize = 16;

/// One successful read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacitySample {
    /// Size of the pool.
    pub total: Bytes,
    /// Free space in the pool.
    pub free: Bytes,
    /// When it was read.
    pub refreshed_at: SystemTime,
}

#[derive(Debug, Clone)]
struct Entry {
    pool: PoolPath,
    sample: Option<CapacitySample>,
    last_error: Option<String>,
}

/// The two pool gauges.
#[derive(Debug, Clone)]
struct PoolGauges {
    total: IntGaugeVec,
    free: IntGaugeVec,
}

impl PoolGauges {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let total = IntGaugeVec::new(
            Opts::new(
                "rds_csi_rds_pool_total_bytes",
                "Size of the RDS storage pool, as last read by the gateway's refresher.",
            ),
            &["pool"],
        )?;
        let free = IntGaugeVec::new(
            Opts::new(
                "rds_csi_rds_pool_free_bytes",
                "Free space in the RDS storage pool, as last read by the gateway's refresher.",
            ),
            &["pool"],
        )?;
        registry.register(Box::new(total.clone()))?;
        registry.register(Box::new(free.clone()))?;
        Ok(PoolGauges { total, free })
    }

    fn set(&self, pool: &str, capacity: &PoolCapacity) {
        let clamp = |b: Bytes| i64::try_from(b.get()).unwrap_or(i64::MAX);
        self.total
            .with_label_values(&[pool])
            .set(clamp(capacity.total));
        self.free
            .with_label_values(&[pool])
            .set(clamp(capacity.free));
    }
}

struct Inner {
    exec: Arc<Executor>,
    default_pool: PoolPath,
    /// By mount point: capacity belongs to the pool, not to a directory in it.
    entries: Mutex<HashMap<String, Entry>>,
    wake: Notify,
    gauges: PoolGauges,
}

/// The capacity cache and the handle of its refresher.
#[derive(Clone)]
pub struct Capacity {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Capacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capacity")
            .field("default_pool", &self.inner.default_pool)
            .finish()
    }
}

/// The refresher task; stops when dropped.
#[derive(Debug)]
pub struct Refresher {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Inner {
    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn read(&self, pool: &PoolPath) -> Result<PoolCapacity, RosError> {
        let first = self.query(pool, CapacitySource::MountPoint).await;
        match first {
            Err(e @ (RosError::Transport { .. } | RosError::Timeout { .. })) => Err(e),
            Ok(capacity) => Ok(capacity),
            Err(e) => {
                tracing::debug!(
                    "pool capacity from the pool disk failed ({e}); trying the pool directory"
                );
                self.query(pool, CapacitySource::File).await
            }
        }
    }

    async fn query(
        &self,
        pool: &PoolPath,
        source: CapacitySource,
    ) -> Result<PoolCapacity, RosError> {
        let records = self
            .exec
            .print(|f| {
                let q = match source {
                    CapacitySource::MountPoint => PoolCapacityQuery::by_mount_point(pool),
                    CapacitySource::File => PoolCapacityQuery::by_file(pool),
                };
                q.format(f)
            })
            .await?;
        PoolCapacity::from_records(&records, pool)
    }

    /// Reads every known pool once.
    async fn refresh_all(&self) {
        let pools: Vec<(String, PoolPath)> = self
            .entries()
            .iter()
            .map(|(k, e)| (k.clone(), e.pool.clone()))
            .collect();
        for (key, pool) in pools {
            let result = self.read(&pool).await;
            let mut entries = self.entries();
            let Some(entry) = entries.get_mut(&key) else {
                continue;
            };
            match result {
                Ok(capacity) => {
                    self.gauges.set(&key, &capacity);
                    entry.sample = Some(CapacitySample {
                        total: capacity.total,
                        free: capacity.free,
                        refreshed_at: SystemTime::now(),
                    });
                    entry.last_error = None;
                }
                Err(e) => {
                    let text = e.to_string();
                    // Said once per kind of failure; an outage is the transport's to report.
                    if entry.last_error.as_deref() == Some(text.as_str()) {
                        tracing::debug!(pool = %key, "cannot read the pool capacity: {text}");
                    } else {
                        tracing::warn!(pool = %key, "cannot read the pool capacity: {text}");
                    }
                    entry.last_error = Some(text);
                }
            }
        }
    }

    async fn run(self: Arc<Self>, interval: Duration) {
        let mut state = self.exec.connection();
        loop {
            self.refresh_all().await;
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = self.wake.notified() => {}
                changed = state.changed() => {
                    if changed.is_err() {
                        // The transport is gone; keep the interval only.
                        tokio::time::sleep(interval).await;
                    } else if !state.borrow_and_update().is_connected() {
                        // Wait for the connection (or the interval) before reading again.
                        tokio::select! {
                            () = tokio::time::sleep(interval) => {}
                            _ = state.wait_for(|s| s.is_connected()) => {}
                        }
                    }
                }
            }
        }
    }
}

impl Capacity {
    /// A cache for `default_pool` (more pools are added as calls name them); registers the
    /// gauges. Call [`Capacity::start`] to begin refreshing.
    pub fn new(
        exec: Arc<Executor>,
        default_pool: PoolPath,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let gauges = PoolGauges::register(registry)?;
        let mut entries = HashMap::new();
        entries.insert(
            default_pool.mount_point().to_owned(),
            Entry {
                pool: default_pool.clone(),
                sample: None,
                last_error: None,
            },
        );
        Ok(Capacity {
            inner: Arc::new(Inner {
                exec,
                default_pool,
                entries: Mutex::new(entries),
                wake: Notify::new(),
                gauges,
            }),
        })
    }

    /// Starts the refresher: a read now, then every `interval`, after every reconnect and when a
    /// new pool is asked for. Must run inside tokio.
    pub fn start(&self, interval: Duration) -> Refresher {
        Refresher {
            task: tokio::spawn(self.inner.clone().run(interval)),
        }
    }

    /// The pool used when a call names none.
    pub fn default_pool(&self) -> &PoolPath {
        &self.inner.default_pool
    }

    /// The cached capacity of `pool` (the default pool when `None`). Never runs a command.
    pub fn get(&self, pool: Option<&PoolPath>) -> Result<CapacitySample, OpError> {
        let pool = pool.unwrap_or(&self.inner.default_pool);
        let key = pool.mount_point().to_owned();
        let mut entries = self.inner.entries();
        if let Some(entry) = entries.get(&key) {
            return match (entry.sample, &entry.last_error) {
                (Some(sample), _) => Ok(sample),
                (None, Some(e)) => Err(OpError::CapacityUnknown {
                    pool: pool.clone(),
                    detail: e.clone(),
                }),
                (None, None) => Err(OpError::CapacityUnknown {
                    pool: pool.clone(),
                    detail: "it has not been read yet".into(),
                }),
            };
        }
        if entries.len() >= MAX_POOLS {
            return Err(OpError::CapacityUnknown {
                pool: pool.clone(),
                detail: format!("the gateway already tracks {MAX_POOLS} pools"),
            });
        }
        entries.insert(
            key,
            Entry {
                pool: pool.clone(),
                sample: None,
                last_error: None,
            },
        );
        self.inner.wake.notify_one();
        Err(OpError::CapacityUnknown {
            pool: pool.clone(),
            detail: "it was not asked for before; it is being read now".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::command_metrics::CommandMetrics;
    use crate::executor::ExecutorConfig;
    use crate::executor::tests::{Scripted, out};

    fn cache(runner: Arc<Scripted>) -> (Capacity, Registry) {
        let registry = Registry::new();
        let metrics = CommandMetrics::register(&registry).unwrap();
        let exec = Arc::new(Executor::new(runner, ExecutorConfig::default(), metrics));
        let pool = PoolPath::parse("storage-pool/kubernetes-volumes").unwrap();
        (Capacity::new(exec, pool, &registry).unwrap(), registry)
    }

    async fn wait_for(capacity: &Capacity) -> CapacitySample {
        for _ in 0..200 {
            if let Ok(sample) = capacity.get(None) {
                return sample;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("capacity never read: {:?}", capacity.get(None));
    }

    #[tokio::test]
    async fn falls_back_to_the_pool_directory_and_sets_the_gauges() {
        // The pool disk prints nothing here (an appliance that does not report capacity on it);
        // the directory entry carries size and free.
        let runner = Scripted::new(
            Some("7.12.1"),
            Box::new(|line: &str| {
                if line.starts_with("/file print") {
                    out(
                        "Flags: \n 0 name=\"storage-pool\" type=\"directory\" size=10 737 418 240 \
                         free=4 294 967 296\n",
                    )
                } else {
                    out("")
                }
            }),
        );
        let (capacity, registry) = cache(runner.clone());
        let before = capacity.get(None).unwrap_err();
        assert_eq!(before.code(), tonic::Code::Unavailable);
        assert!(runner.lines().is_empty(), "get() never runs a command");
        let _refresher = capacity.start(Duration::from_secs(3600));
        let sample = wait_for(&capacity).await;
        assert_eq!(sample.total.get(), 10 << 30);
        assert_eq!(sample.free.get(), 4 << 30);
        let lines = runner.lines();
        assert!(
            lines[0].contains("mount-point=\"storage-pool\""),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("/file print detail where name=\"storage-pool\""),
            "{lines:?}"
        );
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(
            text.contains("rds_csi_rds_pool_free_bytes{pool=\"storage-pool\"} 4294967296"),
            "{text}"
        );
        // Answers come from the cache: no command per call.
        let ran = runner.lines().len();
        for _ in 0..10 {
            capacity.get(None).unwrap();
        }
        assert_eq!(runner.lines().len(), ran);
    }

    #[tokio::test]
    async fn the_last_error_is_the_reason_until_a_read_works() {
        let runner = Scripted::new(
            Some("7.16"),
            Box::new(|_: &str| out("failure: no such item")),
        );
        let (capacity, _registry) = cache(runner);
        let _refresher = capacity.start(Duration::from_secs(3600));
        for _ in 0..200 {
            let err = capacity.get(None).unwrap_err();
            if err.to_string().contains("no such item") {
                assert_eq!(err.code(), tonic::Code::Unavailable);
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the refresh error never showed");
    }

    #[test]
    fn pools_are_bounded() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let runner = Scripted::new(Some("7.16"), Box::new(|_: &str| out("")));
        let (capacity, _registry) = cache(runner);
        for i in 0..(MAX_POOLS * 2) {
            let pool = PoolPath::parse(&format!("pool{i}/x")).unwrap();
            assert!(capacity.get(Some(&pool)).is_err());
        }
        assert!(capacity.inner.entries().len() <= MAX_POOLS);
    }
}
