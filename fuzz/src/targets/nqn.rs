//! `nqn`: the node helper's NQN and managed-prefix validators and the connect option string they
//! feed, with the gateway's NQN validator alongside.
//!
//! Input fields: NQN, managed prefix, host NQN, target address, port, three timeouts, host id.
//! Oracles:
//! - nothing panics;
//! - an accepted NQN is at most 223 bytes of `[a-z0-9.:-]` starting `nqn.`, unchanged;
//! - every NQN the gateway would export is one the helper accepts (or a volume could never attach);
//! - a prefix manages only NQNs that start with it and are longer;
//! - a UUID NQN round-trips through its UUID;
//! - the option string written to `/dev/nvme-fabrics` for accepted values is exactly the nine
//!   `key=value` options in the kernel's order, with the NQNs verbatim and nothing injected.

use std::net::IpAddr;

use nvme_helper::connect_spec::ConnectSpec;
use nvme_helper::nqn::{NQN_MAX_LEN, Nqn, NqnPrefix};
use uuid::Uuid;

use crate::input::Fields;

/// Tokens of NQNs and connect options.
pub const DICTIONARY: &[&[u8]] = &[
    b"nqn.2000-02.com.mikrotik:pvc-",
    b"nqn.2014-08.org.nvmexpress:uuid:",
    b"nqn.2014-08.org.nvmexpress.discovery",
    b"nqn.1999-12.",
    b"nqn.2000-13.",
    b"nqn.2000-00.",
    b".com.",
    b"..",
    b"::",
    b",hostnqn=",
    b",traddr=",
    b"10.42.68.1",
    b"fe80::1",
    b"ff02::1",
    b"255.255.255.255",
    b"0.0.0.0",
    b"604800",
    b"604801",
    b"3600",
    b"3601",
];

const OPTION_KEYS: [&str; 9] = [
    "transport",
    "traddr",
    "trsvcid",
    "nqn",
    "hostnqn",
    "hostid",
    "ctrl_loss_tmo",
    "reconnect_delay",
    "keep_alive_tmo",
];

fn helper_nqn(raw: &str) -> Option<Nqn> {
    match Nqn::new(raw) {
        Ok(n) => {
            assert_eq!(n.as_str(), raw, "an NQN changed when accepted");
            assert!(
                raw.len() <= NQN_MAX_LEN
                    && raw.starts_with("nqn.")
                    && raw.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b":.-".contains(&b)),
                "helper accepted NQN {raw:?}"
            );
            Some(n)
        }
        Err(_) => None,
    }
}

/// Validates the fuzzed names, renders a connect spec and checks the oracles above.
pub fn nqn(data: &[u8]) {
    let mut f = Fields::new(data);
    let nqn_raw = f.text();
    let prefix_raw = f.text();
    let host_raw = f.text();
    let traddr = f.text();
    let port: Option<u16> = f.number();
    let ctrl_loss: Option<i32> = f.number();
    let reconnect: Option<u32> = f.number();
    let keep_alive: Option<u32> = f.number();
    let host_id = f.bytes();

    let nqn = helper_nqn(&nqn_raw);
    let host = helper_nqn(&host_raw);
    if rds_gateway::routeros::names::Nqn::parse(&nqn_raw).is_ok() {
        assert!(
            nqn.is_some(),
            "the gateway exports NQN {nqn_raw:?}, which the node helper refuses"
        );
    }

    if let Ok(prefix) = NqnPrefix::new(prefix_raw.to_string())
        && let Some(n) = &nqn
    {
        let manages = prefix.manages(n);
        assert_eq!(
            manages,
            n.as_str().starts_with(prefix.as_str()) && n.as_str().len() > prefix.as_str().len(),
            "prefix {prefix} manages {n}: {manages}"
        );
    }

    let mut uuid_bytes = [0u8; 16];
    for (slot, b) in uuid_bytes.iter_mut().zip(host_id) {
        *slot = *b;
    }
    let uuid = Uuid::from_bytes(uuid_bytes);
    let from_uuid = Nqn::from_uuid(uuid);
    assert!(helper_nqn(from_uuid.as_str()).is_some(), "UUID NQN refused");
    assert_eq!(from_uuid.uuid(), Some(uuid), "UUID NQN round trip");

    let (Some(nqn), Some(host), Ok(traddr)) = (nqn, host, traddr.trim().parse::<IpAddr>()) else {
        return;
    };
    let mut spec = ConnectSpec::new(
        traddr,
        port.unwrap_or(4420),
        nqn.clone(),
        host.clone(),
        uuid,
    );
    if let Some(v) = ctrl_loss {
        spec.ctrl_loss_tmo = v;
    }
    if let Some(v) = reconnect {
        spec.reconnect_delay = v;
    }
    if let Some(v) = keep_alive {
        spec.keep_alive_tmo = v;
    }
    let line = spec.to_string();
    if spec.validate().is_err() {
        return;
    }
    let options: Vec<(&str, &str)> = line
        .split(',')
        .map(|piece| {
            piece
                .split_once('=')
                .filter(|(_, v)| !v.contains('='))
                .unwrap_or_else(|| panic!("option {piece:?} is not one key=value in {line:?}"))
        })
        .collect();
    let keys: Vec<&str> = options.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, OPTION_KEYS, "option keys of {line:?}");
    assert_eq!(options[3].1, nqn.as_str(), "nqn option of {line:?}");
    assert_eq!(options[4].1, host.as_str(), "hostnqn option of {line:?}");
    assert!(
        !line.chars().any(|c| c.is_whitespace() || c.is_control()),
        "whitespace or control character in {line:?}"
    );
}
