//! The timeline and stats of a 3-rank MPI job, checked from rank 0: run by the trace rows of
//! `cargo xtask test-backends` (`xtask/src/trace_row.rs`) with `UNIDIST_TIMELINE` set.
//!
//! Rank 0 submits tasks, passes a 1 MiB object to two of them and calls an actor, then checks
//! `stats()` (counted on every rank and gathered) against what it did. After `shutdown` it reads
//! the trace file, parses it as JSON and checks that every task appears exactly once with a
//! positive duration on a worker rank, as many on each rank as that rank counted; one process
//! per rank, named with its host; flow starts and ends that pair up; object transfers with their
//! bytes; and the clock alignment of every rank in the metadata. Exit status 0 when every check
//! holds, 1 with the failed check on stderr otherwise.
//!
//! Bad input, by the first argument:
//! - `bad-path`: `UNIDIST_TIMELINE` names a file in a directory that does not exist; `init`
//!   must fail on every rank, naming the variable and the path.
//! - `lost-file`: the trace's directory is removed while the job runs (once a task has run on every
//!   worker, since each rank checks it in its `init`); `shutdown` must fail
//!   naming the path, and the job must still end.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value as Json;
use unidist::ActorHandle;

/// Tasks of `work`, and tasks of `measure` that read the 1 MiB object.
const WORK: usize = 12;
const MEASURE: usize = 2;
/// Calls of `Acc::add`.
const CALLS: usize = 3;
const BLOB: usize = 1 << 20;
/// Workers of the job: the trace rows run 3 SPMD ranks, or rank 0 spawning 2.
const WORKERS: usize = 2;

#[unidist::remote]
fn work(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

// The argument is the stored `Vec<u8>` object, read in place: a slice is not a stored type.
#[allow(clippy::ptr_arg)]
#[unidist::remote]
fn measure(data: &Vec<u8>) -> usize {
    data.len()
}

pub struct Acc {
    n: i64,
}

#[unidist::actor]
impl Acc {
    pub fn new(start: i64) -> Self {
        Acc { n: start }
    }

    pub fn add(&mut self, x: i64) -> i64 {
        self.n += x;
        self.n
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => {
            println!("trace: every check passed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("trace: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Fails with `message` unless `cond` holds.
fn check(cond: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(message())
    }
}

fn run() -> Result<(), String> {
    let path = std::env::var("UNIDIST_TIMELINE")
        .map_err(|_| "UNIDIST_TIMELINE is not set; this program checks its trace".to_string())?;
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("bad-path") => return bad_path(&path),
        Some("lost-file") => return lost_file(&path),
        Some("paused") => return paused(&path),
        Some(other) => {
            return Err(format!(
                "unknown mode {other:?} (accepted: bad-path, lost-file, paused)"
            ))
        }
    }
    unidist::init().map_err(|e| format!("init failed: {e}"))?;
    let pids = do_the_work().map_err(|e| format!("the work failed: {e}"))?;
    let stats = unidist::stats().map_err(|e| format!("stats() failed: {e}"))?;
    println!("{stats}");
    check_stats(&stats)?;
    unidist::shutdown().map_err(|e| format!("shutdown failed: {e}"))?;
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read the trace {path}: {e}"))?;
    let trace: Json =
        serde_json::from_str(&text).map_err(|e| format!("the trace is not JSON: {e}"))?;
    check_trace(&trace, &stats, &pids)
}

/// `init` with a trace path in a missing directory fails, naming the variable and the path.
fn bad_path(path: &str) -> Result<(), String> {
    match unidist::init() {
        Ok(()) => Err(format!("init accepted UNIDIST_TIMELINE={path}")),
        Err(e) => {
            let m = e.to_string();
            check(m.contains("UNIDIST_TIMELINE") && m.contains(path), || {
                format!("init's error does not name UNIDIST_TIMELINE and {path}: {m}")
            })
        }
    }
}

/// A trace that cannot be written at shutdown is an error from `shutdown` naming the path;
/// the job still ends (the caller bounds it).
fn lost_file(path: &str) -> Result<(), String> {
    unidist::init().map_err(|e| format!("init failed: {e}"))?;
    every_worker_started()?;
    let dir = std::path::Path::new(path)
        .parent()
        .ok_or_else(|| format!("{path} has no directory"))?;
    std::fs::remove_dir_all(dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    match unidist::shutdown() {
        Ok(()) => Err(format!("shutdown wrote {path} into a removed directory")),
        Err(e) => check(e.to_string().contains(path), || {
            format!("shutdown's error does not name {path}: {e}")
        }),
    }
}

#[unidist::remote]
fn unrecorded(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// The recorder paused on every rank (what the cost benchmark does between rounds): tasks run
/// while it is paused leave no event on any rank; after it resumes, tasks are recorded again.
fn paused(path: &str) -> Result<(), String> {
    unidist::init().map_err(|e| format!("init failed: {e}"))?;
    every_worker_started()?;
    let switch = |on: bool| {
        unidist_core::runtime::current()
            .ok_or_else(|| "no runtime after init".to_string())?
            .set_recording(on)
            .map_err(|e| format!("set_recording({on}) failed: {e}"))
    };
    switch(false)?;
    let refs: Vec<_> = (0..4 * WORKERS).map(|_| unrecorded::remote(2)).collect();
    let hidden: BTreeSet<u32> = unidist::get_all(&refs)
        .map_err(|e| format!("a task failed: {e}"))?
        .into_iter()
        .collect();
    switch(true)?;
    let refs: Vec<_> = (0..WORK as u64).map(|i| work::remote(2 + i % 3)).collect();
    unidist::get_all(&refs).map_err(|e| format!("a task failed: {e}"))?;
    unidist::shutdown().map_err(|e| format!("shutdown failed: {e}"))?;
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read the trace {path}: {e}"))?;
    let trace: Json =
        serde_json::from_str(&text).map_err(|e| format!("the trace is not JSON: {e}"))?;
    let spans = |suffix: &str| {
        events(&trace).map(|es| {
            es.iter()
                .filter(|e| e["ph"] == "X" && e["cat"] == "task")
                .filter(|e| e["name"].as_str().is_some_and(|n| n.ends_with(suffix)))
                .count()
        })
    };
    let (hidden_spans, recorded) = (spans("unrecorded")?, spans("work")?);
    check(hidden_spans == 0, || {
        format!(
            "trace: {hidden_spans} spans of tasks run while the recorder was paused (on ranks \
             whose processes were {hidden:?})"
        )
    })?;
    // The work tasks before the pause (every_worker_started) and after it.
    check(recorded > WORK, || {
        format!("trace: {recorded} work spans, at least {WORK} ran after the recorder resumed")
    })
}

/// Returns once a task has run on each of the job's [`WORKERS`] workers: every rank checks the
/// trace's directory in its own `init`, so the directory may only be removed after that.
fn every_worker_started() -> Result<(), String> {
    let mut pids = BTreeSet::new();
    for _ in 0..100 {
        let refs: Vec<_> = (0..2 * WORKERS).map(|_| work::remote(5)).collect();
        let got = unidist::get_all(&refs).map_err(|e| format!("a task failed: {e}"))?;
        pids.extend(got);
        if pids.len() >= WORKERS {
            break;
        }
    }
    check(!pids.contains(&std::process::id()), || {
        "a task ran on rank 0".to_string()
    })?;
    check(pids.len() == WORKERS, || {
        format!(
            "tasks ran in {} processes, not on each of the {WORKERS} workers: {pids:?}",
            pids.len()
        )
    })
}

/// Runs the work; returns the process ids the `work` tasks ran in.
fn do_the_work() -> unidist::Result<BTreeSet<u32>> {
    let refs: Vec<_> = (0..WORK as u64).map(|i| work::remote(5 + i % 3)).collect();
    let blob = unidist::put(vec![1u8; BLOB]);
    let sizes: Vec<_> = (0..MEASURE).map(|_| measure::remote(&blob)).collect();
    let acc: ActorHandle<Acc> = Acc::remote(0);
    let calls: Vec<_> = (1..=CALLS as i64).map(|x| acc.add(x)).collect();
    let pids: BTreeSet<u32> = unidist::get_all(&refs)?.into_iter().collect();
    for s in unidist::get_all(&sizes)? {
        assert_eq!(s, BLOB, "measure read the wrong size");
    }
    let sums = unidist::get_all(&calls)?;
    assert_eq!(sums.last().copied(), Some(6), "the actor's sums: {sums:?}");
    Ok(pids)
}

fn check_stats(stats: &unidist::Stats) -> Result<(), String> {
    let tasks = (WORK + MEASURE) as u64;
    let want = [
        ("tasks_submitted", stats.tasks_submitted, tasks),
        ("tasks_finished", stats.tasks_finished, tasks),
        ("tasks_failed", stats.tasks_failed, 0),
        ("actor_calls", stats.actor_calls, CALLS as u64),
        // The put, every task output and every method output.
        (
            "objects_stored",
            stats.objects_stored,
            1 + tasks + CALLS as u64,
        ),
    ];
    for (name, got, expected) in want {
        check(got == expected, || {
            format!("stats: {name} is {got}, the program did {expected}\n{stats}")
        })?;
    }
    check(stats.bytes_moved >= BLOB as u64, || {
        format!(
            "stats: bytes_moved is {} after passing {BLOB} bytes to a worker",
            stats.bytes_moved
        )
    })?;
    let names: Vec<&str> = stats.workers.iter().map(|w| w.name.as_str()).collect();
    check(names == ["rank 0", "rank 1", "rank 2"], || {
        format!("stats: one row per rank expected, got {names:?}")
    })?;
    let on_workers: u64 = stats.workers[1..].iter().map(|w| w.tasks_finished).sum();
    check(
        on_workers == tasks && stats.workers[0].tasks_finished == 0,
        || format!("stats: the workers finished {on_workers} of {tasks} tasks\n{stats}"),
    )
}

/// The events of the trace.
fn events(trace: &Json) -> Result<&Vec<Json>, String> {
    trace["traceEvents"]
        .as_array()
        .ok_or_else(|| "the trace has no traceEvents array".to_string())
}

fn check_trace(trace: &Json, stats: &unidist::Stats, pids: &BTreeSet<u32>) -> Result<(), String> {
    let events = events(trace)?;
    let of = |ph: &'static str| events.iter().filter(move |e| e["ph"] == ph);
    check_processes(of("M").collect())?;
    // Tasks: each exactly once, positive duration, on a worker rank, as many per rank as it
    // counted.
    let tasks: Vec<&Json> = of("X").filter(|e| e["cat"] == "task").collect();
    let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_rank: BTreeMap<u64, u64> = BTreeMap::new();
    for t in &tasks {
        let name = t["name"].as_str().unwrap_or_default().to_string();
        let dur = t["dur"].as_f64().unwrap_or(0.0);
        let pid = t["pid"].as_u64().unwrap_or(0);
        check(dur > 0.0, || {
            format!("trace: task {name} has duration {dur}")
        })?;
        check((1..=2).contains(&pid), || {
            format!("trace: task {name} ran on pid {pid}, not a worker rank")
        })?;
        *by_name.entry(name).or_default() += 1;
        *by_rank.entry(pid).or_default() += 1;
    }
    let count = |suffix: &str| {
        by_name
            .iter()
            .filter(|(n, _)| n.ends_with(suffix))
            .map(|(_, c)| *c)
            .sum::<usize>()
    };
    check(
        count("work") == WORK && count("measure") == MEASURE && tasks.len() == WORK + MEASURE,
        || {
            format!(
                "trace: tasks by name {by_name:?}; the program ran {WORK} work, {MEASURE} measure"
            )
        },
    )?;
    for w in &stats.workers[1..] {
        let rank: u64 = w
            .name
            .trim_start_matches("rank ")
            .parse()
            .unwrap_or(u64::MAX);
        let seen = by_rank.get(&rank).copied().unwrap_or(0);
        check(seen == w.tasks_finished, || {
            format!(
                "trace: rank {rank} has {seen} task events but counted {} finished tasks",
                w.tasks_finished
            )
        })?;
    }
    check(by_rank.len() == pids.len(), || {
        format!(
            "trace: tasks on ranks {by_rank:?}, but they ran in {} processes",
            pids.len()
        )
    })?;
    let calls = of("X").filter(|e| e["cat"] == "actor_call").count();
    check(calls == CALLS, || {
        format!("trace: {calls} actor calls, the program made {CALLS}")
    })?;
    check_flows(of("s").collect(), of("f").collect())?;
    let moved = of("i")
        .filter(|e| e["cat"] == "transfer")
        .any(|e| e["args"]["bytes"].as_u64().unwrap_or(0) >= BLOB as u64);
    check(moved, || {
        "trace: no transfer of the 1 MiB object".to_string()
    })?;
    check_clocks(trace)
}

/// One process per rank (pids 0, 1, 2), each named with its rank and the host name.
fn check_processes(meta: Vec<&Json>) -> Result<(), String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let names: BTreeMap<u64, &str> = meta
        .iter()
        .filter(|m| m["name"] == "process_name")
        .map(|m| {
            (
                m["pid"].as_u64().unwrap_or(u64::MAX),
                m["args"]["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    check(names.keys().copied().eq(0..3), || {
        format!(
            "trace: process pids {:?}, expected one per rank 0..3",
            names.keys()
        )
    })?;
    for (pid, name) in &names {
        check(
            name.contains(&format!("rank {pid}")) && name.contains(&host),
            || {
                format!(
                    "trace: process {pid} is named {name:?}, without its rank and host {host:?}"
                )
            },
        )?;
    }
    Ok(())
}

/// Every flow start has exactly one end and the other way round; starts are on rank 0 (the
/// program submits everything there), ends on the worker that ran the call.
fn check_flows(starts: Vec<&Json>, ends: Vec<&Json>) -> Result<(), String> {
    let ids = |v: &[&Json]| -> BTreeMap<u64, (usize, u64)> {
        let mut m = BTreeMap::new();
        for e in v {
            let id = e["id"].as_u64().unwrap_or(0);
            let entry = m.entry(id).or_insert((0, e["pid"].as_u64().unwrap_or(0)));
            entry.0 += 1;
        }
        m
    };
    let (s, f) = (ids(&starts), ids(&ends));
    check(
        s.values().all(|(n, _)| *n == 1) && f.values().all(|(n, _)| *n == 1),
        || "trace: a flow id starts or ends more than once".to_string(),
    )?;
    check(s.keys().eq(f.keys()), || {
        let unended: Vec<_> = s.keys().filter(|k| !f.contains_key(k)).collect();
        let unstarted: Vec<_> = f.keys().filter(|k| !s.contains_key(k)).collect();
        format!("trace: flows without an end {unended:?}, ends without a start {unstarted:?}")
    })?;
    // Tasks, the actor's creation and its calls.
    let want = WORK + MEASURE + 1 + CALLS;
    check(s.len() == want, || {
        format!(
            "trace: {} flows, the program submitted {want} calls",
            s.len()
        )
    })?;
    check(
        s.values().all(|(_, pid)| *pid == 0) && f.values().all(|(_, pid)| *pid != 0),
        || "trace: a flow does not go from rank 0 to a worker".to_string(),
    )
}

/// The clock alignment of every rank: rank 0 is the reference, the workers have a positive
/// residual error (half a measured round trip).
fn check_clocks(trace: &Json) -> Result<(), String> {
    let clocks = trace["otherData"]["clocks"]
        .as_array()
        .ok_or_else(|| "trace: no clocks in otherData".to_string())?;
    check(clocks.len() == 3, || {
        format!("trace: {} clock entries, expected 3", clocks.len())
    })?;
    for c in clocks {
        let rank = c["rank"].as_u64().unwrap_or(u64::MAX);
        let error = c["error_us"].as_f64().unwrap_or(-1.0);
        let offset_ok = c["offset_us"].as_f64().is_some_and(f64::is_finite);
        let error_ok = if rank == 0 {
            error == 0.0
        } else {
            error > 0.0 && error < 1e6
        };
        check(offset_ok && error_ok, || {
            format!("trace: clock entry {c} is not a measured alignment")
        })?;
    }
    Ok(())
}
