//! State shared by the backend, its pool jobs and its actors: the store, the pool, the
//! completion guard of every call, and the blocking `get`/`wait` logic.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rayon::{ThreadPool, Yield};
use unidist_core::{Error, ObjectId, Outputs, Payload, Result, TaskError, TaskFailure};

use crate::actors::ActorInfo;
use crate::store::{self, Lookup, Signal, Store, Waiter};
use crate::tasks::{PendingTask, Task};

/// How many tasks a blocked pool thread may stack on top of each other while helping.
///
/// Each level costs one task's frames on the thread's stack; past this depth the thread parks
/// instead of helping, so a pathological nesting cannot overflow the stack.
const MAX_HELP_DEPTH: usize = 512;

/// Stack size of pool threads: room for [`MAX_HELP_DEPTH`] nested tasks. Only touched pages
/// become resident.
pub(crate) const POOL_STACK_SIZE: usize = 64 << 20;

/// Longest sleep of a pool thread that waits with nothing to help with; new work and the
/// awaited objects wake it earlier.
const MAX_HELPER_PARK: Duration = Duration::from_millis(1);

/// Spins of a non-pool thread before it parks: a short task is often done by then, and
/// parking costs a futex round trip.
const SPINS_BEFORE_PARK: u32 = 64;

thread_local! {
    /// Tasks stacked on this pool thread by helping.
    static HELP_DEPTH: Cell<usize> = const { Cell::new(0) };
    /// Tasks of this backend running on this thread (more than one when helping).
    static RUNNING: Cell<usize> = const { Cell::new(0) };
}

/// Pool threads parked in `get`/`wait` with nothing to help with.
#[derive(Default)]
struct IdleHelpers {
    count: AtomicUsize,
    threads: Mutex<Vec<Thread>>,
}

impl IdleHelpers {
    fn enter(&self) {
        self.threads.lock().push(std::thread::current());
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    fn leave(&self) {
        let me = std::thread::current().id();
        let mut threads = self.threads.lock();
        if let Some(i) = threads.iter().position(|t| t.id() == me) {
            threads.swap_remove(i);
        }
        self.count.fetch_sub(1, Ordering::SeqCst);
    }

    /// Called after work was queued: blocked pool threads come back to help with it.
    fn wake(&self) {
        if self.count.load(Ordering::SeqCst) > 0 {
            for t in self.threads.lock().iter() {
                t.unpark();
            }
        }
    }
}

/// Everything pool jobs and actors need; the backend owns one, jobs and actors hold clones.
pub(crate) struct Shared {
    pub(crate) store: Store,
    pool: ThreadPool,
    closed: AtomicBool,
    /// Tasks handed to the pool and not finished.
    in_flight: AtomicUsize,
    /// Actor event loops not yet ended.
    pub(crate) live_actors: AtomicUsize,
    idle: IdleHelpers,
}

impl Shared {
    pub(crate) fn new(pool: ThreadPool) -> Self {
        Shared {
            store: Store::new(),
            pool,
            closed: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            live_actors: AtomicUsize::new(0),
            idle: IdleHelpers::default(),
        }
    }

    pub(crate) fn num_threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// True once shutdown began.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// `Err(ShutDown)` once shutdown began.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(Error::ShutDown)
        } else {
            Ok(())
        }
    }

    /// Tasks in flight, minus those running on the calling thread (a task that calls
    /// `shutdown` must not wait for itself).
    pub(crate) fn in_flight_elsewhere(&self) -> usize {
        let mine = if self.on_pool_thread() { RUNNING.with(Cell::get) } else { 0 };
        self.in_flight.load(Ordering::Acquire).saturating_sub(mine)
    }

    fn on_pool_thread(&self) -> bool {
        self.pool.current_thread_index().is_some()
    }

    // ---- running tasks --------------------------------------------------------------------

    /// Queues a task whose arguments are all settled.
    pub(crate) fn spawn(self: &Arc<Self>, task: Task) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let shared = self.clone();
        self.pool.spawn(move || {
            RUNNING.with(|c| c.set(c.get() + 1));
            task.run(&shared);
            RUNNING.with(|c| c.set(c.get() - 1));
            shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        });
        self.idle.wake();
    }

    /// Queues a task whose last pending argument just settled.
    pub(crate) fn launch(self: &Arc<Self>, pending: Arc<PendingTask>) {
        if let Some(task) = pending.take() {
            self.spawn(task);
        }
    }

    /// Wakes the waiters of settled objects.
    pub(crate) fn wake(self: &Arc<Self>, waiters: Vec<Waiter>) {
        if !waiters.is_empty() {
            store::wake(waiters, |p| self.launch(p));
        }
    }

    /// Settles an object and wakes its waiters.
    pub(crate) fn settle(self: &Arc<Self>, id: ObjectId, result: Result<store::Value>) {
        let waiters = self.store.complete(id, result);
        self.wake(waiters);
    }

    // ---- blocking -------------------------------------------------------------------------

    /// `Backend::get`: blocks until every object is settled, in order.
    pub(crate) fn get(&self, ids: &[ObjectId], timeout: Option<Duration>) -> Result<Vec<Payload>> {
        self.check_open()?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            loop {
                match self.store.lookup(id) {
                    Lookup::Ready(v) => {
                        out.push(Payload::Local(v));
                        break;
                    }
                    Lookup::Failed(e) => return Err(e),
                    Lookup::Missing => return Err(self.missing(id)),
                    Lookup::Pending => {
                        let signal = Signal::for_current_thread();
                        // Not registered means it settled in between: look again.
                        if self.store.register(id, Waiter::Thread(signal.clone()))
                            && !self.block(&signal, 1, deadline)
                        {
                            return Err(Error::Timeout {
                                what: id.to_string(),
                                after: timeout.unwrap_or_default(),
                            });
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// `Backend::wait`: blocks until `num_returns` objects are settled or time runs out, and
    /// returns which are.
    pub(crate) fn wait(&self, ids: &[ObjectId], num_returns: usize, timeout: Option<Duration>) -> Result<Vec<bool>> {
        self.check_open()?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let settled = ids.iter().filter(|id| self.store.is_settled(**id)).count();
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

    fn missing(&self, id: ObjectId) -> Error {
        if self.is_closed() {
            Error::ShutDown
        } else {
            Error::StaleRef { what: id.to_string() }
        }
    }

    /// Blocks until `signal` counted `target` settlements; false if the deadline passed first.
    fn block(&self, signal: &Signal, target: usize, deadline: Option<Instant>) -> bool {
        if self.on_pool_thread() {
            return self.help_until(signal, target, deadline);
        }
        for _ in 0..SPINS_BEFORE_PARK {
            if signal.hits() >= target {
                return true;
            }
            std::hint::spin_loop();
        }
        loop {
            if signal.hits() >= target {
                return true;
            }
            match deadline {
                None => std::thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return signal.hits() >= target;
                    }
                    std::thread::park_timeout(d - now);
                }
            }
        }
    }

    /// The blocking loop of a pool thread: run other queued work of the pool while waiting,
    /// so that a task waiting for tasks it submitted never starves the pool, however few
    /// threads it has. With nothing to run, park briefly; queued work and the awaited
    /// objects unpark it.
    fn help_until(&self, signal: &Signal, target: usize, deadline: Option<Instant>) -> bool {
        let depth = HELP_DEPTH.with(Cell::get);
        let mut park = Duration::from_micros(20);
        loop {
            if signal.hits() >= target {
                return true;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return false;
            }
            if depth < MAX_HELP_DEPTH && self.help_once(depth) {
                park = Duration::from_micros(20);
                continue;
            }
            self.idle.enter();
            // Work queued between the attempt above and `enter` woke nobody: try once more.
            let helped = depth < MAX_HELP_DEPTH && self.help_once(depth);
            if !helped && signal.hits() < target {
                let mut nap = park;
                if let Some(d) = deadline {
                    nap = nap.min(d.saturating_duration_since(now));
                }
                std::thread::park_timeout(nap);
                park = (park * 2).min(MAX_HELPER_PARK);
            }
            self.idle.leave();
        }
    }

    fn help_once(&self, depth: usize) -> bool {
        HELP_DEPTH.with(|c| c.set(depth + 1));
        let r = self.pool.yield_now();
        HELP_DEPTH.with(|c| c.set(depth));
        r == Some(Yield::Executed)
    }
}

/// How a call that never ran is reported.
pub(crate) enum Lost {
    Task,
    Actor(Arc<ActorInfo>),
}

/// The outputs of one call. Settling them is its last act; if it is dropped unsettled (the
/// actor ended or the runtime stopped first), every output gets the error saying why, so no
/// reader waits forever.
pub(crate) struct Completion {
    shared: Arc<Shared>,
    ids: Vec<ObjectId>,
    name: &'static str,
    lost: Lost,
    armed: bool,
}

impl Completion {
    pub(crate) fn new(shared: Arc<Shared>, ids: Vec<ObjectId>, name: &'static str, lost: Lost) -> Self {
        Completion {
            shared,
            ids,
            name,
            lost,
            armed: true,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Settles every output with its value, or all of them with the error.
    pub(crate) fn finish(mut self, result: Result<Outputs>) {
        self.armed = false;
        self.settle(result);
    }

    fn settle(&mut self, result: Result<Outputs>) {
        match result {
            Ok(outputs) => {
                for (id, v) in self.ids.iter().zip(outputs) {
                    self.shared.settle(*id, Ok(v));
                }
            }
            Err(e) => {
                if self.ids.is_empty() {
                    // Nothing can hold the error of a call without returns: report it here.
                    tracing::warn!(call = self.name, error = %e, "a call without returns failed");
                }
                for id in &self.ids {
                    self.shared.settle(*id, Err(e.clone()));
                }
            }
        }
    }

    /// The error of a call that cannot run any more.
    pub(crate) fn lost_error(&self) -> Error {
        if self.shared.is_closed() {
            return Error::ShutDown;
        }
        match &self.lost {
            Lost::Task => Error::from(TaskError::new(
                self.name,
                TaskFailure::Lost,
                "the pool dropped it before it ran",
            )),
            Lost::Actor(info) => info.dead_error(),
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if self.armed {
            self.armed = false;
            let e = self.lost_error();
            self.settle(Err(e));
        }
    }
}
