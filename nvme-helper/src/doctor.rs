//! `nvme-helper doctor`: a preflight check of the node, one line per check.
//!
//! Most support requests for an NVMe/TCP driver are set-up mistakes (a module not loaded, a
//! host NQN cloned from an image, a tool missing from the image, a kubelet dir mounted without
//! propagation). The doctor turns each into a one-line diagnosis with the fix beside it:
//! `PASS|FAIL|SKIP <check>: <what was seen>`, plus an indented `fix:` line for a failure. It
//! only reads, except for one probe file it creates and removes in the kubelet dir. The checks
//! themselves live in the `doctor_*` modules; this one holds the result types, the
//! configuration and the order the checks run in.

use std::fmt;
use std::path::PathBuf;

use crate::host_identity::HostIdentityFiles;
use crate::{doctor_identity, doctor_kernel, doctor_mounts, doctor_tools};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The node is fine in this respect.
    Pass,
    /// The helper will not work (or not safely) until the fix is applied.
    Fail,
    /// The check does not apply to this configuration.
    Skip,
}

impl Status {
    /// The word printed at the start of the line.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Skip => "SKIP",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Short, stable name (`nvme-tcp-module`, `fabrics-device`, ...).
    pub name: &'static str,
    /// How it ended.
    pub status: Status,
    /// What was seen, on one line.
    pub seen: String,
    /// For a failure: what to do about it, on one line.
    pub fix: Option<String>,
}

impl Check {
    /// A passed check.
    pub fn pass(name: &'static str, seen: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Pass,
            seen: seen.into(),
            fix: None,
        }
    }

    /// A failed check with its fix.
    pub fn fail(name: &'static str, seen: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Fail,
            seen: seen.into(),
            fix: Some(fix.into()),
        }
    }

    /// A check that does not apply.
    pub fn skip(name: &'static str, seen: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Skip,
            seen: seen.into(),
            fix: None,
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.label(),
            self.name,
            one_line(&self.seen)
        )?;
        if let Some(fix) = &self.fix {
            write!(f, "\n  fix: {}", one_line(fix))?;
        }
        Ok(())
    }
}

/// Keeps a report line on one line whatever an error message contains.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Which fabric the helper would use, as far as the doctor cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FabricChoice {
    /// The kernel's NVMe/TCP initiator.
    Kernel,
    /// Loop devices over the simulator's files, with `--loop-backing-dir` if it was given.
    Loop {
        /// The simulator's root.
        backing_dir: Option<PathBuf>,
    },
}

/// Everything the checks look at; the binary fills it from the helper's own flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorConfig {
    /// Kernel or loop fabric.
    pub fabric: FabricChoice,
    /// sysfs mount point.
    pub sysfs_root: PathBuf,
    /// The NVMe over Fabrics control device.
    pub fabrics_device: PathBuf,
    /// Directory of device nodes (`loop-control` is looked up here).
    pub dev_root: PathBuf,
    /// kubelet's root directory.
    pub kubelet_dir: PathBuf,
    /// Host NQN and host id files.
    pub identity: HostIdentityFiles,
    /// The mount table to inspect.
    pub mountinfo: PathBuf,
    /// Colon-separated directories the tools are looked up in.
    pub tool_path: String,
}

/// Every check's result, in the order they ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The results.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether no check failed (skipped checks do not count against the node).
    pub fn all_passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// How many checks ended with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            writeln!(f, "{check}")?;
        }
        write!(
            f,
            "doctor: {} passed, {} failed, {} skipped",
            self.count(Status::Pass),
            self.count(Status::Fail),
            self.count(Status::Skip)
        )
    }
}

/// Runs every check; never stops early, so one run shows every problem.
pub fn run(config: &DoctorConfig) -> Report {
    let mut checks = Vec::new();
    match &config.fabric {
        FabricChoice::Kernel => {
            checks.push(doctor_kernel::nvme_tcp_module(&config.sysfs_root));
            checks.push(doctor_kernel::fabrics_device(&config.fabrics_device));
        }
        FabricChoice::Loop { .. } => {
            let why = "--fabric loop does not use the kernel's NVMe/TCP initiator";
            checks.push(Check::skip(doctor_kernel::NVME_TCP_CHECK, why));
            checks.push(Check::skip(doctor_kernel::FABRICS_CHECK, why));
        }
    }
    checks.extend(doctor_identity::host_identity(&config.identity));
    checks.push(doctor_tools::tools(&config.tool_path));
    checks.push(doctor_mounts::kubelet_dir_writable(&config.kubelet_dir));
    checks.push(doctor_mounts::mount_propagation(
        &config.kubelet_dir,
        &config.mountinfo,
    ));
    match &config.fabric {
        FabricChoice::Kernel => {
            let why = "only needed with --fabric loop";
            checks.push(Check::skip(doctor_kernel::LOOP_CONTROL_CHECK, why));
            checks.push(Check::skip(doctor_kernel::LOOP_BACKING_CHECK, why));
        }
        FabricChoice::Loop { backing_dir } => {
            checks.push(doctor_kernel::loop_control(&config.dev_root));
            checks.push(doctor_kernel::loop_backing_dir(backing_dir.as_deref()));
        }
    }
    Report { checks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_documented_shape() {
        let pass = Check::pass("tools", "all found");
        assert_eq!(pass.to_string(), "PASS tools: all found");
        let fail = Check::fail("kubelet-dir-writable", "no\nsuch dir", "create it");
        assert_eq!(
            fail.to_string(),
            "FAIL kubelet-dir-writable: no such dir\n  fix: create it"
        );
        let skip = Check::skip("loop-control", "kernel fabric");
        assert_eq!(skip.to_string(), "SKIP loop-control: kernel fabric");
    }

    #[test]
    fn only_a_failure_fails_the_report() {
        let mut report = Report {
            checks: vec![Check::pass("a", "ok"), Check::skip("b", "n/a")],
        };
        assert!(report.all_passed());
        assert!(
            report
                .to_string()
                .ends_with("1 passed, 0 failed, 1 skipped")
        );
        report.checks.push(Check::fail("c", "bad", "fix it"));
        assert!(!report.all_passed());
        assert!(
            report
                .to_string()
                .ends_with("1 passed, 1 failed, 1 skipped")
        );
    }
}
