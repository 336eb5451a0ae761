//! `unidist-bench floors-local`: the local pool's own rows against bare floors measured in the
//! same run (rayon `spawn` + channel, actix `Addr::send`, one memcpy), through the public API on
//! the backend `UNIDIST_BACKEND` selects; the floors are also what `cargo xtask bench` sets
//! beside the workload rows of the in-process backends.
//!
//! | row | ours | floor | target |
//! |---|---|---|---|
//! | async empty tasks | submit 100,000 no-op tasks, then get them all | bare rayon `spawn` + channel | throughput ≥ 0.3× |
//! | sync round trip | submit one no-op task and get it, median of 2,000 | bare rayon `spawn` + channel `recv` | ≤ 3× |
//! | actor calls | 100,000 calls on one actor, then get them all | bare actix `Addr::send` loop (pipelined) | throughput ≥ 0.3× |
//! | 64 MiB through `&T` | put a 64 MiB `Vec<u8>`, a task reads it through `&[u8]`, get | one 64 MiB `memcpy` | ≤ 1.2× |
//! | CPU scaling | 8 tasks of fixed CPU work on the pool | the same 8 calls in sequence | ≤ 0.55× on 2 threads |
//!
//! Two informational rows follow: the time to create an actor and its resident memory.

use std::sync::mpsc;
use std::time::Instant;

use serde_json::json;
use unidist::{ActorHandle, ObjectRef};

use crate::floors::{self, Goal, Row};
use crate::measure::{timed, upper_median};

// ---- functions and actors ------------------------------------------------------------------

#[unidist::remote]
fn noop() {}

/// Reads the buffer in place: one byte of every 4 KiB page, so every page is touched.
#[unidist::remote]
fn read_pages(v: &[u8]) -> u64 {
    v.iter()
        .step_by(4096)
        .fold(0u64, |a, b| a.wrapping_add(u64::from(*b)))
}

/// Fixed CPU work: a xorshift chain the optimizer cannot shorten.
fn spin(rounds: u64) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

#[unidist::remote]
fn work(rounds: u64) -> u64 {
    spin(rounds)
}

/// A counter actor.
pub(crate) struct Counter(u64);

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

#[unidist::actor]
impl Counter {
    /// Starts at zero.
    pub(crate) fn new() -> Self {
        Counter(0)
    }

    /// Counts one call and returns the count.
    pub(crate) fn inc(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

// ---- bare floors ---------------------------------------------------------------------------

fn bare_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("bare pool")
}

fn bare_async(pool: &rayon::ThreadPool, n: usize) {
    let (tx, rx) = mpsc::channel();
    for _ in 0..n {
        let tx = tx.clone();
        pool.spawn(move || tx.send(()).expect("send"));
    }
    for _ in 0..n {
        rx.recv().expect("recv");
    }
}

fn bare_round_trip(pool: &rayon::ThreadPool) -> f64 {
    let (tx, rx) = mpsc::channel();
    let t = Instant::now();
    pool.spawn(move || tx.send(()).expect("send"));
    rx.recv().expect("recv");
    t.elapsed().as_secs_f64()
}

mod bare_actix {
    //! A bare actix counter on its own system thread: the floor of actor calls.

    use actix::prelude::*;

    pub(super) struct Inc;
    impl Message for Inc {
        type Result = u64;
    }

    pub(super) struct Counter(u64);
    impl Actor for Counter {
        type Context = Context<Self>;
        fn started(&mut self, ctx: &mut Context<Self>) {
            // A pipelined floor: the bounded default mailbox would turn the loop into round trips.
            ctx.set_mailbox_capacity(usize::MAX);
        }
    }
    impl Handler<Inc> for Counter {
        type Result = u64;
        fn handle(&mut self, _: Inc, _: &mut Context<Self>) -> u64 {
            self.0 += 1;
            self.0
        }
    }

    /// An actix system on its own thread with one counter actor on its own arbiter.
    pub(super) struct Bare {
        addr: Addr<Counter>,
        system: System,
        join: std::thread::JoinHandle<()>,
        rt: tokio::runtime::Runtime,
    }

    impl Bare {
        pub(super) fn start() -> Self {
            let (tx, rx) = std::sync::mpsc::channel();
            let join = std::thread::spawn(move || {
                let runner = System::new();
                let arbiter = Arbiter::new();
                let addr = Counter::start_in_arbiter(&arbiter.handle(), |_| Counter(0));
                tx.send((addr, System::current())).expect("send");
                runner.run().expect("system runs");
            });
            let (addr, system) = rx.recv().expect("bare system starts");
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            Bare {
                addr,
                system,
                join,
                rt,
            }
        }

        /// `n` `Addr::send` requests created in a loop, then awaited.
        pub(super) fn send_loop(&self, n: usize) -> u64 {
            self.rt.block_on(async {
                let reqs: Vec<_> = (0..n).map(|_| self.addr.send(Inc)).collect();
                let mut last = 0;
                for r in reqs {
                    last = r.await.expect("reply");
                }
                last
            })
        }

        pub(super) fn stop(self) {
            self.system.stop();
            let _ = self.join.join();
        }
    }
}

// ---- rows ----------------------------------------------------------------------------------

const REPS: usize = 5;
/// Tasks of the async row and calls of the actor row.
const ASYNC_N: usize = 100_000;
const ACTOR_N: usize = 100_000;
/// Bytes of the big-object row.
const BIG_BYTES: usize = 64 << 20;

/// Median wall time of `reps` runs of `f`, in seconds.
fn time_median(reps: usize, mut f: impl FnMut()) -> f64 {
    upper_median((0..reps).map(|_| timed(&mut f)).collect())
}

fn row_async_tasks(bare: &rayon::ThreadPool) -> Row {
    let n = ASYNC_N;
    let ours = time_median(REPS, || {
        let refs: Vec<ObjectRef<()>> = (0..n).map(|_| noop::remote()).collect();
        let v = unidist::get_all(&refs).expect("get_all");
        assert_eq!(v.len(), n);
    });
    let floor = time_median(REPS, || bare_async(bare, n));
    Row::new("async empty tasks (100,000, then get_all)", "s", ours)
        .floor(floor, "rayon spawn + channel")
        .goal(Goal::ThroughputAtLeast(0.3))
}

fn row_round_trip(bare: &rayon::ThreadPool) -> Row {
    let n = 2000;
    // Warm up both paths first.
    for _ in 0..200 {
        unidist::get(&noop::remote()).expect("get");
        bare_round_trip(bare);
    }
    // Interleaved, so both see the same machine state.
    let mut ours = Vec::with_capacity(n);
    let mut floor = Vec::with_capacity(n);
    for _ in 0..n {
        ours.push(timed(|| unidist::get(&noop::remote()).expect("get")));
        floor.push(bare_round_trip(bare));
    }
    Row::new(
        "sync round trip (median of 2,000)",
        "us",
        upper_median(ours) * 1e6,
    )
    .floor(upper_median(floor) * 1e6, "rayon spawn + channel recv")
    .goal(Goal::TimeAtMost(3.0))
}

fn row_actor_calls() -> Row {
    let n = ACTOR_N;
    let actor: ActorHandle<Counter> = Counter::remote();
    let ours = time_median(REPS, || {
        let refs: Vec<ObjectRef<u64>> = (0..n).map(|_| actor.inc()).collect();
        let v = unidist::get_all(&refs).expect("get_all");
        assert!(v[n - 1] > v[0]);
    });
    let bare = bare_actix::Bare::start();
    let floor = time_median(REPS, || {
        assert!(bare.send_loop(n) > 0);
    });
    bare.stop();
    Row::new(
        "actor calls (100,000 on one actor, then get_all)",
        "s",
        ours,
    )
    .floor(floor, "actix Addr::send loop")
    .goal(Goal::ThroughputAtLeast(0.3))
}

fn row_big_object() -> Row {
    let len = BIG_BYTES;
    let mut ours = Vec::new();
    for i in 0..REPS {
        let data = vec![(i as u8) | 1; len];
        let t = Instant::now();
        let r = unidist::put(data);
        let s = unidist::get(&read_pages::remote(&r)).expect("get");
        ours.push(t.elapsed().as_secs_f64());
        assert_eq!(s, ((i as u64) | 1) * (len as u64 / 4096));
    }
    let src = vec![3u8; len];
    let mut dst = vec![1u8; len];
    let floor = time_median(REPS, || {
        dst.copy_from_slice(&src);
        std::hint::black_box(&mut dst);
    });
    Row::new(
        "64 MiB object put and read by a task through &T",
        "ms",
        upper_median(ours) * 1e3,
    )
    .floor(floor * 1e3, "one 64 MiB memcpy")
    .goal(Goal::TimeAtMost(1.2))
}

fn row_scaling(threads: usize) -> Row {
    // About 40 ms of work per task here.
    let rounds = 60_000_000u64;
    let tasks = 8;
    // Best of five on both sides, alternating: other processes on the machine only ever slow a
    // run down, and alternating gives both sides the same chances of a quiet moment.
    let mut seq = f64::INFINITY;
    let mut par = f64::INFINITY;
    for _ in 0..5 {
        seq = seq.min(timed(|| {
            for _ in 0..tasks {
                std::hint::black_box(spin(std::hint::black_box(rounds)));
            }
        }));
        par = par.min(timed(|| {
            let refs: Vec<ObjectRef<u64>> = (0..tasks).map(|_| work::remote(rounds)).collect();
            unidist::get_all(&refs).expect("get_all");
        }));
    }
    // 0.55 on 2 threads as in the issue: ideal 1/threads plus 10 %.
    let target = (1.1 / threads.min(tasks) as f64 * 100.0).round() / 100.0;
    Row::new(
        "CPU scaling (8 tasks of fixed work vs sequential)",
        "s",
        par,
    )
    .floor(seq, "sequential")
    .goal(Goal::TimeAtMost(target))
}

fn rows_actor_cost() -> Vec<Row> {
    let n = 1000;
    let before = floors::rss_bytes();
    let t = Instant::now();
    let actors: Vec<ActorHandle<Counter>> = (0..n).map(|_| Counter::remote()).collect();
    // One call each, so every actor's thread and runtime are fully up.
    let refs: Vec<ObjectRef<u64>> = actors.iter().map(|a| a.inc()).collect();
    unidist::get_all(&refs).expect("get_all");
    let per_actor_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let per_actor_kib = floors::rss_bytes().saturating_sub(before) as f64 / 1024.0 / n as f64;
    drop(refs);
    drop(actors);
    vec![
        Row::new(
            "actor creation + first call (1,000 actors)",
            "us/actor",
            per_actor_us,
        ),
        Row::new("resident memory per live actor", "KiB/actor", per_actor_kib),
    ]
}

/// The floors measured in this run as rates and latencies (`cargo xtask bench` sets them beside
/// the rows of the shared workloads).
fn floor_values(rows: &[Row]) -> serde_json::Map<String, serde_json::Value> {
    rows.iter()
        .filter_map(|r| {
            let floor = r.floor?;
            match r.floor_name {
                "rayon spawn + channel" => {
                    Some(("rayon_spawn_channel_tasks_per_s", ASYNC_N as f64 / floor))
                }
                "rayon spawn + channel recv" => Some(("rayon_round_trip_us", floor)),
                "actix Addr::send loop" => Some(("actix_send_calls_per_s", ACTOR_N as f64 / floor)),
                "one 64 MiB memcpy" => {
                    Some(("memcpy_64mib_gbs", BIG_BYTES as f64 / (floor / 1e3) / 1e9))
                }
                _ => None,
            }
        })
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect()
}

/// Runs the rows named in `--rows` (all by default); returns the exit code.
pub(crate) fn main(args: &[String]) -> i32 {
    const ROWS: [&str; 6] = [
        "tasks",
        "round_trip",
        "actors",
        "object",
        "scaling",
        "actor_cost",
    ];
    let (out, only) = match floors::parse(args, &ROWS) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("unidist-bench floors-local: {e}\nusage: {}", USAGE);
            return 2;
        }
    };
    if let Err(e) = unidist::init() {
        eprintln!("unidist-bench floors-local: init failed: {e}");
        return 1;
    }
    let threads = unidist::num_cpus();
    let bare = bare_pool(threads);
    let want = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|w| w == name));
    let mut rows = Vec::new();
    if want("tasks") {
        rows.push(row_async_tasks(&bare));
    }
    if want("round_trip") {
        rows.push(row_round_trip(&bare));
    }
    if want("actors") {
        rows.push(row_actor_calls());
    }
    if want("object") {
        rows.push(row_big_object());
    }
    if want("scaling") {
        rows.push(row_scaling(threads));
    }
    if want("actor_cost") {
        rows.extend(rows_actor_cost());
    }
    println!("{threads} pool threads; floors measured in the same run");
    floors::print_table(&rows);
    let doc = json!({
        "backend": floors::backend_name(),
        "threads": threads,
        "floors": floor_values(&rows),
        "rows": rows.iter().map(Row::json).collect::<Vec<_>>(),
    });
    floors::finish(&out, &doc)
}

pub(crate) const USAGE: &str = "unidist-bench floors-local --out FILE \
                         [--rows tasks,round_trip,actors,object,scaling,actor_cost]";
