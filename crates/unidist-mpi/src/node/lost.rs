//! Lost ranks, as the node sees them: what only a lost rank could deliver fails, and messages
//! to lost ranks are settled here instead of sent. Which ranks are lost is recorded once, in
//! [`LostPeers`](crate::process::LostPeers).

use unidist_core::{retry, DeadReason, Error, ObjectId};

use super::effects::{Effects, Outgoing};
use super::state::{ObjectStatus, State};
use super::Node;
use crate::wire::{NodeMsg, WireError};

impl Node {
    /// The error of everything that only lost rank `rank` could deliver: `WorkerLost`, naming
    /// the rank, its host and how it was lost.
    pub(super) fn rank_lost(&self, rank: u32, why: &str) -> Error {
        let host = self.ips.get(rank as usize).map_or("?", String::as_str);
        Error::WorkerLost {
            what: "a call or object".into(),
            reason: format!("rank {rank} was lost ({why}), on host {host}"),
        }
    }

    /// Rank `rank` is gone: what only it could deliver fails (calls it ran, objects it held or
    /// owned without a known location elsewhere, actors living there), and no new work goes
    /// to it. Copies already received elsewhere stay usable.
    pub(crate) fn peer_lost(&self, rank: u32, why: &str) {
        unidist_core::observe::timeline::peer_lost(rank, why);
        self.lost.mark(rank, why);
        self.with(|state, effects| {
            let err = self.rank_lost(rank, why);
            // A value that lay in the lost rank's memory is not here: it is lost with the rank.
            for o in state.objects.values_mut() {
                if o.peer.as_ref().is_some_and(|p| p.0 == rank) {
                    o.peer = None;
                }
            }
            // Rebuilt objects first: a task sent again below that takes one as an argument
            // then fetches it from its new location.
            self.rebuild_objects_at(state, effects, rank, &err);
            self.resend_calls_sent_to(state, effects, rank, &err);
            self.fail_calls_sent_to(state, effects, rank, &err);
            self.fail_objects_only_at(state, effects, rank, &err);
            self.restart_actors_of(state, effects, rank, why);
            // Actors owned elsewhere that lived there may have been restarted by their owner:
            // their next call asks the owner again where they live.
            state
                .actors
                .located
                .retain(|_, w| !matches!(w, Ok(r) if *r == rank));
            effects.notify = true;
        });
    }

    /// Every call this process sent to `rank` is done, with `err` for each output (saying how
    /// many runs were made, for a task that could be retried).
    fn fail_calls_sent_to(&self, state: &mut State, effects: &mut Effects, rank: u32, err: &Error) {
        let seqs: Vec<u64> = state
            .sent
            .iter()
            .filter(|(_, c)| c.worker == rank)
            .map(|(s, _)| *s)
            .collect();
        for seq in seqs {
            let Some(c) = state.sent.get(&seq) else {
                continue;
            };
            let e = match &c.retry {
                Some(r) => {
                    let named = Error::WorkerLost {
                        what: format!("task {}", r.function.name),
                        reason: match err {
                            Error::WorkerLost { reason, .. } => reason.clone(),
                            other => other.to_string(),
                        },
                    };
                    retry::last_error(&r.options, r.runs, named)
                }
                None => err.clone(),
            };
            let wire = WireError::from(&e);
            let n = c.outputs.len();
            self.call_lost(state, effects, rank, seq, vec![Err(wire); n]);
        }
    }

    /// Objects that only `rank` could deliver fail, and `rank` no longer waits for or holds
    /// anything from here.
    fn fail_objects_only_at(
        &self,
        state: &mut State,
        effects: &mut Effects,
        rank: u32,
        err: &Error,
    ) {
        let me = self.rank;
        self.ask_owners_again(state, effects, rank);
        let ids: Vec<ObjectId> = state
            .objects
            .iter()
            .filter(|(id, o)| {
                o.data.is_none()
                    && !o.producing
                    && !matches!(o.status, ObjectStatus::Failed(_))
                    && o.location
                        .filter(|l| *l != me)
                        .map_or(id.owner == rank, |l| l == rank)
            })
            .map(|(id, _)| *id)
            .collect();
        // What the lost rank owned (its `put` values, the outputs of calls it submitted) has
        // no owner left to run anything again.
        let orphaned = match err {
            Error::WorkerLost { what, reason } => Error::WorkerLost {
                what: what.clone(),
                reason: format!(
                    "{reason}; it cannot be rebuilt: its owner was that rank (it was put there, \
                     or made by a call submitted there)"
                ),
            },
            other => other.clone(),
        };
        for id in ids {
            let e = if id.owner == rank { &orphaned } else { err };
            self.fail_object(state, effects, id, e);
        }
        for o in state.objects.values_mut() {
            o.fetchers.retain(|r| *r != rank);
            o.subscribers.retain(|r| *r != rank);
            o.copies.retain(|r| *r != rank);
        }
    }

    /// Objects owned by a live process other than this one and located on lost `rank` are
    /// asked of their owner again instead of failing: the owner may have re-run the task that
    /// makes them elsewhere (`max_retries`), and otherwise answers with their failure.
    fn ask_owners_again(&self, state: &mut State, effects: &mut Effects, rank: u32) {
        let me = self.rank;
        let ids: Vec<ObjectId> = state
            .objects
            .iter()
            .filter(|(id, o)| {
                o.data.is_none()
                    && !o.producing
                    && !matches!(o.status, ObjectStatus::Failed(_))
                    && o.location == Some(rank)
                    && id.owner != rank
                    && id.owner != me
                    && !self.lost.contains(id.owner)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(o) = state.objects.get_mut(&id) else {
                continue;
            };
            o.location = None;
            let wanted = o.requested || !o.waiting_calls.is_empty();
            o.requested = false;
            if wanted {
                self.request(state, effects, id);
            }
        }
    }

    /// Takes out the messages addressed to lost ranks and settles what waited on them.
    pub(super) fn divert_undeliverable(&self, sends: Vec<Outgoing>) -> Vec<Outgoing> {
        let mut keep = Vec::with_capacity(sends.len());
        let mut undeliverable = Vec::new();
        for s in sends {
            let dest = match &s {
                Outgoing::Msg(d, _) => *d,
                Outgoing::Value { dest, .. } => *dest,
            };
            match (self.lost.reason(dest), s) {
                (Some(why), Outgoing::Msg(d, m)) => undeliverable.push((d, why, m)),
                (Some(_), Outgoing::Value { .. }) => {}
                (None, s) => keep.push(s),
            }
        }
        if !undeliverable.is_empty() {
            self.with(|state, effects| {
                for (dest, why, msg) in undeliverable {
                    self.settle_undeliverable(state, effects, dest, why, msg);
                }
            });
        }
        keep
    }

    /// Settles what waited on `msg`, which cannot reach `dest` (lost because of `why`).
    fn settle_undeliverable(
        &self,
        state: &mut State,
        effects: &mut Effects,
        dest: u32,
        why: String,
        msg: NodeMsg,
    ) {
        let err = self.rank_lost(dest, &why);
        match msg {
            NodeMsg::Fetch { id, requester } if requester == self.rank => {
                self.fail_object(state, effects, id, &err)
            }
            NodeMsg::Fetch { id, requester } => {
                let error = WireError::from(&err);
                effects.send(requester, NodeMsg::Failed { id, error });
            }
            NodeMsg::Subscribe { id } => self.fail_object(state, effects, id, &err),
            NodeMsg::ActorLocate { actor } => {
                let reason = DeadReason::OwnerLost { rank: dest, why };
                state.actors.located.insert(actor, Err(reason));
                effects.notify = true;
            }
            NodeMsg::Task { seq, outputs, .. }
            | NodeMsg::TaskWith { seq, outputs, .. }
            | NodeMsg::ActorCall { seq, outputs, .. } => {
                let e = WireError::from(&err);
                self.call_lost(state, effects, dest, seq, vec![Err(e); outputs.len()]);
            }
            NodeMsg::ActorCreate { seq, .. } => {
                self.call_done(state, effects, dest, seq, Vec::new())
            }
            _ => {}
        }
    }
}
