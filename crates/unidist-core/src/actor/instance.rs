//! [`ActorInstance`]: a live actor's state and the dispatcher that starts its calls in call
//! order, with the types the generated trampolines see.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::{Result, TaskError, TaskFailure};
use crate::registry::{ActorClassEntry, ActorMethodEntry, MethodKind};
use crate::task::{self, catch_panic, check_arity, CatchUnwind};
use crate::value::{Outputs, Payload};

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
    ///
    /// The constructor owns `args`, as a task body does ([`task::run_function`]): a caller
    /// that may construct the actor again (a restart) keeps its own clone.
    pub fn construct(
        class: &'static ActorClassEntry,
        args: Vec<Payload>,
    ) -> std::result::Result<Self, TaskError> {
        let name = class.name;
        crate::observe::timeline::name_thread(|| format!("actor {name}"));
        let _span = crate::observe::timeline::Span::execution("actor_create", name);
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

    /// Starts a call in call order and returns what completes it: the call's outputs, checked
    /// against the method's declared `num_returns`, or its error.
    ///
    /// The returned future must be awaited (or spawned) for async methods; for sync methods the
    /// call has already run and the future is ready. Await `begin` itself before starting the
    /// next call, which is what keeps the order.
    ///
    /// The method owns `args`, as a task body does ([`task::run_function`]).
    pub async fn begin(
        &self,
        method: &'static ActorMethodEntry,
        args: Vec<Payload>,
    ) -> LocalBoxFuture<CallResult> {
        let name = method.name;
        let expected = method.num_returns;
        let sync_result = match method.kind {
            MethodKind::Ref(f) => {
                let guard = self.state.read().await;
                let state: &ActorState = &guard;
                let _span = crate::observe::timeline::Span::execution("actor_call", name);
                catch_panic(name, || f(&**state, args))
            }
            MethodKind::Mut(f) => {
                let mut guard = self.state.write().await;
                let state: &mut ActorState = &mut guard;
                let _span = crate::observe::timeline::Span::execution("actor_call", name);
                catch_panic(name, || f(&mut **state, args))
            }
            MethodKind::Async(f) => {
                let guard = self.state.clone().read_owned().await;
                return start_async(method, move || f(guard, args));
            }
            MethodKind::AsyncMut(f) => {
                let guard = self.state.clone().write_owned().await;
                return start_async(method, move || f(guard, args));
            }
        };
        Box::pin(std::future::ready(
            sync_result.and_then(|outputs| check_arity(name, expected, outputs)),
        ))
    }
}

fn start_async(
    method: &'static ActorMethodEntry,
    make: impl FnOnce() -> LocalBoxFuture<Result<Outputs>>,
) -> LocalBoxFuture<CallResult> {
    // Creating the future runs no user code for an `async fn`, but argument decoding in the
    // generated wrapper may; both the creation and every poll are guarded.
    // An async call's span covers its start; its awaits interleave with other calls.
    let _span = crate::observe::timeline::Span::execution("actor_call", method.name);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(make)) {
        Ok(fut) => Box::pin(CatchUnwind::new(method.name, method.num_returns, fut)),
        Err(p) => Box::pin(std::future::ready(Err(TaskError::new(
            method.name,
            TaskFailure::Panicked,
            task::caught_panic_message(&*p),
        )))),
    }
}
