//! The node's state behind its one mutex, split by concern (objects, calls sent, calls
//! received, actors, blocked threads), and the small error helpers every concern uses.

use std::collections::VecDeque;
use std::sync::Arc;

use unidist_core::call::{resolve_args, ArgState, Resolved};
use unidist_core::registry::{ActorClassEntry, ActorMethodEntry, Indexed, Named, RemoteFunction};
use unidist_core::{
    ActorId, AnyRef, DeadReason, Error, ObjectId, Payload, Result, TaskError, TaskFailure,
};
use unidist_serialize::Encoded;

use super::execute::Reply;
use super::wait::Waiters;
use crate::exec::{ActorThread, Args, Fate};

/// The node's maps: keyed by ids this runtime makes (object ids, call numbers, actor ids),
/// hashed with FxHash, several times cheaper per lookup than the standard SipHash; a task
/// takes several lookups on rank 0.
pub(super) type HashMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;

/// The backend name in errors.
pub(super) const NAME: &str = "mpi";

pub(super) fn backend_err(message: impl Into<String>) -> Error {
    Error::backend(NAME, message)
}

/// The error of an object that no longer exists anywhere this process can reach.
pub(super) fn object_gone(id: ObjectId) -> Error {
    backend_err(format!(
        "{id} is gone: it was freed, or the worker that held it is lost"
    ))
}

/// The index of registry entry `entry` (a `what`) on the wire, or the error saying it is not
/// registered in this binary.
pub(super) fn wire_index<T: Named>(entries: &Indexed<T>, what: &str, entry: &T) -> Result<u32> {
    let name = entry.name();
    entries.index_of(name).ok_or_else(|| {
        backend_err(format!(
            "{what} {name} is not registered in this binary (define it with #[unidist::remote] \
             or #[unidist::actor] in a crate the program links)"
        ))
    })
}

/// Everything the node knows, guarded by one mutex (see the locking notes of the module).
#[derive(Default)]
pub(super) struct State {
    /// The last number handed out by [`State::next_seq`] (object ids, calls, actors, waiters).
    seq: u64,
    /// Objects this process owns, holds, references or waits for.
    pub(super) objects: HashMap<ObjectId, Object>,
    /// Calls this process sent, until their `Done`, by sequence number.
    pub(super) sent: HashMap<u64, SentCall>,
    /// What the scheduler knows about each worker.
    pub(super) workers: WorkerLoad,
    /// Calls other processes sent here, until they start.
    pub(super) received: ReceivedCalls,
    /// Actors living here and actors this process owns.
    pub(super) actors: Actors,
    /// Threads blocked in `get`, `wait` or an actor lookup.
    pub(super) waiters: Waiters,
    /// Shutdown began: queued calls are dropped and no new work starts.
    pub(super) stopped: bool,
    /// Futures awaiting objects (`Backend::on_ready`).
    pub(super) watches: super::ready::Watches,
    /// Tasks received here that were handed to the pool and are not settled, by the rank that
    /// sent them and its sequence number (for `cancel`).
    pub(super) running: HashMap<(u32, u64), Arc<super::control::Ticket>>,
    /// Bumped whenever a call this process sent fails: `get` of several refs looks again.
    pub(super) failures: u64,
    /// Finished tasks with `max_retries` whose outputs are still referenced, by their first
    /// output: what it takes to run them again if their outputs are lost.
    pub(super) lineage: HashMap<ObjectId, super::lineage::Lineage>,
}

impl State {
    /// A new state for a job of `size` ranks.
    pub(super) fn new(size: u32) -> State {
        State {
            workers: WorkerLoad {
                calls: vec![0; size as usize],
                by_load: (1..size).map(|w| (0, w)).collect(),
                actors: vec![0; size as usize],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// A number not handed out before in this process.
    pub(super) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The last number handed out: every call sent so far has a number at most this.
    pub(super) fn last_seq(&self) -> u64 {
        self.seq
    }
}

/// Whether an object's value exists (somewhere) yet.
#[derive(Debug, Clone, Default)]
pub(super) enum ObjectStatus {
    #[default]
    Pending,
    Ready,
    Failed(Error),
}

/// One object as this process sees it: as its owner, its location, a borrower or a waiter.
#[derive(Default)]
pub(super) struct Object {
    /// Local handles (facade refs) in this process.
    pub(super) local: u32,
    /// Owner: borrowers in other processes, plus permanent pins.
    pub(super) remote: u32,
    /// Non-owner: registered as a borrower at the owner.
    pub(super) borrowing: bool,
    /// Where the value lives (or will), if known.
    pub(super) location: Option<u32>,
    pub(super) status: ObjectStatus,
    /// The value, if held here.
    pub(super) data: Option<Payload>,
    /// Its encoding, once made.
    pub(super) encoded: Option<Arc<Encoded>>,
    /// Its shared-memory segment on this host, if it has one (created here or mapped).
    pub(super) shared: Option<Arc<crate::shm::Segment>>,
    /// Rank 0: where the value lies in the memory of the rank that holds it (that rank and the
    /// descriptor), for `get` to read it from there (the store's `peer.rs`).
    pub(super) peer: Option<Arc<(u32, crate::wire::PeerDesc)>>,
    /// Owner: the value of a call's output that arrived ahead of the call's `Done`, made its
    /// value when the `Done` is handled (with its segment, if it came through one).
    pub(super) ahead: Option<(Arc<Encoded>, Option<Arc<crate::shm::Segment>>)>,
    /// Its encoded size in bytes, once known (for locality).
    pub(super) size: u64,
    /// Ranks this process sent the value to (freed with it).
    pub(super) copies: Vec<u32>,
    /// Ranks waiting for the value (this process is its location).
    pub(super) fetchers: Vec<u32>,
    /// Ranks waiting for readiness (this process is its owner).
    pub(super) subscribers: Vec<u32>,
    /// A fetch for it is in flight.
    pub(super) requested: bool,
    /// A readiness subscription is in flight.
    pub(super) subscribed: bool,
    /// A call running or queued here will produce it.
    pub(super) producing: bool,
    /// Freed while being produced: drop the value when it arrives.
    pub(super) freed: bool,
    /// Calls received here that wait for it as an argument.
    pub(super) waiting_calls: Vec<u64>,
    /// Owner: made by a task with `max_retries` whose lineage is kept (the key of
    /// [`State::lineage`]), so that it can be made again if its worker is lost.
    pub(super) lineage: Option<ObjectId>,
}

impl Object {
    /// Whether its value is here (or can be read from a rank of this host) or it failed: `get`
    /// can answer.
    pub(super) fn resolved(&self) -> bool {
        self.data.is_some() || self.peer.is_some() || matches!(self.status, ObjectStatus::Failed(_))
    }
}

/// What a call this process sends runs, with the outputs it makes.
#[derive(Clone, Copy)]
pub(super) enum Sending<'a> {
    Task(&'a [ObjectId]),
    ActorCreate,
    ActorCall(&'a [ObjectId]),
}

/// A call this process submitted, until its `Done`.
pub(super) struct SentCall {
    pub(super) worker: u32,
    /// A task (not an actor creation or call): its failure here, when its worker is lost, is
    /// counted in the stats here, since the worker that would have counted it is gone.
    pub(super) task: bool,
    pub(super) outputs: Vec<ObjectId>,
    /// Argument refs, kept alive until the call has run.
    pub(super) hold: Vec<AnyRef>,
    /// Refs owned here inside argument values: pinned until the call is done. The worker that
    /// decodes them registers as a borrower before it reports the call done (one ordered
    /// channel to this process), so the pin can end then.
    pub(super) nested: Vec<ObjectId>,
    /// A task with `max_retries`: what it takes to send it again if its worker is lost.
    pub(super) retry: Option<Box<super::control::Resend>>,
}

/// Rank 0's view of each worker, for scheduling.
#[derive(Default)]
pub(super) struct WorkerLoad {
    /// Unfinished calls sent to each rank; changed only through [`WorkerLoad::sent`] and
    /// [`WorkerLoad::finished`], which keep `by_load` in step.
    pub(super) calls: Vec<u32>,
    /// `(calls, rank)` of every worker, in order: the least loaded worker (lowest rank among
    /// equals) is the first that is not lost, found in O(log workers) instead of a scan of all.
    by_load: std::collections::BTreeSet<(u32, u32)>,
    /// Unfinished calls sent by this process, in all.
    pub(super) inflight: u32,
    /// Actors placed on each rank.
    pub(super) actors: Vec<u32>,
    /// Where the round-robin among equally loaded workers goes on.
    pub(super) round_robin: usize,
}

impl WorkerLoad {
    /// A call was sent to `w`.
    pub(super) fn sent(&mut self, w: u32) {
        let n = self
            .calls
            .get(w as usize)
            .map_or(0, |c| c.saturating_add(1));
        self.set_calls(w, n);
        self.inflight += 1;
    }

    /// A call sent to `w` is done (or will never be).
    pub(super) fn finished(&mut self, w: u32) {
        let n = self
            .calls
            .get(w as usize)
            .map_or(0, |c| c.saturating_sub(1));
        self.set_calls(w, n);
        self.inflight = self.inflight.saturating_sub(1);
    }

    fn set_calls(&mut self, w: u32, n: u32) {
        let Some(c) = self.calls.get_mut(w as usize) else {
            return;
        };
        if w > 0 && self.by_load.remove(&(*c, w)) {
            self.by_load.insert((n, w));
        }
        *c = n;
    }

    /// `(calls, rank)` of the least loaded worker that is not `lost`, the lowest rank among
    /// equals.
    pub(super) fn least_loaded(&self, lost: impl Fn(u32) -> bool) -> Option<(u32, u32)> {
        self.by_load.iter().copied().find(|(_, w)| !lost(*w))
    }
}

/// What a received call runs.
pub(super) enum CallKind {
    Task(&'static RemoteFunction),
    Create(&'static ActorClassEntry),
    Method(&'static ActorMethodEntry),
}

impl CallKind {
    /// The name of the function, actor type or method, for its errors.
    pub(super) fn name(&self) -> &'static str {
        match self {
            CallKind::Task(f) => f.name,
            CallKind::Create(c) => c.name,
            CallKind::Method(m) => m.name,
        }
    }
}

/// A call received here, waiting for its arguments.
pub(super) struct ReceivedCall {
    pub(super) kind: CallKind,
    pub(super) actor: Option<ActorId>,
    pub(super) args: Vec<ArgState>,
    /// Arguments still [`ArgState::Pending`].
    pub(super) missing: usize,
    pub(super) reply: Reply,
    /// A task's fault-tolerance options (none for other calls).
    pub(super) options: crate::wire::WireOptions,
}

impl ReceivedCall {
    /// The arguments, or the error that fails the call (core's rule, [`resolve_args`]). It is
    /// taken when no argument is pending any more, or when the call must start without them:
    /// an argument still pending then can never arrive, and fails the call.
    pub(super) fn take_args(&mut self) -> Args {
        let name = self.kind.name();
        let args = std::mem::take(&mut self.args);
        let resolved = resolve_args(name, args, |a| match a {
            ArgState::Pending(id) => ArgState::Failed(object_gone(id)),
            other => other,
        });
        match resolved {
            Resolved::Ready(payloads) => Ok(payloads),
            Resolved::Failed(e) => Err(e),
            // Not reached: pending arguments were turned into failures above.
            Resolved::Pending(id) => Err(TaskError::new(
                name,
                TaskFailure::ArgumentFailed,
                format!("argument {id} never arrived"),
            )),
        }
    }
}

/// Calls received here that have not started, and the order of each actor's calls.
#[derive(Default)]
pub(super) struct ReceivedCalls {
    pub(super) calls: HashMap<u64, ReceivedCall>,
    /// Per actor living here: its received calls in the order they must start.
    pub(super) actor_queues: HashMap<ActorId, VecDeque<u64>>,
}

/// An actor living on this rank.
pub(super) enum ActorSlot {
    /// Its thread, and the reason its calls that never ran will give.
    Alive(ActorThread, Fate),
    Dead(DeadReason),
}

/// An actor this process created (its owner), wherever it lives.
pub(super) struct OwnedActor {
    pub(super) worker: u32,
    /// Handles to it in this process.
    pub(super) handles: u32,
    /// A handle reached another process: it never ends on release.
    pub(super) pinned: bool,
    pub(super) dead: Option<DeadReason>,
    /// Created with `max_restarts > 0`: what it takes to create it again.
    pub(super) restart: Option<Box<super::restart::Restart>>,
}

/// The actors this process hosts, owns, or has looked up.
#[derive(Default)]
pub(super) struct Actors {
    /// Actors living on this rank.
    pub(super) hosted: HashMap<ActorId, ActorSlot>,
    /// Actors this process created.
    pub(super) owned: HashMap<ActorId, OwnedActor>,
    /// Where actors owned elsewhere live, as their owners answered.
    pub(super) located: HashMap<ActorId, Result<u32, DeadReason>>,
    /// Owned actors whose last handle here dropped, with the call sequence number at that
    /// moment: they end once every call submitted before it is done, unless a handle that
    /// escaped in one of those calls registered meanwhile.
    pub(super) pending_ends: Vec<(ActorId, u64)>,
}
