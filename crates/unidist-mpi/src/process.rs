//! Process-level concerns: the ranks this process learned are lost (one registry that the
//! communication thread, the node and the exit path all ask), the exit status, the panic hook,
//! termination signals and the `atexit` shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use unidist_core::runtime;

use crate::ffi;
use crate::log;
use crate::node::Node;

/// The ranks this process knows are gone, with the reason: the only record of lost peers.
///
/// The communication thread stops sending to them, the node fails what only they could
/// deliver and schedules around them, and the exit path reports them.
#[derive(Default)]
pub(crate) struct LostPeers {
    /// Set once any rank is lost, so that the hot paths check the list only after a loss.
    any: AtomicBool,
    ranks: Mutex<Vec<(u32, String)>>,
}

impl LostPeers {
    /// Records that `rank` is lost; false if it was known already.
    pub(crate) fn mark(&self, rank: u32, why: &str) -> bool {
        let mut ranks = self.ranks.lock().unwrap_or_else(|p| p.into_inner());
        if ranks.iter().any(|(r, _)| *r == rank) {
            return false;
        }
        ranks.push((rank, why.to_string()));
        self.any.store(true, Ordering::Release);
        true
    }

    /// Whether any rank is lost.
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// Whether `rank` is lost.
    pub(crate) fn contains(&self, rank: u32) -> bool {
        self.any() && self.reason(rank).is_some()
    }

    /// Why `rank` is lost, if it is.
    pub(crate) fn reason(&self, rank: u32) -> Option<String> {
        if !self.any() {
            return None;
        }
        let ranks = self.ranks.lock().unwrap_or_else(|p| p.into_inner());
        ranks
            .iter()
            .find(|(r, _)| *r == rank)
            .map(|(_, w)| w.clone())
    }

    /// Every lost rank with its reason, in the order they were learned.
    pub(crate) fn all(&self) -> Vec<(u32, String)> {
        if !self.any() {
            return Vec::new();
        }
        self.ranks.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The lost-peer registry of the running backend, for the exit path.
static LOST: OnceLock<Arc<LostPeers>> = OnceLock::new();
/// Rank 0's node, for [`root_node`].
static ROOT_NODE: OnceLock<Weak<Node>> = OnceLock::new();

/// Makes `lost` the registry the exit path reports from.
pub(crate) fn set_lost_peers(lost: Arc<LostPeers>) {
    let _ = LOST.set(lost);
}

/// Rank 0: installs the panic hook, the `atexit` shutdown and the signal handlers.
pub(crate) fn install_root(node: &Arc<Node>) {
    install_panic_hook();
    let _ = ROOT_NODE.set(Arc::downgrade(node));
    ffi::at_exit(shutdown_at_exit);
    if let Err(e) = ffi::on_termination_signals(on_signal_root) {
        tracing::warn!(error = %e, "cannot install signal handlers");
    }
}

/// A worker: installs the panic hook and leaves signals to rank 0, which shuts every rank
/// down; a worker whose rank 0 does not do so in time exits on its own.
pub(crate) fn install_worker() {
    install_panic_hook();
    let _ = ffi::on_termination_signals(on_signal_worker);
}

/// Rank 0's node while the backend runs.
pub(crate) fn root_node() -> Option<Arc<Node>> {
    ROOT_NODE.get().and_then(Weak::upgrade)
}

/// Flushes the log and the standard streams, then ends the process with `code`.
pub(crate) fn exit_process(code: i32) -> ! {
    use std::io::Write;
    log::flush();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    ffi::exit_now(code)
}

/// A worker's end after a clean shutdown (MPI finalized): like [`exit_process`] but through the
/// C library's `exit`, so that the MPI library's own exit handlers run. MPICH 5's launcher took
/// a worker that left with `_exit` right after `MPI_Finalize` for a failed one in about 1 run in
/// 12 (the job then ended with status 9), never one that ran them.
pub(crate) fn exit_worker_done() -> ! {
    use std::io::Write;
    log::flush();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(0)
}

/// A worker whose rank 0 is gone can never be shut down: it ends at once, so that no process
/// of the job is left behind.
pub(crate) fn exit_after_losing_root(why: &str) -> ! {
    tracing::error!(why, "rank 0 is lost: this worker exits");
    eprintln!("unidist: worker lost rank 0 ({why}); exiting");
    exit_process(1)
}

/// A worker whose initialization failed: rank 0 reports the cause in more detail (for a
/// registry mismatch, the first differing function), and a launcher ends the whole job at the
/// first non-zero exit, so a worker that exits at once can cut rank 0's report off.
pub(crate) fn exit_after_failed_init(error: &unidist_core::Error) -> ! {
    eprintln!("unidist mpi worker: {error}");
    std::thread::sleep(Duration::from_secs(3));
    exit_process(1)
}

fn install_panic_hook() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        prev(info);
        if !unidist_core::task::in_task() {
            tracing::error!("panic outside a task, aborting the MPI job: {info}");
            log::flush();
            ffi::abort_job(101);
        }
    }));
}

/// The end of `main` (or a signal) on rank 0: shuts the backend down, then ends with status 1
/// if a rank was lost.
fn shutdown_at_exit() {
    if let Some(b) = runtime::take() {
        if b.name() == "mpi" {
            if let Err(e) = b.shutdown() {
                eprintln!("unidist: shutting down the mpi backend at exit failed: {e}");
            }
        }
    }
    let lost = LOST.get().map(|l| l.all()).unwrap_or_default();
    if !lost.is_empty() {
        // MPI was left unfinalized (it would wait for the lost rank forever): end here, with a
        // status that tells the launcher and the user that the job did not complete cleanly.
        for (rank, why) in &lost {
            eprintln!("unidist: the job lost rank {rank} ({why}); exiting with status 1");
        }
        exit_process(1);
    }
}

fn on_signal_root(sig: i32) {
    tracing::warn!(sig, "termination signal: shutting every rank down");
    eprintln!("unidist: rank 0 received signal {sig}: shutting every rank down");
    shutdown_at_exit();
    exit_process(128 + sig);
}

fn on_signal_worker(sig: i32) {
    tracing::warn!(
        sig,
        "termination signal: waiting for rank 0 to shut the job down"
    );
    std::thread::sleep(Duration::from_secs(10));
    exit_process(128 + sig);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rank_is_recorded_once_with_its_first_reason() {
        let lost = LostPeers::default();
        assert!(!lost.any() && !lost.contains(2));
        assert!(lost.mark(2, "its process 9 ended"));
        assert!(!lost.mark(2, "no message from it for 30 s"));
        assert!(lost.contains(2) && !lost.contains(1));
        assert_eq!(lost.reason(2).as_deref(), Some("its process 9 ended"));
        assert_eq!(lost.all(), vec![(2, "its process 9 ended".to_string())]);
    }
}
