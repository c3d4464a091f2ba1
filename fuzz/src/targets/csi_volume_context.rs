//! `csi_volume_context`: the frontend's parsers of the volume context and publish context that
//! come back from the CO with NodeStage / NodePublish (untrusted: anyone who can write a
//! PersistentVolume controls them).
//!
//! Input fields: the volume id (or a name mapped to one), the number of volume-context pairs, the
//! volume-context pairs, then the publish-context pairs. Oracles:
//! - nothing panics; refusals are escaped ASCII of bounded length;
//! - an accepted context cannot point the node elsewhere: the backing file is this volume's image
//!   path under a pool path the gateway accepts, and the resolved target's NQN is this volume's
//!   NQN (accepted by the node helper);
//! - mkfs and mount options that pass are single words of the allowed alphabet;
//! - a publish context rebuilt from an accepted volume context parses back to the same target.

use csi_frontend::ids::VolumeId;
use csi_frontend::volume_context::{
    PublishContext, VolumeContext, build_publish_context, resolve_target,
};
use rds_gateway::routeros::names::ImagePath;

use super::csi_params::{MESSAGE_LIMIT, defaults, read_map};
use crate::input::Fields;
use crate::oracle::{LogRule, assert_log_safe};

/// Context keys and values.
pub const DICTIONARY: &[&[u8]] = &[
    b"nqn",
    b"nvmeAddress",
    b"rdsAddress",
    b"nvmePort",
    b"volumePath",
    b"ctrlLossTmo",
    b"reconnectDelay",
    b"keepAliveTmo",
    b"migrationTimeoutSeconds",
    b"fsType",
    b"mkfsOptions",
    b"mountOptions",
    b"nvme_nqn",
    b"nvme_address",
    b"nvme_port",
    b"fs_type",
    b"ctrl_loss_tmo",
    b"reconnect_delay",
    b"keep_alive_tmo",
    b"csi.storage.k8s.io/pvc/name",
    b"nqn.2000-02.com.mikrotik:pvc-11111111-2222-3333-4444-555555555555",
    b"/storage-pool/metal-csi/pvc-11111111-2222-3333-4444-555555555555.img",
    b"/../../etc/pvc-11111111-2222-3333-4444-555555555555.img",
];

fn word_ok(w: &str) -> bool {
    !w.is_empty()
        && w.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'=' | b'.' | b',' | b':' | b'+' | b'-')
        })
}

/// Parses the fuzzed contexts and checks the oracles above.
pub fn csi_volume_context(data: &[u8]) {
    let mut f = Fields::new(data);
    let id = f.text();
    let volume = VolumeId::parse("volume_id", &id)
        .or_else(|_| VolumeId::from_name(&id))
        .or_else(|_| VolumeId::from_name("pvc-fuzz"))
        .unwrap_or_else(|e| panic!("a plain name maps to a volume id: {e}"));
    let pairs = usize::from(f.byte() % 16);
    let vc_map = read_map(&mut f, pairs);
    let pc_map = read_map(&mut f, 32);
    let refused = |what: &str, message: String| {
        assert_log_safe(
            what,
            &message,
            LogRule::EscapedAscii {
                max_len: MESSAGE_LIMIT,
            },
        );
    };

    let vc = match VolumeContext::parse(&volume, &vc_map) {
        Ok(vc) => vc,
        Err(e) => {
            refused("volume context error", e.to_string());
            return;
        }
    };
    if let Some(file) = &vc.file_path {
        match ImagePath::parse(file) {
            Ok(image) => assert_eq!(
                image.slot().as_str(),
                volume.as_str(),
                "volume context of {volume} names the backing file {file}"
            ),
            Err(e) => {
                panic!("volume context backing file {file:?} is not a gateway image path: {e}")
            }
        }
    }
    for w in vc.mkfs_options.iter() {
        assert!(word_ok(w), "mkfs option {w:?} passed");
    }
    for w in vc.mount_options.iter() {
        assert!(word_ok(w) && !w.contains(','), "mount option {w:?} passed");
    }
    match PublishContext::parse(&volume, &pc_map) {
        Ok(pc) => match resolve_target(&volume, &pc, &vc) {
            Ok(t) => {
                assert_eq!(
                    t.nqn,
                    volume.nqn(),
                    "a context redirected {volume} to {}",
                    t.nqn
                );
                assert!(
                    nvme_helper::nqn::Nqn::new(t.nqn.as_str()).is_ok(),
                    "target NQN {}",
                    t.nqn
                );
                assert!(t.port >= 1, "port 0");
            }
            Err(e) => refused("resolve error", e.to_string()),
        },
        Err(e) => refused("publish context error", e.to_string()),
    }
    for with_address in [false, true] {
        let defaults = defaults(with_address);
        match build_publish_context(&volume, &vc, &defaults, None) {
            Ok(m) => {
                let pc = match PublishContext::parse(&volume, &m) {
                    Ok(pc) => pc,
                    Err(e) => panic!("rebuilt publish context refused: {e}"),
                };
                match resolve_target(&volume, &pc, &vc) {
                    Ok(t) => {
                        assert_eq!(t.nqn, volume.nqn(), "rebuilt target NQN");
                        assert_eq!(
                            Some(t.address),
                            vc.nvme_address.or(defaults.nvme_address),
                            "rebuilt target address"
                        );
                    }
                    Err(e) => panic!("rebuilt publish context does not resolve: {e}"),
                }
            }
            Err(e) => refused("publish context build error", e.to_string()),
        }
    }
}
