//! `unidist-bench ray-names`: the rows of `ray microbenchmark` that a Ray user knows by name,
//! measured through this project's API with the meaning Ray gives them.
//!
//! ```text
//! unidist-bench ray-names --out FILE [--quick] [--only NAME1,NAME2]
//! ```
//!
//! | row | one timed call | counted as |
//! |---|---|---|
//! | `single_client_tasks_sync` | submit one task returning `b"ok"`, get it | 1 |
//! | `single_client_tasks_async` | submit 1,000 such tasks, get them all | 1,000 |
//! | `1_1_actor_calls_sync` | one method call on one actor, get it | 1 |
//! | `1_1_actor_calls_async` | 1,000 calls on one actor, get them all | 1,000 |
//! | `1_n_actor_calls_async` | one call to a client actor that makes 5,000 calls on each of n actors and gets them | 5,000 n |
//! | `n_n_actor_calls_async` | 4 tasks, each making 5,000 calls spread over n actors and getting them | 20,000 |
//! | `single_client_put_calls` | put an integer | 1 |
//! | `single_client_get_calls` | get an integer put once before | 1 |
//! | `single_client_put_gigabytes` | put a copy of a 100 Mi-element `f64` array (800 MiB) | 0.8 (GB, Ray's count) |
//! | `single_client_wait_1k_refs` | submit 1,000 tasks, then `wait` for one ready ref 1,000 times | 1 |
//! | `single_client_get_object_containing_10k_refs` | get an object (made once by a task) holding 10,000 refs | 1 |
//!
//! n is half this machine's cores, at least one, as Ray's `cpu_count() // 2`. Every row is
//! timed as Ray's `timeit` does it: calls for a warm-up second counted, then four runs of at
//! least two seconds, each calling in steps of a tenth of the warm-up count (plus one); a run's
//! rate is `counted as` times the calls over its time, and the row is the mean and standard
//! deviation of the four rates. Ray sleeps ten seconds before each row to let noisy neighbours
//! settle; this suite does not. `--quick` shortens the warm-up to 0.2 s and the runs to 0.5 s.
//!
//! The report (`--out`) is rewritten after every row, so a run killed from outside keeps what it
//! measured. Under MPI SPMD only rank 0 returns from `init` and measures; the others serve.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use unidist::{ActorHandle, ObjectRef};

use crate::measure::{ok, parse_then_init, write_json};
use crate::suite::DONE;

pub(crate) const USAGE: &str = "unidist-bench ray-names --out FILE [--quick] [--only NAME1,NAME2]";

/// Every row, in Ray's order of printing them, with its unit.
pub(crate) const ROWS: [(&str, &str); 11] = [
    ("single_client_get_calls", "per second"),
    ("single_client_put_calls", "per second"),
    ("single_client_put_gigabytes", "GB/s"),
    ("single_client_get_object_containing_10k_refs", "per second"),
    ("single_client_wait_1k_refs", "per second"),
    ("single_client_tasks_sync", "per second"),
    ("single_client_tasks_async", "per second"),
    ("1_1_actor_calls_sync", "per second"),
    ("1_1_actor_calls_async", "per second"),
    ("1_n_actor_calls_async", "per second"),
    ("n_n_actor_calls_async", "per second"),
];

/// Calls per batch in the async rows, as in Ray.
const BATCH: usize = 1_000;
/// Calls per actor (1:n) and per client task (n:n), as in Ray.
const PER_CLIENT: usize = 5_000;
/// Client tasks of the n:n row, as in Ray.
const CLIENTS: usize = 4;
/// Elements of the array of the put-gigabytes row: Ray's `np.zeros(100 * 1024 * 1024)` of
/// 8-byte integers, here 8-byte floats (the same 800 MiB).
const GIGABYTES_ELEMS: usize = 100 * 1024 * 1024;
/// What Ray counts one put of that array as, in GB (`8 * 0.1`): kept so the two rates compare.
const GIGABYTES_PER_PUT: f64 = 0.8;
/// Refs held by the object of the get-object-containing-refs row.
const REFS_IN_OBJECT: usize = 10_000;

// ---- remote functions and actors -----------------------------------------------------------

/// Ray's `small_value`: a trivial task returning two bytes.
#[unidist::remote]
fn small_value() -> Vec<u8> {
    b"ok".to_vec()
}

/// Ray's `create_object_containing_ref`: puts `n` integers and returns their refs.
#[unidist::remote]
fn object_of_refs(n: usize) -> Vec<ObjectRef<u64>> {
    (0..n).map(|_| unidist::put(1u64)).collect()
}

/// One of Ray's n:n client tasks: `n` calls spread round robin over `servers`, all gotten.
#[unidist::remote]
fn spread_calls(servers: Vec<ActorHandle<Server>>, n: usize) -> usize {
    let refs: Vec<ObjectRef<Vec<u8>>> = (0..n)
        .map(|i| servers[i % servers.len()].small_value())
        .collect();
    unidist::get_all(&refs)
        .expect("the server calls of an n:n client")
        .len()
}

/// Ray's `Actor`: answers a call with two bytes.
pub(crate) struct Server;

#[unidist::actor]
impl Server {
    /// A server with no state.
    pub(crate) fn new() -> Self {
        Server
    }

    /// Two bytes, as Ray's `small_value` method.
    pub(crate) fn small_value(&self) -> Vec<u8> {
        b"ok".to_vec()
    }
}

/// Ray's `Client` actor of the 1:n row: it holds the servers and calls them.
pub(crate) struct Client {
    servers: Vec<ActorHandle<Server>>,
}

#[unidist::actor]
impl Client {
    /// A client of `servers`.
    pub(crate) fn new(servers: Vec<ActorHandle<Server>>) -> Self {
        Client { servers }
    }

    /// `n` calls on each server, all gotten; returns how many.
    pub(crate) fn small_value_batch(&self, n: usize) -> usize {
        let refs: Vec<ObjectRef<Vec<u8>>> = self
            .servers
            .iter()
            .flat_map(|s| (0..n).map(move |_| s.small_value()))
            .collect();
        unidist::get_all(&refs)
            .expect("the server calls of a client actor")
            .len()
    }
}

// ---- timing --------------------------------------------------------------------------------

/// How long Ray's `timeit` warms up and runs.
#[derive(Clone, Copy)]
struct Timing {
    warmup: Duration,
    run: Duration,
    runs: usize,
}

const FULL: Timing = Timing {
    warmup: Duration::from_secs(1),
    run: Duration::from_secs(2),
    runs: 4,
};

const QUICK: Timing = Timing {
    warmup: Duration::from_millis(200),
    run: Duration::from_millis(500),
    runs: 4,
};

/// The rates of one row's runs (`counted` per call), timed as Ray's `timeit` times them.
fn timeit(
    t: Timing,
    counted: f64,
    mut call: impl FnMut() -> Result<(), String>,
) -> Result<Vec<f64>, String> {
    let started = Instant::now();
    let mut calls = 0usize;
    while started.elapsed() < t.warmup {
        call()?;
        calls += 1;
    }
    let step = calls / 10 + 1;
    let mut rates = Vec::with_capacity(t.runs);
    for _ in 0..t.runs {
        let started = Instant::now();
        let mut calls = 0usize;
        while started.elapsed() < t.run {
            for _ in 0..step {
                call()?;
            }
            calls += step;
        }
        rates.push(counted * calls as f64 / started.elapsed().as_secs_f64());
    }
    Ok(rates)
}

/// Mean and population standard deviation, as numpy's `mean` and `std`.
pub(crate) fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Half this machine's cores, at least one: Ray's `multiprocessing.cpu_count() // 2`.
fn half_the_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

fn servers(n: usize) -> Vec<ActorHandle<Server>> {
    (0..n).map(|_| Server::remote()).collect()
}

/// Measures row `name`; returns its rates and parameters.
fn measure(name: &str, t: Timing) -> Result<(Vec<f64>, Value), String> {
    match name {
        "single_client_tasks_sync" | "single_client_tasks_async" => call_row(name, t),
        n if n.starts_with("single_client_") => object_row(name, t),
        _ => call_row(name, t),
    }
}

/// The rows about objects: put, get, wait.
fn object_row(name: &str, t: Timing) -> Result<(Vec<f64>, Value), String> {
    match name {
        "single_client_get_calls" => {
            let value = unidist::put(0u64);
            let rates = timeit(t, 1.0, || ok(unidist::get(&value)).map(drop))?;
            Ok((rates, json!({})))
        }
        "single_client_put_calls" => {
            let rates = timeit(t, 1.0, || {
                drop(unidist::put(0u64));
                Ok(())
            })?;
            Ok((rates, json!({})))
        }
        "single_client_put_gigabytes" => {
            let mut arr = vec![0f64; GIGABYTES_ELEMS];
            // Without this the compiler may see that the array is still all zero pages and turn
            // each copy into a fresh zeroed allocation, which copies nothing.
            std::hint::black_box(&mut arr);
            // Ray copies the array into its store on every put; the clone is that copy here.
            let rates = timeit(t, GIGABYTES_PER_PUT, || {
                drop(unidist::put(arr.clone()));
                Ok(())
            })?;
            Ok((
                rates,
                json!({"bytes": GIGABYTES_ELEMS * 8, "gb_counted_per_put": GIGABYTES_PER_PUT}),
            ))
        }
        "single_client_get_object_containing_10k_refs" => {
            let holder = object_of_refs::remote(REFS_IN_OBJECT);
            let rates = timeit(t, 1.0, || {
                let refs = ok(unidist::get(&holder))?;
                if refs.len() == REFS_IN_OBJECT {
                    Ok(())
                } else {
                    Err(format!("{} refs in the object", refs.len()))
                }
            })?;
            Ok((rates, json!({"refs": REFS_IN_OBJECT})))
        }
        "single_client_wait_1k_refs" => {
            let rates = timeit(t, 1.0, || {
                let mut not_ready: Vec<ObjectRef<Vec<u8>>> =
                    (0..BATCH).map(|_| small_value::remote()).collect();
                for _ in 0..BATCH {
                    let (_ready, rest) = ok(unidist::wait(&not_ready, 1))?;
                    not_ready = rest;
                }
                Ok(())
            })?;
            Ok((rates, json!({"refs": BATCH})))
        }
        other => Err(format!("unknown row {other:?}")),
    }
}

/// The rows about task and actor calls.
fn call_row(name: &str, t: Timing) -> Result<(Vec<f64>, Value), String> {
    let batch = || -> Result<(), String> {
        let refs: Vec<ObjectRef<Vec<u8>>> = (0..BATCH).map(|_| small_value::remote()).collect();
        ok(unidist::get_all(&refs)).map(drop)
    };
    match name {
        "single_client_tasks_sync" => {
            let rates = timeit(t, 1.0, || {
                ok(unidist::get(&small_value::remote())).map(drop)
            })?;
            Ok((rates, json!({})))
        }
        "single_client_tasks_async" => {
            let rates = timeit(t, BATCH as f64, batch)?;
            Ok((rates, json!({"n": BATCH})))
        }
        "1_1_actor_calls_sync" => {
            let a = Server::remote();
            let rates = timeit(t, 1.0, || ok(unidist::get(&a.small_value())).map(drop))?;
            Ok((rates, json!({})))
        }
        "1_1_actor_calls_async" => {
            let a = Server::remote();
            let rates = timeit(t, BATCH as f64, || {
                let refs: Vec<ObjectRef<Vec<u8>>> = (0..BATCH).map(|_| a.small_value()).collect();
                ok(unidist::get_all(&refs)).map(drop)
            })?;
            Ok((rates, json!({"n": BATCH})))
        }
        "1_n_actor_calls_async" => {
            let n = half_the_cores();
            let client = Client::remote(servers(n));
            let rates = timeit(t, (PER_CLIENT * n) as f64, || {
                let got = ok(unidist::get(&client.small_value_batch(PER_CLIENT)))?;
                check_count(got, PER_CLIENT * n)
            })?;
            Ok((rates, json!({"actors": n, "calls_per_actor": PER_CLIENT})))
        }
        "n_n_actor_calls_async" => {
            let n = half_the_cores();
            let actors = servers(n);
            let rates = timeit(t, (CLIENTS * PER_CLIENT) as f64, || {
                let refs: Vec<ObjectRef<usize>> = (0..CLIENTS)
                    .map(|_| spread_calls::remote(actors.clone(), PER_CLIENT))
                    .collect();
                let got: usize = ok(unidist::get_all(&refs))?.into_iter().sum();
                check_count(got, CLIENTS * PER_CLIENT)
            })?;
            Ok((
                rates,
                json!({"actors": n, "client_tasks": CLIENTS, "calls_per_client": PER_CLIENT}),
            ))
        }
        other => Err(format!("unknown row {other:?}")),
    }
}

fn check_count(got: usize, want: usize) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{got} calls answered of {want}"))
    }
}

// ---- the suite -----------------------------------------------------------------------------

struct Options {
    out: String,
    quick: bool,
    only: Option<Vec<String>>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut out = None;
    let mut quick = false;
    let mut only = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--out" => out = it.next().cloned(),
            "--quick" => quick = true,
            "--only" => {
                let list: Vec<String> = it
                    .next()
                    .map(|v| v.split(',').map(str::to_string).collect())
                    .unwrap_or_default();
                if let Some(bad) = list.iter().find(|n| !ROWS.iter().any(|(r, _)| r == *n)) {
                    return Err(format!(
                        "--only: unknown row {bad:?}; accepted: {}",
                        ROWS.map(|(r, _)| r).join(",")
                    ));
                }
                only = Some(list);
            }
            other => return Err(format!("unknown argument {other:?}; usage: {USAGE}")),
        }
    }
    Ok(Options {
        out: out.ok_or("--out FILE is required")?,
        quick,
        only,
    })
}

fn report(o: &Options, rows: &[Value]) -> Value {
    json!({
        "suite": "ray-names",
        "backend": unidist::config::Backend::get().map(|b| b.to_string()).unwrap_or_default(),
        "quick": o.quick,
        "half_the_cores": half_the_cores(),
        "rows": rows,
    })
}

pub(crate) fn main(args: &[String]) -> i32 {
    let o = match parse_then_init("ray-names", parse(args)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let timing = if o.quick { QUICK } else { FULL };
    let chosen: Vec<(&str, &str)> = ROWS
        .into_iter()
        .filter(|(r, _)| o.only.as_ref().is_none_or(|l| l.iter().any(|n| n == r)))
        .collect();
    let mut rows: Vec<Value> = chosen
        .iter()
        .map(|(name, unit)| json!({"name": name, "unit": unit, "status": "pending"}))
        .collect();
    let mut code = 0;
    for (i, (name, unit)) in chosen.iter().enumerate() {
        rows[i]["status"] = "running".into();
        if let Err(e) = write_json(&o.out, &report(&o, &rows)) {
            eprintln!("unidist-bench ray-names: {e}");
            code = 1;
        }
        let row = match measure(name, timing) {
            Ok((rates, params)) => {
                let (mean, sd) = mean_sd(&rates);
                println!("{name} {unit} {mean:.2} +- {sd:.2}");
                json!({"name": name, "unit": unit, "status": "ok", "mean": mean, "sd": sd,
                       "runs": rates, "params": params})
            }
            Err(e) => {
                println!("{name}: failed: {e}");
                code = 1;
                json!({"name": name, "unit": unit, "status": format!("failed: {e}")})
            }
        };
        rows[i] = row;
    }
    if let Err(e) = write_json(&o.out, &report(&o, &rows)) {
        eprintln!("unidist-bench ray-names: {e}");
        code = 1;
    }
    if let Err(e) = unidist::shutdown() {
        eprintln!("unidist-bench ray-names: shutdown failed: {e}");
    }
    println!("{DONE}");
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sd_are_numpy_s() {
        let (m, s) = mean_sd(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((s - 1.118_034).abs() < 1e-6, "{s}");
    }

    #[test]
    fn only_accepts_the_row_names() {
        let args = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let o = parse(&args(&["--out", "f", "--only", "1_1_actor_calls_sync"])).expect("ok");
        assert_eq!(
            o.only.as_deref(),
            Some(&["1_1_actor_calls_sync".to_string()][..])
        );
        let e = parse(&args(&["--out", "f", "--only", "tasks"]))
            .err()
            .expect("refused");
        assert!(e.contains("single_client_tasks_sync"), "{e}");
        assert!(parse(&args(&["--quick"])).is_err());
    }

    #[test]
    fn timeit_counts_the_multiplier() {
        let t = Timing {
            warmup: Duration::from_millis(5),
            run: Duration::from_millis(5),
            runs: 4,
        };
        let rates = timeit(t, 1000.0, || Ok(())).expect("runs");
        assert_eq!(rates.len(), 4);
        assert!(rates.iter().all(|r| *r > 1000.0));
        assert!(timeit(t, 1.0, || Err("no".into())).is_err());
    }
}
