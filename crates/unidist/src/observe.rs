//! Observing the work from the facade: `stats()`, the timeline file (`UNIDIST_TIMELINE`,
//! `timeline(path)`) and the progress bar of long waits (`UNIDIST_PROGRESS`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value as Json};
use unidist_config::{self as config, Parameter};
use unidist_core::observe::timeline::{self, Phase, ProcessTrace};
use unidist_core::observe::{stats as counters, Stats};
use unidist_core::{runtime, Backend, Error, ObjectId, Result};

use crate::backend;

/// The `UNIDIST_TIMELINE` file of the running runtime, written at `shutdown`.
static TIMELINE_FILE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Counters since [`init`](crate::init): tasks submitted, finished, failed, retried and
/// cancelled, actor calls, objects and bytes stored, bytes moved between processes, with one
/// entry per worker process in [`Stats::workers`]. Its `Display` is a small table.
///
/// ```
/// #[unidist::remote]
/// fn square(x: i64) -> i64 {
///     x * x
/// }
///
/// # fn main() -> unidist::Result<()> {
/// # unidist::config::Backend::put(unidist::config::BackendName::Pyseq).unwrap();
/// unidist::init()?;
/// let before = unidist::stats()?;
/// unidist::get(&square::remote(3))?;
/// let after = unidist::stats()?;
/// assert_eq!(after.tasks_finished - before.tasks_finished, 1);
/// println!("{after}");
/// # Ok(())
/// # }
/// ```
pub fn stats() -> Result<Stats> {
    backend()?.stats()
}

/// Writes what the timeline has recorded so far (recording is on when `UNIDIST_TIMELINE` is
/// set) to `path` as a Chrome/Perfetto trace: open it in `chrome://tracing` or
/// <https://ui.perfetto.dev>, or draw it with `cargo xtask timeline-svg`.
pub fn timeline(path: impl AsRef<Path>) -> Result<()> {
    let traces = match runtime::current() {
        Some(b) => b.timeline()?,
        None => vec![timeline::local_trace()],
    };
    write_trace(path.as_ref(), &traces)
}

/// What `init` does before the backend starts: counters from 0, and the timeline on when
/// `UNIDIST_TIMELINE` names a file in a writable directory (checked here, so that a bad path
/// fails `init`, not `shutdown`).
pub(crate) fn before_start() -> Result<()> {
    counters::reset();
    let file = config::Timeline::get()?.map(PathBuf::from);
    if let Some(path) = &file {
        check_writable_dir(path)?;
        timeline::start();
    } else {
        timeline::stop();
    }
    *TIMELINE_FILE.lock().unwrap_or_else(|p| p.into_inner()) = file;
    Ok(())
}

/// Fails unless a file can be written at `path`: its directory exists and is writable and the
/// name is a valid file name. An existing file is opened for appending, so that its contents
/// stay; otherwise a probe file of this process's own (beside `path`, named after it, the
/// process id and a count) is created and removed. Every MPI rank runs `init`, several of them on one host
/// at once: probing `path` itself, one rank removed the file another had just created.
fn check_writable_dir(path: &Path) -> Result<()> {
    let result = if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
    } else {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        match name {
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path has no file name",
            )),
            Some(name) => {
                static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let pid = std::process::id();
                let probe = path.with_file_name(format!(".{name}.{pid}.{n}.probe"));
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&probe)
                    .and_then(|_| std::fs::remove_file(&probe))
            }
        }
    };
    result.map_err(|e| {
        Error::from(config::ConfigError::InvalidValue {
            variable: config::Timeline::VARNAME.to_string(),
            value: path.display().to_string(),
            expected: format!("a file path in an existing, writable directory ({e})"),
        })
    })
}

/// Writes the `UNIDIST_TIMELINE` file once the runtime has ended, and stops recording.
pub(crate) fn write_at_shutdown(b: &dyn Backend) -> Result<()> {
    let file = TIMELINE_FILE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let Some(path) = file else { return Ok(()) };
    timeline::stop();
    write_trace(&path, &b.timeline()?)
}

fn write_trace(path: &Path, traces: &[ProcessTrace]) -> Result<()> {
    let failed = |e: std::io::Error| {
        Error::invalid(
            "timeline file",
            path.display(),
            format!("a path where a file can be written ({e})"),
        )
    };
    let file = std::fs::File::create(path).map_err(failed)?;
    let mut out = std::io::BufWriter::new(file);
    serde_json::to_writer(&mut out, &trace_json(traces))
        .map_err(|e| failed(std::io::Error::other(e)))?;
    out.flush().map_err(failed)
}

/// The trace event JSON of `traces`: one process per rank named after it and its host, one
/// thread per worker or actor, complete events, and flow events from submission to execution.
pub(crate) fn trace_json(traces: &[ProcessTrace]) -> Json {
    let mut events = Vec::new();
    let mut max_error_ns = 0;
    for t in traces {
        let pid = t.rank;
        max_error_ns = max_error_ns.max(t.offset_error_ns);
        let name = format!("rank {} ({})", t.rank, t.host);
        events.push(
            json!({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
            "args": {"name": name}}),
        );
        events.push(
            json!({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
            "args": {"sort_index": pid}}),
        );
        for (tid, name) in &t.recording.threads {
            events.push(
                json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                "args": {"name": name}}),
            );
        }
        for e in &t.recording.events {
            let ts = (e.ts_ns as i64 + t.offset_ns) as f64 / 1000.0;
            let (cat, name) = (e.category.as_ref(), e.name.as_ref());
            events.push(match e.phase {
                Phase::Complete { dur_ns } => json!({"ph": "X", "cat": cat, "name": name,
                    "ts": ts, "dur": dur_ns as f64 / 1000.0, "pid": pid, "tid": e.thread}),
                Phase::FlowStart => json!({"ph": "s", "cat": "flow", "name": "submit",
                    "id": e.flow, "ts": ts, "pid": pid, "tid": e.thread, "args": {"call": name}}),
                Phase::FlowEnd => json!({"ph": "f", "bp": "e", "cat": "flow", "name": "submit",
                    "id": e.flow, "ts": ts, "pid": pid, "tid": e.thread}),
                Phase::Instant => json!({"ph": "i", "s": "t", "cat": cat, "name": name,
                    "ts": ts, "pid": pid, "tid": e.thread, "args": detail_json(e.detail.as_ref())}),
            });
        }
    }
    // Each process's clock alignment to rank 0: the offset added and its residual error.
    let clocks: Vec<Json> = traces
        .iter()
        .map(|t| {
            json!({"rank": t.rank, "host": t.host, "offset_us": t.offset_ns as f64 / 1000.0,
                "error_us": t.offset_error_ns as f64 / 1000.0})
        })
        .collect();
    json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "generator": "unidist",
            "processes": traces.len(),
            "clock_offset_error_us": max_error_ns as f64 / 1000.0,
            "clocks": clocks,
        },
    })
}

/// The `args` of an instant event: a transfer's bytes and ranks, or a lost peer and why.
fn detail_json(detail: Option<&timeline::Detail>) -> Json {
    match detail {
        Some(timeline::Detail::Transfer { bytes, from, to }) => {
            json!({"bytes": bytes, "from": from, "to": to})
        }
        Some(timeline::Detail::PeerLost { rank, why }) => json!({"rank": rank, "why": why}),
        None => json!({}),
    }
}

/// Runs `wait_for` (a backend `get` or `wait` on `ids` that needs `need` of them), showing a
/// progress bar on stderr when `UNIDIST_PROGRESS` is on, stderr is a terminal, the wait is on
/// at least 2 refs and it lasts more than a second.
pub(crate) fn with_progress<R>(
    ids: &[ObjectId],
    b: &Arc<dyn Backend>,
    need: usize,
    wait_for: impl FnOnce() -> Result<R>,
) -> Result<R> {
    if need < 2 || !config::Progress::get().unwrap_or(false) || !std::io::stderr().is_terminal() {
        return wait_for();
    }
    let bar = ProgressWatch::start(ids.to_vec(), b.clone(), need);
    let result = wait_for();
    bar.finish(result.is_ok());
    result
}

/// A thread that draws the bar of one wait, once it has lasted a second.
struct ProgressWatch {
    done: Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl ProgressWatch {
    fn start(ids: Vec<ObjectId>, b: Arc<dyn Backend>, need: usize) -> Self {
        let (done, finished) = channel::<bool>();
        let started = std::time::Instant::now();
        let thread = std::thread::Builder::new()
            .name("unidist-progress".into())
            .spawn(move || {
                // Short waits show nothing.
                if !matches!(
                    finished.recv_timeout(Duration::from_secs(1)),
                    Err(RecvTimeoutError::Timeout)
                ) {
                    return;
                }
                // The bar appears a second in; its clock (for the rate and ETA) starts with
                // the wait.
                let bar = indicatif::ProgressBar::new(need as u64).with_elapsed(started.elapsed());
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bar:40} {pos}/{len} ({per_sec}, ETA {eta})",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                let sample = |bar: &indicatif::ProgressBar| {
                    // `num_returns = 0` only samples readiness.
                    if let Ok(flags) = b.wait(&ids, 0, Some(Duration::ZERO)) {
                        let ready = flags.iter().filter(|r| **r).count().min(need);
                        bar.set_position(ready as u64);
                    }
                };
                loop {
                    sample(&bar);
                    match finished.recv_timeout(Duration::from_millis(100)) {
                        Ok(true) => bar.set_position(need as u64),
                        Ok(false) | Err(RecvTimeoutError::Disconnected) => sample(&bar),
                        Err(RecvTimeoutError::Timeout) => continue,
                    }
                    bar.finish();
                    // The bar stays as the wait's last line; what follows starts below it.
                    eprintln!();
                    return;
                }
            })
            .ok();
        ProgressWatch { done, thread }
    }

    /// Ends the bar: at the total when the wait succeeded, else where it got to.
    fn finish(mut self, ok: bool) {
        let _ = self.done.send(ok);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_writable_dir;

    #[test]
    fn ranks_checking_one_trace_path_at_once_all_pass_and_leave_nothing() {
        let dir = std::env::temp_dir().join(format!("unidist-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trace.json");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || (0..200).try_for_each(|_| check_writable_dir(&path)))
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "probe files left behind: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_or_a_directory_as_the_file_is_refused() {
        let missing = std::env::temp_dir().join("unidist-no-such-dir-for-a-probe/trace.json");
        let e = check_writable_dir(&missing).unwrap_err().to_string();
        assert!(e.contains("UNIDIST_TIMELINE") && e.contains("unidist-no-such-dir-for-a-probe"));
        assert!(check_writable_dir(&std::env::temp_dir()).is_err());
    }
}
