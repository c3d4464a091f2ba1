//! The CSI ListVolumesResponse, written entry by entry straight into its encoding.
//!
//! Field numbers are those of `csi.v1.ListVolumesResponse` (entries 1, next_token 2), its
//! `Entry` (volume 1, status 2), `Volume` (capacity_bytes 1, volume_id 2, content_source 4),
//! `VolumeContentSource` (snapshot 1, volume 2; each source's id is field 1), `VolumeStatus`
//! (published_node_ids 1, volume_condition 2) and `VolumeCondition` (abnormal 1, message 2)
//! in `proto/proto/csi.proto`. Every message the struct-built answer set is present here too
//! (`volume`, `status`, `volume_condition`), so prost decodes the bytes to the same answer;
//! the tests check that against prost's own encoding.

use super::gateway_page::ListedVolume;
use super::wire::{Writer, len_field_len, varint_field_len};

/// What one entry says besides the volume itself.
pub struct EntryStatus<'a, N> {
    /// CSI spec (ListVolumesResponse.VolumeStatus): "This field is OPTIONAL. This field MUST
    /// be specified if the PUBLISH_UNPUBLISH_VOLUME controller capability is supported by the
    /// SP."
    pub published_node_ids: N,
    pub abnormal: bool,
    pub message: &'a str,
}

/// The volume's content source as `(field, id)`: a snapshot (1) first, else a volume (2).
fn source<'a>(v: &ListedVolume<'a>) -> Option<(u32, &'a str)> {
    if !v.source_snapshot_id.is_empty() {
        Some((1, v.source_snapshot_id))
    } else if !v.source_volume_id.is_empty() {
        Some((2, v.source_volume_id))
    } else {
        None
    }
}

fn capacity(v: &ListedVolume<'_>) -> u64 {
    // int64 on the wire; the size is capped at i64::MAX as the struct-built answer caps it.
    v.size_bytes.min(i64::MAX as u64)
}

fn volume_len(v: &ListedVolume<'_>) -> usize {
    let mut n = varint_field_len(1, capacity(v)) * usize::from(capacity(v) != 0)
        + len_field_len(2, v.slot.len()) * usize::from(!v.slot.is_empty());
    if let Some((field, id)) = source(v) {
        n += len_field_len(4, len_field_len(field, len_field_len(1, id.len())));
    }
    n
}

fn condition_len(abnormal: bool, message: &str) -> usize {
    varint_field_len(1, 1) * usize::from(abnormal)
        + len_field_len(2, message.len()) * usize::from(!message.is_empty())
}

fn status_len<'n, N: Iterator<Item = &'n str> + Clone>(s: &EntryStatus<'_, N>) -> usize {
    s.published_node_ids
        .clone()
        .map(|id| len_field_len(1, id.len()))
        .sum::<usize>()
        + len_field_len(2, condition_len(s.abnormal, s.message))
}

/// Appends one `entries` element (field 1 of the response).
pub fn put_entry<'n, N: Iterator<Item = &'n str> + Clone>(
    w: &mut Writer<'_>,
    v: &ListedVolume<'_>,
    s: &EntryStatus<'_, N>,
) {
    let volume = volume_len(v);
    let status = status_len(s);
    w.message_header(1, len_field_len(1, volume) + len_field_len(2, status));
    w.message_header(1, volume);
    w.varint_field(1, capacity(v));
    w.bytes_field(2, v.slot.as_bytes());
    if let Some((field, id)) = source(v) {
        w.message_header(4, len_field_len(field, len_field_len(1, id.len())));
        w.message_header(field, len_field_len(1, id.len()));
        w.bytes_field(1, id.as_bytes());
    }
    w.message_header(2, status);
    for id in s.published_node_ids.clone() {
        w.element(1, id.as_bytes());
    }
    w.message_header(2, condition_len(s.abnormal, s.message));
    w.varint_field(1, u64::from(s.abnormal));
    w.bytes_field(2, s.message.as_bytes());
}

/// Appends the response's `next_token` (left out when empty, as proto3 leaves it out).
pub fn put_next_token(w: &mut Writer<'_>, token: &str) {
    w.bytes_field(2, token.as_bytes());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use prost::Message;
    use rds_csi_proto::csi::{self, list_volumes_response as lvr, volume_content_source as vcs};

    /// The answer as prost types, built the plain way: what the bytes must decode to.
    fn expected(
        vols: &[ListedVolume<'_>],
        statuses: &[(Vec<&str>, bool, String)],
        next: &str,
    ) -> csi::ListVolumesResponse {
        csi::ListVolumesResponse {
            entries: vols
                .iter()
                .zip(statuses)
                .map(|(v, (nodes, abnormal, message))| lvr::Entry {
                    volume: Some(csi::Volume {
                        capacity_bytes: i64::try_from(v.size_bytes).unwrap_or(i64::MAX),
                        volume_id: v.slot.to_string(),
                        content_source: source(v).map(|(field, id)| csi::VolumeContentSource {
                            r#type: Some(if field == 1 {
                                vcs::Type::Snapshot(vcs::SnapshotSource {
                                    snapshot_id: id.into(),
                                })
                            } else {
                                vcs::Type::Volume(vcs::VolumeSource {
                                    volume_id: id.into(),
                                })
                            }),
                        }),
                        ..Default::default()
                    }),
                    status: Some(lvr::VolumeStatus {
                        published_node_ids: nodes.iter().map(|n| n.to_string()).collect(),
                        volume_condition: Some(csi::VolumeCondition {
                            abnormal: *abnormal,
                            message: message.clone(),
                        }),
                    }),
                })
                .collect(),
            next_token: next.into(),
        }
    }

    fn write(
        vols: &[ListedVolume<'_>],
        statuses: &[(Vec<&str>, bool, String)],
        next: &str,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = Writer::new(&mut out);
        for (v, (nodes, abnormal, message)) in vols.iter().zip(statuses) {
            put_entry(
                &mut w,
                v,
                &EntryStatus {
                    published_node_ids: nodes.iter().copied(),
                    abnormal: *abnormal,
                    message,
                },
            );
        }
        put_next_token(&mut w, next);
        out
    }

    #[test]
    fn the_bytes_are_prosts_encoding_of_the_same_answer() {
        let slots: Vec<String> = (0..300)
            .map(|i| format!("pvc-{i:08}-0000-4000-8000-000000000000"))
            .collect();
        let snaps: Vec<String> = (0..300).map(|i| format!("snap-{i}")).collect();
        let long = "x".repeat(300); // a message whose length needs a two-byte varint
        let vols: Vec<ListedVolume<'_>> = (0..300)
            .map(|i| ListedVolume {
                slot: &slots[i],
                // 0, small, multi-byte, and past i64::MAX (capped)
                size_bytes: match i % 4 {
                    0 => 0,
                    1 => 1 << 30,
                    2 => (i as u64) << 50,
                    _ => u64::MAX,
                },
                nvme_port: 4420,
                exported: true,
                source_snapshot_id: if i % 5 == 1 { &snaps[i] } else { "" },
                source_volume_id: if i % 3 == 2 {
                    &slots[(i + 1) % 300]
                } else {
                    ""
                },
            })
            .collect();
        let statuses: Vec<(Vec<&str>, bool, String)> = (0..300)
            .map(|i| {
                let nodes = match i % 4 {
                    0 => vec![],
                    1 => vec!["node-a"],
                    _ => vec!["node-a", "node-b"],
                };
                let message = match i % 3 {
                    0 => format!("exported over NVMe/TCP on port {i}"),
                    1 => long.clone(),
                    _ => String::new(),
                };
                (nodes, i % 2 == 1, message)
            })
            .collect();
        for (n, next) in [(0, ""), (1, ""), (300, "pvc-next")] {
            let bytes = write(&vols[..n], &statuses[..n], next);
            let want = expected(&vols[..n], &statuses[..n], next);
            assert_eq!(
                csi::ListVolumesResponse::decode(bytes.as_slice()).unwrap(),
                want,
                "{n}"
            );
            assert_eq!(
                bytes,
                want.encode_to_vec(),
                "{n}: the same bytes prost writes"
            );
        }
    }
}
