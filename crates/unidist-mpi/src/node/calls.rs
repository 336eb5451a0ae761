//! TODO

use super::*;

/// Call arguments after encoding: the encoded values (`None` for refs), the refs to hold, and
/// the refs owned here that were serialized inside the values (pinned until the call is done).
pub(super) type EncodedArgs = (Vec<Option<Arc<Encoded>>>, Vec<AnyRef>, Vec<ObjectId>);

thread_local! {
    /// While call arguments are encoded: the refs owned by this process found inside them.
    pub(super) static NESTED: std::cell::RefCell<Option<Vec<ObjectId>>> =
        const { std::cell::RefCell::new(None) };
}
/// Outputs of a call with their encodings.
pub(super) type EncodedOutputs = Vec<(Arc<dyn ErasedValue>, Arc<Encoded>)>;

/// Records a call sent to worker `w` until its `Done`: its outputs, the refs it holds, and the
/// load it adds.
pub(super) fn record_call(
    st: &mut State,
    seq: u64,
    w: u32,
    outputs: Vec<ObjectId>,
    hold: Vec<AnyRef>,
    nested: Vec<ObjectId>,
) {
    st.calls.insert(
        seq,
        Call {
            worker: w,
            outputs,
            _hold: hold,
            nested,
        },
    );
    st.load[w as usize] += 1;
    st.inflight += 1;
}

impl Node {
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
                        r.id()?;
                        hold.push(r.clone());
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
        Ok((enc, hold, nested))
    }
}

impl Node {
    /// Builds the wire arguments for a call sent to `w`, pushing put data `w` lacks.
    pub(super) fn wire_args(
        &self,
        st: &mut State,
        fx: &mut Fx,
        args: &[Arg],
        enc: Vec<Option<Arc<Encoded>>>,
        w: u32,
    ) -> Vec<ArgWire> {
        let mut out = Vec::with_capacity(args.len());
        for (a, e) in args.iter().zip(enc) {
            match (a, e) {
                (_, Some(e)) => out.push(ArgWire::Value(Slot::Ready(e))),
                (Arg::Ref(r), None) => {
                    let Ok(id) = r.id() else { continue };
                    let from = match st.objs.get_mut(&id) {
                        Some(o) => {
                            if o.loc == Some(self.rank) && w != self.rank {
                                if let Some(d) = &o.data {
                                    if !o.copies.contains(&w) {
                                        o.copies.push(w);
                                        fx.sends.push(Outgoing::Value {
                                            dest: w,
                                            id,
                                            payload: d.clone(),
                                            push: true,
                                        });
                                    }
                                }
                            }
                            o.loc.unwrap_or(id.owner)
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
}

impl Node {
    pub(super) fn new_outputs(&self, st: &mut State, n: usize, w: u32) -> Vec<ObjectId> {
        (0..n)
            .map(|_| {
                let id = ObjectId::new(self.rank, st.next());
                st.objs.insert(
                    id,
                    Obj {
                        local: 1,
                        loc: Some(w),
                        ..Default::default()
                    },
                );
                id
            })
            .collect()
    }
}

impl Node {
    pub(super) fn done(
        &self,
        st: &mut State,
        fx: &mut Fx,
        src: u32,
        seq: u64,
        results: Vec<OutResult>,
    ) {
        let Some(call) = st.calls.remove(&seq) else {
            return;
        };
        st.load[call.worker as usize] = st.load[call.worker as usize].saturating_sub(1);
        st.inflight = st.inflight.saturating_sub(1);
        for (id, r) in call.outputs.iter().zip(results) {
            let Some(o) = st.objs.get_mut(id) else {
                continue;
            };
            o.loc = Some(src);
            let err = match r {
                Ok(size) => {
                    o.size = size;
                    if matches!(o.status, St::Pending) {
                        o.status = St::Ready;
                    }
                    None
                }
                Err(e) => {
                    let e: Error = e.into();
                    o.status = St::Failed(e.clone());
                    Some(WireError::from(&e))
                }
            };
            for s in std::mem::take(&mut o.subscribers) {
                fx.send(
                    s,
                    Msg::Ready {
                        id: *id,
                        loc: src,
                        error: err.clone(),
                    },
                );
            }
            if err.is_some() {
                self.wake_execs(st, fx, *id);
            }
        }
        fx.touched.extend(call.outputs.iter().copied());
        fx.progress = true;
        self.unpin_locked(st, fx, &call.nested);
        fx.drop_later(call);
        self.end_released_actors(st, fx);
    }
}
