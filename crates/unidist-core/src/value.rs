//! Values: the [`Value`] bound, type-erased stored values, and the [`Payload`] a task receives.

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use unidist_serialize::Encoded;

use crate::error::{Error, Result};

/// Anything that can be stored, passed to a task or returned from one.
///
/// Implemented for every `T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static`; local
/// backends keep such values in memory, and only the MPI backend serializes them.
///
/// # Large values
///
/// Every serde feature works across processes: the encoder picks a self-describing format by
/// itself for types that need one (tagged and untagged enums, `flatten`, `skip_serializing_if`).
///
/// These types are *natural*: as a whole value (put, task argument, return) they are encoded as
/// one length and their bytes, never element by element, and from the MPI pickle threshold on
/// (`UNIDIST_MPI_PICKLE_THRESHOLD`) their memory is sent as is, without a copy on the sender:
///
/// | type | element types |
/// |---|---|
/// | `Vec<T>`, `Box<[T]>` | `u8`, `i8`, `u16`, `i16`, `u32`, `i32`, `u64`, `i64`, `f32`, `f64` |
/// | `String` | |
/// | `unidist::Buffer<T>` | as `Vec<T>`; shared storage, also decoded without a copy |
///
/// Inside a struct, serde sees a `Vec<f64>` field as a sequence of numbers. For the same speed
/// make the field a `unidist::Buffer<f64>`, or keep the `Vec` and mark it
/// `#[serde(with = "unidist::serde_fast")]`: either is written as one byte blob and travels out
/// of band when large.
///
/// ```text
/// #[derive(Clone, Serialize, Deserialize)]
/// struct Frame {
///     name: String,
///     #[serde(with = "unidist::serde_fast")]
///     samples: Vec<f32>,         // one memcpy, out of band when large
///     weights: unidist::Buffer<f64>, // the same, and shared instead of copied
/// }
/// ```
pub trait Value: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T> Value for T where T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

/// A stored value with its type erased; what backends keep in their object stores.
pub trait ErasedValue: Send + Sync + 'static {
    /// The value as `Any`, for a typed borrow.
    fn as_any(&self) -> &dyn Any;
    /// The value as a shared `Any`, for a typed `Arc` without copying.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    /// The Rust type name of the value.
    fn type_name(&self) -> &'static str;
    /// Encodes the value for another process; buffers of at least `oob_threshold` bytes travel
    /// out of band. A natural value (see [`Value`]) that large is copied once into its buffer;
    /// [`encode_shared`](Self::encode_shared) avoids even that copy.
    fn encode(&self, oob_threshold: usize) -> Result<Encoded>;
    /// As [`encode`](Self::encode), but the out-of-band buffer of a natural value keeps this
    /// `Arc` alive and sends the value's own memory: no copy at all.
    fn encode_shared(self: Arc<Self>, oob_threshold: usize) -> Result<Encoded>;
    /// The size of the value's data in bytes when it is known without encoding (the natural
    /// types); what `bytes_stored` of `unidist::stats()` counts on local backends.
    fn byte_len(&self) -> Option<usize> {
        None
    }
}

impl<T: Value> ErasedValue for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }

    fn byte_len(&self) -> Option<usize> {
        unidist_serialize::natural_byte_len(self)
    }

    fn encode(&self, oob_threshold: usize) -> Result<Encoded> {
        Ok(unidist_serialize::encode_with_oob(self, oob_threshold)?)
    }

    fn encode_shared(self: Arc<Self>, oob_threshold: usize) -> Result<Encoded> {
        Ok(unidist_serialize::encode_shared(&self, oob_threshold)?)
    }
}

/// The values a task or actor method produced, one per declared return.
pub type Outputs = Vec<Arc<dyn ErasedValue>>;

/// Wraps one return value as an output.
pub fn output<T: Value>(value: T) -> Arc<dyn ErasedValue> {
    Arc::new(value)
}

/// A resolved argument or a fetched object: in memory, or encoded bytes from another process.
#[derive(Clone)]
pub enum Payload {
    /// A value in this process's memory; reading it never copies or decodes.
    Local(Arc<dyn ErasedValue>),
    /// An encoded value received from another process; decoded on use.
    Encoded(Arc<Encoded>),
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Payload::Local(v) => write!(f, "Payload::Local({})", v.type_name()),
            Payload::Encoded(e) => write!(f, "Payload::Encoded({} bytes)", e.total_len()),
        }
    }
}

impl Payload {
    /// A local payload holding `value`.
    pub fn local<T: Value>(value: T) -> Self {
        Payload::Local(Arc::new(value))
    }

    /// Reads the value as `T`: borrowed in place when local, decoded when encoded.
    pub fn borrow<T: Value>(&self) -> Result<Cow<'_, T>> {
        match self {
            Payload::Local(v) => v
                .as_any()
                .downcast_ref::<T>()
                .map(Cow::Borrowed)
                .ok_or_else(|| type_mismatch::<T>(v.type_name())),
            Payload::Encoded(e) => Ok(Cow::Owned(decode_encoded::<T>(e)?)),
        }
    }

    /// Reads the value as `T` for a `&T` parameter: as [`borrow`](Self::borrow), and a value
    /// decoded for the call gives its memory back for later decodes when the call is done
    /// (a large natural vector, see [`Value`]; `unidist_serialize::recycle`).
    pub fn read<T: Value>(&self) -> Result<Arg<'_, T>> {
        self.borrow::<T>().map(|v| Arg(Some(v)))
    }

    /// Drops the payload; a large natural value it held alone gives its memory back for later
    /// decodes (`unidist_serialize::recycle`). For backends, where they free a stored value.
    pub fn recycle(self) {
        match self {
            Payload::Local(v) => unidist_serialize::recycle_shared(v.into_any()),
            Payload::Encoded(e) => {
                if let Ok(e) = Arc::try_unwrap(e) {
                    e.recycle();
                }
            }
        }
    }

    /// The value as an owned `T`, leaving this payload as it was: one clone when local, one
    /// decode when encoded. [`into_owned`](Self::into_owned) avoids the clone when it can.
    pub fn take<T: Value>(&self) -> Result<T> {
        self.borrow::<T>().map(Cow::into_owned)
    }

    /// Consumes the payload and gives its value as an owned `T`.
    ///
    /// A local value whose `Arc` this payload holds alone is moved out, without a copy; one that
    /// is also held elsewhere (an object in a store, arguments kept for a retry) is cloned, so
    /// the other holders keep it unchanged. An encoded value is decoded; when this payload holds
    /// the encoding alone (a backend read it for this caller only), its buffers move into the
    /// value where their types allow, without a copy. A value of another type is the same
    /// [`Error::TypeMismatch`] as from [`borrow`](Self::borrow).
    pub fn into_owned<T: Value>(self) -> Result<T> {
        match self {
            Payload::Local(v) => {
                let found = v.type_name();
                match v.into_any().downcast::<T>() {
                    Ok(typed) => {
                        Ok(Arc::try_unwrap(typed).unwrap_or_else(|shared| T::clone(&shared)))
                    }
                    Err(_) => Err(type_mismatch::<T>(found)),
                }
            }
            Payload::Encoded(e) => match Arc::try_unwrap(e) {
                Ok(alone) => Ok(unidist_serialize::decode_with_oob::<T>(
                    &alone.inline,
                    alone.buffers,
                )?),
                Err(shared) => decode_encoded::<T>(&shared),
            },
        }
    }

    /// The encoded form, encoding a local value first.
    pub fn encoded(&self, oob_threshold: usize) -> Result<Arc<Encoded>> {
        match self {
            Payload::Local(v) => Ok(Arc::new(Arc::clone(v).encode_shared(oob_threshold)?)),
            Payload::Encoded(e) => Ok(e.clone()),
        }
    }
}

/// A `&T` argument as a task reads it ([`Payload::read`]): the stored value in place, or a
/// value decoded for this call, recycled when the call is done.
pub struct Arg<'a, T: Value>(Option<Cow<'a, T>>);

impl<T: Value> std::ops::Deref for Arg<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match &self.0 {
            Some(v) => v,
            // Only `drop` empties it.
            None => unreachable!("an argument read after it was dropped"),
        }
    }
}

impl<T: Value> Drop for Arg<'_, T> {
    fn drop(&mut self) {
        if let Some(Cow::Owned(v)) = self.0.take() {
            unidist_serialize::recycle(v);
        }
    }
}

/// The error of reading a local value of type `found` as a `T`.
fn type_mismatch<T>(found: &'static str) -> Error {
    Error::TypeMismatch {
        object: "value".into(),
        expected: std::any::type_name::<T>(),
        found: found.into(),
    }
}

/// Decodes an encoded value as `T` without consuming it.
pub fn decode_encoded<T: Value>(e: &Encoded) -> Result<T> {
    // Buffers are shared storage, so cloning them for a decode copies no data.
    Ok(unidist_serialize::decode_with_oob::<T>(
        &e.inline,
        e.buffers.iter().cloned(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn an_encoding_held_alone_moves_its_buffers_into_the_value() {
        let v: Vec<u8> = (0..(8u32 << 20)).map(|i| i as u8).collect();
        let e = unidist_serialize::encode_with_oob(&v, 1024).unwrap();
        let at = e.buffers[0].as_bytes().as_ptr();
        // Held alone: the decoded vector is the encoding's buffer.
        let moved: Vec<u8> = Payload::Encoded(Arc::new(e.clone())).into_owned().unwrap();
        assert_eq!(moved, v);
        // `e` still holds the same storage here, so that one was a copy; a lone encoding moves.
        assert_ne!(moved.as_ptr(), at);
        drop(moved);
        let lone = Payload::Encoded(Arc::new(e));
        let moved: Vec<u8> = lone.into_owned().unwrap();
        assert_eq!(moved.as_ptr(), at, "a lone encoding was copied");
        // Shared with a store: decoded into other memory, and the stored one stays whole.
        let stored = Arc::new(unidist_serialize::encode_with_oob(&v, 1024).unwrap());
        let got: Vec<u8> = Payload::Encoded(stored.clone()).into_owned().unwrap();
        assert_ne!(got.as_ptr(), stored.buffers[0].as_bytes().as_ptr());
        assert_eq!(stored.buffers[0].as_bytes(), &v[..]);
    }

    #[test]
    fn local_payload_borrows_without_copy() {
        let p = Payload::local(vec![1u8, 2, 3]);
        let Payload::Local(arc) = &p else {
            panic!("expected local")
        };
        let stored = arc.as_any().downcast_ref::<Vec<u8>>().unwrap().as_ptr();
        match p.borrow::<Vec<u8>>().unwrap() {
            Cow::Borrowed(v) => assert_eq!(v.as_ptr(), stored),
            Cow::Owned(_) => panic!("local payload was copied"),
        }
    }

    #[test]
    fn a_decoded_by_ref_argument_is_recycled_after_the_call() {
        // 8 MiB of f64: large enough to be kept (4 MiB on), sent out of band.
        let data: Vec<f64> = (0..1 << 20).map(f64::from).collect();
        let encoded = unidist_serialize::encode_with_oob(&data, 1024).unwrap();
        let p = Payload::Encoded(Arc::new(encoded));
        let (before, _) = unidist_serialize::kept_vectors();
        let at = {
            let arg = p.read::<Vec<f64>>().unwrap();
            assert_eq!(*arg, data);
            arg.as_ptr()
        };
        assert_eq!(unidist_serialize::kept_vectors().0, before + 1);
        // The next decode of that size fills the same memory.
        let again = p.take::<Vec<f64>>().unwrap();
        assert_eq!(again.as_ptr(), at, "the recycled vector was not reused");
        assert_eq!(again, data);
        // A local value is borrowed in place: nothing to recycle, and it stays where it is.
        let local = Payload::local(data.clone());
        let (kept, _) = unidist_serialize::kept_vectors();
        drop(local.read::<Vec<f64>>().unwrap());
        assert_eq!(unidist_serialize::kept_vectors().0, kept);
        assert_eq!(local.borrow::<Vec<f64>>().unwrap().len(), data.len());
    }

    #[test]
    fn wrong_type_is_an_error() {
        let p = Payload::local(5i64);
        let err = p.take::<String>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TypeMismatch);
        assert!(err.to_string().contains("i64"), "{err}");
    }

    /// The address of the data of the `Vec<u8>` a local payload holds.
    fn stored_ptr(p: &Payload) -> *const u8 {
        let Payload::Local(arc) = p else {
            panic!("expected local")
        };
        arc.as_any().downcast_ref::<Vec<u8>>().unwrap().as_ptr()
    }

    #[test]
    fn into_owned_moves_a_value_held_once() {
        let p = Payload::local(vec![7u8; 1024]);
        let stored = stored_ptr(&p);
        let v = p.into_owned::<Vec<u8>>().unwrap();
        assert_eq!(v.as_ptr(), stored, "the only holder's value was copied");
        assert_eq!(v, vec![7u8; 1024]);
    }

    #[test]
    fn into_owned_clones_a_value_held_elsewhere() {
        let p = Payload::local(vec![7u8; 1024]);
        let other = p.clone();
        let stored = stored_ptr(&p);
        let v = p.into_owned::<Vec<u8>>().unwrap();
        assert_ne!(v.as_ptr(), stored, "a shared value was moved out");
        assert_eq!(v, vec![7u8; 1024]);
        // The other holder still sees the value, at its place.
        assert_eq!(stored_ptr(&other), stored);
        assert_eq!(other.borrow::<Vec<u8>>().unwrap().len(), 1024);
    }

    #[test]
    fn into_owned_reports_a_type_mismatch() {
        let err = Payload::local(5i64).into_owned::<String>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TypeMismatch);
        assert!(err.to_string().contains("i64"), "{err}");
        let shared = Payload::local(5i64);
        let _other = shared.clone();
        let err = shared.into_owned::<String>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TypeMismatch);
    }

    #[test]
    fn into_owned_decodes_an_encoded_value() {
        let enc = Payload::local((7u32, String::from("x")))
            .encoded(1 << 20)
            .unwrap();
        let q = Payload::Encoded(enc);
        let got = q.clone().into_owned::<(u32, String)>().unwrap();
        assert_eq!(got, (7, "x".to_string()));
        assert_eq!(
            q.into_owned::<u64>().unwrap_err().kind(),
            ErrorKind::Serialize
        );
    }

    #[test]
    fn encoded_payload_round_trips() {
        let p = Payload::local((7u32, String::from("x")));
        let enc = p.encoded(1 << 20).unwrap();
        let q = Payload::Encoded(enc);
        assert_eq!(q.take::<(u32, String)>().unwrap(), (7, "x".to_string()));
        assert_eq!(q.take::<u64>().unwrap_err().kind(), ErrorKind::Serialize);
    }
}
