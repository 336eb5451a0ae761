//! Test-only isolation of the process-global state: environment variables and cached values.
//!
//! The environment and the parameter caches are shared by every test thread, so a test that
//! reads or writes either holds [`isolate`]'s guard, which serializes such tests, clears every
//! `UNIDIST_*` variable of this crate, and restores both on drop (even when the test panics).

use std::ffi::OsString;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::params::clear_backend_detector;
use crate::registry::{env_vars, reset_all};

/// Serializes every test touching the environment or the parameter caches.
static ENV_LOCK: Mutex<()> = Mutex::new(());

/// Holds the test lock and the environment to restore.
pub(crate) struct Isolated {
    saved: Vec<(&'static str, Option<OsString>)>,
    _guard: MutexGuard<'static, ()>,
}

/// Takes the test lock and starts from a clean state: no `UNIDIST_*` variables of this crate,
/// nothing cached, no backend detector.
pub(crate) fn isolate() -> Isolated {
    // A failed test poisons the lock; the state is reset below anyway, so carry on.
    let guard = ENV_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let saved = env_vars()
        .into_iter()
        .map(|var| (var, std::env::var_os(var)))
        .collect();
    for var in env_vars() {
        std::env::remove_var(var);
    }
    clear_backend_detector();
    reset_all();
    Isolated {
        saved,
        _guard: guard,
    }
}

impl Isolated {
    /// Sets an environment variable for the rest of the test.
    pub(crate) fn set(&self, var: &str, value: &str) {
        std::env::set_var(var, value);
    }

    /// Removes an environment variable for the rest of the test.
    pub(crate) fn unset(&self, var: &str) {
        std::env::remove_var(var);
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        for (var, value) in &self.saved {
            match value {
                Some(value) => std::env::set_var(var, value),
                None => std::env::remove_var(var),
            }
        }
        clear_backend_detector();
        reset_all();
    }
}
