//! Lamellar on the workloads of `unidist-bench workloads` whose meaning carries over to active
//! messages, so that `cargo xtask bench` can put the Rust HPC runtime beside this project.
//!
//! | row | what is timed | unit |
//! |---|---|---|
//! | `sync_round_trip` | one empty active message to PE 1 and its return, K times; median | µs |
//! | `async_empty_tasks` | N empty active messages spread over PEs 1.., then waiting for all | tasks/s |
//! | `nested_fib` | fib(20) where every call is an active message that launches two more and awaits them | s |
//! | `bytes_round_trip` | a 64 MiB `Vec<u8>` carried by an active message to PE 1, which returns it | s |
//!
//! PE 0 plays the driver, as rank 0 does in this project's MPI SPMD mode; the other PEs run the
//! messages. Run with Lamellar's own environment: `LAMELLAR_BACKEND=shmem`, `LAMELLAR_NUM_PES`,
//! `LAMELLAR_PE_ID`, `LAMELLAR_JOB_ID` per process (what `cargo xtask bench` sets), or alone for
//! its single-process `local` lamellae.
//!
//! Usage: `unidist-bench-lamellar [--out FILE] [--repeats N] [--quick]`; PE 0 writes the rows
//! as JSON in the shape `unidist-bench workloads` writes.

use std::time::Instant;

use lamellar::active_messaging::prelude::*;
use serde_json::{json, Value};

#[lamellar::AmData(Debug, Clone)]
struct Empty {}

#[lamellar::am]
impl LamellarAM for Empty {
    async fn exec(&self) {}
}

#[lamellar::AmData(Debug, Clone)]
struct Fib {
    n: u64,
}

#[lamellar::am]
impl LamellarAM for Fib {
    async fn exec(&self) -> u64 {
        // One expression at the end and no early `return`: Lamellar's macro rewrites the
        // method's result.
        let mut total = self.n;
        if self.n >= 2 {
            // Children go to the next PEs in turn, as this project's scheduler spreads tasks.
            let pes = lamellar::num_pes;
            let here = lamellar::current_pe;
            let left = lamellar::world.exec_am_pe((here + 1) % pes, Fib { n: self.n - 1 });
            let right = lamellar::world.exec_am_pe((here + 2) % pes, Fib { n: self.n - 2 });
            let l: u64 = left.await;
            let r: u64 = right.await;
            total = l + r;
        }
        total
    }
}

/// An active message that carries bytes to a PE and returns them there.
#[lamellar::AmData(Debug, Clone)]
struct Echo {
    data: Vec<u8>,
}

#[lamellar::am]
impl LamellarAM for Echo {
    async fn exec(&self) -> Vec<u8> {
        self.data.clone()
    }
}

struct Options {
    out: Option<String>,
    repeats: usize,
    quick: bool,
    /// `n` of the nested fib row (20 by default, 10 with `--quick`).
    fib: Option<u64>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        out: None,
        repeats: 5,
        quick: false,
        fib: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => o.out = Some(args.next().ok_or("--out needs a file")?),
            "--repeats" => {
                let v = args.next().ok_or("--repeats needs a count")?;
                o.repeats = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!("invalid --repeats {v:?}: expected a positive integer")
                })?;
            }
            "--quick" => o.quick = true,
            "--fib" => {
                let v = args.next().ok_or("--fib needs a number")?;
                o.fib = Some(
                    v.parse()
                        .ok()
                        .filter(|n| (1..=30).contains(n))
                        .ok_or_else(|| {
                            format!("invalid --fib {v:?}: expected an integer from 1 to 30")
                        })?,
                );
            }
            other => {
                return Err(format!(
                "unknown argument {other:?} (accepted: --out FILE, --repeats N, --quick, --fib N)"
            ))
            }
        }
    }
    Ok(o)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn row(workload: &str, unit: &str, runs: Vec<f64>, params: Value) -> Value {
    let min = runs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    json!({
        "workload": workload, "unit": unit, "status": "ok", "params": params,
        "median": median(&runs), "min": min, "max": max, "runs": runs,
    })
}

/// The PE that runs the `i`-th message: every PE but 0 in turn (PE 0 itself when alone).
fn worker(world: &LamellarWorld, i: usize) -> usize {
    let n = world.num_pes();
    if n == 1 {
        0
    } else {
        1 + i % (n - 1)
    }
}

fn sync_round_trip(world: &LamellarWorld, repeats: usize, k: usize) -> Value {
    world.exec_am_pe(worker(world, 0), Empty {}).block();
    let runs = (0..repeats)
        .map(|_| {
            let lat: Vec<f64> = (0..k)
                .map(|_| {
                    let t = Instant::now();
                    world.exec_am_pe(worker(world, 0), Empty {}).block();
                    t.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            median(&lat)
        })
        .collect();
    row("sync_round_trip", "us", runs, json!({ "k": k }))
}

fn async_empty_tasks(world: &LamellarWorld, repeats: usize, n: usize) -> Value {
    let runs = (0..repeats)
        .map(|_| {
            let t = Instant::now();
            let tasks: Vec<_> = (0..n)
                .map(|i| world.exec_am_pe(worker(world, i), Empty {}).spawn())
                .collect();
            // Every message awaited, as `get_all` does in the unidist row.
            world.block_on(async {
                for task in tasks {
                    task.await;
                }
            });
            n as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    row("async_empty_tasks", "tasks/s", runs, json!({ "n": n }))
}

fn fib_plain(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_plain(n - 1) + fib_plain(n - 2)
    }
}

/// Up to `repeats` runs of fib(`n`); no further run starts once `budget` has passed (a run of
/// fib(20) on the shared-memory lamellae of this 2-core machine took 10-40 s), so the row may
/// hold fewer runs than asked: its `runs` and `params.runs_started_within` say how many.
fn nested_fib(
    world: &LamellarWorld,
    repeats: usize,
    n: u64,
    budget: std::time::Duration,
) -> Result<Value, String> {
    let mut runs = Vec::with_capacity(repeats);
    let start = Instant::now();
    while runs.len() < repeats && (runs.is_empty() || start.elapsed() < budget) {
        let t = Instant::now();
        let got = world.exec_am_pe(worker(world, 0), Fib { n }).block();
        runs.push(t.elapsed().as_secs_f64());
        if got != fib_plain(n) {
            return Err(format!("fib({n}) through active messages gave {got}"));
        }
    }
    let params = json!({ "n": n, "runs_started_within": format!("{} s", budget.as_secs()) });
    Ok(row("nested_fib", "s", runs, params))
}

/// A 64 MiB `Vec<u8>` (1 MiB with `--quick`) by value to PE 1 and back, as the row of the same
/// name in `unidist-bench workloads` (its copy for each run made untimed).
fn bytes_round_trip(world: &LamellarWorld, repeats: usize, bytes: usize) -> Result<Value, String> {
    let data: Vec<u8> = (0..bytes).map(|i| (i % 251) as u8).collect();
    let mut runs = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let arg = data.clone();
        let t = Instant::now();
        let back = world
            .exec_am_pe(worker(world, 0), Echo { data: arg })
            .block();
        runs.push(t.elapsed().as_secs_f64());
        if back != data {
            return Err(format!("{bytes} bytes changed on their round trip"));
        }
    }
    Ok(row(
        "bytes_round_trip",
        "s",
        runs,
        json!({ "bytes": bytes }),
    ))
}

/// The report PE 0 writes: rewritten after every row, so that a run killed or stopped part way
/// still shows the rows it finished (the others stay `pending` or `running`, which the bench
/// reads as not run or timed out).
#[derive(Clone)]
struct Report {
    path: Option<String>,
    pes: usize,
    repeats: usize,
    quick: bool,
    rows: Vec<Value>,
}

impl Report {
    fn new(o: &Options, pes: usize) -> Report {
        let rows = [
            "sync_round_trip",
            "async_empty_tasks",
            "bytes_round_trip",
            "nested_fib",
        ]
        .iter()
        .map(|w| json!({ "workload": w, "status": "pending" }))
        .collect();
        Report {
            path: o.out.clone(),
            pes,
            repeats: o.repeats,
            quick: o.quick,
            rows,
        }
    }

    fn set(&mut self, i: usize, row: Value) -> Result<(), String> {
        self.rows[i] = row;
        self.write()
    }

    /// Row `i` is being measured: a run killed now reads it as timed out.
    fn start(&mut self, i: usize) -> Result<(), String> {
        let workload = self.rows[i]["workload"].clone();
        self.set(i, json!({ "workload": workload, "status": "running" }))
    }

    /// Row `i` measured: shown and recorded.
    fn finish(&mut self, i: usize, row: Value) -> Result<(), String> {
        show(&row);
        self.set(i, row)
    }

    fn write(&self) -> Result<(), String> {
        let out = json!({
            "system": "lamellar", "mode": format!("lamellar np={}", self.pes),
            "status": "done", "repeats": self.repeats, "quick": self.quick, "rows": self.rows,
            "versions": { "lamellar": "0.7.1", "pes": self.pes },
        });
        match &self.path {
            Some(path) => std::fs::write(path, out.to_string())
                .map_err(|e| format!("cannot write {path}: {e}")),
            None => Ok(()),
        }
    }
}

/// How long the nested fib row starts runs for (the limit of a workload of `unidist-bench`);
/// a single run still going at twice this is a timeout.
fn fib_budget(quick: bool) -> std::time::Duration {
    std::time::Duration::from_secs(if quick { 15 } else { 60 })
}

fn show(r: &Value) {
    println!(
        "[lamellar] {:<18} {:.4} {}",
        r["workload"].as_str().unwrap_or(""),
        r["median"],
        r["unit"].as_str().unwrap_or("")
    );
}

/// The fewest runs of `bytes_round_trip`: its first run is cold, and the median is to be one
/// of the warm runs, as in this project's bench and the Python peers (the 64 MiB rows run at
/// least this many times there too).
const LARGE_RUNS_MIN: usize = 9;

/// PE 0's part: every row in turn, the report rewritten after each.
fn drive(world: &LamellarWorld, o: &Options) -> Result<(), String> {
    let (k, n, fib) = if o.quick {
        (50, 200, o.fib.unwrap_or(10))
    } else {
        (200, 1000, o.fib.unwrap_or(20))
    };
    let mut report = Report::new(o, world.num_pes());
    report.write()?;
    report.start(0)?;
    report.finish(0, sync_round_trip(world, o.repeats, k))?;
    report.start(1)?;
    report.finish(1, async_empty_tasks(world, o.repeats, n))?;
    report.start(2)?;
    let bytes = if o.quick { 1 << 20 } else { 64 << 20 };
    report.finish(
        2,
        bytes_round_trip(world, o.repeats.max(LARGE_RUNS_MIN), bytes)?,
    )?;
    report.start(3)?;
    // Lamellar cannot cancel a message tree: past the limit a watchdog records the row as
    // timed out and ends this process (the bench then stops the other PEs).
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = {
        let limit = 2 * fib_budget(o.quick);
        let mut late = report.clone();
        std::thread::spawn(move || {
            if finished.recv_timeout(limit) != Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                return;
            }
            let why = format!(
                "timeout: fib({fib}) through active messages did not finish within {} s",
                limit.as_secs()
            );
            eprintln!("unidist-bench-lamellar: {why}");
            let row = json!({ "workload": "nested_fib", "status": why, "params": { "n": fib } });
            let code = match late.set(3, row) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("unidist-bench-lamellar: {e}");
                    1
                }
            };
            std::process::exit(code);
        })
    };
    let r = nested_fib(world, o.repeats, fib, fib_budget(o.quick));
    drop(done);
    let _ = watchdog.join();
    report.finish(3, r?)
}

fn main() -> std::process::ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("unidist-bench-lamellar: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let world = lamellar::LamellarWorldBuilder::new().build();
    world.barrier();
    let mut code = std::process::ExitCode::SUCCESS;
    if world.my_pe() == 0 {
        if let Err(e) = drive(&world, &o) {
            eprintln!("unidist-bench-lamellar: {e}");
            code = std::process::ExitCode::FAILURE;
        }
    }
    world.barrier();
    code
}
