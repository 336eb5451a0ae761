//! Actors on actix: call order, async concurrency (SignalActor), panics, kill, release.

mod common;

use std::any::Any;
use std::time::{Duration, Instant};

use common::fakes::{counter_drops, ADD, BOOM, COUNTER, GET, SLOW};
use common::*;
use unidist_core::actor::{ActorReadGuard, ActorState, LocalBoxFuture};
use unidist_core::registry::{ActorClassEntry, ActorMethodEntry, MethodKind};
use unidist_core::value::output;
use unidist_core::{
    ErrorKind, ObjectRef, Outputs, Payload, RawActorHandle, RemoteFunction, Result, TaskFailure,
};

const LIMIT: Duration = Duration::from_secs(60);

// ---- SignalActor: async waits released by sync sends ----------------------------------------

struct Signals {
    events: Vec<tokio::sync::watch::Sender<bool>>,
}

fn signals_new(args: Vec<Payload>) -> Result<ActorState> {
    let n = args[0].take::<usize>()?;
    Ok(Box::new(Signals {
        events: (0..n)
            .map(|_| tokio::sync::watch::channel(false).0)
            .collect(),
    }))
}

fn signals_send(state: &dyn Any, args: Vec<Payload>) -> Result<Outputs> {
    let s = state.downcast_ref::<Signals>().expect("signals");
    let i = args[0].take::<usize>()?;
    s.events[i].send_replace(true);
    Ok(vec![output(i)])
}

fn signals_wait(guard: ActorReadGuard, args: Vec<Payload>) -> LocalBoxFuture<Result<Outputs>> {
    Box::pin(async move {
        let i = args[0].take::<usize>()?;
        let mut rx = guard.downcast_ref::<Signals>().expect("signals").events[i].subscribe();
        let _ = rx.wait_for(|set| *set).await;
        Ok(vec![output(i)])
    })
}

fn signals_sleep(_guard: ActorReadGuard, args: Vec<Payload>) -> LocalBoxFuture<Result<Outputs>> {
    Box::pin(async move {
        let ms = args[0].take::<u64>()?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(vec![output(ms)])
    })
}

fn signals_async_boom(_guard: ActorReadGuard, _: Vec<Payload>) -> LocalBoxFuture<Result<Outputs>> {
    Box::pin(async move {
        tokio::task::yield_now().await;
        panic!("async boom")
    })
}

static SIGNALS: ActorClassEntry = ActorClassEntry {
    name: "tests::Signals",
    construct: signals_new,
};
static SEND: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Signals::send",
    class: "tests::Signals",
    num_returns: 1,
    kind: MethodKind::Ref(signals_send),
};
static WAIT: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Signals::wait",
    class: "tests::Signals",
    num_returns: 1,
    kind: MethodKind::Async(signals_wait),
};
static SLEEP: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Signals::sleep",
    class: "tests::Signals",
    num_returns: 1,
    kind: MethodKind::Async(signals_sleep),
};
static ASYNC_BOOM: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Signals::async_boom",
    class: "tests::Signals",
    num_returns: 1,
    kind: MethodKind::Async(signals_async_boom),
};

/// Upstream's `func(idx)`: wait for signal `idx`, then send `idx + 1`.
fn chain_body(args: Vec<Payload>) -> Result<Outputs> {
    let h = args[0].take::<RawActorHandle>()?;
    let idx = args[1].take::<usize>()?;
    get(&call::<usize>(&h, &WAIT, vec![val(idx)]))?;
    get(&call::<usize>(&h, &SEND, vec![val(idx + 1)]))?;
    Ok(vec![output(idx)])
}
static CHAIN: RemoteFunction = RemoteFunction {
    name: "tests::chain",
    num_returns: 1,
    invoke: chain_body,
};

/// Blocks in `get` on one wait of the actor.
fn block_on_wait_body(args: Vec<Payload>) -> Result<Outputs> {
    let h = args[0].take::<RawActorHandle>()?;
    let idx = args[1].take::<usize>()?;
    Ok(vec![output(get(&call::<usize>(
        &h,
        &WAIT,
        vec![val(idx)],
    ))?)])
}
static BLOCK_ON_WAIT: RemoteFunction = RemoteFunction {
    name: "tests::block_on_wait",
    num_returns: 1,
    invoke: block_on_wait_body,
};

fn sleepy_body(args: Vec<Payload>) -> Result<Outputs> {
    let ms = args[0].take::<u64>()?;
    std::thread::sleep(Duration::from_millis(ms));
    Ok(vec![output(ms as i64)])
}
static SLEEPY: RemoteFunction = RemoteFunction {
    name: "tests::sleepy",
    num_returns: 1,
    invoke: sleepy_body,
};

// ---- tests ---------------------------------------------------------------------------------

#[test]
fn calls_run_in_call_order() {
    let _rt = runtime(2);
    let c = create(&COUNTER, vec![val(0i64)]);
    let refs: Vec<ObjectRef<i64>> = (1..=2000)
        .map(|i| call(&c, &ADD, vec![val(i as i64)]))
        .collect();
    let got = bounded(LIMIT, "2000 calls", move || get_all(&refs)).unwrap();
    let expected: Vec<i64> = (1..=2000i64).map(|i| i * (i + 1) / 2).collect();
    assert_eq!(got, expected);
    assert_eq!(
        get(&call::<i64>(&c, &GET, vec![])).unwrap(),
        2000 * 2001 / 2
    );
}

#[test]
fn separate_actors_have_separate_state() {
    let _rt = runtime(2);
    let a = create(&COUNTER, vec![val(0i64)]);
    let b = create(&COUNTER, vec![val(1i64)]);
    assert_eq!(get(&call::<i64>(&a, &GET, vec![])).unwrap(), 0);
    assert_eq!(get(&call::<i64>(&b, &GET, vec![])).unwrap(), 1);
}

#[test]
fn pending_arguments_keep_call_order() {
    let _rt = runtime(2);
    let slow: ObjectRef<i64> = remote(&SLEEPY, vec![val(150u64)]);
    // The constructor waits for its argument, and so do calls with pending arguments; later
    // calls still run after them.
    let c = create(&COUNTER, vec![by_ref(&slow)]);
    let first: ObjectRef<i64> = call(&c, &ADD, vec![by_ref(&slow)]);
    let second: ObjectRef<i64> = call(&c, &ADD, vec![val(1i64)]);
    let v = bounded(LIMIT, "pending arguments", move || {
        (get(&first), get(&second))
    });
    assert_eq!((v.0.unwrap(), v.1.unwrap()), (300, 301));
}

#[test]
fn panicking_method_keeps_actor_alive() {
    let _rt = runtime(1);
    let c = create(&COUNTER, vec![val(5i64)]);
    let e = get(&call::<i64>(&c, &BOOM, vec![])).unwrap_err();
    assert_eq!(
        e.task_error().map(|t| t.failure),
        Some(TaskFailure::Panicked),
        "{e}"
    );
    assert!(e.to_string().contains("method boom"), "{e}");
    assert_eq!(get(&call::<i64>(&c, &ADD, vec![val(1i64)])).unwrap(), 6);
    // A failing constructor fails every call with its error.
    let bad = create(&COUNTER, vec![val(-1i64)]);
    let e = get(&call::<i64>(&bad, &GET, vec![])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TaskFailed);
    assert!(e.to_string().contains("not -1"), "{e}");
    // A panicking async method too.
    let s = create(&SIGNALS, vec![val(1usize)]);
    let e = get(&call::<usize>(&s, &ASYNC_BOOM, vec![])).unwrap_err();
    assert!(e.to_string().contains("async boom"), "{e}");
    assert_eq!(
        get(&call::<usize>(&s, &SEND, vec![val(0usize)])).unwrap(),
        0
    );
}

#[test]
fn async_methods_run_concurrently() {
    let _rt = runtime(1);
    let s = create(&SIGNALS, vec![val(1usize)]);
    let t0 = Instant::now();
    let refs: Vec<ObjectRef<u64>> = (0..20)
        .map(|_| call(&s, &SLEEP, vec![val(200u64)]))
        .collect();
    bounded(LIMIT, "20 sleeping calls", move || get_all(&refs)).unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(2000),
        "async calls ran one by one: {:?}",
        t0.elapsed()
    );
}

fn signal_actor_on(threads: usize) {
    let _rt = runtime(threads);
    let n = threads;
    let s = create(&SIGNALS, vec![val(n + 1)]);
    get(&call::<usize>(&s, &SEND, vec![val(0usize)])).unwrap();
    let refs: Vec<ObjectRef<usize>> = (0..n)
        .map(|i| remote(&CHAIN, vec![val(s.clone()), val(i)]))
        .collect();
    let got = bounded(LIMIT, "signal actor chain", move || get_all(&refs)).unwrap();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
}

#[test]
fn signal_actor_one_thread() {
    signal_actor_on(1);
}

#[test]
fn signal_actor_two_threads() {
    signal_actor_on(2);
}

#[test]
fn many_tasks_blocked_on_one_actor_are_released() {
    let _rt = runtime(2);
    let n = 8;
    let s = create(&SIGNALS, vec![val(n)]);
    let refs: Vec<ObjectRef<usize>> = (0..n)
        .map(|i| remote(&BLOCK_ON_WAIT, vec![val(s.clone()), val(i)]))
        .collect();
    // Let the tasks block first.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        wait(&refs, 1, Some(Duration::ZERO)).unwrap(),
        vec![false; n]
    );
    for i in 0..n {
        call::<usize>(&s, &SEND, vec![val(i)]);
    }
    let got = bounded(LIMIT, "blocked tasks", move || get_all(&refs)).unwrap();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
}

#[test]
fn kill_fails_queued_and_later_calls() {
    let _rt = runtime(2);
    let c = create(&COUNTER, vec![val(1i64)]);
    let first: ObjectRef<i64> = call(&c, &SLOW, vec![val(200u64)]);
    let queued: Vec<ObjectRef<i64>> = (0..5).map(|_| call(&c, &SLOW, vec![val(200u64)])).collect();
    std::thread::sleep(Duration::from_millis(50));
    c.kill().unwrap();
    let later: ObjectRef<i64> = call(&c, &GET, vec![]);
    assert_eq!(get(&later).unwrap_err().kind(), ErrorKind::ActorDead);
    let results = bounded(LIMIT, "calls of a killed actor", move || {
        queued
            .iter()
            .map(|r| get(r).map_err(|e| e.kind()))
            .collect::<Vec<_>>()
    });
    assert!(
        results.iter().all(|r| *r == Err(ErrorKind::ActorDead)),
        "{results:?}"
    );
    // The call that was running when the kill came may finish or fail, but never hang.
    let _ = bounded(LIMIT, "the running call", move || get(&first));
    // Killing twice is fine.
    c.kill().unwrap();
}

#[test]
fn release_ends_actor_after_queued_calls() {
    let _rt = runtime(2);
    let before = counter_drops();
    let c = create(&COUNTER, vec![val(0i64)]);
    let refs: Vec<ObjectRef<i64>> = (0..50).map(|_| call(&c, &ADD, vec![val(1i64)])).collect();
    drop(c);
    let got = bounded(LIMIT, "calls of a released actor", move || get_all(&refs)).unwrap();
    assert_eq!(got.last(), Some(&50));
    assert!(
        eventually(Duration::from_secs(10), || counter_drops() > before),
        "the released actor's state was never dropped"
    );
}

#[test]
fn handles_are_usable_inside_tasks() {
    let _rt = runtime(1);
    let s = create(&SIGNALS, vec![val(2usize)]);
    // One task blocks on wait(1) while another sends 1: both on the only pool thread.
    let waiter: ObjectRef<usize> = remote(&BLOCK_ON_WAIT, vec![val(s.clone()), val(1usize)]);
    let sender: ObjectRef<usize> = remote(&CHAIN, vec![val(s.clone()), val(0usize)]);
    call::<usize>(&s, &SEND, vec![val(0usize)]);
    let got = bounded(LIMIT, "handles in tasks", move || {
        (get(&waiter), get(&sender))
    });
    assert_eq!((got.0.unwrap(), got.1.unwrap()), (1, 0));
}

#[test]
fn signal_chain_in_reverse_order_with_more_tasks_than_threads() {
    // Every task but the last submitted blocks until a task submitted after it has run: with
    // one pool thread only lending blocked slots lets the chain complete.
    let _rt = runtime(1);
    let n = 6;
    let s = create(&SIGNALS, vec![val(n + 1)]);
    let refs: Vec<ObjectRef<usize>> = (0..n)
        .rev()
        .map(|i| remote(&CHAIN, vec![val(s.clone()), val(i)]))
        .collect();
    call::<usize>(&s, &SEND, vec![val(0usize)]);
    let got = bounded(LIMIT, "reverse signal chain", move || get_all(&refs)).unwrap();
    assert_eq!(got, (0..n).rev().collect::<Vec<_>>());
}
