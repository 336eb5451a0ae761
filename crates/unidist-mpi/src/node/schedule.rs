//! Scheduling: which worker runs a call (load, locality of large arguments, lost workers)
//! and the submission throttle of rank 0.

use std::time::Duration;

use unidist_core::{Arg, Result};

use super::state::{backend_err, State};
use super::Node;

/// Arguments at least this large steer scheduling towards the worker that holds them.
pub(super) const LOCALITY_MIN: u64 = 64 * 1024;
/// A worker holding a large argument is chosen if its load is at most this much above the
/// least loaded worker's.
pub(super) const LOCALITY_SLACK: u32 = 4;
/// Rank 0 stops submitting while this many of its calls per worker are unfinished.
pub(super) const INFLIGHT_PER_WORKER: u32 = 4096;

impl Node {
    /// The ranks that run work: every rank but 0.
    pub(super) fn workers(&self) -> std::ops::Range<u32> {
        1..self.size
    }

    /// Picks a worker: the one holding the largest big argument if it is not overloaded, else
    /// the least loaded (round robin among equals). Rank 0 never runs work.
    ///
    /// The load of a worker is the number of unfinished calls this process sent it; a worker
    /// placing a nested task adds its own running and queued tasks to its own load, and among
    /// equally loaded workers leaves the task to another: a task that waits for helpers it
    /// started (not in `get`) holds its slot, so the helpers' tasks must run elsewhere.
    pub(super) fn choose(
        &self,
        state: &mut State,
        holders: &[(u64, Vec<u32>)],
        actor: bool,
    ) -> Result<u32> {
        let nw = (self.size - 1) as usize;
        if nw > 0 && self.workers().all(|w| self.lost.contains(w)) {
            let (r, why) = self.lost.all().swap_remove(0);
            return Err(backend_err(format!(
                "no worker is left to run work: every worker was lost (rank {r}: {why})"
            )));
        }
        if !actor && self.rank == 0 {
            // Rank 0 runs no work, so no load of its own changes the order: the index gives
            // the least loaded worker without looking at every worker.
            if let Some((calls, w)) = state.workers.least_loaded(|w| self.lost.contains(w)) {
                return Ok(self.by_locality(state, holders, calls).unwrap_or(w));
            }
        }
        let own = self.own_load();
        let key = |state: &State, w: u32| {
            if self.lost.contains(w) {
                return (u32::MAX, u32::MAX);
            }
            let a = if actor {
                state.workers.actors[w as usize]
            } else {
                0
            };
            let mut calls = state.workers.calls[w as usize];
            if w == self.rank {
                calls = calls.saturating_add(own);
            }
            (a, calls)
        };
        let min = self
            .workers()
            .map(|w| key(state, w))
            .min()
            .unwrap_or((0, 0));
        if !actor {
            if let Some(b) = self.by_locality(state, holders, min.1) {
                return Ok(b);
            }
        }
        if !actor {
            // Among equally loaded workers the lowest rank: a caller that waits for each task
            // keeps one worker busy while the others go idle and stop polling, which on a
            // machine with fewer cores than ranks roughly halves the round trip. Load still
            // spreads tasks as soon as several are in flight.
            let equal = |w: &u32| key(state, *w) == min;
            if let Some(w) = self
                .workers()
                .filter(|w| *w != self.rank)
                .find(equal)
                .or_else(|| self.workers().find(equal))
            {
                return Ok(w);
            }
        }
        for i in 0..nw {
            let w = 1 + ((state.workers.round_robin + i) % nw) as u32;
            if key(state, w) == min {
                state.workers.round_robin = (state.workers.round_robin + i + 1) % nw;
                return Ok(w);
            }
        }
        Ok(1)
    }

    /// The worker holding the largest big argument, if its load is at most
    /// [`LOCALITY_SLACK`] above `least` (the least loaded worker's).
    fn by_locality(&self, state: &State, holders: &[(u64, Vec<u32>)], least: u32) -> Option<u32> {
        let (_, ranks) = holders
            .iter()
            .filter(|(s, _)| *s >= LOCALITY_MIN)
            .max_by_key(|(s, _)| *s)?;
        let best = ranks
            .iter()
            .copied()
            .filter(|r| *r >= 1 && *r < self.size && !self.lost.contains(*r))
            .min_by_key(|r| state.workers.calls[*r as usize])?;
        (state.workers.calls[best as usize] <= least + LOCALITY_SLACK).then_some(best)
    }

    /// The tasks running (not blocked in `get`) and queued on this rank, if it is a worker.
    fn own_load(&self) -> u32 {
        match self.pool.get() {
            Some(pool) if self.rank != 0 => u32::try_from(pool.load()).unwrap_or(u32::MAX),
            _ => 0,
        }
    }

    /// The size and the holders (location and copies, and with the shared store every worker
    /// on the host of a holder on this host) of each large argument that is a ref.
    pub(super) fn holders(&self, state: &State, args: &[Arg]) -> Vec<(u64, Vec<u32>)> {
        args.iter()
            .filter_map(|a| match a {
                Arg::Ref(r) => r.id().ok(),
                Arg::Value(_) => None,
            })
            .filter_map(|id| state.objects.get(&id).map(|o| (o, id)))
            .filter(|(o, _)| o.size >= LOCALITY_MIN)
            .map(|(o, _)| {
                let mut ranks = o.copies.clone();
                ranks.extend(o.location);
                // With the shared store, a large object held on this host is read in place by
                // every worker of this host: they are all local to it.
                if self.store.holds(o.size)
                    && ranks.iter().any(|r| self.store.both_here(*r, self.rank))
                {
                    ranks.extend(
                        self.workers()
                            .filter(|w| self.store.both_here(*w, self.rank)),
                    );
                    ranks.sort_unstable();
                    ranks.dedup();
                }
                (o.size, ranks)
            })
            .collect()
    }

    /// Rank 0 waits while too much of its work is unfinished, so that a loop submitting
    /// millions of tasks keeps memory bounded on every rank.
    pub(super) fn throttle(&self) {
        if self.rank != 0 || self.size < 2 {
            return;
        }
        let cap = INFLIGHT_PER_WORKER * (self.size - 1);
        let mut state = self.state.lock();
        while state.workers.inflight >= cap && !state.stopped {
            self.progress
                .wait_for(&mut state, Duration::from_millis(100));
        }
    }
}
