//! Test support: a runtime guard, typed helpers over the `Backend` trait, and a time bound.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use unidist_core::registry::{ActorClassEntry, ActorMethodEntry, RemoteFunction};
use unidist_core::{
    runtime, ActorCall, ActorSpec, AnyRef, Arg, Backend, IntoArg, ObjectRef, RawActorHandle,
    Result, TaskSpec, Value,
};
use unidist_pymp::PoolOptions;

/// The runtime slot is process-wide: tests of one binary take turns.
static LOCK: Mutex<()> = Mutex::new(());

/// A running pool backend installed as the current runtime; shut down on drop.
pub struct Rt {
    _turn: MutexGuard<'static, ()>,
}

pub fn runtime(threads: usize) -> Rt {
    runtime_with(PoolOptions::new(threads))
}

pub fn runtime_with(options: PoolOptions) -> Rt {
    let turn = turn();
    start_backend(options);
    Rt { _turn: turn }
}

impl Drop for Rt {
    fn drop(&mut self) {
        stop_backend();
    }
}

/// This test's turn at the process-wide runtime slot.
pub fn turn() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts a backend and installs it; call with the turn held.
pub fn start_backend(options: PoolOptions) {
    if let Some(old) = runtime::take() {
        let _ = old.shutdown();
    }
    let b = unidist_pymp::start_with(options).expect("the pool backend starts");
    runtime::install(b).expect("no other backend is installed");
}

/// Shuts the installed backend down and removes it; call with the turn held.
pub fn stop_backend() {
    if let Some(b) = runtime::take() {
        b.shutdown().expect("shutdown succeeds");
    }
}

pub fn backend() -> Arc<dyn Backend> {
    runtime::current().expect("a backend is installed")
}

/// Runs `f` on its own thread and fails the test if it does not finish within `limit`.
pub fn bounded<R: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => r,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

pub fn val<T: Value>(v: T) -> Arg {
    IntoArg::<T>::into_arg(v)
}

pub fn by_ref<T: Value>(r: &ObjectRef<T>) -> Arg {
    IntoArg::<T>::into_arg(r)
}

pub fn submit_n(f: &'static RemoteFunction, args: Vec<Arg>) -> Result<Vec<AnyRef>> {
    let b = backend();
    let ids = b.submit(TaskSpec {
        function: f,
        args,
        options: Default::default(),
    })?;
    Ok(ids.into_iter().map(|id| AnyRef::live(id, &b)).collect())
}

pub fn remote<T>(f: &'static RemoteFunction, args: Vec<Arg>) -> ObjectRef<T> {
    match submit_n(f, args) {
        Ok(mut refs) => ObjectRef::from_any(refs.remove(0)),
        Err(e) => ObjectRef::failed(e),
    }
}

pub fn put<T: Value>(v: T) -> ObjectRef<T> {
    let b = backend();
    let id = b.put(Arc::new(v)).expect("put succeeds");
    ObjectRef::from_any(AnyRef::live(id, &b))
}

pub fn get<T: Value>(r: &ObjectRef<T>) -> Result<T> {
    let (id, b) = r.as_any().resolve()?;
    b.get(&[id], None)?.remove(0).take()
}

pub fn get_timeout<T: Value>(r: &ObjectRef<T>, t: Duration) -> Result<T> {
    let (id, b) = r.as_any().resolve()?;
    b.get(&[id], Some(t))?.remove(0).take()
}

pub fn get_all<T: Value>(refs: &[ObjectRef<T>]) -> Result<Vec<T>> {
    let b = backend();
    let ids: Vec<_> = refs.iter().map(|r| r.id()).collect::<Result<_>>()?;
    b.get(&ids, None)?.iter().map(|p| p.take()).collect()
}

pub fn wait<T>(refs: &[ObjectRef<T>], n: usize, timeout: Option<Duration>) -> Result<Vec<bool>> {
    let b = backend();
    let ids: Vec<_> = refs.iter().map(|r| r.id()).collect::<Result<_>>()?;
    b.wait(&ids, n, timeout)
}

pub fn create(class: &'static ActorClassEntry, args: Vec<Arg>) -> RawActorHandle {
    let b = backend();
    match b.create_actor(ActorSpec {
        class,
        args,
        options: Default::default(),
    }) {
        Ok(id) => RawActorHandle::live(id, class, &b),
        Err(e) => RawActorHandle::failed(e),
    }
}

pub fn call<T>(
    h: &RawActorHandle,
    method: &'static ActorMethodEntry,
    args: Vec<Arg>,
) -> ObjectRef<T> {
    let r = h.resolve().and_then(|(actor, b)| {
        let ids = b.call_actor(ActorCall {
            actor,
            method,
            args,
        })?;
        Ok(AnyRef::live(ids[0], &b))
    });
    match r {
        Ok(r) => ObjectRef::from_any(r),
        Err(e) => ObjectRef::failed(e),
    }
}

/// Polls `cond` until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Threads of this process whose name starts with `prefix`.
pub fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                .filter(|n| n.starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}
