//! Actors: ids, handles, the traits the `#[actor]` macro implements, and [`ActorInstance`], the
//! in-order call dispatcher every backend uses to run actor methods.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::backend::Backend;
use crate::error::{Error, ErrorKind, Result, TaskError, TaskFailure};
use crate::registry::{self, ActorClassEntry, ActorMethodEntry, MethodKind};
use crate::runtime;
use crate::task::{self, catch_panic, CatchUnwind};
use crate::value::{Outputs, Payload};

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

    /// Ends the actor; later calls give [`Error::ActorDead`].
    pub fn kill(&self) -> Result<()> {
        let (id, backend) = self.resolve()?;
        backend.kill_actor(id)
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
                        Err(e) => RawActorHandle::failed(e),
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

/// The state of a live actor as the generated trampolines see it.
pub type ActorState = Box<dyn Any + Send>;
/// Shared access to the actor state, held by an `async fn(&self)` call for its whole duration.
pub type ActorReadGuard = tokio::sync::OwnedRwLockReadGuard<ActorState>;
/// Exclusive access to the actor state, held by an `async fn(&mut self)` call.
pub type ActorWriteGuard = tokio::sync::OwnedRwLockWriteGuard<ActorState>;
/// A boxed future that stays on the actor's thread.
pub type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// The result of one actor call: its outputs or the error stored for each of them.
pub type CallResult = std::result::Result<Outputs, TaskError>;

/// A live actor: its state and the dispatcher that keeps calls in order.
///
/// Calls are started strictly in call order with [`begin`](ActorInstance::begin): `&self`
/// methods share the state, `&mut self` methods have it alone, and an `async fn(&self)` holds a
/// shared borrow until it finishes, so other `&self` calls (sync or async) run while it awaits,
/// and a later `&mut self` call waits for it. State needs interior mutability to change from
/// an async method (e.g. a `tokio::sync::Notify` in the SignalActor pattern).
pub struct ActorInstance {
    class: &'static ActorClassEntry,
    state: Arc<tokio::sync::RwLock<ActorState>>,
}

impl ActorInstance {
    /// Runs the constructor on this thread; a panic in it is the returned error.
    pub fn construct(
        class: &'static ActorClassEntry,
        args: &[Payload],
    ) -> std::result::Result<Self, TaskError> {
        let name = class.name;
        let state = catch_panic(name, || (class.construct)(args))?;
        // Tokio's owned guards need an `Arc`; the instance never leaves its actor's thread, so
        // the `Arc` not being `Send` is intended.
        #[allow(clippy::arc_with_non_send_sync)]
        Ok(ActorInstance {
            class,
            state: Arc::new(tokio::sync::RwLock::new(state)),
        })
    }

    /// The actor's type.
    pub fn class(&self) -> &'static ActorClassEntry {
        self.class
    }

    /// Starts a call in call order and returns what completes it.
    ///
    /// The returned future must be awaited (or spawned) for async methods; for sync methods the
    /// call has already run and the future is ready. Await `begin` itself before starting the
    /// next call, which is what keeps the order.
    pub async fn begin(
        &self,
        method: &'static ActorMethodEntry,
        args: Vec<Payload>,
    ) -> LocalBoxFuture<CallResult> {
        let name = method.name;
        match method.kind {
            MethodKind::Ref(f) => {
                let guard = self.state.read().await;
                let state: &ActorState = &guard;
                let result = catch_panic(name, || f(&**state, &args));
                Box::pin(std::future::ready(result))
            }
            MethodKind::Mut(f) => {
                let mut guard = self.state.write().await;
                let state: &mut ActorState = &mut guard;
                let result = catch_panic(name, || f(&mut **state, &args));
                Box::pin(std::future::ready(result))
            }
            MethodKind::Async(f) => {
                let guard = self.state.clone().read_owned().await;
                start_async(name, move || f(guard, args))
            }
            MethodKind::AsyncMut(f) => {
                let guard = self.state.clone().write_owned().await;
                start_async(name, move || f(guard, args))
            }
        }
    }
}

fn start_async(
    name: &'static str,
    make: impl FnOnce() -> LocalBoxFuture<Result<Outputs>>,
) -> LocalBoxFuture<CallResult> {
    // Creating the future runs no user code for an `async fn`, but argument decoding in the
    // generated wrapper may; both the creation and every poll are guarded.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(make)) {
        Ok(fut) => Box::pin(CatchUnwind::new(name, fut)),
        Err(p) => Box::pin(std::future::ready(Err(TaskError::new(
            name,
            TaskFailure::Panicked,
            task::caught_panic_message(&*p),
        )))),
    }
}
