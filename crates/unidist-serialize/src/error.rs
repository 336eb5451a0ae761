//! `SerializeError`: every way encoding or decoding a value can fail.

use crate::buffer::ElemType;

/// A boxed error from the codec or from a user's `Serialize`/`Deserialize` impl.
///
/// Boxed so that the public error type never names the codec crate: swapping the codec must not
/// change this enum.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why encoding or decoding a value failed.
///
/// Decoding untrusted or damaged input always ends in one of these variants: never in a panic,
/// an abort or an allocation much larger than the input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SerializeError {
    /// The value's `Serialize` impl or the codec refused the value, e.g. a sequence of unknown
    /// length or a custom error raised by user code.
    #[error("failed to encode a value of type {type_name}")]
    Encode {
        /// `std::any::type_name` of the value being encoded.
        type_name: &'static str,
        /// What the codec or the `Serialize` impl reported.
        #[source]
        source: BoxError,
    },

    /// The input ended before a complete header and value were read.
    #[error("input of {len} bytes ended before a complete value of type {type_name} was read")]
    Truncated {
        /// `std::any::type_name` of the type being decoded.
        type_name: &'static str,
        /// Length of the input in bytes (header included).
        len: usize,
    },

    /// The input has a valid header but its body is not a valid encoding of the type (invalid
    /// enum tag, bool, UTF-8, char, or a custom error from a `Deserialize` impl).
    #[error("input is not a valid encoding of a value of type {type_name}")]
    Corrupt {
        /// `std::any::type_name` of the type being decoded.
        type_name: &'static str,
        /// What the codec or the `Deserialize` impl reported.
        #[source]
        source: BoxError,
    },

    /// The input does not start with the magic bytes, so it was not produced by this crate.
    #[error("input starts with {found:02x?}, expected the magic bytes {expected:02x?}")]
    BadMagic {
        /// The first four bytes of the input.
        found: [u8; 4],
        /// The magic bytes every encoding starts with.
        expected: [u8; 4],
    },

    /// The header names a format version this build cannot read.
    #[error("format version {found} is not supported, this build reads version {supported}")]
    UnsupportedVersion {
        /// Version byte found in the header.
        found: u8,
        /// The only version this build reads.
        supported: u8,
    },

    /// The header has flag bits this build does not know.
    #[error("header flags {flags:#04x} are not supported, known flags are {known:#04x}")]
    UnsupportedFlags {
        /// Flags byte found in the header.
        flags: u8,
        /// Mask of the flag bits this build knows.
        known: u8,
    },

    /// The value was written on a host of the other byte order; [`Buffer`](crate::Buffer) data
    /// is stored in the writer's native order, so it cannot be read here.
    #[error("value was encoded on a {encoded}-endian host, this host is {host}-endian")]
    ByteOrderMismatch {
        /// Byte order of the writer: `"big"` or `"little"`.
        encoded: &'static str,
        /// Byte order of this host.
        host: &'static str,
    },

    /// The value was encoded as a different type than the one requested.
    #[error(
        "value was encoded as another type (fingerprint {found:#018x}), \
         expected {expected} (fingerprint {expected_fingerprint:#018x})"
    )]
    TypeMismatch {
        /// `std::any::type_name` of the type requested by the caller.
        expected: &'static str,
        /// [`fingerprint`](crate::fingerprint) of the requested type.
        expected_fingerprint: u64,
        /// Fingerprint found in the header.
        found: u64,
    },

    /// A complete value was decoded but input bytes were left over.
    #[error("{count} bytes left over after decoding a value of type {type_name}")]
    TrailingBytes {
        /// `std::any::type_name` of the decoded type.
        type_name: &'static str,
        /// Number of bytes not consumed.
        count: usize,
    },

    /// The value refers to an out-of-band buffer that was not supplied.
    #[error("value refers to out-of-band buffer {index}, but {supplied} buffers were supplied")]
    MissingBuffer {
        /// Index stored in the value.
        index: u64,
        /// Number of buffers given to the decoder.
        supplied: usize,
    },

    /// Two places in the value refer to the same out-of-band buffer.
    #[error("out-of-band buffer {index} is referred to more than once")]
    BufferReused {
        /// The index referred to twice.
        index: u64,
    },

    /// A supplied out-of-band buffer has another length than the value records.
    #[error("out-of-band buffer {index} has {found} bytes, the value expects {expected}")]
    BufferLength {
        /// Index of the buffer.
        index: u64,
        /// Length in bytes recorded in the value.
        expected: u64,
        /// Length in bytes of the supplied buffer.
        found: usize,
    },

    /// More out-of-band buffers were supplied than the value refers to.
    #[error("{unused} of {supplied} out-of-band buffers were not referred to by the value")]
    UnusedBuffers {
        /// Number of supplied buffers the value did not use.
        unused: usize,
        /// Number of buffers given to the decoder.
        supplied: usize,
    },

    /// A receive buffer of the requested size cannot be allocated (typically a corrupted length
    /// received from a peer).
    #[error("cannot allocate a buffer of {byte_len} bytes of {elem} elements")]
    AllocationFailed {
        /// The requested length in bytes.
        byte_len: u64,
        /// Element type of the buffer.
        elem: ElemType,
    },

    /// A byte length is not a whole number of elements of the buffer's element type.
    #[error("{byte_len} bytes are not a whole number of {elem} elements")]
    BadBufferLength {
        /// The offending length in bytes.
        byte_len: u64,
        /// Element type of the buffer.
        elem: ElemType,
    },
}
