//! Native readiness for `.await` on refs (`Backend::on_ready`): a subscription is kept in the
//! node's state next to the blocked threads and fired by the same events that wake them, so an
//! awaiting future is woken by the thread that saw its object settle, with no helper thread and
//! no polling.
//!
//! A subscription counts how many of its objects are still needed. When one of them is touched
//! (its `Done`, value, readiness notice or failure arrived), the count drops if that object now
//! counts as ready; at zero the subscription fires once the state is unlocked. A broad wake-up
//! (a lost rank, actors located, shutdown) fires every subscription: firing early is allowed, the
//! future samples again and subscribes anew.
//!
//! A subscription asking for values here ([`Readiness::Local`]) also starts their transfer:
//! each object is requested at once, and again when it is touched without being here yet (an
//! object owned here whose location became known with its `Done` is fetched only then).

use super::state::HashMap;

use unidist_core::ready::{Readiness, Subscription};
use unidist_core::ObjectId;

use super::effects::Effects;
use super::state::{Object, ObjectStatus, State};
use super::Node;
use crate::wire::NodeMsg;

/// One subscription waiting for objects.
struct Watch {
    sub: Subscription,
    /// How many more of its objects must be ready.
    needed: usize,
    /// Its objects not ready when last looked at.
    pending: Vec<ObjectId>,
}

/// The waiting subscriptions, by key and by the objects they wait on.
#[derive(Default)]
pub(super) struct Watches {
    next: u64,
    entries: HashMap<u64, Watch>,
    by_object: HashMap<ObjectId, Vec<u64>>,
}

/// Whether `id` counts as ready for `readiness` in `objects`. An object with no entry was freed
/// or never known here: it counts as ready, so the future samples again and gets the error.
fn is_ready(objects: &HashMap<ObjectId, Object>, id: &ObjectId, readiness: Readiness) -> bool {
    objects.get(id).is_none_or(|o| match readiness {
        Readiness::Local => o.resolved(),
        Readiness::Settled => o.resolved() || matches!(o.status, ObjectStatus::Ready),
    })
}

impl Watches {
    fn add(&mut self, watch: Watch) {
        self.next += 1;
        let key = self.next;
        for id in &watch.pending {
            self.by_object.entry(*id).or_default().push(key);
        }
        self.entries.insert(key, watch);
    }

    /// Removes watch `key` and its entries under the objects it still waited on.
    fn remove(&mut self, key: u64) -> Option<Subscription> {
        let watch = self.entries.remove(&key)?;
        for id in &watch.pending {
            if let Some(keys) = self.by_object.get_mut(id) {
                keys.retain(|k| *k != key);
                if keys.is_empty() {
                    self.by_object.remove(id);
                }
            }
        }
        Some(watch.sub)
    }

    /// The subscriptions to fire now that `touched` changed (all of them on a broad wake-up);
    /// objects to request again go to `refetch`.
    pub(super) fn on_touched(
        &mut self,
        objects: &HashMap<ObjectId, Object>,
        touched: &[ObjectId],
        broad: bool,
        refetch: &mut Vec<ObjectId>,
    ) -> Vec<Subscription> {
        if self.entries.is_empty() {
            return Vec::new();
        }
        if broad {
            self.by_object.clear();
            return self.entries.drain().map(|(_, w)| w.sub).collect();
        }
        let mut fire = Vec::new();
        for id in touched {
            let Some(keys) = self.by_object.get(id).cloned() else {
                continue;
            };
            for key in keys {
                let Some(watch) = self.entries.get_mut(&key) else {
                    continue;
                };
                let done = if !watch.sub.is_wanted() {
                    true
                } else if is_ready(objects, id, watch.sub.readiness()) {
                    watch.needed = watch.needed.saturating_sub(1);
                    watch.pending.retain(|p| p != id);
                    watch.needed == 0
                } else {
                    if watch.sub.readiness() == Readiness::Local {
                        refetch.push(*id);
                    }
                    false
                };
                if done {
                    // Fired if still wanted; a subscription nobody waits for is dropped, and
                    // dropping fires nothing anyone hears.
                    fire.extend(self.remove(key));
                }
            }
            if let Some(keys) = self.by_object.get_mut(id) {
                let entries = &self.entries;
                keys.retain(|k| entries.get(k).is_some_and(|w| w.pending.contains(id)));
                if keys.is_empty() {
                    self.by_object.remove(id);
                }
            }
        }
        fire
    }

    /// How many subscriptions wait (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

impl Node {
    /// `Backend::on_ready`: fires `sub` once enough of its objects are ready here.
    pub(super) fn subscribe_ready(&self, sub: Subscription) {
        if self.check_open().is_err() {
            sub.fire();
            return;
        }
        let readiness = sub.readiness();
        let fire_now = self.with(|state, effects| {
            let mut pending = Vec::new();
            let mut ready = 0usize;
            for id in sub.ids() {
                self.start_readiness(state, effects, *id, readiness);
                if is_ready(&state.objects, id, readiness) {
                    ready += 1;
                } else {
                    pending.push(*id);
                }
            }
            let needed = sub.at_least().saturating_sub(ready);
            if needed == 0 || pending.is_empty() {
                return Some(sub);
            }
            state.watches.add(Watch {
                sub,
                needed,
                pending,
            });
            None
        });
        if let Some(sub) = fire_now {
            sub.fire();
        }
    }

    /// Asks for what makes `id` ready here: its value (`Local`), or a notice from its owner when
    /// it settles (`Settled`, for an object owned elsewhere that nobody here produces).
    fn start_readiness(
        &self,
        state: &mut State,
        effects: &mut Effects,
        id: ObjectId,
        readiness: Readiness,
    ) {
        match readiness {
            Readiness::Local => self.request(state, effects, id),
            Readiness::Settled => self.subscribe_to_owner(state, effects, id),
        }
    }

    /// Asks the owner of `id` to say when it settles, unless that is known already, asked
    /// already, or this process produces it.
    pub(super) fn subscribe_to_owner(
        &self,
        state: &mut State,
        effects: &mut Effects,
        id: ObjectId,
    ) {
        let o = state.objects.entry(id).or_default();
        if o.resolved() || !matches!(o.status, ObjectStatus::Pending) || o.subscribed || o.producing
        {
            return;
        }
        if id.owner != self.rank {
            o.subscribed = true;
            effects.send(id.owner, NodeMsg::Subscribe { id });
        }
    }

    /// Requests again the objects whose transfer a subscription is waiting for.
    pub(super) fn refetch(&self, ids: Vec<ObjectId>) {
        self.with(|state, effects| {
            for id in ids {
                // Only objects still known here: the awaiting future holds a ref to each.
                if state.objects.contains_key(&id) {
                    self.request(state, effects, id);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use unidist_core::ready::{Notify, Readiness, Subscription};
    use unidist_core::{Backend, ObjectId};
    use unidist_serialize::encode_with_oob;

    use crate::comm::Out;
    use crate::node::Node;
    use crate::process::LostPeers;
    use crate::wire::{NodeMsg, Slot};

    /// A worker node (rank 1 of 3) with no MPI under it, and what it sends.
    fn worker() -> (Arc<Node>, crossbeam_channel::Receiver<Out>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let lost = Arc::new(LostPeers::default());
        let store = crate::shm::Store::disabled();
        let node = Node::new(1, 3, vec![String::new(); 3], tx, 1024, lost, store);
        (node, rx)
    }

    fn subscribe(node: &Arc<Node>, ids: Vec<ObjectId>, readiness: Readiness) -> Arc<AtomicUsize> {
        let fired = Arc::new(AtomicUsize::new(0));
        let count = fired.clone();
        let backend: Arc<dyn Backend> = node.clone();
        let at_least = ids.len();
        let notify = Notify::new(move || {
            count.fetch_add(1, Ordering::SeqCst);
        });
        node.on_ready(Subscription::new(
            &backend, ids, at_least, readiness, notify,
        ));
        fired
    }

    fn ready_notice(id: ObjectId) -> NodeMsg {
        NodeMsg::Ready {
            id,
            loc: 2,
            error: None,
        }
    }

    #[test]
    fn a_settled_subscription_asks_the_owner_and_fires_when_all_its_objects_settle() {
        let (n, out) = worker();
        let (a, b) = (ObjectId::new(0, 1), ObjectId::new(0, 2));
        let fired = subscribe(&n, vec![a, b], Readiness::Settled);
        let asked = out
            .try_iter()
            .filter(|o| matches!(o, Out::Msg(0, NodeMsg::Subscribe { .. })))
            .count();
        assert_eq!(
            asked, 2,
            "each pending object's owner is asked to say when it settles"
        );
        n.handle(0, ready_notice(a));
        assert_eq!(fired.load(Ordering::SeqCst), 0, "one of two is not enough");
        n.handle(0, ready_notice(b));
        assert_eq!(
            fired.load(Ordering::SeqCst),
            1,
            "fired by the thread that saw it settle"
        );
        assert_eq!(
            n.state.lock().watches.len(),
            0,
            "a fired subscription is forgotten"
        );
    }

    #[test]
    fn a_local_subscription_fetches_and_fires_when_the_value_is_here() {
        let (n, out) = worker();
        let id = ObjectId::new(0, 3);
        let fired = subscribe(&n, vec![id], Readiness::Local);
        assert!(
            out.try_iter()
                .any(|o| matches!(o, Out::Msg(0, NodeMsg::Fetch { .. }))),
            "the value is requested at once"
        );
        n.handle(0, ready_notice(id));
        assert_eq!(
            fired.load(Ordering::SeqCst),
            0,
            "settled elsewhere is not here"
        );
        let e = encode_with_oob(&7u64, 1024).expect("a number encodes");
        let value = Slot::Ready(Arc::new(e));
        n.handle(0, NodeMsg::Data { id, value });
        assert_eq!(fired.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn shutdown_fires_every_waiting_subscription() {
        let (n, _out) = worker();
        let fired = subscribe(&n, vec![ObjectId::new(0, 4)], Readiness::Settled);
        assert_eq!(n.state.lock().watches.len(), 1);
        n.stop_work();
        assert_eq!(fired.load(Ordering::SeqCst), 1, "a hang is never allowed");
        let after = subscribe(&n, vec![ObjectId::new(0, 5)], Readiness::Settled);
        assert_eq!(
            after.load(Ordering::SeqCst),
            1,
            "after shutdown it fires at once"
        );
    }
}
