//! TODO

use super::*;

/// After its first pass, a waiting `get` re-requests at most this many ids per wake-up.
pub(super) const REKICK_WINDOW: usize = 1024;
/// How long rank 0's caller polls for a result before it sleeps.
pub(super) const GET_SPIN: Duration = Duration::from_micros(100);

/// object wakes only the threads that wait for it, not every blocked thread of the process.
#[derive(Clone)]
pub(super) struct Waiter {
    pub(super) key: u64,
    pub(super) cv: Arc<Condvar>,
}

/// What a blocked thread waits on.
#[derive(PartialEq, Eq)]
pub(super) enum WaitKeys {
    /// Any of these objects changing.
    Objects(Vec<ObjectId>),
    /// Anything (a broad wake-up).
    Anything,
}

pub(super) fn register(st: &mut State, w: &Waiter, keys: &WaitKeys) {
    match keys {
        WaitKeys::Anything => st.broad.push(w.clone()),
        WaitKeys::Objects(ids) => {
            for id in ids {
                st.waiters.entry(*id).or_default().push(w.clone());
            }
        }
    }
}

pub(super) fn unregister(st: &mut State, w: &Waiter, keys: &WaitKeys) {
    match keys {
        WaitKeys::Anything => st.broad.retain(|x| x.key != w.key),
        WaitKeys::Objects(ids) => {
            for id in ids {
                if let std::collections::hash_map::Entry::Occupied(mut e) = st.waiters.entry(*id) {
                    e.get_mut().retain(|x| x.key != w.key);
                    if e.get().is_empty() {
                        e.remove();
                    }
                }
            }
        }
    }
}

impl Node {
    // ----- waiting ------------------------------------------------------------------------

    /// Blocks (lending a pool slot) until `ready` holds or the deadline passes; `kick` runs under
    /// the lock first and on every wake-up, to send requests.
    ///
    /// The thread sleeps on its own condition variable, registered under what `keys` names, so
    /// that an arriving object wakes only its waiters (with hundreds of tasks blocked in nested
    /// `get`, waking them all on every arrival cost more than the work). It also wakes every
    /// 200 ms to re-check, so a change that named no object is never missed for long.
    pub(super) fn block_until(
        &self,
        deadline: Option<Instant>,
        mut kick: impl FnMut(&mut State, &mut Fx),
        mut ready: impl FnMut(&State) -> bool,
        mut keys: impl FnMut(&State) -> WaitKeys,
    ) -> bool {
        let mut fx = Fx::default();
        let mut st = self.st.lock();
        kick(&mut st, &mut fx);
        if ready(&st) {
            drop(st);
            self.apply(fx);
            return true;
        }
        MutexGuard::unlocked(&mut st, || self.apply(std::mem::take(&mut fx)));
        // Rank 0's caller polls briefly before it sleeps: a short task's result then arrives
        // without a thread wake-up, which is most of a synchronous round trip's cost.
        if self.rank == 0 {
            let spin_until = Instant::now() + GET_SPIN;
            while Instant::now() < spin_until && deadline.is_none_or(|d| Instant::now() < d) {
                MutexGuard::unlocked(&mut st, std::thread::yield_now);
                if ready(&st) {
                    return true;
                }
            }
        }
        let me = Waiter {
            key: st.next(),
            cv: Arc::new(Condvar::new()),
        };
        let mut registered: Option<WaitKeys> = None;
        let done = exec::blocking(|| loop {
            if ready(&st) {
                return true;
            }
            if self.closed.load(Ordering::Acquire) && self.rank != 0 {
                return false;
            }
            let k = keys(&st);
            if registered.as_ref() != Some(&k) {
                if let Some(old) = registered.take() {
                    unregister(&mut st, &me, &old);
                }
                register(&mut st, &me, &k);
                registered = Some(k);
            }
            let safety = Instant::now() + Duration::from_millis(200);
            let until = deadline.map_or(safety, |d| d.min(safety));
            me.cv.wait_until(&mut st, until);
            let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
            kick(&mut st, &mut fx);
            if !fx.sends.is_empty() {
                MutexGuard::unlocked(&mut st, || self.apply(std::mem::take(&mut fx)));
            }
            if timed_out {
                return ready(&st);
            }
        });
        if let Some(old) = registered {
            unregister(&mut st, &me, &old);
        }
        done
    }
}
