//! Readiness subscriptions: how a backend tells an awaiting future that objects are ready, and
//! the futures behind `.await` on refs.
//!
//! A future never blocks its executor thread. Each poll only *samples* readiness (a `wait` with
//! `num_returns = 0`, then a `get` with a zero timeout); when the object is not ready it hands a
//! [`Subscription`] to [`Backend::on_ready`] and returns `Pending`. The backend fires the
//! subscription's [`Notify`] from whichever thread saw the object settle, which wakes the task
//! that awaits; the next poll samples again. A backend with its own per-object waiters (pymp)
//! registers the notification there; one whose objects are always ready (pyseq) fires at once;
//! any other backend gets the provided implementation, a shared helper thread described in
//! [`poller`].
//!
//! Firing early is always allowed (the future samples again and subscribes anew), so a backend
//! may fire on any change it cannot attribute; firing never is a hang. A [`Notify`] dropped
//! without being fired therefore fires on drop.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Waker;

use crate::backend::Backend;
use crate::object_ref::ObjectId;

mod futures;
pub mod poller;

pub use futures::{
    partition_for_wait, split_ready, validate_wait, GetFuture, WaitFuture, WaitParts,
};

/// What a subscription waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Settled as [`Backend::wait`] counts it: ready (wherever its value lives) or failed.
    Settled,
    /// Readable here: a [`Backend::get`] of the object returns without waiting, because its
    /// value is in this process or it failed. On a backend whose values may live in another
    /// process, this includes the transfer.
    Local,
}

/// One request to be told when objects are ready: at least [`at_least`](Subscription::at_least)
/// of [`ids`](Subscription::ids), counted as [`readiness`](Subscription::readiness) says, or
/// the runtime shut down.
///
/// It carries a weak handle to the backend it was made for, which the provided implementation
/// of [`Backend::on_ready`] uses to wait on the backend's behalf.
pub struct Subscription {
    ids: Vec<ObjectId>,
    at_least: usize,
    readiness: Readiness,
    notify: Notify,
    backend: Weak<dyn Backend>,
}

impl Subscription {
    /// A subscription to `backend`'s objects `ids`; `at_least` is clamped to `1..=ids.len()`
    /// (an empty `ids` is satisfied at once).
    pub fn new(
        backend: &Arc<dyn Backend>,
        ids: Vec<ObjectId>,
        at_least: usize,
        readiness: Readiness,
        notify: Notify,
    ) -> Self {
        let at_least = at_least.clamp(1, ids.len().max(1)).min(ids.len());
        Subscription {
            ids,
            at_least,
            readiness,
            notify,
            backend: Arc::downgrade(backend),
        }
    }

    /// The objects watched.
    pub fn ids(&self) -> &[ObjectId] {
        &self.ids
    }

    /// How many of [`ids`](Subscription::ids) must be ready; 0 only when there are no ids.
    pub fn at_least(&self) -> usize {
        self.at_least
    }

    /// What counts as ready.
    pub fn readiness(&self) -> Readiness {
        self.readiness
    }

    /// False once nobody waits for the notification any more (the future was dropped or was
    /// already woken); a backend may then discard the subscription without firing it.
    pub fn is_wanted(&self) -> bool {
        self.notify.is_wanted()
    }

    /// The backend the subscription was made for, while it exists.
    pub fn backend(&self) -> Option<Arc<dyn Backend>> {
        self.backend.upgrade()
    }

    /// True if `backend` is the one the subscription was made for.
    pub fn is_for(&self, backend: &Weak<dyn Backend>) -> bool {
        Weak::ptr_eq(&self.backend, backend)
    }

    /// The weak handle to the backend.
    pub(crate) fn backend_weak(&self) -> &Weak<dyn Backend> {
        &self.backend
    }

    /// Fires the notification now.
    pub fn fire(self) {
        self.notify.fire();
    }

    /// The ids and the notification, for a backend that keeps them apart.
    pub fn into_parts(self) -> (Vec<ObjectId>, usize, Notify) {
        (self.ids, self.at_least, self.notify)
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("ids", &self.ids.len())
            .field("at_least", &self.at_least)
            .field("readiness", &self.readiness)
            .field("wanted", &self.is_wanted())
            .finish()
    }
}

/// The waker of one pending poll of a future, shared with the notification.
pub(crate) struct Registration {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Registration {
    pub(crate) fn new(waker: &Waker) -> Arc<Self> {
        Arc::new(Registration {
            fired: AtomicBool::new(false),
            waker: Mutex::new(Some(waker.clone())),
        })
    }

    pub(crate) fn is_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// Keeps the latest waker: a future may move between tasks between polls.
    pub(crate) fn set_waker(&self, waker: &Waker) {
        let mut slot = self.waker.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        let waker = self.waker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

enum Action {
    Wake(Weak<Registration>),
    Call(Box<dyn FnOnce() + Send>),
}

/// What a backend calls when a subscription is satisfied: wakes the awaiting task, or runs a
/// closure. It fires at most once; dropping it unfired fires it, so that a backend that loses
/// a subscription causes a re-check instead of a hang.
///
/// Firing runs on the backend's thread: the waker only schedules the task, and a closure given
/// to [`Notify::new`] must be as short (no blocking, no calls into the backend).
pub struct Notify {
    action: Option<Action>,
}

impl Notify {
    /// A notification that runs `f`.
    pub fn new(f: impl FnOnce() + Send + 'static) -> Self {
        Notify {
            action: Some(Action::Call(Box::new(f))),
        }
    }

    pub(crate) fn waking(registration: &Arc<Registration>) -> Self {
        Notify {
            action: Some(Action::Wake(Arc::downgrade(registration))),
        }
    }

    /// False once nobody waits for it (its future was dropped, or it fired).
    pub fn is_wanted(&self) -> bool {
        match &self.action {
            Some(Action::Wake(reg)) => reg.upgrade().is_some_and(|r| !r.is_fired()),
            Some(Action::Call(_)) => true,
            None => false,
        }
    }

    /// Wakes the awaiting task, or runs the closure.
    pub fn fire(mut self) {
        self.fire_once();
    }

    fn fire_once(&mut self) {
        match self.action.take() {
            Some(Action::Wake(reg)) => {
                if let Some(r) = reg.upgrade() {
                    r.fire();
                }
            }
            Some(Action::Call(f)) => f(),
            None => {}
        }
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        self.fire_once();
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notify")
            .field("wanted", &self.is_wanted())
            .finish()
    }
}

#[cfg(test)]
mod tests;
