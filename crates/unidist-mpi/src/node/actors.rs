//! Actors: creating them on a worker, finding where they live, handing their calls to their
//! thread in order, killing and releasing them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use unidist_core::actor::ActorMessage;
use unidist_core::registry::{ActorClassEntry, ActorMethodEntry};
use unidist_core::{ActorCall, ActorId, ActorSpec, DeadReason, Error, ObjectId, Result};

use super::effects::Effects;
use super::execute::Reply;
use super::restart::Restart;
use super::state::{
    backend_err, wire_index, ActorSlot, CallKind, OwnedActor, ReceivedCall, Sending, State,
};
use super::wait::WaitKeys;
use super::Node;
use crate::exec::{self, Args, Fate, MpiHooks};
use crate::wire::NodeMsg;

/// How long an actor lookup at its owner may take.
const LOCATE_TIMEOUT: Duration = Duration::from_secs(60);

impl Node {
    /// Creates an actor of `spec.class` on the worker the scheduler picks.
    pub(super) fn create_actor_on_worker(&self, spec: ActorSpec) -> Result<ActorId> {
        let class = wire_index(self.registry.classes(), "actor type", spec.class)?;
        let encoded = self.encode_args(&spec.args)?;
        // An actor that may be restarted keeps its constructor's arguments at its owner.
        let restart = (spec.options.max_restarts > 0).then(|| {
            Box::new(Restart {
                class,
                entry: spec.class,
                args: spec.args.clone(),
                values: encoded.values().to_vec(),
                max: spec.options.max_restarts,
                made: 0,
            })
        });
        self.with(|state, effects| {
            let w = self.choose(state, &[], true)?;
            let actor = ActorId {
                owner: self.rank,
                seq: state.next_seq(),
            };
            let owned = OwnedActor {
                worker: w,
                handles: 1,
                pinned: false,
                dead: None,
                restart,
            };
            state.actors.owned.insert(actor, owned);
            state.workers.actors[w as usize] += 1;
            let sending = Sending::ActorCreate;
            let (seq, args) = self.record_call(state, effects, w, &spec.args, encoded, sending);
            let msg = NodeMsg::ActorCreate {
                actor,
                class,
                args,
                seq,
            };
            effects.send(w, msg);
            Ok(actor)
        })
    }

    /// Sends a method call to the worker its actor lives on; returns its outputs.
    pub(super) fn send_actor_call(&self, mut call: ActorCall) -> Result<Vec<ObjectId>> {
        let method = wire_index(self.registry.methods(), "actor method", call.method)?;
        let w = self
            .locate_actor(call.actor)?
            .map_err(|reason| Error::actor_dead(call.method.class, call.actor, reason))?;
        let encoded = self.encode_args(&call.args)?;
        super::calls::release_values(&mut call.args);
        Ok(self.with(|state, effects| {
            let outputs = self.new_outputs(state, call.method.num_returns, w);
            let sending = Sending::ActorCall(&outputs);
            let (seq, args) = self.record_call(state, effects, w, &call.args, encoded, sending);
            let msg = NodeMsg::ActorCall {
                actor: call.actor,
                method,
                args,
                outputs: outputs.clone(),
                seq,
            };
            effects.send(w, msg);
            outputs
        }))
    }

    /// Ends `actor` now; an actor that is already gone is not an error.
    pub(super) fn kill(&self, actor: ActorId) -> Result<()> {
        let Ok(w) = self.locate_actor(actor)? else {
            return Ok(());
        };
        self.with(|state, effects| {
            if let Some(a) = state.actors.owned.get_mut(&actor) {
                a.dead = Some(DeadReason::Killed);
            } else {
                state.actors.located.insert(actor, Err(DeadReason::Killed));
            }
            effects.send(w, NodeMsg::ActorKill { actor, now: true });
        });
        Ok(())
    }

    /// A handle to `actor` was dropped; the owner ends it after its last one.
    pub(super) fn release_handle(&self, actor: ActorId) {
        if actor.owner != self.rank || self.closed.load(Ordering::Acquire) {
            return;
        }
        self.with(|state, effects| {
            let Some(a) = state.actors.owned.get_mut(&actor) else {
                return;
            };
            a.handles = a.handles.saturating_sub(1);
            if a.handles > 0 || a.pinned {
                return;
            }
            let seq = state.last_seq();
            state.actors.pending_ends.push((actor, seq));
            self.end_released_actors(state, effects);
        });
    }

    /// A handle to `actor` was deserialized here: one more handle at its owner, or a pin.
    pub(super) fn handle_arrived(&self, actor: ActorId) {
        self.with(|state, effects| {
            if actor.owner == self.rank {
                if let Some(a) = state.actors.owned.get_mut(&actor) {
                    a.handles += 1;
                }
            } else {
                effects.send(actor.owner, NodeMsg::ActorPin { actor });
            }
        });
    }

    /// A handle to `actor` (owned here) reached another process: it never ends on release.
    pub(super) fn pin_actor(&self, state: &mut State, actor: ActorId) {
        if let Some(a) = state.actors.owned.get_mut(&actor) {
            a.pinned = true;
        }
    }

    /// Rank `src` asks where `actor` (owned here) lives.
    pub(super) fn answer_locate(
        &self,
        state: &mut State,
        effects: &mut Effects,
        src: u32,
        actor: ActorId,
    ) {
        let worker = match state.actors.owned.get(&actor) {
            Some(a) => match &a.dead {
                None => Ok(a.worker),
                Some(r) => Err(r.clone()),
            },
            None => Err(DeadReason::Released),
        };
        effects.send(src, NodeMsg::ActorWhere { actor, worker });
    }

    /// The owner of `actor` answered where it lives.
    pub(super) fn located(
        &self,
        state: &mut State,
        effects: &mut Effects,
        actor: ActorId,
        worker: std::result::Result<u32, DeadReason>,
    ) {
        state.actors.located.insert(actor, worker);
        effects.notify = true;
    }

    /// The worker `actor` lives on, or why it is not alive; its owner is asked if it is owned
    /// elsewhere. The error is a lookup that failed.
    fn locate_actor(&self, actor: ActorId) -> Result<std::result::Result<u32, DeadReason>> {
        if actor.owner == self.rank {
            let state = self.state.lock();
            return Ok(match state.actors.owned.get(&actor) {
                Some(a) => a.dead.clone().map_or(Ok(a.worker), Err),
                None => Err(DeadReason::Released),
            });
        }
        if let Some(why) = self.lost.reason(actor.owner) {
            let rank = actor.owner;
            return Ok(Err(DeadReason::OwnerLost { rank, why }));
        }
        let mut asked = false;
        let found = self.block_until(
            Some(Instant::now() + LOCATE_TIMEOUT),
            |state, effects| {
                if !asked && !state.actors.located.contains_key(&actor) {
                    asked = true;
                    effects.send(actor.owner, NodeMsg::ActorLocate { actor });
                }
            },
            |state| state.actors.located.contains_key(&actor),
            |_| WaitKeys::Anything,
        );
        if !found {
            return Err(backend_err(format!(
                "the owner of actor {actor} did not answer where it lives"
            )));
        }
        match self.state.lock().actors.located.get(&actor) {
            Some(located) => Ok(located.clone()),
            None => Err(backend_err("actor lookup lost")),
        }
    }

    /// Hands the ready calls at the front of an actor's queue to its thread, in arrival order.
    pub(super) fn flush_actor(&self, state: &mut State, effects: &mut Effects, actor: ActorId) {
        while let Some(mut call) = self.next_actor_call(state, actor) {
            let args = call.take_args();
            match call.kind {
                CallKind::Create(class) => {
                    self.start_actor(state, effects, actor, class, args, call.reply)
                }
                CallKind::Method(method) => {
                    self.call_here(state, effects, actor, method, args, call.reply)
                }
                CallKind::Task(_) => {}
            }
        }
    }

    /// Hands a call of `method` to the thread of `actor`, or fails it if the actor is not
    /// alive here.
    fn call_here(
        &self,
        state: &mut State,
        effects: &mut Effects,
        actor: ActorId,
        method: &'static ActorMethodEntry,
        args: Args,
        reply: Reply,
    ) {
        let reason = match state.actors.hosted.get(&actor) {
            Some(ActorSlot::Alive(thread, fate)) => {
                let hooks = self.hooks(reply, method.class, actor, fate);
                let message = ActorMessage::Call {
                    method,
                    args,
                    hooks,
                };
                // A message the thread did not take (it had ended) is answered by its hooks
                // when it is dropped, after the lock.
                if let Err(unsent) = thread.send(message) {
                    effects.drop_later(unsent);
                }
                return;
            }
            Some(ActorSlot::Dead(r)) => r.clone(),
            None => DeadReason::NotCreated {
                why: "its creation did not reach it".into(),
            },
        };
        effects.drop_later(args);
        let err = Error::actor_dead(method.class, actor, reason);
        self.finish_call(state, effects, &reply, Err(err));
    }

    /// Starts the thread of `actor` and sends it its constructor; the creation is answered once
    /// the constructor has run.
    fn start_actor(
        &self,
        state: &mut State,
        effects: &mut Effects,
        actor: ActorId,
        class: &'static ActorClassEntry,
        args: Args,
        reply: Reply,
    ) {
        if state.actors.hosted.contains_key(&actor) {
            // Killed before its creation arrived: nothing starts, but the creation is answered
            // (it has no outputs) so that its sender stops counting it.
            effects.drop_later(args);
            return self.finish_call(state, effects, &reply, Ok(Vec::new()));
        }
        let thread = match exec::spawn_actor(actor) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, %actor, "cannot start an actor thread");
                effects.drop_later(args);
                let why = format!("its thread could not start: {e}");
                let reason = DeadReason::NotCreated { why };
                state
                    .actors
                    .hosted
                    .insert(actor, ActorSlot::Dead(reason.clone()));
                let err = Error::actor_dead(class.name, actor, reason);
                return self.finish_call(state, effects, &reply, Err(err));
            }
        };
        let fate = Fate::default();
        let hooks = self.hooks(reply, class.name, actor, &fate);
        let message = ActorMessage::Construct { class, args, hooks };
        match thread.send(message) {
            Ok(()) => {
                state
                    .actors
                    .hosted
                    .insert(actor, ActorSlot::Alive(thread, fate));
            }
            Err(unsent) => {
                effects.drop_later(unsent);
                effects.ending.push((thread, true));
            }
        }
    }

    /// The hooks of a call of `actor` that reports to `reply`.
    fn hooks(&self, reply: Reply, class: &'static str, actor: ActorId, fate: &Fate) -> MpiHooks {
        MpiHooks::new(self.me.clone(), reply, class, actor, Arc::clone(fate))
    }

    /// Takes the call at the front of `actor`'s queue if it can start: its arguments are here
    /// and, for a method call, the actor exists here.
    fn next_actor_call(&self, state: &mut State, actor: ActorId) -> Option<ReceivedCall> {
        loop {
            let queue = state.received.actor_queues.get_mut(&actor)?;
            let Some(&call_id) = queue.front() else {
                state.received.actor_queues.remove(&actor);
                return None;
            };
            if let Some(call) = state.received.calls.get(&call_id) {
                let method = matches!(call.kind, CallKind::Method(_));
                if call.missing > 0 || (method && !state.actors.hosted.contains_key(&actor)) {
                    return None;
                }
            }
            queue.pop_front();
            if let Some(call) = state.received.calls.remove(&call_id) {
                return Some(call);
            }
        }
    }

    /// Ends `actor`, living here: `now` (killed) drops its queued calls, otherwise (released)
    /// it ends after them.
    pub(super) fn kill_here(
        &self,
        state: &mut State,
        effects: &mut Effects,
        actor: ActorId,
        now: bool,
    ) {
        let reason = if now {
            DeadReason::Killed
        } else {
            DeadReason::Released
        };
        let dead = ActorSlot::Dead(reason.clone());
        match state.actors.hosted.insert(actor, dead) {
            Some(ActorSlot::Alive(thread, fate)) => {
                let _ = fate.set(reason.clone());
                effects.ending.push((thread, now));
            }
            Some(ActorSlot::Dead(r)) => {
                state.actors.hosted.insert(actor, ActorSlot::Dead(r));
            }
            None => {}
        }
        if !now {
            return;
        }
        // Calls still waiting for arguments (its creation too, if it had not started) fail now.
        let queued = state
            .received
            .actor_queues
            .remove(&actor)
            .unwrap_or_default();
        for call_id in queued {
            if let Some(call) = state.received.calls.remove(&call_id) {
                let class = match call.kind {
                    CallKind::Create(c) => c.name,
                    CallKind::Method(m) => m.class,
                    CallKind::Task(_) => continue,
                };
                let err = Error::actor_dead(class, actor, reason.clone());
                self.finish_call(state, effects, &call.reply, Err(err));
            }
        }
    }

    /// Ends owned actors whose handles are all gone, once no call that could carry a copy of a
    /// handle (every call submitted before the last handle dropped) is still unfinished. A
    /// process that deserializes a handle pins the actor before that call reports done (one
    /// sender, ordered messages), so a handle passed into a task keeps its actor alive.
    pub(super) fn end_released_actors(&self, state: &mut State, effects: &mut Effects) {
        if state.actors.pending_ends.is_empty() {
            return;
        }
        let oldest = state.sent.keys().min().copied();
        let pending = std::mem::take(&mut state.actors.pending_ends);
        for (actor, seq) in pending {
            let Some(a) = state.actors.owned.get(&actor) else {
                continue;
            };
            if a.handles > 0 || a.pinned {
                continue;
            }
            if oldest.is_some_and(|o| o <= seq) {
                state.actors.pending_ends.push((actor, seq));
                continue;
            }
            let (w, alive) = (a.worker, a.dead.is_none());
            state.actors.owned.remove(&actor);
            let placed = &mut state.workers.actors[w as usize];
            *placed = placed.saturating_sub(1);
            if alive {
                effects.send(w, NodeMsg::ActorKill { actor, now: false });
            }
        }
    }
}
