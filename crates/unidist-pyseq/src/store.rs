//! The object store: values in memory, each with a count of the process-local refs to it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use unidist_core::{ErasedValue, Error, ObjectId, Payload, Result};

use crate::NAME;

// Ids are unique across every runtime this process starts, so that an id from a runtime that was
// shut down can never name an object of a later one.
static NEXT_OBJECT: AtomicU64 = AtomicU64::new(1);

/// What an id stands for: a value, or the error of the call that should have produced it.
#[derive(Clone)]
pub(crate) enum Slot {
    Ready(Arc<dyn ErasedValue>),
    Failed(Error),
}

struct Entry {
    slot: Slot,
    refs: usize,
}

#[derive(Default)]
struct Objects {
    map: HashMap<ObjectId, Entry>,
    closed: bool,
}

/// Every object of one runtime.
///
/// Stored values may hold refs (an `ObjectRef` inside a value) whose `Drop` calls
/// [`release`](Store::release) again, so no value is ever dropped while the lock is held: each
/// method that removes entries hands them to its caller's scope, after the guard is gone.
#[derive(Default)]
pub(crate) struct Store {
    objects: Mutex<Objects>,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, Objects> {
        // User code never runs under this lock, so a poisoned lock means a panic in this crate's
        // bookkeeping between two consistent states; the map itself is still usable.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `slot` with one local ref and returns its new id.
    pub(crate) fn insert(&self, slot: Slot) -> Result<ObjectId> {
        let id = ObjectId::new(0, NEXT_OBJECT.fetch_add(1, Ordering::Relaxed));
        let mut objects = self.lock();
        if objects.closed {
            drop(objects);
            // `slot` is dropped here, after the guard.
            return Err(Error::ShutDown);
        }
        objects.map.insert(id, Entry { slot, refs: 1 });
        Ok(id)
    }

    /// The payload of `id`, or the error stored for it.
    pub(crate) fn get(&self, id: ObjectId) -> Result<Payload> {
        match self.slot(id)? {
            Slot::Ready(v) => Ok(Payload::Local(v)),
            Slot::Failed(e) => Err(e),
        }
    }

    /// What `id` stands for.
    pub(crate) fn slot(&self, id: ObjectId) -> Result<Slot> {
        let objects = self.lock();
        if objects.closed {
            return Err(Error::ShutDown);
        }
        match objects.map.get(&id) {
            Some(e) => Ok(e.slot.clone()),
            None => Err(unknown(id)),
        }
    }

    /// Fails unless every id is in the store.
    pub(crate) fn check_known(&self, ids: &[ObjectId]) -> Result<()> {
        let objects = self.lock();
        if objects.closed {
            return Err(Error::ShutDown);
        }
        match ids.iter().find(|id| !objects.map.contains_key(id)) {
            Some(id) => Err(unknown(*id)),
            None => Ok(()),
        }
    }

    /// Registers one more local ref to `id`.
    pub(crate) fn add_ref(&self, id: ObjectId) -> Result<()> {
        let mut objects = self.lock();
        if objects.closed {
            return Err(Error::ShutDown);
        }
        match objects.map.get_mut(&id) {
            Some(e) => {
                e.refs += 1;
                Ok(())
            }
            None => Err(unknown(id)),
        }
    }

    /// Drops one local ref to `id`, freeing the object at zero.
    pub(crate) fn release(&self, id: ObjectId) {
        let removed = {
            let mut objects = self.lock();
            match objects.map.get_mut(&id) {
                Some(e) if e.refs > 1 => {
                    e.refs -= 1;
                    None
                }
                Some(_) => objects.map.remove(&id),
                // After shutdown every object is gone already; a release then is expected.
                None => {
                    if !objects.closed {
                        tracing::debug!(%id, "release of an object that is not in the store");
                    }
                    None
                }
            }
        };
        // The value (and any ref inside it, which calls `release` again) is dropped here,
        // outside the lock.
        drop(removed);
    }

    /// Refuses every later call and frees every object.
    pub(crate) fn close(&self) {
        let all = {
            let mut objects = self.lock();
            objects.closed = true;
            std::mem::take(&mut objects.map)
        };
        drop(all);
    }

    /// How many objects are stored.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }
}

fn unknown(id: ObjectId) -> Error {
    Error::backend(
        NAME,
        format!(
            "{id} is not in the object store: it was freed when its last ref was dropped, or it \
             belongs to another runtime"
        ),
    )
}
