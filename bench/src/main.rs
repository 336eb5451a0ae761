//! The benchmark program of unidist, built and run by `cargo xtask bench`: one binary, three
//! suites, all through the public API on the backend `UNIDIST_BACKEND` selects.
//!
//! ```text
//! unidist-bench workloads [--out FILE] [--mode LABEL] [--quick] [--repeats N] [--time-limit SECS] [--only W1,W2] [--big-object-bytes N]
//! unidist-bench floors-local --out FILE [--rows tasks,round_trip,actors,object,scaling,actor_cost]
//! unidist-bench floors-mpi --out FILE
//! unidist-bench costs --out FILE [--tasks N] [--rounds R] [--toggle-timeline]
//! unidist-bench scale --out FILE [--tasks N] [--rounds R]
//! unidist-bench ray-names --out FILE [--quick] [--only NAME1,NAME2]
//! ```
//!
//! - `workloads`: the workloads shared with the Python peers (see [`workloads`] and
//!   [`data_rows`]), with the floors the same run can measure.
//! - `floors-local`: the local pool's rows against bare rayon and actix floors.
//! - `floors-mpi`: the MPI backend's rows against raw MPI floors (build with `--features mpi`,
//!   run under `mpiexec -n 3` with `UNIDIST_IS_MPI_SPAWN_WORKERS=false`).
//! - `costs`: empty tasks with and without `max_retries(3)`, in a process with or without the
//!   timeline recording, or with it switched on and off between rounds (see [`costs`]).
//! - `scale`: init time, task rate, rank 0's CPU per task and every rank's memory of one MPI
//!   job (see [`scale`]).
//! - `ray-names`: the rows of `ray microbenchmark` a Ray user knows by name, with Ray's meaning
//!   (see [`ray_names`]).
//!
//! Each suite writes one JSON report (serde_json) that `cargo xtask bench` reads.

mod costs;
mod data_rows;
mod floors;
mod floors_local;
mod floors_mpi;
mod measure;
mod ray_names;
mod scale;
mod suite;
mod workloads;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.split_first() {
        Some((command, rest)) if command == "workloads" => suite::main(rest),
        Some((command, rest)) if command == "floors-local" => floors_local::main(rest),
        Some((command, rest)) if command == "floors-mpi" => floors_mpi::main(rest),
        Some((command, rest)) if command == "costs" => costs::main(rest),
        Some((command, rest)) if command == "scale" => scale::main(rest),
        Some((command, rest)) if command == "ray-names" => ray_names::main(rest),
        other => {
            if let Some((command, _)) = other {
                eprintln!("unidist-bench: unknown suite {command:?}");
            }
            eprintln!(
                "usage:\n  {}\n  {}\n  {}\n  {}\n  {}\n  {}",
                suite::USAGE,
                floors_local::USAGE,
                floors_mpi::USAGE,
                costs::USAGE,
                scale::USAGE,
                ray_names::USAGE
            );
            2
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
