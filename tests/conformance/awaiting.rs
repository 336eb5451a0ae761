//! `.await` on refs, `get_async` and `wait_async` on every backend and MPI mode: many concurrent
//! awaits polled by one OS thread, every executor, and failed refs.

use std::future::{Future, IntoFuture};
use unidist::{ErrorKind, ObjectRef};

use crate::fixtures::{add, failed_ref, slow};
use crate::harness::{cases, ensure, ensure_eq, ensure_mentions, Case, Fail, Outcome, READ_LIMIT};

pub(crate) fn cases() -> Vec<Case> {
    cases!("awaiting":
        ten_thousand_awaits_on_one_thread,
        every_executor,
        failed_refs,
        inside_an_async_actor_method,
    )
}

/// Runs `fut` on a Tokio current-thread runtime (one OS thread polls every task), bounded.
fn on_current_thread<F: Future>(fut: F) -> Result<F::Output, Fail> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| Fail(format!("cannot build a current-thread runtime: {e}")))?;
    runtime
        .block_on(async { tokio::time::timeout(READ_LIMIT, fut).await })
        .map_err(|_| Fail(format!("not finished within {READ_LIMIT:?}")))
}

/// 10,000 refs, all pending behind one slow object, each awaited by its own Tokio task on a
/// current-thread runtime: the awaits never block the one thread that polls them all.
fn ten_thousand_awaits_on_one_thread() -> Outcome {
    const N: i64 = 10_000;
    // Long enough for every await to be polled while the gate is still pending: submitting
    // 10,000 calls takes a few hundred milliseconds on MPI.
    let gate = slow::remote(1_000, 1);
    let refs: Vec<ObjectRef<i64>> = (0..N).map(|i| add::remote(&gate, i)).collect();
    let (results, pending_at_start) = on_current_thread(async move {
        let tasks: Vec<_> = refs
            .into_iter()
            .map(|r| tokio::spawn(r.into_future()))
            .collect();
        // Every task has polled its ref once (and subscribed, if it was not ready) by now.
        tokio::task::yield_now().await;
        let pending = tasks.iter().filter(|t| !t.is_finished()).count();
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await);
        }
        (out, pending)
    })?;
    let mut sum = 0;
    for r in results {
        sum += r
            .map_err(|e| Fail(format!("an awaiting task failed: {e}")))?
            .map_err(|e| Fail(format!("an awaited ref failed: {e}")))?;
    }
    ensure_eq!(sum, (0..N).map(|i| 1 + i).sum::<i64>());
    if unidist::capabilities()?.pending_objects {
        ensure!(
            pending_at_start > 0,
            "no await was pending while the gate slept"
        );
    }
    Ok(())
}

/// The three ways to await, on one executor: `.await`, `get_async`, `wait_async`.
async fn three_ways() -> unidist::Result<(i64, (usize, usize))> {
    let a = slow::remote(20, 2).await?;
    let b = unidist::get_async(&slow::remote(20, 3)).await?;
    let refs = vec![slow::remote(400, 4), slow::remote(1, 5)];
    let (ready, rest) = unidist::wait_async(&refs, 1).await?;
    let first = (ready.len(), rest.len());
    let (all, _) = unidist::wait_async(&refs, 2).await?;
    let c: i64 = unidist::get_all(&all)?.iter().sum();
    Ok((a + b + c, first))
}

/// Tokio (multi-thread and current-thread), smol and `futures::executor::block_on`.
fn every_executor() -> Outcome {
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .map_err(|e| Fail(format!("cannot build a multi-thread runtime: {e}")))?;
    // `wait_async(refs, 1)` returns exactly one ready ref and the other as not waited for.
    let first = (1, 1);
    let runs = [
        ("tokio multi-thread", multi.block_on(three_ways())),
        ("tokio current-thread", on_current_thread(three_ways())?),
        ("smol", smol::block_on(three_ways())),
        (
            "futures block_on",
            futures::executor::block_on(three_ways()),
        ),
    ];
    for (executor, got) in runs {
        let got = got.map_err(|e| Fail(format!("{executor}: {e}")))?;
        ensure!(got == (14, first), "{executor}: got {got:?}");
    }
    Ok(())
}

/// Awaiting a failed ref gives its error, and so does awaiting a task that took it; failed refs
/// count as ready for `wait_async`; a ref read as the wrong type is an error, not a value.
fn failed_refs() -> Outcome {
    let bad = failed_ref();
    let e = futures::executor::block_on(bad.clone().into_future())
        .err()
        .ok_or_else(|| Fail("awaiting a failed ref succeeded".into()))?;
    ensure_eq!(e.kind(), ErrorKind::TaskFailed);
    ensure_mentions(&e.to_string(), &["ratio of 1 to zero"])?;
    let e = futures::executor::block_on(add::remote(&bad, 1).into_future())
        .err()
        .ok_or_else(|| Fail("awaiting a dependent of a failed ref succeeded".into()))?;
    ensure_eq!(e.kind(), ErrorKind::TaskFailed);
    let refs = vec![slow::remote(2_000, 1), bad];
    let (ready, _) = futures::executor::block_on(unidist::wait_async(&refs, 1))?;
    let pending = unidist::capabilities()?.pending_objects;
    // Without pending objects both are ready and the first in order is returned.
    let expected = if pending { &refs[1] } else { &refs[0] };
    ensure!(
        ready == vec![expected.clone()],
        "wait_async returned {ready:?}"
    );
    let wrong: ObjectRef<String> = ObjectRef::from_any(refs[0].as_any().clone());
    let e = on_current_thread(wrong.into_future())?
        .err()
        .ok_or_else(|| Fail("a ref read as the wrong type succeeded".into()))?;
    // In one process the stored type is known (a type error); across processes the bytes fail
    // to decode as the asked type (a serialization error).
    ensure!(
        matches!(e.kind(), ErrorKind::TypeMismatch | ErrorKind::Serialize),
        "a ref read as the wrong type failed with {:?}: {e}",
        e.kind()
    );
    Ok(())
}

/// Awaits refs inside its `async` methods (on MPI, on the worker rank that hosts it).
pub(crate) struct Summer {
    base: i64,
}

#[unidist::actor]
impl Summer {
    /// Starts every sum at `base`.
    pub(crate) fn new(base: i64) -> Self {
        Summer { base }
    }

    /// `base` plus the values of `refs`, each awaited; a failed ref counts as -1000.
    pub(crate) async fn add_all(&self, refs: Vec<ObjectRef<i64>>) -> i64 {
        let mut total = self.base;
        for r in refs {
            total += r.await.unwrap_or(-1000);
        }
        total
    }

    /// The first of `refs` to be ready, through `wait_async`.
    pub(crate) async fn first(&self, refs: Vec<ObjectRef<i64>>) -> i64 {
        match unidist::wait_async(&refs, 1).await {
            Ok((ready, _)) => match ready.first() {
                Some(r) => unidist::get_async(r).await.unwrap_or(-1),
                None => -2,
            },
            Err(_) => -3,
        }
    }
}

/// An async actor method awaits pending refs (passed inside its argument) without blocking
/// the actor's thread: a second call on the same actor finishes while the first awaits.
fn inside_an_async_actor_method() -> Outcome {
    let summer = Summer::remote(100);
    let slow_refs = vec![slow::remote(300, 1), slow::remote(10, 2), failed_ref()];
    let sum = summer.add_all(slow_refs);
    let quick = summer.first(vec![slow::remote(2_000, 7), unidist::put(8i64)]);
    ensure_eq!(crate::harness::fetch(&sum)?, 100 + 1 + 2 - 1000);
    // Where nothing is ever pending both are ready, and the first in order is returned.
    let expected = if unidist::capabilities()?.pending_objects {
        8
    } else {
        7
    };
    ensure_eq!(crate::harness::fetch(&quick)?, expected);
    Ok(())
}
