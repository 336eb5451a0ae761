//! Objects and tasks: put, get, wait, chaining, failures, dependents, freeing and nesting.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use unidist_core::value::output;
use unidist_core::{
    AnyRef, Arg, ErrorKind, ObjectId, ObjectRef, Outputs, Payload, RemoteFunction, Result,
    TaskFailure,
};
use unidist_testkit::fakes::{drops, Tracked, DIVIDE, SPLIT, SQUARE};
use unidist_testkit::{by_ref, get, get_all, put, remote, submit_n, val};

use super::{store_len, with_backend};

static COUNTED_RUNS: AtomicUsize = AtomicUsize::new(0);
fn counted(args: Vec<Payload>) -> Result<Outputs> {
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
fn nested(args: Vec<Payload>) -> Result<Outputs> {
    let x = args[0].take::<i64>()?;
    let inner: ObjectRef<i64> = remote(&SQUARE, vec![val(x)]);
    let kept = put(10i64);
    Ok(vec![output(get(&inner)? + get(&kept)?)])
}
static NESTED: RemoteFunction = RemoteFunction {
    name: "tests::nested",
    num_returns: 1,
    invoke: nested,
};

static SILENT_RUNS: AtomicUsize = AtomicUsize::new(0);
fn silent_failure(_: Vec<Payload>) -> Result<Outputs> {
    SILENT_RUNS.fetch_add(1, Ordering::SeqCst);
    panic!("nobody will read this");
}
static SILENT_FAILURE: RemoteFunction = RemoteFunction {
    name: "tests::silent_failure",
    num_returns: 0,
    invoke: silent_failure,
};

fn identity_ref(args: Vec<Payload>) -> Result<Outputs> {
    Ok(vec![output(args[0].take::<AnyRef>()?)])
}
static IDENTITY_REF: RemoteFunction = RemoteFunction {
    name: "tests::identity_ref",
    num_returns: 1,
    invoke: identity_ref,
};

#[test]
fn put_get_and_wait() {
    with_backend(|b| {
        let a = put(5i64);
        let s = put("text".to_string());
        assert_eq!(get(&a).unwrap(), 5);
        assert_eq!(get(&s).unwrap(), "text");
        let ids = [a.id().unwrap(), a.id().unwrap()];
        assert_eq!(b.get(&ids, Some(Duration::ZERO)).unwrap().len(), 2);
        assert_eq!(b.wait(&ids, 1, Some(Duration::ZERO)).unwrap(), [true, true]);
        let as_text = ObjectRef::<String>::from_any(a.as_any().clone());
        assert_eq!(get(&as_text).unwrap_err().kind(), ErrorKind::TypeMismatch);
        assert_eq!(b.num_cpus(), 1);
        let resources = b.cluster_resources().unwrap();
        assert_eq!(resources[&b.get_ip()]["CPU"], 1.0);
        assert_eq!(resources.len(), 1);
    });
}

#[test]
fn tasks_chain_through_refs() {
    with_backend(|_| {
        let six = put(6i64);
        let squares: Vec<ObjectRef<i64>> = (0..4)
            .map(|_| remote(&SQUARE, vec![by_ref(&six)]))
            .collect();
        for r in &squares {
            assert_eq!(get(r).unwrap(), 36);
        }
        let twice: ObjectRef<i64> = remote(&SQUARE, vec![by_ref(&squares[0])]);
        assert_eq!(get(&twice).unwrap(), 1296);
        let parts: Vec<ObjectRef<i64>> = submit_n(&SPLIT, vec![val(7i64)])
            .unwrap()
            .into_iter()
            .map(ObjectRef::from_any)
            .collect();
        assert_eq!(get_all(&parts).unwrap(), [3, 1]);
    });
}

#[test]
fn failed_task_gives_its_error_on_every_get() {
    with_backend(|b| {
        let r: ObjectRef<i64> = remote(&DIVIDE, vec![val(1i64)]);
        for _ in 0..2 {
            let e = get(&r).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TaskFailed);
            let t = e.task_error().unwrap();
            assert_eq!(t.failure, TaskFailure::Panicked);
            assert_eq!(t.function, DIVIDE.name);
            assert!(t.message.contains("divide by zero"), "{t}");
        }
        let ok = put(1i64);
        let id = r.id().unwrap();
        let e = b.get(&[ok.id().unwrap(), id], None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TaskFailed);
        // A failed object is ready.
        assert_eq!(b.wait(&[id], 1, None).unwrap(), [true]);
    });
}

#[test]
fn dependents_of_a_failed_task_fail_without_running() {
    with_backend(|_| {
        let failed: ObjectRef<i64> = remote(&DIVIDE, vec![val(1i64)]);
        let before = COUNTED_RUNS.load(Ordering::SeqCst);
        let dependent: ObjectRef<i64> = remote(&COUNTED, vec![by_ref(&failed)]);
        let next: ObjectRef<i64> = remote(&COUNTED, vec![by_ref(&dependent)]);
        assert_eq!(
            COUNTED_RUNS.load(Ordering::SeqCst),
            before,
            "a dependent ran"
        );
        for r in [&dependent, &next] {
            let e = get(r).unwrap_err();
            let t = e.task_error().unwrap();
            assert_eq!(t.failure, TaskFailure::ArgumentFailed);
            assert_eq!(t.function, "tests::counted");
            assert!(t.message.contains("argument 0"), "{t}");
        }
        assert!(get(&next).unwrap_err().to_string().contains(DIVIDE.name));
        // An unrelated task still runs.
        let unrelated: ObjectRef<i64> = remote(&COUNTED, vec![val(1i64)]);
        assert_eq!(get(&unrelated).unwrap(), 2);
        assert_eq!(COUNTED_RUNS.load(Ordering::SeqCst), before + 1);
    });
}

#[test]
fn dropping_the_last_ref_frees_the_object() {
    with_backend(|b| {
        let r = put(Tracked(0));
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
    with_backend(|_| {
        let inner = put(Tracked(1));
        let outer = put(inner.into_any());
        let outer_copy: ObjectRef<AnyRef> = remote(&IDENTITY_REF, vec![by_ref(&outer)]);
        drop(outer);
        assert_eq!(drops(1), 0);
        drop(outer_copy);
        assert_eq!(drops(1), 1);
    });
}

#[test]
fn shutdown_frees_every_object() {
    with_backend(|b| {
        let r = put(Tracked(2));
        let _keep = put(put(Tracked(2)));
        b.shutdown().unwrap();
        assert_eq!(drops(2), 2);
        drop(r);
    });
}

#[test]
fn tasks_submit_tasks() {
    with_backend(|_| {
        let r: ObjectRef<i64> = remote(&NESTED, vec![val(5i64)]);
        assert_eq!(get(&r).unwrap(), 35);
        // The objects the task made were freed with their refs; only `r` is left.
        assert_eq!(store_len(), 1, "objects of the inner calls leaked");
    });
}

#[test]
fn a_task_without_returns_runs_and_its_failure_is_logged() {
    with_backend(|_| {
        let before = SILENT_RUNS.load(Ordering::SeqCst);
        let refs = submit_n(&SILENT_FAILURE, vec![]).unwrap();
        assert!(refs.is_empty());
        assert_eq!(SILENT_RUNS.load(Ordering::SeqCst), before + 1);
    });
}

#[test]
fn an_id_this_store_does_not_hold_fails_the_call() {
    // Refs of another runtime never get here through the facade, which turns them into failed
    // refs; an id this store does not hold still fails the call instead of running it.
    with_backend(|_| {
        let other = crate::start().unwrap();
        let foreign = AnyRef::live(other.put(Arc::new(3i64)).unwrap(), &other);
        let r: ObjectRef<i64> = remote(&SQUARE, vec![Arg::Ref(foreign.clone())]);
        let e = get(&r).unwrap_err();
        assert_eq!(e.task_error().unwrap().failure, TaskFailure::ArgumentFailed);
        assert!(
            e.to_string().contains(&foreign.id().unwrap().to_string()),
            "{e}"
        );
        other.shutdown().unwrap();
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
