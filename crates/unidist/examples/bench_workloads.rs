//! The benchmark workloads of `cargo xtask bench`, run through the public API on the backend
//! that `UNIDIST_BACKEND` selects.
//!
//! The nine rows have the names, units and sizes of `bench/peers/workloads.py`, so each can be set
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
//!
//! Every workload runs `--repeats` times after one untimed warm-up and is bounded by
//! `--time-limit` seconds; one that overruns is recorded as `timeout` with the runs it finished,
//! and the next workload still runs. The report (`--out`) is rewritten after every workload, so
//! a run killed from outside keeps what it measured. The same run measures the floors the
//! rows are compared with: one 64 MiB memcpy, and on MPI the raw 8-byte ping-pong and 64 MiB
//! bandwidth between rank 0 and rank 1.
//!
//! ```text
//! UNIDIST_BACKEND=pymp cargo run --release -p unidist --example bench_workloads -- --out r.json
//! MPICC=mpicc.mpich CARGO_TARGET_DIR=target/mpi-mpich \
//!     cargo build --release -p unidist --features mpi --example bench_workloads
//! UNIDIST_BACKEND=mpi UNIDIST_IS_MPI_SPAWN_WORKERS=false \
//!     mpiexec.mpich -n 3 target/mpi-mpich/release/examples/bench_workloads --out r.json
//! ```
//!
//! Under MPI SPMD every rank parses the arguments, but only rank 0 returns from `init` and
//! measures; the other ranks serve until it shuts down.

use std::hint::black_box;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use unidist::{ActorHandle, Buffer, ObjectRef};

/// Bytes of the large array: 64 MiB of `f64`.
const LARGE_BYTES: usize = 64 << 20;
/// An 8-byte value, as in the Python workloads.
const SMALL_VALUE: u64 = 0x0123_4567_89AB_CDEF;

const WORKLOADS: [&str; 9] = [
    "async_empty_tasks",
    "sync_round_trip",
    "put_get_small",
    "put_get_large",
    "task_sum_large",
    "actor_async_calls",
    "actor_sync_call",
    "cpu_scaling",
    "nested_fib",
];

// ---- task bodies ---------------------------------------------------------------------------

#[unidist::remote]
fn noop() {}

/// The sum of the array with eight independent accumulators. A plain `iter().sum()` is one
/// dependency chain of 8 Mi additions (about 4 ms here) where numpy's pairwise SIMD sum takes
/// under 2 ms; the row measures moving the array to a task, so the body should be as fast.
fn lanes_sum(v: &[f64]) -> f64 {
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
pub struct BenchActor {
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
    pub fn new() -> Self {
        BenchActor { count: 0 }
    }

    /// Counts one call and returns the count.
    pub fn bump(&mut self) -> u64 {
        self.count += 1;
        self.count
    }
}

// ---- sizes and options ---------------------------------------------------------------------

/// Sizes per mode: the Python workloads' sizes, except the CPU work, which is a Rust loop sized
/// so that one task takes 50 to 100 ms on a 2020s x86 core (measured: about 1 ns a step).
#[derive(Clone, Copy)]
struct Sizes {
    async_n: usize,
    sync_k: usize,
    small_k: usize,
    actor_n: usize,
    actor_k: usize,
    cpu_tasks: usize,
    cpu_iters: u64,
    fib_n: u64,
    fib_warmup_limit: f64,
}

const FULL: Sizes = Sizes {
    async_n: 1000,
    sync_k: 200,
    small_k: 500,
    actor_n: 1000,
    actor_k: 200,
    cpu_tasks: 8,
    cpu_iters: 80_000_000,
    fib_n: 20,
    fib_warmup_limit: 10.0,
};

const QUICK: Sizes = Sizes {
    async_n: 200,
    sync_k: 50,
    small_k: 100,
    actor_n: 200,
    actor_k: 50,
    cpu_tasks: 8,
    cpu_iters: 50_000_000,
    fib_n: 10,
    fib_warmup_limit: 5.0,
};

struct Options {
    out: Option<String>,
    mode: Option<String>,
    quick: bool,
    repeats: usize,
    time_limit: Option<f64>,
    only: Option<Vec<String>>,
}

const USAGE: &str = "usage: bench_workloads [--out FILE] [--mode LABEL] [--quick] [--repeats N] \
                     [--time-limit SECS] [--only W1,W2]";

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        out: None,
        mode: None,
        quick: false,
        repeats: 3,
        time_limit: None,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--out" => o.out = Some(value("--out")?),
            "--mode" => o.mode = Some(value("--mode")?),
            "--quick" => o.quick = true,
            "--repeats" => {
                let raw = value("--repeats")?;
                o.repeats = raw.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    format!("invalid --repeats {raw:?}: expected a whole number of at least 1")
                })?;
            }
            "--time-limit" => {
                let raw = value("--time-limit")?;
                o.time_limit =
                    Some(raw.parse().ok().filter(|s: &f64| *s > 0.0).ok_or_else(|| {
                        format!("invalid --time-limit {raw:?}: expected seconds above 0")
                    })?);
            }
            "--only" => {
                let raw = value("--only")?;
                let names: Vec<String> = raw.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = names.iter().find(|n| !WORKLOADS.contains(&n.as_str())) {
                    return Err(format!(
                        "invalid --only workload {bad:?}: expected some of {}",
                        WORKLOADS.join(", ")
                    ));
                }
                o.only = Some(names);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

// ---- measurement ---------------------------------------------------------------------------

/// Runs completed so far, shared with the thread that measures them, so a timeout keeps them.
type Runs = Arc<Mutex<Vec<f64>>>;

fn push(runs: &Runs, v: f64) {
    runs.lock().unwrap_or_else(|p| p.into_inner()).push(v);
}

fn check(cond: bool, what: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

fn ok<T>(r: unidist::Result<T>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

fn median_of(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `repeats` runs of `k` timed calls of `once`; each run contributes its median in µs.
fn latency_runs(
    repeats: usize,
    k: usize,
    runs: &Runs,
    mut once: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    for _ in 0..repeats {
        let mut lat = Vec::with_capacity(k);
        for _ in 0..k {
            let t = Instant::now();
            once()?;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        push(runs, median_of(&lat));
    }
    Ok(())
}

/// Parameters and extra fields of a row, as JSON object members.
type Fields = Vec<(String, String)>;

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

fn large_array() -> Buffer<f64> {
    (0..LARGE_BYTES / 8)
        .map(|i| i as f64)
        .collect::<Vec<f64>>()
        .into()
}

/// What a workload has recorded besides its runs while it goes: the step it is in.
type Progress = Arc<Mutex<Option<(String, Instant, Option<f64>)>>>;

fn set_progress(p: &Progress, label: String, limit: Option<f64>) {
    *p.lock().unwrap_or_else(|e| e.into_inner()) = Some((label, Instant::now(), limit));
}

fn w_async_empty_tasks(sz: Sizes, repeats: usize, runs: &Runs) -> Result<Fields, String> {
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
    Ok(vec![("n".into(), n.to_string())])
}

fn w_sync_round_trip(sz: Sizes, repeats: usize, runs: &Runs) -> Result<Fields, String> {
    ok(unidist::get(&noop::remote()))?;
    latency_runs(repeats, sz.sync_k, runs, || {
        ok(unidist::get(&noop::remote()))
    })?;
    Ok(vec![("k".into(), sz.sync_k.to_string())])
}

fn w_put_get_small(sz: Sizes, repeats: usize, runs: &Runs) -> Result<Fields, String> {
    ok(unidist::get(&unidist::put(SMALL_VALUE)))?;
    latency_runs(repeats, sz.small_k, runs, || {
        let back = ok(unidist::get(&unidist::put(SMALL_VALUE)))?;
        check(back == SMALL_VALUE, "value changed in put/get")
    })?;
    Ok(vec![
        ("k".into(), sz.small_k.to_string()),
        ("value_bytes".into(), "8".into()),
    ])
}

fn w_put_get_large(_sz: Sizes, repeats: usize, runs: &Runs) -> Result<Fields, String> {
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
    Ok(vec![("bytes".into(), LARGE_BYTES.to_string())])
}

fn w_task_sum_large(_sz: Sizes, repeats: usize, runs: &Runs) -> Result<Fields, String> {
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
        ("bytes".into(), LARGE_BYTES.to_string()),
        ("local_sum_s".into(), num(local_sum_s)),
    ])
}

fn w_actor_async_calls(sz: Sizes, repeats: usize, runs: &Runs) -> Result<Fields, String> {
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
    Ok(vec![("n".into(), n.to_string())])
}

fn w_actor_sync_call(sz: Sizes, repeats: usize, runs: &Runs) -> Result<Fields, String> {
    let a: ActorHandle<BenchActor> = BenchActor::remote();
    let mut count = ok(unidist::get(&a.bump()))?;
    latency_runs(repeats, sz.actor_k, runs, || {
        let got = ok(unidist::get(&a.bump()))?;
        check(got == count + 1, "actor call lost")?;
        count = got;
        Ok(())
    })?;
    ok(a.kill())?;
    Ok(vec![("k".into(), sz.actor_k.to_string())])
}

fn w_cpu_scaling(sz: Sizes, repeats: usize, runs: &Runs) -> Result<Fields, String> {
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
    let list = |v: &[f64]| {
        format!(
            "[{}]",
            v.iter().map(|x| num(*x)).collect::<Vec<_>>().join(", ")
        )
    };
    Ok(vec![
        ("tasks".into(), tasks.to_string()),
        ("iters".into(), iters.to_string()),
        ("task_s".into(), num(median_of(&seq) / tasks as f64)),
        ("sequential_s".into(), list(&seq)),
        ("parallel_s".into(), list(&par)),
        ("workers".into(), workers.to_string()),
        (
            "ideal_ratio".into(),
            num(1.0 / tasks.min(workers).min(cores).max(1) as f64),
        ),
    ])
}

fn w_nested_fib(
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
        ("n".into(), n.to_string()),
        ("tasks".into(), (2 * fib_plain(n + 1) - 1).to_string()),
    ])
}

fn unit(w: &str) -> &'static str {
    match w {
        "async_empty_tasks" => "tasks/s",
        "put_get_large" => "GB/s",
        "actor_async_calls" => "calls/s",
        "cpu_scaling" => "ratio",
        "task_sum_large" | "nested_fib" => "s",
        _ => "us",
    }
}

/// Which fields of a row are parameters (sizes); the rest are extra results.
fn is_param(key: &str) -> bool {
    matches!(key, "n" | "k" | "value_bytes" | "bytes" | "tasks" | "iters")
}

// ---- rows and the report -------------------------------------------------------------------

struct Row {
    workload: &'static str,
    status: String,
    runs: Vec<f64>,
    elapsed: Option<f64>,
    fields: Fields,
    stuck_in: Option<String>,
    after_timeout_of: Vec<String>,
}

impl Row {
    fn json(&self) -> String {
        let done = self.status == "ok" && !self.runs.is_empty();
        let stat = |f: fn(&[f64]) -> f64| {
            if done {
                num(f(&self.runs))
            } else {
                "null".into()
            }
        };
        let mut out =
            format!(
            "{{\"workload\": \"{}\", \"unit\": \"{}\", \"median\": {}, \"min\": {}, \"max\": {}, \
             \"runs\": [{}], \"status\": \"{}\"",
            self.workload,
            unit(self.workload),
            stat(median_of),
            stat(|v| v.iter().copied().fold(f64::INFINITY, f64::min)),
            stat(|v| v.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            self.runs.iter().map(|v| num(*v)).collect::<Vec<_>>().join(", "),
            escape(&self.status)
        );
        if let Some(e) = self.elapsed {
            out.push_str(&format!(
                ", \"elapsed_s\": {}",
                num((e * 1e3).round() / 1e3)
            ));
        }
        let object = |fields: Vec<&(String, String)>| {
            fields
                .iter()
                .map(|(k, v)| format!("\"{k}\": {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (params, extra): (Vec<_>, Vec<_>) = self.fields.iter().partition(|(k, _)| is_param(k));
        if !params.is_empty() {
            out.push_str(&format!(", \"params\": {{{}}}", object(params)));
        }
        if !extra.is_empty() {
            out.push_str(&format!(", \"extra\": {{{}}}", object(extra)));
        }
        if let Some(s) = &self.stuck_in {
            out.push_str(&format!(", \"stuck_in\": \"{}\"", escape(s)));
        }
        if !self.after_timeout_of.is_empty() {
            let names: Vec<String> = self
                .after_timeout_of
                .iter()
                .map(|w| format!("\"{w}\""))
                .collect();
            out.push_str(&format!(", \"after_timeout_of\": [{}]", names.join(", ")));
        }
        out.push('}');
        out
    }
}

fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if c.is_control() => vec![' '],
            c => vec![c],
        })
        .collect()
}

struct Report {
    mode: String,
    backend: String,
    quick: bool,
    repeats: usize,
    time_limit: f64,
    status: String,
    init_s: f64,
    workers: usize,
    floors: Fields,
    rows: Vec<Row>,
}

impl Report {
    fn json(&self) -> String {
        let floors = self
            .floors
            .iter()
            .map(|(k, v)| format!("\"{k}\": {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows: Vec<String> = self
            .rows
            .iter()
            .map(|r| format!("    {}", r.json()))
            .collect();
        format!(
            "{{\n  \"system\": \"unidist-rs\",\n  \"mode\": \"{}\",\n  \"backend\": \"{}\",\n  \
             \"quick\": {},\n  \"repeats\": {},\n  \"time_limit_s\": {},\n  \"status\": \"{}\",\n  \
             \"init_s\": {},\n  \"versions\": {{\"unidist-rs\": \"{}\", \"workers\": {}}},\n  \
             \"floors\": {{{}}},\n  \"rows\": [\n{}\n  ]\n}}\n",
            escape(&self.mode),
            self.backend,
            self.quick,
            self.repeats,
            num(self.time_limit),
            escape(&self.status),
            num((self.init_s * 1e3).round() / 1e3),
            env!("CARGO_PKG_VERSION"),
            self.workers,
            floors,
            rows.join(",\n")
        )
    }

    fn write(&self, out: Option<&str>) {
        let Some(path) = out else { return };
        let tmp = format!("{path}.tmp{}", std::process::id());
        let written = std::fs::write(&tmp, self.json()).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            eprintln!("bench_workloads: cannot write the report {path:?}: {e}");
        }
    }
}

/// The floors this process can measure: one 64 MiB memcpy (best of 5), and on MPI the raw
/// rsmpi ping-pong and bandwidth between rank 0 and rank 1.
fn measure_floors(backend: &str) -> Fields {
    let src = vec![3u8; LARGE_BYTES];
    let mut dst = vec![1u8; LARGE_BYTES];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        best = best.min(t.elapsed().as_secs_f64());
    }
    let mut floors = vec![(
        "memcpy_64mib_gbs".to_string(),
        num(LARGE_BYTES as f64 / best / 1e9),
    )];
    if backend == "mpi" {
        floors.extend(mpi_floors());
    }
    floors
}

#[cfg(feature = "mpi")]
fn mpi_floors() -> Fields {
    match unidist_mpi::raw_floors(2000, LARGE_BYTES as u64) {
        Ok((half_rtt, bw)) => vec![
            ("mpi_rtt_8b_us".into(), num(2.0 * half_rtt * 1e6)),
            ("mpi_bw_64mib_gbs".into(), num(bw / 1e9)),
        ],
        Err(e) => {
            eprintln!("bench_workloads: the raw MPI floors could not be measured: {e}");
            vec![]
        }
    }
}

#[cfg(not(feature = "mpi"))]
fn mpi_floors() -> Fields {
    vec![]
}

/// Runs one workload on its own thread under `limit` seconds (a step may set a shorter limit).
fn run_limited(
    workload: &'static str,
    sz: Sizes,
    repeats: usize,
    limit: f64,
) -> (String, Vec<f64>, Fields, Option<String>) {
    let runs: Runs = Arc::default();
    let progress: Progress = Arc::default();
    let (tx, rx) = mpsc::channel();
    {
        let runs = runs.clone();
        let progress = progress.clone();
        std::thread::spawn(move || {
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match workload {
                    "async_empty_tasks" => w_async_empty_tasks(sz, repeats, &runs),
                    "sync_round_trip" => w_sync_round_trip(sz, repeats, &runs),
                    "put_get_small" => w_put_get_small(sz, repeats, &runs),
                    "put_get_large" => w_put_get_large(sz, repeats, &runs),
                    "task_sum_large" => w_task_sum_large(sz, repeats, &runs),
                    "actor_async_calls" => w_actor_async_calls(sz, repeats, &runs),
                    "actor_sync_call" => w_actor_sync_call(sz, repeats, &runs),
                    "cpu_scaling" => w_cpu_scaling(sz, repeats, &runs),
                    _ => w_nested_fib(sz, repeats, &runs, &progress),
                }));
            let result = result.unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".into());
                Err(format!("panicked: {msg}"))
            });
            let _ = tx.send(result);
        });
    }
    let started = Instant::now();
    let outcome = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(r) => break Some(r),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Some(Err("the workload thread ended without a result".into()))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let step = progress.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let step_over = step
            .as_ref()
            .is_some_and(|(_, at, lim)| lim.is_some_and(|l| at.elapsed().as_secs_f64() >= l));
        if started.elapsed().as_secs_f64() >= limit || step_over {
            break None;
        }
    };
    let runs = runs.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let stuck = || {
        progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(label, _, _)| label.clone())
    };
    match outcome {
        Some(Ok(fields)) => ("ok".into(), runs, fields, None),
        Some(Err(e)) => (format!("failed: {e}"), runs, vec![], None),
        None => ("timeout".into(), runs, vec![], stuck()),
    }
}

fn main() {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench_workloads: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let sizes = if options.quick { QUICK } else { FULL };
    let time_limit = options
        .time_limit
        .unwrap_or(if options.quick { 15.0 } else { 60.0 });
    let workloads: Vec<&'static str> = WORKLOADS
        .iter()
        .copied()
        .filter(|w| {
            options
                .only
                .as_ref()
                .is_none_or(|o| o.iter().any(|x| x == w))
        })
        .collect();

    // On MPI SPMD only rank 0 returns from here; nothing is measured or written before.
    let t0 = Instant::now();
    let init = unidist::init();
    let init_s = t0.elapsed().as_secs_f64();
    let backend = unidist::config::Backend::get()
        .map(|b| b.to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mut report = Report {
        mode: options.mode.clone().unwrap_or_else(|| backend.clone()),
        backend: backend.clone(),
        quick: options.quick,
        repeats: options.repeats,
        time_limit,
        status: "running".into(),
        init_s,
        workers: 0,
        floors: vec![],
        rows: workloads
            .iter()
            .map(|w| Row {
                workload: w,
                status: "pending".into(),
                runs: vec![],
                elapsed: None,
                fields: vec![],
                stuck_in: None,
                after_timeout_of: vec![],
            })
            .collect(),
    };
    let tag = format!("[unidist-rs-{}]", report.mode);
    if let Err(e) = init {
        report.status = format!("init failed: {e}");
        for row in &mut report.rows {
            row.status = format!("not run: runtime init failed: {e}");
        }
        report.write(options.out.as_deref());
        eprintln!("{tag} init failed: {e}");
        std::process::exit(1);
    }
    report.workers = unidist::num_cpus();
    report.floors = measure_floors(&backend);
    report.write(options.out.as_deref());

    let mut timed_out: Vec<String> = Vec::new();
    for i in 0..report.rows.len() {
        let w = report.rows[i].workload;
        report.rows[i].status = "running".into();
        report.write(options.out.as_deref());
        let started = Instant::now();
        let (status, runs, fields, stuck) = run_limited(w, sizes, options.repeats, time_limit);
        let elapsed = started.elapsed().as_secs_f64();
        let row = &mut report.rows[i];
        row.status = status;
        row.runs = runs;
        row.fields = fields;
        row.elapsed = Some(elapsed);
        row.after_timeout_of = timed_out.clone();
        if row.status == "timeout" {
            row.stuck_in = stuck;
            timed_out.push(w.to_string());
        }
        let shown = if row.status == "ok" && !row.runs.is_empty() {
            format!("{:.4} {}", median_of(&row.runs), unit(w))
        } else {
            row.status.chars().take(90).collect()
        };
        eprintln!("{tag} {w:<18} {shown} ({elapsed:.1}s)");
        report.write(options.out.as_deref());
    }

    // A workload left running after its timeout may keep the runtime from shutting down.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(unidist::shutdown());
    });
    let limit = if timed_out.is_empty() { 60 } else { 10 };
    report.status = match rx.recv_timeout(Duration::from_secs(limit)) {
        Ok(Ok(())) => "done".into(),
        Ok(Err(e)) => format!("done; shutdown failed: {e}"),
        Err(_) => format!("done; shutdown did not finish within {limit} s"),
    };
    report.write(options.out.as_deref());
    // The caller knows from this line that the report is complete and the process may go.
    println!("bench_workloads: done ({})", report.status);
    if report.status != "done" || !timed_out.is_empty() {
        // Threads stuck in the runtime must not keep the process (and its MPI job) alive.
        std::process::exit(0);
    }
}
