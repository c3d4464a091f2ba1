//! The volume condition ControllerGetVolume and ListVolumes report, in one place so that both
//! say the same thing about the same volume.
//!
//! CSI spec (VolumeCondition): "Indicates a volume is in an abnormal condition or not" and
//! "The message describing the condition of the volume. This field is REQUIRED."

use std::fmt::Write as _;

use rds_csi_proto::csi::VolumeCondition;
use rds_csi_proto::gateway as gw;

/// What the appliance says about a volume's disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disk {
    Missing,
    Present { exported: bool, nvme_port: u32 },
}

impl Disk {
    pub fn of(vol: Option<&gw::Volume>) -> Disk {
        match vol {
            None => Disk::Missing,
            Some(v) => Disk::Present {
                exported: v.exported,
                nvme_port: v.nvme_port,
            },
        }
    }
}

/// Writes the condition's message into `message` (cleared first) and returns whether the
/// volume is abnormal: its disk missing or not exported, or its attachments abnormal (a live
/// migration past its window, `attachments`).
pub fn describe(disk: Disk, attachments: Option<&str>, message: &mut String) -> bool {
    message.clear();
    let mut problems = 0;
    let mut problem = |text: &str| {
        if problems > 0 {
            message.push_str("; ");
        }
        message.push_str(text);
        problems += 1;
    };
    let port = match disk {
        Disk::Missing => {
            problem("the disk is missing on the RDS, yet the volume is still attached");
            0
        }
        Disk::Present {
            exported: false, ..
        } => {
            problem(
                "the disk exists but is not exported over NVMe/TCP, so nodes cannot connect to it",
            );
            0
        }
        Disk::Present { nvme_port, .. } => nvme_port,
    };
    if let Some(m) = attachments {
        problem(m);
    }
    if problems > 0 {
        return true;
    }
    // Short on purpose: a listing carries one per volume, and the NQN follows from the id.
    let _ = write!(message, "exported over NVMe/TCP on port {port}");
    false
}

/// The condition as a message.
pub fn condition(disk: Disk, attachments: Option<&str>) -> VolumeCondition {
    let mut message = String::new();
    let abnormal = describe(disk, attachments, &mut message);
    VolumeCondition { abnormal, message }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_healthy_volume_names_its_port_and_problems_are_joined() {
        let ok = Disk::Present {
            exported: true,
            nvme_port: 4420,
        };
        assert_eq!(
            condition(ok, None),
            VolumeCondition {
                abnormal: false,
                message: "exported over NVMe/TCP on port 4420".into()
            }
        );
        let c = condition(
            Disk::Present {
                exported: false,
                nvme_port: 4420,
            },
            Some("migration stuck"),
        );
        assert!(c.abnormal);
        assert_eq!(
            c.message,
            "the disk exists but is not exported over NVMe/TCP, so nodes cannot connect to it; migration stuck"
        );
        let c = condition(Disk::Missing, None);
        assert!(c.abnormal);
        assert!(
            c.message.starts_with("the disk is missing on the RDS"),
            "{}",
            c.message
        );
        let c = condition(ok, Some("migration stuck"));
        assert_eq!((c.abnormal, c.message.as_str()), (true, "migration stuck"));
    }

    #[test]
    fn the_message_buffer_is_reused_cleanly() {
        let mut m = String::from("left over");
        assert!(!describe(
            Disk::Present {
                exported: true,
                nvme_port: 1
            },
            None,
            &mut m
        ));
        assert_eq!(m, "exported over NVMe/TCP on port 1");
    }
}
