//! ListVolumes, relayed at the wire level.
//!
//! A listing is the one call whose answer grows with the cluster: with 1,000 volumes the
//! frontend spent ~1.6 ms of CPU per call on it (the relay target is under 1 ms), most of it
//! in building prost's owned messages — a string allocated per slot on the way in, a status
//! per volume with a cloned node id and a formatted message, an encoding pass over all of it
//! and the drop — rather than in the relay itself. Here the gateway's pages stay the bytes
//! they arrived as ([`rds_csi_proto::raw_codec`]), each volume is read in place
//! ([`gateway_page`]), and the CSI answer is written straight into its encoding
//! ([`csi_answer`]) under one hold of the attachment table, with the node ids written from
//! the table itself. [`route`] serves it beside the generated controller service.

pub mod csi_answer;
pub mod gateway_page;
pub mod route;
pub mod wire;

use bytes::Bytes;
use http::uri::PathAndQuery;
use rds_csi_proto::channel::HopChannel;
use rds_csi_proto::gateway as gw;
use rds_csi_proto::raw_codec::BytesReplyCodec;
use tonic::Status;

use crate::attachments::Attachments;
use crate::errors::{FrontendError, Peer, Subject};
use crate::ids::VolumeId;
use crate::paging::PageRequest;
use crate::volume_condition::{self, Disk};
use csi_answer::EntryStatus;
use gateway_page::ListedVolume;
use wire::{WireError, Writer};

const GATEWAY_LIST_VOLUMES: &str = "/rdscsi.gateway.v1.Gateway/ListVolumes";

fn relay_error(status: Status) -> FrontendError {
    FrontendError::relay(Peer::Gateway, "ListVolumes", &Subject::default())(status)
}

fn malformed(e: WireError) -> FrontendError {
    // What tonic reports for an answer prost cannot decode.
    relay_error(Status::internal(format!(
        "the gateway's ListVolumes answer is not a volume listing: {e}"
    )))
}

/// Every page of the gateway's listing, as it arrived. Stops after `max_pages`, or at a
/// page whose next token repeats the one it was asked with (a gateway going round in a
/// circle).
pub async fn gateway_pages(
    channel: HopChannel,
    max_pages: usize,
) -> Result<Vec<Bytes>, FrontendError> {
    let mut grpc = tonic::client::Grpc::new(channel);
    let mut pages: Vec<Bytes> = Vec::with_capacity(1);
    let mut token = String::new();
    for _ in 0..max_pages {
        grpc.ready().await.map_err(|e| {
            relay_error(Status::unavailable(format!(
                "the gateway connection is not ready: {e}"
            )))
        })?;
        let page = grpc
            .unary(
                tonic::Request::new(gw::ListVolumesRequest {
                    max_entries: 0,
                    starting_token: token.clone(),
                    // Neither is part of a CSI listing; the NQN follows from the slot.
                    without_paths: true,
                }),
                PathAndQuery::from_static(GATEWAY_LIST_VOLUMES),
                BytesReplyCodec::<gw::ListVolumesRequest>::default(),
            )
            .await
            .map_err(relay_error)?
            .into_inner();
        let next = gateway_page::next_token(&page).map_err(malformed)?;
        let done = next.is_empty() || next == token;
        let next = next.to_string();
        pages.push(page);
        if done {
            break;
        }
        token = next;
    }
    Ok(pages)
}

/// The CSI ListVolumesResponse for `page` of the volumes in `pages`, encoded.
///
/// CSI spec (ListVolumes): "The SP SHALL return the volumes it has provisioned"; a slot
/// that is not a volume id of this driver is not one of them and is not listed.
pub fn answer(
    pages: &[Bytes],
    page: &PageRequest,
    attachments: &Attachments,
) -> Result<Bytes, FrontendError> {
    let mut vols: Vec<ListedVolume<'_>> = Vec::new();
    for p in pages {
        gateway_page::volumes(p, &mut vols).map_err(malformed)?;
    }
    vols.retain(|v| VolumeId::is_valid(v.slot));
    let (vols, next_token) = page.page(vols, |v| v.slot);
    // About 100 bytes an entry with one attached node; a guess that saves the regrowths.
    let mut out = Vec::with_capacity(vols.len() * 112 + next_token.len() + 8);
    let mut w = Writer::new(&mut out);
    let mut message = String::new();
    attachments.with_table(|table, now| {
        for (v, record) in vols.iter().zip(table.records(vols.iter().map(|v| v.slot))) {
            let stuck = record.and_then(|r| r.abnormal(now));
            let disk = Disk::Present {
                exported: v.exported,
                nvme_port: v.nvme_port,
            };
            let abnormal = volume_condition::describe(disk, stuck.as_deref(), &mut message);
            let nodes = record.map(|r| r.nodes.as_slice()).unwrap_or_default();
            csi_answer::put_entry(
                &mut w,
                v,
                &EntryStatus {
                    published_node_ids: nodes.iter().map(|n| n.node.as_str()),
                    abnormal,
                    message: &message,
                },
            );
        }
    });
    csi_answer::put_next_token(&mut w, &next_token);
    Ok(Bytes::from(out))
}
