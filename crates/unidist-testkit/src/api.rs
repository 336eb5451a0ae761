//! What the facade does around the installed backend, for tests that use a backend directly:
//! typed refs from `put` and submissions, reads, and actor calls.

use std::sync::Arc;
use std::time::Duration;

use unidist_core::registry::{ActorClassEntry, ActorMethodEntry, RemoteFunction};
use unidist_core::{
    ActorCall, ActorSpec, AnyRef, Arg, IntoArg, ObjectRef, RawActorHandle, Result, TaskSpec, Value,
};

use crate::runtime::backend;

/// An argument given by value.
pub fn val<T: Value>(v: T) -> Arg {
    IntoArg::<T>::into_arg(v)
}

/// An argument given by ref.
pub fn by_ref<T: Value>(r: &ObjectRef<T>) -> Arg {
    IntoArg::<T>::into_arg(r)
}

/// Stores `v` in the installed backend.
pub fn put<T: Value>(v: T) -> ObjectRef<T> {
    let b = backend();
    match b.put(Arc::new(v)) {
        Ok(id) => ObjectRef::from_any(AnyRef::live(id, &b)),
        Err(e) => ObjectRef::failed(e),
    }
}

/// Reads the object, waiting for it.
pub fn get<T: Value>(r: &ObjectRef<T>) -> Result<T> {
    let (id, b) = r.as_any().resolve()?;
    b.get(&[id], None)?.remove(0).take()
}

/// Reads the object, waiting at most `timeout`.
pub fn get_timeout<T: Value>(r: &ObjectRef<T>, timeout: Duration) -> Result<T> {
    let (id, b) = r.as_any().resolve()?;
    b.get(&[id], Some(timeout))?.remove(0).take()
}

/// Reads every object, in order.
pub fn get_all<T: Value>(refs: &[ObjectRef<T>]) -> Result<Vec<T>> {
    let b = backend();
    let ids: Vec<_> = refs.iter().map(|r| r.id()).collect::<Result<_>>()?;
    b.get(&ids, None)?.iter().map(|p| p.take()).collect()
}

/// The readiness of each ref once `n` of them are ready or `timeout` passed.
pub fn wait<T>(refs: &[ObjectRef<T>], n: usize, timeout: Option<Duration>) -> Result<Vec<bool>> {
    let b = backend();
    let ids: Vec<_> = refs.iter().map(|r| r.id()).collect::<Result<_>>()?;
    b.wait(&ids, n, timeout)
}

/// Submits a task and returns its refs, or the submission's error.
pub fn submit_n(function: &'static RemoteFunction, args: Vec<Arg>) -> Result<Vec<AnyRef>> {
    let b = backend();
    let ids = b.submit(TaskSpec {
        function,
        args,
        options: Default::default(),
    })?;
    Ok(ids.into_iter().map(|id| AnyRef::live(id, &b)).collect())
}

/// Submits a task with one output; a submission error is held by the ref.
pub fn remote<T>(function: &'static RemoteFunction, args: Vec<Arg>) -> ObjectRef<T> {
    match submit_n(function, args) {
        Ok(mut refs) if !refs.is_empty() => ObjectRef::from_any(refs.remove(0)),
        Ok(_) => panic!("{} has no outputs; use submit_n", function.name),
        Err(e) => ObjectRef::failed(e),
    }
}

/// Creates an actor; a creation error is held by the handle.
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

/// Calls a method and returns its refs, or the call's error.
pub fn call_n(
    handle: &RawActorHandle,
    method: &'static ActorMethodEntry,
    args: Vec<Arg>,
) -> Result<Vec<AnyRef>> {
    let (actor, b) = handle.resolve()?;
    let ids = b.call_actor(ActorCall {
        actor,
        method,
        args,
    })?;
    Ok(ids.into_iter().map(|id| AnyRef::live(id, &b)).collect())
}

/// Calls a method with one output; an error of the call is held by the ref.
pub fn call<T>(
    handle: &RawActorHandle,
    method: &'static ActorMethodEntry,
    args: Vec<Arg>,
) -> ObjectRef<T> {
    match call_n(handle, method, args) {
        Ok(mut refs) if !refs.is_empty() => ObjectRef::from_any(refs.remove(0)),
        Ok(_) => panic!("{} has no outputs; use call_n", method.name),
        Err(e) => ObjectRef::failed(e),
    }
}
