//! Running user code: panics become [`TaskError`] values, and argument failures fail a task
//! without running it.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

use crate::error::{Error, Result, TaskError, TaskFailure};
use crate::registry::RemoteFunction;
use crate::value::{Outputs, Payload};

thread_local! {
    static IN_TASK: Cell<usize> = const { Cell::new(0) };
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that keeps panics inside user code quiet and records
/// where they happened, so the stored [`TaskError`] says `message (at file:line:col)`; panics
/// anywhere else go to the hook that was installed before.
///
/// A task panic is an error value the caller reads with `get`; printing it as well would report
/// the same failure twice, from a thread the user never sees.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if in_task() {
                let location = info.location().map(|l| l.to_string());
                tracing::debug!(location = ?location, "panic in user code");
                PANIC_LOCATION.with(|p| *p.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
}

/// The message of a panic caught in user code, with its location when the hook recorded it.
pub(crate) fn caught_panic_message(payload: &(dyn Any + Send)) -> String {
    let message = panic_message(payload);
    match PANIC_LOCATION.with(|p| p.borrow_mut().take()) {
        Some(location) => format!("{message} (at {location})"),
        None => message,
    }
}

/// True while this thread runs user code of a task, actor constructor or method.
///
/// The MPI backend's panic hook uses it: a panic inside user code is that call's error value,
/// while a panic anywhere else must abort the whole job.
pub fn in_task() -> bool {
    IN_TASK.with(|c| c.get() > 0)
}

struct InTask;

impl InTask {
    fn enter() -> Self {
        IN_TASK.with(|c| c.set(c.get() + 1));
        InTask
    }
}

impl Drop for InTask {
    fn drop(&mut self) {
        IN_TASK.with(|c| c.set(c.get() - 1));
    }
}

/// The message of a panic payload (`&str` or `String`; anything else is described).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Runs user code for `name`, turning a panic into [`TaskFailure::Panicked`] and an error
/// (an argument that could not be read) into [`TaskFailure::ArgumentFailed`].
pub fn catch_panic<T>(
    name: &str,
    f: impl FnOnce() -> Result<T>,
) -> std::result::Result<T, TaskError> {
    let _in_task = InTask::enter();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(error_to_task_error(name, e)),
        Err(p) => Err(TaskError::new(
            name,
            TaskFailure::Panicked,
            caught_panic_message(&*p),
        )),
    }
}

fn error_to_task_error(name: &str, e: Error) -> TaskError {
    match e {
        Error::Task(t) => TaskError::new(
            name,
            TaskFailure::ArgumentFailed,
            format!("an argument failed: {t}"),
        ),
        other => TaskError::new(name, TaskFailure::ArgumentFailed, other.to_string()),
    }
}

/// The error stored for a task whose argument `index` failed with `error`; the body never runs.
pub fn argument_failed(name: &str, index: usize, error: &Error) -> TaskError {
    TaskError::new(
        name,
        TaskFailure::ArgumentFailed,
        format!("argument {index} failed: {error}"),
    )
}

/// Runs a remote function on resolved arguments.
///
/// The body owns `args`: a by-value parameter whose value only this call holds takes it without
/// a copy, and one held elsewhere too (an object in a store, arguments a caller keeps for another
/// run) is cloned ([`Payload::into_owned`]). A caller that may run the call again passes a clone
/// of the `Vec`, which clones only `Arc`s.
///
/// Returns exactly `function.num_returns` outputs, or the error to store for each of them; a
/// body that produced another number of outputs is such an error ([`check_arity`]).
pub fn run_function(
    function: &RemoteFunction,
    args: Vec<Payload>,
) -> std::result::Result<Outputs, TaskError> {
    let _span = crate::observe::timeline::Span::execution("task", function.name);
    let outputs = catch_panic(function.name, || (function.invoke)(args))?;
    check_arity(function.name, function.num_returns, outputs)
}

/// Checks that the call `name` produced the number of outputs it declared; too few and too
/// many are both the call's error, naming both counts.
///
/// [`run_function`] and [`ActorInstance::begin`](crate::actor::ActorInstance::begin) apply it,
/// so no backend runs user code without it.
pub fn check_arity(
    name: &str,
    expected: usize,
    outputs: Outputs,
) -> std::result::Result<Outputs, TaskError> {
    if outputs.len() == expected {
        // Every call's outputs pass here on their way to the store, on every backend.
        for o in &outputs {
            crate::observe::stats::object_stored(o.byte_len());
        }
        Ok(outputs)
    } else {
        Err(TaskError::new(
            name,
            TaskFailure::Panicked,
            format!(
                "returned {} values, but it declares num_returns = {expected}",
                outputs.len()
            ),
        ))
    }
}

/// A future that turns a panic while polling into a [`TaskError`], and checks the number of
/// outputs ([`check_arity`]).
pub struct CatchUnwind {
    name: &'static str,
    num_returns: usize,
    inner: Pin<Box<dyn Future<Output = Result<Outputs>>>>,
}

impl CatchUnwind {
    /// Guards `inner`, a call of `name` that declares `num_returns` outputs.
    pub fn new(
        name: &'static str,
        num_returns: usize,
        inner: Pin<Box<dyn Future<Output = Result<Outputs>>>>,
    ) -> Self {
        CatchUnwind {
            name,
            num_returns,
            inner,
        }
    }
}

impl Future for CatchUnwind {
    type Output = std::result::Result<Outputs, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (name, num_returns) = (self.name, self.num_returns);
        let inner = &mut self.inner;
        let _in_task = InTask::enter();
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(v))) => Poll::Ready(check_arity(name, num_returns, v)),
            Ok(Poll::Ready(Err(e))) => Poll::Ready(Err(error_to_task_error(name, e))),
            Err(p) => Poll::Ready(Err(TaskError::new(
                name,
                TaskFailure::Panicked,
                caught_panic_message(&*p),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::output;

    fn boom(_: Vec<Payload>) -> Result<Outputs> {
        let d = std::hint::black_box(0);
        Ok(vec![output(1 / d)])
    }

    fn double(args: Vec<Payload>) -> Result<Outputs> {
        let x = args[0].take::<i64>()?;
        Ok(vec![output(x * 2)])
    }

    static BOOM: RemoteFunction = RemoteFunction {
        name: "tests::boom",
        num_returns: 1,
        invoke: boom,
    };
    static DOUBLE: RemoteFunction = RemoteFunction {
        name: "tests::double",
        num_returns: 1,
        invoke: double,
    };

    #[test]
    fn panic_becomes_task_error() {
        install_panic_hook();
        let err = run_function(&BOOM, vec![]).err().expect("must fail");
        assert_eq!(err.failure, TaskFailure::Panicked);
        assert_eq!(err.function, "tests::boom");
        assert!(err.message.contains("divide by zero"), "{}", err.message);
        assert!(
            err.message.contains("task.rs:"),
            "location missing: {}",
            err.message
        );
        assert!(!in_task());
    }

    #[test]
    fn bad_argument_fails_without_panic() {
        let err = run_function(&DOUBLE, vec![Payload::local("x".to_string())])
            .err()
            .expect("must fail");
        assert_eq!(err.failure, TaskFailure::ArgumentFailed);
        let ok = run_function(&DOUBLE, vec![Payload::local(21i64)]).unwrap();
        assert_eq!(ok[0].as_any().downcast_ref::<i64>(), Some(&42));
    }

    #[test]
    fn too_few_and_too_many_outputs_are_errors() {
        let few = check_arity("m::f", 2, vec![output(1u8)]).err().unwrap();
        assert_eq!(few.function, "m::f");
        assert!(few.message.contains("returned 1 values"), "{few}");
        assert!(few.message.contains("num_returns = 2"), "{few}");
        let many = check_arity("m::f", 0, vec![output(1u8)]).err().unwrap();
        assert!(many.message.contains("num_returns = 0"), "{many}");
        assert_eq!(check_arity("m::f", 1, vec![output(1u8)]).unwrap().len(), 1);
    }

    fn wrong_count(_: Vec<Payload>) -> Result<Outputs> {
        Ok(vec![output(1u8), output(2u8)])
    }

    static WRONG_COUNT: RemoteFunction = RemoteFunction {
        name: "tests::wrong_count",
        num_returns: 1,
        invoke: wrong_count,
    };

    #[test]
    fn run_function_checks_the_count() {
        let err = run_function(&WRONG_COUNT, vec![]).err().unwrap();
        assert!(err.message.contains("returned 2 values"), "{err}");
    }
}
