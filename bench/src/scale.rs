//! `unidist-bench scale`: what a job of many ranks costs, measured on rank 0 (MPI, SPMD).
//!
//! ```text
//! unidist-bench scale --out FILE [--tasks N] [--rounds R]
//! ```
//!
//! It measures `init` (from just before the call to its return on rank 0), then `R` rounds of
//! `N` empty tasks submitted at once and gathered with `get_all`: the rate, and the CPU time per
//! task of rank 0's main thread (user and system, from `/proc/thread-self/stat`): submitting,
//! which includes choosing the worker, the per-task scheduling cost that would grow with the
//! number of workers if anything did. Last, the resident memory of
//! every rank of the job that this machine can see (processes running this same executable;
//! on the simulated cluster every rank is on this machine). `cargo xtask bench --only scale`
//! runs it with 2 to 32 ranks across 8 simulated hosts.

use std::time::Instant;

use serde_json::json;
use unidist::ObjectRef;

use crate::measure::{median_of, parse_out_tasks_rounds, write_json};
use crate::suite::DONE;

pub(crate) const USAGE: &str = "unidist-bench scale --out FILE [--tasks N] [--rounds R]";

#[unidist::remote]
fn empty() {}

/// The CPU time (user + system) of the calling thread so far, in seconds, from
/// `/proc/thread-self/stat`: on rank 0's main thread, what submitting and scheduling cost,
/// without the communication thread (whose polling grows with the wall time, not the work).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; the clock
    // ticks 100 times a second on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// One round: `n` empty tasks at once, then all gathered; (tasks/s, rank 0's main-thread CPU
/// µs per task).
fn round(n: usize) -> Result<(f64, f64), String> {
    let cpu = cpu_seconds();
    let started = Instant::now();
    let refs: Vec<ObjectRef<()>> = (0..n).map(|_| empty::remote()).collect();
    let got = unidist::get_all(&refs).map_err(|e| e.to_string())?;
    if got.len() != n {
        return Err(format!("{} results for {n} tasks", got.len()));
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    Ok((n as f64 / wall, cpu * 1e6 / n as f64))
}

/// The resident memory in MiB of every process running this executable, this one included.
fn ranks_rss_mib() -> Vec<f64> {
    let Ok(me) = std::fs::read_link("/proc/self/exe") else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| std::fs::read_link(e.path().join("exe")).is_ok_and(|x| x == me))
        .filter_map(|e| {
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib / 1024.0)
        })
        .collect()
}

fn parse(args: &[String]) -> Result<(String, usize, usize), String> {
    parse_out_tasks_rounds(args, USAGE, (10_000, 3))
}

pub(crate) fn main(args: &[String]) -> i32 {
    let (out, tasks, rounds) = match parse(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("unidist-bench scale: {e}");
            return 2;
        }
    };
    let started = Instant::now();
    if let Err(e) = unidist::init() {
        eprintln!("unidist-bench scale: init failed: {e}");
        return 1;
    }
    let init_s = started.elapsed().as_secs_f64();
    let result = (|| {
        // Warm-up: every worker connected, code paged in.
        round(tasks.min(2_000))?;
        let mut rates = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..rounds {
            let (r, c) = round(tasks)?;
            rates.push(r);
            cpu.push(c);
        }
        Ok::<_, String>((rates, cpu))
    })();
    let code = match result {
        Ok((rates, cpu)) => {
            let rss = ranks_rss_mib();
            let doc = json!({
                "workers": unidist::num_cpus(),
                "init_s": init_s,
                "tasks": tasks,
                "tasks_per_s": rates,
                "tasks_per_s_median": median_of(&rates),
                "rank0_cpu_us_per_task": cpu,
                "rank0_cpu_us_per_task_median": median_of(&cpu),
                "rss_mib": rss,
            });
            match write_json(&out, &doc) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("unidist-bench scale: {e}");
                    1
                }
            }
        }
        Err(e) => {
            eprintln!("unidist-bench scale: {e}");
            1
        }
    };
    if let Err(e) = unidist::shutdown() {
        eprintln!("unidist-bench scale: shutdown failed: {e}");
    }
    println!("{DONE}");
    code
}
