//! Tests of the futures and of the provided `on_ready` (the shared helper thread), on a fake
//! backend whose objects become ready when a test says so.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::backend::{ActorCall, ActorSpec, ClusterResources, TaskSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::object_ref::{AnyRef, ObjectRef};
use crate::value::{ErasedValue, Payload};
use crate::ActorId;

/// Objects that are pending until [`Gate::settle`]; no native `on_ready`, so the helper thread
/// serves every await.
#[derive(Default)]
struct Gate {
    objects: Mutex<HashMap<ObjectId, Option<Result<i64>>>>,
    changed: Condvar,
    next: AtomicUsize,
    waits: AtomicUsize,
}

impl Gate {
    fn start() -> (Arc<Gate>, Arc<dyn Backend>) {
        let gate = Arc::new(Gate::default());
        let backend: Arc<dyn Backend> = gate.clone();
        (gate, backend)
    }

    fn pending(&self, backend: &Arc<dyn Backend>) -> ObjectRef<i64> {
        let id = ObjectId::new(0, self.next.fetch_add(1, Ordering::Relaxed) as u64);
        self.objects.lock().unwrap().insert(id, None);
        ObjectRef::from_any(AnyRef::live(id, backend))
    }

    fn settle(&self, r: &ObjectRef<i64>, v: Result<i64>) {
        self.objects
            .lock()
            .unwrap()
            .insert(r.id().unwrap(), Some(v));
        self.changed.notify_all();
    }

    fn ready_of(&self, ids: &[ObjectId], timeout: Option<Duration>, n: usize) -> Vec<bool> {
        let end = timeout.map(|t| Instant::now() + t);
        let mut objects = self.objects.lock().unwrap();
        loop {
            let flags: Vec<bool> = ids
                .iter()
                .map(|id| !matches!(objects.get(id), Some(None)))
                .collect();
            let now = Instant::now();
            if flags.iter().filter(|f| **f).count() >= n || end.is_some_and(|e| now >= e) {
                return flags;
            }
            let wait = end.map_or(Duration::from_millis(50), |e| e - now);
            objects = self.changed.wait_timeout(objects, wait).unwrap().0;
        }
    }
}

impl Backend for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }
    fn put(&self, _: Arc<dyn ErasedValue>) -> Result<ObjectId> {
        unimplemented!("not used by these tests")
    }
    fn submit(&self, _: TaskSpec) -> Result<Vec<ObjectId>> {
        unimplemented!("not used by these tests")
    }
    fn get(&self, ids: &[ObjectId], timeout: Option<Duration>) -> Result<Vec<Payload>> {
        if self.ready_of(ids, timeout, ids.len()).contains(&false) {
            return Err(Error::Timeout {
                what: "object".into(),
                after: timeout.unwrap_or_default(),
            });
        }
        let objects = self.objects.lock().unwrap();
        ids.iter()
            .map(|id| match objects.get(id) {
                Some(Some(Ok(v))) => Ok(Payload::local(*v)),
                Some(Some(Err(e))) => Err(e.clone()),
                _ => Err(Error::StaleRef {
                    what: id.to_string(),
                }),
            })
            .collect()
    }
    fn wait(&self, ids: &[ObjectId], n: usize, timeout: Option<Duration>) -> Result<Vec<bool>> {
        self.waits.fetch_add(1, Ordering::Relaxed);
        Ok(self.ready_of(ids, timeout, n))
    }
    fn release(&self, _: ObjectId) {}
    fn create_actor(&self, _: ActorSpec) -> Result<ActorId> {
        unimplemented!("not used by these tests")
    }
    fn call_actor(&self, _: ActorCall) -> Result<Vec<ObjectId>> {
        unimplemented!("not used by these tests")
    }
    fn kill_actor(&self, _: ActorId) -> Result<()> {
        Ok(())
    }
    fn num_cpus(&self) -> usize {
        1
    }
    fn cluster_resources(&self) -> Result<ClusterResources> {
        Ok(ClusterResources::new())
    }
    fn shutdown(&self) -> Result<()> {
        Ok(())
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn await_wakes_when_another_thread_settles_the_object() {
    let (gate, backend) = Gate::start();
    let refs: Vec<ObjectRef<i64>> = (0..200).map(|_| gate.pending(&backend)).collect();
    let settler = {
        let gate = gate.clone();
        let refs = refs.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            for (i, r) in refs.iter().enumerate() {
                gate.settle(r, Ok(i as i64 * 3));
            }
        })
    };
    let rt = current_thread();
    let sum = rt.block_on(async {
        let tasks: Vec<_> = refs
            .iter()
            .cloned()
            .map(|r| tokio::spawn(r.into_future()))
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .expect("an await did not finish")
                .unwrap()
                .unwrap();
        }
        sum
    });
    settler.join().unwrap();
    assert_eq!(sum, (0..200).map(|i| i * 3).sum::<i64>());
}

#[test]
fn a_failed_object_gives_its_error() {
    let (gate, backend) = Gate::start();
    let r = gate.pending(&backend);
    gate.settle(&r, Err(Error::ShutDown));
    let e = current_thread().block_on(r.into_future()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ShutDown);
}

#[test]
fn wait_future_returns_once_enough_are_ready() {
    let (gate, backend) = Gate::start();
    let refs: Vec<ObjectRef<i64>> = (0..4).map(|_| gate.pending(&backend)).collect();
    gate.settle(&refs[2], Ok(2));
    let rt = current_thread();
    let (ready, rest) = rt
        .block_on(WaitFuture::new(refs.clone(), 1))
        .expect("wait of one");
    assert_eq!(ready, vec![refs[2].clone()]);
    assert_eq!(rest.len(), 3);
    let later = {
        let gate = gate.clone();
        let r = refs[0].clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            gate.settle(&r, Ok(0));
        })
    };
    let (ready, rest) = rt
        .block_on(WaitFuture::new(refs.clone(), 2))
        .expect("wait of two");
    later.join().unwrap();
    assert_eq!(ready, vec![refs[0].clone(), refs[2].clone()]);
    assert_eq!(rest, vec![refs[1].clone(), refs[3].clone()]);
    let e = rt.block_on(WaitFuture::new(refs.clone(), 5)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn a_dropped_future_is_no_longer_wanted_and_a_dropped_notify_fires() {
    let reg = Registration::new(futures_waker());
    let notify = Notify::waking(&reg);
    assert!(notify.is_wanted());
    drop(reg);
    assert!(!notify.is_wanted(), "the future's registration is gone");
    let fired = Arc::new(AtomicUsize::new(0));
    let counted = {
        let fired = fired.clone();
        Notify::new(move || {
            fired.fetch_add(1, Ordering::SeqCst);
        })
    };
    drop(counted);
    assert_eq!(fired.load(Ordering::SeqCst), 1, "dropping unfired fires");
}

#[test]
fn subscription_clamps_at_least() {
    let (_gate, backend) = Gate::start();
    let ids = vec![ObjectId::new(0, 1), ObjectId::new(0, 2)];
    let s = Subscription::new(&backend, ids, 9, Readiness::Settled, Notify::new(|| {}));
    assert_eq!(s.at_least(), 2);
    let s = Subscription::new(
        &backend,
        Vec::new(),
        1,
        Readiness::Settled,
        Notify::new(|| {}),
    );
    assert_eq!(s.at_least(), 0);
}

#[test]
fn one_helper_thread_serves_every_pending_await() {
    let (gate, backend) = Gate::start();
    let refs: Vec<ObjectRef<i64>> = (0..1000).map(|_| gate.pending(&backend)).collect();
    let rt = current_thread();
    let handles: Vec<_> = rt.block_on(async {
        let hs: Vec<_> = refs
            .iter()
            .cloned()
            .map(|r| tokio::spawn(r.into_future()))
            .collect();
        // Let every task poll once and subscribe.
        tokio::time::sleep(Duration::from_millis(50)).await;
        hs
    });
    assert!(
        helper_threads() <= 1,
        "{} helper threads for 1000 awaits",
        helper_threads()
    );
    // Dropped futures are forgotten: aborting half of them leaves their objects unwatched.
    for h in &handles[..500] {
        h.abort();
    }
    for r in &refs {
        gate.settle(r, Ok(1));
    }
    let done: i64 = rt.block_on(async {
        let mut n = 0;
        for h in handles.into_iter().skip(500) {
            n += tokio::time::timeout(Duration::from_secs(20), h)
                .await
                .expect("an await did not finish")
                .unwrap()
                .unwrap();
        }
        n
    });
    assert_eq!(done, 500);
}

/// Threads of this process named like the helper thread (Linux; 0 elsewhere).
fn helper_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                .filter(|n| n.trim() == "unidist-ready")
                .count()
        })
        .unwrap_or(0)
}

/// A waker that does nothing, for registrations that are never polled.
fn futures_waker() -> &'static std::task::Waker {
    std::task::Waker::noop()
}
