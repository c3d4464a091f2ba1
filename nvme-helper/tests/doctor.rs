//! `nvme-helper doctor` end to end: the real binary against a fake node built in a temporary
//! directory (a sysfs tree with `module/nvme_tcp`, device nodes that are symbolic links to
//! `/dev/null`, host identity files, a directory of fake tools, a kubelet dir and a fake
//! mountinfo). Each test breaks one thing and checks the exit status, the exact FAIL line and
//! its fix, and that nothing else failed. No root needed: the only real paths used are
//! `/dev/null` (a character device anyone may write) and `/sys/kernel` (a directory in which
//! nobody, root included, may create a file).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;
use uuid::Uuid;

/// The six tools the helper runs, by program name.
const TOOLS: [&str; 6] = [
    "mkfs.ext4",
    "mkfs.xfs",
    "resize2fs",
    "xfs_growfs",
    "blkid",
    "e2fsck",
];

const ZERO_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// A node on which every check passes, until a test breaks something.
struct FakeNode {
    _tmp: TempDir,
    sys: PathBuf,
    dev: PathBuf,
    fabrics: PathBuf,
    hostnqn: PathBuf,
    hostid: PathBuf,
    tools: PathBuf,
    kubelet: PathBuf,
    mountinfo: PathBuf,
    backing: PathBuf,
    uuid: Uuid,
}

/// What one doctor run printed and how it exited.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    lines: Vec<String>,
    stderr: String,
}

impl FakeNode {
    fn healthy() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        assert!(
            !root.to_string_lossy().contains(char::is_whitespace),
            "the fake mountinfo needs a temporary directory without spaces: {}",
            root.display()
        );
        let sys = root.join("sys");
        fs::create_dir_all(sys.join("module/nvme_tcp")).unwrap();
        fs::write(sys.join("module/nvme_tcp/initstate"), "live\n").unwrap();
        let dev = root.join("dev");
        fs::create_dir_all(&dev).unwrap();
        let fabrics = dev.join("nvme-fabrics");
        symlink("/dev/null", &fabrics).unwrap();
        symlink("/dev/null", dev.join("loop-control")).unwrap();
        let etc = root.join("etc/nvme");
        fs::create_dir_all(&etc).unwrap();
        let uuid = Uuid::new_v4();
        let hostnqn = etc.join("hostnqn");
        let hostid = etc.join("hostid");
        fs::write(
            &hostnqn,
            format!("nqn.2014-08.org.nvmexpress:uuid:{uuid}\n"),
        )
        .unwrap();
        fs::write(&hostid, format!("{uuid}\n")).unwrap();
        let tools = root.join("bin");
        fs::create_dir_all(&tools).unwrap();
        for tool in TOOLS {
            install_fake_tool(&tools, tool);
        }
        let kubelet = root.join("kubelet");
        fs::create_dir_all(&kubelet).unwrap();
        let backing = root.join("backing");
        fs::create_dir_all(&backing).unwrap();
        let node = Self {
            _tmp: tmp,
            sys,
            dev,
            fabrics,
            hostnqn,
            hostid,
            tools,
            kubelet,
            mountinfo: root.join("mountinfo"),
            backing,
            uuid,
        };
        node.write_mountinfo(Some("shared:7"));
        node
    }

    /// `/` is shared; the kubelet dir is a mount of its own with `optional` fields.
    fn write_mountinfo(&self, optional: Option<&str>) {
        let optional = optional.map(|o| format!(" {o}")).unwrap_or_default();
        fs::write(
            &self.mountinfo,
            format!(
                "1 0 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                 20 1 0:5 / /proc rw,nosuid shared:2 - proc proc rw\n\
                 31 1 8:2 /kubelet {} rw,relatime{optional} - ext4 /dev/sdb1 rw\n",
                self.kubelet.display()
            ),
        )
        .unwrap();
    }

    /// The flags that point the doctor at this node.
    fn flags(&self) -> Vec<(&'static str, OsString)> {
        [
            ("--sysfs-root", &self.sys),
            ("--fabrics-device", &self.fabrics),
            ("--dev-root", &self.dev),
            ("--host-nqn-file", &self.hostnqn),
            ("--host-id-file", &self.hostid),
            ("--kubelet-dir", &self.kubelet),
            ("--mountinfo", &self.mountinfo),
            ("--tool-path", &self.tools),
        ]
        .into_iter()
        .map(|(flag, value)| (flag, value.clone().into_os_string()))
        .collect()
    }

    /// `doctor` and every flag after it, with `changes` replacing or adding flags.
    fn args(&self, changes: &[(&str, &str)]) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["doctor".into()];
        for (flag, value) in self.flags() {
            let value = changes
                .iter()
                .find(|(f, _)| *f == flag)
                .map_or(value, |(_, v)| OsString::from(v));
            args.extend([OsString::from(flag), value]);
        }
        for (flag, value) in changes {
            if !self.flags().iter().any(|(f, _)| f == flag) {
                args.extend([OsString::from(flag), OsString::from(value)]);
            }
        }
        args
    }

    fn run(&self, changes: &[(&str, &str)]) -> Outcome {
        run_doctor(&self.args(changes), &[])
    }

    fn run_loop(&self) -> Outcome {
        let backing = self.backing.to_str().unwrap();
        self.run(&[("--fabric", "loop"), ("--loop-backing-dir", backing)])
    }
}

fn install_fake_tool(dir: &Path, name: &str) {
    let path = dir.join(name);
    fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn run_doctor(args: &[OsString], env: &[(&str, &Path)]) -> Outcome {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nvme-helper"));
    command.env_clear().args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    Outcome {
        code: output.status.code(),
        lines: stdout.lines().map(str::to_string).collect(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Outcome {
    /// The check lines (`PASS|FAIL|SKIP name: ...`).
    fn checks(&self) -> Vec<&String> {
        self.lines
            .iter()
            .filter(|l| ["PASS ", "FAIL ", "SKIP "].iter().any(|p| l.starts_with(p)))
            .collect()
    }

    /// The line of check `name`.
    fn line(&self, name: &str) -> &str {
        self.checks()
            .into_iter()
            .find(|l| {
                l.get(5..)
                    .is_some_and(|rest| rest.starts_with(&format!("{name}: ")))
            })
            .unwrap_or_else(|| panic!("no line for {name}: {self:#?}"))
    }

    fn names_and_statuses(&self) -> Vec<(String, String)> {
        self.checks()
            .into_iter()
            .map(|l| {
                let (status, rest) = l.split_once(' ').unwrap();
                let (name, _) = rest.split_once(": ").unwrap();
                (status.to_string(), name.to_string())
            })
            .map(|(s, n)| (n, s))
            .collect()
    }

    /// Asserts exit status 1, that `fail` is the only FAIL line and that `fix` follows it.
    fn assert_only_failure(&self, fail: &str, fix: &str) {
        assert_eq!(self.code, Some(1), "{self:#?}");
        assert_eq!(self.stderr, "", "the report goes to stdout only");
        let failures: Vec<_> = self
            .checks()
            .into_iter()
            .filter(|l| l.starts_with("FAIL "))
            .collect();
        assert_eq!(failures, [fail], "{self:#?}");
        let at = self.lines.iter().position(|l| l == fail).unwrap();
        assert_eq!(
            self.lines.get(at + 1).map(String::as_str),
            Some(format!("  fix: {fix}").as_str()),
            "{self:#?}"
        );
        assert_eq!(
            self.lines
                .iter()
                .filter(|l| l.starts_with("  fix: "))
                .count(),
            1,
            "only a failure has a fix: {self:#?}"
        );
        assert!(
            self.lines.last().unwrap().contains(" 1 failed, "),
            "{self:#?}"
        );
    }
}

const CHECKS_IN_ORDER: [&str; 10] = [
    "nvme-tcp-module",
    "fabrics-device",
    "host-nqn",
    "host-id",
    "host-id-matches-nqn",
    "tools",
    "kubelet-dir-writable",
    "mount-propagation",
    "loop-control",
    "loop-backing-dir",
];

fn regenerate_fix(node: &FakeNode) -> String {
    let (nqn, id) = (node.hostnqn.display(), node.hostid.display());
    format!(
        "give this node its own pair: delete {nqn} and {id} and restart the helper (it writes a \
         random unique pair), or run `nvme gen-hostnqn > {nqn}` and write the UUID in it to \
         {id}; an image that ships /etc/nvme/hostnqn gives every clone the same identity"
    )
}

#[test]
fn a_healthy_node_passes_every_check_and_leaves_nothing_behind() {
    let node = FakeNode::healthy();
    let out = node.run(&[]);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(out.stderr, "");
    let expected: Vec<(String, String)> = CHECKS_IN_ORDER
        .iter()
        .map(|name| {
            let status = if name.starts_with("loop-") {
                "SKIP"
            } else {
                "PASS"
            };
            (name.to_string(), status.to_string())
        })
        .collect();
    assert_eq!(out.names_and_statuses(), expected, "{out:#?}");
    assert_eq!(
        out.line("nvme-tcp-module"),
        format!(
            "PASS nvme-tcp-module: {}/module/nvme_tcp present, loaded as a module (live)",
            node.sys.display()
        )
    );
    assert_eq!(
        out.line("fabrics-device"),
        format!(
            "PASS fabrics-device: {} is a character device (1:3), writable",
            node.fabrics.display()
        )
    );
    assert_eq!(
        out.line("host-nqn"),
        format!(
            "PASS host-nqn: nqn.2014-08.org.nvmexpress:uuid:{} (from {}); every node must show a \
             different one",
            node.uuid,
            node.hostnqn.display()
        )
    );
    let found: Vec<String> = TOOLS
        .iter()
        .map(|t| node.tools.join(t).display().to_string())
        .collect();
    assert_eq!(
        out.line("tools"),
        format!("PASS tools: found {}", found.join(", "))
    );
    assert_eq!(
        out.line("mount-propagation"),
        format!(
            "PASS mount-propagation: {} is on mount {} (id 31), shared (shared:7)",
            node.kubelet.display(),
            node.kubelet.display()
        )
    );
    assert_eq!(
        out.lines.last().map(String::as_str),
        Some("doctor: 8 passed, 0 failed, 2 skipped")
    );
    // The write probe was removed; the identity files were not touched.
    assert_eq!(fs::read_dir(&node.kubelet).unwrap().count(), 0);
    assert_eq!(
        fs::read_to_string(&node.hostid).unwrap(),
        format!("{}\n", node.uuid)
    );
}

#[test]
fn the_loop_fabric_checks_loop_control_and_skips_the_kernel_initiator() {
    let node = FakeNode::healthy();
    // The kernel side is broken, which the loop fabric does not care about.
    fs::remove_dir_all(node.sys.join("module/nvme_tcp")).unwrap();
    fs::remove_file(&node.fabrics).unwrap();
    let out = node.run_loop();
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(
        out.line("nvme-tcp-module"),
        "SKIP nvme-tcp-module: --fabric loop does not use the kernel's NVMe/TCP initiator"
    );
    assert_eq!(
        out.line("loop-control"),
        format!(
            "PASS loop-control: {}/loop-control is a character device (1:3), writable",
            node.dev.display()
        )
    );
    assert_eq!(
        out.line("loop-backing-dir"),
        format!("PASS loop-backing-dir: {} exists", node.backing.display())
    );
}

/// `doctor` and the node's flags without `--sysfs-root`.
fn without_sysfs_root(node: &FakeNode) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["doctor".into()];
    for (flag, value) in node.flags() {
        if flag != "--sysfs-root" {
            args.extend([OsString::from(flag), value]);
        }
    }
    args
}

#[test]
fn flags_before_the_subcommand_and_environment_variables_are_honoured() {
    let broken = FakeNode::healthy();
    fs::remove_dir_all(broken.sys.join("module/nvme_tcp")).unwrap();
    let node = FakeNode::healthy();
    let broken_line = format!(
        "FAIL nvme-tcp-module: {}/module/nvme_tcp does not exist: the nvme_tcp module is not \
         loaded",
        broken.sys.display()
    );
    let rest = without_sysfs_root(&node);
    // The helper's flag given before `doctor`.
    for (sys, code) in [(&broken.sys, 1), (&node.sys, 0)] {
        let mut args: Vec<OsString> = vec!["--sysfs-root".into(), sys.clone().into()];
        args.extend(rest.iter().cloned());
        let out = run_doctor(&args, &[]);
        assert_eq!(out.code, Some(code), "{out:#?}");
        assert_eq!(
            out.line("nvme-tcp-module") == broken_line,
            code == 1,
            "{out:#?}"
        );
    }
    // Its environment variable, as set in the helper's container.
    for (sys, code) in [(&broken.sys, 1), (&node.sys, 0)] {
        let out = run_doctor(&rest, &[("NVME_HELPER_SYSFS_ROOT", sys)]);
        assert_eq!(out.code, Some(code), "{out:#?}");
        assert_eq!(
            out.line("nvme-tcp-module") == broken_line,
            code == 1,
            "{out:#?}"
        );
    }
}

#[test]
fn nvme_tcp_not_loaded() {
    let node = FakeNode::healthy();
    fs::remove_dir_all(node.sys.join("module/nvme_tcp")).unwrap();
    node.run(&[]).assert_only_failure(
        &format!(
            "FAIL nvme-tcp-module: {}/module/nvme_tcp does not exist: the nvme_tcp module is not \
             loaded",
            node.sys.display()
        ),
        "on the node run `modprobe nvme-tcp` and make it load at boot: \
         `echo nvme-tcp > /etc/modules-load.d/nvme-tcp.conf`",
    );
}

#[test]
fn nvme_tcp_built_into_the_kernel_passes() {
    let node = FakeNode::healthy();
    fs::remove_file(node.sys.join("module/nvme_tcp/initstate")).unwrap();
    let out = node.run(&[]);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(
        out.line("nvme-tcp-module"),
        format!(
            "PASS nvme-tcp-module: {}/module/nvme_tcp present, built into the kernel",
            node.sys.display()
        )
    );
}

#[test]
fn nvme_tcp_unloading() {
    let node = FakeNode::healthy();
    fs::write(node.sys.join("module/nvme_tcp/initstate"), "going\n").unwrap();
    node.run(&[]).assert_only_failure(
        &format!(
            "FAIL nvme-tcp-module: {}/module/nvme_tcp present but the module is \"going\", not live",
            node.sys.display()
        ),
        "wait for it to finish loading or unloading, then run `modprobe nvme-tcp` on the node",
    );
}

#[test]
fn fabrics_device_missing() {
    let node = FakeNode::healthy();
    fs::remove_file(&node.fabrics).unwrap();
    node.run(&[]).assert_only_failure(
        &format!(
            "FAIL fabrics-device: {} does not exist",
            node.fabrics.display()
        ),
        "on the node run `modprobe nvme-tcp` (it loads nvme-fabrics, which creates the device) \
         and give the helper container the host's /dev (hostPath /dev)",
    );
}

#[test]
fn fabrics_device_that_is_a_regular_file() {
    let node = FakeNode::healthy();
    fs::remove_file(&node.fabrics).unwrap();
    fs::write(&node.fabrics, "transport=tcp,traddr=10.0.0.1\n").unwrap();
    node.run(&[]).assert_only_failure(
        &format!(
            "FAIL fabrics-device: {} is a regular file, not a character device",
            node.fabrics.display()
        ),
        &format!(
            "delete it (`rm {}`) and load the module that creates the real device: \
             `modprobe nvme-fabrics`",
            node.fabrics.display()
        ),
    );
}

#[test]
fn host_nqn_missing() {
    let node = FakeNode::healthy();
    fs::remove_file(&node.hostnqn).unwrap();
    node.run(&[]).assert_only_failure(
        &format!("FAIL host-nqn: {} does not exist", node.hostnqn.display()),
        &format!(
            "start the helper once (it writes a unique pair), or run `nvme gen-hostnqn > {}` and \
             write the UUID in it to {}; keep /etc/nvme on the node (hostPath) so the identity \
             survives restarts",
            node.hostnqn.display(),
            node.hostid.display()
        ),
    );
    assert!(!node.hostnqn.exists(), "the doctor must not create it");
}

#[test]
fn host_nqn_with_the_all_zero_uuid() {
    let node = FakeNode::healthy();
    fs::write(
        &node.hostnqn,
        format!("nqn.2014-08.org.nvmexpress:uuid:{ZERO_UUID}\n"),
    )
    .unwrap();
    node.run(&[]).assert_only_failure(
        &format!(
            "FAIL host-nqn: host identity file {}: host NQN \
             nqn.2014-08.org.nvmexpress:uuid:{ZERO_UUID} uses the all-zero UUID; every node needs \
             its own",
            node.hostnqn.display()
        ),
        &regenerate_fix(&node),
    );
}

#[test]
fn host_nqn_with_a_low_entropy_uuid() {
    let node = FakeNode::healthy();
    let lazy = "12121212-1212-1212-1212-121212121111";
    fs::write(
        &node.hostnqn,
        format!("nqn.2014-08.org.nvmexpress:uuid:{lazy}"),
    )
    .unwrap();
    node.run(&[]).assert_only_failure(
        &format!(
            "FAIL host-nqn: host NQN nqn.2014-08.org.nvmexpress:uuid:{lazy} in {}: {lazy} is a \
             placeholder: 18 of its 32 digits are '1', as in firmware defaults that many \
             machines share",
            node.hostnqn.display()
        ),
        &regenerate_fix(&node),
    );
}

#[test]
fn host_nqn_malformed() {
    let node = FakeNode::healthy();
    fs::write(&node.hostnqn, "my node\n").unwrap();
    let out = node.run(&[]);
    let line = out.line("host-nqn").to_string();
    assert!(
        line.starts_with(&format!(
            "FAIL host-nqn: host identity file {}: ",
            node.hostnqn.display()
        )),
        "{out:#?}"
    );
    out.assert_only_failure(&line, &regenerate_fix(&node));
}

#[test]
fn host_id_all_zero() {
    let node = FakeNode::healthy();
    fs::write(&node.hostid, format!("{ZERO_UUID}\n")).unwrap();
    node.run(&[]).assert_only_failure(
        &format!(
            "FAIL host-id: host identity file {}: host id {ZERO_UUID} is the all-zero UUID; every \
             node needs its own",
            node.hostid.display()
        ),
        &regenerate_fix(&node),
    );
    assert_eq!(
        fs::read_to_string(&node.hostid).unwrap(),
        format!("{ZERO_UUID}\n"),
        "the doctor must not rewrite it"
    );
}

#[test]
fn host_id_that_does_not_match_the_host_nqn() {
    let node = FakeNode::healthy();
    let other = Uuid::new_v4();
    fs::write(&node.hostid, format!("{other}\n")).unwrap();
    node.run(&[]).assert_only_failure(
        &format!(
            "FAIL host-id-matches-nqn: host id {other} differs from the UUID {} in host NQN \
             nqn.2014-08.org.nvmexpress:uuid:{}",
            node.uuid, node.uuid
        ),
        &format!(
            "make them one pair: `echo {} > {}` (the kernel binds each host id to one host NQN \
             and refuses a connect that pairs either with another)",
            node.uuid,
            node.hostid.display()
        ),
    );
}

#[test]
fn every_tool_missing() {
    let node = FakeNode::healthy();
    let empty = node.tools.with_file_name("empty-bin");
    fs::create_dir_all(&empty).unwrap();
    node.run(&[("--tool-path", empty.to_str().unwrap())])
        .assert_only_failure(
            &format!(
                "FAIL tools: missing from {}: mkfs.ext4 (package e2fsprogs), mkfs.xfs (package \
                 xfsprogs), resize2fs (package e2fsprogs), xfs_growfs (package xfsprogs), blkid \
                 (package util-linux), e2fsck (package e2fsprogs)",
                empty.display()
            ),
            "install them in the helper image: `apt-get install -y e2fsprogs xfsprogs util-linux`",
        );
}

#[test]
fn xfs_tools_missing_or_not_executable() {
    let node = FakeNode::healthy();
    fs::remove_file(node.tools.join("xfs_growfs")).unwrap();
    fs::set_permissions(
        node.tools.join("mkfs.xfs"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    node.run(&[]).assert_only_failure(
        &format!(
            "FAIL tools: missing from {}: mkfs.xfs (package xfsprogs), xfs_growfs (package \
             xfsprogs)",
            node.tools.display()
        ),
        "install them in the helper image: `apt-get install -y xfsprogs`",
    );
    // A later directory on the path that has them is enough.
    let more = node.tools.with_file_name("more-bin");
    fs::create_dir_all(&more).unwrap();
    install_fake_tool(&more, "mkfs.xfs");
    install_fake_tool(&more, "xfs_growfs");
    let path = format!("{}:{}", node.tools.display(), more.display());
    let out = node.run(&[("--tool-path", &path)]);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert!(
        out.line("tools")
            .contains(&more.join("mkfs.xfs").display().to_string()),
        "{out:#?}"
    );
}

const MOUNT_KUBELET_DIR: &str = "set --kubelet-dir to kubelet's --root-dir (default \
                                 /var/lib/kubelet) and mount that host directory read-write into \
                                 the helper container";

#[test]
fn kubelet_dir_missing() {
    let node = FakeNode::healthy();
    fs::remove_dir(&node.kubelet).unwrap();
    node.run(&[]).assert_only_failure(
        &format!(
            "FAIL kubelet-dir-writable: {} does not exist",
            node.kubelet.display()
        ),
        MOUNT_KUBELET_DIR,
    );
}

#[test]
fn kubelet_dir_that_is_a_file() {
    let node = FakeNode::healthy();
    fs::remove_dir(&node.kubelet).unwrap();
    fs::write(&node.kubelet, "").unwrap();
    node.run(&[]).assert_only_failure(
        &format!(
            "FAIL kubelet-dir-writable: {} is not a directory",
            node.kubelet.display()
        ),
        MOUNT_KUBELET_DIR,
    );
}

#[test]
fn kubelet_dir_not_writable() {
    let node = FakeNode::healthy();
    // Nobody may create a file in sysfs; the fake mountinfo puts it under the shared `/`.
    let out = node.run(&[("--kubelet-dir", "/sys/kernel")]);
    let line = out.line("kubelet-dir-writable").to_string();
    assert!(
        line.starts_with("FAIL kubelet-dir-writable: cannot create a file in /sys/kernel: "),
        "{out:#?}"
    );
    out.assert_only_failure(
        &line,
        "mount the kubelet dir read-write into the helper container and run the helper as root",
    );
}

const PROPAGATION_FIX: &str = "give the helper container `mountPropagation: Bidirectional` on \
                               its kubelet-dir volume (privileged), and make the host mount \
                               shared: `mount --make-rshared /`";

#[test]
fn kubelet_dir_on_a_private_mount() {
    let node = FakeNode::healthy();
    // `/` is shared, but the deeper mount holding the kubelet dir is not.
    node.write_mountinfo(None);
    node.run(&[]).assert_only_failure(
        &format!(
            "FAIL mount-propagation: {} is on mount {} (id 31), a private mount: mounts made \
             there never reach the host",
            node.kubelet.display(),
            node.kubelet.display()
        ),
        PROPAGATION_FIX,
    );
}

#[test]
fn kubelet_dir_on_a_slave_mount() {
    let node = FakeNode::healthy();
    node.write_mountinfo(Some("master:4"));
    node.run(&[]).assert_only_failure(
        &format!(
            "FAIL mount-propagation: {} is on mount {} (id 31), a slave mount (master:4): mounts \
             made there never reach the host",
            node.kubelet.display(),
            node.kubelet.display()
        ),
        PROPAGATION_FIX,
    );
}

#[test]
fn kubelet_dir_below_a_shared_mount_passes() {
    let node = FakeNode::healthy();
    fs::write(
        &node.mountinfo,
        "1 0 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n",
    )
    .unwrap();
    let out = node.run(&[]);
    assert_eq!(out.code, Some(0), "{out:#?}");
    assert_eq!(
        out.line("mount-propagation"),
        format!(
            "PASS mount-propagation: {} is on mount / (id 1), shared (shared:1)",
            node.kubelet.display()
        )
    );
}

#[test]
fn mountinfo_unreadable() {
    let node = FakeNode::healthy();
    fs::remove_file(&node.mountinfo).unwrap();
    node.run(&[]).assert_only_failure(
        &format!(
            "FAIL mount-propagation: cannot read {}: No such file or directory (os error 2)",
            node.mountinfo.display()
        ),
        "run the doctor inside the helper container, where /proc/self/mountinfo is readable",
    );
}

#[test]
fn loop_control_missing() {
    let node = FakeNode::healthy();
    fs::remove_file(node.dev.join("loop-control")).unwrap();
    node.run_loop().assert_only_failure(
        &format!(
            "FAIL loop-control: {}/loop-control does not exist",
            node.dev.display()
        ),
        "on the node run `modprobe loop` and give the helper container the host's /dev \
         (hostPath /dev)",
    );
}

const BACKING_FIX: &str =
    "point --loop-backing-dir (NVME_HELPER_LOOP_BACKING_DIR) at the RouterOS simulator's file root";

#[test]
fn loop_backing_dir_missing() {
    let node = FakeNode::healthy();
    fs::remove_dir(&node.backing).unwrap();
    node.run_loop().assert_only_failure(
        &format!(
            "FAIL loop-backing-dir: {} does not exist",
            node.backing.display()
        ),
        BACKING_FIX,
    );
}

#[test]
fn loop_fabric_without_a_backing_dir() {
    let node = FakeNode::healthy();
    node.run(&[("--fabric", "loop")]).assert_only_failure(
        "FAIL loop-backing-dir: --fabric loop without --loop-backing-dir",
        BACKING_FIX,
    );
}
