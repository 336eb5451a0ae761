//! This project's systems (each backend of the backend table; MPI-launched ones SPMD and spawning
//! on each MPI implementation) running `unidist-bench workloads`, and the floor benchmarks
//! (`unidist-bench floors-local`, `floors-mpi`) on the backends the table names for them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{out_dir, rows, Options};
use crate::backend_table::{self, BackendEntry, FloorSuite};
use crate::backends::Impl;
use crate::util::{self, human, run_bounded, run_step, Bounds};

/// How one of this project's systems is started.
#[derive(Clone, Copy)]
enum Launch {
    /// The binary itself with `UNIDIST_BACKEND` set to the backend.
    Direct,
    /// `mpiexec -n <np>` with spawning disabled.
    Spmd { np: u32 },
    /// The binary alone; rank 0 spawns `cpus` workers.
    Spawn { cpus: u32 },
}

/// One of this project's systems: a mode label, its backend, the MPI build it needs, and its
/// launch.
#[derive(Clone)]
pub(super) struct System {
    pub(super) mode: String,
    pub(super) backend: &'static BackendEntry,
    pub(super) mpi: Option<Impl>,
    launch: Launch,
}

/// Every system of this project that the benchmark runs: each in-process backend, and each
/// MPI-launched backend SPMD (3 ranks) on each MPI implementation (`mpi_impls.rs`: Debian's
/// Open MPI and MPICH, Open MPI 5, MPICH 5 and Intel MPI from PyPI) and spawning (2 workers) on
/// those that can. Every MPI run measures its own raw MPI floors.
pub(super) fn ours() -> Vec<System> {
    let mut systems = Vec::new();
    for backend in &backend_table::BACKENDS {
        match backend.launch {
            backend_table::Launch::InProcess => systems.push(System {
                mode: backend.name.to_string(),
                backend,
                mpi: None,
                launch: Launch::Direct,
            }),
            backend_table::Launch::Mpi => {
                // Every implementation SPMD, then spawning on those that can.
                let spmd = crate::mpi_impls::ALL.map(|i| (i, "spmd", Launch::Spmd { np: 3 }));
                let spawn = crate::mpi_impls::ALL
                    .into_iter()
                    .filter(|i| i.spawns())
                    .map(|i| (i, "spawn", Launch::Spawn { cpus: 2 }));
                for (imp, how, launch) in spmd.into_iter().chain(spawn) {
                    systems.push(System {
                        mode: format!("{}-{}-{how}", backend.name, imp.name()),
                        backend,
                        mpi: Some(imp),
                        launch,
                    });
                }
            }
        }
    }
    systems
}

/// The systems of [`ours`] that `options` asks for: every one, or those `--systems` names.
pub(super) fn chosen(options: &Options) -> Vec<System> {
    ours()
        .into_iter()
        .filter(|s| options.systems.as_ref().is_none_or(|l| l.contains(&s.mode)))
        .collect()
}

/// The benchmark program for `system`, built when needed; `None`, with a note saying why under
/// `label` and `group`, when its MPI is missing or the build failed.
pub(super) fn binary_for(
    system: &System,
    builds: &mut Builds,
    (label, group): (&str, &str),
    notes: &mut Vec<String>,
) -> Option<PathBuf> {
    if let Some(why) = system.mpi.and_then(Impl::missing) {
        notes.push(format!("{label} {group}: not run, {why}"));
        return None;
    }
    built(builds, system.backend.features, system.mpi)
        .map_err(|e| notes.push(format!("{label} {group}: not run, build failed: {e}")))
        .ok()
}

/// One run whose report the table is made of.
pub(super) struct Run {
    /// `<system>-<mode>`, e.g. `unidist-rs-pymp` or `ray-native`.
    pub label: String,
    /// True for this project's rows.
    pub ours: bool,
    /// True for this project's rows on a backend launched through MPI, whose floors are the raw
    /// MPI ones its own run measures.
    pub mpi: bool,
    /// The report the run wrote (it may be missing or incomplete).
    pub path: PathBuf,
    /// How the run ended when that was not a clean exit, e.g. `killed after 4m15s (time limit)`.
    pub ended: Option<String>,
    /// Why the run did not happen at all, e.g. a failed build or a missing `mpiexec`.
    pub not_run: Option<String>,
    pub elapsed: Option<Duration>,
}

/// Per-workload time limit of the workloads suite (it bounds itself; the process limit below is
/// the outer bound).
fn workload_limit(quick: bool) -> u64 {
    if quick {
        15
    } else {
        60
    }
}

pub(super) fn repeats(quick: bool) -> usize {
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

/// Builds the benchmark program (package `unidist-bench`) with `features` in the flavour `mpi`;
/// returns the binary.
fn build(features: &[&str], mpi: Option<Impl>) -> Result<PathBuf, String> {
    let mut cmd = util::cargo();
    cmd.args([
        "build",
        "--release",
        "-p",
        "unidist-bench",
        "--bin",
        "unidist-bench",
    ]);
    for f in features {
        cmd.args(["--features", f]);
    }
    cmd.env("CARGO_TARGET_DIR", target_dir(mpi));
    if let Some(imp) = mpi {
        imp.prepare_build(&mut cmd)?;
    }
    println!("==> {}", util::describe(&cmd));
    run_step(&mut cmd)?;
    let bin = target_dir(mpi).join("release").join("unidist-bench");
    match mpi {
        Some(imp) => {
            crate::mpi_impls::check_links(imp, &bin)?;
            imp.keep_binary(&bin)
        }
        None => Ok(bin),
    }
}

/// The benchmark program's builds, one per (features, MPI implementation).
pub(super) type Builds = BTreeMap<(&'static [&'static str], Option<Impl>), Result<PathBuf, String>>;

pub(super) fn built(
    builds: &mut Builds,
    features: &'static [&'static str],
    mpi: Option<Impl>,
) -> Result<PathBuf, String> {
    builds
        .entry((features, mpi))
        .or_insert_with(|| build(features, mpi))
        .clone()
}

fn is_done_line(line: &str) -> bool {
    line.starts_with("unidist-bench: done")
}

/// How long a run may take to exit after its final line.
const EXIT_GRACE: Duration = Duration::from_secs(20);

/// Runs `cmd` bounded by `limit`; `Some(description)` when it did not end cleanly.
pub(super) fn run_limited(
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

pub(super) fn command(system: &System, bin: &Path) -> Command {
    let mut cmd = match system.launch {
        Launch::Direct => Command::new(bin),
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
    cmd.env("UNIDIST_BACKEND", system.backend.name);
    if let Some(imp) = system.mpi {
        cmd.envs(imp.env().iter().copied());
    }
    // The alias of UNIDIST_IS_MPI_SPAWN_WORKERS would conflict with the value set here.
    cmd.env_remove("UNIDIST_MPI_SPAWN")
        .current_dir(util::root());
    cmd
}

/// Builds and runs `unidist-bench workloads` on every system of this project.
pub(super) fn run_ours(
    options: &Options,
    builds: &mut Builds,
    notes: &mut Vec<String>,
) -> Vec<Run> {
    let mut runs = Vec::new();
    for system in chosen(options) {
        let label = format!("unidist-rs-{}", system.mode);
        let path = out_dir().join("runs").join(format!("{label}.json"));
        let mut run = Run {
            label,
            ours: true,
            mpi: system.mpi.is_some(),
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
        let bin = match built(builds, system.backend.features, system.mpi) {
            Ok(b) => b,
            Err(e) => {
                notes.push(format!("{}: not run, build failed: {e}", run.label));
                run.not_run = Some(format!("build failed: {e}"));
                runs.push(run);
                continue;
            }
        };
        let mut cmd = command(&system, &bin);
        cmd.arg("workloads")
            .arg("--out")
            .arg(&run.path)
            .args(["--mode", &system.mode])
            .args(["--repeats", &repeats(options.quick).to_string()]);
        if options.quick {
            cmd.arg("--quick");
        }
        // Every bounded workload, plus start-up and shut-down.
        let base = workload_limit(options.quick);
        let limit = Duration::from_secs(rows::total_limit(base, options.quick) + 120);
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
pub(super) struct Floors {
    /// `rayon_spawn_channel_tasks_per_s`, `rayon_round_trip_us`, `actix_send_calls_per_s`,
    /// `memcpy_64mib_gbs` from `floors-local`; the MPI rows of `floors-mpi` have no such values
    /// (every MPI workload run measures its own raw floors).
    pub values: BTreeMap<String, f64>,
    /// The reports of the floor benchmarks, as written, with their labels.
    pub reports: Vec<(String, Value)>,
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Where the floor benchmarks write their reports.
pub(super) fn floors_dir() -> PathBuf {
    out_dir().join("floors")
}

/// Runs the floor benchmark of every backend the table names one for: `floors-local` (in quick
/// mode only the rows that measure the floors) and, in full mode, `floors-mpi` on Open MPI with
/// 3 ranks.
pub(super) fn run_floors(
    options: &Options,
    builds: &mut Builds,
    notes: &mut Vec<String>,
) -> Floors {
    let mut floors = Floors::default();
    for backend in &backend_table::BACKENDS {
        match backend.floors {
            Some(FloorSuite::Local) => local_floors(options, builds, backend, &mut floors, notes),
            Some(FloorSuite::Mpi) if !options.quick => {
                mpi_floors(builds, backend, &mut floors, notes)
            }
            _ => {}
        }
    }
    floors
}

fn local_floors(
    options: &Options,
    builds: &mut Builds,
    backend: &BackendEntry,
    floors: &mut Floors,
    notes: &mut Vec<String>,
) {
    let label = format!("{} floors", backend.name);
    let bin = match built(builds, backend.features, None) {
        Ok(bin) => bin,
        Err(e) => return notes.push(format!("{label}: not run, build failed: {e}")),
    };
    let path = floors_dir().join(format!("{}.json", backend.name));
    let mut cmd = Command::new(bin);
    cmd.arg("floors-local")
        .arg("--out")
        .arg(&path)
        .current_dir(util::root())
        .env("UNIDIST_BACKEND", backend.name);
    if options.quick {
        cmd.args(["--rows", "tasks,round_trip,actors"]);
    }
    let (ended, _) = run_limited(&mut cmd, Duration::from_secs(600), false);
    if let Some(e) = ended {
        notes.push(format!("{label}: {e}"));
    }
    match read_json(&path) {
        Some(doc) => {
            if let Some(map) = doc["floors"].as_object() {
                for (k, v) in map {
                    if let Some(v) = v.as_f64() {
                        floors.values.insert(k.clone(), v);
                    }
                }
            }
            floors.reports.push((label, doc));
        }
        None => notes.push(format!("{label}: wrote no report; its floors are missing")),
    }
}

fn mpi_floors(
    builds: &mut Builds,
    backend: &BackendEntry,
    floors: &mut Floors,
    notes: &mut Vec<String>,
) {
    let imp = Impl::OpenMpi;
    let label = format!("{} floors", backend.name);
    if let Some(why) = imp.missing() {
        return notes.push(format!("{label}: not run, {why}"));
    }
    let bin = match built(builds, backend.features, Some(imp)) {
        Ok(bin) => bin,
        Err(e) => return notes.push(format!("{label}: not run, build failed: {e}")),
    };
    let path = floors_dir().join(format!("{}.json", backend.name));
    let mut cmd = Command::new(imp.mpiexec());
    cmd.args(["-n", "3"])
        .arg(bin)
        .arg("floors-mpi")
        .arg("--out")
        .arg(&path)
        .current_dir(util::root())
        .envs(imp.env().iter().copied())
        .env("UNIDIST_BACKEND", backend.name)
        .env("UNIDIST_IS_MPI_SPAWN_WORKERS", "false")
        .env_remove("UNIDIST_MPI_SPAWN");
    let (ended, _) = run_limited(&mut cmd, Duration::from_secs(900), false);
    if let Some(e) = ended {
        notes.push(format!("{label}: {e}"));
    }
    match read_json(&path) {
        Some(doc) => floors
            .reports
            .push((format!("{label} (Open MPI, 3 ranks)"), doc)),
        None => notes.push(format!("{label}: wrote no report")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mpi_implementation_has_its_rows() {
        let modes: Vec<String> = ours().into_iter().map(|s| s.mode).collect();
        let mpi = backend_table::mpi_backends().next().unwrap().name;
        for imp in crate::mpi_impls::ALL {
            let spmd = format!("{mpi}-{}-spmd", imp.name());
            let spawn = format!("{mpi}-{}-spawn", imp.name());
            assert!(modes.contains(&spmd), "{spmd} missing from {modes:?}");
            assert_eq!(modes.contains(&spawn), imp.spawns(), "{spawn} in {modes:?}");
        }
    }
}
