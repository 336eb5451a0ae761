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
use unidist_core::{task, ActorId, Error, ObjectId, Payload};

use crate::node::Node;

/// How long a task thread polls for the next task before it sleeps.
const JOB_SPIN: Duration = Duration::from_micros(100);

/// Arguments of a call once resolved: every payload, or the first failed argument.
pub type Args = Result<Vec<Payload>, (usize, Error)>;

/// A task ready to run.
pub struct Job {
    pub func: &'static RemoteFunction,
    pub args: Args,
    pub outputs: Vec<ObjectId>,
    pub reply_to: u32,
    pub seq: u64,
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
    let name = job.func.name;
    let result = match &job.args {
        Err((i, e)) => Err(Error::from(task::argument_failed(name, *i, e))),
        Ok(args) => task::run_function(job.func, args).map_err(Error::from),
    };
    drop(job.args);
    node.complete(&job.outputs, result, job.reply_to, job.seq);
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
        outputs: Vec<ObjectId>,
        reply_to: u32,
        seq: u64,
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

type Inflight = Rc<RefCell<HashMap<u64, (Vec<ObjectId>, u32, u64)>>>;

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
    let dead = |reason: String| Error::ActorDead {
        actor: actor.to_string(),
        reason,
    };
    local.block_on(&rt, async {
        let mut inst: Result<Rc<ActorInstance>, Error> = Err(dead("it was not created".into()));
        let inflight: Inflight = Rc::new(RefCell::new(HashMap::new()));
        // Running `async fn` calls: finished ones are reaped as calls arrive (amortized O(1),
        // unlike scanning a list of handles per call), the rest are aborted on `kill`.
        let mut tasks: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
        let mut next = 0u64;
        let mut now = false;
        while let Some(cmd) = rx.recv().await {
            match cmd {
                ActorCmd::Create { class, args } => {
                    inst = match args {
                        Ok(a) => ActorInstance::construct(class, &a)
                            .map(Rc::new)
                            .map_err(|te| dead(format!("its constructor failed: {te}"))),
                        Err((i, e)) => Err(dead(format!(
                            "its constructor did not run: {}",
                            task::argument_failed(class.name, i, &e)
                        ))),
                    };
                }
                ActorCmd::Call {
                    method,
                    args,
                    outputs,
                    reply_to,
                    seq,
                } => {
                    let i = match &inst {
                        Ok(i) => i.clone(),
                        Err(e) => {
                            node.complete(&outputs, Err(e.clone()), reply_to, seq);
                            continue;
                        }
                    };
                    let args = match args {
                        Ok(a) => a,
                        Err((idx, e)) => {
                            let te = task::argument_failed(method.name, idx, &e);
                            node.complete(&outputs, Err(te.into()), reply_to, seq);
                            continue;
                        }
                    };
                    let fut = i.begin(method, args).await;
                    if method.kind.is_async() {
                        next += 1;
                        let key = next;
                        inflight.borrow_mut().insert(key, (outputs, reply_to, seq));
                        let (node2, inflight2) = (node.clone(), inflight.clone());
                        while tasks.try_join_next().is_some() {}
                        tasks.spawn_local(async move {
                            let r = fut.await;
                            let entry = inflight2.borrow_mut().remove(&key);
                            if let Some((o, to, s)) = entry {
                                node2.complete(&o, r.map_err(Error::from), to, s);
                            }
                        });
                    } else {
                        let r = fut.await;
                        node.complete(&outputs, r.map_err(Error::from), reply_to, seq);
                    }
                }
                ActorCmd::Stop { now: n } => {
                    now = n;
                    break;
                }
            }
        }
        rx.close();
        let reason = if now {
            "it was killed"
        } else {
            "all its handles were dropped"
        };
        while let Ok(cmd) = rx.try_recv() {
            if let ActorCmd::Call {
                outputs,
                reply_to,
                seq,
                ..
            } = cmd
            {
                node.complete(&outputs, Err(dead(reason.into())), reply_to, seq);
            }
        }
        if now {
            tasks.abort_all();
        }
        while tasks.join_next().await.is_some() {}
        let left: Vec<_> = inflight.borrow_mut().drain().map(|(_, v)| v).collect();
        for (o, to, s) in left {
            node.complete(&o, Err(dead(reason.into())), to, s);
        }
        drop(inst);
    });
    node.actor_ended(actor);
}
