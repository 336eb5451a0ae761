//! Observing the work: `stats()` counts what a case did (tasks submitted, finished and failed,
//! actor calls, objects and bytes stored), and its table lists every counter.

use std::time::Duration;

use unidist::{ErrorKind, Stats};

use crate::fixtures::{failed_ref, square, TestActor};
use crate::harness::{cases, ensure, ensure_eq, eventually, expect_err, Case, Outcome};

pub(crate) fn cases() -> Vec<Case> {
    cases!("observe":
        stats_count_what_was_done,
    )
}

/// Waits until every task submitted so far has settled (earlier cases may leave tasks running
/// whose refs they dropped), and returns the counters then.
fn settled_stats() -> Result<Stats, crate::harness::Fail> {
    let mut last = unidist::stats()?;
    // Leftover tasks of earlier cases take at most a few seconds; a backend that does not
    // count where its tasks run never settles, and should not hold the run up for long.
    eventually(Duration::from_secs(5), || {
        last = unidist::stats()?;
        // Cancelled tasks are failed tasks too (their outputs hold `Cancelled`).
        Ok(last.tasks_submitted == last.tasks_finished + last.tasks_failed)
    })
    .map_err(|e| crate::harness::Fail(format!("{}; last counters: {last:?}", e.0)))?;
    Ok(last)
}

/// Three tasks that finish, one that panics, one that fails on that failed argument, two actor
/// calls and one `put` of 1000 bytes: the counters grow by exactly that.
fn stats_count_what_was_done() -> Outcome {
    let before = settled_stats()?;
    let blob = unidist::put(vec![7u8; 1000]);
    let squares: Vec<_> = (1..=3).map(square::remote).collect();
    let failed = failed_ref();
    let downstream = square::remote(&failed);
    let actor = TestActor::remote(0);
    let calls = [actor.task(1), actor.task(2)];
    ensure_eq!(unidist::get_all(&squares)?, vec![1, 4, 9]);
    expect_err(unidist::get(&downstream), ErrorKind::TaskFailed)?;
    ensure_eq!(unidist::get_all(&calls)?.len(), 2);
    ensure_eq!(unidist::get(&blob)?.len(), 1000);
    let after = settled_stats()?;
    let delta = |f: fn(&Stats) -> u64| f(&after) - f(&before);
    ensure_eq!(delta(|s| s.tasks_submitted), 5);
    ensure_eq!(delta(|s| s.tasks_finished), 3);
    ensure_eq!(delta(|s| s.tasks_failed), 2);
    ensure_eq!(delta(|s| s.actor_calls), 2);
    // The put, three task outputs and two method outputs; failed calls store errors only.
    ensure_eq!(delta(|s| s.objects_stored), 6);
    ensure!(
        delta(|s| s.bytes_stored) >= 1000,
        "bytes_stored grew by {} after a put of 1000 bytes",
        delta(|s| s.bytes_stored)
    );
    ensure!(!after.workers.is_empty(), "stats() has no worker entry");
    let table = after.to_string();
    for row in [
        "tasks submitted",
        "tasks finished",
        "actor calls",
        "bytes moved",
    ] {
        ensure!(
            table.contains(row),
            "the stats table lacks {row:?}:\n{table}"
        );
    }
    Ok(())
}
