//! Reference counts of objects: local handles, borrowers in other processes, pins of refs
//! serialized inside values, and freeing an object once nobody references it.

use std::sync::Arc;

use unidist_core::{ErasedValue, ObjectId, Payload, Result};

use super::calls::note_nested;
use super::effects::Effects;
use super::state::{object_gone, Object, ObjectStatus, State};
use super::Node;
use crate::wire::NodeMsg;

impl Node {
    /// Stores a value put by the user, owned and held here.
    pub(super) fn put_value(&self, value: Arc<dyn ErasedValue>) -> Result<ObjectId> {
        // Encoded at once: it is the snapshot pushed to workers and gives the size.
        let e = self.encode_value(&value)?;
        let id = self.with(|state, _| ObjectId::new(self.rank, state.next_seq()));
        // A large value goes into the host's shared store now, outside the lock (it is one copy
        // of the whole value), rather than when the first task needs it.
        let shared = if self.store.at_put(e.total_len()) {
            self.store.create(id, &e)
        } else {
            None
        };
        Ok(self.with(|state, _| {
            let object = Object {
                local: 1,
                location: Some(self.rank),
                status: ObjectStatus::Ready,
                size: e.total_len() as u64,
                data: Some(Payload::Local(value)),
                encoded: Some(e),
                shared,
                ..Default::default()
            };
            state.objects.insert(id, object);
            id
        }))
    }

    /// A local handle to `id` was dropped.
    pub(super) fn release_ref(&self, id: ObjectId) {
        self.with(|state, effects| {
            if let Some(o) = state.objects.get_mut(&id) {
                o.local = o.local.saturating_sub(1);
                if o.local == 0 {
                    self.maybe_gc(state, effects, id);
                }
            }
        });
    }

    /// A ref to `id` was serialized inside a value.
    pub(super) fn pin_serialized(&self, id: ObjectId) {
        // An encoded value may be decoded any number of times, anywhere: pin the object. Inside
        // call arguments owned here, the pin lasts until the call is done (see
        // `SentCall::nested`).
        self.with(|state, effects| {
            if id.owner == self.rank {
                if let Some(o) = state.objects.get_mut(&id) {
                    o.remote = o.remote.saturating_add(1);
                    note_nested(id);
                }
            } else {
                effects.send(id.owner, NodeMsg::Borrow { id, delta: 1 });
            }
        });
    }

    /// A ref to `id` was deserialized here: a new local handle, and a borrower at its owner.
    pub(super) fn handle_deserialized(&self, id: ObjectId) -> Result<()> {
        self.with(|state, effects| {
            if id.owner == self.rank && !state.objects.contains_key(&id) {
                return Err(object_gone(id));
            }
            let o = state.objects.entry(id).or_default();
            o.local += 1;
            if id.owner != self.rank && !o.borrowing {
                o.borrowing = true;
                effects.send(id.owner, NodeMsg::Borrow { id, delta: 1 });
            }
            Ok(())
        })
    }

    /// Another process registered (+1) or dropped (-1) a reference to `id`, owned here.
    pub(super) fn borrow(
        &self,
        state: &mut State,
        effects: &mut Effects,
        id: ObjectId,
        delta: i32,
    ) {
        if let Some(o) = state.objects.get_mut(&id) {
            o.remote = o.remote.saturating_add_signed(delta);
            self.maybe_gc(state, effects, id);
        }
    }

    /// Ends the pins that argument encoding took on refs owned here.
    pub(super) fn unpin(&self, ids: &[ObjectId]) {
        if ids.is_empty() {
            return;
        }
        self.with(|state, effects| self.unpin_locked(state, effects, ids));
    }

    pub(super) fn unpin_locked(&self, state: &mut State, effects: &mut Effects, ids: &[ObjectId]) {
        for id in ids {
            if let Some(o) = state.objects.get_mut(id) {
                o.remote = o.remote.saturating_sub(1);
                self.maybe_gc(state, effects, *id);
            }
        }
    }

    /// The owner freed these objects: drop the values held here and tell the ranks that got a
    /// copy from here.
    pub(super) fn free_here(&self, state: &mut State, effects: &mut Effects, ids: &[ObjectId]) {
        for id in ids {
            self.free_one(state, effects, *id);
        }
    }

    fn free_one(&self, state: &mut State, effects: &mut Effects, id: ObjectId) {
        let Some(o) = state.objects.get_mut(&id) else {
            return;
        };
        if o.producing {
            o.freed = true;
            return;
        }
        if let Some(d) = o.data.take() {
            effects.drop_later(d);
        }
        if let Some(e) = o.encoded.take() {
            effects.drop_later(e);
        }
        // The creator's segment is unlinked when this drops; a mapping is unmapped when the
        // last value read from it goes too.
        if let Some(seg) = o.shared.take() {
            effects.drop_later(seg);
        }
        for c in std::mem::take(&mut o.copies) {
            if c != self.rank {
                effects.send(c, NodeMsg::Free { ids: vec![id] });
            }
        }
        if o.local == 0 && o.waiting_calls.is_empty() && o.fetchers.is_empty() && !o.requested {
            state.objects.remove(&id);
        }
    }

    /// Frees or forgets an object nobody references any more.
    pub(super) fn maybe_gc(&self, state: &mut State, effects: &mut Effects, id: ObjectId) {
        let Some(o) = state.objects.get_mut(&id) else {
            return;
        };
        if o.local > 0 || !o.waiting_calls.is_empty() {
            return;
        }
        if id.owner == self.rank {
            if o.remote > 0 || !o.fetchers.is_empty() || !o.subscribers.is_empty() {
                return;
            }
            let loc = o.location;
            let lineage = o.lineage.take();
            if let Some(d) = o.data.take() {
                effects.drop_later(d);
            }
            if let Some(e) = o.encoded.take() {
                effects.drop_later(e);
            }
            for c in std::mem::take(&mut o.copies) {
                if c != self.rank {
                    effects.send(c, NodeMsg::Free { ids: vec![id] });
                }
            }
            if let Some(l) = loc.filter(|l| *l != self.rank) {
                effects.send(l, NodeMsg::Free { ids: vec![id] });
            }
            if o.producing {
                o.freed = true;
            } else {
                state.objects.remove(&id);
            }
            if let Some(key) = lineage {
                self.release_lineage(state, effects, key, id);
            }
        } else {
            if o.borrowing {
                o.borrowing = false;
                effects.send(id.owner, NodeMsg::Borrow { id, delta: -1 });
            }
            // The location keeps its entry (value or failure) until the owner frees it.
            let location = o.location == Some(self.rank);
            if !location
                && o.data.is_none()
                && !o.producing
                && o.fetchers.is_empty()
                && !o.requested
                && !o.subscribed
            {
                state.objects.remove(&id);
            }
        }
    }
}
