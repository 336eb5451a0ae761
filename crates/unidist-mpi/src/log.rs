//! Per-rank log files (`UNIDIST_MPI_LOG=true`): `unidist-mpi-rank-<r>.log` in the working
//! directory, written through a non-lossy background writer that is flushed on exit and before
//! an abort.

use std::sync::Mutex;

use tracing_appender::non_blocking::WorkerGuard;

static GUARD: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Starts logging for `rank` if enabled; a global subscriber set by the program wins.
pub(crate) fn init(rank: u32, enabled: bool) {
    if !enabled {
        return;
    }
    let appender = tracing_appender::rolling::never(".", format!("unidist-mpi-rank-{rank}.log"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("unidist-log")
        .finish(appender);
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing::level_filters::LevelFilter::DEBUG.into())
        .with_env_var("UNIDIST_LOG")
        .from_env_lossy();
    let ok = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_thread_names(true)
        .with_env_filter(filter)
        .try_init()
        .is_ok();
    if ok {
        *GUARD.lock().unwrap_or_else(|p| p.into_inner()) = Some(guard);
        tracing::info!(rank, pid = std::process::id(), "unidist mpi log started");
    }
}

/// Writes out everything logged so far (the log ends here).
pub(crate) fn flush() {
    let guard = GUARD.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(guard);
}
