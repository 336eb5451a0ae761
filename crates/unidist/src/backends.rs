//! The backend registrations: which backends this build contains, how each is started and
//! whether it runs entirely in this process. The only place in the facade that names backends;
//! every list here is derived from [`BackendName::ALL`] and [`REGISTERED`].

use std::sync::Arc;

use unidist_config::BackendName;
use unidist_core::{Backend, Error, Result};

pub use unidist_core::Capabilities;

/// One backend compiled into this build.
struct Registration {
    name: BackendName,
    /// Starts the backend with the configuration already validated.
    start: fn() -> Result<Arc<dyn Backend>>,
    /// Whether the backend can start here, for auto-detection (MPI needs a usable library).
    usable: fn() -> bool,
    /// Whether the backend runs entirely inside the calling process: no launcher and no other
    /// processes, so a plain child process can use it and one process can start it again after
    /// `shutdown`. It agrees with `Capabilities::separate_processes` of the started backend
    /// (the conformance suite checks).
    in_process: bool,
}

/// Every backend of this build: one cfg-gated entry per backend.
const REGISTERED: &[Registration] = &[
    #[cfg(feature = "mpi")]
    Registration {
        name: BackendName::Mpi,
        start: unidist_mpi::start,
        usable: unidist_mpi::is_usable,
        in_process: false,
    },
    #[cfg(feature = "pymp")]
    Registration {
        name: BackendName::Pymp,
        start: unidist_pymp::start,
        usable: || true,
        in_process: true,
    },
    #[cfg(feature = "pyseq")]
    Registration {
        name: BackendName::Pyseq,
        start: unidist_pyseq::start,
        usable: || true,
        in_process: true,
    },
];

fn registration(name: BackendName) -> Option<&'static Registration> {
    REGISTERED.iter().find(|r| r.name == name)
}

/// Starts the named backend, or says which feature it needs.
pub(crate) fn start(name: BackendName) -> Result<Arc<dyn Backend>> {
    match registration(name) {
        Some(r) => (r.start)(),
        None => Err(Error::BackendUnavailable {
            backend: name.to_string(),
            reason: format!(
                "this program was built without it; enable the `{name}` feature of the unidist crate \
                 (built in: {})",
                built_in()
                    .iter()
                    .map(|b| b.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// The backends compiled into this build, in [`BackendName::ALL`] order.
pub(crate) fn built_in() -> Vec<BackendName> {
    BackendName::ALL
        .into_iter()
        .filter(|b| registration(*b).is_some())
        .collect()
}

/// The default backend when `UNIDIST_BACKEND` is not set: the first backend in
/// [`BackendName::ALL`] order that is built in and usable (MPI when built in and its library is
/// usable, else the local pool, else the sequential backend).
pub(crate) fn detect() -> BackendName {
    built_in()
        .into_iter()
        .find(|b| registration(*b).is_some_and(|r| (r.usable)()))
        .unwrap_or(BackendName::ALL[BackendName::ALL.len() - 1])
}

/// What the running backend supports, starting the configured backend if none runs yet.
///
/// Tests and tools ask this instead of comparing backend names, e.g. whether an object can be
/// pending at all, or whether values cross process boundaries.
pub fn capabilities() -> Result<Capabilities> {
    Ok(crate::backend()?.capabilities())
}

/// The built-in backends that run entirely inside the calling process, in
/// [`BackendName::ALL`] order: those a plain child process (or a test harness that starts and
/// stops runtimes one after another) can use.
#[doc(hidden)]
pub fn in_process_backends() -> Vec<BackendName> {
    built_in()
        .into_iter()
        .filter(|b| registration(*b).is_some_and(|r| r.in_process))
        .collect()
}

/// For the benchmark program only: the raw MPI floors between rank 0 and rank 1 (`iters`
/// 8-byte ping-pongs and transfers of `bytes`), as (half round trip in seconds, bytes per
/// second). Fails unless this build has the `mpi` feature and MPI is the running backend.
#[doc(hidden)]
pub fn bench_mpi_raw_floors(iters: u32, bytes: u64) -> Result<(f64, f64)> {
    #[cfg(feature = "mpi")]
    {
        unidist_mpi::raw_floors(iters, bytes)
    }
    #[cfg(not(feature = "mpi"))]
    {
        let _ = (iters, bytes);
        Err(Error::BackendUnavailable {
            backend: BackendName::Mpi.to_string(),
            reason: "this program was built without the `mpi` feature".into(),
        })
    }
}
