//! Tasks on the pool: nesting, dependencies, failures, refcounts, `wait` and timeouts.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::fakes::{drops, Tracked, SPLIT, SQUARE};
use common::*;
use unidist_core::value::output;
use unidist_core::{ErrorKind, ObjectRef, Outputs, Payload, RemoteFunction, Result, TaskFailure};

const LIMIT: Duration = Duration::from_secs(60);

// ---- functions -----------------------------------------------------------------------------

fn fib_body(args: Vec<Payload>) -> Result<Outputs> {
    let n = args[0].take::<u64>()?;
    if n < 2 {
        return Ok(vec![output(n)]);
    }
    let a: ObjectRef<u64> = remote(&FIB, vec![val(n - 1)]);
    let b: ObjectRef<u64> = remote(&FIB, vec![val(n - 2)]);
    Ok(vec![output(get(&a)? + get(&b)?)])
}
static FIB: RemoteFunction = RemoteFunction {
    name: "tests::fib",
    num_returns: 1,
    invoke: fib_body,
};

fn boom_body(_: Vec<Payload>) -> Result<Outputs> {
    panic!("boom on purpose")
}
static BOOM: RemoteFunction = RemoteFunction {
    name: "tests::boom",
    num_returns: 1,
    invoke: boom_body,
};

static COUNTED_RUNS: AtomicUsize = AtomicUsize::new(0);
fn counted_body(args: Vec<Payload>) -> Result<Outputs> {
    COUNTED_RUNS.fetch_add(1, Ordering::SeqCst);
    let x = args[0].take::<i64>()?;
    Ok(vec![output(x)])
}
static COUNTED: RemoteFunction = RemoteFunction {
    name: "tests::counted",
    num_returns: 1,
    invoke: counted_body,
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

fn address_body(args: Vec<Payload>) -> Result<Outputs> {
    let v = unidist_core::Payload::borrow::<Vec<u8>>(&args[0])?;
    Ok(vec![output(v.as_ptr() as usize)])
}
static ADDRESS: RemoteFunction = RemoteFunction {
    name: "tests::address",
    num_returns: 1,
    invoke: address_body,
};

/// The [`Tracked`] tags of the values `refcount_frees_objects` puts and makes.
const PUT_TAG: usize = 1;
const INNER_TAG: usize = 2;
const MADE_TAG: usize = 3;

fn make_tracked_body(args: Vec<Payload>) -> Result<Outputs> {
    let ms = args[0].take::<u64>()?;
    std::thread::sleep(Duration::from_millis(ms));
    Ok(vec![output(Tracked(MADE_TAG))])
}
static MAKE_TRACKED: RemoteFunction = RemoteFunction {
    name: "tests::make_tracked",
    num_returns: 1,
    invoke: make_tracked_body,
};

/// Waits inside a task for nested tasks.
fn waiter_body(args: Vec<Payload>) -> Result<Outputs> {
    let n = args[0].take::<i64>()?;
    let refs: Vec<ObjectRef<i64>> = (0..n).map(|i| remote(&SQUARE, vec![val(i)])).collect();
    let flags = wait(&refs, refs.len(), None)?;
    assert!(flags.iter().all(|f| *f));
    Ok(vec![output(get_all(&refs)?.iter().sum::<i64>())])
}
static WAITER: RemoteFunction = RemoteFunction {
    name: "tests::waiter",
    num_returns: 1,
    invoke: waiter_body,
};

// ---- tests ---------------------------------------------------------------------------------

fn fib_on(threads: usize) {
    let _rt = runtime(threads);
    let v = bounded(LIMIT, "nested fib", || {
        get(&remote::<u64>(&FIB, vec![val(15u64)]))
    });
    assert_eq!(v.unwrap(), 610);
}

#[test]
fn nested_fib_one_thread() {
    fib_on(1);
}

#[test]
fn nested_fib_two_threads() {
    fib_on(2);
}

#[test]
fn nested_wait_inside_task_one_thread() {
    let _rt = runtime(1);
    let v = bounded(LIMIT, "wait inside a task", || {
        get(&remote::<i64>(&WAITER, vec![val(20i64)]))
    });
    assert_eq!(v.unwrap(), (0..20).map(|i| i * i).sum::<i64>());
}

#[test]
fn chained_values_and_delayed_refs() {
    let _rt = runtime(2);
    let r = put(6i64);
    let squares: Vec<ObjectRef<i64>> = (0..4).map(|_| remote(&SQUARE, vec![by_ref(&r)])).collect();
    assert_eq!(get_all(&squares).unwrap(), vec![36; 4]);
    // An argument that is not ready at submission.
    let slow: ObjectRef<i64> = remote(&SLEEPY, vec![val(100u64)]);
    let sq: ObjectRef<i64> = remote(&SQUARE, vec![by_ref(&slow)]);
    assert_eq!(
        bounded(LIMIT, "delayed ref", move || get(&sq)).unwrap(),
        10_000
    );
}

#[test]
fn multiple_returns() {
    let _rt = runtime(2);
    let refs = submit_n(&SPLIT, vec![val(7i64)]).unwrap();
    assert_eq!(refs.len(), 2);
    let a = ObjectRef::<i64>::from_any(refs[0].clone());
    let b = ObjectRef::<i64>::from_any(refs[1].clone());
    assert_eq!((get(&a).unwrap(), get(&b).unwrap()), (3, 1));
}

#[test]
fn panic_is_an_error_and_dependents_do_not_run() {
    let _rt = runtime(2);
    let failed: ObjectRef<i64> = remote(&BOOM, vec![]);
    let before = COUNTED_RUNS.load(Ordering::SeqCst);
    let dependent: ObjectRef<i64> = remote(&COUNTED, vec![by_ref(&failed)]);
    let second: ObjectRef<i64> = remote(&COUNTED, vec![by_ref(&dependent)]);
    let err = get(&failed).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TaskFailed);
    let te = err.task_error().unwrap();
    assert_eq!(te.failure, TaskFailure::Panicked);
    assert!(te.message.contains("boom on purpose"), "{err}");
    // Every read gives the error again.
    assert_eq!(get(&failed).unwrap_err().kind(), ErrorKind::TaskFailed);
    for r in [&dependent, &second] {
        let e = get(r).unwrap_err();
        assert_eq!(
            e.task_error().map(|t| t.failure),
            Some(TaskFailure::ArgumentFailed),
            "{e}"
        );
        assert!(e.to_string().contains("tests::counted"), "{e}");
    }
    assert_eq!(
        COUNTED_RUNS.load(Ordering::SeqCst),
        before,
        "a dependent of a failed task ran"
    );
    // The pool survives.
    assert_eq!(get(&remote::<i64>(&SQUARE, vec![val(3i64)])).unwrap(), 9);
}

#[test]
fn ref_params_borrow_in_place() {
    let _rt = runtime(1);
    let data = vec![7u8; 1 << 20];
    let ptr = data.as_ptr() as usize;
    let r = put(data);
    let seen: ObjectRef<usize> = remote(&ADDRESS, vec![by_ref(&r)]);
    assert_eq!(get(&seen).unwrap(), ptr, "the task saw a copy");
}

#[test]
fn refcount_frees_objects() {
    let _rt = runtime(2);
    // A put value is freed with its last ref.
    let before = drops(PUT_TAG);
    let r = put(Tracked(PUT_TAG));
    let r2 = r.clone();
    drop(r);
    assert_eq!(drops(PUT_TAG), before);
    drop(r2);
    assert_eq!(drops(PUT_TAG), before + 1);

    // A result whose refs died while its task ran is discarded when the task finishes.
    let before = drops(MADE_TAG);
    let pending: ObjectRef<Tracked> = remote(&MAKE_TRACKED, vec![val(50u64)]);
    drop(pending);
    assert!(
        eventually(Duration::from_secs(10), || drops(MADE_TAG) > before),
        "the discarded result was never dropped"
    );

    // A stored value holding refs releases them when it is freed (re-entrant release).
    let inner = put(Tracked(INNER_TAG));
    let inner_id = inner.id().unwrap();
    let outer = put(vec![inner]);
    let before = drops(INNER_TAG);
    drop(outer);
    assert_eq!(drops(INNER_TAG), before + 1);
    let e = backend().get(&[inner_id], None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StaleRef);
}

#[test]
fn wait_and_timeouts() {
    let _rt = runtime(2);
    let fast: ObjectRef<i64> = remote(&SQUARE, vec![val(5i64)]);
    let slow: ObjectRef<i64> = remote(&SLEEPY, vec![val(400u64)]);
    let refs = vec![fast.clone(), slow.clone()];
    let flags = wait(&refs, 1, None).unwrap();
    assert_eq!(flags, vec![true, false]);
    let t0 = Instant::now();
    let flags = wait(&refs, 2, Some(Duration::from_millis(50))).unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(350),
        "wait_timeout overslept"
    );
    assert_eq!(flags, vec![true, false]);
    let e = get_timeout(&slow, Duration::from_millis(10)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    let flags = bounded(LIMIT, "wait for all", move || wait(&refs, 2, None)).unwrap();
    assert_eq!(flags, vec![true, true]);
    // A failed ref counts as ready.
    let failed: ObjectRef<i64> = remote(&BOOM, vec![]);
    let flags = wait(&[failed], 1, Some(Duration::from_secs(10))).unwrap();
    assert_eq!(flags, vec![true]);
    // num_returns = 0 only samples.
    let slow2: ObjectRef<i64> = remote(&SLEEPY, vec![val(200u64)]);
    assert_eq!(wait(&[slow2], 0, None).unwrap(), vec![false]);
}

#[test]
fn failed_and_stale_refs_fail_the_task() {
    let _rt = runtime(1);
    let bad = ObjectRef::<i64>::failed(unidist_core::Error::ShutDown);
    let r: ObjectRef<i64> = remote(&SQUARE, vec![by_ref(&bad)]);
    let e = get(&r).unwrap_err();
    assert_eq!(
        e.task_error().map(|t| t.failure),
        Some(TaskFailure::ArgumentFailed),
        "{e}"
    );
}

#[test]
fn many_tasks_throughput_smoke() {
    let _rt = runtime(2);
    let refs: Vec<ObjectRef<i64>> = (0..20_000)
        .map(|i| remote(&SQUARE, vec![val(i as i64)]))
        .collect();
    let v = bounded(LIMIT, "20k tasks", move || get_all(&refs)).unwrap();
    assert_eq!(v[141], 141 * 141);
}
