//! `rds-sim`: a RouterOS (ROSE Data Server) simulator. Serves the appliance's SSH command
//! interface on file-backed disks so the driver can be tried and tested without an appliance,
//! or runs one command line for an OpenSSH `ForceCommand` (`rds-sim exec`).

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rds_csi_testbed::sim::units::parse_size;
use rds_csi_testbed::sim::{
    LatencySetting, OneShot, PrintStyle, RosVersion, SimConfig, run_once, start,
};
use tracing_subscriber::EnvFilter;

/// A RouterOS (ROSE Data Server) simulator over SSH.
///
/// Disks are sparse files under --root; state, the host key, the command log
/// (commands.log) and the fault rules (faults.json) live in <root>/.rds-sim/.
/// Log in with public-key auth as --user (RouterOS console options such as
/// `admin+cet512w` are accepted) and send one command per exec request.
///
/// Without a subcommand, `serve` is assumed: `rds-sim --root DIR ...` runs the server.
/// See `rds-sim serve --help` and `rds-sim exec --help` for the options.
#[derive(Debug, Parser)]
#[command(name = "rds-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the SSH server until SIGINT or SIGTERM; prints the bound address and host key
    /// (the default without a subcommand).
    Serve(ServeArgs),
    /// Run one command line against the appliance under --root and exit 0; for an OpenSSH
    /// ForceCommand. The command comes from $SSH_ORIGINAL_COMMAND or after `--`.
    Exec(ExecArgs),
}

/// Settings of the simulated appliance.
#[derive(Debug, Args)]
struct ApplianceArgs {
    /// The appliance's filesystem: pools, disk files and .rds-sim/.
    #[arg(long, env = "RDS_SIM_ROOT")]
    root: PathBuf,
    /// Pool directory created under the root; its first component is the mount point.
    #[arg(long, env = "RDS_SIM_POOL", default_value = "storage-pool")]
    pool: String,
    /// Pool size (bytes, or with K/M/G/T or KiB..TiB); default: the size of the root's filesystem.
    #[arg(long, env = "RDS_SIM_POOL_SIZE", value_parser = size_arg)]
    pool_size: Option<u64>,
    /// Terminal width used to wrap prints when the login name sets none (`+NNNw`).
    #[arg(long, env = "RDS_SIM_WRAP_WIDTH", default_value_t = 80)]
    wrap_width: usize,
    /// Output shape: `new` (RouterOS 7.16+, RDS2216) or `old` (earlier 7.x).
    #[arg(long, env = "RDS_SIM_PRINT_STYLE", default_value = "new", value_parser = style_arg)]
    print_style: PrintStyle,
    /// RouterOS version to imitate; `:serialize` (JSON) exists from 7.13 on.
    #[arg(long, env = "RDS_SIM_ROUTEROS_VERSION", default_value = "7.16.2", value_parser = version_arg)]
    routeros_version: RosVersion,
    /// Print JSON integers as floats (`443.000000`), as some versions do.
    #[arg(long, env = "RDS_SIM_JSON_FLOATS")]
    json_floats: bool,
    /// End output lines with CR LF.
    #[arg(long, env = "RDS_SIM_CRLF")]
    crlf: bool,
    /// Added delay per command verb, like `disk-add=20ms` (verbs: disk-add, disk-copy,
    /// disk-print, disk-set, disk-remove, file-remove, file-print, monitor, system). Repeatable.
    #[arg(long, env = "RDS_SIM_LATENCY", value_delimiter = ',', value_parser = latency_arg)]
    latency: Vec<LatencySetting>,
    /// `board-name` reported by /system resource print.
    #[arg(long, env = "RDS_SIM_BOARD_NAME", default_value = "RDS2216")]
    board_name: String,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    appliance: ApplianceArgs,
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "RDS_SIM_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// OpenSSH private host key; default: <root>/.rds-sim/host_key, generated (ed25519) once.
    #[arg(long, env = "RDS_SIM_HOST_KEY")]
    host_key: Option<PathBuf>,
    /// OpenSSH authorized_keys file (ed25519, ECDSA, RSA with SHA-2), re-read at each login.
    #[arg(long, env = "RDS_SIM_AUTHORIZED_KEYS")]
    authorized_keys: Option<PathBuf>,
    /// Login user name (console options after `+` are ignored for the check).
    #[arg(long, env = "RDS_SIM_USER", default_value = "admin")]
    user: String,
    /// Refuse every login.
    #[arg(long, env = "RDS_SIM_REFUSE_AUTH")]
    refuse_auth: bool,
}

#[derive(Debug, Args)]
struct ExecArgs {
    #[command(flatten)]
    appliance: ApplianceArgs,
    /// User name written to the command log.
    #[arg(long, env = "USER", default_value = "admin")]
    user: String,
    /// The command line (default: $SSH_ORIGINAL_COMMAND).
    #[arg(last = true)]
    command: Vec<String>,
}

fn size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).ok_or_else(|| format!("not a size: {s:?} (like 50G or 53687091200)"))
}

fn style_arg(s: &str) -> Result<PrintStyle, String> {
    s.parse()
}

fn version_arg(s: &str) -> Result<RosVersion, String> {
    s.parse()
}

fn latency_arg(s: &str) -> Result<LatencySetting, String> {
    s.parse()
}

fn config(a: ApplianceArgs) -> SimConfig {
    let mut cfg = SimConfig::new(a.root);
    cfg.pool = a.pool;
    cfg.pool_size = a.pool_size;
    cfg.wrap_width = a.wrap_width;
    cfg.print_style = a.print_style;
    cfg.routeros_version = a.routeros_version;
    cfg.json_floats = a.json_floats;
    cfg.crlf = a.crlf;
    cfg.latency = a.latency.into_iter().collect();
    cfg.board_name = a.board_name;
    cfg
}

fn init_logs(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    // `serve` is the default subcommand: `rds-sim --root DIR` means `rds-sim serve --root DIR`
    let first = argv.get(1).and_then(|a| a.to_str()).unwrap_or("--");
    let explicit = ["serve", "exec", "help", "-h", "--help", "-V", "--version"].contains(&first);
    if !explicit {
        argv.insert(1.min(argv.len()), OsString::from("serve"));
    }
    match Cli::parse_from(argv).command {
        Command::Exec(args) => exec(args),
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    init_logs("info");
    let mut cfg = config(args.appliance);
    cfg.listen = args.listen;
    cfg.host_key = args.host_key;
    cfg.authorized_keys = args.authorized_keys;
    cfg.user = args.user;
    cfg.refuse_auth = args.refuse_auth;
    if cfg.authorized_keys.is_none() && !cfg.refuse_auth {
        eprintln!("rds-sim: warning: no --authorized-keys given, nobody can log in");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rds-sim: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let sim = match start(cfg).await {
            Ok(sim) => sim,
            Err(e) => {
                eprintln!("rds-sim: error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "rds-sim listening on {}", sim.addr());
        let _ = writeln!(out, "host key: {}", sim.host_key_openssh());
        let _ = writeln!(out, "root: {}", sim.root().display());
        let _ = out.flush();
        drop(out);
        if let Err(e) = stop_signal().await {
            eprintln!("rds-sim: error: cannot wait for signals: {e}");
            return ExitCode::FAILURE;
        }
        tracing::info!("stopping");
        sim.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

fn exec(args: ExecArgs) -> ExitCode {
    init_logs("warn");
    let command = if args.command.is_empty() {
        match std::env::var("SSH_ORIGINAL_COMMAND") {
            Ok(c) => c,
            Err(_) => {
                eprintln!(
                    "rds-sim exec: no command (give it after `--` or in $SSH_ORIGINAL_COMMAND)"
                );
                return ExitCode::from(2);
            }
        }
    } else {
        args.command.join(" ")
    };
    let cfg = config(args.appliance);
    match run_once(cfg, &args.user, &command) {
        Ok(OneShot::Output(text)) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        // a lost connection: no answer, the status ssh reports for a dropped session
        Ok(OneShot::Dropped) => ExitCode::from(255),
        Ok(OneShot::Hung) => {
            // never answer; end once the session that started us is gone
            let parent = std::os::unix::process::parent_id();
            while std::os::unix::process::parent_id() == parent {
                std::thread::sleep(Duration::from_millis(200));
            }
            ExitCode::from(255)
        }
        Err(e) => {
            eprintln!("rds-sim exec: error: {e}");
            ExitCode::FAILURE
        }
    }
}
