//! The MPI fault rows of `cargo xtask test-backends`: a worker killed with SIGKILL, SIGTERM and
//! SIGINT sent to rank 0, (spawn mode) rank 0 killed with SIGKILL, (SPMD mode) ranks that run
//! different binaries, and unusual ends of rank 0 (a panic outside a task, returning without
//! `shutdown`, `exit` with work in flight). Each scenario checks the job's exit status and
//! message, that it ends within a bound, and that no process of it is left behind. The programs
//! are binaries of the tests crate (`tests/mpi/`), built with the backend's features.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend_table::BackendEntry;
use crate::backends::{Impl, Launch};
use crate::mpi_impls::Family;
use crate::util;

/// How long a scenario may take from its start to the end of every process.
const LIMIT: Duration = Duration::from_secs(60);
/// How long after the job's end its remaining processes get to exit.
const ORPHAN_GRACE: Duration = Duration::from_secs(15);

/// What a scenario does once rank 0 is ready.
#[derive(Clone, Copy)]
enum Scenario {
    /// A task kills its own worker.
    KillWorker,
    /// Rank 0 gets this signal while its tasks run.
    SignalRoot(&'static str),
    /// The workers run another program (`mpi_nested_refs`), with other registered functions.
    Mismatch,
    /// Rank 0 panics outside a task: the job is aborted.
    Panic,
    /// Rank 0 returns from `main` without `shutdown`: every rank ends, status 0.
    NoShutdown,
    /// Rank 0 calls `exit(0)` with a task in flight: every rank ends, status 0.
    ExitInFlight,
    /// Not a fault: refs passed inside argument values are freed (`mpi_nested_refs`), which
    /// needs every rank's memory, so it runs here beside the other whole-job scenarios.
    NestedRefs,
    /// (Spawn mode) a task with `max_retries(2)` kills its worker and is re-run on the other;
    /// then a task without retries kills that one and fails with `WorkerLost`.
    KillWorkerRetry,
    /// (Spawn mode) an actor with `max_restarts(1)` kills its worker and is created again on
    /// the other one; its calls after the loss run there, from a fresh state. Once that worker
    /// is killed too, its calls and those of an actor without restarts fail with `ActorDead`.
    KillActorRestart,
    /// (Spawn mode) a chain of tasks with `max_retries(2)` finished on a worker that is then
    /// killed: its last object is rebuilt on the other worker; an object made there by a task
    /// without retries fails with `WorkerLost` saying it cannot be rebuilt.
    KillWorkerLineage,
    /// With the shared object store on, a worker holding a segment is killed: no segment of
    /// the job is left in `/dev/shm` once the job has ended, or, where the launcher ends rank 0
    /// with the worker (MPICH), once the next job on the host has started.
    KillWorkerShared,
    /// (Spawn mode) the spawned workers end before they start MPI: rank 0 ends with a message
    /// saying they did not join, within its bound (three heartbeats, at least 30 s).
    WorkerFailsEarly,
}

impl Scenario {
    fn label(self) -> String {
        match self {
            Scenario::KillWorker => "worker SIGKILL".into(),
            Scenario::SignalRoot(s) => format!("rank 0 SIG{s}"),
            Scenario::Mismatch => "different binaries".into(),
            Scenario::NestedRefs => "nested refs freed".into(),
            Scenario::Panic => "rank 0 panics".into(),
            Scenario::NoShutdown => "no shutdown".into(),
            Scenario::ExitInFlight => "exit with work in flight".into(),
            Scenario::KillWorkerRetry => "worker SIGKILL, task retried".into(),
            Scenario::KillActorRestart => "worker SIGKILL, actor restarted".into(),
            Scenario::KillWorkerLineage => "worker SIGKILL, objects rebuilt".into(),
            Scenario::KillWorkerShared => "worker SIGKILL, shared store".into(),
            Scenario::WorkerFailsEarly => "workers end before MPI starts".into(),
        }
    }
}

/// The scenarios for a launch mode: in SPMD mode the launcher owns the processes (it ends the
/// job when one dies, so a killed rank 0 is its business); in spawn mode rank 0 is the
/// launcher, and its workers must notice when it is killed.
fn scenarios(launch: Launch) -> Vec<Scenario> {
    let mut s = vec![
        Scenario::NestedRefs,
        Scenario::KillWorker,
        Scenario::SignalRoot("TERM"),
        Scenario::SignalRoot("INT"),
        Scenario::Panic,
        Scenario::NoShutdown,
        Scenario::ExitInFlight,
        Scenario::KillWorkerShared,
    ];
    match launch {
        Launch::Spawn { .. } => {
            s.push(Scenario::SignalRoot("KILL"));
            s.push(Scenario::WorkerFailsEarly);
        }
        Launch::Spmd { .. } => s.push(Scenario::Mismatch),
        Launch::Direct => {}
    }
    // Only in spawn mode does rank 0 outlive a worker (an SPMD launcher ends the job).
    if matches!(launch, Launch::Spawn { .. }) {
        s.push(Scenario::KillWorkerRetry);
        s.push(Scenario::KillActorRestart);
        s.push(Scenario::KillWorkerLineage);
    }
    s
}

/// The programs of the scenarios, binaries of the tests crate (`mpi_hosts` is the cross-host
/// rows', `cluster_faults.rs`).
const PROGRAMS: [&str; 3] = ["mpi_fault", "mpi_nested_refs", "mpi_hosts"];

/// Builds the scenario programs with `backend`'s features against `imp`; returns the path of
/// `mpi_fault` (the other program sits beside it).
pub(crate) fn build(backend: &BackendEntry, imp: Impl) -> Result<PathBuf, String> {
    let mut cmd = util::cargo();
    cmd.args(["build", "-p", "unidist-tests"]);
    for f in backend.features {
        cmd.args(["--features", f]);
    }
    for p in PROGRAMS {
        cmd.args(["--bin", p]);
    }
    // MPICC, the target directory and, where it is shared, the right mpi-sys.
    imp.prepare_build(&mut cmd)?;
    println!("==> building: {}", util::describe(&cmd));
    util::run_step(&mut cmd)?;
    Ok(imp.target_dir().join("debug").join(PROGRAMS[0]))
}

/// Runs every scenario for `imp` and `launch`; returns one (label, outcome) per scenario.
pub(crate) fn run(
    imp: Impl,
    launch: Launch,
    bin: &Path,
) -> Vec<(String, Result<Duration, String>)> {
    scenarios(launch)
        .into_iter()
        .map(|s| {
            println!("==> fault: {} ({}, {launch:?})", s.label(), imp.name());
            let r = run_one(imp, launch, bin, s);
            match &r {
                Ok(t) => println!("==> fault: {} passed in {}", s.label(), util::human(*t)),
                Err(e) => println!("==> fault: {} FAILED: {e}", s.label()),
            }
            (s.label(), r)
        })
        .collect()
}

fn command(imp: Impl, launch: Launch, bin: &Path, s: Scenario) -> Command {
    let mode = match s {
        Scenario::KillWorker => "kill-worker",
        Scenario::SignalRoot(_) | Scenario::Mismatch => "hold",
        Scenario::Panic => "panic",
        Scenario::NoShutdown => "no-shutdown",
        Scenario::ExitInFlight => "exit",
        Scenario::KillWorkerRetry => "kill-worker-retry",
        Scenario::KillActorRestart => "kill-actor-restart",
        Scenario::KillWorkerLineage => "kill-worker-lineage",
        // 500 rounds of 1 MiB: a leak would be 500 MiB against a 64 MiB bound.
        Scenario::NestedRefs => "500",
        Scenario::KillWorkerShared => "kill-worker-shared",
        Scenario::WorkerFailsEarly => "worker-fails-early",
    };
    let bin = if matches!(s, Scenario::NestedRefs) {
        bin.with_file_name(PROGRAMS[1])
    } else {
        bin.to_path_buf()
    };
    let bin = bin.as_path();
    let mut cmd = match launch {
        Launch::Spmd { np } if matches!(s, Scenario::Mismatch) => {
            // MPMD: rank 0 runs this program, the others another one.
            let other = bin.with_file_name(PROGRAMS[1]);
            let mut c = Command::new(imp.mpiexec());
            c.args(["-n", "1"]).arg(bin).arg(mode);
            c.args([":", "-n", &(np - 1).max(1).to_string()]).arg(other);
            c.env("UNIDIST_IS_MPI_SPAWN_WORKERS", "false");
            c.envs(imp.env().iter().copied())
                .env_remove("UNIDIST_BACKEND")
                .current_dir(util::root());
            return c;
        }
        Launch::Spmd { np } => {
            let mut c = Command::new(imp.mpiexec());
            c.args(["-n", &np.to_string()]).arg(bin);
            c.env("UNIDIST_IS_MPI_SPAWN_WORKERS", "false");
            c
        }
        Launch::Spawn { cpus } => {
            let mut c = Command::new(bin);
            c.env("UNIDIST_CPUS", cpus.to_string());
            c
        }
        Launch::Direct => Command::new(bin),
    };
    cmd.arg(mode)
        .envs(imp.env().iter().copied())
        .env_remove("UNIDIST_BACKEND")
        .current_dir(util::root());
    if matches!(s, Scenario::KillWorkerShared) {
        cmd.env("UNIDIST_MPI_SHARED_OBJECT_STORE", "true");
    }
    cmd
}

/// Output lines of both streams, gathered by reader threads.
pub(crate) type Lines = Arc<Mutex<Vec<String>>>;

pub(crate) fn read_lines(child: &mut Child) -> (Lines, mpsc::Receiver<String>) {
    let lines: Lines = Arc::default();
    let (tx, rx) = mpsc::channel();
    let out = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    let err = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    for stream in [out, err].into_iter().flatten() {
        let lines = lines.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                println!("    | {line}");
                let _ = tx.send(line.clone());
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
    }
    (lines, rx)
}

fn run_one(imp: Impl, launch: Launch, bin: &Path, s: Scenario) -> Result<Duration, String> {
    let mut cmd = command(imp, launch, bin, s);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let pgid = child.id();
    let (lines, rx) = read_lines(&mut child);
    let result = drive(&mut child, &rx, s, started);
    let status = result.and_then(|()| wait_bounded(&mut child, started));
    let programs = PROGRAMS.map(|p| bin.with_file_name(p));
    let leftovers = status.as_ref().ok().map(|_| {
        let until = Instant::now() + ORPHAN_GRACE;
        programs.iter().try_for_each(|p| {
            wait_for_no_processes(p, until.saturating_duration_since(Instant::now()))
        })
    });
    // Whatever happened, nothing of this run may outlive it.
    util::kill_group(pgid);
    let _ = child.kill();
    let _ = child.wait();
    for p in &programs {
        kill_processes_of(p);
    }
    let status = status?;
    if let Some(Err(left)) = leftovers {
        return Err(format!("processes left behind: {left}"));
    }
    let took = started.elapsed();
    let mut all = lines.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
    if matches!(s, Scenario::KillWorkerShared) && !all.contains(LEFT_AFTER_SHUTDOWN) {
        // The launcher ended rank 0 with the killed worker (MPICH's Hydra does), so nothing of
        // the job could clean up: the next job on this host sweeps the segments at its start.
        next_start(imp, launch, bin)?;
        all.push_str(&format!("\n{SWEPT_AT_NEXT_START}"));
    }
    check(imp, launch, s, status, &all)?;
    Ok(took)
}

/// What rank 0 of `kill-worker-shared` prints once it has shut down.
const LEFT_AFTER_SHUTDOWN: &str = "segments left after shutdown: ";
/// Added to the output of `kill-worker-shared` when a second job ran after it.
const SWEPT_AT_NEXT_START: &str = "a second job started (and ended) after the killed one";

/// Runs a short job with the shared store on (`no-shutdown`: init, one task, exit), whose
/// start removes the segments of ended jobs.
fn next_start(imp: Impl, launch: Launch, bin: &Path) -> Result<(), String> {
    let mut cmd = command(imp, launch, bin, Scenario::NoShutdown);
    cmd.env("UNIDIST_MPI_SHARED_OBJECT_STORE", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the second job: {e}"))?;
    let pgid = child.id();
    let status = wait_bounded(&mut child, started);
    util::kill_group(pgid);
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!(
            "the second job (its start sweeps ended jobs) failed: {s}"
        )),
        Err(e) => Err(format!("the second job: {e}")),
    }
}

/// Waits for rank 0 to be ready, then does the scenario's action.
fn drive(
    child: &mut Child,
    rx: &mpsc::Receiver<String>,
    s: Scenario,
    started: Instant,
) -> Result<(), String> {
    let Scenario::SignalRoot(sig) = s else {
        return Ok(());
    };
    loop {
        let left = LIMIT.saturating_sub(started.elapsed());
        match rx.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok(line) => {
                if let Some(pid) = line.strip_prefix("ready ") {
                    std::thread::sleep(Duration::from_millis(200));
                    let ok = Command::new("kill")
                        .args([&format!("-{sig}"), pid.trim()])
                        .status()
                        .is_ok_and(|st| st.success());
                    return if ok {
                        Ok(())
                    } else {
                        Err(format!("cannot send SIG{sig} to rank 0 (pid {pid})"))
                    };
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(st)) = child.try_wait() {
                    return Err(format!("the job ended before rank 0 was ready ({st})"));
                }
                if started.elapsed() > LIMIT {
                    return Err(format!("rank 0 was not ready within {LIMIT:?}"));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("the job closed its output before rank 0 was ready".into());
            }
        }
    }
}

fn wait_bounded(child: &mut Child, started: Instant) -> Result<std::process::ExitStatus, String> {
    loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(st);
        }
        if started.elapsed() > LIMIT {
            return Err(format!("the job did not end within {LIMIT:?} (a hang)"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The expected outcome of each scenario.
fn check(
    imp: Impl,
    launch: Launch,
    s: Scenario,
    status: std::process::ExitStatus,
    output: &str,
) -> Result<(), String> {
    match s {
        Scenario::NestedRefs if status.success() && output.contains("nested refs freed") => {
            return Ok(())
        }
        Scenario::NestedRefs => return Err(format!("nested refs were not freed ({status})")),
        Scenario::NoShutdown | Scenario::ExitInFlight if status.success() => return Ok(()),
        Scenario::NoShutdown | Scenario::ExitInFlight => {
            return Err(format!("the job ended with {status}, expected status 0"))
        }
        _ => {}
    }
    if status.success() {
        return Err(format!("the job exited 0 after {}", s.label()));
    }
    match s {
        Scenario::KillWorker => {
            // In spawn mode rank 0 itself reports; in SPMD mode the launcher may end the job
            // before rank 0 notices, and then the launcher's message is the report.
            let root_reported =
                output.contains("the job lost rank") || output.contains("was lost (its process");
            let launcher_reported = match imp.family() {
                Family::OpenMpi => output.contains("exited on signal 9"),
                Family::Mpich => output.contains("signal 9") || output.contains("EXIT CODE: 9"),
            };
            if matches!(launch, Launch::Spawn { .. }) && !root_reported {
                return Err("rank 0 did not report the lost worker".into());
            }
            if !root_reported && !launcher_reported {
                return Err("neither rank 0 nor the launcher named the lost process".into());
            }
            if output.contains("returned a value") {
                return Err("a killed worker's task returned a value".into());
            }
        }
        Scenario::KillWorkerRetry | Scenario::KillActorRestart | Scenario::KillWorkerLineage => {
            check_recovered(s, status, output)?
        }
        Scenario::KillWorkerShared => check_no_segments(output)?,
        Scenario::WorkerFailsEarly => {
            if !output.contains("spawned workers did not all join") {
                return Err(format!(
                    "rank 0 did not say that its spawned workers did not join ({status})"
                ));
            }
        }
        Scenario::SignalRoot("KILL")
        | Scenario::NestedRefs
        | Scenario::NoShutdown
        | Scenario::ExitInFlight => {}
        Scenario::Panic => {
            if !output.contains("deliberate panic on rank 0") {
                return Err("rank 0's panic message is missing from the output".into());
            }
        }
        Scenario::Mismatch => {
            if !(output.contains("registered functions differ") && output.contains("mpi_fault::")) {
                return Err("rank 0 did not name the first differing function".into());
            }
        }
        Scenario::SignalRoot(sig) => {
            if !output.contains("rank 0 received signal") {
                return Err(format!("rank 0 did not report SIG{sig}"));
            }
        }
    }
    Ok(())
}

/// The spawn-mode recovery scenarios (retry, actor restart, lineage): what rank 0 printed
/// shows the work recovered on the other worker, and what could not be recovered failed.
fn check_recovered(
    s: Scenario,
    status: std::process::ExitStatus,
    output: &str,
) -> Result<(), String> {
    match s {
        Scenario::KillWorkerRetry => {
            let both = output.contains("kill-worker-retry held")
                && output.contains("the retried task gave Ok(2)")
                && output.contains("WorkerLost");
            if !both {
                return Err(format!(
                    "the retried task did not succeed, or the task without retries did not fail \
                     with WorkerLost naming the host ({status})"
                ));
            }
        }
        Scenario::KillActorRestart => {
            let held = output.contains("kill-actor-restart held")
                && output.contains("after the restart: (Ok(15), Ok(16))");
            if !held {
                return Err(format!(
                    "the restarted actor did not run its later calls from a fresh state, or the \
                     calls after its last restart did not fail with ActorDead ({status})"
                ));
            }
        }
        Scenario::KillWorkerLineage => {
            let held =
                output.contains("kill-worker-lineage held") && output.contains("cannot be rebuilt");
            if !held {
                return Err(format!(
                    "the chain lost with its worker was not rebuilt with the right value, or the \
                     object without retries did not fail with WorkerLost saying it cannot be \
                     rebuilt ({status})"
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// The shared-store scenario: the killed worker had a segment, rank 0 saw none left after
/// `shutdown`, and none of the job (named by rank 0's pid, which it prints) is in `/dev/shm`
/// now that every process of the job has ended.
fn check_no_segments(output: &str) -> Result<(), String> {
    if output.contains("the shared object store is off") {
        return Err("no shared-memory segment was made: the store did not take the object".into());
    }
    if !output.contains("segments of the job before the kill: [\"") {
        return Err("rank 0 did not list the killed worker's segment".into());
    }
    let after_shutdown = format!("{LEFT_AFTER_SHUTDOWN}[]");
    if !output.contains(&after_shutdown) && !output.contains(SWEPT_AT_NEXT_START) {
        return Err("rank 0 found segments of the job left after shutdown".into());
    }
    let job = output
        .lines()
        .find_map(|l| l.strip_prefix("job "))
        .map(str::trim)
        .ok_or("rank 0 did not print its pid (`job <pid>`)")?;
    let prefix = format!("unidist-{job}-");
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    if !left.is_empty() {
        for name in &left {
            let _ = std::fs::remove_file(Path::new("/dev/shm").join(name));
        }
        return Err(format!("segments of the job left in /dev/shm: {left:?}"));
    }
    Ok(())
}

/// Processes running `bin` (other than this one), as "pid" strings.
fn processes_of(bin: &Path) -> Vec<String> {
    let want = bin.to_string_lossy().into_owned();
    let name = bin
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
                return None;
            }
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let argv0 = cmdline.split(|b| *b == 0).next()?;
            let argv0 = String::from_utf8_lossy(argv0);
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
            let ours = argv0 == want || argv0.ends_with(&format!("/{name}"));
            (ours && !zombie).then_some(pid)
        })
        .collect()
}

fn wait_for_no_processes(bin: &Path, grace: Duration) -> Result<(), String> {
    let until = Instant::now() + grace;
    loop {
        let left = processes_of(bin);
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(format!("pids {}", left.join(", ")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill_processes_of(bin: &Path) {
    for pid in processes_of(bin) {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    }
}
