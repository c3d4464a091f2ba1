//! `csi_params`: the frontend's StorageClass and VolumeSnapshotClass parameter parsers, and the
//! volume and publish contexts built from a parsed StorageClass.
//!
//! Input fields: a control byte (whether a default NVMe address is configured, which filesystem a
//! capability names), the CreateVolume name, then key/value pairs of the parameter map. Oracles:
//! - nothing panics; refusals are escaped ASCII of bounded length;
//! - an accepted `volumePath` is accepted by the gateway as a pool path, and the volume's backing
//!   file under it is the gateway image path of that volume;
//! - mkfs and mount options survive the trip through the volume context: the context built at
//!   CreateVolume parses back (as the node would read it) to the same address, port, timeouts,
//!   filesystem, options and claim names;
//! - the publish context built from it parses back and resolves to this volume's NQN and address.

use std::collections::HashMap;
use std::net::IpAddr;

use csi_frontend::capabilities::Filesystem;
use csi_frontend::ids::VolumeId;
use csi_frontend::params::{ConnectOptions, Defaults, SnapshotParams, StorageParams, VolumePath};
use csi_frontend::volume_context::{
    PublishContext, VolumeContext, build_publish_context, resolve_target,
};
use rds_gateway::routeros::names::{ImagePath, PoolPath};

use super::csi_ids::check_volume_id;
use crate::input::Fields;
use crate::oracle::{LogRule, assert_log_safe};

/// StorageClass parameter keys and values.
pub const DICTIONARY: &[&[u8]] = &[
    b"volumePath",
    b"nvmeAddress",
    b"nvmePort",
    b"ctrlLossTmo",
    b"reconnectDelay",
    b"keepAliveTmo",
    b"migrationTimeoutSeconds",
    b"mkfsOptions",
    b"mountOptions",
    b"rdsAddress",
    b"fsType",
    b"nqnPrefix",
    b"sshPort",
    b"csi.storage.k8s.io/pvc/name",
    b"csi.storage.k8s.io/pvc/namespace",
    b"csi.storage.k8s.io/pv/name",
    b"csi.storage.k8s.io/fstype",
    b"/storage-pool/metal-csi",
    b"10.42.68.1",
    b"::1",
    b"-m 0 -E lazy_itable_init=0",
    b"noatime,discard",
    b"ext4",
    b"xfs",
    b"nqn.2000-02.com.mikrotik",
    b"nqn.2000-02.com.mikrotik:pvc-",
];

/// Longest refusal message (the list of known keys is long, values are shown cut at 80 chars).
pub const MESSAGE_LIMIT: usize = 4096;

/// The controller's flag defaults.
pub fn defaults(with_address: bool) -> Defaults {
    let volume_path = VolumePath::parse("/storage-pool/metal-csi")
        .unwrap_or_else(|e| panic!("default volume path is valid: {e}"));
    Defaults {
        nvme_address: with_address.then(|| IpAddr::from([10, 42, 68, 1])),
        nvme_port: 4420,
        volume_path,
        migration_timeout_secs: 300,
        connect: ConnectOptions::default(),
    }
}

/// Reads `key, value, key, value, ...` fields into a map (later keys win).
pub fn read_map(f: &mut Fields<'_>, pairs: usize) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for _ in 0..pairs {
        if f.is_done() {
            break;
        }
        let key = f.text().into_owned();
        let value = f.text().into_owned();
        map.insert(key, value);
    }
    map
}

/// Checks that `path` is a pool path the gateway accepts, holding `volume`'s image.
fn check_volume_path(path: &VolumePath, volume: &VolumeId) {
    let pool = match PoolPath::parse(path.as_str()) {
        Ok(p) => p,
        Err(e) => panic!(
            "volumePath {} is accepted by the frontend, not by the gateway: {e}",
            path.as_str()
        ),
    };
    assert_eq!(
        pool.absolute(),
        path.as_str(),
        "volumePath normalised differently"
    );
    let file = volume.backing_file(path.as_str());
    match ImagePath::parse(&file) {
        Ok(image) => {
            assert_eq!(image.pool(), &pool, "backing file {file} is not in {pool}");
            assert_eq!(
                image.slot().as_str(),
                volume.as_str(),
                "backing file {file}"
            );
        }
        Err(e) => panic!("backing file {file} is not a gateway image path: {e}"),
    }
}

/// Parses the fuzzed parameter map and checks the oracles above.
pub fn csi_params(data: &[u8]) {
    let mut f = Fields::new(data);
    let control = f.byte();
    let name = f.text();
    let map = read_map(&mut f, 64);
    let defaults = defaults(control & 1 == 0);
    let fs_type = match (control >> 1) % 3 {
        0 => None,
        1 => Some(Filesystem::Ext4),
        _ => Some(Filesystem::Xfs),
    };
    let volume = VolumeId::from_name(&name)
        .or_else(|_| VolumeId::from_name("pvc-fuzz"))
        .unwrap_or_else(|e| panic!("a plain name maps to a volume id: {e}"));
    check_volume_id(&volume);

    match SnapshotParams::parse(&map, &defaults) {
        Ok(p) => check_volume_path(&p.volume_path, &volume),
        Err(e) => assert_log_safe(
            "snapshot parameter error",
            &e.to_string(),
            LogRule::EscapedAscii {
                max_len: MESSAGE_LIMIT,
            },
        ),
    }
    let params = match StorageParams::parse(&map, &defaults) {
        Ok(p) => p,
        Err(e) => {
            assert_log_safe(
                "parameter error",
                &e.to_string(),
                LogRule::EscapedAscii {
                    max_len: MESSAGE_LIMIT,
                },
            );
            return;
        }
    };
    check_volume_path(&params.volume_path, &volume);
    let fs = fs_type.or(params.fs_type);
    let built = VolumeContext::build(&volume, &params, fs);
    let vc = match VolumeContext::parse(&volume, &built) {
        Ok(vc) => vc,
        Err(e) => panic!("the volume context built at CreateVolume is refused: {e}\n  {built:?}"),
    };
    assert_eq!(
        vc.nvme_address,
        Some(params.nvme_address),
        "address in the context"
    );
    assert_eq!(vc.nvme_port, Some(params.nvme_port), "port in the context");
    assert_eq!(vc.ctrl_loss_tmo, Some(params.connect.ctrl_loss_tmo));
    assert_eq!(vc.reconnect_delay, Some(params.connect.reconnect_delay));
    assert_eq!(vc.keep_alive_tmo, Some(params.connect.keep_alive_tmo));
    assert_eq!(
        vc.migration_timeout_secs,
        Some(params.migration_timeout_secs)
    );
    assert_eq!(vc.fs_type, fs, "filesystem in the context");
    assert_eq!(
        vc.mkfs_options, params.mkfs_options,
        "mkfs options in the context"
    );
    assert_eq!(
        vc.mount_options, params.mount_options,
        "mount options in the context"
    );
    assert_eq!(vc.kube, params.kube, "claim names in the context");
    assert_eq!(
        vc.file_path.as_deref(),
        Some(volume.backing_file(params.volume_path.as_str()).as_str()),
        "backing file in the context"
    );

    let publish = match build_publish_context(&volume, &vc, &defaults, fs) {
        Ok(m) => m,
        Err(e) => panic!("no publish context for a parsed volume context: {e}"),
    };
    let pc = match PublishContext::parse(&volume, &publish) {
        Ok(pc) => pc,
        Err(e) => panic!("the publish context built at ControllerPublish is refused: {e}"),
    };
    match resolve_target(&volume, &pc, &vc) {
        Ok(t) => {
            assert_eq!(t.nqn, volume.nqn(), "target NQN");
            assert_eq!(t.address, params.nvme_address, "target address");
            assert_eq!(t.port, params.nvme_port, "target port");
            assert_eq!(t.connect, params.connect, "connect options");
        }
        Err(e) => panic!("a published volume does not resolve: {e}"),
    }
}
