//! Executors of a worker rank: the task pool, and the hooks that tie an actor's thread to the
//! node.
//!
//! The pool keeps `target` threads able to run tasks. A task that blocks in `get` on a child
//! still queued here runs the child itself, on its own thread ([`help`], as work-stealing pools
//! do), up to [`HELP_DEPTH`] levels deep. A task that blocks otherwise in `get`/`wait` (or an
//! actor lookup) lends its slot: the pool starts a replacement thread while it waits, and the
//! surplus thread retires after the task it is running, so nested `get` never deadlocks the
//! pool whatever its size. Each actor runs on core's [`unidist_core::actor::ActorThread`]
//! (calls start in arrival order, `async fn` calls continue concurrently); [`MpiHooks`] carry
//! each call's reply back to the node.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use unidist_core::actor::{CallHooks, CallResult};
use unidist_core::registry::RemoteFunction;
use unidist_core::{retry, ActorId, DeadReason, Error, ObjectId, Payload, TaskError};

use crate::node::{Node, Reply, Ticket, Timer};

/// How long a task thread polls for the next task before it sleeps.
const JOB_SPIN: Duration = Duration::from_micros(100);
/// How many tasks one thread runs inside each other while their parents wait for them
/// ([`help`]); deeper, a waiting task lends its slot instead, so that a 10,000-deep chain of
/// nested `get` does not grow one thread's stack 10,000 frames deep.
pub(crate) const HELP_DEPTH: usize = 32;
/// How many of the most recently queued tasks a waiting task looks through for its children.
const HELP_SCAN: usize = 64;

/// Arguments of a call once resolved: every payload, or the error that fails the call
/// ([`unidist_core::call::resolve_args`]).
pub(crate) type Args = Result<Vec<Payload>, TaskError>;

/// A task ready to run.
pub(crate) struct Job {
    pub func: &'static RemoteFunction,
    pub args: Args,
    pub reply: Reply,
    /// Who settles its outputs: its runs, the timer or a cancel (`node/control.rs`).
    pub ticket: Arc<Ticket>,
}

struct Counts {
    total: usize,
    blocked: usize,
    /// Threads inside a task (blocked ones included).
    running: usize,
}

/// The tasks waiting for a thread, and how many threads sleep until one comes.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    sleepers: usize,
}

/// The task pool of a worker rank.
pub(crate) struct Pool {
    queue: Mutex<Queue>,
    /// Signalled when a task is queued while a thread sleeps.
    queued: Condvar,
    counts: Mutex<Counts>,
    target: usize,
    node: Weak<Node>,
    /// Watches tasks with a time limit; started with the first such task.
    timer: OnceLock<Timer>,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Pool>>> = const { RefCell::new(None) };
    // How many tasks this thread runs inside a waiting task ([`help`]).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

impl Pool {
    /// Starts a pool of `target` threads.
    pub(crate) fn start(target: usize, node: Weak<Node>) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            counts: Mutex::new(Counts {
                total: 0,
                blocked: 0,
                running: 0,
            }),
            target: target.max(1),
            node,
            timer: OnceLock::new(),
        });
        for _ in 0..pool.target {
            pool.counts.lock().total += 1;
            pool.spawn();
        }
        pool
    }

    fn spawn(self: &Arc<Self>) {
        let me = self.clone();
        let r = std::thread::Builder::new()
            .name("unidist-task".into())
            .spawn(move || me.thread_main());
        if let Err(e) = r {
            self.counts.lock().total -= 1;
            tracing::error!(error = %e, "cannot start a task thread");
        }
    }

    /// Queues a task; one with a time limit is watched by the timer.
    pub(crate) fn submit(self: &Arc<Self>, job: Job) {
        if job.ticket.options.timeout.is_some() {
            let timer = self
                .timer
                .get_or_init(|| Timer::start(Arc::downgrade(self), self.node.clone()));
            timer.watch(job.ticket.clone());
        }
        self.requeue(job);
    }

    /// Queues a task again (a retry after a timeout: the timer already watches it).
    pub(crate) fn requeue(&self, job: Job) {
        let mut q = self.queue.lock();
        q.jobs.push_back(job);
        if q.sleepers > 0 {
            drop(q);
            self.queued.notify_one();
        }
    }

    /// Takes a queued task that produces one of `ids`, among the most recently queued.
    fn take_producing(&self, ids: &[ObjectId]) -> Option<Job> {
        let mut q = self.queue.lock();
        let n = q.jobs.len();
        let i = (n.saturating_sub(HELP_SCAN)..n)
            .rev()
            .find(|&i| q.jobs[i].reply.outputs.iter().any(|o| ids.contains(o)))?;
        q.jobs.remove(i)
    }

    /// The work this rank has taken on: tasks running and not blocked in `get`, and tasks
    /// queued. Placement from this rank counts it (its own view of other ranks counts only the
    /// calls it sent them), so that a task does not queue its helpers' work behind itself.
    pub(crate) fn load(&self) -> usize {
        let c = self.counts.lock();
        let running = c.running.saturating_sub(c.blocked);
        drop(c);
        running + self.queue.lock().jobs.len()
    }

    /// A running task's thread was abandoned (its task timed out or was cancelled): its slot
    /// is given back as if it blocked, and it calls [`Pool::block_end`] when its body returns.
    pub(crate) fn lend(self: &Arc<Self>) {
        self.block_begin();
    }

    /// The next task: a thread that just finished one polls (yielding the CPU) for a short
    /// while before it sleeps, so that a stream of short tasks, such as a caller that submits
    /// and waits in a loop, does not pay a thread wake-up per task.
    fn next_job(&self) -> Job {
        let spin_until = Instant::now() + JOB_SPIN;
        loop {
            if let Some(job) = self.queue.lock().jobs.pop_front() {
                return job;
            }
            if Instant::now() >= spin_until {
                break;
            }
            std::thread::yield_now();
        }
        let mut q = self.queue.lock();
        loop {
            if let Some(job) = q.jobs.pop_front() {
                return job;
            }
            q.sleepers += 1;
            self.queued.wait(&mut q);
            q.sleepers -= 1;
        }
    }

    fn thread_main(self: Arc<Self>) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
        loop {
            let job = self.next_job();
            let Some(node) = self.node.upgrade() else {
                break;
            };
            self.counts.lock().running += 1;
            run_job(&self, &node, job);
            drop(node);
            let mut c = self.counts.lock();
            c.running -= 1;
            if c.total - c.blocked > self.target {
                c.total -= 1;
                break;
            }
        }
        CURRENT.with(|c| *c.borrow_mut() = None);
    }

    fn block_begin(self: &Arc<Self>) {
        let mut c = self.counts.lock();
        c.blocked += 1;
        if c.total - c.blocked < self.target {
            c.total += 1;
            drop(c);
            self.spawn();
        }
    }

    fn block_end(&self) {
        self.counts.lock().blocked -= 1;
    }
}

/// On a pool thread whose task waits for `ids`: runs one queued task that produces one of them,
/// here and now, instead of waiting for another thread to take it (a nested `get` on a child
/// queued on this rank costs no hand-off and no thread wake-up). Returns whether it ran one;
/// never on other threads, nor deeper than [`HELP_DEPTH`].
pub(crate) fn help(node: &Node, ids: &[ObjectId]) -> bool {
    let Some(pool) = CURRENT.with(|c| c.borrow().clone()) else {
        return false;
    };
    let depth = DEPTH.with(Cell::get);
    if depth >= HELP_DEPTH {
        return false;
    }
    let Some(job) = pool.take_producing(ids) else {
        return false;
    };
    DEPTH.with(|d| d.set(depth + 1));
    run_job(&pool, node, job);
    DEPTH.with(|d| d.set(depth));
    true
}

/// Runs `f`, which may block for a long time; on a pool thread the slot is lent meanwhile.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    let pool = CURRENT.with(|c| c.borrow().clone());
    match pool {
        Some(p) => {
            p.block_begin();
            let r = f();
            p.block_end();
            r
        }
        None => f(),
    }
}

/// Runs a task, again while its options allow (core's retry rule), and reports the result
/// unless its outputs were settled without it (timed out or cancelled): then the result is
/// dropped and, if its slot had been given back, the thread takes its blocked count back.
fn run_job(pool: &Pool, node: &Node, job: Job) {
    let Job {
        func,
        args,
        reply,
        ticket,
    } = job;
    let mut mine = None;
    let result = match args {
        Ok(args) => {
            let _flow = crate::node::call_flow(node, &reply);
            // The body owns the arguments; `run_with_retries` gives earlier runs a clone when
            // the task may run again here, and a timed-out task's next run on the queue gets
            // the ticket's own `retry_args`. They go (inside the call) before the completion
            // is reported: they may hold refs.
            retry::run_with_retries(func, args, &ticket.options, || ticket.begin_run(&mut mine))
        }
        Err(e) => Some(Err(Error::from(e))),
    };
    match result {
        Some(result) if ticket.finish(mine) => {
            let succeeded = result.is_ok();
            node.complete(&reply, result);
            unidist_core::observe::stats::task_settled(succeeded);
        }
        lost => {
            if ticket.was_abandoned(mine) {
                pool.block_end();
            }
            if let Some(Ok(outputs)) = &lost {
                unidist_core::observe::stats::outputs_dropped(outputs);
            }
            drop(lost);
        }
    }
}

/// What a call handed to an actor's [`ActorThread`] carries: where its result goes.
///
/// Every call is answered exactly once: [`CallHooks::finish`] reports the result, and a call the
/// actor never ran (it was killed or stopped first, or its thread had ended) reports
/// [`Error::ActorDead`] with the actor's [`Fate`] when its hooks are dropped. Both report
/// through the node, which locks its state, so the node never drops hooks (or a message or
/// thread handle holding them) while it holds its lock: it defers the drop to its `Effects`.
pub(crate) struct MpiHooks {
    node: Weak<Node>,
    /// Taken when the call is answered.
    reply: Option<Reply>,
    class: &'static str,
    actor: ActorId,
    fate: Fate,
}

/// Why an actor's thread stopped serving: set by the node when it kills, releases or stops
/// the actor, read by the calls that never ran. Unset, the thread ended on its own.
pub(crate) type Fate = Arc<OnceLock<DeadReason>>;

/// The node's end of an actor living on this rank.
pub(crate) type ActorThread = unidist_core::actor::ActorThread<MpiHooks>;

impl MpiHooks {
    /// The hooks of a call of actor `actor` (of type `class`) that reports to `reply`.
    pub(crate) fn new(
        node: Weak<Node>,
        reply: Reply,
        class: &'static str,
        actor: ActorId,
        fate: Fate,
    ) -> Self {
        MpiHooks {
            node,
            reply: Some(reply),
            class,
            actor,
            fate,
        }
    }
}

impl CallHooks for MpiHooks {
    // Every rank's communication thread polls by yielding, so the machine never looks idle
    // and `spin_for` would never poll: an actor thread would sleep between a caller's calls
    // and pay a wake-up per call, which task threads ([`Pool`]'s `JOB_SPIN`) do not.
    const POLL_WHEN_BUSY: bool = true;

    fn scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let _flow = crate::node::actor_call_flow(&self.node, self.reply.as_ref());
        f()
    }

    fn finish(mut self, result: CallResult) {
        if let (Some(reply), Some(node)) = (self.reply.take(), self.node.upgrade()) {
            node.complete(&reply, result.map_err(Error::from));
        }
    }
}

impl Drop for MpiHooks {
    fn drop(&mut self) {
        if let (Some(reply), Some(node)) = (self.reply.take(), self.node.upgrade()) {
            let reason = self.fate.get().cloned().unwrap_or(DeadReason::ThreadEnded);
            let err = Error::actor_dead(self.class, self.actor, reason);
            node.complete(&reply, Err(err));
        }
    }
}

/// Starts the thread of actor `actor`; the node sends its constructor first.
pub(crate) fn spawn_actor(actor: ActorId) -> std::io::Result<ActorThread> {
    ActorThread::spawn(format!("unidist-actor-{actor}"), || {})
}

#[cfg(test)]
mod tests {
    use std::any::Any;

    use crossbeam_channel::Receiver;
    use unidist_core::actor::ActorMessage;
    use unidist_core::value::output;
    use unidist_core::{ActorClassEntry, ActorMethodEntry, ErrorKind, MethodKind, ObjectId};
    use unidist_core::{Outputs, Result};

    use super::*;
    use crate::comm::Out;
    use crate::process::LostPeers;
    use crate::wire::{NodeMsg, OutResult, WireError};

    fn idle(_: Vec<Payload>) -> Result<Box<dyn Any + Send>> {
        Ok(Box::new(0u64))
    }
    static IDLE: ActorClassEntry = ActorClassEntry {
        name: "tests::Idle",
        construct: idle,
    };

    fn ping(_: &dyn Any, _: Vec<Payload>) -> Result<Outputs> {
        Ok(vec![output(1u64)])
    }
    static PING: ActorMethodEntry = ActorMethodEntry {
        name: "tests::Idle::ping",
        class: "tests::Idle",
        num_returns: 1,
        kind: MethodKind::Ref(ping),
    };

    /// A call with `n` outputs from rank 0, numbered `seq`.
    fn reply(seq: u64, n: u64) -> Reply {
        Reply {
            outputs: (0..n).map(|i| ObjectId::new(0, 100 * seq + i)).collect(),
            to: 0,
            seq,
        }
    }

    /// The results of the `Done` the node sent to rank 0 for call `seq`.
    fn done(out: &Receiver<Out>, seq: u64) -> Vec<OutResult> {
        loop {
            let sent = out.recv_timeout(Duration::from_secs(10));
            match sent.expect("the call was never answered") {
                Out::Msg(0, NodeMsg::Done { seq: s, results }) if s == seq => return results,
                _ => {}
            }
        }
    }

    #[test]
    fn calls_are_answered_and_calls_that_never_ran_report_the_fate() {
        let (tx, out) = crossbeam_channel::unbounded();
        let lost = Arc::new(LostPeers::default());
        let store = crate::shm::Store::disabled();
        let node = Node::new(1, 3, vec![String::new(); 3], tx, 1024, lost, store);
        let actor = ActorId { owner: 0, seq: 1 };
        let fate = Fate::default();
        let hooks = |r| MpiHooks::new(Arc::downgrade(&node), r, IDLE.name, actor, fate.clone());
        let thread = spawn_actor(actor).expect("an actor thread starts");
        let construct = ActorMessage::Construct {
            class: &IDLE,
            args: Ok(Vec::new()),
            hooks: hooks(reply(1, 0)),
        };
        assert!(thread.send(construct).is_ok());
        assert!(done(&out, 1).is_empty());
        let call = ActorMessage::Call {
            method: &PING,
            args: Ok(Vec::new()),
            hooks: hooks(reply(2, 1)),
        };
        assert!(thread.send(call).is_ok());
        assert!(matches!(done(&out, 2)[..], [Ok(_)]));
        // Hooks dropped without a result answer with the actor's fate: here dropped at once,
        // then by the killed thread (or given back by `send` once it has ended).
        let _ = fate.set(DeadReason::Killed);
        drop(hooks(reply(3, 1)));
        let sender = thread.sender();
        thread.kill();
        let late = ActorMessage::Call {
            method: &PING,
            args: Ok(Vec::new()),
            hooks: hooks(reply(4, 1)),
        };
        drop(sender.send(late));
        for seq in [3, 4] {
            match &done(&out, seq)[..] {
                [Err(WireError::Other(ErrorKind::ActorDead, message))] => assert!(
                    message.contains("tests::Idle#0:1") && message.contains("killed"),
                    "{message}"
                ),
                other => panic!("expected one ActorDead result, got {other:?}"),
            }
        }
    }
}
