//! The byte format of the structured fuzz inputs, and its writer.
//!
//! The structured targets (`mux_core`, `transport`) take their input through `arbitrary`, as
//! `fuzz_target!(|input: T| ..)`. A derived `Arbitrary` format is not meant to be written by
//! hand, and a seed corpus has to be: so those inputs read themselves from the [`Unstructured`]
//! with three primitives only — [`byte`], [`word`] (two bytes, little-endian) and [`blob`] (a
//! length byte, then that many bytes) — and [`Writer`] writes exactly that. Each input type has an
//! [`Encode`] that is the inverse of its `Arbitrary`, and the seed tests check the round trip.
//!
//! Reading never fails: past the end of the data every byte reads as 0 (as `arbitrary` does) and
//! a blob takes what is left, so every byte string is some input.

use arbitrary::{Arbitrary, Unstructured};

/// One byte (0 past the end).
pub fn byte(u: &mut Unstructured<'_>) -> u8 {
    u8::arbitrary(u).unwrap_or(0)
}

/// A flag: the low bit of one byte.
pub fn flag(u: &mut Unstructured<'_>) -> bool {
    byte(u) & 1 == 1
}

/// Two bytes, little-endian (`arbitrary`'s own order for integers).
pub fn word(u: &mut Unstructured<'_>) -> u16 {
    u16::arbitrary(u).unwrap_or(0)
}

/// A length byte, then that many bytes (fewer if the data ends first).
pub fn blob(u: &mut Unstructured<'_>) -> Vec<u8> {
    let len = usize::from(byte(u)).min(u.len());
    u.bytes(len).map(<[u8]>::to_vec).unwrap_or_default()
}

/// Reads items with `item` until the data is used up.
pub fn until_empty<T>(
    u: &mut Unstructured<'_>,
    mut item: impl FnMut(&mut Unstructured<'_>) -> T,
) -> Vec<T> {
    let mut items = Vec::new();
    while !u.is_empty() {
        items.push(item(u));
    }
    items
}

/// Writes what the readers above read.
#[derive(Debug, Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    /// See [`byte`].
    pub fn byte(&mut self, value: u8) -> &mut Self {
        self.0.push(value);
        self
    }

    /// See [`flag`].
    pub fn flag(&mut self, value: bool) -> &mut Self {
        self.byte(u8::from(value))
    }

    /// See [`word`].
    pub fn word(&mut self, value: u16) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// See [`blob`]. A seed longer than 255 bytes is a mistake in the seed.
    pub fn blob(&mut self, bytes: &[u8]) -> &mut Self {
        let len = u8::try_from(bytes.len()).expect("a blob holds at most 255 bytes");
        self.byte(len);
        self.0.extend_from_slice(bytes);
        self
    }

    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// The inverse of a type's `Arbitrary`: writes the bytes it reads back.
pub trait Encode {
    /// Appends `self` to `out`.
    fn encode(&self, out: &mut Writer);

    /// `self` alone, as a fuzz input.
    fn to_input(&self) -> Vec<u8> {
        let mut out = Writer::default();
        self.encode(&mut out);
        out.finish()
    }
}
