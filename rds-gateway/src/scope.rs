//! Which slots this gateway manages: those starting with one of the configured prefixes
//! (`--managed-slot-prefix`, by default `pvc-` and `snap-`).
//!
//! The appliance usually holds other disks too (the pool itself, disks of other tools). Every
//! operation checks its slots against this scope before it runs a command, and listings read only
//! these prefixes, so no request can remove, grow or list a disk the driver does not own.

use crate::op_error::OpError;
use crate::routeros::names::{Slot, SlotPrefix};

/// The managed slot prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    prefixes: Vec<SlotPrefix>,
}

impl Scope {
    /// A scope of `prefixes` (duplicates dropped, order kept). An empty list manages nothing.
    pub fn new(prefixes: impl IntoIterator<Item = SlotPrefix>) -> Self {
        let mut unique: Vec<SlotPrefix> = Vec::new();
        for p in prefixes {
            if !unique.contains(&p) {
                unique.push(p);
            }
        }
        Scope { prefixes: unique }
    }

    /// The prefixes.
    pub fn prefixes(&self) -> &[SlotPrefix] {
        &self.prefixes
    }

    /// True when `slot` starts with a managed prefix.
    pub fn contains(&self, slot: &Slot) -> bool {
        self.prefixes.iter().any(|p| slot.has_prefix(p))
    }

    /// `Ok` when `slot` (from request field `field`) is managed.
    pub fn check(&self, field: &'static str, slot: &Slot) -> Result<(), OpError> {
        if self.contains(slot) {
            Ok(())
        } else {
            Err(OpError::Unmanaged {
                field,
                slot: slot.clone(),
                prefixes: self.describe(),
            })
        }
    }

    /// The prefixes, comma-separated.
    pub fn describe(&self) -> String {
        self.prefixes
            .iter()
            .map(SlotPrefix::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn scope() -> Scope {
        Scope::new(
            ["pvc-", "snap-", "pvc-"]
                .into_iter()
                .map(|p| SlotPrefix::parse(p).unwrap()),
        )
    }

    #[test]
    fn only_prefixed_slots_are_managed() {
        let s = scope();
        assert_eq!(s.prefixes().len(), 2);
        assert!(s.check("slot", &Slot::parse("pvc-1").unwrap()).is_ok());
        assert!(s.check("slot", &Slot::parse("snap-1").unwrap()).is_ok());
        for other in ["storage-pool", "vm-storage-001", "pvc", "xpvc-1"] {
            let err = s.check("slot", &Slot::parse(other).unwrap()).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert!(err.to_string().contains(other), "{err}");
            assert!(err.to_string().contains("pvc-, snap-"), "{err}");
        }
        assert!(!Scope::new([]).contains(&Slot::parse("pvc-1").unwrap()));
    }
}
