//! `unidist-bench floors-mpi`: the MPI backend's own rows against raw MPI floors measured in
//! the same run (8-byte ping-pong and 64 MiB transfers between rank 0 and rank 1 on the
//! backend's communication threads). Run under `mpiexec -n 3` with
//! `UNIDIST_IS_MPI_SPAWN_WORKERS=false`; rank 0 measures, the other ranks serve.

use std::time::Instant;

use serde_json::json;
use unidist::{ActorHandle, Buffer, ObjectRef};

use crate::floors::{self, Goal, Row};
use crate::measure::{ok, upper_median};

#[unidist::remote]
fn noop(x: u8) -> u8 {
    x
}

#[unidist::remote]
fn buf_len(v: Buffer<f64>) -> u64 {
    v.len() as u64
}

#[unidist::remote]
fn sum_buf(v: Buffer<f64>) -> f64 {
    v.iter().sum()
}

/// An actor with one async method that does nothing: the cost of a call alone.
pub(crate) struct Idle;

impl Default for Idle {
    fn default() -> Self {
        Self::new()
    }
}

#[unidist::actor]
impl Idle {
    /// The actor.
    pub(crate) fn new() -> Self {
        Idle
    }

    /// Does nothing.
    pub(crate) async fn noop(&self) -> u8 {
        0
    }
}

fn raw_floors(iters: u32, bytes: u64) -> Result<(f64, f64), String> {
    unidist::bench_mpi_raw_floors(iters, bytes).map_err(|e| e.to_string())
}

/// Measured values, each the best or median of its samples.
struct Measured {
    half_rtt: f64,
    raw_bw: f64,
    sync: f64,
    tasks_per_s: f64,
    calls_per_s: f64,
    move_bw: f64,
}

fn measure() -> Result<Measured, String> {
    // Raw floors on the communication threads of rank 0 and rank 1.
    let (half_rtt, mut raw_bw) = raw_floors(10_000, 64 << 20)?;
    ok(unidist::get_all(
        &(0..2000).map(|_| noop::remote(0)).collect::<Vec<_>>(),
    ))?;

    // Sync task round trip: submit one no-op task and get it; median of 2000.
    let mut samples = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let t = Instant::now();
        ok(unidist::get(&noop::remote(1)))?;
        samples.push(t.elapsed().as_secs_f64());
    }
    let sync = upper_median(samples);

    // Async throughput: submit 100,000 empty tasks, then get_all.
    let n = 100_000;
    let t = Instant::now();
    let refs: Vec<ObjectRef<u8>> = (0..n).map(|_| noop::remote(0)).collect();
    ok(unidist::get_all(&refs))?;
    let tasks_per_s = n as f64 / t.elapsed().as_secs_f64();
    drop(refs);

    // Actor calls: 100,000 async calls on one actor, then get_all.
    let actor: ActorHandle<Idle> = Idle::remote();
    ok(unidist::get(&actor.noop()))?;
    let t = Instant::now();
    let refs: Vec<ObjectRef<u8>> = (0..n).map(|_| actor.noop()).collect();
    ok(unidist::get_all(&refs))?;
    let calls_per_s = n as f64 / t.elapsed().as_secs_f64();
    drop(refs);

    // A 64 MiB argument moved from rank 0 to a worker and used by a task there (best of 5; the
    // task returns the length it received, so the time is the transfer: put, push, receive into
    // a fresh buffer, run, reply). Each sample is preceded by a raw transfer of the same size,
    // so that the floor sees the same machine load as the row; the floor is the best raw
    // bandwidth seen anywhere in the run.
    let elems = 8usize << 20;
    let mut best = f64::MAX;
    for i in 0..5 {
        raw_bw = raw_bw.max(raw_floors(0, (elems * 8) as u64)?.1);
        let buf = Buffer::from(vec![i as f64; elems]);
        let t = Instant::now();
        let p = unidist::put(buf);
        let len = ok(unidist::get(&buf_len::remote(&p)))?;
        best = best.min(t.elapsed().as_secs_f64());
        if len != elems as u64 {
            return Err(format!("the task saw {len} elements, expected {elems}"));
        }
        if i == 1 {
            // Once, untimed: the data itself arrived intact.
            let sum = ok(unidist::get(&sum_buf::remote(&p)))?;
            if sum != elems as f64 {
                return Err("the argument's data arrived changed".into());
            }
        }
    }
    Ok(Measured {
        half_rtt,
        raw_bw,
        sync,
        tasks_per_s,
        calls_per_s,
        move_bw: (64u64 << 20) as f64 / best,
    })
}

fn rows(m: &Measured) -> Vec<Row> {
    let rtt = 2.0 * m.half_rtt;
    let per_half = m.tasks_per_s * m.half_rtt;
    let floor_row = |name, value, unit| {
        Row::new(name, unit, value)
            .no_floor()
            .ratio(1.0, "floor".into())
            .goal(Goal::Checked("-", true))
    };
    let (sync, calls, moved) = (
        m.sync / rtt,
        m.calls_per_s / m.tasks_per_s,
        m.move_bw / m.raw_bw,
    );
    vec![
        floor_row("raw 8-byte round trip (rank 0 <-> 1)", rtt * 1e6, "us"),
        floor_row("raw 64 MiB bandwidth", m.raw_bw / 1e9, "GB/s"),
        Row::new("sync task round trip (median of 2000)", "us", m.sync * 1e6)
            .no_floor()
            .ratio(sync, format!("{sync:.1}x raw RTT"))
            .goal(Goal::Checked("<= 30x", sync <= 30.0)),
        Row::new(
            "async empty tasks (100,000, get_all)",
            "tasks/s",
            m.tasks_per_s,
        )
        .no_floor()
        .ratio(per_half, format!("{per_half:.3} tasks per raw half RTT"))
        .goal(Goal::Checked(">= 0.03", per_half >= 0.03)),
        Row::new(
            "actor calls (100,000 async on one actor)",
            "calls/s",
            m.calls_per_s,
        )
        .no_floor()
        .ratio(calls, format!("{calls:.2}x task throughput"))
        .goal(Goal::Checked(">= 0.5x", calls >= 0.5)),
        Row::new("64 MiB argument rank 0 -> worker", "GB/s", m.move_bw / 1e9)
            .no_floor()
            .ratio(moved, format!("{moved:.2}x raw bandwidth"))
            .goal(Goal::Checked(">= 0.5x", moved >= 0.5)),
    ]
}

pub(crate) const USAGE: &str = "unidist-bench floors-mpi --out FILE";

/// Runs the MPI rows; returns the exit code.
pub(crate) fn main(args: &[String]) -> i32 {
    let parsed = floors::parse(args, &[]).map_err(|e| format!("{e}\nusage: {USAGE}"));
    // On MPI SPMD only rank 0 returns from here.
    let (out, _) = match crate::measure::parse_then_init("floors-mpi", parsed) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let workers = unidist::num_cpus();
    let measured = match measure() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("unidist-bench floors-mpi: {e}");
            let _ = unidist::shutdown();
            return 1;
        }
    };
    let rows = rows(&measured);
    println!("{} backend, {workers} workers", floors::backend_name());
    floors::print_table(&rows);
    let doc = json!({
        "backend": floors::backend_name(),
        "workers": workers,
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
    });
    floors::finish(&out, &doc)
}
