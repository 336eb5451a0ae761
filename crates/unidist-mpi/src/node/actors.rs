//! TODO

use super::*;

/// How long an actor lookup at its owner may take.
pub(super) const LOCATE_TIMEOUT: Duration = Duration::from_secs(60);

impl Node {
    /// Hands the ready calls at the front of an actor's queue to its thread, in arrival order.
    pub(super) fn flush_actor(&self, st: &mut State, fx: &mut Fx, a: ActorId) {
        loop {
            let Some(q) = st.actor_queues.get_mut(&a) else {
                return;
            };
            let Some(&xid) = q.front() else {
                st.actor_queues.remove(&a);
                return;
            };
            match st.execs.get(&xid) {
                None => {}
                Some(x) if x.missing > 0 => return,
                Some(x)
                    if matches!(x.kind, ExecKind::Call(_)) && !st.actors_here.contains_key(&a) =>
                {
                    return
                }
                Some(_) => {}
            }
            q.pop_front();
            let Some(mut x) = st.execs.remove(&xid) else {
                continue;
            };
            let args = x.take_args();
            let outputs = std::mem::take(&mut x.outputs);
            match x.kind {
                ExecKind::Create(class) => {
                    if st.actors_here.contains_key(&a) {
                        continue;
                    }
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    let _ = tx.send(ActorCmd::Create { class, args });
                    st.actors_here.insert(a, ActorSlot::Alive(tx));
                    fx.actors.push((a, rx));
                    fx.send(
                        x.reply_to,
                        Msg::Done {
                            seq: x.seq,
                            results: Vec::new(),
                        },
                    );
                }
                ExecKind::Call(method) => {
                    let cmd = ActorCmd::Call {
                        method,
                        args,
                        outputs,
                        reply_to: x.reply_to,
                        seq: x.seq,
                    };
                    let failed = match st.actors_here.get(&a) {
                        Some(ActorSlot::Alive(tx)) => {
                            tx.send(cmd).err().map(|e| (e.0, "it stopped".to_string()))
                        }
                        Some(ActorSlot::Dead(r)) => Some((cmd, r.clone())),
                        None => Some((cmd, "it was never created here".to_string())),
                    };
                    if let Some((
                        ActorCmd::Call {
                            method,
                            outputs,
                            reply_to,
                            seq,
                            ..
                        },
                        reason,
                    )) = failed
                    {
                        let err = Error::ActorDead {
                            actor: format!("{}#{a}", method.class),
                            reason,
                        };
                        self.complete_locked(st, fx, &outputs, Err(err), reply_to, seq);
                    }
                }
                ExecKind::Task(_) => {}
            }
        }
    }

    pub(super) fn kill_here(&self, st: &mut State, fx: &mut Fx, actor: ActorId, now: bool) {
        let reason = if now {
            "it was killed"
        } else {
            "all its handles were dropped"
        };
        match st.actors_here.insert(actor, ActorSlot::Dead(reason.into())) {
            Some(ActorSlot::Alive(tx)) => {
                let _ = tx.send(ActorCmd::Stop { now });
            }
            Some(ActorSlot::Dead(r)) => {
                st.actors_here.insert(actor, ActorSlot::Dead(r));
            }
            None => {}
        }
        // Calls still waiting for arguments fail now.
        if now {
            if let Some(q) = st.actor_queues.remove(&actor) {
                for xid in q {
                    if let Some(x) = st.execs.remove(&xid) {
                        if let ExecKind::Call(m) = x.kind {
                            let err = Error::ActorDead {
                                actor: format!("{}#{actor}", m.class),
                                reason: reason.into(),
                            };
                            self.complete_locked(st, fx, &x.outputs, Err(err), x.reply_to, x.seq);
                        }
                    }
                }
            }
        }
    }

    /// The thread of an actor living here ended.
    pub fn actor_ended(&self, actor: ActorId) {
        tracing::debug!(%actor, "actor thread ended");
    }

    /// Ends owned actors whose handles are all gone, once no call that could carry a copy of a
    /// handle (every call submitted before the last handle dropped) is still unfinished. A
    /// process that deserializes a handle pins the actor before that call reports done (one
    /// sender, ordered messages), so a handle passed into a task keeps its actor alive.
    pub(super) fn end_released_actors(&self, st: &mut State, fx: &mut Fx) {
        if st.pending_ends.is_empty() {
            return;
        }
        let oldest = st.calls.keys().min().copied();
        let pending = std::mem::take(&mut st.pending_ends);
        for (actor, seq) in pending {
            let Some(a) = st.owned_actors.get(&actor) else {
                continue;
            };
            if a.handles > 0 || a.pinned {
                continue;
            }
            if oldest.is_some_and(|o| o <= seq) {
                st.pending_ends.push((actor, seq));
                continue;
            }
            let (w, alive) = (a.worker, a.dead.is_none());
            st.owned_actors.remove(&actor);
            st.actors_on[w as usize] = st.actors_on[w as usize].saturating_sub(1);
            if alive {
                fx.send(w, Msg::ActorKill { actor, now: false });
            }
        }
    }
}

impl Node {
    pub(super) fn locate_actor(&self, actor: ActorId) -> Result<u32> {
        if actor.owner == self.rank {
            let st = self.st.lock();
            return match st.owned_actors.get(&actor) {
                Some(a) => match &a.dead {
                    None => Ok(a.worker),
                    Some(r) => Err(Error::ActorDead {
                        actor: actor.to_string(),
                        reason: r.clone(),
                    }),
                },
                None => Err(Error::ActorDead {
                    actor: actor.to_string(),
                    reason: "all its handles were dropped".into(),
                }),
            };
        }
        if let Some(why) = self.st.lock().lost_reason(actor.owner) {
            return Err(Error::ActorDead {
                actor: actor.to_string(),
                reason: format!("its owner rank {} was lost ({why})", actor.owner),
            });
        }
        let mut asked = false;
        let found = self.block_until(
            Some(Instant::now() + LOCATE_TIMEOUT),
            |st, fx| {
                if !asked && !st.actor_where.contains_key(&actor) {
                    asked = true;
                    fx.send(actor.owner, Msg::ActorLocate { actor });
                }
            },
            |st| st.actor_where.contains_key(&actor),
            |_| WaitKeys::Anything,
        );
        if !found {
            return Err(backend_err(format!(
                "the owner of actor {actor} did not answer where it lives"
            )));
        }
        match self.st.lock().actor_where.get(&actor) {
            Some(Ok(w)) => Ok(*w),
            Some(Err(r)) => Err(Error::ActorDead {
                actor: actor.to_string(),
                reason: r.clone(),
            }),
            None => Err(backend_err("actor lookup lost")),
        }
    }
}
