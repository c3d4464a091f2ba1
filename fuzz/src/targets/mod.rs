//! The fuzz targets, one module each, and the registry both harnesses use.
//!
//! | target | code under test |
//! |---|---|
//! | `routeros_text` | rds-gateway `print detail` decoder, typed disk/file/capacity views |
//! | `routeros_json` | rds-gateway `:serialize to=json` decoder |
//! | `routeros_colon` | rds-gateway `key: value` decoder, version/date/rate/duration/size parsers |
//! | `routeros_classify` | rds-gateway failure-text classifier |
//! | `routeros_commands` | rds-gateway name/path/size validators, command builders, page tokens |
//! | `sysfs_attrs` | nvme-helper controller state/address, fabrics reply |
//! | `sysfs_tree` | nvme-helper sysfs reader over a fuzzed fake tree |
//! | `nqn` | nvme-helper NQN and prefix validators, connect option string |
//! | `mountinfo` | nvme-helper mountinfo parser |
//! | `mount_options` | nvme-helper mount and mkfs option allow-lists |
//! | `kubelet_path` | nvme-helper kubelet path confinement |
//! | `blkid` | nvme-helper blkid reading and the format decision |
//! | `csi_ids` | csi-frontend volume/snapshot/node ids, node paths, page tokens |
//! | `csi_params` | csi-frontend StorageClass parameters, contexts built from them |
//! | `csi_volume_context` | csi-frontend volume and publish contexts from the CO |
//! | `csi_capacity` | csi-frontend capacity ranges and volume capabilities |

pub mod blkid;
pub mod csi_capacity;
pub mod csi_ids;
pub mod csi_params;
pub mod csi_volume_context;
pub mod kubelet_path;
pub mod mount_options;
pub mod mountinfo;
pub mod nqn;
pub mod routeros_classify;
pub mod routeros_colon;
pub mod routeros_commands;
pub mod routeros_json;
pub mod routeros_text;
pub mod sysfs_attrs;
pub mod sysfs_tree;

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Name: of the function, of `fuzz_targets/<name>.rs`, of `corpus/<name>/`.
    pub name: &'static str,
    /// The target itself; panics only when an oracle is broken.
    pub run: fn(&[u8]),
    /// Tokens the stable driver's mutator inserts, besides the common ones.
    pub dictionary: &'static [&'static [u8]],
    /// Removes what the target set up on disk (temporary trees), if anything.
    pub teardown: Option<fn()>,
}

macro_rules! target {
    ($module:ident) => {
        Target {
            name: stringify!($module),
            run: $module::$module,
            dictionary: $module::DICTIONARY,
            teardown: None,
        }
    };
    ($module:ident, teardown) => {
        Target {
            name: stringify!($module),
            run: $module::$module,
            dictionary: $module::DICTIONARY,
            teardown: Some($module::teardown),
        }
    };
}

/// Every target, in the order the stable driver runs them.
pub const ALL: &[Target] = &[
    target!(routeros_text),
    target!(routeros_json),
    target!(routeros_colon),
    target!(routeros_classify),
    target!(routeros_commands),
    target!(sysfs_attrs),
    target!(sysfs_tree, teardown),
    target!(nqn),
    target!(mountinfo),
    target!(mount_options),
    target!(kubelet_path, teardown),
    target!(blkid),
    target!(csi_ids),
    target!(csi_params),
    target!(csi_volume_context),
    target!(csi_capacity),
];

/// A temporary directory for a target's fixture tree: in `/dev/shm` where there is one (memory,
/// and no flush when a file is rewritten, which costs milliseconds on some disk filesystems),
/// otherwise in the system's temporary directory.
pub fn scratch_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    let shm = std::path::Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix(prefix);
        b
    };
    if shm.is_dir()
        && let Ok(dir) = builder.tempdir_in(shm)
    {
        return Ok(dir);
    }
    builder.tempdir()
}

/// The target called `name`.
pub fn by_name(name: &str) -> Option<Target> {
    ALL.iter().copied().find(|t| t.name == name)
}
