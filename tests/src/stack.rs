//! The whole driver on one machine: the RouterOS simulator as the appliance and every
//! component as its own process, wired together as in a cluster — the gateway over real
//! SSH to the simulator, the helper with the loop fabric over the simulator's backing
//! files, the frontend in controller and node mode (or both in one process when they share
//! a socket) over unix sockets, each with its own metrics port.
//!
//! The testbed binary and the end-to-end suites start a [`Stack`]; dropping it kills
//! whatever is still running, [`Stack::stop`] stops everything with SIGTERM and checks
//! each exit, and [`Stack::kill`]/[`Stack::restart`] let the suites crash one component
//! and bring it back with the same flags.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::process::Command;

use crate::bins;
use crate::process::{Process, ProcessError, free_port};

/// How long a component may take to create its socket.
const START_WAIT: Duration = Duration::from_secs(30);
/// How many times a start is tried before its error is returned.
const START_ATTEMPTS: u32 = 3;
/// How long a component may take to exit after SIGTERM.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// The pool directory the simulator creates and volumes live under.
pub const POOL: &str = "storage-pool";
/// Where volumes' backing files go on the simulated appliance.
pub const VOLUME_PATH: &str = "/storage-pool/kubernetes-volumes";

/// Why the stack could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Binary(#[from] bins::MissingBinary),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make the SSH key for the gateway: {0}")]
    Key(String),
    #[error("{name} exited with {status} after SIGTERM")]
    Unclean { name: String, status: String },
    #[error("no component named {0} in this stack")]
    Unknown(String),
    #[error("rds-sim did not listen on {0} within {1:?}")]
    SimNotListening(SocketAddr, Duration),
    #[error(
        "{0} is not writable by uid {UNPRIVILEGED}, which the frontend runs as; choose a socket in a directory that uid may write (such as /tmp) or in one that does not exist yet"
    )]
    SocketDirNotWritable(PathBuf),
    #[error(
        "{0} is not searchable by uid {UNPRIVILEGED}, which the frontend and the gateway run as, so they cannot reach their files below it; choose a state directory whose parents others may enter (such as one under /tmp)"
    )]
    NotSearchable(PathBuf),
}

/// The node id of the testbed's one node plugin.
pub const NODE_ID: &str = "testbed-node";
/// Further node ids the controller is told exist (`--known-nodes`), standing for the other
/// nodes of a cluster in attachment tests (a second node, a migration target); no node plugin
/// runs for them.
pub const PEER_NODE_IDS: [&str; 2] = ["testbed-node-b", "testbed-node-c"];

/// The uid and gid the frontend and the gateway run as when the stack is started by root:
/// they need no privilege, and the testbed proves it (`nobody`).
pub const UNPRIVILEGED: u32 = 65534;

/// What to start.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Sockets, the appliance's files, kubelet paths and every component's state go here.
    pub state_dir: PathBuf,
    /// The node (and identity) CSI socket; `<state>/sockets/csi.sock` when not given.
    pub csi_socket: Option<PathBuf>,
    /// The controller CSI socket; the same as the node socket when not given, in which
    /// case one frontend process serves both.
    pub controller_socket: Option<PathBuf>,
    /// Root under which staging and target paths live; `<state>/kubelet` when not given.
    pub kubelet_dir: Option<PathBuf>,
    /// RouterOS version the simulator imitates.
    pub routeros_version: String,
    /// Simulator latency per verb (`disk-add=20ms`), passed through.
    pub sim_latency: Vec<String>,
    /// Simulated pool size.
    pub pool_size: String,
    pub log_level: String,
    /// Where every component exports its spans (an OTLP/gRPC endpoint), if anywhere.
    pub otlp_endpoint: Option<String>,
    /// When set, each component's stdout and stderr are appended to `<dir>/<name>.log`
    /// instead of the test's own output.
    pub log_dir: Option<PathBuf>,
}

impl StackConfig {
    /// Defaults for a stack under `state_dir`.
    pub fn new(state_dir: &Path) -> StackConfig {
        StackConfig {
            state_dir: state_dir.to_path_buf(),
            csi_socket: None,
            controller_socket: None,
            kubelet_dir: None,
            routeros_version: "7.16.2".into(),
            sim_latency: Vec::new(),
            pool_size: "64G".into(),
            log_level: "warn".into(),
            otlp_endpoint: None,
            log_dir: None,
        }
    }
}

/// Where everything listens.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub csi_socket: PathBuf,
    pub controller_socket: PathBuf,
    pub gateway_socket: PathBuf,
    pub helper_socket: PathBuf,
    pub sim_addr: SocketAddr,
    /// The simulated appliance's filesystem (pool directories, backing files, `.rds-sim/`).
    pub sim_root: PathBuf,
    pub kubelet_dir: PathBuf,
    /// The metrics address of each component, by component name.
    pub metrics: Vec<(String, SocketAddr)>,
}

impl Endpoints {
    /// The metrics address of `name`.
    pub fn metrics_of(&self, name: &str) -> Option<SocketAddr> {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
    }
}

/// How to (re)start one component.
#[derive(Debug, Clone)]
struct Spec {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(String, String)>,
    /// Created when the component serves; `None` for the simulator (a TCP port).
    socket: Option<PathBuf>,
    /// The uid and gid to run as (the frontend and the gateway, when started by root).
    user: Option<u32>,
}

impl Spec {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        if let Some(id) = self.user {
            // std drops root's supplementary groups when it changes the uid.
            cmd.uid(id).gid(id);
        }
        cmd
    }
}

/// The running components.
pub struct Stack {
    pub endpoints: Endpoints,
    specs: Vec<Spec>,
    running: Vec<Option<Process>>,
    log_dir: Option<PathBuf>,
}

fn port() -> Result<SocketAddr, StackError> {
    let p = free_port().map_err(|source| StackError::Io {
        path: PathBuf::from("127.0.0.1:0"),
        source,
    })?;
    Ok(SocketAddr::from(([127, 0, 0, 1], p)))
}

fn unix(path: &Path) -> OsString {
    format!("unix://{}", path.display()).into()
}

fn mkdir(path: &Path) -> Result<(), StackError> {
    std::fs::create_dir_all(path).map_err(|source| StackError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Gives `path` to `uid` with `mode`, so that an unprivileged component can use it.
fn hand_over(path: &Path, uid: u32, mode: u32) -> Result<(), StackError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| StackError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)
}

/// Makes sure the unprivileged frontend can create a socket at `socket`: its directory is
/// created for (and given to) `uid` when missing, and must otherwise be writable by it.
fn socket_dir_for(socket: &Path, uid: u32) -> Result<(), StackError> {
    use std::os::unix::fs::MetadataExt;
    let dir = socket.parent().unwrap_or(Path::new("/"));
    if !dir.exists() {
        mkdir(dir)?;
        return hand_over(dir, uid, 0o755);
    }
    let meta = std::fs::metadata(dir).map_err(|source| StackError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let writable = (meta.uid() == uid && meta.mode() & 0o200 != 0) || meta.mode() & 0o002 != 0;
    if writable {
        Ok(())
    } else {
        Err(StackError::SocketDirNotWritable(dir.to_path_buf()))
    }
}

/// Checks that `uid` may enter every directory above `path` (the stack opens `path` itself).
fn searchable_above(path: &Path, uid: u32) -> Result<(), StackError> {
    use std::os::unix::fs::MetadataExt;
    let absolute = std::path::absolute(path).map_err(|source| StackError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    for dir in absolute.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        let enters = meta.mode() & 0o001 != 0 || (meta.uid() == uid && meta.mode() & 0o100 != 0);
        if !enters {
            return Err(StackError::NotSearchable(dir.to_path_buf()));
        }
    }
    Ok(())
}

/// Lets everyone traverse and read `path` (a root-only temporary directory on the way to
/// what the unprivileged components use).
fn open_up(path: &Path) -> Result<(), StackError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|source| {
        StackError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn args<const N: usize>(list: [&dyn AsRef<std::ffi::OsStr>; N]) -> Vec<OsString> {
    list.iter().map(|a| a.as_ref().to_os_string()).collect()
}

impl Stack {
    /// Starts the simulator, rds-gateway, nvme-helper and csi-frontend, and waits until
    /// each serves. Ports are picked free just before the processes bind them, so another
    /// stack starting at the same moment can take one first: a start that fails is retried
    /// with fresh ports (what was started is killed when the failed attempt is dropped).
    pub async fn start(cfg: &StackConfig) -> Result<Stack, StackError> {
        let mut attempt = 1;
        loop {
            match Self::start_once(cfg).await {
                Ok(stack) => return Ok(stack),
                Err(e) if attempt < START_ATTEMPTS => {
                    tracing::warn!(attempt, error = %e, "the stack did not start; retrying with fresh ports");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn start_once(cfg: &StackConfig) -> Result<Stack, StackError> {
        let state = &cfg.state_dir;
        let sockets = state.join("sockets");
        let sim_root = state.join("appliance");
        let kubelet_dir = cfg
            .kubelet_dir
            .clone()
            .unwrap_or_else(|| state.join("kubelet"));
        let frontend_state = state.join("frontend");
        for d in [
            &sockets,
            &sim_root,
            &kubelet_dir,
            &state.join("keys"),
            &frontend_state,
        ] {
            mkdir(d)?;
        }
        // Started by root, the frontend and the gateway still run unprivileged.
        let user = nix::unistd::getuid().is_root().then_some(UNPRIVILEGED);
        let csi_socket = cfg
            .csi_socket
            .clone()
            .unwrap_or_else(|| sockets.join("csi.sock"));
        let controller_socket = cfg
            .controller_socket
            .clone()
            .unwrap_or_else(|| csi_socket.clone());
        let split = controller_socket != csi_socket;
        let gateway_socket = sockets.join("gateway.sock");
        let helper_socket = sockets.join("helper.sock");
        let sim_addr = port()?;

        // The gateway's SSH identity, authorised on the simulated appliance.
        let key_file = state.join("keys/gateway_ed25519");
        let public = crate::sim::generate_client_key(&key_file)
            .map_err(|e| StackError::Key(e.to_string()))?;
        let authorized = state.join("keys/authorized_keys");
        std::fs::write(&authorized, format!("{public}\n")).map_err(|source| StackError::Io {
            path: authorized.clone(),
            source,
        })?;
        if let Some(uid) = user {
            searchable_above(state, uid)?;
            open_up(state)?;
            open_up(&state.join("keys"))?;
            hand_over(&key_file, uid, 0o600)?;
            hand_over(&sockets, uid, 0o755)?;
            hand_over(&frontend_state, uid, 0o700)?;
            for socket in [&csi_socket, &controller_socket] {
                if !socket.starts_with(&sockets) {
                    socket_dir_for(socket, uid)?;
                }
            }
        }
        // Only the frontend (and root, for tests that call the helper directly) may use the
        // helper's socket; only the controller frontend (and root) the gateway's.
        let socket_access = |owner: Option<u32>| -> Vec<OsString> {
            let mut a = vec![
                "--socket-allowed-uids".into(),
                format!("0,{}", user.unwrap_or(0)).into(),
            ];
            if let Some(uid) = owner {
                a.push("--socket-owner".into());
                a.push(format!("{uid}:{uid}").into());
            }
            a
        };

        let mut metrics = Vec::new();
        let mut specs = Vec::new();
        let envs: Vec<(String, String)> = match &cfg.otlp_endpoint {
            // Short batches so that spans arrive while a suite still looks for them.
            Some(otlp) => vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), otlp.clone()),
                ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
            ],
            None => Vec::new(),
        };

        let mut sim_args = args([
            &"serve",
            &"--root",
            &sim_root,
            &"--listen",
            &sim_addr.to_string(),
            &"--authorized-keys",
            &authorized,
            &"--pool",
            &POOL,
            &"--pool-size",
            &cfg.pool_size,
            &"--routeros-version",
            &cfg.routeros_version,
        ]);
        for l in &cfg.sim_latency {
            sim_args.push("--latency".into());
            sim_args.push(l.into());
        }
        specs.push(Spec {
            name: "rds-sim".into(),
            program: bins::path("rds-sim")?,
            args: sim_args,
            envs: vec![("RUST_LOG".into(), cfg.log_level.clone())],
            socket: None,
            user: None,
        });

        let gw_metrics = port()?;
        metrics.push(("rds-gateway".to_string(), gw_metrics));
        specs.push(Spec {
            name: "rds-gateway".into(),
            program: bins::path("rds-gateway")?,
            args: args([
                &"--endpoint",
                &unix(&gateway_socket),
                &"--metrics-address",
                &gw_metrics.to_string(),
                &"--log-level",
                &cfg.log_level,
                &"--rds-address",
                &"127.0.0.1",
                &"--rds-port",
                &sim_addr.port().to_string(),
                &"--rds-user",
                &"admin",
                &"--rds-key-file",
                &key_file,
                &"--rds-host-key",
                &sim_root.join(".rds-sim/host_key.pub"),
                &"--rds-volume-base-path",
                &VOLUME_PATH,
                &"--shutdown-grace-seconds",
                &"10",
            ])
            .into_iter()
            .chain(socket_access(None))
            .collect(),
            envs: envs.clone(),
            socket: Some(gateway_socket.clone()),
            user,
        });

        let helper_metrics = port()?;
        metrics.push(("nvme-helper".to_string(), helper_metrics));
        specs.push(Spec {
            name: "nvme-helper".into(),
            program: bins::path("nvme-helper")?,
            args: args([
                &"--endpoint",
                &unix(&helper_socket),
                &"--metrics-address",
                &helper_metrics.to_string(),
                &"--log-level",
                &cfg.log_level,
                &"--fabric",
                &"loop",
                &"--loop-backing-dir",
                &sim_root,
                &"--kubelet-dir",
                &kubelet_dir,
                &"--state-dir",
                &state.join("helper"),
                &"--host-nqn-file",
                &state.join("nvme/hostnqn"),
                &"--host-id-file",
                &state.join("nvme/hostid"),
                &"--shutdown-grace-seconds",
                &"10",
            ])
            .into_iter()
            .chain(socket_access(user))
            .collect(),
            envs: envs.clone(),
            socket: Some(helper_socket.clone()),
            user: None,
        });

        let known_nodes = std::iter::once(NODE_ID)
            .chain(PEER_NODE_IDS)
            .collect::<Vec<_>>()
            .join(",");
        let frontend = |mode: &str, socket: &Path, metrics_addr: SocketAddr| {
            args([
                &"--mode",
                &mode,
                &"--endpoint",
                &unix(socket),
                &"--gateway-endpoint",
                &unix(&gateway_socket),
                &"--helper-endpoint",
                &unix(&helper_socket),
                &"--node-id",
                &NODE_ID,
                &"--known-nodes",
                &known_nodes,
                &"--metrics-address",
                &metrics_addr.to_string(),
                &"--log-level",
                &cfg.log_level,
                &"--attachment-source",
                &"file",
                &"--attachment-store",
                &format!("file:{}", frontend_state.join("attachments.json").display()),
                &"--default-nvme-address",
                &"127.0.0.1",
                &"--default-volume-path",
                &VOLUME_PATH,
                &"--shutdown-grace-seconds",
                &"10",
            ])
            .into_iter()
            .chain(socket_access(None))
            .collect::<Vec<OsString>>()
        };
        let fe = bins::path("csi-frontend")?;
        if split {
            let m = port()?;
            metrics.push(("csi-frontend-controller".to_string(), m));
            specs.push(Spec {
                name: "csi-frontend-controller".into(),
                program: fe.clone(),
                args: frontend("controller", &controller_socket, m),
                envs: envs.clone(),
                socket: Some(controller_socket.clone()),
                user,
            });
            let m = port()?;
            metrics.push(("csi-frontend-node".to_string(), m));
            specs.push(Spec {
                name: "csi-frontend-node".into(),
                program: fe,
                args: frontend("node", &csi_socket, m),
                envs,
                socket: Some(csi_socket.clone()),
                user,
            });
        } else {
            let m = port()?;
            metrics.push(("csi-frontend".to_string(), m));
            specs.push(Spec {
                name: "csi-frontend".into(),
                program: fe,
                args: frontend("all", &csi_socket, m),
                envs,
                socket: Some(csi_socket.clone()),
                user,
            });
        }

        let mut stack = Stack {
            endpoints: Endpoints {
                csi_socket,
                controller_socket,
                gateway_socket,
                helper_socket,
                sim_addr,
                sim_root,
                kubelet_dir,
                metrics,
            },
            running: specs.iter().map(|_| None).collect(),
            specs,
            log_dir: cfg.log_dir.clone(),
        };
        for i in 0..stack.specs.len() {
            stack.launch(i).await?;
        }
        Ok(stack)
    }

    fn index(&self, name: &str) -> Result<usize, StackError> {
        self.specs
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| StackError::Unknown(name.to_string()))
    }

    /// The names of the components, in start order.
    pub fn names(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.name.clone()).collect()
    }

    async fn launch(&mut self, i: usize) -> Result<(), StackError> {
        let spec = self.specs[i].clone();
        let mut cmd = spec.command();
        if let Some(dir) = &self.log_dir {
            let path = dir.join(format!("{}.log", spec.name));
            let io = |source| StackError::Io {
                path: path.clone(),
                source,
            };
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io)?;
            let err = out.try_clone().map_err(io)?;
            cmd.stdout(out).stderr(err);
        }
        let mut p = Process::spawn(&spec.name, cmd)?;
        match &spec.socket {
            Some(socket) => p.wait_for_socket(socket, START_WAIT).await?,
            None => wait_listening(self.endpoints.sim_addr, START_WAIT).await?,
        }
        self.running[i] = Some(p);
        Ok(())
    }

    /// Kills component `name` with `signal` (SIGKILL to crash it) and waits for it to go.
    pub async fn kill(&mut self, name: &str, signal: Signal) -> Result<(), StackError> {
        let i = self.index(name)?;
        if let Some(p) = self.running[i].take() {
            let _ = p.stop(signal, STOP_WAIT).await?;
        }
        Ok(())
    }

    /// Starts component `name` again with the same flags (after [`Stack::kill`]).
    pub async fn restart(&mut self, name: &str) -> Result<(), StackError> {
        let i = self.index(name)?;
        if let Some(p) = self.running[i].take() {
            let _ = p.stop(Signal::SIGKILL, STOP_WAIT).await?;
        }
        self.launch(i).await
    }

    /// The process id of a running component.
    pub fn pid(&self, name: &str) -> Option<u32> {
        let i = self.index(name).ok()?;
        self.running[i].as_ref().and_then(Process::pid)
    }

    /// Stops every component with SIGTERM, last started first, and checks each exit.
    pub async fn stop(mut self) -> Result<(), StackError> {
        let mut first_error = None;
        while let Some(slot) = self.running.pop() {
            let Some(p) = slot else { continue };
            let name = p.name.clone();
            match p.stop(Signal::SIGTERM, STOP_WAIT).await {
                Ok(status) if status.success() => {}
                Ok(status) => {
                    first_error.get_or_insert(StackError::Unclean {
                        name,
                        status: status.to_string(),
                    });
                }
                Err(e) => {
                    first_error.get_or_insert(e.into());
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

async fn wait_listening(addr: SocketAddr, within: Duration) -> Result<(), StackError> {
    let start = Instant::now();
    while start.elapsed() < within {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(StackError::SimNotListening(addr, within))
}
