//! The 14-byte header in front of every encoded value: the type fingerprint it carries and the
//! body layout its flags name.

use std::any::type_name;

use crate::SerializeError;

/// Magic bytes at offset 0 of every encoding ("UniDist SeRialize").
pub(crate) const MAGIC: [u8; 4] = *b"UDSR";

/// Version of the wire format written and read by this build (header byte 4).
///
/// Bumped whenever the header or the body encoding changes incompatibly, e.g. when the codec is
/// swapped, so that a mixed deployment fails loudly instead of decoding garbage. Version 2 added
/// the body layout flags (bits 1-2).
pub const FORMAT_VERSION: u8 = 2;

/// Length in bytes of the header in front of every encoded value.
pub const HEADER_LEN: usize = 14;

/// Flag bit 0: the writer is big-endian. [`Buffer`](crate::Buffer) data is copied in native
/// byte order (a plain memcpy), so the reader must have the same order.
const FLAG_BIG_ENDIAN: u8 = 0b0000_0001;
/// Flag bits 1-2: the body layout, a [`Layout`] (value 3 is invalid).
const LAYOUT_MASK: u8 = 0b0000_0110;
const LAYOUT_SHIFT: u32 = 1;
/// Every flag bit this build understands; any other bit set is an error.
const KNOWN_FLAGS: u8 = FLAG_BIG_ENDIAN | LAYOUT_MASK;
const HOST_FLAGS: u8 = if cfg!(target_endian = "big") {
    FLAG_BIG_ENDIAN
} else {
    0
};

/// How the body after the header is laid out (header flag bits 1-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// The compact serde codec (bincode): not self-describing, the reader's type drives it.
    Compact = 0,
    /// The self-describing serde codec (MessagePack), for types the compact one cannot carry.
    SelfDescribing = 1,
    /// A natural type's raw layout: a mode byte, a length and the bytes (see `natural`).
    Raw = 2,
}

impl Layout {
    fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(Self::Compact),
            1 => Some(Self::SelfDescribing),
            2 => Some(Self::Raw),
            _ => None,
        }
    }
}

/// A stable 64-bit fingerprint of `T`: the FNV-1a hash of `std::any::type_name::<T>()`.
///
/// Processes running the same binary agree on it, which is all unidist needs (every MPI rank runs
/// the same executable). It is a best-effort check, not a proof of type identity: `type_name` is
/// not guaranteed to be unique (two versions of one crate can print the same path) nor stable
/// across compiler versions.
///
/// ```
/// use unidist_serialize::fingerprint;
/// assert_eq!(fingerprint::<u32>(), fingerprint::<u32>());
/// assert_ne!(fingerprint::<u32>(), fingerprint::<i32>());
/// ```
pub fn fingerprint<T: ?Sized + 'static>() -> u64 {
    fnv1a(type_name::<T>().as_bytes())
}

/// 64-bit FNV-1a; chosen because it is tiny, dependency-free and fully specified, so the
/// fingerprint does not depend on `std`'s unspecified `Hasher` algorithms.
const fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(PRIME);
        i += 1;
    }
    hash
}

/// Appends the header for a value of type `T` whose body has `layout` to `out`.
pub(crate) fn write<T: ?Sized + 'static>(out: &mut Vec<u8>, layout: Layout) {
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT_VERSION);
    out.push(HOST_FLAGS | ((layout as u8) << LAYOUT_SHIFT));
    out.extend_from_slice(&fingerprint::<T>().to_le_bytes());
}

/// Checks the header of `bytes` against `T` and returns the body's layout and the body.
///
/// The checks run in header order so that the error names the first thing that is wrong: a
/// foreign buffer is reported as `BadMagic`, not as a type mismatch.
pub(crate) fn check<T: ?Sized + 'static>(bytes: &[u8]) -> Result<(Layout, &[u8]), SerializeError> {
    let truncated = || SerializeError::Truncated {
        type_name: type_name::<T>(),
        len: bytes.len(),
    };
    let magic = bytes.first_chunk::<4>().ok_or_else(truncated)?;
    if *magic != MAGIC {
        return Err(SerializeError::BadMagic {
            found: *magic,
            expected: MAGIC,
        });
    }
    let (header, body) = bytes.split_at_checked(HEADER_LEN).ok_or_else(truncated)?;
    let version = header[4];
    if version != FORMAT_VERSION {
        return Err(SerializeError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let flags = header[5];
    let layout = Layout::from_bits((flags & LAYOUT_MASK) >> LAYOUT_SHIFT);
    let Some(layout) = layout.filter(|_| flags & !KNOWN_FLAGS == 0) else {
        return Err(SerializeError::UnsupportedFlags {
            flags,
            known: KNOWN_FLAGS,
        });
    };
    if flags & FLAG_BIG_ENDIAN != HOST_FLAGS & FLAG_BIG_ENDIAN {
        let order = |big: bool| if big { "big" } else { "little" };
        return Err(SerializeError::ByteOrderMismatch {
            encoded: order(flags & FLAG_BIG_ENDIAN != 0),
            host: order(cfg!(target_endian = "big")),
        });
    }
    let found = match header.last_chunk::<8>() {
        Some(fingerprint) => u64::from_le_bytes(*fingerprint),
        None => return Err(truncated()),
    };
    let expected_fingerprint = fingerprint::<T>();
    if found != expected_fingerprint {
        return Err(SerializeError::TypeMismatch {
            expected: type_name::<T>(),
            expected_fingerprint,
            found,
        });
    }
    Ok((layout, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Reference values from the FNV specification (draft-eastlake-fnv), 64-bit FNV-1a.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn fingerprint_is_hash_of_type_name() {
        assert_eq!(
            fingerprint::<String>(),
            fnv1a(type_name::<String>().as_bytes())
        );
        assert_ne!(fingerprint::<Vec<u8>>(), fingerprint::<Vec<i8>>());
        assert_ne!(fingerprint::<(u8, u16)>(), fingerprint::<(u16, u8)>());
    }

    #[test]
    fn header_layout_is_as_documented() {
        let mut out = Vec::new();
        write::<u64>(&mut out, Layout::Compact);
        assert_eq!(out.len(), HEADER_LEN);
        assert_eq!(&out[..4], b"UDSR");
        assert_eq!(out[4], FORMAT_VERSION);
        assert_eq!(out[5], HOST_FLAGS);
        assert_eq!(out[6..], fingerprint::<u64>().to_le_bytes());
        assert_eq!(check::<u64>(&out).ok(), Some((Layout::Compact, &[][..])));
        for layout in [Layout::SelfDescribing, Layout::Raw, Layout::Compact] {
            let mut out = Vec::new();
            write::<u64>(&mut out, layout);
            assert_eq!(out[5], HOST_FLAGS | (layout as u8) << 1);
            assert_eq!(check::<u64>(&out).map(|(l, _)| l).ok(), Some(layout));
        }
    }

    fn header_of_u64() -> Vec<u8> {
        let mut out = Vec::new();
        write::<u64>(&mut out, Layout::Compact);
        out
    }

    #[test]
    fn each_header_field_is_checked() {
        let mut bad_magic = header_of_u64();
        bad_magic[0] = b'X';
        assert!(matches!(
            check::<u64>(&bad_magic),
            Err(SerializeError::BadMagic { found, .. }) if &found == b"XDSR"
        ));

        let mut bad_version = header_of_u64();
        bad_version[4] = FORMAT_VERSION + 1;
        assert!(matches!(
            check::<u64>(&bad_version),
            Err(SerializeError::UnsupportedVersion { found, supported: FORMAT_VERSION })
                if found == FORMAT_VERSION + 1
        ));

        let mut bad_flags = header_of_u64();
        bad_flags[5] |= 0b1000_0000;
        assert!(matches!(
            check::<u64>(&bad_flags),
            Err(SerializeError::UnsupportedFlags { flags, .. }) if flags & 0x80 != 0
        ));
        let mut bad_layout = header_of_u64();
        bad_layout[5] |= LAYOUT_MASK;
        assert!(matches!(
            check::<u64>(&bad_layout),
            Err(SerializeError::UnsupportedFlags { flags, known: KNOWN_FLAGS }) if flags & LAYOUT_MASK == LAYOUT_MASK
        ));

        let mut other_order = header_of_u64();
        other_order[5] ^= FLAG_BIG_ENDIAN;
        assert!(matches!(
            check::<u64>(&other_order),
            Err(SerializeError::ByteOrderMismatch { .. })
        ));

        assert!(matches!(
            check::<i64>(&header_of_u64()),
            Err(SerializeError::TypeMismatch { expected: "i64", found, .. })
                if found == fingerprint::<u64>()
        ));
    }

    #[test]
    fn short_input_is_truncated_not_a_panic() {
        let header = header_of_u64();
        for len in 0..HEADER_LEN {
            assert!(
                matches!(
                    check::<u64>(&header[..len]),
                    Err(SerializeError::Truncated { .. })
                ),
                "prefix of {len} bytes"
            );
        }
    }
}
