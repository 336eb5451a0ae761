//! The workloads of `unidist-bench workloads`: the nine shared with the Python peers from the
//! start, their remote functions and actor, their sizes, and one function per workload that runs
//! it and returns its parameters and extras. The data-plane rows live in [`crate::data_rows`].
//!
//! The rows have the names, units and sizes of `bench/peers/workloads.py`, so each can be set
//! beside the same row measured on Python unidist, Ray and Dask:
//!
//! | row | what is timed | unit |
//! |---|---|---|
//! | `async_empty_tasks` | submit N no-op tasks, then get them all | tasks/s |
//! | `sync_round_trip` | submit one no-op task and get it, K times; median | µs |
//! | `put_get_small` | put an 8-byte integer and get it back, K times; median | µs |
//! | `put_get_large` | put a 64 MiB `f64` buffer and get it back | GB/s |
//! | `task_sum_large` | a task receives a 64 MiB buffer by ref and returns its sum | s |
//! | `actor_async_calls` | N method calls on one actor, then get them all | calls/s |
//! | `actor_sync_call` | one actor method call and get, K times; median | µs |
//! | `cpu_scaling` | 8 tasks of fixed CPU work against the same 8 calls in sequence | ratio |
//! | `nested_fib` | fib(20) where every call is a task that submits and waits for two more | s |
//! | `vec_f64_by_ref` .. `big_object` | the data-plane rows, see [`crate::data_rows`] | s, GB/s |

use std::hint::black_box;
use std::time::Instant;

use serde_json::{json, Value};
use unidist::{ActorHandle, Buffer, ObjectRef};

use crate::data_rows;
use crate::measure::{check, latency_runs, median_of, ok, push, set_progress, Progress, Runs};

/// Bytes of the large array: 64 MiB of `f64`.
pub(crate) const LARGE_BYTES: usize = 64 << 20;
/// An 8-byte value, as in the Python workloads.
const SMALL_VALUE: u64 = 0x0123_4567_89AB_CDEF;

/// Every workload, in report order, with its unit.
pub(crate) const WORKLOADS: [(&str, &str); 14] = [
    ("async_empty_tasks", "tasks/s"),
    ("sync_round_trip", "us"),
    ("put_get_small", "us"),
    ("put_get_large", "GB/s"),
    ("task_sum_large", "s"),
    ("actor_async_calls", "calls/s"),
    ("actor_sync_call", "us"),
    ("cpu_scaling", "ratio"),
    ("nested_fib", "s"),
    ("vec_f64_by_ref", "s"),
    ("buffer_f64_by_ref", "s"),
    ("bytes_round_trip", "s"),
    ("string_round_trip", "s"),
    ("big_object", "GB/s"),
];

/// The time limit of `workload` when the others get `base` seconds: `big_object` moves 2.5 GiB
/// several times per run and gets four times as long (it stops repeating before its budget).
pub(crate) fn time_limit(workload: &str, base: f64) -> f64 {
    if workload == "big_object" {
        4.0 * base
    } else {
        base
    }
}

/// The unit of a workload's values.
pub(crate) fn unit(workload: &str) -> &'static str {
    WORKLOADS
        .iter()
        .find(|(w, _)| *w == workload)
        .map_or("us", |(_, u)| u)
}

/// Parameters (sizes) and extra results of a row, by name.
pub(crate) type Fields = Vec<(&'static str, Value)>;

/// Which fields of a row are parameters (sizes); the rest are extra results.
pub(crate) fn is_param(key: &str) -> bool {
    matches!(key, "n" | "k" | "value_bytes" | "bytes" | "tasks" | "iters")
}

// ---- task bodies ---------------------------------------------------------------------------

#[unidist::remote]
fn noop() {}

/// The sum of the array with eight independent accumulators. A plain `iter().sum()` is one
/// dependency chain of 8 Mi additions (about 4 ms here) where numpy's pairwise SIMD sum takes
/// under 2 ms; the row measures moving the array to a task, so the body should be as fast.
pub(crate) fn lanes_sum(v: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = v.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f64>() + rest
}

#[unidist::remote]
fn array_sum(arr: Buffer<f64>) -> f64 {
    lanes_sum(&arr)
}

/// Fixed CPU work with the meaning of the Python `cpu_work`: an integer loop the optimizer can
/// neither vectorize nor fold, since every index passes through `black_box`.
fn cpu_work(iters: u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..iters {
        acc = (acc + black_box(i) * 7) & 0xFFFF_FFFF;
    }
    acc
}

#[unidist::remote]
fn cpu_task(iters: u64) -> u64 {
    cpu_work(iters)
}

fn fib_plain(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_plain(n - 1) + fib_plain(n - 2)
    }
}

/// fib(n) where every call is a task that submits its two children and blocks on them.
#[unidist::remote]
fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let left = fib::remote(n - 1);
    let right = fib::remote(n - 2);
    unidist::get(&left).expect("fib(n - 1) through a task")
        + unidist::get(&right).expect("fib(n - 2) through a task")
}

/// An actor whose method changes state, so lost, repeated or reordered calls are seen.
pub(crate) struct BenchActor {
    count: u64,
}

impl Default for BenchActor {
    fn default() -> Self {
        Self::new()
    }
}

#[unidist::actor]
impl BenchActor {
    /// Starts at zero.
    pub(crate) fn new() -> Self {
        BenchActor { count: 0 }
    }

    /// Counts one call and returns the count.
    pub(crate) fn bump(&mut self) -> u64 {
        self.count += 1;
        self.count
    }
}

// ---- sizes ---------------------------------------------------------------------------------

/// Sizes per mode: the Python workloads' sizes, except the CPU work, which is a Rust loop sized
/// so that one task takes 50 to 100 ms on a 2020s x86 core (measured: about 1 ns a step).
#[derive(Clone, Copy)]
pub(crate) struct Sizes {
    async_n: usize,
    sync_k: usize,
    small_k: usize,
    actor_n: usize,
    actor_k: usize,
    cpu_tasks: usize,
    cpu_iters: u64,
    fib_n: u64,
    fib_warmup_limit: f64,
    /// Bytes of the `big_object` row and the seconds within which it stops repeating.
    pub big_bytes: usize,
    pub big_budget_s: f64,
}

impl Sizes {
    /// These sizes with the `big_object` row set to `bytes` within `budget_s` seconds.
    pub(crate) fn with_big_object(self, bytes: usize, budget_s: f64) -> Sizes {
        Sizes {
            big_bytes: bytes,
            big_budget_s: budget_s,
            ..self
        }
    }
}

pub(crate) const FULL: Sizes = Sizes {
    async_n: 1000,
    sync_k: 200,
    small_k: 500,
    actor_n: 1000,
    actor_k: 200,
    cpu_tasks: 8,
    cpu_iters: 80_000_000,
    fib_n: 20,
    fib_warmup_limit: 10.0,
    big_bytes: data_rows::BIG_OBJECT_BYTES,
    big_budget_s: 180.0,
};

pub(crate) const QUICK: Sizes = Sizes {
    async_n: 200,
    sync_k: 50,
    small_k: 100,
    actor_n: 200,
    actor_k: 50,
    cpu_tasks: 8,
    cpu_iters: 50_000_000,
    fib_n: 10,
    fib_warmup_limit: 5.0,
    big_bytes: data_rows::BIG_OBJECT_BYTES,
    big_budget_s: 45.0,
};

// ---- the workloads -------------------------------------------------------------------------

/// The 64 MiB and 16 MiB rows: they take milliseconds a run and their first run is cold
/// (fresh memory, first mappings), so they run at least [`LARGE_RUNS_MIN`] times and their
/// median is one of the warm runs; the cold one stays in min, max and runs. The Python peers
/// and the Lamellar harness apply the same rule.
pub(crate) const LARGE_ROWS: [&str; 6] = [
    "put_get_large",
    "task_sum_large",
    "vec_f64_by_ref",
    "buffer_f64_by_ref",
    "bytes_round_trip",
    "string_round_trip",
];
/// The fewest runs of a row of [`LARGE_ROWS`].
pub(crate) const LARGE_RUNS_MIN: usize = 9;

/// How many runs `workload` gets when `--repeats` is `repeats`.
pub(crate) fn runs_of(workload: &str, repeats: usize) -> usize {
    if LARGE_ROWS.contains(&workload) {
        repeats.max(LARGE_RUNS_MIN)
    } else {
        repeats
    }
}

/// Runs `workload` (a name of [`WORKLOADS`]) [`runs_of`] `repeats` times, adding each run's
/// value to `runs`.
pub(crate) fn run(
    workload: &str,
    sz: Sizes,
    repeats: usize,
    runs: &Runs,
    progress: &Progress,
) -> Result<Fields, String> {
    let repeats = runs_of(workload, repeats);
    match workload {
        "async_empty_tasks" => async_empty_tasks(sz, repeats, runs),
        "sync_round_trip" => sync_round_trip(sz, repeats, runs),
        "put_get_small" => put_get_small(sz, repeats, runs),
        "put_get_large" => put_get_large(repeats, runs),
        "task_sum_large" => task_sum_large(repeats, runs),
        "actor_async_calls" => actor_async_calls(sz, repeats, runs),
        "actor_sync_call" => actor_sync_call(sz, repeats, runs),
        "cpu_scaling" => cpu_scaling(sz, repeats, runs),
        "nested_fib" => nested_fib(sz, repeats, runs, progress),
        "vec_f64_by_ref" => data_rows::vec_f64_by_ref(repeats, runs),
        "buffer_f64_by_ref" => data_rows::buffer_f64_by_ref(repeats, runs),
        "bytes_round_trip" => data_rows::bytes_round_trip(repeats, runs),
        "string_round_trip" => data_rows::string_round_trip(repeats, runs),
        "big_object" => data_rows::big_object(sz, repeats, runs, progress),
        other => Err(format!("unknown workload {other:?}")),
    }
}

fn large_array() -> Buffer<f64> {
    (0..LARGE_BYTES / 8)
        .map(|i| i as f64)
        .collect::<Vec<f64>>()
        .into()
}

fn async_empty_tasks(sz: Sizes, repeats: usize, runs: &Runs) -> Result<Fields, String> {
    let n = sz.async_n;
    ok(unidist::get_all(
        &(0..n.min(50)).map(|_| noop::remote()).collect::<Vec<_>>(),
    ))?;
    for _ in 0..repeats {
        let t = Instant::now();
        let refs: Vec<ObjectRef<()>> = (0..n).map(|_| noop::remote()).collect();
        let out = ok(unidist::get_all(&refs))?;
        let dt = t.elapsed().as_secs_f64();
        check(out.len() == n, "wrong number of results")?;
        push(runs, n as f64 / dt);
    }
    Ok(vec![("n", json!(n))])
}

fn sync_round_trip(sz: Sizes, repeats: usize, runs: &Runs) -> Result<Fields, String> {
    ok(unidist::get(&noop::remote()))?;
    latency_runs(repeats, sz.sync_k, runs, || {
        ok(unidist::get(&noop::remote()))
    })?;
    Ok(vec![("k", json!(sz.sync_k))])
}

fn put_get_small(sz: Sizes, repeats: usize, runs: &Runs) -> Result<Fields, String> {
    ok(unidist::get(&unidist::put(SMALL_VALUE)))?;
    latency_runs(repeats, sz.small_k, runs, || {
        let back = ok(unidist::get(&unidist::put(SMALL_VALUE)))?;
        check(back == SMALL_VALUE, "value changed in put/get")
    })?;
    Ok(vec![("k", json!(sz.small_k)), ("value_bytes", json!(8))])
}

fn put_get_large(repeats: usize, runs: &Runs) -> Result<Fields, String> {
    let arr = large_array();
    let head: Buffer<f64> = arr[..1024].to_vec().into();
    ok(unidist::get(&unidist::put(head)))?;
    for _ in 0..repeats {
        // The caller keeps its array, as in Python; `Buffer` shares storage, so the clone is a
        // reference count, and a backend that must snapshot or send it pays the copy.
        let t = Instant::now();
        let r = unidist::put(arr.clone());
        let back = ok(unidist::get(&r))?;
        let dt = t.elapsed().as_secs_f64();
        check(
            back.len() == arr.len() && back[arr.len() - 1] == arr[arr.len() - 1],
            "array changed in put/get",
        )?;
        drop((r, back));
        push(runs, LARGE_BYTES as f64 / dt / 1e9);
    }
    Ok(vec![("bytes", json!(LARGE_BYTES))])
}

fn task_sum_large(repeats: usize, runs: &Runs) -> Result<Fields, String> {
    let arr = large_array();
    // The body alone, in this thread: what the task costs without the runtime.
    let t = Instant::now();
    let expected = lanes_sum(black_box(&arr));
    let local_sum_s = t.elapsed().as_secs_f64();
    let head: Buffer<f64> = arr[..1024].to_vec().into();
    ok(unidist::get(&array_sum::remote(unidist::put(head))))?;
    for _ in 0..repeats {
        // A fresh object each run, so no worker has it cached yet; the put is not timed.
        let r = unidist::put(arr.clone());
        let t = Instant::now();
        let total = ok(unidist::get(&array_sum::remote(&r)))?;
        let dt = t.elapsed().as_secs_f64();
        check(total == expected, "wrong sum")?;
        drop(r);
        push(runs, dt);
    }
    Ok(vec![
        ("bytes", json!(LARGE_BYTES)),
        ("local_sum_s", json!(local_sum_s)),
    ])
}

fn actor_async_calls(sz: Sizes, repeats: usize, runs: &Runs) -> Result<Fields, String> {
    let n = sz.actor_n;
    let a: ActorHandle<BenchActor> = BenchActor::remote();
    let mut done = ok(unidist::get(&a.bump()))?;
    for _ in 0..repeats {
        let t = Instant::now();
        let refs: Vec<ObjectRef<u64>> = (0..n).map(|_| a.bump()).collect();
        let out = ok(unidist::get_all(&refs))?;
        let dt = t.elapsed().as_secs_f64();
        let expected: Vec<u64> = (done + 1..=done + n as u64).collect();
        check(
            out == expected,
            "actor calls lost, repeated or out of order",
        )?;
        done += n as u64;
        push(runs, n as f64 / dt);
    }
    ok(a.kill())?;
    Ok(vec![("n", json!(n))])
}

fn actor_sync_call(sz: Sizes, repeats: usize, runs: &Runs) -> Result<Fields, String> {
    let a: ActorHandle<BenchActor> = BenchActor::remote();
    let mut count = ok(unidist::get(&a.bump()))?;
    latency_runs(repeats, sz.actor_k, runs, || {
        let got = ok(unidist::get(&a.bump()))?;
        check(got == count + 1, "actor call lost")?;
        count = got;
        Ok(())
    })?;
    ok(a.kill())?;
    Ok(vec![("k", json!(sz.actor_k))])
}

fn cpu_scaling(sz: Sizes, repeats: usize, runs: &Runs) -> Result<Fields, String> {
    let (tasks, iters) = (sz.cpu_tasks, sz.cpu_iters);
    let expected = cpu_work(iters);
    // Warm up with the full batch, so that worker start-up is not charged to the first run.
    ok(unidist::get_all(
        &(0..tasks)
            .map(|_| cpu_task::remote(iters))
            .collect::<Vec<_>>(),
    ))?;
    let (mut seq, mut par) = (Vec::new(), Vec::new());
    for _ in 0..repeats {
        let t = Instant::now();
        for _ in 0..tasks {
            black_box(cpu_work(black_box(iters)));
        }
        let t_seq = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let refs: Vec<ObjectRef<u64>> = (0..tasks).map(|_| cpu_task::remote(iters)).collect();
        let out = ok(unidist::get_all(&refs))?;
        let t_par = t.elapsed().as_secs_f64();
        check(out.iter().all(|v| *v == expected), "wrong cpu_work result")?;
        seq.push(t_seq);
        par.push(t_par);
        push(runs, t_par / t_seq);
    }
    let workers = unidist::num_cpus();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(vec![
        ("tasks", json!(tasks)),
        ("iters", json!(iters)),
        ("task_s", json!(median_of(&seq) / tasks as f64)),
        ("sequential_s", json!(seq)),
        ("parallel_s", json!(par)),
        ("workers", json!(workers)),
        (
            "ideal_ratio",
            json!(1.0 / tasks.min(workers).min(cores).max(1) as f64),
        ),
    ])
}

fn nested_fib(
    sz: Sizes,
    repeats: usize,
    runs: &Runs,
    progress: &Progress,
) -> Result<Fields, String> {
    let n = sz.fib_n;
    let expected = fib_plain(n);
    // A runtime that deadlocks on nested blocking gets does so already on fib(3).
    set_progress(progress, "warm-up fib(3)".into(), Some(sz.fib_warmup_limit));
    check(
        ok(unidist::get(&fib::remote(3)))? == 2,
        "fib(3) through tasks",
    )?;
    for i in 0..repeats {
        set_progress(progress, format!("run {} of fib({n})", i + 1), None);
        let t = Instant::now();
        let got = ok(unidist::get(&fib::remote(n)))?;
        let dt = t.elapsed().as_secs_f64();
        check(
            got == expected,
            &format!("fib({n}) returned {got}, expected {expected}"),
        )?;
        push(runs, dt);
    }
    Ok(vec![
        ("n", json!(n)),
        ("tasks", json!(2 * fib_plain(n + 1) - 1)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_large_rows_run_at_least_nine_times_and_the_others_as_asked() {
        assert_eq!(runs_of("bytes_round_trip", 5), LARGE_RUNS_MIN);
        assert_eq!(runs_of("task_sum_large", 3), LARGE_RUNS_MIN);
        assert_eq!(runs_of("vec_f64_by_ref", 12), 12);
        assert_eq!(runs_of("nested_fib", 5), 5);
        assert_eq!(runs_of("big_object", 5), 5);
        for row in LARGE_ROWS {
            assert!(
                WORKLOADS.iter().any(|(w, _)| *w == row),
                "{row} is not a workload"
            );
        }
    }
}
