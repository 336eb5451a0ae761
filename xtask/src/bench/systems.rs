//! This project's systems (pyseq, pymp, MPI SPMD on Open MPI and MPICH, MPI spawn) running
//! `bench_workloads`, and the floor benchmarks `pymp_bench` and `mpi_bench`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{out_dir, Options};
use crate::backends::Impl;
use crate::util::{self, human, run_bounded, run_step, Bounds};

/// How one of this project's systems is started.
#[derive(Clone, Copy)]
enum Launch {
    /// The binary itself with `UNIDIST_BACKEND` set to this backend.
    Direct(&'static str),
    /// `mpiexec -n <np>` with spawning disabled.
    Spmd { np: u32 },
    /// The binary alone; rank 0 spawns `cpus` workers.
    Spawn { cpus: u32 },
}

/// One of this project's systems: a mode label, the MPI build it needs, and its launch.
#[derive(Clone, Copy)]
struct System {
    mode: &'static str,
    mpi: Option<Impl>,
    launch: Launch,
}

/// Every system of this project that the benchmark runs.
fn ours() -> [System; 5] {
    [
        System {
            mode: "pyseq",
            mpi: None,
            launch: Launch::Direct("pyseq"),
        },
        System {
            mode: "pymp",
            mpi: None,
            launch: Launch::Direct("pymp"),
        },
        System {
            mode: "mpi-openmpi-spmd",
            mpi: Some(Impl::OpenMpi),
            launch: Launch::Spmd { np: 3 },
        },
        System {
            mode: "mpi-mpich-spmd",
            mpi: Some(Impl::Mpich),
            launch: Launch::Spmd { np: 3 },
        },
        System {
            mode: "mpi-openmpi-spawn",
            mpi: Some(Impl::OpenMpi),
            launch: Launch::Spawn { cpus: 2 },
        },
    ]
}

/// One run whose report the table is made of.
pub struct Run {
    /// `<system>-<mode>`, e.g. `unidist-rs-pymp` or `ray-native`.
    pub label: String,
    /// True for this project's rows.
    pub ours: bool,
    /// The report the run wrote (it may be missing or incomplete).
    pub path: PathBuf,
    /// How the run ended when that was not a clean exit, e.g. `killed after 4m15s (time limit)`.
    pub ended: Option<String>,
    /// Why the run did not happen at all, e.g. a failed build or a missing `mpiexec`.
    pub not_run: Option<String>,
    pub elapsed: Option<Duration>,
}

/// Per-workload time limit of `bench_workloads` (it bounds itself; the process limit below is
/// the outer bound).
fn workload_limit(quick: bool) -> u64 {
    if quick {
        15
    } else {
        60
    }
}

pub fn repeats(quick: bool) -> usize {
    if quick {
        3
    } else {
        5
    }
}

/// The target directory of a build flavour; every build is pinned to it so that a
/// `CARGO_TARGET_DIR` in the caller's environment cannot send binaries elsewhere.
fn target_dir(mpi: Option<Impl>) -> PathBuf {
    mpi.map_or_else(|| util::root().join("target"), Impl::target_dir)
}

/// Builds `example` of `package` in the flavour `mpi`; returns the binary.
fn build(
    package: &str,
    example: &str,
    features: &[&str],
    mpi: Option<Impl>,
) -> Result<PathBuf, String> {
    let mut cmd = util::cargo();
    cmd.args(["build", "--release", "-p", package, "--example", example]);
    for f in features {
        cmd.args(["--features", f]);
    }
    cmd.env("CARGO_TARGET_DIR", target_dir(mpi));
    if let Some(imp) = mpi {
        cmd.env("MPICC", imp.mpicc());
    }
    println!("==> {}", util::describe(&cmd));
    run_step(&mut cmd)?;
    Ok(target_dir(mpi).join("release/examples").join(example))
}

fn is_done_line(line: &str) -> bool {
    line.starts_with("bench_workloads: done")
}

/// How long a run may take to exit after its final line.
const EXIT_GRACE: Duration = Duration::from_secs(20);

/// Runs `cmd` bounded by `limit`; `Some(description)` when it did not end cleanly.
fn run_limited(
    cmd: &mut Command,
    limit: Duration,
    last_line: bool,
) -> (Option<String>, Option<Duration>) {
    println!("==> {}", util::describe(cmd));
    let bounds = Bounds {
        limit,
        last_line: last_line.then_some((is_done_line as util::LineTest, EXIT_GRACE)),
    };
    match run_bounded(cmd, &bounds) {
        Err(e) => (Some(format!("cannot start: {e}")), None),
        Ok(f) => {
            let finished = f.lines.iter().any(|l| is_done_line(l));
            let ended = if f.timed_out && finished {
                Some(format!(
                    "finished, then did not exit within {}; killed",
                    human(EXIT_GRACE)
                ))
            } else if f.timed_out {
                Some(format!("killed after {} (time limit)", human(f.elapsed)))
            } else if !f.status.is_some_and(|s| s.success()) {
                Some(format!(
                    "process ended with {}",
                    f.status.map_or("no status".to_string(), |s| s.to_string())
                ))
            } else {
                None
            };
            (ended, Some(f.elapsed))
        }
    }
}

fn command(system: &System, bin: &Path) -> Command {
    let mut cmd = match system.launch {
        Launch::Direct(backend) => {
            let mut cmd = Command::new(bin);
            cmd.env("UNIDIST_BACKEND", backend);
            cmd
        }
        Launch::Spmd { np } => {
            let imp = system.mpi.unwrap_or(Impl::OpenMpi);
            let mut cmd = Command::new(imp.mpiexec());
            cmd.args(["-n", &np.to_string()]).arg(bin);
            cmd.env("UNIDIST_IS_MPI_SPAWN_WORKERS", "false");
            cmd
        }
        Launch::Spawn { cpus } => {
            let mut cmd = Command::new(bin);
            cmd.env("UNIDIST_IS_MPI_SPAWN_WORKERS", "true")
                .env("UNIDIST_CPUS", cpus.to_string());
            cmd
        }
    };
    if let Some(imp) = system.mpi {
        cmd.env("UNIDIST_BACKEND", "mpi")
            .envs(imp.env().iter().copied());
    }
    // The alias of UNIDIST_IS_MPI_SPAWN_WORKERS would conflict with the value set here.
    cmd.env_remove("UNIDIST_MPI_SPAWN")
        .current_dir(util::root());
    cmd
}

/// Builds and runs `bench_workloads` on every system of this project.
pub fn run_ours(options: &Options, notes: &mut Vec<String>) -> Vec<Run> {
    let mut builds: BTreeMap<Option<Impl>, Result<PathBuf, String>> = BTreeMap::new();
    let mut runs = Vec::new();
    for system in ours() {
        let label = format!("unidist-rs-{}", system.mode);
        let path = out_dir().join("runs").join(format!("{label}.json"));
        let mut run = Run {
            label,
            ours: true,
            path,
            ended: None,
            not_run: None,
            elapsed: None,
        };
        if let Some(why) = system.mpi.and_then(Impl::missing) {
            notes.push(format!("{}: not run, {why}", run.label));
            run.not_run = Some(why);
            runs.push(run);
            continue;
        }
        let bin = builds.entry(system.mpi).or_insert_with(|| {
            let features: &[&str] = if system.mpi.is_some() { &["mpi"] } else { &[] };
            build("unidist", "bench_workloads", features, system.mpi)
        });
        let bin = match bin {
            Ok(b) => b.clone(),
            Err(e) => {
                notes.push(format!("{}: not run, build failed: {e}", run.label));
                run.not_run = Some(format!("build failed: {e}"));
                runs.push(run);
                continue;
            }
        };
        let mut cmd = command(&system, &bin);
        cmd.arg("--out")
            .arg(&run.path)
            .args(["--mode", system.mode])
            .args(["--repeats", &repeats(options.quick).to_string()]);
        if options.quick {
            cmd.arg("--quick");
        }
        // Nine bounded workloads, plus start-up and shut-down.
        let limit = Duration::from_secs(9 * workload_limit(options.quick) + 120);
        let (ended, elapsed) = run_limited(&mut cmd, limit, true);
        if let Some(e) = &ended {
            notes.push(format!("{}: {e}", run.label));
        }
        run.ended = ended;
        run.elapsed = elapsed;
        runs.push(run);
    }
    runs
}

/// Floors and the floor benchmarks' own reports.
#[derive(Default)]
pub struct Floors {
    /// `rayon_spawn_channel_tasks_per_s`, `rayon_round_trip_us`, `actix_send_calls_per_s`,
    /// `memcpy_64mib_gbs` from `pymp_bench`; `mpi_rtt_8b_us`, `mpi_bw_64mib_gbs` from `mpi_bench`.
    pub values: BTreeMap<String, f64>,
    /// The reports of `pymp_bench` and `mpi_bench`, as written.
    pub reports: Vec<(String, Value)>,
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Runs `pymp_bench` (the bare rayon floors; in quick mode only the rows that measure them) and,
/// in full mode, `mpi_bench` (its rows against raw rsmpi).
pub fn run_floors(options: &Options, notes: &mut Vec<String>) -> Floors {
    let mut floors = Floors::default();
    match build("unidist-pymp", "pymp_bench", &[], None) {
        Err(e) => notes.push(format!("pymp_bench: not run, build failed: {e}")),
        Ok(bin) => {
            let mut cmd = Command::new(bin);
            cmd.current_dir(util::root())
                .env("CARGO_TARGET_DIR", target_dir(None));
            if options.quick {
                cmd.env("PYMP_BENCH_ROWS", "tasks,round_trip,actors");
            }
            let (ended, _) = run_limited(&mut cmd, Duration::from_secs(600), false);
            if let Some(e) = ended {
                notes.push(format!("pymp_bench: {e}"));
            }
            match read_json(&out_dir().join("pymp.json")) {
                Some(doc) => {
                    if let Some(map) = doc["floors"].as_object() {
                        for (k, v) in map {
                            if let Some(v) = v.as_f64() {
                                floors.values.insert(k.clone(), v);
                            }
                        }
                    }
                    floors.reports.push(("pymp_bench".into(), doc));
                }
                None => {
                    notes.push("pymp_bench: wrote no report; the rayon floors are missing".into())
                }
            }
        }
    }
    if options.quick {
        return floors;
    }
    let imp = Impl::OpenMpi;
    if let Some(why) = imp.missing() {
        notes.push(format!("mpi_bench: not run, {why}"));
        return floors;
    }
    match build("unidist-mpi", "mpi_bench", &[], Some(imp)) {
        Err(e) => notes.push(format!("mpi_bench: not run, build failed: {e}")),
        Ok(bin) => {
            let mut cmd = Command::new(imp.mpiexec());
            cmd.args(["-n", "3"])
                .arg(bin)
                .current_dir(util::root())
                .envs(imp.env().iter().copied())
                .env("UNIDIST_IS_MPI_SPAWN_WORKERS", "false")
                .env_remove("UNIDIST_MPI_SPAWN");
            let (ended, _) = run_limited(&mut cmd, Duration::from_secs(900), false);
            if let Some(e) = ended {
                notes.push(format!("mpi_bench: {e}"));
            }
            match read_json(&out_dir().join("mpi.json")) {
                Some(doc) => floors
                    .reports
                    .push(("mpi_bench (Open MPI, 3 ranks)".into(), doc)),
                None => notes.push("mpi_bench: wrote no report".into()),
            }
        }
    }
    floors
}
