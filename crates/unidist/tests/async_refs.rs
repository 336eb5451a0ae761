//! `.await` on refs, `get_async` and `wait_async` on the sequential and pool backends (each test
//! runs on both, one after the other, in this process): many concurrent awaits on one thread,
//! every executor, failed refs, and awaits inside async actor methods.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::future::{Future, IntoFuture};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use unidist::config::BackendName;
use unidist::{ErrorKind, ObjectRef};

/// Every test must finish its work on one backend within this.
const LIMIT: Duration = Duration::from_secs(60);

/// Tests take turns at the runtime, which is process-wide.
static TURN: Mutex<()> = Mutex::new(());

/// Whether the running backend can hold objects that are not ready yet (false where every
/// call has finished when `remote` returns).
fn pending_objects() -> bool {
    unidist::capabilities()
        .expect("capabilities of the running backend")
        .pending_objects
}

/// Runs `f` on every in-process backend of this build, each freshly started.
fn on_each_backend(f: impl Fn(BackendName)) {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    for name in unidist::in_process_backends() {
        unidist::config::Backend::put(name).expect("choosing the backend");
        unidist::init().expect("init");
        f(name);
        unidist::shutdown().expect("shutdown");
    }
}

/// Runs `fut` on a Tokio current-thread runtime: one OS thread polls every task.
fn current_thread<F: Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime")
        .block_on(async { tokio::time::timeout(LIMIT, fut).await.expect("bounded") })
}

/// Sleeps `ms` milliseconds, then returns `x`: an object that is pending for a while.
#[unidist::remote]
fn slow(x: i64, ms: u64) -> i64 {
    std::thread::sleep(Duration::from_millis(ms));
    x
}

/// `gate + x`: pending as long as `gate` is.
#[unidist::remote]
fn plus(gate: i64, x: i64) -> i64 {
    gate + x
}

/// Always panics.
#[unidist::remote]
fn broken(x: i64) -> i64 {
    panic!("broken on {x}")
}

/// Threads of this process named `name` (Linux; 0 elsewhere).
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                .filter(|n| n.trim() == name)
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn ten_thousand_concurrent_awaits_on_one_thread() {
    const N: i64 = 10_000;
    on_each_backend(|backend| {
        let started = Instant::now();
        let gate = slow::remote(1, 300);
        let refs: Vec<ObjectRef<i64>> = (0..N).map(|i| plus::remote(&gate, i)).collect();
        let (sum, pending_at_start) = current_thread(async move {
            let tasks: Vec<_> = refs
                .into_iter()
                .map(|r| tokio::spawn(r.into_future()))
                .collect();
            // Every task has polled its ref once (and, if not ready, subscribed) by now.
            tokio::task::yield_now().await;
            let pending = tasks.iter().filter(|t| !t.is_finished()).count();
            let mut sum = 0;
            for t in tasks {
                sum += t.await.expect("task").expect("value");
            }
            (sum, pending)
        });
        assert_eq!(sum, (0..N).map(|i| 1 + i).sum::<i64>(), "{backend}");
        if pending_objects() {
            assert!(
                pending_at_start > 0,
                "no await was pending while the gate slept"
            );
        }
        // Both backends notify natively: no helper thread polls for them.
        assert_eq!(threads_named("unidist-ready"), 0, "{backend}");
        assert!(
            started.elapsed() < LIMIT,
            "{backend}: {:?}",
            started.elapsed()
        );
    });
}

/// The three ways to await, checked on one executor.
async fn three_ways() -> unidist::Result<i64> {
    let a = slow::remote(2, 20).await?;
    let b = unidist::get_async(&slow::remote(3, 20)).await?;
    let refs = vec![slow::remote(4, 200), slow::remote(5, 1)];
    let (ready, rest) = unidist::wait_async(&refs, 1).await?;
    assert_eq!((ready.len(), rest.len()), (1, 1));
    let (all, none) = unidist::wait_async(&refs, 2).await?;
    assert_eq!((all.len(), none.len()), (2, 0));
    let c: i64 = unidist::get_all(&all)?.iter().sum();
    Ok(a + b + c)
}

#[test]
fn every_executor() {
    on_each_backend(|backend| {
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("a multi-thread runtime");
        assert_eq!(
            multi.block_on(three_ways()).unwrap(),
            14,
            "{backend}: tokio multi-thread"
        );
        assert_eq!(
            current_thread(three_ways()).unwrap(),
            14,
            "{backend}: tokio current-thread"
        );
        assert_eq!(smol::block_on(three_ways()).unwrap(), 14, "{backend}: smol");
        assert_eq!(
            futures::executor::block_on(three_ways()).unwrap(),
            14,
            "{backend}: futures block_on"
        );
    });
}

#[test]
fn awaiting_a_failed_ref_gives_its_error() {
    on_each_backend(|backend| {
        let bad = broken::remote(7);
        let e = futures::executor::block_on(bad.clone().into_future()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TaskFailed, "{backend}");
        assert!(e.to_string().contains("broken on 7"), "{backend}: {e}");
        // A task given the failed ref fails the same way, and so does awaiting it.
        let e = futures::executor::block_on(plus::remote(&bad, 1).into_future()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TaskFailed, "{backend}");
        // Failed refs count as ready for wait_async (on pyseq both are, and the first in
        // order is returned).
        let refs = vec![slow::remote(1, 300), bad];
        let (ready, _) = futures::executor::block_on(unidist::wait_async(&refs, 1)).unwrap();
        let first = usize::from(pending_objects());
        assert_eq!(ready, vec![refs[first].clone()], "{backend}");
        let e = futures::executor::block_on(unidist::wait_async(&refs, 0)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{backend}");
        let wrong: ObjectRef<String> = ObjectRef::from_any(refs[0].as_any().clone());
        let e = futures::executor::block_on(wrong.into_future()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TypeMismatch, "{backend}");
    });
}

#[test]
fn awaiting_after_shutdown_is_an_error_not_a_hang() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    // The first in-process backend: on the pool, the task is still pending at shutdown.
    let backend = unidist::in_process_backends()[0];
    unidist::config::Backend::put(backend).expect("choosing the backend");
    unidist::init().expect("init");
    let r = slow::remote(1, 1);
    unidist::shutdown().expect("shutdown");
    let e = current_thread(r.into_future()).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::StaleRef | ErrorKind::ShutDown),
        "{e}"
    );
}

/// Sums refs by awaiting them inside an async method.
pub struct Summer {
    total: i64,
}

#[unidist::actor]
impl Summer {
    /// Starts at `total`.
    pub fn new(total: i64) -> Self {
        Summer { total }
    }

    /// Awaits every ref (a task still running, for some) and adds them up.
    pub async fn add_all(&mut self, refs: Vec<ObjectRef<i64>>) -> i64 {
        for r in refs {
            self.total += r.await.expect("an awaited ref failed");
        }
        self.total
    }

    /// Awaits the first ready of `refs` and returns it.
    pub async fn first(&self, refs: Vec<ObjectRef<i64>>) -> i64 {
        let (ready, _) = unidist::wait_async(&refs, 1).await.expect("wait_async");
        ready[0].clone().await.expect("the first ready ref")
    }

    /// The error text of awaiting `r`.
    pub async fn error_of(&self, r: ObjectRef<i64>) -> String {
        match r.await {
            Ok(v) => format!("unexpected value {v}"),
            Err(e) => e.to_string(),
        }
    }
}

#[test]
fn await_inside_an_async_actor_method() {
    on_each_backend(|backend| {
        let summer = Summer::remote(0);
        let refs = vec![slow::remote(10, 100), unidist::put(20), slow::remote(30, 1)];
        let total = unidist::get_timeout(&summer.add_all(refs), LIMIT).unwrap();
        assert_eq!(total, 60, "{backend}");
        let first = summer.first(vec![slow::remote(1, 2_000), slow::remote(2, 1)]);
        let want = if !pending_objects() {
            // Sequential: both are ready when the call is made, and the first in order wins.
            1
        } else {
            2
        };
        assert_eq!(
            unidist::get_timeout(&first, LIMIT).unwrap(),
            want,
            "{backend}"
        );
        let text = unidist::get_timeout(&summer.error_of(broken::remote(3)), LIMIT).unwrap();
        assert!(text.contains("broken on 3"), "{backend}: {text}");
    });
}
