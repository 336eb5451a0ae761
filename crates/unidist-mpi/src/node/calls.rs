//! Calls this process sends (tasks, actor creations, actor method calls): their arguments on
//! the wire, their outputs, the bookkeeping until their `Done`, and the completion.

use std::sync::Arc;

use unidist_core::{AnyRef, Arg, Error, ObjectId, Result, TaskSpec};
use unidist_serialize::Encoded;

use super::control::{wire_options, Resend};
use super::effects::{Effects, Outgoing};
use super::objects::install;
use super::state::{wire_index, Object, ObjectStatus, Sending, SentCall, State};
use super::Node;
use crate::wire::{ArgWire, NodeMsg, OutResult, Slot, WireError};

/// Call arguments after encoding: the encoded values (`None` for refs), the refs to hold, and
/// the refs owned here that were serialized inside the values (pinned until the call is done).
pub(super) struct EncodedArgs {
    values: Vec<Option<Arc<Encoded>>>,
    hold: Vec<AnyRef>,
    nested: Vec<ObjectId>,
}

impl EncodedArgs {
    /// The encoded arguments of a call sent again (a retry): the values encoded the first
    /// time, and the refs and pins the first call held.
    pub(super) fn again(
        values: Vec<Option<Arc<Encoded>>>,
        hold: Vec<AnyRef>,
        nested: Vec<ObjectId>,
    ) -> EncodedArgs {
        EncodedArgs {
            values,
            hold,
            nested,
        }
    }

    /// The encoded values (`None` for refs), in argument order.
    pub(super) fn values(&self) -> &[Option<Arc<Encoded>>] {
        &self.values
    }
}

thread_local! {
    /// While call arguments are encoded: the refs owned by this process found inside them.
    static NESTED: std::cell::RefCell<Option<Vec<ObjectId>>> =
        const { std::cell::RefCell::new(None) };
}

/// Notes that a ref owned here was serialized; inside call arguments being encoded, the pin it
/// took lasts until that call is done (see [`SentCall::nested`]).
pub(super) fn note_nested(id: ObjectId) {
    NESTED.with(|n| {
        if let Some(v) = n.borrow_mut().as_mut() {
            v.push(id);
        }
    });
}

/// Lets go of a call's own handles to the natural values (large vectors, strings) given
/// directly, once encoded: the encoding holds them, alone now, so that one given by value gives
/// its memory back for later decodes once it is written into shared memory
/// (`Effects::share_large_args`). Other values stay: one may hold an actor handle, which keeps
/// its actor alive until the call's worker has its own. Not for a call that may be sent again.
pub(super) fn release_values(args: &mut [Arg]) {
    for a in args {
        if let Arg::Value(v) = a {
            if v.byte_len().is_some() {
                *v = Arc::new(());
            }
        }
    }
}

impl Node {
    /// Sends task `task` to the worker the scheduler picks; returns its outputs.
    pub(super) fn submit_task(&self, mut task: TaskSpec) -> Result<Vec<ObjectId>> {
        let func = wire_index(self.registry.functions(), "function", task.function)?;
        let encoded = self.encode_args(&task.args)?;
        if task.options.max_retries == 0 {
            release_values(&mut task.args);
        }
        self.throttle();
        self.with(|state, effects| {
            let holders = self.holders(state, &task.args);
            let w = self.choose(state, &holders, false)?;
            let outputs = self.new_outputs(state, task.function.num_returns, w);
            // A task that may run again when its worker is lost keeps what it takes to send it.
            let resend = (task.options.max_retries > 0).then(|| Resend {
                func,
                function: task.function,
                args: task.args.clone(),
                values: encoded.values.clone(),
                options: task.options.clone(),
                runs: 1,
            });
            let sending = Sending::Task(&outputs);
            let (seq, args) = self.record_call(state, effects, w, &task.args, encoded, sending);
            if let (Some(r), Some(c)) = (resend, state.sent.get_mut(&seq)) {
                c.retry = Some(Box::new(r));
            }
            let msg = match wire_options(&task.options) {
                None => NodeMsg::Task {
                    seq,
                    func,
                    args,
                    outputs: outputs.clone(),
                },
                Some(options) => NodeMsg::TaskWith {
                    seq,
                    func,
                    args,
                    outputs: outputs.clone(),
                    options,
                },
            };
            effects.send(w, msg);
            Ok(outputs)
        })
    }

    /// Converts call arguments: values are encoded here (outside the lock), refs are kept.
    pub(super) fn encode_args(&self, args: &[Arg]) -> Result<EncodedArgs> {
        let mut enc = Vec::with_capacity(args.len());
        let mut hold = Vec::new();
        NESTED.with(|n| *n.borrow_mut() = Some(Vec::new()));
        let mut encode = || -> Result<()> {
            for a in args {
                match a {
                    Arg::Value(v) => enc.push(Some(self.encode_value(v)?)),
                    Arg::Ref(r) => {
                        // A ref that holds an error is not held: it fails the call on its
                        // worker instead of failing the submission (see `wire_args`).
                        if r.id().is_ok() {
                            hold.push(r.clone());
                        }
                        enc.push(None);
                    }
                }
            }
            Ok(())
        };
        let r = encode();
        let nested = NESTED.with(|n| n.borrow_mut().take()).unwrap_or_default();
        if let Err(e) = r {
            self.unpin(&nested);
            return Err(e);
        }
        Ok(EncodedArgs {
            values: enc,
            hold,
            nested,
        })
    }

    /// Records a call sent to worker `w` until its `Done` (what it runs, its outputs, the refs it
    /// holds, the load it adds) and builds its wire arguments; returns its sequence number and
    /// arguments.
    pub(super) fn record_call(
        &self,
        state: &mut State,
        effects: &mut Effects,
        w: u32,
        args: &[Arg],
        encoded: EncodedArgs,
        sending: Sending<'_>,
    ) -> (u64, Vec<ArgWire>) {
        let EncodedArgs {
            values,
            hold,
            nested,
        } = encoded;
        let wire = self.wire_args(state, effects, args, values, w);
        let seq = state.next_seq();
        let (task, outputs) = match sending {
            Sending::Task(o) => (true, o),
            Sending::ActorCreate => (false, &[][..]),
            Sending::ActorCall(o) => (false, o),
        };
        let call = SentCall {
            worker: w,
            task,
            outputs: outputs.to_vec(),
            hold,
            nested,
            retry: None,
        };
        state.sent.insert(seq, call);
        state.workers.sent(w);
        (seq, wire)
    }

    /// Builds the wire arguments for a call sent to `w`, pushing put data `w` lacks.
    fn wire_args(
        &self,
        state: &mut State,
        effects: &mut Effects,
        args: &[Arg],
        enc: Vec<Option<Arc<Encoded>>>,
        w: u32,
    ) -> Vec<ArgWire> {
        let mut out = Vec::with_capacity(args.len());
        for (a, e) in args.iter().zip(enc) {
            match (a, e) {
                (_, Some(e)) => out.push(ArgWire::Value(Slot::Ready(e))),
                (Arg::Ref(r), None) => {
                    let id = match r.id() {
                        Ok(id) => id,
                        Err(e) => {
                            out.push(ArgWire::Failed(WireError::from(&e)));
                            continue;
                        }
                    };
                    let from = match state.objects.get_mut(&id) {
                        Some(o) => {
                            if o.location == Some(self.rank) && w != self.rank {
                                if let Some(d) = &o.data {
                                    if !o.copies.contains(&w) {
                                        o.copies.push(w);
                                        effects.sends.push(Outgoing::Value {
                                            dest: w,
                                            id,
                                            payload: d.clone(),
                                            push: true,
                                        });
                                    }
                                }
                            }
                            o.location.unwrap_or(id.owner)
                        }
                        None => id.owner,
                    };
                    out.push(ArgWire::Ref { id, from });
                }
                (Arg::Value(_), None) => {}
            }
        }
        out
    }
    /// Allocates `n` output ids owned here, to be produced on worker `w`.
    pub(super) fn new_outputs(&self, state: &mut State, n: usize, w: u32) -> Vec<ObjectId> {
        (0..n)
            .map(|_| {
                let id = ObjectId::new(self.rank, state.next_seq());
                state.objects.insert(
                    id,
                    Object {
                        local: 1,
                        location: Some(w),
                        ..Default::default()
                    },
                );
                id
            })
            .collect()
    }
    /// A call this process sent to `rank` fails here because `rank` is lost (or cannot be
    /// reached): as [`call_done`](Self::call_done), and a task among them is counted as failed,
    /// since the rank that would have counted it is gone.
    pub(super) fn call_lost(
        &self,
        state: &mut State,
        effects: &mut Effects,
        rank: u32,
        seq: u64,
        results: Vec<OutResult>,
    ) {
        let task = state.sent.get(&seq).is_some_and(|c| c.task);
        self.call_done(state, effects, rank, seq, results);
        if task {
            unidist_core::observe::stats::task_settled(false);
        }
    }

    /// A call this process sent is done (or failed for good): its outputs are ready or failed
    /// at `src`, its pins end and its worker's load drops.
    pub(super) fn call_done(
        &self,
        state: &mut State,
        effects: &mut Effects,
        src: u32,
        seq: u64,
        results: Vec<OutResult>,
    ) {
        let Some(mut call) = state.sent.remove(&seq) else {
            return;
        };
        let all_ready = results.iter().all(Result::is_ok);
        state.workers.finished(call.worker);
        let mut arrived = Vec::new();
        for (id, r) in call.outputs.iter().zip(results) {
            let Some(o) = state.objects.get_mut(id) else {
                continue;
            };
            o.location = Some(src);
            let ahead = o.ahead.take();
            let err = match r {
                Ok(size) => {
                    o.size = size;
                    if matches!(o.status, ObjectStatus::Pending) {
                        o.status = ObjectStatus::Ready;
                    }
                    if let Some((e, seg)) = ahead {
                        install(o, e, seg);
                        o.requested = false;
                        arrived.push(*id);
                    }
                    None
                }
                Err(e) => {
                    let e: Error = e.into();
                    o.status = ObjectStatus::Failed(e.clone());
                    Some(WireError::from(&e))
                }
            };
            for s in std::mem::take(&mut o.subscribers) {
                effects.send(
                    s,
                    NodeMsg::Ready {
                        id: *id,
                        loc: src,
                        error: err.clone(),
                    },
                );
            }
            if err.is_some() {
                self.wake_waiting_calls(state, effects, *id);
                self.failure_known(state, effects);
            }
        }
        for id in arrived {
            self.wake_waiting_calls(state, effects, id);
        }
        effects.touched.extend(call.outputs.iter().copied());
        effects.progress = true;
        if all_ready {
            // A task with `max_retries` keeps its record (and its pins) to rebuild its outputs.
            self.keep_lineage(state, effects, &mut call);
        }
        self.unpin_locked(state, effects, &call.nested);
        effects.released.append(&mut call.hold);
        effects.drop_later(call);
        self.end_released_actors(state, effects);
    }
}
