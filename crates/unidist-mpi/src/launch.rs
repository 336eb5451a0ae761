//! Launch modes (SPMD, spawn parent, spawned worker), the registry check and host discovery,
//! all run on the communication thread right after `MPI_Init_thread`.
//!
//! Mode decision, given the world size after init:
//! - this process has a parent communicator: it was spawned, it is a worker;
//! - world size > 1: SPMD (`mpiexec -n N app`), whatever `UNIDIST_IS_MPI_SPAWN_WORKERS` says,
//!   since those ranks are already running the program (documented in the crate docs);
//! - world size 1 and spawning enabled: rank 0 spawns `UNIDIST_CPUS` workers of its own
//!   executable and merges the intercommunicator (parent low, children high);
//! - world size 1 while the launcher says it started more processes (`srun`, `mpirun` or a PMI
//!   launcher of another MPI): an error that says they are separate one-rank jobs;
//! - world size 1 and spawning disabled: an error that says SPMD needs at least 2 ranks.

use std::sync::mpsc;
use std::time::Duration;

use mpi::environment::Universe;
use mpi::topology::{Communicator, InterCommunicator, MergeOrder, SimpleCommunicator};
use mpi::traits::*;
use mpi::Threading;
use unidist_core::{registry, Error, Result};

use crate::ffi;
use crate::library::{Entry, Library, ThreadLevel};

/// Configuration read by `start` on the caller's thread and handed to the communication thread.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// `UNIDIST_IS_MPI_SPAWN_WORKERS`.
    pub spawn: bool,
    /// `UNIDIST_CPUS`: workers to spawn.
    pub cpus: usize,
    /// `UNIDIST_MPI_HOSTS`.
    pub hosts: Vec<String>,
    /// `UNIDIST_MPI_BACKOFF` in seconds.
    pub backoff: f64,
    /// `UNIDIST_MPI_HEARTBEAT` in seconds.
    pub heartbeat: f64,
    /// Environment to forward to spawned workers.
    pub env: Vec<(String, String)>,
}

/// How this process joined the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Started by `mpiexec -n N`.
    Spmd,
    /// Started alone; spawned the workers.
    SpawnParent,
    /// Spawned by rank 0.
    SpawnChild,
}

/// MPI, initialized, with the communicator every message uses.
pub(crate) struct Established {
    /// Dropping it finalizes MPI.
    pub universe: Universe,
    /// World (SPMD) or the merged parent+children communicator (spawn).
    pub comm: SimpleCommunicator,
    /// The intercommunicator to the spawned workers (spawn parent only).
    pub inter: Option<InterCommunicator>,
    /// The launch mode.
    pub mode: Mode,
}

/// What `start` learns from the communication thread after init.
#[derive(Clone, Debug)]
pub(crate) struct InitInfo {
    /// This process's rank in the job communicator.
    pub rank: u32,
    /// Number of ranks (rank 0 + workers).
    pub size: u32,
    /// The IP address of each rank's host.
    pub ips: Vec<String>,
    /// Each rank's process id, and whether it shares this process's pid namespace on the same
    /// kernel (so that the id can be checked locally for liveness).
    pub pids: Vec<(u32, bool)>,
    /// The launch mode.
    pub mode: Mode,
}

fn unavailable(reason: impl Into<String>) -> Error {
    Error::BackendUnavailable {
        backend: "mpi".into(),
        reason: reason.into(),
    }
}

fn command_line() -> String {
    let mut parts: Vec<String> = std::env::args().collect();
    if parts.is_empty() {
        parts.push("app".into());
    }
    parts.join(" ")
}

/// For a world of one rank: whether the launcher meant a larger job, as the variables it sets
/// for each process say (`srun`, Open MPI's `mpirun`, a PMI launcher such as Hydra). Then each
/// process it started is a separate one-rank job, because this MPI library does not speak that
/// launcher's process-management interface (PMI); the message says so and what to do.
fn separate_jobs(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    let count = |k: &str| var(k).and_then(|v| v.trim().parse::<u64>().ok());
    let (n, by) = if var("SLURM_PROCID").is_some() && count("SLURM_STEP_NUM_TASKS") > Some(1) {
        (
            count("SLURM_STEP_NUM_TASKS")?,
            "srun (SLURM_STEP_NUM_TASKS)",
        )
    } else if count("OMPI_COMM_WORLD_SIZE") > Some(1) {
        (
            count("OMPI_COMM_WORLD_SIZE")?,
            "Open MPI's mpirun (OMPI_COMM_WORLD_SIZE)",
        )
    } else if count("PMI_SIZE") > Some(1) {
        (count("PMI_SIZE")?, "a PMI launcher (PMI_SIZE)")
    } else {
        return None;
    };
    Some(format!(
        "{by} started {n} processes, but MPI sees a job of 1 rank here: they are {n} separate \
         one-rank jobs, because this MPI library does not speak that launcher's process \
         management interface (PMI). Launch with the mpiexec of the MPI library this program \
         was built against, or under Slurm use `srun --mpi=pmix` (see `srun --mpi=list`) with an \
         MPI built for the site's PMI"
    ))
}

/// Why a world of one rank cannot go on: the launcher started separate one-rank jobs, or SPMD
/// mode needs at least two ranks; `None` when rank 0 may spawn its workers.
fn one_rank_refusal(spawn: bool) -> Option<Error> {
    if let Some(why) = separate_jobs(|k| std::env::var(k).ok()) {
        return Some(unavailable(why));
    }
    (!spawn).then(|| {
        unavailable(format!(
            "SPMD mode (UNIDIST_IS_MPI_SPAWN_WORKERS=false) needs at least 2 MPI ranks (rank 0 runs \
             main, the others are workers), but this job has 1; run `mpiexec -n N {}` with N >= 2, \
             or let rank 0 spawn its workers with UNIDIST_IS_MPI_SPAWN_WORKERS=true",
            command_line()
        ))
    })
}

/// Initializes MPI on this thread and establishes the job communicator for the launch mode.
pub(crate) fn establish(s: &Settings) -> Result<Established> {
    // MPI allows asking for the library before init: what it needs before init comes from
    // the library table.
    let lib = Library::detect(&mpi::environment::library_version().unwrap_or_default());
    let entry = lib.entry();
    if s.spawn {
        for (key, value) in lib.spawn_env(|k| std::env::var(k).ok()) {
            // Read by the library in MPI_Init, below (and by the launcher it starts, which
            // passes them to the workers); this thread is the only one that calls MPI, and the
            // variables are not ones the rest of the program reads.
            std::env::set_var(key, value);
        }
    }
    let wanted = match entry.thread_level {
        ThreadLevel::Funneled => Threading::Funneled,
    };
    let Some((universe, provided)) = mpi::initialize_with_threading(wanted) else {
        return Err(unavailable(
            "MPI is already initialized in this process (the mpi backend cannot be started twice, \
             and MPI cannot be re-initialized after a shutdown)",
        ));
    };
    if provided < wanted {
        return Err(unavailable(format!(
            "{lib} provides thread level {provided:?}; the mpi backend needs at least {wanted:?}"
        )));
    }
    let world = universe.world();
    ffi::errors_return(&world);
    if let Some(parent) = world.parent() {
        let comm = parent.merge(MergeOrder::High);
        // Dropping the handle would disconnect from rank 0 now (a collective that rank 0 does
        // only at shutdown); the universe disconnects the parent when it finalizes.
        std::mem::forget(parent);
        ffi::errors_return(&comm);
        return Ok(Established {
            universe,
            comm,
            inter: None,
            mode: Mode::SpawnChild,
        });
    }
    if world.size() > 1 {
        return Ok(Established {
            universe,
            comm: world,
            inter: None,
            mode: Mode::Spmd,
        });
    }
    if let Some(refusal) = one_rank_refusal(s.spawn) {
        return Err(refusal);
    }
    let spmd_command = format!(
        "UNIDIST_IS_MPI_SPAWN_WORKERS=false mpiexec -n {} {}",
        s.cpus + 1,
        command_line()
    );
    if let Some(why) = lib.cannot_spawn(&spmd_command) {
        return Err(unavailable(why));
    }
    let exe = std::env::current_exe().map_err(|e| {
        unavailable(format!(
            "cannot find this program's executable to spawn workers: {e}"
        ))
    })?;
    let exe = exe.to_string_lossy().into_owned();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let info = spawn_info(s, entry);
    let n = i32::try_from(s.cpus)
        .map_err(|_| unavailable(format!("cannot spawn {} workers", s.cpus)))?;
    let self_comm = universe.world();
    let watch = watch_spawn(s.cpus, spawn_limit(s.heartbeat));
    let inter = ffi::spawn(&self_comm, &exe, &args, n, &info).map_err(|e| {
        unavailable(lib.spawn_failed(s.cpus, &e, &spmd_command, |k| std::env::var(k).ok()))
    })?;
    let comm = inter.merge(MergeOrder::Low);
    drop(watch);
    ffi::errors_return(&comm);
    Ok(Established {
        universe,
        comm,
        inter: Some(inter),
        mode: Mode::SpawnParent,
    })
}

/// How long rank 0 waits for its spawned workers to join: three heartbeats
/// (`UNIDIST_MPI_HEARTBEAT`), at least 30 s (starting daemons on other hosts through a
/// launcher agent took over 10 s once in the simulated cluster, where it usually takes 2-4 s).
fn spawn_limit(heartbeat_secs: f64) -> Duration {
    Duration::from_secs_f64((heartbeat_secs * 3.0).max(30.0))
}

/// `MPI_Comm_spawn` returns only once every spawned worker has joined, and a worker that ends
/// before it starts MPI (a failed check of its own, a program that exits early) never joins:
/// rank 0 would wait forever. This thread ends the process with a message after `limit`,
/// unless the returned sender is dropped first.
fn watch_spawn(workers: usize, limit: Duration) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    let watcher = std::thread::Builder::new()
        .name("unidist-spawn-watch".into())
        .spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!(
                    "unidist: the {workers} spawned workers did not all join within {} s (three \
                     times UNIDIST_MPI_HEARTBEAT, at least 30 s): a worker ended before it \
                     started MPI (its own error is above) or the launcher could not start it; \
                     exiting",
                    limit.as_secs_f64()
                );
                crate::process::exit_process(1);
            }
        });
    if let Err(e) = watcher {
        tracing::warn!(error = %e, "cannot start the spawn watch: a worker that never joins hangs rank 0");
    }
    tx
}

/// The `MPI_Comm_spawn` info of the workers, with the library's keys: the configuration the
/// user set (where the launcher does not forward the environment itself) and the hosts.
fn spawn_info(s: &Settings, entry: &Entry) -> Vec<(String, String)> {
    let mut info = Vec::new();
    let mut env: Vec<String> = s.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !s.env.iter().any(|(k, _)| k == "UNIDIST_BACKEND") {
        env.push("UNIDIST_BACKEND=mpi".into());
    }
    if let Some(key) = entry.env_key {
        info.push((key.to_string(), env.join("\n")));
    }
    if s.hosts.len() > 1 {
        let value = if entry.host_slots {
            // Upstream's split: the slots of rank 0 and the workers round-robin over the hosts.
            let mut slots = vec![0usize; s.hosts.len()];
            for i in 0..=s.cpus {
                slots[i % s.hosts.len()] += 1;
            }
            let v: Vec<String> = s
                .hosts
                .iter()
                .zip(&slots)
                .map(|(h, n)| format!("{h}:{n}"))
                .collect();
            v.join(",")
        } else {
            s.hosts.join(",")
        };
        info.push((entry.hosts_key.to_string(), value));
    }
    info
}

/// Called by a worker after `MPI_Finalize`, before it exits: where the library's launcher
/// kills rank 0 when workers exit before it (the library table's `workers_outlive_root`), the
/// worker stays until rank 0's process has ended, checked with kill(2) every 50 ms (rank 0 is
/// not this process's child, so there is nothing to wait on). A worker on another kernel cannot
/// check and exits at once.
pub(crate) fn outlive_root(info: &InitInfo) {
    let lib = Library::detect(&mpi::environment::library_version().unwrap_or_default());
    let Some(&(root_pid, same_kernel)) = info.pids.first() else {
        return;
    };
    if info.rank == 0 || !lib.entry().workers_outlive_root || !same_kernel {
        return;
    }
    tracing::info!(
        rank = info.rank,
        root_pid,
        "waiting for rank 0 to end ({lib})"
    );
    while ffi::process_alive(root_pid) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

const IP_LEN: usize = 56;
/// Registry fingerprint, pid, pid-namespace key, IP.
const ENTRY_LEN: usize = 8 + 4 + 8 + IP_LEN;

/// Identifies this process's pid namespace on this kernel: processes with equal keys can check
/// each other's ids with kill(2). Zero when unknown (never equal to another rank's key then).
fn pid_namespace_key() -> u64 {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if boot.trim().is_empty() || ns.is_empty() {
        return 0;
    }
    // FNV-1a: stable across processes, unlike the std hasher's random keys.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in boot.trim().bytes().chain(ns.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

/// Exchanges registry fingerprints, process ids and host IPs between all ranks; on a registry
/// mismatch, every rank learns it and rank 0 gets the first difference from the first differing
/// rank.
pub(crate) fn handshake(est: &Established) -> Result<InitInfo> {
    let comm = &est.comm;
    let rank = comm.rank() as u32;
    let size = comm.size() as u32;
    let reg = registry::registry();
    let ns = pid_namespace_key();
    let mut mine = [0u8; ENTRY_LEN];
    mine[..8].copy_from_slice(&reg.fingerprint().to_le_bytes());
    mine[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    mine[12..20].copy_from_slice(&ns.to_le_bytes());
    let ip = unidist_core::runtime::local_ip();
    let n = ip.len().min(IP_LEN);
    mine[20..20 + n].copy_from_slice(&ip.as_bytes()[..n]);
    let mut all = vec![0u8; ENTRY_LEN * size as usize];
    comm.all_gather_into(&mine[..], &mut all[..]);
    let word = |c: &[u8]| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
    let ip_of = |c: &[u8]| {
        String::from_utf8_lossy(&c[20..])
            .trim_end_matches('\0')
            .to_string()
    };
    let entries: Vec<(u64, String)> = all
        .chunks(ENTRY_LEN)
        .map(|c| (word(&c[..8]), ip_of(c)))
        .collect();
    // A peer's process can be watched from here when it shares this pid namespace and this
    // host's address (hosts simulated by network namespaces share one pid namespace, but a
    // process on another host is not to be watched through it: it is reached over the network).
    let pids: Vec<(u32, bool)> = all
        .chunks(ENTRY_LEN)
        .map(|c| {
            let pid = u32::from_le_bytes(c[8..12].try_into().unwrap_or([0; 4]));
            (pid, ns != 0 && word(&c[12..20]) == ns && ip_of(c) == ip)
        })
        .collect();
    let root_fp = entries[0].0;
    let first_bad = entries.iter().position(|(fp, _)| *fp != root_fp);
    if let Some(bad) = first_bad {
        // The first differing rank sends its names to rank 0, which names the first difference.
        let tag = 77;
        if rank == 0 {
            let peer = comm.process_at_rank(bad as i32);
            let (names, _) = peer.receive_vec_with_tag::<u8>(tag);
            let theirs: Vec<String> = String::from_utf8_lossy(&names)
                .split('\n')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let diff = reg
                .first_difference(&theirs)
                .unwrap_or_else(|| "same names, different fingerprints".into());
            return Err(unavailable(format!(
                "rank {bad} runs a program whose registered functions differ from rank 0's \
                 ({diff}; here = rank 0, there = rank {bad}); every rank must run the same binary"
            )));
        }
        if rank == bad as u32 {
            let names = reg.names().join("\n");
            comm.process_at_rank(0).send_with_tag(names.as_bytes(), tag);
        }
        return Err(unavailable(format!(
            "the registered functions of rank {bad} differ from rank 0's; every rank must run the same binary"
        )));
    }
    Ok(InitInfo {
        rank,
        size,
        ips: entries.into_iter().map(|(_, ip)| ip).collect(),
        pids,
        mode: est.mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_0_waits_three_heartbeats_and_at_least_thirty_seconds_for_its_workers() {
        assert_eq!(spawn_limit(10.0), Duration::from_secs(30));
        assert_eq!(spawn_limit(20.0), Duration::from_secs(60));
        assert_eq!(spawn_limit(3.0), Duration::from_secs(30));
    }

    fn with(vars: &[(&str, &str)]) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        separate_jobs(move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn a_launcher_that_started_more_processes_is_named() {
        let srun = with(&[("SLURM_PROCID", "3"), ("SLURM_STEP_NUM_TASKS", "8")]).unwrap();
        assert!(
            srun.starts_with("srun (SLURM_STEP_NUM_TASKS) started 8 processes"),
            "{srun}"
        );
        assert!(srun.contains("8 separate one-rank jobs") && srun.contains("--mpi=pmix"));
        let ompi = with(&[("OMPI_COMM_WORLD_SIZE", "4")]).unwrap();
        assert!(ompi.contains("Open MPI's mpirun"), "{ompi}");
        assert!(with(&[("PMI_SIZE", "2")]).unwrap().contains("PMI_SIZE"));
    }

    #[test]
    fn one_process_or_an_allocation_alone_is_no_mismatch() {
        assert_eq!(with(&[]), None);
        assert_eq!(with(&[("OMPI_COMM_WORLD_SIZE", "1")]), None);
        // `salloc -n 8` sets the allocation's task count, but `mpirun -n 1 ./app` inside it
        // (spawn mode) is one process: only a task started by `srun` has SLURM_PROCID.
        assert_eq!(
            with(&[("SLURM_NTASKS", "8"), ("SLURM_STEP_NUM_TASKS", "8")]),
            None
        );
        assert_eq!(with(&[("PMI_SIZE", "x")]), None);
    }
}
