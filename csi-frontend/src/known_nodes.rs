//! Which node ids ControllerPublishVolume may attach a volume to.
//!
//! CSI, ControllerPublishVolume errors: "Node does not exist — 5 NOT_FOUND — Indicates that a
//! node corresponding to the specified `node_id` does not exist." A publish to a node that is
//! not there would otherwise be recorded as an attachment that no node will ever stage, and
//! would hold a single-node volume away from the node that really needs it.
//!
//! In a cluster the answer comes from the CSINode objects: kubelet's node-driver-registrar
//! records every node where this driver's node plugin registered, with the node id the plugin
//! reported (read-only `get`/`list` on `csinodes`). Outside a cluster the operator lists the
//! nodes (`--known-nodes`); with no list every node id is accepted, and the controller says so
//! once at start-up.

use std::collections::BTreeSet;

use k8s_openapi::api::storage::v1::CSINode;
use kube::api::{Api, ListParams};

use crate::ids::NodeId;

/// Why a node id was not accepted, or could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum NodeLookupError {
    #[error(
        "node {node} does not exist: {where_looked}; check the node id, and that the rds-csi node plugin runs on that node"
    )]
    Unknown { node: String, where_looked: String },
    #[error(
        "cannot tell whether node {node} exists: the Kubernetes API answered {reason}; the call is retried"
    )]
    Api { node: String, reason: String },
}

/// Where the known nodes come from.
#[derive(Clone)]
pub enum KnownNodes {
    /// No source: every node id is accepted.
    Unchecked,
    /// A fixed list (outside a cluster).
    Listed(BTreeSet<String>),
    /// The CSINode objects of a cluster.
    Kubernetes {
        client: kube::Client,
        driver: String,
    },
}

impl std::fmt::Debug for KnownNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KnownNodes::Unchecked => f.write_str("Unchecked"),
            KnownNodes::Listed(nodes) => f.debug_tuple("Listed").field(nodes).finish(),
            KnownNodes::Kubernetes { driver, .. } => f
                .debug_struct("Kubernetes")
                .field("driver", driver)
                .finish(),
        }
    }
}

impl KnownNodes {
    /// The source for a `--known-nodes` value: a comma-separated list, empty for none.
    pub fn from_list(raw: &str) -> KnownNodes {
        let nodes: BTreeSet<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        if nodes.is_empty() {
            KnownNodes::Unchecked
        } else {
            KnownNodes::Listed(nodes)
        }
    }

    /// What this source is, for the start-up log line.
    pub fn describe(&self) -> String {
        match self {
            KnownNodes::Unchecked => {
                "any node id is accepted (no --known-nodes list and no Kubernetes API)".into()
            }
            KnownNodes::Listed(nodes) => format!(
                "--known-nodes: {}",
                nodes.iter().cloned().collect::<Vec<_>>().join(",")
            ),
            KnownNodes::Kubernetes { driver, .. } => {
                format!("CSINode objects that list driver {driver}")
            }
        }
    }

    /// Ok when `node` may be published to.
    pub async fn check(&self, node: &NodeId) -> Result<(), NodeLookupError> {
        match self {
            KnownNodes::Unchecked => Ok(()),
            KnownNodes::Listed(nodes) => {
                if nodes.contains(node.as_str()) {
                    Ok(())
                } else {
                    Err(NodeLookupError::Unknown {
                        node: node.to_string(),
                        where_looked: "it is not in this controller's --known-nodes".into(),
                    })
                }
            }
            KnownNodes::Kubernetes { client, driver } => {
                csinode_lists(client, driver, node.as_str()).await
            }
        }
    }
}

/// Whether `csinode` carries `driver` registered with node id `node`.
pub fn registers(csinode: &CSINode, driver: &str, node: &str) -> bool {
    csinode
        .spec
        .drivers
        .iter()
        .any(|d| d.name == driver && d.node_id == node)
}

/// Looks the node up: first the CSINode named like the node id (the usual case: the node id
/// is the node's name), then every CSINode (a node id that differs from the node name).
async fn csinode_lists(
    client: &kube::Client,
    driver: &str,
    node: &str,
) -> Result<(), NodeLookupError> {
    let api: Api<CSINode> = Api::all(client.clone());
    let api_error = |e: kube::Error| NodeLookupError::Api {
        node: node.to_string(),
        reason: e.to_string(),
    };
    if let Some(named) = api.get_opt(node).await.map_err(api_error)?
        && registers(&named, driver, node)
    {
        return Ok(());
    }
    let all = api.list(&ListParams::default()).await.map_err(api_error)?;
    if all.items.iter().any(|c| registers(c, driver, node)) {
        return Ok(());
    }
    Err(NodeLookupError::Unknown {
        node: node.to_string(),
        where_looked: format!("no CSINode object lists it for driver {driver}"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use k8s_openapi::api::storage::v1::{CSINodeDriver, CSINodeSpec};

    fn node(raw: &str) -> NodeId {
        NodeId::parse(raw).unwrap()
    }

    #[tokio::test]
    async fn a_list_accepts_its_nodes_and_names_the_others() {
        let known = KnownNodes::from_list(" node-a, node-b ,,");
        assert!(known.check(&node("node-a")).await.is_ok());
        assert!(known.check(&node("node-b")).await.is_ok());
        let e = known.check(&node("node-c")).await.unwrap_err();
        assert!(matches!(e, NodeLookupError::Unknown { .. }));
        let text = e.to_string();
        assert!(
            text.contains("node-c") && text.contains("--known-nodes"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_empty_list_checks_nothing() {
        let known = KnownNodes::from_list(" , ");
        assert!(matches!(known, KnownNodes::Unchecked));
        assert!(known.check(&node("anything")).await.is_ok());
    }

    #[test]
    fn a_csinode_registers_a_node_only_for_the_same_driver_and_node_id() {
        let csinode = CSINode {
            spec: CSINodeSpec {
                drivers: vec![
                    CSINodeDriver {
                        name: "other.csi.example".into(),
                        node_id: "n1".into(),
                        ..Default::default()
                    },
                    CSINodeDriver {
                        name: "rds.csi.srvlab.io".into(),
                        node_id: "worker-1".into(),
                        ..Default::default()
                    },
                ],
            },
            ..Default::default()
        };
        assert!(registers(&csinode, "rds.csi.srvlab.io", "worker-1"));
        assert!(!registers(&csinode, "rds.csi.srvlab.io", "n1"));
        assert!(!registers(&csinode, "other.csi.example", "worker-1"));
    }
}
