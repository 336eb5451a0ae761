//! Core of unidist: object refs, values, errors, the backend contract and the registry.
//!
//! This is an internal crate of [unidist](https://docs.rs/unidist); depend on `unidist` instead.
//! It names no backend: each backend crate implements [`Backend`] and the facade installs one
//! into the process-wide slot in [`runtime`].
//!
//! The layers a call goes through:
//! - user code builds [`Arg`]s from values or refs with [`IntoArg`], and receives typed
//!   [`ObjectRef`]s and [`ActorHandle`]s;
//! - the facade validates options and forwards a [`TaskSpec`], [`ActorSpec`] or [`ActorCall`] to the
//!   installed [`Backend`];
//! - the backend resolves arguments to [`Payload`]s with [`call::resolve_args`] (a failed
//!   argument fails the call without running it) and runs the function through
//!   [`task::run_function`] or an actor method through [`actor::ActorInstance`] (on an
//!   [`actor::ActorThread`] where the backend has no event loop of its own), which catch panics,
//!   check the number of outputs and turn failures into [`TaskError`] values;
//! - `.await` on a ref ([`GetFuture`], [`WaitFuture`]) samples readiness and otherwise hands a
//!   [`Subscription`] to [`Backend::on_ready`], which wakes the task when the object is ready
//!   (see [`ready`]).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod actor;
pub mod backend;
pub mod call;
pub mod error;
pub mod object_ref;
pub mod observe;
pub mod ready;
pub mod registry;
pub mod retry;
pub mod runtime;
pub mod spin;
pub mod task;
pub mod value;

pub use actor::{ActorClass, ActorHandle, ActorId, ActorMethods, RawActorHandle};
pub use backend::{
    ActorCall, ActorSpec, Arg, Backend, Capabilities, ClusterResources, TaskOptions, TaskSpec,
};
pub use error::{DeadReason, Error, ErrorKind, Result, TaskError, TaskFailure};
pub use object_ref::{read_as, AnyRef, IntoArg, ObjectId, ObjectRef};
pub use observe::{Stats, WorkerStats};
pub use ready::{GetFuture, Notify, Readiness, Subscription, WaitFuture};
pub use registry::{ActorClassEntry, ActorMethodEntry, MethodKind, Registry, RemoteFunction};
pub use value::{ErasedValue, Outputs, Payload, Value};

#[doc(hidden)]
pub use inventory;
