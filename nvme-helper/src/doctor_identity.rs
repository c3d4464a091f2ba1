//! Doctor checks of the host identity: the host NQN and host id files exist, parse, are not a
//! value other machines share, and form one pair.
//!
//! Parsing and the list of known placeholders are the helper's own (`host_identity`), so the
//! doctor refuses exactly what the helper refuses at start-up, and then a little more: a UUID
//! in which one hex digit fills more than half of the 32 places is a firmware or hand-written
//! placeholder (a random or firmware-serial UUID practically never is), and a host id that
//! differs from the UUID inside a UUID-form host NQN breaks the kernel's one-to-one pairing of
//! the two. Duplicates across nodes cannot be seen from one node; the most common cause, an
//! image that ships `/etc/nvme/hostnqn` (nvme-cli's package installation writes one), is named
//! in the fix, and a passing line shows the value so nodes can be compared.

use std::path::Path;

use uuid::Uuid;

use crate::doctor::Check;
use crate::host_identity::{HostIdentityFiles, parse_hostid, parse_hostnqn, read_optional};
use crate::nqn::Nqn;

/// Name of the host NQN check.
pub const HOSTNQN_CHECK: &str = "host-nqn";
/// Name of the host id check.
pub const HOSTID_CHECK: &str = "host-id";
/// Name of the pairing check.
pub const PAIR_CHECK: &str = "host-id-matches-nqn";

/// Why a UUID looks like a placeholder: the digit that dominates it and how often it occurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowEntropy {
    /// The dominating hex digit.
    pub digit: char,
    /// How many of the 32 digits it is.
    pub count: usize,
}

/// A UUID in which one hex digit is more than half of the 32 digits.
pub fn low_entropy(uuid: Uuid) -> Option<LowEntropy> {
    let text = uuid.simple().to_string();
    let mut counts = [0usize; 16];
    for c in text.chars() {
        if let Some(d) = c.to_digit(16).and_then(|d| usize::try_from(d).ok())
            && let Some(slot) = counts.get_mut(d)
        {
            *slot += 1;
        }
    }
    let (digit, count) = counts
        .iter()
        .enumerate()
        .max_by_key(|(_, n)| **n)
        .map(|(d, n)| (d, *n))?;
    let digit = u32::try_from(digit)
        .ok()
        .and_then(|d| char::from_digit(d, 16))?;
    (count * 2 > text.len()).then_some(LowEntropy { digit, count })
}

fn low_entropy_text(uuid: Uuid, found: LowEntropy) -> String {
    format!(
        "{uuid} is a placeholder: {} of its 32 digits are '{}', as in firmware defaults that \
         many machines share",
        found.count, found.digit
    )
}

fn regenerate_fix(files: &HostIdentityFiles) -> String {
    format!(
        "give this node its own pair: delete {} and {} and restart the helper (it writes a \
         random unique pair), or run `nvme gen-hostnqn > {}` and write the UUID in it to {}; \
         an image that ships /etc/nvme/hostnqn gives every clone the same identity",
        files.hostnqn.display(),
        files.hostid.display(),
        files.hostnqn.display(),
        files.hostid.display()
    )
}

/// The three identity checks: `host-nqn`, `host-id` and `host-id-matches-nqn`.
pub fn host_identity(files: &HostIdentityFiles) -> Vec<Check> {
    let nqn = host_nqn(files);
    let id = host_id(files);
    let pair = match (&nqn, &id) {
        (Ok(nqn), Ok(id)) => pairing(files, nqn, *id),
        _ => Check::skip(PAIR_CHECK, "needs a valid host NQN and host id"),
    };
    let nqn = match nqn {
        Ok(nqn) => Check::pass(
            HOSTNQN_CHECK,
            format!(
                "{nqn} (from {}); every node must show a different one",
                files.hostnqn.display()
            ),
        ),
        Err(failed) => failed,
    };
    let id = match id {
        Ok(id) => Check::pass(
            HOSTID_CHECK,
            format!("{id} (from {})", files.hostid.display()),
        ),
        Err(failed) => failed,
    };
    vec![nqn, id, pair]
}

/// The host NQN, or the failed check saying why it is unusable.
fn host_nqn(files: &HostIdentityFiles) -> Result<Nqn, Check> {
    let path = &files.hostnqn;
    let text = read_present(HOSTNQN_CHECK, path, files)?;
    let nqn = parse_hostnqn(path, &text)
        .map_err(|e| Check::fail(HOSTNQN_CHECK, e.to_string(), regenerate_fix(files)))?;
    if let Some(uuid) = nqn.uuid()
        && let Some(found) = low_entropy(uuid)
    {
        return Err(Check::fail(
            HOSTNQN_CHECK,
            format!(
                "host NQN {nqn} in {}: {}",
                path.display(),
                low_entropy_text(uuid, found)
            ),
            regenerate_fix(files),
        ));
    }
    Ok(nqn)
}

/// The host id, or the failed check saying why it is unusable.
fn host_id(files: &HostIdentityFiles) -> Result<Uuid, Check> {
    let path = &files.hostid;
    let text = read_present(HOSTID_CHECK, path, files)?;
    let id = parse_hostid(path, &text)
        .map_err(|e| Check::fail(HOSTID_CHECK, e.to_string(), regenerate_fix(files)))?;
    if let Some(found) = low_entropy(id) {
        return Err(Check::fail(
            HOSTID_CHECK,
            format!(
                "host id in {}: {}",
                path.display(),
                low_entropy_text(id, found)
            ),
            regenerate_fix(files),
        ));
    }
    Ok(id)
}

/// The trimmed content of an identity file that must exist.
fn read_present(
    check: &'static str,
    path: &Path,
    files: &HostIdentityFiles,
) -> Result<String, Check> {
    match read_optional(path) {
        Ok(Some(text)) => Ok(text),
        Ok(None) => Err(Check::fail(
            check,
            format!("{} does not exist", path.display()),
            format!(
                "start the helper once (it writes a unique pair), or run `nvme gen-hostnqn > {}` \
                 and write the UUID in it to {}; keep /etc/nvme on the node (hostPath) so the \
                 identity survives restarts",
                files.hostnqn.display(),
                files.hostid.display()
            ),
        )),
        Err(e) => Err(Check::fail(
            check,
            e.to_string(),
            format!(
                "make {} a readable text file of one line, or delete it and restart the helper",
                path.display()
            ),
        )),
    }
}

/// A UUID-form host NQN must carry the host id.
fn pairing(files: &HostIdentityFiles, nqn: &Nqn, id: Uuid) -> Check {
    match nqn.uuid() {
        None => Check::skip(
            PAIR_CHECK,
            format!("host NQN {nqn} is not UUID-form; nothing to compare"),
        ),
        Some(embedded) if embedded == id => Check::pass(
            PAIR_CHECK,
            format!("host id {id} is the UUID in the host NQN"),
        ),
        Some(embedded) => Check::fail(
            PAIR_CHECK,
            format!("host id {id} differs from the UUID {embedded} in host NQN {nqn}"),
            format!(
                "make them one pair: `echo {embedded} > {}` (the kernel binds each host id to \
                 one host NQN and refuses a connect that pairs either with another)",
                files.hostid.display()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::fs;

    fn uuid(text: &str) -> Uuid {
        Uuid::try_parse(text).unwrap()
    }

    #[test]
    fn low_entropy_flags_firmware_and_hand_written_uuids() {
        for (text, digit, count) in [
            ("00000000-0000-0000-0000-000000000000", '0', 32),
            ("ffffffff-ffff-ffff-ffff-ffffffffffff", 'f', 32),
            ("03000200-0400-0500-0006-000700080009", '0', 24),
            ("11111111-1111-1111-1111-111111111112", '1', 31),
            ("00000000-0000-0000-0000-ac1f6b7aeb90", '0', 21),
        ] {
            assert_eq!(
                low_entropy(uuid(text)),
                Some(LowEntropy { digit, count }),
                "{text}"
            );
        }
    }

    #[test]
    fn low_entropy_passes_real_uuids() {
        // Half the digits is not more than half.
        assert_eq!(
            low_entropy(uuid("00000000-0000-0000-1234-56789abcdef1")),
            None
        );
        // A DMI UUID derived from a service tag, and an nvme-cli style random one.
        assert_eq!(
            low_entropy(uuid("4c4c4544-0042-3510-8052-b4c04f4e3232")),
            None
        );
        assert_eq!(
            low_entropy(uuid("befdec4c-2234-11b2-a85c-ca77c773af36")),
            None
        );
        for _ in 0..10_000 {
            let random = Uuid::new_v4();
            assert_eq!(low_entropy(random), None, "{random}");
        }
    }

    fn files(dir: &Path, nqn: Option<&str>, id: Option<&str>) -> HostIdentityFiles {
        let files = HostIdentityFiles {
            hostnqn: dir.join("hostnqn"),
            hostid: dir.join("hostid"),
        };
        if let Some(nqn) = nqn {
            fs::write(&files.hostnqn, format!("{nqn}\n")).unwrap();
        }
        if let Some(id) = id {
            fs::write(&files.hostid, format!("{id}\n")).unwrap();
        }
        files
    }

    fn statuses(checks: &[Check]) -> Vec<(&str, crate::doctor::Status)> {
        checks.iter().map(|c| (c.name, c.status)).collect()
    }

    #[test]
    fn placeholders_fail_and_a_good_pair_passes() {
        use crate::doctor::Status::{Fail, Pass, Skip};
        let tmp = tempfile::tempdir().unwrap();
        let good = Uuid::new_v4();
        let good_nqn = Nqn::from_uuid(good).to_string();
        let good_id = good.to_string();
        // Host NQN file, host id file, the three statuses, and text one line must contain.
        type Case<'a> = (
            Option<String>,
            Option<String>,
            [crate::doctor::Status; 3],
            &'a str,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                Some(good_nqn.clone()),
                Some(good_id.clone()),
                [Pass, Pass, Pass],
                "",
            ),
            (
                Some("nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000000".into()),
                Some(good_id.clone()),
                [Fail, Pass, Skip],
                "the all-zero UUID",
            ),
            (
                Some("nqn.2014-08.org.nvmexpress:uuid:22222222-2222-2222-2222-222222222222".into()),
                Some(good_id.clone()),
                [Fail, Pass, Skip],
                "32 of its 32 digits are '2'",
            ),
            (
                Some(good_nqn.clone()),
                Some("00000000-0000-0000-0000-000000000000".into()),
                [Pass, Fail, Skip],
                "the all-zero UUID",
            ),
            (
                Some(good_nqn.clone()),
                Some("00000000000000000000000000000000".into()),
                [Pass, Fail, Skip],
                "the all-zero UUID",
            ),
            (
                Some(good_nqn.clone()),
                Some(Uuid::new_v4().to_string()),
                [Pass, Pass, Fail],
                "differs from the UUID",
            ),
            (
                Some("nqn.2024-01.io.example:node-7".into()),
                Some(good_id.clone()),
                [Pass, Pass, Skip],
                "not UUID-form",
            ),
            (
                None,
                Some(good_id.clone()),
                [Fail, Pass, Skip],
                "does not exist",
            ),
            (
                Some(good_nqn.clone()),
                None,
                [Pass, Fail, Skip],
                "does not exist",
            ),
        ];
        for (index, (nqn, id, expected, seen)) in cases.into_iter().enumerate() {
            let dir = tmp.path().join(index.to_string());
            fs::create_dir(&dir).unwrap();
            let f = files(&dir, nqn.as_deref(), id.as_deref());
            let checks = host_identity(&f);
            assert_eq!(
                statuses(&checks),
                [
                    (HOSTNQN_CHECK, expected[0]),
                    (HOSTID_CHECK, expected[1]),
                    (PAIR_CHECK, expected[2])
                ],
                "case {index}: {checks:?}"
            );
            assert!(
                checks.iter().any(|c| c.seen.contains(seen)),
                "case {index}: {seen:?} not in {checks:?}"
            );
            for check in &checks {
                assert_eq!(check.fix.is_some(), check.status == Fail, "{check:?}");
            }
            // The doctor never writes the identity.
            assert_eq!(f.hostnqn.exists(), nqn.is_some(), "case {index}");
            assert_eq!(f.hostid.exists(), id.is_some(), "case {index}");
        }
    }
}
