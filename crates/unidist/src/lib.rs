//! One typed API for tasks, actors and objects that runs unchanged on MPI, a local thread pool,
//! or sequentially.
//!
//! # Overview
//!
//! ```
//! use unidist::ObjectRef;
//!
//! #[unidist::remote]
//! fn square(x: i64) -> i64 {
//!     x * x
//! }
//!
//! fn main() -> unidist::Result<()> {
//! #   unidist::config::Backend::put(unidist::config::BackendName::Pyseq).unwrap();
//!     unidist::init()?; // backend from UNIDIST_BACKEND, else auto-detected
//!     let refs: Vec<ObjectRef<i64>> = (0..5).map(square::remote).collect();
//!     assert_eq!(unidist::get_all(&refs)?, vec![0, 1, 4, 9, 16]);
//!     unidist::shutdown()
//! }
//! ```
//!
//! unidist for Rust is the Rust counterpart of the Python project
//! [unidist](https://github.com/modin-project/unidist): you mark functions with
//! [`#[unidist::remote]`](macro@remote) and types with [`#[unidist::actor]`](macro@actor), call them
//! with `.remote(..)` to get typed [`ObjectRef`]s, and read results with [`get`] (or `.await`).
//! The same program runs sequentially for debugging (`UNIDIST_BACKEND=pyseq`), on every core of
//! one machine, and across processes and hosts with MPI.
//!
//! # Backends: which one when
//!
//! | backend | `UNIDIST_BACKEND` | where work runs | use it for |
//! |---|---|---|---|
//! | sequential | `pyseq` | in the caller's thread, at submission | debugging (breakpoints and backtraces point into your code), deterministic tests and doc tests |
//! | local pool | `pymp` | a thread pool for tasks and one thread per actor, one process | every core of one machine; values are shared in memory, never copied or serialized |
//! | MPI | `mpi` | MPI processes (`mpiexec` SPMD, or spawned), across hosts | more than one machine, or work isolated in processes |
//!
//! Without `UNIDIST_BACKEND` the backend is detected: MPI when built with the `mpi` feature and
//! a usable MPI library is present, else the local pool (else, when the pool is not built in,
//! the sequential backend).
//!
//! On MPI, rank 0 runs `main` and the other ranks serve inside [`init`] and exit when rank 0
//! shuts down: `UNIDIST_IS_MPI_SPAWN_WORKEhttps://github.com/unidist-rs/unidist/blob/main=false mpiexec -n 3 app` (SPMD), or plain `app`,
//! which spawns `UNIDIST_CPUS` workers (Open MPI).
//!
//! # Gallery
//!
//! Complete programs in `crates/unidist/examples`, each runnable on every backend with the
//! commands in its header, each printing a result that CI checks:
//!
//! - [`quickstart`](https://github.com/unidist-rs/unidist/blob/main/crates/unidist/examples/quickstart.rs): the program above;
//! - [`actors`](https://github.com/unidist-rs/unidist/blob/main/crates/unidist/examples/actors.rs): a stateful actor, an async method, two returns, a handle passed to a task;
//! - [`pi_monte_carlo`](https://github.com/unidist-rs/unidist/blob/main/crates/unidist/examples/pi_monte_carlo.rs): independent tasks with fixed seeds, reduced by a tree of tasks;
//! - [`word_count`](https://github.com/unidist-rs/unidist/blob/main/crates/unidist/examples/word_count.rs): map-reduce over generated files, merges chained through refs;
//! - [`mandelbrot`](https://github.com/unidist-rs/unidist/blob/main/crates/unidist/examples/mandelbrot.rs): one task per row, written as a PNG;
//! - [`parameter_server`](https://github.com/unidist-rs/unidist/blob/main/crates/unidist/examples/parameter_server.rs): an actor holding model weights, workers pulling and pushing gradients;
//! - [`pipeline_async`](https://github.com/unidist-rs/unidist/blob/main/crates/unidist/examples/pipeline_async.rs): a Tokio program awaiting refs while doing file I/O;
//! - [`streaming_wait`](https://github.com/unidist-rs/unidist/blob/main/crates/unidist/examples/streaming_wait.rs): handling results in the order they finish.
//!
//! Measurements against the hardware floors and Python unidist, Ray and Dask:
//! [BENCHMARKS.md](https://github.com/unidist-rs/unidist/blob/main/BENCHMARKS.md).
//!
//! # Usage
//!
//! Arguments of a remote function accept a value, an `ObjectRef` or a `&ObjectRef` of the
//! parameter type; refs are resolved before the body runs. Functions may return several objects:
//!
//! ```
//! #[unidist::remote(num_returns = 2)]
//! fn split(x: i64) -> (i64, i64) {
//!     (x / 2, x % 2)
//! }
//!
//! # fn main() -> unidist::Result<()> {
//! # unidist::config::Backend::put(unidist::config::BackendName::Pyseq).unwrap();
//! let (half, rest) = split::remote(7);
//! assert_eq!((unidist::get(&half)?, unidist::get(&rest)?), (3, 1));
//! # Ok(())
//! # }
//! ```
//!
//! Actors keep state between calls; calls on one actor run in call order:
//!
//! ```
//! pub struct Counter {
//!     n: i64,
//! }
//!
//! #[unidist::actor]
//! impl Counter {
//!     pub fn new(start: i64) -> Self {
//!         Counter { n: start }
//!     }
//!     pub fn add(&mut self, x: i64) -> i64 {
//!         self.n += x;
//!         self.n
//!     }
//! }
//!
//! # fn main() -> unidist::Result<()> {
//! # unidist::config::Backend::put(unidist::config::BackendName::Pyseq).unwrap();
//! let c = Counter::remote(10);
//! c.add(1);
//! assert_eq!(unidist::get(&c.add(5))?, 16);
//! # Ok(())
//! # }
//! ```
//!
//! Refs are futures: `.await` on an [`ObjectRef`], [`get_async`] and [`wait_async`] read and wait
//! without blocking the executor's thread, under any executor and inside `async fn` actor
//! methods (the backend wakes the task when the object is ready):
//!
//! ```
//! #[unidist::remote]
//! fn square(x: i64) -> i64 {
//!     x * x
//! }
//!
//! # fn main() -> unidist::Result<()> {
//! # unidist::config::Backend::put(unidist::config::BackendName::Pyseq).unwrap();
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let v = rt.block_on(async { square::remote(4).await })?;
//! assert_eq!(v, 16);
//! # Ok(())
//! # }
//! ```
//!
//! To see where the time went, [`stats`] returns counters since [`init`] (its `Display` is a
//! table), `UNIDIST_TIMELINE=trace.json` writes a Chrome/Perfetto trace of every task, actor
//! call and `get`/`wait` at [`shutdown`] ([`timeline`] writes one on demand), and
//! `UNIDIST_PROGRESS=true` draws a progress bar for long waits on many refs.
//!
//! A panic in a task is an error value: [`get`] returns [`Error`] naming the function and the
//! message, every time, and tasks that take the failed ref fail the same way without running.
//!
//! Per-call options retry a task, bound its time, and [`cancel`] stops it:
//!
//! ```
//! # use std::time::Duration;
//! #[unidist::remote]
//! fn square(x: i64) -> i64 {
//!     x * x
//! }
//!
//! # fn main() -> unidist::Result<()> {
//! # unidist::config::Backend::put(unidist::config::BackendName::Pyseq).unwrap();
//! // Re-run up to 3 more times if the body panics; fail with `ErrorKind::Timeout` if one run
//! // takes longer than 10 s.
//! let r = square::options()
//!     .max_retries(3)
//!     .retry_exceptions(true)
//!     .timeout(Duration::from_secs(10))
//!     .remote(4);
//! assert_eq!(unidist::get(&r)?, 16);
//! unidist::cancel(&r)?; // finished: no effect
//! # Ok(())
//! # }
//! ```
//!
//! Which of these a backend implements is in [`capabilities`] (`retries`, `timeouts`, `cancel`,
//! `fail_fast`). On MPI, where a worker process can be lost, `max_retries` also sends a task
//! again to a live worker, and rebuilds a finished output of it that was lost with its worker by
//! running the task again; an actor created with `T::options().max_restarts(n)` is created
//! again (its `new` runs again) on a live worker; see `RELIABILITY.md`.
//!
//! # Large data
//!
//! Whole values of `Vec<T>` and `Box<[T]>` of primitive numbers, `Vec<u8>`, `String` and
//! [`Buffer<T>`] cross processes as a length and their bytes, with no work per element. Inside a
//! struct, use a [`Buffer<T>`] field or `#[serde(with = "unidist::serde_fast")]` (see
//! [`serde_fast`]) on a `Vec<T>` field for the same speed. On MPI, large objects are written once
//! into shared memory on their host and a `&Buffer<T>` parameter reads them there without a copy
//! (the `UNIDIST_MPI_SHARED_OBJECT_STORE*` settings below); a large value passed directly to a
//! task on the same host travels the same way, and shared memory is reused from one object to
//! the next. A `Vec` or `String` parameter costs one copy out of shared memory, since it must own
//! its memory: for the largest arrays, prefer `Buffer<T>`. A large result that `get` fetches
//! from a worker of the same host is read straight from that worker's memory, one copy in all
//! (where the kernel allows one process to read another's; else through shared memory). That copy fills memory already
//! mapped when it can (each process keeps up to four large vectors that the runtime alone held
//! and let go of, 256 MiB in all, for the next decode of about their size) and runs on up to
//! four threads from 16 MiB on.
//!
//! On `pyseq` and `pymp`, a value passed directly to a by-value parameter (`f::remote(v)` with
//! `fn f(v: Vec<u8>)`) is moved into the body without a copy when nothing else holds it (a
//! task with retries left keeps a copy for the next run).
//!
//! # Feature flags
//!
//! - `pyseq` (default): the sequential backend.
//! - `pymp` (default): the local pool backend.
//! - `mpi`: the MPI backend; needs a system MPI and libclang to build.
//!
//! # Configuration
//!
//! Every parameter is read from its environment variable unless set first with `put` (see
//! [`config`]):
//!
//! | variable | type | default | meaning |
//! |---|---|---|---|
//! | `UNIDIST_BACKEND` | `mpi`, `pymp`, `pyseq` | detected | the backend |
//! | `UNIDIST_CPUS` | integer ≥ 1 | number of cores | workers |
//! | `UNIDIST_IS_MPI_SPAWN_WORKERS` (or `UNIDIST_MPI_SPAWN`) | bool | true | MPI: spawn workers instead of using the `mpiexec` ranks |
//! | `UNIDIST_MPI_HOSTS` | comma-separated hosts | none | MPI spawn: hosts to spawn on |
//! | `UNIDIST_MPI_PICKLE_THRESHOLD` | bytes | 262144 | MPI: buffers at least this large travel out of band |
//! | `UNIDIST_MPI_BACKOFF` | seconds | 0.0001 | MPI: sleep of polling loops |
//! | `UNIDIST_MPI_HEARTBEAT` | seconds (1 to 86400) | 10 | MPI: a peer silent this long (host crashed, link down) is lost, and what it held fails with `WorkerLost` saying it stopped answering |
//! | `UNIDIST_MPI_LOG` | bool | false | MPI: one log file per rank |
//! | `UNIDIST_PROGRESS` | bool | false | a progress bar on stderr (when it is a terminal) for a `get_all`/`wait` on many refs that lasts over a second |
//! | `UNIDIST_TIMELINE` | file path | none | record every task, actor call and `get`/`wait`, and write a Chrome/Perfetto trace there at [`shutdown`] (see [`timeline`]) |
//! | `UNIDIST_MPI_SHARED_OBJECT_STORE` | bool | true | MPI: keep objects at least the threshold once per host in shared memory (`/dev/shm`), mapped by the ranks of that host; a `&Buffer<T>` parameter reads it in place |
//! | `UNIDIST_MPI_SHARED_OBJECT_STORE_MEMORY` | bytes | 30% of memory | MPI: the most shared memory a rank's segments may use; past it objects stay private |
//! | `UNIDIST_MPI_SHARED_OBJECT_STORE_THRESHOLD` | bytes | 100000 | MPI: the encoded size from which an object goes to the shared store |
//!
//! Booleans accept `true/yes/1` and `false/no/0` in any case. A bad value makes [`init`] fail
//! with an error that names the variable, the value and what is accepted.
//!
//! # MSRV
//!
//! Rust 1.88 (actix-rt, which the local pool runs actors on, needs it).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use unidist_core::runtime;

pub use unidist_core::{
    ActorHandle, ActorId, ClusterResources, Error, ErrorKind, GetFuture, IntoArg, ObjectRef,
    Result, TaskError, TaskFailure, TaskOptions, Value, WaitFuture,
};
pub use unidist_macros::{actor, remote};
pub use unidist_serialize::serde_fast;
pub use unidist_serialize::Buffer;

/// Typed configuration parameters, each read from its `UNIDIST_*` environment variable unless
/// `put` first.
///
/// ```
/// use unidist::config::*;
/// Backend::put(BackendName::Pyseq)?;
/// assert_eq!(Backend::get()?, BackendName::Pyseq);
/// assert_eq!(Backend::get_value_source(), ValueSource::SetByUser);
/// # Ok::<(), unidist::config::ConfigError>(())
/// ```
pub mod config {
    pub use unidist_config::*;
}

mod backends;
mod facade;
mod fault;
mod observe;

pub use backends::{bench_mpi_raw_floors, capabilities, in_process_backends, Capabilities};

pub use fault::cancel;
pub use observe::{stats, timeline};
pub use unidist_core::{Stats, WorkerStats};

pub use facade::{
    cluster_resources, get, get_all, get_async, get_ip, get_timeout, init, is_initialized,
    num_cpus, put, shutdown, wait, wait_async, wait_timeout,
};

#[doc(hidden)]
pub mod __private;

static LIFECYCLE: Mutex<()> = Mutex::new(());
static SHUT_DOWN: AtomicBool = AtomicBool::new(false);

/// The running backend, starting the configured one if none runs yet.
fn backend() -> Result<Arc<dyn unidist_core::Backend>> {
    if let Some(b) = runtime::current() {
        return Ok(b);
    }
    if SHUT_DOWN.load(Ordering::Acquire) {
        return Err(Error::ShutDown);
    }
    init()?;
    runtime::current().ok_or(Error::ShutDown)
}
