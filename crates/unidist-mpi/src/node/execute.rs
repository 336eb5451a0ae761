//! TODO

use super::*;

/// Results up to this size travel to their owner with the call's completion.
pub(super) const INLINE_RESULT_MAX: usize = 16 * 1024;

impl Node {
    pub(super) fn reject(&self, src: u32, seq: u64, outputs: &[ObjectId], why: &str) {
        let e = WireError::from(&backend_err(format!(
            "{why}: the ranks run different binaries"
        )));
        self.send(
            src,
            Msg::Done {
                seq,
                results: outputs.iter().map(|_| Err(e.clone())).collect(),
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn receive_exec(
        &self,
        st: &mut State,
        fx: &mut Fx,
        src: u32,
        kind: ExecKind,
        actor: Option<ActorId>,
        args: Vec<ArgWire>,
        outputs: Vec<ObjectId>,
        seq: u64,
    ) {
        let xid = st.next();
        for id in &outputs {
            let o = st.objs.entry(*id).or_default();
            o.producing = true;
            o.loc = Some(self.rank);
        }
        let mut states = Vec::with_capacity(args.len());
        let mut missing = 0;
        for a in args {
            match a {
                ArgWire::Value(s) => match s.ready() {
                    Some(e) => states.push(ArgState::Ready(Payload::Encoded(e.clone()))),
                    None => states.push(ArgState::Failed(backend_err(
                        "an argument arrived incomplete",
                    ))),
                },
                ArgWire::Ref { id, from } => {
                    let o = st.objs.entry(id).or_default();
                    if let Some(d) = &o.data {
                        states.push(ArgState::Ready(d.clone()));
                    } else if let St::Failed(e) = &o.status {
                        states.push(ArgState::Failed(e.clone()));
                    } else {
                        o.execs.push(xid);
                        missing += 1;
                        states.push(ArgState::Waiting(id));
                        if !o.producing && !o.requested {
                            o.requested = true;
                            let to = o.loc.filter(|l| *l != self.rank).unwrap_or(from);
                            fx.send(
                                to,
                                Msg::Fetch {
                                    id,
                                    requester: self.rank,
                                },
                            );
                        }
                    }
                }
            }
        }
        if let Some(a) = actor {
            // Creation goes first: a call from another process can arrive before it (MPI
            // orders messages per sender only), and then waits in the queue.
            let q = st.actor_queues.entry(a).or_default();
            if matches!(kind, ExecKind::Create(_)) {
                q.push_front(xid);
            } else {
                q.push_back(xid);
            }
        }
        st.execs.insert(
            xid,
            Exec {
                kind,
                actor,
                args: states,
                missing,
                outputs,
                reply_to: src,
                seq,
            },
        );
        if missing == 0 {
            self.exec_ready(st, fx, xid);
        }
    }

    pub(super) fn wake_execs(&self, st: &mut State, fx: &mut Fx, id: ObjectId) {
        let Some(o) = st.objs.get_mut(&id) else {
            return;
        };
        if o.execs.is_empty() {
            return;
        }
        let state = match (&o.data, &o.status) {
            (Some(d), _) => ArgState::Ready(d.clone()),
            (None, St::Failed(e)) => ArgState::Failed(e.clone()),
            _ => return,
        };
        let waiting = std::mem::take(&mut o.execs);
        for xid in waiting {
            let Some(x) = st.execs.get_mut(&xid) else {
                continue;
            };
            for a in x.args.iter_mut() {
                if matches!(a, ArgState::Waiting(w) if *w == id) {
                    *a = match &state {
                        ArgState::Ready(p) => ArgState::Ready(p.clone()),
                        ArgState::Failed(e) => ArgState::Failed(e.clone()),
                        ArgState::Waiting(w) => ArgState::Waiting(*w),
                    };
                    x.missing -= 1;
                }
            }
            if x.missing == 0 {
                self.exec_ready(st, fx, xid);
            }
        }
        self.maybe_gc(st, fx, id);
    }

    pub(super) fn exec_ready(&self, st: &mut State, fx: &mut Fx, xid: u64) {
        let actor = match st.execs.get(&xid) {
            Some(x) => x.actor,
            None => return,
        };
        match actor {
            None => {
                let Some(mut x) = st.execs.remove(&xid) else {
                    return;
                };
                let ExecKind::Task(func) = x.kind else { return };
                if st.stopped {
                    return;
                }
                let args = x.take_args();
                fx.jobs.push(Job {
                    func,
                    args,
                    outputs: std::mem::take(&mut x.outputs),
                    reply_to: x.reply_to,
                    seq: x.seq,
                });
            }
            Some(a) => self.flush_actor(st, fx, a),
        }
    }
}

impl Node {
    /// Stores the result of a call that ran here and reports it to `reply_to`.
    pub fn complete(
        &self,
        outputs: &[ObjectId],
        result: Result<unidist_core::Outputs>,
        reply_to: u32,
        seq: u64,
    ) {
        // Encode outside the lock: it gives sizes for scheduling and lets fetches be served
        // without encoding on the communication thread.
        let result = result.and_then(|vals| {
            vals.into_iter()
                .map(|v| {
                    let e = self.encode_value(&v)?;
                    Ok((v, e))
                })
                .collect::<Result<Vec<_>>>()
        });
        self.with(|st, fx| self.complete_locked_enc(st, fx, outputs, result, reply_to, seq));
    }

    pub(super) fn complete_locked(
        &self,
        st: &mut State,
        fx: &mut Fx,
        outputs: &[ObjectId],
        result: Result<unidist_core::Outputs>,
        reply_to: u32,
        seq: u64,
    ) {
        // Only used for failures decided under the lock; nothing to encode.
        let r = result.map(|v| {
            v.into_iter()
                .map(|x| (x, Arc::new(Encoded::default())))
                .collect()
        });
        self.complete_locked_enc(st, fx, outputs, r, reply_to, seq)
    }

    pub(super) fn complete_locked_enc(
        &self,
        st: &mut State,
        fx: &mut Fx,
        outputs: &[ObjectId],
        result: Result<EncodedOutputs>,
        reply_to: u32,
        seq: u64,
    ) {
        let mut results: Vec<OutResult> = Vec::with_capacity(outputs.len());
        let mut vals = match result {
            Ok(v) => Some(v.into_iter()),
            Err(e) => {
                let w = WireError::from(&e);
                for id in outputs {
                    results.push(Err(w.clone()));
                    self.store_output(st, fx, *id, Err(e.clone()));
                }
                None
            }
        };
        if let Some(vals) = vals.as_mut() {
            for id in outputs {
                match vals.next() {
                    Some((v, e)) => {
                        results.push(Ok(e.total_len() as u64));
                        // A small result goes to its owner with the completion (one message),
                        // so that the owner's `get` needs no fetch round trip. The value stays
                        // here too, where other workers fetch it.
                        let small = e.buffers.is_empty() && e.inline.len() <= INLINE_RESULT_MAX;
                        if small
                            && reply_to != self.rank
                            && id.owner == reply_to
                            && !st
                                .objs
                                .get(id)
                                .is_some_and(|o| o.fetchers.contains(&reply_to))
                        {
                            fx.send(
                                reply_to,
                                Msg::Data {
                                    id: *id,
                                    value: Slot::Ready(e.clone()),
                                },
                            );
                        }
                        self.store_output(st, fx, *id, Ok((v, e)));
                    }
                    None => {
                        let e = backend_err("a call returned fewer values than declared");
                        results.push(Err(WireError::from(&e)));
                        self.store_output(st, fx, *id, Err(e));
                    }
                }
            }
        }
        fx.send(reply_to, Msg::Done { seq, results });
        fx.touched.extend(outputs.iter().copied());
    }
}
