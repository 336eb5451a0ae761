//! Lamellar on the workloads of `unidist-bench workloads` whose meaning carries over to active
//! messages, so that `cargo xtask bench` can put the Rust HPC runtime beside this project.
//!
//! | row | what is timed | unit |
//! |---|---|---|
//! | `sync_round_trip` | one empty active message to PE 1 and its return, K times; median | µs |
//! | `async_empty_tasks` | N empty active messages spread over PEs 1.., then waiting for all | tasks/s |
//! | `nested_fib` | fib(20) where every call is an active message that launches two more and awaits them | s |
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

struct Options {
    out: Option<String>,
    repeats: usize,
    quick: bool,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        out: None,
        repeats: 5,
        quick: false,
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
            other => {
                return Err(format!(
                    "unknown argument {other:?} (accepted: --out FILE, --repeats N, --quick)"
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

fn nested_fib(world: &LamellarWorld, repeats: usize, n: u64) -> Result<Value, String> {
    let mut runs = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        let got = world.exec_am_pe(worker(world, 0), Fib { n }).block();
        runs.push(t.elapsed().as_secs_f64());
        if got != fib_plain(n) {
            return Err(format!("fib({n}) through active messages gave {got}"));
        }
    }
    Ok(row("nested_fib", "s", runs, json!({ "n": n })))
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
        let (k, n, fib) = if o.quick {
            (50, 200, 10)
        } else {
            (200, 1000, 20)
        };
        let show = |r: &Value| {
            println!(
                "[lamellar] {:<18} {:.4} {}",
                r["workload"].as_str().unwrap_or(""),
                r["median"],
                r["unit"].as_str().unwrap_or("")
            );
        };
        let mut rows = vec![sync_round_trip(&world, o.repeats, k)];
        show(&rows[0]);
        rows.push(async_empty_tasks(&world, o.repeats, n));
        show(&rows[1]);
        match nested_fib(&world, o.repeats, fib) {
            Ok(r) => {
                show(&r);
                rows.push(r);
            }
            Err(e) => {
                eprintln!("unidist-bench-lamellar: {e}");
                code = std::process::ExitCode::FAILURE;
            }
        }
        let out = json!({
            "system": "lamellar", "mode": format!("lamellar np={}", world.num_pes()),
            "status": "done", "repeats": o.repeats, "quick": o.quick, "rows": rows,
            "versions": { "lamellar": "0.7.1", "pes": world.num_pes() },
        });
        if let Some(path) = &o.out {
            if let Err(e) = std::fs::write(path, out.to_string()) {
                eprintln!("unidist-bench-lamellar: cannot write {path}: {e}");
                code = std::process::ExitCode::FAILURE;
            }
        }
    }
    world.barrier();
    code
}
