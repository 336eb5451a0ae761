//! Argument resolution, written once for every backend: a call's arguments become payloads, or
//! the call fails with the error of its first failed argument and its body never runs.
//!
//! A backend describes what it knows about each argument as an [`ArgState`] (its value, the
//! error that fails it, or the object it still waits for) and [`resolve_args`] applies the rule.
//! Local backends look refs up in their store through [`resolve_call_args`]; the MPI backend
//! keeps one [`ArgState`] per argument of a call received from another process and resolves
//! them once none is pending.

use crate::backend::Arg;
use crate::error::{Error, TaskError};
use crate::object_ref::{AnyRef, ObjectId};
use crate::task::argument_failed;
use crate::value::Payload;

/// What a backend knows about one argument of a call.
#[derive(Debug, Clone)]
pub enum ArgState {
    /// Its value.
    Ready(Payload),
    /// Why it cannot be read: the call that should produce it failed, the ref holds an error,
    /// or the object is gone.
    Failed(Error),
    /// The object is not ready yet.
    Pending(ObjectId),
}

/// The arguments of a call, resolved.
#[derive(Debug)]
pub enum Resolved {
    /// Every argument's payload, in order.
    Ready(Vec<Payload>),
    /// The call must not run: this error (naming the call and the argument) is stored for
    /// every output.
    Failed(TaskError),
    /// The first argument that is not ready yet; nothing failed before it.
    Pending(ObjectId),
}

impl Resolved {
    /// The payloads, or the error to store for every output; `None` while an argument is
    /// pending.
    pub fn ready(self) -> Option<Result<Vec<Payload>, TaskError>> {
        match self {
            Resolved::Ready(p) => Some(Ok(p)),
            Resolved::Failed(e) => Some(Err(e)),
            Resolved::Pending(_) => None,
        }
    }
}

/// Resolves the arguments of the call `name` (a function, actor type or method) in order: the
/// first argument that failed fails the whole call with [`argument_failed`], and the first
/// pending one (before any failure) makes it [`Resolved::Pending`].
///
/// `state` says what the backend knows about one argument; it may take the argument by value
/// (to move payloads out) or by reference.
pub fn resolve_args<A>(
    name: &str,
    args: impl IntoIterator<Item = A>,
    mut state: impl FnMut(A) -> ArgState,
) -> Resolved {
    let args = args.into_iter();
    let mut payloads = Vec::with_capacity(args.size_hint().0);
    for (index, arg) in args.enumerate() {
        match state(arg) {
            ArgState::Ready(p) => payloads.push(p),
            ArgState::Failed(e) => return Resolved::Failed(argument_failed(name, index, &e)),
            ArgState::Pending(id) => return Resolved::Pending(id),
        }
    }
    Resolved::Ready(payloads)
}

/// Resolves the [`Arg`]s of the call `name`: a value is used in place, a ref that holds an error
/// fails the call, and `lookup` says what the backend's store knows about every other ref.
///
/// The facade has already replaced refs of another runtime with failed refs, so a backend
/// looks up only ids of its own.
pub fn resolve_call_args<'a>(
    name: &str,
    args: impl IntoIterator<Item = &'a Arg>,
    mut lookup: impl FnMut(ObjectId) -> ArgState,
) -> Resolved {
    resolve_args(name, args, |arg| match arg {
        Arg::Value(v) => ArgState::Ready(Payload::Local(v.clone())),
        Arg::Ref(r) => match r.id() {
            Ok(id) => lookup(id),
            Err(e) => ArgState::Failed(e),
        },
    })
}

/// As [`resolve_call_args`], but takes the arguments by value, for a call that runs once from
/// them: a value given directly moves into its payload instead of being shared with `args`, so
/// when nothing else holds it the body's by-value parameter takes it without a copy
/// ([`Payload::into_owned`]).
///
/// The refs come back with the result, every one of them (also those after a failed or
/// pending argument): they keep their objects alive, so the backend drops them once the call's
/// outputs are settled, as it would have dropped `args`.
pub fn resolve_owned_call_args(
    name: &str,
    args: Vec<Arg>,
    mut lookup: impl FnMut(ObjectId) -> ArgState,
) -> (Resolved, Vec<AnyRef>) {
    let mut refs = Vec::new();
    let mut args = args.into_iter();
    let resolved = resolve_args(name, args.by_ref(), |arg| match arg {
        Arg::Value(v) => ArgState::Ready(Payload::Local(v)),
        Arg::Ref(r) => {
            let state = match r.id() {
                Ok(id) => lookup(id),
                Err(e) => ArgState::Failed(e),
            };
            refs.push(r);
            state
        }
    });
    refs.extend(args.filter_map(|arg| match arg {
        Arg::Ref(r) => Some(r),
        Arg::Value(_) => None,
    }));
    (resolved, refs)
}

/// The id of an argument that is a live ref; what a backend waits for before a call runs.
pub fn ref_id(arg: &Arg) -> Option<ObjectId> {
    match arg {
        Arg::Ref(r) => r.id().ok(),
        Arg::Value(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, TaskFailure};
    use crate::object_ref::AnyRef;
    use std::sync::Arc;

    fn value(v: i64) -> Arg {
        Arg::Value(Arc::new(v))
    }

    #[test]
    fn values_and_ready_refs_resolve_in_order() {
        let r = Resolved::Ready(vec![]);
        assert!(matches!(r.ready(), Some(Ok(v)) if v.is_empty()));
        let args = [value(1), value(2)];
        let Resolved::Ready(p) = resolve_call_args("f", &args, |_| unreachable!()) else {
            panic!("expected ready arguments");
        };
        let got: Vec<i64> = p.iter().map(|p| p.take::<i64>().unwrap()).collect();
        assert_eq!(got, [1, 2]);
    }

    #[test]
    fn the_first_failed_argument_fails_the_call() {
        let failed = Arg::Ref(AnyRef::failed(Error::ShutDown));
        let args = [value(1), failed, value(3)];
        let Resolved::Failed(e) = resolve_call_args("m::f", &args, |_| unreachable!()) else {
            panic!("expected a failed call");
        };
        assert_eq!(e.failure, TaskFailure::ArgumentFailed);
        assert_eq!(e.function, "m::f");
        assert!(e.message.contains("argument 1"), "{e}");
        assert_eq!(Error::from(e).kind(), ErrorKind::TaskFailed);
    }

    #[test]
    fn a_pending_argument_before_a_failure_waits() {
        let states = [
            ArgState::Ready(Payload::local(1i64)),
            ArgState::Pending(ObjectId::new(0, 9)),
            ArgState::Failed(Error::ShutDown),
        ];
        let r = resolve_args("f", states, |s| s);
        assert!(matches!(r, Resolved::Pending(id) if id == ObjectId::new(0, 9)));
        assert!(r.ready().is_none());
    }

    #[test]
    fn owned_arguments_move_their_values_and_give_back_every_ref() {
        let args = vec![value(1), value(2)];
        let (Resolved::Ready(p), refs) = resolve_owned_call_args("f", args, |_| unreachable!())
        else {
            panic!("expected ready arguments");
        };
        assert!(refs.is_empty());
        for payload in &p {
            let Payload::Local(v) = payload else {
                panic!("expected a local payload")
            };
            assert_eq!(Arc::strong_count(v), 1, "the value is still shared");
        }
        let got: Vec<i64> = p.into_iter().map(|p| p.into_owned().unwrap()).collect();
        assert_eq!(got, [1, 2]);

        let failed = || Arg::Ref(AnyRef::failed(Error::ShutDown));
        let args = vec![value(1), failed(), value(3), failed()];
        let (Resolved::Failed(e), refs) = resolve_owned_call_args("m::f", args, |_| unreachable!())
        else {
            panic!("expected a failed call");
        };
        assert!(e.message.contains("argument 1"), "{e}");
        assert_eq!(
            refs.len(),
            2,
            "a ref after the failed one was dropped early"
        );
    }
}
