//! TODO

use super::*;

impl Node {
    // ----- incoming messages ------------------------------------------------------------

    /// Handles one message from rank `src` (on the communication thread).
    pub fn handle(&self, src: u32, msg: Msg) {
        tracing::trace!(src, ?msg, "handle");
        match msg {
            Msg::Task {
                seq,
                func,
                args,
                outputs,
            } => {
                let Some(f) = self.table.funcs.get(func as usize).copied() else {
                    return self.reject(src, seq, &outputs, "function index out of range");
                };
                self.with(|st, fx| {
                    self.receive_exec(st, fx, src, ExecKind::Task(f), None, args, outputs, seq)
                });
            }
            Msg::ActorCreate {
                actor,
                class,
                args,
                seq,
            } => {
                let Some(c) = self.table.classes.get(class as usize).copied() else {
                    return self.reject(src, seq, &[], "actor class index out of range");
                };
                self.with(|st, fx| {
                    self.receive_exec(
                        st,
                        fx,
                        src,
                        ExecKind::Create(c),
                        Some(actor),
                        args,
                        Vec::new(),
                        seq,
                    )
                });
            }
            Msg::ActorCall {
                actor,
                method,
                args,
                outputs,
                seq,
            } => {
                let Some(m) = self.table.methods.get(method as usize).copied() else {
                    return self.reject(src, seq, &outputs, "actor method index out of range");
                };
                self.with(|st, fx| {
                    self.receive_exec(
                        st,
                        fx,
                        src,
                        ExecKind::Call(m),
                        Some(actor),
                        args,
                        outputs,
                        seq,
                    )
                });
            }
            Msg::ActorKill { actor, now } => self.with(|st, fx| self.kill_here(st, fx, actor, now)),
            Msg::ActorLocate { actor } => self.with(|st, fx| {
                let worker = match st.owned_actors.get(&actor) {
                    Some(a) => match &a.dead {
                        None => Ok(a.worker),
                        Some(r) => Err(r.clone()),
                    },
                    None => Err("all its handles were dropped".into()),
                };
                fx.send(src, Msg::ActorWhere { actor, worker });
            }),
            Msg::ActorWhere { actor, worker } => self.with(|st, fx| {
                st.actor_where.insert(actor, worker);
                fx.notify = true;
            }),
            Msg::ActorPin { actor } => self.with(|st, _| {
                if let Some(a) = st.owned_actors.get_mut(&actor) {
                    a.pinned = true;
                }
            }),
            Msg::Done { seq, results } => self.with(|st, fx| self.done(st, fx, src, seq, results)),
            Msg::Push { .. } | Msg::Data { .. } => {
                let (id, value, push) = match msg {
                    Msg::Push { id, value } => (id, value, true),
                    Msg::Data { id, value } => (id, value, false),
                    _ => unreachable!("matched above"),
                };
                let Some(e) = value.ready().cloned() else {
                    return;
                };
                self.with(|st, fx| {
                    // A push arrives ahead of the call that needs it, so there is usually no
                    // entry yet: it makes one (the sender recorded this rank as a copy and frees
                    // it later, after the push on the same ordered channel). Only the owner
                    // ignores an unknown id: it was freed. `Data` answers a fetch, whose entry
                    // is gone if nobody waits any more.
                    let o = if push && id.owner != self.rank {
                        st.objs.entry(id).or_default()
                    } else {
                        let Some(o) = st.objs.get_mut(&id) else {
                            return;
                        };
                        o
                    };
                    if o.data.is_none() {
                        o.data = Some(Payload::Encoded(e.clone()));
                        o.size = e.total_len() as u64;
                        o.encoded = Some(e);
                    }
                    o.status = St::Ready;
                    o.requested = false;
                    if o.loc.is_none() {
                        o.loc = Some(src);
                    }
                    self.wake_execs(st, fx, id);
                    fx.touch(id);
                });
            }
            Msg::Failed { id, error } => self.with(|st, fx| {
                let Some(o) = st.objs.get_mut(&id) else {
                    return;
                };
                o.status = St::Failed(error.into());
                o.requested = false;
                self.wake_execs(st, fx, id);
                fx.touch(id);
            }),
            Msg::Fetch { id, requester } => self.with(|st, fx| self.fetch(st, fx, id, requester)),
            Msg::Subscribe { id } => self.with(|st, fx| match st.objs.get_mut(&id) {
                None => fx.send(
                    src,
                    Msg::Ready {
                        id,
                        loc: 0,
                        error: Some(WireError::from(&lost(id))),
                    },
                ),
                Some(o) => match &o.status {
                    St::Pending if o.data.is_none() => o.subscribers.push(src),
                    St::Failed(e) => fx.send(
                        src,
                        Msg::Ready {
                            id,
                            loc: 0,
                            error: Some(WireError::from(e)),
                        },
                    ),
                    _ => fx.send(
                        src,
                        Msg::Ready {
                            id,
                            loc: o.loc.unwrap_or(self.rank),
                            error: None,
                        },
                    ),
                },
            }),
            Msg::Ready { id, loc, error } => self.with(|st, fx| {
                let Some(o) = st.objs.get_mut(&id) else {
                    return;
                };
                o.subscribed = false;
                match error {
                    Some(e) => o.status = St::Failed(e.into()),
                    None => {
                        if matches!(o.status, St::Pending) {
                            o.status = St::Ready;
                        }
                        o.loc = Some(loc);
                    }
                }
                fx.touch(id);
            }),
            Msg::Free { ids } => self.with(|st, fx| {
                for id in ids {
                    self.free_here(st, fx, id);
                }
            }),
            Msg::Borrow { id, delta } => self.with(|st, fx| {
                if let Some(o) = st.objs.get_mut(&id) {
                    o.remote = o.remote.saturating_add_signed(delta);
                    self.maybe_gc(st, fx, id);
                }
            }),
            Msg::PeerLost { rank, why } => self.peer_lost(rank, &why),
            Msg::Shutdown
            | Msg::ShutdownAck
            | Msg::Finalize
            | Msg::RawBench { .. }
            | Msg::Alive => {}
        }
    }
}
