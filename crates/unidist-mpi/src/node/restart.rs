//! Actor restarts (`max_restarts`): what an owner keeps of an actor's creation, and the new
//! creation on a live worker when the rank that held the actor is lost.
//!
//! The owner is the only process that places an actor, so it alone restarts it: it sends the
//! creation again, with the constructor arguments it kept, to the worker the scheduler picks,
//! and from then on answers lookups with that worker. Calls reach a worker in the order they
//! were sent, so calls sent after the restart queue behind the new creation there. Calls that
//! were sent to the lost rank are not replayed: whether they ran is unknown, and replaying
//! them could apply a call twice, so they fail with `WorkerLost` like every other call sent
//! there.

use std::sync::Arc;

use unidist_core::registry::ActorClassEntry;
use unidist_core::{ActorId, AnyRef, Arg, DeadReason};
use unidist_serialize::Encoded;

use super::calls::EncodedArgs;
use super::effects::Effects;
use super::state::{Sending, State};
use super::Node;
use crate::wire::NodeMsg;

/// What an actor created with `max_restarts > 0` keeps at its owner to be created again.
pub(super) struct Restart {
    /// The actor type's wire index and entry.
    pub(super) class: u32,
    pub(super) entry: &'static ActorClassEntry,
    /// The constructor's arguments (the refs among them stay alive with the actor) and their
    /// encoded values, made once at the first creation.
    pub(super) args: Vec<Arg>,
    pub(super) values: Vec<Option<Arc<Encoded>>>,
    /// The restarts the actor was created with, and how many were made so far.
    pub(super) max: u32,
    pub(super) made: u32,
}

impl Restart {
    /// True if one more restart is allowed.
    pub(super) fn left(&self) -> bool {
        self.made < self.max
    }

    /// Why the actor is dead when its worker `rank` was lost (`why`) and no restart is left.
    pub(super) fn exhausted(&self, rank: u32, why: &str) -> DeadReason {
        DeadReason::RestartsExhausted {
            rank,
            why: why.to_string(),
            restarts: self.max,
        }
    }
}

impl Node {
    /// The actors owned here that lived on lost `rank` are created again on a live worker
    /// while they have restarts left; the others are dead (`WorkerLost`, or
    /// `RestartsExhausted` for an actor whose restarts ran out).
    pub(super) fn restart_actors_of(
        &self,
        state: &mut State,
        effects: &mut Effects,
        rank: u32,
        why: &str,
    ) {
        let lost = DeadReason::WorkerLost {
            rank,
            why: why.to_string(),
        };
        let mut ids: Vec<ActorId> = state
            .actors
            .owned
            .iter()
            .filter(|(_, a)| a.worker == rank && a.dead.is_none())
            .map(|(id, _)| *id)
            .collect();
        // Restarted in the order they were created, so that placement is repeatable.
        ids.sort_unstable_by_key(|a| a.seq);
        for actor in ids {
            let restartable = state
                .actors
                .owned
                .get(&actor)
                .and_then(|a| a.restart.as_ref())
                .map(|r| (r.left(), r.exhausted(rank, why)));
            let reason = match restartable {
                None => lost.clone(),
                Some((false, exhausted)) => exhausted,
                Some((true, _)) => match self.restart_actor(state, effects, actor, rank) {
                    Ok(()) => continue,
                    Err(()) => lost.clone(),
                },
            };
            if let Some(a) = state.actors.owned.get_mut(&actor) {
                a.dead = Some(reason);
            }
        }
    }

    /// Sends the creation of `actor` (owned here, lost with `rank`) to a live worker and moves
    /// the actor there; `Err` if no live worker is left.
    fn restart_actor(
        &self,
        state: &mut State,
        effects: &mut Effects,
        actor: ActorId,
        rank: u32,
    ) -> Result<(), ()> {
        let w = self.choose(state, &[], true).map_err(|_| ())?;
        let Some(owned) = state.actors.owned.get_mut(&actor) else {
            return Err(());
        };
        let Some(restart) = owned.restart.as_mut() else {
            return Err(());
        };
        restart.made += 1;
        owned.worker = w;
        let (class, entry, made) = (restart.class, restart.entry, restart.made);
        let args = restart.args.clone();
        let hold: Vec<AnyRef> = args
            .iter()
            .filter_map(|a| match a {
                Arg::Ref(r) if r.id().is_ok() => Some(r.clone()),
                _ => None,
            })
            .collect();
        let encoded = EncodedArgs::again(restart.values.clone(), hold, Vec::new());
        let placed = &mut state.workers.actors[rank as usize];
        *placed = placed.saturating_sub(1);
        state.workers.actors[w as usize] += 1;
        let sending = Sending::ActorCreate;
        let (seq, args) = self.record_call(state, effects, w, &args, encoded, sending);
        tracing::debug!(
            class = entry.name,
            %actor,
            lost = rank,
            worker = w,
            restart = made,
            "restarting an actor whose worker was lost"
        );
        let msg = NodeMsg::ActorCreate {
            actor,
            class,
            args,
            seq,
        };
        effects.send(w, msg);
        Ok(())
    }
}
