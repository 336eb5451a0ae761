//! Executors of a worker rank: the task pool and one thread per actor.
//!
//! The pool keeps `target` threads able to run tasks. A task that blocks in `get`/`wait` (or
//! an actor lookup) lends its slot: the pool starts a replacement thread while it waits, and the
//! surplus thread retires after the task it is running, so nested `get` never deadlocks the
//! pool whatever its size. Actors run on their own thread with a Tokio current-thread runtime
//! and a `LocalSet`; calls start strictly in arrival order through
//! [`ActorInstance::begin`], and `async fn` calls continue concurrently.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use unidist_core::actor::ActorInstance;
use unidist_core::registry::{ActorClassEntry, ActorMethodEntry, RemoteFunction};
use unidist_core::{task, ActorId, Error, Payload, TaskError};

use crate::node::{actor_dead, DeadReason, Node, Reply};

/// How long a task thread polls for the next task before it sleeps.
const JOB_SPIN: Duration = Duration::from_micros(100);

/// Arguments of a call once resolved: every payload, or the error that fails the call
/// ([`unidist_core::call::resolve_args`]).
pub type Args = Result<Vec<Payload>, TaskError>;

/// A task ready to run.
pub struct Job {
    pub func: &'static RemoteFunction,
    pub args: Args,
    pub reply: Reply,
}

struct Counts {
    total: usize,
    blocked: usize,
}

/// The task pool of a worker rank.
pub struct Pool {
    tx: Sender<Job>,
    rx: Receiver<Job>,
    counts: Mutex<Counts>,
    target: usize,
    node: Weak<Node>,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Pool>>> = const { RefCell::new(None) };
}

impl Pool {
    /// Starts a pool of `target` threads.
    pub fn start(target: usize, node: Weak<Node>) -> Arc<Pool> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let pool = Arc::new(Pool {
            tx,
            rx,
            counts: Mutex::new(Counts {
                total: 0,
                blocked: 0,
            }),
            target: target.max(1),
            node,
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

    /// Queues a task.
    pub fn submit(&self, job: Job) {
        let _ = self.tx.send(job);
    }

    /// The next task: a thread that just finished one polls (yielding the CPU) for a short
    /// while before it sleeps, so that a stream of short tasks, such as a caller that submits
    /// and waits in a loop, does not pay a thread wake-up per task.
    fn next_job(&self) -> Option<Job> {
        let spin_until = Instant::now() + JOB_SPIN;
        loop {
            match self.rx.try_recv() {
                Ok(job) => return Some(job),
                Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
                Err(crossbeam_channel::TryRecvError::Empty) => {}
            }
            if Instant::now() >= spin_until {
                return self.rx.recv().ok();
            }
            std::thread::yield_now();
        }
    }

    fn thread_main(self: Arc<Self>) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
        while let Some(job) = self.next_job() {
            let Some(node) = self.node.upgrade() else {
                break;
            };
            run_job(&node, job);
            drop(node);
            let mut c = self.counts.lock();
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

/// Runs `f`, which may block for a long time; on a pool thread the slot is lent meanwhile.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
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

fn run_job(node: &Node, job: Job) {
    let result = match job.args {
        Ok(args) => {
            let outputs = task::run_function(job.func, &args);
            // The arguments go before the completion is reported: they may hold refs.
            drop(args);
            outputs
        }
        Err(e) => Err(e),
    };
    let result = result.map_err(Error::from);
    node.complete(&job.reply, result);
}

/// A command for an actor thread.
pub enum ActorCmd {
    Create {
        class: &'static ActorClassEntry,
        args: Args,
    },
    Call {
        method: &'static ActorMethodEntry,
        args: Args,
        reply: Reply,
    },
    Stop {
        now: bool,
    },
}

/// The sending side of an actor's command queue.
pub type ActorTx = tokio::sync::mpsc::UnboundedSender<ActorCmd>;
/// The receiving side, moved into the actor thread.
pub type ActorRx = tokio::sync::mpsc::UnboundedReceiver<ActorCmd>;

/// Starts the thread of actor `actor`.
pub fn spawn_actor(node: Arc<Node>, actor: ActorId, rx: ActorRx) {
    let name = format!("unidist-actor-{}", actor);
    let r = std::thread::Builder::new()
        .name(name)
        .spawn(move || actor_main(node, actor, rx));
    if let Err(e) = r {
        tracing::error!(error = %e, %actor, "cannot start an actor thread");
    }
}

fn actor_main(node: Arc<Node>, actor: ActorId, mut rx: ActorRx) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, %actor, "cannot build the actor's runtime");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    let mut thread = ActorThread {
        node: node.clone(),
        actor,
        instance: Err(DeadReason::NotCreated),
        inflight: Rc::new(RefCell::new(HashMap::new())),
        tasks: tokio::task::JoinSet::new(),
        next: 0,
    };
    local.block_on(&rt, thread.serve(&mut rx));
    drop(thread);
    node.actor_ended(actor);
}

/// Running `async fn` calls of an actor by key: the method and where each reports.
type Inflight = Rc<RefCell<HashMap<u64, (&'static ActorMethodEntry, Reply)>>>;

/// The state of an actor's thread.
struct ActorThread {
    node: Arc<Node>,
    actor: ActorId,
    /// The actor, or why there is none.
    instance: Result<Rc<ActorInstance>, DeadReason>,
    inflight: Inflight,
    /// Running `async fn` calls: finished ones are reaped as calls arrive (amortized O(1),
    /// unlike scanning a list of handles per call), the rest are aborted on `kill`.
    tasks: tokio::task::JoinSet<()>,
    next: u64,
}

impl ActorThread {
    /// Runs commands until the actor is stopped or its queue closes, then settles every call
    /// that did not finish.
    async fn serve(&mut self, rx: &mut ActorRx) {
        let mut now = false;
        while let Some(cmd) = rx.recv().await {
            match cmd {
                ActorCmd::Create { class, args } => self.create(class, args),
                ActorCmd::Call {
                    method,
                    args,
                    reply,
                } => self.call(method, args, reply).await,
                ActorCmd::Stop { now: n } => {
                    now = n;
                    break;
                }
            }
        }
        rx.close();
        let reason = if now {
            DeadReason::Killed
        } else {
            DeadReason::Released
        };
        while let Ok(cmd) = rx.try_recv() {
            if let ActorCmd::Call { method, reply, .. } = cmd {
                self.fail(method, &reply, &reason);
            }
        }
        if now {
            self.tasks.abort_all();
        }
        while self.tasks.join_next().await.is_some() {}
        let left: Vec<_> = self.inflight.borrow_mut().drain().map(|(_, v)| v).collect();
        for (method, reply) in left {
            self.fail(method, &reply, &reason);
        }
        // The actor's value is dropped here, inside the thread's runtime.
        self.instance = Err(reason);
    }

    fn create(&mut self, class: &'static ActorClassEntry, args: Args) {
        self.instance = match args {
            Ok(a) => ActorInstance::construct(class, &a)
                .map(Rc::new)
                .map_err(|te| DeadReason::CreationFailed(te.to_string())),
            Err(te) => Err(DeadReason::CreationFailed(te.to_string())),
        };
    }

    /// Starts a method call in order; an `async fn` call goes on concurrently.
    async fn call(&mut self, method: &'static ActorMethodEntry, args: Args, reply: Reply) {
        let instance = match &self.instance {
            Ok(i) => i.clone(),
            Err(reason) => return self.fail(method, &reply, &reason.clone()),
        };
        let args = match args {
            Ok(a) => a,
            Err(te) => return self.node.complete(&reply, Err(te.into())),
        };
        let fut = instance.begin(method, args).await;
        if !method.kind.is_async() {
            let r = fut.await;
            return self.node.complete(&reply, r.map_err(Error::from));
        }
        self.next += 1;
        let key = self.next;
        self.inflight.borrow_mut().insert(key, (method, reply));
        let (node, inflight) = (self.node.clone(), self.inflight.clone());
        while self.tasks.try_join_next().is_some() {}
        self.tasks.spawn_local(async move {
            let r = fut.await;
            let entry = inflight.borrow_mut().remove(&key);
            if let Some((_, reply)) = entry {
                node.complete(&reply, r.map_err(Error::from));
            }
        });
    }

    /// Reports a call of `method` as failed because the actor is not alive.
    fn fail(&self, method: &'static ActorMethodEntry, reply: &Reply, reason: &DeadReason) {
        let err = actor_dead(self.actor, Some(method.class), reason);
        self.node.complete(reply, Err(err));
    }
}
