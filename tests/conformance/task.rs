//! Remote functions: upstream's `test_task.py` scenarios and the "Remote functions" rows of the
//! API (returns, argument forms, options, local calls, nested calls, failures).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use unidist::{ActorHandle, ErrorKind, ObjectRef};

use crate::fixtures::{
    add, checked_ratio, count_then_echo, return_none, slow, square, with_square, Counter, SLOW_MS,
};
use crate::harness::{
    capabilities, cases, ensure, ensure_eq, ensure_mentions, eventually, expect_err, fetch, Case,
    Outcome, READ_LIMIT,
};

pub(crate) fn cases() -> Vec<Case> {
    cases!("task":
        remote_get,
        chaining_value,
        num_returns_decorator,
        options_num_cpus,
        options_invalid_num_cpus,
        put_op,
        delayed_object_ref,
        num_returns_zero,
        exception,
        return_none_value,
        internal_remote,
        serialize_dict_keys,
        serialize_dict_with_tuple_key,
        data_immutability,
        argument_forms,
        by_value_arguments_move,
        large_arguments_in_flight,
        local_call,
        nested_calls,
        nested_fib,
        deep_nested_chain,
        helpers_of_a_task_run_elsewhere,
        dependents_fail_without_running,
        refs_inside_values,
        many_tasks,
    )
}

/// Upstream `test_remote_get`.
fn remote_get() -> Outcome {
    ensure_eq!(unidist::get(&square::remote(5))?, 25);
    Ok(())
}

/// Upstream `test_chaining_value`: one put feeding four tasks.
fn chaining_value() -> Outcome {
    let r = unidist::put(6i64);
    let refs: Vec<ObjectRef<i64>> = (0..4).map(|_| square::remote(&r)).collect();
    ensure_eq!(unidist::get_all(&refs)?, vec![36; 4]);
    Ok(())
}

/// Upstream `test_num_returns_decorator_options`.
fn num_returns_decorator() -> Outcome {
    let (a, b): (ObjectRef<i64>, ObjectRef<i64>) = with_square::remote(5);
    ensure_eq!(fetch(&a)?, 5);
    ensure_eq!(fetch(&b)?, 25);
    Ok(())
}

/// Upstream `test_num_returns_options` sets `num_returns` per call; here it is part of the
/// declaration, and `options()` carries the per-call option that exists, `num_cpus`, for one
/// and for several returns.
fn options_num_cpus() -> Outcome {
    ensure_eq!(fetch(&square::options().num_cpus(1).remote(4))?, 16);
    let (a, b) = with_square::options().num_cpus(1).remote(5);
    ensure_eq!((fetch(&a)?, fetch(&b)?), (5, 25));
    let all = u32::try_from(unidist::num_cpus()).unwrap_or(u32::MAX);
    ensure_eq!(fetch(&square::options().num_cpus(all).remote(3))?, 9);
    Ok(())
}

/// `num_cpus` of 0 or above the cluster's CPUs gives refs holding `InvalidArgument`.
fn options_invalid_num_cpus() -> Outcome {
    let zero = square::options().num_cpus(0).remote(2);
    let e = expect_err(unidist::get(&zero), ErrorKind::InvalidArgument)?;
    ensure_mentions(&e.to_string(), &["num_cpus"])?;
    let too_many = u32::try_from(unidist::num_cpus() + 1).unwrap_or(u32::MAX);
    let r = square::options().num_cpus(too_many).remote(2);
    let e = expect_err(unidist::get(&r), ErrorKind::InvalidArgument)?;
    ensure_mentions(&e.to_string(), &["num_cpus", &too_many.to_string()])?;
    let (a, b) = with_square::options().num_cpus(0).remote(2);
    expect_err(unidist::get(&a), ErrorKind::InvalidArgument)?;
    expect_err(unidist::get(&b), ErrorKind::InvalidArgument)?;
    // Nothing else is affected.
    ensure_eq!(fetch(&square::remote(2))?, 4);
    Ok(())
}

/// An operation as data: closures cannot be serialized in Rust, so upstream's
/// `test_put_lambda` puts a value that says what to compute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Op {
    Square,
    AddConst(i64),
    Then(Box<Op>, Box<Op>),
}

impl Op {
    fn apply(&self, x: i64) -> i64 {
        match self {
            Op::Square => x * x,
            Op::AddConst(c) => x + c,
            Op::Then(first, second) => second.apply(first.apply(x)),
        }
    }
}

#[unidist::remote]
fn apply_op(op: Op, x: i64) -> i64 {
    op.apply(x)
}

/// Upstream `test_put_lambda`.
fn put_op() -> Outcome {
    let r = unidist::put(Op::Square);
    ensure_eq!(fetch(&apply_op::remote(&r, 3))?, 9);
    let composed = unidist::put(Op::Then(Box::new(Op::AddConst(1)), Box::new(Op::Square)));
    ensure_eq!(fetch(&apply_op::remote(composed, 3))?, 16);
    Ok(())
}

/// Upstream `test_delayed_object_ref`: an argument that is not ready at submission.
fn delayed_object_ref() -> Outcome {
    let pending = slow::remote(SLOW_MS, 7);
    ensure_eq!(fetch(&square::remote(pending))?, 49);
    Ok(())
}

#[unidist::remote(num_returns = 0)]
fn add_to_counter(counter: ActorHandle<Counter>, x: i64) {
    unidist::get(&counter.add(x)).expect("a counter call from a task failed");
}

/// Upstream `test_num_returns_zero`: the call gives `()`, and it runs.
fn num_returns_zero() -> Outcome {
    let counter = Counter::remote(0);
    let () = add_to_counter::remote(counter.clone(), 2);
    let () = add_to_counter::remote(counter.clone(), unidist::put(3i64));
    // No ref says when the calls ran, so poll their effect, bounded.
    eventually(READ_LIMIT, || Ok(fetch(&counter.get())? == 5))
}

/// Upstream `test_exception`: a panic is an error naming the function and the message, on
/// every read, and nothing else is affected.
fn exception() -> Outcome {
    let r = checked_ratio::remote(7, 0);
    for _ in 0..2 {
        let e = expect_err(unidist::get(&r), ErrorKind::TaskFailed)?;
        ensure_mentions(&e.to_string(), &["checked_ratio", "ratio of 7 to zero"])?;
    }
    let e = expect_err(
        unidist::get_all(&[square::remote(1), r.clone()]),
        ErrorKind::TaskFailed,
    )?;
    ensure_mentions(&e.to_string(), &["ratio of 7 to zero"])?;
    ensure_eq!(fetch(&checked_ratio::remote(8, 2))?, 4);
    Ok(())
}

#[unidist::remote]
fn unit_task(x: i64) {
    assert!(x >= 0, "negative input {x}");
}

/// Upstream `test_return_none`, with `Option` and with a function that returns `()`.
fn return_none_value() -> Outcome {
    ensure_eq!(fetch(&return_none::remote())?, None);
    let unit: ObjectRef<()> = unit_task::remote(1);
    fetch(&unit)?;
    Ok(())
}

#[unidist::remote]
fn square_plus_ten(x: i64) -> i64 {
    unidist::get(&square::remote(x)).expect("a nested get failed") + 10
}

/// Upstream `test_internal_remote`: a task calling a task.
fn internal_remote() -> Outcome {
    ensure_eq!(fetch(&square_plus_ten::remote(5))?, 35);
    Ok(())
}

#[unidist::remote]
fn echo_keys(keys: BTreeSet<String>) -> BTreeSet<String> {
    keys
}

/// Upstream `test_serialize_dict_keys`: a dictionary's keys through a task.
fn serialize_dict_keys() -> Outcome {
    let dict: BTreeMap<String, i64> = (1..=5).map(|i| (i.to_string(), i)).collect();
    let keys: BTreeSet<String> = dict.keys().cloned().collect();
    ensure_eq!(fetch(&echo_keys::remote(keys.clone()))?, keys);
    Ok(())
}

type TupleKey = (String, String, String, String);

/// A value of upstream's heterogeneous dictionary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Entry {
    List(Vec<i64>),
    Map(HashMap<TupleKey, String>),
}

#[unidist::remote]
fn echo_dict(d: BTreeMap<String, Entry>) -> BTreeMap<String, Entry> {
    d
}

#[unidist::remote]
fn lookup(d: HashMap<(i64, i64), String>, key: (i64, i64)) -> Option<String> {
    d.get(&key).cloned()
}

/// Upstream `test_serialize_dict_with_tuple_key`.
fn serialize_dict_with_tuple_key() -> Outcome {
    let key = ("a", "b", "c", "d");
    let key: TupleKey = (key.0.into(), key.1.into(), key.2.into(), key.3.into());
    let dict: BTreeMap<String, Entry> = [
        ("a".to_string(), Entry::List(vec![0, 1, 2, 3])),
        (
            "b".to_string(),
            Entry::Map([(key, "value".to_string())].into_iter().collect()),
        ),
    ]
    .into_iter()
    .collect();
    ensure_eq!(fetch(&echo_dict::remote(dict.clone()))?, dict);
    let by_pair: HashMap<(i64, i64), String> =
        (0..10).map(|i| ((i, -i), format!("v{i}"))).collect();
    let stored = unidist::put(by_pair);
    ensure_eq!(
        fetch(&lookup::remote(&stored, (4, -4)))?,
        Some("v4".to_string())
    );
    ensure_eq!(fetch(&lookup::remote(&stored, (4, 4)))?, None);
    Ok(())
}

/// Upstream `test_data_immutability` (an expected failure of upstream's pyseq): `put` stores a
/// snapshot, and a value read back is a copy.
fn data_immutability() -> Outcome {
    let mut data = vec![1i64, 2, 3];
    let r = unidist::put(data.clone());
    data[0] = 111;
    ensure_eq!(unidist::get(&r)?, vec![1, 2, 3]);
    let mut copy = unidist::get(&r)?;
    copy[1] = 222;
    ensure_eq!(unidist::get(&r)?, vec![1, 2, 3]);
    ensure_eq!((data, copy), (vec![111, 2, 3], vec![1, 222, 3]));
    Ok(())
}

/// Each parameter accepts a value, an `ObjectRef` and a `&ObjectRef`, mixed freely.
fn argument_forms() -> Outcome {
    let r = unidist::put(3i64);
    ensure_eq!(fetch(&square::remote(3))?, 9);
    ensure_eq!(fetch(&square::remote(&r))?, 9);
    ensure_eq!(fetch(&square::remote(r.clone()))?, 9);
    ensure_eq!(fetch(&add::remote(&r, 4))?, 7);
    ensure_eq!(fetch(&add::remote(5, square::remote(&r)))?, 14);
    ensure_eq!(fetch(&add::remote(r.clone(), &r))?, 6);
    // The ref is still usable after being passed both ways.
    ensure_eq!(fetch(&r)?, 3);
    Ok(())
}

/// Where the data of the `Vec` it received by value is, in the process that ran it.
#[unidist::remote]
fn owned_data_address(v: Vec<u8>) -> usize {
    v.as_ptr() as usize
}

/// Where the data of the bytes it borrowed is, in the process that ran it.
#[unidist::remote]
fn borrowed_data_address(v: &[u8]) -> usize {
    v.as_ptr() as usize
}

/// A value passed directly to a by-value parameter is moved into the body, not copied: where
/// the task runs in the caller's process, the body gets the very allocation the caller passed.
/// An object made by `put` is shared, so a by-value parameter gets a copy of it and later
/// readers still see it whole, while a `&T` parameter borrows it in place. Across processes
/// addresses mean nothing; there the same calls only have to succeed.
fn by_value_arguments_move() -> Outcome {
    let in_process = !capabilities()?.separate_processes;
    let v = vec![7u8; 1 << 20];
    let passed = v.as_ptr() as usize;
    let seen = fetch(&owned_data_address::remote(v))?;
    if in_process {
        ensure!(
            seen == passed,
            "the by-value argument was copied: the body saw its data at {seen:#x}, the caller \
             passed it at {passed:#x}"
        );
    }

    let v = vec![9u8; 1 << 20];
    let put_at = v.as_ptr() as usize;
    let stored = unidist::put(v);
    let borrowed = fetch(&borrowed_data_address::remote(&stored))?;
    let owned = fetch(&owned_data_address::remote(&stored))?;
    if in_process {
        ensure!(
            borrowed == put_at,
            "a `&[u8]` parameter did not borrow the stored object in place"
        );
        ensure!(
            owned != put_at,
            "a by-value parameter took the stored object instead of a copy of it"
        );
    }
    ensure!(
        fetch(&stored)? == vec![9u8; 1 << 20],
        "the stored object changed after tasks read it"
    );
    Ok(())
}

/// The sum of the bytes and how many there are.
#[unidist::remote]
fn byte_sum(v: Vec<u8>) -> (u64, usize) {
    (v.iter().map(|b| u64::from(*b)).sum(), v.len())
}

/// Many large values passed directly, all submitted before any result is read: each call gets
/// its own bytes whole (on MPI they travel through the shared object store, more of them in
/// flight than it keeps segments for).
fn large_arguments_in_flight() -> Outcome {
    const CALLS: u64 = 12;
    const LEN: usize = 300_000;
    let refs: Vec<_> = (0..CALLS)
        .map(|i| byte_sum::remote(vec![(i % 251) as u8; LEN]))
        .collect();
    let got = unidist::get_all(&refs)?;
    let want: Vec<(u64, usize)> = (0..CALLS).map(|i| ((i % 251) * LEN as u64, LEN)).collect();
    ensure_eq!(got, want);
    Ok(())
}

/// A remote function stays an ordinary function.
fn local_call() -> Outcome {
    ensure_eq!(square(3), 9);
    ensure_eq!(with_square(4), (4, 16));
    ensure_eq!(checked_ratio(9, 3), 3);
    ensure_eq!(Op::Square.apply(5), 25);
    Ok(())
}

#[unidist::remote]
fn nested_everything(x: i64) -> (i64, i64, i64, usize) {
    let stored = unidist::put(x);
    let squared = unidist::get(&square::remote(&stored)).expect("a nested remote call failed");
    let counter = Counter::remote(x);
    let counted = unidist::get(&counter.add(1)).expect("an actor created in a task failed");
    let (a, b) = with_square::remote(&stored);
    let pair = unidist::get(&a).expect("a nested two-return call failed")
        + unidist::get(&b).expect("a nested two-return call failed");
    let (ready, _) = unidist::wait(&[square::remote(1)], 1).expect("a nested wait failed");
    (squared, counted, pair, ready.len())
}

/// Inside a task every API call works: `put`, `remote`, `get`, `wait` and actors.
fn nested_calls() -> Outcome {
    ensure_eq!(fetch(&nested_everything::remote(4))?, (16, 5, 20, 1));
    Ok(())
}

#[unidist::remote]
fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let a = fib::remote(n - 1);
    let b = fib::remote(n - 2);
    unidist::get(&a).expect("fib(n - 1) failed") + unidist::get(&b).expect("fib(n - 2) failed")
}

/// Tasks blocking in `get` on other tasks, hundreds deep in total, do not deadlock the pool,
/// however few workers there are.
fn nested_fib() -> Outcome {
    ensure_eq!(fetch(&fib::remote(12))?, 144);
    Ok(())
}

/// A task that waits for its child, which waits for its own child, `depth` levels down.
#[unidist::remote]
fn chain_down(depth: u32) -> u32 {
    if depth == 0 {
        return 0;
    }
    unidist::get(&chain_down::remote(depth - 1)).expect("the next link failed") + 1
}

/// A chain of 10,000 tasks, each blocked in `get` on the next: it finishes, however few
/// workers there are, without deadlocking the pool or overflowing a thread's stack.
fn deep_nested_chain() -> Outcome {
    ensure_eq!(fetch(&chain_down::remote(10_000))?, 10_000);
    Ok(())
}

/// A task that starts two helper threads, each of which submits a task and waits for it,
/// while the task's own thread waits for the helpers (not in `get`, so its worker slot stays
/// taken): the helpers' tasks run on the other slots. A pattern from Ray's tests.
#[unidist::remote]
fn with_helpers(x: i64) -> i64 {
    let helpers: Vec<_> = (0..2)
        .map(|i| {
            std::thread::spawn(move || {
                let r = square::remote(x + i);
                unidist::get(&r).expect("a helper's task failed")
            })
        })
        .collect();
    helpers
        .into_iter()
        .map(|h| h.join().expect("a helper thread panicked"))
        .sum()
}

/// The helpers' tasks of a task that holds its slot are placed on free slots instead of
/// queueing behind it. Needs two slots in all (as on Ray: with one CPU the pattern waits
/// forever there too).
fn helpers_of_a_task_run_elsewhere() -> Outcome {
    let cpus: f64 = unidist::cluster_resources()?
        .values()
        .filter_map(|host| host.get("CPU"))
        .sum();
    if cpus < 2.0 {
        return Ok(());
    }
    // One at a time: two such tasks at once on two slots would both wait, on Ray too.
    for (x, expected) in [(0, 1), (1, 5), (2, 13)] {
        ensure_eq!(fetch(&with_helpers::remote(x))?, expected);
    }
    Ok(())
}

/// A task whose argument failed fails the same way without running; its dependents too.
fn dependents_fail_without_running() -> Outcome {
    let counter = Counter::remote(0);
    let bad = checked_ratio::remote(5, 0);
    let dependent = count_then_echo::remote(counter.clone(), &bad);
    let e = expect_err(
        unidist::get_timeout(&dependent, READ_LIMIT),
        ErrorKind::TaskFailed,
    )?;
    ensure_mentions(&e.to_string(), &["ratio of 5 to zero"])?;
    let second = square::remote(&dependent);
    let e = expect_err(
        unidist::get_timeout(&second, READ_LIMIT),
        ErrorKind::TaskFailed,
    )?;
    ensure_mentions(&e.to_string(), &["ratio of 5 to zero"])?;
    ensure_eq!(fetch(&counter.get())?, 0);
    // Nothing else is affected: the same function with a good argument runs.
    ensure_eq!(fetch(&count_then_echo::remote(counter.clone(), 9))?, 9);
    ensure_eq!(fetch(&counter.get())?, 1);
    Ok(())
}

#[unidist::remote]
fn sum_refs(refs: Vec<ObjectRef<i64>>) -> i64 {
    unidist::get_all(&refs)
        .expect("refs inside a value failed")
        .iter()
        .sum()
}

#[unidist::remote]
fn make_refs(n: i64) -> Vec<ObjectRef<i64>> {
    (0..n).map(square::remote).collect()
}

/// `ObjectRef`s inside values: passed to a task, put, read back, and returned by a task.
fn refs_inside_values() -> Outcome {
    let refs: Vec<ObjectRef<i64>> = (1..=4)
        .map(unidist::put)
        .chain(std::iter::once(square::remote(5)))
        .collect();
    ensure_eq!(fetch(&sum_refs::remote(refs.clone()))?, 35);
    let stored = unidist::put(refs.clone());
    ensure_eq!(fetch(&sum_refs::remote(&stored))?, 35);
    let back: Vec<ObjectRef<i64>> = fetch(&stored)?;
    ensure_eq!(back, refs);
    ensure_eq!(unidist::get_all(&back)?, vec![1, 2, 3, 4, 25]);
    let made = fetch(&make_refs::remote(3))?;
    ensure_eq!(unidist::get_all(&made)?, vec![0, 1, 4]);
    Ok(())
}

/// Many small tasks at once, read back in order.
fn many_tasks() -> Outcome {
    let refs: Vec<ObjectRef<i64>> = (0..300i64).map(square::remote).collect();
    let expected: Vec<i64> = (0..300i64).map(|x| x * x).collect();
    ensure!(
        unidist::get_all(&refs)? == expected,
        "300 squares came back wrong or out of order"
    );
    let slow_refs: Vec<ObjectRef<i64>> = (0..4).map(|i| slow::remote(20, i)).collect();
    ensure_eq!(unidist::get_all(&slow_refs)?, vec![0, 1, 2, 3]);
    Ok(())
}
