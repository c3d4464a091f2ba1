//! Byte sizes: reading every form RouterOS prints, and rounding requests to what the appliance can
//! create without ever rounding down.
//!
//! RouterOS prints sizes as spaced thousands (`53 687 091 200`), as rounded binary units (`50.0GiB`,
//! `1024.0MiB`), as short units on input (`1T`, `10G`, `512M`), as plain integers, and inside
//! `:serialize to=json` output sometimes as floats (`443.000000`). [`Bytes::parse`] reads them all;
//! unit forms are binary (`K` = 1024) as on RouterOS. Commands always carry exact integer bytes
//! ([`Bytes`]'s `Display`), never a unit form, so what is asked is what is created.

use std::fmt;

use super::names::{Field, InvalidValue};

/// One mebibyte.
pub const MIB: u64 = 1 << 20;

/// The allocation granularity used for new and grown disks: 1 MiB.
///
/// File disks are sized in whole bytes, but a size that is a whole number of MiB is a multiple of every
/// sector size the appliance offers (512 and 4096) and of the page size, and prints exactly in the
/// appliance's rounded `file-size=` column for sizes up to 1 GiB. Rounding a request up to it costs
/// at most 1 MiB and never gives less than asked.
pub const GRANULARITY: Bytes = Bytes(MIB);

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(u64);

impl Bytes {
    /// Zero bytes.
    pub const ZERO: Bytes = Bytes(0);

    /// Wraps a byte count.
    pub const fn new(bytes: u64) -> Bytes {
        Bytes(bytes)
    }

    /// The byte count.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// True when the size is a whole number of [`GRANULARITY`] units.
    pub const fn is_aligned(self) -> bool {
        self.0.is_multiple_of(GRANULARITY.0)
    }

    /// `self - other`, or zero when `other` is larger.
    pub const fn saturating_sub(self, other: Bytes) -> Bytes {
        Bytes(self.0.saturating_sub(other.0))
    }

    /// Parses any size form RouterOS prints or accepts (see the module documentation). Unit forms with
    /// a fraction (`1.5GiB`) are converted exactly and rounded to the nearest byte; a fraction without
    /// a unit must be zero (`443.000000`).
    pub fn parse(raw: &str) -> Result<Bytes, InvalidValue> {
        let bad = |reason| Err(InvalidValue::new(Field::Size, raw, reason));
        let text = raw.trim();
        if text.is_empty() {
            return bad("must not be empty");
        }
        if text.len() > 64 {
            return bad("too long to be a size");
        }
        let unit_at = text
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(unit_at);
        let number = number.trim_end();
        let Some(multiplier) = unit_multiplier(unit) else {
            return bad("unknown unit");
        };
        let Some((whole, fraction)) = split_number(number) else {
            return bad("not a number");
        };
        if whole.len() > 30 || fraction.len() > 18 {
            return bad("out of range");
        }
        // Both parts are digit strings short enough for u128 by the check above.
        let whole_value = digits_value(&whole);
        let fraction_value = digits_value(fraction);
        let scale = 10u128.pow(fraction.len() as u32);
        let value = whole_value
            .checked_mul(scale)
            .and_then(|v| v.checked_add(fraction_value))
            .and_then(|v| v.checked_mul(u128::from(multiplier)));
        let Some(scaled) = value else {
            return bad("out of range");
        };
        if multiplier == 1 && scaled % scale != 0 {
            return bad("a byte count must be a whole number");
        }
        let rounded = scaled.checked_add(scale / 2).map(|v| v / scale);
        match rounded.map(u64::try_from) {
            Some(Ok(bytes)) => Ok(Bytes(bytes)),
            _ => bad("out of range"),
        }
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<Bytes> for u64 {
    fn from(b: Bytes) -> u64 {
        b.0
    }
}

/// Rounds `requested` up to the next multiple of [`GRANULARITY`]. Never rounds down; a size too close
/// to `u64::MAX` to round is an error.
pub fn round_up(requested: Bytes) -> Result<Bytes, InvalidValue> {
    let remainder = requested.0 % GRANULARITY.0;
    if remainder == 0 {
        return Ok(requested);
    }
    match requested.0.checked_add(GRANULARITY.0 - remainder) {
        Some(v) => Ok(Bytes(v)),
        None => Err(InvalidValue::new(
            Field::Size,
            &requested.0.to_string(),
            "too large to round up to the appliance granularity",
        )),
    }
}

/// `K`/`KiB`/`KB`... → multiplier (binary, as RouterOS uses); empty or `B` → 1.
fn unit_multiplier(unit: &str) -> Option<u64> {
    if unit.is_empty() || unit == "B" {
        return Some(1);
    }
    let mut chars = unit.chars();
    let power = match chars.next()?.to_ascii_uppercase() {
        'K' => 1,
        'M' => 2,
        'G' => 3,
        'T' => 4,
        'P' => 5,
        _ => return None,
    };
    let rest = chars.as_str();
    if !matches!(rest, "" | "i" | "iB" | "B") {
        return None;
    }
    Some(1u64 << (10 * power))
}

/// Splits `53 687 091 200`, `50.0` or `443` into whole and fraction digit strings (the whole part with
/// its thousands spaces removed). Spaced thousands must be correctly grouped and have no fraction.
fn split_number(number: &str) -> Option<(String, &str)> {
    if number.contains(' ') {
        let mut groups = number.split(' ');
        let first = groups.next()?;
        if first.is_empty() || first.len() > 3 || !first.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut whole = first.to_owned();
        for group in groups {
            if group.len() != 3 || !group.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            whole.push_str(group);
        }
        return Some((whole, ""));
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    if number.contains('.') && fraction.is_empty() {
        return None;
    }
    Some((whole.to_owned(), fraction))
}

fn digits_value(digits: &str) -> u128 {
    digits
        .bytes()
        .fold(0u128, |acc, b| acc * 10 + u128::from(b - b'0'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn parses_every_routeros_form() {
        let cases: &[(&str, u64)] = &[
            ("53 687 091 200", 53_687_091_200),
            ("7 681 574 174 720", 7_681_574_174_720),
            ("512", 512),
            ("0", 0),
            ("50.0GiB", 50 * GIB),
            ("1024.0MiB", 1024 * MIB),
            ("1T", 1 << 40),
            ("10G", 10 * GIB),
            ("512M", 512 * MIB),
            ("4K", 4096),
            ("1.5GiB", 3 * GIB / 2),
            ("443.000000", 443),
            ("1099511627776.000000", 1 << 40),
            (" 10G ", 10 * GIB),
            ("10 G", 10 * GIB),
            ("1024.0GiB", 1 << 40),
            ("10GB", 10 * GIB),
            ("100B", 100),
        ];
        for (text, want) in cases {
            assert_eq!(Bytes::parse(text).unwrap().get(), *want, "{text}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "   ",
            "abc",
            "-1",
            "1.5",
            "443.5",
            "12 34",
            "1 2345",
            "1,024",
            "1.2.3",
            "1.",
            ".5",
            "10X",
            "10Gibibytes",
            "1e9",
            "99999999999999999999999",
            "20000P",
            "1 000.5",
        ] {
            assert!(Bytes::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(Bytes::parse(&"9".repeat(100 * 1024)).is_err());
    }

    #[test]
    fn round_up_never_rounds_down() {
        // The Go driver's bug: a 1.5 GiB request became a 1 GiB file.
        let req = Bytes::new(3 * GIB / 2);
        assert_eq!(round_up(req).unwrap(), req);
        // A deterministic spread of awkward sizes.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let req = Bytes::new(x % (1 << 50));
            let got = round_up(req).unwrap();
            assert!(got >= req);
            assert!(got.is_aligned());
            assert!(got.get() - req.get() < GRANULARITY.get());
        }
        assert_eq!(round_up(Bytes::new(1)).unwrap(), GRANULARITY);
        assert_eq!(round_up(Bytes::new(MIB + 1)).unwrap().get(), 2 * MIB);
        assert_eq!(round_up(Bytes::ZERO).unwrap(), Bytes::ZERO);
    }

    #[test]
    fn round_up_overflow_is_an_error() {
        let top_aligned = u64::MAX - (u64::MAX % MIB);
        assert!(round_up(Bytes::new(u64::MAX)).is_err());
        assert!(round_up(Bytes::new(top_aligned + 1)).is_err());
        assert_eq!(
            round_up(Bytes::new(top_aligned)).unwrap().get(),
            top_aligned
        );
        assert_eq!(
            round_up(Bytes::new(top_aligned - 1)).unwrap().get(),
            top_aligned
        );
    }

    #[test]
    fn renders_exact_integers() {
        assert_eq!(Bytes::new(53_687_091_200).to_string(), "53687091200");
        assert_eq!(
            Bytes::parse(&Bytes::new(123_456_789).to_string())
                .unwrap()
                .get(),
            123_456_789
        );
    }
}
