//! MPI backend of unidist, built on rsmpi.
//!
//! This is an internal crate of [unidist](https://docs.rs/unidist); use `unidist` with the `mpi`
//! feature. The facade calls [`start`] from `unidist::init()` when `UNIDIST_BACKEND=mpi` (or when
//! MPI is detected with [`is_usable`]).
//!
//! # Roles and launch modes
//!
//! Rank 0 is the driver: `init` returns there and it runs the user's `main`. Every other rank is
//! a worker: it serves inside `init` and exits the process (code 0) after rank 0 shuts the job
//! down. There is no monitor rank: readiness comes from each object's owner.
//!
//! - SPMD: `UNIDIST_IS_MPI_SPAWN_WORKERS=false mpiexec -n N app` (N >= 2). With 1 rank this mode
//!   fails with an error saying it needs at least 2.
//! - Spawn (the default): plain `app` or `mpiexec -n 1 app`. Rank 0 spawns `UNIDIST_CPUS` workers
//!   of `std::env::current_exe()` with the same arguments, forwarding every configuration value
//!   the user set (Open MPI's info key `env`, `PMIX_ENVAR` from Open MPI 5) and
//!   `UNIDIST_MPI_HOSTS` (info `add-host`, `PMIX_ADD_HOST` from Open MPI 5, with the slots split
//!   round-robin across hosts as upstream does; `hosts` elsewhere). What each library needs is
//!   one table, [`library::TABLE`]: on Intel MPI `init` sets `I_MPI_SPAWN=on` before `MPI_Init`
//!   unless the user set it; where a library cannot spawn (Debian's MPICH 4.0) `init` fails at
//!   once with the SPMD command, and a failed spawn names the library, its version and the fix.
//! - `mpiexec -n N app` with N > 1 and spawning left enabled runs as SPMD: the ranks already
//!   run the program, spawning more would only oversubscribe.
//!
//! # Threads
//!
//! One communication thread per process initializes MPI (`MPI_THREAD_MULTIPLE` requested, at
//! least `FUNNELED` required), makes every MPI call and finalizes MPI; other threads talk to it
//! through channels (Open MPI handles are not `Send`, and this keeps the crate building against
//! both Open MPI and MPICH). After activity it polls with `MPI_Improbe` for a short window; when
//! idle it blocks on its request channel for at most `UNIDIST_MPI_BACKOFF`. A worker runs tasks on
//! a pool of one thread that grows while a task blocks in `get`/`wait` (so nested calls never
//! deadlock) and runs each actor on core's `ActorThread` (its own thread with a Tokio
//! current-thread runtime).
//!
//! # Messages
//!
//! Messages to one rank are batched into one control message (op code, ids, lengths, small
//! payloads); large inline bodies and every out-of-band buffer of a value (buffers of at least
//! `UNIDIST_MPI_PICKLE_THRESHOLD` bytes) follow as their own messages, sent from the value's
//! memory and received into the final buffer, chunked below 2 GiB (see `wire.rs`). A function,
//! actor type or method travels as its index in core's registry, which is the same on every rank
//! because init checks that all ranks have the same registry (`launch`).
//!
//! # Objects
//!
//! A task's outputs live on the worker that ran it; arguments move worker to worker; `put` data
//! is pushed once to each worker that needs it; `get` fetches from the location. The owner of
//! an object (the rank that created its id) counts local handles and borrowers and frees the
//! object on its worker, and on every rank holding a copy, once none remains. Refs passed
//! inside the argument values of a call by the process that owns them are held until the call
//! is done, then counted like any other; refs serialized in other ways (inside `put` values or
//! task results, or by a process that does not own them) pin their object until shutdown.
//!
//! Shared object store (`UNIDIST_MPI_SHARED_OBJECT_STORE`, on by default): an object whose
//! encoding is at least `UNIDIST_MPI_SHARED_OBJECT_STORE_THRESHOLD` bytes, sent to a rank of
//! the same host (same kernel and pid namespace), is written once into a POSIX shared-memory
//! segment by the rank holding it (one copy, straight from the value's memory) and sent as a
//! small descriptor; the receiver maps it read-only and decodes from the mapping: a `Buffer<T>`
//! reads the mapping in place (no copy; the mapping lives as long as such a buffer), a `Vec`,
//! `Box<[T]>` or `String` is copied out once. Past the memory limit, or when a segment cannot
//! be created, objects travel as bytes as before (logged once). See `shm.rs`.
//!
//! # Faults
//!
//! A panic in a task is that task's error value. A panic outside a task on any rank aborts the
//! job (`MPI_Abort`) after flushing the log. SIGINT/SIGTERM on rank 0 shut every rank down; the
//! end of `main` without `shutdown` does the same (an `atexit` hook).
//!
//! Lost ranks: every rank learns the others' process ids at init. Rank 0 checks its workers
//! every 200 ms (with `kill(2)` when they run on the same kernel, and by silence otherwise:
//! each communication thread sends a beacon every second it has nothing else to send, and a
//! peer silent for 30 s is lost), and each worker checks rank 0 the same way. When a worker is
//! lost, its running and queued calls, the objects only it held and the actors living on it
//! fail with an error naming the rank (`get` and `wait` return it instead of hanging), the other
//! workers are told, and no new work goes to it. MPI is then left unfinalized (its finalize
//! would wait for the lost process) and rank 0 exits with status 1 at the end of `main`,
//! printing which rank was lost. A worker that loses rank 0 exits at once, so no process is
//! left behind. In SPMD mode the launchers (Open MPI's and MPICH's) usually end the whole job
//! as soon as one process dies, naming it; rank 0's own report may or may not come first.
//! Objects whose owner was the lost worker may stay allocated where they live until shutdown.
//! Where rank 0 outlives the worker (spawn mode), tasks with `max_retries` left are sent again
//! to a live worker, and actors created with `max_restarts` left are created again there by
//! their owner (calls sent to the lost worker still fail; later calls run on the new instance).
//!
//! # Modules
//!
//! - `comm`: the communication thread, the only one that calls MPI: batching, sends, receives,
//!   liveness beacons, the shutdown handshake.
//! - `wire`: the messages between ranks (the node's traffic and the communication threads'
//!   control traffic), their batches and segments.
//! - `node`: the per-process runtime and `impl Backend`, one file per concern:
//!   - `node/state.rs`: the state behind the node's mutex, split by concern;
//!   - `node/effects.rs`: work collected under the lock and done after it;
//!   - `node/objects.rs`: where values live and how they travel;
//!   - `node/refs.rs`: reference counts, pins and freeing;
//!   - `node/schedule.rs`: choosing a worker (load, locality) and throttling;
//!   - `node/calls.rs`: calls this process sends, until their `Done`;
//!   - `node/execute.rs`: calls received from other ranks, until they complete;
//!   - `node/actors.rs`: actors, and the one "actor is dead" error;
//!   - `node/wait.rs`: blocked threads, `get` and `wait`;
//!   - `node/ready.rs`: futures awaiting objects (`on_ready`), woken by the same events;
//!   - `node/lost.rs`: what fails when a rank is lost;
//!   - `node/restart.rs`: actor restarts, the kept creation sent again to a live worker;
//!   - `node/lineage.rs`: lost objects rebuilt by running their task again on a live worker;
//!   - `node/dispatch.rs`: incoming messages, one delegating line per kind;
//!   - `node/backend.rs`: `impl Backend`.
//! - `exec`: the task pool and the actor threads of a worker rank.
//! - `process`: exit status, the panic hook, signals, `atexit`, and the one record of lost ranks.
//! - `launch`: launch modes, the registry check and host discovery at init.
//! - `library`: the MPI libraries by implementation and version, and what `init` does on each.
//! - `shm`: the per-host shared-memory object store (segments, descriptors, sweeps).
//! - `ffi`: every `unsafe` block (raw MPI calls, process hooks, shared-memory mappings).
//! - `log`: per-rank log files.
//!
//! # Features
//!
//! `link` (default): the MPI bindings (rsmpi), which need a system MPI and libclang to build.
//! Without it the crate has only its documentation and entry points that report the backend
//! unavailable: `is_usable` is false and `start` fails saying so. That is how docs.rs builds it,
//! and what the facade's `mpi-docs` feature selects; the facade's `mpi` feature turns `link` on.
//!
//! # Limits
//!
//! MPI cannot be initialized twice in a process: after `shutdown`, `init` fails on this
//! backend.

#![deny(unsafe_code)]

#[cfg(feature = "link")]
mod comm;
#[cfg(feature = "link")]
mod exec;
#[cfg(feature = "link")]
mod ffi;
#[cfg(feature = "link")]
mod launch;
pub mod library;
#[cfg(feature = "link")]
mod log;
#[cfg(feature = "link")]
mod node;
#[cfg(feature = "link")]
mod process;
#[cfg(feature = "link")]
mod shm;
#[cfg(feature = "link")]
mod wire;

// Without the `link` feature the crate has no MPI bindings: it documents the backend and reports
// it unavailable (see `unlinked.rs`).
#[cfg(not(feature = "link"))]
mod unlinked;
#[cfg(not(feature = "link"))]
pub use unlinked::{is_usable, raw_floors, start};

#[cfg(feature = "link")]
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(feature = "link")]
use std::sync::{Arc, OnceLock};

#[cfg(feature = "link")]
use unidist_config as config;
#[cfg(feature = "link")]
use unidist_core::{runtime, Backend, Error, Result};

#[cfg(feature = "link")]
use crate::node::Node;

#[cfg(feature = "link")]
/// Every rank's pid, and whether it shares this rank's shared memory: the same kernel and pid
/// namespace and the same IP. Ranks of other hosts have other IPs; the IP check also keeps
/// hosts simulated by network namespaces on one kernel (`cargo xtask cluster`) apart, so that
/// objects between them cross the network as between real hosts.
fn shared_memory_peers(info: &launch::InitInfo) -> Vec<(u32, bool)> {
    let mine = info.ips.get(info.rank as usize);
    info.pids
        .iter()
        .zip(&info.ips)
        .map(|((pid, same_kernel), ip)| (*pid, *same_kernel && Some(ip) == mine))
        .collect()
}

#[cfg(feature = "link")]
/// True when the MPI library this binary is linked to is usable: Open MPI 4.0 or newer, MPICH
/// 3.3 or newer, or another implementation of MPI 3.1 or newer. Cheap and callable before MPI is
/// initialized.
pub fn is_usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| {
        let lib = mpi::environment::library_version().unwrap_or_default();
        library_is_usable(&lib, mpi::environment::version())
    })
}

#[cfg(feature = "link")]
/// The version check behind [`is_usable`], on a library version string and the MPI standard
/// version.
fn library_is_usable(lib: &str, standard: (i32, i32)) -> bool {
    let lib = lib.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let at_least =
        |rest: &str, min: semver::Version| library::lenient_version(rest).is_some_and(|v| v >= min);
    if let Some(rest) = lib.strip_prefix("Open MPI") {
        at_least(rest, semver::Version::new(4, 0, 0))
    } else if let Some(rest) = lib.strip_prefix("MPICH") {
        at_least(rest, semver::Version::new(3, 3, 0))
    } else {
        standard >= (3, 1)
    }
}

#[cfg(feature = "link")]
static STARTED: AtomicBool = AtomicBool::new(false);

#[cfg(feature = "link")]
/// Starts the MPI backend.
///
/// On rank 0 it returns the backend. On a worker rank it installs the backend in the runtime
/// slot, serves until rank 0 shuts the job down, and exits the process with code 0 (or 1 if
/// initialization failed there).
pub fn start() -> Result<Arc<dyn Backend>> {
    if STARTED.swap(true, Ordering::AcqRel) {
        return Err(Error::BackendUnavailable {
            backend: "mpi".into(),
            reason: "the mpi backend was already started in this process, and MPI cannot be \
                     initialized twice"
                .into(),
        });
    }
    // Values decoded from other ranks fill fresh memory: huge pages where the kernel offers them.
    unidist_serialize::set_fresh_memory_advice(ffi::advise_huge_pages);
    let settings = launch::Settings {
        spawn: config::IsMpiSpawnWorkers::get()?,
        cpus: config::CpuCount::get()?,
        hosts: config::MpiHosts::hosts()?,
        backoff: config::MpiBackoff::get()?,
        heartbeat: config::MpiHeartbeat::get()?,
        env: config::user_set_env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    };
    let threshold = config::MpiPickleThreshold::get()?;
    let store_cfg = shm::Config {
        enabled: config::MpiSharedObjectStore::get()?,
        limit: config::MpiSharedObjectStoreMemory::get()? as u64,
        threshold: config::MpiSharedObjectStoreThreshold::get()?,
    };
    let log_enabled = config::MpiLog::get()?;
    let (init_tx, init_rx) = crossbeam_channel::bounded(1);
    let (node_tx, node_rx) = crossbeam_channel::bounded::<Arc<Node>>(1);
    let (out_tx, out_rx) = crossbeam_channel::unbounded();
    let comm_thread = std::thread::Builder::new()
        .name("unidist-comm".into())
        .spawn(move || comm::run(settings, init_tx, node_rx, out_rx))
        .map_err(|e| {
            Error::backend("mpi", format!("cannot start the communication thread: {e}"))
        })?;
    let info = match init_rx.recv() {
        Ok(Ok(info)) => info,
        Ok(Err((is_worker, e))) => {
            let _ = comm_thread.join();
            // A worker must not return into the user's main.
            if is_worker {
                process::exit_after_failed_init(&e);
            }
            return Err(e);
        }
        Err(_) => {
            let _ = comm_thread.join();
            return Err(Error::backend(
                "mpi",
                "the communication thread ended during initialization",
            ));
        }
    };
    log::init(info.rank, log_enabled);
    tracing::info!(rank = info.rank, size = info.size, mode = ?info.mode, "mpi backend started");
    let store = shm::Store::new(store_cfg, info.rank, &shared_memory_peers(&info));
    store.sweep_stale();
    let lost = Arc::new(process::LostPeers::default());
    process::set_lost_peers(lost.clone());
    let node = Node::new(
        info.rank,
        info.size,
        info.ips.clone(),
        out_tx,
        threshold,
        lost,
        store.clone(),
    );
    if info.rank != 0 {
        node.start_pool(1);
    }
    if info.rank == 0 {
        process::install_root(&node);
        let _ = node_tx.send(node.clone());
        node.sync_clocks();
        return Ok(node);
    }
    process::install_worker();
    let _ = node_tx.send(node.clone());
    // Worker: serve until the job ends.
    let backend: Arc<dyn Backend> = node.clone();
    if let Err(e) = runtime::install(backend) {
        tracing::error!(error = %e, "cannot install the worker's backend");
    }
    let _ = comm_thread.join();
    store.clear();
    store.sweep_job();
    drop(runtime::take());
    launch::outlive_root(&info);
    tracing::info!(rank = info.rank, "worker exits");
    process::exit_worker_done()
}

#[cfg(feature = "link")]
/// Measures the raw rsmpi floors between rank 0 and rank 1 on the communication thread:
/// `iters` 8-byte ping-pongs and 3 transfers of `bytes`. Returns (half round trip in seconds,
/// bandwidth in bytes per second). For benchmarks; rank 0 only, after `unidist::init()`.
#[doc(hidden)]
pub fn raw_floors(iters: u32, bytes: u64) -> Result<(f64, f64)> {
    let b = runtime::current().ok_or(Error::ShutDown)?;
    if b.name() != "mpi" {
        return Err(Error::backend("mpi", "the running backend is not mpi"));
    }
    match process::root_node() {
        Some(n) => n.raw_bench(iters, bytes),
        None => Err(Error::backend("mpi", "the mpi backend is not running")),
    }
}

#[cfg(all(test, feature = "link"))]
mod tests {
    use super::*;

    #[test]
    fn library_minimums() {
        let ompi = "Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4, May 26, 2022\0";
        assert!(library_is_usable(ompi, (3, 1)));
        assert!(!library_is_usable("Open MPI v3.1.6, package: x", (3, 1)));
        assert!(library_is_usable(
            "MPICH Version:\t4.0.2\nMPICH Release date: ...",
            (4, 0)
        ));
        assert!(!library_is_usable("MPICH Version:\t3.2\n", (3, 1)));
        assert!(library_is_usable("MPICH Version:\t3.3\n", (3, 1)));
        assert!(library_is_usable(
            "Intel(R) MPI Library 2021.10 for Linux",
            (3, 1)
        ));
        assert!(!library_is_usable("Some MPI 9.9", (3, 0)));
        // A pre-release of the minimum is not the minimum.
        assert!(!library_is_usable("Open MPI v4.0.0rc1", (3, 1)));
    }

    #[test]
    fn linked_library_check_is_cheap_and_stable() {
        let first = is_usable();
        assert_eq!(first, is_usable());
    }
}
