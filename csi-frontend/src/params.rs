//! StorageClass parameters, parsed once into a typed value.
//!
//! The parameter names are the Go driver's, so its StorageClasses keep working: `volumePath`,
//! `nvmeAddress`, `nvmePort`, `ctrlLossTmo`, `reconnectDelay`, `keepAliveTmo`,
//! `migrationTimeoutSeconds`, plus the new `mkfsOptions` and `mountOptions`. Its older keys are
//! understood too: `rdsAddress` (the NVMe address when `nvmeAddress` is absent), `fsType`
//! (the filesystem when the capability names none), `nqnPrefix` (only the one prefix this
//! driver exports under) and `sshPort` (accepted and ignored: SSH belongs to rds-gateway).
//!
//! Keys under `csi.storage.k8s.io/` come from the CSI sidecars (`--extra-create-metadata`):
//! they are accepted, and the PVC name, namespace and PV name are kept so that logs, spans
//! and error messages can name the claim a user knows. Any other key, or a value that does
//! not parse, is refused with a message naming the key.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::capabilities::Filesystem;
use crate::ids::{NQN_PREFIX, shown};

/// Parameter keys.
pub mod keys {
    pub const VOLUME_PATH: &str = "volumePath";
    pub const NVME_ADDRESS: &str = "nvmeAddress";
    pub const NVME_PORT: &str = "nvmePort";
    pub const CTRL_LOSS_TMO: &str = "ctrlLossTmo";
    pub const RECONNECT_DELAY: &str = "reconnectDelay";
    pub const KEEP_ALIVE_TMO: &str = "keepAliveTmo";
    pub const MIGRATION_TIMEOUT: &str = "migrationTimeoutSeconds";
    pub const MKFS_OPTIONS: &str = "mkfsOptions";
    pub const MOUNT_OPTIONS: &str = "mountOptions";
    /// Go driver: the appliance address, also its NVMe address when `nvmeAddress` is absent.
    pub const RDS_ADDRESS: &str = "rdsAddress";
    /// Go driver: the filesystem.
    pub const FS_TYPE: &str = "fsType";
    /// Go driver: the NQN prefix (only ours is accepted).
    pub const NQN_PREFIX: &str = "nqnPrefix";
    /// Go driver: the SSH port (ignored here).
    pub const SSH_PORT: &str = "sshPort";
    /// The prefix of the keys the CSI sidecars add.
    pub const SIDECAR_PREFIX: &str = "csi.storage.k8s.io/";
    pub const PVC_NAME: &str = "csi.storage.k8s.io/pvc/name";
    pub const PVC_NAMESPACE: &str = "csi.storage.k8s.io/pvc/namespace";
    pub const PV_NAME: &str = "csi.storage.k8s.io/pv/name";
}

/// Every key a StorageClass may use, for the "unknown key" message.
const KNOWN: &str = "volumePath, nvmeAddress, nvmePort, ctrlLossTmo, reconnectDelay, keepAliveTmo, \
migrationTimeoutSeconds, mkfsOptions, mountOptions (and the Go driver's rdsAddress, fsType, nqnPrefix, sshPort)";

/// Shortest and longest live-migration window accepted, in seconds (the Go driver's bounds).
pub const MIGRATION_TIMEOUT_RANGE: (u32, u32) = (30, 3600);

/// Why a parameter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown StorageClass parameter {key}; the known parameters are: {KNOWN}")]
    Unknown { key: String },
    #[error("StorageClass parameter {key}={value} is invalid: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "no NVMe/TCP address for the volume: set the StorageClass parameter nvmeAddress, or start the controller with --default-nvme-address"
    )]
    NoAddress,
}

/// NVMe/TCP connection tuning, as the kernel's fabrics options take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Seconds the kernel keeps reconnecting; -1 for ever, 0 for the kernel default.
    pub ctrl_loss_tmo: i32,
    /// Seconds between reconnect attempts (at least 1).
    pub reconnect_delay: u32,
    /// Keep-alive timeout in seconds; 0 for the kernel default.
    pub keep_alive_tmo: u32,
}

impl Default for ConnectOptions {
    /// The Go driver's defaults: reconnect for ever, every 5 s, kernel keep-alive.
    fn default() -> Self {
        ConnectOptions {
            ctrl_loss_tmo: -1,
            reconnect_delay: 5,
            keep_alive_tmo: 0,
        }
    }
}

/// An appliance directory holding backing files, normalised to `/a/b` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePath(String);

impl VolumePath {
    /// Validates an appliance path: `/`-separated components of letters, digits, `.`, `_`,
    /// `-`; no empty, `.` or `..` component; at most 80 bytes a component and 132 in all. The
    /// leading `/` is optional.
    pub fn parse(raw: &str) -> Result<VolumePath, String> {
        let rel = raw.strip_prefix('/').unwrap_or(raw);
        if rel.is_empty() {
            return Err("must name a directory, not be empty or '/'".into());
        }
        // The gateway's limit for a pool path: room for `/<slot>.img` within its 200-byte paths.
        if rel.len() > 132 {
            return Err("longer than 132 bytes".into());
        }
        for c in rel.split('/') {
            if c.is_empty() || c == "." || c == ".." {
                return Err("must not contain empty, '.' or '..' components".into());
            }
            // The gateway's limit for one component of an appliance path.
            if c.len() > 80 {
                return Err("a component is longer than 80 bytes".into());
            }
            if !c
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err("components may only use letters, digits, '.', '_' and '-'".into());
            }
        }
        Ok(VolumePath(format!("/{rel}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the controller falls back to when a StorageClass leaves a parameter out; set by flags.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub nvme_address: Option<IpAddr>,
    pub nvme_port: u16,
    pub volume_path: VolumePath,
    pub migration_timeout_secs: u32,
    pub connect: ConnectOptions,
}

/// The Kubernetes objects a request is about, when the sidecars said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeNames {
    pub pvc_name: Option<String>,
    pub pvc_namespace: Option<String>,
    pub pv_name: Option<String>,
}

impl KubeNames {
    /// Reads the sidecar keys out of a parameter or volume-context map.
    pub fn from_map(map: &HashMap<String, String>) -> KubeNames {
        let get = |k: &str| map.get(k).filter(|v| !v.is_empty()).cloned();
        KubeNames {
            pvc_name: get(keys::PVC_NAME),
            pvc_namespace: get(keys::PVC_NAMESPACE),
            pv_name: get(keys::PV_NAME),
        }
    }

    /// `namespace/name` of the claim, when known.
    pub fn pvc(&self) -> Option<String> {
        match (&self.pvc_namespace, &self.pvc_name) {
            (Some(ns), Some(n)) => Some(format!("{ns}/{n}")),
            (None, Some(n)) => Some(n.clone()),
            _ => None,
        }
    }
}

/// A StorageClass, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageParams {
    pub volume_path: VolumePath,
    pub nvme_address: IpAddr,
    pub nvme_port: u16,
    pub connect: ConnectOptions,
    pub migration_timeout_secs: u32,
    pub mkfs_options: Vec<String>,
    pub mount_options: Vec<String>,
    /// The Go driver's `fsType` parameter, used when a capability names no filesystem.
    pub fs_type: Option<Filesystem>,
    pub kube: KubeNames,
}

impl StorageParams {
    /// Parses CreateVolume / GetCapacity / ValidateVolumeCapabilities parameters.
    ///
    /// CSI spec, CreateVolumeRequest.parameters: "Plugin specific creation-time parameters
    /// passed in as opaque key-value pairs. This field is OPTIONAL. The Plugin is responsible
    /// for parsing and validating these parameters."
    pub fn parse(
        map: &HashMap<String, String>,
        defaults: &Defaults,
    ) -> Result<StorageParams, ParamError> {
        let mut p = StorageParams {
            volume_path: defaults.volume_path.clone(),
            nvme_address: IpAddr::from([0, 0, 0, 0]),
            nvme_port: defaults.nvme_port,
            connect: defaults.connect,
            migration_timeout_secs: defaults.migration_timeout_secs,
            mkfs_options: Vec::new(),
            mount_options: Vec::new(),
            fs_type: None,
            kube: KubeNames::from_map(map),
        };
        let mut address = None;
        let mut rds_address = None;
        // Sorted, so that the first error reported does not depend on hash order.
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort();
        for (key, value) in entries {
            let invalid = |k: &'static str, reason: String| ParamError::Invalid {
                key: k,
                value: shown(value),
                reason,
            };
            match key.as_str() {
                keys::VOLUME_PATH => {
                    p.volume_path =
                        VolumePath::parse(value).map_err(|r| invalid(keys::VOLUME_PATH, r))?;
                }
                keys::NVME_ADDRESS => {
                    address = Some(parse_ip(value).map_err(|r| invalid(keys::NVME_ADDRESS, r))?);
                }
                keys::RDS_ADDRESS => {
                    rds_address = Some(parse_ip(value).map_err(|r| invalid(keys::RDS_ADDRESS, r))?);
                }
                keys::NVME_PORT => {
                    p.nvme_port = parse_port(value).map_err(|r| invalid(keys::NVME_PORT, r))?;
                }
                keys::SSH_PORT => {
                    parse_port(value).map_err(|r| invalid(keys::SSH_PORT, r))?;
                }
                keys::CTRL_LOSS_TMO => {
                    p.connect.ctrl_loss_tmo =
                        parse_ctrl_loss_tmo(value).map_err(|r| invalid(keys::CTRL_LOSS_TMO, r))?;
                }
                keys::RECONNECT_DELAY => {
                    p.connect.reconnect_delay = parse_reconnect_delay(value)
                        .map_err(|r| invalid(keys::RECONNECT_DELAY, r))?;
                }
                keys::KEEP_ALIVE_TMO => {
                    p.connect.keep_alive_tmo = parse_keep_alive_tmo(value)
                        .map_err(|r| invalid(keys::KEEP_ALIVE_TMO, r))?;
                }
                keys::MIGRATION_TIMEOUT => {
                    p.migration_timeout_secs = parse_migration_timeout(value)
                        .map_err(|r| invalid(keys::MIGRATION_TIMEOUT, r))?;
                }
                keys::MKFS_OPTIONS => {
                    p.mkfs_options =
                        parse_mkfs_options(value).map_err(|r| invalid(keys::MKFS_OPTIONS, r))?;
                }
                keys::MOUNT_OPTIONS => {
                    p.mount_options =
                        parse_mount_options(value).map_err(|r| invalid(keys::MOUNT_OPTIONS, r))?;
                }
                keys::FS_TYPE => {
                    p.fs_type = Some(parse_fs_type(value).map_err(|r| invalid(keys::FS_TYPE, r))?);
                }
                keys::NQN_PREFIX => {
                    // The Go driver documented both forms of the one prefix it supported.
                    let ours = value == NQN_PREFIX || value == &format!("{NQN_PREFIX}:pvc-");
                    if !ours {
                        return Err(invalid(
                            keys::NQN_PREFIX,
                            format!(
                                "this driver always exports volumes under {NQN_PREFIX}:<volume id>"
                            ),
                        ));
                    }
                }
                k if k.starts_with(keys::SIDECAR_PREFIX) => {}
                other => return Err(ParamError::Unknown { key: shown(other) }),
            }
        }
        p.nvme_address = address
            .or(rds_address)
            .or(defaults.nvme_address)
            .ok_or(ParamError::NoAddress)?;
        Ok(p)
    }
}

/// Parameters of a VolumeSnapshotClass: only where the snapshot file goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotParams {
    pub volume_path: VolumePath,
}

impl SnapshotParams {
    /// Parses CreateSnapshot parameters (`volumePath` and sidecar keys).
    pub fn parse(
        map: &HashMap<String, String>,
        defaults: &Defaults,
    ) -> Result<SnapshotParams, ParamError> {
        let mut volume_path = defaults.volume_path.clone();
        let mut entries: Vec<_> = map.iter().collect();
        entries.sort();
        for (key, value) in entries {
            match key.as_str() {
                keys::VOLUME_PATH => {
                    volume_path =
                        VolumePath::parse(value).map_err(|reason| ParamError::Invalid {
                            key: keys::VOLUME_PATH,
                            value: shown(value),
                            reason,
                        })?;
                }
                k if k.starts_with(keys::SIDECAR_PREFIX) => {}
                other => return Err(ParamError::Unknown { key: shown(other) }),
            }
        }
        Ok(SnapshotParams { volume_path })
    }
}

/// An IP address (the kernel's `traddr` takes no host names).
pub fn parse_ip(raw: &str) -> Result<IpAddr, String> {
    raw.parse()
        .map_err(|_| "expected an IPv4 or IPv6 address (host names are not resolved)".into())
}

/// A TCP port, 1-65535.
pub fn parse_port(raw: &str) -> Result<u16, String> {
    match raw.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err("expected a TCP port between 1 and 65535".into()),
    }
}

/// `ctrlLossTmo`: -1 (reconnect for ever), 0 (kernel default) or a number of seconds.
pub fn parse_ctrl_loss_tmo(raw: &str) -> Result<i32, String> {
    match raw.parse::<i32>() {
        Ok(v) if v >= -1 => Ok(v),
        _ => Err(
            "expected -1 (reconnect for ever), 0 (kernel default) or a number of seconds".into(),
        ),
    }
}

/// `reconnectDelay`: 1-3600 seconds.
pub fn parse_reconnect_delay(raw: &str) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(v) if (1..=3600).contains(&v) => Ok(v),
        _ => Err("expected a number of seconds between 1 and 3600".into()),
    }
}

/// `keepAliveTmo`: 0 (kernel default) to 3600 seconds.
pub fn parse_keep_alive_tmo(raw: &str) -> Result<u32, String> {
    match raw.parse::<u32>() {
        Ok(v) if v <= 3600 => Ok(v),
        _ => Err("expected 0 (kernel default) or a number of seconds up to 3600".into()),
    }
}

/// `migrationTimeoutSeconds`: 30-3600.
pub fn parse_migration_timeout(raw: &str) -> Result<u32, String> {
    let (lo, hi) = MIGRATION_TIMEOUT_RANGE;
    match raw.parse::<u32>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected a number of seconds between {lo} and {hi}"
        )),
    }
}

/// `fsType`: ext4 or xfs.
pub fn parse_fs_type(raw: &str) -> Result<Filesystem, String> {
    Filesystem::parse(raw).ok_or_else(|| "expected ext4 or xfs".into())
}

/// `mkfsOptions`: whitespace-separated mkfs arguments such as `-m 0 -E lazy_itable_init=0`.
/// Each must be plain (letters, digits, `_ = . , : + -`); the helper checks them against its
/// allow-list before running mkfs.
pub fn parse_mkfs_options(raw: &str) -> Result<Vec<String>, String> {
    let opts: Vec<String> = raw.split_whitespace().map(str::to_string).collect();
    if opts.len() > 32 {
        return Err("more than 32 arguments".into());
    }
    for o in &opts {
        let ok = o.len() <= 128
            && o.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'_' | b'=' | b'.' | b',' | b':' | b'+' | b'-')
            });
        if !ok {
            return Err(format!(
                "argument {} may only use letters, digits and _ = . , : + -",
                shown(o)
            ));
        }
    }
    Ok(opts)
}

/// `mountOptions`: comma-separated mount options such as `noatime,discard`.
pub fn parse_mount_options(raw: &str) -> Result<Vec<String>, String> {
    let opts: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    if opts.len() > 32 {
        return Err("more than 32 options".into());
    }
    for o in &opts {
        let ok = o.len() <= 128
            && o.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'=' | b'.' | b':' | b'+' | b'-')
            });
        if !ok {
            return Err(format!(
                "option {} may only use letters, digits and _ = . : + -",
                shown(o)
            ));
        }
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

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
    fn empty_parameters_take_the_defaults() {
        let p = StorageParams::parse(&HashMap::new(), &defaults()).unwrap();
        assert_eq!(p.volume_path.as_str(), "/storage-pool/kubernetes-volumes");
        assert_eq!(p.nvme_address.to_string(), "10.0.0.1");
        assert_eq!(p.nvme_port, 4420);
        assert_eq!(p.connect, ConnectOptions::default());
        assert_eq!(p.migration_timeout_secs, 300);
        assert!(p.mkfs_options.is_empty() && p.mount_options.is_empty());
        assert_eq!(p.fs_type, None);
    }

    #[test]
    fn every_parameter_is_parsed() {
        let p = StorageParams::parse(
            &map(&[
                ("volumePath", "storage-pool/metal-csi"),
                ("nvmeAddress", "10.42.68.1"),
                ("nvmePort", "4421"),
                ("ctrlLossTmo", "600"),
                ("reconnectDelay", "2"),
                ("keepAliveTmo", "30"),
                ("migrationTimeoutSeconds", "900"),
                ("mkfsOptions", "-m 0  -E lazy_itable_init=0"),
                ("mountOptions", "noatime, discard"),
                ("fsType", "xfs"),
                ("csi.storage.k8s.io/pvc/name", "data"),
                ("csi.storage.k8s.io/pvc/namespace", "db"),
                ("csi.storage.k8s.io/pv/name", "pvc-x"),
                ("csi.storage.k8s.io/something-new", "kept quiet"),
            ]),
            &defaults(),
        )
        .unwrap();
        assert_eq!(p.volume_path.as_str(), "/storage-pool/metal-csi");
        assert_eq!(p.nvme_address.to_string(), "10.42.68.1");
        assert_eq!(p.nvme_port, 4421);
        assert_eq!(
            p.connect,
            ConnectOptions {
                ctrl_loss_tmo: 600,
                reconnect_delay: 2,
                keep_alive_tmo: 30
            }
        );
        assert_eq!(p.migration_timeout_secs, 900);
        assert_eq!(p.mkfs_options, ["-m", "0", "-E", "lazy_itable_init=0"]);
        assert_eq!(p.mount_options, ["noatime", "discard"]);
        assert_eq!(p.fs_type, Some(Filesystem::Xfs));
        assert_eq!(p.kube.pvc().as_deref(), Some("db/data"));
        assert_eq!(p.kube.pv_name.as_deref(), Some("pvc-x"));
    }

    #[test]
    fn go_driver_storage_classes_still_parse() {
        // The StorageClasses its documentation shows.
        let p = StorageParams::parse(
            &map(&[
                ("rdsAddress", "10.42.68.1"),
                ("nvmePort", "4420"),
                ("sshPort", "22"),
                ("fsType", "ext4"),
                ("volumePath", "/storage-pool/kubernetes-volumes"),
                ("nqnPrefix", "nqn.2000-02.com.mikrotik"),
            ]),
            &Defaults {
                nvme_address: None,
                ..defaults()
            },
        )
        .unwrap();
        assert_eq!(p.nvme_address.to_string(), "10.42.68.1");
        assert_eq!(p.fs_type, Some(Filesystem::Ext4));
        // nvmeAddress wins over rdsAddress.
        let p = StorageParams::parse(
            &map(&[("rdsAddress", "10.0.0.9"), ("nvmeAddress", "10.0.0.8")]),
            &defaults(),
        )
        .unwrap();
        assert_eq!(p.nvme_address.to_string(), "10.0.0.8");
        assert!(
            StorageParams::parse(
                &map(&[("nqnPrefix", "nqn.2000-02.com.mikrotik:pvc-")]),
                &defaults()
            )
            .is_ok()
        );
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err =
            StorageParams::parse(&map(&[("nvmeAdress", "10.0.0.1")]), &defaults()).unwrap_err();
        assert!(matches!(&err, ParamError::Unknown { key } if key == "\"nvmeAdress\""));
        assert!(err.to_string().contains("nvmeAdress"));
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        let cases: &[(&str, &str)] = &[
            ("volumePath", "/"),
            ("volumePath", "/a/../b"),
            ("volumePath", "/a b"),
            ("volumePath", "/a;reboot"),
            ("nvmeAddress", "rds.local"),
            ("nvmeAddress", ""),
            ("rdsAddress", "10.0.0"),
            ("nvmePort", "0"),
            ("nvmePort", "70000"),
            ("nvmePort", "x"),
            ("sshPort", "-1"),
            ("ctrlLossTmo", "-2"),
            ("ctrlLossTmo", "ten"),
            ("reconnectDelay", "0"),
            ("reconnectDelay", "3601"),
            ("keepAliveTmo", "-1"),
            ("migrationTimeoutSeconds", "10"),
            ("migrationTimeoutSeconds", "3601"),
            ("migrationTimeoutSeconds", "5m"),
            ("mkfsOptions", "-O ^has_journal"),
            ("mkfsOptions", "-L $(reboot)"),
            ("mountOptions", "noatime,bind /etc"),
            ("fsType", "btrfs"),
            ("nqnPrefix", "nqn.2014-08.org.nvmexpress"),
        ];
        for (key, value) in cases {
            let err = StorageParams::parse(&map(&[(key, value)]), &defaults()).unwrap_err();
            match &err {
                ParamError::Invalid { key: k, .. } => assert_eq!(k, key, "{key}={value}"),
                other => panic!("{key}={value}: {other}"),
            }
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn an_address_is_required_from_somewhere() {
        let none = Defaults {
            nvme_address: None,
            ..defaults()
        };
        assert_eq!(
            StorageParams::parse(&HashMap::new(), &none),
            Err(ParamError::NoAddress)
        );
        let p = StorageParams::parse(&map(&[("nvmeAddress", "fd00::1")]), &none).unwrap();
        assert_eq!(p.nvme_address.to_string(), "fd00::1");
    }

    #[test]
    fn migration_timeout_bounds_are_inclusive() {
        for ok in ["30", "3600"] {
            assert!(
                StorageParams::parse(&map(&[("migrationTimeoutSeconds", ok)]), &defaults()).is_ok()
            );
        }
    }

    #[test]
    fn snapshot_parameters() {
        let p = SnapshotParams::parse(
            &map(&[
                ("volumePath", "/snaps"),
                ("csi.storage.k8s.io/volumesnapshot/name", "s"),
            ]),
            &defaults(),
        )
        .unwrap();
        assert_eq!(p.volume_path.as_str(), "/snaps");
        assert!(matches!(
            SnapshotParams::parse(&map(&[("nvmePort", "4420")]), &defaults()),
            Err(ParamError::Unknown { .. })
        ));
    }
}
