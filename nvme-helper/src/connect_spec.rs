//! The NVMe/TCP connect request as the kernel wants it, and the kernel's answer.
//!
//! Connecting is one `write(2)` of a comma-separated option string to `/dev/nvme-fabrics`; the
//! kernel then answers `instance=N,cntlid=M` when the same descriptor is read. This module owns
//! both ends of that contract: `ConnectSpec` renders the exact string (golden-tested) and checks
//! the ranges before anything reaches the kernel, and `FabricsReply` parses the answer.

use std::fmt;
use std::net::IpAddr;

use uuid::Uuid;

use crate::error::{HelperError, Result};
use crate::nqn::Nqn;

/// `ctrl_loss_tmo` value meaning "keep reconnecting for ever".
pub const CTRL_LOSS_FOREVER: i32 = -1;
/// Default `reconnect_delay` in seconds.
pub const DEFAULT_RECONNECT_DELAY: u32 = 5;
/// Default `keep_alive_tmo` in seconds (the kernel's own default).
pub const DEFAULT_KEEP_ALIVE_TMO: u32 = 5;
/// Largest `reconnect_delay` and `keep_alive_tmo` accepted, in seconds.
pub const MAX_DELAY_SECS: u32 = 3600;
/// Largest finite `ctrl_loss_tmo` accepted, in seconds (one week).
pub const MAX_CTRL_LOSS_TMO: i32 = 7 * 24 * 3600;

/// Everything needed to connect one NVMe/TCP subsystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectSpec {
    /// Target address (IPv4 or IPv6, printed bare).
    pub traddr: IpAddr,
    /// Target port.
    pub trsvcid: u16,
    /// Subsystem NQN.
    pub nqn: Nqn,
    /// This host's NQN.
    pub hostnqn: Nqn,
    /// This host's id.
    pub hostid: Uuid,
    /// Seconds to keep reconnecting after the controller is lost; `-1` = for ever.
    pub ctrl_loss_tmo: i32,
    /// Seconds between reconnect attempts.
    pub reconnect_delay: u32,
    /// Keep-alive timeout in seconds.
    pub keep_alive_tmo: u32,
}

impl ConnectSpec {
    /// A spec with the default timeouts (reconnect for ever, 5 s delay, 5 s keep-alive).
    pub fn new(traddr: IpAddr, trsvcid: u16, nqn: Nqn, hostnqn: Nqn, hostid: Uuid) -> Self {
        Self {
            traddr,
            trsvcid,
            nqn,
            hostnqn,
            hostid,
            ctrl_loss_tmo: CTRL_LOSS_FOREVER,
            reconnect_delay: DEFAULT_RECONNECT_DELAY,
            keep_alive_tmo: DEFAULT_KEEP_ALIVE_TMO,
        }
    }

    /// Checks every value against what the kernel accepts and what is sane for this driver.
    pub fn validate(&self) -> Result<()> {
        let fail = |option: &'static str, reason: String| HelperError::InvalidConnectSpec {
            nqn: self.nqn.to_string(),
            option,
            reason,
        };
        let addr = self.traddr;
        if addr.is_unspecified() {
            return Err(fail("traddr", format!("{addr} is the unspecified address")));
        }
        if addr.is_multicast() {
            return Err(fail("traddr", format!("{addr} is a multicast address")));
        }
        match addr {
            IpAddr::V4(v4) if v4.is_broadcast() => {
                return Err(fail("traddr", format!("{addr} is the broadcast address")));
            }
            IpAddr::V6(v6) if v6.is_unicast_link_local() => {
                return Err(fail(
                    "traddr",
                    format!(
                        "{addr} is link-local and would need an interface, which is not supported"
                    ),
                ));
            }
            _ => {}
        }
        if self.trsvcid == 0 {
            return Err(fail("trsvcid", "port 0 is not a valid port".into()));
        }
        if self.hostid.is_nil() {
            return Err(fail("hostid", "the all-zero UUID is not a host id".into()));
        }
        if !(1..=MAX_DELAY_SECS).contains(&self.reconnect_delay) {
            return Err(fail(
                "reconnect_delay",
                format!(
                    "{} is not between 1 and {MAX_DELAY_SECS}",
                    self.reconnect_delay
                ),
            ));
        }
        if !(1..=MAX_DELAY_SECS).contains(&self.keep_alive_tmo) {
            return Err(fail(
                "keep_alive_tmo",
                format!(
                    "{} is not between 1 and {MAX_DELAY_SECS}",
                    self.keep_alive_tmo
                ),
            ));
        }
        let loss = self.ctrl_loss_tmo;
        if loss != CTRL_LOSS_FOREVER {
            // reconnect_delay is at most MAX_DELAY_SECS, which fits an i32.
            let delay = i32::try_from(self.reconnect_delay).unwrap_or(i32::MAX);
            if loss < delay || loss > MAX_CTRL_LOSS_TMO {
                return Err(fail(
                    "ctrl_loss_tmo",
                    format!(
                        "{loss} is neither -1 (for ever) nor between reconnect_delay ({delay}) and {MAX_CTRL_LOSS_TMO}"
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for ConnectSpec {
    /// The exact option string written to `/dev/nvme-fabrics`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "transport=tcp,traddr={},trsvcid={},nqn={},hostnqn={},hostid={},ctrl_loss_tmo={},reconnect_delay={},keep_alive_tmo={}",
            self.traddr,
            self.trsvcid,
            self.nqn,
            self.hostnqn,
            self.hostid.hyphenated(),
            self.ctrl_loss_tmo,
            self.reconnect_delay,
            self.keep_alive_tmo,
        )
    }
}

/// What the kernel answers on `/dev/nvme-fabrics` after a successful connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FabricsReply {
    /// Controller instance: the `N` of `/sys/class/nvme/nvmeN`.
    pub instance: u32,
    /// Controller id on the target, when reported.
    pub cntlid: Option<u16>,
}

impl FabricsReply {
    /// Parses `instance=3,cntlid=1` (trailing newline or NULs allowed, unknown keys ignored).
    ///
    /// The error is a human-readable reason; callers wrap it with the NQN and device path.
    pub fn parse(reply: &str) -> std::result::Result<Self, String> {
        let text = reply.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\0');
        if text.is_empty() {
            return Err("the reply is empty".into());
        }
        let mut instance = None;
        let mut cntlid = None;
        for piece in text.split(',') {
            let Some((key, value)) = piece.split_once('=') else {
                return Err(format!("{piece:?} is not key=value"));
            };
            match key {
                "instance" => {
                    let parsed = parse_decimal::<u32>(value)
                        .ok_or_else(|| format!("instance {value:?} is not a number"))?;
                    if instance.replace(parsed).is_some() {
                        return Err("instance is given twice".into());
                    }
                }
                "cntlid" => {
                    let parsed = parse_decimal::<u16>(value)
                        .ok_or_else(|| format!("cntlid {value:?} is not a 16-bit number"))?;
                    if cntlid.replace(parsed).is_some() {
                        return Err("cntlid is given twice".into());
                    }
                }
                _ => {}
            }
        }
        let instance = instance.ok_or_else(|| "there is no instance=".to_string())?;
        Ok(Self { instance, cntlid })
    }
}

/// Parses plain ASCII decimal digits (no sign, no spaces).
pub(crate) fn parse_decimal<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn spec(traddr: IpAddr) -> ConnectSpec {
        ConnectSpec::new(
            traddr,
            4420,
            Nqn::new("nqn.2000-02.com.mikrotik:pvc-abc").unwrap(),
            Nqn::new("nqn.2014-08.org.nvmexpress:uuid:6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b")
                .unwrap(),
            Uuid::parse_str("6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b").unwrap(),
        )
    }

    #[test]
    fn golden_ipv4_defaults() {
        let s = spec(IpAddr::V4(Ipv4Addr::new(10, 42, 68, 1)));
        s.validate().unwrap();
        assert_eq!(
            s.to_string(),
            "transport=tcp,traddr=10.42.68.1,trsvcid=4420,nqn=nqn.2000-02.com.mikrotik:pvc-abc,\
             hostnqn=nqn.2014-08.org.nvmexpress:uuid:6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b,\
             hostid=6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b,ctrl_loss_tmo=-1,reconnect_delay=5,keep_alive_tmo=5"
        );
    }

    #[test]
    fn golden_ipv6_is_bare_and_values_are_rendered() {
        let mut s = spec("fd00:42::1".parse().unwrap());
        s.trsvcid = 4421;
        s.ctrl_loss_tmo = 600;
        s.reconnect_delay = 10;
        s.keep_alive_tmo = 30;
        s.validate().unwrap();
        assert_eq!(
            s.to_string(),
            "transport=tcp,traddr=fd00:42::1,trsvcid=4421,nqn=nqn.2000-02.com.mikrotik:pvc-abc,\
             hostnqn=nqn.2014-08.org.nvmexpress:uuid:6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b,\
             hostid=6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b,ctrl_loss_tmo=600,reconnect_delay=10,keep_alive_tmo=30"
        );
        assert!(!s.to_string().contains('['));
    }

    #[test]
    fn rejects_out_of_range_values_naming_the_option() {
        let base = spec(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        type Mutation = Box<dyn Fn(&mut ConnectSpec)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "traddr",
                Box::new(|s| s.traddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            ),
            (
                "traddr",
                Box::new(|s| s.traddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            ),
            (
                "traddr",
                Box::new(|s| s.traddr = IpAddr::V4(Ipv4Addr::BROADCAST)),
            ),
            (
                "traddr",
                Box::new(|s| s.traddr = "224.0.0.1".parse().unwrap()),
            ),
            (
                "traddr",
                Box::new(|s| s.traddr = "fe80::1".parse().unwrap()),
            ),
            ("trsvcid", Box::new(|s| s.trsvcid = 0)),
            ("hostid", Box::new(|s| s.hostid = Uuid::nil())),
            ("reconnect_delay", Box::new(|s| s.reconnect_delay = 0)),
            (
                "reconnect_delay",
                Box::new(|s| s.reconnect_delay = MAX_DELAY_SECS + 1),
            ),
            ("keep_alive_tmo", Box::new(|s| s.keep_alive_tmo = 0)),
            ("keep_alive_tmo", Box::new(|s| s.keep_alive_tmo = u32::MAX)),
            ("ctrl_loss_tmo", Box::new(|s| s.ctrl_loss_tmo = -2)),
            ("ctrl_loss_tmo", Box::new(|s| s.ctrl_loss_tmo = 0)),
            ("ctrl_loss_tmo", Box::new(|s| s.ctrl_loss_tmo = 4)),
            (
                "ctrl_loss_tmo",
                Box::new(|s| s.ctrl_loss_tmo = MAX_CTRL_LOSS_TMO + 1),
            ),
        ];
        for (option, mutate) in cases {
            let mut s = base.clone();
            mutate(&mut s);
            match s.validate() {
                Err(HelperError::InvalidConnectSpec {
                    option: got, nqn, ..
                }) => {
                    assert_eq!(got, option, "{s}");
                    assert_eq!(nqn, "nqn.2000-02.com.mikrotik:pvc-abc");
                }
                other => panic!("{s}: expected {option} to be rejected, got {other:?}"),
            }
        }
        let mut edge = base.clone();
        edge.ctrl_loss_tmo = 5;
        edge.validate().unwrap();
        edge.ctrl_loss_tmo = MAX_CTRL_LOSS_TMO;
        edge.validate().unwrap();
        let mut loopback = base;
        loopback.traddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        loopback.validate().unwrap();
    }

    #[test]
    fn parses_the_kernel_reply() {
        assert_eq!(
            FabricsReply::parse("instance=3,cntlid=1\n").unwrap(),
            FabricsReply {
                instance: 3,
                cntlid: Some(1)
            }
        );
        assert_eq!(
            FabricsReply::parse("instance=12").unwrap(),
            FabricsReply {
                instance: 12,
                cntlid: None
            }
        );
        assert_eq!(
            FabricsReply::parse("cntlid=7,instance=0,future=x\0").unwrap(),
            FabricsReply {
                instance: 0,
                cntlid: Some(7)
            }
        );
    }

    #[test]
    fn rejects_garbage_replies() {
        for bad in [
            "",
            "\n",
            "instance",
            "instance=",
            "instance=-1",
            "instance=+3",
            "instance= 3",
            "instance=99999999999",
            "instance=3,cntlid=70000",
            "instance=3,instance=4",
            "cntlid=1",
            "hello world",
        ] {
            assert!(FabricsReply::parse(bad).is_err(), "{bad:?}");
        }
    }
}
