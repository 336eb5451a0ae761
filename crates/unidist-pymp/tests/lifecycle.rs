//! Lifecycle: bounded shutdown with stuck tasks, blocked readers at shutdown, restart cycles.

mod common;

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::fakes::SQUARE;
use common::*;
use unidist_core::actor::ActorState;
use unidist_core::registry::{ActorClassEntry, ActorMethodEntry, MethodKind};
use unidist_core::value::output;
use unidist_core::{runtime, ErrorKind, ObjectRef, Outputs, Payload, RemoteFunction, Result};
use unidist_pymp::PoolOptions;

const LIMIT: Duration = Duration::from_secs(60);

static RELEASE_STUCK: AtomicBool = AtomicBool::new(false);

/// Spins until the test lets it go (at most 20 s), standing in for a task that never returns.
fn stuck_body(_: Vec<Payload>) -> Result<Outputs> {
    let end = Instant::now() + Duration::from_secs(20);
    while !RELEASE_STUCK.load(Ordering::SeqCst) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(vec![output(1i64)])
}
static STUCK: RemoteFunction = RemoteFunction {
    name: "tests::stuck",
    num_returns: 1,
    invoke: stuck_body,
};

struct Acc(i64);
fn acc_new(args: Vec<Payload>) -> Result<ActorState> {
    Ok(Box::new(Acc(args[0].take::<i64>()?)))
}
fn acc_add(state: &mut dyn Any, args: Vec<Payload>) -> Result<Outputs> {
    let a = state.downcast_mut::<Acc>().expect("an accumulator");
    a.0 += args[0].take::<i64>()?;
    Ok(vec![output(a.0)])
}
static ACC: ActorClassEntry = ActorClassEntry {
    name: "tests::Acc",
    construct: acc_new,
};
static ACC_ADD: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Acc::add",
    class: "tests::Acc",
    num_returns: 1,
    kind: MethodKind::Mut(acc_add),
};

#[test]
fn shutdown_with_a_stuck_task_returns_in_bounded_time() {
    RELEASE_STUCK.store(false, Ordering::SeqCst);
    let rt = runtime_with(PoolOptions::new(1).shutdown_grace(Duration::from_millis(300)));
    let stuck: ObjectRef<i64> = remote(&STUCK, vec![]);
    // Queued behind the stuck task on the only pool thread: it settles with ShutDown.
    let queued: ObjectRef<i64> = remote(&SQUARE, vec![val(3i64)]);
    std::thread::sleep(Duration::from_millis(50));
    let b = backend();
    let reader = {
        let stuck = stuck.clone();
        std::thread::spawn(move || get(&stuck).map_err(|e| e.kind()))
    };
    let t0 = Instant::now();
    drop(rt); // shuts down
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    // A reader blocked on the stuck task is woken.
    let r = bounded(LIMIT, "blocked reader", move || reader.join().unwrap());
    assert!(
        matches!(r, Err(ErrorKind::ShutDown) | Err(ErrorKind::StaleRef)),
        "{r:?}"
    );
    // Calls on the shut-down backend fail.
    assert_eq!(
        b.put(std::sync::Arc::new(1u8)).unwrap_err().kind(),
        ErrorKind::ShutDown
    );
    let id = queued.id().unwrap();
    assert_eq!(b.get(&[id], None).unwrap_err().kind(), ErrorKind::ShutDown);
    RELEASE_STUCK.store(true, Ordering::SeqCst);
}

#[test]
fn init_shutdown_cycles() {
    let _turn = turn();
    for i in 0..20i64 {
        start_backend(PoolOptions::new(2));
        let refs: Vec<ObjectRef<i64>> = (0..50i64).map(|x| remote(&SQUARE, vec![val(x)])).collect();
        assert_eq!(get_all(&refs).unwrap()[7], 49);
        let a = create(&ACC, vec![val(i)]);
        assert_eq!(
            get(&call::<i64>(&a, &ACC_ADD, vec![val(1i64)])).unwrap(),
            i + 1
        );
        // Refs kept across a shutdown become stale, never a hang.
        stop_backend();
        assert!(runtime::current().is_none());
        let e = get(&refs[0]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::StaleRef, "{e}");
    }
    // Pool and actor threads of the finished runtimes end.
    assert!(
        eventually(Duration::from_secs(20), || threads_named("unidist-pymp-")
            == 0
            && threads_named("actix-rt") == 0),
        "threads left: {} pool, {} actor",
        threads_named("unidist-pymp-"),
        threads_named("actix-rt")
    );
}

#[test]
fn shutdown_from_inside_a_task_does_not_wait_for_itself() {
    let _rt = runtime_with(PoolOptions::new(1).shutdown_grace(Duration::from_secs(30)));
    fn shutdown_body(_: Vec<Payload>) -> Result<Outputs> {
        let t0 = Instant::now();
        runtime::current().expect("running").shutdown()?;
        Ok(vec![output(t0.elapsed().as_millis() as u64)])
    }
    static SHUTDOWN: RemoteFunction = RemoteFunction {
        name: "tests::shutdown",
        num_returns: 1,
        invoke: shutdown_body,
    };
    let r: ObjectRef<u64> = remote(&SHUTDOWN, vec![]);
    // The task's own result is discarded by the shutdown it ran; the reader just must not hang.
    let got = bounded(LIMIT, "shutdown inside a task", move || get(&r));
    if let Ok(ms) = got {
        assert!(ms < 5_000, "shutdown waited {ms} ms for its own task");
    }
}

fn acc_shutdown(_: &mut dyn Any, _: Vec<Payload>) -> Result<Outputs> {
    let t0 = Instant::now();
    runtime::current().expect("running").shutdown()?;
    Ok(vec![output(t0.elapsed().as_millis() as i64)])
}
static ACC_SHUTDOWN: ActorMethodEntry = ActorMethodEntry {
    name: "tests::Acc::shutdown",
    class: "tests::Acc",
    num_returns: 1,
    kind: MethodKind::Mut(acc_shutdown),
};

#[test]
fn shutdown_from_inside_an_actor_does_not_wait_for_itself() {
    let _rt = runtime_with(PoolOptions::new(1).shutdown_grace(Duration::from_secs(30)));
    let a = create(&ACC, vec![val(0i64)]);
    let r: ObjectRef<i64> = call(&a, &ACC_SHUTDOWN, vec![]);
    let t0 = Instant::now();
    // The result is discarded by the shutdown the method ran; the reader just must not hang.
    let got = bounded(LIMIT, "shutdown inside an actor", move || get(&r));
    if let Ok(ms) = got {
        assert!(ms < 5_000, "shutdown waited {ms} ms for its own actor");
    }
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
}
