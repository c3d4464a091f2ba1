//! Attachment state in a cluster: rebuilt from the VolumeAttachment objects of this driver.
//!
//! The external-attacher creates a VolumeAttachment before it calls ControllerPublish and
//! sets `status.attached` once the call succeeded; it removes the object only after
//! ControllerUnpublish succeeded. So at start-up the attached VolumeAttachments of this
//! driver are exactly the publishes that returned OK, and the table is rebuilt from them
//! (their PersistentVolumes give the volume id, access mode, read-only flag and migration
//! window) before the controller serves. Access is read-only: list VolumeAttachments and
//! PersistentVolumes.
//!
//! While running, the table is the authority and a periodic resync only forgets an
//! attachment whose VolumeAttachment is gone (an object force-deleted by hand), and only
//! after a grace period, so that a publish that just succeeded is never dropped before the
//! attacher records it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeSpec};
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::api::{Api, ListParams};

use super::{Attachments, NodeAttachment, Sharing, StoreError, Table, VolumeRecord, unix_now};
use crate::ids::{NodeId, VolumeId};
use crate::params::parse_migration_timeout;
use crate::volume_context::keys::MIGRATION_TIMEOUT;

/// Page size of list calls.
const PAGE: u32 = 500;
/// How long a recorded attachment without a VolumeAttachment is kept before it is forgotten.
pub const RESYNC_GRACE_SECS: i64 = 120;

/// What the rebuild found, with the objects it could not use and why.
#[derive(Debug, Default)]
pub struct Rebuilt {
    pub table: Table,
    pub skipped: Vec<String>,
}

/// The PV spec a VolumeAttachment refers to.
fn pv_spec<'a>(
    va: &'a VolumeAttachment,
    pvs: &'a HashMap<String, &'a PersistentVolume>,
) -> Option<&'a PersistentVolumeSpec> {
    if let Some(inline) = va.spec.source.inline_volume_spec.as_ref() {
        return Some(inline);
    }
    let name = va.spec.source.persistent_volume_name.as_ref()?;
    pvs.get(name)?.spec.as_ref()
}

fn va_name(va: &VolumeAttachment) -> String {
    va.metadata
        .name
        .clone()
        .unwrap_or_else(|| "<unnamed>".into())
}

/// Builds the table from listed objects.
pub fn table_from_objects(
    driver: &str,
    vas: &[VolumeAttachment],
    pvs: &[PersistentVolume],
    default_timeout_secs: u32,
) -> Rebuilt {
    let by_name: HashMap<String, &PersistentVolume> = pvs
        .iter()
        .filter_map(|pv| pv.metadata.name.clone().map(|n| (n, pv)))
        .collect();
    let mut out = Rebuilt::default();
    let mut volumes: BTreeMap<String, VolumeRecord> = BTreeMap::new();
    for va in vas.iter().filter(|va| va.spec.attacher == driver) {
        if !va.status.as_ref().is_some_and(|s| s.attached) {
            continue;
        }
        let Some(spec) = pv_spec(va, &by_name) else {
            out.skipped.push(format!(
                "VolumeAttachment {}: its PersistentVolume was not found",
                va_name(va)
            ));
            continue;
        };
        let Some(csi) = spec.csi.as_ref().filter(|c| c.driver == driver) else {
            continue;
        };
        let volume = match VolumeId::parse("volume handle", &csi.volume_handle) {
            Ok(v) => v,
            Err(e) => {
                out.skipped
                    .push(format!("VolumeAttachment {}: {e}", va_name(va)));
                continue;
            }
        };
        let node = match NodeId::parse(&va.spec.node_name) {
            Ok(n) => n,
            Err(e) => {
                out.skipped
                    .push(format!("VolumeAttachment {}: {e}", va_name(va)));
                continue;
            }
        };
        let modes = spec.access_modes.clone().unwrap_or_default();
        let block = spec.volume_mode.as_deref() == Some("Block");
        let sharing = if block && modes.iter().any(|m| m == "ReadWriteMany") {
            Sharing::Migratable
        } else {
            Sharing::SingleNode
        };
        let read_only = csi.read_only.unwrap_or(false) || modes.iter().any(|m| m == "ReadOnlyMany");
        let timeout = csi
            .volume_attributes
            .as_ref()
            .and_then(|a| a.get(MIGRATION_TIMEOUT))
            .and_then(|v| parse_migration_timeout(v).ok())
            .unwrap_or(default_timeout_secs);
        let attached_at = va
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or_else(unix_now);
        let rec = volumes
            .entry(volume.to_string())
            .or_insert_with(|| VolumeRecord {
                sharing,
                migration_timeout_secs: timeout,
                nodes: Vec::new(),
            });
        if !rec.nodes.iter().any(|a| a.node == node.as_str()) {
            rec.nodes.push(NodeAttachment {
                node: node.to_string(),
                read_only,
                attached_at,
            });
        }
    }
    for (volume, rec) in &mut volumes {
        rec.nodes
            .sort_by(|a, b| (a.attached_at, &a.node).cmp(&(b.attached_at, &b.node)));
        let limit = match rec.sharing {
            Sharing::SingleNode => 1,
            Sharing::Migratable => 2,
        };
        if rec.nodes.len() > limit {
            out.skipped.push(format!(
                "volume {volume} is attached to {} nodes ({}); all are kept, so no further node can attach it until they detach",
                rec.nodes.len(),
                rec.nodes
                    .iter()
                    .map(|a| a.node.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    out.table.volumes = volumes;
    out
}

/// The (volume id, node) pairs that have a VolumeAttachment of this driver, attached or not.
pub fn existing_pairs(
    driver: &str,
    vas: &[VolumeAttachment],
    pvs: &[PersistentVolume],
) -> HashSet<(String, String)> {
    let by_name: HashMap<String, &PersistentVolume> = pvs
        .iter()
        .filter_map(|pv| pv.metadata.name.clone().map(|n| (n, pv)))
        .collect();
    vas.iter()
        .filter(|va| va.spec.attacher == driver)
        .filter_map(|va| {
            let csi = pv_spec(va, &by_name)?.csi.as_ref()?;
            Some((csi.volume_handle.clone(), va.spec.node_name.clone()))
        })
        .collect()
}

/// Forgets attachments that have no VolumeAttachment any more and are older than the grace.
pub fn forget_vanished(table: &mut Table, existing: &HashSet<(String, String)>, now: i64) {
    for (volume, rec) in table.volumes.iter_mut() {
        rec.nodes.retain(|a| {
            existing.contains(&(volume.clone(), a.node.clone()))
                || now - a.attached_at < RESYNC_GRACE_SECS
        });
    }
    table.volumes.retain(|_, rec| !rec.nodes.is_empty());
}

async fn list_all<K>(api: &Api<K>) -> Result<Vec<K>, StoreError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| StoreError::Kubernetes(e.to_string()))?;
        items.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(items),
        }
    }
}

async fn list_objects(
    client: &kube::Client,
) -> Result<(Vec<VolumeAttachment>, Vec<PersistentVolume>), StoreError> {
    let vas = list_all(&Api::<VolumeAttachment>::all(client.clone())).await?;
    let pvs = list_all(&Api::<PersistentVolume>::all(client.clone())).await?;
    Ok((vas, pvs))
}

/// Rebuilds the table from the cluster (at start-up, before serving).
pub async fn rebuild(
    client: &kube::Client,
    driver: &str,
    default_timeout_secs: u32,
) -> Result<Rebuilt, StoreError> {
    let (vas, pvs) = list_objects(client).await?;
    Ok(table_from_objects(driver, &vas, &pvs, default_timeout_secs))
}

/// Every `interval`, forgets attachments whose VolumeAttachment was removed by hand.
pub async fn resync_loop(
    client: kube::Client,
    driver: String,
    attachments: Arc<Attachments>,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        match list_objects(&client).await {
            Ok((vas, pvs)) => {
                let existing = existing_pairs(&driver, &vas, &pvs);
                let now = unix_now();
                let before = attachments.attached_volumes();
                if let Err(e) = attachments
                    .update(|t| forget_vanished(t, &existing, now))
                    .await
                {
                    tracing::warn!(error = %e, "attachment resync could not apply its result");
                }
                let after = attachments.attached_volumes();
                if after != before {
                    tracing::info!(
                        before,
                        after,
                        "attachment resync forgot attachments whose VolumeAttachment was removed"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "attachment resync failed; will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use k8s_openapi::api::core::v1::CSIPersistentVolumeSource;
    use k8s_openapi::api::storage::v1::{
        VolumeAttachmentSource, VolumeAttachmentSpec, VolumeAttachmentStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    const DRIVER: &str = "rds.csi.srvlab.io";

    fn pv(
        name: &str,
        handle: &str,
        modes: &[&str],
        block: bool,
        timeout: Option<&str>,
    ) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                access_modes: Some(modes.iter().map(|m| m.to_string()).collect()),
                volume_mode: Some(if block { "Block" } else { "Filesystem" }.into()),
                csi: Some(CSIPersistentVolumeSource {
                    driver: DRIVER.into(),
                    volume_handle: handle.into(),
                    volume_attributes: timeout.map(|t| {
                        [("migrationTimeoutSeconds".to_string(), t.to_string())]
                            .into_iter()
                            .collect()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn va(
        name: &str,
        attacher: &str,
        pv: &str,
        node: &str,
        attached: bool,
        created: i64,
    ) -> VolumeAttachment {
        VolumeAttachment {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(
                    k8s_openapi::jiff::Timestamp::from_second(created).unwrap(),
                )),
                ..Default::default()
            },
            spec: VolumeAttachmentSpec {
                attacher: attacher.into(),
                node_name: node.into(),
                source: VolumeAttachmentSource {
                    persistent_volume_name: Some(pv.into()),
                    inline_volume_spec: None,
                },
            },
            status: Some(VolumeAttachmentStatus {
                attached,
                ..Default::default()
            }),
        }
    }

    const V1: &str = "pvc-00000001-2222-3333-4444-555555555555";
    const V2: &str = "pvc-00000002-2222-3333-4444-555555555555";
    const V3: &str = "pvc-00000003-2222-3333-4444-555555555555";

    #[test]
    fn attached_volume_attachments_of_this_driver_become_the_table() {
        let pvs = vec![
            pv(V1, V1, &["ReadWriteOnce"], false, None),
            pv(V2, V2, &["ReadWriteMany"], true, Some("120")),
            pv(V3, V3, &["ReadWriteOnce"], false, None),
            pv(
                "static-pv",
                "vol-of-another-driver",
                &["ReadWriteOnce"],
                false,
                None,
            ),
        ];
        let vas = vec![
            va("a", DRIVER, V1, "node-a", true, 100),
            // A live migration: source attached first.
            va("b", DRIVER, V2, "node-b", true, 300),
            va("c", DRIVER, V2, "node-a", true, 200),
            // Not attached yet (publish in progress): not counted.
            va("d", DRIVER, V3, "node-c", false, 400),
            // Another driver's attachment.
            va("e", "ebs.csi.aws.com", V3, "node-c", true, 400),
            // A PV that is gone.
            va("f", DRIVER, "deleted-pv", "node-c", true, 400),
        ];
        let r = table_from_objects(DRIVER, &vas, &pvs, 300);
        assert_eq!(r.table.attached_volumes(), 2);
        assert_eq!(r.table.nodes(V1), ["node-a"]);
        assert_eq!(r.table.nodes(V2), ["node-a", "node-b"], "oldest first");
        let rec = &r.table.volumes[V2];
        assert_eq!(rec.sharing, Sharing::Migratable);
        assert_eq!(rec.migration_timeout_secs, 120);
        assert_eq!(rec.migration(400).unwrap().deadline, 420);
        assert_eq!(r.table.volumes[V1].sharing, Sharing::SingleNode);
        assert_eq!(r.skipped.len(), 1, "{:?}", r.skipped);
    }

    #[test]
    fn invalid_handles_and_nodes_are_skipped_with_a_reason() {
        let pvs = vec![pv(
            "odd",
            "not-a-volume-id",
            &["ReadWriteOnce"],
            false,
            None,
        )];
        let vas = vec![va("a", DRIVER, "odd", "node-a", true, 1)];
        let r = table_from_objects(DRIVER, &vas, &pvs, 300);
        assert!(r.table.volumes.is_empty());
        assert!(r.skipped[0].contains("not a volume id"));
    }

    #[test]
    fn resync_forgets_only_vanished_and_old_attachments() {
        let pvs = vec![
            pv(V1, V1, &["ReadWriteOnce"], false, None),
            pv(V2, V2, &["ReadWriteOnce"], false, None),
        ];
        let vas = vec![va("a", DRIVER, V1, "node-a", true, 100)];
        let mut t = table_from_objects(DRIVER, &vas, &pvs, 300).table;
        // V2 was just published (its VolumeAttachment exists but is not attached yet).
        t.volumes.insert(
            V2.into(),
            VolumeRecord {
                sharing: Sharing::SingleNode,
                migration_timeout_secs: 300,
                nodes: vec![NodeAttachment {
                    node: "node-b".into(),
                    read_only: false,
                    attached_at: 1000,
                }],
            },
        );
        // V1's VolumeAttachment was force-deleted; V2's does not exist yet either.
        let existing = existing_pairs(DRIVER, &[], &pvs);
        forget_vanished(&mut t, &existing, 1000 + RESYNC_GRACE_SECS - 1);
        assert_eq!(t.nodes(V1), Vec::<String>::new());
        assert_eq!(t.nodes(V2), ["node-b"], "within the grace period");
        forget_vanished(&mut t, &existing, 1000 + RESYNC_GRACE_SECS);
        assert!(t.volumes.is_empty());
        // An existing object keeps its attachment however old.
        let mut t = table_from_objects(DRIVER, &vas, &pvs, 300).table;
        forget_vanished(&mut t, &existing_pairs(DRIVER, &vas, &pvs), 1_000_000);
        assert_eq!(t.nodes(V1), ["node-a"]);
    }
}
