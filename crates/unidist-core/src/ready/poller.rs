//! The provided implementation of [`Backend::on_ready`]: one shared helper thread that waits on
//! behalf of every pending subscription of a backend without native readiness events.
//!
//! # How it works and what it costs
//!
//! Subscriptions go into one process-wide queue, served by one thread (`unidist-ready`) that
//! exists only while subscriptions are pending and ends [`IDLE_EXIT`] after the last one is
//! served. Each round takes the new subscriptions, drops those nobody waits for any more, and
//! per backend calls `wait(union of pending ids, 1, ROUND)`: it returns as soon as one watched
//! object settles, or after [`ROUND`]. Subscriptions with enough settled ids fire;
//! [`Readiness::Local`] ones first `get` their ids on this thread, so that a transfer from
//! another process happens here and not on an executor thread.
//!
//! So however many futures await, there is one extra thread, not one per await. An object
//! settling wakes its futures at once when it is in the union being waited on; a subscription
//! made while the thread waits joins the union when the round ends, at most [`ROUND`] later.
//! Each round costs one `wait` over the pending ids (linear in their number), and rounds run
//! back to back while anything is pending, about `1 s / ROUND` `wait` calls a second when
//! nothing settles. Backends with per-object waiters should implement `on_ready` natively.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex, Weak};
use std::time::Duration;

use super::{Readiness, Subscription};
use crate::backend::Backend;
use crate::object_ref::ObjectId;

/// The longest one `wait` of a round blocks before new subscriptions are taken in.
pub const ROUND: Duration = Duration::from_millis(5);

/// How long the thread stays after the last subscription was served.
pub const IDLE_EXIT: Duration = Duration::from_secs(1);

/// The longest the thread spends fetching the values of `Local` subscriptions in one round;
/// one not fetched by then fires anyway, and its future samples and subscribes again.
const FETCH_LIMIT: Duration = Duration::from_secs(1);

struct Queue {
    new: Vec<Subscription>,
    running: bool,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    new: Vec::new(),
    running: false,
});
static ARRIVED: Condvar = Condvar::new();

fn lock() -> std::sync::MutexGuard<'static, Queue> {
    QUEUE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves `subscription` from the helper thread, starting it if it is not running.
pub fn serve(subscription: Subscription) {
    let mut queue = lock();
    queue.new.push(subscription);
    if queue.running {
        ARRIVED.notify_one();
        return;
    }
    let started = std::thread::Builder::new()
        .name("unidist-ready".into())
        .spawn(run);
    match started {
        Ok(_) => queue.running = true,
        Err(e) => {
            // Without the thread nobody would fire these: fire them now, so their futures
            // sample again (and try again to start the thread) instead of hanging.
            let orphans = std::mem::take(&mut queue.new);
            drop(queue);
            tracing::warn!(error = %e, "cannot start the unidist-ready thread");
            orphans.into_iter().for_each(Subscription::fire);
        }
    }
}

fn run() {
    let mut subs: Vec<Subscription> = Vec::new();
    let mut settled: HashSet<(usize, ObjectId)> = HashSet::new();
    loop {
        {
            let mut queue = lock();
            subs.append(&mut queue.new);
            subs.retain(Subscription::is_wanted);
            if subs.is_empty() {
                let (mut q, _) = ARRIVED
                    .wait_timeout(queue, IDLE_EXIT)
                    .unwrap_or_else(|p| p.into_inner());
                subs.append(&mut q.new);
                if subs.is_empty() {
                    q.running = false;
                    return;
                }
            }
        }
        serve_round(&mut subs, &mut settled);
    }
}

/// The address of a backend, which identifies it while a weak handle keeps it allocated.
fn key(b: &Weak<dyn Backend>) -> usize {
    b.as_ptr() as *const () as usize
}

/// One round: per backend, wait for any watched object, then fire what is satisfied.
fn serve_round(subs: &mut Vec<Subscription>, settled: &mut HashSet<(usize, ObjectId)>) {
    let mut groups: Vec<(Weak<dyn Backend>, Vec<Subscription>)> = Vec::new();
    for s in subs.drain(..) {
        match groups.iter_mut().find(|(b, _)| s.is_for(b)) {
            Some((_, g)) => g.push(s),
            None => groups.push((s.backend_weak().clone(), vec![s])),
        }
    }
    let slice = ROUND / u32::try_from(groups.len()).unwrap_or(u32::MAX).max(1);
    for (weak, group) in groups {
        let Some(backend) = weak.upgrade() else {
            // The runtime is gone: the futures find out when they sample.
            group.into_iter().for_each(Subscription::fire);
            continue;
        };
        let k = key(&weak);
        let mut pending: Vec<ObjectId> = group
            .iter()
            .flat_map(|s| s.ids().iter().copied())
            .filter(|id| !settled.contains(&(k, *id)))
            .collect();
        pending.sort_unstable();
        pending.dedup();
        if !pending.is_empty() {
            match backend.wait(&pending, 1, Some(slice)) {
                Ok(flags) => {
                    for (id, f) in pending.iter().zip(flags) {
                        if f {
                            settled.insert((k, *id));
                        }
                    }
                }
                Err(_) => {
                    // Shut down, or the ids are unknown: sampling gives the error.
                    group.into_iter().for_each(Subscription::fire);
                    continue;
                }
            }
        }
        let (done, waiting): (Vec<_>, Vec<_>) = group.into_iter().partition(|s| {
            s.ids()
                .iter()
                .filter(|id| settled.contains(&(k, **id)))
                .count()
                >= s.at_least()
        });
        let mut fetch: Vec<ObjectId> = done
            .iter()
            .filter(|s| s.readiness() == Readiness::Local)
            .flat_map(|s| s.ids().iter().copied())
            .filter(|id| settled.contains(&(k, *id)))
            .collect();
        fetch.sort_unstable();
        fetch.dedup();
        if !fetch.is_empty() {
            // Only the transfer matters here; the futures read the values themselves.
            let _ = backend.get(&fetch, Some(FETCH_LIMIT));
        }
        done.into_iter().for_each(Subscription::fire);
        subs.extend(waiting);
    }
    // Forget settled ids nobody watches any more (a freed id could otherwise be mistaken for
    // settled if it were ever watched again).
    let watched: HashSet<(usize, ObjectId)> = subs
        .iter()
        .flat_map(|s| {
            let k = key(s.backend_weak());
            s.ids().iter().map(move |id| (k, *id))
        })
        .collect();
    settled.retain(|e| watched.contains(e));
}
