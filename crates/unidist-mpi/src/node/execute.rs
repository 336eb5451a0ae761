//! Calls received from other ranks (tasks, actor creations, actor method calls): their
//! arguments (fetched if needed), their start once every argument is here, and their
//! completion, reported to the rank that sent them.

use std::sync::Arc;

use unidist_core::call::ArgState;
use unidist_core::{ActorId, ErasedValue, ObjectId, Payload, Result};
use unidist_serialize::Encoded;

use super::effects::Effects;
use super::state::{backend_err, CallKind, ObjectStatus, ReceivedCall, State};
use super::{Node, Ticket};
use crate::exec::Job;
use crate::wire::{ArgWire, NodeMsg, OutResult, Slot, WireError, WireOptions};

/// Results up to this size travel to their owner with the call's completion.
const INLINE_RESULT_MAX: usize = 16 * 1024;

/// Outputs of a call with their encodings.
pub(super) type EncodedOutputs = Vec<(Arc<dyn ErasedValue>, Arc<Encoded>)>;

/// Where a call received here reports: its outputs, the rank that sent it and the sequence
/// number that rank gave it.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub outputs: Vec<ObjectId>,
    pub to: u32,
    pub seq: u64,
}

impl Node {
    /// A task arrived from `src`.
    pub(super) fn receive_task(
        &self,
        src: u32,
        seq: u64,
        func: u32,
        args: Vec<ArgWire>,
        outputs: Vec<ObjectId>,
    ) {
        self.receive_task_with(src, seq, func, args, outputs, WireOptions::default());
    }

    /// A task with fault-tolerance options arrived from `src`.
    pub(super) fn receive_task_with(
        &self,
        src: u32,
        seq: u64,
        func: u32,
        args: Vec<ArgWire>,
        outputs: Vec<ObjectId>,
        options: WireOptions,
    ) {
        let reply = Reply {
            outputs,
            to: src,
            seq,
        };
        let Some(f) = self.registry.functions().get(func) else {
            return self.reject(&reply, "function index out of range");
        };
        let kind = CallKind::Task(f);
        self.with(|s, e| self.receive_call(s, e, kind, None, args, reply, options));
    }

    /// An actor creation arrived from `src`.
    pub(super) fn receive_actor_create(
        &self,
        src: u32,
        seq: u64,
        actor: ActorId,
        class: u32,
        args: Vec<ArgWire>,
    ) {
        let reply = Reply {
            outputs: Vec::new(),
            to: src,
            seq,
        };
        let Some(c) = self.registry.classes().get(class) else {
            return self.reject(&reply, "actor class index out of range");
        };
        let kind = CallKind::Create(c);
        let options = WireOptions::default();
        self.with(|s, e| self.receive_call(s, e, kind, Some(actor), args, reply, options));
    }

    /// An actor method call arrived from `src`.
    pub(super) fn receive_actor_call(
        &self,
        src: u32,
        seq: u64,
        actor: ActorId,
        method: u32,
        args: Vec<ArgWire>,
        outputs: Vec<ObjectId>,
    ) {
        let reply = Reply {
            outputs,
            to: src,
            seq,
        };
        let Some(m) = self.registry.methods().get(method) else {
            return self.reject(&reply, "actor method index out of range");
        };
        let kind = CallKind::Method(m);
        let options = WireOptions::default();
        self.with(|s, e| self.receive_call(s, e, kind, Some(actor), args, reply, options));
    }

    /// Fails a call that names an index this binary does not have.
    fn reject(&self, reply: &Reply, why: &str) {
        let e = WireError::from(&backend_err(format!(
            "{why}: the ranks run different binaries"
        )));
        let results = reply.outputs.iter().map(|_| Err(e.clone())).collect();
        self.send(
            reply.to,
            NodeMsg::Done {
                seq: reply.seq,
                results,
            },
        );
    }

    /// Records a received call; it starts now if every argument is here, else once they are.
    #[allow(clippy::too_many_arguments)]
    fn receive_call(
        &self,
        state: &mut State,
        effects: &mut Effects,
        kind: CallKind,
        actor: Option<ActorId>,
        args: Vec<ArgWire>,
        reply: Reply,
        options: WireOptions,
    ) {
        let call_id = state.next_seq();
        for id in &reply.outputs {
            let o = state.objects.entry(*id).or_default();
            o.producing = true;
            o.location = Some(self.rank);
        }
        let args: Vec<ArgState> = args
            .into_iter()
            .map(|a| self.receive_arg(state, effects, call_id, a))
            .collect();
        let missing = args
            .iter()
            .filter(|a| matches!(a, ArgState::Pending(_)))
            .count();
        if let Some(a) = actor {
            // Creation goes first: a call from another process can arrive before it (MPI
            // orders messages per sender only), and then waits in the queue.
            let q = state.received.actor_queues.entry(a).or_default();
            if matches!(kind, CallKind::Create(_)) {
                q.push_front(call_id);
            } else {
                q.push_back(call_id);
            }
        }
        let call = ReceivedCall {
            kind,
            actor,
            args,
            missing,
            reply,
            options,
        };
        state.received.calls.insert(call_id, call);
        if missing == 0 {
            self.start_ready_call(state, effects, call_id);
        }
    }

    /// One argument of received call `call_id`: a value, a known object, or an object to wait
    /// for (fetched from where it lives unless it is produced here).
    fn receive_arg(
        &self,
        state: &mut State,
        effects: &mut Effects,
        call_id: u64,
        arg: ArgWire,
    ) -> ArgState {
        let (id, from) = match arg {
            ArgWire::Value(s) => {
                return match s.ready() {
                    Some(e) => ArgState::Ready(Payload::Encoded(e.clone())),
                    None => ArgState::Failed(backend_err("an argument arrived incomplete")),
                }
            }
            ArgWire::Shared(desc) => {
                return match self.store.open_handed(desc) {
                    Ok(e) => ArgState::Ready(Payload::Encoded(Arc::new(e))),
                    Err(e) => ArgState::Failed(e),
                }
            }
            ArgWire::Ref { id, from } => (id, from),
            ArgWire::Failed(e) => return ArgState::Failed(e.into()),
        };
        let o = state.objects.entry(id).or_default();
        if let Some(d) = &o.data {
            return ArgState::Ready(d.clone());
        }
        if let ObjectStatus::Failed(e) = &o.status {
            return ArgState::Failed(e.clone());
        }
        o.waiting_calls.push(call_id);
        if !o.producing && !o.requested {
            o.requested = true;
            let to = o.location.filter(|l| *l != self.rank).unwrap_or(from);
            let requester = self.rank;
            effects.send(to, NodeMsg::Fetch { id, requester });
        }
        ArgState::Pending(id)
    }

    /// Object `id` arrived or failed: the received calls waiting for it get it as an argument,
    /// and those with every argument start.
    pub(super) fn wake_waiting_calls(
        &self,
        state: &mut State,
        effects: &mut Effects,
        id: ObjectId,
    ) {
        let Some(o) = state.objects.get_mut(&id) else {
            return;
        };
        if o.waiting_calls.is_empty() {
            return;
        }
        let arrived = match (&o.data, &o.status) {
            (Some(d), _) => ArgState::Ready(d.clone()),
            (None, ObjectStatus::Failed(e)) => ArgState::Failed(e.clone()),
            _ => return,
        };
        for call_id in std::mem::take(&mut o.waiting_calls) {
            let Some(call) = state.received.calls.get_mut(&call_id) else {
                continue;
            };
            for a in call.args.iter_mut() {
                if matches!(a, ArgState::Pending(w) if *w == id) {
                    *a = arrived.clone();
                    call.missing -= 1;
                }
            }
            if call.missing == 0 {
                self.start_ready_call(state, effects, call_id);
            }
        }
        self.maybe_gc(state, effects, id);
    }

    /// Starts received call `call_id`, whose arguments are all here: a task goes to the pool,
    /// an actor's calls go to its thread in order.
    fn start_ready_call(&self, state: &mut State, effects: &mut Effects, call_id: u64) {
        let Some(call) = state.received.calls.get(&call_id) else {
            return;
        };
        if let Some(actor) = call.actor {
            return self.flush_actor(state, effects, actor);
        }
        let Some(mut call) = state.received.calls.remove(&call_id) else {
            return;
        };
        let CallKind::Task(func) = call.kind else {
            return;
        };
        if state.stopped {
            return;
        }
        let args = call.take_args();
        let ticket = Ticket::new(func, &call.options, call.reply.clone(), &args);
        state
            .running
            .insert((call.reply.to, call.reply.seq), ticket.clone());
        effects.jobs.push(Job {
            func,
            args,
            reply: call.reply,
            ticket,
        });
    }

    /// Stores the result of a call that ran here and reports it; the values are encoded before
    /// the state is locked.
    pub(crate) fn complete(&self, reply: &Reply, result: Result<unidist_core::Outputs>) {
        // Encode outside the lock: it gives sizes for scheduling and lets fetches be served
        // without encoding on the communication thread.
        let result = result.and_then(|values| {
            values
                .into_iter()
                .map(|v| {
                    let e = self.encode_value(&v)?;
                    Ok((v, e))
                })
                .collect::<Result<EncodedOutputs>>()
        });
        self.with(|state, effects| self.finish_call(state, effects, reply, result));
    }

    /// Stores the outputs of a call that ran (or failed) here and reports them to the rank
    /// that sent it. Failures decided under the lock come here directly.
    pub(super) fn finish_call(
        &self,
        state: &mut State,
        effects: &mut Effects,
        reply: &Reply,
        result: Result<EncodedOutputs>,
    ) {
        state.running.remove(&(reply.to, reply.seq));
        let results = match result {
            Ok(values) => self.store_values(state, effects, reply, values),
            Err(e) => {
                let wire = WireError::from(&e);
                let mut results = Vec::with_capacity(reply.outputs.len());
                for id in &reply.outputs {
                    results.push(Err(wire.clone()));
                    self.store_output(state, effects, *id, Err(e.clone()));
                }
                results
            }
        };
        let seq = reply.seq;
        effects.send(reply.to, NodeMsg::Done { seq, results });
        effects.touched.extend(reply.outputs.iter().copied());
    }

    /// Stores the values a call returned, one per output: core checked that a call returns
    /// exactly as many values as it declares ([`unidist_core::task::check_arity`]).
    fn store_values(
        &self,
        state: &mut State,
        effects: &mut Effects,
        reply: &Reply,
        values: EncodedOutputs,
    ) -> Vec<OutResult> {
        let mut results = Vec::with_capacity(reply.outputs.len());
        for (id, (v, e)) in reply.outputs.iter().zip(values) {
            results.push(Ok(e.total_len() as u64));
            // A small result goes to its owner with the completion (one message), so that the
            // owner's `get` needs no fetch round trip. The value stays here too, where other
            // workers fetch it.
            let small = e.buffers.is_empty() && e.inline.len() <= INLINE_RESULT_MAX;
            let fetching = state
                .objects
                .get(id)
                .is_some_and(|o| o.fetchers.contains(&reply.to));
            if small && reply.to != self.rank && id.owner == reply.to && !fetching {
                let value = Slot::Ready(e.clone());
                effects.send(reply.to, NodeMsg::Data { id: *id, value });
            }
            self.store_output(state, effects, *id, Ok((v, e)));
        }
        results
    }
}
