//! One page of the gateway's ListVolumes answer, read from its bytes without copying: each
//! volume is a [`ListedVolume`] borrowing its strings from the page.
//!
//! The fields and their numbers are those of `rdscsi.gateway.v1.ListVolumesResponse` and
//! `Volume` in `proto/proto/gateway.proto`; the tests check this reader against prost's
//! decoding of the same bytes.

use super::wire::{Fields, WireError};

/// The volume fields a CSI listing uses (the NQN and file path are not among them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListedVolume<'a> {
    pub slot: &'a str,
    pub size_bytes: u64,
    pub nvme_port: u32,
    pub exported: bool,
    pub source_snapshot_id: &'a str,
    pub source_volume_id: &'a str,
}

/// The page's `next_token` (empty on the last page).
pub fn next_token(page: &[u8]) -> Result<&str, WireError> {
    let mut token = "";
    let mut fields = Fields::new(page);
    while let Some((number, value)) = fields.next_field()? {
        if number == 2 {
            token = value.str("ListVolumesResponse.next_token")?;
        }
    }
    Ok(token)
}

/// Appends the page's volumes to `out`, in the page's order.
pub fn volumes<'a>(page: &'a [u8], out: &mut Vec<ListedVolume<'a>>) -> Result<(), WireError> {
    let mut fields = Fields::new(page);
    while let Some((number, value)) = fields.next_field()? {
        if number == 1 {
            out.push(volume(value.bytes("ListVolumesResponse.volumes")?)?);
        }
    }
    Ok(())
}

fn volume(bytes: &[u8]) -> Result<ListedVolume<'_>, WireError> {
    let mut v = ListedVolume::default();
    let mut fields = Fields::new(bytes);
    while let Some((number, value)) = fields.next_field()? {
        match number {
            1 => v.slot = value.str("Volume.slot")?,
            // nqn (2) and file_path (3) are still checked: prost would refuse them too.
            2 => _ = value.str("Volume.nqn")?,
            3 => _ = value.str("Volume.file_path")?,
            4 => v.size_bytes = value.varint("Volume.size_bytes")?,
            // A uint32 carried in a longer varint keeps its low 32 bits, as prost reads it.
            5 => v.nvme_port = value.varint("Volume.nvme_port")? as u32,
            6 => v.exported = value.varint("Volume.exported")? != 0,
            7 => v.source_snapshot_id = value.str("Volume.source_snapshot_id")?,
            8 => v.source_volume_id = value.str("Volume.source_volume_id")?,
            _ => {}
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use prost::Message;
    use rds_csi_proto::gateway as gw;

    /// `text()` when `on`, else the empty string (a field left unset on the wire).
    fn text_if(on: bool, text: impl FnOnce() -> String) -> String {
        if on { text() } else { String::new() }
    }

    fn sample(n: usize) -> gw::ListVolumesResponse {
        gw::ListVolumesResponse {
            volumes: (0..n)
                .map(|i| gw::Volume {
                    slot: format!("pvc-{i:08}-0000-4000-8000-000000000000"),
                    nqn: text_if(i % 3 == 0, || format!("nqn.2000-02.com.mikrotik:pvc-{i}")),
                    file_path: text_if(i % 3 == 0, || format!("/pool/pvc-{i}.img")),
                    size_bytes: (i as u64) << (i % 40),
                    nvme_port: 4420 + (i % 3) as u32,
                    exported: i % 4 != 1,
                    source_snapshot_id: text_if(i % 5 == 2, || format!("snap-{i}")),
                    source_volume_id: text_if(i % 7 == 3, || format!("pvc-src-{i}")),
                })
                .collect(),
            next_token: if n > 2 {
                "pvc-next".into()
            } else {
                String::new()
            },
        }
    }

    fn as_listed(v: &gw::Volume) -> ListedVolume<'_> {
        ListedVolume {
            slot: &v.slot,
            size_bytes: v.size_bytes,
            nvme_port: v.nvme_port,
            exported: v.exported,
            source_snapshot_id: &v.source_snapshot_id,
            source_volume_id: &v.source_volume_id,
        }
    }

    #[test]
    fn reads_what_prost_wrote() {
        for n in [0, 1, 2, 50, 1000] {
            let msg = sample(n);
            let bytes = msg.encode_to_vec();
            let mut got = Vec::new();
            volumes(&bytes, &mut got).unwrap();
            let want: Vec<_> = msg.volumes.iter().map(as_listed).collect();
            assert_eq!(got, want, "{n} volumes");
            assert_eq!(next_token(&bytes).unwrap(), msg.next_token);
        }
    }

    /// Fields this reader does not know (a newer gateway's) are skipped, as prost skips them.
    #[test]
    fn unknown_fields_are_skipped() {
        let msg = sample(3);
        let mut bytes = Vec::new();
        // Field 9 as a varint and field 15 as a fixed64 at the top, before the volumes.
        bytes.extend_from_slice(&[9 << 3, 42, 15 << 3 | 1, 1, 2, 3, 4, 5, 6, 7, 8]);
        bytes.extend_from_slice(&msg.encode_to_vec());
        let mut got = Vec::new();
        volumes(&bytes, &mut got).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], as_listed(&msg.volumes[2]));
        assert_eq!(
            gw::ListVolumesResponse::decode(bytes.as_slice()).unwrap(),
            msg
        );
    }

    /// Every cut of a valid page either reads (a cut between fields is a shorter valid
    /// message) or is an error; it never panics, and it errs exactly where prost errs.
    #[test]
    fn every_truncation_is_handled_like_prost() {
        let bytes = sample(4).encode_to_vec();
        for cut in 0..bytes.len() {
            let part = &bytes[..cut];
            let mut got = Vec::new();
            let ours = volumes(part, &mut got).and_then(|()| next_token(part).map(|_| ()));
            let theirs = gw::ListVolumesResponse::decode(part);
            assert_eq!(ours.is_ok(), theirs.is_ok(), "cut at {cut}: {ours:?}");
        }
    }

    #[test]
    fn a_slot_that_is_not_utf8_or_a_volume_of_the_wrong_type_is_refused() {
        // volumes { slot: 0xff }
        let bad_utf8 = [0x0a, 3, 0x0a, 1, 0xff];
        assert_eq!(
            volumes(&bad_utf8, &mut Vec::new()).unwrap_err(),
            WireError::NotUtf8 {
                field: "Volume.slot"
            }
        );
        assert!(gw::ListVolumesResponse::decode(&bad_utf8[..]).is_err());
        // volumes as a varint
        let wrong = [0x08, 1];
        assert!(matches!(
            volumes(&wrong, &mut Vec::new()).unwrap_err(),
            WireError::WrongType {
                field: "ListVolumesResponse.volumes",
                ..
            }
        ));
        assert!(gw::ListVolumesResponse::decode(&wrong[..]).is_err());
    }
}
