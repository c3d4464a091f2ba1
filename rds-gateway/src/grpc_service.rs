//! The internal `Gateway` gRPC service: the frontend's only way to the appliance.
//!
//! Every request field is validated again here, whatever the frontend checked: slots, NQNs and
//! paths through the `routeros::names` types, sizes and ports by range, and a malformed field is
//! `INVALID_ARGUMENT` naming the field. Then the operation runs, and whatever it fails with
//! becomes a `tonic::Status` in exactly one function, [`status`], whose code comes from
//! `OpError::code` (and so, for RouterOS failures, from `RosError::code`).
//!
//! `Health` reports ready only while the transport has a working session, with the transport's
//! actionable reason otherwise (the same verdict `/readyz` gives, see [`crate::readiness`]).
//!
//! The `snapshot_id` and `source_volume_id` filters of `ListSnapshots` are the one exception to
//! strict validation: as CSI asks, a filter that names nothing (malformed or unknown) gives an
//! empty list, not an error.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use rds_csi_proto::gateway::create_volume_request::Source;
use rds_csi_proto::gateway::gateway_server::Gateway;
use rds_csi_proto::gateway::*;
use tonic::{Request, Response, Status};

use crate::capacity::Capacity as CapacityCache;
use crate::executor::Executor;
use crate::op_error::OpError;
use crate::readiness::readiness_of;
use crate::routeros::command::NvmeExport;
use crate::routeros::names::{Nqn, PoolPath, Port, Slot};
use crate::routeros::size::Bytes;
use crate::snapshots::{CreateSnapshot, SnapshotFilter, SnapshotInfo, Snapshots};
use crate::ssh::ConnectionState;
use crate::volumes::{CreateVolume, VolumeInfo, VolumeSource, Volumes};

/// Turns an operation's failure into the status the caller sees. The only such mapping.
pub fn status(err: &OpError) -> Status {
    let code = err.code();
    match code {
        tonic::Code::Internal | tonic::Code::Unknown => {
            tracing::error!("gateway call failed: {err}");
        }
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
            tracing::warn!("gateway call failed: {err}");
        }
        _ => tracing::info!("gateway call refused: {err}"),
    }
    Status::new(code, err.to_string())
}

/// Defaults for fields a request may leave empty.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Directory of backing files when `location.base_path` is empty.
    pub pool: PoolPath,
    /// NVMe/TCP port when `location.nvme_port` is 0.
    pub nvme_port: Port,
}

/// The `Gateway` service.
#[derive(Debug, Clone)]
pub struct GatewayService {
    volumes: Volumes,
    snapshots: Snapshots,
    capacity: CapacityCache,
    exec: Arc<Executor>,
    defaults: Defaults,
}

impl GatewayService {
    /// Serves `volumes`, `snapshots` and `capacity`; `exec` tells the connection state.
    pub fn new(
        volumes: Volumes,
        snapshots: Snapshots,
        capacity: CapacityCache,
        exec: Arc<Executor>,
        defaults: Defaults,
    ) -> Self {
        GatewayService {
            volumes,
            snapshots,
            capacity,
            exec,
            defaults,
        }
    }

    fn pool(&self, location: Option<&VolumeLocation>) -> Result<PoolPath, OpError> {
        match location.map(|l| l.base_path.as_str()) {
            None | Some("") => Ok(self.defaults.pool.clone()),
            Some(raw) => {
                PoolPath::parse(raw).map_err(|e| OpError::invalid("location.base_path", e))
            }
        }
    }

    fn port(&self, location: Option<&VolumeLocation>) -> Result<Port, OpError> {
        match location.map(|l| l.nvme_port) {
            None | Some(0) => Ok(self.defaults.nvme_port),
            Some(raw) => u16::try_from(raw)
                .ok()
                .and_then(|p| Port::new(p).ok())
                .ok_or_else(|| OpError::BadRequest {
                    field: "location.nvme_port",
                    problem: format!("{raw} is not a TCP port (1-65535)"),
                }),
        }
    }
}

/// A required slot field.
fn slot(field: &'static str, raw: &str) -> Result<Slot, OpError> {
    if raw.is_empty() {
        return Err(OpError::BadRequest {
            field,
            problem: "is required".into(),
        });
    }
    Slot::parse(raw).map_err(|e| OpError::invalid(field, e))
}

/// A size limit: 0 means none.
fn limit(raw: u64) -> Option<Bytes> {
    (raw > 0).then_some(Bytes::new(raw))
}

fn volume_message(v: VolumeInfo) -> Volume {
    let (source_snapshot_id, source_volume_id) = match v.source {
        Some(VolumeSource::Snapshot(s)) => (s.to_string(), String::new()),
        Some(VolumeSource::Volume(s)) => (String::new(), s.to_string()),
        None => (String::new(), String::new()),
    };
    Volume {
        slot: v.slot.to_string(),
        nqn: v.nqn.map(|n| n.to_string()).unwrap_or_default(),
        file_path: v.file_path.map(|p| p.absolute()).unwrap_or_default(),
        size_bytes: v.size.get(),
        nvme_port: v.port.map_or(0, |p| u32::from(p.get())),
        exported: v.exported,
        source_snapshot_id,
        source_volume_id,
    }
}

fn snapshot_message(s: SnapshotInfo) -> Snapshot {
    Snapshot {
        snapshot_id: s.id.to_string(),
        source_volume_id: s.source.map(|v| v.to_string()).unwrap_or_default(),
        size_bytes: s.size.get(),
        created_at_unix: i64::try_from(s.created_unix).unwrap_or(i64::MAX),
        ready_to_use: s.ready,
    }
}

/// A list filter: empty is "any"; anything that is not a slot matches nothing.
enum Filter {
    Any,
    Slot(Slot),
    Nothing,
}

fn filter(raw: &str) -> Filter {
    if raw.is_empty() {
        Filter::Any
    } else {
        Slot::parse(raw).map_or(Filter::Nothing, Filter::Slot)
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn reply<T>(result: Result<T, OpError>) -> Reply<T> {
    result.map(Response::new).map_err(|e| status(&e))
}

#[tonic::async_trait]
impl Gateway for GatewayService {
    async fn create_volume(&self, request: Request<CreateVolumeRequest>) -> Reply<Volume> {
        let req = request.into_inner();
        let run = async {
            let slot = slot("slot", &req.slot)?;
            if req.nqn.is_empty() {
                return Err(OpError::BadRequest {
                    field: "nqn",
                    problem: "is required".into(),
                });
            }
            let nqn = Nqn::parse(&req.nqn).map_err(|e| OpError::invalid("nqn", e))?;
            let source = match &req.source {
                None => None,
                Some(Source::SnapshotId(raw)) => {
                    Some(VolumeSource::Snapshot(self::slot("snapshot_id", raw)?))
                }
                Some(Source::VolumeId(raw)) => {
                    Some(VolumeSource::Volume(self::slot("volume_id", raw)?))
                }
            };
            let create = CreateVolume {
                slot,
                required: Bytes::new(req.required_bytes),
                limit: limit(req.limit_bytes),
                pool: self.pool(req.location.as_ref())?,
                export: NvmeExport {
                    port: self.port(req.location.as_ref())?,
                    nqn,
                },
                source,
            };
            self.volumes.create(&create).await.map(volume_message)
        };
        reply(run.await)
    }

    async fn delete_volume(
        &self,
        request: Request<DeleteVolumeRequest>,
    ) -> Reply<DeleteVolumeResponse> {
        let req = request.into_inner();
        let run = async {
            let slot = slot("slot", &req.slot)?;
            let pool = self.pool(req.location.as_ref())?;
            self.volumes.delete(&slot, &pool).await?;
            Ok(DeleteVolumeResponse {})
        };
        reply(run.await)
    }

    async fn expand_volume(&self, request: Request<ExpandVolumeRequest>) -> Reply<Volume> {
        let req = request.into_inner();
        let run = async {
            let slot = slot("slot", &req.slot)?;
            self.volumes
                .expand(
                    &slot,
                    Bytes::new(req.required_bytes),
                    limit(req.limit_bytes),
                )
                .await
                .map(volume_message)
        };
        reply(run.await)
    }

    async fn get_volume(&self, request: Request<GetVolumeRequest>) -> Reply<Volume> {
        let req = request.into_inner();
        let run = async {
            let slot = slot("slot", &req.slot)?;
            self.volumes.get(&slot).await.map(volume_message)
        };
        reply(run.await)
    }

    async fn list_volumes(
        &self,
        request: Request<ListVolumesRequest>,
    ) -> Reply<ListVolumesResponse> {
        let req = request.into_inner();
        let run = async {
            let page = self
                .volumes
                .list(req.max_entries, &req.starting_token)
                .await?;
            Ok(ListVolumesResponse {
                volumes: page
                    .items
                    .into_iter()
                    .map(|v| {
                        if req.without_paths {
                            volume_message(VolumeInfo {
                                nqn: None,
                                file_path: None,
                                ..v
                            })
                        } else {
                            volume_message(v)
                        }
                    })
                    .collect(),
                next_token: page.next.map(|s| s.to_string()).unwrap_or_default(),
            })
        };
        reply(run.await)
    }

    async fn get_capacity(&self, request: Request<GetCapacityRequest>) -> Reply<Capacity> {
        let req = request.into_inner();
        let run = || {
            let pool = self.pool(req.location.as_ref())?;
            let sample = self.capacity.get(Some(&pool))?;
            let refreshed = sample
                .refreshed_at
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            Ok(Capacity {
                total_bytes: sample.total.get(),
                free_bytes: sample.free.get(),
                refreshed_at_unix: refreshed,
            })
        };
        reply(run())
    }

    async fn create_snapshot(&self, request: Request<CreateSnapshotRequest>) -> Reply<Snapshot> {
        let req = request.into_inner();
        let run = async {
            let create = CreateSnapshot {
                id: slot("snapshot_id", &req.snapshot_id)?,
                source: slot("source_volume_id", &req.source_volume_id)?,
                pool: self.pool(req.location.as_ref())?,
            };
            self.snapshots.create(&create).await.map(snapshot_message)
        };
        reply(run.await)
    }

    async fn delete_snapshot(
        &self,
        request: Request<DeleteSnapshotRequest>,
    ) -> Reply<DeleteSnapshotResponse> {
        let req = request.into_inner();
        let run = async {
            let id = slot("snapshot_id", &req.snapshot_id)?;
            let pool = self.pool(req.location.as_ref())?;
            self.snapshots.delete(&id, &pool).await?;
            Ok(DeleteSnapshotResponse {})
        };
        reply(run.await)
    }

    async fn list_snapshots(
        &self,
        request: Request<ListSnapshotsRequest>,
    ) -> Reply<ListSnapshotsResponse> {
        let req = request.into_inner();
        let run = async {
            let id = match filter(&req.snapshot_id) {
                Filter::Any => None,
                Filter::Slot(s) => Some(s),
                Filter::Nothing => return Ok(ListSnapshotsResponse::default()),
            };
            let source = match filter(&req.source_volume_id) {
                Filter::Any => None,
                Filter::Slot(s) => Some(s),
                Filter::Nothing => return Ok(ListSnapshotsResponse::default()),
            };
            let page = self
                .snapshots
                .list(
                    &SnapshotFilter { id, source },
                    req.max_entries,
                    &req.starting_token,
                )
                .await?;
            Ok(ListSnapshotsResponse {
                snapshots: page.items.into_iter().map(snapshot_message).collect(),
                next_token: page.next.map(|s| s.to_string()).unwrap_or_default(),
            })
        };
        reply(run.await)
    }

    async fn health(&self, _: Request<HealthRequest>) -> Reply<HealthResponse> {
        let state = self.exec.connection().borrow().clone();
        let version = match &state {
            ConnectionState::Connected {
                routeros_version, ..
            } => routeros_version.clone().or_else(|| {
                self.exec
                    .routeros_version()
                    .map(|v| format!("{}.{}.{}", v.major, v.minor, v.patch))
            }),
            _ => None,
        };
        let (ready, reason) = match readiness_of(&state) {
            Ok(()) => (true, String::new()),
            Err(reason) => (false, reason),
        };
        Ok(Response::new(HealthResponse {
            ready,
            reason,
            routeros_version: version.unwrap_or_default(),
        }))
    }
}
