//! The object store: a sharded map from object id to its state, reference count and waiters.
//!
//! Every object is one [`Slot`]: pending (with the tasks, threads, actor calls and awaiting
//! futures waiting for it), ready (the value, shared as an `Arc`), or failed (the error every
//! reader gets). Values are never copied or serialized here.
//!
//! Locking rule: nothing is dropped while a shard lock is held. A stored value may hold
//! `ObjectRef`s, and a waiting task holds its argument refs; dropping either calls back into
//! [`Store::release`], which takes a shard lock again. So every path takes what it removes out of
//! the map, unlocks, and only then drops it.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::Thread;

use parking_lot::Mutex;
use unidist_core::{ErasedValue, Error, Notify, ObjectId};

use crate::tasks::TaskCell;

/// A stored value.
pub(crate) type Value = Arc<dyn ErasedValue>;

/// Object ids are unique across every backend instance of the process, so a ref kept from
/// before a `shutdown` can never name an object of the next instance.
static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);

const SHARDS: usize = 64;
/// Consecutive ids go to one shard in runs of this many, so that a submitting loop and the
/// workers settling its tasks mostly lock different shards.
const RUN_BITS: u32 = 5;
const SHARD_BITS: u32 = SHARDS.trailing_zeros();

fn shard_of(seq: u64) -> usize {
    ((seq >> RUN_BITS) as usize) & (SHARDS - 1)
}

/// The key of an id within its shard: the sequence number without the shard bits, so that the
/// ids of one shard are consecutive keys.
fn key_of(seq: u64) -> u64 {
    ((seq >> (RUN_BITS + SHARD_BITS)) << RUN_BITS) | (seq & ((1 << RUN_BITS) - 1))
}

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

/// Hashes a key to itself in the low bits, which pick the bucket, so that ids allocated
/// together sit in neighbouring buckets (the live ids are a sliding window of consecutive keys,
/// which then never collide), and repeats the low bits in the top seven, which the table uses
/// to tell keys apart within a group.
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
        self.0 = n ^ (n << 57);
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
    /// A future awaiting refs (`Backend::on_ready`).
    Ready(Arc<ReadyCount>),
}

/// Fires a readiness notification once a number of objects settled.
pub(crate) struct ReadyCount {
    left: AtomicUsize,
    notify: Mutex<Option<Notify>>,
}

impl ReadyCount {
    pub(crate) fn new(at_least: usize, notify: Notify) -> Arc<Self> {
        Arc::new(ReadyCount {
            left: AtomicUsize::new(at_least),
            notify: Mutex::new(Some(notify)),
        })
    }

    /// One more object settled; the one that completes the count fires the notification
    /// (outside the lock, which only guards taking it).
    pub(crate) fn hit(&self) {
        let before = self
            .left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if before == Ok(1) {
            let notify = self.notify.lock().take();
            if let Some(n) = notify {
                n.fire();
            }
        }
    }
}

/// The waiters of a pending object, boxed behind one pointer: most objects never have any,
/// and the slot stays small.
#[derive(Default)]
struct Waiters(Vec<Waiter>);

/// Kept small (24 bytes): slots are what the store's memory traffic is made of.
enum State {
    /// Not settled yet; `producer` is the task that will settle it, if a task will.
    Pending {
        waiters: Option<Box<Waiters>>,
        producer: Option<Arc<TaskCell>>,
    },
    Ready(Value),
    Failed(Arc<Error>),
}

struct Slot {
    state: State,
    /// Process-local references (live `AnyRef`s) to the object.
    refs: u32,
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
    /// Set when one of the registered objects failed: a `get` of several objects then looks
    /// for the error at once instead of waiting for the earlier ones.
    failure: AtomicBool,
    thread: Thread,
}

impl Signal {
    /// A signal that wakes the calling thread.
    pub(crate) fn for_current_thread() -> Arc<Self> {
        Arc::new(Signal {
            hits: AtomicUsize::new(0),
            failure: AtomicBool::new(false),
            thread: std::thread::current(),
        })
    }

    /// How many registered objects became ready (or failed) so far.
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::Acquire)
    }

    /// True once a registered object failed.
    pub(crate) fn saw_failure(&self) -> bool {
        self.failure.load(Ordering::Acquire)
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
            shards: (0..SHARDS)
                .map(|_| Shard(Mutex::new(Map::default())))
                .collect(),
        }
    }

    fn shard(&self, seq: u64) -> &Mutex<Map> {
        &self.shards[shard_of(seq)].0
    }

    fn next_id() -> ObjectId {
        ObjectId::new(0, NEXT_SEQ.fetch_add(1, Ordering::Relaxed))
    }

    /// `n` consecutive fresh ids, not yet in the store.
    pub(crate) fn next_ids(n: usize) -> IdRange {
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
        self.shard(id.seq).lock().insert(key_of(id.seq), slot);
        id
    }

    /// Allocates `n` pending objects with one reference each.
    pub(crate) fn insert_pending(&self, n: usize) -> IdRange {
        let ids = Self::next_ids(n);
        self.insert_pending_ids(ids, None);
        ids
    }

    /// Inserts `ids` (from [`Store::next_ids`]) as pending objects with one reference each, to
    /// be settled by `producer`.
    pub(crate) fn insert_pending_ids(&self, ids: IdRange, producer: Option<&Arc<TaskCell>>) {
        for id in ids.iter() {
            let slot = Slot {
                state: State::Pending {
                    waiters: None,
                    producer: producer.cloned(),
                },
                refs: 1,
            };
            self.shard(id.seq).lock().insert(key_of(id.seq), slot);
        }
    }

    /// The state of an object, with the value or error when it has one.
    pub(crate) fn lookup(&self, id: ObjectId) -> Lookup {
        match self.shard(id.seq).lock().get(&key_of(id.seq)) {
            Some(Slot {
                state: State::Ready(v),
                ..
            }) => Lookup::Ready(v.clone()),
            Some(Slot {
                state: State::Failed(e),
                ..
            }) => Lookup::Failed(Error::clone(e)),
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
            self.shard(id.seq).lock().get(&key_of(id.seq)),
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
            match shard.get_mut(&key_of(id.seq)) {
                Some(Slot {
                    state: State::Pending { waiters, .. },
                    ..
                }) => {
                    waiters.get_or_insert_with(Default::default).0.push(waiter);
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
        let Some(slot) = shard.get_mut(&key_of(id.seq)) else {
            drop(shard);
            drop(result);
            return Vec::new();
        };
        let failed = result.is_err();
        let new_state = match result {
            Ok(v) => State::Ready(v),
            Err(e) => State::Failed(Arc::new(e)),
        };
        let old = std::mem::replace(&mut slot.state, new_state);
        drop(shard);
        match old {
            State::Pending { waiters, .. } => {
                let waiters = waiters.map(|w| w.0).unwrap_or_default();
                if failed {
                    for w in &waiters {
                        if let Waiter::Thread(s) = w {
                            s.failure.store(true, Ordering::Release);
                        }
                    }
                }
                waiters
            }
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
        match self.shard(id.seq).lock().get_mut(&key_of(id.seq)) {
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
            match shard.get_mut(&key_of(id.seq)) {
                Some(slot) if slot.refs > 1 => {
                    slot.refs -= 1;
                    None
                }
                Some(_) => shard.remove(&key_of(id.seq)),
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
                if let State::Pending {
                    waiters: Some(w), ..
                } = slot.state
                {
                    waiters.extend(w.0);
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
            Waiter::Ready(count) => count.hit(),
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
        let id = s.insert_pending(1).to_vec()[0];
        s.release(id);
        let waiters = s.complete(id, Ok(value(3)));
        assert!(waiters.is_empty());
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn complete_wakes_registered_signal() {
        let s = Store::new();
        let id = s.insert_pending(1).to_vec()[0];
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
    fn ready_count_fires_once_when_enough_settle() {
        let s = Store::new();
        let ids = s.insert_pending(3).to_vec();
        let fired = Arc::new(AtomicUsize::new(0));
        let notify = {
            let fired = fired.clone();
            Notify::new(move || {
                fired.fetch_add(1, Ordering::SeqCst);
            })
        };
        let count = ReadyCount::new(2, notify);
        for id in &ids {
            assert!(s.register(*id, Waiter::Ready(count.clone())));
        }
        drop(count);
        wake(s.complete(ids[0], Ok(value(0))), |_| unreachable!());
        assert_eq!(fired.load(Ordering::SeqCst), 0, "one of two settled");
        wake(s.complete(ids[1], Ok(value(1))), |_| unreachable!());
        assert_eq!(fired.load(Ordering::SeqCst), 1, "two of two settled");
        wake(s.complete(ids[2], Ok(value(2))), |_| unreachable!());
        assert_eq!(fired.load(Ordering::SeqCst), 1, "fires only once");
    }

    #[test]
    fn slots_stay_small() {
        assert!(
            std::mem::size_of::<Slot>() <= 32,
            "{}",
            std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn keys_of_one_shard_are_consecutive() {
        let seqs: Vec<u64> = (0..10_000u64).filter(|s| shard_of(*s) == 3).collect();
        let keys: Vec<u64> = seqs.iter().map(|s| key_of(*s)).collect();
        assert!(
            keys.windows(2).all(|w| w[1] == w[0] + 1),
            "{:?}",
            &keys[..40]
        );
        // Distinct ids of one shard never share a key.
        let mut sorted = keys.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len());
    }

    #[test]
    fn ids_are_unique_across_stores() {
        let a = Store::new().insert_ready(value(1));
        let b = Store::new().insert_ready(value(1));
        assert_ne!(a, b);
    }
}
