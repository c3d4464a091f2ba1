//! Identifiers: how CSI names become volume and snapshot ids, and which ids are safe.
//!
//! The ids are the ones the older Go driver produced, so that volumes and snapshots it made
//! keep working after a switch:
//! - a volume id is `pvc-<lowercase uuid>`; it is also the appliance slot. A provisioner name
//!   already of that form is used as is, any other name maps to `pvc-` + UUIDv5 of the name in
//!   the DNS namespace;
//! - the NQN of a volume is `nqn.2000-02.com.mikrotik:<volume id>` and its backing file is
//!   `<volumePath>/<volume id>.img`;
//! - a snapshot id is `snap-<source volume uuid>-at-<first 10 hex digits of UUIDv5(name)>`
//!   (older releases also made `snap-<uuid>` and `snap-<uuid>-at-<unix seconds>`).
//!
//! Every id that reaches the frontend is parsed here first. Anything that is not a well-formed
//! id of this driver is `INVALID_ARGUMENT`; a well-formed id that names nothing is left to the
//! caller to answer with `NOT_FOUND`.

use std::fmt;

use uuid::Uuid;

/// The NQN prefix of every subsystem this driver exports, followed by `:<volume id>`.
pub const NQN_PREFIX: &str = "nqn.2000-02.com.mikrotik";

/// The namespace of the name-based UUIDs (the RFC 4122 DNS namespace, as the Go driver used).
pub const NAME_NAMESPACE: Uuid = Uuid::NAMESPACE_DNS;

/// The CSI size limit for names and ids, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Longest node id accepted: a Kubernetes node name (a DNS subdomain) is at most 253 bytes.
pub const MAX_NODE_ID_BYTES: usize = 253;

/// Number of hex digits of the name hash in a snapshot id.
const SNAPSHOT_HASH_DIGITS: usize = 10;

/// Why a name or id was refused. The offending text is shown escaped and shortened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} is required")]
    Empty { what: &'static str },
    #[error(
        "{what} {shown} is not a volume id of this driver: expected pvc-<lowercase uuid>, as CreateVolume returns"
    )]
    NotVolumeId { what: &'static str, shown: String },
    #[error(
        "{what} {shown} is not a snapshot id of this driver: expected snap-<uuid>-at-<hex or digits>, as CreateSnapshot returns"
    )]
    NotSnapshotId { what: &'static str, shown: String },
    #[error(
        "node id {shown} is not a Kubernetes node name (lowercase letters, digits, '-' and '.', at most 253 bytes)"
    )]
    NotNodeId { shown: String },
    #[error("{what} {shown} is not usable: {reason}")]
    BadName {
        what: &'static str,
        shown: String,
        reason: &'static str,
    },
}

/// Renders untrusted text for an error message: quoted, escaped, at most 80 characters.
pub fn shown(raw: &str) -> String {
    const LIMIT: usize = 80;
    let mut out = String::from("\"");
    for (i, c) in raw.chars().enumerate() {
        if i == LIMIT {
            out.push_str("...");
            break;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => out.extend(c.escape_default()),
        }
    }
    out.push('"');
    out
}

/// Whether `s` is a UUID in the lowercase hyphenated form (`8-4-4-4-12` hex digits).
fn is_lower_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// A volume id of this driver: `pvc-<lowercase uuid>`, also the appliance slot name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VolumeId(String);

impl VolumeId {
    /// Maps a CreateVolume name to its volume id.
    ///
    /// CSI spec, CreateVolumeRequest.name: "The suggested name for the storage space. This
    /// field is REQUIRED for idempotency." The mapping is a pure function of the name, so a
    /// retried CreateVolume finds the volume its first attempt made.
    pub fn from_name(name: &str) -> Result<VolumeId, IdError> {
        check_name("volume name", name)?;
        if let Some(uuid) = name.strip_prefix("pvc-")
            && is_lower_uuid(uuid)
        {
            return Ok(VolumeId(name.to_string()));
        }
        let uuid = Uuid::new_v5(&NAME_NAMESPACE, name.as_bytes());
        Ok(VolumeId(format!("pvc-{}", uuid.hyphenated())))
    }

    /// Parses a volume id received in a request field called `what`.
    pub fn parse(what: &'static str, raw: &str) -> Result<VolumeId, IdError> {
        Self::check(what, raw)?;
        Ok(VolumeId(raw.to_string()))
    }

    /// Whether `raw` is a volume id [`VolumeId::parse`] would accept (a listing's filter, which
    /// then moves the checked string into its answer instead of parsing it again).
    pub fn is_valid(raw: &str) -> bool {
        Self::check("", raw).is_ok()
    }

    fn check(what: &'static str, raw: &str) -> Result<(), IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty { what });
        }
        match raw.strip_prefix("pvc-") {
            Some(uuid) if is_lower_uuid(uuid) => Ok(()),
            _ => Err(IdError::NotVolumeId {
                what,
                shown: shown(raw),
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned string, without a copy.
    pub fn into_string(self) -> String {
        self.0
    }

    /// The uuid part, without `pvc-`.
    pub fn uuid(&self) -> &str {
        self.0.get(4..).unwrap_or_default()
    }

    /// The NVMe qualified name the volume is exported under.
    pub fn nqn(&self) -> String {
        format!("{NQN_PREFIX}:{}", self.0)
    }

    /// The backing file of the volume under the appliance directory `base`.
    pub fn backing_file(&self, base: &str) -> String {
        format!("{}/{}.img", base.trim_end_matches('/'), self.0)
    }
}

impl AsRef<str> for VolumeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VolumeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A snapshot id of this driver.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotId(String);

impl SnapshotId {
    /// The id of the snapshot called `name` of volume `source`.
    ///
    /// CSI spec, CreateSnapshotRequest.name: "The suggested name for the snapshot. This field
    /// is REQUIRED for idempotency." The id embeds the source so the source can be recovered
    /// from the id alone, and a hash of the name so a retry maps to the same snapshot.
    pub fn for_snapshot(name: &str, source: &VolumeId) -> Result<SnapshotId, IdError> {
        check_name("snapshot name", name)?;
        Ok(SnapshotId(format!(
            "snap-{}-at-{}",
            source.uuid(),
            name_hash(name)
        )))
    }

    /// Parses a snapshot id received in a request field called `what`.
    pub fn parse(what: &'static str, raw: &str) -> Result<SnapshotId, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty { what });
        }
        let bad = || IdError::NotSnapshotId {
            what,
            shown: shown(raw),
        };
        let rest = raw.strip_prefix("snap-").ok_or_else(bad)?;
        if rest.len() < 36 || !rest.is_char_boundary(36) {
            return Err(bad());
        }
        let (uuid, tail) = rest.split_at(36);
        if !is_lower_uuid(uuid) {
            return Err(bad());
        }
        if tail.is_empty() {
            return Ok(SnapshotId(raw.to_string()));
        }
        let suffix = tail.strip_prefix("-at-").ok_or_else(bad)?;
        // At most 18 digits: `snap-<uuid>-at-` is 45 bytes and the id is also the appliance
        // slot, which holds at most 63.
        let ok = !suffix.is_empty()
            && suffix.len() <= 18
            && suffix
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        if ok {
            Ok(SnapshotId(raw.to_string()))
        } else {
            Err(bad())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The volume this snapshot was taken of, as recorded in the id.
    pub fn source_volume(&self) -> VolumeId {
        VolumeId(format!("pvc-{}", self.0.get(5..41).unwrap_or_default()))
    }

    /// The name-hash suffix (`-at-<suffix>`), when the id has one.
    pub fn suffix(&self) -> Option<&str> {
        self.0.get(41..).and_then(|t| t.strip_prefix("-at-"))
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The first ten hex digits of UUIDv5(name), the suffix of a snapshot id.
pub fn name_hash(name: &str) -> String {
    let simple = Uuid::new_v5(&NAME_NAMESPACE, name.as_bytes())
        .simple()
        .to_string();
    simple
        .get(..SNAPSHOT_HASH_DIGITS)
        .unwrap_or_default()
        .to_string()
}

/// A node id: the Kubernetes node name this driver's node plugin reported.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

impl NodeId {
    /// Parses a node id: a DNS subdomain (lowercase letters, digits, `-`, `.`), the form of a
    /// Kubernetes node name.
    pub fn parse(raw: &str) -> Result<NodeId, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty { what: "node_id" });
        }
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        let ok = raw.len() <= MAX_NODE_ID_BYTES
            && raw.split('.').all(|label| {
                let b = label.as_bytes();
                !b.is_empty()
                    && b.len() <= 63
                    && b.first().is_some_and(|&c| alnum(c))
                    && b.last().is_some_and(|&c| alnum(c))
                    && b.iter().all(|&c| alnum(c) || c == b'-')
            });
        if ok {
            Ok(NodeId(raw.to_string()))
        } else {
            Err(IdError::NotNodeId { shown: shown(raw) })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a CO-chosen name. CSI spec: "Any Unicode string that conforms to the length limit is
/// allowed except those containing the following banned characters: U+0000-U+0008, U+000B,
/// U+000C, U+000E-U+001F, U+007F-U+009F."
fn check_name(what: &'static str, name: &str) -> Result<(), IdError> {
    if name.is_empty() {
        return Err(IdError::Empty { what });
    }
    let bad = |reason| IdError::BadName {
        what,
        shown: shown(name),
        reason,
    };
    if name.len() > MAX_ID_BYTES {
        return Err(bad("longer than the CSI limit of 128 bytes"));
    }
    let banned = |c: char| matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{9f}');
    if name.chars().any(banned) {
        return Err(bad(
            "contains a control character the CSI spec bans in names",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// The DNS namespace, written out here rather than taken from the code under test.
    fn dns_namespace() -> Uuid {
        Uuid::parse_str("6ba7b810-9dad-11d1-80b4-00c04fd430c8").unwrap()
    }

    #[test]
    fn provisioner_names_are_kept() {
        let name = "pvc-0f6b1c2e-1c1d-4e0b-9a55-3f0b7d2c9e11";
        let id = VolumeId::from_name(name).unwrap();
        assert_eq!(id.as_str(), name);
        assert_eq!(id.uuid(), "0f6b1c2e-1c1d-4e0b-9a55-3f0b7d2c9e11");
    }

    #[test]
    fn other_names_map_to_uuid5_like_the_go_driver() {
        for name in [
            "my-volume",
            "PVC-0F6B1C2E-1C1D-4E0B-9A55-3F0B7D2C9E11",
            "pvc-not-a-uuid",
            "sanity-test-😀",
        ] {
            let expected = format!(
                "pvc-{}",
                Uuid::new_v5(&dns_namespace(), name.as_bytes()).hyphenated()
            );
            let id = VolumeId::from_name(name).unwrap();
            assert_eq!(id.as_str(), expected, "{name}");
            // The mapped id is itself a valid id and maps to itself.
            assert_eq!(VolumeId::parse("volume_id", id.as_str()).unwrap(), id);
            assert_eq!(VolumeId::from_name(id.as_str()).unwrap(), id);
        }
    }

    #[test]
    fn nqn_and_backing_file_follow_the_go_layout() {
        let id = VolumeId::parse("volume_id", "pvc-11111111-2222-3333-4444-555555555555").unwrap();
        assert_eq!(
            id.nqn(),
            "nqn.2000-02.com.mikrotik:pvc-11111111-2222-3333-4444-555555555555"
        );
        assert_eq!(
            id.backing_file("/storage-pool/kubernetes-volumes"),
            "/storage-pool/kubernetes-volumes/pvc-11111111-2222-3333-4444-555555555555.img"
        );
        assert_eq!(
            id.backing_file("/raid10/"),
            "/raid10/pvc-11111111-2222-3333-4444-555555555555.img"
        );
    }

    #[test]
    fn snapshot_ids_match_the_go_driver() {
        let source =
            VolumeId::parse("volume_id", "pvc-a1b2c3d4-e5f6-4890-abcd-ef1234567890").unwrap();
        for name in ["snapshot-7c1e", "daily", "x"] {
            let hash = Uuid::new_v5(&dns_namespace(), name.as_bytes())
                .hyphenated()
                .to_string()
                .replace('-', "");
            let expected = format!(
                "snap-a1b2c3d4-e5f6-4890-abcd-ef1234567890-at-{}",
                &hash[..10]
            );
            let id = SnapshotId::for_snapshot(name, &source).unwrap();
            assert_eq!(id.as_str(), expected);
            assert_eq!(id.source_volume(), source);
            assert_eq!(id.suffix(), Some(&hash[..10]));
            assert_eq!(SnapshotId::parse("snapshot_id", &expected).unwrap(), id);
        }
    }

    #[test]
    fn older_snapshot_forms_are_accepted() {
        for raw in [
            "snap-a1b2c3d4-e5f6-4890-abcd-ef1234567890",
            "snap-a1b2c3d4-e5f6-4890-abcd-ef1234567890-at-1739800000",
        ] {
            let id = SnapshotId::parse("snapshot_id", raw).unwrap();
            assert_eq!(
                id.source_volume().as_str(),
                "pvc-a1b2c3d4-e5f6-4890-abcd-ef1234567890"
            );
        }
    }

    #[test]
    fn unsafe_volume_ids_are_refused() {
        for raw in [
            "vol-1",
            "pvc-",
            "pvc-A1B2C3D4-E5F6-4890-ABCD-EF1234567890",
            "pvc-a1b2c3d4-e5f6-4890-abcd-ef1234567890x",
            "pvc-a1b2c3d4e5f64890abcdef1234567890",
            "pvc-a1b2c3d4-e5f6-4890-abcd-ef123456789;",
            "pvc-a1b2c3d4-e5f6-4890-abcd-ef12345678\u{e9}",
            "../pvc-a1b2c3d4-e5f6-4890-abcd-ef1234567890",
            "a1b2c3d4-e5f6-4890-abcd-ef1234567890",
        ] {
            let err = VolumeId::parse("volume_id", raw).unwrap_err();
            assert!(matches!(err, IdError::NotVolumeId { .. }), "{raw}: {err}");
            assert!(!VolumeId::is_valid(raw), "{raw}");
        }
        let good = "pvc-a1b2c3d4-e5f6-4890-abcd-ef1234567890";
        assert!(VolumeId::is_valid(good));
        assert_eq!(VolumeId::parse("volume_id", good).unwrap().as_str(), good);
        assert!(!VolumeId::is_valid(""));
        assert_eq!(
            VolumeId::parse("volume_id", "").unwrap_err(),
            IdError::Empty { what: "volume_id" }
        );
    }

    #[test]
    fn unsafe_snapshot_ids_are_refused() {
        for raw in [
            "snap-",
            "snap-a1b2c3d4-e5f6-4890-abcd-ef1234567890-at-",
            "snap-a1b2c3d4-e5f6-4890-abcd-ef1234567890-at-XYZ",
            "snap-a1b2c3d4-e5f6-4890-abcd-ef1234567890-x",
            "snap-a1b2c3d4-e5f6-4890-abcd-ef1234567890-at-12;rm",
            "pvc-a1b2c3d4-e5f6-4890-abcd-ef1234567890",
            "snap-\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
        ] {
            let err = SnapshotId::parse("snapshot_id", raw).unwrap_err();
            assert!(matches!(err, IdError::NotSnapshotId { .. }), "{raw}: {err}");
        }
    }

    #[test]
    fn node_ids() {
        for ok in ["node-1", "worker.example.com", "a"] {
            assert_eq!(NodeId::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "Node-1",
            "-node",
            "node-",
            "node..x",
            "node 1",
            "node/1",
            &"a".repeat(64),
            &format!("{}.b", "a.".repeat(130)),
        ] {
            assert!(
                matches!(NodeId::parse(bad), Err(IdError::NotNodeId { .. })),
                "{bad}"
            );
        }
        assert!(matches!(NodeId::parse(""), Err(IdError::Empty { .. })));
    }

    #[test]
    fn names_with_banned_characters_or_too_long_are_refused() {
        assert!(matches!(
            VolumeId::from_name("bad\u{1}name"),
            Err(IdError::BadName { .. })
        ));
        assert!(matches!(
            VolumeId::from_name(&"n".repeat(129)),
            Err(IdError::BadName { .. })
        ));
        assert!(VolumeId::from_name(&"n".repeat(128)).is_ok());
        // Common whitespace is allowed by the spec.
        assert!(VolumeId::from_name("tab\tname").is_ok());
        assert!(matches!(
            VolumeId::from_name(""),
            Err(IdError::Empty { .. })
        ));
    }

    #[test]
    fn messages_escape_hostile_text() {
        let err = VolumeId::parse("volume_id", "x\"\n\u{7}").unwrap_err();
        let text = err.to_string();
        assert!(!text.contains('\n') && !text.contains('\u{7}'), "{text}");
        assert!(text.contains("volume_id"));
    }
}
