//! Sequential backend of unidist: every call runs to completion when it is made.
//!
//! This is an internal crate of [unidist](https://docs.rs/unidist); select it with
//! `UNIDIST_BACKEND=pyseq` instead of depending on it. It is the counterpart of upstream
//! unidist's `pyseq` backend and the reference the other backends are compared with.
//!
//! # Guarantees
//!
//! - **Sequential.** `remote` runs the function in the caller's thread before it returns; the
//!   refs it returns are ready. An actor method call returns once the method has finished. There
//!   is one worker: `num_cpus()` is 1.
//! - **Deterministic.** For a single-threaded program the order of execution is the order of the
//!   calls, every run.
//! - **In memory.** Values are kept as `Arc`s and never serialized; `get` clones the stored
//!   value. A value passed directly to a by-value parameter moves into the body without a copy
//!   (unless a retry may still need it); an object of the store is copied into one. Each
//!   object counts its process-local refs and is freed when the last one is dropped.
//! - **Errors are values.** A panicking task stores its error for each of its outputs; a task
//!   or method taking a failed ref fails the same way without running.
//! - **Fault tolerance, sequentially.** With `max_retries` and `retry_exceptions` a panicking
//!   body is re-run at once in the caller's thread; a body that ran longer than its `timeout`
//!   fails with `Timeout` when it returns (nothing can stop it earlier, and it holds the caller);
//!   `cancel` finds only finished objects and leaves them untouched.
//!
//! # What it is for
//!
//! Debugging (a panic's backtrace points into the caller; breakpoints and `println!` behave
//! as in ordinary code), doc tests and examples that must run anywhere, and as the reference
//! behaviour for the conformance suite.
//!
//! # Actors
//!
//! An actor type is only `Send`, and an `async fn` call is a future tied to one thread, so each
//! actor lives on a thread of its own with a Tokio current-thread runtime (with timers, so
//! `tokio::time::sleep` works). The caller blocks until its call has finished, so a call still
//! completes at submission. Calls on one actor start in call order; `async fn` calls run
//! concurrently with later calls while they await, which matters only when several threads call
//! the same actor (one thread's `wait` can be released by another thread's `send`). The
//! constructor runs when the actor is created; if it panics, every call on the actor gives that
//! error.
//!
//! # Re-entrancy
//!
//! User code may call the API while it runs: a task may `put`, `get`, submit tasks and call
//! actors; an actor method may call other actors, also from an `async fn` (no runtime is nested:
//! the other actor runs on its own thread). The backend never holds a lock while user code runs
//! or while a value is dropped.
//!
//! A call that would have to wait for itself fails with [`Error::Unsupported`] instead of
//! hanging: while an actor runs a call, a call on that same actor made from inside it, directly
//! or through tasks and other actors that it called, is refused. This includes a `&self`
//! method calling another method of its own actor through a handle. The detection follows calls
//! made through the API in the calling thread; an actor method that starts its own thread and
//! blocks on it while that thread calls the actor is not detected.
//!
//! An `async fn` that awaits something only a later call would provide (an event set by another
//! method) waits forever when the later call comes from the same thread, because that thread is
//! blocked in the earlier call: in a sequential program, call the method that sets the event
//! first.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod actors;
mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use unidist_core::actor::ActorMessage;
use unidist_core::call::{resolve_owned_call_args, ArgState, Resolved};
use unidist_core::retry;
use unidist_core::{
    ActorCall, ActorId, ActorSpec, AnyRef, Arg, Backend, ClusterResources, ErasedValue, Error,
    ObjectId, Outputs, Payload, Result, Subscription, TaskError, TaskFailure, TaskSpec,
};

use crate::actors::{ActorEntry, ActorState, Actors, Reply, Target};
use crate::store::{Slot, Store};

/// The backend's name, as in `UNIDIST_BACKEND`.
const NAME: &str = "pyseq";
/// A task run inline continues on a fresh stack segment when less than this is left.
const STACK_RED_ZONE: usize = 256 * 1024;
/// The size of such a segment.
const STACK_SEGMENT: usize = 8 * 1024 * 1024;

/// Starts the sequential backend.
///
/// It has no configuration: it runs on one worker, whatever `UNIDIST_CPUS` says.
pub fn start() -> Result<Arc<dyn Backend>> {
    tracing::debug!("starting the pyseq backend");
    Ok(Arc::new(Pyseq::default()))
}

#[derive(Default)]
struct Pyseq {
    shut_down: AtomicBool,
    store: Store,
    actors: Actors,
}

impl Pyseq {
    fn check_running(&self) -> Result<()> {
        if self.shut_down.load(Ordering::Acquire) {
            Err(Error::ShutDown)
        } else {
            Ok(())
        }
    }

    /// Every argument as a payload, or the error stored for each output of a call that does not
    /// run because an argument failed. Every object is ready in this backend, so no argument is
    /// ever pending.
    ///
    /// The call runs once from these payloads, so a value passed directly moves into its
    /// payload and a by-value parameter takes it without a copy. The refs among `args` come
    /// back too: the caller keeps them until the call's outputs are stored.
    fn resolve_all(
        &self,
        name: &str,
        args: Vec<Arg>,
    ) -> (std::result::Result<Vec<Payload>, TaskError>, Vec<AnyRef>) {
        let (resolved, refs) = resolve_owned_call_args(name, args, |id| match self.store.get(id) {
            Ok(p) => ArgState::Ready(p),
            Err(e) => ArgState::Failed(e),
        });
        let payloads = match resolved {
            Resolved::Ready(p) => Ok(p),
            Resolved::Failed(e) => Err(e),
            Resolved::Pending(id) => Err(TaskError::new(
                name,
                TaskFailure::Lost,
                format!("{id} is not ready, which cannot happen on this backend"),
            )),
        };
        (payloads, refs)
    }

    /// Stores the outputs of a call (or its error once per output) and returns their ids.
    fn store_results(
        &self,
        name: &str,
        n: usize,
        result: std::result::Result<Outputs, Error>,
    ) -> Result<Vec<ObjectId>> {
        match result {
            Ok(outputs) => outputs
                .into_iter()
                .map(|v| self.store.insert(Slot::Ready(v)))
                .collect(),
            Err(e) => {
                if n == 0 {
                    // No ref can carry the error of a call without returns.
                    tracing::warn!(call = name, error = %e, "a call without returns failed");
                }
                (0..n)
                    .map(|_| self.store.insert(Slot::Failed(e.clone())))
                    .collect()
            }
        }
    }
}

fn task_failed(e: TaskError) -> Error {
    Error::Task(Arc::new(e))
}

impl Backend for Pyseq {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> unidist_core::Capabilities {
        // Every call runs to completion inside `remote`, in the caller's thread.
        // `cancel` finds only finished objects, which the provided method handles.
        unidist_core::Capabilities::new()
            .pending_objects(false)
            .fault_tolerance(true)
    }

    fn put(&self, value: Arc<dyn ErasedValue>) -> Result<ObjectId> {
        self.check_running()?;
        self.store.insert(Slot::Ready(value))
    }

    fn submit(&self, task: TaskSpec) -> Result<Vec<ObjectId>> {
        self.check_running()?;
        let TaskSpec {
            function,
            args,
            options,
        } = task;
        let options = &options;
        let (payloads, refs) = self.resolve_all(function.name, args);
        let result = match payloads {
            // No store lock is held here: the function may call back into the backend. A run
            // that panics is re-run at once, here, while the options allow it; one that took
            // longer than its timeout fails with `Timeout` when it returns.
            // Tasks nest on the caller's stack (a task that submits and waits for a task that
            // does the same, thousands deep): near the end of the stack the run continues on a
            // fresh segment instead of overflowing it.
            Ok(payloads) => stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || {
                let mut runs = 0;
                retry::run_with_retries(function, payloads, options, || {
                    runs += 1;
                    Some(runs)
                })
                .unwrap_or_else(|| Err(retry::cancelled(function.name)))
            }),
            Err(e) => Err(task_failed(e)),
        };
        let succeeded = result.is_ok();
        let ids = self.store_results(function.name, function.num_returns, result);
        unidist_core::observe::stats::task_settled(succeeded);
        // The refs that kept the arguments alive are dropped here, after the store lock was
        // released.
        drop(refs);
        ids
    }

    fn get(&self, ids: &[ObjectId], _timeout: Option<Duration>) -> Result<Vec<Payload>> {
        // Every object is ready when its id exists, so a timeout never runs out.
        self.check_running()?;
        ids.iter().map(|id| self.store.get(*id)).collect()
    }

    fn wait(
        &self,
        ids: &[ObjectId],
        _num_returns: usize,
        _timeout: Option<Duration>,
    ) -> Result<Vec<bool>> {
        self.check_running()?;
        self.store.check_known(ids)?;
        Ok(vec![true; ids.len()])
    }

    fn release(&self, id: ObjectId) {
        self.store.release(id);
    }

    fn ref_deserialized(&self, id: ObjectId) -> Result<()> {
        self.check_running()?;
        self.store.add_ref(id)
    }

    fn create_actor(&self, spec: ActorSpec) -> Result<ActorId> {
        self.check_running()?;
        let class = spec.class;
        let id = actors::next_id();
        let (payloads, refs) = self.resolve_all(class.name, spec.args);
        let state = match payloads {
            Err(e) => ActorState::Failed(task_failed(e)),
            Ok(payloads) => match actors::spawn(id, class, payloads)? {
                Ok(thread) => ActorState::Live(thread),
                Err(e) => ActorState::Failed(task_failed(e)),
            },
        };
        if let ActorState::Failed(e) = &state {
            tracing::debug!(actor = %id, class = class.name, error = %e, "actor creation failed");
        }
        self.actors.insert(
            id,
            ActorEntry {
                class,
                handles: 1,
                state,
            },
        )?;
        drop(refs);
        Ok(id)
    }

    fn call_actor(&self, call: ActorCall) -> Result<Vec<ObjectId>> {
        self.check_running()?;
        let ActorCall {
            actor,
            method,
            args,
        } = call;
        let n = method.num_returns;
        let target = self
            .actors
            .target(actor)
            .map_err(|e| e.naming_actor_class(method.class, actor))?;
        let sender = match target {
            Target::Live(sender) => sender,
            Target::Failed(e) => return self.store_results(method.name, n, Err(e)),
        };
        let (hooks, reply) = Reply::new();
        if hooks.chain().contains(&actor) {
            let class = self.actors.class_name(actor).unwrap_or(method.class);
            return Err(Error::Unsupported {
                what: format!(
                    "calling {} on actor {class}#{actor} from inside a call that actor is running \
                     (the new call would wait for the running one forever)",
                    method.name
                ),
                backend: NAME,
            });
        }
        let (payloads, refs) = self.resolve_all(method.name, args);
        let payloads = match payloads {
            Ok(p) => p,
            Err(e) => return self.store_results(method.name, n, Err(task_failed(e))),
        };
        let sent = sender.send(ActorMessage::Call {
            method,
            args: Ok(payloads),
            hooks,
        });
        drop(sender);
        if sent.is_err() {
            return Err(self
                .actors
                .lost(actor)
                .naming_actor_class(method.class, actor));
        }
        // `ActorInstance::begin` has checked the number of outputs.
        // The actor thread answers within microseconds when the method is short.
        let answer =
            unidist_core::spin::spin_for(unidist_core::spin::WINDOW, || reply.try_recv().ok());
        let result = match answer.map_or_else(|| reply.recv(), Ok) {
            Ok(r) => r.map_err(task_failed),
            Err(_) => {
                return Err(self
                    .actors
                    .lost(actor)
                    .naming_actor_class(method.class, actor))
            }
        };
        let ids = self.store_results(method.name, n, result);
        drop(refs);
        ids
    }

    fn kill_actor(&self, actor: ActorId) -> Result<()> {
        self.check_running()?;
        self.actors.kill(actor)
    }

    fn release_actor(&self, actor: ActorId) {
        self.actors.release(actor);
    }

    fn actor_deserialized(&self, actor: ActorId) -> Result<()> {
        self.check_running()?;
        self.actors.add_handle(actor)
    }

    fn num_cpus(&self) -> usize {
        1
    }

    fn cluster_resources(&self) -> Result<ClusterResources> {
        self.check_running()?;
        let cpus = BTreeMap::from([("CPU".to_string(), 1.0)]);
        Ok(BTreeMap::from([(self.get_ip(), cpus)]))
    }

    fn on_ready(&self, subscription: Subscription) {
        // Every object is ready (or failed) when its id exists, and after shutdown sampling
        // gives the error: either way the awaiting future can go on at once.
        subscription.fire();
    }

    fn shutdown(&self) -> Result<()> {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        tracing::debug!("shutting down the pyseq backend");
        self.actors.close();
        self.store.close();
        Ok(())
    }
}
