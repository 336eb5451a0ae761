//! `wait` and `wait_timeout`: the ready/not-ready split in input order, failed refs as ready,
//! argument errors instead of hangs, and timeouts.

use std::time::{Duration, Instant};

use unidist::{ErrorKind, ObjectRef};

use crate::fixtures::{failed_ref, slow, square, SLOW_MS};
use crate::harness::{cases, ensure, ensure_eq, ensure_mentions, expect_err, Case, Outcome};

pub(crate) fn cases() -> Vec<Case> {
    cases!("wait":
        all_ready_input_order,
        pending_not_ready,
        failed_ref_is_ready,
        failed_ref_ready_before_pending,
        num_returns_too_large,
        num_returns_zero,
        empty_refs,
        wait_timeout_partial,
        wait_timeout_all_ready,
    )
}

/// With everything ready, `ready` is the first `num_returns` refs and `not_ready` the rest, each
/// in input order.
fn all_ready_input_order() -> Outcome {
    let refs: Vec<ObjectRef<i64>> = (0..5).map(unidist::put).collect();
    let (ready, not_ready) = unidist::wait(&refs, 2)?;
    ensure_eq!(ready, refs[..2].to_vec());
    ensure_eq!(not_ready, refs[2..].to_vec());
    let (ready, not_ready) = unidist::wait(&refs, 5)?;
    ensure_eq!(ready, refs);
    ensure!(not_ready.is_empty(), "not ready: {not_ready:?}");
    ensure_eq!(unidist::get_all(&ready)?, vec![0, 1, 2, 3, 4]);
    Ok(())
}

/// A running task is not ready; a finished one later in the input is.
fn pending_not_ready() -> Outcome {
    // The fast task is submitted first, so it finishes first even on a single worker.
    let fast = square::remote(5);
    let pending = slow::remote(SLOW_MS, 1);
    let refs = vec![pending.clone(), fast.clone()];
    let (ready, not_ready) = unidist::wait(&refs, 1)?;
    ensure_eq!(ready, vec![fast]);
    ensure_eq!(not_ready, vec![pending]);
    let (ready, not_ready) = unidist::wait(&refs, 2)?;
    ensure_eq!(ready, refs);
    ensure!(not_ready.is_empty(), "not ready: {not_ready:?}");
    Ok(())
}

/// A failed ref counts as ready: waiting on it returns at once instead of hanging.
fn failed_ref_is_ready() -> Outcome {
    let bad = failed_ref();
    let (ready, not_ready) =
        unidist::wait_timeout(std::slice::from_ref(&bad), 1, Duration::from_secs(30))?;
    ensure_eq!(ready, vec![bad]);
    ensure!(not_ready.is_empty(), "not ready: {not_ready:?}");
    // A ref whose submission was rejected is ready too.
    let rejected = square::options().num_cpus(0).remote(1);
    let (ready, _) =
        unidist::wait_timeout(std::slice::from_ref(&rejected), 1, Duration::from_secs(30))?;
    ensure_eq!(ready, vec![rejected]);
    Ok(())
}

/// A failed ref is ready while a running task is not.
fn failed_ref_ready_before_pending() -> Outcome {
    let bad = failed_ref();
    let pending = slow::remote(SLOW_MS, 1);
    let (ready, not_ready) = unidist::wait(&[pending.clone(), bad.clone()], 1)?;
    ensure_eq!(ready, vec![bad]);
    ensure_eq!(not_ready, vec![pending]);
    Ok(())
}

/// More returns than refs is an error, not a hang.
fn num_returns_too_large() -> Outcome {
    let refs = vec![unidist::put(1i64), unidist::put(2i64)];
    let e = expect_err(unidist::wait(&refs, 3), ErrorKind::InvalidArgument)?;
    ensure_mentions(&e.to_string(), &["num_returns", "3"])?;
    expect_err(
        unidist::wait_timeout(&refs, 3, Duration::from_secs(1)),
        ErrorKind::InvalidArgument,
    )?;
    Ok(())
}

fn num_returns_zero() -> Outcome {
    let refs = vec![unidist::put(1i64)];
    let e = expect_err(unidist::wait(&refs, 0), ErrorKind::InvalidArgument)?;
    ensure_mentions(&e.to_string(), &["num_returns", "0"])?;
    Ok(())
}

fn empty_refs() -> Outcome {
    let none: Vec<ObjectRef<i64>> = Vec::new();
    expect_err(unidist::wait(&none, 1), ErrorKind::InvalidArgument)?;
    Ok(())
}

/// When time runs out, `wait_timeout` returns what is ready, possibly less than asked for.
fn wait_timeout_partial() -> Outcome {
    let pending = slow::remote(SLOW_MS, 1);
    let started = Instant::now();
    let (ready, not_ready) = unidist::wait_timeout(
        std::slice::from_ref(&pending),
        1,
        Duration::from_millis(200),
    )?;
    let took = started.elapsed();
    ensure!(
        took < Duration::from_millis(SLOW_MS),
        "wait_timeout with 200 ms returned after {took:?}"
    );
    ensure!(ready.is_empty(), "ready: {ready:?}");
    ensure_eq!(not_ready, vec![pending]);
    Ok(())
}

fn wait_timeout_all_ready() -> Outcome {
    let refs: Vec<ObjectRef<i64>> = vec![unidist::put(1), square::remote(2)];
    let (ready, not_ready) = unidist::wait_timeout(&refs, 2, Duration::from_secs(30))?;
    ensure_eq!(ready, refs);
    ensure!(not_ready.is_empty(), "not ready: {not_ready:?}");
    Ok(())
}
