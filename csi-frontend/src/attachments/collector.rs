//! `rds_csi_nvme_connections_active`, computed from the attachment table at scrape time.
//!
//! The Go driver kept this gauge with increments and decrements, so it read 0 with 16
//! volumes attached after a restart. Here it is derived from the authoritative table on every
//! scrape (a short read lock, no I/O): it counts volumes attached to at least one node, a
//! volume attached to two nodes during a live migration counting once, and it is right as
//! soon as the controller serves, because the table is loaded before that.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, Opts};

use super::Attachments;

/// The metric name, the Go driver's.
pub const NAME: &str = "rds_csi_nvme_connections_active";

/// Reads the attachment table when scraped.
pub struct ConnectionsCollector {
    attachments: Arc<Attachments>,
    gauge: IntGauge,
}

impl ConnectionsCollector {
    pub fn new(attachments: Arc<Attachments>) -> Result<Self, prometheus::Error> {
        let gauge = IntGauge::with_opts(Opts::new(
            NAME,
            "Volumes attached to at least one node (NVMe/TCP connections the controller has \
             published); a volume attached to two nodes during a live migration counts once.",
        ))?;
        Ok(ConnectionsCollector { attachments, gauge })
    }
}

impl Collector for ConnectionsCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let count = i64::try_from(self.attachments.attached_volumes()).unwrap_or(i64::MAX);
        self.gauge.set(count);
        self.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::{KubernetesRecord, PublishRequest, Sharing, Table};
    use super::*;
    use crate::ids::{NodeId, VolumeId};
    use prometheus::{Encoder, Registry, TextEncoder};

    fn scrape(r: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&r.gather(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn the_gauge_follows_the_table_at_scrape_time() {
        let att = Arc::new(Attachments::new(
            Table::default(),
            Arc::new(KubernetesRecord),
        ));
        let registry = Registry::new();
        registry
            .register(Box::new(ConnectionsCollector::new(att.clone()).unwrap()))
            .unwrap();
        assert!(scrape(&registry).contains("rds_csi_nvme_connections_active 0"));
        let v = VolumeId::parse("v", "pvc-00000001-2222-3333-4444-555555555555").unwrap();
        let (a, b) = (NodeId::parse("a").unwrap(), NodeId::parse("b").unwrap());
        for n in [&a, &b] {
            att.publish(PublishRequest {
                volume: &v,
                node: n,
                sharing: Sharing::Migratable,
                read_only: false,
                migration_timeout_secs: 300,
            })
            .await
            .unwrap();
        }
        assert!(scrape(&registry).contains("rds_csi_nvme_connections_active 1"));
        att.unpublish(&v, None).await.unwrap();
        assert!(scrape(&registry).contains("rds_csi_nvme_connections_active 0"));
    }
}
