//! The protobuf wire format, the little of it the listing reads and writes by hand: varints,
//! field keys, length-delimited fields, and skipping what it does not know.
//!
//! Reading follows prost's rules, so that a listing read here sees what prost would decode:
//! unknown fields are skipped, a known field with another wire type is an error, strings must
//! be UTF-8, and a message that ends inside a field is an error. Nothing here panics on any
//! input.

use std::fmt;

/// Wire types (protobuf encoding spec).
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// Why bytes are not the message they should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The bytes end inside a key, a varint or a field's value.
    Truncated { at: usize },
    /// A varint longer than ten bytes.
    LongVarint { at: usize },
    /// A wire type the format does not have (3 and 4, groups, are not used by proto3 either).
    BadWireType { at: usize, wire_type: u8 },
    /// A known field carried with a wire type other than its own.
    WrongType { field: &'static str, wire_type: u8 },
    /// A string field that is not UTF-8.
    NotUtf8 { field: &'static str },
    /// Field number 0, which no message has.
    FieldZero { at: usize },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { at } => write!(f, "the message ends inside a field (byte {at})"),
            WireError::LongVarint { at } => write!(f, "a varint longer than 10 bytes at byte {at}"),
            WireError::BadWireType { at, wire_type } => {
                write!(f, "unsupported wire type {wire_type} at byte {at}")
            }
            WireError::WrongType { field, wire_type } => {
                write!(f, "field {field} arrived with wire type {wire_type}")
            }
            WireError::NotUtf8 { field } => write!(f, "field {field} is not UTF-8"),
            WireError::FieldZero { at } => write!(f, "field number 0 at byte {at}"),
        }
    }
}

/// One field's value as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Len(&'a [u8]),
    /// A fixed32 or fixed64 value; the listing has none, so it is only skipped.
    Fixed,
}

impl<'a> Value<'a> {
    /// The value of a varint field named `field`.
    pub fn varint(self, field: &'static str) -> Result<u64, WireError> {
        match self {
            Value::Varint(v) => Ok(v),
            other => Err(other.wrong(field)),
        }
    }

    /// The bytes of a length-delimited field named `field`.
    pub fn bytes(self, field: &'static str) -> Result<&'a [u8], WireError> {
        match self {
            Value::Len(b) => Ok(b),
            other => Err(other.wrong(field)),
        }
    }

    /// The text of a string field named `field`.
    pub fn str(self, field: &'static str) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes(field)?).map_err(|_| WireError::NotUtf8 { field })
    }

    fn wrong(self, field: &'static str) -> WireError {
        let wire_type = match self {
            Value::Varint(_) => VARINT,
            Value::Len(_) => LEN,
            Value::Fixed => FIXED64,
        };
        WireError::WrongType { field, wire_type }
    }
}

/// The fields of one encoded message, in order.
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut value = 0u64;
        for shift in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(WireError::Truncated { at: start });
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * shift);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::LongVarint { at: start })
    }

    fn take(&mut self, n: u64, at: usize) -> Result<&'a [u8], WireError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&end| end <= self.buf.len())
            .ok_or(WireError::Truncated { at })?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(WireError::Truncated { at })?;
        self.pos = end;
        Ok(out)
    }

    /// The next field's number and value, `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let at = self.pos;
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| WireError::FieldZero { at })?;
        if number == 0 {
            return Err(WireError::FieldZero { at });
        }
        let wire_type = (key & 7) as u8;
        let value = match wire_type {
            VARINT => Value::Varint(self.varint()?),
            LEN => {
                let n = self.varint()?;
                Value::Len(self.take(n, at)?)
            }
            FIXED64 => {
                self.take(8, at)?;
                Value::Fixed
            }
            FIXED32 => {
                self.take(4, at)?;
                Value::Fixed
            }
            other => {
                return Err(WireError::BadWireType {
                    at,
                    wire_type: other,
                });
            }
        };
        Ok(Some((number, value)))
    }
}

/// Bytes a varint of `v` takes.
pub fn varint_len(v: u64) -> usize {
    // 1 byte per started 7 bits, at least one.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Bytes a length-delimited field `number` with a value of `len` bytes takes.
pub fn len_field_len(number: u32, len: usize) -> usize {
    key_len(number) + varint_len(len as u64) + len
}

/// Bytes a varint field `number` holding `v` takes.
pub fn varint_field_len(number: u32, v: u64) -> usize {
    key_len(number) + varint_len(v)
}

fn key_len(number: u32) -> usize {
    varint_len(u64::from(number) << 3)
}

/// Appends protobuf fields to a buffer.
pub struct Writer<'b> {
    out: &'b mut Vec<u8>,
}

impl<'b> Writer<'b> {
    pub fn new(out: &'b mut Vec<u8>) -> Self {
        Writer { out }
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    fn key(&mut self, number: u32, wire_type: u8) {
        self.varint((u64::from(number) << 3) | u64::from(wire_type));
    }

    /// A varint field; proto3 leaves a zero out, and so does this.
    pub fn varint_field(&mut self, number: u32, v: u64) {
        if v != 0 {
            self.key(number, VARINT);
            self.varint(v);
        }
    }

    /// A string or bytes field; proto3 leaves an empty one out, and so does this.
    pub fn bytes_field(&mut self, number: u32, v: &[u8]) {
        if !v.is_empty() {
            self.key(number, LEN);
            self.varint(v.len() as u64);
            self.out.extend_from_slice(v);
        }
    }

    /// One element of a repeated string or bytes field: written even when empty, as every
    /// element of a repeated field is.
    pub fn element(&mut self, number: u32, v: &[u8]) {
        self.message_header(number, v.len());
        self.out.extend_from_slice(v);
    }

    /// The key and length of an embedded message of `len` bytes, which the caller writes next
    /// (always written, even when empty: a set message field is present).
    pub fn message_header(&mut self, number: u32, len: usize) {
        self.key(number, LEN);
        self.varint(len as u64);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn varints_read_back_what_was_written_and_their_length_is_known() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            let mut w = Writer::new(&mut buf);
            w.key(5, VARINT);
            w.varint(v);
            assert_eq!(buf.len(), varint_field_len(5, v), "{v}");
            let mut f = Fields::new(&buf);
            assert_eq!(f.next_field().unwrap(), Some((5, Value::Varint(v))));
            assert_eq!(f.next_field().unwrap(), None);
        }
    }

    #[test]
    fn zero_and_empty_fields_are_left_out_and_messages_are_framed() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        w.varint_field(1, 0);
        w.bytes_field(2, b"");
        assert!(buf.is_empty());
        let mut w = Writer::new(&mut buf);
        w.message_header(3, 0);
        w.bytes_field(4, b"ab");
        assert_eq!(buf, [3 << 3 | 2, 0, 4 << 3 | 2, 2, b'a', b'b']);
        assert_eq!(len_field_len(4, 2), 4);
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        let cases: [(&[u8], WireError); 6] = [
            (&[0x0a, 5, b'a'], WireError::Truncated { at: 0 }),
            (&[0x08], WireError::Truncated { at: 1 }),
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                WireError::LongVarint { at: 1 },
            ),
            (
                &[0x0b],
                WireError::BadWireType {
                    at: 0,
                    wire_type: 3,
                },
            ),
            (&[0x00, 0x01], WireError::FieldZero { at: 0 }),
            (&[0x09, 1, 2, 3], WireError::Truncated { at: 0 }),
        ];
        for (bytes, want) in cases {
            let mut f = Fields::new(bytes);
            assert_eq!(f.next_field().unwrap_err(), want, "{bytes:?}");
        }
        // A length that overflows usize arithmetic.
        let mut f = Fields::new(&[
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ]);
        assert_eq!(f.next_field().unwrap_err(), WireError::Truncated { at: 0 });
    }

    #[test]
    fn values_are_checked_against_the_field_they_should_be() {
        assert_eq!(
            Value::Varint(1).str("slot").unwrap_err(),
            WireError::WrongType {
                field: "slot",
                wire_type: VARINT
            }
        );
        assert_eq!(
            Value::Len(b"x").varint("size").unwrap_err(),
            WireError::WrongType {
                field: "size",
                wire_type: LEN
            }
        );
        assert_eq!(
            Value::Len(&[0xff]).str("slot").unwrap_err(),
            WireError::NotUtf8 { field: "slot" }
        );
        assert_eq!(Value::Len(b"ok").str("slot").unwrap(), "ok");
    }
}
