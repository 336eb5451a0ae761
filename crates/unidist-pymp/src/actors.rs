//! Actors on actix: one actix `System` per backend on its own thread, one `Arbiter` (an OS
//! thread with a single-threaded Tokio runtime) per actor, and the actix actor that owns the
//! [`ActorInstance`] and starts calls in call order.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Instant;

use actix::prelude::*;
use actix::{Arbiter, ArbiterHandle, System};
use parking_lot::Mutex;
use unidist_core::actor::{ActorInstance, CallResult, LocalBoxFuture};
use unidist_core::call::Resolved;
use unidist_core::observe::timeline;
use unidist_core::{
    ActorClassEntry, ActorId, ActorMethodEntry, Arg, DeadReason, Error, Outputs, Payload, Result,
};

use crate::shared::{Completion, Shared};
use crate::tasks::{object_args, resolve_now, resolve_owned};

/// Actor ids are unique across backend instances of the process, like object ids.
static NEXT_ACTOR: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The backend instance whose actor runs on this (arbiter) thread; 0 for none.
    static ACTOR_OF: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// What calls and their outputs know about an actor.
pub(crate) struct ActorInfo {
    id: ActorId,
    class: &'static str,
    killed: AtomicBool,
    /// Lets a call's outputs be settled from wherever the call is dropped.
    shared: Arc<Shared>,
}

impl ActorInfo {
    /// The error of a call on this actor after it ended.
    pub(crate) fn dead_error(&self) -> Error {
        let reason = if self.killed.load(Ordering::Acquire) {
            DeadReason::Killed
        } else {
            DeadReason::ThreadEnded
        };
        Error::actor_dead(self.class, self.id, reason)
    }
}

struct Entry {
    addr: Addr<Shell>,
    arbiter: ArbiterHandle,
    /// Live handles in this process; the actor ends after its queued calls when this hits 0.
    handles: usize,
    info: Arc<ActorInfo>,
}

struct SystemThread {
    system: System,
    ended: mpsc::Receiver<()>,
    join: std::thread::JoinHandle<()>,
}

/// The actor side of a backend.
pub(crate) struct Actors {
    system: Mutex<Option<SystemThread>>,
    table: Mutex<HashMap<u64, Entry>>,
}

impl Actors {
    /// Starts the actix system on its own thread.
    pub(crate) fn start() -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let (ended_tx, ended) = mpsc::channel();
        let join = std::thread::Builder::new()
            .name("unidist-pymp-actors".into())
            .spawn(move || {
                let runner = System::new();
                let _ = tx.send(System::current());
                if let Err(e) = runner.run() {
                    tracing::error!(error = %e, "the actor system stopped with an error");
                }
                let _ = ended_tx.send(());
            })
            .map_err(|e| unavailable(format!("cannot start the actor system thread: {e}")))?;
        let system = rx
            .recv()
            .map_err(|_| unavailable("the actor system thread ended during start".into()))?;
        Ok(Actors {
            system: Mutex::new(Some(SystemThread {
                system,
                ended,
                join,
            })),
            table: Mutex::new(HashMap::new()),
        })
    }

    /// Creates an actor on a new arbiter thread; its constructor runs there once its
    /// arguments are ready.
    pub(crate) fn create(
        &self,
        shared: &Arc<Shared>,
        class: &'static ActorClassEntry,
        inputs: Vec<Arg>,
    ) -> Result<ActorId> {
        let system = match &*self.system.lock() {
            Some(s) => s.system.clone(),
            None => return Err(Error::ShutDown),
        };
        let arbiter = new_arbiter(system).map_err(|e| {
            Error::backend(
                "pymp",
                format!("cannot start a thread for actor {}: {e}", class.name),
            )
        })?;
        let id = ActorId {
            owner: 0,
            seq: NEXT_ACTOR.fetch_add(1, Ordering::Relaxed),
        };
        let info = Arc::new(ActorInfo {
            id,
            class: class.name,
            killed: AtomicBool::new(false),
            shared: shared.clone(),
        });
        let live = LiveGuard::new(shared.clone());
        let shell_info = info.clone();
        let shell_shared = shared.clone();
        let handle = arbiter.handle();
        // Read here: the closure below runs on the actor's thread.
        let ctor_flow = timeline::current_flow();
        let addr = Shell::start_in_arbiter(&handle, move |_| Shell {
            shared: shell_shared,
            info: shell_info,
            class,
            ctor: Some(inputs),
            ctor_flow,
            instance: None,
            in_flight: Rc::new(InFlight::default()),
            _live: live,
        });
        self.table.lock().insert(
            id.seq,
            Entry {
                addr,
                arbiter: handle,
                handles: 1,
                info,
            },
        );
        Ok(id)
    }

    /// Queues a call; its outputs are `ids` (already allocated by `alloc` under the table
    /// lock, so that a concurrent kill cannot leave them unsettled).
    pub(crate) fn call(
        &self,
        shared: &Arc<Shared>,
        actor: ActorId,
        method: &'static ActorMethodEntry,
        inputs: Vec<Arg>,
    ) -> Result<Vec<unidist_core::ObjectId>> {
        let table = self.table.lock();
        let Some(entry) = table.get(&actor.seq) else {
            drop(table);
            return Err(Error::actor_dead(method.class, actor, DeadReason::Unknown));
        };
        let ids = shared.store.insert_pending(method.num_returns);
        let done = CallDone {
            info: entry.info.clone(),
            done: Some(Completion::new(ids, method.name)),
        };
        // `do_send` queues whatever the mailbox holds: a caller is never dropped or blocked.
        entry.addr.do_send(Call {
            method,
            inputs,
            done,
            flow: timeline::current_flow(),
        });
        Ok(ids.to_vec())
    }

    /// Ends the actor now; queued and later calls fail with `ActorDead`.
    pub(crate) fn kill(&self, actor: ActorId) {
        let entry = self.table.lock().remove(&actor.seq);
        if let Some(entry) = entry {
            entry.info.killed.store(true, Ordering::Release);
            entry.arbiter.stop();
        }
    }

    /// One handle to the actor died; with the last one the actor ends after its queued calls.
    pub(crate) fn release(&self, actor: ActorId) {
        let entry = {
            let mut table = self.table.lock();
            match table.get_mut(&actor.seq) {
                Some(e) if e.handles > 1 => {
                    e.handles -= 1;
                    None
                }
                Some(_) => table.remove(&actor.seq),
                None => None,
            }
        };
        if let Some(entry) = entry {
            entry.addr.do_send(Release);
        }
    }

    /// A handle to the actor arrived inside a value.
    pub(crate) fn add_handle(&self, actor: ActorId) -> Result<()> {
        match self.table.lock().get_mut(&actor.seq) {
            Some(e) => {
                e.handles += 1;
                Ok(())
            }
            None => Err(Error::unknown_actor(actor)),
        }
    }

    /// Stops every actor and the system, waiting until `deadline` for their threads; returns
    /// the number of actors whose thread did not end in time.
    pub(crate) fn shutdown(&self, shared: &Shared, deadline: Instant) -> usize {
        let entries: Vec<Entry> = self.table.lock().drain().map(|(_, e)| e).collect();
        for e in &entries {
            e.arbiter.stop();
        }
        drop(entries);
        if let Some(st) = self.system.lock().take() {
            st.system.stop();
            let left = deadline.saturating_duration_since(Instant::now());
            if st.ended.recv_timeout(left).is_ok() {
                let _ = st.join.join();
            } else {
                tracing::warn!("the actor system thread did not stop in time; abandoning it");
            }
        }
        // An actor method that calls `shutdown` must not wait for its own actor.
        let mine = usize::from(ACTOR_OF.with(|a| a.get()) == shared.instance());
        loop {
            let live = shared
                .live_actors
                .load(Ordering::Acquire)
                .saturating_sub(mine);
            if live == 0 || Instant::now() >= deadline {
                return live;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

fn unavailable(reason: String) -> Error {
    Error::BackendUnavailable {
        backend: "pymp".into(),
        reason,
    }
}

/// Starts an arbiter of `system` from any thread.
///
/// Arbiters register with the system of the calling thread, so ours is made current for the
/// call, and a system the thread had before is restored. The runtime has timers but no I/O
/// driver: each I/O driver costs two file descriptors, which would cap the number of actors at
/// the descriptor limit.
fn new_arbiter(system: System) -> std::io::Result<Arbiter> {
    let previous = System::try_current();
    System::set_current(system);
    let arbiter = Arbiter::try_with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
    });
    if let Some(p) = previous {
        System::set_current(p);
    }
    arbiter
}

/// Counts a live actor event loop; dropped with the actor (or with its never-run factory).
struct LiveGuard(Arc<Shared>);

impl LiveGuard {
    fn new(shared: Arc<Shared>) -> Self {
        shared.live_actors.fetch_add(1, Ordering::AcqRel);
        LiveGuard(shared)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live_actors.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Async calls still running on the actor's event loop.
#[derive(Default)]
struct InFlight {
    count: Cell<usize>,
    zero: tokio::sync::Notify,
}

impl InFlight {
    fn enter(&self) {
        self.count.set(self.count.get() + 1);
    }

    fn leave(&self) {
        self.count.set(self.count.get() - 1);
        if self.count.get() == 0 {
            self.zero.notify_one();
        }
    }

    async fn drained(&self) {
        while self.count.get() > 0 {
            self.zero.notified().await;
        }
    }
}

/// The outputs of an actor call. If it is dropped unsettled (the actor ended or the runtime
/// stopped first), every output gets the error that says why, so no reader waits forever.
struct CallDone {
    info: Arc<ActorInfo>,
    done: Option<Completion>,
}

impl CallDone {
    fn finish(mut self, result: Result<Outputs>) {
        if let Some(d) = self.done.take() {
            d.finish(&self.info.shared, result);
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.info.shared
    }
}

impl Drop for CallDone {
    fn drop(&mut self) {
        if let Some(d) = self.done.take() {
            let e = if self.info.shared.is_closed() {
                Error::ShutDown
            } else {
                self.info.dead_error()
            };
            d.finish(&self.info.shared, Err(e));
        }
    }
}

/// One method call.
struct Call {
    method: &'static ActorMethodEntry,
    inputs: Vec<Arg>,
    done: CallDone,
    /// The timeline flow of its submission (0 when not recording).
    flow: u64,
}

impl Message for Call {
    type Result = ();
}

/// The last handle died: end after the calls queued before this.
struct Release;

impl Message for Release {
    type Result = ();
}

/// The actix actor of one unidist actor.
struct Shell {
    shared: Arc<Shared>,
    info: Arc<ActorInfo>,
    class: &'static ActorClassEntry,
    ctor: Option<Vec<Arg>>,
    /// The timeline flow of the actor's creation (0 when not recording).
    ctor_flow: u64,
    /// `None` until the constructor ran; the constructor's error fails every call.
    instance: Option<std::result::Result<Rc<ActorInstance>, Error>>,
    in_flight: Rc<InFlight>,
    _live: LiveGuard,
}

impl Actor for Shell {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ACTOR_OF.with(|a| a.set(self.shared.instance()));
        let _flow = timeline::flow_scope(self.ctor_flow);
        let inputs = self.ctor.take().unwrap_or_default();
        let class = self.class;
        // Looked at first without consuming the inputs, which a pending argument still needs.
        match resolve_now(&self.shared.store, class.name, &inputs) {
            Resolved::Ready(payloads) => {
                drop(payloads);
                self.instance = Some(construct_settled(&self.shared, class, inputs));
            }
            Resolved::Failed(e) => self.instance = Some(Err(e.into())),
            Resolved::Pending(_) => {
                let shared = self.shared.clone();
                // Waiting here holds back the mailbox, so no call starts before the constructor.
                ctx.wait(
                    async move {
                        wait_settled(&shared, &inputs).await;
                        (shared, inputs)
                    }
                    .into_actor(self)
                    .map(move |(shared, inputs), act, _| {
                        act.instance = Some(construct_settled(&shared, class, inputs))
                    }),
                );
            }
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        // Released: async calls already started finish, then the arbiter thread ends.
        let in_flight = self.in_flight.clone();
        actix::spawn(async move {
            in_flight.drained().await;
            Arbiter::current().stop();
        });
    }
}

/// Runs the constructor of `class` on `inputs`, whose objects have all settled.
///
/// The constructor runs once, so the inputs are consumed: its by-value parameters take the
/// values passed directly without a copy. The refs among them are dropped after it has run.
fn construct_settled(
    shared: &Shared,
    class: &'static ActorClassEntry,
    inputs: Vec<Arg>,
) -> std::result::Result<Rc<ActorInstance>, Error> {
    let (resolved, refs) = resolve_owned(&shared.store, class.name, inputs);
    let built = match resolved {
        Resolved::Ready(payloads) => ActorInstance::construct(class, payloads)
            .map(Rc::new)
            .map_err(Error::from),
        Resolved::Failed(e) => Err(e.into()),
        // An object still pending once its wait ended belonged to a store that was cleared.
        Resolved::Pending(_) => Err(Error::ShutDown),
    };
    drop(refs);
    built
}

/// Waits on the actor's event loop until every object input settled.
async fn wait_settled(shared: &Shared, inputs: &[Arg]) {
    for id in object_args(inputs) {
        if let Some(rx) = shared.store.when_settled(id) {
            // A dropped sender means the store was cleared; the lookup after it reports it.
            let _ = rx.await;
        }
    }
}

/// Waits on the actor's event loop until every object input settled, then reads them.
async fn resolve_async(shared: &Shared, name: &str, inputs: &[Arg]) -> Result<Vec<Payload>> {
    wait_settled(shared, inputs).await;
    match resolve_now(&shared.store, name, inputs) {
        Resolved::Ready(p) => Ok(p),
        Resolved::Failed(e) => Err(e.into()),
        Resolved::Pending(_) => Err(Error::ShutDown),
    }
}

/// The outputs of a finished call; `ActorInstance::begin` has checked their number.
fn outputs(r: CallResult) -> Result<Outputs> {
    r.map_err(Error::from)
}

/// Polls a future once without a task to wake: most calls complete on their first poll, and
/// then need no boxing into the actor context or a spawned task. A future that is not ready
/// is polled again by its new owner, which registers the real waker.
fn poll_once<T>(fut: &mut LocalBoxFuture<T>) -> Poll<T> {
    fut.as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()))
}

impl Shell {
    fn dead(&self) -> Option<Error> {
        if self.shared.is_closed() {
            Some(Error::ShutDown)
        } else if self.info.killed.load(Ordering::Acquire) {
            Some(self.info.dead_error())
        } else {
            None
        }
    }

    /// Starts a call whose arguments are read; the actor's lock order is the call order.
    fn start(
        &mut self,
        inst: Rc<ActorInstance>,
        call: Call,
        payloads: Vec<Payload>,
        ctx: &mut Context<Self>,
    ) {
        let Call {
            method,
            inputs,
            done,
            flow,
        } = call;
        if let Some(e) = self.dead() {
            done.finish(Err(e));
            return;
        }
        // Most calls get the state lock at once: start them in place, with nothing boxed.
        let started = {
            let _flow = timeline::flow_scope(flow);
            let begin = std::pin::pin!(inst.begin(method, payloads));
            match begin.poll(&mut TaskContext::from_waker(Waker::noop())) {
                Poll::Ready(running) => Some(running),
                Poll::Pending => None,
            }
        };
        if let Some(running) = started {
            drop(inputs);
            self.run(running, done);
            return;
        }
        // The state lock is held by earlier calls (an async `&self` call running while this one
        // needs `&mut self`). The attempt above ran no user code and gave up its place; start
        // again from the inputs, and hold back later calls until this one starts.
        let payloads = match resolve_now(&self.shared.store, method.name, &inputs) {
            Resolved::Ready(p) => p,
            Resolved::Failed(e) => {
                done.finish(Err(e.into()));
                return;
            }
            Resolved::Pending(_) => {
                done.finish(Err(Error::backend(
                    "pymp",
                    "an argument became pending again",
                )));
                return;
            }
        };
        // `begin` resolves to the future that completes the call; that one is run by `run`.
        #[allow(clippy::async_yields_async)]
        let begin: LocalBoxFuture<LocalBoxFuture<CallResult>> =
            Box::pin(async move { inst.begin(method, payloads).await });
        ctx.wait(begin.into_actor(self).map(move |running, act, _| {
            drop(inputs);
            act.run(running, done)
        }));
    }

    /// Completes a started call: at once if it is done (every sync method), otherwise as a
    /// task on this actor's event loop, concurrent with later calls.
    fn run(&mut self, mut running: LocalBoxFuture<CallResult>, done: CallDone) {
        match poll_once(&mut running) {
            Poll::Ready(r) => done.finish(outputs(r)),
            Poll::Pending => {
                let in_flight = self.in_flight.clone();
                in_flight.enter();
                actix::spawn(async move {
                    let r = running.await;
                    done.finish(outputs(r));
                    in_flight.leave();
                });
            }
        }
    }
}

impl Handler<Call> for Shell {
    type Result = ();

    fn handle(&mut self, call: Call, ctx: &mut Context<Self>) {
        if let Some(e) = self.dead() {
            call.done.finish(Err(e));
            return;
        }
        let inst = match &self.instance {
            Some(Ok(inst)) => inst.clone(),
            Some(Err(e)) => {
                call.done.finish(Err(e.clone()));
                return;
            }
            None => {
                let e = Error::backend(
                    "pymp",
                    format!(
                        "actor {} received a call before it was built",
                        self.class.name
                    ),
                );
                call.done.finish(Err(e));
                return;
            }
        };
        match resolve_now(&self.shared.store, call.method.name, &call.inputs) {
            Resolved::Ready(payloads) => self.start(inst, call, payloads, ctx),
            Resolved::Failed(e) => call.done.finish(Err(e.into())),
            Resolved::Pending(_) => {
                let shared = call.done.shared().clone();
                let name = call.method.name;
                // Later calls wait behind this one: calls start in call order.
                ctx.wait(
                    async move {
                        let r = resolve_async(&shared, name, &call.inputs).await;
                        (call, r)
                    }
                    .into_actor(self)
                    .map(move |(call, r), act, ctx| match r {
                        Ok(payloads) => act.start(inst, call, payloads, ctx),
                        Err(e) => call.done.finish(Err(e)),
                    }),
                );
            }
        }
    }
}

impl Handler<Release> for Shell {
    type Result = ();

    fn handle(&mut self, _: Release, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
