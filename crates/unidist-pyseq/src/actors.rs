//! Actors: one thread per actor serving its calls in order, the actor table, and the detection of
//! calls that would wait for themselves.
//!
//! An actor's state is only `Send` (an actor type need not be `Sync`) and an `async fn` call is a
//! future that cannot leave the thread that created it, so an actor cannot run "in the caller's
//! thread" when callers are many threads. Each actor therefore lives on its own thread with a
//! Tokio current-thread runtime, and the caller blocks until its call has finished: seen from
//! the caller, a call still runs to completion at submission.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};
use unidist_core::actor::{ActorInstance, CallResult};
use unidist_core::{
    ActorClassEntry, ActorId, ActorMethodEntry, Error, Payload, Result, TaskError, TaskFailure,
};

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

/// Runs every poll of `inner` with `chain` as the upstream chain: the chain belongs to a call,
/// not to the actor thread, which interleaves the polls of concurrent async calls.
struct WithChain<F> {
    chain: Vec<ActorId>,
    inner: F,
}

impl<F: Future + Unpin> Future for WithChain<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let _scope = ChainScope::enter(&mut this.chain);
        Pin::new(&mut this.inner).poll(cx)
    }
}

/// One method call sent to an actor thread.
pub(crate) struct Call {
    pub(crate) method: &'static ActorMethodEntry,
    pub(crate) args: Vec<Payload>,
    /// The caller's [`blocked_actors`].
    pub(crate) upstream: Vec<ActorId>,
    pub(crate) reply: SyncSender<CallResult>,
}

/// The caller's end of a running actor thread.
pub(crate) struct ActorThread {
    calls: mpsc::UnboundedSender<Call>,
    kill: Option<oneshot::Sender<()>>,
}

impl ActorThread {
    /// Where to send calls.
    pub(crate) fn sender(&self) -> mpsc::UnboundedSender<Call> {
        self.calls.clone()
    }

    /// Ends the actor at its next await point: queued calls and async calls in progress are
    /// dropped, so their callers see the actor gone.
    pub(crate) fn kill(mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
    }
}

/// Starts the thread of actor `id` and runs its constructor there.
///
/// Returns the thread, or the constructor's error (the thread has ended then).
pub(crate) fn spawn(
    id: ActorId,
    class: &'static ActorClassEntry,
    args: Vec<Payload>,
    upstream: Vec<ActorId>,
) -> Result<std::result::Result<ActorThread, TaskError>> {
    let (ready_tx, ready_rx) = sync_channel(1);
    let (calls_tx, calls_rx) = mpsc::unbounded_channel();
    let (kill_tx, kill_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("pyseq-actor-{}", id.seq))
        .spawn(move || actor_main(id, class, args, upstream, ready_tx, calls_rx, kill_rx))
        .map_err(|e| {
            Error::backend(
                NAME,
                format!("cannot start a thread for actor {}#{id}: {e}", class.name),
            )
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Ok(ActorThread {
            calls: calls_tx,
            kill: Some(kill_tx),
        })),
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

fn actor_main(
    id: ActorId,
    class: &'static ActorClassEntry,
    args: Vec<Payload>,
    mut upstream: Vec<ActorId>,
    ready: SyncSender<std::result::Result<(), TaskError>>,
    mut calls: mpsc::UnboundedReceiver<Call>,
    kill: oneshot::Receiver<()>,
) {
    THREAD_ACTOR.with(|a| a.set(Some(id)));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(TaskError::new(
                class.name,
                TaskFailure::Lost,
                format!("cannot start the async runtime of the actor: {e}"),
            )));
            return;
        }
    };
    let constructed = {
        // Inside the runtime context the constructor may create timers and other Tokio objects.
        let _rt = rt.enter();
        let _scope = ChainScope::enter(&mut upstream);
        ActorInstance::construct(class, &args)
    };
    drop(args);
    let instance = match constructed {
        Ok(instance) => instance,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        return;
    }
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, serve_until_killed(&instance, &mut calls, kill));
    // Dropping the set drops async calls still in progress (their callers see the actor gone);
    // then the queued calls, then the state.
    drop(local);
    drop(calls);
    drop(instance);
}

async fn serve_until_killed(
    instance: &ActorInstance,
    calls: &mut mpsc::UnboundedReceiver<Call>,
    mut kill: oneshot::Receiver<()>,
) {
    let mut serving = pin!(serve(instance, calls));
    // The kill sender is also dropped, without sending, when the last handle is released: the
    // actor then ends once its queue is empty and every sender is gone.
    let mut kill_open = true;
    poll_fn(|cx| {
        if kill_open {
            match Pin::new(&mut kill).poll(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(()),
                Poll::Ready(Err(_)) => kill_open = false,
                Poll::Pending => {}
            }
        }
        serving.as_mut().poll(cx)
    })
    .await
}

async fn serve(instance: &ActorInstance, calls: &mut mpsc::UnboundedReceiver<Call>) {
    while let Some(call) = calls.recv().await {
        let Call {
            method,
            args,
            upstream,
            reply,
        } = call;
        // `begin` starts calls strictly in order; a sync method has run once it returns.
        let mut begin = WithChain {
            chain: upstream,
            inner: Box::pin(instance.begin(method, args)),
        };
        let done = (&mut begin).await;
        let finish = WithChain {
            chain: begin.chain,
            inner: done,
        };
        if method.kind.is_async() {
            // Async calls run concurrently with the calls after them, as upstream's async actors.
            tokio::task::spawn_local(async move {
                let _ = reply.send(finish.await);
            });
        } else {
            // Replied here, not from a spawned task, so a kill right after cannot lose the result
            // of a call that has run.
            let _ = reply.send(finish.await);
        }
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
    Live(mpsc::UnboundedSender<Call>),
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
            ) => Err(dead(e.class.name, id, "it was killed")),
            None => Err(gone(id)),
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
            Some(e) => dead(e.class.name, id, "it was killed before the call finished"),
            None => gone(id),
        }
    }

    /// Ends `id` now; its entry stays (as killed) until its last handle is released.
    pub(crate) fn kill(&self, id: ActorId) -> Result<()> {
        let state = {
            let mut table = self.lock();
            if table.closed {
                return Err(Error::ShutDown);
            }
            match table.map.get_mut(&id) {
                Some(e) => std::mem::replace(&mut e.state, ActorState::Killed),
                None => return Err(gone(id)),
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
            None => Err(gone(id)),
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

fn dead(class: &str, id: ActorId, reason: &str) -> Error {
    Error::ActorDead {
        actor: format!("{class}#{id}"),
        reason: reason.to_string(),
    }
}

fn gone(id: ActorId) -> Error {
    Error::ActorDead {
        actor: format!("actor {id}"),
        reason: "it is not known to this runtime (its last handle was dropped, or it belongs to another runtime)"
            .to_string(),
    }
}
