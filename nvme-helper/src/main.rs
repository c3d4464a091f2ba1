//! `nvme-helper`: the only privileged rds-csi process, one per node.
//!
//! It reads its flags, starts the shared component machinery (telemetry, registry,
//! `/metrics`), loads or creates the host identity, builds the fabric (kernel or loop) and the
//! node, cleans up its own orphaned connections, starts the stale-mount detector and serves the
//! `NodeHelper` API on a unix socket until SIGTERM. `nvme-helper doctor` instead runs the
//! preflight checks of `nvme_helper::doctor` with the same flags, prints them and exits.

mod cli;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use nvme_helper::error::HelperError;
use nvme_helper::fabric::{Fabric, KernelFabric};
use nvme_helper::grpc_service::HelperService;
use nvme_helper::host_identity::HostIdentity;
use nvme_helper::loop_fabric::LoopFabric;
use nvme_helper::node::{Node, NodeConfig};
use nvme_helper::partitions::PROC_PARTITIONS;
use nvme_helper::stale_monitor;
use nvme_helper::sysfs::DEFAULT_SYSFS_ROOT;
use nvme_helper::volume_metrics::{ConnectionCollector, VolumeMetrics};
use rds_csi_proto::component::{Component, ComponentError, one_line};
use rds_csi_proto::helper::node_helper_server::NodeHelperServer;

/// How long start-up orphan cleanup may take before the helper serves anyway.
const ORPHAN_CLEANUP_BUDGET: Duration = Duration::from_secs(60);

/// Why the helper could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
enum MainError {
    #[error(transparent)]
    Flag(#[from] cli::FlagError),
    #[error(transparent)]
    Component(#[from] ComponentError),
    #[error(transparent)]
    Helper(#[from] HelperError),
    #[error("cannot register the helper metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Keeps the helper's memory small and flat: at most two allocator arenas (the helper is not
/// allocation-heavy, and every thread otherwise gets an arena of its own), and a fixed mmap
/// threshold, so that the 1 MiB buffers of each device probe go back to the kernel when freed
/// instead of raising glibc's dynamic threshold and staying resident in an arena.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread
    // exists, and failure (return 0) just leaves the defaults in place.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() -> ExitCode {
    tune_allocator();
    let args = cli::Args::parse();
    if let Some(cli::Command::Doctor(doctor)) = &args.command {
        return run_doctor(&args, doctor);
    }
    // Two workers are plenty for a node agent; idle blocking threads do not linger.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(32)
        .thread_keep_alive(Duration::from_secs(5))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nvme-helper: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nvme-helper: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs every check, prints the report on stdout; success only when nothing failed.
fn run_doctor(args: &cli::Args, doctor: &cli::DoctorArgs) -> ExitCode {
    let report = nvme_helper::doctor::run(&args.doctor_config(doctor));
    println!("{report}");
    if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Raises the soft open-file limit to the hard one (as the Go runtime does for every program):
/// the loop fabric keeps two sysfs files open per attached loop device (`sysfs_handles`, a
/// quarter of the soft limit at most), and a soft limit of 1,024 would leave it few.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::debug!(%error, soft, hard, "cannot raise the open-file limit");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::debug!(%error, "cannot read the open-file limit"),
    }
}

async fn run(args: cli::Args) -> Result<(), MainError> {
    // Flags first: a bad value fails before anything starts.
    let prefix = args.prefix()?;
    let loop_dir = args.loop_dir()?.cloned();
    let component = Component::start(
        "nvme-helper",
        &args.common,
        "cleaning up orphaned connections",
    )?;
    let identity = HostIdentity::load_or_create(&args.identity_files())?;
    raise_open_file_limit();
    let fabric: Arc<dyn Fabric> = match loop_dir {
        Some(dir) => {
            let fabric = LoopFabric::new(dir, prefix.clone(), &args.sysfs_root, &args.dev_root)?;
            // The kernel's list of sized block devices describes the kernel's own sysfs only.
            Arc::new(if args.sysfs_root == Path::new(DEFAULT_SYSFS_ROOT) {
                fabric.with_partitions(PROC_PARTITIONS)
            } else {
                fabric
            })
        }
        None => Arc::new(KernelFabric::new(
            &args.sysfs_root,
            &args.fabrics_device,
            &args.dev_root,
        )),
    };
    let metrics = VolumeMetrics::register(component.registry())?;
    component
        .registry()
        .register(Box::new(ConnectionCollector::new(
            fabric.clone(),
            prefix.clone(),
        )?))?;
    let config = NodeConfig {
        kubelet_dir: args.kubelet_dir.clone(),
        state_dir: args.state_dir.clone(),
        sysfs_root: args.sysfs_root.clone(),
        dev_root: args.dev_root.clone(),
        mountinfo: args.mountinfo(),
        managed_prefix: prefix,
        identity,
        hostname: args.hostname(),
        device_wait_timeout: args.device_wait_timeout,
        disconnect_timeout: args.disconnect_timeout,
        tool_timeout: args.tool_timeout,
        mkfs_ext4_options: args.mkfs_ext4_options.clone(),
        mkfs_xfs_options: args.mkfs_xfs_options.clone(),
    };
    let node = Arc::new(Node::new(config, fabric, metrics)?);
    tracing::info!(
        fabric = ?args.fabric,
        host_nqn = %node.config().identity.hostnqn,
        kubelet_dir = %node.kubelet().path().display(),
        prefix = %node.config().managed_prefix,
        "node ready"
    );
    if args.cleanup_orphans {
        match node
            .cleanup_orphans(Some(Instant::now() + ORPHAN_CLEANUP_BUDGET))
            .await
        {
            Ok(report) => tracing::info!(
                disconnected = report.disconnected.len(),
                staged = report.staged.len(),
                in_use = report.in_use.len(),
                foreign = report.foreign.len(),
                "orphan cleanup done"
            ),
            Err(error) => tracing::warn!(%error, "orphan cleanup failed; serving anyway"),
        }
    }
    component.readiness().set_ready();
    let monitor = (!args.stale_check_interval.is_zero())
        .then(|| stale_monitor::spawn(node.clone(), args.stale_check_interval));
    let service = HelperService::new(node, component.readiness().clone());
    let routes = tonic::service::Routes::new(NodeHelperServer::new(service));
    let served = component
        .serve(
            &args.endpoint,
            &args.metrics_address,
            routes,
            &[<NodeHelperServer<HelperService> as tonic::server::NamedService>::NAME],
        )
        .await;
    if let Some(m) = monitor {
        m.abort();
    }
    served.map_err(MainError::from)
}
