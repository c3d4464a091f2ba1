//! Turning fuzz bytes into the inputs a target needs.
//!
//! A multi-part input is a list of fields separated by [`SEPARATOR`] (`0xFF`, which never occurs
//! in UTF-8, so a field can hold any text, newlines and NULs included). A missing field reads as
//! empty. Text is decoded lossily so that every input reaches the code under test; targets that
//! care about raw bytes take [`Fields::bytes`].

use std::borrow::Cow;
use std::str::FromStr;

/// The byte that separates fields.
pub const SEPARATOR: u8 = 0xFF;

/// Bytes as text, with invalid UTF-8 replaced by U+FFFD.
pub fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Joins fields with [`SEPARATOR`] (used to build seeds and regression inputs).
pub fn join(fields: &[&[u8]]) -> Vec<u8> {
    fields.join(&SEPARATOR)
}

/// A reader of `0xFF`-separated fields.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    /// Reads the fields of `data`.
    pub fn new(data: &'a [u8]) -> Fields<'a> {
        Fields { rest: Some(data) }
    }

    /// True when every field has been read.
    pub fn is_done(&self) -> bool {
        self.rest.is_none()
    }

    /// The next field as bytes (empty when there are no more).
    pub fn bytes(&mut self) -> &'a [u8] {
        let Some(rest) = self.rest else {
            return &[];
        };
        match rest.iter().position(|&b| b == SEPARATOR) {
            Some(at) => {
                self.rest = rest.get(at + 1..);
                &rest[..at]
            }
            None => {
                self.rest = None;
                rest
            }
        }
    }

    /// The next field as text (lossy).
    pub fn text(&mut self) -> Cow<'a, str> {
        text(self.bytes())
    }

    /// The next field as a number written in decimal (surrounding whitespace allowed).
    pub fn number<T: FromStr>(&mut self) -> Option<T> {
        std::str::from_utf8(self.bytes())
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    /// The first byte of the next field (0 when it is empty).
    pub fn byte(&mut self) -> u8 {
        self.bytes().first().copied().unwrap_or(0)
    }

    /// Every remaining field as text.
    pub fn rest_text(&mut self) -> Vec<Cow<'a, str>> {
        let mut out = Vec::new();
        while !self.is_done() {
            out.push(self.text());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn splits_on_the_separator_and_pads_with_empty_fields() {
        let data = join(&[b"a\nb", b"", b"42 ", b"\x00"]);
        let mut f = Fields::new(&data);
        assert_eq!(f.text(), "a\nb");
        assert_eq!(f.bytes(), b"");
        assert_eq!(f.number::<u32>(), Some(42));
        assert_eq!(f.byte(), 0);
        assert!(f.is_done());
        assert_eq!(f.bytes(), b"");
        assert_eq!(f.text(), "");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let mut f = Fields::new(b"a\xC3(b");
        assert_eq!(f.text(), "a\u{FFFD}(b");
    }
}
