//! Fault and exit scenarios for the MPI backend, driven by the fault rows of
//! `cargo xtask test-backends` (`xtask/src/faults.rs`), which checks each job's exit status,
//! message, duration and that no process of it is left behind.
//!
//! - `kill-worker`: a task kills its own worker process with SIGKILL; rank 0's `get` must fail
//!   naming the lost rank (exit status 4), and the job must end with a non-zero status.
//! - `hold`: tasks that run for ten minutes occupy the workers; rank 0 prints `ready <pid>` and
//!   blocks in `get`, so that the caller can signal rank 0 and check that every rank exits.
//! - `panic`: rank 0 panics outside a task; the job must be aborted, not hang.
//! - `no-shutdown`: rank 0 returns from `main` without `shutdown`; every rank must still end.
//! - `kill-worker-shared`: a worker makes a 1 MiB result, rank 0 reads it (through the shared
//!   object store, in a segment the worker created), then that worker is killed; after
//!   `shutdown` no segment of the job may be left in `/dev/shm` (exit status 4, else 6; 5 if no
//!   segment was made, i.e. the store is off). It prints `job <pid>` first, so that a caller
//!   can look for the job's segments itself when the launcher ends rank 0 too (SPMD).
//! - `exit`: rank 0 calls `std::process::exit(0)` with a task in flight; every rank must end.
//! - `worker-fails-early` (spawn mode): each spawned worker exits with status 3 before `init`,
//!   so it never joins; rank 0 must end with a message saying its workers did not join, not
//!   wait forever in `init`. (A spawned worker is told apart by the rank variable its launcher
//!   sets: `OMPI_COMM_WORLD_RANK`, `PMI_RANK` or `PMIX_RANK`; rank 0, started alone, has none
//!   before `init`.)
//! - `kill-worker-retry` (spawn mode, two workers): a task with `max_retries(2)` kills its worker
//!   on its first run; rank 0's `get` must give the second run's value. Then a task without
//!   retries kills the other worker; its `get` must fail with `WorkerLost` naming the rank and
//!   the host, and `stats()` must count it as the one failed task (it failed on rank 0, not on
//!   a worker). It prints `kill-worker-retry held` if all of this holds (rank 0 then exits with
//!   status 1, as after any lost worker).
//! - `kill-actor-restart` (spawn mode, two workers): an actor with `max_restarts(1)` counts from
//!   10; a call kills its worker and fails with `WorkerLost`; the next calls run on the actor
//!   created again on the other worker, whose count starts from 10 again. An actor without
//!   restarts is then placed on that worker too, and the restarted actor kills it: both fail
//!   with `ActorDead`, the first saying that its restarts ran out. It prints
//!   `kill-actor-restart held` if all of this holds.
//! - `kill-worker-lineage` (spawn mode, two workers): a chain of five tasks with
//!   `max_retries(2)`, each taking the previous output, finishes on one worker (rank 0 only
//!   waits, so no value leaves it), beside an object made there by a task without retries.
//!   A task without retries kills that worker. `get` of the chain's last object must give the
//!   right value, made again on the other worker (five rebuilds counted as retries), and `get`
//!   of the other object must fail with `WorkerLost` saying it cannot be rebuilt. It prints
//!   `kill-worker-lineage held` if all of this holds.

use std::io::Write;
use std::time::{Duration, Instant};

fn main() -> unidist::Result<()> {
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "worker-fails-early" {
        return worker_fails_early();
    }
    unidist::init()?;
    assert_eq!(unidist::get(&add_one::remote(1))?, 2);
    match mode.as_str() {
        "kill-worker" => kill_worker(),
        "kill-worker-shared" => kill_worker_shared(),
        "hold" => hold(),
        "kill-worker-retry" => kill_worker_retry(),
        "kill-actor-restart" => kill_actor_restart(),
        "kill-worker-lineage" => kill_worker_lineage(),
        "panic" => panic!("deliberate panic on rank 0"),
        "exit" => {
            let _pending = sleep_ms::remote(2000);
            std::process::exit(0)
        }
        "no-shutdown" => {
            println!("returning from main without shutdown");
            Ok(())
        }
        other => {
            eprintln!(
                "fault: unknown mode {other:?} (accepted: kill-worker, kill-worker-shared, hold, panic, exit, \
                 no-shutdown, kill-worker-retry, kill-actor-restart, kill-worker-lineage, \
                 worker-fails-early)"
            );
            std::process::exit(2);
        }
    }
}

fn worker_fails_early() -> unidist::Result<()> {
    let spawned = ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"]
        .iter()
        .any(|k| std::env::var_os(k).is_some());
    if spawned {
        eprintln!("fault: a spawned worker ends before init");
        std::process::exit(3);
    }
    unidist::init()?;
    println!("fault: init returned although no worker joined");
    unidist::shutdown()
}

fn kill_worker() -> ! {
    let r = die::remote(());
    let started = Instant::now();
    match unidist::get(&r) {
        Ok(()) => {
            eprintln!("fault: the killed worker's task returned a value");
            std::process::exit(3);
        }
        Err(e) => {
            eprintln!("fault: get failed after {:?}: {e}", started.elapsed());
            std::process::exit(4);
        }
    }
}

fn kill_worker_retry() -> ! {
    let path = std::env::temp_dir().join(format!("unidist-fault-runs-{}", std::process::id()));
    let path = path.to_string_lossy().into_owned();
    let _ = std::fs::remove_file(&path);
    let started = Instant::now();
    let r = die_on_first_run::options()
        .max_retries(2)
        .remote(path.clone());
    let retried = unidist::get(&r);
    eprintln!(
        "fault: the retried task gave {retried:?} after {:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_file(&path);
    let started = Instant::now();
    let lost = unidist::get(&die::remote(()));
    match &lost {
        Ok(()) => eprintln!("fault: the killed worker's task returned a value"),
        Err(e) => eprintln!(
            "fault: without retries, get failed after {:?}: {:?}: {e}",
            started.elapsed(),
            e.kind()
        ),
    }
    let lost_ok = lost.is_err_and(|e| {
        e.kind() == unidist::ErrorKind::WorkerLost && e.to_string().contains("host")
    });
    // Both workers are lost now, so the counters are rank 0's alone: the task without retries
    // failed here, and nothing else failed.
    let failed = unidist::stats().map(|s| s.tasks_failed);
    eprintln!("fault: tasks failed: {failed:?}");
    // Rank 0 exits with status 1 whatever this says, because it lost workers: the verdict is
    // this line.
    if matches!(retried, Ok(2)) && lost_ok && matches!(failed, Ok(1)) {
        eprintln!("fault: kill-worker-retry held");
        std::process::exit(4);
    }
    std::process::exit(3);
}

/// A count that a call can end together with its worker process.
struct Tally {
    count: i64,
}

#[unidist::actor]
impl Tally {
    fn new(start: i64) -> Self {
        Tally { count: start }
    }

    /// Adds `n`; returns the new count.
    fn add(&mut self, n: i64) -> i64 {
        self.count += n;
        self.count
    }

    /// Kills the worker process this actor lives in.
    fn kill_worker(&self) {
        die(());
    }
}

fn kill_actor_restart() -> ! {
    let started = Instant::now();
    let kind = |r: &unidist::Result<i64>| r.as_ref().err().map(|e| e.kind());
    let a = Tally::options().max_restarts(1).remote(10);
    let before = (unidist::get(&a.add(1)), unidist::get(&a.add(1)));
    eprintln!("fault: before the kill: {before:?}");
    let killed = unidist::get(&a.kill_worker());
    eprintln!("fault: the killing call gave {killed:?}");
    let killed_ok = killed.is_err_and(|e| {
        e.kind() == unidist::ErrorKind::WorkerLost && e.to_string().contains("host")
    });
    let after = (unidist::get(&a.add(5)), unidist::get(&a.add(1)));
    eprintln!(
        "fault: after the restart: {after:?} ({:?} in)",
        started.elapsed()
    );
    // Only the restarted actor's worker is left: this one lives there too.
    let b = Tally::remote(100);
    let b_before = unidist::get(&b.add(1));
    let killed_again = unidist::get(&a.kill_worker()).is_err();
    let exhausted = unidist::get(&a.add(1));
    let b_after = unidist::get(&b.add(1));
    eprintln!(
        "fault: second kill: failed {killed_again}; restarted actor: {exhausted:?}; \
         actor without restarts: {b_before:?} then {b_after:?}"
    );
    let exhausted_ok = kind(&exhausted) == Some(unidist::ErrorKind::ActorDead)
        && exhausted.is_err_and(|e| e.to_string().contains("restarts ran out"));
    let held = matches!(before, (Ok(11), Ok(12)))
        && killed_ok
        && matches!(after, (Ok(15), Ok(16)))
        && matches!(b_before, Ok(101))
        && killed_again
        && exhausted_ok
        && kind(&b_after) == Some(unidist::ErrorKind::ActorDead);
    if held {
        eprintln!("fault: kill-actor-restart held");
        std::process::exit(4);
    }
    std::process::exit(3);
}

/// One link of a chain: its value, the process that made it, whether every link so far was
/// made in the same process, and padding. The padding keeps the link on its worker: a result
/// of at most 16 KiB also goes to its owner with the completion, and one of 64 KiB or more
/// draws the next task to the worker that holds it.
type Link = (i64, u32, bool, Vec<u8>);

/// The padding of a link.
const LINK_PAD: usize = 64 * 1024;

#[unidist::remote]
fn link_start(n: i64) -> Link {
    (n, std::process::id(), true, vec![0; LINK_PAD])
}

#[unidist::remote]
fn link_next(prev: &Link) -> Link {
    let me = std::process::id();
    (prev.0 + 1, me, prev.2 && prev.1 == me, vec![0; LINK_PAD])
}

/// True if `link` and every link before it were made in this process.
#[unidist::remote]
fn all_here(link: &Link) -> bool {
    link.2 && link.1 == std::process::id()
}

/// Kills this worker if `link` was made in it; returns otherwise.
#[unidist::remote]
fn die_if_made_here(link: &Link) {
    if link.1 == std::process::id() {
        die(());
    }
}

/// Blocks until `r` is ready without fetching its value (it stays on its worker only).
fn ready<T>(r: &unidist::ObjectRef<T>) -> bool {
    matches!(unidist::wait(std::slice::from_ref(r), 1), Ok((done, _)) if done.len() == 1)
}

fn kill_worker_lineage() -> ! {
    let started = Instant::now();
    let retried = || unidist::stats().map_or(0, |s| s.tasks_retried);
    // Each task is sent once the one before it finished, to the worker holding its large
    // argument (the first, with no work in flight, to the lowest rank): the whole chain lives
    // on one worker (checked below).
    let mut link = link_start::options().max_retries(2).remote(10);
    let mut chained = ready(&link);
    for _ in 0..4 {
        link = link_next::options().max_retries(2).remote(&link);
        chained &= ready(&link);
    }
    // Made beside the chain's last link (drawn by it), by a task without retries.
    let plain = link_next::remote(&link);
    chained &= ready(&plain);
    let one_worker = unidist::get(&all_here::remote(&plain));
    let before = retried();
    let killed = unidist::get(&die_if_made_here::remote(&link));
    eprintln!(
        "fault: chain ready {chained}, on one worker: {one_worker:?}; the killing task gave \
         {killed:?} after {:?}",
        started.elapsed()
    );
    let rebuilt = unidist::get(&link);
    let rebuilds = retried().saturating_sub(before);
    eprintln!(
        "fault: the chain's last object: {:?} ({rebuilds} rebuilds, {:?} in)",
        rebuilt.as_ref().map(|l| (l.0, l.2)),
        started.elapsed()
    );
    let lost = unidist::get(&plain);
    match &lost {
        Ok(v) => eprintln!("fault: the object without retries gave {}", v.0),
        Err(e) => eprintln!("fault: the object without retries: {:?}: {e}", e.kind()),
    }
    let lost_ok = lost.is_err_and(|e| {
        e.kind() == unidist::ErrorKind::WorkerLost && e.to_string().contains("cannot be rebuilt")
    });
    let killed_ok = killed.is_err_and(|e| e.kind() == unidist::ErrorKind::WorkerLost);
    let held = chained
        && matches!(one_worker, Ok(true))
        && killed_ok
        && matches!(rebuilt, Ok((14, _, true, _)))
        && rebuilds >= 5
        && lost_ok;
    if held {
        eprintln!("fault: kill-worker-lineage held");
        std::process::exit(4);
    }
    std::process::exit(3);
}

/// Kills its worker on its first run (counted in the file `path`); returns the run's number.
#[unidist::remote]
fn die_on_first_run(path: String) -> u32 {
    let n = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    std::fs::write(&path, n.to_string()).expect("the run counter file must be writable");
    if n == 1 {
        die(());
    }
    n
}

fn kill_worker_shared() -> ! {
    println!("job {}", std::process::id());
    let _ = std::io::stdout().flush();
    // A worker puts 1 MiB: a large put on a rank that shares its host is written into a segment
    // at once. (A task's plain 1 MiB result would not be: rank 0 reads it from the worker's
    // memory.)
    let big = match unidist::get(&put_bytes::remote(1 << 20)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fault: the worker's put failed: {e}");
            std::process::exit(5);
        }
    };
    let got = unidist::get(&big).map(|v| v.len());
    eprintln!("fault: read the worker's 1 MiB object: {got:?}");
    // The next task goes to the worker holding the object and kills it while its segment
    // exists.
    let before = segments();
    eprintln!("fault: segments of the job before the kill: {before:?}");
    if before.is_empty() {
        eprintln!("fault: no segment was made: the shared object store is off");
        std::process::exit(5);
    }
    let r = die_after::remote(&big);
    let failed = unidist::get(&r).is_err();
    let _ = unidist::shutdown();
    let left = segments();
    eprintln!("fault: get failed: {failed}; segments left after shutdown: {left:?}");
    std::process::exit(if left.is_empty() { 4 } else { 6 });
}

/// The shared-memory segments of this job (rank 0 is this process).
fn segments() -> Vec<String> {
    let prefix = format!("unidist-{}-", std::process::id());
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Puts `n` bytes from the worker it runs on and returns the ref.
#[unidist::remote]
fn put_bytes(n: usize) -> unidist::ObjectRef<Vec<u8>> {
    unidist::put(vec![7; n])
}

#[unidist::remote]
fn die_after(_data: &Vec<u8>) {
    die(());
}

fn hold() -> ! {
    let refs: Vec<_> = (0..4).map(|_| sleep_ms::remote(600_000)).collect();
    // The tasks reach their workers before the caller signals.
    std::thread::sleep(Duration::from_millis(300));
    println!("ready {}", std::process::id());
    let _ = std::io::stdout().flush();
    let r = unidist::get_all(&refs);
    eprintln!("fault: get_all of the held tasks returned: {r:?}");
    std::process::exit(5);
}

#[unidist::remote]
fn add_one(x: i64) -> i64 {
    x + 1
}

#[unidist::remote]
fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[unidist::remote]
fn die(_unit: ()) {
    std::thread::sleep(Duration::from_millis(200));
    // SIGKILL leaves the runtime no chance to report anything, like an out-of-memory kill.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    std::thread::sleep(Duration::from_secs(60));
}
