//! Which volume is attached to which node, and the rules ControllerPublish enforces.
//!
//! Rules:
//! - a volume published with a single-node mode is attached to at most one node; publishing
//!   it again to the same node is idempotent, to another node is `FAILED_PRECONDITION`
//!   naming the node that holds it;
//! - a block volume published MULTI_NODE_MULTI_WRITER may be attached to a second node: that
//!   is a KubeVirt live migration, and it has a window of `migrationTimeoutSeconds` (from
//!   the volume context) starting when the second node attached. A third node is refused.
//! - when the window expires with both nodes still attached, the migration is considered
//!   stuck and **the newer node wins**: it keeps its attachment and may re-publish, the
//!   older node may no longer re-publish (`FAILED_PRECONDITION`), ControllerGetVolume and
//!   ListVolumes report the volume as abnormal, and once the older node unpublishes the newer
//!   one is the only owner. Nothing is detached behind the CO's back: both attachments are
//!   real NVMe connections until their ControllerUnpublish.
//! - unpublishing a node the volume is not attached to succeeds; unpublishing with no node
//!   detaches the volume from every node.
//!
//! Every change is check-and-set under one writer lock, and is made durable (see
//! [`Store`]) before it becomes visible, so a publish that returned OK survives a restart.
//! Readers (the metrics collector, ListVolumes) take a short read lock and never wait on I/O.

pub mod collector;
pub mod file_store;
pub mod kubernetes;

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, VolumeId};

pub use file_store::{FileStore, StoreError};

/// Whether a volume may be shared by two nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sharing {
    /// Any single-node access mode: one node at a time.
    SingleNode,
    /// Block MULTI_NODE_MULTI_WRITER: a second node for a live migration.
    Migratable,
}

/// One node's attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAttachment {
    pub node: String,
    pub read_only: bool,
    /// Unix seconds when the node was attached.
    pub attached_at: i64,
}

/// The attachments of one volume: oldest first, one or two nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub sharing: Sharing,
    pub migration_timeout_secs: u32,
    pub nodes: Vec<NodeAttachment>,
}

/// A live migration: the volume attached to its source and its target node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub source: String,
    pub target: String,
    pub started_at: i64,
    pub deadline: i64,
    pub expired: bool,
}

impl VolumeRecord {
    /// The migration under way, when two nodes are attached.
    pub fn migration(&self, now: i64) -> Option<Migration> {
        let [source, target] = self.nodes.as_slice() else {
            return None;
        };
        let deadline = target
            .attached_at
            .saturating_add(i64::from(self.migration_timeout_secs));
        Some(Migration {
            source: source.node.clone(),
            target: target.node.clone(),
            started_at: target.attached_at,
            deadline,
            expired: now >= deadline,
        })
    }

    /// The attached nodes, oldest first.
    pub fn node_ids(&self) -> Vec<String> {
        self.nodes.iter().map(|a| a.node.clone()).collect()
    }

    /// The attached nodes and why the attachments are abnormal, if they are.
    pub fn status(&self, now: i64) -> (Vec<String>, Option<String>) {
        (self.node_ids(), self.abnormal(now))
    }

    /// Why these attachments are abnormal, if they are: a migration past its window.
    pub fn abnormal(&self, now: i64) -> Option<String> {
        let m = self.migration(now)?;
        m.expired.then(|| {
            format!(
                "the live migration from node {} to node {} did not finish within its window (started at unix time {}, deadline {}); both nodes are still attached and {} should be unpublished",
                m.source, m.target, m.started_at, m.deadline, m.source
            )
        })
    }
}

/// All attachments this controller knows about, by volume id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub volumes: BTreeMap<String, VolumeRecord>,
}

/// What ControllerPublish asks for.
#[derive(Debug, Clone, Copy)]
pub struct PublishRequest<'a> {
    pub volume: &'a VolumeId,
    pub node: &'a NodeId,
    pub sharing: Sharing,
    pub read_only: bool,
    pub migration_timeout_secs: u32,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The volume was not attached anywhere and now is attached to the node.
    Attached,
    /// It already was attached to the node, compatibly: nothing changed.
    AlreadyAttached,
    /// A second node was attached: a live migration from `source` started.
    MigrationStarted { source: String },
}

/// What an unpublish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnpublishOutcome {
    NotAttached,
    Detached { remaining: Vec<String> },
}

/// Why a publish was refused, or could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(
        "volume {volume} is attached to node {attached_to}; a single-node volume is attached to one node at a time, so node {requested} has to wait until it is unpublished from {attached_to}"
    )]
    OtherNode {
        volume: String,
        attached_to: String,
        requested: String,
    },
    #[error("volume {volume} is already attached to node {node} {reason}")]
    Incompatible {
        volume: String,
        node: String,
        reason: String,
    },
    #[error(
        "volume {volume} is attached to nodes {source_node} and {target_node} for a live migration; a third node ({requested}) is refused until one of them is unpublished"
    )]
    MigrationFull {
        volume: String,
        source_node: String,
        target_node: String,
        requested: String,
    },
    #[error(
        "the live migration of volume {volume} from node {source_node} to node {target_node} exceeded its {timeout_secs}s window (migrationTimeoutSeconds); {target_node} now owns the volume and {source_node} may not publish it again: unpublish it from {source_node}"
    )]
    MigrationExpired {
        volume: String,
        source_node: String,
        target_node: String,
        timeout_secs: u32,
    },
    #[error("cannot record the attachment change of volume {volume}: {source}")]
    Store { volume: String, source: StoreError },
}

impl Table {
    /// Applies a publish to the table.
    ///
    /// CSI spec, ControllerPublishVolume: "If the volume corresponding to the `volume_id` has
    /// already been published at the node corresponding to the `node_id`, and is compatible
    /// with the specified `volume_capability` and `readonly` flag, the Plugin MUST reply
    /// `0 OK`." Errors: "Volume published but is incompatible | 6 ALREADY_EXISTS" and "Volume
    /// published to another node | 9 FAILED_PRECONDITION | ... If this error code is
    /// returned, the Plugin SHOULD specify the `node_id` of the node at which the volume is
    /// published as part of the gRPC `status.message`."
    pub fn publish(
        &mut self,
        req: PublishRequest<'_>,
        now: i64,
    ) -> Result<PublishOutcome, AttachError> {
        let volume = req.volume.as_str();
        let node = req.node.as_str();
        let new_attachment = NodeAttachment {
            node: node.to_string(),
            read_only: req.read_only,
            attached_at: now,
        };
        let Some(rec) = self.volumes.get_mut(volume).filter(|r| !r.nodes.is_empty()) else {
            self.volumes.insert(
                volume.to_string(),
                VolumeRecord {
                    sharing: req.sharing,
                    migration_timeout_secs: req.migration_timeout_secs,
                    nodes: vec![new_attachment],
                },
            );
            return Ok(PublishOutcome::Attached);
        };
        if let Some(existing) = rec.nodes.iter().find(|a| a.node == node) {
            if existing.read_only != req.read_only {
                return Err(AttachError::Incompatible {
                    volume: volume.to_string(),
                    node: node.to_string(),
                    reason: format!(
                        "{}; this request asks for {}",
                        if existing.read_only {
                            "read-only"
                        } else {
                            "read-write"
                        },
                        if req.read_only {
                            "read-only"
                        } else {
                            "read-write"
                        }
                    ),
                });
            }
            if rec.sharing != req.sharing {
                return Err(AttachError::Incompatible {
                    volume: volume.to_string(),
                    node: node.to_string(),
                    reason: "with a different access mode".to_string(),
                });
            }
            if let Some(m) = rec.migration(now)
                && m.expired
                && m.source == node
            {
                return Err(AttachError::MigrationExpired {
                    volume: volume.to_string(),
                    source_node: m.source,
                    target_node: m.target,
                    timeout_secs: rec.migration_timeout_secs,
                });
            }
            return Ok(PublishOutcome::AlreadyAttached);
        }
        if rec.sharing == Sharing::SingleNode || req.sharing == Sharing::SingleNode {
            return Err(AttachError::OtherNode {
                volume: volume.to_string(),
                attached_to: rec
                    .nodes
                    .iter()
                    .map(|a| a.node.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                requested: node.to_string(),
            });
        }
        if let [source, target, ..] = rec.nodes.as_slice() {
            return Err(AttachError::MigrationFull {
                volume: volume.to_string(),
                source_node: source.node.clone(),
                target_node: target.node.clone(),
                requested: node.to_string(),
            });
        }
        let source = rec
            .nodes
            .first()
            .map(|a| a.node.clone())
            .unwrap_or_default();
        rec.migration_timeout_secs = req.migration_timeout_secs;
        rec.nodes.push(new_attachment);
        Ok(PublishOutcome::MigrationStarted { source })
    }

    /// Applies an unpublish to the table.
    ///
    /// CSI spec, ControllerUnpublishVolume: "If the volume corresponding to the `volume_id`
    /// is not attached to the node corresponding to the `node_id`, the Plugin MUST reply
    /// `0 OK`." and, for node_id: "If the value is unset, the SP MUST unpublish the volume
    /// from all nodes it is published to."
    pub fn unpublish(&mut self, volume: &VolumeId, node: Option<&NodeId>) -> UnpublishOutcome {
        let Some(rec) = self.volumes.get_mut(volume.as_str()) else {
            return UnpublishOutcome::NotAttached;
        };
        let before = rec.nodes.len();
        match node {
            Some(n) => rec.nodes.retain(|a| a.node != n.as_str()),
            None => rec.nodes.clear(),
        }
        if rec.nodes.len() == before {
            return UnpublishOutcome::NotAttached;
        }
        let remaining: Vec<String> = rec.nodes.iter().map(|a| a.node.clone()).collect();
        if remaining.is_empty() {
            self.volumes.remove(volume.as_str());
        }
        UnpublishOutcome::Detached { remaining }
    }

    /// The nodes `volume` is attached to, oldest first.
    pub fn nodes(&self, volume: &str) -> Vec<String> {
        self.volumes
            .get(volume)
            .map(VolumeRecord::node_ids)
            .unwrap_or_default()
    }

    /// Number of volumes attached to at least one node (a migrating volume counts once).
    pub fn attached_volumes(&self) -> usize {
        self.volumes
            .values()
            .filter(|r| !r.nodes.is_empty())
            .count()
    }

    /// Why the attachments of `volume` are abnormal, if they are.
    pub fn abnormal(&self, volume: &str, now: i64) -> Option<String> {
        self.volumes.get(volume)?.abnormal(now)
    }

    /// The nodes of `volume` and why its attachments are abnormal, from one look-up.
    pub fn status(&self, volume: &str, now: i64) -> (Vec<String>, Option<String>) {
        self.volumes
            .get(volume)
            .map(|r| r.status(now))
            .unwrap_or_default()
    }

    /// The record of each of `volumes` (`None` when it has no attachments), in the order
    /// asked. Asked in ascending order, as a listing asks, the table is walked once beside
    /// them (a comparison or two per volume instead of a tree search: about a tenth of the
    /// frontend's CPU in a 1,000-volume ListVolumes went to those searches); a volume out of
    /// that order is searched for.
    pub fn records<'t, 'v>(
        &'t self,
        volumes: impl IntoIterator<Item = &'v str>,
    ) -> impl Iterator<Item = Option<&'t VolumeRecord>> {
        let mut walk = self.volumes.iter().peekable();
        let mut highest: Option<&str> = None;
        volumes.into_iter().map(move |volume| {
            if highest.is_some_and(|h| volume < h) {
                return self.volumes.get(volume);
            }
            highest = Some(volume);
            while walk.next_if(|(k, _)| k.as_str() < volume).is_some() {}
            match walk.peek() {
                Some((k, r)) if k.as_str() == volume => Some(*r),
                _ => None,
            }
        })
    }
}

/// Where the table is made durable.
pub trait Store: Send + Sync + 'static {
    /// Makes `table` durable; called with the writer lock held, before the change is visible.
    fn save(&self, table: &Table) -> Result<(), StoreError>;
    /// For logs: where the state lives.
    fn describe(&self) -> String;
}

/// For the Kubernetes source: the VolumeAttachment objects the external-attacher keeps are
/// the durable record, so there is nothing to write.
pub struct KubernetesRecord;

impl Store for KubernetesRecord {
    fn save(&self, _: &Table) -> Result<(), StoreError> {
        Ok(())
    }
    fn describe(&self) -> String {
        "the VolumeAttachment objects of this driver".to_string()
    }
}

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The attachment state of this controller, shared by the controller service and the
/// metrics collector.
pub struct Attachments {
    table: RwLock<Table>,
    writer: tokio::sync::Mutex<()>,
    store: Arc<dyn Store>,
    clock: Clock,
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

impl Attachments {
    /// State loaded at start (it must be loaded before the controller serves).
    pub fn new(table: Table, store: Arc<dyn Store>) -> Self {
        Self::with_clock(table, store, Arc::new(unix_now))
    }

    /// Same, with a clock of unix seconds (tests move time).
    pub fn with_clock(table: Table, store: Arc<dyn Store>, clock: Clock) -> Self {
        Attachments {
            table: RwLock::new(table),
            writer: tokio::sync::Mutex::new(()),
            store,
            clock,
        }
    }

    /// A copy of the current table.
    pub fn snapshot(&self) -> Table {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn read<T>(&self, f: impl FnOnce(&Table) -> T) -> T {
        f(&self.table.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn nodes(&self, volume: &VolumeId) -> Vec<String> {
        self.read(|t| t.nodes(volume.as_str()))
    }

    /// Runs `f` over the table under one hold of its lock, with one look at the clock (a
    /// ListVolumes answer of 1,000 volumes took the lock 2,000 times when it asked volume by
    /// volume, and cloned every node id it then wrote once).
    pub fn with_table<R>(&self, f: impl FnOnce(&Table, i64) -> R) -> R {
        let now = (self.clock)();
        self.read(|t| f(t, now))
    }

    pub fn attached_volumes(&self) -> usize {
        self.read(Table::attached_volumes)
    }

    pub fn abnormal(&self, volume: &VolumeId) -> Option<String> {
        let now = (self.clock)();
        self.read(|t| t.abnormal(volume.as_str(), now))
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Publishes atomically: check, record durably, then make visible.
    pub async fn publish(&self, req: PublishRequest<'_>) -> Result<PublishOutcome, AttachError> {
        let _writer = self.writer.lock().await;
        let mut next = self.snapshot();
        let outcome = next.publish(req, (self.clock)())?;
        if outcome != PublishOutcome::AlreadyAttached {
            self.commit(req.volume, next).await?;
        }
        Ok(outcome)
    }

    /// Unpublishes atomically.
    pub async fn unpublish(
        &self,
        volume: &VolumeId,
        node: Option<&NodeId>,
    ) -> Result<UnpublishOutcome, AttachError> {
        let _writer = self.writer.lock().await;
        let mut next = self.snapshot();
        let outcome = next.unpublish(volume, node);
        if outcome != UnpublishOutcome::NotAttached {
            self.commit(volume, next).await?;
        }
        Ok(outcome)
    }

    /// Replaces the table with `f(table)` under the writer lock (reconciliation).
    pub async fn update(&self, f: impl FnOnce(&mut Table)) -> Result<(), StoreError> {
        let _writer = self.writer.lock().await;
        let mut next = self.snapshot();
        f(&mut next);
        if next == self.snapshot() {
            return Ok(());
        }
        self.save(next.clone()).await?;
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }

    async fn commit(&self, volume: &VolumeId, next: Table) -> Result<(), AttachError> {
        self.save(next.clone())
            .await
            .map_err(|source| AttachError::Store {
                volume: volume.to_string(),
                source,
            })?;
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }

    async fn save(&self, table: Table) -> Result<(), StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.save(&table))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    fn vol(n: u8) -> VolumeId {
        VolumeId::parse(
            "volume_id",
            &format!("pvc-{n:08}-2222-3333-4444-555555555555"),
        )
        .unwrap()
    }

    fn node(n: &str) -> NodeId {
        NodeId::parse(n).unwrap()
    }

    fn req<'a>(v: &'a VolumeId, n: &'a NodeId, sharing: Sharing) -> PublishRequest<'a> {
        PublishRequest {
            volume: v,
            node: n,
            sharing,
            read_only: false,
            migration_timeout_secs: 300,
        }
    }

    #[test]
    fn single_node_volume_conflicts_with_another_node() {
        let mut t = Table::default();
        let (v, a, b) = (vol(1), node("node-a"), node("node-b"));
        assert_eq!(
            t.publish(req(&v, &a, Sharing::SingleNode), 100).unwrap(),
            PublishOutcome::Attached
        );
        let err = t
            .publish(req(&v, &b, Sharing::SingleNode), 101)
            .unwrap_err();
        match &err {
            AttachError::OtherNode { attached_to, .. } => assert_eq!(attached_to, "node-a"),
            other => panic!("{other}"),
        }
        // The message names the node that holds the volume, as the spec asks.
        assert!(err.to_string().contains("node-a"));
        assert_eq!(t.nodes(v.as_str()), ["node-a"]);
        // A migratable request does not get around a single-node attachment either.
        assert!(matches!(
            t.publish(req(&v, &b, Sharing::Migratable), 102),
            Err(AttachError::OtherNode { .. })
        ));
    }

    #[test]
    fn republishing_to_the_same_node_is_idempotent_unless_incompatible() {
        let mut t = Table::default();
        let (v, a) = (vol(1), node("node-a"));
        t.publish(req(&v, &a, Sharing::SingleNode), 100).unwrap();
        let before = t.clone();
        assert_eq!(
            t.publish(req(&v, &a, Sharing::SingleNode), 200).unwrap(),
            PublishOutcome::AlreadyAttached
        );
        assert_eq!(t, before, "an idempotent publish changes nothing");
        let mut ro = req(&v, &a, Sharing::SingleNode);
        ro.read_only = true;
        assert!(matches!(
            t.publish(ro, 201),
            Err(AttachError::Incompatible { .. })
        ));
        assert!(matches!(
            t.publish(req(&v, &a, Sharing::Migratable), 201),
            Err(AttachError::Incompatible { .. })
        ));
    }

    #[test]
    fn a_migration_takes_a_second_node_and_refuses_a_third() {
        let mut t = Table::default();
        let (v, a, b, c) = (vol(1), node("node-a"), node("node-b"), node("node-c"));
        t.publish(req(&v, &a, Sharing::Migratable), 100).unwrap();
        assert_eq!(
            t.publish(req(&v, &b, Sharing::Migratable), 110).unwrap(),
            PublishOutcome::MigrationStarted {
                source: "node-a".into()
            }
        );
        assert_eq!(t.nodes(v.as_str()), ["node-a", "node-b"]);
        assert_eq!(t.attached_volumes(), 1, "a migrating volume counts once");
        let err = t
            .publish(req(&v, &c, Sharing::Migratable), 120)
            .unwrap_err();
        assert!(matches!(err, AttachError::MigrationFull { .. }), "{err}");
        // Within the window both nodes re-publish idempotently and nothing is abnormal.
        for n in [&a, &b] {
            assert_eq!(
                t.publish(req(&v, n, Sharing::Migratable), 300).unwrap(),
                PublishOutcome::AlreadyAttached
            );
        }
        assert_eq!(t.abnormal(v.as_str(), 409), None);
        let m = t.volumes[v.as_str()].migration(409).unwrap();
        assert_eq!((m.started_at, m.deadline, m.expired), (110, 410, false));
    }

    #[test]
    fn after_the_window_the_newer_node_wins() {
        let mut t = Table::default();
        let (v, a, b) = (vol(1), node("node-a"), node("node-b"));
        t.publish(req(&v, &a, Sharing::Migratable), 100).unwrap();
        t.publish(req(&v, &b, Sharing::Migratable), 110).unwrap();
        // Deadline is 110 + 300.
        let err = t
            .publish(req(&v, &a, Sharing::Migratable), 410)
            .unwrap_err();
        assert!(matches!(err, AttachError::MigrationExpired { .. }), "{err}");
        assert_eq!(
            t.publish(req(&v, &b, Sharing::Migratable), 410).unwrap(),
            PublishOutcome::AlreadyAttached
        );
        assert!(t.abnormal(v.as_str(), 410).unwrap().contains("node-a"));
        // The older node unpublishes: the newer one is the only owner, the volume is normal.
        assert_eq!(
            t.unpublish(&v, Some(&a)),
            UnpublishOutcome::Detached {
                remaining: vec!["node-b".into()]
            }
        );
        assert_eq!(t.abnormal(v.as_str(), 500), None);
        assert_eq!(t.nodes(v.as_str()), ["node-b"]);
        // A new migration may start from the new owner, with a fresh window.
        assert_eq!(
            t.publish(req(&v, &a, Sharing::Migratable), 600).unwrap(),
            PublishOutcome::MigrationStarted {
                source: "node-b".into()
            }
        );
        assert!(!t.volumes[v.as_str()].migration(899).unwrap().expired);
    }

    #[test]
    fn a_migration_rolled_back_leaves_the_source() {
        let mut t = Table::default();
        let (v, a, b) = (vol(1), node("node-a"), node("node-b"));
        t.publish(req(&v, &a, Sharing::Migratable), 100).unwrap();
        t.publish(req(&v, &b, Sharing::Migratable), 110).unwrap();
        t.unpublish(&v, Some(&b));
        assert_eq!(t.nodes(v.as_str()), ["node-a"]);
        assert_eq!(
            t.publish(req(&v, &a, Sharing::Migratable), 1000).unwrap(),
            PublishOutcome::AlreadyAttached
        );
    }

    #[test]
    fn unpublish_is_idempotent_and_without_node_detaches_all() {
        let mut t = Table::default();
        let (v, a, b) = (vol(1), node("node-a"), node("node-b"));
        assert_eq!(t.unpublish(&v, Some(&a)), UnpublishOutcome::NotAttached);
        t.publish(req(&v, &a, Sharing::Migratable), 100).unwrap();
        t.publish(req(&v, &b, Sharing::Migratable), 100).unwrap();
        assert_eq!(
            t.unpublish(&v, Some(&node("node-z"))),
            UnpublishOutcome::NotAttached
        );
        assert_eq!(
            t.unpublish(&v, None),
            UnpublishOutcome::Detached { remaining: vec![] }
        );
        assert!(t.volumes.is_empty());
        assert_eq!(t.attached_volumes(), 0);
    }

    struct Failing;
    impl Store for Failing {
        fn save(&self, _: &Table) -> Result<(), StoreError> {
            Err(StoreError::Task("disk full".into()))
        }
        fn describe(&self) -> String {
            "failing".into()
        }
    }

    #[tokio::test]
    async fn a_change_that_cannot_be_stored_is_not_applied() {
        let att = Attachments::new(Table::default(), Arc::new(Failing));
        let (v, a) = (vol(1), node("node-a"));
        let err = att
            .publish(req(&v, &a, Sharing::SingleNode))
            .await
            .unwrap_err();
        assert!(matches!(err, AttachError::Store { .. }));
        assert_eq!(att.attached_volumes(), 0);
    }

    #[tokio::test]
    async fn concurrent_publishes_to_two_nodes_let_exactly_one_win() {
        let att = Arc::new(Attachments::new(
            Table::default(),
            Arc::new(KubernetesRecord),
        ));
        let v = vol(1);
        let mut tasks = Vec::new();
        for i in 0..8 {
            let att = att.clone();
            let v = v.clone();
            tasks.push(tokio::spawn(async move {
                let n = node(&format!("node-{i}"));
                att.publish(req(&v, &n, Sharing::SingleNode)).await.is_ok()
            }));
        }
        let mut wins = 0;
        for t in tasks {
            if t.await.unwrap() {
                wins += 1;
            }
        }
        assert_eq!(wins, 1);
        assert_eq!(att.nodes(&v).len(), 1);
    }

    /// An empty table whose clock reads the returned cell (unix seconds), starting at `start`.
    fn at_unix_time(start: i64) -> (Arc<AtomicI64>, Attachments) {
        let now = Arc::new(AtomicI64::new(start));
        let clock_now = now.clone();
        let att = Attachments::with_clock(
            Table::default(),
            Arc::new(KubernetesRecord),
            Arc::new(move || clock_now.load(Ordering::SeqCst)),
        );
        (now, att)
    }

    #[tokio::test]
    async fn the_clock_drives_expiry() {
        let (now, att) = at_unix_time(1000);
        let (v, a, b) = (vol(1), node("node-a"), node("node-b"));
        let mut r = req(&v, &a, Sharing::Migratable);
        r.migration_timeout_secs = 30;
        att.publish(r).await.unwrap();
        r.node = &b;
        att.publish(r).await.unwrap();
        assert_eq!(att.abnormal(&v), None);
        now.store(1030, Ordering::SeqCst);
        assert!(att.abnormal(&v).is_some());
        r.node = &a;
        assert!(matches!(
            att.publish(r).await,
            Err(AttachError::MigrationExpired { .. })
        ));
    }

    /// The statuses a listing reads, through the table walk it uses.
    fn statuses<'v>(
        att: &Attachments,
        ids: impl IntoIterator<Item = &'v VolumeId>,
    ) -> Vec<(Vec<String>, Option<String>)> {
        att.with_table(|t, now| {
            t.records(ids.into_iter().map(VolumeId::as_str))
                .map(|r| r.map(|r| r.status(now)).unwrap_or_default())
                .collect()
        })
    }

    #[tokio::test]
    async fn statuses_answer_each_volume_in_the_order_asked() {
        let (now, att) = at_unix_time(1000);
        let (migrating, single, none) = (vol(1), vol(2), vol(3));
        let (a, b) = (node("node-a"), node("node-b"));
        let mut r = req(&migrating, &a, Sharing::Migratable);
        r.migration_timeout_secs = 30;
        att.publish(r).await.unwrap();
        r.node = &b;
        att.publish(r).await.unwrap();
        att.publish(req(&single, &b, Sharing::Migratable))
            .await
            .unwrap();
        now.store(1030, Ordering::SeqCst);
        let got = statuses(&att, [&none, &single, &migrating]);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (Vec::<String>::new(), None));
        assert_eq!(got[1], (vec!["node-b".to_string()], None));
        assert_eq!(got[2].0, ["node-a", "node-b"]);
        // The same answer as asking one volume at a time.
        assert_eq!(got[2].1, att.abnormal(&migrating));
        assert!(got[2].1.as_deref().is_some_and(|m| m.contains("node-a")));
    }

    #[tokio::test]
    async fn statuses_in_any_order_match_asking_one_at_a_time() {
        let (_, att) = at_unix_time(1000);
        let (a, b) = (node("node-a"), node("node-b"));
        // Attached: every third of 1..=30, alternately on a and b; the rest never were.
        for i in (3..=30).step_by(3) {
            let n = if i % 2 == 0 { &a } else { &b };
            att.publish(req(&vol(i), n, Sharing::SingleNode))
                .await
                .unwrap();
        }
        let one_at_a_time = |ids: &[VolumeId]| -> Vec<_> {
            att.read(|t| ids.iter().map(|v| t.status(v.as_str(), 1000)).collect())
        };
        let ascending: Vec<VolumeId> = (1..=31).map(vol).collect();
        let descending: Vec<VolumeId> = ascending.iter().rev().cloned().collect();
        let shuffled: Vec<VolumeId> = [4, 9, 1, 30, 2, 12, 12, 31, 3, 27, 6]
            .into_iter()
            .map(vol)
            .collect();
        for ids in [
            &ascending,
            &descending,
            &shuffled,
            &ascending[7..9].to_vec(),
        ] {
            let got = statuses(&att, ids.iter());
            assert_eq!(got, one_at_a_time(ids), "asked {ids:?}");
        }
        let attached = statuses(&att, ascending.iter());
        assert_eq!(attached.iter().filter(|(n, _)| !n.is_empty()).count(), 10);
        assert_eq!(attached[5].0, ["node-a"]);
        assert_eq!(attached[8].0, ["node-b"]);
    }
}
