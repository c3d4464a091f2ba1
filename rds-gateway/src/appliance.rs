//! The disk and file primitives volumes and snapshots share: read one disk, list the managed disks,
//! check for a backing file, and remove a disk or a file and prove it is gone by reading back.
//!
//! `/disk remove` leaves the backing `.img` behind and `remove [find ...]` with nothing found is a
//! silent no-op on RouterOS, so removals here always read back what they removed.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::executor::Executor;
use crate::op_error::OpError;
use crate::routeros::command::{DiskList, DiskPrint, DiskRemove, FilePrint, FileRemove};
use crate::routeros::model::Disk;
use crate::routeros::names::{CommentKind, ImagePath, Slot};
use crate::routeros::{RosError, Subject};
use crate::scope::Scope;

/// True for disks this driver made as snapshots.
pub fn is_snapshot(disk: &Disk) -> bool {
    disk.comment
        .as_ref()
        .is_some_and(|c| c.kind() == CommentKind::Snapshot)
}

/// The appliance's disks and files, through the executor.
#[derive(Debug, Clone)]
pub struct Appliance {
    exec: Arc<Executor>,
}

impl Appliance {
    /// Reads through `exec`.
    pub fn new(exec: Arc<Executor>) -> Self {
        Appliance { exec }
    }

    /// The executor underneath.
    pub fn executor(&self) -> &Arc<Executor> {
        &self.exec
    }

    /// Disk `slot`, if it exists.
    pub async fn disk(&self, slot: &Slot) -> Result<Option<Disk>, RosError> {
        let records = self.exec.print(|f| DiskPrint::new(slot).format(f)).await?;
        for record in &records {
            let disk =
                Disk::from_record(record).map_err(|e| e.about(Subject::Slot(slot.clone())))?;
            if &disk.slot == slot {
                return Ok(Some(disk));
            }
        }
        Ok(None)
    }

    /// Every disk under the managed prefixes, by slot. A record that does not decode is logged
    /// and left out, so one odd disk does not hide all the others.
    pub async fn managed_disks(&self, scope: &Scope) -> Result<BTreeMap<Slot, Disk>, RosError> {
        let mut all = BTreeMap::new();
        for prefix in scope.prefixes() {
            let records = self.exec.print(|f| DiskList::new(prefix).format(f)).await?;
            for record in &records {
                match Disk::from_record(record) {
                    Ok(disk) if scope.contains(&disk.slot) => {
                        all.insert(disk.slot.clone(), disk);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("skipping a disk that does not decode: {e}"),
                }
            }
        }
        Ok(all)
    }

    /// True when the file `image` exists.
    pub async fn image_exists(&self, image: &ImagePath) -> Result<bool, RosError> {
        let records = self
            .exec
            .print(|f| FilePrint::image(image).format(f))
            .await?;
        Ok(!records.is_empty())
    }

    /// Removes `image` when it exists, and proves it is gone. Returns whether there was one.
    pub async fn remove_image_if_present(&self, image: &ImagePath) -> Result<bool, OpError> {
        if !self.image_exists(image).await? {
            return Ok(false);
        }
        tracing::info!(
            rds.slot = %image.slot(),
            "removing a backing file left without a disk"
        );
        self.remove_image(image).await?;
        Ok(true)
    }

    /// Removes `image` (a no-op when it does not exist) and proves it is gone.
    pub async fn remove_image(&self, image: &ImagePath) -> Result<(), OpError> {
        self.exec.run(&FileRemove::new(image)).await?;
        if self.image_exists(image).await? {
            return Err(OpError::Unverified {
                slot: image.slot().clone(),
                detail: format!("the backing file {image} is still there after /file remove"),
            });
        }
        Ok(())
    }

    /// Removes disk `disk` and its backing file (and `expected` too, when the disk used another
    /// path), proving both are gone.
    pub async fn remove_disk(&self, disk: &Disk, expected: &ImagePath) -> Result<(), OpError> {
        let slot = &disk.slot;
        self.exec.run(&DiskRemove::new(slot)).await?;
        if self.disk(slot).await?.is_some() {
            return Err(OpError::Unverified {
                slot: slot.clone(),
                detail: "the disk is still there after /disk remove".into(),
            });
        }
        // Only a file named after this very slot is this disk's alone to remove.
        let real = disk.image_path().filter(|image| image.slot() == slot);
        match (&real, &disk.file_path) {
            (None, Some(path)) => tracing::warn!(
                rds.slot = %slot,
                "the disk's backing file {path} is not named <pool>/<slot>.img; it is left in place"
            ),
            (Some(image), _) => self.remove_image(image).await?,
            (None, None) => {}
        }
        if real.as_ref() != Some(expected) {
            self.remove_image_if_present(expected).await?;
        }
        Ok(())
    }
}
