//! TODO

use super::*;

pub(super) const NAME: &str = "mpi";

pub(super) fn backend_err(message: impl Into<String>) -> Error {
    Error::backend(NAME, message)
}

pub(super) fn lost(id: ObjectId) -> Error {
    backend_err(format!(
        "{id} is gone: it was freed, or the worker that held it is lost"
    ))
}

/// Every registered function, actor type and method, indexed identically on all ranks (the

#[derive(Debug, Clone, Default)]
pub(super) enum St {
    #[default]
    Pending,
    Ready,
    Failed(Error),
}

#[derive(Default)]
pub(super) struct Obj {
    /// Local handles (facade refs) in this process.
    pub(super) local: u32,
    /// Owner: borrowers in other processes, plus permanent pins.
    pub(super) remote: u32,
    /// Non-owner: registered as a borrower at the owner.
    pub(super) borrowing: bool,
    /// Where the value lives (or will), if known.
    pub(super) loc: Option<u32>,
    pub(super) status: St,
    /// The value, if held here.
    pub(super) data: Option<Payload>,
    /// Its encoding, once made.
    pub(super) encoded: Option<Arc<Encoded>>,
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
    /// Calls queued here that wait for it as an argument.
    pub(super) execs: Vec<u64>,
}

impl Obj {
    pub(super) fn resolved(&self) -> bool {
        self.data.is_some() || matches!(self.status, St::Failed(_))
    }
}

/// A call this process submitted, until its `Done`.
pub(super) struct Call {
    pub(super) worker: u32,
    pub(super) outputs: Vec<ObjectId>,
    /// Argument refs, kept alive until the call has run.
    pub(super) _hold: Vec<AnyRef>,
    /// Refs owned here inside argument values: pinned until the call is done. The worker that
    /// decodes them registers as a borrower before it reports the call done (one ordered
    /// channel to this process), so the pin can end then.
    pub(super) nested: Vec<ObjectId>,
}

pub(super) enum ExecKind {
    Task(&'static RemoteFunction),
    Create(&'static ActorClassEntry),
    Call(&'static ActorMethodEntry),
}

pub(super) enum ArgState {
    Ready(Payload),
    Failed(Error),
    Waiting(ObjectId),
}

/// A call received here, waiting for its arguments.
pub(super) struct Exec {
    pub(super) kind: ExecKind,
    pub(super) actor: Option<ActorId>,
    pub(super) args: Vec<ArgState>,
    pub(super) missing: usize,
    pub(super) outputs: Vec<ObjectId>,
    pub(super) reply_to: u32,
    pub(super) seq: u64,
}

impl Exec {
    pub(super) fn take_args(&mut self) -> Args {
        let mut out = Vec::with_capacity(self.args.len());
        for (i, a) in std::mem::take(&mut self.args).into_iter().enumerate() {
            match a {
                ArgState::Ready(p) => out.push(p),
                ArgState::Failed(e) => return Err((i, e)),
                ArgState::Waiting(id) => return Err((i, lost(id))),
            }
        }
        Ok(out)
    }
}

pub(super) enum ActorSlot {
    Alive(ActorTx),
    Dead(String),
}

pub(super) struct OwnedActor {
    pub(super) worker: u32,
    pub(super) handles: u32,
    pub(super) pinned: bool,
    pub(super) dead: Option<String>,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) seq: u64,
    pub(super) objs: HashMap<ObjectId, Obj>,
    pub(super) calls: HashMap<u64, Call>,
    pub(super) load: Vec<u32>,
    pub(super) inflight: u32,
    pub(super) actors_on: Vec<u32>,
    pub(super) rr: usize,
    pub(super) execs: HashMap<u64, Exec>,
    pub(super) actor_queues: HashMap<ActorId, VecDeque<u64>>,
    pub(super) actors_here: HashMap<ActorId, ActorSlot>,
    pub(super) owned_actors: HashMap<ActorId, OwnedActor>,
    pub(super) actor_where: HashMap<ActorId, std::result::Result<u32, String>>,
    /// Owned actors whose last handle here dropped, with the call sequence number at that
    /// moment: they end once every call submitted before it is done, unless a handle that
    /// escaped in one of those calls registered meanwhile.
    pub(super) pending_ends: Vec<(ActorId, u64)>,
    pub(super) stopped: bool,
    /// Ranks known to be gone, with the reason.
    pub(super) lost: Vec<(u32, String)>,
    /// Threads blocked until an object changes, by the object they wait on.
    pub(super) waiters: HashMap<ObjectId, Vec<Waiter>>,
    /// Threads blocked until anything changes (actor lookups).
    pub(super) broad: Vec<Waiter>,
}

/// A blocked thread: its own condition variable (on the state mutex), so that an arriving

impl State {
    pub(super) fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub(super) fn lost_reason(&self, rank: u32) -> Option<&str> {
        self.lost
            .iter()
            .find(|(r, _)| *r == rank)
            .map(|(_, why)| why.as_str())
    }
}
