//! Tasks: resolved inputs, dependency tracking, and running a task on the pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use unidist_core::task::{argument_failed, run_function};
use unidist_core::{AnyRef, Error, ObjectId, Payload, RemoteFunction};

use crate::shared::{Completion, Shared};
use crate::store::{Lookup, Store, Value, Waiter};

/// One argument of a call, checked against this backend at submission.
pub(crate) enum Input {
    /// Given by value; passed in place.
    Value(Value),
    /// A ref to an object of this backend. The ref is held so the object lives until the call
    /// has read it.
    Object(ObjectId, #[allow(dead_code)] AnyRef),
    /// A ref that cannot be read here (it holds an error, or belongs to a runtime that was shut
    /// down); the call fails without running.
    Bad(Error),
}

impl Input {
    pub(crate) fn object_id(&self) -> Option<ObjectId> {
        match self {
            Input::Object(id, _) => Some(*id),
            _ => None,
        }
    }
}

/// The arguments read from the store, or why the call cannot run.
pub(crate) enum Resolved {
    Ready(Vec<Payload>),
    Failed(Error),
    Pending,
}

/// Reads every input of a call named `name`: values in place, objects from the store.
pub(crate) fn resolve_now(store: &Store, name: &str, inputs: &[Input]) -> Resolved {
    let mut payloads = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        match input {
            Input::Value(v) => payloads.push(Payload::Local(v.clone())),
            Input::Object(id, _) => match store.lookup(*id) {
                Lookup::Ready(v) => payloads.push(Payload::Local(v)),
                Lookup::Failed(e) => return Resolved::Failed(argument_failed(name, i, &e).into()),
                Lookup::Pending(_) => return Resolved::Pending,
                Lookup::Missing => {
                    let e = Error::StaleRef {
                        what: id.to_string(),
                    };
                    return Resolved::Failed(argument_failed(name, i, &e).into());
                }
            },
            Input::Bad(e) => return Resolved::Failed(argument_failed(name, i, e).into()),
        }
    }
    Resolved::Ready(payloads)
}

/// A submitted task.
pub(crate) struct Task {
    pub(crate) function: &'static RemoteFunction,
    pub(crate) inputs: Vec<Input>,
    pub(crate) done: Completion,
}

impl Task {
    /// Runs the task on the calling thread; every argument is settled.
    pub(crate) fn run(self, shared: &Arc<Shared>) {
        let Task {
            function,
            inputs,
            done,
        } = self;
        if shared.is_closed() {
            done.finish(shared, Err(Error::ShutDown));
            return;
        }
        let result = match resolve_now(&shared.store, function.name, &inputs) {
            Resolved::Ready(payloads) => run_function(function, &payloads).map_err(Error::from),
            Resolved::Failed(e) => Err(e),
            Resolved::Pending => Err(Error::backend(
                "pymp",
                format!(
                    "task {} started before its arguments were ready",
                    function.name
                ),
            )),
        };
        // The argument refs are released only after the outputs are settled, so that a
        // reader never sees an argument freed before the result that depends on it.
        done.finish(shared, result);
        drop(inputs);
    }

    /// Settles the outputs of a task that will not run.
    pub(crate) fn abandon(self, shared: &Arc<Shared>, error: Error) {
        self.done.finish(shared, Err(error));
    }
}

/// A submitted task and the count of its arguments still pending.
///
/// The outputs of the task point to it (as their producer), every pending argument holds it in
/// its waiter list, and once it is runnable the run queue holds it. Whoever takes the task out
/// first runs it: a pool thread, a compensation thread, or a worker blocked on one of its
/// outputs. Shutdown settles every cell still waiting or queued, so none is dropped with its
/// task inside.
pub(crate) struct TaskCell {
    remaining: AtomicUsize,
    task: Mutex<Option<Task>>,
}

impl Drop for TaskCell {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().take() {
            tracing::error!(
                task = task.function.name,
                "a task was dropped without running or settling"
            );
        }
    }
}

impl TaskCell {
    /// A cell holding `task`, which waits for `pending` arguments still to be registered (0:
    /// runnable now).
    pub(crate) fn new(task: Task, pending: usize) -> Self {
        TaskCell {
            remaining: AtomicUsize::new(pending),
            task: Mutex::new(Some(task)),
        }
    }

    /// Registers the cell on each of its task's pending object arguments; the cell was created
    /// counting all of them. An argument that settled meanwhile is uncounted here, and whoever
    /// brings the count to zero (here or a settling thread) queues the task: true if it is this
    /// call.
    pub(crate) fn register_arguments(self: &Arc<Self>, store: &Store, ids: &[ObjectId]) -> bool {
        let mut runnable = false;
        for &id in ids {
            if !store.register(id, Waiter::Task(self.clone())) && self.argument_settled() {
                runnable = true;
            }
        }
        runnable
    }

    /// One awaited argument settled; true when it was the last.
    pub(crate) fn argument_settled(&self) -> bool {
        self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// The task, if it is runnable and nobody took it yet.
    pub(crate) fn take_runnable(&self) -> Option<Task> {
        if self.remaining.load(Ordering::Acquire) == 0 {
            self.task.lock().take()
        } else {
            None
        }
    }
}
