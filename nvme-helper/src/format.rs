//! Probe, then format only what is provably blank.
//!
//! `blkid -p -o export` plus the first and last MiB read as zeros decide (see `blank_probe`):
//! a recognised filesystem of the requested type is used as it is, another type is refused
//! (`FAILED_PRECONDITION`, nothing reformatted), anything ambiguous is refused with what was
//! seen, and only `Blank` is formatted. mkfs runs between a format intent written to the state
//! directory and its removal; a device whose volume still has an intent was found blank by us
//! and has seen no write since but our own interrupted mkfs (nothing mounts it before the intent
//! is gone), so it is formatted again (with `-F`/`-f`, as the half-written signatures would make
//! mkfs ask) instead of staying "ambiguous" for ever after a helper crash.

use std::path::Path;

use tracing::Instrument;

use crate::blank_probe::{Blkid, DeviceEdges, Probe, decide, read_edges};
use crate::error::{HelperError, Result};
use crate::external::Tool;
use crate::mount_options::{FsType, parse_mkfs_options};
use crate::node::Node;
use crate::nqn::Nqn;
use crate::stage_record::FormatIntent;

impl Node {
    /// Probes `device` (a `probe` span): blkid's low-level probe and the edge bytes.
    pub(crate) async fn probe(&self, device: &Path) -> Result<Probe> {
        let span = tracing::info_span!("probe", device = %device.display());
        async {
            let output = Tool::Blkid
                .command()
                .args(["-p", "-o", "export"])
                .arg(device.display().to_string())
                .timeout(self.cfg.tool_timeout)
                .run()
                .await?;
            let blkid =
                Blkid::from_output(device, output.exit_code, &output.stdout, &output.stderr)?;
            // A signature decides by itself; the edge bytes only matter when blkid found
            // nothing, so only then are the first and last MiB read.
            let edges = if matches!(blkid, Blkid::NothingFound) {
                let path = device.to_path_buf();
                Self::blocking("probing", device, move || read_edges(&path)).await?
            } else {
                DeviceEdges::default()
            };
            let verdict = decide(&blkid, &edges);
            tracing::info!(?verdict, "probed");
            Ok(verdict)
        }
        .instrument(span)
        .await
    }

    /// Makes sure `device` holds filesystem `fs`, formatting it only when that is provably
    /// safe. Returns whether mkfs ran.
    pub(crate) async fn ensure_filesystem(
        &self,
        volume_id: &str,
        nqn: &Nqn,
        device: &Path,
        fs: FsType,
        mkfs_options: Option<&str>,
    ) -> Result<bool> {
        let intent = self
            .records
            .format_intent(volume_id)?
            .filter(|i| i.nqn == nqn.as_str());
        let probe = self.probe(device).await?;
        let redo = intent.is_some();
        match probe {
            Probe::Blank => {}
            _ if redo => {
                tracing::warn!(%nqn, device = %device.display(), ?probe, "an earlier mkfs of this volume was interrupted; formatting again");
            }
            Probe::Filesystem(found) if found == fs.as_str() => return Ok(false),
            Probe::Filesystem(found) => {
                return Err(HelperError::FilesystemMismatch {
                    device: device.to_path_buf(),
                    found,
                    requested: fs.as_str().to_string(),
                });
            }
            Probe::Ambiguous(seen) => {
                return Err(HelperError::AmbiguousProbe {
                    device: device.to_path_buf(),
                    seen,
                });
            }
        }
        let options = mkfs_options.unwrap_or(match fs {
            FsType::Ext4 => &self.cfg.mkfs_ext4_options,
            FsType::Xfs => &self.cfg.mkfs_xfs_options,
        });
        let args = parse_mkfs_options(fs, options)?;
        self.records.begin_format(&FormatIntent {
            volume_id: volume_id.to_string(),
            nqn: nqn.to_string(),
            fs_type: fs.as_str().to_string(),
        })?;
        self.mkfs(device, fs, &args, redo).await?;
        self.records.end_format(volume_id)?;
        Ok(true)
    }

    /// Runs mkfs (an `mkfs` span).
    async fn mkfs(&self, device: &Path, fs: FsType, args: &[String], force: bool) -> Result<()> {
        let span = tracing::info_span!("mkfs", device = %device.display(), fs = fs.as_str());
        let (tool, force_flag) = match fs {
            FsType::Ext4 => (Tool::MkfsExt4, "-F"),
            FsType::Xfs => (Tool::MkfsXfs, "-f"),
        };
        let mut command = tool.command().arg("-q");
        if force {
            command = command.arg(force_flag);
        }
        let command = command
            .args(args.iter().cloned())
            .arg(device.display().to_string())
            .timeout(self.cfg.tool_timeout);
        async {
            command.run_checked().await?;
            tracing::info!("formatted");
            Ok(())
        }
        .instrument(span)
        .await
    }
}
