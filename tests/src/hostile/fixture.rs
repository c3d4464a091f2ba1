//! The real volumes the hostile cases aim at, so that the hostile field is the only thing wrong
//! with a request: R1 is created and published but not staged (stage cases), R2 is created,
//! published, staged and published to a pod path (node-publish, unpublish, unstage, stats and
//! expand cases). A case that wrongly succeeded would act on them, and the sweep would see it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use rds_csi_proto::csi::volume_capability::access_mode::Mode;
use rds_csi_proto::csi::{Volume, VolumeCapability};

use crate::csi_client::mount_capability;
use crate::e2e_support::{
    Bed, create, delete, node_publish, node_unpublish, pod_path, publish, stage, staging_path,
    unpublish, unstage,
};
use crate::stack::NODE_ID;

const CALL: Duration = Duration::from_secs(60);
const SIZE: i64 = 64 << 20;

/// The fixture.
#[derive(Debug, Clone)]
pub struct Base {
    pub cap: VolumeCapability,
    /// Published, not staged.
    pub r1: Volume,
    pub ctx1: HashMap<String, String>,
    /// A staging path R1 could use (its directory exists).
    pub s1: PathBuf,
    /// Published, staged at `s2`, published to the pod path `t2`.
    pub r2: Volume,
    pub ctx2: HashMap<String, String>,
    pub s2: PathBuf,
    pub t2: PathBuf,
    /// A second pod path for R2 (its parent exists; nothing is there).
    pub t2b: PathBuf,
    /// A well-formed volume id that names nothing.
    pub unknown: String,
    pub kubelet: PathBuf,
    /// The sweep's state directory (everything it makes lives under it).
    pub dir: PathBuf,
}

fn status(what: &str, s: tonic::Status) -> String {
    format!("{what}: {:?} {}", s.code(), s.message())
}

impl Base {
    /// Makes the two volumes on `bed`.
    pub async fn prepare(bed: &Bed) -> Result<Base, String> {
        let csi = &bed.csi;
        let kubelet = bed.ep.kubelet_dir.clone();
        let cap = mount_capability("ext4", Mode::SingleNodeWriter);
        let path =
            |r: Result<PathBuf, _>| r.map_err(|e: crate::e2e_support::E2eError| e.to_string());
        let s1 = path(staging_path(&kubelet, "sweep-r1"))?;
        let s2 = path(staging_path(&kubelet, "sweep-r2"))?;
        let t2 = path(pod_path(&kubelet, "sweep-r2", false))?;
        let t2b = path(pod_path(&kubelet, "sweep-r2b", false))?;
        let name = || format!("pvc-{}", uuid::Uuid::new_v4());
        let r1 = create(csi, &name(), SIZE, &cap, CALL)
            .await
            .map_err(|s| status("CreateVolume R1", s))?;
        let ctx1 = publish(csi, &r1, NODE_ID, &cap, CALL)
            .await
            .map_err(|s| status("ControllerPublishVolume R1", s))?;
        let r2 = create(csi, &name(), SIZE, &cap, CALL)
            .await
            .map_err(|s| status("CreateVolume R2", s))?;
        let ctx2 = publish(csi, &r2, NODE_ID, &cap, CALL)
            .await
            .map_err(|s| status("ControllerPublishVolume R2", s))?;
        stage(csi, &r2, &ctx2, &s2, &cap, CALL)
            .await
            .map_err(|s| status("NodeStageVolume R2", s))?;
        node_publish(csi, &r2, &ctx2, &s2, &t2, &cap, CALL)
            .await
            .map_err(|s| status("NodePublishVolume R2", s))?;
        Ok(Base {
            cap,
            r1,
            ctx1,
            s1,
            r2,
            ctx2,
            s2,
            t2,
            t2b,
            unknown: name(),
            kubelet,
            dir: bed.dir.clone(),
        })
    }

    /// The mount points the fixture holds (R2's staging and pod paths).
    pub fn mounts(&self) -> Vec<String> {
        vec![self.s2.display().to_string(), self.t2.display().to_string()]
    }

    /// Undoes the fixture; returns what failed.
    pub async fn teardown(&self, bed: &Bed) -> Vec<String> {
        let csi = &bed.csi;
        let mut failed = Vec::new();
        let r1 = self.r1.volume_id.as_str();
        let r2 = self.r2.volume_id.as_str();
        let steps = [
            (
                "NodeUnpublishVolume R2",
                node_unpublish(csi, r2, &self.t2, CALL).await,
            ),
            (
                "NodeUnstageVolume R2",
                unstage(csi, r2, &self.s2, CALL).await,
            ),
            (
                "ControllerUnpublishVolume R2",
                unpublish(csi, r2, NODE_ID, CALL).await,
            ),
            (
                "ControllerUnpublishVolume R1",
                unpublish(csi, r1, NODE_ID, CALL).await,
            ),
            ("DeleteVolume R1", delete(csi, r1, CALL).await),
            ("DeleteVolume R2", delete(csi, r2, CALL).await),
        ];
        for (what, r) in steps {
            if let Err(s) = r {
                failed.push(status(what, s));
            }
        }
        failed
    }
}
