//! Async actors: upstream's `test_async_actor.py` scenarios (including `pending_get` and the
//! SignalActor pattern) and the concurrency of `async fn` methods within one actor.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use unidist::{ActorHandle, ErrorKind, ObjectRef};

use crate::harness::{
    cases, ensure, ensure_eq, ensure_mentions, expect_err, fetch, Case, Outcome, READ_LIMIT,
};

pub(crate) fn cases() -> Vec<Case> {
    cases!("async_actor":
        constructor,
        chaining,
        num_returns,
        address_space,
        global_capture,
        direct_capture,
        return_none,
        pending_get,
        signal_actor,
        concurrent_calls,
        async_mut_then_read,
        async_method_panic_keeps_serving,
    )
}

/// Upstream's `TestAsyncActor`: the methods are `async`.
pub(crate) struct TestAsyncActor {
    accumulator: i64,
}

impl TestAsyncActor {
    fn internal(&mut self) {
        self.accumulator += 1;
    }
}

async fn a_moment() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[unidist::actor]
impl TestAsyncActor {
    /// Starts the accumulator at `init`.
    pub(crate) fn new(init: i64) -> Self {
        TestAsyncActor { accumulator: init }
    }

    /// The accumulator.
    pub(crate) async fn get_accumulator(&self) -> i64 {
        a_moment().await;
        self.accumulator
    }

    /// Adds `x`, then one more.
    pub(crate) async fn task(&mut self, x: i64) -> i64 {
        a_moment().await;
        self.accumulator += x;
        self.internal();
        self.accumulator
    }

    /// Returns nothing, as an object.
    pub(crate) async fn task_return_none(&self) -> Option<i64> {
        a_moment().await;
        None
    }

    /// `x` and the accumulator, as two objects.
    #[remote(num_returns = 2)]
    pub(crate) async fn multiple_returns(&self, x: i64) -> (i64, i64) {
        a_moment().await;
        (x, self.accumulator)
    }

    /// Panics with `message` after an await.
    pub(crate) async fn explode(&self, message: String) -> i64 {
        a_moment().await;
        panic!("{message}")
    }
}

/// Upstream `test_actor_constructor`.
fn constructor() -> Outcome {
    ensure_eq!(fetch(&TestAsyncActor::remote(0).get_accumulator())?, 0);
    ensure_eq!(fetch(&TestAsyncActor::remote(5).get_accumulator())?, 5);
    Ok(())
}

/// Upstream `test_chaining`.
fn chaining() -> Outcome {
    let r = unidist::put(7i64);
    ensure_eq!(fetch(&TestAsyncActor::remote(0).task(&r))?, 8);
    Ok(())
}

/// Upstream `test_num_returns`.
fn num_returns() -> Outcome {
    let (x, acc): (ObjectRef<i64>, ObjectRef<i64>) = TestAsyncActor::remote(7).multiple_returns(3);
    ensure_eq!((fetch(&x)?, fetch(&acc)?), (3, 7));
    Ok(())
}

/// Upstream `test_address_space`.
fn address_space() -> Outcome {
    let a = TestAsyncActor::remote(0);
    let b = TestAsyncActor::remote(1);
    ensure_eq!(fetch(&a.get_accumulator())?, 0);
    ensure_eq!(fetch(&b.get_accumulator())?, 1);
    ensure_eq!(fetch(&b.task(1))?, 3);
    ensure_eq!(fetch(&a.get_accumulator())?, 0);
    Ok(())
}

/// An async actor's handle inside a value passed to a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AsyncHolder {
    actor: ActorHandle<TestAsyncActor>,
}

#[unidist::remote]
fn read_through_holder(holder: AsyncHolder) -> i64 {
    unidist::get(&holder.actor.get_accumulator()).expect("an actor call from a task failed")
}

#[unidist::remote]
fn read_direct(actor: ActorHandle<TestAsyncActor>) -> i64 {
    unidist::get(&actor.get_accumulator()).expect("an actor call from a task failed")
}

/// Upstream `test_global_capture`.
fn global_capture() -> Outcome {
    let holder = AsyncHolder {
        actor: TestAsyncActor::remote(0),
    };
    ensure_eq!(fetch(&read_through_holder::remote(holder))?, 0);
    Ok(())
}

/// Upstream `test_direct_capture`.
fn direct_capture() -> Outcome {
    ensure_eq!(fetch(&read_direct::remote(TestAsyncActor::remote(0)))?, 0);
    Ok(())
}

/// Upstream `test_return_none`.
fn return_none() -> Outcome {
    ensure_eq!(fetch(&TestAsyncActor::remote(0).task_return_none())?, None);
    Ok(())
}

/// Upstream's `SlowActor`.
pub(crate) struct SlowActor;

#[unidist::actor]
impl SlowActor {
    /// No state.
    pub(crate) fn new() -> Self {
        SlowActor
    }

    /// One, after a second of awaiting.
    pub(crate) async fn slow_execute(&self) -> i64 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        1
    }
}

#[unidist::remote]
fn get_slow_plus_one(actor: ActorHandle<SlowActor>) -> i64 {
    unidist::get(&actor.slow_execute()).expect("the slow actor call failed") + 1
}

/// Upstream `test_pending_get`: a task blocks in `get` on an async method still running.
fn pending_get() -> Outcome {
    let actor = SlowActor::remote();
    ensure_eq!(fetch(&get_slow_plus_one::remote(actor))?, 2);
    Ok(())
}

/// Upstream's `SignalActor`: events set by a sync method and awaited by an async one.
pub(crate) struct SignalActor {
    events: Vec<watch::Sender<bool>>,
}

#[unidist::actor]
impl SignalActor {
    /// `n` events, none set.
    pub(crate) fn new(n: usize) -> Self {
        SignalActor {
            events: (0..n).map(|_| watch::channel(false).0).collect(),
        }
    }

    /// Sets event `i`; returns `i`.
    pub(crate) fn send(&self, i: usize) -> usize {
        self.events[i].send_replace(true);
        i
    }

    /// Returns `i` once event `i` is set.
    pub(crate) async fn wait(&self, i: usize) -> usize {
        let mut events = self.events[i].subscribe();
        let set = events.wait_for(|set| *set).await.is_ok();
        assert!(set, "event {i} can no longer be set");
        i
    }

    /// Whether event `i` was set within `ms` milliseconds.
    pub(crate) async fn wait_at_most(&self, i: usize, ms: u64) -> bool {
        let mut events = self.events[i].subscribe();
        let waited = tokio::time::timeout(Duration::from_millis(ms), events.wait_for(|set| *set));
        // Bound to a local so that the borrow of `events` in the result ends before `events`.
        let set = matches!(waited.await, Ok(Ok(_)));
        set
    }
}

#[unidist::remote]
fn signal_chain(signals: ActorHandle<SignalActor>, i: usize) -> usize {
    unidist::get(&signals.wait(i)).expect("waiting for a signal failed");
    unidist::get(&signals.send(i + 1)).expect("sending a signal failed");
    i
}

/// Upstream `test_signal_actor`: one task per CPU, each waiting in the actor for the previous
/// one's signal; needs async methods that wait concurrently and workers blocked in `get`.
fn signal_actor() -> Outcome {
    let n = unidist::num_cpus();
    let signals = SignalActor::remote(n + 1);
    ensure_eq!(fetch(&signals.send(0))?, 0);
    let refs: Vec<ObjectRef<usize>> = (0..n)
        .map(|i| signal_chain::remote(signals.clone(), i))
        .collect();
    let mut got = Vec::with_capacity(n);
    for r in &refs {
        got.push(fetch(r)?);
    }
    ensure_eq!(got, (0..n).collect::<Vec<_>>());
    Ok(())
}

/// An actor awaiting in one call still serves the next ones, async and sync: a later `wait`
/// finishes while an earlier one still awaits, and a later `send` releases the earlier `wait`.
fn concurrent_calls() -> Outcome {
    let signals = SignalActor::remote(2);
    let first = signals.wait_at_most(1, 3000);
    let second = signals.wait_at_most(0, 3000);
    ensure_eq!(fetch(&signals.send(0))?, 0);
    ensure!(
        fetch(&second)?,
        "an async call was not served while an earlier async call awaited"
    );
    ensure_eq!(fetch(&signals.send(1))?, 1);
    ensure!(
        fetch(&first)?,
        "the awaiting call was not released by a later call on the same actor"
    );
    Ok(())
}

/// An `async fn(&mut self)` call finishes before later calls see the state.
fn async_mut_then_read() -> Outcome {
    let actor = TestAsyncActor::remote(0);
    let w1 = actor.task(2);
    let r1 = actor.get_accumulator();
    let w2 = actor.task(3);
    let r2 = actor.get_accumulator();
    ensure_eq!(unidist::get_all(&[w1, r1, w2, r2])?, vec![3, 3, 7, 7]);
    Ok(())
}

/// A panic in an async method is that call's error; the actor keeps serving.
fn async_method_panic_keeps_serving() -> Outcome {
    let actor = TestAsyncActor::remote(4);
    let e = expect_err(
        unidist::get_timeout(&actor.explode("async boom".to_string()), READ_LIMIT),
        ErrorKind::TaskFailed,
    )?;
    ensure_mentions(&e.to_string(), &["explode", "async boom"])?;
    ensure_eq!(fetch(&actor.get_accumulator())?, 4);
    ensure_eq!(fetch(&actor.task(1))?, 6);
    Ok(())
}
