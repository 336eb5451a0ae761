//! `#[serde(with = "serde_fast")]` for a large numeric `Vec<T>` or `Box<[T]>` field: the field is
//! written as one byte blob (like a [`Buffer`]) instead of element by element, and goes out of
//! band in [`encode_with_oob`](crate::encode_with_oob) when at least the threshold.
//!
//! A whole `Vec<f64>` value is already fast (see the crate docs); inside a struct, serde sees
//! only a sequence of numbers, so the field needs this attribute, or a [`Buffer`] type, to get
//! the same speed. Compared with a `Buffer` field the sender copies the data once into the
//! out-of-band buffer (a plain `Vec` cannot share its storage), and the field keeps its type.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use unidist_serialize::{decode_with_oob, encode_with_oob};
//!
//! #[derive(Serialize, Deserialize, PartialEq, Debug)]
//! struct Sample {
//!     name: String,
//!     #[serde(with = "unidist_serialize::serde_fast")]
//!     values: Vec<f64>,
//! }
//!
//! let value = Sample { name: "a".into(), values: vec![0.5; 1 << 16] };
//! let encoded = encode_with_oob(&value, 1024)?;
//! assert_eq!(encoded.buffers.len(), 1); // the field travelled out of band
//! let back: Sample = decode_with_oob(&encoded.inline, encoded.buffers)?;
//! assert_eq!(back, value);
//! # Ok::<(), unidist_serialize::SerializeError>(())
//! ```
//!
//! The element types are those of [`Element`]. The wire form is the `Buffer` one, so a field can
//! change between `Vec<T>` with this attribute and `Buffer<T>` without changing the encoding.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::buffer::WireRef;
use crate::oob::{self, OobBuffer};
use crate::{Buffer, Element};

mod sealed {
    pub trait Sealed {}
}

/// The field types [`serialize`] and [`deserialize`] accept: `Vec<T>` and `Box<[T]>` with `T` an
/// [`Element`]. Sealed.
pub trait Contiguous: sealed::Sealed + Sized {
    /// The element type.
    type Elem: Element;
    /// The elements.
    fn elems(&self) -> &[Self::Elem];
    /// The field value from a vector of elements, without a copy.
    fn from_vec(data: Vec<Self::Elem>) -> Self;
}

impl<T: Element> sealed::Sealed for Vec<T> {}
impl<T: Element> Contiguous for Vec<T> {
    type Elem = T;

    fn elems(&self) -> &[T] {
        self
    }

    fn from_vec(data: Vec<T>) -> Self {
        data
    }
}

impl<T: Element> sealed::Sealed for Box<[T]> {}
impl<T: Element> Contiguous for Box<[T]> {
    type Elem = T;

    fn elems(&self) -> &[T] {
        self
    }

    fn from_vec(data: Vec<T>) -> Self {
        data.into_boxed_slice()
    }
}

/// Writes the field as one byte blob, or as an out-of-band placeholder inside
/// [`encode_with_oob`](crate::encode_with_oob) when it is at least the threshold.
///
/// # Errors
/// Whatever the serializer reports.
pub fn serialize<C: Contiguous, S: Serializer>(value: &C, s: S) -> Result<S::Ok, S::Error> {
    let elems = value.elems();
    let bytes: &[u8] = bytemuck::cast_slice(elems);
    match oob::offer(bytes.len(), || OobBuffer::from(elems.to_vec())) {
        Some(index) => WireRef::OutOfBand {
            index,
            byte_len: bytes.len() as u64,
        }
        .serialize(s),
        None => WireRef::Inline(bytes).serialize(s),
    }
}

/// Reads a field written by [`serialize`] (or a `Buffer<T>`): inline data is copied once, an
/// out-of-band buffer is moved in when no one else holds it.
///
/// # Errors
/// Whatever the deserializer reports, and the `Buffer` errors for a wrong placeholder.
pub fn deserialize<'de, C: Contiguous, D: Deserializer<'de>>(d: D) -> Result<C, D::Error> {
    Buffer::<C::Elem>::deserialize(d).map(|buffer| C::from_vec(buffer.into_vec()))
}
