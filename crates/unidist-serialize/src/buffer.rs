//! `Buffer<T>`: shared, cheaply cloned numeric data that serializes as one byte blob and can
//! travel out of band.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::oob::{self, OobBuffer, Storage};

mod sealed {
    /// Seals [`Element`](super::Element) and carries the bytemuck bound privately, so that
    /// bytemuck stays out of the public API.
    pub trait Sealed: bytemuck::Pod {}
}

/// The element types a [`Buffer`] can hold, as a value (sent by the MPI backend next to each
/// out-of-band buffer so the receiver can allocate a buffer of the right type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ElemType {
    /// `u8`
    U8,
    /// `i8`
    I8,
    /// `u16`
    U16,
    /// `i16`
    I16,
    /// `u32`
    U32,
    /// `i32`
    I32,
    /// `u64`
    U64,
    /// `i64`
    I64,
    /// `f32`
    F32,
    /// `f64`
    F64,
}

impl ElemType {
    /// Size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 => 8,
        }
    }

    /// The Rust name of the type, e.g. `"f64"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::I8 => "i8",
            Self::U16 => "u16",
            Self::I16 => "i16",
            Self::U32 => "u32",
            Self::I32 => "i32",
            Self::U64 => "u64",
            Self::I64 => "i64",
            Self::F32 => "f32",
            Self::F64 => "f64",
        }
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A plain-old-data numeric type that a [`Buffer`] can hold: `u8`, `i8`, `u16`, `i16`, `u32`,
/// `i32`, `u64`, `i64`, `f32` or `f64`.
///
/// Sealed: the out-of-band scheme views elements as raw bytes, which is only sound for types
/// without padding or invalid bit patterns.
pub trait Element: sealed::Sealed + Copy + Send + Sync + PartialEq + fmt::Debug + 'static {
    /// This type as an [`ElemType`] value.
    const ELEM: ElemType;
}

macro_rules! elements {
    ($($ty:ty => $elem:ident),*) => {$(
        impl sealed::Sealed for $ty {}
        impl Element for $ty {
            const ELEM: ElemType = ElemType::$elem;
        }
    )*};
}
elements!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, u64 => U64,
    i64 => I64, f32 => F32, f64 => F64);

/// Numeric data for large payloads: shared (cloning is a reference-count increment), serialized
/// as one contiguous byte blob, and sent out of band by [`encode_with_oob`](crate::encode_with_oob).
///
/// Put a `Buffer` in a value wherever a big `Vec<T>` of numbers would go. Plain
/// [`encode`](crate::encode) copies its bytes inline with one memcpy (a `Vec<f64>` is encoded
/// element by element); [`encode_with_oob`](crate::encode_with_oob) does not copy it at all when it
/// is at least the threshold, handing its storage to the transport instead.
///
/// Elements are stored and sent in native byte order; the header records it and a reader of the
/// other order gets [`SerializeError::ByteOrderMismatch`](crate::SerializeError::ByteOrderMismatch).
/// The serde form (an enum of inline bytes or an out-of-band placeholder) is made for this
/// crate's codec; other serde formats can carry it but gain nothing from it.
///
/// ```
/// use unidist_serialize::{decode, encode, Buffer};
///
/// let data: Buffer<f64> = vec![1.0, 2.5, -3.0].into();
/// let copy = data.clone(); // shares storage, no copy
/// assert!(Buffer::ptr_eq(&data, &copy));
/// assert_eq!(data[1], 2.5);
///
/// let back: Buffer<f64> = decode(&encode(&data)?)?;
/// assert_eq!(back, data);
/// assert_eq!(back.into_vec(), vec![1.0, 2.5, -3.0]);
/// # Ok::<(), unidist_serialize::SerializeError>(())
/// ```
pub struct Buffer<T: Element = u8> {
    data: Data<T>,
}

/// Where a [`Buffer`]'s elements live.
enum Data<T: Element> {
    /// In a `Vec<T>` of this process.
    Owned(Arc<Vec<T>>),
    /// In bytes another owner keeps alive and never changes while shared (a shared-memory
    /// mapping, or a received buffer of another element type), read in place. Checked at
    /// construction to be aligned for `T` and a whole number of `T`s.
    InPlace(Arc<dyn Storage>),
}

/// The elements of in-place bytes, checked when the buffer was made.
fn view<T: Element>(storage: &dyn Storage) -> &[T] {
    // The owner returns the same bytes on every call (see `OobBuffer::from_owner`), so the
    // check made in `Buffer::in_place` still holds.
    bytemuck::try_cast_slice(storage.bytes())
        .expect("in-place bytes were checked aligned and whole at construction")
}

impl<T: Element> Buffer<T> {
    /// Wraps `data` without copying it.
    pub fn new(data: Vec<T>) -> Self {
        Self::from_arc(Arc::new(data))
    }

    /// Wraps storage that is already shared, e.g. one taken from an out-of-band buffer.
    pub(crate) fn from_arc(data: Arc<Vec<T>>) -> Self {
        Self {
            data: Data::Owned(data),
        }
    }

    /// Reads `storage`'s bytes in place when they are aligned for `T` and a whole number of
    /// `T`s; gives `storage` back otherwise.
    pub(crate) fn in_place(storage: Arc<dyn Storage>) -> Result<Self, Arc<dyn Storage>> {
        if bytemuck::try_cast_slice::<u8, T>(storage.bytes()).is_ok() {
            Ok(Self {
                data: Data::InPlace(storage),
            })
        } else {
            Err(storage)
        }
    }

    /// The storage, for handing it out of band without a copy.
    pub(crate) fn storage(&self) -> Arc<dyn Storage> {
        match &self.data {
            Data::Owned(v) => Arc::clone(v) as Arc<dyn Storage>,
            Data::InPlace(s) => Arc::clone(s),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Size of the data in bytes (`len() * size_of::<T>()`).
    pub fn byte_len(&self) -> usize {
        std::mem::size_of_val(self.as_slice())
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        match &self.data {
            Data::Owned(v) => v,
            Data::InPlace(s) => view(&**s),
        }
    }

    /// The elements as raw bytes in native byte order.
    pub fn as_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self.as_slice())
    }

    /// The elements as a `Vec`: moved out without a copy if this is the only handle to the
    /// storage and the storage is a `Vec<T>`, copied otherwise (a buffer decoded from a
    /// shared-memory segment reads the segment in place until then).
    pub fn into_vec(self) -> Vec<T> {
        match self.data {
            Data::Owned(v) => Arc::unwrap_or_clone(v),
            Data::InPlace(s) => crate::fresh::copy_to_vec(s.bytes()),
        }
    }

    /// Drops the buffer, keeping its allocation for a later decode when this was the last
    /// handle to a large `Vec<T>` storage (see `recycle`).
    pub(crate) fn recycle(self) {
        match self.data {
            Data::Owned(v) => {
                if let Ok(v) = Arc::try_unwrap(v) {
                    crate::fresh::keep(v);
                }
            }
            Data::InPlace(s) => crate::fresh::recycle_shared(s.into_any()),
        }
    }

    /// Whether `a` and `b` share the same storage (clones of one another).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        match (&a.data, &b.data) {
            (Data::Owned(x), Data::Owned(y)) => Arc::ptr_eq(x, y),
            (Data::InPlace(x), Data::InPlace(y)) => Arc::ptr_eq(x, y),
            _ => false,
        }
    }
}

impl<T: Element> Clone for Buffer<T> {
    fn clone(&self) -> Self {
        let data = match &self.data {
            Data::Owned(v) => Data::Owned(Arc::clone(v)),
            Data::InPlace(s) => Data::InPlace(Arc::clone(s)),
        };
        Self { data }
    }
}

impl<T: Element> Default for Buffer<T> {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl<T: Element> Deref for Buffer<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Element> AsRef<[T]> for Buffer<T> {
    fn as_ref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Element> From<Vec<T>> for Buffer<T> {
    fn from(data: Vec<T>) -> Self {
        Self::new(data)
    }
}

impl<T: Element> From<&[T]> for Buffer<T> {
    fn from(data: &[T]) -> Self {
        Self::new(data.to_vec())
    }
}

impl<T: Element> FromIterator<T> for Buffer<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self::new(iter.into_iter().collect())
    }
}

impl<T: Element> PartialEq for Buffer<T> {
    /// Element-wise, like slices (so a buffer holding a NaN is not equal to itself).
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<T: Element> fmt::Debug for Buffer<T> {
    /// Shows the element type and at most 16 elements: buffers are meant to be large.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 16;
        write!(f, "Buffer<{}>", T::ELEM)?;
        let mut list = f.debug_list();
        list.entries(self.as_slice().iter().take(SHOWN));
        if self.len() > SHOWN {
            list.finish_non_exhaustive()
        } else {
            list.finish()
        }
    }
}

/// The serde name of the wire enum below (the attributes must repeat it as a literal). Not
/// written by either codec; the type probe recognises `Buffer`s by it.
pub(crate) const WIRE_NAME: &str = "unidist_serialize::Buffer";

/// Wire form of a `Buffer`, as a serde enum so that the inline and out-of-band forms can be
/// told apart when decoding.
#[derive(Serialize)]
#[serde(rename = "unidist_serialize::Buffer")]
pub(crate) enum WireRef<'a> {
    /// The data itself, as one byte string (`serialize_bytes`: a length and one memcpy).
    Inline(#[serde(with = "serde_bytes")] &'a [u8]),
    /// A placeholder for buffer `index` of the out-of-band list, `byte_len` bytes long.
    OutOfBand { index: u64, byte_len: u64 },
}

/// Owned counterpart of [`WireRef`], for decoding.
#[derive(Deserialize)]
#[serde(rename = "unidist_serialize::Buffer", bound = "")]
enum Wire<T: Element> {
    Inline(InlineData<T>),
    OutOfBand { index: u64, byte_len: u64 },
}

/// Inline data decoded straight from a byte string into `Vec<T>` (one copy, none for `u8`
/// when the deserializer hands over an owned `Vec<u8>`).
struct InlineData<T>(Vec<T>);

impl<'de, T: Element> Deserialize<'de> for InlineData<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BytesVisitor<T>(std::marker::PhantomData<T>);

        impl<T: Element> Visitor<'_> for BytesVisitor<T> {
            type Value = InlineData<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "the bytes of a Buffer<{}>", T::ELEM)
            }

            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
                check_multiple::<T>(bytes.len() as u64).map_err(oob::report::<E>)?;
                // A copy is unavoidable: the input is not aligned for `T`.
                Ok(InlineData(bytemuck::pod_collect_to_vec(bytes)))
            }

            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<Self::Value, E> {
                check_multiple::<T>(bytes.len() as u64).map_err(oob::report::<E>)?;
                match bytemuck::allocation::try_cast_vec(bytes) {
                    Ok(same_alignment) => Ok(InlineData(same_alignment)),
                    Err((_, bytes)) => Ok(InlineData(bytemuck::pod_collect_to_vec(&bytes))),
                }
            }
        }

        d.deserialize_byte_buf(BytesVisitor(std::marker::PhantomData))
    }
}

/// `byte_len` must be a whole number of `T`s, or the data is corrupt.
pub(crate) fn check_multiple<T: Element>(byte_len: u64) -> Result<(), crate::SerializeError> {
    if byte_len.is_multiple_of(T::ELEM.size() as u64) {
        Ok(())
    } else {
        Err(crate::SerializeError::BadBufferLength {
            byte_len,
            elem: T::ELEM,
        })
    }
}

impl<T: Element> Serialize for Buffer<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // `offer` returns an index only inside `encode_with_oob` and only for big buffers.
        match oob::offer(self.byte_len(), || OobBuffer::from(self.clone())) {
            Some(index) => WireRef::OutOfBand {
                index,
                byte_len: self.byte_len() as u64,
            }
            .serialize(s),
            None => WireRef::Inline(self.as_bytes()).serialize(s),
        }
    }
}

impl<'de, T: Element> Deserialize<'de> for Buffer<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Wire::<T>::deserialize(d)? {
            Wire::Inline(InlineData(data)) => Ok(Self::new(data)),
            Wire::OutOfBand { index, byte_len } => check_multiple::<T>(byte_len)
                .and_then(|()| oob::claim(index, byte_len))
                .map(OobBuffer::into_buffer)
                .map_err(oob::report::<D::Error>),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode, SerializeError, HEADER_LEN};

    #[test]
    fn elem_type_matches_the_rust_type() {
        fn check<T: Element>() {
            assert_eq!(T::ELEM.size(), std::mem::size_of::<T>());
            assert_eq!(T::ELEM.name(), std::any::type_name::<T>());
        }
        check::<u8>();
        check::<i8>();
        check::<u16>();
        check::<i16>();
        check::<u32>();
        check::<i32>();
        check::<u64>();
        check::<i64>();
        check::<f32>();
        check::<f64>();
    }

    #[test]
    fn clone_shares_into_vec_copies_only_when_shared() {
        let a: Buffer<i32> = vec![1, 2, 3].into();
        let b = a.clone();
        assert!(Buffer::ptr_eq(&a, &b));
        let ptr = a.as_ptr();
        let copied = b.into_vec(); // `a` still holds the storage: must copy
        assert_ne!(copied.as_ptr(), ptr);
        let moved = a.into_vec(); // last handle: must move
        assert_eq!(moved.as_ptr(), ptr);
        assert_eq!(moved, copied);
    }

    #[test]
    fn ergonomics() {
        let b: Buffer<u16> = (0..5).collect();
        assert_eq!(b.len(), 5);
        assert!(!b.is_empty());
        assert_eq!(b.byte_len(), 10);
        assert_eq!(b.as_bytes().len(), 10);
        assert_eq!(b.iter().sum::<u16>(), 10);
        assert_eq!(Buffer::from(&[0u16, 1, 2, 3, 4][..]), b);
        assert!(Buffer::<f32>::default().is_empty());
        assert_eq!(format!("{b:?}"), "Buffer<u16>[0, 1, 2, 3, 4]");
        let long: Buffer<u8> = (0..100).collect();
        assert!(format!("{long:?}").ends_with("15, ..]"), "{long:?}");
    }

    #[test]
    fn inline_encoding_is_one_contiguous_blob() {
        let data: Buffer<f64> = (0..1000).map(f64::from).collect();
        let bytes = encode(&data).expect("encodable");
        // Header, variant tag, a varint length (at most 9 bytes), then exactly the raw data.
        assert!(bytes.ends_with(data.as_bytes()));
        assert!(
            bytes.len() <= HEADER_LEN + 1 + 9 + data.byte_len(),
            "{}",
            bytes.len()
        );
        let back: Buffer<f64> = decode(&bytes).expect("decodable");
        assert_eq!(back, data);
    }

    #[test]
    fn inline_length_not_a_multiple_of_the_element_is_an_error() {
        let bytes = crate::tests::frame_as::<Buffer<u32>>(&WireRef::Inline(&[1, 2, 3]));
        assert!(matches!(
            decode::<Buffer<u32>>(&bytes),
            Err(SerializeError::BadBufferLength {
                byte_len: 3,
                elem: ElemType::U32
            })
        ));
        // For bytes any length is whole, which shows the check is not simply always failing.
        let bytes = crate::tests::frame_as::<Buffer<u8>>(&WireRef::Inline(&[1, 2, 3]));
        assert_eq!(
            decode::<Buffer<u8>>(&bytes).expect("valid").as_slice(),
            &[1, 2, 3]
        );
    }
}
