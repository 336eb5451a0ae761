//! MPI backend of unidist.

use std::sync::Arc;

use unidist_core::{Backend, Error, Result};

/// True when the MPI library this binary is linked to is usable.
pub fn is_usable() -> bool {
    false
}

/// Starts the MPI backend.
pub fn start() -> Result<Arc<dyn Backend>> {
    Err(Error::BackendUnavailable {
        backend: "mpi".into(),
        reason: "not implemented yet".into(),
    })
}
