//! The codec boundary: the only file that names bincode (2.0.1, serde path, `standard()` config).
//!
//! Swapping the codec (e.g. to postcard) means rewriting the two functions below and bumping
//! [`FORMAT_VERSION`](crate::FORMAT_VERSION); nothing else in the crate knows the body format.
//! Requirements on a replacement:
//! - it encodes by appending to a `Vec<u8>` (the header is already in it, so no extra copy);
//! - it decodes from a slice and reports how many bytes it consumed (for `TrailingBytes`);
//! - it tells "input ended early" apart from other failures (for `Truncated` vs `Corrupt`);
//! - `Buffer` data goes through `serialize_bytes` as one length-prefixed memcpy.
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
//! Fixed-width integers only win on large integer arrays, and large numeric data belongs in a
//! [`Buffer`](crate::Buffer), which is a memcpy under either config (or not copied at all out of
//! band). What remains in the body is small structured data, where varints are 3x smaller at
//! the same speed, and message size is what MPI latency pays for.

use bincode::config::{self, Configuration};
use bincode::error::DecodeError;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::BoxError;
use crate::guard::BoundedSeed;

/// The body encoding. No byte limit: the guard in [`crate::guard`] bounds allocations by the
/// input length instead, which a compile-time limit cannot express.
const CONFIG: Configuration = config::standard();

/// Why the codec could not decode a body.
#[derive(Debug)]
pub(crate) enum DecodeFailure {
    /// The body ended before the value was complete.
    Truncated,
    /// Any other failure: invalid tag, UTF-8, custom `Deserialize` error, ...
    Invalid(BoxError),
}

/// Appends the encoding of `value` to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), BoxError> {
    // `Vec<u8>` as `io::Write` appends in place: one pass, no intermediate buffer.
    bincode::serde::encode_into_std_write(value, out, CONFIG)?;
    Ok(())
}

/// Decodes a `T` from the start of `body`; returns it and the number of bytes consumed.
pub(crate) fn decode_from<T: DeserializeOwned>(body: &[u8]) -> Result<(T, usize), DecodeFailure> {
    // The bounded seed keeps a corrupted length prefix from allocating more than `body.len()`.
    bincode::serde::seed_decode_from_slice(BoundedSeed::<T>::new(body.len()), body, CONFIG).map_err(
        |e| match e {
            DecodeError::UnexpectedEnd { .. } => DecodeFailure::Truncated,
            other => DecodeFailure::Invalid(Box::new(other)),
        },
    )
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
    }

    #[test]
    fn unsized_length_sequences_are_an_encode_error() {
        // `serialize_seq(None)` is the one shape bincode cannot encode; it must be an error.
        struct Unsized;
        impl Serialize for Unsized {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                s.serialize_seq(None)?.end()
            }
        }
        assert!(encode_into(&Unsized, &mut Vec::new()).is_err());
    }
}
