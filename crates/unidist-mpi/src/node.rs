//! The per-process runtime: object table, ownership and reference counts, scheduling, call
//! bookkeeping, and the [`Backend`] implementation. It never calls MPI: it hands messages to the
//! communication thread through a channel, and the communication thread hands it what arrives.
//!
//! Objects. An [`ObjectId`]'s `owner` is the rank that allocated it (the submitter of the task
//! or the putter). The owner knows the object's location (the worker that runs the producing
//! task, chosen at submission, or the putter), its readiness, and who references it: local
//! handles (`local`) and registered borrowers in other processes (`remote`). When both drop to
//! zero the owner sends `Free` to the location, which drops the value and forwards `Free` to every
//! rank it sent a copy to. No global quiescence is involved.
//!
//! Refs nested inside values: a process that deserializes a ref registers with the owner
//! (`Borrow +1`, and `-1` when its last handle drops). A process that serializes a ref it owns
//! inside a call's arguments pins it until that call is done: the worker that decodes the
//! arguments registers as a borrower before it reports the call done, on the same ordered
//! channel. Any other serialization (refs inside `put` values or task results, refs owned by
//! another process) pins the object at its owner for good, because such an encoded value may be
//! decoded any number of times, anywhere; those objects live until shutdown (a documented limit).
//!
//! Locking. One mutex guards the state; code that needs to encode, decode, drop user values or
//! wake threads collects the work in [`Fx`] and does it after unlocking, because encoding or
//! dropping a value that contains refs re-enters the backend.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex, MutexGuard};
use unidist_core::registry::{self, ActorClassEntry, ActorMethodEntry, RemoteFunction};
use unidist_core::{
    ActorCall, ActorId, ActorSpec, AnyRef, Arg, Backend, ClusterResources, ErasedValue, Error,
    ObjectId, Payload, Result, TaskSpec,
};
use unidist_serialize::Encoded;

use crate::comm::Out;
use crate::exec::{self, ActorCmd, ActorTx, Args, Job, Pool};
use crate::wire::{ArgWire, Msg, OutResult, Slot, WireError};

/// Arguments at least this large steer scheduling towards the worker that holds them.
const LOCALITY_MIN: u64 = 64 * 1024;
/// A worker holding a large argument is chosen if its load is at most this much above the
/// least loaded worker's.
const LOCALITY_SLACK: u32 = 4;
/// Rank 0 stops submitting while this many of its calls per worker are unfinished.
const INFLIGHT_PER_WORKER: u32 = 4096;
/// After its first pass, a waiting `get` re-requests at most this many ids per wake-up.
const REKICK_WINDOW: usize = 1024;
/// How long rank 0's caller polls for a result before it sleeps.
const GET_SPIN: Duration = Duration::from_micros(100);
/// Results up to this size travel to their owner with the call's completion.
const INLINE_RESULT_MAX: usize = 16 * 1024;
/// How long an actor lookup at its owner may take.
const LOCATE_TIMEOUT: Duration = Duration::from_secs(60);

const NAME: &str = "mpi";

/// Call arguments after encoding: the encoded values (`None` for refs), the refs to hold, and
/// the refs owned here that were serialized inside the values (pinned until the call is done).
type EncodedArgs = (Vec<Option<Arc<Encoded>>>, Vec<AnyRef>, Vec<ObjectId>);

thread_local! {
    /// While call arguments are encoded: the refs owned by this process found inside them.
    static NESTED: std::cell::RefCell<Option<Vec<ObjectId>>> =
        const { std::cell::RefCell::new(None) };
}
/// Outputs of a call with their encodings.
type EncodedOutputs = Vec<(Arc<dyn ErasedValue>, Arc<Encoded>)>;

fn backend_err(message: impl Into<String>) -> Error {
    Error::backend(NAME, message)
}

fn lost(id: ObjectId) -> Error {
    backend_err(format!(
        "{id} is gone: it was freed, or the worker that held it is lost"
    ))
}

/// Every registered function, actor type and method, indexed identically on all ranks (the
/// registry check at init guarantees equal registries).
pub struct Table {
    funcs: Vec<&'static RemoteFunction>,
    classes: Vec<&'static ActorClassEntry>,
    methods: Vec<&'static ActorMethodEntry>,
    fidx: HashMap<&'static str, u32>,
    cidx: HashMap<&'static str, u32>,
    midx: HashMap<&'static str, u32>,
}

impl Table {
    fn build() -> Table {
        let r = registry::registry();
        let mut t = Table {
            funcs: Vec::new(),
            classes: Vec::new(),
            methods: Vec::new(),
            fidx: HashMap::new(),
            cidx: HashMap::new(),
            midx: HashMap::new(),
        };
        for n in r.names() {
            if let Some(f) = n.strip_prefix("fn ").and_then(|n| r.function(n)) {
                t.fidx.insert(f.name, t.funcs.len() as u32);
                t.funcs.push(f);
            } else if let Some(c) = n.strip_prefix("actor ").and_then(|n| r.class(n)) {
                t.cidx.insert(c.name, t.classes.len() as u32);
                t.classes.push(c);
            } else if let Some(m) = n.strip_prefix("method ").and_then(|n| r.method(n)) {
                t.midx.insert(m.name, t.methods.len() as u32);
                t.methods.push(m);
            }
        }
        t
    }
}

fn unregistered(what: &str, name: &str) -> Error {
    backend_err(format!(
        "{what} {name} is not registered in this binary (define it with #[unidist::remote] or \
         #[unidist::actor] in a crate the program links)"
    ))
}

#[derive(Debug, Clone, Default)]
enum St {
    #[default]
    Pending,
    Ready,
    Failed(Error),
}

#[derive(Default)]
struct Obj {
    /// Local handles (facade refs) in this process.
    local: u32,
    /// Owner: borrowers in other processes, plus permanent pins.
    remote: u32,
    /// Non-owner: registered as a borrower at the owner.
    borrowing: bool,
    /// Where the value lives (or will), if known.
    loc: Option<u32>,
    status: St,
    /// The value, if held here.
    data: Option<Payload>,
    /// Its encoding, once made.
    encoded: Option<Arc<Encoded>>,
    size: u64,
    /// Ranks this process sent the value to (freed with it).
    copies: Vec<u32>,
    /// Ranks waiting for the value (this process is its location).
    fetchers: Vec<u32>,
    /// Ranks waiting for readiness (this process is its owner).
    subscribers: Vec<u32>,
    /// A fetch for it is in flight.
    requested: bool,
    /// A readiness subscription is in flight.
    subscribed: bool,
    /// A call running or queued here will produce it.
    producing: bool,
    /// Freed while being produced: drop the value when it arrives.
    freed: bool,
    /// Calls queued here that wait for it as an argument.
    execs: Vec<u64>,
}

impl Obj {
    fn resolved(&self) -> bool {
        self.data.is_some() || matches!(self.status, St::Failed(_))
    }
}

/// A call this process submitted, until its `Done`.
struct Call {
    worker: u32,
    outputs: Vec<ObjectId>,
    /// Argument refs, kept alive until the call has run.
    _hold: Vec<AnyRef>,
    /// Refs owned here inside argument values: pinned until the call is done. The worker that
    /// decodes them registers as a borrower before it reports the call done (one ordered
    /// channel to this process), so the pin can end then.
    nested: Vec<ObjectId>,
}

enum ExecKind {
    Task(&'static RemoteFunction),
    Create(&'static ActorClassEntry),
    Call(&'static ActorMethodEntry),
}

enum ArgState {
    Ready(Payload),
    Failed(Error),
    Waiting(ObjectId),
}

/// A call received here, waiting for its arguments.
struct Exec {
    kind: ExecKind,
    actor: Option<ActorId>,
    args: Vec<ArgState>,
    missing: usize,
    outputs: Vec<ObjectId>,
    reply_to: u32,
    seq: u64,
}

impl Exec {
    fn take_args(&mut self) -> Args {
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

enum ActorSlot {
    Alive(ActorTx),
    Dead(String),
}

struct OwnedActor {
    worker: u32,
    handles: u32,
    pinned: bool,
    dead: Option<String>,
}

#[derive(Default)]
struct State {
    seq: u64,
    objs: HashMap<ObjectId, Obj>,
    calls: HashMap<u64, Call>,
    load: Vec<u32>,
    inflight: u32,
    actors_on: Vec<u32>,
    rr: usize,
    execs: HashMap<u64, Exec>,
    actor_queues: HashMap<ActorId, VecDeque<u64>>,
    actors_here: HashMap<ActorId, ActorSlot>,
    owned_actors: HashMap<ActorId, OwnedActor>,
    actor_where: HashMap<ActorId, std::result::Result<u32, String>>,
    /// Owned actors whose last handle here dropped, with the call sequence number at that
    /// moment: they end once every call submitted before it is done, unless a handle that
    /// escaped in one of those calls registered meanwhile.
    pending_ends: Vec<(ActorId, u64)>,
    stopped: bool,
    /// Ranks known to be gone, with the reason.
    lost: Vec<(u32, String)>,
    /// Threads blocked until an object changes, by the object they wait on.
    waiters: HashMap<ObjectId, Vec<Waiter>>,
    /// Threads blocked until anything changes (actor lookups).
    broad: Vec<Waiter>,
}

/// A blocked thread: its own condition variable (on the state mutex), so that an arriving
/// object wakes only the threads that wait for it, not every blocked thread of the process.
#[derive(Clone)]
struct Waiter {
    key: u64,
    cv: Arc<Condvar>,
}

/// What a blocked thread waits on.
#[derive(PartialEq, Eq)]
enum WaitKeys {
    /// Any of these objects changing.
    Objects(Vec<ObjectId>),
    /// Anything (a broad wake-up).
    Anything,
}

impl State {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn lost_reason(&self, rank: u32) -> Option<&str> {
        self.lost
            .iter()
            .find(|(r, _)| *r == rank)
            .map(|(_, why)| why.as_str())
    }
}

/// Records a call sent to worker `w` until its `Done`: its outputs, the refs it holds, and the
/// load it adds.
fn record_call(
    st: &mut State,
    seq: u64,
    w: u32,
    outputs: Vec<ObjectId>,
    hold: Vec<AnyRef>,
    nested: Vec<ObjectId>,
) {
    st.calls.insert(
        seq,
        Call {
            worker: w,
            outputs,
            _hold: hold,
            nested,
        },
    );
    st.load[w as usize] += 1;
    st.inflight += 1;
}

fn register(st: &mut State, w: &Waiter, keys: &WaitKeys) {
    match keys {
        WaitKeys::Anything => st.broad.push(w.clone()),
        WaitKeys::Objects(ids) => {
            for id in ids {
                st.waiters.entry(*id).or_default().push(w.clone());
            }
        }
    }
}

fn unregister(st: &mut State, w: &Waiter, keys: &WaitKeys) {
    match keys {
        WaitKeys::Anything => st.broad.retain(|x| x.key != w.key),
        WaitKeys::Objects(ids) => {
            for id in ids {
                if let std::collections::hash_map::Entry::Occupied(mut e) = st.waiters.entry(*id) {
                    e.get_mut().retain(|x| x.key != w.key);
                    if e.get().is_empty() {
                        e.remove();
                    }
                }
            }
        }
    }
}

fn rank_lost(rank: u32, why: &str) -> Error {
    backend_err(format!("rank {rank} was lost ({why})"))
}

enum Outgoing {
    Msg(u32, Msg),
    /// Send object `id` (held here as `payload`) to `dest` as `Data` or `Push`.
    Value {
        dest: u32,
        id: ObjectId,
        payload: Payload,
        push: bool,
    },
}

/// Work collected under the lock and done after it.
#[derive(Default)]
struct Fx {
    sends: Vec<Outgoing>,
    jobs: Vec<Job>,
    actors: Vec<(ActorId, exec::ActorRx)>,
    garbage: Vec<Box<dyn Any + Send>>,
    /// Wake every blocked thread (rare events: actors located, ranks lost, shutdown).
    notify: bool,
    /// Objects that changed: wake the threads waiting on them.
    touched: Vec<ObjectId>,
    /// The condition variables to signal once the state is unlocked.
    wake: Vec<Arc<Condvar>>,
    /// A call finished: the submission throttle may go on.
    progress: bool,
}

impl Fx {
    fn send(&mut self, dest: u32, msg: Msg) {
        self.sends.push(Outgoing::Msg(dest, msg));
    }
    fn drop_later<T: Send + 'static>(&mut self, v: T) {
        self.garbage.push(Box::new(v));
    }
    fn touch(&mut self, id: ObjectId) {
        self.touched.push(id);
    }
    /// Picks the waiters to wake for what changed (under the state lock).
    fn collect_wakeups(&mut self, st: &State) {
        if self.notify {
            for ws in st.waiters.values() {
                self.wake.extend(ws.iter().map(|w| w.cv.clone()));
            }
            self.wake.extend(st.broad.iter().map(|w| w.cv.clone()));
        } else {
            for id in self.touched.drain(..) {
                if let Some(ws) = st.waiters.get(&id) {
                    self.wake.extend(ws.iter().map(|w| w.cv.clone()));
                }
            }
        }
    }
}

/// The runtime of one process; implements [`Backend`].
pub struct Node {
    pub rank: u32,
    pub size: u32,
    ips: Vec<String>,
    out: Sender<Out>,
    st: Mutex<State>,
    cv: Condvar,
    threshold: usize,
    table: Table,
    pool: OnceLock<Arc<Pool>>,
    closed: AtomicBool,
    /// Set once a rank is lost: messages to lost ranks are then checked for in [`Node::apply`].
    any_lost: AtomicBool,
    me: Weak<Node>,
}

impl Node {
    pub fn new(
        rank: u32,
        size: u32,
        ips: Vec<String>,
        out: Sender<Out>,
        threshold: usize,
    ) -> Arc<Node> {
        Arc::new_cyclic(|me| {
            let st = State {
                load: vec![0; size as usize],
                actors_on: vec![0; size as usize],
                ..Default::default()
            };
            Node {
                rank,
                size,
                ips,
                out,
                st: Mutex::new(st),
                cv: Condvar::new(),
                threshold,
                table: Table::build(),
                pool: OnceLock::new(),
                closed: AtomicBool::new(false),
                any_lost: AtomicBool::new(false),
                me: me.clone(),
            }
        })
    }

    /// Starts the task pool (worker ranks).
    pub fn start_pool(&self, threads: usize) {
        let _ = self.pool.set(Pool::start(threads, self.me.clone()));
    }

    fn arc(&self) -> Option<Arc<Node>> {
        self.me.upgrade()
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::ShutDown)
        } else {
            Ok(())
        }
    }

    /// Sends a message through the communication thread.
    pub fn send(&self, dest: u32, msg: Msg) {
        let _ = self.out.send(Out::Msg(dest, msg));
    }

    /// Runs `f` on the state, then does the collected work.
    fn with<R>(&self, f: impl FnOnce(&mut State, &mut Fx) -> R) -> R {
        let mut fx = Fx::default();
        let r = {
            let mut st = self.st.lock();
            let r = f(&mut st, &mut fx);
            if fx.notify || !fx.touched.is_empty() {
                fx.collect_wakeups(&st);
            }
            r
        };
        self.apply(fx);
        r
    }

    fn apply(&self, fx: Fx) {
        let Fx {
            sends,
            jobs,
            actors,
            garbage,
            notify,
            touched,
            wake,
            progress,
        } = fx;
        let sends = if self.any_lost.load(Ordering::Acquire) {
            self.divert_undeliverable(sends)
        } else {
            sends
        };
        for s in sends {
            match s {
                Outgoing::Msg(d, m) => self.send(d, m),
                Outgoing::Value {
                    dest,
                    id,
                    payload,
                    push,
                } => match self.encoded(id, &payload) {
                    Ok(e) => {
                        let value = Slot::Ready(e);
                        self.send(
                            dest,
                            if push {
                                Msg::Push { id, value }
                            } else {
                                Msg::Data { id, value }
                            },
                        );
                    }
                    Err(e) => self.send(
                        dest,
                        Msg::Failed {
                            id,
                            error: WireError::from(&e),
                        },
                    ),
                },
            }
        }
        if !jobs.is_empty() {
            if let Some(pool) = self.pool.get() {
                for j in jobs {
                    pool.submit(j);
                }
            }
        }
        for (actor, rx) in actors {
            if let Some(me) = self.arc() {
                exec::spawn_actor(me, actor, rx);
            }
        }
        for cv in &wake {
            cv.notify_one();
        }
        if notify || progress || !touched.is_empty() {
            // The submission throttle waits on the shared condition variable.
            self.cv.notify_all();
        }
        drop(garbage);
    }

    /// The encoding of object `id` held here as `payload`, made once and cached.
    fn encoded(&self, id: ObjectId, payload: &Payload) -> Result<Arc<Encoded>> {
        if let Payload::Encoded(e) = payload {
            return Ok(e.clone());
        }
        if let Some(e) = self.st.lock().objs.get(&id).and_then(|o| o.encoded.clone()) {
            return Ok(e);
        }
        let e = payload.encoded(self.threshold)?;
        if let Some(o) = self.st.lock().objs.get_mut(&id) {
            o.size = e.total_len() as u64;
            o.encoded = Some(e.clone());
        }
        Ok(e)
    }

    fn encode_value(&self, v: &Arc<dyn ErasedValue>) -> Result<Arc<Encoded>> {
        Ok(Arc::new(v.encode(self.threshold)?))
    }

    // ----- scheduling --------------------------------------------------------------------

    fn workers(&self) -> std::ops::Range<u32> {
        1..self.size
    }

    /// Picks a worker: the one holding the largest big argument if it is not overloaded, else
    /// the least loaded (round robin among equals). Rank 0 never runs work.
    fn choose(&self, st: &mut State, holders: &[(u64, Vec<u32>)], actor: bool) -> Result<u32> {
        let nw = (self.size - 1) as usize;
        if st.lost.len() >= nw && nw > 0 && self.workers().all(|w| st.lost_reason(w).is_some()) {
            let (r, why) = &st.lost[0];
            return Err(backend_err(format!(
                "no worker is left to run work: every worker was lost (rank {r}: {why})"
            )));
        }
        let key = |st: &State, w: u32| {
            if st.lost_reason(w).is_some() {
                return (u32::MAX, u32::MAX);
            }
            let a = if actor { st.actors_on[w as usize] } else { 0 };
            (a, st.load[w as usize])
        };
        let min = self.workers().map(|w| key(st, w)).min().unwrap_or((0, 0));
        if !actor {
            if let Some((_, ranks)) = holders
                .iter()
                .filter(|(s, _)| *s >= LOCALITY_MIN)
                .max_by_key(|(s, _)| *s)
            {
                let best = ranks
                    .iter()
                    .copied()
                    .filter(|r| *r >= 1 && *r < self.size && st.lost_reason(*r).is_none())
                    .min_by_key(|r| st.load[*r as usize]);
                if let Some(b) = best {
                    if st.load[b as usize] <= min.1 + LOCALITY_SLACK {
                        return Ok(b);
                    }
                }
            }
        }
        if !actor {
            // Among equally loaded workers the lowest rank: a caller that waits for each task
            // keeps one worker busy while the others go idle and stop polling, which on a
            // machine with fewer cores than ranks roughly halves the round trip. Load still
            // spreads tasks as soon as several are in flight.
            if let Some(w) = self.workers().find(|w| key(st, *w) == min) {
                return Ok(w);
            }
        }
        for i in 0..nw {
            let w = 1 + ((st.rr + i) % nw) as u32;
            if key(st, w) == min {
                st.rr = (st.rr + i + 1) % nw;
                return Ok(w);
            }
        }
        Ok(1)
    }

    /// Converts call arguments: values are encoded here (outside the lock), refs are kept.
    fn encode_args(&self, args: &[Arg]) -> Result<EncodedArgs> {
        let mut enc = Vec::with_capacity(args.len());
        let mut hold = Vec::new();
        NESTED.with(|n| *n.borrow_mut() = Some(Vec::new()));
        let mut encode = || -> Result<()> {
            for a in args {
                match a {
                    Arg::Value(v) => enc.push(Some(self.encode_value(v)?)),
                    Arg::Ref(r) => {
                        r.id()?;
                        hold.push(r.clone());
                        enc.push(None);
                    }
                }
            }
            Ok(())
        };
        let r = encode();
        let nested = NESTED.with(|n| n.borrow_mut().take()).unwrap_or_default();
        if let Err(e) = r {
            self.unpin(&nested);
            return Err(e);
        }
        Ok((enc, hold, nested))
    }

    /// Ends the pins that argument encoding took on refs owned here.
    fn unpin(&self, ids: &[ObjectId]) {
        if ids.is_empty() {
            return;
        }
        self.with(|st, fx| self.unpin_locked(st, fx, ids));
    }

    fn unpin_locked(&self, st: &mut State, fx: &mut Fx, ids: &[ObjectId]) {
        for id in ids {
            if let Some(o) = st.objs.get_mut(id) {
                o.remote = o.remote.saturating_sub(1);
                self.maybe_gc(st, fx, *id);
            }
        }
    }

    /// Builds the wire arguments for a call sent to `w`, pushing put data `w` lacks.
    fn wire_args(
        &self,
        st: &mut State,
        fx: &mut Fx,
        args: &[Arg],
        enc: Vec<Option<Arc<Encoded>>>,
        w: u32,
    ) -> Vec<ArgWire> {
        let mut out = Vec::with_capacity(args.len());
        for (a, e) in args.iter().zip(enc) {
            match (a, e) {
                (_, Some(e)) => out.push(ArgWire::Value(Slot::Ready(e))),
                (Arg::Ref(r), None) => {
                    let Ok(id) = r.id() else { continue };
                    let from = match st.objs.get_mut(&id) {
                        Some(o) => {
                            if o.loc == Some(self.rank) && w != self.rank {
                                if let Some(d) = &o.data {
                                    if !o.copies.contains(&w) {
                                        o.copies.push(w);
                                        fx.sends.push(Outgoing::Value {
                                            dest: w,
                                            id,
                                            payload: d.clone(),
                                            push: true,
                                        });
                                    }
                                }
                            }
                            o.loc.unwrap_or(id.owner)
                        }
                        None => id.owner,
                    };
                    out.push(ArgWire::Ref { id, from });
                }
                (Arg::Value(_), None) => {}
            }
        }
        out
    }

    fn holders(&self, st: &State, args: &[Arg]) -> Vec<(u64, Vec<u32>)> {
        args.iter()
            .filter_map(|a| match a {
                Arg::Ref(r) => r.id().ok(),
                Arg::Value(_) => None,
            })
            .filter_map(|id| st.objs.get(&id).map(|o| (o, id)))
            .filter(|(o, _)| o.size >= LOCALITY_MIN)
            .map(|(o, _)| {
                let mut ranks = o.copies.clone();
                ranks.extend(o.loc);
                (o.size, ranks)
            })
            .collect()
    }

    /// Rank 0 waits while too much of its work is unfinished, so that a loop submitting
    /// millions of tasks keeps memory bounded on every rank.
    fn throttle(&self) {
        if self.rank != 0 || self.size < 2 {
            return;
        }
        let cap = INFLIGHT_PER_WORKER * (self.size - 1);
        let mut st = self.st.lock();
        while st.inflight >= cap && !st.stopped {
            self.cv.wait_for(&mut st, Duration::from_millis(100));
        }
    }

    fn new_outputs(&self, st: &mut State, n: usize, w: u32) -> Vec<ObjectId> {
        (0..n)
            .map(|_| {
                let id = ObjectId::new(self.rank, st.next());
                st.objs.insert(
                    id,
                    Obj {
                        local: 1,
                        loc: Some(w),
                        ..Default::default()
                    },
                );
                id
            })
            .collect()
    }

    // ----- incoming messages ------------------------------------------------------------

    /// Handles one message from rank `src` (on the communication thread).
    pub fn handle(&self, src: u32, msg: Msg) {
        tracing::trace!(src, ?msg, "handle");
        match msg {
            Msg::Task {
                seq,
                func,
                args,
                outputs,
            } => {
                let Some(f) = self.table.funcs.get(func as usize).copied() else {
                    return self.reject(src, seq, &outputs, "function index out of range");
                };
                self.with(|st, fx| {
                    self.receive_exec(st, fx, src, ExecKind::Task(f), None, args, outputs, seq)
                });
            }
            Msg::ActorCreate {
                actor,
                class,
                args,
                seq,
            } => {
                let Some(c) = self.table.classes.get(class as usize).copied() else {
                    return self.reject(src, seq, &[], "actor class index out of range");
                };
                self.with(|st, fx| {
                    self.receive_exec(
                        st,
                        fx,
                        src,
                        ExecKind::Create(c),
                        Some(actor),
                        args,
                        Vec::new(),
                        seq,
                    )
                });
            }
            Msg::ActorCall {
                actor,
                method,
                args,
                outputs,
                seq,
            } => {
                let Some(m) = self.table.methods.get(method as usize).copied() else {
                    return self.reject(src, seq, &outputs, "actor method index out of range");
                };
                self.with(|st, fx| {
                    self.receive_exec(
                        st,
                        fx,
                        src,
                        ExecKind::Call(m),
                        Some(actor),
                        args,
                        outputs,
                        seq,
                    )
                });
            }
            Msg::ActorKill { actor, now } => self.with(|st, fx| self.kill_here(st, fx, actor, now)),
            Msg::ActorLocate { actor } => self.with(|st, fx| {
                let worker = match st.owned_actors.get(&actor) {
                    Some(a) => match &a.dead {
                        None => Ok(a.worker),
                        Some(r) => Err(r.clone()),
                    },
                    None => Err("all its handles were dropped".into()),
                };
                fx.send(src, Msg::ActorWhere { actor, worker });
            }),
            Msg::ActorWhere { actor, worker } => self.with(|st, fx| {
                st.actor_where.insert(actor, worker);
                fx.notify = true;
            }),
            Msg::ActorPin { actor } => self.with(|st, _| {
                if let Some(a) = st.owned_actors.get_mut(&actor) {
                    a.pinned = true;
                }
            }),
            Msg::Done { seq, results } => self.with(|st, fx| self.done(st, fx, src, seq, results)),
            Msg::Push { .. } | Msg::Data { .. } => {
                let (id, value, push) = match msg {
                    Msg::Push { id, value } => (id, value, true),
                    Msg::Data { id, value } => (id, value, false),
                    _ => unreachable!("matched above"),
                };
                let Some(e) = value.ready().cloned() else {
                    return;
                };
                self.with(|st, fx| {
                    // A push arrives ahead of the call that needs it, so there is usually no
                    // entry yet: it makes one (the sender recorded this rank as a copy and frees
                    // it later, after the push on the same ordered channel). Only the owner
                    // ignores an unknown id: it was freed. `Data` answers a fetch, whose entry
                    // is gone if nobody waits any more.
                    let o = if push && id.owner != self.rank {
                        st.objs.entry(id).or_default()
                    } else {
                        let Some(o) = st.objs.get_mut(&id) else {
                            return;
                        };
                        o
                    };
                    if o.data.is_none() {
                        o.data = Some(Payload::Encoded(e.clone()));
                        o.size = e.total_len() as u64;
                        o.encoded = Some(e);
                    }
                    o.status = St::Ready;
                    o.requested = false;
                    if o.loc.is_none() {
                        o.loc = Some(src);
                    }
                    self.wake_execs(st, fx, id);
                    fx.touch(id);
                });
            }
            Msg::Failed { id, error } => self.with(|st, fx| {
                let Some(o) = st.objs.get_mut(&id) else {
                    return;
                };
                o.status = St::Failed(error.into());
                o.requested = false;
                self.wake_execs(st, fx, id);
                fx.touch(id);
            }),
            Msg::Fetch { id, requester } => self.with(|st, fx| self.fetch(st, fx, id, requester)),
            Msg::Subscribe { id } => self.with(|st, fx| match st.objs.get_mut(&id) {
                None => fx.send(
                    src,
                    Msg::Ready {
                        id,
                        loc: 0,
                        error: Some(WireError::from(&lost(id))),
                    },
                ),
                Some(o) => match &o.status {
                    St::Pending if o.data.is_none() => o.subscribers.push(src),
                    St::Failed(e) => fx.send(
                        src,
                        Msg::Ready {
                            id,
                            loc: 0,
                            error: Some(WireError::from(e)),
                        },
                    ),
                    _ => fx.send(
                        src,
                        Msg::Ready {
                            id,
                            loc: o.loc.unwrap_or(self.rank),
                            error: None,
                        },
                    ),
                },
            }),
            Msg::Ready { id, loc, error } => self.with(|st, fx| {
                let Some(o) = st.objs.get_mut(&id) else {
                    return;
                };
                o.subscribed = false;
                match error {
                    Some(e) => o.status = St::Failed(e.into()),
                    None => {
                        if matches!(o.status, St::Pending) {
                            o.status = St::Ready;
                        }
                        o.loc = Some(loc);
                    }
                }
                fx.touch(id);
            }),
            Msg::Free { ids } => self.with(|st, fx| {
                for id in ids {
                    self.free_here(st, fx, id);
                }
            }),
            Msg::Borrow { id, delta } => self.with(|st, fx| {
                if let Some(o) = st.objs.get_mut(&id) {
                    o.remote = o.remote.saturating_add_signed(delta);
                    self.maybe_gc(st, fx, id);
                }
            }),
            Msg::PeerLost { rank, why } => self.peer_lost(rank, &why),
            Msg::Shutdown
            | Msg::ShutdownAck
            | Msg::Finalize
            | Msg::RawBench { .. }
            | Msg::Alive => {}
        }
    }

    fn reject(&self, src: u32, seq: u64, outputs: &[ObjectId], why: &str) {
        let e = WireError::from(&backend_err(format!(
            "{why}: the ranks run different binaries"
        )));
        self.send(
            src,
            Msg::Done {
                seq,
                results: outputs.iter().map(|_| Err(e.clone())).collect(),
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn receive_exec(
        &self,
        st: &mut State,
        fx: &mut Fx,
        src: u32,
        kind: ExecKind,
        actor: Option<ActorId>,
        args: Vec<ArgWire>,
        outputs: Vec<ObjectId>,
        seq: u64,
    ) {
        let xid = st.next();
        for id in &outputs {
            let o = st.objs.entry(*id).or_default();
            o.producing = true;
            o.loc = Some(self.rank);
        }
        let mut states = Vec::with_capacity(args.len());
        let mut missing = 0;
        for a in args {
            match a {
                ArgWire::Value(s) => match s.ready() {
                    Some(e) => states.push(ArgState::Ready(Payload::Encoded(e.clone()))),
                    None => states.push(ArgState::Failed(backend_err(
                        "an argument arrived incomplete",
                    ))),
                },
                ArgWire::Ref { id, from } => {
                    let o = st.objs.entry(id).or_default();
                    if let Some(d) = &o.data {
                        states.push(ArgState::Ready(d.clone()));
                    } else if let St::Failed(e) = &o.status {
                        states.push(ArgState::Failed(e.clone()));
                    } else {
                        o.execs.push(xid);
                        missing += 1;
                        states.push(ArgState::Waiting(id));
                        if !o.producing && !o.requested {
                            o.requested = true;
                            let to = o.loc.filter(|l| *l != self.rank).unwrap_or(from);
                            fx.send(
                                to,
                                Msg::Fetch {
                                    id,
                                    requester: self.rank,
                                },
                            );
                        }
                    }
                }
            }
        }
        if let Some(a) = actor {
            // Creation goes first: a call from another process can arrive before it (MPI
            // orders messages per sender only), and then waits in the queue.
            let q = st.actor_queues.entry(a).or_default();
            if matches!(kind, ExecKind::Create(_)) {
                q.push_front(xid);
            } else {
                q.push_back(xid);
            }
        }
        st.execs.insert(
            xid,
            Exec {
                kind,
                actor,
                args: states,
                missing,
                outputs,
                reply_to: src,
                seq,
            },
        );
        if missing == 0 {
            self.exec_ready(st, fx, xid);
        }
    }

    fn wake_execs(&self, st: &mut State, fx: &mut Fx, id: ObjectId) {
        let Some(o) = st.objs.get_mut(&id) else {
            return;
        };
        if o.execs.is_empty() {
            return;
        }
        let state = match (&o.data, &o.status) {
            (Some(d), _) => ArgState::Ready(d.clone()),
            (None, St::Failed(e)) => ArgState::Failed(e.clone()),
            _ => return,
        };
        let waiting = std::mem::take(&mut o.execs);
        for xid in waiting {
            let Some(x) = st.execs.get_mut(&xid) else {
                continue;
            };
            for a in x.args.iter_mut() {
                if matches!(a, ArgState::Waiting(w) if *w == id) {
                    *a = match &state {
                        ArgState::Ready(p) => ArgState::Ready(p.clone()),
                        ArgState::Failed(e) => ArgState::Failed(e.clone()),
                        ArgState::Waiting(w) => ArgState::Waiting(*w),
                    };
                    x.missing -= 1;
                }
            }
            if x.missing == 0 {
                self.exec_ready(st, fx, xid);
            }
        }
        self.maybe_gc(st, fx, id);
    }

    fn exec_ready(&self, st: &mut State, fx: &mut Fx, xid: u64) {
        let actor = match st.execs.get(&xid) {
            Some(x) => x.actor,
            None => return,
        };
        match actor {
            None => {
                let Some(mut x) = st.execs.remove(&xid) else {
                    return;
                };
                let ExecKind::Task(func) = x.kind else { return };
                if st.stopped {
                    return;
                }
                let args = x.take_args();
                fx.jobs.push(Job {
                    func,
                    args,
                    outputs: std::mem::take(&mut x.outputs),
                    reply_to: x.reply_to,
                    seq: x.seq,
                });
            }
            Some(a) => self.flush_actor(st, fx, a),
        }
    }

    /// Hands the ready calls at the front of an actor's queue to its thread, in arrival order.
    fn flush_actor(&self, st: &mut State, fx: &mut Fx, a: ActorId) {
        loop {
            let Some(q) = st.actor_queues.get_mut(&a) else {
                return;
            };
            let Some(&xid) = q.front() else {
                st.actor_queues.remove(&a);
                return;
            };
            match st.execs.get(&xid) {
                None => {}
                Some(x) if x.missing > 0 => return,
                Some(x)
                    if matches!(x.kind, ExecKind::Call(_)) && !st.actors_here.contains_key(&a) =>
                {
                    return
                }
                Some(_) => {}
            }
            q.pop_front();
            let Some(mut x) = st.execs.remove(&xid) else {
                continue;
            };
            let args = x.take_args();
            let outputs = std::mem::take(&mut x.outputs);
            match x.kind {
                ExecKind::Create(class) => {
                    if st.actors_here.contains_key(&a) {
                        continue;
                    }
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    let _ = tx.send(ActorCmd::Create { class, args });
                    st.actors_here.insert(a, ActorSlot::Alive(tx));
                    fx.actors.push((a, rx));
                    fx.send(
                        x.reply_to,
                        Msg::Done {
                            seq: x.seq,
                            results: Vec::new(),
                        },
                    );
                }
                ExecKind::Call(method) => {
                    let cmd = ActorCmd::Call {
                        method,
                        args,
                        outputs,
                        reply_to: x.reply_to,
                        seq: x.seq,
                    };
                    let failed = match st.actors_here.get(&a) {
                        Some(ActorSlot::Alive(tx)) => {
                            tx.send(cmd).err().map(|e| (e.0, "it stopped".to_string()))
                        }
                        Some(ActorSlot::Dead(r)) => Some((cmd, r.clone())),
                        None => Some((cmd, "it was never created here".to_string())),
                    };
                    if let Some((
                        ActorCmd::Call {
                            method,
                            outputs,
                            reply_to,
                            seq,
                            ..
                        },
                        reason,
                    )) = failed
                    {
                        let err = Error::ActorDead {
                            actor: format!("{}#{a}", method.class),
                            reason,
                        };
                        self.complete_locked(st, fx, &outputs, Err(err), reply_to, seq);
                    }
                }
                ExecKind::Task(_) => {}
            }
        }
    }

    fn kill_here(&self, st: &mut State, fx: &mut Fx, actor: ActorId, now: bool) {
        let reason = if now {
            "it was killed"
        } else {
            "all its handles were dropped"
        };
        match st.actors_here.insert(actor, ActorSlot::Dead(reason.into())) {
            Some(ActorSlot::Alive(tx)) => {
                let _ = tx.send(ActorCmd::Stop { now });
            }
            Some(ActorSlot::Dead(r)) => {
                st.actors_here.insert(actor, ActorSlot::Dead(r));
            }
            None => {}
        }
        // Calls still waiting for arguments fail now.
        if now {
            if let Some(q) = st.actor_queues.remove(&actor) {
                for xid in q {
                    if let Some(x) = st.execs.remove(&xid) {
                        if let ExecKind::Call(m) = x.kind {
                            let err = Error::ActorDead {
                                actor: format!("{}#{actor}", m.class),
                                reason: reason.into(),
                            };
                            self.complete_locked(st, fx, &x.outputs, Err(err), x.reply_to, x.seq);
                        }
                    }
                }
            }
        }
    }

    /// The thread of an actor living here ended.
    pub fn actor_ended(&self, actor: ActorId) {
        tracing::debug!(%actor, "actor thread ended");
    }

    /// Ends owned actors whose handles are all gone, once no call that could carry a copy of a
    /// handle (every call submitted before the last handle dropped) is still unfinished. A
    /// process that deserializes a handle pins the actor before that call reports done (one
    /// sender, ordered messages), so a handle passed into a task keeps its actor alive.
    fn end_released_actors(&self, st: &mut State, fx: &mut Fx) {
        if st.pending_ends.is_empty() {
            return;
        }
        let oldest = st.calls.keys().min().copied();
        let pending = std::mem::take(&mut st.pending_ends);
        for (actor, seq) in pending {
            let Some(a) = st.owned_actors.get(&actor) else {
                continue;
            };
            if a.handles > 0 || a.pinned {
                continue;
            }
            if oldest.is_some_and(|o| o <= seq) {
                st.pending_ends.push((actor, seq));
                continue;
            }
            let (w, alive) = (a.worker, a.dead.is_none());
            st.owned_actors.remove(&actor);
            st.actors_on[w as usize] = st.actors_on[w as usize].saturating_sub(1);
            if alive {
                fx.send(w, Msg::ActorKill { actor, now: false });
            }
        }
    }

    fn fetch(&self, st: &mut State, fx: &mut Fx, id: ObjectId, requester: u32) {
        if id.owner == self.rank && !st.objs.contains_key(&id) {
            fx.send(
                requester,
                Msg::Failed {
                    id,
                    error: WireError::from(&lost(id)),
                },
            );
            return;
        }
        // Elsewhere an unknown id is parked: the call producing it here may still be on its way
        // from the owner (MPI orders messages per sender only).
        let o = st.objs.entry(id).or_default();
        if let Some(d) = &o.data {
            if !o.copies.contains(&requester) && requester != self.rank {
                o.copies.push(requester);
            }
            fx.sends.push(Outgoing::Value {
                dest: requester,
                id,
                payload: d.clone(),
                push: false,
            });
        } else if let St::Failed(e) = &o.status {
            fx.send(
                requester,
                Msg::Failed {
                    id,
                    error: WireError::from(e),
                },
            );
        } else if o.producing {
            o.fetchers.push(requester);
        } else if let Some(l) = o.loc.filter(|l| *l != self.rank) {
            fx.send(l, Msg::Fetch { id, requester });
        } else {
            o.fetchers.push(requester);
        }
    }

    fn done(&self, st: &mut State, fx: &mut Fx, src: u32, seq: u64, results: Vec<OutResult>) {
        let Some(call) = st.calls.remove(&seq) else {
            return;
        };
        st.load[call.worker as usize] = st.load[call.worker as usize].saturating_sub(1);
        st.inflight = st.inflight.saturating_sub(1);
        for (id, r) in call.outputs.iter().zip(results) {
            let Some(o) = st.objs.get_mut(id) else {
                continue;
            };
            o.loc = Some(src);
            let err = match r {
                Ok(size) => {
                    o.size = size;
                    if matches!(o.status, St::Pending) {
                        o.status = St::Ready;
                    }
                    None
                }
                Err(e) => {
                    let e: Error = e.into();
                    o.status = St::Failed(e.clone());
                    Some(WireError::from(&e))
                }
            };
            for s in std::mem::take(&mut o.subscribers) {
                fx.send(
                    s,
                    Msg::Ready {
                        id: *id,
                        loc: src,
                        error: err.clone(),
                    },
                );
            }
            if err.is_some() {
                self.wake_execs(st, fx, *id);
            }
        }
        fx.touched.extend(call.outputs.iter().copied());
        fx.progress = true;
        self.unpin_locked(st, fx, &call.nested);
        fx.drop_later(call);
        self.end_released_actors(st, fx);
    }

    fn free_here(&self, st: &mut State, fx: &mut Fx, id: ObjectId) {
        let Some(o) = st.objs.get_mut(&id) else {
            return;
        };
        if o.producing {
            o.freed = true;
            return;
        }
        if let Some(d) = o.data.take() {
            fx.drop_later(d);
        }
        if let Some(e) = o.encoded.take() {
            fx.drop_later(e);
        }
        for c in std::mem::take(&mut o.copies) {
            if c != self.rank {
                fx.send(c, Msg::Free { ids: vec![id] });
            }
        }
        if o.local == 0 && o.execs.is_empty() && o.fetchers.is_empty() && !o.requested {
            st.objs.remove(&id);
        }
    }

    /// Frees or forgets an object nobody references any more.
    fn maybe_gc(&self, st: &mut State, fx: &mut Fx, id: ObjectId) {
        let Some(o) = st.objs.get_mut(&id) else {
            return;
        };
        if o.local > 0 || !o.execs.is_empty() {
            return;
        }
        if id.owner == self.rank {
            if o.remote > 0 || !o.fetchers.is_empty() || !o.subscribers.is_empty() {
                return;
            }
            let loc = o.loc;
            if let Some(d) = o.data.take() {
                fx.drop_later(d);
            }
            if let Some(e) = o.encoded.take() {
                fx.drop_later(e);
            }
            for c in std::mem::take(&mut o.copies) {
                if c != self.rank {
                    fx.send(c, Msg::Free { ids: vec![id] });
                }
            }
            if let Some(l) = loc.filter(|l| *l != self.rank) {
                fx.send(l, Msg::Free { ids: vec![id] });
            }
            if o.producing {
                o.freed = true;
            } else {
                st.objs.remove(&id);
            }
        } else {
            if o.borrowing {
                o.borrowing = false;
                fx.send(id.owner, Msg::Borrow { id, delta: -1 });
            }
            // The location keeps its entry (value or failure) until the owner frees it.
            let location = o.loc == Some(self.rank);
            if !location
                && o.data.is_none()
                && !o.producing
                && o.fetchers.is_empty()
                && !o.requested
                && !o.subscribed
            {
                st.objs.remove(&id);
            }
        }
    }

    /// Stores the result of a call that ran here and reports it to `reply_to`.
    pub fn complete(
        &self,
        outputs: &[ObjectId],
        result: Result<unidist_core::Outputs>,
        reply_to: u32,
        seq: u64,
    ) {
        // Encode outside the lock: it gives sizes for scheduling and lets fetches be served
        // without encoding on the communication thread.
        let result = result.and_then(|vals| {
            vals.into_iter()
                .map(|v| {
                    let e = self.encode_value(&v)?;
                    Ok((v, e))
                })
                .collect::<Result<Vec<_>>>()
        });
        self.with(|st, fx| self.complete_locked_enc(st, fx, outputs, result, reply_to, seq));
    }

    fn complete_locked(
        &self,
        st: &mut State,
        fx: &mut Fx,
        outputs: &[ObjectId],
        result: Result<unidist_core::Outputs>,
        reply_to: u32,
        seq: u64,
    ) {
        // Only used for failures decided under the lock; nothing to encode.
        let r = result.map(|v| {
            v.into_iter()
                .map(|x| (x, Arc::new(Encoded::default())))
                .collect()
        });
        self.complete_locked_enc(st, fx, outputs, r, reply_to, seq)
    }

    fn complete_locked_enc(
        &self,
        st: &mut State,
        fx: &mut Fx,
        outputs: &[ObjectId],
        result: Result<EncodedOutputs>,
        reply_to: u32,
        seq: u64,
    ) {
        let mut results: Vec<OutResult> = Vec::with_capacity(outputs.len());
        let mut vals = match result {
            Ok(v) => Some(v.into_iter()),
            Err(e) => {
                let w = WireError::from(&e);
                for id in outputs {
                    results.push(Err(w.clone()));
                    self.store_output(st, fx, *id, Err(e.clone()));
                }
                None
            }
        };
        if let Some(vals) = vals.as_mut() {
            for id in outputs {
                match vals.next() {
                    Some((v, e)) => {
                        results.push(Ok(e.total_len() as u64));
                        // A small result goes to its owner with the completion (one message),
                        // so that the owner's `get` needs no fetch round trip. The value stays
                        // here too, where other workers fetch it.
                        let small = e.buffers.is_empty() && e.inline.len() <= INLINE_RESULT_MAX;
                        if small
                            && reply_to != self.rank
                            && id.owner == reply_to
                            && !st
                                .objs
                                .get(id)
                                .is_some_and(|o| o.fetchers.contains(&reply_to))
                        {
                            fx.send(
                                reply_to,
                                Msg::Data {
                                    id: *id,
                                    value: Slot::Ready(e.clone()),
                                },
                            );
                        }
                        self.store_output(st, fx, *id, Ok((v, e)));
                    }
                    None => {
                        let e = backend_err("a call returned fewer values than declared");
                        results.push(Err(WireError::from(&e)));
                        self.store_output(st, fx, *id, Err(e));
                    }
                }
            }
        }
        fx.send(reply_to, Msg::Done { seq, results });
        fx.touched.extend(outputs.iter().copied());
    }

    fn store_output(
        &self,
        st: &mut State,
        fx: &mut Fx,
        id: ObjectId,
        r: Result<(Arc<dyn ErasedValue>, Arc<Encoded>)>,
    ) {
        let Some(o) = st.objs.get_mut(&id) else {
            if let Ok(v) = r {
                fx.drop_later(v);
            }
            return;
        };
        o.producing = false;
        if o.freed {
            if let Ok(v) = r {
                fx.drop_later(v);
            }
            st.objs.remove(&id);
            return;
        }
        o.loc = Some(self.rank);
        match r {
            Ok((v, e)) => {
                o.size = e.total_len() as u64;
                o.data = Some(Payload::Local(v));
                if !e.inline.is_empty() {
                    o.encoded = Some(e);
                }
                o.status = St::Ready;
                let d = o.data.clone();
                for f in std::mem::take(&mut o.fetchers) {
                    if f != self.rank && !o.copies.contains(&f) {
                        o.copies.push(f);
                    }
                    if let Some(d) = &d {
                        fx.sends.push(Outgoing::Value {
                            dest: f,
                            id,
                            payload: d.clone(),
                            push: false,
                        });
                    }
                }
            }
            Err(e) => {
                o.status = St::Failed(e.clone());
                for f in std::mem::take(&mut o.fetchers) {
                    fx.send(
                        f,
                        Msg::Failed {
                            id,
                            error: WireError::from(&e),
                        },
                    );
                }
            }
        }
        self.wake_execs(st, fx, id);
        self.maybe_gc(st, fx, id);
    }

    /// Rank `rank` is gone: what only it could deliver fails (calls it ran, objects it held or
    /// owned without a known location elsewhere, actors living there), and no new work goes
    /// to it. Copies already received elsewhere stay usable.
    pub fn peer_lost(&self, rank: u32, why: &str) {
        self.any_lost.store(true, Ordering::Release);
        self.with(|st, fx| {
            if st.lost_reason(rank).is_some() {
                return;
            }
            st.lost.push((rank, why.to_string()));
            let err = rank_lost(rank, why);
            let wire = WireError::from(&err);
            let seqs: Vec<u64> = st
                .calls
                .iter()
                .filter(|(_, c)| c.worker == rank)
                .map(|(s, _)| *s)
                .collect();
            for seq in seqs {
                let n = st.calls.get(&seq).map_or(0, |c| c.outputs.len());
                self.done(st, fx, rank, seq, vec![Err(wire.clone()); n]);
            }
            let me = self.rank;
            let ids: Vec<ObjectId> = st
                .objs
                .iter()
                .filter(|(id, o)| {
                    o.data.is_none()
                        && !o.producing
                        && !matches!(o.status, St::Failed(_))
                        && o.loc
                            .filter(|l| *l != me)
                            .map_or(id.owner == rank, |l| l == rank)
                })
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                self.fail_object(st, fx, id, &err);
            }
            for o in st.objs.values_mut() {
                o.fetchers.retain(|r| *r != rank);
                o.subscribers.retain(|r| *r != rank);
                o.copies.retain(|r| *r != rank);
            }
            let reason = format!("its worker rank {rank} was lost ({why})");
            for a in st.owned_actors.values_mut() {
                if a.worker == rank && a.dead.is_none() {
                    a.dead = Some(reason.clone());
                }
            }
            for w in st.actor_where.values_mut() {
                if matches!(w, Ok(r) if *r == rank) {
                    *w = Err(reason.clone());
                }
            }
            fx.notify = true;
        });
    }

    /// Marks object `id` failed with `err`, telling its subscribers and waiting calls.
    fn fail_object(&self, st: &mut State, fx: &mut Fx, id: ObjectId, err: &Error) {
        let Some(o) = st.objs.get_mut(&id) else {
            return;
        };
        o.status = St::Failed(err.clone());
        o.requested = false;
        o.subscribed = false;
        for s in std::mem::take(&mut o.subscribers) {
            fx.send(
                s,
                Msg::Ready {
                    id,
                    loc: 0,
                    error: Some(WireError::from(err)),
                },
            );
        }
        for r in std::mem::take(&mut o.fetchers) {
            fx.send(
                r,
                Msg::Failed {
                    id,
                    error: WireError::from(err),
                },
            );
        }
        self.wake_execs(st, fx, id);
        fx.touch(id);
    }

    /// Takes out the messages addressed to lost ranks and settles what waited on them.
    fn divert_undeliverable(&self, sends: Vec<Outgoing>) -> Vec<Outgoing> {
        let mut keep = Vec::with_capacity(sends.len());
        let mut undeliverable = Vec::new();
        {
            let st = self.st.lock();
            for s in sends {
                let dest = match &s {
                    Outgoing::Msg(d, _) => *d,
                    Outgoing::Value { dest, .. } => *dest,
                };
                match (st.lost_reason(dest), s) {
                    (Some(why), Outgoing::Msg(d, m)) => {
                        undeliverable.push((d, why.to_string(), m));
                    }
                    (Some(_), Outgoing::Value { .. }) => {}
                    (None, s) => keep.push(s),
                }
            }
        }
        if !undeliverable.is_empty() {
            self.with(|st, fx| {
                for (d, why, m) in undeliverable {
                    let err = rank_lost(d, &why);
                    match m {
                        Msg::Fetch { id, requester } if requester == self.rank => {
                            self.fail_object(st, fx, id, &err)
                        }
                        Msg::Fetch { id, requester } => fx.send(
                            requester,
                            Msg::Failed {
                                id,
                                error: WireError::from(&err),
                            },
                        ),
                        Msg::Subscribe { id } => self.fail_object(st, fx, id, &err),
                        Msg::ActorLocate { actor } => {
                            st.actor_where
                                .insert(actor, Err(format!("its owner rank {d} was lost ({why})")));
                            fx.notify = true;
                        }
                        Msg::Task { seq, outputs, .. } | Msg::ActorCall { seq, outputs, .. } => {
                            let e = WireError::from(&err);
                            self.done(st, fx, d, seq, vec![Err(e); outputs.len()]);
                        }
                        Msg::ActorCreate { seq, .. } => self.done(st, fx, d, seq, Vec::new()),
                        _ => {}
                    }
                }
            });
        }
        keep
    }

    /// Stops running new work (shutdown): queued calls are dropped, actors end.
    pub fn stop_work(&self) {
        self.closed.store(true, Ordering::Release);
        self.with(|st, fx| {
            st.stopped = true;
            let actors: Vec<ActorId> = st.actors_here.keys().copied().collect();
            for a in actors {
                if let Some(ActorSlot::Alive(tx)) = st
                    .actors_here
                    .insert(a, ActorSlot::Dead("shut down".into()))
                {
                    let _ = tx.send(ActorCmd::Stop { now: true });
                }
            }
            let execs: Vec<Exec> = st.execs.drain().map(|(_, x)| x).collect();
            fx.drop_later(execs);
            fx.notify = true;
        });
    }

    // ----- waiting ------------------------------------------------------------------------

    /// Blocks (lending a pool slot) until `ready` holds or the deadline passes; `kick` runs under
    /// the lock first and on every wake-up, to send requests.
    ///
    /// The thread sleeps on its own condition variable, registered under what `keys` names, so
    /// that an arriving object wakes only its waiters (with hundreds of tasks blocked in nested
    /// `get`, waking them all on every arrival cost more than the work). It also wakes every
    /// 200 ms to re-check, so a change that named no object is never missed for long.
    fn block_until(
        &self,
        deadline: Option<Instant>,
        mut kick: impl FnMut(&mut State, &mut Fx),
        mut ready: impl FnMut(&State) -> bool,
        mut keys: impl FnMut(&State) -> WaitKeys,
    ) -> bool {
        let mut fx = Fx::default();
        let mut st = self.st.lock();
        kick(&mut st, &mut fx);
        if ready(&st) {
            drop(st);
            self.apply(fx);
            return true;
        }
        MutexGuard::unlocked(&mut st, || self.apply(std::mem::take(&mut fx)));
        // Rank 0's caller polls briefly before it sleeps: a short task's result then arrives
        // without a thread wake-up, which is most of a synchronous round trip's cost.
        if self.rank == 0 {
            let spin_until = Instant::now() + GET_SPIN;
            while Instant::now() < spin_until && deadline.is_none_or(|d| Instant::now() < d) {
                MutexGuard::unlocked(&mut st, std::thread::yield_now);
                if ready(&st) {
                    return true;
                }
            }
        }
        let me = Waiter {
            key: st.next(),
            cv: Arc::new(Condvar::new()),
        };
        let mut registered: Option<WaitKeys> = None;
        let done = exec::blocking(|| loop {
            if ready(&st) {
                return true;
            }
            if self.closed.load(Ordering::Acquire) && self.rank != 0 {
                return false;
            }
            let k = keys(&st);
            if registered.as_ref() != Some(&k) {
                if let Some(old) = registered.take() {
                    unregister(&mut st, &me, &old);
                }
                register(&mut st, &me, &k);
                registered = Some(k);
            }
            let safety = Instant::now() + Duration::from_millis(200);
            let until = deadline.map_or(safety, |d| d.min(safety));
            me.cv.wait_until(&mut st, until);
            let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
            kick(&mut st, &mut fx);
            if !fx.sends.is_empty() {
                MutexGuard::unlocked(&mut st, || self.apply(std::mem::take(&mut fx)));
            }
            if timed_out {
                return ready(&st);
            }
        });
        if let Some(old) = registered {
            unregister(&mut st, &me, &old);
        }
        done
    }

    /// Requests the data of `id` if it is neither here nor requested.
    fn request(&self, st: &mut State, fx: &mut Fx, id: ObjectId) {
        let me = self.rank;
        let o = st.objs.entry(id).or_default();
        if o.resolved() || o.requested || o.producing {
            return;
        }
        o.requested = true;
        let to = o.loc.filter(|l| *l != me).unwrap_or(id.owner);
        if to == me {
            // Owned here, location unknown: it is pending a `Done` that will set it.
            o.requested = false;
            return;
        }
        fx.send(to, Msg::Fetch { id, requester: me });
    }

    fn locate_actor(&self, actor: ActorId) -> Result<u32> {
        if actor.owner == self.rank {
            let st = self.st.lock();
            return match st.owned_actors.get(&actor) {
                Some(a) => match &a.dead {
                    None => Ok(a.worker),
                    Some(r) => Err(Error::ActorDead {
                        actor: actor.to_string(),
                        reason: r.clone(),
                    }),
                },
                None => Err(Error::ActorDead {
                    actor: actor.to_string(),
                    reason: "all its handles were dropped".into(),
                }),
            };
        }
        if let Some(why) = self.st.lock().lost_reason(actor.owner) {
            return Err(Error::ActorDead {
                actor: actor.to_string(),
                reason: format!("its owner rank {} was lost ({why})", actor.owner),
            });
        }
        let mut asked = false;
        let found = self.block_until(
            Some(Instant::now() + LOCATE_TIMEOUT),
            |st, fx| {
                if !asked && !st.actor_where.contains_key(&actor) {
                    asked = true;
                    fx.send(actor.owner, Msg::ActorLocate { actor });
                }
            },
            |st| st.actor_where.contains_key(&actor),
            |_| WaitKeys::Anything,
        );
        if !found {
            return Err(backend_err(format!(
                "the owner of actor {actor} did not answer where it lives"
            )));
        }
        match self.st.lock().actor_where.get(&actor) {
            Some(Ok(w)) => Ok(*w),
            Some(Err(r)) => Err(Error::ActorDead {
                actor: actor.to_string(),
                reason: r.clone(),
            }),
            None => Err(backend_err("actor lookup lost")),
        }
    }

    /// Measures the raw rsmpi floors with rank 1 (rank 0 only).
    pub fn raw_bench(&self, iters: u32, bytes: u64) -> Result<(f64, f64)> {
        if self.rank != 0 || self.size < 2 {
            return Err(backend_err(
                "the raw benchmark runs on rank 0 with at least 2 ranks",
            ));
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let _ = self.out.send(Out::RawBench {
            iters,
            bytes,
            reply: tx,
        });
        rx.recv()
            .map_err(|_| backend_err("the communication thread ended"))
    }

    /// Asks the communication thread to shut the job down and waits for it.
    fn shutdown_job(&self) -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.out.send(Out::Shutdown(tx)).is_err() {
            return Ok(());
        }
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(r) => r,
            Err(_) => Err(backend_err("shutdown did not finish within 60 s")),
        }
    }
}

impl Backend for Node {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> unidist_core::Capabilities {
        // Workers are other MPI processes, and MPI cannot be initialized twice in a process.
        unidist_core::Capabilities::new()
            .separate_processes(true)
            .restartable(false)
    }

    fn put(&self, value: Arc<dyn ErasedValue>) -> Result<ObjectId> {
        self.check_open()?;
        // Encoded at once: it is the snapshot pushed to workers and gives the size.
        let e = self.encode_value(&value)?;
        Ok(self.with(|st, _| {
            let id = ObjectId::new(self.rank, st.next());
            st.objs.insert(
                id,
                Obj {
                    local: 1,
                    loc: Some(self.rank),
                    status: St::Ready,
                    size: e.total_len() as u64,
                    data: Some(Payload::Local(value)),
                    encoded: Some(e),
                    ..Default::default()
                },
            );
            id
        }))
    }

    fn submit(&self, task: TaskSpec) -> Result<Vec<ObjectId>> {
        self.check_open()?;
        let func = *self
            .table
            .fidx
            .get(task.function.name)
            .ok_or_else(|| unregistered("function", task.function.name))?;
        let (enc, hold, nested) = self.encode_args(&task.args)?;
        self.throttle();
        self.with(|st, fx| {
            let holders = self.holders(st, &task.args);
            let w = self.choose(st, &holders, false)?;
            let args = self.wire_args(st, fx, &task.args, enc, w);
            let seq = st.next();
            let outputs = self.new_outputs(st, task.function.num_returns, w);
            record_call(st, seq, w, outputs.clone(), hold, nested);
            fx.send(
                w,
                Msg::Task {
                    seq,
                    func,
                    args,
                    outputs: outputs.clone(),
                },
            );
            Ok(outputs)
        })
    }

    fn get(&self, ids: &[ObjectId], timeout: Option<Duration>) -> Result<Vec<Payload>> {
        self.check_open()?;
        let deadline = timeout.map(|t| Instant::now() + t);
        // Ids before `done` are resolved (they stay so while the caller holds them). The first
        // pass requests every id; later wake-ups (one per arriving batch) re-request only a
        // window from the first unresolved id, which every id reaches before `get` returns, so
        // a `get_all` of many refs costs time in proportion to what arrived, not to the list.
        let done = std::cell::Cell::new(0usize);
        let mut first = true;
        let ok = self.block_until(
            deadline,
            |st, fx| {
                let from = done.get();
                let to = if first {
                    ids.len()
                } else {
                    ids.len().min(from + REKICK_WINDOW)
                };
                first = false;
                for id in &ids[from..to] {
                    self.request(st, fx, *id);
                }
            },
            |st| {
                let mut i = done.get();
                while i < ids.len() && st.objs.get(&ids[i]).is_some_and(Obj::resolved) {
                    i += 1;
                }
                done.set(i);
                i == ids.len()
            },
            |_| WaitKeys::Objects(ids.get(done.get()).copied().into_iter().collect()),
        );
        let st = self.st.lock();
        if !ok {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::ShutDown);
            }
            let first = ids
                .iter()
                .find(|id| !st.objs.get(id).is_some_and(Obj::resolved));
            return Err(Error::Timeout {
                what: first.map_or_else(|| "object".to_string(), |id| id.to_string()),
                after: timeout.unwrap_or_default(),
            });
        }
        ids.iter()
            .map(|id| match st.objs.get(id) {
                Some(o) => match (&o.data, &o.status) {
                    (_, St::Failed(e)) => Err(e.clone()),
                    (Some(d), _) => Ok(d.clone()),
                    (None, _) => Err(lost(*id)),
                },
                None => Err(lost(*id)),
            })
            .collect()
    }

    fn wait(
        &self,
        ids: &[ObjectId],
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<bool>> {
        self.check_open()?;
        let me = self.rank;
        let is_ready = |st: &State, id: &ObjectId| {
            st.objs
                .get(id)
                .is_some_and(|o| o.resolved() || matches!(o.status, St::Ready))
        };
        let deadline = timeout.map(|t| Instant::now() + t);
        self.block_until(
            deadline,
            |st, fx| {
                for id in ids {
                    let o = st.objs.entry(*id).or_default();
                    if o.resolved()
                        || !matches!(o.status, St::Pending)
                        || o.subscribed
                        || o.producing
                    {
                        continue;
                    }
                    if id.owner != me {
                        o.subscribed = true;
                        fx.send(id.owner, Msg::Subscribe { id: *id });
                    }
                }
            },
            |st| ids.iter().filter(|id| is_ready(st, id)).count() >= num_returns,
            |st| WaitKeys::Objects(ids.iter().filter(|id| !is_ready(st, id)).copied().collect()),
        );
        let st = self.st.lock();
        Ok(ids.iter().map(|id| is_ready(&st, id)).collect())
    }

    fn release(&self, id: ObjectId) {
        self.with(|st, fx| {
            if let Some(o) = st.objs.get_mut(&id) {
                o.local = o.local.saturating_sub(1);
                if o.local == 0 {
                    self.maybe_gc(st, fx, id);
                }
            }
        });
    }

    fn ref_serialized(&self, id: ObjectId) {
        // An encoded value may be decoded any number of times, anywhere: pin the object. Inside
        // call arguments owned here, the pin lasts until the call is done (see `Call::nested`).
        self.with(|st, fx| {
            if id.owner == self.rank {
                if let Some(o) = st.objs.get_mut(&id) {
                    o.remote = o.remote.saturating_add(1);
                    NESTED.with(|n| {
                        if let Some(v) = n.borrow_mut().as_mut() {
                            v.push(id);
                        }
                    });
                }
            } else {
                fx.send(id.owner, Msg::Borrow { id, delta: 1 });
            }
        });
    }

    fn ref_deserialized(&self, id: ObjectId) -> Result<()> {
        self.check_open()?;
        self.with(|st, fx| {
            if id.owner == self.rank && !st.objs.contains_key(&id) {
                return Err(lost(id));
            }
            let o = st.objs.entry(id).or_default();
            o.local += 1;
            if id.owner != self.rank && !o.borrowing {
                o.borrowing = true;
                fx.send(id.owner, Msg::Borrow { id, delta: 1 });
            }
            Ok(())
        })
    }

    fn create_actor(&self, spec: ActorSpec) -> Result<ActorId> {
        self.check_open()?;
        let class = *self
            .table
            .cidx
            .get(spec.class.name)
            .ok_or_else(|| unregistered("actor type", spec.class.name))?;
        let (enc, hold, nested) = self.encode_args(&spec.args)?;
        self.with(|st, fx| {
            let w = self.choose(st, &[], true)?;
            let args = self.wire_args(st, fx, &spec.args, enc, w);
            let actor = ActorId {
                owner: self.rank,
                seq: st.next(),
            };
            let seq = st.next();
            st.owned_actors.insert(
                actor,
                OwnedActor {
                    worker: w,
                    handles: 1,
                    pinned: false,
                    dead: None,
                },
            );
            st.actors_on[w as usize] += 1;
            record_call(st, seq, w, Vec::new(), hold, nested);
            fx.send(
                w,
                Msg::ActorCreate {
                    actor,
                    class,
                    args,
                    seq,
                },
            );
            Ok(actor)
        })
    }

    fn call_actor(&self, call: ActorCall) -> Result<Vec<ObjectId>> {
        self.check_open()?;
        let method = *self
            .table
            .midx
            .get(call.method.name)
            .ok_or_else(|| unregistered("actor method", call.method.name))?;
        let w = self.locate_actor(call.actor).map_err(|e| match e {
            Error::ActorDead { actor, reason } if !actor.contains('#') => Error::ActorDead {
                actor: format!("{}#{actor}", call.method.class),
                reason,
            },
            e => e,
        })?;
        let (enc, hold, nested) = self.encode_args(&call.args)?;
        Ok(self.with(|st, fx| {
            let args = self.wire_args(st, fx, &call.args, enc, w);
            let seq = st.next();
            let outputs = self.new_outputs(st, call.method.num_returns, w);
            record_call(st, seq, w, outputs.clone(), hold, nested);
            fx.send(
                w,
                Msg::ActorCall {
                    actor: call.actor,
                    method,
                    args,
                    outputs: outputs.clone(),
                    seq,
                },
            );
            outputs
        }))
    }

    fn kill_actor(&self, actor: ActorId) -> Result<()> {
        self.check_open()?;
        let w = match self.locate_actor(actor) {
            Ok(w) => w,
            Err(e) if e.kind() == unidist_core::ErrorKind::ActorDead => return Ok(()),
            Err(e) => return Err(e),
        };
        self.with(|st, fx| {
            if let Some(a) = st.owned_actors.get_mut(&actor) {
                a.dead = Some("it was killed".into());
            } else {
                st.actor_where.insert(actor, Err("it was killed".into()));
            }
            fx.send(w, Msg::ActorKill { actor, now: true });
        });
        Ok(())
    }

    fn release_actor(&self, actor: ActorId) {
        if actor.owner != self.rank || self.closed.load(Ordering::Acquire) {
            return;
        }
        self.with(|st, fx| {
            let Some(a) = st.owned_actors.get_mut(&actor) else {
                return;
            };
            a.handles = a.handles.saturating_sub(1);
            if a.handles > 0 || a.pinned {
                return;
            }
            let seq = st.seq;
            st.pending_ends.push((actor, seq));
            self.end_released_actors(st, fx);
        });
    }

    fn actor_deserialized(&self, actor: ActorId) -> Result<()> {
        self.check_open()?;
        self.with(|st, fx| {
            if actor.owner == self.rank {
                if let Some(a) = st.owned_actors.get_mut(&actor) {
                    a.handles += 1;
                }
            } else {
                fx.send(actor.owner, Msg::ActorPin { actor });
            }
        });
        Ok(())
    }

    fn num_cpus(&self) -> usize {
        (self.size as usize).saturating_sub(1).max(1)
    }

    fn cluster_resources(&self) -> Result<ClusterResources> {
        let mut out = ClusterResources::new();
        for ip in self.ips.iter().skip(1) {
            *out.entry(ip.clone())
                .or_default()
                .entry("CPU".to_string())
                .or_insert(0.0) += 1.0;
        }
        Ok(out)
    }

    fn get_ip(&self) -> String {
        self.ips
            .get(self.rank as usize)
            .cloned()
            .unwrap_or_else(unidist_core::runtime::local_ip)
    }

    fn shutdown(&self) -> Result<()> {
        if self.rank != 0 {
            // Workers end when rank 0 shuts the job down.
            return Ok(());
        }
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let r = self.shutdown_job();
        crate::log::flush();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use unidist_serialize::{encode_with_oob, Buffer};

    fn node(rank: u32) -> (Arc<Node>, crossbeam_channel::Receiver<Out>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Node::new(rank, 3, vec![String::new(); 3], tx, 1024), rx)
    }

    fn pushed(id: ObjectId) -> Msg {
        let e = encode_with_oob(&Buffer::<f64>::from(vec![2.0; 4096]), 1024).unwrap();
        Msg::Push {
            id,
            value: Slot::Ready(Arc::new(e)),
        }
    }

    #[test]
    fn a_push_ahead_of_its_call_is_kept_and_freed_by_its_sender() {
        // Rank 0 pushes its object to worker 1 right before the call that needs it, so the
        // worker has no entry for it yet; dropping the push would make the call fetch the same
        // bytes a second time.
        let (n, out) = node(1);
        let id = ObjectId::new(0, 7);
        n.handle(0, pushed(id));
        assert!(n.st.lock().objs.get(&id).is_some_and(|o| o.data.is_some()));
        let mut fx = Fx::default();
        n.request(&mut n.st.lock(), &mut fx, id);
        assert!(
            fx.sends.is_empty(),
            "a pushed value must not be fetched again"
        );
        assert!(out.try_recv().is_err(), "nothing is sent for a push");
        n.handle(0, Msg::Free { ids: vec![id] });
        assert!(!n.st.lock().objs.contains_key(&id));
    }

    #[test]
    fn a_get_of_an_object_on_a_lost_worker_fails_naming_it() {
        let (n, _out) = node(0);
        let id = n.with(|st, _| n.new_outputs(st, 1, 2))[0];
        n.peer_lost(2, "its process 42 ended");
        let r = n.get(&[id], Some(Duration::from_secs(5)));
        let Err(e) = r else {
            panic!("the object cannot arrive any more")
        };
        let e = e.to_string();
        assert!(e.contains("rank 2 was lost (its process 42 ended)"), "{e}");
    }

    #[test]
    fn a_fetch_from_a_lost_rank_fails_instead_of_waiting() {
        // Worker 1 learns that rank 2 is gone, then needs an object that only rank 2 owned.
        let (n, out) = node(1);
        n.peer_lost(2, "no message from it for 30 s");
        let id = ObjectId::new(2, 9);
        let started = Instant::now();
        let r = n.get(&[id], Some(Duration::from_secs(5)));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "it waited for the timeout"
        );
        let Err(e) = r else {
            panic!("nothing can deliver it")
        };
        let e = e.to_string();
        assert!(e.contains("rank 2 was lost"), "{e}");
        assert!(
            out.try_iter().all(|o| !matches!(o, Out::Msg(2, _))),
            "nothing may be sent to a lost rank"
        );
    }

    #[test]
    fn scheduling_skips_lost_workers_and_fails_without_any() {
        let (n, _out) = node(0);
        n.peer_lost(1, "its process 7 ended");
        for _ in 0..4 {
            assert_eq!(n.choose(&mut n.st.lock(), &[], false).ok(), Some(2));
        }
        n.peer_lost(2, "its process 8 ended");
        let e = n
            .choose(&mut n.st.lock(), &[], true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("every worker was lost"), "{e}");
    }

    #[test]
    fn an_owner_ignores_a_push_of_an_object_it_freed() {
        let (n, _out) = node(1);
        let id = ObjectId::new(1, 3);
        n.handle(2, pushed(id));
        assert!(!n.st.lock().objs.contains_key(&id));
    }
}
