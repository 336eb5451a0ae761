//! Measurement helpers shared by the suites: runs kept across a timeout, medians, latency
//! loops, and running one workload on its own thread under a time limit.

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::workloads::{self, Fields, Sizes};

/// Runs completed so far, shared with the thread that measures them, so a timeout keeps them.
pub(crate) type Runs = Arc<Mutex<Vec<f64>>>;

/// What a workload is doing while it goes: the step, since when, and the step's own limit.
pub(crate) type Progress = Arc<Mutex<Option<(String, Instant, Option<f64>)>>>;

pub(crate) fn push(runs: &Runs, v: f64) {
    runs.lock().unwrap_or_else(|p| p.into_inner()).push(v);
}

pub(crate) fn set_progress(p: &Progress, label: String, limit: Option<f64>) {
    *p.lock().unwrap_or_else(|e| e.into_inner()) = Some((label, Instant::now(), limit));
}

pub(crate) fn check(cond: bool, what: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

pub(crate) fn ok<T>(r: unidist::Result<T>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

/// The median; the mean of the middle two for an even count.
pub(crate) fn median_of(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The upper median (the middle value, the higher one of the two for an even count), as the
/// floor benchmarks report it.
pub(crate) fn upper_median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Wall time of `f` in seconds.
pub(crate) fn timed(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// `repeats` runs of `k` timed calls of `once`; each run contributes its median in µs.
pub(crate) fn latency_runs(
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

/// How a workload run under a limit ended: its status, runs, fields and, on a timeout, the
/// step it was stuck in.
pub(crate) struct Limited {
    pub status: String,
    pub runs: Vec<f64>,
    pub fields: Fields,
    pub stuck_in: Option<String>,
}

/// Runs one workload on its own thread under `limit` seconds (a step may set a shorter limit).
pub(crate) fn run_limited(
    workload: &'static str,
    sz: Sizes,
    repeats: usize,
    limit: f64,
) -> Limited {
    let runs: Runs = Arc::default();
    let progress: Progress = Arc::default();
    let (tx, rx) = mpsc::channel();
    {
        let runs = runs.clone();
        let progress = progress.clone();
        std::thread::spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                workloads::run(workload, sz, repeats, &runs, &progress)
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
    let (status, fields, stuck_in) = match outcome {
        Some(Ok(fields)) => ("ok".into(), fields, None),
        Some(Err(e)) => (format!("failed: {e}"), vec![], None),
        None => {
            let stuck = progress
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|(label, _, _)| label.clone());
            ("timeout".into(), vec![], stuck)
        }
    };
    Limited {
        status,
        runs,
        fields,
        stuck_in,
    }
}

/// The start of a suite that measures on rank 0: the parsed arguments, or their error printed
/// under `suite` (exit code 2); then `unidist::init()`, or its error (exit code 1). Under MPI
/// SPMD only rank 0 returns from `init`; the other ranks serve inside it.
pub(crate) fn parse_then_init<T>(suite: &str, parsed: Result<T, String>) -> Result<T, i32> {
    let parsed = parsed.map_err(|e| {
        eprintln!("unidist-bench {suite}: {e}");
        2
    })?;
    unidist::init().map_err(|e| {
        eprintln!("unidist-bench {suite}: init failed: {e}");
        1
    })?;
    Ok(parsed)
}

/// Writes `doc` to `path` through a temporary file, so a reader never sees half a report.
pub(crate) fn write_json(path: &str, doc: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())? + "\n";
    let tmp = format!("{path}.tmp{}", std::process::id());
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write the report {path:?}: {e}"))
}

/// Parses `--out FILE [--tasks N] [--rounds R]`, with the given defaults; errors end with
/// `usage`.
pub(crate) fn parse_out_tasks_rounds(
    args: &[String],
    usage: &str,
    (mut tasks, mut rounds): (usize, usize),
) -> Result<(String, usize, usize), String> {
    let mut out = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or(format!("{flag} needs a value"));
        let count = |flag: &str, raw: String| {
            raw.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(format!("{flag} {raw:?}: a positive integer is accepted"))
        };
        match arg.as_str() {
            "--out" => out = Some(value("--out")?),
            "--tasks" => tasks = count("--tasks", value("--tasks")?)?,
            "--rounds" => rounds = count("--rounds", value("--rounds")?)?,
            other => return Err(format!("unknown argument {other:?}; usage: {usage}")),
        }
    }
    Ok((out.ok_or("--out is required")?, tasks, rounds))
}
