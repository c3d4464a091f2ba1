//! Validated NVMe Qualified Names and the managed-NQN prefix.
//!
//! An NQN ends up inside the option string written to `/dev/nvme-fabrics` and is compared with
//! sysfs content, so it must be impossible to smuggle a `,` or `=` (another option) or anything
//! unexpected through it. `Nqn` only exists in validated form. `NqnPrefix` is what
//! `--managed-nqn-prefix` parses into; only NQNs it `manages` may ever be disconnected by orphan
//! cleanup (the Go driver once listed every NQN on a diskless node, its own root volume included).

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::error::{HelperError, Result};

/// Longest NQN the NVMe specification allows, in bytes.
pub const NQN_MAX_LEN: usize = 223;

/// The NQN namespace the NVMe specification reserves for UUID-based names.
pub const UUID_NQN_PREFIX: &str = "nqn.2014-08.org.nvmexpress:uuid:";

/// A validated NQN: `nqn.yyyy-mm.<reverse-domain>:<suffix>`, only `[a-z0-9.:-]`, at most 223 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nqn(String);

impl Nqn {
    /// Validates `text` as an NQN.
    pub fn new(text: impl Into<String>) -> Result<Self> {
        let text = text.into();
        match check_nqn(&text) {
            Ok(()) => Ok(Self(text)),
            Err(reason) => Err(HelperError::InvalidNqn { nqn: text, reason }),
        }
    }

    /// The UUID-form NQN (`nqn.2014-08.org.nvmexpress:uuid:<uuid>`) for `uuid`.
    pub fn from_uuid(uuid: Uuid) -> Self {
        // Lower-case hyphenated UUIDs only use [0-9a-f-], so the result is always valid.
        Self(format!("{UUID_NQN_PREFIX}{}", uuid.hyphenated()))
    }

    /// The UUID of a UUID-form NQN, if this is one and the UUID is well formed.
    pub fn uuid(&self) -> Option<Uuid> {
        let rest = self.0.strip_prefix(UUID_NQN_PREFIX)?;
        Uuid::try_parse(rest).ok()
    }

    /// The NQN text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the first `:` (the "user string").
    pub fn suffix(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, rest)| rest)
    }

    /// Consumes the NQN into its text.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Nqn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Nqn {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for Nqn {
    type Err = HelperError;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<String> for Nqn {
    type Error = HelperError;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

/// The prefix of the NQNs this driver owns, e.g. `nqn.2000-02.com.mikrotik:`.
///
/// It must include the `:` that ends the reverse domain, so that a prefix can never match a
/// foreign naming authority that merely starts with the same letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NqnPrefix(String);

impl NqnPrefix {
    /// Validates a managed-NQN prefix.
    pub fn new(text: impl Into<String>) -> Result<Self> {
        let text = text.into();
        let probe = format!("{text}x");
        if let Err(reason) = check_nqn(&probe) {
            return Err(HelperError::InvalidNqnPrefix {
                reason: format!("a name starting with it cannot be an NQN: {reason}"),
                prefix: text,
            });
        }
        Ok(Self(text))
    }

    /// Whether `nqn` belongs to this driver: it starts with the prefix and has something after it.
    pub fn manages(&self, nqn: &Nqn) -> bool {
        nqn.as_str().len() > self.0.len() && nqn.as_str().starts_with(&self.0)
    }

    /// The prefix text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NqnPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for NqnPrefix {
    type Err = HelperError;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

fn allowed_char(c: char) -> bool {
    matches!(c, 'a'..='z' | '0'..='9' | '.' | ':' | '-')
}

/// Returns why `text` is not an acceptable NQN.
fn check_nqn(text: &str) -> std::result::Result<(), String> {
    if text.is_empty() {
        return Err("it is empty".into());
    }
    if text.len() > NQN_MAX_LEN {
        return Err(format!(
            "it is {} bytes long, more than {NQN_MAX_LEN}",
            text.len()
        ));
    }
    if let Some((at, c)) = text.char_indices().find(|(_, c)| !allowed_char(*c)) {
        return Err(format!(
            "character {c:?} at byte {at} is not allowed (only a-z, 0-9, '.', ':' and '-')"
        ));
    }
    let Some(rest) = text.strip_prefix("nqn.") else {
        return Err("it does not start with \"nqn.\"".into());
    };
    // Only ASCII is left, so byte indexing below cannot split a character.
    let date = rest.as_bytes();
    let date_ok = date.len() >= 8
        && date[..4].iter().all(u8::is_ascii_digit)
        && date[4] == b'-'
        && date[5..7].iter().all(u8::is_ascii_digit)
        && date[7] == b'.';
    if !date_ok {
        return Err("it does not continue with a date \"yyyy-mm.\" after \"nqn.\"".into());
    }
    let month = u32::from(date[5] - b'0') * 10 + u32::from(date[6] - b'0');
    if !(1..=12).contains(&month) {
        return Err(format!("month {month:02} is not between 01 and 12"));
    }
    let Some((domain, suffix)) = rest[8..].split_once(':') else {
        return Err("there is no ':' after the reverse domain name".into());
    };
    if domain.is_empty() {
        return Err("the reverse domain name is empty".into());
    }
    if domain.split('.').any(str::is_empty) {
        return Err(format!(
            "the reverse domain name {domain:?} has an empty label"
        ));
    }
    if suffix.is_empty() {
        return Err("nothing follows the ':' after the domain name".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn accepts_real_names() {
        for good in [
            "nqn.2000-02.com.mikrotik:pvc-0d5f7a9e-1c1b-4c53-9c7e-1f4f0a8f3b1d",
            "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            "nqn.2014-08.org.nvmexpress.discovery:x",
            "nqn.1999-12.a:b:c.d-e",
        ] {
            let nqn = Nqn::new(good).unwrap();
            assert_eq!(nqn.as_str(), good);
            assert_eq!(nqn.to_string(), good);
        }
    }

    #[test]
    fn rejects_bad_names_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("nqn.2000-02.com.mikrotik:PVC", "'P'"),
            ("nqn.2000-02.com.mikrotik:a,b", "','"),
            ("nqn.2000-02.com.mikrotik:a=b", "'='"),
            ("nqn.2000-02.com.mikrotik:a b", "' '"),
            ("nqn.2000-02.com.mikrotik:é", "'é'"),
            ("nqx.2000-02.com.mikrotik:a", "does not start"),
            ("nqn.20-02.com.mikrotik:a", "date"),
            ("nqn.2000-2.com.mikrotik:a", "date"),
            ("nqn.2000-13.com.mikrotik:a", "month 13"),
            ("nqn.2000-00.com.mikrotik:a", "month 00"),
            ("nqn.2000-02.com.mikrotik", "no ':'"),
            ("nqn.2000-02.:a", "domain name is empty"),
            ("nqn.2000-02.com..mikrotik:a", "empty label"),
            ("nqn.2000-02.com.mikrotik:", "nothing follows"),
        ];
        for (bad, why) in cases {
            let err = Nqn::new(bad).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(why), "{bad:?}: {text}");
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
        }
    }

    #[test]
    fn length_limit_is_223_bytes() {
        let head = "nqn.2000-02.com.mikrotik:";
        let exact = format!("{head}{}", "a".repeat(NQN_MAX_LEN - head.len()));
        assert!(Nqn::new(exact.clone()).is_ok());
        let over = format!("{exact}a");
        assert!(
            Nqn::new(over)
                .unwrap_err()
                .to_string()
                .contains("224 bytes")
        );
    }

    #[test]
    fn uuid_form_round_trips() {
        let id = Uuid::new_v4();
        let nqn = Nqn::from_uuid(id);
        assert_eq!(Nqn::new(nqn.as_str()).unwrap(), nqn);
        assert_eq!(nqn.uuid(), Some(id));
        let other = Nqn::new("nqn.2000-02.com.mikrotik:uuid:x").unwrap();
        assert_eq!(other.uuid(), None);
        assert_eq!(other.suffix(), "uuid:x");
    }

    #[test]
    fn prefix_manages_only_its_own_names() {
        let prefix = NqnPrefix::new("nqn.2000-02.com.mikrotik:").unwrap();
        let ours = Nqn::new("nqn.2000-02.com.mikrotik:pvc-1").unwrap();
        let lookalike = Nqn::new("nqn.2000-02.com.mikrotikx:pvc-1").unwrap();
        let subdomain = Nqn::new("nqn.2000-02.com.mikrotik.evil:pvc-1").unwrap();
        let root_disk =
            Nqn::new("nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427")
                .unwrap();
        assert!(prefix.manages(&ours));
        assert!(!prefix.manages(&lookalike));
        assert!(!prefix.manages(&subdomain));
        assert!(!prefix.manages(&root_disk));

        let narrower = NqnPrefix::new("nqn.2000-02.com.mikrotik:pvc-").unwrap();
        assert!(narrower.manages(&ours));
        let exact = Nqn::new("nqn.2000-02.com.mikrotik:pvc-").unwrap();
        assert!(!narrower.manages(&exact), "the prefix alone names nothing");
        let static_disk = Nqn::new("nqn.2000-02.com.mikrotik:static-1").unwrap();
        assert!(!narrower.manages(&static_disk));
    }

    #[test]
    fn prefix_must_reach_past_the_domain() {
        for bad in [
            "",
            "nqn.",
            "nqn.2000-02.com.mikrotik",
            "nqn.2000-02.com.",
            "NQN.2000-02.com.mikrotik:",
            "nqn.2000-02.com.mikrotik:a,b",
        ] {
            let err = NqnPrefix::new(bad).unwrap_err();
            assert!(
                matches!(err, HelperError::InvalidNqnPrefix { ref prefix, .. } if prefix == bad),
                "{bad:?}: {err}"
            );
        }
    }
}
