//! The futures of `.await` on refs ([`GetFuture`], [`WaitFuture`]) and the rules `wait` and
//! `wait_async` share (argument check, which refs count as ready, the split).

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{Notify, Readiness, Registration, Subscription};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::object_ref::{read_as, AnyRef, ObjectId, ObjectRef};
use crate::value::{Payload, Value};

/// A backend that fires a subscription at once more often than this in one poll has its
/// future yield to the executor (and be polled again) instead of spinning inside `poll`.
const IMMEDIATE_FIRES: usize = 2;

/// The subscription of a pending poll, and whether it has fired since.
#[derive(Default)]
struct Pending(Option<Arc<Registration>>);

impl Pending {
    /// True while a subscription made by an earlier poll has not fired: the future stays
    /// pending with the latest waker, without asking the backend again.
    fn still_waiting(&mut self, cx: &Context<'_>) -> bool {
        match &self.0 {
            Some(reg) if !reg.is_fired() => {
                reg.set_waker(cx.waker());
                // A fire between the check and the new waker would have woken the old one.
                if !reg.is_fired() {
                    return true;
                }
                self.0 = None;
                false
            }
            _ => {
                self.0 = None;
                false
            }
        }
    }

    /// Subscribes; true if the subscription is still pending (the caller returns `Pending`),
    /// false if the backend fired it at once (the caller samples again).
    fn subscribe(
        &mut self,
        cx: &Context<'_>,
        backend: &Arc<dyn Backend>,
        ids: Vec<ObjectId>,
        at_least: usize,
        readiness: Readiness,
    ) -> bool {
        let reg = Registration::new(cx.waker());
        let notify = Notify::waking(&reg);
        backend.on_ready(Subscription::new(backend, ids, at_least, readiness, notify));
        if reg.is_fired() {
            return false;
        }
        self.0 = Some(reg);
        true
    }
}

/// Reads the object if `get` would return without waiting; `None` if it is not ready here.
fn sample(backend: &Arc<dyn Backend>, id: ObjectId) -> Option<Result<Payload>> {
    match backend.wait(&[id], 0, Some(Duration::ZERO)) {
        Err(e) => return Some(Err(e)),
        Ok(flags) if !flags.first().copied().unwrap_or(true) => return None,
        Ok(_) => {}
    }
    match backend.get(&[id], Some(Duration::ZERO)) {
        // Ready where it lives but not here yet (a transfer): the zero-timeout `get` asked
        // for it, and a `Local` subscription tells when it arrived.
        Err(Error::Timeout { after, .. }) if after.is_zero() => None,
        Err(e) => Some(Err(e)),
        Ok(mut payloads) => Some(
            payloads
                .pop()
                .ok_or_else(|| Error::backend(backend.name(), "get returned no value")),
        ),
    }
}

/// The future of `ref.await` and `unidist::get_async(&ref)`: the object's value, or the error
/// of the task that should have produced it.
///
/// Polling never blocks: it samples readiness and, when the object is not ready, subscribes
/// with [`Backend::on_ready`] so that the backend wakes the task once it is.
#[must_use = "futures do nothing unless awaited"]
pub struct GetFuture<T> {
    r: ObjectRef<T>,
    pending: Pending,
}

impl<T> GetFuture<T> {
    /// The future of reading `r`.
    pub fn new(r: ObjectRef<T>) -> Self {
        GetFuture {
            r,
            pending: Pending::default(),
        }
    }
}

impl<T> std::fmt::Debug for GetFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("GetFuture").field(&self.r).finish()
    }
}

impl<T: Value> Future for GetFuture<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        if this.pending.still_waiting(cx) {
            return Poll::Pending;
        }
        let (id, backend) = match this.r.as_any().resolve() {
            Ok(r) => r,
            Err(e) => return Poll::Ready(Err(e)),
        };
        for _ in 0..IMMEDIATE_FIRES {
            if let Some(read) = sample(&backend, id) {
                return Poll::Ready(read.and_then(|p| read_as::<T>(id, p)));
            }
            if this
                .pending
                .subscribe(cx, &backend, vec![id], 1, Readiness::Local)
            {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<T: Value> IntoFuture for ObjectRef<T> {
    type Output = Result<T>;
    type IntoFuture = GetFuture<T>;

    /// `r.await` reads the object without blocking the executor thread.
    fn into_future(self) -> GetFuture<T> {
        GetFuture::new(self)
    }
}

/// Checks `num_returns` of a `wait` on `len` refs: between 1 and `len`.
pub fn validate_wait(len: usize, num_returns: usize) -> Result<()> {
    if len == 0 {
        return Err(Error::invalid(
            "refs for wait",
            "[] (empty)",
            "at least one ref",
        ));
    }
    if num_returns == 0 || num_returns > len {
        return Err(Error::invalid(
            "num_returns",
            num_returns,
            format!("1..={len} (the number of refs)"),
        ));
    }
    Ok(())
}

/// The refs of a `wait`, sorted into those already known to be ready and those to ask a
/// backend about.
pub struct WaitParts {
    /// One flag per ref: true for a ref that holds an error, or whose runtime is gone (`get`
    /// returns its error at once), or that belongs to another runtime than the first live ref.
    pub ready: Vec<bool>,
    /// For each id in [`ids`](WaitParts::ids), the index of its ref.
    pub live: Vec<usize>,
    /// The ids to ask [`backend`](WaitParts::backend) about.
    pub ids: Vec<ObjectId>,
    /// The backend of the first live ref.
    pub backend: Option<Arc<dyn Backend>>,
}

impl WaitParts {
    /// Refs counted ready without asking the backend.
    pub fn already_ready(&self) -> usize {
        self.ready.len() - self.live.len()
    }

    /// Records the backend's answer for [`ids`](WaitParts::ids).
    pub fn record(&mut self, flags: &[bool]) {
        for (k, f) in flags.iter().enumerate() {
            self.ready[self.live[k]] = *f;
        }
    }
}

/// Sorts `refs` for a `wait`: see [`WaitParts`].
pub fn partition_for_wait<'a>(refs: impl ExactSizeIterator<Item = &'a AnyRef>) -> WaitParts {
    let mut parts = WaitParts {
        ready: vec![false; refs.len()],
        live: Vec::new(),
        ids: Vec::new(),
        backend: None,
    };
    for (i, r) in refs.enumerate() {
        match r.resolve() {
            Ok((id, b))
                if parts
                    .backend
                    .as_ref()
                    .is_none_or(|first| Arc::ptr_eq(first, &b)) =>
            {
                parts.backend.get_or_insert(b);
                parts.live.push(i);
                parts.ids.push(id);
            }
            _ => parts.ready[i] = true,
        }
    }
    parts
}

/// `(ready, not_ready)`, each in input order, with at most `num_returns` in `ready`.
pub fn split_ready<T: Clone>(refs: &[T], ready: &[bool], num_returns: usize) -> (Vec<T>, Vec<T>) {
    let mut done = Vec::with_capacity(num_returns);
    let mut pending = Vec::new();
    for (r, is_ready) in refs.iter().zip(ready) {
        if *is_ready && done.len() < num_returns {
            done.push(r.clone());
        } else {
            pending.push(r.clone());
        }
    }
    (done, pending)
}

type Split<T> = (Vec<ObjectRef<T>>, Vec<ObjectRef<T>>);

/// The future of `unidist::wait_async(&refs, num_returns)`: `(ready, not_ready)` once
/// `num_returns` of the refs are ready, with the rules of `unidist::wait`.
#[must_use = "futures do nothing unless awaited"]
pub struct WaitFuture<T> {
    refs: Vec<ObjectRef<T>>,
    num_returns: usize,
    pending: Pending,
}

impl<T> WaitFuture<T> {
    /// The future of waiting for `num_returns` of `refs`.
    pub fn new(refs: Vec<ObjectRef<T>>, num_returns: usize) -> Self {
        WaitFuture {
            refs,
            num_returns,
            pending: Pending::default(),
        }
    }
}

impl<T> std::fmt::Debug for WaitFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitFuture")
            .field("refs", &self.refs.len())
            .field("num_returns", &self.num_returns)
            .finish()
    }
}

impl<T> Future for WaitFuture<T> {
    type Output = Result<Split<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Split<T>>> {
        let this = self.get_mut();
        if this.pending.still_waiting(cx) {
            return Poll::Pending;
        }
        if let Err(e) = validate_wait(this.refs.len(), this.num_returns) {
            return Poll::Ready(Err(e));
        }
        let n = this.num_returns;
        for _ in 0..IMMEDIATE_FIRES {
            let mut parts = partition_for_wait(this.refs.iter().map(ObjectRef::as_any));
            if let Some(b) = parts.backend.clone() {
                match b.wait(&parts.ids, 0, Some(Duration::ZERO)) {
                    Ok(flags) => parts.record(&flags),
                    Err(e) => return Poll::Ready(Err(e)),
                }
                let count = parts.ready.iter().filter(|r| **r).count();
                if count < n {
                    let pending: Vec<ObjectId> = parts
                        .live
                        .iter()
                        .zip(&parts.ids)
                        .filter(|(i, _)| !parts.ready[**i])
                        .map(|(_, id)| *id)
                        .collect();
                    if this
                        .pending
                        .subscribe(cx, &b, pending, n - count, Readiness::Settled)
                    {
                        return Poll::Pending;
                    }
                    continue;
                }
            }
            return Poll::Ready(Ok(split_ready(&this.refs, &parts.ready, n)));
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
