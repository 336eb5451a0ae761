//! Serialization of unidist values: a typed header, then the value in one of three body layouts
//! (raw bytes for the natural large types, compact bincode, or self-describing MessagePack for
//! types that need it), and out-of-band buffers for large data.
//!
//! # Overview
//!
//! This is an internal crate of unidist; applications use the `unidist` crate. It turns a value
//! into bytes where bytes must leave the process (the MPI backend) and back. Local backends never
//! call it: their values stay in memory behind an `Arc`.
//!
//! ```
//! use std::collections::HashMap;
//! use unidist_serialize::{decode, encode, SerializeError};
//!
//! let value: HashMap<(u32, String), Vec<f64>> = HashMap::from([((1, "a".into()), vec![0.5])]);
//! let bytes = encode(&value)?;
//! assert_eq!(decode::<HashMap<(u32, String), Vec<f64>>>(&bytes)?, value);
//! // Decoding as another type is an error, not garbage.
//! assert!(matches!(decode::<Vec<String>>(&bytes), Err(SerializeError::TypeMismatch { .. })));
//! # Ok::<(), SerializeError>(())
//! ```
//!
//! # Wire format
//!
//! Every encoding is a 14-byte header ([`HEADER_LEN`]) followed by the body:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `b"UDSR"` |
//! | 4 | 1 | format version, [`FORMAT_VERSION`] (currently 2) |
//! | 5 | 1 | flags: bit 0 set when the writer is big-endian; bits 1-2 the body layout (below); other bits must be 0 |
//! | 6 | 8 | [`fingerprint`] of the encoded type, little-endian |
//! | 14 | .. | body, in the layout the flags name |
//!
//! | layout (flag bits 1-2) | body | used for |
//! |---|---|---|
//! | 0, compact | bincode 2.0.1 `standard()` form (little-endian, varint integers) | every other type |
//! | 1, self-describing | MessagePack (rmp-serde, structs as maps) | types that need it (below) |
//! | 2, raw | mode byte (0 inline, 1 out of band), byte length (8 bytes, little-endian), then inline the bytes themselves | the natural types (below) |
//!
//! The fingerprint is the 64-bit FNV-1a hash of `std::any::type_name::<T>()`. Every MPI rank runs
//! the same binary, so all ranks agree on it; decoding as another type fails with
//! [`SerializeError::TypeMismatch`]. Encode and decode with the same type.
//!
//! # Natural types: memory speed without the user's help
//!
//! As a whole value, `Vec<T>` and `Box<[T]>` with `T` a primitive number (`u8`..`u64`,
//! `i8`..`i64`, `f32`, `f64`), `String` and [`Buffer<T>`] are encoded as one length and their
//! bytes: one memcpy, never element by element (chosen by the value's `TypeId`). Out of band
//! (at least the threshold, see below) they are not copied at all when encoded with
//! [`encode_shared`]: the buffer keeps the value's `Arc` alive and hands its memory to the
//! transport. Decoding moves a received buffer into the `Vec` (or `Box<[T]>`, `String`) when it
//! is a typed buffer held by no one else (the receiver allocates it with [`OobBuffer::zeroed`],
//! aligned for the element), and copies it once otherwise.
//!
//! A natural type *inside* another type is encoded by serde like any field. For the same speed
//! there, use a [`Buffer<T>`] field or mark a `Vec<T>`/`Box<[T]>` field
//! `#[serde(with = "serde_fast")]` (see [`serde_fast`]).
//!
//! # Every serde feature: the self-describing fallback
//!
//! bincode is compact and fast but not self-describing: internally tagged and untagged enums and
//! `flatten` need `deserialize_any`, `skip_serializing_if` leaves out fields the reader still
//! expects, and `flatten` writes maps of unknown length. Such types get the self-describing
//! layout automatically, decided per type and remembered for the process: a probe walks the
//! type's `Deserialize` impl once for `deserialize_any`, every encode watches for skipped fields
//! and unknown lengths, and the first value of a type is decoded back once to confirm the
//! compact form. Other types stay compact. The choice is recorded in the header, so the reader
//! follows the writer. One difference of the self-describing form: `Some(None)` reads back as
//! `None`, as in JSON (`Option<Option<T>>` keeps it in compact types).
//!
//! # Out-of-band buffers
//!
//! [`encode_with_oob`] leaves large data out of the inline bytes, like upstream unidist's pickle
//! protocol 5 with `UNIDIST_MPI_PICKLE_THRESHOLD`: a natural value, each [`Buffer`] and each
//! [`serde_fast`] field of at least `threshold` bytes goes into [`Encoded::buffers`] (a
//! `Buffer`'s storage is shared, not copied), and the inline bytes record its index and length,
//! for the MPI backend to send as separate messages straight from memory. [`decode_with_oob`]
//! puts received buffers back by index.
//!
//! serde has no serializer context, so the entry points arm a thread-local for the duration of
//! the call; nested calls get their own (see the `oob` module source). [`encode`] and [`decode`]
//! keep everything inline.
//!
//! # Error guarantees
//!
//! All functions return [`SerializeError`]. Decoding truncated, corrupted or foreign input, input
//! with trailing bytes, or a wrong buffer list, is an error: never a panic, an abort or an
//! allocation much larger than the input. bincode 2.0.1 would allocate whatever a corrupted
//! string or byte length prefix claims; this crate routes those reads through borrowed slices so
//! that the input length bounds them (see the `guard` module source). The MessagePack decoder
//! reads strings and byte strings as far as the input goes (never preallocating a claimed
//! length), gets the same size-hint caps, and refuses nesting deeper than 256 levels, which
//! would otherwise overflow the stack through the types that buffer arbitrary input. A raw
//! body's length is checked against the input before anything is allocated. The remaining
//! costs of hostile input are bounded by its length, except a sequence of zero-sized elements
//! (e.g. `Vec<()>`), which takes time proportional to its claimed length but allocates nothing.
//!
//! # Swapping a codec
//!
//! Only `src/codec.rs` names bincode and rmp-serde. To use another serde format, rewrite its two
//! functions there, map "input ended early" to `DecodeFailure::Truncated`, and bump
//! [`FORMAT_VERSION`]. The header, the raw layout, `Buffer`, the out-of-band scheme and the
//! errors stay. The `codec_compare` example (below) measured the alternatives.
//!
//! # Cost
//!
//! Measured once with the `codec_compare` example (release build, 2-core container shared with
//! other builds, so ±20%; median of 7 calls; not a benchmark). "Inline" is [`encode`] /
//! [`decode`]; the other codecs are called directly through serde.
//!
//! | value | unidist inline enc / dec | bincode 2 | postcard | bitcode | MessagePack | CBOR (ciborium) |
//! |---|---|---|---|---|---|---|
//! | 64 MiB `Vec<f64>` | 45 / 46 ms | 68 / 72 ms | 63 / 64 ms | 112 / 71 ms | 86 / 118 ms | 155 / 200 ms |
//! | 64 MiB `Vec<u8>` | 56 / 57 ms | 186 / 192 ms | 161 / 220 ms | 216 / 209 ms | 446 / 566 ms | 872 / 4087 ms |
//! | 15 MiB `String` | 2.6 / 21 ms | 3.0 / 18 ms | 2.9 / 23 ms | 8.1 / 23 ms | 2.4 / 20 ms | 2.9 / 13 ms |
//! | 100,000 × `{u64, String, Vec<f32>(16)}` (8 MB) | 6.7 / 28 ms | 4.2 / 25 ms | 8.7 / 25 ms | 9.3 / 22 ms | 14 / 50 ms | 39 / 98 ms |
//!
//! Out of band ([`encode_shared`], then [`decode_with_oob`]):
//!
//! | value | encode | decode, buffer still held (one copy) | decode, received buffer (moved) |
//! |---|---|---|---|
//! | 64 MiB `Vec<f64>` | < 1 µs | 48 ms | 8 µs |
//! | 64 MiB `Vec<u8>` | < 1 µs | 51 ms | 8 µs |
//! | 15 MiB `String` | < 1 µs | 2.8 ms | 8.8 ms (UTF-8 check) |
//!
//! The inline copies run at about 1.5 GB/s here because each fills freshly mapped pages; the
//! element-by-element codecs pay that too, plus their per-element work. The records row is
//! structured data, where bincode's varints stay the best choice (postcard and bitcode are not
//! faster on it; bitcode's speed is in its own derive, not its serde path), and MessagePack is
//! the faster self-describing format by 2-3x.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// Calls `$m!(element type, ElemType variant)` for every element type.
macro_rules! for_each_elem {
    ($m:ident) => {
        $m!(u8, U8);
        $m!(i8, I8);
        $m!(u16, U16);
        $m!(i16, I16);
        $m!(u32, U32);
        $m!(i32, I32);
        $m!(u64, U64);
        $m!(i64, I64);
        $m!(f32, F32);
        $m!(f64, F64);
    };
}

mod buffer;
mod choice;
mod codec;
mod error;
mod fresh;
mod guard;
mod header;
mod natural;
mod oob;
mod probe;
pub mod serde_fast;
mod watch;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use buffer::{Buffer, ElemType, Element};
pub use error::SerializeError;
pub use fresh::{
    copy_large, fill_large, kept_vectors, recycle, recycle_shared, set_fresh_memory_advice,
    KEEP_BYTES, KEEP_MAX,
};
pub use header::{fingerprint, FORMAT_VERSION, HEADER_LEN};
pub use oob::{decode_with_oob, encode_shared, encode_with_oob, zeroed_bytes, Encoded, OobBuffer};

/// Encodes `value` as header + body; everything is inline (a [`Buffer`] is copied in).
///
/// `T` must also be `DeserializeOwned`: the first encode of a type decodes it back once to choose
/// between the compact and the self-describing layout (see the crate docs).
///
/// # Errors
/// [`SerializeError::Encode`] if the value's `Serialize` impl fails (in both layouts).
pub fn encode<T: Serialize + DeserializeOwned + 'static>(
    value: &T,
) -> Result<Vec<u8>, SerializeError> {
    choice::encode(value, None).map(|encoded| encoded.inline)
}

/// Decodes a `T` from bytes produced by [`encode`] (or by [`encode_with_oob`] when no buffer went
/// out of band).
///
/// # Errors
/// [`SerializeError::Truncated`], [`SerializeError::BadMagic`],
/// [`SerializeError::UnsupportedVersion`], [`SerializeError::UnsupportedFlags`],
/// [`SerializeError::ByteOrderMismatch`], [`SerializeError::TypeMismatch`],
/// [`SerializeError::Corrupt`], [`SerializeError::TrailingBytes`], and
/// [`SerializeError::MissingBuffer`] if the value has out-of-band placeholders.
pub fn decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, SerializeError> {
    oob::decode_scoped(bytes, Vec::new())
}

/// The size in bytes of `value`'s data if its type is natural (see the table above), known
/// without encoding it; `None` for every other type.
pub fn natural_byte_len<T: 'static>(value: &T) -> Option<usize> {
    natural::byte_len(value)
}

#[cfg(test)]
mod tests;
