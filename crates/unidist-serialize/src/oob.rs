//! Out-of-band buffers: `OobBuffer`, `Encoded`, `encode_with_oob`/`decode_with_oob`, and the
//! thread-local scopes through which `Buffer`'s serde impls reach them.
//!
//! serde gives a `Serialize` impl no context, so a [`Buffer`] cannot be told "put yourself out of
//! band" through the serializer. Instead every public entry point installs its own context in a
//! thread-local for the duration of the call ("scope") and restores the previous one when it
//! returns or unwinds. Consequences:
//! - a nested `encode`/`decode` inside a user's serde impl gets a fresh context, so it cannot
//!   take the outer call's buffers (plain `encode` always puts buffers inline);
//! - a panic in user code leaves no armed context behind;
//! - a `Buffer` serialized outside this crate's functions (e.g. with `serde_json`) is inline.

use std::any::{type_name, Any};
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::thread::LocalKey;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::buffer::{Buffer, ElemType, Element};
use crate::codec::{self, DecodeFailure};
use crate::error::BoxError;
use crate::fresh::{self, zeroed_vec};
use crate::header::Layout;
use crate::{choice, header, natural, SerializeError};

/// Type-erased storage of an out-of-band buffer: the `Vec<T>` inside a [`Buffer<T>`]'s `Arc`, or
/// a natural value encoded by [`encode_shared`](crate::encode_shared) (`Vec<T>`, `Box<[T]>`,
/// `String`), kept alive by the buffer instead of copied.
pub(crate) trait Storage: Send + Sync + 'static {
    fn bytes(&self) -> &[u8];
    /// `None` for storage that cannot be written as bytes (a `String` must stay UTF-8).
    fn bytes_mut(&mut self) -> Option<&mut [u8]>;
    fn elem(&self) -> ElemType;
    /// For downcasting back to `Arc<Vec<T>>` (kept simple; trait upcasting would need Rust 1.86).
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// Whether the bytes belong to another owner ([`External`]) rather than to this storage.
    fn external(&self) -> bool {
        false
    }
}

impl<T: Element> Storage for Vec<T> {
    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self)
    }

    fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        Some(bytemuck::cast_slice_mut(self))
    }

    fn elem(&self) -> ElemType {
        T::ELEM
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

impl<T: Element> Storage for Box<[T]> {
    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self)
    }

    fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        Some(bytemuck::cast_slice_mut(self))
    }

    fn elem(&self) -> ElemType {
        T::ELEM
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

impl Storage for String {
    fn bytes(&self) -> &[u8] {
        self.as_bytes()
    }

    fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        None
    }

    fn elem(&self) -> ElemType {
        ElemType::U8
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// Bytes owned by something else (a shared-memory mapping, for instance) that an
/// [`OobBuffer`] keeps alive; read-only, so a `Buffer` reads them in place and other values
/// copy them once.
struct External {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    elem: ElemType,
}

impl Storage for External {
    fn bytes(&self) -> &[u8] {
        (*self.owner).as_ref()
    }

    fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        None
    }

    fn elem(&self) -> ElemType {
        self.elem
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn external(&self) -> bool {
        true
    }
}

/// One buffer sent beside the inline bytes of an [`Encoded`] value.
///
/// It shares storage with the [`Buffer`] it came from (cloning it is a reference-count increment),
/// and it remembers its element type so that a receiver can allocate a correctly aligned buffer
/// with [`OobBuffer::zeroed`], receive into [`OobBuffer::as_bytes_mut`], and have
/// [`decode_with_oob`] move it into the value without a copy.
///
/// Buffers built from bytes (`Vec<u8>`) are accepted for any element type; they are moved without
/// a copy into a `Buffer<u8>` and copied once into other element types, whose alignment a byte
/// allocation does not guarantee.
#[derive(Clone)]
pub struct OobBuffer {
    storage: Arc<dyn Storage>,
}

impl OobBuffer {
    /// A zero-filled buffer of `byte_len` bytes holding `elem` elements, to receive into.
    ///
    /// The length usually comes from a peer (the MPI backend receives it with the batch), so an
    /// impossible length is an error, never an abort.
    ///
    /// # Errors
    /// [`SerializeError::BadBufferLength`] if `byte_len` is not a multiple of `elem.size()`, and
    /// [`SerializeError::AllocationFailed`] if the memory cannot be allocated.
    pub fn zeroed(elem: ElemType, byte_len: usize) -> Result<Self, SerializeError> {
        Self::typed(elem, byte_len, false)
    }

    /// A buffer of `byte_len` bytes holding `elem` elements, for a caller that overwrites all
    /// of it (through [`as_bytes_mut`](Self::as_bytes_mut)) before anything reads it: a kept
    /// vector of about that size when one is free (its pages are mapped already; its old
    /// contents are not cleared, so a caller whose fill fails must drop it unread), else a
    /// zeroed one. Held by no one else, so a decode moves it into the value.
    ///
    /// # Errors
    /// As [`zeroed`](Self::zeroed).
    pub fn for_overwrite(elem: ElemType, byte_len: usize) -> Result<Self, SerializeError> {
        Self::typed(elem, byte_len, true)
    }

    /// A typed vector buffer of `byte_len` bytes: a kept one when `reuse` allows and one
    /// fits, else a zeroed one.
    fn typed(elem: ElemType, byte_len: usize, reuse: bool) -> Result<Self, SerializeError> {
        if !byte_len.is_multiple_of(elem.size()) {
            return Err(SerializeError::BadBufferLength {
                byte_len: byte_len as u64,
                elem,
            });
        }
        let n = byte_len / elem.size();
        let failed = || SerializeError::AllocationFailed {
            byte_len: byte_len as u64,
            elem,
        };
        macro_rules! vec_of {
            ($t:ty) => {{
                let kept = if reuse { fresh::take::<$t>(n) } else { None };
                kept.or_else(|| zeroed_vec::<$t>(n))
                    .ok_or_else(failed)?
                    .into()
            }};
        }
        Ok(match elem {
            ElemType::U8 => vec_of!(u8),
            ElemType::I8 => vec_of!(i8),
            ElemType::U16 => vec_of!(u16),
            ElemType::I16 => vec_of!(i16),
            ElemType::U32 => vec_of!(u32),
            ElemType::I32 => vec_of!(i32),
            ElemType::U64 => vec_of!(u64),
            ElemType::I64 => vec_of!(i64),
            ElemType::F32 => vec_of!(f32),
            ElemType::F64 => vec_of!(f64),
        })
    }

    /// A buffer of `elem` elements over bytes that `owner` keeps alive (e.g. a read-only
    /// shared-memory mapping). Decoding a [`Buffer`] from it reads the bytes in place when they
    /// are aligned for the buffer's element type (the buffer keeps `owner` alive), and copies
    /// them once otherwise; a `Vec`, `Box<[T]>` or `String` is copied out once.
    ///
    /// `owner` must return the same bytes from every `as_ref` call for as long as it lives (a
    /// mapping does): a `Buffer` reading them in place checks their alignment once.
    ///
    /// # Errors
    /// [`SerializeError::BadBufferLength`] if the length is not a multiple of `elem.size()`.
    pub fn from_owner(
        elem: ElemType,
        owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    ) -> Result<Self, SerializeError> {
        let byte_len = (*owner).as_ref().len();
        if byte_len % elem.size() != 0 {
            return Err(SerializeError::BadBufferLength {
                byte_len: byte_len as u64,
                elem,
            });
        }
        Ok(Self {
            storage: Arc::new(External { owner, elem }),
        })
    }

    /// The data as bytes (native byte order), e.g. to hand to an MPI send.
    pub fn as_bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// The data as mutable bytes, e.g. to receive into; `None` if the storage is shared (or is
    /// a sent `String`, which must stay UTF-8).
    pub fn as_bytes_mut(&mut self) -> Option<&mut [u8]> {
        Arc::get_mut(&mut self.storage).and_then(|s| s.bytes_mut())
    }

    /// Drops the buffer, keeping its allocation for later decodes when this was the last
    /// handle to a large vector or string (see [`recycle`](crate::recycle)).
    pub fn recycle(self) {
        fresh::recycle_shared(self.storage.into_any());
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the buffer holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the bytes are this process's own memory (a vector or string the buffer holds),
    /// not bytes another owner keeps alive (a shared-memory mapping, see
    /// [`from_owner`](Self::from_owner)).
    pub fn in_process(&self) -> bool {
        !self.storage.external()
    }

    /// Element type of the storage (`U8` for buffers built from bytes).
    pub fn elem(&self) -> ElemType {
        self.storage.elem()
    }

    /// A buffer keeping `storage` alive and sending its bytes; no copy.
    pub(crate) fn shared(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }

    /// The data as a `Buffer<T>`: the same allocation when the storage is a `Vec<T>`, the
    /// storage's bytes read in place when they are aligned for `T` (a shared-memory mapping,
    /// a received buffer of another element type), else one copy. The length is a whole
    /// number of `T`s (checked by the caller; a remainder would be dropped by the copy).
    pub(crate) fn into_buffer<T: Element>(self) -> Buffer<T> {
        match Arc::clone(&self.storage).into_any().downcast::<Vec<T>>() {
            Ok(same) => Buffer::from_arc(same),
            Err(_) => Buffer::in_place(self.storage)
                .unwrap_or_else(|storage| Buffer::new(fresh::copy_to_vec(storage.bytes()))),
        }
    }

    /// The data as a `Vec<T>`: the same allocation when the storage is a `Vec<T>` held by no one
    /// else (a typed receive buffer, see [`OobBuffer::zeroed`]), else one copy.
    pub(crate) fn into_vec<T: Element>(self) -> Vec<T> {
        match Arc::clone(&self.storage).into_any().downcast::<Vec<T>>() {
            Ok(same) => {
                // Give up this handle's count first so that `same` can be the only one.
                drop(self);
                // Held elsewhere too: copied like any other storage (a kept vector, several
                // threads when large), not cloned into fresh memory.
                Arc::try_unwrap(same)
                    .unwrap_or_else(|shared| fresh::copy_to_vec(bytemuck::cast_slice(&shared)))
            }
            Err(_) => fresh::copy_to_vec(self.as_bytes()),
        }
    }

    /// The data as a `String`: moved like [`into_vec`](Self::into_vec) when possible, and
    /// checked to be UTF-8 unless it was a `String` already.
    pub(crate) fn into_string(self) -> Result<String, std::string::FromUtf8Error> {
        match Arc::clone(&self.storage).into_any().downcast::<String>() {
            Ok(same) => {
                drop(self);
                Ok(Arc::unwrap_or_clone(same))
            }
            Err(other) => {
                // Let go of the second handle before `into_vec` checks for the only one.
                drop(other);
                String::from_utf8(self.into_vec::<u8>())
            }
        }
    }
}

/// `len` zeroed bytes to receive into, or [`SerializeError::AllocationFailed`] when the memory
/// cannot be allocated (a corrupted length from a peer, typically): never an abort.
pub fn zeroed_bytes(len: usize) -> Result<Vec<u8>, SerializeError> {
    zeroed_vec::<u8>(len).ok_or(SerializeError::AllocationFailed {
        byte_len: len as u64,
        elem: ElemType::U8,
    })
}

impl<T: Element> From<Vec<T>> for OobBuffer {
    fn from(data: Vec<T>) -> Self {
        Self {
            storage: Arc::new(data),
        }
    }
}

impl<T: Element> From<Buffer<T>> for OobBuffer {
    /// Shares the buffer's storage; no copy.
    fn from(buffer: Buffer<T>) -> Self {
        Self {
            storage: buffer.storage(),
        }
    }
}

impl AsRef<[u8]> for OobBuffer {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Debug for OobBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OobBuffer")
            .field("elem", &self.elem())
            .field("len", &self.len())
            .finish()
    }
}

/// A value encoded by [`encode_with_oob`]: inline bytes (header included) plus the buffers that
/// were left out of them, in the order the inline bytes refer to them.
#[derive(Clone, Debug, Default)]
pub struct Encoded {
    /// Header and body; each out-of-band [`Buffer`] appears here as a small placeholder.
    pub inline: Vec<u8>,
    /// The out-of-band buffers, sharing storage with the encoded value's [`Buffer`]s.
    pub buffers: Vec<OobBuffer>,
}

impl Encoded {
    /// Total size in bytes: inline bytes plus every buffer.
    pub fn total_len(&self) -> usize {
        self.inline.len() + self.buffers.iter().map(OobBuffer::len).sum::<usize>()
    }

    /// Drops the encoded value, keeping the allocations of its large buffers for later
    /// decodes where this held their last handle (see [`recycle`](crate::recycle)).
    pub fn recycle(self) {
        self.buffers.into_iter().for_each(OobBuffer::recycle);
    }
}

/// Encodes `value`, leaving every [`Buffer`] of at least `threshold` bytes out of the inline
/// bytes: its storage is shared into [`Encoded::buffers`] (no copy) and the inline bytes record
/// its index and length. A natural value (`Vec<T>`, `Box<[T]>`, `String`, see the crate docs)
/// of at least `threshold` bytes goes out of band whole, copied once into its buffer
/// ([`encode_shared`] avoids that copy); so does a [`serde_fast`](crate::serde_fast) field.
///
/// The MPI backend passes `UNIDIST_MPI_PICKLE_THRESHOLD` (default 262144) as the threshold.
/// Smaller buffers are copied inline. With no big buffers the inline bytes equal
/// [`encode`](crate::encode)'s output and [`decode`](crate::decode) reads them.
///
/// ```
/// use unidist_serialize::{decode_with_oob, encode_with_oob, Buffer};
///
/// let value = (String::from("weights"), Buffer::<f32>::from(vec![0.5; 1 << 16]));
/// let encoded = encode_with_oob(&value, 1024)?;
/// assert_eq!(encoded.buffers.len(), 1);
/// assert!(encoded.inline.len() < 64);
/// let back: (String, Buffer<f32>) = decode_with_oob(&encoded.inline, encoded.buffers)?;
/// assert_eq!(back, value);
/// assert!(Buffer::ptr_eq(&back.1, &value.1)); // same process: the storage travelled, not bytes
/// # Ok::<(), unidist_serialize::SerializeError>(())
/// ```
///
/// # Errors
/// [`SerializeError::Encode`] if the value's `Serialize` impl or the codec fails.
pub fn encode_with_oob<T: Serialize + DeserializeOwned + 'static>(
    value: &T,
    threshold: usize,
) -> Result<Encoded, SerializeError> {
    choice::encode(value, Some(threshold))
}

/// As [`encode_with_oob`], for a value behind an `Arc`: a natural value (`Vec<T>`, `Box<[T]>`,
/// `String`) of at least `threshold` bytes is not copied at all, its out-of-band buffer keeps
/// the `Arc` alive and sends the value's own storage.
///
/// ```
/// use std::sync::Arc;
/// use unidist_serialize::{decode_with_oob, encode_shared};
///
/// let value = Arc::new(vec![0.5f64; 1 << 16]);
/// let encoded = encode_shared(&value, 1024)?;
/// assert_eq!(encoded.buffers[0].as_bytes().as_ptr(), value.as_ptr().cast::<u8>()); // no copy
/// let back: Vec<f64> = decode_with_oob(&encoded.inline, encoded.buffers)?;
/// assert_eq!(back, *value);
/// # Ok::<(), unidist_serialize::SerializeError>(())
/// ```
///
/// # Errors
/// [`SerializeError::Encode`] if the value's `Serialize` impl or the codec fails.
pub fn encode_shared<T: Serialize + DeserializeOwned + Send + Sync + 'static>(
    value: &Arc<T>,
    threshold: usize,
) -> Result<Encoded, SerializeError> {
    choice::encode_shared(value, Some(threshold))
}

/// Decodes a value produced by [`encode_with_oob`] from its inline bytes and its buffers.
///
/// `buffers` are the [`OobBuffer`]s (moved into the value's [`Buffer`]s without a copy when their
/// element type matches) or plain received bytes (`Vec<u8>`, copied once unless the `Buffer`
/// holds `u8`). Every buffer must be referred to exactly once, with the recorded length.
///
/// # Errors
/// Everything [`decode`](crate::decode) reports, plus [`SerializeError::MissingBuffer`] (index
/// out of range), [`SerializeError::BufferReused`], [`SerializeError::BufferLength`] and
/// [`SerializeError::UnusedBuffers`].
pub fn decode_with_oob<T: DeserializeOwned + 'static>(
    inline: &[u8],
    buffers: impl IntoIterator<Item = impl Into<OobBuffer>>,
) -> Result<T, SerializeError> {
    decode_scoped(inline, buffers.into_iter().map(Into::into).collect())
}

/// The encoding state of one public call; `threshold` is `None` for plain `encode`.
#[derive(Default)]
struct EncodeCtx {
    threshold: Option<usize>,
    buffers: Vec<OobBuffer>,
}

/// The decoding state of one public call.
#[derive(Default)]
struct DecodeCtx {
    /// Supplied buffers; a slot is emptied when a `Buffer` takes it.
    slots: Vec<Option<OobBuffer>>,
    /// The first structured error raised inside `Buffer`'s serde impl. serde can only carry a
    /// message through the codec, so the typed error waits here for the entry point.
    error: Option<SerializeError>,
}

thread_local! {
    static ENCODE: RefCell<Option<EncodeCtx>> = const { RefCell::new(None) };
    static DECODE: RefCell<Option<DecodeCtx>> = const { RefCell::new(None) };
}

/// Runs `f` with `ctx` installed in `key`, restoring the previous context afterwards, also when
/// `f` unwinds. Returns `f`'s result and the context as `f` left it.
fn scoped<C: Default + 'static, R>(
    key: &'static LocalKey<RefCell<Option<C>>>,
    ctx: C,
    f: impl FnOnce() -> R,
) -> (R, C) {
    struct Restore<C: 'static> {
        key: &'static LocalKey<RefCell<Option<C>>>,
        prev: Option<C>,
    }

    impl<C: 'static> Drop for Restore<C> {
        fn drop(&mut self) {
            let prev = self.prev.take();
            // `try_*` because this may run while unwinding or during thread teardown, where a
            // second panic would abort the process.
            let _ = self.key.try_with(|cell| {
                if let Ok(mut slot) = cell.try_borrow_mut() {
                    *slot = prev;
                }
            });
        }
    }

    // If the slot is unusable (thread teardown), run without a context: buffers stay inline and
    // decoding reports the supplied buffers as unused, an error rather than a panic.
    let swap = |cell: &RefCell<Option<C>>| cell.try_borrow_mut().map(|mut s| s.replace(ctx));
    let Ok(Ok(prev)) = key.try_with(swap) else {
        return (f(), C::default());
    };
    let restore = Restore { key, prev };
    let result = f();
    let ours = key
        .try_with(|cell| cell.try_borrow_mut().ok().and_then(|mut s| s.take()))
        .ok()
        .flatten()
        .unwrap_or_default();
    drop(restore);
    (result, ours)
}

/// Runs `write`, which appends a header and a body to the vector it is given, in a fresh
/// encoding scope; returns the bytes (or `write`'s error) and the buffers put out of band.
pub(crate) fn encode_in_scope(
    threshold: Option<usize>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), BoxError>,
) -> (Result<Vec<u8>, BoxError>, Vec<OobBuffer>) {
    let ctx = EncodeCtx {
        threshold,
        buffers: Vec::new(),
    };
    let (inline, ctx) = scoped(&ENCODE, ctx, || {
        let mut out = Vec::new();
        write(&mut out).map(|()| out)
    });
    (inline, ctx.buffers)
}

/// Checks the header, decodes the body in a fresh decoding scope holding `buffers`, and checks
/// that the body and the buffers were consumed exactly.
pub(crate) fn decode_scoped<T: DeserializeOwned + 'static>(
    bytes: &[u8],
    buffers: Vec<OobBuffer>,
) -> Result<T, SerializeError> {
    let (layout, body) = header::check::<T>(bytes)?;
    let decode_body = match layout {
        Layout::Raw => return natural::decode::<T>(body, buffers),
        Layout::Compact => codec::decode_from::<T>,
        Layout::SelfDescribing => codec::decode_described_from::<T>,
    };
    let supplied = buffers.len();
    let ctx = DecodeCtx {
        slots: buffers.into_iter().map(Some).collect(),
        error: None,
    };
    let (result, ctx) = scoped(&DECODE, ctx, || decode_body(body));
    let type_name = type_name::<T>();
    let (value, consumed) = match (result, ctx.error) {
        (Ok(decoded), _) => decoded,
        (Err(_), Some(error)) => return Err(error),
        (Err(DecodeFailure::Truncated), None) => {
            return Err(SerializeError::Truncated {
                type_name,
                len: bytes.len(),
            })
        }
        (Err(DecodeFailure::Invalid(source)), None) => {
            return Err(SerializeError::Corrupt { type_name, source })
        }
    };
    if consumed < body.len() {
        return Err(SerializeError::TrailingBytes {
            type_name,
            count: body.len() - consumed,
        });
    }
    let unused = ctx.slots.iter().filter(|slot| slot.is_some()).count();
    if unused > 0 {
        return Err(SerializeError::UnusedBuffers { unused, supplied });
    }
    Ok(value)
}

/// Called by `Buffer::serialize` (and the `serde_fast` helpers): inside `encode_with_oob` and at
/// or above the threshold, puts the buffer made by `make` (a `Buffer`'s shared storage, or a
/// copy of a field's data) into the out-of-band list and returns its index.
pub(crate) fn offer(byte_len: usize, make: impl FnOnce() -> OobBuffer) -> Option<u64> {
    ENCODE
        .try_with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            let ctx = slot.as_mut()?;
            if byte_len < ctx.threshold? {
                return None;
            }
            let index = ctx.buffers.len() as u64;
            ctx.buffers.push(make());
            Some(index)
        })
        .ok()
        .flatten()
}

/// Called by `Buffer::deserialize` for a placeholder: takes buffer `index` from the current
/// decoding scope and checks its length.
pub(crate) fn claim(index: u64, byte_len: u64) -> Result<OobBuffer, SerializeError> {
    let missing = |supplied| SerializeError::MissingBuffer { index, supplied };
    let taken = DECODE
        .try_with(|cell| {
            let mut slot = cell.try_borrow_mut().map_err(|_| missing(0))?;
            let Some(ctx) = slot.as_mut() else {
                return Err(missing(0));
            };
            let supplied = ctx.slots.len();
            let entry = usize::try_from(index)
                .ok()
                .and_then(|i| ctx.slots.get_mut(i))
                .ok_or_else(|| missing(supplied))?;
            entry.take().ok_or(SerializeError::BufferReused { index })
        })
        .unwrap_or_else(|_| Err(missing(0)))?;
    if taken.len() as u64 != byte_len {
        return Err(SerializeError::BufferLength {
            index,
            expected: byte_len,
            found: taken.len(),
        });
    }
    Ok(taken)
}

/// Turns a structured error raised inside `Buffer`'s serde impl into the deserializer's error,
/// keeping the structured one for the entry point (first error wins).
pub(crate) fn report<E: serde::de::Error>(error: SerializeError) -> E {
    let carried = E::custom(&error);
    let _ = DECODE.try_with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            if let Some(ctx) = slot.as_mut() {
                ctx.error.get_or_insert(error);
            }
        }
    });
    carried
}
