//! Values and refs: `put`, `get`, `get_all`, `get_timeout`, snapshots and ref identity.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use unidist::{ErrorKind, ObjectRef};

use crate::fixtures::{failed_ref, slow, square, SLOW_MS};
use crate::harness::{cases, ensure, ensure_eq, expect_err, fetch, Case, Outcome};

pub(crate) fn cases() -> Vec<Case> {
    cases!("object":
        put_get_types,
        get_returns_copy,
        get_all_order,
        get_all_empty,
        get_all_error,
        get_timeout_ready,
        get_timeout_slow_task,
        large_value,
        ref_identity,
        ref_inside_put,
    )
}

/// A user type with nested, optional and float fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    id: u32,
    name: String,
    tags: Vec<String>,
    score: Option<f64>,
}

/// `put` then `get` gives the value back, for several kinds of type.
fn put_get_types() -> Outcome {
    ensure_eq!(unidist::get(&unidist::put(42i64))?, 42);
    ensure_eq!(unidist::get(&unidist::put(u64::MAX))?, u64::MAX);
    ensure_eq!(unidist::get(&unidist::put("text".to_string()))?, "text");
    ensure_eq!(unidist::get(&unidist::put(vec![1u8, 2, 3]))?, vec![1, 2, 3]);
    let tuple = (1u8, -2i32, "three".to_string());
    ensure_eq!(unidist::get(&unidist::put(tuple.clone()))?, tuple);
    let nested = Some(vec![Some(1.5f64), None]);
    ensure_eq!(unidist::get(&unidist::put(nested.clone()))?, nested);
    let record = Record {
        id: 7,
        name: "seven".into(),
        tags: vec!["a".into(), "b".into()],
        score: Some(0.25),
    };
    ensure_eq!(unidist::get(&unidist::put(record.clone()))?, record);
    let empty: Vec<String> = Vec::new();
    ensure_eq!(unidist::get(&unidist::put(empty))?, Vec::<String>::new());
    unidist::get(&unidist::put(()))?;
    Ok(())
}

/// A value read back is a copy: changing it does not change the stored object.
fn get_returns_copy() -> Outcome {
    let r = unidist::put(vec!["x".to_string()]);
    let mut first = unidist::get(&r)?;
    first.push("y".to_string());
    ensure_eq!(unidist::get(&r)?, vec!["x".to_string()]);
    Ok(())
}

/// `get_all` returns values in input order, whatever order the tasks finish in.
fn get_all_order() -> Outcome {
    let refs = vec![
        slow::remote(600, 1),
        slow::remote(300, 2),
        unidist::put(3i64),
        square::remote(2),
    ];
    ensure_eq!(unidist::get_all(&refs)?, vec![1, 2, 3, 4]);
    Ok(())
}

fn get_all_empty() -> Outcome {
    let none: Vec<ObjectRef<i64>> = Vec::new();
    ensure_eq!(unidist::get_all(&none)?, Vec::<i64>::new());
    Ok(())
}

/// One failed object makes `get_all` fail.
fn get_all_error() -> Outcome {
    let refs = vec![unidist::put(1i64), failed_ref(), unidist::put(2i64)];
    expect_err(unidist::get_all(&refs), ErrorKind::TaskFailed)?;
    Ok(())
}

fn get_timeout_ready() -> Outcome {
    ensure_eq!(
        unidist::get_timeout(&unidist::put(5i64), Duration::from_secs(5))?,
        5
    );
    ensure_eq!(
        unidist::get_timeout(&square::remote(3), Duration::from_secs(30))?,
        9
    );
    Ok(())
}

/// `get_timeout` on a task that is still running gives `Timeout` promptly, and the object can
/// still be read later.
fn get_timeout_slow_task() -> Outcome {
    let r = slow::remote(SLOW_MS, 7);
    let started = Instant::now();
    expect_err(
        unidist::get_timeout(&r, Duration::from_millis(100)),
        ErrorKind::Timeout,
    )?;
    let took = started.elapsed();
    ensure!(
        took < Duration::from_millis(SLOW_MS),
        "get_timeout with 100 ms returned after {took:?}"
    );
    ensure_eq!(fetch(&r)?, 7);
    Ok(())
}

#[unidist::remote]
fn checksum(data: Vec<u8>) -> (usize, u64) {
    (data.len(), data.iter().map(|&b| u64::from(b)).sum())
}

/// A 4 MiB value through `put`, a task and `get`.
fn large_value() -> Outcome {
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let expected = (data.len(), data.iter().map(|&b| u64::from(b)).sum::<u64>());
    let r = unidist::put(data.clone());
    ensure_eq!(fetch(&checksum::remote(&r))?, expected);
    ensure!(fetch(&r)? == data, "the 4 MiB value came back changed");
    Ok(())
}

/// Clones of a ref are the same ref; two puts of equal values are different objects.
fn ref_identity() -> Outcome {
    let a = unidist::put(1i64);
    let b = a.clone();
    ensure_eq!(a, b);
    let c = unidist::put(1i64);
    ensure!(a != c, "two puts gave the same ref {a:?}");
    drop(b);
    ensure_eq!(fetch(&a)?, 1);
    Ok(())
}

/// A ref stored inside another object comes back as the same ref.
fn ref_inside_put() -> Outcome {
    let inner = unidist::put(5i64);
    let outer = unidist::put(inner.clone());
    let back: ObjectRef<i64> = fetch(&outer)?;
    ensure_eq!(back, inner);
    ensure_eq!(fetch(&back)?, 5);
    Ok(())
}
