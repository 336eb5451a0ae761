//! Local pool backend of unidist: tasks on a rayon pool, actors on actix, objects in memory.
//!
//! **This is an internal crate of unidist for Rust**; use it through the `unidist` crate
//! (`UNIDIST_BACKEND=pymp`, the default on one machine). Its API may change between any two
//! releases.
//!
//! # Architecture
//!
//! **Pool.** Tasks run on a dedicated rayon [`ThreadPool`](rayon::ThreadPool) of
//! `UNIDIST_CPUS` threads (`unidist-pymp-N`, 16 MiB stacks of which only touched pages are
//! resident), with a panic handler; panics never reach it, because every task body runs inside
//! `unidist_core::task::run_function`, which turns a panic into the task's error value.
//! Runnable tasks go into one FIFO run queue; pool jobs *drain* it: at most one job per pool
//! thread exists at a time, started when a task is queued and fewer are running, and each runs
//! tasks until the queue stays empty for a moment. A busy pool therefore costs no allocation or
//! wake-up per task.
//!
//! **Store.** Objects live in a map sharded 64 ways (runs of 32 consecutive ids per shard,
//! keyed so that consecutive ids sit in neighbouring buckets), each shard behind its own mutex.
//! A slot (32 bytes) is *pending* (with its waiters and the task that will settle it), *ready*
//! (an `Arc` of the value) or *failed* (the error every reader gets), plus a count of
//! process-local references. Ids come from a process-wide counter, so a ref kept from before a
//! `shutdown` never names an object of a later runtime. `put`, `submit` and `call_actor` return
//! ids holding one reference; dropping the last `ObjectRef` releases it and the slot is removed,
//! also while its task still runs (the result is then dropped when the task finishes). Nothing
//! is dropped while a shard lock is held, because a value may itself hold refs whose release
//! re-enters the store.
//!
//! **Scheduling.** A task is queued only when every argument ref is settled: at submission it
//! registers as a waiter on each pending argument, and the settlement of the last one queues it
//! (from whichever thread settled it). No pool thread ever sleeps waiting for an argument. A
//! task with a failed argument fails without running, by the rule of
//! `unidist_core::call::resolve_args`. Values are passed as `Payload::Local(Arc<..>)`: `&T`
//! parameters borrow the stored value in place, and nothing is serialized. A `T` parameter takes
//! a value passed directly to a task, an actor's constructor or an `async fn` method without a
//! copy, as the run holds it alone. It costs one clone for an object of the store, in a run that
//! may be followed by another (retries left, or a timeout, whose copy of the task kept for the
//! next run shares the values), and in a sync actor method: its call keeps its inputs until it
//! has started, to read them again if the actor's state was locked, and a sync method runs
//! while it starts.
//!
//! **Blocking inside tasks.** `get` and `wait` spin briefly, then park until the objects settle.
//! A *worker* (pool or compensation thread) must not idle its slot meanwhile:
//! - if the awaited object's task is queued and not started, the worker takes it and runs it
//!   itself (the blocked task needs it anyway, so this is always safe); recursive `fib` through
//!   nested tasks runs this way without any thread switch;
//! - otherwise it *lends its slot*: it counts as blocked, and for every blocked worker one
//!   compensation thread (`unidist-pymp-x`, started on demand, idle ones end after 10 s) runs
//!   queued tasks, so as many threads as the pool has keep running tasks whatever the blocked
//!   ones wait for (results of other tasks, actor calls, a SignalActor). Up to 8192
//!   compensation threads exist at once.
//!
//! A blocked worker never runs unrelated tasks on its own stack: such a task could wait for the
//! blocked one's continuation and deadlock.
//!
//! **Actors.** `start` runs an actix `System` on its own thread (`unidist-pymp-actors`), so
//! users need no actix or Tokio `main`. Each actor gets its own `Arbiter`: an OS thread with a
//! single-threaded Tokio runtime (timers, no I/O driver, so no file descriptors per actor). On it
//! an actix actor owns the `ActorInstance` and handles calls from an unbounded queue
//! (`do_send`): each call waits for its argument refs, then starts with
//! `ActorInstance::begin(..)`, strictly in call order (the mailbox is held back with
//! `Context::wait` while a call waits for arguments or for the state lock). A sync method has
//! run when `begin` returns; an `async fn` continues as a task on the arbiter's runtime, so an
//! actor awaiting in one call still serves the others (the SignalActor pattern). A sync method
//! that blocks, for example in `get`, blocks only its own actor. A panicking method is that
//! call's error; the actor keeps serving. `kill` stops the arbiter: calls queued behind it and
//! later calls fail with `Error::ActorDead`. When the last handle is dropped the actor ends
//! after its queued calls and its running async calls. A call owns a guard for its outputs: if
//! the call is dropped unsettled (its actor ended, the runtime stopped), the guard settles each
//! output with the error that says why, so no reader waits forever.
//!
//! **Shutdown.** `shutdown` marks the runtime closed (new calls fail with `Error::ShutDown`;
//! queued tasks settle with that error instead of running), waits for running tasks up to
//! [`PoolOptions::shutdown_grace`] (saying how many it abandons, through `tracing` or else on
//! stderr: their threads stay busy), stops every actor and the actor system, then removes
//! every object and wakes every blocked reader with `Error::ShutDown`. The pool threads end
//! once the backend is dropped; a task that calls `shutdown` does not wait for itself. `init`
//! after `shutdown` starts a fresh backend.
//!
//! **Fault tolerance.** Every task's outputs are settled once, by whichever comes first: its run,
//! the timer, or `cancel`. With `retry_exceptions` a panicking body is re-run at once on the same
//! thread (`unidist_core::retry`). With a `timeout`, each run is watched by one timer thread per
//! backend (`unidist-pymp-timer`, started with the first timed task); when a run is still going
//! at its deadline it is *abandoned*: its outputs fail with `Timeout` (or, while retries are
//! left, the task is queued again and runs on another thread), and its thread lends its slot to
//! a compensation thread exactly as a blocked worker does, so the pool keeps its strength and
//! shutdown does not wait for it. The stray body cannot be interrupted; its result is dropped
//! when it returns and its thread takes its slot back. `cancel` of a task not started takes it
//! out of its cell (it never runs); of a running one abandons the run the same way; of a
//! settled object does nothing. Pending actor method calls cannot be cancelled yet
//! (`Unsupported`). A `get` of several objects registers on every pending one, so a failure of
//! a later object ends the call at once.
//!
//! # Guarantees
//!
//! - A task runs only after all its arguments are ready, and never if one failed; it runs once
//!   unless its options allow retries.
//! - Every output of a failed task or method holds the same error; readers never hang on a
//!   call that cannot complete (failure, kill, shutdown).
//! - A task blocked in `get` or `wait` never starves the pool, whatever it waits for and however
//!   few threads the pool has (within the compensation-thread limit).
//! - Calls on one actor start in call order; a caller is never blocked or dropped by a full
//!   mailbox.
//! - An object is freed when its last ref is dropped.
//!
//! Limits: a method that never returns keeps its actor's thread, and a task that never
//! returns keeps its pool thread, also after `shutdown`. `TaskOptions::num_cpus` is accepted
//! and not used for placement (every task takes one pool slot). Async methods can use Tokio
//! timers and synchronization, not Tokio I/O. Rayon parallel iterators inside a task run on
//! the pool; while one waits for its parts, rayon may run other queued work on the same thread.
//!
//! **Awaiting.** `.await` on a ref registers a counting waiter on each pending object (the
//! same waiter lists as blocked threads and tasks); the thread that settles the object wakes the
//! awaiting task. No thread blocks or polls for an await.
//!
//! # Costs and what is measured
//!
//! Each actor costs one OS thread (with the platform's default stack, mostly unreserved) and
//! one Tokio current-thread runtime: measured on a 2-core machine, about 22 KiB resident per
//! actor with 1,000 actors and 27 KiB with 10,000, and 50-230 us to create one (depending on
//! load). 10,000 concurrent actors need a thread limit (`ulimit -u`) above 10,000.
//!
//! The benchmark program's `floors-local` suite (`cargo run --release -p unidist-bench --
//! floors-local`, run by `cargo xtask bench`) measures each target of the pool backend against
//! its bare floor on the same number of threads: async empty tasks and a synchronous round trip
//! against bare rayon `spawn` + channel, actor calls against a bare actix `Addr::send` loop, and
//! a 64 MiB object read by a task through `&T` against one 64 MiB `memcpy`. The soak suite
//! (`cargo xtask soak`) checks that a million tasks whose refs are dropped keep memory flat.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use unidist_core::{
    ActorCall, ActorId, ActorSpec, Backend, ClusterResources, ErasedValue, Error, ObjectId,
    Payload, Result, Subscription, TaskSpec,
};

mod actors;
mod control;
mod shared;
mod store;
mod tasks;

use actors::Actors;
use shared::{Completion, Shared};
use tasks::{object_args, Task, TaskCell};

/// Settings of a pool backend.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolOptions {
    /// Threads of the task pool.
    pub num_threads: usize,
    /// How long `shutdown` waits for running tasks before it abandons them.
    pub shutdown_grace: Duration,
}

impl PoolOptions {
    /// The default grace period of `shutdown`.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

    /// `num_threads` pool threads and the default grace period.
    pub fn new(num_threads: usize) -> Self {
        PoolOptions {
            num_threads,
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
        }
    }

    /// Options from configuration: `UNIDIST_CPUS` threads and the default grace period.
    pub fn from_config() -> Result<Self> {
        Ok(Self::new(unidist_config::CpuCount::get()?))
    }

    /// Sets the number of pool threads (at least 1).
    pub fn num_threads(mut self, n: usize) -> Self {
        self.num_threads = n;
        self
    }

    /// Sets how long `shutdown` waits for running tasks.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }
}

/// Starts the pool backend with `UNIDIST_CPUS` threads.
pub fn start() -> Result<Arc<dyn Backend>> {
    start_with(PoolOptions::from_config()?)
}

/// Starts the pool backend with explicit options.
pub fn start_with(options: PoolOptions) -> Result<Arc<dyn Backend>> {
    if options.num_threads == 0 {
        return Err(Error::invalid("number of pool threads", 0, "at least 1"));
    }
    let shared = Arc::new(Shared::new(options.num_threads)?);
    let actors = Actors::start()?;
    Ok(Arc::new(PympBackend {
        shared,
        actors,
        options,
        shut_down: Mutex::new(false),
    }))
}

/// The pool backend.
struct PympBackend {
    shared: Arc<Shared>,
    actors: Actors,
    options: PoolOptions,
    shut_down: Mutex<bool>,
}

impl Backend for PympBackend {
    fn name(&self) -> &'static str {
        "pymp"
    }

    fn capabilities(&self) -> unidist_core::Capabilities {
        // Each actor runs on its own thread (an actix arbiter).
        unidist_core::Capabilities::new()
            .thread_per_actor(true)
            .fault_tolerance(true)
    }

    fn put(&self, value: Arc<dyn ErasedValue>) -> Result<ObjectId> {
        self.shared.check_open()?;
        Ok(self.shared.store.insert_ready(value))
    }

    fn submit(&self, task: TaskSpec) -> Result<Vec<ObjectId>> {
        self.shared.check_open()?;
        let TaskSpec {
            function,
            args,
            options,
        } = task;
        let object_args: Vec<ObjectId> = object_args(&args).collect();
        let ids = store::Store::next_ids(function.num_returns);
        let task = Task {
            function,
            args,
            options,
            flow: unidist_core::observe::timeline::current_flow(),
        };
        let done = Completion::new(ids, function.name);
        let cell = Arc::new(TaskCell::new(task, object_args.len(), done));
        self.shared.store.insert_pending_ids(ids, Some(&cell));
        if object_args.is_empty() || cell.register_arguments(&self.shared.store, &object_args) {
            self.shared.enqueue(cell);
        }
        Ok(ids.to_vec())
    }

    fn get(&self, ids: &[ObjectId], timeout: Option<Duration>) -> Result<Vec<Payload>> {
        self.shared.get(ids, timeout)
    }

    fn wait(
        &self,
        ids: &[ObjectId],
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<bool>> {
        self.shared.wait(ids, num_returns, timeout)
    }

    fn release(&self, id: ObjectId) {
        self.shared.store.release(id);
    }

    fn ref_deserialized(&self, id: ObjectId) -> Result<()> {
        if self.shared.store.add_ref(id) {
            Ok(())
        } else {
            Err(Error::StaleRef {
                what: id.to_string(),
            })
        }
    }

    fn create_actor(&self, spec: ActorSpec) -> Result<ActorId> {
        self.shared.check_open()?;
        self.actors.create(&self.shared, spec.class, spec.args)
    }

    fn call_actor(&self, call: ActorCall) -> Result<Vec<ObjectId>> {
        self.shared.check_open()?;
        self.actors
            .call(&self.shared, call.actor, call.method, call.args)
    }

    fn cancel(&self, id: ObjectId) -> Result<()> {
        self.shared.check_open()?;
        match self.shared.store.lookup(id) {
            store::Lookup::Ready(_) | store::Lookup::Failed(_) => Ok(()),
            store::Lookup::Missing => Err(self.shared.missing(id)),
            store::Lookup::Pending(Some(cell)) => {
                cell.cancel(&self.shared);
                Ok(())
            }
            store::Lookup::Pending(None) => Err(Error::Unsupported {
                what: "cancelling a pending actor method call".into(),
                backend: "pymp",
            }),
        }
    }

    fn kill_actor(&self, actor: ActorId) -> Result<()> {
        self.shared.check_open()?;
        self.actors.kill(actor);
        Ok(())
    }

    fn release_actor(&self, actor: ActorId) {
        self.actors.release(actor);
    }

    fn actor_deserialized(&self, actor: ActorId) -> Result<()> {
        self.actors.add_handle(actor)
    }

    fn num_cpus(&self) -> usize {
        self.shared.num_threads()
    }

    fn cluster_resources(&self) -> Result<ClusterResources> {
        let cpus = BTreeMap::from([("CPU".to_string(), self.num_cpus() as f64)]);
        Ok(BTreeMap::from([(self.get_ip(), cpus)]))
    }

    fn on_ready(&self, subscription: Subscription) {
        // Values never leave this process, so `Local` and `Settled` are the same here.
        let (ids, at_least, notify) = subscription.into_parts();
        if at_least == 0 {
            notify.fire();
            return;
        }
        let count = store::ReadyCount::new(at_least, notify);
        for id in ids {
            // Not registered: settled already, or gone (sampling then gives the error).
            if !self
                .shared
                .store
                .register(id, store::Waiter::Ready(count.clone()))
            {
                count.hit();
            }
        }
    }

    fn shutdown(&self) -> Result<()> {
        let mut done = self.shut_down.lock();
        if *done {
            return Ok(());
        }
        *done = true;
        let started = Instant::now();
        let deadline = started + self.options.shutdown_grace;
        self.shared.close();
        // Running tasks finish while actors still serve them; queued ones settle with
        // `ShutDown` as they come up.
        loop {
            let left = self.shared.running_elsewhere();
            if left == 0 {
                break;
            }
            if Instant::now() >= deadline {
                report_abandoned(&format!(
                    "shutdown abandoned {left} running task(s) that did not finish within {:?}; \
                     their threads stay busy until the tasks return",
                    self.options.shutdown_grace
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // Tasks still queued (their pool threads are stuck) settle with `ShutDown`.
        self.shared.drop_queued();
        // Actors get at least a short while even when the tasks used up the grace period.
        let actor_deadline = deadline.max(Instant::now() + Duration::from_millis(100));
        let stuck = self.actors.shutdown(&self.shared, actor_deadline);
        if stuck > 0 {
            report_abandoned(&format!(
                "shutdown abandoned {stuck} actor(s) whose running method did not return in time"
            ));
        }
        // Free every object; readers still blocked on pending ones wake up with `ShutDown`.
        let waiters = self.shared.store.clear();
        self.shared.wake(waiters);
        // Tasks that were waiting for arguments were just queued by the wake-up above.
        self.shared.drop_queued();
        tracing::debug!(elapsed = ?started.elapsed(), "pymp backend shut down");
        Ok(())
    }
}

/// Says what `shutdown` gave up on: through `tracing` when the program installed a subscriber,
/// else on stderr, so that abandoned work is never silent.
fn report_abandoned(message: &str) {
    tracing::warn!("{message}");
    if !tracing::dispatcher::has_been_set() {
        eprintln!("unidist pymp: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_threads_is_rejected() {
        let err = start_with(PoolOptions::new(0)).err().unwrap();
        assert_eq!(err.kind(), unidist_core::ErrorKind::InvalidArgument);
    }

    #[test]
    fn put_get_release_and_shutdown() {
        let b = start_with(PoolOptions::new(1)).unwrap();
        let id = b.put(Arc::new(5i64)).unwrap();
        let v = b.get(&[id], None).unwrap();
        assert_eq!(v[0].take::<i64>().unwrap(), 5);
        b.release(id);
        assert_eq!(
            b.get(&[id], None).unwrap_err().kind(),
            unidist_core::ErrorKind::StaleRef
        );
        assert_eq!(b.num_cpus(), 1);
        let res = b.cluster_resources().unwrap();
        assert_eq!(res[&b.get_ip()]["CPU"], 1.0);
        b.shutdown().unwrap();
        b.shutdown().unwrap();
        assert_eq!(
            b.put(Arc::new(1u8)).unwrap_err().kind(),
            unidist_core::ErrorKind::ShutDown
        );
    }
}
