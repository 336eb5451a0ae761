//! Lost objects rebuilt from lineage: an owner keeps what it takes to run a finished task with
//! `max_retries` again for as long as one of its outputs is referenced, and when the worker
//! that held those outputs is lost, it runs the task again on a live worker.
//!
//! The record is the one a task in flight keeps for a resend ([`Resend`]): the function, the
//! encoded argument values, the argument refs (which keep the arguments, and so their own
//! lineage, alive) and the runs made so far. Each rebuild is one more run against the task's
//! `max_retries`. Objects are rebuilt in the order of their ids, so a rebuilt argument is
//! placed before the rebuilt task that takes it. What cannot be rebuilt (made by `put`, by an
//! actor call or by a task without retries left, or taking an argument that cannot be rebuilt)
//! fails with `WorkerLost` saying so. Tasks without `max_retries` keep nothing.

use unidist_core::{retry, AnyRef, Arg, Error, ObjectId};

use super::calls::EncodedArgs;
use super::control::Resend;
use super::effects::Effects;
use super::state::{Object, ObjectStatus, SentCall, State};
use super::Node;

/// A finished task with `max_retries` whose outputs are still referenced.
pub(super) struct Lineage {
    pub(super) resend: Box<Resend>,
    pub(super) outputs: Vec<ObjectId>,
    /// Refs owned here inside the encoded argument values: pinned as long as the record lives,
    /// so that a new run can still decode them.
    pub(super) nested: Vec<ObjectId>,
}

/// True if `o` (owned here) was finished on `rank` and is held nowhere this process knows of.
fn finished_at(o: &Object, rank: u32) -> bool {
    o.location == Some(rank)
        && o.data.is_none()
        && !o.producing
        && matches!(o.status, ObjectStatus::Ready)
}

/// True if `o` is referenced and not being dropped.
fn live(o: &Object) -> bool {
    !o.freed
}

impl Node {
    /// A task with `max_retries` is done with every output ready: its record is kept while an
    /// output is referenced (see [`Node::release_lineage`]); else it goes (its pins with it).
    pub(super) fn keep_lineage(
        &self,
        state: &mut State,
        effects: &mut Effects,
        call: &mut SentCall,
    ) {
        let Some(resend) = call.retry.take() else {
            return;
        };
        let nested = std::mem::take(&mut call.nested);
        let outputs = call.outputs.clone();
        let Some(key) = outputs
            .iter()
            .copied()
            .find(|id| state.objects.get(id).is_some_and(live))
        else {
            self.unpin_locked(state, effects, &nested);
            effects.drop_later(resend);
            return;
        };
        for id in &outputs {
            if let Some(o) = state.objects.get_mut(id) {
                o.lineage = Some(key);
            }
        }
        let lineage = Lineage {
            resend,
            outputs,
            nested,
        };
        state.lineage.insert(key, lineage);
    }

    /// Output `id` of lineage `key` is no longer referenced: the record goes once no output
    /// of it is.
    pub(super) fn release_lineage(
        &self,
        state: &mut State,
        effects: &mut Effects,
        key: ObjectId,
        id: ObjectId,
    ) {
        let Some(l) = state.lineage.get(&key) else {
            // Being rebuilt: its call keeps the record until it is done.
            return;
        };
        let used = l
            .outputs
            .iter()
            .any(|o| *o != id && state.objects.get(o).is_some_and(live));
        if used {
            return;
        }
        if let Some(l) = state.lineage.remove(&key) {
            self.unpin_locked(state, effects, &l.nested);
            effects.drop_later(l);
        }
    }

    /// Objects owned here that were finished on lost `rank` and are held nowhere else are made
    /// again on a live worker when their task has retries left; the others fail now, saying
    /// why they cannot be rebuilt (`err` is the loss of `rank`).
    pub(super) fn rebuild_objects_at(
        &self,
        state: &mut State,
        effects: &mut Effects,
        rank: u32,
        err: &Error,
    ) {
        let me = self.rank;
        let mut lost: Vec<ObjectId> = state
            .objects
            .iter()
            .filter(|(id, o)| id.owner == me && finished_at(o, rank))
            .map(|(id, _)| *id)
            .collect();
        lost.sort_unstable();
        for id in lost {
            // Another output of a task rebuilt here is not lost any more.
            if !state.objects.get(&id).is_some_and(|o| finished_at(o, rank)) {
                continue;
            }
            if let Err(e) = self.rebuild(state, effects, id, rank, err) {
                self.fail_object(state, effects, id, &e);
            }
        }
    }

    /// Sends the task that made `id` again, to a live worker; `Err` is the error of `id` when
    /// it cannot be rebuilt.
    fn rebuild(
        &self,
        state: &mut State,
        effects: &mut Effects,
        id: ObjectId,
        rank: u32,
        err: &Error,
    ) -> Result<(), Error> {
        let reason = match err {
            Error::WorkerLost { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        let cannot = |what: String, why: &str| Error::WorkerLost {
            what,
            reason: format!("{reason}; it cannot be rebuilt: {why}"),
        };
        let key = state.objects.get(&id).and_then(|o| o.lineage);
        let Some(l) = key.and_then(|k| state.lineage.get(&k)) else {
            let why = "the call that made it had no retries (only tasks with max_retries are \
                       run again)";
            return Err(cannot(id.to_string(), why));
        };
        let (options, runs) = (&l.resend.options, l.resend.runs);
        let what = format!("{id} of task {}", l.resend.function.name);
        if !retry::may_retry(options, runs, err) {
            let why = format!(
                "its task has no retries left (max_retries {})",
                options.max_retries
            );
            return Err(retry::last_error(options, runs, cannot(what, &why)));
        }
        if let Some(arg) = self.lost_argument(state, &l.resend.args, rank) {
            let why = format!("its argument {arg} was lost too and cannot be rebuilt");
            return Err(cannot(what, &why));
        }
        let holders = self.holders(state, &l.resend.args);
        let w = self
            .choose(state, &holders, false)
            .map_err(|e| cannot(what, &e.to_string()))?;
        let Some(Lineage {
            resend,
            outputs,
            nested,
        }) = key.and_then(|k| state.lineage.remove(&k))
        else {
            return Ok(());
        };
        let mut wanted = Vec::new();
        for out in &outputs {
            if let Some(o) = state.objects.get_mut(out) {
                o.location = Some(w);
                o.status = ObjectStatus::Pending;
                if o.requested || !o.waiting_calls.is_empty() {
                    wanted.push(*out);
                }
                o.requested = false;
            }
        }
        let hold: Vec<AnyRef> = resend
            .args
            .iter()
            .filter_map(|a| match a {
                Arg::Ref(r) if r.id().is_ok() => Some(r.clone()),
                _ => None,
            })
            .collect();
        let encoded = EncodedArgs::again(resend.values.clone(), hold, nested);
        tracing::debug!(
            function = resend.function.name,
            %id,
            lost = rank,
            worker = w,
            run = resend.runs + 1,
            "rebuilding an object lost with its worker"
        );
        effects.touched.extend(outputs.iter().copied());
        self.send_again(state, effects, w, resend, encoded, outputs);
        // A fetch sent to the lost rank is sent again, to the new location.
        for out in wanted {
            self.request(state, effects, out);
        }
        Ok(())
    }

    /// The first argument among `args` that is owned here, was lost with `rank` and was not
    /// rebuilt (arguments are looked at before the tasks that take them).
    fn lost_argument(&self, state: &State, args: &[Arg], rank: u32) -> Option<ObjectId> {
        args.iter()
            .filter_map(|a| match a {
                Arg::Ref(r) => r.id().ok(),
                Arg::Value(_) => None,
            })
            .find(|id| {
                id.owner == self.rank
                    && state.objects.get(id).is_some_and(|o| {
                        o.location == Some(rank)
                            && o.data.is_none()
                            && !matches!(o.status, ObjectStatus::Pending)
                    })
            })
    }
}
