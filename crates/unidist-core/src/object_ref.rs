//! Object refs: the typed [`ObjectRef`], its untyped core [`AnyRef`], ids and argument forms.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::{Arc, Weak};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::backend::{Arg, Backend};
use crate::error::{Error, ErrorKind, Result};
use crate::runtime;
use crate::value::{Payload, Value};

/// The identity of a stored object: the process (rank) that created it and a sequence number
/// unique within that process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId {
    /// The rank of the process that allocated the id (0 on local backends).
    pub owner: u32,
    /// A number unique among the ids `owner` allocated.
    pub seq: u64,
}

impl ObjectId {
    /// The id with these parts.
    pub const fn new(owner: u32, seq: u64) -> Self {
        ObjectId { owner, seq }
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "object {}:{}", self.owner, self.seq)
    }
}

/// One process-local reference to a live object; dropping the last clone releases it.
struct LiveRef {
    id: ObjectId,
    backend: Weak<dyn Backend>,
}

impl Drop for LiveRef {
    fn drop(&mut self) {
        if let Some(backend) = self.backend.upgrade() {
            backend.release(self.id);
        }
    }
}

enum RefState {
    Live(LiveRef),
    // A ref whose submission failed: every read of it gives the error.
    Failed(Error),
}

/// An untyped object ref: what backends and generated code pass around.
///
/// Cloning is cheap and does not talk to the backend; the backend is told once, when the last
/// clone in this process is dropped.
#[derive(Clone)]
pub struct AnyRef {
    state: Arc<RefState>,
}

impl AnyRef {
    /// Wraps an id the backend just allocated (one local reference, released on drop).
    pub fn live(id: ObjectId, backend: &Arc<dyn Backend>) -> Self {
        AnyRef {
            state: Arc::new(RefState::Live(LiveRef {
                id,
                backend: Arc::downgrade(backend),
            })),
        }
    }

    /// A ref that holds an error instead of an object; `get` of it returns the error.
    pub fn failed(error: Error) -> Self {
        AnyRef {
            state: Arc::new(RefState::Failed(error)),
        }
    }

    /// The object id, or the error this ref holds.
    pub fn id(&self) -> Result<ObjectId> {
        match &*self.state {
            RefState::Live(l) => Ok(l.id),
            RefState::Failed(e) => Err(e.clone()),
        }
    }

    /// The error this ref holds, if it is a failed ref.
    pub fn error(&self) -> Option<&Error> {
        match &*self.state {
            RefState::Live(_) => None,
            RefState::Failed(e) => Some(e),
        }
    }

    /// The backend that owns the object, or why it cannot be reached.
    pub fn backend(&self) -> Result<Arc<dyn Backend>> {
        match &*self.state {
            RefState::Live(l) => l.backend.upgrade().ok_or_else(|| Error::StaleRef {
                what: l.id.to_string(),
            }),
            RefState::Failed(e) => Err(e.clone()),
        }
    }

    /// The id together with its backend.
    pub fn resolve(&self) -> Result<(ObjectId, Arc<dyn Backend>)> {
        Ok((self.id()?, self.backend()?))
    }

    /// True if both are clones of the same ref.
    pub fn ptr_eq(&self, other: &AnyRef) -> bool {
        Arc::ptr_eq(&self.state, &other.state)
    }
}

impl fmt::Debug for AnyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.state {
            RefState::Live(l) => write!(f, "ObjectRef({}:{})", l.id.owner, l.id.seq),
            RefState::Failed(e) => write!(f, "ObjectRef(failed: {e})"),
        }
    }
}

impl PartialEq for AnyRef {
    fn eq(&self, other: &Self) -> bool {
        match (self.id(), other.id()) {
            (Ok(a), Ok(b)) => a == b,
            _ => self.ptr_eq(other),
        }
    }
}

impl Eq for AnyRef {}

impl Hash for AnyRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if let Ok(id) = self.id() {
            id.hash(state);
        }
    }
}

/// How a ref travels inside an encoded value.
#[derive(Serialize, Deserialize)]
enum WireRef {
    Live(ObjectId),
    Failed(ErrorKind, String),
}

impl Serialize for AnyRef {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match &*self.state {
            RefState::Live(l) => {
                // The backend learns that a copy of the ref is leaving this process, so it can
                // keep the object alive until the receiver has registered its own reference.
                if let Some(b) = l.backend.upgrade() {
                    b.ref_serialized(l.id);
                }
                WireRef::Live(l.id).serialize(s)
            }
            RefState::Failed(e) => {
                let (kind, message) = e.to_remote();
                WireRef::Failed(kind, message).serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for AnyRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match WireRef::deserialize(d)? {
            WireRef::Live(id) => match runtime::current() {
                Some(backend) => match backend.ref_deserialized(id) {
                    Ok(()) => AnyRef::live(id, &backend),
                    Err(e) => AnyRef::failed(e),
                },
                None => AnyRef::failed(Error::StaleRef {
                    what: id.to_string(),
                }),
            },
            WireRef::Failed(kind, message) => AnyRef::failed(Error::Remote { kind, message }),
        })
    }
}

/// A typed, cloneable, serializable handle to an object that a `put` stored or a task will
/// produce.
///
/// Dropping the last handle (in every process) lets the backend free the object.
pub struct ObjectRef<T> {
    any: AnyRef,
    _type: PhantomData<fn() -> T>,
}

impl<T> ObjectRef<T> {
    /// Gives the untyped ref a type; generated code uses this, and the type is checked when the
    /// value is read.
    pub fn from_any(any: AnyRef) -> Self {
        ObjectRef {
            any,
            _type: PhantomData,
        }
    }

    /// A ref that holds `error`.
    pub fn failed(error: Error) -> Self {
        Self::from_any(AnyRef::failed(error))
    }

    /// The untyped ref.
    pub fn as_any(&self) -> &AnyRef {
        &self.any
    }

    /// The untyped ref, by value.
    pub fn into_any(self) -> AnyRef {
        self.any
    }

    /// The object id, or the error this ref holds (a ref whose submission failed).
    pub fn id(&self) -> Result<ObjectId> {
        self.any.id()
    }
}

impl<T> Clone for ObjectRef<T> {
    fn clone(&self) -> Self {
        Self::from_any(self.any.clone())
    }
}

impl<T> fmt::Debug for ObjectRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.any.fmt(f)
    }
}

impl<T> PartialEq for ObjectRef<T> {
    fn eq(&self, other: &Self) -> bool {
        self.any == other.any
    }
}

impl<T> Eq for ObjectRef<T> {}

impl<T> Hash for ObjectRef<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.any.hash(state)
    }
}

impl<T> Serialize for ObjectRef<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.any.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for ObjectRef<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        AnyRef::deserialize(d).map(Self::from_any)
    }
}

/// Reads object `id`'s payload as a `T` ([`Payload::into_owned`]: a value or encoding held by
/// nothing else moves into the result); a value of another type gives [`Error::TypeMismatch`]
/// naming the object.
pub fn read_as<T: Value>(id: ObjectId, payload: Payload) -> Result<T> {
    payload.into_owned::<T>().map_err(|e| match e {
        Error::TypeMismatch {
            expected, found, ..
        } => Error::TypeMismatch {
            object: id.to_string(),
            expected,
            found,
        },
        other => other,
    })
}

/// The forms a task parameter of type `T` accepts: a `T`, an `ObjectRef<T>` or a
/// `&ObjectRef<T>`.
pub trait IntoArg<T: Value> {
    /// Converts into the argument a backend resolves before the body runs.
    fn into_arg(self) -> Arg;
}

impl<T: Value> IntoArg<T> for T {
    fn into_arg(self) -> Arg {
        Arg::Value(Arc::new(self))
    }
}

impl<T: Value> IntoArg<T> for ObjectRef<T> {
    fn into_arg(self) -> Arg {
        Arg::Ref(self.any)
    }
}

impl<T: Value> IntoArg<T> for &ObjectRef<T> {
    fn into_arg(self) -> Arg {
        Arg::Ref(self.any.clone())
    }
}
