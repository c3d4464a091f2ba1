//! `csi_ids`: the frontend's validators of CSI names and ids, node paths and page tokens.
//!
//! Input fields: a CreateVolume name, a volume id, a snapshot name, a snapshot id, a node id, a
//! staging/target path, a page token, a comma-separated list of names to page through, and
//! `max_entries`. Oracles:
//! - nothing panics; refusals are escaped ASCII of bounded length;
//! - a name maps to a volume id that parses back to itself, maps to itself again, is a slot the
//!   gateway accepts and has an NQN both the gateway and the node helper accept;
//! - a snapshot id made for a name and a volume parses back and names that volume; a parsed
//!   snapshot id's source volume is a valid volume id;
//! - an accepted node path is absolute, normalised, without control characters or a trailing
//!   `/`, and accepted again unchanged;
//! - an accepted token is a volume id; paging with tokens returns every item once, in order.

use csi_frontend::ids::{NodeId, SnapshotId, VolumeId};
use csi_frontend::paging::PageRequest;
use csi_frontend::paths::absolute;
use rds_gateway::routeros::names::Slot;

use crate::input::Fields;
use crate::oracle::{LogRule, assert_log_safe};

/// Tokens of CSI names and ids.
pub const DICTIONARY: &[&[u8]] = &[
    b"pvc-11111111-2222-3333-4444-555555555555",
    b"pvc-0F923194-922A-5DD8-B376-C2C6CCB56DD8",
    b"snap-11111111-2222-3333-4444-555555555555",
    b"-at-",
    b"-at-1700000000",
    b"-at-0123456789",
    b"snapshot-5c1e6a2f-8f3b-4c1e-9a3b-2f6f1d2e3c4b",
    b"worker-1.example.com",
    b"/var/lib/kubelet/plugins/kubernetes.io/csi/rds.csi.mikrotik.com/",
    b"/globalmount",
    b"/var/lib/kubelet/pods/",
    b"/volumes/kubernetes.io~csi/",
    b"/mount",
];

const MESSAGE_LIMIT: usize = 2048;

fn refused(what: &str, message: String) {
    assert_log_safe(
        what,
        &message,
        LogRule::EscapedAscii {
            max_len: MESSAGE_LIMIT,
        },
    );
}

/// Checks that a volume id is usable everywhere it goes.
pub fn check_volume_id(v: &VolumeId) {
    assert_eq!(
        VolumeId::parse("volume_id", v.as_str()).as_ref(),
        Ok(v),
        "volume id {v}"
    );
    assert!(v.as_str().starts_with("pvc-"), "volume id {v}");
    match Slot::parse(v.as_str()) {
        Ok(slot) => assert_eq!(slot.as_str(), v.as_str()),
        Err(e) => panic!("volume id {v} is not a gateway slot: {e}"),
    }
    let nqn = v.nqn();
    assert!(
        rds_gateway::routeros::names::Nqn::parse(&nqn).is_ok(),
        "gateway refuses the NQN {nqn} of volume {v}"
    );
    assert!(
        nvme_helper::nqn::Nqn::new(nqn.as_str()).is_ok(),
        "node helper refuses the NQN {nqn} of volume {v}"
    );
}

/// Validates the fuzzed ids and paths and checks the oracles above.
pub fn csi_ids(data: &[u8]) {
    let mut f = Fields::new(data);
    let name = f.text();
    let volume_raw = f.text();
    let snapshot_name = f.text();
    let snapshot_raw = f.text();
    let node_raw = f.text();
    let path_raw = f.text();
    let token = f.text();
    let listing = f.text();
    let max_entries: i32 = f.number().unwrap_or(0);

    let from_name = match VolumeId::from_name(&name) {
        Ok(v) => {
            assert!(
                !name.is_empty() && name.len() <= 128,
                "name {name:?} accepted"
            );
            check_volume_id(&v);
            assert_eq!(
                VolumeId::from_name(v.as_str()).as_ref(),
                Ok(&v),
                "id maps to itself"
            );
            assert_eq!(
                VolumeId::from_name(&name).as_ref(),
                Ok(&v),
                "mapping is a function"
            );
            Some(v)
        }
        Err(e) => {
            refused("name error", e.to_string());
            None
        }
    };
    let parsed = match VolumeId::parse("volume_id", &volume_raw) {
        Ok(v) => {
            assert_eq!(v.as_str(), volume_raw, "volume id changed when accepted");
            check_volume_id(&v);
            Some(v)
        }
        Err(e) => {
            refused("volume id error", e.to_string());
            None
        }
    };
    for source in from_name.iter().chain(parsed.iter()) {
        match SnapshotId::for_snapshot(&snapshot_name, source) {
            Ok(s) => {
                assert_eq!(
                    SnapshotId::parse("snapshot_id", s.as_str()).as_ref(),
                    Ok(&s)
                );
                assert_eq!(&s.source_volume(), source, "snapshot {s} of {source}");
                check_snapshot_slot(&s);
            }
            Err(e) => refused("snapshot name error", e.to_string()),
        }
    }
    match SnapshotId::parse("snapshot_id", &snapshot_raw) {
        Ok(s) => {
            assert_eq!(
                s.as_str(),
                snapshot_raw,
                "snapshot id changed when accepted"
            );
            check_volume_id(&s.source_volume());
            check_snapshot_slot(&s);
        }
        Err(e) => refused("snapshot id error", e.to_string()),
    }
    match NodeId::parse(&node_raw) {
        Ok(n) => assert!(
            n.as_str() == node_raw && !node_raw.is_empty() && node_raw.len() <= 253,
            "node id {node_raw:?}"
        ),
        Err(e) => refused("node id error", e.to_string()),
    }
    match absolute("target_path", &path_raw) {
        Ok(p) => {
            assert!(p.starts_with('/') && !p.ends_with('/'), "path {p:?}");
            assert!(
                !p.chars().any(char::is_control),
                "control character in path {p:?}"
            );
            assert!(
                p.split('/')
                    .skip(1)
                    .all(|c| !c.is_empty() && c != "." && c != ".."),
                "path {p:?} is not normalised"
            );
            assert!(path_raw.starts_with(&p), "path {p:?} is not the request's");
            assert_eq!(
                absolute("target_path", &p).as_deref(),
                Ok(p.as_str()),
                "path {p:?} changes"
            );
        }
        Err(e) => refused("path error", e.to_string()),
    }
    check_paging(&token, &listing, max_entries);
}

/// A snapshot id is also the appliance slot of the snapshot.
fn check_snapshot_slot(s: &SnapshotId) {
    if let Err(e) = Slot::parse(s.as_str()) {
        panic!("snapshot id {s} is accepted by the frontend but is not a gateway slot: {e}");
    }
}

fn check_paging(token: &str, listing: &str, max_entries: i32) {
    let is_id = |t: &str| VolumeId::parse("starting_token", t).is_ok();
    match PageRequest::parse(max_entries, token, is_id) {
        Ok(request) => {
            if let Some(after) = &request.after {
                assert!(is_id(after), "token {after:?} accepted");
            }
        }
        Err(e) => refused("page error", e.to_string()),
    }
    let mut ids: Vec<String> = listing
        .split(',')
        .take(100)
        .filter_map(|n| VolumeId::from_name(n).ok())
        .map(|v| v.to_string())
        .collect();
    ids.sort();
    ids.dedup();
    let max = max_entries.rem_euclid(5);
    let mut seen: Vec<String> = Vec::new();
    let mut next = String::new();
    for _ in 0..=ids.len() + 1 {
        let request = match PageRequest::parse(max, &next, is_id) {
            Ok(r) => r,
            Err(e) => panic!("next_token {next:?} handed out by page() is refused: {e}"),
        };
        let items: Vec<String> = ids.iter().rev().cloned().collect();
        let (page, token) = request.page(items, String::as_str);
        if max > 0 {
            assert!(page.len() <= max as usize, "page longer than max_entries");
        }
        seen.extend(page);
        if token.is_empty() {
            break;
        }
        next = token;
    }
    assert_eq!(seen, ids, "paging lost, repeated or reordered volumes");
}
