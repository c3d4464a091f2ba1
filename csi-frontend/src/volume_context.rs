//! The maps a volume carries from the controller to the node: the volume context (stored in
//! the PersistentVolume at CreateVolume) and the publish context (returned by
//! ControllerPublishVolume, handed to NodeStage/NodePublish).
//!
//! The volume-context keys are the Go driver's (`nqn`, `nvmeAddress`, `nvmePort`,
//! `volumePath`, `ctrlLossTmo`, `reconnectDelay`, `keepAliveTmo`, `migrationTimeoutSeconds`,
//! and `rdsAddress` as an address fallback), so that its PersistentVolumes keep working; this
//! driver adds `fsType`, `mkfsOptions`, `mountOptions` and the claim's names. The publish
//! context uses the Go driver's snake_case keys (`nvme_nqn`, `nvme_address`, `nvme_port`,
//! `fs_type`) plus the connect options.
//!
//! Both maps come back from the CO, so both are parsed as untrusted input: every value is
//! validated, unknown keys are refused (except the sidecars' `csi.storage.k8s.io/` keys), and
//! an NQN is accepted only if it is the one this volume id is exported under, so a crafted
//! context cannot make a node connect to another subsystem.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::capabilities::Filesystem;
use crate::ids::{VolumeId, shown};
use crate::params::{self, ConnectOptions, Defaults, KubeNames, StorageParams};

/// Volume-context keys.
pub mod keys {
    pub const NQN: &str = "nqn";
    pub const NVME_ADDRESS: &str = "nvmeAddress";
    pub const RDS_ADDRESS: &str = "rdsAddress";
    pub const NVME_PORT: &str = "nvmePort";
    /// The backing file on the appliance (the Go driver's meaning in a volume context).
    pub const VOLUME_PATH: &str = "volumePath";
    pub const CTRL_LOSS_TMO: &str = "ctrlLossTmo";
    pub const RECONNECT_DELAY: &str = "reconnectDelay";
    pub const KEEP_ALIVE_TMO: &str = "keepAliveTmo";
    pub const MIGRATION_TIMEOUT: &str = "migrationTimeoutSeconds";
    pub const FS_TYPE: &str = "fsType";
    pub const MKFS_OPTIONS: &str = "mkfsOptions";
    pub const MOUNT_OPTIONS: &str = "mountOptions";
}

/// Publish-context keys.
pub mod publish_keys {
    pub const NQN: &str = "nvme_nqn";
    pub const ADDRESS: &str = "nvme_address";
    pub const PORT: &str = "nvme_port";
    pub const FS_TYPE: &str = "fs_type";
    pub const CTRL_LOSS_TMO: &str = "ctrl_loss_tmo";
    pub const RECONNECT_DELAY: &str = "reconnect_delay";
    pub const KEEP_ALIVE_TMO: &str = "keep_alive_tmo";
}

/// Why a context map was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("{map} key {key} has an invalid value {value}: {reason}")]
    Invalid {
        map: &'static str,
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("{map} has an unknown key {key}")]
    Unknown { map: &'static str, key: String },
    #[error(
        "{map} names NQN {nqn}, but volume {volume} is exported as {expected}; the context does not belong to this volume"
    )]
    WrongNqn {
        map: &'static str,
        volume: String,
        nqn: String,
        expected: String,
    },
    #[error(
        "volume {volume}: no NVMe/TCP address in its publish or volume context (nvme_address / nvmeAddress); was it published by this driver's controller?"
    )]
    NoAddress { volume: String },
}

/// A parsed volume context. Every field is optional: a Go-driver volume lacks some of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeContext {
    pub nvme_address: Option<IpAddr>,
    pub nvme_port: Option<u16>,
    pub file_path: Option<String>,
    pub ctrl_loss_tmo: Option<i32>,
    pub reconnect_delay: Option<u32>,
    pub keep_alive_tmo: Option<u32>,
    pub migration_timeout_secs: Option<u32>,
    pub fs_type: Option<Filesystem>,
    pub mkfs_options: Vec<String>,
    pub mount_options: Vec<String>,
    pub kube: KubeNames,
}

const VOLUME_CONTEXT: &str = "volume_context";
const PUBLISH_CONTEXT: &str = "publish_context";

impl VolumeContext {
    /// The volume context CreateVolume returns: what the node needs to reach and prepare the
    /// volume, in the Go driver's keys plus ours.
    pub fn build(
        volume: &VolumeId,
        params: &StorageParams,
        fs_type: Option<Filesystem>,
    ) -> HashMap<String, String> {
        let mut m = HashMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put(keys::NQN, volume.nqn());
        put(keys::NVME_ADDRESS, params.nvme_address.to_string());
        put(keys::NVME_PORT, params.nvme_port.to_string());
        put(
            keys::VOLUME_PATH,
            volume.backing_file(params.volume_path.as_str()),
        );
        put(
            keys::CTRL_LOSS_TMO,
            params.connect.ctrl_loss_tmo.to_string(),
        );
        put(
            keys::RECONNECT_DELAY,
            params.connect.reconnect_delay.to_string(),
        );
        put(
            keys::KEEP_ALIVE_TMO,
            params.connect.keep_alive_tmo.to_string(),
        );
        put(
            keys::MIGRATION_TIMEOUT,
            params.migration_timeout_secs.to_string(),
        );
        if let Some(fs) = fs_type {
            put(keys::FS_TYPE, fs.as_str().to_string());
        }
        if !params.mkfs_options.is_empty() {
            put(keys::MKFS_OPTIONS, params.mkfs_options.join(" "));
        }
        if !params.mount_options.is_empty() {
            put(keys::MOUNT_OPTIONS, params.mount_options.join(","));
        }
        if let Some(v) = &params.kube.pvc_name {
            put(params::keys::PVC_NAME, v.clone());
        }
        if let Some(v) = &params.kube.pvc_namespace {
            put(params::keys::PVC_NAMESPACE, v.clone());
        }
        if let Some(v) = &params.kube.pv_name {
            put(params::keys::PV_NAME, v.clone());
        }
        m
    }

    /// Parses the volume context of `volume` as the CO hands it back.
    ///
    /// CSI spec, NodeStageVolumeRequest.volume_context: "Volume context as returned by CO in
    /// CreateVolumeRequest. This field is OPTIONAL and MUST match the volume_context of the
    /// volume identified by `volume_id`."
    pub fn parse(
        volume: &VolumeId,
        map: &HashMap<String, String>,
    ) -> Result<VolumeContext, ContextError> {
        let mut vc = VolumeContext {
            kube: KubeNames::from_map(map),
            ..VolumeContext::default()
        };
        let mut rds_address = None;
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort();
        for (key, value) in entries {
            let invalid = |k: &'static str, reason: String| ContextError::Invalid {
                map: VOLUME_CONTEXT,
                key: k,
                value: shown(value),
                reason,
            };
            match key.as_str() {
                keys::NQN => check_nqn(VOLUME_CONTEXT, volume, value)?,
                keys::NVME_ADDRESS => {
                    vc.nvme_address =
                        Some(params::parse_ip(value).map_err(|r| invalid(keys::NVME_ADDRESS, r))?);
                }
                keys::RDS_ADDRESS => {
                    rds_address =
                        Some(params::parse_ip(value).map_err(|r| invalid(keys::RDS_ADDRESS, r))?);
                }
                keys::NVME_PORT => {
                    vc.nvme_port =
                        Some(params::parse_port(value).map_err(|r| invalid(keys::NVME_PORT, r))?);
                }
                keys::VOLUME_PATH => {
                    let ok = value.ends_with(&format!("/{volume}.img"))
                        && value
                            .strip_suffix(&format!("/{volume}.img"))
                            .is_some_and(|dir| params::VolumePath::parse(dir).is_ok());
                    if !ok {
                        return Err(invalid(
                            keys::VOLUME_PATH,
                            format!("expected <directory>/{volume}.img"),
                        ));
                    }
                    vc.file_path = Some(value.clone());
                }
                keys::CTRL_LOSS_TMO => {
                    vc.ctrl_loss_tmo = Some(
                        params::parse_ctrl_loss_tmo(value)
                            .map_err(|r| invalid(keys::CTRL_LOSS_TMO, r))?,
                    );
                }
                keys::RECONNECT_DELAY => {
                    vc.reconnect_delay = Some(
                        params::parse_reconnect_delay(value)
                            .map_err(|r| invalid(keys::RECONNECT_DELAY, r))?,
                    );
                }
                keys::KEEP_ALIVE_TMO => {
                    vc.keep_alive_tmo = Some(
                        params::parse_keep_alive_tmo(value)
                            .map_err(|r| invalid(keys::KEEP_ALIVE_TMO, r))?,
                    );
                }
                keys::MIGRATION_TIMEOUT => {
                    vc.migration_timeout_secs = Some(
                        params::parse_migration_timeout(value)
                            .map_err(|r| invalid(keys::MIGRATION_TIMEOUT, r))?,
                    );
                }
                keys::FS_TYPE => {
                    vc.fs_type =
                        Some(params::parse_fs_type(value).map_err(|r| invalid(keys::FS_TYPE, r))?);
                }
                keys::MKFS_OPTIONS => {
                    vc.mkfs_options = params::parse_mkfs_options(value)
                        .map_err(|r| invalid(keys::MKFS_OPTIONS, r))?;
                }
                keys::MOUNT_OPTIONS => {
                    vc.mount_options = params::parse_mount_options(value)
                        .map_err(|r| invalid(keys::MOUNT_OPTIONS, r))?;
                }
                k if k.starts_with(params::keys::SIDECAR_PREFIX) => {}
                other => {
                    return Err(ContextError::Unknown {
                        map: VOLUME_CONTEXT,
                        key: shown(other),
                    });
                }
            }
        }
        vc.nvme_address = vc.nvme_address.or(rds_address);
        Ok(vc)
    }

    /// The connect options this context asks for, the Go driver's defaults filling the gaps.
    pub fn connect(&self, defaults: ConnectOptions) -> ConnectOptions {
        ConnectOptions {
            ctrl_loss_tmo: self.ctrl_loss_tmo.unwrap_or(defaults.ctrl_loss_tmo),
            reconnect_delay: self.reconnect_delay.unwrap_or(defaults.reconnect_delay),
            keep_alive_tmo: self.keep_alive_tmo.unwrap_or(defaults.keep_alive_tmo),
        }
    }
}

/// Everything a node needs to connect to a volume's NVMe/TCP subsystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub nqn: String,
    pub address: IpAddr,
    pub port: u16,
    pub connect: ConnectOptions,
}

impl Target {
    /// The helper API's form.
    pub fn to_helper(&self) -> rds_csi_proto::helper::Target {
        rds_csi_proto::helper::Target {
            nqn: self.nqn.clone(),
            address: self.address.to_string(),
            port: u32::from(self.port),
            ctrl_loss_tmo: self.connect.ctrl_loss_tmo,
            reconnect_delay: self.connect.reconnect_delay,
            keep_alive_tmo: self.connect.keep_alive_tmo,
        }
    }
}

/// The publish context ControllerPublishVolume returns: the connection target and the
/// filesystem, the controller's flags filling what an older volume context lacks.
pub fn build_publish_context(
    volume: &VolumeId,
    vc: &VolumeContext,
    defaults: &Defaults,
    fs_type: Option<Filesystem>,
) -> Result<HashMap<String, String>, ContextError> {
    let address =
        vc.nvme_address
            .or(defaults.nvme_address)
            .ok_or_else(|| ContextError::NoAddress {
                volume: volume.to_string(),
            })?;
    let connect = vc.connect(defaults.connect);
    let mut m = HashMap::new();
    m.insert(publish_keys::NQN.to_string(), volume.nqn());
    m.insert(publish_keys::ADDRESS.to_string(), address.to_string());
    m.insert(
        publish_keys::PORT.to_string(),
        vc.nvme_port.unwrap_or(defaults.nvme_port).to_string(),
    );
    if let Some(fs) = fs_type.or(vc.fs_type) {
        m.insert(publish_keys::FS_TYPE.to_string(), fs.as_str().to_string());
    }
    m.insert(
        publish_keys::CTRL_LOSS_TMO.to_string(),
        connect.ctrl_loss_tmo.to_string(),
    );
    m.insert(
        publish_keys::RECONNECT_DELAY.to_string(),
        connect.reconnect_delay.to_string(),
    );
    m.insert(
        publish_keys::KEEP_ALIVE_TMO.to_string(),
        connect.keep_alive_tmo.to_string(),
    );
    Ok(m)
}

/// A parsed publish context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishContext {
    pub address: Option<IpAddr>,
    pub port: Option<u16>,
    pub fs_type: Option<Filesystem>,
    pub ctrl_loss_tmo: Option<i32>,
    pub reconnect_delay: Option<u32>,
    pub keep_alive_tmo: Option<u32>,
}

impl PublishContext {
    /// Parses the publish context of `volume`.
    ///
    /// CSI spec, NodeStageVolumeRequest.publish_context: "The CO SHALL set this field to the
    /// value returned by `ControllerPublishVolume` if the corresponding Controller Plugin has
    /// `PUBLISH_UNPUBLISH_VOLUME` controller capability".
    pub fn parse(
        volume: &VolumeId,
        map: &HashMap<String, String>,
    ) -> Result<PublishContext, ContextError> {
        let mut pc = PublishContext::default();
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort();
        for (key, value) in entries {
            let invalid = |k: &'static str, reason: String| ContextError::Invalid {
                map: PUBLISH_CONTEXT,
                key: k,
                value: shown(value),
                reason,
            };
            match key.as_str() {
                publish_keys::NQN => check_nqn(PUBLISH_CONTEXT, volume, value)?,
                publish_keys::ADDRESS => {
                    pc.address = Some(
                        params::parse_ip(value).map_err(|r| invalid(publish_keys::ADDRESS, r))?,
                    );
                }
                publish_keys::PORT => {
                    pc.port = Some(
                        params::parse_port(value).map_err(|r| invalid(publish_keys::PORT, r))?,
                    );
                }
                publish_keys::FS_TYPE => {
                    pc.fs_type = Some(
                        params::parse_fs_type(value)
                            .map_err(|r| invalid(publish_keys::FS_TYPE, r))?,
                    );
                }
                publish_keys::CTRL_LOSS_TMO => {
                    pc.ctrl_loss_tmo = Some(
                        params::parse_ctrl_loss_tmo(value)
                            .map_err(|r| invalid(publish_keys::CTRL_LOSS_TMO, r))?,
                    );
                }
                publish_keys::RECONNECT_DELAY => {
                    pc.reconnect_delay = Some(
                        params::parse_reconnect_delay(value)
                            .map_err(|r| invalid(publish_keys::RECONNECT_DELAY, r))?,
                    );
                }
                publish_keys::KEEP_ALIVE_TMO => {
                    pc.keep_alive_tmo = Some(
                        params::parse_keep_alive_tmo(value)
                            .map_err(|r| invalid(publish_keys::KEEP_ALIVE_TMO, r))?,
                    );
                }
                other => {
                    return Err(ContextError::Unknown {
                        map: PUBLISH_CONTEXT,
                        key: shown(other),
                    });
                }
            }
        }
        Ok(pc)
    }
}

/// The connection target of `volume` on a node: the publish context first (the controller
/// that attached it wrote it), the volume context for what it lacks (volumes published by
/// the Go driver), the Go driver's defaults for the connect options.
pub fn resolve_target(
    volume: &VolumeId,
    pc: &PublishContext,
    vc: &VolumeContext,
) -> Result<Target, ContextError> {
    let address = pc
        .address
        .or(vc.nvme_address)
        .ok_or_else(|| ContextError::NoAddress {
            volume: volume.to_string(),
        })?;
    let base = vc.connect(ConnectOptions::default());
    Ok(Target {
        nqn: volume.nqn(),
        address,
        port: pc.port.or(vc.nvme_port).unwrap_or(DEFAULT_NVME_PORT),
        connect: ConnectOptions {
            ctrl_loss_tmo: pc.ctrl_loss_tmo.unwrap_or(base.ctrl_loss_tmo),
            reconnect_delay: pc.reconnect_delay.unwrap_or(base.reconnect_delay),
            keep_alive_tmo: pc.keep_alive_tmo.unwrap_or(base.keep_alive_tmo),
        },
    })
}

/// The standard NVMe/TCP port, used when neither context names one.
pub const DEFAULT_NVME_PORT: u16 = 4420;

fn check_nqn(map: &'static str, volume: &VolumeId, value: &str) -> Result<(), ContextError> {
    let expected = volume.nqn();
    if value == expected {
        Ok(())
    } else {
        Err(ContextError::WrongNqn {
            map,
            volume: volume.to_string(),
            nqn: shown(value),
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::params::VolumePath;

    fn vol() -> VolumeId {
        VolumeId::parse("volume_id", "pvc-11111111-2222-3333-4444-555555555555").unwrap()
    }

    fn defaults() -> Defaults {
        Defaults {
            nvme_address: Some("10.0.0.1".parse().unwrap()),
            nvme_port: 4420,
            volume_path: VolumePath::parse("/storage-pool/kubernetes-volumes").unwrap(),
            migration_timeout_secs: 300,
            connect: ConnectOptions::default(),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn built_context_parses_back() {
        let mut params = StorageParams::parse(
            &map(&[
                ("nvmeAddress", "10.42.68.1"),
                ("ctrlLossTmo", "60"),
                ("mkfsOptions", "-m 0"),
                ("mountOptions", "noatime,discard"),
                ("csi.storage.k8s.io/pvc/name", "data"),
                ("csi.storage.k8s.io/pvc/namespace", "db"),
            ]),
            &defaults(),
        )
        .unwrap();
        params.migration_timeout_secs = 120;
        let built = VolumeContext::build(&vol(), &params, Some(Filesystem::Xfs));
        assert_eq!(
            built["volumePath"],
            "/storage-pool/kubernetes-volumes/pvc-11111111-2222-3333-4444-555555555555.img"
        );
        let vc = VolumeContext::parse(&vol(), &built).unwrap();
        assert_eq!(vc.nvme_address.unwrap().to_string(), "10.42.68.1");
        assert_eq!(vc.nvme_port, Some(4420));
        assert_eq!(vc.ctrl_loss_tmo, Some(60));
        assert_eq!(vc.migration_timeout_secs, Some(120));
        assert_eq!(vc.fs_type, Some(Filesystem::Xfs));
        assert_eq!(vc.mkfs_options, ["-m", "0"]);
        assert_eq!(vc.mount_options, ["noatime", "discard"]);
        assert_eq!(vc.kube.pvc().as_deref(), Some("db/data"));
    }

    #[test]
    fn go_driver_volume_context_parses() {
        // The keys a PersistentVolume made by the Go driver carries.
        let go = map(&[
            ("rdsAddress", "10.42.241.3"),
            ("nvmeAddress", "10.42.68.1"),
            ("nvmePort", "4420"),
            (
                "nqn",
                "nqn.2000-02.com.mikrotik:pvc-11111111-2222-3333-4444-555555555555",
            ),
            (
                "volumePath",
                "/storage-pool/metal-csi/pvc-11111111-2222-3333-4444-555555555555.img",
            ),
            ("ctrlLossTmo", "-1"),
            ("reconnectDelay", "5"),
            ("keepAliveTmo", "0"),
            ("migrationTimeoutSeconds", "300"),
            ("csi.storage.k8s.io/pod.name", "virt-launcher-x"),
        ]);
        let vc = VolumeContext::parse(&vol(), &go).unwrap();
        assert_eq!(vc.nvme_address.unwrap().to_string(), "10.42.68.1");
        let t = resolve_target(&vol(), &PublishContext::default(), &vc).unwrap();
        assert_eq!(t.port, 4420);
        assert_eq!(t.connect.ctrl_loss_tmo, -1);
        // Without nvmeAddress the Go node fell back to rdsAddress; so does this one.
        let mut older = go.clone();
        older.remove("nvmeAddress");
        let vc = VolumeContext::parse(&vol(), &older).unwrap();
        assert_eq!(vc.nvme_address.unwrap().to_string(), "10.42.241.3");
    }

    #[test]
    fn a_foreign_nqn_is_refused() {
        let err = VolumeContext::parse(
            &vol(),
            &map(&[("nqn", "nqn.2000-02.com.mikrotik:root-disk-of-node-3")]),
        )
        .unwrap_err();
        assert!(matches!(err, ContextError::WrongNqn { .. }), "{err}");
        let err = PublishContext::parse(
            &vol(),
            &map(&[(
                "nvme_nqn",
                "nqn.2000-02.com.mikrotik:pvc-99999999-2222-3333-4444-555555555555",
            )]),
        )
        .unwrap_err();
        assert!(matches!(err, ContextError::WrongNqn { .. }), "{err}");
    }

    #[test]
    fn bad_and_unknown_keys_are_refused() {
        for (k, v) in [
            ("nvmeAddress", "rds.example"),
            ("nvmePort", "0"),
            ("volumePath", "/etc/passwd"),
            (
                "volumePath",
                "/x/../pvc-11111111-2222-3333-4444-555555555555.img",
            ),
            ("fsType", "ntfs"),
            ("mkfsOptions", "-L `id`"),
            ("reconnectDelay", "0"),
        ] {
            assert!(
                matches!(
                    VolumeContext::parse(&vol(), &map(&[(k, v)])),
                    Err(ContextError::Invalid { .. })
                ),
                "{k}={v}"
            );
        }
        assert!(matches!(
            VolumeContext::parse(&vol(), &map(&[("surprise", "1")])),
            Err(ContextError::Unknown { .. })
        ));
        assert!(matches!(
            PublishContext::parse(&vol(), &map(&[("nvmeAddress", "10.0.0.1")])),
            Err(ContextError::Unknown { .. })
        ));
    }

    #[test]
    fn publish_context_round_trips_and_wins_over_the_volume_context() {
        let vc = VolumeContext::parse(
            &vol(),
            &map(&[("nvmeAddress", "10.0.0.5"), ("keepAliveTmo", "10")]),
        )
        .unwrap();
        let built =
            build_publish_context(&vol(), &vc, &defaults(), Some(Filesystem::Ext4)).unwrap();
        assert_eq!(built["nvme_nqn"], vol().nqn());
        assert_eq!(built["nvme_address"], "10.0.0.5");
        assert_eq!(built["fs_type"], "ext4");
        let pc = PublishContext::parse(&vol(), &built).unwrap();
        let t = resolve_target(&vol(), &pc, &VolumeContext::default()).unwrap();
        assert_eq!(t.address.to_string(), "10.0.0.5");
        assert_eq!(t.connect.keep_alive_tmo, 10);
        assert_eq!(t.nqn, vol().nqn());
        // A publish context address beats the volume context's.
        let pc = PublishContext::parse(&vol(), &map(&[("nvme_address", "10.0.0.7")])).unwrap();
        assert_eq!(
            resolve_target(&vol(), &pc, &vc)
                .unwrap()
                .address
                .to_string(),
            "10.0.0.7"
        );
    }

    #[test]
    fn no_address_anywhere_is_an_error() {
        let none = Defaults {
            nvme_address: None,
            ..defaults()
        };
        assert!(matches!(
            build_publish_context(&vol(), &VolumeContext::default(), &none, None),
            Err(ContextError::NoAddress { .. })
        ));
        assert!(matches!(
            resolve_target(
                &vol(),
                &PublishContext::default(),
                &VolumeContext::default()
            ),
            Err(ContextError::NoAddress { .. })
        ));
        // The flag fills the gap of a static PV with an empty context.
        let m =
            build_publish_context(&vol(), &VolumeContext::default(), &defaults(), None).unwrap();
        assert_eq!(m["nvme_address"], "10.0.0.1");
        assert!(!m.contains_key("fs_type"));
    }
}
