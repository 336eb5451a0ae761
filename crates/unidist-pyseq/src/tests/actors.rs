//! Actors: call order, failed arguments and constructors, async methods, re-entrant calls,
//! kill, release and shutdown.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use unidist_core::actor::{ActorReadGuard, ActorState, LocalBoxFuture};
use unidist_core::value::output;
use unidist_core::{
    ActorCall, ActorClassEntry, ActorId, ActorMethodEntry, ActorSpec, AnyRef, ErrorKind,
    MethodKind, ObjectRef, Outputs, Payload, RemoteFunction, Result, TaskFailure, TaskOptions,
    TaskSpec,
};
use unidist_testkit::fakes::{
    drops, Counter, Tracked, ADD, COUNTER, DIVIDE, GET, LATER, SEND, SIGNAL, SQUARE, WAIT,
};
use unidist_testkit::{backend, by_ref, call, call_n, create, get, put, remote, val};

use super::with_backend;

/// `async fn ask(&self, other: ActorId) -> i64`: blocks in `get` on another actor's async
/// method, from inside this actor's runtime.
fn counter_ask(state: ActorReadGuard, args: Vec<Payload>) -> LocalBoxFuture<Result<Outputs>> {
    Box::pin(async move {
        let other = args[0].take::<ActorId>()?;
        tokio::time::sleep(Duration::from_millis(1)).await;
        let b = backend();
        let ids = b.call_actor(ActorCall {
            actor: other,
            method: &LATER,
            args: vec![val(5u64)],
        })?;
        let r = ObjectRef::<i64>::from_any(AnyRef::live(ids[0], &b));
        Ok(vec![output(get(&r)? + Counter::of(&**state).n())])
    })
}
static ASK: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Counter::ask",
    class: "testkit::Counter",
    num_returns: 1,
    kind: MethodKind::Async(counter_ask),
};

/// What a call that must be refused gave: its error's kind and message.
type Refusal = (ErrorKind, String);

/// Calls `add` on `actor` and reports the error of that call; it must be refused.
fn refused_add(actor: ActorId) -> Refusal {
    match backend().call_actor(ActorCall {
        actor,
        method: &ADD,
        args: vec![val(1i64)],
    }) {
        Ok(_) => panic!("the re-entrant call was accepted"),
        Err(e) => (e.kind(), e.to_string()),
    }
}

/// `fn try_add(&self, target: ActorId, through_task: bool) -> Refusal`: calls `add` on
/// `target`, directly or from a task it submits.
fn counter_try_add(_: &dyn Any, args: Vec<Payload>) -> Result<Outputs> {
    let target = args[0].take::<ActorId>()?;
    let outcome = if args[1].take::<bool>()? {
        get(&remote::<Refusal>(&CALL_ACTOR_ADD, vec![val(target)]))?
    } else {
        refused_add(target)
    };
    Ok(vec![output(outcome)])
}
static TRY_ADD: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Counter::try_add",
    class: "testkit::Counter",
    num_returns: 1,
    kind: MethodKind::Ref(counter_try_add),
};

/// `fn relay(&self, mid: ActorId, target: ActorId) -> Refusal`: asks `mid` to `try_add` on
/// `target` and returns its answer.
fn counter_relay(_: &dyn Any, args: Vec<Payload>) -> Result<Outputs> {
    let mid = args[0].take::<ActorId>()?;
    let target = args[1].take::<ActorId>()?;
    let b = backend();
    let ids = b.call_actor(ActorCall {
        actor: mid,
        method: &TRY_ADD,
        args: vec![val(target), val(false)],
    })?;
    let r = ObjectRef::<Refusal>::from_any(AnyRef::live(ids[0], &b));
    Ok(vec![output(get(&r)?)])
}
static RELAY: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Counter::relay",
    class: "testkit::Counter",
    num_returns: 1,
    kind: MethodKind::Ref(counter_relay),
};

/// A task calling `add` on the given actor and reporting the error of that call.
fn call_actor_add(args: Vec<Payload>) -> Result<Outputs> {
    Ok(vec![output(refused_add(args[0].take::<ActorId>()?))])
}
static CALL_ACTOR_ADD: RemoteFunction = RemoteFunction {
    name: "tests::call_actor_add",
    num_returns: 1,
    invoke: call_actor_add,
};

/// An actor holding a [`Tracked`] value, to observe when the actor is freed.
fn probe_new(args: Vec<Payload>) -> Result<ActorState> {
    Ok(Box::new(args[0].take::<Tracked>()?))
}
static PROBE: ActorClassEntry = ActorClassEntry {
    name: "tests::Probe",
    construct: probe_new,
};

#[test]
fn actor_calls_run_in_order() {
    with_backend(|_| {
        let c = create(&COUNTER, vec![val(10i64)]);
        let first: ObjectRef<i64> = call(&c, &ADD, vec![val(5i64)]);
        let five = put(5i64);
        let second: ObjectRef<i64> = call(&c, &ADD, vec![by_ref(&five)]);
        assert_eq!(get(&call::<i64>(&c, &GET, vec![])).unwrap(), 20);
        assert_eq!((get(&first).unwrap(), get(&second).unwrap()), (15, 20));
        let other = create(&COUNTER, vec![val(1i64)]);
        assert_eq!(get(&call::<i64>(&other, &GET, vec![])).unwrap(), 1);
    });
}

#[test]
fn actor_method_with_a_failed_argument_does_not_run() {
    with_backend(|_| {
        let c = create(&COUNTER, vec![val(1i64)]);
        let failed: ObjectRef<i64> = remote(&DIVIDE, vec![val(1i64)]);
        let r: ObjectRef<i64> = call(&c, &ADD, vec![by_ref(&failed)]);
        let e = get(&r).unwrap_err();
        assert_eq!(e.task_error().unwrap().failure, TaskFailure::ArgumentFailed);
        assert_eq!(e.task_error().unwrap().function, ADD.name);
        assert_eq!(get(&call::<i64>(&c, &GET, vec![])).unwrap(), 1);
    });
}

#[test]
fn failed_constructor_fails_every_call() {
    with_backend(|_| {
        let c = create(&COUNTER, vec![val(-1i64)]);
        for (method, args) in [(&GET, vec![]), (&ADD, vec![val(1i64)])] {
            let e = get(&call::<i64>(&c, method, args)).unwrap_err();
            let t = e.task_error().unwrap();
            assert_eq!(t.function, COUNTER.name);
            assert_eq!(t.failure, TaskFailure::Panicked);
            assert!(t.message.contains("not -1"), "{t}");
        }
    });
}

#[test]
fn async_method_sleeps_on_tokio() {
    with_backend(|_| {
        let c = create(&COUNTER, vec![val(3i64)]);
        let start = Instant::now();
        let r: ObjectRef<i64> = call(&c, &LATER, vec![val(30u64)]);
        assert!(
            start.elapsed() >= Duration::from_millis(30),
            "the call returned before it finished"
        );
        assert_eq!(get(&r).unwrap(), 3);
    });
}

#[test]
fn async_method_blocks_on_another_async_actor() {
    with_backend(|_| {
        let asking = create(&COUNTER, vec![val(100i64)]);
        let asked = create(&COUNTER, vec![val(7i64)]);
        let r: ObjectRef<i64> = call(&asking, &ASK, vec![val(asked.id().unwrap())]);
        assert_eq!(get(&r).unwrap(), 107);
    });
}

#[test]
fn async_calls_on_one_actor_run_concurrently() {
    // The SignalActor pattern across threads: a `wait` in progress does not block `send`.
    with_backend(|_| {
        let s = create(&SIGNAL, vec![]);
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || get(&call::<i64>(&s, &WAIT, vec![])))
        };
        std::thread::sleep(Duration::from_millis(20));
        get(&call::<()>(&s, &SEND, vec![])).unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), 7);
    });
}

fn assert_refused(outcome: Refusal) {
    let (kind, message) = outcome;
    assert_eq!(kind, ErrorKind::Unsupported, "{message}");
    assert!(message.contains(ADD.name), "{message}");
    assert!(message.contains("forever"), "{message}");
}

#[test]
fn reentrant_actor_call_is_an_error_not_a_hang() {
    with_backend(|_| {
        let c = create(&COUNTER, vec![val(0i64)]);
        let me = c.id().unwrap();
        for through_task in [false, true] {
            let r: ObjectRef<Refusal> = call(&c, &TRY_ADD, vec![val(me), val(through_task)]);
            assert_refused(get(&r).unwrap());
        }
        // The actor still serves calls.
        assert_eq!(get(&call::<i64>(&c, &ADD, vec![val(2i64)])).unwrap(), 2);
    });
}

#[test]
fn call_cycle_through_another_actor_is_an_error_not_a_hang() {
    with_backend(|_| {
        let first = create(&COUNTER, vec![val(0i64)]);
        let second = create(&COUNTER, vec![val(0i64)]);
        let (a, m) = (first.id().unwrap(), second.id().unwrap());
        // first.relay -> second.try_add -> first.add: first is blocked in relay.
        let r: ObjectRef<Refusal> = call(&first, &RELAY, vec![val(m), val(a)]);
        assert_refused(get(&r).unwrap());
        // Without a cycle the same path works: first.relay -> second.try_add -> third.add is
        // accepted, which `try_add` reports by panicking, so its ref holds that panic.
        let third = create(&COUNTER, vec![val(0i64)]);
        let r: ObjectRef<Refusal> = call(&first, &RELAY, vec![val(m), val(third.id().unwrap())]);
        let e = get(&r).unwrap_err();
        assert!(
            e.to_string().contains("re-entrant call was accepted"),
            "{e}"
        );
        assert_eq!(get(&call::<i64>(&third, &GET, vec![])).unwrap(), 1);
    });
}

#[test]
fn killing_an_actor_ends_its_calls_in_progress() {
    with_backend(|_| {
        let s = create(&SIGNAL, vec![]);
        let waiter = {
            let s = s.clone();
            std::thread::spawn(move || call_n(&s, &WAIT, vec![]).map(|_| ()))
        };
        std::thread::sleep(Duration::from_millis(20));
        s.kill().unwrap();
        let e = waiter.join().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ActorDead, "{e}");
        assert!(e.to_string().contains("testkit::Signal#"), "{e}");
    });
}

#[test]
fn killed_actor_refuses_calls() {
    with_backend(|_| {
        let c = create(&COUNTER, vec![val(0i64)]);
        assert_eq!(get(&call::<i64>(&c, &ADD, vec![val(1i64)])).unwrap(), 1);
        c.kill().unwrap();
        let e = call_n(&c, &GET, vec![]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ActorDead);
        assert!(e.to_string().contains("testkit::Counter#"), "{e}");
        assert!(e.to_string().contains("killed"), "{e}");
        c.kill().unwrap();
    });
}

#[test]
fn releasing_the_last_handle_frees_the_actor() {
    with_backend(|b| {
        let p = create(&PROBE, vec![val(Tracked(3))]);
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
        // Killing an actor this runtime no longer knows does nothing.
        b.kill_actor(id).unwrap();
    });
}

#[test]
fn every_call_after_shutdown_is_refused() {
    with_backend(|b| {
        let r = put(1i64);
        let c = create(&COUNTER, vec![val(0i64)]);
        let id = r.id().unwrap();
        b.shutdown().unwrap();
        b.shutdown().unwrap();
        let kinds = [
            b.put(Arc::new(1i64)).unwrap_err().kind(),
            b.submit(TaskSpec {
                function: &SQUARE,
                args: vec![val(1i64)],
                options: TaskOptions::default(),
            })
            .unwrap_err()
            .kind(),
            b.get(&[id], None).unwrap_err().kind(),
            b.wait(&[id], 1, None).unwrap_err().kind(),
            b.ref_deserialized(id).unwrap_err().kind(),
            call_n(&c, &GET, vec![]).unwrap_err().kind(),
            c.kill().unwrap_err().kind(),
            b.create_actor(ActorSpec {
                class: &COUNTER,
                args: vec![val(0i64)],
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
