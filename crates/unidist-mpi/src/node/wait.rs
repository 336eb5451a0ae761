//! Blocked threads: the waiter registry, `block_until` (the one way a thread waits for the
//! state to change), and `get` and `wait` on top of it.

use super::state::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, MutexGuard};
use unidist_core::{Error, ObjectId, Payload, Result};

use super::effects::Effects;
use super::state::{object_gone, Object, ObjectStatus, State};
use super::Node;
use crate::exec::{self};
use crate::wire::NodeMsg;

/// After its first pass, a waiting `get` re-requests at most this many ids per wake-up.
const REKICK_WINDOW: usize = 1024;
/// How long rank 0's caller polls for a result before it sleeps.
const GET_SPIN: Duration = Duration::from_micros(100);

/// A blocked thread: its own condition variable (on the state mutex), so that an arriving
/// object wakes only the threads that wait for it, not every blocked thread of the process.
#[derive(Clone)]
pub(super) struct Waiter {
    key: u64,
    pub(super) cv: Arc<Condvar>,
}

/// What a blocked thread waits on.
#[derive(PartialEq, Eq)]
pub(super) enum WaitKeys {
    /// Any of these objects changing.
    Objects(Vec<ObjectId>),
    /// Anything (a broad wake-up).
    Anything,
    /// These objects changing, or a call this process sent failing (`get` of several objects
    /// returns the first failure at once).
    ObjectsOrFailure(Vec<ObjectId>),
}

/// The blocked threads, by what they wait on.
#[derive(Default)]
pub(super) struct Waiters {
    /// Threads blocked until an object changes, by the object they wait on.
    pub(super) by_object: HashMap<ObjectId, Vec<Waiter>>,
    /// Threads blocked until anything changes (actor lookups).
    pub(super) anything: Vec<Waiter>,
    /// Threads blocked in `get` of several objects, also woken when a call fails.
    pub(super) failures: Vec<Waiter>,
}

impl Waiters {
    fn register(&mut self, w: &Waiter, keys: &WaitKeys) {
        match keys {
            WaitKeys::Anything => self.anything.push(w.clone()),
            WaitKeys::Objects(ids) => {
                for id in ids {
                    self.by_object.entry(*id).or_default().push(w.clone());
                }
            }
            WaitKeys::ObjectsOrFailure(ids) => {
                self.failures.push(w.clone());
                self.register(w, &WaitKeys::Objects(ids.clone()));
            }
        }
    }

    fn unregister(&mut self, w: &Waiter, keys: &WaitKeys) {
        match keys {
            WaitKeys::Anything => self.anything.retain(|x| x.key != w.key),
            WaitKeys::Objects(ids) => {
                for id in ids {
                    if let std::collections::hash_map::Entry::Occupied(mut e) =
                        self.by_object.entry(*id)
                    {
                        e.get_mut().retain(|x| x.key != w.key);
                        if e.get().is_empty() {
                            e.remove();
                        }
                    }
                }
            }
            WaitKeys::ObjectsOrFailure(ids) => {
                self.failures.retain(|x| x.key != w.key);
                self.unregister(w, &WaitKeys::Objects(ids.clone()));
            }
        }
    }
}

/// A thread in `get` of several objects looks at all of them for a failure at least this often,
/// also for failures that arrived without waking it (objects owned by other processes).
const FAIL_FAST_RESCAN: Duration = Duration::from_millis(100);

impl Node {
    /// A call this process sent failed: the threads in `get` of several objects look whether
    /// one of theirs did.
    pub(super) fn failure_known(&self, state: &mut State, effects: &mut Effects) {
        state.failures += 1;
        effects
            .wake
            .extend(state.waiters.failures.iter().map(|w| w.cv.clone()));
    }

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
        mut kick: impl FnMut(&mut State, &mut Effects),
        mut ready: impl FnMut(&State) -> bool,
        mut keys: impl FnMut(&State) -> WaitKeys,
    ) -> bool {
        let mut effects = Effects::default();
        let mut state = self.state.lock();
        kick(&mut state, &mut effects);
        if ready(&state) {
            drop(state);
            self.apply(effects);
            return true;
        }
        MutexGuard::unlocked(&mut state, || self.apply(std::mem::take(&mut effects)));
        // A task thread runs the children it waits for that are still queued on this rank.
        while let WaitKeys::Objects(ids) | WaitKeys::ObjectsOrFailure(ids) = keys(&state) {
            if !MutexGuard::unlocked(&mut state, || exec::help(self, &ids)) {
                break;
            }
            kick(&mut state, &mut effects);
            MutexGuard::unlocked(&mut state, || self.apply(std::mem::take(&mut effects)));
            if ready(&state) {
                return true;
            }
        }
        // Rank 0's caller polls briefly before it sleeps: a short task's result then arrives
        // without a thread wake-up, which is most of a synchronous round trip's cost.
        if self.rank == 0 {
            let spin_until = Instant::now() + GET_SPIN;
            while Instant::now() < spin_until && deadline.is_none_or(|d| Instant::now() < d) {
                MutexGuard::unlocked(&mut state, std::thread::yield_now);
                if ready(&state) {
                    return true;
                }
            }
        }
        let me = Waiter {
            key: state.next_seq(),
            cv: Arc::new(Condvar::new()),
        };
        let mut registered: Option<WaitKeys> = None;
        let done = exec::blocking(|| loop {
            if ready(&state) {
                return true;
            }
            if self.closed.load(Ordering::Acquire) && self.rank != 0 {
                return false;
            }
            let k = keys(&state);
            if registered.as_ref() != Some(&k) {
                if let Some(old) = registered.take() {
                    state.waiters.unregister(&me, &old);
                }
                state.waiters.register(&me, &k);
                registered = Some(k);
            }
            let safety = Instant::now() + Duration::from_millis(200);
            let until = deadline.map_or(safety, |d| d.min(safety));
            me.cv.wait_until(&mut state, until);
            let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
            kick(&mut state, &mut effects);
            if !effects.sends.is_empty() {
                MutexGuard::unlocked(&mut state, || self.apply(std::mem::take(&mut effects)));
            }
            if timed_out {
                return ready(&state);
            }
        });
        if let Some(old) = registered {
            state.waiters.unregister(&me, &old);
        }
        done
    }

    /// `Backend::get`: the values of `ids`, fetched from where they live.
    pub(super) fn get_objects(
        &self,
        ids: &[ObjectId],
        timeout: Option<Duration>,
    ) -> Result<Vec<Payload>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(values) = self.get_until(ids, deadline, timeout)? {
                return Ok(values);
            }
            // Reading a value from another process's memory failed: it is fetched again.
        }
    }

    /// One attempt of [`get_objects`](Self::get_objects) until `deadline`: `None` when a value
    /// to read from another process's memory could not be read (it is being fetched again).
    fn get_until(
        &self,
        ids: &[ObjectId],
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<Option<Vec<Payload>>> {
        // Ids before `done` are resolved (they stay so while the caller holds them). The first
        // pass requests every id; later wake-ups (one per arriving batch) re-request only a
        // window from the first unresolved id, which every id reaches before `get` returns, so
        // a `get_all` of many refs costs time in proportion to what arrived, not to the list.
        let done = std::cell::Cell::new(0usize);
        let mut first = true;
        // Fail fast: the failure count last seen and when every id was last looked at.
        let seen = std::cell::Cell::new(None::<u64>);
        let scanned = std::cell::Cell::new(Instant::now());
        let several = ids.len() > 1;
        let ok = self.block_until(
            deadline,
            |state, effects| {
                let from = done.get();
                let to = if first {
                    ids.len()
                } else {
                    ids.len().min(from + REKICK_WINDOW)
                };
                first = false;
                for id in &ids[from..to] {
                    self.request(state, effects, *id);
                }
            },
            |state| {
                let failed = |o: &Object| matches!(o.status, ObjectStatus::Failed(_));
                let mut i = done.get();
                let mut failure = false;
                while let Some(o) = ids.get(i).and_then(|id| state.objects.get(id)) {
                    if !o.resolved() {
                        break;
                    }
                    failure |= failed(o);
                    i += 1;
                }
                done.set(i);
                if i == ids.len() || failure {
                    return true;
                }
                let rescan = scanned.get().elapsed() >= FAIL_FAST_RESCAN;
                if several && (seen.get() != Some(state.failures) || rescan) {
                    seen.set(Some(state.failures));
                    scanned.set(Instant::now());
                    return ids[i..]
                        .iter()
                        .any(|id| state.objects.get(id).is_some_and(failed));
                }
                false
            },
            |_| {
                let next = ids.get(done.get()).copied().into_iter().collect();
                if several {
                    WaitKeys::ObjectsOrFailure(next)
                } else {
                    WaitKeys::Objects(next)
                }
            },
        );
        let state = self.state.lock();
        if !ok {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::ShutDown);
            }
            let first = ids
                .iter()
                .find(|id| !state.objects.get(id).is_some_and(Object::resolved));
            return Err(Error::Timeout {
                what: first.map_or_else(|| "object".to_string(), |id| id.to_string()),
                after: timeout.unwrap_or_default(),
            });
        }
        // Every id is resolved, or one failed while others are still pending (fail fast):
        // then the first failure is the answer.
        let all = done.get() == ids.len();
        self.collect_values(state, ids, all)
    }

    /// The values of `ids` once `get` stopped waiting (`all` resolved, or one failed): each
    /// held here, or read from the memory of the rank of this host that holds it; the first
    /// failure; or `None` when a read failed (the value is being fetched again).
    fn collect_values(
        &self,
        state: MutexGuard<'_, State>,
        ids: &[ObjectId],
        all: bool,
    ) -> Result<Option<Vec<Payload>>> {
        let mut values = Vec::with_capacity(ids.len());
        // Values that lie in the memory of a rank of this host: read after the lock is let go.
        let mut reads = Vec::new();
        for id in ids {
            match state.objects.get(id) {
                Some(o) => match (&o.data, &o.status, &o.peer) {
                    (_, ObjectStatus::Failed(e), _) => return Err(e.clone()),
                    (Some(d), _, _) => values.push(Some(d.clone())),
                    (None, _, Some(p)) => {
                        reads.push((values.len(), *id, p.clone()));
                        values.push(None);
                    }
                    (None, _, None) if !all => {}
                    (None, _, None) => return Err(object_gone(*id)),
                },
                None => return Err(object_gone(*id)),
            }
        }
        drop(state);
        let mut again = false;
        for (at, id, peer) in reads {
            let (src, desc) = &*peer;
            match self.store.read_peer(*src, desc) {
                // Read for this caller alone: the decode moves its buffers into the value.
                Ok(e) => values[at] = Some(Payload::Encoded(Arc::new(e))),
                Err(err) => {
                    self.with(|s, e| self.peer_read_failed(s, e, *src, id, &err));
                    again = true;
                }
            }
        }
        if again {
            return Ok(None);
        }
        Ok(Some(values.into_iter().flatten().collect()))
    }

    /// `Backend::wait`: which of `ids` are ready, once `num_returns` are or the time is up.
    pub(super) fn wait_objects(
        &self,
        ids: &[ObjectId],
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<bool>> {
        let me = self.rank;
        let is_ready = |state: &State, id: &ObjectId| {
            state
                .objects
                .get(id)
                .is_some_and(|o| o.resolved() || matches!(o.status, ObjectStatus::Ready))
        };
        let deadline = timeout.map(|t| Instant::now() + t);
        self.block_until(
            deadline,
            |state, effects| {
                for id in ids {
                    let o = state.objects.entry(*id).or_default();
                    if o.resolved()
                        || !matches!(o.status, ObjectStatus::Pending)
                        || o.subscribed
                        || o.producing
                    {
                        continue;
                    }
                    if id.owner != me {
                        o.subscribed = true;
                        effects.send(id.owner, NodeMsg::Subscribe { id: *id });
                    }
                }
            },
            |state| ids.iter().filter(|id| is_ready(state, id)).count() >= num_returns,
            |state| {
                WaitKeys::Objects(
                    ids.iter()
                        .filter(|id| !is_ready(state, id))
                        .copied()
                        .collect(),
                )
            },
        );
        let state = self.state.lock();
        Ok(ids.iter().map(|id| is_ready(&state, id)).collect())
    }
}
