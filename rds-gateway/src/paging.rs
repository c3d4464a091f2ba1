//! Page tokens for the list calls: items are ordered by slot, and the token is the last slot a
//! page returned, so a page boundary stays right when items are added or removed between calls.
//!
//! A token is checked before use: it must be a slot name within the managed prefixes, which is
//! all this gateway ever hands out. Anything else is `ABORTED`, as CSI asks for an invalid
//! `starting_token`.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::op_error::OpError;
use crate::routeros::names::{Slot, escape_for_display};
use crate::scope::Scope;

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in slot order.
    pub items: Vec<T>,
    /// The token of the next page, when items remain.
    pub next: Option<Slot>,
}

/// Reads a `starting_token`: empty means the first page.
pub fn parse_token(raw: &str, scope: &Scope) -> Result<Option<Slot>, OpError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let bad = |reason| OpError::BadToken {
        token: escape_for_display(raw),
        reason,
    };
    let slot = Slot::parse(raw).map_err(|_| bad("it is not a slot name"))?;
    if !scope.contains(&slot) {
        return Err(bad("it is outside the managed slot prefixes"));
    }
    Ok(Some(slot))
}

/// The items after `after` (all when `None`), at most `max` of them (all when 0).
pub fn paginate<T: Clone>(items: &BTreeMap<Slot, T>, after: Option<&Slot>, max: u32) -> Page<T> {
    let start = match after {
        Some(slot) => Bound::Excluded(slot),
        None => Bound::Unbounded,
    };
    let mut rest = items.range::<Slot, _>((start, Bound::Unbounded));
    let limit = if max == 0 {
        usize::MAX
    } else {
        usize::try_from(max).unwrap_or(usize::MAX)
    };
    let mut page = Vec::new();
    let mut last = None;
    for (slot, item) in rest.by_ref().take(limit) {
        page.push(item.clone());
        last = Some(slot.clone());
    }
    let next = if rest.next().is_some() { last } else { None };
    Page { items: page, next }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::routeros::names::SlotPrefix;

    fn scope() -> Scope {
        Scope::new([SlotPrefix::parse("pvc-").unwrap()])
    }

    fn items(names: &[&str]) -> BTreeMap<Slot, String> {
        names
            .iter()
            .map(|n| (Slot::parse(n).unwrap(), (*n).to_owned()))
            .collect()
    }

    #[test]
    fn walks_every_item_once_in_slot_order() {
        let all = items(&["pvc-c", "pvc-a", "pvc-e", "pvc-b", "pvc-d"]);
        let mut seen = Vec::new();
        let mut token = None;
        let mut pages = 0;
        loop {
            let page = paginate(&all, token.as_ref(), 2);
            assert!(page.items.len() <= 2);
            seen.extend(page.items);
            pages += 1;
            match page.next {
                Some(next) => token = Some(parse_token(next.as_str(), &scope()).unwrap().unwrap()),
                None => break,
            }
        }
        assert_eq!(seen, ["pvc-a", "pvc-b", "pvc-c", "pvc-d", "pvc-e"]);
        assert_eq!(pages, 3);
    }

    #[test]
    fn exact_fit_has_no_next_and_zero_means_all() {
        let all = items(&["pvc-a", "pvc-b"]);
        let page = paginate(&all, None, 2);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next, None);
        let page = paginate(&all, None, 0);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next, None);
        let empty = paginate(&BTreeMap::<Slot, String>::new(), None, 5);
        assert!(empty.items.is_empty() && empty.next.is_none());
    }

    #[test]
    fn token_of_a_removed_item_still_continues_after_it() {
        let mut all = items(&["pvc-a", "pvc-b", "pvc-c"]);
        let first = paginate(&all, None, 2);
        assert_eq!(first.next.as_ref().unwrap().as_str(), "pvc-b");
        all.remove(&Slot::parse("pvc-b").unwrap());
        let second = paginate(&all, first.next.as_ref(), 2);
        assert_eq!(second.items, ["pvc-c"]);
    }

    #[test]
    fn bad_tokens_are_aborted() {
        assert_eq!(parse_token("", &scope()).unwrap(), None);
        for bad in ["pvc-;rm", "PVC-A", "other-1", "../x", "pvc-\n"] {
            let err = parse_token(bad, &scope()).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Aborted, "{bad}");
        }
    }
}
