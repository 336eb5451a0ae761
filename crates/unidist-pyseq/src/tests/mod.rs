//! Unit tests of the sequential backend, on the fake registrations of `unidist-testkit` and a
//! few of their own.

mod actors;
mod objects;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use unidist_core::Backend;
use unidist_testkit::{bounded, install};

const LIMIT: Duration = Duration::from_secs(20);

/// The backend of the running test, with its concrete type.
static RUNNING: Mutex<Option<Arc<crate::Pyseq>>> = Mutex::new(None);

/// Runs `body` against a fresh backend installed as the running one, on a thread of its own so
/// that a hang fails the test after [`LIMIT`] instead of stalling the run.
fn with_backend(body: impl FnOnce(Arc<dyn Backend>) + Send + 'static) {
    let pyseq = Arc::new(crate::Pyseq::default());
    let backend: Arc<dyn Backend> = pyseq.clone();
    let installed = install(move || backend);
    *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) = Some(pyseq);
    let backend = installed.backend();
    bounded(LIMIT, "the test", move || body(backend));
    *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// The number of objects in the running backend's store.
fn store_len() -> usize {
    RUNNING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .expect("a backend is running")
        .store
        .len()
}
