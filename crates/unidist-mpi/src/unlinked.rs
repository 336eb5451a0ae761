//! The crate built without its `link` feature: no MPI bindings, so no system MPI or libclang is
//! needed to compile it (docs.rs builds it so). Every entry point says the backend is unavailable
//! and why, the same error `unidist::init` gives for any backend this binary cannot run.

use std::sync::Arc;

use unidist_core::{Backend, Error, Result};

/// Why this build cannot run MPI, and what to change.
const NOT_LINKED: &str = "unidist-mpi was built without its `link` feature, so it has no MPI \
     bindings; enable the `mpi` feature of `unidist` (which turns `link` on) to run on MPI";

/// Whether the MPI library this binary is linked to is usable (Open MPI 4.0 or newer, MPICH 3.3
/// or newer, or any other implementation of MPI 3.1 or newer). Without `link` there is no
/// library, so it is always false, and backend detection moves on to the local pool.
pub fn is_usable() -> bool {
    false
}

/// Starts the MPI backend: on rank 0 it returns the backend; on a worker rank it serves until
/// rank 0 ends the job and then exits the process. Without `link` it fails with
/// [`Error::BackendUnavailable`] saying the build has no MPI bindings.
pub fn start() -> Result<Arc<dyn Backend>> {
    Err(Error::BackendUnavailable {
        backend: "mpi".into(),
        reason: NOT_LINKED.into(),
    })
}

/// Raw rsmpi floors for the benchmarks (half round trip in seconds, bytes per second). Without
/// `link` it fails like [`start`].
#[doc(hidden)]
pub fn raw_floors(_iters: u32, _bytes: u64) -> Result<(f64, f64)> {
    Err(Error::backend("mpi", NOT_LINKED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unlinked_build_reports_the_backend_unavailable_and_how_to_fix_it() {
        assert!(!is_usable());
        let e = start().err().expect("an unlinked build cannot start MPI");
        let text = e.to_string();
        assert!(text.contains("`link` feature"), "{text}");
        assert!(text.contains("`mpi` feature of `unidist`"), "{text}");
        assert!(raw_floors(1, 8).is_err());
    }
}
