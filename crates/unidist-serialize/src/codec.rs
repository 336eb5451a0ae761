//! The codec boundary: the only file that names the body codecs. The compact codec is bincode
//! (2.0.1, serde path, `standard()` config); the self-describing one, for types bincode cannot
//! carry, is MessagePack (rmp-serde 1.3, structs as maps).
//!
//! Swapping a codec means rewriting its two functions below and bumping
//! [`FORMAT_VERSION`](crate::FORMAT_VERSION); nothing else in the crate knows the body formats.
//! Requirements on a replacement:
//! - it encodes by appending to a `Vec<u8>` (the header is already in it, so no extra copy);
//! - it decodes from a slice and reports how many bytes it consumed (for `TrailingBytes`);
//! - it tells "input ended early" apart from other failures (for `Truncated` vs `Corrupt`);
//! - `Buffer` data goes through `serialize_bytes` as one length-prefixed memcpy;
//! - the self-describing one supports the whole serde data model: `deserialize_any`, maps and
//!   sequences of unknown length, absent struct fields, non-string map keys.
//!
//! Why `standard()` (little-endian, varint integers) and not fixed-width integers, measured on
//! this crate's build (release, 2-core container, bincode 2.0.1):
//!
//! | value | `standard()` size / enc / dec | fixint size / enc / dec |
//! |---|---|---|
//! | small task argument (`u64`, `u32`, 11-char `String`, 8 × `u32`, `Option<i64>`) | 25 B / 53 ns / 61 ns | 80 B / 83 ns / 42 ns |
//! | `Vec<u64>` holding `0..2^20` | 5.1 MB / 2.1 ms / 2.5 ms | 8.4 MB / 0.65 ms / 0.62 ms |
//! | `{u64, String, Vec<f64>}` with 8 MiB of `f64` | 8.4 MB / 0.82 ms / 0.81 ms | 8.4 MB / 0.67 ms / 0.86 ms |
//!
//! Fixed-width integers only win on large integer arrays, and large numeric data is a natural
//! type (a raw memcpy, see the `natural` module) or belongs in a [`Buffer`](crate::Buffer).
//! What remains in the body is small structured data, where varints are 3x smaller at the same
//! speed, and message size is what MPI latency pays for. The `codec_compare` example measures
//! bincode against postcard, bitcode, CBOR and MessagePack; the crate docs have its numbers.
//!
//! Why MessagePack for the self-describing form: it carries every serde shape the compact codec
//! refuses (rmp-serde buffers sequences and maps of unknown length, writes structs as maps so
//! that skipped fields are simply absent, and supports `deserialize_any`), it keeps integers
//! and byte strings binary, and it decoded the nested-record workload about 2x faster than
//! CBOR (ciborium) in the comparison. JSON cannot have non-string map keys.

use std::io::{Cursor, ErrorKind};

use bincode::config::{self, Configuration};
use bincode::error::DecodeError;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::BoxError;
use crate::guard::BoundedSeed;

/// The body encoding. No byte limit: the guard in [`crate::guard`] bounds allocations by the
/// input length instead, which a compile-time limit cannot express.
const CONFIG: Configuration = config::standard();

/// Deepest nesting of sequences, maps and enums the self-describing decoder accepts. Values of
/// types that buffer arbitrary input (untagged and internally tagged enums, flattened fields)
/// are decoded recursively, so hostile input could otherwise nest deep enough to overflow the
/// stack; 256 levels fit comfortably in a 2 MiB thread stack, also in debug builds.
const MAX_DEPTH: usize = 256;

/// Why the codec could not decode a body.
#[derive(Debug)]
pub(crate) enum DecodeFailure {
    /// The body ended before the value was complete.
    Truncated,
    /// Any other failure: invalid tag, UTF-8, custom `Deserialize` error, ...
    Invalid(BoxError),
}

/// Appends the compact encoding of `value` to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), BoxError> {
    // `Vec<u8>` as `io::Write` appends in place: one pass, no intermediate buffer.
    bincode::serde::encode_into_std_write(value, out, CONFIG)?;
    Ok(())
}

/// Decodes a `T` from the start of a compact `body`; returns it and the number of bytes consumed.
pub(crate) fn decode_from<T: DeserializeOwned>(body: &[u8]) -> Result<(T, usize), DecodeFailure> {
    // The bounded seed keeps a corrupted length prefix from allocating more than `body.len()`.
    bincode::serde::seed_decode_from_slice(BoundedSeed::<T>::new(body.len()), body, CONFIG).map_err(
        |e| match e {
            DecodeError::UnexpectedEnd { .. } => DecodeFailure::Truncated,
            other => DecodeFailure::Invalid(Box::new(other)),
        },
    )
}

/// Appends the self-describing encoding of `value` to `out`.
pub(crate) fn encode_described_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), BoxError> {
    // Structs as maps (field names written): a skipped field is then absent instead of shifting
    // the fields after it, and flattened fields merge into the map.
    let mut serializer = rmp_serde::Serializer::new(out).with_struct_map();
    value.serialize(&mut serializer)?;
    Ok(())
}

/// Decodes a `T` from the start of a self-describing `body`; returns it and the bytes consumed.
pub(crate) fn decode_described_from<T: DeserializeOwned>(
    body: &[u8],
) -> Result<(T, usize), DecodeFailure> {
    use serde::de::DeserializeSeed;
    // The reader form (not `from_read_ref`) because it reports its position; it reads strings
    // and byte strings with `take(len).read_to_end`, so a corrupted length allocates at most what
    // the input holds. The bounded seed caps size hints as for the compact codec.
    let mut deserializer = rmp_serde::Deserializer::new(Cursor::new(body));
    deserializer.set_max_depth(MAX_DEPTH);
    let value = BoundedSeed::<T>::new(body.len())
        .deserialize(&mut deserializer)
        .map_err(|e| match e {
            rmp_serde::decode::Error::InvalidMarkerRead(io)
            | rmp_serde::decode::Error::InvalidDataRead(io)
                if io.kind() == ErrorKind::UnexpectedEof =>
            {
                DecodeFailure::Truncated
            }
            other => DecodeFailure::Invalid(Box::new(other)),
        })?;
    // The position never exceeds the body length, which fits in `usize`.
    let consumed = usize::try_from(deserializer.position()).unwrap_or(body.len());
    Ok((value, consumed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of<T: Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(value, &mut out).expect("encodable");
        out
    }

    #[test]
    fn body_round_trip_reports_consumed_length() {
        let mut body = body_of(&(7u64, String::from("seven")));
        let len = body.len();
        body.extend_from_slice(&[0xAA, 0xBB]);
        let (value, consumed) = decode_from::<(u64, String)>(&body).expect("decodable");
        assert_eq!(value, (7, String::from("seven")));
        assert_eq!(consumed, len);
    }

    #[test]
    fn described_round_trip_reports_consumed_length() {
        let mut body = Vec::new();
        encode_described_into(&(7u64, String::from("seven")), &mut body).expect("encodable");
        let len = body.len();
        body.extend_from_slice(&[0xC1, 0xC1]);
        let (value, consumed) = decode_described_from::<(u64, String)>(&body).expect("decodable");
        assert_eq!(value, (7, String::from("seven")));
        assert_eq!(consumed, len);
    }

    #[test]
    fn end_of_input_is_truncated_other_errors_invalid() {
        assert!(matches!(
            decode_from::<u64>(&[]),
            Err(DecodeFailure::Truncated)
        ));
        // 2 is not a valid bool.
        assert!(matches!(
            decode_from::<bool>(&[2]),
            Err(DecodeFailure::Invalid(_))
        ));
        assert!(matches!(
            decode_described_from::<u64>(&[]),
            Err(DecodeFailure::Truncated)
        ));
        // A 4-byte string header (0xa4) with one byte of data.
        assert!(matches!(
            decode_described_from::<String>(&[0xa4, b'a']),
            Err(DecodeFailure::Truncated)
        ));
        // 0xc1 is the one byte MessagePack never uses.
        assert!(matches!(
            decode_described_from::<bool>(&[0xc1]),
            Err(DecodeFailure::Invalid(_))
        ));
    }

    #[test]
    fn unsized_length_sequences_are_an_encode_error_only_for_the_compact_codec() {
        // `serialize_seq(None)` is the one shape bincode cannot encode; it must be an error.
        struct Unsized;
        impl Serialize for Unsized {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                let mut seq = s.serialize_seq(None)?;
                seq.serialize_element(&1u8)?;
                seq.end()
            }
        }
        assert!(encode_into(&Unsized, &mut Vec::new()).is_err());
        let mut body = Vec::new();
        encode_described_into(&Unsized, &mut body).expect("MessagePack buffers the sequence");
        assert_eq!(
            decode_described_from::<Vec<u8>>(&body).ok(),
            Some((vec![1], body.len()))
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        // 100,000 nested one-element arrays (0x91), decoded as a type that buffers any input.
        #[derive(serde::Deserialize, Debug)]
        #[serde(untagged)]
        #[allow(dead_code)] // only decoding is tested
        enum AnyValue {
            Int(u64),
            List(Vec<AnyValue>),
        }
        let body = vec![0x91; 100_000];
        // A thread with the default 2 MiB stack, like the runtime's worker threads.
        let result = std::thread::spawn(move || {
            matches!(
                decode_described_from::<AnyValue>(&body),
                Err(DecodeFailure::Invalid(_))
            )
        })
        .join()
        .expect("no stack overflow");
        assert!(result);
    }
}
