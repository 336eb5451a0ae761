//! Unit tests of the sequential backend, with hand-written registry entries in place of the
//! macro expansions.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use unidist_core::actor::{ActorReadGuard, LocalBoxFuture};
use unidist_core::value::output;
use unidist_core::{
    runtime, ActorCall, ActorClassEntry, ActorId, ActorMethodEntry, ActorSpec, AnyRef, Arg,
    Backend, ErrorKind, MethodKind, ObjectId, Outputs, Payload, RawActorHandle, RemoteFunction,
    Result, TaskFailure, TaskOptions, TaskSpec, Value,
};

// ---------------------------------------------------------------------------------------------
// Harness

/// Tests share the process-wide backend slot, so they take turns.
static SLOT_LOCK: Mutex<()> = Mutex::new(());

const LIMIT: Duration = Duration::from_secs(20);

/// Runs `body` against a fresh backend installed as the running one, in a thread of its own so
/// that a hang fails the test after [`LIMIT`] instead of stalling the run.
fn with_backend(body: impl FnOnce(Arc<dyn Backend>) + Send + 'static) {
    let _turn = SLOT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let pyseq = Arc::new(crate::Pyseq::default());
    *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) = Some(pyseq.clone());
    let backend: Arc<dyn Backend> = pyseq;
    runtime::install(backend.clone()).expect("install");
    struct Uninstall(Arc<dyn Backend>);
    impl Drop for Uninstall {
        fn drop(&mut self) {
            let _ = self.0.shutdown();
            let _ = runtime::take();
            *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
    let _uninstall = Uninstall(backend.clone());
    let (done_tx, done_rx) = channel();
    let worker = std::thread::spawn(move || {
        body(backend);
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(LIMIT) {
        Ok(()) => worker.join().expect("test body"),
        Err(RecvTimeoutError::Disconnected) => {
            // The body panicked: report its panic.
            if let Err(p) = worker.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(RecvTimeoutError::Timeout) => {
            panic!("the test did not finish within {LIMIT:?}: it hangs")
        }
    }
}

/// The backend of the running test, with its concrete type.
static RUNNING: Mutex<Option<Arc<crate::Pyseq>>> = Mutex::new(None);

/// The number of objects in the running backend's store.
fn store_len() -> usize {
    RUNNING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .expect("a backend is running")
        .store
        .len()
}

fn the_backend() -> Arc<dyn Backend> {
    runtime::current().expect("a backend is installed")
}

fn value<T: Value>(v: T) -> Arg {
    Arg::Value(Arc::new(v))
}

fn put<T: Value>(b: &Arc<dyn Backend>, v: T) -> AnyRef {
    AnyRef::live(b.put(Arc::new(v)).expect("put"), b)
}

fn get<T: Value>(r: &AnyRef) -> Result<T> {
    let (id, b) = r.resolve()?;
    b.get(&[id], None)?[0].take::<T>()
}

fn submit(
    b: &Arc<dyn Backend>,
    function: &'static RemoteFunction,
    args: Vec<Arg>,
) -> Result<Vec<AnyRef>> {
    let ids = b.submit(TaskSpec {
        function,
        args,
        options: TaskOptions::default(),
    })?;
    Ok(ids.into_iter().map(|id| AnyRef::live(id, b)).collect())
}

fn submit1(b: &Arc<dyn Backend>, function: &'static RemoteFunction, args: Vec<Arg>) -> AnyRef {
    submit(b, function, args).expect("submit").remove(0)
}

fn create(b: &Arc<dyn Backend>, class: &'static ActorClassEntry, args: Vec<Arg>) -> RawActorHandle {
    let id = b
        .create_actor(ActorSpec {
            class,
            args,
            options: TaskOptions::default(),
        })
        .expect("create_actor");
    RawActorHandle::live(id, class, b)
}

fn call(
    handle: &RawActorHandle,
    method: &'static ActorMethodEntry,
    args: Vec<Arg>,
) -> Result<Vec<AnyRef>> {
    let (actor, b) = handle.resolve()?;
    let ids = b.call_actor(ActorCall {
        actor,
        method,
        args,
    })?;
    Ok(ids.into_iter().map(|id| AnyRef::live(id, &b)).collect())
}

fn call1(handle: &RawActorHandle, method: &'static ActorMethodEntry, args: Vec<Arg>) -> AnyRef {
    call(handle, method, args).expect("call_actor").remove(0)
}

/// A value that counts its drops, per tag, to observe when the store frees it.
#[derive(Clone, Serialize, Deserialize)]
struct Tracked(usize);

static DROPS: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPS[self.0].fetch_add(1, Ordering::SeqCst);
    }
}

fn drops(tag: usize) -> usize {
    DROPS[tag].load(Ordering::SeqCst)
}

// ---------------------------------------------------------------------------------------------
// Remote functions

fn square(args: &[Payload]) -> Result<Outputs> {
    let x = args[0].take::<i64>()?;
    Ok(vec![output(x * x)])
}
static SQUARE: RemoteFunction = RemoteFunction {
    name: "tests::square",
    num_returns: 1,
    invoke: square,
};

fn split(args: &[Payload]) -> Result<Outputs> {
    let x = args[0].take::<i64>()?;
    Ok(vec![output(x / 2), output(x % 2)])
}
static SPLIT: RemoteFunction = RemoteFunction {
    name: "tests::split",
    num_returns: 2,
    invoke: split,
};

fn divide(args: &[Payload]) -> Result<Outputs> {
    let x = args[0].take::<i64>()?;
    let d = std::hint::black_box(0);
    Ok(vec![output(x / d)])
}
static DIVIDE: RemoteFunction = RemoteFunction {
    name: "tests::divide",
    num_returns: 1,
    invoke: divide,
};

static COUNTED_RUNS: AtomicUsize = AtomicUsize::new(0);
fn counted(args: &[Payload]) -> Result<Outputs> {
    COUNTED_RUNS.fetch_add(1, Ordering::SeqCst);
    let x = args[0].take::<i64>()?;
    Ok(vec![output(x + 1)])
}
static COUNTED: RemoteFunction = RemoteFunction {
    name: "tests::counted",
    num_returns: 1,
    invoke: counted,
};

/// `get(square.remote(x)) + 10`, submitted from inside a task.
fn nested(args: &[Payload]) -> Result<Outputs> {
    let x = args[0].take::<i64>()?;
    let b = the_backend();
    let inner = submit1(&b, &SQUARE, vec![value(x)]);
    let kept = put(&b, 10i64);
    Ok(vec![output(get::<i64>(&inner)? + get::<i64>(&kept)?)])
}
static NESTED: RemoteFunction = RemoteFunction {
    name: "tests::nested",
    num_returns: 1,
    invoke: nested,
};

static SILENT_RUNS: AtomicUsize = AtomicUsize::new(0);
fn silent_failure(_: &[Payload]) -> Result<Outputs> {
    SILENT_RUNS.fetch_add(1, Ordering::SeqCst);
    panic!("nobody will read this");
}
static SILENT_FAILURE: RemoteFunction = RemoteFunction {
    name: "tests::silent_failure",
    num_returns: 0,
    invoke: silent_failure,
};

// ---------------------------------------------------------------------------------------------
// Actors

struct Counter {
    n: i64,
}

fn counter_new(args: &[Payload]) -> Result<Box<dyn Any + Send>> {
    let n = args[0].take::<i64>()?;
    assert!(n >= 0, "a counter starts at 0 or more, not {n}");
    Ok(Box::new(Counter { n }))
}
static COUNTER: ActorClassEntry = ActorClassEntry {
    name: "tests::Counter",
    construct: counter_new,
};

fn counter(state: &dyn Any) -> &Counter {
    state.downcast_ref::<Counter>().expect("a Counter")
}

fn counter_add(state: &mut dyn Any, args: &[Payload]) -> Result<Outputs> {
    let c = state.downcast_mut::<Counter>().expect("a Counter");
    c.n += args[0].take::<i64>()?;
    Ok(vec![output(c.n)])
}
static ADD: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Counter::add",
    class: "tests::Counter",
    num_returns: 1,
    kind: MethodKind::Mut(counter_add),
};

fn counter_get(state: &dyn Any, _: &[Payload]) -> Result<Outputs> {
    Ok(vec![output(counter(state).n)])
}
static GET: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Counter::get",
    class: "tests::Counter",
    num_returns: 1,
    kind: MethodKind::Ref(counter_get),
};

/// `async fn later(&self, ms: u64) -> i64`: sleeps, then returns the count.
fn counter_later(state: ActorReadGuard, args: Vec<Payload>) -> LocalBoxFuture<Result<Outputs>> {
    Box::pin(async move {
        let ms = args[0].take::<u64>()?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(vec![output(counter(&**state).n)])
    })
}
static LATER: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Counter::later",
    class: "tests::Counter",
    num_returns: 1,
    kind: MethodKind::Async(counter_later),
};

/// `async fn ask(&self, other: ActorId) -> i64`: blocks in `get` on another actor's async
/// method, from inside this actor's runtime.
fn counter_ask(state: ActorReadGuard, args: Vec<Payload>) -> LocalBoxFuture<Result<Outputs>> {
    Box::pin(async move {
        let other = args[0].take::<ActorId>()?;
        tokio::time::sleep(Duration::from_millis(1)).await;
        let b = the_backend();
        let ids = b.call_actor(ActorCall {
            actor: other,
            method: &LATER,
            args: vec![value(5u64)],
        })?;
        let r = AnyRef::live(ids[0], &b);
        Ok(vec![output(get::<i64>(&r)? + counter(&**state).n)])
    })
}
static ASK: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Counter::ask",
    class: "tests::Counter",
    num_returns: 1,
    kind: MethodKind::Async(counter_ask),
};

/// `fn try_add(&self, target: ActorId, through_task: bool) -> (ErrorKind, String)`: calls `add`
/// on `target`, directly or from a task it submits, and reports the error of that call.
fn counter_try_add(_: &dyn Any, args: &[Payload]) -> Result<Outputs> {
    let target = args[0].take::<ActorId>()?;
    let through_task = args[1].take::<bool>()?;
    let b = the_backend();
    let outcome = if through_task {
        let r = submit1(&b, &CALL_ACTOR_ADD, vec![value(target)]);
        get::<(ErrorKind, String)>(&r)?
    } else {
        match b.call_actor(ActorCall {
            actor: target,
            method: &ADD,
            args: vec![value(1i64)],
        }) {
            Ok(_) => panic!("the re-entrant call was accepted"),
            Err(e) => (e.kind(), e.to_string()),
        }
    };
    Ok(vec![output(outcome)])
}
static TRY_ADD: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Counter::try_add",
    class: "tests::Counter",
    num_returns: 1,
    kind: MethodKind::Ref(counter_try_add),
};

/// `fn relay(&self, mid: ActorId, target: ActorId) -> (ErrorKind, String)`: asks `mid` to
/// `try_add` on `target` and returns its answer.
fn counter_relay(_: &dyn Any, args: &[Payload]) -> Result<Outputs> {
    let mid = args[0].take::<ActorId>()?;
    let target = args[1].take::<ActorId>()?;
    let b = the_backend();
    let ids = b.call_actor(ActorCall {
        actor: mid,
        method: &TRY_ADD,
        args: vec![value(target), value(false)],
    })?;
    let r = AnyRef::live(ids[0], &b);
    Ok(vec![output(get::<(ErrorKind, String)>(&r)?)])
}
static RELAY: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Counter::relay",
    class: "tests::Counter",
    num_returns: 1,
    kind: MethodKind::Ref(counter_relay),
};

/// A task calling `add` on the given actor and reporting the error of that call.
fn call_actor_add(args: &[Payload]) -> Result<Outputs> {
    let actor = args[0].take::<ActorId>()?;
    let b = the_backend();
    let outcome = match b.call_actor(ActorCall {
        actor,
        method: &ADD,
        args: vec![value(1i64)],
    }) {
        Ok(_) => panic!("the re-entrant call was accepted"),
        Err(e) => (e.kind(), e.to_string()),
    };
    Ok(vec![output(outcome)])
}
static CALL_ACTOR_ADD: RemoteFunction = RemoteFunction {
    name: "tests::call_actor_add",
    num_returns: 1,
    invoke: call_actor_add,
};

/// An actor holding a [`Tracked`] value, to observe when the actor is freed.
fn probe_new(args: &[Payload]) -> Result<Box<dyn Any + Send>> {
    Ok(Box::new(args[0].take::<Tracked>()?))
}
static PROBE: ActorClassEntry = ActorClassEntry {
    name: "tests::Probe",
    construct: probe_new,
};

/// The SignalActor of upstream's tests: `send` sets an event, `async wait` awaits it.
struct Signal {
    event: tokio::sync::Notify,
}

fn signal_new(_: &[Payload]) -> Result<Box<dyn Any + Send>> {
    Ok(Box::new(Signal {
        event: tokio::sync::Notify::new(),
    }))
}
static SIGNAL: ActorClassEntry = ActorClassEntry {
    name: "tests::Signal",
    construct: signal_new,
};

fn signal_send(state: &dyn Any, _: &[Payload]) -> Result<Outputs> {
    state
        .downcast_ref::<Signal>()
        .expect("a Signal")
        .event
        .notify_one();
    Ok(vec![output(())])
}
static SEND: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Signal::send",
    class: "tests::Signal",
    num_returns: 1,
    kind: MethodKind::Ref(signal_send),
};

fn signal_wait(state: ActorReadGuard, _: Vec<Payload>) -> LocalBoxFuture<Result<Outputs>> {
    Box::pin(async move {
        state
            .downcast_ref::<Signal>()
            .expect("a Signal")
            .event
            .notified()
            .await;
        Ok(vec![output(7i64)])
    })
}
static WAIT: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Signal::wait",
    class: "tests::Signal",
    num_returns: 1,
    kind: MethodKind::Async(signal_wait),
};

// ---------------------------------------------------------------------------------------------
// Objects and tasks

#[test]
fn put_get_and_wait() {
    with_backend(|b| {
        let a = put(&b, 5i64);
        let s = put(&b, "text".to_string());
        assert_eq!(get::<i64>(&a).unwrap(), 5);
        assert_eq!(get::<String>(&s).unwrap(), "text");
        let ids = [a.id().unwrap(), a.id().unwrap()];
        assert_eq!(b.get(&ids, Some(Duration::ZERO)).unwrap().len(), 2);
        assert_eq!(b.wait(&ids, 1, Some(Duration::ZERO)).unwrap(), [true, true]);
        assert_eq!(
            get::<String>(&a).unwrap_err().kind(),
            ErrorKind::TypeMismatch
        );
        assert_eq!(b.num_cpus(), 1);
        let resources = b.cluster_resources().unwrap();
        assert_eq!(resources[&b.get_ip()]["CPU"], 1.0);
        assert_eq!(resources.len(), 1);
    });
}

#[test]
fn tasks_chain_through_refs() {
    with_backend(|b| {
        let six = put(&b, 6i64);
        let squares: Vec<AnyRef> = (0..4)
            .map(|_| submit1(&b, &SQUARE, vec![Arg::Ref(six.clone())]))
            .collect();
        for r in &squares {
            assert_eq!(get::<i64>(r).unwrap(), 36);
        }
        let twice = submit1(&b, &SQUARE, vec![Arg::Ref(squares[0].clone())]);
        assert_eq!(get::<i64>(&twice).unwrap(), 1296);
        let parts = submit(&b, &SPLIT, vec![value(7i64)]).unwrap();
        assert_eq!(
            (
                get::<i64>(&parts[0]).unwrap(),
                get::<i64>(&parts[1]).unwrap()
            ),
            (3, 1)
        );
    });
}

#[test]
fn failed_task_gives_its_error_on_every_get() {
    with_backend(|b| {
        let r = submit1(&b, &DIVIDE, vec![value(1i64)]);
        for _ in 0..2 {
            let e = get::<i64>(&r).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TaskFailed);
            let t = e.task_error().unwrap();
            assert_eq!(t.failure, TaskFailure::Panicked);
            assert_eq!(t.function, "tests::divide");
            assert!(t.message.contains("divide by zero"), "{t}");
        }
        let ok = put(&b, 1i64);
        let id = r.id().unwrap();
        let e = b.get(&[ok.id().unwrap(), id], None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TaskFailed);
        // A failed object is ready.
        assert_eq!(b.wait(&[id], 1, None).unwrap(), [true]);
    });
}

#[test]
fn dependents_of_a_failed_task_fail_without_running() {
    with_backend(|b| {
        let failed = submit1(&b, &DIVIDE, vec![value(1i64)]);
        let before = COUNTED_RUNS.load(Ordering::SeqCst);
        let dependent = submit1(&b, &COUNTED, vec![Arg::Ref(failed)]);
        let next = submit1(&b, &COUNTED, vec![Arg::Ref(dependent.clone())]);
        assert_eq!(
            COUNTED_RUNS.load(Ordering::SeqCst),
            before,
            "a dependent ran"
        );
        for r in [&dependent, &next] {
            let e = get::<i64>(r).unwrap_err();
            let t = e.task_error().unwrap();
            assert_eq!(t.failure, TaskFailure::ArgumentFailed);
            assert_eq!(t.function, "tests::counted");
            assert!(t.message.contains("argument 0"), "{t}");
        }
        assert!(get::<i64>(&next)
            .unwrap_err()
            .to_string()
            .contains("tests::divide"));
        // An unrelated task still runs.
        assert_eq!(
            get::<i64>(&submit1(&b, &COUNTED, vec![value(1i64)])).unwrap(),
            2
        );
        assert_eq!(COUNTED_RUNS.load(Ordering::SeqCst), before + 1);
    });
}

#[test]
fn dropping_the_last_ref_frees_the_object() {
    with_backend(|b| {
        let r = put(&b, Tracked(0));
        let id = r.id().unwrap();
        let copy = r.clone();
        drop(r);
        assert_eq!(drops(0), 0, "freed while a clone lives");
        // A ref arriving inside a value counts as one more reference.
        b.ref_deserialized(id).unwrap();
        drop(copy);
        assert_eq!(drops(0), 0, "freed while a deserialized ref lives");
        b.release(id);
        assert_eq!(drops(0), 1);
        let e = b.get(&[id], None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Backend);
        assert!(e.to_string().contains(&id.to_string()), "{e}");
        assert_eq!(
            b.ref_deserialized(id).unwrap_err().kind(),
            ErrorKind::Backend
        );
    });
}

#[test]
fn freeing_a_value_that_holds_a_ref_frees_both() {
    // The outer value's drop releases the inner object: this would deadlock if values were
    // dropped under the store lock.
    with_backend(|b| {
        let inner = put(&b, Tracked(1));
        let outer = put(&b, inner);
        let outer_copy = submit1(&b, &IDENTITY_REF, vec![Arg::Ref(outer.clone())]);
        drop(outer);
        assert_eq!(drops(1), 0);
        drop(outer_copy);
        assert_eq!(drops(1), 1);
    });
}

fn identity_ref(args: &[Payload]) -> Result<Outputs> {
    Ok(vec![output(args[0].take::<AnyRef>()?)])
}
static IDENTITY_REF: RemoteFunction = RemoteFunction {
    name: "tests::identity_ref",
    num_returns: 1,
    invoke: identity_ref,
};

#[test]
fn shutdown_frees_every_object() {
    with_backend(|b| {
        let r = put(&b, Tracked(2));
        let _keep = put(&b, put(&b, Tracked(2)));
        b.shutdown().unwrap();
        assert_eq!(drops(2), 2);
        drop(r);
    });
}

#[test]
fn tasks_submit_tasks() {
    with_backend(|b| {
        let r = submit1(&b, &NESTED, vec![value(5i64)]);
        assert_eq!(get::<i64>(&r).unwrap(), 35);
        // The objects the task made were freed with their refs; only `r` is left.
        assert_eq!(store_len(), 1, "objects of the inner calls leaked");
    });
}

#[test]
fn a_task_without_returns_runs_and_its_failure_is_logged() {
    with_backend(|b| {
        let before = SILENT_RUNS.load(Ordering::SeqCst);
        let refs = submit(&b, &SILENT_FAILURE, vec![]).unwrap();
        assert!(refs.is_empty());
        assert_eq!(SILENT_RUNS.load(Ordering::SeqCst), before + 1);
    });
}

#[test]
fn refs_of_another_runtime_are_stale() {
    with_backend(|b| {
        let other = crate::start().unwrap();
        let foreign = put(&other, 3i64);
        let r = submit1(&b, &SQUARE, vec![Arg::Ref(foreign)]);
        let e = get::<i64>(&r).unwrap_err();
        assert_eq!(e.task_error().unwrap().failure, TaskFailure::ArgumentFailed);
        assert!(e.to_string().contains("shut down"), "{e}");
        other.shutdown().unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// Actors

#[test]
fn actor_calls_run_in_order() {
    with_backend(|b| {
        let c = create(&b, &COUNTER, vec![value(10i64)]);
        let first = call1(&c, &ADD, vec![value(5i64)]);
        let five = put(&b, 5i64);
        let second = call1(&c, &ADD, vec![Arg::Ref(five)]);
        assert_eq!(get::<i64>(&call1(&c, &GET, vec![])).unwrap(), 20);
        assert_eq!(
            (get::<i64>(&first).unwrap(), get::<i64>(&second).unwrap()),
            (15, 20)
        );
        let other = create(&b, &COUNTER, vec![value(1i64)]);
        assert_eq!(get::<i64>(&call1(&other, &GET, vec![])).unwrap(), 1);
    });
}

#[test]
fn actor_method_with_a_failed_argument_does_not_run() {
    with_backend(|b| {
        let c = create(&b, &COUNTER, vec![value(1i64)]);
        let failed = submit1(&b, &DIVIDE, vec![value(1i64)]);
        let r = call1(&c, &ADD, vec![Arg::Ref(failed)]);
        let e = get::<i64>(&r).unwrap_err();
        assert_eq!(e.task_error().unwrap().failure, TaskFailure::ArgumentFailed);
        assert_eq!(e.task_error().unwrap().function, "tests::Counter::add");
        assert_eq!(get::<i64>(&call1(&c, &GET, vec![])).unwrap(), 1);
    });
}

#[test]
fn failed_constructor_fails_every_call() {
    with_backend(|b| {
        let c = create(&b, &COUNTER, vec![value(-1i64)]);
        for method in [&GET, &ADD] {
            let args = if method.name.ends_with("add") {
                vec![value(1i64)]
            } else {
                vec![]
            };
            let e = get::<i64>(&call1(&c, method, args)).unwrap_err();
            let t = e.task_error().unwrap();
            assert_eq!(t.function, "tests::Counter");
            assert_eq!(t.failure, TaskFailure::Panicked);
            assert!(t.message.contains("not -1"), "{t}");
        }
    });
}

#[test]
fn async_method_sleeps_on_tokio() {
    with_backend(|b| {
        let c = create(&b, &COUNTER, vec![value(3i64)]);
        let start = Instant::now();
        let r = call1(&c, &LATER, vec![value(30u64)]);
        assert!(
            start.elapsed() >= Duration::from_millis(30),
            "the call returned before it finished"
        );
        assert_eq!(get::<i64>(&r).unwrap(), 3);
    });
}

#[test]
fn async_method_blocks_on_another_async_actor() {
    with_backend(|b| {
        let asking = create(&b, &COUNTER, vec![value(100i64)]);
        let asked = create(&b, &COUNTER, vec![value(7i64)]);
        let r = call1(&asking, &ASK, vec![value(asked.id().unwrap())]);
        assert_eq!(get::<i64>(&r).unwrap(), 107);
    });
}

#[test]
fn async_calls_on_one_actor_run_concurrently() {
    // The SignalActor pattern across threads: a `wait` in progress does not block `send`.
    with_backend(|b| {
        let s = create(&b, &SIGNAL, vec![]);
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || get::<i64>(&call1(&s, &WAIT, vec![])))
        };
        std::thread::sleep(Duration::from_millis(20));
        get::<()>(&call1(&s, &SEND, vec![])).unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), 7);
    });
}

fn assert_refused(outcome: (ErrorKind, String)) {
    let (kind, message) = outcome;
    assert_eq!(kind, ErrorKind::Unsupported, "{message}");
    assert!(message.contains("tests::Counter::add"), "{message}");
    assert!(message.contains("forever"), "{message}");
}

#[test]
fn reentrant_actor_call_is_an_error_not_a_hang() {
    with_backend(|b| {
        let c = create(&b, &COUNTER, vec![value(0i64)]);
        let me = c.id().unwrap();
        for through_task in [false, true] {
            let r = call1(&c, &TRY_ADD, vec![value(me), value(through_task)]);
            assert_refused(get::<(ErrorKind, String)>(&r).unwrap());
        }
        // The actor still serves calls.
        assert_eq!(get::<i64>(&call1(&c, &ADD, vec![value(2i64)])).unwrap(), 2);
    });
}

#[test]
fn call_cycle_through_another_actor_is_an_error_not_a_hang() {
    with_backend(|b| {
        let first = create(&b, &COUNTER, vec![value(0i64)]);
        let second = create(&b, &COUNTER, vec![value(0i64)]);
        let (a, m) = (first.id().unwrap(), second.id().unwrap());
        // first.relay -> second.try_add -> first.add: first is blocked in relay.
        let r = call1(&first, &RELAY, vec![value(m), value(a)]);
        assert_refused(get::<(ErrorKind, String)>(&r).unwrap());
        // Without a cycle the same path works: first.relay -> second.try_add -> third.add is
        // accepted, which `try_add` reports by panicking, so its ref holds that panic.
        let third = create(&b, &COUNTER, vec![value(0i64)]);
        let r = call1(&first, &RELAY, vec![value(m), value(third.id().unwrap())]);
        let e = get::<(ErrorKind, String)>(&r).unwrap_err();
        assert!(
            e.to_string().contains("re-entrant call was accepted"),
            "{e}"
        );
        assert_eq!(get::<i64>(&call1(&third, &GET, vec![])).unwrap(), 1);
    });
}

#[test]
fn killing_an_actor_ends_its_calls_in_progress() {
    with_backend(|b| {
        let s = create(&b, &SIGNAL, vec![]);
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || call(&s, &WAIT, vec![]).map(|_| ()))
        };
        std::thread::sleep(Duration::from_millis(20));
        s.kill().unwrap();
        let e = waiter.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ActorDead, "{e}");
    });
}

#[test]
fn killed_actor_refuses_calls() {
    with_backend(|b| {
        let c = create(&b, &COUNTER, vec![value(0i64)]);
        assert_eq!(get::<i64>(&call1(&c, &ADD, vec![value(1i64)])).unwrap(), 1);
        c.kill().unwrap();
        let e = call(&c, &GET, vec![]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ActorDead);
        assert!(e.to_string().contains("tests::Counter#"), "{e}");
        assert!(e.to_string().contains("killed"), "{e}");
        c.kill().unwrap();
    });
}

#[test]
fn releasing_the_last_handle_frees_the_actor() {
    with_backend(|b| {
        let p = create(&b, &PROBE, vec![value(Tracked(3))]);
        // The argument's own copy is gone once the constructor has run; the state holds one.
        let base = drops(3);
        let id = p.id().unwrap();
        b.actor_deserialized(id).unwrap();
        drop(p);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(drops(3), base, "freed while a handle lives");
        b.release_actor(id);
        // The actor thread frees its state when it ends, soon after.
        let deadline = Instant::now() + Duration::from_secs(5);
        while drops(3) == base {
            assert!(Instant::now() < deadline, "the actor was not freed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            b.actor_deserialized(id).unwrap_err().kind(),
            ErrorKind::ActorDead
        );
    });
}

#[test]
fn every_call_after_shutdown_is_refused() {
    with_backend(|b| {
        let r = put(&b, 1i64);
        let c = create(&b, &COUNTER, vec![value(0i64)]);
        let id = r.id().unwrap();
        b.shutdown().unwrap();
        b.shutdown().unwrap();
        let kinds = [
            b.put(Arc::new(1i64)).unwrap_err().kind(),
            b.submit(TaskSpec {
                function: &SQUARE,
                args: vec![value(1i64)],
                options: TaskOptions::default(),
            })
            .unwrap_err()
            .kind(),
            b.get(&[id], None).unwrap_err().kind(),
            b.wait(&[id], 1, None).unwrap_err().kind(),
            b.ref_deserialized(id).unwrap_err().kind(),
            call(&c, &GET, vec![]).unwrap_err().kind(),
            c.kill().unwrap_err().kind(),
            b.create_actor(ActorSpec {
                class: &COUNTER,
                args: vec![value(0i64)],
                options: TaskOptions::default(),
            })
            .unwrap_err()
            .kind(),
            b.cluster_resources().unwrap_err().kind(),
        ];
        assert!(kinds.iter().all(|k| *k == ErrorKind::ShutDown), "{kinds:?}");
        // Releasing after shutdown is harmless.
        drop(r);
        drop(c);
    });
}

#[test]
fn ids_are_unique_across_runtimes() {
    with_backend(|b| {
        let other = crate::start().unwrap();
        let a: ObjectId = b.put(Arc::new(1u8)).unwrap();
        let c: ObjectId = other.put(Arc::new(1u8)).unwrap();
        assert_ne!(a, c);
        assert_eq!(
            other.get(&[a], None).unwrap_err().kind(),
            ErrorKind::Backend
        );
        other.shutdown().unwrap();
    });
}
