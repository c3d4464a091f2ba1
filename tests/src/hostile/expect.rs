//! What each hostile case must be answered with, and the rules the expectations follow: the CSI
//! spec's rule for names ("Any Unicode string that conforms to the length limit is allowed
//! except those containing the following banned characters: U+0000-U+0008, U+000B, U+000C,
//! U+000E-U+001F, U+007F-U+009F", at most 128 bytes), Kubernetes' rule for node names (a DNS
//! subdomain), and the value syntax the driver documents for its StorageClass parameters and
//! mount flags. A payload that happens to be valid for a field is either sent expecting OK (a
//! CO-chosen name is hashed into the volume id, so it still must not reach the appliance) or
//! not sent at all (where a valid value would act on the fixture).

use tonic::Code;

use crate::fault_matrix::spec_codes::{Rpc, allows};

/// What must hold of a successful answer besides its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Nothing,
    /// CreateVolume / CreateSnapshot: the returned id is well-formed and holds no payload.
    CleanId,
    /// ValidateVolumeCapabilities: `confirmed` must be unset.
    NotConfirmed,
    /// A listing: no entries.
    NoEntries,
    /// GetCapacity: no capacity for capabilities no volume can have.
    NoCapacity,
}

/// The expected outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// Any of these codes (OK included when success is right).
    pub codes: Vec<Code>,
    pub check: Check,
    /// Why, for the report.
    pub why: &'static str,
}

impl Expect {
    pub fn one(code: Code, why: &'static str) -> Expect {
        Expect {
            codes: vec![code],
            check: Check::Nothing,
            why,
        }
    }

    pub fn any(codes: &[Code], why: &'static str) -> Expect {
        Expect {
            codes: codes.to_vec(),
            check: Check::Nothing,
            why,
        }
    }

    pub fn ok(check: Check, why: &'static str) -> Expect {
        Expect {
            codes: vec![Code::Ok],
            check,
            why,
        }
    }

    pub fn invalid(why: &'static str) -> Expect {
        Expect::one(Code::InvalidArgument, why)
    }

    /// The codes the spec does not allow for `rpc` at all (a mistake in the expectation).
    pub fn outside_spec(&self, rpc: Rpc) -> Vec<Code> {
        self.codes
            .iter()
            .copied()
            .filter(|c| !allows(rpc, *c))
            .collect()
    }
}

/// CSI spec: the banned characters of a CO-chosen name.
pub fn csi_banned(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// CSI spec: a valid CO-chosen name (CreateVolume, CreateSnapshot).
pub fn csi_name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.chars().any(csi_banned)
}

/// A Kubernetes node name: a DNS subdomain of lowercase labels, at most 253 bytes.
pub fn node_name_ok(s: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.first().is_some_and(|c| alnum(*c))
                && b.last().is_some_and(|c| alnum(*c))
                && b.iter().all(|c| alnum(*c) || *c == b'-')
        })
}

fn plain(s: &str, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// The documented syntax of a mount flag: letters, digits and `_ = . : + -`.
pub fn mount_flag_ok(s: &str) -> bool {
    plain(s, b"_=.:+-")
}

/// The documented syntax of `mountOptions`: comma-separated mount flags.
pub fn mount_options_ok(s: &str) -> bool {
    let opts: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .collect();
    opts.len() <= 32 && opts.iter().all(|o| mount_flag_ok(o))
}

/// The documented syntax of `mkfsOptions`: whitespace-separated words of letters, digits and
/// `_ = . , : + -`.
pub fn mkfs_options_ok(s: &str) -> bool {
    let words: Vec<&str> = s.split_whitespace().collect();
    words.len() <= 32 && words.iter().all(|w| plain(w, b"_=.,:+-"))
}

/// The documented syntax of `volumePath`: `/`-separated components of letters, digits, `.`,
/// `_`, `-`, none empty, `.` or `..`, at most 200 bytes.
pub fn volume_path_ok(s: &str) -> bool {
    let rel = s.strip_prefix('/').unwrap_or(s);
    !rel.is_empty()
        && rel.len() <= 200
        && rel.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

/// A volume id of this driver: `pvc-` and a lowercase hyphenated uuid.
pub fn volume_id_ok(s: &str) -> bool {
    s.strip_prefix("pvc-").is_some_and(|u| {
        u.len() == 36
            && u.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            })
    })
}

/// A snapshot id of this driver: `snap-<uuid>` with an optional `-at-<hex or digits>`.
pub fn snapshot_id_ok(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("snap-") else {
        return false;
    };
    if rest.len() < 36 || !rest.is_char_boundary(36) {
        return false;
    }
    let (uuid, tail) = rest.split_at(36);
    volume_id_ok(&format!("pvc-{uuid}"))
        && (tail.is_empty()
            || tail.strip_prefix("-at-").is_some_and(|x| {
                !x.is_empty()
                    && x.len() <= 32
                    && x.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_name_rule() {
        assert!(csi_name_ok("a;b [find] \"x\" $y {z} \\ `w`"));
        assert!(csi_name_ok("tab\tand\nnewline\rand\u{202e}rtl"));
        assert!(!csi_name_ok("nul\0"));
        assert!(!csi_name_ok("esc\u{1b}"));
        assert!(!csi_name_ok("c1\u{85}"));
        assert!(!csi_name_ok(&"n".repeat(129)));
        assert!(csi_name_ok(&"n".repeat(128)));
        assert!(!csi_name_ok(""));
    }

    #[test]
    fn node_names_and_documented_value_syntax() {
        assert!(node_name_ok("worker-1.example.com"));
        assert!(!node_name_ok("Worker"));
        assert!(!node_name_ok("a;b"));
        assert!(mount_flag_ok("noatime") && mount_flag_ok("PVC-ABC"));
        assert!(!mount_flag_ok("a,b") && !mount_flag_ok("a b") && !mount_flag_ok(""));
        assert!(mount_options_ok("noatime, discard"));
        assert!(!mount_options_ok("noatime;reboot"));
        assert!(mkfs_options_ok("-m 0 -E lazy_itable_init=0"));
        assert!(!mkfs_options_ok("-L `id`"));
        assert!(volume_path_ok("/storage-pool/x") && volume_path_ok("PVC-1"));
        assert!(!volume_path_ok("/a/../b") && !volume_path_ok("/") && !volume_path_ok("a;b"));
    }

    #[test]
    fn ids_of_this_driver() {
        let u = "0f6b1c2e-1c1d-4e0b-9a55-3f0b7d2c9e11";
        assert!(volume_id_ok(&format!("pvc-{u}")));
        assert!(!volume_id_ok(&format!("pvc-{}", u.to_uppercase())));
        assert!(!volume_id_ok(&format!("pvc\u{2010}{u}")));
        assert!(!volume_id_ok(&format!("pvc-{u} ")));
        assert!(snapshot_id_ok(&format!("snap-{u}-at-0123abcdef")));
        assert!(snapshot_id_ok(&format!("snap-{u}")));
        assert!(!snapshot_id_ok(&format!("snap-{u}-at-;x")));
    }

    #[test]
    fn expectations_outside_the_spec_are_caught() {
        let e = Expect::any(&[Code::NotFound, Code::Internal], "x");
        assert_eq!(
            e.outside_spec(Rpc::ControllerGetVolume),
            vec![Code::Internal]
        );
        assert!(
            Expect::invalid("x")
                .outside_spec(Rpc::NodeStageVolume)
                .is_empty()
        );
    }
}
