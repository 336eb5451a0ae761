//! TODO

use super::*;

/// Arguments at least this large steer scheduling towards the worker that holds them.
pub(super) const LOCALITY_MIN: u64 = 64 * 1024;
/// A worker holding a large argument is chosen if its load is at most this much above the
/// least loaded worker's.
pub(super) const LOCALITY_SLACK: u32 = 4;
/// Rank 0 stops submitting while this many of its calls per worker are unfinished.
pub(super) const INFLIGHT_PER_WORKER: u32 = 4096;

impl Node {
    // ----- scheduling --------------------------------------------------------------------

    pub(super) fn workers(&self) -> std::ops::Range<u32> {
        1..self.size
    }

    /// Picks a worker: the one holding the largest big argument if it is not overloaded, else
    /// the least loaded (round robin among equals). Rank 0 never runs work.
    pub(super) fn choose(
        &self,
        st: &mut State,
        holders: &[(u64, Vec<u32>)],
        actor: bool,
    ) -> Result<u32> {
        let nw = (self.size - 1) as usize;
        if st.lost.len() >= nw && nw > 0 && self.workers().all(|w| st.lost_reason(w).is_some()) {
            let (r, why) = &st.lost[0];
            return Err(backend_err(format!(
                "no worker is left to run work: every worker was lost (rank {r}: {why})"
            )));
        }
        let key = |st: &State, w: u32| {
            if st.lost_reason(w).is_some() {
                return (u32::MAX, u32::MAX);
            }
            let a = if actor { st.actors_on[w as usize] } else { 0 };
            (a, st.load[w as usize])
        };
        let min = self.workers().map(|w| key(st, w)).min().unwrap_or((0, 0));
        if !actor {
            if let Some((_, ranks)) = holders
                .iter()
                .filter(|(s, _)| *s >= LOCALITY_MIN)
                .max_by_key(|(s, _)| *s)
            {
                let best = ranks
                    .iter()
                    .copied()
                    .filter(|r| *r >= 1 && *r < self.size && st.lost_reason(*r).is_none())
                    .min_by_key(|r| st.load[*r as usize]);
                if let Some(b) = best {
                    if st.load[b as usize] <= min.1 + LOCALITY_SLACK {
                        return Ok(b);
                    }
                }
            }
        }
        if !actor {
            // Among equally loaded workers the lowest rank: a caller that waits for each task
            // keeps one worker busy while the others go idle and stop polling, which on a
            // machine with fewer cores than ranks roughly halves the round trip. Load still
            // spreads tasks as soon as several are in flight.
            if let Some(w) = self.workers().find(|w| key(st, *w) == min) {
                return Ok(w);
            }
        }
        for i in 0..nw {
            let w = 1 + ((st.rr + i) % nw) as u32;
            if key(st, w) == min {
                st.rr = (st.rr + i + 1) % nw;
                return Ok(w);
            }
        }
        Ok(1)
    }
}

impl Node {
    pub(super) fn holders(&self, st: &State, args: &[Arg]) -> Vec<(u64, Vec<u32>)> {
        args.iter()
            .filter_map(|a| match a {
                Arg::Ref(r) => r.id().ok(),
                Arg::Value(_) => None,
            })
            .filter_map(|id| st.objs.get(&id).map(|o| (o, id)))
            .filter(|(o, _)| o.size >= LOCALITY_MIN)
            .map(|(o, _)| {
                let mut ranks = o.copies.clone();
                ranks.extend(o.loc);
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
        let mut st = self.st.lock();
        while st.inflight >= cap && !st.stopped {
            self.cv.wait_for(&mut st, Duration::from_millis(100));
        }
    }
}
