//! Actors: creating them on a worker, finding where they live, handing their calls to their
//! thread in order, killing and releasing them, and the one "actor is dead" error.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use unidist_core::{ActorCall, ActorId, ActorSpec, Error, ObjectId, Result};

use super::effects::Effects;
use super::state::{backend_err, ActorSlot, CallKind, OwnedActor, ReceivedCall, State};
use super::table::unregistered;
use super::wait::WaitKeys;
use super::Node;
use crate::exec::ActorCmd;
use crate::wire::NodeMsg;

/// How long an actor lookup at its owner may take.
const LOCATE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why an actor is not alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadReason {
    /// `kill` ended it.
    Killed,
    /// Every handle to it was dropped.
    Released,
    /// The worker it lived on was lost.
    WorkerLost { rank: u32, why: String },
    /// Its owner (the process that created it) was lost.
    OwnerLost { rank: u32, why: String },
    /// Its constructor failed, or did not run because an argument failed.
    CreationFailed(String),
    /// Its creation never reached the worker the call went to.
    NotCreated,
    /// Its thread ended before the call reached it.
    Stopped,
    /// The job is shutting down.
    ShutDown,
    /// The reason another rank gave (the owner, answering where the actor lives).
    Reported(String),
}

impl std::fmt::Display for DeadReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeadReason::Killed => f.write_str("it was killed"),
            DeadReason::Released => f.write_str("all its handles were dropped"),
            DeadReason::WorkerLost { rank, why } => {
                write!(f, "its worker rank {rank} was lost ({why})")
            }
            DeadReason::OwnerLost { rank, why } => {
                write!(f, "its owner rank {rank} was lost ({why})")
            }
            DeadReason::CreationFailed(cause) => write!(f, "its constructor failed: {cause}"),
            DeadReason::NotCreated => f.write_str("it was never created on its worker"),
            DeadReason::Stopped => f.write_str("its thread had ended"),
            DeadReason::ShutDown => f.write_str("the job is shutting down"),
            DeadReason::Reported(text) => f.write_str(text),
        }
    }
}

/// The error of a call on an actor that is not alive; it names the actor's type when known.
pub fn actor_dead(actor: ActorId, class: Option<&str>, reason: &DeadReason) -> Error {
    Error::ActorDead {
        actor: match class {
            Some(class) => format!("{class}#{actor}"),
            None => actor.to_string(),
        },
        reason: reason.to_string(),
    }
}

impl Node {
    /// Creates an actor of `spec.class` on the worker the scheduler picks.
    pub(super) fn create_actor_on_worker(&self, spec: ActorSpec) -> Result<ActorId> {
        let class = *self
            .table
            .class_index
            .get(spec.class.name)
            .ok_or_else(|| unregistered("actor type", spec.class.name))?;
        let encoded = self.encode_args(&spec.args)?;
        self.with(|state, effects| {
            let w = self.choose(state, &[], true)?;
            let actor = ActorId {
                owner: self.rank,
                seq: state.next_seq(),
            };
            let owned = OwnedActor {
                worker: w,
                class: spec.class.name,
                handles: 1,
                pinned: false,
                dead: None,
            };
            state.actors.owned.insert(actor, owned);
            state.workers.actors[w as usize] += 1;
            let (seq, args) = self.record_call(state, effects, w, &spec.args, encoded, &[]);
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
    pub(super) fn send_actor_call(&self, call: ActorCall) -> Result<Vec<ObjectId>> {
        let method = *self
            .table
            .method_index
            .get(call.method.name)
            .ok_or_else(|| unregistered("actor method", call.method.name))?;
        let w = self.locate_actor(call.actor, Some(call.method.class))?;
        let encoded = self.encode_args(&call.args)?;
        Ok(self.with(|state, effects| {
            let outputs = self.new_outputs(state, call.method.num_returns, w);
            let (seq, args) = self.record_call(state, effects, w, &call.args, encoded, &outputs);
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
        let w = match self.locate_actor(actor, None) {
            Ok(w) => w,
            Err(e) if e.kind() == unidist_core::ErrorKind::ActorDead => return Ok(()),
            Err(e) => return Err(e),
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
                Some(r) => Err(r.to_string()),
            },
            None => Err(DeadReason::Released.to_string()),
        };
        effects.send(src, NodeMsg::ActorWhere { actor, worker });
    }

    /// The owner of `actor` answered where it lives.
    pub(super) fn located(
        &self,
        state: &mut State,
        effects: &mut Effects,
        actor: ActorId,
        worker: std::result::Result<u32, String>,
    ) {
        let worker = worker.map_err(DeadReason::Reported);
        state.actors.located.insert(actor, worker);
        effects.notify = true;
    }

    /// The worker `actor` lives on, asking its owner if it is owned elsewhere.
    fn locate_actor(&self, actor: ActorId, class: Option<&str>) -> Result<u32> {
        if actor.owner == self.rank {
            let state = self.state.lock();
            return match state.actors.owned.get(&actor) {
                Some(a) => match &a.dead {
                    None => Ok(a.worker),
                    Some(r) => Err(actor_dead(actor, Some(a.class), r)),
                },
                None => Err(actor_dead(actor, class, &DeadReason::Released)),
            };
        }
        if let Some(why) = self.lost.reason(actor.owner) {
            let rank = actor.owner;
            return Err(actor_dead(
                actor,
                class,
                &DeadReason::OwnerLost { rank, why },
            ));
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
            Some(Ok(w)) => Ok(*w),
            Some(Err(r)) => Err(actor_dead(actor, class, r)),
            None => Err(backend_err("actor lookup lost")),
        }
    }

    /// Hands the ready calls at the front of an actor's queue to its thread, in arrival order.
    pub(super) fn flush_actor(&self, state: &mut State, effects: &mut Effects, actor: ActorId) {
        while let Some(mut call) = self.next_actor_call(state, actor) {
            let args = call.take_args();
            match call.kind {
                CallKind::Create(class) => {
                    if state.actors.hosted.contains_key(&actor) {
                        continue;
                    }
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    let _ = tx.send(ActorCmd::Create { class, args });
                    state.actors.hosted.insert(actor, ActorSlot::Alive(tx));
                    effects.actors.push((actor, rx));
                    let seq = call.reply.seq;
                    let results = Vec::new();
                    effects.send(call.reply.to, NodeMsg::Done { seq, results });
                }
                CallKind::Method(method) => {
                    let reply = call.reply;
                    let cmd = ActorCmd::Call {
                        method,
                        args,
                        reply,
                    };
                    let failed = match state.actors.hosted.get(&actor) {
                        Some(ActorSlot::Alive(tx)) => {
                            tx.send(cmd).err().map(|e| (e.0, DeadReason::Stopped))
                        }
                        Some(ActorSlot::Dead(r)) => Some((cmd, r.clone())),
                        None => Some((cmd, DeadReason::NotCreated)),
                    };
                    if let Some((ActorCmd::Call { method, reply, .. }, reason)) = failed {
                        let err = actor_dead(actor, Some(method.class), &reason);
                        self.finish_call(state, effects, &reply, Err(err));
                    }
                }
                CallKind::Task(_) => {}
            }
        }
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
        match state
            .actors
            .hosted
            .insert(actor, ActorSlot::Dead(reason.clone()))
        {
            Some(ActorSlot::Alive(tx)) => {
                let _ = tx.send(ActorCmd::Stop { now });
            }
            Some(ActorSlot::Dead(r)) => {
                state.actors.hosted.insert(actor, ActorSlot::Dead(r));
            }
            None => {}
        }
        if !now {
            return;
        }
        // Calls still waiting for arguments fail now.
        let queued = state
            .received
            .actor_queues
            .remove(&actor)
            .unwrap_or_default();
        for call_id in queued {
            if let Some(call) = state.received.calls.remove(&call_id) {
                if let CallKind::Method(m) = call.kind {
                    let err = actor_dead(actor, Some(m.class), &reason);
                    self.finish_call(state, effects, &call.reply, Err(err));
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
