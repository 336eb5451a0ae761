//! The ULFM fault row of `cargo xtask test-backends`: Open MPI 5 started with
//! `mpiexec --with-ft ulfm` (its User-Level Failure Mitigation) does not end an SPMD job when a
//! worker dies, so rank 0 goes on as it does in spawn mode: a task with `max_retries` that
//! killed its worker runs again on a live one and returns its value, a task without retries
//! fails with `WorkerLost` naming the rank and host, and rank 0 finishes `main`, then exits with
//! status 1 saying which rank was lost. Without ULFM the launcher ends the whole job (the other
//! fault rows check that).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::backend_table;
use crate::backends::{Impl, Launch, Options, Report, Row, Verdict};
use crate::util;

/// Ranks of the job: rank 0 and two workers, both killed in turn (as the matrix rows, 3).
const RANKS: u32 = 3;
const LIMIT: Duration = Duration::from_secs(120);

/// The row, when the selection includes Open MPI 5 in SPMD mode and fault rows.
pub(crate) fn run(options: &Options) -> Option<Report> {
    let backend = backend_table::mpi_backends().next()?;
    let row = Row::mpi(backend, Impl::OpenMpi5, Launch::Spmd { np: RANKS });
    if !options.faults || !options.selects(&row) {
        return None;
    }
    let label = format!("{} spmd openmpi5 np={RANKS} ulfm faults", backend.name);
    let report = |verdict, passed, failed, elapsed| Report {
        label: label.clone(),
        verdict,
        passed,
        failed,
        elapsed,
    };
    if let Some(absent) = Impl::OpenMpi5.absent() {
        let verdict = if absent.no_network {
            Verdict::NotHere(absent.reason)
        } else {
            Verdict::Skipped(absent.reason)
        };
        return Some(report(verdict, 0, 0, None));
    }
    let started = std::time::Instant::now();
    let outcome = build(backend.features).and_then(|bin| check(&bin));
    Some(match outcome {
        Ok(()) => report(Verdict::Passed, 1, 0, Some(started.elapsed())),
        Err(e) => report(Verdict::Failed(e), 0, 1, Some(started.elapsed())),
    })
}

/// Builds the fault program (debug profile: beside the conformance build of the same
/// implementation, this costs seconds).
fn build(features: &[&str]) -> Result<PathBuf, String> {
    let imp = Impl::OpenMpi5;
    let mut cmd = util::cargo();
    cmd.args(["build", "-p", "unidist-tests", "--bin", "mpi_fault"]);
    for f in features {
        cmd.args(["--features", f]);
    }
    imp.prepare_build(&mut cmd)?;
    println!("==> building: {}", util::describe(&cmd));
    util::run_step(&mut cmd)?;
    let bin = imp.target_dir().join("debug").join("mpi_fault");
    crate::mpi_impls::check_links(imp, &bin)?;
    Ok(bin)
}

/// Runs `mpi_fault kill-worker-retry` under `mpiexec --with-ft ulfm` and judges its output.
fn check(bin: &std::path::Path) -> Result<(), String> {
    let imp = Impl::OpenMpi5;
    // The program reports on stderr; the bounded runner keeps stdout, so both go there.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exec \"$@\" 2>&1", "sh"])
        .arg(imp.mpiexec())
        .args(["--with-ft", "ulfm", "-n", &RANKS.to_string()])
        .arg(bin)
        .arg("kill-worker-retry")
        .envs(imp.env().iter().copied())
        .env("UNIDIST_IS_MPI_SPAWN_WORKERS", "false")
        .env_remove("UNIDIST_MPI_SPAWN")
        .env_remove("UNIDIST_BACKEND")
        .current_dir(util::root());
    println!("==> ulfm: {}", util::describe(&cmd));
    let bounds = util::Bounds {
        limit: LIMIT,
        last_line: None,
    };
    let finished =
        util::run_bounded(&mut cmd, &bounds).map_err(|e| format!("cannot start: {e}"))?;
    let output = finished.lines.join("\n");
    judge(
        &output,
        finished.timed_out,
        finished.status.and_then(|s| s.code()),
    )
}

/// The verdict on a run's output and exit code.
fn judge(output: &str, timed_out: bool, code: Option<i32>) -> Result<(), String> {
    if timed_out {
        return Err(format!("did not end within {}", util::human(LIMIT)));
    }
    if output.contains("noticed that process rank") {
        return Err("the launcher ended the job when the worker died (ULFM off?)".into());
    }
    if !output.contains("fault: kill-worker-retry held") {
        return Err(
            "rank 0 did not go on: the retried task did not return 2, or the task without \
             retries did not fail with WorkerLost naming the host"
                .into(),
        );
    }
    if !output.contains("the job lost rank") {
        return Err("rank 0 did not report the lost ranks at exit".into());
    }
    match code {
        Some(1) => Ok(()),
        other => Err(format!(
            "the job ended with exit code {other:?}; expected 1 (rank 0's status after losing a rank)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_job_that_went_on_passes() {
        let held = "fault: kill-worker-retry held\nunidist: the job lost rank 1 (its process 9 \
                    ended); exiting with status 1";
        assert_eq!(judge(held, false, Some(1)), Ok(()));
        assert!(judge(held, true, Some(1)).is_err());
        assert!(judge(held, false, Some(0)).is_err());
        let ended = "prterun noticed that process rank 2 with PID 1 on node vm exited on signal 9";
        assert!(judge(ended, false, Some(137))
            .unwrap_err()
            .contains("launcher"));
        assert!(judge("fault: the retried task gave Err(..)", false, Some(1)).is_err());
    }
}
