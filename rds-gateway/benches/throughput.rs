//! Throughput benchmark: create+delete pairs per second through the whole gateway, beside the
//! limit a bare SSH client reaches against the same simulator.
//!
//! The gateway side is what production runs: the gRPC service behind the server hop layer on a
//! unix socket, called by a generated client wrapped in the client hop layer, over the gateway's
//! SSH pool to an in-process `rds-sim` that adds a fixed delay to every verb. Each pair is one
//! `CreateVolume` and one `DeleteVolume`, with every idempotency check and read-back the gateway
//! does.
//!
//! The limit replays exactly the command lines the gateway sent for one pair (captured from the
//! simulator's command log during a warm-up pair, the slot name substituted), in the same order,
//! over plain russh exec channels with the same transport budget as the gateway's pool: as many
//! SSH sessions, and as many channels in flight per session. What separates the two numbers is
//! therefore the gateway's own cost (gRPC, hop layers, locks, scheduling, decoding), not the
//! commands, which both sides run alike.
//!
//! Rows at concurrency 1, 8 and 64: pairs/s both ways, their ratio (target: at least 0.9), the p50
//! and p99 latency of a pair both ways and the p99 the gateway adds (target: under 2 ms). Gateway
//! and bare rounds alternate within a row so that a noisy machine weighs on both alike. Each
//! round measures a steady state: only pairs that end inside a window opened after every worker
//! has finished one pair count, so the burst of a round's start and its drain stay out of the
//! numbers (at concurrency 64 a pair takes ~0.3 s, and rounds of fixed length measured mostly
//! their own ramp).
//!
//! `cargo bench -p rds-gateway --bench throughput [-- --quick]`; `--quick` (also the mode when the
//! binary is run without `--bench`, as `cargo test --benches` does) runs short rounds for CI.
//! Options: `--latency-ms N` (delay per verb, default 2), `--round-ms N` (length of one round),
//! `--rounds N` (alternations per row), `--concurrency N` (one row only), `--without-grpc` (a
//! diagnostic: the gateway side calls the service in-process, skipping the gRPC hop).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus::Registry;
use rds_csi_proto::channel::{HopChannel, instrumented};
use rds_csi_proto::endpoint::Endpoint;
use rds_csi_proto::gateway::gateway_client::GatewayClient;
use rds_csi_proto::gateway::gateway_server::GatewayServer;
use rds_csi_proto::gateway::{CreateVolumeRequest, DeleteVolumeRequest, HealthRequest};
use rds_csi_proto::hop::{HopMetrics, ServerHopLayer};
use rds_csi_proto::serve::Listener;
use rds_csi_testbed::sim::state::{self, Paths};
use rds_csi_testbed::sim::{SimConfig, SimHandle, Verb, cmdlog, generate_client_key, start};
use rds_gateway::assembly::{Gateway, Settings};
use rds_gateway::grpc_service::GatewayService;
use rds_gateway::routeros::names::{PoolPath, SlotPrefix};
use rds_gateway::runner::SshRunner;
use rds_gateway::ssh::{ClientKey, HostKeyCheck, HostKeyPin, SshConfig, SshPool};
use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use tokio::runtime::Handle as Runtime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Request;

const BASE: &str = "storage-pool/kubernetes-volumes";
/// Size of every benchmark volume (small: the pool's free space is apparent sizes).
const VOLUME: u64 = 16 << 20;
/// The slot of the pair whose command lines the limit replays.
const TEMPLATE_SLOT: &str = "pvc-template";
/// The deadline each gRPC call carries, as the CSI sidecars set one.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
const CONCURRENCY: [usize; 3] = [1, 8, 64];
const TARGET_RATIO: f64 = 0.9;
const TARGET_ADDED_P99: Duration = Duration::from_millis(2);
/// Failure texts RouterOS (and the simulator) print on stdout.
const FAILURE_TEXTS: [&str; 6] = [
    "failure:",
    "no such item",
    "bad command name",
    "syntax error",
    "expected end of command",
    "invalid value",
];

struct Options {
    quick: bool,
    latency: Duration,
    round: Duration,
    rounds: usize,
    concurrency: Vec<usize>,
    /// Diagnostic: call the gateway service in-process, without the gRPC hop.
    without_grpc: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Option<u64> {
        let at = args.iter().position(|a| a == name)?;
        args.get(at + 1)?.parse().ok()
    };
    // Run without `--bench` (cargo test --benches), the benchmark is a quick smoke run.
    let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
    let round_ms = value("--round-ms").unwrap_or(if quick { 200 } else { 400 });
    let rounds = value("--rounds").unwrap_or(if quick { 2 } else { 8 });
    Options {
        quick,
        latency: Duration::from_millis(value("--latency-ms").unwrap_or(2)),
        round: Duration::from_millis(round_ms),
        rounds: usize::try_from(rounds).unwrap_or(1).max(1),
        without_grpc: args.iter().any(|a| a == "--without-grpc"),
        concurrency: match value("--concurrency") {
            Some(n) => vec![usize::try_from(n).unwrap_or(1).max(1)],
            None => CONCURRENCY.to_vec(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway side
// ---------------------------------------------------------------------------------------------

struct GatewaySide {
    client: GatewayClient<HopChannel>,
    runner: Arc<SshRunner>,
    gateway: Gateway,
    _registry: Registry,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl GatewaySide {
    /// Starts the gateway on the current runtime and its client on `caller`'s.
    async fn start(ssh: SshConfig, socket: PathBuf, caller: &Runtime) -> GatewaySide {
        let registry = Registry::new();
        let runner = Arc::new(SshRunner::new(SshPool::start(ssh, &registry).unwrap()));
        let settings = Settings::new(
            PoolPath::parse(BASE).unwrap(),
            vec![SlotPrefix::parse("pvc-").unwrap()],
        );
        let gateway = Gateway::build(runner.clone(), settings, &registry).unwrap();

        let name = <GatewayServer<GatewayService> as tonic::server::NamedService>::NAME;
        let hop = ServerHopLayer::new(
            HopMetrics::register(&registry, "rds-gateway").unwrap(),
            &[name],
        );
        let endpoint = Endpoint::Unix(socket);
        let listener = Listener::bind(&endpoint, 0o600).await.unwrap();
        let routes = tonic::service::Routes::new(GatewayServer::new(gateway.service.clone()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            listener
                .serve(routes, hop, shutdown, Duration::from_secs(2))
                .await
                .unwrap();
        });
        let client_registry = Registry::new();
        // The channel's tasks start on the callers' runtime.
        let channel = {
            let _caller = caller.enter();
            instrumented(
                &endpoint,
                HopMetrics::register(&client_registry, "bench-client").unwrap(),
            )
            .unwrap()
        };
        let side = GatewaySide {
            client: GatewayClient::new(channel),
            runner,
            gateway,
            _registry: registry,
            stop: Some(stop),
            server: Some(server),
        };
        side.wait_ready().await;
        side
    }

    async fn wait_ready(&self) {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let health = self.client.clone().health(HealthRequest {}).await;
            if let Ok(h) = &health
                && h.get_ref().ready
            {
                return;
            }
            assert!(
                Instant::now() < until,
                "the gateway never became ready: {health:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

/// One CreateVolume and one DeleteVolume of `slot`, through gRPC.
async fn gateway_pair(client: &mut GatewayClient<HopChannel>, slot: &str) {
    let mut create = Request::new(CreateVolumeRequest {
        slot: slot.into(),
        required_bytes: VOLUME,
        limit_bytes: 0,
        location: None,
        nqn: format!("nqn.2000-02.com.mikrotik:{slot}"),
        source: None,
    });
    create.set_timeout(CALL_TIMEOUT);
    let volume = client
        .create_volume(create)
        .await
        .unwrap_or_else(|s| panic!("CreateVolume {slot}: {s:?}"))
        .into_inner();
    assert_eq!(volume.size_bytes, VOLUME, "{volume:?}");
    let mut delete = Request::new(DeleteVolumeRequest {
        slot: slot.into(),
        location: None,
    });
    delete.set_timeout(CALL_TIMEOUT);
    client
        .delete_volume(delete)
        .await
        .unwrap_or_else(|s| panic!("DeleteVolume {slot}: {s:?}"));
}

/// The same pair, calling the service in-process (no gRPC hop, no hop layers).
async fn direct_pair(service: &GatewayService, slot: &str) {
    use rds_csi_proto::gateway::gateway_server::Gateway as _;
    let create = Request::new(CreateVolumeRequest {
        slot: slot.into(),
        required_bytes: VOLUME,
        limit_bytes: 0,
        location: None,
        nqn: format!("nqn.2000-02.com.mikrotik:{slot}"),
        source: None,
    });
    let volume = service
        .create_volume(create)
        .await
        .unwrap_or_else(|s| panic!("CreateVolume {slot}: {s:?}"))
        .into_inner();
    assert_eq!(volume.size_bytes, VOLUME, "{volume:?}");
    let delete = Request::new(DeleteVolumeRequest {
        slot: slot.into(),
        location: None,
    });
    service
        .delete_volume(delete)
        .await
        .unwrap_or_else(|s| panic!("DeleteVolume {slot}: {s:?}"));
}

// ---------------------------------------------------------------------------------------------
// The bare side: russh exec channels, nothing else
// ---------------------------------------------------------------------------------------------

/// Accepts only the simulator's host key.
struct Pinned(PublicKey);

impl client::Handler for Pinned {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.key_data() == self.0.key_data(),
            PublicKeyOrCertificate::Certificate(_) => false,
        })
    }
}

/// SSH sessions with at most `per_session` channels in flight on each, as the gateway's pool.
struct BarePool {
    sessions: Vec<(Handle<Pinned>, Arc<Semaphore>)>,
    total: Arc<Semaphore>,
}

impl BarePool {
    async fn connect(
        sim: &SimHandle,
        key: &PrivateKey,
        login: &str,
        sessions: usize,
        per_session: usize,
    ) -> BarePool {
        let host = PublicKey::from_openssh(sim.host_key_openssh()).unwrap();
        let config = Arc::new(client::Config {
            nodelay: true,
            ..client::Config::default()
        });
        let mut open = Vec::with_capacity(sessions);
        for _ in 0..sessions {
            let mut handle = client::connect(config.clone(), sim.addr(), Pinned(host.clone()))
                .await
                .unwrap();
            let auth = handle
                .authenticate_publickey(
                    login,
                    PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None),
                )
                .await
                .unwrap();
            assert!(auth.success(), "bare login refused");
            open.push((handle, Arc::new(Semaphore::new(per_session))));
        }
        BarePool {
            sessions: open,
            total: Arc::new(Semaphore::new(sessions * per_session)),
        }
    }

    /// A free channel slot on the least busy session.
    async fn slot(&self) -> (usize, OwnedSemaphorePermit, OwnedSemaphorePermit) {
        let total = self.total.clone().acquire_owned().await.unwrap();
        let mut order: Vec<usize> = (0..self.sessions.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.sessions[i].1.available_permits()));
        for i in order {
            if let Ok(permit) = self.sessions[i].1.clone().try_acquire_owned() {
                return (i, total, permit);
            }
        }
        unreachable!("a total permit guarantees a free session slot")
    }

    /// Runs `line` and returns its stdout; fails on transport errors or RouterOS failure text.
    async fn exec(&self, line: &str) -> Result<String, String> {
        let (index, _total, _session) = self.slot().await;
        let handle = &self.sessions[index].0;
        let mut channel = handle
            .channel_open_session()
            .await
            .map_err(|e| e.to_string())?;
        channel.exec(true, line).await.map_err(|e| e.to_string())?;
        let mut stdout = Vec::new();
        let mut status = None;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, .. } => stdout.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&stdout).into_owned();
        if status != Some(0) {
            return Err(format!("{line}: exit status {status:?}"));
        }
        if FAILURE_TEXTS.iter().any(|f| text.contains(f)) {
            return Err(format!("{line}: {text}"));
        }
        Ok(text)
    }
}

/// The captured lines of one pair, for `slot`.
fn replay_lines(template: &[String], slot: &str) -> Vec<String> {
    template
        .iter()
        .map(|l| l.replace(TEMPLATE_SLOT, slot))
        .collect()
}

async fn bare_pair(pool: &BarePool, template: &[String], slot: &str) {
    for line in replay_lines(template, slot) {
        if let Err(e) = pool.exec(&line).await {
            panic!("bare replay failed: {e}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rounds and statistics
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    pairs: u64,
    elapsed: Duration,
    /// CPU time of the whole process (simulator included) during the rounds.
    cpu: Duration,
    latencies: Vec<Duration>,
}

/// CPU time this process used so far (user + system, all threads).
fn process_cpu() -> Duration {
    rds_csi_testbed::bench_support::cpu_time("self").unwrap_or_default()
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.pairs += other.pairs;
        self.elapsed += other.elapsed;
        self.cpu += other.cpu;
        self.latencies.extend(other.latencies);
    }

    /// CPU time per pair.
    fn cpu_per_pair(&self) -> Duration {
        self.cpu / u32::try_from(self.pairs.max(1)).unwrap_or(u32::MAX)
    }

    fn rate(&self) -> f64 {
        self.pairs as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Nearest-rank percentile.
    fn percentile(&mut self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.sort_unstable();
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }
}

static NEXT_SLOT: AtomicU64 = AtomicU64::new(0);

fn next_slot(side: &str) -> String {
    format!("pvc-{side}-{}", NEXT_SLOT.fetch_add(1, Ordering::Relaxed))
}

/// How many times the warm-up (every worker through one pair) the measuring window lasts at
/// least: at concurrency 64 a pair waits in the queue for ~0.3 s, and a window of a few pair
/// latencies would hold only a handful of pairs per worker.
const WINDOW_PER_WARM_UP: u32 = 4;

/// Runs `workers` loops of `pair` without pause and measures the steady state: the window
/// opens once every worker has finished one pair (the start burst, when all of them queue at
/// once, stays outside) and lasts `length` or [`WINDOW_PER_WARM_UP`] warm-ups, whichever is
/// longer; a pair counts when it ends inside the window, so the drain after it stays outside
/// too. In a steady state the pairs that end in a window have the latencies of all pairs.
async fn round<F, Fut>(workers: usize, length: Duration, pair: F) -> Tally
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let began = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let warmed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (pair, stop, warmed) = (pair.clone(), stop.clone(), warmed.clone());
        tasks.push(tokio::spawn(async move {
            let mut ended = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                pair().await;
                let done = Instant::now();
                if ended.is_empty() {
                    warmed.fetch_add(1, Ordering::Relaxed);
                }
                ended.push((done, done - t));
            }
            ended
        }));
    }
    // A worker whose pair failed has ended: its panic surfaces below instead of this waiting
    // for ever for it to warm up.
    while warmed.load(Ordering::Relaxed) < workers && !tasks.iter().any(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let warm_up = began.elapsed();
    let cpu = process_cpu();
    let opened = Instant::now();
    tokio::time::sleep(length.max(warm_up * WINDOW_PER_WARM_UP)).await;
    let closed = Instant::now();
    let mut tally = Tally {
        cpu: process_cpu().saturating_sub(cpu),
        elapsed: closed - opened,
        ..Tally::default()
    };
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        for (done, latency) in task.await.unwrap() {
            if (opened..closed).contains(&done) {
                tally.pairs += 1;
                tally.latencies.push(latency);
            }
        }
    }
    tally
}

struct Row {
    concurrency: usize,
    /// Gateway rate over bare rate, per alternation (shows how noisy the machine is).
    round_ratios: Vec<f64>,
    gateway: Tally,
    bare: Tally,
    sessions: usize,
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Minimum, median and maximum of `values`.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match (v.first(), v.get(v.len() / 2), v.last()) {
        (Some(&lo), Some(&mid), Some(&hi)) => (lo, mid, hi),
        _ => (0.0, 0.0, 0.0),
    }
}

fn print_table(rows: &mut [Row]) {
    println!();
    println!(
        "{:>4} | {:>9} {:>11} {:>6} {:>17} | {:>7} {:>7} | {:>8} {:>8} | {:>7} | {:>6} {:>8} | {:>4} | verdict",
        "conc",
        "gw pair/s",
        "bare pair/s",
        "ratio",
        "rounds min/med/max",
        "gw p50",
        "gw p99",
        "bare p50",
        "bare p99",
        "+p99",
        "gw cpu",
        "bare cpu",
        "sess"
    );
    println!("{}", "-".repeat(142));
    for row in rows.iter_mut() {
        let ratio = row.gateway.rate() / row.bare.rate().max(f64::MIN_POSITIVE);
        let (lo, mid, hi) = spread(&row.round_ratios);
        let (g50, g99) = (row.gateway.percentile(50.0), row.gateway.percentile(99.0));
        let (b50, b99) = (row.bare.percentile(50.0), row.bare.percentile(99.0));
        let added = g99.saturating_sub(b99);
        let ok = ratio >= TARGET_RATIO && added < TARGET_ADDED_P99;
        println!(
            "{:>4} | {:>9.1} {:>11.1} {:>6.3} {:>17} | {:>7} {:>7} | {:>8} {:>8} | {:>7} | {:>6} {:>8} | {:>4} | {}",
            row.concurrency,
            row.gateway.rate(),
            row.bare.rate(),
            ratio,
            format!("{lo:.2}/{mid:.2}/{hi:.2}"),
            ms(g50),
            ms(g99),
            ms(b50),
            ms(b99),
            ms(added),
            ms(row.gateway.cpu_per_pair()),
            ms(row.bare.cpu_per_pair()),
            row.sessions,
            if ok { "meets target" } else { "BELOW TARGET" }
        );
    }
    println!(
        "(times in ms; ratio = gateway pairs/s over bare pairs/s, also per alternation of rounds; \
         +p99 = gateway p99 - bare p99; cpu = process CPU per pair, simulator included; sess = SSH \
         sessions the gateway's pool had open; target: ratio >= {TARGET_RATIO} and +p99 < {} ms)",
        ms(TARGET_ADDED_P99)
    );
}

// ---------------------------------------------------------------------------------------------

/// A scratch directory, in memory when possible (the simulator fsyncs its state on every change).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new().prefix("gwbench").tempdir_in(shm)
    {
        return dir;
    }
    tempfile::Builder::new()
        .prefix("gwbench")
        .tempdir()
        .unwrap()
}

/// Files left under the pool directory.
fn images(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join(BASE))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn run(opts: Options, appliance: Runtime, caller: Runtime) {
    let dir = scratch();
    let key_path = dir.path().join("id_ed25519");
    let public = generate_client_key(&key_path).unwrap();
    let authorized = dir.path().join("authorized_keys");
    std::fs::write(&authorized, format!("{public}\n")).unwrap();
    let root = dir.path().join("root");
    let mut sim_cfg = SimConfig::new(&root);
    sim_cfg.authorized_keys = Some(authorized);
    sim_cfg.pool_size = Some(1 << 40);
    for verb in Verb::ALL {
        sim_cfg.latency.set(verb, opts.latency);
    }
    // The simulator stands in for the appliance, another machine: it runs on its own runtime,
    // so its SSH server does not queue on the worker threads the gateway and the bare client
    // share (the gateway in production is a process of its own too).
    let sim = appliance.spawn(start(sim_cfg)).await.unwrap().unwrap();

    // The gateway's transport with the shipped defaults (pool size, channels, timeouts).
    let ssh = SshConfig::new(
        "127.0.0.1",
        ClientKey::from_file(&key_path).unwrap(),
        HostKeyCheck::Pinned(HostKeyPin::parse(sim.host_key_openssh()).unwrap()),
    );
    let ssh = SshConfig {
        port: sim.addr().port(),
        ..ssh
    };
    let (sessions, per_session, login) = (ssh.max_sessions, ssh.channels_per_session, ssh.login());
    let gw = GatewaySide::start(ssh, dir.path().join("gateway.sock"), &caller).await;

    // Warm up, then capture the command lines of one pair.
    let mut client = gw.client.clone();
    gateway_pair(&mut client, "pvc-warmup").await;
    let before = cmdlog::read(&root).unwrap().len();
    gateway_pair(&mut client, TEMPLATE_SLOT).await;
    let logged = cmdlog::read(&root).unwrap();
    let window = logged.get(before..).unwrap_or_default();
    let template: Vec<String> = window
        .iter()
        .map(|c| c.command.clone())
        .filter(|c| c.contains(TEMPLATE_SLOT))
        .collect();
    let background = window.len() - template.len();
    assert!(
        !template.is_empty(),
        "no command of the template pair was logged"
    );

    let private = PrivateKey::from_openssh(std::fs::read_to_string(&key_path).unwrap()).unwrap();
    let bare = Arc::new(BarePool::connect(&sim, &private, &login, sessions, per_session).await);

    println!(
        "rds-gateway throughput: {} ms per RouterOS verb in rds-sim; pool of {sessions} SSH \
         sessions x {per_session} channels; {} rounds of {} ms per side and row{}",
        opts.latency.as_millis(),
        opts.rounds,
        opts.round.as_millis(),
        if opts.quick { " (quick)" } else { "" }
    );
    if opts.without_grpc {
        println!("DIAGNOSTIC: the gateway side calls the service in-process, without gRPC");
    }
    println!(
        "one pair = {} RouterOS commands ({background} background commands seen meanwhile):",
        template.len()
    );
    for line in &template {
        let words: Vec<&str> = line.split_whitespace().take(3).collect();
        println!("    {}", words.join(" "));
    }

    let mut rows = Vec::new();
    for &concurrency in &opts.concurrency {
        let gw_pair = {
            let client = gw.client.clone();
            let service = gw.gateway.service.clone();
            let direct = opts.without_grpc;
            move || {
                let mut client = client.clone();
                let service = service.clone();
                async move {
                    if direct {
                        direct_pair(&service, &next_slot("g")).await;
                    } else {
                        gateway_pair(&mut client, &next_slot("g")).await;
                    }
                }
            }
        };
        let bare_pair = {
            let bare = bare.clone();
            let template = Arc::new(template.clone());
            move || {
                let bare = bare.clone();
                let template = template.clone();
                async move { bare_pair(&bare, &template, &next_slot("b")).await }
            }
        };
        // A short untimed round each, so both sides start the row with warm sessions.
        let warm = opts.round / 2;
        // The gateway's callers run on a runtime of their own, as the frontend is a process
        // of its own; the in-process diagnostic calls the service where the gateway runs.
        let gw_round = |length: Duration| {
            let work = round(concurrency, length, gw_pair.clone());
            let caller = caller.clone();
            let direct = opts.without_grpc;
            async move {
                if direct {
                    work.await
                } else {
                    caller.spawn(work).await.unwrap()
                }
            }
        };
        gw_round(warm).await;
        round(concurrency, warm, bare_pair.clone()).await;
        let mut row = Row {
            concurrency,
            round_ratios: Vec::new(),
            gateway: Tally::default(),
            bare: Tally::default(),
            sessions: 0,
        };
        for _ in 0..opts.rounds {
            let g = gw_round(opts.round).await;
            let b = round(concurrency, opts.round, bare_pair.clone()).await;
            row.round_ratios
                .push(g.rate() / b.rate().max(f64::MIN_POSITIVE));
            row.gateway.add(g);
            row.bare.add(b);
        }
        row.sessions = gw.runner.pool().snapshot().sessions_open;
        eprintln!(
            "concurrency {concurrency}: {} gateway pairs, {} bare pairs",
            row.gateway.pairs, row.bare.pairs
        );
        rows.push(row);
    }
    print_table(&mut rows);

    // Every pair cleaned up after itself on both sides.
    let disks: Vec<String> = state::load(&Paths::new(&root))
        .unwrap()
        .disks
        .into_iter()
        .map(|d| d.slot)
        .collect();
    assert!(disks.is_empty(), "disks left behind: {disks:?}");
    let left = images(&root);
    assert!(left.is_empty(), "backing files left behind: {left:?}");

    gw.shutdown().await;
    appliance.spawn(sim.shutdown()).await.unwrap();
}

fn main() {
    let opts = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let appliance = tokio::runtime::Builder::new_multi_thread()
        .thread_name("rds-sim")
        .enable_all()
        .build()
        .unwrap();
    let caller = tokio::runtime::Builder::new_multi_thread()
        .thread_name("gateway-caller")
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(
        opts,
        appliance.handle().clone(),
        caller.handle().clone(),
    ));
    caller.shutdown_background();
    appliance.shutdown_background();
}
