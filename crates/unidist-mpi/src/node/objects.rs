//! TODO

use super::*;

impl Node {
    /// The encoding of object `id` held here as `payload`, made once and cached.
    pub(super) fn encoded(&self, id: ObjectId, payload: &Payload) -> Result<Arc<Encoded>> {
        if let Payload::Encoded(e) = payload {
            return Ok(e.clone());
        }
        if let Some(e) = self.st.lock().objs.get(&id).and_then(|o| o.encoded.clone()) {
            return Ok(e);
        }
        let e = payload.encoded(self.threshold)?;
        if let Some(o) = self.st.lock().objs.get_mut(&id) {
            o.size = e.total_len() as u64;
            o.encoded = Some(e.clone());
        }
        Ok(e)
    }

    pub(super) fn encode_value(&self, v: &Arc<dyn ErasedValue>) -> Result<Arc<Encoded>> {
        Ok(Arc::new(v.encode(self.threshold)?))
    }
}

impl Node {
    /// Ends the pins that argument encoding took on refs owned here.
    pub(super) fn unpin(&self, ids: &[ObjectId]) {
        if ids.is_empty() {
            return;
        }
        self.with(|st, fx| self.unpin_locked(st, fx, ids));
    }

    pub(super) fn unpin_locked(&self, st: &mut State, fx: &mut Fx, ids: &[ObjectId]) {
        for id in ids {
            if let Some(o) = st.objs.get_mut(id) {
                o.remote = o.remote.saturating_sub(1);
                self.maybe_gc(st, fx, *id);
            }
        }
    }
}

impl Node {
    pub(super) fn fetch(&self, st: &mut State, fx: &mut Fx, id: ObjectId, requester: u32) {
        if id.owner == self.rank && !st.objs.contains_key(&id) {
            fx.send(
                requester,
                Msg::Failed {
                    id,
                    error: WireError::from(&lost(id)),
                },
            );
            return;
        }
        // Elsewhere an unknown id is parked: the call producing it here may still be on its way
        // from the owner (MPI orders messages per sender only).
        let o = st.objs.entry(id).or_default();
        if let Some(d) = &o.data {
            if !o.copies.contains(&requester) && requester != self.rank {
                o.copies.push(requester);
            }
            fx.sends.push(Outgoing::Value {
                dest: requester,
                id,
                payload: d.clone(),
                push: false,
            });
        } else if let St::Failed(e) = &o.status {
            fx.send(
                requester,
                Msg::Failed {
                    id,
                    error: WireError::from(e),
                },
            );
        } else if o.producing {
            o.fetchers.push(requester);
        } else if let Some(l) = o.loc.filter(|l| *l != self.rank) {
            fx.send(l, Msg::Fetch { id, requester });
        } else {
            o.fetchers.push(requester);
        }
    }
}

impl Node {
    pub(super) fn free_here(&self, st: &mut State, fx: &mut Fx, id: ObjectId) {
        let Some(o) = st.objs.get_mut(&id) else {
            return;
        };
        if o.producing {
            o.freed = true;
            return;
        }
        if let Some(d) = o.data.take() {
            fx.drop_later(d);
        }
        if let Some(e) = o.encoded.take() {
            fx.drop_later(e);
        }
        for c in std::mem::take(&mut o.copies) {
            if c != self.rank {
                fx.send(c, Msg::Free { ids: vec![id] });
            }
        }
        if o.local == 0 && o.execs.is_empty() && o.fetchers.is_empty() && !o.requested {
            st.objs.remove(&id);
        }
    }

    /// Frees or forgets an object nobody references any more.
    pub(super) fn maybe_gc(&self, st: &mut State, fx: &mut Fx, id: ObjectId) {
        let Some(o) = st.objs.get_mut(&id) else {
            return;
        };
        if o.local > 0 || !o.execs.is_empty() {
            return;
        }
        if id.owner == self.rank {
            if o.remote > 0 || !o.fetchers.is_empty() || !o.subscribers.is_empty() {
                return;
            }
            let loc = o.loc;
            if let Some(d) = o.data.take() {
                fx.drop_later(d);
            }
            if let Some(e) = o.encoded.take() {
                fx.drop_later(e);
            }
            for c in std::mem::take(&mut o.copies) {
                if c != self.rank {
                    fx.send(c, Msg::Free { ids: vec![id] });
                }
            }
            if let Some(l) = loc.filter(|l| *l != self.rank) {
                fx.send(l, Msg::Free { ids: vec![id] });
            }
            if o.producing {
                o.freed = true;
            } else {
                st.objs.remove(&id);
            }
        } else {
            if o.borrowing {
                o.borrowing = false;
                fx.send(id.owner, Msg::Borrow { id, delta: -1 });
            }
            // The location keeps its entry (value or failure) until the owner frees it.
            let location = o.loc == Some(self.rank);
            if !location
                && o.data.is_none()
                && !o.producing
                && o.fetchers.is_empty()
                && !o.requested
                && !o.subscribed
            {
                st.objs.remove(&id);
            }
        }
    }
}

impl Node {
    pub(super) fn store_output(
        &self,
        st: &mut State,
        fx: &mut Fx,
        id: ObjectId,
        r: Result<(Arc<dyn ErasedValue>, Arc<Encoded>)>,
    ) {
        let Some(o) = st.objs.get_mut(&id) else {
            if let Ok(v) = r {
                fx.drop_later(v);
            }
            return;
        };
        o.producing = false;
        if o.freed {
            if let Ok(v) = r {
                fx.drop_later(v);
            }
            st.objs.remove(&id);
            return;
        }
        o.loc = Some(self.rank);
        match r {
            Ok((v, e)) => {
                o.size = e.total_len() as u64;
                o.data = Some(Payload::Local(v));
                if !e.inline.is_empty() {
                    o.encoded = Some(e);
                }
                o.status = St::Ready;
                let d = o.data.clone();
                for f in std::mem::take(&mut o.fetchers) {
                    if f != self.rank && !o.copies.contains(&f) {
                        o.copies.push(f);
                    }
                    if let Some(d) = &d {
                        fx.sends.push(Outgoing::Value {
                            dest: f,
                            id,
                            payload: d.clone(),
                            push: false,
                        });
                    }
                }
            }
            Err(e) => {
                o.status = St::Failed(e.clone());
                for f in std::mem::take(&mut o.fetchers) {
                    fx.send(
                        f,
                        Msg::Failed {
                            id,
                            error: WireError::from(&e),
                        },
                    );
                }
            }
        }
        self.wake_execs(st, fx, id);
        self.maybe_gc(st, fx, id);
    }
}

impl Node {
    /// Marks object `id` failed with `err`, telling its subscribers and waiting calls.
    pub(super) fn fail_object(&self, st: &mut State, fx: &mut Fx, id: ObjectId, err: &Error) {
        let Some(o) = st.objs.get_mut(&id) else {
            return;
        };
        o.status = St::Failed(err.clone());
        o.requested = false;
        o.subscribed = false;
        for s in std::mem::take(&mut o.subscribers) {
            fx.send(
                s,
                Msg::Ready {
                    id,
                    loc: 0,
                    error: Some(WireError::from(err)),
                },
            );
        }
        for r in std::mem::take(&mut o.fetchers) {
            fx.send(
                r,
                Msg::Failed {
                    id,
                    error: WireError::from(err),
                },
            );
        }
        self.wake_execs(st, fx, id);
        fx.touch(id);
    }
}

impl Node {
    /// Requests the data of `id` if it is neither here nor requested.
    pub(super) fn request(&self, st: &mut State, fx: &mut Fx, id: ObjectId) {
        let me = self.rank;
        let o = st.objs.entry(id).or_default();
        if o.resolved() || o.requested || o.producing {
            return;
        }
        o.requested = true;
        let to = o.loc.filter(|l| *l != me).unwrap_or(id.owner);
        if to == me {
            // Owned here, location unknown: it is pending a `Done` that will set it.
            o.requested = false;
            return;
        }
        fx.send(to, Msg::Fetch { id, requester: me });
    }
}
