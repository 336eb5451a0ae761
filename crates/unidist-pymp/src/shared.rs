//! State shared by the backend, its pool jobs and its actors: the store, the run queue and
//! pool, compensation threads, the completion guard of every call, and blocking `get`/`wait`.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use rayon::ThreadPool;
use unidist_core::{Error, ObjectId, Outputs, Payload, Result};

use crate::control::Timer;
use crate::store::{self, IdRange, Lookup, Signal, Store, Waiter};
use crate::tasks::{Task, TaskCell};

/// Stack size of pool and compensation threads. A worker blocked on a queued task runs it on
/// its own stack, so chains of nested `get`s nest frames; only touched pages become resident.
const WORKER_STACK_SIZE: usize = 16 << 20;
/// A producer run inside its waiter continues on a fresh stack segment when less than this is
/// left ...
const STACK_RED_ZONE: usize = 256 * 1024;
/// ... of this size.
const STACK_SEGMENT: usize = 8 << 20;

/// Spins of a blocked thread before it parks (and, on a worker, lends its slot): a short
/// task is often done by then, and parking costs a futex round trip.
const SPINS_BEFORE_PARK: u32 = 256;

/// Empty looks at the run queue before a pool job leaves.
const PUMP_SPINS: u32 = 512;

/// At most this many compensation threads exist at once; past it, a blocked worker blocks
/// without lending its slot (and a warning is logged once).
const MAX_COMPENSATORS: usize = 8192;

/// An idle compensation thread ends after this long without being needed.
const COMPENSATOR_IDLE_EXIT: Duration = Duration::from_secs(10);

/// How often an active compensation thread with nothing to run re-checks whether it is still
/// needed.
const COMPENSATOR_RECHECK: Duration = Duration::from_millis(2);

/// Identifies a backend instance in the thread-local marker of its worker threads.
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The instance whose worker (pool or compensation thread) this thread is; 0 for none.
    static WORKER_OF: Cell<u64> = const { Cell::new(0) };
    /// Tasks of a backend running on this thread (more than one when a blocked worker runs
    /// the producer of what it waits for).
    static RUNNING: Cell<usize> = const { Cell::new(0) };
}

/// A value on its own cache line, away from fields other threads write.
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

/// A compensation thread waiting to be needed.
struct IdleSlot {
    activated: AtomicBool,
    thread: Thread,
}

/// Lending slots: a worker blocked in `get`/`wait` counts as blocked, and for each blocked
/// worker one compensation thread is active and runs queued tasks, so the number of threads
/// running tasks stays at the pool size whatever the tasks wait for.
#[derive(Default)]
struct Compensation {
    blocked: AtomicUsize,
    active: AtomicUsize,
    threads: AtomicUsize,
    idle: Mutex<Vec<Arc<IdleSlot>>>,
    warned: AtomicBool,
}

/// Everything pool jobs and actors need; the backend owns one, jobs and actors hold clones.
pub(crate) struct Shared {
    pub(crate) store: Store,
    instance: u64,
    pool: ThreadPool,
    /// Runnable tasks, in the order they became runnable. Pool jobs drain it, and so do
    /// compensation threads.
    queue_tx: Sender<Arc<TaskCell>>,
    queue_rx: Receiver<Arc<TaskCell>>,
    closed: AtomicBool,
    /// Tasks running. Only workers touch it, so submitting threads do not contend on it.
    running: Padded<AtomicUsize>,
    /// Pool jobs draining the queue; at most `threads`.
    pumps: Padded<AtomicUsize>,
    threads: usize,
    /// Actor event loops not yet ended.
    pub(crate) live_actors: AtomicUsize,
    comp: Compensation,
    /// Runs whose outputs were settled without them (timed out, cancelled) and whose bodies
    /// still run.
    abandoned: AtomicUsize,
    /// Watches runs with a time limit.
    pub(crate) timer: Timer,
}

impl Shared {
    /// Starts the pool of `num_threads` threads.
    pub(crate) fn new(num_threads: usize) -> Result<Self> {
        let instance = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(num_threads)
            .thread_name(|i| format!("unidist-pymp-{i}"))
            .stack_size(WORKER_STACK_SIZE)
            .start_handler(move |_| WORKER_OF.with(|w| w.set(instance)))
            .panic_handler(|p| {
                // Task bodies catch their panics; reaching this is a bug in the backend itself.
                let msg = unidist_core::task::panic_message(&*p);
                tracing::error!(panic = %msg, "a pool job panicked outside a task body");
            })
            .build()
            .map_err(|e| Error::BackendUnavailable {
                backend: "pymp".into(),
                reason: format!("cannot start a pool of {num_threads} threads: {e}"),
            })?;
        let (queue_tx, queue_rx) = crossbeam_channel::unbounded();
        Ok(Shared {
            store: Store::new(),
            instance,
            pool,
            queue_tx,
            queue_rx,
            closed: AtomicBool::new(false),
            running: Padded(AtomicUsize::new(0)),
            pumps: Padded(AtomicUsize::new(0)),
            threads: num_threads,
            live_actors: AtomicUsize::new(0),
            comp: Compensation::default(),
            abandoned: AtomicUsize::new(0),
            timer: Timer::default(),
        })
    }

    pub(crate) fn num_threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// True once shutdown began.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Marks the runtime closed and wakes idle compensation threads so they end.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for slot in self.comp.idle.lock().iter() {
            slot.thread.unpark();
        }
    }

    /// `Err(ShutDown)` once shutdown began.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(Error::ShutDown)
        } else {
            Ok(())
        }
    }

    /// The id of this backend instance.
    pub(crate) fn instance(&self) -> u64 {
        self.instance
    }

    /// True on a pool or compensation thread of this backend.
    fn is_worker(&self) -> bool {
        WORKER_OF.with(Cell::get) == self.instance
    }

    /// Tasks running, minus those running on the calling thread (a task that calls
    /// `shutdown` must not wait for itself). Queued tasks do not count: once the runtime is
    /// closed they settle with `ShutDown` instead of running.
    pub(crate) fn running_elsewhere(&self) -> usize {
        let mine = if self.is_worker() {
            RUNNING.with(Cell::get)
        } else {
            0
        };
        let abandoned = self.abandoned.load(Ordering::Acquire);
        self.running
            .0
            .load(Ordering::Acquire)
            .saturating_sub(mine + abandoned)
    }

    /// Settles every queued task with `ShutDown` instead of running it.
    pub(crate) fn drop_queued(self: &Arc<Self>) {
        while let Ok(cell) = self.queue_rx.try_recv() {
            if let Some(task) = cell.take_runnable() {
                cell.abandon(self, task, Error::ShutDown);
            }
        }
    }

    // ---- running tasks --------------------------------------------------------------------

    /// Queues a runnable task, and starts a pool job to drain the queue if fewer than one per
    /// pool thread are running.
    pub(crate) fn enqueue(self: &Arc<Self>, cell: Arc<TaskCell>) {
        // The receiver lives in `self`, so the send cannot fail.
        let _ = self.queue_tx.send(cell);
        // Pairs with the fence in `pump`: either this sees a pump about to leave, or that pump
        // sees this task.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.take_pump_token() {
            let shared = self.clone();
            self.pool.spawn(move || shared.pump());
        }
    }

    fn take_pump_token(&self) -> bool {
        let mut t = self.pumps.0.load(Ordering::SeqCst);
        while t < self.threads {
            match self
                .pumps
                .0
                .compare_exchange(t, t + 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return true,
                Err(now) => t = now,
            }
        }
        false
    }

    /// A pool job: runs queued tasks until the queue stays empty for a moment.
    ///
    /// One job serves many tasks, so a busy pool costs no allocation or wake-up per task. The
    /// short spin before leaving catches the next task of a submitting loop.
    fn pump(self: Arc<Self>) {
        loop {
            let mut idle = 0;
            while idle < PUMP_SPINS {
                match self.queue_rx.try_recv() {
                    Ok(cell) => {
                        self.run_cell(&cell);
                        idle = 0;
                    }
                    Err(_) => {
                        idle += 1;
                        std::hint::spin_loop();
                    }
                }
            }
            self.pumps.0.fetch_sub(1, Ordering::SeqCst);
            std::sync::atomic::fence(Ordering::SeqCst);
            // A task queued while this job was leaving, when every token was taken, is this
            // job's to run.
            if self.queue_rx.is_empty() || !self.take_pump_token() {
                return;
            }
        }
    }

    fn run_cell(self: &Arc<Self>, cell: &Arc<TaskCell>) {
        if let Some(task) = cell.take_runnable() {
            self.run_task(cell, task);
        }
    }

    fn run_task(self: &Arc<Self>, cell: &Arc<TaskCell>, task: Task) {
        self.running.0.fetch_add(1, Ordering::AcqRel);
        RUNNING.with(|c| c.set(c.get() + 1));
        task.run(self, cell);
        RUNNING.with(|c| c.set(c.get() - 1));
        self.running.0.fetch_sub(1, Ordering::AcqRel);
    }

    /// On a worker, runs the producer of a pending object here if nobody started it yet:
    /// the blocked task needs it anyway, so this is always safe. True if it ran.
    fn run_producer(self: &Arc<Self>, producer: Option<Arc<TaskCell>>) -> bool {
        if !self.is_worker() {
            return false;
        }
        let Some(cell) = producer else { return false };
        match cell.take_runnable() {
            // Producers run inside their waiters, thousands deep in a chain of nested `get`:
            // near the end of the stack the run continues on a fresh segment.
            Some(task) => {
                stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, || self.run_task(&cell, task));
                true
            }
            None => false,
        }
    }

    /// Wakes the waiters of settled objects.
    pub(crate) fn wake(self: &Arc<Self>, waiters: Vec<Waiter>) {
        if !waiters.is_empty() {
            store::wake(waiters, |cell| self.enqueue(cell));
        }
    }

    /// Settles an object and wakes its waiters.
    pub(crate) fn settle(self: &Arc<Self>, id: ObjectId, result: Result<store::Value>) {
        let waiters = self.store.complete(id, result);
        self.wake(waiters);
    }

    // ---- blocking -------------------------------------------------------------------------

    /// `Backend::get`: blocks until every object is settled, in order.
    pub(crate) fn get(
        self: &Arc<Self>,
        ids: &[ObjectId],
        timeout: Option<Duration>,
    ) -> Result<Vec<Payload>> {
        self.check_open()?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut out = Vec::with_capacity(ids.len());
        // One signal for the whole call, registered on the awaited object and on every later
        // one: an object that fails while an earlier one is still pending ends the call at
        // once with its error.
        let mut signal: Option<Arc<Signal>> = None;
        // Objects from this index on were registered on `signal` together.
        let mut registered_from: Option<usize> = None;
        for (i, &id) in ids.iter().enumerate() {
            let mut registered = registered_from.is_some_and(|from| i >= from);
            loop {
                // Read before the lookup: an object registered on `signal` that settles between
                // the lookup and the block raises the count past this, so the block returns.
                // (Read after the lookup, that settlement was counted in `seen` and lost.)
                let seen = signal.as_ref().map_or(0, |s| s.hits());
                match self.store.lookup(id) {
                    Lookup::Ready(v) => {
                        out.push(Payload::Local(v));
                        break;
                    }
                    Lookup::Failed(e) => return Err(e),
                    Lookup::Missing => return Err(self.missing(id)),
                    Lookup::Pending(producer) => {
                        if self.run_producer(producer) {
                            continue;
                        }
                        // A new signal counts from zero, which `seen` already is.
                        let signal = signal.get_or_insert_with(Signal::for_current_thread);
                        if !registered {
                            // Not registered means it settled in between: look again.
                            if !self.store.register(id, Waiter::Thread(signal.clone())) {
                                continue;
                            }
                            registered = true;
                        }
                        let later = &ids[i + 1..];
                        if registered_from.is_none() {
                            registered_from = Some(i + 1);
                            for &l in later {
                                self.store.register(l, Waiter::Thread(signal.clone()));
                            }
                            // Failed before it could be registered.
                            if let Some(e) = self.first_failed(later) {
                                return Err(e);
                            }
                        }
                        if !self.block(signal, seen + 1, deadline) {
                            return Err(Error::Timeout {
                                what: id.to_string(),
                                after: timeout.unwrap_or_default(),
                            });
                        }
                        if signal.saw_failure() {
                            if let Some(e) = self.first_failed(later) {
                                return Err(e);
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// The error of the first of `ids` that failed or is gone, if any.
    fn first_failed(&self, ids: &[ObjectId]) -> Option<Error> {
        ids.iter().find_map(|&id| match self.store.lookup(id) {
            Lookup::Failed(e) => Some(e),
            Lookup::Missing => Some(self.missing(id)),
            _ => None,
        })
    }

    /// `Backend::wait`: blocks until `num_returns` objects are settled or time runs out, and
    /// returns which are.
    pub(crate) fn wait(
        self: &Arc<Self>,
        ids: &[ObjectId],
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<bool>> {
        self.check_open()?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut settled = ids.iter().filter(|id| self.store.is_settled(**id)).count();
        if settled < num_returns && self.is_worker() {
            for &id in ids {
                if settled >= num_returns {
                    break;
                }
                if let Lookup::Pending(producer) = self.store.lookup(id) {
                    if self.run_producer(producer) {
                        settled += 1;
                    }
                }
            }
            settled = ids.iter().filter(|id| self.store.is_settled(**id)).count();
        }
        if settled < num_returns {
            let signal = Signal::for_current_thread();
            let mut settled_now = 0;
            for &id in ids {
                if !self.store.register(id, Waiter::Thread(signal.clone())) {
                    settled_now += 1;
                }
            }
            // Registrations on objects that settle after this returns stay until they settle;
            // they only cost a spurious wake-up.
            self.block(&signal, num_returns.saturating_sub(settled_now), deadline);
        }
        Ok(ids.iter().map(|id| self.store.is_settled(*id)).collect())
    }

    pub(crate) fn missing(&self, id: ObjectId) -> Error {
        if self.is_closed() {
            Error::ShutDown
        } else {
            Error::StaleRef {
                what: id.to_string(),
            }
        }
    }

    /// Blocks until `signal` counted `target` settlements; false if the deadline passed first.
    /// A worker lends its slot to a compensation thread while it is blocked.
    fn block(self: &Arc<Self>, signal: &Signal, target: usize, deadline: Option<Instant>) -> bool {
        for _ in 0..SPINS_BEFORE_PARK {
            if signal.hits() >= target {
                return true;
            }
            std::hint::spin_loop();
        }
        let worker = self.is_worker();
        if worker {
            self.lend_slot();
        }
        let done = loop {
            if signal.hits() >= target {
                break true;
            }
            match deadline {
                None => std::thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break signal.hits() >= target;
                    }
                    std::thread::park_timeout(d - now);
                }
            }
        };
        if worker {
            self.comp.blocked.fetch_sub(1, Ordering::SeqCst);
        }
        done
    }

    // ---- compensation ---------------------------------------------------------------------

    /// The run on some worker lost its outputs (timed out or cancelled) but its body cannot
    /// be interrupted: that worker lends its slot as if it were blocked, and shutdown no longer
    /// waits for it. [`return_slot`](Shared::return_slot) is called when the body returns.
    pub(crate) fn abandon_slot(self: &Arc<Self>) {
        self.abandoned.fetch_add(1, Ordering::AcqRel);
        self.lend_slot();
    }

    /// An abandoned run's body returned on this thread; it holds its slot again.
    pub(crate) fn return_slot(&self) {
        self.comp.blocked.fetch_sub(1, Ordering::SeqCst);
        self.abandoned.fetch_sub(1, Ordering::AcqRel);
    }

    fn lend_slot(self: &Arc<Self>) {
        let blocked = self.comp.blocked.fetch_add(1, Ordering::SeqCst) + 1;
        let mut active = self.comp.active.load(Ordering::SeqCst);
        while active < blocked {
            match self.comp.active.compare_exchange(
                active,
                active + 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    self.activate_compensator();
                    return;
                }
                Err(a) => active = a,
            }
        }
    }

    /// Hands one activation (already counted in `active`) to an idle compensation thread, or
    /// to a new one.
    fn activate_compensator(self: &Arc<Self>) {
        if let Some(slot) = self.comp.idle.lock().pop() {
            slot.activated.store(true, Ordering::SeqCst);
            slot.thread.unpark();
            return;
        }
        let started = if self.comp.threads.fetch_add(1, Ordering::SeqCst) < MAX_COMPENSATORS {
            let shared = self.clone();
            std::thread::Builder::new()
                .name("unidist-pymp-x".into())
                .stack_size(WORKER_STACK_SIZE)
                .spawn(move || shared.compensate())
                .map_err(|e| e.to_string())
        } else {
            Err(format!("the limit of {MAX_COMPENSATORS} is reached"))
        };
        if let Err(reason) = started {
            self.comp.threads.fetch_sub(1, Ordering::SeqCst);
            self.comp.active.fetch_sub(1, Ordering::SeqCst);
            if !self.comp.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    reason = %reason,
                    "cannot start a compensation thread; blocked tasks now hold their pool slots"
                );
            }
        }
    }

    /// The loop of a compensation thread: while active, run queued tasks; when fewer workers
    /// are blocked than compensation threads are active, go idle; end when idle too long or at
    /// shutdown.
    fn compensate(self: Arc<Self>) {
        WORKER_OF.with(|w| w.set(self.instance));
        loop {
            // Active.
            loop {
                if self.is_closed() {
                    self.comp.active.fetch_sub(1, Ordering::SeqCst);
                    self.comp.threads.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
                let active = self.comp.active.load(Ordering::SeqCst);
                if active > self.comp.blocked.load(Ordering::SeqCst)
                    && self
                        .comp
                        .active
                        .compare_exchange(active, active - 1, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                {
                    break;
                }
                match self.queue_rx.recv_timeout(COMPENSATOR_RECHECK) {
                    Ok(cell) => self.run_cell(&cell),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        unreachable!("the queue sender lives in Shared")
                    }
                }
            }
            // Idle.
            let slot = Arc::new(IdleSlot {
                activated: AtomicBool::new(false),
                thread: std::thread::current(),
            });
            self.comp.idle.lock().push(slot.clone());
            let until = Instant::now() + COMPENSATOR_IDLE_EXIT;
            loop {
                if slot.activated.load(Ordering::SeqCst) {
                    break;
                }
                let now = Instant::now();
                if self.is_closed() || now >= until {
                    let mut idle = self.comp.idle.lock();
                    if let Some(i) = idle.iter().position(|s| Arc::ptr_eq(s, &slot)) {
                        idle.swap_remove(i);
                        drop(idle);
                        self.comp.threads.fetch_sub(1, Ordering::SeqCst);
                        return;
                    }
                    drop(idle);
                    // An activator took this slot from the list and sets the flag next.
                    while !slot.activated.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                    break;
                }
                std::thread::park_timeout(until - now);
            }
        }
    }
}

/// The outputs of one call, settled once with its values or its error.
pub(crate) struct Completion {
    ids: IdRange,
    name: &'static str,
}

impl Completion {
    pub(crate) fn new(ids: IdRange, name: &'static str) -> Self {
        Completion { ids, name }
    }

    /// The call whose outputs these are.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Settles every output with its value, or all of them with the error.
    pub(crate) fn finish(self, shared: &Arc<Shared>, result: Result<Outputs>) {
        match result {
            Ok(outputs) => {
                for (id, v) in self.ids.iter().zip(outputs) {
                    shared.settle(id, Ok(v));
                }
            }
            Err(e) => {
                if self.ids.is_empty() {
                    // Nothing can hold the error of a call without returns: report it here.
                    tracing::warn!(call = self.name, error = %e, "a call without returns failed");
                }
                for id in self.ids.iter() {
                    shared.settle(id, Err(e.clone()));
                }
            }
        }
    }
}
