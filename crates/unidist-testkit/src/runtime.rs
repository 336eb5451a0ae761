//! The runtime a test runs against: turns at the process-wide slot, installation, and time
//! bounds.

use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use unidist_core::{runtime, Backend};

/// Tests of one binary share the process-wide runtime slot, so they take turns.
static TURN: Mutex<()> = Mutex::new(());

/// This test's turn at the runtime slot; a test that panicked does not block the next one.
pub fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// A backend installed as the running one for a test; dropping it shuts the backend down and
/// removes it, then ends the turn.
pub struct Installed {
    backend: Arc<dyn Backend>,
    _turn: MutexGuard<'static, ()>,
}

impl Installed {
    /// The installed backend.
    pub fn backend(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = self.backend.shutdown();
        remove_installed();
    }
}

/// Takes the turn, then starts a backend with `start` and installs it as the running one until
/// the returned guard drops.
///
/// The backend starts only once the turn is taken, so that its threads never overlap another
/// test's (tests count threads).
pub fn install(start: impl FnOnce() -> Arc<dyn Backend>) -> Installed {
    let turn = turn();
    let backend = start();
    replace_installed(backend.clone());
    Installed {
        backend,
        _turn: turn,
    }
}

/// Installs `backend`, shutting down and removing one left installed; call it during a turn.
pub fn replace_installed(backend: Arc<dyn Backend>) {
    if let Some(old) = runtime::take() {
        let _ = old.shutdown();
    }
    if let Err(e) = runtime::install(backend) {
        panic!("cannot install the backend under test: {e}");
    }
}

/// Shuts down and removes the installed backend, if any; call it during a turn.
pub fn remove_installed() {
    if let Some(b) = runtime::take() {
        if let Err(e) = b.shutdown() {
            panic!("shutting down the backend under test failed: {e}");
        }
    }
}

/// The installed backend.
pub fn backend() -> Arc<dyn Backend> {
    match runtime::current() {
        Some(b) => b,
        None => panic!("no backend is installed: call testkit::install first"),
    }
}

/// Runs `f` on a thread of its own and returns its result; fails the test when `f` does not
/// finish within `limit` (naming `what`), and passes on its panic if it panicked.
pub fn bounded<R: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => {
            let _ = worker.join();
            r
        }
        Err(RecvTimeoutError::Disconnected) => match worker.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => panic!("{what} ended without a result"),
        },
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Polls `cond` until it holds (true) or `limit` passes (false).
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How many threads of this process have a name starting with `prefix` (Linux; 0 elsewhere).
pub fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                .filter(|n| n.starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

/// The resident set size of this process in bytes (Linux `VmRSS`; 0 where it cannot be read).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}
