//! Wires the gateway together from a command runner: executor, shared slot locks, volume and
//! snapshot operations, the capacity cache and its refresher, and the gRPC service. The binary and
//! the integration tests build the gateway the same way through [`Gateway::build`].

use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;

use crate::appliance::Appliance;
use crate::capacity::{Capacity, Refresher};
use crate::command_metrics::CommandMetrics;
use crate::executor::{Executor, ExecutorConfig};
use crate::grpc_service::{Defaults, GatewayService};
use crate::routeros::names::{PoolPath, Port, SlotPrefix};
use crate::runner::CommandRunner;
use crate::scope::Scope;
use crate::slot_lock::SlotLocks;
use crate::snapshots::Snapshots;
use crate::volumes::Volumes;

/// Default interval of the capacity refresher.
pub const DEFAULT_CAPACITY_REFRESH: Duration = Duration::from_secs(60);

/// Everything the operations need to know.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Directory of backing files when a call names none (`--rds-volume-base-path`).
    pub pool: PoolPath,
    /// Managed slot prefixes (`--managed-slot-prefix`).
    pub prefixes: Vec<SlotPrefix>,
    /// NVMe/TCP port when a call names none.
    pub nvme_port: Port,
    /// Command deadlines.
    pub executor: ExecutorConfig,
    /// Interval of the capacity refresher (`--capacity-refresh-interval`).
    pub capacity_refresh: Duration,
}

impl Settings {
    /// The shipped defaults for `pool` and `prefixes`.
    pub fn new(pool: PoolPath, prefixes: Vec<SlotPrefix>) -> Self {
        Settings {
            pool,
            prefixes,
            nvme_port: Port::NVME_TCP_DEFAULT,
            executor: ExecutorConfig::default(),
            capacity_refresh: DEFAULT_CAPACITY_REFRESH,
        }
    }
}

/// A built gateway: the service to serve and the background work it relies on.
#[derive(Debug)]
pub struct Gateway {
    /// The gRPC service.
    pub service: GatewayService,
    /// The command executor (connection state, RouterOS version).
    pub executor: Arc<Executor>,
    /// The capacity cache.
    pub capacity: Capacity,
    _refresher: Refresher,
}

impl Gateway {
    /// Builds the gateway over `runner`, registering its metrics in `registry`, and starts the
    /// capacity refresher. Must run inside tokio.
    pub fn build(
        runner: Arc<dyn CommandRunner>,
        settings: Settings,
        registry: &Registry,
    ) -> Result<Gateway, prometheus::Error> {
        let metrics = CommandMetrics::register(registry)?;
        let executor = Arc::new(Executor::new(runner, settings.executor, metrics));
        let appliance = Appliance::new(executor.clone());
        let locks = SlotLocks::new();
        let scope = Scope::new(settings.prefixes.iter().cloned());
        let volumes = Volumes::new(appliance.clone(), locks.clone(), scope.clone());
        let snapshots = Snapshots::new(appliance, locks, scope);
        let capacity = Capacity::new(executor.clone(), settings.pool.clone(), registry)?;
        let refresher = capacity.start(settings.capacity_refresh);
        let service = GatewayService::new(
            volumes,
            snapshots,
            capacity.clone(),
            executor.clone(),
            Defaults {
                pool: settings.pool,
                nvme_port: settings.nvme_port,
            },
        );
        Ok(Gateway {
            service,
            executor,
            capacity,
            _refresher: refresher,
        })
    }
}
