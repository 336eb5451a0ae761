//! [`StoreOnly`]: a backend that keeps `put` values and refuses every other operation, for
//! tests of code above the backends (the facade) that must not name a real backend.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use unidist_core::{
    ActorCall, ActorId, ActorSpec, Backend, ClusterResources, ErasedValue, Error, ObjectId,
    Payload, Result, TaskSpec,
};

const NAME: &str = "store-only";

/// A backend with an object store and nothing else: `put`, `get`, `wait` and `release` work,
/// tasks and actors are [`Error::Unsupported`].
#[derive(Default)]
pub struct StoreOnly {
    next: AtomicU64,
    objects: Mutex<HashMap<ObjectId, Arc<dyn ErasedValue>>>,
}

impl StoreOnly {
    /// A new, empty backend as a trait object.
    pub fn start() -> Arc<dyn Backend> {
        Arc::new(StoreOnly::default())
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectId, Arc<dyn ErasedValue>>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn unsupported(what: &str) -> Error {
    Error::Unsupported {
        what: what.to_string(),
        backend: NAME,
    }
}

impl Backend for StoreOnly {
    fn name(&self) -> &'static str {
        NAME
    }

    fn put(&self, value: Arc<dyn ErasedValue>) -> Result<ObjectId> {
        let id = ObjectId::new(0, self.next.fetch_add(1, Ordering::Relaxed));
        self.objects().insert(id, value);
        Ok(id)
    }

    fn submit(&self, _: TaskSpec) -> Result<Vec<ObjectId>> {
        Err(unsupported("submitting a task"))
    }

    fn get(&self, ids: &[ObjectId], _: Option<Duration>) -> Result<Vec<Payload>> {
        let objects = self.objects();
        ids.iter()
            .map(|id| match objects.get(id) {
                Some(v) => Ok(Payload::Local(v.clone())),
                None => Err(Error::backend(NAME, format!("{id} is not stored"))),
            })
            .collect()
    }

    fn wait(&self, ids: &[ObjectId], _: usize, _: Option<Duration>) -> Result<Vec<bool>> {
        Ok(vec![true; ids.len()])
    }

    fn release(&self, id: ObjectId) {
        let removed = self.objects().remove(&id);
        // Dropped outside the lock: the value may hold refs whose drop releases again.
        drop(removed);
    }

    fn create_actor(&self, _: ActorSpec) -> Result<ActorId> {
        Err(unsupported("creating an actor"))
    }

    fn call_actor(&self, _: ActorCall) -> Result<Vec<ObjectId>> {
        Err(unsupported("calling an actor"))
    }

    fn kill_actor(&self, _: ActorId) -> Result<()> {
        Err(unsupported("killing an actor"))
    }

    fn num_cpus(&self) -> usize {
        1
    }

    fn cluster_resources(&self) -> Result<ClusterResources> {
        let cpus = BTreeMap::from([("CPU".to_string(), 1.0)]);
        Ok(BTreeMap::from([(self.get_ip(), cpus)]))
    }

    fn shutdown(&self) -> Result<()> {
        let all = std::mem::take(&mut *self.objects());
        drop(all);
        Ok(())
    }
}
