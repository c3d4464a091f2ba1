//! Names and ids the cases send: unique names for what they create, and ids that name
//! nothing, in this driver's form or in a foreign form.
//!
//! csi-sanity lets a driver plug in its own generator of "valid" ids; this is ours. A
//! valid volume id has the form CreateVolume returns (`pvc-<uuid>`), so a case that sends
//! one for a volume that does not exist tests the NOT_FOUND path rather than the parser.

use std::sync::atomic::{AtomicUsize, Ordering};

use uuid::Uuid;

/// The CSI length limit for names.
pub const MAX_NAME_LEN: usize = 128;

/// Generates names and ids for one run.
#[derive(Debug)]
pub struct IdGen {
    run: String,
    counter: AtomicUsize,
}

impl Default for IdGen {
    fn default() -> Self {
        IdGen::new()
    }
}

impl IdGen {
    /// A generator whose names carry a fresh per-run suffix.
    pub fn new() -> IdGen {
        IdGen {
            run: Uuid::new_v4().simple().to_string()[..8].to_string(),
            counter: AtomicUsize::new(0),
        }
    }

    /// `prefix` made unique to this run and this call.
    pub fn unique(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{}-{n}", self.run)
    }

    /// A unique name exactly `len` bytes long (`len` at least 24).
    pub fn unique_with_length(&self, prefix: &str, len: usize) -> String {
        let tail = self.unique("");
        let room = len.saturating_sub(tail.len());
        let mut head: String = prefix.chars().take(room).collect();
        while head.len() < room {
            head.push('x');
        }
        format!("{head}{tail}")
    }

    /// A volume id in this driver's form that no volume has.
    pub fn absent_volume_id(&self) -> String {
        format!("pvc-{}", Uuid::new_v4().hyphenated())
    }

    /// A volume id this driver would never issue.
    pub fn foreign_volume_id(&self) -> String {
        "conformance-not-a-volume-id".to_string()
    }

    /// A snapshot id in this driver's form that no snapshot has.
    pub fn absent_snapshot_id(&self) -> String {
        let hash = Uuid::new_v4().simple().to_string();
        format!("snap-{}-at-{}", Uuid::new_v4().hyphenated(), &hash[..10])
    }

    /// A snapshot id this driver would never issue.
    pub fn foreign_snapshot_id(&self) -> String {
        "conformance-no-such-snapshot".to_string()
    }

    /// A well-formed node name that is not the testbed's node.
    pub fn absent_node_id(&self) -> String {
        format!("absent-node-{}", &Uuid::new_v4().simple().to_string()[..10])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn names_are_unique_and_exact_length_names_are_exact() {
        let g = IdGen::new();
        assert_ne!(g.unique("a"), g.unique("a"));
        let long = g.unique_with_length("conformance-maxlen", MAX_NAME_LEN);
        assert_eq!(long.len(), MAX_NAME_LEN);
        assert!(long.starts_with("conformance-maxlen"));
        assert_ne!(
            long,
            g.unique_with_length("conformance-maxlen", MAX_NAME_LEN)
        );
    }

    #[test]
    fn absent_ids_have_the_driver_form() {
        let g = IdGen::new();
        let v = g.absent_volume_id();
        assert!(
            v.starts_with("pvc-") && Uuid::parse_str(&v[4..]).is_ok(),
            "{v}"
        );
        let s = g.absent_snapshot_id();
        assert!(s.starts_with("snap-") && s.len() == 5 + 36 + 4 + 10, "{s}");
        let n = g.absent_node_id();
        assert!(
            n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{n}"
        );
        assert_ne!(g.absent_volume_id(), v);
    }
}
