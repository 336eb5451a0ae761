//! The backend table: which backends this build contains, how each is started, and which one
//! is chosen when `UNIDIST_BACKEND` is not set. The only place in the facade that names backends.

use std::sync::Arc;

use unidist_config::BackendName;
use unidist_core::{Backend, Error, Result};

/// Starts the named backend, or says which feature it needs.
pub(crate) fn start(name: BackendName) -> Result<Arc<dyn Backend>> {
    match name {
        #[cfg(feature = "mpi")]
        BackendName::Mpi => unidist_mpi::start(),
        #[cfg(feature = "pymp")]
        BackendName::Pymp => unidist_pymp::start(),
        #[cfg(feature = "pyseq")]
        BackendName::Pyseq => unidist_pyseq::start(),
        #[allow(unreachable_patterns)]
        other => Err(Error::BackendUnavailable {
            backend: other.to_string(),
            reason: format!(
                "this program was built without it; enable the `{other}` feature of the unidist crate \
                 (built in: {})",
                built_in().join(", ")
            ),
        }),
    }
}

/// The backends compiled into this build.
pub(crate) fn built_in() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "mpi") {
        v.push("mpi");
    }
    if cfg!(feature = "pymp") {
        v.push("pymp");
    }
    if cfg!(feature = "pyseq") {
        v.push("pyseq");
    }
    v
}

/// The default backend when `UNIDIST_BACKEND` is not set: MPI when built in and its library is
/// usable, else the local pool, else the sequential backend.
pub(crate) fn detect() -> BackendName {
    #[cfg(feature = "mpi")]
    if unidist_mpi::is_usable() {
        return BackendName::Mpi;
    }
    if cfg!(feature = "pymp") {
        BackendName::Pymp
    } else {
        BackendName::Pyseq
    }
}
