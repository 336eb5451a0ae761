//! Runtime counters since `init`: relaxed atomics bumped where work is submitted and where its
//! outputs are stored, and the [`Stats`] snapshot users read.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// One counter of [`Stats`]; see the field of the same name there for what it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Counter {
    /// [`Stats::tasks_submitted`].
    TasksSubmitted,
    /// [`Stats::tasks_finished`].
    TasksFinished,
    /// [`Stats::tasks_failed`].
    TasksFailed,
    /// [`Stats::tasks_retried`].
    TasksRetried,
    /// [`Stats::tasks_cancelled`].
    TasksCancelled,
    /// [`Stats::actor_calls`].
    ActorCalls,
    /// [`Stats::objects_stored`].
    ObjectsStored,
    /// [`Stats::bytes_stored`].
    BytesStored,
    /// [`Stats::bytes_moved`].
    BytesMoved,
}

const COUNTERS: usize = 9;

// Process-wide: one runtime runs per process at a time, and `reset` starts them again at `init`.
static VALUES: [AtomicU64; COUNTERS] = [const { AtomicU64::new(0) }; COUNTERS];

/// Adds 1 to `counter`.
#[inline]
pub fn count(counter: Counter) {
    add(counter, 1);
}

/// Adds `n` to `counter`. Relaxed: counters order nothing, and a snapshot taken while work runs
/// is a sample anyway.
#[inline]
pub fn add(counter: Counter, n: u64) {
    VALUES[counter as usize].fetch_add(n, Ordering::Relaxed);
}

/// Counts the outcome of a task whose outputs were stored: finished when it produced its
/// outputs, failed when they hold an error (a panic, a wrong number of outputs, a failed
/// argument, a timeout, a shutdown before it ran). Called after the outputs are stored, so that
/// a reader who sees every task settled also sees every output counted.
#[inline]
pub fn task_settled(succeeded: bool) {
    count(if succeeded {
        Counter::TasksFinished
    } else {
        Counter::TasksFailed
    });
}

/// Counts one object stored by `put` or as a call's output, with `bytes` when its size is known.
#[inline]
pub fn object_stored(bytes: Option<usize>) {
    count(Counter::ObjectsStored);
    if let Some(b) = bytes {
        add(Counter::BytesStored, b as u64);
    }
}

/// Takes back what [`object_stored`] counted for the outputs of a run whose result was dropped
/// (a timed-out or cancelled body that returned after its outputs had been settled without it):
/// every call's outputs are counted as they leave the body, before a backend knows whether it
/// keeps them.
pub fn outputs_dropped(outputs: &crate::value::Outputs) {
    for o in outputs {
        let _ = VALUES[Counter::ObjectsStored as usize].fetch_update(
            Ordering::Relaxed,
            Ordering::Relaxed,
            |v| v.checked_sub(1),
        );
        if let Some(b) = o.byte_len() {
            let _ = VALUES[Counter::BytesStored as usize].fetch_update(
                Ordering::Relaxed,
                Ordering::Relaxed,
                |v| Some(v.saturating_sub(b as u64)),
            );
        }
    }
}

/// Sets every counter back to 0; the facade calls it at `init`.
pub fn reset() {
    for v in &VALUES {
        v.store(0, Ordering::Relaxed);
    }
}

fn get(counter: Counter) -> u64 {
    VALUES[counter as usize].load(Ordering::Relaxed)
}

/// Counters since `init`. On MPI, the totals add up every rank and [`workers`](Stats::workers)
/// has one entry per rank; local backends have one entry for the whole process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// Tasks submitted (`f.remote(..)` that returned refs; a submission refused with an error
    /// is not counted).
    pub tasks_submitted: u64,
    /// Tasks whose outputs were stored as values.
    pub tasks_finished: u64,
    /// Tasks whose outputs hold an error: a panic, a wrong number of outputs, a failed
    /// argument, or a shutdown before they ran; on MPI also a task whose worker was lost
    /// (counted by the process that submitted it).
    pub tasks_failed: u64,
    /// Task runs started again after their worker was lost.
    pub tasks_retried: u64,
    /// Tasks cancelled before they finished (also counted in `tasks_failed`: their outputs
    /// hold the `Cancelled` error).
    pub tasks_cancelled: u64,
    /// Actor method calls submitted.
    pub actor_calls: u64,
    /// Objects stored: every `put` and every output of a task or actor call that produced one.
    pub objects_stored: u64,
    /// Bytes of stored objects whose size is known without serializing them: the natural
    /// types (`Vec` of numbers, `String`, `Buffer`) on local backends, every encoded object on
    /// MPI. Other values stay in memory as they are and add 0.
    pub bytes_stored: u64,
    /// Bytes of values sent between processes (call arguments given as values, objects pushed
    /// to or fetched by another process), counted once, by the process that sends them; 0 on
    /// local backends.
    pub bytes_moved: u64,
    /// The same counters per worker process (one entry on local backends).
    pub workers: Vec<WorkerStats>,
}

/// The counters of one worker process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Which worker: `rank N` on MPI, `local` otherwise.
    pub name: String,
    /// The host it runs on.
    pub host: String,
    /// As [`Stats::tasks_submitted`], for this worker.
    pub tasks_submitted: u64,
    /// As [`Stats::tasks_finished`], for this worker.
    pub tasks_finished: u64,
    /// As [`Stats::tasks_failed`], for this worker.
    pub tasks_failed: u64,
    /// As [`Stats::tasks_retried`], for this worker.
    pub tasks_retried: u64,
    /// As [`Stats::tasks_cancelled`], for this worker.
    pub tasks_cancelled: u64,
    /// As [`Stats::actor_calls`], for this worker.
    pub actor_calls: u64,
    /// As [`Stats::objects_stored`], for this worker.
    pub objects_stored: u64,
    /// As [`Stats::bytes_stored`], for this worker.
    pub bytes_stored: u64,
    /// As [`Stats::bytes_moved`], for this worker.
    pub bytes_moved: u64,
}

impl WorkerStats {
    /// This process's counters, named `name`.
    pub fn local(name: impl Into<String>) -> Self {
        WorkerStats {
            name: name.into(),
            host: crate::runtime::local_ip(),
            tasks_submitted: get(Counter::TasksSubmitted),
            tasks_finished: get(Counter::TasksFinished),
            tasks_failed: get(Counter::TasksFailed),
            tasks_retried: get(Counter::TasksRetried),
            tasks_cancelled: get(Counter::TasksCancelled),
            actor_calls: get(Counter::ActorCalls),
            objects_stored: get(Counter::ObjectsStored),
            bytes_stored: get(Counter::BytesStored),
            bytes_moved: get(Counter::BytesMoved),
        }
    }

    fn rows(&self) -> [(&'static str, u64); COUNTERS] {
        [
            ("tasks submitted", self.tasks_submitted),
            ("tasks finished", self.tasks_finished),
            ("tasks failed", self.tasks_failed),
            ("tasks retried", self.tasks_retried),
            ("tasks cancelled", self.tasks_cancelled),
            ("actor calls", self.actor_calls),
            ("objects stored", self.objects_stored),
            ("bytes stored", self.bytes_stored),
            ("bytes moved", self.bytes_moved),
        ]
    }
}

impl Stats {
    /// Totals over `workers` (e.g. one entry per MPI rank, gathered to rank 0).
    pub fn from_workers(workers: Vec<WorkerStats>) -> Self {
        let mut s = Stats::default();
        for w in &workers {
            s.tasks_submitted += w.tasks_submitted;
            s.tasks_finished += w.tasks_finished;
            s.tasks_failed += w.tasks_failed;
            s.tasks_retried += w.tasks_retried;
            s.tasks_cancelled += w.tasks_cancelled;
            s.actor_calls += w.actor_calls;
            s.objects_stored += w.objects_stored;
            s.bytes_stored += w.bytes_stored;
            s.bytes_moved += w.bytes_moved;
        }
        s.workers = workers;
        s
    }
}

/// This process's counters as [`Stats`] with one worker entry; what
/// [`Backend::stats`](crate::Backend::stats) returns unless a backend gathers more.
pub fn local() -> Stats {
    Stats::from_workers(vec![WorkerStats::local("local")])
}

impl fmt::Display for Stats {
    /// A table: one row per counter, a `total` column, and one column per worker when there
    /// are several.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = WorkerStats {
            name: "total".into(),
            tasks_submitted: self.tasks_submitted,
            tasks_finished: self.tasks_finished,
            tasks_failed: self.tasks_failed,
            tasks_retried: self.tasks_retried,
            tasks_cancelled: self.tasks_cancelled,
            actor_calls: self.actor_calls,
            objects_stored: self.objects_stored,
            bytes_stored: self.bytes_stored,
            bytes_moved: self.bytes_moved,
            ..WorkerStats::default()
        };
        let mut columns = vec![&total];
        if self.workers.len() > 1 {
            columns.extend(&self.workers);
        }
        let width = columns
            .iter()
            .flat_map(|c| c.rows().map(|(_, v)| v.to_string().len()))
            .chain(columns.iter().map(|c| c.name.len()))
            .max()
            .unwrap_or(0);
        write!(f, "{:<16}", "counter")?;
        for c in &columns {
            write!(f, " {:>width$}", c.name)?;
        }
        writeln!(f)?;
        let rows: Vec<_> = columns.iter().map(|c| c.rows()).collect();
        for (i, (label, _)) in total.rows().iter().enumerate() {
            write!(f, "{label:<16}")?;
            for r in &rows {
                write!(f, " {:>width$}", r[i].1)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_the_workers_and_the_table_shows_them() {
        let a = WorkerStats {
            name: "rank 1".into(),
            tasks_finished: 3,
            bytes_moved: 100,
            ..WorkerStats::default()
        };
        let b = WorkerStats {
            name: "rank 2".into(),
            tasks_finished: 4,
            bytes_moved: 20,
            ..WorkerStats::default()
        };
        let s = Stats::from_workers(vec![a, b]);
        assert_eq!((s.tasks_finished, s.bytes_moved), (7, 120));
        let table = s.to_string();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 1 + COUNTERS, "{table}");
        assert!(
            lines[0].contains("total") && lines[0].contains("rank 2"),
            "{table}"
        );
        let finished = lines
            .iter()
            .find(|l| l.starts_with("tasks finished"))
            .unwrap();
        let cells: Vec<&str> = finished.split_whitespace().collect();
        assert_eq!(cells[2..], ["7", "3", "4"], "{table}");
    }

    #[test]
    fn a_single_worker_shows_only_the_total_column() {
        let s = Stats::from_workers(vec![WorkerStats::default()]);
        let header = s.to_string().lines().next().unwrap().to_string();
        assert_eq!(
            header.split_whitespace().collect::<Vec<_>>(),
            ["counter", "total"]
        );
    }
}
