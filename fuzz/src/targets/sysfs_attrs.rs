//! `sysfs_attrs`: the attribute parsers of the node helper's sysfs reader and the kernel's answer
//! on `/dev/nvme-fabrics`.
//!
//! Input fields: a controller `state`, a controller `address`, a fabrics reply. Oracles:
//! - nothing panics;
//! - a state parses only from the kernel's exact spelling, and prints back to it;
//! - an address parses only when it names `traddr` and `trsvcid`, and printed in the kernel's form
//!   it reads back the same;
//! - a fabrics reply printed back as `instance=N[,cntlid=M]` reads back the same.

use nvme_helper::connect_spec::FabricsReply;
use nvme_helper::sysfs::{ControllerState, FabricAddress};

use crate::input::Fields;

/// Tokens of sysfs attributes and fabrics replies.
pub const DICTIONARY: &[&[u8]] = &[
    b"live",
    b"connecting",
    b"resetting",
    b"deleting",
    b"deleting (no IO)",
    b"dead",
    b"new",
    b"traddr=",
    b"traddr=10.42.68.1",
    b"traddr=fe80::1",
    b"traddr=::ffff:10.0.0.1",
    b",trsvcid=",
    b",trsvcid=4420",
    b",src_addr=",
    b",host_traddr=",
    b"instance=",
    b"instance=3,cntlid=1",
    b",cntlid=",
    b"\n\0\0",
];

/// Parses the fuzzed attributes and checks the oracles above.
pub fn sysfs_attrs(data: &[u8]) {
    let mut f = Fields::new(data);
    let state = f.text();
    let address = f.text();
    let reply = f.text();

    if let Some(s) = ControllerState::parse(&state) {
        assert_eq!(s.as_str(), state, "state {state:?} read as {s}");
        assert_eq!(ControllerState::parse(s.as_str()), Some(s));
        assert!(
            !(s.is_connected() && s.is_deleting()),
            "{s} both connected and deleting"
        );
    }

    if let Some(a) = FabricAddress::parse(&address) {
        let pieces: Vec<&str> = address.split(',').collect();
        assert!(
            pieces.iter().any(|p| p.starts_with("traddr="))
                && pieces.iter().any(|p| p.starts_with("trsvcid=")),
            "address {address:?} read without traddr and trsvcid"
        );
        let mut printed = format!("traddr={},trsvcid={}", a.traddr, a.trsvcid);
        if let Some(src) = a.src_addr {
            printed.push_str(&format!(",src_addr={src}"));
        }
        assert_eq!(
            FabricAddress::parse(&printed).as_ref(),
            Some(&a),
            "address {address:?} printed as {printed:?}"
        );
    }

    if let Ok(r) = FabricsReply::parse(&reply) {
        let mut printed = format!("instance={}", r.instance);
        if let Some(c) = r.cntlid {
            printed.push_str(&format!(",cntlid={c}"));
        }
        assert_eq!(
            FabricsReply::parse(&printed),
            Ok(r),
            "reply {reply:?} printed as {printed:?}"
        );
    }
}
