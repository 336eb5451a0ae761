//! Fault tolerance: retries on panic, task timeouts, cancellation, errors as soon as they are
//! known, and the checks of the options at submission (API.md, "Fault tolerance").

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use unidist::ErrorKind;

use crate::fixtures::{add, failed_ref, slow, square, Counter};
use crate::harness::{
    cases, ensure, ensure_eq, ensure_mentions, expect_err, fetch, Case, Fail, Outcome,
};

pub(crate) fn cases() -> Vec<Case> {
    cases!("fault_tolerance":
        retry_on_panic_succeeds_on_third_run,
        retries_run_out_and_say_how_many,
        timeout_fails_with_timeout_and_dependents_fail,
        timeout_frees_every_slot_at_once,
        timeout_is_retried_while_retries_are_left,
        cancel_pending,
        cancel_running,
        cancel_finished,
        get_all_returns_an_error_at_once,
        bad_options,
    )
}

/// How long a timed-out body sleeps, and the limit it runs out of.
const SLEEP_MS: u64 = 1500;
const LIMIT: Duration = Duration::from_millis(200);

/// Adds one to the count in the file `path` (a missing file counts 0) and returns the new
/// count: runs are counted in a file because under MPI each run may be in another process.
fn bump(path: &str) -> u32 {
    let n = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    std::fs::write(path, n.to_string()).expect("the run counter file must be writable");
    n
}

/// Panics on every run before run `succeed_on`, and returns the number of the run.
#[unidist::remote]
pub(crate) fn flaky(path: String, succeed_on: u32) -> u32 {
    let n = bump(&path);
    assert!(n >= succeed_on, "run {n} fails on purpose");
    n
}

/// Sleeps `ms` on its first run only, and returns the number of the run.
#[unidist::remote]
fn slow_first_run(path: String, ms: u64) -> u32 {
    let n = bump(&path);
    if n == 1 {
        std::thread::sleep(Duration::from_millis(ms));
    }
    n
}

/// A fresh run counter file, removed when dropped.
pub(crate) struct RunCounter(PathBuf);

impl RunCounter {
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "unidist-conformance-runs-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        RunCounter(path)
    }

    pub(crate) fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }

    fn runs(&self) -> Result<u32, Fail> {
        read_count(&self.0)
    }
}

fn read_count(path: &Path) -> Result<u32, Fail> {
    match std::fs::read_to_string(path) {
        Ok(s) => s
            .trim()
            .parse()
            .map_err(|e| Fail(format!("the run counter holds {s:?}: {e}"))),
        Err(_) => Ok(0),
    }
}

impl Drop for RunCounter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `max_retries(2).retry_exceptions(true)`: a body that panics twice succeeds on its third run.
fn retry_on_panic_succeeds_on_third_run() -> Outcome {
    let runs = RunCounter::new();
    let r = flaky::options()
        .max_retries(2)
        .retry_exceptions(true)
        .remote(runs.path(), 3);
    ensure_eq!(fetch(&r)?, 3);
    ensure_eq!(runs.runs()?, 3);
    Ok(())
}

/// Without `retry_exceptions` a panic is not retried; with too few retries the error after the
/// last run says how many runs were made.
fn retries_run_out_and_say_how_many() -> Outcome {
    let runs = RunCounter::new();
    let r = flaky::options().max_retries(2).remote(runs.path(), 3);
    let e = expect_err(unidist::get(&r), ErrorKind::TaskFailed)?;
    ensure_mentions(
        &e.to_string(),
        &["flaky", "run 1 fails on purpose", "1 run"],
    )?;
    ensure_eq!(runs.runs()?, 1);

    let runs = RunCounter::new();
    let r = flaky::options()
        .max_retries(1)
        .retry_exceptions(true)
        .remote(runs.path(), 3);
    let e = expect_err(unidist::get(&r), ErrorKind::TaskFailed)?;
    ensure_mentions(&e.to_string(), &["run 2 fails on purpose", "2 runs"])?;
    ensure_eq!(runs.runs()?, 2);
    Ok(())
}

/// A body that runs longer than its timeout: its outputs fail with `Timeout` naming the
/// function and the limit, and a task that takes it as an argument fails without running.
fn timeout_fails_with_timeout_and_dependents_fail() -> Outcome {
    let r = slow::options().timeout(LIMIT).remote(SLEEP_MS, 1);
    let e = expect_err(unidist::get(&r), ErrorKind::Timeout)?;
    ensure_mentions(&e.to_string(), &["slow", &format!("{LIMIT:?}")])?;
    let dependent = add::remote(&r, 1);
    expect_err(unidist::get(&dependent), ErrorKind::TaskFailed)?;
    Ok(())
}

/// As many timed-out tasks as there are workers: each fails within its limit plus a second, and
/// a task submitted after them runs at once, because the stuck bodies gave their slots back
/// (with one worker, as with `UNIDIST_CPUS=1`, the one slot).
fn timeout_frees_every_slot_at_once() -> Outcome {
    let started = Instant::now();
    let stuck: Vec<_> = (0..unidist::num_cpus().max(1))
        .map(|i| slow::options().timeout(LIMIT).remote(SLEEP_MS, i as i64))
        .collect();
    for r in &stuck {
        expect_err(unidist::get(r), ErrorKind::Timeout)?;
    }
    let failed_after = started.elapsed();
    ensure!(
        failed_after < LIMIT + Duration::from_secs(1),
        "the timed-out tasks failed after {failed_after:?}, limit {LIMIT:?}"
    );
    let later = Instant::now();
    ensure_eq!(fetch(&square::remote(6))?, 36);
    let took = later.elapsed();
    ensure!(
        took < Duration::from_millis(SLEEP_MS / 2),
        "a task after the timed-out ones took {took:?}: it waited for their bodies"
    );
    Ok(())
}

/// A run that timed out is retried while retries are left; the second run is quick.
fn timeout_is_retried_while_retries_are_left() -> Outcome {
    let runs = RunCounter::new();
    let r = slow_first_run::options()
        .timeout(LIMIT)
        .max_retries(1)
        .remote(runs.path(), SLEEP_MS);
    ensure_eq!(fetch(&r)?, 2);
    Ok(())
}

/// A task that waits for an argument is cancelled: it never runs, its output fails with
/// `Cancelled`, and a task depending on it fails without running.
fn cancel_pending() -> Outcome {
    let blocker = slow::remote(SLEEP_MS / 2, 0);
    let gate = add::remote(&blocker, 1);
    let waiting = add::remote(&gate, 1);
    unidist::cancel(&waiting)?;
    let e = expect_err(unidist::get(&waiting), ErrorKind::Cancelled)?;
    ensure_mentions(&e.to_string(), &["add"])?;
    let dependent = square::remote(&waiting);
    expect_err(unidist::get(&dependent), ErrorKind::TaskFailed)?;
    // What it waited for is untouched.
    ensure_eq!(fetch(&gate)?, 1);
    Ok(())
}

/// A running task is cancelled: its output fails with `Cancelled` at once, not after the body.
fn cancel_running() -> Outcome {
    let r = slow::remote(SLEEP_MS, 5);
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    unidist::cancel(&r)?;
    expect_err(unidist::get(&r), ErrorKind::Cancelled)?;
    let took = started.elapsed();
    ensure!(
        took < Duration::from_millis(SLEEP_MS / 2),
        "the cancelled task's output failed after {took:?}"
    );
    let dependent = add::remote(&r, 1);
    expect_err(unidist::get(&dependent), ErrorKind::TaskFailed)?;
    Ok(())
}

/// Cancelling a finished object does nothing and succeeds, also for a failed one.
fn cancel_finished() -> Outcome {
    let r = square::remote(7);
    ensure_eq!(fetch(&r)?, 49);
    unidist::cancel(&r)?;
    ensure_eq!(fetch(&r)?, 49);
    let failed = failed_ref();
    expect_err(unidist::get(&failed), ErrorKind::TaskFailed)?;
    unidist::cancel(&failed)?;
    expect_err(unidist::get(&failed), ErrorKind::TaskFailed)?;
    Ok(())
}

/// `get_all` of a slow object and a failed one returns the failure without waiting for the
/// slow one, whatever their order.
fn get_all_returns_an_error_at_once() -> Outcome {
    for failed_first in [false, true] {
        // The failing task is submitted first: on a single worker with one thread it would
        // otherwise queue behind the slow one, and its failure could not be known earlier.
        let failed = failed_ref();
        let slow_one = slow::remote(SLEEP_MS, 1);
        let refs = if failed_first {
            vec![failed, slow_one.clone()]
        } else {
            vec![slow_one.clone(), failed]
        };
        let started = Instant::now();
        expect_err(unidist::get_all(&refs), ErrorKind::TaskFailed)?;
        let took = started.elapsed();
        ensure!(
            took < Duration::from_millis(SLEEP_MS / 2),
            "get_all returned the failure after {took:?} (failed first: {failed_first})"
        );
        // The slow body still runs: cancelling it gives its worker back, so that the failing
        // task of the next round does not queue behind it where workers have one thread each.
        unidist::cancel(&slow_one)?;
    }
    Ok(())
}

/// Bad fault-tolerance options give refs (or a handle) holding `InvalidArgument` that names the
/// option and the value; good ones are accepted.
fn bad_options() -> Outcome {
    let too_many = square::options().max_retries(1000).remote(2);
    let e = expect_err(unidist::get(&too_many), ErrorKind::InvalidArgument)?;
    ensure_mentions(&e.to_string(), &["max_retries", "1000"])?;
    let zero = square::options().timeout(Duration::ZERO).remote(2);
    let e = expect_err(unidist::get(&zero), ErrorKind::InvalidArgument)?;
    ensure_mentions(&e.to_string(), &["timeout", "0ns"])?;
    let lonely = square::options().retry_exceptions(true).remote(2);
    let e = expect_err(unidist::get(&lonely), ErrorKind::InvalidArgument)?;
    ensure_mentions(&e.to_string(), &["retry_exceptions", "true"])?;
    let actor = Counter::options().max_restarts(1000).remote(0);
    let e = expect_err(unidist::get(&actor.get()), ErrorKind::InvalidArgument)?;
    ensure_mentions(&e.to_string(), &["max_restarts", "1000"])?;
    // Accepted options change nothing when nothing fails.
    let fine = square::options()
        .max_retries(3)
        .retry_exceptions(true)
        .timeout(Duration::from_secs(60))
        .remote(3);
    ensure_eq!(fetch(&fine)?, 9);
    let restartable = Counter::options().max_restarts(1).remote(5);
    ensure_eq!(fetch(&restartable.get())?, 5);
    Ok(())
}
