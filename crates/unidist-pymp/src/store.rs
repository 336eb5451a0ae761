//! The object store: a sharded map from object id to its state, reference count and waiters.
//!
//! Every object is one [`Slot`]: pending (with the tasks, threads and futures waiting for it),
//! ready (the value, shared as an `Arc`), or failed (the error every reader gets). Values are
//! never copied or serialized here.
//!
//! Locking rule: nothing is dropped while a shard lock is held. A stored value may hold
//! `ObjectRef`s, and a waiting task holds its argument refs; dropping either calls back into
//! [`Store::release`], which takes a shard lock again. So every path takes what it removes out of
//! the map, unlocks, and only then drops it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::Thread;

use parking_lot::Mutex;
use unidist_core::{Error, ErasedValue, ObjectId};

use crate::tasks::TaskCell;

/// A stored value.
pub(crate) type Value = Arc<dyn ErasedValue>;

/// Object ids are unique across every backend instance of the process, so a ref kept from
/// before a `shutdown` can never name an object of the next instance.
static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);

const SHARDS: usize = 64;

/// Consecutive object ids: the outputs of one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdRange {
    first: u64,
    len: usize,
}

impl IdRange {
    pub(crate) fn iter(self) -> impl Iterator<Item = ObjectId> {
        (self.first..self.first + self.len as u64).map(|seq| ObjectId::new(0, seq))
    }

    pub(crate) fn is_empty(self) -> bool {
        self.len == 0
    }

    pub(crate) fn to_vec(self) -> Vec<ObjectId> {
        self.iter().collect()
    }
}

/// Hashes the sequence number of an id; ids are dense integers, so one multiply spreads them.
#[derive(Default)]
pub(crate) struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type Map = HashMap<u64, Slot, BuildHasherDefault<SeqHasher>>;

/// One shard, on its own cache line so that threads working on neighbouring ids do not
/// contend on the line.
#[repr(align(64))]
struct Shard(Mutex<Map>);

/// What waits for a pending object.
pub(crate) enum Waiter {
    /// A task whose argument this is; it runs when its last pending argument is ready.
    Task(Arc<TaskCell>),
    /// A thread blocked in `get` or `wait`.
    Thread(Arc<Signal>),
    /// An actor call waiting for an argument on its actor's event loop.
    Async(tokio::sync::oneshot::Sender<()>),
}

enum State {
    /// Not settled yet; `producer` is the task that will settle it, if a task will.
    Pending {
        waiters: Vec<Waiter>,
        producer: Option<Arc<TaskCell>>,
    },
    Ready(Value),
    Failed(Error),
}

struct Slot {
    state: State,
    /// Process-local references (live `AnyRef`s) to the object.
    refs: usize,
}

/// What a lookup found.
pub(crate) enum Lookup {
    Ready(Value),
    Failed(Error),
    /// Pending, with the task that will settle it (which a blocked worker may run itself).
    Pending(Option<Arc<TaskCell>>),
    Missing,
}

/// Wakes a thread blocked in `get` or `wait`: counts the objects that became ready.
pub(crate) struct Signal {
    hits: AtomicUsize,
    thread: Thread,
}

impl Signal {
    /// A signal that wakes the calling thread.
    pub(crate) fn for_current_thread() -> Arc<Self> {
        Arc::new(Signal {
            hits: AtomicUsize::new(0),
            thread: std::thread::current(),
        })
    }

    /// How many registered objects became ready (or failed) so far.
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::Acquire)
    }

    fn notify(&self) {
        self.hits.fetch_add(1, Ordering::Release);
        self.thread.unpark();
    }
}

/// The sharded object store.
pub(crate) struct Store {
    shards: Box<[Shard]>,
}

impl Store {
    pub(crate) fn new() -> Self {
        Store {
            shards: (0..SHARDS).map(|_| Shard(Mutex::new(Map::default()))).collect(),
        }
    }

    fn shard(&self, seq: u64) -> &Mutex<Map> {
        &self.shards[(seq % SHARDS as u64) as usize].0
    }

    fn next_id() -> ObjectId {
        ObjectId::new(0, NEXT_SEQ.fetch_add(1, Ordering::Relaxed))
    }

    /// `n` consecutive ids.
    fn next_ids(n: usize) -> IdRange {
        IdRange {
            first: NEXT_SEQ.fetch_add(n as u64, Ordering::Relaxed),
            len: n,
        }
    }

    /// Stores a ready value with one reference.
    pub(crate) fn insert_ready(&self, value: Value) -> ObjectId {
        let id = Self::next_id();
        let slot = Slot {
            state: State::Ready(value),
            refs: 1,
        };
        self.shard(id.seq).lock().insert(id.seq, slot);
        id
    }

    /// Allocates `n` pending objects with one reference each, to be settled by `producer`.
    pub(crate) fn insert_pending(&self, n: usize, producer: Option<&Arc<TaskCell>>) -> IdRange {
        let ids = Self::next_ids(n);
        for id in ids.iter() {
            let slot = Slot {
                state: State::Pending {
                    waiters: Vec::new(),
                    producer: producer.cloned(),
                },
                refs: 1,
            };
            self.shard(id.seq).lock().insert(id.seq, slot);
        }
        ids
    }

    /// The state of an object, with the value or error when it has one.
    pub(crate) fn lookup(&self, id: ObjectId) -> Lookup {
        match self.shard(id.seq).lock().get(&id.seq) {
            Some(Slot { state: State::Ready(v), .. }) => Lookup::Ready(v.clone()),
            Some(Slot { state: State::Failed(e), .. }) => Lookup::Failed(e.clone()),
            Some(Slot {
                state: State::Pending { producer, .. },
                ..
            }) => Lookup::Pending(producer.clone()),
            None => Lookup::Missing,
        }
    }

    /// True if the object is ready, failed or gone (a `get` of it would not block).
    pub(crate) fn is_settled(&self, id: ObjectId) -> bool {
        !matches!(
            self.shard(id.seq).lock().get(&id.seq),
            Some(Slot {
                state: State::Pending { .. },
                ..
            })
        )
    }

    /// Adds `waiter` to the object if it is pending and returns true; otherwise returns false
    /// and the waiter is dropped (after the lock is released).
    pub(crate) fn register(&self, id: ObjectId, waiter: Waiter) -> bool {
        let rejected = {
            let mut shard = self.shard(id.seq).lock();
            match shard.get_mut(&id.seq) {
                Some(Slot {
                    state: State::Pending { waiters, .. },
                    ..
                }) => {
                    waiters.push(waiter);
                    return true;
                }
                _ => waiter,
            }
        };
        drop(rejected);
        false
    }

    /// A receiver that fires when the object stops being pending, or `None` if it is not
    /// pending now.
    pub(crate) fn when_settled(&self, id: ObjectId) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.register(id, Waiter::Async(tx)).then_some(rx)
    }

    /// Settles a pending object with its value or error and wakes its waiters. An object that
    /// is gone (every ref was dropped before its task finished, or the store was cleared) just
    /// drops the result.
    pub(crate) fn complete(&self, id: ObjectId, result: Result<Value, Error>) -> Vec<Waiter> {
        let mut shard = self.shard(id.seq).lock();
        let Some(slot) = shard.get_mut(&id.seq) else {
            drop(shard);
            drop(result);
            return Vec::new();
        };
        let new_state = match result {
            Ok(v) => State::Ready(v),
            Err(e) => State::Failed(e),
        };
        let old = std::mem::replace(&mut slot.state, new_state);
        drop(shard);
        match old {
            State::Pending { waiters, .. } => waiters,
            // Settling twice is a bug in the caller; keep the first result.
            other => {
                tracing::error!(object = %id, "an object was settled twice");
                drop(other);
                Vec::new()
            }
        }
    }

    /// Adds one reference; false if the object is gone.
    pub(crate) fn add_ref(&self, id: ObjectId) -> bool {
        match self.shard(id.seq).lock().get_mut(&id.seq) {
            Some(slot) => {
                slot.refs += 1;
                true
            }
            None => false,
        }
    }

    /// Drops one reference; the object is removed with the last one. A pending object removed
    /// this way lets its task run to completion, which then finds nothing to settle.
    pub(crate) fn release(&self, id: ObjectId) {
        let removed = {
            let mut shard = self.shard(id.seq).lock();
            match shard.get_mut(&id.seq) {
                Some(slot) if slot.refs > 1 => {
                    slot.refs -= 1;
                    None
                }
                Some(_) => shard.remove(&id.seq),
                None => None,
            }
        };
        // The value is dropped here, with no lock held, because it may hold refs itself.
        drop(removed);
    }

    /// Removes every object and returns the waiters of pending ones, to be woken by the
    /// caller; values are dropped after each shard is unlocked.
    pub(crate) fn clear(&self) -> Vec<Waiter> {
        let mut waiters = Vec::new();
        for shard in self.shards.iter() {
            let map = std::mem::take(&mut *shard.0.lock());
            for (_, slot) in map {
                if let State::Pending { waiters: w, .. } = slot.state {
                    waiters.extend(w);
                }
            }
        }
        waiters
    }

    /// The number of objects stored.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.lock().len()).sum()
    }
}

/// Wakes every waiter of an object that just settled; tasks whose last argument this was are
/// handed to `launch`.
pub(crate) fn wake(waiters: Vec<Waiter>, mut launch: impl FnMut(Arc<TaskCell>)) {
    for w in waiters {
        match w {
            Waiter::Task(t) => {
                if t.argument_settled() {
                    launch(t);
                }
            }
            Waiter::Thread(s) => s.notify(),
            Waiter::Async(tx) => {
                let _ = tx.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: i64) -> Value {
        Arc::new(v)
    }

    #[test]
    fn refcount_frees_at_zero() {
        let s = Store::new();
        let id = s.insert_ready(value(1));
        assert!(s.add_ref(id));
        s.release(id);
        assert!(matches!(s.lookup(id), Lookup::Ready(_)));
        s.release(id);
        assert!(matches!(s.lookup(id), Lookup::Missing));
        // Releasing a gone object is harmless.
        s.release(id);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn pending_object_released_then_completed_is_discarded() {
        let s = Store::new();
        let id = s.insert_pending(1, None).to_vec()[0];
        s.release(id);
        let waiters = s.complete(id, Ok(value(3)));
        assert!(waiters.is_empty());
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn complete_wakes_registered_signal() {
        let s = Store::new();
        let id = s.insert_pending(1, None).to_vec()[0];
        let sig = Signal::for_current_thread();
        assert!(s.register(id, Waiter::Thread(sig.clone())));
        assert!(!s.is_settled(id));
        wake(s.complete(id, Err(Error::ShutDown)), |_| unreachable!());
        assert_eq!(sig.hits(), 1);
        assert!(matches!(s.lookup(id), Lookup::Failed(Error::ShutDown)));
        // A settled object takes no more waiters.
        assert!(!s.register(id, Waiter::Thread(sig.clone())));
    }

    #[test]
    fn ids_are_unique_across_stores() {
        let a = Store::new().insert_ready(value(1));
        let b = Store::new().insert_ready(value(1));
        assert_ne!(a, b);
    }
}
