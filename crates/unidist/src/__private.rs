//! What the `#[remote]` and `#[actor]` expansions call; not a public API.

use std::any::Any;
use std::sync::Arc;

pub use unidist_core::actor::{ActorReadGuard, ActorState, ActorWriteGuard, LocalBoxFuture};
pub use unidist_core::inventory;
pub use unidist_core::registry::{
    ActorClassEntry, ActorMethodEntry, MethodKind, Registration, RemoteFunction,
};
pub use unidist_core::value::output;
pub use unidist_core::{
    ActorClass, ActorHandle, ActorMethods, AnyRef, Arg, Error, IntoArg, ObjectRef, Outputs,
    Payload, RawActorHandle, Result, TaskOptions, TaskSpec, Value,
};

use unidist_core::observe::{stats, timeline};
use unidist_core::{ActorCall, ActorSpec};

use crate::backend;
use crate::facade::own_args;

/// The arguments of a call with `N` parameters, one payload each, for the trampoline to read
/// in place (`Payload::read`) or take (`Payload::into_owned`).
pub fn args<const N: usize>(args: Vec<Payload>) -> Result<[Payload; N]> {
    let received = args.len();
    <[Payload; N]>::try_from(args).map_err(|_| {
        Error::invalid(
            "number of arguments",
            received,
            format!("{N} (the parameters of the call)"),
        )
    })
}

/// The actor state as `&A`.
pub fn actor_ref<A: 'static>(state: &dyn Any) -> Result<&A> {
    state.downcast_ref::<A>().ok_or_else(|| wrong_actor::<A>())
}

/// The actor state as `&mut A`.
pub fn actor_mut<A: 'static>(state: &mut dyn Any) -> Result<&mut A> {
    state.downcast_mut::<A>().ok_or_else(|| wrong_actor::<A>())
}

fn wrong_actor<A>() -> Error {
    Error::TypeMismatch {
        object: "actor state".into(),
        expected: std::any::type_name::<A>(),
        found: "another actor type".into(),
    }
}

/// Validates per-call options against the running backend.
fn validate(options: &TaskOptions, backend: &Arc<dyn unidist_core::Backend>) -> Result<()> {
    crate::fault::validate(options)?;
    if let Some(n) = options.num_cpus {
        let max = backend.num_cpus().max(1);
        if n == 0 || n as usize > max {
            return Err(Error::invalid(
                "num_cpus",
                n,
                format!("1..={max} (the CPUs of the cluster)"),
            ));
        }
    }
    Ok(())
}

fn failed_refs(n: usize, e: Error) -> Vec<AnyRef> {
    (0..n).map(|_| AnyRef::failed(e.clone())).collect()
}

/// Submits a task; returns `function.num_returns` refs (holding the error if submission failed).
pub fn submit(
    function: &'static RemoteFunction,
    args: Vec<Arg>,
    options: TaskOptions,
) -> Vec<AnyRef> {
    let result = backend().and_then(|b| {
        validate(&options, &b)?;
        let _flow = timeline::submission("task", function.name);
        let ids = b.submit(TaskSpec {
            function,
            args: own_args(args, &b),
            options,
        })?;
        stats::count(stats::Counter::TasksSubmitted);
        Ok(ids
            .into_iter()
            .map(|id| AnyRef::live(id, &b))
            .collect::<Vec<_>>())
    });
    result.unwrap_or_else(|e| failed_refs(function.num_returns, e))
}

/// Submits a task with no returns; a submission error is logged, as there is no ref to hold it.
pub fn submit_none(function: &'static RemoteFunction, args: Vec<Arg>, options: TaskOptions) {
    if let Some(e) = submit(function, args, options)
        .first()
        .and_then(|r| r.error().cloned())
    {
        tracing::error!(function = function.name, error = %e, "submitting a task failed");
    }
}

/// The next of the refs of a call, typed.
pub fn next_ref<T>(refs: &mut std::vec::IntoIter<AnyRef>) -> ObjectRef<T> {
    match refs.next() {
        Some(r) => ObjectRef::from_any(r),
        None => ObjectRef::failed(Error::backend(
            "core",
            "a call returned fewer refs than it declared",
        )),
    }
}

/// Creates an actor of type `A`.
pub fn create_actor<A: ActorClass>(args: Vec<Arg>, options: TaskOptions) -> ActorHandle<A> {
    let class = A::class();
    let result = backend().and_then(|b| {
        validate(&options, &b)?;
        let _flow = timeline::submission("actor_create", class.name);
        let id = b.create_actor(ActorSpec {
            class,
            args: own_args(args, &b),
            options,
        })?;
        Ok(RawActorHandle::live(id, class, &b))
    });
    ActorHandle::from_raw(result.unwrap_or_else(RawActorHandle::failed))
}

/// Calls a method; returns `method.num_returns` refs.
pub fn call_actor(
    handle: &RawActorHandle,
    method: &'static ActorMethodEntry,
    args: Vec<Arg>,
) -> Vec<AnyRef> {
    let result = send_call(handle, method, args).map(|(ids, b)| {
        ids.into_iter()
            .map(|id| AnyRef::live(id, &b))
            .collect::<Vec<_>>()
    });
    result.unwrap_or_else(|e| failed_refs(method.num_returns, e))
}

/// Sends a method call to the backend of `handle`; an [`Error::ActorDead`] from a backend that
/// knew only the actor's id is given the actor's type here.
fn send_call(
    handle: &RawActorHandle,
    method: &'static ActorMethodEntry,
    args: Vec<Arg>,
) -> Result<(Vec<unidist_core::ObjectId>, Arc<dyn unidist_core::Backend>)> {
    let (actor, b) = handle.resolve()?;
    let _flow = timeline::submission("actor_call", method.name);
    let ids = b
        .call_actor(ActorCall {
            actor,
            method,
            args: own_args(args, &b),
        })
        .map_err(|e| e.naming_actor_class(method.class, actor))?;
    stats::count(stats::Counter::ActorCalls);
    Ok((ids, b))
}

/// Calls a method with no returns; an error is logged, as there is no ref to hold it.
pub fn call_actor_none(handle: &RawActorHandle, method: &'static ActorMethodEntry, args: Vec<Arg>) {
    if let Err(e) = send_call(handle, method, args) {
        tracing::error!(method = method.name, error = %e, "calling an actor method failed");
    }
}
