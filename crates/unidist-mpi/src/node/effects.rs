//! Work collected under the state lock and done after it ([`Effects`]): sends, jobs, actor
//! threads to end, wake-ups and values to drop, because encoding, dropping a value that holds
//! refs, dropping the hooks of an actor call or waking a thread must not happen under the lock.

use std::any::Any;
use std::sync::Arc;

use parking_lot::Condvar;
use unidist_core::ready::Subscription;
use unidist_core::{AnyRef, ObjectId, Payload};
use unidist_serialize::Encoded;

use super::state::State;
use super::Node;
use crate::exec::{ActorThread, Job};
use crate::wire::{ArgWire, NodeMsg, Slot, WireError};

pub(super) enum Outgoing {
    Msg(u32, NodeMsg),
    /// Send object `id` (held here as `payload`) to `dest` as `Data` or `Push`.
    Value {
        dest: u32,
        id: ObjectId,
        payload: Payload,
        push: bool,
    },
}

/// Work collected under the lock and done after it.
#[derive(Default)]
pub(super) struct Effects {
    pub(super) sends: Vec<Outgoing>,
    pub(super) jobs: Vec<Job>,
    /// Actor threads to end: killed (`true`) or released. Their handles may hold the last
    /// reference to queued calls, whose hooks report through the state lock.
    pub(super) ending: Vec<(ActorThread, bool)>,
    pub(super) garbage: Vec<Box<dyn Any + Send>>,
    /// Refs a finished call held for its arguments, dropped before any thread wakes: a caller
    /// that gets the call's result and then drops its own ref frees the argument at once (a
    /// large one's shared segment is then free for its next put to rewrite).
    pub(super) released: Vec<AnyRef>,
    /// Wake every blocked thread (rare events: actors located, ranks lost, shutdown).
    pub(super) notify: bool,
    /// Objects that changed: wake the threads waiting on them.
    pub(super) touched: Vec<ObjectId>,
    /// The condition variables to signal once the state is unlocked.
    pub(super) wake: Vec<Arc<Condvar>>,
    /// A call finished: the submission throttle may go on.
    pub(super) progress: bool,
    /// Readiness subscriptions to fire (`node/ready.rs`).
    pub(super) fired: Vec<Subscription>,
    /// Objects an awaiting future needs here, to request again.
    pub(super) refetch: Vec<ObjectId>,
}

impl Effects {
    pub(super) fn send(&mut self, dest: u32, msg: NodeMsg) {
        self.sends.push(Outgoing::Msg(dest, msg));
    }
    pub(super) fn drop_later<T: Send + 'static>(&mut self, v: T) {
        self.garbage.push(Box::new(v));
    }
    pub(super) fn touch(&mut self, id: ObjectId) {
        self.touched.push(id);
    }
    /// Picks the waiters to wake for what changed (under the state lock).
    pub(super) fn collect_wakeups(&mut self, state: &mut State) {
        let fired = state.watches.on_touched(
            &state.objects,
            &self.touched,
            self.notify,
            &mut self.refetch,
        );
        self.fired.extend(fired);
        if self.notify {
            for ws in state.waiters.by_object.values() {
                self.wake.extend(ws.iter().map(|w| w.cv.clone()));
            }
            self.wake
                .extend(state.waiters.anything.iter().map(|w| w.cv.clone()));
        } else {
            for id in self.touched.drain(..) {
                if let Some(ws) = state.waiters.by_object.get(&id) {
                    self.wake.extend(ws.iter().map(|w| w.cv.clone()));
                }
            }
        }
    }
}

impl Node {
    /// Runs `f` on the state, then does the collected work.
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut State, &mut Effects) -> R) -> R {
        let mut effects = Effects::default();
        let r = {
            let mut state = self.state.lock();
            let r = f(&mut state, &mut effects);
            if effects.notify || !effects.touched.is_empty() {
                effects.collect_wakeups(&mut state);
            }
            r
        };
        self.apply(effects);
        r
    }

    pub(super) fn apply(&self, effects: Effects) {
        let Effects {
            sends,
            jobs,
            ending,
            garbage,
            released,
            notify,
            touched,
            wake,
            progress,
            fired,
            refetch,
        } = effects;
        self.send_all(sends);
        if !jobs.is_empty() {
            if let Some(pool) = self.pool.get() {
                for j in jobs {
                    pool.submit(j);
                }
            }
        }
        for (thread, now) in ending {
            if now {
                thread.kill();
            } else {
                // Dropping the last handle releases the actor: its queued calls run first.
                drop(thread);
            }
        }
        drop(released);
        for cv in &wake {
            cv.notify_one();
        }
        fired.into_iter().for_each(Subscription::fire);
        if !refetch.is_empty() {
            self.refetch(refetch);
        }
        if notify || progress || !touched.is_empty() {
            // The submission throttle waits on the shared condition variable.
            self.progress.notify_all();
        }
        garbage.into_iter().for_each(recycle_garbage);
    }

    /// Writes the large values given directly to a call sent to `dest` into shared memory,
    /// when `dest` shares this host: the call carries their descriptors instead of the bytes
    /// (here, outside the node's lock: each is one copy of the value).
    fn share_large_args(&self, dest: u32, m: &mut NodeMsg) {
        let args = match m {
            NodeMsg::Task { args, .. }
            | NodeMsg::TaskWith { args, .. }
            | NodeMsg::ActorCall { args, .. }
            | NodeMsg::ActorCreate { args, .. } => args,
            _ => return,
        };
        for a in args.iter_mut() {
            let ArgWire::Value(Slot::Ready(e)) = a else {
                continue;
            };
            if !self.store.wants(dest, e.total_len()) {
                continue;
            }
            if let Some(desc) = self.store.hand_over(e) {
                // The value is in shared memory now; its own memory serves a later decode
                // here if the call held it alone (a by-value argument, typically).
                if let ArgWire::Value(Slot::Ready(e)) = std::mem::replace(a, ArgWire::Shared(desc))
                {
                    recycle_encoded(e);
                }
            }
        }
    }

    /// Hands messages to the communication thread; a value is encoded here (once, cached).
    fn send_all(&self, sends: Vec<Outgoing>) {
        let sends = if self.lost.any() {
            self.divert_undeliverable(sends)
        } else {
            sends
        };
        for s in sends {
            match s {
                // A message to this rank itself (a task a worker's task submits to its own
                // rank, its completion) is handled here, not handed to the communication
                // thread and back: no two thread wake-ups, and the task is queued before its
                // submitter waits for it, so the submitter can run it ([`crate::exec::help`]).
                Outgoing::Msg(d, m) if d == self.rank => {
                    self.observe_send(d, &m);
                    self.handle(d, m);
                }
                Outgoing::Msg(d, mut m) => {
                    self.share_large_args(d, &mut m);
                    self.send(d, m)
                }
                Outgoing::Value {
                    dest,
                    id,
                    payload,
                    push,
                } => match self.encoded(id, &payload) {
                    Ok(e) => {
                        // Rank 0 on this host reads an answer to its fetch from this process's
                        // memory, where the object stays until rank 0 frees it; an object
                        // that has a segment already goes as that segment (one copy either way).
                        if !push && !self.has_segment(id) {
                            if let Some(desc) = self.store.offer_peer_read(dest, &e) {
                                self.send(dest, NodeMsg::PeerRead { id, desc });
                                continue;
                            }
                        }
                        if self.store.wants(dest, e.total_len()) {
                            if let Some(s) = self.segment_of(id, &e) {
                                let seg = s.desc.clone();
                                self.send(dest, NodeMsg::Shared { id, push, seg });
                                continue;
                            }
                        }
                        let value = Slot::Ready(e);
                        self.send(
                            dest,
                            if push {
                                NodeMsg::Push { id, value }
                            } else {
                                NodeMsg::Data { id, value }
                            },
                        );
                    }
                    Err(e) => self.send(
                        dest,
                        NodeMsg::Failed {
                            id,
                            error: WireError::from(&e),
                        },
                    ),
                },
            }
        }
    }
}

/// Drops what the node let go of; stored values and encodings give the memory of large
/// vectors they held alone back for later decodes (`unidist_serialize::recycle`).
fn recycle_garbage(g: Box<dyn Any + Send>) {
    match g.downcast::<Payload>() {
        Ok(p) => p.recycle(),
        Err(g) => match g.downcast::<Arc<Encoded>>() {
            Ok(e) => recycle_encoded(*e),
            Err(g) => drop(g),
        },
    }
}

/// Recycles an encoding this was the last handle to.
fn recycle_encoded(e: Arc<Encoded>) {
    if let Ok(e) = Arc::try_unwrap(e) {
        e.recycle();
    }
}
