//! Actors: upstream's `test_actor.py` scenarios and the "Actors" rows of the API (call order,
//! `&self`/`&mut self`, several and no returns, handles in tasks, panics, `kill`).

use serde::{Deserialize, Serialize};
use unidist::{ActorHandle, ErrorKind, ObjectRef};

use crate::fixtures::{read_accumulator, Counter, TestActor};
use crate::harness::{
    cases, ensure, ensure_eq, ensure_mentions, expect_err, fetch, Case, Outcome, READ_LIMIT,
};

pub(crate) fn cases() -> Vec<Case> {
    cases!("actor":
        constructor,
        chaining,
        num_returns,
        address_space,
        global_capture,
        direct_capture,
        return_none,
        scheduling,
        call_order,
        self_and_mut_self,
        num_returns_zero_method,
        handle_called_in_task,
        handle_clone_shares_actor,
        method_panic_keeps_serving,
        constructor_panic_is_error,
        kill_then_calls_error,
    )
}

/// Upstream `test_actor_constructor`: arguments of `new` reach the actor.
fn constructor() -> Outcome {
    ensure_eq!(fetch(&TestActor::remote(0).get_accumulator())?, 0);
    ensure_eq!(fetch(&TestActor::remote(5).get_accumulator())?, 5);
    Ok(())
}

/// Upstream `test_chaining`: a put as a method argument.
fn chaining() -> Outcome {
    let r = unidist::put(7i64);
    ensure_eq!(fetch(&TestActor::remote(0).task(&r))?, 8);
    Ok(())
}

/// Upstream `test_num_returns`: a method with two returns.
fn num_returns() -> Outcome {
    let (x, acc): (ObjectRef<i64>, ObjectRef<i64>) = TestActor::remote(7).multiple_returns(3);
    ensure_eq!((fetch(&x)?, fetch(&acc)?), (3, 7));
    Ok(())
}

/// Upstream `test_address_space`: two actors have independent state.
fn address_space() -> Outcome {
    let a = TestActor::remote(0);
    let b = TestActor::remote(1);
    ensure_eq!(fetch(&a.get_accumulator())?, 0);
    ensure_eq!(fetch(&b.get_accumulator())?, 1);
    ensure_eq!(fetch(&a.task(10))?, 11);
    ensure_eq!(fetch(&b.get_accumulator())?, 1);
    Ok(())
}

/// A handle captured in a value, the Rust form of upstream's global capture (functions cannot
/// close over state here, and statics are per process under MPI).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Holder {
    actor: ActorHandle<TestActor>,
    label: String,
}

#[unidist::remote]
fn read_through_holder(holder: Holder) -> (String, i64) {
    let value =
        unidist::get(&holder.actor.get_accumulator()).expect("an actor call from a task failed");
    (holder.label, value)
}

/// Upstream `test_global_capture`.
fn global_capture() -> Outcome {
    let holder = Holder {
        actor: TestActor::remote(0),
        label: "held".into(),
    };
    ensure_eq!(
        fetch(&read_through_holder::remote(holder.clone()))?,
        ("held".to_string(), 0)
    );
    let stored = unidist::put(holder);
    ensure_eq!(
        fetch(&read_through_holder::remote(&stored))?,
        ("held".to_string(), 0)
    );
    Ok(())
}

/// Upstream `test_direct_capture`: the handle as an argument.
fn direct_capture() -> Outcome {
    let actor = TestActor::remote(0);
    ensure_eq!(fetch(&read_accumulator::remote(actor.clone()))?, 0);
    Ok(())
}

/// Upstream `test_return_none`.
fn return_none() -> Outcome {
    ensure_eq!(fetch(&TestActor::remote(0).task_return_none())?, None);
    Ok(())
}

/// Upstream `test_actor_scheduling`: as many tasks as CPUs, one after another, each calling the
/// same actor; tasks must not be stuck behind the actor.
fn scheduling() -> Outcome {
    let actor = TestActor::remote(0);
    for _ in 0..unidist::num_cpus() {
        ensure_eq!(fetch(&read_accumulator::remote(actor.clone()))?, 0);
    }
    Ok(())
}

/// Calls run in call order even when nothing is read in between.
fn call_order() -> Outcome {
    let counter = Counter::remote(0);
    let refs: Vec<ObjectRef<i64>> = (1..=20).map(|i| counter.add(i)).collect();
    let expected: Vec<i64> = (1..=20).map(|i| i * (i + 1) / 2).collect();
    ensure_eq!(unidist::get_all(&refs)?, expected);
    Ok(())
}

/// Reads (`&self`) and writes (`&mut self`) interleaved without waiting see each other in order.
fn self_and_mut_self() -> Outcome {
    let actor = TestActor::remote(0);
    let r1 = actor.get_accumulator();
    let w1 = actor.task(2);
    let r2 = actor.get_accumulator();
    let w2 = actor.task(3);
    let r3 = actor.get_accumulator();
    ensure_eq!(
        unidist::get_all(&[r1, w1, r2, w2, r3])?,
        vec![0, 3, 3, 7, 7]
    );
    Ok(())
}

/// A method with `num_returns = 0` gives `()` and still runs in order.
fn num_returns_zero_method() -> Outcome {
    let actor = TestActor::remote(1);
    let () = actor.bump(5);
    let () = actor.bump(unidist::put(10i64));
    ensure_eq!(fetch(&actor.get_accumulator())?, 16);
    Ok(())
}

#[unidist::remote]
fn add_through(actor: ActorHandle<TestActor>, x: i64) -> i64 {
    unidist::get(&actor.task(x)).expect("an actor call from a task failed")
}

/// A task changes the actor through its handle; the caller sees the change.
fn handle_called_in_task() -> Outcome {
    let actor = TestActor::remote(0);
    ensure_eq!(fetch(&add_through::remote(actor.clone(), 4))?, 5);
    ensure_eq!(fetch(&add_through::remote(actor.clone(), 1))?, 7);
    ensure_eq!(fetch(&actor.get_accumulator())?, 7);
    Ok(())
}

/// A cloned handle reaches the same actor.
fn handle_clone_shares_actor() -> Outcome {
    let a = Counter::remote(0);
    let b = a.clone();
    ensure_eq!(fetch(&b.add(3))?, 3);
    ensure_eq!(fetch(&a.get())?, 3);
    drop(b);
    ensure_eq!(fetch(&a.add(1))?, 4);
    Ok(())
}

/// A panicking method gives an error naming the method and the message for that call only; the
/// actor keeps its state and serves later calls.
fn method_panic_keeps_serving() -> Outcome {
    let actor = TestActor::remote(3);
    let failed = actor.explode("boom in a method".to_string());
    for _ in 0..2 {
        let e = expect_err(
            unidist::get_timeout(&failed, READ_LIMIT),
            ErrorKind::TaskFailed,
        )?;
        ensure_mentions(&e.to_string(), &["explode", "boom in a method"])?;
    }
    ensure_eq!(fetch(&actor.get_accumulator())?, 3);
    ensure_eq!(fetch(&actor.task(1))?, 5);
    Ok(())
}

/// An actor whose constructor panics.
pub(crate) struct Fragile;

#[unidist::actor]
impl Fragile {
    /// Panics unless `ok`.
    pub(crate) fn new(ok: bool) -> Self {
        assert!(ok, "fragile constructor refused");
        Fragile
    }

    /// One.
    pub(crate) fn ping(&self) -> i64 {
        1
    }
}

/// A constructor that panics makes the calls on its handle errors, not hangs.
fn constructor_panic_is_error() -> Outcome {
    let broken = Fragile::remote(false);
    match unidist::get_timeout(&broken.ping(), READ_LIMIT) {
        Ok(v) => {
            return Err(crate::harness::Fail(format!(
                "expected an error, got Ok({v})"
            )))
        }
        Err(e) => ensure!(
            e.kind() != ErrorKind::Timeout,
            "a call on an actor whose constructor panicked hung: {e}"
        ),
    }
    ensure_eq!(fetch(&Fragile::remote(true).ping())?, 1);
    Ok(())
}

/// After `kill`, calls give `ActorDead` instead of hanging; other actors are unaffected.
fn kill_then_calls_error() -> Outcome {
    let actor = TestActor::remote(1);
    let other = TestActor::remote(2);
    ensure_eq!(fetch(&actor.get_accumulator())?, 1);
    actor.kill()?;
    expect_err(
        unidist::get_timeout(&actor.get_accumulator(), READ_LIMIT),
        ErrorKind::ActorDead,
    )?;
    let clone = actor.clone();
    expect_err(
        unidist::get_timeout(&clone.task(1), READ_LIMIT),
        ErrorKind::ActorDead,
    )?;
    ensure_eq!(fetch(&other.get_accumulator())?, 2);
    Ok(())
}
