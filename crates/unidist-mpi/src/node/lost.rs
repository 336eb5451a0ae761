//! TODO

use super::*;

pub(super) fn rank_lost(rank: u32, why: &str) -> Error {
    backend_err(format!("rank {rank} was lost ({why})"))
}

impl Node {
    /// Rank `rank` is gone: what only it could deliver fails (calls it ran, objects it held or
    /// owned without a known location elsewhere, actors living there), and no new work goes
    /// to it. Copies already received elsewhere stay usable.
    pub fn peer_lost(&self, rank: u32, why: &str) {
        self.any_lost.store(true, Ordering::Release);
        self.with(|st, fx| {
            if st.lost_reason(rank).is_some() {
                return;
            }
            st.lost.push((rank, why.to_string()));
            let err = rank_lost(rank, why);
            let wire = WireError::from(&err);
            let seqs: Vec<u64> = st
                .calls
                .iter()
                .filter(|(_, c)| c.worker == rank)
                .map(|(s, _)| *s)
                .collect();
            for seq in seqs {
                let n = st.calls.get(&seq).map_or(0, |c| c.outputs.len());
                self.done(st, fx, rank, seq, vec![Err(wire.clone()); n]);
            }
            let me = self.rank;
            let ids: Vec<ObjectId> = st
                .objs
                .iter()
                .filter(|(id, o)| {
                    o.data.is_none()
                        && !o.producing
                        && !matches!(o.status, St::Failed(_))
                        && o.loc
                            .filter(|l| *l != me)
                            .map_or(id.owner == rank, |l| l == rank)
                })
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                self.fail_object(st, fx, id, &err);
            }
            for o in st.objs.values_mut() {
                o.fetchers.retain(|r| *r != rank);
                o.subscribers.retain(|r| *r != rank);
                o.copies.retain(|r| *r != rank);
            }
            let reason = format!("its worker rank {rank} was lost ({why})");
            for a in st.owned_actors.values_mut() {
                if a.worker == rank && a.dead.is_none() {
                    a.dead = Some(reason.clone());
                }
            }
            for w in st.actor_where.values_mut() {
                if matches!(w, Ok(r) if *r == rank) {
                    *w = Err(reason.clone());
                }
            }
            fx.notify = true;
        });
    }
}

impl Node {
    /// Takes out the messages addressed to lost ranks and settles what waited on them.
    pub(super) fn divert_undeliverable(&self, sends: Vec<Outgoing>) -> Vec<Outgoing> {
        let mut keep = Vec::with_capacity(sends.len());
        let mut undeliverable = Vec::new();
        {
            let st = self.st.lock();
            for s in sends {
                let dest = match &s {
                    Outgoing::Msg(d, _) => *d,
                    Outgoing::Value { dest, .. } => *dest,
                };
                match (st.lost_reason(dest), s) {
                    (Some(why), Outgoing::Msg(d, m)) => {
                        undeliverable.push((d, why.to_string(), m));
                    }
                    (Some(_), Outgoing::Value { .. }) => {}
                    (None, s) => keep.push(s),
                }
            }
        }
        if !undeliverable.is_empty() {
            self.with(|st, fx| {
                for (d, why, m) in undeliverable {
                    let err = rank_lost(d, &why);
                    match m {
                        Msg::Fetch { id, requester } if requester == self.rank => {
                            self.fail_object(st, fx, id, &err)
                        }
                        Msg::Fetch { id, requester } => fx.send(
                            requester,
                            Msg::Failed {
                                id,
                                error: WireError::from(&err),
                            },
                        ),
                        Msg::Subscribe { id } => self.fail_object(st, fx, id, &err),
                        Msg::ActorLocate { actor } => {
                            st.actor_where
                                .insert(actor, Err(format!("its owner rank {d} was lost ({why})")));
                            fx.notify = true;
                        }
                        Msg::Task { seq, outputs, .. } | Msg::ActorCall { seq, outputs, .. } => {
                            let e = WireError::from(&err);
                            self.done(st, fx, d, seq, vec![Err(e); outputs.len()]);
                        }
                        Msg::ActorCreate { seq, .. } => self.done(st, fx, d, seq, Vec::new()),
                        _ => {}
                    }
                }
            });
        }
        keep
    }
}
