//! Actors: the actor table, the hooks that carry a call to the actor's thread and back, and the
//! detection of calls that would wait for themselves.
//!
//! An actor's state is only `Send` (an actor type need not be `Sync`) and an `async fn` call is a
//! future that cannot leave the thread that created it, so an actor cannot run "in the caller's
//! thread" when callers are many threads. Each actor therefore lives on its own
//! [`unidist_core::actor::ActorThread`], and the caller blocks until its call has finished: seen
//! from the caller, a call still runs to completion at submission.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Mutex, MutexGuard};

use unidist_core::actor::{ActorMessage, ActorSender, CallHooks, CallResult};
use unidist_core::{ActorClassEntry, ActorId, DeadReason, Error, Payload, Result, TaskError};

use crate::NAME;

// Unique across runtimes, like object ids.
static NEXT_ACTOR: AtomicU64 = AtomicU64::new(1);

/// A fresh actor id.
pub(crate) fn next_id() -> ActorId {
    ActorId {
        owner: 0,
        seq: NEXT_ACTOR.fetch_add(1, Ordering::Relaxed),
    }
}

thread_local! {
    // The actor this thread serves, if it is an actor thread.
    static THREAD_ACTOR: Cell<Option<ActorId>> = const { Cell::new(None) };
    // The actors blocked upstream of the code running now: each made a call that (directly or
    // through tasks and other actors) led here, and waits for it to finish.
    static UPSTREAM: RefCell<Vec<ActorId>> = const { RefCell::new(Vec::new()) };
}

/// Every actor that waits for the code running on this thread: the upstream chain and the actor
/// this thread serves. A call to any of them can never be served.
pub(crate) fn blocked_actors() -> Vec<ActorId> {
    let mut v = UPSTREAM.with(|u| u.borrow().clone());
    if let Some(me) = THREAD_ACTOR.with(Cell::get) {
        v.push(me);
    }
    v
}

/// Swaps a chain into [`UPSTREAM`] and back out when dropped, also on unwinding.
struct ChainScope<'a> {
    chain: &'a mut Vec<ActorId>,
}

impl<'a> ChainScope<'a> {
    fn enter(chain: &'a mut Vec<ActorId>) -> Self {
        UPSTREAM.with(|u| std::mem::swap(&mut *u.borrow_mut(), chain));
        ChainScope { chain }
    }
}

impl Drop for ChainScope<'_> {
    fn drop(&mut self) {
        UPSTREAM.with(|u| std::mem::swap(&mut *u.borrow_mut(), self.chain));
    }
}

/// What a call (or the constructor) sent to an actor thread carries: the caller's
/// [`blocked_actors`], in effect during every poll of its user code, and where the caller waits
/// for the result.
pub(crate) struct Reply {
    chain: Vec<ActorId>,
    to: SyncSender<CallResult>,
    /// The timeline flow of the call's submission, ended by its first poll (0: none).
    flow: u64,
}

impl Reply {
    /// The hooks of a call made now on this thread, and the receiver its caller blocks on.
    pub(crate) fn new() -> (Self, Receiver<CallResult>) {
        let (to, from) = sync_channel(1);
        let reply = Reply {
            chain: blocked_actors(),
            to,
            flow: unidist_core::observe::timeline::current_flow(),
        };
        (reply, from)
    }

    /// The chain this call runs under.
    pub(crate) fn chain(&self) -> &[ActorId] {
        &self.chain
    }
}

impl CallHooks for Reply {
    fn scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        // The chain belongs to a call, not to the actor thread, which interleaves the polls of
        // concurrent async calls.
        let _scope = ChainScope::enter(&mut self.chain);
        let _flow = unidist_core::observe::timeline::flow_scope(std::mem::take(&mut self.flow));
        f()
    }

    fn finish(self, result: CallResult) {
        let _ = self.to.send(result);
    }
}

/// The caller's end of a running actor thread.
pub(crate) type ActorThread = unidist_core::actor::ActorThread<Reply>;

/// Starts the thread of actor `id` and runs its constructor there, in the caller's chain.
///
/// Returns the thread, or the constructor's error (the thread ends then).
pub(crate) fn spawn(
    id: ActorId,
    class: &'static ActorClassEntry,
    args: Vec<Payload>,
) -> Result<std::result::Result<ActorThread, TaskError>> {
    let thread = ActorThread::spawn(format!("pyseq-actor-{}", id.seq), move || {
        THREAD_ACTOR.with(|a| a.set(Some(id)));
    })
    .map_err(|e| {
        Error::backend(
            NAME,
            format!("cannot start a thread for actor {}#{id}: {e}", class.name),
        )
    })?;
    let (hooks, built) = Reply::new();
    let _ = thread.send(ActorMessage::Construct {
        class,
        args: Ok(args),
        hooks,
    });
    match built.recv() {
        Ok(Ok(_)) => Ok(Ok(thread)),
        Ok(Err(e)) => Ok(Err(e)),
        Err(_) => Err(Error::backend(
            NAME,
            format!(
                "the thread of actor {}#{id} ended before its constructor returned",
                class.name
            ),
        )),
    }
}

/// What an entry of the actor table holds.
pub(crate) enum ActorState {
    Live(ActorThread),
    /// The constructor failed (or an argument of it did): every call stores this error.
    Failed(Error),
    Killed,
}

pub(crate) struct ActorEntry {
    pub(crate) class: &'static ActorClassEntry,
    pub(crate) handles: usize,
    pub(crate) state: ActorState,
}

#[derive(Default)]
struct Table {
    map: HashMap<ActorId, ActorEntry>,
    closed: bool,
}

/// Every actor of one runtime with the count of its process-local handles.
#[derive(Default)]
pub(crate) struct Actors {
    table: Mutex<Table>,
}

/// How a call finds its actor.
pub(crate) enum Target {
    Live(ActorSender<Reply>),
    Failed(Error),
}

impl Actors {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an actor with one handle; after shutdown its thread is ended instead.
    pub(crate) fn insert(&self, id: ActorId, entry: ActorEntry) -> Result<()> {
        let mut table = self.lock();
        if table.closed {
            drop(table);
            if let ActorState::Live(t) = entry.state {
                t.kill();
            }
            return Err(Error::ShutDown);
        }
        table.map.insert(id, entry);
        Ok(())
    }

    /// Where a call to `id` goes, or why it cannot be made.
    pub(crate) fn target(&self, id: ActorId) -> Result<Target> {
        let table = self.lock();
        if table.closed {
            return Err(Error::ShutDown);
        }
        match table.map.get(&id) {
            Some(ActorEntry {
                state: ActorState::Live(t),
                ..
            }) => Ok(Target::Live(t.sender())),
            Some(ActorEntry {
                state: ActorState::Failed(e),
                ..
            }) => Ok(Target::Failed(e.clone())),
            Some(
                e @ ActorEntry {
                    state: ActorState::Killed,
                    ..
                },
            ) => Err(Error::actor_dead(e.class.name, id, DeadReason::Killed)),
            None => Err(Error::unknown_actor(id)),
        }
    }

    /// The class name of `id`, for messages.
    pub(crate) fn class_name(&self, id: ActorId) -> Option<&'static str> {
        self.lock().map.get(&id).map(|e| e.class.name)
    }

    /// Why a call to `id` got no reply: the actor was killed or the runtime shut down.
    pub(crate) fn lost(&self, id: ActorId) -> Error {
        let table = self.lock();
        if table.closed {
            return Error::ShutDown;
        }
        match table.map.get(&id) {
            Some(e) => Error::actor_dead(e.class.name, id, DeadReason::Killed),
            None => Error::unknown_actor(id),
        }
    }

    /// Ends `id` now; its entry stays (as killed) until its last handle is released. Killing an
    /// actor this runtime no longer knows does nothing, as on the other backends.
    pub(crate) fn kill(&self, id: ActorId) -> Result<()> {
        let state = {
            let mut table = self.lock();
            if table.closed {
                return Err(Error::ShutDown);
            }
            match table.map.get_mut(&id) {
                Some(e) => std::mem::replace(&mut e.state, ActorState::Killed),
                None => return Ok(()),
            }
        };
        if let ActorState::Live(t) = state {
            t.kill();
        }
        Ok(())
    }

    /// Registers one more handle to `id`.
    pub(crate) fn add_handle(&self, id: ActorId) -> Result<()> {
        let mut table = self.lock();
        if table.closed {
            return Err(Error::ShutDown);
        }
        match table.map.get_mut(&id) {
            Some(e) => {
                e.handles += 1;
                Ok(())
            }
            None => Err(Error::unknown_actor(id)),
        }
    }

    /// Drops one handle to `id`; at zero the actor ends once its queued calls have run.
    pub(crate) fn release(&self, id: ActorId) {
        let removed = {
            let mut table = self.lock();
            match table.map.get_mut(&id) {
                Some(e) if e.handles > 1 => {
                    e.handles -= 1;
                    None
                }
                Some(_) => table.map.remove(&id),
                None => None,
            }
        };
        // Dropping the thread's senders (outside the lock) lets it finish its queue and end.
        drop(removed);
    }

    /// Refuses every later call and ends every actor.
    pub(crate) fn close(&self) {
        let all = {
            let mut table = self.lock();
            table.closed = true;
            std::mem::take(&mut table.map)
        };
        for (_, entry) in all {
            if let ActorState::Live(t) = entry.state {
                t.kill();
            }
        }
    }
}
