//! `unidist-bench workloads`: the workloads on the backend `UNIDIST_BACKEND` selects, each
//! bounded in time, with the floors the same run can measure, written as one JSON report.
//!
//! Every workload runs `--repeats` times (the 64 MiB and 16 MiB rows at least 9 times,
//! [`crate::workloads::runs_of`]) after one untimed warm-up and is bounded by
//! `--time-limit` seconds (`big_object` by four times that); one that overruns is recorded as
//! `timeout` with the runs it finished, and the next workload still runs. A row that cannot run
//! here (`big_object` with `--quick` or without the memory) is recorded as `skipped: <why>`.
//! `--big-object-bytes` shrinks that row's object, to try the row on a small machine. The report (`--out`) is rewritten after every workload, so
//! a run killed from outside keeps what it measured. The floors measured here: one 64 MiB
//! memcpy, and where the workers are other processes (MPI) the raw 8-byte ping-pong and 64 MiB
//! bandwidth between rank 0 and rank 1.
//!
//! Under MPI SPMD every rank parses the arguments, but only rank 0 returns from `init` and
//! measures; the other ranks serve until it shuts down.

use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::data_rows;
use crate::measure::{median_of, run_limited, write_json};
use crate::workloads::{self, is_param, unit, Fields, LARGE_BYTES, WORKLOADS};

pub(crate) const USAGE: &str = "unidist-bench workloads [--out FILE] [--mode LABEL] [--quick] \
                         [--repeats N] [--time-limit SECS] [--only W1,W2] [--big-object-bytes N]";

/// The line that tells the caller the report is complete and the process may go.
pub(crate) const DONE: &str = "unidist-bench: done";

struct Options {
    out: Option<String>,
    mode: Option<String>,
    quick: bool,
    repeats: usize,
    time_limit: Option<f64>,
    only: Option<Vec<String>>,
    big_object_bytes: usize,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        out: None,
        mode: None,
        quick: false,
        repeats: 3,
        time_limit: None,
        only: None,
        big_object_bytes: data_rows::BIG_OBJECT_BYTES,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or(format!("{flag} needs a value"));
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
            "--big-object-bytes" => {
                let raw = value("--big-object-bytes")?;
                o.big_object_bytes = raw.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    format!(
                        "invalid --big-object-bytes {raw:?}: expected a whole number of at least 1"
                    )
                })?;
            }
            "--only" => {
                let raw = value("--only")?;
                let names: Vec<String> = raw.split(',').map(|s| s.trim().to_string()).collect();
                let known = |n: &str| WORKLOADS.iter().any(|(w, _)| *w == n);
                if let Some(bad) = names.iter().find(|n| !known(n)) {
                    let all: Vec<&str> = WORKLOADS.iter().map(|(w, _)| *w).collect();
                    return Err(format!(
                        "invalid --only workload {bad:?}: expected some of {}",
                        all.join(", ")
                    ));
                }
                o.only = Some(names);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

/// One workload's row of the report.
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
    fn json(&self) -> Value {
        let done = self.status == "ok" && !self.runs.is_empty();
        let stat = |f: fn(&[f64]) -> f64| {
            if done {
                json!(f(&self.runs))
            } else {
                Value::Null
            }
        };
        let mut row = json!({
            "workload": self.workload,
            "unit": unit(self.workload),
            "median": stat(median_of),
            "min": stat(|v| v.iter().copied().fold(f64::INFINITY, f64::min)),
            "max": stat(|v| v.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            "runs": self.runs,
            "status": self.status,
        });
        if let Some(e) = self.elapsed {
            row["elapsed_s"] = json!((e * 1e3).round() / 1e3);
        }
        let (params, extra): (Vec<_>, Vec<_>) = self.fields.iter().partition(|(k, _)| is_param(k));
        let object = |fields: Vec<&(&str, Value)>| {
            Value::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect::<Map<_, _>>(),
            )
        };
        if !params.is_empty() {
            row["params"] = object(params);
        }
        if !extra.is_empty() {
            row["extra"] = object(extra);
        }
        if let Some(s) = &self.stuck_in {
            row["stuck_in"] = json!(s);
        }
        if !self.after_timeout_of.is_empty() {
            row["after_timeout_of"] = json!(self.after_timeout_of);
        }
        row
    }
}

/// The whole report, rewritten after every workload.
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
    fn json(&self) -> Value {
        let floors: Map<String, Value> = self
            .floors
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        json!({
            "system": "unidist-rs",
            "mode": self.mode,
            "backend": self.backend,
            "quick": self.quick,
            "repeats": self.repeats,
            "time_limit_s": self.time_limit,
            "status": self.status,
            "init_s": (self.init_s * 1e3).round() / 1e3,
            "versions": {"unidist-rs": env!("CARGO_PKG_VERSION"), "workers": self.workers},
            "floors": floors,
            "rows": self.rows.iter().map(Row::json).collect::<Vec<_>>(),
        })
    }

    fn write(&self, out: Option<&str>) {
        let Some(path) = out else { return };
        if let Err(e) = write_json(path, &self.json()) {
            eprintln!("unidist-bench: {e}");
        }
    }
}

/// The floors this process can measure: one 64 MiB memcpy (best of 5), and where the workers
/// are other processes the raw MPI ping-pong and bandwidth between rank 0 and rank 1.
fn measure_floors() -> Fields {
    let src = vec![3u8; LARGE_BYTES];
    let mut dst = vec![1u8; LARGE_BYTES];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        best = best.min(t.elapsed().as_secs_f64());
    }
    let mut floors = vec![("memcpy_64mib_gbs", json!(LARGE_BYTES as f64 / best / 1e9))];
    if unidist::capabilities().is_ok_and(|c| c.separate_processes) {
        match unidist::bench_mpi_raw_floors(2000, LARGE_BYTES as u64) {
            Ok((half_rtt, bw)) => {
                floors.push(("mpi_rtt_8b_us", json!(2.0 * half_rtt * 1e6)));
                floors.push(("mpi_bw_64mib_gbs", json!(bw / 1e9)));
            }
            Err(e) => eprintln!("unidist-bench: the raw MPI floors could not be measured: {e}"),
        }
    }
    floors
}

/// Runs the workloads; returns the exit code.
pub(crate) fn main(args: &[String]) -> i32 {
    let options = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("unidist-bench: {e}\nusage: {USAGE}");
            return 2;
        }
    };
    let selected: Vec<&'static str> = WORKLOADS
        .iter()
        .map(|(w, _)| *w)
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
    let backend =
        unidist::config::Backend::get().map_or_else(|_| "unknown".into(), |b| b.to_string());
    let mut report = Report {
        mode: options.mode.clone().unwrap_or_else(|| backend.clone()),
        backend,
        quick: options.quick,
        repeats: options.repeats,
        time_limit: options
            .time_limit
            .unwrap_or(if options.quick { 15.0 } else { 60.0 }),
        status: "running".into(),
        init_s: t0.elapsed().as_secs_f64(),
        workers: 0,
        floors: vec![],
        rows: selected.iter().map(|w| pending_row(w)).collect(),
    };
    let out = options.out.as_deref();
    if let Err(e) = init {
        report.status = format!("init failed: {e}");
        for row in &mut report.rows {
            row.status = format!("not run: runtime init failed: {e}");
        }
        report.write(out);
        eprintln!("[unidist-rs-{}] init failed: {e}", report.mode);
        return 1;
    }
    report.workers = unidist::num_cpus();
    report.floors = measure_floors();
    report.write(out);
    let sizes = if options.quick {
        workloads::QUICK
    } else {
        workloads::FULL
    };
    // big_object stops repeating at three quarters of its limit, so it ends before the limit.
    let big_limit = workloads::time_limit("big_object", report.time_limit);
    let sizes = sizes.with_big_object(options.big_object_bytes, 0.75 * big_limit);
    let timed_out = run_rows(&mut report, sizes, out);
    finish(&mut report, &timed_out, out)
}

fn pending_row(workload: &'static str) -> Row {
    Row {
        workload,
        status: "pending".into(),
        runs: vec![],
        elapsed: None,
        fields: vec![],
        stuck_in: None,
        after_timeout_of: vec![],
    }
}

/// Runs every row in turn; returns the workloads that timed out.
fn run_rows(report: &mut Report, sizes: workloads::Sizes, out: Option<&str>) -> Vec<String> {
    let tag = format!("[unidist-rs-{}]", report.mode);
    let mut timed_out: Vec<String> = Vec::new();
    for i in 0..report.rows.len() {
        let w = report.rows[i].workload;
        if w == "big_object" {
            if let Some(why) = data_rows::skip_reason(report.quick, sizes.big_bytes) {
                report.rows[i].status = format!("skipped: {why}");
                eprintln!("{tag} {w:<18} skipped: {why}");
                report.write(out);
                continue;
            }
        }
        report.rows[i].status = "running".into();
        report.write(out);
        let started = Instant::now();
        let limit = workloads::time_limit(w, report.time_limit);
        let done = run_limited(w, sizes, report.repeats, limit);
        let elapsed = started.elapsed().as_secs_f64();
        let row = &mut report.rows[i];
        row.status = done.status;
        row.runs = done.runs;
        row.fields = done.fields;
        row.elapsed = Some(elapsed);
        row.after_timeout_of = timed_out.clone();
        if row.status == "timeout" {
            row.stuck_in = done.stuck_in;
            timed_out.push(w.to_string());
        }
        let shown = if row.status == "ok" && !row.runs.is_empty() {
            format!("{:.4} {}", median_of(&row.runs), unit(w))
        } else {
            row.status.chars().take(90).collect()
        };
        eprintln!("{tag} {w:<18} {shown} ({elapsed:.1}s)");
        report.write(out);
    }
    timed_out
}

/// Shuts the runtime down (bounded: a workload left running after its timeout may keep it from
/// shutting down), writes the final report and prints the done line; returns the exit code.
fn finish(report: &mut Report, timed_out: &[String], out: Option<&str>) -> i32 {
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
    report.write(out);
    println!("{DONE} ({})", report.status);
    if report.status != "done" || !timed_out.is_empty() {
        // Threads stuck in the runtime must not keep the process (and its MPI job) alive.
        std::process::exit(0);
    }
    0
}
