//! TODO

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use unidist_core::{
    ActorCall, ActorId, ActorSpec, Backend, ClusterResources, ErasedValue, Error, ObjectId,
    Payload, Result, TaskSpec,
};

use super::*;
use crate::wire::Msg;

impl Backend for Node {
    fn name(&self) -> &'static str {
        NAME
    }

    fn put(&self, value: Arc<dyn ErasedValue>) -> Result<ObjectId> {
        self.check_open()?;
        // Encoded at once: it is the snapshot pushed to workers and gives the size.
        let e = self.encode_value(&value)?;
        Ok(self.with(|st, _| {
            let id = ObjectId::new(self.rank, st.next());
            st.objs.insert(
                id,
                Obj {
                    local: 1,
                    loc: Some(self.rank),
                    status: St::Ready,
                    size: e.total_len() as u64,
                    data: Some(Payload::Local(value)),
                    encoded: Some(e),
                    ..Default::default()
                },
            );
            id
        }))
    }

    fn submit(&self, task: TaskSpec) -> Result<Vec<ObjectId>> {
        self.check_open()?;
        let func = *self
            .table
            .fidx
            .get(task.function.name)
            .ok_or_else(|| unregistered("function", task.function.name))?;
        let (enc, hold, nested) = self.encode_args(&task.args)?;
        self.throttle();
        self.with(|st, fx| {
            let holders = self.holders(st, &task.args);
            let w = self.choose(st, &holders, false)?;
            let args = self.wire_args(st, fx, &task.args, enc, w);
            let seq = st.next();
            let outputs = self.new_outputs(st, task.function.num_returns, w);
            record_call(st, seq, w, outputs.clone(), hold, nested);
            fx.send(
                w,
                Msg::Task {
                    seq,
                    func,
                    args,
                    outputs: outputs.clone(),
                },
            );
            Ok(outputs)
        })
    }

    fn get(&self, ids: &[ObjectId], timeout: Option<Duration>) -> Result<Vec<Payload>> {
        self.check_open()?;
        let deadline = timeout.map(|t| Instant::now() + t);
        // Ids before `done` are resolved (they stay so while the caller holds them). The first
        // pass requests every id; later wake-ups (one per arriving batch) re-request only a
        // window from the first unresolved id, which every id reaches before `get` returns, so
        // a `get_all` of many refs costs time in proportion to what arrived, not to the list.
        let done = std::cell::Cell::new(0usize);
        let mut first = true;
        let ok = self.block_until(
            deadline,
            |st, fx| {
                let from = done.get();
                let to = if first {
                    ids.len()
                } else {
                    ids.len().min(from + REKICK_WINDOW)
                };
                first = false;
                for id in &ids[from..to] {
                    self.request(st, fx, *id);
                }
            },
            |st| {
                let mut i = done.get();
                while i < ids.len() && st.objs.get(&ids[i]).is_some_and(Obj::resolved) {
                    i += 1;
                }
                done.set(i);
                i == ids.len()
            },
            |_| WaitKeys::Objects(ids.get(done.get()).copied().into_iter().collect()),
        );
        let st = self.st.lock();
        if !ok {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::ShutDown);
            }
            let first = ids
                .iter()
                .find(|id| !st.objs.get(id).is_some_and(Obj::resolved));
            return Err(Error::Timeout {
                what: first.map_or_else(|| "object".to_string(), |id| id.to_string()),
                after: timeout.unwrap_or_default(),
            });
        }
        ids.iter()
            .map(|id| match st.objs.get(id) {
                Some(o) => match (&o.data, &o.status) {
                    (_, St::Failed(e)) => Err(e.clone()),
                    (Some(d), _) => Ok(d.clone()),
                    (None, _) => Err(lost(*id)),
                },
                None => Err(lost(*id)),
            })
            .collect()
    }

    fn wait(
        &self,
        ids: &[ObjectId],
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<bool>> {
        self.check_open()?;
        let me = self.rank;
        let is_ready = |st: &State, id: &ObjectId| {
            st.objs
                .get(id)
                .is_some_and(|o| o.resolved() || matches!(o.status, St::Ready))
        };
        let deadline = timeout.map(|t| Instant::now() + t);
        self.block_until(
            deadline,
            |st, fx| {
                for id in ids {
                    let o = st.objs.entry(*id).or_default();
                    if o.resolved()
                        || !matches!(o.status, St::Pending)
                        || o.subscribed
                        || o.producing
                    {
                        continue;
                    }
                    if id.owner != me {
                        o.subscribed = true;
                        fx.send(id.owner, Msg::Subscribe { id: *id });
                    }
                }
            },
            |st| ids.iter().filter(|id| is_ready(st, id)).count() >= num_returns,
            |st| WaitKeys::Objects(ids.iter().filter(|id| !is_ready(st, id)).copied().collect()),
        );
        let st = self.st.lock();
        Ok(ids.iter().map(|id| is_ready(&st, id)).collect())
    }

    fn release(&self, id: ObjectId) {
        self.with(|st, fx| {
            if let Some(o) = st.objs.get_mut(&id) {
                o.local = o.local.saturating_sub(1);
                if o.local == 0 {
                    self.maybe_gc(st, fx, id);
                }
            }
        });
    }

    fn ref_serialized(&self, id: ObjectId) {
        // An encoded value may be decoded any number of times, anywhere: pin the object. Inside
        // call arguments owned here, the pin lasts until the call is done (see `Call::nested`).
        self.with(|st, fx| {
            if id.owner == self.rank {
                if let Some(o) = st.objs.get_mut(&id) {
                    o.remote = o.remote.saturating_add(1);
                    NESTED.with(|n| {
                        if let Some(v) = n.borrow_mut().as_mut() {
                            v.push(id);
                        }
                    });
                }
            } else {
                fx.send(id.owner, Msg::Borrow { id, delta: 1 });
            }
        });
    }

    fn ref_deserialized(&self, id: ObjectId) -> Result<()> {
        self.check_open()?;
        self.with(|st, fx| {
            if id.owner == self.rank && !st.objs.contains_key(&id) {
                return Err(lost(id));
            }
            let o = st.objs.entry(id).or_default();
            o.local += 1;
            if id.owner != self.rank && !o.borrowing {
                o.borrowing = true;
                fx.send(id.owner, Msg::Borrow { id, delta: 1 });
            }
            Ok(())
        })
    }

    fn create_actor(&self, spec: ActorSpec) -> Result<ActorId> {
        self.check_open()?;
        let class = *self
            .table
            .cidx
            .get(spec.class.name)
            .ok_or_else(|| unregistered("actor type", spec.class.name))?;
        let (enc, hold, nested) = self.encode_args(&spec.args)?;
        self.with(|st, fx| {
            let w = self.choose(st, &[], true)?;
            let args = self.wire_args(st, fx, &spec.args, enc, w);
            let actor = ActorId {
                owner: self.rank,
                seq: st.next(),
            };
            let seq = st.next();
            st.owned_actors.insert(
                actor,
                OwnedActor {
                    worker: w,
                    handles: 1,
                    pinned: false,
                    dead: None,
                },
            );
            st.actors_on[w as usize] += 1;
            record_call(st, seq, w, Vec::new(), hold, nested);
            fx.send(
                w,
                Msg::ActorCreate {
                    actor,
                    class,
                    args,
                    seq,
                },
            );
            Ok(actor)
        })
    }

    fn call_actor(&self, call: ActorCall) -> Result<Vec<ObjectId>> {
        self.check_open()?;
        let method = *self
            .table
            .midx
            .get(call.method.name)
            .ok_or_else(|| unregistered("actor method", call.method.name))?;
        let w = self.locate_actor(call.actor).map_err(|e| match e {
            Error::ActorDead { actor, reason } if !actor.contains('#') => Error::ActorDead {
                actor: format!("{}#{actor}", call.method.class),
                reason,
            },
            e => e,
        })?;
        let (enc, hold, nested) = self.encode_args(&call.args)?;
        Ok(self.with(|st, fx| {
            let args = self.wire_args(st, fx, &call.args, enc, w);
            let seq = st.next();
            let outputs = self.new_outputs(st, call.method.num_returns, w);
            record_call(st, seq, w, outputs.clone(), hold, nested);
            fx.send(
                w,
                Msg::ActorCall {
                    actor: call.actor,
                    method,
                    args,
                    outputs: outputs.clone(),
                    seq,
                },
            );
            outputs
        }))
    }

    fn kill_actor(&self, actor: ActorId) -> Result<()> {
        self.check_open()?;
        let w = match self.locate_actor(actor) {
            Ok(w) => w,
            Err(e) if e.kind() == unidist_core::ErrorKind::ActorDead => return Ok(()),
            Err(e) => return Err(e),
        };
        self.with(|st, fx| {
            if let Some(a) = st.owned_actors.get_mut(&actor) {
                a.dead = Some("it was killed".into());
            } else {
                st.actor_where.insert(actor, Err("it was killed".into()));
            }
            fx.send(w, Msg::ActorKill { actor, now: true });
        });
        Ok(())
    }

    fn release_actor(&self, actor: ActorId) {
        if actor.owner != self.rank || self.closed.load(Ordering::Acquire) {
            return;
        }
        self.with(|st, fx| {
            let Some(a) = st.owned_actors.get_mut(&actor) else {
                return;
            };
            a.handles = a.handles.saturating_sub(1);
            if a.handles > 0 || a.pinned {
                return;
            }
            let seq = st.seq;
            st.pending_ends.push((actor, seq));
            self.end_released_actors(st, fx);
        });
    }

    fn actor_deserialized(&self, actor: ActorId) -> Result<()> {
        self.check_open()?;
        self.with(|st, fx| {
            if actor.owner == self.rank {
                if let Some(a) = st.owned_actors.get_mut(&actor) {
                    a.handles += 1;
                }
            } else {
                fx.send(actor.owner, Msg::ActorPin { actor });
            }
        });
        Ok(())
    }

    fn num_cpus(&self) -> usize {
        (self.size as usize).saturating_sub(1).max(1)
    }

    fn cluster_resources(&self) -> Result<ClusterResources> {
        let mut out = ClusterResources::new();
        for ip in self.ips.iter().skip(1) {
            *out.entry(ip.clone())
                .or_default()
                .entry("CPU".to_string())
                .or_insert(0.0) += 1.0;
        }
        Ok(out)
    }

    fn get_ip(&self) -> String {
        self.ips
            .get(self.rank as usize)
            .cloned()
            .unwrap_or_else(unidist_core::runtime::local_ip)
    }

    fn shutdown(&self) -> Result<()> {
        if self.rank != 0 {
            // Workers end when rank 0 shuts the job down.
            return Ok(());
        }
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let r = self.shutdown_job();
        crate::log::flush();
        r
    }
}
