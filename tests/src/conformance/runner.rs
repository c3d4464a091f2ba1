//! Runs the catalogue against a plugin: connects, asks what is advertised, then runs each
//! applicable case in its own context with a time limit, gives back what it created, and
//! records the outcome.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rds_csi_proto::channel::connect_lazy;
use rds_csi_proto::csi::group_controller_client::GroupControllerClient;
use rds_csi_proto::csi::identity_client::IdentityClient;
use rds_csi_proto::csi::{GetPluginInfoRequest, ProbeRequest};
use rds_csi_proto::endpoint::Endpoint;

use super::caps::Advertised;
use super::config::SuiteConfig;
use super::context::{Ctx, Shared};
use super::ids::IdGen;
use super::registry::{self, Case};
use super::report::{CaseReport, Outcome, Report};
use crate::csi_client::Csi;

/// Where the plugin serves and where node paths go.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// Node and identity socket.
    pub csi_socket: &'a Path,
    /// Controller socket (may be the same as `csi_socket`).
    pub controller_socket: &'a Path,
    /// Root under which staging and target paths are made.
    pub kubelet_dir: &'a Path,
}

/// How long the plugin may take to report ready before the run gives up.
const READY_WAIT: Duration = Duration::from_secs(60);

/// Waits until Probe reports ready on `identity`, as a CO's sidecars wait before their
/// first call; the last answer is in the error when it never does.
async fn wait_ready(
    socket: &Path,
    mut identity: IdentityClient<tonic::transport::Channel>,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let last = match identity.probe(ProbeRequest {}).await {
            // An unset `ready` means ready.
            Ok(r) if r.get_ref().ready != Some(false) => return Ok(()),
            Ok(_) => "ready: false".to_string(),
            Err(s) => format!("{:?}: {}", s.code(), s.message()),
        };
        if start.elapsed() > READY_WAIT {
            return Err(format!(
                "the plugin at {} did not report ready within {READY_WAIT:?} (last Probe: {last})",
                socket.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Connects to the plugin, waits until it reports ready, and asks it what it is and what
/// it advertises.
pub async fn prepare(target: &Target<'_>, config: SuiteConfig) -> Result<Arc<Shared>, String> {
    let csi = Csi::connect(target.csi_socket, target.controller_socket)?;
    let controller_channel = connect_lazy(&Endpoint::Unix(target.controller_socket.to_path_buf()))
        .map_err(|e| e.to_string())?;
    let controller_identity = (target.controller_socket != target.csi_socket)
        .then(|| IdentityClient::new(controller_channel.clone()));
    let group = GroupControllerClient::new(controller_channel);
    wait_ready(target.csi_socket, csi.identity.clone()).await?;
    if let Some(c) = &controller_identity {
        wait_ready(target.controller_socket, c.clone()).await?;
    }
    let info = csi
        .identity
        .clone()
        .get_plugin_info(GetPluginInfoRequest {})
        .await
        .map_err(|s| format!("GetPluginInfo: {}", s.message()))?
        .into_inner();
    let advertised = Advertised::query(&csi, controller_identity.as_ref(), &group).await?;
    Ok(Arc::new(Shared {
        csi,
        controller_identity,
        group,
        advertised,
        config,
        ids: IdGen::new(),
        kubelet_dir: target.kubelet_dir.to_path_buf(),
        driver_name: info.name,
    }))
}

/// Runs one case: skipped when something it needs is not advertised.
pub async fn run_case(shared: &Arc<Shared>, index: usize, case: &Case) -> CaseReport {
    let start = Instant::now();
    let report = |outcome| CaseReport {
        name: case.name.to_string(),
        area: case.area,
        outcome,
        took: start.elapsed(),
    };
    if !shared.config.selects(case.name) {
        return report(Outcome::NotRun);
    }
    let unmet = case.unmet(&shared.advertised);
    if !unmet.is_empty() {
        let labels: Vec<String> = unmet.iter().map(|n| n.label()).collect();
        return report(Outcome::Skipped(format!(
            "not advertised: {}",
            labels.join(", ")
        )));
    }
    let ctx = Ctx::new(shared.clone(), index);
    let limit = shared.config.case_timeout;
    let result = match tokio::time::timeout(limit, (case.run)(&ctx)).await {
        Ok(r) => r,
        Err(_) => Err(format!("the case did not finish within {limit:?}")),
    };
    let problems = ctx.finish().await;
    let outcome = match (result, problems.is_empty()) {
        (Ok(()), true) => Outcome::Passed,
        (Ok(()), false) => Outcome::Failed(format!("cleanup: {}", problems.join("; "))),
        (Err(e), true) => Outcome::Failed(e),
        (Err(e), false) => Outcome::Failed(format!("{e}; cleanup: {}", problems.join("; "))),
    };
    report(outcome)
}

/// Runs every case in catalogue order, printing one progress line per case to stderr.
pub async fn run_all(shared: &Arc<Shared>) -> Report {
    let mut report = Report::default();
    for (i, case) in registry::all().iter().enumerate() {
        let row = run_case(shared, i + 1, case).await;
        let tag = match &row.outcome {
            Outcome::Passed => "pass",
            Outcome::Failed(_) => "FAIL",
            Outcome::Skipped(_) => "skip",
            Outcome::NotRun => "-",
        };
        eprintln!(
            "[conformance {:>3}] {tag:<4} {:>6} ms  {}",
            i + 1,
            row.took.as_millis(),
            row.name
        );
        report.cases.push(row);
    }
    report
}
