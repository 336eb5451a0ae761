//! Local pool backend of unidist: tasks on a rayon pool, actors on actix.
#![forbid(unsafe_code)]

use std::sync::Arc;

use unidist_core::{Backend, Error, Result};

/// Starts the pool backend.
pub fn start() -> Result<Arc<dyn Backend>> {
    Err(Error::BackendUnavailable {
        backend: "pymp".into(),
        reason: "not implemented yet".into(),
    })
}
