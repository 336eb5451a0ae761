//! Actors: ids, handles, the traits the `#[actor]` macro implements, [`ActorInstance`] (the
//! in-order call dispatcher every backend uses to run actor methods) and [`ActorThread`] (the
//! thread that serves one actor).

mod instance;
mod thread;

pub use instance::{
    ActorInstance, ActorReadGuard, ActorState, ActorWriteGuard, CallResult, LocalBoxFuture,
};
pub use thread::{ActorMessage, ActorSender, ActorThread, CallHooks};

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Weak};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::backend::Backend;
use crate::error::{Error, ErrorKind, Result};
use crate::registry::{self, ActorClassEntry};
use crate::runtime;

/// The identity of an actor: the rank that created it and a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActorId {
    /// The rank of the process that allocated the id (0 on local backends).
    pub owner: u32,
    /// A number unique among the actor ids `owner` allocated.
    pub seq: u64,
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.owner, self.seq)
    }
}

struct LiveActor {
    id: ActorId,
    class: &'static str,
    backend: Weak<dyn Backend>,
}

impl Drop for LiveActor {
    fn drop(&mut self) {
        if let Some(b) = self.backend.upgrade() {
            b.release_actor(self.id);
        }
    }
}

enum HandleState {
    Live(LiveActor),
    Failed(Error),
}

/// An untyped actor handle; [`ActorHandle`] wraps it with the actor's type.
#[derive(Clone)]
pub struct RawActorHandle {
    state: Arc<HandleState>,
}

impl RawActorHandle {
    /// Wraps an id the backend just allocated (one local handle, released on drop).
    pub fn live(id: ActorId, class: &'static ActorClassEntry, backend: &Arc<dyn Backend>) -> Self {
        RawActorHandle {
            state: Arc::new(HandleState::Live(LiveActor {
                id,
                class: class.name,
                backend: Arc::downgrade(backend),
            })),
        }
    }

    /// A handle whose creation failed; every call on it gives the error.
    pub fn failed(error: Error) -> Self {
        RawActorHandle {
            state: Arc::new(HandleState::Failed(error)),
        }
    }

    /// The actor id, or the error this handle holds.
    pub fn id(&self) -> Result<ActorId> {
        match &*self.state {
            HandleState::Live(l) => Ok(l.id),
            HandleState::Failed(e) => Err(e.clone()),
        }
    }

    /// The actor id with the backend that runs it.
    pub fn resolve(&self) -> Result<(ActorId, Arc<dyn Backend>)> {
        match &*self.state {
            HandleState::Live(l) => match l.backend.upgrade() {
                Some(b) => Ok((l.id, b)),
                None => Err(Error::StaleRef {
                    what: format!("actor {}#{}", l.class, l.id),
                }),
            },
            HandleState::Failed(e) => Err(e.clone()),
        }
    }

    /// The name of the actor's type, unless this handle holds an error.
    pub fn class_name(&self) -> Option<&'static str> {
        match &*self.state {
            HandleState::Live(l) => Some(l.class),
            HandleState::Failed(_) => None,
        }
    }

    /// Ends the actor; later calls give [`Error::ActorDead`].
    pub fn kill(&self) -> Result<()> {
        let (id, backend) = self.resolve()?;
        let class = self.class_name().unwrap_or("actor");
        backend
            .kill_actor(id)
            .map_err(|e| e.naming_actor_class(class, id))
    }
}

impl fmt::Debug for RawActorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.state {
            HandleState::Live(l) => write!(f, "ActorHandle({}#{})", l.class, l.id),
            HandleState::Failed(e) => write!(f, "ActorHandle(failed: {e})"),
        }
    }
}

#[derive(Serialize, Deserialize)]
enum WireActor {
    Live(ActorId, String),
    Failed(ErrorKind, String),
}

impl Serialize for RawActorHandle {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match &*self.state {
            HandleState::Live(l) => WireActor::Live(l.id, l.class.to_string()).serialize(s),
            HandleState::Failed(e) => {
                let (kind, message) = e.to_remote();
                WireActor::Failed(kind, message).serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for RawActorHandle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match WireActor::deserialize(d)? {
            WireActor::Live(id, class) => {
                let Some(entry) = registry::registry().class(&class) else {
                    return Ok(RawActorHandle::failed(Error::backend(
                        "core",
                        format!("actor class {class} is not registered in this binary"),
                    )));
                };
                match runtime::current() {
                    Some(b) => match b.actor_deserialized(id) {
                        Ok(()) => RawActorHandle::live(id, entry, &b),
                        Err(e) => RawActorHandle::failed(e.naming_actor_class(entry.name, id)),
                    },
                    None => RawActorHandle::failed(Error::StaleRef {
                        what: format!("actor {class}#{id}"),
                    }),
                }
            }
            WireActor::Failed(kind, message) => {
                RawActorHandle::failed(Error::Remote { kind, message })
            }
        })
    }
}

/// Implemented by `#[unidist::actor]` for the actor type.
pub trait ActorClass: Send + 'static {
    /// The generated type holding one remote method per actor method; an
    /// [`ActorHandle`] dereferences to it.
    type Methods: ActorMethods;

    /// The registry entry of the type.
    fn class() -> &'static ActorClassEntry;
}

/// Implemented by the generated methods type of an actor.
pub trait ActorMethods: Clone + Send + Sync + 'static {
    /// Wraps an untyped handle.
    fn from_raw(raw: RawActorHandle) -> Self;
    /// The untyped handle.
    fn raw(&self) -> &RawActorHandle;
}

/// A typed handle to an actor; method calls on it return refs and execute in call order.
///
/// It dereferences to the methods type that `#[unidist::actor]` generates, so
/// `counter.add(5)` works on an `ActorHandle<Counter>`. It is `Clone + Serialize + Deserialize`
/// and can be passed to tasks, which call it.
pub struct ActorHandle<A: ActorClass> {
    methods: A::Methods,
}

impl<A: ActorClass> ActorHandle<A> {
    /// Wraps an untyped handle.
    pub fn from_raw(raw: RawActorHandle) -> Self {
        ActorHandle {
            methods: A::Methods::from_raw(raw),
        }
    }

    /// The untyped handle.
    pub fn raw(&self) -> &RawActorHandle {
        self.methods.raw()
    }

    /// The actor id, or the error that prevented its creation.
    pub fn id(&self) -> Result<ActorId> {
        self.raw().id()
    }

    /// Ends the actor now; calls after it give an error, never a hang.
    pub fn kill(&self) -> Result<()> {
        self.raw().kill()
    }
}

impl<A: ActorClass> Deref for ActorHandle<A> {
    type Target = A::Methods;

    fn deref(&self) -> &A::Methods {
        &self.methods
    }
}

impl<A: ActorClass> Clone for ActorHandle<A> {
    fn clone(&self) -> Self {
        ActorHandle {
            methods: self.methods.clone(),
        }
    }
}

impl<A: ActorClass> fmt::Debug for ActorHandle<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw().fmt(f)
    }
}

impl<A: ActorClass> Serialize for ActorHandle<A> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.raw().serialize(s)
    }
}

impl<'de, A: ActorClass> Deserialize<'de> for ActorHandle<A> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        RawActorHandle::deserialize(d).map(Self::from_raw)
    }
}
