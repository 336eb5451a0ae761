//! The MPI trace rows of `cargo xtask test-backends`: a 3-rank job (`tests/mpi/trace.rs`, the
//! `mpi_trace` binary of the tests crate) runs with `UNIDIST_TIMELINE` set and checks its own
//! trace file and stats from rank 0; the row passes when the job exits 0 within a bound and its
//! trace renders as an SVG (`cargo xtask timeline-svg`) with a row on each rank. Two more
//! jobs check bad input: a trace path in a missing directory fails `init`, and a trace that
//! cannot be written at the end fails `shutdown` while the job still ends.
//! One row per MPI implementation and launch mode the fault rows cover: SPMD on Open MPI and
//! MPICH, spawn on Open MPI.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::backend_table::{self, BackendEntry};
use crate::backends::{Impl, Launch, Row};
use crate::util;

/// How long the job may take.
const LIMIT: Duration = Duration::from_secs(120);
/// How long every process of the job gets to end after the checks passed.
const GRACE: Duration = Duration::from_secs(15);
const PROGRAM: &str = "mpi_trace";

/// How one trace row ended: skipped (with the reason), or its run (time taken, or what failed).
pub(crate) type Outcome = Result<Result<Duration, String>, String>;

/// Runs the trace row of every MPI backend and launch mode that `selects` accepts; returns one
/// (label, outcome) per row.
pub(crate) fn run(selects: &dyn Fn(&Row) -> bool) -> Vec<(String, Outcome)> {
    let modes = [
        (Impl::OpenMpi, Launch::Spmd { np: 3 }),
        (Impl::Mpich, Launch::Spmd { np: 3 }),
        (Impl::OpenMpi, Launch::Spawn { cpus: 2 }),
    ];
    let mut out = Vec::new();
    for backend in backend_table::mpi_backends() {
        for (imp, launch) in modes {
            let row = Row {
                backend: backend.name,
                features: backend.features,
                mpi: Some(imp),
                launch,
                shared_store: true,
            };
            if !selects(&row) {
                continue;
            }
            let label = format!("{} trace", row.label());
            if let Some(reason) = imp.missing() {
                out.push((label, Err(reason)));
                continue;
            }
            println!("==> trace: {label}");
            let started = Instant::now();
            let r = build(backend, imp).and_then(|bin| {
                ["", "bad-path", "lost-file", "paused"]
                    .into_iter()
                    .try_for_each(|mode| run_one(backend, imp, launch, &bin, mode))
            });
            let r = r.map(|()| started.elapsed());
            match &r {
                Ok(t) => println!("==> trace: {label} passed in {}", util::human(*t)),
                Err(e) => println!("==> trace: {label} FAILED: {e}"),
            }
            out.push((label, Ok(r)));
        }
    }
    out
}

/// Builds the program with `backend`'s features against `imp`; returns its path.
fn build(backend: &BackendEntry, imp: Impl) -> Result<PathBuf, String> {
    let mut cmd = util::cargo();
    cmd.args(["build", "-p", "unidist-tests", "--bin", PROGRAM]);
    for f in backend.features {
        cmd.args(["--features", f]);
    }
    // MPICC, the target directory and, where it is shared, the right mpi-sys.
    imp.prepare_build(&mut cmd)?;
    println!("==> building: {}", util::describe(&cmd));
    util::run_step(&mut cmd)?;
    Ok(imp.target_dir().join("debug").join(PROGRAM))
}

/// The trace of a checked job renders as the README's picture does (`cargo xtask
/// timeline-svg`), with a row for a thread of each of the job's three ranks.
fn draws_every_rank(trace: &Path) -> Result<(), String> {
    let svg = trace.with_extension("svg");
    let (trace, out) = (trace.display().to_string(), svg.display().to_string());
    let rows = crate::timeline_svg::render(&trace, &out)?;
    let text = std::fs::read_to_string(&svg).map_err(|e| format!("cannot read {out}: {e}"))?;
    let missing: Vec<String> = (0..3)
        .map(|r| format!("rank {r} ("))
        .filter(|name| !text.contains(name.as_str()))
        .collect();
    if text.starts_with("<svg") && missing.is_empty() {
        println!("==> trace: the trace renders as an SVG of {rows} threads");
        Ok(())
    } else {
        Err(format!("the SVG of the trace has no row of {missing:?}"))
    }
}

/// Runs the job in `mode` (empty: the full check) with its trace file in a fresh directory
/// (a missing one for `bad-path`); Ok when it exits 0 in time.
fn run_one(
    backend: &BackendEntry,
    imp: Impl,
    launch: Launch,
    bin: &Path,
    mode: &str,
) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("unidist-trace-row-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let sub = if mode == "bad-path" {
        "missing"
    } else {
        "trace"
    };
    let trace = dir.join(sub).join("trace.json");
    if mode != "bad-path" {
        std::fs::create_dir_all(dir.join(sub))
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    println!(
        "==> trace: job {:?}",
        if mode.is_empty() { "check" } else { mode }
    );
    let mut cmd = match launch {
        Launch::Spmd { np } => {
            let mut c = Command::new(imp.mpiexec());
            c.args(["-n", &np.to_string()]).arg(bin);
            c.env("UNIDIST_IS_MPI_SPAWN_WORKERS", "false");
            c
        }
        Launch::Spawn { cpus } => {
            let mut c = Command::new(bin);
            c.env("UNIDIST_IS_MPI_SPAWN_WORKERS", "true")
                .env("UNIDIST_CPUS", cpus.to_string());
            c
        }
        Launch::Direct => return Err("the trace row needs an MPI launch".into()),
    };
    if !mode.is_empty() {
        cmd.arg(mode);
    }
    cmd.envs(imp.env().iter().copied())
        .env("UNIDIST_BACKEND", backend.name)
        .env("UNIDIST_TIMELINE", &trace)
        .current_dir(util::root())
        .stdin(Stdio::null());
    // The program's last line; the job then has a few seconds to end every process.
    let bounds = util::Bounds {
        limit: LIMIT,
        last_line: Some((|l: &str| l.starts_with("trace: every check passed"), GRACE)),
    };
    let finished = util::run_bounded(&mut cmd, &bounds)
        .map_err(|e| format!("cannot start {}: {e}", util::describe(&cmd)))?;
    let passed = finished
        .lines
        .iter()
        .any(|l| l == "trace: every check passed");
    let drawn = match mode {
        "" if passed => draws_every_rank(&trace),
        _ => Ok(()),
    };
    let _ = std::fs::remove_dir_all(&dir);
    match finished.status {
        Some(s) if s.success() && passed => drawn,
        Some(s) => Err(format!(
            "job {mode:?} ended with {s} (its checks are on stderr above)"
        )),
        None if passed => Err(format!(
            "the checks passed but the job did not end within {GRACE:?} after them"
        )),
        None => Err(format!("the job did not end within {LIMIT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_of_three_ranks_renders_and_one_without_a_rank_is_refused() {
        let dir = std::env::temp_dir().join(format!("xtask-trace-svg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let trace = dir.join("trace.json");
        let mut events = vec![serde_json::json!(
            {"ph": "X", "cat": "get", "name": "get", "pid": 0, "tid": 1, "ts": 0.0, "dur": 9.0}
        )];
        for pid in 0..3 {
            let name = format!("rank {pid} (h)");
            events.push(serde_json::json!(
                {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}}
            ));
        }
        for pid in 1..3 {
            events.push(serde_json::json!(
                {"ph": "X", "cat": "task", "name": "f", "pid": pid, "tid": 2, "ts": 1.0, "dur": 2.0}
            ));
        }
        let write = |events: &[serde_json::Value]| {
            let doc = serde_json::json!({ "traceEvents": events });
            std::fs::write(&trace, doc.to_string()).unwrap();
        };
        write(&events);
        assert_eq!(draws_every_rank(&trace), Ok(()));
        // Rank 2 ran nothing: it has no row.
        events.pop();
        write(&events);
        let e = draws_every_rank(&trace).unwrap_err();
        assert!(e.contains("rank 2"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
