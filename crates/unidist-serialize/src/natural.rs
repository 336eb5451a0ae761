//! The natural large types and their raw layout: `Vec<T>` and `Box<[T]>` of primitive numbers,
//! `String` and `Buffer<T>` encoded as one length and their bytes, never element by element.
//!
//! Chosen by type (the `TypeId` of the encoded type), so a user writes plain Rust types and gets
//! memory speed. Only a whole value is natural: a `Vec<f64>` field of a struct goes through
//! serde like any other field (use a `Buffer` field, or `#[serde(with = "serde_fast")]`).
//!
//! Raw body (after the header, whose layout flag says `Raw`):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | 0: the bytes follow inline; 1: they are out-of-band buffer 0 |
//! | 1 | 8 | byte length, little-endian |
//! | 9 | .. | inline only: exactly that many bytes, native byte order |
//!
//! Out of band, [`encode_shared`] hands the value's own storage to the buffer (the buffer keeps
//! the value alive: no copy); encoding by reference copies it once into the buffer, except for
//! a `Buffer`, whose storage is shared either way. Decoding moves a received buffer into a
//! `Vec<T>` (or `Box<[T]>`, `String`) when it is the only handle to a `Vec<T>` storage, which is
//! what a receiver allocating with [`OobBuffer::zeroed`] has; otherwise it copies once.

use std::any::{type_name, Any, TypeId};
use std::sync::Arc;

use crate::buffer::{Buffer, ElemType, Element};
use crate::header::{self, Layout};
use crate::oob::{Encoded, OobBuffer};
use crate::{SerializeError, HEADER_LEN};

/// Mode byte of the raw body: the bytes follow.
const INLINE: u8 = 0;
/// Mode byte of the raw body: the bytes are out-of-band buffer 0.
const OUT_OF_BAND: u8 = 1;
/// Mode byte and length.
const RAW_HEAD: usize = 9;

/// Which natural container a type is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Container {
    Vec,
    Boxed,
    Buffer,
    Text,
}

/// The container and element type of `T` if it is natural.
fn kind<T: ?Sized + 'static>() -> Option<(Container, ElemType)> {
    let id = TypeId::of::<T>();
    if id == TypeId::of::<String>() {
        return Some((Container::Text, ElemType::U8));
    }
    macro_rules! check {
        ($e:ty, $n:ident) => {
            if id == TypeId::of::<Vec<$e>>() {
                return Some((Container::Vec, ElemType::$n));
            }
            if id == TypeId::of::<Box<[$e]>>() {
                return Some((Container::Boxed, ElemType::$n));
            }
            if id == TypeId::of::<Buffer<$e>>() {
                return Some((Container::Buffer, ElemType::$n));
            }
        };
    }
    for_each_elem!(check);
    None
}

/// Whether `T` is one of the natural types.
pub(crate) fn is_natural<T: ?Sized + 'static>() -> bool {
    kind::<T>().is_some()
}

/// The byte length of `value` if its type is natural; `None` for every other type.
pub(crate) fn byte_len<T: 'static>(value: &T) -> Option<usize> {
    bytes_of(value).map(<[u8]>::len)
}

/// The bytes of `value` if its type is natural.
fn bytes_of<T: 'static>(value: &T) -> Option<&[u8]> {
    // Checked first so that the downcasts below are not even tried for other types (the
    // comparison of two constant type ids folds away).
    kind::<T>()?;
    let any: &dyn Any = value;
    if let Some(text) = any.downcast_ref::<String>() {
        return Some(text.as_bytes());
    }
    macro_rules! check {
        ($e:ty, $n:ident) => {
            if let Some(v) = any.downcast_ref::<Vec<$e>>() {
                return Some(bytemuck::cast_slice(v));
            }
            if let Some(v) = any.downcast_ref::<Box<[$e]>>() {
                return Some(bytemuck::cast_slice(v));
            }
            if let Some(v) = any.downcast_ref::<Buffer<$e>>() {
                return Some(v.as_bytes());
            }
        };
    }
    for_each_elem!(check);
    None
}

/// An out-of-band buffer holding a copy of `value`'s data (a `Buffer`'s storage is shared).
fn copied<T: 'static>(value: &T) -> Option<OobBuffer> {
    let any: &dyn Any = value;
    if let Some(text) = any.downcast_ref::<String>() {
        return Some(OobBuffer::from(text.as_bytes().to_vec()));
    }
    macro_rules! check {
        ($e:ty, $n:ident) => {
            if let Some(v) = any.downcast_ref::<Vec<$e>>() {
                return Some(OobBuffer::from(v.clone()));
            }
            if let Some(v) = any.downcast_ref::<Box<[$e]>>() {
                return Some(OobBuffer::from(v.to_vec()));
            }
            if let Some(v) = any.downcast_ref::<Buffer<$e>>() {
                return Some(OobBuffer::from(v.clone()));
            }
        };
    }
    for_each_elem!(check);
    None
}

/// An out-of-band buffer that keeps `value` itself alive and sends its storage: no copy.
fn shared(value: Arc<dyn Any + Send + Sync>) -> Option<OobBuffer> {
    // Each failed downcast hands the value back for the next one.
    let mut value = match value.downcast::<String>() {
        Ok(text) => return Some(OobBuffer::shared(text)),
        Err(other) => other,
    };
    macro_rules! check {
        ($e:ty, $n:ident) => {
            value = match value.downcast::<Vec<$e>>() {
                Ok(v) => return Some(OobBuffer::shared(v)),
                Err(other) => other,
            };
            value = match value.downcast::<Box<[$e]>>() {
                Ok(v) => return Some(OobBuffer::shared(v)),
                Err(other) => other,
            };
            value = match value.downcast::<Buffer<$e>>() {
                Ok(v) => return Some(OobBuffer::from((*v).clone())),
                Err(other) => other,
            };
        };
    }
    for_each_elem!(check);
    drop(value);
    None
}

/// Whether data of `byte_len` bytes goes out of band (as for `Buffer`: at least the threshold).
fn out_of_band(byte_len: usize, threshold: Option<usize>) -> bool {
    threshold.is_some_and(|t| byte_len >= t)
}

/// The header and raw head of a `T` whose data is `byte_len` bytes, with room for `extra` more.
fn head<T: 'static>(mode: u8, byte_len: usize, extra: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + RAW_HEAD + extra);
    header::write::<T>(&mut out, Layout::Raw);
    out.push(mode);
    out.extend_from_slice(&(byte_len as u64).to_le_bytes());
    out
}

/// Encodes `value` in the raw layout if its type is natural; data of at least `threshold` bytes
/// is copied once into an out-of-band buffer (a `Buffer`'s storage is shared instead).
pub(crate) fn encode<T: 'static>(value: &T, threshold: Option<usize>) -> Option<Encoded> {
    let bytes = bytes_of(value)?;
    if out_of_band(bytes.len(), threshold) {
        Some(Encoded {
            inline: head::<T>(OUT_OF_BAND, bytes.len(), 0),
            buffers: vec![copied(value)?],
        })
    } else {
        Some(inline::<T>(bytes))
    }
}

/// As [`encode`], but an out-of-band buffer shares `value`'s storage: no copy.
pub(crate) fn encode_shared<T: Send + Sync + 'static>(
    value: &Arc<T>,
    threshold: Option<usize>,
) -> Option<Encoded> {
    let bytes = bytes_of(&**value)?;
    if out_of_band(bytes.len(), threshold) {
        Some(Encoded {
            inline: head::<T>(OUT_OF_BAND, bytes.len(), 0),
            buffers: vec![shared(Arc::clone(value) as Arc<dyn Any + Send + Sync>)?],
        })
    } else {
        Some(inline::<T>(bytes))
    }
}

fn inline<T: 'static>(bytes: &[u8]) -> Encoded {
    let mut out = head::<T>(INLINE, bytes.len(), bytes.len());
    out.extend_from_slice(bytes);
    Encoded {
        inline: out,
        buffers: Vec::new(),
    }
}

/// Where the data of a raw body is.
enum Source<'a> {
    Inline(&'a [u8]),
    OutOfBand(OobBuffer),
}

impl Source<'_> {
    fn into_vec<E: Element>(self) -> Vec<E> {
        match self {
            // One copy: the input is not aligned for `E`, and it is borrowed.
            Source::Inline(bytes) => bytemuck::pod_collect_to_vec(bytes),
            Source::OutOfBand(buffer) => buffer.into_vec(),
        }
    }
}

/// Decodes a raw `body` (after the header) as `T` with the supplied buffers.
pub(crate) fn decode<T: 'static>(
    body: &[u8],
    buffers: Vec<OobBuffer>,
) -> Result<T, SerializeError> {
    let type_name = type_name::<T>();
    let Some((container, elem)) = kind::<T>() else {
        return Err(corrupt::<T>(format!(
            "the raw layout is only written for natural types, not {type_name}"
        )));
    };
    let truncated = || SerializeError::Truncated {
        type_name,
        len: HEADER_LEN + body.len(),
    };
    let (&[mode, l0, l1, l2, l3, l4, l5, l6, l7], rest) =
        body.split_first_chunk::<RAW_HEAD>().ok_or_else(truncated)?;
    let byte_len = u64::from_le_bytes([l0, l1, l2, l3, l4, l5, l6, l7]);
    if byte_len % elem.size() as u64 != 0 {
        return Err(SerializeError::BadBufferLength { byte_len, elem });
    }
    let supplied = buffers.len();
    let source = match mode {
        INLINE => {
            // Bounded by the input: a corrupted length cannot allocate more than it holds.
            let data = usize::try_from(byte_len)
                .ok()
                .and_then(|n| rest.get(..n))
                .ok_or_else(truncated)?;
            if rest.len() > data.len() {
                return Err(SerializeError::TrailingBytes {
                    type_name,
                    count: rest.len() - data.len(),
                });
            }
            if supplied > 0 {
                return Err(SerializeError::UnusedBuffers {
                    unused: supplied,
                    supplied,
                });
            }
            Source::Inline(data)
        }
        OUT_OF_BAND => {
            if !rest.is_empty() {
                return Err(SerializeError::TrailingBytes {
                    type_name,
                    count: rest.len(),
                });
            }
            let mut buffers = buffers.into_iter();
            let buffer = buffers.next().ok_or(SerializeError::MissingBuffer {
                index: 0,
                supplied,
            })?;
            if supplied > 1 {
                return Err(SerializeError::UnusedBuffers {
                    unused: supplied - 1,
                    supplied,
                });
            }
            if buffer.len() as u64 != byte_len {
                return Err(SerializeError::BufferLength {
                    index: 0,
                    expected: byte_len,
                    found: buffer.len(),
                });
            }
            Source::OutOfBand(buffer)
        }
        other => {
            return Err(corrupt::<T>(format!(
                "raw layout mode byte is {other}, expected {INLINE} (inline) or {OUT_OF_BAND} (out of band)"
            )))
        }
    };
    macro_rules! build {
        ($e:ty, $n:ident) => {
            if elem == ElemType::$n {
                return build::<T, $e>(container, source);
            }
        };
    }
    for_each_elem!(build);
    Err(corrupt::<T>(format!(
        "no natural type holds {elem} elements"
    )))
}

/// Builds a `T` (whose natural kind is `container` of `E`) from `source`.
fn build<T: 'static, E: Element>(
    container: Container,
    source: Source<'_>,
) -> Result<T, SerializeError> {
    match container {
        Container::Vec => cast(source.into_vec::<E>()),
        Container::Boxed => cast(source.into_vec::<E>().into_boxed_slice()),
        Container::Buffer => {
            let buffer = match source {
                Source::Inline(bytes) => Buffer::new(bytemuck::pod_collect_to_vec(bytes)),
                // The storage is shared, or read in place, not copied, even while the encoding
                // holds it too.
                Source::OutOfBand(buffer) => buffer.into_buffer::<E>(),
            };
            cast(buffer)
        }
        Container::Text => {
            let text = match source {
                Source::Inline(bytes) => std::str::from_utf8(bytes).map(str::to_owned),
                Source::OutOfBand(buffer) => buffer.into_string().map_err(|e| e.utf8_error()),
            };
            text.map_err(|e| SerializeError::Corrupt {
                type_name: type_name::<T>(),
                source: Box::new(e),
            })
            .and_then(cast)
        }
    }
}

/// `value` as a `T`, which it is by the kind table; an error rather than a panic otherwise.
fn cast<T: 'static, U: 'static>(value: U) -> Result<T, SerializeError> {
    let mut slot = Some(value);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<T>>()
        .and_then(Option::take)
        .ok_or_else(|| {
            corrupt::<T>(format!(
                "internal: {} is not {}",
                type_name::<U>(),
                type_name::<T>()
            ))
        })
}

fn corrupt<T: ?Sized + 'static>(message: String) -> SerializeError {
    SerializeError::Corrupt {
        type_name: type_name::<T>(),
        source: message.into(),
    }
}
