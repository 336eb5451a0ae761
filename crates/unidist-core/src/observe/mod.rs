//! Observing the work: runtime counters ([`stats`]) and the timeline recorder ([`timeline`]).
//!
//! Both are process-wide and cheap when nobody looks: a counter is one relaxed atomic add, and
//! a timeline event site costs one relaxed atomic load while recording is off. The facade turns
//! them into `unidist::stats()`, `unidist::timeline(path)` and the `UNIDIST_TIMELINE` file; the
//! MPI backend gathers each rank's [`stats::local`] and timeline buffer to rank 0.

pub mod stats;
pub mod timeline;

pub use stats::{Counter, Stats, WorkerStats};
