//! The contract every backend implements, and the descriptions of work the facade hands it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::actor::ActorId;
use crate::error::Result;
use crate::object_ref::{AnyRef, ObjectId};
use crate::ready::Subscription;
use crate::registry::{ActorClassEntry, ActorMethodEntry, RemoteFunction};
use crate::value::{ErasedValue, Payload};

/// `{host_ip: {"CPU": n}}`, as upstream unidist reports it.
pub type ClusterResources = BTreeMap<String, BTreeMap<String, f64>>;

/// One argument of a task, actor constructor or actor method call.
#[derive(Clone)]
pub enum Arg {
    /// A value given directly; local backends use it in place.
    Value(Arc<dyn ErasedValue>),
    /// A ref, resolved (waited for and fetched) before the body runs. Holding it here keeps the
    /// object alive until the call has run.
    Ref(AnyRef),
}

impl std::fmt::Debug for Arg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Arg::Value(v) => write!(f, "Arg::Value({})", v.type_name()),
            Arg::Ref(r) => write!(f, "Arg::Ref({r:?})"),
        }
    }
}

impl Arg {
    /// The value as a payload if it was given directly.
    pub fn as_value(&self) -> Option<Payload> {
        match self {
            Arg::Value(v) => Some(Payload::Local(v.clone())),
            Arg::Ref(_) => None,
        }
    }
}

/// Per-call options, validated by the facade before a backend sees them.
///
/// The defaults keep the behaviour of a call without options: one run, no time limit.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TaskOptions {
    /// CPUs the call needs; a scheduling hint, at least 1 and at most the cluster's CPUs.
    pub num_cpus: Option<u32>,
    /// Runs after the first one that a task may make when its worker process is lost, its
    /// body panics (with [`retry_exceptions`](TaskOptions::retry_exceptions)) or it runs out
    /// of time; at most [`TaskOptions::MAX_RETRIES`].
    pub max_retries: u32,
    /// Also re-run the task when its body panics (needs `max_retries` above 0).
    pub retry_exceptions: bool,
    /// How long one run of the body may take, counted from the moment it starts; above zero.
    pub timeout: Option<Duration>,
    /// Actors only: how many times the actor is re-created when its process is lost; at most
    /// [`TaskOptions::MAX_RESTARTS`].
    pub max_restarts: u32,
}

impl TaskOptions {
    /// The largest accepted `max_retries`: a task that fails this often will not succeed, and
    /// the bound keeps a mistaken value from running a task without end.
    pub const MAX_RETRIES: u32 = 100;

    /// The largest accepted `max_restarts`, for the same reason.
    pub const MAX_RESTARTS: u32 = 100;

    /// Sets the CPUs the call needs.
    pub fn num_cpus(mut self, n: u32) -> Self {
        self.num_cpus = Some(n);
        self
    }

    /// Sets [`max_retries`](TaskOptions::max_retries).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets [`retry_exceptions`](TaskOptions::retry_exceptions).
    pub fn retry_exceptions(mut self, yes: bool) -> Self {
        self.retry_exceptions = yes;
        self
    }

    /// Sets [`timeout`](TaskOptions::timeout).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Sets [`max_restarts`](TaskOptions::max_restarts).
    pub fn max_restarts(mut self, n: u32) -> Self {
        self.max_restarts = n;
        self
    }
}

/// What a backend supports, as data: tests and tools ask this instead of comparing backend
/// names. [`Capabilities::new`] describes the common case (objects can be pending, everything
/// runs in this process, `init` works again after `shutdown`); a backend overrides
/// [`Backend::capabilities`] with what differs, using the builder methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Capabilities {
    /// An object can be pending: a call may still run after `remote` returned, so `wait` can
    /// see unfinished objects, a later actor call can run while an earlier async call awaits,
    /// and several calls run at once. False when every call runs to completion inside the
    /// call that submits it, in the caller's thread (the caller is the one worker).
    pub pending_objects: bool,
    /// Work runs in other processes: values cross process boundaries as bytes, and a child
    /// process started by a test cannot join the running job.
    pub separate_processes: bool,
    /// `init` after `shutdown` starts a fresh runtime in the same process.
    pub restartable: bool,
    /// Every live actor holds a thread of this process, which ends when the actor ends.
    pub thread_per_actor: bool,
    /// `max_retries` with `retry_exceptions` re-runs a task whose body panicked.
    pub retries: bool,
    /// `timeout` fails the outputs of a task whose body ran longer than its limit.
    pub timeouts: bool,
    /// [`Backend::cancel`] stops pending and running calls (not only finished ones).
    pub cancel: bool,
    /// [`Backend::get`] of several objects returns the first failure the moment it is known,
    /// without waiting for earlier objects that are still pending.
    pub fail_fast: bool,
}

impl Capabilities {
    /// The common case: objects can be pending, everything runs in this process, the runtime
    /// can start again after `shutdown`, and actors need no thread of their own.
    pub const fn new() -> Self {
        Capabilities {
            pending_objects: true,
            separate_processes: false,
            restartable: true,
            thread_per_actor: false,
            retries: false,
            timeouts: false,
            cancel: false,
            fail_fast: false,
        }
    }

    /// Sets [`pending_objects`](Capabilities::pending_objects).
    pub const fn pending_objects(mut self, yes: bool) -> Self {
        self.pending_objects = yes;
        self
    }

    /// Sets [`separate_processes`](Capabilities::separate_processes).
    pub const fn separate_processes(mut self, yes: bool) -> Self {
        self.separate_processes = yes;
        self
    }

    /// Sets [`restartable`](Capabilities::restartable).
    pub const fn restartable(mut self, yes: bool) -> Self {
        self.restartable = yes;
        self
    }

    /// Sets [`thread_per_actor`](Capabilities::thread_per_actor).
    pub const fn thread_per_actor(mut self, yes: bool) -> Self {
        self.thread_per_actor = yes;
        self
    }

    /// Sets [`retries`](Capabilities::retries), [`timeouts`](Capabilities::timeouts),
    /// [`cancel`](Capabilities::cancel) and [`fail_fast`](Capabilities::fail_fast) at once:
    /// what a backend with the whole of fault tolerance declares.
    pub const fn fault_tolerance(mut self, yes: bool) -> Self {
        self.retries = yes;
        self.timeouts = yes;
        self.cancel = yes;
        self.fail_fast = yes;
        self
    }
}

impl Default for Capabilities {
    fn default() -> Self {
        Self::new()
    }
}

/// A task to run.
#[derive(Debug)]
pub struct TaskSpec {
    /// The function, with its name and trampoline.
    pub function: &'static RemoteFunction,
    /// One argument per parameter, in order.
    pub args: Vec<Arg>,
    /// Validated options.
    pub options: TaskOptions,
}

/// An actor to create.
#[derive(Debug)]
pub struct ActorSpec {
    /// The actor type.
    pub class: &'static ActorClassEntry,
    /// Arguments of its constructor.
    pub args: Vec<Arg>,
    /// Validated options.
    pub options: TaskOptions,
}

/// A method call on an actor.
#[derive(Debug)]
pub struct ActorCall {
    /// The actor.
    pub actor: ActorId,
    /// The method.
    pub method: &'static ActorMethodEntry,
    /// One argument per parameter, in order.
    pub args: Vec<Arg>,
}

/// An execution backend: where objects live and where tasks and actors run.
///
/// The trait is object safe; the facade picks one at run time from `UNIDIST_BACKEND`. Every id
/// a backend returns from [`put`](Backend::put), [`submit`](Backend::submit) or
/// [`call_actor`](Backend::call_actor) carries one process-local reference that the facade wraps in an
/// [`AnyRef`]; dropping the last clone calls [`release`](Backend::release) once.
pub trait Backend: Send + Sync + 'static {
    /// The backend's name as in `UNIDIST_BACKEND`.
    fn name(&self) -> &'static str;

    /// What this backend supports; [`Capabilities::new`] unless the backend says otherwise.
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
    }

    /// Stores a value and returns its id.
    fn put(&self, value: Arc<dyn ErasedValue>) -> Result<ObjectId>;

    /// Submits a task; returns one id per declared return (none for `num_returns = 0`).
    /// Argument refs may be unresolved: the backend runs the task once they are ready, and fails
    /// it without running when one of them failed.
    fn submit(&self, task: TaskSpec) -> Result<Vec<ObjectId>>;

    /// Blocks until every object is ready and returns them in order; a failed object gives its
    /// error. With a timeout, returns [`Error::Timeout`](crate::Error::Timeout) when time runs out.
    fn get(&self, ids: &[ObjectId], timeout: Option<Duration>) -> Result<Vec<Payload>>;

    /// Blocks until at least `num_returns` of `ids` are ready (failed counts as ready) or the
    /// timeout runs out, and returns the readiness of each id in order. `num_returns` is at most
    /// `ids.len()` (the facade checks) and may be 0, which only samples readiness.
    fn wait(
        &self,
        ids: &[ObjectId],
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<bool>>;

    /// Drops one process-local reference to the object (the last clone of an [`AnyRef`] died).
    fn release(&self, id: ObjectId);

    /// A ref to `id` is being serialized to leave this process.
    fn ref_serialized(&self, id: ObjectId) {
        let _ = id;
    }

    /// A ref to `id` arrived in this process inside a value; the backend registers one
    /// process-local reference for it (matched by a later [`release`](Backend::release)).
    fn ref_deserialized(&self, id: ObjectId) -> Result<()> {
        let _ = id;
        Ok(())
    }

    /// Creates an actor; its constructor runs where the actor lives.
    fn create_actor(&self, spec: ActorSpec) -> Result<ActorId>;

    /// Calls a method; calls on one actor execute in call order. Returns one id per declared
    /// return.
    fn call_actor(&self, call: ActorCall) -> Result<Vec<ObjectId>>;

    /// Cancels the call that produces `id`: a pending call never runs, a running one's outputs
    /// fail with [`Error::Cancelled`](crate::Error::Cancelled) and its result is discarded, and
    /// a finished object is untouched. Dependents of a cancelled object fail without running.
    ///
    /// The provided implementation says the backend cannot cancel: `Ok(())` for an object that
    /// is settled (nothing to do) and [`Error::Unsupported`](crate::Error::Unsupported) for a
    /// pending one.
    fn cancel(&self, id: ObjectId) -> Result<()> {
        match self.wait(&[id], 0, Some(Duration::ZERO))?.first() {
            Some(true) => Ok(()),
            _ => Err(crate::Error::Unsupported {
                what: "cancelling a pending call".into(),
                backend: self.name(),
            }),
        }
    }

    /// Ends an actor now; calls after it fail with [`Error::ActorDead`](crate::Error::ActorDead).
    fn kill_actor(&self, actor: ActorId) -> Result<()>;

    /// The last handle to an actor in this process was dropped. Once no handle remains anywhere
    /// the backend may end the actor after its queued calls.
    fn release_actor(&self, actor: ActorId) {
        let _ = actor;
    }

    /// A handle to `actor` arrived in this process inside a value.
    fn actor_deserialized(&self, actor: ActorId) -> Result<()> {
        let _ = actor;
        Ok(())
    }

    /// Workers available for tasks.
    fn num_cpus(&self) -> usize;

    /// `{host_ip: {"CPU": n}}` for every host.
    fn cluster_resources(&self) -> Result<ClusterResources>;

    /// The IP address of this host.
    fn get_ip(&self) -> String {
        crate::runtime::local_ip()
    }

    /// Counters since `init`; by default this process's
    /// ([`observe::stats::local`](crate::observe::stats::local)). A backend with several
    /// processes gathers each one's local counters and returns one worker entry per process.
    fn stats(&self) -> Result<crate::observe::Stats> {
        Ok(crate::observe::stats::local())
    }

    /// What the timeline recorded so far, one entry per process; by default this process's
    /// ([`observe::timeline::local_trace`](crate::observe::timeline::local_trace)). A backend
    /// with several processes gathers each one's recording, with its clock offset.
    fn timeline(&self) -> Result<Vec<crate::observe::timeline::ProcessTrace>> {
        Ok(vec![crate::observe::timeline::local_trace()])
    }

    /// Pauses (`false`) or resumes the timeline recorder of every process, keeping what was
    /// recorded (the cost benchmark compares rounds with and without it in the same
    /// processes); by default this process's. Returns once every process's recorder is as
    /// asked.
    fn set_recording(&self, on: bool) -> Result<()> {
        if on {
            crate::observe::timeline::resume();
        } else {
            crate::observe::timeline::stop();
        }
        Ok(())
    }

    /// Stops the workers and frees every object; idempotent.
    fn shutdown(&self) -> Result<()>;

    /// Fires `subscription` once at least [`at_least`](Subscription::at_least) of its ids are
    /// ready as its [`readiness`](Subscription::readiness) counts them, or the runtime shut
    /// down; what `.await` on a ref uses. Must not block.
    ///
    /// Firing early is allowed (the awaiting future samples again), firing never is a hang;
    /// fire from whichever thread sees the objects settle, without holding locks the notified
    /// code could need. A subscription nobody waits for any more
    /// ([`is_wanted`](Subscription::is_wanted) is false) may be dropped unfired.
    ///
    /// The provided implementation serves it from one shared helper thread that calls
    /// [`wait`](Backend::wait) on the union of pending ids in short rounds (see
    /// [`ready::poller`](crate::ready::poller) for its cost); backends with per-object waiters
    /// should register the subscription there instead.
    fn on_ready(&self, subscription: Subscription) {
        crate::ready::poller::serve(subscription);
    }
}
