//! Identity service cases: the plugin's name and version, its capabilities, and Probe —
//! asked on the node socket and, when it is a different one, on the controller socket.

use rds_csi_proto::csi::plugin_capability::service::Type as PluginService;
use rds_csi_proto::csi::plugin_capability::volume_expansion::Type as Expansion;
use rds_csi_proto::csi::{
    GetPluginCapabilitiesRequest, GetPluginInfoRequest, ProbeRequest, plugin_capability,
};
use tonic::Code;

use crate::conformance::context::Ctx;
use crate::conformance::expect::{ensure, shown, succeeds};
use crate::conformance::registry::{Area, Case, CaseResult, case};

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            Area::Identity,
            "GetPluginInfo: name is a valid driver name and a version is given",
            &[],
            plugin_info
        ),
        case!(
            Area::Identity,
            "GetPluginCapabilities: every capability is one the spec defines",
            &[],
            plugin_capabilities
        ),
        case!(
            Area::Identity,
            "Probe: answers OK or FAILED_PRECONDITION",
            &[],
            probe
        ),
    ]
}

/// A CSI driver name: 1-63 characters, starting and ending with a letter, inside only
/// letters, digits, '-', '.', '_' (and '\', which csi-sanity also lets through).
fn valid_driver_name(name: &str) -> bool {
    let b = name.as_bytes();
    let edge = |c: &u8| c.is_ascii_alphabetic();
    b.len() >= 2
        && b.len() <= 63
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'\\'))
}

async fn plugin_info(ctx: &Ctx) -> CaseResult {
    for (socket, mut id) in ctx.identities() {
        let info = succeeds(
            &format!("GetPluginInfo ({socket})"),
            ctx.call(id.get_plugin_info(GetPluginInfoRequest {})).await,
        )?;
        ensure(valid_driver_name(&info.name), || {
            format!(
                "GetPluginInfo ({socket}): {:?} is not a valid driver name",
                info.name
            )
        })?;
        ensure(!info.vendor_version.is_empty(), || {
            format!("GetPluginInfo ({socket}): vendor_version is empty (the spec requires it)")
        })?;
    }
    Ok(())
}

async fn plugin_capabilities(ctx: &Ctx) -> CaseResult {
    for (socket, mut id) in ctx.identities() {
        let caps = succeeds(
            &format!("GetPluginCapabilities ({socket})"),
            ctx.call(id.get_plugin_capabilities(GetPluginCapabilitiesRequest {}))
                .await,
        )?
        .capabilities;
        for c in caps {
            let known = match &c.r#type {
                Some(plugin_capability::Type::Service(s)) => matches!(
                    PluginService::try_from(s.r#type),
                    Ok(PluginService::ControllerService
                        | PluginService::VolumeAccessibilityConstraints
                        | PluginService::GroupControllerService
                        | PluginService::SnapshotMetadataService)
                ),
                Some(plugin_capability::Type::VolumeExpansion(e)) => matches!(
                    Expansion::try_from(e.r#type),
                    Ok(Expansion::Online | Expansion::Offline)
                ),
                None => false,
            };
            ensure(known, || {
                format!("GetPluginCapabilities ({socket}): unknown capability {c:?}")
            })?;
        }
    }
    Ok(())
}

async fn probe(ctx: &Ctx) -> CaseResult {
    for (socket, mut id) in ctx.identities() {
        match ctx.call(id.probe(ProbeRequest {})).await {
            Ok(_) => {}
            Err(s) if s.code() == Code::FailedPrecondition => {}
            Err(s) => {
                return Err(format!(
                    "Probe ({socket}): expected OK or FAILED_PRECONDITION, got {}",
                    shown(&s)
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn driver_names_follow_the_csi_rules() {
        assert!(valid_driver_name("rds.csi.srvlab.io"));
        assert!(valid_driver_name("hostpath.csi.k8s.io"));
        for bad in ["", "a", "1abc", "abc.", "ab c", &"a".repeat(64), "abc9"] {
            assert!(!valid_driver_name(bad), "{bad:?}");
        }
    }
}
