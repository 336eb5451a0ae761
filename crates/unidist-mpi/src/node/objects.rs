//! Objects: where values live and how they travel (fetch, push, subscriptions), the outputs
//! of calls that ran here, and failures.

use std::sync::Arc;

use unidist_core::{ErasedValue, Error, ObjectId, Payload, Result};
use unidist_serialize::Encoded;

use super::effects::{Effects, Outgoing};
use super::state::{object_gone, Object, ObjectStatus, State};
use super::Node;
use crate::shm::{SegDesc, Segment};
use crate::wire::{NodeMsg, PeerDesc, Slot, WireError};

impl Node {
    /// The encoding of object `id` held here as `payload`, made once and cached.
    pub(super) fn encoded(&self, id: ObjectId, payload: &Payload) -> Result<Arc<Encoded>> {
        if let Payload::Encoded(e) = payload {
            return Ok(e.clone());
        }
        if let Some(e) = self
            .state
            .lock()
            .objects
            .get(&id)
            .and_then(|o| o.encoded.clone())
        {
            return Ok(e);
        }
        let e = payload.encoded(self.threshold)?;
        if let Some(o) = self.state.lock().objects.get_mut(&id) {
            o.size = e.total_len() as u64;
            o.encoded = Some(e.clone());
        }
        Ok(e)
    }

    /// The shared-memory segment of object `id` (encoded as `e`), made now if it has none;
    /// `None` when the store cannot take it or the object is gone.
    pub(super) fn segment_of(&self, id: ObjectId, e: &Encoded) -> Option<Arc<Segment>> {
        if let Some(s) = self
            .state
            .lock()
            .objects
            .get(&id)
            .and_then(|o| o.shared.clone())
        {
            return Some(s);
        }
        // Written outside the lock: copying a large value takes a while.
        let made = self.store.create(id, e)?;
        let mut state = self.state.lock();
        let o = state.objects.get_mut(&id)?;
        // Another thread may have made one meanwhile; the loser's drop unlinks it.
        Some(o.shared.get_or_insert(made).clone())
    }

    /// Whether object `id` has a shared-memory segment here already.
    pub(super) fn has_segment(&self, id: ObjectId) -> bool {
        self.state
            .lock()
            .objects
            .get(&id)
            .is_some_and(|o| o.shared.is_some())
    }

    /// Encodes a value with this process's out-of-band threshold.
    pub(super) fn encode_value(&self, v: &Arc<dyn ErasedValue>) -> Result<Arc<Encoded>> {
        Ok(Arc::new(Arc::clone(v).encode_shared(self.threshold)?))
    }

    /// Serves a fetch of `id` for `requester`: the value or failure if known here, else it is
    /// forwarded to the location or parked until the value exists.
    pub(super) fn fetch(
        &self,
        state: &mut State,
        effects: &mut Effects,
        id: ObjectId,
        requester: u32,
    ) {
        if id.owner == self.rank && !state.objects.contains_key(&id) {
            effects.send(
                requester,
                NodeMsg::Failed {
                    id,
                    error: WireError::from(&object_gone(id)),
                },
            );
            return;
        }
        // Elsewhere an unknown id is parked: the call producing it here may still be on its way
        // from the owner (MPI orders messages per sender only).
        let o = state.objects.entry(id).or_default();
        if let Some(d) = &o.data {
            if !o.copies.contains(&requester) && requester != self.rank {
                o.copies.push(requester);
            }
            effects.sends.push(Outgoing::Value {
                dest: requester,
                id,
                payload: d.clone(),
                push: false,
            });
        } else if let ObjectStatus::Failed(e) = &o.status {
            effects.send(
                requester,
                NodeMsg::Failed {
                    id,
                    error: WireError::from(e),
                },
            );
        } else if o.producing {
            o.fetchers.push(requester);
        } else if let Some(l) = o.location.filter(|l| *l != self.rank) {
            effects.send(l, NodeMsg::Fetch { id, requester });
        } else {
            o.fetchers.push(requester);
        }
    }

    /// Requests the data of `id` if it is neither here nor requested.
    pub(super) fn request(&self, state: &mut State, effects: &mut Effects, id: ObjectId) {
        let me = self.rank;
        let o = state.objects.entry(id).or_default();
        if o.resolved() || o.requested || o.producing {
            return;
        }
        o.requested = true;
        let to = o.location.filter(|l| *l != me).unwrap_or(id.owner);
        if to == me {
            // Owned here, location unknown: it is pending a `Done` that will set it.
            o.requested = false;
            return;
        }
        effects.send(to, NodeMsg::Fetch { id, requester: me });
    }

    /// The value of `id` arrived from `src`: pushed ahead of a call (`push`) or answering a
    /// fetch.
    pub(super) fn value_arrived(&self, src: u32, id: ObjectId, value: Slot, push: bool) {
        let Some(e) = value.ready().cloned() else {
            return;
        };
        self.encoding_arrived(src, id, e, push, None);
    }

    /// The value of `id` arrived from `src` as a shared-memory segment on this host.
    pub(super) fn shared_arrived(&self, src: u32, id: ObjectId, push: bool, seg: SegDesc) {
        match self.store.open(seg) {
            Ok((e, seg)) => self.encoding_arrived(src, id, Arc::new(e), push, Some(seg)),
            Err(err) => {
                tracing::warn!(%id, error = %err, "cannot read an object from shared memory");
                // A push is only a head start: the call fetches what it lacks. A fetch that
                // cannot be read fails the object, as a failed receive would.
                if !push {
                    let error = WireError::from(&err);
                    self.with(|s, e| self.failure_arrived(s, e, id, error));
                }
            }
        }
    }

    /// Rank 0's fetch of `id` was answered by `src` of this host with where the value lies in
    /// its memory: `get` reads it from there (the store's `peer.rs`).
    pub(super) fn peer_read_arrived(&self, src: u32, id: ObjectId, desc: PeerDesc) {
        self.with(|state, effects| {
            // Nobody waits any more: the entry is gone, and `src` frees the value when told.
            let Some(o) = state.objects.get_mut(&id) else {
                return;
            };
            if o.data.is_none() {
                o.size = desc.total_len();
                o.peer = Some(Arc::new((src, desc)));
            }
            o.status = ObjectStatus::Ready;
            o.requested = false;
            if o.location.is_none() {
                o.location = Some(src);
            }
            effects.touch(id);
        });
    }

    /// Reading `id` from the memory of `src` failed with `err`: logged once, `src` stops
    /// offering reads, and `id` is fetched again (it then comes as a segment or as bytes; the
    /// stop arrives at `src` before the fetch, on the same ordered stream).
    pub(super) fn peer_read_failed(
        &self,
        state: &mut State,
        effects: &mut Effects,
        src: u32,
        id: ObjectId,
        err: &unidist_core::Error,
    ) {
        self.store.warn_peer_read(err);
        effects.send(src, NodeMsg::PeerReadOff);
        let Some(o) = state.objects.get_mut(&id) else {
            return;
        };
        if o.peer.as_ref().is_some_and(|p| p.0 == src) {
            o.peer = None;
            o.requested = false;
            self.request(state, effects, id);
        }
    }

    /// Stores an arriving encoding of `id` (with its segment, if it came through one).
    fn encoding_arrived(
        &self,
        src: u32,
        id: ObjectId,
        e: Arc<Encoded>,
        push: bool,
        seg: Option<Arc<Segment>>,
    ) {
        self.with(|state, effects| {
            // A push arrives ahead of the call that needs it, so there is usually no entry yet:
            // it makes one (the sender recorded this rank as a copy and frees it later, after
            // the push on the same ordered channel). Only the owner ignores an unknown id: it
            // was freed. `Data` answers a fetch, whose entry is gone if nobody waits any more.
            let o = if push && id.owner != self.rank {
                state.objects.entry(id).or_default()
            } else {
                let Some(o) = state.objects.get_mut(&id) else {
                    return;
                };
                o
            };
            // The value of an output owned here that comes ahead of its call's `Done` (a small
            // result, sent with the completion, the next message from `src`) is kept aside
            // until the `Done`: the call's argument refs are let go of then, before `get` can
            // see the value, so a caller that gets the result and drops its refs frees the
            // arguments at once.
            if id.owner == self.rank
                && !push
                && matches!(o.status, ObjectStatus::Pending)
                && o.location == Some(src)
            {
                o.ahead = Some((e, seg));
                return;
            }
            install(o, e, seg);
            o.status = ObjectStatus::Ready;
            o.requested = false;
            if o.location.is_none() {
                o.location = Some(src);
            }
            self.wake_waiting_calls(state, effects, id);
            effects.touch(id);
        });
    }

    /// A fetch of `id` was answered with its failure.
    pub(super) fn failure_arrived(
        &self,
        state: &mut State,
        effects: &mut Effects,
        id: ObjectId,
        error: WireError,
    ) {
        let Some(o) = state.objects.get_mut(&id) else {
            return;
        };
        o.status = ObjectStatus::Failed(error.into());
        o.requested = false;
        self.wake_waiting_calls(state, effects, id);
        effects.touch(id);
    }

    /// Rank `src` wants to know when `id` (owned here) is ready: now if it is known, else once
    /// its call is done.
    pub(super) fn subscribe(
        &self,
        state: &mut State,
        effects: &mut Effects,
        src: u32,
        id: ObjectId,
    ) {
        let (loc, error) = match state.objects.get_mut(&id) {
            None => (0, Some(WireError::from(&object_gone(id)))),
            Some(o) => match &o.status {
                ObjectStatus::Pending if o.data.is_none() => {
                    o.subscribers.push(src);
                    return;
                }
                ObjectStatus::Failed(e) => (0, Some(WireError::from(e))),
                _ => (o.location.unwrap_or(self.rank), None),
            },
        };
        effects.send(src, NodeMsg::Ready { id, loc, error });
    }

    /// The owner of `id` answered a subscription: it is ready at `loc`, or failed.
    pub(super) fn readiness(
        &self,
        state: &mut State,
        effects: &mut Effects,
        id: ObjectId,
        loc: u32,
        error: Option<WireError>,
    ) {
        let Some(o) = state.objects.get_mut(&id) else {
            return;
        };
        o.subscribed = false;
        match error {
            Some(e) => o.status = ObjectStatus::Failed(e.into()),
            None => {
                if matches!(o.status, ObjectStatus::Pending) {
                    o.status = ObjectStatus::Ready;
                }
                o.location = Some(loc);
            }
        }
        effects.touch(id);
    }

    /// Stores an output of a call that ran here (its value or its failure) and serves the
    /// fetches that waited for it.
    pub(super) fn store_output(
        &self,
        state: &mut State,
        effects: &mut Effects,
        id: ObjectId,
        r: Result<(Arc<dyn ErasedValue>, Arc<Encoded>)>,
    ) {
        let Some(o) = state.objects.get_mut(&id) else {
            if let Ok(v) = r {
                effects.drop_later(v);
            }
            return;
        };
        o.producing = false;
        if o.freed {
            if let Ok(v) = r {
                effects.drop_later(v);
            }
            state.objects.remove(&id);
            return;
        }
        o.location = Some(self.rank);
        match r {
            Ok((v, e)) => {
                o.size = e.total_len() as u64;
                o.data = Some(Payload::Local(v));
                if !e.inline.is_empty() {
                    o.encoded = Some(e);
                }
                o.status = ObjectStatus::Ready;
                let d = o.data.clone();
                for f in std::mem::take(&mut o.fetchers) {
                    if f != self.rank && !o.copies.contains(&f) {
                        o.copies.push(f);
                    }
                    if let Some(d) = &d {
                        effects.sends.push(Outgoing::Value {
                            dest: f,
                            id,
                            payload: d.clone(),
                            push: false,
                        });
                    }
                }
            }
            Err(e) => {
                o.status = ObjectStatus::Failed(e.clone());
                for f in std::mem::take(&mut o.fetchers) {
                    effects.send(
                        f,
                        NodeMsg::Failed {
                            id,
                            error: WireError::from(&e),
                        },
                    );
                }
            }
        }
        self.wake_waiting_calls(state, effects, id);
        self.maybe_gc(state, effects, id);
    }

    /// Marks object `id` failed with `err`, telling its subscribers and waiting calls.
    pub(super) fn fail_object(
        &self,
        state: &mut State,
        effects: &mut Effects,
        id: ObjectId,
        err: &Error,
    ) {
        let Some(o) = state.objects.get_mut(&id) else {
            return;
        };
        o.status = ObjectStatus::Failed(err.clone());
        o.requested = false;
        o.subscribed = false;
        for s in std::mem::take(&mut o.subscribers) {
            effects.send(
                s,
                NodeMsg::Ready {
                    id,
                    loc: 0,
                    error: Some(WireError::from(err)),
                },
            );
        }
        for r in std::mem::take(&mut o.fetchers) {
            effects.send(
                r,
                NodeMsg::Failed {
                    id,
                    error: WireError::from(err),
                },
            );
        }
        self.wake_waiting_calls(state, effects, id);
        effects.touch(id);
    }
}

/// Keeps `e`, the encoding of `o` that arrived (with its segment, if it came through one), as
/// its value, unless it has one.
pub(super) fn install(o: &mut Object, e: Arc<Encoded>, seg: Option<Arc<Segment>>) {
    if o.data.is_none() {
        o.data = Some(Payload::Encoded(e.clone()));
        o.size = e.total_len() as u64;
        o.encoded = Some(e);
        if o.shared.is_none() {
            o.shared = seg;
        }
    }
}
